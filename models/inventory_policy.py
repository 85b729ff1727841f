"""Replenishment policy from quantile forecasts: safety stock, reorder point, order-up-to, order quantity.

Inputs
- forecast: sku, date, p10, p50, p90, optional mean (and optional warehouse): `models.forecasting` output.
- products: sku, supplier, lead_time_days; optional lead_time_std_days, moq, pack_size, unit_cost.
- stock: sku, on_hand, optional on_order, optional warehouse (the latest `inventory` snapshot).
- warehouse_share (optional): sku, warehouse, share: how a SKU's demand splits over warehouses.

Method (per SKU, or per SKU and warehouse)
- Daily demand d_t = the forecast mean when the column is there (what sums over days), else p50.
- Daily std sigma_t = (p90 - p10) / 2.563: for a normal, P90 - P10 = 2 * 1.2816 sigma, with a Poisson
  floor: var_t = max(sigma_t^2, d_t). Demand is a count of independent purchases, so its variance is at
  least its mean; the quantile band alone says nothing about slow and intermittent SKUs, whose P10-P90 band
  collapses to a point (P10 = P90 = 0 on a SKU selling one unit a day on average) and which would otherwise
  get no safety stock at all. On the demo shop half of the lead-time windows had sigma_L = 0 and the
  lead-time total exceeded the reorder point in 26% of them (target 3%); with the floor, 13%.
- Over the lead time L (days 1..L after `today`; past the forecast horizon the horizon's average day is
  repeated): mu_L = sum d_t, var_L = sum sigma_t^2 (days independent). With a lead-time std sigma_LT
  (days) the lead-time variability term is added: sigma_L = sqrt(var_L + dbar^2 sigma_LT^2), which for a
  flat forecast is the textbook sqrt(L sigma_d^2 + d^2 sigma_LT^2).
- Safety stock SS = z(service level) * sigma_L (default 0.97: the chance a replenishment cycle sees no
  stock-out), reorder point ROP = mu_L + SS, order-up-to OUT = ROP + mean demand over the review period
  (the R days after the lead time, default R = 7).
- Inventory position IP = on_hand + on_order. Recommended quantity now = max(0, OUT - IP), rounded up to
  the MOQ and pack size. Order date: today when IP <= ROP, else the first forecast day on which IP minus
  the cumulative mean demand reaches ROP (extrapolated with the average day past the horizon; null when
  no demand is expected). The quantity for a later order date is OUT minus the position projected then.
- Days of supply = on_hand / average daily mean demand over the horizon (null when that is 0).
- Stock-out risk before the next delivery = P(lead-time demand > IP) = 1 - Phi((IP - mu_L) / sigma_L).
- A forecast without a warehouse column is split over the stock's warehouses by `warehouse_share`
  (default: equal shares); mean and std are both scaled by the share (demand in one warehouse is taken
  to move with the SKU's total, the conservative choice for the std).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.stats import norm

P90_P10_SPAN = 2.563  # (p90 - p10) of a standard normal: 2 * 1.28155


@dataclass(frozen=True)
class PolicyConfig:
    """Policy knobs: cycle service level and review period."""

    service_level: float = 0.97
    review_period_days: int = 7

    @property
    def z(self) -> float:
        if not 0.5 <= self.service_level < 1:
            raise ValueError(f"inventory_policy: service_level must be in [0.5, 1), got {self.service_level}")
        return float(norm.ppf(self.service_level))


def _require(frame: pl.DataFrame, columns: tuple[str, ...], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"inventory_policy input `{name}`: missing column(s) {missing}; got {frame.columns}")


def _daily(forecast: pl.DataFrame, today: dt.date, keys: list[str]) -> pl.DataFrame:
    """Forecast days after `today` with day number k (1 = tomorrow), mean d and variance var."""
    _require(forecast, ("sku", "date", "p10", "p50", "p90"), "forecast")
    mean = pl.col("mean") if "mean" in forecast.columns else pl.col("p50")
    return (
        forecast.filter(pl.col("date") > today)
        .with_columns(
            (pl.col("date") - pl.lit(today)).dt.total_days().alias("k"),
            mean.clip(lower_bound=0).alias("d"),
            pl.max_horizontal(
                ((pl.col("p90") - pl.col("p10")).clip(lower_bound=0) / P90_P10_SPAN) ** 2,
                mean.clip(lower_bound=0),  # Poisson floor: a count's variance is at least its mean
            ).alias("var"),
        )
        .sort([*keys, "k"])
        .with_columns(pl.col("d").cum_sum().over(keys).alias("cum_d"))
    )


def _split_warehouses(
    forecast: pl.DataFrame, stock: pl.DataFrame | None, warehouse_share: pl.DataFrame | None
) -> pl.DataFrame:
    """Give a per-SKU forecast a warehouse column when the stock is kept per warehouse."""
    if "warehouse" in forecast.columns or stock is None or "warehouse" not in stock.columns:
        return forecast
    if warehouse_share is None:
        warehouse_share = (
            stock.select("sku", "warehouse")
            .unique()
            .with_columns((1.0 / pl.len().over("sku")).alias("share"))
        )
    _require(warehouse_share, ("sku", "warehouse", "share"), "warehouse_share")
    return (
        forecast.join(warehouse_share, on="sku", how="inner")
        .with_columns(
            *[
                (pl.col(c) * pl.col("share"))
                for c in ("p10", "p50", "p90", *(["mean"] if "mean" in forecast.columns else []))
            ]
        )
        .drop("share")
    )


def policy_parameters(
    forecast: pl.DataFrame,
    products: pl.DataFrame,
    today: dt.date | None = None,
    config: PolicyConfig | None = None,
) -> pl.DataFrame:
    """Per SKU (and warehouse): lead time, mu_L, sigma_L, safety stock, reorder point, order-up-to level."""
    cfg = config or PolicyConfig()
    _require(products, ("sku", "lead_time_days"), "products")
    today = today or (forecast["date"].min() - dt.timedelta(days=1))
    keys = ["sku", "warehouse"] if "warehouse" in forecast.columns else ["sku"]
    missing_lt = products.filter(pl.col("lead_time_days").is_null() | (pl.col("lead_time_days") < 0))
    if missing_lt.height:
        raise ValueError(
            f"inventory_policy input `products`: {missing_lt.height} row(s) break rule lead_time_days >= 0 "
            f"and not null, first sku={missing_lt['sku'][0]}"
        )
    lt_std = (
        pl.col("lead_time_std_days").fill_null(0.0)
        if "lead_time_std_days" in products.columns
        else pl.lit(0.0)
    )
    prod = products.select(
        "sku", pl.col("lead_time_days").cast(pl.Int64).alias("L"), lt_std.alias("sigma_lt")
    )
    daily = _daily(forecast, today, keys).join(prod, on="sku", how="inner")
    r = cfg.review_period_days
    agg = daily.group_by(keys).agg(
        pl.col("L").first(),
        pl.col("sigma_lt").first(),
        pl.col("d").filter(pl.col("k") <= pl.col("L")).sum().alias("mu_h"),
        pl.col("var").filter(pl.col("k") <= pl.col("L")).sum().alias("var_h"),
        pl.col("d")
        .filter((pl.col("k") > pl.col("L")) & (pl.col("k") <= pl.col("L") + r))
        .sum()
        .alias("rev_h"),
        pl.col("k").max().alias("horizon"),
        pl.col("d").mean().alias("avg_daily_demand"),
        pl.col("var").mean().alias("avg_var"),
    )
    beyond_lt = (pl.col("L") - pl.col("horizon")).clip(lower_bound=0)
    rev_days_in = (pl.min_horizontal(pl.col("L") + r, pl.col("horizon")) - pl.col("L")).clip(lower_bound=0)
    z = cfg.z
    return (
        agg.with_columns(
            (pl.col("mu_h") + beyond_lt * pl.col("avg_daily_demand")).alias("lead_time_demand"),
            (pl.col("var_h") + beyond_lt * pl.col("avg_var")).alias("var_lt"),
            (pl.col("rev_h") + (r - rev_days_in) * pl.col("avg_daily_demand")).alias("review_demand"),
        )
        .with_columns(
            pl.when(pl.col("L") > 0)
            .then(pl.col("lead_time_demand") / pl.col("L"))
            .otherwise(pl.col("avg_daily_demand"))
            .alias("dbar")
        )
        .with_columns(
            (pl.col("var_lt") + pl.col("dbar") ** 2 * pl.col("sigma_lt") ** 2).sqrt().alias("lead_time_std"),
        )
        .with_columns((z * pl.col("lead_time_std")).alias("safety_stock"))
        .with_columns((pl.col("lead_time_demand") + pl.col("safety_stock")).alias("reorder_point"))
        .with_columns((pl.col("reorder_point") + pl.col("review_demand")).alias("order_up_to"))
        .select(
            *keys,
            pl.col("L").alias("lead_time_days"),
            pl.col("sigma_lt").alias("lead_time_std_days"),
            "avg_daily_demand",
            "lead_time_demand",
            "lead_time_std",
            "safety_stock",
            "reorder_point",
            "review_demand",
            "order_up_to",
        )
        .sort(keys)
    )


def _round_to_pack(qty: pl.Expr, moq: pl.Expr, pack: pl.Expr) -> pl.Expr:
    """0 stays 0; otherwise at least the MOQ, rounded up to a whole number of packs."""
    raised = pl.max_horizontal(qty, moq)
    return pl.when(qty <= 0).then(0).otherwise((raised / pack).ceil() * pack).cast(pl.Int64)


def replenishment_plan(
    forecast: pl.DataFrame,
    products: pl.DataFrame,
    stock: pl.DataFrame,
    today: dt.date | None = None,
    config: PolicyConfig | None = None,
    warehouse_share: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per SKU (and warehouse): the policy parameters, position, order date and quantity, risk."""
    cfg = config or PolicyConfig()
    _require(stock, ("sku", "on_hand"), "stock")
    today = today or (forecast["date"].min() - dt.timedelta(days=1))
    fc = _split_warehouses(forecast, stock, warehouse_share)
    keys = ["sku", "warehouse"] if "warehouse" in fc.columns else ["sku"]
    params = policy_parameters(fc, products, today, cfg)
    on_order = pl.col("on_order").fill_null(0) if "on_order" in stock.columns else pl.lit(0)
    pos = stock.group_by(keys).agg(
        pl.col("on_hand").fill_null(0).sum().cast(pl.Float64).alias("on_hand"),
        on_order.sum().cast(pl.Float64).alias("on_order"),
    )
    moq = pl.col("moq").fill_null(0) if "moq" in products.columns else pl.lit(0)
    pack = (
        pl.col("pack_size").fill_null(1).clip(lower_bound=1) if "pack_size" in products.columns else pl.lit(1)
    )
    supplier = pl.col("supplier") if "supplier" in products.columns else pl.lit(None, dtype=pl.String)
    prod = products.select(
        "sku",
        supplier.alias("supplier"),
        moq.cast(pl.Float64).alias("moq"),
        pack.cast(pl.Float64).alias("pack_size"),
    )
    plan = (
        params.join(pos, on=keys, how="left")
        .with_columns(
            pl.col("on_hand").is_not_null().alias("stock_known"),
            pl.col("on_hand").fill_null(0.0),
            pl.col("on_order").fill_null(0.0),
        )
        .join(prod, on="sku", how="left")
        .with_columns((pl.col("on_hand") + pl.col("on_order")).alias("inventory_position"))
    )
    # First forecast day k at which IP - cumulative demand <= ROP (k = 0: today).
    daily = _daily(fc, today, keys)
    crossing = (
        daily.join(plan.select(*keys, "inventory_position", "reorder_point"), on=keys)
        .filter(pl.col("inventory_position") - pl.col("cum_d") <= pl.col("reorder_point"))
        .group_by(keys)
        .agg(pl.col("k").min().alias("k_cross"), pl.col("cum_d").sort_by("k").first().alias("cum_at_cross"))
    )
    horizon_total = daily.group_by(keys).agg(
        pl.col("cum_d").max().alias("cum_h"), pl.col("k").max().alias("h")
    )
    due_now = pl.col("inventory_position") <= pl.col("reorder_point")
    extrap_k = (
        pl.col("h")
        + (
            (pl.col("inventory_position") - pl.col("reorder_point") - pl.col("cum_h"))
            / pl.col("avg_daily_demand")
        ).ceil()
    )
    k_order = (
        pl.when(due_now)
        .then(0)
        .when(pl.col("k_cross").is_not_null())
        .then(pl.col("k_cross"))
        .when(pl.col("avg_daily_demand") > 0)
        .then(extrap_k)
        .otherwise(None)
        .cast(pl.Int64)
    )
    cum_at_order = (
        pl.when(due_now)
        .then(0.0)
        .when(pl.col("k_cross").is_not_null())
        .then(pl.col("cum_at_cross"))
        .otherwise(pl.col("inventory_position") - pl.col("reorder_point"))
    )
    plan = (
        plan.join(crossing, on=keys, how="left")
        .join(horizon_total, on=keys, how="left")
        .with_columns(k_order.alias("k_order"), cum_at_order.alias("cum_at_order"))
        .with_columns(
            _round_to_pack(
                pl.col("order_up_to") - pl.col("inventory_position"), pl.col("moq"), pl.col("pack_size")
            ).alias("order_qty_now"),
            (pl.lit(today) + pl.duration(days=pl.col("k_order"))).alias("order_date"),
            _round_to_pack(
                pl.col("order_up_to") - (pl.col("inventory_position") - pl.col("cum_at_order")),
                pl.col("moq"),
                pl.col("pack_size"),
            ).alias("order_qty"),
            pl.when(pl.col("avg_daily_demand") > 0)
            .then(pl.col("on_hand") / pl.col("avg_daily_demand"))
            .otherwise(None)
            .alias("days_of_supply"),
            due_now.alias("order_due"),
        )
    )
    # Normal tail probability through scipy (polars has no normal CDF expression).
    ip, mu, sd = (
        plan[c].cast(pl.Float64).to_numpy()
        for c in ("inventory_position", "lead_time_demand", "lead_time_std")
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(sd > 0, norm.sf((ip - mu) / np.where(sd > 0, sd, 1.0)), (mu > ip).astype(float))
    return (
        plan.with_columns(pl.Series("stockout_risk", p))
        .with_columns((pl.col("order_date") + pl.duration(days=pl.col("lead_time_days"))).alias("needed_by"))
        .select(
            *keys,
            "supplier",
            "lead_time_days",
            "avg_daily_demand",
            "lead_time_demand",
            "lead_time_std",
            "safety_stock",
            "reorder_point",
            "review_demand",
            "order_up_to",
            "on_hand",
            "on_order",
            "inventory_position",
            "stock_known",
            "order_due",
            "order_qty_now",
            "order_date",
            "order_qty",
            "needed_by",
            "days_of_supply",
            "stockout_risk",
        )
        .sort(keys)
    )


def purchase_orders(plan: pl.DataFrame, today: dt.date, within_days: int = 0) -> pl.DataFrame:
    """Order lines due by `today + within_days`: supplier, sku (warehouse), quantity, order_date, needed_by."""
    keys = ["sku", "warehouse"] if "warehouse" in plan.columns else ["sku"]
    return (
        plan.filter(
            pl.col("order_date").is_not_null(),
            pl.col("order_date") <= today + dt.timedelta(days=within_days),
            pl.col("order_qty") > 0,
        )
        .select("supplier", *keys, pl.col("order_qty").alias("quantity"), "order_date", "needed_by")
        .sort("supplier", "needed_by", *keys)
    )
