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


# --- how the default store is made --------------------------------------------------


def _schema(store: Path) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """A store's schema (each statement's lines sorted: MLflow's own migrations
    order a table's CHECK constraints by string hash, so two of its stores differ
    there) and its alembic revision."""
    import sqlite3

    with sqlite3.connect(store) as db:
        statements = db.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"
        ).fetchall()
        revision = db.execute("SELECT * FROM alembic_version").fetchall()
    return [
        (kind, name, table, "\n".join(sorted((sql or "").splitlines())))
        for kind, name, table, sql in statements
    ], revision


def _experiments(store: Path) -> list[tuple[str, ...]]:
    import sqlite3

    with sqlite3.connect(store) as db:
        return db.execute(
            "SELECT experiment_id, name, artifact_location, lifecycle_stage "
            "FROM experiments ORDER BY experiment_id"
        ).fetchall()


def test_a_new_store_is_the_one_mlflow_makes_and_nothing_else_is_left(
    bare: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    project = tmp_path / "project"
    (project / ".dvc").mkdir(parents=True)
    bare.chdir(project)
    assert tracking.store_uri() == f"sqlite:///{project / 'mlflow.db'}"
    assert sorted(p.name for p in project.iterdir()) == [".dvc", "mlflow.db"]
    mlruns = (project / "mlruns").as_uri()
    theirs = tmp_path / "theirs.db"
    SqlAlchemyStore(f"sqlite:///{theirs}", mlruns).engine.dispose()
    assert _schema(project / "mlflow.db") == _schema(theirs)
    assert _experiments(project / "mlflow.db") == _experiments(theirs)
    assert _experiments(theirs) == [(0, "Default", f"{mlruns}/0", "active")]
    # Opening it again changes nothing; the plain URI names it without making it.
    before = (project / "mlflow.db").read_bytes()
    assert tracking.store_uri() == tracking.tracking_uri()
    assert (project / "mlflow.db").read_bytes() == before


def test_a_store_another_process_made_first_is_kept(
    bare: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Two first runs at once: both found no store, the other linked its store into
    # place and logged to it before this one finished building its own copy.
    (tmp_path / ".dvc").mkdir()
    bare.chdir(tmp_path)
    store = tmp_path / "mlflow.db"
    experiment = tracking.store_client().create_experiment("theirs")
    tracking.create_store(store, (tmp_path / "mlruns").as_uri())
    assert [e[1] for e in _experiments(store)] == ["Default", "theirs"]
    assert tracking.store_client().get_experiment(experiment).name == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".dvc", "mlflow.db"]


def test_a_store_whose_making_fails_midway_is_not_left_half_made(
    bare: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    (tmp_path / ".dvc").mkdir()
    bare.chdir(tmp_path)
    made: list[str] = []

    def stop_after_the_first_tables(connection: object, _record: object) -> None:
        # The second connection MLflow opens is the migrations' (the first created
        # the initial tables): the process stops there, as if killed.
        made.append("connection")
        if len(made) == 2:
            raise KeyboardInterrupt

    event.listen(Engine, "connect", stop_after_the_first_tables)
    try:
        with pytest.raises(KeyboardInterrupt):
            tracking.store_uri()
    finally:
        event.remove(Engine, "connect", stop_after_the_first_tables)
    assert [p.name for p in tmp_path.iterdir()] == [".dvc"]
    tracking.store_uri()
    assert [e[1] for e in _experiments(tmp_path / "mlflow.db")] == ["Default"]


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
