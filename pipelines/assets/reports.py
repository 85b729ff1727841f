"""The decision report: a self-contained HTML page per run, the latest at data/reports/latest.html."""

import dagster as dg

from pipelines.assets.common import OWNERS, PUBLISHED
from pipelines.core.settings import get_settings
from pipelines.sources.base import read_manifest


@dg.asset(
    key=["reports", "decision_report"],
    group_name="reports",
    deps=[
        PUBLISHED,
        dg.AssetKey(["decisions", "purchase_orders"]),
        dg.AssetKey(["decisions", "product_selection"]),
        dg.AssetKey(["decisions", "customer_clv"]),
        dg.AssetKey(["decisions", "forecast_backtest"]),
        dg.AssetKey(["decisions", "replenishment_simulation"]),
        dg.AssetKey("compensation_coupons"),
        dg.AssetKey("nps_by_month"),
        dg.AssetKey("inventory_turnover_category"),
        dg.AssetKey("carbon_monthly"),
        dg.AssetKey("traffic_funnel"),
    ],
    kinds={"html", "duckdb"},
    owners=OWNERS,
    pool="duckdb_writer",
    description=(
        "The day's decisions first (purchase orders, customers to contact with their action, compensation "
        "coupons, SKUs to expand or delist), then the shop's health (revenue, NPS with its interval, turnover "
        "and stock-outs, carbon per order, traffic funnel), each with a chart and its numbers; states the "
        "source it was built from and what was skipped."
    ),
)
def decision_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    from pipelines.report import build_report

    settings = get_settings()
    manifest = read_manifest(settings.landing_dir)
    path = build_report(settings.warehouse, settings.reports_dir, manifest, run_label=context.run_id[:8])
    latest = settings.reports_dir / "latest.html"
    context.log.info(f"decision report written to {path} (latest: {latest})")
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.path(str(path)),
            "latest": dg.MetadataValue.path(str(latest)),
            "size_kb": round(path.stat().st_size / 1024, 1),
        }
    )


report_assets = [decision_report]
