"""MLflow logging: a run per training: params, metrics, plots, model, data tags.

The tracking store is ``MLFLOW_TRACKING_URI`` when it is set, else ``mlflow.db`` in
the DVC project's root, with run artifacts in ``mlruns/`` beside it
(:func:`tracking_uri`). The root is the repository a stage belongs to, also when DVC
runs the stage in a copy of it (``dvc exp run --queue`` then ``dvc queue start``,
or ``--temp``: a folder under ``.dvc/tmp/exps``), so every workspace's runs reach
the one store the user opens. Outside a project, with no URI set, nothing is
logged: :func:`project_root` refuses rather than start a store nobody sees.

Runs are found by what they trained, not by a run id kept in a file: a training run
carries the content id of the model folder (:data:`MODEL_TAG`) and, once exported,
the scorer's content version (:data:`SCORER_TAG`), which its registered version
carries too. Nothing here runs at import time.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lead_ml.vocab import ConfigError, ContractError

if TYPE_CHECKING:
    import mlflow
    from mlflow import MlflowClient

#: The default store's file and its artifact folder, in the project's root.
STORE_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlruns"
#: The default store as a relative URI, resolved against the project root.
DEFAULT_TRACKING_URI = f"sqlite:///{STORE_FILE}"
#: Tag of a training run (and its registered versions): the trained model's content.
MODEL_TAG = "lead_ml.model"
#: Tag of a training run and its registered versions: the scorer's content version.
SCORER_TAG = "lead_ml.model_version"
#: Set by DVC for every stage: the repository's root (the original repository, not
#: the temporary copy, for queued and --temp experiments).
DVC_ROOT = "DVC_ROOT"
DVC_DIR = ".dvc"


def project_root(start: Path | None = None) -> Path:
    """The DVC project a store belongs to.

    DVC_ROOT when DVC runs the stage; else the nearest folder above ``start``
    (default: the working directory) that holds ``.dvc``, or, inside a repository's
    ``.dvc`` folder (an experiment's copy under ``.dvc/tmp/exps``), that repository.
    ConfigError when there is none.

    >>> project_root(Path("/p/.dvc/tmp/exps/tmp1a2b/src")).as_posix()
    '/p'
    """
    given = os.environ.get(DVC_ROOT)
    if given:
        return Path(given).resolve()
    here = (start or Path.cwd()).absolute()
    if DVC_DIR in here.parts:
        return Path(*here.parts[: here.parts.index(DVC_DIR)])
    for folder in (here, *here.parents):
        if (folder / DVC_DIR).is_dir():
            return folder
    raise ConfigError(
        f"no MLflow tracking store: {here} is in no DVC project (no {DVC_DIR} folder "
        "above it) and MLFLOW_TRACKING_URI is not set; run lead-ml inside the "
        "project or set MLFLOW_TRACKING_URI"
    )


def tracking_uri() -> str:
    """The tracking URI in force: MLFLOW_TRACKING_URI, else mlflow.db in the
    project's root (:func:`project_root`)."""
    given = os.environ.get("MLFLOW_TRACKING_URI")
    if given:
        return given
    return f"sqlite:///{project_root() / STORE_FILE}"


def store_uri() -> str:
    """The tracking URI in force (:func:`tracking_uri`), for opening the store: the
    default store is created first when the project has none (:func:`create_store`).
    """
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        store = project_root() / STORE_FILE
        if not store.exists():
            create_store(store, (store.parent / ARTIFACTS_DIR).as_uri())
    return tracking_uri()


def create_store(path: Path, artifacts: str) -> None:
    """Create an empty MLflow store at ``path`` (SQLite, MLflow's current schema,
    run artifacts under ``artifacts``) whole or not at all.

    MLflow builds it in a hidden file beside ``path``, which is linked into place
    when complete: a process stopped midway leaves no half-migrated store, and of
    two processes creating it at once one store is kept, the other copy dropped.
    Where the file system cannot link, MLflow creates it in place, as it would.
    """
    quiet_environment()
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    partial = path.with_name(
        f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial"
    )

    def unsynced(connection: Any, _record: Any) -> None:
        # MLflow's ~70 schema migrations each wait for the disk to confirm a commit
        # (0.3 of 0.8 s on an idle disk, 5 of 6 s on a busy one). The unfinished
        # file is dropped on any failure, so it is made durable once, when whole.
        cursor = connection.cursor()
        try:
            main = cursor.execute("PRAGMA database_list").fetchone()
            if main is not None and Path(main[2]) == partial:
                cursor.execute("PRAGMA synchronous = OFF")
        finally:
            cursor.close()

    event.listen(Engine, "connect", unsynced)
    try:
        SqlAlchemyStore(f"sqlite:///{partial}", artifacts).engine.dispose()
        _fsync(partial)
        try:
            os.link(partial, path)
        except FileExistsError:
            pass  # another process made it first: keep its store, runs and all
        except OSError:
            return  # no hard links here: MLflow creates the store in place
        _fsync(path.parent)
    finally:
        event.remove(Engine, "connect", unsynced)
        partial.unlink(missing_ok=True)
        partial.with_name(f"{partial.name}-journal").unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def store_client() -> MlflowClient:
    """An MLflow client of the store in force (:func:`store_uri`)."""
    quiet_environment()
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=store_uri())


