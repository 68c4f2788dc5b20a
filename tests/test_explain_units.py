"""The explanations' rules on a small model trained here (tests/small_scorer.py):
contributions equal to LightGBM's own in calibrated log-odds and summed per
dimension, reasons and their exact words, the next question's gain as a full
rescore of the lead with the answer, its threshold, and the answers tried. Every
expected value is worked out in the test (LightGBM's pred_contrib, predict_proba of
the answered lead)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from small_scorer import REGISTRY, features_of, raw_leads, trained

from lead_ml import fastshap
from lead_ml.explain import (
    CONTRIBUTION_COLUMNS,
    MAX_TRIED_LEVELS,
    NOTHING_WORTH_ASKING,
    _combined_codes,
    _distinct_reasons,
    _feature_values,
    _joined,
    _percent_pairs,
    _strongest_dimensions,
    _unknown_leads,
    answers_from_json,
    answers_to_json,
    codes_margin,
    dimension_of_features,
    explain,
    feature_contributions,
    next_question,
    nothing_worth_asking,
    number_words,
    points_words,
    question_answers,
    reason_texts,
    sum_by_dimension,
    top_reasons,
    tree_codes,
)
from lead_ml.features import (
    COUNT,
    INTENT,
    LAST_TOUCH,
    RECENT,
    TOTAL,
    FeatureRegistry,
    FeatureSpec,
)
from lead_ml.model import feature_rows, model_matrix, predict_proba, rows_margin
from lead_ml.vocab import OUTPUT_DIMENSIONS


def leads(n: int, seed: int) -> pd.DataFrame:
    return features_of(raw_leads(n, seed))


# --- contributions -------------------------------------------------------------------


def test_contributions_are_lightgbms_in_calibrated_log_odds() -> None:
    model, _ = trained()
    features = leads(40, seed=31)
    rows = feature_rows(model, features)
    per_feature = feature_contributions(model, rows)
    matrix = model_matrix(features, model.info.categories, model.info.feature_names)
    lightgbm = np.asarray(
        model.booster.predict(
            matrix, pred_contrib=True, num_iteration=model.info.best_iteration
        ),
        dtype=float,
    )
    calibration = model.info.calibration
    assert per_feature[:, :-1] == pytest.approx(
        calibration.slope * lightgbm[:, :-1], abs=1e-9
    )
    assert per_feature[:, -1] == pytest.approx(
        calibration.slope * lightgbm[:, -1] + calibration.intercept, abs=1e-9
    )
    p = predict_proba(model, features)
    assert per_feature.sum(axis=1) == pytest.approx(np.log(p / (1 - p)), abs=1e-9)


def test_the_feature_matrix_is_the_model_matrix_as_lightgbm_reads_it() -> None:
    """float64, a category as its code (the first level 0, missing NaN), nullable
    numbers with NaN for NA; LightGBM's own prediction of the frame and of the
    rows agree, and so do its contributions and fastshap's."""
    frame = pd.DataFrame(
        {
            "a": pd.Categorical(["x", None, "y", "x"], categories=["x", "y"]),
            "b": pd.array([1, None, 3, 4], dtype="Int64"),
            "c": [0.5, np.nan, 2.0, -1.0],
        }
    )
    rows = fastshap.feature_matrix(frame)
    assert rows.dtype == np.float64 and rows.shape == (4, 3)
    np.testing.assert_array_equal(
        rows,
        [[0.0, 1.0, 0.5], [np.nan, np.nan, np.nan], [1.0, 3.0, 2.0], [0.0, 4.0, -1.0]],
    )
    model, _ = trained()
    features = leads(60, seed=44)
    features.loc[features.index[:5], "industry"] = "never-seen"
    features.loc[features.index[5:9], "industry"] = None
    names = model.info.feature_names
    matrix = model_matrix(features, model.info.categories, names)
    rows = fastshap.feature_matrix(matrix)
    assert np.isnan(rows[5:9, names.index("industry")]).all()
    best = model.info.best_iteration
    assert model.booster.predict(rows, num_iteration=best, raw_score=True) == (
        pytest.approx(
            model.booster.predict(matrix, num_iteration=best, raw_score=True),
            abs=0,
        )
    )
    lightgbm = model.booster.predict(matrix, pred_contrib=True, num_iteration=best)
    ensemble = fastshap.compile_booster(model.booster, best)
    np.testing.assert_allclose(
        fastshap.contributions(ensemble, rows), lightgbm, rtol=0, atol=1e-9
    )
    np.testing.assert_array_equal(feature_rows(model, features), rows)


