"""Bulk ingestion of a date range, outside Dagster's per-partition bookkeeping.

A Dagster backfill of two years of daily partitions records about two events per table and day (planned
and materialized): ~9,000 SQLite commits for the demo shop, several minutes on a busy disk before any
data moves. The history is therefore loaded here with the same validation code the ingestion assets
run (same rules, same quarantine, same files), and Dagster runs the nightly job for the newest day on
top. A backfill from the Dagster UI still works and gives the same files; this is the fast path.

    python -m pipelines.backfill --start 2024-01-01 --end 2025-12-30 [--chunk 256MB|month|31d|all]

Daily tables are ingested one chunk of consecutive days at a time, in date order. One call over two
years held every row of a table in DuckDB at once: medium's traffic spilled ~11 GB, and a shop ten times
larger would not fit on the disk. By default a chunk holds about CHUNK_DEFAULT of landing CSV (whole
days; SHOPLENS_INGEST_CHUNK or --chunk: "<N>MB", "<N>d" days, "month" or "all"), so a call's working
set and spill stay the same whatever the size of the shop, while a small table is still one call (each
call has a fixed cost of ~50 ms; medium's traffic is ~10 calls, its reviews one). The rows and rules are
those of one call over the whole range: duplicates within a chunk are found inside the call, those of
an earlier chunk against its raw files, already written (only the detail text differs: "already
ingested for <day>" instead of the earlier landing file and row).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta

from pipelines.core.expectations import validate_partitions
from pipelines.core.ingest import IngestResult, ingest, landing_files, pii_key, write_empty_raw
from pipelines.core.landing import data_size
from pipelines.core.schemas import DAILY_TABLES, REFERENCE_TABLES
from pipelines.core.settings import get_settings
from pipelines.sources.base import read_manifest


class SuiteFailed(RuntimeError):
    pass


CHUNK_ENV = "SHOPLENS_INGEST_CHUNK"
# Landing CSV per ingest call: medium's traffic (~2.3 GB over two years) in ~10 calls of ~2.5 M rows,
# about 300 MB in DuckDB, well inside the default 2GB memory_limit, so nothing spills.
CHUNK_DEFAULT = "256MB"
_CHUNK_SPEC = re.compile(r"(?i)\s*(all|month|(\d+)\s*(d|mb))\s*")


def parse_chunk(spec: str) -> tuple[str, int]:
    """A chunk setting as (kind, n): ("all", 0), ("month", 0), ("days", n) or ("bytes", n)."""
    m = _CHUNK_SPEC.fullmatch(spec or "")
    if not m or (m.group(2) is not None and int(m.group(2)) < 1):
        raise ValueError(
            f"chunk {spec!r}: give '<N>MB' (landing megabytes per call), '<N>d' (days), 'month' or 'all'"
        )
    if m.group(2) is None:
        return m.group(1).lower(), 0
    n = int(m.group(2))
    return ("days", n) if m.group(3).lower() == "d" else ("bytes", n * 1024 * 1024)


def chunk_days(days: list[date], spec: str, day_bytes: dict[date, int] | None = None) -> list[list[date]]:
    """Split sorted days into runs of consecutive days by a chunk setting (see parse_chunk).

    By bytes, a run grows until the next day's landing files (`day_bytes`) would pass the budget; a day
    larger than the budget is a run of its own.
    """
    kind, n = parse_chunk(spec)
    if not days:
        return []
    if kind == "all":
        return [list(days)]
    chunks: list[list[date]] = []
    size = 0
    for i, day in enumerate(days):
        if kind == "month":
            new = i > 0 and (day.year, day.month) != (days[i - 1].year, days[i - 1].month)
        elif kind == "days":
            new = i > 0 and i % n == 0
        else:
            weight = (day_bytes or {}).get(day, 0)
            new = i > 0 and size + weight > n
            size = weight if new else size + weight
        if i == 0 or new:
            chunks.append([])
        chunks[-1].append(day)
    return chunks


def landing_bytes(landing, table: str, days: list[date]) -> dict[date, int]:
    """CSV bytes of each day's landing files of a table (the unit of the default chunk budget); a .csv.gz
    file counts by its uncompressed size, so a chunk holds the same rows whether files are compressed."""
    sizes: dict[date, int] = {}
    for path, day in landing_files(landing, table, days):
        sizes[day] = sizes.get(day, 0) + data_size(path)
    return sizes


def merge_results(table: str, parts: list[IngestResult]) -> IngestResult:
    """One table's result over all its chunks: sums, and the first three examples of each rule."""
    merged = IngestResult(table=table)
    for part in parts:
        merged.files += part.files
        merged.rows_in += part.rows_in
        merged.rows_accepted += part.rows_accepted
        merged.rows_quarantined += part.rows_quarantined
        merged.by_rule += part.by_rule
        merged.days_written += part.days_written
        merged.days_empty += part.days_empty
        merged.notes += part.notes
    seen: Counter = Counter()
    for example in sorted(
        (e for part in parts for e in part.examples), key=lambda e: (e["rule"], e["source_file"], e["source_row"])
    ):
        if seen[example["rule"]] < 3:
            seen[example["rule"]] += 1
            merged.examples.append(example)
    merged.check_balance()
    return merged


