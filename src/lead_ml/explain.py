"""Why a lead scores as it does, in MEDDIC words.

Contributions are exact TreeSHAP values from LightGBM itself, summed per dimension
(:data:`~lead_ml.config.DIMENSIONS`) and moved into calibrated log-odds, so for every
lead ``base_value + sum of contrib_<dimension>`` is its calibrated log-odds.

Reasons read as a rep would say them: ``+`` the dimension raised the score, ``-`` it
lowered it, and ``?`` the MEDDIC field is not yet known. Unknown is its own state,
never reported as negative evidence, whatever the sign of its contribution.

>>> reason_text("champion", "strong", "+")
'+ champion identified and strong'
>>> reason_text("economic_buyer", "unknown", "-")
'? economic buyer not yet known'
>>> reason_text("economic_buyer", "yes", "-")
'- economic buyer engaged, yet this lowered the score'
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from lead_ml.config import DIMENSIONS
from lead_ml.features import EVIDENCE_CODES, feature_dimensions
from lead_ml.model import (
    TrainedModel,
    feature_rows,
    probability_of_margin,
    rows_margin,
)

CONTRIBUTION_COLUMNS: tuple[str, ...] = tuple(f"contrib_{d}" for d in DIMENSIONS)
UNKNOWN = "unknown"
#: Pain types our product solves, in the order questions try them.
PAIN_TYPES: tuple[str, ...] = ("productivity", "support", "financial")
#: Severity assumed for a pain, or strength for a champion, whose level is not recorded.
ASSUMED_LEVEL = 3.0
#: The yes/no/unknown MEDDIC field each dimension's state is read from.
EVIDENCE_FIELDS: dict[str, str] = {
    "metrics": "meddic_metrics",
    "economic_buyer": "meddic_economic_buyer",
    "decision_criteria": "meddic_decision_criteria",
    "decision_process": "meddic_decision_process",
    "champion": "meddic_champion",
}
#: What a rep asks about to fill in each unknown MEDDIC field.
QUESTION_TOPICS: dict[str, str] = {
    "meddic_metrics": "the metrics",
    "meddic_economic_buyer": "the economic buyer",
    "meddic_decision_criteria": "the decision criteria",
    "meddic_decision_process": "the decision process",
    "meddic_pain_type": "the pain",
    "meddic_champion": "a champion",
}

# The business direction each state should push the score (0: either way is plausible),
# so a contribution against it is worded as a surprise rather than read as support.
Phrase = tuple[str, int]


def _pain_phrases() -> dict[str, Phrase]:
    phrases: dict[str, Phrase] = {
        UNKNOWN: ("pain not yet identified", 0),
        "none": ("no pain our product solves", -1),
    }
    for pain in PAIN_TYPES:
        phrases[f"{pain} ?"] = (f"{pain} pain (severity not recorded)", 0)
        for level in range(1, 6):
            strength = "clear " if level >= 4 else "mild " if level <= 2 else ""
            direction = 1 if level >= 4 else 0
            phrases[f"{pain} {level}"] = (
                f"{strength}{pain} pain (severity {level}/5)",
                direction,
            )
    return phrases


#: Per dimension, every state a lead can be in and its phrase; the order of the
#: states is the order of the state codes.
PHRASES: dict[str, dict[str, Phrase]] = {
    "metrics": {
        UNKNOWN: ("metrics not yet known", 0),
        "no": ("no agreed metrics", -1),
        "yes": ("metrics quantified", 1),
    },
    "economic_buyer": {
        UNKNOWN: ("economic buyer not yet known", 0),
        "no": ("no economic buyer access", -1),
        "yes": ("economic buyer engaged", 1),
    },
    "decision_criteria": {
        UNKNOWN: ("decision criteria not yet known", 0),
        "no": ("decision criteria not agreed", -1),
        "yes": ("decision criteria known", 1),
    },
    "decision_process": {
        UNKNOWN: ("decision process not yet known", 0),
        "no": ("decision process not mapped", -1),
        "yes": ("decision process mapped", 1),
    },
    "identify_pain": _pain_phrases(),
    "champion": {
        UNKNOWN: ("champion not yet known", 0),
        "no": ("no champion", -1),
        "yes": ("champion identified", 1),
        "weak": ("champion identified but weak", 0),
        "strong": ("champion identified and strong", 1),
    },
    "fit": {"weak": ("weak ICP fit", -1), "strong": ("strong ICP fit", 1)},
    "engagement": {
        "none": ("no recorded activity", -1),
        "low": ("little recent engagement", -1),
        "high": ("highly engaged recently", 1),
    },
}


def _tree_contributions(model: TrainedModel, matrix: pd.DataFrame) -> np.ndarray:
    """Exact TreeSHAP per feature, bias last, in raw margin units: LightGBM's
    ``pred_contrib`` values (to rounding), computed by :mod:`lead_ml.fastshap`."""
    from lead_ml import fastshap

    ensemble = fastshap.compile_booster(model.booster, model.info.best_iteration)
    return fastshap.contributions(ensemble, fastshap.feature_matrix(matrix))


def _dimension_indicator(feature_names: list[str]) -> np.ndarray:
    """0/1 matrix (features + bias, dimensions): which dimension each feature is in."""
    dimension_of = feature_dimensions()
    position = [DIMENSIONS.index(dimension_of[name]) for name in feature_names]
    indicator = np.zeros((len(feature_names) + 1, len(DIMENSIONS)))
    indicator[np.arange(len(feature_names)), position] = 1.0
    return indicator  # the bias row stays zero: it goes to base_value


def dimension_contributions(
    model: TrainedModel, features: pd.DataFrame, rows: np.ndarray | None = None
) -> pd.DataFrame:
    """Per lead, each dimension's contribution and the base value, in calibrated
    log-odds: ``contrib_<dimension>`` for every dimension, then ``base_value``.

    The columns sum to the calibrated log-odds of the lead; the index is kept.
    ``rows``: the leads' model rows, if at hand (:func:`lead_ml.model.feature_rows`).
    """
    from lead_ml import fastshap

    names = model.info.feature_names
    rows = feature_rows(model, features) if rows is None else rows
    # Summed per dimension inside fastshap's leaf tables: exact, and cheaper than
    # per-feature values summed afterwards.
    groups = _dimension_indicator(names)[:-1].argmax(axis=1)
    ensemble = fastshap.compile_booster(model.booster, model.info.best_iteration)
    raw = fastshap.contributions(ensemble, rows, groups, len(DIMENSIONS))
    calibration = model.info.calibration
    contributions = pd.DataFrame(
        calibration.slope * raw[:, :-1],
        columns=list(CONTRIBUTION_COLUMNS),
        index=features.index,
    )
    contributions["base_value"] = calibration.log_odds(raw[:, -1])
    return contributions


def reason_text(dimension: str, state: str, sign: str) -> str:
    """One reason: "+ phrase" (raised the score), "- phrase" (lowered it), or
    "? phrase" when the dimension's MEDDIC field is unknown, whatever the sign."""
    phrase, direction = PHRASES[dimension][state]
    if state == UNKNOWN:
        return f"? {phrase}"
    if sign not in ("+", "-"):
        raise ValueError(f"sign must be '+' or '-', got {sign!r}")
    if direction == (1 if sign == "-" else -1):
        phrase += f", yet this {'lowered' if sign == '-' else 'raised'} the score"
    return f"{sign} {phrase}"


