"""fastshap must give LightGBM's own numbers: pred_contrib per feature (to 1e-9) and
raw predictions (to the last bit), on every source's model and on every kind of
split."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import treeoracle
from hypothesis import given, settings
from hypothesis import strategies as st
from projects import Project

from lead_ml import fastshap
from lead_ml.explain import dimension_contributions, feature_contributions
from lead_ml.model import (
    TrainedModel,
    absent_features,
    feature_rows,
    load_model,
    margin,
    model_matrix,
    model_rows,
    predict_proba,
)
from lead_ml.vocab import OUTPUT_DIMENSIONS

TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def model(project: Project) -> TrainedModel:
    """The source's trained model (the one its scorer ships)."""
    return load_model(project.path("models/model"))


@pytest.fixture(scope="module")
def awkward_leads(project: Project, model: TrainedModel) -> pd.DataFrame:
    """Leads with missing numbers, missing and never-seen categories."""
    features = project.features()
    leads = features.sample(min(1500, len(features)), random_state=3).copy()
    rng = np.random.default_rng(5)
    categorical = list(model.info.categories)
    for column in model.info.feature_names:
        if column in categorical:
            values = leads[column].astype(object)
            values[rng.random(len(leads)) < 0.05] = None
            values[rng.random(len(leads)) < 0.05] = "never-seen-before"
            leads[column] = values
        else:
            leads.loc[rng.random(len(leads)) < 0.1, column] = np.nan
    return leads


def lightgbm_contributions(booster: lgb.Booster, rows: Any, **kw: Any) -> np.ndarray:
    return np.asarray(booster.predict(rows, pred_contrib=True, **kw))


def _matrix(model: TrainedModel, leads: pd.DataFrame) -> pd.DataFrame:
    return model_matrix(leads, model.info.categories, model.info.feature_names)


def test_each_sources_model_matches_pred_contrib_per_feature(
    model: TrainedModel, awkward_leads: pd.DataFrame
) -> None:
    matrix = _matrix(model, awkward_leads)
    categorical = list(model.info.categories)
    assert matrix[categorical].isna().any().all()  # gaps, unseen
    rows = fastshap.feature_matrix(matrix)
    assert np.isnan(rows).any(axis=0).all()
    best = model.info.best_iteration
    ensemble = fastshap.compile_booster(model.booster, best)
    assert (ensemble.nodes[:, fastshap.KIND] == fastshap.CATEGORICAL).any()
    expected = lightgbm_contributions(model.booster, matrix, num_iteration=best)
    got = fastshap.contributions(ensemble, rows)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)
    # and the rows the scorer builds are the same rows
    np.testing.assert_array_equal(feature_rows(model, awkward_leads), rows)


def test_grouped_contributions_are_the_per_feature_sums(
    model: TrainedModel, awkward_leads: pd.DataFrame
) -> None:
    rows = fastshap.feature_matrix(_matrix(model, awkward_leads))
    ensemble = fastshap.compile_booster(model.booster, model.info.best_iteration)
    groups = np.arange(ensemble.n_features) % 3
    per_feature = fastshap.contributions(ensemble, rows)
    grouped = fastshap.contributions(ensemble, rows, groups, n_groups=4)
    for group in range(3):
        np.testing.assert_allclose(
            grouped[:, group],
            per_feature[:, :-1][:, groups == group].sum(axis=1),
            atol=TOLERANCE,
        )
    assert (grouped[:, 3] == 0).all()  # a group no feature is in
    np.testing.assert_array_equal(grouped[:, -1], per_feature[:, -1])


def gapped(model: TrainedModel, rows: np.ndarray) -> np.ndarray:
    """Which rows lack a feature no training row lacked."""
    return (np.isnan(rows) & absent_features(model)).any(axis=1)


def test_margin_is_lightgbm_predict_to_the_last_bit(
    model: TrainedModel, awkward_leads: pd.DataFrame
) -> None:
    """Equal to Booster.predict wherever LightGBM has a rule for each gap; a lead
    lacking a feature that was never missing in training is averaged over the
    training rows instead (the plain-Python reference), not read as 0."""
    matrix = _matrix(model, awkward_leads)
    best = model.info.best_iteration
    expected = model.booster.predict(matrix, raw_score=True, num_iteration=best)
    got = margin(model, awkward_leads)
    lacking = gapped(model, feature_rows(model, awkward_leads))
    assert lacking.any() == bool(model.info.complete_features)
    np.testing.assert_array_equal(got[~lacking], expected[~lacking])
    dump = model.booster.dump_model(num_iteration=best)
    rows = feature_rows(model, awkward_leads)
    for i in np.flatnonzero(lacking)[:25]:
        reference = treeoracle.margin(dump, rows[i], absent_features(model))
        assert got[i] == pytest.approx(reference, abs=TOLERANCE)
    probability = predict_proba(model, awkward_leads)
    assert ((probability > 0) & (probability < 1)).all()


