"""The DVC pipeline end to end on a real repository: issue 3's "Done when".

A git + DVC repository is built in a tmp dir from the project's dvc.yaml, .dvc/config,
ignore files and sources, with params.yaml shrunk to a 3,000-deal CRM, and the real
`dvc repro` runs the `lead-ml` commands of this venv against a sqlite MLflow store in
that repository. One run is shared by the module (module-scoped fixtures, in this
order): the first `dvc repro`, a second one that must be a no-op, then
`dvc exp run -S train.learning_rate=0.1`. A second repository built from scratch with
the same params checks determinism, then what `make clean` followed by `dvc repro`
does. Fixtures snapshot what the tests read, because later steps change the workspace.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from lead_ml.config import load_params
from lead_ml.tracking import file_md5, flatten, numeric_metrics

# `make test` runs with `--dist loadscope`: one worker runs this module, so the
# module-scoped pipeline runs once.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# The stages issue 3 names; dvc.yaml may hold more (each is checked as declared).
STAGES = ("generate", "validate", "featurize", "train", "evaluate", "export")
UPSTREAM = ("generate", "validate", "featurize")
# The determinism twin runs `dvc repro evaluate`: these stages.
TWIN_STAGES = (*UPSTREAM, "train", "evaluate")
TABLES = ("accounts", "deals", "activities")
PROJECT_FILES = (
    "dvc.yaml",
    ".gitignore",
    ".dvcignore",
    ".dvc/config",
    ".dvc/.gitignore",
    "data/.gitignore",
    "data/features/.gitignore",
    "models/.gitignore",
    "reports/.gitignore",
)
# About 50 s of CPU per full `dvc repro`, most of it each stage's process start-up.
SMALL: dict[str, dict[str, Any]] = {
    "synthetic": {"n_deals": 3000, "n_accounts": 600, "activities_per_deal": 20.0},
    "train": {"n_estimators": 150},
    "evaluate": {"n_bootstrap": 200},
}
METRIC_KEYS = (
    "model.roc_auc",
    "model.pr_auc",
    "model.brier",
    "model.log_loss",
    "model.ece",
    "bant.roc_auc",
    "bant.pr_auc",
    "delta_roc_auc",
    "delta_roc_auc_ci95",
    "capacity.k",
    "capacity.model_win_rate",
    "capacity.bant_win_rate",
    "capacity.model_wins",
    "capacity.bant_wins",
    "n_train",
    "n_valid",
    "n_test",
    "test_start",
    "test_end",
)
# A hung command fails the test instead of hanging it.
TIMEOUT_SECONDS = 600
FEATURES = "data/features/features.parquet"
BOOSTER = "models/model/booster.txt"
RUN_FILE = "models/model/run.json"
# What `make clean` removes besides the venv; DVC's cache (and run cache) stay.
CLEANED = (
    "data/raw",
    "data/validated",
    "data/features",
    "models/model",
    "models/scorer",
    "reports/rejects.csv",
    "mlruns",
    "mlflow.db",
)


@dataclass(frozen=True)
class Repo:
    """A tmp git + DVC repository of the project, with its own MLflow store."""

    root: Path

    @property
    def tracking_uri(self) -> str:
        """The sqlite store the pipeline in this repository logs to."""
        return f"sqlite:///{self.root / 'mlflow.db'}"

    def start(self, *command: str) -> subprocess.Popen[str]:
        """Start a command in the repository, stdout and stderr into one pipe."""
        env = {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "1",
        }
        return subprocess.Popen(
            command,
            cwd=self.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    @staticmethod
    def finish(process: subprocess.Popen[str]) -> str:
        """Wait for a started command; its output, or fail with it."""
        try:
            output, _ = process.communicate(timeout=TIMEOUT_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 0, (
            f"{process.args!r} exited {process.returncode}:\n{output}"
        )
        return output

    def run(self, *command: str) -> str:
        """Run a command in the repository; its output, or fail with it."""
        return self.finish(self.start(*command))

    def dvc(self, *args: str) -> str:
        """Run this venv's dvc in the repository."""
        return self.run(str(VENV_BIN / "dvc"), *args)

    def commit(self, message: str) -> str:
        """Commit everything git does not ignore; the new commit's hash."""
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "-m", message)
        return self.run("git", "rev-parse", "HEAD").strip()

    def json(self, path: str) -> Any:
        """A JSON file of the repository, parsed."""
        return json.loads((self.root / path).read_text())

    def lock(self) -> dict[str, Any]:
        """dvc.lock, parsed."""
        return yaml.safe_load((self.root / "dvc.lock").read_text())

    def stages(self) -> dict[str, dict[str, Any]]:
        """The stages of the repository's dvc.yaml."""
        stages: dict[str, dict[str, Any]] = yaml.safe_load(
            (self.root / "dvc.yaml").read_text()
        )["stages"]
        return stages

    def files(self, paths: Iterable[str] | None = None) -> dict[str, tuple[str, int]]:
        """Every file under paths (default: all outputs) as {path: (md5, mtime ns)}."""
        found: dict[str, tuple[str, int]] = {}
        for top in outputs(self.stages()) if paths is None else paths:
            start = self.root / top
            for path in sorted(start.rglob("*")) if start.is_dir() else [start]:
                if path.is_file():
                    relative = path.relative_to(self.root).as_posix()
                    found[relative] = (file_md5(path), path.stat().st_mtime_ns)
        return found


