"""Synthetic SKU-day demand for developing and testing the decision models before the shop data exists.

The frames follow the input contract of the models (the dbt mart `fct_sku_daily_demand`, the holiday
calendar seed and the products table), so a test or the benchmark can swap in real marts unchanged.
What the series contain, and why:

- weekly and yearly seasonality per category, a per-SKU trend, price changes and price elasticity;
- shopping events from the calendar: Spring Festival (pre-festival rush, then a logistics lull),
  618, Double 11 (pre-sale ramp, spike, hangover) and Double 12, with category-specific strength;
- promotions (own episodes plus event-day discounts) lifting demand through `discount_rate`;
- smooth, intermittent and lumpy SKUs (Gamma-Poisson noise with per-SKU dispersion), so the median
  SKU has a realistic share of zero-sale days (the architecture aims at 20-80%);
- late launches (rows start at the launch day, as a zero-filled mart would);
- stock-out episodes that censor demand: `units` is 0 and `stockout` is true while `true_demand`
  (synthetic only, never in the real mart) keeps what customers wanted.

Everything is drawn from one seeded numpy Generator, so a (n_skus, n_days, seed) triple always gives
the same frames.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import holidays
import numpy as np
import polars as pl

CATEGORIES = ("apparel", "electronics", "home", "beauty", "toys", "sports", "grocery", "books")
SUPPLIERS = ("sup_north", "sup_south", "sup_east", "sup_west", "sup_import")
EVENTS = ("spring_festival", "618", "double_11", "double_12")


@dataclass(frozen=True)
class SyntheticShop:
    """The three input frames of the decision models, plus the uncensored truth for evaluation."""

    demand: pl.DataFrame  # contract columns + true_demand (synthetic only)
    calendar: pl.DataFrame  # date, event
    products: pl.DataFrame  # sku, category, unit_cost, list_price, supplier, lead_time_days


def event_calendar(first_year: int, last_year: int) -> pl.DataFrame:
    """One row per event occurrence (its main day): Spring Festival from `holidays.China`, 618, 11.11, 12.12."""
    china = holidays.China(years=range(first_year, last_year + 1))
    spring = sorted({d for d, name in china.items() if name == "Chinese New Year (Spring Festival)"})
    first_day_per_year: dict[int, dt.date] = {}
    for d in spring:
        first_day_per_year.setdefault(d.year, d)
    rows: list[tuple[dt.date, str]] = [(d, "spring_festival") for d in first_day_per_year.values()]
    for year in range(first_year, last_year + 1):
        rows += [
            (dt.date(year, 6, 18), "618"),
            (dt.date(year, 11, 11), "double_11"),
            (dt.date(year, 12, 12), "double_12"),
        ]
    return pl.DataFrame(rows, schema={"date": pl.Date, "event": pl.String}, orient="row").sort("date")


def _event_multiplier(dates: np.ndarray, calendar: pl.DataFrame, strength: np.ndarray) -> np.ndarray:
    """Demand multiplier per (category, day) from the calendar; `strength` scales each category's response."""
    n_days = len(dates)
    base = np.ones(n_days)
    rel = np.ones((len(strength), n_days))
    day0 = dates[0]
    for event_day, event in calendar.iter_rows():
        k = (np.datetime64(event_day, "D") - day0).astype(int)
        shape = np.zeros(n_days)  # log-lift before category strength

        def add(lo: int, hi: int, log_lift: float, k: int = k, shape: np.ndarray = shape) -> None:
            a, b = max(k + lo, 0), min(k + hi + 1, n_days)
            if a < b:
                shape[a:b] += log_lift

        if event == "spring_festival":
            add(-20, -8, np.log(1.3))  # stocking up before the holiday
            add(-3, 6, np.log(0.45))  # couriers stop: online orders collapse
        elif event == "618":
            add(-10, -1, np.log(1.25))
            add(0, 0, np.log(2.6))
        elif event == "double_11":
            add(-10, -1, np.log(1.4))  # pre-sale
            add(0, 0, np.log(4.5))
            add(1, 4, np.log(0.75))  # hangover
        elif event == "double_12":
            add(0, 0, np.log(1.9))
        rel *= np.exp(np.outer(strength, shape))
    return base * rel