def artifact_root() -> str | None:
    """Where a new experiment keeps its run artifacts: ``mlruns/`` in the project's
    root for the default store; None (the store's own default) under
    MLFLOW_TRACKING_URI."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    return (project_root() / ARTIFACTS_DIR).as_uri()


def quiet_environment() -> None:
    """Set MLflow's environment for an offline batch tool (unless the user set it)."""
    # The store is offline: no telemetry lookups, no background job server, and no
    # progress bars for local artifact copies that take milliseconds.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _mlflow(experiment: str) -> Any:
    quiet_environment()
    import mlflow

    # Read before set_tracking_uri, which exports MLFLOW_TRACKING_URI itself.
    uri, artifacts = store_uri(), artifact_root()
    mlflow.set_tracking_uri(uri)
    _create_experiment(mlflow, experiment, artifacts)
    mlflow.set_experiment(experiment)
    return mlflow


def _create_experiment(mlflow: Any, experiment: str, artifacts: str | None) -> None:
    """Create the experiment with its artifacts in the project's root: MLflow would
    put them under the working directory, a temporary copy for queued experiments."""
    from mlflow.exceptions import MlflowException

    if mlflow.get_experiment_by_name(experiment) is not None:
        return
    try:
        mlflow.create_experiment(experiment, artifact_location=artifacts)
    except MlflowException as error:
        # Another workspace of a parallel queue created it first.
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def file_md5(path: Path) -> str:
    """MD5 of a file's bytes: the hash DVC records for a single-file output."""
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_commit(cwd: Path | None = None) -> str:
    """The current git commit (with '-dirty' for uncommitted changes), or 'unknown'."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if status else head


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {"a.b": value}, the shape MLflow params and metrics take.

    >>> flatten({"model": {"roc_auc": 0.8}, "n_test": 5})
    {'model.roc_auc': 0.8, 'n_test': 5}
    """
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numeric leaves of a metrics dict (lists [low, high] become _low/_high)."""
    out: dict[str, float] = {}
    for key, value in flatten(metrics).items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            out[key] = float(value)
        elif isinstance(value, list | tuple) and len(value) == 2:
            if all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in value
            ):
                out[f"{key}_low"], out[f"{key}_high"] = (float(v) for v in value)
    return out


@contextmanager
def training_run(
    experiment: str,
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    name: str | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Start a new MLflow run named ``name`` (see :func:`run_name`) with the
    flattened params, the given tags and the standard ones (:func:`standard_tags`),
    in an experiment marked as classic ML (:func:`mark_classic_ml`)."""
    mlflow = _mlflow(experiment)
    mark_classic_ml(experiment)
    with mlflow.start_run(run_name=name) as run:
        mlflow.log_params({k: str(v) for k, v in flatten(params).items()})
        mlflow.set_tags(
            {**standard_tags(), **tags, "lead_ml_version": version("lead-ml")}
        )
        yield run


@contextmanager
def resumed_run(experiment: str, run_id: str) -> Iterator[mlflow.ActiveRun]:
    """Re-open the run a model was trained in, to add its evaluation."""
    mlflow = _mlflow(experiment)
    with mlflow.start_run(run_id=run_id) as run:
        yield run


