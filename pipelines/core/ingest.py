"""Validate canonical landing files and publish them as raw Parquet, quarantining what breaks a rule.

Everything runs in an in-memory DuckDB connection over whole files (never row by row in Python), so
validation scales with the data. Memory stays bounded: the connection has a memory_limit
(SHOPLENS_DUCKDB_MEMORY_LIMIT, default 2GB) and spills to a temp folder under raw/ beyond it, and the
accepted and quarantined rows are written to Parquet by DuckDB's COPY, one file per day, never through a
Python (Polars/pandas) frame. Only the personal columns of the customers snapshot pass through Python, for
the keyed hash.
The warehouse file is never opened here: ingestion only writes Parquet, so it never competes for the
DuckDB writer lock.

One pass per header reads, types and checks every file into one table of typed values (`typed`, in file
and row order, so a row's position gives its file row number); the rules that look at other rows
(reference snapshots, erasure register, duplicate keys) then flag rows in it, and each day's file is
COPYed from it. The delivered text is not kept: the few quarantined rows get their raw record by
reading their files again. Long ranges are loaded in chunks of days by pipelines.backfill.

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
import queue
import re
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from pipelines.core.landing import LandingFileError, csv_file, csv_files, is_gzip, open_bytes, read_bytes
from pipelines.core.schemas import TABLES, Table

MAX_TEXT_CHARS = 5000
DEMO_PII_KEY = "shoplens-demo-key-not-secret"
MEMORY_LIMIT_ENV = "SHOPLENS_DUCKDB_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "2GB"
PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd"
RAW_PART = "part-0.parquet"
LINEAGE_COLUMNS = ("_source_file", "_source_row")
QUARANTINE_COLUMNS = ("table_name", "partition_date", "source_file", "source_row", "rule", "detail", "raw_record")

DAY_IN_NAME = re.compile(r"_(\d{4}-\d{2}-\d{2})(?:_[^/]*)?\.csv(?:\.gz)?$")
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
_TS_CANONICAL_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][ T][0-9][0-9]:[0-9][0-9]:[0-9][0-9]"
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
    try:
        if days is None:
            snap = csv_file(folder, table)
            return [(snap, None)] if snap else []
        candidates = csv_files(folder, f"{table}_*")
    except LandingFileError as exc:
        raise IngestionError(f"{table}: {exc}") from exc
    wanted = {d.isoformat() for d in days}
    found = []
    for path in candidates:
        m = DAY_IN_NAME.search(path.name)
        if m and m.group(1) in wanted:
            found.append((path, date.fromisoformat(m.group(1))))
    return found


def sniff_file(path: Path, table: Table) -> tuple[list[str], list[str]]:
    """Read the header; reject binary files before anything is written. Returns (header, missing)."""
    try:
        with open_bytes(path) as fh:
            head = fh.read(65536)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError; a cut-off .gz ends in EOFError
        raise IngestionError(
            f"{path.name}: cannot be read as {'gzip-compressed ' if is_gzip(path) else ''}CSV ({exc}); "
            f"nothing was ingested for {table.name}. Remove or replace the file and run again."
        ) from exc
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
        # Fast path without a regex: the canonical 'YYYY-MM-DD HH:MM:SS' (or with T), 14 ASCII digits in
        # place. Length alone is not enough: '2024-01-01 10:00+09' and '2024-01-01 9:00 CET' are 19
        # characters too, and a plain cast would drop their zone. GLOB (anchored, one character per
        # class) checks the shape in one pass; the former LIKE + translate() test took ~4x longer.
        f"CASE WHEN {c} GLOB {sql_literal(_TS_CANONICAL_GLOB)} THEN TRY_CAST({c} AS TIMESTAMP) "
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


def _reference_rules(table: Table, ctx: dict) -> list[tuple[str, str, str]]:
    """(rule, condition over a row of `typed`, SQL detail) for the rules that look other tables up.

    Applied as UPDATEs after the typing pass rather than as joins inside it: a join there would cost
    the pass its documented row order (rows are numbered by their position in `typed`) and made it
    ~40% slower on 2 cores; the anti-joins of the UPDATEs read only the key column. They come last in
    precedence (only rows without a rule yet), as they did in the single CASE.
    """
    cols, rules = table.columns, []
    if ctx.get("products_known") and "sku" in cols and table.name != "products":
        rules.append(
            (
                "unknown_sku",
                "sku IS NOT NULL AND NOT EXISTS (SELECT 1 FROM known_skus k WHERE k.sku = typed.sku)",
                "'sku ' || sku || ' is not in the products snapshot'",
            )
        )
    if ctx.get("customers_known") and "customer_id" in cols and table.name != "customers":
        rules.append(
            (
                "unknown_customer",
                "customer_id IS NOT NULL AND NOT EXISTS "
                "(SELECT 1 FROM known_customers k WHERE k.customer_id = typed.customer_id)",
                "'customer ' || customer_id || ' is not in the customers snapshot'",
            )
        )
    return rules


def _erased_condition(table: Table) -> str:
    """Rows of an erased customer (by customer id, or by the order id of one of their orders)."""
    conds = []
    if "customer_id" in table.columns:
        conds.append("customer_id IN (SELECT customer_id FROM erased_customers)")
    if "order_id" in table.columns:
        conds.append("order_id IN (SELECT order_id FROM erased_orders)")
    return " OR ".join(conds)


def _rule_cases(table: Table, ctx: dict) -> list[tuple[str, str, str]]:
    """(rule, condition over the typed row `t`, SQL detail expression), in precedence order.

    Rules on the row alone; the erased-customer rule (first in precedence) and the reference rules
    (last) are applied afterwards by _flag_reference_rules, which keeps the same precedence.
    """
    rules: list[tuple[str, str, str]] = []
    cols = table.columns
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
    return rules


# ------------------------------------------------------------------------------------------- ingestion


@dataclass(frozen=True)
class _File:
    """A readable landing file of one call. `fi` is its position among the call's files, which are sorted
    by name, so ordering by (fi, row) is ordering by (_source_file, _source_row)."""

    fi: int
    path: Path
    day: date | None
    header: tuple[str, ...]


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
    replacing: Iterable[date] = (),
) -> IngestResult:
    """Ingest one table: `days` for a daily table (the partition range), None for a snapshot table.

    Rows of customers in the erasure register (default `<raw_dir>/../erasure/erased_customers.csv`) are
    counted under the rule `erased_customer` without their record, so an erased customer never comes back.

    Replaces exactly the given days (or the snapshot) in raw and quarantine, so a re-run of the same
    partitions gives the same rows and no duplicates. Files are staged in a temporary folder and moved
    into place with atomic renames after validation; a crash leaves the previous files intact.

    `replacing` names other days the same run re-ingests next (pipelines.backfill loads a long range in
    chunks of days): their raw files still hold the previous run's rows, so keys there are not counted as
    cross-day duplicates, and a chunked run gives the rows and rules of one call over the whole range.
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
        # Reference data for referential rules.
        ctx: dict = {"now": now.strftime("%Y-%m-%d %H:%M:%S"), "currency": currency.upper() if currency else None}
        # (Only for tables with the column: each snapshot read costs ~15 ms per call, and bulk ingestion
        # makes one call per table and month.)
        if table_name != "products" and "sku" in table.columns:
            ctx["products_known"] = _register_known(con, raw_dir, "products", "sku", "known_skus")
        if table_name not in ("customers", "products") and "customer_id" in table.columns:
            ctx["customers_known"] = _register_known(con, raw_dir, "customers", "customer_id", "known_customers")
        ctx["erased"] = _register_erased(con, table, erasure_register or raw_dir.parent / ERASURE_REGISTER)

        # 1. Read, type and validate every file in one pass per header; unreadable lines go to rejects_q.
        good: list[_File] = []
        header_rows = []
        for fi, (path, day) in enumerate(files):
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
            good.append(_File(fi, path, day, tuple(header)))
        groups: dict[tuple[str, ...], list[_File]] = {}
        for f in good:
            groups.setdefault(f.header, []).append(f)
        _create_tables(con, table, files)
        if table.personal:
            _register_personal_functions(con, table, pii_secret)
        for members in groups.values():
            _load_group(con, table, ctx, members, timezone)
        for path, day, header, missing in header_rows:
            _quarantine_whole_file(con, table, path, day, header, missing)
        if ctx["erased"]:
            _erase_rejected_rows(con)
        # Per file: its first row's position in `typed` (a row's number is its offset from it, plus the
        # rejected lines before it: row_steps) and its number of parsed rows.
        con.execute(
            """
            CREATE TABLE file_info AS
            SELECT i._fi, i.name, i.day, m.first_rid, coalesce(m.n_rows, 0) AS n_rows
            FROM files_in i
            LEFT JOIN (SELECT _fi, min(rowid) AS first_rid, count(*) AS n_rows FROM typed GROUP BY _fi) m USING (_fi)
            """
        )

        # 2. Rules that look other rows up: reference snapshots, the erasure register, duplicate keys
        # within this delivery, then against other days already ingested.
        _flag_reference_rules(con, table, ctx)
        _flag_duplicates(con, table)
        if table.is_daily:
            _flag_cross_day_duplicates(con, table, raw_dir, days or [], replacing)

        # 3. The quarantine (with each row's raw record, personal fields hashed), and the accounting.
        _create_quarantine(con, table, groups)
        result.rows_in = con.sql("SELECT count(*) FROM typed").fetchall()[0][0] + con.sql(
            "SELECT count(*) FROM rejects_q"
        ).fetchall()[0][0]
        result.rows_accepted = con.sql("SELECT count(*) FROM typed WHERE _rule IS NULL").fetchall()[0][0]
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

        # 4. Accepted and quarantined rows to Parquet, straight from `typed` (no second copy of the rows).
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


