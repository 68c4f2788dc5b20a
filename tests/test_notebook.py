"""notebooks/explore.ipynb runs top to bottom (nbclient) on a small generated CRM.

The notebook reads the project folder named by ``LEAD_ML_PROJECT``; here that is
conftest's ``small_project``: the pipeline up to export on 3,000 generated deals.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from lead_ml import report
from lead_ml.config import load_params
from lead_ml.model import time_split
from lead_ml.scorer import load_scorer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "explore.ipynb"


def code_cells(notebook: Any) -> list[Any]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def text_of(cell: Any) -> str:
    """Everything a code cell showed: printed text, tables as text and as HTML."""
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        data = output.get("data", {})
        parts += [data.get("text/plain", ""), data.get("text/html", "")]
    return "\n".join(parts)


@pytest.fixture(scope="module")
def executed(small_project: Path) -> Any:
    """The notebook after running every cell against the small project."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    with pytest.MonkeyPatch.context() as env:
        # The kernel inherits this environment: the project, and its own MLflow store.
        env.setenv("LEAD_ML_PROJECT", str(small_project))
        env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{small_project / 'mlflow.db'}")
        env.setenv("JUPYTER_PLATFORM_DIRS", "1")
        client.execute()
    return notebook


def test_notebook_is_stored_without_outputs() -> None:
    stored = json.loads(NOTEBOOK.read_text())
    cells = [c for c in stored["cells"] if c["cell_type"] == "code"]
    assert cells and all(not c["outputs"] and not c["execution_count"] for c in cells)


def test_notebook_uses_lead_ml_instead_of_copying_its_logic() -> None:
    stored = json.loads(NOTEBOOK.read_text())
    source = "\n".join("".join(c["source"]) for c in stored["cells"])
    assert "from lead_ml" in source
    assert "def " not in source and "lambda" not in source


def test_every_cell_runs_without_error(executed: Any, small_project: Path) -> None:
    cells = code_cells(executed)
    assert all(cell.execution_count for cell in cells)
    errors = [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert errors == []
    assert f"project: {small_project}" in text_of(cells[0])


def test_bant_versus_model_shows_the_evaluated_metrics(
    executed: Any, small_project: Path
) -> None:
    metrics = json.loads((small_project / "reports/metrics.json").read_text())
    shown = "\n".join(text_of(cell) for cell in code_cells(executed))
    assert f"{metrics['model']['roc_auc']:.3f}" in shown
    assert f"{metrics['bant']['roc_auc']:.3f}" in shown
    assert f"{metrics['capacity']['model_wins']} (" in shown


def test_charts_are_drawn_as_svg(executed: Any) -> None:
    svgs = [
        output["data"]["image/svg+xml"]
        for cell in code_cells(executed)
        for output in cell.outputs
        if "image/svg+xml" in output.get("data", {})
    ]
    assert len(svgs) == 4
    assert all('class="series"' in s or 'class="bar"' in s for s in svgs)


def test_example_leads_are_explained(executed: Any, small_project: Path) -> None:
    params = load_params(small_project / "params.yaml")
    paths = report.ReportPaths.under(small_project)
    test = time_split(pd.read_parquet(paths.features), params.split).test
    scored = report.score_window(
        load_scorer(paths.scorer), test, paths.validated, params
    )
    shown = "\n".join(text_of(cell) for cell in code_cells(executed))
    for deal_id in report.example_leads(scored)["deal_id"]:
        assert deal_id in shown
    assert "Ask about" in shown
