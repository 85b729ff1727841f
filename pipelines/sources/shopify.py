"""Shopify orders export (Admin > Orders > Export, CSV) -> canonical orders, customers, products.

The export has one row per line item; order-level fields (Email, Financial Status, Currency, Discount Amount,
Created at, addresses, Cancelled at, ...) are filled on the first row of an order only, so they are
forward-filled within each order `Name` before mapping.

Mapping decisions (full table in docs/sources.md):
- order_id = Name (`#1001`), line_no = position of the line in its order, quantity/unit_price from the
  Lineitem columns, currency from Currency, order_ts = Created at as local wall-clock time (the export's
  offset is the shop's timezone; the report names it as Etc/GMT-h when all rows share one whole-hour offset).
- discount: the order's Discount Amount spread over its landed lines in proportion to line value, with
  cumulative rounding so the cents add up exactly.
- status: Cancelled at set or Financial Status voided -> cancelled; refunded -> returned; everything else
  (paid, pending, authorized, partially_paid, partially_refunded) -> completed.
- customer_id = `shopify-` + the first 16 hex characters of SHA-256(lower(trim(email))): a stable surrogate
  that does not expose the address. The lower-cased email itself goes to the customers file's `email`
  column, which ingestion hashes; orders without an email are guest orders (customer_id empty).
- region = "<Shipping Country>-<Shipping Province>" (billing address when shipping is empty).
- products: sku = Lineitem sku (a line without a SKU gets `shopify-item-` + 12 hex of SHA-256(name));
  name = most frequent line name; supplier = Vendor; category `unknown` (the export has no product type);
  list_price = median price; unit_cost = 60% of it (estimate); lead_time_days = 14 (default).
Shipping, Taxes and Total are order-level amounts outside the line grain: not landed; Subtotal is used to
check the line values (mismatches are counted in the manifest).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import polars as pl

from pipelines.sources.base import LandingReport
from pipelines.sources.encoding import FILE_COLUMN, ROW_COLUMN, SourceDecodeError, read_csv_strings
from pipelines.sources.registry import (
    DEFAULT_LEAD_TIME_DAYS,
    LandingWriter,
    estimated_unit_cost,
    first_rule,
    hash_text,
    split_by_rule,
)

SOURCE = "shopify"
ORDER_LEVEL = [
    "Email",
    "Financial Status",
    "Currency",
    "Subtotal",
    "Discount Amount",
    "Created at",
    "Billing Province",
    "Billing Country",
    "Shipping Province",
    "Shipping Country",
    "Cancelled at",
]
LINE_COLUMNS = ["Lineitem quantity", "Lineitem name", "Lineitem price", "Lineitem sku", "Vendor"]
REQUIRED = ["Name", "Created at", "Currency", *LINE_COLUMNS[:3]]
RAW_COLUMNS = ["Name", *ORDER_LEVEL, *LINE_COLUMNS]


def _input_files(input_path: Path) -> list[Path]:
    if input_path.is_file():
        return [input_path]
    files = sorted(
        p for p in input_path.iterdir() if p.is_file() and p.name.lower().endswith((".csv", ".csv.gz"))
    )
    if not files:
        raise FileNotFoundError(f"{input_path}: no Shopify orders export (.csv) found")
    return files


def _read(input_path: Path, encoding: str | None) -> pl.DataFrame:
    frames = []
    for path in _input_files(input_path):
        frame = read_csv_strings(path, encoding)
        missing = [c for c in REQUIRED if c not in frame.columns]
        if missing:
            raise SourceDecodeError(f"{path}: not a Shopify orders export, missing columns {missing}")
        for col in RAW_COLUMNS:
            if col not in frame.columns:
                frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(col))
        frames.append(frame.select([*RAW_COLUMNS, FILE_COLUMN, ROW_COLUMN]))
    return pl.concat(frames)


def _o(column: str) -> pl.Expr:
    """An order-level column forward-filled over the lines of its order."""
    return pl.col(f"_o_{column}")


def _timezone_name(offsets: list[str]) -> tuple[str, str | None]:
    """IANA name for the export's offset (Etc/GMT-8 is UTC+08:00: the Etc sign is inverted), and a note."""
    counts = Counter(o for o in offsets if o)
    if not counts:
        return "UTC", "Created at has no UTC offset: timestamps taken as UTC"
    offset, _ = counts.most_common(1)[0]
    sign, hours, minutes = offset[0], int(offset[1:3]), int(offset[3:5])
    note = (
        None
        if len(counts) == 1
        else f"several UTC offsets {sorted(counts)} (daylight saving): wall-clock kept"
    )
    if minutes or hours == 0:
        return ("UTC" if hours == 0 and not minutes else f"UTC{offset}"), note
    return f"Etc/GMT{'-' if sign == '+' else '+'}{hours}", note


