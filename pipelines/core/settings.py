"""One place for paths and knobs, read from environment variables with safe defaults.

SHOPLENS_DATA_DIR   root of generated and landed data (default: <project>/data)
SHOPLENS_LANDING    landing folder the ingestion assets read (default: <data>/landing)
SHOPLENS_WAREHOUSE  the DuckDB file dbt builds and decision assets write (default: <data>/warehouse/shoplens.duckdb)
SHOPLENS_START_DATE first daily partition (default 2024-01-01)

`export_env()` writes the resolved absolute paths back into os.environ, so dbt's profiles.yml and
sources (which read them with env_var) see exactly what Dagster sees.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    landing_dir: Path
    warehouse: Path
    start_date: str
    timezone: str
    pii_key: str | None
    mode: str  # "demo" or "production"

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "raw" / "_quarantine"

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"


def get_settings() -> Settings:
    data_dir = Path(os.environ.get("SHOPLENS_DATA_DIR", PROJECT_ROOT / "data")).resolve()
    landing = Path(os.environ.get("SHOPLENS_LANDING", data_dir / "landing")).resolve()
    warehouse = Path(os.environ.get("SHOPLENS_WAREHOUSE", data_dir / "warehouse" / "shoplens.duckdb")).resolve()
    return Settings(
        data_dir=data_dir,
        landing_dir=landing,
        warehouse=warehouse,
        start_date=os.environ.get("SHOPLENS_START_DATE", "2024-01-01"),
        timezone=os.environ.get("SHOPLENS_TIMEZONE", "Asia/Shanghai"),
        pii_key=os.environ.get("SHOPLENS_PII_KEY"),
        mode=os.environ.get("SHOPLENS_MODE", "demo"),
    )


def export_env(settings: Settings | None = None) -> Settings:
    """Publish resolved paths as environment variables for dbt (profiles.yml, sources.yml)."""
    s = settings or get_settings()
    os.environ["SHOPLENS_DATA_DIR"] = str(s.data_dir)
    os.environ["SHOPLENS_LANDING"] = str(s.landing_dir)
    os.environ["SHOPLENS_WAREHOUSE"] = str(s.warehouse)
    s.warehouse.parent.mkdir(parents=True, exist_ok=True)
    return s
