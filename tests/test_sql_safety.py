"""File names, folder names, source names, header names, ids and settings never reach SQL as text: only as
quoted literals, quoted identifiers or parameters. Each test feeds names made of quotes, semicolons and
spaces and checks that the run works and that the names come back exactly as given.
"""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.core.ingest import ERASED_RULE, ingest, quote_ident, sql_literal
from pipelines.core.settings import Settings
from pipelines.erasure import erase
from pipelines.sources.registry import land

CORPUS = Path(__file__).parent / "corpus"
FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 1, 1)
HOSTILE = [
    "it's",
    'say "hi"',
    "x'; DROP TABLE typed; --",
    'a"; DROP TABLE landed; --',
    "semi;colon and space",
    "back\\slash",
    "'",
    '"',
]
HEADER = (
    "order_id,line_no,customer_id,sku,quantity,unit_price,currency,discount,order_ts,channel,region,status"
)


@pytest.mark.parametrize("text", HOSTILE)
def test_literals_and_identifiers_round_trip(text: str) -> None:
    con = duckdb.connect()
    assert con.execute(f"SELECT {sql_literal(text)}").fetchall() == [(text,)]
    con.execute(f"CREATE TABLE {quote_ident(text)} ({quote_ident(text + '_col')} VARCHAR)")
    assert con.execute("SELECT table_name, column_name FROM information_schema.columns").fetchall() == [
        (text, text + "_col")
    ]
    con.close()


def test_ingest_with_hostile_folder_file_header_and_setting(tmp_path: Path) -> None:
    landing = tmp_path / "land'ing; DROP TABLE x; --\" dir"
    raw = tmp_path / "r\"a'w; DELETE FROM y"
    shutil.copytree(CORPUS / "reference", landing)
    name = 'orders_2024-01-01_it\'s; DROP TABLE typed; --"x".csv'
    extra = "note'; DROP TABLE accepted; --\""
    (landing / "orders").mkdir()
    (landing / "orders" / name).write_text(
        f"{HEADER},{extra}\n"
        "o1,1,c1,A1,2,9.90,CNY,0,2024-01-01 10:00:00,web,Beijing,completed,hello\n"
        "o2,1,c1,ZZ'9,2,9.90,CNY,0,2024-01-01 10:00:00,web,Beijing,completed,'; --\n"
    )
    for table in ("products", "customers"):
        ingest(table, landing, raw, None, now=NOW)
    result = ingest("orders", landing, raw, [date(2024, 1, 1)], currency="CNY", now=NOW)
    assert (result.rows_in, result.rows_accepted, dict(result.by_rule)) == (2, 1, {"unknown_sku": 1})
    accepted = pl.read_parquet(raw / "orders" / "date=2024-01-01" / "part-0.parquet")
    assert accepted.get_column("_source_file").to_list() == [name]
    q = pl.read_parquet(raw / "_quarantine" / "orders" / "date=2024-01-01" / "part-0.parquet").row(
        0, named=True
    )
    assert q["source_file"] == name and q["detail"] == "sku ZZ'9 is not in the products snapshot"
    assert json.loads(q["raw_record"])["sku"] == "ZZ'9"

    # A configured value with quotes is compared as a value, not run.
    hostile_currency = "CN'Y; DROP TABLE typed; --"
    result = ingest("orders", landing, raw, [date(2024, 1, 1)], currency=hostile_currency, now=NOW)
    assert dict(result.by_rule) == {"currency_mismatch": 2}  # checked before the SKU
    q = pl.read_parquet(raw / "_quarantine" / "orders" / "date=2024-01-01" / "part-0.parquet")
    assert hostile_currency.upper() in q.filter(pl.col("rule") == "currency_mismatch").item(0, "detail")