def entry_paths(entries: list[Any]) -> list[str]:
    """Paths of a dvc.yaml list: plain strings or one-key {path: options} maps."""
    return [e if isinstance(e, str) else next(iter(e)) for e in entries]


def outputs(stages: dict[str, dict[str, Any]], names: Iterable[str] = ()) -> list[str]:
    """What the named stages (default: all) write: outs, metrics and plots."""
    chosen = [stages[name] for name in names] if names else list(stages.values())
    return [
        path
        for stage in chosen
        for kind in ("outs", "metrics", "plots")
        for path in entry_paths(stage.get(kind, []))
    ]


def overlaps(path: str, other: str) -> bool:
    """Whether one path is the other or inside it (a file in an output folder)."""
    return path == other or path.startswith(f"{other}/") or other.startswith(f"{path}/")


def affected_by(stages: dict[str, dict[str, Any]], section: str) -> set[str]:
    """Stages that read a params section, and every stage downstream of them."""
    affected = {name for name, s in stages.items() if section in s.get("params", [])}
    while True:
        written = outputs(stages, affected)
        downstream = {
            name
            for name, stage in stages.items()
            if any(
                overlaps(dep, out)
                for dep in entry_paths(stage.get("deps", []))
                for out in written
            )
        }
        if downstream <= affected:
            return affected
        affected |= downstream


def calibration_bins(path: Path) -> list[tuple[int, float, float]]:
    """The non-empty bins of calibration.csv as (count, mean predicted, observed)."""
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    return [
        (int(row["count"]), float(row["mean_predicted"]), float(row["observed_rate"]))
        for row in rows
        if int(row["count"]) > 0
    ]


def small_params() -> dict[str, Any]:
    """The project's params.yaml with the SMALL sizes put in."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in SMALL.items():
        params[section] = {**params[section], **values}
    return params


def build_repo(root: Path) -> Repo:
    """Copy what the pipeline needs into root and make it a committed git+DVC repo."""
    for name in PROJECT_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, root / name)
    shutil.copytree(
        ROOT / "src" / "lead_ml",
        root / "src" / "lead_ml",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (root / "params.yaml").write_text(yaml.safe_dump(small_params(), sort_keys=False))
    # DVC keeps a per-repository index under /var/tmp by default: keep it in here.
    (root / ".dvc/config.local").write_text(
        f"[core]\n    site_cache_dir = {root / '.dvc/tmp/site'}\n"
    )
    repo = Repo(root)
    repo.run("git", "init", "-q")
    repo.run("git", "config", "user.name", "lead-ml tests")
    repo.run("git", "config", "user.email", "tests@lead-ml.invalid")
    repo.commit("project at the size the tests use")
    return repo


def mlflow_client(repo: Repo) -> Any:
    """A client of the repository's store (no global MLflow state is touched)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=repo.tracking_uri, registry_uri=repo.tracking_uri)


def run_ids(repo: Repo) -> set[str]:
    """Ids of every run in the repository's lead-ml experiment."""
    client = mlflow_client(repo)
    experiment = client.get_experiment_by_name(
        load_params(repo.root / "params.yaml").tracking.experiment
    )
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return {run.info.run_id for run in runs}


