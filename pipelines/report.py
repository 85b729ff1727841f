"""The decision report: one self-contained HTML page per run, the day's decisions first, then the shop's health.

    build_report(warehouse, out_dir, landing_manifest, run_label) -> out_dir/report_<as_of_date>.html

It opens the DuckDB file read-only (and closes it), reads the marts (schema `main`) and the decision
tables (schema `decisions`), draws every chart with matplotlib on an Agg canvas (no pyplot global state,
safe in worker processes) as a base64 PNG embedded next to the table of numbers it shows, renders
`templates/report.html.j2` with Jinja2 (autoescape on: every string that comes from the data is escaped),
writes the page atomically and copies it atomically to `out_dir/latest.html`. No external CSS or JS.

Decision tables are written by other assets and their columns may change: each section discovers the
columns at run time, renders when its table exists and has rows, and otherwise says "Not available: why".
A section that fails for an unexpected reason is reported as not available with the error: the report
itself never fails because one part of the data is missing or odd.

Key numbers carry `data-metric="<key>"` and `data-value="<raw number>"` attributes (stable ids a test or a
scraper can read); sections carry `data-section` and `data-status` (ok, empty, unavailable).

Concurrency: DuckDB refuses even a read-only open while another process writes the file, so the asset that
calls this belongs in the `duckdb_writer` pool, and no DuckDBResource connection to the same file may be open
in this process while it runs (DuckDB rejects a second connection with a different configuration).
"""

from __future__ import annotations

import base64
import io
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipelines.core.settings import DBT_PROJECT_DIR, get_settings
from pipelines.core.warehouse import connect

log = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE_NAME = "report.html.j2"
TABLE_ROW_LIMIT = 25
COUPON_WINDOW_DAYS = 7  # coupons "to send now": incidents of the last week up to the as-of date

# Every mart a report section reads; the ones missing from the warehouse are listed as skipped.
EXPECTED_MARTS = (
    "fct_daily_sales",
    "fct_sku_daily_demand",
    "dim_products",
    "customer_rfm",
    "rfm_segment_summary",
    "customer_pareto",
    "nps_by_month",
    "nps_by_delivery",
    "inventory_turnover",
    "inventory_turnover_category",
    "carbon_per_shipment",
    "carbon_per_order",
    "delivery_performance",
    "delay_hotspots",
    "compensation_coupons",
    "traffic_funnel",
)
# The raw table each mart cannot do without: names the cause when a source lacks that table.
MART_NEEDS = {
    "nps_by_month": "reviews",
    "nps_by_delivery": "reviews",
    "inventory_turnover": "inventory",
    "inventory_turnover_category": "inventory",
    "carbon_per_shipment": "shipments",
    "carbon_per_order": "shipments",
    "delivery_performance": "shipments",
    "delay_hotspots": "shipments",
    "compensation_coupons": "shipments",
    "traffic_funnel": "traffic",
}
# Columns whose fractions read better as percentages (only applied when every value lies in [-1.5, 1.5]).
_PCT_NAME = re.compile(r"(rate|share|risk|coverage|p_alive|wape|bias|fill|below_p|above_p)", re.I)
_WIDE_INTS = tuple(getattr(pl, n) for n in ("Int128", "UInt128") if hasattr(pl, n))  # DuckDB's HUGEINT sums
_COLORS = ["#1f6f8b", "#e07b39", "#5b8c5a", "#9c4f96", "#c44e52", "#8c8c8c", "#d4a72c", "#3c9fd8"]


# --------------------------------------------------------------------------------------------------
# What a section holds
# --------------------------------------------------------------------------------------------------


@dataclass
class Metric:
    """One key number: shown formatted, with the raw value in data-value for tests and scrapers."""

    key: str
    label: str
    value: Any
    kind: str = "number"  # int, number, money, pct, nps, kg, date, text
    note: str | None = None
    headline: bool = False

    @property
    def display(self) -> str:
        return _fmt(self.value, self.kind)

    @property
    def raw(self) -> str:
        v = self.value
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return repr(round(v, 6))
        return str(v)


@dataclass
class Table:
    key: str
    caption: str
    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool]
    total_rows: int
    note: str | None = None
    long_text: list[bool] = field(default_factory=list)  # columns of sentences: give them room to wrap


@dataclass
class Chart:
    key: str
    title: str
    alt: str
    png_base64: str


@dataclass
class Section:
    key: str
    title: str
    part: str  # "decisions" or "health"
    status: str = "ok"  # ok, empty, unavailable
    reason: str | None = None
    intro: str | None = None
    metrics: list[Metric] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Parts of the section that could not be shown: (what, why); also listed under "skipped".
    missing: list[tuple[str, str]] = field(default_factory=list)

    def unavailable(self, reason: str) -> Section:
        self.status, self.reason = "unavailable", reason
        return self


# --------------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------------


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v)))


def _auto_number(v: float) -> str:
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 1:
        return f"{v:,.2f}"
    return f"{v:.3f}"


def _fmt(v: Any, kind: str = "number") -> str:
    """Human text for a value of a given kind; '–' for missing values."""
    if _is_missing(v):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return "; ".join(_fmt(x, "text") for x in v)
    if kind == "text" or isinstance(v, str):
        return str(v)
    if isinstance(v, (date, datetime)):
        return v.isoformat()[:10] if kind == "date" or isinstance(v, date) else str(v)
    if kind == "int":
        return f"{int(round(v)):,}"
    if kind == "money":
        return f"{v:,.0f}"
    if kind == "pct":
        return f"{100 * v:.1f}%" if abs(v) >= 0.1 else f"{100 * v:.2f}%"
    if kind == "nps":
        return f"{v:+.1f}"
    if kind == "kg":
        return f"{v:,.2f}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return _auto_number(float(v))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(text).lower()).strip("_") or "x"


def _column_kinds(frame: pl.DataFrame) -> dict[str, str]:
    """Guess a display kind per column: percentages for fraction-valued rate/share/risk columns."""
    kinds = {}
    for name, dtype in frame.schema.items():
        if dtype.is_integer():
            kinds[name] = "int"
        elif dtype.is_float() and _PCT_NAME.search(name):
            col = frame.get_column(name).drop_nulls().drop_nans()
            kinds[name] = "pct" if col.len() and float(col.abs().max()) <= 1.5 else "number"
        elif dtype.is_numeric():
            kinds[name] = "number"
        elif dtype == pl.Date:
            kinds[name] = "date"
        else:
            kinds[name] = "text"
    return kinds


def _table(
    key: str,
    caption: str,
    frame: pl.DataFrame,
    labels: dict[str, str] | None = None,
    kinds: dict[str, str] | None = None,
    limit: int | None = TABLE_ROW_LIMIT,
    note: str | None = None,
) -> Table:
    """A display table from a frame: formatted cells, numeric columns flagged for right alignment."""
    labels, guessed = labels or {}, _column_kinds(frame)
    guessed.update(kinds or {})
    shown = frame.head(limit) if limit else frame
    rows = []
    for rec in shown.iter_rows():
        rows.append([_fmt(v, guessed[c]) for c, v in zip(frame.columns, rec, strict=True)])
    numeric = [frame.schema[c].is_numeric() for c in frame.columns]
    long_text = [not n and any(len(r[i]) > 40 for r in rows) for i, n in enumerate(numeric)]
    if limit and frame.height > limit:
        more = f"Showing {limit} of {frame.height:,} rows."
        note = f"{note} {more}" if note else more
    return Table(
        key,
        caption,
        [labels.get(c, c.replace("_", " ")) for c in frame.columns],
        rows,
        numeric,
        frame.height,
        note,
        long_text,
    )


# --------------------------------------------------------------------------------------------------
# Charts
# --------------------------------------------------------------------------------------------------


