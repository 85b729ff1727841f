"""The landing-folder sensor: ingest files that arrive during the day.

Stateless by design: a landing file newer than the raw partition built from it needs ingesting. So a
restarted daemon, a re-delivered file or a cleared cursor all end in the same place, and the run key
(day + newest file time) keeps one delivery from starting two runs.
"""

from collections import defaultdict
from pathlib import Path

import dagster as dg

from pipelines.core.ingest import DAY_IN_NAME, RAW_PART
from pipelines.core.schemas import DAILY_TABLES
from pipelines.core.settings import get_settings
from pipelines.jobs import ingest_job

MAX_RUNS_PER_TICK = 31


def stale_days(landing: Path, raw: Path) -> dict[str, int]:
    """Days whose landing files are newer than their raw partition: {day: newest landing mtime_ns}."""
    stale: dict[str, int] = defaultdict(int)
    for table in DAILY_TABLES:
        folder = landing / table
        if not folder.is_dir():
            continue
        for path in folder.glob(f"{table}_*.csv"):
            m = DAY_IN_NAME.search(path.name)
            if not m:
                continue
            day = m.group(1)
            mtime = path.stat().st_mtime_ns
            target = raw / table / f"date={day}" / RAW_PART
            qtarget = raw / "_quarantine" / table / f"date={day}" / RAW_PART
            built = max(
                (p.stat().st_mtime_ns for p in (target, qtarget) if p.exists()),
                default=-1,
            )
            if mtime > built:
                stale[day] = max(stale[day], mtime)
    return dict(stale)


@dg.sensor(
    name="landing_folder_sensor",
    job=ingest_job,
    minimum_interval_seconds=60,
    description="Watches the landing folder and ingests each day whose files changed since they were ingested.",
)
def landing_sensor(context: dg.SensorEvaluationContext):
    settings = get_settings()
    stale = stale_days(settings.landing_dir, settings.raw_dir)
    if not stale:
        return dg.SkipReason("no new or changed landing files")
    newest_first = sorted(stale, reverse=True)[:MAX_RUNS_PER_TICK]
    context.log.info(f"{len(stale)} day(s) with new landing files; requesting {len(newest_first)}")
    for day in newest_first:
        yield dg.RunRequest(
            run_key=f"landing-{day}-{stale[day]}", partition_key=day, tags={"shoplens/day": day}
        )
