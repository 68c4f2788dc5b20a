"""Training on every source: the audit's time split, determinism, calibration, category
levels, and monotone constraints wherever a direction is declared or known."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from projects import Project
from reference import newton_logistic
from sklearn.metrics import roc_auc_score

from lead_ml import fastshap
from lead_ml.config import BandsConfig, TrainConfig
from lead_ml.features import FeatureRegistry, plan_features
from lead_ml.model import (
    MODEL_FILE,
    FoldScores,
    Split,
    TrainedModel,
    absent_features,
    band_thresholds,
    category_levels,
    closed_in_time,
    cross_validated_model,
    feature_rows,
    fit_platt,
    fold_split,
    judged,
    lightgbm_params,
    load_model,
    margin,
    model_matrix,
    predict_proba,
    rolling_origin_folds,
    save_model,
    scaled_train,
    split_frames,
    train_model,
)
from lead_ml.stages import read_registry
from lead_ml.vocab import EVIDENCE_CODES, ContractError

#: Directions a user might declare for each source's columns, on top of params.yaml's
#: (the synthetic CRM declares its own, and its evidence is monotone by kind).
EXTRA_DIRECTIONS: dict[str, dict[str, int]] = {
    "synthetic": {},
    "x_education": {
        "Total Time Spent on Website": 1,
        "TotalVisits": 1,
        "Page Views Per Visit": -1,
    },
    "maven": {"revenue": 1, "employees": -1},
}
#: The test AUC each source's quick model reaches at least; Maven's fictitious
#: opportunities carry no signal (its model and BANT both rank at ~0.5).
MIN_AUC: dict[str, float | None] = {
    "synthetic": 0.75,
    "x_education": 0.85,
    "maven": None,
}


@dataclass(frozen=True)
class Trained:
    """A source's features, split, registry and a model trained on them here."""

    project: Project
    features: pd.DataFrame
    split: Split
    registry: FeatureRegistry
    model: TrainedModel


@pytest.fixture(scope="module")
def trained(project: Project) -> Trained:
    """The training stage again, in this process, with the project's params."""
    features = project.features()
    registry = read_registry(project.path("data/features/registry.json"))
    split = split_frames(features)
    params = project.params
    model = train_model(split, registry, params.train, params.bands, params.seed)
    return Trained(project, features, split, registry, model)


# --- the split ---------------------------------------------------------------------


def _time(frame: pd.DataFrame) -> pd.Series:
    """What orders deals in time: the created date, else the order column."""
    return frame["created_at"] if frame["created_at"].notna().all() else frame["order"]


def test_the_split_is_ordered_in_time_and_holds_only_closed_deals(
    trained: Trained,
) -> None:
    split, features = trained.split, trained.features
    windows = [split.train, split.valid, split.test]
    # A group of copies goes where its first member falls: the others may be later.
    single = features["group"].map(features["group"].value_counts()).eq(1)
    for earlier, later in zip(windows, windows[1:], strict=False):
        first, then = earlier[single[earlier.index]], later[single[later.index]]
        assert _time(first).max() <= _time(then).min()
    for window in windows:
        assert set(window["outcome"]) == {"won", "lost"}
        assert _time(window).is_monotonic_increasing
    closed = features["won"].notna()
    assert sum(len(w) for w in windows) == int(closed.sum())
    assert features.loc[~closed, "split"].isna().all()
    assert len(split.test) == pytest.approx(0.2 * closed.sum(), abs=2)


def test_a_window_without_both_outcomes_is_refused(trained: Trained) -> None:
    features = trained.features.copy()
    features.loc[features["split"] == "test", "won"] = 1
    with pytest.raises(ContractError, match="the test window .* not both outcomes"):
        split_frames(features)


# --- the model ---------------------------------------------------------------------


def test_same_params_same_model_as_the_training_stage(
    trained: Trained, tmp_path: Path
) -> None:
    save_model(trained.model, tmp_path)
    stage = trained.project.path("models/model")
    for name in (MODEL_FILE, "model.json"):
        assert (tmp_path / name).read_bytes() == (stage / name).read_bytes(), name


def test_save_and_load_give_the_same_scores(trained: Trained, tmp_path: Path) -> None:
    save_model(trained.model, tmp_path)
    loaded = load_model(tmp_path)
    test = trained.split.test
    np.testing.assert_array_equal(
        predict_proba(trained.model, test), predict_proba(loaded, test)
    )
    assert loaded.info == trained.model.info
    assert loaded.info.dimensions == trained.registry.dimensions()


def test_the_model_ranks_better_than_chance(trained: Trained) -> None:
    floor = MIN_AUC[trained.project.name]
    if floor is None:
        pytest.skip(f"{trained.project.name}: no signal in the data to rank by")
    test = trained.split.test
    auc = roc_auc_score(test["won"].astype(int), predict_proba(trained.model, test))
    assert auc > floor


