"""How much the nightly dbt build redoes: a date window for the incremental facts, or a full rebuild.

The large facts (fct_order_lines, fct_sku_daily_demand, traffic_funnel) are dbt incremental models on
DuckDB: a run replaces the days in [min_date, max_date] (dbt vars) and keeps the rest. Their previous
state lives in the warehouse's `build` schema, beside a one-row state table this module writes after
every successful build. Before a build it decides (no Dagster import, so it is testable on its own):

* **Full rebuild** (`dbt build --full-refresh`) when an incremental table is missing from `build` (first
  run, new warehouse file), when there is no state (the last successful build predates this, or the
  state was dropped), or when anything a stored row depends on beyond its own day changed since the last
  build: the source (`_source.json`: another source, input, scale or seed; `pipelines.backfill` clears the
  raw layer then), the returns convention, the product snapshot (a row carries product attributes), the
  SQL of the incremental models or anything upstream of them (models, macros, the dbt version).
* **Otherwise a window**: the run's partition (the nightly's one day, a backfill's range), widened to every
  raw day of the tables the facts read that changed since the last build (a late file ingested by the
  landing sensor, an erasure rewriting old partitions, a re-ingested correction): a day's Parquet file is
  new, gone, or has another size or modification time. A run without a partition (a manual
  "materialize all") passes no window, so the incremental models rebuild every day.

See docs/incremental.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.core.schemas import DAILY_TABLES

STATE_TABLE = "_shoplens_incremental_state"
STATE_VERSION = 1
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


@dataclass(frozen=True)
class BuildPlan:
    """What the dbt asset passes to `dbt build`, and why."""

    full_refresh: bool
    window: tuple[str, str] | None  # (min_date, max_date), None: every day
    reason: str
    state: dict[str, Any] = field(default_factory=dict)  # written after the build succeeds

    def dbt_vars(self) -> dict[str, str]:
        if self.full_refresh or self.window is None:
            return {}
        return {"min_date": self.window[0], "max_date": self.window[1]}


def run_window(tags: Mapping[str, str]) -> tuple[str, str] | None:
    """(first, last) partition key of a run from its tags: one day, a single-run backfill range, or None."""
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if start and end:
        return (min(start, end), max(start, end))
    key = tags.get(PARTITION_TAG)
    return (key, key) if key else None


def incremental_models(manifest: Mapping[str, Any]) -> list[str]:
    """unique_ids of the models materialized incremental (in the target the manifest was parsed for)."""
    return sorted(
        uid
        for uid, node in manifest["nodes"].items()
        if node.get("resource_type") == "model"
        and node.get("config", {}).get("materialized") == "incremental"
    )


def upstream(manifest: Mapping[str, Any], ids: Iterable[str]) -> set[str]:
    """The given nodes and everything they are built from (models, seeds, sources)."""
    parents = manifest.get("parent_map", {})
    seen: set[str] = set()
    frontier = list(ids)
    while frontier:
        uid = frontier.pop()
        if uid in seen:
            continue
        seen.add(uid)
        frontier.extend(parents.get(uid, []))
    return seen


def code_fingerprint(manifest: Mapping[str, Any], ids: Iterable[str]) -> str:
    """Hash of the SQL behind the given nodes: their file checksums, the macros they call (recursively)
    and the dbt version, so editing any of them makes the next build a full one."""
    nodes, macros = manifest["nodes"], manifest.get("macros", {})
    digest = hashlib.sha256(str(manifest.get("metadata", {}).get("dbt_version")).encode())
    wanted_macros: set[str] = set()
    for uid in sorted(ids):
        node = nodes.get(uid)
        if node is None:
            continue
        digest.update(f"{uid}:{node.get('checksum', {}).get('checksum')}".encode())
        digest.update(json.dumps(node.get("config", {}).get("materialized")).encode())
        wanted_macros.update(node.get("depends_on", {}).get("macros", []))
    seen: set[str] = set()
    while wanted_macros:
        mid = wanted_macros.pop()
        if mid in seen or mid not in macros:
            continue
        seen.add(mid)
        wanted_macros.update(macros[mid].get("depends_on", {}).get("macros", []))
    for mid in sorted(seen):
        digest.update(f"{mid}:{macros[mid].get('macro_sql', '')}".encode())
    return digest.hexdigest()


def source_tables(manifest: Mapping[str, Any], ids: Iterable[str]) -> set[str]:
    """Raw tables (dbt sources `raw.<table>`) the given nodes are built from."""
    return {uid.split(".")[-1] for uid in upstream(manifest, ids) if uid.startswith("source.shoplens.raw.")}


def raw_listing(raw_dir: Path, tables: Iterable[str]) -> dict[str, dict[str, list[int]]]:
    """{table: {day: [mtime_ns, size]}} of the daily raw partitions (the change record of the raw layer)."""
    out: dict[str, dict[str, list[int]]] = {}
    for table in sorted(tables):
        days: dict[str, list[int]] = {}
        for path in sorted((raw_dir / table).glob("date=*/*.parquet")):
            stat = path.stat()
            day = path.parent.name.removeprefix("date=")
            if day in days:  # several files in one day folder: fold them together
                days[day] = [max(days[day][0], stat.st_mtime_ns), days[day][1] + stat.st_size]
            else:
                days[day] = [stat.st_mtime_ns, stat.st_size]
        out[table] = days
    return out


def changed_days(
    before: Mapping[str, Mapping[str, list[int]]], after: Mapping[str, Mapping[str, list[int]]]
) -> set[str]:
    """Days whose raw partition of any table appeared, disappeared or changed between two listings."""
    out: set[str] = set()
    for table in set(before) | set(after):
        old, new = before.get(table, {}), after.get(table, {})
        out |= {day for day in set(old) | set(new) if list(old.get(day, [])) != list(new.get(day, []))}
    return out


def snapshot_fingerprint(raw_dir: Path, table: str) -> str | None:
    """Hash of a reference snapshot's content (lineage columns left out, rows sorted): a re-ingestion of
    the same products gives the same hash, any changed attribute or added SKU another."""
    files = sorted((raw_dir / table / "snapshot").glob("*.parquet"))
    if not files:
        return None
    frame = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
    frame = frame.select(sorted(c for c in frame.columns if not c.startswith("_")))
    frame = frame.sort(frame.columns, nulls_last=True)
    return hashlib.sha256(frame.write_csv().encode()).hexdigest()


def build_state(
    manifest: Mapping[str, Any],
    source: Mapping[str, Any] | None,
    raw_dir: Path,
    dbt_vars: Mapping[str, Any],
    excluded: Iterable[str] = (),
) -> dict[str, Any]:
    """Everything the stored incremental rows depend on besides their own days, and the raw listing."""
    excluded = set(excluded)
    models = [m for m in incremental_models(manifest) if m.split(".")[-1] not in excluded]
    tables = source_tables(manifest, models)
    daily = sorted(t for t in tables if t in DAILY_TABLES)
    reference = sorted(t for t in tables if t not in DAILY_TABLES)
    fingerprint = {
        "version": STATE_VERSION,
        "source": {k: (source or {}).get(k) for k in ("source", "input", "scale", "seed")},
        "vars": {k: v for k, v in sorted(dbt_vars.items()) if k not in ("min_date", "max_date")},
        "code": code_fingerprint(manifest, upstream(manifest, models)),
        "snapshots": {t: snapshot_fingerprint(raw_dir, t) for t in reference},
        "models": sorted(m.split(".")[-1] for m in models),
    }
    return {"fingerprint": fingerprint, "raw": raw_listing(raw_dir, daily)}


def plan_build(
    state: Mapping[str, Any],
    stored: Mapping[str, Any] | None,
    built_relations: set[str],
    window: tuple[str, str] | None,
) -> BuildPlan:
    """Full rebuild or window (see the module docstring). `state` is `build_state(...)` now, `stored`
    what the last successful build wrote, `built_relations` the table names in the build schema."""
    models = state["fingerprint"]["models"]
    missing = sorted(set(models) - built_relations)
    if missing:
        return BuildPlan(True, None, f"no previous build of {', '.join(missing)}: full build", dict(state))
    if not stored:
        return BuildPlan(True, None, "no record of the last build: full build", dict(state))
    old, new = stored.get("fingerprint", {}), state["fingerprint"]
    differs = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if differs:
        what = {
            "source": "the source changed",
            "vars": "the dbt vars changed",
            "code": "the SQL of the incremental models or their parents changed",
            "snapshots": "a reference snapshot (products) changed",
            "models": "the set of incremental models changed",
            "version": "the state format changed",
        }
        return BuildPlan(True, None, "; ".join(what.get(k, k) for k in differs) + ": full build", dict(state))
    if window is None:
        return BuildPlan(False, None, "no partition: every day rebuilt in place", dict(state))
    pending = stored.get("pending")
    if pending == "all":
        return BuildPlan(
            False, None, "the last build over every day failed: every day rebuilt in place", dict(state)
        )
    changed = changed_days(stored.get("raw", {}), state["raw"])
    if pending:  # days a failed build may have half replaced since the last good one
        changed |= set(pending)
    lo, hi = window
    if changed:
        lo, hi = min(lo, *changed), max(hi, *changed)
    reason = f"days {lo} .. {hi}"
    if (lo, hi) != window:
        reason += (
            f" (partition {window[0]} .. {window[1]}, widened to the raw days changed since the last build"
            + (" and the window of a failed build" if pending else "")
            + ")"
        )
    return BuildPlan(False, (lo, hi), reason, dict(state))


def pending_state(stored: Mapping[str, Any] | None, plan: BuildPlan) -> dict[str, Any] | None:
    """What to store *before* the build: if it fails half way, the next run must redo what it touched.

    A full build forgets the last one (None: the next run is full too); a window build keeps the last good
    state and adds its window to `pending` (the next run's window covers it, even when the raw files are
    back as they were); a build over every day marks `pending: all`.
    """
    if plan.full_refresh or not stored:
        return None
    out = dict(stored)
    if plan.window is None or stored.get("pending") == "all":
        out["pending"] = "all"
    else:
        days = [*plan.window, *(stored.get("pending") or [])]
        out["pending"] = [min(days), max(days)]
    return out


def read_state(con, schema: str) -> tuple[dict[str, Any] | None, set[str]]:
    """(stored state or None, table names in `schema`) from an open DuckDB connection."""
    tables = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [schema]
        ).fetchall()
    }
    if STATE_TABLE not in tables:
        return None, tables
    rows = con.execute(f'SELECT state FROM "{schema}"."{STATE_TABLE}" LIMIT 1').fetchall()
    return (json.loads(rows[0][0]) if rows else None), tables


def write_state(con, schema: str, state: Mapping[str, Any]) -> None:
    """Replace the one-row state table (in the build schema, next to the tables it describes)."""
    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    con.execute(f'CREATE OR REPLACE TABLE "{schema}"."{STATE_TABLE}" (state VARCHAR, written_at TIMESTAMP)')
    con.execute(
        f'INSERT INTO "{schema}"."{STATE_TABLE}" VALUES (?, current_timestamp::TIMESTAMP)',
        [json.dumps(state)],
    )


def clear_state(con, schema: str) -> None:
    """Forget the last build, so the next one is full (before a full build that may fail half way)."""
    con.execute(f'DROP TABLE IF EXISTS "{schema}"."{STATE_TABLE}"')
