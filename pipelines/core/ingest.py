"""Validate canonical landing files and publish them as raw Parquet, quarantining what breaks a rule.

Everything runs in an in-memory DuckDB connection over whole files (never row by row in Python), so
validation scales with the data. Memory stays bounded: the connection has a memory_limit
(SHOPLENS_DUCKDB_MEMORY_LIMIT, default 2GB) and spills to a temp folder under raw/ beyond it, and the
accepted and quarantined rows are written to Parquet by DuckDB's COPY, one file per day, never through a
Python (Polars/pandas) frame. Only the personal columns of the customers snapshot pass through Python, for
the keyed hash.
The warehouse file is never opened here: ingestion only writes Parquet, so it never competes for the
DuckDB writer lock.

Accounting, per file and in total:  rows_in = rows_accepted + rows_quarantined.
A row breaking several rules is quarantined under the first one, in the order of RULE_ORDER.

Rules (the `rule` column of the quarantine table):
  erased_customer         the row belongs to a customer (or an order of one) in the erasure register
                          (data/erasure/erased_customers.csv, written by `python -m pipelines.erasure`); it
                          is counted here so the accounting balances, but its record is not kept
  malformed_line          the CSV parser could not read the line (wrong number of fields, bad quoting)
  invalid_encoding        the line is not valid UTF-8
  header_mismatch         the file's header lacks required canonical columns (every row of the file)
  required_missing        a required column is empty
  type_cast_failed        a value does not parse as the column's type: whole numbers for integers, dot
                          decimals without thousands separators and at most the column's scale of places,
                          ISO 8601 timestamps naive (shop time) or with a numeric offset / Z (zone names
                          such as CET are ambiguous and rejected)
  enum_invalid            a value outside the allowed set (status, event, scale, mode, packaging)
  text_too_long           a text field longer than MAX_TEXT_CHARS
  future_timestamp        the row's timestamp lies after the run's "now" (plus a day of clock slack)
  outside_partition       the row's date differs from the day its file was delivered for
  quantity_positive       order quantity <= 0 (returns are a status, not a negative quantity)
  price_positive          a price <= 0
  discount_range          discount < 0 or above the line amount
  currency_mismatch       an amount in a currency other than the shop's
  stock_negative          negative on-hand or on-order stock
  score_range             a review score outside its scale (1-5 stars, 0-10 survey)
  shipment_values         non-positive distance or weight, negative cost, delivered before shipped
  unknown_sku             a SKU not in the products snapshot
  unknown_customer        a customer id not in the customers snapshot
  duplicate_key           the table key appears earlier in this delivery or in another day already ingested
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import re
import shutil
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from pipelines.core.schemas import TABLES, Table

MAX_TEXT_CHARS = 5000
DEMO_PII_KEY = "shoplens-demo-key-not-secret"
MEMORY_LIMIT_ENV = "SHOPLENS_DUCKDB_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "2GB"
PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd"
RAW_PART = "part-0.parquet"
LINEAGE_COLUMNS = ("_source_file", "_source_row")
QUARANTINE_COLUMNS = ("table_name", "partition_date", "source_file", "source_row", "rule", "detail", "raw_record")

DAY_IN_NAME = re.compile(r"_(\d{4}-\d{2}-\d{2})(?:_[^/]*)?\.csv$")
# The erasure register, relative to the data folder (the parent of raw/): ids only, never personal data.
ERASURE_REGISTER = Path("erasure") / "erased_customers.csv"
ERASURE_COLUMNS = ("customer_id", "order_id", "erased_at")
ERASED_RULE = "erased_customer"
ERASED_DETAIL = "row of a customer erased on request (erasure register); the record is not kept"

# Text shapes a value must have before it is cast (TRY_CAST alone is too lenient: it rounds '2.5' to an
# integer 3 and '9.999' to 10.00, reads '1_000' and '0x10', and drops a zone name such as 'CET').
_INT_TEXT = r"[+-]?\d+(\.0*)?"
_DOUBLE_TEXT = r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?"
_TS_NAIVE = r"\d{4}[-/]\d{1,2}[-/]\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?"
_TS_OFFSET = r"\d{4}[-/]\d{1,2}[-/]\d{1,2}[ T]\d{1,2}:\d{2}(:\d{2}(\.\d{1,9})?)? ?([+-]\d{2}(:?\d{2})?|[Zz])"
_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")
_TYPE_HINTS = {
    "INTEGER": "a whole number",
    "DOUBLE": "a dot-decimal number",
    "DATE": "an ISO date YYYY-MM-DD",
    "TIMESTAMP": "ISO YYYY-MM-DD HH:MM:SS, optionally with a numeric UTC offset or Z",
}


class IngestionError(Exception):
    """A problem that stops ingestion before anything is written; the message names file and problem."""


@dataclass
class IngestResult:
    table: str
    files: list[str] = field(default_factory=list)
    rows_in: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    by_rule: Counter = field(default_factory=Counter)
    days_written: list[str] = field(default_factory=list)
    days_empty: list[str] = field(default_factory=list)
    examples: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def check_balance(self) -> None:
        if self.rows_in != self.rows_accepted + self.rows_quarantined:
            raise AssertionError(
                f"{self.table}: rows in {self.rows_in} != accepted {self.rows_accepted} "
                f"+ quarantined {self.rows_quarantined}"
            )


# --------------------------------------------------------------------------------------------- helpers


def sql_literal(value: str) -> str:
    """Quote a value as a SQL string literal (file names and settings never reach SQL unquoted)."""
    return "'" + str(value).replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def pii_key(mode: str, configured: str | None) -> bytes:
    """The keyed-hash secret: required in production, a fixed public key only for the demo shop."""
    if configured:
        return configured.encode()
    if mode == "production":
        raise IngestionError(
            "SHOPLENS_PII_KEY is not set: in production mode personal data is hashed with a secret key "
            "that must come from the environment (never from the repository). Set SHOPLENS_PII_KEY."
        )
    return DEMO_PII_KEY.encode()


def hash_personal_value(value: str | None, key: bytes) -> str | None:
    """HMAC-SHA256 of the normalised value (lower-case, trimmed); null (or blank) stays null.

    The standard library's hmac is used because DuckDB and Polars have no keyed hash.
    """
    if value is None or not value.strip():
        return None
    return hmac.new(key, value.strip().lower().encode(), hashlib.sha256).hexdigest()


def hash_personal(values: pl.Series, key: bytes) -> pl.Series:
    """`hash_personal_value` over a Series (used by the erasure tool on small sets of values)."""
    return values.map_elements(lambda v: hash_personal_value(v, key), return_dtype=pl.String)


def duckdb_memory_limit() -> str:
    """DuckDB's memory_limit for ingestion and the raw-table checks (SHOPLENS_DUCKDB_MEMORY_LIMIT).

    DuckDB's own default is 80% of RAM, which on a shared machine lets one ingestion take it all;
    with a limit DuckDB spills sorts, joins and temp tables to its temp_directory instead.
    """
    return os.environ.get(MEMORY_LIMIT_ENV, "").strip() or DEFAULT_MEMORY_LIMIT


def bounded_connection(spill_dir: Path, *, preserve_insertion_order: bool) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a memory limit that spills to `spill_dir` (under the data dir).

    Settings go in as connect-time config (values, never SQL text). Ingestion keeps insertion order (row
    numbers and the row order of the published files rely on it); read-only checks can drop it.
    """
    spill_dir.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(
        config={
            "memory_limit": duckdb_memory_limit(),
            "temp_directory": str(spill_dir),
            "preserve_insertion_order": preserve_insertion_order,
        }
    )


