"""The BANT rule as a scikit-learn estimator: the baseline the model has to beat.

Each BANT letter (budget, authority, need, timeline) is a condition on deal columns.
A lead earns a letter's weight when the condition holds, and the rule advances it
when its points reach the threshold. Like ``DummyClassifier`` it learns nothing from
``y``; ``fit`` only checks the rule against the columns.

A condition is parsed into a small grammar (:func:`lead_ml.config.parse_condition`:
column names, literals, comparisons, in-lists, and/or/not) and evaluated here, column
by column: nothing in it is run as code, so a params file cannot reach Python.

Missing values are never evidence. A comparison with a blank or ``"unknown"`` cell is
undecided (neither true nor false; ``and``/``or``/``not`` follow three-valued logic,
see :func:`condition_holds`), and a letter passes only when its condition is true
*and* every column it reads is known for that lead: ``bant_budget != 'no'`` does not
pass an unknown budget, nor does ``not bant_need == 'no'``.

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
import operator
import tempfile
from collections.abc import Callable
from numbers import Real
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted

from lead_ml.config import (
    AllOf,
    AnyOf,
    BantConfig,
    Column,
    Comparison,
    Condition,
    Membership,
    Negation,
    SourceConfig,
    Value,
    columns_read,
    parse_condition,
)
from lead_ml.sources import (
    TABLE_FILE,
    copy_table,
    lead_rows,
    load_deals,
    read_tables,
)
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


class LetterError(ValueError):
    """A BANT letter that cannot be used as written: names the letter and why."""

    def __init__(self, letter: str, problem: str) -> None:
        super().__init__(f"BANT letter {letter!r}: {problem}")
        self.letter = letter
        self.problem = problem


def _parse_letter(letter: str, expression: str) -> Condition:
    """A letter's parsed condition; LetterError naming the part that is not allowed."""
    try:
        return parse_condition(expression)
    except ValueError as error:
        raise LetterError(letter, f"{expression!r}: {error}") from None


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
            raise LetterError(
                letter,
                f"{expression!r} reads column(s) {missing} that the deals do not "
                f"have; add them to the data or change bant.letters.{letter} in "
                "params.yaml.",
            )


# --- evaluating a condition -----------------------------------------------------

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def missing_cells(values: pd.Series) -> np.ndarray:
    """Cells that say nothing: blank, null or one of :data:`UNKNOWN_VALUES`.

    >>> missing_cells(pd.Series(["yes", None, "unknown", ""])).tolist()
    [False, True, True, False]
    """
    return (values.isna() | values.isin(UNKNOWN_VALUES)).to_numpy(dtype=bool)


def condition_holds(condition: Condition, deals: pd.DataFrame) -> pd.Series:
    """Whether a parsed condition holds for each deal: True, False, or NA (pandas'
    nullable ``boolean``) when a missing cell leaves it undecided. Index kept.

    A comparison or in-list reading a missing cell is NA; ``and``, ``or`` and
    ``not`` follow three-valued logic (``False and NA`` is False, ``True or NA`` is
    True, ``not NA`` is NA). TypeError when the values cannot be compared.

    >>> deals = pd.DataFrame({"size": [5.0, None, 50.0], "region": ["EU", "EU", None]})
    >>> holds = condition_holds(parse_condition("size > 10 or region == 'EU'"), deals)
    >>> holds.tolist()
    [True, True, True]
    >>> condition_holds(parse_condition("size > 10"), deals).tolist()
    [False, <NA>, True]
    """
    if isinstance(condition, AllOf | AnyOf):
        parts = [condition_holds(part, deals) for part in condition.parts]
        combined = parts[0]
        for part in parts[1:]:
            combined = (
                combined & part if isinstance(condition, AllOf) else combined | part
            )
        return combined
    if isinstance(condition, Negation):
        return ~condition_holds(condition.part, deals)
    if isinstance(condition, Membership):
        values = deals[condition.column.name]
        listed = [value.value for value in condition.values]
        held = values.isin(listed).to_numpy(dtype=bool) != condition.negated
        return _undecided_where(held, missing_cells(values), deals.index)
    return _compared(condition, deals)


def _compared(comparison: Comparison, deals: pd.DataFrame) -> pd.Series:
    """A comparison per deal, NA where a column it reads is missing."""
    sides = [comparison.left, comparison.right]
    missing = np.zeros(len(deals), dtype=bool)
    for side in sides:
        if isinstance(side, Column):
            missing |= missing_cells(deals[side.name])
    known = ~missing
    # Compare only known cells: a blank must not meet the operator at all.
    left, right = (
        deals[side.name][known] if isinstance(side, Column) else side.value
        for side in sides
    )
    held = np.zeros(len(deals), dtype=bool)
    if known.any():
        result = _COMPARE[comparison.op](left, right)
        held[known] = np.asarray(result, dtype=bool)
    return _undecided_where(held, missing, deals.index)


