"""The model's rules on small frames built here (no project): the time split and its
one-outcome refusal, the small-data tree shape, Platt scaling, band cuts, rolling-origin
folds, unseen categories, training, cross-validation with its refit, and the saved
model. Every expected value is worked out in the test, not read back from the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from reference import newton_logistic

from lead_ml.audit import cv_folds
from lead_ml.config import BandsConfig, Params, TrainConfig, load_params
from lead_ml.features import CATEGORY_SPLITS, FeatureRegistry, FeatureSpec
from lead_ml.model import (
    META_FILE,
    MODEL_FILE,
    Calibration,
    Split,
    TrainedModel,
    band_thresholds,
    category_levels,
    closed_in_time,
    complete_features,
    cross_validated_model,
    feature_rows,
    fit_booster,
    fit_platt,
    fold_scores,
    fold_split,
    judged,
    lightgbm_params,
    load_model,
    margin,
    model_matrix,
    model_rows,
    plan_folds,
    predict_proba,
    rolling_origin_folds,
    rows_margin,
    save_model,
    scaled_train,
    split_frames,
    train_model,
)
from lead_ml.vocab import ContractError

ROOT = Path(__file__).resolve().parents[1]
#: A quick model: a few strong rounds, early stopping after 5 without gain.
QUICK = TrainConfig(learning_rate=0.3, n_estimators=40, early_stopping_rounds=5)
REGISTRY = FeatureRegistry(
    (
        FeatureSpec("x", "X", "number", "fit", monotone=1),
        FeatureSpec("tier", "Tier", "category", "identify_pain"),
    )
)
TIER_EFFECT = {"gold": 1.5, "silver": 0.0, "tin": -1.5}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def deals(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` dated closed deals whose outcome follows x and tier (a tenth without a
    tier), split 60/20/20 in time as the audit would."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    tier = rng.choice(list(TIER_EFFECT), n).astype(object)
    tier[rng.random(n) < 0.1] = None
    effect = np.array([TIER_EFFECT.get(t, 0.0) if t else 0.0 for t in tier])
    won = (rng.random(n) < _sigmoid(1.5 * x + effect)).astype(float)
    split = np.where(
        np.arange(n) < 0.6 * n,
        "train",
        np.where(np.arange(n) < 0.8 * n, "valid", "test"),
    )
    ids = [f"D{i:04d}" for i in range(n)]
    return pd.DataFrame(
        {
            "deal_id": ids,
            "created_at": pd.date_range("2024-01-01", periods=n, freq="D"),
            "order": np.nan,
            "won": won,
            "split": split,
            "group": ids,
            "x": x,
            "tier": tier,
        }
    )


def booster_margin(model: TrainedModel, frame: pd.DataFrame) -> np.ndarray:
    """LightGBM's own raw score of rows that lack no complete feature."""
    matrix = model_matrix(frame, model.info.categories, model.info.feature_names)
    raw = model.booster.predict(
        matrix, raw_score=True, num_iteration=model.info.best_iteration
    )
    return np.asarray(raw, dtype=float)


# --- the time split ----------------------------------------------------------------


def test_each_window_holds_its_closed_deals_in_time_order() -> None:
    base = deals(60)
    # Ties on the date are broken by order, then by id; undated deals come last.
    base.loc[[3, 4, 5], "created_at"] = pd.Timestamp("2024-01-04")
    base.loc[[3, 4, 5], "order"] = [3.0, 1.0, 2.0]
    base.loc[[10, 11], "created_at"] = pd.Timestamp("2024-01-11")
    base.loc[[10, 11], "deal_id"] = ["Z", "A"]
    base.loc[[7, 8], "created_at"] = pd.NaT
    base.loc[0, "split"] = None  # an open deal: in no window
    shuffled = base.sample(frac=1, random_state=1)
    split = split_frames(shuffled)
    expected_train = [1, 2, 4, 5, 3, 6, 9, 11, 10, *range(12, 36), 7, 8]
    assert split.train.index.tolist() == expected_train
    assert split.valid.index.tolist() == list(range(36, 48))
    assert split.test.index.tolist() == list(range(48, 60))


@pytest.mark.parametrize(
    ("window", "won", "said"),
    [
        (
            "train",
            1.0,
            "the train window holds 36 closed deals, all won: not both outcomes, so "
            "it cannot be judged; add closed deals",
        ),
        (
            "valid",
            0.0,
            "the valid window holds 12 closed deals, all lost: not both outcomes, so "
            "it cannot be judged; raise split.valid_fraction in params.yaml, add",
        ),
        (
            "test",
            0.0,
            "the test window holds 12 closed deals, all lost: not both outcomes, so "
            "it cannot be judged; raise split.test_fraction in params.yaml, add",
        ),
        (
            "test",
            None,
            "the test window holds 0 closed deals, none: not both outcomes",
        ),
    ],
)
def test_a_window_of_one_outcome_is_refused_by_name(
    window: str, won: float | None, said: str
) -> None:
    features = deals(60)
    if won is None:
        features = features[features["split"] != window]
    else:
        features.loc[features["split"] == window, "won"] = won
    with pytest.raises(ContractError) as error:
        split_frames(features)
    message = str(error.value)
    assert message.startswith(said)
    assert message.endswith(
        "outcomes to the export, or lower audit.max_auc_ci_width so that folds "
        "over every deal judge it (see reports/audit.md, sufficiency), then "
        "`dvc repro`"
    )