def landing_files(landing: Path, table: str, days: list[date] | None) -> list[tuple[Path, date | None]]:
    """Landing files of a table: daily files for the given days, or the snapshot file."""
    folder = landing / table
    if not folder.is_dir():
        return []
    if days is None:
        snap = folder / f"{table}.csv"
        return [(snap, None)] if snap.exists() else []
    wanted = {d.isoformat() for d in days}
    found = []
    for path in sorted(folder.glob(f"{table}_*.csv")):
        m = DAY_IN_NAME.search(path.name)
        if m and m.group(1) in wanted:
            found.append((path, date.fromisoformat(m.group(1))))
    return found


def sniff_file(path: Path, table: Table) -> tuple[list[str], list[str]]:
    """Read the header; reject binary files before anything is written. Returns (header, missing)."""
    with open(path, "rb") as fh:
        head = fh.read(65536)
    if b"\x00" in head:
        raise IngestionError(
            f"{path.name}: not a text CSV file (NUL byte at offset {head.index(0)}); "
            f"nothing was ingested for {table.name}. Remove or replace the file and run again."
        )
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    first = text.splitlines()[0] if text.strip() else ""
    header = next(csv.reader(io.StringIO(first)), []) if first else []
    header = _usable_header(path, [h.strip() for h in header], table)
    missing = [c for c in table.required if c not in header]
    return header, missing


def _usable_header(path: Path, header: list[str], table: Table) -> list[str]:
    """Column names the reader can use: unnamed columns (a trailing comma) get a placeholder name and a
    repeated extra column a suffix; a repeated canonical or personal column is ambiguous and stops."""
    meaningful = set(table.columns) | set(table.personal)
    seen: Counter = Counter()
    out = []
    for i, name in enumerate(header, start=1):
        name = name or f"_unnamed_{i}"
        seen[name] += 1
        if seen[name] > 1:
            if name in meaningful:
                raise IngestionError(
                    f"{path.name}: the header (line 1) names column {name!r} more than once, so its values "
                    f"are ambiguous; nothing was ingested for {table.name}. Fix the header and run again."
                )
            name = f"{name}_{i}"
        out.append(name)
    return out


# --------------------------------------------------------------------------------------- validation SQL


def _ts_expr(col: str, tz: str) -> str:
    """Parse ISO timestamps; an explicit numeric offset (or Z) is converted to the shop's local time.

    Anything else (a zone name or abbreviation, a day-first date) is NULL, so type_cast_failed: DuckDB's
    own cast would silently drop a trailing zone name and keep the wall-clock time.
    """
    c = quote_ident(col)
    return (
        # Fast path without a regex: the canonical 'YYYY-MM-DD HH:MM:SS' (or with T), 14 digits in place.
        # Length alone is not enough: '2024-01-01 10:00+09' and '2024-01-01 9:00 CET' are 19 characters
        # too, and a plain cast would drop their zone.
        f"CASE WHEN length({c}) = 19 AND ({c} LIKE '____-__-__ __:__:__' OR {c} LIKE '____-__-__T__:__:__') "
        f"AND length(translate({c}, '0123456789', '')) = 5 THEN TRY_CAST({c} AS TIMESTAMP) "
        f"WHEN regexp_full_match({c}, {sql_literal(_TS_OFFSET)}) "
        f"THEN timezone({sql_literal(tz)}, TRY_CAST(regexp_replace({c}, ' ([+-])', '\\1') AS TIMESTAMPTZ)) "
        f"WHEN regexp_full_match({c}, {sql_literal(_TS_NAIVE)}) THEN TRY_CAST({c} AS TIMESTAMP) END"
    )


