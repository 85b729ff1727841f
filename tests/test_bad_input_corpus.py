"""The bad-input corpus (tests/corpus/): every case either ingests with each bad row quarantined under a
named rule, or stops before writing anything with an error naming the file and the problem.

Canonical cases (tests/corpus/canonical/<case>/<table>/<landing file>) run through `ingest` on a landing
folder that also holds the reference snapshots of tests/corpus/reference/. Adapter cases
(tests/corpus/adapters/<source>/<case>/) run through `registry.land`, then `ingest` on what was landed.

For every successful case: rows in = accepted + quarantined (+ adapter-quarantined + routed out), the rows
in match an independent count of the CSV records in the files, the counts match the Parquet files on disk,
and the rules are exactly the expected ones. The corpus files are listed with their outcome in
tests/corpus/README.md.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines.core.ingest import DAY_IN_NAME, IngestionError, IngestResult, ingest
from pipelines.core.schemas import DAILY_TABLES, TABLES
from pipelines.core.warehouse import export
from pipelines.sources.base import MANIFEST_NAME
from pipelines.sources.encoding import SourceDecodeError
from pipelines.sources.registry import land

CORPUS = Path(__file__).parent / "corpus"
NOW = datetime(2026, 1, 1)
CURRENCY = "CNY"
TIMEZONE = "Asia/Shanghai"


# ------------------------------------------------------------------------------------------- helpers


@dataclass
class Run:
    """What a case's extra check can look at."""

    landing: Path
    raw: Path
    table: str
    results: list[IngestResult]
    tmp: Path

    def accepted(self) -> pl.DataFrame:
        files = sorted((self.raw / self.table).glob("*/*.parquet"))
        return pl.concat([pl.read_parquet(f) for f in files]) if files else pl.DataFrame()

    def quarantined(self) -> pl.DataFrame:
        files = sorted((self.raw / "_quarantine" / self.table).glob("**/*.parquet"))
        return pl.concat([pl.read_parquet(f) for f in files]) if files else pl.DataFrame()

    def by_rule(self, rule: str) -> list[dict]:
        q = self.quarantined()
        return (
            q.filter(pl.col("rule") == rule).sort("source_file", "source_row").to_dicts() if q.height else []
        )

    @property
    def notes(self) -> list[str]:
        return [n for r in self.results for n in r.notes]


@dataclass(frozen=True)
class Case:
    table: str
    rules: dict[str, int] = field(default_factory=dict)
    accepted: int = 0
    error: tuple[str, ...] = ()  # substrings of the IngestionError message (besides the file name)
    check: Callable[[Run], None] | None = None


def _csv_records(path: Path) -> int:
    """Independent count of data records (Python's csv module, header excluded)."""
    text = path.read_bytes().decode("utf-8", errors="replace").lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    return max(len(rows) - 1, 0)


def _raw_files(raw: Path, table: str) -> list[Path]:
    return sorted((raw / table).glob("**/*.parquet")) + sorted(
        (raw / "_quarantine" / table).glob("**/*.parquet")
    )


def _days(folder: Path) -> list[date]:
    found = {
        date.fromisoformat(m.group(1)) for p in folder.glob("*.csv") if (m := DAY_IN_NAME.search(p.name))
    }
    return sorted(found)


# ------------------------------------------------------------------------------------- case checks


def _swallowed_lines_kept(run: Run) -> None:
    (row,) = run.by_rule("malformed_line")
    assert row["source_row"] == 2
    assert "3 physical lines" in row["detail"]
    record = json.loads(row["raw_record"])["csv_line"]
    assert "o3,1,c1" in record and "o4,1,c1" in record  # inside the quoted field, not lost


def _delimiter_named(run: Run) -> None:
    rows = run.by_rule("header_mismatch")
    assert [r["source_row"] for r in rows] == [1, 2]
    assert "';'-delimited" in rows[0]["detail"]


def _missing_optional_noted(run: Run) -> None:
    assert any("channel" in n and "orders_2024-01-01.csv" in n for n in run.notes)
    assert run.accepted().get_column("channel").null_count() == 2