@pytest.mark.parametrize("text", ["str", "string[python]", "string[pyarrow]", "object"])
def test_model_rows_are_the_model_matrix_as_lightgbm_reads_it(
    model: TrainedModel, awkward_leads: pd.DataFrame, text: str
) -> None:
    categories = model.info.categories
    leads = awkward_leads.astype(dict.fromkeys(categories, text))
    names = model.info.feature_names
    expected = fastshap.feature_matrix(model_matrix(leads, categories, names))
    np.testing.assert_array_equal(model_rows(leads, categories, names), expected)


def test_dimension_contributions_sum_lightgbm_values(
    model: TrainedModel, awkward_leads: pd.DataFrame
) -> None:
    matrix = _matrix(model, awkward_leads)
    rows = feature_rows(model, awkward_leads)
    ensemble = fastshap.compile_booster(model.booster, model.info.best_iteration)
    raw = fastshap.contributions(ensemble, rows, absent=absent_features(model))
    lightgbm = lightgbm_contributions(
        model.booster, matrix, num_iteration=model.info.best_iteration
    )
    whole = ~gapped(model, rows)
    np.testing.assert_allclose(raw[whole], lightgbm[whole], rtol=0, atol=TOLERANCE)
    got = dimension_contributions(
        model, feature_contributions(model, rows), awkward_leads.index
    )
    calibration = model.info.calibration
    for d, dimension in enumerate(OUTPUT_DIMENSIONS):
        columns = [
            i
            for i, name in enumerate(model.info.feature_names)
            if model.info.dimensions[name] == dimension
        ]
        np.testing.assert_allclose(
            got.iloc[:, d], calibration.slope * raw[:, columns].sum(axis=1), atol=1e-9
        )
    log_odds = calibration.log_odds(margin(model, awkward_leads))
    np.testing.assert_allclose(got.sum(axis=1), log_odds, atol=1e-9)
    assert got.index.equals(awkward_leads.index)