def _typed_expr(col: str, dtype: str, tz: str) -> str:
    """The typed value of a text column, NULL when the text does not have the type's shape."""
    c = quote_ident(col)
    if dtype == "TIMESTAMP":
        return _ts_expr(col, tz)
    if dtype == "DATE":
        return f"TRY_CAST({c} AS DATE)"
    if dtype == "INTEGER":
        shape = _INT_TEXT
    elif dtype == "DOUBLE":
        shape = _DOUBLE_TEXT
    elif m := _DECIMAL.fullmatch(dtype):
        places = int(m.group(2))
        shape = rf"[+-]?(\d+\.?\d{{0,{places}}}|\.\d{{1,{places}}})"
    else:
        return f"TRY_CAST({c} AS {dtype})"
    return f"CASE WHEN regexp_full_match({c}, {sql_literal(shape)}) THEN TRY_CAST({c} AS {dtype}) END"


def _type_hint(dtype: str) -> str:
    if m := _DECIMAL.fullmatch(dtype):
        return f"a dot decimal with at most {m.group(2)} places and no thousands separator"
    return _TYPE_HINTS.get(dtype, dtype)


def _reference_joins(table: Table, ctx: dict) -> str:
    """Left joins that turn referential rules into flags (aliases ks, kc, ec, eo used by _rule_cases).

    Joins rather than NOT EXISTS / IN subqueries inside the CASE: those made typing the rows several
    times slower, and a subquery there also forbids referring to `_rule` when building the detail.
    """
    cols, joins = table.columns, []
    if ctx.get("products_known") and "sku" in cols and table.name != "products":
        joins.append("LEFT JOIN known_skus ks ON ks.sku = v.sku")
    if ctx.get("customers_known") and "customer_id" in cols and table.name != "customers":
        joins.append("LEFT JOIN known_customers kc ON kc.customer_id = v.customer_id")
    if ctx.get("erased"):
        if "customer_id" in cols:
            joins.append(
                "LEFT JOIN (SELECT DISTINCT customer_id FROM erased_customers) ec ON ec.customer_id = v.customer_id"
            )
        if "order_id" in cols:
            joins.append("LEFT JOIN (SELECT DISTINCT order_id FROM erased_orders) eo ON eo.order_id = v.order_id")
    return "\n".join(joins)


def _rule_cases(table: Table, ctx: dict) -> list[tuple[str, str, str]]:
    """(rule, condition over the typed row `t`, SQL detail expression), in precedence order."""
    rules: list[tuple[str, str, str]] = []
    cols = table.columns
    if ctx.get("erased"):
        # First: an erased customer's row is never quarantined with its record under another rule.
        conds = []
        if "customer_id" in cols:
            conds.append("ec.customer_id IS NOT NULL")
        if "order_id" in cols:
            conds.append("eo.order_id IS NOT NULL")
        rules.append((ERASED_RULE, " OR ".join(conds), sql_literal(ERASED_DETAIL)))
    for c in table.required:
        rules.append(("required_missing", f"v.{quote_ident(c)} IS NULL", sql_literal(f"{c} is empty")))
    for c, dtype in cols.items():
        rules.append(
            (
                "type_cast_failed",
                f"v.{quote_ident(c)} IS NOT NULL AND t.{quote_ident(c)} IS NULL",
                f"{sql_literal(f'{c} is not {_type_hint(dtype)}: ')} || v.{quote_ident(c)}",
            )
        )
    for c, allowed in table.enums.items():
        lst = ", ".join(sql_literal(a) for a in allowed)
        rules.append(
            (
                "enum_invalid",
                f"t.{quote_ident(c)} IS NOT NULL AND t.{quote_ident(c)} NOT IN ({lst})",
                f"{sql_literal(c + ' not in (' + ', '.join(allowed) + '): ')} || t.{quote_ident(c)}",
            )
        )
    text_cols = [c for c, d in cols.items() if d == "VARCHAR"]
    if text_cols:
        cond = " OR ".join(f"length(coalesce(v.{quote_ident(c)}, '')) > {MAX_TEXT_CHARS}" for c in text_cols)
        rules.append(("text_too_long", cond, sql_literal(f"a text field is longer than {MAX_TEXT_CHARS} characters")))
    pc = table.partition_column
    if pc:
        now = sql_literal(ctx["now"])
        rules.append(
            (
                "future_timestamp",
                f"CAST(t.{quote_ident(pc)} AS TIMESTAMP) > CAST({now} AS TIMESTAMP) + INTERVAL 1 DAY",
                f"{sql_literal(f'{pc} is in the future: ')} || CAST(t.{quote_ident(pc)} AS VARCHAR)",
            )
        )
        rules.append(
            (
                "outside_partition",
                f"v._file_day IS NOT NULL AND CAST(t.{quote_ident(pc)} AS DATE) <> v._file_day",
                f"{sql_literal(f'{pc} date ')} || CAST(CAST(t.{quote_ident(pc)} AS DATE) AS VARCHAR) "
                f"|| ' differs from the file day ' || CAST(v._file_day AS VARCHAR)",
            )
        )
    name = table.name
    if name == "orders":
        rules += [
            ("quantity_positive", "t.quantity <= 0", "'quantity must be > 0, got ' || t.quantity"),
            ("price_positive", "t.unit_price <= 0", "'unit_price must be > 0, got ' || t.unit_price"),
            (
                "discount_range",
                "t.discount < 0 OR t.discount > t.quantity * t.unit_price",
                "'discount ' || t.discount || ' outside 0..' || (t.quantity * t.unit_price)",
            ),
        ]
        if ctx.get("currency"):
            cur = sql_literal(ctx["currency"])
            rules.append(
                (
                    "currency_mismatch",
                    f"upper(t.currency) <> {cur}",
                    f"'currency ' || t.currency || ' is not the shop currency ' || {cur}",
                )
            )
    if name == "products":
        rules += [
            ("price_positive", "t.list_price <= 0", "'list_price must be > 0, got ' || t.list_price"),
            ("price_positive", "t.unit_cost < 0", "'unit_cost must be >= 0, got ' || t.unit_cost"),
        ]
    if name == "competitor_prices":
        rules.append(("price_positive", "t.price <= 0", "'price must be > 0, got ' || t.price"))
    if name == "inventory":
        rules.append(
            (
                "stock_negative",
                "t.on_hand < 0 OR t.on_order < 0",
                "'negative stock: on_hand ' || t.on_hand || ', on_order ' || coalesce(t.on_order, 0)",
            )
        )
    if name == "reviews":
        rules.append(
            (
                "score_range",
                "(t.scale = 'stars_1_5' AND t.score NOT BETWEEN 1 AND 5) "
                "OR (t.scale = 'nps_0_10' AND t.score NOT BETWEEN 0 AND 10)",
                "'score ' || t.score || ' outside the ' || t.scale || ' scale'",
            )
        )
    if name == "shipments":
        rules.append(
            (
                "shipment_values",
                # A promise before the ship date is real (a seller handing over late), not an error.
                "t.distance_km <= 0 OR t.weight_kg <= 0 OR t.cost < 0 OR t.delivered_ts < t.shipped_ts",
                "'distance ' || t.distance_km || ' km, weight ' || t.weight_kg || ' kg, cost ' || "
                "coalesce(CAST(t.cost AS VARCHAR), '') || ', or delivered before shipped'",
            )
        )
    if ctx.get("products_known") and "sku" in cols and name != "products":
        rules.append(
            (
                "unknown_sku",
                "t.sku IS NOT NULL AND ks.sku IS NULL",
                "'sku ' || t.sku || ' is not in the products snapshot'",
            )
        )
    if ctx.get("customers_known") and "customer_id" in cols and name != "customers":
        rules.append(
            (
                "unknown_customer",
                "t.customer_id IS NOT NULL AND kc.customer_id IS NULL",
                "'customer ' || t.customer_id || ' is not in the customers snapshot'",
            )
        )
    return rules