def test_contributions_are_summed_by_the_dimension_of_each_feature() -> None:
    model, _ = trained()
    assert dimension_of_features(model).tolist() == [
        OUTPUT_DIMENSIONS.index(d) for d in ("fit", "fit", "champion")
    ]
    features = leads(30, seed=32)
    out = explain(REGISTRY, model, {}, features)
    per_feature = feature_contributions(model, feature_rows(model, features))
    fit = OUTPUT_DIMENSIONS.index("fit")
    champion = OUTPUT_DIMENSIONS.index("champion")
    by_dimension = sum_by_dimension(model, per_feature)
    assert by_dimension[:, fit] == pytest.approx(per_feature[:, 0] + per_feature[:, 1])
    assert by_dimension[:, champion] == pytest.approx(per_feature[:, 2])
    others = np.delete(by_dimension, [fit, champion], axis=1)
    assert (others == 0).all()
    assert out[list(CONTRIBUTION_COLUMNS)].to_numpy() == pytest.approx(by_dimension)
    assert out["base_value"].to_numpy() == pytest.approx(per_feature[:, -1])
    assert out.index.equals(features.index)
    # No answers to try: no question for anyone.
    assert (out["next_question"] == "").all()
    assert (out["next_question_gain"] == 0).all()


# --- reasons -------------------------------------------------------------------------


def test_top_reasons_are_the_strongest_dimensions_and_their_strongest_feature() -> None:
    model, _ = trained()
    features = leads(60, seed=33)
    per_feature = feature_contributions(model, feature_rows(model, features))
    reasons = top_reasons(REGISTRY, model, features, per_feature, n=2)
    fit = per_feature[:, 0] + per_feature[:, 1]
    champion = per_feature[:, 2]
    for i, text in enumerate(reasons.tolist()):
        parts = []
        # champion comes before fit in OUTPUT_DIMENSIONS: ties keep that order
        moves = [("champion", champion[i]), ("fit", fit[i])]
        moves.sort(key=lambda kv: -abs(kv[1]))
        for dimension, moved in moves:
            if moved == 0:
                continue
            if dimension == "fit":
                f = 0 if abs(per_feature[i, 0]) >= abs(per_feature[i, 1]) else 1
            else:
                f = 2
            spec = REGISTRY.specs[f]
            value = features[spec.name].iloc[i]
            said = reason_texts(
                spec,
                np.array([value], dtype=object if f == 1 else float),
                np.array([moved]),
            )
            parts.append(said[0])
        assert text == "; ".join(parts), i
    assert reasons.index.equals(features.index)
    one = top_reasons(REGISTRY, model, features, per_feature, n=1)
    assert [t.split("; ")[0] for t in reasons] == one.tolist()


