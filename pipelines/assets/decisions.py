"""Decisions from the forecasts and marts: replenishment, purchase orders, a policy simulation, product
selection, and the intraday sales alert that raises emergency purchase orders."""

from datetime import date, timedelta

import dagster as dg
import polars as pl

from models import inventory_policy as policy
from models import selection as sel
from models import simulation as sim
from pipelines.assets.common import OWNERS, PUBLISHED, md_preview, needs_marts
from pipelines.assets.forecasting import MIN_TRAIN_DAYS, load_calendar, load_demand
from pipelines.core.settings import get_settings
from pipelines.core.warehouse import connect, export, write_table
from pipelines.partitions import daily_partitions


class PolicySettings(dg.Config):
    service_level: float = 0.97
    review_period_days: int = 7


def _products(con) -> pl.DataFrame:
    return con.sql(
        "SELECT sku, category, supplier, unit_cost::DOUBLE AS unit_cost, list_price::DOUBLE AS list_price, "
        "coalesce(lead_time_days, 14) AS lead_time_days FROM main.dim_products"
    ).pl()


def _stock(con, as_of: date) -> pl.DataFrame:
    """End-of-day stock per SKU and warehouse on the as-of date (the latest day with inventory data)."""
    return con.sql(
        """
        SELECT sku, warehouse, on_hand, coalesce(on_order, 0) AS on_order
        FROM main.stg_raw__inventory
        WHERE stock_date = (SELECT max(stock_date) FROM main.stg_raw__inventory WHERE stock_date <= ?)
        """,
        params=[as_of],
    ).pl()


def _skipped(context: dg.AssetExecutionContext, what: str) -> dg.MaterializeResult:
    msg = f"skipped: {what}"
    context.log.warning(msg)
    return dg.MaterializeResult(metadata={"skipped": dg.MetadataValue.text(msg)})


@dg.asset(
    key=["decisions", "replenishment_plan"],
    group_name="decisions",
    deps=[
        PUBLISHED,
        dg.AssetKey(["decisions", "demand_forecast"]),
        dg.AssetKey("dim_products"),
        dg.AssetKey("stg_raw__inventory"),
    ],
    kinds={"polars", "duckdb"},
    owners=OWNERS,
    pool="duckdb_writer",
    description=(
        "One row per SKU and warehouse: lead-time demand from the forecast quantiles, safety stock for the target "
        "cycle service level (default 97%), reorder point, order-up-to level, recommended order quantity and "
        "date, days of supply and the risk of a stock-out before the next delivery."
    ),
)
def replenishment_plan(context: dg.AssetExecutionContext, config: PolicySettings) -> dg.MaterializeResult:
    with connect(log=context.log.info) as con:
        if needs_marts(con, ["demand_forecast"], schema="decisions") or needs_marts(
            con, ["stg_raw__inventory"]
        ):
            return _skipped(context, "no forecast or no inventory data for this source")
        forecast = con.sql("SELECT * FROM decisions.demand_forecast").pl()
        products = _products(con)
        today = forecast["date"].min() - timedelta(days=1)
        stock = _stock(con, today)
    cfg = policy.PolicyConfig(
        service_level=config.service_level, review_period_days=config.review_period_days
    )
    plan = policy.replenishment_plan(forecast, products, stock, today=today, config=cfg)
    write_table(plan, "decisions", "replenishment_plan")
    export(plan, "replenishment_plan")
    due = plan.filter(pl.col("order_qty") > 0)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": plan.height,
            "as_of": str(today),
            "service_level": config.service_level,
            "rows_with_order_due": due.height,
            "preview": md_preview(
                plan.sort("stockout_risk", descending=True) if "stockout_risk" in plan.columns else plan
            ),
        }
    )