def test_platt_recovers_a_known_calibration() -> None:
    rng = np.random.default_rng(0)
    raw = rng.normal(0, 2, 50_000)
    won = rng.random(raw.size) < 1 / (1 + np.exp(-(0.5 * raw - 1.0)))
    platt = fit_platt(raw, won)
    assert platt.slope == pytest.approx(0.5, abs=0.03)
    assert platt.intercept == pytest.approx(-1.0, abs=0.05)


def test_the_trained_calibration_is_a_platt_fit_on_the_validation_margins(
    trained: Trained,
) -> None:
    """Refit independently (Newton's method on the log-likelihood of the booster's
    own validation margins): the stored slope and intercept are that fit, not
    slope 1 and intercept 0."""
    model, valid = trained.model, trained.split.valid
    raw = model.booster.predict(
        model_matrix(valid, model.info.categories, model.info.feature_names),
        raw_score=True,
        num_iteration=model.info.best_iteration,
    )
    whole = ~(np.isnan(feature_rows(model, valid)) & absent_features(model)).any(axis=1)
    raw = np.where(whole, raw, margin(model, valid))  # gaps not known, as trained
    slope, intercept = newton_logistic(raw, valid["won"].to_numpy(float))
    calibration = model.info.calibration
    assert calibration.slope == pytest.approx(slope, rel=1e-4, abs=1e-5)
    assert calibration.intercept == pytest.approx(intercept, abs=1e-4)
    assert abs(calibration.slope - 1) + abs(calibration.intercept) > 1e-3


def test_the_mean_probability_on_validation_is_its_win_rate(trained: Trained) -> None:
    """Platt scaling matches the mean prediction to the win rate on the window it
    was fit on (the logistic score equation), within rounding, far inside the
    window's own binomial noise (the bound a loose check would use)."""
    valid = trained.split.valid
    probability = predict_proba(trained.model, valid)
    rate = valid["won"].mean()
    noise = np.sqrt(rate * (1 - rate) / len(valid))
    assert abs(probability.mean() - rate) < min(1e-4, noise / 20)


def test_band_thresholds_cut_the_configured_shares() -> None:
    probability = np.linspace(0, 1, 1001)
    cuts = band_thresholds(probability, BandsConfig(A=0.1, B=0.2, C=0.3))
    assert cuts == pytest.approx({"A": 0.9, "B": 0.7, "C": 0.4})


def test_changing_the_deal_id_does_not_change_the_score(trained: Trained) -> None:
    leads = trained.split.test
    renamed = leads.assign(deal_id="X" + leads["deal_id"].astype(str))
    np.testing.assert_array_equal(
        margin(trained.model, leads), margin(trained.model, renamed)
    )


def test_unseen_categories_score_as_missing(trained: Trained) -> None:
    names = trained.registry.categorical
    assert names
    leads = trained.split.test.head(200)
    for name in names:
        unseen = leads.assign(**{name: "space mining"})
        missing = leads.copy()
        missing[name] = pd.Series(pd.NA, index=leads.index, dtype=leads[name].dtype)
        np.testing.assert_array_equal(
            margin(trained.model, unseen), margin(trained.model, missing)
        )
        # Both are "not known" in the model's rows (NaN), never some level's code:
        # the margin above is then the missing-category score.
        position = trained.model.info.feature_names.index(name)
        for frame in (unseen, missing):
            assert np.isnan(feature_rows(trained.model, frame)[:, position]).all()


# --- category levels ---------------------------------------------------------------


def test_category_levels_are_one_per_spelling_without_case_or_spaces() -> None:
    train = pd.DataFrame(
        {"source": ["Google", "google", " Google", "Google ", "bing", None, "GOOGLE"]}
    )
    # "Google" (3 times once trimmed) is the most common spelling of its key.
    assert category_levels(train, ["source"]) == {"source": ["bing", "Google"]}
    leads = pd.DataFrame(
        {"source": pd.array(["google ", "BING", "Google", None, "yahoo"], "string")}
    )
    matrix = model_matrix(leads, {"source": ["bing", "Google"]}, ["source"])
    assert matrix["source"].astype(object).tolist()[:3] == ["Google", "bing", "Google"]
    assert matrix["source"].isna().tolist() == [False, False, False, True, True]


def test_every_models_levels_are_distinct_without_case_or_spaces(
    trained: Trained,
) -> None:
    for name, levels in trained.model.info.categories.items():
        folded = [level.strip().lower() for level in levels]
        assert len(set(folded)) == len(folded), name
        assert levels == sorted(levels, key=lambda level: level.strip().lower())


