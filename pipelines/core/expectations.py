"""Great Expectations 1.x suites for the raw tables, run inside blocking Dagster asset checks.

A table's partitions are never loaded whole into a Python frame (medium's 29 M traffic rows took 4-8 GB
that way). The suite's rules are checked in two ways, and both must pass:

- over **every row**, in DuckDB SQL over the Parquet files (`_sql_outcome`): columns present, required
  columns not null, the key unique, enum values in their set, value ranges. The same rules as the GX
  suite, written as aggregates, so DuckDB streams the files within its memory_limit (and spills the
  key's GROUP BY) whatever the table's size;
- by **Great Expectations on a bounded sample** of at most GX_SAMPLE_ROWS rows (`validate_frame`): the
  suite itself, as the project's data-quality contract, on a deterministic pseudo-random sample (the
  rows with the smallest hash of their lineage, picked by DuckDB with a top-N, so the sample is the same
  on every run). GX on pandas costs about 2.7 GB and 10 s on 5 M rows, so it only ever sees the sample.

For medium's 29 M traffic rows these checks once cost ~19 s of CPU; the key's uniqueness is now counted
on a hash of the key and a batch of days at a time (_duplicate_rows) and the sample's top-N only sees
rows below a hash cut-off, with the same counts and the same sample (~9 s).

The row-level rules in ingest.py already saw every row at ingestion; these checks guard the published
files. `great_expectations` is imported lazily: the import alone takes about 3 s.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipelines.core.schemas import TABLES

# Upper bound on the rows GX sees (validate_frame samples any bigger frame down to it).
GX_SAMPLE_ROWS = 200_000
MAX_ROWS = GX_SAMPLE_ROWS
# Days of files per uniqueness query when the key holds the partition column (see _duplicate_rows).
UNIQUE_BATCH_DAYS = 31
RANGES: dict[str, list[tuple[str, float, float | None]]] = {
    "orders": [("quantity", 1, None), ("unit_price", 0.01, None), ("discount", 0, None)],
    "products": [("list_price", 0.01, None), ("unit_cost", 0, None)],
    "inventory": [("on_hand", 0, None), ("on_order", 0, None)],
    "reviews": [("score", 0, 10)],
    "shipments": [("distance_km", 0.001, None), ("weight_kg", 0.0001, None)],
    "competitor_prices": [("price", 0.01, None)],
}


@dataclass
class SuiteOutcome:
    success: bool
    rows_checked: int
    failures: list[str]
    evaluated: int
    rows_sampled: int = 0  # rows Great Expectations saw (a sample when rows_checked is larger)


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
    for col, lo, hi in RANGES.get(table_name, []):
        exps.append(gx.expectations.ExpectColumnValuesToBeBetween(column=col, min_value=lo, max_value=hi))
    return exps


def validate_frame(table_name: str, frame: pl.DataFrame) -> SuiteOutcome:
    """Run the table's suite on a frame (sampled down to MAX_ROWS); return success and readable failures."""
    import logging

    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    if frame.height > MAX_ROWS:
        frame = frame.sample(n=MAX_ROWS, seed=0)
    # Decimals become floats for GX's pandas engine.
    frame = frame.with_columns(
        [pl.col(c).cast(pl.Float64) for c, d in frame.schema.items() if isinstance(d, pl.Decimal)]
    )
    pdf = frame.to_pandas()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("shoplens").add_dataframe_asset(name=table_name)
    batch = asset.add_batch_definition_whole_dataframe("partitions").get_batch(
        batch_parameters={"dataframe": pdf}
    )
    suite = gx.ExpectationSuite(name=f"raw_{table_name}")
    for exp in build_expectations(table_name):
        suite.add_expectation(exp)
    suite = context.suites.add(suite)
    result = batch.validate(suite)
    failures = []
    for r in result.results:
        if not r.success:
            kwargs = {
                k: v
                for k, v in r.expectation_config.kwargs.items()
                if k in ("column", "column_list", "value_set")
            }
            failures.append(
                f"{r.expectation_config.type} {kwargs}: {r.result.get('unexpected_count', '?')} unexpected"
            )
    return SuiteOutcome(bool(result.success), frame.height, failures, len(result.results), frame.height)


def partition_paths(raw_dir: Path, table_name: str, days: list[str]) -> list[Path]:
    """The published raw files of the given days (or the snapshot) that exist."""
    table = TABLES[table_name]
    if table.is_daily:
        paths = [raw_dir / table_name / f"date={d}" / "part-0.parquet" for d in days]
    else:
        paths = [raw_dir / table_name / "snapshot" / "part-0.parquet"]
    return [p for p in paths if p.exists()]


UNIQUENESS = "<rows of repeated keys: _duplicate_rows>"