def _extra_columns_ignored(run: Run) -> None:
    acc = run.accepted()
    assert "note" not in acc.columns and sorted(acc.get_column("order_id").to_list()) == ["o1", "o2"]


def _renamed_header_named(run: Run) -> None:
    detail = run.by_rule("header_mismatch")[0]["detail"]
    assert "order_id" in detail and "OrderID" in detail


def _latin1_row_named(run: Run) -> None:
    (row,) = run.by_rule("invalid_encoding")
    assert row["source_row"] == 2 and "utf-8" in row["detail"].lower()
    assert sorted(run.accepted().get_column("order_id").to_list()) == ["o1", "o3"]


def _gbk_rows_named(run: Run) -> None:
    assert [r["source_row"] for r in run.by_rule("invalid_encoding")] == [1, 2]
    assert run.accepted().get_column("review_id").to_list() == ["r3"]


def _bom_not_glued(run: Run) -> None:
    assert sorted(run.accepted().get_column("order_id").to_list()) == ["o1", "o2"]


def _crlf_and_padding_trimmed(run: Run) -> None:
    acc = run.accepted().sort("order_id")
    assert acc.get_column("order_id").to_list() == ["o1", "o2"]
    assert acc.get_column("status").to_list() == ["completed", "completed"]
    assert acc.get_column("quantity").to_list() == [2, 2]


def _thousands_named(run: Run) -> None:
    details = [r["detail"] for r in run.by_rule("type_cast_failed")]
    assert details[0].endswith("1,234.50") and "thousands separator" in details[0]
    assert details[1].startswith("quantity") and details[1].endswith("1,000")
    assert float(run.accepted().get_column("unit_price")[0]) == 1234.50


def _comma_decimal(run: Run) -> None:
    assert run.by_rule("type_cast_failed")[0]["source_row"] == 1
    assert run.by_rule("malformed_line")[0]["source_row"] == 2  # unquoted 9,90 is one field too many


def _not_rounded(run: Run) -> None:
    details = {r["source_row"]: r["detail"] for r in run.by_rule("type_cast_failed")}
    assert (
        "whole number: 2.5" in details[1] and "at most 2 places" in details[2] and details[3].endswith("1e1")
    )
    acc = run.accepted()
    assert acc.get_column("order_id").to_list() == ["o4"] and acc.get_column("quantity").to_list() == [2]


def _date_formats(run: Run) -> None:
    # Day-first, month names and a 12-hour clock are refused (10:00 PM must not become 10:00).
    assert [r["source_row"] for r in run.by_rule("type_cast_failed")] == [2, 3, 5]
    ts = run.accepted().sort("order_id").get_column("order_ts").to_list()
    assert ts == [datetime(2024, 1, 1, 10), datetime(2024, 1, 1, 10)]


def _timezones_converted(run: Run) -> None:
    acc = run.accepted().sort("order_id")
    # Z, +09:00 and " +0800" all mean 10:00 in Shanghai, a short "10:00+09" 09:00; -05:00 evening is the
    # next Shanghai day; zone names (long or in a short 19-character value) are refused, never dropped.
    assert acc.get_column("order_id").to_list() == ["o1", "o2", "o5", "o6"]
    assert acc.get_column("order_ts").to_list() == [datetime(2024, 1, 1, 10)] * 3 + [datetime(2024, 1, 1, 9)]
    assert "2024-01-02" in run.by_rule("outside_partition")[0]["detail"]
    details = [r["detail"] for r in run.by_rule("type_cast_failed")]
    assert details[0].endswith("10:00:00 CET") and details[1].endswith("9:00 CET")


def _currency(run: Run) -> None:
    assert [r["source_row"] for r in run.by_rule("currency_mismatch")] == [1, 2]
    assert run.accepted().get_column("order_id").to_list() == ["o3"]  # lower-case cny is the shop currency
    assert run.by_rule("type_cast_failed")[0]["detail"].endswith("¥9.90")


