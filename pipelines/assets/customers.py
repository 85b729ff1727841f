"""Customer decisions: lifetime value, churn risk and next-order timing, joined to the RFM actions."""

from datetime import timedelta

import dagster as dg
import polars as pl

from models import clv
from pipelines.assets.common import DECISIONS, OWNERS, PUBLISHED, md_preview, needs_marts, png_metadata
from pipelines.core.warehouse import connect, export, write_table


def _transactions(con) -> pl.DataFrame:
    """Completed orders per customer and day with their net value (the input of the holdout check)."""
    return con.sql(
        """
        SELECT customer_id, order_date AS date, sum(net_revenue)::DOUBLE AS value
        FROM main.fct_order_lines
        WHERE customer_id IS NOT NULL AND NOT is_cancelled
        GROUP BY ALL
        """
    ).pl()


@dg.asset(
    key=["decisions", "customer_clv"],
    group_name="decisions",
    deps=[
        PUBLISHED,
        dg.AssetKey("customer_purchase_summary"),
        dg.AssetKey("customer_rfm"),
        dg.AssetKey("fct_order_lines"),
    ],
    kinds={"duckdb", "polars", "scipy"},
    owners=OWNERS,
    pool="duckdb_writer",
    description=(
        "One row per customer: probability still active (BG/NBD), expected orders in the next 30/90/365 days, "
        "expected order value (Gamma-Gamma), 12-month CLV discounted monthly, churn-risk band and expected "
        "next-order date, with the RFM segment and its action; ordered by value at risk."
    ),
)
def customer_clv(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    with connect(log=context.log.info) as con:
        missing = needs_marts(con, ["customer_purchase_summary", "customer_rfm"])
        if missing:
            return _skipped(context, missing)
        summary = con.sql("SELECT * FROM main.customer_purchase_summary").pl()
        rfm = con.sql(
            "SELECT customer_id, segment, segment_action, recency_days, monetary FROM main.customer_rfm"
        ).pl()
    as_of = summary["as_of_date"].max()
    bg, gg = clv.fit_clv_models(summary)
    scored = clv.score_customers(summary, as_of, bgnbd=bg, gamma_gamma=gg)
    scored = (
        scored.join(rfm, on="customer_id", how="left")
        .with_columns(value_at_risk=(pl.col("predicted_clv") * (1 - pl.col("p_alive"))).round(2))
        .sort(["value_at_risk", "customer_id"], descending=[True, False])
    )
    write_table(scored, "decisions", "customer_clv")
    export(scored, "customer_clv")
    context.log.info(
        f"BG/NBD r={bg.r:.3f} alpha={bg.alpha:.2f} a={bg.a:.3f} b={bg.b:.3f} (LL {bg.log_likelihood:.1f}); "
        f"Gamma-Gamma p={gg.p:.2f} q={gg.q:.2f} v={gg.v:.2f}"
    )
    bands = scored.group_by("churn_risk").len().sort("churn_risk")
    notes = []
    if not bg.converged:
        notes.append(
            "BG/NBD fit ended on a boundary (no sign of customers dropping out in this history): "
            "P(alive) is close to 1 for everyone, so the churn bands carry no information."
        )
        context.log.warning(notes[-1])
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": scored.height,
            "bgnbd_params": dg.MetadataValue.json(
                {
                    "r": bg.r,
                    "alpha": bg.alpha,
                    "a": bg.a,
                    "b": bg.b,
                    "log_likelihood": bg.log_likelihood,
                    "converged": bg.converged,
                    "fit_seconds": bg.fit_seconds,
                }
            ),
            "gamma_gamma_params": dg.MetadataValue.json(
                {
                    "p": gg.p,
                    "q": gg.q,
                    "v": gg.v,
                    "log_likelihood": gg.log_likelihood,
                    "converged": gg.converged,
                }
            ),
            "customers_by_churn_risk": dg.MetadataValue.json(dict(bands.iter_rows())),
            "predicted_clv_total": float(scored["predicted_clv"].sum()),
            "top_value_at_risk": md_preview(
                scored.select(
                    "customer_id",
                    "segment",
                    "p_alive",
                    "predicted_clv",
                    "value_at_risk",
                    "churn_risk",
                    "segment_action",
                )
            ),
            "notes": dg.MetadataValue.text("\n".join(notes) or "fit converged"),
        }
    )


@dg.asset(
    key=["decisions", "clv_calibration"],
    group_name="decisions",
    deps=[PUBLISHED, dg.AssetKey("fct_order_lines")],
    kinds={"duckdb", "polars", "scipy"},
    owners=OWNERS,
    pool="duckdb_writer",
    description=(
        "Holdout check of the CLV model: fit on the history before a cut-off (the last 180 days held out), "
        "predict repeat purchases in the holdout per frequency group, compare with what happened."
    ),
)
def clv_calibration(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    with connect(log=context.log.info) as con:
        missing = needs_marts(con, ["fct_order_lines"])
        if missing:
            return _skipped(context, missing)
        transactions = _transactions(con)
    end = transactions["date"].max()
    span = (end - transactions["date"].min()).days
    holdout = min(180, span // 3)
    cutoff = end - timedelta(days=holdout)
    result = clv.calibration_holdout(transactions, cutoff, end)
    table = result.table.with_columns(pl.lit(cutoff).alias("cutoff"), pl.lit(end).alias("holdout_end"))
    write_table(table, "decisions", "clv_calibration")
    export(table, "clv_calibration")
    chart = DECISIONS.chart_path("clv_calibration.png")
    clv.calibration_chart(result.table, chart, title=f"Repeat purchases after {cutoff}: predicted vs actual")
    context.log.info(
        f"holdout {cutoff}..{end}: predicted {result.predicted_total:.0f} vs actual {result.actual_total} "
        f"repeat purchases ({result.total_relative_error:+.1%})"
    )
    return dg.MaterializeResult(
        metadata={
            "cutoff": str(cutoff),
            "predicted_total": float(result.predicted_total),
            "actual_total": int(result.actual_total),
            "total_relative_error": float(result.total_relative_error),
            "within_15_percent": abs(result.total_relative_error) <= 0.15,
            "table": md_preview(result.table, rows=20),
            **png_metadata("chart", chart),
        }
    )


def _skipped(context: dg.AssetExecutionContext, missing: list[str]) -> dg.MaterializeResult:
    msg = f"skipped: the marts {', '.join(missing)} were not built (the source lacks the tables they need)"
    context.log.warning(msg)
    return dg.MaterializeResult(metadata={"skipped": dg.MetadataValue.text(msg)})


customer_assets = [customer_clv, clv_calibration]
