"""Ingestion: every kind of bad row is quarantined with its rule, nothing is lost, re-runs replace."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest

from pipelines.core.ingest import IngestionError, ingest, pii_key

PRODUCTS = """sku,name,category,unit_cost,list_price,weight_kg,supplier,lead_time_days
A1,Mug,kitchen,3.00,9.90,0.4,S1,7
B2,Tee,apparel,4.50,19.00,0.2,S2,14
"""
CUSTOMERS = """customer_id,first_seen,region,email,phone,name
c1,2024-01-01,Beijing,Ann@Example.com,+86 138 0000 0001,Ann Li
c2,2024-01-01,Shanghai,bob@example.com,,Bob Wu
"""
HEADER = "order_id,line_no,customer_id,sku,quantity,unit_price,currency,discount,order_ts,channel,region,status\n"
GOOD = [
    "o1,1,c1,A1,2,9.90,CNY,0,2024-01-01 10:00:00,web,Beijing,completed",
    "o1,2,c1,B2,1,19.00,CNY,1.00,2024-01-01 10:00:00,web,Beijing,completed",
    "o6,1,c2,A1,1,9.90,CNY,0,2024-01-01T04:00:00+00:00,app,Shanghai,returned",
]
BAD = {
    "unknown_sku": "o2,1,c2,ZZ9,1,9.90,CNY,0,2024-01-01 11:00:00,app,Shanghai,completed",
    "price_positive": "o3,1,c2,A1,1,-9.90,CNY,0,2024-01-01 12:00:00,app,Shanghai,completed",
    "duplicate_key": "o1,1,c1,A1,2,9.90,CNY,0,2024-01-01 10:00:00,web,Beijing,completed",
    "future_timestamp": "o4,1,c2,A1,1,9.90,CNY,0,2099-01-01 12:00:00,app,Shanghai,completed",
    "malformed_line": "o5,1,c2,A1,1,9.90",
    "enum_invalid": "o7,1,c2,A1,1,9.90,CNY,0,2024-01-01 13:00:00,app,Shanghai,weird",
    "currency_mismatch": "o8,1,c2,A1,1,9.90,GBP,0,2024-01-01 13:00:00,app,Shanghai,completed",
    "quantity_positive": "o9,1,c2,A1,0,9.90,CNY,0,2024-01-01 13:00:00,app,Shanghai,completed",
    "type_cast_failed": "o10,1,c2,A1,1,\"1,234.50\",CNY,0,2024-01-01 13:00:00,app,Shanghai,completed",
    "required_missing": "o11,1,c2,,1,9.90,CNY,0,2024-01-01 13:00:00,app,Shanghai,completed",
    "outside_partition": "o12,1,c2,A1,1,9.90,CNY,0,2024-01-02 13:00:00,app,Shanghai,completed",
    "unknown_customer": "o13,1,c99,A1,1,9.90,CNY,0,2024-01-01 13:00:00,app,Shanghai,completed",
    "discount_range": "o14,1,c2,A1,1,9.90,CNY,50,2024-01-01 13:00:00,app,Shanghai,completed",
}
NOW = datetime(2026, 1, 1)


@pytest.fixture()
def landing(tmp_path: Path) -> Path:
    land = tmp_path / "landing"
    (land / "products").mkdir(parents=True)
    (land / "customers").mkdir()
    (land / "orders").mkdir()
    (land / "products" / "products.csv").write_text(PRODUCTS)
    (land / "customers" / "customers.csv").write_text(CUSTOMERS)
    rows = GOOD[:2] + list(BAD.values()) + GOOD[2:]
    (land / "orders" / "orders_2024-01-01.csv").write_text(HEADER + "\n".join(rows) + "\n")
    return land


def _ingest_all(landing: Path, raw: Path):
    for t in ("products", "customers"):
        ingest(t, landing, raw, None, currency="CNY", now=NOW)
    return ingest("orders", landing, raw, [date(2024, 1, 1)], currency="CNY", now=NOW)


def test_each_bad_row_lands_in_quarantine_with_its_rule(landing: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    result = _ingest_all(landing, raw)
    assert result.rows_in == len(GOOD) + len(BAD)
    assert result.rows_in == result.rows_accepted + result.rows_quarantined
    assert result.rows_accepted == len(GOOD)
    assert dict(result.by_rule) == {rule: 1 for rule in BAD}

    q = pl.read_parquet(raw / "_quarantine" / "orders" / "date=2024-01-01" / "part-0.parquet")
    # Each quarantined row names its file, row and rule, and keeps the raw record for repair.
    by_rule = {r["rule"]: r for r in q.to_dicts()}
    data_rows = GOOD[:2] + list(BAD.values()) + GOOD[2:]
    for rule, line in BAD.items():
        row = by_rule[rule]
        assert row["source_file"] == "orders_2024-01-01.csv"
        assert data_rows[row["source_row"] - 1] == line, rule
        assert row["detail"]
    assert "ZZ9" in by_rule["unknown_sku"]["detail"]

    accepted = pl.read_parquet(raw / "orders" / "date=2024-01-01" / "part-0.parquet")
    assert sorted(accepted["order_id"].to_list()) == ["o1", "o1", "o6"]
    # An explicit UTC offset is converted to the shop's local time (UTC+8).
    o6 = accepted.filter(pl.col("order_id") == "o6")
    assert o6["order_ts"][0] == datetime(2024, 1, 1, 12, 0, 0)


def test_rerunning_a_partition_replaces_it(landing: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    first = _ingest_all(landing, raw)
    second = ingest("orders", landing, raw, [date(2024, 1, 1)], currency="CNY", now=NOW)
    assert (second.rows_accepted, second.rows_quarantined) == (first.rows_accepted, first.rows_quarantined)
    accepted = pl.read_parquet(raw / "orders" / "*" / "*.parquet")
    assert accepted.height == len(GOOD)


def test_same_key_delivered_on_another_day_is_a_duplicate(landing: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _ingest_all(landing, raw)
    (landing / "orders" / "orders_2024-01-02.csv").write_text(HEADER + GOOD[0].replace("2024-01-01", "2024-01-02") + "\n")
    result = ingest("orders", landing, raw, [date(2024, 1, 2)], currency="CNY", now=NOW)
    assert dict(result.by_rule) == {"duplicate_key": 1}
    assert "2024-01-01" in result.examples[0]["detail"]


def test_personal_data_is_hashed_never_stored(landing: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _ingest_all(landing, raw)
    customers = pl.read_parquet(raw / "customers" / "snapshot" / "part-0.parquet")
    assert {"email_hash", "phone_hash", "name_hash"} <= set(customers.columns)
    assert not {"email", "phone", "name"} & set(customers.columns)
    text = (raw / "customers" / "snapshot" / "part-0.parquet").read_bytes()
    assert b"example.com" not in text and b"Ann Li" not in text
    # Normalised before hashing: case and spaces do not change the hash.
    assert customers["email_hash"][0] != customers["email_hash"][1]
    assert customers["phone_hash"][1] is None


def test_production_mode_requires_a_key() -> None:
    with pytest.raises(IngestionError, match="SHOPLENS_PII_KEY"):
        pii_key("production", None)
    assert pii_key("production", "s3cret") == b"s3cret"


def test_binary_file_stops_before_writing(landing: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _ingest_all(landing, raw)
    (landing / "orders" / "orders_2024-01-03.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    with pytest.raises(IngestionError, match="orders_2024-01-03.csv"):
        ingest("orders", landing, raw, [date(2024, 1, 3)], currency="CNY", now=NOW)
    assert not (raw / "orders" / "date=2024-01-03").exists()


def test_header_missing_required_column_quarantines_every_row(landing: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _ingest_all(landing, raw)
    renamed = HEADER.replace("sku", "product_code")
    (landing / "orders" / "orders_2024-01-04.csv").write_text(renamed + GOOD[0].replace("2024-01-01", "2024-01-04") + "\n")
    result = ingest("orders", landing, raw, [date(2024, 1, 4)], currency="CNY", now=NOW)
    assert (result.rows_in, result.rows_accepted, dict(result.by_rule)) == (1, 0, {"header_mismatch": 1})


def test_row_numbers_survive_runs_of_malformed_lines_across_files(landing: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _ingest_all(landing, raw)

    def line(order: str) -> str:
        return f"{order},1,c1,A1,1,9.90,CNY,0,2024-01-05 10:00:00,web,Beijing,completed"

    a = [line("a1"), "broken", "also,broken", line("a4"), "x", line("a6")]
    b = [line("b1"), line("b2"), "bad", line("b4")]
    (landing / "orders" / "orders_2024-01-05.csv").write_text(HEADER + "\n".join(a) + "\n")
    (landing / "orders" / "orders_2024-01-05_late.csv").write_text(HEADER + "\n".join(b) + "\n")
    result = ingest("orders", landing, raw, [date(2024, 1, 5)], currency="CNY", now=NOW)
    assert (result.rows_in, result.rows_accepted, dict(result.by_rule)) == (10, 6, {"malformed_line": 4})
    accepted = pl.read_parquet(raw / "orders" / "date=2024-01-05" / "part-0.parquet")
    rows = {r["order_id"]: (r["_source_file"], r["_source_row"]) for r in accepted.to_dicts()}
    assert rows == {
        "a1": ("orders_2024-01-05.csv", 1), "a4": ("orders_2024-01-05.csv", 4), "a6": ("orders_2024-01-05.csv", 6),
        "b1": ("orders_2024-01-05_late.csv", 1), "b2": ("orders_2024-01-05_late.csv", 2),
        "b4": ("orders_2024-01-05_late.csv", 4),
    }
    q = pl.read_parquet(raw / "_quarantine" / "orders" / "date=2024-01-05" / "part-0.parquet")
    assert sorted(zip(q["source_file"], q["source_row"], strict=True)) == [
        ("orders_2024-01-05.csv", 2), ("orders_2024-01-05.csv", 3), ("orders_2024-01-05.csv", 5),
        ("orders_2024-01-05_late.csv", 3),
    ]
