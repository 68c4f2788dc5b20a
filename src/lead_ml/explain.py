"""Why a lead scores as it does, in its own columns' words and MEDDIC dimensions.

Contributions are exact path-dependent TreeSHAP values (LightGBM's ``pred_contrib``,
computed by :mod:`lead_ml.fastshap`) per feature, moved into calibrated log-odds and
summed per dimension of the source's dimension map, so for every lead
``base_value + sum of contrib_<dimension>`` is its calibrated log-odds.

Reasons name the dimensions that moved the score most and, for each, the feature
that moved it most: ``+`` raised the score, ``-`` lowered it, ``?`` the column is not
yet known (blank, null or a declared placeholder: never read as negative evidence,
whatever the sign of its contribution). The next question is the unknown column of
a MEDDIC dimension whose answer would move the lead's win probability most, offered
only when that answer moves it by at least ``min_gain`` (default one percentage
point, :data:`MIN_QUESTION_GAIN`) and the probabilities before and after read apart;
otherwise the lead is told that no question is worth asking
(:func:`nothing_worth_asking`).

>>> spec = FeatureSpec("champion", "Champion", "evidence", "champion", 1)
>>> texts = reason_texts(spec, np.array([2.0, 1.0, 2.0]), np.array([0.4, -0.1, -0.2]))
>>> for text in texts:
...     print(text)
+ champion: Champion is yes
? champion: Champion not yet known
- champion: Champion is yes, yet this lowered the score
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lead_ml import fastshap
from lead_ml.features import (
    COUNT,
    INTENT,
    LAST_TOUCH,
    RECENT,
    TOTAL,
    FeatureRegistry,
    FeatureSpec,
)
from lead_ml.model import (
    TrainedModel,
    absent_features,
    feature_rows,
    model_rows,
    probability_of_margin,
)
from lead_ml.vocab import (
    EVIDENCE_CODES,
    MEDDIC_DIMENSIONS,
    OUTPUT_DIMENSIONS,
    dimension_label,
)

CONTRIBUTION_COLUMNS: tuple[str, ...] = tuple(f"contrib_{d}" for d in OUTPUT_DIMENSIONS)
REASON_COLUMNS: tuple[str, ...] = ("top_reasons", "next_question")
#: Answers tried for an unknown category: its most common training levels.
MAX_TRIED_LEVELS = 12
#: Kinds a next question can ask about (a date or an activity count is not asked).
ASKABLE = ("evidence", "bool", "category", "number")
#: One tried answer: the values the model's row takes (the asked feature's, and its
#: details' as answered alongside), and how a rep would say it.
Answer = tuple[dict[str, float], str]
#: The least change in win probability an answer must make for its question to be
#: offered: one percentage point ("from 88% to 88%" is not worth a call).
MIN_QUESTION_GAIN = 0.01
#: The next question of a lead whose unknown columns no answer would move enough.
NOTHING_WORTH_ASKING = (
    "No question worth asking: no answer would move the win probability"
)


def _ensemble(model: TrainedModel) -> fastshap.TreeEnsemble:
    return fastshap.compile_booster(model.booster, model.info.best_iteration)


def tree_codes(model: TrainedModel, rows: np.ndarray) -> np.ndarray:
    """The leads' way through every tree (:func:`lead_ml.fastshap.tree_codes`),
    decided once: their contributions and answered scores read them."""
    return fastshap.tree_codes(_ensemble(model), rows)


def codes_margin(
    model: TrainedModel, rows: np.ndarray, codes: np.ndarray
) -> np.ndarray:
    """The leads' raw log-odds (:func:`lead_ml.model.rows_margin`, to the last bit),
    read from their :func:`tree_codes` where every tree is tabulated by code."""
    return fastshap.predict_margin(
        _ensemble(model), rows, absent=absent_features(model), codes=codes
    )


def feature_contributions(
    model: TrainedModel, rows: np.ndarray, codes: np.ndarray | None = None
) -> np.ndarray:
    """Per lead, each feature's contribution in calibrated log-odds (model order),
    then the base value: a row sums to the lead's calibrated log-odds. ``codes``:
    the rows' :func:`tree_codes`, if at hand."""
    raw = fastshap.contributions(
        _ensemble(model), rows, absent=absent_features(model), codes=codes
    )
    calibration = model.info.calibration
    out = calibration.slope * raw
    out[:, -1] = calibration.log_odds(raw[:, -1])
    return out


