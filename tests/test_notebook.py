"""notebooks/explore.ipynb runs top to bottom (nbclient) on a finished project of
any source, and shows what the report cannot: the score's dependence on each MEDDIC
field per dimension, calibration per segment, the leads where the model and BANT
disagree most, and the base rate by month; in the project's own numbers, leads and
column names.

The notebook reads the project folder named by ``LEAD_ML_PROJECT``; here that is
the session's finished project (tests/projects.py) of the synthetic CRM and of the
X Education export (skipped without ../shared/data).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pytest
from projects import Project

from lead_ml import report
from lead_ml.audit import split_method
from lead_ml.model import split_frames
from lead_ml.scorer import load_scorer
from lead_ml.vocab import MEDDIC_DIMENSIONS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "explore.ipynb"
#: The sources the notebook runs on: the built-in CRM and an export without dates.
SOURCES = ("synthetic", "x_education")


def code_cells(notebook: Any) -> list[Any]:
    """The notebook's code cells, in order."""
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def text_of(cell: Any) -> str:
    """Everything a code cell showed: printed text, tables as text and as HTML."""
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        data = output.get("data", {})
        parts += [data.get("text/plain", ""), data.get("text/html", "")]
    return "\n".join(parts)


def shown(notebook: Any) -> str:
    """Everything the notebook showed."""
    return "\n".join(text_of(cell) for cell in code_cells(notebook))


@pytest.fixture(scope="module", params=SOURCES)
def run(request: pytest.FixtureRequest) -> tuple[Project, Any]:
    """A source's finished project and the notebook after running every cell on it."""
    import nbformat
    from nbclient import NotebookClient

    project: Project = request.getfixturevalue(f"{request.param}_project")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    with pytest.MonkeyPatch.context() as env:
        # The kernel inherits this environment: the project, and its own MLflow store.
        env.setenv("LEAD_ML_PROJECT", str(project.root))
        env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project.root / 'mlflow.db'}")
        env.setenv("JUPYTER_PLATFORM_DIRS", "1")
        client.execute()
    return project, notebook


def test_notebook_is_stored_without_outputs() -> None:
    stored = json.loads(NOTEBOOK.read_text())
    cells = [c for c in stored["cells"] if c["cell_type"] == "code"]
    assert cells and all(not c["outputs"] and not c["execution_count"] for c in cells)


def test_notebook_uses_lead_ml_instead_of_copying_its_logic() -> None:
    stored = json.loads(NOTEBOOK.read_text())
    source = "\n".join("".join(c["source"]) for c in stored["cells"])
    assert "from lead_ml" in source
    assert "def " not in source and "lambda" not in source
    # Nothing names one source: the same cells serve every export.
    assert '"meddic_' not in source and "'meddic_" not in source


def test_every_cell_runs_without_error(run: tuple[Project, Any]) -> None:
    project, notebook = run
    cells = code_cells(notebook)
    assert all(cell.execution_count for cell in cells)
    errors = [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert errors == []
    first = text_of(cells[0])
    assert f"project: {project.root}" in first
    assert f"source: {project.params.source.name}" in first


def test_bant_versus_model_shows_the_evaluated_metrics(
    run: tuple[Project, Any],
) -> None:
    project, notebook = run
    metrics = json.loads(project.path("reports/metrics.json").read_text())
    text = shown(notebook)
    assert f"{metrics['model']['roc_auc']:.3f}" in text
    assert f"{metrics['bant']['roc_auc']:.3f}" in text
    assert f"{metrics['capacity']['model_wins']} (" in text


def test_charts_are_vega_lite_drawn_as_svg(run: tuple[Project, Any]) -> None:
    project, notebook = run
    svgs = [
        output["data"]["image/svg+xml"]
        for cell in code_cells(notebook)
        for output in cell.outputs
        if "image/svg+xml" in output.get("data", {})
    ]
    # The base rate over time, and calibration per segment column.
    assert len(svgs) >= 2
    assert all("role-mark" in s and "<svg" in s for s in svgs)
    assert any("Calibration by " in s for s in svgs)


def window_of(project: Project) -> report.Window:
    scorer = load_scorer(project.path("models/scorer"))
    test = split_frames(project.features()).test
    return report.score_window(scorer, test, project.deals(), project.params)


def test_dependence_on_each_meddic_field_per_dimension(
    run: tuple[Project, Any],
) -> None:
    project, notebook = run
    registry = load_scorer(project.path("models/scorer")).registry
    text = shown(notebook)
    for dimension in MEDDIC_DIMENSIONS:
        assert f"== {report.DIMENSION_LABELS[dimension]}: " in text
        for spec in registry.specs:
            if spec.dimension == dimension:
                assert "mean contribution" in text and html.escape(spec.words) in text


def test_calibration_per_segment_and_disagreements_are_shown(
    run: tuple[Project, Any],
) -> None:
    project, notebook = run
    window = window_of(project)
    assert window.deals is not None
    columns = report.segment_columns(project.params, window.deals)
    text = shown(notebook)
    assert f"segment columns: {', '.join(columns)}" in text
    scored = window.scored
    lowest = scored[scored["bant_qualified"]].sort_values("probability").head(5)
    highest = scored[~scored["bant_qualified"]].sort_values(
        "probability", ascending=False
    )
    for deal_id in [*lowest["deal_id"], *highest["deal_id"].head(5)]:
        assert deal_id in text
    assert "BANT turns them away; the model ranks them highest" in text


def test_base_rate_is_followed_by_month_or_order(run: tuple[Project, Any]) -> None:
    project, notebook = run
    features = project.features()
    method, _ = split_method(features)
    text = shown(notebook)
    if method == "time":
        closed = features[features["won"].notna()]
        months = closed["created_at"].dt.to_period("M").astype(str).unique()
        assert all(month in text for month in months)
    else:
        assert "tenth of the order" in text


def test_example_leads_are_explained(run: tuple[Project, Any]) -> None:
    project, notebook = run
    params = project.params
    scorer = load_scorer(project.path("models/scorer"))
    test = split_frames(project.features()).test
    window = report.score_window(scorer, test, project.deals(), params)
    text = shown(notebook)
    examples = report.example_leads(window.scored)
    for deal_id in examples["deal_id"]:
        assert deal_id in text
    for deal_id in report.question_leads(window.scored, examples)["deal_id"]:
        assert deal_id in text
    assert "Ask about" in text


def test_the_sources_own_column_names_are_shown(run: tuple[Project, Any]) -> None:
    project, notebook = run
    specs = load_scorer(project.path("models/scorer")).registry.specs
    text = shown(notebook)
    assert [
        s.column for s in specs if s.column and html.escape(s.column) not in text
    ] == []
    # A feature's internal name (total_time_spent_on_website for "Total Time Spent
    # on Website") is not the user's.
    internal = [
        s.name for s in specs if s.column and s.name != s.column and "_" in s.name
    ]
    assert [name for name in internal if name in text] == []
