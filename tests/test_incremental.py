"""Incremental nightly dbt runs: day by day, the incremental facts equal a full rebuild of the same raw data.

The tiny shop's raw layer loses its last two days; the dbt asset then runs for D-2 (the two days go from
the facts), for D-1 (back, with a session that crosses midnight into it), for D, for D again, and for D
after an old day was corrected behind its back. After each run the incremental tables are compared,
row for row, with a full build of the same raw data in a fresh warehouse. The planning rules (full
refresh or window) are tested without dbt.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from pipelines import incremental
from pipelines.core.schemas import DAILY_TABLES
from tests.conftest import DBT_DIR, TinyShop

INCREMENTAL = [
    "fct_order_lines",
    "fct_sku_daily_demand",
    "traffic_funnel",
    "int_traffic_interest_daily",
    "int_orders",
    "int_shipment_category_split",
    "int_shipments",
    "carbon_per_shipment",
    "carbon_per_order",
    "carbon_monthly",
    "int_review_facts",
    "fct_daily_sales",
]


# ------------------------------------------------------------------------------ planning rules (no dbt)


def _state(raw: dict | None = None, **fingerprint) -> dict:
    base = {
        "version": incremental.STATE_VERSION,
        "source": {"source": "synthetic", "input": None, "scale": "tiny", "seed": 7},
        "vars": {},
        "code": "abc",
        "snapshots": {"products": "p1"},
        "models": INCREMENTAL,
    }
    return {"fingerprint": base | fingerprint, "raw": raw or {"orders": {"2024-04-28": [1, 10]}}}


def test_run_window_from_partition_tags() -> None:
    assert incremental.run_window({"dagster/partition": "2024-04-29"}) == ("2024-04-29", "2024-04-29")
    tags = {incremental.RANGE_START_TAG: "2024-04-20", incremental.RANGE_END_TAG: "2024-04-25"}
    assert incremental.run_window(tags) == ("2024-04-20", "2024-04-25")
    assert incremental.run_window({}) is None


def test_plan_full_refresh_rules() -> None:
    now = _state()
    tables = set(INCREMENTAL)
    assert incremental.plan_build(now, None, tables, ("2024-04-29",) * 2).full_refresh  # no state
    missing = incremental.plan_build(now, now, tables - {"traffic_funnel"}, ("2024-04-29",) * 2)
    assert missing.full_refresh and "traffic_funnel" in missing.reason
    for change, word in (
        ({"source": {"source": "olist", "input": "x", "scale": None, "seed": None}}, "source"),
        ({"snapshots": {"products": "p2"}}, "products"),
        ({"code": "def"}, "SQL"),
        ({"vars": {"returns_are_credit_lines": True}}, "vars"),
    ):
        plan = incremental.plan_build(_state(**change), now, tables, ("2024-04-29",) * 2)
        assert plan.full_refresh and word in plan.reason, (change, plan.reason)
        assert plan.dbt_vars() == {}
    same = incremental.plan_build(now, now, tables, ("2024-04-29",) * 2)
    assert not same.full_refresh
    assert same.dbt_vars() == {"min_date": "2024-04-29", "max_date": "2024-04-29"}
    # No partition: no vars (every day), but still not a full refresh.
    assert incremental.plan_build(now, now, tables, None).dbt_vars() == {}


def test_plan_window_widens_to_changed_raw_days_and_failed_builds() -> None:
    before = _state(
        {"orders": {"2024-04-01": [1, 10], "2024-04-27": [1, 10]}, "traffic": {"2024-04-02": [1, 5]}}
    )
    after = _state(
        {
            "orders": {
                "2024-04-01": [1, 10],
                "2024-04-27": [2, 10],
                "2024-04-28": [1, 3],
            },  # 27 rewritten, 28 new
            "traffic": {},  # 2024-04-02 gone
        }
    )
    plan = incremental.plan_build(after, before, set(INCREMENTAL), ("2024-04-29", "2024-04-29"))
    assert plan.window == ("2024-04-02", "2024-04-29"), plan.reason
    # A window build stores its window as pending before it runs; a failure makes the next run redo it
    # even when the raw files are back exactly as they were.
    pending = incremental.pending_state(after, plan)
    assert pending is not None and pending["pending"] == ["2024-04-02", "2024-04-29"]
    assert pending["raw"] == after["raw"]
    nxt = incremental.plan_build(after, pending, set(INCREMENTAL), ("2024-04-30", "2024-04-30"))
    assert nxt.window == ("2024-04-02", "2024-04-30")
    # A failed full-window build: the next one rebuilds every day; a failed full refresh: full again.
    all_days = incremental.pending_state(after, incremental.plan_build(after, after, set(INCREMENTAL), None))
    assert all_days["pending"] == "all"
    assert incremental.plan_build(after, all_days, set(INCREMENTAL), ("2024-04-30",) * 2).window is None
    assert incremental.pending_state(after, incremental.plan_build(after, None, set(), None)) is None


def test_snapshot_fingerprint_ignores_lineage_and_row_order(tmp_path: Path) -> None:
    folder = tmp_path / "products" / "snapshot"
    folder.mkdir(parents=True)
    frame = pl.DataFrame({"sku": ["B", "A"], "category": ["toys", "home"], "_source_row": [1, 2]})
    frame.write_parquet(folder / "part-0.parquet")
    first = incremental.snapshot_fingerprint(tmp_path, "products")
    frame.reverse().with_columns(pl.lit(9).alias("_source_row")).write_parquet(folder / "part-0.parquet")
    assert incremental.snapshot_fingerprint(tmp_path, "products") == first
    frame.with_columns(pl.lit("home").alias("category")).write_parquet(folder / "part-0.parquet")
    assert incremental.snapshot_fingerprint(tmp_path, "products") != first


# ------------------------------------------------------------------- day by day on the tiny shop (dbt)


def _selection(dbt_assets: dg.AssetsDefinition) -> list[dg.AssetKey]:
    """The incremental models and everything they are built from (a fast subset of the dbt build)."""
    manifest = json.loads(Path(dbt_assets_manifest()).read_text())
    ids = incremental.upstream(manifest, [f"model.shoplens.{m}" for m in INCREMENTAL])
    names = {uid.split(".")[-1] for uid in ids if uid.startswith(("model.", "seed."))}
    return [k for k in dbt_assets.keys if k.path[-1] in names]


def dbt_assets_manifest() -> Path:
    from pipelines.assets.transform import dbt_project

    return Path(dbt_project.manifest_path)


def _build(warehouse: Path, monkeypatch: pytest.MonkeyPatch, day: str | None) -> list[str]:
    """Run the dbt asset (incremental subset) for a partition day; return its log lines about the plan."""
    from pipelines.assets.transform import dbt_resource, shoplens_dbt_models

    monkeypatch.setenv("SHOPLENS_WAREHOUSE", str(warehouse))
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [shoplens_dbt_models],
        selection=_selection(shoplens_dbt_models),
        resources={"dbt": dbt_resource},
        instance=instance,
        tags={"dagster/partition": day} if day else None,
    )
    assert result.success
    return [
        e.user_message for e in instance.all_logs(result.run_id) if e.user_message.startswith("dbt build, ")
    ]


def _differences(warehouse: Path, reference: Path) -> dict[str, str]:
    """Per incremental model: '' when its rows equal the reference's (as multisets), else what differs."""
    out: dict[str, str] = {}
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{warehouse}' AS inc (READ_ONLY)")
        con.execute(f"ATTACH '{reference}' AS ref (READ_ONLY)")
        for model in INCREMENTAL:
            only_inc = con.sql(
                f"SELECT * FROM inc.build.{model} EXCEPT ALL SELECT * FROM ref.build.{model}"
            ).fetchall()
            only_ref = con.sql(
                f"SELECT * FROM ref.build.{model} EXCEPT ALL SELECT * FROM inc.build.{model}"
            ).fetchall()
            n_inc, n_ref = (
                con.sql(f"SELECT count(*) FROM {db}.build.{model}").fetchall()[0][0] for db in ("inc", "ref")
            )
            out[model] = (
                ""
                if not only_inc and not only_ref and n_inc == n_ref
                else f"{n_inc} vs {n_ref} rows; only incremental {only_inc[:3]}; only full {only_ref[:3]}"
            )
    finally:
        con.close()
    return out