def _guest_kept(run: Run) -> None:
    acc = run.accepted()
    assert acc.get_column("order_id").to_list() == ["o3"] and acc.get_column("customer_id").to_list() == [
        None
    ]
    assert "ZZ9" in run.by_rule("unknown_sku")[0]["detail"]
    assert "c99" in run.by_rule("unknown_customer")[0]["detail"]


def _dup_in_file(run: Run) -> None:
    (row,) = run.by_rule("duplicate_key")
    assert row["source_row"] == 3 and "orders_2024-01-01.csv row 1" in row["detail"]


def _dup_across_files(run: Run) -> None:
    (row,) = run.by_rule("duplicate_key")
    assert row["source_file"] == "orders_2024-01-01_late.csv" and row["source_row"] == 1
    assert "orders_2024-01-01.csv row 2" in row["detail"]


def _resent_file(run: Run) -> None:
    rows = run.by_rule("duplicate_key")
    assert {r["source_file"] for r in rows} == {"orders_2024-01-01_resent.csv"}
    assert set(run.accepted().get_column("_source_file")) == {"orders_2024-01-01.csv"}


def _dup_across_days(run: Run) -> None:
    (row,) = run.by_rule("duplicate_key")
    assert (
        row["source_file"] == "orders_2024-01-02.csv" and "already ingested for 2024-01-01" in row["detail"]
    )


def _future(run: Run) -> None:
    assert "2099-01-01" in run.by_rule("future_timestamp")[0]["detail"]


def _long_text(run: Run) -> None:
    (row,) = run.by_rule("text_too_long")
    assert row["source_row"] == 1 and "5000" in row["detail"]
    assert len(json.loads(row["raw_record"])["text"]) > 5000  # kept for repair


def _formulas_neutralised_on_export(run: Run) -> None:
    """Formula text is data (a buyer may type it): kept verbatim in raw, made inert in every CSV export."""
    acc = run.accepted().sort("review_id")
    texts = acc.get_column("text").to_list()
    assert texts == ["=cmd|' /C calc'!A0", "+SUM(1+1)*cmd|' /C notepad'!A0", "@SUM(A1:A9)"]
    assert run.by_rule("unknown_sku")[0]["detail"].startswith("sku =HYPERLINK(")
    out = export(acc.select("review_id", "text"), "reviews_export", run.tmp / "exports")
    exported = pl.read_csv(out["csv"], infer_schema=False).get_column("text").to_list()
    assert exported == ["'" + t for t in texts]
    assert pl.read_parquet(out["parquet"]).get_column("text").to_list() == texts


def _multiline_rows(run: Run) -> None:
    acc = run.accepted().sort("review_id")
    assert acc.select("review_id", "_source_row").rows() == [("r1", 1), ("r3", 3)]
    assert acc.get_column("text").to_list()[1] == "three\nphysical\nlines"
    assert run.by_rule("malformed_line")[0]["source_row"] == 2
    assert run.by_rule("score_range")[0]["source_row"] == 4


def _scores(run: Run) -> None:
    assert [r["source_row"] for r in run.by_rule("score_range")] == [1, 2]
    assert run.by_rule("enum_invalid")[0]["source_row"] == 4
    assert run.accepted().get_column("review_id").to_list() == ["r3"]  # 0 is a valid NPS answer


def _stock(run: Run) -> None:
    assert [r["source_row"] for r in run.by_rule("stock_negative")] == [1, 2]
    assert run.accepted().get_column("on_order").to_list() == [None]  # empty on_order is allowed


def _traffic_refs(run: Run) -> None:
    acc = run.accepted().sort("event_ts")
    assert acc.get_column("customer_id").to_list() == [None, "c2"]


def _shipments(run: Run) -> None:
    assert [r["source_row"] for r in run.by_rule("shipment_values")] == [1, 2]
    assert "teleport" in run.by_rule("enum_invalid")[0]["detail"]


