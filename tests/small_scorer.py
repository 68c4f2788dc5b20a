"""A small scorer built in memory for the fast tests of the scorer, the batch job and
the explanations (``tests/test_*_units.py``): no project, no folder, no MLflow.

Its leads carry three of the synthetic source's columns (params.yaml): ``employees``
(a number, bounds min 1), ``industry`` (a category) and ``meddic_champion`` (a yes/no
answer: evidence, monotone), plus the id ``deal_id`` and ``created_at``. The
outcome follows all three, so every feature has trees. A model trains in well under
a second (LightGBM, 40 rounds at most).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lead_ml.config import BandsConfig, SourceConfig, TrainConfig, load_params
from lead_ml.features import (
    COUNT,
    LAST_TOUCH,
    TOTAL,
    FeatureRegistry,
    FeatureSpec,
    build_features,
)
from lead_ml.model import TrainedModel, split_frames, train_model
from lead_ml.scorer import BUNDLE_DIR, Scorer, bundle_spec, lead_contract, write_bundle
from lead_ml.sources import activity_log
from lead_ml.vocab import ScorerError

ROOT = Path(__file__).resolve().parents[1]
SOURCE: SourceConfig = load_params(ROOT / "params.yaml").source
REGISTRY = FeatureRegistry(
    (
        FeatureSpec("employees", "employees", "number", "fit"),
        FeatureSpec("industry", "industry", "category", "fit"),
        FeatureSpec("meddic_champion", "meddic_champion", "evidence", "champion", 1),
    )
)
QUICK = TrainConfig(learning_rate=0.3, n_estimators=40, early_stopping_rounds=5)
INDUSTRIES = {"software": 1.0, "retail": 0.0, "mining": -1.0}
CHAMPION = {"yes": 1.5, "no": -1.5, "": 0.0}
VERSION = "lead-ml-scorer:" + "0" * 64


def raw_leads(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` lead rows as an export holds them: text cells, a tenth of the
    industries and a third of the champions blank, dated one a day."""
    rng = np.random.default_rng(seed)
    industry = rng.choice(list(INDUSTRIES), n).astype(object)
    industry[rng.random(n) < 0.1] = ""
    champion = rng.choice(["yes", "no", ""], n, p=[0.35, 0.35, 0.3])
    employees = np.round(np.exp(rng.normal(4, 1, n))).astype(int) + 1
    return pd.DataFrame(
        {
            "deal_id": [f"L{seed}-{i:05d}" for i in range(n)],
            "created_at": pd.date_range("2024-01-01", periods=n, freq="D").strftime(
                "%Y-%m-%d"
            ),
            "employees": employees.astype(str),
            "industry": industry,
            "meddic_champion": champion,
        }
    )


