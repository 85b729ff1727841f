"""The HTML decision report, built from a warehouse that the real pipeline made from the tiny synthetic shop.

One session-scoped pipeline run (`tiny_pipeline`, about a minute) lands the tiny shop and runs the whole
Dagster graph into a temporary folder; every test here and in test_notebooks.py reads that warehouse. The key
numbers of the report are compared with the marts queried directly; a copy of the warehouse with marts
dropped checks the "skipped" reporting, and a copy with small fake `decisions.*` tables checks the
decision sections (those tables are written by other assets and do not exist in the tiny run).
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------------------------------
# The tiny shop, run through the pipeline once per session
# --------------------------------------------------------------------------------------------------


from tests.conftest import TinyShop  # noqa: E402  (the session fixture tiny_pipeline lives in conftest)

# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


class _ReportParser(HTMLParser):
    """Collects data-metric values and texts, section statuses, chart sources and table keys."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: dict[str, dict[str, str]] = {}
        self.sections: dict[str, str] = {}
        self.images: list[tuple[str, str]] = []
        self.tables: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "data-metric" in a:
            self._open = a["data-metric"]
            self.metrics[self._open] = {"value": a.get("data-value") or "", "text": ""}
        if "data-section" in a:
            self.sections[a["data-section"]] = a.get("data-status") or ""
        if tag == "img":
            self.images.append((a.get("data-chart") or "", a.get("src") or ""))
        if tag == "table" and "data-table" in a:
            self.tables.append(a["data-table"])

    def handle_data(self, data: str) -> None:
        if self._open:
            self.metrics[self._open]["text"] += data

    def handle_endtag(self, tag: str) -> None:
        self._open = None


def parse_report(path: Path) -> _ReportParser:
    p = _ReportParser()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def shown_number(text: str) -> float:
    """The number a reader sees: '+35.1' -> 35.1, '1,234' -> 1234, '8.91%' -> 0.0891."""
    t = text.strip().replace(",", "")
    value = float(re.sub(r"[^0-9.+-]", "", t))
    return value / 100 if t.endswith("%") else value


def assert_metric(parsed: _ReportParser, key: str, expected: float, rel: float = 1e-6) -> None:
    """data-value equals the mart's value, and the shown text rounds to it (3 significant digits at least)."""
    assert key in parsed.metrics, f"metric {key} missing from the report (have: {sorted(parsed.metrics)})"
    expected = float(expected)
    got = parsed.metrics[key]
    assert float(got["value"]) == pytest.approx(expected, rel=rel, abs=1e-6), (
        f"{key}: data-value {got['value']} != {expected}"
    )
    assert shown_number(got["text"]) == pytest.approx(expected, rel=0.01, abs=0.06), (
        f"{key}: shown {got['text']!r} vs {expected}"
    )


def scalar(db: Path, sql: str) -> float:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.sql(sql).fetchall()[0][0]