def test_reason_texts_say_the_value_the_sign_and_a_surprise() -> None:
    evidence = FeatureSpec("champion", "Champion", "evidence", "champion", 1)
    texts = reason_texts(
        evidence,
        np.array([2.0, 0.0, 1.0, 2.0, 0.0]),
        np.array([0.4, -0.1, -0.2, -0.3, 0.2]),
    )
    assert texts.tolist() == [
        "+ champion: Champion is yes",
        "- champion: Champion is no",
        "? champion: Champion not yet known",
        "- champion: Champion is yes, yet this lowered the score",
        "+ champion: Champion is no, yet this raised the score",
    ]
    against = FeatureSpec("churned", "Churned", "bool", "economic_buyer", -1)
    texts = reason_texts(
        against, np.array([1.0, 1.0, 0.0, np.nan]), np.array([0.5, -0.5, -0.5, 0.1])
    )
    assert texts.tolist() == [
        "+ economic buyer: Churned is yes, yet this raised the score",
        "- economic buyer: Churned is yes",
        "- economic buyer: Churned is no, yet this lowered the score",
        "? economic buyer: Churned not yet known",
    ]
    # A move of exactly 0 is no surprise, whatever the answer.
    assert reason_texts(
        evidence, np.array([2.0, 0.0]), np.array([0.0, 0.0])
    ).tolist() == ["- champion: Champion is yes", "- champion: Champion is no"]
    plain = FeatureSpec("urgent", "Urgent", "bool", "identify_pain")
    assert reason_texts(plain, np.array([1.0]), np.array([-0.5])).tolist() == [
        "- identify pain: Urgent is yes"
    ]
    category = FeatureSpec("industry", "Industry", "category", "fit")
    assert reason_texts(
        category, np.array(["Retail", None], dtype=object), np.array([0.0, 1.0])
    ).tolist() == ["- fit: Industry is Retail", "? fit: Industry not yet known"]
    number = FeatureSpec("employees", "Employees", "number", "fit", label="Staff")
    assert reason_texts(
        number, np.array([1980.0, 2.5, 0.123456]), np.array([1.0, 1.0, -1.0])
    ).tolist() == [
        "+ fit: Staff is 1980",
        "+ fit: Staff is 2.5",
        "- fit: Staff is 0.1235",
    ]
    date = FeatureSpec("close", "Close", "date", "decision_process")
    assert reason_texts(
        date, np.array([1234.0, -3.0]), np.array([1.0, 1.0])
    ).tolist() == [
        "+ decision process: Close is +1,234 days from the created date",
        "+ decision process: Close is -3 days from the created date",
    ]


def test_activity_reasons_say_counts_and_recency() -> None:
    def spec(activity: str, words: str) -> FeatureSpec:
        return FeatureSpec(
            "a", "", "activity", "engagement", label=words, activity=activity
        )

    values = np.array([1234.0, 0.0, np.nan])
    sign = np.array([1.0, -1.0, 1.0])
    assert reason_texts(spec(COUNT, "emails"), values, sign).tolist() == [
        "+ engagement: 1,234 emails",
        "- engagement: 0 emails",
        "+ engagement: nan emails",
    ]
    assert reason_texts(spec(TOTAL, "touches"), values, sign).tolist() == [
        "+ engagement: 1,234 touches",
        "- engagement: no activity before the snapshot",
        "+ engagement: no activity before the snapshot",
    ]
    assert reason_texts(
        spec(RECENT, "recent"), np.array([0.123]), sign[:1]
    ).tolist() == ["+ engagement: recent 0.12"]
    assert reason_texts(spec(INTENT, "intent"), np.array([2.0]), sign[:1]).tolist() == [
        "+ engagement: intent 2"
    ]
    assert reason_texts(
        spec(RECENT, "recent"), np.array([1234.0]), sign[:1]
    ).tolist() == ["+ engagement: recent 1.2e+03"]
    assert reason_texts(spec(LAST_TOUCH, "x"), np.array([12.6]), sign[:1]).tolist() == [
        "+ engagement: last activity 13 days before the snapshot"
    ]
    assert reason_texts(spec(LAST_TOUCH, "x"), values, sign).tolist() == [
        "+ engagement: last activity 1234 days before the snapshot",
        "- engagement: last activity 0 days before the snapshot",
        "+ engagement: no activity before the snapshot",
    ]


def test_words_for_numbers_points_and_percents() -> None:
    assert number_words(1980.0) == "1980"
    assert number_words(-2.0) == "-2"
    assert number_words(0.123456) == "0.1235"
    assert number_words(1e15) == "1e+15"
    assert number_words(float("inf")) == "inf"
    assert points_words(0.01) == "1 point"
    assert points_words(0.025) == "2.5 points"
    assert points_words(0.02) == "2 points"
    assert nothing_worth_asking(0.0) == NOTHING_WORTH_ASKING
    assert nothing_worth_asking(0.05) == (NOTHING_WORTH_ASKING + " by 5 points or more")
    now, after = _percent_pairs(
        np.array([0.0151, 0.3, 0.123451, 0.5, 0.3]),
        np.array([0.0154, 0.6, 0.123459, 0.5, 0.301]),
    )
    assert now.tolist() == ["1.51%", "30%", "12.345%", "50.000%", "30.0%"]
    assert after.tolist() == ["1.54%", "60%", "12.346%", "50.000%", "30.1%"]
    # Rounded to 4 decimals of a point (float noise), then read as a number.
    assert points_words(1.2345e-6) == "0.0001 points"
    assert points_words(0.007 * 10) == "7 points"


