"""Source name -> land function, and the landing plumbing every real-format adapter shares.

`land(source, input_dir, landing_dir, **options)` runs one source. Adapters are imported lazily (by module
path) so that importing the registry is cheap and `synthetic` (written separately) is only imported when used.

`LandingWriter` is the adapters' common tail: it replaces the landing folder's contents, casts frames to the canonical
columns, writes daily/snapshot files through base's atomic writers, collects adapter-quarantined and
routed-out rows as side files, and writes the balanced manifest. (It sits here because the adapter task
owns this module and not base.py; it is a candidate to move into base.py.)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.core.schemas import TABLES
from pipelines.sources.base import (
    ADAPTER_QUARANTINE_DIR,
    MANIFEST_NAME,
    ROUTED_OUT_DIR,
    LandingReport,
    daily_file,
    snapshot_file,
    write_csv_atomic,
    write_manifest,
    write_side_rows,
)
from pipelines.sources.encoding import FILE_COLUMN, ROW_COLUMN

# name -> (module, function). Real-format adapters take (input_dir, landing_dir, **options).
SOURCES: dict[str, tuple[str, str]] = {
    "synthetic": ("pipelines.sources.synthetic", "generate"),
    "online_retail": ("pipelines.sources.online_retail", "land"),
    "olist": ("pipelines.sources.olist", "land"),
    "shopify": ("pipelines.sources.shopify", "land"),
    "ga4": ("pipelines.sources.ga4", "land"),
    "online_shoppers": ("pipelines.sources.online_shoppers", "land"),
}


def get_lander(source: str) -> Callable[..., LandingReport]:
    """The land function of `source` (imported on first use)."""
    if source not in SOURCES:
        raise KeyError(f"unknown source {source!r}; known: {', '.join(sorted(SOURCES))}")
    module, func = SOURCES[source]
    try:
        return getattr(importlib.import_module(module), func)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise ModuleNotFoundError(
                f"source {source!r}: module {module} is not available yet", name=module
            ) from exc
        raise


def land(source: str, input_dir: Path | None, landing_dir: Path, **options: Any) -> LandingReport:
    """Run one source into `landing_dir`. `synthetic` ignores input_dir and takes scale/seed/bad_rows."""
    fn = get_lander(source)
    if source == "synthetic":
        return fn(Path(landing_dir), **options)
    if input_dir is None:
        raise ValueError(f"source {source!r} needs an input folder")
    return fn(Path(input_dir), Path(landing_dir), **options)


# ---------------------------------------------------------------------------------------------------------
# Shared adapter plumbing

_POLARS_TYPES: dict[str, pl.DataType] = {
    "VARCHAR": pl.String(),
    "INTEGER": pl.Int64(),
    "DOUBLE": pl.Float64(),
    "TIMESTAMP": pl.Datetime("us"),
    "DATE": pl.Date(),
}


def _polars_type(duck_type: str) -> pl.DataType:
    return pl.Float64() if duck_type.startswith("DECIMAL") else _POLARS_TYPES[duck_type]


def raw_record(columns: Iterable[str]) -> pl.Expr:
    """A JSON string of the original fields of a row (the `raw_record` of a side file)."""
    return pl.struct([pl.col(c) for c in columns]).struct.json_encode().alias("raw_record")


def landed_files(landing: Path) -> set[Path]:
    """Files a landing holds in the canonical table folders and the side folders."""
    found: set[Path] = set()
    for name in [*TABLES, ADAPTER_QUARANTINE_DIR, ROUTED_OUT_DIR]:
        folder = landing / name
        if folder.is_dir():
            found.update(p for p in folder.iterdir() if p.is_file())
    return found


def clear_landing(landing: Path, keep: set[Path] | None = None) -> None:
    """Remove what a previous landing left (canonical table folders, side folders), except `keep`.

    A landing folder holds one source (the manifest names it), so every canonical table folder is cleared,
    not only the ones this source writes: stale shipments from an earlier synthetic run must not be read as
    part of an Online Retail landing. Nothing else in the folder is touched.
    """
    keep = keep or set()
    for path in landed_files(landing) - keep:
        path.unlink()
    for name in [*TABLES, ADAPTER_QUARANTINE_DIR, ROUTED_OUT_DIR]:
        folder = landing / name
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


class LandingWriter:
    """Writes one adapter's canonical files, side files and manifest into a landing folder."""

    def __init__(self, landing: Path, report: LandingReport) -> None:
        self.landing = Path(landing)
        self.report = report
        self._side: dict[tuple[str, str], list[pl.DataFrame]] = {}
        self._dates: list[date] = []
        self._written: set[Path] = set()
        # No manifest while files change: a reader never takes a half-written landing for a complete one.
        # Old files are replaced in place and only the stale ones are deleted at the end (unlinking thousands
        # of daily files first costs seconds on discard-mounted disks and leaves readers an empty folder).
        (self.landing / MANIFEST_NAME).unlink(missing_ok=True)

    @staticmethod
    def canonical(frame: pl.DataFrame, table: str, extra: Iterable[str] = ()) -> pl.DataFrame:
        """Select the canonical columns (schema order, plus `extra`), cast, nulls for absent columns."""
        cols = TABLES[table].columns
        exprs = []
        for name, duck_type in cols.items():
            expr = pl.col(name) if name in frame.columns else pl.lit(None)
            expr = expr.cast(_polars_type(duck_type))
            if duck_type.startswith("DECIMAL"):
                expr = expr.round(2)
            exprs.append(expr.alias(name))
        exprs += [pl.col(c).cast(pl.String) for c in extra]
        return frame.select(exprs)

    def write(self, table: str, frame: pl.DataFrame, extra: Iterable[str] = ()) -> None:
        """Write `frame` as the landed rows of `table`: one file per day for daily tables, else a snapshot."""
        spec = TABLES[table]
        out = self.canonical(frame, table, extra).sort(list(spec.key), nulls_last=True)
        if spec.is_daily:
            part = spec.partition_column
            assert part is not None
            if out.get_column(part).null_count():
                raise ValueError(f"{self.report.source}: {table} rows without {part} reached the writer")
            out = out.with_columns(pl.col(part).dt.date().alias("_day"))
            for (day,), chunk in out.partition_by("_day", as_dict=True, maintain_order=True).items():
                path = daily_file(self.landing, table, day)
                write_csv_atomic(chunk.drop("_day"), path)
                self._written.add(path)
                self._dates.append(day)
        else:
            path = snapshot_file(self.landing, table)
            write_csv_atomic(out, path)
            self._written.add(path)
        self.report.rows_landed[table] += out.height
        if table not in self.report.tables:
            self.report.tables.append(table)

    def _side_rows(self, kind: str, table: str, frame: pl.DataFrame, raw_cols: Iterable[str]) -> None:
        raw_cols = list(raw_cols)
        if frame.height == 0:
            return
        side = frame.select(
            pl.col(FILE_COLUMN).alias("source_file"),
            pl.col(ROW_COLUMN).cast(pl.Int64).alias("source_row"),
            pl.col("rule").cast(pl.String),
            pl.col("detail").cast(pl.String) if "detail" in frame.columns else pl.lit("").alias("detail"),
            raw_record(raw_cols) if raw_cols else pl.col("raw_record").cast(pl.String),
        )
        self._side.setdefault((kind, table), []).append(side)
        counter = (self.report.quarantined if kind == ADAPTER_QUARANTINE_DIR else self.report.routed_out)[
            table
        ]
        for rule, n in side.group_by("rule").len().iter_rows():
            counter[rule] += n

    def quarantine(self, table: str, frame: pl.DataFrame, raw_cols: Iterable[str] = ()) -> None:
        """Rows that cannot be mapped: `frame` needs _source_file, _source_row, rule, detail.

        raw_record is the JSON of `raw_cols`; with no raw_cols, `frame` must carry a `raw_record` column.
        """
        self._side_rows(ADAPTER_QUARANTINE_DIR, table, frame, raw_cols)

    def route_out(self, table: str, frame: pl.DataFrame, raw_cols: Iterable[str] = ()) -> None:
        """Valid rows that are not demand/customers: `frame` needs _source_file, _source_row, rule (the reason)."""
        self._side_rows(ROUTED_OUT_DIR, table, frame, raw_cols)

    def finish(self) -> LandingReport:
        """Write the side files and the manifest (raises if a table's counts do not balance)."""
        for (kind, table), parts in sorted(self._side.items()):
            rows = pl.concat(parts).sort(["source_file", "source_row", "rule"])
            write_side_rows(self.landing, kind, table, rows.to_dicts())
            self._written.add(self.landing / kind / f"{table}.csv")
        clear_landing(self.landing, keep=self._written)
        if self._dates:
            self.report.first_date = min(self._dates).isoformat()
            self.report.last_date = max(self._dates).isoformat()
        write_manifest(self.landing, self.report)
        return self.report