def _duplicate_rows(con, table_name: str, dated_paths: list[tuple[str, Path]]) -> int:
    """Rows whose key repeats (GX's unexpected count: all rows of every repeated key), over every row.

    Exact, but cheaper than grouping the key columns of every row: the rows are first grouped by a
    64-bit hash of the key (equal keys hash alike, so a repeated key always shows as a repeated hash),
    and the key columns are grouped only for the rows of repeated hashes (none, usually). When the key
    holds the partition column (traffic, inventory, competitor prices), rows with equal keys lie on the
    same day, so the files are checked UNIQUE_BATCH_DAYS days at a time: small hash tables (one table of
    traffic's 29 M keys took ~60% longer) and memory bounded by a batch, not by the table. A batch also
    counts its rows dated outside its days (or undated); if there is any, batching does not hold and
    all files are checked together.
    """
    from pipelines.core.ingest import quote_ident, sql_literal

    table = TABLES[table_name]
    keys = ", ".join(quote_ident(k) for k in table.key)
    some = " OR ".join(f"{quote_ident(k)} IS NOT NULL" for k in table.key)

    def count(paths: list[Path], stray: str = "false") -> tuple[int, int]:
        """(rows of repeated keys, rows matching `stray`) over the files."""
        files = "[" + ", ".join(sql_literal(str(p)) for p in paths) + "]"
        src = f"(SELECT * FROM read_parquet({files}, union_by_name = true) WHERE {some})"
        repeated, strays = con.execute(
            "SELECT count(*) FILTER (WHERE n > 1 AND NOT stray), coalesce(sum(n) FILTER (WHERE stray), 0) "
            f"FROM (SELECT hash({keys}) AS h, coalesce({stray}, true) AS stray, count(*) AS n FROM {src} GROUP BY ALL)"
        ).fetchall()[0]
        if strays or not repeated:
            return 0, int(strays)
        exact = con.execute(
            f"SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM {src} WHERE hash({keys}) IN "
            f"(SELECT hash({keys}) FROM {src} GROUP BY ALL HAVING count(*) > 1) GROUP BY {keys} HAVING count(*) > 1)"
        ).fetchall()[0][0]
        return int(exact), 0

    everything = [p for _, p in dated_paths]
    pc = table.partition_column
    if pc is None or pc not in table.key or len(dated_paths) <= UNIQUE_BATCH_DAYS:
        return count(everything)[0]
    dated_paths = sorted(dated_paths)
    total = 0
    for i in range(0, len(dated_paths), UNIQUE_BATCH_DAYS):
        batch = dated_paths[i : i + UNIQUE_BATCH_DAYS]
        stray = (
            f"CAST({quote_ident(pc)} AS DATE) NOT BETWEEN CAST({sql_literal(batch[0][0])} AS DATE) "
            f"AND CAST({sql_literal(batch[-1][0])} AS DATE)"
        )
        dups, strays = count([p for _, p in batch], stray)
        if strays:
            return count(everything)[0]
        total += dups
    return total


def _sql_rules(table_name: str, present: set[str]) -> list[tuple[str, str, str, list]]:
    """(expectation type, readable arguments, SQL count of unexpected rows, parameters) per rule.

    Mirrors build_expectations (GX's semantics: nulls are neither in nor out of a set or range; a
    compound key is skipped when all its columns are null). Set and range values go in as parameters.
    """
    from pipelines.core.ingest import quote_ident

    table = TABLES[table_name]
    rules: list[tuple[str, str, str, list]] = []
    for c in table.required:
        if c in present:
            rules.append(
                (
                    "expect_column_values_to_not_be_null",
                    f"{{'column': {c!r}}}",
                    f"count(*) FILTER (WHERE {quote_ident(c)} IS NULL)",
                    [],
                )
            )
    if set(table.key) <= present:
        kind = (
            "expect_column_values_to_be_unique"
            if len(table.key) == 1
            else "expect_compound_columns_to_be_unique"
        )
        args = (
            f"{{'column': {table.key[0]!r}}}"
            if len(table.key) == 1
            else f"{{'column_list': {list(table.key)!r}}}"
        )
        # Counted by _duplicate_rows (its own queries), not as an aggregate of the one scan.
        rules.append((kind, args, UNIQUENESS, []))
    for c, allowed in table.enums.items():
        if c in present:
            rules.append(
                (
                    "expect_column_values_to_be_in_set",
                    f"{{'column': {c!r}, 'value_set': {list(allowed)!r}}}",
                    f"count(*) FILTER (WHERE {quote_ident(c)} IS NOT NULL "
                    f"AND NOT list_contains(?::VARCHAR[], CAST({quote_ident(c)} AS VARCHAR)))",
                    [list(allowed)],
                )
            )
    for c, lo, hi in RANGES.get(table_name, []):
        if c not in present:
            continue
        cond, params = [], []
        if lo is not None:
            cond.append(f"CAST({quote_ident(c)} AS DOUBLE) < ?::DOUBLE")
            params.append(lo)
        if hi is not None:
            cond.append(f"CAST({quote_ident(c)} AS DOUBLE) > ?::DOUBLE")
            params.append(hi)
        rules.append(
            (
                "expect_column_values_to_be_between",
                f"{{'column': {c!r}}}",
                f"count(*) FILTER (WHERE {quote_ident(c)} IS NOT NULL AND ({' OR '.join(cond)}))",
                params,
            )
        )
    return rules