def _snapshot_duplicate(run: Run) -> None:
    acc = run.accepted().sort("customer_id")
    assert acc.get_column("region").to_list() == ["Beijing", "Shanghai"]  # the first c1 is kept
    assert "email" not in acc.columns and acc.get_column("email_hash").null_count() == 0
    raw_record = run.by_rule("duplicate_key")[0]["raw_record"]
    assert "ann.li@example.com" not in raw_record and '"email": "hash:' in raw_record


def _header_only(run: Run) -> None:
    assert run.results[0].days_empty == ["2024-01-01"]


def _empty_noted(run: Run) -> None:
    assert any("empty file" in n for n in run.notes)


# --------------------------------------------------------------------------------------- canonical


CANONICAL: dict[str, Case] = {
    "truncated_line": Case("orders", {"malformed_line": 1}, 2),
    "unterminated_quote": Case("orders", {"malformed_line": 1}, 1, check=_swallowed_lines_kept),
    "extra_field_in_row": Case("orders", {"malformed_line": 1}, 2),
    "wrong_delimiter": Case("orders", {"header_mismatch": 2}, 0, check=_delimiter_named),
    "missing_required_column": Case("orders", {"header_mismatch": 2}, 0),
    "missing_optional_column": Case("orders", {}, 2, check=_missing_optional_noted),
    "extra_and_unnamed_columns": Case("orders", {}, 2, check=_extra_columns_ignored),
    "renamed_headers": Case("orders", {"header_mismatch": 2}, 0, check=_renamed_header_named),
    "duplicate_header_column": Case("orders", error=("'sku'", "more than once")),
    "header_only": Case("orders", {}, 0, check=_header_only),
    "empty_file": Case("orders", {}, 0, check=_empty_noted),
    "binary_named_csv": Case("orders", error=("not a text CSV",)),
    "latin1_in_utf8_file": Case("orders", {"invalid_encoding": 1}, 2, check=_latin1_row_named),
    "gbk_encoded_file": Case("reviews", {"invalid_encoding": 2}, 1, check=_gbk_rows_named),
    "utf8_bom": Case("orders", {}, 2, check=_bom_not_glued),
    "crlf_and_padding": Case("orders", {}, 2, check=_crlf_and_padding_trimmed),
    "thousands_separator": Case("orders", {"type_cast_failed": 2}, 1, check=_thousands_named),
    "comma_decimal": Case("orders", {"type_cast_failed": 1, "malformed_line": 1}, 1, check=_comma_decimal),
    "numbers_rounded_by_cast": Case("orders", {"type_cast_failed": 3}, 1, check=_not_rounded),
    "three_date_formats": Case("orders", {"type_cast_failed": 3}, 2, check=_date_formats),
    "date_formats_on_date_column": Case("competitor_prices", {"type_cast_failed": 2}, 1),
    "timezones": Case(
        "orders", {"outside_partition": 1, "type_cast_failed": 2}, 4, check=_timezones_converted
    ),
    "non_positive_quantity_and_price": Case("orders", {"quantity_positive": 2, "price_positive": 2}, 1),
    "non_positive_competitor_price": Case("competitor_prices", {"price_positive": 2}, 1),
    "negative_stock": Case("inventory", {"stock_negative": 2, "unknown_sku": 1}, 1, check=_stock),
    "other_currency": Case("orders", {"currency_mismatch": 2, "type_cast_failed": 1}, 1, check=_currency),
    "unknown_sku_and_customer": Case(
        "orders", {"unknown_sku": 1, "unknown_customer": 1}, 1, check=_guest_kept
    ),
    "unknown_refs_in_traffic": Case(
        "traffic", {"unknown_customer": 1, "unknown_sku": 1}, 2, check=_traffic_refs
    ),
    "duplicate_key_in_file": Case("orders", {"duplicate_key": 1}, 2, check=_dup_in_file),
    "duplicate_key_across_files": Case("orders", {"duplicate_key": 1}, 3, check=_dup_across_files),
    "same_file_delivered_twice": Case("orders", {"duplicate_key": 3}, 3, check=_resent_file),
    "duplicate_key_across_days": Case("orders", {"duplicate_key": 1}, 3, check=_dup_across_days),
    "duplicate_customer_in_snapshot": Case("customers", {"duplicate_key": 1}, 2, check=_snapshot_duplicate),
    "future_timestamp": Case("orders", {"future_timestamp": 1}, 1, check=_future),
    "enum_values": Case("orders", {"enum_invalid": 2}, 1),
    "required_value_empty": Case("orders", {"required_missing": 2}, 1),
    "very_long_text": Case("reviews", {"text_too_long": 1}, 1, check=_long_text),
    "formula_injection": Case("reviews", {"unknown_sku": 1}, 3, check=_formulas_neutralised_on_export),
    "multiline_text_keeps_row_numbers": Case(
        "reviews", {"malformed_line": 1, "score_range": 1}, 2, check=_multiline_rows
    ),
    "score_out_of_scale": Case("reviews", {"score_range": 2, "enum_invalid": 1}, 1, check=_scores),
    "shipment_values": Case("shipments", {"shipment_values": 2, "enum_invalid": 1}, 1, check=_shipments),
}


