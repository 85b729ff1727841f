"""Bulk ingestion in chunks of days (pipelines.backfill): the same rows and rules as one call over the
whole range, duplicates across chunk boundaries caught, re-runs byte-identical, and the raw-table
suite's cheaper uniqueness count and sample equal to the plain ones.
"""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

import pipelines.core.expectations as expectations
from pipelines.backfill import bulk_ingest, chunk_days, parse_chunk
from pipelines.core.schemas import DAILY_TABLES
from pipelines.sources.registry import land

FIRST, LAST = date(2024, 1, 1), date(2024, 4, 29)  # the tiny synthetic shop's range


def _rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text())))


def _write(path: Path, rows: list[list[str]]) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_text(buf.getvalue())


def _copy_row(landing: Path, table: str, ts_col: str, src_day: str, dst_day: str, index: int, suffix: str = "") -> tuple:
    """Deliver row `index` of one day's file again on another day (its timestamp moved to that day)."""
    source = _rows(landing / table / f"{table}_{src_day}.csv")
    header, row = source[0], list(source[index])
    row[header.index(ts_col)] = dst_day + row[header.index(ts_col)][10:]
    target = landing / table / f"{table}_{dst_day}{suffix}.csv"
    rows = _rows(target) if target.exists() else [header]
    rows.append(row)
    _write(target, rows)
    return row[0], len(rows) - 1  # first key column, data row number in the target


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic shop with keys delivered again on later days, within and across months."""
    folder = tmp_path_factory.mktemp("chunks") / "landing"
    land("synthetic", None, folder, scale="tiny", force=True)
    _copy_row(folder, "orders", "order_ts", "2024-01-31", "2024-02-01", 3)  # across the Jan/Feb boundary
    _copy_row(folder, "orders", "order_ts", "2024-01-10", "2024-01-12", 2)  # two days apart, same month
    # A late second file (other header order) on a boundary day, repeating a key of the month before.
    _copy_row(folder, "orders", "order_ts", "2024-02-20", "2024-03-01", 1, suffix="_late")
    late = folder / "orders" / "orders_2024-03-01_late.csv"
    rows = _rows(late)
    _write(late, [list(reversed(r)) for r in rows])
    _copy_row(folder, "shipments", "shipped_ts", "2024-02-29", "2024-03-01", 1)
    _copy_row(folder, "reviews", "created_ts", "2024-03-30", "2024-04-02", 1)
    return folder


def _run(monkeypatch: pytest.MonkeyPatch, landing: Path, data: Path, chunk: str):
    monkeypatch.setenv("SHOPLENS_DATA_DIR", str(data))
    monkeypatch.setenv("SHOPLENS_LANDING", str(landing))
    monkeypatch.setenv("SHOPLENS_WAREHOUSE", str(data / "warehouse" / "shoplens.duckdb"))
    return bulk_ingest(FIRST, LAST, log=lambda _m: None, run_suites=False, chunk=chunk)


def _published(raw: Path) -> dict[str, list[dict]]:
    """Every published file's rows in file order, by path under raw/ (accepted and quarantine)."""
    return {
        str(p.relative_to(raw)): pl.read_parquet(p).to_dicts() for p in sorted(raw.rglob("*.parquet"))
    }


