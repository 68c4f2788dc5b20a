"""Evaluation metrics on tiny examples whose answers are known by hand, and the
out-of-fold probabilities of repeated cross-validation on every source."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from projects import Project, project_environment
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from lead_ml import stages
from lead_ml.audit import auc_ci_width, cv_folds, evaluation_plan
from lead_ml.cli import app
from lead_ml.config import AuditConfig, EvaluateConfig, parse_params, read_params_file
from lead_ml.evaluate import (
    auc_interval,
    base_rate_shift,
    capacity_check,
    capacity_view,
    classification_metrics,
    cross_validated_probability,
    evaluate_folds,
    evaluate_score_frame,
    evaluate_scores,
    expected_calibration_error,
    miscalibration,
    paired_bootstrap_auc_delta,
    paired_bootstrap_wins_delta,
    plot_data,
    verdict,
)
from lead_ml.features import FeatureRegistry
from lead_ml.vocab import ConfigError

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


def _wins_of_resample(
    won: np.ndarray, score: np.ndarray, drawn: np.ndarray, k: int, tiebreak: np.ndarray
) -> int:
    """Wins in the top k of the drawn leads, drawn as a list of row numbers (a
    row drawn twice is two leads): sort them, take k, count."""
    order = sorted(drawn.tolist(), key=lambda row: (-score[row], tiebreak[row]))
    return int(won[order[:k]].sum())


def test_wins_bootstrap_equals_resampling_the_leads_by_hand(
    ranked: dict[str, np.ndarray],
) -> None:
    won, model, bant = ranked["won"], ranked["model"], ranked["bant"]
    k, seed, draws = 40, 5, 60
    result = paired_bootstrap_wins_delta(won, model, bant, k, draws, seed)

    view = capacity_view(won, model, bant, k, seed)
    assert result["delta_wins"] == view["model_wins"] - view["bant_wins"]
    # The same resamples drawn as lists of rows (the generator the AUC bootstrap
    # uses), each approach's top k of them counted by sorting.
    tiebreak = np.random.default_rng(seed).permutation(won.size)
    rng, deltas = np.random.default_rng(seed), []
    for _ in range(draws):
        drawn = rng.integers(0, won.size, won.size)
        if 0 < won[drawn].sum() < won.size:
            deltas.append(
                _wins_of_resample(won, model, drawn, k, tiebreak)
                - _wins_of_resample(won, bant, drawn, k, tiebreak)
            )
    assert result["n_bootstrap"] == len(deltas)
    assert result["delta_wins_ci95"] == pytest.approx(
        np.percentile(deltas, [2.5, 97.5]).tolist()
    )
    low, high = result["delta_wins_ci95"]
    assert low <= result["delta_wins"] <= high and low < high


def test_wins_bootstrap_of_one_score_against_itself_is_zero(
    ranked: dict[str, np.ndarray],
) -> None:
    result = paired_bootstrap_wins_delta(
        ranked["won"], ranked["model"], ranked["model"], 30, 50, seed=1
    )

    assert result["delta_wins"] == 0
    assert result["delta_wins_ci95"] == [0.0, 0.0]


@pytest.mark.parametrize("k", [0, 301])
def test_wins_bootstrap_out_of_range_k_is_rejected(
    ranked: dict[str, np.ndarray], k: int
) -> None:
    with pytest.raises(ValueError, match="k must be between 1 and the 300 leads"):
        paired_bootstrap_wins_delta(
            ranked["won"], ranked["model"], ranked["bant"], k, 10, 0
        )


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


# --- one AUC per run, the plan, and the warnings ------------------------------------


def _folded(n_folds: int, size: int, seed: int) -> pd.DataFrame:
    """Out-of-fold scores of ``n_folds`` folds of ``size`` deals, some signal."""
    rng = np.random.default_rng(seed)
    won = rng.integers(0, 2, n_folds * size)
    return pd.DataFrame(
        {
            "deal_id": np.arange(won.size),
            "won": won,
            "probability": 1 / (1 + np.exp(-(won + rng.normal(0, 1.2, won.size)))),
            "bant_points": rng.integers(0, 5, won.size)
            + won * rng.integers(0, 2, won.size),
            "bant_qualified": rng.random(won.size) < 0.3,
            "amount": rng.random(won.size) * 100,
            "fold": np.repeat(np.arange(n_folds), size),
        }
    )


def test_out_of_fold_the_one_auc_is_the_folds_mean_with_its_spread_and_ci() -> None:
    scores = _folded(5, 80, seed=4)
    metrics = evaluate_folds(scores, EvaluateConfig(n_bootstrap=200), seed=0)
    by_fold = [
        roc_auc_score(rows["won"], rows["probability"])
        for _, rows in scores.groupby("fold")
    ]
    bant = [
        roc_auc_score(rows["won"], rows["bant_points"])
        for _, rows in scores.groupby("fold")
    ]
    assert metrics["model"]["roc_auc"] == pytest.approx(np.mean(by_fold), abs=1e-12)
    assert metrics["cv"]["model_roc_auc_mean"] == metrics["model"]["roc_auc"]
    assert metrics["cv"]["model_roc_auc_std"] == pytest.approx(np.std(by_fold))
    assert metrics["cv"]["model_roc_auc_by_fold"] == pytest.approx(by_fold)
    assert metrics["delta_roc_auc"] == pytest.approx(np.mean(by_fold) - np.mean(bant))
    low, high = metrics["model"]["roc_auc_ci95"]
    assert low < metrics["model"]["roc_auc"] < high
    low, high = metrics["delta_roc_auc_ci95"]
    assert low < metrics["delta_roc_auc"] < high
    # One ROC AUC: the pooled out-of-fold AUC is not a second figure.
    pooled = roc_auc_score(scores["won"], scores["probability"])
    assert pooled != pytest.approx(metrics["model"]["roc_auc"], abs=1e-9)
    assert set(metrics["model"]) == {
        "roc_auc",
        "roc_auc_ci95",
        "pr_auc",
        "brier",
        "log_loss",
        "ece",
    }
    assert json.loads(json.dumps(metrics)) == metrics


def test_repeats_score_each_deal_once_by_its_mean_out_of_fold_probability() -> None:
    scores = _folded(2, 60, seed=5)
    again = scores.assign(
        probability=1 - scores["probability"], fold=scores["fold"] + 2
    )
    metrics = evaluate_folds(
        pd.concat([scores, again]), EvaluateConfig(n_bootstrap=50), seed=0
    )
    assert metrics["cv"]["folds"] == 4
    # every deal's mean probability is 0.5: the pooled list is all ties
    assert metrics["model"]["pr_auc"] == pytest.approx(scores["won"].mean())
    assert metrics["capacity"]["k"] <= 120


def test_the_hanley_mcneil_width_matches_the_bootstrap_at_the_planned_auc() -> None:
    """The plan's CI width (no training needed) is what the evaluation's bootstrap
    then finds on a window of that size and AUC, within 15%."""
    rng = np.random.default_rng(0)
    won = np.r_[np.ones(159), np.zeros(350)].astype(int)
    # binormal scores with AUC 0.75: separation sqrt(2) * Phi^-1(0.75)
    score = rng.normal(0, 1, won.size) + won * 0.9539
    assert roc_auc_score(won, score) == pytest.approx(0.75, abs=0.03)
    low, high = auc_interval(won, score, 1000, seed=0)
    assert auc_ci_width(159, 350, 0.75) == pytest.approx(high - low, rel=0.15)


def test_a_test_window_of_159_wins_keeps_its_time_split() -> None:
    """The issue's export: 159 wins in the test window gave a CI about 0.1 wide,
    and the old fixed count (300 per outcome) threw the time split away."""
    counts = {
        "train": {"won": 500, "lost": 1100},
        "valid": {"won": 120, "lost": 260},
        "test": {"won": 159, "lost": 350},
    }
    plan = evaluation_plan(counts, "time", AuditConfig())
    assert plan["evaluation"] == "holdout"
    assert plan["test_auc_ci_width"] < 0.1
    tighter = AuditConfig(max_auc_ci_width=0.08)
    assert evaluation_plan(counts, "time", tighter)["evaluation"] == "rolling_origin"
    assert evaluation_plan(counts, "order", tighter)["evaluation"] == "rolling_origin"
    assert evaluation_plan(counts, "random", tighter)["evaluation"] == "repeated_cv"


def test_a_base_rate_shift_is_a_warning() -> None:
    rng = np.random.default_rng(1)
    past = (rng.random(2000) < 0.05).astype(int)
    now = (rng.random(500) < 0.31).astype(int)
    warning = base_rate_shift(past, now, 1.5)
    assert warning is not None and "too low" in warning
    assert "train.calibrate_on: latest" in warning
    assert base_rate_shift(past, (rng.random(500) < 0.05).astype(int), 1.5) is None
    # a big ratio on a handful of deals is chance, not a shift
    assert base_rate_shift(past, np.array([1, 0, 0]), 1.5) is None


def test_miscalibration_on_the_judged_window_is_a_warning() -> None:
    rng = np.random.default_rng(2)
    cfg = EvaluateConfig()
    prob = rng.uniform(0.01, 0.15, 600)
    calibrated = (rng.random(600) < prob).astype(int)
    assert miscalibration(calibrated, prob, cfg, seed=0) is None
    shifted = (rng.random(600) < prob + 0.25).astype(int)
    warning = miscalibration(shifted, prob, cfg, seed=0)
    assert warning is not None and "ECE" in warning
    # a small window's chance error is no miscalibration
    few = np.full(12, 0.5)
    assert (
        miscalibration(np.r_[np.ones(9), np.zeros(3)].astype(int), few, cfg, 0) is None
    )


def test_the_verdict_never_claims_a_win_the_capacity_view_contradicts() -> None:
    metrics = {
        "delta_roc_auc": 0.032,
        "delta_roc_auc_ci95": [0.004, 0.06],
        "capacity": {"k": 2000, "model_wins": 655, "bant_wins": 899},
    }
    warning = capacity_check(metrics)
    assert warning is not None and "655 vs 899" in warning
    assert "beats" not in verdict(metrics) and verdict(metrics).startswith("mixed")
    agreed = metrics | {"capacity": {"k": 2000, "model_wins": 999, "bant_wins": 899}}
    assert capacity_check(agreed) is None
    assert verdict(agreed).startswith("the model beats the rule")
    unclear = agreed | {"delta_roc_auc_ci95": [-0.01, 0.06]}
    assert "no clear difference" in verdict(unclear)


# --- the stages: one plan, one AUC, a refit, on every source ------------------------


def test_every_project_is_judged_by_its_plan_with_one_auc(project: Project) -> None:
    metrics = json.loads(project.path("reports/metrics.json").read_text())
    audit = json.loads(project.path("reports/audit.json").read_text())
    assert metrics["evaluation"] == metrics["plan"]["evaluation"]
    assert metrics["evaluation"] == audit["sufficiency"]["evaluation"]
    if metrics["split"] in ("time", "order"):
        assert metrics["evaluation"] in ("holdout", "rolling_origin")
    low, high = metrics["model"]["roc_auc_ci95"]
    assert low < metrics["model"]["roc_auc"] < high
    assert isinstance(metrics["verdict"], str) and metrics["verdict"]


def test_small_dated_data_is_judged_by_rolling_origin_folds_and_refit(
    synthetic_project: Project, tmp_path: Path
) -> None:
    """800 dated deals: train cross-validates by rolling-origin folds and refits on
    every closed deal; evaluate reads the out-of-fold scores; metrics, table and
    console give one ROC AUC, the folds' mean, and never "time" beside random CV."""
    features = synthetic_project.features()
    closed = features[features["won"].notna()]
    sample = closed.iloc[np.linspace(0, len(closed) - 1, 800).astype(int)]
    sample.to_parquet(tmp_path / "features.parquet", index=False)
    project = synthetic_project.path
    shutil.copy(project("data/features/registry.json"), tmp_path / "registry.json")
    shutil.copy(project("reports/audit.json"), tmp_path / "audit.json")
    raw = read_params_file(project("params.yaml"))
    raw["audit"] |= {"max_auc_ci_width": 0.05, "cv_splits": 3}
    params = parse_params(raw)
    paths = {
        "features": tmp_path / "features.parquet",
        "registry": tmp_path / "registry.json",
        "model": tmp_path / "model",
        "validated": project("data/validated"),
        "audit": tmp_path / "audit.json",
        "metrics": tmp_path / "metrics.json",
        "plots": tmp_path / "plots",
    }
    with project_environment(tmp_path):
        trained = stages.run_train(
            params, paths["features"], paths["registry"], paths["model"]
        )
        metrics = stages.run_evaluate(params, paths)
        exported = stages.run_export(
            params,
            paths | {"scorer": tmp_path / "scorer", "record": tmp_path / "export.json"},
        )
    assert exported["model"] == stages.model_id(paths["model"])
    assert trained["evaluation"] == "rolling_origin"
    assert trained["n_train"] == 800  # refit on every closed deal
    oof = pd.read_parquet(paths["model"] / stages.OUT_OF_FOLD_FILE)
    assert oof["fold"].nunique() == 3 and oof["deal_id"].is_unique
    assert (metrics["split"], metrics["evaluation"]) == ("time", "rolling_origin")
    assert metrics["n_test"] == len(oof) < 800
    auc = metrics["model"]["roc_auc"]
    assert auc == metrics["cv"]["model_roc_auc_mean"]
    assert auc == pytest.approx(np.mean(metrics["cv"]["model_roc_auc_by_fold"]))
    assert json.loads(paths["metrics"].read_text()) == metrics
    printed = CliRunner().invoke(app, ["summary", "--metrics", str(paths["metrics"])])
    assert printed.exit_code == 0, printed.output
    shown = set(re.findall(r"ROC AUC[\s│|]+(0\.\d{3})", printed.output))
    assert shown == {f"{auc:.3f}"}, printed.output
    assert "rolling-origin" in printed.output


def test_the_old_fixed_count_setting_names_its_replacement(
    synthetic_project: Project,
) -> None:
    raw = read_params_file(synthetic_project.path("params.yaml"))
    raw["audit"] = {"min_per_outcome": 300}
    with pytest.raises(ConfigError, match="audit.max_auc_ci_width"):
        parse_params(raw)
