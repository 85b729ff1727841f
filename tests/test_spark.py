"""The same dbt project builds on Spark and gives the DuckDB figures (issue 8, `make test-spark`).

The Spark test writes the tiny raw set (dbt_project/scripts/make_tiny_raw.py) into a temporary folder and
runs pipelines.spark_check on it: `dbt build` on DuckDB and, on one local SparkSession in this process,
`dbt run-operation create_spark_sources` + `dbt build --target spark` (seeds, models, data tests and unit
tests), then the key figures and every mart's column totals compared. It needs pyspark and dbt-spark
(`requirements-spark.txt`, about 490 MB installed) and Java 17, takes a few minutes, and so runs only when asked
for: `make test-spark` (`pytest -m spark tests/test_spark.py`). The comparison logic itself is tested
without Spark, in the plain suite.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipelines.spark_check import (
    FIGURES,
    MART_PREFIX,
    CheckResult,
    Comparison,
    compare_rows,
    format_report,
    rounding_allowances,
    totals_sql,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DBT_DIR = PROJECT_ROOT / "dbt_project"


def _spark_skip_reason(config: pytest.Config) -> str | None:
    missing = [m for m in ("pyspark", "dbt.adapters.spark") if importlib.util.find_spec(m) is None]
    if missing:
        return f"{', '.join(missing)} not installed: `make test-spark` installs requirements-spark.txt"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java runtime (Spark needs Java 17)"
    if "spark" not in (config.getoption("markexpr") or ""):
        return "slow (a few minutes): runs with `make test-spark` or `pytest -m spark`"
    return None


# ---------------------------------------------------------------------------------------------------
# The comparison logic: plain Python, runs in every `make test`.


def test_compare_rows_flags_changed_missing_and_tolerated_values() -> None:
    duck = [("Champions", 2, 3736.78), ("Loyal", 8, 11159.30), ("Lost", 2, 102.88)]
    spark = [("Champions", 2, 3736.78), ("Loyal", 9, 11159.305), ("New", 0, 0.0)]
    out = compare_rows("rfm", ["segment", "customers", "revenue"], 1, duck, spark, tolerance=0.01)
    by = {(c.key, c.column): c for c in out}
    assert by[("Champions", "customers")].ok and by[("Champions", "revenue")].ok
    assert not by[("Loyal", "customers")].ok  # 8 vs 9: integers are exact
    assert by[("Loyal", "revenue")].ok  # within one unit of the last rounded digit
    assert not by[("Lost", "customers")].ok and by[("Lost", "customers")].spark is None  # DuckDB only
    assert not by[("New", "revenue")].ok and by[("New", "revenue")].duckdb is None  # Spark only
    assert len(out) == 8


def test_compare_rows_normalises_engine_types_and_rejects_duplicate_keys() -> None:
    from datetime import date
    from decimal import Decimal

    out = compare_rows(
        "nps", ["month", "nps"], 1, [(date(2024, 1, 1), 10.0)], [(date(2024, 1, 1), Decimal("10.00"))]
    )
    assert [(c.key, c.ok) for c in out] == [("2024-01-01", True)]
    assert not compare_rows("x", ["k", "v"], 1, [("a", None)], [("a", 0)])[0].ok  # null is not zero
    with pytest.raises(ValueError, match="appears twice in the Spark result"):
        compare_rows("x", ["k", "v"], 1, [("a", 1)], [("a", 1), ("a", 2)])


def test_totals_sql_totals_each_column_by_its_type() -> None:
    labels, sql = totals_sql(
        [("date", "DATE"), ("units", "BIGINT"), ("rate", "DECIMAL(12,2)"), ("late", "BOOLEAN")], "`"
    )
    assert labels == ["rows", "distinct(date)", "sum(units)", "sum(rate)", "true(late)"]
    assert sql.startswith("select count(*), count(distinct `date`), sum(cast(`units` as double))")
    assert sql.endswith("sum(case when `late` then 1 else 0 end) from {rel}")
    # the same SQL runs on DuckDB (with its own quote)
    _, duck_sql = totals_sql([("date", "DATE"), ("units", "BIGINT"), ("late", "BOOLEAN")], '"')
    con = duckdb.connect()
    con.sql(
        "create table t as select * from (values (date '2024-01-01', 2, true), (date '2024-01-01', 3, false)) v(date, units, late)"
    )
    assert con.sql(duck_sql.format(rel="t")).fetchall() == [(2, 1, 5.0, 1)]


def test_rounding_allowance_is_one_unit_of_the_last_digit_per_row() -> None:
    con = duckdb.connect()
    con.sql(
        "create table t as select * from (values (339.27, 0.1234, 1.0 / 3, 7), (12.5, 0.5, 2.0 / 3, 8), "
        "(null, 0.25, 0.1, 9)) v(aov, rate, raw, n)"
    )
    cols = [(r[0], r[1]) for r in con.sql("describe t").fetchall()]
    got = rounding_allowances(con, "t", [(n, "DOUBLE") if n != "n" else (n, t) for n, t in cols])
    assert got == pytest.approx({"sum(aov)": 2 * 0.01, "sum(rate)": 3 * 0.0001, "sum(raw)": 0.0})


def test_report_lists_mismatches_and_the_result_fails_on_one() -> None:
    good = Comparison("NPS per month", "2024-01-01 / nps_survey", "nps", 10.0, 10.0, True)
    bad = Comparison(MART_PREFIX + "customer_rfm", "customer_rfm", "sum(monetary)", 5.0, 6.0, False)
    report = format_report([good, bad])
    assert "Mismatches" in report and "customer_rfm" in report and "1 of 2 values equal, 1 differ" in report
    assert CheckResult([good]).ok and not CheckResult([good, bad]).ok
    assert not CheckResult([]).ok  # nothing compared proves nothing


# ---------------------------------------------------------------------------------------------------
# The Spark build itself: `make test-spark`.


@pytest.fixture(scope="module")
def spark_check(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    reason = _spark_skip_reason(request.config)
    if reason:
        pytest.skip(reason)
    from pipelines.spark_check import run_check

    work = tmp_path_factory.mktemp("spark_check")
    data_dir = work / "data"
    subprocess.run(
        [sys.executable, str(DBT_DIR / "scripts" / "make_tiny_raw.py"), str(data_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    result = run_check(data_dir, work / "build")
    manifest = json.loads((work / "build" / "target_spark" / "manifest.json").read_text())
    return {"result": result, "data_dir": data_dir, "manifest": manifest}


@pytest.mark.spark
def test_spark_build_runs_every_node(spark_check: dict) -> None:
    result: CheckResult = spark_check["result"]
    nodes = spark_check["manifest"]["nodes"]
    want = {
        "model success": sum(1 for n in nodes.values() if n["resource_type"] == "model"),
        "seed success": sum(1 for n in nodes.values() if n["resource_type"] == "seed"),
        "test pass": sum(1 for n in nodes.values() if n["resource_type"] == "test"),
        "unit_test pass": len(spark_check["manifest"]["unit_tests"]),
        # the on-run-start hook (the change log for publishing by window: a no-op statement on Spark)
        "operation success": sum(1 for n in nodes.values() if n["resource_type"] == "operation"),
    }
    assert want["operation success"] == 1
    assert result.spark_results == want, result.spark_results
    assert want["model success"] >= 36 and want["test pass"] >= 200 and want["unit_test pass"] >= 20


@pytest.mark.spark
def test_spark_figures_equal_duckdb(spark_check: dict) -> None:
    result: CheckResult = spark_check["result"]
    assert result.ok, "\n" + format_report(result.mismatches)
    figures = {c.figure for c in result.comparisons}
    assert {f.name for f in FIGURES} <= figures
    marts = sorted(
        n["name"]
        for n in spark_check["manifest"]["nodes"].values()
        if n["resource_type"] == "model" and n["original_file_path"].startswith("models/marts/")
    )
    assert {MART_PREFIX + m for m in marts} <= figures  # every mart was compared
    empty = [c.key for c in result.comparisons if c.column == "rows" and not c.spark]
    assert not empty, f"marts without rows on Spark: {empty}"


@pytest.mark.spark
def test_spark_figures_tie_back_to_the_raw_data(spark_check: dict) -> None:
    """The compared figures are the shop's, not two equal empty answers: recount them from raw Parquet."""
    result: CheckResult = spark_check["result"]
    raw = spark_check["data_dir"] / "raw"

    def spark_values(figure: str, column: str) -> dict[str, object]:
        return {c.key: c.spark for c in result.comparisons if c.figure == figure and c.column == column}

    con = duckdb.connect()
    read = "read_parquet('{}/{}/*/*.parquet', union_by_name=true, hive_partitioning=false)"
    purchasers = con.sql(
        f"select count(distinct customer_id) from {read.format(raw, 'orders')} "
        "where customer_id is not null and status <> 'cancelled'"
    ).fetchall()[0][0]
    segments = spark_values("customers per RFM segment", "customers")
    assert len(segments) == 11 and "Can't Lose Them" in segments  # the seed with a quote loaded on Spark
    assert sum(segments.values()) == purchasers

    stars = con.sql(
        f"select count(*) from {read.format(raw, 'reviews')} where scale = 'stars_1_5'"
    ).fetchall()[0][0]
    nps_n = {k: v for k, v in spark_values("NPS per month", "n").items() if k.endswith("star_proxy")}
    assert len(nps_n) >= 2 and sum(nps_n.values()) == stars

    months = con.sql(
        f"select count(distinct date_trunc('month', shipped_ts)) from {read.format(raw, 'shipments')}"
    ).fetchall()[0][0]
    carbon = spark_values("carbon per month (kg CO2e)", "kg_co2e")
    assert len(carbon) == months and all(v > 0 for v in carbon.values())

    categories = con.sql(f"select count(distinct category) from {read.format(raw, 'products')}").fetchall()[
        0
    ][0]
    turnover = spark_values("turnover per category", "turnover")
    assert len({k.split(" / ")[0] for k in turnover}) == categories
    assert all(v is None or v > 0 for v in turnover.values())
