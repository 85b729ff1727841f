"""Erase a customer (GDPR art. 17 / PIPL art. 47): their rows leave landing, raw, warehouse and exports,
and the next run does not bring them back.

    python -m pipelines.erasure --customer-id C0000042
    python -m pipelines.erasure --email someone@example.com      # hashed with SHOPLENS_PII_KEY to find the id
    python -m pipelines.erasure --customer-id C0000042 --dry-run # count, change nothing

What it does, in this order (each step is idempotent, so a crash is repaired by running it again):

1. Finds the customer's orders (raw and landing `orders`) and appends the customer id and those order ids
   to the erasure register `<data>/erasure/erased_customers.csv` (ids only: an email is hashed to find the
   id and never written). Ingestion reads the register: a re-delivered row with an erased customer id or
   order id is counted under the rule `erased_customer` with no record kept, so rows in = accepted +
   quarantined still holds and the row never reaches raw again. The register is written first, so even a
   run that starts halfway through an erasure cannot bring the rows back.
2. Landing: removes the records from every canonical landing CSV (byte for byte otherwise, atomic rename)
   and from the adapter side files (`_adapter_quarantine/`, `_routed_out/`) whose raw record names the
   customer, an erased order or the email.
3. Raw: rewrites each affected Parquet file of `raw/<table>/` (rows with the customer id or an erased order
   id) and `raw/_quarantine/<table>/` (rows whose raw record names them), atomically.
4. Warehouse: DELETEs those rows from every base table with a `customer_id` or `order_id` column, in one
   transaction, then copies the database into a fresh file and swaps it in (freed DuckDB blocks keep the
   deleted bytes otherwise). Views read raw, so they follow. Aggregates without ids (segment counts, daily
   totals) still include the customer until the next run rebuilds them.
5. Exports: rewrites every CSV/Parquet under `<data>/exports/` with a `customer_id` or `order_id` column;
   reports under `<data>/reports/` that mention an erased id are deleted (the next run writes them again).

Orders are erased with their customer, and so are the rows tied to those orders (shipments, reviews,
purchase events): a shipment or review of an erased order is that person's data too. Known limits: order
ids that reach ingestion later for an erased customer are caught on `orders`, `reviews` and `traffic` by
the customer id, but a later `shipments` row of such a new order is not (shipments carry no customer id);
Dagster's run history may hold quarantine examples naming a customer id (e.g. unknown_customer details). Run it between pipeline runs: it takes the warehouse
lock like any writer, but does not coordinate with an ingestion running at the same moment.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from pipelines.core.ingest import (
    ERASURE_COLUMNS,
    ERASURE_REGISTER,
    hash_personal,
    pii_key,
    quote_ident,
    sql_literal,
)
from pipelines.core.landing import csv_files, read_bytes
from pipelines.core.schemas import TABLES
from pipelines.core.settings import Settings, get_settings
from pipelines.core.warehouse import WarehouseBusyError, connect
from pipelines.sources.base import ADAPTER_QUARANTINE_DIR, MANIFEST_NAME, ROUTED_OUT_DIR, atomic_write_bytes

ID_COLUMNS = ("customer_id", "order_id")


class ErasureError(Exception):
    """The request cannot be carried out (unknown email, no customer given); nothing was changed."""


@dataclass
class ErasureReport:
    customer_ids: list[str]
    order_ids: list[str] = field(default_factory=list)
    register: Path | None = None
    removed: Counter = field(default_factory=Counter)  # "<place>:<table or file>" -> rows removed
    deleted_reports: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False

    def total(self, place: str) -> int:
        return sum(n for k, n in self.removed.items() if k.startswith(place + ":"))

    def lines(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        out = [
            f"customers: {', '.join(self.customer_ids)}; their orders: {len(self.order_ids)}",
            f"register: {self.register}" + (" (not written: dry run)" if self.dry_run else ""),
        ]
        out += [f"{verb} {n} row(s) from {k}" for k, n in sorted(self.removed.items()) if n]
        out += [f"deleted report {p} (the next run writes it again)" for p in self.deleted_reports]
        out += [f"warning: {w}" for w in self.warnings]
        return out


# ---------------------------------------------------------------------------------------------- finding


def register_path(settings: Settings) -> Path:
    return settings.data_dir / ERASURE_REGISTER


def customer_ids_for_emails(emails: Iterable[str], settings: Settings) -> list[str]:
    """Customer ids whose email hashes to the same keyed hash (raw snapshot first, then landing)."""
    key = pii_key(settings.mode, settings.pii_key)
    wanted = hash_personal(pl.Series(list(emails), dtype=pl.String), key).drop_nulls().to_list()
    found: set[str] = set()
    snap = settings.raw_dir / "customers" / "snapshot" / "part-0.parquet"
    if snap.exists():
        frame = pl.read_parquet(snap, columns=None)
        if "email_hash" in frame.columns:
            found |= set(
                frame.filter(pl.col("email_hash").is_in(wanted)).get_column("customer_id").drop_nulls()
            )
    for landed in csv_files(settings.landing_dir / "customers", "customers", strict=False):
        records = _records(landed)[1]  # lenient: a landing file may hold broken lines
        emails_landed = pl.Series([r.get("email") for r in records], dtype=pl.String)
        for record, digest in zip(records, hash_personal(emails_landed, key).to_list(), strict=True):
            if digest in wanted and (record.get("customer_id") or "").strip():
                found.add(record["customer_id"].strip())
    if not found:
        raise ErasureError(
            "no customer with that email in the raw customers snapshot or the landing customers file "
            "(emails are compared by their keyed hash: check that SHOPLENS_PII_KEY is the key used at ingestion)"
        )
    return sorted(found)


def _order_ids(customer_ids: set[str], settings: Settings) -> set[str]:
    """Order ids of the customers, from raw orders and from the landing orders files."""
    found: set[str] = set()
    files = sorted((settings.raw_dir / "orders").glob("*/*.parquet"))
    if files:
        found |= set(
            pl.scan_parquet(files)
            .filter(pl.col("customer_id").is_in(list(customer_ids)))
            .select("order_id")
            .collect()
            .get_column("order_id")
            .drop_nulls()
        )
    for path in csv_files(settings.landing_dir / "orders", strict=False):
        for record in _records(path)[1]:
            if record.get("customer_id", "").strip() in customer_ids and record.get("order_id", "").strip():
                found.add(record["order_id"].strip())
    return found


def _records(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and records of a landing CSV (lenient: for finding ids, not for validation)."""
    text = read_bytes(path).decode("utf-8", errors="replace").lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        return [], []
    header = [h.strip() for h in rows[0]]
    return header, [dict(zip(header, r, strict=False)) for r in rows[1:]]


