"""Shared fixtures: the dbt manifest (prepared once per session, never at import) and a tiny shop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DBT_DIR = ROOT / "dbt_project"
REALDATA = Path(os.environ.get("SHOPLENS_REALDATA", ROOT.parent / "shared" / "realdata"))


def _dbt() -> str:
    return str(Path(sys.executable).parent / "dbt")


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest() -> Path:
    """`dbt parse` when the manifest is missing or older than any dbt file (what `make manifest` does)."""
    manifest = DBT_DIR / "target" / "manifest.json"
    newest = max(p.stat().st_mtime for p in DBT_DIR.rglob("*") if p.is_file() and "target" not in p.parts)
    if not manifest.exists() or manifest.stat().st_mtime < newest:
        subprocess.run([_dbt(), "parse", "--profiles-dir", ".", "--quiet"], cwd=DBT_DIR, check=True)
    return manifest


@pytest.fixture()
def shop_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every shoplens path at a fresh folder for one test."""
    data = tmp_path / "data"
    monkeypatch.setenv("SHOPLENS_DATA_DIR", str(data))
    monkeypatch.setenv("SHOPLENS_LANDING", str(data / "landing"))
    monkeypatch.setenv("SHOPLENS_WAREHOUSE", str(data / "warehouse" / "shoplens.duckdb"))
    return data
