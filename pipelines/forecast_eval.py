"""Backtest the demand forecaster on any warehouse's `fct_sku_daily_demand` and print the results table.

    python -m pipelines.forecast_eval                                  # the configured warehouse
    python -m pipelines.forecast_eval --warehouse path/to/shoplens.duckdb --folds 3 --prophet

The same rolling-origin backtest as the `decisions/forecast_backtest` asset (models.backtest), read-only
on the warehouse, printed as a markdown table (overall and per segment) with the three goals. Used for the
results table in docs/forecasting.md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import duckdb
import polars as pl

from models import backtest as bt
from pipelines.assets.forecasting import HORIZON, load_calendar, load_demand
from pipelines.core.settings import get_settings

METRICS = ("wape", "mase", "rmsse", "bias", "pinball_p50", "coverage_p10_p90")


def markdown(table: pl.DataFrame) -> str:
    cols = ["segment", "model", *METRICS, "n_series"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in table.select(cols).iter_rows(named=True):
        cells = [
            f"{v:.3f}"
            if isinstance(v, float) and k != "n_series"
            else f"{v:,.0f}"
            if k == "n_series"
            else str(v)
            for k, v in row.items()
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--warehouse", type=Path, default=None, help="DuckDB file (default: the configured one)"
    )
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--prophet", action="store_true", help="Prophet on the aggregates (slower)")
    args = parser.parse_args(argv)
    path = args.warehouse or get_settings().warehouse
    if not path.exists():
        raise SystemExit(f"{path}: no warehouse there; run `make demo` (or pass --warehouse)")
    con = duckdb.connect(str(path), read_only=True)
    try:
        demand, calendar = load_demand(con), load_calendar(con)
    finally:
        con.close()
    print(
        f"{path.name}: {demand['sku'].n_unique():,} SKUs, {demand['date'].min()} .. {demand['date'].max()}; "
        f"{args.folds} folds of {HORIZON} days, prophet={'on' if args.prophet else 'off'}; "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    started = time.time()
    metrics = bt.backtest(
        demand, calendar, folds=args.folds, horizon=HORIZON, use_prophet=args.prophet, progress=print
    )
    table = bt.wide(metrics).filter(pl.col("fold") == "all").sort("segment", "model")
    print(markdown(table))
    goals = bt.goal_report(metrics)
    print(
        f"WAPE {goals['wape']:.3f} vs seasonal naive {goals['wape_seasonal_naive']:.3f} "
        f"({goals['wape_reduction']:.0%} lower; goal >= 15%: {'met' if goals['wape_goal_met'] else 'missed'}), "
        f"MASE {goals['mase']:.3f} (goal < 1: {'met' if goals['mase_goal_met'] else 'missed'}), "
        f"P10-P90 coverage {goals['coverage']:.3f} (goal 0.77-0.83: "
        f"{'met' if goals['coverage_goal_met'] else 'missed'}); {time.time() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
