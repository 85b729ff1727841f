"""Gzip-compressed landing files (`x.csv.gz`): the generator writes them with `compress`, and ingestion,
the chunk budget, the landing sensor and erasure treat them exactly like the plain files they hold.
"""

from __future__ import annotations

import gzip
import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from pipelines.backfill import bulk_ingest, landing_bytes
from pipelines.core.ingest import IngestionError, ingest, landing_files
from pipelines.core.landing import LandingFileError, csv_files, data_size, read_bytes
from pipelines.core.schemas import DAILY_TABLES, TABLES
from pipelines.erasure import _strip_landing_csv
from pipelines.sensors import stale_days
from pipelines.sources.synthetic import generate

FIRST, LAST = date(2024, 1, 1), date(2024, 4, 29)  # the tiny synthetic shop's range


@pytest.fixture(scope="module")
def landings(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("gz")
    plain, packed = root / "plain" / "landing", root / "gz" / "landing"
    generate(plain, "tiny", force=True)
    generate(packed, "tiny", force=True, compress=True)
    return plain, packed


def test_compressed_generation_holds_the_same_bytes(landings: tuple[Path, Path]) -> None:
    plain, packed = landings
    plain_files = sorted(p.relative_to(plain).as_posix() for p in plain.rglob("*.csv"))
    packed_files = sorted(p.relative_to(packed).as_posix() for p in packed.rglob("*.csv*"))
    assert len(plain_files) > 700 and packed_files == [f + ".gz" for f in plain_files]
    for name in plain_files[:: max(1, len(plain_files) // 40)] + ["orders/orders_2024-04-29.csv"]:
        assert gzip.decompress((packed / (name + ".gz")).read_bytes()) == (plain / name).read_bytes(), name
    # Deterministic: a second compressed generation writes byte-identical files.
    again = packed.parent.parent / "again"
    generate(again, "tiny", force=True, compress=True)
    sample = packed_files[:: max(1, len(packed_files) // 40)]
    assert all((again / f).read_bytes() == (packed / f).read_bytes() for f in sample)
    # The same folder is recognised as this shop, but not as the uncompressed one.
    before = (packed / "orders" / "orders_2024-01-05.csv.gz").stat().st_mtime_ns
    generate(packed, "tiny", compress=True)
    assert (packed / "orders" / "orders_2024-01-05.csv.gz").stat().st_mtime_ns == before
    shutil.rmtree(again)


def test_chunk_budget_counts_uncompressed_bytes(landings: tuple[Path, Path]) -> None:
    plain, packed = landings
    days = [date(2024, 1, d) for d in range(1, 32)]
    for table in ("orders", "traffic"):
        sizes = landing_bytes(packed, table, days)
        assert sizes == landing_bytes(plain, table, days) and sum(sizes.values()) > 0
        gz = packed / table / f"{table}_2024-01-03.csv.gz"
        assert data_size(gz) == len(read_bytes(gz)) > gz.stat().st_size


def _published(raw: Path) -> dict[str, list[dict]]:
    """Every published file's rows, with the file names' .gz dropped (the only difference allowed)."""
    out = {}
    for p in sorted(raw.rglob("*.parquet")):
        frame = pl.read_parquet(p)
        for col in ("_source_file", "source_file", "detail"):  # a detail may name the file too
            if col in frame.columns:
                frame = frame.with_columns(pl.col(col).str.replace_all(r"\.csv\.gz\b", ".csv"))
        out[str(p.relative_to(raw))] = frame.to_dicts()
    return out


def test_ingesting_compressed_files_gives_the_same_raw_layer(
    landings: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = {}
    for name, landing in zip(("plain", "gz"), landings, strict=True):
        data = tmp_path / name
        monkeypatch.setenv("SHOPLENS_DATA_DIR", str(data))
        monkeypatch.setenv("SHOPLENS_LANDING", str(landing))
        monkeypatch.setenv("SHOPLENS_WAREHOUSE", str(data / "warehouse" / "shoplens.duckdb"))
        results[name] = bulk_ingest(FIRST, LAST, log=lambda _m: None, run_suites=False, chunk="month")
    for table in TABLES:
        plain, packed = results["plain"][table], results["gz"][table]
        assert (packed.rows_in, packed.rows_accepted, dict(packed.by_rule)) == (
            plain.rows_in,
            plain.rows_accepted,
            dict(plain.by_rule),
        ), table
        packed.check_balance()
    # The tiny shop lands malformed and invalid rows on purpose: the gz reader must quarantine them too.
    assert results["gz"]["orders"].rows_quarantined > 0
    assert all(f.endswith(".csv.gz") for f in results["gz"]["orders"].files)
    assert _published(tmp_path / "gz" / "raw") == _published(tmp_path / "plain" / "raw")


def test_both_forms_of_one_file_stop_with_both_names(landings: tuple[Path, Path], tmp_path: Path) -> None:
    _, packed = landings
    landing = tmp_path / "landing"
    shutil.copytree(packed / "orders", landing / "orders")
    twin = landing / "orders" / "orders_2024-02-02.csv"
    twin.write_bytes(read_bytes(landing / "orders" / "orders_2024-02-02.csv.gz"))
    with pytest.raises(IngestionError, match=r"orders_2024-02-02\.csv and orders_2024-02-02\.csv\.gz"):
        landing_files(landing, "orders", [date(2024, 2, 1)])
    with pytest.raises(LandingFileError):
        csv_files(landing / "orders", "orders_*")
    assert len(csv_files(landing / "orders", "orders_2024-02-02", strict=False)) == 2
    raw = tmp_path / "raw"
    with pytest.raises(IngestionError, match="plain and compressed"):
        ingest("orders", landing, raw, [date(2024, 2, 2)])
    assert not list(raw.rglob("*.parquet"))  # nothing published


def test_a_broken_gzip_file_is_named(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    folder = landing / "reviews"
    folder.mkdir(parents=True)
    (folder / "reviews_2024-01-01.csv.gz").write_bytes(b"review_id,order_id\nnot gzip at all\n")
    with pytest.raises(IngestionError, match=r"reviews_2024-01-01\.csv\.gz: cannot be read as gzip-compressed"):
        ingest("reviews", landing, tmp_path / "raw", [date(2024, 1, 1)])


def test_sensor_sees_compressed_days(landings: tuple[Path, Path], tmp_path: Path) -> None:
    _, packed = landings
    landing = tmp_path / "landing"
    for table in DAILY_TABLES:
        (landing / table).mkdir(parents=True)
        for day in ("2024-03-01", "2024-03-02"):
            src = packed / table / f"{table}_{day}.csv.gz"
            if src.exists():
                shutil.copy2(src, landing / table / src.name)
    assert sorted(stale_days(landing, tmp_path / "raw")) == ["2024-03-01", "2024-03-02"]


def test_erasure_rewrites_a_compressed_file_compressed(landings: tuple[Path, Path], tmp_path: Path) -> None:
    _, packed = landings
    path = tmp_path / "orders_2024-02-10.csv.gz"
    shutil.copy2(packed / "orders" / path.name, path)
    rows = pl.read_csv(read_bytes(path), infer_schema=False)
    victim = rows.get_column("customer_id").drop_nulls()[0]
    n = rows.filter(pl.col("customer_id") == victim).height
    assert _strip_landing_csv(path, {victim}, set(), dry_run=False) == n > 0
    kept = pl.read_csv(gzip.decompress(path.read_bytes()), infer_schema=False)  # still a gzip file
    assert kept.height == rows.height - n and victim not in kept.get_column("customer_id").to_list()
