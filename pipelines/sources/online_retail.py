"""UCI Online Retail / Online Retail II -> canonical orders, customers, products.

Input: a folder (or one file) of exports in either layout
    Online Retail:    InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country
    Online Retail II: Invoice,   StockCode, Description, Quantity, InvoiceDate, Price,     Customer ID, Country
as `.csv`, `.csv.gz` or `.xlsx` (every sheet; read with openpyxl in read-only mode).

Mapping decisions (see docs/sources.md for the full table):
- `C` invoices are credit notes for earlier sales: landed with positive quantity and status `returned`, so
  net revenue = completed - returned. `A` invoices (bad-debt adjustments) are routed out.
- Non-product stock codes (postage, fees, manual, discount, samples, vouchers) are routed out of product
  demand with one reason per code family.
- Checks, first failing wins: unparseable field, price_positive (price <= 0: stock adjustments),
  quantity_nonzero, sign mismatches, then duplicate_line (an exact repeat of an earlier line: same 8 fields)
  -> adapter quarantine. line_no is the 1-based position of the line in its invoice in the source, so it is
  stable whatever is filtered out.
- CustomerID float text `17850.0` -> `17850`; lines without a customer land with an empty customer_id.
- Stock codes are trimmed and upper-cased (`85014a` and `85014A` are one product in the catalogue).
- customers: first_seen = first landed invoice date; region = Country of the first landed line.
- products: name = most frequent description; category from a keyword map (else `unknown`); list_price =
  median price of completed lines; unit_cost = 60% of list_price (estimate); weight and supplier unknown;
  lead_time_days = 14 (default).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl

from pipelines.sources.base import LandingReport
from pipelines.sources.encoding import FILE_COLUMN, ROW_COLUMN, SourceDecodeError, read_csv_strings
from pipelines.sources.registry import (
    DEFAULT_LEAD_TIME_DAYS,
    LandingWriter,
    estimated_unit_cost,
    first_rule,
    split_by_rule,
)

SOURCE = "online_retail"
CURRENCY = "GBP"
TIMEZONE = "Europe/London"
RAW_COLUMNS = [
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
]
# Online Retail II and variant spellings -> Online Retail names (compared lower-case without spaces/_).
ALIASES = {
    "invoiceno": "InvoiceNo",
    "invoice": "InvoiceNo",
    "stockcode": "StockCode",
    "description": "Description",
    "quantity": "Quantity",
    "invoicedate": "InvoiceDate",
    "unitprice": "UnitPrice",
    "price": "UnitPrice",
    "customerid": "CustomerID",
    "country": "Country",
}

# Non-product codes -> routed-out reason. Compared after upper-casing.
NON_PRODUCT_CODES = {
    "POST": "postage",
    "DOT": "postage_dotcom",
    "C2": "carriage",
    "M": "manual_adjustment",
    "D": "discount",
    "S": "samples",
    "B": "bad_debt_adjustment",
    "BANK CHARGES": "bank_charges",
    "AMAZONFEE": "amazon_fee",
    "CRUK": "charity_commission",
    "PADS": "placeholder_pads",
}
GIFT_VOUCHER_PREFIX = "GIFT_0001_"  # gift_0001_10 .. gift_0001_50: vouchers sold, not products

# Ordered keyword map on the upper-cased product name: the first matching pattern names the category.
CATEGORY_PATTERNS: list[tuple[str, str]] = [
    ("christmas", r"CHRISTMAS|XMAS|ADVENT|SANTA|REINDEER|SNOWFLAKE|NATIVITY"),
    ("candles_lighting", r"CANDLE|T-LIGHT|TLIGHT|LANTERN|\bLIGHTS?\b|\bLAMP|NIGHT LIGHT|CHANDELIER"),
    ("bags", r"\bBAGS?\b|TOTE|SHOPPER|PURSE|BACKPACK|RUCKSACK"),
    (
        "kitchen_dining",
        r"MUG|\bCUPS?\b|SAUCER|PLATE|BOWL|TEAPOT|\bTEA\b|CAKE|BAKING|\bJARS?\b|LUNCH BOX|KITCHEN|APRON|NAPKIN|"
        r"CUTLERY|SPOON|\bTRAY|\bTINS?\b|BOTTLE|GLASS|COASTER|PLACEMATS?|STRAWS|JUG|BEAKER|EGG|GOBLET|WINE|CHOPSTICK|DOILY|RECIPE",
    ),
    (
        "stationery_gift_wrap",
        r"\bCARDS?\b|WRAP|PAPER|NOTEBOOK|PENCIL|\bPENS?\b|STICKER|TAPE|RIBBON|ENVELOPE|TISSUE|CHALK|BUNTING|"
        r"\bTAGS?\b|JOURNAL|ERASER|RUBBER|STAMP|WRITING|CRAYON|CALENDAR|BOOK",
    ),
    (
        "toys_games",
        r"\bTOYS?\b|GAME|DOLL|PLAYHOUSE|JIGSAW|PUZZLE|SPACEBOY|DOMINOES|SKITTLES|BALLOON|TEDDY|\bKIT\b",
    ),
    (
        "jewellery_accessories",
        r"NECKLACE|EARRING|BRACELET|\bRING\b|\bHAIR|BROOCH|UMBRELLA|CHARM|SCARF|GLOVES",
    ),
    ("garden_outdoor", r"GARDEN|PLANT|FLOWER POT|\bPOT\b|WATERING|\bBIRD|PARASOL|PICNIC"),
    (
        "home_decor",
        r"HEART|\bSIGN\b|DECORATION|FRAME|CLOCK|MIRROR|CUSHION|DOORMAT|HOOK|HANGER|WREATH|ORNAMENT|\bBOX|"
        r"DRAWER|CABINET|VASE|BLANKET|THROW|STORAGE|BASKET|HOLDER|WALL|DOORSTOP|BUNNY|CHIME|SHELF|MAGNET|"
        r"EASTER|PARTY|FLAG|GARLAND|DOORSIGN|PLAQUE|SOAP|TOWEL",
    ),
]

TIMESTAMP_FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M"]


def _input_files(input_path: Path) -> list[Path]:
    if input_path.is_file():
        return [input_path]
    files = sorted(
        p
        for p in input_path.iterdir()
        if p.is_file() and p.name.lower().endswith((".csv", ".csv.gz", ".xlsx"))
    )
    if not files:
        raise FileNotFoundError(f"{input_path}: no Online Retail export (.csv, .csv.gz or .xlsx) found")
    return files


def _normalise_columns(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    keep = {FILE_COLUMN, ROW_COLUMN}
    renames = {}
    for col in frame.columns:
        if col in keep:
            continue
        key = col.lower().replace(" ", "").replace("_", "").lstrip("\ufeff")
        if key in ALIASES:
            renames[col] = ALIASES[key]
    frame = frame.rename(renames)
    missing = [c for c in RAW_COLUMNS if c not in frame.columns]
    if missing:
        raise SourceDecodeError(f"{name}: not an Online Retail export, missing columns {missing}")
    return frame.select(
        [pl.col(c).cast(pl.String) for c in RAW_COLUMNS] + [pl.col(FILE_COLUMN), pl.col(ROW_COLUMN)]
    )


def _cell_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _read_xlsx(path: Path) -> list[pl.DataFrame]:
    """Every sheet of an Online Retail workbook as an all-string frame (openpyxl read-only streaming)."""
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several unrelated types for broken zips
        raise SourceDecodeError(f"{path}: cannot open as xlsx: {exc}") from exc
    frames = []
    try:
        for sheet in workbook.worksheets:
            rows = sheet.iter_rows(values_only=True)
            header = next(rows, None)
            if header is None:
                continue
            names = [str(h).strip() if h is not None else f"column_{i}" for i, h in enumerate(header)]
            data = [[_cell_text(v) for v in row] for row in rows if any(v is not None for v in row)]
            frame = pl.DataFrame(data, schema={n: pl.String for n in names}, orient="row")
            frame = frame.with_row_index(ROW_COLUMN, offset=1).with_columns(
                pl.col(ROW_COLUMN).cast(pl.Int64), pl.lit(f"{path.name}[{sheet.title}]").alias(FILE_COLUMN)
            )
            frames.append(_normalise_columns(frame, f"{path}[{sheet.title}]"))
    finally:
        workbook.close()
    return frames


def read_lines(input_path: Path, encoding: str | None = None) -> pl.DataFrame:
    """All export lines as strings with the Online Retail column names plus source file and row."""
    frames: list[pl.DataFrame] = []
    for path in _input_files(input_path):
        if path.name.lower().endswith(".xlsx"):
            frames.extend(_read_xlsx(path))
        else:
            frames.append(_normalise_columns(read_csv_strings(path, encoding), str(path)))
    return pl.concat(frames)


def _parse(lines: pl.DataFrame) -> pl.DataFrame:
    """Typed working columns next to the raw strings; line_no is the position within the invoice."""
    qty_f = pl.col("Quantity").str.strip_chars().cast(pl.Float64, strict=False)
    ts_text = pl.col("InvoiceDate").str.strip_chars()
    return lines.with_columns(
        invoice=pl.col("InvoiceNo").str.strip_chars().str.to_uppercase(),
        sku=pl.col("StockCode").str.strip_chars().str.to_uppercase(),
        description=pl.col("Description").str.strip_chars(),
        qty=pl.when(qty_f == qty_f.round(0)).then(qty_f).cast(pl.Int64, strict=False),
        price=pl.col("UnitPrice").str.strip_chars().cast(pl.Float64, strict=False),
        order_ts=pl.coalesce(
            [ts_text.str.strptime(pl.Datetime("us"), f, strict=False) for f in TIMESTAMP_FORMATS]
        ),
        customer_id=pl.col("CustomerID").str.strip_chars().str.replace(r"^(\d+)\.0*$", "$1"),
        region=pl.col("Country").str.strip_chars(),
    ).with_columns(
        pl.when(pl.col("customer_id") == "").then(None).otherwise(pl.col("customer_id")).alias("customer_id"),
        line_no=(pl.int_range(pl.len()).over("invoice") + 1).cast(pl.Int64),
        non_product=pl.when(pl.col("sku").str.starts_with(GIFT_VOUCHER_PREFIX))
        .then(pl.lit("gift_voucher"))
        .otherwise(pl.col("sku").replace_strict(NON_PRODUCT_CODES, default=None, return_dtype=pl.String)),
    )


def _category(name: pl.Expr) -> pl.Expr:
    expr: pl.Expr = pl.lit("unknown")
    upper = name.str.to_uppercase()
    for category, pattern in reversed(CATEGORY_PATTERNS):
        expr = pl.when(upper.str.contains(pattern)).then(pl.lit(category)).otherwise(expr)
    return expr


def land(input_dir: Path, landing_dir: Path, encoding: str | None = None) -> LandingReport:
    """Land an Online Retail export folder into canonical orders, customers and products."""
    report = LandingReport(source=SOURCE, currency=CURRENCY, timezone=TIMEZONE, input=str(input_dir))
    # C invoices are separate credit lines, not a status on the original sale (see dbt DECISIONLOG "Returns").
    report.extra["returns_are_credit_lines"] = True
    lines = _parse(read_lines(Path(input_dir), encoding))
    report.rows_in["orders"] = lines.height
    writer = LandingWriter(landing_dir, report)

    is_cancel = pl.col("invoice").str.starts_with("C")
    checks = lines.with_columns(
        first_rule(
            (pl.col("invoice").is_null() | (pl.col("invoice") == ""), "missing_invoice", "InvoiceNo empty"),
            (pl.col("sku").is_null() | (pl.col("sku") == ""), "missing_stock_code", "StockCode empty"),
            (pl.col("qty").is_null(), "unparseable_quantity", pl.col("Quantity").fill_null("<empty>")),
            (pl.col("price").is_null(), "unparseable_price", pl.col("UnitPrice").fill_null("<empty>")),
            (
                pl.col("order_ts").is_null(),
                "unparseable_timestamp",
                pl.col("InvoiceDate").fill_null("<empty>"),
            ),
        )
    )
    bad, ok = split_by_rule(checks)
    writer.quarantine("orders", bad, RAW_COLUMNS)

    # Valid lines that are not product demand.
    routed = ok.with_columns(
        rule=pl.when(pl.col("invoice").str.starts_with("A"))
        .then(pl.lit("bad_debt_adjustment"))
        .otherwise(pl.col("non_product")),
        detail=pl.concat_str([pl.lit("StockCode "), pl.col("sku")]),
    )
    routed_rows, demand = split_by_rule(routed)
    writer.route_out("orders", routed_rows, RAW_COLUMNS)

    demand = demand.with_columns(
        first_rule(
            (pl.col("price") <= 0, "price_positive", pl.format("UnitPrice {} <= 0", pl.col("UnitPrice"))),
            (pl.col("qty") == 0, "quantity_nonzero", "Quantity is 0"),
            (
                (pl.col("qty") < 0) & ~is_cancel,
                "negative_quantity_not_cancellation",
                pl.format("Quantity {} on invoice {}", pl.col("Quantity"), pl.col("invoice")),
            ),
            (
                (pl.col("qty") > 0) & is_cancel,
                "positive_quantity_on_cancellation",
                pl.format("Quantity {} on credit note {}", pl.col("Quantity"), pl.col("invoice")),
            ),
        )
    )
    bad, demand = split_by_rule(demand)
    writer.quarantine("orders", bad, RAW_COLUMNS)

    # Exact duplicates (all eight published fields equal): keep the first, quarantine the repeats.
    first_seen_at = pl.format("{} row {}", pl.col(FILE_COLUMN), pl.col(ROW_COLUMN)).first().over(RAW_COLUMNS)
    demand = demand.with_columns(
        rule=pl.when(pl.int_range(pl.len()).over(RAW_COLUMNS) > 0).then(pl.lit("duplicate_line")),
        detail=pl.format("same as {}", first_seen_at),
    )
    dups, demand = split_by_rule(demand)
    writer.quarantine("orders", dups, RAW_COLUMNS)

    orders = demand.with_columns(
        order_id=pl.col("invoice"),
        quantity=pl.col("qty").abs(),
        unit_price=pl.col("price"),
        currency=pl.lit(CURRENCY),
        discount=pl.lit(0.0),
        channel=pl.lit("web"),
        status=pl.when(is_cancel).then(pl.lit("returned")).otherwise(pl.lit("completed")),
    )
    writer.write("orders", orders)

    _land_customers(writer, lines, orders)
    _land_products(writer, lines, orders)
    report.notes.append(
        "C invoices landed as status 'returned' with positive quantity (net revenue = completed - returned); "
        "unit_cost estimated as 60% of the median price; lead_time_days defaulted to 14"
    )
    return writer.finish()


def _land_customers(writer: LandingWriter, lines: pl.DataFrame, orders: pl.DataFrame) -> None:
    """One row per customer id seen in the input; those without any landed line are routed out."""
    seen = (
        lines.filter(pl.col("customer_id").is_not_null())
        .group_by("customer_id", maintain_order=True)
        .agg(pl.col(FILE_COLUMN).first(), pl.col(ROW_COLUMN).first(), pl.col(RAW_COLUMNS).first())
    )
    writer.report.rows_in["customers"] = seen.height
    landed = (
        orders.filter(pl.col("customer_id").is_not_null())
        .sort(["order_ts", FILE_COLUMN, ROW_COLUMN])
        .group_by("customer_id", maintain_order=True)
        .agg(first_seen=pl.col("order_ts").first().dt.date(), region=pl.col("region").first())
    )
    writer.write("customers", landed)
    rest = seen.join(landed.select("customer_id"), on="customer_id", how="anti").with_columns(
        rule=pl.lit("no_product_orders"),
        detail=pl.lit("customer has no landed product order line (only routed-out or quarantined lines)"),
    )
    writer.route_out("customers", rest, RAW_COLUMNS)


def _land_products(writer: LandingWriter, lines: pl.DataFrame, orders: pl.DataFrame) -> None:
    """One row per stock code with landed lines; non-product codes and codes without valid sales routed out."""
    seen = (
        lines.filter(pl.col("sku").is_not_null() & (pl.col("sku") != ""))
        .group_by("sku", maintain_order=True)
        .agg(
            pl.col(FILE_COLUMN).first(),
            pl.col(ROW_COLUMN).first(),
            pl.col(RAW_COLUMNS).first(),
            pl.col("non_product").first(),
        )
    )
    writer.report.rows_in["products"] = seen.height
    names = (
        orders.filter(pl.col("description").is_not_null() & (pl.col("description") != ""))
        .group_by(["sku", "description"])
        .len()
        .sort(["sku", "len", "description"], descending=[False, True, False])
        .group_by("sku", maintain_order=True)
        .agg(name=pl.col("description").first())
    )
    prices = orders.group_by("sku").agg(
        pl.col("unit_price").filter(pl.col("status") == "completed").median().alias("completed_median"),
        pl.col("unit_price").median().alias("any_median"),
    )
    products = (
        prices.join(names, on="sku", how="left")
        .with_columns(list_price=pl.coalesce("completed_median", "any_median").round(2))
        .with_columns(
            category=_category(pl.col("name").fill_null("")),
            unit_cost=estimated_unit_cost(pl.col("list_price")),
            weight_kg=pl.lit(None, dtype=pl.Float64),
            supplier=pl.lit(None, dtype=pl.String),
            lead_time_days=pl.lit(DEFAULT_LEAD_TIME_DAYS),
        )
    )
    writer.write("products", products)
    rest = seen.join(products.select("sku"), on="sku", how="anti").with_columns(
        rule=pl.coalesce("non_product", pl.lit("no_valid_sales")),
        detail=pl.when(pl.col("non_product").is_not_null())
        .then(pl.lit("non-product stock code"))
        .otherwise(pl.lit("stock code only on quarantined or routed-out lines")),
    )
    writer.route_out("products", rest, RAW_COLUMNS)