def test_a_deal_in_no_window_is_left_out_whatever_the_text_type() -> None:
    """A split column as nullable text (missing as <NA>, not NaN): an open deal
    without a window is in none of them."""
    features = deals(60)
    split = features["split"].astype("string")
    split = split.mask(split.index.isin([0, 40, 59]))
    assert split.isna().sum() == 3 and split.dtype == "string"
    windows = split_frames(features.assign(split=split))
    assert windows.train.index.tolist() == list(range(1, 36))
    assert windows.valid.index.tolist() == [*range(36, 40), *range(41, 48)]
    assert windows.test.index.tolist() == list(range(48, 59))


def test_closed_in_time_orders_the_closed_deals_and_drops_open_ones() -> None:
    features = pd.DataFrame(
        {
            "deal_id": ["c", "b", "a", "d", "e"],
            "created_at": pd.to_datetime(
                ["2024-02-01", "NaT", "2024-01-01", "2024-01-01", "2024-01-01"]
            ),
            "order": [np.nan, np.nan, 2.0, 1.0, 2.0],
            "won": [1.0, 0.0, np.nan, 1.0, 0.0],
        }
    )
    # a (open) dropped; d (order 1) before e (order 2), then c, undated b last
    assert closed_in_time(features).tolist() == [3, 4, 0, 1]


# --- the tree shape for a few thousand deals ----------------------------------------


@pytest.mark.parametrize(
    ("settings", "n_train", "shape"),
    [
        ({}, 399, (9, 4, 2)),  # leaves at least 4, min_child_samples n // 40
        ({}, 100, (5, 4, 2)),  # min_child_samples at least 5
        ({}, 700, (17, 7, 3)),  # n // 100 leaves, depth ceil(log2 leaves)
        ({}, 3999, (40, 8, 3)),  # capped by the configured values
        ({}, 4000, (40, 8, 3)),
        ({}, 450, (11, 4, 2)),  # whole hundreds of deals: 4.5 is 4 leaves
        ({"max_depth": -1}, 700, (17, 7, 3)),  # no depth limit: the leaves' depth
        ({"max_depth": 0}, 700, (17, 7, 3)),  # LightGBM's other "no limit"
        ({"max_depth": 2}, 700, (17, 7, 2)),  # a tighter configured depth stays
        ({"num_leaves": 2, "max_depth": -1}, 3000, (40, 2, 1)),
        ({"min_child_samples": 10}, 3000, (10, 8, 3)),
        ({"small_data": False}, 300, (40, 8, 3)),
    ],
)
def test_small_data_scales_leaves_and_depth_with_the_deal_count(
    settings: dict[str, Any], n_train: int, shape: tuple[int, int, int]
) -> None:
    cfg = TrainConfig(**settings)
    scaled = scaled_train(cfg, n_train)
    assert (scaled.min_child_samples, scaled.num_leaves, scaled.max_depth) == shape
    assert isinstance(scaled.num_leaves, int)
    others = {"min_child_samples", "num_leaves", "max_depth"}
    assert scaled.model_dump(exclude=others) == cfg.model_dump(exclude=others)


def test_at_4000_deals_the_configured_shape_is_kept() -> None:
    cfg = TrainConfig(max_depth=-1)
    assert scaled_train(cfg, 4000) == cfg
    assert scaled_train(cfg, 3999).max_depth == 3


# --- calibration and bands ----------------------------------------------------------


def test_platt_is_the_logistic_fit_on_the_margins() -> None:
    rng = np.random.default_rng(3)
    raw = rng.normal(0.5, 1.5, 400)
    won = (rng.random(raw.size) < _sigmoid(0.7 * raw - 0.4)).astype(int)
    slope, intercept = newton_logistic(raw, won.astype(float))
    platt = fit_platt(raw, won)
    assert platt.slope == pytest.approx(slope, rel=1e-6)
    assert platt.intercept == pytest.approx(intercept, rel=1e-6, abs=1e-8)
    calibrated = _sigmoid(platt.log_odds(raw))
    # The score equation of the fit: the mean probability is the win rate.
    assert calibrated.mean() == pytest.approx(won.mean(), abs=1e-7)
    assert Calibration(2.0, -1.0).log_odds(np.array([0.0, 1.5])).tolist() == [
        -1.0,
        2.0,
    ]