def dimension_of_features(model: TrainedModel) -> np.ndarray:
    """Per feature (model order), the position of its dimension in
    OUTPUT_DIMENSIONS."""
    return np.array(
        [
            OUTPUT_DIMENSIONS.index(model.info.dimensions[n])
            for n in model.info.feature_names
        ],
        dtype=np.int64,
    )


def sum_by_dimension(model: TrainedModel, per_feature: np.ndarray) -> np.ndarray:
    """(leads, OUTPUT_DIMENSIONS) sums of per-feature contributions (bias left out)."""
    # Added feature by feature in model order, not as a product with a 0/1
    # matrix: BLAS kernels (picked by CPU) add in their own orders.
    sums = np.zeros((per_feature.shape[0], len(OUTPUT_DIMENSIONS)))
    for feature, dimension in enumerate(dimension_of_features(model)):
        sums[:, dimension] += per_feature[:, feature]
    return sums


def dimension_contributions(
    model: TrainedModel, per_feature: np.ndarray, index: pd.Index
) -> pd.DataFrame:
    """``contrib_<dimension>`` for every dimension of OUTPUT_DIMENSIONS, then
    ``base_value``, from per-feature contributions (:func:`feature_contributions`)."""
    contributions = pd.DataFrame(
        sum_by_dimension(model, per_feature),
        columns=list(CONTRIBUTION_COLUMNS),
        index=index,
    )
    contributions["base_value"] = per_feature[:, -1]
    return contributions


# --- reasons --------------------------------------------------------------------------


def number_words(value: float) -> str:
    """A number as a rep reads it: whole numbers as written (a year stays 1980),
    others to four significant digits.

    >>> number_words(1980.0), number_words(2.5), number_words(0.123456)
    ('1980', '2.5', '0.1235')
    """
    if np.isfinite(value) and value == round(value) and abs(value) < 1e15:
        return f"{value:.0f}"
    return f"{value:.4g}"


def _numbers(
    values: np.ndarray, spec: str = "", before: str = "", after: str = ""
) -> np.ndarray:
    """Each value as ``before + number + after`` (one format per distinct value):
    the number in the format ``spec``, or by :func:`number_words` without one.
    ``before`` and ``after`` are pasted as they are: they may hold names from the
    data (an activity type), which must never be read as a format string."""
    distinct, inverse = np.unique(values, return_inverse=True)
    texts = np.array(
        [
            before + (format(v, spec) if spec else number_words(v)) + after
            for v in distinct.tolist()
        ],
        dtype=object,
    )
    return texts[inverse.reshape(-1)]


def _unknown(spec: FeatureSpec, values: np.ndarray) -> np.ndarray:
    """Leads whose value of a column feature is not known."""
    if spec.kind == "evidence":
        return values == EVIDENCE_CODES["unknown"]
    return pd.isna(values)


def _value_texts(spec: FeatureSpec, values: np.ndarray) -> np.ndarray:
    """A column feature's known values as a rep reads them."""
    if spec.kind == "evidence":
        return np.where(values == EVIDENCE_CODES["yes"], "yes", "no").astype(object)
    if spec.kind == "bool":
        return np.where(values == 1.0, "yes", "no").astype(object)
    if spec.kind == "category":
        return values.astype(str).astype(object)
    floats = np.asarray(values, dtype=float)
    if spec.kind == "date":
        return _numbers(floats, "+,.0f", after=" days from the created date")
    return _numbers(floats)