def test_adapter_input_and_landing_folders_with_hostile_names(tmp_path: Path) -> None:
    inputs = tmp_path / "shop 'exports'; \"2024\""
    shutil.copytree(FIXTURES / "shopify", inputs)
    landing = tmp_path / "land'; DROP TABLE t; --"
    raw = tmp_path / 'raw "x"'
    report = land("shopify", inputs, landing)
    assert json.loads((landing / "_source.json").read_text())["input"] == str(inputs)
    for table in ("products", "customers"):
        ingest(table, landing, raw, None, currency=report.currency, now=NOW)
    days = [date(2024, 3, d) for d in range(1, 32)]
    result = ingest("orders", landing, raw, days, currency=report.currency, timezone="Etc/GMT-8", now=NOW)
    assert result.rows_in == report.rows_landed["orders"] == result.rows_accepted + result.rows_quarantined
    assert result.rows_accepted > 20


def test_erasure_with_hostile_id_and_table_names(tmp_path: Path) -> None:
    data = tmp_path / "da'ta; --"
    hostile = "c'1; DROP TABLE orders; --\""
    settings = Settings(
        data_dir=data,
        landing_dir=data / "landing",
        warehouse=data / "warehouse" / 'wh "x".duckdb',
        start_date="2024-01-01",
        timezone="Asia/Shanghai",
        pii_key=None,
        mode="demo",
    )
    settings.warehouse.parent.mkdir(parents=True)
    con = duckdb.connect(str(settings.warehouse))
    con.execute('CREATE SCHEMA "mart\'s"')
    con.execute('CREATE TABLE "mart\'s"."odd ""name""; --" (customer_id VARCHAR, v INTEGER)')
    con.execute('INSERT INTO "mart\'s"."odd ""name""; --" VALUES (?, 1), (\'c2\', 2)', [hostile])
    con.execute("CREATE TABLE orders (order_id VARCHAR, customer_id VARCHAR)")
    con.execute("INSERT INTO orders VALUES ('o1', ?), ('o2', 'c2')", [hostile])
    con.close()
    # The same customer in landing and in an ingested raw day.
    landing = settings.landing_dir
    shutil.copytree(CORPUS / "reference", landing)
    customers = landing / "customers" / "customers.csv"
    quoted = '"c\'1; DROP TABLE orders; --"""'  # the hostile id as a CSV field
    customers.write_text(customers.read_text() + f"{quoted},2024-01-01,X,,,\n")
    (landing / "orders").mkdir()
    rows = f"{HEADER}\no1,1,{quoted},A1,1,9.90,CNY,0,2024-01-01 10:00:00,web,X,completed\n"
    rows += "o2,1,c2,A1,1,9.90,CNY,0,2024-01-01 11:00:00,web,X,completed\n"
    (landing / "orders" / "orders_2024-01-01.csv").write_text(rows)
    for table in ("products", "customers"):
        ingest(table, landing, settings.raw_dir, None, now=NOW)
    first = ingest("orders", landing, settings.raw_dir, [date(2024, 1, 1)], currency="CNY", now=NOW)
    assert first.rows_accepted == 2

    report = erase([hostile], settings=settings)
    assert report.order_ids == ["o1"]
    assert (
        report.removed['warehouse:mart\'s.odd "name"; --'] == 1
        and report.removed["warehouse:main.orders"] == 1
    )
    assert report.removed["raw:orders"] == 1 and report.removed["landing:orders"] == 1
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    assert con.execute('SELECT customer_id FROM "mart\'s"."odd ""name""; --"').fetchall() == [("c2",)]
    assert con.execute("SELECT order_id FROM orders").fetchall() == [("o2",)]
    con.close()
    # The register is read with the id as a value: a re-delivered row of that customer is erased again.
    (landing / "orders" / "orders_2024-01-01.csv").write_text(rows)
    again = ingest("orders", landing, settings.raw_dir, [date(2024, 1, 1)], currency="CNY", now=NOW)
    assert dict(again.by_rule) == {ERASED_RULE: 1} and again.rows_accepted == 1
