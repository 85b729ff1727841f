"""Bounded memory in ingestion (issue 8): DuckDB connections have a memory_limit and spill under the data
folder, no table is converted to a Python frame on the way to Parquet, the published files keep their
types and row order, and the raw-table suite counts every row in DuckDB while GX sees only a sample.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest

import pipelines.core.expectations as expectations
import pipelines.core.ingest as ingest_mod
from pipelines.core.expectations import validate_partitions
from pipelines.core.ingest import ingest
from tests.test_ingest import BAD, CUSTOMERS, GOOD, HEADER, NOW, PRODUCTS


@pytest.fixture()
def landing(tmp_path: Path) -> Path:
    land = tmp_path / "landing"
    for t in ("products", "customers", "orders"):
        (land / t).mkdir(parents=True)
    (land / "products" / "products.csv").write_text(PRODUCTS)
    (land / "customers" / "customers.csv").write_text(CUSTOMERS)
    rows = GOOD[:2] + list(BAD.values()) + GOOD[2:]
    (land / "orders" / "orders_2024-01-01.csv").write_text(HEADER + "\n".join(rows) + "\n")
    day2 = [g.replace("2024-01-01", "2024-01-02").replace("o1,", "p1,").replace("o6,", "p6,") for g in GOOD]
    (land / "orders" / "orders_2024-01-02.csv").write_text(HEADER + "\n".join(day2) + "\n")
    return land


def _ingest_all(landing: Path, raw: Path):
    for t in ("products", "customers"):
        ingest(t, landing, raw, None, currency="CNY", now=NOW)
    return ingest("orders", landing, raw, [date(2024, 1, 1), date(2024, 1, 2)], currency="CNY", now=NOW)


def _no_python_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every DuckDB -> Python frame conversion and every Polars Parquet write fail."""

    def refuse(*_a, **_k):
        raise AssertionError("a table was converted to a Python frame during ingestion")

    for name in ("pl", "df", "fetchdf", "fetch_df", "to_arrow_table", "arrow", "record_batch"):
        if hasattr(duckdb.DuckDBPyRelation, name):
            monkeypatch.setattr(duckdb.DuckDBPyRelation, name, refuse)
    monkeypatch.setattr(pl.DataFrame, "write_parquet", refuse)


def test_ingestion_connections_are_memory_bounded(
    landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = tmp_path / "raw"
    monkeypatch.setenv(ingest_mod.MEMORY_LIMIT_ENV, "300MB")
    seen: list[tuple] = []
    real = ingest_mod.bounded_connection

    def spy(spill_dir: Path, *, preserve_insertion_order: bool):
        con = real(spill_dir, preserve_insertion_order=preserve_insertion_order)
        seen.append(
            con.execute(
                "SELECT current_setting('memory_limit'), current_setting('temp_directory'), "
                "current_setting('preserve_insertion_order')"
            ).fetchall()[0]
        )
        return con

    monkeypatch.setattr(ingest_mod, "bounded_connection", spy)
    with monkeypatch.context() as m:
        _no_python_frames(m)
        result = _ingest_all(landing, raw)
    assert len(seen) == 3 and result.rows_accepted == 6
    for limit, temp_dir, keep_order in seen:
        assert limit == "286.1 MiB"  # 300 MB as DuckDB reports it
        assert Path(temp_dir).is_relative_to(raw)  # spills under the data folder
        assert keep_order is True  # row numbers and file order rely on it
    # The spill and staging folders are gone after the run.
    assert not list(raw.glob(".staging-*")) and not list(raw.glob(".spill-*"))

    # The suite reads the published days in DuckDB, never whole into Polars, with a bounded connection.
    seen.clear()
    monkeypatch.setattr(pl, "read_parquet", lambda *a, **k: pytest.fail("whole table read into Polars"))
    outcome = validate_partitions(raw, "orders", ["2024-01-01", "2024-01-02"])
    assert outcome.success and outcome.rows_checked == 6
    assert seen[0][0] == "286.1 MiB" and seen[0][2] is False


def test_default_memory_limit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ingest_mod.MEMORY_LIMIT_ENV, raising=False)
    con = ingest_mod.bounded_connection(tmp_path / "spill", preserve_insertion_order=True)
    assert con.execute("SELECT current_setting('memory_limit')").fetchall() == [("1.8 GiB",)]  # 2GB
    con.close()