def _activity_texts(spec: FeatureSpec, values: np.ndarray) -> np.ndarray:
    floats = np.asarray(values, dtype=float)
    if spec.activity in (COUNT, TOTAL):
        texts = _numbers(floats, ",.0f", after=" " + spec.words)
    elif spec.activity in (RECENT, INTENT):
        texts = _numbers(floats, ".2g", before=spec.words + " ")
    else:
        texts = _numbers(floats, ".0f", "last activity ", " days before the snapshot")
    none = np.isnan(floats) | ((floats == 0) & (spec.activity != LAST_TOUCH))
    if spec.activity in (TOTAL, LAST_TOUCH):
        texts[none] = "no activity before the snapshot"
    return texts


def reason_texts(
    spec: FeatureSpec, values: np.ndarray, contribution: np.ndarray
) -> np.ndarray:
    """The reason a feature gives, per lead: its dimension, sign and value."""
    sign = np.where(contribution > 0, "+", "-").astype(object)
    head = sign + f" {dimension_label(spec.dimension)}: "
    if spec.kind == "activity":
        return head + _activity_texts(spec, values)
    values = np.asarray(values, dtype=object if spec.kind == "category" else float)
    unknown = _unknown(spec, values)
    texts = np.full(len(values), "", dtype=object)
    known = ~unknown
    said = _value_texts(spec, values[known])
    texts[known] = head[known] + f"{spec.words} is " + said
    if spec.kind in ("evidence", "bool") and spec.monotone:
        yes = said == "yes"
        against = np.where(yes, contribution[known] < 0, contribution[known] > 0)
        if spec.monotone < 0:
            against = ~against
        surprise = np.where(
            contribution[known] < 0,
            ", yet this lowered the score",
            ", yet this raised the score",
        )
        texts[np.flatnonzero(known)[against]] += surprise[against]
    texts[unknown] = f"? {dimension_label(spec.dimension)}: {spec.words} not yet known"
    return texts


def _is_text(column: pd.Series) -> bool:
    return isinstance(column.dtype, pd.StringDtype) or column.dtype == object


def _feature_values(
    features: pd.DataFrame, name: str, rows: np.ndarray | None = None
) -> np.ndarray:
    """A feature's values (of the leads at positions ``rows``, default all): text
    as objects (None where missing), anything else as floats (NaN)."""
    column = features[name] if rows is None else features[name].iloc[rows]
    if _is_text(column):
        return np.asarray(column.astype(object).where(column.notna(), None))
    return column.to_numpy(dtype=float, na_value=np.nan)


