"""Run pieces of the shoplens pipeline in subprocesses against a throw-away shop, and fingerprint results.

Used by tests/test_faults.py and tests/test_concurrency.py. Every step runs as its own process (its own
session, so a SIGKILL of the group takes dbt down with it), against a shop folder and a real Dagster
instance (a temporary DAGSTER_HOME holding a copy of the committed dagster.yaml, so the writer pool
applies). The same module is the runner those processes execute:

    python -m tests.helpers_pipeline job nightly_shop_refresh --partition 2024-04-29 --summary s.json
    python -m tests.helpers_pipeline job ingest_new_landing_files --range 2024-01-01 2024-04-28
    python -m tests.helpers_pipeline sensor --summary s.json      # evaluate the landing sensor, run its requests
    python -m tests.helpers_pipeline job ... --crash-at-commit decisions.demand_forecast
    python -m tests.helpers_pipeline crash-export <exports dir>
    python -m tests.helpers_pipeline crash-ingest <table> <first day> <last day> --after-renames N

`--crash-at-commit` and the `crash-*` commands SIGKILL their own process at an exact point (inside the
warehouse transaction before COMMIT, or between writing a temporary file and renaming it), so those
crash points are hit every time instead of by timing luck.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
DAGSTER = str(Path(sys.executable).parent / "dagster")
# Messages DuckDB gives when a second process meets the file lock.
LOCK_ERRORS = re.compile(r"could not set lock|Conflicting lock|is held by another process", re.IGNORECASE)
CRASH_MARKER = "SHOPLENS-TEST-CRASH"
# The environment of the reference run (tests/conftest.py builds `tiny_pipeline` with Prophet off).
REFERENCE_ENV = {"SHOPLENS_USE_PROPHET": "0"}
# Written only by the intraday ingest job (sales_spike_alerts), so absent from a nightly-only reference.
INTRADAY_ONLY = {"decisions.emergency_purchase_orders", "emergency_purchase_orders.parquet"}
# Written by the weekly review job (pipelines.jobs.WEEKLY_ONLY), not by a nightly run.
WEEKLY_ONLY = {
    "decisions.forecast_backtest",
    "forecast_backtest.parquet",
    "decisions.replenishment_simulation",
    "replenishment_simulation.parquet",
    "decisions.clv_calibration",
    "clv_calibration.parquet",
}


# ----------------------------------------------------------------------------------------- a shop folder


@dataclass(frozen=True)
class Shop:
    """One throw-away shop: data folder, landing folder, warehouse file and Dagster instance."""

    root: Path
    landing: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def raw(self) -> Path:
        return self.data / "raw"

    @property
    def exports(self) -> Path:
        return self.data / "exports"

    @property
    def warehouse(self) -> Path:
        return self.data / "warehouse" / "shoplens.duckdb"

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ) | REFERENCE_ENV
        env.update(
            SHOPLENS_DATA_DIR=str(self.data),
            SHOPLENS_LANDING=str(self.landing),
            SHOPLENS_WAREHOUSE=str(self.warehouse),
            DAGSTER_HOME=str(self.home),
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env


def new_shop(root: Path, landing: Path | None = None, data_from: Path | None = None) -> Shop:
    """A shop folder with an initialised Dagster instance; optionally a copy of another shop's data.

    The instance is migrated once here, before any concurrent use (two processes initialising a fresh
    DAGSTER_HOME at once fail with an alembic error).
    """
    shop = Shop(root=root, landing=landing or root / "data" / "landing")
    shop.home.mkdir(parents=True, exist_ok=True)
    shop.logs.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", shop.home / "dagster.yaml")
    if data_from is not None:
        shutil.copytree(data_from, shop.data, ignore=shutil.ignore_patterns("landing", "reports"))
    shop.data.mkdir(parents=True, exist_ok=True)
    run([DAGSTER, "instance", "migrate"], shop, "migrate", timeout=300)
    return shop


def land_tiny(landing: Path) -> dict:
    """Land the tiny synthetic shop (deterministic, seed 42) and return its manifest."""
    subprocess.run(
        [
            PY,
            "-m",
            "pipelines.sources.synthetic",
            "--landing",
            str(landing),
            "--scale",
            "tiny",
            "--no-report",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
        capture_output=True,
        timeout=600,
    )
    return json.loads((landing / "_source.json").read_text())


# ------------------------------------------------------------------------------------------- processes


def backfill_cmd(first: str, last: str) -> list[str]:
    return [PY, "-m", "pipelines.backfill", "--start", first, "--end", last]


def job_cmd(job: str, partition: str | None = None, *extra: str) -> list[str]:
    cmd = [PY, "-m", "tests.helpers_pipeline", "job", job]
    return cmd + (["--partition", partition] if partition else []) + list(extra)


@dataclass
class Step:
    """A running step: the process (leader of its own session) and its log file."""

    proc: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.text().splitlines()[-lines:])


def start(cmd: list[str], shop: Shop, name: str, **extra_env: str) -> Step:
    """Start a command in its own session (so killpg reaches its children, dbt included)."""
    log = shop.logs / f"{name}.log"
    fh = open(log, "w")  # the child gets its own copy of the descriptor; ours is closed at once
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=shop.env(**extra_env),
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        fh.close()
    step = Step(proc, log)
    _STARTED.append(step)
    return step


_STARTED: list[Step] = []


def stop_all() -> None:
    """Kill the process group of every step this process started that still runs (test teardown).

    Steps run in their own sessions, so nothing else would stop them when a test fails half-way.
    """
    while _STARTED:
        step = _STARTED.pop()
        if step.proc.poll() is None or group_members(step.proc.pid):
            kill_group(step)


def finish(step: Step, timeout: float = 900) -> int:
    """Wait for a step; on timeout kill its whole process group and fail with the log's tail."""
    try:
        return step.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(step)
        raise AssertionError(f"{step.log.name} did not finish in {timeout:.0f} s:\n{step.tail()}") from None