def test_the_strongest_dimensions_and_joined_texts() -> None:
    by = np.array([[0.1, -0.3, 0.3, 0.0], [0.0, 0.0, 0.0, 0.2]])
    assert _strongest_dimensions(by.copy(), 3).tolist() == [[1, 2, 0], [3, 0, 1]]
    assert _strongest_dimensions(by.copy(), 9).shape == (2, 4)
    assert _strongest_dimensions(by.copy(), 0).shape == (2, 0)
    first, second = np.array([1, 0, 0, 2]), np.array([2, 2, 0, 1])
    assert _joined(["", "a", "b"], [first, second], 4).to_pylist() == [
        "a; b",
        "b",
        "",
        "b; a",
    ]
    assert _joined(["", "a"], [], 2).to_pylist() == ["", ""]
    assert _joined(["", "a"], [], 0).to_pylist() == []
    assert _joined(["", "a"], [], 0).type == pa.string()
    # A lead whose later ranks give nothing ends with its last reason.
    assert _joined(
        ["", "a", "b"], [np.array([1, 2]), np.array([0, 0])], 2
    ).to_pylist() == ["a", "b"]
    codes = _combined_codes([np.array([1, 1, 2, 2]), np.array(["x", "y", "x", "x"])], 4)
    assert codes.tolist() == [0, 1, 2, 2]
    # More values in the first part than the second has: still one code per pair.
    codes = _combined_codes([np.arange(6), np.array([0, 1, 0, 1, 0, 1])], 6)
    assert codes.tolist() == [0, 1, 2, 3, 4, 5]
    codes = _combined_codes(
        [np.array([0, 1, 0, 1, 2, 2]), np.array([1, 0, 1, 0, 1, 0])], 6
    )
    assert codes.tolist() == [0, 1, 0, 1, 2, 3]


def test_explain_is_its_parts_on_the_leads_own_index() -> None:
    """explain's columns are the contributions, top reasons and next question each
    computed on its own, on the features' index (not positions)."""
    model, window = trained()
    features = leads(50, seed=42)
    features.index = pd.Index([f"lead-{i}" for i in range(50)][::-1], name="id")
    answers = question_answers(REGISTRY, model, window)
    out = explain(REGISTRY, model, answers, features)
    rows = feature_rows(model, features)
    per_feature = feature_contributions(model, rows)
    assert list(out.columns) == [
        *CONTRIBUTION_COLUMNS,
        "base_value",
        "top_reasons",
        "next_question",
        "next_question_gain",
    ]
    assert out.index.equals(features.index)
    by_dimension = sum_by_dimension(model, per_feature)
    assert out[list(CONTRIBUTION_COLUMNS)].to_numpy() == pytest.approx(
        by_dimension, abs=1e-12
    )
    reasons = top_reasons(REGISTRY, model, features, per_feature)
    assert out["top_reasons"].tolist() == reasons.tolist()
    questions = next_question(
        REGISTRY, model, answers, features, rows, rows_margin(model, rows)
    )
    assert out["next_question"].tolist() == questions["next_question"].tolist()
    assert out["next_question_gain"].to_numpy() == pytest.approx(
        questions["next_question_gain"].to_numpy(), abs=1e-12
    )
    assert out["next_question"].dtype == "str" and out["top_reasons"].dtype == "str"
    asked = out["next_question"].str.startswith("Ask")
    assert asked.any() and (~asked).any()


