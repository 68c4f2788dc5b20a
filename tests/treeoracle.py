"""A slow, plain-Python reading of a LightGBM dump: the reference the fast kernels
are checked against for leads with values the model never saw missing.

A feature is *absent* in a row when the row lacks it and the model has no rule for
its missing value (it was never missing in training): at each split on it the row
goes both ways, weighted by the training rows each way took. Path-dependent
TreeSHAP values are the Shapley values of the game ``v(S)``: features in ``S``
(and present) follow the row, the others go both ways the same weighted way.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection
from typing import Any

import numpy as np


def _count(node: dict[str, Any]) -> float:
    return float(node["leaf_count"] if "leaf_value" in node else node["internal_count"])


def goes_left(node: dict[str, Any], value: float) -> bool:
    """LightGBM's decision for one value (its documented rules, written out)."""
    if node["decision_type"] == "==":
        codes = {int(c) for c in str(node["threshold"]).split("||")}
        return not math.isnan(value) and value >= 0 and int(value) in codes
    if math.isnan(value):
        if node["missing_type"] == "NaN":
            return bool(node["default_left"])
        value = 0.0  # missing type None reads NaN as 0
    return value <= float(node["threshold"])


def _expect(
    node: dict[str, Any], row: np.ndarray, followed: Collection[int], absent: np.ndarray
) -> float:
    if "leaf_value" in node:
        return float(node["leaf_value"])
    feature = int(node["split_feature"])
    value = float(row[feature])
    if feature in followed and not (absent[feature] and math.isnan(value)):
        child = node["left_child"] if goes_left(node, value) else node["right_child"]
        return _expect(child, row, followed, absent)
    left, right = node["left_child"], node["right_child"]
    return (
        _count(left) * _expect(left, row, followed, absent)
        + _count(right) * _expect(right, row, followed, absent)
    ) / _count(node)


def game(
    dump: dict[str, Any],
    row: np.ndarray,
    followed: Collection[int],
    absent: np.ndarray,
) -> float:
    """v(S): the raw score when only the features in ``followed`` follow the row."""
    return sum(
        _expect(t["tree_structure"], row, followed, absent) for t in dump["tree_info"]
    )


def margin(dump: dict[str, Any], row: np.ndarray, absent: np.ndarray) -> float:
    """The raw score of a row, its absent features averaged over training rows."""
    return game(dump, row, range(len(row)), absent)


def shapley(dump: dict[str, Any], row: np.ndarray, absent: np.ndarray) -> np.ndarray:
    """Every feature's Shapley value of the game, then v(empty set): exponential in
    the number of features, for small models only."""
    n = len(row)
    phi = np.zeros(n + 1)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            weight = (
                math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            )
            for subset in itertools.combinations(others, size):
                with_i = game(dump, row, {*subset, i}, absent)
                phi[i] += weight * (with_i - game(dump, row, set(subset), absent))
    phi[n] = game(dump, row, (), absent)
    return phi