def _undecided_where(
    held: np.ndarray, missing: np.ndarray, index: pd.Index
) -> pd.Series:
    return pd.Series(pd.arrays.BooleanArray(held, missing), index=index)


def column_kind(values: pd.Series) -> str:
    """What a column holds, for checking what a condition compares it with:
    ``number``, ``text``, ``bool``, ``date``, or ``""`` (mixed or all missing).

    >>> column_kind(pd.Series([1.5, None])), column_kind(pd.Series(["a", None]))
    ('number', 'text')
    """
    dtype = values.dtype
    if pd.api.types.is_object_dtype(dtype):
        inferred = pd.api.types.infer_dtype(values, skipna=True)
        return _INFERRED_KINDS.get(inferred, "")
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "date"
    if pd.api.types.is_string_dtype(dtype):
        return "text"
    return ""


_INFERRED_KINDS = {
    "string": "text",
    "boolean": "bool",
    "floating": "number",
    "integer": "number",
    "mixed-integer-float": "number",
    "decimal": "number",
    "datetime": "date",
    "datetime64": "date",
    "date": "date",
}
_HINTS = {
    ("number", "text"): "write the number unquoted, e.g. employees >= 100",
    ("text", "number"): "quote the value as the file holds it, e.g. '3'",
    ("bool", "text"): "compare with True or False, unquoted",
    ("bool", "number"): "compare with True or False",
}


def _literal_kind(value: Value) -> str:
    if isinstance(value.value, bool):
        return "bool"
    return "text" if isinstance(value.value, str) else "number"


def _kind_problem(column: str, kind: str, value: Value) -> str:
    """Why a column of this kind cannot be compared with the literal, or ''."""
    wanted = _literal_kind(value)
    if not kind or kind == wanted:
        return ""
    if kind == "date" and wanted == "text":
        try:
            pd.Timestamp(str(value.value))
        except ValueError:
            return f"{value.value!r} is not a date, and {column!r} is a date column"
        return ""
    hint = _HINTS.get((kind, wanted), "compare it with a value of its kind")
    return (
        f"it compares {column!r}, a {kind} column, with {value.value!r} "
        f"({wanted}); {hint}"
    )


def _pairs(condition: Condition) -> list[tuple[Column | Value, Column | Value]]:
    """Every (left, right) a condition compares, in-list values one by one."""
    if isinstance(condition, AllOf | AnyOf):
        return [pair for part in condition.parts for pair in _pairs(part)]
    if isinstance(condition, Negation):
        return _pairs(condition.part)
    if isinstance(condition, Membership):
        return [(condition.column, value) for value in condition.values]
    return [(condition.left, condition.right)]


def _check_kinds(
    deals: pd.DataFrame, letters: dict[str, str], conditions: dict[str, Condition]
) -> None:
    """LetterError when a condition compares a column with a value (or another
    column) of another kind: a silent "never equal" or a crash otherwise."""
    for letter, condition in conditions.items():
        kinds: dict[str, str] = {}
        for left, right in _pairs(condition):
            for side in (left, right):
                if isinstance(side, Column) and side.name not in kinds:
                    kinds[side.name] = column_kind(deals[side.name])
            problem = _pair_problem(left, right, kinds)
            if problem:
                raise LetterError(letter, f"{letters[letter]!r}: {problem}")


def _pair_problem(
    left: Column | Value, right: Column | Value, kinds: dict[str, str]
) -> str:
    if isinstance(left, Column) and isinstance(right, Column):
        one, other = kinds[left.name], kinds[right.name]
        if one and other and one != other:
            return (
                f"it compares {left.name!r} ({one}) with {right.name!r} ({other}); "
                "compare columns of one kind"
            )
        return ""
    column, value = (left, right) if isinstance(left, Column) else (right, left)
    assert isinstance(column, Column) and isinstance(value, Value)
    return _kind_problem(column.name, kinds[column.name], value)


