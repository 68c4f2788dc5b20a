"""The DVC pipeline end to end on real repositories, one per source (issue 12).

For each source a git + DVC repository is built in a tmp dir from the project's
dvc.yaml, data/dvc.yaml, .dvc/config, ignore files and sources, and the source's
params file is put in place of params.yaml as the README says: the synthetic CRM at
the size the tests use (projects.QUICK), and examples/x_education and
examples/maven_crm byte for byte, their data reached as ``../shared/data`` from the
repository (a link to the real folder sits beside it, so the paths resolve as they
do in the project). The real `dvc repro` and `dvc exp run -S` run this venv's
`lead-ml` commands against a sqlite MLflow store in the repository.

Each source is a class, so `make test` (``--dist loadscope``) runs the sources on
different workers. Class-scoped fixtures run in this order: the first `dvc repro`, a
second one that must be a no-op, then the source's experiments, each after a commit
(`dvc exp run` needs one). Fixtures snapshot what the tests read, because later
steps change the workspace. Which stages an experiment must rerun comes from the
resolved pipeline in dvc.lock: the stages reading the changed parameter, and every
stage downstream of their outputs.

The synthetic CRM's repositories run as `make run` does, with no MLFLOW_TRACKING_URI
(the store is found in the project root, issue 15), and carry the bench's stage
file. A twin repository is built from scratch alongside: every tracked file
byte-identical, `dvc status` clean (bench included), its store the "other store"
an experiment's version must not be taken from, and a copy of it shows what `make
clean` does. The first repository's learning-rate experiment is named (MLflow run
names and commits follow DVC's), then a `dvc exp run --temp` experiment must log
and register in the project's store. These were test_tracking's and test_mlflow_ui's
own repositories; they share these so that each pipeline runs once.
"""

from __future__ import annotations

import csv
import html
import json
import math
import os
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import pandas as pd
import pytest
import yaml
from projects import QUICK, ROOT, SHARED, SOURCES, merged, require_source

from lead_ml import tracking
from lead_ml.compare import registry_client, resolve
from lead_ml.config import load_params, read_params_file
from lead_ml.features import FeatureRegistry
from lead_ml.tables import read_table
from lead_ml.tracking import file_md5, flatten, numeric_metrics
from lead_ml.vocab import CompareError

pytestmark = pytest.mark.slow

VENV_BIN = Path(sys.executable).parent
PROJECT_FILES = (
    "dvc.yaml",
    "data/dvc.yaml",
    ".gitignore",
    ".dvcignore",
    ".dvc/config",
    ".dvc/.gitignore",
    "data/.gitignore",
    "models/.gitignore",
    "reports/.gitignore",
)
GENERATE = "data/dvc.yaml:generate"
#: Stages of dvc.yaml besides one read@<table> per table of the source.
PIPELINE = ("validate", "audit", "featurize", "train", "evaluate", "export", "report")
#: After `make clean` in a copy of the twin, `dvc repro` up to here: train reruns.
CLEAN_TARGET = "evaluate"
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
    "evaluation",
    "source",
    "split",
    "n_train",
    "n_valid",
    "n_test",
    "test_start",
    "test_end",
    "features",
)
# A hung command fails the test instead of hanging it (the box is shared: generous).
TIMEOUT_SECONDS = 1200
FEATURES = "data/features/features.parquet"
REGISTRY = "data/features/registry.json"
BOOSTER = "models/model/booster.txt"
RUN_FILE = "models/model/run.json"
METRICS = "reports/metrics.json"
EXPORT = "reports/export.json"
REPORT = "reports/report.html"
#: The synthetic CRM's learning-rate experiment, named (run names follow it).
LOWER_RATE = "lower-rate"
#: X Education's path experiment: an export of its first leads only.
SHORTER_EXPORT_LEADS = 8000


# --- a repository ------------------------------------------------------------------


