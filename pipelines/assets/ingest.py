"""Ingestion assets: landing CSV -> validated raw Parquet, bad rows to quarantine, one asset per table.

Daily tables are partitioned by the shop's calendar day with a single-run backfill policy, so a whole
range (the demo's two years, or a backfill) is one run that reads each landing file once. Reference
tables (products, customers) are full snapshots. Ingestion never opens the DuckDB warehouse, so it
runs outside the writer pool.
"""

from datetime import date

import dagster as dg

from pipelines.core.expectations import GX_SAMPLE_ROWS, validate_partitions
from pipelines.core.ingest import IngestionError, IngestResult, ingest, pii_key, write_empty_raw
from pipelines.core.schemas import DAILY_TABLES, REFERENCE_TABLES, TABLES
from pipelines.core.settings import get_settings
from pipelines.partitions import daily_partitions
from pipelines.sources.base import read_manifest

OWNERS = ["team:data-platform"]


def _metadata(result: IngestResult, source: dict | None) -> dict:
    rules = dict(sorted(result.by_rule.items()))
    examples = "\n".join(
        f"| {e['source_file']} | {e['source_row']} | {e['rule']} | {str(e['detail'])[:120]} |"
        for e in result.examples
    )
    md = {
        "rows_in": dg.MetadataValue.int(result.rows_in),
        "rows_accepted": dg.MetadataValue.int(result.rows_accepted),
        "rows_quarantined": dg.MetadataValue.int(result.rows_quarantined),
        "quarantine_by_rule": dg.MetadataValue.json(rules),
        "files_read": dg.MetadataValue.int(len(result.files)),
        "days_written": dg.MetadataValue.int(len(result.days_written)),
        "days_written_list": dg.MetadataValue.json(result.days_written[-400:]),
        "source": dg.MetadataValue.text((source or {}).get("source", "landing folder (no manifest)")),
        "dagster/row_count": dg.MetadataValue.int(result.rows_accepted),
    }
    if examples:
        md["quarantine_examples"] = dg.MetadataValue.md(
            "| file | row | rule | detail |\n|---|---|---|---|\n" + examples
        )
    if result.notes:
        md["notes"] = dg.MetadataValue.text("\n".join(result.notes[:50]))
    return md


def _run_ingest(
    context: dg.AssetExecutionContext, table: str, days: list[date] | None
) -> dg.MaterializeResult:
    settings = get_settings()
    source = read_manifest(settings.landing_dir)
    if source and table in source.get("missing_tables", []):
        msg = f"source '{source['source']}' provides no {table} table: {table} and the marts built on it are skipped"
        context.log.warning(msg)
        write_empty_raw(table, settings.raw_dir)
        return dg.MaterializeResult(
            metadata={"skipped": dg.MetadataValue.text(msg), "dagster/row_count": dg.MetadataValue.int(0)}
        )
    try:
        result = ingest(
            table,
            settings.landing_dir,
            settings.raw_dir,
            days,
            currency=(source or {}).get("currency"),
            timezone=settings.timezone,
            pii_secret=pii_key(settings.mode, settings.pii_key),
            log=context.log.info,
        )
    except IngestionError as err:
        raise dg.Failure(description=str(err)) from err
    if result.rows_quarantined:
        context.log.warning(
            f"{table}: {result.rows_quarantined} of {result.rows_in} rows quarantined: "
            + ", ".join(f"{r}={n}" for r, n in sorted(result.by_rule.items()))
        )
    return dg.MaterializeResult(metadata=_metadata(result, source))


def _daily_asset(table: str) -> dg.AssetsDefinition:
    spec = TABLES[table]

    @dg.asset(
        key=["raw", table],
        group_name="ingest",
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[dg.AssetKey(["raw", "products"]), dg.AssetKey(["raw", "customers"])],
        kinds={"duckdb", "parquet", "polars"},
        owners=OWNERS,
        description=(
            f"{spec.description} Validated daily from landing/{table}/{table}_<day>.csv into "
            f"raw/{table}/date=<day>/; rows breaking a rule go to raw/_quarantine/{table} with the rule."
        ),
        tags={"domain": "ingest"},
    )
    def _asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        keys = context.partition_keys
        context.log.info(f"ingesting {table} for {len(keys)} day(s): {keys[0]} .. {keys[-1]}")
        return _run_ingest(context, table, [date.fromisoformat(k) for k in keys])

    return _asset


def _snapshot_asset(table: str) -> dg.AssetsDefinition:
    spec = TABLES[table]

    @dg.asset(
        key=["raw", table],
        group_name="ingest",
        kinds={"duckdb", "parquet", "polars"},
        owners=OWNERS,
        description=(
            f"{spec.description} Full snapshot from landing/{table}/{table}.csv into raw/{table}/snapshot/"
            + ("; emails, phones and names are replaced by keyed hashes." if spec.personal else ".")
        ),
        tags={"domain": "ingest"},
    )
    def _asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return _run_ingest(context, table, None)

    return _asset


def _gx_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(["raw", table]),
        name=f"gx_suite_{table}",
        blocking=True,
        description=(
            f"Great Expectations suite on the {table} rows this run published: columns, keys unique and "
            "not null, allowed values, value ranges. Every rule is counted over all rows in DuckDB; GX "
            f"itself runs on a sample of at most {GX_SAMPLE_ROWS:,} rows. Blocks dbt when it fails."
        ),
    )
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        settings = get_settings()
        event = context.instance.get_latest_materialization_event(dg.AssetKey(["raw", table]))
        meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
        if "skipped" in meta:
            return dg.AssetCheckResult(passed=True, metadata={"skipped": meta["skipped"]})
        days = list(meta["days_written_list"].value) if "days_written_list" in meta else []
        # Bounded memory: the rules are counted over every row in DuckDB, GX sees a sample (expectations.py).
        outcome = validate_partitions(settings.raw_dir, table, days)
        if outcome.rows_checked == 0:
            return dg.AssetCheckResult(passed=True, metadata={"rows_checked": 0})
        return dg.AssetCheckResult(
            passed=outcome.success,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "rows_checked": outcome.rows_checked,
                "rows_sampled_for_gx": outcome.rows_sampled,
                "expectations": outcome.evaluated,
                "failures": dg.MetadataValue.text("\n".join(outcome.failures) or "none"),
            },
        )

    return _check


daily_ingest_assets = [_daily_asset(t) for t in DAILY_TABLES]
reference_ingest_assets = [_snapshot_asset(t) for t in REFERENCE_TABLES]
ingest_assets = reference_ingest_assets + daily_ingest_assets
ingest_checks = [_gx_check(t) for t in (*REFERENCE_TABLES, *DAILY_TABLES)]
