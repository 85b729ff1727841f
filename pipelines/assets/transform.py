"""dbt models as Dagster assets: `dbt build` (models, seeds, data tests and unit tests) in one step.

The manifest is prepared by `make manifest` (and the test session fixture), never while Dagster imports
this module. dbt sources carry `meta.dagster.asset_key` = ["raw", <table>], so the graph runs unbroken
from the ingestion assets to the marts. All models share one op and one slot of the `duckdb_writer` pool.
"""

import json
import sys
from collections.abc import Mapping
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from pipelines import incremental
from pipelines.core.settings import DBT_PROJECT_DIR, export_env, get_settings
from pipelines.sources.base import read_manifest

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)

GROUPS = {"staging": "staging", "intermediate": "intermediate", "marts": "marts"}

# dbt builds and tests in `build` (where the incremental facts keep their state between runs); the
# published_warehouse asset copies a passing build into `main`, which everything else reads.
BUILD_SCHEMA = "build"
SERVING_SCHEMA = "main"


class ShoplensTranslator(DagsterDbtTranslator):
    """dbt folders become asset groups; every model is owned by the analytics team."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props.get("resource_type") == "seed":
            return "reference"
        fqn = dbt_resource_props.get("fqn", [])
        for part in fqn[1:-1]:
            if part in GROUPS:
                return GROUPS[part]
        return "marts"

    def get_owners(self, dbt_resource_props: Mapping[str, Any]):
        return ["team:analytics"]


translator = ShoplensTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def models_needing_missing_tables(manifest_path: Path, missing_tables: list[str]) -> set[str]:
    """unique_ids of the dbt nodes built on a table the source lacks.

    Staging views are built over the empty raw table ingestion writes (zero rows), and a model that
    declares the table in `meta.optional_sources` (fct_sku_daily_demand reads inventory when there is
    some) is built anyway, and so are its children unless they need another missing table.
    """
    manifest = json.loads(Path(manifest_path).read_text())
    children = manifest.get("child_map", {})
    needing: set[str] = set()
    seen: set[str] = set()
    for table in missing_tables:
        frontier = [f"source.shoplens.raw.{table}"]
        while frontier:
            for child in children.get(frontier.pop(), []):
                node = manifest["nodes"].get(child, {})
                optional = node.get("config", {}).get("meta", {}).get("optional_sources", [])
                if child in needing or child in seen or table in optional:
                    continue
                seen.add(child)
                frontier.append(child)
                # Staging views (and their tests) build fine over the empty raw table: zero rows, not wrong
                # rows. Everything built on them that needs the data is left out.
                if "staging" not in node.get("fqn", []):
                    needing.add(child)
    for uid, node in manifest["nodes"].items():
        required = set(node.get("config", {}).get("meta", {}).get("requires_sources", []))
        if required & set(missing_tables):
            needing.add(uid)
            needing |= _descendants(children, uid)
    return needing


def _descendants(children: dict, uid: str) -> set[str]:
    out, frontier = set(), [uid]
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in out:
                out.add(child)
                frontier.append(child)
    return out


def missing_source_excludes() -> list[str]:
    """dbt selectors (model and seed names) for everything built on a table the source lacks."""
    manifest = read_manifest(get_settings().landing_dir) or {}
    ids = models_needing_missing_tables(dbt_project.manifest_path, manifest.get("missing_tables", []))
    return sorted(i.split(".")[-1] for i in ids if i.startswith(("model.", "seed.")))


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=translator,
    pool="duckdb_writer",
)
def shoplens_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    """Build staging, intermediate and mart models with their tests (dbt build).

    The large facts are incremental (see pipelines/incremental.py and docs/incremental.md): a nightly run
    passes the day window of its partition (widened to raw days that changed since the last build), and a
    first run, a new source, changed products or changed model code get `--full-refresh`.
    """
    export_env()
    args = ["build"]
    excludes = missing_source_excludes()
    if excludes:
        context.log.warning("skipping the models built on tables this source lacks: " + ", ".join(excludes))
        # One argument: dagster-dbt rewrites the selection flags and keeps only one value per flag.
        args += ["--exclude", " ".join(excludes)]
    manifest = read_manifest(get_settings().landing_dir) or {}
    dbt_vars: dict[str, Any] = {}
    if manifest.get("returns_are_credit_lines"):
        dbt_vars["returns_are_credit_lines"] = True
    plan = plan_incremental_build(context.run.tags, manifest, dbt_vars, excludes, log=context.log.info)
    context.log.info(f"dbt build, {'full refresh' if plan.full_refresh else 'incremental'}: {plan.reason}")
    if plan.full_refresh:
        args.append("--full-refresh")
    dbt_vars |= plan.dbt_vars()
    if dbt_vars:
        args += ["--vars", json.dumps(dbt_vars)]
    produced: set[dg.AssetKey] = set()
    # A failing build raises at the end of the stream: the state below is then not written, and the one
    # written before the build makes the next run redo this run's days (or everything).
    for event in dbt.cli(args, context=context).stream():
        if isinstance(event, dg.Output):
            produced.add(context.asset_key_for_output(event.output_name))
        elif isinstance(event, dg.AssetMaterialization | dg.MaterializeResult) and event.asset_key is not None:
            produced.add(event.asset_key)
        yield event
    # Only a build of every incremental model absorbs the raw changes; after a partial selection the
    # state written before the build stays, so the next full run redoes these days for the others too.
    unbuilt = set(plan.state["fingerprint"]["models"]) - {k.path[-1] for k in context.selected_asset_keys}
    if unbuilt:
        context.log.info("not recording the build: it left out the incremental " + ", ".join(sorted(unbuilt)))
    else:
        from pipelines.core.warehouse import connect

        with connect(log=context.log.info) as con:
            incremental.write_state(con, BUILD_SCHEMA, plan.state)
    if excludes:
        # Models left out for lack of a source table still report, so the graph downstream runs (and its
        # assets say what they skipped) instead of being skipped wholesale.
        lacking = ", ".join(manifest.get("missing_tables", []))
        missing = context.selected_asset_keys - produced
        deps = context.assets_def.asset_deps
        # Dagster wants a multi-asset's outputs in dependency order (graphlib: the standard library's sorter).
        order = TopologicalSorter({k: deps.get(k, set()) & missing for k in missing}).static_order()
        for key in order:
            yield dg.MaterializeResult(
                asset_key=key,
                metadata={"skipped": dg.MetadataValue.text(f"not built: the source lacks {lacking}")},
            )


def plan_incremental_build(
    tags: Mapping[str, str],
    source: Mapping[str, Any],
    dbt_vars: Mapping[str, Any],
    excludes: list[str],
    log=None,
) -> incremental.BuildPlan:
    """Decide full refresh or day window from the build schema's state, and record the attempt first.

    Reads the state the last successful build left in schema `build`, compares it with the raw layer,
    source, products and model code now (pipelines/incremental.py), and before returning stores what a
    failure of this build would leave to redo. Holds the warehouse only for these few statements.
    """
    from pipelines.core.warehouse import connect

    dbt_manifest = json.loads(Path(dbt_project.manifest_path).read_text())
    state = incremental.build_state(dbt_manifest, source, get_settings().raw_dir, dbt_vars, excludes)
    with connect(log=log) as con:
        stored, tables = incremental.read_state(con, BUILD_SCHEMA)
        plan = incremental.plan_build(state, stored, tables, incremental.run_window(tags))
        pending = incremental.pending_state(stored, plan)
        if pending is None:
            incremental.clear_state(con, BUILD_SCHEMA)
        else:
            incremental.write_state(con, BUILD_SCHEMA, pending)
    return plan


# The dbt beside this interpreter (the project venv), so the UI and tests work without an activated venv.
_DBT = Path(sys.executable).parent / "dbt"
dbt_resource = DbtCliResource(project_dir=dbt_project, dbt_executable=str(_DBT) if _DBT.exists() else "dbt")


def published_relations(manifest_path: Path, missing_tables: list[str] | None = None) -> list[tuple[str, str, bool]]:
    """(name, table|view, built) of every dbt model and seed; built is False downstream of a missing source.

    Intermediate models stored as tables (int_orders, int_shipments, ...) are marked not built: they are
    the build's own caches, which nothing outside dbt reads, and copying them would add to every publish
    (tens of millions of rows at the large size); a copy left in `main` by an earlier version is dropped.
    Intermediate views (int_as_of_date) are published like the others, unless they read such a table
    (int_review_scores over int_review_facts): a view in `main` would show the build before its tests.
    """
    manifest = json.loads(Path(manifest_path).read_text())
    skipped = models_needing_missing_tables(manifest_path, missing_tables or [])

    def intermediate_table(node: Mapping[str, Any]) -> bool:
        materialized = node.get("config", {}).get("materialized", "table")
        return materialized != "view" and "intermediate" in node.get("fqn", [])[1:2]

    out = []
    for uid, node in manifest["nodes"].items():
        if node["resource_type"] not in ("model", "seed"):
            continue
        materialized = node.get("config", {}).get("materialized", "table")
        name = node.get("alias") or node["name"]
        kind = "view" if materialized == "view" else "table"
        parents = [manifest["nodes"].get(p, {}) for p in node.get("depends_on", {}).get("nodes", [])]
        internal = intermediate_table(node) or (
            kind == "view" and "intermediate" in node.get("fqn", [])[1:2] and any(map(intermediate_table, parents))
        )
        out.append((name, kind, uid not in skipped and not internal))
    return sorted(out)


# Written by the incremental models in the build schema (dbt_project/macros/incremental.sql): the window
# values each run replaced, or a full_build row. Publish reads it, then empties it.
CHANGES_TABLE = "_shoplens_changes"


def window_columns(manifest_path: Path) -> dict[str, str]:
    """{model name: window column} of the incremental models (DuckDB), which publish can copy by window."""
    manifest = json.loads(Path(manifest_path).read_text())
    out = {}
    for node in manifest["nodes"].values():
        config = node.get("config", {})
        if node["resource_type"] == "model" and config.get("materialized") == "incremental":
            if config.get("window_column"):
                out[node.get("alias") or node["name"]] = config["window_column"]
    return out


def _columns(con, schema: str, name: str) -> list[tuple[str, str]]:
    return con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [schema, name],
    ).fetchall()


def _count(con, relation: str) -> int:
    return con.execute(f"SELECT count(*) FROM {relation}").fetchall()[0][0]


def _publish_by_window(con, name: str, column: str, changes: dict[str, Any]) -> str | None:
    """Replace only the changed window values of `name` in the serving schema; None when it must be copied.

    `changes` holds what the incremental model logged since the last publish (`full`: built from scratch;
    `values`: the window values whose rows it replaced, None for rows without one). Copying is the answer
    whenever this cannot be sure: no serving copy yet, other columns, a full build, or row counts that
    differ afterwards (a row that moved to another day without its old day being logged).
    """
    src, dst = f'{BUILD_SCHEMA}."{name}"', f'{SERVING_SCHEMA}."{name}"'
    if _columns(con, SERVING_SCHEMA, name) != _columns(con, BUILD_SCHEMA, name):
        return None
    entry = changes.get(name)
    if entry is not None and entry["full"]:
        return None
    if entry is not None and entry["values"]:
        values = entry["values"]
        days = [v for v in values if v is not None]
        quoted = f'"{column}"'
        conditions = []
        if days:
            conditions.append(
                f"{quoted} IN (SELECT window_value FROM {BUILD_SCHEMA}.{CHANGES_TABLE} "
                f"WHERE model = ? AND window_value IS NOT NULL)"
            )
        if None in values:
            conditions.append(f"{quoted} IS NULL")
        where = " OR ".join(conditions)
        params = [name] if days else []
        con.execute(f"DELETE FROM {dst} WHERE {where}", params)
        con.execute(f"INSERT INTO {dst} SELECT * FROM {src} WHERE {where}", params)
    if _count(con, dst) != _count(con, src):
        return None
    n = len(entry["values"]) if entry else 0
    return f"{n} {column} value{'s' if n != 1 else ''}"


def _read_changes(con) -> dict[str, dict[str, Any]] | None:
    """{model: {full, values}} from the build's change log, or None when there is no log (copy all)."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [BUILD_SCHEMA, CHANGES_TABLE],
    ).fetchall()[0][0]
    if not exists:
        return None
    out: dict[str, dict[str, Any]] = {}
    rows = con.execute(
        f"SELECT DISTINCT model, window_value, full_build FROM {BUILD_SCHEMA}.{CHANGES_TABLE}"
    ).fetchall()
    for model, value, full in rows:
        entry = out.setdefault(model, {"full": False, "values": set()})
        if full:
            entry["full"] = True
        else:
            entry["values"].add(value)
    return out