def test_band_thresholds_are_quantiles_of_the_validation_probabilities() -> None:
    rng = np.random.default_rng(5)
    probability = np.sort(rng.random(37))
    cuts = band_thresholds(probability, BandsConfig(A=0.1, B=0.25, C=0.3))
    for band, top in (("A", 0.1), ("B", 0.35), ("C", 0.65)):
        # linear interpolation between the sorted values at (n - 1) * (1 - top)
        at = (len(probability) - 1) * (1 - top)
        low = int(np.floor(at))
        value = probability[low] + (at - low) * (
            probability[low + 1] - probability[low]
        )
        assert cuts[band] == pytest.approx(value, rel=1e-12)
    assert list(cuts) == ["A", "B", "C"]


def test_a_probability_on_a_threshold_is_in_the_band_above() -> None:
    """101 evenly spaced probabilities: each cut lands on one of them, and with the
    ``>=`` rule that value belongs to the band the cut starts (A holds 11 of 101)."""
    probability = np.linspace(0, 1, 101)
    cuts = band_thresholds(probability, BandsConfig(A=0.1, B=0.2, C=0.3))
    assert cuts == pytest.approx({"A": 0.9, "B": 0.7, "C": 0.4})
    assert int((probability >= cuts["A"] - 1e-12).sum()) == 11
    assert isinstance(cuts["A"], float)


# --- rolling-origin folds -----------------------------------------------------------


def _folds_frame() -> pd.DataFrame:
    """20 closed deals and 2 open ones, shuffled; rank 12 copies rank 3 (one group)."""
    frame = deals(22).drop(columns="split")
    frame.loc[[20, 21], "won"] = np.nan
    frame.loc[[20, 21], "created_at"] = pd.Timestamp("2023-06-01")  # oldest, open
    frame.loc[12, "group"] = frame["group"].iloc[3]
    return frame.sample(frac=1, random_state=7).reset_index(drop=True)


def _ranks(frame: pd.DataFrame, positions: np.ndarray) -> list[int]:
    return sorted(int(frame["deal_id"].iloc[p][1:]) for p in positions)


def test_rolling_origin_folds_expand_in_time_and_keep_copies_together() -> None:
    frame = _folds_frame()
    folds = rolling_origin_folds(frame, n_folds=2, min_train=0.5)
    # cuts at round(20 * [0.5, 0.75, 1]) = 10, 15, 20 closed deals; the copy at
    # rank 12 falls where its group's first member (rank 3) does: in training.
    first_train = [*range(10), 12]
    assert [(_ranks(frame, a), _ranks(frame, b)) for a, b in folds] == [
        (first_train, [10, 11, 13, 14]),
        (sorted([*first_train, 10, 11, 13, 14]), list(range(15, 20))),
    ]
    for train, test in folds:
        assert frame["created_at"].iloc[train].max() < frame["created_at"].iloc[
            test
        ].min() or set(_ranks(frame, train)) >= {12}
        assert frame["won"].iloc[np.r_[train, test]].notna().all()


def test_rolling_origin_cuts_round_and_skip_a_fold_without_training_deals() -> None:
    frame = deals(10).drop(columns="split")
    folds = rolling_origin_folds(frame, n_folds=3, min_train=0.5)
    # 10 * (0.5 + 0.5 * [0, 1/3, 2/3, 1]) = 5, 6.67, 8.33, 10: rounded 5, 7, 8, 10
    assert [(len(a), b.tolist()) for a, b in folds] == [
        (5, [5, 6]),
        (7, [7]),
        (8, [8, 9]),
    ]
    # With no training share the first block has nothing before it: left out.
    assert [b.tolist() for _, b in rolling_origin_folds(frame, 2, 0.0)] == [
        [5, 6, 7, 8, 9]
    ]
    assert rolling_origin_folds(frame.iloc[:0], 2, 0.5) == []


def test_plan_folds_follow_the_evaluation_plan() -> None:
    frame = deals(40).drop(columns="split")
    rolling = {"evaluation": "rolling_origin", "cv_splits": 2, "rolling_min_train": 0.5}
    got = plan_folds(frame, rolling, 0)
    assert [(a.tolist(), b.tolist()) for a, b in got] == [
        (list(range(20)), list(range(20, 30))),
        (list(range(30)), list(range(30, 40))),
    ]
    plan = {"evaluation": "stratified", "cv_splits": 2, "cv_repeats": 2}
    expected = cv_folds(frame, frame["group"], 2, 2, 9)
    got = plan_folds(frame, plan, 9)
    assert len(got) == 4
    for (a, b), (c, d) in zip(got, expected, strict=True):
        assert a.tolist() == c.tolist() and b.tolist() == d.tolist()