def _full_build(work: Path, label: str) -> Path:
    """The incremental models and their parents built from scratch into a fresh file (dbt run, no tests)."""
    reference = work / f"reference_{label}.duckdb"
    reference.unlink(missing_ok=True)
    models = " ".join(f"+{m}" for m in INCREMENTAL)
    env = os.environ | {"SHOPLENS_WAREHOUSE": str(reference), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    for command in ("seed", "run"):  # the carbon models read a seed (emission_factors)
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "dbt"), command, "--full-refresh", "--select", *models.split(),
             "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR), "--target-path", str(work / "target"),
             "--log-path", str(work / "logs"), "--no-use-colors"],
            env=env, cwd=work, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, f"full reference {command} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    return reference


def _assert_equals_full_build(warehouse: Path, reference: Path, label: str) -> None:
    diffs = {m: d for m, d in _differences(warehouse, reference).items() if d}
    assert not diffs, f"after {label}, incremental != full rebuild: {diffs}"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        dupes = con.sql(
            "SELECT count(*) - count(DISTINCT order_line_id) FROM build.fct_order_lines"
        ).fetchall()
    assert dupes[0][0] == 0, f"after {label}: {dupes[0][0]} duplicated order lines"


def _publish_and_compare(warehouse: Path, label: str) -> dict[str, str]:
    """Publish the build (as the published_warehouse asset does) and check the serving copies of the
    incremental marts equal the build's rows; returns how each was published (by window or copied)."""
    from pipelines.assets.transform import (
        dbt_project,
        publish,
        published_relations,
        window_columns,
    )

    windows = window_columns(Path(dbt_project.manifest_path))
    relations = published_relations(Path(dbt_project.manifest_path))
    served = {name for name, kind, built in relations if built and kind == "table"}
    lines: list[str] = []
    with duckdb.connect(str(warehouse)) as con:
        publish(con, relations, log=lines.append, windows=windows)
        assert con.sql("SELECT count(*) FROM build._shoplens_changes").fetchall()[0][0] == 0
        for model in sorted(set(windows) & set(INCREMENTAL) & served):
            differs = con.sql(
                f"SELECT count(*) FROM (SELECT * FROM main.{model} EXCEPT ALL SELECT * FROM build.{model}) "
                f"UNION ALL SELECT count(*) FROM (SELECT * FROM build.{model} EXCEPT ALL SELECT * FROM main.{model})"
            ).fetchall()
            assert differs == [(0,), (0,)], f"after {label}, main.{model} differs from the build: {differs}"
    by_window = [line for line in lines if line.startswith("published by window")]
    return {"log": " ".join(by_window)}