def publish(
    con, relations: list[tuple[str, str, bool]], log=None, windows: Mapping[str, str] | None = None
) -> dict[str, int]:
    """Copy the audited build into the serving schema in ONE transaction (write-audit-publish).

    dbt builds into schema `build` and runs its data and unit tests there; only when the whole build
    passed does this step run, so decisions, exports, notebooks and the report (which read `main`) never
    see a mart whose tests failed: they keep the last good version. Tables are copied; views are
    re-pointed at the build schema (they are projections of raw, always current).

    The incremental models (`windows`: name -> window column) are published by window when the build's
    change log says which window values their runs replaced since the last publish: those rows are
    deleted from the serving copy and inserted from the build, and the row counts must then agree (else
    the table is copied whole). A nightly run so moves one day of the 48.7 M order lines at the large
    size instead of all of them. The log is emptied in the same transaction.
    """
    windows = windows or {}
    present = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [BUILD_SCHEMA]
        ).fetchall()
    }
    counts: dict[str, int] = {}
    by_window: dict[str, str] = {}
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SERVING_SCHEMA}")
    con.execute("BEGIN TRANSACTION")
    try:
        changes = _read_changes(con)
        for name, kind, built in relations:
            src, dst = f'{BUILD_SCHEMA}."{name}"', f'{SERVING_SCHEMA}."{name}"'
            existing = con.execute(
                "SELECT table_type FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                [SERVING_SCHEMA, name],
            ).fetchall()
            if existing and (not built or (existing[0][0] == "VIEW") != (kind == "view")):
                # Gone for this source (or changed kind): never serve a mart left over from another source.
                con.execute(f"DROP {'VIEW' if existing[0][0] == 'VIEW' else 'TABLE'} {dst}")
                existing = []
            if not built or name not in present:
                continue
            if kind == "view":
                con.execute(f"CREATE OR REPLACE VIEW {dst} AS SELECT * FROM {src}")
                continue
            how = None
            if name in windows and changes is not None and existing:
                how = _publish_by_window(con, name, windows[name], changes)
            if how is None:
                con.execute(f"CREATE OR REPLACE TABLE {dst} AS SELECT * FROM {src}")
            else:
                by_window[name] = how
            counts[name] = _count(con, dst)
        if changes is not None:
            con.execute(f"DELETE FROM {BUILD_SCHEMA}.{CHANGES_TABLE}")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    if log:
        log(f"published {len(counts)} tables and the views of the audited build into schema {SERVING_SCHEMA}")
        if by_window:
            log("published by window (only the changed rows): " + ", ".join(f"{k} ({v})" for k, v in by_window.items()))
    return counts


@dg.asset(
    key=["published_warehouse"],
    group_name="marts",
    deps=list(shoplens_dbt_models.keys),
    kinds={"duckdb"},
    owners=["team:analytics"],
    pool="duckdb_writer",
    description=(
        "Write-audit-publish: dbt builds and tests every model in schema `build`; only a build whose tests all "
        "passed gets here, and its marts are copied into schema `main` in one transaction. Decisions, exports, "
        "notebooks and the report read `main`, so a failing mart never replaces the last good version."
    ),
)
def published_warehouse(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    from pipelines.core.warehouse import connect

    missing = (read_manifest(get_settings().landing_dir) or {}).get("missing_tables", [])
    relations = published_relations(dbt_project.manifest_path, missing)
    windows = window_columns(dbt_project.manifest_path)
    with connect(log=context.log.info) as con:
        counts = publish(con, relations, log=context.log.info, windows=windows)
    return dg.MaterializeResult(
        metadata={
            "tables_published": len(counts),
            "rows_by_table": dg.MetadataValue.json(counts),
            "dagster/row_count": sum(counts.values()),
        }
    )