def expected_numbers(db: Path) -> dict[str, float]:
    """The key numbers straight from the marts, computed independently of pipelines/report.py."""
    q = {
        "nps_survey_latest": "SELECT nps FROM main.nps_by_month WHERE score_kind = 'nps_survey' ORDER BY review_month DESC LIMIT 1",
        "nps_survey_latest_ci_lower": "SELECT nps_ci_lower FROM main.nps_by_month WHERE score_kind = 'nps_survey' ORDER BY review_month DESC LIMIT 1",
        "nps_survey_latest_ci_upper": "SELECT nps_ci_upper FROM main.nps_by_month WHERE score_kind = 'nps_survey' ORDER BY review_month DESC LIMIT 1",
        "nps_survey_latest_n": "SELECT n FROM main.nps_by_month WHERE score_kind = 'nps_survey' ORDER BY review_month DESC LIMIT 1",
        "nps_star_proxy_latest": "SELECT nps FROM main.nps_by_month WHERE score_kind = 'star_proxy' ORDER BY review_month DESC LIMIT 1",
        "nps_star_proxy_late": "SELECT nps FROM main.nps_by_delivery WHERE score_kind = 'star_proxy' AND delivery_status = 'late'",
        "nps_star_proxy_on_time": "SELECT nps FROM main.nps_by_delivery WHERE score_kind = 'star_proxy' AND delivery_status = 'on_time'",
        "stockout_rate_latest": "SELECT sum(stockout_days) / sum(inventory_days) FROM main.inventory_turnover "
        "WHERE month_start = (SELECT max(month_start) FROM main.inventory_turnover)",
        "stockout_rate_overall": "SELECT sum(stockout_days) / sum(inventory_days) FROM main.inventory_turnover",
        "turnover_latest": "SELECT sum(cogs) / sum(avg_inventory_value) FROM main.inventory_turnover "
        "WHERE month_start = (SELECT max(month_start) FROM main.inventory_turnover)",
        "carbon_kg_per_order": "SELECT avg(total_kg_co2e) FROM main.carbon_per_order",
        "carbon_kg_per_order_road": "SELECT sum(total_kg_co2e) / count(DISTINCT order_id) FROM main.carbon_per_shipment WHERE transport_mode = 'road'",
        "session_conversion_rate": "SELECT sum(purchase_sessions) / sum(sessions) FROM main.traffic_funnel",
        "sessions_total": "SELECT sum(sessions) FROM main.traffic_funnel",
        "revenue_last_30d": "SELECT sum(revenue) FROM main.fct_daily_sales WHERE date > (SELECT max(date) - 30 FROM main.fct_daily_sales)",
        "revenue_total": "SELECT sum(revenue) FROM main.fct_daily_sales",
        "customers_scored": "SELECT count(*) FROM main.customer_rfm",
        "pareto_top10_share": "SELECT revenue_share FROM main.customer_pareto WHERE top_percent = 10",
        "coupons_to_send": "SELECT count(*) FROM main.compensation_coupons "
        "WHERE incident_date > (SELECT max(as_of_date) - 7 FROM main.int_as_of_date)",
        "coupons_total": "SELECT count(*) FROM main.compensation_coupons",
        "on_time_rate": "SELECT 1 - sum(late) / sum(delivered) FROM main.delivery_performance",
    }
    with duckdb.connect(str(db), read_only=True) as con:
        return {k: float(con.sql(v).fetchall()[0][0]) for k, v in q.items()}