def _distinct_reasons(
    spec: FeatureSpec, column: pd.Series, rows: np.ndarray, contribution: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`reason_texts` of a feature's ``column`` for the leads at ``rows``,
    formatted once per distinct value and sign: the distinct texts, and which of
    them each lead gives. A lead's text depends on nothing else, and a batch holds
    few distinct pairs (formatting every lead's text cost most of the explaining).
    Values are told apart exactly (text by value, numbers by their bits), except
    where the numbers hold both 0 and -0: np.unique, which formats numbers once per
    value, takes the two for one, so those leads are formatted all together."""
    sign = np.where(contribution > 0, 2, np.where(contribution < 0, 1, 0))
    text = _arrow_text(column) if _is_text(column) else None
    if text is not None:  # Arrow text: encoded and picked in Arrow
        encoded = pc.dictionary_encode(text).indices.fill_null(-1)
        codes = np.asarray(encoded.to_numpy(zero_copy_only=False), np.int64)[rows]
        values = None
    elif _is_text(column):
        codes = np.asarray(pd.factorize(column)[0], dtype=np.int64)[rows]
        values = None
    else:
        values = column.to_numpy(dtype=float, na_value=np.nan)[rows]
        negative = np.signbit(values[values == 0])
        if negative.any() and not negative.all():
            return reason_texts(spec, values, contribution), np.arange(len(rows))
        codes = np.asarray(pd.factorize(values.view(np.int64))[0], dtype=np.int64)
    # Each distinct (value, sign) pair once, by hashing; its first lead kept.
    inverse = np.asarray(pd.factorize((codes + 1) * 3 + sign)[0], dtype=np.int64)
    first = np.full(int(inverse.max(initial=-1)) + 1, len(inverse), dtype=np.int64)
    np.minimum.at(first, inverse, np.arange(len(inverse)))
    if text is not None:
        said = np.array(text.take(pa.array(rows[first])).to_pylist(), dtype=object)
    elif values is None:
        picked = column.iloc[rows[first]].astype(object)
        said = np.asarray(picked.where(picked.notna(), None))
    else:
        said = values[first]
    return reason_texts(spec, said, contribution[first]), inverse


def _arrow_text(column: pd.Series) -> pa.Array | None:
    """A text column's values as one Arrow array, when Arrow holds them."""
    if not isinstance(column.dtype, pd.StringDtype) or column.dtype.storage not in (
        "pyarrow",
        "pyarrow_numpy",
    ):
        return None
    values = pa.array(column.array)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values


def _combined_codes(parts: Sequence[np.ndarray], n: int) -> np.ndarray:
    """A code per lead, equal exactly where every one of ``parts`` (arrays of n
    hashable values, none missing) is."""
    key = np.zeros(n, dtype=np.int64)
    for values in parts:
        codes, distinct = pd.factorize(values)
        key = key * (len(distinct) + 1) + codes + 1
        key = np.asarray(pd.factorize(key)[0], dtype=np.int64)  # stays below n
    return key


def _joined(texts: list[str], ranked: Sequence[np.ndarray], n: int) -> pa.Array:
    """Per lead, its non-empty texts of every rank joined with "; ", as Arrow text
    (joined in Arrow, no Python string made per lead). ``ranked``: per rank, each
    lead's position in ``texts``.

    >>> first, second = np.array([1, 0, 0, 0]), np.array([2, 2, 0, 1])
    >>> _joined(["", "a", "b"], [first, second], 4).to_pylist()
    ['a; b', 'b', '', 'a']
    """
    if not ranked:
        return pa.array([""] * n, pa.string())
    # Each text after the first rank carries its separator; a lead whose first
    # rank is empty loses the one it then starts with. (pyarrow 25's join with
    # null_handling="skip" drops trailing rows where every part is null.)
    plain = pa.array(texts, pa.string())
    after = pa.array([f"; {text}" if text else "" for text in texts], pa.string())
    parts = [
        (plain if rank == 0 else after).take(pa.array(chosen))
        for rank, chosen in enumerate(ranked)
    ]
    joined = pc.binary_join_element_wise(*parts, "")
    return pc.replace_substring_regex(joined, "^; ", "", max_replacements=1)


def _strongest_dimensions(by_dimension: np.ndarray, n: int) -> np.ndarray:
    """Per lead, its n dimensions of largest absolute sum, strongest first, ties in
    dimension order: ``np.argsort(-abs, kind="stable")[:, :n]``, one argmax per rank
    instead of a sort per lead.

    >>> _strongest_dimensions(np.array([[0.1, -0.3, 0.3, 0.0]]), 3).tolist()
    [[1, 2, 0]]
    """
    strength = np.abs(by_dimension)
    ranks = min(max(n, 0), strength.shape[1])
    top = np.zeros((len(strength), ranks), dtype=np.int64)
    leads = np.arange(len(strength))
    for rank in range(ranks):
        top[:, rank] = strength.argmax(axis=1)  # the first of equal strengths
        strength[leads, top[:, rank]] = -1.0  # below every strength left
    return top


def top_reasons(
    registry: FeatureRegistry,
    model: TrainedModel,
    features: pd.DataFrame,
    per_feature: np.ndarray,
    n: int = 3,
    by_dimension: np.ndarray | None = None,
) -> pd.Series:
    """Per lead, the n dimensions that moved its score most, strongest first, each
    with the feature that moved it most, joined with "; " (text, the features'
    index). A dimension that did not move the score is left out. ``by_dimension``:
    :func:`sum_by_dimension` of ``per_feature``, if at hand."""
    if by_dimension is None:
        by_dimension = sum_by_dimension(model, per_feature)
    position = dimension_of_features(model)
    strength = np.abs(per_feature[:, :-1])
    names = model.info.feature_names
    for f, name in enumerate(names):
        # A detail not filled in (no champion, so no strength) is not the reason:
        # the answer it details is.
        if registry.spec(name).detail_of:
            strength[features[name].isna().to_numpy(), f] = -1.0
    # Per lead and dimension, its strongest feature.
    strongest = np.zeros_like(by_dimension, dtype=np.int64)
    for d in range(len(OUTPUT_DIMENSIONS)):
        members = np.flatnonzero(position == d)
        if members.size:
            strongest[:, d] = members[strength[:, members].argmax(axis=1)]
    top = _strongest_dimensions(by_dimension, n)
    leads = np.arange(len(features))
    # Every (rank, lead) entry at once, rank by rank: the dimension's move and its
    # feature. A feature has one dimension, so a lead meets it in one rank at most:
    # each feature's entries are formatted in one go, whatever their rank.
    moved = np.take_along_axis(by_dimension, top, axis=1).T.ravel()
    feature = np.take_along_axis(strongest, top, axis=1).T.ravel()
    lead = np.tile(leads, top.shape[1])
    # Each entry's text as a position in texts ("" first: no reason).
    chosen, texts = np.zeros(len(moved), dtype=np.int64), [""]
    given = np.flatnonzero(moved != 0)
    # int16 keys take numpy's radix sort (a model has far fewer features)
    key = feature[given].astype(np.int16 if len(names) < 2**15 else np.int64)
    order = given[np.argsort(key, kind="stable")]
    cuts = np.flatnonzero(np.diff(feature[order])) + 1
    for entries in np.split(order, cuts) if len(order) else []:
        name = names[int(feature[entries[0]])]
        said, which = _distinct_reasons(
            registry.spec(name), features[name], lead[entries], moved[entries]
        )
        chosen[entries] = len(texts) + which
        texts += said.tolist()
    n_leads = len(features)
    ranked = [chosen[r * n_leads : (r + 1) * n_leads] for r in range(top.shape[1])]
    joined = _joined(texts, ranked, n_leads)
    return pd.Series(
        pd.arrays.ArrowStringArray(joined),
        index=features.index,
        dtype="str",
        name="top_reasons",
    )


# --- the next question ----------------------------------------------------------------


def _answer_levels(
    spec: FeatureSpec, model: TrainedModel, train: pd.DataFrame
) -> list[tuple[float, str]]:
    """The values a question about a feature tries, with their words."""
    if spec.kind == "evidence":
        return [(EVIDENCE_CODES["yes"], "yes"), (EVIDENCE_CODES["no"], "no")]
    if spec.kind == "bool":
        return [(1.0, "yes"), (0.0, "no")]
    if spec.kind == "category":
        levels = model.info.categories[spec.name]
        counts = train[spec.name].dropna().astype(str).str.strip().str.lower()
        ranked = counts.value_counts().index.tolist()
        folded = [level.strip().lower() for level in levels]
        chosen = [folded.index(k) for k in ranked if k in folded][:MAX_TRIED_LEVELS]
        return [(float(i), levels[i]) for i in chosen]
    known = train[spec.name].dropna().astype(float)
    quartiles = sorted(set(known.quantile([0.25, 0.5, 0.75]).tolist()))
    return [(q, number_words(q)) for q in quartiles]


def _answered(
    spec: FeatureSpec, model: TrainedModel, train: pd.DataFrame
) -> np.ndarray:
    """Each training deal's value of a feature as the model's rows code it."""
    if spec.kind != "category":
        return train[spec.name].to_numpy(dtype=float, na_value=np.nan)
    return model_rows(train, model.info.categories, [spec.name])[:, 0]


def question_answers(
    registry: FeatureRegistry, model: TrainedModel, train: pd.DataFrame
) -> dict[str, list[Answer]]:
    """The answers a next question tries for each askable feature of a MEDDIC
    dimension (its details, see ``source.details``, are asked with it, not alone):
    yes and no, the most common training levels of a category, or the quartiles of a
    number. A detail answered alongside takes its median among the training deals
    (``train``) that gave the same answer."""
    answers: dict[str, list[Answer]] = {}
    details = [spec for spec in registry.specs if spec.detail_of]
    for spec in registry.specs:
        asked = spec.dimension in MEDDIC_DIMENSIONS and spec.kind in ASKABLE
        if not asked or spec.detail_of:
            continue
        mine = [d for d in details if d.detail_of == spec.name]
        given = _answered(spec, model, train)
        tried: list[Answer] = []
        for value, words in _answer_levels(spec, model, train):
            changes = {spec.name: value}
            said = [words]
            for detail in mine:
                alongside = train.loc[given == value, detail.name].dropna()
                typical = float(alongside.median()) if len(alongside) else np.nan
                changes[detail.name] = typical
                if not np.isnan(typical):
                    said.append(f"{detail.words} {number_words(typical)}")
            tried.append(
                (
                    changes,
                    said[0] + (f" ({', '.join(said[1:])})" if len(said) > 1 else ""),
                )
            )
        if tried:
            answers[spec.name] = tried
    return answers


class _Answering:
    """Win probabilities of leads after an answer that changes one feature (and its
    details).

    Only the trees splitting on the changed features can reach another leaf, and
    an answer takes the same way at each of their splits for every lead: the score
    after it is the score now minus those trees' values at the lead's way through
    them (its codes, decided once per chunk) plus their values at that way with
    the answered splits' bits replaced (:func:`lead_ml.fastshap.answer_margins`),
    one table lookup per tree and answer; exact to rounding.
    """

    def __init__(
        self,
        model: TrainedModel,
        rows: np.ndarray,
        now: np.ndarray,
        codes: np.ndarray | None = None,
    ):
        self.model, self.rows, self.now = model, rows, now
        self.ensemble = _ensemble(model)
        self.absent = absent_features(model)
        self.column = {name: i for i, name in enumerate(model.info.feature_names)}
        self._codes = codes

    @property
    def codes(self) -> np.ndarray:
        """The rows' codes (:func:`tree_codes`), decided on first use."""
        if self._codes is None:
            self._codes = fastshap.tree_codes(self.ensemble, self.rows)
        return self._codes

    def after(self, leads: np.ndarray, answers: Sequence[Answer]) -> np.ndarray:
        """(leads, answers) probabilities after each answer (positions in ``rows``)."""
        answered = [
            {self.column[f]: v for f, v in values.items()} for values, _ in answers
        ]
        margins = fastshap.answer_margins(
            self.ensemble, self.rows, self.now, answered, self.absent, self.codes, leads
        )
        return probability_of_margin(self.model, margins)


def _percent(probability: np.ndarray, decimals: int = 0) -> np.ndarray:
    """Probabilities as percents ("37%"; with decimals, "37.4%"): ``100 * p``
    rounded half to even, as ``round(100 * p, decimals)`` rounds.

    >>> _percent(np.array([0.37, 0.3744])).tolist(), _percent(np.array([0.3744]), 1)
    (['37%', '37%'], array(['37.4%'], dtype=object))
    """
    percents = np.round(np.asarray(probability, dtype=float) * 100, decimals)
    # Formatted once per distinct percent (at most 101 whole ones), spread back.
    distinct, inverse = np.unique(percents, return_inverse=True)
    texts = np.array([f"{p:.{decimals}f}%" for p in distinct.tolist()], dtype=object)
    return texts[inverse.reshape(-1)]


def _percent_pairs(now: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, ...]:
    """``now`` and ``after`` as percents, whole where they differ as whole percents,
    else with as many decimals (up to 3) as it takes to tell them apart: an answer
    that moves the probability never reads "from 2% to 2%".

    >>> now, after = _percent_pairs(np.array([0.0151, 0.3]), np.array([0.0154, 0.6]))
    >>> now.tolist(), after.tolist()
    (['1.51%', '30%'], ['1.54%', '60%'])
    """
    texts = [_percent(now), _percent(after)]
    for decimals in (1, 2, 3):
        same = texts[0] == texts[1]
        if not same.any():
            break
        for text, values in zip(texts, (now, after), strict=True):
            text[same] = _percent(values[same], decimals)
    return texts[0], texts[1]


def nothing_worth_asking(min_gain: float) -> str:
    """What a lead with unknown MEDDIC columns is told when no answer would move its
    win probability by ``min_gain`` or more.

    >>> nothing_worth_asking(0.01)[26:]
    'no answer would move the win probability by 1 point or more'
    """
    if min_gain <= 0:
        return NOTHING_WORTH_ASKING
    return f"{NOTHING_WORTH_ASKING} by {points_words(min_gain)} or more"


def points_words(gain: float) -> str:
    """A change in probability in percentage points, as a rep reads it.

    >>> points_words(0.01), points_words(0.025), points_words(0.1)
    ('1 point', '2.5 points', '10 points')
    """
    points = number_words(round(gain * 100, 4))
    return f"{points} point" + ("" if points == "1" else "s")


def _unknown_leads(spec: FeatureSpec, features: pd.DataFrame) -> np.ndarray:
    """Leads whose value of a column feature is not known (:func:`_unknown`); text
    is missing where its column is, without making Python objects of it."""
    column = features[spec.name]
    if spec.kind != "evidence" and _is_text(column):
        return np.asarray(column.isna().to_numpy(), dtype=bool)
    return np.asarray(_unknown(spec, _feature_values(features, spec.name)))


def _question_texts(
    labels: list[str],
    chosen: np.ndarray,
    probabilities: tuple[np.ndarray, np.ndarray],
    offered: np.ndarray,
    nothing: str,
) -> pa.Array:
    """The next question of each lead (Arrow text): where one is ``offered``,
    ``labels[chosen]`` with the probabilities now and after the answer; elsewhere,
    and where the two read alike even to three decimals (a move of a millionth is
    none), ``nothing`` where the lead has a question to try (``chosen`` > 0), ""
    where it has none. Formatted once per distinct question and pair of
    probabilities (of the offered leads only), spread back to the leads.

    >>> _question_texts(["", "Ask"], np.array([1, 1, 0, 1]),
    ...     (np.full(4, 0.2), np.array([0.5, 0.2, 0.0, 0.5])),
    ...     np.array([True, False, False, True]), "None").to_pylist()
    ['Ask would move the win probability from 20% to 50%', 'None', '', \
'Ask would move the win probability from 20% to 50%']
    """
    now, after = probabilities
    # Each lead's text as a position in texts: "" (none to ask), nothing, then
    # the offered questions by their probabilities' bits (formatted alike when equal).
    which = np.where(chosen > 0, 1, 0)
    texts = ["", nothing]
    leads = np.flatnonzero(offered)
    if leads.size:
        bits = [p[leads].view(np.int64) for p in (now, after)]
        key = _combined_codes([chosen[leads], *bits], leads.size)
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        distinct = leads[first]
        before, later = _percent_pairs(now[distinct], after[distinct])
        said = (
            np.array(labels, dtype=object)[chosen[distinct]]
            + " would move the win probability from "
            + before
            + " to "
            + later
        )
        position = np.where(before != later, 2 + np.arange(len(distinct)), 1)
        which[leads] = position[inverse.reshape(-1)]
        texts += said.tolist()
    return pa.array(texts, pa.string()).take(pa.array(which))


def next_question(
    registry: FeatureRegistry,
    model: TrainedModel,
    answers: Mapping[str, list[Answer]],
    features: pd.DataFrame,
    rows: np.ndarray,
    raw: np.ndarray,
    min_gain: float = MIN_QUESTION_GAIN,
    codes: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per lead, the unknown MEDDIC column whose answer would move its win
    probability most (``next_question``) and by how much (``next_question_gain``,
    the absolute change in probability). The question is offered only when that
    change is at least ``min_gain``; otherwise ``next_question`` says that none is
    worth asking (:func:`nothing_worth_asking`), and it is "" when no MEDDIC column
    of the lead is unknown (``next_question_gain`` 0). ``rows`` and ``raw``: the
    leads' model rows and raw scores; ``codes``: the rows' :func:`tree_codes`, if
    at hand."""
    n = len(features)
    now = probability_of_margin(model, raw)
    best_gain = np.full(n, -1.0)
    best_after = np.zeros(n)
    # Each lead's question as a position in labels ("" first: none asked).
    chosen, labels = np.zeros(n, dtype=np.int64), [""]
    answering = _Answering(model, rows, raw, codes)
    for name, tried in answers.items():
        spec = registry.spec(name)
        unknown = np.flatnonzero(_unknown_leads(spec, features))
        if not unknown.size:
            continue
        after = answering.after(unknown, tried)
        gains = np.abs(after - now[unknown, None])
        pick = gains.argmax(axis=1)
        gain = gains[np.arange(len(unknown)), pick]
        better = gain > best_gain[unknown]
        leads = unknown[better]
        best_gain[leads] = gain[better]
        best_after[leads] = after[np.arange(len(unknown)), pick][better]
        chosen[leads] = len(labels) + pick[better]
        labels += [f"Ask about {spec.words}: {said}" for _, said in tried]
    asked = best_gain >= 0
    # A change of exactly min_gain is offered: 1e-12 absorbs the float error of
    # the tree sums (0.89 - 0.88 is 0.010000000000000009 or 0.00999...).
    offered = asked & (best_gain >= min_gain - 1e-12)
    nothing = nothing_worth_asking(min_gain)
    question = _question_texts(labels, chosen, (now, best_after), offered, nothing)
    return pd.DataFrame(
        {
            "next_question": pd.Series(
                pd.arrays.ArrowStringArray(question), index=features.index, dtype="str"
            ),
            "next_question_gain": np.where(asked, best_gain, 0.0),
        },
        index=features.index,
    )


def explain(
    registry: FeatureRegistry,
    model: TrainedModel,
    answers: Mapping[str, list[Answer]],
    features: pd.DataFrame,
    rows: np.ndarray | None = None,
    raw: np.ndarray | None = None,
    n_reasons: int = 3,
    min_gain: float = MIN_QUESTION_GAIN,
    codes: np.ndarray | None = None,
) -> pd.DataFrame:
    """Contributions per dimension, base value, top reasons and the next question
    to ask (when an answer would move the win probability by ``min_gain`` or more,
    see :func:`next_question`), one row per lead, index kept. ``rows``, ``raw`` and
    ``codes``: the leads' model rows, raw scores and :func:`tree_codes`, if at
    hand."""
    rows = feature_rows(model, features) if rows is None else rows
    # decided once for the score, the contributions and the answers
    codes = tree_codes(model, rows) if codes is None else codes
    raw = codes_margin(model, rows, codes) if raw is None else raw
    per_feature = feature_contributions(model, rows, codes)
    contributions = dimension_contributions(model, per_feature, features.index)
    by_dimension = contributions[list(CONTRIBUTION_COLUMNS)].to_numpy()
    reasons = top_reasons(
        registry, model, features, per_feature, n_reasons, by_dimension
    )
    questions = next_question(
        registry, model, answers, features, rows, raw, min_gain, codes
    )
    return pd.concat([contributions, reasons, questions], axis=1)


def answers_to_json(answers: Mapping[str, list[Answer]]) -> dict[str, Any]:
    """Answers as plain JSON: lists of [values, words], a missing value as null."""
    return {
        name: [
            [{f: None if np.isnan(v) else v for f, v in values.items()}, words]
            for values, words in tried
        ]
        for name, tried in answers.items()
    }


def answers_from_json(raw: Mapping[str, Any]) -> dict[str, list[Answer]]:
    """The answers :func:`answers_to_json` wrote."""
    return {
        name: [
            (
                {f: np.nan if v is None else float(v) for f, v in values.items()},
                str(words),
            )
            for values, words in tried
        ]
        for name, tried in raw.items()
    }
