"""`lead-ml track` completes the MLflow record of the current outputs (issue 15).

After `make clean` (or in a fresh clone) `dvc repro` retrains to the same bytes and
skips evaluate and report (maybe export): the new store's run would lack metrics,
figures, the test dataset and a registered version. A copy of the synthetic project
with its store deleted must get them back from the outputs alone, a second call must
change nothing, a run missing only its evaluation must gain it, and no output file
may change (the files are hashed before and after).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from projects import Project, project_environment
from typer.testing import CliRunner

from lead_ml import stages, tracking
from lead_ml.cli import app
from lead_ml.model import load_model, split_frames
from lead_ml.tracking import file_md5

pytestmark = pytest.mark.slow
runner = CliRunner()
FIGURES = {f"figures/{n}.png" for n in ("roc", "pr", "calibration", "gains")}
STORE = ("mlflow.db", "mlruns")


def outputs(root: Path) -> dict[str, str]:
    """md5 of every file of the project but its MLflow store."""
    return {
        path.relative_to(root).as_posix(): file_md5(path)
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.relative_to(root).parts[0] not in STORE
    }


def without_store(project: Project, folder: Path) -> Path:
    """A copy of the finished project in folder, its MLflow store deleted."""
    root = folder / "project"
    shutil.copytree(project.root, root, ignore=shutil.ignore_patterns(*STORE))
    return root


def track(root: Path) -> str:
    """Run `lead-ml track` in the project with the defaults `make run` uses."""
    with project_environment(root):
        result = runner.invoke(app, ["track", "--params", "params.yaml"])
    assert result.exit_code == 0, result.output
    return result.output


def store(root: Path) -> tuple[Any, Any]:
    """The project's MLflow client and its training runs."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("lead-ml")
    assert experiment is not None
    return client, client.search_runs([experiment.experiment_id])


def versions(client: Any) -> list[Any]:
    return list(client.search_model_versions("name = 'lead-ml-scorer'"))


def contexts(run: Any) -> set[str]:
    return {
        tag.value
        for found in run.inputs.dataset_inputs
        for tag in found.tags
        if tag.key == "mlflow.data.context"
    }


def assert_complete(root: Path, run: Any, client: Any) -> None:
    """The run holds the evaluation of the outputs and the registered scorer."""
    metrics = json.loads((root / "reports/metrics.json").read_text())
    expected = tracking.numeric_metrics(metrics)
    assert {k: run.data.metrics.get(k) for k in expected} == expected
    assert contexts(run) == {"training", "validation", "test"}
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    assert logged == FIGURES
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {f"plots/{p.name}" for p in (root / "reports/plots").iterdir()}
    (version,) = versions(client)
    export = json.loads((root / "reports/export.json").read_text())
    assert version.run_id == run.info.run_id
    assert version.tags[tracking.SCORER_TAG] == export["model_version"]
    assert run.data.tags[tracking.SCORER_TAG] == export["model_version"]
    assert run.data.tags[tracking.MODEL_TAG] == export["model"]


def test_a_deleted_store_is_recorded_again_and_only_once(
    synthetic_project: Project, tmp_path: Path
) -> None:
    root = without_store(synthetic_project, tmp_path)
    before = outputs(root)
    # Other tests of the session may have rendered the project's report page.
    page = ["report"] if (root / "reports/report.html").exists() else []
    said = track(root)
    parts = ["training run", "evaluation", *page, "lead-ml-scorer version 1"]
    assert f"logged {', '.join(parts)}" in said
    client, runs = store(root)
    (run,) = runs
    assert run.data.tags["mlflow.source.name"] == "lead-ml track"
    assert run.info.run_name == synthetic_project.params.source.name
    assert_complete(root, run, client)
    assert outputs(root) == before
    again = track(root)
    assert "MLflow record already complete" in again and "logged" not in again
    client, runs = store(root)
    assert [r.info.run_id for r in runs] == [run.info.run_id]
    assert len(versions(client)) == 1
    # Nothing logged twice: every metric still has one point.
    run_id = run.info.run_id
    assert {len(client.get_metric_history(run_id, k)) for k in run.data.metrics} == {1}
    assert outputs(root) == before


def test_a_run_that_missed_its_evaluation_is_completed(
    synthetic_project: Project, tmp_path: Path
) -> None:
    # What `dvc repro` leaves in a new store: train and export ran, evaluate
    # (inputs byte-identical) was skipped.
    root = without_store(synthetic_project, tmp_path)
    paths = {
        "features": root / "data/features/features.parquet",
        "registry": root / "data/features/registry.json",
        "model": root / "models/model",
        "validated": root / "data/validated",
        "scorer": root / "models/scorer",
        "record": root / "reports/export.json",
    }
    params = synthetic_project.params
    # The report stage was skipped too (the project stops at export: a page stands in).
    (root / "reports/report.html").write_text("<html><p>the report</p></html>\n")
    before = outputs(root)
    with project_environment(root):
        record = json.loads((paths["model"] / stages.RUN_FILE).read_text())
        trained = (
            load_model(paths["model"]),
            stages.read_registry(paths["registry"]),
            split_frames(synthetic_project.features()),
        )
        run_id = stages.log_training(params, paths["features"], record, trained)
        identity = stages.exported_identity(paths)
        stages.register_exported(params, paths, run_id, identity)
    client, (run,) = store(root)
    assert "model.roc_auc" not in run.data.metrics
    assert "test" not in contexts(run)
    said = track(root)
    assert "logged evaluation, report: run" in said and "version 1" in said
    client, (run,) = store(root)
    assert run.info.run_id == run_id
    assert_complete(root, run, client)
    assert "report.html" in {a.path for a in client.list_artifacts(run_id)}
    # The version's description, written before the evaluation, now has it.
    (version,) = versions(client)
    assert "ROC AUC" in version.description
    assert outputs(root) == before


def test_outputs_that_disagree_are_refused_before_anything_is_logged(
    synthetic_project: Project, tmp_path: Path
) -> None:
    root = without_store(synthetic_project, tmp_path)
    record = root / "reports/export.json"
    export = json.loads(record.read_text())
    record.write_text(json.dumps(export | {"model_version": "lead-ml-scorer:0"}))
    with project_environment(root):
        result = runner.invoke(app, ["track", "--params", "params.yaml"])
    assert result.exit_code == 2, result.output
    assert "out of date" in result.output and "dvc repro" in result.output
    assert not (root / "mlflow.db").exists()


def test_the_pipelines_own_record_is_already_complete(
    synthetic_project: Project, tmp_path: Path
) -> None:
    # Train, evaluate and export log what track checks for; the copy's store
    # (and its artifacts in the project's mlruns/) is only read.
    root = tmp_path / "project"
    shutil.copytree(synthetic_project.root, root)
    before = outputs(root)
    said = track(root)
    assert "MLflow record already complete" in said
    client, runs = store(root)
    assert len(runs) == 1 and len(versions(client)) == 1
    assert outputs(root) == before
