"""The BANT rule: a scikit-learn estimator on deals whose points are counted by hand,
checked against the data before it is used, and scored on every source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from projects import Project
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from typer.testing import CliRunner

from lead_ml.baseline import (
    LETTERS,
    NO_RULE,
    BantRule,
    LetterError,
    bant_scores,
    baseline_of,
    check_rule,
    column_kind,
    compared_with_base_rate,
    condition_holds,
)
from lead_ml.cli import app
from lead_ml.config import BantConfig, parse_condition
from lead_ml.evaluate import evaluate_score_frame, verdict
from lead_ml.model import load_model, predict_proba
from lead_ml.sources import lead_rows
from lead_ml.stages import run_validate
from lead_ml.vocab import ConfigError


@pytest.fixture
def deals() -> pd.DataFrame:
    """Four leads passing 4, 3, 2 and 0 letters of the synthetic CRM's rule."""
    return pd.DataFrame(
        {
            "bant_budget": ["yes", "yes", "no", "unknown"],
            "bant_authority": ["yes", "yes", "yes", None],
            "bant_need": ["yes", "no", "yes", "no"],
            "bant_timeline": ["0-3 months", "3-6 months", "12+ months", None],
            "annual_revenue": [5e6, np.nan, 2e6, 1e5],
        },
        index=pd.Index([101, 205, 17, 3], name="deal_id"),
    )


def test_three_of_four_letters_qualify_a_lead(deals: pd.DataFrame) -> None:
    rule = BantRule(LETTERS).fit(deals)
    np.testing.assert_array_equal(rule.decision_function(deals), [4, 3, 2, 0])
    np.testing.assert_array_equal(rule.predict(deals), [1, 1, 0, 0])


def test_letter_passes_has_one_column_per_letter_and_keeps_the_index(
    deals: pd.DataFrame,
) -> None:
    passes = BantRule(LETTERS).fit(deals).letter_passes(deals)
    assert list(passes.columns) == ["budget", "authority", "need", "timeline"]
    assert passes.index.equals(deals.index)
    assert list(passes.loc[205]) == [True, True, False, True]
    assert all(dtype == np.dtype(bool) for dtype in passes.dtypes)


def test_predict_proba_is_points_over_max_points(deals: pd.DataFrame) -> None:
    rule = BantRule(LETTERS).fit(deals)
    proba = rule.predict_proba(deals)
    np.testing.assert_allclose(proba[:, 1], [1.0, 0.75, 0.5, 0.0])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(rule.classes_, [0, 1])
    assert rule.max_points_ == 4.0


def test_custom_weights_and_threshold(deals: pd.DataFrame) -> None:
    weights = {"budget": 2.0, "authority": 1.0, "need": 1.0, "timeline": 0.5}
    rule = BantRule(LETTERS, weights=weights, threshold=3.5).fit(deals)
    np.testing.assert_array_equal(rule.decision_function(deals), [4.5, 3.5, 2.0, 0.0])
    np.testing.assert_array_equal(rule.predict(deals), [1, 1, 0, 0])


def test_weights_left_out_count_one(deals: pd.DataFrame) -> None:
    rule = BantRule(LETTERS, weights={"budget": 3.0}, threshold=4.0).fit(deals)
    assert rule.weights_ == {
        "budget": 3.0,
        "authority": 1.0,
        "need": 1.0,
        "timeline": 1.0,
    }
    np.testing.assert_array_equal(rule.decision_function(deals), [6, 5, 2, 0])


def test_points_that_sum_to_the_threshold_in_floats_reach_it() -> None:
    # 0.3 + 0.6 is 0.8999999999999999 in floats: both letters must still reach 0.9.
    frame = pd.DataFrame({"a": ["yes", "yes", "no"], "b": ["yes", "no", "yes"]})
    letters = {"budget": "a == 'yes'", "need": "b == 'yes'"}
    rule = BantRule(letters, weights={"budget": 0.3, "need": 0.6}, threshold=0.9)
    np.testing.assert_array_equal(rule.fit(frame).predict(frame), [1, 0, 0])
    cfg = BantConfig(
        letters=letters, weights={"budget": 0.3, "need": 0.6}, threshold=0.9
    )
    np.testing.assert_array_equal(check_rule(cfg, frame).predict(frame), [1, 0, 0])


