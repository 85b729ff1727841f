"""Right to erasure: `python -m pipelines.erasure` removes a customer from landing, raw, warehouse and
exports, and the next run (with the source delivering the customer again) does not bring them back,
with rows in = accepted + quarantined still holding.

The module builds its own tiny synthetic shop (a full pipeline run), erases a customer, then re-lands the
shop and runs again: the tests below run in file order on that state.
"""

from __future__ import annotations

import csv
import io
import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from pipelines.core.ingest import ERASED_RULE, ERASURE_REGISTER
from pipelines.core.schemas import TABLES
from pipelines.core.settings import get_settings
from pipelines.core.warehouse import export
from pipelines.erasure import ErasureError, _compact_warehouse, erase, main
from pipelines.sources.base import read_manifest
from tests.conftest import ROOT

LINKED = ("orders", "reviews", "traffic", "shipments", "customers")


def shop_env(mp: pytest.MonkeyPatch, base: Path) -> Path:
    """Point every shoplens path and DAGSTER_HOME at `base`; demo mode with the demo key, no Prophet."""
    data, home = base / "data", base / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    for key, value in {
        "SHOPLENS_DATA_DIR": data,
        "SHOPLENS_LANDING": data / "landing",
        "SHOPLENS_WAREHOUSE": data / "warehouse" / "shoplens.duckdb",
        "DAGSTER_HOME": home,
        "SHOPLENS_USE_PROPHET": "0",
    }.items():
        mp.setenv(key, str(value))
    mp.delenv("SHOPLENS_MODE", raising=False)
    mp.delenv("SHOPLENS_PII_KEY", raising=False)
    return data


def _landing_rows(data: Path, table: str) -> pl.DataFrame:
    """Every record of a table's landing files as text (csv module: the synthetic shop lands a few broken
    lines on purpose, which a strict reader would refuse)."""
    rows: list[dict] = []
    for path in sorted((data / "landing" / table).glob("*.csv")):
        with path.open(newline="", encoding="utf-8", errors="replace") as fh:
            rows += [{k: v for k, v in r.items() if isinstance(k, str)} for r in csv.DictReader(fh)]
    return pl.DataFrame(
        rows, schema={c: pl.String for c in rows[0]} if rows else None, infer_schema_length=None
    )


