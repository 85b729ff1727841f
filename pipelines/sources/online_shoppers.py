"""UCI Online Shoppers Purchasing Intention (one row per session) -> canonical traffic events.

The dataset has page counts and a purchase flag per session but no timestamps, ids or products, so each
session is expanded deterministically into funnel events (full table in docs/sources.md):
- session_id = `os-<data row number>`; customer_id, sku and order_id empty (the data has none).
- `view` events: min(ProductRelated, max_views) (default cap 5), at least one (a session with no product
  page still viewed a page); spaced by the mean product-page duration, clipped to 5..600 s.
- Revenue TRUE adds `cart` (+30 s after the last view), `checkout` (+90 s) and `purchase` (+180 s).
- event_ts: a day of `Month` in `year` (default 2017: the dataset does not say which year) whose weekday
  matches the Weekend flag, picked by a multiplicative hash of the row number; the session starts between
  08:00 and 22:00, also from the row number. The same input always gives the same timestamps.
- channel from TrafficType (codes are not decoded by the dataset's authors; a fixed placeholder map):
  1 direct, 2 organic, 3 paid_search, 4 referral, 5 social, 6 email, others `other`.
- device from OperatingSystems (also undecoded): 1-2 desktop, 3-4 mobile, 5+ tablet. Browser is not used.
Counting unit: rows_in = generated events of readable sessions + one per quarantined session.
Columns are read as text and cast explicitly (DuckDB's sniffer reads TRUE/FALSE as INTEGER here).
"""

from __future__ import annotations

import calendar
from datetime import date
from pathlib import Path

import polars as pl

from pipelines.sources.base import LandingReport
from pipelines.sources.encoding import ROW_COLUMN, read_csv_strings
from pipelines.sources.registry import LandingWriter, first_rule, split_by_rule

SOURCE = "online_shoppers"
DEFAULT_YEAR = 2017
DEFAULT_MAX_VIEWS = 5
MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m}  # jan -> 1 ... ("June" -> "jun")
CHANNELS = {1: "direct", 2: "organic", 3: "paid_search", 4: "referral", 5: "social", 6: "email"}
RAW_COLUMNS = [
    "Administrative",
    "Administrative_Duration",
    "Informational",
    "Informational_Duration",
    "ProductRelated",
    "ProductRelated_Duration",
    "BounceRates",
    "ExitRates",
    "PageValues",
    "SpecialDay",
    "Month",
    "OperatingSystems",
    "Browser",
    "Region",
    "TrafficType",
    "VisitorType",
    "Weekend",
    "Revenue",
]
BOOLS = {"true": True, "false": False}


def _input_file(input_path: Path) -> Path:
    if input_path.is_file():
        return input_path
    files = sorted(p for p in input_path.iterdir() if p.name.lower().endswith((".csv", ".csv.gz")))
    if len(files) != 1:
        raise FileNotFoundError(
            f"{input_path}: expected one Online Shoppers CSV, found {[p.name for p in files]}"
        )
    return files[0]


def _day_table(year: int) -> pl.DataFrame:
    """(month, weekend) -> the list of that month's days of that kind in `year`."""
    rows = []
    for month in range(1, 13):
        days = [date(year, month, d) for d in range(1, calendar.monthrange(year, month)[1] + 1)]
        for weekend in (True, False):
            rows.append(
                {
                    "month": month,
                    "weekend": weekend,
                    "days": [d for d in days if (d.weekday() >= 5) == weekend],
                }
            )
    return pl.DataFrame(rows, schema={"month": pl.Int64, "weekend": pl.Boolean, "days": pl.List(pl.Date)})