@dataclass(frozen=True)
class Repo:
    """A tmp git + DVC repository of the project, with its own MLflow store."""

    source: str
    root: Path

    @property
    def tracking_uri(self) -> str:
        """The sqlite store the pipeline in this repository logs to."""
        return f"sqlite:///{self.root / 'mlflow.db'}"

    def environment(self) -> dict[str, str]:
        """The environment the repository's commands run in: the venv first on
        PATH, this repository's own store, offline MLflow."""
        return {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "1",
            # As the Makefile: cached bytecode, or every stage recompiles its imports.
            "PYTHONDONTWRITEBYTECODE": "",
        }

    def start(self, *command: str) -> subprocess.Popen[str]:
        """Start a command in the repository, stdout and stderr into one pipe."""
        return subprocess.Popen(
            command,
            cwd=self.root,
            env=self.environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    @staticmethod
    def finish(process: subprocess.Popen[str], expect: int = 0) -> str:
        """Wait for a started command; its output, or fail with it."""
        try:
            output, _ = process.communicate(timeout=TIMEOUT_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == expect, (
            f"{process.args!r} exited {process.returncode}:\n{output}"
        )
        return output

    def run(self, *command: str, expect: int = 0) -> str:
        """Run a command in the repository; its output, or fail with it."""
        return self.finish(self.start(*command), expect)

    def dvc(self, *args: str) -> str:
        """Run this venv's dvc in the repository."""
        return self.run(str(VENV_BIN / "dvc"), *args)

    def lead_ml(self, *args: str, expect: int = 0) -> str:
        """Run this venv's lead-ml in the repository."""
        return self.run(str(VENV_BIN / "lead-ml"), *args, expect=expect)

    def commit(self, message: str) -> str:
        """Commit everything git does not ignore; the new commit's hash."""
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "-m", message)
        return self.head()

    def head(self) -> str:
        """The current commit."""
        return self.run("git", "rev-parse", "HEAD").strip()

    def json(self, path: str) -> Any:
        """A JSON file of the repository, parsed."""
        return json.loads((self.root / path).read_text())

    def pipeline_stages(self) -> list[str]:
        """The stages of dvc.yaml as DVC resolves them (foreach expanded)."""
        return self.dvc("stage", "list", "dvc.yaml", "--name-only").split()

    def files(self, paths: Iterable[str]) -> dict[str, tuple[str, int]]:
        """Every file under paths as {path: (md5, mtime ns)}."""
        found: dict[str, tuple[str, int]] = {}
        for top in paths:
            start = self.root / top
            for path in sorted(start.rglob("*")) if start.is_dir() else [start]:
                if path.is_file():
                    relative = path.relative_to(self.root).as_posix()
                    found[relative] = (file_md5(path), path.stat().st_mtime_ns)
        return found


def keep_site_cache(root: Path) -> None:
    """DVC keeps a per-repository index under /var/tmp by default: keep it in the
    repository (its .dvc/tmp)."""
    (root / ".dvc/config.local").write_text(
        f"[core]\n    site_cache_dir = {root / '.dvc/tmp/site'}\n"
    )


def build_repo(source: str, folder: Path) -> Repo:
    """Copy what the pipeline needs into ``folder/project`` with the source's params
    file as params.yaml, and make it a committed git + DVC repository."""
    root = folder / "project"
    for name in PROJECT_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, root / name)
    shutil.copytree(
        ROOT / "src" / "lead_ml",
        root / "src" / "lead_ml",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    if source == "synthetic":
        raw = merged(read_params_file(SOURCES[source]), QUICK)
        (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    else:
        # As a user does: the example in place of params.yaml, unchanged; its paths
        # name ../shared/data from the project root.
        shutil.copy2(SOURCES[source], root / "params.yaml")
        (folder / "shared").mkdir()
        (folder / "shared" / "data").symlink_to(SHARED, target_is_directory=True)
    keep_site_cache(root)
    repo = Repo(source, root)
    repo.run("git", "init", "-q")
    repo.run("git", "config", "user.name", "lead-ml tests")
    repo.run("git", "config", "user.email", "tests@lead-ml.invalid")
    repo.commit(f"project on the {source} source")
    return repo


BENCH = "bench/dvc.yaml"
BENCH_FILES = ("bench/dvc.yaml", "bench/harness.py", "examples/x_education/params.yaml")


@dataclass(frozen=True)
class DefaultRepo(Repo):
    """A test repository run as `make run` runs: no MLFLOW_TRACKING_URI, so lead-ml
    resolves the store itself (mlflow.db in the repository's root)."""

    def environment(self) -> dict[str, str]:
        """The repository's environment without any store setting."""
        hidden = ("MLFLOW_TRACKING_URI", tracking.DVC_ROOT)
        return {k: v for k, v in super().environment().items() if k not in hidden}


def default_repo(folder: Path) -> DefaultRepo:
    """The synthetic project with the bench's stage file, its code hash recorded,
    run with the default store."""
    built = build_repo("synthetic", folder)
    repo = DefaultRepo(built.source, built.root)
    for name in BENCH_FILES:
        (repo.root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo.root / name)
    # Its outputs stand in as empty JSON: `dvc commit` records what it reads.
    stage = yaml.safe_load((ROOT / BENCH).read_text())["stages"]["bench"]
    for entry in [*stage.get("outs", []), *stage.get("metrics", [])]:
        path = repo.root / (entry if isinstance(entry, str) else next(iter(entry)))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}\n")
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


# --- the resolved pipeline ---------------------------------------------------------


@dataclass(frozen=True)
class Locked:
    """One stage as dvc.lock resolved it: what it read and wrote."""

    deps: tuple[str, ...]
    outs: tuple[str, ...]
    params: tuple[str, ...]


def read_lock(root: Path) -> dict[str, Any]:
    """Both lock files, parsed, by stage name (data/dvc.yaml's as DVC names them)."""
    entries: dict[str, Any] = {}
    for lock, prefix in ((root / "dvc.lock", ""), (root / "data/dvc.lock", "data/")):
        if lock.exists():
            for name, entry in yaml.safe_load(lock.read_text())["stages"].items():
                entries[f"{prefix}dvc.yaml:{name}" if prefix else name] = entry
    return entries


def locked_stages(lock: dict[str, Any]) -> dict[str, Locked]:
    """The resolved stages of a lock (data/dvc.yaml's paths are from the project
    root: its stage runs with wdir ``..``)."""
    return {
        name: Locked(
            deps=tuple(dep["path"] for dep in entry.get("deps", [])),
            outs=tuple(out["path"] for out in entry.get("outs", [])),
            params=tuple(entry.get("params", {}).get("params.yaml", {})),
        )
        for name, entry in lock.items()
    }


def overlaps(path: str, other: str) -> bool:
    """Whether one path is the other or inside it (a file in an output folder)."""
    return path == other or path.startswith(f"{other}/") or other.startswith(f"{path}/")


def reads(stage: Locked, key: str) -> bool:
    """Whether a stage reads a params key (the key, a section above it or below)."""
    return any(
        key == p or key.startswith(f"{p}.") or p.startswith(f"{key}.")
        for p in stage.params
    )


def affected_by(stages: dict[str, Locked], key: str) -> set[str]:
    """Stages that read a params key, and every stage downstream of them."""
    affected = {name for name, stage in stages.items() if reads(stage, key)}
    while True:
        written = [out for name in affected for out in stages[name].outs]
        downstream = {
            name
            for name, stage in stages.items()
            if any(overlaps(dep, out) for dep in stage.deps for out in written)
        }
        if downstream <= affected:
            return affected
        affected |= downstream


def upstream_of(stages: dict[str, Locked], name: str) -> set[str]:
    """A stage and every stage it depends on (what `dvc repro NAME` covers)."""
    needed = {name}
    while True:
        read = [dep for n in needed for dep in stages[n].deps]
        upstream = {
            other
            for other, stage in stages.items()
            if any(overlaps(out, dep) for out in stage.outs for dep in read)
        }
        if upstream <= needed:
            return needed
        needed |= upstream


def outputs(stages: dict[str, Locked], names: Iterable[str] | None = None) -> list[str]:
    """What the named stages (default: all) write."""
    chosen = stages if names is None else {n: stages[n] for n in names}
    return [out for stage in chosen.values() for out in stage.outs]


def ran(output: str) -> set[str]:
    """The stages a dvc repro / exp run output says it ran."""
    return set(re.findall(r"Running stage '([^']+)'", output))


def skipped(output: str) -> set[str]:
    """The stages a dvc output says did not change."""
    return set(re.findall(r"Stage '([^']+)' didn't change, skipping", output))


def restored(output: str) -> set[str]:
    """The stages a dvc output says it checked out from the run cache."""
    return set(re.findall(r"Stage '([^']+)' is cached", output))


def reads_generated_tables(params: dict[str, Any]) -> bool:
    """Whether the source reads the tables `lead-ml generate` writes (data/raw)."""
    return any(
        overlaps(table["path"], "data/raw")
        for table in params["source"]["tables"].values()
        if table is not None
    )


# --- MLflow ------------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    """A repository's MLflow store, read through a client of its own (no global
    MLflow state is touched)."""

    uri: str

    def client(self) -> Any:
        """A client of the store."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MLflow's own import-time warnings
            from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def run_ids(self, experiment: str) -> set[str]:
        """Ids of every run in the experiment."""
        client = self.client()
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return set()
        runs = client.search_runs([found.experiment_id], max_results=1000)
        return {run.info.run_id for run in runs}

    def versions(self, name: str) -> set[int]:
        """Versions of the registered scorer model."""
        found = self.client().search_model_versions(f"name='{name}'")
        return {int(version.version) for version in found}

    def with_run(self, experiment: str, record: dict[str, Any]) -> dict[str, Any]:
        """A training record (run.json) with the id of the newest run tagged with its
        model: DVC outputs hold no run id, the store finds it by content."""
        client = self.client()
        found = client.get_experiment_by_name(experiment)
        if "model" not in record or found is None:
            return record
        runs = client.search_runs(
            [found.experiment_id],
            filter_string=f"tags.`lead_ml.model` = '{record['model']}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return {**record, "run_id": runs[0].info.run_id} if runs else record

    def with_version(self, name: str, record: dict[str, Any]) -> dict[str, Any]:
        """An export record with the newest version holding its scorer (tag
        lead_ml.model_version) and that version's run."""
        versions = [
            v
            for v in self.client().search_model_versions(f"name='{name}'")
            if v.tags.get("lead_ml.model_version") == record.get("model_version")
        ]
        if not versions:
            return record
        newest = max(versions, key=lambda v: int(v.version))
        return {
            **record,
            "run_id": newest.run_id,
            "registered_version": int(newest.version),
        }


# --- snapshots ---------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What a dvc command did and left in the repository, read right after it."""

    repo: Repo
    output: str
    commit: str
    params: dict[str, Any]
    lock: dict[str, Any]
    stages: dict[str, Locked]
    files: dict[str, tuple[str, int]]
    metrics: dict[str, Any]
    run: dict[str, Any]
    export: dict[str, Any]
    registry: FeatureRegistry
    report: str
    runs: set[str]
    versions: set[int]
    #: Per source table: rows of the file as exported, rows `lead-ml read` copied.
    table_rows: dict[str, tuple[int, int]]
    #: validate's counts (data/validated/source.json) and what it wrote.
    summary: dict[str, Any]
    validated_rows: dict[str, int]
    rejected: dict[str, int]
    plot_rows: dict[str, int]
    calibration: list[tuple[int, float, float]]
    has_raw: bool
    #: md5 of every file git tracks or would track (the committed outputs among them).
    tracked: dict[str, str]

    def md5(self, path: str) -> str:
        """The md5 of an output file."""
        return self.files[path][0]


def snapshot(repo: Repo, output: str, new_store: bool = False) -> Snapshot:
    """What a `dvc repro` or `dvc exp run` wrote, read before anything changes it.

    ``new_store``: the MLflow store was deleted and created again since the last
    snapshot. MLflow keeps one store per URI in a process, its sqlite file open, so
    the same URI would still read the deleted file: another spelling of the path
    reaches the new one.
    """
    root = repo.root
    params = load_params(root / "params.yaml")
    lock = read_lock(root)
    stages = locked_stages(lock)
    store = Store(f"sqlite:///{root}/./mlflow.db" if new_store else repo.tracking_uri)
    tables = params.source.tables.present()
    rejects = pd.read_csv(root / "reports/rejects.csv", dtype=str)
    assert rejects["reason"].notna().all()
    plots = root / "reports/plots"
    optional = {
        path: repo.json(path) if (root / path).exists() else {}
        for path in (EXPORT, RUN_FILE, METRICS)
    }
    return Snapshot(
        repo=repo,
        output=output,
        commit=repo.head(),
        params=params.model_dump(mode="json"),
        lock=lock,
        stages=stages,
        files=repo.files(outputs(stages)),
        metrics=optional[METRICS],
        run=store.with_run(params.tracking.experiment, optional[RUN_FILE]),
        export=store.with_version(params.tracking.registered_model, optional[EXPORT]),
        registry=FeatureRegistry.from_dict(repo.json(REGISTRY)),
        report=(root / REPORT).read_text() if (root / REPORT).exists() else "",
        runs=store.run_ids(params.tracking.experiment),
        versions=store.versions(params.tracking.registered_model),
        table_rows={
            name: (
                len(read_table(root / table.path, name)),
                len(pd.read_parquet(root / f"data/tables/{name}.parquet")),
            )
            for name, table in tables.items()
        },
        summary=repo.json("data/validated/source.json")["summary"],
        validated_rows={
            name: len(pd.read_parquet(root / f"data/validated/{name}.parquet"))
            for name in ("deals", "activities")
        },
        rejected={str(k): int(v) for k, v in rejects["table"].value_counts().items()},
        plot_rows={
            path: len(pd.read_csv(root / path))
            for path in declared_plots()
            if (root / path).exists()
        },
        calibration=calibration_bins(plots / "calibration.csv")
        if (plots / "calibration.csv").exists()
        else [],
        has_raw=(root / "data/raw").exists(),
        tracked=tracked_files(repo),
    )


def experiment(
    repo: Repo, message: str, *settings: str, name: str | None = None
) -> Snapshot:
    """Commit the workspace as the baseline, then `dvc exp run -S` each setting
    (named ``name``, or as DVC names it)."""
    repo.commit(message)
    named = ("-n", name) if name else ()
    output = repo.dvc(
        "exp", "run", *named, *(part for s in settings for part in ("-S", s))
    )
    return snapshot(repo, output)


def experiment_name(output: str) -> str:
    """The name `dvc exp run` gave its experiment."""
    found = re.search(r"Ran experiment\(s\): (\S+)", output)
    assert found, output
    return found.group(1)


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


def calibration_bins(path: Path) -> list[tuple[int, float, float]]:
    """The non-empty bins of calibration.csv as (count, mean predicted, observed)."""
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    return [
        (int(row["count"]), float(row["mean_predicted"]), float(row["observed_rate"]))
        for row in rows
        if int(row["count"]) > 0
    ]


def calibration_noise_floor(bins: list[tuple[int, float, float]]) -> float:
    """The ECE a perfectly calibrated model shows on average with these bins.

    In a bin of n leads at mean probability p the observed rate misses p by
    sqrt(2/pi) * sqrt(p(1-p)/n) on average, from sampling alone.
    """
    total = sum(n for n, _, _ in bins)
    return sum(n / total * math.sqrt(2 / math.pi * p * (1 - p) / n) for n, p, _ in bins)


def declared_plots() -> set[str]:
    """The plot files dvc.yaml draws."""
    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    return {path for plot in plots for spec in plot.values() for path in spec["y"]}


def make_clean_paths() -> list[str]:
    """What `make clean` removes besides the venv (DVC's cache and run cache stay)."""
    recipe = (ROOT / "Makefile").read_text().split("\nclean:", 1)[1]
    command = next(line for line in recipe.splitlines() if "rm -rf" in line)
    return [p for p in command.split("rm -rf", 1)[1].split() if not p.startswith("$(")]


# --- fixtures: one chain per source class ------------------------------------------


@pytest.fixture(scope="class")
def source(request: pytest.FixtureRequest) -> str:
    """The source of the test class (skipped, saying why, without its data)."""
    name: str = request.cls.SOURCE
    require_source(name)
    return name


@pytest.fixture(scope="class")
def built(source: str, tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """The pipeline run from scratch in a new repository."""
    repo = build_repo(source, tmp_path_factory.mktemp(source))
    return snapshot(repo, repo.dvc("repro"))


@pytest.fixture(scope="class")
def rerun(built: Snapshot) -> tuple[Snapshot, Any]:
    """`dvc repro` again with nothing changed, and `dvc status` after it."""
    after = snapshot(built.repo, built.repo.dvc("repro"))
    status = json.loads(built.repo.dvc("status", "dvc.yaml", "--with-deps", "--json"))
    return after, status


# --- what every source's pipeline does ---------------------------------------------


class Checks:
    """The pipeline's guarantees for any source; a Test class per source sets
    SOURCE and adds the source's own checks."""

    SOURCE = ""

    def test_every_stage_runs_and_writes_its_outputs(self, built: Snapshot) -> None:
        tables = [n for n, t in built.params["source"]["tables"].items() if t]
        stages = built.repo.pipeline_stages()
        assert sorted(stages) == sorted([*(f"read@{t}" for t in tables), *PIPELINE])
        generated = reads_generated_tables(built.params)
        assert ran(built.output) == set(stages) | ({GENERATE} if generated else set())
        assert set(built.stages) == ran(built.output)
        missing = [
            p
            for p in outputs(built.stages)
            if not any(overlaps(p, f) for f in built.files)
        ]
        assert missing == [], "declared outputs not written"
        expected = [
            *(f"data/tables/{t}.parquet" for t in tables),
            "data/validated/deals.parquet",
            "data/validated/source.json",
            "reports/rejects.csv",
            "reports/audit.json",
            "data/audit/split.parquet",
            FEATURES,
            REGISTRY,
            BOOSTER,
            "models/model/model.json",
            RUN_FILE,
            METRICS,
            "models/scorer/MLmodel",
            "models/scorer/artifacts/bundle/booster.txt",
            "models/scorer/artifacts/bundle/scorer.json",
            "models/scorer/artifacts/bundle/manifest.json",
            EXPORT,
            REPORT,
        ]
        assert [path for path in expected if path not in built.files] == []

    def test_the_generator_runs_only_when_the_source_reads_its_tables(
        self, built: Snapshot
    ) -> None:
        generated = reads_generated_tables(built.params)
        assert (GENERATE in ran(built.output)) == generated
        assert built.has_raw == generated
        assert (GENERATE in built.stages) == generated

    def test_read_copies_every_row_and_validate_reconciles_them(
        self, built: Snapshot
    ) -> None:
        summary, rejected = built.summary, built.rejected
        counted = {"deals": "rows_in", "accounts": "accounts_in"}
        for name, (exported, copied) in built.table_rows.items():
            assert copied == exported == summary[counted.get(name, f"{name}_in")]
        deals = built.validated_rows["deals"]
        assert summary["rows_in"] == deals + rejected.get("deals", 0)
        assert summary["won"] + summary["lost"] + summary["open"] == deals
        log = built.validated_rows["activities"]
        assert summary["activities_in"] == log + rejected.get("activities", 0)
        assert summary["accounts_rejected"] == rejected.get("accounts", 0)
        assert set(rejected) <= set(built.table_rows)

    def test_metrics_json_has_every_key_the_issue_lists(self, built: Snapshot) -> None:
        flat = flatten(built.metrics)
        assert [key for key in METRIC_KEYS if key not in flat] == []
        low, high = flat["delta_roc_auc_ci95"]
        assert low <= flat["delta_roc_auc"] <= high
        assert flat["source"] == built.params["source"]["name"]
        assert flat["features"] == built.registry.names
        assert flat["n_test"] > 0 and flat["n_train"] > flat["n_test"]

    def test_every_declared_plot_file_is_written(self, built: Snapshot) -> None:
        declared = declared_plots()
        written = {p for p in built.files if p.startswith("reports/plots/")}
        assert declared and declared <= written
        # A curve needs two points; calibration one non-empty bin (a model that
        # finds nothing to tell leads apart puts every lead in one).
        short = {
            path: rows
            for path, rows in built.plot_rows.items()
            if rows < (1 if path.endswith("calibration.csv") else 2)
        }
        assert set(built.plot_rows) == declared and short == {}

    def test_calibration_error_agrees_with_its_plot_data(self, built: Snapshot) -> None:
        bins = built.calibration
        total = sum(n for n, _, _ in bins)
        gap = sum(n / total * abs(pred - seen) for n, pred, seen in bins)
        assert total == built.metrics["n_test"]
        assert built.metrics["model"]["ece"] == pytest.approx(gap, abs=1e-4)

    def test_export_bundles_the_trained_booster(self, built: Snapshot) -> None:
        bundled = built.md5("models/scorer/artifacts/bundle/booster.txt")
        assert bundled == built.md5(BOOSTER)
        assert built.export["run_id"] == built.run["run_id"]

    def test_mlflow_run_logs_flattened_params_and_data_tags(
        self, built: Snapshot
    ) -> None:
        run = Store(built.repo.tracking_uri).client().get_run(built.run["run_id"])
        expected = {key: str(value) for key, value in flatten(built.params).items()}
        assert run.data.params == expected
        features_md5 = built.md5(FEATURES)
        assert run.data.tags["data_version"] == features_md5
        featurize = built.lock["featurize"]["outs"]
        assert (
            next(o["md5"] for o in featurize if o["path"] == FEATURES) == features_md5
        )
        assert run.data.tags["git_commit"] == built.commit
        assert run.data.tags["source"] == built.params["source"]["name"]

    def test_mlflow_run_logs_every_numeric_metric(self, built: Snapshot) -> None:
        client = Store(built.repo.tracking_uri).client()
        logged = client.get_run(built.run["run_id"]).data.metrics
        expected = numeric_metrics(built.metrics)
        assert {"model.roc_auc", "delta_roc_auc_ci95_low", "capacity.k"} <= set(
            expected
        )
        assert {key: logged.get(key) for key in expected} == pytest.approx(expected)
        assert logged["best_iteration"] >= 1

    def test_mlflow_run_holds_metrics_plots_and_report(
        self, built: Snapshot, tmp_path: Path
    ) -> None:
        client = Store(built.repo.tracking_uri).client()
        run_id = built.run["run_id"]
        plots = {a.path for a in client.list_artifacts(run_id, "plots")}
        written = {p for p in built.files if p.startswith("reports/plots/")}
        assert plots == {p.removeprefix("reports/") for p in written}
        copy = client.download_artifacts(run_id, "metrics.json", str(tmp_path))
        assert json.loads(Path(copy).read_text()) == built.metrics
        report = client.download_artifacts(run_id, "report.html", str(tmp_path))
        assert Path(report).read_text() == built.report

    def test_mlflow_holds_the_booster_with_its_feature_signature(
        self, built: Snapshot
    ) -> None:
        from mlflow.models import Model

        client = Store(built.repo.tracking_uri).client()
        run = client.get_run(built.run["run_id"])
        logged = client.search_logged_models(
            [run.info.experiment_id],
            filter_string=f"source_run_id='{run.info.run_id}'",
        )
        assert sorted(model.name for model in logged) == ["booster", "scorer"]
        booster = next(model for model in logged if model.name == "booster")
        # Model.load takes a folder, not a file:// URI (the default store's form).
        location = urlparse(booster.artifact_location)
        folder = url2pathname(location.path) if location.scheme == "file" else None
        signature = Model.load(folder or booster.artifact_location).signature
        assert signature is not None
        assert signature.inputs.input_names() == built.registry.names

    def test_export_registers_the_scorer_as_a_model_version(
        self, built: Snapshot
    ) -> None:
        record = built.export
        assert (
            record["registered_model"] == built.params["tracking"]["registered_model"]
        )
        version = (
            Store(built.repo.tracking_uri)
            .client()
            .get_model_version(
                record["registered_model"], str(record["registered_version"])
            )
        )
        assert record["registered_version"] == 1 and built.versions == {1}
        assert built.runs == {built.run["run_id"]}
        assert version.run_id == built.run["run_id"]
        assert version.tags["lead_ml.model_version"] == record["model_version"]

    def test_report_names_the_sources_own_columns(self, built: Snapshot) -> None:
        shown = built.report
        assert shown.lower().startswith("<!doctype html>")
        assert html.escape(built.params["source"]["name"]) in shown
        columns = [s.column for s in built.registry.specs if s.column]
        assert columns and [c for c in columns if html.escape(c) not in shown] == []
        # A feature's internal name (lead_origin for "Lead Origin") is not the user's.
        internal = [
            s.name
            for s in built.registry.specs
            if s.column and s.name != s.column and "_" in s.name
        ]
        assert [name for name in internal if name in shown] == []

    def test_second_repro_is_a_no_op(
        self, built: Snapshot, rerun: tuple[Snapshot, Any]
    ) -> None:
        after, status = rerun
        assert ran(after.output) == set()
        assert "Data and pipelines are up to date." in after.output
        assert status == {}
        assert after.files == built.files
        assert after.runs == built.runs and after.versions == built.versions


class LearningRateChecks:
    """`dvc exp run -S train.learning_rate=0.1` on the run so far (the fixture
    ``learning_rate``, (before, after)): only train and what follows rerun."""

    def test_learning_rate_experiment_reruns_only_what_depends_on_it(
        self, learning_rate: tuple[Snapshot, Snapshot]
    ) -> None:
        before, after = learning_rate
        dependent = affected_by(before.stages, "train.learning_rate")
        assert dependent == {"train", "evaluate", "export", "report"}
        assert ran(after.output) == dependent
        assert skipped(after.output) == set(before.stages) - dependent

    def test_experiment_leaves_upstream_outputs_untouched(
        self, learning_rate: tuple[Snapshot, Snapshot]
    ) -> None:
        before, after = learning_rate
        upstream = set(before.stages) - affected_by(
            before.stages, "train.learning_rate"
        )
        written = outputs(before.stages, upstream)

        def of(files: dict[str, tuple[str, int]]) -> dict[str, tuple[str, int]]:
            return {
                p: v for p, v in files.items() if any(overlaps(p, w) for w in written)
            }

        assert FEATURES in of(before.files)
        assert of(after.files) == of(before.files)  # hashes and mtimes
        assert {s: after.lock[s] for s in upstream} == {
            s: before.lock[s] for s in upstream
        }

    def test_experiment_retrains_registers_and_logs_the_new_learning_rate(
        self, learning_rate: tuple[Snapshot, Snapshot]
    ) -> None:
        before, after = learning_rate
        assert after.md5(BOOSTER) != before.md5(BOOSTER)
        assert (
            after.lock["train"]["params"]["params.yaml"]["train"]["learning_rate"]
            == 0.1
        )
        assert after.metrics["model"] != before.metrics["model"]
        assert after.runs - before.runs == {after.run["run_id"]}
        assert after.versions - before.versions == {max(before.versions) + 1}
        assert after.export["registered_version"] == max(before.versions) + 1
        run = Store(after.repo.tracking_uri).client().get_run(after.run["run_id"])
        assert run.data.params["train.learning_rate"] == "0.1"
        assert run.data.metrics["model.roc_auc"] == pytest.approx(
            after.metrics["model"]["roc_auc"]
        )


# --- the synthetic CRM -------------------------------------------------------------


class TestSynthetic(LearningRateChecks, Checks):
    """The built-in synthetic CRM at the tests' size: generate runs upstream.

    Both repositories carry the bench's stage file and run as `make run` does, with
    no MLFLOW_TRACKING_URI (lead-ml finds the store in the project root, issue 15).
    The twin is never changed after its run: its store holds one run and v1, the
    same content as the first repository's v1 but none of its experiments.
    """

    SOURCE = "synthetic"

    @pytest.fixture(scope="class")
    @classmethod
    def twin_started(
        cls, source: str, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[tuple[Repo, subprocess.Popen[str]]]:
        """A second repository from scratch, its `dvc repro` started.

        It runs while the first repository's pipeline runs: most of a stage's time
        is one process importing its libraries, so the two share the cores well.
        """
        repo = default_repo(tmp_path_factory.mktemp("twin"))
        process = repo.start(str(VENV_BIN / "dvc"), "repro")
        yield repo, process
        if process.poll() is None:  # the twin was not needed: stop it
            process.kill()
        process.communicate()  # closes the pipe

    @pytest.fixture(scope="class")
    @classmethod
    def built(
        cls,
        source: str,
        tmp_path_factory: pytest.TempPathFactory,
        twin_started: tuple[Repo, subprocess.Popen[str]],
    ) -> Snapshot:
        """The pipeline run from scratch in a new repository (alongside the twin)."""
        repo = default_repo(tmp_path_factory.mktemp(source))
        return snapshot(repo, repo.dvc("repro"))

    @pytest.fixture(scope="class")
    @classmethod
    def twin(cls, twin_started: tuple[Repo, subprocess.Popen[str]]) -> Snapshot:
        """The same pipeline from scratch in the second repository."""
        repo, process = twin_started
        return snapshot(repo, Repo.finish(process))

    @pytest.fixture(scope="class")
    @classmethod
    def made(cls, built: Snapshot, twin: Snapshot) -> dict[str, list[Any]]:
        """Both repositories as `make run` leaves them, their sources compiled to
        bytecode: per repository, whether bytecode was written, then `dvc status` of
        the pipeline and of the bench. Read before any experiment changes params."""
        found: dict[str, list[Any]] = {}
        for name, repo in (("first", built.repo), ("twin", twin.repo)):
            # The bytecode a clone's own (editable) lead-ml writes beside its
            # sources: the tests' lead-ml runs from the project, so it is written here.
            repo.run(sys.executable, "-m", "compileall", "-q", "src/lead_ml")
            compiled = any((repo.root / "src/lead_ml/__pycache__").glob("*.pyc"))
            found[name] = [
                compiled,
                json.loads(repo.dvc("status", "--json")),
                json.loads(repo.dvc("status", BENCH, "--json")),
            ]
        return found

    @pytest.fixture(scope="class")
    @classmethod
    def learning_rate(
        cls, built: Snapshot, rerun: tuple[Snapshot, Any], made: dict[str, list[Any]]
    ) -> tuple[Snapshot, Snapshot]:
        """One training setting changed through `dvc exp run -n lower-rate -S`."""
        before = rerun[0]
        after = experiment(
            built.repo, "first run", "train.learning_rate=0.1", name=LOWER_RATE
        )
        return before, after

    @pytest.fixture(scope="class")
    @classmethod
    def temp_experiment(
        cls, built: Snapshot, learning_rate: tuple[Snapshot, Snapshot]
    ) -> tuple[str, str]:
        """`dvc exp run --temp` (a copy under .dvc/tmp/exps) on the first repository,
        after the learning-rate experiment: the experiment's name and the output."""
        repo = built.repo
        repo.commit("the learning-rate experiment")
        output = repo.dvc("exp", "run", "--temp", "-S", "train.learning_rate=0.05")
        return experiment_name(output), output

    @pytest.fixture(scope="class")
    @classmethod
    def cleaned(
        cls, twin: Snapshot, tmp_path_factory: pytest.TempPathFactory
    ) -> tuple[list[str], Snapshot]:
        """A copy of the twin (a clone, its DVC cache and run cache kept) after what
        `make clean` removes (outputs, MLflow store), rerun up to evaluate. A copy:
        the twin's own store stays as it was for the tests reading it."""
        root = tmp_path_factory.mktemp("cleaned") / "project"

        def state(folder: str, names: list[str]) -> set[str]:
            # DVC's per-repository state (its index of the twin's paths) is rebuilt.
            return {"tmp"} if Path(folder) == twin.repo.root / ".dvc" else set()

        shutil.copytree(twin.repo.root, root, symlinks=True, ignore=state)
        keep_site_cache(root)
        repo = DefaultRepo(twin.repo.source, root)
        removed = make_clean_paths()
        for name in removed:
            path = root / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        return removed, snapshot(repo, repo.dvc("repro", CLEAN_TARGET))

    def test_same_params_give_identical_data_model_metrics_and_hashes(
        self, built: Snapshot, twin: Snapshot
    ) -> None:
        stages = set(twin.stages)
        assert (
            stages
            == set(built.stages)
            == {
                GENERATE,
                *(s for s in built.stages if s.startswith("read@")),
                *PIPELINE,
            }
        )

        def hashes(run: Snapshot) -> dict[str, str]:
            written = outputs(run.stages, stages)
            return {
                path: md5
                for path, (md5, _) in run.files.items()
                if any(overlaps(path, w) for w in written)
            }

        assert {FEATURES, BOOSTER, RUN_FILE, METRICS, EXPORT} <= set(hashes(twin))
        assert hashes(twin) == hashes(built)
        assert twin.metrics == built.metrics
        # DVC's own hashes of every output.
        for stage in stages:
            assert twin.lock[stage]["outs"] == built.lock[stage]["outs"], stage
        assert twin.run["run_id"] != built.run["run_id"]
        assert twin.run["data_version"] == built.run["data_version"]

    def test_a_fresh_folder_reproduces_every_tracked_file_byte_for_byte(
        self, built: Snapshot, twin: Snapshot
    ) -> None:
        first, second = twin.tracked, built.tracked
        assert "dvc.lock" in first and "reports/export.json" in first
        assert "reports/report.html" in first and "reports/metrics.json" in first
        assert [p for p in first if first[p] != second.get(p)] == []
        assert first.keys() == second.keys()
        # Neither a run id nor a registry version is in what DVC hashes (the twin's
        # files are as its run left them).
        repo = twin.repo
        lock = (repo.root / "dvc.lock").read_bytes()
        assert file_md5(repo.root / "dvc.lock") == second["dvc.lock"]
        record, run = repo.json(EXPORT), repo.json(RUN_FILE)
        (run_id,) = Store(repo.tracking_uri).run_ids("lead-ml")
        assert "run_id" not in record and "registered_version" not in record
        assert run_id not in lock.decode()
        for path in (REPORT, EXPORT, RUN_FILE):
            assert run_id not in (repo.root / path).read_text(), path
        assert set(run) == {"model", "data_version", "source"}

    def test_after_make_run_dvc_status_is_clean_bench_included(
        self, made: dict[str, list[Any]]
    ) -> None:
        assert made == {"first": [True, {}, {}], "twin": [True, {}, {}]}

    def test_runs_and_versions_carry_the_content_identity(self, twin: Snapshot) -> None:
        repo = twin.repo
        client = Store(repo.tracking_uri).client()
        record, run = repo.json(EXPORT), repo.json(RUN_FILE)
        (version,) = client.search_model_versions("name = 'lead-ml-scorer'")
        trained = client.get_run(version.run_id)
        assert trained.data.tags[tracking.MODEL_TAG] == run["model"] == record["model"]
        assert trained.data.tags[tracking.SCORER_TAG] == record["model_version"]
        assert version.tags[tracking.SCORER_TAG] == record["model_version"]
        assert trained.data.metrics["model.roc_auc"] == pytest.approx(
            repo.json(METRICS)["model"]["roc_auc"]
        )
        # Artifacts sit in the project's mlruns/, not wherever a stage ran.
        experiment = client.get_experiment_by_name("lead-ml")
        assert experiment.artifact_location == (repo.root / "mlruns").as_uri()

    def test_dvc_runs_are_named_after_their_experiment_with_the_commit(
        self, learning_rate: tuple[Snapshot, Snapshot]
    ) -> None:
        after = learning_rate[1]
        client = Store(after.repo.tracking_uri).client()
        experiment = client.get_experiment_by_name("lead-ml")
        assert experiment is not None
        runs = [
            run
            for run in client.search_runs(
                [experiment.experiment_id], order_by=["start_time ASC"]
            )
            if run.info.run_id in after.runs
        ]
        assert [run.info.run_name for run in runs] == ["synthetic CRM", LOWER_RATE]
        first, named = runs
        head = after.commit  # the experiment's baseline, "first run"
        assert named.data.tags["dvc.experiment"] == LOWER_RATE
        assert named.data.tags["dvc.baseline_rev"] == head
        assert first.data.tags["mlflow.source.git.commit"] != head  # before it
        assert named.data.tags["mlflow.source.git.commit"] == head
        assert named.data.params["train.learning_rate"] == "0.1"
        assert (
            experiment.tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
        )

    def test_a_temp_experiment_logs_and_registers_in_the_projects_store(
        self, built: Snapshot, temp_experiment: tuple[str, str]
    ) -> None:
        repo, name = built.repo, temp_experiment[0]
        store = Store(repo.tracking_uri)
        # v1 the first run, v2 the learning-rate experiment, v3 this one.
        assert store.versions("lead-ml-scorer") == {1, 2, 3}
        assert len(store.run_ids("lead-ml")) == 3
        client = store.client()
        record = experiment_record(repo, name)
        latest = client.get_model_version("lead-ml-scorer", "3")
        assert latest.tags[tracking.SCORER_TAG] == record["model_version"]
        assert client.get_run(latest.run_id).data.params["train.learning_rate"] == (
            "0.05"
        )
        compared = repo.lead_ml("compare", "v1", name, "--out-dir", "reports/compare")
        assert "v3" in (repo.root / "reports/compare/compare.md").read_text()
        assert "Traceback" not in compared

    def test_compare_and_promote_refuse_a_version_that_is_not_the_experiments(
        self,
        built: Snapshot,
        twin: Snapshot,
        learning_rate: tuple[Snapshot, Snapshot],
    ) -> None:
        # The bug's mechanism: the store in force (the twin's) has a v1 (the same
        # content as the first repository's first run) but not the experiment's
        # model, as when a queued run registered into a temporary copy's store. The
        # lower-rate experiment's model is one the twin never trained (the --temp
        # experiment goes back to the default rate: the twin holds its content).
        repo, name = built.repo, LOWER_RATE
        record = experiment_record(repo, name)
        uri = twin.repo.tracking_uri
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

    def test_an_older_record_counts_only_when_its_run_registered_the_version(
        self, twin: Snapshot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Records of older lead-ml named a registry version and a run id: the
        # version is the experiment's only when it was registered from that run.
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
        store = Store(twin.repo.tracking_uri)
        (version,) = store.client().search_model_versions("name = 'lead-ml-scorer'")
        for name, run_id in (("mine", version.run_id), ("stray", "0" * 32)):
            record.write_text(json.dumps({"registered_version": 1, "run_id": run_id}))
            run(sys.executable, "-m", "dvc", "exp", "save", "-f", "-n", name)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
        params = load_params(twin.repo.root / "params.yaml")
        client = registry_client()
        assert resolve(client, params, "mine", repo=tmp_path).version == 1
        with pytest.raises(CompareError, match=f"registered from run {version.run_id}"):
            resolve(client, params, "stray", repo=tmp_path)

    def test_after_make_clean_train_reruns_into_the_new_store(
        self, twin: Snapshot, cleaned: tuple[list[str], Snapshot]
    ) -> None:
        # DVC restores cached stages from its run cache; a restored model would
        # have no MLflow run in the new store, and evaluate could not log to it, so
        # train is never cached. It retrains the same bytes (no run id in them), so
        # evaluate, whose inputs are unchanged, is not rerun: its metrics stay those
        # the old store held (`dvc repro --force evaluate` logs them to the new run).
        removed, after = cleaned
        assert "mlflow.db" in removed and "models/model" in removed
        covered = upstream_of(twin.stages, CLEAN_TARGET)
        hit = {
            name
            for name in covered
            if any(overlaps(out, r) for out in twin.stages[name].outs for r in removed)
        }
        assert {"train", "featurize", GENERATE} <= hit
        assert hit - {"train"} <= restored(after.output) | ran(after.output)
        assert "train" in ran(after.output) and "evaluate" in skipped(after.output)
        assert after.lock["train"] == twin.lock["train"]
        assert after.runs == {after.run["run_id"]} != {twin.run["run_id"]}
        assert after.md5(BOOSTER) == twin.md5(BOOSTER)
        assert after.metrics == twin.metrics

    def test_calibration_is_within_sampling_noise_at_this_size(
        self, built: Snapshot
    ) -> None:
        # The issue's ECE < 0.05 is a target for the default 40k-deal CRM. On 560
        # test deals a perfectly calibrated model already shows ~0.04 from sampling
        # alone, so what is honest is "within twice the noise floor". (The real
        # exports drift between windows: Maven's test win rate is 4 points below its
        # validation window's, which calibration cannot know.)
        ece = built.metrics["model"]["ece"]
        assert ece < 2 * calibration_noise_floor(built.calibration)

    def test_model_beats_bant_with_a_ci_above_zero(self, built: Snapshot) -> None:
        # Robust even at this size: the default run shows a gap of ~0.3 AUC.
        metrics = built.metrics
        assert metrics["model"]["roc_auc"] > metrics["bant"]["roc_auc"]
        assert metrics["delta_roc_auc_ci95"][0] > 0
        assert metrics["capacity"]["model_wins"] > metrics["capacity"]["bant_wins"]


# --- X Education: a user's export --------------------------------------------------


class TestXEducation(LearningRateChecks, Checks):
    """examples/x_education/params.yaml in place of params.yaml, as the README says:
    the issue's done-when, then the export's path and a setting changed."""

    SOURCE = "x_education"

    @pytest.fixture(scope="class")
    @classmethod
    def shorter_export(
        cls, built: Snapshot, tmp_path_factory: pytest.TempPathFactory
    ) -> Path:
        """The same export cut to its first leads, in a folder of its own."""
        original = built.repo.root / built.params["source"]["tables"]["deals"]["path"]
        lines = original.read_text().splitlines(keepends=True)
        assert len(lines) > SHORTER_EXPORT_LEADS + 1  # header + leads, one per line
        path = tmp_path_factory.mktemp("exports") / "Leads.csv"
        path.write_text("".join(lines[: SHORTER_EXPORT_LEADS + 1]))
        return path

    @pytest.fixture(scope="class")
    @classmethod
    def new_path(
        cls, built: Snapshot, rerun: tuple[Snapshot, Any], shorter_export: Path
    ) -> tuple[Snapshot, Snapshot]:
        """The deals table pointed at another file through `dvc exp run -S`."""
        after = experiment(
            built.repo, "first run", f"source.tables.deals.path={shorter_export}"
        )
        return rerun[0], after

    @pytest.fixture(scope="class")
    @classmethod
    def learning_rate(
        cls, built: Snapshot, new_path: tuple[Snapshot, Snapshot]
    ) -> tuple[Snapshot, Snapshot]:
        """One training setting changed through `dvc exp run -S`, after new_path."""
        before = new_path[1]
        return before, experiment(built.repo, "new export", "train.learning_rate=0.1")

    def test_dvc_repro_reaches_the_done_when_auc(self, built: Snapshot) -> None:
        # Issue 12 asked for the 0.89 that `lead-ml pipeline` reached on this export,
        # measured while 1,477 copied deals (196 groups) could sit on both sides of
        # the split. Copies now stay in one split (issue 14): 0.896 with copies
        # judged on the read columns only, 0.886 with them kept together, an honest
        # figure; the bar is 0.88.
        metrics = built.metrics
        assert metrics["model"]["roc_auc"] >= 0.88
        assert metrics["delta_roc_auc_ci95"][0] > 0
        assert metrics["n_train"] + metrics["n_valid"] + metrics["n_test"] == 9240

    def test_changing_the_export_path_reruns_read_and_everything_downstream(
        self, new_path: tuple[Snapshot, Snapshot], shorter_export: Path
    ) -> None:
        before, after = new_path
        dependent = affected_by(before.stages, "source.tables.deals.path")
        assert dependent == set(before.stages)  # every stage reads the deals
        assert "read@deals" in dependent and GENERATE not in dependent
        assert ran(after.output) == dependent
        deps = after.lock["read@deals"]["deps"]
        assert str(shorter_export) in [dep["path"] for dep in deps]
        metrics = after.metrics
        total = metrics["n_train"] + metrics["n_valid"] + metrics["n_test"]
        assert total == SHORTER_EXPORT_LEADS
        assert after.md5(BOOSTER) != before.md5(BOOSTER)
        assert after.versions == before.versions | {max(before.versions) + 1}
        assert not (after.repo.root / "data/raw").exists()

    def test_compare_and_promote_work_on_the_export(
        self, built: Snapshot, learning_rate: tuple[Snapshot, Snapshot]
    ) -> None:
        # The first version against the learning-rate experiment, named as DVC
        # names it, on the export's newest test window; then the promotion gate.
        repo, after = built.repo, learning_rate[1]
        name = experiment_name(after.output)
        output = repo.lead_ml("compare", "v1", name, "--out-dir", "reports/compare")
        table = (repo.root / "reports/compare/compare.md").read_text()
        assert "v1" in table and f"v{after.export['registered_version']}" in table
        assert "BANT" in table and "ROC AUC" in table
        assert "Traceback" not in output
        promoted = repo.lead_ml("promote", "v1")
        assert "promoted" in promoted
        client = Store(repo.tracking_uri).client()
        model = built.params["tracking"]["registered_model"]
        alias = built.params["tracking"]["champion_alias"]
        assert int(client.get_model_version_by_alias(model, alias).version) == 1


# --- Maven CRM: an export with an accounts table ------------------------------------


class TestMaven(Checks):
    """examples/maven_crm/params.yaml in place of params.yaml: deals joined to
    accounts, open deals among them."""

    SOURCE = "maven"