def _create_tables(con: duckdb.DuckDBPyConnection, table: Table, files: list[tuple[Path, date | None]]) -> None:
    """The typed rows, the call's files, the parser's rejects and the row-number steps they cause.

    `typed` holds one row per parsed line in file order (its rowid is the line's position), typed values
    only: the text as delivered is not kept (materialising it cost as much as the typing pass); the few
    quarantined rows get their raw record by reading their files again (_create_quarantine).
    `typed` and the tables the COPYs read are regular tables of this call's private in-memory database,
    not TEMP ones, because the publishing threads' cursors (_run_copies) cannot see another connection's
    temp tables.
    """
    typed_cols = ", ".join(f"{quote_ident(c)} {dtype}" for c, dtype in table.columns.items())
    hashes = "".join(f", {quote_ident(c + '_hash')} VARCHAR" for c in table.personal)
    con.execute(f"CREATE TABLE typed ({typed_cols}, _fi INTEGER{hashes}, _rule VARCHAR, _detail VARCHAR)")
    con.execute("CREATE TABLE files_in (_fi INTEGER, path VARCHAR, name VARCHAR, day DATE)")
    if files:
        # One statement with list parameters: executemany() cost ~14 ms for a month of files.
        con.execute(
            "INSERT INTO files_in SELECT unnest(?::INTEGER[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), "
            "unnest(?::DATE[])",
            [list(range(len(files))), [str(p) for p, _ in files], [p.name for p, _ in files], [d for _, d in files]],
        )
    con.execute(
        "CREATE TEMP TABLE rejects_q (file_day DATE, source_file VARCHAR, source_row INTEGER, "
        "rule VARCHAR, detail VARCHAR, raw_record VARCHAR)"
    )
    con.execute("CREATE TABLE row_steps (_fi INTEGER, adj BIGINT, n_before BIGINT)")


