"""The one Definitions object of the shoplens code location."""

from __future__ import annotations

import dagster as dg

from pipelines.assets.customers import customer_assets
from pipelines.assets.decisions import decision_assets
from pipelines.assets.forecasting import forecasting_assets
from pipelines.assets.ingest import ingest_assets, ingest_checks
from pipelines.assets.reports import report_assets
from pipelines.assets.transform import dbt_resource, published_warehouse, shoplens_dbt_models
from pipelines.core.settings import export_env
from pipelines.jobs import all_jobs, schedules
from pipelines.sensors import landing_sensor

export_env()

defs = dg.Definitions(
    assets=[
        *ingest_assets,
        shoplens_dbt_models,
        published_warehouse,
        *forecasting_assets,
        *decision_assets,
        *customer_assets,
        *report_assets,
    ],
    asset_checks=ingest_checks,
    jobs=all_jobs,
    schedules=schedules,
    sensors=[landing_sensor],
    resources={"dbt": dbt_resource},
)
