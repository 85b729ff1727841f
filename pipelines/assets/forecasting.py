"""Demand forecasts per SKU and their rolling-origin backtest against the baselines."""

import os
import time
import urllib.parse
from pathlib import Path
from typing import Literal

import dagster as dg
import polars as pl

from models import backtest as bt
from models import forecasting as fc
from pipelines.assets.common import DECISIONS, OWNERS, PUBLISHED, md_preview, needs_marts, png_metadata
from pipelines.core.settings import get_settings
from pipelines.core.warehouse import connect, export, write_table
from pipelines.partitions import CATEGORY_PARTITIONS, category_partitions

HORIZON = 28
# The global model needs 56 days to learn from plus a calibration window of one horizon (models.forecasting).
MIN_TRAIN_DAYS = 56 + HORIZON + 1
# The holiday seed's event names -> the names the forecasting model gives its event features.
EVENT_NAMES = {
    "spring_festival": "spring_festival",
    "shopping_618": "618",
    "singles_day_1111": "double_11",
    "double_12": "double_12",
}


class ForecastSettings(dg.Config):
    horizon_days: int = HORIZON
    # Prophet on the total and per category (about 0.3 s a series). Unset: on, unless the environment
    # says SHOPLENS_USE_PROPHET=0 (the test suite does, to save time on the tiny shop).
    use_prophet: bool | None = None

    def prophet_enabled(self) -> bool:
        if self.use_prophet is not None:
            return self.use_prophet
        return os.environ.get("SHOPLENS_USE_PROPHET", "1") != "0"

    backtest_folds: int = 3
    # Backtest a seeded sample of this many SKUs (per category in proportion) when the shop has more;
    # 0 = every SKU. See models/backtest.py, "Series sample".
    backtest_max_skus: int = 5000


def load_demand(con, categories: list[str] | None = None) -> pl.DataFrame:
    """The model's input: daily units per SKU (zero-filled), price, promotion and stock-out flags
    (only the given categories' SKUs when `categories` is set: one partition of the fan-out)."""
    where = f"WHERE category IN ({', '.join('?' for _ in categories)})" if categories else ""
    return con.sql(
        f"""
        SELECT sku, category, date, units::DOUBLE AS units, avg_unit_price::DOUBLE AS avg_unit_price,
               coalesce(discount_rate, 0)::DOUBLE AS discount_rate, on_hand_eod, is_stockout AS stockout
        FROM main.fct_sku_daily_demand {where} ORDER BY sku, date
        """,
        params=categories or None,
    ).pl()


# What a forecast from the stored model reads: the published marts and the trained model.
FORECAST_DEPS = [
    PUBLISHED,
    dg.AssetKey("fct_sku_daily_demand"),
    dg.AssetKey("holiday_calendar"),
    dg.AssetKey(["decisions", "demand_model"]),
]


def load_calendar(con) -> pl.DataFrame:
    """One row per event day (the model applies its own window around each event)."""
    cal = con.sql("SELECT date, event FROM main.holiday_calendar WHERE days_from_event = 0").pl()
    return cal.with_columns(pl.col("event").replace(EVENT_NAMES))