# ------------------------------------------------------------------------------------------- ingestion


def ingest(
    table_name: str,
    landing: Path,
    raw_dir: Path,
    days: list[date] | None = None,
    *,
    currency: str | None = None,
    timezone: str = "Asia/Shanghai",
    now: datetime | None = None,
    pii_secret: bytes = DEMO_PII_KEY.encode(),
    log=None,
    erasure_register: Path | None = None,
) -> IngestResult:
    """Ingest one table: `days` for a daily table (the partition range), None for a snapshot table.

    Rows of customers in the erasure register (default `<raw_dir>/../erasure/erased_customers.csv`) are
    counted under the rule `erased_customer` without their record, so an erased customer never comes back.

    Replaces exactly the given days (or the snapshot) in raw and quarantine, so a re-run of the same
    partitions gives the same rows and no duplicates. Files are staged in a temporary folder and moved
    into place with atomic renames after validation; a crash leaves the previous files intact.
    """
    table = TABLES[table_name]
    if table.is_daily and days is None:
        raise ValueError(f"{table_name} is a daily table: give the days to ingest")
    say = log or (lambda msg: None)
    now = now or datetime.now()
    result = IngestResult(table=table_name)
    files = landing_files(landing, table_name, days)
    result.files = [p.name for p, _ in files]

    staging = Path(tempfile.mkdtemp(prefix=f".staging-{table_name}-", dir=_ensure(raw_dir)))
    # Bounded memory: DuckDB spills to the staging folder (under raw/, removed at the end) instead of
    # growing, and no table is ever converted to a Python frame: files are written by DuckDB's COPY.
    con = bounded_connection(staging / "_spill", preserve_insertion_order=True)
    try:
        col_list = list(table.columns)
        # Reference data for referential rules.
        ctx: dict = {"now": now.strftime("%Y-%m-%d %H:%M:%S"), "currency": currency.upper() if currency else None}
        if table_name != "products":
            ctx["products_known"] = _register_known(con, raw_dir, "products", "sku", "known_skus")
        if table_name not in ("customers", "products"):
            ctx["customers_known"] = _register_known(con, raw_dir, "customers", "customer_id", "known_customers")
        ctx["erased"] = _register_erased(con, table, erasure_register or raw_dir.parent / ERASURE_REGISTER)

        # 1. Read every file as text, with the parser's rejects kept.
        good_files: list[tuple[Path, date | None, list[str]]] = []
        header_rows = []
        for path, day in files:
            header, missing = sniff_file(path, table)
            if not header:
                result.notes.append(f"{path.name}: empty file (no header), 0 rows")
                continue
            if missing:
                header_rows.append((path, day, header, missing))
                continue
            absent = [c for c in table.columns if c not in header]
            if absent:
                result.notes.append(f"{path.name}: no column(s) {', '.join(absent)}; loaded as empty")
            good_files.append((path, day, header))
        _create_text_table(con, table, good_files)
        for path, day, header, missing in header_rows:
            _quarantine_whole_file(con, table, path, day, header, missing)
        if ctx["erased"]:
            _erase_rejected_rows(con)

        # 2. Type and validate in one pass; first failing rule wins.
        cases = _rule_cases(table, ctx)
        rule_sql = " ".join(f"WHEN {cond} THEN {sql_literal(rule)}" for rule, cond, _ in cases)
        detail_sql = " ".join(f"WHEN {cond} THEN {detail}" for _, cond, detail in cases)
        typed_struct = ", ".join(
            f"{quote_ident(c)} := {_typed_expr(c, dtype, timezone)}" for c, dtype in table.columns.items()
        )
        # `v.x` is the text as delivered, `t.x` the typed value (a struct column), so a rule can tell
        # "empty" from "does not parse".
        con.execute(
            f"""
            CREATE TEMP TABLE typed AS
            SELECT unnest(t), _source_file, _source_row, _file_day, _raw,
                   CASE {rule_sql} ELSE NULL END AS _rule,
                   CASE WHEN _rule IS NULL THEN NULL ELSE (CASE {detail_sql} ELSE NULL END) END AS _detail
            FROM (SELECT v.*, struct_pack({typed_struct}) AS t FROM landed v) v
            {_reference_joins(table, ctx)}
            """
        )
        # Duplicate keys: within this delivery, then against other days already ingested.
        key = ", ".join(quote_ident(k) for k in table.key)
        con.execute(
            f"""
            UPDATE typed SET _rule = 'duplicate_key',
                _detail = 'key (' || {sql_literal(", ".join(table.key))} || ') repeats ' || d.first_seen
            FROM (
                SELECT _source_file, _source_row,
                       first_value(_source_file || ' row ' || _source_row) OVER w AS first_seen,
                       row_number() OVER w AS n
                FROM typed WHERE _rule IS NULL
                WINDOW w AS (PARTITION BY {key} ORDER BY _source_file, _source_row)
            ) d
            WHERE typed._source_file = d._source_file AND typed._source_row = d._source_row AND d.n > 1
            """
        )
        if table.is_daily:
            _flag_cross_day_duplicates(con, table, raw_dir, days or [])

        # 3. Personal data: hash, never store raw (a keyed hash computed by a Python UDF as DuckDB
        # streams the rows, so the accepted rows never leave DuckDB).
        raw_fields = ", ".join(f"{quote_ident(c)} := l.{quote_ident(c)}" for c in (*table.columns, *table.personal))
        hashed, landed_join, raw_record = "", "", "raw_record"
        if table.personal:
            _register_personal_functions(con, table, pii_secret)
            hashed = "".join(
                f", shoplens_pii_hash(l.{quote_ident(c)}) AS {quote_ident(c + '_hash')}" for c in table.personal
            )
            landed_join = "LEFT JOIN landed l ON l._source_file = t._source_file AND l._source_row = t._source_row"
            raw_record = "shoplens_scrub_raw(raw_record)"
        # 4. Quarantined, then accepted rows as DuckDB tables (written to Parquet by COPY in _publish).
        part_expr = f"CAST({quote_ident(table.partition_column)} AS DATE)" if table.is_daily else "NULL"
        con.execute(
            f"""
            CREATE TEMP TABLE quarantined AS
            SELECT table_name, partition_date, source_file, source_row, rule, detail, {raw_record} AS raw_record
            FROM (
                SELECT {sql_literal(table_name)} AS table_name,
                       coalesce(_file_day, TRY_CAST({part_expr} AS DATE)) AS partition_date,
                       _source_file AS source_file, _source_row::INTEGER AS source_row,
                       _rule AS rule, _detail AS detail,
                       CASE WHEN _rule = {sql_literal(ERASED_RULE)} THEN NULL ELSE (
                           SELECT to_json(struct_pack({raw_fields}))::VARCHAR FROM landed l
                           WHERE l._source_file = typed._source_file AND l._source_row = typed._source_row
                       ) END AS raw_record
                FROM typed WHERE _rule IS NOT NULL
                UNION ALL
                SELECT {sql_literal(table_name)}, file_day, source_file, source_row, rule, detail, raw_record
                FROM rejects_q
            ) q
            ORDER BY source_file, source_row
            """
        )
        result.rows_in = con.sql("SELECT count(*) FROM landed").fetchall()[0][0] + con.sql(
            "SELECT count(*) FROM rejects_q"
        ).fetchall()[0][0]
        # The text copy is no longer needed once the quarantine has its raw records (unless personal
        # columns are still to be hashed from it): dropping it first lowers the peak of memory and spill.
        con.execute("DROP TABLE rejects_q")
        if not table.personal:
            con.execute("DROP TABLE landed")
        con.execute(
            f"""
            CREATE TEMP TABLE accepted AS
            SELECT {", ".join(f"t.{quote_ident(c)}" for c in col_list)}, t._source_file,
                   t._source_row::INTEGER AS _source_row
                   {", CAST(t." + quote_ident(table.partition_column) + " AS DATE) AS _partition_date" if table.is_daily else ""}
                   {hashed}
            FROM typed t {landed_join}
            WHERE t._rule IS NULL ORDER BY t._source_file, t._source_row
            """
        )
        for name in ("typed", "landed"):
            con.execute(f"DROP TABLE IF EXISTS {name}")
        result.rows_accepted = con.sql("SELECT count(*) FROM accepted").fetchall()[0][0]
        result.rows_quarantined = con.sql("SELECT count(*) FROM quarantined").fetchall()[0][0]
        for rule, n in con.sql("SELECT rule, count(*) FROM quarantined GROUP BY rule ORDER BY rule").fetchall():
            result.by_rule[rule] = n
        result.examples = [
            dict(zip(["source_file", "source_row", "rule", "detail"], r, strict=True))
            for r in con.sql(
                "SELECT source_file, source_row, rule, detail FROM quarantined "
                "QUALIFY row_number() OVER (PARTITION BY rule ORDER BY source_file, source_row) <= 3 "
                "ORDER BY rule, source_file, source_row"
            ).fetchall()
        ]
        result.check_balance()

        _publish(con, table, raw_dir, staging, days, result)
        say(
            f"{table_name}: {len(files)} file(s), {result.rows_in} rows in, {result.rows_accepted} accepted, "
            f"{result.rows_quarantined} quarantined"
        )
        return result
    finally:
        con.close()
        shutil.rmtree(staging, ignore_errors=True)


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _register_known(con: duckdb.DuckDBPyConnection, raw_dir: Path, table: str, col: str, name: str) -> bool:
    snap = raw_dir / table / "snapshot" / RAW_PART
    if not snap.exists():
        return False
    con.execute(
        f"CREATE TEMP TABLE {name} AS SELECT DISTINCT {quote_ident(col)} AS {quote_ident(col)} "
        f"FROM read_parquet({sql_literal(str(snap))})"
    )
    return True


