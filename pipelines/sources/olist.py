"""Olist Brazilian marketplace (public Kaggle schema) -> canonical orders, customers, products, shipments, reviews.

Mapping decisions (full table in docs/sources.md):
- orders: one landed line per Olist order-item line (each unit is its own line in Olist; quantity 1,
  line_no = order_item_id), so every line stays traceable to its source row and sum(quantity) is demand.
  customer_id = customer_unique_id (the person; Olist's customer_id is per order). Status:
  delivered/shipped/invoiced/processing/approved/created -> completed, canceled/unavailable -> cancelled.
  Orders without any item line are routed out (`order_without_items`).
- customers: one row per customer_unique_id; further rows of the same person are routed out
  (`same_person_as_earlier_row`); region = state.
- products: category translated to English (Portuguese name kept when untranslated, `unknown` when empty),
  weight from product_weight_g, list_price = median item price, unit_cost = 60% of it (estimate), supplier
  = the seller with most lines, lead_time_days = 14 (default).
- shipments: one per order with a carrier date. Distance = great-circle (haversine) km between the first
  seller's and the customer's ZIP-prefix point (the mean of that prefix's geolocation points, after dropping
  points outside Brazil's bounding box); a prefix missing from the geolocation file falls back to the mean
  of its state's points; floor 1 km (same-prefix deliveries still travel). Packaging: corrugated board,
  estimated from each item's box surface (0.55 kg/m2 single-wall board; 0.15 kg when dimensions are
  missing).
- reviews: 1-5 stars as scale stars_1_5; text = title and message; a repeated review_id is quarantined
  (`duplicate_review_id`, the first occurrence lands).
Payments are not read: vouchers are a payment means, not a line discount.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipelines.sources.base import LandingReport
from pipelines.sources.encoding import FILE_COLUMN, ROW_COLUMN, read_csv_strings
from pipelines.sources.registry import (
    DEFAULT_LEAD_TIME_DAYS,
    LandingWriter,
    estimated_unit_cost,
    first_rule,
    split_by_rule,
)

SOURCE = "olist"
CURRENCY = "BRL"
TIMEZONE = "America/Sao_Paulo"
CARRIER = "olist_logistics"
TS_FORMAT = "%Y-%m-%d %H:%M:%S"

FILES = {
    "orders": "olist_orders_dataset.csv",
    "items": "olist_order_items_dataset.csv",
    "customers": "olist_customers_dataset.csv",
    "products": "olist_products_dataset.csv",
    "reviews": "olist_order_reviews_dataset.csv",
    "sellers": "olist_sellers_dataset.csv",
    "sellers_full": "olist_sellers_dataset_full.csv",
    "geolocation": "olist_geolocation_dataset.csv",
    "translation": "product_category_name_translation.csv",
}
REQUIRED = ("orders", "items", "customers", "products")

STATUS_MAP = {
    "delivered": "completed",
    "shipped": "completed",
    "invoiced": "completed",
    "processing": "completed",
    "approved": "completed",
    "created": "completed",
    "canceled": "cancelled",
    "unavailable": "cancelled",
}
# Brazil's bounding box: the public geolocation file has a few points abroad (bad geocodes).
BRAZIL_LAT = (-34.0, 5.5)
BRAZIL_LNG = (-74.0, -34.0)
BOARD_KG_PER_M2 = 0.55  # single-wall corrugated board, typical 0.45-0.65 kg/m2
DEFAULT_BOX_KG = 0.15  # a small box, when product dimensions are missing
MIN_DISTANCE_KM = 1.0
EARTH_RADIUS_KM = 6371.0088


def _ts(col: str) -> pl.Expr:
    return pl.col(col).str.strip_chars().str.strptime(pl.Datetime("us"), TS_FORMAT, strict=False)


def _zip(col: str) -> pl.Expr:
    """ZIP prefixes stay 5-character strings; re-pad in case a spreadsheet round-trip dropped leading zeros."""
    return pl.col(col).str.strip_chars().str.zfill(5)


def _read(input_dir: Path, key: str, encoding: str | None) -> pl.DataFrame | None:
    path = input_dir / FILES[key]
    if not path.exists():
        if key in REQUIRED:
            raise FileNotFoundError(f"{path}: required Olist file missing")
        return None
    return read_csv_strings(path, encoding)


def land(input_dir: Path, landing_dir: Path, encoding: str | None = None) -> LandingReport:
    """Land an Olist export folder (public file names) into canonical tables."""
    input_dir = Path(input_dir)
    report = LandingReport(source=SOURCE, currency=CURRENCY, timezone=TIMEZONE, input=str(input_dir))
    raw = {key: _read(input_dir, key, encoding) for key in FILES}
    writer = LandingWriter(landing_dir, report)

    customers_raw = raw["customers"]
    assert customers_raw is not None
    person = customers_raw.select(
        "customer_id",
        person_id=pl.col("customer_unique_id").str.strip_chars(),
        state=pl.col("customer_state").str.strip_chars().str.to_uppercase(),
        zip=_zip("customer_zip_code_prefix"),
    ).unique("customer_id", keep="first", maintain_order=True)

    orders_raw = raw["orders"]
    assert orders_raw is not None
    orders = orders_raw.with_columns(
        purchase_ts=_ts("order_purchase_timestamp"),
        carrier_ts=_ts("order_delivered_carrier_date"),
        delivered_ts=_ts("order_delivered_customer_date"),
        promised_ts=_ts("order_estimated_delivery_date"),
        status_raw=pl.col("order_status").str.strip_chars().str.to_lowercase(),
    ).join(person, on="customer_id", how="left")
    # A repeated order_id header would multiply its lines: keep the first, quarantine the rest (shipments
    # is the table with one row per order header).
    dup_orders = orders.filter(pl.int_range(pl.len()).over("order_id") > 0)
    orders = orders.filter(pl.int_range(pl.len()).over("order_id") == 0)
    report.rows_in["shipments"] = orders_raw.height
    writer.quarantine(
        "shipments",
        dup_orders.with_columns(
            rule=pl.lit("duplicate_order_id"), detail=pl.lit("order_id repeated in orders file")
        ),
        ORDER_RAW,
    )

    items = _land_orders(writer, raw, orders)
    _land_customers(writer, customers_raw, orders)
    _land_products(writer, raw, items)
    if raw["geolocation"] is not None and (raw["sellers"] is not None or raw["sellers_full"] is not None):
        _land_shipments(writer, raw, orders, items)
    else:
        report.notes.append("shipments not landed: geolocation or sellers file missing")
    if raw["reviews"] is not None:
        _land_reviews(writer, raw["reviews"], orders)
    report.notes.append(
        "one order line per Olist item line (quantity 1); customer_id = customer_unique_id; distances are "
        "great-circle km between ZIP-prefix centroids (state centroid fallback, 1 km floor); unit_cost = 60% "
        "of median price; lead_time_days defaulted to 14"
    )
    return writer.finish()


ORDER_RAW = ["order_id", "customer_id", "order_status", "order_purchase_timestamp"]
ITEM_RAW = [
    "order_id",
    "order_item_id",
    "product_id",
    "seller_id",
    "shipping_limit_date",
    "price",
    "freight_value",
]


def _land_orders(
    writer: LandingWriter, raw: dict[str, pl.DataFrame | None], orders: pl.DataFrame
) -> pl.DataFrame:
    """Order lines from item lines; returns the landed item lines (typed) for products and shipments."""
    items_raw = raw["items"]
    assert items_raw is not None
    items = items_raw.with_columns(
        line_no=pl.col("order_item_id").str.strip_chars().cast(pl.Int64, strict=False),
        unit_price=pl.col("price").str.strip_chars().cast(pl.Float64, strict=False),
        freight=pl.col("freight_value").str.strip_chars().cast(pl.Float64, strict=False),
        sku=pl.col("product_id").str.strip_chars(),
        seller_id_clean=pl.col("seller_id").str.strip_chars(),
    ).join(
        orders.select("order_id", "purchase_ts", "status_raw", "person_id", "state", _known=pl.lit(True)),
        on="order_id",
        how="left",
    )
    orders_without_items = orders.join(items_raw.select("order_id").unique(), on="order_id", how="anti")
    writer.report.rows_in["orders"] = items.height + orders_without_items.height

    items = items.with_columns(
        first_rule(
            (
                pl.col("_known").is_null(),
                "unknown_order",
                pl.format("order_id {} not in orders file", pl.col("order_id")),
            ),
            (pl.col("sku").is_null(), "missing_product", "product_id empty"),
            (
                pl.col("line_no").is_null(),
                "unparseable_line_no",
                pl.col("order_item_id").fill_null("<empty>"),
            ),
            (pl.col("unit_price").is_null(), "unparseable_price", pl.col("price").fill_null("<empty>")),
            (pl.col("unit_price") <= 0, "price_positive", pl.format("price {} <= 0", pl.col("price"))),
            (pl.col("purchase_ts").is_null(), "unparseable_timestamp", "order_purchase_timestamp unreadable"),
            (
                ~pl.col("status_raw").is_in(list(STATUS_MAP)),
                "unknown_status",
                pl.col("status_raw").fill_null("<empty>"),
            ),
        )
    )
    bad, items = split_by_rule(items)
    writer.quarantine("orders", bad, ITEM_RAW)
    writer.route_out(
        "orders",
        orders_without_items.with_columns(
            rule=pl.lit("order_without_items"),
            detail=pl.format("status {}: no item lines", pl.col("order_status")),
        ),
        ORDER_RAW,
    )
    lines = items.with_columns(
        customer_id=pl.col("person_id"),
        quantity=pl.lit(1),
        currency=pl.lit(CURRENCY),
        discount=pl.lit(0.0),
        order_ts=pl.col("purchase_ts"),
        channel=pl.lit("marketplace"),
        region=pl.col("state"),
        status=pl.col("status_raw").replace_strict(STATUS_MAP, default=None),
    )
    writer.write("orders", lines)
    return lines


def _land_customers(writer: LandingWriter, customers_raw: pl.DataFrame, orders: pl.DataFrame) -> None:
    """One row per person (customer_unique_id); first_seen = first purchase date of any of their orders."""
    writer.report.rows_in["customers"] = customers_raw.height
    raw_cols = [c for c in customers_raw.columns if c not in (FILE_COLUMN, ROW_COLUMN)]
    rows = customers_raw.with_columns(
        person_id=pl.col("customer_unique_id").str.strip_chars(),
        region=pl.col("customer_state").str.strip_chars().str.to_uppercase(),
    ).join(orders.group_by("customer_id").agg(pl.col("purchase_ts").min()), on="customer_id", how="left")
    missing = rows.filter(pl.col("person_id").is_null()).with_columns(
        rule=pl.lit("missing_customer_unique_id"), detail=pl.lit("customer_unique_id empty")
    )
    writer.quarantine("customers", missing, raw_cols)
    rows = rows.filter(pl.col("person_id").is_not_null()).sort(
        ["person_id", "purchase_ts", ROW_COLUMN], nulls_last=True
    )
    rank = pl.int_range(pl.len()).over("person_id")
    landed = rows.filter(rank == 0).select(
        customer_id=pl.col("person_id"), first_seen=pl.col("purchase_ts").dt.date(), region=pl.col("region")
    )
    writer.write("customers", landed)
    repeats = rows.filter(rank > 0).with_columns(
        rule=pl.lit("same_person_as_earlier_row"),
        detail=pl.format("customer_unique_id {} already landed", pl.col("person_id")),
    )
    writer.route_out("customers", repeats, raw_cols)


def _land_products(writer: LandingWriter, raw: dict[str, pl.DataFrame | None], items: pl.DataFrame) -> None:
    products_raw = raw["products"]
    assert products_raw is not None
    writer.report.rows_in["products"] = products_raw.height
    raw_cols = [c for c in products_raw.columns if c not in (FILE_COLUMN, ROW_COLUMN)]
    translation = raw["translation"]
    if translation is not None:
        translation = translation.select(
            pl.col("product_category_name").str.strip_chars(),
            pl.col("product_category_name_english").str.strip_chars().alias("category_en"),
        ).unique("product_category_name", keep="first")
    else:
        translation = pl.DataFrame(schema={"product_category_name": pl.String, "category_en": pl.String})
    supplier = (
        items.group_by(["sku", "seller_id_clean"])
        .len()
        .sort(["sku", "len", "seller_id_clean"], descending=[False, True, False])
        .group_by("sku", maintain_order=True)
        .agg(supplier=pl.col("seller_id_clean").first())
    )
    prices = items.group_by("sku").agg(list_price=pl.col("unit_price").median().round(2))
    products = (
        products_raw.with_columns(
            sku=pl.col("product_id").str.strip_chars(),
            product_category_name=pl.col("product_category_name").str.strip_chars(),
            weight_kg=(
                pl.col("product_weight_g").str.strip_chars().cast(pl.Float64, strict=False) / 1000.0
            ).round(4),
        )
        .join(translation, on="product_category_name", how="left")
        .join(prices, on="sku", how="left")
        .join(supplier, on="sku", how="left")
        .with_columns(
            category=pl.coalesce("category_en", "product_category_name", pl.lit("unknown")),
            unit_cost=estimated_unit_cost(pl.col("list_price")),
            lead_time_days=pl.lit(DEFAULT_LEAD_TIME_DAYS),
        )
    )
    products = products.with_columns(
        first_rule(
            (pl.col("sku").is_null(), "missing_product_id", "product_id empty"),
            (
                pl.int_range(pl.len()).over("sku") > 0,
                "duplicate_product_id",
                pl.format("product_id {} repeated", pl.col("sku")),
            ),
        )
    )
    bad, products = split_by_rule(products)
    writer.quarantine("products", bad, raw_cols)
    writer.write("products", products)


def _haversine_km(lat1: pl.Expr, lng1: pl.Expr, lat2: pl.Expr, lng2: pl.Expr) -> pl.Expr:
    """Great-circle distance (written as an expression: vectorised, no per-row Python)."""
    p1, p2 = lat1.radians(), lat2.radians()
    dphi = (lat2 - lat1).radians()
    dlmb = (lng2 - lng1).radians()
    a = (dphi / 2).sin().pow(2) + p1.cos() * p2.cos() * (dlmb / 2).sin().pow(2)
    return 2 * EARTH_RADIUS_KM * a.sqrt().arcsin()


def _geo_points(geo_raw: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(mean point per ZIP prefix, mean point per state) from points inside Brazil."""
    geo = geo_raw.select(
        zip=_zip("geolocation_zip_code_prefix"),
        state=pl.col("geolocation_state").str.strip_chars().str.to_uppercase(),
        lat=pl.col("geolocation_lat").cast(pl.Float64, strict=False),
        lng=pl.col("geolocation_lng").cast(pl.Float64, strict=False),
    ).filter(
        pl.col("lat").is_between(*BRAZIL_LAT)
        & pl.col("lng").is_between(*BRAZIL_LNG)
        & pl.col("zip").is_not_null()
    )
    by_zip = geo.group_by("zip").agg(pl.col("lat").mean(), pl.col("lng").mean()).sort("zip")
    by_state = (
        geo.filter(pl.col("state").is_not_null())
        .group_by("state")
        .agg(pl.col("lat").mean().alias("state_lat"), pl.col("lng").mean().alias("state_lng"))
        .sort("state")
    )
    return by_zip, by_state


