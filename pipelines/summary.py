"""The short summary `make demo` ends with: rows per table, quarantine by rule, where outputs are."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines.core.ingest import sql_literal
from pipelines.core.schemas import TABLES
from pipelines.core.settings import get_settings
from pipelines.sources.base import read_manifest


def _count_parquet(con: duckdb.DuckDBPyConnection, folder: Path) -> int:
    files = sorted(folder.glob("*/*.parquet"))
    if not files:
        return 0
    lst = "[" + ", ".join(sql_literal(str(p)) for p in files) + "]"
    return con.sql(f"SELECT count(*) FROM read_parquet({lst}, union_by_name = true)").fetchall()[0][0]


def quarantine_by_rule(raw_dir: Path) -> list[tuple[str, str, int]]:
    files = sorted((raw_dir / "_quarantine").glob("*/*/*.parquet"))
    if not files:
        return []
    lst = "[" + ", ".join(sql_literal(str(p)) for p in files) + "]"
    with duckdb.connect() as con:
        return con.sql(
            f"SELECT table_name, rule, count(*) FROM read_parquet({lst}, union_by_name = true) "
            "GROUP BY ALL ORDER BY 1, 3 DESC"
        ).fetchall()


def warehouse_counts(warehouse: Path) -> list[tuple[str, str, int]]:
    if not warehouse.exists():
        return []
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = con.sql(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema IN ('main', 'decisions') ORDER BY 1, 2"
        ).fetchall()
        out = []
        for schema, name in tables:
            n = con.sql(f'SELECT count(*) FROM "{schema}"."{name}"').fetchall()[0][0]
            out.append((schema, name, n))
        return out


def print_summary() -> None:
    s = get_settings()
    manifest = read_manifest(s.landing_dir) or {}
    print("\n=== shoplens summary ===")
    print(
        f"source: {manifest.get('source', '?')}  dates: {manifest.get('first_date')} .. {manifest.get('last_date')}"
    )
    if manifest.get("missing_tables"):
        print(f"tables this source lacks (their marts are skipped): {', '.join(manifest['missing_tables'])}")
    print("\nraw tables (accepted rows):")
    with duckdb.connect() as con:
        for t in TABLES:
            print(f"  {t:<18} {_count_parquet(con, s.raw_dir / t):>12,}")
    rules = quarantine_by_rule(s.raw_dir)
    print("\nquarantined rows by rule:" if rules else "\nquarantined rows: none")
    for table, rule, n in rules:
        print(f"  {table:<18} {rule:<20} {n:>8,}")
    counts = warehouse_counts(s.warehouse)
    if counts:
        print(f"\npublished warehouse: marts and decisions ({len(counts)} tables and views):")
        for schema, name, n in counts:
            print(f"  {schema + '.' + name:<50} {n:>12,}")
    print("\nwhere things are:")
    print(
        f"  warehouse  {s.warehouse.relative_to(s.data_dir.parent) if s.warehouse.is_relative_to(s.data_dir.parent) else s.warehouse}"
    )
    for label, path in (("raw", s.raw_dir), ("exports", s.exports_dir), ("reports", s.reports_dir)):
        rel = path.relative_to(s.data_dir.parent) if path.is_relative_to(s.data_dir.parent) else path
        print(f"  {label:<10} {rel}/")
    report = s.reports_dir / "latest.html"
    if report.exists():
        print(f"\ndecision report: {report}")
    print("open the Dagster UI with: make dev   (then http://127.0.0.1:3000)")