def copy_warehouse(shop: TinyShop, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / "shoplens.duckdb"
    shutil.copyfile(shop.warehouse, target)
    return target


# Small decision tables with the columns the decision assets are expected to write (models/*.py), built
# from the marts so SKUs and customers exist. Reasons hold markup: the report must escape it.
FAKE_DECISIONS_SQL = """
CREATE SCHEMA IF NOT EXISTS decisions;
CREATE OR REPLACE TABLE decisions.demand_forecast AS
SELECT sku, (SELECT max(date) FROM main.fct_sku_daily_demand) + CAST(h AS INTEGER) AS date,
       0.5 * avg_units AS p10, avg_units AS p50, 1.8 * avg_units + 1 AS p90, 'global_gbm' AS model
FROM (SELECT sku, avg(units) AS avg_units FROM main.fct_sku_daily_demand GROUP BY sku), range(1, 29) AS t(h);
CREATE OR REPLACE TABLE decisions.forecast_backtest AS
SELECT * FROM (VALUES ('all', 'all', 'global_gbm', 'wape', 0.42), ('all', 'all', 'global_gbm', 'mase', 0.81),
  ('all', 'all', 'global_gbm', 'coverage_p10_p90', 0.79), ('all', 'all', 'seasonal_naive', 'wape', 0.61),
  ('all', 'all', 'seasonal_naive', 'mase', 1.0), ('all', 'all', 'seasonal_naive', 'coverage_p10_p90', 0.55),
  ('1', 'all', 'global_gbm', 'wape', 0.25), ('all', 'smooth', 'global_gbm', 'wape', 0.30))
  AS t(fold, segment, model, metric, value);
CREATE OR REPLACE TABLE decisions.replenishment_plan AS
SELECT sku, supplier, 40.0 AS on_hand, 0.0 AS on_order, 40.0 AS inventory_position, 12.5 AS safety_stock,
       35.0 + row_number() OVER (ORDER BY sku) AS reorder_point, 80.0 AS order_up_to, 40 AS order_qty,
       (row_number() OVER (ORDER BY sku)) % 3 = 0 AS order_due,
       DATE '2024-04-29' AS order_date, DATE '2024-04-29' + lead_time_days AS needed_by,
       (row_number() OVER (ORDER BY sku)) / 26.0 AS stockout_risk
FROM main.dim_products;
CREATE OR REPLACE TABLE decisions.purchase_orders AS
SELECT supplier, sku, order_qty AS quantity, order_date, needed_by FROM decisions.replenishment_plan WHERE order_due;
CREATE OR REPLACE TABLE decisions.replenishment_simulation AS
SELECT * FROM (VALUES ('forecast_policy', 0.021, 0.985, 812.0, 7.1, 51.2), ('naive_policy', 0.064, 0.951, 1020.0, 5.6, 65.0))
  AS t(policy, stockout_rate, fill_rate, avg_inventory_units, turnover, dio);
CREATE OR REPLACE TABLE decisions.product_selection AS
SELECT sku, category, round(1 - row_number() OVER (ORDER BY net_revenue DESC, sku) / 25.0, 3) AS score,
       CASE WHEN row_number() OVER (ORDER BY net_revenue DESC, sku) <= 4 THEN 'expand'
            WHEN row_number() OVER (ORDER BY net_revenue DESC, sku) > 22 THEN 'delist' ELSE 'keep' END AS recommendation,
       ['sales ' || CAST(units_sold AS VARCHAR) || ' units', '<b>margin</b> & "quotes"'] AS reasons
FROM main.dim_products;
CREATE OR REPLACE TABLE decisions.customer_clv AS
SELECT customer_id, segment, segment_action AS action,
       greatest(0.01, 1 - recency_days / 120.0) AS p_alive, frequency * 0.8 AS expected_purchases_365d,
       CAST(monetary AS DOUBLE) * greatest(0.05, 1 - recency_days / 300.0) AS predicted_clv,
       CASE WHEN recency_days > 60 THEN 'high' WHEN recency_days > 20 THEN 'medium' ELSE 'low' END AS churn_risk,
       as_of_date + 30 AS expected_next_order_date
FROM main.customer_rfm;
CREATE OR REPLACE TABLE decisions.clv_calibration AS
SELECT * FROM (VALUES ('0', 120, 0.31, 0.28, 37.2, 34), ('1', 60, 0.72, 0.80, 43.2, 48), ('2', 30, 1.1, 1.0, 33.0, 30),
  ('7+', 10, 3.2, 3.4, 32.0, 34)) AS t(frequency_group, customers, predicted, actual, predicted_total, actual_total);
INSERT INTO main.delay_hotspots VALUES ('Beijing', DATE '2024-03-15', 8, 4, 0.5, 1.4);
INSERT INTO main.delay_hotspots SELECT 'Tianjin', max(as_of_date) - 2, 6, 3, 0.5, 1.1 FROM main.int_as_of_date;
INSERT INTO main.compensation_coupons
SELECT 'CMP-Beijing-2024-03-15-' || customer_id, customer_id, 'O-FAKE-' || customer_id, 'Beijing', DATE '2024-03-15', 1, 1.5
FROM (SELECT customer_id FROM main.customer_rfm ORDER BY customer_id LIMIT 2);
INSERT INTO main.compensation_coupons
SELECT 'CMP-Tianjin-recent-' || customer_id, customer_id, 'O-FAKE2-' || customer_id, 'Tianjin',
       (SELECT max(as_of_date) FROM main.int_as_of_date) - 2, 1, 1.2
FROM (SELECT customer_id FROM main.customer_rfm ORDER BY customer_id DESC LIMIT 3);
"""

DECISION_SECTIONS = (
    "purchase-orders",
    "replenishment-plan",
    "at-risk-customers",
    "product-selection",
    "demand-forecast",
    "forecast-accuracy",
    "replenishment-simulation",
    "clv-calibration",
)


@pytest.fixture(scope="module")
def plain_report(tiny_pipeline: TinyShop, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of the tiny run as the pipeline would build it (no decision tables yet)."""
    from pipelines.report import build_report

    return build_report(
        tiny_pipeline.warehouse, tmp_path_factory.mktemp("reports"), tiny_pipeline.manifest, "tiny-run"
    )


@pytest.fixture(scope="module")
def no_decisions_report(tiny_pipeline: TinyShop, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of a copy of the tiny warehouse without any decision table (as before the decision assets ran)."""
    from pipelines.report import build_report

    db = copy_warehouse(tiny_pipeline, tmp_path_factory.mktemp("wh_no_decisions"))
    with duckdb.connect(str(db)) as con:
        con.execute("DROP SCHEMA IF EXISTS decisions CASCADE")
    return build_report(
        db,
        tmp_path_factory.mktemp("reports_no_decisions"),
        tiny_pipeline.manifest,
        raw_dir=tiny_pipeline.raw_dir,
    )


@pytest.fixture(scope="module")
def decisions_report(tiny_pipeline: TinyShop, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(report, warehouse) for a copy of the tiny warehouse with fake decision tables and three coupons."""
    from pipelines.report import build_report

    db = copy_warehouse(tiny_pipeline, tmp_path_factory.mktemp("wh_decisions"))
    with duckdb.connect(str(db)) as con:
        con.execute("DROP SCHEMA IF EXISTS decisions CASCADE")
        con.execute(FAKE_DECISIONS_SQL)
    out = build_report(
        db,
        tmp_path_factory.mktemp("reports_decisions"),
        tiny_pipeline.manifest,
        "fake-decisions",
        raw_dir=tiny_pipeline.raw_dir,
    )
    return out, db


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


def test_report_files_are_written_self_contained_and_dated(
    plain_report: Path, tiny_pipeline: TinyShop
) -> None:
    as_of = scalar(tiny_pipeline.warehouse, "SELECT max(as_of_date) FROM main.int_as_of_date")
    assert plain_report.name == f"report_{as_of.isoformat()}.html"
    latest = plain_report.parent / "latest.html"
    assert latest.read_bytes() == plain_report.read_bytes()
    assert not list(plain_report.parent.glob(".*.tmp")), "temporary files were left behind"
    text = plain_report.read_text(encoding="utf-8")
    # Self-contained: no script, stylesheet link or remote resource; every image an embedded PNG.
    assert "<script" not in text.lower() and "<link" not in text.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    parsed = parse_report(plain_report)
    assert len(parsed.images) >= 8
    assert all(src.startswith("data:image/png;base64,") for _key, src in parsed.images)
    # Decisions come before the health of the shop, which comes before the data section.
    order = list(parsed.sections)
    assert order.index("customers-to-contact") < order.index("revenue") < order.index("data")
    assert order.index("purchase-orders") < order.index("nps")
    # The DuckDB file was closed: a writer can open it again at once.
    with duckdb.connect(str(tiny_pipeline.warehouse)) as con:
        con.execute("CREATE OR REPLACE TEMP TABLE t AS SELECT 1")


def test_key_numbers_match_the_marts(plain_report: Path, tiny_pipeline: TinyShop) -> None:
    parsed = parse_report(plain_report)
    for key, expected in expected_numbers(tiny_pipeline.warehouse).items():
        assert_metric(parsed, key, expected)
    # Survey NPS and the star proxy are separate, each with its own label.
    text = plain_report.read_text(encoding="utf-8")
    assert "NPS (0-10 survey)" in text and "Star-review proxy NPS" in text
    assert parsed.metrics["nps_survey_latest"]["value"] != parsed.metrics["nps_star_proxy_latest"]["value"]
    assert parsed.metrics["stockout_target"]["value"] == "0.03"


def test_data_provenance_and_quarantine_are_stated(plain_report: Path, tiny_pipeline: TinyShop) -> None:
    parsed = parse_report(plain_report)
    m = tiny_pipeline.manifest
    assert parsed.metrics["source_name"]["text"] == m["source"] == "synthetic"
    assert parsed.metrics["data_first_date"]["text"] == m["first_date"]
    assert parsed.metrics["data_last_date"]["text"] == m["last_date"]
    assert int(parsed.metrics["rows_landed_total"]["value"]) == sum(m["rows_landed"].values())
    files = sorted(str(p) for p in (tiny_pipeline.raw_dir / "_quarantine").glob("*/*/*.parquet"))
    with duckdb.connect() as con:
        quarantined = con.sql(
            "SELECT count(*) FROM read_parquet(?, union_by_name = true)", params=[files]
        ).fetchall()[0][0]
    assert quarantined > 0
    assert int(parsed.metrics["rows_quarantined_total"]["value"]) == quarantined
    # Every rule the synthetic shop broke on purpose is listed in the quarantine table.
    text = plain_report.read_text(encoding="utf-8")
    rules_table = text[text.index('data-table="quarantine-rules"') :]
    rules_table = rules_table[: rules_table.index("</table>")]
    for rule in m["injected_bad_rows"]["orders"]:
        assert f">{rule}<" in rules_table, f"rule {rule} missing from the quarantine table"


def test_decision_sections_say_not_available_when_their_tables_are_missing(no_decisions_report: Path) -> None:
    parsed = parse_report(no_decisions_report)
    text = html.unescape(no_decisions_report.read_text(encoding="utf-8"))
    for key in (
        "purchase-orders",
        "replenishment-plan",
        "product-selection",
        "demand-forecast",
        "forecast-accuracy",
    ):
        assert parsed.sections[key] == "unavailable", key
    for table in ("purchase_orders", "product_selection", "demand_forecast", "forecast_backtest"):
        assert f"Not available: table decisions.{table} is not in the warehouse" in text
    # Customers at risk fall back to RFM and say so; no decision table is drawn from nothing.
    assert parsed.sections["at-risk-customers"] == "ok"
    assert "Not available: customer lifetime value (decisions.customer_clv)" in text
    assert not {"purchase-order-lines", "replenishment-plan", "selection-expand"} & set(parsed.tables)


def test_missing_marts_are_reported_as_skipped(tiny_pipeline: TinyShop, tmp_path: Path) -> None:
    """A source without reviews: the NPS marts are absent; the report says so and builds everything else."""
    from pipelines.report import build_report

    db = copy_warehouse(tiny_pipeline, tmp_path / "wh")
    with duckdb.connect(str(db)) as con:
        for mart in ("nps_by_month", "nps_by_delivery", "nps_by_dimension"):
            con.execute(f"DROP TABLE main.{mart}")
    manifest = json.loads(json.dumps(tiny_pipeline.manifest)) | {"missing_tables": ["reviews"]}
    out = build_report(db, tmp_path / "out", manifest, raw_dir=tiny_pipeline.raw_dir)
    parsed = parse_report(out)
    text = html.unescape(out.read_text(encoding="utf-8"))
    assert parsed.sections["nps"] == "unavailable"
    assert (
        "Not available: mart main.nps_by_month is not in the warehouse: the source has no reviews table"
        in text
    )
    skipped = text[text.index('id="skipped"') :]
    assert "source table reviews" in skipped and "mart main.nps_by_delivery" in skipped
    assert "nps_survey_latest" not in parsed.metrics
    # Everything that does not need reviews is still there.
    for key in ("revenue", "inventory", "carbon", "funnel", "customers-to-contact"):
        assert parsed.sections[key] == "ok", key
    assert_metric(
        parsed, "carbon_kg_per_order", scalar(db, "SELECT avg(total_kg_co2e) FROM main.carbon_per_order")
    )


def test_missing_warehouse_gives_a_report_that_says_so(tmp_path: Path) -> None:
    from pipelines.report import build_report

    out = build_report(tmp_path / "nowhere.duckdb", tmp_path / "out", None)
    text = html.unescape(out.read_text(encoding="utf-8"))
    assert "nowhere.duckdb does not exist" in text
    assert (tmp_path / "out" / "latest.html").exists()


def test_decision_sections_render_from_decision_tables(decisions_report: tuple[Path, Path]) -> None:
    out, db = decisions_report
    parsed = parse_report(out)
    raw = out.read_text(encoding="utf-8")
    for key in DECISION_SECTIONS + ("coupons",):
        assert parsed.sections[key] == "ok", f"{key}: {parsed.sections[key]}"
    assert "Not available" not in html.unescape(raw[: raw.index('id="part-health"')])
    n_po = scalar(db, "SELECT count(*) FROM decisions.purchase_orders")
    assert n_po > 0
    assert_metric(parsed, "purchase_order_lines", n_po)
    assert_metric(
        parsed, "purchase_order_units", scalar(db, "SELECT sum(quantity) FROM decisions.purchase_orders")
    )
    assert_metric(parsed, "skus_expand", 4)
    assert_metric(parsed, "skus_delist", 3)
    # Coupons to send now: only the incident of the last 7 days; the older one is context.
    assert_metric(parsed, "coupons_to_send", 3)
    assert_metric(parsed, "coupons_total", scalar(db, "SELECT count(*) FROM main.compensation_coupons"))
    # The backtest headline uses the pooled rows (fold all, segment all), not a single fold or segment.
    assert parsed.metrics["forecast_best_model"]["text"] == "global_gbm"
    assert_metric(parsed, "forecast_best_wape", 0.42)
    assert_metric(parsed, "sim_stockout_rate_forecast_policy", 0.021)
    # At-risk high-value customers: churn high or medium and CLV in the top 20%.
    expected = scalar(
        db,
        """SELECT count(*) FROM decisions.customer_clv WHERE churn_risk IN ('high', 'medium')
                             AND predicted_clv >= (SELECT quantile_cont(predicted_clv, 0.8) FROM decisions.customer_clv)""",
    )
    assert expected > 0
    assert_metric(parsed, "at_risk_high_value_customers", expected)
    assert {
        "purchase-order-lines",
        "replenishment-plan",
        "selection-expand",
        "selection-delist",
        "at-risk-customers",
        "forecast-by-sku",
        "backtest",
        "coupons",
    } <= set(parsed.tables)
    # Text from the data is escaped, never interpreted as markup.
    assert "<b>margin</b>" not in raw and "&lt;b&gt;margin&lt;/b&gt;" in raw


def test_empty_results_and_odd_tables_are_stated_not_drawn(tiny_pipeline: TinyShop, tmp_path: Path) -> None:
    from pipelines.report import build_report

    db = copy_warehouse(tiny_pipeline, tmp_path / "wh")
    with duckdb.connect(str(db)) as con:
        con.execute(
            "DELETE FROM main.compensation_coupons; DELETE FROM main.delay_hotspots; "
            "DROP SCHEMA IF EXISTS decisions CASCADE; CREATE SCHEMA decisions; CREATE TABLE decisions.purchase_orders (supplier VARCHAR, sku VARCHAR, "
            "quantity INTEGER, order_date DATE, needed_by DATE); "
            "CREATE TABLE decisions.product_selection (sku VARCHAR, verdict_score DOUBLE); "
            "INSERT INTO decisions.product_selection VALUES ('SKU-000001', 0.5); "
            "CREATE TABLE decisions.forecast_backtest AS SELECT 'global' AS model, 'wape' AS metric, 'n/a' AS value"
        )
    parsed = parse_report(out := build_report(db, tmp_path / "out", tiny_pipeline.manifest))
    text = html.unescape(out.read_text(encoding="utf-8"))
    assert parsed.sections["purchase-orders"] == "empty"
    assert parsed.metrics["purchase_order_lines"]["value"] == "0"
    assert "No purchase order to place today" in text and "purchase-order-lines" not in parsed.tables
    # A decision table whose columns changed beyond recognition is named, not crashed on.
    assert parsed.sections["product-selection"] == "unavailable"
    assert "decisions.product_selection has no recommendation column (sku, verdict_score)" in text
    # A table the section cannot read at all (text where numbers belong) fails that section only.
    assert parsed.sections["forecast-accuracy"] == "unavailable"
    assert "Not available: the section failed:" in text
    assert parsed.sections["revenue"] == "ok" and parsed.sections["nps"] == "ok"
    # No delay incident at all: zero coupons is a result, stated as such and not drawn as an empty table.
    assert parsed.sections["coupons"] == "empty"
    assert parsed.metrics["coupons_to_send"]["value"] == "0"
    assert "No coupons to send: no region-day in the data was a delay hotspot" in text
    assert "coupons" not in parsed.tables and "coupons-by-region" not in parsed.tables


def _png_pixels(src: str):
    import numpy as np
    from PIL import Image

    payload = base64.b64decode(src.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(payload)).convert("L"), dtype=float)


@pytest.mark.browser
def test_report_renders_in_a_browser(decisions_report: tuple[Path, Path], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.browser import new_driver

    out, db = decisions_report
    parsed = parse_report(out)
    driver = new_driver(1300, 1000)
    try:
        driver.get(out.as_uri())
        WebDriverWait(driver, 30).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.dataset.chart, i.complete, i.naturalWidth, i.naturalHeight])"
        )
        assert len(images) == len(parsed.images) >= 14
        broken = [i for i in images if not (i[1] and i[2] > 0 and i[3] > 0)]
        assert not broken, f"charts that did not decode: {broken}"
        # Charts are drawn, not blank: a real spread of grey levels and a few percent of ink.
        for key, src in parsed.images:
            px = _png_pixels(src)
            assert px.std() > 8 and (px < 200).mean() > 0.01, f"chart {key} looks blank"
        # The numbers the reader sees are the marts' numbers.
        expected = expected_numbers(db)
        for key in (
            "nps_survey_latest",
            "stockout_rate_latest",
            "carbon_kg_per_order",
            "session_conversion_rate",
            "revenue_last_30d",
            "on_time_rate",
        ):
            el = driver.find_element(By.CSS_SELECTOR, f'[data-metric="{key}"]')
            assert el.is_displayed()
            assert shown_number(el.text) == pytest.approx(expected[key], rel=0.01, abs=0.06), key
        po = driver.find_element(By.CSS_SELECTOR, '[data-metric="purchase_order_lines"]')
        assert int(po.text) == scalar(db, "SELECT count(*) FROM decisions.purchase_orders")
        body = driver.find_element(By.TAG_NAME, "body").text
        assert "1. Today's decisions" in body and "2. Health of the shop" in body
        # Screenshot of the top of the page: the headline cards and the first decision.
        shot = tmp_path / "report.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 30_000
        px = _png_pixels("x," + base64.b64encode(shot.read_bytes()).decode())
        assert px.std() > 10
    finally:
        driver.quit()
