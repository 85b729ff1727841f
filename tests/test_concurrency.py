"""Concurrency: runs launched together, and a notebook holding the warehouse, against a real instance.

Each test works on a copy of the uninterrupted tiny run (`tiny_pipeline`) with its own DAGSTER_HOME
holding the committed dagster.yaml (the `duckdb_writer` pool, limit 1), initialised once before use.

- test_writer_waits_for_a_reader_then_names_the_fix: no pipeline; warehouse.connect against a process
  holding a read-only connection: it retries, gets the file once the reader lets go, and after
  SHOPLENS_LOCK_WAIT_SECONDS fails with a message naming the cause and the fix.
- test_nightly_sensor_ingest_and_backfill_together: the nightly job, the landing sensor's ingest run
  and a single-run backfill start at the same moment with SHOPLENS_LOCK_WAIT_SECONDS=0 (any lock
  conflict fails at once, so retries cannot hide one): all succeed, no lock error anywhere, no two
  writer-pool steps ever overlap, and the shop ends identical to the reference (re-running a partition
  and re-ingesting a range change nothing).
- test_notebook_reader_does_not_fail_the_nightly: a notebook holds a read-only connection when dbt
  starts, and grabs it again between the decision steps: the nightly run waits and succeeds.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
import yaml

from tests import helpers_pipeline as hp
from tests.conftest import TinyShop

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _stop_leftover_processes():
    """A test failing half-way must not leave its runs (in their own sessions) running."""
    yield
    hp.stop_all()


POOL = "duckdb_writer"


@pytest.fixture(scope="module")
def reference(tiny_pipeline: TinyShop) -> hp.Fingerprint:
    return hp.reference_fingerprint(tiny_pipeline.data_dir, tiny_pipeline.warehouse)


def _copy_of_reference(tiny: TinyShop, root: Path) -> hp.Shop:
    """A shop holding a copy of the reference run's data and landing files (modification times kept)."""
    shop = hp.new_shop(root, landing=root / "landing", data_from=tiny.data_dir)
    shutil.copytree(tiny.data_dir / "landing", shop.landing)
    return shop


def test_dbt_profile_retries_a_locked_warehouse() -> None:
    """dbt-duckdb opens the warehouse once per `dbt build`; without retries it fails at once on a reader."""
    profiles = yaml.safe_load((hp.ROOT / "dbt_project" / "profiles.yml").read_text())
    retries = profiles["shoplens"]["outputs"]["dev"].get("retries") or {}
    assert int(str(retries.get("connect_attempts", 1))) >= 7, "profiles.yml: retries.connect_attempts < 7"


def test_writer_waits_for_a_reader_then_names_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.core import warehouse

    db = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(db)).close()
    shop = hp.Shop(root=tmp_path, landing=tmp_path / "landing")
    shop.logs.mkdir()
    release = tmp_path / "release"
    notebook = hp.start(
        [
            hp.PY,
            "-m",
            "tests.helpers_pipeline",
            "hold",
            str(db),
            "--release-when",
            str(release),
            "--max-hold",
            "300",
        ],
        shop,
        "notebook",
    )
    hp.wait_until(
        notebook, hp.log_matches(notebook, "notebook holds the warehouse"), "the notebook's connection"
    )

    # Past the wait, the writer fails with a message that names the file, the cause and the fix.
    monkeypatch.setattr(warehouse, "LOCK_WAIT_SECONDS", 1.0)
    waits: list[str] = []
    with pytest.raises(warehouse.WarehouseBusyError) as err, warehouse.connect(db, log=waits.append):
        pass
    message = str(err.value)
    for part in (
        str(db),
        "held by another process",
        "SHOPLENS_LOCK_WAIT_SECONDS",
        "notebook",
        "data/exports/",
    ):
        assert part in message, message
    assert waits and all("retrying" in w for w in waits), waits

    # Within the wait, the writer retries and gets the file once the notebook closes its connection.
    monkeypatch.setattr(warehouse, "LOCK_WAIT_SECONDS", 300.0)
    waits.clear()

    def on_wait(msg: str) -> None:
        waits.append(msg)
        release.touch()  # the analyst closes the notebook while the run waits

    with warehouse.connect(db, log=on_wait) as con:
        con.execute("CREATE TABLE written_after_the_wait AS SELECT 1 AS x")
    assert waits, "the writer never had to wait: the notebook was not holding the file"
    assert hp.finish(notebook, 120) == 0, notebook.tail()

    # A file that is not a DuckDB database is not contention: the error is DuckDB's own, at once.
    damaged = tmp_path / "damaged.duckdb"
    damaged.write_bytes(b"not a database" * 500)
    with pytest.raises(duckdb.IOException, match="not a valid DuckDB database"), warehouse.connect(damaged):
        pass