# ---------------------------------------------------------------------------------------------- register


def _append_register(path: Path, customer_ids: set[str], order_ids: set[str], now: datetime) -> None:
    """Add (customer, order) ids not yet in the register; rewritten atomically."""
    rows: list[dict[str, str]] = []
    if path.exists():
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    have = {(r.get("customer_id", ""), r.get("order_id", "")) for r in rows}
    stamp = now.isoformat(timespec="seconds")
    # One row per customer (empty order_id) and one per order; the order rows name no customer, which
    # keeps the register a plain list of ids to suppress.
    new = [(cid, "") for cid in sorted(customer_ids)] + [("", oid) for oid in sorted(order_ids)]
    for cid, oid in new:
        if (cid, oid) not in have:
            rows.append({"customer_id": cid, "order_id": oid, "erased_at": stamp})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(ERASURE_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: r.get(k, "") for k in ERASURE_COLUMNS} for r in rows)
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


# ---------------------------------------------------------------------------------------------- landing


def _strip_landing_csv(path: Path, customer_ids: set[str], order_ids: set[str], dry_run: bool) -> int:
    """Remove the records naming an erased customer or order; every other byte stays as delivered.

    Python's csv reader is used for its record boundaries (quoted line breaks): `line_num` tells which
    physical lines each record spans, and only those lines are dropped.
    """
    data = read_bytes(path)  # decompressed for .csv.gz; atomic_write_bytes compresses it back
    text = data.decode("utf-8", errors="surrogateescape")
    if not any(i in text for i in (*customer_ids, *order_ids)):
        return 0
    lines = io.StringIO(text, newline="").readlines()
    reader = csv.reader(lines)
    try:
        header = [h.strip().lstrip("\ufeff") for h in next(reader)]
    except StopIteration:
        return 0
    cols = [
        (header.index(c), ids)
        for c, ids in (("customer_id", customer_ids), ("order_id", order_ids))
        if c in header
    ]
    if not cols:
        return 0
    keep, start, removed = lines[: reader.line_num], reader.line_num, 0
    for record in reader:
        span, start = lines[start : reader.line_num], reader.line_num
        if any(i < len(record) and record[i].strip() in ids for i, ids in cols):
            removed += 1
        else:
            keep.extend(span)
    keep.extend(lines[start:])
    if removed and not dry_run:
        atomic_write_bytes(path, "".join(keep).encode("utf-8", errors="surrogateescape"))
    return removed