@pytest.fixture(scope="module")
def reference_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """products and customers snapshots ingested once; each case starts from a copy."""
    raw = tmp_path_factory.mktemp("reference") / "raw"
    for table in ("products", "customers"):
        result = ingest(table, CORPUS / "reference", raw, None, currency=CURRENCY, now=NOW)
        assert result.rows_quarantined == 0
    return raw


def test_corpus_is_complete() -> None:
    """Every case folder has an expectation and every expectation a folder; at least 25 cases in all."""
    folders = {p.name for p in (CORPUS / "canonical").iterdir() if p.is_dir()}
    assert folders == set(CANONICAL)
    adapter_folders = {f"{p.parent.name}/{p.name}" for p in (CORPUS / "adapters").glob("*/*") if p.is_dir()}
    assert adapter_folders == set(ADAPTER) | {GBK_UNDECLARED}
    assert len(folders) + len(adapter_folders) >= 25
    assert {c.table for c in CANONICAL.values()} == set(TABLES) - {"products"}


@pytest.mark.parametrize("case_id", sorted(CANONICAL))
def test_canonical_case(case_id: str, reference_raw: Path, tmp_path: Path) -> None:
    case = CANONICAL[case_id]
    table = TABLES[case.table]
    landing, raw = tmp_path / "landing", tmp_path / "raw"
    shutil.copytree(CORPUS / "reference", landing)
    shutil.copytree(CORPUS / "canonical" / case_id, landing, dirs_exist_ok=True)
    shutil.copytree(reference_raw, raw)
    before = {p: p.read_bytes() for p in _raw_files(raw, case.table)}
    case_files = sorted((CORPUS / "canonical" / case_id / case.table).iterdir())
    day_sets: list[list[date] | None] = (
        [[d] for d in _days(landing / case.table)] if table.is_daily else [None]
    )

    def run(days: list[date] | None) -> IngestResult:
        return ingest(case.table, landing, raw, days, currency=CURRENCY, timezone=TIMEZONE, now=NOW)

    if case.error:
        with pytest.raises(IngestionError) as err:
            for days in day_sets:
                run(days)
        message = str(err.value)
        assert case_files[0].name in message, message
        for part in case.error:
            assert part in message, message
        # Stopped before writing anything: raw and quarantine of the table are as they were.
        assert {p: p.read_bytes() for p in _raw_files(raw, case.table)} == before
        assert not list(raw.glob(".staging-*"))
        return

    results = [run(days) for days in day_sets]
    rows_in = sum(r.rows_in for r in results)
    accepted = sum(r.rows_accepted for r in results)
    quarantined = sum(r.rows_quarantined for r in results)
    by_rule = sum((r.by_rule for r in results), Counter())
    for r in results:
        r.check_balance()
    assert rows_in == accepted + quarantined
    assert rows_in == sum(_csv_records(p) for p in case_files), (
        "rows in differ from the CSV records in the files"
    )
    assert dict(by_rule) == case.rules
    assert accepted == case.accepted
    # What was reported is what is on disk, and every quarantined row names its file, row, rule and problem.
    r = Run(landing, raw, case.table, results, tmp_path)
    assert r.accepted().height == accepted
    q = r.quarantined()
    assert q.height == quarantined
    if q.height:
        assert set(q.get_column("source_file")) <= {p.name for p in case_files}
        assert q.get_column("source_row").min() >= 1
        assert q.get_column("detail").null_count() == 0 and (q.get_column("detail").str.len_chars() > 0).all()
    if case.check:
        case.check(r)


