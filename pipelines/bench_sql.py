"""The dbt marts as a plain DuckDB SQL script, no dbt: the baseline the benchmark compares dbt against.

dbt's own compiled SQL of every model (the `compiled_code` that `dbt compile` puts in
target/manifest.json) is executed as `CREATE OR REPLACE TABLE/VIEW <relation> AS <compiled sql>` in a
fresh DuckDB file, in dependency order, seeds loaded from their CSVs with the seed's column types.
Tests and unit tests are left out. The SQL is the same text dbt runs, so the time dbt takes beyond
this script is what dbt itself costs (parsing, Jinja, its materialization macros, adapter round trips).

    python -m pipelines.bench_sql --manifest data/bench/small/dbt_target/manifest.json \\
        --database data/bench/small/plain/shoplens.duckdb --json out.json [--script out.sql]

`compile_manifest()` runs `dbt compile` into a target folder of your choice (never the project's own
target/, which the Dagster code location reads).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from graphlib import TopologicalSorter
from pathlib import Path

import duckdb

from pipelines.core.settings import DBT_PROJECT_DIR

BUILT_TYPES = ("seed", "model")


@dataclass(frozen=True)
class Node:
    """One relation to build: a seed (from its CSV) or a model (from its compiled SQL)."""

    unique_id: str
    resource_type: str  # seed | model
    relation: str  # quoted "database"."schema"."alias", as dbt's compiled SQL refers to it
    database: str
    schema: str
    name: str
    materialized: str  # view | table | seed
    layer: str  # staging | intermediate | marts | seeds
    sql: str  # the statement that builds the relation


@dataclass
class PlainResult:
    """Timings of one plain run: total, per statement and per layer, plus rows of each table built."""

    seconds: float = 0.0
    statements: int = 0
    seconds_by_layer: dict[str, float] = field(default_factory=dict)
    seconds_by_node: dict[str, float] = field(default_factory=dict)
    rows_by_table: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def _quote(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _layer(node: dict) -> str:
    if node["resource_type"] == "seed":
        return "seeds"
    fqn = node.get("fqn", [])
    return fqn[1] if len(fqn) > 2 else "models"


def _seed_sql(node: dict, relation: str, project_dir: Path) -> str:
    """CREATE TABLE from the seed's CSV; typed columns as the seed config says, the rest auto-detected."""
    path = Path(node.get("root_path") or project_dir) / node["original_file_path"]
    types = node.get("config", {}).get("column_types") or {}
    # `string` is dbt's portable name (Spark needs it); DuckDB knows it as VARCHAR.
    typed = ", ".join(
        f"{_sql_literal(c)}: {_sql_literal('VARCHAR' if t.lower() == 'string' else t)}"
        for c, t in types.items()
    )
    delim = node.get("config", {}).get("delimiter") or ","
    options = f"header = true, delim = {_sql_literal(delim)}" + (f", types = {{{typed}}}" if typed else "")
    return (
        f"CREATE OR REPLACE TABLE {relation} AS SELECT * FROM read_csv({_sql_literal(str(path))}, {options})"
    )


def _model_sql(node: dict, relation: str) -> str:
    code = node.get("compiled_code")
    if code is None:
        raise ValueError(
            f"{node['original_file_path']}: the manifest has no compiled SQL for model {node['name']}: "
            "give the manifest `dbt compile` wrote (compile_manifest), not the one of `dbt parse`"
        )
    materialized = node["config"].get("materialized", "view")
    # An incremental model's compiled SQL without min_date/max_date vars selects every day (the window
    # defaults to the whole history), so as a plain table it is the full build dbt's first run does.
    if materialized not in ("view", "table", "incremental"):
        raise ValueError(
            f"{node['original_file_path']}: materialization {materialized!r} of {node['name']} has no plain-SQL "
            "equivalent here (only view, table and incremental)"
        )
    kind = "VIEW" if materialized == "view" else "TABLE"
    # A trailing semicolon or comment line in a model would break the wrapping parentheses.
    body = code.strip().rstrip(";")
    return f"CREATE OR REPLACE {kind} {relation} AS (\n{body}\n)"


def plain_nodes(
    manifest: dict, project_dir: Path = DBT_PROJECT_DIR, exclude_sources: tuple[str, ...] = ()
) -> list[Node]:
    """Seeds and models of a compiled manifest in dependency order (tests excluded).

    `exclude_sources` names raw tables the source lacks: every model built on them is left out, as the
    Dagster dbt asset excludes `source:raw.<table>+`.
    """
    wanted = {uid: n for uid, n in manifest["nodes"].items() if n["resource_type"] in BUILT_TYPES}
    excluded_roots = {
        f"source.{manifest['metadata'].get('project_name', 'shoplens')}.raw.{t}" for t in exclude_sources
    }
    graph = {
        uid: [d for d in n.get("depends_on", {}).get("nodes", []) if d in wanted] for uid, n in wanted.items()
    }
    order = list(TopologicalSorter(graph).static_order())
    dropped: set[str] = set()
    for uid in order:
        deps = wanted[uid].get("depends_on", {}).get("nodes", [])
        if any(d in excluded_roots or d in dropped for d in deps):
            dropped.add(uid)
    nodes = []
    for uid in order:
        if uid in dropped:
            continue
        n = wanted[uid]
        alias = n.get("alias") or n["name"]
        relation = n.get("relation_name") or ".".join(_quote(p) for p in (n["database"], n["schema"], alias))
        sql = _seed_sql(n, relation, project_dir) if n["resource_type"] == "seed" else _model_sql(n, relation)
        nodes.append(
            Node(
                unique_id=uid,
                resource_type=n["resource_type"],
                relation=relation,
                database=n["database"],
                schema=n["schema"],
                name=alias,
                materialized="seed"
                if n["resource_type"] == "seed"
                else n["config"].get("materialized", "view"),
                layer=_layer(n),
                sql=sql,
            )
        )
    return nodes