def test_a_folds_validation_share_is_its_latest_or_a_seeded_draw() -> None:
    frame = deals(40).drop(columns="split").sample(frac=1, random_state=2)
    rows = np.arange(30)
    rng = np.random.default_rng(0)
    timed = fold_split(frame, rows, np.arange(30, 40), 0.2, True, rng)
    ordered = frame.iloc[:30].sort_values("created_at")
    assert timed.valid.index.tolist() == ordered.index[-6:].tolist()
    assert timed.train.index.tolist() == ordered.index[:-6].tolist()
    assert timed.test.index.tolist() == frame.index[30:].tolist()
    drawn = fold_split(frame, rows, np.arange(30, 40), 0.2, False, rng)
    held = np.random.default_rng(0).random(30) < 0.2
    assert drawn.valid.index.tolist() == frame.index[:30][held].tolist()
    assert drawn.train.index.tolist() == frame.index[:30][~held].tolist()


# --- categories: unseen levels score as missing -------------------------------------


def test_category_levels_fold_case_and_spaces_to_the_commonest_spelling() -> None:
    train = pd.DataFrame(
        {"tier": ["Gold", "gold ", " gold", "GOLD", "tin", None, "Tin", "tin"]}
    )
    # "gold" (twice once trimmed) beats Gold and GOLD; "tin" beats "Tin"
    assert category_levels(train, ["tier"]) == {"tier": ["gold", "tin"]}
    tie = pd.DataFrame({"tier": ["b", "B", "a"]})
    assert category_levels(tie, ["tier"]) == {"tier": ["a", "B"]}  # tie: "B" < "b"


def test_category_levels_fold_as_scoring_folds_them() -> None:
    """Lower case, as the scorer's lookup folds (text_codes): "_" sorts before the
    letters, and "ß" is not "ss" (upper-casing would merge Straße into STRASSE, a
    level no scored "Straße" could then find)."""
    assert category_levels(pd.DataFrame({"c": ["aa", "a_b"]}), ["c"]) == {
        "c": ["a_b", "aa"]
    }
    city = pd.DataFrame({"city": ["Straße", "STRASSE", "strasse"]})
    assert category_levels(city, ["city"]) == {"city": ["STRASSE", "Straße"]}


def test_model_matrix_and_rows_read_unseen_and_blank_levels_as_missing() -> None:
    leads = pd.DataFrame(
        {"x": [1, 2, 3, 4], "tier": [" GOLD", "tin", "platinum", None]}
    )
    levels = {"tier": ["gold", "tin"]}
    matrix = model_matrix(leads, levels, ["tier", "x"])
    assert list(matrix.columns) == ["tier", "x"]
    assert matrix["tier"].cat.categories.tolist() == ["gold", "tin"]
    assert matrix["tier"].cat.codes.tolist() == [0, 1, -1, -1]
    assert matrix["x"].dtype == np.float64
    rows = model_rows(leads, levels, ["tier", "x"])
    np.testing.assert_array_equal(
        rows, [[0.0, 1.0], [1.0, 2.0], [np.nan, 3.0], [np.nan, 4.0]]
    )


# --- training on a small frame ------------------------------------------------------


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return deals(500)


@pytest.fixture(scope="module")
def split(frame: pd.DataFrame) -> Split:
    return split_frames(frame)


@pytest.fixture(scope="module")
def model(split: Split) -> TrainedModel:
    return train_model(split, REGISTRY, QUICK, BandsConfig(), 3)


def test_lightgbm_gets_the_configured_shape_seeded_and_deterministic() -> None:
    cfg = TrainConfig(bagging_fraction=1.0, num_threads=2)
    assert lightgbm_params(cfg, 11, REGISTRY) == {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 8,
        "max_depth": 3,
        "min_child_samples": 40,
        "reg_lambda": 1.0,
        "feature_fraction": 0.9,
        "bagging_fraction": 1.0,
        "bagging_freq": 0,
        "monotone_constraints": [1, 0],
        **CATEGORY_SPLITS,
        "num_threads": 2,
        "seed": 11,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }
    assert lightgbm_params(TrainConfig(), 0, REGISTRY)["bagging_freq"] == 1
    numbers = FeatureRegistry((FeatureSpec("x", "X", "number", "fit"),))
    assert "cat_smooth" not in lightgbm_params(TrainConfig(), 0, numbers)


def test_training_stops_early_on_validation_and_keeps_the_best_iteration(
    split: Split, model: TrainedModel
) -> None:
    booster = model.booster
    assert 1 <= model.info.best_iteration == booster.best_iteration < 40
    # LightGBM keeps the trees up to the best iteration only.
    assert booster.current_iteration() == model.info.best_iteration
    assert model.info.feature_names == ["x", "tier"]
    assert model.info.categories == {"tier": ["gold", "silver", "tin"]}
    assert model.info.dimensions == {"x": "fit", "tier": "identify_pain"}
    assert model.info.complete_features == ["x"]  # a tenth of tiers are blank
    assert model.info.evaluation == "holdout"
    assert model.info.judged_calibration is None
    assert judged(model) is model
    assert model.info.window == {
        "train_start": "2024-01-01",
        "train_end": str(split.train["created_at"].max().date()),
        "valid_start": str(split.valid["created_at"].min().date()),
        "valid_end": str(split.valid["created_at"].max().date()),
    }
    # Trees of the small-data shape: 300 training deals give at most 4 leaves.
    for tree in booster.dump_model()["tree_info"]:
        assert tree["num_leaves"] <= 4