def _raw(data: Path, table: str, quarantine: bool = False) -> pl.DataFrame:
    base = data / "raw" / ("_quarantine/" + table if quarantine else table)
    files = sorted(base.glob("**/*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal") if files else pl.DataFrame()


def _of(frame: pl.DataFrame, customer: str, orders: list[str]) -> pl.DataFrame:
    """Rows of `frame` tied to the customer: their id or one of their orders."""
    cond = pl.lit(False)
    if "customer_id" in frame.columns:
        cond = cond | (pl.col("customer_id") == customer).fill_null(False)
    if "order_id" in frame.columns:
        cond = cond | pl.col("order_id").is_in(orders).fill_null(False)
    return frame.filter(cond)


def _warehouse_hits(data: Path, customer: str, orders: list[str]) -> dict[str, int]:
    """Rows with the customer or their orders in every warehouse table and view that has the columns."""
    con = duckdb.connect(str(data / "warehouse" / "shoplens.duckdb"), read_only=True)
    try:
        rels = con.sql(
            "SELECT table_schema, table_name, list(column_name) FROM information_schema.columns "
            "WHERE column_name IN ('customer_id', 'order_id') GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        assert len(rels) >= 8
        hits = {}
        for schema, name, cols in rels:
            conds = []
            if "customer_id" in cols:
                conds.append("CAST(customer_id AS VARCHAR) = ?")
            if "order_id" in cols:
                conds.append("list_contains(?, CAST(order_id AS VARCHAR))")
            params = ([customer] if "customer_id" in cols else []) + ([orders] if "order_id" in cols else [])
            n = con.execute(
                f'SELECT count(*) FROM "{schema}"."{name}" WHERE {" OR ".join(conds)}', params
            ).fetchall()[0][0]
            if n:
                hits[f"{schema}.{name}"] = n
        return hits
    finally:
        con.close()


def _export_hits(data: Path, customer: str, orders: list[str]) -> dict[str, int]:
    hits = {}
    for path in sorted((data / "exports").rglob("*")):
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
        elif path.suffix == ".csv":
            frame = pl.read_csv(path, infer_schema=False)
        else:
            continue
        frame = frame.with_columns(
            pl.col(c).cast(pl.String) for c in ("customer_id", "order_id") if c in frame.columns
        )
        n = _of(frame, customer, orders).height
        if n:
            hits[path.name] = n
    return hits


@pytest.fixture(scope="module")
def instance() -> dg.DagsterInstance:
    """An in-memory Dagster instance for both runs of this module (no run history on disk to wait for)."""
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, instance: dg.DagsterInstance):
    """This module's own tiny shop (the erasure changes it, so the session's shared shop will not do)."""
    from pipelines.demo import land_source, run_pipeline

    with pytest.MonkeyPatch.context() as mp:
        data = shop_env(mp, tmp_path_factory.mktemp("erasure_shop"))
        assert run_pipeline(land_source("synthetic", None, "tiny", True), instance=instance)
        yield data


@pytest.fixture(scope="module")
def target(env: Path) -> dict:
    """The customer with the most orders that also has reviews and shipments; their state before erasure."""
    orders = _raw(env, "orders")
    reviews = _raw(env, "reviews")
    ranked = (
        orders.filter(pl.col("customer_id").is_in(reviews.get_column("customer_id").drop_nulls().implode()))
        .group_by("customer_id")
        .agg(pl.col("order_id").n_unique().alias("n"))
        .sort(["n", "customer_id"], descending=[True, False])
    )
    customer = ranked.item(0, "customer_id")
    order_ids = (
        orders.filter(pl.col("customer_id") == customer).get_column("order_id").unique().sort().to_list()
    )
    email = _landing_rows(env, "customers").filter(pl.col("customer_id") == customer).item(0, "email")
    # A decision export naming customers, as the coupon and segment exports do.
    con = duckdb.connect(str(env / "warehouse" / "shoplens.duckdb"), read_only=True)
    rfm = con.sql("SELECT * FROM customer_rfm ORDER BY customer_id").pl()
    con.close()
    export(rfm, "customer_segments_for_test", env / "exports")
    before = {
        "landing": {t: _of(_landing_rows(env, t), customer, order_ids).height for t in LINKED},
        "raw": {t: _of(_raw(env, t), customer, order_ids).height for t in LINKED},
        "warehouse": _warehouse_hits(env, customer, order_ids),
        "exports": _export_hits(env, customer, order_ids),
        "warehouse_bytes": (env / "warehouse" / "shoplens.duckdb").read_bytes().count(customer.encode()),
    }
    # The erasure has something to erase everywhere (else the tests below could not fail).
    assert all(before["landing"][t] > 0 for t in LINKED), before
    assert all(before["raw"][t] > 0 for t in LINKED), before
    assert before["warehouse"].get("main.fct_order_lines") and before["exports"], before
    return {"customer": customer, "orders": order_ids, "email": email, "before": before}


@pytest.fixture(scope="module")
def erased(env: Path, target: dict) -> dict:
    code = main(["--email", target["email"]])  # found through the keyed hash of the email
    assert code == 0
    return target


def test_dry_run_changes_nothing(env: Path, target: dict) -> None:
    snapshot = {p: p.stat().st_mtime_ns for p in env.rglob("*") if p.is_file()}
    report = erase([target["customer"]], dry_run=True)
    assert report.total("landing") == sum(target["before"]["landing"].values())
    assert report.total("raw") >= sum(target["before"]["raw"].values())
    assert {p: p.stat().st_mtime_ns for p in env.rglob("*") if p.is_file()} == snapshot
    assert not (env / ERASURE_REGISTER).exists()


def test_unknown_email_is_a_clear_error(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ErasureError, match="no customer with that email"):
        erase(emails=["nobody@nowhere.example"])
    assert main(["--email", "nobody@nowhere.example"]) == 2
    assert "SHOPLENS_PII_KEY" in capsys.readouterr().err


def test_customer_is_gone_from_landing_and_raw(env: Path, erased: dict) -> None:
    customer, orders = erased["customer"], erased["orders"]
    for table in LINKED:
        assert _of(_landing_rows(env, table), customer, orders).height == 0, table
        assert _of(_raw(env, table), customer, orders).height == 0, table
    # Only their rows went: every other landed row is still there.
    manifest = read_manifest(env / "landing")
    assert manifest["erased_rows"] == erased["before"]["landing"]
    for table in LINKED:
        assert (
            _landing_rows(env, table).height
            == manifest["rows_landed"][table] - manifest["erased_rows"][table]
        )


def test_customer_is_gone_from_warehouse_and_exports(env: Path, erased: dict) -> None:
    customer, orders = erased["customer"], erased["orders"]
    assert _warehouse_hits(env, customer, orders) == {}
    assert _export_hits(env, customer, orders) == {}
    segments = pl.read_csv(env / "exports" / "customer_segments_for_test.csv", infer_schema=False)
    assert segments.height > 100  # the other customers are still exported
    if erased["before"]["warehouse_bytes"]:
        # Deleted rows do not linger in freed blocks of the database file.
        assert (env / "warehouse" / "shoplens.duckdb").read_bytes().count(customer.encode()) == 0


def test_register_holds_ids_only(env: Path, erased: dict) -> None:
    text = (env / ERASURE_REGISTER).read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["customer_id"] for r in rows} - {""} == {erased["customer"]}
    assert sorted(r["order_id"] for r in rows if r["order_id"]) == erased["orders"]
    assert "@" not in text and erased["email"] not in text