@cache
def _reason_table() -> np.ndarray:
    """Every reason, indexed by (dimension, state code, sign code: 0 "-", 1 "+")."""
    n_states = max(len(states) for states in PHRASES.values())
    table = np.full((len(DIMENSIONS), n_states, 2), "", dtype=object)
    for d, dimension in enumerate(DIMENSIONS):
        for s, state in enumerate(PHRASES[dimension]):
            table[d, s] = [reason_text(dimension, state, sign) for sign in "-+"]
    return table


def _evidence_states(features: pd.DataFrame, field: str) -> np.ndarray:
    """Codes of the states unknown, no, yes (a missing answer counts as unknown)."""
    code = features[field].to_numpy(float)
    return np.where(
        code == EVIDENCE_CODES["no"], 1, np.where(code == EVIDENCE_CODES["yes"], 2, 0)
    )


def _level(values: pd.Series) -> np.ndarray:
    """Recorded 1-5 levels rounded; 0 where not recorded or out of range."""
    level = np.rint(values.to_numpy(float))
    return np.where((level >= 1) & (level <= 5), level, 0).astype(int)


def _pain_states(features: pd.DataFrame) -> np.ndarray:
    """Codes of unknown, none, then each pain type at severity ?, 1, ..., 5."""
    pain = features["meddic_pain_type"].astype(object)
    kind = pd.Index(PAIN_TYPES).get_indexer(pd.Index(pain))
    by_kind = 2 + 6 * kind + _level(features["meddic_pain_severity"])
    return np.where(pain.to_numpy() == "none", 1, np.where(kind >= 0, by_kind, 0))


