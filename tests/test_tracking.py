"""One tracking store for every workspace, runs found by content, and outputs that a
fresh clone reproduces byte for byte (issue 15).

The unit tests pin how the store is resolved (MLFLOW_TRACKING_URI, DVC_ROOT, the
project's ``.dvc`` folder, an experiment's copy under ``.dvc/tmp/exps``). The slow
tests run the real pipeline with no MLFLOW_TRACKING_URI, as `make run` does: twice
from scratch in two folders (every tracked output and dvc.lock byte-identical, `dvc
status` clean, the bench's code dependency unmoved by bytecode caches), then a `dvc
exp run --temp` experiment, which DVC runs in a copy of the repository, whose run
must land in the project's store; compare and promote must refuse an experiment
whose model the store does not hold.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from projects import ROOT
from test_pipeline_dvc import VENV_BIN, Repo, Store, build_repo, experiment_name

from lead_ml import stages, tracking
from lead_ml.compare import registry_client, resolve
from lead_ml.config import load_params
from lead_ml.tracking import file_md5
from lead_ml.vocab import CompareError, ConfigError, ContractError

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


# --- the pipeline with the default store -----------------------------------------

BENCH = "bench/dvc.yaml"
BENCH_FILES = ("bench/dvc.yaml", "bench/harness.py", "examples/x_education/params.yaml")


@dataclass(frozen=True)
class DefaultRepo(Repo):
    """A test repository run as `make run` runs: no MLFLOW_TRACKING_URI, so lead-ml
    resolves the store itself."""

    def environment(self) -> dict[str, str]:
        """The repository's environment without any store setting."""
        hidden = ("MLFLOW_TRACKING_URI", tracking.DVC_ROOT)
        return {k: v for k, v in super().environment().items() if k not in hidden}


def default_repo(folder: Path) -> DefaultRepo:
    """The synthetic project with the bench's stage file, its code hash recorded."""
    built = build_repo("synthetic", folder)
    repo = DefaultRepo(built.source, built.root)
    for name in BENCH_FILES:
        (repo.root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo.root / name)
    (repo.root / "reports").mkdir(exist_ok=True)
    (repo.root / "reports/bench.json").write_text("{}\n")
    repo.dvc("commit", "--force", "--quiet", f"{BENCH}:bench")
    repo.commit("the bench's stage, its code dependency hashed")
    return repo


def tracked_files(repo: Repo) -> dict[str, str]:
    """md5 of every file git tracks or would track (not ignored)."""
    listed = repo.run(
        "git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"
    )
    names = [n for n in listed.split("\0") if n and (repo.root / n).is_file()]
    return {name: file_md5(repo.root / name) for name in sorted(names)}


@dataclass(frozen=True)
class Pair:
    """Two repositories built and reproduced from scratch side by side."""

    first: DefaultRepo
    second: DefaultRepo


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """`dvc repro` in two fresh folders at once (no MLFLOW_TRACKING_URI)."""
    repos = [default_repo(tmp_path_factory.mktemp(n)) for n in ("first", "second")]
    started = [repo.start(str(VENV_BIN / "dvc"), "repro") for repo in repos]
    for process in started:
        Repo.finish(process)
    yield Pair(*repos)


def project_store(repo: Repo) -> Store:
    """The store in the repository's root, where lead-ml must have logged."""
    return Store(f"sqlite:///{repo.root / 'mlflow.db'}")


@pytest.mark.slow
def test_a_fresh_folder_reproduces_every_tracked_file_byte_for_byte(
    pair: Pair,
) -> None:
    first, second = tracked_files(pair.first), tracked_files(pair.second)
    assert "dvc.lock" in first and "reports/export.json" in first
    assert "reports/report.html" in first and "reports/metrics.json" in first
    assert [p for p in first if first[p] != second.get(p)] == []
    assert first.keys() == second.keys()
    lock = (pair.first.root / "dvc.lock").read_bytes()
    assert lock == (pair.second.root / "dvc.lock").read_bytes()
    # Neither a run id nor a registry version is in what DVC hashes.
    record = pair.first.json("reports/export.json")
    run = pair.first.json("models/model/run.json")
    store = project_store(pair.first)
    (run_id,) = store.run_ids("lead-ml")
    assert "run_id" not in record and "registered_version" not in record
    assert run_id not in lock.decode()
    for path in ("reports/report.html", "reports/export.json", "models/model/run.json"):
        assert run_id not in (pair.first.root / path).read_text(), path
    assert set(run) == {"model", "data_version", "source"}


@pytest.mark.slow
def test_after_make_run_dvc_status_is_clean_bench_included(pair: Pair) -> None:
    for repo in (pair.first, pair.second):
        # The bytecode a clone's own (editable) lead-ml writes beside its sources:
        # the tests' lead-ml runs from the project, so it is written here.
        repo.run(sys.executable, "-m", "compileall", "-q", "src/lead_ml")
        assert list((repo.root / "src/lead_ml/__pycache__").glob("*.pyc"))
        assert json.loads(repo.dvc("status", "--json")) == {}
        assert json.loads(repo.dvc("status", BENCH, "--json")) == {}


