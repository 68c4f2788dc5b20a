"""What the MLflow UI shows of a pipeline run, read back from a real sqlite store.

Every source's finished project (its own store, see :mod:`projects`) must show a
named run with its datasets (train, valid and test, each with the data's own digest
and the DVC-tracked file as its source), the standard tags, an experiment marked as
classic ML, ROC/PR/calibration/gains figures as PNG images, descriptions on the
registered model and its version, and each metric once (on the run and on each
logged model). A copy of the synthetic two-version project moves the champion alias
by promote and rollback and keeps every move. That a run in a git + DVC repository
is named after its DVC experiment and carries the commit it was trained at is
checked on test_pipeline_dvc's repository (TestSynthetic), which runs one.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from projects import Project, fresh_versions, project_environment
from typer.testing import CliRunner

from lead_ml import stages, tracking
from lead_ml.cli import app
from lead_ml.compare import MOVE_TAG, PROMOTION_TAG, alias_history, registry_client
from lead_ml.config import load_params
from lead_ml.model import split_frames

pytestmark = pytest.mark.slow
runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"
FIGURES = {"roc.png", "pr.png", "calibration.png", "gains.png"}


def _client(project: Project) -> Any:
    from mlflow import MlflowClient

    uri = f"sqlite:///{project.root / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _run(project: Project) -> Any:
    """The project's one training run."""
    client = _client(project)
    experiment = client.get_experiment_by_name(project.params.tracking.experiment)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return runs[0]


def _split(project: Project, part: str) -> pd.DataFrame:
    """A part of the split as training and evaluation read it (in time order),
    from the features file again."""
    return getattr(split_frames(project.features()), part)


# --- one finished project per source -----------------------------------------------


def test_the_run_is_named_after_the_source_not_at_random(project: Project) -> None:
    # The project folder is in no git repository: no baseline, so no changed params.
    run = _run(project)
    assert run.info.run_name == project.params.source.name
    assert run.data.tags["mlflow.runName"] == project.params.source.name


def test_the_experiment_opens_on_classic_ml_runs(project: Project) -> None:
    client = _client(project)
    experiment = client.get_experiment_by_name(project.params.tracking.experiment)
    assert experiment.tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"


def _inferred_schema(rows: pd.DataFrame) -> Any:
    """MLflow's own schema of a frame, walking every value."""
    import mlflow.data

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer")
        return mlflow.data.from_pandas(  # type: ignore[attr-defined]
            rows, digest="given"
        ).schema


def test_train_valid_and_test_are_logged_as_datasets(project: Project) -> None:
    run = _run(project)
    inputs = {
        next(t.value for t in i.tags if t.key == "mlflow.data.context"): i.dataset
        for i in run.inputs.dataset_inputs
    }
    evaluation = json.loads(project.path("reports/metrics.json").read_text())
    parts = {"training": "train", "validation": "valid"}
    if evaluation["evaluation"] == "holdout":
        parts["test"] = "test"
    assert set(inputs) == {"training", "validation", "test"}
    source = project.params.source.name
    for context, part in parts.items():
        dataset, rows = inputs[context], _split(project, part)
        assert dataset.name == f"{source} {part}"
        # The data's own hash: recomputed from the features file, not MLflow's
        # sample-based digest.
        assert dataset.digest == tracking.frame_digest(rows)
        assert json.loads(dataset.profile)["num_rows"] == len(rows)
        # The schema read off witness rows is the one MLflow infers from them all.
        assert json.loads(dataset.schema)["mlflow_colspec"] == (
            _inferred_schema(rows).to_dict()
        )
        assert dataset.source_type == "local"
        assert json.loads(dataset.source)["uri"].endswith(
            "data/features/features.parquet"
        )
    digests = [dataset.digest for dataset in inputs.values()]
    assert len(set(digests)) == 3
    assert run.data.tags["data_version"] == tracking.file_md5(
        project.path("data/features/features.parquet")
    )


def test_the_run_has_the_standard_source_tags(project: Project) -> None:
    tags = _run(project).data.tags
    assert tags["mlflow.source.name"] == "lead-ml train"
    assert tags["mlflow.source.type"] == "LOCAL"
    # No git here (the DVC test below checks the commit).
    assert "mlflow.source.git.commit" not in tags


def test_roc_pr_calibration_and_gains_are_png_figures(
    project: Project, tmp_path: Path
) -> None:
    client, run = _client(project), _run(project)
    logged = {
        Path(a.path).name for a in client.list_artifacts(run.info.run_id, "figures")
    }
    assert logged == FIGURES
    for name in FIGURES:
        image = Path(
            client.download_artifacts(run.info.run_id, f"figures/{name}", str(tmp_path))
        )
        assert image.read_bytes().startswith(PNG)
        assert image.stat().st_size > 5_000  # drawn, not an empty canvas


def test_each_metric_is_logged_once_on_the_run_and_on_each_model(
    project: Project,
) -> None:
    client, run = _client(project), _run(project)
    run_id = run.info.run_id
    assert {
        key
        for key in run.data.metrics
        if len(client.get_metric_history(run_id, key)) > 1
    } == set()
    models = client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id='{run_id}'"
    )
    held = {model.name: Counter(m.key for m in model.metrics) for model in models}
    assert set(held) == {"booster", "scorer"}
    assert {
        name: [k for k, n in keys.items() if n > 1] for name, keys in held.items()
    } == {
        "booster": [],
        "scorer": [],
    }
    # The test metrics describe the exported scorer, not the uncalibrated booster.
    assert set(held["scorer"]) == set(run.data.metrics)
    assert "model.roc_auc" in held["scorer"] and "model.roc_auc" not in held["booster"]


