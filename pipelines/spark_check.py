"""Prove the dbt project builds on Spark: build it on DuckDB and on local Spark over the same raw Parquet
and compare the results.

    python -m pipelines.spark_check --data-dir data                 # <data>/raw/** as ingestion wrote it
    python -m pipelines.spark_check --data-dir /tmp/shop --duckdb-warehouse /tmp/shop/warehouse/shoplens.duckdb
    python -m pipelines.spark_check --data-dir data --models-only    # seeds and models, no dbt tests

Needs `pip install -r requirements-spark.txt` (pyspark, dbt-spark) and Java 17. Steps:
1. DuckDB: `dbt build` (target `dev`) into a fresh warehouse in the work folder, in a subprocess started
   first so it runs while the JVM starts (skipped with --duckdb-warehouse, which compares against an
   existing build of the same raw data).
2. Spark: in this process, through dbt's Python API, `dbt run-operation create_spark_sources` then
   `dbt build` with the `spark` target (`method: session`). Both invocations and the comparison queries
   run on one SparkSession (dbt-spark's session cursor calls `SparkSession.builder.getOrCreate()`, and so
   does the comparison), so the JVM starts once.
3. Compare: the key figures in FIGURES value by value, then every mart: its row count and one total per
   column (sum of a number column, count of true in a boolean one, distinct values of any other). Print
   both tables; exit 1 when anything differs, 2 when a build fails.
Spark's warehouse and its Derby metastore live in the work folder (a temporary one by default), so a
check never touches data/ or dbt_project/.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DBT_DIR = PROJECT_ROOT / "dbt_project"
SPARK_SCHEMA = "shoplens"
MART_PREFIX = "mart "  # Comparison.figure of the per-mart totals: "mart <name>"


@dataclass(frozen=True)
class Figure:
    """One key figure: portable SQL over one mart (`{rel}` is replaced by the engine's relation name).

    The first `keys` columns identify a row, every further column is a value compared with an absolute
    `tolerance` (0 = exact) or a relative one, whichever is looser. A figure rounded to d decimals in the
    mart gets one unit in its last digit: the engines round an exact half differently (DuckDB rounds the
    binary double, 339.275 -> 339.27; Spark its decimal form, -> 339.28), and float noise from another
    summation order can tip a value across a rounding boundary. A sum of rounded values gets a relative
    tolerance on top, as each of its terms may be off by that unit.
    """

    name: str
    model: str
    sql: str
    keys: int
    tolerance: float = 0.0
    rel_tolerance: float = 1e-9


FIGURES: tuple[Figure, ...] = (
    Figure(
        "customers per RFM segment",
        "rfm_segment_summary",
        "select segment, customers, cast(revenue as double) as revenue from {rel}",
        keys=1,
        tolerance=0.01,
    ),
    Figure(
        "NPS per month",
        "nps_by_month",
        "select cast(review_month as date) as review_month, score_kind, n, nps, nps_ci_lower, nps_ci_upper from {rel}",
        keys=2,
        tolerance=0.01,
    ),
    Figure(
        "turnover per category",
        "inventory_turnover_category",
        "select category, cast(month_start as date) as month_start, turnover, cast(cogs as double) as cogs from {rel}",
        keys=2,
        tolerance=0.0001,
    ),
    Figure(
        "carbon per month (kg CO2e)",
        "carbon_monthly",
        "select cast(month_start as date) as month_start, sum(kg_co2e) as kg_co2e, "
        "sum(transport_kg_co2e) as transport_kg_co2e from {rel} group by cast(month_start as date)",
        keys=1,
        tolerance=0.00001,
        rel_tolerance=1e-6,
    ),
)

# Per-mart column totals. Integers and decimals are exact on both engines. A DOUBLE column that the mart
# rounds to d decimals may differ by one unit of its last digit in any row (exact halves, see Figure): its
# sum gets (non-null rows) x 10^-d, with d read off the DuckDB values (at least 1 decimal, at most 8;
# unrounded columns get float noise only).
TOTAL_REL_TOLERANCE = 1e-7
_INTEGER_TYPES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
)


@dataclass(frozen=True)
class Comparison:
    """One compared value: which figure, which row and column, the two values, whether they agree."""

    figure: str
    key: str
    column: str
    duckdb: Any
    spark: Any
    ok: bool


@dataclass
class CheckResult:
    comparisons: list[Comparison]
    seconds: dict[str, float] = field(default_factory=dict)
    spark_results: dict[str, int] = field(default_factory=dict)  # "<node kind> <status>" -> count on Spark

    @property
    def ok(self) -> bool:
        return bool(self.comparisons) and all(c.ok for c in self.comparisons)

    @property
    def mismatches(self) -> list[Comparison]:
        return [c for c in self.comparisons if not c.ok]


def _plain(value: Any) -> Any:
    """Engine values as plain Python: Decimal -> float, dates -> ISO text, numpy scalars -> Python."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return value


def _same(a: Any, b: Any, tolerance: float, rel_tolerance: float = 1e-9) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=rel_tolerance, abs_tol=tolerance)
    return a == b


