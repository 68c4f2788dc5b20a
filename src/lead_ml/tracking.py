"""MLflow logging: a run per training: params, metrics, plots, model, data tags.

The tracking store is ``sqlite:///mlflow.db`` in the working directory unless
``MLFLOW_TRACKING_URI`` says otherwise. Nothing here runs at import time.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import mlflow

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def tracking_uri() -> str:
    """The tracking URI in force: MLFLOW_TRACKING_URI or the local sqlite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


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

    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_experiment(experiment)
    return mlflow


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
    experiment: str, params: Mapping[str, Any], tags: Mapping[str, str]
) -> Iterator[mlflow.ActiveRun]:
    """Start a new MLflow run with the flattened params and the given tags."""
    mlflow = _mlflow(experiment)
    with mlflow.start_run() as run:
        mlflow.log_params({k: str(v) for k, v in flatten(params).items()})
        mlflow.set_tags({**tags, "lead_ml_version": version("lead-ml")})
        yield run


@contextmanager
def resumed_run(experiment: str, run_id: str) -> Iterator[mlflow.ActiveRun]:
    """Re-open the run a model was trained in, to add its evaluation."""
    mlflow = _mlflow(experiment)
    with mlflow.start_run(run_id=run_id) as run:
        yield run


def log_metrics(metrics: Mapping[str, Any]) -> None:
    """Log the numeric leaves of a metrics dict to the active run."""
    import mlflow

    mlflow.log_metrics(numeric_metrics(metrics))


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
        name="scorer", registered_model_name=registered_model, **arguments
    )
    return {
        "registered_model": registered_model,
        "registered_version": int(info.registered_model_version),
        "model_uri": info.model_uri,
    }