def run(cmd: list[str], shop: Shop, name: str, timeout: float = 900, **extra_env: str) -> Step:
    """Run a command to completion; fail with the log's tail when it does not succeed."""
    step = start(cmd, shop, name, **extra_env)
    rc = finish(step, timeout)
    assert rc == 0, f"{name} exited with {rc}:\n{step.tail()}"
    return step


def kill_group(step: Step) -> None:
    """SIGKILL the step's whole process group (the runner and any dbt it started) and reap it."""
    try:
        os.killpg(step.proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    step.proc.wait(timeout=60)
    # No member of the group may survive (a surviving dbt would keep holding the DuckDB lock).
    deadline = time.monotonic() + 30
    while group_members(step.proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not group_members(step.proc.pid), f"processes of group {step.proc.pid} survived SIGKILL"


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group, read from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields: state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def wait_until(
    step: Step, condition: Callable[[], bool], what: str, timeout: float = 600, poll: float = 0.02
) -> None:
    """Wait until `condition()` holds while the step is still running; fail if it ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if step.proc.poll() is not None:
            raise AssertionError(
                f"{step.log.name} ended (rc {step.proc.returncode}) before {what}:\n{step.tail()}"
            )
        time.sleep(poll)
    kill_group(step)
    raise AssertionError(f"{step.log.name}: no sign of {what} within {timeout:.0f} s:\n{step.tail()}")


def log_matches(step: Step, pattern: str, count: int = 1) -> Callable[[], bool]:
    rx = re.compile(pattern)
    return lambda: len(rx.findall(step.text())) >= count


# ------------------------------------------------------------------------------------------- fingerprints


# Floating-point values are compared to 9 significant digits: DuckDB's parallel aggregates and Polars'
# parallel group-bys add doubles in an order that varies between runs, which moves the last bits (seen:
# 0.390625 vs 0.39062499999999994 in one view, 1e-13 in the CLV calibration). `+ 0.0` turns -0.0 into 0.0.
FLOAT_DIGITS = 9


def _duck():
    import duckdb

    return duckdb.connect()


def _checksum(con, relation: str) -> tuple[int, int]:
    """(rows, sum of a hash of each row) of a relation, doubles rounded to FLOAT_DIGITS significant digits."""
    columns = con.sql(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    exprs = [
        f"printf('%.{FLOAT_DIGITS}g', \"{name}\" + 0.0)" if kind in ("DOUBLE", "FLOAT") else f'"{name}"'
        for name, kind, *_ in columns
    ]
    rows, checksum = con.sql(
        f"SELECT count(*), coalesce(sum(hash({', '.join(exprs)})::HUGEINT), 0)::VARCHAR FROM {relation}"
    ).fetchall()[0]
    return rows, int(checksum)


def fingerprint_raw(raw: Path) -> dict[str, tuple[int, int, int]]:
    """Per raw table (and quarantine table): (files, rows, order-independent checksum of the rows).

    Reads exactly the glob dbt reads (`raw/<table>/*/*.parquet`), so a half-written file visible to a
    reader would fail here. The checksum is the sum of a hash of each whole row, so row order and file
    boundaries do not matter but every value and every duplicate does.
    """
    out: dict[str, tuple[int, int, int]] = {}
    con = _duck()
    try:
        folders = [p for p in sorted(raw.iterdir()) if p.is_dir() and not p.name.startswith((".", "_"))]
        folders += [p for p in sorted((raw / "_quarantine").glob("*")) if p.is_dir()]
        for folder in folders:
            files = sorted(folder.glob("*/*.parquet"))
            name = folder.name if folder.parent == raw else f"_quarantine/{folder.name}"
            if not files:
                out[name] = (0, 0, 0)
                continue
            file_list = "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"
            rows, checksum = _checksum(con, f"read_parquet({file_list}, union_by_name = true)")
            out[name] = (len(files), rows, checksum)
    finally:
        con.close()
    return out


def fingerprint_warehouse(path: Path) -> dict[str, tuple[int, int]]:
    """Per table and view of every schema: (rows, order-independent checksum of the rows).

    Opened read-only, so this also proves the file opens cleanly (a torn file or a surviving writer
    fails here); `PRAGMA database_size` must answer too.
    """
    import duckdb

    out: dict[str, tuple[int, int]] = {}
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.sql("PRAGMA database_size").fetchall(), f"PRAGMA database_size gave nothing for {path}"
        relations = con.sql(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() ORDER BY 1, 2"
        ).fetchall()
        for schema, name in relations:
            if name.startswith("_shoplens"):
                # Bookkeeping (the incremental build's state: when it ran, the raw files' sizes and mtimes)
                # differs between two shops holding the same data: compare its row count only.
                rows = con.sql(f'SELECT count(*) FROM "{schema}"."{name}"').fetchall()[0][0]
                out[f"{schema}.{name}"] = (rows, 0)
                continue
            out[f"{schema}.{name}"] = _checksum(con, f'"{schema}"."{name}"')
    finally:
        con.close()
    return out


def fingerprint_exports(exports: Path) -> dict[str, tuple[int, int]]:
    """Per exported Parquet file: (rows, checksum); every CSV must parse too (no half files)."""
    out: dict[str, tuple[int, int]] = {}
    con = _duck()
    try:
        for path in sorted(exports.glob("*.parquet")):
            out[path.name] = _checksum(con, f"read_parquet('{path}')")
        for path in sorted(exports.glob("*.csv")):
            rows = con.sql(f"SELECT count(*) FROM read_csv('{path}', header = true)").fetchall()[0][0]
            parquet = path.with_suffix(".parquet")
            if parquet.name in out:
                assert rows == out[parquet.name][0], (
                    f"{path.name}: {rows} rows, its Parquet twin {out[parquet.name][0]}"
                )
    finally:
        con.close()
    return out


@dataclass(frozen=True)
class Fingerprint:
    """Per-table (rows, checksum) of one shop's raw layer, warehouse and exports, and where they live."""

    data: Path
    warehouse_path: Path
    raw: dict[str, tuple[int, int, int]]
    warehouse: dict[str, tuple[int, int]]
    exports: dict[str, tuple[int, int]]


def fingerprint(data: Path, warehouse: Path | None = None) -> Fingerprint:
    wh = warehouse or data / "warehouse" / "shoplens.duckdb"
    return Fingerprint(
        data,
        wh,
        fingerprint_raw(data / "raw"),
        fingerprint_warehouse(wh),
        fingerprint_exports(data / "exports"),
    )


_REFERENCE: dict[Path, Fingerprint] = {}


def reference_fingerprint(data: Path, warehouse: Path) -> Fingerprint:
    """Fingerprint of the uninterrupted reference run, computed once per process (it is never modified)."""
    if data not in _REFERENCE:
        fp = fingerprint(data, warehouse)
        # The reference must hold forecasts and decisions, or comparing with it would prove little.
        assert fp.warehouse.get("decisions.demand_forecast", (0, 0))[0] > 0, sorted(fp.warehouse)
        assert fp.raw["orders"][1] > 0 and fp.exports, "the reference run published nothing"
        _REFERENCE[data] = fp
    return _REFERENCE[data]


# A table whose checksum differs is compared row by row (both sides sorted by all columns), doubles
# within a relative tolerance: 1e-9 absorbs last-bit noise that straddles a rounding boundary of the
# checksum. Named exceptions, each a finding: the Gamma-Gamma fit in decisions.customer_clv converges to
# ~4e-8 relative depending on the order in which its input rows arrive (the asset reads the mart
# without ORDER BY, and DuckDB's parallel scan order varies), so expected_aov and predicted_clv differ
# in the 8th digit between runs.
DEFAULT_REL_TOL = 1e-9
REL_TOL = {"decisions.customer_clv": 1e-6, "customer_clv.parquet": 1e-6}


def _relation(fp: Fingerprint, section: str, key: str, alias: str) -> str:
    if section == "raw":
        return f"read_parquet('{fp.data / 'raw' / key}/*/*.parquet', union_by_name = true)"
    if section == "exports":
        return f"read_parquet('{fp.data / 'exports' / key}')"
    schema, name = key.split(".", 1)
    return f'{alias}."{schema}"."{name}"'


def _same_rows(got: Fingerprint, want: Fingerprint, section: str, key: str, rel_tol: float) -> str | None:
    """None when the two relations hold the same rows (doubles within rel_tol), else what differs."""
    import math

    import duckdb

    con = duckdb.connect()
    try:
        if section == "warehouse":
            con.execute(f"ATTACH '{got.warehouse_path}' AS got_db (READ_ONLY)")
            con.execute(f"ATTACH '{want.warehouse_path}' AS want_db (READ_ONLY)")
        a = con.sql(f"SELECT * FROM {_relation(got, section, key, 'got_db')} ORDER BY ALL").fetchall()
        b = con.sql(f"SELECT * FROM {_relation(want, section, key, 'want_db')} ORDER BY ALL").fetchall()
    finally:
        con.close()
    if len(a) != len(b):
        return f"{len(a)} rows, reference {len(b)}"
    for n, (row_a, row_b) in enumerate(zip(a, b, strict=True)):
        for x, y in zip(row_a, row_b, strict=True):
            if isinstance(x, float) and isinstance(y, float):
                same = (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=rel_tol, abs_tol=1e-12)
            else:
                same = x == y
            if not same:
                return f"sorted row {n} differs: {row_a} vs reference {row_b}"
    return None


def diff(name: str, got: dict, want: dict, ignore: Iterable[str] = ()) -> list[str]:
    """Keys whose fingerprints differ (missing on one side, or another row count or checksum)."""
    skip = set(ignore)
    problems = []
    for key in sorted((set(got) | set(want)) - skip):
        if key not in got:
            problems.append(f"{name}: {key} missing (reference {want[key]})")
        elif key not in want:
            problems.append(f"{name}: {key} not in the reference (got {got[key]})")
        elif got[key] != want[key]:
            problems.append(f"{name}: {key} got {got[key]}, reference {want[key]}")
    return problems


def compare(
    got: Fingerprint, want: Fingerprint, ignore: Iterable[str] = (), only: Iterable[str] | None = None
) -> list[str]:
    """Every difference between two shops (or in the `only` keys): tables missing or extra, rows, values.

    Tables whose checksums differ but whose row counts agree are compared row by row with the
    tolerances above; those that pass are printed (visible with -s or on failure), not reported.
    """
    skip = set(ignore)
    wanted = None if only is None else set(only)
    problems = []
    for section in ("raw", "warehouse", "exports"):
        mine, theirs = getattr(got, section), getattr(want, section)
        keys = (set(mine) | set(theirs)) - skip
        for key in sorted(keys if wanted is None else keys & wanted):
            if key not in mine:
                problems.append(f"{section}: {key} missing (reference {theirs[key]})")
            elif key not in theirs:
                problems.append(f"{section}: {key} not in the reference (got {mine[key]})")
            elif mine[key] != theirs[key]:
                rows_at = 1 if section == "raw" else 0
                if mine[key][rows_at] != theirs[key][rows_at]:
                    problems.append(
                        f"{section}: {key} has {mine[key][rows_at]} rows, reference {theirs[key][rows_at]}"
                    )
                    continue
                tol = REL_TOL.get(key, DEFAULT_REL_TOL)
                why = _same_rows(got, want, section, key, tol)
                if why:
                    problems.append(f"{section}: {key}: {why}")
                else:
                    print(
                        f"{section}: {key} equals the reference within a relative {tol:g} (checksums differ)"
                    )
    return problems


def leftovers(data: Path) -> list[Path]:
    """Temporary files a crash can leave behind (they must never match a reader's glob)."""
    return sorted(
        p
        for p in data.rglob("*")
        if p.is_file() and (p.name.endswith(".tmp") or any(part.startswith(".staging-") for part in p.parts))
    )


# --------------------------------------------------------------------------------------- the Dagster instance


def instance_state(home: Path, pool: str = "duckdb_writer") -> tuple[dict[str, str], list[str]]:
    """({run_id: status}, run ids holding a slot of the pool) in the instance at `home`."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        runs = {r.dagster_run.run_id: r.dagster_run.status.value for r in instance.get_run_records()}
        info = instance.event_log_storage.get_concurrency_info(pool)
        holders = sorted({slot.run_id for slot in info.claimed_slots})
    return runs, holders


def run_id_of(step: Step) -> str:
    """The Dagster run id a job runner printed in its log (RUN_START line)."""
    m = re.search(
        r" - ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}) - \d+ - RUN_START", step.text()
    )
    assert m, f"{step.log.name}: no RUN_START line\n{step.tail()}"
    return m.group(1)


# --------------------------------------------------------------------------------- the runner (subprocess)


def _crash_at_commit(target: str) -> None:
    """Make warehouse.write_table of `schema.table` die by SIGKILL after its CREATE, before its COMMIT."""
    from contextlib import contextmanager

    import pipelines.core.warehouse as wh

    schema, name = target.split(".")
    real_connect = wh.connect
    table_ref = f'"{schema}"."{name}"'

    class Proxy:
        def __init__(self, con) -> None:
            self._con, self._armed = con, False

        def execute(self, sql, *args, **kwargs):
            if self._armed and sql.strip().upper() == "COMMIT":
                print(f"{CRASH_MARKER}: SIGKILL inside the write of {target}, before COMMIT", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            out = self._con.execute(sql, *args, **kwargs)
            if "CREATE OR REPLACE TABLE" in sql and table_ref in sql:
                self._armed = True
            return out

        def __getattr__(self, attr):
            return getattr(self._con, attr)

    @contextmanager
    def connect(*args, **kwargs):
        with real_connect(*args, **kwargs) as con:
            yield Proxy(con)

    wh.connect = connect  # write_table looks `connect` up in its module at call time


def _summary(instance, job, result, path: Path) -> None:
    """Step intervals with their pool, lock errors and pool-blocked events of a finished run, as JSON."""
    pools = {node.name: getattr(node.definition, "pool", None) for node in job.graph.nodes}
    steps: dict[str, dict] = {}
    blocked, messages = [], []
    for entry in instance.all_logs(result.run_id):
        messages.append(entry.user_message or "")
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type_value
        if kind == "STEP_START":
            steps.setdefault(event.step_key, {})["start"] = entry.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            steps.setdefault(event.step_key, {})["end"] = entry.timestamp
            steps[event.step_key]["status"] = kind
        elif kind == "ENGINE_EVENT" and "blocked by limit for pool" in (event.message or ""):
            blocked.append({"step": event.step_key, "message": event.message, "at": entry.timestamp})
    for key, info in steps.items():
        info["pool"] = pools.get(key.split("[")[0])
    failures = [
        {"step": e.step_key, "error": e.step_failure_data.error.message[:3000]}
        for e in result.all_events
        if e.is_step_failure
    ]
    path.write_text(
        json.dumps(
            {
                "run_id": result.run_id,
                "job": job.name,
                "success": result.success,
                "steps": steps,
                "blocked": blocked,
                "failures": failures,
                "lock_errors": [m[:500] for m in messages if LOCK_ERRORS.search(m)],
            },
            indent=1,
        )
    )


def _run_job(args: argparse.Namespace) -> int:
    import logging

    logging.getLogger("cmdstanpy").disabled = True
    import dagster as dg

    if args.crash_at_commit:
        _crash_at_commit(args.crash_at_commit)
    from pipelines.definitions import defs

    instance = dg.DagsterInstance.get()
    job = defs.resolve_job_def(args.job)
    kwargs: dict = {"tags": dict(args.tag or [])}
    if args.range:
        # A single-run backfill of the ingestion assets, the way the UI launches one (range tags).
        kwargs["tags"] |= {
            "dagster/asset_partition_range_start": args.range[0],
            "dagster/asset_partition_range_end": args.range[1],
        }
        kwargs["asset_selection"] = list(
            dg.AssetSelection.groups("ingest").resolve(defs.resolve_asset_graph())
        )
    else:
        kwargs["partition_key"] = args.partition
    result = job.execute_in_process(instance=instance, raise_on_error=False, **kwargs)
    print(f"run {result.run_id} of {job.name}: {'success' if result.success else 'FAILURE'}", flush=True)
    if args.summary:
        _summary(instance, job, result, Path(args.summary))
    return 0 if result.success else 1


def _run_sensor(args: argparse.Namespace) -> int:
    """Evaluate the landing sensor once and run the ingest job for each run request it returns."""
    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.sensors import landing_sensor

    instance = dg.DagsterInstance.get()
    data = landing_sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
    requests = list(data.run_requests or [])
    print(f"sensor requested {len(requests)} run(s): {[r.partition_key for r in requests]}", flush=True)
    job = defs.resolve_job_def("ingest_new_landing_files")
    ok = True
    summaries = []
    for i, request in enumerate(requests):
        result = job.execute_in_process(
            instance=instance,
            partition_key=request.partition_key,
            tags={
                **request.tags,
                "dagster/run_key": request.run_key or "",
                "dagster/sensor_name": "landing_folder_sensor",
            },
            raise_on_error=False,
        )
        print(
            f"run {result.run_id} for {request.partition_key}: {'success' if result.success else 'FAILURE'}"
        )
        ok = ok and result.success
        if args.summary:
            path = Path(f"{args.summary}.{i}")
            _summary(instance, job, result, path)
            summaries.append(json.loads(path.read_text()) | {"partition": request.partition_key})
    if args.summary:
        Path(args.summary).write_text(json.dumps(summaries, indent=1))
    return 0 if ok else 1


def _crash_export(args: argparse.Namespace) -> int:
    """Export a frame, then export a bigger one and die by SIGKILL between the temp write and the rename."""
    import polars as pl

    from pipelines.core import warehouse

    folder = Path(args.folder)
    warehouse.export(pl.DataFrame({"n": list(range(10))}), "crash_probe", folder)
    real_replace = os.replace

    def dying_replace(src, dst, *a, **kw):
        if str(dst).endswith("crash_probe.parquet"):
            print(f"{CRASH_MARKER}: SIGKILL after writing {src}, before renaming it to {dst}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst, *a, **kw)

    os.replace = dying_replace
    warehouse.export(pl.DataFrame({"n": list(range(1000))}), "crash_probe", folder)
    return 0  # never reached


def _crash_ingest(args: argparse.Namespace) -> int:
    """Ingest a table for a range of days; with --after-renames N, die by SIGKILL at the (N+1)th rename."""
    from datetime import date

    from pipelines.core.ingest import days_between, ingest, pii_key
    from pipelines.core.settings import get_settings
    from pipelines.sources.base import read_manifest

    settings = get_settings()
    source = read_manifest(settings.landing_dir) or {}
    real_replace = os.replace
    done = {"n": 0}

    def dying_replace(src, dst, *a, **kw):
        if args.after_renames is not None and done["n"] >= args.after_renames:
            print(f"{CRASH_MARKER}: SIGKILL with {src} written, before renaming it to {dst}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        done["n"] += 1
        return real_replace(src, dst, *a, **kw)

    os.replace = dying_replace
    days = days_between(date.fromisoformat(args.first), date.fromisoformat(args.last))
    # The same arguments as pipelines.backfill.bulk_ingest and the ingestion assets pass.
    ingest(
        args.table,
        settings.landing_dir,
        settings.raw_dir,
        days,
        currency=source.get("currency"),
        timezone=settings.timezone,
        pii_secret=pii_key(settings.mode, settings.pii_key),
    )
    return 0


def _hold(args: argparse.Namespace) -> int:
    """What an analyst's notebook does: open the warehouse read-only and keep the connection open.

    Phase 1 opens at once (retrying while a writer holds the file) and holds until --release-when exists.
    Phase 2 (optional) waits for --again-when, then grabs the file the moment no writer holds it (between
    two steps of a run) and holds it until --release-again-when exists. Each hold is capped by --max-hold.
    """
    import duckdb

    def grab(label: str) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + 600
        while True:
            try:
                con = duckdb.connect(args.warehouse, read_only=True)
                rows = con.sql("SELECT count(*) FROM information_schema.tables").fetchall()[0][0]
                print(
                    f"notebook holds the warehouse read-only ({label}; {rows} relations visible)", flush=True
                )
                return con
            except duckdb.IOException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def hold_until(con: duckdb.DuckDBPyConnection, flag: str, label: str) -> None:
        deadline = time.monotonic() + args.max_hold
        while not Path(flag).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        con.close()
        print(f"notebook closed its connection ({label})", flush=True)

    hold_until(grab("phase 1"), args.release_when, "phase 1")
    if args.again_when:
        while not Path(args.again_when).exists():
            time.sleep(0.05)
        hold_until(grab("phase 2"), args.release_again_when or args.again_when, "phase 2")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    job = sub.add_parser("job", help="run a job of the code location in process against $DAGSTER_HOME")
    job.add_argument("job")
    job.add_argument("--partition")
    job.add_argument(
        "--range", nargs=2, metavar=("FIRST", "LAST"), help="single-run backfill of the ingest assets"
    )
    job.add_argument("--tag", nargs=2, action="append", metavar=("KEY", "VALUE"))
    job.add_argument("--summary", help="write step intervals, pools and errors as JSON here")
    job.add_argument("--crash-at-commit", metavar="SCHEMA.TABLE")
    sensor = sub.add_parser("sensor", help="evaluate the landing sensor and run what it requests")
    sensor.add_argument("--summary")
    export = sub.add_parser("crash-export")
    export.add_argument("folder")
    crash = sub.add_parser("crash-ingest")
    crash.add_argument("table")
    crash.add_argument("first")
    crash.add_argument("last")
    crash.add_argument("--after-renames", type=int, help="die before this many renames have been done")
    hold = sub.add_parser("hold", help="a notebook: hold a read-only connection to the warehouse")
    hold.add_argument("warehouse")
    hold.add_argument("--release-when", required=True, help="close the connection when this file exists")
    hold.add_argument("--again-when", help="then open it again as soon as possible once this file exists")
    hold.add_argument("--release-again-when", help="... and close it when this file exists")
    hold.add_argument("--max-hold", type=float, default=90.0, help="never hold longer than this (seconds)")
    args = parser.parse_args(argv)
    handlers = {
        "job": _run_job,
        "sensor": _run_sensor,
        "crash-export": _crash_export,
        "crash-ingest": _crash_ingest,
        "hold": _hold,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