def test_the_registered_model_and_its_version_are_described(project: Project) -> None:
    client, run = _client(project), _run(project)
    params = project.params
    name, alias = params.tracking.registered_model, params.tracking.champion_alias
    model = client.get_registered_model(name)
    assert "probability" in model.description
    assert f"models:/{name}@{alias}" in model.description
    (version,) = client.search_model_versions(f"name = '{name}'")
    text = version.description
    record = json.loads(project.path("reports/export.json").read_text())
    metrics = run.data.metrics
    assert params.source.name in text and run.info.run_id in text
    assert f"ROC AUC {metrics['model.roc_auc']:.3f}" in text
    assert f"vs BANT {metrics['bant.roc_auc']:.3f}" in text
    assert f"{int(metrics['n_test']):,} closed deals" in text
    assert f"Content version: {record['model_version']}." in text
    assert run.data.tags["data_version"] in text


# --- promotion history -------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(
    synthetic_project: Project, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Project]:
    """The synthetic CRM's two-version project (v1 a one-split stump, v2 the model:
    :func:`projects.two_versions`) in a folder of its own, no champion and no alias
    moved yet, its folder the working directory."""
    versions = fresh_versions(synthetic_project, tmp_path_factory, "history")
    with project_environment(versions.project.root):
        yield versions.project


def test_every_alias_move_is_kept_with_date_versions_and_reason(
    registry: Project,
) -> None:
    params = registry.params
    name = params.tracking.registered_model
    # A rollback runs no gate: the history must not depend on the data.
    steps = [
        ["promote", "--to", "v1", "--reason", "first   champion"],
        ["promote", "--to", "v2", "--reason", "the model"],
        ["promote", "--to", "1", "--reason", "v2 over-scores new accounts"],
    ]
    for step in steps:
        result = runner.invoke(app, step)
        assert result.exit_code == 0, result.output
    client = registry_client()
    moves = alias_history(client, params)
    assert [(m.number, m.before, m.after, m.action) for m in moves] == [
        (1, None, 1, "rollback"),
        (2, 1, 2, "rollback"),
        (3, 2, 1, "rollback"),
    ]
    assert [m.reason for m in moves] == [
        "set by --to from no champion, no gate: first champion",
        "set by --to from v1, no gate: the model",
        "set by --to from v2, no gate: v2 over-scores new accounts",
    ]
    for move in moves:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", move.date)
        assert move.alias == params.tracking.champion_alias
    model = client.get_registered_model(name)
    assert sorted(k for k in model.tags if k.startswith(MOVE_TAG)) == [
        f"{MOVE_TAG}0001",
        f"{MOVE_TAG}0002",
        f"{MOVE_TAG}0003",
    ]
    # v1 became champion twice: both moves stay on it, the latest is its note.
    tags = client.get_model_version(name, "1").tags
    assert tags[PROMOTION_TAG] == moves[2].reason
    assert tags[f"{PROMOTION_TAG}.0001"] == moves[0].text
    assert tags[f"{PROMOTION_TAG}.0003"] == moves[2].text
    assert client.get_model_version(name, "2").tags[f"{PROMOTION_TAG}.0002"] == (
        moves[1].text
    )


def test_a_gated_promotion_joins_the_history(registry: Project) -> None:
    params = registry.params
    before = alias_history(registry_client(), params)
    result = runner.invoke(app, ["promote", "--to", "v2"])
    assert result.exit_code == 0, result.output
    # v1, a one-split stump, ranks worse than the champion: the gate refuses it ...
    result = runner.invoke(app, ["promote", "v1", "--reason", "try"])
    assert result.exit_code == 1, result.output
    after = alias_history(registry_client(), params)
    assert after[: len(before)] == before
    assert len(after) == len(before) + 1  # ... and a refused gate moves nothing


# --- run names and commits in a DVC repository ---------------------------------------


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_outside_an_experiment_the_name_says_which_params_changed(
    synthetic_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(synthetic_project.path("params.yaml"), tmp_path / "params.yaml")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "params.yaml")
    _git(
        tmp_path,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t.invalid",
        "commit",
        "-qm",
        "p",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(tracking.DVC_EXP_NAME, raising=False)
    source = synthetic_project.params.source.name
    assert stages.run_name(load_params("params.yaml")) == source
    raw = yaml.safe_load((tmp_path / "params.yaml").read_text())
    raw["train"]["learning_rate"] = 0.07
    raw["seed"] = 5
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    changed = load_params("params.yaml")
    name = stages.run_name(changed)
    assert name == f"{source}: seed=5 train.learning_rate=0.07"
    assert stages.run_name(changed) == name  # the same inputs, the same name
    tags = tracking.standard_tags()
    assert tags["mlflow.source.git.commit"] == _git(tmp_path, "rev-parse", "HEAD")
    assert tags["mlflow.source.git.dirty"] == "true"
    monkeypatch.setenv(tracking.DVC_EXP_NAME, "lower-rate")
    assert stages.run_name(changed) == "lower-rate"