def _move_days(raw: Path, days: list[str], to: Path) -> None:
    for table in DAILY_TABLES:
        for day in days:
            src = raw / table / f"date={day}"
            if src.exists():
                (to / table).mkdir(parents=True, exist_ok=True)
                shutil.move(src, to / table / src.name)


def _restore_day(stash: Path, raw: Path, day: str) -> None:
    for table_dir in stash.iterdir():
        src = table_dir / f"date={day}"
        if src.exists():
            shutil.move(src, raw / table_dir.name / src.name)


def _add_midnight_crossing_event(raw: Path, day: str) -> None:
    """A session that started the evening before `day` gets a purchase at 00:05 on `day`."""
    before = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
    prev = pl.read_parquet(raw / "traffic" / f"date={before}" / "part-0.parquet")
    last = prev.sort("event_ts").tail(1)
    path = raw / "traffic" / f"date={day}" / "part-0.parquet"
    cur = pl.read_parquet(path)
    extra = last.with_columns(
        pl.lit(f"{day} 00:05:00").str.to_datetime().cast(cur.schema["event_ts"]).alias("event_ts"),
        pl.lit("purchase").alias("event"),
        pl.lit(cur["_source_row"].max() + 1).cast(cur.schema["_source_row"]).alias("_source_row"),
        pl.lit(date.fromisoformat(day)).cast(cur.schema["_partition_date"]).alias("_partition_date"),
    ).select(cur.columns)
    pl.concat([cur, extra]).write_parquet(path)