def test_first_iterations_only(model: TrainedModel) -> None:
    booster = model.booster
    first = max(1, model.info.best_iteration // 2)
    rows = np.nan_to_num(
        np.random.default_rng(0).normal(size=(50, booster.num_feature()))
    )
    ensemble = fastshap.compile_booster(booster, first)
    assert ensemble.n_trees == first
    assert fastshap.compile_booster(booster, first) is ensemble  # parsed once
    np.testing.assert_allclose(
        fastshap.contributions(ensemble, rows),
        lightgbm_contributions(booster, rows, num_iteration=first),
        atol=TOLERANCE,
    )


# --- every kind of split, on models trained here -------------------------------------


def synthetic_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Numbers with NaN and many zeros, and a 40-level category (two bitset words)."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n, 4))
    rows[:, 1] = np.where(rng.random(n) < 0.4, 0.0, rows[:, 1])
    rows[rng.random(n) < 0.15, 2] = np.nan
    rows[:, 3] = rng.integers(0, 40, n)
    signal = rows[:, 0] + np.nan_to_num(rows[:, 2]) + (rows[:, 3] % 7 == 2) * 2.0
    return rows, (signal + rng.normal(size=n) > 0.5).astype(int)


EDGE_VALUES = np.array(
    [np.nan, 0.0, -0.0, 1e-36, -1e-36, -0.5, -1.0, -3.0, 2.7, 39.0, 40.0, 100.0]
)


def edge_rows(rows: np.ndarray) -> np.ndarray:
    """Each edge value in each column, around otherwise ordinary rows."""
    edges = np.repeat(rows[:1], len(EDGE_VALUES) * rows.shape[1], axis=0)
    for column in range(rows.shape[1]):
        block = slice(column * len(EDGE_VALUES), (column + 1) * len(EDGE_VALUES))
        edges[block, column] = EDGE_VALUES
    return np.vstack([rows, edges])


def train_raw(params: dict[str, Any], rounds: int = 30, seed: int = 1) -> lgb.Booster:
    rows, won = synthetic_rows(2000, seed)
    data = lgb.Dataset(rows, won, categorical_feature=[3])
    defaults = {"objective": "binary", "verbosity": -1, "seed": seed}
    return lgb.train({**defaults, **params}, data, num_boost_round=rounds)


def assert_matches_lightgbm(booster: lgb.Booster) -> fastshap.TreeEnsemble:
    rows = edge_rows(synthetic_rows(500, 99)[0])
    ensemble = fastshap.parse_dump(booster.dump_model())
    np.testing.assert_allclose(
        fastshap.contributions(ensemble, rows),
        lightgbm_contributions(booster, rows),
        rtol=0,
        atol=TOLERANCE,
    )
    np.testing.assert_array_equal(
        fastshap.predict_margin(ensemble, rows), booster.predict(rows, raw_score=True)
    )
    return ensemble


@pytest.mark.parametrize(
    ("params", "kinds"),
    [
        ({"num_leaves": 15, "max_depth": 5}, {0, 2, 3}),  # missing types None, NaN
        ({"num_leaves": 15, "zero_as_missing": True}, {1, 3}),  # missing type Zero
        ({"num_leaves": 31, "max_depth": -1, "use_missing": False}, {0, 3}),
        ({"num_leaves": 7, "max_cat_to_onehot": 64}, {3}),  # one-vs-rest categories
        ({"num_leaves": 100, "max_depth": -1, "min_data_in_leaf": 2}, {0, 2, 3}),
    ],
)
def test_every_split_kind_matches_lightgbm(
    params: dict[str, Any], kinds: set[int]
) -> None:
    ensemble = assert_matches_lightgbm(train_raw(params))
    assert kinds <= set(ensemble.nodes[:, fastshap.KIND].tolist())
    assert ensemble.cat_size[3] > 32  # categories past the first 32 were split on
    if params["num_leaves"] > 64:  # leaf masks of two 64-bit words
        assert ensemble.trees[:, fastshap.N_LEAVES].max() > 64


def test_leaves_too_deep_to_tabulate_are_computed_per_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    booster = train_raw({"num_leaves": 63, "max_depth": -1, "min_data_in_leaf": 3})
    deepest = int(fastshap.parse_dump(booster.dump_model()).leaves[:, 1].max())
    monkeypatch.setattr(fastshap, "MAX_TABLE_DEPTH", 1)
    ensemble = assert_matches_lightgbm(booster)
    tables = fastshap.leaf_tables(ensemble, np.arange(ensemble.n_features))
    assert deepest >= 3
    assert (tables.table_start == -1).mean() > 0.5


@pytest.mark.parametrize("max_splits", [0, 8, 9])
def test_trees_tabulated_by_code_and_walked_leaf_by_leaf_agree(
    monkeypatch: pytest.MonkeyPatch, max_splits: int
) -> None:
    """Small trees are looked up by their split code, larger ones walked leaf by
    leaf; a model holding both kinds matches LightGBM either way."""
    # trees of 8 to 11 splits
    booster = train_raw({"num_leaves": 12, "min_data_in_leaf": 150}, rounds=40)
    monkeypatch.setattr(fastshap, "MAX_CODE_SPLITS", max_splits)
    ensemble = assert_matches_lightgbm(booster)
    tabulated = ensemble.code_start >= 0
    splits = ensemble.trees[:, fastshap.N_NODES]
    assert np.array_equal(tabulated, splits <= max_splits)
    if max_splits > 0:
        assert tabulated.any() and not tabulated.all()
    tables = fastshap.leaf_tables(ensemble, np.array([0, 1, 1, 0], np.int32))
    assert np.array_equal(tables.tree_codes[:, 0] >= 0, tabulated)
    rows = edge_rows(synthetic_rows(300, 7)[0])
    per_feature = lightgbm_contributions(booster, rows)
    grouped = fastshap.contributions(ensemble, rows, np.array([0, 1, 1, 0]), 2)
    np.testing.assert_allclose(
        grouped[:, :2],
        np.column_stack(
            [per_feature[:, [0, 3]].sum(axis=1), per_feature[:, [1, 2]].sum(axis=1)]
        ),
        rtol=0,
        atol=TOLERANCE,
    )


def test_single_leaf_models_are_constants() -> None:
    booster = train_raw({"min_data_in_leaf": 5000}, rounds=3)
    assert booster.num_trees() == 1
    ensemble = assert_matches_lightgbm(booster)
    assert ensemble.n_trees == 1 and len(ensemble.nodes) == 0


def test_a_single_leaf_tree_only_moves_the_expected_value() -> None:
    booster = train_raw({"num_leaves": 7}, rounds=5)
    dump = booster.dump_model()
    rows = synthetic_rows(200, 3)[0]
    before = fastshap.contributions(fastshap.parse_dump(dump), rows)
    dump["tree_info"].insert(2, {"tree_structure": {"leaf_value": 0.25}})
    after = fastshap.contributions(fastshap.parse_dump(dump), rows)
    np.testing.assert_allclose(after[:, :-1], before[:, :-1], atol=TOLERANCE)
    np.testing.assert_allclose(after[:, -1], before[:, -1] + 0.25, atol=TOLERANCE)


@settings(max_examples=12, deadline=None)
@given(
    leaves=st.integers(2, 40),
    depth=st.sampled_from([-1, 2, 4, 7]),
    seed=st.integers(0, 10_000),
    min_leaf=st.integers(1, 60),
)
def test_random_models_match_lightgbm(
    leaves: int, depth: int, seed: int, min_leaf: int
) -> None:
    params = {"num_leaves": leaves, "max_depth": depth, "min_data_in_leaf": min_leaf}
    assert_matches_lightgbm(train_raw(params, rounds=8, seed=seed))


# --- features never missing in training: a missing value is not known ---------------


def complete_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Four features, only the third ever missing (so LightGBM learns a rule for
    it); the second a category."""
    rng = np.random.default_rng(seed)
    rows = np.column_stack(
        [
            rng.normal(size=n),
            rng.integers(0, 6, n).astype(float),
            np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)),
            rng.exponential(size=n),
        ]
    )
    signal = rows[:, 0] + (rows[:, 1] == 2) + np.nan_to_num(rows[:, 2]) - rows[:, 3]
    return rows, (signal + rng.normal(size=n) > 0).astype(int)


#: The features a model of complete_rows has no missing-value rule for.
ABSENT = np.array([True, True, False, True])


def train_complete(params: dict[str, Any], rounds: int = 25) -> lgb.Booster:
    rows, won = complete_rows(3000, 5)
    data = lgb.Dataset(rows, won, categorical_feature=[1])
    defaults = {"objective": "binary", "verbosity": -1, "seed": 5}
    return lgb.train({**defaults, **params}, data, num_boost_round=rounds)


def gapped_rows(n: int) -> np.ndarray:
    """Rows missing one, two or every feature, and some missing none."""
    rows = complete_rows(n, 11)[0]
    rows[::2, 0] = np.nan
    rows[1::3, 1] = np.nan
    rows[::5, 3] = np.nan
    rows[4::7] = np.nan
    rows[1::7, 1] = 17.0  # a category never seen in training: not known either
    return rows


def absent_sets(rows: np.ndarray) -> set[bytes]:
    """The distinct sets of ABSENT features the rows lack (the empty one too)."""
    return {(np.isnan(row) & ABSENT).tobytes() for row in rows}


@pytest.mark.parametrize("collapsed", [True, False], ids=["collapsed", "per-row"])
@pytest.mark.parametrize(
    ("params", "max_mixed", "max_table_depth"),
    [
        ({"num_leaves": 7}, 4, 8),  # table entries mixed; trees looked up by code
        ({"num_leaves": 15, "max_cat_to_onehot": 8}, 0, 8),  # computed per leaf
        ({"num_leaves": 40, "max_depth": -1, "min_data_in_leaf": 3}, 4, 1),
    ],
)
def test_a_missing_complete_feature_is_averaged_over_the_training_rows(
    monkeypatch: pytest.MonkeyPatch,
    params: dict[str, Any],
    max_mixed: int,
    max_table_depth: int,
    collapsed: bool,
) -> None:
    """Margins equal the plain-Python expectation over the training rows, and the
    contributions the brute-force Shapley values of that game: whether a leaf's
    table entries are mixed, its values computed, or the leaf never tabulated; and
    whether the rows of each absent set take that set's collapsed trees (as the
    rows of a batch scored without its activity log do) or the per-row walk."""
    monkeypatch.setattr(fastshap, "MAX_MIXED", max_mixed)
    monkeypatch.setattr(fastshap, "MAX_TABLE_DEPTH", max_table_depth)
    monkeypatch.setattr(fastshap, "MIN_COLLAPSE_ROWS", 1 if collapsed else 10**9)
    booster = train_complete(params)
    dump = booster.dump_model()
    ensemble = fastshap.parse_dump(dump)
    rows = gapped_rows(21)
    margins = fastshap.predict_margin(ensemble, rows, absent=ABSENT)
    expected = [treeoracle.margin(dump, row, ABSENT) for row in rows]
    np.testing.assert_allclose(margins, expected, rtol=0, atol=TOLERANCE)
    values = fastshap.contributions(ensemble, rows, absent=ABSENT)
    reference = np.array([treeoracle.shapley(dump, row, ABSENT) for row in rows])
    np.testing.assert_allclose(values, reference, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(values.sum(axis=1), margins, rtol=0, atol=TOLERANCE)
    gaps = np.isnan(rows) & ABSENT
    assert np.abs(values[:, :-1][gaps]).max() < TOLERANCE  # not known adds nothing
    # LightGBM reads those gaps as 0 (and an unseen category as "other"): not this
    lightgbm = booster.predict(rows, raw_score=True)
    assert np.abs(lightgbm - margins)[gaps.any(axis=1)].max() > 0.01
    nothing = np.zeros(4, bool).tobytes()
    assert set(ensemble.collapsed) == (absent_sets(rows) if collapsed else {nothing})
    assert len(absent_sets(rows)) > 4


def test_a_batch_lacking_one_set_takes_its_collapsed_trees(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch whose rows all lack the same features (scored without their
    activity log) collapses the trees once for that set and keeps them: every
    tree kind (looked up by code, walked leaf by leaf), margins over a part of
    the trees (the next question's), grouped values, all as the per-row walk."""
    booster = train_complete(  # trees of 5 to 9 splits
        {"num_leaves": 14, "min_data_in_leaf": 200, "max_depth": 4}, rounds=40
    )
    rows = complete_rows(400, 3)[0]
    rows[:, [0, 3]] = np.nan  # the same two features unknown in every row
    groups = np.array([0, 1, 0, 1], np.int32)

    def explained(ensemble: fastshap.TreeEnsemble) -> list[np.ndarray]:
        trees = fastshap.trees_using(ensemble, [1])
        return [
            fastshap.predict_margin(ensemble, rows, absent=ABSENT),
            fastshap.predict_margin(ensemble, rows, trees, ABSENT),
            fastshap.contributions(ensemble, rows, groups, 2, absent=ABSENT),
        ]

    with monkeypatch.context() as walking:
        walking.setattr(fastshap, "MIN_COLLAPSE_ROWS", 10**9)
        walked = fastshap.parse_dump(booster.dump_model())
        walk = explained(walked)
    assert len(walked.collapsed) == 0
    ensemble = fastshap.parse_dump(booster.dump_model())
    got = explained(ensemble)
    flags = (np.isnan(rows[0]) & ABSENT).tobytes()
    assert list(ensemble.collapsed) == [flags]  # one set, collapsed once
    codes, mixed = ensemble.code_start >= 0, ensemble.collapsed[flags].tree_mixed
    assert mixed[codes].any() and mixed[~codes].any()  # both tree kinds collapsed
    for fast, slow in zip(got, walk, strict=True):
        np.testing.assert_allclose(fast, slow, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(got[2].sum(axis=1), got[0], rtol=0, atol=TOLERANCE)


def test_collapsed_sets_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastshap, "MIN_COLLAPSE_ROWS", 1)
    monkeypatch.setattr(fastshap, "MAX_COLLAPSED", 3)
    ensemble = fastshap.parse_dump(train_complete({"num_leaves": 7}).dump_model())
    rows = gapped_rows(30)
    first = fastshap.contributions(ensemble, rows, absent=ABSENT)
    assert len(absent_sets(rows)) > 3 and len(ensemble.collapsed) == 3
    again = fastshap.contributions(ensemble, rows, absent=ABSENT)
    np.testing.assert_array_equal(again, first)