def compare_rows(
    figure: str,
    columns: Sequence[str],
    keys: int,
    duckdb_rows: Iterable[Sequence[Any]],
    spark_rows: Iterable[Sequence[Any]],
    tolerance: float = 0.0,
    rel_tolerance: float = 1e-9,
) -> list[Comparison]:
    """Compare two result sets by key, value column by value column.

    A key present on one engine only is a mismatch (its values are reported against None), and a key
    that appears twice on one engine is an error (the figure's SQL must give one row per key).
    """

    def index(rows: Iterable[Sequence[Any]], engine: str) -> dict[tuple, tuple]:
        out: dict[tuple, tuple] = {}
        for row in rows:
            plain = tuple(_plain(v) for v in row)
            key = plain[:keys]
            if key in out:
                raise ValueError(f"{figure}: key {key} appears twice in the {engine} result")
            out[key] = plain[keys:]
        return out

    duck, spark = index(duckdb_rows, "DuckDB"), index(spark_rows, "Spark")
    width = len(columns) - keys
    out: list[Comparison] = []
    for key in sorted(
        duck.keys() | spark.keys(), key=lambda k: tuple("" if v is None else str(v) for v in k)
    ):
        d_vals = duck.get(key, (None,) * width)
        s_vals = spark.get(key, (None,) * width)
        both = key in duck and key in spark
        label = " / ".join("null" if v is None else str(v) for v in key)
        for column, d, s in zip(columns[keys:], d_vals, s_vals, strict=True):
            out.append(
                Comparison(figure, label, column, d, s, both and _same(d, s, tolerance, rel_tolerance))
            )
    return out


def totals_sql(columns: Sequence[tuple[str, str]], quote: str) -> tuple[list[str], str]:
    """Labels and one-row SQL (with `{rel}`) totalling a mart: rows, then per column a sum (numbers),
    a count of true (booleans) or a count of distinct values (text, dates, timestamps)."""
    labels, exprs = ["rows"], ["count(*)"]
    for name, dtype in columns:
        q = f"{quote}{name}{quote}"
        dtype = dtype.upper()
        if dtype in _INTEGER_TYPES or dtype.startswith(("DECIMAL", "DOUBLE", "FLOAT", "REAL")):
            labels.append(f"sum({name})")
            exprs.append(f"sum(cast({q} as double))")
        elif dtype == "BOOLEAN":
            labels.append(f"true({name})")
            exprs.append(f"sum(case when {q} then 1 else 0 end)")
        else:
            labels.append(f"distinct({name})")
            exprs.append(f"count(distinct {q})")
    return labels, "select " + ", ".join(exprs) + " from {rel}"