def _register_erased(con: duckdb.DuckDBPyConnection, table: Table, register: Path) -> bool:
    """Load the erasure register (customer ids and the order ids of their orders) as temp tables."""
    if not register.exists() or not ({"customer_id", "order_id"} & set(table.columns)):
        return False
    columns = _struct({c: "VARCHAR" for c in ERASURE_COLUMNS})
    src = f"read_csv({sql_literal(str(register))}, header = true, columns = {columns}, auto_detect = false)"
    for col, name in (("customer_id", "erased_customers"), ("order_id", "erased_orders")):
        con.execute(
            f"CREATE TEMP TABLE {name} AS SELECT DISTINCT trim({col}) AS {col} FROM {src} "
            f"WHERE nullif(trim({col}), '') IS NOT NULL"
        )
    return True


def _erase_rejected_rows(con: duckdb.DuckDBPyConnection) -> None:
    """Unparseable rows of an erased customer: same rule and no record (matched on the field values)."""
    fields = "list_transform(string_split(json_extract_string(raw_record, '$.csv_line'), ','), lambda x: trim(x, ' \"'))"
    con.execute(
        f"""
        UPDATE rejects_q SET rule = {sql_literal(ERASED_RULE)}, detail = {sql_literal(ERASED_DETAIL)}, raw_record = NULL
        WHERE json_extract_string(raw_record, '$.customer_id') IN (SELECT customer_id FROM erased_customers)
           OR json_extract_string(raw_record, '$.order_id') IN (SELECT order_id FROM erased_orders)
           OR list_has_any({fields}, (SELECT list(customer_id) FROM erased_customers))
           OR list_has_any({fields}, (SELECT list(order_id) FROM erased_orders))
        """
    )