def test_google_and_google_are_one_lead_source(x_education_project: Project) -> None:
    model = load_model(x_education_project.path("models/model"))
    levels = model.info.categories["lead_source"]
    assert "Google" in levels and "google" not in levels
    features = x_education_project.features()
    spelled = features[features["lead_source"].isin(["google", "Google"])]
    assert set(spelled["lead_source"]) == {"google", "Google"}
    rows = feature_rows(model, spelled)
    column = model.info.feature_names.index("lead_source")
    assert set(rows[:, column]) == {float(levels.index("Google"))}


# --- monotone constraints ----------------------------------------------------------


def _declared(project: Project, registry: FeatureRegistry) -> FeatureRegistry:
    """The project's features planned again with EXTRA_DIRECTIONS declared."""
    params, deals = project.params, project.deals()
    directions = params.source.directions | EXTRA_DIRECTIONS[project.name]
    source = params.source.model_copy(update={"directions": directions})
    # Source columns only: activity features and date parts come with no column.
    columns = [s.column for s in registry.specs if s.column]
    features = project.features()
    train = features["split"].eq("train").fillna(False).to_numpy(bool)
    planned = plan_features(
        columns,
        {s.column: s.kind for s in registry.specs if s.column},
        source,
        params.featurize,
        deals.activities,
        features.loc[train, "deal_id"],
        has_created=bool(deals.frame["created_at"].notna().any()),
        train_created=features.loc[train, "created_at"],
    )
    assert planned.names == registry.names
    return planned


@pytest.fixture(scope="module")
def constrained(trained: Trained) -> Trained:
    """A model of the source with directions declared on some of its columns."""
    registry = _declared(trained.project, trained.registry)
    params = trained.project.params
    model = train_model(trained.split, registry, params.train, params.bands, 3)
    return Trained(trained.project, trained.features, trained.split, registry, model)


def test_the_training_stage_passes_the_registrys_directions_to_lightgbm(
    trained: Trained,
) -> None:
    expected = [spec.monotone for spec in trained.registry.specs]
    params = trained.project.params
    assert (
        lightgbm_params(params.train, 0, trained.registry)["monotone_constraints"]
        == expected
    )
    booster = trained.project.path(f"models/model/{MODEL_FILE}").read_text()
    line = next(x for x in booster.splitlines() if x.startswith("[monotone_constr"))
    assert line == f"[monotone_constraints: {','.join(map(str, expected))}]"


def _grid(spec_kind: str, values: pd.Series) -> np.ndarray:
    if spec_kind == "evidence":
        return np.array(sorted(EVIDENCE_CODES.values()))
    known = values.dropna().astype(float)
    return np.unique(np.quantile(known, np.linspace(0, 1, 11)))


def test_the_model_honours_every_declared_or_known_direction(
    constrained: Trained,
) -> None:
    """Raising a monotone feature (a declared direction, or evidence: no, unknown,
    yes) never moves the score against its direction, for any lead."""
    model, registry = constrained.model, constrained.registry
    monotone = [spec for spec in registry.specs if spec.monotone]
    assert monotone, "every source has a direction declared or known"
    ensemble = fastshap.compile_booster(model.booster, model.info.best_iteration)
    used = fastshap.trees_using(
        ensemble, [registry.names.index(spec.name) for spec in monotone]
    )
    assert len(used), "the constrained features are split on"
    leads = constrained.split.test.head(300)
    for spec in monotone:
        grid = _grid(spec.kind, constrained.split.train[spec.name])
        scores = np.vstack(
            [margin(model, leads.assign(**{spec.name: value})) for value in grid]
        )
        steps = spec.monotone * np.diff(scores, axis=0)
        assert (steps >= -1e-12).all(), spec.name


# --- folds, the refit after them, the small-data shape, the latest calibration ----


def test_rolling_origin_folds_train_only_on_deals_before_their_block(
    trained: Trained,
) -> None:
    features = trained.features
    folds = rolling_origin_folds(features, n_folds=4, min_train=0.5)
    # Each closed deal's place in time is its group's first member's (copies stay
    # together, where the first falls).
    order = closed_in_time(features)
    groups = features["group"].to_numpy()
    first: dict[object, int] = {}
    for rank, position in enumerate(order):
        first.setdefault(groups[position], rank)
    start = np.full(len(features), -1)
    start[order] = [first[groups[p]] for p in order]
    assert len(folds) == 4
    tested = np.concatenate([test for _, test in folds])
    assert len(set(tested)) == len(tested)  # every block its own deals
    half = round(len(order) / 2)
    assert len(folds[0][0]) == int((start[order] < half).sum())
    for (train, test), (later_train, _) in zip(folds, folds[1:], strict=False):
        assert set(later_train) == set(train) | set(test)  # the window expands
    for train, test in folds:
        assert start[train].max() < start[test].min()
        assert features["won"].iloc[np.r_[train, test]].notna().all()
        assert not set(groups[train]) & set(groups[test])


