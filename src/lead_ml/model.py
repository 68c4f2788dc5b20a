"""LightGBM propensity model: time split, early stopping, Platt calibration.

The model's raw output is a margin (log-odds); Platt scaling fitted on the validation
window maps it to calibrated log-odds ``slope * margin + intercept``. Being affine, it
keeps tree contributions additive in calibrated log-odds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from lead_ml import fastshap
from lead_ml.config import BandsConfig, TrainConfig
from lead_ml.features import FeatureRegistry, text_codes
from lead_ml.vocab import SPLITS

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
            raise ValueError(
                f"the {name} window has {len(part)} deals and not both outcomes; "
                "every window needs won and lost deals (see reports/audit.md, "
                "sufficiency)"
            )
    return Split(parts["train"], parts["valid"], parts["test"])


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
        "num_threads": cfg.num_threads,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }


def fit_booster(
    split: Split, registry: FeatureRegistry, cfg: TrainConfig, seed: int
) -> tuple[lgb.Booster, dict[str, list[str]]]:
    """Train with early stopping on the validation window; return booster and levels."""
    names = registry.names
    categories = category_levels(split.train, registry.categorical)
    train_set = lgb.Dataset(
        model_matrix(split.train, categories, names),
        label=split.train["won"].astype(int),
    )
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


def fit_platt(margin: np.ndarray, won: np.ndarray) -> Calibration:
    """Fit Platt scaling (unregularised logistic regression on the margin)."""
    from sklearn.linear_model import LogisticRegression

    # Converged tightly: on a window with little signal the likelihood is flat and
    # a loose tolerance stops visibly short of the fit.
    platt = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=10_000, tol=1e-10)
    platt.fit(np.asarray(margin).reshape(-1, 1), np.asarray(won, dtype=int))
    return Calibration(
        slope=float(platt.coef_[0, 0]), intercept=float(platt.intercept_[0])
    )


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
    """Train, calibrate on the validation window and set band thresholds."""
    names = registry.names
    booster, categories = fit_booster(split, registry, cfg, seed)
    best_iteration = int(booster.best_iteration or booster.current_iteration())
    train_rows = model_rows(split.train, categories, names)
    complete = [
        n
        for n, gaps in zip(names, np.isnan(train_rows).any(axis=0), strict=True)
        if not gaps
    ]
    # The validation window is scored as every lead is: its gaps in a complete
    # feature averaged, not read as 0 as Booster.predict would.
    valid_margin = fastshap.predict_margin(
        fastshap.compile_booster(booster, best_iteration),
        model_rows(split.valid, categories, names),
        absent=np.isin(names, complete),
    )
    calibration = fit_platt(valid_margin, split.valid["won"].to_numpy(int))
    valid_probability = _sigmoid(calibration.log_odds(valid_margin))
    info = ModelInfo(
        feature_names=names,
        categories=categories,
        calibration=calibration,
        band_thresholds=band_thresholds(valid_probability, bands),
        best_iteration=best_iteration,
        window=_window(split),
        dimensions=registry.dimensions(),
        complete_features=complete,
    )
    return TrainedModel(booster=booster, info=info)


def _window(split: Split) -> dict[str, str]:
    def day(frame: pd.DataFrame, at: int) -> str:
        created = pd.Timestamp(frame["created_at"].iloc[at])
        # A CRM export without created dates is split by order or at random.
        return "" if pd.isna(created) else created.date().isoformat()

    return {
        "train_start": day(split.train, 0),
        "train_end": day(split.train, -1),
        "valid_start": day(split.valid, 0),
        "valid_end": day(split.valid, -1),
    }


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


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
    return _sigmoid(model.info.calibration.log_odds(raw))


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
    booster = lgb.Booster(model_file=str(model_dir / MODEL_FILE))
    return TrainedModel(booster=booster, info=ModelInfo(**raw))