def test_custom_letters_on_a_numeric_column(deals: pd.DataFrame) -> None:
    letters = {"budget": "annual_revenue >= 1e6", "need": "bant_need == 'yes'"}
    rule = BantRule(letters=letters, threshold=2.0).fit(deals)
    # Lead 205 has no revenue recorded: missing is never evidence.
    np.testing.assert_array_equal(rule.decision_function(deals), [2, 0, 2, 0])
    assert rule.max_points_ == 2.0


def test_unknown_and_missing_never_pass_even_under_a_negated_condition() -> None:
    deals = pd.DataFrame({"bant_budget": ["unknown", None, np.nan, "no", "yes"]})
    rule = BantRule(letters={"budget": "bant_budget != 'no'"}, threshold=1.0)
    passes = rule.fit(deals).letter_passes(deals)
    assert passes["budget"].tolist() == [False, False, False, False, True]


def test_a_missing_cell_leaves_a_comparison_undecided() -> None:
    deals = pd.DataFrame(
        {
            "employees": [500.0, np.nan, 20.0, np.nan],
            "region": pd.Series(["EU", "EU", None, "unknown"], dtype="string"),
        }
    )

    def holds(condition: str) -> list[object]:
        held = condition_holds(parse_condition(condition), deals)
        return [None if value is pd.NA else value for value in held]

    assert holds("employees >= 100") == [True, None, False, None]
    assert holds("not employees >= 100") == [False, None, True, None]
    assert holds("region not in ['US']") == [True, True, None, None]
    # Three-valued and/or: a known answer decides where it can.
    assert holds("employees >= 100 and region == 'EU'") == [True, None, False, None]
    assert holds("employees >= 100 or region == 'EU'") == [True, True, None, None]
    # ...but a letter passes only when every column it reads is known.
    rule = BantRule({"need": "employees >= 100 or region == 'EU'"}, threshold=1)
    assert rule.fit(deals).letter_passes(deals)["need"].tolist() == [
        True,
        False,
        False,
        False,
    ]


def test_chains_dates_bools_and_column_pairs_compare_as_written() -> None:
    deals = pd.DataFrame(
        {
            "size": [5.0, 50.0, 500.0],
            "seats": [10.0, 10.0, 10.0],
            "signed": pd.to_datetime(pd.Series(["2024-01-05", "2024-03-01", None])),
            "trial": pd.Series([True, False, None], dtype="boolean"),
        }
    )
    letters = {
        "budget": "10 <= size < 100",
        "authority": "signed >= '2024-02-01'",
        "need": "trial == True",
        "timeline": "size > seats",
    }
    passes = BantRule(letters, threshold=1).fit(deals).letter_passes(deals)
    assert passes.to_dict("list") == {
        "budget": [False, True, False],
        "authority": [False, True, False],
        "need": [True, False, False],
        "timeline": [False, True, True],
    }
    with pytest.raises(LetterError, match="'soon' is not a date"):
        BantRule({"timeline": "signed < 'soon'"}, threshold=1).fit(deals)


def test_backticked_column_names_are_read(deals: pd.DataFrame) -> None:
    renamed = deals.rename(columns={"annual_revenue": "annual revenue"})
    rule = BantRule(letters={"budget": "`annual revenue` > 1e6"}, threshold=1.0)
    np.testing.assert_array_equal(rule.fit(renamed).predict(renamed), [1, 0, 1, 0])


def test_missing_column_is_named_with_its_letter(deals: pd.DataFrame) -> None:
    rule = BantRule(letters={"need": "pain_level >= 3"}, threshold=1.0)
    with pytest.raises(ValueError, match=r"'need'.*pain_level >= 3.*\['pain_level'\]"):
        rule.fit(deals)