def test_published_files_keep_types_order_and_one_file_per_day(landing: Path, tmp_path: Path) -> None:
    """What the Polars writer used to publish: same column types (decimals, naive timestamps, int32 row
    numbers), rows in file-row order, zstd, exactly one file per day, and a re-run replaces the day."""
    raw = tmp_path / "raw"
    _ingest_all(landing, raw)
    second = _ingest_all(landing, raw)
    assert second.rows_in == second.rows_accepted + second.rows_quarantined
    assert sorted(str(p.relative_to(raw)) for p in raw.rglob("*.parquet")) == [
        "_quarantine/customers/snapshot/part-0.parquet",
        "_quarantine/orders/date=2024-01-01/part-0.parquet",
        "_quarantine/products/snapshot/part-0.parquet",
        "customers/snapshot/part-0.parquet",
        "orders/date=2024-01-01/part-0.parquet",
        "orders/date=2024-01-02/part-0.parquet",
        "products/snapshot/part-0.parquet",
    ]
    orders = raw / "orders" / "date=2024-01-01" / "part-0.parquet"
    schema = pl.read_parquet_schema(orders)
    assert list(schema.items()) == [
        ("order_id", pl.String),
        ("line_no", pl.Int32),
        ("customer_id", pl.String),
        ("sku", pl.String),
        ("quantity", pl.Int32),
        ("unit_price", pl.Decimal(12, 2)),
        ("currency", pl.String),
        ("discount", pl.Decimal(12, 2)),
        ("order_ts", pl.Datetime("us")),
        ("channel", pl.String),
        ("region", pl.String),
        ("status", pl.String),
        ("_source_file", pl.String),
        ("_source_row", pl.Int32),
        ("_partition_date", pl.Date),
    ]
    assert pq.ParquetFile(orders).metadata.row_group(0).column(0).compression == "ZSTD"
    frame = pl.read_parquet(orders)
    assert frame["_source_row"].to_list() == sorted(frame["_source_row"].to_list())
    assert frame.select("order_id", "line_no").rows() == [("o1", 1), ("o1", 2), ("o6", 1)]
    customers = pl.read_parquet(raw / "customers" / "snapshot" / "part-0.parquet")
    assert customers.columns[-3:] == ["email_hash", "phone_hash", "name_hash"]
    assert customers["email_hash"][0] == ingest_mod.hash_personal_value(
        "ann@example.com ", ingest_mod.DEMO_PII_KEY.encode()
    )
    q = pl.read_parquet(raw / "_quarantine" / "orders" / "date=2024-01-01" / "part-0.parquet")
    assert q.columns == list(ingest_mod.QUARANTINE_COLUMNS)
    assert q["source_row"].to_list() == sorted(q["source_row"].to_list())

    # A day that no longer has rows is removed, not left behind.
    (landing / "orders" / "orders_2024-01-02.csv").write_text(HEADER)
    third = ingest("orders", landing, raw, [date(2024, 1, 2)], currency="CNY", now=NOW)
    assert third.days_empty == ["2024-01-02"]
    assert not list((raw / "orders" / "date=2024-01-02").glob("*.parquet"))


def test_suite_counts_every_row_though_gx_sees_a_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad value the GX sample misses is still caught: the rules are counted over all rows in DuckDB."""
    raw = tmp_path / "raw"
    monkeypatch.setattr(expectations, "GX_SAMPLE_ROWS", 5)
    con = duckdb.connect()
    for day, bad_status in (("2024-01-01", "completed"), ("2024-01-02", "lost")):
        target = raw / "orders" / f"date={day}" / "part-0.parquet"
        target.parent.mkdir(parents=True)
        con.execute(
            f"""
            COPY (
                SELECT 'o' || i || {ingest_mod.sql_literal(day)} AS order_id, 1::INTEGER AS line_no,
                       'c1' AS customer_id, 'A1' AS sku, 1::INTEGER AS quantity,
                       CAST(9.90 AS DECIMAL(12,2)) AS unit_price, 'CNY' AS currency,
                       CAST(0 AS DECIMAL(12,2)) AS discount, CAST($1 AS TIMESTAMP) AS order_ts, 'web' AS channel,
                       'Beijing' AS region, CASE WHEN i = 25 THEN $2 ELSE 'completed' END AS status,
                       'f.csv' AS _source_file, i::INTEGER AS _source_row, CAST($3 AS DATE) AS _partition_date
                FROM range(1, 26) r(i)
            ) TO $4 (FORMAT parquet)
            """,
            [f"{day} 10:00:00", bad_status, day, str(target)],
        )
    con.close()
    clean = validate_partitions(raw, "orders", ["2024-01-01"])
    assert (clean.success, clean.rows_checked, clean.rows_sampled) == (True, 25, 5)
    both = validate_partitions(raw, "orders", ["2024-01-01", "2024-01-02"])
    assert not both.success and both.rows_checked == 50 and both.rows_sampled == 5
    assert any("expect_column_values_to_be_in_set" in f and "(all rows, DuckDB)" in f for f in both.failures)
    # The same sample on every run (deterministic), so a check result does not flicker.
    assert validate_partitions(raw, "orders", ["2024-01-01", "2024-01-02"]).failures == both.failures