def test_top_reasons_of_one_lead_none_and_no_rank() -> None:
    """The default is three reasons, a dimension that did not move is left out
    (this model moves two), one lead and no lead are explained, and the reasons are
    text named top_reasons on the features' index."""
    model, _ = trained()
    features = leads(20, seed=43)
    features.index = pd.Index(np.arange(20) * 7 + 100)
    per_feature = feature_contributions(model, feature_rows(model, features))
    three = top_reasons(REGISTRY, model, features, per_feature)
    assert (
        three.tolist()
        == top_reasons(REGISTRY, model, features, per_feature, n=2).tolist()
    )
    assert three.str.count("; ").max() == 1  # two dimensions, no empty third part
    assert not three.str.contains("; ;|; $|^; ", regex=True).any()
    assert three.name == "top_reasons" and three.dtype == "str"
    assert three.index.equals(features.index)
    for i in (0, 13):
        one = top_reasons(REGISTRY, model, features.iloc[[i]], per_feature[[i]])
        assert one.tolist() == [three.iloc[i]]
        assert one.index.tolist() == [features.index[i]]
    nothing = top_reasons(REGISTRY, model, features.iloc[:0], per_feature[:0])
    assert nothing.tolist() == [] and nothing.name == "top_reasons"
    assert nothing.dtype == "str"
    none = top_reasons(REGISTRY, model, features, per_feature, n=0)
    assert none.tolist() == [""] * 20


def distinct_reason_cases() -> list[tuple[FeatureSpec, pd.Series]]:
    """A feature column of every kind and every dtype a features frame holds it in,
    with repeats, blanks, NaN and both zeros."""
    rng = np.random.default_rng(41)
    n = 400
    words = np.array(["Retail", "retail", "Mining", "", "Software", None], dtype=object)
    text = words[rng.integers(0, len(words), n)]
    numbers = rng.choice([0.0, -0.0, 1.5, 2.0, 1980.0, np.nan, 0.125], n)
    # both zeros, but every 0 first: one sign of zero per batch is the fast path
    plain_zero = np.where(numbers == 0, 0.0, numbers)
    evidence = rng.choice([0.0, 1.0, 2.0], n)
    whole = rng.integers(0, 5, n)
    category = FeatureSpec("industry", "Industry", "category", "fit")
    number = FeatureSpec("employees", "Employees", "number", "fit")
    cases = [
        (category, pd.Series(text, dtype="str")),
        (category, pd.Series(text, dtype=pd.StringDtype("python"))),
        (category, pd.Series(text, dtype=pd.StringDtype("pyarrow"))),
        (category, pd.Series(text, dtype=object)),
        (number, pd.Series(numbers)),
        (number, pd.Series(plain_zero)),
        (number, pd.Series(-np.abs(plain_zero))),
        (number, pd.Series(numbers, dtype="Float64")),
        (number, pd.Series(pd.array(whole, "Int64")).mask(whole == 4)),
        (number, pd.Series(whole)),
        (
            FeatureSpec("champion", "Champion", "evidence", "champion", 1),
            pd.Series(evidence),
        ),
        (
            FeatureSpec("churned", "Churned", "bool", "economic_buyer", -1),
            pd.Series(np.where(evidence == 1.0, np.nan, evidence / 2)),
        ),
        (
            FeatureSpec("close", "Close", "date", "decision_process"),
            pd.Series(numbers * 10),
        ),
        (
            FeatureSpec(
                "t", "", "activity", "engagement", label="touches", activity=TOTAL
            ),
            pd.Series(numbers),
        ),
        (
            FeatureSpec(
                "c", "", "activity", "engagement", label="calls", activity=COUNT
            ),
            pd.Series(whole.astype(float)),
        ),
    ]
    return cases