def scorer_versions(repo: Repo) -> set[str]:
    """Versions of the registered scorer model in the repository's store."""
    name = load_params(repo.root / "params.yaml").tracking.registered_model
    found = mlflow_client(repo).search_model_versions(f"name='{name}'")
    return {str(version.version) for version in found}


def lock_entry(lock: dict[str, Any], stage: str) -> dict[str, Any]:
    """One stage of dvc.lock."""
    entry: dict[str, Any] = lock["stages"][stage]
    return entry


def features_md5_in_lock(lock: dict[str, Any]) -> str:
    """The hash dvc.lock records for the features file."""
    outs = lock_entry(lock, "featurize")["outs"]
    return str(next(out["md5"] for out in outs if out["path"] == FEATURES))


@dataclass(frozen=True)
class Built:
    """The first `dvc repro` from scratch, as it was right after it finished."""

    repo: Repo
    output: str
    commit: str
    params: dict[str, Any]
    files: dict[str, tuple[str, int]]
    metrics: dict[str, Any]
    run: dict[str, Any]
    export: dict[str, Any]
    lock: dict[str, Any]
    calibration: list[tuple[int, float, float]]
    feature_names: list[str]


@dataclass(frozen=True)
class Rerun:
    """A second `dvc repro` straight after the first."""

    output: str
    status: Any
    runs_before: set[str]
    runs_after: set[str]
    versions_before: set[str]
    versions_after: set[str]
    files_after: dict[str, tuple[str, int]]


@dataclass(frozen=True)
class Experiment:
    """`dvc exp run -S train.learning_rate=0.1` after the first run was committed."""

    output: str
    files_before: dict[str, tuple[str, int]]
    files_after: dict[str, tuple[str, int]]
    lock_after: dict[str, Any]
    metrics_after: dict[str, Any]
    run_after: dict[str, Any]
    runs_before: set[str]
    runs_after: set[str]


def snapshot(repo: Repo, output: str, commit: str) -> Built:
    """What a `dvc repro` wrote, read before anything else changes it."""
    export = repo.root / "reports/export.json"
    return Built(
        repo=repo,
        output=output,
        commit=commit,
        params=load_params(repo.root / "params.yaml").model_dump(mode="json"),
        files=repo.files(),
        metrics=repo.json("reports/metrics.json"),
        run=repo.json(RUN_FILE),
        export=repo.json("reports/export.json") if export.exists() else {},
        lock=repo.lock(),
        calibration=calibration_bins(repo.root / "reports/plots/calibration.csv"),
        feature_names=repo.json("models/model/model.json")["feature_names"],
    )


def first_repro(repo: Repo) -> Built:
    """Run the whole pipeline once and snapshot what it wrote."""
    commit = repo.run("git", "rev-parse", "HEAD").strip()
    return snapshot(repo, repo.dvc("repro"), commit)


@pytest.fixture(scope="module")
def twin_started(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Repo, subprocess.Popen[str]]]:
    """A second repository from scratch, its `dvc repro` (up to evaluate) started.

    It runs while the first repository's pipeline runs: most of a stage's time is one
    process importing its libraries, so the two share the 2 cores well.
    """
    repo = build_repo(tmp_path_factory.mktemp("twin"))
    process = repo.start(str(VENV_BIN / "dvc"), "repro", TWIN_STAGES[-1])
    yield repo, process
    if process.poll() is None:  # the twin was not needed: stop it
        process.kill()
    process.communicate()  # closes the pipe


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory,
    twin_started: tuple[Repo, subprocess.Popen[str]],
) -> Built:
    """The pipeline run from scratch in a new repository (alongside the twin)."""
    return first_repro(build_repo(tmp_path_factory.mktemp("first")))


@pytest.fixture(scope="module")
def rerun(built: Built) -> Rerun:
    """`dvc repro` again, with nothing changed."""
    repo = built.repo
    runs_before, versions_before = run_ids(repo), scorer_versions(repo)
    output = repo.dvc("repro")
    return Rerun(
        output=output,
        status=json.loads(repo.dvc("status", "--json")),
        runs_before=runs_before,
        runs_after=run_ids(repo),
        versions_before=versions_before,
        versions_after=scorer_versions(repo),
        files_after=repo.files(),
    )


