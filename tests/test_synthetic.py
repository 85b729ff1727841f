"""The embedded synthetic shop: deterministic, complete, with known bad rows, and realistic at small scale."""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines.core.schemas import TABLES
from pipelines.sources.base import MANIFEST_NAME, daily_file, read_manifest, snapshot_file
from pipelines.sources.synthetic import (
    BAD_ROW_RULES,
    SCALES,
    Scale,
    format_realism_report,
    generate,
    realism_report,
)

TINY = SCALES["tiny"]
PERSONAL = ["email", "phone", "name"]


def _read(landing: Path, table: str) -> pl.DataFrame:
    """All files of a table as text, with the file name (short lines pad with nulls)."""
    pattern = (
        snapshot_file(landing, table) if not TABLES[table].is_daily else landing / table / f"{table}_*.csv"
    )
    return pl.read_csv(
        str(pattern), infer_schema=False, truncate_ragged_lines=True, include_file_paths="_file"
    )


def _files(landing: Path) -> list[Path]:
    return sorted(p.relative_to(landing) for p in landing.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    landing = tmp_path_factory.mktemp("tiny") / "landing"
    generate(landing, "tiny", seed=42)
    return landing


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    landing = tmp_path_factory.mktemp("small") / "landing"
    generate(landing, "small", seed=42)
    return landing


@pytest.fixture(scope="module")
def small_report(small: Path) -> dict:
    return realism_report(small)


def test_same_seed_same_bytes_and_rerun_is_skipped(tiny: Path, tmp_path: Path) -> None:
    other = tmp_path / "again"
    generate(other, "tiny", seed=42)
    files = _files(tiny)
    assert files == _files(other)
    assert len(files) == 2 + 1 + 6 * TINY.days  # 2 snapshots, the manifest, 6 daily tables x days
    for rel in files:
        assert (tiny / rel).read_bytes() == (other / rel).read_bytes(), f"{rel} differs between two runs"

    # Same seed and scale again: nothing is rewritten; force rewrites (the same bytes).
    probe = daily_file(other, "orders", TINY.start_date)
    before = probe.stat().st_mtime_ns
    report = generate(other, "tiny", seed=42)
    assert probe.stat().st_mtime_ns == before
    assert report.rows_landed == read_manifest(other)["rows_landed"]
    assert report.extra["injected_bad_rows"] == read_manifest(other)["injected_bad_rows"]
    generate(other, "tiny", seed=42, force=True)
    assert probe.stat().st_mtime_ns != before
    assert probe.read_bytes() == daily_file(tiny, "orders", TINY.start_date).read_bytes()


def test_another_seed_gives_another_shop(tiny: Path, tmp_path: Path) -> None:
    other = tmp_path / "seed7"
    generate(other, "tiny", seed=7)
    day = TINY.start_date + timedelta(days=30)
    assert daily_file(other, "orders", day).read_bytes() != daily_file(tiny, "orders", day).read_bytes()
    assert read_manifest(other)["seed"] == 7


def test_every_table_written_with_canonical_headers(tiny: Path) -> None:
    manifest = read_manifest(tiny)
    assert manifest["source"] == "synthetic" and manifest["currency"] == "CNY"
    assert manifest["timezone"] == "Asia/Shanghai" and manifest["missing_tables"] == []
    assert (manifest["first_date"], manifest["last_date"]) == ("2024-01-01", TINY.end_date.isoformat())
    days = [TINY.start_date + timedelta(days=i) for i in range(TINY.days)]
    for name, table in TABLES.items():
        paths = [daily_file(tiny, name, d) for d in days] if table.is_daily else [snapshot_file(tiny, name)]
        expected = list(table.columns) + (PERSONAL if name == "customers" else [])
        for path in paths:
            with path.open(encoding="utf-8") as fh:
                assert next(csv.reader(fh)) == expected, f"{path.name}: header"
        assert manifest["rows_landed"][name] > 0, name
        assert manifest["rows_in"][name] == manifest["rows_landed"][name]
    customers = _read(tiny, "customers")
    assert customers.height == TINY.customers and customers["customer_id"].n_unique() == TINY.customers
    assert customers["email"].str.contains(r"^user\d+@example\.com$").all()
    assert customers["phone"].str.contains(r"^\+86 1\d{2} \d{4} \d{4}$").all()
    assert _read(tiny, "products").height == TINY.skus


def test_rows_sit_in_the_file_of_their_day_and_keys_are_unique(tiny: Path) -> None:
    for name, table in TABLES.items():
        if not table.is_daily:
            continue
        frame = _read(tiny, name)
        if name == "orders":  # the injected bad rows break these rules on purpose
            frame = frame.filter(~pl.col("order_ts").str.starts_with("2099") & pl.col("status").is_not_null())
            frame = frame.unique(maintain_order=True)
        file_day = pl.col("_file").str.extract(r"_(\d{4}-\d{2}-\d{2})\.csv$")
        wrong = frame.filter(pl.col(table.partition_column).str.slice(0, 10) != file_day)
        assert wrong.height == 0, f"{name}: rows outside their file's day: {wrong.head(3)}"
        assert frame.select(table.key).is_duplicated().sum() == 0, f"{name}: duplicate keys"


def test_injected_bad_rows_are_in_the_files_and_the_manifest(tiny: Path, tmp_path: Path) -> None:
    injected = read_manifest(tiny)["injected_bad_rows"]["orders"]
    assert set(injected) == set(BAD_ROW_RULES) and min(injected.values()) >= 1
    lines = 0
    short = 0
    for path in sorted((tiny / "orders").glob("orders_*.csv")):
        with path.open(encoding="utf-8") as fh:
            rows = list(csv.reader(fh))[1:]
        lines += len(rows)
        short += sum(len(r) != len(TABLES["orders"].columns) for r in rows)
    orders = _read(tiny, "orders")
    skus = set(_read(tiny, "products")["sku"])
    assert lines == orders.height == read_manifest(tiny)["rows_landed"]["orders"]
    assert short == injected["malformed_line"]
    assert (orders["unit_price"].cast(pl.Float64, strict=False) <= 0).sum() == injected["price_positive"]
    assert (~orders["sku"].is_in(list(skus))).sum() == injected["unknown_sku"]
    assert orders["order_ts"].str.starts_with("2099").sum() == injected["future_timestamp"]
    assert orders.drop("_file").is_duplicated().sum() == 2 * injected["duplicate_key"]
    assert orders.select("order_id", "line_no").is_duplicated().sum() == 2 * injected["duplicate_key"]

    clean = tmp_path / "clean"
    report = generate(clean, Scale(customers=60, skus=8, days=20), bad_rows=False)
    assert report.extra["injected_bad_rows"] == {}
    assert (_read(clean, "orders")["unit_price"].cast(pl.Float64) > 0).all()


def test_scale_knob_changes_sizes(tmp_path: Path) -> None:
    few = generate(tmp_path / "few", Scale(customers=80, skus=10, days=21, warehouses=1, competitors=1))
    many = generate(tmp_path / "many", Scale(customers=400, skus=30, days=21, warehouses=3, competitors=3))
    assert few.rows_landed["products"] == 10 and many.rows_landed["products"] == 30
    assert few.rows_landed["customers"] == 80 and many.rows_landed["customers"] == 400
    assert few.rows_landed["inventory"] == 10 * 1 * 21 and many.rows_landed["inventory"] == 30 * 3 * 21
    assert many.rows_landed["orders"] > 2 * few.rows_landed["orders"]
    assert many.rows_landed["traffic"] > 2 * few.rows_landed["traffic"]
    assert few.extra["scale"] == "custom" and few.extra["scale_params"]["skus"] == 10
    sizes = [SCALES[s] for s in ("tiny", "small", "medium", "large")]
    assert all(a.customers < b.customers and a.skus < b.skus for a, b in zip(sizes, sizes[1:], strict=False))
    # Every preset ends in the past: ingestion quarantines rows after today as future_timestamp.
    assert all(sc.end_date < date.today() for sc in SCALES.values()), {n: sc.end_date for n, sc in SCALES.items()}
    with pytest.raises(ValueError, match="unknown scale"):
        generate(tmp_path / "x", "huge")


def test_purchase_events_reference_existing_orders(tiny: Path) -> None:
    traffic = _read(tiny, "traffic")
    orders = _read(tiny, "orders")
    purchases = traffic.filter(pl.col("event") == "purchase")
    assert purchases.height > 0
    assert purchases["order_id"].null_count() == 0
    assert purchases["order_id"].is_in(orders["order_id"].unique().implode()).all()
    assert (
        traffic.filter(pl.col("event") != "purchase")["order_id"].null_count()
        == traffic.height - purchases.height
    )
    # The purchase comes last in its session, after a cart and a checkout.
    last = traffic.group_by("session_id").agg(
        pl.col("event").sort_by("event_ts").last(), pl.col("event").alias("all")
    )
    bought = last.filter(pl.col("all").list.contains("purchase"))
    assert (bought["event"] == "purchase").all()
    assert bought["all"].list.contains("cart").all() and bought["all"].list.contains("checkout").all()
    customers = set(_read(tiny, "customers")["customer_id"])
    assert set(traffic["customer_id"].drop_nulls()) <= customers


def test_stockouts_exist_and_stock_is_replenished(tiny: Path) -> None:
    inv = (
        _read(tiny, "inventory")
        .with_columns(pl.col("on_hand", "on_order").cast(pl.Int64))
        .sort("sku", "warehouse", "date")
    )
    assert (inv["on_hand"] >= 0).all() and (inv["on_order"] >= 0).all()
    assert (inv["on_hand"] == 0).sum() > 0, "the naive policy should run out of stock sometimes"
    arrivals = inv.with_columns(pl.col("on_hand").diff().over("sku", "warehouse").alias("delta")).filter(
        pl.col("delta") > 0
    )
    assert arrivals.height > 0, "reorders must arrive"
    sim = read_manifest(tiny)["simulation"]
    assert 0.5 < sim["fill_rate"] < 1.0 and sim["lost_order_lines_stockout"] > 0


def test_shipments_and_reviews_follow_orders(tiny: Path) -> None:
    orders = _read(tiny, "orders").filter(pl.col("status").is_not_null())
    status = orders.group_by("order_id").agg(pl.col("status").first())
    shipments = _read(tiny, "shipments")
    assert shipments["order_id"].n_unique() == shipments.height
    shipped = status.join(shipments, on="order_id", how="inner")
    assert (shipped["status"] != "cancelled").all()
    not_cancelled = status.filter(pl.col("status") != "cancelled").height
    assert shipments.height == not_cancelled - read_manifest(tiny)["simulation"]["orders_not_yet_shipped"]
    ts = shipments.with_columns(pl.col("shipped_ts", "promised_ts", "delivered_ts").str.to_datetime())
    assert (ts["promised_ts"] > ts["shipped_ts"]).all()
    assert ts.filter(pl.col("delivered_ts") <= pl.col("shipped_ts")).height == 0
    assert set(shipments["mode"]) <= {"road", "rail", "sea", "air"} and shipments["carrier"].n_unique() >= 3
    assert set(shipments["packaging"]) == {"corrugated_board", "ldpe_film"}
    assert (shipments["weight_kg"].cast(pl.Float64) > 0).all() and (
        shipments["distance_km"].cast(pl.Float64) > 0
    ).all()
    reviews = _read(tiny, "reviews").join(ts.select("order_id", "delivered_ts"), on="order_id", how="left")
    assert reviews["delivered_ts"].null_count() == 0, "reviews come from delivered shipments"
    assert (reviews["created_ts"].str.to_datetime() > reviews["delivered_ts"]).all()
    stars = reviews.filter(pl.col("scale") == "stars_1_5")["score"].cast(pl.Int64)
    assert stars.is_between(1, 5).all() and stars.n_unique() == 5
    surveys = reviews.filter(pl.col("scale") == "nps_0_10")["score"].cast(pl.Int64)
    assert surveys.len() > 0 and surveys.is_between(0, 10).all()


def test_small_shop_is_realistic(small: Path, small_report: dict) -> None:
    report = small_report
    table = format_realism_report(report)
    print(table)
    assert set(report) >= {
        "one_order_customers_share",
        "top10pct_customers_revenue_share",
        "median_sku_zero_sale_days_share",
        "cancelled_lines_share",
        "five_star_share",
        "one_star_share",
        "late_deliveries_share",
        "star_nps_gap_on_time_vs_late",
        "session_conversion",
    }
    off = {k: (r["value"], r["aim"]) for k, r in report.items() if not r["in_range"]}
    assert not off, f"outside the realism aims:\n{table}"
    lines = read_manifest(small)["rows_landed"]["orders"]
    assert 150_000 <= lines <= 250_000


def test_small_shop_has_calendar_effects_and_sku_shapes(small: Path, small_report: dict) -> None:
    manifest = json.loads((small / MANIFEST_NAME).read_text())
    events = manifest["events"]
    spring = {e["date"] for e in events if e["event"] == "spring_festival"}
    assert spring == {"2024-02-10", "2025-01-29"}  # from holidays.China
    assert {"618", "double_11", "double_12", "storm"} <= {e["event"] for e in events}
    orders = (
        _read(small, "orders")
        .filter(pl.col("status").is_not_null() & ~pl.col("order_ts").str.starts_with("2099"))
        .with_columns(
            pl.col("order_ts").str.to_datetime(),
            pl.col("discount", "unit_price").cast(pl.Float64),
            pl.col("quantity").cast(pl.Int64),
        )
    )
    daily = orders.group_by(pl.col("order_ts").dt.date().alias("day")).agg(
        pl.len().alias("lines"), (pl.col("discount") > 0).mean().alias("discounted")
    )
    median = daily["lines"].median()

    def on(day: date) -> dict:
        return daily.filter(pl.col("day") == day).row(0, named=True)

    assert on(date(2024, 11, 11))["lines"] > 2.5 * median and on(date(2024, 6, 18))["lines"] > 1.8 * median
    assert on(date(2024, 11, 11))["discounted"] > 0.5 > 0.15 > on(date(2024, 9, 10))["discounted"]
    festival = daily.filter(pl.col("day").is_between(date(2024, 2, 10), date(2024, 2, 16)))["lines"].mean()
    before = daily.filter(pl.col("day").is_between(date(2024, 1, 20), date(2024, 2, 3)))["lines"].mean()
    assert festival < 0.8 * median < before
    weekday = (
        daily.group_by(pl.col("day").dt.weekday().alias("wd")).agg(pl.col("lines").mean()).sort("wd")["lines"]
    )
    assert weekday[5] + weekday[6] > 1.1 * (weekday[1] + weekday[2])  # Sat+Sun vs Tue+Wed
    # Trending SKUs: some sell far more in the last quarter than in the first, some far less.
    units = orders.group_by("sku").agg(
        pl.col("quantity").filter(pl.col("order_ts") < pl.datetime(2024, 4, 1)).sum().alias("first"),
        pl.col("quantity").filter(pl.col("order_ts") >= pl.datetime(2025, 10, 1)).sum().alias("last"),
    )
    assert units.filter(pl.col("last") > 2 * pl.col("first") + 5).height >= 5
    assert units.filter(pl.col("first") > 2 * pl.col("last") + 5).height >= 5
    classes = small_report["median_sku_zero_sale_days_share"]["detail"]["demand_classes"]
    assert classes["smooth"] > 0 and classes["intermittent"] + classes["lumpy"] > 0