def bulk_ingest(
    start: date,
    end: date,
    log: Callable[[str], None] = print,
    run_suites: bool = True,
    chunk: str | None = None,
) -> dict[str, IngestResult]:
    """Ingest every table for start..end (reference snapshots first); raise when a GX suite fails.

    `chunk`: how the daily tables' days are split into ingest calls (see parse_chunk); by default
    SHOPLENS_INGEST_CHUNK, else CHUNK_DEFAULT. Chunks run in date order, and each call is told which
    later days this run still replaces, so their old raw files do not count as duplicates.
    """
    settings = get_settings()
    source = read_manifest(settings.landing_dir) or {}
    missing = set(source.get("missing_tables", []))
    reset_raw_if_source_changed(source, settings.raw_dir, log)
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    spec = chunk or os.environ.get(CHUNK_ENV, "").strip() or CHUNK_DEFAULT
    parse_chunk(spec)  # a bad setting stops here, before anything is written
    secret = pii_key(settings.mode, settings.pii_key)
    results: dict[str, IngestResult] = {}
    for table in (*REFERENCE_TABLES, *DAILY_TABLES):
        if table in missing:
            write_empty_raw(table, settings.raw_dir)
            log(f"  {table:<18} skipped: source '{source.get('source')}' provides no {table}")
            continue
        started = time.time()
        parts = []
        chunks = [] if table in REFERENCE_TABLES else chunk_days(
            days, spec, landing_bytes(settings.landing_dir, table, days)
        )
        for i, part in enumerate([None] if table in REFERENCE_TABLES else chunks):
            parts.append(
                ingest(
                    table,
                    settings.landing_dir,
                    settings.raw_dir,
                    part,
                    currency=source.get("currency"),
                    timezone=settings.timezone,
                    pii_secret=secret,
                    replacing=[d for later in chunks[i + 1 :] for d in later] if part else (),
                )
            )
        result = results[table] = merge_results(table, parts)
        rules = ", ".join(f"{r}={n}" for r, n in sorted(result.by_rule.items()))
        log(
            f"  {table:<18} {len(result.files):>4} files {result.rows_in:>10,} rows in "
            f"{result.rows_accepted:>10,} accepted {result.rows_quarantined:>6,} quarantined "
            f"({time.time() - started:.1f} s){'  ' + rules if rules else ''}"
        )
        if run_suites and result.rows_accepted:
            outcome = validate_partitions(settings.raw_dir, table, result.days_written)
            if not outcome.success:
                raise SuiteFailed(
                    f"Great Expectations suite failed for {table}: " + "; ".join(outcome.failures)
                )
    return results


SOURCE_STAMP = "_built_from.json"


def reset_raw_if_source_changed(source: dict, raw_dir, log: Callable[[str], None] = print) -> None:
    """Raw partitions of another source must never mix with this one's: start the raw layer afresh."""
    identity = {k: source.get(k) for k in ("source", "input", "scale", "seed")}
    stamp = raw_dir / SOURCE_STAMP
    if stamp.exists() and json.loads(stamp.read_text()) == identity:
        return
    if raw_dir.exists() and any(raw_dir.iterdir()):
        log(f"the landing folder now holds source '{source.get('source')}': clearing the raw layer of the previous one")
        for child in raw_dir.iterdir():
            if child.name != "_erasure":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    raw_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(identity))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--start", type=date.fromisoformat, required=True)
    parser.add_argument("--end", type=date.fromisoformat, required=True)
    parser.add_argument(
        "--chunk",
        help=f"days per ingest call: '<N>MB' of landing CSV, '<N>d', 'month' or 'all' "
        f"(default: {CHUNK_ENV}, else {CHUNK_DEFAULT})",
    )
    args = parser.parse_args(argv)
    bulk_ingest(args.start, args.end, chunk=args.chunk)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
