"""Run the demand-forecast fan-out: one Dagster run per product category, several at once.

    python -m pipelines.fanout                 # every category, 2 runs at a time
    python -m pipelines.fanout --workers 4     # more at once (a bigger machine)
    python -m pipelines.fanout --categories books toys

Each category is a partition of `decisions/category_demand_forecast` (job `forecast_by_category`, the
multiprocess executor). This command registers the shop's categories as partitions, then executes one run
per category on the Dagster instance in $DAGSTER_HOME, `--workers` at a time, and prints a line per run.
The same runs can be launched from the UI (the asset's page: Materialize all partitions, a backfill that
the daemon runs up to `run_queue.max_concurrent_runs`); this command is for a machine without the daemon
(`make demo`, notebooks, cron). In a bigger deployment the daemon's run launcher puts each run in its own
pod or worker (docs/deployment.md).

Needs the published marts and a trained model (`make demo` or the nightly job). Each run only reads the
warehouse, so the categories do not wait for one another on DuckDB's writer lock.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import dagster as dg

from pipelines.core.settings import export_env
from pipelines.partitions import CATEGORY_PARTITIONS

JOB = "forecast_by_category"


def forecast_by_category_job() -> dg.JobDefinition:
    """The fan-out job, looked up by name so `dg.reconstructable` can rebuild it in each step process."""
    from pipelines.definitions import defs

    return defs.resolve_job_def(JOB)


def prepare(instance: dg.DagsterInstance, only: list[str] | None = None) -> list[str]:
    """Register the shop's categories as partitions; drop the files of categories no longer in the shop.

    Returns the partition keys to run (all of the shop's, or the requested ones, checked against them).
    """
    from pipelines.assets.forecasting import fanout_dir, register_categories, shop_categories
    from pipelines.core.warehouse import connect

    with connect(read_only=True) as con:
        register_categories(instance, con)
        keys = sorted(shop_categories(con))
    unknown = sorted(set(only or []) - set(keys))
    if unknown:
        raise SystemExit(
            f"not categories of this shop: {', '.join(unknown)} (its categories: {', '.join(keys)})"
        )
    folder = fanout_dir()
    if folder.exists():
        import urllib.parse

        for old in folder.glob("category=*"):
            if urllib.parse.unquote(old.name.split("=", 1)[1]) not in keys:
                for f in old.iterdir():
                    f.unlink()
                old.rmdir()
    return [k for k in keys if not only or k in only]


def run_one(key: str) -> dg.ExecutionResult:
    """Execute the fan-out job for one category in this process (each step in its own process)."""
    with dg.DagsterInstance.get() as instance:
        return dg.execute_job(
            dg.reconstructable(forecast_by_category_job),
            instance=instance,
            tags={"dagster/partition": key, "shoplens/kind": "fanout"},
        )


def run_fanout(keys: list[str], workers: int = 2, say=print) -> dict[str, bool]:
    """One run per key, `workers` at a time, each run started in its own process; {key: succeeded}.

    A process per run, the way Dagster's default run launcher starts runs (execute_job from several
    threads of one process stalls on the run's interrupt handling, which belongs to the main thread).
    """

    def one(key: str) -> tuple[str, bool]:
        started = time.time()
        proc = subprocess.run(
            [sys.executable, "-m", "pipelines.fanout", "--run-one", key],
            capture_output=True,
            text=True,
        )
        ok = proc.returncode == 0
        run = re.search(r"run ([0-9a-f-]{36})", proc.stdout)
        say(
            f"  {key:<24} {'ok' if ok else 'FAILED'} in {time.time() - started:.1f} s"
            f"{f' (run {run.group(1)})' if run else ''}"
        )
        if not ok:
            say("\n".join((proc.stdout + proc.stderr).splitlines()[-15:]))
        return key, ok

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return dict(pool.map(one, keys))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2, help="runs at once (default 2, one per core here)")
    parser.add_argument("--categories", nargs="*", help="only these categories (partition keys)")
    parser.add_argument("--run-one", metavar="KEY", help=argparse.SUPPRESS)  # a worker: one category's run
    args = parser.parse_args(argv)
    export_env()
    if args.run_one:
        result = run_one(args.run_one)
        print(f"run {result.run_id}: {'success' if result.success else 'FAILURE'}")
        return 0 if result.success else 1
    with dg.DagsterInstance.get() as instance:
        keys = prepare(instance, args.categories)
    print(
        f"forecast fan-out: {len(keys)} categories ({CATEGORY_PARTITIONS} partitions), {args.workers} at a time"
    )
    started = time.time()
    results = run_fanout(keys, args.workers)
    failed = sorted(k for k, ok in results.items() if not ok)
    print(f"done in {time.time() - started:.1f} s: {len(keys) - len(failed)} ok, {len(failed)} failed")
    if failed:
        print(
            f"failed: {', '.join(failed)} (the run logs are in the Dagster UI, `make dev`)", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