def test_the_calibration_is_a_platt_fit_on_the_validation_margins(
    split: Split, model: TrainedModel
) -> None:
    valid = split.valid
    raw = booster_margin(model, valid)
    np.testing.assert_allclose(margin(model, valid), raw, rtol=0, atol=1e-12)
    slope, intercept = newton_logistic(raw, valid["won"].to_numpy(float))
    calibration = model.info.calibration
    assert calibration.slope == pytest.approx(slope, rel=1e-5)
    assert calibration.intercept == pytest.approx(intercept, abs=1e-5)
    assert abs(calibration.slope - 1) + abs(calibration.intercept) > 1e-2
    probability = predict_proba(model, valid)
    np.testing.assert_allclose(
        probability, _sigmoid(slope * raw + intercept), rtol=1e-5
    )
    # The logistic score equation: the mean probability is the window's win rate.
    assert probability.mean() == pytest.approx(valid["won"].mean(), abs=1e-6)
    expected = {
        band: float(np.quantile(probability, 1 - top))
        for band, top in (("A", 0.1), ("B", 0.3), ("C", 0.6))
    }
    assert model.info.band_thresholds == pytest.approx(expected, rel=1e-6)


def test_calibrating_on_the_latest_window_keeps_the_validation_fit_for_judging(
    split: Split, model: TrainedModel
) -> None:
    latest = QUICK.model_copy(update={"calibrate_on": "latest"})
    other = train_model(split, REGISTRY, latest, BandsConfig(), 3)
    test, valid = split.test, split.valid
    slope, intercept = newton_logistic(
        booster_margin(other, test), test["won"].to_numpy(float)
    )
    assert other.info.calibration.slope == pytest.approx(slope, rel=1e-5)
    assert other.info.calibration.intercept == pytest.approx(intercept, abs=1e-5)
    assert other.info.judged_calibration == model.info.calibration
    assert judged(other).info.calibration == model.info.calibration
    assert judged(other).booster is other.booster
    # bands are cut on the validation window with the exported calibration
    probability = predict_proba(other, valid)
    assert other.info.band_thresholds["A"] == pytest.approx(
        float(np.quantile(probability, 0.9)), rel=1e-6
    )


def test_an_unseen_level_scores_as_a_blank_one(
    split: Split, model: TrainedModel
) -> None:
    leads = split.test.head(30)
    unseen = leads.assign(tier="platinum")
    blank = leads.assign(tier=None)
    np.testing.assert_array_equal(margin(model, unseen), margin(model, blank))
    # LightGBM's own reading of a missing category: not some level's code.
    np.testing.assert_allclose(
        margin(model, unseen), booster_margin(model, blank), rtol=0, atol=1e-12
    )
    assert np.isnan(feature_rows(model, unseen)[:, 1]).all()
    spelled = leads.assign(tier=leads["tier"].str.upper().str.pad(8))
    np.testing.assert_array_equal(margin(model, spelled), margin(model, leads))


def _averaged(node: dict[str, Any], row: dict[str, Any]) -> float:
    """A tree's value for a row lacking x: both ways at each split on x, weighted
    by the training rows that went each way (tier read as LightGBM does)."""
    if "leaf_value" in node:
        return float(node["leaf_value"])
    left, right = node["left_child"], node["right_child"]
    if node["split_feature"] == 0:

        def count(child: dict[str, Any]) -> float:
            return float(
                child["leaf_count" if "leaf_count" in child else "internal_count"]
            )

        total = count(left) + count(right)
        return (
            count(left) * _averaged(left, row) + count(right) * _averaged(right, row)
        ) / total
    categories = {int(c) for c in str(node["threshold"]).split("||")}
    return _averaged(left if row["tier"] in categories else right, row)


def test_a_lead_lacking_a_complete_feature_is_averaged_over_its_splits(
    split: Split, model: TrainedModel
) -> None:
    leads = split.test[split.test["tier"].notna()].head(10).assign(x=np.nan)
    trees = model.booster.dump_model(num_iteration=model.info.best_iteration)
    codes = feature_rows(model, leads)[:, 1].astype(int)
    expected = [
        sum(_averaged(t["tree_structure"], {"tier": code}) for t in trees["tree_info"])
        for code in codes
    ]
    np.testing.assert_allclose(margin(model, leads), expected, rtol=1e-9)
    assert complete_features(split.train, model.info.categories, ["x", "tier"]) == ["x"]