class BantRule(ClassifierMixin, BaseEstimator):
    """Advance a lead when its weighted count of BANT letters reaches a threshold.

    A letter passes only on positive evidence: its condition must be true *and*
    every column the condition reads must be known for that lead (not missing, not
    ``"unknown"``), so ``bant_budget != 'no'`` does not pass an unknown budget.
    Conditions are parsed, never run as code (see the module docstring).

    Parameters
    ----------
    letters : dict[str, str]
        Letter name (a subset of budget, authority, need, timeline) to a condition
        (:func:`lead_ml.config.parse_condition`), e.g.
        ``"bant_timeline in ['0-3 months', '3-6 months']"``.
    weights : dict[str, float] or None
        Points a passed letter earns; None means 1.0 for every letter.
    threshold : float
        Points a lead needs to be advanced (default 3.0: three of four letters).

    Attributes
    ----------
    letters_, weights_ : dict
        The rule in use after defaults are filled in.
    conditions_ : dict[str, Condition]
        Each letter's parsed condition.
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
        """Check the rule, that X has every column it reads and that each condition
        compares columns with values of their kind; ``y`` is ignored. Raises
        :class:`LetterError` (a ValueError) naming the letter."""
        letters = dict(self.letters)
        weights = dict.fromkeys(letters, 1.0) | dict(self.weights or {})
        _check_letters(letters, weights, self.threshold)
        conditions = {
            letter: _parse_letter(letter, expr) for letter, expr in letters.items()
        }
        columns = {letter: columns_read(c) for letter, c in conditions.items()}
        _require_columns(X, letters, columns)
        _check_kinds(X, letters, conditions)
        self.letters_ = letters
        self.conditions_ = conditions
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
        _check_kinds(X, self.letters_, self.conditions_)
        passes = {letter: self._passes(X, letter) for letter in self.letters_}
        return pd.DataFrame(passes, index=X.index)

    def _passes(self, deals: pd.DataFrame, letter: str) -> np.ndarray:
        try:
            holds = condition_holds(self.conditions_[letter], deals)
        except TypeError as error:
            # Mixed values in one column (text and numbers) that cannot be ordered.
            raise LetterError(
                letter, f"{self.letters_[letter]!r} cannot be evaluated: {error}"
            ) from None
        known = np.ones(len(deals), dtype=bool)
        for column in self.columns_read_[letter]:
            known &= ~missing_cells(deals[column])
        return holds.fillna(False).to_numpy(dtype=bool) & known

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
    deals lack, a value of the wrong kind for its column, or a letter no deal passes
    (a typo in a value, most likely: the values as written are listed)."""
    rule = BantRule.from_config(cfg)
    for letter, read in cfg.letter_columns().items():
        for column in read:
            if column not in deals.columns:
                raise ConfigError(
                    f"bant.letters.{letter}: {cfg.letters[letter]!r} reads column "
                    f"{column!r}, which the deals do not have"
                    f"{close_match(column, deals.columns)}"
                )
    try:
        passes = rule.fit(deals).letter_passes(deals)
    except LetterError as error:
        raise ConfigError(f"bant.letters.{error.letter}: {error.problem}") from None
    for letter in passes.columns[~passes.any().to_numpy()]:
        raise ConfigError(_never_true(cfg, letter, deals))
    return rule


def check_rule_on_files(cfg: BantConfig, source: SourceConfig) -> BantRule:
    """:func:`check_rule` on the labelled deals of the source's files, read and
    labelled as `lead-ml read` and `lead-ml validate` read them (the activity log
    aside: the rule reads no activity), so that a letter true for no deal is found
    before the pipeline runs. ConfigError or ContractError as those stages raise."""
    tables = source.tables.model_copy(update={"activities": None})
    without_log = source.model_copy(update={"tables": tables})
    with tempfile.TemporaryDirectory() as folder:
        for name, table in tables.present().items():
            copy_table(table, name, Path(folder) / TABLE_FILE.format(name=name))
        deals = load_deals(without_log, cfg, read_tables(without_log, Path(folder)))
    return check_rule(cfg, lead_rows(deals.frame, source))


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
    cfg: BantConfig | None, source: SourceConfig, deals: pd.DataFrame
) -> pd.DataFrame:
    """The rule's points and verdict (``bant_points``, ``bant_qualified``) for every
    labelled deal (:class:`lead_ml.sources.Deals` frame), indexed by deal_id.

    Without a rule (``cfg`` None) every deal gets 0 points and none is qualified:
    the base rate, a list in no order (ROC AUC 0.5; its top K win at the base rate,
    see :func:`compared_with_base_rate`)."""
    if cfg is None:
        return pd.DataFrame(
            {"bant_points": 0.0, "bant_qualified": False}, index=range(len(deals))
        ).set_axis(deals["deal_id"].to_numpy())
    rows = lead_rows(deals, source)
    try:
        rule = BantRule.from_config(cfg).fit(rows)
        points, qualified = rule.decision_function(rows), rule.predict(rows)
    except LetterError as error:
        raise ConfigError(f"bant.letters.{error.letter}: {error.problem}") from None
    return pd.DataFrame(
        {"bant_points": points, "bant_qualified": qualified.astype(bool)}
    ).set_axis(deals["deal_id"].to_numpy())


# --- no rule: the base rate ---------------------------------------------------------