def _create_text_table(con: duckdb.DuckDBPyConnection, table: Table, files: list) -> None:
    """Load files as VARCHAR columns with file and row lineage; unreadable lines go to rejects_q.

    Files sharing a header are read by one `read_csv` over the list (one scan, streamed and parallel in
    DuckDB: reading 730 daily files one by one cost ~50 ms each in overhead). A data row's number in
    its file is recovered from its position among the file's parsed rows and the parser's reject lines.
    """
    cols_def = ", ".join(f"{quote_ident(c)} VARCHAR" for c in (*table.columns, *table.personal))
    con.execute(
        f"CREATE TEMP TABLE landed ({cols_def}, _source_file VARCHAR, _source_row BIGINT, _file_day DATE, _raw VARCHAR)"
    )
    con.execute(
        "CREATE TEMP TABLE rejects_q (file_day DATE, source_file VARCHAR, source_row INTEGER, "
        "rule VARCHAR, detail VARCHAR, raw_record VARCHAR)"
    )
    groups: dict[tuple[str, ...], list[tuple[Path, date | None]]] = {}
    for path, day, header in files:
        groups.setdefault(tuple(header), []).append((path, day))
    for header, members in groups.items():
        _load_group(con, table, list(header), members)


def _load_group(con: duckdb.DuckDBPyConnection, table: Table, header: list[str], members: list) -> None:
    tag = uuid.uuid4().hex[:8]
    rejects, scans, rows, days = f"rej_{tag}", f"scan_{tag}", f"rows_{tag}", f"days_{tag}"
    con.execute(f"CREATE TEMP TABLE {days} (file_path VARCHAR, file_name VARCHAR, file_day DATE)")
    con.executemany(
        f"INSERT INTO {days} VALUES (?, ?, ?)", [(str(p), p.name, d) for p, d in members]
    )
    file_list = "[" + ", ".join(sql_literal(str(p)) for p, _ in members) + "]"
    columns = "{" + ", ".join(f"{sql_literal(h)}: 'VARCHAR'" for h in header) + "}"
    con.execute(
        f"""
        CREATE TEMP TABLE {rows} AS
        SELECT * FROM read_csv({file_list}, header = true, columns = {columns}, filename = '_file_path',
            auto_detect = false, delim = ',', quote = '"', escape = '"', strict_mode = true,
            store_rejects = true, rejects_table = {sql_literal(rejects)}, rejects_scan = {sql_literal(scans)},
            max_line_size = 10000000)
        """
    )
    # The parser can report several errors for one line: keep the first per file and line. `adj` is
    # (data row - rank among the file's rejects): the k-th parsed row sits at data row
    # k + #(rejects with adj < k) (exact for files without line breaks inside quoted fields).
    con.execute(
        f"""
        CREATE TEMP TABLE {rejects}_1 AS
        WITH firsts AS (
            SELECT s.file_path, e.line, e.error_type, e.error_message, e.csv_line
            FROM {rejects} e JOIN {scans} s USING (scan_id, file_id)
            QUALIFY row_number() OVER (PARTITION BY s.file_path, e.line ORDER BY e.column_idx NULLS LAST) = 1
        )
        SELECT *, row_number() OVER (PARTITION BY file_path ORDER BY line) AS rank,
               line - 1 - row_number() OVER (PARTITION BY file_path ORDER BY line) AS adj
        FROM firsts
        """
    )
    present = set(header)
    select_cols = ", ".join(
        f"NULLIF(trim(r.{quote_ident(c)}), '') AS {quote_ident(c)}" if c in present else f"NULL AS {quote_ident(c)}"
        for c in (*table.columns, *table.personal)
    )
    # The raw record is kept only for quarantined rows (built later): JSON for every row cost ~40% of the time.
    raw_json = "NULL"
    con.execute(
        f"""
        INSERT INTO landed
        WITH firsts AS (SELECT _file_path, min(rowid) AS _first FROM {rows} GROUP BY _file_path),
        numbered AS (
            -- rows are stored in file order (preserve_insertion_order), so the k-th row of a file is
            -- rowid - first rowid of the file + 1: no sort needed
            SELECT r.*, r.rowid - f._first + 1 AS _k FROM {rows} r JOIN firsts f USING (_file_path)
        )
        SELECT {select_cols}, d.file_name,
               r._k + coalesce(x.n_before, 0),
               d.file_day, {raw_json}
        FROM numbered r JOIN {days} d ON d.file_path = r._file_path
        -- the latest reject step with adj < k tells how many rejected lines precede the k-th row
        ASOF LEFT JOIN (
            SELECT file_path, adj, max(rank) AS n_before FROM {rejects}_1 GROUP BY file_path, adj
        ) x ON x.file_path = r._file_path AND r._k > x.adj
        -- no ORDER BY: every later step orders by (_source_file, _source_row) itself, and sorting the
        -- whole delivery here was the slowest step of a large ingestion (and its largest spill)
        """
    )
    con.execute(
        f"""
        INSERT INTO rejects_q
        SELECT d.file_day, d.file_name, x.line - 1,
               CASE WHEN x.error_type ILIKE '%UNICODE%' OR x.error_type ILIKE '%ENCODING%' THEN 'invalid_encoding'
                    ELSE 'malformed_line' END,
               'line ' || x.line || ': ' || x.error_message
               || CASE WHEN contains(rtrim(x.csv_line, chr(13) || chr(10)), chr(10)) THEN ' (the record runs over '
                    || (length(rtrim(x.csv_line, chr(13) || chr(10)))
                        - length(replace(rtrim(x.csv_line, chr(13) || chr(10)), chr(10), '')) + 1)
                    || ' physical lines, all kept in raw_record)' ELSE '' END,
               to_json(struct_pack(csv_line := x.csv_line))::VARCHAR
        FROM {rejects}_1 x JOIN {days} d ON d.file_path = x.file_path
        """
    )
    for name in (rows, f"{rejects}_1", rejects, scans, days):
        con.execute(f"DROP TABLE IF EXISTS {name}")