def land(input_dir: Path, landing_dir: Path, encoding: str | None = None) -> LandingReport:
    """Land a Shopify orders export (a file or a folder of them)."""
    rows = _read(Path(input_dir), encoding)
    created = _o("Created at")
    # Forward-filled copies (`_o_<column>`) so that side files keep the row exactly as exported.
    rows = rows.with_columns(
        [
            pl.col(c)
            .str.strip_chars()
            .fill_null(strategy="forward")
            .over([FILE_COLUMN, "Name"])
            .alias(f"_o_{c}")
            for c in ORDER_LEVEL
        ]
    ).with_columns(
        order_id=pl.col("Name").str.strip_chars(),
        line_no=(pl.int_range(pl.len()).over([FILE_COLUMN, "Name"]) + 1).cast(pl.Int64),
        order_ts=created.str.slice(0, 19).str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False),
        utc_offset=created.str.extract(r"([+-]\d{4})$"),
        quantity=pl.col("Lineitem quantity").str.strip_chars().cast(pl.Int64, strict=False),
        unit_price=pl.col("Lineitem price").str.strip_chars().cast(pl.Float64, strict=False),
        email=_o("Email").str.strip_chars().str.to_lowercase(),
        line_name=pl.col("Lineitem name").str.strip_chars(),
        currency=_o("Currency").str.strip_chars().str.to_uppercase(),
    )
    rows = rows.with_columns(
        sku=pl.coalesce(
            pl.col("Lineitem sku").str.strip_chars(),
            pl.lit("shopify-item-") + hash_text(pl.col("line_name"), 12),
        ),
        customer_id=pl.lit("shopify-") + hash_text(pl.col("email"), 16),
        region=pl.concat_str(
            [
                pl.coalesce(_o("Shipping Country"), _o("Billing Country")),
                pl.when(_o("Shipping Country").is_not_null())
                .then(_o("Shipping Province"))
                .otherwise(_o("Billing Province")),
            ],
            separator="-",
            ignore_nulls=True,
        ),
        status=pl.when(
            _o("Cancelled at").is_not_null() | (_o("Financial Status").str.to_lowercase() == "voided")
        )
        .then(pl.lit("cancelled"))
        .when(_o("Financial Status").str.to_lowercase() == "refunded")
        .then(pl.lit("returned"))
        .otherwise(pl.lit("completed")),
    )
    currencies = Counter(c for c in rows.get_column("currency").to_list() if c)
    tz, tz_note = _timezone_name(rows.get_column("utc_offset").to_list())
    report = LandingReport(
        source=SOURCE,
        currency=currencies.most_common(1)[0][0] if currencies else "",
        timezone=tz,
        input=str(input_dir),
    )
    if tz_note:
        report.notes.append(tz_note)
    if len(currencies) > 1:
        report.notes.append(f"several currencies in the export: {dict(currencies)}; each line keeps its own")
    report.rows_in["orders"] = rows.height
    writer = LandingWriter(landing_dir, report)

    rows = rows.with_columns(
        first_rule(
            (pl.col("order_id").is_null(), "missing_order_name", "Name empty"),
            (pl.col("order_ts").is_null(), "unparseable_timestamp", _o("Created at").fill_null("<empty>")),
            (pl.col("currency").is_null(), "missing_currency", "Currency empty on the order's first row"),
            (
                pl.col("quantity").is_null(),
                "unparseable_quantity",
                pl.col("Lineitem quantity").fill_null("<empty>"),
            ),
            (
                pl.col("quantity") <= 0,
                "quantity_positive",
                pl.format("Lineitem quantity {}", pl.col("quantity")),
            ),
            (
                pl.col("unit_price").is_null(),
                "unparseable_price",
                pl.col("Lineitem price").fill_null("<empty>"),
            ),
            (
                pl.col("unit_price") <= 0,
                "price_positive",
                pl.format("Lineitem price {} <= 0", pl.col("Lineitem price")),
            ),
        )
    )
    bad, lines = split_by_rule(rows)
    writer.quarantine("orders", bad, RAW_COLUMNS)

    # Spread the order discount over lines by value with cumulative rounding (sums exactly to the cent).
    value = pl.col("quantity") * pl.col("unit_price")
    total = value.sum().over(FILE_COLUMN, "order_id")
    order_discount = _o("Discount Amount").cast(pl.Float64, strict=False).fill_null(0.0)
    lines = lines.with_columns(
        _cum=(order_discount * value.cum_sum().over(FILE_COLUMN, "order_id") / total).round(2)
    ).with_columns(
        discount=(
            pl.col("_cum") - pl.col("_cum").shift(1, fill_value=0.0).over(FILE_COLUMN, "order_id")
        ).round(2)
    )
    lines = lines.with_columns(
        pl.when(pl.col("email").is_null()).then(None).otherwise(pl.col("customer_id")).alias("customer_id"),
        channel=pl.lit("web"),
    )
    writer.write("orders", lines)

    subtotal_check = (
        rows.filter(_o("Subtotal").is_not_null())
        .group_by(FILE_COLUMN, "order_id")
        .agg(
            lines_value=(pl.col("quantity") * pl.col("unit_price")).sum(),
            discount=_o("Discount Amount").cast(pl.Float64, strict=False).fill_null(0.0).first(),
            subtotal=_o("Subtotal").cast(pl.Float64, strict=False).first(),
        )
        .filter(((pl.col("lines_value") - pl.col("discount")) - pl.col("subtotal")).abs() > 0.005)
    )
    report.extra["orders_subtotal_mismatch"] = subtotal_check.height

    _land_customers(writer, rows, lines)
    _land_products(writer, rows, lines)
    return writer.finish()