@pytest.mark.timeout(2400)
def test_nightly_sensor_ingest_and_backfill_together(
    tiny_pipeline: TinyShop, reference: hp.Fingerprint, tmp_path: Path
) -> None:
    last = date.fromisoformat(tiny_pipeline.manifest["last_date"])
    shop = _copy_of_reference(tiny_pipeline, tmp_path / "shop")
    # A re-delivered landing file makes one day stale for the sensor.
    stale_day = (last - timedelta(days=5)).isoformat()
    os.utime(shop.landing / "orders" / f"orders_{stale_day}.csv")
    backfill_range = ((last - timedelta(days=14)).isoformat(), (last - timedelta(days=1)).isoformat())
    summaries = {name: shop.root / f"{name}.json" for name in ("nightly", "sensor", "backfill")}
    no_wait = {"SHOPLENS_LOCK_WAIT_SECONDS": "0"}  # a lock conflict fails at once instead of being waited out

    # The nightly run first; the sensor's ingest run and the backfill start the moment its dbt step has
    # taken the writer slot, so all three run at once and the intraday run's writer step
    # (sales_spike_alerts) must take turns with the nightly's.
    steps = {
        "nightly": hp.start(
            hp.job_cmd("nightly_shop_refresh", last.isoformat(), "--summary", str(summaries["nightly"])),
            shop,
            "nightly",
            **no_wait,
        )
    }
    hp.wait_until(
        steps["nightly"],
        hp.log_matches(steps["nightly"], r"shoplens_dbt_models - STEP_START"),
        "dbt",
        poll=0.1,
    )
    steps["sensor"] = hp.start(
        [hp.PY, "-m", "tests.helpers_pipeline", "sensor", "--summary", str(summaries["sensor"])],
        shop,
        "sensor",
        **no_wait,
    )
    steps["backfill"] = hp.start(
        hp.job_cmd(
            "ingest_new_landing_files",
            None,
            "--range",
            *backfill_range,
            "--summary",
            str(summaries["backfill"]),
        ),
        shop,
        "backfill",
        **no_wait,
    )
    codes = {name: hp.finish(step) for name, step in steps.items()}
    for name, step in steps.items():
        assert codes[name] == 0, f"{name} failed:\n{step.tail()}"
        assert not hp.LOCK_ERRORS.search(step.text()), f"{name} met the DuckDB lock:\n{step.tail()}"

    sensor_runs = json.loads(summaries["sensor"].read_text())
    assert [r["partition"] for r in sensor_runs] == [stale_day], (
        "the sensor should request exactly the stale day"
    )
    runs = [
        json.loads(summaries["nightly"].read_text()),
        *sensor_runs,
        json.loads(summaries["backfill"].read_text()),
    ]
    assert all(r["success"] and not r["lock_errors"] and not r["failures"] for r in runs)

    # They really ran at the same time: each run's window overlaps the nightly run's.
    def window(run: dict, pool: str | None = None) -> tuple[float, float]:
        times = [
            t for s in run["steps"].values() if pool in (None, s["pool"]) for t in (s["start"], s["end"])
        ]
        return min(times), max(times)

    nightly = window(runs[0])
    for run in runs[1:]:
        start, end = window(run)
        assert start < nightly[1] and nightly[0] < end, f"{run['job']} did not overlap the nightly run"

    # The writer pool, not luck: no two steps of the pool ever ran at the same time, across all runs,
    # though the intraday run's writer step fell inside the nightly run's writer phase.
    pool_steps = sorted(
        (s["start"], s["end"], r["run_id"][:8], key)
        for r in runs
        for key, s in r["steps"].items()
        if s["pool"] == POOL
    )
    assert {key for *_, key in pool_steps} >= {"shoplens_dbt_models", "decisions__sales_spike_alerts"}
    for (_, end, run_a, key_a), (start, _, run_b, key_b) in zip(pool_steps, pool_steps[1:], strict=False):
        assert start >= end, f"{run_a}:{key_a} and {run_b}:{key_b} held the warehouse at the same time"
    writer_phase = window(runs[0], POOL)
    spike = sensor_runs[0]["steps"]["decisions__sales_spike_alerts"]
    assert writer_phase[0] < spike["start"] < writer_phase[1], "the runs never competed for the writer slot"
    blocked = [f"{r['job']}:{b['step']}" for r in runs for b in r["blocked"]]
    print(f"{len(pool_steps)} writer-pool steps in {len(runs)} runs; waited for the pool: {blocked}")

    # Re-running the partition, re-ingesting the day and the range: the same tables, rows and values.
    # The emergency purchase orders of the intraday alert are not in the nightly-only reference.
    assert hp.compare(hp.fingerprint(shop.data), reference, ignore=hp.INTRADAY_ONLY) == []