def _struct(columns: dict[str, str]) -> str:
    return "{" + ", ".join(f"{sql_literal(k)}: {sql_literal(v)}" for k, v in columns.items()) + "}"


def _quarantine_whole_file(con, table: Table, path: Path, day: date | None, header: list[str], missing: list[str]) -> None:
    """A file whose header lacks required columns: every data row is quarantined, none is lost."""
    text = path.read_text(encoding="utf-8", errors="replace").lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(text)))[1:]
    detail = f"header lacks required column(s) {', '.join(missing)}; found {', '.join(header)}"
    if len(header) == 1 and (delim := next((d for d in (";", "\t", "|") if d in header[0]), None)):
        detail += f" (the file looks {delim!r}-delimited; landing files are comma-separated)"
    con.executemany(
        "INSERT INTO rejects_q VALUES (?, ?, ?, 'header_mismatch', ?, ?)",
        [
            (day, path.name, i, detail, json.dumps(dict(zip(header, r, strict=False)), ensure_ascii=False))
            for i, r in enumerate(rows, start=1)
        ],
    )


def _flag_cross_day_duplicates(con, table: Table, raw_dir: Path, days: list[date]) -> None:
    """Keys already ingested under another day than the ones being replaced are duplicates."""
    existing = sorted(
        p for p in (raw_dir / table.name).glob(f"date=*/{RAW_PART}") if p.parent.name[5:] not in {d.isoformat() for d in days}
    )
    if not existing:
        return
    file_list = "[" + ", ".join(sql_literal(str(p)) for p in existing) + "]"
    on = " AND ".join(f"e.{quote_ident(k)} IS NOT DISTINCT FROM typed.{quote_ident(k)}" for k in table.key)
    keys = ", ".join(quote_ident(k) for k in table.key)
    con.execute(
        f"""
        UPDATE typed SET _rule = 'duplicate_key',
            _detail = 'key (' || {sql_literal(", ".join(table.key))} || ') already ingested for ' || e._partition_date
        FROM (SELECT DISTINCT {keys}, _partition_date FROM read_parquet({file_list})) e
        WHERE typed._rule IS NULL AND {on}
        """
    )


