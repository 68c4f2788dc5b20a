"""The BANT rule estimator on deals where the points can be counted by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from lead_ml.baseline import BantRule
from lead_ml.config import BantConfig


@pytest.fixture
def deals() -> pd.DataFrame:
    """Four leads passing 4, 3, 2 and 0 letters under the default rule."""
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


def test_default_rule_passes_leads_with_three_or_more_letters(
    deals: pd.DataFrame,
) -> None:
    rule = BantRule().fit(deals)

    np.testing.assert_array_equal(rule.decision_function(deals), [4, 3, 2, 0])
    np.testing.assert_array_equal(rule.predict(deals), [1, 1, 0, 0])


def test_letter_passes_has_one_column_per_letter_and_keeps_the_index(
    deals: pd.DataFrame,
) -> None:
    passes = BantRule().fit(deals).letter_passes(deals)

    assert list(passes.columns) == ["budget", "authority", "need", "timeline"]
    assert passes.index.equals(deals.index)
    assert list(passes.loc[205]) == [True, True, False, True]
    assert all(dtype == np.dtype(bool) for dtype in passes.dtypes)


def test_predict_proba_is_points_over_max_points(deals: pd.DataFrame) -> None:
    rule = BantRule().fit(deals)

    proba = rule.predict_proba(deals)

    np.testing.assert_allclose(proba[:, 1], [1.0, 0.75, 0.5, 0.0])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(rule.classes_, [0, 1])
    assert rule.max_points_ == 4.0


def test_custom_weights_and_threshold(deals: pd.DataFrame) -> None:
    weights = {"budget": 2.0, "authority": 1.0, "need": 1.0, "timeline": 0.5}
    rule = BantRule(weights=weights, threshold=3.5).fit(deals)

    np.testing.assert_array_equal(rule.decision_function(deals), [4.5, 3.5, 2.0, 0.0])
    np.testing.assert_array_equal(rule.predict(deals), [1, 1, 0, 0])


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


def test_backticked_column_names_are_read(deals: pd.DataFrame) -> None:
    renamed = deals.rename(columns={"annual_revenue": "annual revenue"})
    rule = BantRule(letters={"budget": "`annual revenue` > 1e6"}, threshold=1.0)

    np.testing.assert_array_equal(rule.fit(renamed).predict(renamed), [1, 0, 1, 0])


def test_missing_column_is_named_with_its_letter(deals: pd.DataFrame) -> None:
    rule = BantRule(letters={"need": "pain_level >= 3"}, threshold=1.0)

    with pytest.raises(ValueError, match=r"'need'.*pain_level >= 3.*\['pain_level'\]"):
        rule.fit(deals)


def test_missing_column_at_predict_time_is_named(deals: pd.DataFrame) -> None:
    rule = BantRule().fit(deals)

    with pytest.raises(ValueError, match="bant_need"):
        rule.predict(deals.drop(columns="bant_need"))


def test_bad_expression_names_the_letter_and_expression(deals: pd.DataFrame) -> None:
    rule = BantRule(letters={"timeline": "bant_timeline =="}, threshold=1.0)

    with pytest.raises(ValueError, match=r"'timeline'.*bant_timeline =="):
        rule.fit(deals)


def test_non_boolean_condition_is_rejected(deals: pd.DataFrame) -> None:
    rule = BantRule(letters={"budget": "annual_revenue * 2"}, threshold=1.0).fit(deals)

    with pytest.raises(ValueError, match="'budget'.*true/false"):
        rule.predict(deals)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"letters": {"bogus": "x == 1"}}, "subset"),
        ({"letters": {}}, "subset"),
        ({"weights": {"budget": 1.0}}, "'authority' needs a finite weight"),
        (
            {"weights": dict.fromkeys(["budget", "authority", "need", "timeline"], -1)},
            ">= 0",
        ),
        ({"threshold": 4.5}, "at most the sum"),
        ({"threshold": 0}, "above 0"),
    ],
)
def test_bad_params_raise_at_fit(
    deals: pd.DataFrame, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        BantRule(**params).fit(deals)


def test_not_fitted_raises_sklearns_error(deals: pd.DataFrame) -> None:
    with pytest.raises(NotFittedError):
        BantRule().predict(deals)


def test_non_frame_input_is_rejected() -> None:
    with pytest.raises(TypeError, match="DataFrame"):
        BantRule().fit(np.zeros((2, 4)))  # type: ignore[arg-type]


def test_input_frame_is_not_mutated(deals: pd.DataFrame) -> None:
    before = deals.copy()
    rule = BantRule().fit(deals)

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


def test_from_config_matches_the_default_rule(deals: pd.DataFrame) -> None:
    cfg = BantConfig(threshold=2.0)
    rule = BantRule.from_config(cfg).fit(deals)

    assert rule.letters_ == dict(cfg.letters)
    np.testing.assert_array_equal(rule.predict(deals), [1, 1, 1, 0])


def test_y_is_ignored(deals: pd.DataFrame) -> None:
    with_y = BantRule().fit(deals, y=[0, 1, 0, 1]).predict(deals)
    without_y = BantRule().fit(deals).predict(deals)

    np.testing.assert_array_equal(with_y, without_y)