def log_metrics(metrics: Mapping[str, Any]) -> None:
    """Log the numeric leaves of a metrics dict to the active run, each once.

    A value the run already holds (train and evaluate both count the deals) is not
    logged again. The metrics are linked to the run's exported scorer when it has
    one, else to no model: MLflow's own ``log_metrics`` links them to every model the
    run logged at step 0 (the booster too), and logging the scorer copies the run's
    unlinked metrics onto it, so each logged model holds each metric once.
    """
    import mlflow
    from mlflow.entities import Metric

    active = mlflow.active_run()
    if active is None:
        raise RuntimeError("log_metrics needs an active MLflow run")
    client = mlflow.MlflowClient()
    run = client.get_run(active.info.run_id)
    held = run.data.metrics
    model_id = _scorer_model_id(client, run)
    stamp = int(time.time() * 1000)
    new = [
        Metric(key, value, stamp, 0, model_id=model_id, run_id=run.info.run_id)
        for key, value in numeric_metrics(metrics).items()
        if not _same_value(held.get(key), value)
    ]
    if new:
        client.log_batch(run.info.run_id, metrics=new)


def _same_value(held: float | None, value: float) -> bool:
    if held is None:
        return False
    return held == value or (math.isnan(held) and math.isnan(value))


def _scorer_model_id(client: Any, run: Any) -> str | None:
    """The logged model id of the run's exported scorer (the newest, when it was
    exported again), None before export."""
    for output in reversed(run.outputs.model_outputs if run.outputs else []):
        if client.get_logged_model(output.model_id).name == SCORER_MODEL:
            return str(output.model_id)
    return None


def log_artifacts(paths: list[Path], artifact_path: str | None = None) -> None:
    """Log files or folders to the active run."""
    import mlflow

    for path in paths:
        if path.is_dir():
            mlflow.log_artifacts(str(path), artifact_path=artifact_path)
        else:
            mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_booster(booster: Any, input_example: Any, name: str = "booster") -> None:
    """Log a LightGBM booster with the signature of its feature matrix.

    MLflow records categorical columns as strings, which LightGBM then refuses, so this
    flavor carries no input example and is for inspection: batch jobs score through the
    exported lead-ml scorer, which takes raw deal rows.
    """
    import mlflow
    from mlflow.models import infer_signature

    margin = booster.predict(input_example, raw_score=True)
    mlflow.lightgbm.log_model(
        booster,
        name=name,
        signature=infer_signature(input_example, margin),
        # Explicit requirements skip MLflow's slow requirement inference.
        pip_requirements=[
            f"lightgbm=={version('lightgbm')}",
            f"pandas=={version('pandas')}",
        ],
    )


def log_scorer(arguments: Mapping[str, Any], registered_model: str) -> dict[str, Any]:
    """Log the pyfunc scorer to the active run and register it as a new version."""
    import mlflow

    info = mlflow.pyfunc.log_model(
        name=SCORER_MODEL, registered_model_name=registered_model, **arguments
    )
    return {
        "registered_model": registered_model,
        "registered_version": int(info.registered_model_version),
        "model_uri": info.model_uri,
    }