def _champion_states(features: pd.DataFrame) -> np.ndarray:
    """Codes of unknown, no, yes, weak (strength 1-2) and strong (strength 4-5)."""
    evidence = _evidence_states(features, "meddic_champion")
    strength = _level(features["meddic_champion_strength"])
    graded = np.where(
        strength >= 4, 4, np.where((strength >= 1) & (strength <= 2), 3, 2)
    )
    return np.where(evidence == 2, graded, evidence)


def _lead_states(features: pd.DataFrame, contributions: np.ndarray) -> np.ndarray:
    """(leads, dimensions) state codes, in the order of each dimension's PHRASES.

    Fit and engagement have no single recorded answer: the model's own verdict (the
    sign of the contribution) decides strong or weak, besides leads with no activity.
    """
    raised = (contributions > 0).astype(int)
    states = {d: _evidence_states(features, f) for d, f in EVIDENCE_FIELDS.items()}
    states["champion"] = _champion_states(features)
    states["identify_pain"] = _pain_states(features)
    states["fit"] = raised[:, DIMENSIONS.index("fit")]
    active = features["n_activities"].to_numpy(float) > 0
    engaged = raised[:, DIMENSIONS.index("engagement")]
    states["engagement"] = np.where(active, 1 + engaged, 0)
    return np.column_stack([states[d] for d in DIMENSIONS])


def top_reasons(
    features: pd.DataFrame, contributions: pd.DataFrame, n: int = 3
) -> list[str]:
    """Per lead, the n dimensions that moved its score most, strongest first, as
    reasons joined with "; ". A dimension that did not move the score is left out."""
    if not features.index.equals(contributions.index):
        raise ValueError("features and contributions must share the same index")
    values = contributions.loc[:, list(CONTRIBUTION_COLUMNS)].to_numpy(float)
    top = np.argsort(-np.abs(values), axis=1, kind="stable")[:, : max(n, 0)]
    top_values = np.take_along_axis(values, top, axis=1)
    states = np.take_along_axis(_lead_states(features, values), top, axis=1)
    reasons = _reason_table()[top, states, (top_values > 0).astype(int)]
    reasons[top_values == 0] = ""
    return _join_reasons(reasons).tolist()


def _join_reasons(reasons: np.ndarray) -> np.ndarray:
    """Each row's non-empty reasons joined with "; ", column by column (object arrays
    add element-wise in C; a join per lead took a tenth of the batch job)."""
    joined = np.full(len(reasons), "", dtype=object)
    for column in reasons.T:
        present = column != ""
        glue = np.where(present & (joined != ""), "; ", "").astype(object)
        joined = np.where(present, joined + glue + column, joined)
    return joined


def _unknown(features: pd.DataFrame, field: str) -> np.ndarray:
    """Leads whose MEDDIC field is unknown (or missing, which means the same)."""
    if field == "meddic_pain_type":
        return _pain_states(features) == 0
    return _evidence_states(features, field) == 0


def _assumed_level(values: pd.Series) -> np.ndarray:
    """The recorded 1-5 level, or ASSUMED_LEVEL where there is none."""
    level = _level(values)
    return np.where(level > 0, level, ASSUMED_LEVEL)


