"""LightGBM propensity model: time split, early stopping, Platt calibration.

The model's raw output is a margin (log-odds); Platt scaling fitted on the validation
window maps it to calibrated log-odds ``slope * margin + intercept``. Being affine, it
keeps tree contributions additive in calibrated log-odds.

Two ways to train, as the audit plans the evaluation
(:func:`lead_ml.audit.evaluation_plan`):

- **holdout**: fit on the train window, stop early and calibrate on the validation
  window (:func:`train_model`); the evaluation judges the test window.
- **folds** (too few deals for one test window): rolling-origin folds over dated or
  ordered deals (:func:`rolling_origin_folds`), repeated stratified folds over
  undated ones; each fold model stops early on the latest share of its own training
  deals. The exported model is then refit on every labelled deal
  (:func:`cross_validated_model`): its iteration count is the folds' median, its
  calibration a Platt fit on the out-of-fold margins.

At a few thousand training deals or fewer (``train.small_data``), leaves and
``min_child_samples`` scale with the deal count (:func:`scaled_train`), and each
fold model trains on all its training deals, its tree count chosen by folds over
them and its Platt slope never below 0 (:func:`inner_cv_model`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from lead_ml import fastshap
from lead_ml.audit import cv_folds
from lead_ml.config import BandsConfig, Params, TrainConfig
from lead_ml.features import FeatureRegistry, text_codes

# lead_ml.jit's sigmoid, not 1 / (1 + np.exp(-x)): numpy's exp differs by CPU in the
# last bit, and band thresholds (model.json) are these probabilities.
from lead_ml.jit import jit, logistic, sigmoid
from lead_ml.vocab import SPLITS, ContractError

MODEL_FILE = "booster.txt"
META_FILE = "model.json"


@dataclass(frozen=True)
class Split:
    """Closed deals cut by time: oldest train, then validation, then the latest test."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame


@dataclass(frozen=True)
class Calibration:
    """Platt scaling: calibrated log-odds = slope * margin + intercept."""

    slope: float
    intercept: float

    def log_odds(self, margin: np.ndarray) -> np.ndarray:
        """Calibrated log-odds of raw margins."""
        return self.slope * np.asarray(margin, dtype=float) + self.intercept


@dataclass(frozen=True)
class ModelInfo:
    """Everything besides the booster needed to reuse a trained model."""

    feature_names: list[str]
    categories: dict[str, list[str]]
    calibration: Calibration
    band_thresholds: dict[str, float]
    best_iteration: int
    window: dict[str, str]
    #: feature -> dimension
    dimensions: dict[str, str] = field(default_factory=dict)
    #: The features no training row lacked. LightGBM has no rule for their missing
    #: values (it would read one as 0, or as an unseen category), so a lead missing
    #: one is scored as not known: averaged over the training rows at each split.
    complete_features: list[str] = field(default_factory=list)
    #: How the model was fit and judged: "holdout" (train window; calibrated on
    #: the validation window), or the folds' name when it was refit on every
    #: labelled deal after cross-validation.
    evaluation: str = "holdout"
    #: With ``train.calibrate_on: latest``, the calibration the evaluation judges
    #: (fit on the validation window or the out-of-fold scores); ``calibration``
    #: is then the latest window's, which the scorer uses.
    judged_calibration: Calibration | None = None


@dataclass(frozen=True)
class TrainedModel:
    """A booster with its feature layout, calibration and band thresholds."""

    booster: lgb.Booster
    info: ModelInfo


def split_frames(features: pd.DataFrame) -> Split:
    """The closed deals of a features table by its ``split`` column (the audit's),
    each window in time order (created date, else order, then id)."""
    ordered = features.sort_values(
        ["created_at", "order", "deal_id"], kind="stable", na_position="last"
    )
    parts = {
        name: ordered[ordered["split"].eq(name).fillna(False).to_numpy(dtype=bool)]
        for name in SPLITS
    }
    for name, part in parts.items():
        if part["won"].nunique() < 2:
            # A user's data, not a bug: one line from every command (no traceback).
            raise ContractError(one_outcome_message(name, part))
    return Split(parts["train"], parts["valid"], parts["test"])