@dg.asset(
    key=["decisions", "purchase_orders"],
    group_name="decisions",
    deps=[PUBLISHED, dg.AssetKey(["decisions", "replenishment_plan"])],
    kinds={"polars", "duckdb"},
    owners=OWNERS,
    pool="duckdb_writer",
    description="Purchase-order proposals: the plan's rows whose order date has come (supplier, SKU, quantity, needed-by).",
)
def purchase_orders(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    with connect(log=context.log.info) as con:
        if needs_marts(con, ["replenishment_plan"], schema="decisions"):
            return _skipped(context, "no replenishment plan for this source")
        plan = con.sql("SELECT * FROM decisions.replenishment_plan").pl()
    today = plan["order_date"].drop_nulls().min() if plan["order_date"].drop_nulls().len() else None
    as_of = min(today, date.today()) if today else date.today()
    orders = policy.purchase_orders(plan, as_of)
    write_table(orders, "decisions", "purchase_orders")
    export(orders, "purchase_orders")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": orders.height,
            "units_to_order": int(orders["quantity"].sum()) if orders.height else 0,
            "suppliers": orders["supplier"].n_unique() if orders.height else 0,
            "preview": md_preview(orders, rows=15),
        }
    )


@dg.asset(
    key=["decisions", "replenishment_simulation"],
    group_name="decisions",
    deps=[
        PUBLISHED,
        dg.AssetKey("fct_sku_daily_demand"),
        dg.AssetKey("dim_products"),
        dg.AssetKey("holiday_calendar"),
    ],
    kinds={"polars", "scikitlearn"},
    owners=OWNERS,
    pool="duckdb_writer",
    description=(
        "Replays the last 91 days day by day under our policy and under the shop's naive policy (when on hand "
        "falls below 1.2x lead-time demand and nothing is on order, order 32.5 days of demand): stock-out rate, "
        "fill rate, average inventory, turnover and days of inventory."
    ),
)
def replenishment_simulation(
    context: dg.AssetExecutionContext, config: PolicySettings
) -> dg.MaterializeResult:
    with connect(log=context.log.info) as con:
        if needs_marts(con, ["fct_sku_daily_demand", "dim_products"]):
            return _skipped(context, "no daily demand mart for this source")
        demand = load_demand(con)
        calendar = load_calendar(con)
        products = _products(con)
    history_days = (demand["date"].max() - demand["date"].min()).days + 1
    days = min(91, history_days - MIN_TRAIN_DAYS)
    if days < 14:
        return _skipped(
            context, f"{history_days} days of history: too short to replay a period after training"
        )
    start = demand["date"].max() - timedelta(days=days)
    cfg = policy.PolicyConfig(
        service_level=config.service_level, review_period_days=config.review_period_days
    )
    result = sim.replay(demand, calendar, products, start, days=days, policy=cfg, progress=context.log.info)
    write_table(result.summary, "decisions", "replenishment_simulation")
    export(result.summary, "replenishment_simulation")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": result.summary.height,
            "period": f"{start + timedelta(days=1)} .. {start + timedelta(days=days)}",
            "summary": md_preview(result.summary),
        }
    )


@dg.asset(
    key=["decisions", "product_selection"],
    group_name="decisions",
    deps=[
        PUBLISHED,
        dg.AssetKey("fct_sku_daily_demand"),
        dg.AssetKey("dim_products"),
        dg.AssetKey("fct_order_lines"),
    ],
    kinds={"polars", "duckdb"},
    owners=OWNERS,
    pool="duckdb_writer",
    description=(
        "Every SKU ranked with expand / keep / delist and its reasons: demand trend, margin, return rate, review "
        "score and low-score themes, competitor price gap, long-tail demand; each weighted component shown."
    ),
)
def product_selection(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    with connect(log=context.log.info) as con:
        if needs_marts(con, ["fct_sku_daily_demand", "dim_products"]):
            return _skipped(context, "no daily demand mart for this source")
        demand = load_demand(con)
        products = _products(con)
        # Summed per SKU and status in DuckDB: the return rate needs only these sums, and the line fact
        # (48.7 M rows at the large benchmark size) never has to fit in a frame.
        lines = con.sql(
            "SELECT sku, status, sum(quantity)::BIGINT AS quantity FROM main.fct_order_lines GROUP BY sku, status"
        ).pl()
        reviews = (
            con.sql(
                "SELECT sku, score, scale, review_text AS text FROM main.stg_raw__reviews WHERE sku IS NOT NULL"
            ).pl()
            if not needs_marts(con, ["stg_raw__reviews"])
            else None
        )
        # Only the last competitor_window_days before the as-of day count (models/selection.py); the rest
        # of the history (27 M prices at the large size) stays in DuckDB.
        since = demand["date"].max() - timedelta(days=sel.DEFAULT_CONFIG["competitor_window_days"])
        competitor = (
            con.sql(
                "SELECT price_date AS date, sku, competitor, competitor_price::DOUBLE AS price "
                "FROM main.stg_raw__competitor_prices WHERE price_date > ?",
                params=[since],
            ).pl()
            if not needs_marts(con, ["stg_raw__competitor_prices"])
            else None
        )
    result = sel.select_products(demand, products, lines, reviews, competitor, as_of=demand["date"].max())
    write_table(result.skus, "decisions", "product_selection")
    write_table(result.categories, "decisions", "category_selection")
    export(result.skus, "product_selection")
    export(result.categories, "category_selection")
    counts = (
        dict(result.skus.group_by("decision").len().iter_rows()) if "decision" in result.skus.columns else {}
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": result.skus.height,
            "decisions": dg.MetadataValue.json(counts),
            "top": md_preview(result.skus, rows=10),
            "categories": md_preview(result.categories, rows=10),
        }
    )


