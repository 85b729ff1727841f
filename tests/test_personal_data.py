"""Personal data: emails, phones and names are replaced by a keyed hash at ingestion and appear nowhere
downstream (every warehouse table and view, raw Parquet, quarantine, exports, reports); production mode
refuses to run without SHOPLENS_PII_KEY.

The scans read the session's tiny synthetic shop (`tiny_pipeline` in conftest.py: one full pipeline run
shared with other modules); this module only reads it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from pipelines.core.ingest import DEMO_PII_KEY, ingest, sql_literal
from tests.conftest import ROOT, TinyShop

EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"


@pytest.fixture(scope="module")
def shop(tiny_pipeline: TinyShop) -> Path:
    return tiny_pipeline.data_dir


@pytest.fixture(scope="module")
def personal(shop: Path) -> dict[str, list[str]]:
    """The raw personal values as delivered in the landing customers file."""
    customers = pl.read_csv(shop / "landing" / "customers" / "customers.csv", infer_schema=False)
    values = {
        c: customers.get_column(c).drop_nulls().unique().sort().to_list() for c in ("email", "phone", "name")
    }
    assert all(len(v) > 100 for v in values.values()), "the synthetic shop should carry emails, phones, names"
    return values


def _pattern(personal: dict[str, list[str]]) -> str:
    """Any email-shaped text, or any of the delivered phones and names, as one regex."""
    literals = [re.escape(v) for v in (*personal["phone"], *personal["name"])]
    return "|".join([EMAIL, *literals])


def _hits(frame: pl.DataFrame, pattern: str) -> list[str]:
    """`column: value` for the cells of `frame` (any type, compared as text) matching `pattern`."""
    found = []
    for col in frame.columns:
        values = frame.get_column(col)
        if values.dtype != pl.String:
            continue
        hit = values.drop_nulls().filter(values.drop_nulls().str.contains(pattern))
        found += [f"{col}: {v[:80]}" for v in hit.head(3).to_list()]
    return found


def _as_text(con: duckdb.DuckDBPyConnection, relation: str) -> pl.DataFrame:
    return con.sql(f"SELECT CAST(COLUMNS(*) AS VARCHAR) FROM {relation}").pl()


def test_scanner_finds_personal_data_where_it_is(shop: Path, personal: dict[str, list[str]]) -> None:
    """Control: the scan below is able to see emails, phones and names (in the landing file)."""
    landed = pl.read_csv(shop / "landing" / "customers" / "customers.csv", infer_schema=False)
    hits = _hits(landed, _pattern(personal))
    assert any(h.startswith("email:") for h in hits)
    assert any(h.startswith("phone:") for h in hits)
    assert any(h.startswith("name:") for h in hits)


def test_no_personal_data_in_any_warehouse_table_or_view(shop: Path, personal: dict[str, list[str]]) -> None:
    pattern = _pattern(personal)
    con = duckdb.connect(str(shop / "warehouse" / "shoplens.duckdb"), read_only=True)
    try:
        relations = con.sql(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT internal "
            "UNION ALL SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal"
        ).fetchall()
        assert len(relations) > 20
        leaks = {}
        for schema, name in relations:
            hits = _hits(_as_text(con, f'"{schema}"."{name}"'), pattern)
            if hits:
                leaks[f"{schema}.{name}"] = hits
    finally:
        con.close()
    assert not leaks, f"personal data in the warehouse: {leaks}"


def test_no_personal_data_in_raw_quarantine_exports_or_reports(
    shop: Path, personal: dict[str, list[str]]
) -> None:
    pattern = _pattern(personal)
    parquet = sorted((shop / "raw").rglob("*.parquet")) + sorted((shop / "exports").rglob("*.parquet"))
    assert any("_quarantine" in str(p) for p in parquet) and len(parquet) > 100
    # One scan per folder of files sharing a schema (raw/<table>, raw/_quarantine/<table>, each export).
    groups: dict[Path, list[Path]] = {}
    for path in parquet:
        rel = path.relative_to(shop)
        key = shop / Path(*rel.parts[:3]) if rel.parts[1] == "_quarantine" else shop / Path(*rel.parts[:2])
        groups.setdefault(key if rel.parts[0] == "raw" else path, []).append(path)
    leaks = {}
    con = duckdb.connect()
    for key, files in groups.items():
        listing = "[" + ", ".join(sql_literal(str(f)) for f in files) + "]"
        hits = _hits(_as_text(con, f"read_parquet({listing}, union_by_name = true)"), pattern)
        if hits:
            leaks[str(key.relative_to(shop))] = hits
    con.close()
    text_files = [
        p
        for folder in ("exports", "reports", "erasure")
        for p in sorted((shop / folder).rglob("*"))
        if p.is_file() and p.suffix != ".parquet"
    ]
    for path in text_files:
        text = path.read_bytes().decode("utf-8", errors="replace")
        if m := re.search(pattern, text):
            leaks[str(path.relative_to(shop))] = [m.group(0)]
    assert not leaks, f"personal data in files: {leaks}"


def test_customers_carry_keyed_hashes_of_the_delivered_values(shop: Path) -> None:
    """Replaced, not dropped: each hash is HMAC-SHA256 (demo key) of the normalised delivered value."""
    landed = pl.read_csv(shop / "landing" / "customers" / "customers.csv", infer_schema=False)
    raw = pl.read_parquet(shop / "raw" / "customers" / "snapshot" / "part-0.parquet")
    assert not {"email", "phone", "name"} & set(raw.columns)
    joined = landed.join(raw, on="customer_id", how="inner")
    assert joined.height == raw.height > 100
    key = DEMO_PII_KEY.encode()
    for row in joined.head(20).iter_rows(named=True):
        for col in ("email", "phone", "name"):
            expected = hmac.new(key, row[col].strip().lower().encode(), hashlib.sha256).hexdigest()
            assert row[f"{col}_hash"] == expected
    assert raw.get_column("email_hash").n_unique() == raw.height  # distinct people stay distinct


# ----------------------------------------------------------------------------------- production key


@pytest.fixture()
def production_landing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("SHOPLENS_DATA_DIR", str(data))
    monkeypatch.setenv("SHOPLENS_LANDING", str(data / "landing"))
    monkeypatch.setenv("SHOPLENS_WAREHOUSE", str(data / "warehouse" / "shoplens.duckdb"))
    monkeypatch.delenv("SHOPLENS_PII_KEY", raising=False)
    (data / "landing" / "customers").mkdir(parents=True)
    shutil.copy(
        ROOT / "tests" / "corpus" / "reference" / "customers" / "customers.csv",
        data / "landing" / "customers",
    )
    monkeypatch.setenv("SHOPLENS_MODE", "production")
    return data


def _customers_asset() -> dg.AssetsDefinition:
    from pipelines.assets.ingest import reference_ingest_assets

    return next(a for a in reference_ingest_assets if a.key == dg.AssetKey(["raw", "customers"]))


def test_production_mode_without_a_key_stops_naming_the_variable(production_landing: Path) -> None:
    result = dg.materialize([_customers_asset()], raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    description = failure.step_failure_data.user_failure_data.description
    assert "SHOPLENS_PII_KEY is not set" in description and "production" in description
    assert not (production_landing / "raw" / "customers").exists()


def test_production_mode_hashes_with_the_environment_key(
    production_landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOPLENS_PII_KEY", "a-secret-from-the-environment")
    assert dg.materialize([_customers_asset()]).success
    raw = pl.read_parquet(production_landing / "raw" / "customers" / "snapshot" / "part-0.parquet")
    ann = raw.filter(pl.col("customer_id") == "c1").row(0, named=True)
    keyed = hmac.new(b"a-secret-from-the-environment", b"ann@example.com", hashlib.sha256).hexdigest()
    demo = hmac.new(DEMO_PII_KEY.encode(), b"ann@example.com", hashlib.sha256).hexdigest()
    assert ann["email_hash"] == keyed != demo


def test_quarantined_customer_records_are_hashed_too(tmp_path: Path) -> None:
    """A customer row that breaks a rule keeps its record for repair, with the personal fields hashed."""
    landing = tmp_path / "landing"
    (landing / "customers").mkdir(parents=True)
    (landing / "customers" / "customers.csv").write_text(
        "customer_id,first_seen,region,email,phone,name\n"
        "c1,not-a-date,Beijing,ann@example.com,+86 138 0000 0001,Ann Li\n"
        "c2,2024-01-01,Shanghai,bob@example.com,+86 138 0000 0002,Bob Wu\n"
    )
    result = ingest("customers", landing, tmp_path / "raw", None)
    assert dict(result.by_rule) == {"type_cast_failed": 1}
    q = pl.read_parquet(tmp_path / "raw" / "_quarantine" / "customers" / "snapshot" / "part-0.parquet")
    record = q.item(0, "raw_record")
    assert "not-a-date" in record and '"email": "hash:' in record
    assert not re.search(EMAIL, record) and "138 0000" not in record and "Ann Li" not in record
