"""The notebooks run top to bottom without an error against the warehouse of the tiny pipeline run.

Each notebook is executed with nbclient in a fresh kernel of this interpreter (a kernelspec written to a
temporary JUPYTER_PATH, so no system-wide or stale `python3` kernel is picked up), with SHOPLENS_WAREHOUSE
pointing at the tiny run's warehouse. The committed files must carry no outputs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest

from tests.conftest import TinyShop

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = ("customers", "demand_inventory", "logistics_satisfaction_carbon")
# Charts each notebook must draw on the tiny shop (sections that need decision tables may add more).
MIN_CHARTS = {"customers": 4, "demand_inventory": 3, "logistics_satisfaction_carbon": 5}




@pytest.fixture(scope="module")
def jupyter_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JUPYTER_PATH holding a `python3` kernelspec that runs this very interpreter (the project's venv)."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (shoplens test)",
                "language": "python",
            }
        )
    )
    return root


def test_committed_notebooks_are_valid_and_stripped() -> None:
    found = sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb"))
    assert found == sorted(NOTEBOOKS)
    for name in NOTEBOOKS:
        nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        assert nb.nbformat == 4 and nb.metadata["kernelspec"]["name"] == "python3"
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(c.outputs == [] and c.execution_count is None for c in code), (
            f"{name} has outputs"
        )
        assert sum(c.cell_type == "markdown" for c in nb.cells) >= 3, f"{name} explains too little"
        source = "\n".join(c.source for c in code)
        # Read-only, through the project's settings, never a hard-coded path.
        assert "read_only=True" in source and "get_settings().warehouse" in source
        assert "/tmp" not in source and "/work" not in source


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom(
    name: str, tiny_pipeline: TinyShop, jupyter_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbclient import NotebookClient

    monkeypatch.setenv("SHOPLENS_WAREHOUSE", str(tiny_pipeline.warehouse))
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_path))
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=180,
        allow_errors=False,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()  # raises CellExecutionError naming the cell on any error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"warehouse: {tiny_pipeline.warehouse}" in text, (
        "the notebook did not read the warehouse it was given"
    )
    charts = sum("image/png" in o.get("data", {}) for o in outputs)
    assert charts >= MIN_CHARTS[name], f"{name} drew {charts} charts"
