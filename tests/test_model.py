"""Training: the time split, determinism, calibration, monotone MEDDIC evidence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lead_ml.config import BandsConfig, SplitConfig, TrainConfig
from lead_ml.features import EVIDENCE_CODES
from lead_ml.model import (
    Split,
    TrainedModel,
    band_thresholds,
    fit_platt,
    load_model,
    margin,
    predict_proba,
    save_model,
    time_split,
    train_model,
)

TRAIN = TrainConfig(n_estimators=150, num_leaves=7, max_depth=3, min_child_samples=20)


@pytest.fixture(scope="module")
def split(small_features: pd.DataFrame) -> Split:
    return time_split(small_features, SplitConfig())


@pytest.fixture(scope="module")
def model(split: Split) -> TrainedModel:
    return train_model(split, TRAIN, BandsConfig(), seed=3)


def test_split_is_ordered_in_time_and_holds_only_closed_deals(
    small_features: pd.DataFrame, split: Split
) -> None:
    assert split.train["created_at"].max() <= split.valid["created_at"].min()
    assert split.valid["created_at"].max() <= split.test["created_at"].min()
    closed = small_features["won"].notna().sum()
    assert len(split.train) + len(split.valid) + len(split.test) == closed
    assert len(split.test) == round(0.2 * closed)
    assert set(split.test["outcome"]) == {"won", "lost"}


def test_split_refuses_too_few_deals(small_features: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="too few"):
        time_split(small_features.head(3), SplitConfig())


def test_same_seed_same_model(
    split: Split, model: TrainedModel, tmp_path: Path
) -> None:
    again = train_model(split, TRAIN, BandsConfig(), seed=3)
    save_model(model, tmp_path / "a")
    save_model(again, tmp_path / "b")
    for name in ("booster.txt", "model.json"):
        assert (tmp_path / "a" / name).read_bytes() == (
            tmp_path / "b" / name
        ).read_bytes()


def test_save_and_load_give_the_same_scores(
    split: Split, model: TrainedModel, tmp_path: Path
) -> None:
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    np.testing.assert_array_equal(
        predict_proba(model, split.test), predict_proba(loaded, split.test)
    )
    assert loaded.info == model.info


def test_model_ranks_better_than_chance(split: Split, model: TrainedModel) -> None:
    from sklearn.metrics import roc_auc_score

    assert (
        roc_auc_score(split.test["won"].astype(int), predict_proba(model, split.test))
        > 0.7
    )


def test_platt_recovers_a_known_calibration() -> None:
    rng = np.random.default_rng(0)
    raw = rng.normal(0, 2, 50_000)
    won = rng.random(raw.size) < 1 / (1 + np.exp(-(0.5 * raw - 1.0)))
    platt = fit_platt(raw, won)
    assert platt.slope == pytest.approx(0.5, abs=0.03)
    assert platt.intercept == pytest.approx(-1.0, abs=0.05)


def test_band_thresholds_cut_the_configured_shares() -> None:
    probability = np.linspace(0, 1, 1001)
    cuts = band_thresholds(probability, BandsConfig(A=0.1, B=0.2, C=0.3))
    assert cuts == pytest.approx({"A": 0.9, "B": 0.7, "C": 0.4})


@pytest.mark.parametrize(
    "column",
    [
        "meddic_metrics",
        "meddic_economic_buyer",
        "meddic_champion",
        "meddic_decision_process",
    ],
)
def test_more_meddic_evidence_never_lowers_the_score(
    split: Split, model: TrainedModel, column: str
) -> None:
    leads = split.test
    scores = [
        margin(model, leads.assign(**{column: code}))
        for code in sorted(EVIDENCE_CODES.values())
    ]
    assert (np.diff(np.vstack(scores), axis=0) >= -1e-12).all()


def test_changing_the_deal_id_does_not_change_the_score(
    split: Split, model: TrainedModel
) -> None:
    leads = split.test
    renamed = leads.assign(deal_id="X" + leads["deal_id"].astype(str))
    np.testing.assert_array_equal(margin(model, leads), margin(model, renamed))


def test_unseen_categories_score_as_missing(split: Split, model: TrainedModel) -> None:
    leads = split.test.head(50).assign(industry="space mining")
    assert np.isfinite(predict_proba(model, leads)).all()