def rounding_allowances(con: Any, rel: str, columns: Sequence[tuple[str, str]]) -> dict[str, float]:
    """Per DOUBLE column of a DuckDB relation: allowed difference of its sum, as `sum(<column>)` -> value.

    The column's rounding unit is the smallest 10^-d (d = 1..8) of which every value is a multiple;
    the allowance is that unit times the non-null rows (each row may round an exact half the other way).
    """
    doubles = [name for name, dtype in columns if dtype.upper() in ("DOUBLE", "FLOAT", "REAL")]
    if not doubles:
        return {}
    digits = range(1, 9)
    exprs: list[str] = []
    for name in doubles:
        x = f'cast("{name}" as double)'
        exprs += [f'count("{name}")', *(f"max(abs({x} - round({x}, {d})))" for d in digits)]
    row = con.sql(f"select {', '.join(exprs)} from {rel}").fetchall()[0]
    out: dict[str, float] = {}
    width = 1 + len(digits)
    for i, name in enumerate(doubles):
        count, *errors = row[i * width : (i + 1) * width]
        d = next((k for k, e in zip(digits, errors, strict=True) if e is not None and e < 1e-9), None)
        out[f"sum({name})"] = count * 10.0**-d if d is not None else 0.0
    return out


def _cell(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:.6g}" if abs(v) >= 1e6 else f"{v:.6f}".rstrip("0").rstrip(".")
    return str(v)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def format_report(comparisons: Sequence[Comparison]) -> str:
    """The key figures value by value, then one line per mart (rows and column totals), then any mismatch."""
    figures = [c for c in comparisons if not c.figure.startswith(MART_PREFIX)]
    marts: dict[str, list[Comparison]] = {}
    for c in comparisons:
        if c.figure.startswith(MART_PREFIX):
            marts.setdefault(c.figure[len(MART_PREFIX) :], []).append(c)
    lines = ["Key figures, DuckDB vs Spark"]
    lines += _table(
        ("figure", "key", "column", "duckdb", "spark", ""),
        [
            (c.figure, c.key, c.column, _cell(c.duckdb), _cell(c.spark), "ok" if c.ok else "MISMATCH")
            for c in figures
        ],
    )
    if marts:
        lines += [
            "",
            "Every mart: row count, and a total per column (sum, count of true, or distinct values)",
        ]
        rows = []
        for mart, cs in marts.items():
            count = next((c for c in cs if c.column == "rows"), None)
            bad = [c.column for c in cs if not c.ok]
            rows.append(
                (
                    mart,
                    _cell(count.duckdb if count else None),
                    _cell(count.spark if count else None),
                    str(len(cs)),
                    ", ".join(bad) if bad else "ok",
                )
            )
        lines += _table(("mart", "rows duckdb", "rows spark", "values compared", "differing"), rows)
    bad = [c for c in comparisons if not c.ok]
    if bad:
        lines += ["", "Mismatches"]
        lines += _table(
            ("figure", "key", "column", "duckdb", "spark"),
            [(c.figure, c.key, c.column, _cell(c.duckdb), _cell(c.spark)) for c in bad],
        )
    lines.append(
        f"{len(comparisons) - len(bad)} of {len(comparisons)} values equal"
        + (f", {len(bad)} differ" if bad else "")
    )
    return "\n".join(lines)


@contextmanager
def _env(**values: str) -> Iterator[None]:
    """Set environment variables for the block (dbt's env_var reads os.environ at invocation time)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _dbt_args(command: list[str], target: str, work: Path) -> list[str]:
    """dbt arguments with target/ and logs/ in the work folder, so two builds never share state."""
    return [
        *command,
        "--target",
        target,
        "--project-dir",
        str(DBT_DIR),
        "--profiles-dir",
        str(DBT_DIR),
        "--target-path",
        str(work / f"target_{target}"),
        "--log-path",
        str(work / f"logs_{target}"),
    ]


def _build_command(models_only: bool) -> list[str]:
    return ["build", *(["--exclude", "resource_type:test", "resource_type:unit_test"] if models_only else [])]


def start_duckdb_build(data_dir: Path, warehouse: Path, work: Path, models_only: bool) -> subprocess.Popen:
    """Start `dbt build` on DuckDB in a subprocess (own process: DuckDB's single-writer file, own logs)."""
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    env = os.environ | {
        "SHOPLENS_DATA_DIR": str(data_dir),
        "SHOPLENS_WAREHOUSE": str(warehouse),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    with (work / "duckdb_build.log").open("w") as log:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "dbt"), *_dbt_args(_build_command(models_only), "dev", work)],
            env=env,
            cwd=work,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _invoke(runner: Any, args: list[str]) -> Any:
    """Run one dbt command in this process; raise with the failing nodes when it does not succeed."""
    res = runner.invoke(args)
    if res.success:
        return res
    failed: list[str] = []
    for r in getattr(res.result, "results", None) or []:
        if str(r.status) not in ("success", "pass"):
            failed.append(f"{r.node.unique_id}: {r.status}: {(r.message or '')[:400]}")
    detail = "\n".join(failed) or repr(res.exception)
    raise RuntimeError(f"dbt {args[0]} on Spark failed:\n{detail}")


