"""The pipeline on real shops' exports: Online Retail and the Olist sample, landed, ingested, built, published.

Skipped, with the reason, when ../shared/realdata is absent (a user's clone). Forecasts and decisions are
left to `make demo SOURCE=...`: here the checks are on the marts, against figures computed directly
from the raw export files.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from tests.conftest import REALDATA

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def _run(source: str, folder: Path, data: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    if not folder.is_dir():
        pytest.skip(f"real data folder {folder} is absent (only the shared workspace has it)")
    monkeypatch.setenv("SHOPLENS_DATA_DIR", str(data))
    monkeypatch.setenv("SHOPLENS_LANDING", str(data / "landing"))
    warehouse = data / "warehouse" / "shoplens.duckdb"
    monkeypatch.setenv("SHOPLENS_WAREHOUSE", str(warehouse))
    from datetime import date

    from pipelines.assets.transform import dbt_resource, published_warehouse, shoplens_dbt_models
    from pipelines.backfill import bulk_ingest
    from pipelines.demo import land_source

    manifest = land_source(source, folder, "small", force=True)
    bulk_ingest(date.fromisoformat(manifest["first_date"]), date.fromisoformat(manifest["last_date"]))
    result = dg.materialize(
        [shoplens_dbt_models, published_warehouse],
        resources={"dbt": dbt_resource},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    return warehouse


def test_online_retail_marts_reconcile_with_the_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = REALDATA / "online_retail"
    warehouse = _run("online_retail", source, tmp_path / "data", monkeypatch)
    # Independent reference over the published files: exact duplicate lines once, product codes only, no
    # bad-debt adjustments, positive prices; C invoices are credit lines (negative quantity).
    ref_customers, ref_revenue = duckdb.sql(
        f"""
        with raw as (select distinct * from read_csv('{source}/*.csv.gz', header=true, all_varchar=true)),
        typed as (
            select InvoiceNo as inv, upper(trim(StockCode)) as code, CustomerID as cust,
                   cast(Quantity as integer) as q, cast(UnitPrice as double) as p
            from raw
        )
        select count(distinct cast(cast(cust as double) as bigint)), sum(q * p)
        from typed
        where inv not like 'A%'
          and code not in ('POST', 'DOT', 'M', 'D', 'C2', 'BANK CHARGES', 'AMAZONFEE', 'CRUK', 'PADS', 'S', 'B')
          and code not like 'GIFT_0001_%'
          and p > 0 and q <> 0 and ((inv like 'C%') = (q < 0))
        """
    ).fetchall()[0]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        revenue = con.sql("select sum(net_revenue) from main.fct_order_lines").fetchall()[0][0]
        customers = con.sql("select count(*) from main.dim_customers").fetchall()[0][0]
        rfm = con.sql("select count(*), count(distinct customer_id), count(segment) from main.customer_rfm").fetchall()[0]
        skipped = {
            r[0]
            for r in con.sql("select table_name from information_schema.tables where table_schema = 'main'").fetchall()
        }
    assert float(revenue) == pytest.approx(ref_revenue, abs=1.0)
    assert customers == ref_customers
    # Every customer with a purchase gets exactly one segment.
    assert rfm[0] == rfm[1] == rfm[2] and 0.9 * ref_customers < rfm[0] <= ref_customers
    # Marts built on tables Online Retail lacks are skipped, not built empty.
    assert "carbon_per_order" not in skipped and "nps_by_month" not in skipped
    assert "customer_rfm" in skipped


def test_olist_delivered_orders_have_a_shipment_with_distance_and_carbon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = REALDATA / "olist_sample"
    warehouse = _run("olist", source, tmp_path / "data", monkeypatch)
    delivered = duckdb.sql(
        f"""select count(*) from read_csv('{source}/olist_orders_dataset.csv', header=true, all_varchar=true)
            where coalesce(order_delivered_customer_date, '') <> ''"""
    ).fetchall()[0][0]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        covered = con.sql(
            """
            select count(distinct s.order_id)
            from main.carbon_per_shipment c join build.stg_raw__shipments s using (shipment_id)
            where s.delivered_ts is not null and s.distance_km > 0 and c.total_kg_co2e > 0
            """
        ).fetchall()[0][0]
        stars = con.sql("select sum(n) from main.nps_by_month where score_kind like 'star%'").fetchall()[0][0]
    assert covered == delivered
    assert stars > 2_000