def test_erasing_again_is_a_no_op(env: Path, erased: dict) -> None:
    report = erase([erased["customer"]])
    assert sum(report.removed.values()) == 0
    assert len(list(csv.DictReader((env / ERASURE_REGISTER).open()))) == 1 + len(erased["orders"])


@pytest.fixture(scope="module")
def rerun(env: Path, erased: dict, instance: dg.DagsterInstance) -> dict:
    """The source delivers everything again (the erased customer included) and the whole graph runs."""
    from pipelines.demo import run_pipeline
    from pipelines.sources.registry import land

    land("synthetic", None, env / "landing", scale="tiny", force=True)
    assert _of(_landing_rows(env, "orders"), erased["customer"], erased["orders"]).height > 0
    assert run_pipeline(read_manifest(env / "landing"), instance=instance)
    return erased


def test_rerun_does_not_bring_the_customer_back(env: Path, rerun: dict) -> None:
    customer, orders = rerun["customer"], rerun["orders"]
    for table in LINKED:
        assert _of(_raw(env, table), customer, orders).height == 0, table
    assert _warehouse_hits(env, customer, orders) == {}
    assert _export_hits(env, customer, orders) == {}
    # Each re-delivered row of theirs is counted under erased_customer, without its record.
    for table in LINKED:
        q = _raw(env, table, quarantine=True).filter(pl.col("rule") == ERASED_RULE)
        assert q.height == rerun["before"]["landing"][table], table
        assert q.get_column("raw_record").null_count() == q.height


def test_rerun_accounting_balances(env: Path, rerun: dict, instance: dg.DagsterInstance) -> None:
    """Rows in = accepted + quarantined over the whole landing (on disk) and in the Dagster run's metadata."""
    manifest = read_manifest(env / "landing")
    assert str(get_settings().data_dir) == str(env)
    for table, spec in TABLES.items():
        accepted, quarantined = _raw(env, table), _raw(env, table, quarantine=True)
        assert manifest["rows_landed"][table] == accepted.height + quarantined.height, table
        # The nightly run (newest day, or the snapshot) recorded a balanced count matching its files.
        event = instance.get_latest_materialization_event(dg.AssetKey(["raw", table]))
        meta = event.asset_materialization.metadata
        assert meta["rows_in"].value == meta["rows_accepted"].value + meta["rows_quarantined"].value, table
        if spec.is_daily:
            day = event.asset_materialization.partition
            assert day == manifest["last_date"]
            on_disk = accepted.filter(pl.col("_partition_date") == date.fromisoformat(day)).height
        else:
            on_disk = accepted.height
        assert meta["rows_accepted"].value == on_disk, table


