"""Jobs and the nightly schedule, named the way an analyst talks about them."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from pipelines.core.settings import get_settings

ingest_selection = dg.AssetSelection.groups("ingest") | dg.AssetSelection.assets(
    ["decisions", "sales_spike_alerts"]
)

nightly_job = dg.define_asset_job(
    name="nightly_shop_refresh",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(["decisions", "sales_spike_alerts"]),
    description=(
        "Everything for one new day: ingest the day's landing files, rebuild the marts with their tests, "
        "forecast demand, plan replenishment and product selection, and write the decision report."
    ),
    tags={"shoplens/kind": "nightly"},
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


all_jobs = [nightly_job, ingest_job]
schedules = [nightly_schedule]
