"""Shared fixtures: the dbt manifest (prepared once per session, never at import) and a tiny shop."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# Daily partitions reach back far enough for the real-data tests (Online Retail starts in 2010); set before
# anything imports pipelines.partitions.
os.environ.setdefault("SHOPLENS_START_DATE", "2010-01-01")

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


# The tiny synthetic shop run through the whole pipeline, once per test session.


@dataclass(frozen=True)
class TinyShop:
    data_dir: Path
    warehouse: Path
    raw_dir: Path
    manifest: dict


_TINY: dict[str, TinyShop] = {}


def build_tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> TinyShop:
    """Land the tiny synthetic shop and run the nightly job over it in a temp folder (once per process).

    Paths and DAGSTER_HOME point at the temp folder only while the run lasts; the environment is
    restored afterwards so other tests see their own settings. Shared with test_notebooks.py.
    """
    if "shop" in _TINY:
        return _TINY["shop"]
    root = tmp_path_factory.mktemp("tiny_shop")
    data, home = root / "data", root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    env = {
        "SHOPLENS_DATA_DIR": data,
        "SHOPLENS_LANDING": data / "landing",
        "SHOPLENS_WAREHOUSE": data / "warehouse" / "shoplens.duckdb",
        "DAGSTER_HOME": home,
        "SHOPLENS_USE_PROPHET": "0",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, str(value))
        from pipelines.demo import land_source, run_pipeline

        manifest = land_source("synthetic", None, "tiny", force=True)
        import dagster as dg

        # An in-memory Dagster instance: the test needs the run, not its history in $DAGSTER_HOME.
        ok = run_pipeline(manifest, instance=dg.DagsterInstance.ephemeral())
    assert ok, "the tiny pipeline run failed: see the captured log"
    shop = TinyShop(data, data / "warehouse" / "shoplens.duckdb", data / "raw", manifest)
    assert shop.warehouse.exists(), f"the run did not create {shop.warehouse}"
    _TINY["shop"] = shop
    return shop


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> TinyShop:
    return build_tiny_pipeline(tmp_path_factory)
