"""The BANT rule as a scikit-learn estimator: the baseline the model has to beat.

Each BANT letter (budget, authority, need, timeline) is a condition on deal columns
in pandas query syntax. A lead earns a letter's weight when the condition holds, and
the rule advances it when its points reach the threshold. Like ``DummyClassifier``
it learns nothing from ``y``; ``fit`` only checks the rule against the columns.

>>> deals = pd.DataFrame({
...     "bant_budget": ["yes", "yes", "no"],
...     "bant_authority": ["yes", None, "yes"],
...     "bant_need": ["yes", "yes", "yes"],
...     "bant_timeline": ["0-3 months", "3-6 months", "12+ months"],
... })
>>> rule = BantRule(LETTERS, threshold=3.0).fit(deals)
>>> rule.decision_function(deals)
array([4., 3., 2.])
>>> rule.predict(deals)
array([1, 1, 0])
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, TypeGuard

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted

from lead_ml.config import BantConfig, SourceConfig, columns_read
from lead_ml.sources import lead_rows
from lead_ml.tables import close_match
from lead_ml.vocab import BANT_LETTERS, ConfigError

#: Values a rep records when they did not find out: never evidence for a letter.
UNKNOWN_VALUES: tuple[str, ...] = ("unknown",)

#: The synthetic CRM's rule, for examples: three of four letters.
LETTERS = {
    "budget": "bant_budget == 'yes'",
    "authority": "bant_authority == 'yes'",
    "need": "bant_need == 'yes'",
    "timeline": "bant_timeline in ['0-3 months', '3-6 months']",
}


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, Real) and math.isfinite(value)


def _check_letters(
    letters: dict[str, str], weights: dict[str, float], threshold: Any
) -> None:
    """Raise ValueError unless letters, weights and threshold make a usable rule."""
    unknown = sorted(set(letters) - set(BANT_LETTERS))
    if unknown or not letters:
        raise ValueError(
            f"BANT letters must be a non-empty subset of {list(BANT_LETTERS)}; "
            f"got {sorted(letters)}"
        )
    for letter in letters:
        weight = weights.get(letter)
        if not _is_number(weight) or float(weight) < 0:
            raise ValueError(
                f"BANT letter {letter!r} needs a finite weight >= 0; got {weight!r}. "
                "Set it under bant.weights."
            )
    max_points = sum(float(weights[letter]) for letter in letters)
    # As in predict: points are float sums, and 0.3 + 0.6 must still reach 0.9.
    reachable = _is_number(threshold) and (
        float(threshold) <= max_points or math.isclose(float(threshold), max_points)
    )
    if not reachable or not 0 < float(threshold):
        raise ValueError(
            f"BANT threshold must be above 0 and at most the sum of the letter "
            f"weights ({max_points:g}); got {threshold!r}, so no lead could pass."
        )


def _parse_letter(letter: str, expression: str) -> list[str]:
    """The columns a letter's condition reads; ValueError naming it if it is bad."""
    try:
        return columns_read(expression)
    except SyntaxError as error:
        raise ValueError(
            f"BANT letter {letter!r}: {expression!r} is not a valid pandas query "
            f"condition ({error.msg}); write e.g. \"bant_budget == 'yes'\"."
        ) from None


def _require_columns(
    deals: pd.DataFrame, letters: dict[str, str], columns: dict[str, list[str]]
) -> None:
    """Raise TypeError/ValueError unless deals is a frame with every column read."""
    if not isinstance(deals, pd.DataFrame):
        raise TypeError(
            f"BantRule needs a pandas DataFrame; got {type(deals).__name__}"
        )
    for letter, expression in letters.items():
        missing = [column for column in columns[letter] if column not in deals.columns]
        if missing:
            raise ValueError(
                f"BANT letter {letter!r} ({expression!r}) reads column(s) {missing} "
                "that the deals do not have; add them to the data or change "
                f"bant.letters.{letter} in params.yaml."
            )


def _as_condition(
    result: Any, index: pd.Index, letter: str, expression: str
) -> np.ndarray:
    """A boolean array from what DataFrame.eval returned; missing counts as false."""
    condition = pd.Series(result, index=index) if np.ndim(result) == 0 else result
    if not isinstance(condition, pd.Series) or not pd.api.types.is_bool_dtype(
        condition
    ):
        raise ValueError(
            f"BANT letter {letter!r}: {expression!r} is not a true/false condition; "
            "compare a column, e.g. \"bant_budget == 'yes'\"."
        )
    return condition.fillna(False).to_numpy(dtype=bool)


