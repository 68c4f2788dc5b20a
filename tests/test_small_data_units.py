"""The small-data fold model (issue 14, "Small data"), on small frames built here: at
a few hundred deals every training deal trains it (none held out for early stopping),
and its Platt scaling, fit on out-of-fold margins of all of them, never reverses the
model's ranking. Each test also runs the old behaviour (``train.small_data: false``:
a latest share held out for early stopping and calibration) to show that it fails
there."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from lead_ml.audit import cv_folds
from lead_ml.config import Params, TrainConfig, load_params
from lead_ml.features import FeatureRegistry, FeatureSpec
from lead_ml.model import (
    SMALL_DATA_DEALS,
    band_thresholds,
    cross_validated_model,
    fit_platt,
    fold_scores,
    increasing_platt,
    inner_cv_model,
    lightgbm_params,
    plan_folds,
    rolling_origin_folds,
    scaled_train,
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
    assert not small_data(cfg, frame(np.zeros(100), np.r_[0.0, np.ones(99)]))
    big = SMALL_DATA_DEALS
    assert not small_data(cfg, frame(np.zeros(big), np.arange(big) % 2))
    off = cfg.model_copy(update={"small_data": False})
    assert not small_data(off, frame(np.zeros(100), won))


def test_the_refit_after_folds_uses_the_plans_folds_and_windows_in_time() -> None:
    # A large-data fold model (small_data off): each fold holds out the latest share
    # of its training deals for early stopping, in time, as fold_scores does when
    # told the plan is rolling-origin; the folds are the plan's.
    rng = np.random.default_rng(3)
    x = rng.normal(size=N)
    features = frame(x, (rng.random(N) < 1 / (1 + np.exp(-2 * x))).astype(float))
    run = params(False)
    rolling = {"evaluation": "rolling_origin", "cv_splits": 3, "rolling_min_train": 0.5}
    folds = rolling_origin_folds(features, 3, 0.5)
    _, scores = cross_validated_model(features, REGISTRY, run, rolling)
    in_time = fold_scores(features, REGISTRY, run, folds, True)
    shuffled = fold_scores(features, REGISTRY, run, folds, False)
    for got, expected, other in zip(
        scores.probability, in_time.probability, shuffled.probability, strict=True
    ):
        np.testing.assert_array_equal(got, expected)
        assert not np.array_equal(got, other)
    # Stratified folds are drawn with the run's seed.
    stratified = {"evaluation": "cv", "cv_splits": 3, "cv_repeats": 1}
    _, drawn = cross_validated_model(features, REGISTRY, run, stratified)
    seeded = plan_folds(features, stratified, run.seed)
    assert [t.tolist() for t in drawn.tested] == [t.tolist() for _, t in seeded]


def test_a_refit_after_folds_that_stopped_at_one_tree_has_one_tree() -> None:
    # Nothing to split on: every fold model stops early at its first tree, and so
    # does the refit on every deal (at least one tree, never more than the folds'
    # median).
    rng = np.random.default_rng(4)
    features = frame(np.zeros(N), (rng.random(N) < 0.5).astype(float))
    rolling = {"evaluation": "rolling_origin", "cv_splits": 3, "rolling_min_train": 0.5}
    model, scores = cross_validated_model(features, REGISTRY, params(False), rolling)
    assert scores.best_iterations == [1, 1, 1]
    assert model.info.best_iteration == 1
    assert model.booster.current_iteration() == 1


@pytest.mark.parametrize("outcomes", ["three", "many"])
def test_the_small_data_fold_model_is_its_inner_folds_refit(outcomes: str) -> None:
    # Its tree count is where lgb.cv over stratified inner folds stops, its Platt
    # scaling is fit on those folds' out-of-fold margins, and the refit has that
    # many trees. Three losses: three inner folds, each holding one; many (x
    # decides the outcome): five, and a Platt slope above 0.
    rng = np.random.default_rng(5)
    x = rng.normal(size=N)
    if outcomes == "three":
        won = np.ones(N)
        won[[40, 200, 330]] = 0.0
    else:
        won = (rng.random(N) < 1 / (1 + np.exp(-2 * x))).astype(float)
    train = frame(x, won)
    cfg = params(True).train
    model = inner_cv_model(train, REGISTRY, cfg, params(True).bands, 7)
    n_folds = 3 if outcomes == "three" else 5
    folds = cv_folds(train, train["group"], n_folds, 1, 7)
    assert len(folds) == n_folds
    shaped = scaled_train(cfg, N)
    searched = lgb.cv(
        lightgbm_params(shaped, 7, REGISTRY) | {"metric": "binary_logloss"},
        lgb.Dataset(train[["x"]].astype(float), label=won.astype(int)),
        num_boost_round=shaped.n_estimators,
        folds=folds,
        callbacks=[lgb.early_stopping(shaped.early_stopping_rounds, verbose=False)],
        return_cvbooster=True,
    )
    losses = cast(list[float], searched["valid binary_logloss-mean"])
    cvbooster = cast(lgb.CVBooster, searched["cvbooster"])
    rounds = len(losses)
    assert model.info.best_iteration == rounds
    assert model.booster.current_iteration() == rounds
    margins = np.empty(N)
    for booster, (_, held) in zip(cvbooster.boosters, folds, strict=True):
        margins[held] = booster.predict(
            train[["x"]].iloc[held].astype(float), num_iteration=rounds, raw_score=True
        )
    expected = increasing_platt(margins, won.astype(int))
    assert (expected.slope > 0) == (outcomes == "many")
    assert model.info.calibration.slope == pytest.approx(expected.slope, rel=1e-9)
    assert model.info.calibration.intercept == pytest.approx(
        expected.intercept, rel=1e-9
    )
    # Bands cut on the out-of-fold probabilities; the rest of its info.
    probability = 1 / (1 + np.exp(-expected.log_odds(margins)))
    cuts = band_thresholds(probability, params(True).bands)
    assert model.info.band_thresholds == pytest.approx(cuts, rel=1e-9)
    assert model.info.window == {
        "train_start": "2024-01-01",
        "train_end": str(train["created_at"].iloc[-1].date()),
        "valid_start": "",
        "valid_end": "",
    }
    assert model.info.dimensions == {"x": "fit"}
    assert model.info.complete_features == ["x"]


def test_a_platt_fit_of_slope_zero_is_kept_as_fitted() -> None:
    # Margins that cannot rank: the fit's slope is exactly 0, and its own intercept
    # (the solver's) is kept, not replaced by the base rate's log-odds.
    won = np.array([1, 0, 0, 1, 1, 0, 1, 1])
    fitted = fit_platt(np.zeros(8), won)
    assert fitted.slope == 0.0
    assert increasing_platt(np.zeros(8), won) == fitted


def test_the_inner_folds_may_choose_every_configured_tree() -> None:
    # A learning rate so small that the mean loss still falls at the last round:
    # the search runs to train.n_estimators (150, above lgb.cv's own default of
    # 100 rounds), and the refit has them all.
    rng = np.random.default_rng(11)
    x = rng.normal(size=N)
    won = (rng.random(N) < 1 / (1 + np.exp(-2 * x))).astype(float)
    cfg = params(True).train.model_copy(
        update={"n_estimators": 150, "early_stopping_rounds": 20, "learning_rate": 1e-3}
    )
    model = inner_cv_model(frame(x, won), REGISTRY, cfg, params(True).bands, 7)
    assert model.info.best_iteration == model.booster.current_iteration() == 150