def content_id(prefix: str, files: list[Path]) -> str:
    """``prefix:`` and the sha256 of the files' names and bytes, in the given order:
    the same files give the same id in every folder and on every run."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"{prefix}:{digest.hexdigest()}"


def find_run(experiment: str, tag: str, value: str) -> str:
    """Id of the newest run of the experiment whose tag holds value; ContractError
    naming the store when no run does.

    Runs are found by content (the model they trained) rather than by a run id in
    a DVC output, so those outputs are the same in every workspace and store.
    """
    found = search_run(experiment, tag, value)
    if found is None:
        raise ContractError(
            f"no MLflow run in {tracking_uri()} (experiment {experiment!r}) has "
            f"{tag} = {value}: the model was trained against another store; run "
            "`lead-ml track` to record it in this one from the outputs (or `dvc "
            "repro --force train` to train it into this one), or set "
            "MLFLOW_TRACKING_URI to the store that holds it"
        )
    return found


def search_run(experiment: str, tag: str, value: str) -> str | None:
    """Id of the newest run of the experiment whose tag holds value, None when no
    run does."""
    mlflow = _mlflow(experiment)
    runs = mlflow.search_runs(
        experiment_names=[experiment],
        filter_string=f"tags.`{tag}` = '{value}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    return str(runs[0].info.run_id) if runs else None


def tag_run(run_id: str, tags: dict[str, str]) -> None:
    """Set tags on a run of the store in force (ContractError when it has no such
    run)."""
    from mlflow.exceptions import MlflowException

    client = store_client()
    try:
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
    except MlflowException:
        raise ContractError(
            f"no MLflow run {run_id} in {tracking_uri()}: the model was trained "
            "against another store; run `dvc repro --force train`"
        ) from None


def tag_identity(
    run_id: str, registered_model: str, registered_version: int, tags: dict[str, str]
) -> None:
    """Set the identity tags on a run and on the version registered from it."""
    client = store_client()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
        client.set_model_version_tag(
            registered_model, str(registered_version), key, value
        )


# --- what the MLflow UI shows: names, standard tags, datasets, figures, texts -------

#: The logged model of the exported scorer (the one the registry versions).
SCORER_MODEL = "scorer"
#: Experiment tag MLflow 3's UI reads to open an experiment on its runs (classic ML)
#: rather than on GenAI traces; the value it gives "custom model development".
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
CLASSIC_ML = "custom_model_development"
#: Set by DVC for every stage of `dvc exp run` (queued, --temp or in the workspace):
#: the experiment's name as `dvc exp show` lists it, and the commit it started from.
DVC_EXP_NAME = "DVC_EXP_NAME"
DVC_EXP_BASELINE_REV = "DVC_EXP_BASELINE_REV"
#: The longest run name made from changed params (MLflow keeps 250 characters).
MAX_RUN_NAME = 80
#: The plot data evaluate writes (CSV, one per approach where two are compared) and
#: the figure of each: file stems, x and y columns, title, axis labels.
FIGURES: dict[str, tuple[tuple[str, ...], str, str, str, str, str]] = {
    "roc": (("roc_model", "roc_bant"), "fpr", "tpr", "ROC curve",
            "false positive rate", "true positive rate"),
    "pr": (("pr_model", "pr_bant"), "recall", "precision", "Precision-recall",
           "recall", "precision"),
    "calibration": (("calibration",), "mean_predicted", "observed_rate",
                    "Calibration", "mean predicted probability", "observed win rate"),
    "gains": (("gains_model", "gains_bant"), "share_of_leads", "share_of_wins",
              "Cumulative gains", "share of leads, best first", "share of wins"),
}  # fmt: skip
#: Figures with a diagonal drawn for reference, and what it stands for.
DIAGONAL = {"roc": "chance", "calibration": "perfectly calibrated", "gains": "chance"}


def dvc_experiment() -> str | None:
    """The DVC experiment a stage runs for (DVC_EXP_NAME), None outside one."""
    return os.environ.get(DVC_EXP_NAME) or None


def changed_params(
    current: Mapping[str, Any], baseline: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The flattened params whose values differ from the baseline's, sorted by key
    (none without a baseline).

    >>> changed_params({"train": {"lr": 0.05, "leaves": 31}, "seed": 1},
    ...                {"train": {"lr": 0.1, "leaves": 31}, "seed": 1})
    {'train.lr': 0.05}
    """
    if baseline is None:
        return {}
    before = flatten(baseline)
    return {
        key: value
        for key, value in sorted(flatten(current).items())
        if key not in before or before[key] != value
    }


def run_name(
    source: str, changed: Mapping[str, Any], experiment: str | None = None
) -> str:
    """The MLflow run name: the DVC experiment's name inside one, else the source's
    name and the params that changed against the baseline (the last commit), cut
    to MAX_RUN_NAME characters. The same inputs give the same name.

    >>> run_name("synthetic CRM", {}, "more-trees")
    'more-trees'
    >>> run_name("synthetic CRM", {})
    'synthetic CRM'
    >>> run_name("synthetic CRM", {"train.learning_rate": 0.05, "seed": 7})
    'synthetic CRM: train.learning_rate=0.05 seed=7'
    """
    if experiment:
        return experiment
    if not changed:
        return source
    parts = [f"{key}={value}" for key, value in changed.items()]
    name = f"{source}: {' '.join(parts)}"
    while len(name) > MAX_RUN_NAME and len(parts) > 1:
        parts.pop()
        more = len(changed) - len(parts)
        name = f"{source}: {' '.join(parts)} (+{more} more)"
    return name if len(name) <= MAX_RUN_NAME else f"{name[: MAX_RUN_NAME - 3]}..."


