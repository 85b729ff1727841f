"""The benchmark's parts: the plain-SQL baseline, the per-child measurement, the results and docs writers.

No timing assertions: the numbers themselves come from `make bench`, not from the test suite.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb
import pytest

from pipelines import bench
from pipelines import bench_sql as bs

# ------------------------------------------------------------------------------------- plain SQL baseline


def _manifest(seed_csv: Path) -> dict:
    """A compiled manifest by hand: one seed, a view on it, a table on the view, a test, a unit test, and a
    model on a source the shop lacks. Listed out of dependency order on purpose."""
    rel = '"shop"."build"."{}"'.format

    def model(name: str, sql: str, materialized: str, deps: list[str]) -> dict:
        return {
            "resource_type": "model",
            "name": name,
            "alias": name,
            "database": "shop",
            "schema": "build",
            "relation_name": rel(name),
            "fqn": ["shoplens", "marts" if materialized == "table" else "staging", name],
            "config": {"materialized": materialized},
            "depends_on": {"nodes": deps},
            "compiled_code": sql,
            "original_file_path": f"models/{name}.sql",
        }

    return {
        "metadata": {"project_name": "shoplens"},
        "nodes": {
            "model.shoplens.big_skus": model(
                "big_skus",
                f"select sku, count(*) as n from {rel('stg_items')} where qty > 1 group by sku\n-- trailing",
                "table",
                ["model.shoplens.stg_items"],
            ),
            "test.shoplens.not_null_x": {
                "resource_type": "test",
                "name": "not_null_x",
                "depends_on": {"nodes": []},
            },
            "unit_test.shoplens.u": {"resource_type": "unit_test", "name": "u", "depends_on": {"nodes": []}},
            "model.shoplens.stg_items": model(
                "stg_items",
                f"select sku, cast(qty as integer) as qty from {rel('items')};",
                "view",
                ["seed.shoplens.items"],
            ),
            "model.shoplens.stg_traffic": model(
                "stg_traffic",
                "select 1 as x from read_parquet('/nowhere/*.parquet')",
                "view",
                ["source.shoplens.raw.traffic"],
            ),
            "seed.shoplens.items": {
                "resource_type": "seed",
                "name": "items",
                "alias": "items",
                "database": "shop",
                "schema": "build",
                "relation_name": rel("items"),
                "fqn": ["shoplens", "items"],
                "root_path": str(seed_csv.parent),
                "original_file_path": seed_csv.name,
                "depends_on": {"nodes": []},
                "config": {"materialized": "seed", "column_types": {"sku": "string", "qty": "integer"}},
            },
        },
    }


def test_plain_script_builds_seeds_and_models_in_dependency_order(tmp_path: Path) -> None:
    csv = tmp_path / "items.csv"
    csv.write_text("sku,qty\n007,2\n007,3\nB,1\nC,5\n")
    nodes = bs.plain_nodes(_manifest(csv), exclude_sources=("traffic",))
    names = [n.name for n in nodes]
    # tests, unit tests and the model on the missing source are left out; parents come first
    assert names == ["items", "stg_items", "big_skus"]
    assert [n.layer for n in nodes] == ["seeds", "staging", "marts"]
    # the file is not called shop.duckdb: the run attaches it under the compiled database name
    db = tmp_path / "plain" / "other.duckdb"
    result = bs.run_plain(nodes, db)
    assert result.error is None, result.error
    assert result.statements == 3
    assert result.rows_by_table == {"items": 4, "big_skus": 2}
    assert set(result.seconds_by_layer) == {"seeds", "staging", "marts"}
    con = duckdb.connect(str(db), read_only=True)
    try:
        # the seed's column types were applied: '007' stays a string, not the number 7
        assert con.execute("SELECT sku, n FROM build.big_skus ORDER BY sku").fetchall() == [
            ("007", 2),
            ("C", 1),
        ]
        kinds = dict(con.execute("SELECT table_name, table_type FROM information_schema.tables").fetchall())
        assert kinds == {"items": "BASE TABLE", "stg_items": "VIEW", "big_skus": "BASE TABLE"}
    finally:
        con.close()
    # a second run replaces the file: same rows, no leftovers
    assert bs.run_plain(nodes, db).rows_by_table == {"items": 4, "big_skus": 2}
    text = bs.script(nodes)
    assert text.startswith('CREATE SCHEMA IF NOT EXISTS "shop"."build";')
    assert "not_null_x" not in text and "stg_traffic" not in text


def test_plain_script_refuses_a_parse_only_manifest(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path / "items.csv")
    del manifest["nodes"]["model.shoplens.big_skus"]["compiled_code"]
    with pytest.raises(ValueError, match=r"models/big_skus\.sql.*dbt compile"):
        bs.plain_nodes(manifest)


def test_plain_script_reports_the_failing_model(tmp_path: Path) -> None:
    csv = tmp_path / "items.csv"
    csv.write_text("sku,qty\nA,1\n")
    manifest = _manifest(csv)
    manifest["nodes"]["model.shoplens.big_skus"]["compiled_code"] = "select no_such_column from build.items"
    result = bs.run_plain(bs.plain_nodes(manifest, exclude_sources=("traffic",)), tmp_path / "x.duckdb")
    assert result.error is not None and result.error.startswith("model.shoplens.big_skus:")
    assert result.statements == 2


def test_plain_script_matches_the_dbt_marts_of_the_tiny_shop(tiny_pipeline, tmp_path: Path) -> None:
    """dbt's compiled SQL of the real project, run without dbt over the tiny shop's raw Parquet, gives
    every mart and seed with the row count dbt gave it."""
    plain_db = tmp_path / "plain" / "shoplens.duckdb"
    manifest = bs.compile_manifest(
        tmp_path / "target",
        env={"SHOPLENS_DATA_DIR": str(tiny_pipeline.data_dir), "SHOPLENS_WAREHOUSE": str(plain_db)},
    )
    nodes = bs.plain_nodes(json.loads(manifest.read_text()))
    assert {n.materialized for n in nodes} == {"seed", "view", "table", "incremental"}
    result = bs.run_plain(nodes, plain_db)
    assert result.error is None, result.error
    tables = [n for n in nodes if n.materialized != "view"]
    assert len(result.rows_by_table) == len(tables) > 10
    con = duckdb.connect(str(tiny_pipeline.warehouse), read_only=True)
    try:
        dbt_rows = {
            n.name: con.execute(f'SELECT count(*) FROM "{n.schema}"."{n.name}"').fetchall()[0][0]
            for n in tables
        }
    finally:
        con.close()
    assert result.rows_by_table == dbt_rows
    assert result.rows_by_table["fct_order_lines"] > 0


# ------------------------------------------------------------------------------------- measuring a child


def test_run_child_reports_the_childs_own_peak_memory_and_exit_code(tmp_path: Path) -> None:
    code = "b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); import sys; sys.exit(3)"
    run = bench.run_child([sys.executable, "-c", code], env={}, log_path=tmp_path / "child.log", cwd=tmp_path)
    assert run.returncode == 3
    assert run.peak_rss_mb >= 300  # the 300 MB it touched, not the parent's size
    assert run.cpu_s > 0 and run.wall_s > 0
    assert (tmp_path / "child.log").read_text().startswith("$ ")


def test_a_child_killed_by_a_signal_is_named(tmp_path: Path) -> None:
    code = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    run = bench.run_child([sys.executable, "-c", code], env={}, log_path=tmp_path / "k.log", cwd=tmp_path)
    assert run.returncode == -9
    assert bench.killed_text(9, run.peak_rss_mb) == "killed by SIGKILL"  # small: no out-of-memory hint
    assert "OOM killer" in bench.killed_text(9, 10**9)


# ------------------------------------------------------------------------------------- results and docs


def _result(
    size: str = "medium",
    forecast_rate: float = 620.0,
    fail_decisions: bool = False,
    train_s: float = 41.0,
    nightly_s: float | None = None,
) -> dict:
    def stage(name: str, kind: str, wall: float, rss: float, **kw) -> bench.Stage:
        return bench.Stage(
            name=name,
            kind=kind,
            wall_s=wall,
            cpu_s=wall * 1.5,
            peak_rss_mb=rss,
            tree_rss_mb=rss,
            load_avg=6.0,
            **kw,
        )

    stages = [
        stage("generate", "setup", 400, 5000, rows_out=43_000_000),
        stage("ingest", "pipeline", 120, 3000, rows_in=43_000_000, rows_out=42_999_000),
        stage("plain SQL", "baseline", 40, 2500),
        stage("dbt run", "baseline", 50, 2600),
        stage("dbt build", "pipeline", 70, 2700),
        stage(
            "forecasting",
            "pipeline",
            30,
            3500,
            detail={
                "forecast": {"skus": 2000, "sku_series_per_second": forecast_rate, "step_seconds": 8.0},
                "model": {"train_seconds": train_s, "train_sku_series_per_second": round(2000 / train_s, 1)},
            },
        ),
        stage("decisions", "pipeline", 20, 1500),
    ]
    if nightly_s is not None:
        stages.append(stage("one new day (nightly)", "nightly", nightly_s, 3100))
    if fail_decisions:
        failed = stages[-1]
        failed.status = "failed"
        failed.error = "Traceback (most recent call last):\n  ...\nValueError: replenishment_plan: no | stock"
    summary = bench.summarize(size, stages)
    from dataclasses import asdict

    return {
        "size": size,
        "scale": {"customers": 100_000, "skus": 2_000},
        "started": "2026-01-01T00:00:00+00:00",
        "load_avg_start": [6.0, 7.0, 8.0],
        "load_avg_end": [5.0, 6.0, 7.0],
        "stages": [asdict(s) for s in stages],
        "summary": summary,
        "goals": bench.evaluate_goals(size, summary),
    }


def test_summary_counts_only_pipeline_stages_and_judges_the_goals() -> None:
    result = _result()
    s = result["summary"]
    assert s["end_to_end_s"] == 120 + 70 + 30 + 20  # not generate, not the two baselines
    assert s["peak_rss_mb"] == 3500 and s["peak_rss_stage"] == "forecasting"
    assert s["dbt_run_vs_plain"] == 1.25 and s["dbt_build_vs_plain"] == 1.75
    assert s["forecast_series_per_s_step"] == 250.0
    goals = {g["goal"]: g["met"] for g in result["goals"]}
    assert goals == {
        "end to end (s)": True,
        "peak RSS (MB)": True,
        "dbt run / plain SQL": True,
        "dbt build in Dagster / plain SQL": False,
        "forecasting (SKU-series/s)": True,
        "training the demand model (s)": True,
    }
    assert s["model_train_s"] == 41.0
    slow = _result(forecast_rate=120.0, train_s=75.0)
    slow_goals = {g["goal"]: g["met"] for g in slow["goals"]}
    assert slow_goals["forecasting (SKU-series/s)"] is False
    assert slow_goals["training the demand model (s)"] is False
    assert "training the demand model: **75.0 s**" in bench.markdown_size(slow, {"cores": 2, "ram_gb": 23.5})


def test_one_new_day_is_reported_apart_from_end_to_end_and_judged_at_large() -> None:
    medium = _result(nightly_s=85.0)
    assert medium["summary"]["end_to_end_s"] == 120 + 70 + 30 + 20  # the nightly day is not added
    assert medium["summary"]["nightly_s"] == 85.0 and medium["summary"]["nightly_peak_rss_mb"] == 3100
    assert "one new day, nightly job (s)" not in {g["goal"] for g in medium["goals"]}  # no goal at medium
    text = bench.markdown_size(medium, {"cores": 2, "ram_gb": 23.5})
    assert "- one new day (the nightly job for the newest day on the built shop): **85.0 s**" in text
    fast, slow = _result("large", nightly_s=150.0), _result("large", nightly_s=200.0)
    judged = {r["summary"]["nightly_s"]: {g["goal"]: g["met"] for g in r["goals"]} for r in (fast, slow)}
    assert judged[150.0]["one new day, nightly job (s)"] is True
    assert judged[200.0]["one new day, nightly job (s)"] is False


def test_a_failed_stage_shows_its_error_and_leaves_end_to_end_unjudged() -> None:
    result = _result(fail_decisions=True)
    assert result["summary"]["pipeline_complete"] is False
    assert {g["goal"]: g["met"] for g in result["goals"]}["end to end (s)"] is None
    text = bench.markdown_size(result, {"cores": 2, "ram_gb": 23.5})
    row = next(line for line in text.splitlines() if line.startswith("| decisions |"))
    # the last line of the traceback, with the table's pipe escaped
    assert "failed: ValueError: replenishment_plan: no / stock" in row
    assert row.count("|") == 12
    assert "INCOMPLETE: failed decisions" in text
    assert "| end to end (s) | 300 |  | n/a (a pipeline stage failed) |" in text


def test_update_docs_replaces_only_the_measured_sizes_block(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text(
        "# Benchmarks\n\nanalysis\n\n<!-- bench:small:start -->\nold small\n<!-- bench:small:end -->\n\n"
        "<!-- bench:medium:start -->\nold medium\n<!-- bench:medium:end -->\n\nafter\n"
    )
    run = {"machine": {"cores": 2, "ram_gb": 23.5}, "sizes": [_result("medium")]}
    bench.update_docs(docs, run)
    text = docs.read_text()
    assert (
        "old small" in text and "old medium" not in text and "analysis" in text and text.endswith("after\n")
    )
    assert "### medium (customers 100,000, skus 2,000)" in text
    run["sizes"] = [_result("large")]
    bench.update_docs(docs, run)  # no markers yet: appended
    assert docs.read_text().rstrip().endswith("<!-- bench:large:end -->")


def test_a_size_that_does_not_fit_on_the_disk_is_refused_with_the_fix(tmp_path: Path, monkeypatch) -> None:
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(100e9, 60e9, 40e9))
    assert bench.disk_shortfall("medium", tmp_path / "medium") is None
    why = bench.disk_shortfall("large", tmp_path / "large")
    assert why and "large needs about 45 GB free" in why and "40 GB are free" in why and "--work-dir" in why
    # Landing files already generated for that shop count as present: less is needed.
    (tmp_path / "large" / "landing").mkdir(parents=True)
    (tmp_path / "large" / "landing" / "_source.json").write_text("{}")
    assert bench.disk_shortfall("large", tmp_path / "large") is None
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(100e9, 80e9, 20e9))
    assert "large needs about 34 GB free" in bench.disk_shortfall("large", tmp_path / "large")
    # So do the raw layer and warehouse of an earlier run (reused or rewritten in place).
    (tmp_path / "large" / "warehouse").mkdir()
    with open(tmp_path / "large" / "warehouse" / "shoplens.duckdb", "wb") as f:
        f.truncate(10**10)  # sparse: 10 GB by size
    assert "large needs about 24 GB free" in bench.disk_shortfall("large", tmp_path / "large")


def test_reuse_ingest_takes_an_earlier_ingest_of_the_same_landing_only(tmp_path: Path) -> None:
    from dataclasses import asdict

    work = tmp_path / "large"
    run = bench.SizeRun("large", work, 42, False, log=lambda _m: None, reuse_ingest=True)
    assert run.env["SHOPLENS_DBT_MEMORY_LIMIT"] == "8GB"  # the size's dbt limit
    assert "SHOPLENS_DBT_MEMORY_LIMIT" not in bench.SizeRun("medium", tmp_path / "m", 42, False).env
    run.landing_manifest = {"rows_landed": {"orders": 60, "traffic": 40}}
    assert run._reused_ingest() is None  # nothing saved yet
    (work / "raw").mkdir(parents=True)
    (work / "results").mkdir()
    stage = bench.Stage(name="ingest", kind="pipeline", wall_s=750.9, rows_in=100, notes="3 rows quarantined")
    stage.detail["run_at"] = "2026-11-26T23:20:03+00:00"
    (work / "results" / bench.INGEST_STAGE_FILE).write_text(json.dumps(asdict(stage)))
    reused = run._reused_ingest()
    assert reused is not None and reused.wall_s == 750.9 and reused.kind == "pipeline"
    assert "measured by the run of 2026-11-26T23:20:03+00:00, raw reused" in reused.notes
    run.landing_manifest = {"rows_landed": {"orders": 61, "traffic": 40}}  # another shop: ingest again
    assert run._reused_ingest() is None