def _locate(frame: pl.DataFrame, prefix: str, by_zip: pl.DataFrame, by_state: pl.DataFrame) -> pl.DataFrame:
    """Add <prefix>_lat/_lng/_geo (zip|state|None) from `<prefix>_zip` and `<prefix>_state`."""
    return (
        frame.join(by_zip, left_on=f"{prefix}_zip", right_on="zip", how="left")
        .join(by_state, left_on=f"{prefix}_state", right_on="state", how="left")
        .with_columns(
            pl.when(pl.col("lat").is_not_null())
            .then(pl.lit("zip"))
            .when(pl.col("state_lat").is_not_null())
            .then(pl.lit("state"))
            .alias(f"{prefix}_geo"),
            pl.coalesce("lat", "state_lat").alias(f"{prefix}_lat"),
            pl.coalesce("lng", "state_lng").alias(f"{prefix}_lng"),
        )
        .drop("lat", "lng", "state_lat", "state_lng")
    )


def _land_shipments(
    writer: LandingWriter, raw: dict[str, pl.DataFrame | None], orders: pl.DataFrame, items: pl.DataFrame
) -> None:
    """One shipment per order with a carrier date; the first seller ships it."""
    geo_raw = raw["geolocation"]
    assert geo_raw is not None
    by_zip, by_state = _geo_points(geo_raw)
    sellers = pl.concat(
        [
            s.select(
                seller_id=pl.col("seller_id").str.strip_chars(),
                seller_zip=_zip("seller_zip_code_prefix"),
                seller_state=pl.col("seller_state").str.strip_chars().str.to_uppercase(),
            )
            for s in (raw["sellers"], raw["sellers_full"])
            if s is not None
        ]
    ).unique("seller_id", keep="first", maintain_order=True)

    products_raw = raw["products"]
    assert products_raw is not None
    dims = products_raw.select(
        sku=pl.col("product_id").str.strip_chars(),
        weight_g=pl.col("product_weight_g").cast(pl.Float64, strict=False),
        l=pl.col("product_length_cm").cast(pl.Float64, strict=False),
        h=pl.col("product_height_cm").cast(pl.Float64, strict=False),
        w=pl.col("product_width_cm").cast(pl.Float64, strict=False),
    ).unique("sku", keep="first")
    box_kg = pl.coalesce(
        2
        * (pl.col("l") * pl.col("w") + pl.col("l") * pl.col("h") + pl.col("w") * pl.col("h"))
        / 10_000
        * BOARD_KG_PER_M2,
        pl.lit(DEFAULT_BOX_KG),
    )
    per_order = (
        items.join(dims, on="sku", how="left")
        .sort(["order_id", "line_no"])
        .group_by("order_id", maintain_order=True)
        .agg(
            seller_id=pl.col("seller_id_clean").first(),
            weight_kg=(pl.col("weight_g").sum() / 1000.0).round(3),
            weight_known=pl.col("weight_g").is_not_null().sum(),
            packaging_kg=box_kg.sum().round(3),
            cost=pl.col("freight").sum(),
        )
    )
    ship = (
        orders.join(per_order, on="order_id", how="left")
        .join(sellers, on="seller_id", how="left")
        .rename({"zip": "customer_zip", "state": "customer_state"})
    )
    ship = _locate(_locate(ship, "seller", by_zip, by_state), "customer", by_zip, by_state)
    ship = ship.with_columns(
        distance_km=pl.max_horizontal(
            _haversine_km(
                pl.col("seller_lat"), pl.col("seller_lng"), pl.col("customer_lat"), pl.col("customer_lng")
            ),
            pl.lit(MIN_DISTANCE_KM),
        ).round(3)
    )
    not_shipped = ship.filter(pl.col("carrier_ts").is_null()).with_columns(
        rule=pl.lit("not_shipped"), detail=pl.format("status {}: no carrier date", pl.col("order_status"))
    )
    writer.route_out("shipments", not_shipped, ORDER_RAW)
    ship = ship.filter(pl.col("carrier_ts").is_not_null()).with_columns(
        first_rule(
            (pl.col("seller_id").is_null(), "no_items", "shipped order without item lines"),
            (
                pl.col("seller_lat").is_null() | pl.col("customer_lat").is_null(),
                "geolocation_missing",
                pl.format(
                    "seller ZIP {} / {}, customer ZIP {} / {}: no point for ZIP prefix or state",
                    pl.col("seller_zip").fill_null("?"),
                    pl.col("seller_state").fill_null("?"),
                    pl.col("customer_zip").fill_null("?"),
                    pl.col("customer_state").fill_null("?"),
                ),
            ),
            (pl.col("weight_known") == 0, "weight_missing", "no item has a product weight"),
        )
    )
    bad, ship = split_by_rule(ship)
    writer.quarantine("shipments", bad, ORDER_RAW)
    ship = ship.with_columns(
        shipment_id=pl.col("order_id"),
        carrier=pl.lit(CARRIER),
        mode=pl.lit("road"),
        origin=pl.col("seller_state"),
        destination_region=pl.col("customer_state"),
        packaging=pl.lit("corrugated_board"),
        shipped_ts=pl.col("carrier_ts"),
        origin_zip_prefix=pl.col("seller_zip"),
        destination_zip_prefix=pl.col("customer_zip"),
        geo_resolution=pl.concat_str([pl.col("seller_geo"), pl.col("customer_geo")], separator="/"),
    )
    writer.write("shipments", ship, extra=["origin_zip_prefix", "destination_zip_prefix", "geo_resolution"])
    fallback = ship.filter(pl.col("geo_resolution") != "zip/zip").height
    writer.report.extra["shipments_state_centroid_fallback"] = fallback


