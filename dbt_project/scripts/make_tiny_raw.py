"""Write a small, coherent raw Parquet set (all 8 canonical tables) for testing the dbt project.

Why: the dbt project must build and be tested before the real ingestion exists. This script writes what
ingestion will write (see pipelines/core/schemas.py): Parquet typed as the contract says (DECIMAL(12,2) etc.)
under <data>/raw/<table>/date=YYYY-MM-DD/part-0.parquet for daily tables and
<data>/raw/<table>/snapshot/part-0.parquet for customers and products, plus the lineage columns
`_source_file`, `_source_row` and (daily tables) `_partition_date`.

The shop is tiny (30 customers, 8 SKUs, 60 days) but exercises every mart: guest orders, cancelled and
returned lines, an intermittent SKU, a stock-out, several carriers and modes, a delay hotspot (one region-day
with many late deliveries), star reviews and NPS survey answers, and a session funnel tied to orders.
Deterministic: seeded RNG, no clock.

Usage: .venv/bin/python dbt_project/scripts/make_tiny_raw.py <data_dir> [--days 60] [--seed 7]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

PROJECT_ROOT = Path(__file__).resolve().parents[2]
if str(PROJECT_ROOT) not in sys.path:  # the contract lives in the project package; the script runs standalone
    sys.path.insert(0, str(PROJECT_ROOT))

from pipelines.core.schemas import TABLES  # noqa: E402

START = date(2024, 1, 1)
REGIONS = ("north", "south", "east", "west")
CHANNELS = ("web", "app", "marketplace")
TRAFFIC_CHANNELS = ("organic", "paid_search", "social", "email", "direct")
DEVICES = ("desktop", "mobile", "tablet")
CARRIERS = ("sf_express", "jd_logistics", "ems")
WAREHOUSES = ("wh_east", "wh_west")
COMPETITORS = ("rival_a", "rival_b")
HOTSPOT_REGION = "north"
HOTSPOT_OFFSET = 40  # day index of the bad delivery day in the north

# sku, name, category, unit_cost, list_price, weight_kg, supplier, lead_time_days, relative demand
PRODUCTS = [
    ("SKU-001", "Phone case", "electronics", "3.50", "12.90", 0.10, "sup_a", 7, 3.0),
    ("SKU-002", "USB-C cable", "electronics", "1.80", "8.50", 0.05, "sup_a", 7, 2.5),
    ("SKU-003", "Headphones", "electronics", "25.00", "79.00", 0.35, "sup_b", 21, 0.8),
    ("SKU-004", "Ceramic mug", "home", "2.20", "9.90", 0.40, "sup_c", 14, 1.5),
    ("SKU-005", "Desk lamp", "home", "14.00", "39.00", 1.20, "sup_c", 14, 0.6),
    ("SKU-006", "Cotton T-shirt", "apparel", "4.00", "19.90", 0.20, "sup_d", 10, 2.0),
    ("SKU-007", "Rain jacket", "apparel", "22.00", "89.00", 0.70, "sup_d", 30, 0.4),
    ("SKU-008", "Wool scarf", "apparel", "6.00", "29.00", 0.15, "sup_d", 30, 0.15),  # intermittent
]


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _ts(day: date, rng: random.Random, lo: int = 8, hi: int = 22) -> datetime:
    return datetime(day.year, day.month, day.day, rng.randint(lo, hi), rng.randint(0, 59), rng.randint(0, 59))


def build_tables(days: int, seed: int) -> dict[str, list[dict[str, Any]]]:
    """Return the canonical rows of every table (before typing), as plain dicts."""
    rng = random.Random(seed)
    tables: dict[str, list[dict[str, Any]]] = defaultdict(list)
    dates = [START + timedelta(days=i) for i in range(days)]

    for i in range(1, 31):
        cid = f"C{i:03d}"
        tables["customers"].append(
            {
                "customer_id": cid,
                "first_seen": START - timedelta(days=rng.randint(0, 200)),
                "region": REGIONS[i % len(REGIONS)],
                "email_hash": _hash(f"{cid}@example.com"),
                "phone_hash": _hash(f"+86-{i:08d}") if i % 3 else None,
                "name_hash": _hash(f"name {cid}") if i % 4 else None,
            }
        )
    customers = tables["customers"]
    # A few loyal customers buy often, most rarely: gives a realistic RFM spread.
    weights = [8.0 if i < 4 else 3.0 if i < 10 else 1.0 for i in range(len(customers))]
    for sku, name, cat, cost, price, kg, sup, lead, _ in PRODUCTS:
        tables["products"].append(
            {
                "sku": sku,
                "name": name,
                "category": cat,
                "unit_cost": cost,
                "list_price": price,
                "weight_kg": kg,
                "supplier": sup,
                "lead_time_days": lead,
            }
        )
    prices = {p[0]: float(p[4]) for p in PRODUCTS}
    weights_kg = {p[0]: p[5] for p in PRODUCTS}
    demand_w = [p[8] for p in PRODUCTS]

    order_no = 0
    orders_by_day: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for d_idx, day in enumerate(dates):
        n_orders = rng.randint(2, 6) + (3 if day.weekday() >= 5 else 0)
        # The hotspot day: a burst of northern orders all due the same day.
        forced_north = 7 if d_idx == HOTSPOT_OFFSET - 4 else 0
        for k in range(n_orders + forced_north):
            order_no += 1
            oid = f"O{order_no:05d}"
            if k >= n_orders:
                cust = rng.choice([c for c in customers if c["region"] == HOTSPOT_REGION])
            elif rng.random() < 0.1:
                cust = None  # guest checkout
            else:
                cust = rng.choices(customers, weights=weights)[0]
            region = cust["region"] if cust else rng.choice(REGIONS)
            ts = _ts(day, rng)
            channel = rng.choice(CHANNELS)
            order_status = rng.choices(("completed", "cancelled", "returned"), weights=(90, 4, 6))[0]
            skus = rng.sample([p[0] for p in PRODUCTS], k=rng.choice((1, 1, 2, 3)))
            skus = [s for s in skus if s != "SKU-008" or rng.random() < 0.4] or [
                rng.choices([p[0] for p in PRODUCTS[:7]], weights=demand_w[:7])[0]
            ]
            lines = []
            for line_no, sku in enumerate(skus, start=1):
                qty = rng.choice((1, 1, 1, 2, 3))
                unit_price = round(prices[sku] * rng.choice((1.0, 1.0, 0.95, 0.9)), 2)
                discount = round(qty * unit_price * 0.1, 2) if rng.random() < 0.25 else 0.0
                # A line's status is usually the order's; a single line of a big order may be returned alone.
                status = order_status if line_no == 1 or rng.random() < 0.8 else "completed"
                lines.append(
                    {
                        "order_id": oid,
                        "line_no": line_no,
                        "customer_id": cust["customer_id"] if cust else None,
                        "sku": sku,
                        "quantity": qty,
                        "unit_price": f"{unit_price:.2f}",
                        "currency": "CNY",
                        "discount": f"{discount:.2f}",
                        "order_ts": ts,
                        "channel": channel,
                        "region": region,
                        "status": status,
                    }
                )
            tables["orders"].extend(lines)
            orders_by_day[day].append({"order_id": oid, "lines": lines, "customer": cust, "region": region})

    # Inventory: end-of-day stock per SKU and warehouse; replenished when low. SKU-007 runs dry for a while,
    # SKU-003 has no inventory feed for the first week (on_hand must stay null there, not zero).
    sold = defaultdict(int)
    for line in tables["orders"]:
        if line["status"] != "cancelled":
            sold[(line["order_ts"].date(), line["sku"])] += line["quantity"]
    for sku, *_ in PRODUCTS:
        stock = {wh: 20 for wh in WAREHOUSES}
        for d_idx, day in enumerate(dates):
            for n, wh in enumerate(WAREHOUSES):
                stock[wh] = max(0, stock[wh] - (sold[(day, sku)] + n) // 2)
                on_order = 0
                if stock[wh] < 5 and not (sku == "SKU-007" and 20 <= d_idx < 30):
                    stock[wh] += 25
                    on_order = 25
                if sku == "SKU-007" and 20 <= d_idx < 30:
                    stock[wh] = 0
                if sku == "SKU-003" and d_idx < 7:
                    continue
                tables["inventory"].append(
                    {"date": day, "sku": sku, "warehouse": wh, "on_hand": stock[wh], "on_order": on_order}
                )

    # Shipments: one per order that is not fully cancelled. Late ~10%, the hotspot day mostly late,
    # the last two days' orders still in transit.
    ship_no = 0
    for d_idx, day in enumerate(dates):
        for order in orders_by_day[day]:
            lines = [ln for ln in order["lines"] if ln["status"] != "cancelled"]
            if not lines:
                continue
            ship_no += 1
            shipped = order["lines"][0]["order_ts"] + timedelta(hours=rng.randint(4, 30))
            promised = datetime.combine(day + timedelta(days=4), datetime.min.time()).replace(hour=20)
            hotspot = order["region"] == HOTSPOT_REGION and promised.date() == START + timedelta(
                days=HOTSPOT_OFFSET
            )
            late = rng.random() < (0.7 if hotspot else 0.08)
            delivered: datetime | None = promised - timedelta(hours=rng.randint(2, 40))
            if late:
                delivered = promised + timedelta(hours=rng.randint(6, 96))
            if d_idx >= days - 2:
                delivered = None
            mode = rng.choices(("road", "rail", "air", "sea"), weights=(75, 12, 8, 5))[0]
            distance = {"road": 600.0, "rail": 1200.0, "air": 1800.0, "sea": 2500.0}[mode] * rng.uniform(
                0.5, 1.5
            )
            weight = sum(weights_kg[ln["sku"]] * ln["quantity"] for ln in lines)
            packaging = "ldpe_film" if weight < 0.5 else "corrugated_board"
            tables["shipments"].append(
                {
                    "shipment_id": f"S{ship_no:05d}",
                    "order_id": order["order_id"],
                    "carrier": rng.choice(CARRIERS),
                    "mode": mode,
                    "origin": rng.choice(WAREHOUSES),
                    "destination_region": order["region"],
                    "distance_km": round(distance, 1),
                    "weight_kg": round(weight, 3),
                    "packaging": packaging,
                    "packaging_kg": 0.03 if packaging == "ldpe_film" else round(0.15 + 0.1 * weight, 3),
                    "shipped_ts": shipped,
                    "promised_ts": promised,
                    "delivered_ts": delivered,
                    "cost": f"{8 + 2 * weight:.2f}",
                }
            )
            # Reviews: late deliveries score lower; stars and NPS surveys are separate answers.
            if delivered is None or order["customer"] is None:
                continue
            cid = order["customer"]["customer_id"]
            if rng.random() < 0.6:
                stars = rng.choices(
                    (1, 2, 3, 4, 5), weights=(40, 15, 15, 15, 15) if late else (5, 3, 8, 20, 64)
                )[0]
                tables["reviews"].append(
                    {
                        "review_id": f"R{len(tables['reviews']) + 1:05d}",
                        "order_id": order["order_id"],
                        "customer_id": cid,
                        "sku": lines[0]["sku"],
                        "score": stars,
                        "scale": "stars_1_5",
                        "text": "late and damaged" if stars <= 2 else "good",
                        "created_ts": delivered + timedelta(hours=rng.randint(1, 48)),
                    }
                )
            if rng.random() < 0.4:
                nps = (
                    rng.choice((0, 2, 4, 5, 6, 7)) if late else rng.choice((5, 6, 7, 8, 8, 9, 9, 10, 10, 10))
                )
                tables["reviews"].append(
                    {
                        "review_id": f"R{len(tables['reviews']) + 1:05d}",
                        "order_id": order["order_id"],
                        "customer_id": cid,
                        "sku": None,
                        "score": nps,
                        "scale": "nps_0_10",
                        "text": None,
                        "created_ts": delivered + timedelta(hours=rng.randint(1, 72)),
                    }
                )

    # Traffic: purchase sessions for most orders (view -> cart -> checkout -> purchase), plus browsing sessions.
    sess_no = 0
    for day in dates:
        for order in orders_by_day[day]:
            if rng.random() < 0.2:
                continue
            sess_no += 1
            sid = f"T{sess_no:06d}"
            t0 = order["lines"][0]["order_ts"] - timedelta(minutes=20)
            common = {
                "session_id": sid,
                "customer_id": order["lines"][0]["customer_id"],
                "channel": rng.choice(TRAFFIC_CHANNELS),
                "device": rng.choice(DEVICES),
            }
            sku = order["lines"][0]["sku"]
            for step, event in enumerate(("view", "cart", "checkout", "purchase")):
                tables["traffic"].append(
                    common
                    | {
                        "event_ts": t0 + timedelta(minutes=5 * step),
                        "event": event,
                        "sku": sku,
                        "order_id": order["order_id"] if event == "purchase" else None,
                    }
                )
        for _ in range(rng.randint(10, 20)):
            sess_no += 1
            t0 = _ts(day, rng, 0, 23)
            common = {
                "session_id": f"T{sess_no:06d}",
                "customer_id": None,
                "channel": rng.choice(TRAFFIC_CHANNELS),
                "device": rng.choice(DEVICES),
            }
            sku = rng.choices([p[0] for p in PRODUCTS], weights=demand_w)[0]
            steps = (
                ("view",)
                if rng.random() < 0.7
                else ("view", "cart")
                if rng.random() < 0.7
                else ("view", "cart", "checkout")
            )
            for step, event in enumerate(steps):
                tables["traffic"].append(
                    common
                    | {
                        "event_ts": t0 + timedelta(minutes=3 * step),
                        "event": event,
                        "sku": sku,
                        "order_id": None,
                    }
                )

    for day in dates:
        for sku, *_ in PRODUCTS:
            for comp in COMPETITORS:
                tables["competitor_prices"].append(
                    {
                        "date": day,
                        "sku": sku,
                        "competitor": comp,
                        "price": f"{prices[sku] * rng.uniform(0.85, 1.1):.2f}",
                    }
                )
    return tables


def write_raw(data_dir: Path, tables: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """Write every table in the raw layout, typed by the contract; return rows written per table."""
    raw = data_dir / "raw"
    counts: dict[str, int] = {}
    con = duckdb.connect()
    try:
        for name, spec in TABLES.items():
            rows = tables[name]
            extra = ["email_hash", "phone_hash", "name_hash"] if name == "customers" else []
            columns = list(spec.columns) + extra
            types = dict(spec.columns) | {c: "VARCHAR" for c in extra}
            if spec.is_daily:
                groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
                for row in rows:
                    value = row[spec.partition_column]
                    groups[(value.date() if isinstance(value, datetime) else value).isoformat()].append(row)
                targets = {f"date={k}": (v, f"{name}_{k}.csv", k) for k, v in sorted(groups.items())}
            else:
                targets = {"snapshot": (rows, f"{name}.csv", None)}
            for folder, (part_rows, source_file, partition_date) in targets.items():
                # Strings in Arrow, typed by DuckDB's CAST: exactly the types ingestion produces.
                arrow = pa.table(
                    {
                        c: pa.array([None if r[c] is None else str(r[c]) for r in part_rows], pa.string())
                        for c in columns
                    }
                    | {"__row": pa.array(range(1, len(part_rows) + 1), pa.int64())}
                )
                con.register("part", arrow)
                select = [f'CAST("{c}" AS {types[c]}) AS "{c}"' for c in columns]
                select += [f"'{source_file}' AS _source_file", "__row AS _source_row"]
                if partition_date:
                    select.append(f"DATE '{partition_date}' AS _partition_date")
                out = raw / name / folder / "part-0.parquet"
                out.parent.mkdir(parents=True, exist_ok=True)
                con.execute(
                    f"COPY (SELECT {', '.join(select)} FROM part) TO '{out}' (FORMAT parquet)"
                ).fetchall()
                con.unregister("part")
            counts[name] = len(rows)
    finally:
        con.close()
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="data folder; raw Parquet goes under <data_dir>/raw")
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    counts = write_raw(args.data_dir, build_tables(args.days, args.seed))
    print(" ".join(f"{k}={v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