# ---------------------------------------------------------------------------------------- adapters


@dataclass(frozen=True)
class AdapterCase:
    landed: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, dict[str, int]] = field(default_factory=dict)
    routed_out: dict[str, dict[str, int]] = field(default_factory=dict)
    ingest_rules: dict[str, dict[str, int]] = field(default_factory=dict)  # ingestion's rules per table
    error: tuple[str, ...] = ()
    options: dict = field(default_factory=dict)
    check: Callable[[Path, Path], None] | None = None  # (landing, raw)


def _names(raw: Path) -> list[str]:
    return sorted(
        pl.read_parquet(raw / "products" / "snapshot" / "part-0.parquet").get_column("name").to_list()
    )


def _latin1_names(landing: Path, raw: Path) -> None:
    assert _names(raw) == ["Café Mug", "Crème brûlée set"]


def _gbk_names(landing: Path, raw: Path) -> None:
    assert _names(raw) == ["茶叶罐", "青花瓷茶杯"]


def _shopify_bad_values(landing: Path, raw: Path) -> None:
    side = pl.read_csv(landing / "_adapter_quarantine" / "orders.csv", infer_schema=False)
    assert side.sort("source_row").select("source_row", "rule").rows() == [
        ("2", "unparseable_price"),
        ("3", "unparseable_price"),
        ("4", "quantity_positive"),
        ("5", "unparseable_timestamp"),
    ]
    assert "=cmd|' /C calc'!A0" in _names(raw)  # formula text kept as data; exports neutralise it
    orders = pl.read_parquet(raw / "orders" / "*" / "*.parquet")
    assert orders.filter(pl.col("customer_id").is_null()).get_column("order_id").to_list() == ["#8"]  # guest


def _retail_bad_lines(landing: Path, raw: Path) -> None:
    side = pl.read_csv(landing / "_adapter_quarantine" / "orders.csv", infer_schema=False)
    rules = dict(zip(side.get_column("source_row"), side.get_column("rule"), strict=True))
    assert rules == {
        "3": "unparseable_price",
        "4": "unparseable_quantity",
        "5": "duplicate_line",
        "6": "price_positive",
        "8": "unparseable_quantity",
    }
    assert "=cmd|' /C calc'!A0" in _names(raw)


ADAPTER: dict[str, AdapterCase] = {
    "shopify/latin1_export": AdapterCase(
        landed={"orders": 2, "customers": 2, "products": 2}, check=_latin1_names
    ),
    "shopify/gbk_export": AdapterCase(
        landed={"orders": 2, "customers": 2, "products": 2}, options={"encoding": "gbk"}, check=_gbk_names
    ),
    "shopify/binary_export": AdapterCase(error=("binary content",)),
    "shopify/empty_export": AdapterCase(error=("empty CSV",)),
    "shopify/renamed_headers": AdapterCase(error=("not a Shopify orders export", "Lineitem price")),
    "shopify/header_only_export": AdapterCase(landed={"orders": 0, "customers": 0, "products": 0}),
    "shopify/bad_values": AdapterCase(
        landed={"orders": 4, "customers": 1, "products": 2},
        quarantined={"orders": {"unparseable_price": 2, "quantity_positive": 1, "unparseable_timestamp": 1}},
        ingest_rules={"orders": {"currency_mismatch": 1}},
        check=_shopify_bad_values,
    ),
    "ga4/broken_events": AdapterCase(
        landed={"traffic": 1},
        quarantined={"traffic": {"unparseable_event": 1, "missing_user_pseudo_id": 1}},
        routed_out={"traffic": {"not_a_funnel_event": 1}},
        # No products snapshot in a GA4-only landing, so the SKU is not checked.
    ),
    "online_retail/bad_lines": AdapterCase(
        landed={"orders": 2, "customers": 1, "products": 2},
        quarantined={
            "orders": {
                "unparseable_price": 1,
                "unparseable_quantity": 2,
                "duplicate_line": 1,
                "price_positive": 1,
            }
        },
        routed_out={"orders": {"postage": 1}, "products": {"postage": 1, "no_valid_sales": 4}},
        check=_retail_bad_lines,
    ),
    "online_retail/semicolon_export": AdapterCase(error=("not an Online Retail export", "InvoiceNo")),
}
GBK_UNDECLARED = "shopify/gbk_undeclared"  # the gbk_export input without the declared encoding