def _level_text(level: np.ndarray) -> np.ndarray:
    return level.astype(int).astype(str).astype(object)


# What an answer sets (feature -> one value, or one per lead) and how it reads.
Answer = tuple[dict[str, float | str | np.ndarray], np.ndarray]


def _evidence_answers(field: str, strength: np.ndarray) -> list[Answer]:
    """A yes and a no to a yes/no MEDDIC field, for leads whose champion strength
    (recorded or assumed, see :func:`_assumed_level`) is ``strength``."""
    yes: dict[str, float | str | np.ndarray] = {field: EVIDENCE_CODES["yes"]}
    no: dict[str, float | str | np.ndarray] = {field: EVIDENCE_CODES["no"]}
    yes_label = np.full(len(strength), "a yes", dtype=object)
    if field == "meddic_champion":  # a champion comes with a strength; none without
        yes["meddic_champion_strength"] = strength
        no["meddic_champion_strength"] = np.nan
        yes_label = yes_label + " (strength " + _level_text(strength) + "/5)"
    return [(yes, yes_label), (no, np.full(len(strength), "a no", dtype=object))]


def _pain_answers(severity: np.ndarray) -> list[Answer]:
    """Each pain type at the lead's severity (recorded or assumed; the type raising
    the score most is kept, see :func:`_answer_grid`), then no pain."""
    answers: list[Answer] = [
        (
            {"meddic_pain_type": pain, "meddic_pain_severity": severity},
            np.asarray(pain + " pain (severity ", dtype=object)
            + _level_text(severity)
            + "/5)",
        )
        for pain in PAIN_TYPES
    ]
    none: dict[str, float | str | np.ndarray] = {
        "meddic_pain_type": "none",
        "meddic_pain_severity": 0.0,
    }
    no_pain = np.full(len(severity), "a no (no pain we solve)", object)
    return [*answers, (none, no_pain)]


class _Answering:
    """Win probabilities of leads after answers that change a few features.

    Only the trees splitting on a changed feature can reach another leaf, so the
    probability after an answer is the score now minus those trees' leaves before
    plus their leaves after: a fraction of the trees per answer, exact to rounding.
    """

    def __init__(self, model: TrainedModel, rows: np.ndarray, now: np.ndarray):
        from lead_ml import fastshap

        self.model, self.rows, self.now = model, rows, now
        self.ensemble = fastshap.compile_booster(
            model.booster, model.info.best_iteration
        )
        self.column = {name: i for i, name in enumerate(model.info.feature_names)}

    def code(self, feature: str, value: float | str | np.ndarray) -> Any:
        """A feature value as the model's rows hold it (a category as its code)."""
        levels = self.model.info.categories.get(feature)
        if levels is None or not isinstance(value, str):
            return value
        return float(levels.index(value)) if value in levels else np.nan

    def after(self, leads: np.ndarray, answers: list[Answer]) -> list[np.ndarray]:
        """Probability of each lead (positions in ``rows``) after each answer."""
        from lead_ml import fastshap

        changed = {f for values, _ in answers for f in values} & set(self.column)
        trees = fastshap.trees_using(self.ensemble, [self.column[f] for f in changed])
        before = self.rows[leads]
        old = self.now[leads] - rows_margin(self.model, before, trees)
        answered, results = before.copy(), []
        for values, _ in answers:
            for feature, value in values.items():
                if feature in self.column:
                    answered[:, self.column[feature]] = self.code(feature, value)
            new = rows_margin(self.model, answered, trees)
            results.append(probability_of_margin(self.model, old + new))
            for feature in changed:  # back to before for the next answer
                answered[:, self.column[feature]] = before[:, self.column[feature]]
        return results