@pytest.fixture(scope="module")
def experiment(built: Built, rerun: Rerun) -> Experiment:
    """One parameter changed through `dvc exp run` (which needs a commit first)."""
    repo = built.repo
    repo.commit("first pipeline run")
    files_before, runs_before = repo.files(), run_ids(repo)
    output = repo.dvc("exp", "run", "-S", "train.learning_rate=0.1")
    return Experiment(
        output=output,
        files_before=files_before,
        files_after=repo.files(),
        lock_after=repo.lock(),
        metrics_after=repo.json("reports/metrics.json"),
        run_after=repo.json(RUN_FILE),
        runs_before=runs_before,
        runs_after=run_ids(repo),
    )


@pytest.fixture(scope="module")
def twin(twin_started: tuple[Repo, subprocess.Popen[str]]) -> Built:
    """The same pipeline from scratch in the second repository, up to evaluate."""
    repo, process = twin_started
    output = Repo.finish(process)
    return snapshot(repo, output, repo.run("git", "rev-parse", "HEAD").strip())


@pytest.fixture(scope="module")
def cleaned(twin: Built) -> Built:
    """The twin after what `make clean` removes (outputs and MLflow store), rerun."""
    for name in CLEANED:
        path = twin.repo.root / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    output = twin.repo.dvc("repro", TWIN_STAGES[-1])
    return snapshot(twin.repo, output, twin.commit)


def ran(output: str, stage: str) -> bool:
    """Whether a dvc repro/exp output says the stage's command ran."""
    return f"Running stage '{stage}'" in output


# --- the first run -----------------------------------------------------------------


def test_every_stage_runs_and_writes_its_outputs(built: Built) -> None:
    stages = built.repo.stages()
    assert set(STAGES) <= set(stages)
    assert [s for s in stages if not ran(built.output, s)] == []
    assert sorted(built.lock["stages"]) == sorted(stages)
    missing = [
        p for p in outputs(stages) if not any(overlaps(p, f) for f in built.files)
    ]
    assert missing == [], "declared outputs not written"
    expected = [
        *(f"data/raw/{t}.parquet" for t in TABLES),
        "data/raw/truth.json",
        *(f"data/validated/{t}.parquet" for t in TABLES),
        "reports/rejects.csv",
        FEATURES,
        BOOSTER,
        "models/model/model.json",
        RUN_FILE,
        "reports/metrics.json",
        "models/scorer/MLmodel",
        "models/scorer/artifacts/bundle/booster.txt",
        "models/scorer/artifacts/bundle/scorer.json",
        "models/scorer/artifacts/bundle/checksums.json",
        "reports/export.json",
    ]
    assert [path for path in expected if path not in built.files] == []


def test_every_declared_plot_file_is_written(built: Built) -> None:
    declared = {
        path
        for plot in yaml.safe_load((built.repo.root / "dvc.yaml").read_text())["plots"]
        for spec in plot.values()
        for path in spec["y"]
    }
    written = {p for p in built.files if p.startswith("reports/plots/")}
    assert declared and declared <= written
    for path in declared:
        with (built.repo.root / path).open() as handle:
            assert len(list(csv.reader(handle))) > 2, f"{path} has no data rows"


def test_metrics_json_has_every_key_the_issue_lists(built: Built) -> None:
    flat = flatten(built.metrics)
    assert [key for key in METRIC_KEYS if key not in flat] == []
    low, high = flat["delta_roc_auc_ci95"]
    assert low <= flat["delta_roc_auc"] <= high
    assert flat["n_test"] > 0 and flat["n_train"] > flat["n_test"]
    assert flat["test_start"] <= flat["test_end"]


def test_validate_reconciles_raw_rows_with_valid_and_rejected(built: Built) -> None:
    root = built.repo.root
    rejects = pd.read_csv(root / "reports/rejects.csv", low_memory=False)
    assert len(rejects) > 0 and rejects["reason"].notna().all()
    for table in TABLES:
        raw = len(pd.read_parquet(root / f"data/raw/{table}.parquet"))
        valid = len(pd.read_parquet(root / f"data/validated/{table}.parquet"))
        assert raw == valid + int((rejects["table"] == table).sum()), table


def test_export_bundles_the_trained_booster(built: Built) -> None:
    bundled = built.files["models/scorer/artifacts/bundle/booster.txt"][0]
    assert bundled == built.files[BOOSTER][0]
    assert built.export["run_id"] == built.run["run_id"]


