"""Forecast accuracy metrics, vectorised in numpy, with the definitions written down once.

Definitions (a = actual, f = forecast, y = the training series before the forecast origin):

- WAPE  = sum|a - f| / sum|a|. Volume-weighted, so a zero actual adds error without dividing by zero.
          Undefined (NaN) when every actual is zero.
- MASE  = mean|a - f| / scale, scale = mean|y_t - y_{t-7}| over the training series (weekly seasonal
          naive, in-sample, m = 7). Per series; a series whose scale is 0 (constant weekly pattern, e.g.
          never sold) is NaN and left out of the average. `mase` averages the per-series values.
- RMSSE = sqrt(mean (a - f)^2 / mean (y_t - y_{t-7})^2), the M5 form but with the same weekly seasonal
          scale as MASE, per series and averaged like MASE.
- bias  = sum(f - a) / sum(a): positive means over-forecasting; NaN when every actual is zero.
- pinball(q) = mean(max(q (a - f), (q - 1)(a - f))): mean quantile loss in demand units.
- coverage = share of actuals with p_lo <= a <= p_hi (inclusive at both ends).

Missing values (NaN) in actuals, e.g. stock-out days whose zero is not demand, are ignored by every
metric. Polars versions of the same numbers live in `models.backtest`, which tests against these.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

SEASON = 7


def _pair(actual: ArrayLike, forecast: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Float arrays with the positions where either side is NaN removed."""
    a = np.asarray(actual, dtype=float)
    f = np.asarray(forecast, dtype=float)
    if a.shape != f.shape:
        raise ValueError(f"metrics: actual shape {a.shape} differs from forecast shape {f.shape}")
    keep = ~(np.isnan(a) | np.isnan(f))
    return a[keep], f[keep]


def wape(actual: ArrayLike, forecast: ArrayLike) -> float:
    """Weighted absolute percentage error: sum|a-f| / sum|a| (NaN when all actuals are zero)."""
    a, f = _pair(actual, forecast)
    denom = np.abs(a).sum()
    return float(np.abs(a - f).sum() / denom) if denom > 0 else float("nan")


def bias(actual: ArrayLike, forecast: ArrayLike) -> float:
    """Relative bias sum(f-a)/sum(a): > 0 over-forecasts (NaN when all actuals are zero)."""
    a, f = _pair(actual, forecast)
    denom = a.sum()
    return float((f - a).sum() / denom) if denom > 0 else float("nan")


def seasonal_scale(history: ArrayLike, season: int = SEASON, power: int = 1) -> float:
    """Mean |y_t - y_{t-season}|**power over a training series (NaN-aware; NaN if no pair exists)."""
    y = np.asarray(history, dtype=float)
    if y.size <= season:
        return float("nan")
    diff = np.abs(y[season:] - y[:-season]) ** power
    diff = diff[~np.isnan(diff)]
    return float(diff.mean()) if diff.size else float("nan")


def mase_series(actual: ArrayLike, forecast: ArrayLike, history: ArrayLike, season: int = SEASON) -> float:
    """MASE of one series: MAE over the weekly seasonal-naive in-sample MAE (NaN when that scale is 0)."""
    a, f = _pair(actual, forecast)
    scale = seasonal_scale(history, season)
    if not a.size or not np.isfinite(scale) or scale == 0:
        return float("nan")
    return float(np.abs(a - f).mean() / scale)


def rmsse_series(actual: ArrayLike, forecast: ArrayLike, history: ArrayLike, season: int = SEASON) -> float:
    """RMSSE of one series with the weekly seasonal scale (NaN when that scale is 0)."""
    a, f = _pair(actual, forecast)
    scale = seasonal_scale(history, season, power=2)
    if not a.size or not np.isfinite(scale) or scale == 0:
        return float("nan")
    return float(np.sqrt(((a - f) ** 2).mean() / scale))


def mase(
    actuals: Sequence[ArrayLike], forecasts: Sequence[ArrayLike], histories: Sequence[ArrayLike]
) -> float:
    """Mean of per-series MASE over series with a defined scale."""
    values = [mase_series(a, f, h) for a, f, h in zip(actuals, forecasts, histories, strict=True)]
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def rmsse(
    actuals: Sequence[ArrayLike], forecasts: Sequence[ArrayLike], histories: Sequence[ArrayLike]
) -> float:
    """Mean of per-series RMSSE over series with a defined scale."""
    values = [rmsse_series(a, f, h) for a, f, h in zip(actuals, forecasts, histories, strict=True)]
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def pinball(actual: ArrayLike, forecast: ArrayLike, q: float) -> float:
    """Mean pinball (quantile) loss of forecast quantile `q` in demand units."""
    if not 0 < q < 1:
        raise ValueError(f"metrics.pinball: quantile must be in (0, 1), got {q}")
    a, f = _pair(actual, forecast)
    if not a.size:
        return float("nan")
    diff = a - f
    return float(np.maximum(q * diff, (q - 1) * diff).mean())


def coverage(actual: ArrayLike, lower: ArrayLike, upper: ArrayLike) -> float:
    """Share of actuals inside [lower, upper], both ends inclusive."""
    a = np.asarray(actual, dtype=float)
    lo = np.asarray(lower, dtype=float)
    hi = np.asarray(upper, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(lo) | np.isnan(hi))
    if not keep.any():
        return float("nan")
    return float(((a[keep] >= lo[keep]) & (a[keep] <= hi[keep])).mean())
