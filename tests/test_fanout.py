"""The forecast fan-out by product category (decisions/category_demand_forecast, job forecast_by_category).

- Forecasting one category at a time gives exactly the rows of the single-step forecast for its SKUs.
- The job is partitioned by category, runs the multiprocess executor, and stays out of the daily jobs.
- `python -m pipelines.fanout` on a real instance: one run per category, two at a time, runs that
  overlap in time in different processes, files that together equal decisions.demand_forecast, and a
  re-run that rewrites the same file (no duplicates).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import polars as pl
import pytest

from tests import helpers_pipeline as hp
from tests.conftest import TinyShop

COLS = ["sku", "date", "p10", "p50", "p90", "mean", "model"]


def _single_step(warehouse: Path) -> pl.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.sql(f"SELECT {', '.join(COLS)} FROM decisions.demand_forecast").pl().sort(["sku", "date"])


def test_each_category_alone_gives_the_single_step_rows(tiny_pipeline: TinyShop) -> None:
    from models import forecasting as fc
    from pipelines.assets.forecasting import forecast_category, shop_categories

    trained = fc.load_model(tiny_pipeline.data_dir / "models" / "demand_model.joblib")
    with duckdb.connect(str(tiny_pipeline.warehouse), read_only=True) as con:
        keys = sorted(shop_categories(con))
        parts = [forecast_category(con, trained, key)[0] for key in keys]
        with pytest.raises(ValueError, match="has no SKUs"):
            forecast_category(con, trained, "no such category", None)
    assert len(keys) >= 3, f"the tiny shop should have several categories, has {keys}"
    fanned = pl.concat(parts).select(COLS).sort(["sku", "date"])
    single = _single_step(tiny_pipeline.warehouse)
    assert fanned.height == single.height > 0
    assert fanned.equals(single), "the per-category forecasts differ from the single-step forecast"


def test_the_fanout_job_is_partitioned_by_category_and_out_of_the_daily_jobs() -> None:
    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.partitions import CATEGORY_PARTITIONS

    job = defs.resolve_job_def("forecast_by_category")
    assert isinstance(job.partitions_def, dg.DynamicPartitionsDefinition)
    assert job.partitions_def.name == CATEGORY_PARTITIONS
    assert job.executor_def.name == "multiprocess"
    key = dg.AssetKey(["decisions", "category_demand_forecast"])
    assert job.asset_layer.executable_asset_keys == {key}
    for daily in ("nightly_shop_refresh", "weekly_model_review", "ingest_new_landing_files"):
        assert key not in defs.resolve_job_def(daily).asset_layer.executable_asset_keys, daily


@pytest.mark.slow
def test_fanout_runs_categories_in_parallel_processes(tiny_pipeline: TinyShop, tmp_path: Path) -> None:
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    shop = hp.new_shop(tmp_path / "shop", data_from=tiny_pipeline.data_dir)
    with duckdb.connect(str(shop.warehouse), read_only=True) as con:
        cats = [
            r[0]
            for r in con.sql("SELECT DISTINCT category FROM main.fct_sku_daily_demand ORDER BY 1").fetchall()
        ]
    chosen = cats[:3]
    cmd = [hp.PY, "-m", "pipelines.fanout", "--workers", "2", "--categories", *chosen]
    proc = subprocess.run(cmd, cwd=hp.ROOT, env=shop.env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    folder = shop.data / "forecasts" / "demand_forecast"
    files = sorted(folder.glob("category=*/*.parquet"))
    assert [f.parent.name for f in files] == [f"category={c}" for c in chosen]
    fanned = pl.read_parquet(files).select(COLS).sort(["sku", "date"])
    with duckdb.connect(str(shop.warehouse), read_only=True) as con:
        skus = [
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT sku FROM main.fct_sku_daily_demand WHERE category IN ({', '.join('?' * len(chosen))})",
                chosen,
            ).fetchall()
        ]
    single = _single_step(shop.warehouse).filter(pl.col("sku").is_in(skus))
    assert fanned.height == single.height > 0
    assert fanned.equals(single)

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(shop.home))) as instance:
        assert sorted(instance.get_dynamic_partitions("product_category")) == cats
        records = instance.get_run_records(dg.RunsFilter(job_name="forecast_by_category"))
        runs = {r.dagster_run.tags["dagster/partition"]: r for r in records}
        assert sorted(runs) == sorted(chosen) and len(records) == len(chosen)
        assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
        spans = sorted((r.start_time, r.end_time) for r in records)
        overlapping = any(spans[i + 1][0] < spans[i][1] for i in range(len(spans) - 1))
        assert overlapping, f"no two category runs were in progress at once: {spans}"
        pids = set()
        for record in records:
            for entry in instance.all_logs(record.dagster_run.run_id):
                event = entry.dagster_event
                if event is not None and event.is_step_materialization:
                    pids.add(event.step_materialization_data.materialization.metadata["pid"].value)
        assert len(pids) == len(chosen), f"each category's step should run in its own process: {pids}"

    # A re-run of one category rewrites its file with the same rows: nothing appended, nothing stale.
    before = pl.read_parquet(files[0])
    again = subprocess.run(
        [hp.PY, "-m", "pipelines.fanout", "--categories", chosen[0]],
        cwd=hp.ROOT,
        env=shop.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert sorted(folder.glob("category=*/*")) == files, "a re-run left extra files"
    assert pl.read_parquet(files[0]).equals(before)


def test_the_deployment_chooses_the_executor_and_a_wrong_choice_says_what_to_do() -> None:
    import dagster as dg

    from pipelines.jobs import fanout_executor

    assert fanout_executor("multiprocess") is dg.multiprocess_executor
    with pytest.raises(ValueError, match="SHOPLENS_EXECUTOR='spark'.*multiprocess, celery, k8s"):
        fanout_executor("spark")
    try:
        import dagster_k8s  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install dagster-k8s"):
            fanout_executor("k8s")
    else:  # a deployment image has it: the executor is the real one
        assert fanout_executor("k8s").name == "k8s"
