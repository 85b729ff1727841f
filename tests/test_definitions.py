"""The code location loads, and its graph is the one we mean to ship."""

from __future__ import annotations

import dagster as dg

from pipelines.core.schemas import TABLES


def test_definitions_load_with_expected_assets() -> None:
    from pipelines.definitions import defs

    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    for table in TABLES:
        assert f"raw/{table}" in keys
        assert f"stg_raw__{table}" in keys
    assert {"customer_rfm", "nps_by_month", "inventory_turnover", "carbon_per_order"} <= keys


def test_dbt_sources_hang_off_the_ingestion_assets() -> None:
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    parents = graph.get(dg.AssetKey("stg_raw__orders")).parent_keys
    assert dg.AssetKey(["raw", "orders"]) in parents


def test_jobs_schedule_and_sensor_exist() -> None:
    from pipelines.definitions import defs

    assert defs.resolve_job_def("nightly_shop_refresh")
    assert defs.resolve_job_def("ingest_new_landing_files")
    assert defs.resolve_schedule_def("nightly_at_2am")
    assert defs.resolve_sensor_def("landing_folder_sensor")


def test_nightly_schedule_targets_the_day_that_just_ended() -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from pipelines.definitions import defs

    schedule = defs.resolve_schedule_def("nightly_at_2am")
    tick = datetime(2025, 3, 10, 2, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    with dg.build_schedule_context(scheduled_execution_time=tick, repository_def=defs.get_repository_def()) as ctx:
        request = schedule.evaluate_tick(ctx).run_requests[0]
    assert request.partition_key == "2025-03-09"