def _land_customers(writer: LandingWriter, rows: pl.DataFrame, lines: pl.DataFrame) -> None:
    """One row per email; guests (no email) are not customers. Raw email kept for ingestion to hash."""
    seen = (
        rows.filter(pl.col("email").is_not_null())
        .group_by("email", maintain_order=True)
        .agg(pl.col(FILE_COLUMN).first(), pl.col(ROW_COLUMN).first(), pl.col(RAW_COLUMNS).first())
    )
    writer.report.rows_in["customers"] = seen.height
    landed = (
        lines.filter(pl.col("email").is_not_null())
        .sort(["order_ts", FILE_COLUMN, ROW_COLUMN])
        .group_by("email", maintain_order=True)
        .agg(
            customer_id=pl.col("customer_id").first(),
            first_seen=pl.col("order_ts").first().dt.date(),
            region=pl.col("region").first(),
        )
    )
    writer.write("customers", landed, extra=["email"])
    rest = seen.join(landed.select("email"), on="email", how="anti").with_columns(
        rule=pl.lit("no_landed_order_lines"), detail=pl.lit("every line of this customer was quarantined")
    )
    writer.route_out("customers", rest, RAW_COLUMNS)


def _land_products(writer: LandingWriter, rows: pl.DataFrame, lines: pl.DataFrame) -> None:
    seen = rows.group_by("sku", maintain_order=True).agg(
        pl.col(FILE_COLUMN).first(), pl.col(ROW_COLUMN).first(), pl.col(RAW_COLUMNS).first()
    )
    writer.report.rows_in["products"] = seen.height

    def most_frequent(col: str, alias: str) -> pl.DataFrame:
        return (
            lines.filter(pl.col(col).is_not_null())
            .group_by(["sku", col])
            .len()
            .sort(["sku", "len", col], descending=[False, True, False])
            .group_by("sku", maintain_order=True)
            .agg(pl.col(col).first().alias(alias))
        )

    products = (
        lines.group_by("sku")
        .agg(list_price=pl.col("unit_price").median().round(2))
        .join(most_frequent("line_name", "name"), on="sku", how="left")
        .join(most_frequent("Vendor", "supplier"), on="sku", how="left")
        .with_columns(
            category=pl.lit("unknown"),
            unit_cost=estimated_unit_cost(pl.col("list_price")),
            lead_time_days=pl.lit(DEFAULT_LEAD_TIME_DAYS),
        )
    )
    writer.write("products", products)
    rest = seen.join(products.select("sku"), on="sku", how="anti").with_columns(
        rule=pl.lit("no_valid_sales"), detail=pl.lit("SKU only on quarantined lines")
    )
    writer.route_out("products", rest, RAW_COLUMNS)