def spark_build(work: Path, models_only: bool) -> tuple[dict[str, int], dict[str, float]]:
    """Register the raw tables and `dbt build` on Spark, in this process; return node statuses and timings."""
    from dbt.cli.main import dbtRunner  # dbt-core is a main dependency; the spark adapter is optional

    runner = dbtRunner()
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    _invoke(runner, _dbt_args(["run-operation", "create_spark_sources"], "spark", work))
    seconds["spark: parse, start session, register raw tables"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = _invoke(runner, _dbt_args(_build_command(models_only), "spark", work))
    seconds["spark: dbt build"] = time.perf_counter() - t0
    statuses: dict[str, int] = {}
    for r in res.result.results:
        kind = f"{r.node.unique_id.split('.')[0]} {r.status}"
        statuses[kind] = statuses.get(kind, 0) + 1
    return statuses, seconds


def mart_models(manifest_path: Path) -> list[str]:
    """Names of the models under models/marts/ (from the manifest of the Spark build)."""
    manifest = json.loads(manifest_path.read_text())
    return sorted(
        n["name"]
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and n["original_file_path"].startswith("models/marts/")
    )


def duckdb_schema(con: Any, mart: str, manifest_path: Path | None) -> str:
    """The DuckDB schema holding the marts: the one the DuckDB build wrote (its manifest), else, for an
    existing warehouse, `main` when the mart is there (the published copy), else the one schema that has it."""
    if manifest_path is not None and manifest_path.exists():
        nodes = json.loads(manifest_path.read_text())["nodes"].values()
        return next(n["schema"] for n in nodes if n["resource_type"] == "model" and n["name"] == mart)
    schemas = [
        r[0]
        for r in con.execute(
            "select table_schema from information_schema.tables where table_name = ? order by table_schema",
            [mart],
        ).fetchall()
    ]
    if not schemas:
        raise RuntimeError(f"the DuckDB warehouse has no table {mart}: build it first")
    return "main" if "main" in schemas else schemas[0]


def compare_builds(duckdb_con: Any, spark: Any, marts: Sequence[str], duck_schema: str) -> list[Comparison]:
    """Run every key figure and the per-mart totals on both engines and compare them."""

    def on_duckdb(sql: str, model: str) -> tuple[list[str], list[tuple]]:
        rel = duckdb_con.sql(sql.format(rel=f'{duck_schema}."{model}"'))
        return list(rel.columns), rel.fetchall()

    def on_spark(sql: str, model: str) -> list[tuple]:
        return [tuple(r) for r in spark.sql(sql.format(rel=f"{SPARK_SCHEMA}.{model}")).collect()]

    out: list[Comparison] = []
    for fig in FIGURES:
        columns, d_rows = on_duckdb(fig.sql, fig.model)
        s_rows = on_spark(fig.sql, fig.model)
        out += compare_rows(fig.name, columns, fig.keys, d_rows, s_rows, fig.tolerance, fig.rel_tolerance)

    for mart in marts:
        columns = [(r[0], r[1]) for r in duckdb_con.sql(f'describe {duck_schema}."{mart}"').fetchall()]
        spark_columns = {c.lower() for c in spark.table(f"{SPARK_SCHEMA}.{mart}").columns}
        missing = [name for name, _ in columns if name.lower() not in spark_columns]
        if missing:
            out += [
                Comparison(MART_PREFIX + mart, mart, f"column {m}", "present", None, False) for m in missing
            ]
            columns = [c for c in columns if c[0] not in missing]
        labels, duck_sql = totals_sql(columns, '"')
        _, spark_sql = totals_sql(columns, "`")
        d_row = on_duckdb(duck_sql, mart)[1][0]
        s_row = on_spark(spark_sql, mart)[0]
        allowances = rounding_allowances(duckdb_con, f'{duck_schema}."{mart}"', columns)
        for label, d, s in zip(labels, d_row, s_row, strict=True):
            d, s = _plain(d), _plain(s)
            ok = _same(d, s, allowances.get(label, 0.0), TOTAL_REL_TOLERANCE)
            out.append(Comparison(MART_PREFIX + mart, mart, label, d, s, ok))
    return out


def run_check(
    data_dir: Path,
    work_dir: Path,
    duckdb_warehouse: Path | None = None,
    models_only: bool = False,
    stop_spark: bool = True,
) -> CheckResult:
    """Build on both engines over `data_dir`/raw and compare; `work_dir` receives everything written."""
    import duckdb
    from pyspark.sql import SparkSession

    data_dir, work_dir = data_dir.resolve(), work_dir.resolve()
    if not any((data_dir / "raw").glob("*/*/*.parquet")):
        raise FileNotFoundError(
            f"{data_dir / 'raw'}: no raw Parquet (<table>/<folder>/*.parquet) to build from"
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    duck_proc = None
    if duckdb_warehouse is None:
        duckdb_warehouse = work_dir / "duckdb" / "shoplens.duckdb"
        duck_proc = start_duckdb_build(data_dir, duckdb_warehouse, work_dir, models_only)
    elif not duckdb_warehouse.exists():
        raise FileNotFoundError(f"{duckdb_warehouse}: no such DuckDB warehouse")

    spark_dir = work_dir / "spark"
    spark_dir.mkdir(exist_ok=True)
    try:
        try:
            with _env(
                SHOPLENS_DATA_DIR=str(data_dir),
                SHOPLENS_SPARK_DIR=str(spark_dir),
                SHOPLENS_SPARK_SCHEMA=SPARK_SCHEMA,
                DBT_SEND_ANONYMOUS_USAGE_STATS="false",
            ):
                statuses, spark_seconds = spark_build(work_dir, models_only)
            seconds.update(spark_seconds)
        except BaseException:
            if duck_proc is not None:
                duck_proc.kill()
                duck_proc.wait()
            raise
        if duck_proc is not None:
            t0 = time.perf_counter()
            if duck_proc.wait(timeout=900) != 0:
                log = (work_dir / "duckdb_build.log").read_text()[-4000:]
                raise RuntimeError(
                    f"dbt build on DuckDB failed (log {work_dir / 'duckdb_build.log'}):\n{log}"
                )
            seconds["duckdb: waiting for its build after Spark's"] = time.perf_counter() - t0

        spark = SparkSession.builder.getOrCreate()  # the session dbt-spark started: one JVM for the check
        t0 = time.perf_counter()
        con = duckdb.connect(str(duckdb_warehouse), read_only=True)
        try:
            marts = mart_models(work_dir / "target_spark" / "manifest.json")
            schema = duckdb_schema(
                con, marts[0], work_dir / "target_dev" / "manifest.json" if duck_proc else None
            )
            comparisons = compare_builds(con, spark, marts, schema)
        finally:
            con.close()
    finally:
        if stop_spark and SparkSession._instantiatedSession is not None:
            SparkSession._instantiatedSession.stop()
    seconds["compare"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - started
    return CheckResult(comparisons, seconds, statuses)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("SHOPLENS_DATA_DIR", PROJECT_ROOT / "data")),
        help="folder holding raw/ (default: $SHOPLENS_DATA_DIR or data/)",
    )
    parser.add_argument("--work-dir", type=Path, help="where both builds write (default: a temporary folder)")
    parser.add_argument("--duckdb-warehouse", type=Path, help="compare against this existing DuckDB build")
    parser.add_argument("--models-only", action="store_true", help="seeds and models only, no dbt tests")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="shoplens_spark_") as tmp:
        try:
            result = run_check(
                args.data_dir, args.work_dir or Path(tmp), args.duckdb_warehouse, args.models_only
            )
        except (RuntimeError, FileNotFoundError) as exc:
            print(f"spark check failed: {exc}", file=sys.stderr)
            return 2
    print(format_report(result.comparisons))
    print("Spark build: " + ", ".join(f"{v} {k}" for k, v in sorted(result.spark_results.items())))
    print("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items()))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