#: What metrics.json, the summary, MLflow and the report say when params give no rule.
NO_RULE = (
    "no BANT rule was given (bant is null or absent in params.yaml): the model is "
    "compared with the base rate, leads taken in no order (ROC AUC 0.5; the top K "
    "leads win at the base rate)"
)


def baseline_of(cfg: BantConfig | None) -> dict[str, Any]:
    """metrics.json's ``baseline``: what the model is compared with, the rule params
    give or the base rate (``rule_given`` false, and why, in ``note``).

    >>> baseline_of(None)["label"], baseline_of(None)["rule_given"]
    ('base rate', False)
    >>> baseline_of(BantConfig(letters={"need": "need == 'yes'"}, threshold=1))["label"]
    'BANT rule'
    """
    if cfg is None:
        return {
            "kind": "base_rate",
            "label": "base rate",
            "rule_given": False,
            "note": NO_RULE,
        }
    letters = ", ".join(f"{letter} ({cfg.weights[letter]:g})" for letter in cfg.letters)
    return {
        "kind": "bant",
        "label": "BANT rule",
        "rule_given": True,
        "note": f"the BANT rule of params.yaml: letters {letters}, qualified at "
        f"{cfg.threshold:g} points",
    }


#: Capacity keys of the rule's list (lead_ml.evaluate.capacity_view), "bant_" prefixed.
_RULE_CAPACITY = ("wins", "win_rate", "pipeline_value")


def compared_with_base_rate(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics of a model compared with :func:`bant_scores` without a rule (0
    points everywhere), as the base-rate comparison they are: ``bant`` null, the
    ``baseline`` (:func:`baseline_of`, with its ROC AUC 0.5 and PR AUC, the base
    rate) and, in the capacity view, the wins a list in no order puts in the top K
    (``base_rate_wins``: K times the base rate, its expectation) in place of the
    rule's. The gain in ROC AUC is the model's over 0.5 already. A new dict.

    >>> metrics = {"bant": {"roc_auc": 0.5, "pr_auc": 0.25, "qualified_share": 0.0},
    ...     "cv": {"bant_roc_auc_by_fold": [0.5, 0.5]}, "capacity": {
    ...         "k": 8, "model_wins": 5, "bant_wins": 1, "base_win_rate": 0.25}}
    >>> compared = compared_with_base_rate(metrics)
    >>> compared["bant"], compared["capacity"], compared["cv"]
    (None, {'k': 8, 'model_wins': 5, 'base_win_rate': 0.25, 'base_rate_wins': 2.0}, {})
    >>> compared["baseline"]["roc_auc"], compared["baseline"]["pr_auc"]
    (0.5, 0.25)
    """
    out = dict(metrics)
    rule = out.pop("bant", None) or {}
    out["bant"] = None
    capacity = {
        key: value
        for key, value in out.get("capacity", {}).items()
        if key not in {f"bant_{name}" for name in _RULE_CAPACITY}
    }
    if "k" in capacity and "base_win_rate" in capacity:
        capacity["base_rate_wins"] = float(capacity["k"] * capacity["base_win_rate"])
    if "capacity" in out:
        out["capacity"] = capacity
    if isinstance(out.get("cv"), dict):
        out["cv"] = {k: v for k, v in out["cv"].items() if not k.startswith("bant_")}
    out["baseline"] = baseline_of(None) | {
        "roc_auc": 0.5,
        "pr_auc": float(rule.get("pr_auc", capacity.get("base_win_rate", 0.0))),
    }
    return out


def base_rate_verdict(metrics: dict[str, Any]) -> str:
    """The one-line claim a summary may make without a rule (see
    :func:`lead_ml.evaluate.verdict`): the model against the base rate, where the
    AUC gain's CI and the capacity view agree.

    >>> base_rate_verdict({"delta_roc_auc_ci95": [0.38, 0.41],
    ...     "capacity": {"k": 684, "model_wins": 516, "base_rate_wins": 253.2}})
    'the model beats the base rate: 516 wins in the top 684 against 253 by chance'
    """
    capacity = metrics["capacity"]
    model, chance, k = capacity["model_wins"], capacity["base_rate_wins"], capacity["k"]
    low, high = metrics["delta_roc_auc_ci95"]
    counts = f"{model:,} wins in the top {k:,} against {chance:,.0f} by chance"
    if low > 0 and model >= chance:
        return f"the model beats the base rate: {counts}"
    if high < 0 and model <= chance:
        return f"the model ranks worse than the base rate: {counts}"
    if low > 0 or high < 0:
        return f"mixed: the ROC AUC and the top {k:,} disagree ({counts})"
    return "no clear difference from the base rate: the AUC gain's 95% CI includes 0"