class BantRule(ClassifierMixin, BaseEstimator):
    """Advance a lead when its weighted count of BANT letters reaches a threshold.

    A letter passes only on positive evidence: its condition must be true *and*
    every column the condition reads must be known for that lead (not missing, not
    ``"unknown"``), so ``bant_budget != 'no'`` does not pass an unknown budget.

    Parameters
    ----------
    letters : dict[str, str]
        Letter name (a subset of budget, authority, need, timeline) to a condition in
        pandas query syntax, e.g. ``"bant_timeline in ['0-3 months', '3-6 months']"``.
    weights : dict[str, float] or None
        Points a passed letter earns; None means 1.0 for every letter.
    threshold : float
        Points a lead needs to be advanced (default 3.0: three of four letters).

    Attributes
    ----------
    letters_, weights_ : dict
        The rule in use after defaults are filled in.
    columns_read_ : dict[str, list[str]]
        Columns each letter's condition reads.
    threshold_, max_points_ : float
        Points needed and points a lead passing every letter earns.
    classes_ : ndarray
        ``[0, 1]``: not advanced, advanced.
    """

    def __init__(
        self,
        letters: dict[str, str],
        weights: dict[str, float] | None = None,
        threshold: float = 3.0,
    ) -> None:
        self.letters = letters
        self.weights = weights
        self.threshold = threshold

    @classmethod
    def from_config(cls, cfg: BantConfig) -> BantRule:
        """The rule params.yaml describes.

        >>> BantRule.from_config(BantConfig(letters=LETTERS, threshold=2.0)).threshold
        2.0
        """
        return cls(
            letters=dict(cfg.letters),
            weights=dict(cfg.weights),
            threshold=cfg.threshold,
        )

    def fit(self, X: pd.DataFrame, y: object = None) -> BantRule:
        """Check the rule and that X has every column it reads; ``y`` is ignored."""
        letters = dict(self.letters)
        weights = dict.fromkeys(letters, 1.0) | dict(self.weights or {})
        _check_letters(letters, weights, self.threshold)
        columns = {
            letter: _parse_letter(letter, expr) for letter, expr in letters.items()
        }
        _require_columns(X, letters, columns)
        self.letters_ = letters
        self.columns_read_ = columns
        self.weights_ = {letter: float(weights[letter]) for letter in letters}
        self.threshold_ = float(self.threshold)
        self.max_points_ = sum(self.weights_.values())
        self.classes_ = np.array([0, 1])
        return self

    def letter_passes(self, X: pd.DataFrame) -> pd.DataFrame:
        """One boolean column per letter: did the lead pass it? X's index is kept."""
        check_is_fitted(self)
        _require_columns(X, self.letters_, self.columns_read_)
        passes = {letter: self._passes(X, letter) for letter in self.letters_}
        return pd.DataFrame(passes, index=X.index)

    def _passes(self, deals: pd.DataFrame, letter: str) -> np.ndarray:
        expression = self.letters_[letter]
        try:
            result = deals.eval(expression, engine="python")
        except Exception as error:
            raise ValueError(
                f"BANT letter {letter!r}: cannot evaluate {expression!r}: {error}"
            ) from error
        condition = _as_condition(result, deals.index, letter, expression)
        read = deals[self.columns_read_[letter]]
        unknown = (read.isna() | read.isin(UNKNOWN_VALUES)).any(axis=1).to_numpy()
        return condition & ~unknown

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Weighted points per lead, from 0 to ``max_points_``."""
        passes = self.letter_passes(X)
        weights = np.array([self.weights_[letter] for letter in passes.columns])
        return passes.to_numpy(dtype=float) @ weights

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Columns ``[1 - s, s]`` with ``s = points / max_points_``.

        ``s`` is a ranking score in [0, 1] so the rule fits metrics that expect
        probabilities; it is not a calibrated probability of winning.
        """
        share = self.decision_function(X) / self.max_points_
        return np.column_stack([1.0 - share, share])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """1 for leads whose points reach the threshold, else 0."""
        points = self.decision_function(X)
        # Points are sums of float weights: 0.1 + 0.2 must still reach 0.3.
        reached = (points >= self.threshold_) | np.isclose(points, self.threshold_)
        return reached.astype(int)

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        tags.input_tags.allow_nan = True
        tags.target_tags.required = False
        return tags


def check_rule(cfg: BantConfig, deals: pd.DataFrame) -> BantRule:
    """The rule fitted on deal rows (the source's column names), every letter checked
    against the data first. Raises ConfigError naming the letter and the column the
    deals lack, a condition that is not true/false, or a letter no deal passes (a
    typo in a value, most likely: the values as written are listed)."""
    rule = BantRule.from_config(cfg)
    for letter, condition in cfg.letters.items():
        for column in columns_read(condition):
            if column not in deals.columns:
                raise ConfigError(
                    f"bant.letters.{letter}: {condition!r} reads column {column!r}, "
                    f"which the deals do not have{close_match(column, deals.columns)}"
                )
    try:
        passes = rule.fit(deals).letter_passes(deals)
    except ValueError as error:
        raise ConfigError(f"bant.letters: {error}") from None
    for letter in passes.columns[~passes.any().to_numpy()]:
        raise ConfigError(_never_true(cfg, letter, deals))
    return rule


def _never_true(cfg: BantConfig, letter: str, deals: pd.DataFrame) -> str:
    """Why a letter no deal passes is almost surely a typo, with the values seen."""
    condition = cfg.letters[letter]
    seen = []
    for column in columns_read(condition):
        counts = deals[column].astype("string").value_counts(dropna=False).head(6)
        values = ", ".join(f"{v!r} ({n:,})" for v, n in counts.items())
        seen.append(f"{column}: {values}")
    return (
        f"bant.letters.{letter}: {condition!r} is true for no deal; check the values "
        f"as written (case matters) - {'; '.join(seen)}"
    )


def bant_scores(
    cfg: BantConfig, source: SourceConfig, deals: pd.DataFrame
) -> pd.DataFrame:
    """The rule's points and verdict (``bant_points``, ``bant_qualified``) for every
    labelled deal (:class:`lead_ml.sources.Deals` frame), indexed by deal_id."""
    rows = lead_rows(deals, source)
    rule = BantRule.from_config(cfg).fit(rows)
    return pd.DataFrame(
        {
            "bant_points": rule.decision_function(rows),
            "bant_qualified": rule.predict(rows).astype(bool),
        }
    ).set_axis(deals["deal_id"].to_numpy())
