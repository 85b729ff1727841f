"""Write-audit-publish: a mart whose dbt tests fail never replaces the version the decisions read."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from tests.conftest import TinyShop

pytestmark = pytest.mark.slow


def _count(warehouse: Path, relation: str) -> int:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.sql(f"SELECT count(*) FROM {relation}").fetchall()[0][0]


def test_failing_mart_keeps_the_last_good_version_served(
    tiny_pipeline: TinyShop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    shutil.copytree(tiny_pipeline.data_dir, data)
    warehouse = data / "warehouse" / "shoplens.duckdb"
    monkeypatch.setenv("SHOPLENS_DATA_DIR", str(data))
    monkeypatch.setenv("SHOPLENS_LANDING", str(data / "landing"))
    monkeypatch.setenv("SHOPLENS_WAREHOUSE", str(warehouse))
    served_before = _count(warehouse, "main.fct_order_lines")

    # Corrupt the raw layer behind ingestion's back: a second copy of one day's order lines breaks the
    # `unique` test on fct_order_lines.order_line_id.
    day = sorted((data / "raw" / "orders").glob("date=*"))[-1]
    lines = pl.read_parquet(day / "part-0.parquet")
    extra = data / "raw" / "orders" / "date=2099-01-01"
    extra.mkdir()
    lines.write_parquet(extra / "part-0.parquet")

    from pipelines.assets.transform import dbt_resource, published_warehouse, shoplens_dbt_models

    result = dg.materialize(
        [shoplens_dbt_models, published_warehouse],
        resources={"dbt": dbt_resource},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    # The failure is reported ...
    assert not result.success
    failed = [e.step_key for e in result.all_events if e.is_step_failure]
    assert failed == ["shoplens_dbt_models"]
    assert not any(
        e.is_step_success and e.step_key == "published_warehouse" for e in result.all_events
    ), "a failed build must not be published"
    # ... the build schema sees the broken data, but main still serves the last good marts.
    assert _count(warehouse, "build.stg_raw__orders") == served_before + lines.height
    assert _count(warehouse, "main.fct_order_lines") == served_before

    # Repair the raw layer: the next build passes and is published.
    shutil.rmtree(extra)
    result = dg.materialize(
        [shoplens_dbt_models, published_warehouse],
        resources={"dbt": dbt_resource},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    assert _count(warehouse, "main.fct_order_lines") == served_before