def script(nodes: list[Node]) -> str:
    """The whole run as one SQL script (to read, or to run with the duckdb CLI against a file with the
    database name the manifest was compiled for)."""
    schemas = sorted({(n.database, n.schema) for n in nodes})
    head = [f"CREATE SCHEMA IF NOT EXISTS {_quote(d)}.{_quote(s)};" for d, s in schemas]
    return "\n\n".join([*head, *(f"-- {n.unique_id} ({n.materialized})\n{n.sql};" for n in nodes)]) + "\n"


def run_plain(nodes: list[Node], database: Path, threads: int | None = None) -> PlainResult:
    """Build every node in a FRESH DuckDB file, timing each statement.

    The file is attached under the database name the SQL was compiled for (dbt-duckdb names it after
    the warehouse file), so `"shoplens"."build"."x"` resolves whatever the file is called.
    """
    result = PlainResult()
    database.parent.mkdir(parents=True, exist_ok=True)
    for stale in (database, database.with_name(database.name + ".wal")):
        stale.unlink(missing_ok=True)
    names = {n.database for n in nodes}
    if len(names) > 1:
        raise ValueError(
            f"the manifest spans several databases {sorted(names)}: one plain file cannot stand in"
        )
    db_name = names.pop() if names else "shoplens"
    con = duckdb.connect(":memory:")
    try:
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        con.execute(f"ATTACH {_sql_literal(str(database))} AS {_quote(db_name)}")
        con.execute(f"USE {_quote(db_name)}")
        started = time.perf_counter()
        for d, s in sorted({(n.database, n.schema) for n in nodes}):
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(d)}.{_quote(s)}")
        for node in nodes:
            t0 = time.perf_counter()
            try:
                con.execute(node.sql)
            except duckdb.Error as err:
                result.error = f"{node.unique_id}: {err}"
                break
            spent = time.perf_counter() - t0
            result.seconds_by_node[node.name] = round(spent, 3)
            result.seconds_by_layer[node.layer] = result.seconds_by_layer.get(node.layer, 0.0) + spent
            result.statements += 1
        con.execute("CHECKPOINT")
        result.seconds = time.perf_counter() - started
        for node in nodes:
            if node.materialized != "view" and node.name in result.seconds_by_node:
                result.rows_by_table[node.name] = con.execute(
                    f"SELECT count(*) FROM {node.relation}"
                ).fetchall()[0][0]
    finally:
        con.close()
    result.seconds_by_layer = {k: round(v, 3) for k, v in result.seconds_by_layer.items()}
    return result


def dbt_executable() -> str:
    exe = Path(sys.executable).parent / "dbt"
    return str(exe) if exe.exists() else "dbt"


def compile_manifest(
    target_path: Path, env: dict[str, str] | None = None, project_dir: Path = DBT_PROJECT_DIR
) -> Path:
    """`dbt compile` into `target_path` (its own folder, so the project's target/ stays untouched).

    dbt-duckdb opens the warehouse file while compiling: its folder must exist (else the connection
    fails, after retries), so it is created here.
    """
    target_path.mkdir(parents=True, exist_ok=True)
    merged = {**os.environ, **(env or {})}
    if merged.get("SHOPLENS_WAREHOUSE"):
        Path(merged["SHOPLENS_WAREHOUSE"]).parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        dbt_executable(),
        "compile",
        "--profiles-dir",
        str(project_dir),
        "--project-dir",
        str(project_dir),
        "--target-path",
        str(target_path),
        "--log-path",
        str(target_path / "logs"),
        "--quiet",
    ]
    done = subprocess.run(cmd, cwd=project_dir, env=merged, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(
            f"dbt compile failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return target_path / "manifest.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--manifest", type=Path, required=True, help="a manifest.json written by `dbt compile`"
    )
    parser.add_argument("--database", type=Path, required=True, help="the DuckDB file to build (replaced)")
    parser.add_argument("--json", type=Path, default=None, help="write the timings here")
    parser.add_argument("--script", type=Path, default=None, help="also write the SQL script here")
    parser.add_argument("--exclude-source", action="append", default=[], help="a raw table the source lacks")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    manifest = json.loads(args.manifest.read_text())
    nodes = plain_nodes(manifest, exclude_sources=tuple(args.exclude_source))
    if args.script:
        args.script.write_text(script(nodes))
    result = run_plain(nodes, args.database, threads=args.threads)
    payload = {**asdict(result), "nodes": len(nodes)}
    if args.json:
        args.json.write_text(json.dumps(payload, indent=2))
    print(
        f"plain SQL: {result.statements}/{len(nodes)} statements in {result.seconds:.1f} s "
        + " ".join(f"{k}={v:.1f}s" for k, v in result.seconds_by_layer.items())
    )
    if result.error:
        print(f"FAILED at {result.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
