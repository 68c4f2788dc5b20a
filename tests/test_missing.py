"""Unknown is not negative, for every source and every kind of field: a blank,
null or declared placeholder scores as the explicit unknown state, a missing value
the model never saw missing is scored as not known (never as 0), and values of a
closed vocabulary mean the same whatever their case and surrounding spaces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import treeoracle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from projects import Project
from scoring import (
    feature_columns,
    feature_of,
    same_scores,
    score_variants,
    unknown_spellings,
)

from lead_ml.explain import CONTRIBUTION_COLUMNS, feature_contributions
from lead_ml.model import absent_features
from lead_ml.scorer import Scorer, load_scorer
from lead_ml.vocab import EVIDENCE_CODES

#: The input kinds a feature reads straight from a lead's column.
KINDS = ("number", "date", "bool", "evidence", "category")
OUTPUT = ["probability", "band", *CONTRIBUTION_COLUMNS, "top_reasons", "next_question"]

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*AnyType:UserWarning"),
    pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:mlflow"),
]


@pytest.fixture(scope="module")
def scorer(project: Project) -> Scorer:
    return load_scorer(project.path("models/scorer"))


@pytest.fixture(scope="module")
def leads(project: Project) -> pd.DataFrame:
    """60 lead rows, old and recent."""
    rows = project.leads()
    return pd.concat([rows.head(20), rows.tail(40)], ignore_index=True)


@pytest.fixture(scope="module")
def log(project: Project, scorer: Scorer) -> pd.DataFrame | None:
    activities = project.activities()
    return None if activities is None else scorer.read_activities(activities)[0]


def columns_of_kinds(scorer: Scorer) -> dict[str, list[str]]:
    """The source's feature columns by kind (kinds it has none of left out)."""
    found = {kind: feature_columns(scorer, kind) for kind in KINDS}
    return {kind: columns for kind, columns in found.items() if columns}


def test_a_missing_value_is_scored_as_not_known_for_every_kind(
    scorer: Scorer, leads: pd.DataFrame, log: pd.DataFrame | None
) -> None:
    """One column at a time left blank: the score is the plain-Python reading of
    the model with that value not known (LightGBM's learned rule where training
    had blanks, the average over the training rows where it had none); a feature
    never missing in training then adds nothing to the explanation."""
    model = scorer.model
    absent = absent_features(model)
    dump = model.booster.dump_model(num_iteration=model.info.best_iteration)
    names = model.info.feature_names
    kinds = columns_of_kinds(scorer)
    columns = [c for group in kinds.values() for c in group]
    scored = score_variants(scorer, leads, log, [{c: ""} for c in columns])
    averaged = 0
    for column, run in zip(columns, scored, strict=True):
        name = feature_of(scorer, column)
        position = names.index(name)
        values = run.rows[:, position]
        if scorer.registry.spec(name).kind == "evidence":
            assert (values == EVIDENCE_CODES["unknown"]).all(), column
        else:
            assert np.isnan(values).all(), column
        calibration = model.info.calibration
        for i in range(0, len(leads), 12):
            raw = treeoracle.margin(dump, run.rows[i], absent)
            expected = 1 / (1 + np.exp(-calibration.log_odds(np.array(raw))))
            assert run.output["probability"][i] == pytest.approx(expected, abs=1e-12)
        if absent[position] and np.isnan(values).all():
            averaged += 1
            contributions = feature_contributions(model, run.rows)
            assert np.abs(contributions[:, position]).max() < 1e-9, column
    assert averaged == sum(
        1
        for c in columns
        if absent[names.index(feature_of(scorer, c))]
        and scorer.registry.spec(feature_of(scorer, c)).kind != "evidence"
    )


def test_blank_numbers_never_score_as_zero(
    scorer: Scorer, leads: pd.DataFrame, log: pd.DataFrame | None
) -> None:
    """Where the model had no rule for a blank number, reading it as 0 (LightGBM's
    default) gives other scores than the scorer's "not known" for some lead."""
    model = scorer.model
    absent = absent_features(model)
    names = model.info.feature_names
    complete = [
        c
        for c in feature_columns(scorer, "number")
        if absent[names.index(feature_of(scorer, c))]
    ]
    if not complete:
        pytest.skip(
            f"{scorer.spec['source_name']}: every number had blanks in training"
        )
    # 0, or the lowest value a column's bounds allow
    zeros = {
        c: max(0.0, scorer.contract.bounds.get(c, (None, None))[0] or 0.0)
        for c in complete
    }
    blank, zero = score_variants(
        scorer, leads, log, [dict.fromkeys(complete, ""), zeros]
    )
    assert not np.allclose(blank.output["probability"], zero.output["probability"])


def test_a_yes_no_answer_means_the_same_in_any_case_and_spacing(
    scorer: Scorer, leads: pd.DataFrame, log: pd.DataFrame | None
) -> None:
    """Yes, YES and ' yes ' are yes (and the same for no, and for true / false):
    nothing rejected, nothing counted as unseen, every output the same."""
    columns = feature_columns(scorer, "evidence") + feature_columns(scorer, "bool")
    if not columns:
        pytest.skip(f"{scorer.spec['source_name']}: no yes/no column is a feature")
    half = len(leads) // 2
    answers = ["yes"] * half + ["no"] * (len(leads) - half)
    spelled = [
        {c: [a.upper() for a in answers] for c in columns},
        {c: [f"  {a.title()} " for a in answers] for c in columns},
    ]
    plain, *others = score_variants(
        scorer, leads, log, [dict.fromkeys(columns, answers), *spelled]
    )
    for other in others:
        same_scores(other, plain, OUTPUT)
        assert other.unseen == plain.unseen


def test_an_unknown_word_in_a_yes_no_column_is_rejected_with_its_reason(
    scorer: Scorer, leads: pd.DataFrame, log: pd.DataFrame | None
) -> None:
    columns = feature_columns(scorer, "evidence") + feature_columns(scorer, "bool")
    if not columns:
        pytest.skip(f"{scorer.spec['source_name']}: no yes/no column is a feature")
    sample = leads.head(5).astype({columns[0]: object})
    sample.loc[2, columns[0]] = "maybe"
    scored = scorer.score_chunk(sample, log, explain_reasons=False)
    assert len(scored.output) == 4 and len(scored.rejects) == 1
    assert f"{columns[0]} is not" in scored.rejects["reason"].iloc[0]
    assert "'maybe'" in scored.rejects["reason"].iloc[0]


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_mix_of_blank_null_and_placeholders_scores_as_null(
    scorer: Scorer, leads: pd.DataFrame, log: pd.DataFrame | None, data: st.DataObject
) -> None:
    """Any columns, each cell a random way of saying "not known", score exactly as
    the same cells left null."""
    columns = feature_columns(scorer)
    chosen = data.draw(
        st.lists(st.sampled_from(columns), min_size=1, max_size=4, unique=True)
    )
    sample = leads.head(12)
    spellings = unknown_spellings(scorer)
    mixed = {
        c: data.draw(
            st.lists(
                st.sampled_from(spellings), min_size=len(sample), max_size=len(sample)
            )
        )
        for c in chosen
    }
    null, spelled = score_variants(
        scorer, sample, log, [dict.fromkeys(chosen, None), mixed]
    )
    same_scores(spelled, null, OUTPUT)
