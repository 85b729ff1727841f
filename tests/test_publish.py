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


def test_intermediate_tables_stay_in_the_build_and_leftovers_leave_main(tmp_path: Path) -> None:
    """Marts and views are published; an intermediate table is not copied, and an old copy is dropped."""
    import json

    from pipelines.assets.transform import publish, published_relations

    def node(name: str, folder: str, materialized: str) -> dict:
        return {
            "resource_type": "model",
            "name": name,
            "fqn": ["shoplens", folder, name],
            "config": {"materialized": materialized},
            "depends_on": {"nodes": []},
        }

    manifest = tmp_path / "manifest.json"
    nodes = {
        "model.shoplens.int_orders": node("int_orders", "intermediate", "table"),
        "model.shoplens.int_as_of_date": node("int_as_of_date", "intermediate", "view"),
        "model.shoplens.customer_rfm": node("customer_rfm", "marts", "table"),
    }
    manifest.write_text(json.dumps({"nodes": nodes, "sources": {}, "parent_map": {}, "child_map": {}}))
    relations = published_relations(manifest)
    assert relations == [
        ("customer_rfm", "table", True),
        ("int_as_of_date", "view", True),
        ("int_orders", "table", False),
    ]
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA build")
    con.execute("CREATE TABLE build.int_orders AS SELECT 1 AS order_id")
    con.execute("CREATE VIEW build.int_as_of_date AS SELECT DATE '2024-01-01' AS as_of_date")
    con.execute("CREATE TABLE build.customer_rfm AS SELECT 'c1' AS customer_id")
    con.execute("CREATE TABLE main.int_orders AS SELECT 0 AS order_id")  # published by an older version
    counts = publish(con, relations)
    assert counts == {"customer_rfm": 1}
    published = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
    assert published == {"customer_rfm", "int_as_of_date"}
    con.close()