# --- targets at this size ----------------------------------------------------------


def test_model_beats_bant_with_a_ci_above_zero(built: Built) -> None:
    # Robust even on 560 test deals: the default run shows a gap of ~0.3 AUC.
    metrics = built.metrics
    assert metrics["model"]["roc_auc"] > metrics["bant"]["roc_auc"]
    assert metrics["delta_roc_auc_ci95"][0] > 0
    assert metrics["capacity"]["model_wins"] > metrics["capacity"]["bant_wins"]


def calibration_noise_floor(bins: list[tuple[int, float, float]]) -> float:
    """The ECE a perfectly calibrated model shows on average with these bins.

    In a bin of n leads at mean probability p the observed rate misses p by
    sqrt(2/pi) * sqrt(p(1-p)/n) on average, from sampling alone.
    """
    total = sum(n for n, _, _ in bins)
    return sum(n / total * math.sqrt(2 / math.pi * p * (1 - p) / n) for n, p, _ in bins)


def test_calibration_is_within_sampling_noise_at_this_size(built: Built) -> None:
    # The issue's ECE < 0.05 is a target for the default 40k-deal CRM (0.028 there).
    # On 560 test deals a perfectly calibrated model already shows an ECE of ~0.04
    # from sampling alone, so 0.05 would be a coin toss here; what is honest is
    # "within twice the noise floor", and the ECE must agree with the plot data.
    bins = built.calibration
    total = sum(n for n, _, _ in bins)
    gap = sum(n / total * abs(predicted - observed) for n, predicted, observed in bins)
    ece = built.metrics["model"]["ece"]
    assert total == built.metrics["n_test"]
    assert ece == pytest.approx(gap, abs=1e-4)
    assert ece < 2 * calibration_noise_floor(bins)


# --- MLflow ------------------------------------------------------------------------


def test_mlflow_run_logs_flattened_params_and_data_tags(built: Built) -> None:
    run = mlflow_client(built.repo).get_run(built.run["run_id"])
    expected = {key: str(value) for key, value in flatten(built.params).items()}
    assert run.data.params == expected
    assert run.data.params["train.learning_rate"] == "0.05"
    assert run.data.params["synthetic.n_deals"] == "3000"
    features_md5 = built.files[FEATURES][0]
    assert run.data.tags["data_version"] == features_md5
    assert features_md5_in_lock(built.lock) == features_md5
    assert run.data.tags["git_commit"] == built.commit


def test_mlflow_run_logs_every_numeric_metric(built: Built) -> None:
    logged = mlflow_client(built.repo).get_run(built.run["run_id"]).data.metrics
    expected = numeric_metrics(built.metrics)
    assert {"model.roc_auc", "delta_roc_auc_ci95_low", "capacity.k"} <= set(expected)
    assert {key: logged.get(key) for key in expected} == pytest.approx(expected)
    assert logged["best_iteration"] >= 1


def test_mlflow_run_holds_metrics_and_plots_as_artifacts(
    built: Built, tmp_path: Path
) -> None:
    client = mlflow_client(built.repo)
    run_id = built.run["run_id"]
    plots = {a.path for a in client.list_artifacts(run_id, "plots")}
    written = {p for p in built.files if p.startswith("reports/plots/")}
    assert plots == {p.removeprefix("reports/") for p in written}
    copy = client.download_artifacts(run_id, "metrics.json", str(tmp_path))
    assert json.loads(Path(copy).read_text()) == built.metrics


def test_mlflow_booster_model_has_the_feature_signature(built: Built) -> None:
    from mlflow.models import Model

    client = mlflow_client(built.repo)
    run = client.get_run(built.run["run_id"])
    logged = client.search_logged_models(
        [run.info.experiment_id],
        filter_string=f"source_run_id='{run.info.run_id}'",
    )
    assert sorted(model.name for model in logged) == ["booster", "scorer"]
    booster = next(model for model in logged if model.name == "booster")
    signature = Model.load(booster.artifact_location).signature
    assert signature is not None
    assert signature.inputs.input_names() == built.feature_names


