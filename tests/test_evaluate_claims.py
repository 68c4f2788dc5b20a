"""What the evaluation tells a user in words: the verdict, and the warnings of a
base-rate shift, miscalibration and a capacity view that contradicts the AUC gain.
Each case's numbers are worked out by hand in the test."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from lead_ml.config import EvaluateConfig
from lead_ml.evaluate import (
    auc_interval,
    base_rate_shift,
    capacity_check,
    capacity_view,
    chance_ece,
    classification_metrics,
    evaluate_scores,
    evaluation_warnings,
    expected_calibration_error,
    miscalibration,
    paired_bootstrap_auc_delta,
    plot_data,
    verdict,
)


def _outcomes(wins: int, n: int) -> np.ndarray:
    return np.r_[np.ones(wins, int), np.zeros(n - wins, int)]


# --- the verdict ----------------------------------------------------------------


def _judged(low: float, high: float, model: int | None, rule: int | None) -> str:
    capacity: dict[str, Any] = {"k": 2000}
    if model is not None:
        capacity["model_wins"] = model
    if rule is not None:
        capacity["bant_wins"] = rule
    return verdict({"delta_roc_auc_ci95": [low, high], "capacity": capacity})


@pytest.mark.parametrize(
    ("low", "high", "model", "rule", "said"),
    [
        # a tie in the top k does not contradict a higher AUC
        (
            0.01,
            0.05,
            899,
            899,
            "the model beats the rule: more wins in the top 2,000, higher AUC",
        ),
        (
            -0.05,
            -0.01,
            899,
            899,
            "the rule beats the model: more wins in the top 2,000, higher AUC",
        ),
        (
            0.01,
            0.05,
            655,
            899,
            "mixed: the model ranks better overall but the rule "
            "puts more wins in the top 2,000",
        ),
        (
            -0.05,
            -0.01,
            999,
            899,
            "mixed: the rule ranks better overall but the model "
            "puts more wins in the top 2,000",
        ),
        # a CI touching 0 is no gain, whatever the top k says
        (0.0, 0.05, 999, 899, "no clear difference: the AUC gain's 95% CI includes 0"),
        (-0.05, 0.0, 655, 899, "no clear difference: the AUC gain's 95% CI includes 0"),
        (0.0, 0.05, 655, 899, "no clear difference: the AUC gain's 95% CI includes 0"),
        (-0.05, 0.0, 999, 899, "no clear difference: the AUC gain's 95% CI includes 0"),
        (0.01, 0.05, None, 899, "no rule to compare"),
        (0.01, 0.05, 899, None, "no rule to compare"),
    ],
)
def test_the_verdict_claims_what_the_ci_and_the_top_k_both_support(
    low: float, high: float, model: int | None, rule: int | None, said: str
) -> None:
    assert _judged(low, high, model, rule) == said


def test_without_a_rule_the_verdict_is_against_the_base_rate() -> None:
    metrics = {
        "delta_roc_auc_ci95": [0.1, 0.2],
        "capacity": {"k": 100, "model_wins": 60, "base_rate_wins": 25.0},
    }
    assert verdict(metrics) == (
        "the model beats the base rate: 60 wins in the top 100 against 25 by chance"
    )


# --- capacity -------------------------------------------------------------------


def test_a_gain_the_top_k_contradicts_is_warned_of_either_way() -> None:
    better = {
        "delta_roc_auc": 0.032,
        "capacity": {"k": 2000, "model_wins": 655, "bant_wins": 1899},
    }
    assert capacity_check(better) == (
        "capacity: the model ranks better overall (ROC AUC +0.032) but puts fewer "
        "wins in the top 2,000 leads than the rule (655 vs 1,899): at this capacity "
        "the rule is the better list"
    )
    worse = {
        "delta_roc_auc": -0.021,
        "capacity": {"k": 2000, "model_wins": 1200, "bant_wins": 899},
    }
    assert capacity_check(worse) == (
        "capacity: the model ranks worse overall (ROC AUC -0.021) yet puts more "
        "wins in the top 2,000 leads than the rule (1,200 vs 899): its gain holds "
        "at this capacity only"
    )


@pytest.mark.parametrize(
    "metrics",
    [
        {"delta_roc_auc": 0.0, "capacity": {"k": 9, "model_wins": 1, "bant_wins": 5}},
        {"delta_roc_auc": 0.0, "capacity": {"k": 9, "model_wins": 5, "bant_wins": 1}},
        {"delta_roc_auc": 0.1, "capacity": {"k": 9, "model_wins": 5, "bant_wins": 5}},
        {"delta_roc_auc": -0.1, "capacity": {"k": 9, "model_wins": 5, "bant_wins": 5}},
        {"delta_roc_auc": 0.1, "capacity": {"k": 9, "bant_wins": 5}},
        {"delta_roc_auc": 0.1, "capacity": {"k": 9, "model_wins": 1}},
    ],
)
def test_no_capacity_warning_without_a_contradiction(metrics: dict[str, Any]) -> None:
    assert capacity_check(metrics) is None


# --- a base-rate shift ------------------------------------------------------------


def test_a_base_rate_shift_names_both_rates_the_ratio_and_the_direction() -> None:
    """5% of 1,000 training deals won, 31% of 1,000 judged ones: z is about 15."""
    up = base_rate_shift(_outcomes(50, 1000), _outcomes(310, 1000), 1.5)
    assert up == (
        "base-rate shift: 31.0% of the judged deals won against 5.0% of the training "
        "deals (6.2x): scores calibrated on the past are too low now; consider "
        "train.calibrate_on: latest (Platt fit on the latest labelled window)"
    )
    down = base_rate_shift(_outcomes(310, 1000), _outcomes(50, 1000), 1.5)
    assert down is not None and down.startswith(
        "base-rate shift: 5.0% of the judged deals won against 31.0% of the training "
        "deals (0.2x): scores calibrated on the past are too high now"
    )


def test_a_ratio_equal_to_the_limit_is_a_shift() -> None:
    """20% against 10% of 1,000 deals each (z about 6.3): a ratio of exactly 2 (or
    1/2) is at the limit max_ratio=2, and the limit warns."""
    ten, twenty = _outcomes(100, 1000), _outcomes(200, 1000)
    assert base_rate_shift(ten, twenty, 2.0) is not None
    assert base_rate_shift(twenty, ten, 2.0) is not None
    assert base_rate_shift(ten, twenty, 2.01) is None
    assert base_rate_shift(twenty, ten, 2.01) is None


def test_a_shift_just_beyond_chance_is_one() -> None:
    """20 of 300 training deals won, 43 of 300 judged: pooled 63/600, and
    z = (43 - 20) / 300 / sqrt(0.105 * 0.895 * 2 / 300) = 3.06, just above 3."""
    pooled = 63 / 600
    z = (43 / 300 - 20 / 300) / np.sqrt(pooled * (1 - pooled) * (2 / 300))
    assert 3.0 < z < 3.08
    warning = base_rate_shift(_outcomes(20, 300), _outcomes(43, 300), 1.5)
    assert warning is not None and "14.3% of the judged deals" in warning
    assert base_rate_shift(_outcomes(20, 300), _outcomes(42, 300), 1.5) is None


def test_a_large_ratio_within_chance_is_no_shift() -> None:
    """1 of 20 against 5 of 20: five times the rate, but z = 0.2 / sqrt(0.15 *
    0.85 * 0.1) = 1.77, within chance."""
    pooled = 6 / 40
    z = (5 / 20 - 1 / 20) / np.sqrt(pooled * (1 - pooled) * (2 / 20))
    assert 1.7 < z < 1.8
    assert base_rate_shift(_outcomes(1, 20), _outcomes(5, 20), 1.5) is None


def test_training_deals_without_a_win_still_give_a_ratio() -> None:
    warning = base_rate_shift(np.zeros(1000, int), _outcomes(100, 1000), 1.5)
    assert warning is not None
    assert warning.startswith(
        "base-rate shift: 10.0% of the judged deals won against 0.0% of the "
        "training deals (100000000.0x)"
    )
    assert base_rate_shift(np.zeros(50, int), np.zeros(50, int), 1.5) is None


# --- miscalibration ---------------------------------------------------------------


def test_chance_ece_is_the_95th_percentile_of_a_binomial_deviation() -> None:
    """One probability, 0.2, for 1,000 deals: one bin, and a calibrated model's
    ECE there is |wins - 200| / 1000 with wins ~ Binomial(1000, 0.2), whose 95th
    percentile is about 1.96 * sqrt(160) / 1000 = 0.0248."""
    noise = chance_ece(np.full(1000, 0.2), 10, seed=0)
    assert 0.021 < noise < 0.029
    # in two bins the two groups' deviations add up and cannot cancel: a larger
    # chance error than the same deals in one bin
    split = chance_ece(np.r_[np.full(500, 0.15), np.full(500, 0.25)], 10, seed=0)
    one_bin = chance_ece(np.r_[np.full(500, 0.15), np.full(500, 0.25)], 1, seed=0)
    assert split > one_bin * 1.1
    assert chance_ece(np.full(1000, 0.2), 10, seed=0) == noise


def test_miscalibration_is_warned_of_above_the_limit_only() -> None:
    """All 1,000 judged deals won at 0.5 each: ECE = |500 - 1000| / 1000 = 0.5."""
    won, prob = np.ones(1000, int), np.full(1000, 0.5)
    noise = chance_ece(prob, 10, seed=3)
    assert noise < 0.05
    warning = miscalibration(won, prob, EvaluateConfig(max_ece=0.4), seed=3)
    assert warning == (
        "miscalibration: calibration error (ECE) 0.500 on the judged deals, above "
        f"evaluate.max_ece=0.4 and the {noise:.3f} a calibrated model shows by "
        "chance on 1,000 deals: mean predicted 50.0% against 100.0% won; read "
        "probabilities as ranks, or set train.calibrate_on: latest"
    )
    assert miscalibration(won, prob, EvaluateConfig(max_ece=0.5), seed=3) is None


def test_the_bins_of_the_config_are_the_bins_of_the_warning() -> None:
    """Half the deals at 0.1 (none won), half at 0.3 (all won). With ten bins they
    fall in two bins and the gaps add: (|50 - 0| + |150 - 500|) / 1000 = 0.4; with
    two bins they share one and partly cancel: |200 - 500| / 1000 = 0.3. The limit
    0.35 lies between."""
    prob = np.r_[np.full(500, 0.1), np.full(500, 0.3)]
    won = np.r_[np.zeros(500, int), np.ones(500, int)]
    ten = miscalibration(won, prob, EvaluateConfig(max_ece=0.35), seed=0)
    assert ten is not None and "(ECE) 0.400" in ten
    assert (
        miscalibration(
            won, prob, EvaluateConfig(max_ece=0.35, calibration_bins=2), seed=0
        )
        is None
    )


# --- the warnings together --------------------------------------------------------


def test_the_evaluation_lists_each_warning_that_applies_in_order() -> None:
    judged = pd.DataFrame(
        {"won": np.ones(1000, int), "probability": np.full(1000, 0.5)}
    )
    train_won = _outcomes(100, 1000)
    cfg = EvaluateConfig(max_ece=0.4)
    contradicted = {
        "bant": {"roc_auc": 0.6},
        "delta_roc_auc": 0.05,
        "capacity": {"k": 50, "model_wins": 10, "bant_wins": 20},
    }
    warnings = evaluation_warnings(contradicted, train_won, judged, cfg, seed=3)
    assert [w.split(":")[0] for w in warnings] == [
        "base-rate shift",
        "miscalibration",
        "capacity",
    ]
    assert warnings[0] == base_rate_shift(train_won, np.ones(1000, int), 1.5)
    assert warnings[1] == miscalibration(
        np.ones(1000, int), np.full(1000, 0.5), cfg, seed=3
    )
    assert warnings[2] == capacity_check(contradicted)
    # without a rule there is no rule's top k to contradict
    no_rule = contradicted | {"bant": None}
    assert len(evaluation_warnings(no_rule, train_won, judged, cfg, seed=3)) == 2
    calm = pd.DataFrame(
        {"won": _outcomes(100, 1000), "probability": np.full(1000, 0.1)}
    )
    agreed = contradicted | {"capacity": {"k": 50, "model_wins": 20, "bant_wins": 9}}
    assert evaluation_warnings(agreed, train_won, calm, cfg, seed=3) == []


# --- inputs, bins and bands -------------------------------------------------------

WON = [0, 1, 0, 1]
GOOD = [0.2, 0.7, 0.4, 0.9]
SHORT = [0.5, 0.5]
CFG = EvaluateConfig(n_bootstrap=50)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: classification_metrics(WON, SHORT), "prob must be 4 finite numbers"),
        (
            lambda: paired_bootstrap_auc_delta(WON, SHORT, GOOD, 50, 0),
            "score_model must be 4 finite numbers",
        ),
        (
            lambda: paired_bootstrap_auc_delta(WON, GOOD, SHORT, 50, 0),
            "score_baseline must be 4 finite numbers",
        ),
        (lambda: auc_interval(WON, SHORT, 50, 0), "score must be 4 finite numbers"),
        (
            lambda: capacity_view(WON, SHORT, GOOD, 2, 0),
            "model_score must be 4 finite numbers",
        ),
        (
            lambda: capacity_view(WON, GOOD, SHORT, 2, 0),
            "bant_points must be 4 finite numbers",
        ),
        (
            lambda: capacity_view(WON, GOOD, GOOD, 2, 0, amount=SHORT),
            "amount must have 4 values, one per outcome",
        ),
        (lambda: plot_data(WON, SHORT, GOOD, 2, 2), "prob must be 4 finite numbers"),
        (
            lambda: miscalibration(WON, SHORT, CFG, 0),
            "prob must be 4 finite numbers",
        ),
        (
            lambda: plot_data(WON, GOOD, SHORT, 2, 2),
            "bant_points must be 4 finite numbers",
        ),
        (
            lambda: evaluate_scores(WON, GOOD, SHORT, WON, CFG, 0),
            "bant_points must be 4 finite numbers",
        ),
        (
            lambda: evaluate_scores(WON, GOOD, GOOD, SHORT, CFG, 0),
            "bant_qualified must be 4 finite numbers",
        ),
        (
            lambda: classification_metrics([[0, 1], [1, 0]], [[0.5, 0.5]] * 2),
            "y_true must be a non-empty 1-d array of 0/1 outcomes",
        ),
        (
            lambda: classification_metrics([1, 1], [0.5, 0.5]),
            r"y_true needs both won \(1\) and lost \(0\) deals to rank them",
        ),
        (
            lambda: expected_calibration_error(WON, GOOD, n_bins=0),
            "n_bins must be at least 1; got 0",
        ),
        (
            lambda: expected_calibration_error(WON, [0.2, 0.7, 0.4, 1.5]),
            r"probabilities must lie in \[0, 1\]",
        ),
        (
            lambda: plot_data(WON, GOOD, GOOD, 2, 5),
            "n_bands must be between 1 and the 4 leads",
        ),
        (
            lambda: plot_data(WON, GOOD, GOOD, 2, 0),
            "n_bands must be between 1 and the 4 leads",
        ),
    ],
)
def test_bad_inputs_name_the_argument_and_what_it_must_be(
    call: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        call()


def test_ece_uses_ten_bins_unless_told_and_one_bin_is_allowed() -> None:
    """0.18 and 0.19 share a bin of ten (|0.37 - 1| / 2 = 0.315) and not of eleven;
    0.1 and 0.3 are apart in ten bins ((0.1 + 0.7) / 2 = 0.4), together in two
    (0.3). One bin is the gap of the means; a probability of 0 is allowed."""
    assert expected_calibration_error([0, 1], [0.18, 0.19]) == pytest.approx(0.315)
    assert classification_metrics([0, 1], [0.18, 0.19])["ece"] == pytest.approx(0.315)
    assert classification_metrics([0, 1], [0.1, 0.3])["ece"] == pytest.approx(0.4)
    assert classification_metrics([0, 1], [0.1, 0.3], 2)["ece"] == pytest.approx(0.3)
    assert expected_calibration_error(
        [0, 1, 1], [0.0, 0.9, 0.3], n_bins=1
    ) == pytest.approx(abs(1.2 / 3 - 2 / 3))


def test_the_calibration_plot_numbers_its_bins_from_one_to_n_bins() -> None:
    frames = plot_data(
        [0, 0, 1, 1], [0.05, 0.15, 0.95, 1.0], [1.0, 2.0, 3.0, 4.0], 10, 2
    )
    table = frames["calibration"]
    assert table["bin"].tolist() == [1, 2, 10]
    assert table["count"].tolist() == [1, 1, 2]
    assert table["mean_predicted"].tolist() == pytest.approx([0.05, 0.15, 0.975])
    assert table["observed_rate"].tolist() == [0.0, 0.0, 1.0]


def test_bands_are_whole_numbers_one_band_or_one_lead_a_band_allowed() -> None:
    won, prob = [0, 1, 0, 1, 1], [0.1, 0.9, 0.3, 0.6, 0.8]
    one = plot_data(won, prob, prob, 2, 1)["win_rate_by_band"]
    assert one[["band", "n", "wins"]].to_numpy().tolist() == [[1, 5, 3]]
    each = plot_data(won, prob, prob, 2, 5)["win_rate_by_band"]
    assert each["band"].dtype.kind == "i"
    # band 1 the highest score: 0.9, 0.8, 0.6, 0.3, 0.1
    assert each["wins"].tolist() == [1, 1, 1, 0, 0]
    assert each["max_score"].tolist() == [0.9, 0.8, 0.6, 0.3, 0.1]


def test_auc_delta_of_a_hand_counted_ranking() -> None:
    """Won 3, 4, 6 of six leads scored 1..6: 7 of 9 won-lost pairs in order, AUC
    7/9 against a rule that ties everyone (0.5); reversed, 2/9 - 0.5."""
    won = [0, 0, 1, 1, 0, 1]
    ahead = paired_bootstrap_auc_delta(won, [1, 2, 3, 4, 5, 6], [0] * 6, 100, 0)
    assert ahead["delta_roc_auc"] == pytest.approx(7 / 9 - 0.5)
    behind = paired_bootstrap_auc_delta(won, [6, 5, 4, 3, 2, 1], [0] * 6, 100, 0)
    assert behind["delta_roc_auc"] == pytest.approx(2 / 9 - 0.5)
    rng = np.random.default_rng(4)
    many, score = (rng.random(80) < 0.4).astype(int), rng.random(80)
    runs = [auc_interval(many, score, 200, 7) for _ in "abc"]
    assert runs[0] == runs[1] == runs[2]


def test_a_bootstrap_of_one_class_resamples_only_says_to_add_rows() -> None:
    """Two leads, one resample: a resample drawing one lead twice has one class.
    Whichever seeds draw it, the error says what to do."""
    said = set()
    for seed in range(20):
        try:
            paired_bootstrap_auc_delta([0, 1], [0.2, 0.8], [1, 2], 1, seed)
        except ValueError as error:
            said.add(str(error))
    assert said == {"every bootstrap resample had one class only; add more rows"}


def test_cumulative_gains_every_percent_with_ties_shared() -> None:
    """Scores 3, 2, 1, 1 for lost, won, won, lost: the top quarter holds no win,
    the top half one of two; the last two tie, so the curve rises linearly
    across them (0.75 of leads: 0.75 of wins)."""
    frames = plot_data([0, 1, 1, 0], [0.9, 0.6, 0.2, 0.2], [3, 2, 1, 1], 2, 2)
    gains = frames["gains"]
    model = gains[gains["approach"] == "model"].set_index("share_of_leads")
    assert len(model) == 101 and len(gains) == 202
    curve = model["share_of_wins"]
    assert curve.loc[0.0] == 0.0 and curve.loc[1.0] == 1.0
    assert curve.loc[0.25] == pytest.approx(0.0)
    assert curve.loc[0.5] == pytest.approx(0.5)
    assert curve.loc[0.75] == pytest.approx(0.75)


def test_evaluate_scores_reports_the_rule_and_counts_k_without_a_rule() -> None:
    """The rule's AUC by hand: points 1, 3, 3, 4 for lost, won, lost, won: pairs
    (3 > 1), (3 = 3: half), (4 > 1), (4 > 3): 3.5 of 4. With nothing qualified k
    is the wins, at least 1."""
    metrics = evaluate_scores(
        WON, GOOD, [1, 3, 3, 4], [0, 1, 1, 1], EvaluateConfig(n_bootstrap=50), 0
    )
    assert metrics["bant"]["roc_auc"] == pytest.approx(3.5 / 4)
    # average precision: won at ranks 1 and 2-3 (tied): (1/1 + 2/3) / 2
    assert metrics["bant"]["pr_auc"] == pytest.approx((1 + 2 / 3) / 2)
    assert metrics["bant"]["qualified_share"] == 0.75
    nothing = [0, 0, 0, 0]
    three = evaluate_scores(
        [1, 1, 0, 1], GOOD, nothing, nothing, EvaluateConfig(n_bootstrap=50), 0
    )
    assert three["capacity"]["k"] == 3
    one = evaluate_scores(
        [1, 0, 0, 0], GOOD, nothing, nothing, EvaluateConfig(n_bootstrap=50), 0
    )
    assert one["capacity"]["k"] == 1
    binned = evaluate_scores(
        [0, 1],
        [0.1, 0.3],
        [1, 2],
        [0, 1],
        EvaluateConfig(n_bootstrap=50, calibration_bins=2),
        0,
    )
    assert binned["model"]["ece"] == pytest.approx(0.3)


def test_the_rules_ties_are_broken_by_the_seed_alone() -> None:
    """Eight leads the rule ties, k = 3: which three it takes depends on the seed,
    and the same seed takes the same three."""
    won = [1, 0, 1, 0, 1, 0, 1, 0]
    prob = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
    flat = [1.0] * 8
    cfg = EvaluateConfig(n_bootstrap=50, capacity=3)
    runs = [
        evaluate_scores(won, prob, flat, flat, cfg, 5)["capacity"] for _ in "abcdef"
    ]
    assert all(run == runs[0] for run in runs)