@pytest.mark.parametrize("case_id", sorted(ADAPTER))
def test_adapter_case(case_id: str, tmp_path: Path) -> None:
    case = ADAPTER[case_id]
    source, _ = case_id.split("/")
    inputs = CORPUS / "adapters" / case_id
    landing, raw = tmp_path / "landing", tmp_path / "raw"
    if case.error:
        with pytest.raises(SourceDecodeError) as err:
            land(source, inputs, landing, **case.options)
        message = str(err.value)
        assert next(inputs.iterdir()).name in message, message
        for part in case.error:
            assert part in message, message
        # No manifest: the half-done landing is never taken for a complete one, and nothing reached raw.
        assert not (landing / MANIFEST_NAME).exists() and not raw.exists()
        return

    report = land(source, inputs, landing, **case.options)
    manifest = json.loads((landing / MANIFEST_NAME).read_text())
    assert dict(manifest["rows_landed"]) == case.landed
    assert manifest["quarantined"] == case.quarantined
    assert manifest["routed_out"] == case.routed_out
    report.check_balance()

    days = None
    if manifest["first_date"]:
        first, last = date.fromisoformat(manifest["first_date"]), date.fromisoformat(manifest["last_date"])
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    tables = [t for t in ("products", "customers", *DAILY_TABLES) if t in manifest["tables"]]
    for table in tables:
        if TABLES[table].is_daily and days is None:
            continue
        result = ingest(
            table,
            landing,
            raw,
            days if TABLES[table].is_daily else None,
            currency=manifest["currency"] or None,
            timezone=manifest["timezone"],
            now=NOW,
        )
        result.check_balance()
        # Across the chain: source rows = ingested + ingestion-quarantined + adapter-quarantined + routed out.
        assert result.rows_in == manifest["rows_landed"][table], table
        assert dict(result.by_rule) == case.ingest_rules.get(table, {}), table
        n_side = sum(manifest["quarantined"].get(table, {}).values()) + sum(
            manifest["routed_out"].get(table, {}).values()
        )
        assert manifest["rows_in"][table] == result.rows_accepted + result.rows_quarantined + n_side
    if case.check:
        case.check(landing, raw)


@pytest.mark.xfail(
    strict=True,
    reason="encoding.py decodes an undeclared non-UTF-8 export with the cp1252 fallback; GBK bytes of common "
    "characters are all defined in cp1252, so the text lands as mojibake instead of stopping with an error "
    "(declaring SHOPLENS_SOURCE_ENCODING=gbk works: see shopify/gbk_export)",
)
def test_gbk_export_without_declared_encoding_is_not_garbled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHOPLENS_SOURCE_ENCODING", raising=False)
    try:
        land("shopify", CORPUS / "adapters" / GBK_UNDECLARED, tmp_path)
    except SourceDecodeError as err:
        assert "orders_export.csv" in str(err)
        return
    names = pl.read_csv(tmp_path / "products" / "products.csv").get_column("name").to_list()
    assert sorted(names) == ["茶叶罐", "青花瓷茶杯"]