def test_exactly_the_asked_rounds_without_early_stopping(
    split: Split, capsys: pytest.CaptureFixture[str]
) -> None:
    booster, categories = fit_booster(split, REGISTRY, QUICK, 3, rounds=7)
    assert booster.current_iteration() == 7
    capped = QUICK.model_copy(update={"n_estimators": 2, "early_stopping_rounds": 50})
    assert fit_booster(split, REGISTRY, capped, 3)[0].current_iteration() == 2
    assert capsys.readouterr().out == ""  # training logs nothing to a user's terminal
    assert categories == {"tier": ["gold", "silver", "tin"]}


def test_a_saved_model_loads_with_the_same_scores(
    split: Split,
    model: TrainedModel,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Run elsewhere: a file the model's folder does not hold cannot be found.
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    folder = tmp_path / "models" / "model"  # parents made as needed
    save_model(model, folder)
    save_model(model, folder)  # a second training run writes over the first
    assert {p.name for p in folder.iterdir()} == {MODEL_FILE, META_FILE}
    assert list((tmp_path / "elsewhere").iterdir()) == []
    # model.json is for people too: one key a line, indented by two spaces
    lines = (folder / META_FILE).read_text().splitlines()
    assert lines[0] == "{" and lines[1] == '  "feature_names": [' and lines[-1] == "}"
    loaded = load_model(folder)
    assert loaded.info == model.info
    assert loaded.booster.num_trees() == model.info.best_iteration
    np.testing.assert_array_equal(
        predict_proba(loaded, split.test), predict_proba(model, split.test)
    )
    latest = QUICK.model_copy(update={"calibrate_on": "latest"})
    other = train_model(split, REGISTRY, latest, BandsConfig(), 3)
    save_model(other, tmp_path / "latest")
    assert load_model(tmp_path / "latest").info == other.info


# --- folds, then a refit on every labelled deal -------------------------------------


def _params(**train: Any) -> Params:
    params = load_params(ROOT / "params.yaml")
    return params.model_copy(
        update={"train": QUICK.model_copy(update=train), "seed": 5}
    )


ROLLING = {"evaluation": "rolling_origin", "cv_splits": 3, "rolling_min_train": 0.5}


@pytest.fixture(scope="module")
def labelled() -> pd.DataFrame:
    """300 closed deals and 20 open ones; a level only open deals have, and one only
    the latest fold tests."""
    frame = deals(320, seed=4).drop(columns="split")
    frame.loc[300:, "won"] = np.nan
    frame.loc[300:, "tier"] = "lead"
    frame.loc[[297, 298], "tier"] = "new"
    return frame


def test_after_folds_the_model_is_refit_on_every_labelled_deal(
    labelled: pd.DataFrame,
) -> None:
    params = _params()
    model, scores = cross_validated_model(labelled, REGISTRY, params, ROLLING)
    folds = rolling_origin_folds(labelled, 3, 0.5)
    assert [t.tolist() for t in scores.tested] == [b.tolist() for _, b in folds]
    median = int(np.median(scores.best_iterations))
    assert model.info.best_iteration == max(1, median)
    assert model.booster.current_iteration() == model.info.best_iteration
    assert model.info.evaluation == "rolling_origin"
    assert model.info.dimensions == {"x": "fit", "tier": "identify_pain"}
    # every closed deal's levels, the latest ones included; open deals' not
    assert model.info.categories == {"tier": ["gold", "new", "silver", "tin"]}
    assert model.info.window == {
        "train_start": "2024-01-01",
        "train_end": str(labelled["created_at"].iloc[299].date()),
        "valid_start": "",
        "valid_end": "",
    }
    assert model.info.complete_features == ["x"]
    # Platt scaling on the pooled out-of-fold margins, bands on their probabilities
    won = labelled["won"].to_numpy()
    pooled = np.concatenate(scores.margin)
    pooled_won = np.concatenate([won[t] for t in scores.tested])
    slope, intercept = newton_logistic(pooled, pooled_won)
    assert model.info.calibration.slope == pytest.approx(slope, rel=1e-5)
    assert model.info.calibration.intercept == pytest.approx(intercept, abs=1e-5)
    assert model.info.judged_calibration is None
    cuts = np.quantile(_sigmoid(slope * pooled + intercept), [0.9, 0.7, 0.4])
    assert list(model.info.band_thresholds.values()) == pytest.approx(cuts, rel=1e-5)
    # each fold's probabilities are its own model's calibration of its margins
    for raw, probability in zip(scores.margin, scores.probability, strict=True):
        assert len(raw) == len(probability)
        fold_slope, fold_intercept = np.polyfit(
            raw, np.log(probability / (1 - probability)), 1
        )
        np.testing.assert_allclose(
            _sigmoid(fold_slope * raw + fold_intercept), probability, rtol=1e-6
        )
    # the refit booster learnt from every closed deal: equal to one trained here
    closed = labelled.iloc[:300]
    again = lgb.train(
        lightgbm_params(scaled_train(QUICK, 300), 5, REGISTRY),
        lgb.Dataset(
            model_matrix(closed, model.info.categories, ["x", "tier"]),
            label=closed["won"].astype(int),
        ),
        num_boost_round=model.info.best_iteration,
    )
    np.testing.assert_array_equal(
        booster_margin(model, closed),
        again.predict(
            model_matrix(closed, model.info.categories, ["x", "tier"]), raw_score=True
        ),
    )


def test_refit_calibrated_on_the_latest_fold_keeps_the_pooled_fit(
    labelled: pd.DataFrame,
) -> None:
    model, scores = cross_validated_model(
        labelled, REGISTRY, _params(calibrate_on="latest"), ROLLING
    )
    won = labelled["won"].to_numpy()
    slope, intercept = newton_logistic(scores.margin[-1], won[scores.tested[-1]])
    assert model.info.calibration.slope == pytest.approx(slope, rel=1e-5)
    assert model.info.calibration.intercept == pytest.approx(intercept, abs=1e-5)
    pooled = fit_platt(
        np.concatenate(scores.margin),
        np.concatenate([won[t] for t in scores.tested]).astype(int),
    )
    assert model.info.judged_calibration == pooled


def test_fold_models_are_seeded_per_fold_and_never_see_their_test_deals(
    labelled: pd.DataFrame,
) -> None:
    """A fold model as train_model makes it (``train.small_data`` off: no inner
    folds), on its training deals less a seeded validation draw."""
    params = _params(small_data=False)
    closed = labelled.iloc[:300]
    folds = cv_folds(closed, closed["group"], 2, 1, 0)
    scores = fold_scores(closed, REGISTRY, params, folds, in_time=False)
    for i, (train_rows, test_rows) in enumerate(folds):
        rng = np.random.default_rng(params.seed + 1000 * i)
        held = rng.random(len(train_rows)) < params.split.valid_fraction
        train = closed.iloc[np.sort(train_rows)]
        fold = Split(train[~held], train[held], closed.iloc[test_rows])
        cfg = params.train.model_copy(update={"calibrate_on": "validation"})
        alone = train_model(fold, REGISTRY, cfg, params.bands, params.seed)
        np.testing.assert_array_equal(scores.margin[i], margin(alone, fold.test))
        np.testing.assert_array_equal(
            scores.probability[i], predict_proba(alone, fold.test)
        )
        assert scores.best_iterations[i] == alone.info.best_iteration
        assert scores.tested[i].tolist() == test_rows.tolist()


def test_fold_models_calibrate_on_their_validation_window_whatever_the_export(
    labelled: pd.DataFrame,
) -> None:
    """``train.calibrate_on: latest`` is for the exported refit only: each fold's
    model is calibrated on its own validation window (its test deals are what it
    is judged on), in time order when the folds are (``train.small_data`` off: a
    validation window, not inner folds)."""
    latest = _params(calibrate_on="latest", small_data=False)
    closed = labelled.iloc[:300]
    folds = rolling_origin_folds(closed, 2, 0.5)
    scores = fold_scores(closed, REGISTRY, latest, folds, in_time=True)
    cfg = latest.train.model_copy(update={"calibrate_on": "validation"})
    for i, (train_rows, test_rows) in enumerate(folds):
        # the fold's latest 15% (at least one of each outcome) stop and calibrate
        ordered = closed.iloc[np.sort(train_rows)].sort_values("created_at")
        n_valid = round(latest.split.valid_fraction * len(ordered))
        fold = Split(
            ordered.iloc[:-n_valid], ordered.iloc[-n_valid:], closed.iloc[test_rows]
        )
        assert set(fold.valid["won"]) == {0.0, 1.0}
        alone = train_model(fold, REGISTRY, cfg, latest.bands, latest.seed)
        np.testing.assert_array_equal(
            scores.probability[i], predict_proba(alone, fold.test)
        )


def _dated(won: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "deal_id": [f"D{i}" for i in range(len(won))],
            "created_at": pd.date_range("2024-01-01", periods=len(won), freq="D"),
            "order": np.nan,
            "won": won,
        }
    )