@pytest.mark.slow
def test_runs_and_versions_carry_the_content_identity(pair: Pair) -> None:
    repo = pair.first
    client = project_store(repo).client()
    record, run = repo.json("reports/export.json"), repo.json("models/model/run.json")
    (version,) = client.search_model_versions("name = 'lead-ml-scorer'")
    trained = client.get_run(version.run_id)
    assert trained.data.tags[tracking.MODEL_TAG] == run["model"] == record["model"]
    assert trained.data.tags[tracking.SCORER_TAG] == record["model_version"]
    assert version.tags[tracking.SCORER_TAG] == record["model_version"]
    assert trained.data.metrics["model.roc_auc"] == pytest.approx(
        repo.json("reports/metrics.json")["model"]["roc_auc"]
    )
    # Artifacts sit in the project's mlruns/, not wherever a stage ran.
    experiment = client.get_experiment_by_name("lead-ml")
    assert experiment.artifact_location == (repo.root / "mlruns").as_uri()


@pytest.fixture(scope="module")
def temp_experiment(pair: Pair) -> tuple[str, str]:
    """`dvc exp run --temp` (a copy under .dvc/tmp/exps) on the first repository:
    the experiment's name and the output."""
    repo = pair.first
    repo.commit("first run")
    output = repo.dvc("exp", "run", "--temp", "-S", "train.learning_rate=0.1")
    return experiment_name(output), output


def experiment_record(repo: Repo, name: str) -> dict[str, Any]:
    """The export record an experiment committed."""
    refs = repo.run("git", "for-each-ref", "--format=%(objectname) %(refname)")
    (commit,) = [
        line.split()[0]
        for line in refs.splitlines()
        if "refs/exps/" in line and line.endswith(f"/{name}")
    ]
    record: dict[str, Any] = json.loads(
        repo.run("git", "show", f"{commit}:reports/export.json")
    )
    return record


@pytest.mark.slow
def test_a_temp_experiment_logs_and_registers_in_the_projects_store(
    pair: Pair, temp_experiment: tuple[str, str]
) -> None:
    repo, name = pair.first, temp_experiment[0]
    store = project_store(repo)
    assert store.versions("lead-ml-scorer") == {1, 2}
    assert len(store.run_ids("lead-ml")) == 2
    client = store.client()
    record = experiment_record(repo, name)
    latest = client.get_model_version("lead-ml-scorer", "2")
    assert latest.tags[tracking.SCORER_TAG] == record["model_version"]
    assert client.get_run(latest.run_id).data.params["train.learning_rate"] == "0.1"
    compared = repo.lead_ml("compare", "v1", name, "--out-dir", "reports/compare")
    assert "v2" in (repo.root / "reports/compare/compare.md").read_text()
    assert "Traceback" not in compared


@pytest.mark.slow
def test_compare_and_promote_refuse_a_version_that_is_not_the_experiments(
    pair: Pair, temp_experiment: tuple[str, str]
) -> None:
    # The bug's mechanism: the store in force has a v1 (the same content as the
    # first repository's) but not the experiment's model, as when a queued run
    # registered into a temporary copy's store.
    repo, other = pair.first, pair.second
    name = temp_experiment[0]
    record = experiment_record(repo, name)
    uri = f"sqlite:///{other.root / 'mlflow.db'}"
    for command in (("compare", name), ("promote", name)):
        process = subprocess.run(
            [str(VENV_BIN / "lead-ml"), *command],
            cwd=repo.root,
            env={**os.environ, "MLFLOW_TRACKING_URI": uri},
            capture_output=True,
            text=True,
        )
        said = " ".join((process.stdout + process.stderr).split())
        assert process.returncode == 2, said
        assert f"DVC experiment '{name}'" in said
        assert record["model_version"] in said and uri in said
        assert "run it again" in said and "Traceback" not in said
    assert Store(uri).client().get_registered_model("lead-ml-scorer").aliases == {}


@pytest.mark.slow
def test_an_older_record_counts_only_when_its_run_registered_the_version(
    pair: Pair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Records of older lead-ml named a registry version and a run id: the version
    # is the experiment's only when it was registered from that run.
    def run(*args: str) -> None:
        subprocess.run(args, cwd=tmp_path, check=True, capture_output=True)

    run("git", "init", "-q")
    run("git", "config", "user.email", "ci@example.com")
    run("git", "config", "user.name", "ci")
    run(sys.executable, "-m", "dvc", "init", "-q")
    record = tmp_path / "reports" / "export.json"
    record.parent.mkdir()
    record.write_text("{}\n")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "baseline")
    store = project_store(pair.second)
    (version,) = store.client().search_model_versions("name = 'lead-ml-scorer'")
    for name, run_id in (("mine", version.run_id), ("stray", "0" * 32)):
        record.write_text(json.dumps({"registered_version": 1, "run_id": run_id}))
        run(sys.executable, "-m", "dvc", "exp", "save", "-f", "-n", name)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    params = load_params(pair.second.root / "params.yaml")
    client = registry_client()
    assert resolve(client, params, "mine", repo=tmp_path).version == 1
    with pytest.raises(CompareError, match=f"registered from run {version.run_id}"):
        resolve(client, params, "stray", repo=tmp_path)
