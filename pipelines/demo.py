"""`make demo`: land a source (the synthetic shop by default), run the whole graph, print a summary.

    python -m pipelines.demo                                   # synthetic shop, small scale
    python -m pipelines.demo --scale tiny
    python -m pipelines.demo --source online_retail --input ../shared/realdata/online_retail

The run goes through a real Dagster instance ($DAGSTER_HOME), so it appears in the UI afterwards
(`make dev`), and it is one run over the whole date range of the landed data (single-run backfill).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from datetime import date
from pathlib import Path

from pipelines.core.settings import export_env
from pipelines.sources.base import read_manifest


def land_source(source: str, input_dir: Path | None, scale: str, force: bool) -> dict:
    settings = export_env()
    manifest = read_manifest(settings.landing_dir)
    wanted_synthetic = source == "synthetic"
    if (
        manifest
        and not force
        and manifest.get("source") == source
        and (not wanted_synthetic or manifest.get("scale") == scale)
        and (wanted_synthetic or manifest.get("input") == str(input_dir))
    ):
        print(f"landing folder already holds the {source} source; reusing it (--force to land again)")
        return manifest
    from pipelines.sources.registry import land

    started = time.time()
    print(f"landing source '{source}'" + (f" at scale {scale}" if wanted_synthetic else f" from {input_dir}"))
    if wanted_synthetic:
        land(source, None, settings.landing_dir, scale=scale, force=force)
    else:
        if input_dir is None:
            sys.exit(f"--input is required for source {source}")
        land(source, input_dir, settings.landing_dir)
    print(f"landed in {time.time() - started:.1f} s")
    return read_manifest(settings.landing_dir) or {}


def run_pipeline(manifest: dict, instance=None) -> bool:
    """Load the landed history, run the nightly job for the newest day, then the weekly review; True on success.

    The history goes through `pipelines.backfill.bulk_ingest` (the ingestion assets' own code without
    per-partition bookkeeping); the Dagster run then ingests the newest day and builds everything
    downstream: dbt marts with their tests, forecasts, decisions and the report. `instance` defaults
    to $DAGSTER_HOME, so the run shows in the UI; tests pass an ephemeral one.
    """
    first, last = manifest.get("first_date"), manifest.get("last_date")
    if not (first and last):
        raise SystemExit("the landing manifest has no date range: land a source first")
    # The daily partitions must reach back to the source's first day (Online Retail starts in 2010).
    if first < os.environ.get("SHOPLENS_START_DATE", "2024-01-01"):
        os.environ["SHOPLENS_START_DATE"] = first

    import dagster as dg

    from pipelines.backfill import bulk_ingest
    from pipelines.definitions import defs

    started = time.time()
    print(f"ingesting {first} .. {last} (validation, quarantine, raw Parquet):")
    bulk_ingest(date.fromisoformat(first), date.fromisoformat(last))
    print(f"history ingested in {time.time() - started:.0f} s")
    instance = instance or dg.DagsterInstance.get()
    runs = [
        # The nightly run trains the demand model (none exists yet), then only predicts on later nights.
        (
            "nightly_shop_refresh",
            f"the nightly job for {last}: marts, model, forecasts, decisions, report",
            last,
            {},
        ),
        # The weekly review keeps that fresh model (retrain=auto; its schedule says always) and adds the
        # backtest and the replenishment replay to the report.
        (
            "weekly_model_review",
            "the weekly review: forecast backtest, replenishment replay, report",
            None,
            {"ops": {"decisions__demand_model": {"config": {"retrain": "auto"}}}},
        ),
    ]
    for name, what, partition, run_config in runs:
        print(f"running {what} (Dagster run)")
        started = time.time()
        result = defs.resolve_job_def(name).execute_in_process(
            instance=instance,
            partition_key=partition,
            tags={"shoplens/kind": "demo"},
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}, **run_config},
            raise_on_error=False,
        )
        status = "succeeded" if result.success else "FAILED"
        print(f"{name} run {result.run_id} {status} in {time.time() - started:.0f} s")
        if not result.success:
            for event in result.all_events:
                if event.is_step_failure:
                    print(
                        f"  step {event.step_key} failed: {event.step_failure_data.error.message.strip()[:2000]}"
                    )
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", default="synthetic")
    parser.add_argument(
        "--input", type=Path, default=None, help="folder of export files for a real-format source"
    )
    parser.add_argument("--scale", default="small", help="synthetic shop size: tiny, small, medium, large")
    parser.add_argument("--force", action="store_true", help="land the source again even if already landed")
    args = parser.parse_args(argv)
    logging.getLogger("cmdstanpy").disabled = True

    manifest = land_source(args.source, args.input.resolve() if args.input else None, args.scale, args.force)
    ok = run_pipeline(manifest)
    from pipelines.summary import print_summary

    print_summary()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