@pytest.mark.parametrize("case", range(len(distinct_reason_cases())))
def test_distinct_reasons_are_each_leads_reason_text(case: int) -> None:
    """Formatting once per distinct value and sign gives every lead exactly the
    text :func:`reason_texts` gives it alone with its batch, for every column dtype:
    repeated leads, blanks, signs of equal values, zero moves, both zeros."""
    spec, column = distinct_reason_cases()[case]
    frame = pd.DataFrame({spec.name: column})
    rng = np.random.default_rng(case)
    moves = np.array([-2.0, -0.3, 0.0, 0.25, 1.0, 3.0])
    for size in (0, 1, 7, 300):
        rows = rng.integers(0, len(column), size)
        contribution = moves[rng.integers(0, len(moves), size)]
        said, which = _distinct_reasons(spec, column, rows, contribution)
        expected = reason_texts(
            spec, _feature_values(frame, spec.name, rows), contribution
        )
        assert said[which].tolist() == expected.tolist(), (case, size)
        assert len(which) == size
        # each distinct text once at most per (value, sign): never more texts
        # than leads, and one text when every lead is the same
        assert len(said) <= size
    same = np.zeros(50, dtype=np.int64)
    said, which = _distinct_reasons(spec, column, same, np.full(50, 0.5))
    assert len(said) == 1
    assert said[which].tolist() == [said[0]] * 50


# --- the next question ---------------------------------------------------------------


def rescored(features: pd.DataFrame, name: str, value: float) -> np.ndarray:
    """The model's probability of every lead with ``name`` answered ``value``."""
    model, _ = trained()
    return predict_proba(model, features.assign(**{name: value}))