def validate_partitions(raw_dir: Path, table_name: str, days: list[str]) -> SuiteOutcome:
    """The table's suite over the given published days (or the snapshot), in bounded memory.

    Every rule is counted over all rows in DuckDB; GX runs on a sample of at most GX_SAMPLE_ROWS rows.
    Passes only when both pass. Lineage columns (`_source_file`, ...) are not part of the suite.
    """
    from pipelines.core.ingest import bounded_connection, quote_ident, sql_literal

    paths = partition_paths(raw_dir, table_name, days)
    if not paths:
        return SuiteOutcome(True, 0, [], 0)
    table = TABLES[table_name]
    raw_dir.mkdir(parents=True, exist_ok=True)
    spill = Path(tempfile.mkdtemp(prefix=".spill-checks-", dir=raw_dir))
    # Order does not matter for aggregates and the sample: let DuckDB stream without keeping it.
    con = bounded_connection(spill / "duckdb", preserve_insertion_order=False)
    try:
        # File paths reach SQL only as quoted literals (a view cannot take prepared parameters).
        files = "[" + ", ".join(sql_literal(str(p)) for p in paths) + "]"
        con.execute(f"CREATE TEMP VIEW src AS SELECT * FROM read_parquet({files}, union_by_name = true)")
        schema = {r[0]: r[1] for r in con.execute("DESCRIBE src").fetchall()}
        failures = [
            f"expect_column_to_exist {{'column': {c!r}}}: missing in the published files"
            for c in table.columns
            if c not in schema
        ]
        rules = _sql_rules(table_name, set(schema))
        scanned = [r for r in rules if r[2] != UNIQUENESS]
        counts_sql = ", ".join(f"({sql}) AS r{i}" for i, (_, _, sql, _) in enumerate(scanned))
        params = [p for *_, ps in scanned for p in ps]
        row = con.execute(
            f"SELECT count(*) AS n{', ' + counts_sql if scanned else ''} FROM src", params
        ).fetchall()[0]
        total = int(row[0])
        counted = iter(row[1:])
        dated = [(p.parent.name.removeprefix("date="), p) for p in paths]
        for kind, args, sql, _ in rules:
            bad = _duplicate_rows(con, table_name, dated) if sql == UNIQUENESS else next(counted)
            if bad:
                failures.append(f"{kind} {args}: {int(bad)} unexpected of {total} rows (all rows, DuckDB)")

        # GX on a bounded, deterministic sample: the rows with the smallest hash of their lineage (a top-N,
        # so DuckDB keeps GX_SAMPLE_ROWS rows, not the table). Without lineage columns: the first rows.
        suite_cols = [c for c in schema if not c.startswith("_")]
        lineage = [c for c in ("_source_file", "_source_row") if c in schema]
        lineage_hash = f"hash({', '.join(quote_ident(c) for c in lineage)})"
        order = f"ORDER BY {lineage_hash}, " + ", ".join(quote_ident(c) for c in lineage) if lineage else ""
        select = f"SELECT {', '.join(quote_ident(c) for c in suite_cols)} FROM src"
        sample = None
        if lineage and total > 4 * GX_SAMPLE_ROWS:
            # The same sample for less work: only rows whose hash lies below the value that about twice
            # the sample's rows stay under (hashes are uniform) go to the top-N. When at least
            # GX_SAMPLE_ROWS rows pass, the smallest hashes are all among them, so the top-N is unchanged;
            # otherwise (unlikely) the full top-N below runs.
            cut = min(2**64 - 1, int(2**64 * (2 * GX_SAMPLE_ROWS) / total))
            sample = con.sql(
                f"{select} WHERE {lineage_hash} < CAST(? AS UBIGINT) {order} LIMIT ?",
                params=[str(cut), GX_SAMPLE_ROWS],
            ).pl()
            if sample.height < GX_SAMPLE_ROWS:
                sample = None
        if sample is None:
            sample = con.sql(f"{select} {order} LIMIT ?", params=[GX_SAMPLE_ROWS]).pl()
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    gx_outcome = validate_frame(table_name, sample)
    failures += [f"{f} (GX, sample of {sample.height} rows)" for f in gx_outcome.failures]
    return SuiteOutcome(
        success=not failures,
        rows_checked=total,
        failures=failures,
        evaluated=gx_outcome.evaluated,
        rows_sampled=sample.height,
    )
