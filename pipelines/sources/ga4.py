"""GA4 event export (BigQuery export, as JSON lines or flattened CSV) -> canonical traffic.

Fields read (nested objects or flattened dotted keys both work): event_timestamp (microseconds since the
epoch, UTC), event_name, user_pseudo_id, user_id, traffic_source.source / traffic_source.medium,
device.category, items[].item_id, ecommerce.transaction_id, and ga_session_id (a top-level field or the
`ga_session_id` entry of event_params, as in the raw BigQuery export).

Mapping decisions (full table in docs/sources.md):
- event: view_item -> view, add_to_cart -> cart, begin_checkout -> checkout, purchase -> purchase; every
  other event (session_start, page_view, scroll, ...) is routed out with reason `not_a_funnel_event`.
- one landed row per event and item (sku = item_id); an event without items lands once with sku empty.
  purchase rows carry order_id = ecommerce.transaction_id.
- session_id = user_pseudo_id + "-" + ga_session_id; customer_id = user_id (empty when not logged in).
- channel from medium: organic; cpc/ppc/paid/paidsearch -> paid_search; email; referral; (none)/(not set)/
  empty -> direct; social/social-network/social-media/sm -> social; anything else -> other.
- device = device.category (desktop, mobile, tablet; else other).
- event_ts = event_timestamp converted from UTC to `timezone` (default UTC; pass the shop's zone).
Counting unit: rows_in = one per landed event-item row + one per routed-out or quarantined event.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.sources.base import LandingReport
from pipelines.sources.encoding import FILE_COLUMN, ROW_COLUMN, read_csv_strings, read_text
from pipelines.sources.registry import LandingWriter, first_rule, split_by_rule

SOURCE = "ga4"
FUNNEL_EVENTS = {
    "view_item": "view",
    "add_to_cart": "cart",
    "begin_checkout": "checkout",
    "purchase": "purchase",
}
CHANNELS = {
    "organic": "organic",
    "cpc": "paid_search",
    "ppc": "paid_search",
    "paid": "paid_search",
    "paidsearch": "paid_search",
    "email": "email",
    "referral": "referral",
    "(none)": "direct",
    "(not set)": "direct",
    "social": "social",
    "social-network": "social",
    "social-media": "social",
    "sm": "social",
}
DEVICES = ("desktop", "mobile", "tablet")
FIELDS = [
    "event_date",
    "event_timestamp",
    "event_name",
    "user_pseudo_id",
    "user_id",
    "traffic_source.source",
    "traffic_source.medium",
    "device.category",
    "ecommerce.transaction_id",
    "ga_session_id",
    "items",
]


def _get(record: dict[str, Any], dotted: str) -> Any:
    """A field by flattened key (`device.category`) or nested path (record['device']['category'])."""
    if dotted in record:
        return record[dotted]
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _session_id(record: dict[str, Any]) -> Any:
    direct = _get(record, "ga_session_id")
    if direct is not None:
        return direct
    for param in record.get("event_params") or []:
        if isinstance(param, dict) and param.get("key") == "ga_session_id":
            value = param.get("value") or {}
            for kind in ("int_value", "string_value", "double_value", "float_value"):
                if value.get(kind) is not None:
                    return value[kind]
    return None


def _item_ids(items: Any) -> list[str] | None:
    """item_id of each item; None when `items` is not readable (a JSON string in CSV exports)."""
    if items is None or items == "":
        return []
    if isinstance(items, str):
        try:
            items = json.loads(items)
        except json.JSONDecodeError:
            return None
    if not isinstance(items, list):
        return None
    return [str(i["item_id"]) for i in items if isinstance(i, dict) and i.get("item_id") not in (None, "")]


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _flatten(record: dict[str, Any] | None, raw: str) -> dict[str, Any]:
    """The fields this adapter reads, as text, plus the item ids and the raw record (JSON) for side files."""
    if record is None:
        return {
            "parse_error": "not a JSON object",
            "raw_record": json.dumps({"unparsed_line": raw}, ensure_ascii=False),
        }
    row = {f: _text(_get(record, f)) for f in FIELDS if f not in ("ga_session_id", "items")}
    row["ga_session_id"] = _text(_session_id(record))
    ids = _item_ids(_get(record, "items"))
    row["item_ids"] = ids if ids is not None else []
    row["parse_error"] = None if ids is not None else "items is not a list of objects"
    row["raw_record"] = raw
    return row


def _read_jsonl(path: Path, encoding: str | None) -> list[dict[str, Any]]:
    # Parsed line by line with the json module rather than pl.read_ndjson: one malformed line must be
    # quarantined with its row number, not fail the whole file, and nested and flattened keys may mix.
    rows = []
    for n, line in enumerate(read_text(path, encoding).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        row = _flatten(record if isinstance(record, dict) else None, line)
        row[FILE_COLUMN], row[ROW_COLUMN] = path.name, n
        rows.append(row)
    return rows


def _read_csv(path: Path, encoding: str | None) -> list[dict[str, Any]]:
    frame = read_csv_strings(path, encoding)
    rows = []
    for rec in frame.to_dicts():
        raw = json.dumps(
            {k: v for k, v in rec.items() if k not in (FILE_COLUMN, ROW_COLUMN)}, ensure_ascii=False
        )
        row = _flatten(rec, raw)
        row[FILE_COLUMN], row[ROW_COLUMN] = rec[FILE_COLUMN], rec[ROW_COLUMN]
        rows.append(row)
    return rows


def read_events(input_path: Path, encoding: str | None = None) -> pl.DataFrame:
    """All events of the export files (.jsonl/.json/.ndjson/.csv, optionally .gz) as one frame."""
    suffixes = (".jsonl", ".ndjson", ".json", ".csv")
    paths = (
        [input_path]
        if input_path.is_file()
        else sorted(
            p
            for p in input_path.iterdir()
            if p.is_file() and p.name.lower().removesuffix(".gz").endswith(suffixes)
        )
    )
    if not paths:
        raise FileNotFoundError(f"{input_path}: no GA4 export (.jsonl, .ndjson, .json or .csv) found")
    rows: list[dict[str, Any]] = []
    for path in paths:
        is_csv = path.name.lower().removesuffix(".gz").endswith(".csv")
        rows.extend(_read_csv(path, encoding) if is_csv else _read_jsonl(path, encoding))
    schema = {f: pl.String for f in FIELDS if f != "items"} | {
        "item_ids": pl.List(pl.String),
        "parse_error": pl.String,
        "raw_record": pl.String,
        FILE_COLUMN: pl.String,
        ROW_COLUMN: pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema)


def _channel(medium: pl.Expr) -> pl.Expr:
    m = medium.str.strip_chars().str.to_lowercase()
    return (
        pl.when(m.is_null() | (m == ""))
        .then(pl.lit("direct"))
        .otherwise(m.replace_strict(CHANNELS, default="other"))
    )


def land(
    input_dir: Path, landing_dir: Path, encoding: str | None = None, timezone: str = "UTC"
) -> LandingReport:
    """Land a GA4 event export into canonical traffic."""
    events = read_events(Path(input_dir), encoding)
    report = LandingReport(source=SOURCE, currency="", timezone=timezone, input=str(input_dir))
    writer = LandingWriter(landing_dir, report)
    report.extra["events_read"] = events.height

    micros = pl.col("event_timestamp").str.strip_chars().cast(pl.Int64, strict=False)
    events = events.with_columns(
        event=pl.col("event_name").replace_strict(FUNNEL_EVENTS, default=None),
        event_ts=pl.from_epoch(micros, time_unit="us")
        .dt.replace_time_zone("UTC")
        .dt.convert_time_zone(timezone)
        .dt.replace_time_zone(None),
    ).with_columns(
        first_rule(
            (pl.col("parse_error").is_not_null(), "unparseable_event", pl.col("parse_error")),
            (pl.col("event_name").is_null(), "missing_event_name", "event_name empty"),
            (pl.col("event").is_null(), "not_a_funnel_event", pl.col("event_name")),
            (pl.col("user_pseudo_id").is_null(), "missing_user_pseudo_id", "user_pseudo_id empty"),
            (
                pl.col("ga_session_id").is_null(),
                "missing_ga_session_id",
                "no ga_session_id field or event_param",
            ),
            (
                pl.col("event_ts").is_null(),
                "unparseable_timestamp",
                pl.col("event_timestamp").fill_null("<empty>"),
            ),
        )
    )
    # Counted before the item expansion, so the manifest balance also checks the expansion.
    report.rows_in["traffic"] = int(
        events.select(
            pl.when(pl.col("rule").is_null()).then(pl.col("item_ids").list.len().clip(1)).otherwise(1).sum()
        ).item()
    )
    flagged, funnel = split_by_rule(events)
    routed = flagged.filter(pl.col("rule") == "not_a_funnel_event")
    bad = flagged.filter(pl.col("rule") != "not_a_funnel_event")
    writer.quarantine("traffic", bad)
    writer.route_out("traffic", routed.with_columns(detail=pl.format("event_name {}", pl.col("event_name"))))

    rows = (
        funnel.with_columns(
            sku=pl.when(pl.col("item_ids").list.len() > 0).then(pl.col("item_ids")).otherwise(pl.lit([None]))
        )
        .explode("sku")
        .with_columns(
            session_id=pl.concat_str([pl.col("user_pseudo_id"), pl.col("ga_session_id")], separator="-"),
            customer_id=pl.col("user_id"),
            channel=_channel(pl.col("traffic_source.medium")),
            device=pl.col("device.category")
            .str.to_lowercase()
            .replace_strict({d: d for d in DEVICES}, default="other"),
            order_id=pl.when(pl.col("event") == "purchase").then(pl.col("ecommerce.transaction_id")),
        )
    )
    writer.write("traffic", rows)
    return writer.finish()
