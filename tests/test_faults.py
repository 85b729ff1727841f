"""Faults: SIGKILL during ingestion, during `dbt build` and during the forecast write, then run again.

The reference is the uninterrupted run of the tiny shop (the session fixture `tiny_pipeline`: land, bulk
ingest of the whole history, nightly job for the newest day). Every comparison is a per-table
fingerprint: row count plus an order-independent checksum of whole rows (tests/helpers_pipeline.py), for
the raw Parquet (what dbt's glob reads), every table and view of the warehouse, and every export.

- test_publish_is_atomic_under_sigkill: deterministic crash points, no pipeline: a process SIGKILLs
  itself between writing a temporary file and renaming it into place, for raw partitions and for exports.
- test_sigkill_then_rerun_matches_uninterrupted_run: one shop goes through a backfill killed mid-way,
  the backfill again (twice), a nightly run killed inside `dbt build`, one killed inside the forecast's
  warehouse transaction, and a last nightly run: it must end exactly like the reference.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
from pathlib import Path

import duckdb
import pytest

from tests import helpers_pipeline as hp
from tests.conftest import TinyShop

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _stop_leftover_processes():
    """A test failing half-way must not leave its runs (in their own sessions) running."""
    yield
    hp.stop_all()


@pytest.fixture(scope="module")
def reference(tiny_pipeline: TinyShop) -> hp.Fingerprint:
    return hp.reference_fingerprint(tiny_pipeline.data_dir, tiny_pipeline.warehouse)


def _glob_readable(folder: Path, pattern: str) -> int:
    """Rows behind a reader's glob: every file it matches must be a complete Parquet file."""
    with duckdb.connect() as con:
        return con.sql(
            f"SELECT count(*) FROM read_parquet('{folder}/{pattern}', union_by_name = true)"
        ).fetchall()[0][0]


def test_publish_is_atomic_under_sigkill(
    tiny_pipeline: TinyShop, reference: hp.Fingerprint, tmp_path: Path
) -> None:
    first, last = tiny_pipeline.manifest["first_date"], tiny_pipeline.manifest["last_date"]
    shop = hp.Shop(root=tmp_path, landing=tiny_pipeline.data_dir / "landing")
    shop.logs.mkdir()
    # Start from the reference snapshots only (the referential rules need them), no orders yet.
    for table in ("products", "customers"):
        shutil.copytree(tiny_pipeline.raw_dir / table, shop.raw / table)

    # Raw partitions: killed after 40 renames, i.e. with the 41st file written under its temporary name.
    step = hp.start(
        [
            hp.PY,
            "-m",
            "tests.helpers_pipeline",
            "crash-ingest",
            "orders",
            first,
            last,
            "--after-renames",
            "40",
        ],
        shop,
        "crash-ingest",
    )
    assert hp.finish(step, 600) == -signal.SIGKILL, step.tail()
    assert hp.CRASH_MARKER in step.text()
    published = sorted(shop.raw.glob("orders/*/*.parquet"))
    quarantined = sorted(shop.raw.glob("_quarantine/orders/*/*.parquet"))
    assert 0 < len(published) < reference.raw["orders"][0], "the crash was not mid-publish"
    assert len(published) + len(quarantined) == 40
    # The file that was being published exists only in the staging folder, which no reader's glob matches.
    staged = [p for p in hp.leftovers(shop.data) if p.suffix == ".parquet"]
    assert staged and all(p.parent.name.startswith(".staging-orders-") for p in staged), staged
    assert _glob_readable(shop.raw, "orders/*/*.parquet") > 0  # every visible partition is whole

    # Running it again publishes everything, identical to the reference.
    hp.run(
        [hp.PY, "-m", "tests.helpers_pipeline", "crash-ingest", "orders", first, last], shop, "ingest-again"
    )
    raw = hp.fingerprint_raw(shop.raw)
    for table in ("orders", "_quarantine/orders"):
        assert raw[table] == reference.raw[table], (table, raw[table], reference.raw[table])

    # Exports: the previous complete file stays in place when the process dies before the rename.
    step = hp.start(
        [hp.PY, "-m", "tests.helpers_pipeline", "crash-export", str(shop.exports)], shop, "crash-export"
    )
    assert hp.finish(step, 300) == -signal.SIGKILL, step.tail()
    assert hp.CRASH_MARKER in step.text()
    assert _glob_readable(shop.exports, "*.parquet") == 10  # the old 10-row file, not the 1000-row one
    with duckdb.connect() as con:
        assert (
            con.sql(f"SELECT count(*) FROM read_csv('{shop.exports}/crash_probe.csv')").fetchall()[0][0] == 10
        )
    left = hp.leftovers(shop.exports)
    assert (
        len(left) == 1 and left[0].name.startswith(".crash_probe.") and left[0].name.endswith(".parquet.tmp")
    )


