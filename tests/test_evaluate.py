"""Evaluation metrics on tiny examples whose answers are known by hand, and the
out-of-fold probabilities of repeated cross-validation on every source."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from projects import Project
from sklearn.metrics import roc_auc_score

from lead_ml.audit import cv_folds
from lead_ml.config import EvaluateConfig, parse_params, read_params_file
from lead_ml.evaluate import (
    capacity_view,
    classification_metrics,
    cross_validated_probability,
    evaluate_score_frame,
    evaluate_scores,
    expected_calibration_error,
    paired_bootstrap_auc_delta,
    plot_data,
)
from lead_ml.features import FeatureRegistry

WON = np.array([0, 0, 1, 1])


def test_perfect_ranking_scores_one() -> None:
    metrics = classification_metrics(WON, [0.1, 0.2, 0.8, 0.9])

    assert metrics["roc_auc"] == 1.0
    assert metrics["pr_auc"] == 1.0
    assert set(metrics) == {"roc_auc", "pr_auc", "brier", "log_loss", "ece"}


def test_reversed_ranking_scores_zero() -> None:
    assert classification_metrics(WON, [0.9, 0.8, 0.2, 0.1])["roc_auc"] == 0.0


def test_brier_and_log_loss_on_two_leads() -> None:
    metrics = classification_metrics([0, 1], [0.2, 0.6])

    # ((0.2 - 0)^2 + (0.6 - 1)^2) / 2
    assert metrics["brier"] == pytest.approx(0.1)
    assert metrics["log_loss"] == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)


def test_ece_is_zero_when_every_bin_matches_its_win_rate() -> None:
    prob = [0.25] * 4 + [0.75] * 4
    won = [1, 0, 0, 0] + [1, 1, 1, 0]

    assert expected_calibration_error(won, prob, n_bins=2) == pytest.approx(0.0)


def test_ece_of_a_known_miscalibration() -> None:
    # Bin [0.2, 0.3): predicts 0.2, wins 3/5, gap 0.4. Bin [0.9, 1]: 0.9 vs 1, gap 0.1.
    prob = [0.2] * 5 + [0.9] * 5
    won = [1, 1, 1, 0, 0] + [1] * 5

    assert expected_calibration_error(won, prob) == pytest.approx(0.5 * 0.4 + 0.5 * 0.1)


def test_probability_of_one_lands_in_the_last_bin() -> None:
    assert expected_calibration_error([1], [1.0], n_bins=10) == 0.0


@pytest.mark.parametrize(
    ("n_bins", "ece"),
    [
        # 0.15 and 0.25 share [0, 1/3) and [0, 1/2): mean 0.2 against a 0.5 win rate
        (2, 0.3),
        (3, 0.3),
        # ...and fall in different bins of 4, 5 or 10: each misses by its own gap
        (4, 0.5 * 0.85 + 0.5 * 0.25),
        (10, 0.5 * 0.85 + 0.5 * 0.25),
    ],
)
def test_ece_depends_on_the_bin_edges(n_bins: int, ece: float) -> None:
    prob, won = [0.15, 0.15, 0.25, 0.25], [1, 1, 0, 0]
    assert expected_calibration_error(won, prob, n_bins=n_bins) == pytest.approx(ece)


def test_a_probability_on_a_bin_edge_goes_in_the_upper_bin() -> None:
    # 0.5 opens the second of two bins: each lead is its own bin, gaps 0.4 and 0.5.
    assert expected_calibration_error([0, 1], [0.4, 0.5], n_bins=2) == pytest.approx(
        0.45
    )


def test_ece_is_the_calibration_table_weighted_by_bin_size() -> None:
    rng = np.random.default_rng(4)
    prob = rng.random(500) ** 2
    won = (rng.random(500) < prob * 0.8).astype(int)
    table = plot_data(won, prob, np.zeros(500), n_bins=7, n_bands=5)["calibration"]
    gaps = (table["mean_predicted"] - table["observed_rate"]).abs()
    by_table = float((table["count"] / 500 * gaps).sum())
    assert table["count"].sum() == 500 and table["bin"].max() <= 7
    assert expected_calibration_error(won, prob, n_bins=7) == pytest.approx(by_table)


@pytest.mark.parametrize(
    ("won", "prob", "message"),
    [
        ([0, 2], [0.1, 0.2], "0/1"),
        ([0, 1], [0.1], "prob must be 2"),
        ([0, 1], [0.1, np.nan], "finite"),
        ([0, 1], [0.1, 1.5], r"\[0, 1\]"),
    ],
)
def test_bad_inputs_are_named(won: list[int], prob: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        expected_calibration_error(won, prob)


def test_one_class_cannot_be_ranked() -> None:
    with pytest.raises(ValueError, match="both"):
        classification_metrics([1, 1], [0.2, 0.9])


@pytest.fixture
def ranked() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    won = rng.integers(0, 2, 300)
    return {
        "won": won,
        "model": won + rng.normal(0, 0.8, 300),
        "bant": rng.integers(0, 5, 300) + won * rng.integers(0, 2, 300),
    }


def test_bootstrap_ci_contains_the_point_delta_and_is_reproducible(
    ranked: dict[str, np.ndarray],
) -> None:
    args = (ranked["won"], ranked["model"], ranked["bant"], 200)

    result = paired_bootstrap_auc_delta(*args, seed=3)

    low, high = result["delta_roc_auc_ci95"]
    assert low <= result["delta_roc_auc"] <= high
    assert result["n_bootstrap"] == 200
    assert paired_bootstrap_auc_delta(*args, seed=3) == result
    assert paired_bootstrap_auc_delta(*args, seed=4) != result


def test_bootstrap_point_delta_matches_sklearn(ranked: dict[str, np.ndarray]) -> None:
    result = paired_bootstrap_auc_delta(
        ranked["won"], ranked["model"], ranked["bant"], 50, seed=0
    )

    expected = roc_auc_score(ranked["won"], ranked["model"]) - roc_auc_score(
        ranked["won"], ranked["bant"]
    )
    assert result["delta_roc_auc"] == pytest.approx(expected)


def test_bootstrap_of_identical_scores_is_degenerate(
    ranked: dict[str, np.ndarray],
) -> None:
    result = paired_bootstrap_auc_delta(
        ranked["won"], ranked["model"], ranked["model"], 100, seed=0
    )

    assert result["delta_roc_auc"] == 0.0
    assert result["delta_roc_auc_ci95"] == [0.0, 0.0]


def six_leads(
    k: int, seed: int, amount: list[float] | None = None
) -> dict[str, float | int]:
    """Capacity view of six leads: the model ranks the three wins first, BANT ties
    each of its two top pairs of leads (4 and 3 points) a win with a loss."""
    won = [1, 0, 1, 0, 1, 0]
    model = [0.9, 0.1, 0.8, 0.2, 0.7, 0.3]
    points = [4, 4, 3, 3, 1, 0]
    return capacity_view(won, model, points, k, seed, amount)


def test_capacity_counts_wins_in_each_top_k() -> None:
    view = six_leads(2, seed=0, amount=[10, 20, 30, 40, 50, 60])

    assert view["model_wins"] == 2  # leads 0 and 2
    assert view["bant_wins"] == 1  # leads 0 and 1 (4 points each)
    assert view["model_win_rate"] == 1.0
    assert view["bant_win_rate"] == 0.5
    assert view["base_win_rate"] == 0.5
    assert view["model_pipeline_value"] == 40.0
    assert view["bant_pipeline_value"] == 10.0


def test_capacity_at_the_qualified_count_takes_exactly_the_qualified_leads() -> None:
    # Four leads have >= 3 points: two of them won, whatever the seed.
    wins = {six_leads(4, s)["bant_wins"] for s in range(20)}

    assert wins == {2}


def test_capacity_ties_are_broken_by_one_seeded_permutation() -> None:
    # k=3: leads 0 and 1 (4 points, one win), then whichever of the tied leads 2
    # (won) and 3 (lost) the seed's permutation of the six leads puts first.
    by_seed = [six_leads(3, s)["bant_wins"] for s in range(20)]
    orders = [np.random.default_rng(s).permutation(6) for s in range(20)]
    assert by_seed == [1 + int(order[2] < order[3]) for order in orders]
    assert set(by_seed) == {1, 2}


def test_capacity_without_amount_has_no_pipeline_value() -> None:
    assert "model_pipeline_value" not in six_leads(1, 0)


@pytest.mark.parametrize("k", [0, 7])
def test_capacity_out_of_range_is_rejected(k: int) -> None:
    with pytest.raises(ValueError, match="k must be between 1 and the 6 leads"):
        six_leads(k, 0)


@pytest.fixture
def frames(ranked: dict[str, np.ndarray]) -> dict[str, pd.DataFrame]:
    prob = 1 / (1 + np.exp(-ranked["model"]))
    return plot_data(ranked["won"], prob, ranked["bant"], n_bins=10, n_bands=10)


def test_plot_frames_have_the_documented_columns(
    frames: dict[str, pd.DataFrame],
) -> None:
    columns = {name: list(frame.columns) for name, frame in frames.items()}

    assert columns == {
        "roc": ["approach", "fpr", "tpr"],
        "pr": ["approach", "recall", "precision"],
        "calibration": ["bin", "mean_predicted", "observed_rate", "count"],
        "gains": ["approach", "share_of_leads", "share_of_wins"],
        "win_rate_by_band": ["band", "n", "wins", "win_rate", "min_score", "max_score"],
    }
    for name in ("roc", "pr", "gains"):
        assert set(frames[name]["approach"]) == {"model", "bant"}
    assert frames["calibration"]["count"].sum() == 300


def test_gains_are_monotone_and_run_from_origin_to_one_one(
    frames: dict[str, pd.DataFrame],
) -> None:
    for _, curve in frames["gains"].groupby("approach"):
        assert len(curve) <= 101
        assert curve["share_of_leads"].is_monotonic_increasing
        assert curve["share_of_wins"].is_monotonic_increasing
        first, last = curve.iloc[0], curve.iloc[-1]
        assert (first["share_of_leads"], first["share_of_wins"]) == (0.0, 0.0)
        assert last["share_of_leads"] == pytest.approx(1.0)
        assert last["share_of_wins"] == pytest.approx(1.0)


def test_gains_of_tied_scores_follow_the_diagonal() -> None:
    frames = plot_data([1, 0, 1, 0], [0.5] * 4, [2] * 4, n_bins=2, n_bands=2)

    gains = frames["gains"]
    np.testing.assert_allclose(gains["share_of_wins"], gains["share_of_leads"])


def test_win_rate_by_band_starts_with_the_highest_scores() -> None:
    won = [0, 1, 0, 1, 1, 0]
    prob = [0.1, 0.9, 0.3, 0.8, 0.6, 0.2]

    bands = plot_data(won, prob, [0] * 6, n_bins=2, n_bands=3)["win_rate_by_band"]

    assert bands["band"].tolist() == [1, 2, 3]
    assert bands["n"].tolist() == [2, 2, 2]
    assert bands["wins"].tolist() == [2, 1, 0]
    assert bands["max_score"].tolist() == [0.9, 0.6, 0.2]


def test_evaluate_scores_is_json_ready(ranked: dict[str, np.ndarray]) -> None:
    prob = 1 / (1 + np.exp(-ranked["model"]))
    qualified = ranked["bant"] >= 3
    amount = np.arange(300.0)

    metrics = evaluate_scores(
        ranked["won"],
        prob,
        ranked["bant"],
        qualified,
        EvaluateConfig.model_validate({}),
        seed=1,
        amount=amount,
    )

    assert json.loads(json.dumps(metrics)) == metrics
    assert set(metrics) == {
        "model",
        "bant",
        "delta_roc_auc",
        "delta_roc_auc_ci95",
        "capacity",
    }
    assert metrics["capacity"]["k"] == int(qualified.sum())
    assert metrics["bant"]["qualified_share"] == pytest.approx(qualified.mean())


def test_evaluate_scores_uses_the_configured_capacity(
    ranked: dict[str, np.ndarray],
) -> None:
    prob = 1 / (1 + np.exp(-ranked["model"]))
    cfg = EvaluateConfig.model_validate({"capacity": 25, "n_bootstrap": 50})

    metrics = evaluate_scores(
        ranked["won"], prob, ranked["bant"], ranked["bant"] >= 3, cfg, 0
    )

    assert metrics["capacity"]["k"] == 25


leads = st.lists(
    st.tuples(st.integers(0, 1), st.integers(0, 6), st.floats(0, 1)),
    min_size=2,
    max_size=40,
).filter(lambda rows: len({won for won, _, _ in rows}) == 2)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(leads, st.integers(0, 2**16))
def test_auc_delta_is_antisymmetric(
    rows: list[tuple[int, int, float]], seed: int
) -> None:
    won, points, prob = (np.array(column) for column in zip(*rows, strict=True))

    forward = paired_bootstrap_auc_delta(won, prob, points, 50, seed)
    backward = paired_bootstrap_auc_delta(won, points, prob, 50, seed)

    assert backward["delta_roc_auc"] == -forward["delta_roc_auc"]
    low, high = forward["delta_roc_auc_ci95"]
    assert backward["delta_roc_auc_ci95"] == pytest.approx([-high, -low])


@settings(max_examples=60, deadline=None, derandomize=True)
@given(leads, st.data())
def test_capacity_wins_never_exceed_k_or_the_total(
    rows: list[tuple[int, int, float]], data: st.DataObject
) -> None:
    won, points, prob = (np.array(column) for column in zip(*rows, strict=True))
    k = data.draw(st.integers(1, len(rows)))

    view = capacity_view(won, prob, points, k, seed=0)

    for approach in ("model", "bant"):
        assert view[f"{approach}_wins"] <= min(k, won.sum())


def test_evaluate_score_frame_counts_a_missing_amount_as_no_value(
    ranked: dict[str, np.ndarray],
) -> None:
    prob = 1 / (1 + np.exp(-ranked["model"]))
    amount = np.arange(300.0)
    amount[::7] = np.nan
    scores = pd.DataFrame(
        {
            "won": ranked["won"],
            "probability": prob,
            "bant_points": ranked["bant"],
            "bant_qualified": ranked["bant"] >= 3,
            "amount": amount,
        }
    )
    cfg = EvaluateConfig(n_bootstrap=50)
    metrics = evaluate_score_frame(scores, cfg, seed=2)
    expected = evaluate_scores(
        ranked["won"],
        prob,
        ranked["bant"],
        ranked["bant"] >= 3,
        cfg,
        seed=2,
        amount=np.nan_to_num(amount),
    )
    assert metrics == expected
    capacity = metrics["capacity"]
    assert np.isfinite(
        [capacity["model_pipeline_value"], capacity["bant_pipeline_value"]]
    ).all()


# --- out-of-fold probabilities, on every source --------------------------------


#: Out-of-fold ROC AUC each source's closed deals must reach (low, high): the
#: synthetic CRM and X Education carry signal; Maven's fictitious deals carry none,
#: so a high AUC there would mean something leaks.
OUT_OF_FOLD_AUC = {
    "synthetic": (0.7, 1.0),
    "x_education": (0.8, 1.0),
    "maven": (0.4, 0.6),
}


def test_cross_validated_probability_scores_each_closed_deal_out_of_fold(
    project: Project,
) -> None:
    raw = read_params_file(project.path("params.yaml"))
    raw["train"] = raw.get("train", {}) | {"n_estimators": 20}
    params = parse_params(raw)
    features = project.features()
    registry = FeatureRegistry.from_dict(
        json.loads(project.path("data/features/registry.json").read_text())
    )
    folds = cv_folds(features, features["group"], n_splits=2, n_repeats=2, seed=1)
    repeats = cross_validated_probability(features, registry, params, folds, 2)
    assert len(repeats) == 2
    closed = features["won"].notna().to_numpy()
    won = features["won"].to_numpy()[closed].astype(int)
    low, high = OUT_OF_FOLD_AUC[project.name]
    for probability in repeats:
        assert probability.shape == (len(features),)
        assert np.isnan(probability[~closed]).all()  # open deals are never held out
        assert ((probability[closed] > 0) & (probability[closed] < 1)).all()
        assert low < roc_auc_score(won, probability[closed]) < high
    assert not np.array_equal(repeats[0], repeats[1])  # each repeat its own folds
    again = cross_validated_probability(features, registry, params, folds[:2], 2)
    np.testing.assert_array_equal(again[0], repeats[0])  # seeded
