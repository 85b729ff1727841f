"""Command line: land a source into a landing folder and print its counts.

    python -m pipelines.sources land --source online_retail --input ../shared/realdata/online_retail \
        --landing data/landing
    python -m pipelines.sources land --source synthetic --landing data/landing --scale small
    python -m pipelines.sources list
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from pathlib import Path
from typing import Any

from pipelines.sources.base import LandingReport
from pipelines.sources.registry import SOURCES, get_lander, land


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines.sources", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the known sources")
    p = sub.add_parser("land", help="write canonical landing files from a source")
    p.add_argument("--source", required=True, choices=sorted(SOURCES))
    p.add_argument("--input", type=Path, help="export folder or file (every source but synthetic)")
    p.add_argument("--landing", type=Path, required=True, help="landing folder to (re)write")
    p.add_argument("--scale", help="synthetic: small, medium, ...")
    p.add_argument("--seed", type=int, help="synthetic: RNG seed")
    p.add_argument(
        "--no-bad-rows", dest="bad_rows", action="store_false", default=None, help="synthetic: no bad rows"
    )
    p.add_argument("--encoding", help="fallback text encoding when a file is not UTF-8 (default cp1252)")
    p.add_argument("--year", type=int, help="online_shoppers: calendar year of the sessions (default 2017)")
    p.add_argument("--max-views", type=int, help="online_shoppers: view events per session cap (default 5)")
    p.add_argument("--timezone", help="ga4: IANA zone to convert event timestamps to (default UTC)")
    return parser


def _options(source: str, args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line, checked against what the source's land function accepts."""
    given = {
        k: v
        for k, v in vars(args).items()
        if k in ("scale", "seed", "bad_rows", "encoding", "year", "max_views", "timezone") and v is not None
    }
    accepted = inspect.signature(get_lander(source)).parameters
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise SystemExit(
            f"source {source!r} does not take {', '.join('--' + u.replace('_', '-') for u in unknown)}"
        )
    return given


def format_report(report: LandingReport) -> str:
    """A short table of the counts in a landing report."""
    lines = [
        f"source {report.source}  currency {report.currency or '-'}  timezone {report.timezone}  "
        f"dates {report.first_date} .. {report.last_date}",
        f"{'table':<18}{'in':>10}{'landed':>10}{'quarantined':>13}{'routed out':>12}",
    ]
    for table in sorted(report.rows_in):
        q = report.quarantined.get(table, {})
        r = report.routed_out.get(table, {})
        lines.append(
            f"{table:<18}{report.rows_in[table]:>10}{report.rows_landed.get(table, 0):>10}"
            f"{sum(q.values()):>13}{sum(r.values()):>12}"
        )
        for rule, n in sorted(q.items()):
            lines.append(f"{'':<20}quarantined {rule}: {n}")
        for reason, n in sorted(r.items()):
            lines.append(f"{'':<20}routed out {reason}: {n}")
    for note in report.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        print("\n".join(sorted(SOURCES)))
        return 0
    if args.source != "synthetic" and args.input is None:
        raise SystemExit(f"--input is required for source {args.source!r}")
    options = _options(args.source, args)
    started = time.perf_counter()
    report = land(args.source, args.input, args.landing, **options)
    print(format_report(report))
    print(f"landed into {args.landing} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
