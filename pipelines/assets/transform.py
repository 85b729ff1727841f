"""dbt models as Dagster assets: `dbt build` (models, seeds, data tests and unit tests) in one step.

The manifest is prepared by `make manifest` (and the test session fixture), never while Dagster imports
this module. dbt sources carry `meta.dagster.asset_key` = ["raw", <table>], so the graph runs unbroken
from the ingestion assets to the marts. All models share one op and one slot of the `duckdb_writer` pool.
"""


import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets

from pipelines.core.settings import DBT_PROJECT_DIR, export_env, get_settings
from pipelines.sources.base import read_manifest

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)

GROUPS = {"staging": "staging", "intermediate": "intermediate", "marts": "marts"}


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


def missing_source_excludes() -> list[str]:
    """dbt selectors for everything built on a table the current source does not provide."""
    manifest = read_manifest(get_settings().landing_dir) or {}
    return [f"source:raw.{t}+" for t in manifest.get("missing_tables", [])]


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=translator,
    pool="duckdb_writer",
)
def shoplens_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    """Build staging, intermediate and mart models with their tests (dbt build)."""
    export_env()
    args = ["build"]
    excludes = missing_source_excludes()
    if excludes:
        context.log.warning(
            "skipping the models built on tables this source lacks: " + ", ".join(e.split(".")[1][:-1] for e in excludes)
        )
        args += ["--exclude", *excludes]
    manifest = read_manifest(get_settings().landing_dir) or {}
    if manifest.get("returns_are_credit_lines"):
        args += ["--vars", json.dumps({"returns_are_credit_lines": True})]
    yield from dbt.cli(args, context=context).stream()


# The dbt beside this interpreter (the project venv), so the UI and tests work without an activated venv.
_DBT = Path(sys.executable).parent / "dbt"
dbt_resource = DbtCliResource(project_dir=dbt_project, dbt_executable=str(_DBT) if _DBT.exists() else "dbt")
