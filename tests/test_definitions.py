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
    with dg.build_schedule_context(
        scheduled_execution_time=tick, repository_def=defs.get_repository_def()
    ) as ctx:
        request = schedule.evaluate_tick(ctx).run_requests[0]
    assert request.partition_key == "2025-03-09"


def test_nightly_only_predicts_and_the_weekly_review_retrains() -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()

    def keys(job: str) -> set[str]:
        selection = defs.resolve_job_def(job).asset_layer.executable_asset_keys
        return {k.to_user_string() for k in selection}

    nightly, weekly = keys("nightly_shop_refresh"), keys("weekly_model_review")
    fits = {"decisions/forecast_backtest", "decisions/replenishment_simulation", "decisions/clv_calibration"}
    assert not fits & nightly and fits <= weekly
    assert {"decisions/demand_model", "decisions/demand_forecast", "reports/decision_report"} <= nightly
    assert "decisions/demand_model" in weekly and "decisions/demand_forecast" not in weekly
    # The forecast reads the trained model: lineage says so.
    parents = graph.get(dg.AssetKey(["decisions", "demand_forecast"])).parent_keys
    assert dg.AssetKey(["decisions", "demand_model"]) in parents

    schedule = defs.resolve_schedule_def("weekly_retrain_sunday_4am")
    tick = datetime(2025, 3, 9, 4, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Sunday
    with dg.build_schedule_context(
        scheduled_execution_time=tick, repository_def=defs.get_repository_def()
    ) as ctx:
        request = schedule.evaluate_tick(ctx).run_requests[0]
    assert request.run_config["ops"]["decisions__demand_model"]["config"]["retrain"] == "always"
    assert schedule.cron_schedule == "0 4 * * 0"