def _register_personal_functions(con: duckdb.DuckDBPyConnection, table: Table, key: bytes) -> None:
    """SQL functions for the keyed hash of a personal value and the scrubbing of a raw record.

    Python UDFs (DuckDB has no keyed hash): DuckDB calls them chunk by chunk while it streams the rows,
    so only the personal columns pass through Python, never a whole table. NULL in gives NULL out.
    """
    con.create_function(
        "shoplens_pii_hash", lambda v: hash_personal_value(v, key), [duckdb.sqltype("VARCHAR")], duckdb.sqltype("VARCHAR")
    )
    con.create_function(
        "shoplens_scrub_raw",
        lambda r: _scrub_raw_record(r, table.personal, key),
        [duckdb.sqltype("VARCHAR")],
        duckdb.sqltype("VARCHAR"),
    )


def _scrub_raw_record(record: str | None, personal: tuple[str, ...], key: bytes) -> str | None:
    """Quarantined rows keep their raw record for repair, but personal fields are hashed there too."""
    if record is None:
        return None
    try:
        obj = json.loads(record)
    except ValueError:
        return record
    if isinstance(obj, dict):
        for k in personal:
            if obj.get(k):
                obj[k] = "hash:" + hmac.new(key, str(obj[k]).strip().lower().encode(), hashlib.sha256).hexdigest()
    return json.dumps(obj, ensure_ascii=False)


def _copy_parquet_atomic(con: duckdb.DuckDBPyConnection, query: str, target: Path, staging: Path) -> None:
    """COPY a query's rows to Parquet straight from DuckDB (streamed, never through a Python frame).

    Written under a temporary name in the staging folder (same file system), then renamed over the
    target, so a reader sees the old file or the new one, never half a file. The path is a parameter.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging / f"{uuid.uuid4().hex}.parquet"
    con.execute(f"COPY ({query}) TO $1 ({PARQUET_OPTIONS})", [str(tmp)])
    os.replace(tmp, target)


def _publish(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    raw_dir: Path,
    staging: Path,
    days: list[date] | None,
    result: IngestResult,
) -> None:
    """Replace the given days (or the snapshot) with the new files: one atomic rename per file.

    One COPY per day: the accepted and quarantined tables are sorted by file and row, and files are
    per day, so each day is a contiguous run of row groups that DuckDB finds by their min/max statistics
    (a day's COPY reads its own row groups, not the whole table). `PARTITION_BY` was not used: with
    hundreds of days it keeps many files open at once and may split a day into several files, which
    would break the one-file-per-day, replace-by-rename rule.
    """
    base = raw_dir / table.name
    qbase = raw_dir / "_quarantine" / table.name
    order = "ORDER BY _source_file, _source_row"
    q_order = "ORDER BY source_file, source_row"
    if not table.is_daily:
        _copy_parquet_atomic(con, f"SELECT * FROM accepted {order}", base / "snapshot" / RAW_PART, staging)
        _copy_parquet_atomic(con, f"SELECT * FROM quarantined {q_order}", qbase / "snapshot" / RAW_PART, staging)
        result.days_written = ["snapshot"]
        return
    accepted_days = {r[0] for r in con.sql("SELECT DISTINCT _partition_date FROM accepted").fetchall()}
    q_days = {r[0] for r in con.sql("SELECT DISTINCT partition_date FROM quarantined").fetchall()}
    for day in days or []:
        # The day is a date made here, not input text: a DATE literal, so DuckDB prunes row groups by it.
        day_sql = f"DATE {sql_literal(day.isoformat())}"
        target = base / f"date={day.isoformat()}" / RAW_PART
        if day in accepted_days:
            _copy_parquet_atomic(
                con, f"SELECT * FROM accepted WHERE _partition_date = {day_sql} {order}", target, staging
            )
            result.days_written.append(day.isoformat())
        else:
            if target.exists():
                target.unlink()
            result.days_empty.append(day.isoformat())
        qtarget = qbase / f"date={day.isoformat()}" / RAW_PART
        if day in q_days:
            _copy_parquet_atomic(
                con, f"SELECT * FROM quarantined WHERE partition_date = {day_sql} {q_order}", qtarget, staging
            )
        elif qtarget.exists():
            qtarget.unlink()
    # Quarantined rows whose day could not be read (bad timestamps in an undated file) are kept too.
    if None in q_days:
        _copy_parquet_atomic(
            con,
            f"SELECT * FROM quarantined WHERE partition_date IS NULL {q_order}",
            qbase / "undated" / f"{'_'.join(result.files) or 'none'}.parquet"[:200],
            staging,
        )


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def write_empty_raw(table_name: str, raw_dir: Path) -> Path:
    """A typed, empty raw table for a table the source lacks, so views over it build with zero rows.

    Only models that declare the table optional (`meta.optional_sources` in dbt) are built on it; the
    marts that need the table are excluded from the build and reported as skipped.
    """
    table = TABLES[table_name]
    cols = [f"CAST(NULL AS {dtype}) AS {quote_ident(c)}" for c, dtype in table.columns.items()]
    cols += [f"CAST(NULL AS VARCHAR) AS {quote_ident(f'{c}_hash')}" for c in table.personal]
    cols += ["CAST(NULL AS VARCHAR) AS _source_file", "CAST(NULL AS INTEGER) AS _source_row"]
    if table.is_daily:
        cols.append("CAST(NULL AS DATE) AS _partition_date")
    folder = raw_dir / table_name
    if folder.exists():
        shutil.rmtree(folder)
    target = folder / "_empty" / RAW_PART
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{uuid.uuid4().hex}.tmp")
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT {', '.join(cols)} WHERE false) TO {sql_literal(str(tmp))} (FORMAT parquet)")
    os.replace(tmp, target)
    return target