def one_outcome_message(name: str, part: pd.DataFrame) -> str:
    """One line: which window lacks an outcome, what it holds, and what to do.

    >>> one_outcome_message("test", pd.DataFrame({"won": [0.0, 0.0]}))[:58]
    'the test window holds 2 closed deals, all lost: not both o'
    """
    won = int(part["won"].sum())
    held = "none" if part.empty else "all won" if won == len(part) else "all lost"
    widen = {
        "valid": "raise split.valid_fraction in params.yaml, ",
        "test": "raise split.test_fraction in params.yaml, ",
    }.get(name, "")
    return (
        f"the {name} window holds {len(part):,} closed deals, {held}: not both "
        f"outcomes, so it cannot be judged; {widen}add closed deals of both "
        "outcomes to the export, or lower audit.max_auc_ci_width so that folds over "
        "every deal judge it (see reports/audit.md, sufficiency), then `dvc repro`"
    )


def category_levels(train: pd.DataFrame, names: Sequence[str]) -> dict[str, list[str]]:
    """The levels each categorical feature takes in the training window: one per
    spelling without regard to case and surrounding spaces (its most common
    spelling), sorted by that folded key."""
    levels = {}
    for name in names:
        text = train[name].dropna().astype(str).str.strip()
        counts = pd.DataFrame({"text": text, "key": text.str.lower()}).value_counts()
        ranked = counts.reset_index().sort_values(
            ["key", "count", "text"], ascending=[True, False, True], kind="stable"
        )
        levels[name] = ranked.drop_duplicates("key")["text"].tolist()
    return levels


def model_matrix(
    features: pd.DataFrame, categories: dict[str, list[str]], names: Sequence[str]
) -> pd.DataFrame:
    """Features in model order; categoricals on the training levels (unseen: NaN)."""
    matrix = features.loc[:, list(names)].copy()
    for name, levels in categories.items():
        # Codes via the levels: unseen values and gaps both become -1 (missing).
        codes = text_codes(matrix[name].astype("string"), levels, fold=True)
        matrix[name] = pd.Categorical.from_codes(codes, categories=pd.Index(levels))
    numeric = [n for n in names if n not in categories]
    matrix[numeric] = matrix[numeric].astype(float)
    return matrix


def lightgbm_params(
    cfg: TrainConfig, seed: int, registry: FeatureRegistry
) -> dict[str, Any]:
    """LightGBM parameters: the configured tree shape, deterministic and seeded."""
    return {
        "objective": "binary",
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "max_depth": cfg.max_depth,
        "min_child_samples": cfg.min_child_samples,
        "reg_lambda": cfg.reg_lambda,
        "feature_fraction": cfg.feature_fraction,
        "bagging_fraction": cfg.bagging_fraction,
        "bagging_freq": 1 if cfg.bagging_fraction < 1 else 0,
        "monotone_constraints": [spec.monotone for spec in registry.specs],
        # Smoothed category splits: usable at hundreds of levels (lead_ml.features).
        **registry.lightgbm_params(),
        "num_threads": cfg.num_threads,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }


def fit_booster(
    split: Split,
    registry: FeatureRegistry,
    cfg: TrainConfig,
    seed: int,
    rounds: int | None = None,
) -> tuple[lgb.Booster, dict[str, list[str]]]:
    """Train with early stopping on the validation window (or exactly ``rounds``
    trees, without one); return booster and levels."""
    names = registry.names
    cfg = scaled_train(cfg, len(split.train))
    categories = category_levels(split.train, registry.categorical)
    train_set = lgb.Dataset(
        model_matrix(split.train, categories, names),
        label=split.train["won"].astype(int),
    )
    if rounds is not None:
        booster = lgb.train(
            lightgbm_params(cfg, seed, registry), train_set, num_boost_round=rounds
        )
        return booster, categories
    valid_set = lgb.Dataset(
        model_matrix(split.valid, categories, names),
        label=split.valid["won"].astype(int),
        reference=train_set,
    )
    booster = lgb.train(
        lightgbm_params(cfg, seed, registry),
        train_set,
        num_boost_round=cfg.n_estimators,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)],
    )
    return booster, categories


