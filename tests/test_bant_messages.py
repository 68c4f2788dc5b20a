"""What a BANT rule tells the user: the values of a letter no deal passes, the
weights it accepts, and its labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lead_ml.baseline import BantRule, check_rule
from lead_ml.config import BantConfig
from lead_ml.vocab import ConfigError


def test_a_letter_no_deal_passes_lists_the_six_commonest_values_of_each_column() -> (
    None
):
    """Most common first, blanks counted (a typo is often a blank), at most six per
    column, columns separated by '; '."""
    deals = pd.DataFrame(
        {
            "a": ["p"] * 7
            + ["q"] * 6
            + ["r"] * 5
            + ["s"] * 4
            + ["t"] * 3
            + [None] * 2
            + ["u"],
            "b": ["yes"] * 28,
        }
    )
    cfg = BantConfig(letters={"need": "a == 'z' and b == 'yes'"}, threshold=1)
    with pytest.raises(ConfigError) as caught:
        check_rule(cfg, deals)
    assert str(caught.value).endswith(
        "(case matters) - a: 'p' (7), 'q' (6), 'r' (5), 's' (4), 't' (3), <NA> (2); "
        "b: 'yes' (28)"
    )


def test_a_weight_of_zero_is_allowed_a_negative_one_says_where_to_set_it() -> None:
    frame = pd.DataFrame({"a": ["yes", "no"], "b": ["yes", "yes"]})
    letters = {"budget": "a == 'yes'", "need": "b == 'yes'"}
    free = BantRule(letters, weights={"budget": 0.0, "need": 1.0}, threshold=1.0)
    np.testing.assert_array_equal(free.fit(frame).decision_function(frame), [1, 1])
    with pytest.raises(ValueError) as caught:
        BantRule(letters, weights={"budget": -1.0, "need": 1.0}).fit(frame)
    assert str(caught.value) == (
        "BANT letter 'budget' needs a finite weight >= 0; got -1.0. "
        "Set it under bant.weights."
    )


def test_advanced_or_not_is_an_integer_label() -> None:
    frame = pd.DataFrame({"a": ["yes", "no"]})
    rule = BantRule({"budget": "a == 'yes'"}, threshold=1.0).fit(frame)
    labels = rule.predict(frame)
    assert labels.dtype.kind == "i" and labels.tolist() == [1, 0]
