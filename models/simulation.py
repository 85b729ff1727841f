"""Replay a held-out period day by day to judge a replenishment policy against the shop's naive rule.

Policies (daily review, vectorised over SKUs, one loop over days):
- ours: when the inventory position (on hand + on order) is at or below the reorder point, order up to the
  order-up-to level; parameters come from `inventory_policy.policy_parameters` on the forecast made at
  each weekly origin (so they follow the season), held until the next origin.
- naive: the shop's own rule, as the synthetic generator runs it (pipelines/sources/synthetic.py,
  `_build_inventory` and the end-of-day reorder): when on hand falls below a fixed level and nothing is
  on order, order a fixed quantity. The generator draws each SKU's level as 0.9-1.5 x its lead-time mean
  demand (+1) and its quantity as 20-45 days of mean demand; the replay uses the midpoints, 1.2 x and
  32.5 days, with the mean over the 91 days before the period. (Before, a 7-day level and 14-day order
  stood in for it: below the lead-time demand of most SKUs, so it ran out on 1 SKU-day in 10 and looked
  lean only because its shelves were empty a quarter of the time.)
- naive_policy_matched: the same rule with its level factor and order days both scaled by the smallest
  factor (steps of 0.25 from 0.25 up to 8) whose stock-out rate is no higher than ours: the inventory the
  rule needs for equal service.
Orders arrive after the SKU's lead time (at the start of that day, at least the next day). Demand that
finds no stock is lost (no backorders).

Reported per policy, over the days after a warm-up (both start from the same stock, so the first days
say more about the starting stock than about the policy):
- stockout_rate: share of SKU-days with unmet demand (the customer-facing definition; a zero-demand day
  with an empty shelf costs nothing), and zero_stock_rate: share of SKU-days ending with nothing on hand;
- fill_rate: units sold / units demanded;
- avg_inventory_units and avg_inventory_value: mean end-of-day stock summed over SKUs (value at unit cost);
- turnover: annualised cost of goods sold / average inventory value; dio: days of inventory outstanding,
  average inventory value / daily cost of goods sold.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from models.forecasting import ForecastConfig, GlobalForecaster
from models.inventory_policy import PolicyConfig, policy_parameters


@dataclass(frozen=True)
class SimulationResult:
    """Daily trace per policy, SKU and day, and one summary row per policy."""

    daily: pl.DataFrame
    summary: pl.DataFrame


def run_policy(
    demand: np.ndarray,
    lead_time: np.ndarray,
    initial_on_hand: np.ndarray,
    reorder_point: np.ndarray,
    order_up_to: np.ndarray | None = None,
    order_qty: np.ndarray | None = None,
    one_outstanding: bool = False,
) -> dict[str, np.ndarray]:
    """Simulate one policy over demand (n_skus, n_days).

    reorder_point / order_up_to / order_qty are (n_skus,) or (n_skus, n_days). Give `order_up_to` for an
    (s, S) policy or `order_qty` for a fixed-quantity (s, Q) policy; `one_outstanding` allows an order only
    when nothing is on order (the shop's rule). Returns (n_skus, n_days) arrays:
    sales, lost, on_hand (end of day), on_order (end of day) and ordered.
    """
    if (order_up_to is None) == (order_qty is None):
        raise ValueError("simulation.run_policy: give exactly one of order_up_to or order_qty")
    n, t = demand.shape
    rop = np.broadcast_to(
        reorder_point if np.ndim(reorder_point) == 2 else np.asarray(reorder_point)[:, None], (n, t)
    )
    target = order_up_to if order_up_to is not None else order_qty
    target = np.broadcast_to(target if np.ndim(target) == 2 else np.asarray(target)[:, None], (n, t))
    lt = np.maximum(np.asarray(lead_time, dtype=np.int64), 1)
    arrivals = np.zeros((n, t + int(lt.max()) + 1))
    on_hand = np.asarray(initial_on_hand, dtype=float).copy()
    pipeline = np.zeros(n)
    out = {k: np.zeros((n, t)) for k in ("sales", "lost", "on_hand", "on_order", "ordered")}
    rows = np.arange(n)
    for day in range(t):
        on_hand += arrivals[:, day]
        pipeline -= arrivals[:, day]
        sales = np.minimum(on_hand, demand[:, day])
        on_hand -= sales
        position = on_hand + pipeline
        due = position <= rop[:, day]
        if one_outstanding:
            due &= pipeline <= 1e-9
        if order_up_to is not None:
            qty = np.where(due, np.ceil(np.maximum(target[:, day] - position, 0.0)), 0.0)
        else:
            qty = np.where(due, np.ceil(target[:, day]), 0.0)
        arrivals[rows, day + lt] += qty
        pipeline += qty
        out["sales"][:, day] = sales
        out["lost"][:, day] = demand[:, day] - sales
        out["on_hand"][:, day] = on_hand
        out["on_order"][:, day] = pipeline
        out["ordered"][:, day] = qty
    return out


def summarize(
    trace: dict[str, np.ndarray], demand: np.ndarray, unit_cost: np.ndarray, warmup_days: int = 0
) -> dict[str, float]:
    """The policy scores of the module docstring over days >= warmup_days."""
    sl = slice(warmup_days, None)
    d = demand[:, sl]
    sales, lost, on_hand = trace["sales"][:, sl], trace["lost"][:, sl], trace["on_hand"][:, sl]
    n_days = d.shape[1]
    inv_value = (on_hand * unit_cost[:, None]).sum(axis=0).mean()
    cogs_per_day = (sales * unit_cost[:, None]).sum() / max(n_days, 1)
    return {
        "stockout_rate": float((lost > 1e-9).mean()),
        "zero_stock_rate": float((on_hand <= 1e-9).mean()),
        "fill_rate": float(sales.sum() / d.sum()) if d.sum() > 0 else float("nan"),
        "avg_inventory_units": float(on_hand.sum(axis=0).mean()),
        "avg_inventory_value": float(inv_value),
        "turnover": float(365 * cogs_per_day / inv_value) if inv_value > 0 else float("nan"),
        "dio": float(inv_value / cogs_per_day) if cogs_per_day > 0 else float("nan"),
        "orders_placed": float((trace["ordered"][:, sl] > 0).sum()),
        "sku_days": float(d.size),
    }


NAIVE_LEVEL_FACTOR = 1.2  # midpoint of the generator's U(0.9, 1.5) x lead-time mean demand
NAIVE_QTY_DAYS = 32.5  # midpoint of the generator's U(20, 45) days of mean demand


def naive_parameters(
    mean_daily_demand: np.ndarray,
    lead_time_days: np.ndarray,
    level_factor: float = NAIVE_LEVEL_FACTOR,
    qty_days: float = NAIVE_QTY_DAYS,
) -> tuple[np.ndarray, np.ndarray]:
    """The shop's rule as (reorder point, order quantity) for `run_policy(..., one_outstanding=True)`.

    The generator orders when on hand < level = ceil(level_factor * L * m) + 1, i.e. (whole units) when on
    hand <= ceil(level_factor * L * m): that is the reorder point returned. Quantity: ceil(qty_days * m),
    at least 2 units, as in the generator.
    """
    m = np.nan_to_num(np.asarray(mean_daily_demand, dtype=float))
    lead = np.asarray(lead_time_days, dtype=float)
    return np.ceil(level_factor * lead * m), np.maximum(np.ceil(qty_days * m), 2.0)


def replay(
    demand: pl.DataFrame,
    calendar: pl.DataFrame | None,
    products: pl.DataFrame,
    start: dt.date,
    days: int = 91,
    *,
    demand_column: str = "units",
    review_every: int = 7,
    warmup_days: int = 28,
    initial_days_of_demand: float = 14.0,
    policy: PolicyConfig | None = None,
    forecast_config: ForecastConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> SimulationResult:
    """Fit the forecaster on days <= start, then replay (start, start + days] under both policies.

    `demand_column` is what customers wanted each day: the synthetic `true_demand`, or `units` on real data
    (there stock-out days are censored, so lost sales are underestimated for both policies alike).
    Both policies start with `initial_days_of_demand` days of mean demand on hand and nothing on order.
    """
    cfg = forecast_config or ForecastConfig(use_prophet=False)
    end = start + dt.timedelta(days=days)
    fitter = GlobalForecaster(cfg).fit(demand, calendar, fit_until=start, progress=progress)
    skus = demand.filter(pl.col("date") <= start)["sku"].unique().sort()
    period = demand.filter(
        pl.col("date") > start, pl.col("date") <= end, pl.col("sku").is_in(skus.to_list())
    ).select("sku", "date", pl.col(demand_column).cast(pl.Float64).alias("demand"))
    grid = pl.DataFrame({"sku": skus}).join(
        pl.DataFrame({"date": pl.date_range(start + dt.timedelta(days=1), end, eager=True)}), how="cross"
    )
    matrix = grid.join(period, on=["sku", "date"], how="left").with_columns(pl.col("demand").fill_null(0.0))
    n, t = len(skus), days
    dem = matrix["demand"].to_numpy().reshape(n, t)
    hist_mean = (
        demand.filter(pl.col("date") <= start, pl.col("date") > start - dt.timedelta(days=91))
        .group_by("sku")
        .agg(pl.col("units").mean().alias("m"))
    )
    prod = (
        pl.DataFrame({"sku": skus}).join(products, on="sku", how="left").join(hist_mean, on="sku", how="left")
    )
    if prod["lead_time_days"].null_count():
        raise ValueError("simulation.replay: products lack lead_time_days for some SKUs in the demand frame")
    lead = prod["lead_time_days"].to_numpy()
    cost = prod["unit_cost"].fill_null(0.0).to_numpy().astype(float)
    mean = prod["m"].fill_null(0.0).to_numpy()

    rop = np.zeros((n, t))
    out_level = np.zeros((n, t))
    for k in range(0, t, review_every):
        origin = start + dt.timedelta(days=k)
        fc = fitter.predict(origin)
        params = pl.DataFrame({"sku": skus}).join(
            policy_parameters(fc, products, origin, policy), on="sku", how="left"
        )
        rop[:, k : k + review_every] = params["reorder_point"].fill_null(0.0).to_numpy()[:, None]
        out_level[:, k : k + review_every] = params["order_up_to"].fill_null(0.0).to_numpy()[:, None]
        if progress:
            progress(f"policy parameters for day {k + 1} of {t}")
    start_stock = np.ceil(initial_days_of_demand * mean)
    ours = run_policy(dem, lead, start_stock, rop, order_up_to=out_level)
    level, qty = naive_parameters(mean, lead)
    naive = run_policy(dem, lead, start_stock, level, order_qty=qty, one_outstanding=True)
    ours_score = summarize(ours, dem, cost, warmup_days)
    rows = [
        {"policy": "forecast_policy", "naive_scale": None, **ours_score},
        {"policy": "naive_policy", "naive_scale": 1.0, **summarize(naive, dem, cost, warmup_days)},
    ]
    # Inventory at equal service: the smallest scale of the shop's rule (level factor and order days both
    # multiplied) whose stock-out rate is no higher than ours.
    for scale in np.arange(0.25, 8.01, 0.25):
        level_s, qty_s = naive_parameters(mean, lead, NAIVE_LEVEL_FACTOR * scale, NAIVE_QTY_DAYS * scale)
        score = summarize(
            run_policy(dem, lead, start_stock, level_s, order_qty=qty_s, one_outstanding=True),
            dem,
            cost,
            warmup_days,
        )
        if score["stockout_rate"] <= ours_score["stockout_rate"]:
            rows.append({"policy": "naive_policy_matched", "naive_scale": float(scale), **score})
            break
    summary = pl.DataFrame(rows)
    daily = pl.concat(
        [
            matrix.with_columns(
                pl.lit(name).alias("policy"), *[pl.Series(k, v.ravel()) for k, v in trace.items()]
            )
            for name, trace in (("forecast_policy", ours), ("naive_policy", naive))
        ]
    )
    return SimulationResult(daily=daily, summary=summary)