ALERT_FACTOR = 3.0


@dg.asset(
    key=["decisions", "sales_spike_alerts"],
    group_name="decisions",
    partitions_def=daily_partitions,
    deps=[dg.AssetKey(["raw", "orders"])],
    kinds={"duckdb", "polars"},
    owners=OWNERS,
    pool="duckdb_writer",
    description=(
        "Intraday alert, run by the landing sensor's ingest job: a SKU whose sales in one hour exceed "
        f"{ALERT_FACTOR:g}x its forecast P90 hourly rate (and at least 3 units) raises an emergency "
        "purchase-order proposal (exports/emergency_purchase_orders.csv)."
    ),
)
def sales_spike_alerts(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    settings = get_settings()
    day = context.partition_key
    part = settings.raw_dir / "orders" / f"date={day}" / "part-0.parquet"
    if not part.exists():
        return dg.MaterializeResult(metadata={"alerts": 0, "note": f"no orders ingested for {day}"})
    with connect(log=context.log.info) as con:
        if needs_marts(con, ["demand_forecast"], schema="decisions"):
            return _skipped(context, "no demand forecast yet: thresholds come from the forecast")
        alerts = con.sql(
            f"""
            WITH hourly AS (
                SELECT sku, date_trunc('hour', order_ts) AS hour, sum(quantity) AS units
                FROM read_parquet(?) WHERE status <> 'cancelled' GROUP BY ALL
            ),
            thresholds AS (
                SELECT sku, greatest(3, {ALERT_FACTOR} * max(p90) / 24.0) AS threshold, max(p90) AS p90_daily
                FROM decisions.demand_forecast GROUP BY sku
            )
            SELECT h.sku, h.hour, h.units, t.threshold, p.supplier,
                   greatest(1, ceil(t.p90_daily * coalesce(p.lead_time_days, 14)))::BIGINT AS emergency_qty
            FROM hourly h JOIN thresholds t USING (sku) LEFT JOIN main.dim_products p USING (sku)
            WHERE h.units > t.threshold ORDER BY h.hour, h.sku
            """,
            params=[str(part)],
        ).pl()
        if alerts.height:
            con.execute("CREATE SCHEMA IF NOT EXISTS decisions")
            con.execute(
                "CREATE TABLE IF NOT EXISTS decisions.emergency_purchase_orders AS SELECT * FROM alerts WHERE false"
            )
            con.execute(
                "DELETE FROM decisions.emergency_purchase_orders WHERE CAST(hour AS DATE) = ?",
                [date.fromisoformat(day)],
            )
            con.execute("INSERT INTO decisions.emergency_purchase_orders SELECT * FROM alerts")
            every = con.sql("SELECT * FROM decisions.emergency_purchase_orders ORDER BY hour, sku").pl()
            export(every, "emergency_purchase_orders")
    for row in alerts.iter_rows(named=True):
        context.log.warning(
            f"sales spike: {row['sku']} sold {row['units']} in the hour from {row['hour']} "
            f"(threshold {row['threshold']:.1f}); emergency PO proposal {row['emergency_qty']} units"
        )
    return dg.MaterializeResult(metadata={"alerts": alerts.height, "alerts_table": md_preview(alerts)})


decision_assets = [
    replenishment_plan,
    purchase_orders,
    replenishment_simulation,
    product_selection,
    sales_spike_alerts,
]