# Virtual columns of DuckDB's multi-file readers: an extra landing column of that name is renamed so it
# cannot hide them (extra columns are ignored anyway).
_READER_COLUMNS = {"file_index", "filename"}


def _trimmed(col: str) -> str:
    """`NULLIF(trim(col), '')`, with a fast path for the usual value that trim() would leave as it is.

    trim() copies every string (about a quarter of the typing pass for traffic). In a pure-ASCII value
    (byte length = character length) the only character trim() removes is the space (checked over all
    ASCII characters with DuckDB 2.0; it also removes Unicode spaces such as U+00A0 and U+3000, which
    are not ASCII), so a non-empty ASCII value that neither starts nor ends with a space is returned
    unchanged; anything else still goes through trim().
    """
    c = quote_ident(col)
    return (
        f"CASE WHEN strlen({c}) = length({c}) AND {c} <> '' AND NOT starts_with({c}, ' ') "
        f"AND NOT ends_with({c}, ' ') THEN {c} ELSE NULLIF(trim({c}), '') END"
    )


def _read_group_sql(
    table: Table, members: list[_File], rejects: str, scans: str, trim: bool = True, position: bool = False
) -> str:
    """A query over files sharing a header: trimmed text per canonical column, `_fi` and `_file_day`.

    One `read_csv` over the list (one scan, streamed and parallel in DuckDB: reading 730 daily files one
    by one cost ~50 ms each in overhead); unreadable lines go to the `rejects` table. The reader's
    `file_index` (position in the list) maps each row to its file without a join, so the rows keep the
    reader's order (file by file, line by line). `trim=False` leaves the text as delivered; `position`
    adds `_pos`, the file's position in `members`.
    """
    header = members[0].header
    meaningful = set(table.columns) | set(table.personal)
    names = [h if h in meaningful or h.lower() not in _READER_COLUMNS else f"_extra_{i}" for i, h in enumerate(header)]
    columns = "{" + ", ".join(f"{sql_literal(h)}: 'VARCHAR'" for h in names) + "}"
    select_cols = ", ".join(
        (f"{_trimmed(c)} AS {quote_ident(c)}" if trim else quote_ident(c))
        if c in header
        else f"CAST(NULL AS VARCHAR) AS {quote_ident(c)}"
        for c in (*table.columns, *table.personal)
    )
    file_list = "[" + ", ".join(sql_literal(str(m.path)) for m in members) + "]"
    fis = "[" + ", ".join(str(m.fi) for m in members) + "]"
    file_days = "CAST([" + ", ".join(sql_literal(m.day.isoformat()) if m.day else "NULL" for m in members) + "] AS DATE[])"
    return f"""
        SELECT {select_cols}, {fis}[file_index::BIGINT + 1] AS _fi, {file_days}[file_index::BIGINT + 1] AS _file_day
            {", file_index::BIGINT AS _pos" if position else ""}
        FROM read_csv({file_list}, header = true, columns = {columns},
            auto_detect = false, delim = ',', quote = '"', escape = '"', strict_mode = true,
            store_rejects = true, rejects_table = {sql_literal(rejects)}, rejects_scan = {sql_literal(scans)},
            max_line_size = 10000000)
    """