def committed_text(path: Path) -> str | None:
    """A file as the last commit holds it (``git show HEAD:./path``), or None
    outside a repository or when the commit has no such file."""
    try:
        return subprocess.run(
            ["git", "show", f"HEAD:./{path.as_posix()}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def standard_tags(command: str = "lead-ml train") -> dict[str, str]:
    """MLflow's own tags for where a run came from: the source (the command) and,
    in a git repository, the commit and whether the work tree had changes; in a
    DVC experiment, its name and baseline commit too."""
    tags = {"mlflow.source.name": command, "mlflow.source.type": "LOCAL"}
    commit = git_commit()
    if commit != "unknown":
        tags["mlflow.source.git.commit"] = commit.removesuffix("-dirty")
        tags["mlflow.source.git.dirty"] = str(commit.endswith("-dirty")).lower()
    experiment = dvc_experiment()
    if experiment:
        tags["dvc.experiment"] = experiment
        tags["dvc.baseline_rev"] = os.environ.get(DVC_EXP_BASELINE_REV, "")
    return tags


def mark_classic_ml(experiment: str) -> None:
    """Tag the experiment as classic ML (:data:`EXPERIMENT_KIND_TAG`) unless it
    already has a kind (a user's choice in the UI stays)."""
    import mlflow

    found = mlflow.get_experiment_by_name(experiment)
    if found is not None and EXPERIMENT_KIND_TAG not in found.tags:
        mlflow.MlflowClient().set_experiment_tag(
            found.experiment_id, EXPERIMENT_KIND_TAG, CLASSIC_ML
        )


def frame_digest(frame: Any) -> str:
    """MD5 of a frame's rows (values and column names, not its index or memory
    layout): the same data gives the same digest on every run.

    >>> import pandas as pd
    >>> rows = pd.DataFrame({"won": [1, 0]})
    >>> frame_digest(rows) == frame_digest(rows.set_axis([7, 8]))
    True
    >>> frame_digest(rows) == frame_digest(rows.iloc[::-1])
    False
    """
    import pandas as pd

    digest = hashlib.md5(json.dumps([str(c) for c in frame.columns]).encode())
    hashed = pd.util.hash_pandas_object(frame, index=False)
    digest.update(hashed.to_numpy().tobytes())
    return digest.hexdigest()


def _local_source(path: Path) -> Any:
    """A local-file dataset source for path, as MLflow resolves a path itself (its
    own resolution warns that two registered sources match a path)."""
    from mlflow.data.dataset_source_registry import get_registered_sources

    # The registry lists source classes (its annotation says instances).
    sources: list[Any] = list(get_registered_sources())
    local = next(s for s in sources if s.__name__ == "LocalArtifactDatasetSource")
    return local(path.as_posix())


def witness_rows(frame: Any) -> Any:
    """The few rows of a typed frame that show every column's schema: each
    column's first present value and its first missing one.

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"a": [1.0, None, 3.0, 4.0], "b": ["x", "y", "z", None]})
    >>> witness_rows(frame).index.tolist()
    [0, 1, 3]
    """
    import numpy as np

    missing = frame.isna().to_numpy()
    rows = {0} if len(frame) else set()
    for column in range(missing.shape[1]):
        for flag in (False, True):
            found = np.flatnonzero(missing[:, column] == flag)
            if found.size:
                rows.add(int(found[0]))
    return frame.iloc[sorted(rows)]


def dataset_schema(frame: Any) -> Any:
    """The schema MLflow infers for a typed frame, inferred from its witness rows.

    MLflow's own inference walks every value in Python: 36 s for 62,000 deals of
    the synthetic CRM (mlflow 3.17), most of the train stage at scale. The
    pipeline's frames hold one type per column, so a column's type shows in any
    present value and whether it is required in whether any value is missing.
    """
    from mlflow.models import infer_signature

    with warnings.catch_warnings():
        # MLflow's hint that integer columns cannot hold missing values, given
        # when it infers the dataset's schema: advice for model signatures, and
        # here only a description of the table.
        warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer")
        return infer_signature(witness_rows(frame)).inputs


def log_dataset(
    frame: Any, name: str, path: Path, context: str, targets: str = "won"
) -> None:
    """Log deals as a dataset input of the active run: its name, its own digest
    (:func:`frame_digest`), its schema (:func:`dataset_schema`), its size, and the
    DVC-tracked file it comes from. ``context``: training, validation or test (the
    UI's Dataset column shows it)."""
    import mlflow.data

    dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]
        frame,
        source=_local_source(path),
        name=name,
        digest=frame_digest(frame),
        targets=targets if targets in frame.columns else None,
    )
    # PandasDataset.schema is a functools.cached_property: a value in the
    # instance's __dict__ is what it returns, so MLflow never walks the values.
    vars(dataset)["schema"] = dataset_schema(frame)
    mlflow.log_input(dataset, context=context)