def asked(
    min_gain: float, seed: int = 34
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The next question of 80 leads, and what it is worked out from."""
    model, window = trained()
    answers = question_answers(REGISTRY, model, window)
    features = leads(80, seed)
    rows = feature_rows(model, features)
    out = next_question(
        REGISTRY, model, answers, features, rows, rows_margin(model, rows), min_gain
    )
    return out, {
        "now": predict_proba(model, features),
        "yes": rescored(features, "meddic_champion", 2.0),
        "no": rescored(features, "meddic_champion", 0.0),
        "unknown": (features["meddic_champion"] == 1.0).to_numpy(),
    }


def test_the_next_question_gain_is_a_full_rescore_with_the_answer() -> None:
    model, window = trained()
    # Only the MEDDIC column is asked, yes then no; fit columns never are.
    assert question_answers(REGISTRY, model, window) == {
        "meddic_champion": [
            ({"meddic_champion": 2.0}, "yes"),
            ({"meddic_champion": 0.0}, "no"),
        ]
    }
    out, w = asked(0.0)
    now, yes, no, unknown = w["now"], w["yes"], w["no"], w["unknown"]
    assert unknown.any() and not unknown.all()
    gain = np.maximum(np.abs(yes - now), np.abs(no - now))
    assert out["next_question_gain"].to_numpy()[unknown] == pytest.approx(
        gain[unknown], abs=1e-9
    )
    assert (out["next_question_gain"].to_numpy()[~unknown] == 0).all()
    assert (out["next_question"][~unknown] == "").all()
    for i in np.flatnonzero(unknown)[:10]:
        pick_yes = abs(yes[i] - now[i]) >= abs(no[i] - now[i])
        answer, after = ("yes", yes[i]) if pick_yes else ("no", no[i])
        before, later = _percent_pairs(np.array([now[i]]), np.array([after]))
        assert out["next_question"].iloc[i] == (
            f"Ask about meddic_champion: {answer} would move the win probability "
            f"from {before[0]} to {later[0]}"
        )


def test_unknown_leads_are_blanks_of_every_dtype_and_evidences_unknown_code() -> None:
    features = pd.DataFrame(
        {
            "champion": [2.0, 1.0, 0.0, 1.0],  # evidence codes: 1 is unknown
            "urgent": [1.0, np.nan, 0.0, 0.0],
            "employees": pd.array([3, None, 5, None], dtype="Int64"),
            "industry": pd.Series(["a", None, "b", ""], dtype="str"),
            "sector": pd.Series(["a", None, None, "c"], dtype=object),
            "region": pd.Series([None, "x", "y", "z"], dtype="string[pyarrow]"),
        }
    )
    kinds = {
        "champion": ("evidence", [False, True, False, True]),
        "urgent": ("bool", [False, True, False, False]),
        "employees": ("number", [False, True, False, True]),
        "industry": ("category", [False, True, False, False]),
        "sector": ("category", [False, True, True, False]),
        "region": ("category", [True, False, False, False]),
    }
    for name, (kind, unknown) in kinds.items():
        spec = FeatureSpec(name, name, kind, "champion")  # type: ignore[arg-type]
        got = _unknown_leads(spec, features)
        assert got.dtype == bool and got.tolist() == unknown, name


def test_a_lead_lacking_a_feature_never_lacked_in_training_is_averaged() -> None:
    """employees is never blank in training: a lead without it is averaged over the
    training rows (the model's margin), for its score and its answered scores."""
    model, window = trained()
    assert "employees" in model.info.complete_features
    features = leads(30, seed=45)
    features.loc[features.index[:10], "employees"] = np.nan
    rows = feature_rows(model, features)
    codes = tree_codes(model, rows)
    assert (
        codes_margin(model, rows, codes).tolist() == rows_margin(model, rows).tolist()
    )
    answers = question_answers(REGISTRY, model, window)
    out = explain(REGISTRY, model, answers, features)
    per_feature = feature_contributions(model, rows)
    p = predict_proba(model, features)
    assert per_feature.sum(axis=1) == pytest.approx(np.log(p / (1 - p)), abs=1e-9)
    unknown = (features["meddic_champion"] == 1.0).to_numpy()
    yes = rescored(features, "meddic_champion", 2.0)
    no = rescored(features, "meddic_champion", 0.0)
    gain = np.maximum(np.abs(yes - p), np.abs(no - p))
    lacking = np.zeros(30, dtype=bool)
    lacking[:10] = True
    assert (unknown & lacking).any()
    assert out["next_question_gain"].to_numpy()[unknown] == pytest.approx(
        gain[unknown], abs=1e-9
    )


def test_a_question_is_offered_from_exactly_its_least_gain() -> None:
    out, w = asked(0.0)
    unknown = np.flatnonzero(w["unknown"])
    gains = out["next_question_gain"].to_numpy()[unknown]
    cut = float(np.median(gains))
    at, _ = asked(cut)
    offered = at["next_question"].str.startswith("Ask about").to_numpy()[unknown]
    assert offered.tolist() == (gains >= cut).tolist()
    assert offered.any() and not offered.all()
    nothing = nothing_worth_asking(cut)
    assert (at["next_question"].to_numpy()[unknown][~offered] == nothing).all()
    # the gain is reported whether or not the question is offered
    assert at["next_question_gain"].tolist() == out["next_question_gain"].tolist()


def test_the_answers_tried_for_categories_numbers_and_details() -> None:
    model, window = trained()
    # The same columns, declared as MEDDIC ones: a category, a number and a detail.
    registry = FeatureRegistry(
        (
            FeatureSpec("employees", "employees", "number", "metrics"),
            FeatureSpec("industry", "industry", "category", "identify_pain"),
            FeatureSpec("meddic_champion", "meddic_champion", "evidence", "champion"),
            FeatureSpec(
                "strength",
                "strength",
                "number",
                "champion",
                detail_of="meddic_champion",
            ),
        )
    )
    train = window.assign(strength=np.arange(len(window), dtype=float))
    train.loc[train.index[:5], "strength"] = np.nan
    answers = question_answers(registry, model, train)
    assert list(answers) == ["employees", "industry", "meddic_champion"]
    quartiles = train["employees"].quantile([0.25, 0.5, 0.75]).tolist()
    assert answers["employees"] == [
        ({"employees": q}, number_words(q)) for q in sorted(set(quartiles))
    ]
    levels = model.info.categories["industry"]
    ranked = train["industry"].dropna().value_counts().index.tolist()
    assert (
        answers["industry"]
        == [({"industry": float(levels.index(k))}, k) for k in ranked][
            :MAX_TRIED_LEVELS
        ]
    )
    said = []
    for code, words in ((2.0, "yes"), (0.0, "no")):
        typical = train.loc[train["meddic_champion"] == code, "strength"].median()
        said.append(
            (
                {"meddic_champion": code, "strength": typical},
                f"{words} (strength {number_words(typical)})",
            )
        )
    assert answers["meddic_champion"] == said
    assert answers_from_json(answers_to_json(answers)) == answers
    # A yes/no column: yes is 1, no is 0, as the contract reads them.
    urgent = FeatureRegistry(
        (FeatureSpec("urgent", "urgent", "bool", "identify_pain"),)
    )
    tried = question_answers(urgent, model, window.assign(urgent=1.0))
    assert tried == {"urgent": [({"urgent": 1.0}, "yes"), ({"urgent": 0.0}, "no")]}


def test_answers_in_json_write_a_missing_value_as_null() -> None:
    answers = {"a": [({"a": 2.0, "b": np.nan}, "yes")]}
    written = answers_to_json(answers)
    assert written == {"a": [[{"a": 2.0, "b": None}, "yes"]]}
    back = answers_from_json(written)
    assert back["a"][0][1] == "yes"
    assert back["a"][0][0]["a"] == 2.0 and np.isnan(back["a"][0][0]["b"])


def test_each_lead_is_asked_its_best_question_among_several_columns() -> None:
    """With two askable columns, a lead known in the first is asked the second; a
    lead unknown in both is asked the one whose answer moves it most."""
    model, window = trained()
    registry = FeatureRegistry(
        (
            FeatureSpec("employees", "employees", "number", "fit"),
            FeatureSpec("industry", "industry", "category", "identify_pain"),
            FeatureSpec("meddic_champion", "meddic_champion", "evidence", "champion"),
        )
    )
    answers = question_answers(registry, model, window)
    assert list(answers) == ["industry", "meddic_champion"]
    features = leads(60, seed=46)
    features["industry"] = features["industry"].fillna("software")
    rows = feature_rows(model, features)
    raw = rows_margin(model, rows)
    out = next_question(registry, model, answers, features, rows, raw, 0.0)
    unknown = (features["meddic_champion"] == 1.0).to_numpy()
    assert unknown.any()
    assert (
        out["next_question"][unknown]
        .str.startswith("Ask about meddic_champion: ")
        .all()
    )
    assert (out["next_question"][~unknown] == "").all()
    # Both unknown: the larger of the two columns' best moves.
    features.loc[features.index[::2], "industry"] = None
    rows = feature_rows(model, features)
    raw = rows_margin(model, rows)
    out = next_question(registry, model, answers, features, rows, raw, 0.0)
    now = predict_proba(model, features)
    both = unknown & features["industry"].isna().to_numpy()
    assert both.any()
    for i in np.flatnonzero(both):
        moves = {}
        for name, tried in answers.items():
            # a category's answer is its level (the values hold its code)
            moved = [
                abs(
                    predict_proba(model, features.iloc[[int(i)]].assign(**given))[0]
                    - now[i]
                )
                for given in (
                    {name: words} if name == "industry" else values
                    for values, words in tried
                )
            ]
            moves[name] = max(moved)
        best = max(moves, key=lambda name: moves[name])
        assert out["next_question"].iloc[i].startswith(f"Ask about {best}: "), i
        assert out["next_question_gain"].iloc[i] == pytest.approx(moves[best], abs=1e-9)


def test_a_detail_not_filled_in_is_never_its_dimensions_reason() -> None:
    """employees declared a detail of industry (both fit): where it is blank its
    dimension's reason is industry (a blank moves it by averaging, so its strength
    must be set below every other, not merely low)."""
    model, _ = trained()
    registry = FeatureRegistry(
        (
            FeatureSpec(
                "employees", "employees", "number", "fit", detail_of="industry"
            ),
            *REGISTRY.specs[1:],
        )
    )
    features = leads(80, seed=47)
    features.loc[features.index[::2], "employees"] = np.nan
    per_feature = feature_contributions(model, feature_rows(model, features))
    reasons = top_reasons(registry, model, features, per_feature, n=2)
    fit = per_feature[:, 0] + per_feature[:, 1]
    blank = features["employees"].isna().to_numpy()
    assert (blank & (fit != 0)).any()
    for i in np.flatnonzero(blank & (fit != 0)):
        said = reason_texts(
            registry.spec("industry"),
            np.array([features["industry"].iloc[i]], dtype=object),
            np.array([fit[i]]),
        )[0]
        assert said in reasons.iloc[i].split("; "), i
        assert "employees" not in reasons.iloc[i], i