def generate_shop(
    n_skus: int = 200,
    n_days: int = 730,
    start: dt.date = dt.date(2023, 1, 1),
    seed: int = 7,
    n_categories: int = 8,
    stockout_start_prob: float = 0.004,
    launch_share: float = 0.08,
) -> SyntheticShop:
    """Draw a deterministic synthetic shop: `n_skus` SKUs over `n_days` days from `start`."""
    rng = np.random.default_rng(seed)
    n_cat = min(n_categories, len(CATEGORIES))
    days = np.arange(n_days)
    dates = np.datetime64(start, "D") + days
    end = start + dt.timedelta(days=n_days - 1)
    calendar = event_calendar(start.year, end.year + 1)

    # --- products -------------------------------------------------------------------------------
    cat_idx = rng.integers(0, n_cat, n_skus)
    skus = np.array([f"SKU{i:05d}" for i in range(n_skus)])
    list_price = np.round(np.exp(rng.normal(3.3, 0.8, n_skus)), 2)
    unit_cost = np.round(list_price * rng.uniform(0.35, 0.75, n_skus), 2)
    supplier_idx = rng.integers(0, len(SUPPLIERS), n_skus)
    lead_time = np.where(
        np.array(SUPPLIERS)[supplier_idx] == "sup_import",
        rng.integers(14, 29, n_skus),
        rng.integers(3, 11, n_skus),
    )

    # --- expected demand (n_skus, n_days) -------------------------------------------------------
    level = np.exp(rng.normal(0.1, 1.4, n_skus))  # median ~1.1 units/day, long right tail
    weekly = 1 + 0.25 * rng.standard_normal((n_cat, 7))
    weekly = np.clip(weekly, 0.5, 1.6)
    weekly /= weekly.mean(axis=1, keepdims=True)
    dow = (dates.astype("datetime64[D]").view("int64") - 4) % 7  # 0 = Monday (1970-01-01 was a Thursday)
    doy = (dates - dates.astype("datetime64[Y]")).astype(int)
    amp = rng.uniform(0.05, 0.45, n_cat)
    phase = rng.uniform(0, 365, n_cat)
    yearly = 1 + amp[:, None] * np.cos(2 * np.pi * (doy[None, :] - phase[:, None]) / 365.25)
    strength = rng.uniform(0.5, 1.3, n_cat)
    events = _event_multiplier(dates, calendar, strength)
    growth = rng.normal(0.0, 0.35, n_skus)  # log growth per year
    trend = np.exp(growth[:, None] * (days[None, :] - n_days / 2) / 365.0)

    # Prices: up to two permanent list-price changes, own promo episodes and event-day discounts.
    price_level = np.ones((n_skus, n_days))
    for _ in range(2):
        when = rng.integers(0, n_days, n_skus)
        step = np.where(rng.random(n_skus) < 0.5, rng.uniform(0.85, 1.15, n_skus), 1.0)
        price_level *= np.where(days[None, :] >= when[:, None], step[:, None], 1.0)
    discount = np.zeros((n_skus, n_days))
    promo_start = rng.random((n_skus, n_days)) < 1 / 70
    promo_len = rng.integers(3, 11, (n_skus, n_days))
    promo_depth = rng.uniform(0.1, 0.4, (n_skus, n_days))
    for i, t in zip(*np.nonzero(promo_start), strict=True):
        discount[i, t : t + promo_len[i, t]] = promo_depth[i, t]
    joins = rng.random(n_skus) < 0.7  # SKUs taking part in platform events
    for event_day, event in calendar.iter_rows():
        if event == "spring_festival":
            continue
        k = int((np.datetime64(event_day, "D") - dates[0]).astype(int))
        lo, hi = max(k - 2, 0), min(k + 1, n_days)
        if lo < hi:
            discount[joins, lo:hi] = np.maximum(discount[joins, lo:hi], 0.2)
    elasticity = rng.uniform(1.5, 4.0, n_skus)
    price = list_price[:, None] * price_level * (1 - discount)
    promo_lift = np.exp(elasticity[:, None] * discount)
    price_effect = price_level ** (-1.2)

    mu = (
        level[:, None]
        * weekly[cat_idx][:, dow]
        * yearly[cat_idx]
        * events[cat_idx]
        * trend
        * promo_lift
        * price_effect
    )
    # Gamma-Poisson noise: small shape = lumpy demand (orders of several units at once).
    shape = np.exp(rng.normal(1.0, 1.0, n_skus))
    true_demand = rng.poisson(mu * rng.gamma(shape[:, None], 1.0 / shape[:, None], (n_skus, n_days)))

    # Stock-outs: episodes of 1-10 days where nothing sells.
    out = np.zeros((n_skus, n_days), dtype=bool)
    starts = rng.random((n_skus, n_days)) < stockout_start_prob
    lengths = rng.integers(1, 11, (n_skus, n_days))
    for i, t in zip(*np.nonzero(starts), strict=True):
        out[i, t : t + lengths[i, t]] = True
    units = np.where(out, 0, true_demand)
    on_hand = np.where(out, 0, rng.poisson(np.maximum(mu, 0.2) * 20) + 1)

    # Late launches: the mart only has rows from the launch day on.
    launch = np.where(rng.random(n_skus) < launch_share, rng.integers(0, n_days // 2, n_skus), 0)
    keep = days[None, :] >= launch[:, None]

    sku_rows = np.broadcast_to(np.arange(n_skus)[:, None], (n_skus, n_days))[keep]
    day_rows = np.broadcast_to(days[None, :], (n_skus, n_days))[keep]
    demand = pl.DataFrame(
        {
            "sku": skus[sku_rows],
            "category": np.array(CATEGORIES)[cat_idx][sku_rows],
            "date": dates[day_rows],
            "units": units[keep].astype(np.float64),
            "avg_unit_price": np.round(price[keep], 2),
            "discount_rate": np.round(discount[keep], 3),
            "on_hand_eod": on_hand[keep].astype(np.int64),
            "stockout": out[keep],
            "true_demand": true_demand[keep].astype(np.float64),
        }
    ).with_columns(pl.col("date").cast(pl.Date))
    products = pl.DataFrame(
        {
            "sku": skus,
            "category": np.array(CATEGORIES)[cat_idx],
            "unit_cost": unit_cost,
            "list_price": list_price,
            "supplier": np.array(SUPPLIERS)[supplier_idx],
            "lead_time_days": lead_time.astype(np.int64),
        }
    )
    return SyntheticShop(demand=demand, calendar=calendar, products=products)


def zero_share_by_sku(demand: pl.DataFrame) -> pl.DataFrame:
    """Share of zero-sale days per SKU (the realism statistic of the architecture page)."""
    return demand.group_by("sku").agg((pl.col("units") == 0).mean().alias("zero_share"))