def plot_figures(plots_dir: Path, baseline: str = "BANT") -> dict[str, Any]:
    """Matplotlib figures of the plot data in plots_dir (see :data:`FIGURES`):
    the model and BANT on one chart where both were scored; missing files are
    skipped. ``baseline`` labels the rule's curves (the base rate when params give
    no rule: its 0 points everywhere are leads in no order)."""
    import pandas as pd
    from matplotlib.figure import Figure

    figures: dict[str, Any] = {}
    for name, (stems, x, y, title, x_label, y_label) in FIGURES.items():
        found = [s for s in stems if (plots_dir / f"{s}.csv").exists()]
        if not found:
            continue
        figure = Figure(figsize=(5, 4), layout="constrained")
        axes = figure.add_subplot()
        for stem in found:
            data = pd.read_csv(plots_dir / f"{stem}.csv")
            label = {"bant": baseline}.get(stem.rsplit("_", 1)[-1], "model")
            axes.plot(data[x], data[y], marker="o" if len(data) < 30 else None,
                      label=label)  # fmt: skip
        if name in DIAGONAL:
            axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label=DIAGONAL[name])
        axes.set(title=title, xlabel=x_label, ylabel=y_label, xlim=(0, 1), ylim=(0, 1))
        axes.legend(loc="best")
        figures[name] = figure
    return figures


def figure_files(plots_dir: Path, artifact_path: str = "figures") -> set[str]:
    """The artifact paths :func:`log_figures` logs for the plot data in plots_dir."""
    return {
        f"{artifact_path}/{name}.png"
        for name, (stems, *_) in FIGURES.items()
        if any((plots_dir / f"{stem}.csv").exists() for stem in stems)
    }


def log_figures(
    plots_dir: Path, artifact_path: str = "figures", baseline: str = "BANT"
) -> list[str]:
    """Log the ROC, precision-recall, calibration and gains figures of the plot data
    as PNG images of the active run (``baseline`` as in :func:`plot_figures`); the
    artifact paths."""
    import mlflow

    logged = []
    for name, figure in plot_figures(plots_dir, baseline).items():
        logged.append(f"{artifact_path}/{name}.png")
        mlflow.log_figure(figure, logged[-1])
    return logged


def model_description(name: str, alias: str) -> str:
    """The registered model's description: what it scores and how to use it."""
    return (
        "lead-ml scorer: for each open deal (lead) of a CRM, the calibrated "
        "probability that it is won, its band (A to D) and the reasons that raised "
        "or lowered it (MEDDIC, fit and engagement, in the source's own columns). "
        "Each version is the self-contained MLflow pyfunc one training run exported "
        f"(`lead-ml export`); batch jobs load `models:/{name}@{alias}`, which "
        "`lead-ml promote` moves. A version's description names its source, test "
        f"metrics and content version; the model's tags lead_ml.alias_move.N keep "
        f"every move of the {alias} alias."
    )