#: Below this many training deals ``train.small_data`` scales the tree shape.
SMALL_DATA_DEALS = 4000


def scaled_train(cfg: TrainConfig, n_train: int) -> TrainConfig:
    """The tree settings for ``n_train`` training deals: as configured from
    SMALL_DATA_DEALS deals on (or with ``train.small_data`` off); below, leaves
    need at most 1 deal in 40 (at least 5 each) and trees at most n / 100 leaves
    (at least 4), so a few hundred deals grow a few small trees, not 8 noisy leaves.

    >>> small = scaled_train(TrainConfig(), 400)
    >>> small.min_child_samples, small.num_leaves, small.max_depth
    (10, 4, 2)
    >>> scaled_train(TrainConfig(), 40_000) == TrainConfig()
    True
    """
    if not cfg.small_data or n_train >= SMALL_DATA_DEALS:
        return cfg
    leaves = min(cfg.num_leaves, max(4, n_train // 100))
    depth = max(1, int(np.ceil(np.log2(leaves))))
    return cfg.model_copy(
        update={
            "min_child_samples": min(cfg.min_child_samples, max(5, n_train // 40)),
            "num_leaves": leaves,
            # LightGBM reads any max_depth <= 0 as no limit: then the leaves' depth.
            "max_depth": depth if cfg.max_depth <= 0 else min(cfg.max_depth, depth),
        }
    )


def small_data(cfg: TrainConfig, train: pd.DataFrame) -> bool:
    """Whether a fold model on these training deals is a small-data one
    (:func:`inner_cv_model`): ``train.small_data`` on, fewer than SMALL_DATA_DEALS
    deals, and at least 2 of each outcome (INNER_FOLDS or fewer folds need them)."""
    won = train["won"].to_numpy(float)
    fewer = min(int(np.sum(won == 1)), int(np.sum(won == 0)))
    return cfg.small_data and len(train) < SMALL_DATA_DEALS and fewer >= 2


#: Folds of its own training deals that choose a small-data model's tree count.
INNER_FOLDS = 5


def inner_cv_model(
    train: pd.DataFrame,
    registry: FeatureRegistry,
    cfg: TrainConfig,
    bands: BandsConfig,
    seed: int,
) -> TrainedModel:
    """A fold model on a few hundred to a few thousand deals: every training deal
    trains it and judges its tree count, none is held out.

    The tree count is chosen by INNER_FOLDS stratified folds over the training
    deals (duplicates together; mean log-loss, early stopping), not by one latest
    share of 40 to 150 deals, whose noise stopped Maven's folds at 1 to 3 trees
    and, through Platt, reversed the ranking of 6 folds in 25. The model is then
    refit on all the training deals with that count (the tree shape of
    :func:`scaled_train`); Platt scaling is fit on the inner folds' out-of-fold
    margins, its slope never below 0 (:func:`increasing_platt`), and the bands cut
    on their probabilities. This selects among the training deals only: the
    evaluation's own folds (rolling-origin over dated deals) are untouched.
    """
    names = registry.names
    cfg = scaled_train(cfg, len(train))
    categories = category_levels(train, registry.categorical)
    matrix = model_matrix(train, categories, names)
    won = train["won"].to_numpy(int)
    fewer = int(min(won.sum(), len(won) - won.sum()))
    # Stratified: every inner fold needs each outcome (rare wins: fewer folds).
    folds = cv_folds(train, train["group"], min(INNER_FOLDS, fewer), 1, seed)
    params = lightgbm_params(cfg, seed, registry) | {"metric": "binary_logloss"}
    searched = lgb.cv(
        params,
        lgb.Dataset(matrix, label=won),
        num_boost_round=cfg.n_estimators,
        folds=folds,
        callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)],
        return_cvbooster=True,
    )
    losses: list[float] = searched["valid binary_logloss-mean"]  # type: ignore[assignment]
    rounds = len(losses)  # cut at the best mean loss by early stopping
    out_of_fold = np.empty(len(train))
    cvbooster: lgb.CVBooster = searched["cvbooster"]  # type: ignore[assignment]
    boosters = cvbooster.boosters
    for booster, (_, held) in zip(boosters, folds, strict=True):
        out_of_fold[held] = booster.predict(
            matrix.iloc[held], num_iteration=rounds, raw_score=True
        )
    booster = lgb.train(params, lgb.Dataset(matrix, label=won), num_boost_round=rounds)
    calibration = increasing_platt(out_of_fold, won)
    info = ModelInfo(
        feature_names=names,
        categories=categories,
        calibration=calibration,
        band_thresholds=band_thresholds(
            sigmoid(calibration.log_odds(out_of_fold)), bands
        ),
        best_iteration=rounds,
        window=_unvalidated_window(train.iloc[closed_in_time(train)]),
        dimensions=registry.dimensions(),
        complete_features=complete_features(train, categories, names),
    )
    return TrainedModel(booster=booster, info=info)


def increasing_platt(margin: np.ndarray, won: np.ndarray) -> Calibration:
    """Platt scaling whose slope is never below 0 (:func:`fit_platt`, else the base
    rate for every margin): a few hundred out-of-fold margins ranked backwards say
    the model has no usable signal, and a negative slope would reverse its ranking.

    >>> increasing_platt(np.array([0.0, 1.0, 2.0, 3.0]), np.array([1, 1, 0, 1]))
    Calibration(slope=0.0, intercept=1.0986122886681098)
    """
    fitted = fit_platt(margin, won)
    if fitted.slope >= 0:
        return fitted
    rate = float(np.mean(won))
    return Calibration(slope=0.0, intercept=math.log(rate / (1 - rate)))


#: Newton steps of a Platt fit at most: it converges in under 10 from slope 0 on
#: every window tried; only outcomes that the margin separates perfectly (whose
#: fit lies at infinity) use them all.
PLATT_STEPS = 100


@jit()
def _logistic_loss(
    margin: np.ndarray, won: np.ndarray, slope: float, intercept: float
) -> float:
    """The negative log-likelihood of outcomes under log-odds slope * margin +
    intercept, summed in row order."""
    total = 0.0
    for i in range(margin.shape[0]):
        z = slope * margin[i] + intercept
        total += max(z, 0.0) - won[i] * z + math.log1p(math.exp(-abs(z)))
    return total


@jit()
def _platt_newton(
    margin: np.ndarray, won: np.ndarray, steps: int
) -> tuple[float, float]:
    """The (slope, intercept) of the logistic fit of outcomes on margins: Newton's
    method from (0, 0), each step halved until the likelihood does not fall."""
    slope, intercept = 0.0, 0.0
    loss = _logistic_loss(margin, won, slope, intercept)
    for _ in range(steps):
        g0 = g1 = h00 = h01 = h11 = 0.0
        for i in range(margin.shape[0]):
            p = logistic(slope * margin[i] + intercept)
            r, w = p - won[i], p * (1.0 - p)
            g0 += r * margin[i]
            g1 += r
            h00 += w * margin[i] * margin[i]
            h01 += w * margin[i]
            h11 += w
        det = h00 * h11 - h01 * h01
        if det > 1e-12 * h00 * h11:
            d0, d1 = (h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det
        elif h11 > 0.0:
            # Margins that are all alike cannot rank: the slope stays 0 and the
            # intercept alone is fitted.
            d0, d1 = 0.0, g1 / h11
        else:
            break
        # Half the Newton decrement, how far the likelihood is from its best: close
        # to it the step is taken whole (the quadratic model holds, and the loss
        # can no longer tell steps apart), and the fit ends once a step is below
        # the last bits of the parameters.
        decrement = (g0 * d0 + g1 * d1) / 2.0
        step = 1.0
        if decrement > 1e-9 * max(loss, 1.0):
            while step > 1e-12:
                tried = _logistic_loss(
                    margin, won, slope - step * d0, intercept - step * d1
                )
                if tried <= loss:
                    break
                step /= 2.0
            else:
                break
            loss = tried
        else:
            loss = _logistic_loss(margin, won, slope - d0, intercept - d1)
        slope, intercept = slope - step * d0, intercept - step * d1
        if abs(step * d0) <= 1e-15 * (1.0 + abs(slope)) and abs(step * d1) <= 1e-15 * (
            1.0 + abs(intercept)
        ):
            break
    return slope, intercept


def fit_platt(margin: np.ndarray, won: np.ndarray) -> Calibration:
    """Fit Platt scaling (unregularised logistic regression on the margin).

    >>> fitted = fit_platt(np.array([-1.0, 0.0, 1.0, 2.0]), np.array([0, 1, 0, 1]))
    >>> round(fitted.slope, 6), round(fitted.intercept, 6)
    (0.908184, -0.454092)
    """
    # Newton's method in compiled loops, not scikit-learn's lbfgs: its dot
    # products go through OpenBLAS, whose kernels (picked by CPU) add in other
    # orders, and the fit, the model and every DVC hash after it changed with the
    # machine.
    slope, intercept = _platt_newton(
        np.ascontiguousarray(margin, dtype=float),
        np.ascontiguousarray(won, dtype=float),
        PLATT_STEPS,
    )
    return Calibration(slope=float(slope), intercept=float(intercept))


def band_thresholds(probability: np.ndarray, bands: BandsConfig) -> dict[str, float]:
    """Lowest calibrated probability of bands A, B and C on the validation window."""
    shares = np.cumsum([bands.A, bands.B, bands.C])
    cuts = np.quantile(np.asarray(probability), 1 - shares)
    return {band: float(cut) for band, cut in zip("ABC", cuts, strict=True)}


def train_model(
    split: Split,
    registry: FeatureRegistry,
    cfg: TrainConfig,
    bands: BandsConfig,
    seed: int,
) -> TrainedModel:
    """Train, calibrate on the validation window and set band thresholds (with
    ``train.calibrate_on: latest`` the exported calibration is fit on the test
    window, the latest labelled deals; the validation fit is kept for judging)."""
    names = registry.names
    booster, categories = fit_booster(split, registry, cfg, seed)
    best_iteration = int(booster.best_iteration or booster.current_iteration())
    complete = complete_features(split.train, categories, names)
    ensemble = fastshap.compile_booster(booster, best_iteration)

    def window_margin(frame: pd.DataFrame) -> np.ndarray:
        # Scored as every lead is: gaps in a complete feature averaged, not read
        # as 0 as Booster.predict would.
        return fastshap.predict_margin(
            ensemble,
            model_rows(frame, categories, names),
            absent=np.isin(names, complete),
        )

    valid_margin = window_margin(split.valid)
    calibration = fit_platt(valid_margin, split.valid["won"].to_numpy(int))
    judged = None
    if cfg.calibrate_on == "latest":
        judged = calibration
        calibration = fit_platt(
            window_margin(split.test), split.test["won"].to_numpy(int)
        )
    valid_probability = sigmoid(calibration.log_odds(valid_margin))
    info = ModelInfo(
        feature_names=names,
        categories=categories,
        calibration=calibration,
        band_thresholds=band_thresholds(valid_probability, bands),
        best_iteration=best_iteration,
        window=_window(split),
        dimensions=registry.dimensions(),
        complete_features=complete,
        judged_calibration=judged,
    )
    return TrainedModel(booster=booster, info=info)


def complete_features(
    train: pd.DataFrame, categories: dict[str, list[str]], names: Sequence[str]
) -> list[str]:
    """The features no training row lacks (see ``ModelInfo.complete_features``)."""
    gaps = np.isnan(model_rows(train, categories, names)).any(axis=0)
    return [n for n, gap in zip(names, gaps, strict=True) if not gap]


def judged(model: TrainedModel) -> TrainedModel:
    """The model as the evaluation judges it: with the calibration fit before the
    window it is judged on (the same model unless ``train.calibrate_on: latest``)."""
    if model.info.judged_calibration is None:
        return model
    info = replace(model.info, calibration=model.info.judged_calibration)
    return TrainedModel(booster=model.booster, info=info)


# --- folds: too few deals for one test window -----------------------------------


def closed_in_time(features: pd.DataFrame) -> np.ndarray:
    """Positions of the closed deals in time order (created date, else order, then
    id), as :func:`split_frames` orders each window."""
    key = features.assign(_position=np.arange(len(features)))
    ordered = key.sort_values(
        ["created_at", "order", "deal_id"], kind="stable", na_position="last"
    )
    closed = ordered["won"].notna().to_numpy()
    return ordered["_position"].to_numpy()[closed]


def rolling_origin_folds(
    features: pd.DataFrame, n_folds: int, min_train: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds over the closed deals in time order: the oldest
    ``min_train`` share trains the first fold, the rest is cut into ``n_folds``
    consecutive test blocks, and each fold trains on every deal before its block.
    A duplicate group (``group``) goes where its first member falls, so a copy is
    never on both sides. Returns (train positions, test positions) into features.
    """
    positions = closed_in_time(features)
    groups = features["group"].to_numpy()[positions]
    codes = pd.factorize(groups)[0]
    first = np.full(codes.max() + 1 if len(codes) else 0, len(codes))
    np.minimum.at(first, codes, np.arange(len(codes)))
    start = first[codes]
    n = len(positions)
    cuts = np.round(
        n * (min_train + (1 - min_train) * np.arange(n_folds + 1) / n_folds)
    )
    folds = []
    for low, high in zip(cuts[:-1], cuts[1:], strict=True):
        test = positions[(start >= low) & (start < high)]
        train = positions[start < low]
        if len(test) and len(train):
            folds.append((train, test))
    return folds


def plan_folds(
    features: pd.DataFrame, plan: dict[str, Any], seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The folds of an evaluation plan (:func:`lead_ml.audit.evaluation_plan`):
    rolling-origin over dated or ordered deals, else repeated stratified folds."""
    if plan["evaluation"] == "rolling_origin":
        return rolling_origin_folds(
            features, plan["cv_splits"], plan["rolling_min_train"]
        )
    return cv_folds(
        features, features["group"], plan["cv_splits"], plan["cv_repeats"], seed
    )


@dataclass(frozen=True)
class FoldScores:
    """Out-of-fold scores: per fold, the positions it tested, their raw margins and
    calibrated probabilities, and the fold model's early-stopped iteration count."""

    tested: list[np.ndarray]
    margin: list[np.ndarray]
    probability: list[np.ndarray]
    best_iterations: list[int]


def fold_split(
    features: pd.DataFrame,
    train_rows: np.ndarray,
    test_rows: np.ndarray,
    valid_fraction: float,
    in_time: bool,
    rng: np.random.Generator,
) -> Split:
    """One fold's windows: its training deals less a validation share for early
    stopping and calibration (the latest ones when time orders them, else a seeded
    draw), and its test deals."""
    part = features.iloc[np.sort(train_rows)]
    if in_time:
        ordered = part.iloc[closed_in_time(part)]
        won = ordered["won"].to_numpy(float)
        n_valid = max(1, int(round(valid_fraction * len(ordered))))
        # A short latest stretch of one outcome (rare wins, a few hundred deals)
        # cannot stop early or calibrate: it reaches back to the latest win or
        # loss, never past half the fold's deals.
        while n_valid < len(ordered) // 2 and len(set(won[-n_valid:])) < 2:
            n_valid += 1
        train, valid = ordered.iloc[:-n_valid], ordered.iloc[-n_valid:]
    else:
        held = rng.random(len(part)) < valid_fraction
        train, valid = part[~held], part[held]
    return Split(train, valid, features.iloc[test_rows])


def fold_scores(
    features: pd.DataFrame,
    registry: FeatureRegistry,
    params: Params,
    folds: list[tuple[np.ndarray, np.ndarray]],
    in_time: bool,
) -> FoldScores:
    """Train one model per fold (as :func:`train_model`, on the fold's own windows;
    seeded per fold) and score its test deals."""
    cfg = params.train.model_copy(update={"calibrate_on": "validation"})
    out = FoldScores([], [], [], [])
    for i, (train_rows, test_rows) in enumerate(folds):
        train = features.iloc[np.sort(train_rows)]
        if small_data(cfg, train):
            model = inner_cv_model(train, registry, cfg, params.bands, params.seed)
            raw = margin(model, features.iloc[test_rows])
        else:
            rng = np.random.default_rng(params.seed + 1000 * i)
            valid = params.split.valid_fraction
            split = fold_split(features, train_rows, test_rows, valid, in_time, rng)
            model = train_model(split, registry, cfg, params.bands, params.seed)
            raw = margin(model, split.test)
        out.tested.append(np.asarray(test_rows))
        out.margin.append(raw)
        out.probability.append(probability_of_margin(model, raw))
        out.best_iterations.append(model.info.best_iteration)
    return out


def cross_validated_model(
    features: pd.DataFrame,
    registry: FeatureRegistry,
    params: Params,
    plan: dict[str, Any],
) -> tuple[TrainedModel, FoldScores]:
    """Cross-validate by the plan, then refit on every labelled deal: as many trees
    as the folds' median early-stopped count, Platt scaling fit on the out-of-fold
    margins (the latest fold's alone with ``train.calibrate_on: latest``), bands cut
    on the out-of-fold probabilities. Returns the model and the fold scores."""
    folds = plan_folds(features, plan, params.seed)
    in_time = plan["evaluation"] == "rolling_origin"
    scores = fold_scores(features, registry, params, folds, in_time)
    closed = features.iloc[closed_in_time(features)]
    rounds = max(1, int(np.median(scores.best_iterations)))
    everything = Split(closed, closed.iloc[:0], closed.iloc[:0])
    booster, categories = fit_booster(
        everything, registry, params.train, params.seed, rounds
    )
    won = features["won"].to_numpy()
    pooled = np.concatenate(scores.margin)
    pooled_won = np.concatenate([won[t] for t in scores.tested]).astype(int)
    calibration = increasing_platt(pooled, pooled_won)
    judged_calibration = None
    if params.train.calibrate_on == "latest":
        judged_calibration = calibration
        calibration = increasing_platt(
            scores.margin[-1], won[scores.tested[-1]].astype(int)
        )
    info = ModelInfo(
        feature_names=registry.names,
        categories=categories,
        calibration=calibration,
        band_thresholds=band_thresholds(
            sigmoid(calibration.log_odds(pooled)), params.bands
        ),
        best_iteration=rounds,
        window=_unvalidated_window(closed),
        dimensions=registry.dimensions(),
        complete_features=complete_features(closed, categories, registry.names),
        evaluation=plan["evaluation"],
        judged_calibration=judged_calibration,
    )
    return TrainedModel(booster=booster, info=info), scores


def _day(frame: pd.DataFrame, at: int) -> str:
    created = pd.Timestamp(frame["created_at"].iloc[at])
    # A CRM export without created dates is split by order or at random.
    return "" if pd.isna(created) else created.date().isoformat()


def _window(split: Split) -> dict[str, str]:
    return {
        "train_start": _day(split.train, 0),
        "train_end": _day(split.train, -1),
        "valid_start": _day(split.valid, 0),
        "valid_end": _day(split.valid, -1),
    }


def _unvalidated_window(closed: pd.DataFrame) -> dict[str, str]:
    """The window of a model trained on every deal given (closed, in time order),
    none held out for validation."""
    return {
        "train_start": _day(closed, 0),
        "train_end": _day(closed, -1),
        "valid_start": "",
        "valid_end": "",
    }


def model_rows(
    features: pd.DataFrame, categories: dict[str, list[str]], names: Sequence[str]
) -> np.ndarray:
    """The model matrix as LightGBM reads it, without building a frame: float64
    columns in model order, categories as codes of the training levels, NaN where
    missing or unseen (the values of :func:`model_matrix`, for prediction)."""
    rows = np.empty((len(features), len(names)))
    for position, name in enumerate(names):
        values = features[name]
        if name in categories:
            rows[:, position] = _category_codes(values, categories[name])
        else:
            rows[:, position] = values.to_numpy(dtype=float, na_value=np.nan)
    return rows


def _category_codes(values: pd.Series, levels: list[str]) -> np.ndarray:
    """Codes of values on the levels, as floats; NaN where missing or unseen."""
    codes = text_codes(values, levels, fold=True)
    return np.where(codes < 0, np.nan, codes)


def margin(model: TrainedModel, features: pd.DataFrame) -> np.ndarray:
    """Raw (uncalibrated) log-odds of the booster at its best iteration."""
    return rows_margin(model, feature_rows(model, features))


def feature_rows(model: TrainedModel, features: pd.DataFrame) -> np.ndarray:
    """The model's rows of a feature frame (:func:`model_rows` in its own order)."""
    return model_rows(features, model.info.categories, model.info.feature_names)


def rows_margin(
    model: TrainedModel, rows: np.ndarray, trees: np.ndarray | None = None
) -> np.ndarray:
    """Raw log-odds of model rows (see :func:`feature_rows`); with ``trees``, the sum
    of those trees' leaves only (:func:`lead_ml.fastshap.predict_margin`)."""
    # The same leaves as Booster.predict, added in the same order (equal to the last
    # bit), decided a block of rows at a time.
    ensemble = fastshap.compile_booster(model.booster, model.info.best_iteration)
    return fastshap.predict_margin(ensemble, rows, trees, absent_features(model))


def absent_features(model: TrainedModel) -> np.ndarray:
    """Per feature (model order), whether a missing value is scored as not known
    (averaged over the training rows): the features no training row lacked."""
    return np.isin(model.info.feature_names, model.info.complete_features)


def probability_of_margin(model: TrainedModel, raw: np.ndarray) -> np.ndarray:
    """Calibrated win probability of raw log-odds."""
    return sigmoid(model.info.calibration.log_odds(raw))


def predict_proba(model: TrainedModel, features: pd.DataFrame) -> np.ndarray:
    """Calibrated win probability of each deal."""
    return probability_of_margin(model, margin(model, features))


def save_model(model: TrainedModel, out_dir: Path) -> None:
    """Write the booster (LightGBM text format) and its info (JSON): no pickles."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.booster.save_model(
        str(out_dir / MODEL_FILE), num_iteration=model.info.best_iteration
    )
    (out_dir / META_FILE).write_text(json.dumps(asdict(model.info), indent=2) + "\n")


def load_model(model_dir: Path) -> TrainedModel:
    """Read a model written by save_model."""
    raw = json.loads((model_dir / META_FILE).read_text())
    raw["calibration"] = Calibration(**raw["calibration"])
    if raw.get("judged_calibration") is not None:
        raw["judged_calibration"] = Calibration(**raw["judged_calibration"])
    booster = lgb.Booster(model_file=str(model_dir / MODEL_FILE))
    return TrainedModel(booster=booster, info=ModelInfo(**raw))