def forecast_chart(history: pl.DataFrame, forecast: pl.DataFrame, path, top: int = 4):
    """Forecast band against the last 90 days of actuals for the top-selling SKUs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top_skus = (
        history.group_by("sku")
        .agg(pl.col("units").sum())
        .sort(["units", "sku"], descending=[True, False])
        .head(top)["sku"]
        .to_list()
    )
    fig, axes = plt.subplots(len(top_skus), 1, figsize=(8, 2.2 * len(top_skus)), sharex=True)
    axes = [axes] if len(top_skus) == 1 else axes
    last = history["date"].max()
    for ax, sku in zip(axes, top_skus, strict=True):
        h = history.filter((pl.col("sku") == sku) & (pl.col("date") > last - pl.duration(days=90)))
        f = forecast.filter(pl.col("sku") == sku)
        ax.plot(h["date"].to_list(), h["units"].to_list(), color="#333", lw=1, label="actual")
        ax.plot(f["date"].to_list(), f["p50"].to_list(), color="#1f77b4", lw=1.5, label="P50")
        ax.fill_between(
            f["date"].to_list(),
            f["p10"].to_list(),
            f["p90"].to_list(),
            color="#1f77b4",
            alpha=0.25,
            label="P10-P90",
        )
        ax.set_title(sku, fontsize=9, loc="left")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def model_path():
    """Where the trained demand model lives (under the data folder, beside the warehouse)."""
    return get_settings().data_dir / "models" / "demand_model.joblib"


class ModelSettings(ForecastSettings):
    # "auto": train when there is no usable model or the newest data is retrain_after_days past the model's
    # history (the nightly job); "always": train now (the weekly job's schedule).
    retrain: Literal["auto", "always"] = "auto"
    retrain_after_days: int = 7


def _why_retrain(config: ModelSettings, demand_end, use_prophet: bool) -> str | None:
    """The reason to train now, or None when the stored model can serve `demand_end`."""
    if config.retrain == "always":
        return "asked to (retrain=always, the weekly schedule)"
    path = model_path()
    if not path.exists():
        return f"no trained model at {path.name} yet"
    try:
        trained = fc.load_model(path)
    except ValueError as err:
        return str(err)
    cfg = trained.config
    if cfg.horizon != config.horizon_days or (trained.prophet_total is not None) != use_prophet:
        return f"settings changed (horizon {cfg.horizon}, prophet {trained.prophet_total is not None})"
    age = (demand_end - trained.history_end).days
    if age < 0:
        return f"the data now ends {demand_end}, before the model's history ({trained.history_end})"
    if age >= config.retrain_after_days:
        return f"the model is {age} days old (retrain after {config.retrain_after_days})"
    return None


@dg.asset(
    key=["decisions", "demand_model"],
    group_name="forecasting",
    deps=[PUBLISHED, dg.AssetKey("fct_sku_daily_demand"), dg.AssetKey("holiday_calendar")],
    kinds={"scikitlearn", "polars"},
    owners=OWNERS,
    pool="duckdb_writer",
    description=(
        "The trained demand model (data/models/demand_model.joblib): one global gradient-boosting model across "
        "all SKUs, conformally calibrated P10/P90, the intermittent-SKU check and Prophet's aggregate curves. "
        "Retrained weekly (schedule weekly_model_review) or when the nightly run finds it a week old or "
        "missing; otherwise kept, so daily runs only predict."
    ),
)
def demand_model(context: dg.AssetExecutionContext, config: ModelSettings) -> dg.MaterializeResult:
    with connect(log=context.log.info) as con:
        missing = needs_marts(con, ["fct_sku_daily_demand"])
        if missing:
            return _skipped(context, missing)
        demand_end = con.sql("SELECT max(date) FROM main.fct_sku_daily_demand").fetchall()[0][0]
        added = register_categories(context.instance, con)
        if added:
            context.log.info(
                f"registered {len(added)} new category partition(s) for the forecast fan-out: {added}"
            )
        use_prophet = config.prophet_enabled()
        reason = _why_retrain(config, demand_end, use_prophet)
        if reason is None:
            trained = fc.load_model(model_path())
            msg = (
                f"kept the model trained on history to {trained.history_end} "
                f"({(demand_end - trained.history_end).days} day(s) old; it serves origins to {trained.serves_until})"
            )
            context.log.info(msg)
            return dg.MaterializeResult(
                metadata={"retrained": False, "decision": msg, **_model_metadata(trained)}
            )
        demand = load_demand(con)
        calendar = load_calendar(con)
    context.log.info(f"training the demand model: {reason}")
    n_skus = demand["sku"].n_unique()
    started = time.time()
    cfg = fc.ForecastConfig(horizon=config.horizon_days, use_prophet=use_prophet)
    trained = fc.GlobalForecaster(cfg).fit(demand, calendar, progress=context.log.info).trained()
    seconds = time.time() - started
    fc.save_model(trained, model_path())
    return dg.MaterializeResult(
        metadata={
            "retrained": True,
            "decision": f"trained: {reason}",
            "train_seconds": round(seconds, 1),
            "train_sku_series_per_second": round(n_skus / max(seconds, 1e-9), 1),
            **_model_metadata(trained),
        }
    )


def _model_metadata(trained: fc.TrainedModel) -> dict:
    d = trained.diagnostics
    return {
        "model_path": dg.MetadataValue.path(str(model_path())),
        "history_end": str(trained.history_end),
        "serves_until": str(trained.serves_until),
        "skus_trained_on": int(d.get("skus", 0)),
        "train_rows": int(sum(d.get("train_rows", []))),
        "calibration_coverage_p10_p90": round(float(d.get("calibration_coverage", float("nan"))), 3),
        "intermittent_model": str(d.get("intermittent_model")),
    }


@dg.asset(
    key=["decisions", "demand_forecast"],
    group_name="forecasting",
    deps=FORECAST_DEPS,
    kinds={"scikitlearn", "polars", "duckdb"},
    owners=OWNERS,
    pool="duckdb_writer",
    description=(
        "Daily demand per SKU for the next 28 days with P10/P50/P90 from the trained demand model "
        "(decisions/demand_model), predicted from the newest day without refitting: lags, rolling means, "
        "calendar, price, promotion and event features at that day; stock-out days censored; SBA for "
        "intermittent SKUs where it won the calibration check."
    ),
)
def demand_forecast(context: dg.AssetExecutionContext, config: ForecastSettings) -> dg.MaterializeResult:
    with connect(log=context.log.info) as con:
        missing = needs_marts(con, ["fct_sku_daily_demand"])
        if missing:
            return _skipped(context, missing)
        demand = load_demand(con)
        calendar = load_calendar(con)
    path = model_path()
    if not path.exists():
        raise FileNotFoundError(
            f"no trained demand model at {path}: materialize decisions/demand_model first "
            "(the nightly and weekly jobs do)"
        )
    trained = fc.load_model(path)
    if trained.config.horizon != config.horizon_days:
        raise ValueError(
            f"the stored model forecasts {trained.config.horizon} days, this run asks for {config.horizon_days}: "
            "materialize decisions/demand_model with the same horizon_days"
        )
    started = time.time()
    n_skus = demand["sku"].n_unique()
    context.log.info(
        f"forecasting {n_skus} SKUs x {config.horizon_days} days from {demand['date'].max()} "
        f"with the model trained on history to {trained.history_end}"
    )
    forecast = fc.forecast_with(trained, demand, calendar, progress=context.log.info)
    seconds = time.time() - started
    write_table(forecast, "decisions", "demand_forecast")
    export(forecast, "demand_forecast")
    chart = DECISIONS.chart_path("demand_forecast_top_skus.png")
    forecast_chart(demand, forecast, chart)
    by_model = dict(forecast.group_by("model").agg(pl.col("sku").n_unique()).iter_rows())
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": forecast.height,
            "skus": n_skus,
            "horizon_days": config.horizon_days,
            "skus_by_model": dg.MetadataValue.json(by_model),
            "model_history_end": str(trained.history_end),
            "model_age_days": (demand["date"].max() - trained.history_end).days,
            "seconds": round(seconds, 1),
            "sku_series_per_second": round(n_skus / max(seconds, 1e-9), 1),
            "preview": md_preview(forecast),
            **png_metadata("forecast_vs_actuals", chart),
        }
    )


@dg.asset(
    key=["decisions", "forecast_backtest"],
    group_name="forecasting",
    deps=[PUBLISHED, dg.AssetKey("fct_sku_daily_demand"), dg.AssetKey("holiday_calendar")],
    kinds={"scikitlearn", "polars", "duckdb"},
    owners=OWNERS,
    pool="duckdb_writer",
    description=(
        "Rolling-origin backtest (3 folds of 28 days; a seeded sample of 5,000 SKUs in a larger shop): WAPE, MASE (weekly seasonal scale), RMSSE, bias, pinball "
        "loss and P10-P90 coverage for our model and the seasonal-naive and 28-day moving-average baselines."
    ),
)
def forecast_backtest(context: dg.AssetExecutionContext, config: ForecastSettings) -> dg.MaterializeResult:
    with connect(log=context.log.info) as con:
        missing = needs_marts(con, ["fct_sku_daily_demand"])
        if missing:
            return _skipped(context, missing)
        demand = load_demand(con)
        calendar = load_calendar(con)
    history_days = (demand["date"].max() - demand["date"].min()).days + 1
    folds = min(config.backtest_folds, (history_days - MIN_TRAIN_DAYS) // config.horizon_days)
    if folds < 1:
        return _skipped(
            context,
            [f"enough history ({history_days} days; a fold needs {MIN_TRAIN_DAYS} + {config.horizon_days})"],
        )
    if folds < config.backtest_folds:
        context.log.warning(
            f"{history_days} days of history: backtesting {folds} fold(s) instead of {config.backtest_folds}"
        )
    n_skus = demand["sku"].n_unique()
    demand = bt.sample_series(demand, config.backtest_max_skus)
    sampled = demand["sku"].n_unique()
    if sampled < n_skus:
        context.log.info(
            f"backtesting a seeded sample of {sampled:,} of {n_skus:,} SKUs, each category in proportion "
            "(backtest_max_skus; 0 = all)"
        )
    metrics = bt.backtest(
        demand, calendar, folds=folds, horizon=config.horizon_days, progress=context.log.info
    )
    write_table(metrics, "decisions", "forecast_backtest")
    export(metrics, "forecast_backtest")
    goals = bt.goal_report(metrics)
    table = bt.wide(metrics)
    context.log.info(f"backtest goals: {goals}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": metrics.height,
            "skus_backtested": sampled,
            "skus_in_shop": n_skus,
            "goals": dg.MetadataValue.json(
                {k: (float(v) if not isinstance(v, bool) else v) for k, v in goals.items()}
            ),
            "overall": md_preview(
                table.filter((pl.col("fold") == "all") & (pl.col("segment") == "all"))
                if "segment" in table.columns
                else table,
                rows=20,
            ),
        }
    )


# ------------------------------------------------------------------------------ the fan-out by category


def category_partition_key(category: str | None) -> str:
    """The category's partition key: its name, with what Dagster refuses in a key (control characters,
    '...') replaced, and no category shown as 'uncategorised'."""
    key = (category or "").strip() or "uncategorised"
    key = key.replace("...", "_")
    return "".join("_" if ord(ch) < 32 else ch for ch in key)


def shop_categories(con) -> dict[str, list[str]]:
    """{partition key: the category names it covers} for the categories in the published demand mart."""
    rows = con.sql("SELECT DISTINCT category FROM main.fct_sku_daily_demand ORDER BY category").fetchall()
    keys: dict[str, list[str]] = {}
    for (category,) in rows:
        keys.setdefault(category_partition_key(category), []).append(category)
    return keys


def register_categories(instance: dg.DagsterInstance, con) -> list[str]:
    """Add the shop's categories not yet known as partitions of the fan-out; return the ones added.

    Categories that left the shop keep their partition (and its history in the UI); their forecast
    file is removed by the next fan-out run of `python -m pipelines.fanout`.
    """
    wanted = sorted(shop_categories(con))
    known = set(instance.get_dynamic_partitions(CATEGORY_PARTITIONS))
    added = [k for k in wanted if k not in known]
    if added:
        instance.add_dynamic_partitions(CATEGORY_PARTITIONS, added)
    return added


def fanout_dir() -> Path:
    """The fan-out's output: a Parquet dataset with one folder per category (`category=<key>`, URL-quoted),
    readable as one table by DuckDB, Spark or Polars (hive layout) and from object storage alike."""
    return get_settings().data_dir / "forecasts" / "demand_forecast"


def category_forecast_path(key: str) -> Path:
    return fanout_dir() / f"category={urllib.parse.quote(key, safe='')}" / "part-0.parquet"


def forecast_category(con, trained: fc.TrainedModel, key: str, log=None) -> tuple[pl.DataFrame, int]:
    """The forecast of one category's SKUs with the shop's trained model: (rows, SKUs).

    Reads only that category's demand (bounded memory per step however many categories there are); the
    panel starts on the shop's first day so the rows equal the single-step forecast's for these SKUs.
    """
    names = shop_categories(con).get(key)
    if not names:
        raise ValueError(
            f"category partition '{key}' has no SKUs in main.fct_sku_daily_demand "
            f"(categories now: {', '.join(sorted(shop_categories(con))) or 'none'})"
        )
    start = con.sql("SELECT min(date) FROM main.fct_sku_daily_demand").fetchall()[0][0]
    demand = load_demand(con, names)
    calendar = load_calendar(con)
    forecast = fc.forecast_with(trained, demand, calendar, progress=log, start=start)
    return forecast.with_columns(pl.lit(key).alias("category")), demand["sku"].n_unique()


def write_parquet_atomic(frame: pl.DataFrame, target: Path) -> None:
    """Write to a temporary name in the target folder, then rename: readers never see half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        frame.write_parquet(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dg.asset(
    key=["decisions", "category_demand_forecast"],
    group_name="forecasting",
    partitions_def=category_partitions,
    deps=FORECAST_DEPS,
    kinds={"scikitlearn", "polars", "parquet"},
    owners=OWNERS,
    description=(
        "The demand forecast fanned out by product category: one partition per category, each predicting its "
        "SKUs with the trained model (the same rows as decisions/demand_forecast) into "
        "data/forecasts/demand_forecast/category=<name>/. It only reads the warehouse and writes its own "
        "file, so categories run in parallel (job forecast_by_category; `python -m pipelines.fanout`); "
        "docs/deployment.md shows the same on Celery or Kubernetes."
    ),
)
def category_demand_forecast(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    key = context.partition_key
    path = model_path()
    if not path.exists():
        raise FileNotFoundError(
            f"no trained demand model at {path}: materialize decisions/demand_model first"
        )
    trained = fc.load_model(path)
    started = time.time()
    # Read-only: any number of category steps may read the warehouse at once (DuckDB allows many
    # read-only processes, or one writer), so the fan-out needs no slot of the duckdb_writer pool.
    with connect(read_only=True, log=context.log.info) as con:
        missing = needs_marts(con, ["fct_sku_daily_demand"])
        if missing:
            return _skipped(context, missing)
        forecast, n_skus = forecast_category(con, trained, key, log=context.log.info)
    seconds = time.time() - started
    target = category_forecast_path(key)
    write_parquet_atomic(forecast, target)
    context.log.info(f"category {key}: {n_skus} SKUs, {forecast.height} rows -> {target}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": forecast.height,
            "skus": n_skus,
            "path": dg.MetadataValue.path(str(target)),
            "model_history_end": str(trained.history_end),
            "seconds": round(seconds, 2),
            "pid": os.getpid(),
        }
    )


def _skipped(context: dg.AssetExecutionContext, missing: list[str]) -> dg.MaterializeResult:
    msg = f"skipped: the marts {', '.join(missing)} were not built (the source lacks the tables they need)"
    context.log.warning(msg)
    return dg.MaterializeResult(metadata={"skipped": dg.MetadataValue.text(msg)})


forecasting_assets = [demand_model, demand_forecast, category_demand_forecast, forecast_backtest]