def version_description(run: Any, content_version: str) -> str:
    """A registered version's description from its training run: source, data and
    code, the test metrics headline and the scorer's content version."""
    tags, metrics = run.data.tags, run.data.metrics
    lines = [
        f"Scorer trained on {tags.get('source', '(unknown source)')} by run "
        f"{run.info.run_name!r} ({run.info.run_id}).",
        _headline(metrics),
        f"Data version (features file md5): {tags.get('data_version', '(unset)')}. "
        f"Git commit: {tags.get('git_commit', '(unset)')}.",
        f"Content version: {content_version}.",
    ]
    return "\n\n".join(lines)


def _headline(metrics: Mapping[str, float]) -> str:
    if "model.roc_auc" not in metrics:
        return "Not evaluated yet (`lead-ml evaluate` logs its test metrics)."
    text = (
        f"Test window of {int(metrics.get('n_test', 0)):,} closed deals: ROC AUC "
        f"{metrics['model.roc_auc']:.3f}"
    )
    if "bant.roc_auc" in metrics:
        text += f" vs BANT {metrics['bant.roc_auc']:.3f}"
    elif "baseline.roc_auc" in metrics:
        text += " vs the base rate (0.500: no BANT rule was given)"
    if "capacity.model_wins" in metrics and "capacity.bant_wins" in metrics:
        text += (
            f"; {int(metrics['capacity.model_wins']):,} vs "
            f"{int(metrics['capacity.bant_wins']):,} wins in the top "
            f"{int(metrics.get('capacity.k', 0)):,} leads"
        )
    elif "capacity.model_wins" in metrics and "capacity.base_rate_wins" in metrics:
        text += (
            f"; {int(metrics['capacity.model_wins']):,} wins in the top "
            f"{int(metrics.get('capacity.k', 0)):,} leads, "
            f"{metrics['capacity.base_rate_wins']:,.0f} at the base rate"
        )
    return f"{text}."


def describe_versions(run_id: str, registered_model: str, alias: str) -> list[int]:
    """Write the descriptions of every version registered from the run, and of the
    registered model when it has none (a user's own text stays); the versions."""
    client = store_client()
    run = client.get_run(run_id)
    found = client.search_model_versions(
        f"name = '{registered_model}' and run_id = '{run_id}'"
    )
    for found_version in found:
        content = found_version.tags.get(SCORER_TAG, "(unset)")
        client.update_model_version(
            registered_model,
            found_version.version,
            description=version_description(run, content),
        )
    if found and not client.get_registered_model(registered_model).description:
        client.update_registered_model(
            registered_model, description=model_description(registered_model, alias)
        )
    return sorted(int(v.version) for v in found)


# --- what a run's record lacks (`lead-ml track`) -----------------------------------


def logged_files(run_id: str, folders: tuple[str, ...] = ("",)) -> set[str]:
    """The artifact files of a run directly in each folder ("" the run's root)."""
    client = store_client()
    return {
        item.path
        for folder in folders
        for item in client.list_artifacts(run_id, folder or None)
        if not item.is_dir
    }


def missing_from_run(
    run_id: str, metrics: Mapping[str, Any], files: set[str], contexts: set[str]
) -> list[str]:
    """What a run lacks of a record: "metrics" when a numeric leaf of metrics is
    absent or holds another value, each artifact file of ``files`` not logged, and
    "<context> dataset" for each dataset context it has no input of."""
    run = store_client().get_run(run_id)
    held = run.data.metrics
    values = numeric_metrics(metrics).items()
    missing = []
    if any(not _same_value(held.get(key), value) for key, value in values):
        missing.append("metrics")
    folders = tuple(sorted({f.rpartition("/")[0] for f in files}))
    missing += sorted(files - logged_files(run_id, folders))
    logged = {
        tag.value
        for found in (run.inputs.dataset_inputs if run.inputs else [])
        for tag in found.tags
        if tag.key == "mlflow.data.context"
    }
    return missing + [f"{c} dataset" for c in sorted(contexts - logged)]


def find_version(registered_model: str, content_version: str) -> int | None:
    """The newest version of the registered model whose SCORER_TAG holds the
    scorer's content version; None when none does (or no such model exists)."""
    client = store_client()
    found = client.search_model_versions(
        f"name = '{registered_model}' and tags.`{SCORER_TAG}` = '{content_version}'"
    )
    return max((int(v.version) for v in found), default=None)