def land(
    input_dir: Path,
    landing_dir: Path,
    encoding: str | None = None,
    year: int = DEFAULT_YEAR,
    max_views: int = DEFAULT_MAX_VIEWS,
) -> LandingReport:
    """Expand Online Shoppers sessions into canonical traffic events."""
    path = _input_file(Path(input_dir))
    sessions = read_csv_strings(path, encoding)
    missing = [c for c in RAW_COLUMNS if c not in sessions.columns]
    if missing:
        raise ValueError(f"{path}: not an Online Shoppers file, missing columns {missing}")
    report = LandingReport(source=SOURCE, currency="", timezone="UTC", input=str(input_dir))
    report.notes.append(
        f"sessions expanded to events: year {year}, at most {max_views} views per session, "
        "channel/device from undecoded TrafficType/OperatingSystems codes (placeholder map)"
    )
    writer = LandingWriter(landing_dir, report)

    def as_bool(col: str) -> pl.Expr:
        return (
            pl.col(col)
            .str.strip_chars()
            .str.to_lowercase()
            .replace_strict(BOOLS, default=None, return_dtype=pl.Boolean)
        )

    sessions = sessions.with_columns(
        product_pages=pl.col("ProductRelated").str.strip_chars().cast(pl.Int64, strict=False),
        product_seconds=pl.col("ProductRelated_Duration").str.strip_chars().cast(pl.Float64, strict=False),
        month=pl.col("Month")
        .str.strip_chars()
        .str.to_lowercase()
        .str.slice(0, 3)
        .replace_strict(MONTHS, default=None, return_dtype=pl.Int64),
        os=pl.col("OperatingSystems").str.strip_chars().cast(pl.Int64, strict=False),
        traffic_type=pl.col("TrafficType").str.strip_chars().cast(pl.Int64, strict=False),
        weekend=as_bool("Weekend"),
        revenue=as_bool("Revenue"),
    ).with_columns(
        first_rule(
            (
                pl.col("product_pages").is_null() | (pl.col("product_pages") < 0),
                "unparseable_count",
                pl.col("ProductRelated").fill_null("<empty>"),
            ),
            (pl.col("month").is_null(), "unparseable_month", pl.col("Month").fill_null("<empty>")),
            (pl.col("weekend").is_null(), "unparseable_boolean", pl.format("Weekend {}", pl.col("Weekend"))),
            (pl.col("revenue").is_null(), "unparseable_boolean", pl.format("Revenue {}", pl.col("Revenue"))),
        ),
        n_views=pl.col("product_pages").clip(1, max_views),
    )
    report.rows_in["traffic"] = int(
        sessions.select(
            pl.when(pl.col("rule").is_null())
            .then(pl.col("n_views") + 3 * pl.col("revenue").cast(pl.Int64))
            .otherwise(1)
            .sum()
        ).item()
    )
    report.extra["sessions_read"] = sessions.height
    bad, ok = split_by_rule(sessions)
    writer.quarantine("traffic", bad, RAW_COLUMNS)

    row = pl.col(ROW_COLUMN)
    ok = ok.join(_day_table(year), on=["month", "weekend"], how="left").with_columns(
        day=pl.col("days").list.get((row * 2654435761 % pl.col("days").list.len()).cast(pl.Int64)),
        start_s=8 * 3600 + (row * 7919) % (14 * 3600),
        step_s=(pl.col("product_seconds").fill_null(0) / pl.col("product_pages").clip(1, None))
        .clip(5, 600)
        .round(0)
        .cast(pl.Int64),
    )
    views = (
        ok.with_columns(k=pl.int_ranges(0, pl.col("n_views")))
        .explode("k")
        .with_columns(event=pl.lit("view"), offset_s=pl.col("start_s") + pl.col("k") * pl.col("step_s"))
    )
    last_view = pl.col("start_s") + (pl.col("n_views") - 1) * pl.col("step_s")
    funnel = pl.concat(
        [
            ok.filter(pl.col("revenue")).with_columns(event=pl.lit(name), offset_s=last_view + delay)
            for name, delay in (("cart", 30), ("checkout", 90), ("purchase", 180))
        ]
    )
    events = pl.concat([views.drop("k"), funnel]).with_columns(
        session_id=pl.format("os-{}", row.cast(pl.String).str.zfill(5)),
        event_ts=pl.col("day").cast(pl.Datetime("us")) + pl.duration(seconds=pl.col("offset_s")),
        channel=pl.col("traffic_type").replace_strict(CHANNELS, default="other", return_dtype=pl.String),
        device=pl.when(pl.col("os") <= 2)
        .then(pl.lit("desktop"))
        .when(pl.col("os") <= 4)
        .then(pl.lit("mobile"))
        .otherwise(pl.lit("tablet")),
    )
    writer.write("traffic", events)
    return writer.finish()
