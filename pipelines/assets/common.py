"""Small helpers the decision assets share: metadata previews, charts, and mart availability."""

import base64
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl

from pipelines.core.settings import get_settings

OWNERS = ["team:analytics"]
# Decisions read the marts only after the audited dbt build was published to schema main.
PUBLISHED = dg.AssetKey("published_warehouse")


@dataclass(frozen=True)
class _Decisions:
    def chart_path(self, name: str) -> Path:
        folder = get_settings().reports_dir / "charts"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name


DECISIONS = _Decisions()


def md_preview(frame: pl.DataFrame, rows: int = 10) -> dg.MetadataValue:
    """A markdown table of the first rows (floats rounded) for the asset's page in the UI."""
    head = frame.head(rows).with_columns(
        [pl.col(c).round(3) for c, d in frame.schema.items() if d in (pl.Float32, pl.Float64)]
    )
    cols = head.columns
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in head.iter_rows():
        lines.append("| " + " | ".join("" if v is None else str(v).replace("|", "/") for v in row) + " |")
    return dg.MetadataValue.md("\n".join(lines))


def png_metadata(label: str, path: Path) -> dict[str, dg.MetadataValue]:
    """A chart in the UI: the PNG embedded in markdown, plus its path."""
    if not path.exists():
        return {}
    data = base64.b64encode(path.read_bytes()).decode()
    return {
        label: dg.MetadataValue.md(f"![{label}](data:image/png;base64,{data})"),
        f"{label}_path": dg.MetadataValue.path(str(path)),
    }


def needs_marts(con, names: list[str], schema: str = "main") -> list[str]:
    """The marts among `names` that are not in the warehouse (skipped because the source lacks data)."""
    present = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [schema]
        ).fetchall()
    }
    return [n for n in names if n not in present]