def _names_erased(raw_record: str | None, ids: set[str], emails: set[str]) -> bool:
    """An adapter side-file record (JSON of the source fields) holding an erased id or email."""
    if not raw_record:
        return False
    try:
        obj = json.loads(raw_record)
    except ValueError:
        return any(i in raw_record for i in ids)
    values = obj.values() if isinstance(obj, dict) else [obj]
    for v in values:
        if isinstance(v, str) and (v.strip() in ids or v.strip().lower() in emails):
            return True
    return False


def _strip_side_file(path: Path, ids: set[str], emails: set[str], dry_run: bool) -> int:
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        rows = list(reader)
    kept = [r for r in rows if not _names_erased(r.get("raw_record"), ids, emails)]
    removed = len(rows) - len(kept)
    if removed and not dry_run:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_bytes(path, buf.getvalue().encode("utf-8", errors="surrogateescape"))
    return removed


def _erase_landing(
    settings: Settings, cids: set[str], oids: set[str], emails: set[str], report: ErasureReport
) -> None:
    landing = settings.landing_dir
    for table in TABLES:
        for path in csv_files(landing / table, strict=False):
            n = _strip_landing_csv(path, cids, oids, report.dry_run)
            report.removed[f"landing:{table}"] += n
    for kind in (ADAPTER_QUARANTINE_DIR, ROUTED_OUT_DIR):
        for path in sorted((landing / kind).glob("*.csv")):
            report.removed[f"landing:{kind}/{path.stem}"] += _strip_side_file(
                path, cids | oids, emails, report.dry_run
            )
    manifest = landing / MANIFEST_NAME
    removed = {k.split(":", 1)[1]: n for k, n in report.removed.items() if k.startswith("landing:") and n}
    if removed and manifest.exists() and not report.dry_run:
        # The manifest counted these rows as landed: record what erasure took out so the counts reconcile.
        data = json.loads(manifest.read_text())
        erased = Counter(data.get("erased_rows", {}))
        erased.update(removed)
        data["erased_rows"] = dict(sorted(erased.items()))
        atomic_write_bytes(manifest, json.dumps(data, indent=2).encode())


# -------------------------------------------------------------------------------------------------- raw


def _erased_rows(frame_columns: list[str], cids: list[str], oids: list[str]) -> pl.Expr | None:
    conds = []
    if "customer_id" in frame_columns:
        conds.append(pl.col("customer_id").is_in(cids))
    if "order_id" in frame_columns:
        conds.append(pl.col("order_id").is_in(oids))
    if "raw_record" in frame_columns:  # quarantine: the record as delivered (JSON of fields or a csv_line)
        rec = pl.col("raw_record")
        fields = (
            rec.str.json_path_match("$.csv_line").str.split(",").list.eval(pl.element().str.strip_chars(' "'))
        )
        conds += [
            rec.str.json_path_match("$.customer_id").is_in(cids),
            rec.str.json_path_match("$.order_id").is_in(oids),
            fields.list.eval(pl.element().is_in([*cids, *oids])).list.any(),
        ]
    if not conds:
        return None
    return pl.any_horizontal([c.fill_null(False) for c in conds])


