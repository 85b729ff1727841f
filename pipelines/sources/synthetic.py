"""The embedded synthetic shop: a deterministic Chinese online shop writing all 8 canonical landing tables.

Why it exists: the pipeline needs a default source that runs without downloads and that is realistic
enough for the forecasts, RFM, NPS, inventory and carbon marts to show something true. It is a small
simulation, not a table of random numbers:

- Calendar (`holidays.China` for the Spring Festival and National Day): weekly and yearly seasonality,
  the New Year goods festival before Spring Festival, the holiday lull (warehouses closed), 618 and
  Double 11 (pre-sale, spike, hangover) and Double 12, each with a promotion that lifts demand and cuts
  prices (the order line `discount`).
- Customers arrive over time (a quarter already exist at the start) as one-off, occasional or loyal
  buyers; repeat buyers churn after an exponential lifetime; guests order without an account.
- SKUs are smooth, intermittent (lumpy), trending up (some launched mid-period) or trending down, with
  category seasonality and promotion participation.
- Inventory is the shop's naive reorder policy per SKU and warehouse: when on_hand falls below a fixed
  level and nothing is on order, order a fixed quantity that arrives after the product's lead time
  (suppliers close around Spring Festival). Demand meeting no stock is lost, so sales are capped by
  stock and stock-outs are there to be found.
- Orders become shipments (carrier, mode, distance, weight, packaging, promised and actual delivery with
  delays clustering by region and week, a storm week, parcel floods after Double 11), returns, reviews
  and surveys whose scores depend on lateness, damage and product quality, and web sessions whose
  purchase events carry the order id.
- Competitors' prices follow our list price with their own level, drift and festival cuts.

Determinism: every random draw comes from numpy Generators spawned from one SeedSequence(seed), consumed
in a fixed order, so the same seed and scale give byte-identical files. Memory is bounded: the shop is
simulated and written one day at a time (only shipments and reviews dated later are buffered, a few weeks
at most), so `large` streams.

    python -m pipelines.sources.synthetic --landing data/landing --scale small --seed 42 [--force]
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import holidays
import numpy as np
import polars as pl

from pipelines.core.landing import csv_file, csv_files
from pipelines.core.schemas import ORDER_STATUSES, SHIPMENT_MODES, TABLES, TRAFFIC_EVENTS
from pipelines.sources.base import (
    ADAPTER_QUARANTINE_DIR,
    CSV_FORMATS,
    MANIFEST_NAME,
    ROUTED_OUT_DIR,
    LandingReport,
    atomic_write_bytes,
    daily_file,
    read_manifest,
    snapshot_file,
    write_csv_atomic,
    write_manifest,
)

GENERATOR_VERSION = "1.0"
CURRENCY = "CNY"
TIMEZONE = "Asia/Shanghai"
SOURCE_NAME = "synthetic"


# ---------------------------------------------------------------------------------------------------------
# Scale


@dataclass(frozen=True)
class Scale:
    """How big the shop is. Order lines follow from customers x days (about 50 lines per customer)."""

    customers: int
    skus: int
    days: int
    start_date: date = date(2024, 1, 1)
    warehouses: int = 3
    competitors: int = 3

    def __post_init__(self) -> None:
        if min(self.customers, self.skus, self.days, self.warehouses, self.competitors) < 1:
            raise ValueError(f"every Scale size must be >= 1, got {self}")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["start_date"] = self.start_date.isoformat()
        return out

    @property
    def end_date(self) -> date:
        return self.start_date + timedelta(days=self.days - 1)


SCALES: dict[str, Scale] = {
    "tiny": Scale(customers=300, skus=25, days=120, warehouses=2, competitors=2),
    "small": Scale(customers=4_000, skus=150, days=730, warehouses=3, competitors=3),
    "medium": Scale(customers=100_000, skus=2_000, days=730, warehouses=4, competitors=3),
    # Three years ending 2025-12-31: a shop must end before today, or ingestion quarantines its last days
    # as future_timestamp (from 2024-01-01 it would run to 2026-12-30).
    "large": Scale(
        customers=1_000_000, skus=20_000, days=1_095, start_date=date(2023, 1, 1), warehouses=5, competitors=3
    ),
}


def resolve_scale(scale: str | Scale) -> tuple[str, Scale]:
    """(name, Scale) for a preset name or a custom Scale (named 'custom' unless it equals a preset)."""
    if isinstance(scale, Scale):
        for name, preset in SCALES.items():
            if preset == scale:
                return name, scale
        return "custom", scale
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; presets: {', '.join(SCALES)}")
    return scale, SCALES[scale]


# ---------------------------------------------------------------------------------------------------------
# Reference data (a Chinese online shop)

# province, relative online-shopping weight, latitude, longitude of the capital
REGIONS: tuple[tuple[str, float, float, float], ...] = (
    ("Guangdong", 12.0, 23.13, 113.26),
    ("Jiangsu", 9.0, 32.06, 118.80),
    ("Zhejiang", 9.0, 30.27, 120.15),
    ("Shandong", 7.0, 36.65, 117.12),
    ("Henan", 5.5, 34.75, 113.63),
    ("Sichuan", 5.5, 30.57, 104.07),
    ("Shanghai", 5.0, 31.23, 121.47),
    ("Hubei", 4.5, 30.59, 114.31),
    ("Fujian", 4.5, 26.07, 119.30),
    ("Hebei", 4.5, 38.04, 114.51),
    ("Beijing", 4.5, 39.90, 116.41),
    ("Hunan", 4.0, 28.23, 112.94),
    ("Anhui", 4.0, 31.82, 117.23),
    ("Shaanxi", 2.8, 34.34, 108.94),
    ("Liaoning", 2.8, 41.81, 123.43),
    ("Chongqing", 2.5, 29.56, 106.55),
    ("Guangxi", 2.3, 22.82, 108.37),
    ("Jiangxi", 2.3, 28.68, 115.86),
    ("Yunnan", 2.2, 25.04, 102.71),
    ("Tianjin", 1.8, 39.34, 117.36),
    ("Shanxi", 1.8, 37.87, 112.55),
    ("Heilongjiang", 1.6, 45.80, 126.53),
    ("Guizhou", 1.5, 26.65, 106.63),
    ("Jilin", 1.2, 43.82, 125.32),
    ("Inner Mongolia", 1.0, 40.84, 111.75),
    ("Xinjiang", 0.9, 43.83, 87.62),
    ("Gansu", 0.8, 36.06, 103.83),
    ("Hainan", 0.7, 20.04, 110.20),
    ("Ningxia", 0.3, 38.49, 106.23),
    ("Qinghai", 0.25, 36.62, 101.78),
    ("Tibet", 0.15, 29.65, 91.11),
)
REGION_NAMES = tuple(r[0] for r in REGIONS)
STORM_REGIONS = ("Guangdong", "Hainan", "Guangxi", "Fujian")  # a typhoon week
REMOTE_REGIONS = ("Xinjiang", "Tibet", "Qinghai", "Gansu", "Ningxia", "Inner Mongolia")
COLD_REGIONS = ("Heilongjiang", "Jilin", "Liaoning", "Inner Mongolia", "Xinjiang", "Gansu", "Qinghai")

WAREHOUSES: tuple[tuple[str, float, float], ...] = (
    ("shanghai_dc", 31.23, 121.47),
    ("guangzhou_dc", 23.13, 113.26),
    ("beijing_dc", 39.90, 116.41),
    ("chengdu_dc", 30.57, 104.07),
    ("wuhan_dc", 30.59, 114.31),
)


@dataclass(frozen=True)
class _Category:
    name: str
    share: float
    weight_kg: tuple[float, float]
    price: tuple[float, float]
    soft: bool  # ships in a poly mailer (ldpe film) when the parcel is light
    fragile: bool
    return_extra: float  # extra return probability (wrong size for apparel and shoes)
    season_amp: float
    season_peak_doy: int
    qty_lambda: float  # extra units per line ~ Poisson(qty_lambda)
    nouns: tuple[str, ...]
    suppliers: tuple[tuple[str, int], ...]  # (supplier, typical lead time in days)


# fmt: off
# name, share of SKUs, weight kg range, price CNY range, soft, fragile, extra return p, seasonal amplitude,
# seasonal peak (day of year), extra units per line, product nouns, (supplier, lead time days)
CATEGORIES: tuple[_Category, ...] = (
    _Category("apparel", 0.22, (0.15, 0.9), (49, 499), True, False, 0.07, 0.35, 330, 0.15,
              ("T-shirt", "Hoodie", "Down Jacket", "Jeans", "Dress", "Sweater"),
              (("Guangzhou Apparel Works", 7), ("Suzhou Textile Co.", 9), ("Hangzhou Silk Trading", 12))),
    _Category("shoes", 0.09, (0.5, 1.6), (99, 799), False, False, 0.06, 0.2, 100, 0.03,
              ("Running Shoes", "Sneakers", "Boots", "Sandals", "Loafers"),
              (("Quanzhou Footwear", 10), ("Putian Shoe Factory", 8))),
    _Category("electronics", 0.12, (0.08, 3.5), (49, 3999), False, True, 0.02, 0.12, 315, 0.05,
              ("Earbuds", "Power Bank", "Smart Watch", "Bluetooth Speaker", "USB-C Charger", "Keyboard"),
              (("Shenzhen Tech Supply", 6), ("Dongguan Electronics", 8), ("Seoul Device Import", 28))),
    _Category("home", 0.12, (0.4, 9.0), (29, 899), False, False, 0.015, 0.1, 330, 0.25,
              ("Bedsheet Set", "Storage Box", "Desk Lamp", "Pillow", "Curtain", "Rug"),
              (("Ningbo Home Goods", 9), ("Yiwu Commodity Co.", 5))),
    _Category("kitchen", 0.08, (0.3, 5.0), (19, 599), False, True, 0.015, 0.08, 30, 0.3,
              ("Wok", "Rice Cooker", "Ceramic Bowl Set", "Knife Set", "Thermos", "Tea Set"),
              (("Chaozhou Ceramics", 11), ("Yangjiang Kitchenware", 9), ("Osaka Kitchen Import", 30))),
    _Category("beauty", 0.12, (0.05, 0.6), (29, 699), False, True, 0.01, 0.15, 170, 0.35,
              ("Face Cream", "Sunscreen", "Lipstick", "Serum", "Face Mask Pack", "Shampoo"),
              (("Shanghai Beauty Labs", 7), ("Guangzhou Cosmetics", 6), ("Seoul Cosmetics Import", 25))),
    _Category("food", 0.10, (0.2, 3.0), (9, 299), False, False, 0.005, 0.35, 25, 0.9,
              ("Green Tea", "Dried Fruit Gift Box", "Instant Noodles Pack", "Nut Mix", "Mooncake Box",
               "Coffee Beans"),
              (("Fujian Tea Co.", 5), ("Qingdao Foods", 4), ("Yunnan Coffee Farm", 10))),
    _Category("toys", 0.06, (0.2, 2.5), (29, 499), False, False, 0.01, 0.3, 152, 0.08,
              ("Building Blocks", "Plush Toy", "RC Car", "Puzzle", "Doll"),
              (("Shantou Toys", 8), ("Yiwu Commodity Co.", 5))),
    _Category("sports", 0.06, (0.3, 12.0), (39, 1999), False, False, 0.02, 0.25, 190, 0.08,
              ("Yoga Mat", "Dumbbell Set", "Badminton Racket", "Bike Helmet", "Jump Rope"),
              (("Xiamen Sports Gear", 9), ("Ningbo Fitness", 10))),
    _Category("books", 0.03, (0.2, 1.5), (19, 159), False, False, 0.005, 0.05, 250, 0.3,
              ("Novel", "Cookbook", "Picture Book", "Study Guide"),
              (("Beijing Book Distribution", 4), ("Xinhua Wholesale", 5))),
)
# fmt: on
_WRONG_SIZE_CATEGORIES = ("apparel", "shoes")
_ADJECTIVES = ("Classic", "Premium", "Lite", "Pro", "Eco", "Deluxe", "Mini", "Urban")

# carrier, share, speed factor (x transit days), unreliability (x delay odds), base cost, cost per extra kg,
# chance of air line-haul on long routes
CARRIERS: tuple[tuple[str, float, float, float, float, float, float], ...] = (
    ("SF Express", 0.18, 0.85, 0.7, 13.0, 2.0, 0.45),
    ("JD Logistics", 0.16, 0.85, 0.7, 11.0, 1.6, 0.25),
    ("ZTO Express", 0.22, 1.00, 1.0, 6.0, 1.0, 0.0),
    ("YTO Express", 0.15, 1.00, 1.1, 6.0, 1.0, 0.0),
    ("Yunda Express", 0.12, 1.05, 1.2, 5.5, 1.0, 0.0),
    ("STO Express", 0.10, 1.10, 1.35, 5.0, 1.0, 0.0),
    ("China Post EMS", 0.07, 1.15, 1.0, 9.0, 1.4, 0.25),
)
ORDER_CHANNELS = ("app", "web", "marketplace")
ORDER_CHANNEL_SHARES = (0.5, 0.3, 0.2)
TRAFFIC_CHANNELS = ("organic", "paid_search", "social", "email", "direct", "referral")
TRAFFIC_SHARES = np.array([0.30, 0.22, 0.20, 0.06, 0.15, 0.07])
TRAFFIC_CONVERSION = np.array([0.13, 0.10, 0.05, 0.20, 0.18, 0.12])
DEVICES = ("desktop", "mobile", "tablet")
DEVICE_CONVERSION = np.array([1.3, 0.9, 1.0])
COMPETITORS: tuple[tuple[str, float], ...] = (("jd_mall", 1.02), ("tmall_flagship", 1.0), ("pinduoduo", 0.92))

# Order hour-of-day profile (local time): lunch, afternoon and a late evening peak.
# fmt: off
_HOURS = np.array([2.0, 1.2, 0.6, 0.3, 0.2, 0.3, 0.7, 1.5, 2.6, 3.6, 4.2, 4.3,
                   3.8, 3.9, 4.2, 4.1, 3.8, 3.6, 3.8, 4.6, 5.6, 6.2, 5.6, 3.8])
# fmt: on
_PEAK_HOURS = _HOURS * np.where(np.arange(24) == 0, 6.0, np.where(np.arange(24) == 20, 2.0, 1.0))
_WEEKLY = np.array([0.94, 0.93, 0.94, 0.96, 1.00, 1.10, 1.13])  # Monday .. Sunday

# Customer behaviour (per day rates); tuned so the shop lands in ARCHITECTURE.md's realism ranges.
GUEST_RATIO = 0.12  # guest orders per account order
LINES_LAMBDA = 1.8  # lines per order = 1 + Poisson(LINES_LAMBDA x basket multiplier)
BAD_ROW_RATE = 0.0001  # per order line and bad-row kind (5 kinds: about 0.05% of lines)
BAD_ROW_RULES = ("malformed_line", "price_positive", "unknown_sku", "duplicate_key", "future_timestamp")

# Review text: themes a low score mentions (downstream theme extraction looks for these words).
THEMES = ("", "late delivery", "damaged", "poor quality", "wrong size", "not as described")
_THEME_PHRASES: dict[int, tuple[str, ...]] = {
    1: (
        "late delivery",
        "late delivery, took much longer than promised",
        "late delivery and no tracking updates",
    ),
    2: ("arrived damaged", "package damaged in transit", "item damaged, box crushed"),
    3: ("poor quality", "poor quality, broke after a week", "poor quality material"),
    4: ("wrong size, runs small", "wrong size, had to return it", "wrong size, much bigger than the chart"),
    5: ("not as described", "colour not as described", "not as described in the photos"),
}
_LOW_TEMPLATES = {
    1: ("Terrible, {}. Would not buy again.", "Very bad: {}."),
    2: ("Disappointed: {}.", "Not happy, {}."),
    3: ("Okay product but {}.", "Average, {}."),
}
_HIGH_TEXTS = {
    4: (
        "Good product, happy overall.",
        "Nice quality, delivery was fine.",
        "Good value, packaging could be better.",
        "Works well, would recommend.",
    ),
    5: (
        "Excellent, exactly as described.",
        "Fast delivery and great quality!",
        "Very satisfied, will buy again.",
        "Great value for money.",
        "Perfect, highly recommend.",
    ),
}


def _text_table() -> tuple[np.ndarray, int]:
    """All review texts in one array indexed by (score 0..5, theme, variant): vectorised lookup."""
    variants = 6
    table = np.full((6, len(THEMES), variants), "", dtype=object)
    for score in range(1, 6):
        for theme in range(len(THEMES)):
            if score >= 4:
                texts = _HIGH_TEXTS[score]
                options = [texts[v % len(texts)] for v in range(variants)]
            else:
                phrases = _THEME_PHRASES[theme if theme else 3]
                templates = _LOW_TEMPLATES[score]
                options = [
                    templates[v % len(templates)].format(phrases[v % len(phrases)]) for v in range(variants)
                ]
            table[score, theme, :] = options
    return table, variants


# ---------------------------------------------------------------------------------------------------------
# Helpers


def _haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    lat1, lon1, lat2, lon2 = map(np.radians, (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 6371.0 * 2 * np.arcsin(np.sqrt(a))


def _pick(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    """n indices drawn with probability proportional to `weights` (inverse CDF: one cumsum, one search)."""
    cdf = np.cumsum(weights, dtype=np.float64)
    if n == 0 or cdf.size == 0 or cdf[-1] <= 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
    return np.minimum(idx, cdf.size - 1).astype(np.int64)


def _group_rank(groups: np.ndarray) -> np.ndarray:
    """0-based position of each element inside its run of equal, adjacent group values."""
    n = groups.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.arange(n)
    start = np.r_[True, groups[1:] != groups[:-1]]
    return idx - np.maximum.accumulate(np.where(start, idx, 0))


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pl.Series:
    """String ids like C0000042 built in polars (vectorised)."""
    return pl.select(
        pl.lit(prefix) + pl.Series(numbers, dtype=pl.Int64).cast(pl.String).str.zfill(width)
    ).to_series()


def _nullable(values: pl.Series) -> pl.Series:
    """`values` with one null appended: the target of index -1 in `_take`."""
    return values.extend_constant(None, 1)


def _take(values: pl.Series, idx: np.ndarray) -> pl.Series:
    """values[idx] with null where idx < 0 (guests, events without a SKU or order); `values` from _nullable."""
    return values.gather(np.where(idx < 0, values.len() - 1, idx))


def _ts(seconds: np.ndarray) -> pl.Series:
    """Naive local timestamps from seconds since 1970-01-01 (the shop's wall clock)."""
    return pl.from_epoch(pl.Series(seconds.astype(np.int64)), time_unit="s")


_EPOCH = date(1970, 1, 1)


def _epoch_s(day: date) -> int:
    return (day - _EPOCH).days * 86_400


# ---------------------------------------------------------------------------------------------------------
# Calendar


@dataclass
class _Calendar:
    """Per-day arrays over the horizon plus a tail (shipments and reviews run past the last order day)."""

    dates: list[date]
    demand: np.ndarray  # weekly x yearly x event lift
    discount: np.ndarray  # promotion discount rate for participating SKUs
    peak_hours: np.ndarray  # midnight pre-sale profile (618, Double 11)
    cancel_p: np.ndarray
    backlog: np.ndarray  # mean extra days before a parcel leaves the warehouse
    surge: np.ndarray  # mean extra transit days (carrier overload)
    closed: np.ndarray  # warehouse closed (Spring Festival): nothing ships
    next_open: np.ndarray
    supplier_closed: np.ndarray  # supplier factories closed: arrivals slip
    doy: np.ndarray
    month: np.ndarray
    storm_start: int
    events: list[dict[str, Any]]


def _build_calendar(scale: Scale) -> _Calendar:
    horizon = scale.days + 120
    dates = [scale.start_date + timedelta(days=i) for i in range(horizon)]
    index = {d: i for i, d in enumerate(dates)}
    weekday = np.array([d.weekday() for d in dates])
    doy = np.array([d.timetuple().tm_yday for d in dates])
    month = np.array([d.month for d in dates])
    yearly = 1.0 + 0.08 * np.cos(2 * np.pi * (doy - 345) / 365.25)
    lift = np.ones(horizon)
    discount = np.zeros(horizon)
    peak = np.zeros(horizon, dtype=bool)
    backlog = np.zeros(horizon)
    surge = np.zeros(horizon)
    closed = np.zeros(horizon, dtype=bool)
    supplier_closed = np.zeros(horizon, dtype=bool)
    events: list[dict[str, Any]] = []

    def put(
        day: date,
        lift_v: float,
        disc: float = 0.0,
        *,
        peak_v: bool = False,
        backlog_v: float = 0.0,
        surge_v: float = 0.0,
    ) -> None:
        i = index.get(day)
        if i is not None:
            lift[i], discount[i], peak[i] = lift_v, disc, peak_v
            backlog[i], surge[i] = max(backlog[i], backlog_v), max(surge[i], surge_v)

    years = range(scale.start_date.year, dates[-1].year + 1)
    china = holidays.China(years=years)
    for day, name in china.items():
        if "National Day" in name:
            put(day, 0.9)
    for y in years:

        def d(m: int, dd: int, y: int = y) -> date:
            return date(y, m, dd)

        put(d(3, 7), 1.15, 0.05)
        put(d(3, 8), 1.3, 0.08)  # Women's Day ("Queen's Day") sale
        put(d(6, 1), 1.7, 0.15, peak_v=True)  # 618 pre-sale opens
        for k in range(2, 16):
            put(d(6, k), 1.15, 0.10)
        put(d(6, 16), 1.5, 0.15)
        put(d(6, 17), 1.9, 0.15)
        put(d(6, 18), 3.0, 0.20, peak_v=True, backlog_v=1.0, surge_v=0.4)
        put(d(6, 19), 1.1, 0.05, backlog_v=0.5, surge_v=0.4)
        put(d(6, 20), 1.1, 0.05, surge_v=0.3)
        for k in range(24, 31):
            put(d(10, k), 1.1, 0.05)
        put(d(10, 31), 1.5, 0.15, peak_v=True)  # Double 11 pre-sale
        put(d(11, 1), 1.9, 0.20, peak_v=True, backlog_v=0.5, surge_v=0.3)
        for k in range(2, 10):
            put(d(11, k), 1.15, 0.12)
        put(d(11, 10), 1.5, 0.15)
        put(d(11, 11), 4.5, 0.25, peak_v=True, backlog_v=1.5, surge_v=1.0)
        put(d(11, 12), 1.3, 0.10, backlog_v=1.0, surge_v=1.0)
        put(d(11, 13), 1.15, 0.05, backlog_v=0.5, surge_v=0.8)
        for k in range(14, 25):
            put(d(11, k), 0.88, surge_v=0.5 if k < 17 else 0.0)  # hangover: demand pulled forward
        put(d(12, 11), 1.1, 0.05)
        put(d(12, 12), 1.6, 0.12, peak_v=True, backlog_v=0.3)
        for when, name in (((6, 18), "618"), ((11, 11), "double_11"), ((12, 12), "double_12")):
            if d(*when) in index and index[d(*when)] < scale.days:
                events.append({"event": name, "date": d(*when).isoformat()})
        spring = sorted(day for day, name in china.items() if day.year == y and "Spring Festival" in name)
        if spring:
            sf = spring[0]
            for k in range(-24, -4):
                put(sf + timedelta(k), 1.35, 0.10)  # New Year goods festival
            for k in range(-7, -1):
                put(sf + timedelta(k), 0.9 if k >= -4 else 1.35, 0.10 if k < -4 else 0.0, surge_v=1.5)
            for k in range(-1, 7):
                put(sf + timedelta(k), 0.6)
                i = index.get(sf + timedelta(k))
                if i is not None:
                    closed[i] = True
            for k in range(7, 15):
                put(sf + timedelta(k), 0.9, backlog_v=0.5)
            for k in range(-10, 15):
                i = index.get(sf + timedelta(k))
                if i is not None:
                    supplier_closed[i] = True
            if sf in index and index[sf] < scale.days:
                events.append(
                    {
                        "event": "spring_festival",
                        "date": sf.isoformat(),
                        "warehouses_closed": [
                            (sf - timedelta(1)).isoformat(),
                            (sf + timedelta(6)).isoformat(),
                        ],
                    }
                )
    next_open = np.arange(horizon)
    for i in range(horizon - 2, -1, -1):  # tiny loop over days (not rows): first open day from i on
        if closed[i]:
            next_open[i] = next_open[i + 1]
    # A typhoon week: the first early September in range, else 60% into the period.
    storm = next(
        (i for i, d in enumerate(dates[: scale.days]) if d.month == 9 and d.day == 4), int(scale.days * 0.6)
    )
    events.append(
        {
            "event": "storm",
            "start": dates[storm].isoformat(),
            "end": dates[storm + 6].isoformat(),
            "regions": list(STORM_REGIONS),
        }
    )
    cancel_p = np.where(discount >= 0.15, 0.04, 0.024)
    return _Calendar(
        dates=dates,
        demand=_WEEKLY[weekday] * yearly * lift,
        discount=discount,
        peak_hours=peak,
        cancel_p=cancel_p,
        backlog=backlog,
        surge=surge,
        closed=closed,
        next_open=next_open,
        supplier_closed=supplier_closed,
        doy=doy,
        month=month,
        storm_start=storm,
        events=events,
    )


# ---------------------------------------------------------------------------------------------------------
# The shop


@dataclass
class _DayFrames:
    orders: pl.DataFrame
    inventory: pl.DataFrame
    traffic: pl.DataFrame
    competitor_prices: pl.DataFrame
    shipments: pl.DataFrame
    reviews: pl.DataFrame


@dataclass
class _Outcome:
    """What happened to each of today's orders after it left: delivery time (0 = not inside the period)."""

    delivered_s: np.ndarray
    late: np.ndarray
    damaged: np.ndarray
    days_late: np.ndarray


@dataclass
class _Stats:
    candidate_lines: int = 0
    lost_lines: int = 0
    stockout_rows: int = 0
    not_yet_shipped: int = 0
    reviews_after_end: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class _Shop:
    """Static world (catalogue, customers, geography) plus the day-by-day state (stock, buffers)."""

    def __init__(self, scale: Scale, seed: int) -> None:
        self.scale = scale
        self.cal = _build_calendar(scale)
        streams = np.random.SeedSequence(seed).spawn(9)
        (s_static, s_cust, s_orders, s_inv, s_ship, s_rev, s_traffic, s_comp, s_bad) = streams
        self.rng_static = np.random.default_rng(s_static)
        self.rng_orders = np.random.default_rng(s_orders)
        self.rng_inv = np.random.default_rng(s_inv)
        self.rng_ship = np.random.default_rng(s_ship)
        self.rng_rev = np.random.default_rng(s_rev)
        self.rng_traffic = np.random.default_rng(s_traffic)
        self.rng_comp = np.random.default_rng(s_comp)
        self.rng_bad = np.random.default_rng(s_bad)
        self._build_geography()
        self._build_catalog()
        self._build_customers(np.random.default_rng(s_cust))
        self._build_inventory()
        self._build_competitors()
        table, self.text_variants = _text_table()
        self.text_shape = table.shape
        self.texts = _nullable(pl.Series(table.ravel().tolist(), dtype=pl.String))
        # Rows dated later than the day that created them (shipments, reviews), with their `_day`.
        self.pending: dict[str, dict[int, list[pl.DataFrame]]] = {"shipments": {}, "reviews": {}}
        self.stats = _Stats()

    # -- static world ------------------------------------------------------------------------------------

    def _build_geography(self) -> None:
        rng = self.rng_static
        n_wh = max(1, min(self.scale.warehouses, len(WAREHOUSES)))
        self.wh_names = pl.Series([w[0] for w in WAREHOUSES[:n_wh]])
        wh_lat = np.array([w[1] for w in WAREHOUSES[:n_wh]])
        wh_lon = np.array([w[2] for w in WAREHOUSES[:n_wh]])
        r_lat = np.array([r[2] for r in REGIONS])
        r_lon = np.array([r[3] for r in REGIONS])
        self.region_w = np.array([r[1] for r in REGIONS])
        self.region_names = pl.Series(REGION_NAMES)
        # Road distance ~ 1.25 x great circle; region -> nearest warehouse (the shop ships from there).
        self.dist_wr = 1.25 * _haversine_km(wh_lat[:, None], wh_lon[:, None], r_lat[None, :], r_lon[None, :])
        self.region_wh = np.argmin(self.dist_wr, axis=0)
        self.n_wh = n_wh
        share = np.bincount(self.region_wh, weights=self.region_w, minlength=n_wh)
        self.wh_share = share / share.sum()
        n_reg = len(REGIONS)
        self.is_storm_region = np.isin(np.array(REGION_NAMES), STORM_REGIONS)
        self.is_cold_region = np.isin(np.array(REGION_NAMES), COLD_REGIONS)
        remote = np.isin(np.array(REGION_NAMES), REMOTE_REGIONS)
        self.hainan = REGION_NAMES.index("Hainan")
        # Carrier mix per region (EMS reaches remote provinces best), as a CDF matrix for vectorised draws.
        mix = np.tile(np.array([c[1] for c in CARRIERS]), (n_reg, 1))
        mix[remote, -1] *= 5.0
        self.carrier_cdf = np.cumsum(mix / mix.sum(axis=1, keepdims=True), axis=1)
        self.carrier_names = pl.Series([c[0] for c in CARRIERS])
        # Delay clusters: some region-weeks run late (hub congestion, weather), remote ones more often.
        weeks = len(self.cal.dates) // 7 + 2
        p_cluster = np.where(remote, 0.12, 0.05)[:, None]
        hit = rng.random((n_reg, weeks)) < p_cluster
        self.cluster_delay = np.where(hit, rng.gamma(2.0, 0.9, (n_reg, weeks)), 0.0)

    def _build_catalog(self) -> None:
        rng, n = self.rng_static, self.scale.skus
        shares = np.array([c.share for c in CATEGORIES])
        cat = _pick(rng, shares, n)
        self.p_cat = cat
        ctype = _pick(rng, np.array([0.30, 0.35, 0.17, 0.18]), n)  # smooth, intermittent, up, down
        self.p_type = ctype

        def loguniform(bounds: np.ndarray) -> np.ndarray:
            lo, hi = np.log(bounds[:, 0]), np.log(bounds[:, 1])
            return np.exp(lo + (hi - lo) * rng.random(n))

        weight = np.round(loguniform(np.array([c.weight_kg for c in CATEGORIES])[cat]), 3)
        raw_price = loguniform(np.array([c.price for c in CATEGORIES], dtype=float)[cat])
        price = np.round(
            np.where(raw_price >= 20, np.floor(raw_price / 10) * 10 + 9, np.round(raw_price) - 0.1), 2
        )
        cost = np.round(price * rng.uniform(0.35, 0.62, n), 2)
        # Supplier (and its lead time) drawn among the category's suppliers: table lookups, no row loop.
        n_sup = np.array([len(c.suppliers) for c in CATEGORIES])
        sup_names = np.array(
            [[c.suppliers[i % len(c.suppliers)][0] for i in range(3)] for c in CATEGORIES], dtype=object
        )
        sup_lead = np.array([[c.suppliers[i % len(c.suppliers)][1] for i in range(3)] for c in CATEGORIES])
        k = np.minimum((rng.random(n) * n_sup[cat]).astype(np.int64), n_sup[cat] - 1)
        supplier, lead = sup_names[cat, k], sup_lead[cat, k]
        lead = np.maximum(2, lead + rng.integers(-2, 3, n))
        noun_table = np.array(
            [[c.nouns[i % len(c.nouns)] for i in range(6)] for c in CATEGORIES], dtype=object
        )
        nouns = noun_table[cat, rng.integers(0, 6, n)]
        adj = np.array(_ADJECTIVES, dtype=object)[rng.integers(0, len(_ADJECTIVES), n)]
        self.p_sku = _ids("SKU-", np.arange(1, n + 1), 6)
        self.p_sku_n = _nullable(self.p_sku)
        self.p_price = price
        self.p_weight = weight
        self.p_lead = lead
        self.p_soft = np.array([c.soft for c in CATEGORIES])[cat]
        self.p_fragile = np.array([c.fragile for c in CATEGORIES])[cat]
        self.p_return = np.array([c.return_extra for c in CATEGORIES])[cat]
        self.p_wrong_size = np.isin(np.array([c.name for c in CATEGORIES])[cat], _WRONG_SIZE_CATEGORIES)
        # Demand shape.
        type_mult = np.array([3.0, 0.25, 1.0, 1.5])[ctype]
        self.p_base = rng.lognormal(0.0, 1.1, n) * type_mult
        growth = np.zeros(n)
        up, down = ctype == 2, ctype == 3
        growth[up] = rng.uniform(0.5, 1.3, up.sum())
        growth[down] = -rng.uniform(0.5, 1.6, down.sum())
        self.p_growth = growth
        launched = up & (rng.random(n) < 0.5)
        self.p_launch = np.where(
            launched, (rng.uniform(0.05, 0.6, n) * self.scale.days).astype(int), -(10**6)
        )
        self.p_trend_t0 = np.where(launched, self.p_launch, 0)
        amp = np.array([c.season_amp for c in CATEGORIES])[cat] * rng.uniform(0.5, 1.5, n)
        self.p_amp = np.where(cat == 0, amp * rng.choice([-1.0, 1.0], n), amp)  # summer vs winter clothing
        self.p_peak = np.array([c.season_peak_doy for c in CATEGORIES])[cat] + rng.normal(0, 20, n)
        self.p_shape = np.array([25.0, 0.35, 5.0, 5.0])[ctype]  # Gamma noise shape: smooth .. lumpy
        self.p_qty = np.where(
            ctype == 1, rng.uniform(0.5, 2.5, n), np.array([c.qty_lambda for c in CATEGORIES])[cat]
        )
        self.p_promo = rng.random(n) < 0.7
        self.p_quality = rng.normal(0.0, 0.25, n) - np.where(rng.random(n) < 0.08, 0.9, 0.0)
        names = pl.select(
            pl.Series(adj, dtype=pl.String)
            + " "
            + pl.Series(nouns, dtype=pl.String)
            + " "
            + pl.Series(np.arange(1, n + 1)).cast(pl.String)
        ).to_series()
        self.products = pl.DataFrame(
            {
                "sku": self.p_sku,
                "name": names,
                "category": pl.Series(
                    np.array([c.name for c in CATEGORIES], dtype=object)[cat], dtype=pl.String
                ),
                "unit_cost": cost,
                "list_price": price,
                "weight_kg": weight,
                "supplier": pl.Series(supplier, dtype=pl.String),
                "lead_time_days": lead,
            }
        )

    def _build_customers(self, rng: np.random.Generator) -> None:
        n, days = self.scale.customers, self.scale.days
        pre = rng.random(n) < 0.25  # already customers before the first day
        # New customers arrive with the demand calendar and a growing acquisition effort.
        arrival_w = self.cal.demand[:days] * (0.6 + 0.8 * np.arange(days) / days)
        first = np.where(pre, -rng.integers(1, 366, n), _pick(rng, arrival_w, n))
        seg_new = _pick(rng, np.array([0.45, 0.37, 0.18]), n)  # one-off, occasional, loyal
        seg_pre = np.where(rng.random(n) < 0.35, 2, 1)
        seg = np.where(pre, seg_pre, seg_new)
        rate = np.where(
            seg == 2,
            rng.lognormal(np.log(1 / 7), 0.35, n),
            np.where(seg == 1, rng.lognormal(np.log(1 / 30), 0.6, n), 0.0),
        )
        lifetime = rng.exponential(450.0, n)
        end = np.where(seg == 0, first, np.maximum(first, 0) + lifetime).astype(np.int64)
        order = np.argsort(first, kind="stable")  # ids increase with first_seen, like an auto-increment
        self.c_first = first[order].astype(np.int64)
        self.c_rate = rate[order]
        self.c_end = end[order]
        self.c_region = _pick(rng, self.region_w, n)[order]
        self.c_channel = _pick(rng, np.array(ORDER_CHANNEL_SHARES), n)[order]
        self.c_basket = rng.lognormal(-0.06, 0.35, n)[order]
        self.c_ids = _ids("C", np.arange(1, n + 1), 7)
        self.c_ids_n = _nullable(self.c_ids)
        ids = np.arange(1, n + 1)
        surnames = np.array(
            "Wang Li Zhang Liu Chen Yang Huang Zhao Wu Zhou Xu Sun Ma Zhu Hu Guo".split(), dtype=object
        )
        given = np.array(
            "Wei Fang Na Min Jing Lei Jun Yan Tao Ming Xiu Hao Yu Jie Ling Qiang".split(), dtype=object
        )
        start = self.scale.start_date
        self.customers = pl.DataFrame(
            {
                "customer_id": self.c_ids,
                "first_seen": pl.Series(self.c_first, dtype=pl.Int32),
                "region": self.region_names.gather(self.c_region),
                "surname": pl.Series(surnames[rng.integers(0, len(surnames), n)], dtype=pl.String),
                "given": pl.Series(given[rng.integers(0, len(given), n)], dtype=pl.String),
                "n": ids,
            }
        ).select(
            "customer_id",
            (pl.lit(start) + pl.duration(days=pl.col("first_seen"))).cast(pl.Date).alias("first_seen"),
            "region",
            pl.format("user{}@example.com", pl.col("n")).alias("email"),
            pl.format(
                "+86 13{} {} {}",
                pl.col("n") % 10,
                ((pl.col("n") // 10_000) % 10_000).cast(pl.String).str.zfill(4),
                (pl.col("n") % 10_000).cast(pl.String).str.zfill(4),
            ).alias("phone"),
            pl.format("{} {}", pl.col("surname"), pl.col("given")).alias("name"),
        )

    def _expected_lines_per_day(self) -> float:
        """Mean order lines a day over the first four weeks (what a naive planner would size stock on)."""
        total = 0.0
        span = min(28, self.scale.days)
        for d in range(span):  # loop over 28 days, vectorised over customers
            rep = self.c_rate[(self.c_first < d) & (self.c_end >= d)].sum()
            first = np.count_nonzero(self.c_first == d)
            total += (first + self.cal.demand[d] * rep) * (1 + GUEST_RATIO)
        return total / span * (1 + LINES_LAMBDA)

    def _build_inventory(self) -> None:
        rng = self.rng_inv
        n, w = self.scale.skus, self.n_wh
        share = self.p_base / self.p_base.sum()
        mu = (self._expected_lines_per_day() * share * (1 + self.p_qty))[:, None] * self.wh_share[None, :]
        mu = mu.ravel()  # key = sku * n_wh + warehouse
        lead = np.repeat(self.p_lead, w)
        self.level = np.ceil(mu * lead * rng.uniform(0.9, 1.5, n * w)).astype(np.int64) + 1
        self.order_qty = np.maximum(2, np.ceil(mu * rng.uniform(20, 45, n * w))).astype(np.int64)
        self.on_hand = self.level + rng.integers(0, self.order_qty + 1)
        self.on_order = np.zeros(n * w, dtype=np.int64)
        self.arrival = np.full(n * w, -1, dtype=np.int64)
        self.inv_static = pl.DataFrame(
            {
                "sku": self.p_sku.gather(np.repeat(np.arange(n), w)),
                "warehouse": self.wh_names.gather(np.tile(np.arange(w), n)),
            }
        )

    def _build_competitors(self) -> None:
        rng = self.rng_comp
        k = max(1, min(self.scale.competitors, len(COMPETITORS)))
        n = self.scale.skus
        bias = np.array([c[1] for c in COMPETITORS[:k]])
        self.comp_names = pl.Series([c[0] for c in COMPETITORS[:k]])
        self.comp_carry = rng.random((k, n)) < 0.75
        self.comp_level = np.exp(np.log(bias)[:, None] + rng.normal(0, 0.06, (k, n)))
        self.comp_follow = rng.random((k, n)) < 0.6
        self.comp_state = np.zeros((k, n))

    # -- one day -----------------------------------------------------------------------------------------

    def _sku_weights(self, d: int, rng: np.random.Generator) -> np.ndarray:
        cal = self.cal
        trend = np.exp(self.p_growth * (d - self.p_trend_t0) / 365.0)
        ramp = np.clip((d - self.p_launch + 1) / 21.0, 0.0, 1.0)
        season = 1.0 + self.p_amp * np.cos(2 * np.pi * (cal.doy[d] - self.p_peak) / 365.25)
        promo = 1.0 + 2.0 * cal.discount[d] * self.p_promo
        noise = rng.gamma(self.p_shape, 1.0 / self.p_shape)
        return self.p_base * trend * ramp * np.maximum(season, 0.05) * promo * noise

    def day(self, d: int) -> _DayFrames:
        cal, rng = self.cal, self.rng_orders
        day = cal.dates[d]
        day0 = _epoch_s(day)
        end_s = _epoch_s(cal.dates[self.scale.days])  # first moment after the period
        disc = cal.discount[d]

        # Candidate orders: first orders of arriving customers, repeat orders of active ones, guests.
        lo = int(np.searchsorted(self.c_first, d, side="left"))
        hi = int(np.searchsorted(self.c_first, d, side="right"))
        first = np.arange(lo, hi)
        active = self.c_rate[:lo] * (self.c_end[:lo] >= d)
        lam = cal.demand[d] * float(active.sum())
        rep = _pick(rng, active, int(rng.poisson(lam)))
        n_guest = int(rng.poisson(GUEST_RATIO * (hi - lo + lam)))
        cust = np.concatenate([first, rep, np.full(n_guest, -1)]).astype(np.int64)
        n = cust.size
        guest = cust < 0
        cidx = np.where(guest, 0, cust)
        region = np.where(guest, _pick(rng, self.region_w, n), self.c_region[cidx])
        chan = np.where(
            ~guest & (rng.random(n) < 0.8),
            self.c_channel[cidx],
            _pick(rng, np.array(ORDER_CHANNEL_SHARES), n),
        )
        mult = np.where(guest, 1.0, self.c_basket[cidx])
        n_lines = 1 + rng.poisson(LINES_LAMBDA * mult * (1.15 if disc > 0 else 1.0))
        hours = _pick(rng, _PEAK_HOURS if cal.peak_hours[d] else _HOURS, n)
        sec = hours * 3600 + rng.integers(0, 3600, n)
        sec = np.where(sec < 300, sec + 300, sec)  # room for the session's earlier events on the same day
        by_time = np.argsort(sec, kind="stable")
        cust, guest, region, chan, n_lines, sec = (
            a[by_time] for a in (cust, guest, region, chan, n_lines, sec)
        )

        # Candidate lines.
        L = int(n_lines.sum())
        l_ord = np.repeat(np.arange(n), n_lines)
        weights = self._sku_weights(d, rng)
        l_sku = _pick(rng, weights, L)
        qty = 1 + rng.poisson(self.p_qty[l_sku] * (1.3 if disc > 0 else 1.0))
        coupon = np.where(rng.random(n) < 0.06, rng.uniform(0.05, 0.15, n), 0.0)
        rate = np.maximum(disc * self.p_promo[l_sku], coupon[l_ord])

        # Stock: morning arrivals, then first come first served per SKU x warehouse; the rest is lost.
        arrived = self.arrival == d
        self.on_hand[arrived] += self.on_order[arrived]
        self.on_order[arrived] = 0
        self.arrival[arrived] = -1
        key = l_sku * self.n_wh + self.region_wh[region[l_ord]]
        srt = np.lexsort((np.arange(L), key))
        within = np.zeros(L, dtype=np.int64)
        if L:
            ks, qs = key[srt], qty[srt]
            cs = np.cumsum(qs)
            start = np.r_[True, ks[1:] != ks[:-1]]
            before = np.maximum.accumulate(np.where(start, cs - qs, 0))
            within[srt] = cs - before
        ful = within <= self.on_hand[key]
        alive = np.bincount(l_ord, weights=ful, minlength=n) > 0
        cancelled = alive & (rng.random(n) < cal.cancel_p[d])
        consume = ful & ~cancelled[l_ord]
        self.on_hand -= np.bincount(key[consume], weights=qty[consume], minlength=self.on_hand.size).astype(
            np.int64
        )
        self.stats.candidate_lines += L
        self.stats.lost_lines += int(L - ful.sum())

        # Naive reorder policy at the end of the day.
        irng = self.rng_inv
        need = (self.on_hand < self.level) & (self.on_order == 0)
        if need.any():
            idx = np.flatnonzero(need)
            lead = np.repeat(self.p_lead, self.n_wh)[idx]
            eta = d + np.maximum(1, np.round(lead * irng.uniform(0.8, 1.3, idx.size))).astype(np.int64)
            eta = np.minimum(eta, len(cal.dates) - 1)
            eta = eta + np.where(cal.supplier_closed[eta], 10, 0)  # factories closed over Spring Festival
            self.on_order[idx] = self.order_qty[idx]
            self.arrival[idx] = eta
        self.stats.stockout_rows += int((self.on_hand == 0).sum())
        inventory = self.inv_static.with_columns(
            pl.lit(day).alias("date"),
            pl.Series("on_hand", self.on_hand),
            pl.Series("on_order", self.on_order),
        ).select("date", "sku", "warehouse", "on_hand", "on_order")

        # Orders as landed (kept lines, renumbered), in time order.
        seq = np.cumsum(alive)
        order_ids = _ids(f"O{day:%Y%m%d}-", seq, 6)
        keep = np.flatnonzero(ful)
        k_ord = l_ord[keep]
        line_no = _group_rank(k_ord) + 1
        price = self.p_price[l_sku[keep]]
        discount = np.round(qty[keep] * price * rate[keep], 2)
        status = np.where(cancelled[k_ord], 1, 0)  # returns are set after delivery below

        # Shipments: one per order that was not cancelled.
        ship = np.flatnonzero(alive & ~cancelled)
        outcome = self._shipments(
            d, ship, l_ord, l_sku, qty, ful & ~cancelled[l_ord], region, sec, order_ids, end_s
        )
        # Returns (only once delivered inside the period).
        srng = self.rng_ship
        k_delivered = (outcome.delivered_s[k_ord] > 0) & ~cancelled[k_ord]
        ks = l_sku[keep]
        p_ret = (
            0.008
            + self.p_return[ks]
            + 0.22 * outcome.damaged[k_ord]
            + 0.05 * outcome.late[k_ord]
            + 0.06 * (self.p_quality[ks] < -0.5)
        )
        returned = k_delivered & (srng.random(keep.size) < p_ret)
        status = np.where(returned, 2, status)
        self._reviews(keep, k_ord, ks, returned, outcome, cust, order_ids, end_s)

        cust_ids = _take(self.c_ids_n, cust[k_ord])
        orders = pl.DataFrame(
            {
                "order_id": order_ids.gather(k_ord),
                "line_no": line_no,
                "customer_id": cust_ids,
                "sku": self.p_sku.gather(ks),
                "quantity": qty[keep],
                "unit_price": price,
                "currency": pl.Series([CURRENCY]).gather(np.zeros(keep.size, dtype=np.int64)),
                "discount": discount,
                "order_ts": _ts(day0 + sec[k_ord]),
                "channel": pl.Series(ORDER_CHANNELS).gather(chan[k_ord]),
                "region": self.region_names.gather(region[k_ord]),
                "status": pl.Series(ORDER_STATUSES).gather(status),
            },
            schema_overrides={
                "line_no": pl.Int64,
                "quantity": pl.Int64,
                "unit_price": pl.Float64,
                "discount": pl.Float64,
            },
        )

        traffic = self._traffic(
            d, n, chan, cust, guest, sec, alive, l_ord, l_sku, ful, order_ids, weights, hi, day0
        )
        competitor = self._competitor_prices(d, day)
        shipments = self._flush(d, "shipments", ["shipped_ts", "shipment_id"])
        reviews = self._flush(d, "reviews", ["created_ts", "review_id"])
        return _DayFrames(orders, inventory, traffic, competitor, shipments, reviews)

    def _text_index(self, score: np.ndarray, theme: np.ndarray, variant: np.ndarray) -> np.ndarray:
        """Flat index into self.texts for (score, theme, variant)."""
        return np.ravel_multi_index((score, theme, variant), self.text_shape)

    def _stash(self, table: str, frame: pl.DataFrame, days: np.ndarray) -> None:
        """Keep rows dated later than today (shipments, reviews) until the day their file is written."""
        order = np.argsort(days, kind="stable")
        days = days[order]
        frame = frame[order]
        cuts = np.flatnonzero(np.r_[True, days[1:] != days[:-1], True])
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):  # one slice per future day (a few)
            self.pending[table].setdefault(int(days[lo]), []).append(frame.slice(int(lo), int(hi - lo)))

    def _flush(self, d: int, table: str, order: list[str]) -> pl.DataFrame:
        """Today's rows of a table whose rows were created on this or earlier days."""
        parts = self.pending[table].pop(d, [])
        return pl.concat(parts).sort(order) if parts else _empty(table)

    def _shipments(
        self,
        d: int,
        ship: np.ndarray,
        l_ord: np.ndarray,
        l_sku: np.ndarray,
        qty: np.ndarray,
        shipped_line: np.ndarray,
        region: np.ndarray,
        sec: np.ndarray,
        order_ids: pl.Series,
        end_s: int,
    ) -> _Outcome:
        """Buffer the shipments of today's orders by ship day; per-order delivered/late/damaged flags."""
        cal, rng = self.cal, self.rng_ship
        n = region.size
        out = _Outcome(
            np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), np.zeros(n)
        )
        m = ship.size
        if m == 0:
            return out
        kg = np.bincount(
            l_ord[shipped_line], weights=(self.p_weight[l_sku] * qty)[shipped_line], minlength=n
        )[ship]
        hard = np.bincount(l_ord[shipped_line], weights=(~self.p_soft[l_sku])[shipped_line], minlength=n)[
            ship
        ]
        fragile = (
            np.bincount(l_ord[shipped_line], weights=self.p_fragile[l_sku][shipped_line], minlength=n)[ship]
            > 0
        )
        reg = region[ship]
        wh = self.region_wh[reg]
        dist = np.round(self.dist_wr[wh, reg] + rng.uniform(10, 180, m), 1)
        carrier = (rng.random(m)[:, None] > self.carrier_cdf[reg]).sum(axis=1)
        carrier = np.minimum(carrier, len(CARRIERS) - 1)
        speed = np.array([c[2] for c in CARRIERS])[carrier]
        unrel = np.array([c[3] for c in CARRIERS])[carrier]
        u = rng.random(m)
        sea = (reg == self.hainan) & (u < 0.6)
        air_p = np.where(dist > 1200, np.array([c[6] for c in CARRIERS])[carrier], 0.0)
        air = ~sea & (u < air_p)
        rail = ~sea & ~air & (dist > 1000) & (u < air_p + 0.2)
        mode = np.select([rail, sea, air], [1, 2, 3], 0)  # SHIPMENT_MODES order: road, rail, sea, air
        base = (
            np.select(
                [rail, sea, air], [1.0 + dist / 850, 1.6 + dist / 650, 0.7 + dist / 5000], 0.5 + dist / 700
            )
            * speed
        )
        # Leaves the warehouse: same evening if ordered before 16:00, else next day; backlogs on peak days;
        # nothing ships while the warehouse is closed for Spring Festival.
        o_sec = sec[ship]
        same_day = o_sec < 16 * 3600
        ship_day = d + (~same_day) + rng.poisson(cal.backlog[d], m)
        ship_day = cal.next_open[np.minimum(ship_day, len(cal.dates) - 1)]
        morning = rng.integers(9 * 3600, 10 * 3600, m)  # first pick wave
        ship_sec = np.where(
            ship_day == d,
            np.clip(o_sec + rng.integers(3600, 4 * 3600, m), morning, 23 * 3600),
            rng.integers(9 * 3600, 19 * 3600, m),
        )
        promised_days = np.ceil(base).astype(np.int64) + 1
        week = np.minimum(ship_day // 7, self.cluster_delay.shape[1] - 1)
        storm = (
            self.is_storm_region[reg] & (ship_day >= cal.storm_start - 2) & (ship_day < cal.storm_start + 7)
        )
        winter = self.is_cold_region[reg] & np.isin(cal.month[ship_day], (12, 1, 2)) & (rng.random(m) < 0.35)
        exception = rng.random(m) < 0.04 * unrel
        actual = (
            base * rng.lognormal(0.0, 0.3, m)
            + self.cluster_delay[reg, week] * unrel
            + np.where(exception, rng.uniform(1.5, 4.5, m), 0.0)
            + np.where(storm, rng.uniform(2.0, 5.0, m), 0.0)
            + cal.surge[ship_day] * rng.uniform(0.5, 1.5, m)
            + np.where(winter, 0.6, 0.0)
        )
        deliver_day = ship_day + np.maximum(1, np.floor(ship_sec / 86_400 + actual)).astype(np.int64)
        shipped_s = _epoch_s(cal.dates[0]) + ship_day * 86_400 + ship_sec
        promised_s = _epoch_s(cal.dates[0]) + (ship_day + promised_days) * 86_400 + 21 * 3600
        delivered_s = _epoch_s(cal.dates[0]) + deliver_day * 86_400 + rng.integers(9 * 3600, 21 * 3600, m)
        late = delivered_s > promised_s
        days_late = np.maximum(0, deliver_day - (ship_day + promised_days))
        # Poly mailer for soft goods and for small parcels without anything fragile; else a carton.
        film = ((hard == 0) & (kg <= 2.0)) | (~fragile & (kg <= 1.0))
        pack_kg = np.round(np.where(film, 0.02 + 0.008 * kg, 0.10 + 0.09 * kg ** (2 / 3)), 3)
        damaged = rng.random(m) < (
            0.008 + 0.02 * fragile + 0.015 * (film & (kg > 1)) + 0.01 * (dist > 1500) + 0.03 * storm
        )
        c_base = np.array([c[4] for c in CARRIERS])[carrier]
        c_kg = np.array([c[5] for c in CARRIERS])[carrier]
        cost = np.round(
            c_base
            + c_kg * np.maximum(0.0, kg + pack_kg - 1.0) * (1 + dist / 1500)
            + np.where(air, 8 + 3 * kg, 0.0)
            + np.where(sea, 6.0, 0.0)
            + np.where(rail, 2.0, 0.0),
            2,
        )
        in_period = delivered_s < end_s
        out.delivered_s[ship] = np.where(in_period, delivered_s, 0)
        out.late[ship] = late & in_period
        out.damaged[ship] = damaged & in_period
        out.days_late[ship] = np.where(in_period, days_late, 0)
        written = shipped_s < end_s
        self.stats.not_yet_shipped += int((~written).sum())
        if not written.any():
            return out
        oid = order_ids.gather(ship)
        frame = pl.DataFrame(
            {
                "shipment_id": pl.select(pl.lit("SH") + oid.str.slice(1)).to_series(),
                "order_id": oid,
                "carrier": self.carrier_names.gather(carrier),
                "mode": pl.Series(SHIPMENT_MODES).gather(mode),
                "origin": self.wh_names.gather(wh),
                "destination_region": self.region_names.gather(reg),
                "distance_km": dist,
                "weight_kg": np.round(np.maximum(kg, 0.01), 3),
                "packaging": pl.Series(["corrugated_board", "ldpe_film"]).gather(film.astype(np.int64)),
                "packaging_kg": pack_kg,
                "shipped_ts": _ts(shipped_s),
                "promised_ts": _ts(promised_s),
                "delivered_ts": _ts(delivered_s),
                "cost": cost,
            }
        ).with_columns(pl.when(pl.Series(in_period)).then(pl.col("delivered_ts")).alias("delivered_ts"))
        w = np.flatnonzero(written)
        self._stash("shipments", frame if w.size == m else frame[w], ship_day[w])
        return out

    def _reviews(
        self,
        keep: np.ndarray,
        k_ord: np.ndarray,
        k_sku: np.ndarray,
        returned: np.ndarray,
        outcome: _Outcome,
        cust: np.ndarray,
        order_ids: pl.Series,
        end_s: int,
    ) -> None:
        """Star reviews (one line per order) and 0-10 surveys of delivered orders, buffered by creation day."""
        rng, cal = self.rng_rev, self.cal
        delivered_at = outcome.delivered_s
        orders = np.flatnonzero(delivered_at > 0)
        if orders.size == 0 or keep.size == 0:
            return
        # Kept lines are grouped by order: first kept line and count per order -> a random line to review.
        first_line = np.searchsorted(k_ord, orders, side="left")
        count = np.searchsorted(k_ord, orders, side="right") - first_line
        pick = first_line + np.minimum((rng.random(orders.size) * count).astype(np.int64), count - 1)
        sku = k_sku[pick]
        ret = returned[pick]
        late, damaged, dl = outcome.late[orders], outcome.damaged[orders], outcome.days_late[orders]
        penalty = (
            np.where(late, 1.0 + 0.3 * np.minimum(dl, 4), 0.0)
            + 1.8 * damaged
            + 1.3 * ret
            - self.p_quality[sku]
        )
        unhappy = late | damaged | ret
        # Theme of a low score: the worst thing that happened to the order.
        theme = np.select(
            [damaged, late, ret & self.p_wrong_size[sku], ret | (self.p_quality[sku] < -0.5)],
            [2, 1, 4, 3],
            np.where(rng.random(orders.size) < 0.6, 3, 5),
        )
        line_no = _group_rank(k_ord)[pick] + 1
        cust_o = cust[orders]
        day0 = _epoch_s(cal.dates[0])
        delivered_s = delivered_at[orders]
        for kind in ("stars_1_5", "nps_0_10"):
            if kind == "stars_1_5":
                take = rng.random(orders.size) < (0.32 + 0.18 * unhappy)
                mood = rng.normal(0, 1, orders.size) - penalty
                score = 1 + (mood[:, None] > np.array([-1.85, -1.5, -1.1, -0.45])[None, :]).sum(axis=1)
                created = delivered_s + 1800 + (rng.exponential(1.8, orders.size) * 86_400).astype(np.int64)
                variant = rng.integers(0, self.text_variants, orders.size)
                text = self._text_index(score, np.where(score <= 3, theme, 0), variant)
                text = np.where(rng.random(orders.size) < np.where(score >= 4, 0.3, 0.1), -1, text)
                rid_suffix = pl.Series(line_no).cast(pl.String)
            else:
                take = rng.random(orders.size) < 0.08
                mood = rng.normal(0, 1, orders.size) - penalty
                score = np.clip(np.round(8.4 + 1.6 * mood), 0, 10).astype(np.int64)
                created = delivered_s + rng.integers(86_400, 3 * 86_400, orders.size)
                variant = rng.integers(0, self.text_variants, orders.size)
                low_text = self._text_index(np.clip(score // 2, 1, 3), theme, variant)
                text = np.where((score <= 6) & (rng.random(orders.size) < 0.5), low_text, -1)
                rid_suffix = pl.Series(["S"]).gather(np.zeros(orders.size, dtype=np.int64))
            ok = take & (created < end_s) & (delivered_s > 0)
            self.stats.reviews_after_end += int((take & (created >= end_s)).sum())
            sel = np.flatnonzero(ok)
            if sel.size == 0:
                continue
            oid = order_ids.gather(orders[sel])
            frame = pl.DataFrame(
                {
                    "review_id": pl.select(
                        pl.lit("RV") + oid.str.slice(1) + "-" + rid_suffix.gather(sel)
                    ).to_series(),
                    "order_id": oid,
                    "customer_id": _take(self.c_ids_n, cust_o[sel]),
                    "sku": _take(self.p_sku_n, np.where(kind == "stars_1_5", sku[sel], -1)),
                    "score": score[sel],
                    "scale": pl.Series([kind]).gather(np.zeros(sel.size, dtype=np.int64)),
                    "text": _take(self.texts, text[sel]),
                    "created_ts": _ts(created[sel]),
                }
            )
            self._stash("reviews", frame, (created[sel] - day0) // 86_400)

    def _traffic(
        self,
        d: int,
        n: int,
        chan: np.ndarray,
        cust: np.ndarray,
        guest: np.ndarray,
        sec: np.ndarray,
        alive: np.ndarray,
        l_ord: np.ndarray,
        l_sku: np.ndarray,
        ful: np.ndarray,
        order_ids: pl.Series,
        weights: np.ndarray,
        known_customers: int,
        day0: int,
    ) -> pl.DataFrame:
        """Sessions: one per web/app order (view -> cart -> checkout -> purchase) plus sessions that do not buy."""
        rng = self.rng_traffic
        web = np.flatnonzero(chan != 2)  # marketplace orders do not come through our site
        # Device and marketing channel of ordering sessions (channels that convert better are over-represented).
        app = chan[web] == 0
        dev = np.where(
            app,
            np.where(rng.random(web.size) < 0.88, 1, 2),
            _pick(rng, np.array([0.55, 0.35, 0.10]), web.size),
        )
        tch = np.zeros(web.size, dtype=np.int64)
        for dv in range(3):  # 3 devices
            m = dev == dv
            tch[m] = _pick(rng, TRAFFIC_SHARES * TRAFFIC_CONVERSION * DEVICE_CONVERSION[dv], int(m.sum()))
        # Sessions that buy nothing, per (channel, device): purchases x (1 - q) / q.
        q = TRAFFIC_CONVERSION[:, None] * DEVICE_CONVERSION[None, :]
        bought = np.zeros((len(TRAFFIC_CHANNELS), 3))
        np.add.at(bought, (tch, dev), 1.0)
        n_browse = rng.poisson(bought * (1 - q) / q)
        b_ch = np.repeat(np.repeat(np.arange(len(TRAFFIC_CHANNELS)), 3), n_browse.ravel())
        b_dev = np.repeat(np.tile(np.arange(3), len(TRAFFIC_CHANNELS)), n_browse.ravel())
        nb = b_ch.size

        # Events of ordering sessions: view (+ cart when in stock) per line, checkout and purchase if placed.
        is_web = np.zeros(n, dtype=bool)
        is_web[web] = True
        sess_of_order = np.full(n, -1, dtype=np.int64)
        sess_of_order[web] = np.arange(web.size)
        lines = np.flatnonzero(is_web[l_ord])
        lo_ = l_ord[lines]
        n_l = np.bincount(l_ord, minlength=n)
        pos_line = _group_rank(l_ord)[lines]
        slots = 2 * n_l[web] + 2
        step = np.maximum(1, np.minimum(rng.integers(20, 90, web.size), (sec[web] - 1) // slots))
        o_step = np.zeros(n, dtype=np.int64)
        o_step[web] = step
        o_last = 2 * n_l + 1  # position of the purchase event

        def at(orders: np.ndarray, pos: np.ndarray) -> np.ndarray:
            return sec[orders] - (o_last[orders] - pos) * o_step[orders]

        cart_lines = lines[ful[lines]]
        placed = web[alive[web]]
        e_sess = [
            sess_of_order[lo_],
            sess_of_order[l_ord[cart_lines]],
            sess_of_order[placed],
            sess_of_order[placed],
        ]
        e_pos = [2 * pos_line, 2 * _group_rank(l_ord)[cart_lines] + 1, 2 * n_l[placed], 2 * n_l[placed] + 1]
        e_ts = [
            at(lo_, e_pos[0]),
            at(l_ord[cart_lines], e_pos[1]),
            at(placed, e_pos[2]),
            at(placed, e_pos[3]),
        ]
        e_ev = [
            np.zeros(lines.size, dtype=np.int64),
            np.ones(cart_lines.size, dtype=np.int64),
            np.full(placed.size, 2),
            np.full(placed.size, 3),
        ]
        e_sku = [l_sku[lines], l_sku[cart_lines], np.full(placed.size, -1), np.full(placed.size, -1)]
        e_ord = [np.full(lines.size, -1), np.full(cart_lines.size, -1), np.full(placed.size, -1), placed]

        # Events of browsing sessions.
        b_start = np.minimum(_pick(rng, _HOURS, nb) * 3600 + rng.integers(0, 3600, nb), 86_400 - 1800)
        b_step = rng.integers(15, 120, nb)
        views = 1 + rng.poisson(0.5, nb)
        carts = rng.random(nb) < 0.28
        checkouts = carts & (rng.random(nb) < 0.3)
        v_sess = np.repeat(np.arange(nb), views)
        v_pos = _group_rank(v_sess)
        v_sku = _pick(rng, weights, v_sess.size)
        last_view = np.cumsum(views) - 1
        c_sess = np.flatnonzero(carts)
        k_sess = np.flatnonzero(checkouts)
        off = web.size
        e_sess += [off + v_sess, off + c_sess, off + k_sess]
        e_pos += [v_pos, views[c_sess], views[k_sess] + 1]
        e_ts += [
            b_start[v_sess] + v_pos * b_step[v_sess],
            b_start[c_sess] + views[c_sess] * b_step[c_sess],
            b_start[k_sess] + (views[k_sess] + 1) * b_step[k_sess],
        ]
        e_ev += [
            np.zeros(v_sess.size, dtype=np.int64),
            np.ones(c_sess.size, dtype=np.int64),
            np.full(k_sess.size, 2),
        ]
        e_sku += [v_sku, v_sku[last_view[c_sess]], np.full(k_sess.size, -1)]
        e_ord += [np.full(v_sess.size, -1), np.full(c_sess.size, -1), np.full(k_sess.size, -1)]

        # Session attributes, ids in order of the session's first event.
        logged_in = rng.random(nb) < 0.35
        b_cust = np.where(logged_in & (known_customers > 0), rng.integers(0, max(known_customers, 1), nb), -1)
        s_cust = np.concatenate([np.where(guest[web], -1, cust[web]), b_cust])
        s_ch = np.concatenate([tch, b_ch])
        s_dev = np.concatenate([dev, b_dev])
        s_start = np.concatenate([at(web, np.zeros(web.size, dtype=np.int64)), b_start])
        s_rank = np.empty(s_start.size, dtype=np.int64)
        s_rank[np.argsort(s_start, kind="stable")] = np.arange(s_start.size)
        sess = np.concatenate(e_sess)
        ts = np.concatenate(e_ts)
        pos = np.concatenate(e_pos)
        ev_order = np.lexsort((pos, s_rank[sess], ts)) if sess.size else np.zeros(0, dtype=np.int64)
        sess, ts = sess[ev_order], ts[ev_order]
        ev = np.concatenate(e_ev)[ev_order]
        sku = np.concatenate(e_sku)[ev_order]
        ordi = np.concatenate(e_ord)[ev_order]
        ids = _ids(f"S{self.cal.dates[d]:%Y%m%d}-", s_rank + 1, 7)
        cust_s = s_cust[sess]
        return pl.DataFrame(
            {
                "session_id": ids.gather(sess),
                "event_ts": _ts(day0 + ts),
                "customer_id": _take(self.c_ids_n, cust_s),
                "channel": pl.Series(TRAFFIC_CHANNELS).gather(s_ch[sess]),
                "device": pl.Series(DEVICES).gather(s_dev[sess]),
                "event": pl.Series(TRAFFIC_EVENTS).gather(ev),
                "sku": _take(self.p_sku_n, sku),
                "order_id": _take(_nullable(order_ids), ordi),
            }
        )

    def _competitor_prices(self, d: int, day: date) -> pl.DataFrame:
        rng, cal = self.rng_comp, self.cal
        k, n = self.comp_state.shape
        self.comp_state = 0.98 * self.comp_state + rng.normal(0, 0.012, (k, n))
        seen = self.comp_carry & (rng.random((k, n)) < 0.55)
        cut = 1.0 - 0.8 * cal.discount[d] * self.comp_follow
        price = np.round(self.p_price[None, :] * self.comp_level * np.exp(self.comp_state) * cut, 2)
        ci, si = np.nonzero(seen)
        return pl.DataFrame(
            {
                "date": pl.Series([day]).gather(np.zeros(ci.size, dtype=np.int64)),
                "sku": self.p_sku.gather(si),
                "competitor": self.comp_names.gather(ci),
                "price": np.maximum(price[ci, si], 0.5),
            }
        )


def _empty(table: str) -> pl.DataFrame:
    types = {
        "VARCHAR": pl.String,
        "INTEGER": pl.Int64,
        "DOUBLE": pl.Float64,
        "TIMESTAMP": pl.Datetime("ms"),
        "DATE": pl.Date,
    }
    return pl.DataFrame(schema={c: types.get(t, pl.Float64) for c, t in TABLES[table].columns.items()})


# ---------------------------------------------------------------------------------------------------------
# Bad rows (landed on purpose: ingestion must quarantine them)


def _inject_bad_rows(
    orders: pl.DataFrame, rng: np.random.Generator, forced: set[str]
) -> tuple[pl.DataFrame, list[int], Counter]:
    """Corrupt a few order lines, one rule each; returns the frame, rows to truncate and counts per rule.

    malformed_line rows are truncated when the CSV text is written (see `_write_orders`); duplicate_key rows
    are exact copies placed right after their original.
    """
    counts: Counter = Counter()
    n = orders.height
    if n == 0:
        return orders, [], counts
    want = {rule: int(rng.binomial(n, BAD_ROW_RATE)) + (1 if rule in forced else 0) for rule in BAD_ROW_RULES}
    total = min(sum(want.values()), n)
    if total == 0:
        return orders, [], counts
    rows = rng.choice(n, size=total, replace=False)
    marks = np.full(n, -1, dtype=np.int64)
    at = 0
    for k, rule in enumerate(BAD_ROW_RULES):
        take = rows[at : at + want[rule]]
        marks[take] = k
        counts[rule] += take.size
        at += take.size
    ts = pl.col("order_ts")
    frame = orders.with_row_index("_i").with_columns(
        _take(_nullable(pl.Series(BAD_ROW_RULES)), marks).alias("_bad")
    )
    bad = pl.col("_bad")
    frame = frame.with_columns(
        pl.when(bad == "price_positive")
        .then(-pl.col("unit_price"))
        .otherwise(pl.col("unit_price"))
        .alias("unit_price"),
        pl.when(bad == "price_positive").then(0.0).otherwise(pl.col("discount")).alias("discount"),
        pl.when(bad == "unknown_sku").then(pl.lit("SKU-UNLISTED")).otherwise(pl.col("sku")).alias("sku"),
        pl.when(bad == "future_timestamp")
        .then(
            pl.datetime(
                2099,
                ts.dt.month(),
                pl.min_horizontal(ts.dt.day(), 28),
                ts.dt.hour(),
                ts.dt.minute(),
                ts.dt.second(),
            ).cast(orders.schema["order_ts"])
        )
        .otherwise(ts)
        .alias("order_ts"),
    )
    frame = pl.concat([frame, frame.filter(bad == "duplicate_key")]).sort("_i", maintain_order=True)
    malformed = np.flatnonzero((frame["_bad"] == "malformed_line").fill_null(False).to_numpy()).tolist()
    return frame.drop("_i", "_bad"), malformed, counts


def _write_orders(frame: pl.DataFrame, path: Path, malformed: list[int]) -> None:
    """Write the day's orders; rows in `malformed` are cut after their 6th field (a truncated line)."""
    if not malformed:
        write_csv_atomic(frame, path)
        return
    lines = frame.write_csv(None, **CSV_FORMATS).split("\n")
    for row in malformed:
        lines[row + 1] = ",".join(lines[row + 1].split(",")[:6])
    atomic_write_bytes(path, "\n".join(lines).encode("utf-8"))


# ---------------------------------------------------------------------------------------------------------
# Generate


def _clear_landing(landing: Path) -> None:
    """Remove an earlier landing (canonical table folders, side folders, manifest) so no stale day survives.

    The same as registry.clear_landing; kept here so the default source does not import the adapter plumbing.
    """
    for name in [*TABLES, ADAPTER_QUARANTINE_DIR, ROUTED_OUT_DIR]:
        if (landing / name).is_dir():
            shutil.rmtree(landing / name)
    (landing / MANIFEST_NAME).unlink(missing_ok=True)


_MANIFEST_CORE = {
    "source",
    "currency",
    "timezone",
    "input",
    "tables",
    "missing_tables",
    "first_date",
    "last_date",
    "rows_in",
    "rows_landed",
    "quarantined",
    "routed_out",
    "notes",
}


def _report_from_manifest(m: dict[str, Any]) -> LandingReport:
    report = LandingReport(
        source=m["source"],
        currency=m["currency"],
        timezone=m.get("timezone", TIMEZONE),
        input=m.get("input", ""),
        tables=list(m.get("tables", [])),
        first_date=m.get("first_date"),
        last_date=m.get("last_date"),
        notes=list(m.get("notes", [])),
    )
    report.rows_in.update(m.get("rows_in", {}))
    report.rows_landed.update(m.get("rows_landed", {}))
    for table, c in m.get("quarantined", {}).items():
        report.quarantined[table].update(c)
    for table, c in m.get("routed_out", {}).items():
        report.routed_out[table].update(c)
    report.extra = {k: v for k, v in m.items() if k not in _MANIFEST_CORE}
    return report


def generate(
    landing_dir: Path,
    scale: str | Scale = "small",
    seed: int = 42,
    bad_rows: bool = True,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
    compress: bool = False,
) -> LandingReport:
    """Write the synthetic shop's 8 canonical tables and `_source.json` into `landing_dir`.

    Same seed and scale give byte-identical files. A folder that already holds this exact shop (same seed,
    scale, bad_rows, compression and generator version in its manifest) is left as it is unless `force`.
    `compress` writes `.csv.gz` files (about a fifth of the disk; the large shop needs it on a 60 GB disk).
    """
    landing = Path(landing_dir)
    name, sc = resolve_scale(scale)
    identity = {
        "seed": seed,
        "scale": name,
        "scale_params": sc.to_json(),
        "bad_rows": bad_rows,
        "generator_version": GENERATOR_VERSION,
    }
    if compress:  # only when set, so folders written before the option existed still match
        identity["landing_compression"] = "gzip"
    if not force:
        existing = read_manifest(landing)
        if (
            existing
            and existing.get("source") == SOURCE_NAME
            and all(existing.get(k) == v for k, v in identity.items())
            and existing.get("landing_compression") == identity.get("landing_compression")
            and snapshot_file(landing, "products", compress).exists()
            and daily_file(landing, "orders", date.fromisoformat(existing["last_date"]), compressed=compress).exists()
        ):
            if progress:
                progress(
                    f"{landing} already holds the synthetic shop (scale {name}, seed {seed}); not regenerated"
                )
            return _report_from_manifest(existing)
    started = time.perf_counter()
    if progress and sc.end_date >= date.today():
        progress(
            f"note: the shop runs to {sc.end_date}, today or later: ingestion quarantines rows after today "
            "as future_timestamp (choose a Scale with an earlier start_date)"
        )
    _clear_landing(landing)
    landing.mkdir(parents=True, exist_ok=True)
    shop = _Shop(sc, seed)
    report = LandingReport(
        source=SOURCE_NAME,
        currency=CURRENCY,
        timezone=TIMEZONE,
        input=f"embedded synthetic shop (scale {name}, seed {seed})",
    )
    report.tables = list(TABLES)
    for table, frame in (("products", shop.products), ("customers", shop.customers)):
        write_csv_atomic(frame, snapshot_file(landing, table, compress))
        report.rows_in[table] += frame.height
        report.rows_landed[table] += frame.height
    injected: Counter = Counter()
    forced_day = {
        rule: min(sc.days - 1, (k + 1) * sc.days // (len(BAD_ROW_RULES) + 1))
        for k, rule in enumerate(BAD_ROW_RULES)
    }
    tick = max(1, sc.days // 10)
    for d in range(sc.days):
        day = shop.cal.dates[d]
        frames = shop.day(d)
        orders, malformed = frames.orders, []
        if bad_rows:
            forced = {r for r, fd in forced_day.items() if d >= fd and injected[r] == 0}
            orders, malformed, counts = _inject_bad_rows(orders, shop.rng_bad, forced)
            injected.update(counts)
        _write_orders(orders, daily_file(landing, "orders", day, compressed=compress), malformed)
        for table, frame in (
            ("orders", orders),
            ("inventory", frames.inventory),
            ("traffic", frames.traffic),
            ("competitor_prices", frames.competitor_prices),
            ("shipments", frames.shipments),
            ("reviews", frames.reviews),
        ):
            if table != "orders":
                write_csv_atomic(frame, daily_file(landing, table, day, compressed=compress))
            report.rows_in[table] += frame.height
            report.rows_landed[table] += frame.height
        if progress and ((d + 1) % tick == 0 or d + 1 == sc.days):
            progress(
                f"  day {d + 1}/{sc.days} ({(d + 1) / sc.days:4.0%}) {day}  "
                f"{report.rows_landed['orders']:,} order lines  {time.perf_counter() - started:.1f} s"
            )
    st = shop.stats
    report.first_date, report.last_date = sc.start_date.isoformat(), sc.end_date.isoformat()
    report.notes = [
        "bad order lines are landed on purpose (see injected_bad_rows); ingestion quarantines them",
        f"{st.not_yet_shipped} orders of the last days leave the warehouse after {report.last_date}: no shipment yet",
        "shipments delivered after the last day have an empty delivered_ts; reviews come after delivery",
    ]
    report.extra = {
        **identity,
        "injected_bad_rows": {"orders": dict(sorted(injected.items()))} if bad_rows else {},
        "events": shop.cal.events,
        "simulation": {
            "candidate_order_lines": st.candidate_lines,
            "lost_order_lines_stockout": st.lost_lines,
            "fill_rate": round(1 - st.lost_lines / max(st.candidate_lines, 1), 4),
            "inventory_rows_out_of_stock": st.stockout_rows,
            "orders_not_yet_shipped": st.not_yet_shipped,
        },
    }
    write_manifest(landing, report)
    return report


# ---------------------------------------------------------------------------------------------------------
# Realism report (from the landing files, as any reader would see them)

REALISM_AIMS: dict[str, tuple[float, float, str]] = {
    "one_order_customers_share": (0.30, 0.60, "Online Retail 34.7%"),
    "top10pct_customers_revenue_share": (0.40, 0.65, "Online Retail 61%"),
    "median_sku_zero_sale_days_share": (0.20, 0.80, "Online Retail 73%"),
    "cancelled_lines_share": (0.01, 0.05, "Online Retail 1.7%"),
    "five_star_share": (0.45, 0.65, "Olist 57%"),
    "one_star_share": (0.05, 0.15, "Olist 12%"),
    "late_deliveries_share": (0.05, 0.15, "Olist 6.6%"),
    "star_nps_gap_on_time_vs_late": (40.0, 200.0, "Olist +44 vs -57 (gap 101)"),
    "session_conversion": (0.01, 0.16, "Online Shoppers 15.5%"),
}


def _scan(landing: Path, table: str) -> pl.LazyFrame:
    """All landed files of a table as text columns (bad rows included; a short line pads with nulls)."""
    spec = TABLES[table]
    pattern = csv_file(landing / table, table) if not spec.is_daily else csv_files(landing / table, f"{table}_*")
    return pl.scan_csv(pattern, infer_schema=False, truncate_ragged_lines=True)


def _num(col: str, dtype: pl.DataType = pl.Float64) -> pl.Expr:
    return pl.col(col).cast(dtype, strict=False)


def _when_ts(col: str) -> pl.Expr:
    return pl.col(col).str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False)


def realism_report(landing_dir: Path) -> dict[str, dict[str, Any]]:
    """The statistics of ARCHITECTURE.md's realism table, computed from the landing files.

    Each entry: value, aim [lo, hi], in_range, what real shops show, and details. Bad rows (wrong price,
    unknown SKU, duplicates, future or unparseable timestamps) are left out first, as ingestion would.
    """
    landing = Path(landing_dir)
    manifest = read_manifest(landing) or {}
    skus = _scan(landing, "products").select("sku").collect()["sku"]
    orders = (
        _scan(landing, "orders")
        .with_columns(
            _num("quantity", pl.Int64).alias("qty"),
            _num("unit_price").alias("price"),
            _num("discount").alias("disc"),
            _when_ts("order_ts").alias("ts"),
        )
        .filter(
            (pl.col("price") > 0)
            & (pl.col("qty") > 0)
            & pl.col("sku").is_in(skus.implode())
            & pl.col("status").is_in(list(ORDER_STATUSES))
            & (pl.col("ts").dt.year() < 2090)
        )
        .unique(["order_id", "line_no"], keep="first", maintain_order=True)
        .collect()
    )
    first = (
        date.fromisoformat(manifest["first_date"])
        if manifest.get("first_date")
        else orders["ts"].min().date()
    )
    last = (
        date.fromisoformat(manifest["last_date"]) if manifest.get("last_date") else orders["ts"].max().date()
    )
    n_days = (last - first).days + 1
    placed = orders.filter(pl.col("status") != "cancelled")
    stats: dict[str, tuple[float, dict[str, Any]]] = {}

    per_customer = (
        placed.filter(pl.col("customer_id").is_not_null())
        .group_by("customer_id")
        .agg(pl.col("order_id").n_unique().alias("orders"))
    )
    stats["one_order_customers_share"] = (
        float((per_customer["orders"] == 1).mean()),
        {"customers_with_orders": per_customer.height},
    )
    revenue = (
        orders.filter((pl.col("status") == "completed") & pl.col("customer_id").is_not_null())
        .group_by("customer_id")
        .agg((pl.col("qty") * pl.col("price") - pl.col("disc")).sum().alias("rev"))
        .sort("rev", descending=True)
    )
    top = math.ceil(revenue.height * 0.1)
    stats["top10pct_customers_revenue_share"] = (
        float(revenue["rev"].head(top).sum() / revenue["rev"].sum()),
        {"customers": revenue.height},
    )
    daily = placed.group_by("sku", pl.col("ts").dt.date().alias("day")).agg(pl.col("qty").sum())
    per_sku = (
        pl.DataFrame({"sku": skus})
        .join(
            daily.group_by("sku").agg(
                pl.len().alias("sale_days"),
                pl.col("qty").mean().alias("mean"),
                pl.col("qty").std(ddof=0).alias("std"),
            ),
            on="sku",
            how="left",
        )
        .with_columns(pl.col("sale_days").fill_null(0))
    )
    adi = n_days / per_sku["sale_days"].cast(pl.Float64).replace(0, None)
    cv2 = (per_sku["std"] / per_sku["mean"]) ** 2
    classes = (
        pl.DataFrame({"adi": adi, "cv2": cv2})
        .drop_nulls()
        .select(
            smooth=((pl.col("adi") < 1.32) & (pl.col("cv2") < 0.49)).sum(),
            erratic=((pl.col("adi") < 1.32) & (pl.col("cv2") >= 0.49)).sum(),
            intermittent=((pl.col("adi") >= 1.32) & (pl.col("cv2") < 0.49)).sum(),
            lumpy=((pl.col("adi") >= 1.32) & (pl.col("cv2") >= 0.49)).sum(),
        )
        .row(0, named=True)
    )
    zero_share = 1.0 - per_sku["sale_days"] / n_days
    stats["median_sku_zero_sale_days_share"] = (
        float(zero_share.median()),
        {"demand_classes": classes, "days": n_days},
    )
    stats["cancelled_lines_share"] = (
        float((orders["status"] == "cancelled").mean()),
        {"lines": orders.height},
    )

    reviews = _scan(landing, "reviews").with_columns(_num("score", pl.Int64).alias("score")).collect()
    stars = reviews.filter(pl.col("scale") == "stars_1_5")
    mix = {int(s): float((stars["score"] == s).mean()) for s in range(1, 6)}
    stats["five_star_share"] = (
        mix[5],
        {"star_mix": {k: round(v, 3) for k, v in mix.items()}, "reviews": stars.height},
    )
    stats["one_star_share"] = (mix[1], {})
    ship = (
        _scan(landing, "shipments")
        .with_columns(
            _when_ts("promised_ts").alias("promised"),
            _when_ts("delivered_ts").alias("delivered"),
            _when_ts("shipped_ts").alias("shipped"),
        )
        .filter(pl.col("delivered").is_not_null())
        .select(
            "order_id",
            (pl.col("delivered") > pl.col("promised")).alias("late"),
            ((pl.col("delivered") - pl.col("shipped")).dt.total_hours() / 24).alias("days"),
        )
        .collect()
    )
    stats["late_deliveries_share"] = (
        float(ship["late"].mean()),
        {
            "delivered_shipments": ship.height,
            "median_delivery_days": round(float(ship["days"].median()), 1),
            "p90_delivery_days": round(float(ship["days"].quantile(0.9)), 1),
        },
    )
    nps = (
        stars.join(ship.select("order_id", "late"), on="order_id", how="inner")
        .group_by("late")
        .agg((100 * ((pl.col("score") == 5).mean() - (pl.col("score") <= 3).mean())).alias("nps"), pl.len())
    )
    by_late = {bool(r["late"]): float(r["nps"]) for r in nps.iter_rows(named=True)}
    gap = by_late.get(False, float("nan")) - by_late.get(True, float("nan"))
    stats["star_nps_gap_on_time_vs_late"] = (
        gap,
        {
            "nps_on_time": round(by_late.get(False, float("nan")), 1),
            "nps_late": round(by_late.get(True, float("nan")), 1),
        },
    )
    sessions = (
        _scan(landing, "traffic")
        .select(
            pl.col("session_id").n_unique().alias("all"),
            pl.col("session_id").filter(pl.col("event") == "purchase").n_unique().alias("bought"),
        )
        .collect()
        .row(0, named=True)
    )
    stats["session_conversion"] = (
        sessions["bought"] / max(sessions["all"], 1),
        {"sessions": sessions["all"]},
    )

    out: dict[str, dict[str, Any]] = {}
    for key, (value, detail) in stats.items():
        lo, hi, real = REALISM_AIMS[key]
        ok = lo <= value <= hi
        if key == "median_sku_zero_sale_days_share":
            ok = ok and classes["smooth"] > 0 and classes["intermittent"] + classes["lumpy"] > 0
        out[key] = {
            "value": round(value, 4),
            "aim": [lo, hi],
            "in_range": bool(ok),
            "real": real,
            "detail": detail,
        }
    return out


def format_realism_report(report: dict[str, dict[str, Any]]) -> str:
    """The realism report as a small text table (shares in %, the NPS gap in points)."""
    lines = [f"{'statistic':36} {'value':>8} {'aim':>13}  ok   real shops"]
    for key, r in report.items():
        pct = key != "star_nps_gap_on_time_vs_late"
        val = f"{r['value']:.1%}" if pct else f"{r['value']:.0f}"
        aim = f"{r['aim'][0]:.0%}-{r['aim'][1]:.0%}" if pct else f">= {r['aim'][0]:.0f}"
        lines.append(f"{key:36} {val:>8} {aim:>13}  {'yes' if r['in_range'] else 'NO ':3}  {r['real']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from pipelines.core.settings import get_settings

    parser = argparse.ArgumentParser(
        description="Generate the embedded synthetic shop into a landing folder."
    )
    parser.add_argument(
        "--landing", type=Path, default=None, help="landing folder (default: SHOPLENS_LANDING)"
    )
    parser.add_argument("--scale", default="small", choices=sorted(SCALES))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--force", action="store_true", help="regenerate even if the folder holds this shop")
    parser.add_argument("--no-bad-rows", action="store_true", help="do not inject bad order lines")
    parser.add_argument("--no-report", action="store_true", help="skip the realism report")
    parser.add_argument(
        "--compress", action="store_true", help="write gzip-compressed .csv.gz files (about a fifth of the disk)"
    )
    args = parser.parse_args(argv)
    landing = args.landing or get_settings().landing_dir
    started = time.perf_counter()
    print(f"synthetic shop: scale {args.scale} {SCALES[args.scale].to_json()}, seed {args.seed} -> {landing}")
    report = generate(
        landing,
        args.scale,
        args.seed,
        bad_rows=not args.no_bad_rows,
        force=args.force,
        progress=lambda msg: print(msg, flush=True),
        compress=args.compress,
    )
    print(f"done in {time.perf_counter() - started:.1f} s; {report.first_date} .. {report.last_date}")
    for table in TABLES:
        print(f"  {table:18} {report.rows_landed.get(table, 0):>12,} rows")
    print(f"  injected bad rows: {report.extra.get('injected_bad_rows')}")
    sim = report.extra.get("simulation", {})
    if sim:
        print(
            f"  fill rate {sim['fill_rate']:.1%} (order lines lost to stock-outs: {sim['lost_order_lines_stockout']:,})"
        )
    if not args.no_report:
        t = time.perf_counter()
        realism = realism_report(landing)
        print(f"realism ({time.perf_counter() - t:.1f} s):")
        print(format_realism_report(realism))
    return 0


if __name__ == "__main__":
    sys.exit(main())