def test_compaction_removes_deleted_bytes(tmp_path: Path) -> None:
    """Unit check of the warehouse step: DELETE alone leaves the bytes in the file, the copy does not."""
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE t AS SELECT 'cust-' || i::VARCHAR || '-zzqx' AS customer_id FROM range(2000) r(i)"
    )
    con.execute("CHECKPOINT")
    con.execute("DELETE FROM t WHERE customer_id = 'cust-7-zzqx'")
    con.execute("CHECKPOINT")
    con.close()
    assert b"cust-7-zzqx" in db.read_bytes()  # control: still on disk after DELETE
    _compact_warehouse(db)
    assert b"cust-7-zzqx" not in db.read_bytes()
    con = duckdb.connect(str(db), read_only=True)
    assert con.sql("SELECT count(*) FROM t").fetchall() == [(1999,)]
    con.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.duckdb"]


def test_ingestion_counts_erased_rows_first_and_keeps_no_record(tmp_path: Path) -> None:
    """Fast check of the ingestion side: the register beats every other rule, broken lines included."""
    from pipelines.core.ingest import ingest

    corpus = Path(__file__).parent / "corpus"
    landing, raw = tmp_path / "landing", tmp_path / "raw"
    shutil.copytree(corpus / "reference", landing)
    (landing / "orders").mkdir()
    header = "order_id,line_no,customer_id,sku,quantity,unit_price,currency,discount,order_ts,channel,region,status\n"
    (landing / "orders" / "orders_2024-01-01.csv").write_text(
        header
        + "o1,1,c1,ZZ9,-1,9.90,GBP,0,2024-01-01 10:00:00,web,X,completed\n"  # erased customer, breaks 3 rules
        + "o9,1,,A1,1,9.90,CNY,0,2024-01-01 10:00:00,web,X,completed\n"  # an erased order, no customer id
        + "o2,1,c1,A1,1\n"  # erased customer on a truncated line
        + "o3,1,c2,A1,1\n"  # someone else's truncated line
        + "o4,1,c2,A1,1,9.90,CNY,0,2024-01-01 10:00:00,web,X,completed\n"
    )
    register = tmp_path / ERASURE_REGISTER
    register.parent.mkdir()
    register.write_text("customer_id,order_id,erased_at\nc1,,2025-01-01T00:00:00\n,o9,2025-01-01T00:00:00\n")
    for table in ("products", "customers"):
        ingest(table, landing, raw, None)
    result = ingest("orders", landing, raw, [date(2024, 1, 1)], currency="CNY")
    assert (result.rows_in, result.rows_accepted) == (5, 1)
    assert dict(result.by_rule) == {ERASED_RULE: 3, "malformed_line": 1}
    q = pl.read_parquet(raw / "_quarantine" / "orders" / "date=2024-01-01" / "part-0.parquet").sort(
        "source_row"
    )
    erased_rows = q.filter(pl.col("rule") == ERASED_RULE)
    assert erased_rows.get_column("source_row").to_list() == [1, 2, 3]
    assert erased_rows.get_column("raw_record").null_count() == 3
    assert "c1" not in "".join(erased_rows.get_column("detail").to_list())
    assert q.filter(pl.col("rule") == "malformed_line").item(0, "raw_record") == '{"csv_line":"o3,1,c2,A1,1"}'
    customers = ingest("customers", landing, raw, None)
    assert dict(customers.by_rule) == {ERASED_RULE: 1} and customers.rows_accepted == 1
