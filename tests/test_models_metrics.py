"""Metrics on hand-computed series, and the Polars backtest scorer agreeing with them."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from models import metrics
from models.backtest import score, series_scales

HISTORY = [1, 2, 3, 4, 5, 6, 7, 2, 2, 3, 4, 5, 6, 9]  # lag-7 diffs: 1, 0, 0, 0, 0, 0, 2


def test_wape_and_bias_by_hand() -> None:
    a, f = [1, 2, 3, 0], [2, 2, 1, 1]
    assert metrics.wape(a, f) == pytest.approx(4 / 6)  # |err| 1+0+2+1 over 6 units
    assert metrics.bias(a, f) == pytest.approx(0.0)  # +1 +0 -2 +1
    assert metrics.bias([2, 2], [3, 4]) == pytest.approx(3 / 4)


def test_zero_actuals_are_undefined_not_infinite() -> None:
    assert math.isnan(metrics.wape([0, 0], [1, 2]))
    assert math.isnan(metrics.bias([0, 0], [1, 2]))


def test_nan_actuals_are_ignored() -> None:
    assert metrics.wape([1, np.nan, 3], [2, 100, 3]) == pytest.approx(1 / 4)
    assert metrics.coverage([1, np.nan, 5], [0, 0, 0], [2, 2, 2]) == pytest.approx(0.5)


def test_mase_and_rmsse_with_weekly_scale_by_hand() -> None:
    assert metrics.seasonal_scale(HISTORY) == pytest.approx(3 / 7)
    # MAE 1.5 over scale 3/7
    assert metrics.mase_series([3, 3], [2, 5], HISTORY) == pytest.approx(3.5)
    # MSE (1 + 4) / 2 = 2.5 over the squared-diff scale 5/7
    assert metrics.rmsse_series([3, 3], [2, 5], HISTORY) == pytest.approx(math.sqrt(3.5))
    # average over series skips the one whose scale is 0 (flat weekly pattern)
    flat = [1, 2, 3, 4, 5, 6, 7] * 2
    assert math.isnan(metrics.mase_series([1], [2], flat))
    assert metrics.mase([[3, 3], [1]], [[2, 5], [2]], [HISTORY, flat]) == pytest.approx(3.5)


def test_pinball_by_hand() -> None:
    # under-forecast by 2 at q=0.9 costs 1.8, over-forecast by 2 costs 0.2
    assert metrics.pinball([10, 10], [8, 12], 0.9) == pytest.approx(1.0)
    assert metrics.pinball([10], [8], 0.5) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="quantile"):
        metrics.pinball([1], [1], 1.5)


def test_coverage_is_inclusive() -> None:
    assert metrics.coverage([0, 2, 4, 5], [0, 0, 0, 0], [4, 4, 4, 4]) == pytest.approx(0.75)


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        metrics.wape([1, 2], [1])


def test_polars_scorer_matches_numpy_metrics() -> None:
    rng = np.random.default_rng(3)
    n_days = 28
    skus = ["A", "B", "C"]
    frames = []
    hist = {s: rng.poisson(3, 60).astype(float) for s in skus}
    for s in skus:
        a = rng.poisson(3, n_days).astype(float)
        p50 = np.full(n_days, 3.0)
        frames.append(
            pl.DataFrame(
                {
                    "sku": s,
                    "date": [dt.date(2024, 3, 1) + dt.timedelta(days=k) for k in range(n_days)],
                    "actual": a,
                    "p10": p50 - 2,
                    "p50": p50,
                    "p90": p50 + 2,
                    "mean": p50 + 0.2,
                    "model": "m",
                    "scale_mae": metrics.seasonal_scale(hist[s]),
                    "scale_mse": metrics.seasonal_scale(hist[s], power=2),
                    "segment": "smooth",
                    "fold": "1",
                    "origin": dt.date(2024, 2, 29),
                }
            )
        )
    fc = pl.concat(frames)
    m = score(fc).filter(pl.col("fold") == "1", pl.col("segment") == "all")
    val = dict(zip(m["metric"], m["value"], strict=True))
    a_all, f_all = fc["actual"].to_numpy(), fc["p50"].to_numpy()
    assert val["wape"] == pytest.approx(metrics.wape(a_all, f_all))
    assert val["bias"] == pytest.approx(metrics.bias(a_all, f_all))
    assert val["pinball_p90"] == pytest.approx(metrics.pinball(a_all, fc["p90"].to_numpy(), 0.9))
    assert val["coverage_p10_p90"] == pytest.approx(metrics.coverage(a_all, fc["p10"], fc["p90"]))
    per = [fc.filter(pl.col("sku") == s) for s in skus]
    assert val["mase"] == pytest.approx(
        metrics.mase([p["actual"] for p in per], [p["p50"] for p in per], [hist[s] for s in skus])
    )
    assert val["rmsse"] == pytest.approx(
        metrics.rmsse([p["actual"] for p in per], [p["p50"] for p in per], [hist[s] for s in skus])
    )


def test_series_scales_skip_stockout_days() -> None:
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=k) for k in range(14)]
    demand = pl.DataFrame(
        {"sku": "A", "date": days, "units": [float(v) for v in HISTORY], "stockout": [False] * 13 + [True]}
    )
    s = series_scales(demand, days[-1])
    # the censored last day drops the diff |9 - 7|: remaining diffs 1, 0, 0, 0, 0, 0
    assert s["scale_mae"][0] == pytest.approx(1 / 6)
