"""`make bench`: run the whole pipeline on the synthetic shop at several sizes and measure each stage.

    python -m pipelines.bench                          # small and medium (the default)
    python -m pipelines.bench --sizes large            # `make bench SIZE=large`: 1M customers, 20k SKUs
    python -m pipelines.bench --sizes medium --work-dir /somewhere/big   # data in <work-dir>/<size>/

Every stage runs as its own child process, so its peak memory is its own: the parent waits for it with
`os.wait4`, whose `ru_maxrss` is the largest resident set of the child and of the processes it waited
for (dbt's threads, Prophet's Stan runs). A sampler adds up the RSS of the live process tree as well.
The stages, in order:

    generate       the synthetic landing files (skipped when the folder already holds this shop)
    ingest         validation, quarantine, raw Parquet (pipelines.backfill.bulk_ingest)
    dbt compile    setup for the baseline: dbt's compiled SQL of every model (not timed against anything)
    plain SQL      baseline: the same marts from dbt's compiled SQL by pipelines.bench_sql, no dbt
    dbt run        baseline: `dbt build` without tests from the dbt CLI, into its own file
    dbt build      the pipeline's dbt stage: the Dagster dbt asset (models, seeds, data and unit tests)
    <group> ...    the pipeline's remaining Dagster asset groups in dependency order (publish, forecasting,
                   decisions, reports), each materialized in-process on an ephemeral instance

End to end = the pipeline stages (ingest, dbt build, the Dagster groups); generation and the two
baselines are not part of a nightly run. Results: data/bench/bench_<timestamp>.json and .md,
data/bench/latest.md, and the table of each size in docs/benchmarks.md (between its markers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

from pipelines.core.settings import DBT_PROJECT_DIR, PROJECT_ROOT

SIZES = ("tiny", "small", "medium", "large")
DEFAULT_SIZES = ("small", "medium")
DOCS_PATH = PROJECT_ROOT / "docs" / "benchmarks.md"
DBT_STAGE = "dbt build"

# The goals, on 2 cores and 24 GB. None = no goal at this size.
GOALS: dict[str, dict[str, float]] = {
    "medium": {
        "end_to_end_s": 300,
        "peak_rss_mb": 4 * 1024,
        "dbt_ratio": 1.5,
        "forecast_series_per_s": 500,
        "model_train_s": 60,  # issue 4: 2,000 SKUs x 2 years trained in under 60 s on 2 cores
    },
    "large": {"end_to_end_s": 1800, "peak_rss_mb": 12 * 1024, "dbt_ratio": 1.5, "nightly_s": 180},
    "small": {"dbt_ratio": 1.5},
    "tiny": {},
}


# Disk a size needs under its work folder, in GB: landing CSV + raw Parquet + the warehouse and the two
# baseline databases + DuckDB spill. Medium measured (3.1 + 0.5 + 0.9 + 0.6 + spill). Large lands its
# files gzip-compressed (COMPRESSED_LANDING): as plain CSV they come to about 50 GB (400-600k traffic
# events, 35-50 MB a day), gzipped (level 1) to about a fifth; raw, warehouse and baselines ~10x medium.
DISK_NEED_GB = {"tiny": 0.5, "small": 2.0, "medium": 8.0, "large": 45.0}
LANDING_SHARE = {"tiny": 0.5, "small": 0.5, "medium": 0.45, "large": 0.25}
COMPRESSED_LANDING = {"large"}
# DuckDB memory_limit for dbt (SHOPLENS_DBT_MEMORY_LIMIT; profiles.yml defaults to 3GB). At large, a full
# build of fct_order_lines (48 M lines) beside the uniqueness test over 339 M traffic events (dbt runs two
# nodes at a time) ran out of memory at 3GB ("failed to pin block"): not every DuckDB operator spills.
DBT_MEMORY_LIMIT = {"large": "8GB"}
INGEST_STAGE_FILE = "ingest_stage.json"


def disk_shortfall(size: str, work: Path) -> str | None:
    """Why `size` cannot run in `work` for lack of disk, or None. Reused landing files count as present,
    and so do a raw layer and a warehouse an earlier run left (`--reuse-ingest` keeps the one, the build
    rewrites the other in place)."""
    import shutil as _sh

    need = DISK_NEED_GB.get(size, 0.0)
    landing = work / "landing"
    if (landing / "_source.json").exists():
        need *= 1 - LANDING_SHARE.get(size, 0.0)
    present = sum(f.stat().st_size for sub in ("raw", "warehouse") for f in (work / sub).rglob("*") if f.is_file())
    need = max(need - present / 1e9, 0.0)
    probe = work
    while not probe.exists():
        probe = probe.parent
    free = _sh.disk_usage(probe).free / 1e9
    if free >= need:
        return None
    return (
        f"{size} needs about {need:.0f} GB free under {work} (landing CSV, raw Parquet, the warehouse and the "
        f"baselines' databases, DuckDB spill) and {free:.0f} GB are free: give --work-dir on a bigger disk "
        "(make bench SIZE=large BENCH_ARGS='--work-dir /big/disk'), or free space"
    )


# ------------------------------------------------------------------------------------------ measuring


@dataclass
class Stage:
    """One measured stage of one size."""

    name: str
    kind: str  # pipeline | setup | baseline
    status: str = "ok"  # ok | failed | skipped
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0  # ru_maxrss of the child (largest single process of its tree)
    tree_rss_mb: float = 0.0  # sampled sum of the live process tree
    rows_in: int | None = None
    rows_out: int | None = None
    load_avg: float = 0.0  # 1-minute load average when the stage started
    notes: str = ""
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChildRun:
    returncode: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    tree_rss_mb: float


def _tree_rss_sampler(pid: int, stop: threading.Event, peak: list[float], every: float = 0.25) -> None:
    """Track the largest summed RSS of `pid` and its descendants (psutil: portable process listing)."""
    import psutil

    try:
        root = psutil.Process(pid)
    except psutil.Error:
        return
    while not stop.is_set():
        total = 0
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            break
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        peak[0] = max(peak[0], total / 2**20)
        stop.wait(every)


def run_child(cmd: list[str], env: dict[str, str], log_path: Path, cwd: Path = PROJECT_ROOT) -> ChildRun:
    """Run one stage as a child process (output to `log_path`); wall, CPU and peak RSS of its tree.

    `os.wait4` (not Popen.wait) so the child's rusage comes back: ru_maxrss covers the child and the
    descendants it waited for (Linux reports KiB), ru_utime + ru_stime their CPU seconds.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        stop, peak = threading.Event(), [0.0]
        sampler = threading.Thread(target=_tree_rss_sampler, args=(proc.pid, stop, peak), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        stop.set()
        sampler.join(timeout=5)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: tell Popen
    scale = 1024 if sys.platform != "darwin" else 1  # macOS reports bytes
    return ChildRun(
        returncode=proc.returncode,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss * scale / 2**20,
        tree_rss_mb=peak[0],
    )


def killed_text(signum: int, peak_rss_mb: float) -> str:
    """Why a child died of a signal; SIGKILL at a large RSS is almost always the kernel's OOM killer."""
    import signal

    import psutil

    name = signal.Signals(signum).name if signum in signal.Signals._value2member_map_ else f"signal {signum}"
    total = psutil.virtual_memory().total / 2**20
    hint = ""
    if signum == signal.SIGKILL and peak_rss_mb > 0.5 * total:
        hint = f" (out of memory: the kernel's OOM killer; peak RSS {peak_rss_mb:,.0f} MB of {total:,.0f} MB RAM)"
    return f"killed by {name}{hint}"


_ERROR_LINE = re.compile(r"^(killed by |[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Failure)\b)")


def error_line(text: str) -> str:
    """The line of a traceback or log tail that says what went wrong (the exception, not a hint after it)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if _ERROR_LINE.match(line):
            return line
    return lines[-1] if lines else ""


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ------------------------------------------------------------------------------------------ the children
# `python -m pipelines.bench _child <kind> --out <json>`: the work of one stage, measured by the parent.


MEMORY_LIMIT_ENV = "SHOPLENS_BENCH_DUCKDB_MEMORY_LIMIT"


def _cap_duckdb_memory(limit: str) -> None:
    """Give every DuckDB connection this process opens a memory_limit (DuckDB's default is 80% of RAM).

    A bench option (`--ingest-memory-limit`), not a project setting: it shows what ingestion costs
    with a bounded buffer pool (DuckDB spills to the temp_directory ingestion sets) next to the default.
    """
    import duckdb

    real_connect = duckdb.connect

    def connect(*args: Any, **kwargs: Any) -> duckdb.DuckDBPyConnection:
        config = dict(kwargs.pop("config", None) or {})
        config.setdefault("memory_limit", limit)
        return real_connect(*args, config=config, **kwargs)

    duckdb.connect = connect  # type: ignore[assignment]


def _child_ingest() -> dict[str, Any]:
    if os.environ.get(MEMORY_LIMIT_ENV):
        _cap_duckdb_memory(os.environ[MEMORY_LIMIT_ENV])
    from pipelines.backfill import bulk_ingest
    from pipelines.core.settings import get_settings
    from pipelines.sources.base import read_manifest

    manifest = read_manifest(get_settings().landing_dir) or {}
    first, last = manifest.get("first_date"), manifest.get("last_date")
    if not (first and last):
        raise RuntimeError(
            f"{get_settings().landing_dir}/_source.json has no date range: generate the landing first"
        )
    results = bulk_ingest(
        date.fromisoformat(first), date.fromisoformat(last), log=lambda m: print(m, flush=True)
    )
    return {
        "tables": {
            t: {
                "files": len(r.files),
                "rows_in": r.rows_in,
                "accepted": r.rows_accepted,
                "quarantined": r.rows_quarantined,
                "by_rule": r.by_rule,
            }
            for t, r in results.items()
        }
    }


def dagster_plan() -> list[tuple[str, list[str]]]:
    """The Dagster part of the nightly graph as stages: the dbt asset, then the other groups in order.

    Ingestion (the `ingest` group) runs as its own stage through bulk_ingest, and partitioned assets
    (the intraday alert) are not part of a whole-history run. Groups are ordered by their asset
    dependencies; if two groups depend on each other, the rest runs as one stage.
    """
    from pipelines.assets.transform import shoplens_dbt_models
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    dbt_keys = set(shoplens_dbt_models.keys)
    groups: dict[str, list[str]] = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if key in dbt_keys or not node.is_executable or node.partitions_def is not None:
            continue
        if node.group_name == "ingest":
            continue
        groups.setdefault(node.group_name or "default", []).append(key.to_user_string())
    group_of = {k: g for g, keys in groups.items() for k in keys}
    deps: dict[str, set[str]] = {g: set() for g in groups}
    for g, keys in groups.items():
        for k in keys:
            for parent in graph.get(_key(k)).parent_keys:
                pg = group_of.get(parent.to_user_string())
                if pg and pg != g:
                    deps[g].add(pg)
    try:
        order = list(TopologicalSorter(deps).static_order())
    except CycleError:
        return [(DBT_STAGE, ["dbt"]), ("downstream", sorted(k for keys in groups.values() for k in keys))]
    dbt_groups = {graph.get(k).group_name for k in dbt_keys}
    # A group dbt also uses (the publish step sits in `marts`) is named after its assets, not the group.
    names = {g: "+".join(sorted(groups[g])) if g in dbt_groups else g for g in order}
    return [(DBT_STAGE, ["dbt"])] + [(names[g], sorted(groups[g])) for g in order]


def _key(user_string: str):
    import dagster as dg

    return dg.AssetKey.from_user_string(user_string)


def _child_dagster(keys: list[str]) -> dict[str, Any]:
    """Materialize `keys` (or the dbt asset, keys == ["dbt"]) in-process on an ephemeral instance."""
    import logging

    import dagster as dg

    logging.getLogger("cmdstanpy").disabled = True
    from pipelines.assets.transform import dbt_resource, shoplens_dbt_models
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    if keys == ["dbt"]:
        assets: list = [shoplens_dbt_models]
        selection: Any = dg.AssetSelection.assets(shoplens_dbt_models)
    else:
        wanted = {_key(k) for k in keys}
        assets = [ad for ad in graph.assets_defs if ad.is_executable and set(ad.keys) & wanted]
        selection = dg.AssetSelection.assets(*wanted)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        assets,
        instance=instance,
        resources={"dbt": dbt_resource},
        selection=selection,
        raise_on_error=False,
        tags={"shoplens/kind": "bench"},
    )
    out = _run_payload(instance, result)
    if keys == ["dbt"]:
        out["dbt_run_results"] = _dbt_thread_seconds(
            sorted((DBT_PROJECT_DIR / "target").glob(f"{shoplens_dbt_models.op.name}-{result.run_id[:7]}-*"))
        )
    return out


def _child_nightly(day: str) -> dict[str, Any]:
    """The nightly job for one day on the built shop (in-process, ephemeral instance): one new day's run."""
    import logging

    import dagster as dg

    logging.getLogger("cmdstanpy").disabled = True
    from pipelines.definitions import defs

    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("nightly_shop_refresh").execute_in_process(
        instance=instance, partition_key=day, tags={"shoplens/kind": "bench"}, raise_on_error=False
    )
    return _run_payload(instance, result)


def _run_payload(instance: Any, result: Any) -> dict[str, Any]:
    """Step times, materialization metadata, failures and check results of a finished run."""
    steps = {
        s.step_key: {
            "status": str(s.status.value) if s.status else None,
            "seconds": round((s.end_time or 0) - (s.start_time or 0), 2) if s.start_time else None,
        }
        for s in instance.get_run_step_stats(result.run_id)
    }
    materialized: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        meta = {}
        for name, value in mat.metadata.items():
            raw = getattr(value, "value", value)
            if isinstance(raw, (int, float, str, bool)) and len(str(raw)) < 200:
                meta[name] = raw
        materialized[mat.asset_key.to_user_string()] = meta
    errors = {
        ev.step_key: ev.step_failure_data.error.to_string() if ev.step_failure_data.error else "failed"
        for ev in result.get_step_failure_events()
    }
    checks = result.get_asset_check_evaluations()
    out: dict[str, Any] = {
        "run_id": result.run_id,
        "success": result.success,
        "steps": steps,
        "materialized": materialized,
        "errors": errors,
        "checks": {
            "evaluated": len(checks),
            "failed": sorted(
                f"{c.asset_key.to_user_string()}:{c.check_name}" for c in checks if not c.passed
            ),
        },
    }
    return out


def _dbt_thread_seconds(target_dirs: list[Path]) -> dict[str, Any]:
    """Seconds dbt spent per resource type and per model layer, from run_results.json (thread-seconds:
    with 2 threads they add up to more than the wall time). Removes the run's target folder after."""
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    for folder in target_dirs:
        results = folder / "run_results.json"
        if results.exists():
            for r in json.loads(results.read_text()).get("results", []):
                uid = r.get("unique_id", "")
                kind = uid.split(".")[0]
                if kind == "model":
                    kind = f"model:{_layer_of(uid)}"
                totals[kind] = totals.get(kind, 0.0) + float(r.get("execution_time") or 0)
                counts[kind] = counts.get(kind, 0) + 1
        shutil.rmtree(folder, ignore_errors=True)  # this run's own artefacts under dbt_project/target
    return {"seconds": {k: round(v, 2) for k, v in sorted(totals.items())}, "nodes": counts}


_LAYERS: dict[str, str] = {}


def _layer_of(unique_id: str) -> str:
    """staging / intermediate / marts for a model id, from the project's manifest."""
    if not _LAYERS:
        manifest = json.loads((DBT_PROJECT_DIR / "target" / "manifest.json").read_text())
        for uid, node in manifest["nodes"].items():
            fqn = node.get("fqn", [])
            _LAYERS[uid] = fqn[1] if len(fqn) > 2 else "models"
    return _LAYERS.get(unique_id, "models")


def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pipelines.bench _child")
    parser.add_argument("kind", choices=("ingest", "dagster", "plan", "nightly"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--keys", nargs="*", default=[])
    args = parser.parse_args(argv)
    try:
        if args.kind == "ingest":
            payload = _child_ingest()
        elif args.kind == "plan":
            payload = {"plan": dagster_plan()}
        elif args.kind == "nightly":
            payload = _child_nightly(args.keys[0])
        else:
            payload = _child_dagster(args.keys)
        code = 0 if payload.get("success", True) else 1
    except Exception:  # the parent reports any failure of the stage and carries on
        payload = {"error": traceback.format_exc()}
        print(payload["error"], file=sys.stderr)
        code = 1
    args.out.write_text(json.dumps(payload, indent=2, default=str))
    return code


# ------------------------------------------------------------------------------------------ one size


def machine() -> dict[str, Any]:
    import psutil

    return {
        "cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def _count_tables(database: Path, relations: list[str]) -> dict[str, int]:
    """Rows of each table among `relations` ("schema.name") in a DuckDB file, read-only."""
    import duckdb

    if not database.exists():
        return {}
    con = duckdb.connect(str(database), read_only=True)
    try:
        present = {
            f"{s}.{n}"
            for s, n in con.execute(
                "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
            ).fetchall()
        }
        return {
            r: con.execute(f'SELECT count(*) FROM "{r.split(".")[0]}"."{r.split(".")[1]}"').fetchall()[0][0]
            for r in relations
            if r in present
        }
    finally:
        con.close()


def _dbt_tables(manifest_path: Path) -> list[str]:
    """ "schema.name" of every table-materialized (or incremental) model and seed in a manifest."""
    if not manifest_path.exists():
        return []
    manifest = json.loads(manifest_path.read_text())
    return sorted(
        f"{n['schema']}.{n.get('alias') or n['name']}"
        for n in manifest["nodes"].values()
        if n["resource_type"] == "seed"
        or (n["resource_type"] == "model" and n["config"].get("materialized") in ("table", "incremental"))
    )


class SizeRun:
    """The stages of one size, run in order; a failed stage is recorded and the next one still runs."""

    def __init__(
        self,
        size: str,
        work: Path,
        seed: int,
        baselines: bool,
        log: Any = print,
        ingest_memory_limit: str | None = None,
        dbt_memory_limit: str | None = None,
        reuse_ingest: bool = False,
    ) -> None:
        self.size, self.work, self.seed, self.baselines, self.log = size, work, seed, baselines, log
        self.ingest_memory_limit = ingest_memory_limit
        self.dbt_memory_limit = dbt_memory_limit or DBT_MEMORY_LIMIT.get(size)
        self.reuse_ingest = reuse_ingest
        self.stages: list[Stage] = []
        self.landing_manifest: dict[str, Any] = {}
        self.env = {
            **os.environ,
            "SHOPLENS_DATA_DIR": str(work),
            "SHOPLENS_LANDING": str(work / "landing"),
            "SHOPLENS_WAREHOUSE": str(work / "warehouse" / "shoplens.duckdb"),
            "PYTHONUNBUFFERED": "1",
        }
        if self.dbt_memory_limit:
            self.env["SHOPLENS_DBT_MEMORY_LIMIT"] = self.dbt_memory_limit
        self.logs = work / "logs"
        self.results = work / "results"

    # -- helpers
    def _stage(
        self,
        name: str,
        kind: str,
        cmd: list[str],
        env: dict[str, str] | None = None,
        cwd: Path = PROJECT_ROOT,
        out: Path | None = None,
    ) -> tuple[Stage, dict[str, Any]]:
        stage = Stage(name=name, kind=kind, load_avg=round(os.getloadavg()[0], 1))
        self.log(f"[{self.size}] {name} ... (load {stage.load_avg})")
        slug = name.replace(" ", "_")
        log_path = self.logs / f"{slug}.log"
        if out is not None:
            out.unlink(missing_ok=True)
        run = run_child(cmd, env or self.env, log_path, cwd=cwd)
        stage.wall_s, stage.cpu_s = round(run.wall_s, 1), round(run.cpu_s, 1)
        stage.peak_rss_mb, stage.tree_rss_mb = round(run.peak_rss_mb), round(run.tree_rss_mb)
        payload: dict[str, Any] = {}
        if out is not None and out.exists():
            payload = json.loads(out.read_text())
        if run.returncode < 0:
            stage.status = "failed"
            stage.error = killed_text(-run.returncode, run.peak_rss_mb) + "\n" + _tail(log_path, 5)
        elif run.returncode != 0:
            stage.status = "failed"
            stage.error = payload.get("error") or _errors_text(payload) or _tail(log_path)
        stage.detail["log"] = str(log_path)
        self.stages.append(stage)
        return stage, payload

    def _done(self, stage: Stage) -> None:
        rss = f"{stage.peak_rss_mb:,.0f} MB"
        self.log(
            f"[{self.size}] {stage.name}: {stage.status} in {stage.wall_s:.1f} s "
            f"(CPU {stage.cpu_s:.1f} s, peak RSS {rss}){'  ' + stage.notes if stage.notes else ''}"
        )
        if stage.error:
            self.log("    " + error_line(stage.error)[:300])

    def _child(self, kind: str, out: Path, keys: list[str] | None = None) -> list[str]:
        return [
            sys.executable,
            "-m",
            "pipelines.bench",
            "_child",
            kind,
            "--out",
            str(out),
            *(["--keys", *keys] if keys else []),
        ]

    # -- stages
    def run(self) -> dict[str, Any]:
        self.work.mkdir(parents=True, exist_ok=True)
        self.results.mkdir(parents=True, exist_ok=True)
        started = datetime.now().astimezone()
        load_start = os.getloadavg()
        self.generate()
        if self.stages[-1].status == "ok":
            self.ingest()
            if self.stages[-1].status == "ok":
                if self.baselines:
                    self.plain_and_dbt_cli()
                self.dagster_stages()
                if all(st.status == "ok" for st in self.stages if st.kind == "pipeline"):
                    self.nightly()
            else:
                # Without a complete raw layer every later stage would fail on missing files: say so once.
                self.stages.append(
                    Stage(
                        name="dbt and the rest",
                        kind="pipeline",
                        status="skipped",
                        notes="not run: ingestion failed, the raw layer is incomplete",
                    )
                )
        load_end = os.getloadavg()
        summary = summarize(self.size, self.stages)
        return {
            "size": self.size,
            "scale": self.landing_manifest.get("scale_params"),
            "seed": self.seed,
            "work_dir": str(self.work),
            "started": started.isoformat(timespec="seconds"),
            "load_avg_start": [round(x, 1) for x in load_start],
            "load_avg_end": [round(x, 1) for x in load_end],
            "stages": [asdict(s) for s in self.stages],
            "summary": summary,
            "goals": evaluate_goals(self.size, summary),
        }

    def generate(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "pipelines.sources.synthetic",
            "--landing",
            str(self.work / "landing"),
            "--scale",
            self.size,
            "--seed",
            str(self.seed),
            "--no-report",
            *(["--compress"] if self.size in COMPRESSED_LANDING else []),
        ]
        stage, _ = self._stage("generate", "setup", cmd)
        from pipelines.sources.base import read_manifest

        self.landing_manifest = read_manifest(self.work / "landing") or {}
        if self.landing_manifest.get("first_date"):  # the daily partitions start with the shop
            self.env["SHOPLENS_START_DATE"] = self.landing_manifest["first_date"]
        stage.rows_out = sum(self.landing_manifest.get("rows_landed", {}).values()) or None
        if "not regenerated" in Path(stage.detail["log"]).read_text(errors="replace"):
            stage.notes = "landing reused (same seed and scale)"
        self._done(stage)

    def _reused_ingest(self) -> Stage | None:
        """The ingest stage measured by an earlier run whose raw layer is still there, for --reuse-ingest.

        Only when that run ingested exactly the rows the landing manifest now reports (same shop)."""
        saved = self.results / INGEST_STAGE_FILE
        if not (saved.exists() and (self.work / "raw").is_dir()):
            return None
        data = json.loads(saved.read_text())
        if data.get("status") != "ok" or data.get("rows_in") != sum(
            self.landing_manifest.get("rows_landed", {}).values()
        ):
            return None
        stage = Stage(**data)
        stage.notes = f"{stage.notes}; measured by the run of {data['detail'].get('run_at', '?')}, raw reused"
        return stage

    def ingest(self) -> None:
        if self.reuse_ingest:
            reused = self._reused_ingest()
            if reused is None:
                self.log(f"[{self.size}] --reuse-ingest: no earlier ingest of this landing here; ingesting")
            else:
                for folder in ("warehouse", "exports", "reports", "models"):
                    shutil.rmtree(self.work / folder, ignore_errors=True)
                self.stages.append(reused)
                self._done(reused)
                return
        # A fresh raw layer, so every run ingests the same thing from nothing (and trains a new model).
        for folder in ("raw", "warehouse", "exports", "reports", "models"):
            shutil.rmtree(self.work / folder, ignore_errors=True)
        out = self.results / "ingest.json"
        env = dict(self.env)
        if self.ingest_memory_limit:
            env[MEMORY_LIMIT_ENV] = self.ingest_memory_limit
            # Ingestion's own connections take their limit from this setting (explicit config wins over
            # the bench's connect() default).
            env["SHOPLENS_DUCKDB_MEMORY_LIMIT"] = self.ingest_memory_limit
        stage, payload = self._stage("ingest", "pipeline", self._child("ingest", out), env=env, out=out)
        tables = payload.get("tables", {})
        if tables:
            stage.rows_in = sum(t["rows_in"] for t in tables.values())
            stage.rows_out = sum(t["accepted"] for t in tables.values())
            quarantined = sum(t["quarantined"] for t in tables.values())
            stage.notes = f"{quarantined:,} rows quarantined"
            stage.detail["tables"] = tables
        if self.ingest_memory_limit:
            stage.notes = "; ".join(
                n
                for n in (f"DuckDB memory_limit={self.ingest_memory_limit} (bench option)", stage.notes)
                if n
            )
            stage.detail["duckdb_memory_limit"] = self.ingest_memory_limit
        if stage.status == "ok":
            stage.detail["run_at"] = datetime.now().astimezone().isoformat(timespec="seconds")
            (self.results / INGEST_STAGE_FILE).write_text(json.dumps(asdict(stage), default=str))
        self._done(stage)

    def plain_and_dbt_cli(self) -> None:
        target = self.work / "dbt_target"
        plain_db = self.work / "plain" / "shoplens.duckdb"  # same file name = same database name as dbt's
        cli_db = self.work / "dbt_cli" / "shoplens.duckdb"
        excludes = list(self.landing_manifest.get("missing_tables", []))
        dbt_args = ["--profiles-dir", str(DBT_PROJECT_DIR), "--project-dir", str(DBT_PROJECT_DIR)]
        if self.landing_manifest.get("returns_are_credit_lines"):
            dbt_args += ["--vars", json.dumps({"returns_are_credit_lines": True})]
        exclude_args = ["--exclude", *(f"source:raw.{t}+" for t in excludes)] if excludes else []
        from pipelines.bench_sql import dbt_executable

        dbt = dbt_executable()
        env_plain = {**self.env, "SHOPLENS_WAREHOUSE": str(plain_db)}
        # A plain database left by an earlier run holds the incremental models: dbt would compile their
        # incremental branch (reading the table itself). Start empty, and compile the full-refresh SQL.
        for stale in (plain_db, plain_db.with_name(plain_db.name + ".wal")):
            stale.unlink(missing_ok=True)
        plain_db.parent.mkdir(parents=True, exist_ok=True)
        stage, _ = self._stage(
            "dbt compile",
            "setup",
            [
                dbt,
                "compile",
                "--full-refresh",
                *dbt_args,
                *exclude_args,
                "--target-path",
                str(target),
                "--log-path",
                str(self.logs / "dbt"),
                "--quiet",
            ],
            env=env_plain,
            cwd=DBT_PROJECT_DIR,
        )
        self._done(stage)

        out = self.results / "plain.json"
        cmd = [
            sys.executable,
            "-m",
            "pipelines.bench_sql",
            "--manifest",
            str(target / "manifest.json"),
            "--database",
            str(plain_db),
            "--json",
            str(out),
            "--script",
            str(self.work / "plain" / "marts.sql"),
            *(a for t in excludes for a in ("--exclude-source", t)),
        ]
        stage, payload = self._stage("plain SQL", "baseline", cmd, out=out)
        if payload:
            stage.rows_out = sum(payload.get("rows_by_table", {}).values())
            stage.detail["seconds_by_layer"] = payload.get("seconds_by_layer")
            stage.detail["sql_seconds"] = round(payload.get("seconds", 0.0), 1)
            stage.detail["rows_by_table"] = payload.get("rows_by_table")
            stage.notes = f"{payload.get('statements')} statements, SQL {payload.get('seconds', 0):.1f} s"
            if payload.get("error"):
                stage.error = payload["error"]
        self._done(stage)

        for stale in (cli_db, cli_db.with_name(cli_db.name + ".wal")):
            stale.unlink(missing_ok=True)
        cli_db.parent.mkdir(parents=True, exist_ok=True)
        run_target = self.work / "dbt_target_run"
        stage, _ = self._stage(
            "dbt run",
            "baseline",
            [
                dbt,
                "build",
                "--exclude-resource-type",
                "test",
                "--exclude-resource-type",
                "unit_test",
                *dbt_args,
                *exclude_args,
                "--target-path",
                str(run_target),
                "--log-path",
                str(self.logs / "dbt"),
            ],
            env={**self.env, "SHOPLENS_WAREHOUSE": str(cli_db)},
            cwd=DBT_PROJECT_DIR,
        )
        tables = _dbt_tables(target / "manifest.json")
        rows = _count_tables(cli_db, tables)
        stage.rows_out = sum(rows.values()) if rows else None
        stage.detail["rows_by_table"] = rows
        timing = _run_results_seconds(run_target / "run_results.json")
        stage.detail["thread_seconds"] = timing
        stage.notes = "seeds + models, no tests (dbt CLI)" + _thread_note(timing)
        plain_rows = next((s.detail.get("rows_by_table") for s in self.stages if s.name == "plain SQL"), None)
        if plain_rows and rows:
            same = {k.split(".")[-1]: v for k, v in rows.items()} == plain_rows
            stage.detail["rows_match_plain"] = same
            stage.notes += "; row counts = plain SQL" if same else "; ROW COUNTS DIFFER from plain SQL"
        self._done(stage)

    def dagster_stages(self) -> None:
        plan_out = self.results / "plan.json"
        plan_run = run_child(self._child("plan", plan_out), self.env, self.logs / "plan.log")
        if plan_run.returncode != 0 or not plan_out.exists():
            stage = Stage(
                name="dagster plan", kind="setup", status="failed", load_avg=round(os.getloadavg()[0], 1)
            )
            stage.error = (
                json.loads(plan_out.read_text()).get("error") if plan_out.exists() else None
            ) or _tail(self.logs / "plan.log")
            self.stages.append(stage)
            self._done(stage)
            return
        plan = json.loads(plan_out.read_text())["plan"]
        for name, keys in plan:
            out = self.results / f"dagster_{name.replace(' ', '_')}.json"
            stage, payload = self._stage(name, "pipeline", self._child("dagster", out, keys), out=out)
            self._describe_dagster(stage, payload, keys)
            if name == DBT_STAGE and self.dbt_memory_limit:
                stage.notes = f"dbt memory_limit={self.dbt_memory_limit}; {stage.notes}"
                stage.detail["dbt_memory_limit"] = self.dbt_memory_limit
            self._done(stage)

    def nightly(self) -> None:
        """One new day: the nightly job for the newest day on the shop just built (not in end to end).

        What a night after the first costs: the day's landing files ingested again (same files, same
        result), the incremental facts rebuilt for that day's window, the table marts and the tests, the
        stored model kept (trained by the full run), the forecast, decisions and report.
        """
        day = self.landing_manifest.get("last_date")
        if not day:
            return
        out = self.results / "nightly.json"
        stage, payload = self._stage(
            "one new day (nightly)", "nightly", self._child("nightly", out, [day]), out=out
        )
        steps = payload.get("steps", {})
        stage.detail.update(steps=steps, partition=day)
        top = sorted(steps.items(), key=lambda kv: -(kv[1].get("seconds") or 0))[:5]
        stage.notes = f"partition {day}; " + ", ".join(
            f"{k.split('__')[-1]} {v.get('seconds') or 0:.0f}s" for k, v in top
        )
        model = payload.get("materialized", {}).get("decisions/demand_model", {})
        if model:
            stage.notes += "; model " + ("retrained" if model.get("retrained") else "kept")
        self._done(stage)

    def _describe_dagster(self, stage: Stage, payload: dict[str, Any], keys: list[str]) -> None:
        materialized = payload.get("materialized", {})
        steps = payload.get("steps", {})
        stage.detail.update(steps=steps, checks=payload.get("checks"))
        if stage.name == DBT_STAGE:
            warehouse = self.work / "warehouse" / "shoplens.duckdb"
            rows = _count_tables(warehouse, _dbt_tables(DBT_PROJECT_DIR / "target" / "manifest.json"))
            stage.rows_out = sum(rows.values()) if rows else None
            stage.rows_in = next((s.rows_out for s in self.stages if s.name == "ingest"), None)
            stage.detail["rows_by_table"] = rows
            stage.detail["thread_seconds"] = payload.get("dbt_run_results")
            checks = payload.get("checks") or {}
            stage.notes = (
                f"{len(materialized)} models/seeds, {checks.get('evaluated', 0)} tests"
                + (f", {len(checks.get('failed', []))} FAILED" if checks.get("failed") else "")
                + _thread_note(payload.get("dbt_run_results") or {})
            )
            return
        stage.rows_out = sum(int(m.get("dagster/row_count", 0) or 0) for m in materialized.values()) or None
        parts = []
        for step_key, info in sorted(steps.items(), key=lambda kv: -(kv[1].get("seconds") or 0)):
            parts.append(
                f"{step_key.split('__')[-1]} {info.get('seconds') or 0:.0f}s"
                + ("" if info.get("status") == "SUCCESS" else f" {info.get('status')}")
            )
        stage.notes = ", ".join(parts)
        forecast = materialized.get("decisions/demand_forecast")
        if forecast:
            stage.detail["forecast"] = {
                "skus": forecast.get("skus"),
                "model_seconds": forecast.get("seconds"),
                "sku_series_per_second": forecast.get("sku_series_per_second"),
                "rows": forecast.get("dagster/row_count"),
                "step_seconds": steps.get("decisions__demand_forecast", {}).get("seconds"),
            }
            stage.notes += f"; forecast {forecast.get('sku_series_per_second')} SKU-series/s"
        model = materialized.get("decisions/demand_model")
        if model and model.get("retrained"):
            stage.detail["model"] = {
                "train_seconds": model.get("train_seconds"),
                "train_sku_series_per_second": model.get("train_sku_series_per_second"),
                "train_rows": model.get("train_rows"),
                "skus": model.get("skus_trained_on"),
            }
            stage.notes += (
                f"; model trained in {model.get('train_seconds')} s "
                f"({model.get('train_sku_series_per_second')} SKU-series/s)"
            )
        skipped = [k for k, m in materialized.items() if "skipped" in m]
        if skipped:
            stage.notes += "; skipped: " + ", ".join(skipped)


def _thread_note(timing: dict[str, Any]) -> str:
    """'; thread-s: models 30, tests 88, ...' from dbt's run_results (time inside dbt's node executions)."""
    seconds = timing.get("seconds") or {}
    if not seconds:
        return ""
    models = sum(v for k, v in seconds.items() if k.startswith("model:"))
    parts = [f"models {models:.0f}"] + [
        f"{k.replace('_', ' ')}s {v:.0f}"
        for k, v in seconds.items()
        if not k.startswith("model:") and k != "seed"
    ]
    return "; dbt thread-s: " + ", ".join(parts)


def _errors_text(payload: dict[str, Any]) -> str:
    errors = payload.get("errors") or {}
    return "\n".join(f"{step}: {text}" for step, text in errors.items())


def _run_results_seconds(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    totals: dict[str, float] = {}
    for r in json.loads(path.read_text()).get("results", []):
        uid = r.get("unique_id", "")
        kind = uid.split(".")[0]
        if kind == "model":
            kind = f"model:{_layer_of(uid)}"
        totals[kind] = totals.get(kind, 0.0) + float(r.get("execution_time") or 0)
    return {"seconds": {k: round(v, 2) for k, v in sorted(totals.items())}}


# ------------------------------------------------------------------------------------------ results


def summarize(size: str, stages: list[Stage]) -> dict[str, Any]:
    """End to end over the pipeline stages, peak memory, the dbt/plain ratios, forecasting throughput."""
    by_name = {s.name: s for s in stages}
    pipeline = [s for s in stages if s.kind == "pipeline"]
    complete = bool(pipeline) and all(s.status == "ok" for s in pipeline)
    summary: dict[str, Any] = {
        "end_to_end_s": round(sum(s.wall_s for s in pipeline), 1) if pipeline else None,
        "end_to_end_cpu_s": round(sum(s.cpu_s for s in pipeline), 1) if pipeline else None,
        "pipeline_complete": complete,
        "failed_stages": [s.name for s in stages if s.status == "failed"],
        "peak_rss_mb": max((s.peak_rss_mb for s in pipeline), default=None),
        "peak_rss_stage": max(pipeline, key=lambda s: s.peak_rss_mb).name if pipeline else None,
    }
    plain, cli, build = by_name.get("plain SQL"), by_name.get("dbt run"), by_name.get(DBT_STAGE)
    if plain and plain.status == "ok" and plain.wall_s > 0:
        if cli and cli.status == "ok":
            summary["dbt_run_vs_plain"] = round(cli.wall_s / plain.wall_s, 2)
        if build and build.status == "ok":
            summary["dbt_build_vs_plain"] = round(build.wall_s / plain.wall_s, 2)
    forecast = next((s.detail["forecast"] for s in stages if "forecast" in s.detail), None)
    if forecast:
        summary["forecast_skus"] = forecast.get("skus")
        summary["forecast_series_per_s"] = forecast.get("sku_series_per_second")
        if forecast.get("skus") and forecast.get("step_seconds"):
            summary["forecast_series_per_s_step"] = round(forecast["skus"] / forecast["step_seconds"], 1)
    nightly = by_name.get("one new day (nightly)")
    if nightly and nightly.status == "ok":
        summary["nightly_s"] = nightly.wall_s
        summary["nightly_peak_rss_mb"] = nightly.peak_rss_mb
    model = next((s.detail["model"] for s in stages if "model" in s.detail), None)
    if model:
        summary["model_train_s"] = model.get("train_seconds")
        summary["model_train_series_per_s"] = model.get("train_sku_series_per_second")
    return summary


def evaluate_goals(size: str, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal of this size: target, measured value and met (None when it could not be measured)."""
    goals = GOALS.get(size, {})
    out: list[dict[str, Any]] = []

    def add(
        goal: str, target: float, value: float | None, lower_is_better: bool = True, note: str = ""
    ) -> None:
        met = None if value is None else (value <= target if lower_is_better else value >= target)
        out.append({"goal": goal, "target": target, "value": value, "met": met, "note": note})

    complete = summary.get("pipeline_complete")
    if "end_to_end_s" in goals:
        add(
            "end to end (s)",
            goals["end_to_end_s"],
            summary.get("end_to_end_s") if complete else None,
            note="" if complete else "a pipeline stage failed",
        )
    if "peak_rss_mb" in goals:
        add("peak RSS (MB)", goals["peak_rss_mb"], summary.get("peak_rss_mb"))
    if "nightly_s" in goals:
        add("one new day, nightly job (s)", goals["nightly_s"], summary.get("nightly_s"))
    if "dbt_ratio" in goals:
        add(
            "dbt run / plain SQL",
            goals["dbt_ratio"],
            summary.get("dbt_run_vs_plain"),
            note="same work: seeds + models",
        )
        add(
            "dbt build in Dagster / plain SQL",
            goals["dbt_ratio"],
            summary.get("dbt_build_vs_plain"),
            note="adds the data and unit tests and Dagster",
        )
    if "forecast_series_per_s" in goals:
        add(
            "forecasting (SKU-series/s)",
            goals["forecast_series_per_s"],
            summary.get("forecast_series_per_s"),
            lower_is_better=False,
            note="daily forecast from the trained model (no refit)",
        )
    if "model_train_s" in goals:
        add(
            "training the demand model (s)",
            goals["model_train_s"],
            summary.get("model_train_s"),
            note="weekly retrain: one gradient-boosting fit + calibration (+ Prophet on aggregates)",
        )
    return out


def _fmt_int(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


def markdown_size(result: dict[str, Any], machine_info: dict[str, Any]) -> str:
    """The markdown block of one size: header line, stage table, summary and goals."""
    scale = result.get("scale") or {}
    scale_txt = ", ".join(f"{k} {v:,}" for k, v in scale.items() if isinstance(v, int)) if scale else ""
    la0, la1 = result.get("load_avg_start", []), result.get("load_avg_end", [])
    lines = [
        f"### {result['size']}" + (f" ({scale_txt})" if scale_txt else ""),
        "",
        f"Run {result['started']} on {machine_info.get('cores')} cores, {machine_info.get('ram_gb')} GB RAM; "
        f"load average (1/5/15 min) {'/'.join(str(x) for x in la0)} at start, {'/'.join(str(x) for x in la1)} at end.",
        "",
        "| stage | kind | status | wall s | CPU s | peak RSS MB | tree RSS MB | rows in | rows out | load | notes |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in result["stages"]:
        status = s["status"]
        if s.get("error"):
            status += ": " + _cell(error_line(s["error"]))[:160]
        lines.append(
            f"| {s['name']} | {s['kind']} | {_cell(status)} | {s['wall_s']:.1f} | {s['cpu_s']:.1f} | "
            f"{s['peak_rss_mb']:,.0f} | {s['tree_rss_mb']:,.0f} | {_fmt_int(s.get('rows_in'))} | "
            f"{_fmt_int(s.get('rows_out'))} | {s['load_avg']:.1f} | {_cell(s.get('notes', ''))} |"
        )
    sm = result["summary"]
    lines += [
        "",
        f"- end to end (pipeline stages): **{sm.get('end_to_end_s')} s** wall, {sm.get('end_to_end_cpu_s')} s CPU"
        + (
            ""
            if sm.get("pipeline_complete")
            else f" (INCOMPLETE: failed {', '.join(sm.get('failed_stages', []))})"
        ),
    ]
    if sm.get("peak_rss_mb") is not None:
        lines.append(
            f"- peak RSS of a pipeline stage: **{sm['peak_rss_mb']:,.0f} MB** ({sm.get('peak_rss_stage')})"
        )
    if "dbt_run_vs_plain" in sm or "dbt_build_vs_plain" in sm:
        lines.append(
            f"- dbt vs the plain DuckDB script: dbt run (no tests) **{sm.get('dbt_run_vs_plain')}x**, "
            f"dbt build with tests through Dagster **{sm.get('dbt_build_vs_plain')}x**"
        )
    if sm.get("forecast_series_per_s") is not None:
        lines.append(
            f"- forecasting: {sm.get('forecast_skus')} SKUs, **{sm['forecast_series_per_s']} SKU-series/s** "
            f"(daily forecast from the trained model), {sm.get('forecast_series_per_s_step')} SKU-series/s over "
            "the whole asset step"
        )
    if sm.get("nightly_s") is not None:
        lines.append(
            f"- one new day (the nightly job for the newest day on the built shop): **{sm['nightly_s']} s**, "
            f"peak RSS {sm.get('nightly_peak_rss_mb'):,.0f} MB"
        )
    if sm.get("model_train_s") is not None:
        lines.append(
            f"- training the demand model: **{sm['model_train_s']} s** "
            f"({sm.get('model_train_series_per_s')} SKU-series/s)"
        )
    if result.get("goals"):
        lines += ["", "| goal | target | measured | met |", "|---|---:|---:|---|"]
        for g in result["goals"]:
            met = {True: "yes", False: "**no**", None: "n/a"}[g["met"]]
            value = "" if g["value"] is None else f"{g['value']:,}"
            lines.append(
                f"| {g['goal']} | {g['target']:,} | {value} | {met}{' (' + g['note'] + ')' if g['note'] else ''} |"
            )
    return "\n".join(lines) + "\n"


def markdown_report(run: dict[str, Any]) -> str:
    m = run["machine"]
    head = (
        f"# shoplens benchmark, {run['run_at']}\n\n"
        f"Machine: {m.get('cores')} cores, {m.get('ram_gb')} GB RAM, {m.get('platform')}, Python {m.get('python')}.\n"
        "Peak RSS = ru_maxrss of the stage's process tree (largest single process); tree RSS = sampled sum "
        "of the live tree. End to end = ingest + dbt build + the Dagster groups.\n\n"
    )
    return head + "\n".join(markdown_size(r, m) for r in run["sizes"])


def update_docs(docs: Path, run: dict[str, Any]) -> None:
    """Replace each measured size's block between `<!-- bench:<size>:start/end -->` in the docs page."""
    text = docs.read_text() if docs.exists() else "# Benchmarks\n"
    for result in run["sizes"]:
        start, end = f"<!-- bench:{result['size']}:start -->", f"<!-- bench:{result['size']}:end -->"
        block = f"{start}\n{markdown_size(result, run['machine'])}{end}"
        if start in text and end in text:
            before, rest = text.split(start, 1)
            text = before + block + rest.split(end, 1)[1]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    docs.write_text(text)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        return child_main(argv[1:])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), help=f"of {', '.join(SIZES)}")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=PROJECT_ROOT / "data" / "bench",
        help="data of size S goes to <work-dir>/S/ (landing is reused when it holds the same shop)",
    )
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "data" / "bench", help="results folder")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--no-baselines", action="store_true", help="skip the plain-SQL and dbt CLI comparison"
    )
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument(
        "--ingest-memory-limit",
        default=None,
        metavar="SIZE",
        help="cap DuckDB's memory in the ingest stage, e.g. 2GB (default: DuckDB's 80%% of RAM)",
    )
    parser.add_argument(
        "--dbt-memory-limit",
        default=None,
        metavar="SIZE",
        help="DuckDB memory_limit for dbt (SHOPLENS_DBT_MEMORY_LIMIT); default 3GB, 8GB at large",
    )
    parser.add_argument(
        "--reuse-ingest",
        action="store_true",
        help="keep the raw layer of an earlier run of the same landing and report that run's ingest "
        "figures (for re-measuring the later stages of a long size)",
    )
    args = parser.parse_args(argv)
    sizes = [s for part in args.sizes for s in part.replace(",", " ").split()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size(s) {', '.join(unknown)}; known: {', '.join(SIZES)}")

    info = machine()
    print(
        f"shoplens bench: sizes {', '.join(sizes)}; {info['cores']} cores, {info['ram_gb']} GB RAM; "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    run_at = datetime.now().astimezone()
    run: dict[str, Any] = {"run_at": run_at.isoformat(timespec="seconds"), "machine": info, "sizes": []}
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = run_at.strftime("%Y%m%d_%H%M%S")
    failed_sizes: list[str] = []
    for size in sizes:
        short = disk_shortfall(size, (args.work_dir / size).resolve())
        if short:
            print(f"[{size}] not run: {short}", file=sys.stderr, flush=True)
            failed_sizes.append(size)
            continue
        result = SizeRun(
            size,
            (args.work_dir / size).resolve(),
            args.seed,
            not args.no_baselines,
            log=lambda m: print(m, flush=True),
            ingest_memory_limit=args.ingest_memory_limit,
            dbt_memory_limit=args.dbt_memory_limit,
            reuse_ingest=args.reuse_ingest,
        ).run()
        run["sizes"].append(result)
        # Written after every size, so a long run leaves its results even if a later size is stopped.
        (args.out / f"bench_{stamp}.json").write_text(json.dumps(run, indent=2, default=str))
        report = markdown_report(run)
        (args.out / f"bench_{stamp}.md").write_text(report)
        (args.out / "latest.md").write_text(report)
    print()
    print(markdown_report(run))
    print(f"results: {args.out / f'bench_{stamp}.json'}, {args.out / 'latest.md'}")
    if not args.no_docs:
        update_docs(DOCS_PATH, run)
        print(f"updated {DOCS_PATH.relative_to(PROJECT_ROOT)}")
    if failed_sizes:
        print(f"not run for lack of disk: {', '.join(failed_sizes)}", file=sys.stderr)
    complete = all(r["summary"]["pipeline_complete"] for r in run["sizes"])
    return 0 if complete and not failed_sizes else 1


if __name__ == "__main__":
    raise SystemExit(main())