def test_a_folds_validation_stretch_never_reaches_past_half_its_deals() -> None:
    """11 deals, one win (the oldest): the stretch reaches back for both outcomes
    but stops at 5 of them (11 // 2), all lost; 3 deals keep one for validation."""
    rows = np.arange(11)
    rng = np.random.default_rng(0)
    split = fold_split(_dated([1.0] + [0.0] * 10), rows, rows[:0], 0.15, True, rng)
    assert split.valid["deal_id"].tolist() == [f"D{i}" for i in range(6, 11)]
    assert len(split.train) == 6
    few = fold_split(_dated([0.0, 1.0, 0.0]), rows[:3], rows[:0], 0.15, True, rng)
    assert few.valid["deal_id"].tolist() == ["D2"]
    assert few.train["deal_id"].tolist() == ["D0", "D1"]


def test_the_trained_booster_is_seeded_as_asked(
    split: Split, model: TrainedModel
) -> None:
    """The same trees as LightGBM grows here with seed 3 (bagging draws by the seed)
    for the model's iteration count."""
    matrix = model_matrix(split.train, model.info.categories, ["x", "tier"])
    again = lgb.train(
        lightgbm_params(scaled_train(QUICK, len(split.train)), 3, REGISTRY),
        lgb.Dataset(matrix, label=split.train["won"].astype(int)),
        num_boost_round=model.info.best_iteration,
    )
    test = model_matrix(split.test, model.info.categories, ["x", "tier"])
    np.testing.assert_array_equal(
        booster_margin(model, split.test), again.predict(test, raw_score=True)
    )