def _digests(raw: Path) -> dict[str, str]:
    return {str(p.relative_to(raw)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(raw.rglob("*.parquet"))}


def test_chunk_days_by_month_days_or_landing_bytes() -> None:
    days = [date(2024, 1, 30), date(2024, 1, 31), date(2024, 2, 1), date(2024, 2, 2), date(2024, 3, 1)]
    assert chunk_days(days, "month") == [days[:2], days[2:4], days[4:]]
    assert chunk_days(days, "2d") == [days[:2], days[2:4], days[4:]]
    assert chunk_days(days, "3D") == [days[:3], days[3:]]
    assert chunk_days(days, "all") == [days]
    assert chunk_days([], "month") == []
    mb = 1024 * 1024
    sizes = dict(zip(days, [mb, mb, 3 * mb, 0, mb], strict=True))  # a day over budget stands alone
    assert chunk_days(days, "2MB", sizes) == [days[:2], days[2:3], days[3:]]
    assert chunk_days(days, "8MB", sizes) == [days]
    assert parse_chunk(" 256mb ") == ("bytes", 256 * mb)
    for bad in ("", "0d", "12", "month2", "1GB"):
        with pytest.raises(ValueError, match="chunk"):
            parse_chunk(bad)


def test_chunked_ingestion_matches_one_call(landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = _run(monkeypatch, landing, tmp_path / "whole", chunk="all")
    monthly = _run(monkeypatch, landing, tmp_path / "monthly", chunk="month")
    odd = _run(monkeypatch, landing, tmp_path / "odd", chunk="17d")  # boundaries inside months too
    for table in DAILY_TABLES:
        expected = (whole[table].rows_in, whole[table].rows_accepted, dict(whole[table].by_rule))
        for run in (monthly, odd):
            assert (run[table].rows_in, run[table].rows_accepted, dict(run[table].by_rule)) == expected, table
            assert run[table].days_written == whole[table].days_written
            run[table].check_balance()
    assert whole["orders"].by_rule["duplicate_key"] >= 3 and whole["shipments"].by_rule["duplicate_key"] >= 1

    reference = _published(tmp_path / "whole" / "raw")
    for name in ("monthly", "odd"):
        published = _published(tmp_path / name / "raw")
        assert published.keys() == reference.keys()
        moved = []
        for path, rows in reference.items():
            if not path.startswith("_quarantine/"):
                assert published[path] == rows, (name, path)  # accepted rows, values and order
                continue
            assert len(published[path]) == len(rows), (name, path)
            for got, want in zip(published[path], rows, strict=True):
                assert {k: v for k, v in got.items() if k != "detail"} == {
                    k: v for k, v in want.items() if k != "detail"
                }, (name, path)
                if got["detail"] != want["detail"]:
                    # Only a duplicate of a key published by an earlier chunk is worded differently.
                    assert got["rule"] == "duplicate_key" and " repeats " in want["detail"], (got, want)
                    assert " already ingested for " in got["detail"], got
                    moved.append((got["source_file"], got["detail"].rsplit(" ", 1)[1]))
        if name == "monthly":
            # The duplicates across month boundaries, named by the day that holds the first delivery.
            assert sorted(moved) == [
                ("orders_2024-02-01.csv", "2024-01-31"),
                ("orders_2024-03-01_late.csv", "2024-02-20"),
                ("reviews_2024-04-02.csv", "2024-03-30"),
                ("shipments_2024-03-01.csv", "2024-02-29"),
            ]


def test_rerun_gives_identical_files(landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    first = _run(monkeypatch, landing, data, chunk="month")
    before = _digests(data / "raw")
    second = _run(monkeypatch, landing, data, chunk="month")
    assert _digests(data / "raw") == before
    assert {t: r.by_rule for t, r in second.items()} == {t: r.by_rule for t, r in first.items()}
    assert not list((data / "raw").glob(".staging-*"))


def test_rerun_after_a_key_moved_to_an_earlier_chunk(
    landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A later chunk's old raw files do not count: the run equals a fresh one over the new landing."""
    changed = tmp_path / "landing"
    shutil.copytree(landing, changed)
    data = tmp_path / "data"
    _run(monkeypatch, changed, data, chunk="month")
    # Now January also delivers a key that was accepted in March the first time.
    order_id, row = _copy_row(changed, "orders", "order_ts", "2024-03-15", "2024-01-05", 2)
    rerun = _run(monkeypatch, changed, data, chunk="month")
    fresh = _run(monkeypatch, changed, tmp_path / "fresh", chunk="all")
    assert dict(rerun["orders"].by_rule) == dict(fresh["orders"].by_rule)
    january = pl.read_parquet(data / "raw" / "orders" / "date=2024-01-05" / "part-0.parquet")
    assert january.filter(pl.col("_source_row") == row)["order_id"].to_list() == [order_id]
    march = pl.read_parquet(data / "raw" / "_quarantine" / "orders" / "date=2024-03-15" / "part-0.parquet")
    assert march.filter(pl.col("rule") == "duplicate_key")["source_row"].to_list() == [2]
    whole = _published(tmp_path / "fresh" / "raw")
    assert {p: r for p, r in _published(data / "raw").items() if not p.startswith("_quarantine/")} == {
        p: r for p, r in whole.items() if not p.startswith("_quarantine/")
    }


def _traffic_day(target: Path, day: str, ids: list[str], *, ts_day: str | None = None) -> None:
    """A published traffic day file with the given session ids (timestamps on `ts_day`, default `day`)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    values = ", ".join(f"('{i}', {n})" for n, i in enumerate(ids, start=1))
    with duckdb.connect() as con:
        con.execute(
            f"""
            COPY (
                SELECT v.id AS session_id, CAST($1 AS TIMESTAMP) AS event_ts, 'c1' AS customer_id,
                       'direct' AS channel, 'mobile' AS device, 'view' AS event, 'A1' AS sku,
                       CAST(NULL AS VARCHAR) AS order_id, $4 AS _source_file, v.n::INTEGER AS _source_row,
                       CAST($2 AS DATE) AS _partition_date
                FROM (VALUES {values}) v(id, n)
            ) TO $3 (FORMAT parquet)
            """,
            [f"{ts_day or day} 10:00:00", day, str(target), f"traffic_{day}.csv"],
        )


def _plain_duplicates(raw: Path, days: list[str]) -> int:
    files = [str(raw / "traffic" / f"date={d}" / "part-0.parquet") for d in days]
    with duckdb.connect() as con:
        return con.execute(
            "SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM read_parquet(?) "
            "GROUP BY session_id, event_ts, event, sku HAVING count(*) > 1)",
            [files],
        ).fetchall()[0][0]


def test_suite_uniqueness_in_day_batches_counts_like_one_group_by(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The suite checks traffic's key a few days at a time; a row dated outside its batch falls back."""
    raw = tmp_path / "raw"
    monkeypatch.setattr(expectations, "UNIQUE_BATCH_DAYS", 2)
    days = [f"2024-01-0{d}" for d in range(1, 6)]
    for d in days:
        _traffic_day(raw / "traffic" / f"date={d}" / "part-0.parquet", d, [f"s{d}-{i}" for i in range(5)])
    clean = expectations.validate_partitions(raw, "traffic", days)
    assert clean.success and clean.rows_checked == 25

    # Two repeated keys in one day (3 rows), counted in its batch.
    _traffic_day(raw / "traffic" / "date=2024-01-04" / "part-0.parquet", "2024-01-04", ["a", "a", "a", "b", "c"])
    # A file holding a row of another batch's day, repeating a key there: only a check of all files
    # together sees it, which the stray row triggers.
    _traffic_day(raw / "traffic" / "date=2024-01-05" / "part-0.parquet", "2024-01-05", ["s2024-01-01-0"], ts_day="2024-01-01")
    expected = _plain_duplicates(raw, days)
    assert expected == 5
    outcome = expectations.validate_partitions(raw, "traffic", days)
    assert not outcome.success
    assert any("expect_compound_columns_to_be_unique" in f and f": {expected} unexpected of " in f for f in outcome.failures)


def test_suite_sample_is_the_smallest_lineage_hashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pre-filtered top-N gives GX exactly the rows with the smallest hash of their lineage."""
    raw = tmp_path / "raw"
    days = [f"2024-01-{d:02d}" for d in range(1, 11)]
    for d in days:
        _traffic_day(raw / "traffic" / f"date={d}" / "part-0.parquet", d, [f"s{d}-{i}" for i in range(40)])
    monkeypatch.setattr(expectations, "GX_SAMPLE_ROWS", 7)
    seen: list[pl.DataFrame] = []
    real = expectations.validate_frame

    def spy(table_name: str, frame: pl.DataFrame):
        seen.append(frame)
        return real(table_name, frame)

    monkeypatch.setattr(expectations, "validate_frame", spy)
    outcome = expectations.validate_partitions(raw, "traffic", days)
    assert outcome.success and outcome.rows_checked == 400 and outcome.rows_sampled == 7
    files = [str(raw / "traffic" / f"date={d}" / "part-0.parquet") for d in days]
    with duckdb.connect() as con:
        want = con.execute(
            "SELECT session_id FROM read_parquet(?) ORDER BY hash(_source_file, _source_row), _source_file, "
            "_source_row LIMIT 7",
            [files],
        ).fetchall()
    assert seen[0]["session_id"].to_list() == [w[0] for w in want]
