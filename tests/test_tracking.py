"""One tracking store for every workspace, runs found by content, and outputs that a
fresh clone reproduces byte for byte (issue 15).

These tests pin how the store is resolved (MLFLOW_TRACKING_URI, DVC_ROOT, the
project's ``.dvc`` folder, an experiment's copy under ``.dvc/tmp/exps``) and how a
run is found by content. The real pipeline with no MLFLOW_TRACKING_URI, as `make
run` does, is test_pipeline_dvc's TestSynthetic (its repositories are run so): twice
from scratch in two folders (every tracked output and dvc.lock byte-identical, `dvc
status` clean, the bench's code dependency unmoved by bytecode caches), then a `dvc
exp run --temp` experiment, which DVC runs in a copy of the repository, whose run
must land in the project's store; compare and promote must refuse an experiment
whose model the store does not hold.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from projects import ROOT

from lead_ml import stages, tracking
from lead_ml.config import load_params
from lead_ml.vocab import ConfigError, ContractError

# --- where the store is ---------------------------------------------------------


@pytest.fixture
def bare(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No store settings in the environment: the defaults decide."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(tracking.DVC_ROOT, raising=False)
    return monkeypatch


def test_the_store_is_in_the_project_root_from_any_folder_below(
    bare: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".dvc").mkdir()
    inside = tmp_path / "reports" / "compare"
    inside.mkdir(parents=True)
    bare.chdir(inside)
    assert tracking.project_root() == tmp_path
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert tracking.artifact_root() == (tmp_path / "mlruns").as_uri()


def test_an_experiments_copy_logs_to_the_repository_it_came_from(
    bare: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # dvc exp run --temp / dvc queue start run stages in .dvc/tmp/exps/<tmp>/,
    # which holds a .dvc folder of its own.
    copy = tmp_path / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    (copy / ".dvc").mkdir(parents=True)
    bare.chdir(copy)
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    # A run looked up from the copy finds none, and the experiment it creates keeps
    # its artifacts in the project's mlruns/, not in the copy DVC deletes.
    with pytest.raises(ContractError, match="dvc repro --force train"):
        tracking.find_run("lead-ml", tracking.MODEL_TAG, "lead-ml-model:0")
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lead-ml")
    assert experiment is not None
    assert experiment.artifact_location == (tmp_path / "mlruns").as_uri()
    assert [p.name for p in copy.iterdir()] == [".dvc"]


def test_dvc_root_names_the_project_and_the_uri_wins_over_both(
    bare: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    bare.chdir(elsewhere)
    bare.setenv(tracking.DVC_ROOT, str(tmp_path / "project"))
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path / 'project/mlflow.db'}"
    bare.setenv("MLFLOW_TRACKING_URI", "sqlite:///chosen.db")
    assert tracking.tracking_uri() == "sqlite:///chosen.db"
    assert tracking.artifact_root() is None


def test_outside_a_project_no_store_is_made(
    bare: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bare.chdir(tmp_path)
    with pytest.raises(ConfigError, match="MLFLOW_TRACKING_URI is not set"):
        tracking.tracking_uri()
    assert list(tmp_path.iterdir()) == []


def test_the_content_id_depends_on_bytes_and_names_not_folders(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "booster.txt").write_text("tree\n")
    ids = {tracking.content_id("m", [tmp_path / f / "booster.txt"]) for f in ("a", "b")}
    assert len(ids) == 1 and ids.pop().startswith("m:")
    (tmp_path / "b" / "booster.txt").write_text("tree \n")
    assert tracking.content_id("m", [tmp_path / "a" / "booster.txt"]) != (
        tracking.content_id("m", [tmp_path / "b" / "booster.txt"])
    )


def test_a_model_trained_by_an_older_lead_ml_keeps_its_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /work/main's own models/model/run.json names its run: evaluate and export go
    # on logging there (tagged by content from then on) rather than stop `dvc repro`.
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    params = load_params(ROOT / "params.yaml")
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment(params.tracking.experiment)
    run_id = client.create_run(experiment).info.run_id
    model = tmp_path / "model"
    model.mkdir()
    (model / "booster.txt").write_text("tree\n")
    (model / "model.json").write_text("{}\n")
    (model / "run.json").write_text(json.dumps({"run_id": run_id}))
    assert stages.training_run_id(params, model) == run_id
    tagged = client.get_run(run_id).data.tags[tracking.MODEL_TAG]
    assert tagged == stages.model_id(model)
    (model / "run.json").write_text(json.dumps({"model": tagged}))
    assert stages.training_run_id(params, model) == run_id  # found by content now
    (model / "run.json").write_text(json.dumps({"run_id": "0" * 32}))
    with pytest.raises(ContractError, match="dvc repro --force train"):
        stages.training_run_id(params, model)
    (model / "booster.txt").write_text("another tree\n")
    (model / "run.json").write_text(json.dumps({"model": tagged}))
    with pytest.raises(ContractError, match="but the folder holds"):
        stages.training_run_id(params, model)


def test_the_dataset_schema_is_the_one_mlflow_infers_from_every_row() -> None:
    import mlflow.data
    import numpy as np
    import pandas as pd

    n = 3_000
    late = np.arange(n) == n - 7  # a column's only gap, far from its first rows
    numbers = np.linspace(0, 1, n)
    numbers[late] = np.nan
    text = pd.Series("Email", index=range(n), dtype="string").mask(late)
    created = pd.Series(pd.Timestamp("2025-01-02"), index=range(n)).mask(late)
    frame = pd.DataFrame(
        {
            "number": numbers,
            "complete": np.arange(n, dtype=float),
            "count": pd.Series(1, index=range(n), dtype="Int8").mask(late),
            "whole": np.arange(n),
            "text": text,
            "empty": pd.Series(pd.NA, index=range(n), dtype="string"),
            "created": created.astype("datetime64[ms]"),
            "won": np.arange(n) % 2,
        }
    )
    witness = tracking.witness_rows(frame)
    assert len(witness) <= 2 * frame.shape[1] and (n - 7) in witness.index
    with warnings.catch_warnings():
        # MLflow's hint on integer columns, which its schema would otherwise raise
        # under the suite's warnings-as-errors (and then swallow, giving None).
        warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer")
        # A digest given: MLflow computing its own would only slow the test.
        expected = mlflow.data.from_pandas(  # type: ignore[attr-defined]
            frame, digest="given"
        ).schema
    assert expected is not None
    assert tracking.dataset_schema(frame) == expected
    assert not next(c for c in expected.inputs if c.name == "number").required
    assert next(c for c in expected.inputs if c.name == "complete").required