def test_validation_deals_lacking_a_complete_feature_are_calibrated_as_scored(
    frame: pd.DataFrame,
) -> None:
    """Validation deals without x are scored as every lead is (averaged over x's
    splits), and Platt scaling is fit on those margins, not on LightGBM's reading
    of the gap."""
    gaps = frame.copy()
    valid = gaps.index[gaps["split"] == "valid"]
    gaps.loc[valid[::4], "x"] = np.nan
    split = split_frames(gaps)
    model = train_model(split, REGISTRY, QUICK, BandsConfig(), 3)
    assert model.info.complete_features == ["x"]
    won = split.valid["won"].to_numpy(float)
    slope, intercept = newton_logistic(margin(model, split.valid), won)
    assert model.info.calibration.slope == pytest.approx(slope, rel=1e-5)
    assert model.info.calibration.intercept == pytest.approx(intercept, abs=1e-5)
    other = newton_logistic(booster_margin(model, split.valid), won)
    assert abs(other[0] - slope) + abs(other[1] - intercept) > 1e-3


def test_training_stops_where_the_validation_log_loss_stopped_improving(
    split: Split, model: TrainedModel
) -> None:
    """The best iteration is the first of least validation log-loss, found by
    scoring 40 rounds grown here and stopping 5 rounds without a gain."""
    booster, categories = fit_booster(split, REGISTRY, QUICK, 3, rounds=40)
    matrix = model_matrix(split.valid, categories, ["x", "tier"])
    won = split.valid["won"].to_numpy(float)
    best, least = 0, np.inf
    for k in range(1, 41):
        p = np.asarray(booster.predict(matrix, num_iteration=k), dtype=float)
        loss = -np.mean(won * np.log(p) + (1 - won) * np.log(1 - p))
        if loss < least:
            best, least = k, loss
        elif k - best >= 5:
            break
    assert model.info.best_iteration == best


def test_an_undated_export_leaves_the_window_dates_blank(frame: pd.DataFrame) -> None:
    never = pd.Series(pd.NaT, index=frame.index, dtype=frame["created_at"].dtype)
    undated = frame.assign(created_at=never, order=np.arange(len(frame), 0, -1.0))
    split = split_frames(undated)
    assert split.train["order"].is_monotonic_increasing  # by order when undated
    model = train_model(split, REGISTRY, QUICK, BandsConfig(), 3)
    assert model.info.window == dict.fromkeys(
        ["train_start", "train_end", "valid_start", "valid_end"], ""
    )


def test_calibrated_log_odds_are_double_precision_whatever_the_margins() -> None:
    """float32 margins (a booster's own output can be) are widened first: in float32
    the affine map would round to 7 digits."""
    calibration = Calibration(slope=1 / 3, intercept=0.1)
    narrow = np.array([3.0, 0.1, -7.25], dtype=np.float32)
    got = calibration.log_odds(narrow)
    assert got.dtype == np.float64
    assert got.tolist() == [1 / 3 * float(m) + 0.1 for m in narrow]
    assert calibration.log_odds(np.array([1, 2])).tolist() == [1 / 3 + 0.1, 2 / 3 + 0.1]


def test_the_margin_of_some_trees_sums_those_trees_leaves_only(
    split: Split, model: TrainedModel
) -> None:
    """With ``trees``, each tree's part is LightGBM's score of that tree alone."""
    test = split.test
    matrix = model_matrix(test, model.info.categories, model.info.feature_names)
    last = model.info.best_iteration - 1
    assert last >= 1

    def alone(tree: int) -> np.ndarray:
        raw = model.booster.predict(
            matrix, raw_score=True, start_iteration=tree, num_iteration=1
        )
        return np.asarray(raw, dtype=float)

    rows = feature_rows(model, test)
    np.testing.assert_allclose(
        rows_margin(model, rows, np.array([0, last])),
        alone(0) + alone(last),
        rtol=0,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        rows_margin(model, rows, np.array([last])), alone(last), rtol=0, atol=1e-12
    )
    np.testing.assert_array_equal(rows_margin(model, rows), margin(model, test))