REVIEW_RAW = [
    "review_id",
    "order_id",
    "review_score",
    "review_comment_title",
    "review_comment_message",
    "review_creation_date",
    "review_answer_timestamp",
]


def _land_reviews(writer: LandingWriter, reviews_raw: pl.DataFrame, orders: pl.DataFrame) -> None:
    writer.report.rows_in["reviews"] = reviews_raw.height
    reviews = reviews_raw.with_columns(
        review_id=pl.col("review_id").str.strip_chars(),
        score=pl.col("review_score").str.strip_chars().cast(pl.Int64, strict=False),
        created_ts=_ts("review_creation_date"),
        text=pl.concat_str(
            [
                pl.col("review_comment_title").str.strip_chars(),
                pl.col("review_comment_message").str.strip_chars(),
            ],
            separator=": ",
            ignore_nulls=True,
        ),
    ).join(
        orders.select("order_id", customer_id=pl.col("person_id"), _known=pl.lit(True)),
        on="order_id",
        how="left",
    )
    first_at = pl.col(ROW_COLUMN).first().over("review_id")
    reviews = reviews.with_columns(
        first_rule(
            (pl.col("review_id").is_null(), "missing_review_id", "review_id empty"),
            (
                pl.int_range(pl.len()).over("review_id") > 0,
                "duplicate_review_id",
                pl.format("review_id {} already landed from row {}", pl.col("review_id"), first_at),
            ),
            (~pl.col("score").is_between(1, 5), "score_range", pl.col("review_score").fill_null("<empty>")),
            (pl.col("score").is_null(), "score_range", pl.col("review_score").fill_null("<empty>")),
            (pl.col("created_ts").is_null(), "unparseable_timestamp", "review_creation_date unreadable"),
            (
                pl.col("_known").is_null(),
                "unknown_order",
                pl.format("order_id {} not in orders file", pl.col("order_id")),
            ),
        ),
        scale=pl.lit("stars_1_5"),
        text=pl.when(pl.col("text") == "").then(None).otherwise(pl.col("text")),
    )
    bad, reviews = split_by_rule(reviews)
    writer.quarantine("reviews", bad, REVIEW_RAW)
    writer.write("reviews", reviews)
