"""What every source shares: writing canonical landing files atomically, and the source manifest.

A source (the synthetic shop or a real-format adapter) turns its input into canonical landing files
(see pipelines/core/schemas.py for the layout). It never drops a row silently: rows it cannot map go to
`<landing>/_adapter_quarantine/<table>.csv` with the rule they broke, rows that are valid but are not
product demand or customers (postage, bank charges, ...) go to `<landing>/_routed_out/<table>.csv` with
their reason, and the manifest `<landing>/_source.json` counts them:

    rows_in = rows_landed + rows_quarantined + rows_routed_out      (per table)
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.core.landing import is_gzip, write_bytes_atomic
from pipelines.core.schemas import TABLES

MANIFEST_NAME = "_source.json"
ADAPTER_QUARANTINE_DIR = "_adapter_quarantine"
ROUTED_OUT_DIR = "_routed_out"
CSV_FORMATS = {"datetime_format": "%Y-%m-%d %H:%M:%S", "date_format": "%Y-%m-%d"}
SIDE_COLUMNS = ["source_file", "source_row", "rule", "detail", "raw_record"]


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see a half file.

    A name ending in .gz is written gzip-compressed (pipelines.core.landing)."""
    write_bytes_atomic(path, payload)


def write_csv_atomic(frame: pl.DataFrame, path: Path) -> None:
    """Write a polars frame as UTF-8 CSV with a header, atomically (gzip-compressed for a .csv.gz name)."""
    if is_gzip(path):
        write_bytes_atomic(path, frame.write_csv(None, **CSV_FORMATS).encode("utf-8"))
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        frame.write_csv(tmp, **CSV_FORMATS)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def daily_file(landing: Path, table: str, day: date, suffix: str = "", compressed: bool = False) -> Path:
    name = f"{table}_{day.isoformat()}{'_' + suffix if suffix else ''}.csv{'.gz' if compressed else ''}"
    return landing / table / name


def snapshot_file(landing: Path, table: str, compressed: bool = False) -> Path:
    return landing / table / f"{table}.csv{'.gz' if compressed else ''}"


@dataclass
class LandingReport:
    """Counts a source reports in its manifest."""

    source: str
    currency: str
    timezone: str = "UTC"
    input: str = ""
    tables: list[str] = field(default_factory=list)
    rows_in: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rows_landed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    quarantined: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    routed_out: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    first_date: str | None = None
    last_date: str | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "currency": self.currency,
            "timezone": self.timezone,
            "input": self.input,
            "tables": sorted(self.tables),
            "missing_tables": sorted(set(TABLES) - set(self.tables)),
            "first_date": self.first_date,
            "last_date": self.last_date,
            "rows_in": dict(sorted(self.rows_in.items())),
            "rows_landed": dict(sorted(self.rows_landed.items())),
            "quarantined": {t: dict(sorted(c.items())) for t, c in sorted(self.quarantined.items())},
            "routed_out": {t: dict(sorted(c.items())) for t, c in sorted(self.routed_out.items())},
            "notes": self.notes,
            **self.extra,
        }

    def check_balance(self) -> None:
        """Raise if any table lost rows: in = landed + quarantined + routed out."""
        for table, n_in in self.rows_in.items():
            out = (
                self.rows_landed.get(table, 0)
                + sum(self.quarantined.get(table, Counter()).values())
                + sum(self.routed_out.get(table, Counter()).values())
            )
            if n_in != out:
                raise AssertionError(
                    f"{self.source}: table {table} read {n_in} rows but accounted for {out} "
                    "(landed + quarantined + routed out)"
                )


def write_manifest(landing: Path, report: LandingReport) -> None:
    report.check_balance()
    payload = json.dumps(report.to_json(), indent=2, sort_keys=False).encode()
    atomic_write_bytes(landing / MANIFEST_NAME, payload)


def read_manifest(landing: Path) -> dict[str, Any] | None:
    path = landing / MANIFEST_NAME
    if not path.exists():
        return None
    return json.loads(path.read_text())


def write_side_rows(landing: Path, kind: str, table: str, rows: list[dict[str, Any]]) -> None:
    """Write adapter-quarantined (kind=ADAPTER_QUARANTINE_DIR) or routed-out rows for one table.

    Each row: source_file, source_row (1-based data row in that file), rule, detail, raw_record (a JSON
    string of the original fields). Replaces the file, so re-landing gives the same result.
    """
    path = landing / kind / f"{table}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=SIDE_COLUMNS)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: row.get(k, "") for k in SIDE_COLUMNS})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