def outcomes(raw: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """Won (1.0) or lost (0.0), following the three columns."""
    rng = np.random.default_rng(seed + 1000)
    logit = (
        0.8 * (np.log(raw["employees"].astype(float)) - 4)
        + raw["industry"].map(INDUSTRIES).fillna(0.0).to_numpy(float)
        + raw["meddic_champion"].map(CHAMPION).to_numpy(float)
    )
    return (rng.random(len(raw)) < 1 / (1 + np.exp(-logit))).astype(float)


def features_of(raw: pd.DataFrame) -> pd.DataFrame:
    """The rows' features, read by the lead contract as the scorer reads them."""
    typed, reasons = lead_contract(SOURCE, REGISTRY).read(raw)
    assert pd.isna(reasons).all(), reasons
    return build_features(REGISTRY, typed, typed["deal_id"], typed["created_at"])


def training_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """Features of ``n`` closed deals with their outcome, split 60/20/20 in time."""
    raw = raw_leads(n, seed)
    features = features_of(raw)
    position = np.arange(n)
    features["order"] = np.nan
    features["won"] = outcomes(raw, seed)
    features["split"] = np.where(
        position < 0.6 * n, "train", np.where(position < 0.8 * n, "valid", "test")
    )
    features["group"] = features["deal_id"]
    return features


def write(frame: pd.DataFrame, path: Path) -> Path:
    """``frame`` as a CSV export at ``path`` (no index column)."""
    frame.to_csv(path, index=False)
    return path


@cache
def trained(n: int = 600, seed: int = 0) -> tuple[TrainedModel, pd.DataFrame]:
    """A model of ``n`` deals, and the features of its training window."""
    split = split_frames(training_frame(n, seed))
    return train_model(split, REGISTRY, QUICK, BandsConfig(), seed), split.train


@cache
def small_scorer(n: int = 600, seed: int = 0) -> Scorer:
    """The scorer of :func:`trained`'s model, as ``load_scorer`` would give it."""
    model, window = trained(n, seed)
    spec = bundle_spec(model, REGISTRY, SOURCE, window) | {"model_version": VERSION}
    return Scorer(model, spec)


#: The activity features of :func:`activity_scorer`: calls counted, every
#: activity counted, days since the last one (the log's types: call and email).
ACTIVITY_REGISTRY = FeatureRegistry(
    (
        *REGISTRY.specs,
        FeatureSpec("n_call", "", "activity", "engagement", 0, "calls", COUNT, "call"),
        FeatureSpec(
            "n_activities", "", "activity", "engagement", 0, "activities", TOTAL
        ),
        FeatureSpec(
            "days_since_last_touch", "", "activity", "engagement", 0, "days", LAST_TOUCH
        ),
    ),
    activity_types=("call", "email"),
    uses_activities=True,
)


def raw_activities(raw: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """An activity log of the leads ``raw`` as an export holds it (deal_id,
    timestamp, activity_type, all text): up to five each, within 20 days of the
    lead's creation (the snapshot is at 14), a call or an email; a quarter of the
    leads have none."""
    rng = np.random.default_rng(seed + 2000)
    many = rng.integers(0, 6, len(raw)) * (rng.random(len(raw)) >= 0.25)
    lead = np.repeat(np.arange(len(raw)), many)
    created = pd.to_datetime(raw["created_at"]).to_numpy()[lead]
    hours = rng.integers(0, 20 * 24, len(lead)).astype("timedelta64[h]")
    return pd.DataFrame(
        {
            "deal_id": raw["deal_id"].to_numpy()[lead],
            "timestamp": pd.Series(created + hours).dt.strftime("%Y-%m-%d %H:%M:%S"),
            "activity_type": rng.choice(["call", "email"], len(lead)),
        }
    )


@cache
def activity_scorer(n: int = 600, seed: int = 0) -> Scorer:
    """A scorer whose model counts the leads' activities (:data:`ACTIVITY_REGISTRY`),
    trained on :func:`raw_leads` and :func:`raw_activities`, the outcome also
    following each lead's number of calls."""
    raw = raw_leads(n, seed)
    log = raw_activities(raw, seed)
    typed, reasons = lead_contract(SOURCE, ACTIVITY_REGISTRY).read(raw)
    assert pd.isna(reasons).all(), reasons
    activities, unusable = activity_log(log, "deal_id", "timestamp", "activity_type")
    assert pd.isna(unusable).all(), unusable
    features = build_features(
        ACTIVITY_REGISTRY, typed, typed["deal_id"], typed["created_at"], activities
    )
    calls = log[log["activity_type"] == "call"]["deal_id"].value_counts()
    logit = 0.9 * (raw["deal_id"].map(calls).fillna(0).to_numpy(float) - 1.2)
    rng = np.random.default_rng(seed + 3000)
    chance = 1 / (1 + np.exp(-logit))
    won = np.maximum(outcomes(raw, seed), rng.random(n) < chance)
    position = np.arange(n)
    features["order"] = np.nan
    features["won"] = won.astype(float)
    features["split"] = np.where(
        position < 0.6 * n, "train", np.where(position < 0.8 * n, "valid", "test")
    )
    features["group"] = features["deal_id"]
    split = split_frames(features)
    model = train_model(split, ACTIVITY_REGISTRY, QUICK, BandsConfig(), seed)
    spec = bundle_spec(model, ACTIVITY_REGISTRY, SOURCE, split.train)
    return Scorer(model, spec | {"model_version": VERSION})


#: The MLmodel file of a scorer folder as MLflow writes it (paths of its staging).
MLMODEL = {
    "flavors": {
        "python_function": {
            "artifacts": {"bundle": {"path": BUNDLE_DIR, "uri": "/elsewhere/bundle"}},
            "loader_module": "mlflow.pyfunc.loaders.code_model",
            "model_code_path": "/some/staging/pyfunc_model.py",
        }
    },
    "mlflow_version": "3.17.2",
    "model_uuid": "f" * 32,
    "utc_time_created": "2026-12-02 04:00:00.000000",
}


def unsealed(folder: Path) -> Path:
    """A scorer folder as MLflow leaves it, before :func:`seal_folder`."""
    scorer = small_scorer()
    spec = {k: v for k, v in scorer.spec.items() if k != "model_version"}
    write_bundle(scorer.model, spec, folder / BUNDLE_DIR)
    (folder / "MLmodel").write_text(yaml.safe_dump(MLMODEL))
    (folder / "pyfunc_model.py").write_text("# the models-from-code file\n")
    (folder / "requirements.txt").write_text("lead-ml\n")
    return folder


def refusal(call: Callable[..., object], *args: object, **kwargs: object) -> str:
    """The message of the ScorerError that ``call(*args, **kwargs)`` raises."""
    with pytest.raises(ScorerError) as raised:
        call(*args, **kwargs)
    return str(raised.value)
