"""Daily SKU demand forecasts: one global gradient-boosting model across all SKUs, calibrated quantiles.

Input contract (the dbt mart `fct_sku_daily_demand`, zero-filled daily series, one row per SKU and day
from the SKU's first day on): sku, category, date, units (>= 0), avg_unit_price (may be null on days
without sales: forward-filled), discount_rate (0..1), on_hand_eod (nullable), stockout (nullable bool).
Calendar: date, event (e.g. spring_festival, 618, double_11, double_12), one row per event day; when it
has `days_from_event` (the dbt seed `holiday_calendar`: one row per day of an event window) the rows with
0 are the main days. The mart's `is_stockout` is accepted for `stockout`; since it means "ended the day
with no stock", such a day may show some sales: it is censored all the same (sales <= demand).

Method, and why:

- Direct multi-horizon, one model. Each training row is (SKU, target day d, horizon h): features are
  computed at the origin o = d - h (what was known then: rolling means/std over 7/28/91 days, same-weekday
  lags at multiples of 7 that are >= h, days since last sale, the SBA intermittent-demand estimate) and at
  the target day (day of week, month, day of year, price relative to the SKU's median, discount_rate,
  event flags and days to/since each event type, Prophet's category and total multipliers). One random
  h in 1..horizon per target day keeps the training set at one row per SKU-day while the model learns
  how information decays with the horizon; no recursion, so no error feedback.
- Scale-free target: y / s with s = the SKU's recent level at the origin, Poisson loss and sample weight
  s. That is exactly a Poisson model with offset log(s), so one model serves SKUs selling 0.05 and 50
  units a day, and its output is the conditional mean.
- Stock-outs censor demand: a day with stockout = true (its zero is not demand) is NaN in the panel. It
  is never a training target, is skipped by every rolling feature and by the SBA recursion, and is left
  out of the calibration and the backtest scores.
- Quantiles by split-conformal calibration: the model is fitted with the last `horizon` days held out,
  forecasts that window from its start, and the ratios actual / predicted mean are collected per bucket
  (intermittent vs smooth SKU x predicted-level bin x horizon week 1 vs later). A quantile is the mean
  times the bucket's empirical ratio quantile, so p50 is a median (what WAPE rewards) and the band has
  the width seen out of sample. With `interval_calibration="interval"` (default) the upper end is chosen
  so the P10-P90 band holds 80% of held-out actuals even where demand has an atom at zero (there p10 is 0,
  nothing falls below it, and the upper end absorbs the whole 20% miss: p90 is then nearer an 80% quantile);
  `"quantile"` keeps each quantile at its own level and over-covers on intermittent SKUs. That model then
  forecasts from the last day with features computed there (`refit=True` refits on all history first).
- Train once, forecast daily: `GlobalForecaster.trained()` is a `TrainedModel` (model, calibration, the
  Prophet aggregate curves up to `max_model_age_days` past the history) that `save_model` / `load_model`
  persist; `forecast_with(trained, demand, ...)` forecasts from the newest day of a later demand frame
  without fitting anything (new SKUs and categories included: the features are scale-free).
- Intermittent SKUs (zero share > 50% over the last 182 days): the SBA estimate is a feature, and the
  calibration window doubles as a check: the calibrated SBA forecast competes with the global model on
  those SKUs (mean pinball loss over the quantiles); the winner forecasts them (`model` column).
- Prophet only on aggregates (total and per category; yearly + weekly seasonality, the calendar's events
  as holidays with a window per event type). Its fitted curve gives the feature "expected category
  multiplier from the origin's last 28 days to the target day", which carries yearly seasonality and
  event shapes learned on smooth aggregates into SKUs too young or sparse to show them. Optional.
- Future covariates: price and discount for the forecast days come from `future` (planned promotions)
  when given, else the last known price and no discount.

Baselines: weekly seasonal naive and a 28-day moving average, with empirical quantiles (see their
docstrings).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

Progress = Callable[[str], None] | None

DEMAND_COLUMNS = ("sku", "category", "date", "units", "avg_unit_price", "discount_rate")
CALENDAR_COLUMNS = ("date", "event")
# Prophet holiday windows (days before, days after) per event type: the shopping effect spans several days.
EVENT_WINDOWS: dict[str, tuple[int, int]] = {
    "spring_festival": (-21, 7),
    "618": (-10, 1),
    "shopping_618": (-10, 1),  # the dbt seed's names
    "double_11": (-10, 4),
    "singles_day_1111": (-10, 4),
    "double_12": (-2, 1),
}
MODEL_GLOBAL = "global_hgb"
MODEL_GLOBAL_PROPHET = "global_hgb+prophet"
MODEL_SBA = "sba"
MODEL_SNAIVE = "seasonal_naive"
MODEL_MA = "moving_average_28"


def quantile_column(q: float) -> str:
    """Output column name of quantile q: 0.1 -> p10."""
    return f"p{round(q * 100):d}"


@dataclass(frozen=True)
class ForecastConfig:
    """Knobs of the global model; defaults tuned on the synthetic series (see models/bench.py)."""

    horizon: int = 28
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    use_prophet: bool = True
    # Serve the calibration model (False) or refit on all history after calibrating (True). Off by default:
    # on 500 synthetic SKUs x 2 folds the refit bought nothing (WAPE 0.658 with it, 0.653 without) at twice
    # the training time, and without it the band is calibrated on the very model that forecasts.
    refit: bool = False
    interval_calibration: str = "interval"  # or "quantile"
    intermittent_zero_share: float = 0.5
    # Random subsample per fit: cost grows with rows; on the same benchmark 250k rows and 31 leaves scored
    # within 0.01 WAPE of 500k rows and 63 leaves. A learning rate of 0.15 (120 rounds) blew up on Online
    # Retail's extreme days (WAPE 12 against 0.99 at 0.1 with 180 rounds): keep 0.1.
    max_train_rows: int = 250_000
    max_iter: int = 180
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 200
    l2_regularization: float = 1.0
    sba_alpha: float = 0.1
    min_origin_history: int = 14  # training rows need this many days of SKU history at the origin
    # A trained model may forecast from origins up to this many days after its last history day (weekly
    # retraining plus a week of slack); Prophet's aggregate curves are stored that far ahead.
    max_model_age_days: int = 14
    n_threads: int | None = (
        None  # OpenMP threads for the model (None: all cores); 1 is steadier on a busy machine
    )
    seed: int = 0


# ------------------------------------------------------------------------------------------------
# Panel: the demand frame as dense (SKU x day) matrices
# ------------------------------------------------------------------------------------------------


@dataclass
class Panel:
    """Dense SKU x day matrices over history plus `horizon` future days.

    y is NaN where demand is unknown: before launch, on stock-out days (censored) and in the future.
    """

    skus: np.ndarray
    categories: np.ndarray  # per SKU
    cat_codes: np.ndarray  # per SKU, int
    cat_names: np.ndarray
    dates: np.ndarray  # datetime64[D], history + future
    n_hist: int  # number of history days (last history index = n_hist - 1)
    y: np.ndarray  # float64 (n, n_hist + horizon)
    units: np.ndarray  # observed units, NaN before launch (for baselines that ignore censoring)
    price: np.ndarray  # forward-filled
    discount: np.ndarray
    launch: np.ndarray  # first day index per SKU

    @property
    def n(self) -> int:
        return len(self.skus)


def stockout_flag(frame: pl.DataFrame) -> pl.Expr:
    """The censoring flag: `stockout` (contract) or `is_stockout` (the dbt mart's name); null counts as false."""
    for name in ("stockout", "is_stockout"):
        if name in frame.columns:
            return pl.col(name).cast(pl.Boolean).fill_null(False)
    return pl.lit(False)


def _require(frame: pl.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name}: missing required column(s) {missing}; got {frame.columns}")


def _ffill(matrix: np.ndarray) -> np.ndarray:
    """Forward-fill NaN along days, then back-fill the leading NaN per row."""
    n, t = matrix.shape
    ok = ~np.isnan(matrix)
    idx = np.where(ok, np.arange(t)[None, :], 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    # Gather through flat positions: indexing with a (rows, days) pair of index arrays is several times
    # slower on a 20k SKU x 3 year matrix.
    idx += (np.arange(n) * t)[:, None]
    filled = np.take(matrix, idx)
    first = np.where(ok.any(axis=1), ok.argmax(axis=1), 0)
    lead = np.isnan(filled)
    rows = np.nonzero(lead)[0]
    filled[lead] = matrix[rows, first[rows]]
    return filled


def build_panel(
    demand: pl.DataFrame, horizon: int, future: pl.DataFrame | None = None, start: dt.date | None = None
) -> Panel:
    """Validate the demand frame and lay it out as dense matrices (see `Panel`).

    `start` makes the panel begin on that day even if no SKU of `demand` has a row that early: a subset
    of the SKUs (one category of a fan-out) then gets the same day numbering, hence the same features,
    as the whole shop.
    """
    _require(demand, DEMAND_COLUMNS, "forecast input `demand`")
    if demand.is_empty():
        raise ValueError("forecast input `demand`: no rows")
    bad = demand.filter(pl.col("units") < 0)
    if bad.height:
        row = bad.row(0, named=True)
        raise ValueError(
            f"forecast input `demand`: {bad.height} row(s) break rule units >= 0, "
            f"first sku={row['sku']} date={row['date']} units={row['units']}"
        )
    d0 = demand["date"].min()
    if start is not None and start < d0:
        d0 = start
    d1 = demand["date"].max()
    n_hist = (d1 - d0).days + 1
    total = n_hist + horizon
    # Work on runs of rows with the same SKU: the mart comes ordered by sku, date (one run per SKU), and
    # grouping and looking up 20k run keys instead of 22M row keys saves seconds on a large shop. Any
    # other row order gives the same panel, only with more and shorter runs.
    runs = demand.select(pl.col("sku").rle()).unnest("sku")
    run_len = runs["len"].to_numpy().astype(np.int64)
    run_end = np.cumsum(run_len) - 1
    sku_cat = (
        pl.DataFrame({"sku": runs["value"], "category": demand["category"].gather(run_end)})
        .group_by("sku")
        .agg(pl.col("category").last())
        .sort("sku")
    )
    skus = sku_cat["sku"].to_numpy()
    categories = sku_cat["category"].to_numpy()
    cat_names, cat_codes = np.unique(categories, return_inverse=True)
    n = len(skus)
    run_sku = runs["value"].replace_strict(skus, np.arange(n), return_dtype=pl.Int64).to_numpy()

    stockout = stockout_flag(demand)
    idx = demand.select(
        (pl.col("date") - pl.lit(d0)).dt.total_days().alias("t"),
        pl.col("units").cast(pl.Float64),
        stockout.alias("stockout"),
        pl.col("avg_unit_price").cast(pl.Float64),
        pl.col("discount_rate").cast(pl.Float64).fill_null(0.0),
    )
    t = idx["t"].to_numpy()
    # Flat position of each row's cell in the (n, total) matrices: scattering through it is faster than
    # through (row, day) index pairs.
    cell = np.repeat(run_sku * total, run_len) + t
    # Duplicate (sku, date) keys: a bincount over the matrix cells is ~20x faster than a group-by here.
    hits = np.bincount(cell, minlength=n * total)
    if hits.max(initial=0) > 1:
        cells = np.nonzero(hits > 1)[0]
        first = cells[0]
        raise ValueError(
            f"forecast input `demand`: {len(cells)} duplicate (sku, date) key(s), first sku={skus[first // total]} "
            f"date={d0 + _days(int(first % total))}: aggregate warehouses before forecasting"
        )
    units = np.full(n * total, np.nan)
    units[cell] = idx["units"].to_numpy()
    y = units.copy()
    y[cell[idx["stockout"].to_numpy()]] = np.nan
    price = np.full(n * total, np.nan)
    price[cell] = idx["avg_unit_price"].to_numpy(allow_copy=True).astype(float)
    discount = np.zeros(n * total)
    discount[cell] = idx["discount_rate"].to_numpy()
    units, y, price, discount = (m.reshape(n, total) for m in (units, y, price, discount))
    launch = np.full(n, n_hist)
    np.minimum.at(launch, run_sku, np.minimum.reduceat(t, run_end - run_len + 1))
    if future is not None and future.height:
        _require(future, ("sku", "date"), "forecast input `future`")
        fut = future.filter(
            pl.col("sku").is_in(skus.tolist()), pl.col("date") > d1, pl.col("date") <= d1 + _days(horizon)
        )
        fi = fut["sku"].replace_strict(skus, np.arange(n), return_dtype=pl.Int64).to_numpy()
        ft = (fut["date"] - d0).dt.total_days().to_numpy()
        if "avg_unit_price" in fut.columns:
            price[fi, ft] = fut["avg_unit_price"].cast(pl.Float64).to_numpy()
        if "discount_rate" in fut.columns:
            discount[fi, ft] = fut["discount_rate"].cast(pl.Float64).fill_null(0.0).to_numpy()
    price = _ffill(price)
    dates = np.datetime64(d0, "D") + np.arange(total)
    return Panel(skus, categories, cat_codes, cat_names, dates, n_hist, y, units, price, discount, launch)


def _days(k: int) -> dt.timedelta:
    return dt.timedelta(days=k)


# ------------------------------------------------------------------------------------------------
# Origin statistics (what is known at the end of each day), vectorised over SKUs
# ------------------------------------------------------------------------------------------------


def _prefix(values: np.ndarray) -> np.ndarray:
    """Running sums along days with a leading 0: column k holds the sum of the first k days, added in
    day order (so a window sum taken from it is the same number whichever days are asked for)."""
    out = np.empty((values.shape[0], values.shape[1] + 1))
    out[:, 0] = 0.0
    np.cumsum(values, axis=1, out=out[:, 1:])
    return out


def _window(prefix: np.ndarray, w: int, days: np.ndarray | None = None) -> np.ndarray:
    """Sums over the `w` days ending at each of `days` (inclusive; None: every day) from `_prefix` sums."""
    if days is not None:
        hi = days + 1
        return prefix[:, hi] - prefix[:, np.maximum(hi - w, 0)]
    # Every day: two slices, where indexing with day arrays cost ~1 s per window at 20k SKUs x 3 years.
    t = prefix.shape[1] - 1
    k = min(w, t)
    out = np.empty((prefix.shape[0], t))
    np.subtract(prefix[:, 1 : k + 1], prefix[:, :1], out=out[:, :k])
    if k < t:
        np.subtract(prefix[:, k + 1 :], prefix[:, 1 : t - w + 1], out=out[:, k:])
    return out


def _rolling(values: np.ndarray, counts: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Windowed sums of values and counts ending at each day (inclusive), via cumulative sums."""
    return _window(_prefix(values), w), _window(_prefix(counts), w)


def sba_path(y: np.ndarray, alpha: float = 0.1, days: np.ndarray | None = None) -> np.ndarray:
    """Syntetos-Boylan approximation of Croston's method after each day, for all SKUs at once.

    Hand-written because the libraries that offer Croston/SBA (statsforecast, sktime) fit one series at
    a time and are not dependencies here; this is the textbook recursion vectorised over SKUs.
    NaN days (censored or before launch) leave the state unchanged. With `days` (sorted) only the
    estimates after those days are returned, shape (n, len(days)); the recursion still runs from day 0.
    """
    n, t = y.shape
    cols = np.arange(t) if days is None else np.asarray(days)
    stop = int(cols[-1]) + 1 if len(cols) else 0
    # One contiguous row per day: the loop reads day by day, and a strided column of y is slow to read.
    days_by_row = np.ascontiguousarray(y[:, :stop].T)
    slot = np.full(stop, -1)
    slot[cols] = np.arange(len(cols))
    size = np.full(n, np.nan)  # smoothed non-zero demand size
    interval = np.full(n, np.nan)  # smoothed interval between demands
    since = np.zeros(n)  # observed days since the last demand
    sizes = np.zeros((len(cols), n))
    intervals = np.zeros((len(cols), n))
    for k in range(stop):
        v = days_by_row[k]
        since += ~np.isnan(v)
        hit = v > 0  # False on NaN days
        if hit.any():
            # The first demand sets the state, later ones smooth it. Whole-vector selects rather than
            # boolean-indexed updates: the same numbers in half the time.
            new = np.isnan(size)
            size = np.where(hit, np.where(new, v, size + alpha * (v - size)), size)
            interval = np.where(hit, np.where(new, since, interval + alpha * (since - interval)), interval)
            since[hit] = 0
        if slot[k] >= 0:
            sizes[slot[k]] = size
            intervals[slot[k]] = interval
    return np.ascontiguousarray(np.nan_to_num((1 - alpha / 2) * sizes / intervals).T)


@dataclass
class OriginStats:
    """Per SKU and day: statistics of the series up to and including that day (NaN-aware).

    The per-SKU arrays hold every history day, or only `days` when computed for a forecast: index them
    through `col`. The per-category arrays always hold every history day.
    """

    m7: np.ndarray
    m28: np.ndarray
    m91: np.ndarray
    mall: np.ndarray
    sd28: np.ndarray
    zero91: np.ndarray
    since_sale: np.ndarray
    sba: np.ndarray
    scale: np.ndarray
    cat_m7: np.ndarray  # per category (n_cat, t)
    cat_m28: np.ndarray
    dow_ratio: np.ndarray  # (n, t, 7): mean of each weekday over the last 8 weeks / 56-day mean
    days: np.ndarray | None = None  # the history days the per-SKU arrays hold (None: all of them)

    def col(self, day: np.ndarray | int) -> np.ndarray | int:
        """Column of history day(s) `day` in the per-SKU arrays."""
        if self.days is None:
            return day
        pos = np.searchsorted(self.days, day)
        if not np.array_equal(self.days[np.minimum(pos, len(self.days) - 1)], day):
            raise ValueError(f"forecast: origin statistics hold days {self.days.tolist()} only")
        return pos


def _window_sums_every_day(y: np.ndarray, dow: np.ndarray, cat_codes: np.ndarray, n_cat: int) -> dict:
    """The sums `origin_stats` divides, for windows ending at every history day (see `_window_sums_at`)."""
    obs = ~np.isnan(y)
    v = np.where(obs, y, 0.0)
    c = obs.astype(float)
    pv, pc = _prefix(v), _prefix(c)
    sums = {f"{k}{w}": _window(p, w) for w in (7, 28, 56, 91) for k, p in (("s", pv), ("c", pc))}
    sums |= {"sall": pv[:, 1:], "call": pc[:, 1:]}
    sums["q28"] = _window(_prefix(v * v), 28)
    sums["z91"] = _window(_prefix(((v == 0) & obs).astype(float)), 91)
    sums["weekday"] = [
        _rolling(np.where(dow == wd, v, 0.0), np.where(dow == wd, c, 0.0), 56) for wd in range(7)
    ]
    t = y.shape[1]
    last = np.where(obs & (y > 0), np.arange(t)[None, :], -10_000)
    np.maximum.accumulate(last, axis=1, out=last)
    sums["since_sale"] = np.minimum(np.arange(t)[None, :] - last, 400).astype(float)
    sums["cat_v"], sums["cat_c"] = np.zeros((n_cat, t)), np.zeros((n_cat, t))
    np.add.at(sums["cat_v"], cat_codes, v)
    np.add.at(sums["cat_c"], cat_codes, c)
    return sums


def _window_sums_at(
    y: np.ndarray, dow: np.ndarray, cat_codes: np.ndarray, n_cat: int, days: np.ndarray
) -> dict:
    """The sums of `_window_sums_every_day` for windows ending at `days` only, in one pass over the days.

    The running sums grow day by day in the order `_prefix` adds them, so every window sum is the same
    number; only the running sums where a window starts or ends are kept. The category sums still cover
    every day (bincount adds the SKUs in the order np.add.at does).
    """
    n, t = y.shape
    hi = days + 1
    lows = {w: np.maximum(hi - w, 0) for w in (7, 28, 56, 91)}
    keep = set(hi.tolist()).union(*(lo.tolist() for lo in lows.values()))
    by_day = np.ascontiguousarray(y.T)  # one contiguous row per day
    # -0.0 is the exact identity of addition: running sums started from it equal np.cumsum's.
    acc_v, acc_q = np.full(n, -0.0), np.full(n, -0.0)
    acc_c, acc_z = np.zeros(n), np.zeros(n)
    acc_wv = [np.full(n, -0.0) for _ in range(7)]
    acc_wc = [np.zeros(n) for _ in range(7)]
    zero = np.zeros(n)
    kept = {0: (zero, zero, zero, zero, [zero] * 7, [zero] * 7)}  # _prefix's leading 0
    cat_v, cat_c = np.zeros((t, n_cat)), np.zeros((t, n_cat))
    for k in range(t):
        row = by_day[k]
        obs = ~np.isnan(row)
        v = np.where(obs, row, 0.0)
        acc_v += v
        acc_q += v * v
        acc_c += obs
        acc_z += (v == 0) & obs
        for wd in range(7):  # the other weekdays add 0.0, as the masked sums of the every-day path do
            acc_wv[wd] += v if wd == dow[k] else 0.0
        acc_wc[dow[k]] += obs
        cat_v[k] = np.bincount(cat_codes, weights=v, minlength=n_cat)
        cat_c[k] = np.bincount(cat_codes, weights=obs.astype(float), minlength=n_cat)
        if k + 1 in keep:
            kept[k + 1] = (
                *(a.copy() for a in (acc_v, acc_c, acc_q, acc_z)),
                [a.copy() for a in acc_wv],
                [a.copy() for a in acc_wc],
            )

    def window(which: int, w: int, wd: int | None = None) -> np.ndarray:
        def at(pos: int) -> np.ndarray:
            return kept[pos][which] if wd is None else kept[pos][which][wd]

        return np.column_stack([at(a) - at(b) for a, b in zip(hi, lows[w], strict=True)])

    sums = {f"{k}{w}": window(j, w) for w in (7, 28, 56, 91) for k, j in (("s", 0), ("c", 1))}
    sums["sall"] = np.column_stack([kept[a][0] for a in hi])
    sums["call"] = np.column_stack([kept[a][1] for a in hi])
    sums["q28"], sums["z91"] = window(2, 28), window(3, 91)
    sums["weekday"] = [(window(4, 56, wd), window(5, 56, wd)) for wd in range(7)]
    # Days since the last sale, capped at 400: only the last 400 days matter.
    sums["since_sale"] = np.empty((n, len(days)))
    for j, d in enumerate(days):
        back = y[:, max(d - 399, 0) : d + 1][:, ::-1] > 0
        sums["since_sale"][:, j] = np.where(back.any(axis=1), back.argmax(axis=1), 400)
    sums["cat_v"], sums["cat_c"] = cat_v.T, cat_c.T
    return sums


def origin_stats(panel: Panel, sba_alpha: float, days: Sequence[int] | None = None) -> OriginStats:
    """Statistics at the end of every history day, or of `days` only: a forecast needs those at its
    origin alone (and a year before it), several times faster to get on a long history, same numbers."""
    y = panel.y[:, : panel.n_hist]
    t = y.shape[1]
    cols = None if days is None else np.unique(np.asarray(days, dtype=np.int64))
    dow = _dow(panel.dates[:t])
    n_cat = len(panel.cat_names)
    if cols is None:
        sums = _window_sums_every_day(y, dow, panel.cat_codes, n_cat)
    else:
        sums = _window_sums_at(y, dow, panel.cat_codes, n_cat, cols)
    with np.errstate(invalid="ignore", divide="ignore"):
        m7, m28, m91 = sums["s7"] / sums["c7"], sums["s28"] / sums["c28"], sums["s91"] / sums["c91"]
        mall = sums["sall"] / sums["call"]
        sd28 = np.sqrt(np.maximum(sums["q28"] / sums["c28"] - m28**2, 0.0))
        zero91 = sums["z91"] / sums["c91"]
        scale = np.where(np.isnan(m91), m28, 0.5 * np.nan_to_num(m28, nan=m91) + 0.5 * m91)
        scale = np.where(np.isnan(scale), mall, scale)
        scale = np.maximum(np.nan_to_num(scale, nan=0.0), 0.05)
        cs7, cc7 = _rolling(sums["cat_v"], sums["cat_c"], 7)
        cs28, cc28 = _rolling(sums["cat_v"], sums["cat_c"], 28)
        cat_m7, cat_m28 = cs7 / cc7, cs28 / cc28
        # Weekday profile over the last 8 weeks: sum of the same weekday / 56-day mean.
        m56 = sums["s56"] / sums["c56"]
        dow_ratio = np.full((panel.n, m56.shape[1], 7), np.nan, dtype=np.float32)
        for wd, (sw, cw) in enumerate(sums["weekday"]):
            dow_ratio[:, :, wd] = (sw / cw) / m56
    return OriginStats(
        m7,
        m28,
        m91,
        mall,
        sd28,
        zero91,
        sums["since_sale"],
        sba_path(y, sba_alpha, cols),
        scale,
        cat_m7,
        cat_m28,
        dow_ratio,
        cols,
    )


def _dow(dates: np.ndarray) -> np.ndarray:
    """Day of week, 0 = Monday."""
    return ((dates.astype("datetime64[D]").astype(np.int64) - 4) % 7).astype(np.int64)


# ------------------------------------------------------------------------------------------------
# Calendar and Prophet
# ------------------------------------------------------------------------------------------------


def _event_main_days(calendar: pl.DataFrame) -> pl.DataFrame:
    """The main day of each event occurrence: rows with days_from_event == 0 when the calendar carries
    windows (the dbt seed `holiday_calendar` has one row per day of a window), else every row."""
    if "days_from_event" in calendar.columns:
        return calendar.filter(pl.col("days_from_event") == 0)
    return calendar


def _day_numbers(frame: pl.DataFrame) -> np.ndarray:
    return np.sort(frame["date"].cast(pl.Date).to_numpy().astype("datetime64[D]").astype(np.int64))


def calendar_features(dates: np.ndarray, calendar: pl.DataFrame | None) -> tuple[np.ndarray, list[str]]:
    """Per day and event type: in the event (any calendar row that day), days to the next main day
    (cap 60) and days since the last one (cap 30)."""
    if calendar is None or calendar.is_empty():
        return np.zeros((len(dates), 0)), []
    _require(calendar, CALENDAR_COLUMNS, "forecast input `calendar`")
    day = dates.astype("datetime64[D]").astype(np.int64)
    main = _event_main_days(calendar)
    cols: list[np.ndarray] = []
    names: list[str] = []
    for event in sorted(calendar["event"].unique().to_list()):
        ev = _day_numbers(main.filter(pl.col("event") == event))
        if not len(ev):
            ev = _day_numbers(calendar.filter(pl.col("event") == event))
        in_event = np.isin(day, _day_numbers(calendar.filter(pl.col("event") == event)))
        pos = np.searchsorted(ev, day, side="left")
        nxt = np.where(pos < len(ev), ev[np.minimum(pos, len(ev) - 1)] - day, 60)
        pos_r = np.searchsorted(ev, day, side="right") - 1
        prv = np.where(pos_r >= 0, day - ev[np.maximum(pos_r, 0)], 30)
        cols += [
            in_event.astype(float),
            np.minimum(nxt, 60).astype(float),
            np.minimum(prv, 30).astype(float),
        ]
        names += [f"event_{event}", f"days_to_{event}", f"days_since_{event}"]
    return np.column_stack(cols), names


def _import_prophet():  # noqa: ANN202 - returns the Prophet class
    """Import Prophet lazily with its chatty loggers silenced (it costs ~0.5 s and prints otherwise)."""
    logging.getLogger("prophet.plot").disabled = True
    logging.getLogger("cmdstanpy").disabled = True
    from prophet import Prophet

    # Set after the import (importing prophet sets its own levels). Its per-fit notes, e.g. yearly
    # seasonality on < 2 years of history, would repeat for every aggregate.
    logging.getLogger("prophet").setLevel(logging.ERROR)
    logging.getLogger("cmdstanpy").disabled = True
    return Prophet


def prophet_holidays(calendar: pl.DataFrame | None) -> pl.DataFrame | None:
    """Calendar -> Prophet holidays frame (holiday, ds, lower_window, upper_window), one row per occurrence.

    Windows come from the calendar's own `days_from_event` range when it has one (the dbt seed), else
    from EVENT_WINDOWS by event name, else the day alone.
    """
    if calendar is None or calendar.is_empty():
        return None
    if "days_from_event" in calendar.columns:
        spans = calendar.group_by("event").agg(
            pl.col("days_from_event").min().alias("lower_window"),
            pl.col("days_from_event").max().alias("upper_window"),
        )
        return (
            _event_main_days(calendar)
            .join(spans, on="event")
            .select(
                pl.col("event").alias("holiday"),
                pl.col("date").cast(pl.Datetime("ns")).alias("ds"),
                pl.col("lower_window").cast(pl.Int64),
                pl.col("upper_window").cast(pl.Int64),
            )
        )
    return calendar.select(
        pl.col("event").alias("holiday"),
        pl.col("date").cast(pl.Datetime("ns")).alias("ds"),
        pl.col("event")
        .replace_strict({k: v[0] for k, v in EVENT_WINDOWS.items()}, default=0)
        .alias("lower_window"),
        pl.col("event")
        .replace_strict({k: v[1] for k, v in EVENT_WINDOWS.items()}, default=0)
        .alias("upper_window"),
    )


def prophet_aggregates(
    series: np.ndarray, dates: np.ndarray, n_fit: int, calendar: pl.DataFrame | None
) -> np.ndarray:
    """Fit Prophet to each aggregate row of `series` on its first n_fit days; return yhat for all dates.

    Multiplicative seasonality (events and seasons scale with the level), weekly always, yearly only with
    a year of history (Prophet cannot place a yearly curve on less). Output floored at a small positive.
    """
    import pandas as pd

    prophet_cls = _import_prophet()
    hol = prophet_holidays(calendar)
    hol_pd = hol.to_pandas() if hol is not None else None
    ds = pd.to_datetime(dates[:n_fit])
    future = pd.DataFrame({"ds": pd.to_datetime(dates)})
    out = np.zeros((series.shape[0], len(dates)))
    for k in range(series.shape[0]):
        hist = pd.DataFrame({"ds": ds, "y": series[k, :n_fit]})
        if hist["y"].sum() <= 0 or n_fit < 56:
            out[k] = max(float(np.nanmean(series[k, :n_fit])), 1e-3)
            continue
        model = prophet_cls(
            # With 1-2 years Prophet warns the yearly curve is under-identified; a low order keeps it smooth.
            yearly_seasonality=(10 if n_fit >= 730 else 4) if n_fit >= 365 else False,
            weekly_seasonality=True,
            daily_seasonality=False,
            seasonality_mode="multiplicative",
            holidays=hol_pd,
            uncertainty_samples=0,
        )
        model.fit(hist)
        out[k] = model.predict(future)["yhat"].to_numpy()
    floor = np.maximum(np.nanmean(series[:, :n_fit], axis=1, keepdims=True) * 0.05, 1e-3)
    return np.maximum(out, floor)


# ------------------------------------------------------------------------------------------------
# Features
# ------------------------------------------------------------------------------------------------

STATIC_FEATURES = ("log_mean", "zero_share", "cv2", "category")


@dataclass
class FeatureContext:
    """Everything the feature builder reads, fixed for one fit (one cutoff)."""

    panel: Panel
    stats: OriginStats
    cal: np.ndarray
    cal_names: list[str]
    price_rel: np.ndarray
    static: np.ndarray  # (n, 4)
    prophet_cat: np.ndarray | None  # (n_cat, total) yhat
    prophet_total: np.ndarray | None  # (total,)
    prophet_cat_m28: np.ndarray | None
    prophet_total_m28: np.ndarray | None


def _nanmedian_rows(a: np.ndarray) -> np.ndarray:
    """`np.nanmedian(a, axis=1)`, the same numbers. On rows of 600+ days numpy calls a Python function per
    row (0.3-0.6 s for 20k SKUs); one sort of the matrix takes a fraction of that. Shorter rows keep
    numpy's own (masked) path."""
    if a.shape[1] < 600:
        return np.nanmedian(a, axis=1)
    s = np.sort(a, axis=1)  # NaN sorts last
    k = a.shape[1] - np.isnan(a).sum(axis=1)  # non-NaN values per row
    rows = np.arange(a.shape[0])
    lo, hi = s[rows, np.maximum((k - 1) // 2, 0)], s[rows, k // 2]
    # numpy takes the mean of the middle value(s): the value itself, or (lo + hi) / 2; NaN for no values.
    return np.where(k % 2 == 1, lo, (lo + hi) / 2)


def feature_context(
    panel: Panel, stats: OriginStats, calendar: pl.DataFrame | None, cutoff: int, use_prophet: bool
) -> FeatureContext:
    """Build the per-cutoff inputs: SKU statics from history up to `cutoff`, Prophet fitted up to it."""
    cal, cal_names = calendar_features(panel.dates, calendar)
    y = panel.y[:, : cutoff + 1]
    with np.errstate(invalid="ignore", divide="ignore"), _quiet():
        # Median price over the SKU's own days (before launch the price is only back-filled).
        launched = ~np.isnan(panel.units[:, : cutoff + 1])
        med_price = _nanmedian_rows(np.where(launched, panel.price[:, : cutoff + 1], np.nan))
        med_price = np.where(np.isnan(med_price), panel.price[:, cutoff], med_price)
        price_rel = panel.price / med_price[:, None]
        mean = np.nanmean(y, axis=1)
        zero = np.nanmean(np.where(np.isnan(y), np.nan, (y == 0).astype(float)), axis=1)
        cv2 = np.nanvar(y, axis=1) / mean**2
    static = np.column_stack([np.log1p(np.nan_to_num(mean)), zero, cv2, panel.cat_codes.astype(float)])
    pc = pt = pcm = ptm = None
    if use_prophet:
        v = np.where(np.isnan(panel.y), 0.0, panel.y)[:, : cutoff + 1]
        agg = np.zeros((len(panel.cat_names) + 1, cutoff + 1))
        np.add.at(agg, panel.cat_codes, v)
        agg[-1] = v.sum(axis=0)
        yhat = prophet_aggregates(agg, panel.dates, cutoff + 1, calendar)
        ones = np.ones_like(yhat)
        s28, c28 = _rolling(yhat, ones, 28)
        m28 = s28 / c28
        pc, pt, pcm, ptm = yhat[:-1], yhat[-1], m28[:-1], m28[-1]
    return FeatureContext(panel, stats, cal, cal_names, price_rel, static, pc, pt, pcm, ptm)


def feature_names(ctx: FeatureContext) -> list[str]:
    names = [
        "horizon",
        "dow",
        "month",
        "doy",
        "dom",
        "log_scale",
        "m7_rel",
        "m28_rel",
        "m91_rel",
        "mall_rel",
        "sd28_rel",
        "last_rel",
        "same_wd_rel",
        "same_wd4_rel",
        "dow_ratio",
        "zero91",
        "since_sale",
        "sba_rel",
        "cat_m7_m28",
        "yoy_sku",
        "yoy_cat",
        "price_rel",
        "price_change",
        "discount",
        "discount_origin",
        *STATIC_FEATURES,
        *ctx.cal_names,
    ]
    if ctx.prophet_cat is not None:
        names += ["prophet_cat_mult", "prophet_total_mult"]
    return names


def _year_before(origin: np.ndarray | int) -> np.ndarray | int:
    """The day whose 28-day mean `build_features` compares last year's change with (52 weeks back)."""
    return np.maximum(origin - 364, 27)


def build_features(ctx: FeatureContext, i: np.ndarray, d: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Feature matrix for rows (SKU index i, target day d, horizon h); origin o = d - h."""
    p, st = ctx.panel, ctx.stats
    o = d - h
    oc = st.col(o)  # column of the origin in the per-SKU statistics
    s = st.scale[i, oc]
    y = p.y
    cols: list[np.ndarray] = []
    dates = p.dates[d]
    month = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
    doy = (dates - dates.astype("datetime64[Y]")).astype(np.int64) + 1
    dom = (dates - dates.astype("datetime64[M]")).astype(np.int64) + 1
    wd = _dow(dates)
    cols += [h, wd, month, doy, dom]
    with np.errstate(invalid="ignore", divide="ignore"), _quiet():
        cols += [
            np.log(s),
            st.m7[i, oc] / s,
            st.m28[i, oc] / s,
            st.m91[i, oc] / s,
            st.mall[i, oc] / s,
            st.sd28[i, oc] / s,
            y[i, o] / s,
        ]
        lag1 = 7 * ((h + 6) // 7)  # smallest multiple of 7 >= h: same weekday, known at the origin
        same = np.stack([y[i, np.maximum(d - lag1 - 7 * k, 0)] for k in range(4)], axis=1)
        cols += [same[:, 0] / s, np.nanmean(same, axis=1) / s]
        cols += [st.dow_ratio[i, oc, wd], st.zero91[i, oc], st.since_sale[i, oc], st.sba[i, oc] / s]
        c = p.cat_codes[i]
        cols += [st.cat_m7[c, o] / st.cat_m28[c, o]]
        # Last year's change from the origin to the target day (SKU and category), 364 = 52 weeks.
        ly_t, ly_o = d - 364, o - 364
        ok = ly_o >= 27
        lt, lo_ = np.maximum(ly_t, 3), _year_before(o)
        sku_t = np.nanmean(np.stack([y[i, lt + k] for k in range(-3, 4)], axis=1), axis=1)
        sku_o = st.m28[i, st.col(lo_)]
        cat_t = st.cat_m7[c, np.minimum(lt + 3, p.n_hist - 1)]  # centred 7-day mean a year before d
        cat_o = st.cat_m28[c, lo_]
        cols += [np.where(ok, sku_t / sku_o, np.nan), np.where(ok, cat_t / cat_o, np.nan)]
        cols += [ctx.price_rel[i, d], p.price[i, d] / p.price[i, o], p.discount[i, d], p.discount[i, o]]
        cols += [ctx.static[i, k] for k in range(ctx.static.shape[1])]
        cols += [ctx.cal[d, k] for k in range(ctx.cal.shape[1])]
        if ctx.prophet_cat is not None:
            cols += [
                ctx.prophet_cat[c, d] / ctx.prophet_cat_m28[c, o],
                ctx.prophet_total[d] / ctx.prophet_total_m28[o],
            ]
    x = np.column_stack([np.asarray(col, dtype=np.float32) for col in cols])
    x[~np.isfinite(x)] = np.nan
    return x


# ------------------------------------------------------------------------------------------------
# Conformal quantile calibration
# ------------------------------------------------------------------------------------------------


@dataclass
class QuantileCalibration:
    """Per bucket (segment, horizon group, level bin): empirical quantiles of actual / predicted mean."""

    quantiles: tuple[float, ...]
    edges: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    ratios: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)  # (n_bins, n_q)

    @staticmethod
    def fit(
        mean: np.ndarray,
        actual: np.ndarray,
        segment: np.ndarray,
        h: np.ndarray,
        quantiles: Sequence[float],
        mode: str = "interval",
        rows_per_bin: int = 400,
    ) -> QuantileCalibration:
        qs = tuple(quantiles)
        cal = QuantileCalibration(qs)
        keep = ~np.isnan(actual) & ~np.isnan(mean)
        mean, actual, segment, h = mean[keep], actual[keep], segment[keep], h[keep]
        mean = np.maximum(mean, 1e-4)
        hg = (h > 7).astype(int)
        lo_q, hi_q = min(qs), max(qs)
        for key in [(sg, g) for sg in (0, 1) for g in (0, 1)]:
            m = (segment == key[0]) & (hg == key[1])
            if m.sum() < 50:  # too few rows: pool horizons, then everything
                m = segment == key[0]
            if m.sum() < 50:
                m = np.ones_like(segment, dtype=bool)
            if not m.any():
                continue
            lm = np.log(mean[m])
            z = actual[m] / mean[m]
            n_bins = int(np.clip(m.sum() // rows_per_bin, 1, 10))
            edges = np.quantile(lm, np.linspace(0, 1, n_bins + 1)[1:-1])
            b = np.searchsorted(edges, lm)
            table = np.zeros((n_bins, len(qs)))
            for k in range(n_bins):
                zk = z[b == k]
                if not zk.size:
                    zk = z
                levels = np.array(qs, dtype=float)
                if mode == "interval" and len(qs) >= 2:
                    q_lo = np.quantile(zk, lo_q)
                    miss_lo = float((zk < q_lo).mean())
                    levels[np.argmax(qs)] = min(miss_lo + (hi_q - lo_q), 1.0)
                table[k] = np.quantile(zk, levels)
            cal.edges[key] = edges
            cal.ratios[key] = np.maximum.accumulate(table, axis=1)
        return cal

    def apply(self, mean: np.ndarray, segment: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Quantile matrix (rows, n_q) for predicted means."""
        out = np.zeros((len(mean), len(self.quantiles)))
        hg = (h > 7).astype(int)
        lm = np.log(np.maximum(mean, 1e-4))
        for key, edges in self.edges.items():
            m = (segment == key[0]) & (hg == key[1])
            if m.any():
                out[m] = mean[m, None] * self.ratios[key][np.searchsorted(edges, lm[m])]
        return out


def mean_pinball(actual: np.ndarray, qmat: np.ndarray, quantiles: Sequence[float]) -> float:
    keep = ~np.isnan(actual)
    diff = actual[keep, None] - qmat[keep]
    q = np.asarray(quantiles)[None, :]
    return float(np.maximum(q * diff, (q - 1) * diff).mean()) if keep.any() else float("nan")


# ------------------------------------------------------------------------------------------------
# The global forecaster
# ------------------------------------------------------------------------------------------------


@dataclass
class TrainedModel:
    """What a fit leaves for forecasting later: persisted by `save_model`, used by `forecast_with`."""

    config: ForecastConfig
    model: HistGradientBoostingRegressor
    calib: QuantileCalibration
    calib_sba: QuantileCalibration
    use_sba: bool
    cat_names: np.ndarray  # category order of the model's `category` feature
    history_end: dt.date  # last day of the demand history the fit saw
    prophet_dates: np.ndarray | None  # datetime64[D], the dates of the stored Prophet curves
    prophet_cat: np.ndarray | None  # (n_cat, len(prophet_dates)) yhat per category
    prophet_total: np.ndarray | None
    diagnostics: dict[str, object] = field(default_factory=dict)
    format_version: int = 1

    @property
    def serves_until(self) -> dt.date:
        """The last origin this model may forecast from (history end + max_model_age_days)."""
        return self.history_end + dt.timedelta(days=self.config.max_model_age_days)


MODEL_FORMAT_VERSION = 1


def save_model(trained: TrainedModel, path) -> None:  # noqa: ANN001 - str or Path
    """Write the trained model with joblib (scikit-learn's recommended persistence) atomically."""
    import os
    import tempfile
    from pathlib import Path

    import joblib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        joblib.dump(trained, tmp, compress=3)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_model(path) -> TrainedModel:  # noqa: ANN001 - str or Path
    """Read a model written by `save_model`; a clear error when it is not one (or from another version)."""
    import joblib

    try:
        trained = joblib.load(path)
    except Exception as err:  # unpickling errors have many types
        raise ValueError(
            f"forecast model {path}: cannot be read ({type(err).__name__}: {err}); retrain it"
        ) from err
    if not isinstance(trained, TrainedModel) or trained.format_version != MODEL_FORMAT_VERSION:
        raise ValueError(
            f"forecast model {path}: not a shoplens model of format {MODEL_FORMAT_VERSION}; retrain it"
        )
    return trained


def _align_categories(panel: Panel, names: np.ndarray) -> Panel:
    """Give the panel the trained model's category codes; categories it never saw get codes after them."""
    known = {str(c): k for k, c in enumerate(names)}
    unseen = sorted({str(c) for c in panel.cat_names} - set(known))
    all_names = np.array([*map(str, names), *unseen], dtype=object)
    lookup = {c: k for k, c in enumerate(all_names)}
    codes = np.array([lookup[str(c)] for c in panel.categories], dtype=np.int64)
    return dataclasses.replace(panel, cat_names=all_names, cat_codes=codes)


@dataclass
class GlobalForecaster:
    """Fit once on a demand history, then forecast `horizon` days from its last day.

    `diagnostics` records what the fit decided (calibration coverage, the intermittent check, timings).
    """

    config: ForecastConfig = field(default_factory=ForecastConfig)
    diagnostics: dict[str, object] = field(default_factory=dict)
    _state: _Fitted | None = field(default=None, repr=False)

    def _say(self, progress: Progress, message: str) -> None:
        if progress is not None:
            progress(message)

    def _fit_model(self, ctx: FeatureContext, cutoff: int) -> HistGradientBoostingRegressor:
        """Fit the global model on target days <= cutoff, one random horizon per target day."""
        cfg, p = self.config, ctx.panel
        rng = np.random.default_rng(cfg.seed + cutoff)
        i, d = np.nonzero(~np.isnan(p.y[:, : cutoff + 1]))
        h = rng.integers(1, cfg.horizon + 1, len(i))
        ok = (d - h) >= p.launch[i] + cfg.min_origin_history
        i, d, h = i[ok], d[ok], h[ok]
        if len(i) > cfg.max_train_rows:
            pick = np.sort(rng.choice(len(i), cfg.max_train_rows, replace=False))
            i, d, h = i[pick], d[pick], h[pick]
        if len(i) < 100:
            raise ValueError(
                f"forecast: only {len(i)} usable training rows; need more history "
                f"(each SKU needs {cfg.min_origin_history} days before a {cfg.horizon}-day horizon)"
            )
        x = build_features(ctx, i, d, h)
        s = ctx.stats.scale[i, ctx.stats.col(d - h)]
        names = feature_names(ctx)
        model = HistGradientBoostingRegressor(
            loss="poisson",
            learning_rate=cfg.learning_rate,
            max_iter=cfg.max_iter,
            max_leaf_nodes=cfg.max_leaf_nodes,
            min_samples_leaf=cfg.min_samples_leaf,
            l2_regularization=cfg.l2_regularization,
            categorical_features=[names.index("category")],
            early_stopping=False,
            random_state=cfg.seed,
        )
        # A feature with no value in the training rows (e.g. last year's change on < 1 year of history)
        # breaks the binning: train it as a constant and feed the same constant at prediction time.
        dead = np.isnan(x).all(axis=0)
        x[:, dead] = 0.0
        ratio = p.y[i, d] / s
        with threadpool_limits(limits=cfg.n_threads, user_api="openmp"):
            model.fit(x, ratio, sample_weight=s)
        model.shoplens_dead_features_ = dead
        # The Poisson link's exp() can run away on a row whose features sit outside the training range
        # (Online Retail's top sellers were once forecast at 300,000 units a day): a prediction may not
        # exceed the largest level-relative demand the model was trained on (its 99.95th percentile).
        model.shoplens_max_ratio_ = float(np.quantile(ratio, 0.9995))
        self.diagnostics.setdefault("train_rows", []).append(len(i))  # type: ignore[union-attr]
        return model

    def _predict_mean(
        self,
        model: HistGradientBoostingRegressor,
        ctx: FeatureContext,
        origin: int,
        progress: Progress = None,
        chunk: int = 2000,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean forecast (n, horizon) from `origin` for SKUs launched by then; also that SKU mask."""
        p, hz = ctx.panel, self.config.horizon
        live = np.nonzero(p.launch <= origin)[0]
        out = np.full((p.n, hz), np.nan)
        for start in range(0, len(live), chunk):
            sk = live[start : start + chunk]
            i = np.repeat(sk, hz)
            h = np.tile(np.arange(1, hz + 1), len(sk))
            x = build_features(ctx, i, origin + h, h)
            x[:, model.shoplens_dead_features_] = 0.0
            with (
                threadpool_limits(limits=self.config.n_threads, user_api="openmp"),
                np.errstate(over="ignore"),
            ):
                pred = np.minimum(model.predict(x), getattr(model, "shoplens_max_ratio_", np.inf))
            mean = (pred * ctx.stats.scale[i, ctx.stats.col(origin)]).reshape(len(sk), hz)
            # Guard against the Poisson link's exp() running away on a SKU whose features sit far outside
            # the training range (seen on Online Retail's long tail: one SKU predicted 1e280 units): no
            # day is forecast above 5x the SKU's largest observed day (plus one unit).
            with np.errstate(all="ignore"), _quiet():
                seen = np.nan_to_num(np.nanmax(p.y[sk, : origin + 1], axis=1), nan=0.0)
            out[sk] = np.minimum(np.nan_to_num(mean, nan=0.0), (5.0 * seen + 1.0)[:, None])
            self._say(progress, f"forecast {min(start + chunk, len(live))} of {len(live)} SKUs")
        return out, p.launch <= origin

    def _segment(self, panel: Panel, origin: int) -> np.ndarray:
        """1 = intermittent: zero share over the last 182 observed days above the threshold."""
        y = panel.y[:, max(origin - 181, 0) : origin + 1]
        with np.errstate(invalid="ignore"), _quiet():
            zero = np.nanmean(np.where(np.isnan(y), np.nan, (y == 0).astype(float)), axis=1)
        return (np.nan_to_num(zero, nan=1.0) > self.config.intermittent_zero_share).astype(int)

    def fit(
        self,
        demand: pl.DataFrame,
        calendar: pl.DataFrame | None,
        future: pl.DataFrame | None = None,
        fit_until: dt.date | None = None,
        progress: Progress = None,
    ) -> GlobalForecaster:
        """Calibrate on the `horizon` days before `fit_until` (default: the last day); refit if configured.

        Days of `demand` after `fit_until` are never used for fitting; `predict` may use them as the
        known past of a later origin (the simulation replays a period this way).
        """
        cfg = self.config
        hz = cfg.horizon
        t0 = time.perf_counter()
        # Future columns reach max_model_age_days past the horizon so the stored Prophet curves cover
        # every origin the model may serve.
        panel = build_panel(demand, hz + cfg.max_model_age_days, future)
        last = (
            panel.n_hist - 1
            if fit_until is None
            else int((np.datetime64(fit_until, "D") - panel.dates[0]).astype(int))
        )
        if not 0 <= last < panel.n_hist:
            raise ValueError(f"forecast: fit_until={fit_until} is outside the demand history")
        cal_origin = last - hz
        if cal_origin < 56:
            raise ValueError(
                f"forecast: history of {last + 1} days is too short; need at least {56 + hz + 1} days "
                f"(56 to learn from plus a {hz}-day calibration window)"
            )
        stats = origin_stats(panel, cfg.sba_alpha)
        self._say(progress, f"features ready for {panel.n} SKUs x {panel.n_hist} days")
        ctx_cal = feature_context(panel, stats, calendar, cal_origin, cfg.use_prophet)
        model_cal = self._fit_model(ctx_cal, cal_origin)
        self._say(progress, f"model fitted on {self.diagnostics['train_rows'][-1]:,} rows")  # type: ignore[index]
        mean_cal, live = self._predict_mean(model_cal, ctx_cal, cal_origin)
        actual = panel.y[:, cal_origin + 1 : cal_origin + hz + 1]
        seg_cal = self._segment(panel, cal_origin)
        rows = np.repeat(live, hz)
        seg_rows = np.repeat(seg_cal, hz)[rows]
        h_rows = np.tile(np.arange(1, hz + 1), panel.n)[rows]
        a_rows = actual.ravel()[rows]
        mode = cfg.interval_calibration
        calib = QuantileCalibration.fit(mean_cal.ravel()[rows], a_rows, seg_rows, h_rows, cfg.quantiles, mode)
        # Intermittent check: calibrated SBA against the calibrated global model on intermittent SKUs.
        sba_cal = np.repeat(stats.sba[:, stats.col(cal_origin)], hz)[rows]
        calib_sba = QuantileCalibration.fit(sba_cal, a_rows, seg_rows, h_rows, cfg.quantiles, mode)
        inter = seg_rows == 1
        q_glob = calib.apply(mean_cal.ravel()[rows], seg_rows, h_rows)
        q_sba = calib_sba.apply(sba_cal, seg_rows, h_rows)
        loss_glob = mean_pinball(a_rows[inter], q_glob[inter], cfg.quantiles) if inter.any() else float("nan")
        loss_sba = mean_pinball(a_rows[inter], q_sba[inter], cfg.quantiles) if inter.any() else float("nan")
        use_sba = bool(inter.any() and loss_sba < loss_glob)
        lo, hi = np.argmin(cfg.quantiles), np.argmax(cfg.quantiles)
        ok = ~np.isnan(a_rows)
        self.diagnostics.update(
            calibration_coverage=float(
                ((a_rows[ok] >= q_glob[ok, lo]) & (a_rows[ok] <= q_glob[ok, hi])).mean()
            ),
            intermittent_skus=int(seg_cal.sum()),
            intermittent_pinball_global=loss_glob,
            intermittent_pinball_sba=loss_sba,
            intermittent_model=MODEL_SBA if use_sba else "global",
        )
        self._say(
            progress,
            f"calibrated quantiles; intermittent SKUs use {self.diagnostics['intermittent_model']} "
            f"(pinball global {loss_glob:.4f} vs SBA {loss_sba:.4f})",
        )
        if cfg.refit:
            ctx = feature_context(panel, stats, calendar, last, cfg.use_prophet)
            model = self._fit_model(ctx, last)
            self._say(progress, "final model refitted on all history")
        else:
            ctx, model = ctx_cal, model_cal
        self.diagnostics["fit_seconds"] = time.perf_counter() - t0
        trained = TrainedModel(
            config=cfg,
            model=model,
            calib=calib,
            calib_sba=calib_sba,
            use_sba=use_sba,
            cat_names=panel.cat_names.astype(object),
            history_end=panel.dates[last].astype(object),
            prophet_dates=panel.dates if ctx.prophet_total is not None else None,
            prophet_cat=ctx.prophet_cat,
            prophet_total=ctx.prophet_total,
            diagnostics={k: v for k, v in self.diagnostics.items() if k != "train_rows"}
            | {"train_rows": list(self.diagnostics.get("train_rows", [])), "skus": int(panel.n)},  # type: ignore[arg-type]
        )
        self._state = _Fitted(trained, panel, stats, calendar, last)
        return self

    def trained(self) -> TrainedModel:
        """The fitted model, calibration and Prophet curves, for `save_model` and `forecast_with`."""
        if self._state is None:
            raise RuntimeError("forecast: call fit() before trained()")
        return self._state.trained

    def predict(self, origin: dt.date | None = None, progress: Progress = None) -> pl.DataFrame:
        """Forecast `horizon` days after `origin` (default: the fit's last day) for SKUs launched by then."""
        if self._state is None:
            raise RuntimeError("forecast: call fit() before predict()")
        st = self._state
        panel = st.panel
        o = st.last if origin is None else int((np.datetime64(origin, "D") - panel.dates[0]).astype(int))
        if not st.last <= o < panel.n_hist:
            raise ValueError(
                f"forecast: origin {origin} must lie between the fit's last day and the last demand day"
            )
        return _forecast_at(self, st.trained, panel, st.stats, st.calendar, o, progress)

    def fit_predict(
        self,
        demand: pl.DataFrame,
        calendar: pl.DataFrame | None,
        future: pl.DataFrame | None = None,
        progress: Progress = None,
    ) -> pl.DataFrame:
        """Fit on all of `demand` and forecast `horizon` days after its last day."""
        t0 = time.perf_counter()
        out = self.fit(demand, calendar, future, progress=progress).predict(progress=progress)
        self.diagnostics["seconds"] = time.perf_counter() - t0
        return out


@dataclass
class _Fitted:
    """What `GlobalForecaster.fit` leaves for `predict`: the trained model and the fit's panel."""

    trained: TrainedModel
    panel: Panel
    stats: OriginStats
    calendar: pl.DataFrame | None
    last: int


def _serving_context(
    trained: TrainedModel, panel: Panel, stats: OriginStats, calendar: pl.DataFrame | None, origin: int
) -> FeatureContext:
    """Features at `origin`: SKU statics from the panel up to it, Prophet curves from the trained model."""
    ctx = feature_context(panel, stats, calendar, origin, use_prophet=False)
    if trained.prophet_total is None or trained.prophet_dates is None or trained.prophet_cat is None:
        return ctx
    total = len(panel.dates)
    pos = (panel.dates - trained.prophet_dates[0]).astype(np.int64)
    ok = (pos >= 0) & (pos < len(trained.prophet_dates))
    pt = np.full(total, np.nan)
    pt[ok] = trained.prophet_total[pos[ok]]
    pc = np.full((len(panel.cat_names), total), np.nan)
    n_known = min(len(trained.cat_names), len(panel.cat_names))  # aligned: known categories come first
    pc[:n_known, ok] = trained.prophet_cat[:n_known][:, pos[ok]]
    m28 = []
    for arr in (pc, pt[None, :]):
        s28, c28 = _rolling(np.nan_to_num(arr), (~np.isnan(arr)).astype(float), 28)
        with np.errstate(invalid="ignore", divide="ignore"):
            m28.append(s28 / c28)
    return dataclasses.replace(
        ctx, prophet_cat=pc, prophet_total=pt, prophet_cat_m28=m28[0], prophet_total_m28=m28[1][0]
    )


def _forecast_at(
    forecaster: GlobalForecaster,
    trained: TrainedModel,
    panel: Panel,
    stats: OriginStats,
    calendar: pl.DataFrame | None,
    o: int,
    progress: Progress,
) -> pl.DataFrame:
    """Calibrated quantile forecast for `horizon` days after panel day `o` with a trained model."""
    cfg = trained.config
    hz = cfg.horizon
    ctx = _serving_context(trained, panel, stats, calendar, o)
    mean, live = forecaster._predict_mean(trained.model, ctx, o, progress)
    seg = forecaster._segment(panel, o)
    i = np.repeat(np.arange(panel.n), hz)
    h = np.tile(np.arange(1, hz + 1), panel.n)
    keep = live[i]
    i, h = i[keep], h[keep]
    mean_rows = mean.ravel()[keep]
    seg_rows = seg[i]
    qmat = trained.calib.apply(mean_rows, seg_rows, h)
    name = MODEL_GLOBAL_PROPHET if trained.prophet_total is not None else MODEL_GLOBAL
    models = np.full(len(i), name, dtype=object)
    if trained.use_sba:
        inter = seg_rows == 1
        sba_mean = stats.sba[i, stats.col(o)]
        qmat[inter] = trained.calib_sba.apply(sba_mean[inter], seg_rows[inter], h[inter])
        mean_rows = np.where(inter, sba_mean, mean_rows)
        models[inter] = MODEL_SBA
    return _frame(panel.skus[i], panel.dates[o + h], qmat, mean_rows, models, cfg.quantiles)


def forecast_with(
    trained: TrainedModel,
    demand: pl.DataFrame,
    calendar: pl.DataFrame | None,
    future: pl.DataFrame | None = None,
    progress: Progress = None,
    start: dt.date | None = None,
) -> pl.DataFrame:
    """Forecast `horizon` days after the newest day of `demand` with a model trained earlier (no fitting).

    The origin must lie between the model's history end and `trained.serves_until`; SKUs and categories
    the model never saw are forecast too (the features are relative to each SKU's own level). Every
    feature is the SKU's own or its category's, so forecasting one whole category at a time (with
    `start` = the shop's first day) gives the same rows as forecasting the shop at once: the fan-out.
    """
    cfg = trained.config
    panel = _align_categories(build_panel(demand, cfg.horizon, future, start), trained.cat_names)
    last = panel.n_hist - 1
    origin = panel.dates[last].astype(object)
    if origin < trained.history_end:
        raise ValueError(
            f"forecast: the demand ends {origin}, before the model's history end {trained.history_end}"
        )
    if origin > trained.serves_until:
        raise ValueError(
            f"forecast: the model trained on history to {trained.history_end} serves origins up to "
            f"{trained.serves_until} (max_model_age_days={cfg.max_model_age_days}); the demand ends {origin}: "
            "retrain it (the weekly job, or materialize decisions/demand_model)"
        )
    # Statistics at the origin only (and the day build_features compares last year with): computing them
    # for every day of a 3-year history took most of a large shop's nightly forecast.
    stats = origin_stats(panel, cfg.sba_alpha, days=[int(_year_before(last)), last])
    return _forecast_at(GlobalForecaster(cfg), trained, panel, stats, calendar, last, progress)


def _frame(
    skus: np.ndarray,
    dates: np.ndarray,
    qmat: np.ndarray,
    mean: np.ndarray,
    models: np.ndarray,
    quantiles: Sequence[float],
) -> pl.DataFrame:
    """Output frame: sku, date, one column per quantile, mean, model (negative values floored at 0)."""
    data: dict[str, object] = {"sku": skus, "date": dates.astype("datetime64[D]")}
    for k, q in enumerate(quantiles):
        data[quantile_column(q)] = np.maximum(np.nan_to_num(qmat[:, k]), 0.0)
    data["mean"] = np.maximum(np.nan_to_num(mean), 0.0)
    data["model"] = models.astype(str)
    return pl.DataFrame(data).with_columns(pl.col("date").cast(pl.Date))


def forecast(
    demand: pl.DataFrame,
    calendar: pl.DataFrame | None,
    horizon: int = 28,
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9),
    *,
    use_prophet: bool = True,
    future: pl.DataFrame | None = None,
    progress: Progress = None,
    config: ForecastConfig | None = None,
) -> pl.DataFrame:
    """Forecast `horizon` days after the last date of `demand` for every SKU.

    Returns one row per SKU and day: sku, date, p10, p50, p90 (one column per quantile), mean, model.
    `future` (sku, date, avg_unit_price?, discount_rate?) carries planned prices and promotions.
    `progress` receives short messages such as "forecast 500 of 2000 SKUs".
    """
    cfg = dataclasses.replace(
        config or ForecastConfig(), horizon=horizon, quantiles=tuple(quantiles), use_prophet=use_prophet
    )
    return GlobalForecaster(cfg).fit_predict(demand, calendar, future, progress)


# ------------------------------------------------------------------------------------------------
# Baselines
# ------------------------------------------------------------------------------------------------


def baseline_forecasts(
    demand: pl.DataFrame, horizon: int = 28, quantiles: tuple[float, ...] = (0.1, 0.5, 0.9), window: int = 28
) -> pl.DataFrame:
    """Weekly seasonal naive and `window`-day moving average forecasts, stacked (model column tells which).

    Seasonal naive: the last observed value of the same weekday (censored days fall back a week, then to
    the moving average); quantiles add the empirical quantiles of its in-sample weekly differences over
    the last 12 weeks. Moving average: mean of the last `window` observed days; quantiles are the
    empirical quantiles of those days (the 'p50' column holds the mean, the baseline's point forecast).
    """
    panel = build_panel(demand, horizon)
    last = panel.n_hist - 1
    y = panel.y[:, : last + 1]
    n = panel.n
    win = y[:, max(last - window + 1, 0) :]
    with np.errstate(invalid="ignore"), _quiet():
        ma = np.nan_to_num(np.nanmean(win, axis=1))
        ma_q = np.nan_to_num(np.nanquantile(win, quantiles, axis=1).T)
        # Seasonal naive: for each of the 7 weekdays, the latest observed value within the last 4 weeks.
        week = np.full((n, 7), np.nan)
        for back in range(3, -1, -1):
            seg = y[:, last - 7 * back - 6 : last - 7 * back + 1]
            if seg.shape[1] == 7:
                week = np.where(np.isnan(seg), week, seg)
        week = np.where(np.isnan(week), ma[:, None], week)
        diffs = y[:, -84:][:, 7:] - y[:, -84:][:, :-7]
        sn_res = np.nan_to_num(np.nanquantile(diffs, quantiles, axis=1).T)
    h = np.arange(1, horizon + 1)
    sn = week[:, (h - 1) % 7]
    i = np.repeat(np.arange(n), horizon)
    dates = panel.dates[last + np.tile(h, n)]
    sn_rows = sn.ravel()
    sn_q = np.maximum(sn_rows[:, None] + sn_res[i], 0.0)
    ma_rows = np.repeat(ma, horizon)
    ma_qr = ma_q[i].copy()
    if 0.5 in quantiles:  # the median column carries each baseline's own point forecast
        sn_q[:, list(quantiles).index(0.5)] = sn_rows
        ma_qr[:, list(quantiles).index(0.5)] = ma_rows
    return pl.concat(
        [
            _frame(
                panel.skus[i], dates, sn_q, sn_rows, np.full(len(i), MODEL_SNAIVE, dtype=object), quantiles
            ),
            _frame(panel.skus[i], dates, ma_qr, ma_rows, np.full(len(i), MODEL_MA, dtype=object), quantiles),
        ]
    )


class _quiet:
    """Silence numpy's 'all-NaN slice' warnings for SKUs without observed days in a window."""

    def __enter__(self) -> None:
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._w.__exit__(*exc)