def _answer_grid(
    model: TrainedModel, features: pd.DataFrame, rows: np.ndarray, now: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Probability after, and wording of, each answer (yes then no per field in
    QUESTION_TOPICS; for the pain, its best type then none) for every lead; NaN where
    the field is already known. ``now`` holds the leads' raw scores."""
    shape = (len(features), 2 * len(QUESTION_TOPICS))
    after, labels = np.full(shape, np.nan), np.full(shape, "", dtype=object)
    answering = _Answering(model, rows, now)
    strength = _assumed_level(features["meddic_champion_strength"])
    severity = _assumed_level(features["meddic_pain_severity"])
    for i, field in enumerate(QUESTION_TOPICS):
        unknown = np.flatnonzero(_unknown(features, field))
        if not unknown.size:
            continue
        if field == "meddic_pain_type":
            answers = _pain_answers(severity[unknown])
            *by_type, none = answering.after(unknown, answers)
            grid = np.column_stack(by_type)
            best = grid.argmax(axis=1)
            kinds = np.column_stack([label for _, label in answers[:-1]])
            outcomes = [
                (grid.max(axis=1), kinds[np.arange(len(best)), best]),
                (none, answers[-1][1]),
            ]
        else:
            answers = _evidence_answers(field, strength[unknown])
            probabilities = answering.after(unknown, answers)
            outcomes = [
                (p, label) for p, (_, label) in zip(probabilities, answers, strict=True)
            ]
        for j, (probability, label) in enumerate(outcomes):
            after[unknown, 2 * i + j], labels[unknown, 2 * i + j] = probability, label
    return after, labels


def _percent(probability: np.ndarray) -> np.ndarray:
    """Probabilities as whole percents ("37%"), rounded as ``f"{p:.0%}"`` rounds."""
    return np.rint(probability * 100).astype(int).astype(str).astype(object) + "%"


def next_question(
    model: TrainedModel,
    features: pd.DataFrame,
    rows: np.ndarray | None = None,
    raw: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per lead, the unknown MEDDIC field whose answer would move its win probability
    most (``next_question``, "" when none is unknown) and by how much
    (``next_question_gain``, the absolute change in probability).

    ``rows`` and ``raw`` are the leads' model rows and raw scores when the caller
    has them already (:func:`lead_ml.model.feature_rows`, ``rows_margin``).
    """
    if features.empty:
        return pd.DataFrame(
            {"next_question": pd.Series(dtype="str"), "next_question_gain": 0.0},
            index=features.index,
        )
    rows = feature_rows(model, features) if rows is None else rows
    raw = rows_margin(model, rows) if raw is None else raw
    now = probability_of_margin(model, raw)
    after, labels = _answer_grid(model, features, rows, raw)
    gains = np.nan_to_num(np.abs(after - now[:, None]), nan=-1.0)
    best = gains.argmax(axis=1)
    leads = np.arange(len(features))
    asked = gains[leads, best] >= 0
    topics = np.repeat(np.asarray(list(QUESTION_TOPICS.values()), dtype=object), 2)
    # Built column-wise (object arrays add element by element): a Python f-string
    # per lead cost a third of the explained batch job.
    texts = (
        "Ask about "
        + topics[best]
        + ": "
        + labels[leads, best]
        + " would move the win probability from "
        + _percent(now)
        + " to "
        + _percent(np.nan_to_num(after[leads, best]))
    )
    return pd.DataFrame(
        {
            "next_question": pd.Series(
                np.where(asked, texts, ""), index=features.index, dtype="str"
            ),
            "next_question_gain": np.where(asked, gains[leads, best], 0.0),
        },
        index=features.index,
    )


def explain(
    model: TrainedModel,
    features: pd.DataFrame,
    n_reasons: int = 3,
    rows: np.ndarray | None = None,
    raw: np.ndarray | None = None,
) -> pd.DataFrame:
    """Contributions per dimension, base value, top reasons and the next question to
    ask, one row per lead, index kept. ``rows`` and ``raw``: the leads' model rows
    and raw scores, if at hand."""
    rows = feature_rows(model, features) if rows is None else rows
    contributions = dimension_contributions(model, features, rows)
    reasons = pd.Series(
        top_reasons(features, contributions, n_reasons),
        index=features.index,
        dtype="str",
        name="top_reasons",
    )
    questions = next_question(model, features, rows, raw)
    return pd.concat([contributions, reasons, questions], axis=1)