def _load_group(con: duckdb.DuckDBPyConnection, table: Table, ctx: dict, members: list[_File], timezone: str) -> None:
    """Type and validate the files of one header into `typed` (first failing rule wins), rejects to rejects_q."""
    tag = uuid.uuid4().hex[:8]
    rejects, scans = f"rej_{tag}", f"scan_{tag}"
    cases = _rule_cases(table, ctx)
    rule_sql = " ".join(f"WHEN {cond} THEN {sql_literal(rule)}" for rule, cond, _ in cases)
    detail_sql = " ".join(f"WHEN {cond} THEN {detail}" for _, cond, detail in cases)
    typed_struct = ", ".join(
        f"{quote_ident(c)} := {_typed_expr(c, dtype, timezone)}" for c, dtype in table.columns.items()
    )
    # Personal values are hashed in the same pass (a keyed hash by a Python UDF, DuckDB calls it chunk by
    # chunk), so the accepted rows never need the delivered text again.
    hashed = "".join(f", shoplens_pii_hash(v.{quote_ident(c)})" for c in table.personal)
    # `v.x` is the text as delivered, `t.x` the typed value (a struct column), so a rule can tell
    # "empty" from "does not parse". No join here: the rows keep the reader's order (see _create_tables).
    con.execute(
        f"""
        INSERT INTO typed
        SELECT unnest(t), _fi{hashed},
               CASE {rule_sql} ELSE NULL END AS _rule,
               CASE WHEN _rule IS NULL THEN NULL ELSE (CASE {detail_sql} ELSE NULL END) END AS _detail
        FROM (SELECT v.*, struct_pack({typed_struct}) AS t FROM ({_read_group_sql(table, members, rejects, scans)}) v) v
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
    con.execute(
        f"""
        INSERT INTO rejects_q
        SELECT i.day, i.name, x.line - 1,
               CASE WHEN x.error_type ILIKE '%UNICODE%' OR x.error_type ILIKE '%ENCODING%' THEN 'invalid_encoding'
                    ELSE 'malformed_line' END,
               'line ' || x.line || ': ' || x.error_message
               || CASE WHEN contains(rtrim(x.csv_line, chr(13) || chr(10)), chr(10)) THEN ' (the record runs over '
                    || (length(rtrim(x.csv_line, chr(13) || chr(10)))
                        - length(replace(rtrim(x.csv_line, chr(13) || chr(10)), chr(10), '')) + 1)
                    || ' physical lines, all kept in raw_record)' ELSE '' END,
               to_json(struct_pack(csv_line := x.csv_line))::VARCHAR
        FROM {rejects}_1 x JOIN files_in i ON i.path = x.file_path
        """
    )
    # The latest step with adj < k tells how many rejected lines precede the k-th parsed row.
    con.execute(
        f"INSERT INTO row_steps SELECT i._fi, x.adj, max(x.rank) FROM {rejects}_1 x "
        f"JOIN files_in i ON i.path = x.file_path GROUP BY i._fi, x.adj"
    )
    for name in (f"{rejects}_1", rejects, scans):
        con.execute(f"DROP TABLE IF EXISTS {name}")


def _with_lineage(where: str) -> str:
    """Rows of `typed` (alias t in `where`) with `_rid`, `_k`, `_source_file`, `_source_row`, `_file_day`.

    For the few rows that need their file row number in SQL (duplicates, the quarantine, files with
    rejected lines); the bulk of accepted rows gets it as constant arithmetic in _accepted_query.
    """
    return f"""
        SELECT x.*, x._k + coalesce(s.n_before, 0) AS _source_row
        FROM (
            SELECT t.*, t.rowid AS _rid, f.name AS _source_file, f.day AS _file_day, t.rowid - f.first_rid + 1 AS _k
            FROM typed t JOIN file_info f ON f._fi = t._fi
            WHERE {where}
        ) x
        ASOF LEFT JOIN row_steps s ON s._fi = x._fi AND x._k > s.adj
    """


def _flag_reference_rules(con: duckdb.DuckDBPyConnection, table: Table, ctx: dict) -> None:
    """Unknown SKUs and customers (rows without a rule yet), then erased customers (any row: that rule
    comes first, so an erased customer's row is never quarantined with its record under another rule)."""
    for rule, cond, detail in _reference_rules(table, ctx):
        con.execute(
            f"UPDATE typed SET _rule = {sql_literal(rule)}, _detail = {detail} WHERE _rule IS NULL AND ({cond})"
        )
    if ctx.get("erased"):
        con.execute(
            f"UPDATE typed SET _rule = {sql_literal(ERASED_RULE)}, _detail = {sql_literal(ERASED_DETAIL)} "
            f"WHERE {_erased_condition(table)}"
        )


def _flag_duplicates(con: duckdb.DuckDBPyConnection, table: Table) -> None:
    """A key seen earlier in this delivery (by file and row) is a duplicate of its first occurrence.

    Candidates first: rows whose hash of the key is shared by another row (a GROUP BY on one integer,
    about half the cost of grouping the key columns; equal keys, NULLs included, always hash alike, so
    no duplicate is missed). The window that names the first occurrence then runs on the candidates
    only, where a hash collision of different keys simply lands in separate partitions: ordering the
    whole delivery by key was the costliest step for traffic, which usually has no duplicates at all.
    """
    key = ", ".join(quote_ident(k) for k in table.key)
    con.execute(
        f"CREATE TEMP TABLE dup_hashes AS SELECT hash({key}) AS h FROM typed WHERE _rule IS NULL "
        "GROUP BY h HAVING count(*) > 1"
    )
    if con.sql("SELECT count(*) FROM dup_hashes").fetchall()[0][0]:
        rows = _with_lineage(
            f"t._rule IS NULL AND hash({', '.join(f't.{quote_ident(k)}' for k in table.key)}) IN (SELECT h FROM dup_hashes)"
        )
        con.execute(
            f"""
            UPDATE typed SET _rule = 'duplicate_key',
                _detail = 'key (' || {sql_literal(", ".join(table.key))} || ') repeats ' || d.first_seen
            FROM (
                SELECT _rid, first_value(_source_file || ' row ' || _source_row) OVER w AS first_seen,
                       row_number() OVER w AS n
                FROM ({rows})
                WINDOW w AS (PARTITION BY {key} ORDER BY _fi, _rid)
            ) d
            WHERE typed.rowid = d._rid AND d.n > 1
            """
        )
    con.execute("DROP TABLE dup_hashes")


# Range of the first key column (min, max, any NULL) of the raw day files this process published, with
# the file's identity (inode, size, mtime) when it was written: the cross-day duplicate check of a
# chunked bulk run then skips the earlier days whose keys cannot overlap without opening them (opening
# every earlier day's Parquet footer cost ~50 ms per chunk and table on small data). A file replaced
# since (another identity) or written by another process is read as before. Hand-written because
# DuckDB's Parquet metadata cache lives in one database instance and every ingest call has its own.
_KEY_RANGES: dict[str, tuple[tuple[int, int, int], object, object, bool]] = {}


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _may_hold_keys(path: Path, lo: object, hi: object, has_null: bool) -> bool:
    """False only when this process wrote `path` (unchanged since) and its key range misses [lo, hi].

    Python compares the values as DuckDB does: str by code point (the byte order of UTF-8, DuckDB's
    default VARCHAR order), numbers, dates and timestamps by value.
    """
    known = _KEY_RANGES.get(str(path))
    if known is None or known[0] != _identity(path):
        return True
    _, file_lo, file_hi, file_null = known
    overlap = lo is not None and file_lo is not None and lo <= file_hi and file_lo <= hi  # type: ignore[operator]
    return overlap or (has_null and file_null)


def _remember_key_ranges(con: duckdb.DuckDBPyConnection, table: Table, targets: dict[date, Path]) -> None:
    """After publishing: the first key column's range of each written day file (see _KEY_RANGES)."""
    if not table.is_daily or table.partition_column in table.key or not targets:
        return
    first = quote_ident(table.key[0])
    for day, lo, hi, has_null in con.sql(
        f"SELECT f.day, min(t.{first}), max(t.{first}), bool_or(t.{first} IS NULL) FROM typed t "
        "JOIN file_info f ON f._fi = t._fi WHERE t._rule IS NULL GROUP BY f.day"
    ).fetchall():
        if day in targets and (identity := _identity(targets[day])) is not None:
            _KEY_RANGES[str(targets[day])] = (identity, lo, hi, bool(has_null))


def _flag_cross_day_duplicates(
    con: duckdb.DuckDBPyConnection, table: Table, raw_dir: Path, days: list[date], replacing: Iterable[date] = ()
) -> None:
    """Keys already ingested under another day than the ones being replaced are duplicates.

    Skipped when the key holds the partition column (traffic, inventory, competitor prices): a row
    without a rule has that column on its file's day (outside_partition), and every row of a raw day
    file has it on that day, so a key cannot repeat across days. Otherwise only the key columns of the
    raw files are read, filtered to the range of this delivery's first key column so that DuckDB skips
    the row groups (and days) whose min/max statistics cannot overlap; the result is the same as
    comparing against every row.
    """
    if table.partition_column in table.key:
        return
    skip = {d.isoformat() for d in (*days, *replacing)}
    existing = sorted(
        p for p in (raw_dir / table.name).glob(f"date=*/{RAW_PART}") if p.parent.name[5:] not in skip
    )
    if not existing:
        return
    first, dtype = table.key[0], table.columns[table.key[0]]
    lo, hi, has_null = con.sql(
        f"SELECT min({quote_ident(first)}), max({quote_ident(first)}), bool_or({quote_ident(first)} IS NULL) "
        "FROM typed WHERE _rule IS NULL"
    ).fetchall()[0]
    if lo is None and not has_null:
        return  # no candidate rows
    # Days this process published itself, with a first-key range that cannot overlap, are not opened.
    existing = [p for p in existing if _may_hold_keys(p, lo, hi, bool(has_null))]
    if not existing:
        return
    ranges = []
    if lo is not None:
        # Literals, not parameters, so the filter reaches the Parquet reader's statistics.
        ranges.append(
            f"{quote_ident(first)} BETWEEN CAST({sql_literal(str(lo))} AS {dtype}) AND CAST({sql_literal(str(hi))} AS {dtype})"
        )
    if has_null:
        ranges.append(f"{quote_ident(first)} IS NULL")
    file_list = "[" + ", ".join(sql_literal(str(p)) for p in existing) + "]"
    on = " AND ".join(f"e.{quote_ident(k)} IS NOT DISTINCT FROM typed.{quote_ident(k)}" for k in table.key)
    keys = ", ".join(quote_ident(k) for k in table.key)
    con.execute(
        f"""
        UPDATE typed SET _rule = 'duplicate_key',
            _detail = 'key (' || {sql_literal(", ".join(table.key))} || ') already ingested for ' || e._partition_date
        FROM (
            SELECT {keys}, min(_partition_date) AS _partition_date FROM read_parquet({file_list})
            WHERE {" OR ".join(ranges)} GROUP BY {keys}
        ) e
        WHERE typed._rule IS NULL AND {on}
        """
    )


def _create_quarantine(con: duckdb.DuckDBPyConnection, table: Table, groups: dict[tuple[str, ...], list[_File]]) -> None:
    """The quarantine table: flagged typed rows with their raw record, then the parser's rejects.

    The raw record (the delivered text as JSON, for repair) is rebuilt by reading again only the files
    that hold flagged rows, streamed: a row's position among its file's parsed rows is the same in both
    reads, so the few wanted rows are picked by position and only they are trimmed and turned into JSON.
    Keeping every row's text for the few quarantined ones cost a whole extra table per delivery.
    """
    erased = sql_literal(ERASED_RULE)
    con.execute(
        "CREATE TEMP TABLE wanted AS SELECT t._fi, t.rowid - f.first_rid + 1 AS _k FROM typed t "
        f"JOIN file_info f ON f._fi = t._fi WHERE t._rule IS NOT NULL AND t._rule <> {erased}"
    )
    need = {r[0] for r in con.sql("SELECT DISTINCT _fi FROM wanted").fetchall()}
    n_rows = dict(con.sql("SELECT _fi, n_rows FROM file_info").fetchall())
    con.execute("CREATE TEMP TABLE raw_text (_fi INTEGER, _k BIGINT, raw_record VARCHAR)")
    fields = ", ".join(f"{quote_ident(c)} := {_trimmed(c)}" for c in (*table.columns, *table.personal))
    for members in groups.values():
        subset = [m for m in members if m.fi in need]
        if not subset:
            continue
        tag = uuid.uuid4().hex[:8]
        # row_number() OVER () numbers the rows in the reader's order (an empty OVER keeps the order, as
        # DuckDB documents): minus the rows of the subset's earlier files, it is the row's position.
        before, offsets = 0, []
        for m in subset:
            offsets.append(before)
            before += n_rows.get(m.fi, 0)
        src = _read_group_sql(table, subset, f"rej_{tag}", f"scan_{tag}", trim=False, position=True)
        con.execute(
            f"""
            INSERT INTO raw_text
            SELECT r._fi, r._k, to_json(struct_pack({fields}))::VARCHAR
            FROM (
                SELECT *, row_number() OVER () - [{", ".join(map(str, offsets))}][_pos + 1] AS _k
                FROM ({src})
            ) r
            SEMI JOIN wanted w ON w._fi = r._fi AND w._k = r._k
            """
        )
        for name in (f"rej_{tag}", f"scan_{tag}"):
            con.execute(f"DROP TABLE IF EXISTS {name}")
    found, wanted = con.sql("SELECT (SELECT count(*) FROM raw_text), (SELECT count(*) FROM wanted)").fetchall()[0]
    if found != wanted:
        raise IngestionError(
            f"{table.name}: {wanted - found} quarantined row(s) were not found again when their raw record "
            "was read back: a landing file changed while it was being ingested. Nothing was written; run again."
        )
    part_expr = f"CAST(q.{quote_ident(table.partition_column)} AS DATE)" if table.is_daily else "NULL"
    raw_record = "shoplens_scrub_raw(raw_record)" if table.personal else "raw_record"
    con.execute(
        f"""
        CREATE TABLE quarantined AS
        SELECT table_name, partition_date, source_file, source_row, rule, detail, {raw_record} AS raw_record
        FROM (
            SELECT {sql_literal(table.name)} AS table_name,
                   coalesce(q._file_day, TRY_CAST({part_expr} AS DATE)) AS partition_date,
                   q._source_file AS source_file, q._source_row::INTEGER AS source_row,
                   q._rule AS rule, q._detail AS detail,
                   CASE WHEN q._rule = {erased} THEN NULL ELSE r.raw_record END AS raw_record
            FROM ({_with_lineage("t._rule IS NOT NULL")}) q
            LEFT JOIN raw_text r ON r._fi = q._fi AND r._k = q._k
            UNION ALL
            SELECT {sql_literal(table.name)}, file_day, source_file, source_row, rule, detail, raw_record
            FROM rejects_q
        ) q
        ORDER BY source_file, source_row
        """
    )
    for name in ("wanted", "raw_text"):
        con.execute(f"DROP TABLE {name}")


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


def _case(expr: str, values: dict[int, str], empty: str) -> str:
    """`values[expr]` as SQL: the value itself when there is one, a CASE over `expr` when several."""
    if not values:
        return empty
    if len(values) == 1:
        return next(iter(values.values()))
    return f"CASE {expr} " + " ".join(f"WHEN {k} THEN {v}" for k, v in values.items()) + " END"


# Above this many rejected-line steps in one day, row numbers come from a join instead of a CASE.
_MAX_INLINE_STEPS = 64


def _accepted_query(table: Table, files: list[tuple], day: date | None, steps: dict[int, list[tuple[int, int]]]) -> str:
    """The accepted rows of the given files (one day, or the snapshot) in file-row order, as published.

    `files` holds (fi, name, first_rid) in file order, `steps` the (adj, n_before) steps of files with
    rejected lines. A file's name is a constant and a row's number arithmetic on its rowid (plus a small
    CASE over the file's steps), so the COPY is a filtered scan of one table, which keeps its insertion
    order (file order, documented by DuckDB): no join and no sort for the usual one-file day. Several
    files sort by (file, rowid); a file with very many rejected lines takes the joined lineage.
    """
    cols = ", ".join(f"t.{quote_ident(c)}" for c in table.columns)
    part = f", DATE {sql_literal(day.isoformat())} AS _partition_date" if day is not None else ""
    hashes = "".join(f", t.{quote_ident(c + '_hash')}" for c in table.personal)
    fis = ", ".join(str(f[0]) for f in files) or "NULL"
    if sum(len(steps.get(f[0], ())) for f in files) > _MAX_INLINE_STEPS:
        return (
            f"SELECT {cols}, t._source_file, t._source_row::INTEGER AS _source_row{part}{hashes} "
            f"FROM ({_with_lineage(f't._rule IS NULL AND t._fi IN ({fis})')}) t ORDER BY t._fi, t._rid"
        )
    rows = {}
    for fi, _, first in files:
        k = f"(t.rowid - {int(first)} + 1)"
        if steps.get(fi):
            # The latest step below k tells how many rejected lines precede the k-th parsed row.
            later_first = sorted(steps[fi], reverse=True)
            k += " + CASE " + " ".join(f"WHEN {k} > {adj} THEN {n}" for adj, n in later_first) + " ELSE 0 END"
        rows[fi] = k
    name = _case("t._fi", {f[0]: sql_literal(f[1]) for f in files}, "CAST(NULL AS VARCHAR)")
    row = _case("t._fi", rows, "CAST(NULL AS BIGINT)")
    order = " ORDER BY t._fi, t.rowid" if len(files) > 1 else ""
    return (
        f"SELECT {cols}, {name} AS _source_file, ({row})::INTEGER AS _source_row{part}{hashes} "
        f"FROM typed t WHERE t._rule IS NULL AND t._fi IN ({fis}){order}"
    )


def _publish(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    raw_dir: Path,
    staging: Path,
    days: list[date] | None,
    result: IngestResult,
) -> None:
    """Replace the given days (or the snapshot) with the new files: one atomic rename per file.

    One COPY per day (and per quarantined day), run by parallel cursors (_run_copies): each day's rows
    are a contiguous run of `typed`, so a day's COPY reads its own row groups (min/max statistics on the
    file index), not the whole table. `PARTITION_BY` was not used: with hundreds of days it keeps many
    files open at once and may split a day into several files, which would break the
    one-file-per-day, replace-by-rename rule.
    """
    base = raw_dir / table.name
    qbase = raw_dir / "_quarantine" / table.name
    q_order = "ORDER BY source_file, source_row"
    accepted = {
        fi: n for fi, n in con.sql("SELECT _fi, count(*) FROM typed WHERE _rule IS NULL GROUP BY _fi").fetchall()
    }
    info = con.sql("SELECT _fi, name, day, first_rid FROM file_info ORDER BY _fi").fetchall()
    steps: dict[int, list[tuple[int, int]]] = {}
    for fi, adj, n in con.sql("SELECT _fi, adj, n_before FROM row_steps ORDER BY _fi, adj").fetchall():
        steps.setdefault(fi, []).append((adj, n))
    jobs: list[tuple[str | None, Path]] = []
    if not table.is_daily:
        files = [(fi, name, first) for fi, name, _, first in info if accepted.get(fi)]
        jobs.append((_accepted_query(table, files, None, steps), base / "snapshot" / RAW_PART))
        jobs.append((f"SELECT * FROM quarantined {q_order}", qbase / "snapshot" / RAW_PART))
        result.days_written = ["snapshot"]
        _run_copies(con, jobs, staging)
        return
    by_day: dict[date, list[tuple]] = {}
    for fi, name, day, first in info:
        if accepted.get(fi):
            by_day.setdefault(day, []).append((fi, name, first))
    q_days = {r[0] for r in con.sql("SELECT DISTINCT partition_date FROM quarantined").fetchall()}
    for day in days or []:
        # The day is a date made here, not input text: a DATE literal, so DuckDB prunes row groups by it.
        day_sql = f"DATE {sql_literal(day.isoformat())}"
        target = base / f"date={day.isoformat()}" / RAW_PART
        if day in by_day:
            jobs.append((_accepted_query(table, by_day[day], day, steps), target))
            result.days_written.append(day.isoformat())
        else:
            jobs.append((None, target))
            result.days_empty.append(day.isoformat())
        qtarget = qbase / f"date={day.isoformat()}" / RAW_PART
        query = f"SELECT * FROM quarantined WHERE partition_date = {day_sql} {q_order}" if day in q_days else None
        jobs.append((query, qtarget))
    # Quarantined rows whose day could not be read (bad timestamps in an undated file) are kept too.
    if None in q_days:
        jobs.append(
            (
                f"SELECT * FROM quarantined WHERE partition_date IS NULL {q_order}",
                qbase / "undated" / f"{'_'.join(result.files) or 'none'}.parquet"[:200],
            )
        )
    _run_copies(con, jobs, staging)
    _remember_key_ranges(con, table, {d: base / f"date={d.isoformat()}" / RAW_PART for d in by_day})


def _copy_workers(con: duckdb.DuckDBPyConnection) -> int:
    """As many COPY threads as DuckDB has threads (at most 4): a day's file is too small for DuckDB to
    write it in parallel itself, so 730 one-day COPYs in a row left one core idle."""
    threads = int(con.sql("SELECT current_setting('threads')").fetchall()[0][0])
    return max(1, min(4, threads))


def _run_copies(con: duckdb.DuckDBPyConnection, jobs: list[tuple[str | None, Path]], staging: Path) -> None:
    """Write each job's query to its target (or remove the target when the query is None), atomically.

    Each COPY writes a temporary file in the staging folder (same file system) on a worker thread with
    its own cursor of this connection's database; the renames over the targets happen here, one by one
    in job order, so a reader sees the old file or the new one, never half a file, and a crash leaves a
    prefix of the jobs published. Paths are parameters, never SQL text.
    """
    # One cursor (a connection to the same database) per worker, made here: a DuckDB connection object
    # must not be shared between threads. A job borrows a free one.
    cursors = [con.cursor() for _ in range(_copy_workers(con))]
    free: queue.SimpleQueue = queue.SimpleQueue()
    for cur in cursors:
        free.put(cur)

    def write(query: str) -> Path:
        cur = free.get()
        try:
            tmp = staging / f"{uuid.uuid4().hex}.parquet"
            cur.execute(f"COPY ({query}) TO $1 ({PARQUET_OPTIONS})", [str(tmp)])
            return tmp
        finally:
            free.put(cur)

    try:
        with ThreadPoolExecutor(max_workers=len(cursors)) as pool:
            pending = [(pool.submit(write, q) if q is not None else None, target) for q, target in jobs]
            try:
                for future, target in pending:
                    if future is None:
                        if target.exists():
                            target.unlink()
                        continue
                    tmp = future.result()
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(tmp, target)
            except BaseException:
                for future, _ in pending:
                    if future is not None:
                        future.cancel()
                raise
    finally:
        for cur in cursors:
            cur.close()


def _struct(columns: dict[str, str]) -> str:
    return "{" + ", ".join(f"{sql_literal(k)}: {sql_literal(v)}" for k, v in columns.items()) + "}"


def _quarantine_whole_file(con, table: Table, path: Path, day: date | None, header: list[str], missing: list[str]) -> None:
    """A file whose header lacks required columns: every data row is quarantined, none is lost."""
    text = read_bytes(path).decode("utf-8", errors="replace").lstrip("\ufeff")
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