def test_missing_column_at_predict_time_is_named(deals: pd.DataFrame) -> None:
    rule = BantRule(LETTERS).fit(deals)
    with pytest.raises(ValueError, match="bant_need"):
        rule.predict(deals.drop(columns="bant_need"))


def test_bad_expression_names_the_letter_and_expression(deals: pd.DataFrame) -> None:
    rule = BantRule(letters={"timeline": "bant_timeline =="}, threshold=1.0)
    with pytest.raises(ValueError, match=r"'timeline'.*bant_timeline =="):
        rule.fit(deals)


@pytest.mark.parametrize(
    ("condition", "said"),
    [
        ("annual_revenue", "`annual_revenue` is not a true/false condition"),
        ("annual_revenue * 2 > 1", "`annual_revenue * 2` is arithmetic"),
        ("bant_need.str.startswith('y')", "`bant_need.str` is an attribute"),
    ],
)
def test_a_condition_outside_the_grammar_is_refused_at_fit(
    deals: pd.DataFrame, condition: str, said: str
) -> None:
    rule = BantRule(letters={"budget": condition}, threshold=1.0)
    with pytest.raises(LetterError, match="'budget'") as caught:
        rule.fit(deals)
    assert said in str(caught.value)
    assert caught.value.letter == "budget"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"letters": {"bogus": "x == 1"}}, "subset"),
        ({"letters": {}}, "subset"),
        ({"weights": {"budget": float("nan")}}, "'budget' needs a finite weight"),
        ({"weights": dict.fromkeys(LETTERS, -1)}, ">= 0"),
        ({"threshold": 4.5}, "at most the sum"),
        ({"threshold": 0}, "above 0"),
    ],
)
def test_bad_params_raise_at_fit(
    deals: pd.DataFrame, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        BantRule(**({"letters": LETTERS} | params)).fit(deals)


def test_not_fitted_raises_sklearns_error(deals: pd.DataFrame) -> None:
    with pytest.raises(NotFittedError):
        BantRule(LETTERS).predict(deals)


def test_non_frame_input_is_rejected() -> None:
    with pytest.raises(TypeError, match="DataFrame"):
        BantRule(LETTERS).fit(np.zeros((2, 4)))  # type: ignore[arg-type]


def test_input_frame_is_not_mutated(deals: pd.DataFrame) -> None:
    before = deals.copy()
    rule = BantRule(LETTERS).fit(deals)
    rule.predict(deals)
    rule.predict_proba(deals)
    rule.letter_passes(deals)
    pd.testing.assert_frame_equal(deals, before)


def test_init_only_stores_arguments_and_clone_works(deals: pd.DataFrame) -> None:
    letters = {"budget": "bant_budget == 'yes'"}
    rule = BantRule(letters=letters, threshold=1.0)
    assert rule.get_params() == {"letters": letters, "weights": None, "threshold": 1.0}
    copy = clone(rule.fit(deals))
    assert copy.get_params() == rule.get_params()
    assert not hasattr(copy, "letters_")


def test_from_config_is_the_rule_params_describe(deals: pd.DataFrame) -> None:
    cfg = BantConfig(letters=LETTERS, threshold=2.0)
    rule = BantRule.from_config(cfg).fit(deals)
    assert rule.letters_ == dict(cfg.letters)
    assert rule.weights_ == dict.fromkeys(LETTERS, 1.0)
    np.testing.assert_array_equal(rule.predict(deals), [1, 1, 1, 0])


def test_y_is_ignored(deals: pd.DataFrame) -> None:
    with_y = BantRule(LETTERS).fit(deals, y=[0, 1, 0, 1]).predict(deals)
    without_y = BantRule(LETTERS).fit(deals).predict(deals)
    np.testing.assert_array_equal(with_y, without_y)


# --- checked against the data before it is used ---------------------------------


def test_check_rule_names_a_missing_column_and_the_closest_one(
    deals: pd.DataFrame,
) -> None:
    cfg = BantConfig(letters={"need": "bant_ned == 'yes'"}, threshold=1)
    with pytest.raises(ConfigError) as caught:
        check_rule(cfg, deals)
    message = str(caught.value)
    assert message.startswith("bant.letters.need: \"bant_ned == 'yes'\" reads column")
    assert "(did you mean 'bant_need'?)" in message


def test_check_rule_lists_the_values_of_a_letter_no_deal_passes(
    deals: pd.DataFrame,
) -> None:
    cfg = BantConfig(letters={"budget": "bant_budget == 'Yes'"}, threshold=1)
    with pytest.raises(ConfigError) as caught:
        check_rule(cfg, deals)
    message = str(caught.value)
    assert message.startswith("bant.letters.budget: ")
    assert "is true for no deal" in message and "case matters" in message
    assert "bant_budget: 'yes' (2), 'no' (1), 'unknown' (1)" in message


@pytest.mark.parametrize(
    ("condition", "said"),
    [
        (
            "annual_revenue >= '1e6'",
            "compares 'annual_revenue', a number column, with '1e6' (text); write "
            "the number unquoted",
        ),
        (
            "bant_need == 1",
            "compares 'bant_need', a text column, with 1 (number); quote the value",
        ),
        ("bant_need in ['yes', 0]", "with 0 (number)"),
        ("annual_revenue > bant_need", "'annual_revenue' (number) with 'bant_need'"),
    ],
)
def test_check_rule_names_a_value_of_the_wrong_kind_for_its_column(
    deals: pd.DataFrame, condition: str, said: str
) -> None:
    # Unchecked, text against a number is "never equal" (a letter nobody passes) or
    # a TypeError deep in pandas.
    cfg = BantConfig(letters={"budget": condition}, threshold=1)
    with pytest.raises(ConfigError) as caught:
        check_rule(cfg, deals)
    message = str(caught.value)
    assert message.startswith(f"bant.letters.budget: {condition!r}: it ")
    assert said in message


def test_check_rule_returns_the_fitted_rule(deals: pd.DataFrame) -> None:
    rule = check_rule(BantConfig(letters=LETTERS, threshold=3), deals)
    np.testing.assert_array_equal(rule.predict(deals), [1, 1, 0, 0])


# --- every source -------------------------------------------------------------------


def test_every_source_rule_holds_and_scores_each_deal_by_id(project: Project) -> None:
    params, deals = project.params, project.deals()
    assert params.bant is not None, "every shipped source gives a rule"
    rows = lead_rows(deals.frame, params.source)
    rule = check_rule(params.bant, rows)
    scores = bant_scores(params.bant, params.source, deals.frame)
    assert list(scores.index) == deals.frame["deal_id"].tolist()
    assert list(scores.columns) == ["bant_points", "bant_qualified"]
    np.testing.assert_array_equal(scores["bant_points"], rule.decision_function(rows))
    assert scores["bant_points"].between(0, sum(params.bant.weights.values())).all()
    reached = scores["bant_points"] >= params.bant.threshold
    assert scores["bant_qualified"].tolist() == reached.tolist()
    # the rule tells leads apart: some qualify, some do not
    assert 0 < scores["bant_qualified"].mean() < 1


# --- no rule: the base rate -----------------------------------------------------------


def test_without_a_rule_the_model_is_compared_with_the_base_rate(
    project: Project, tmp_path: Path
) -> None:
    """An export with no BANT-like fields: params without ``bant`` validate the
    deals, every deal is alike to the baseline (0 points, none qualified), and the
    metrics compare the model with the base rate and say that no rule was given;
    so does `lead-ml summary`."""
    params = project.params.model_copy(update={"bant": None})
    summary = run_validate(
        params, project.path("data/tables"), tmp_path / "v", tmp_path / "rejects.csv"
    )
    assert summary == project.deals().summary
    deals = project.deals().frame
    scores = bant_scores(None, params.source, deals)
    assert list(scores.index) == deals["deal_id"].tolist()
    assert (scores["bant_points"] == 0).all() and not scores["bant_qualified"].any()

    features = project.features()
    closed = features[features["won"].notna()].reset_index(drop=True)
    frame = pd.DataFrame(
        {
            "won": closed["won"].to_numpy(int),
            "probability": predict_proba(
                load_model(project.path("models/model")), closed
            ),
            "bant_points": scores.loc[closed["deal_id"], "bant_points"].to_numpy(),
            "bant_qualified": scores.loc[
                closed["deal_id"], "bant_qualified"
            ].to_numpy(),
            "amount": closed["amount"].to_numpy(float),
        }
    )
    metrics = compared_with_base_rate(
        evaluate_score_frame(frame, params.evaluate, params.seed)
    )
    won = frame["won"].to_numpy()
    assert metrics["bant"] is None
    assert metrics["baseline"] == baseline_of(None) | {
        "roc_auc": 0.5,
        "pr_auc": pytest.approx(won.mean()),
    }
    assert metrics["baseline"]["note"] == NO_RULE and "no BANT rule" in NO_RULE
    model_auc = metrics["model"]["roc_auc"]
    assert metrics["delta_roc_auc"] == pytest.approx(model_auc - 0.5)
    capacity = metrics["capacity"]
    # nothing qualifies: the reps work as many leads as won
    assert capacity["k"] == won.sum()
    assert capacity["base_rate_wins"] == pytest.approx(won.sum() * won.mean())
    assert not any(key.startswith("bant_") for key in capacity)
    assert verdict(metrics).startswith("the model beats the base rate")

    path = tmp_path / "metrics.json"
    path.write_text(
        json.dumps(
            metrics
            | {"n_test": len(frame), "test_start": "", "test_end": "", "warnings": []}
        )
    )
    result = CliRunner().invoke(app, ["summary", "--metrics", str(path)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "Model vs the base rate" in said and "base rate" in said
    assert "No BANT rule was given" in said and "BANT rule" not in said.replace(
        "No BANT rule", ""
    )
    assert f"{capacity['base_rate_wins']:.0f} ({won.mean():.1%})" in said


def _never_true(project: Project) -> tuple[str, str]:
    """A letter of the project's rule rewritten to be true for no deal: (letter,
    condition)."""
    rule = project.params.bant
    assert rule is not None
    letter, columns = next(iter(rule.letter_columns().items()))
    rows = lead_rows(project.deals().frame, project.params.source)
    column = columns[0]
    if column_kind(rows[column]) == "number":
        return letter, f"`{column}` > 1e300"
    return letter, f"`{column}` == 'a value the export never holds'"


def test_check_config_given_the_files_finds_a_letter_true_for_no_deal(
    project: Project, tmp_path: Path
) -> None:
    """Before the pipeline runs (`lead-ml check-config` with the files), not only
    at validate or audit."""
    raw = yaml.safe_load(project.path("params.yaml").read_text())
    runner = CliRunner()
    checked = runner.invoke(
        app, ["check-config", "--params", str(project.path("params.yaml"))]
    )
    assert checked.exit_code == 0, checked.output
    assert "every BANT letter is true for some deal" in " ".join(checked.output.split())

    letter, condition = _never_true(project)
    raw["bant"]["letters"][letter] = condition
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    result = runner.invoke(app, ["check-config", "--params", str(path)])
    said = " ".join(result.output.split())
    assert result.exit_code == 2, said
    assert f"bant.letters.{letter}:" in said and "is true for no deal" in said
    assert "Traceback" not in result.output
    # the header check alone cannot know
    headers = runner.invoke(app, ["check-config", "--no-data", "--params", str(path)])
    assert headers.exit_code == 0, headers.output

    raw.pop("bant")
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    result = runner.invoke(app, ["check-config", "--params", str(path)])
    assert result.exit_code == 0, result.output
    assert "no BANT rule was given" in " ".join(result.output.split())