def _rewrite_parquet(
    path: Path, cond_for: Callable[[list[str]], pl.Expr | None], dry_run: bool, keep_empty: bool
) -> int:
    """Drop the erased rows of one Parquet file (atomic replace); returns how many there were."""
    schema = pl.read_parquet_schema(path)
    cond = cond_for(list(schema))
    if cond is None:
        return 0
    n = pl.scan_parquet(path).filter(cond).select(pl.len()).collect().item()
    if n and not dry_run:
        kept = pl.read_parquet(path).filter(~cond)
        if kept.height == 0 and not keep_empty:
            path.unlink()  # as ingestion does for a day left without rows
        else:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            try:
                kept.write_parquet(tmp, compression="zstd", statistics=True)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
    return n


def _erase_raw(settings: Settings, cids: list[str], oids: list[str], report: ErasureReport) -> None:
    raw = settings.raw_dir

    def cond_for(columns: list[str]) -> pl.Expr | None:
        return _erased_rows(columns, cids, oids)

    for table in TABLES:
        for path in sorted((raw / table).glob("*/*.parquet")):
            keep_empty = path.parent.name == "snapshot"
            report.removed[f"raw:{table}"] += _rewrite_parquet(path, cond_for, report.dry_run, keep_empty)
        for path in sorted((raw / "_quarantine" / table).glob("**/*.parquet")):
            report.removed[f"raw:_quarantine/{table}"] += _rewrite_parquet(
                path, cond_for, report.dry_run, True
            )


# ------------------------------------------------------------------------------------------- warehouse