def _chart(
    key: str, title: str, alt: str, draw: Callable[[Any], None], size: tuple[float, float] = (9, 3.4)
) -> Chart:
    """Draw on a fresh Agg figure and return it as base64 PNG (Figure + canvas: no pyplot global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    draw(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return Chart(key, title, alt, base64.b64encode(buf.getvalue()).decode("ascii"))


def _style(ax: Any) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=8)


def _barh(
    ax: Any,
    labels: list[str],
    values: list[float],
    fmt: Callable[[float], str],
    color: str = _COLORS[0],
    percent: bool = False,
) -> None:
    pos = list(range(len(labels)))[::-1]
    ax.barh(pos, [0 if _is_missing(v) else v for v in values], color=color)
    ax.set_yticks(pos, labels)
    for p, v in zip(pos, values, strict=True):
        if not _is_missing(v):
            ax.annotate(fmt(v), (v, p), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
    _style(ax)
    ax.grid(axis="y", visible=False)
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.8)
    if percent:
        ax.xaxis.set_major_formatter(lambda v, _p: f"{100 * v:.0f}%")


# --------------------------------------------------------------------------------------------------
# The warehouse, read-only, with the columns of every table discovered once
# --------------------------------------------------------------------------------------------------


class _Warehouse:
    def __init__(self, con: duckdb.DuckDBPyConnection, manifest: dict) -> None:
        self.con = con
        self.manifest = manifest
        self._cols: dict[tuple[str, str], dict[str, str]] = {}
        for schema, table, column, dtype in con.sql(
            "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
            "ORDER BY table_schema, table_name, ordinal_position"
        ).fetchall():
            self._cols.setdefault((schema, table), {})[column] = dtype

    def has(self, schema: str, name: str) -> bool:
        return (schema, name) in self._cols

    def cols(self, schema: str, name: str) -> dict[str, str]:
        return self._cols.get((schema, name), {})

    def frame(self, sql: str, params: list | None = None) -> pl.DataFrame:
        """Run SQL and return Polars; decimals become floats, and whole-number decimals and 128-bit sums Int64."""
        rel = self.con.sql(sql, params=params) if params else self.con.sql(sql)
        out = rel.pl()
        casts = []
        for name, dtype in out.schema.items():
            if isinstance(dtype, pl.Decimal):
                casts.append(pl.col(name).cast(pl.Int64 if dtype.scale == 0 else pl.Float64))
            elif dtype in _WIDE_INTS:
                casts.append(pl.col(name).cast(pl.Int64))
        return out.with_columns(casts) if casts else out

    def table(self, schema: str, name: str) -> pl.DataFrame:
        return self.frame(f"SELECT * FROM {_q(schema)}.{_q(name)}")

    def missing_reason(self, schema: str, name: str) -> str | None:
        """Why schema.name cannot be used (absent or empty), or None when it has rows."""
        if not self.has(schema, name):
            if schema == "decisions":
                return (
                    f"table decisions.{name} is not in the warehouse: the decision asset that writes it "
                    "has not run yet or failed"
                )
            raw = MART_NEEDS.get(name)
            if raw and raw in (self.manifest.get("missing_tables") or []):
                return f"mart {schema}.{name} is not in the warehouse: the source has no {raw} table"
            return f"mart {schema}.{name} is not in the warehouse (dbt did not build it)"
        n = self.con.sql(f"SELECT count(*) FROM {_q(schema)}.{_q(name)}").fetchall()[0][0]
        if n == 0:
            raw = MART_NEEDS.get(name)
            cause = (
                f" (the source has no {raw} table)"
                if raw and raw in (self.manifest.get("missing_tables") or [])
                else ""
            )
            return f"table {schema}.{name} has no rows{cause}"
        return None


def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _pick(columns: Iterable[str], *candidates: str, contains: tuple[str, ...] = ()) -> str | None:
    """The first candidate column present, else the first column whose name contains one of `contains`."""
    cols = list(columns)
    lower = {c.lower(): c for c in cols}
    for cand in candidates:
        if cand.lower() in lower:
            return lower[cand.lower()]
    for part in contains:
        for c in cols:
            if part in c.lower():
                return c
    return None


def _dbt_vars() -> dict[str, Any]:
    """The thresholds the marts were built with (dbt_project.yml vars), so the report states the same ones."""
    defaults = {"stockout_rate_target": 0.03, "hotspot_late_share": 0.3, "hotspot_min_shipments": 5}
    try:
        import yaml

        found = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text()).get("vars") or {}
        return {k: found.get(k, v) if found.get(k) is not None else v for k, v in defaults.items()}
    except Exception:  # noqa: BLE001 - the defaults are the documented values
        return defaults


# --------------------------------------------------------------------------------------------------
# Part 1: the day's decisions
# --------------------------------------------------------------------------------------------------


def _purchase_orders(s: Section, wh: _Warehouse, ctx: dict) -> Section:
    reason = wh.missing_reason("decisions", "purchase_orders")
    if reason and wh.has("decisions", "purchase_orders"):
        # The table is there but empty: the policy ran and nothing is due, a result in its own right.
        s.metrics.append(Metric("purchase_order_lines", "order lines", 0, "int", headline=True))
        s.status, s.reason = (
            "empty",
            (
                "no purchase order to place today: decisions.purchase_orders has no rows "
                "(no SKU is at or below its reorder point)"
            ),
        )
        return s
    if reason:
        return s.unavailable(reason)
    po = wh.table("decisions", "purchase_orders")
    qty = _pick(po.columns, "quantity", "order_qty", contains=("qty", "quantity", "units"))
    supplier = _pick(po.columns, "supplier", contains=("supplier", "vendor"))
    needed = _pick(po.columns, "needed_by", contains=("needed", "arrive", "due"))
    order_date = _pick(po.columns, "order_date", contains=("order_date",))
    if qty is None:
        return s.unavailable(
            f"decisions.purchase_orders has no quantity column (columns: {', '.join(po.columns)})"
        )
    po = po.with_columns(pl.col(qty).cast(pl.Float64).alias("_qty"))
    if wh.has("main", "dim_products") and "sku" in po.columns and "unit_cost" not in po.columns:
        cost = wh.frame("SELECT sku, CAST(unit_cost AS DOUBLE) AS unit_cost FROM main.dim_products")
        po = po.join(cost, on="sku", how="left")
    value_expr = (pl.col("_qty") * pl.col("unit_cost")) if "unit_cost" in po.columns else None
    if value_expr is not None:
        po = po.with_columns(value_expr.alias("order_value_at_cost"))
    s.intro = (
        "Order lines the replenishment policy wants placed now (inventory position at or below the "
        "reorder point, quantities rounded to MOQ and pack size). Place them with each supplier before "
        "the needed-by date."
    )
    s.metrics += [
        Metric("purchase_order_lines", "order lines", po.height, "int", headline=True),
        Metric("purchase_order_units", "units to order", float(po["_qty"].sum()), "int"),
    ]
    if supplier:
        s.metrics.append(Metric("purchase_order_suppliers", "suppliers", po[supplier].n_unique(), "int"))
    if "order_value_at_cost" in po.columns:
        s.metrics.append(
            Metric(
                "purchase_order_value",
                f"value at cost ({ctx['currency']})",
                float(po["order_value_at_cost"].fill_null(0).sum()),
                "money",
            )
        )
    group = supplier or ("sku" if "sku" in po.columns else None)
    if group:
        aggs = [pl.len().alias("lines"), pl.col("_qty").sum().alias("units")]
        if "order_value_at_cost" in po.columns:
            aggs.append(pl.col("order_value_at_cost").sum().alias("value_at_cost"))
        if needed:
            aggs.append(pl.col(needed).min().alias("earliest_needed_by"))
        by = po.group_by(group).agg(aggs).sort("units", descending=True)
        top = by.head(15)
        s.charts.append(
            _chart(
                "purchase-orders-by-supplier",
                f"Units to order by {group}",
                f"bar chart of units to order per {group}",
                lambda fig: _barh(
                    fig.add_subplot(),
                    [str(x) for x in top[group]],
                    top["units"].to_list(),
                    lambda v: f"{v:,.0f}",
                ),
                size=(9, max(2.2, 0.32 * top.height + 1)),
            )
        )
        s.tables.append(
            _table("purchase-orders-by-supplier", f"Orders by {group}", by, kinds={"units": "int"})
        )
    sort_cols = [c for c in (order_date, supplier, needed) if c]
    lines = po.sort(sort_cols) if sort_cols else po
    s.tables.append(
        _table(
            "purchase-order-lines",
            "Order lines",
            lines.drop("_qty"),
            limit=40,
            note="The full list is in the exports folder (purchase_orders.csv).",
        )
    )
    return s


def _replenishment_plan(s: Section, wh: _Warehouse, ctx: dict) -> Section:
    reason = wh.missing_reason("decisions", "replenishment_plan")
    if reason:
        return s.unavailable(reason)
    plan = wh.table("decisions", "replenishment_plan")
    risk = _pick(plan.columns, "stockout_risk", contains=("risk",))
    key = "sku" if "sku" in plan.columns else plan.columns[0]
    if "warehouse" in plan.columns:
        plan = plan.with_columns(
            (pl.col(key).cast(pl.String) + " @ " + pl.col("warehouse").cast(pl.String)).alias("_label")
        )
    else:
        plan = plan.with_columns(pl.col(key).cast(pl.String).alias("_label"))
    s.intro = (
        "Per SKU: safety stock and reorder point from the demand forecast's lead-time distribution, the "
        "order date and quantity, and the chance of running out before the next delivery arrives."
    )
    s.metrics.append(Metric("plan_skus", "SKUs planned", plan.height, "int"))
    due = _pick(plan.columns, "order_due", contains=("due",))
    if due and plan.schema[due] == pl.Boolean:
        s.metrics.append(Metric("plan_orders_due_now", "SKUs to reorder now", int(plan[due].sum()), "int"))
    if risk and plan.schema[risk].is_numeric():
        plan = plan.sort(risk, descending=True, nulls_last=True)
        s.metrics.append(
            Metric(
                "plan_skus_risk_over_50pct",
                "SKUs more likely than not to run out before the next delivery",
                int((plan[risk] > 0.5).sum()),
                "int",
                headline=True,
            )
        )
        top = plan.head(15)
        s.charts.append(
            _chart(
                "stockout-risk",
                "Stock-out risk before the next delivery (top 15 SKUs)",
                "bar chart of stock-out risk per SKU",
                lambda fig: _barh(
                    fig.add_subplot(),
                    top["_label"].to_list(),
                    top[risk].to_list(),
                    lambda v: f"{100 * v:.0f}%",
                    color=_COLORS[4],
                    percent=True,
                ),
                size=(9, max(2.2, 0.3 * top.height + 1)),
            )
        )
    preferred = [
        "sku",
        "warehouse",
        "supplier",
        "on_hand",
        "on_order",
        "inventory_position",
        "safety_stock",
        "reorder_point",
        "order_up_to",
        "order_qty",
        "order_date",
        "needed_by",
        "days_of_supply",
        risk,
    ]
    shown = [c for c in dict.fromkeys(preferred) if c and c in plan.columns] or [
        c for c in plan.columns if c != "_label"
    ]
    s.tables.append(
        _table(
            "replenishment-plan",
            "Plan, highest stock-out risk first",
            plan.select(shown),
            limit=15,
            note="The full plan is in the exports folder.",
        )
    )
    return s


def _replenishment_simulation(s: Section, wh: _Warehouse, ctx: dict) -> Section:
    reason = wh.missing_reason("decisions", "replenishment_simulation")
    if reason:
        return s.unavailable(reason)
    sim = wh.table("decisions", "replenishment_simulation")
    policy = _pick(sim.columns, "policy", contains=("policy", "name"))
    if policy is None:
        return s.unavailable(
            f"decisions.replenishment_simulation has no policy column ({', '.join(sim.columns)})"
        )
    s.intro = (
        f"The forecast-driven policy against the shop's rule of thumb, replayed day by day on demand it "
        f"did not see. Target: stock-out rate under {100 * ctx['stockout_target']:.0f}%."
    )
    measures = [c for c in ("stockout_rate", "fill_rate") if c in sim.columns]
    for rec in sim.iter_rows(named=True):
        for m in measures + [c for c in ("turnover", "dio") if c in sim.columns]:
            kind = "pct" if m in ("stockout_rate", "fill_rate") else "number"
            s.metrics.append(
                Metric(f"sim_{m}_{_slug(rec[policy])}", f"{m.replace('_', ' ')}, {rec[policy]}", rec[m], kind)
            )
    if measures:

        def draw(fig: Any) -> None:
            axes = fig.subplots(1, len(measures), squeeze=False)[0]
            for ax, m in zip(axes, measures, strict=True):
                labels = [str(x) for x in sim[policy]]
                vals = [0.0 if _is_missing(v) else v for v in sim[m].to_list()]
                ax.bar(labels, vals, color=_COLORS[: len(labels)])
                if m == "stockout_rate":
                    ax.axhline(
                        ctx["stockout_target"], color="#c44e52", linestyle="--", linewidth=1, label="target"
                    )
                    ax.legend(fontsize=7, frameon=False)
                ax.set_title(m.replace("_", " "), fontsize=9)
                ax.yaxis.set_major_formatter(lambda v, _p: f"{100 * v:.0f}%")
                _style(ax)

        s.charts.append(
            _chart(
                "simulation",
                "Stock-out and fill rate by policy",
                "bar charts of stock-out and fill rate per policy",
                draw,
            )
        )
    s.tables.append(_table("replenishment-simulation", "Policy scores", sim, limit=None))
    return s


def _customers(s: Section, wh: _Warehouse, ctx: dict) -> Section:
    reason = wh.missing_reason("main", "rfm_segment_summary")
    if reason:
        return s.unavailable(reason)
    summ = wh.frame("SELECT * FROM main.rfm_segment_summary")
    order = [c for c in ("priority",) if c in summ.columns]
    summ = summ.sort(order) if order else summ.sort("customers", descending=True)
    s.intro = (
        "RFM segments (recency, frequency, monetary quintiles) of every identified customer with a "
        "purchase, each with the action the shop takes for it, in priority order."
    )
    s.metrics.append(Metric("customers_scored", "customers scored", int(summ["customers"].sum()), "int"))
    if wh.missing_reason("main", "customer_pareto") is None:
        top10 = wh.frame("SELECT revenue_share FROM main.customer_pareto WHERE top_percent = 10")
        if top10.height:
            s.metrics.append(
                Metric(
                    "pareto_top10_share",
                    "revenue share of the top 10% of customers",
                    top10["revenue_share"][0],
                    "pct",
                    headline=True,
                )
            )
    else:
        s.missing.append(("customer Pareto", wh.missing_reason("main", "customer_pareto") or ""))
    shown = summ.filter(pl.col("customers") > 0)
    if shown.height:

        def draw(fig: Any) -> None:
            a1, a2 = fig.subplots(1, 2, sharey=True)
            labels = [str(x) for x in shown["segment"]]
            _barh(a1, labels, shown["customers"].to_list(), lambda v: f"{v:,.0f}")
            a1.set_title("customers", fontsize=9)
            _barh(a2, labels, shown["revenue_share"].to_list(), lambda v: f"{100 * v:.1f}%", color=_COLORS[1])
            a2.set_title("share of net revenue", fontsize=9)
            a2.xaxis.set_major_formatter(lambda v, _p: f"{100 * v:.0f}%")

        s.charts.append(
            _chart(
                "segments",
                "Customers and revenue by RFM segment",
                "bar charts of customers and revenue share per segment",
                draw,
                size=(10, max(2.6, 0.33 * shown.height + 1)),
            )
        )
    cols = [
        c
        for c in (
            "segment",
            "customers",
            "customer_share",
            "revenue_share",
            "average_customer_value",
            "average_recency_days",
            "action",
        )
        if c in summ.columns
    ]
    s.tables.append(
        _table(
            "segments",
            "Segments and their action",
            summ.select(cols),
            limit=None,
            kinds={"revenue": "money", "average_customer_value": "money"},
        )
    )
    return s


def _at_risk_customers(s: Section, wh: _Warehouse, ctx: dict) -> Section:
    reason = wh.missing_reason("decisions", "customer_clv")
    if reason:
        s.missing.append(("customer lifetime value (decisions.customer_clv)", reason))
        return _at_risk_from_rfm(wh, s, reason)
    clv = wh.table("decisions", "customer_clv")
    value = _pick(clv.columns, "predicted_clv_12m", "predicted_clv", "clv_12m", "clv", contains=("clv",))
    churn = _pick(clv.columns, "churn_risk", contains=("churn",))
    alive = _pick(clv.columns, "p_alive", contains=("alive",))
    if value is None or "customer_id" not in clv.columns:
        return s.unavailable(
            f"decisions.customer_clv lacks a customer_id or CLV column (columns: {', '.join(clv.columns)})"
        )
    if wh.has("main", "customer_rfm") and (
        "segment" not in clv.columns or not _pick(clv.columns, "action", "segment_action")
    ):
        rfm = wh.frame(
            "SELECT customer_id, segment AS rfm_segment, segment_action AS rfm_action FROM main.customer_rfm"
        )
        clv = clv.join(rfm, on="customer_id", how="left")
    segment = _pick(clv.columns, "segment", "rfm_segment")
    action = _pick(clv.columns, "action", "segment_action", "rfm_action")
    if churn and clv.schema[churn] == pl.String:
        at_risk = pl.col(churn).str.to_lowercase().is_in(["high", "medium"])
        band = pl.col(churn)
    elif alive:
        at_risk = pl.col(alive) < 0.5
        band = (
            pl.when(pl.col(alive) < 0.3)
            .then(pl.lit("high"))
            .when(pl.col(alive) < 0.7)
            .then(pl.lit("medium"))
            .otherwise(pl.lit("low"))
        )
    else:
        return s.unavailable("decisions.customer_clv has neither a churn-risk nor a p_alive column")
    threshold = clv[value].cast(pl.Float64).quantile(0.8, interpolation="linear")
    clv = clv.with_columns(
        band.alias("_band"), (at_risk & (pl.col(value) >= threshold)).fill_null(False).alias("_target")
    )
    # value at risk = predicted CLV x (1 - P(alive)), the value expected to be lost: the best contact order.
    at_stake = _pick(clv.columns, "value_at_risk", contains=("at_risk",))
    order_by = at_stake if at_stake and clv.schema[at_stake].is_numeric() else value
    targets = clv.filter("_target").sort(order_by, descending=True, nulls_last=True)
    s.intro = (
        f"Customers whose predicted 12-month value is in the top 20% (at least {_fmt(threshold)} "
        f"{ctx['currency']}) but whose churn risk is high or medium: contact them first, with their segment's "
        f"action. Ordered by {order_by.replace('_', ' ')}."
    )
    s.metrics += [
        Metric("clv_customers", "customers with a CLV", clv.height, "int"),
        Metric(
            "at_risk_high_value_customers",
            "high-value customers at risk",
            targets.height,
            "int",
            headline=True,
        ),
        Metric(
            "clv_at_risk_total",
            f"their predicted CLV ({ctx['currency']})",
            float(targets[value].sum()),
            "money",
        ),
        Metric(
            "clv_total", f"predicted CLV, all customers ({ctx['currency']})", float(clv[value].sum()), "money"
        ),
    ]
    by_band = (
        clv.group_by("_band")
        .agg(
            pl.len().alias("customers"),
            pl.col(value).sum().alias("predicted_clv"),
            pl.col("_target").sum().alias("high_value_at_risk"),
        )
        .rename({"_band": "churn_risk"})
        .sort("churn_risk")
    )

    def draw(fig: Any) -> None:
        a1, a2 = fig.subplots(1, 2)
        labels = [str(x) for x in by_band["churn_risk"]]
        a1.bar(labels, by_band["customers"].to_list(), color=_COLORS[0])
        a1.set_title("customers by churn risk", fontsize=9)
        a2.bar(labels, by_band["predicted_clv"].to_list(), color=_COLORS[1])
        a2.set_title(f"predicted 12-month CLV ({ctx['currency']})", fontsize=9)
        for ax in (a1, a2):
            _style(ax)

    s.charts.append(
        _chart(
            "clv-by-churn",
            "Customers and predicted value by churn risk",
            "bar charts by churn risk band",
            draw,
        )
    )
    s.tables.append(_table("clv-by-churn", "By churn risk", by_band, kinds={"predicted_clv": "money"}))
    if segment:
        by_seg = (
            clv.group_by(segment)
            .agg(
                pl.len().alias("customers"),
                pl.col("_target").sum().alias("high_value_at_risk"),
                pl.col(value).mean().alias("mean_predicted_clv"),
                *([pl.col(action).first().alias("action")] if action else []),
            )
            .sort("high_value_at_risk", "customers", descending=True)
        )
        s.tables.append(
            _table(
                "clv-by-segment",
                "Customers to contact by segment",
                by_seg,
                limit=None,
                kinds={"mean_predicted_clv": "money"},
            )
        )
    nxt = _pick(clv.columns, "expected_next_order_date", contains=("next_order",))
    purchases = _pick(clv.columns, "expected_purchases_365d", contains=("expected_purchases",))
    cols = [
        c
        for c in dict.fromkeys(
            ["customer_id", segment, action, churn, alive, value, at_stake, purchases, nxt]
        )
        if c
    ]
    s.tables.append(
        _table(
            "at-risk-customers",
            f"Contact first (highest {order_by.replace('_', ' ')} first)",
            targets.select(cols),
            kinds={value: "money", at_stake or value: "money"},
        )
    )
    return s


def _at_risk_from_rfm(wh: _Warehouse, s: Section, reason: str) -> Section:
    """Without CLV scores, the best spenders of the slipping RFM segments, clearly labelled as the fallback."""
    if wh.missing_reason("main", "customer_rfm"):
        return s.unavailable(f"{reason}; and {wh.missing_reason('main', 'customer_rfm')}")
    slipping = ["Can't Lose Them", "At Risk", "Need Attention"]
    rfm = wh.frame(
        "SELECT customer_id, segment, recency_days, frequency, CAST(monetary AS DOUBLE) AS monetary, segment_action "
        "FROM main.customer_rfm WHERE segment IN (?, ?, ?) ORDER BY monetary DESC, customer_id",
        slipping,
    )
    s.status = "ok" if rfm.height else "empty"
    s.intro = (
        "Customer lifetime value is not available yet (see the note), so this list falls back to RFM: the "
        "highest-spending customers of the segments Can't Lose Them, At Risk and Need Attention."
    )
    s.metrics.append(Metric("rfm_slipping_customers", "customers in slipping segments", rfm.height, "int"))
    if rfm.height:
        by = (
            rfm.group_by("segment")
            .agg(pl.len().alias("customers"), pl.col("monetary").sum().alias("revenue"))
            .sort("revenue", descending=True)
        )
        s.charts.append(
            _chart(
                "slipping-segments",
                "Revenue of customers in slipping segments",
                "bar chart of revenue per slipping segment",
                lambda fig: _barh(
                    fig.add_subplot(), by["segment"].to_list(), by["revenue"].to_list(), lambda v: f"{v:,.0f}"
                ),
                size=(9, 2.4),
            )
        )
        s.tables.append(_table("slipping-segments", "Slipping segments", by, kinds={"revenue": "money"}))
        s.tables.append(
            _table(
                "at-risk-customers", "Contact first (highest spend first)", rfm, kinds={"monetary": "money"}
            )
        )
    else:
        s.reason = "no customer is in a slipping segment"
    return s


def _clv_calibration(s: Section, wh: _Warehouse, ctx: dict) -> Section:
    reason = wh.missing_reason("decisions", "clv_calibration")
    if reason:
        return s.unavailable(reason)
    cal = wh.table("decisions", "clv_calibration")
    group = _pick(cal.columns, "frequency_group", contains=("group", "bucket"))
    actual = _pick(cal.columns, "actual", contains=("actual",))
    predicted = _pick(cal.columns, "predicted", "expected", contains=("predicted", "expected"))
    s.intro = (
        "Holdout check of the purchase-count model: fitted on the history up to a cut-off, it predicts each "
        "customer's repeat purchases in the period after it, compared here with what happened."
    )
    if (
        group
        and actual
        and predicted
        and cal.schema[actual].is_numeric()
        and cal.schema[predicted].is_numeric()
    ):

        def draw(fig: Any) -> None:
            ax = fig.add_subplot()
            pos = list(range(cal.height))
            ax.plot(pos, cal[actual].to_list(), marker="o", label="actual", color=_COLORS[0])
            ax.plot(
                pos, cal[predicted].to_list(), marker="s", linestyle="--", label="predicted", color=_COLORS[1]
            )
            ax.set_xticks(pos, [str(x) for x in cal[group]])
            ax.set_xlabel(group.replace("_", " "), fontsize=8)
            ax.legend(fontsize=8, frameon=False)
            _style(ax)

        s.charts.append(
            _chart(
                "clv-calibration",
                "Predicted vs actual per group",
                "line chart of predicted and actual holdout purchases",
                draw,
            )
        )
        tot_a = _pick(cal.columns, "actual_total")
        tot_p = _pick(cal.columns, "predicted_total")
        if tot_a and tot_p and float(cal[tot_a].sum()) > 0:
            err = float(cal[tot_p].sum()) / float(cal[tot_a].sum()) - 1
            s.metrics.append(
                Metric(
                    "clv_calibration_total_error", "predicted vs actual holdout purchases, total", err, "pct"
                )
            )
    else:
        s.notes.append("No chart: the table has no group / actual / predicted columns to compare.")
    s.tables.append(_table("clv-calibration", "Calibration table", cal, limit=None))
    return s


def _coupons(s: Section, wh: _Warehouse, ctx: dict) -> Section:
    for mart in ("delay_hotspots", "compensation_coupons"):
        if not wh.has("main", mart):  # an empty mart is a result here: no incident, no coupon
            return s.unavailable(wh.missing_reason("main", mart) or f"main.{mart} is missing")
    v = ctx["vars"]
    rule = (
        f"a region-day is a delay hotspot when at least {v['hotspot_min_shipments']} delivered shipments were "
        f"due that day and at least {100 * v['hotspot_late_share']:.0f}% arrived late"
    )
    since = ctx["as_of"] - timedelta(days=COUPON_WINDOW_DAYS)
    s.intro = (
        f"One coupon per customer per delay incident ({rule}); guests get none. To send now: the incidents of "
        f"the {COUPON_WINDOW_DAYS} days up to {ctx['as_of']}; earlier incidents are shown for context."
    )
    coupons = wh.frame(
        "SELECT * FROM main.compensation_coupons ORDER BY incident_date DESC, region, customer_id"
    )
    hotspots = wh.frame("SELECT * FROM main.delay_hotspots ORDER BY incident_date DESC, region")
    recent = coupons.filter(pl.col("incident_date") > since)
    s.metrics += [
        Metric(
            "coupons_to_send",
            f"coupons to send (incidents after {since})",
            recent.height,
            "int",
            headline=True,
        ),
        Metric("coupons_total", "coupons, whole window", coupons.height, "int"),
        Metric("delay_hotspots", "delay incidents (region-days), whole window", hotspots.height, "int"),
    ]
    if coupons.height == 0:
        s.status = "empty"
        s.reason = f"no coupons to send: no region-day in the data was a delay hotspot ({rule})"
        return s
    if recent.height == 0:
        s.status = "empty"
        s.reason = (
            f"no coupon to send now: no delay incident in the {COUPON_WINDOW_DAYS} days up to {ctx['as_of']} "
            f"(the {coupons.height:,} coupons of earlier incidents are summarised below)"
        )
    by_region = (
        coupons.group_by("region")
        .agg(
            pl.len().alias("coupons"),
            pl.col("incident_date").n_unique().alias("incidents"),
            pl.col("incident_date").max().alias("latest_incident"),
        )
        .sort("coupons", "region", descending=[True, False])
    )
    top = by_region.head(15)
    s.charts.append(
        _chart(
            "coupons-by-region",
            "Coupons by region, whole window",
            "bar chart of coupons per region",
            lambda fig: _barh(
                fig.add_subplot(),
                [str(x) for x in top["region"]],
                top["coupons"].to_list(),
                lambda x: f"{x:,.0f}",
                color=_COLORS[1],
            ),
            size=(9, max(2.2, 0.3 * top.height + 1)),
        )
    )
    if recent.height:
        s.tables.append(
            _table(
                "coupons",
                "Coupons to send now",
                recent,
                limit=40,
                note="The full list is in the exports folder.",
            )
        )
    s.tables.append(_table("delay-hotspots", "Delay incidents (latest first)", hotspots, limit=15))
    s.tables.append(_table("coupons-by-region", "Coupons by region, whole window", by_region, limit=15))
    return s


def _product_selection(s: Section, wh: _Warehouse, ctx: dict) -> Section:
    reason = wh.missing_reason("decisions", "product_selection")
    if reason:
        return s.unavailable(reason)
    sel = wh.table("decisions", "product_selection")
    rec = _pick(sel.columns, "recommendation", contains=("recommend", "decision", "action"))
    score = _pick(sel.columns, "score", contains=("score",))
    if rec is None:
        return s.unavailable(
            f"decisions.product_selection has no recommendation column ({', '.join(sel.columns)})"
        )
    sel = sel.with_columns(pl.col(rec).cast(pl.String).str.to_lowercase().alias("_rec"))
    s.intro = "Each SKU scored on sales, margin, trend, stock and competitor prices, with a recommendation and its reasons."
    counts = (
        sel.group_by("_rec")
        .agg(pl.len().alias("skus"))
        .rename({"_rec": "recommendation"})
        .sort("recommendation")
    )
    for label in ("expand", "keep", "delist"):
        n = int(sel.filter(pl.col("_rec") == label).height)
        s.metrics.append(Metric(f"skus_{label}", f"SKUs to {label}", n, "int", headline=label != "keep"))
    s.charts.append(
        _chart(
            "selection-counts",
            "SKUs by recommendation",
            "bar chart of SKUs per recommendation",
            lambda fig: _barh(
                fig.add_subplot(),
                counts["recommendation"].to_list(),
                counts["skus"].to_list(),
                lambda v: f"{v:,.0f}",
            ),
            size=(9, 2.2),
        )
    )
    s.tables.append(_table("selection-counts", "SKUs by recommendation", counts, limit=None))
    base = [c for c in sel.columns if not c.startswith("_")]
    for label, desc in (("expand", True), ("delist", False)):
        part = sel.filter(pl.col("_rec") == label)
        if score and sel.schema[score].is_numeric():
            part = part.sort(score, descending=desc, nulls_last=True)
        if part.height:
            s.tables.append(_table(f"selection-{label}", f"To {label}", part.select(base)))
        else:
            s.notes.append(f"No SKU is recommended to {label}.")
    return s


def _forecast(s: Section, wh: _Warehouse, ctx: dict) -> Section:
    reason = wh.missing_reason("decisions", "demand_forecast")
    if reason:
        return s.unavailable(reason)
    cols = wh.cols("decisions", "demand_forecast")
    need = [c for c in ("sku", "date", "p50") if c not in cols]
    if need:
        return s.unavailable(f"decisions.demand_forecast lacks the columns {', '.join(need)}")
    lo, hi = _pick(cols, "p10", contains=("p10",)), _pick(cols, "p90", contains=("p90",))
    model = _pick(cols, "model")
    fc = wh.frame(
        "SELECT sku, CAST(date AS DATE) AS date, CAST(p50 AS DOUBLE) AS p50"
        + (f", CAST({_q(lo)} AS DOUBLE) AS p10" if lo else "")
        + (f", CAST({_q(hi)} AS DOUBLE) AS p90" if hi else "")
        + (f", CAST({_q(model)} AS VARCHAR) AS model" if model else "")
        + " FROM decisions.demand_forecast"
    )
    per_sku = (
        fc.group_by("sku")
        .agg(
            pl.col("date").min().alias("first_day"),
            pl.col("date").max().alias("last_day"),
            pl.col("p50").sum().alias("units_p50"),
            *([pl.col("p10").sum().alias("units_sum_p10")] if lo else []),
            *([pl.col("p90").sum().alias("units_sum_p90")] if hi else []),
            *([pl.col("model").mode().first().alias("model")] if model else []),
        )
        .sort("units_p50", "sku", descending=[True, False])
    )
    s.intro = (
        "Daily demand forecast per SKU: the median (p50) and the 80% band (p10 to p90), after the last "
        "eight weeks of actual demand. Sums of daily quantiles are shown for scale: they are not the "
        "quantiles of the period total."
    )
    s.metrics += [
        Metric("forecast_skus", "SKUs forecast", per_sku.height, "int"),
        Metric("forecast_days", "days ahead", fc["date"].n_unique(), "int"),
        Metric("forecast_units_p50", "units expected (sum of p50)", float(fc["p50"].sum()), "int"),
    ]
    top = per_sku.head(4)["sku"].to_list()
    hist = pl.DataFrame()
    if wh.has("main", "fct_sku_daily_demand") and top:
        start = fc["date"].min() - timedelta(days=56)
        hist = wh.frame(
            "SELECT sku, date, units FROM main.fct_sku_daily_demand WHERE sku IN (SELECT unnest(?)) AND date >= ? ORDER BY date",
            [top, start],
        )

    def draw(fig: Any) -> None:
        axes = fig.subplots(2, 2, squeeze=False).ravel()
        for ax, sku in zip(axes, top + [None] * (4 - len(top)), strict=True):
            if sku is None:
                ax.set_visible(False)
                continue
            f = fc.filter(pl.col("sku") == sku).sort("date")
            if hist.height:
                h = hist.filter(pl.col("sku") == sku)
                ax.plot(
                    h["date"].to_list(), h["units"].to_list(), color="#444444", linewidth=0.9, label="actual"
                )
            if lo and hi:
                ax.fill_between(
                    f["date"].to_list(),
                    f["p10"].to_list(),
                    f["p90"].to_list(),
                    color=_COLORS[0],
                    alpha=0.25,
                    label="p10-p90",
                )
            ax.plot(f["date"].to_list(), f["p50"].to_list(), color=_COLORS[0], linewidth=1.4, label="p50")
            ax.set_title(str(sku), fontsize=9)
            ax.tick_params(axis="x", rotation=30)
            _style(ax)
        axes[0].legend(fontsize=7, frameon=False)

    s.charts.append(
        _chart(
            "forecast-top-skus",
            "Forecast vs recent actual demand, top 4 SKUs",
            "four line charts of actual demand and forecast band",
            draw,
            size=(10, 5.2),
        )
    )
    s.tables.append(
        _table(
            "forecast-by-sku",
            "Forecast per SKU over the horizon",
            per_sku,
            limit=15,
            kinds={"units_p50": "number", "units_sum_p10": "number", "units_sum_p90": "number"},
        )
    )
    return s


def _forecast_accuracy(s: Section, wh: _Warehouse, ctx: dict) -> Section:
    reason = wh.missing_reason("decisions", "forecast_backtest")
    if reason:
        return s.unavailable(reason)
    bt = wh.table("decisions", "forecast_backtest")
    model = _pick(bt.columns, "model")
    if model is None:
        return s.unavailable(f"decisions.forecast_backtest has no model column ({', '.join(bt.columns)})")
    notes = []
    for col in ("fold", "segment"):
        if col in bt.columns:
            values = bt[col].cast(pl.String)
            if (values == "all").any():
                bt = bt.filter(pl.col(col).cast(pl.String) == "all")
                notes.append(f"{col} = all")
    if "metric" in bt.columns and "value" in bt.columns:
        wide = (
            bt.group_by(model, "metric")
            .agg(pl.col("value").cast(pl.Float64).mean())
            .pivot(on="metric", index=model, values="value")
            .sort(model)
        )
    else:
        num = [c for c, t in bt.schema.items() if t.is_numeric() and c != model]
        wide = bt.group_by(model).agg([pl.col(c).mean() for c in num]).sort(model)
        if "fold" in bt.columns and "fold = all" not in notes:
            notes.append("mean over folds")
    first = [
        c for c in ("wape", "mase", "rmsse", "bias", "coverage_p10_p90", "coverage") if c in wide.columns
    ]
    wide = wide.select(model, *first, *[c for c in wide.columns if c != model and c not in first])
    s.intro = (
        "Rolling-origin backtest: each model forecasts windows it did not see. WAPE is the error as a share "
        "of volume, MASE below 1 beats the weekly seasonal naive forecast, coverage is the share of actuals "
        "inside p10-p90 (aim: about 80%)."
    )
    if notes:
        s.notes.append("Rows: " + ", ".join(notes) + ".")
    wape = _pick(wide.columns, "wape")
    if wape and wide.height:
        best = wide.filter(pl.col(wape).is_not_null()).sort(wape).head(1)
        if best.height:
            s.metrics += [
                Metric("forecast_best_model", "lowest WAPE", str(best[model][0]), "text"),
                Metric("forecast_best_wape", "its WAPE", best[wape][0], "pct", headline=True),
            ]
        shown = [
            m
            for m in (
                wape,
                _pick(wide.columns, "mase"),
                _pick(wide.columns, "coverage", contains=("coverage",)),
            )
            if m
        ]

        def draw(fig: Any) -> None:
            axes = fig.subplots(1, len(shown), squeeze=False)[0]
            for ax, m in zip(axes, shown, strict=True):
                labels = [str(x) for x in wide[model]]
                vals = [0.0 if _is_missing(v) else v for v in wide[m].to_list()]
                ax.bar(labels, vals, color=_COLORS[: len(labels)])
                ax.set_title(m.replace("_", " "), fontsize=9)
                ax.tick_params(axis="x", rotation=30)
                if m == _pick(wide.columns, "mase"):
                    ax.axhline(1.0, color="#c44e52", linestyle="--", linewidth=1)
                _style(ax)

        s.charts.append(
            _chart("backtest", "Backtest accuracy by model", "bar charts of accuracy metrics per model", draw)
        )
    s.tables.append(_table("backtest", "Accuracy by model", wide, limit=None))
    return s


# --------------------------------------------------------------------------------------------------
# Part 2: the health of the shop
# --------------------------------------------------------------------------------------------------


def _revenue(s: Section, wh: _Warehouse, ctx: dict) -> Section:
    reason = wh.missing_reason("main", "fct_daily_sales")
    if reason:
        return s.unavailable(reason)
    d = wh.frame(
        "SELECT date, orders, units, CAST(gross_revenue AS DOUBLE) AS gross_revenue, "
        "CAST(returned_amount AS DOUBLE) AS returned_amount, CAST(revenue AS DOUBLE) AS revenue "
        "FROM main.fct_daily_sales ORDER BY date"
    )
    last, first = d["date"].max(), d["date"].min()
    win = lambda lo, hi: d.filter((pl.col("date") > lo) & (pl.col("date") <= hi))  # noqa: E731
    cur, prev = (
        win(last - timedelta(days=30), last),
        win(last - timedelta(days=60), last - timedelta(days=30)),
    )
    cur_rev, prev_rev = float(cur["revenue"].sum()), float(prev["revenue"].sum())
    full_prev = first <= last - timedelta(days=59)
    s.intro = (
        f"Net revenue per day (returns subtracted, cancellations excluded) from {first} to {last}, "
        f"in {ctx['currency']}, with its 7-day mean."
    )
    s.metrics += [
        Metric(
            "revenue_total",
            f"net revenue, whole window ({ctx['currency']})",
            float(d["revenue"].sum()),
            "money",
        ),
        Metric("orders_total", "orders, whole window", int(d["orders"].sum()), "int"),
        Metric(
            "revenue_last_30d",
            f"net revenue, last 30 days ({ctx['currency']})",
            cur_rev,
            "money",
            headline=True,
        ),
        Metric(
            "revenue_prev_30d",
            f"the 30 days before ({ctx['currency']})",
            prev_rev if full_prev else None,
            "money",
        ),
        Metric(
            "revenue_change_30d",
            "net revenue change vs the 30 days before",
            (cur_rev / prev_rev - 1) if full_prev and prev_rev > 0 else None,
            "pct",
            headline=True,
        ),
        Metric("orders_last_30d", "orders, last 30 days", int(cur["orders"].sum()), "int"),
        Metric(
            "aov_last_30d",
            f"average order value, last 30 days ({ctx['currency']})",
            cur_rev / float(cur["orders"].sum()) if cur["orders"].sum() else None,
            "number",
        ),
    ]
    d = d.with_columns(pl.col("revenue").rolling_mean(7, min_samples=7).alias("rolling"))

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        ax.plot(d["date"].to_list(), d["revenue"].to_list(), color="#9fb8c9", linewidth=0.7, label="daily")
        ax.plot(
            d["date"].to_list(), d["rolling"].to_list(), color=_COLORS[0], linewidth=1.8, label="7-day mean"
        )
        ax.set_ylabel(ctx["currency"], fontsize=8)
        ax.legend(fontsize=8, frameon=False)
        ax.yaxis.set_major_formatter(lambda v, _p: f"{v:,.0f}")
        _style(ax)

    s.charts.append(
        _chart(
            "revenue-daily", "Net revenue per day", "line chart of daily net revenue and its 7-day mean", draw
        )
    )
    monthly = (
        d.group_by(pl.col("date").dt.truncate("1mo").alias("month"))
        .agg(
            pl.len().alias("days"),
            pl.col("orders").sum(),
            pl.col("units").sum(),
            pl.col("gross_revenue").sum(),
            pl.col("returned_amount").sum(),
            pl.col("revenue").sum().alias("net_revenue"),
        )
        .with_columns((pl.col("net_revenue") / pl.col("orders")).alias("average_order_value"))
        .sort("month", descending=True)
    )
    s.tables.append(
        _table(
            "revenue-monthly",
            "By month (latest first; edge months can be partial, see days)",
            monthly,
            limit=None,
            kinds={"gross_revenue": "money", "returned_amount": "money", "net_revenue": "money"},
        )
    )
    return s


def _nps(s: Section, wh: _Warehouse, ctx: dict) -> Section:
    reason = wh.missing_reason("main", "nps_by_month")
    if reason:
        return s.unavailable(reason)
    m = wh.frame("SELECT * FROM main.nps_by_month ORDER BY score_kind, review_month")
    s.intro = (
        "Net Promoter Score per month with its 95% interval (adjusted Wald). The survey NPS (0-10 question) "
        "and the star-review proxy (5 stars promoter, 4 passive, 1-3 detractor) are different measures and "
        "are never mixed. Hollow markers: fewer than 30 answers."
    )
    kinds = [k for k in ("nps_survey", "star_proxy") if k in set(m["score_kind"].to_list())]
    for kind in kinds:
        k = m.filter(pl.col("score_kind") == kind)
        latest = k.tail(1).row(0, named=True)
        slug = "nps_survey" if kind == "nps_survey" else "nps_star_proxy"
        label = latest.get("measure_label") or kind
        month = latest["review_month"]
        s.metrics += [
            Metric(
                f"{slug}_latest",
                f"{label}, {month:%Y-%m}",
                latest["nps"],
                "nps",
                headline=True,
                note=f"95% interval {latest['nps_ci_lower']:+.1f} to {latest['nps_ci_upper']:+.1f}, n = {latest['n']}"
                + (" (small sample)" if latest.get("is_small_sample") else ""),
            ),
            Metric(f"{slug}_latest_ci_lower", "95% interval, lower", latest["nps_ci_lower"], "nps"),
            Metric(f"{slug}_latest_ci_upper", "95% interval, upper", latest["nps_ci_upper"], "nps"),
            Metric(f"{slug}_latest_n", "answers", latest["n"], "int"),
            Metric(f"{slug}_latest_month", "month", month, "date"),
        ]
    for kind in ("nps_survey", "star_proxy"):
        if kind not in kinds:
            s.missing.append(
                (f"NPS {kind}", f"main.nps_by_month has no {kind} rows (the source has no such answers)")
            )

    def draw(fig: Any) -> None:
        axes = fig.subplots(1, max(1, len(kinds)), squeeze=False, sharey=True)[0]
        for ax, kind in zip(axes, kinds, strict=False):
            k = m.filter(pl.col("score_kind") == kind)
            x = list(range(k.height))
            step = 1 if k.height <= 12 else 3
            ax.set_xticks(x[::step], [f"{d:%Y-%m}" for d in k["review_month"]][::step])
            ax.fill_between(
                x,
                k["nps_ci_lower"].to_list(),
                k["nps_ci_upper"].to_list(),
                color=_COLORS[0],
                alpha=0.2,
                label="95% interval",
            )
            ax.plot(x, k["nps"].to_list(), color=_COLORS[0], linewidth=1.4)
            small = (
                k["is_small_sample"].fill_null(False).to_list()
                if "is_small_sample" in k.columns
                else [False] * k.height
            )
            for xi, yi, sm in zip(x, k["nps"].to_list(), small, strict=True):
                ax.plot(
                    [xi],
                    [yi],
                    marker="o",
                    markersize=5,
                    color=_COLORS[0],
                    markerfacecolor="white" if sm else _COLORS[0],
                )
            ax.axhline(0, color="#999999", linewidth=0.8)
            ax.set_title(str(k["measure_label"][0]) if "measure_label" in k.columns else kind, fontsize=9)
            ax.tick_params(axis="x", rotation=30)
            _style(ax)
        axes[0].set_ylabel("NPS", fontsize=8)
        axes[0].legend(fontsize=7, frameon=False, loc="lower left")

    s.charts.append(
        _chart(
            "nps-monthly",
            "NPS per month, survey and star proxy shown separately",
            "line charts of monthly NPS with 95% intervals",
            draw,
            size=(10, 3.4),
        )
    )
    cols = [
        c
        for c in (
            "review_month",
            "n",
            "promoters",
            "passives",
            "detractors",
            "nps",
            "nps_ci_lower",
            "nps_ci_upper",
            "is_small_sample",
        )
        if c in m.columns
    ]
    for kind in kinds:
        k = m.filter(pl.col("score_kind") == kind).sort("review_month", descending=True)
        label = str(k["measure_label"][0]) if "measure_label" in k.columns else kind
        s.tables.append(
            _table(
                f"nps-monthly-{kind.replace('_', '-')}",
                f"{label}, by month (latest first)",
                k.select(cols),
                limit=None,
                kinds={"nps": "nps", "nps_ci_lower": "nps", "nps_ci_upper": "nps"},
            )
        )
    dreason = wh.missing_reason("main", "nps_by_delivery")
    if dreason:
        s.missing.append(("NPS by delivery outcome", dreason))
        return s
    dl = wh.frame("SELECT * FROM main.nps_by_delivery ORDER BY score_kind, delivery_status DESC")
    for rec in dl.iter_rows(named=True):
        slug = "nps_survey" if rec["score_kind"] == "nps_survey" else "nps_star_proxy"
        s.metrics.append(
            Metric(
                f"{slug}_{rec['delivery_status']}",
                f"{rec.get('measure_label') or rec['score_kind']}, "
                f"{rec['delivery_status'].replace('_', ' ')} deliveries",
                rec["nps"],
                "nps",
                note=f"95% interval {rec['nps_ci_lower']:+.1f} to {rec['nps_ci_upper']:+.1f}, n = {rec['n']}",
            )
        )

    def draw_delivery(fig: Any) -> None:
        ax = fig.add_subplot()
        dkinds = list(dict.fromkeys(dl["score_kind"].to_list()))
        statuses = ["on_time", "late"]
        width = 0.38
        for j, st in enumerate(statuses):
            part = dl.filter(pl.col("delivery_status") == st)
            xs, ys, lo, hi = [], [], [], []
            for i, kind in enumerate(dkinds):
                r = part.filter(pl.col("score_kind") == kind)
                if r.height:
                    xs.append(i + (j - 0.5) * width)
                    ys.append(r["nps"][0])
                    lo.append(r["nps"][0] - r["nps_ci_lower"][0])
                    hi.append(r["nps_ci_upper"][0] - r["nps"][0])
            ax.bar(
                xs,
                ys,
                width,
                yerr=[lo, hi],
                capsize=3,
                color=_COLORS[0] if st == "on_time" else _COLORS[4],
                label=st.replace("_", " "),
            )
        labels = {
            k: (
                dl.filter(pl.col("score_kind") == k)["measure_label"][0]
                if "measure_label" in dl.columns
                else k
            )
            for k in dkinds
        }
        ax.set_xticks(range(len(dkinds)), [labels[k] for k in dkinds], fontsize=8)
        ax.axhline(0, color="#999999", linewidth=0.8)
        ax.set_ylabel("NPS", fontsize=8)
        ax.legend(fontsize=8, frameon=False)
        _style(ax)

    s.charts.append(
        _chart(
            "nps-delivery",
            "NPS by delivery outcome (on time vs late), with 95% intervals",
            "bar chart of NPS for on-time and late deliveries",
            draw_delivery,
        )
    )
    cols = [
        c
        for c in (
            "delivery_status",
            "measure_label",
            "n",
            "nps",
            "nps_ci_lower",
            "nps_ci_upper",
            "is_small_sample",
        )
        if c in dl.columns
    ]
    s.tables.append(
        _table(
            "nps-delivery",
            "NPS by delivery outcome",
            dl.select(cols),
            limit=None,
            kinds={"nps": "nps", "nps_ci_lower": "nps", "nps_ci_upper": "nps"},
        )
    )
    return s


def _inventory(s: Section, wh: _Warehouse, ctx: dict) -> Section:
    reason = wh.missing_reason("main", "inventory_turnover")
    if reason:
        return s.unavailable(reason)
    target = float(ctx["stockout_target"])
    cols = wh.cols("main", "inventory_turnover")
    if "stockout_days" in cols and "inventory_days" in cols:
        so = "CAST(sum(stockout_days) AS DOUBLE) / nullif(sum(inventory_days), 0)"
    else:  # older marts: mean of the SKU rates
        so = "avg(stockout_rate)"
    monthly = wh.frame(f"""
        SELECT month_start, max(days_in_period) AS days, count(*) AS skus,
               {so} AS stockout_rate,
               avg(CASE WHEN meets_stockout_target THEN 1.0 WHEN meets_stockout_target IS NOT NULL THEN 0.0 END)
                   AS share_skus_meeting_target,
               CAST(sum(cogs) AS DOUBLE) AS cogs, sum(avg_inventory_value) AS avg_inventory_value,
               CAST(sum(cogs) AS DOUBLE) / nullif(sum(avg_inventory_value), 0) AS turnover,
               max(days_in_period) * sum(avg_inventory_value) / nullif(CAST(sum(cogs) AS DOUBLE), 0) AS days_inventory_outstanding
        FROM main.inventory_turnover GROUP BY month_start ORDER BY month_start""")
    overall = wh.frame(f"SELECT {so} AS stockout_rate FROM main.inventory_turnover")["stockout_rate"][0]
    latest = monthly.tail(1).row(0, named=True)
    s.intro = (
        f"Stock-out rate = SKU-days with nothing on hand / SKU-days with stock data, against the "
        f"{100 * target:.0f}% target; turnover = cost of goods sold / average inventory value, for each "
        "month (not annualised; edge months can be partial)."
    )
    s.metrics += [
        Metric(
            "stockout_rate_latest",
            f"stock-out rate, {latest['month_start']:%Y-%m}",
            latest["stockout_rate"],
            "pct",
            headline=True,
            note=f"target under {100 * target:.0f}%",
        ),
        Metric("stockout_target", "target", target, "pct"),
        Metric(
            "stockout_target_met_latest",
            "target met",
            None if latest["stockout_rate"] is None else bool(latest["stockout_rate"] < target),
            "text",
        ),
        Metric("stockout_rate_overall", "stock-out rate, whole window", overall, "pct"),
        Metric("turnover_latest", f"turnover, {latest['month_start']:%Y-%m}", latest["turnover"], "number"),
        Metric(
            "skus_meeting_target_latest",
            "share of SKUs under the target",
            latest["share_skus_meeting_target"],
            "pct",
        ),
    ]

    def draw(fig: Any) -> None:
        a1, a2 = fig.subplots(1, 2)
        x = monthly["month_start"].to_list()
        step = 1 if len(x) <= 12 else 3
        a1.set_xticks(list(range(len(x)))[::step], [f"{m:%Y-%m}" for m in x][::step])
        a1.plot(
            list(range(len(x))),
            [None if _is_missing(v) else v for v in monthly["stockout_rate"].to_list()],
            marker="o",
            color=_COLORS[4],
            label="stock-out rate",
        )
        a1.axhline(target, color="#333333", linestyle="--", linewidth=1, label=f"target {100 * target:.0f}%")
        a1.yaxis.set_major_formatter(lambda v, _p: f"{100 * v:.1f}%")
        a1.set_title("stock-out rate by month", fontsize=9)
        a1.legend(fontsize=7, frameon=False)
        pos = list(range(len(x)))
        a2.bar(pos, [0 if _is_missing(v) else v for v in monthly["turnover"].to_list()], color=_COLORS[0])
        a2.set_xticks(pos[::step], [f"{m:%Y-%m}" for m in x][::step])
        a2.set_title("inventory turnover by month", fontsize=9)
        for ax in (a1, a2):
            ax.tick_params(axis="x", rotation=45)
            _style(ax)

    s.charts.append(
        _chart(
            "inventory-monthly",
            "Stock-out rate vs target, and turnover",
            "line chart of stock-out rate with target and bar chart of turnover",
            draw,
            size=(10, 3.6),
        )
    )
    s.tables.append(
        _table(
            "inventory-monthly",
            "By month (latest first)",
            monthly.sort("month_start", descending=True),
            limit=None,
            kinds={
                "stockout_rate": "pct",
                "share_skus_meeting_target": "pct",
                "cogs": "money",
                "avg_inventory_value": "money",
            },
        )
    )
    if wh.missing_reason("main", "inventory_turnover_category") is None:
        cat = wh.frame(
            "SELECT category, skus, turnover, days_inventory_outstanding, days_of_supply, stockout_rate, sell_through, "
            "meets_stockout_target FROM main.inventory_turnover_category WHERE month_start = ? ORDER BY stockout_rate DESC NULLS LAST",
            [latest["month_start"]],
        )
        s.tables.append(
            _table(
                "inventory-category",
                f"By category, {latest['month_start']:%Y-%m}",
                cat,
                limit=None,
                kinds={"stockout_rate": "pct", "sell_through": "pct"},
            )
        )
    worst = (
        wh.frame(
            "SELECT sku, category, abc_class, stockout_days, inventory_days, stockout_rate, days_of_supply FROM main.inventory_turnover "
            "WHERE month_start = ? AND stockout_rate > 0 ORDER BY stockout_rate DESC, sku LIMIT 10",
            [latest["month_start"]],
        )
        if {"stockout_days", "inventory_days", "abc_class", "days_of_supply"} <= set(cols)
        else pl.DataFrame()
    )
    if worst.height:
        s.tables.append(
            _table(
                "inventory-worst",
                f"SKUs with the most stock-out days, {latest['month_start']:%Y-%m}",
                worst,
                limit=None,
                kinds={"stockout_rate": "pct"},
            )
        )
    return s


def _carbon(s: Section, wh: _Warehouse, ctx: dict) -> Section:
    reason = wh.missing_reason("main", "carbon_per_order")
    if reason:
        return s.unavailable(reason)
    overall = wh.frame(
        "SELECT count(*) AS orders, avg(total_kg_co2e) AS mean_kg, median(total_kg_co2e) AS median_kg, "
        "sum(total_kg_co2e) AS total_kg FROM main.carbon_per_order"
    ).row(0, named=True)
    s.intro = (
        "Greenhouse-gas emissions of delivering each order (kg CO2e: line haul, packaging, handling and last "
        "mile; ISO 14083 / GLEC method, DESNZ 2025 factors). By mode: the emissions of the shipments that "
        "travelled by that mode, per order they carried."
    )
    s.metrics += [
        Metric("carbon_kg_per_order", "kg CO2e per order (mean)", overall["mean_kg"], "kg", headline=True),
        Metric("carbon_kg_per_order_median", "median", overall["median_kg"], "kg"),
        Metric("carbon_kg_total", "kg CO2e, all orders", overall["total_kg"], "kg"),
        Metric("carbon_orders", "orders shipped", overall["orders"], "int"),
    ]
    if wh.missing_reason("main", "carbon_per_shipment") is None:
        by_mode = wh.frame("""
            SELECT transport_mode, count(*) AS shipments, count(DISTINCT order_id) AS orders,
                   sum(total_kg_co2e) AS kg_co2e, sum(total_kg_co2e) / count(DISTINCT order_id) AS kg_per_order,
                   avg(total_kg_co2e) AS kg_per_shipment, sum(total_kg_co2e) / sum(sum(total_kg_co2e)) OVER () AS share_of_emissions
            FROM main.carbon_per_shipment GROUP BY transport_mode ORDER BY kg_per_order DESC""")
    elif wh.missing_reason("main", "carbon_monthly") is None:
        s.notes.append(
            "carbon_per_shipment is missing: per-mode figures come from carbon_monthly, where an order "
            "spanning several categories counts once per category."
        )
        by_mode = wh.frame("""
            SELECT transport_mode, sum(shipments) AS shipments, sum(orders) AS orders, sum(kg_co2e) AS kg_co2e,
                   sum(kg_co2e) / sum(orders) AS kg_per_order, sum(kg_co2e) / sum(shipments) AS kg_per_shipment,
                   sum(kg_co2e) / sum(sum(kg_co2e)) OVER () AS share_of_emissions
            FROM main.carbon_monthly GROUP BY transport_mode ORDER BY kg_per_order DESC""")
    else:
        by_mode = pl.DataFrame()
        s.missing.append(
            (
                "carbon by transport mode",
                "neither main.carbon_per_shipment nor main.carbon_monthly is in the warehouse",
            )
        )
    for rec in by_mode.iter_rows(named=True):
        s.metrics.append(
            Metric(
                f"carbon_kg_per_order_{_slug(rec['transport_mode'])}",
                f"kg CO2e per order, {rec['transport_mode']}",
                rec["kg_per_order"],
                "kg",
            )
        )
    monthly = wh.frame(
        "SELECT date_trunc('month', order_date) AS month, count(*) AS orders, avg(total_kg_co2e) AS kg_per_order, "
        "sum(total_kg_co2e) AS kg_co2e FROM main.carbon_per_order WHERE order_date IS NOT NULL GROUP BY 1 ORDER BY 1"
    )
    monthly = monthly.with_columns(pl.col("month").cast(pl.Date))

    def draw(fig: Any) -> None:
        axes = fig.subplots(1, 2 if by_mode.height else 1, squeeze=False)[0]
        if by_mode.height:
            _barh(
                axes[0],
                [str(x) for x in by_mode["transport_mode"]],
                by_mode["kg_per_order"].to_list(),
                lambda v: f"{v:.2f}",
                color=_COLORS[2],
            )
            axes[0].set_title("kg CO2e per order, by mode", fontsize=9)
        ax = axes[-1]
        pos = list(range(monthly.height))
        step = 1 if monthly.height <= 12 else 3
        ax.plot(pos, monthly["kg_per_order"].to_list(), marker="o", color=_COLORS[2])
        ax.set_xticks(pos[::step], [f"{d:%Y-%m}" for d in monthly["month"]][::step])
        ax.set_title("kg CO2e per order, by month ordered", fontsize=9)
        ax.tick_params(axis="x", rotation=30)
        ax.set_ylim(bottom=0)
        _style(ax)

    s.charts.append(
        _chart(
            "carbon",
            "Carbon per order by mode and by month",
            "bar chart of kg CO2e per order by mode and line by month",
            draw,
        )
    )
    if by_mode.height:
        s.tables.append(
            _table(
                "carbon-by-mode",
                "By transport mode",
                by_mode,
                limit=None,
                kinds={
                    "kg_co2e": "kg",
                    "kg_per_order": "kg",
                    "kg_per_shipment": "kg",
                    "share_of_emissions": "pct",
                },
            )
        )
    s.tables.append(
        _table(
            "carbon-monthly",
            "By month ordered (latest first)",
            monthly.sort("month", descending=True),
            limit=None,
            kinds={"kg_per_order": "kg", "kg_co2e": "kg"},
        )
    )
    return s


def _funnel(s: Section, wh: _Warehouse, ctx: dict) -> Section:
    reason = wh.missing_reason("main", "traffic_funnel")
    if reason:
        return s.unavailable(reason)
    steps = ["sessions", "view_sessions", "cart_sessions", "checkout_sessions", "purchase_sessions"]
    tot = wh.frame(
        "SELECT " + ", ".join(f"sum({c}) AS {c}" for c in steps) + " FROM main.traffic_funnel"
    ).row(0, named=True)
    rows = []
    for i, c in enumerate(steps):
        prev = tot[steps[i - 1]] if i else None
        rows.append(
            {
                "step": c.replace("_sessions", "") if i else "all sessions",
                "sessions": tot[c],
                "share_of_sessions": tot[c] / tot["sessions"] if tot["sessions"] else None,
                "conversion_from_previous_step": (tot[c] / prev) if prev else None,
            }
        )
    funnel = pl.DataFrame(rows)
    conv = tot["purchase_sessions"] / tot["sessions"] if tot["sessions"] else None
    s.intro = (
        "Sessions reaching each step (view, cart, checkout, purchase) over the whole window; a session counts "
        "once per step however many events it had. Real shops convert about 1-16% of sessions."
    )
    s.metrics += [
        Metric("sessions_total", "sessions", tot["sessions"], "int"),
        Metric("purchase_sessions_total", "sessions with a purchase", tot["purchase_sessions"], "int"),
        Metric("session_conversion_rate", "session to purchase conversion", conv, "pct", headline=True),
    ]
    by_channel = wh.frame(
        "SELECT channel, sum(sessions) AS sessions, sum(purchase_sessions) AS purchase_sessions, "
        "sum(purchase_sessions) / nullif(sum(sessions), 0) AS conversion_rate FROM main.traffic_funnel "
        "GROUP BY channel ORDER BY sessions DESC"
    )

    def draw(fig: Any) -> None:
        a1, a2 = fig.subplots(1, 2)
        _barh(
            a1,
            funnel["step"].to_list(),
            funnel["sessions"].to_list(),
            lambda v: f"{v:,.0f} ({100 * v / tot['sessions']:.1f}%)",
        )
        a1.set_title("sessions reaching each step", fontsize=9)
        a1.set_xlim(right=tot["sessions"] * 1.35)
        _barh(
            a2,
            by_channel["channel"].to_list(),
            by_channel["conversion_rate"].to_list(),
            lambda v: f"{100 * v:.1f}%",
            color=_COLORS[1],
        )
        a2.set_title("conversion by channel", fontsize=9)
        a2.xaxis.set_major_formatter(lambda v, _p: f"{100 * v:.0f}%")

    s.charts.append(
        _chart(
            "funnel",
            "Funnel and conversion by channel",
            "funnel bar chart and conversion per channel",
            draw,
            size=(10, 3.2),
        )
    )
    s.tables.append(
        _table(
            "funnel",
            "Funnel",
            funnel,
            limit=None,
            kinds={"share_of_sessions": "pct", "conversion_from_previous_step": "pct"},
        )
    )
    s.tables.append(
        _table("funnel-by-channel", "By channel", by_channel, limit=None, kinds={"conversion_rate": "pct"})
    )
    return s


def _delivery(s: Section, wh: _Warehouse, ctx: dict) -> Section:
    reason = wh.missing_reason("main", "delivery_performance")
    if reason:
        return s.unavailable(reason)
    agg = (
        "sum(shipments) AS shipments, sum(delivered) AS delivered, sum(late) AS late, "
        "1 - CAST(sum(late) AS DOUBLE) / nullif(sum(delivered), 0) AS on_time_rate, "
        "sum(mean_delay_days * delivered) / nullif(sum(delivered), 0) AS mean_delay_days, "
        "sum(mean_delivery_days * delivered) / nullif(sum(delivered), 0) AS mean_delivery_days"
    )
    carriers = wh.frame(
        f"SELECT carrier, {agg} FROM main.delivery_performance GROUP BY carrier ORDER BY on_time_rate"
    )
    regions = wh.frame(
        f"SELECT region, {agg} FROM main.delivery_performance GROUP BY region ORDER BY on_time_rate LIMIT 10"
    )
    tot = wh.frame(f"SELECT {agg} FROM main.delivery_performance").row(0, named=True)
    s.intro = "Delivered shipments that arrived by the promised time, by carrier and destination region (worst first)."
    s.metrics += [
        Metric("on_time_rate", "on-time deliveries", tot["on_time_rate"], "pct", headline=True),
        Metric("late_deliveries", "late deliveries", tot["late"], "int"),
        Metric("mean_delivery_days", "mean days to deliver", tot["mean_delivery_days"], "number"),
    ]

    def draw(fig: Any) -> None:
        a1, a2 = fig.subplots(1, 2)
        _barh(
            a1,
            [str(x) for x in carriers["carrier"]],
            carriers["on_time_rate"].to_list(),
            lambda v: f"{100 * v:.1f}%",
        )
        a1.set_title("on-time rate by carrier", fontsize=9)
        _barh(
            a2,
            [str(x) for x in regions["region"]],
            regions["on_time_rate"].to_list(),
            lambda v: f"{100 * v:.1f}%",
            color=_COLORS[4],
        )
        a2.set_title("on-time rate, 10 worst regions", fontsize=9)
        for ax in (a1, a2):
            ax.set_xlim(0, 1.12)
            ax.xaxis.set_major_formatter(lambda v, _p: f"{100 * v:.0f}%")

    s.charts.append(
        _chart(
            "delivery",
            "On-time delivery by carrier and region",
            "bar charts of on-time rate per carrier and region",
            draw,
            size=(10, max(3.0, 0.3 * max(carriers.height, regions.height) + 1)),
        )
    )
    kinds = {"on_time_rate": "pct"}
    s.tables.append(_table("delivery-carriers", "By carrier", carriers, limit=None, kinds=kinds))
    s.tables.append(
        _table(
            "delivery-regions", "10 regions with the lowest on-time rate", regions, limit=None, kinds=kinds
        )
    )
    return s


# --------------------------------------------------------------------------------------------------
# Where the data came from
# --------------------------------------------------------------------------------------------------


def _quarantine(raw_dir: Path | None) -> tuple[pl.DataFrame, pl.DataFrame, str | None]:
    """Rows quarantined at ingestion by table and rule, and raw rows accepted per table (Parquet counts)."""
    empty = pl.DataFrame(schema={"table_name": pl.String, "rule": pl.String, "rows": pl.Int64})
    if raw_dir is None or not raw_dir.exists():
        return empty, pl.DataFrame(), f"no raw folder found ({raw_dir})" if raw_dir else "no raw folder given"
    with duckdb.connect() as con:
        qfiles = sorted(str(p) for p in (raw_dir / "_quarantine").glob("*/*/*.parquet"))
        rules = (
            con.sql(
                "SELECT table_name, rule, count(*) AS rows FROM read_parquet(?, union_by_name = true) "
                "GROUP BY ALL ORDER BY table_name, rows DESC",
                params=[qfiles],
            ).pl()
            if qfiles
            else empty
        )
        accepted = []
        for folder in sorted(p for p in raw_dir.iterdir() if p.is_dir() and not p.name.startswith("_")):
            files = sorted(str(p) for p in folder.glob("*/*.parquet"))
            if files:
                # Row counts from the Parquet footers: no data page is read.
                n = con.sql("SELECT sum(num_rows) FROM parquet_file_metadata(?)", params=[files]).fetchall()[
                    0
                ][0]
                accepted.append({"table": folder.name, "accepted": n})
    return rules, pl.DataFrame(accepted), None


def _data_section(
    wh: _Warehouse | None, manifest: dict, raw_dir: Path | None, warehouse: Path, ctx: dict
) -> Section:
    s = Section("data", "What this report was built from", "data")
    s.metrics += [
        Metric("source_name", "source", manifest.get("source") or "unknown (no landing manifest)", "text"),
        Metric("data_first_date", "first day", manifest.get("first_date") or ctx.get("window_first"), "text"),
        Metric("data_last_date", "last day", manifest.get("last_date") or ctx.get("window_last"), "text"),
        Metric("as_of_date", "as of", ctx["as_of"], "date"),
    ]
    if manifest.get("input"):
        s.notes.append(f"Input: {manifest['input']}.")
    if manifest.get("currency") or manifest.get("timezone"):
        s.notes.append(
            f"Currency {manifest.get('currency', '?')}, shop time zone {manifest.get('timezone', '?')}."
        )
    for note in manifest.get("notes") or []:
        s.notes.append(str(note))
    rules, accepted, qreason = _quarantine(raw_dir)
    landed = manifest.get("rows_landed") or manifest.get("rows_in") or {}
    rows_in = manifest.get("rows_in") or {}
    tables = sorted(
        set(landed)
        | set(rows_in)
        | set(accepted["table"].to_list() if accepted.height else [])
        | set(manifest.get("missing_tables") or [])
    )
    q_by_table = (
        dict(rules.group_by("table_name").agg(pl.col("rows").sum()).iter_rows()) if rules.height else {}
    )
    acc = dict(accepted.iter_rows()) if accepted.height else {}
    adapter_q = manifest.get("quarantined") or {}
    routed = manifest.get("routed_out") or {}
    missing = set(manifest.get("missing_tables") or [])
    rows = [
        {
            "table": t,
            "in_source": "no: the source lacks it" if t in missing else "yes",
            "rows_delivered": rows_in.get(t),
            "quarantined_by_adapter": _sum_counts(adapter_q.get(t)),
            "routed_out": _sum_counts(routed.get(t)),
            "rows_landed": landed.get(t),
            "accepted_at_ingestion": acc.get(t),
            "quarantined_at_ingestion": q_by_table.get(t, 0 if t in acc else None),
        }
        for t in tables
    ]
    per_table = pl.DataFrame(
        rows,
        schema={
            "table": pl.String,
            "in_source": pl.String,
            "rows_delivered": pl.Int64,
            "quarantined_by_adapter": pl.Int64,
            "routed_out": pl.Int64,
            "rows_landed": pl.Int64,
            "accepted_at_ingestion": pl.Int64,
            "quarantined_at_ingestion": pl.Int64,
        },
    )
    s.metrics += [
        Metric(
            "rows_landed_total",
            "rows landed",
            int(per_table["rows_landed"].sum()) if per_table.height else None,
            "int",
        ),
        Metric(
            "rows_accepted_total",
            "rows accepted",
            int(accepted["accepted"].sum()) if accepted.height else None,
            "int",
        ),
        Metric(
            "rows_quarantined_total",
            "rows quarantined at ingestion",
            int(rules["rows"].sum()) if rules.height else 0,
            "int",
        ),
    ]
    if per_table.height:
        s.tables.append(_table("data-tables", "Rows per raw table", per_table, limit=None))
    if qreason:
        s.notes.append(f"Quarantine counts not available: {qreason}.")
    if rules.height:
        s.tables.append(
            _table("quarantine-rules", "Rows quarantined at ingestion, by rule", rules, limit=None)
        )
    else:
        s.notes.append("No row was quarantined at ingestion." if not qreason else "")
    if adapter_q:
        s.notes.append(
            "Rows the source adapter could not map are in <landing>/_adapter_quarantine/ with their rule."
        )
    s.notes = [n for n in s.notes if n]
    s.notes.append(
        f"Warehouse: {warehouse.name}"
        + (f" (data window {ctx['window_first']} to {ctx['window_last']})" if ctx.get("window_first") else "")
        + "."
    )
    return s


def _sum_counts(v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, dict):
        return int(sum(int(x) for x in v.values()))
    return int(v)


# --------------------------------------------------------------------------------------------------
# Putting it together
# --------------------------------------------------------------------------------------------------

# Report order: the decision sections first, then the health of the shop.
SECTIONS: tuple[tuple[str, str, str, Callable[[Section, _Warehouse, dict], Section]], ...] = (
    ("purchase-orders", "Purchase orders to place", "decisions", _purchase_orders),
    (
        "replenishment-plan",
        "Replenishment plan: SKUs closest to a stock-out",
        "decisions",
        _replenishment_plan,
    ),
    ("customers-to-contact", "Customers to contact, by segment", "decisions", _customers),
    ("at-risk-customers", "High-value customers at risk: contact first", "decisions", _at_risk_customers),
    ("coupons", "Compensation coupons for delayed deliveries", "decisions", _coupons),
    ("product-selection", "SKUs to expand or delist", "decisions", _product_selection),
    ("demand-forecast", "Demand forecast of the top SKUs", "decisions", _forecast),
    ("forecast-accuracy", "How far to trust the forecast: backtest", "decisions", _forecast_accuracy),
    (
        "replenishment-simulation",
        "Would the policy have worked? Replay of a held-out period",
        "decisions",
        _replenishment_simulation,
    ),
    ("clv-calibration", "Does the lifetime-value model predict well?", "decisions", _clv_calibration),
    ("revenue", "Revenue", "health", _revenue),
    ("nps", "Customer satisfaction: NPS", "health", _nps),
    ("inventory", "Inventory: stock-outs and turnover", "health", _inventory),
    ("carbon", "Carbon per order by transport mode", "health", _carbon),
    ("funnel", "Traffic funnel", "health", _funnel),
    ("delivery", "Delivery performance", "health", _delivery),
)


def _safe(
    key: str,
    title: str,
    part: str,
    builder: Callable[[Section, _Warehouse, dict], Section],
    wh: _Warehouse,
    ctx: dict,
) -> Section:
    """Run one section builder; an unexpected error becomes a 'not available' section, never a failed report."""
    try:
        return builder(Section(key, title, part), wh, ctx)
    except Exception as err:  # noqa: BLE001 - one odd table must not take the whole report down
        log.exception("report section %s failed", key)
        return Section(key, title, part).unavailable(f"the section failed: {type(err).__name__}: {err}")


def _as_of(wh: _Warehouse | None, manifest: dict) -> tuple[date, str | None, str | None]:
    """The as-of date of the marts (int_as_of_date), else the last sales day, else the manifest, else today."""
    first = last = None
    if wh is not None and wh.has("main", "fct_daily_sales"):
        first, last = wh.con.sql("SELECT min(date), max(date) FROM main.fct_daily_sales").fetchall()[0]
    if wh is not None and wh.has("main", "int_as_of_date"):
        try:
            got = wh.con.sql("SELECT max(as_of_date) FROM main.int_as_of_date").fetchall()[0][0]
            if got:
                return got, str(first) if first else None, str(last) if last else None
        except duckdb.Error:
            log.warning("main.int_as_of_date could not be read; using the last sales day")
    if last:
        return last, str(first), str(last)
    if manifest.get("last_date"):
        return date.fromisoformat(manifest["last_date"]), None, None
    return datetime.now(UTC).date(), None, None


def _default_raw_dir(warehouse: Path) -> Path | None:
    settings = get_settings()
    if warehouse.resolve() == settings.warehouse and settings.raw_dir.exists():
        return settings.raw_dir
    guess = warehouse.resolve().parent.parent / "raw"
    return guess if guess.exists() else None


def build_report(
    warehouse: Path,
    out_dir: Path,
    landing_manifest: dict | None,
    run_label: str | None = None,
    *,
    raw_dir: Path | None = None,
) -> Path:
    """Write out_dir/report_<as_of_date>.html (self-contained) and copy it atomically to out_dir/latest.html.

    warehouse: the DuckDB file (opened read-only, closed before returning). landing_manifest: the source's
    `_source.json` (source, date range, rows, missing tables), or None when unknown. run_label: shown in the
    header (e.g. the Dagster run id). raw_dir: the raw Parquet folder with `_quarantine/` (default: the
    settings' raw folder when `warehouse` is the configured one, else `<warehouse>/../../raw` when present).
    Returns the path of the dated report.
    """
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    warehouse, out_dir = Path(warehouse), Path(out_dir)
    manifest = dict(landing_manifest or {})
    raw_dir = raw_dir if raw_dir is not None else _default_raw_dir(warehouse)
    ctx: dict[str, Any] = {"currency": manifest.get("currency") or "", "vars": _dbt_vars()}
    ctx["stockout_target"] = float(ctx["vars"]["stockout_rate_target"])
    sections: list[Section] = []
    skipped: list[tuple[str, str]] = []
    for table in manifest.get("missing_tables") or []:
        needs = sorted(m for m, raw in MART_NEEDS.items() if raw == table)
        skipped.append(
            (
                f"source table {table}",
                "the source does not have it"
                + (f"; marts that need it: {', '.join(needs)}" if needs else ""),
            )
        )

    if warehouse.exists():
        # Read-only, retried while a writer holds the lock, closed on exit (pipelines.core.warehouse.connect).
        with connect(warehouse, read_only=True) as con:
            wh = _Warehouse(con, manifest)
            ctx["as_of"], ctx["window_first"], ctx["window_last"] = _as_of(wh, manifest)
            sections += [_safe(*spec, wh, ctx) for spec in SECTIONS]
            skipped += [
                (f"mart main.{m}", wh.missing_reason("main", m) or "absent")
                for m in EXPECTED_MARTS
                if not wh.has("main", m)
            ]
            data = _data_section(wh, manifest, raw_dir, warehouse, ctx)
    else:
        ctx["as_of"], ctx["window_first"], ctx["window_last"] = _as_of(None, manifest)
        skipped.append(("the whole warehouse", f"{warehouse} does not exist: run the pipeline first"))
        data = _data_section(None, manifest, raw_dir, warehouse, ctx)
    for sec in sections:
        if sec.status == "unavailable":
            skipped.append((sec.title, sec.reason or "not available"))
        skipped += [(f"{sec.title}: {what}", why) for what, why in sec.missing]

    env = Environment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    html = env.get_template(TEMPLATE_NAME).render(
        title="shoplens decision report",
        as_of=ctx["as_of"].isoformat(),
        run_label=run_label,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        manifest=manifest,
        ctx=ctx,
        decisions=[s for s in sections if s.part == "decisions"],
        health=[s for s in sections if s.part == "health"],
        headline=[m for s in sections if s.status != "unavailable" for m in s.metrics if m.headline],
        data=data,
        skipped=skipped,
        stockout_target_pct=f"{100 * ctx['stockout_target']:.0f}%",
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"report_{ctx['as_of'].isoformat()}.html"
    _atomic_write(target, html.encode("utf-8"))
    fd, tmp = tempfile.mkstemp(prefix=".latest.", suffix=".html.tmp", dir=out_dir)
    os.close(fd)
    try:
        shutil.copyfile(target, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_dir / "latest.html")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if skipped:
        log.info("report %s: skipped %s", target.name, "; ".join(f"{w} ({why})" for w, why in skipped))
    return target


def _atomic_write(path: Path, payload: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the report is meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    """`python -m pipelines.report [--out DIR]`: build the report from the configured warehouse."""
    import argparse

    from pipelines.sources.base import read_manifest

    s = get_settings()
    parser = argparse.ArgumentParser(description="Build the HTML decision report from the warehouse.")
    parser.add_argument("--warehouse", type=Path, default=s.warehouse)
    parser.add_argument("--out", type=Path, default=s.reports_dir)
    parser.add_argument("--landing", type=Path, default=s.landing_dir)
    parser.add_argument("--label", default=None)
    args = parser.parse_args(argv)
    path = build_report(args.warehouse, args.out, read_manifest(args.landing), args.label)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