def test_rows_lacking_no_complete_feature_score_as_lightgbm() -> None:
    booster = train_complete({"num_leaves": 15})
    ensemble = fastshap.parse_dump(booster.dump_model())
    rows = gapped_rows(40)
    whole = ~(np.isnan(rows) & ABSENT).any(axis=1)
    assert whole.any() and not whole.all()
    margins = fastshap.predict_margin(ensemble, rows, absent=ABSENT)
    lightgbm = booster.predict(rows, raw_score=True)
    np.testing.assert_array_equal(margins[whole], lightgbm[whole])
    np.testing.assert_array_equal(
        fastshap.predict_margin(ensemble, rows, absent=np.zeros(4, bool)), lightgbm
    )


def test_the_trees_of_a_feature_and_the_rest_add_up_for_gapped_rows() -> None:
    """The next question rescores only the trees splitting on the asked feature:
    their part and the other trees' part of a gapped row add up to its margin."""
    ensemble = fastshap.parse_dump(train_complete({"num_leaves": 15}).dump_model())
    rows = gapped_rows(30)
    using = min(
        (fastshap.trees_using(ensemble, [f]) for f in range(4)), key=len
    )  # the feature the fewest trees split on
    rest = np.setdiff1d(np.arange(ensemble.n_trees), using)
    assert len(using) and len(rest)
    parts = [fastshap.predict_margin(ensemble, rows, t, ABSENT) for t in (using, rest)]
    np.testing.assert_allclose(
        parts[0] + parts[1],
        fastshap.predict_margin(ensemble, rows, absent=ABSENT),
        rtol=0,
        atol=TOLERANCE,
    )