@pytest.fixture(scope="module")
def refit(synthetic_project: Project) -> tuple[pd.DataFrame, TrainedModel, FoldScores]:
    """800 closed deals of the synthetic project (time order kept), cross-validated
    by 3 rolling-origin folds and refit."""
    features = synthetic_project.features()
    closed = features[features["won"].notna()]
    sample = closed.iloc[np.linspace(0, len(closed) - 1, 800).astype(int)]
    params = synthetic_project.params
    registry = read_registry(synthetic_project.path("data/features/registry.json"))
    plan = {"evaluation": "rolling_origin", "cv_splits": 3, "rolling_min_train": 0.5}
    model, scores = cross_validated_model(sample, registry, params, plan)
    return sample, model, scores


def test_after_folds_the_model_is_refit_on_every_labelled_deal(
    refit: tuple[pd.DataFrame, TrainedModel, FoldScores],
) -> None:
    sample, model, scores = refit
    assert model.info.evaluation == "rolling_origin"
    # as many trees as the folds' median early-stopped count, on every deal
    assert model.info.best_iteration == int(np.median(scores.best_iterations))
    assert model.booster.num_trees() == model.info.best_iteration
    assert model.info.window["train_start"] == str(sample["created_at"].min().date())
    assert model.info.window["train_end"] == str(sample["created_at"].max().date())
    # the levels of every labelled deal: none of its own rows is unseen
    for name, levels in model.info.categories.items():
        seen = {str(v).strip().lower() for v in sample[name].dropna()}
        assert seen == {level.lower() for level in levels}, name
    # Platt scaling fit on the out-of-fold margins
    won = sample["won"].to_numpy(int)
    pooled = fit_platt(
        np.concatenate(scores.margin), np.concatenate([won[t] for t in scores.tested])
    )
    assert model.info.calibration == pooled
    assert model.info.judged_calibration is None


def test_out_of_fold_scores_come_from_models_that_never_saw_the_deal(
    refit: tuple[pd.DataFrame, TrainedModel, FoldScores],
) -> None:
    sample, model, scores = refit
    won = sample["won"].to_numpy(int)
    for tested, probability in zip(scores.tested, scores.probability, strict=True):
        assert ((probability > 0) & (probability < 1)).all()
        assert roc_auc_score(won[tested], probability) > 0.6
    # the refit model scores its own training deals better than the folds did
    everything = np.concatenate(scores.tested)
    inside = roc_auc_score(
        won[everything], predict_proba(model, sample.iloc[everything])
    )
    outside = roc_auc_score(won[everything], np.concatenate(scores.probability))
    assert inside > outside


def test_a_few_hundred_deals_grow_smaller_trees() -> None:
    cfg = TrainConfig()
    assert scaled_train(cfg, 300).min_child_samples == 7
    assert scaled_train(cfg, 300).num_leaves == 4
    assert scaled_train(cfg, 1000).num_leaves == 8
    assert scaled_train(cfg, 1000).min_child_samples == 25
    assert scaled_train(cfg, 10_000) == cfg
    off = cfg.model_copy(update={"small_data": False})
    assert scaled_train(off, 300) == off


def test_calibrating_on_the_latest_window_keeps_the_judged_fit(
    trained: Trained,
) -> None:
    params = trained.project.params
    latest = params.train.model_copy(update={"calibrate_on": "latest"})
    model = train_model(trained.split, trained.registry, latest, params.bands, 0)
    test = trained.split.test
    assert model.info.calibration == fit_platt(
        margin(model, test), test["won"].to_numpy(int)
    )
    judged_model = judged(model)
    valid = trained.split.valid
    assert judged_model.info.calibration == fit_platt(
        margin(model, valid), valid["won"].to_numpy(int)
    )
    assert judged(trained.model) is trained.model
    # the latest fit matches the test window's win rate, as Platt does
    assert predict_proba(model, test).mean() == pytest.approx(
        test["won"].mean(), abs=1e-4
    )


def test_a_folds_validation_stretch_reaches_back_to_both_outcomes() -> None:
    """Rare wins: the latest 15% of a fold's deals are all lost, so its early
    stopping window reaches back to the latest win (in time order still)."""
    won = np.r_[np.tile([1.0, 0, 0, 0], 20), np.zeros(40)]
    features = pd.DataFrame(
        {
            "deal_id": [f"D{i}" for i in range(won.size)],
            "created_at": pd.date_range("2024-01-01", periods=won.size, freq="D"),
            "order": np.nan,
            "won": won,
        }
    )
    rows = np.arange(won.size)
    split = fold_split(features, rows, rows[-5:], 0.15, True, np.random.default_rng(0))
    assert set(split.valid["won"]) == {0.0, 1.0}
    assert split.train["created_at"].max() < split.valid["created_at"].min()
    assert len(split.train) + len(split.valid) == won.size
