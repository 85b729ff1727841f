"""Great Expectations 1.x suites for the raw tables, run inside blocking Dagster asset checks.

GX runs on a pandas frame of the partitions a run wrote (sampled above MAX_ROWS rows, since whole-frame
GX costs about 2.7 GB and 10 s on 5M rows; the row-level rules in ingest.py already saw every row).
`great_expectations` is imported lazily: the import alone takes about 3 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipelines.core.schemas import TABLES

MAX_ROWS = 1_000_000


@dataclass
class SuiteOutcome:
    success: bool
    rows_checked: int
    failures: list[str]
    evaluated: int


def build_expectations(table_name: str) -> list:
    import great_expectations as gx

    table = TABLES[table_name]
    exps: list = [gx.expectations.ExpectColumnToExist(column=c) for c in table.columns]
    exps += [gx.expectations.ExpectColumnValuesToNotBeNull(column=c) for c in table.required]
    if len(table.key) == 1:
        exps.append(gx.expectations.ExpectColumnValuesToBeUnique(column=table.key[0]))
    else:
        exps.append(gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=list(table.key)))
    for col, allowed in table.enums.items():
        exps.append(gx.expectations.ExpectColumnValuesToBeInSet(column=col, value_set=list(allowed)))
    ranges = {
        "orders": [("quantity", 1, None), ("unit_price", 0.01, None), ("discount", 0, None)],
        "products": [("list_price", 0.01, None), ("unit_cost", 0, None)],
        "inventory": [("on_hand", 0, None), ("on_order", 0, None)],
        "reviews": [("score", 0, 10)],
        "shipments": [("distance_km", 0.001, None), ("weight_kg", 0.0001, None)],
        "competitor_prices": [("price", 0.01, None)],
    }.get(table_name, [])
    for col, lo, hi in ranges:
        exps.append(gx.expectations.ExpectColumnValuesToBeBetween(column=col, min_value=lo, max_value=hi))
    return exps


def validate_frame(table_name: str, frame: pl.DataFrame) -> SuiteOutcome:
    """Run the table's suite on a frame; return success and readable failure lines."""
    import logging

    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    if frame.height > MAX_ROWS:
        frame = frame.sample(n=MAX_ROWS, seed=0)
    # Decimals become floats for GX's pandas engine.
    frame = frame.with_columns([pl.col(c).cast(pl.Float64) for c, d in frame.schema.items() if isinstance(d, pl.Decimal)])
    pdf = frame.to_pandas()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("shoplens").add_dataframe_asset(name=table_name)
    batch = asset.add_batch_definition_whole_dataframe("partitions").get_batch(batch_parameters={"dataframe": pdf})
    suite = gx.ExpectationSuite(name=f"raw_{table_name}")
    for exp in build_expectations(table_name):
        suite.add_expectation(exp)
    suite = context.suites.add(suite)
    result = batch.validate(suite)
    failures = []
    for r in result.results:
        if not r.success:
            kwargs = {k: v for k, v in r.expectation_config.kwargs.items() if k in ("column", "column_list", "value_set")}
            failures.append(f"{r.expectation_config.type} {kwargs}: {r.result.get('unexpected_count', '?')} unexpected")
    return SuiteOutcome(bool(result.success), frame.height, failures, len(result.results))


def read_partitions(raw_dir: Path, table_name: str, days: list[str]) -> pl.DataFrame:
    table = TABLES[table_name]
    if table.is_daily:
        paths = [raw_dir / table_name / f"date={d}" / "part-0.parquet" for d in days]
    else:
        paths = [raw_dir / table_name / "snapshot" / "part-0.parquet"]
    paths = [p for p in paths if p.exists()]
    if not paths:
        return pl.DataFrame()
    return pl.concat([pl.read_parquet(p) for p in paths], how="diagonal_relaxed")
