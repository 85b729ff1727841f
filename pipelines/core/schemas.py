"""The canonical raw tables: the one contract every source writes and every downstream step reads.

Landing layout (what a source writes; see docs/sources.md):
    <landing>/<table>/<table>_<YYYY-MM-DD>[_<suffix>].csv   daily tables, one or more files per day
    <landing>/<table>/<table>.csv                           reference tables (customers, products), a full snapshot
    <landing>/_source.json                                   which source wrote the folder, its currency and counts

Landing files are UTF-8 CSV with a header row naming exactly the canonical columns below (order free,
extra columns are ignored; `email`, `phone`, `name` on customers are allowed and hashed at ingestion).
Timestamps are ISO 8601 `YYYY-MM-DD HH:MM:SS` in the shop's local time (an explicit offset is accepted
and converted); dates are `YYYY-MM-DD`; decimals use a dot; empty means null. Any of these files may be
gzip-compressed as `<name>.csv.gz` (not both forms of one file: ingestion names the pair and stops).

Raw layout (what ingestion writes): Parquet at <data>/raw/<table>/date=<YYYY-MM-DD>/part-0.parquet for
daily tables and <data>/raw/<table>/snapshot/part-0.parquet for reference tables, typed as below, plus
lineage columns `_source_file` (file name) and `_source_row` (1-based data row number in that file) and
`_partition_date` (daily tables).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Column types use DuckDB type names: ingestion casts with TRY_CAST to these.


@dataclass(frozen=True)
class Table:
    name: str
    columns: dict[str, str]
    key: tuple[str, ...]
    # Column whose date decides the daily partition; None for reference snapshots.
    partition_column: str | None
    required: tuple[str, ...] = ()
    # Allowed values for enum columns.
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Columns holding personal data: hashed at ingestion, never stored raw.
    personal: tuple[str, ...] = ()
    description: str = ""

    @property
    def is_daily(self) -> bool:
        return self.partition_column is not None


ORDER_STATUSES = ("completed", "cancelled", "returned")
TRAFFIC_EVENTS = ("view", "cart", "checkout", "purchase")
SHIPMENT_MODES = ("road", "rail", "sea", "air")  # line-haul mode; last mile is always a van
PACKAGING = ("corrugated_board", "ldpe_film")
REVIEW_SCALES = ("stars_1_5", "nps_0_10")

TABLES: dict[str, Table] = {
    t.name: t
    for t in [
        Table(
            name="orders",
            description="One row per order line.",
            columns={
                "order_id": "VARCHAR",
                "line_no": "INTEGER",
                "customer_id": "VARCHAR",  # nullable: guest / unknown buyer
                "sku": "VARCHAR",
                "quantity": "INTEGER",  # always > 0; returns and cancellations are a status
                "unit_price": "DECIMAL(12,2)",  # > 0, in the shop currency
                "currency": "VARCHAR",
                "discount": "DECIMAL(12,2)",  # line discount amount, 0 <= discount <= quantity*unit_price
                "order_ts": "TIMESTAMP",
                "channel": "VARCHAR",  # web, app, marketplace, ...
                "region": "VARCHAR",
                "status": "VARCHAR",
            },
            key=("order_id", "line_no"),
            partition_column="order_ts",
            required=("order_id", "line_no", "sku", "quantity", "unit_price", "currency", "order_ts", "status"),
            enums={"status": ORDER_STATUSES},
        ),
        Table(
            name="customers",
            description="One row per customer (personal data hashed at ingestion).",
            columns={
                "customer_id": "VARCHAR",
                "first_seen": "DATE",
                "region": "VARCHAR",
            },
            key=("customer_id",),
            partition_column=None,
            required=("customer_id",),
            personal=("email", "phone", "name"),
        ),
        Table(
            name="products",
            description="One row per SKU.",
            columns={
                "sku": "VARCHAR",
                "name": "VARCHAR",
                "category": "VARCHAR",
                "unit_cost": "DECIMAL(12,2)",
                "list_price": "DECIMAL(12,2)",
                "weight_kg": "DOUBLE",
                "supplier": "VARCHAR",
                "lead_time_days": "INTEGER",
            },
            key=("sku",),
            partition_column=None,
            required=("sku", "category"),
        ),
        Table(
            name="inventory",
            description="One row per SKU, warehouse and day (end-of-day stock).",
            columns={
                "date": "DATE",
                "sku": "VARCHAR",
                "warehouse": "VARCHAR",
                "on_hand": "INTEGER",
                "on_order": "INTEGER",
            },
            key=("date", "sku", "warehouse"),
            partition_column="date",
            required=("date", "sku", "warehouse", "on_hand"),
        ),
        Table(
            name="traffic",
            description="One row per session event.",
            columns={
                "session_id": "VARCHAR",
                "event_ts": "TIMESTAMP",
                "customer_id": "VARCHAR",  # nullable: anonymous sessions
                "channel": "VARCHAR",  # organic, paid_search, social, email, direct, referral
                "device": "VARCHAR",  # desktop, mobile, tablet
                "event": "VARCHAR",
                "sku": "VARCHAR",  # nullable for events not about one product
                "order_id": "VARCHAR",  # set on purchase events: ties the session to orders
            },
            key=("session_id", "event_ts", "event", "sku"),
            partition_column="event_ts",
            required=("session_id", "event_ts", "event"),
            enums={"event": TRAFFIC_EVENTS},
        ),
        Table(
            name="shipments",
            description="One row per shipment.",
            columns={
                "shipment_id": "VARCHAR",
                "order_id": "VARCHAR",
                "carrier": "VARCHAR",
                "mode": "VARCHAR",
                "origin": "VARCHAR",
                "destination_region": "VARCHAR",
                "distance_km": "DOUBLE",
                "weight_kg": "DOUBLE",
                "packaging": "VARCHAR",
                "packaging_kg": "DOUBLE",
                "shipped_ts": "TIMESTAMP",
                "promised_ts": "TIMESTAMP",
                "delivered_ts": "TIMESTAMP",  # nullable: not yet delivered
                "cost": "DECIMAL(12,2)",
            },
            key=("shipment_id",),
            partition_column="shipped_ts",
            required=("shipment_id", "order_id", "carrier", "mode", "distance_km", "weight_kg", "shipped_ts"),
            enums={"mode": SHIPMENT_MODES, "packaging": PACKAGING},
        ),
        Table(
            name="reviews",
            description="One row per review or survey answer.",
            columns={
                "review_id": "VARCHAR",
                "order_id": "VARCHAR",
                "customer_id": "VARCHAR",
                "sku": "VARCHAR",  # nullable: order-level reviews and surveys
                "score": "INTEGER",
                "scale": "VARCHAR",
                "text": "VARCHAR",
                "created_ts": "TIMESTAMP",
            },
            key=("review_id",),
            partition_column="created_ts",
            required=("review_id", "score", "scale", "created_ts"),
            enums={"scale": REVIEW_SCALES},
        ),
        Table(
            name="competitor_prices",
            description="One row per SKU, competitor and day.",
            columns={
                "date": "DATE",
                "sku": "VARCHAR",
                "competitor": "VARCHAR",
                "price": "DECIMAL(12,2)",
            },
            key=("date", "sku", "competitor"),
            partition_column="date",
            required=("date", "sku", "competitor", "price"),
        ),
    ]
}

DAILY_TABLES = tuple(name for name, t in TABLES.items() if t.is_daily)
REFERENCE_TABLES = tuple(name for name, t in TABLES.items() if not t.is_daily)