def test_export_registers_the_scorer_as_a_model_version(built: Built) -> None:
    record = built.export
    assert record["registered_model"] == built.params["tracking"]["registered_model"]
    version = mlflow_client(built.repo).get_model_version(
        record["registered_model"], str(record["registered_version"])
    )
    assert record["registered_version"] == 1
    assert version.run_id == built.run["run_id"]
    assert version.source == record["model_uri"]


# --- a second repro ----------------------------------------------------------------


def test_second_repro_is_a_no_op(built: Built, rerun: Rerun) -> None:
    assert [s for s in built.repo.stages() if ran(rerun.output, s)] == []
    assert "Data and pipelines are up to date." in rerun.output
    assert rerun.status == {}
    assert rerun.files_after == built.files
    assert rerun.runs_after == rerun.runs_before == {built.run["run_id"]}
    assert rerun.versions_after == rerun.versions_before == {"1"}


# --- one parameter changed ---------------------------------------------------------


def test_learning_rate_experiment_reruns_only_what_depends_on_it(
    built: Built, experiment: Experiment
) -> None:
    stages = built.repo.stages()
    dependent = affected_by(stages, "train")
    assert {"train", "evaluate", "export"} <= dependent
    assert dependent.isdisjoint(UPSTREAM)
    assert {s for s in stages if ran(experiment.output, s)} == dependent
    for stage in set(stages) - dependent:
        assert f"Stage '{stage}' didn't change, skipping" in experiment.output


def test_experiment_leaves_upstream_outputs_untouched(
    built: Built, experiment: Experiment
) -> None:
    written = outputs(built.repo.stages(), UPSTREAM)

    def upstream(files: dict[str, tuple[str, int]]) -> dict[str, tuple[str, int]]:
        return {p: v for p, v in files.items() if any(overlaps(p, w) for w in written)}

    assert FEATURES in upstream(experiment.files_before)
    assert upstream(experiment.files_after) == upstream(experiment.files_before)
    for stage in UPSTREAM:
        assert lock_entry(experiment.lock_after, stage) == lock_entry(built.lock, stage)


def test_experiment_retrains_with_the_new_learning_rate(
    built: Built, experiment: Experiment
) -> None:
    assert experiment.files_after[BOOSTER][0] != experiment.files_before[BOOSTER][0]
    params = lock_entry(experiment.lock_after, "train")["params"]["params.yaml"]
    assert params["train"]["learning_rate"] == 0.1
    assert experiment.metrics_after["model"] != built.metrics["model"]
    new_runs = experiment.runs_after - experiment.runs_before
    assert new_runs == {experiment.run_after["run_id"]}
    run = mlflow_client(built.repo).get_run(experiment.run_after["run_id"])
    assert run.data.params["train.learning_rate"] == "0.1"
    assert run.data.metrics["model.roc_auc"] == pytest.approx(
        experiment.metrics_after["model"]["roc_auc"]
    )


# --- determinism -------------------------------------------------------------------


def test_same_params_give_identical_data_model_and_metrics(
    built: Built, twin: Built
) -> None:
    # The twin stops after evaluate; run.json holds the (different) MLflow run id.
    written = outputs(built.repo.stages(), TWIN_STAGES)

    def hashes(run: Built) -> dict[str, str]:
        return {
            path: md5
            for path, (md5, _) in run.files.items()
            if any(overlaps(path, w) for w in written) and path != RUN_FILE
        }

    assert {FEATURES, BOOSTER, "reports/metrics.json"} <= set(hashes(twin))
    assert hashes(twin) == hashes(built)
    assert twin.metrics == built.metrics
    assert twin.run["run_id"] != built.run["run_id"]
    assert twin.run["data_version"] == built.run["data_version"]


def test_after_make_clean_train_reruns_into_the_new_store(
    twin: Built, cleaned: Built
) -> None:
    # DVC restores pure stages from its cache; a restored model would name an MLflow
    # run the new store does not hold, and evaluate could not log to it.
    for stage in UPSTREAM:
        assert f"Stage '{stage}' is cached" in cleaned.output
    assert ran(cleaned.output, "train") and ran(cleaned.output, "evaluate")
    assert run_ids(cleaned.repo) == {cleaned.run["run_id"]}
    assert cleaned.run["run_id"] != twin.run["run_id"]
    assert cleaned.files[BOOSTER][0] == twin.files[BOOSTER][0]
    assert cleaned.metrics == twin.metrics
