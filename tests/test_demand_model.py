"""The trained demand model on the tiny shop: stored once, kept while fresh, retrained when a week old."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import polars as pl
import pytest

from models import forecasting as fc
from pipelines.assets import forecasting as fa


@pytest.fixture()
def model_dir(tiny_pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: ANN001
    """A copy of the tiny shop's stored model in a data folder of its own."""
    target = tmp_path / "data" / "models"
    shutil.copytree(tiny_pipeline.data_dir / "models", target)
    monkeypatch.setenv("SHOPLENS_DATA_DIR", str(tmp_path / "data"))
    return target


def test_the_nightly_run_stored_the_model_it_forecast_with(tiny_pipeline) -> None:  # noqa: ANN001
    trained = fc.load_model(tiny_pipeline.data_dir / "models" / "demand_model.joblib")
    last = dt.date.fromisoformat(tiny_pipeline.manifest["last_date"])
    assert trained.history_end == last and trained.serves_until == last + dt.timedelta(days=14)
    forecast = pl.read_parquet(tiny_pipeline.data_dir / "exports" / "demand_forecast.parquet")
    assert forecast["date"].min() == last + dt.timedelta(days=1)
    assert forecast["sku"].n_unique() == int(trained.diagnostics["skus"])


def test_retrain_decision(model_dir: Path) -> None:
    trained = fc.load_model(model_dir / "demand_model.joblib")
    end = trained.history_end
    auto = fa.ModelSettings(use_prophet=False)
    assert fa._why_retrain(auto, end, use_prophet=False) is None
    assert fa._why_retrain(auto, end + dt.timedelta(days=6), use_prophet=False) is None
    assert "7 days old" in fa._why_retrain(auto, end + dt.timedelta(days=7), use_prophet=False)
    assert "always" in fa._why_retrain(fa.ModelSettings(retrain="always"), end, use_prophet=False)
    assert "settings changed" in fa._why_retrain(fa.ModelSettings(horizon_days=14), end, use_prophet=False)
    assert "settings changed" in fa._why_retrain(auto, end, use_prophet=True)
    (model_dir / "demand_model.joblib").write_bytes(b"truncated")
    assert "cannot be read" in fa._why_retrain(auto, end, use_prophet=False)
    (model_dir / "demand_model.joblib").unlink()
    assert "no trained model" in fa._why_retrain(auto, end, use_prophet=False)
