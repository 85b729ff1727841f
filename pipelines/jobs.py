"""Jobs and the nightly schedule, named the way an analyst talks about them."""

import os
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from pipelines.core.settings import get_settings
from pipelines.partitions import category_partitions

ingest_selection = dg.AssetSelection.groups("ingest") | dg.AssetSelection.assets(
    ["decisions", "sales_spike_alerts"]
)

# Assets that fit models to judge them (several fits each): weekly, with the retraining, not nightly.
# The CLV holdout check joined them when the large benchmark's nightly spent 22 s refitting it every night.
WEEKLY_ONLY = dg.AssetSelection.assets(
    ["decisions", "forecast_backtest"],
    ["decisions", "replenishment_simulation"],
    ["decisions", "clv_calibration"],
)
MODEL = dg.AssetSelection.assets(["decisions", "demand_model"])
REPORT = dg.AssetSelection.assets(["reports", "decision_report"])
INTRADAY_ONLY = dg.AssetSelection.assets(["decisions", "sales_spike_alerts"])
# Partitioned by category, not by day: its own job, one run per category (a job has one partitioning).
FANOUT = dg.AssetSelection.assets(["decisions", "category_demand_forecast"])

nightly_job = dg.define_asset_job(
    name="nightly_shop_refresh",
    selection=dg.AssetSelection.all() - INTRADAY_ONLY - WEEKLY_ONLY - FANOUT,
    description=(
        "Everything for one new day: ingest the day's landing files, rebuild the marts with their tests, "
        "forecast demand with the trained model (retrained only when it is a week old or missing), plan "
        "replenishment and product selection, and write the decision report."
    ),
    tags={"shoplens/kind": "nightly"},
)

weekly_job = dg.define_asset_job(
    name="weekly_model_review",
    selection=MODEL | WEEKLY_ONLY | REPORT,
    description=(
        "Retrain the demand model on the published marts, backtest it against the baselines, replay the "
        "replenishment policy against the shop's rule, and refresh the report with the results."
    ),
    tags={"shoplens/kind": "weekly"},
)

ingest_job = dg.define_asset_job(
    name="ingest_new_landing_files",
    selection=ingest_selection,
    description="Validate and publish landing files that arrived during the day (started by the landing sensor).",
    tags={"shoplens/kind": "intraday"},
)


@dg.schedule(
    name="nightly_at_2am",
    job=nightly_job,
    cron_schedule="0 2 * * *",
    execution_timezone=get_settings().timezone,
    description="Every night at 02:00 shop time, refresh the whole graph for the day that just ended.",
)
def nightly_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    tz = ZoneInfo(get_settings().timezone)
    tick = context.scheduled_execution_time or datetime.now(tz)
    day = (tick.astimezone(tz) - timedelta(days=1)).date().isoformat()
    return dg.RunRequest(run_key=f"nightly-{day}", partition_key=day, tags={"shoplens/day": day})


@dg.schedule(
    name="weekly_retrain_sunday_4am",
    job=weekly_job,
    cron_schedule="0 4 * * 0",
    execution_timezone=get_settings().timezone,
    description="Every Sunday at 04:00 shop time (after the nightly run): retrain, backtest, replay.",
)
def weekly_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    tick = context.scheduled_execution_time or datetime.now(ZoneInfo(get_settings().timezone))
    return dg.RunRequest(
        run_key=f"weekly-{tick.date().isoformat()}",
        run_config={"ops": {"decisions__demand_model": {"config": {"retrain": "always"}}}},
    )


EXECUTORS = {
    "multiprocess": ("dagster", "multiprocess_executor", "dagster"),
    "celery": ("dagster_celery", "celery_executor", "dagster-celery"),
    "k8s": ("dagster_k8s", "k8s_job_executor", "dagster-k8s"),
}


def fanout_executor(name: str | None = None) -> dg.ExecutorDefinition:
    """The fan-out's executor, chosen by the deployment (SHOPLENS_EXECUTOR), not by editing code.

    multiprocess (default): each step a process on this machine. celery: steps on Celery workers
    (dagster-celery). k8s: each step a Kubernetes Job (dagster-k8s). docs/deployment.md has the settings.
    """
    import importlib

    name = name or os.environ.get("SHOPLENS_EXECUTOR", "multiprocess")
    if name not in EXECUTORS:
        raise ValueError(f"SHOPLENS_EXECUTOR={name!r}: use one of {', '.join(EXECUTORS)}")
    module, attr, package = EXECUTORS[name]
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as err:
        raise ImportError(
            f"SHOPLENS_EXECUTOR={name} needs the package {package} in the deployment's image: pip install {package}"
        ) from err


forecast_fanout_job = dg.define_asset_job(
    name="forecast_by_category",
    selection=FANOUT,
    partitions_def=category_partitions,
    # Each step in its own process here; a deployment sets SHOPLENS_EXECUTOR=celery or k8s
    # (docs/deployment.md) and nothing in the assets changes.
    executor_def=fanout_executor(),
    description=(
        "The demand forecast for one product category (a partition per category): the fan-out for a shop "
        "too big for one forecasting step. Launch all categories as a backfill (UI: Materialize all, or "
        "`python -m pipelines.fanout`); runs execute in parallel up to the instance's run concurrency."
    ),
    tags={"shoplens/kind": "fanout"},
)

all_jobs = [nightly_job, weekly_job, ingest_job, forecast_fanout_job]
schedules = [nightly_schedule, weekly_schedule]