def test_grouped_contributions_of_gapped_rows_are_the_per_feature_sums() -> None:
    ensemble = fastshap.parse_dump(train_complete({"num_leaves": 15}).dump_model())
    rows = gapped_rows(30)
    single = fastshap.contributions(ensemble, rows, absent=ABSENT)
    grouped = fastshap.contributions(
        ensemble, rows, np.array([1, 0, 1, 0], np.int32), 3, absent=ABSENT
    )
    np.testing.assert_allclose(
        grouped,
        np.column_stack(
            [
                single[:, [1, 3]].sum(1),
                single[:, [0, 2]].sum(1),
                np.zeros(len(rows)),
                single[:, -1],
            ]
        ),
        rtol=0,
        atol=TOLERANCE,
    )


def test_absent_flags_must_name_every_feature() -> None:
    ensemble = fastshap.parse_dump(train_complete({"num_leaves": 7}).dump_model())
    with pytest.raises(fastshap.TreeModelError, match="one flag per feature"):
        fastshap.predict_margin(ensemble, gapped_rows(3), absent=np.ones(2, bool))


# --- refusals ----------------------------------------------------------------------


def test_refuses_what_it_cannot_explain() -> None:
    rows, won = synthetic_rows(300, 1)
    multiclass = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbosity": -1},
        lgb.Dataset(rows, won + (rows[:, 0] > 1)),
        num_boost_round=2,
    )
    with pytest.raises(fastshap.TreeModelError, match="single-output"):
        fastshap.parse_dump(multiclass.dump_model())
    linear = train_raw({"linear_tree": True, "objective": "regression"}, rounds=2)
    with pytest.raises(fastshap.TreeModelError, match="linear trees"):
        fastshap.parse_dump(linear.dump_model())
    ensemble = fastshap.parse_dump(train_raw({}, rounds=2).dump_model())
    with pytest.raises(fastshap.TreeModelError, match="4 feature columns"):
        fastshap.contributions(ensemble, rows[:, :3])
    with pytest.raises(fastshap.TreeModelError, match="one group number"):
        fastshap.contributions(ensemble, rows, np.array([0, 1, 2, -1]))
    assert fastshap.contributions(ensemble, rows[:0]).shape == (0, 5)