@pytest.mark.timeout(2400)
def test_sigkill_then_rerun_matches_uninterrupted_run(
    tiny_pipeline: TinyShop, reference: hp.Fingerprint, tmp_path: Path
) -> None:
    first, last = tiny_pipeline.manifest["first_date"], tiny_pipeline.manifest["last_date"]
    landing = tmp_path / "landing"
    manifest = hp.land_tiny(landing)
    assert (manifest["first_date"], manifest["last_date"]) == (first, last)
    shop = hp.new_shop(tmp_path / "shop", landing=landing)

    # 1. SIGKILL during ingestion: once the first daily table has partitions on disk, before the rest.
    step = hp.start(hp.backfill_cmd(first, last), shop, "backfill-killed")
    hp.wait_until(step, lambda: any(shop.raw.glob("orders/date=*/*.parquet")), "orders partitions", poll=0.01)
    hp.kill_group(step)
    assert step.proc.returncode == -signal.SIGKILL
    partial = hp.fingerprint_raw(shop.raw)  # every file a reader's glob matches is complete
    assert hp.diff("raw", partial, reference.raw), "the backfill finished before it was killed"

    # The range again, to completion, then a second time: identical to the reference both times.
    hp.run(hp.backfill_cmd(first, last), shop, "backfill-1")
    assert hp.diff("raw", hp.fingerprint_raw(shop.raw), reference.raw) == []
    hp.run(hp.backfill_cmd(first, last), shop, "backfill-2")
    assert hp.diff("raw", hp.fingerprint_raw(shop.raw), reference.raw) == []

    # 2. SIGKILL during `dbt build`, after it created a few tables (dbt dies with the runner's group).
    step = hp.start(hp.job_cmd("nightly_shop_refresh", last), shop, "nightly-killed-in-dbt")
    hp.wait_until(
        step, hp.log_matches(step, r"OK created sql table model", 3), "dbt creating tables", poll=0.05
    )
    hp.kill_group(step)
    assert "RUN_SUCCESS" not in step.text()
    killed_dbt = hp.run_id_of(step)
    hp.fingerprint_warehouse(shop.warehouse)  # opens cleanly: PRAGMA database_size, every relation readable
    runs, holders = hp.instance_state(shop.home)
    # Dagster cannot know the run died: it stays STARTED and keeps its writer-pool slot ...
    assert runs[killed_dbt] == "STARTED" and holders == [killed_dbt], (runs, holders)
    # ... until the next tick of the landing sensor (the daemon runs it every minute) releases it.
    sensor = hp.run([hp.PY, "-m", "tests.helpers_pipeline", "sensor"], shop, "sensor-tick-1")
    assert "requested 0 run(s)" in sensor.text(), sensor.tail()
    runs, holders = hp.instance_state(shop.home)
    assert runs[killed_dbt] == "FAILURE" and holders == [], (runs, holders)

    # 3. SIGKILL inside the forecast's warehouse transaction (after CREATE OR REPLACE, before COMMIT).
    step = hp.start(
        hp.job_cmd("nightly_shop_refresh", last, "--crash-at-commit", "decisions.demand_forecast"),
        shop,
        "nightly-killed-in-forecast-write",
    )
    assert hp.finish(step) == -signal.SIGKILL, step.tail()
    assert hp.CRASH_MARKER in step.text()
    hp.kill_group(step)  # nothing of the group may survive
    after_crash = hp.fingerprint(shop.data)  # the file opens cleanly again
    assert "decisions.demand_forecast" not in after_crash.warehouse, "an uncommitted table survived the crash"
    assert not (shop.exports / "demand_forecast.parquet").exists()
    # What committed before the crash is whole: the published marts and the decisions written before it.
    committed = [k for k in after_crash.warehouse if k.startswith(("main.", "decisions."))]
    assert "main.fct_sku_daily_demand" in committed
    assert hp.compare(after_crash, reference, only=committed) == []
    hp.run([hp.PY, "-m", "tests.helpers_pipeline", "sensor"], shop, "sensor-tick-2")
    assert hp.instance_state(shop.home)[1] == []

    # 4. The nightly run again, to completion: exactly the tables, rows and values of the reference.
    summary = shop.root / "nightly-final.json"
    hp.run(hp.job_cmd("nightly_shop_refresh", last, "--summary", str(summary)), shop, "nightly-final")
    assert json.loads(summary.read_text())["success"]
    final = hp.fingerprint(shop.data)
    # This shop never ran the weekly review (backtest, replay): everything else equals the reference.
    assert hp.compare(final, reference, ignore=hp.WEEKLY_ONLY) == []
    # Crash leftovers stay where no reader looks: hidden temporary names, outside the table folders.
    for path in hp.leftovers(shop.data):
        rel = path.relative_to(shop.data).as_posix()
        assert not re.fullmatch(
            r"raw/[^/.][^/]*/[^/]+/[^/]+\.parquet|exports/[^/.][^/]*\.(parquet|csv)", rel
        ), rel
