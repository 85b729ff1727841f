"""The landing-folder sensor: ingest files that arrive during the day.

Stateless by design: a landing file newer than the raw partition built from it needs ingesting. So a
restarted daemon, a re-delivered file or a cleared cursor all end in the same place, and the run key
(day + newest file time) keeps one delivery from starting two runs.

Each tick also releases what dead runs hold (`release_dead_runs`): a run whose process was killed (SIGKILL,
out of memory, a reboot) stays STARTED and keeps its `duckdb_writer` pool slot, so every later run would
wait on the pool for ever.
"""

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import psutil

from pipelines.core.ingest import DAY_IN_NAME, RAW_PART
from pipelines.core.landing import csv_files, open_bytes
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
        # Not strict: x.csv beside x.csv.gz still requests the day's run, which names the pair and stops.
        for path in csv_files(folder, f"{table}_*", strict=False):
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
            if built < 0 and not _has_data_rows(path):
                continue  # a header-only file publishes no partition: without this it would stay stale for ever
            if mtime > built:
                stale[day] = max(stale[day], mtime)
    return dict(stale)


def _has_data_rows(path: Path) -> bool:
    """True when a landing CSV holds anything after its header line."""
    with open_bytes(path) as fh:
        fh.readline()
        return any(line.strip() for line in fh)


def _worker_alive(pid: int, started_at: float) -> bool:
    """True while the process that started a run still runs (a newer process reusing the pid does not count)."""
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and proc.create_time() <= started_at + 1
    except psutil.Error:
        return False


def release_dead_runs(instance: dg.DagsterInstance, log: Callable[[str], None] | None = None) -> list[str]:
    """Mark STARTED runs whose process is gone as failed and free their pool slots; returns their ids.

    Dagster frees a run's concurrency slots when the run ends. A killed run never ends: it stays STARTED
    and holds its `duckdb_writer` slot, and the daemon's run monitoring cannot tell (the default run
    launcher and in-process runs have no worker health check; `free_slots_after_run_end_seconds` only
    frees slots of finished runs). The run's process id comes from its RUN_START event, so this only
    acts on a local SQLite instance, where every run worker lives on this machine.
    """
    from dagster._core.storage.runs import SqliteRunStorage

    if not isinstance(instance.run_storage, SqliteRunStorage):
        return []
    released = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        run = record.dagster_run
        starts = instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.RUN_START, limit=1
        ).records
        event = starts[0].event_log_entry if starts else None
        pid = event.dagster_event.pid if event and event.dagster_event else None
        if pid is None or _worker_alive(pid, event.timestamp):
            continue
        message = (
            f"run worker (pid {pid}) is gone without ending the run (killed?): marked failed and its "
            "pool slots freed so later runs are not blocked; run it again"
        )
        instance.report_run_failed(run, message)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        released.append(run.run_id)
        if log:
            log(f"run {run.run_id} of {run.job_name}: {message}")
    return released


@dg.sensor(
    name="landing_folder_sensor",
    job=ingest_job,
    minimum_interval_seconds=60,
    description="Watches the landing folder and ingests each day whose files changed since they were ingested.",
)
def landing_sensor(context: dg.SensorEvaluationContext):
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:  # a test context built without an instance
        instance = None
    if instance is not None:
        release_dead_runs(instance, context.log.warning)
    settings = get_settings()
    stale = stale_days(settings.landing_dir, settings.raw_dir)
    if not stale:
        yield dg.SkipReason("no new or changed landing files")
        return
    newest_first = sorted(stale, reverse=True)[:MAX_RUNS_PER_TICK]
    context.log.info(f"{len(stale)} day(s) with new landing files; requesting {len(newest_first)}")
    for day in newest_first:
        yield dg.RunRequest(
            run_key=f"landing-{day}-{stale[day]}", partition_key=day, tags={"shoplens/day": day}
        )
