"""The dbt project builds on a tiny raw Parquet set and its marts say what the method says.

One session-scoped `dbt build` (seeds, models, data tests and unit tests) on data written by
dbt_project/scripts/make_tiny_raw.py into a temporary folder; the tests then read the warehouse and check
the marts against figures recomputed here straight from the raw Parquet, independently of the SQL.
dbt's target/ and logs/ go to the temporary folder too, so the run never touches dbt_project/.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DBT_DIR = PROJECT_ROOT / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
MARTS_DIR = "models/marts/"


def adjusted_wald_nps(n: int, promoters: int, detractors: int) -> tuple[float, float, float]:
    """NPS and its 95% adjusted-Wald interval (Sauro & Lewis), written independently of the SQL macro."""
    p_p = (promoters + 0.75) / (n + 3)
    p_d = (detractors + 0.75) / (n + 3)
    half = 1.96 * math.sqrt((p_p + p_d - (p_p - p_d) ** 2) / (n + 3))
    lower = max(-100.0, 100 * (p_p - p_d - half))
    upper = min(100.0, 100 * (p_p - p_d + half))
    return 100 * (promoters - detractors) / n, lower, upper


def _dbt(command: str, *args: str, target: Path, work: Path, env: dict, timeout: int = 600):
    """Run a dbt command on the project with its own target and log folders under `work`."""
    return subprocess.run(
        [str(DBT), command, "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR),
         "--target-path", str(target), "--log-path", str(work / "logs"), "--no-use-colors", *args],
        env=env, cwd=work, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="session")
def dbt_build(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Write the tiny raw set, run `dbt build` once, return paths and the run results."""
    work = tmp_path_factory.mktemp("dbt_build")
    data_dir = work / "data"
    subprocess.run(
        [sys.executable, str(DBT_DIR / "scripts" / "make_tiny_raw.py"), str(data_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    warehouse = work / "warehouse.duckdb"
    env = os.environ | {
        "SHOPLENS_DATA_DIR": str(data_dir),
        "SHOPLENS_WAREHOUSE": str(warehouse),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    target = work / "target"
    proc = _dbt("build", target=target, work=work, env=env)
    if proc.returncode != 0:
        pytest.fail(
            f"dbt build failed (exit {proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
        )
    return {
        "data_dir": data_dir,
        "warehouse": warehouse,
        "manifest": json.loads((target / "manifest.json").read_text()),
        "run_results": json.loads((target / "run_results.json").read_text()),
        "stdout": proc.stdout,
        "target": target,
        "env": env,
        "work": work,
    }


@pytest.fixture(scope="session")
def wh(dbt_build: dict) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(dbt_build["warehouse"]), read_only=True)
    con.execute("SET schema = 'build'")  # dbt builds into `build`; the pipeline publishes it to `main`
    yield con
    con.close()


def scalar(con: duckdb.DuckDBPyConnection, sql: str):
    """First value of the first row of a query."""
    return con.sql(sql).fetchall()[0][0]


def raw(dbt_build: dict, table: str) -> str:
    """A read_parquet expression over one raw table, as the sources read it."""
    return f"read_parquet('{dbt_build['data_dir']}/raw/{table}/*/*.parquet', union_by_name=true, hive_partitioning=false)"


def test_build_ran_every_node_including_unit_tests(dbt_build: dict) -> None:
    results = dbt_build["run_results"]["results"]
    bad = [(r["unique_id"], r["status"]) for r in results if r["status"] not in ("success", "pass")]
    assert not bad, bad
    unit_tests = {r["unique_id"].split(".")[-1] for r in results if r["unique_id"].startswith("unit_test.")}
    # the arithmetic the brief names is unit-tested, and those tests ran
    for name in (
        "test_nps_by_month_adjusted_wald",
        "test_customer_rfm_scores_ties_and_segments",
        "test_customer_purchase_summary_lifetimes_convention",
        "test_inventory_turnover_kpis",
        "test_carbon_per_shipment_hand_computed",
        "test_carbon_per_order_hand_computed",
        "test_fct_order_lines_revenue_by_status",
    ):
        assert name in unit_tests, f"unit test {name} did not run"


def test_every_mart_has_rows(dbt_build: dict, wh: duckdb.DuckDBPyConnection) -> None:
    marts = sorted(
        node["alias"]
        for node in dbt_build["manifest"]["nodes"].values()
        if node["resource_type"] == "model" and node["original_file_path"].startswith(MARTS_DIR)
    )
    assert len(marts) >= 22, marts
    empty = [m for m in marts if scalar(wh, f"select count(*) from {m}") == 0]
    assert not empty, f"marts without rows: {empty}"


def test_rfm_segments_cover_every_purchaser_exactly_once(
    dbt_build: dict, wh: duckdb.DuckDBPyConnection
) -> None:
    # purchasers recomputed from raw: identified customers with a non-cancelled line up to the last order date
    con = duckdb.connect()
    purchasers = {
        r[0]
        for r in con.sql(
            f"""select distinct customer_id from {raw(dbt_build, "orders")}
                where customer_id is not null and status <> 'cancelled'"""
        ).fetchall()
    }
    rows = wh.sql("select customer_id, segment from customer_rfm").fetchall()
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), "a customer has more than one RFM row"
    assert set(ids) == purchasers
    assert all(seg is not None for _, seg in rows)
    # every segment a customer lands in is one of the 11, and the summary adds up to all customers
    segments = {r[0] for r in wh.sql("select segment from segment_actions").fetchall()}
    assert len(segments) == 11 and {seg for _, seg in rows} <= segments
    summary_total = wh.sql("select sum(customers), sum(customer_share) from rfm_segment_summary").fetchall()[
        0
    ]
    assert summary_total[0] == len(purchasers)
    assert summary_total[1] == pytest.approx(1.0, abs=1e-3)


def test_nps_interval_matches_published_example_and_the_marts(
    dbt_build: dict, wh: duckdb.DuckDBPyConnection
) -> None:
    nps, lower, upper = adjusted_wald_nps(100, 40, 30)
    assert nps == pytest.approx(10.0)
    assert lower == pytest.approx(-6.3, abs=0.05) and upper == pytest.approx(25.7, abs=0.05)
    rows = wh.sql(
        "select score_kind, n, promoters, detractors, nps, nps_ci_lower, nps_ci_upper, is_small_sample from nps_by_month"
    ).fetchall()
    assert {r[0] for r in rows} == {"nps_survey", "star_proxy"}
    for kind, n, p, d, got_nps, got_lo, got_hi, small in rows:
        want = adjusted_wald_nps(n, p, d)
        assert (got_nps, got_lo, got_hi) == pytest.approx(want, abs=0.006), kind
        assert small == (n < 30)


def test_star_proxy_counts_match_raw_reviews(dbt_build: dict, wh: duckdb.DuckDBPyConnection) -> None:
    con = duckdb.connect()
    want = con.sql(
        f"""select count(*), count(*) filter (where score = 5), count(*) filter (where score <= 3)
            from {raw(dbt_build, "reviews")} where scale = 'stars_1_5'"""
    ).fetchall()[0]
    got = wh.sql(
        "select sum(n), sum(promoters), sum(detractors) from nps_by_month where score_kind = 'star_proxy'"
    ).fetchall()[0]
    assert tuple(got) == tuple(want)
    late_gap = scalar(
        wh,
        """select max(case when delivery_status = 'on_time' then nps end)
                  - max(case when delivery_status = 'late' then nps end)
           from nps_by_delivery where score_kind = 'star_proxy'""",
    )
    assert late_gap > 40  # the tiny shop scores late deliveries much lower, as real shops do


def test_purchase_summary_follows_lifetimes_convention(
    dbt_build: dict, wh: duckdb.DuckDBPyConnection
) -> None:
    con = duckdb.connect()
    lines = con.sql(
        f"""select customer_id, cast(order_ts as date) as day, status,
                   quantity * unit_price - coalesce(discount, 0) as amount
            from {raw(dbt_build, "orders")} where customer_id is not null"""
    ).fetchall()
    as_of = scalar(con, f"select max(cast(order_ts as date)) from {raw(dbt_build, 'orders')}")
    days: dict[str, dict] = {}
    for customer, day, status, amount in lines:
        if status == "cancelled":
            continue
        # A sale marked returned is reversed (returns_are_credit_lines is false by default).
        value = 0.0 if status == "returned" else float(amount)
        days.setdefault(customer, {}).setdefault(day, 0.0)
        days[customer][day] += value
    got = {
        r[0]: r[1:]
        for r in wh.sql(
            "select customer_id, frequency, recency, T, monetary_value from customer_purchase_summary"
        ).fetchall()
    }
    assert set(got) == set(days)
    for customer, per_day in days.items():
        ordered = sorted(per_day)
        frequency = len(ordered) - 1
        monetary = sum(per_day[d] for d in ordered[1:]) / frequency if frequency else 0.0
        want = (frequency, (ordered[-1] - ordered[0]).days, (as_of - ordered[0]).days, monetary)
        assert got[customer][:3] == want[:3], customer
        assert got[customer][3] == pytest.approx(want[3], abs=1e-3), customer


def test_daily_demand_is_a_zero_filled_spine(dbt_build: dict, wh: duckdb.DuckDBPyConnection) -> None:
    skus, days, rows, first, last = wh.sql(
        """select count(distinct sku), count(distinct "date"), count(*), min("date"), max("date")
           from fct_sku_daily_demand"""
    ).fetchall()[0]
    assert rows == skus * days and days == (last - first).days + 1
    con = duckdb.connect()
    raw_units = scalar(
        con, f"select sum(quantity) from {raw(dbt_build, 'orders')} where status <> 'cancelled'"
    )
    assert scalar(wh, "select sum(units) from fct_sku_daily_demand") == raw_units
    # the tiny set has a stock-out (SKU-007) and a SKU without inventory data for its first week (SKU-003)
    assert scalar(wh, "select count(*) from fct_sku_daily_demand where is_stockout and sku = 'SKU-007'") > 0
    assert (
        scalar(wh, "select count(*) from fct_sku_daily_demand where on_hand_eod is null and sku = 'SKU-003'")
        == 7
    )


def test_hotspot_coupons_one_per_customer_per_incident(wh: duckdb.DuckDBPyConnection) -> None:
    hotspots = wh.sql("select region, incident_date from delay_hotspots").fetchall()
    assert ("north", date(2024, 2, 10)) in hotspots  # the burst of late deliveries make_tiny_raw.py plants
    dupes = wh.sql(
        "select customer_id, region, incident_date from compensation_coupons group by all having count(*) > 1"
    ).fetchall()
    assert not dupes
    outside = scalar(
        wh,
        """select count(*) from compensation_coupons c
           left join delay_hotspots h on c.region = h.region and c.incident_date = h.incident_date
           where h.region is null""",
    )
    assert outside == 0


def test_carbon_matches_hand_computation_from_raw(dbt_build: dict, wh: duckdb.DuckDBPyConnection) -> None:
    factors = dict(wh.sql("select factor_key, value from emission_factors").fetchall())
    con = duckdb.connect()
    shipments = con.sql(
        f"select shipment_id, mode, weight_kg, distance_km, packaging, packaging_kg from {raw(dbt_build, 'shipments')}"
    ).fetchall()
    got = dict(wh.sql("select shipment_id, total_kg_co2e from carbon_per_shipment").fetchall())
    for shipment_id, mode, weight, distance, packaging, packaging_kg in shipments:
        want = (
            weight / 1000 * distance * factors[mode]
            + packaging_kg * factors[packaging]
            + factors["warehouse_handling"]
            + weight / 1000 * factors["last_mile_km_per_delivery"] * factors["last_mile_van"]
        )
        assert got[shipment_id] == pytest.approx(want, abs=1e-5), shipment_id


def _compiled_test(target: Path, model_yml: str, prefix: str) -> str:
    """The compiled SQL of the one generic test of `model_yml` whose file name starts with `prefix`."""
    found = sorted((target / "compiled" / "shoplens" / "models").glob(f"**/{model_yml}/{prefix}*.sql"))
    assert len(found) == 1, f"expected one compiled {prefix}* test of {model_yml}, found {found}"
    return found[0].read_text()


def test_unique_combination_test_reports_exactly_the_repeated_keys(dbt_build: dict) -> None:
    """The DuckDB form (hash first, then the real values) finds the same duplicates as a plain GROUP BY."""
    sql = _compiled_test(dbt_build["target"], "stg_raw__traffic.yml", "unique_combination_of_columns")
    assert "hash(" in sql, "the DuckDB dispatch of unique_combination_of_columns was not used"
    relation = '"warehouse"."build"."stg_raw__traffic"'
    assert relation in sql
    con = duckdb.connect()
    con.execute(
        """
        create table events as select * from (values
            ('s1', timestamp '2025-01-01 10:00', 'view', 'A'),
            ('s1', timestamp '2025-01-01 10:00', 'view', 'A'),   -- a repeated key
            ('s1', timestamp '2025-01-01 10:00', 'view', 'B'),
            ('s2', timestamp '2025-01-01 10:00', 'cart', null),
            ('s2', timestamp '2025-01-01 10:00', 'cart', null),  -- repeated with a null sku
            ('s2', timestamp '2025-01-01 10:01', 'cart', null),
            ('s3', timestamp '2025-01-02 09:00', 'purchase', 'C')
        ) as t(session_id, event_ts, event_type, sku)
        """
    )
    failures = con.execute(sql.replace(relation, "events")).fetchall()
    plain = con.execute(
        "select session_id, event_ts, event_type, sku, count(*) from events "
        "group by all having count(*) > 1"
    ).fetchall()
    assert sorted(failures, key=str) == sorted(plain, key=str)
    assert sorted((row[0], row[3], row[4]) for row in failures if row[3]) == [("s1", "A", 2)]
    assert [(row[0], row[4]) for row in failures if row[3] is None] == [("s2", 2)]
    con.execute("delete from events where rowid in (1, 4)")
    assert con.execute(sql.replace(relation, "events")).fetchall() == []


def test_nightly_window_narrows_only_the_tests_of_date_keyed_models(dbt_build: dict, tmp_path: Path) -> None:
    """With min_date/max_date set, generic tests of models declaring test_window_column read the window;
    mart tables rebuilt whole and runs without the vars are checked over every row."""
    assert "partition_date between" not in _compiled_test(
        dbt_build["target"], "stg_raw__traffic.yml", "not_null_stg_raw__traffic_session_id"
    )
    target = tmp_path / "target"
    proc = _dbt(
        "compile",
        "--select",
        "test_type:generic,stg_raw__traffic test_type:generic,fct_order_lines test_type:generic,customer_rfm",
        "--vars",
        json.dumps({"min_date": "2024-03-01", "max_date": "2024-03-02"}),
        target=target,
        work=tmp_path,
        # its own (empty) warehouse file: the session's read-only connection holds the built one
        env=dbt_build["env"] | {"SHOPLENS_WAREHOUSE": str(tmp_path / "compile.duckdb")},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    window = "between cast('2024-03-01' as date) and cast('2024-03-02' as date)"
    staged = _compiled_test(target, "stg_raw__traffic.yml", "not_null_stg_raw__traffic_session_id")
    assert f"(partition_date {window})" in staged
    assert f"(order_date {window})" in _compiled_test(target, "fct_order_lines.yml", "unique_fct_order_lines")
    rfm = list((target / "compiled" / "shoplens" / "models").glob("**/customer_rfm.yml/*.sql"))
    assert rfm, "no compiled tests of customer_rfm"
    assert all("between cast(" not in path.read_text() for path in rfm)