def _erase_warehouse(settings: Settings, cids: list[str], oids: list[str], report: ErasureReport) -> None:
    if not settings.warehouse.exists():
        return
    with connect(settings.warehouse) as con:
        tables = con.execute(
            """
            SELECT c.table_schema, c.table_name, list(c.column_name)
            FROM information_schema.columns c JOIN information_schema.tables t
              ON t.table_schema = c.table_schema AND t.table_name = c.table_name
            WHERE t.table_type = 'BASE TABLE' AND c.column_name IN ('customer_id', 'order_id')
            GROUP BY ALL ORDER BY ALL
            """
        ).fetchall()
        con.execute("CREATE TEMP TABLE _erase_c (id VARCHAR); CREATE TEMP TABLE _erase_o (id VARCHAR)")
        con.execute("INSERT INTO _erase_c SELECT unnest(CAST(? AS VARCHAR[]))", [cids])
        con.execute("INSERT INTO _erase_o SELECT unnest(CAST(? AS VARCHAR[]))", [oids])
        con.execute("BEGIN TRANSACTION")
        try:
            for schema, name, columns in tables:
                target = f"{quote_ident(schema)}.{quote_ident(name)}"
                conds = []
                if "customer_id" in columns:
                    conds.append("CAST(customer_id AS VARCHAR) IN (SELECT id FROM _erase_c)")
                if "order_id" in columns:
                    conds.append("CAST(order_id AS VARCHAR) IN (SELECT id FROM _erase_o)")
                where = " OR ".join(conds)
                if report.dry_run:
                    n = con.execute(f"SELECT count(*) FROM {target} WHERE {where}").fetchall()[0][0]
                else:
                    n = con.execute(f"DELETE FROM {target} WHERE {where}").fetchall()[0][0]
                report.removed[f"warehouse:{schema}.{name}"] += n
            con.execute("ROLLBACK" if report.dry_run else "COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    if not report.dry_run and report.total("warehouse"):
        _compact_warehouse(settings.warehouse)


def _compact_warehouse(path: Path) -> None:
    """Copy the database into a fresh file and swap it in: DELETE (and every CREATE OR REPLACE of the
    nightly dbt build) only frees blocks, and freed blocks keep the old bytes, ids included, until reused."""
    tmp = path.with_name(f".{path.name}.erasure.tmp")
    tmp.unlink(missing_ok=True)
    try:
        with connect(path) as con:
            db = con.execute("SELECT current_database()").fetchall()[0][0]
            con.execute(f"ATTACH {sql_literal(str(tmp))} AS _erasure_compact")
            con.execute(f"COPY FROM DATABASE {quote_ident(db)} TO _erasure_compact")
            con.execute("DETACH _erasure_compact")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        Path(str(tmp) + ".wal").unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------- exports


def _erase_exports(settings: Settings, cids: list[str], oids: list[str], report: ErasureReport) -> None:
    folder = settings.exports_dir
    for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix == ".parquet":
            n = _rewrite_parquet(path, lambda cols: _erased_rows(cols, cids, oids), report.dry_run, True)
        elif path.suffix == ".csv":
            n = _rewrite_export_csv(path, cids, oids, report.dry_run)
        else:
            if any(i in path.read_bytes().decode("utf-8", errors="replace") for i in (*cids, *oids)):
                report.warnings.append(
                    f"{path} mentions an erased id and is not a CSV/Parquet file: check it"
                )
            continue
        report.removed[f"exports:{path.relative_to(folder)}"] += n
    reports = settings.reports_dir
    for path in sorted(reports.rglob("*")) if reports.is_dir() else []:
        if path.is_file() and any(i in path.read_bytes().decode("utf-8", errors="replace") for i in cids):
            report.deleted_reports.append(str(path))
            if not report.dry_run:
                path.unlink()


def _rewrite_export_csv(path: Path, cids: list[str], oids: list[str], dry_run: bool) -> int:
    """Exports are written by `warehouse.export` (polars CSV): read as text, filter, write back atomically."""
    frame = pl.read_csv(path, infer_schema=False)
    # A spreadsheet-safe export may prefix ids with a quote (formula neutralisation): compare without it.
    cond = _erased_rows(frame.columns, cids, oids)
    if cond is None:
        return 0
    unquoted = frame.with_columns([pl.col(c).str.strip_prefix("'") for c in ID_COLUMNS if c in frame.columns])
    mask = unquoted.select(cond.alias("m")).get_column("m")
    n = int(mask.sum())
    if n and not dry_run:
        buf = io.BytesIO()
        frame.filter(~mask).write_csv(buf)
        atomic_write_bytes(path, buf.getvalue())
    return n


# -------------------------------------------------------------------------------------------------- API


def erase(
    customer_ids: Iterable[str] = (),
    emails: Iterable[str] = (),
    *,
    settings: Settings | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> ErasureReport:
    """Erase customers (by id, or by email through its keyed hash) everywhere; see the module docstring."""
    settings = settings or get_settings()
    emails = [e for e in emails if e and e.strip()]
    cids = {c.strip() for c in customer_ids if c and c.strip()}
    if emails:
        cids |= set(customer_ids_for_emails(emails, settings))
    if not cids:
        raise ErasureError("give at least one --customer-id or --email")
    oids = _order_ids(cids, settings)
    report = ErasureReport(sorted(cids), sorted(oids), register_path(settings), dry_run=dry_run)
    if not dry_run:
        _append_register(report.register, cids, oids, now or datetime.now(UTC))
    email_set = {e.strip().lower() for e in emails}
    _erase_landing(settings, cids, oids, email_set, report)
    _erase_raw(settings, sorted(cids), sorted(oids), report)
    _erase_warehouse(settings, sorted(cids), sorted(oids), report)
    _erase_exports(settings, sorted(cids), sorted(oids), report)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.erasure",
        description="Erase customers from landing, raw, warehouse and exports, and keep them out of later runs.",
    )
    parser.add_argument("--customer-id", action="append", default=[], help="a customer id (repeatable)")
    parser.add_argument(
        "--email",
        action="append",
        default=[],
        help="an email, matched by its keyed hash (repeatable; never stored)",
    )
    parser.add_argument("--dry-run", action="store_true", help="count what would be removed, change nothing")
    args = parser.parse_args(argv)
    try:
        report = erase(args.customer_id, args.email, dry_run=args.dry_run)
    except ErasureError as err:
        print(f"erasure: {err}", file=sys.stderr)
        return 2
    except (duckdb.Error, WarehouseBusyError) as err:
        print(
            f"erasure: the warehouse could not be changed ({err}); run it again when no pipeline runs",
            file=sys.stderr,
        )
        return 1
    for line in report.lines():
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