class DbtFailedOnTheLock(AssertionError):
    """dbt could not open the warehouse a reader held (profiles.yml lost its connect retries)."""


@pytest.mark.timeout(2400)
def test_notebook_reader_does_not_fail_the_nightly(
    tiny_pipeline: TinyShop, reference: hp.Fingerprint, tmp_path: Path
) -> None:
    last = tiny_pipeline.manifest["last_date"]
    shop = _copy_of_reference(tiny_pipeline, tmp_path / "shop")
    flags = {name: shop.root / name for name in ("release-1", "grab-again", "release-2")}
    notebook = hp.start(
        [
            hp.PY, "-m", "tests.helpers_pipeline", "hold", str(shop.warehouse),
            "--release-when", str(flags["release-1"]),
            "--again-when", str(flags["grab-again"]),
            "--release-again-when", str(flags["release-2"]),
        ],
        shop,
        "notebook",
    )  # fmt: skip
    hp.wait_until(
        notebook, hp.log_matches(notebook, r"holds the warehouse read-only \(phase 1"), "the notebook"
    )
    nightly = hp.start(hp.job_cmd("nightly_shop_refresh", last), shop, "nightly")
    try:
        # Phase 1: the notebook holds the file when dbt starts. dbt opens the warehouse right after it
        # prints its thread count; the notebook lets go 8 s later (dbt-duckdb retries after 1, 2, 4, 8 s).
        hp.wait_until(nightly, hp.log_matches(nightly, r"Concurrency: \d+ threads"), "dbt starting", poll=0.1)
        time.sleep(8)
        flags["release-1"].touch()
        # Phase 2: once the marts are published, the notebook grabs the file between two decision steps
        # and keeps it until a writer has logged that it is waiting for it.
        hp.wait_until(
            nightly, hp.log_matches(nightly, r"published_warehouse - STEP_SUCCESS"), "publish", poll=0.1
        )
        flags["grab-again"].touch()
        hp.wait_until(
            notebook, hp.log_matches(notebook, r"phase 2;"), "the notebook's second connection", poll=0.1
        )
        hp.wait_until(
            nightly, hp.log_matches(nightly, "warehouse is locked by another process; retrying"), "a wait"
        )
        flags["release-2"].touch()
        assert hp.finish(nightly) == 0, f"the nightly run failed with a notebook open:\n{nightly.tail(60)}"
    except AssertionError as err:
        text = nightly.text()
        if "shoplens_dbt_models - STEP_FAILURE" in text and "Could not set lock" in text:
            raise DbtFailedOnTheLock(
                "dbt build failed at once on the lock the notebook held: dbt_project/profiles.yml needs "
                "`retries: {connect_attempts: 7}` under outputs.dev (see docs/reliability.md)"
            ) from err
        raise
    finally:
        for flag in flags.values():
            flag.touch()
        if nightly.proc.poll() is None:
            hp.kill_group(nightly)
    assert hp.finish(notebook, 300) == 0, notebook.tail()
    assert "phase 2" in notebook.text()
    # The run that waited for the reader ends exactly like the reference run.
    assert hp.compare(hp.fingerprint(shop.data), reference) == []
