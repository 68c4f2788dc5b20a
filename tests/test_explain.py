"""Explanations: additive contributions, shap agreement, honest reasons, the next
question, and recovery of the generator's strongest dimensions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lead_ml.config import DIMENSIONS, MEDDIC_DIMENSIONS
from lead_ml.explain import (
    CONTRIBUTION_COLUMNS,
    EVIDENCE_FIELDS,
    PHRASES,
    QUESTION_TOPICS,
    UNKNOWN,
    dimension_contributions,
    explain,
    reason_text,
)
from lead_ml.features import feature_dimensions
from lead_ml.model import margin, model_matrix
from lead_ml.scorer import Scorer, load_scorer

#: Leads explained per test: enough for every reason and question to occur.
SAMPLE = 600
#: The sentence next_question writes, split into its parts.
QUESTION = re.compile(
    r"Ask about (?P<topic>.+?): (?P<answer>.+) would move the win probability "
    r"from (?P<before>\d+)% to (?P<after>\d+)%"
)
#: reason phrase -> (dimension, state), to read a reason back.
PHRASE_OWNER = {
    phrase: (dimension, state)
    for dimension, states in PHRASES.items()
    for state, (phrase, _) in states.items()
}
FIELD_OF_TOPIC = {topic: field for field, topic in QUESTION_TOPICS.items()}


@pytest.fixture(scope="module")
def scorer(small_project: Path) -> Scorer:
    return load_scorer(small_project / "models/scorer")


@pytest.fixture(scope="module")
def activities(small_project: Path) -> pd.DataFrame:
    return pd.read_parquet(small_project / "data/validated/activities.parquet")


@pytest.fixture(scope="module")
def leads(small_leads: pd.DataFrame) -> pd.DataFrame:
    """A sample of lead rows with a scattered, non-default index."""
    sample = small_leads.sample(SAMPLE, random_state=3)
    return sample.set_axis(pd.Index(np.arange(SAMPLE) * 7 + 100))


@pytest.fixture(scope="module")
def features(
    scorer: Scorer, leads: pd.DataFrame, activities: pd.DataFrame
) -> pd.DataFrame:
    scored = scorer.score_chunk(leads, activities, explain_reasons=False)
    assert len(scored.rejects) == 0
    return scored.features


@pytest.fixture(scope="module")
def explained(scorer: Scorer, features: pd.DataFrame) -> pd.DataFrame:
    return explain(scorer.model, features)


@pytest.fixture(scope="module")
def scores(
    scorer: Scorer, leads: pd.DataFrame, activities: pd.DataFrame
) -> pd.DataFrame:
    return scorer.score(leads, activities)


def _logit(probability: np.ndarray) -> np.ndarray:
    return np.log(probability) - np.log1p(-probability)


def _read_reason(reason: str) -> tuple[str, str, str]:
    """(sign, dimension, state) of one reason."""
    sign, _, text = reason.partition(" ")
    dimension, state = PHRASE_OWNER[text.split(", yet this")[0]]
    return sign, dimension, state


def _unknown_fields(leads: pd.DataFrame) -> pd.DataFrame:
    """Per lead and question field: is the MEDDIC field unknown (or empty)?"""
    return pd.DataFrame(
        {
            field: leads[field].isna() | leads[field].eq(UNKNOWN)
            for field in QUESTION_TOPICS
        },
        index=leads.index,
    )


# --- contributions ----------------------------------------------------------------


def test_contributions_add_up_to_the_calibrated_log_odds_on_every_row(
    scorer: Scorer, features: pd.DataFrame, scores: pd.DataFrame
) -> None:
    columns = [*CONTRIBUTION_COLUMNS, "base_value"]
    total = scores[columns].sum(axis=1).to_numpy()
    log_odds = scorer.model.info.calibration.log_odds(margin(scorer.model, features))
    np.testing.assert_allclose(total, log_odds, rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        total, _logit(scores["probability"].to_numpy()), rtol=0, atol=1e-9
    )
    # Not a tautology of a constant: the dimensions move leads apart.
    assert scores["contrib_champion"].std() > 0.05
    assert scores["base_value"].nunique() == 1


# shap's import reaches matplotlib's pending deprecations; not ours to fix.
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
@pytest.mark.filterwarnings("ignore:LightGBM binary classifier:UserWarning")
def test_contributions_match_the_shap_library(
    scorer: Scorer, features: pd.DataFrame
) -> None:
    import shap

    explainer = shap.TreeExplainer(scorer.model.booster)
    matrix = model_matrix(features.head(200), scorer.model.info.categories)
    values = explainer(matrix)
    calibration = scorer.model.info.calibration
    dimension_of = feature_dimensions()
    per_feature = pd.DataFrame(values.values, columns=matrix.columns)
    by_dimension = per_feature.T.groupby(lambda f: dimension_of[f]).sum().T
    expected = calibration.slope * by_dimension[list(DIMENSIONS)].to_numpy()
    ours = dimension_contributions(scorer.model, features.head(200))
    np.testing.assert_allclose(
        ours[list(CONTRIBUTION_COLUMNS)].to_numpy(), expected, rtol=0, atol=1e-9
    )
    np.testing.assert_allclose(
        ours["base_value"].to_numpy(),
        calibration.log_odds(np.asarray(values.base_values)),
        rtol=0,
        atol=1e-9,
    )


def test_explain_keeps_the_index_and_does_not_mutate_its_input(
    scorer: Scorer, features: pd.DataFrame
) -> None:
    before = features.copy()
    explained = explain(scorer.model, features)
    pd.testing.assert_frame_equal(features, before)
    assert explained.index.equals(features.index)
    empty = explain(scorer.model, features.iloc[:0])
    assert len(empty) == 0 and "top_reasons" in empty


# --- reasons ----------------------------------------------------------------------


def test_an_unknown_meddic_field_is_never_negative_evidence(
    leads: pd.DataFrame, scores: pd.DataFrame
) -> None:
    unknown_and_lowering = 0
    for dimension, field in EVIDENCE_FIELDS.items():
        unknown = leads[field].eq(UNKNOWN).to_numpy()
        lowered = scores[f"contrib_{dimension}"].to_numpy() < 0
        for reasons in scores["top_reasons"][unknown]:
            for reason in filter(None, reasons.split("; ")):
                sign, owner, state = _read_reason(reason)
                if owner == dimension:
                    assert sign == "?" and state == UNKNOWN, reason
        unknown_and_lowering += int((unknown & lowered).sum())
    for reasons in scores["top_reasons"]:
        assert "- " + "pain not yet identified" not in reasons
        assert not re.search(r"(^|; )[-+] [^;]*not yet (known|identified)", reasons)
    # The case that matters occurs: unknown fields whose contribution is negative.
    assert unknown_and_lowering > 20


def test_top_reasons_are_the_three_strongest_with_their_signs(
    leads: pd.DataFrame, scores: pd.DataFrame
) -> None:
    contributions = scores[list(CONTRIBUTION_COLUMNS)].to_numpy()
    for row, reasons in enumerate(scores["top_reasons"]):
        read = [_read_reason(r) for r in reasons.split("; ") if r]
        assert 1 <= len(read) <= 3
        strongest = np.argsort(-np.abs(contributions[row]), kind="stable")[:3]
        assert [dimension for _, dimension, _ in read] == [
            DIMENSIONS[d] for d in strongest if contributions[row, d] != 0
        ]
        for sign, dimension, state in read:
            value = contributions[row, DIMENSIONS.index(dimension)]
            if state == UNKNOWN:
                assert sign == "?" and dimension in MEDDIC_DIMENSIONS
            else:
                assert sign == ("+" if value > 0 else "-"), (reasons, value)
    assert scores["top_reasons"].str.contains(r"^\+ ").any()
    assert scores["top_reasons"].str.contains(r"^- ").any()


@pytest.mark.parametrize(
    ("dimension", "state", "sign", "text"),
    [
        ("champion", "strong", "+", "+ champion identified and strong"),
        ("champion", UNKNOWN, "-", "? champion not yet known"),
        ("champion", UNKNOWN, "+", "? champion not yet known"),
        ("economic_buyer", "no", "-", "- no economic buyer access"),
        (
            "economic_buyer",
            "no",
            "+",
            "+ no economic buyer access, yet this raised the score",
        ),
        ("identify_pain", UNKNOWN, "-", "? pain not yet identified"),
        (
            "identify_pain",
            "productivity 5",
            "+",
            "+ clear productivity pain (severity 5/5)",
        ),
    ],
)
def test_reason_text(dimension: str, state: str, sign: str, text: str) -> None:
    assert reason_text(dimension, state, sign) == text


def test_reason_text_refuses_a_sign_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="sign"):
        reason_text("champion", "yes", "?")


# --- the next question ------------------------------------------------------------


def test_the_next_question_is_about_an_unknown_field(
    leads: pd.DataFrame, scores: pd.DataFrame
) -> None:
    unknown = _unknown_fields(leads)
    for row, question in enumerate(scores["next_question"]):
        if not unknown.iloc[row].any():
            assert question == ""
            continue
        asked = QUESTION.fullmatch(question)
        assert asked, question
        assert unknown.iloc[row][FIELD_OF_TOPIC[asked["topic"]]], question
    assert unknown.any(axis=1).mean() > 0.5  # most leads have something to ask


def _answers(lead: pd.Series) -> list[tuple[str, dict[str, object]]]:
    """Every answer to every unknown field of a lead, as (label, raw values)."""
    unknown = _unknown_fields(lead.to_frame().T).iloc[0]
    strength = lead["meddic_champion_strength"]
    strength = strength if 1 <= strength <= 5 else 3.0
    severity = lead["meddic_pain_severity"]
    severity = severity if 1 <= severity <= 5 else 3.0
    answers: list[tuple[str, dict[str, object]]] = []
    for field in (f for f in EVIDENCE_FIELDS.values() if unknown[f]):
        yes: dict[str, object] = {field: "yes"}
        no: dict[str, object] = {field: "no"}
        label = "a yes"
        if field == "meddic_champion":
            yes["meddic_champion_strength"], no["meddic_champion_strength"] = (
                strength,
                np.nan,
            )
            label = f"a yes (strength {int(strength)}/5)"
        answers += [(f"{QUESTION_TOPICS[field]}: {label}", yes)]
        answers += [(f"{QUESTION_TOPICS[field]}: a no", no)]
    if unknown["meddic_pain_type"]:
        topic = QUESTION_TOPICS["meddic_pain_type"]
        for pain in ("productivity", "support", "financial"):
            answers.append(
                (
                    f"{topic}: {pain} pain (severity {int(severity)}/5)",
                    {"meddic_pain_type": pain, "meddic_pain_severity": severity},
                )
            )
        answers.append(
            (
                f"{topic}: a no (no pain we solve)",
                {"meddic_pain_type": "none", "meddic_pain_severity": 0.0},
            )
        )
    return answers


def test_the_next_question_gain_is_the_real_change_and_the_largest(
    scorer: Scorer,
    leads: pd.DataFrame,
    activities: pd.DataFrame,
    scores: pd.DataFrame,
    explained: pd.DataFrame,
) -> None:
    asked = leads.index[scores["next_question"] != ""][:40]
    # The k-th answer of every lead goes in the k-th frame: an id once per frame.
    frames: dict[int, list[pd.Series]] = {}
    labels: dict[int, list[str]] = {}
    for index in asked:
        for k, (label, values) in enumerate(_answers(leads.loc[index])):
            row = leads.loc[index].copy()
            for column, value in values.items():
                row[column] = value
            frames.setdefault(k, []).append(row)
            labels.setdefault(k, []).append(label)
    parts = []
    for k, rows in frames.items():
        answered = pd.DataFrame(rows).astype(leads.dtypes.to_dict())
        after = scorer.score(answered, activities, explain_reasons=False)
        assert after["reject_reason"].isna().all()
        parts.append(
            pd.DataFrame(
                {
                    "lead": answered.index,
                    "label": labels[k],
                    "after": after["probability"].to_numpy(),
                }
            )
        )
    gains = pd.concat(parts, ignore_index=True)
    before = scores["probability"].reindex(gains["lead"]).to_numpy()
    gains["gain"] = np.abs(gains["after"].to_numpy() - before)
    for index in asked:
        options = gains[gains["lead"] == index]
        best = options.loc[options["gain"].idxmax()]
        reported = explained.loc[index]
        # The gain is the real change when the answer is filled in, and the largest.
        assert reported["next_question_gain"] == pytest.approx(best["gain"], abs=1e-12)
        question = QUESTION.fullmatch(reported["next_question"])
        assert question is not None
        topic_answer = f"{question['topic']}: {question['answer']}"
        chosen = options[options["label"] == topic_answer]
        assert len(chosen) == 1, (topic_answer, options["label"].tolist())
        assert chosen["gain"].iloc[0] == pytest.approx(best["gain"], abs=1e-12)
        assert int(question["after"]) == round(100 * chosen["after"].iloc[0])
        assert int(question["before"]) == round(100 * scores.loc[index, "probability"])


# --- recovery of the truth ----------------------------------------------------------


def test_the_strongest_true_dimensions_get_the_largest_contributions(
    small_project: Path,
    small_leads: pd.DataFrame,
    scorer: Scorer,
    activities: pd.DataFrame,
) -> None:
    from scipy.stats import spearmanr

    truth = json.loads((small_project / "data/raw/truth.json").read_text())
    strength = pd.Series(truth["dimension_strength"])
    scored = scorer.score_chunk(small_leads, activities, explain_reasons=False)
    assert len(scored.rejects) == 0
    contributions = dimension_contributions(scorer.model, scored.features)
    mean_abs = pd.Series(
        {d: contributions[f"contrib_{d}"].abs().mean() for d in DIMENSIONS}
    ).sort_values(ascending=False)
    true_top = list(strength.sort_values(ascending=False).index[:2])
    assert set(true_top) <= set(mean_abs.index[:3]), (mean_abs, strength)
    correlation = spearmanr(mean_abs[strength.index], strength).statistic
    assert correlation > 0.5, (mean_abs, strength)