def split_by_rule(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split on a nullable `rule` column: (rows with a rule, rows without)."""
    flagged = frame.filter(pl.col("rule").is_not_null())
    return flagged, frame.filter(pl.col("rule").is_null())


def first_rule(*checks: tuple[pl.Expr, str, pl.Expr | str]) -> list[pl.Expr]:
    """`rule` and `detail` columns from ordered (condition, rule, detail) checks: the first failing wins."""
    rule: Any = pl.lit(None, dtype=pl.String)
    detail: Any = pl.lit(None, dtype=pl.String)
    for cond, name, det in reversed(checks):
        det_expr = pl.lit(det) if isinstance(det, str) else det.cast(pl.String)
        rule = pl.when(cond).then(pl.lit(name)).otherwise(rule)
        detail = pl.when(cond).then(det_expr).otherwise(detail)
    return [rule.alias("rule"), detail.alias("detail")]


def hash_text(expr: pl.Expr, chars: int = 16) -> pl.Expr:
    """Hex prefix of SHA-256 of a text column (stable surrogate ids); null stays null.

    Per-row hashlib on purpose: Polars' own `hash` is not stable across versions and is not SHA-256, and
    these ids must stay the same for the shop across runs and tools. Exports are small enough for this.
    """
    import hashlib

    return expr.map_elements(
        lambda s: hashlib.sha256(s.encode("utf-8")).hexdigest()[:chars], return_dtype=pl.String
    )


def estimated_unit_cost(list_price: pl.Expr) -> pl.Expr:
    """Unit cost when a source has none: 60% of the list price (a typical retail gross margin of 40%)."""
    return (list_price * 0.6).round(2)


DEFAULT_LEAD_TIME_DAYS = 14