@pytest.mark.slow
def test_incremental_days_equal_a_full_rebuild(
    tiny_pipeline: TinyShop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    shutil.copytree(tiny_pipeline.data_dir, data)
    warehouse = data / "warehouse" / "shoplens.duckdb"
    raw = data / "raw"
    monkeypatch.setenv("SHOPLENS_DATA_DIR", str(data))
    monkeypatch.setenv("SHOPLENS_LANDING", str(data / "landing"))
    # The subset build leaves the other marts as they were: tests spanning them (revenue reconciliation
    # against fct_daily_sales) would compare new facts with old marts, so only the subset's own tests run.
    monkeypatch.setenv("DBT_INDIRECT_SELECTION", "cautious")
    days = sorted(p.name.removeprefix("date=") for p in (raw / "orders").glob("date=*"))
    d2, d1, d0 = days[-3], days[-2], days[-1]
    stash = tmp_path / "stash"

    # The tiny pipeline's nightly run recorded its build; the last two days now go missing from raw:
    # the run for D-2 takes their rows out of the facts (the window widens to the changed days).
    _move_days(raw, [d1, d0], stash)
    logs = _build(warehouse, monkeypatch, d2)
    assert any(f"incremental: days {d2} .. {d0}" in m for m in logs), logs
    _assert_equals_full_build(warehouse, _full_build(tmp_path, "d2"), f"the run for {d2}")
    # Publishing copies only the changed days of the incremental marts, and main equals the build after.
    published = _publish_and_compare(warehouse, f"the run for {d2}")
    assert "fct_order_lines" in published["log"] and "carbon_per_order" in published["log"], published

    # D-1 arrives, with an event after midnight of a session that started on D-2 (which changes D-2's
    # funnel row: only the one-day lookback rebuilds it); then D arrives. Then the same night runs again.
    _restore_day(stash, raw, d1)
    _add_midnight_crossing_event(raw, d1)
    logs = _build(warehouse, monkeypatch, d1)
    assert any(f"incremental: days {d1} .. {d1}" in m for m in logs), logs
    _restore_day(stash, raw, d0)
    logs = _build(warehouse, monkeypatch, d0)
    assert any(f"incremental: days {d0} .. {d0}" in m for m in logs), logs
    reference = _full_build(tmp_path, "d0")
    _assert_equals_full_build(warehouse, reference, f"the runs for {d1} and {d0}")
    _publish_and_compare(warehouse, f"the runs for {d1} and {d0}")
    logs = _build(warehouse, monkeypatch, d0)
    assert any(f"incremental: days {d0} .. {d0}" in m for m in logs), logs
    _assert_equals_full_build(warehouse, reference, f"a second run for {d0}")

    # An old day is corrected behind the nightly's back (three order lines withdrawn): the run for D
    # widens its window back to it.
    old = raw / "orders" / f"date={days[-10]}" / "part-0.parquet"
    pl.read_parquet(old).slice(3).write_parquet(old)
    logs = _build(warehouse, monkeypatch, d0)
    assert any(f"incremental: days {days[-10]} .. {d0}" in m for m in logs), logs
    _assert_equals_full_build(warehouse, _full_build(tmp_path, "corrected"), "an old day was corrected")
    _publish_and_compare(warehouse, "an old day was corrected")
