"""The small-data fold model (issue 14, "Small data"), on small frames built here: at
a few hundred deals every training deal trains it (none held out for early stopping),
and its Platt scaling, fit on out-of-fold margins of all of them, never reverses the
model's ranking. Each test also runs the old behaviour (``train.small_data: false``:
a latest share held out for early stopping and calibration) to show that it fails
there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from lead_ml.config import Params, TrainConfig, load_params
from lead_ml.features import FeatureRegistry, FeatureSpec
from lead_ml.model import (
    SMALL_DATA_DEALS,
    cross_validated_model,
    fit_platt,
    fold_scores,
    increasing_platt,
    rolling_origin_folds,
    small_data,
)

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = FeatureRegistry((FeatureSpec("x", "X", "number", "fit"),))
N = 400


def params(small: bool) -> Params:
    """The project's defaults, with the small-data model on or off."""
    loaded = load_params(ROOT / "params.yaml")
    train = loaded.train.model_copy(update={"small_data": small})
    return loaded.model_copy(update={"train": train})


def frame(x: np.ndarray, won: np.ndarray) -> pd.DataFrame:
    """Dated closed deals in time order, each its own group."""
    ids = [f"D{i:04d}" for i in range(len(x))]
    return pd.DataFrame(
        {
            "deal_id": ids,
            "created_at": pd.date_range("2024-01-01", periods=len(x), freq="D"),
            "order": np.nan,
            "won": won.astype(float),
            "split": "train",
            "group": ids,
            "x": x,
        }
    )


def one_fold(features: pd.DataFrame, train_share: float) -> list:
    """One rolling-origin fold: the oldest ``train_share`` trains, the rest tests."""
    return rolling_origin_folds(features, 1, train_share)


def test_every_training_deal_trains_the_small_data_fold_model() -> None:
    # x is known only for the latest fifth of the training deals (and the test
    # block), where it decides the outcome: held out as the validation share, it
    # never reaches the trees.
    rng = np.random.default_rng(0)
    x = rng.normal(size=N)
    won = (x > 0).astype(float)
    x[: int(0.6 * N)] = np.nan
    features = frame(x, won)
    folds = one_fold(features, 0.75)
    test = folds[0][1]
    aucs = {}
    for small in (True, False):
        scored = fold_scores(features, REGISTRY, params(small), folds, True)
        aucs[small] = roc_auc_score(won[test], scored.probability[0])
    assert aucs[True] > 0.95
    assert aucs[False] == pytest.approx(0.5)  # the old fold model: constant


def test_calibration_on_a_backwards_latest_share_does_not_reverse_the_ranking() -> None:
    # x ranks the deals as the test block does, but the latest 15% of the training
    # deals (the old validation share) happen to run the other way: Platt fit there
    # has a negative slope and turns the model's ranking upside down.
    rng = np.random.default_rng(1)
    x = rng.normal(size=N)
    won = (rng.random(N) < 1 / (1 + np.exp(-2 * x))).astype(float)
    n_train = int(0.75 * N)
    latest = np.arange(n_train - int(0.15 * n_train), n_train)
    won[latest] = (x[latest] < 0).astype(float)
    features = frame(x, won)
    folds = one_fold(features, 0.75)
    test = folds[0][1]
    aucs = {}
    for small in (True, False):
        scored = fold_scores(features, REGISTRY, params(small), folds, True)
        aucs[small] = roc_auc_score(won[test], scored.probability[0])
    assert aucs[True] > 0.75
    assert aucs[False] < 0.5


def test_a_backwards_platt_fit_is_the_base_rate() -> None:
    margin = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
    won = np.array([1, 1, 1, 0, 1, 0])
    assert fit_platt(margin, won).slope < 0
    flat = increasing_platt(margin, won)
    # The unconstrained fit's slope is negative; the constrained one is flat at
    # the base rate, 4 of 6: log-odds log(4 / 2).
    assert flat.slope == 0.0
    assert flat.intercept == pytest.approx(np.log(2.0))
    forwards = increasing_platt(margin, 1 - won)
    assert forwards.slope > 0


def test_the_exported_model_after_folds_never_ranks_backwards() -> None:
    # No signal at all: whichever way the out-of-fold margins lean, the refit's
    # calibration keeps the ranking (slope >= 0).
    rng = np.random.default_rng(2)
    features = frame(rng.normal(size=N), (rng.random(N) < 0.5).astype(float))
    plan = {"evaluation": "rolling_origin", "cv_splits": 3, "rolling_min_train": 0.5}
    for seed in range(3):
        run = params(True).model_copy(update={"seed": seed})
        model, _ = cross_validated_model(features, REGISTRY, run, plan)
        assert model.info.calibration.slope >= 0


def test_which_fold_models_are_small_data_ones() -> None:
    cfg = TrainConfig()
    won = np.r_[np.ones(2), np.zeros(98)]
    assert small_data(cfg, frame(np.zeros(100), won))
    # One win: stratified inner folds cannot hold it on both sides.
    assert not small_data(cfg, frame(np.zeros(100), np.r_[1.0, np.zeros(99)]))
    big = SMALL_DATA_DEALS
    assert not small_data(cfg, frame(np.zeros(big), np.arange(big) % 2))
    off = cfg.model_copy(update={"small_data": False})
    assert not small_data(off, frame(np.zeros(100), won))