# --- the JIT cache -------------------------------------------------------------------

PROBE = """
import json, numpy as np
from lead_ml import fastshap
tree = {"tree_structure": {"split_feature": 0, "threshold": 0.5, "decision_type": "<=",
    "default_left": True, "missing_type": "NaN", "internal_count": 4,
    "left_child": {"leaf_value": 1.0, "leaf_count": 1},
    "right_child": {"leaf_value": 3.0, "leaf_count": 3}}}
ensemble = fastshap.parse_dump({"tree_info": [tree], "max_feature_idx": 0})
values = fastshap.contributions(ensemble, np.array([[0.0], [1.0]])).tolist()
stats = fastshap._shap_kernel.stats
print(json.dumps({"values": values, "hits": sum(stats.cache_hits.values()),
                  "misses": sum(stats.cache_misses.values()),
                  "file": fastshap.__file__}))
"""


def start_probe(
    env: dict[str, str], base: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Run PROBE in a fresh process (a compile takes a while: start several)."""
    return subprocess.Popen(
        [sys.executable, "-c", PROBE],
        env={**(os.environ if base is None else base), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def probe_result(process: subprocess.Popen[str]) -> dict[str, Any]:
    stdout, stderr = process.communicate()
    assert process.returncode == 0, stderr
    return dict(json.loads(stdout.splitlines()[-1]))


def run_probe(
    env: dict[str, str], base: dict[str, str] | None = None
) -> dict[str, Any]:
    return probe_result(start_probe(env, base))


@pytest.mark.slow
def test_jit_cache_is_reused_and_optional(tmp_path: Path) -> None:
    cache = {"NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    # No writable cache location at all (a read-only install and home): it still
    # runs, compiled in the process (alongside the first compile, to save time).
    nowhere = start_probe({"NUMBA_CACHE_LOCATOR_CLASSES": "IPythonCacheLocator"})
    first = run_probe(cache)
    second = run_probe(cache)
    assert first["values"] == second["values"] == [[-1.5, 2.5], [0.5, 2.5]]
    assert first["misses"] >= 1
    assert second["hits"] >= 1 and second["misses"] == 0
    assert probe_result(nowhere)["values"] == first["values"]


@pytest.mark.slow
def test_a_copy_of_the_code_elsewhere_reuses_the_compiled_kernels(
    tmp_path: Path,
) -> None:
    """MLflow copies a model's code into a fresh folder for every job: the kernels
    compiled from one copy serve any other copy of the same source."""
    package = Path(fastshap.__file__).parent
    copies = []
    for name in ("job1", "job2"):
        shutil.copytree(
            package,
            tmp_path / name / "lead_ml",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        copies.append(tmp_path / name)
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NUMBA_CACHE_DIR", "NUMBA_CACHE_LOCATOR_CLASSES")
    }
    home = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    first, second = (
        run_probe({**home, "PYTHONPATH": str(copy)}, base=clean) for copy in copies
    )
    assert first["file"].startswith(str(copies[0]))
    assert second["file"].startswith(str(copies[1]))
    assert first["misses"] >= 1
    assert second["hits"] >= 1 and second["misses"] == 0
    assert first["values"] == second["values"]
    cached = list((tmp_path / "cache" / "lead-ml" / "numba").iterdir())
    # fastshap's kernels, and the elementary functions of lead_ml.jit it imports
    assert sorted(folder.name.split("-")[0] for folder in cached) == [
        "fastshap",
        "jit",
    ]


# --- the next question's answered scores: one lookup per tree ------------------------

#: Next-question probabilities must equal a full re-score to this (issue 17).
RESCORE_TOLERANCE = 1e-12


def answered(rows: np.ndarray, answer: dict[int, float]) -> np.ndarray:
    """The rows with an answer's values filled in (a full re-score's input)."""
    out = rows.copy()
    for feature, value in answer.items():
        out[:, feature] = value
    return out


def assert_answers_are_a_rescore(
    ensemble: fastshap.TreeEnsemble,
    rows: np.ndarray,
    answers: list[dict[int, float]],
    absent: np.ndarray | None = None,
) -> np.ndarray:
    """answer_margins (from the rows' codes, for every row and for a subset) equal
    predict_margin of the answered rows; the codes' margins and contributions are
    those of the rows to the last bit. Returns the answered margins."""
    codes = fastshap.tree_codes(ensemble, rows)
    now = fastshap.predict_margin(ensemble, rows, absent=absent)
    assert np.array_equal(
        fastshap.predict_margin(ensemble, rows, absent=absent, codes=codes), now
    )
    assert np.array_equal(
        fastshap.contributions(ensemble, rows, absent=absent, codes=codes),
        fastshap.contributions(ensemble, rows, absent=absent),
    )
    expected = np.column_stack(
        [
            fastshap.predict_margin(ensemble, answered(rows, a), absent=absent)
            for a in answers
        ]
    )
    got = fastshap.answer_margins(ensemble, rows, now, answers, absent, codes)
    np.testing.assert_allclose(got, expected, rtol=0, atol=RESCORE_TOLERANCE)
    leads = np.arange(len(rows))[::-3]  # a subset, out of order
    subset = fastshap.answer_margins(ensemble, rows, now, answers, absent, leads=leads)
    np.testing.assert_allclose(subset, expected[leads], rtol=0, atol=RESCORE_TOLERANCE)
    return got


#: Answers of synthetic_rows' features: a number (each edge value), the category
#: (seen and unseen codes, missing), and two features at once.
ANSWERS = [
    *({0: float(v)} for v in EDGE_VALUES),
    *({2: float(v)} for v in EDGE_VALUES),
    *({3: float(v)} for v in (0.0, 2.0, 9.0, 39.0, 40.0, 57.0, -1.0, np.nan)),
    {0: 0.3, 3: 2.0},
    {1: np.nan, 2: 0.0, 3: 9.0},
]


@pytest.mark.parametrize(
    ("params", "max_splits"),
    [
        ({"num_leaves": 8, "max_depth": 3}, 8),  # every tree looked up by code
        ({"num_leaves": 15, "zero_as_missing": True}, 8),  # missing type Zero
        ({"num_leaves": 7, "max_cat_to_onehot": 64, "use_missing": False}, 8),
        ({"num_leaves": 12, "min_data_in_leaf": 150}, 8),  # 8 to 11 splits: both kinds
        ({"num_leaves": 8}, 0),  # no tree tabulated by code: all scored as rows
    ],
)
def test_an_answer_is_one_lookup_per_tree_and_a_full_rescore(
    monkeypatch: pytest.MonkeyPatch, params: dict[str, Any], max_splits: int
) -> None:
    """Every answer, of numbers (NaN, zeros, at the thresholds), categories (bitset
    words, unseen and negative codes) and several features at once, scores as the
    answered rows do, whichever way each tree is tabulated."""
    monkeypatch.setattr(fastshap, "MAX_CODE_SPLITS", max_splits)
    booster = train_raw(params, rounds=40)
    ensemble = fastshap.parse_dump(booster.dump_model())
    rows = edge_rows(synthetic_rows(200, 4)[0])
    got = assert_answers_are_a_rescore(ensemble, rows, ANSWERS)
    np.testing.assert_allclose(  # and as LightGBM scores them
        got[:, 0],
        booster.predict(answered(rows, ANSWERS[0]), raw_score=True),
        rtol=0,
        atol=RESCORE_TOLERANCE,
    )
    now = fastshap.predict_margin(ensemble, rows)
    assert (np.abs(got - now[:, None]) > 1e-3).mean() > 0.2  # answers move scores
    tabulated = ensemble.code_start >= 0
    assert tabulated.all() if max_splits == 8 and params["num_leaves"] < 12 else True
    if params["num_leaves"] == 12:
        assert tabulated.any() and not tabulated.all()


@pytest.mark.parametrize("collapsed", [True, False], ids=["collapsed", "per-row"])
def test_answers_of_rows_lacking_features_no_training_row_lacked(
    monkeypatch: pytest.MonkeyPatch, collapsed: bool
) -> None:
    """Rows lacking absent features read their set's collapsed code values before
    an answer and those of the set the answer leaves after it (an answered feature
    is known; a detail answered as missing stays not known): the same as a full
    re-score of the answered rows and the plain-Python expectation; rows of a set
    too rare to collapse are scored again as rows."""
    monkeypatch.setattr(fastshap, "MIN_COLLAPSE_ROWS", 1 if collapsed else 10**9)
    booster = train_complete({"num_leaves": 7}, rounds=30)
    dump = booster.dump_model()
    ensemble = fastshap.parse_dump(dump)
    rows = gapped_rows(42)
    answers = [
        {0: 0.4},
        {1: 2.0},
        {1: 17.0},  # a category never seen: still not known
        {3: np.nan, 0: -1.0},
        {2: np.nan},  # the feature with a missing-value rule
        {0: np.nan, 1: 3.0, 3: 0.5},
    ]
    got = assert_answers_are_a_rescore(ensemble, rows, answers, ABSENT)
    for a, answer in enumerate(answers):
        expected = [
            treeoracle.margin(dump, row, ABSENT) for row in answered(rows, answer)
        ]
        np.testing.assert_allclose(got[:, a], expected, rtol=0, atol=TOLERANCE)
    assert len(absent_sets(rows)) > 4


def test_codes_are_refused_when_they_are_not_the_rows() -> None:
    ensemble = fastshap.parse_dump(train_raw({"num_leaves": 8}, rounds=3).dump_model())
    rows = synthetic_rows(10, 1)[0]
    with pytest.raises(fastshap.TreeModelError, match="tree_codes"):
        fastshap.contributions(ensemble, rows, codes=np.zeros((9, 3), np.uint8))


@pytest.mark.parametrize("width", [5, 64, 70], ids=["few", "64", "over-64"])
def test_rows_are_grouped_by_the_set_of_flagged_features_they_lack(width: int) -> None:
    """Every row (or every one of ``leads``) is in exactly the set of flagged
    features it lacks; one set is given once for all rows (None); over 64 flagged
    features the sets are told apart by their bits as well."""
    rng = np.random.default_rng(width)
    rows = rng.normal(size=(40, width + 2))
    mask = np.ones(width + 2, dtype=bool)
    mask[[0, -1]] = False  # never flagged: their gaps make no set
    patterns = np.zeros((4, width + 2), dtype=bool)
    patterns[1, 1] = patterns[2, width] = True
    patterns[3, 1 : width + 1 : 3] = True
    patterns[:, [0, -1]] = rng.random((4, 2)) < 0.5
    pattern = rng.integers(0, 4, len(rows))
    rows[patterns[pattern]] = np.nan

    def grouped(leads: np.ndarray | None) -> dict[tuple[int, ...], list[int]]:
        got: dict[tuple[int, ...], list[int]] = {}
        n = len(rows) if leads is None else len(leads)
        seen: list[int] = []
        for flags, positions in fastshap._absent_sets(rows, mask, leads):
            assert flags.dtype == bool and flags.shape == mask.shape
            key = tuple(np.flatnonzero(flags).tolist())
            assert key not in got
            chosen = list(range(n)) if positions is None else positions.tolist()
            got[key] = sorted(chosen)
            seen += chosen
        assert sorted(seen) == list(range(n))
        return got

    def expected(leads: np.ndarray) -> dict[tuple[int, ...], list[int]]:
        sets: dict[tuple[int, ...], list[int]] = {}
        for position, lead in enumerate(leads.tolist()):
            lacking = np.isnan(rows[lead]) & mask
            sets.setdefault(tuple(np.flatnonzero(lacking).tolist()), []).append(
                position
            )
        return sets

    assert grouped(None) == expected(np.arange(len(rows)))
    leads = np.array([7, 3, 3, 30, 12, 0, 39])
    assert grouped(leads) == expected(leads)
    same = np.flatnonzero(pattern == 3)[:5]
    (only,) = fastshap._absent_sets(rows, mask, same)
    assert only[1] is None
    assert (
        np.flatnonzero(only[0]).tolist() == np.flatnonzero(patterns[3] & mask).tolist()
    )
    full = np.flatnonzero(pattern == 0)
    ((flags, positions),) = fastshap._absent_sets(rows, mask, full)
    assert not flags.any() and positions is None
    ((flags, positions),) = fastshap._absent_sets(rows, np.zeros_like(mask))
    assert not flags.any() and positions is None
