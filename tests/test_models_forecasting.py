"""Global forecaster, baselines, censoring, calendar features and a small backtest on synthetic series."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from models.backtest import backtest, goal_report, sample_series, wide
from models.forecasting import (
    MODEL_GLOBAL,
    MODEL_MA,
    MODEL_SNAIVE,
    ForecastConfig,
    GlobalForecaster,
    baseline_forecasts,
    build_panel,
    calendar_features,
    forecast,
    prophet_holidays,
    sba_path,
)
from models.synthetic_series import generate_shop, zero_share_by_sku

FAST = ForecastConfig(max_iter=40, min_samples_leaf=50, use_prophet=False, n_threads=1)


@pytest.fixture(scope="module")
def shop():  # noqa: ANN201
    return generate_shop(n_skus=40, n_days=420, seed=3)


def _series(
    values: list[float], sku: str = "A", start: dt.date = dt.date(2024, 1, 1), **extra: object
) -> pl.DataFrame:
    n = len(values)
    return pl.DataFrame(
        {
            "sku": sku,
            "category": "toys",
            "date": [start + dt.timedelta(days=k) for k in range(n)],
            "units": [float(v) for v in values],
            "avg_unit_price": 10.0,
            "discount_rate": 0.0,
            **extra,
        }
    )


def test_synthetic_shop_is_realistic_and_deterministic(shop) -> None:  # noqa: ANN001
    zero = zero_share_by_sku(shop.demand)["zero_share"]
    assert 0.2 <= zero.median() <= 0.8  # the architecture's aim for the median SKU
    assert (zero > 0.5).any() and (zero < 0.2).any()  # intermittent and smooth SKUs both present
    assert shop.demand.filter(pl.col("stockout"))["units"].sum() == 0
    assert set(shop.calendar["event"]) == {"spring_festival", "618", "double_11", "double_12"}
    again = generate_shop(n_skus=40, n_days=420, seed=3)
    assert again.demand.equals(shop.demand)


def test_panel_censors_stockout_days_and_validates() -> None:
    df = _series([1, 2, 0, 4], stockout=[False, False, True, False])
    panel = build_panel(df, horizon=2)
    assert np.isnan(panel.y[0, 2]) and panel.units[0, 2] == 0  # censored for learning, kept as observed
    assert panel.y.shape == (1, 6) and np.isnan(panel.y[0, 4:]).all()
    with pytest.raises(ValueError, match="units >= 0"):
        build_panel(_series([1, -1]), 2)
    with pytest.raises(ValueError, match="duplicate"):
        build_panel(pl.concat([_series([1, 2]), _series([1, 2])]), 2)
    with pytest.raises(ValueError, match=r"1 duplicate .*sku=A date=2024-01-02"):
        build_panel(pl.concat([_series([1, 2]), _series([5], start=dt.date(2024, 1, 2))]), 2)
    with pytest.raises(ValueError, match="missing required column"):
        build_panel(_series([1, 2]).drop("discount_rate"), 2)


def test_sba_by_hand() -> None:
    y = np.array([[0, 3, 0, 0, 0, 1, np.nan]], dtype=float)
    path = sba_path(y, alpha=0.1)
    assert path[0, 0] == 0  # nothing seen yet
    assert path[0, 1] == pytest.approx(0.95 * 3 / 2)  # first demand: size 3 after an interval of 2 days
    # second demand after 4 days: size 3 + 0.1(1 - 3) = 2.8, interval 2 + 0.1(4 - 2) = 2.2
    assert path[0, 5] == pytest.approx(0.95 * 2.8 / 2.2)
    assert path[0, 6] == pytest.approx(path[0, 5])  # a censored day changes nothing


def test_calendar_features_by_hand() -> None:
    dates = np.datetime64("2024-11-09") + np.arange(4)
    cal = pl.DataFrame({"date": [dt.date(2024, 11, 11)], "event": ["double_11"]})
    x, names = calendar_features(dates, cal)
    assert names == ["event_double_11", "days_to_double_11", "days_since_double_11"]
    assert x[:, 0].tolist() == [0, 0, 1, 0]
    assert x[:, 1].tolist() == [2, 1, 0, 60]  # no later occurrence: capped
    assert x[:, 2].tolist() == [30, 30, 0, 1]


def test_baselines_by_hand() -> None:
    week = [1, 2, 3, 4, 5, 6, 7]
    df = _series(week * 4)
    out = baseline_forecasts(df, horizon=10, window=28)
    sn = out.filter(pl.col("model") == MODEL_SNAIVE).sort("date")
    ma = out.filter(pl.col("model") == MODEL_MA).sort("date")
    assert sn["p50"].to_list() == [1, 2, 3, 4, 5, 6, 7, 1, 2, 3]  # repeats the last week
    assert ma["p50"].to_list() == [4.0] * 10  # mean of the last 28 days
    assert (sn["p10"] <= sn["p50"]).all() and (sn["p50"] <= sn["p90"]).all()
    assert ma["p10"][0] == pytest.approx(np.quantile(week * 4, 0.1))


def test_forecast_shape_order_determinism_and_progress(shop) -> None:  # noqa: ANN001
    messages: list[str] = []
    out = forecast(
        shop.demand, shop.calendar, horizon=28, use_prophet=False, config=FAST, progress=messages.append
    )
    n_skus = shop.demand["sku"].n_unique()
    assert out.columns == ["sku", "date", "p10", "p50", "p90", "mean", "model"]
    assert out.height == n_skus * 28
    last = shop.demand["date"].max()
    assert out["date"].min() == last + dt.timedelta(days=1)
    assert out["date"].max() == last + dt.timedelta(days=28)
    assert (out["p10"] >= 0).all() and (out["p10"] <= out["p50"]).all() and (out["p50"] <= out["p90"]).all()
    assert set(out["model"]) <= {MODEL_GLOBAL, "sba"}
    assert any(f"of {n_skus} SKUs" in m for m in messages)
    again = forecast(shop.demand, shop.calendar, horizon=28, use_prophet=False, config=FAST)
    assert again.equals(out)


def test_stockout_days_do_not_drag_the_forecast_down() -> None:
    """A SKU selling ~6/day whose last 10 days were stocked out: its zeros must not read as no demand."""
    rng = np.random.default_rng(0)
    frames = []
    for k in range(12):
        units = rng.poisson(6, 200).astype(float)
        stockout = np.zeros(200, dtype=bool)
        if k == 0:
            units[-10:] = 0
            stockout[-10:] = True
        frames.append(_series(units.tolist(), sku=f"S{k:02d}", stockout=stockout.tolist()))
    out = forecast(pl.concat(frames), None, horizon=14, use_prophet=False, config=FAST)
    censored = out.filter(pl.col("sku") == "S00")["mean"].mean()
    assert censored > 4.0  # near 6, far from the observed zeros


def test_fit_then_predict_at_a_later_origin(shop) -> None:  # noqa: ANN001
    last = shop.demand["date"].max()
    fit_until = last - dt.timedelta(days=35)
    model = GlobalForecaster(FAST).fit(shop.demand, shop.calendar, fit_until=fit_until)
    later = model.predict(fit_until + dt.timedelta(days=7))
    assert later["date"].min() == fit_until + dt.timedelta(days=8)
    with pytest.raises(ValueError, match="origin"):
        model.predict(fit_until - dt.timedelta(days=1))


def test_short_history_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="too short"):
        forecast(_series([1.0] * 60), None, horizon=28, use_prophet=False, config=FAST)


def test_prophet_aggregate_feature_runs_quietly(caplog: pytest.LogCaptureFixture) -> None:
    small = generate_shop(n_skus=12, n_days=400, seed=5, n_categories=2)
    with caplog.at_level(logging.INFO):
        out = forecast(small.demand, small.calendar, horizon=14, use_prophet=True, config=FAST)
    assert out.height == 12 * 14
    assert "global_hgb+prophet" in set(out["model"]) or set(out["model"]) == {"sba"}
    assert logging.getLogger("cmdstanpy").disabled
    assert not [r for r in caplog.records if r.name.startswith("cmdstanpy")]


def test_backtest_beats_seasonal_naive_and_is_calibrated() -> None:
    shop = generate_shop(n_skus=60, n_days=500, seed=11)
    metrics = backtest(shop.demand, shop.calendar, folds=2, horizon=28, config=FAST)
    assert set(metrics.columns) == {"fold", "segment", "model", "metric", "value"}
    assert set(metrics["fold"]) == {"1", "2", "all"}
    assert set(metrics["segment"]) == {"all", "smooth", "intermittent"}
    w = wide(metrics)
    assert {
        "wape",
        "mase",
        "rmsse",
        "bias",
        "pinball_p10",
        "pinball_p50",
        "pinball_p90",
        "coverage_p10_p90",
    } <= set(w.columns)
    goals = goal_report(metrics)
    assert (
        goals["wape"] < goals["wape_seasonal_naive"]
    )  # on 60 SKUs and a fast config; tuned figures in the report
    assert goals["mase"] < 1.0
    assert 0.7 <= goals["coverage"] <= 0.9


def test_calendar_with_event_windows_like_the_dbt_seed() -> None:
    """The seed has one row per window day with days_from_event; main days drive days-to/since."""
    cal = pl.DataFrame(
        {
            "date": [dt.date(2024, 11, 11) + dt.timedelta(days=k) for k in range(-2, 2)],
            "event": "singles_day_1111",
            "days_from_event": [-2, -1, 0, 1],
        }
    )
    dates = np.datetime64("2024-11-08") + np.arange(6)  # 8th .. 13th
    x, _ = calendar_features(dates, cal)
    assert x[:, 0].tolist() == [0, 1, 1, 1, 1, 0]  # inside the window
    assert x[:, 1].tolist() == [3, 2, 1, 0, 60, 60]  # to the main day only
    hol = prophet_holidays(cal)
    assert hol.height == 1
    assert hol.row(0, named=True)["lower_window"] == -2 and hol.row(0, named=True)["upper_window"] == 1


def test_the_projects_holiday_seed_is_understood() -> None:
    seed = Path(__file__).resolve().parents[1] / "dbt_project" / "seeds" / "holiday_calendar.csv"
    if not seed.exists():
        pytest.skip(f"no holiday seed at {seed}")
    cal = pl.read_csv(seed, try_parse_dates=True)
    hol = prophet_holidays(cal)
    per_event = hol.group_by("holiday").len()
    # one Prophet holiday row per occurrence (a year each), not one per window day
    assert per_event["len"].max() <= cal["date"].dt.year().n_unique()
    x, names = calendar_features(np.datetime64("2024-01-01") + np.arange(366), cal)
    assert x.shape == (366, 3 * cal["event"].n_unique()) and np.isfinite(x).all()


def test_mart_stockout_column_name_is_accepted() -> None:
    df = _series([1, 2, 0, 4], is_stockout=[False, False, True, False])
    assert np.isnan(build_panel(df, horizon=2).y[0, 2])


def test_saved_model_forecasts_later_days_without_refitting(shop, tmp_path: Path) -> None:  # noqa: ANN001
    """Train weekly, forecast daily: a stored model gives the same forecast as the in-memory one."""
    from models.forecasting import forecast_with, load_model, save_model

    last = shop.demand["date"].max()
    fit_until = last - dt.timedelta(days=7)
    fitted = GlobalForecaster(FAST).fit(shop.demand.filter(pl.col("date") <= fit_until), shop.calendar)
    path = tmp_path / "models" / "demand_model.joblib"
    save_model(fitted.trained(), path)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # written atomically
    trained = load_model(path)
    assert trained.history_end == fit_until and trained.serves_until == fit_until + dt.timedelta(days=14)

    same_day = forecast_with(trained, shop.demand.filter(pl.col("date") <= fit_until), shop.calendar)
    assert same_day.equals(fitted.predict())

    # A week later, with the week's sales known: the origin moves, nothing is refitted.
    week_later = forecast_with(trained, shop.demand, shop.calendar)
    assert week_later["date"].min() == last + dt.timedelta(days=1)
    assert week_later["sku"].n_unique() == shop.demand["sku"].n_unique()
    assert (week_later["p10"] <= week_later["p50"]).all() and (week_later["p50"] <= week_later["p90"]).all()
    # The forecast reacts to the new week: it differs from the in-memory model's forecast at the old origin.
    assert not week_later["mean"].equals(same_day["mean"])


def test_saved_model_serves_new_skus_and_refuses_stale_origins(shop, tmp_path: Path) -> None:  # noqa: ANN001
    from models.forecasting import forecast_with, load_model, save_model

    last = shop.demand["date"].max()
    history = shop.demand.filter(pl.col("date") <= last - dt.timedelta(days=20))
    trained = GlobalForecaster(FAST).fit(history, shop.calendar).trained()
    path = tmp_path / "m.joblib"
    save_model(trained, path)
    # A SKU of a category the model never saw, launched after training.
    newcomer = _series(
        [3.0, 0.0, 5.0, 2.0, 4.0, 1.0, 6.0] * 3, sku="NEW-1", start=last - dt.timedelta(days=20)
    ).with_columns(pl.lit("brand-new-category").alias("category"))
    recent = pl.concat(
        [
            shop.demand.filter(pl.col("date") <= last - dt.timedelta(days=7)),
            newcomer.filter(pl.col("date") <= last - dt.timedelta(days=7)),
        ],
        how="diagonal_relaxed",
    )
    out = forecast_with(load_model(path), recent, shop.calendar)
    new = out.filter(pl.col("sku") == "NEW-1")
    assert new.height == FAST.horizon and 0.5 < new["mean"].mean() < 10
    with pytest.raises(ValueError, match="retrain"):
        forecast_with(trained, shop.demand, shop.calendar)  # 20 days after training: past serves_until
    (tmp_path / "junk.joblib").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.joblib.*retrain"):
        load_model(tmp_path / "junk.joblib")


def test_backtest_sample_keeps_category_shares_and_is_repeatable() -> None:
    days = pl.date_range(dt.date(2024, 1, 1), dt.date(2024, 1, 3), eager=True)
    sizes = {"home": 600, "toys": 300, "books": 97}
    skus = pl.DataFrame(
        {
            "sku": [f"{cat}-{i:04d}" for cat, n in sizes.items() for i in range(n)],
            "category": [cat for cat, n in sizes.items() for _ in range(n)],
        }
    )
    demand = skus.join(pl.DataFrame({"date": days}), how="cross").with_columns(pl.lit(1.0).alias("units"))
    sample = sample_series(demand, 100, seed=3)
    per_category = dict(sample.group_by("category").agg(pl.col("sku").n_unique()).iter_rows())
    assert sum(per_category.values()) == 100
    assert per_category == {"home": 60, "toys": 30, "books": 10}  # 60.2, 30.1, 9.7: largest remainder
    assert sample.group_by("sku").len()["len"].unique().to_list() == [3]  # whole series, every day kept
    again = sample_series(demand.sample(fraction=1.0, shuffle=True, seed=9), 100, seed=3)
    assert sorted(again["sku"].unique().to_list()) == sorted(sample["sku"].unique().to_list())
    other = sample_series(demand, 100, seed=4)
    assert set(other["sku"].unique().to_list()) != set(sample["sku"].unique().to_list())
    assert sample_series(demand, 5000).height == demand.height
    assert sample_series(demand, 0).height == demand.height
