"""Reading marts from and writing decisions to the DuckDB warehouse, and atomic exports.

DuckDB allows one writer process at a time, and a second process cannot even open the file read-only
while a writer holds it. So: every asset that touches the file is in the `duckdb_writer` pool, a
connection is opened per call and closed at once, and opening retries with backoff for a bounded time
and then fails with a message that says who to look for (a notebook holding the file, a second run).
Notebooks read `data/exports/` or open the file read-only between runs.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

from pipelines.core.settings import get_settings

LOCK_WAIT_SECONDS = float(os.environ.get("SHOPLENS_LOCK_WAIT_SECONDS", "120"))
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Cells starting with these run as formulas when a CSV is opened in a spreadsheet (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class WarehouseBusyError(RuntimeError):
    pass


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return f'"{name}"'


@contextmanager
def connect(
    path: Path | None = None, read_only: bool = False, log: Callable[[str], None] | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse, retrying while another process holds the lock, and always close it."""
    target = Path(path or get_settings().warehouse)
    target.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    delay = 0.5
    while True:
        try:
            con = duckdb.connect(str(target), read_only=read_only)
            break
        except duckdb.IOException as err:
            if "lock" not in str(err).lower():
                raise  # not contention (a damaged file, no permission): the waiting advice would mislead
            if time.monotonic() > deadline:
                raise WarehouseBusyError(
                    f"the warehouse {target} is held by another process after waiting {LOCK_WAIT_SECONDS:g} s "
                    f"(SHOPLENS_LOCK_WAIT_SECONDS): {err}. Close notebooks or sessions that opened it "
                    "(notebooks should read data/exports/ or open it read-only between runs) and run again."
                ) from err
            if log:
                log(f"warehouse is locked by another process; retrying in {delay:.1f} s")
            time.sleep(delay)
            delay = min(delay * 2, 10)
    try:
        yield con
    finally:
        con.close()


def read_sql(sql: str, params: list | None = None, path: Path | None = None) -> pl.DataFrame:
    with connect(path, read_only=False) as con:
        return con.sql(sql, params=params).pl() if params else con.sql(sql).pl()


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", [schema, name]
    ).fetchall()
    return rows[0][0] > 0


def write_table(frame: pl.DataFrame, schema: str, name: str, path: Path | None = None) -> int:
    """Replace schema.name with the frame in one transaction: readers see the old or the new table."""
    with connect(path) as con:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(schema)}")
        con.register("_incoming", frame.to_arrow())
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"CREATE OR REPLACE TABLE {_ident(schema)}.{_ident(name)} AS SELECT * FROM _incoming")
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        finally:
            con.unregister("_incoming")
    return frame.height


def _neutralise_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Prefix text cells that a spreadsheet would run as a formula with a quote (OWASP CSV injection)."""
    exprs = []
    for col, dtype in frame.schema.items():
        if dtype == pl.String:
            c = pl.col(col)
            formula = pl.any_horizontal([c.str.starts_with(p) for p in _FORMULA_START if p != "-"])
            # A leading minus is a formula unless the cell is just a negative number.
            formula = formula | (c.str.starts_with("-") & ~c.str.contains(r"^-[0-9.]+$"))
            exprs.append(
                pl.when(formula.fill_null(False))
                .then(pl.lit("'") + c)
                .otherwise(c)
                .alias(col)
            )
    return frame.with_columns(exprs) if exprs else frame


def export(frame: pl.DataFrame, name: str, exports_dir: Path | None = None) -> dict[str, Path]:
    """Write data/exports/<name>.csv and .parquet atomically (temporary file, then rename)."""
    folder = Path(exports_dir or get_settings().exports_dir)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for ext in ("parquet", "csv"):
        target = folder / f"{name}.{ext}"
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f".{ext}.tmp", dir=folder)
        os.close(fd)
        try:
            if ext == "parquet":
                frame.write_parquet(tmp)
            else:
                _neutralise_formulas(frame).write_csv(tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        out[ext] = target
    return out
