"""The scorer's rules on a small scorer built in memory (tests/small_scorer.py): band
boundaries, the drift reference and PSI, one output row per lead with the model's
own probability, rejects with their reason in input order, unseen categories scored
as missing, the contract and scorer.json it is built from, and the cells of an
export as pandas or JSON typed them. Every expected value is worked out in the
test (a model's probability by lead_ml.model, a PSI by its formula)."""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version

import numpy as np
import pandas as pd
import pytest
from small_scorer import REGISTRY, SOURCE, VERSION, features_of, raw_leads, trained
from small_scorer import small_scorer as built

from lead_ml.explain import (
    CONTRIBUTION_COLUMNS,
    MIN_QUESTION_GAIN,
    REASON_COLUMNS,
    answers_to_json,
    question_answers,
)
from lead_ml.features import FeatureRegistry, FeatureSpec
from lead_ml.model import model_matrix, predict_proba
from lead_ml.scorer import (
    FORMAT_VERSION,
    LIBRARIES,
    DriftMonitor,
    Scorer,
    activity_columns,
    as_exported,
    band_letters,
    bundle_spec,
    drift_reference,
    expected_version,
    lead_contract,
    manifest_version,
    numbers_as_written,
    population_stability,
    predict_leads,
    pyfunc_output,
    reading_spec,
    required_columns,
    with_absent_columns,
    with_row_numbers,
)
from lead_ml.tables import Dialect, quote_value
from lead_ml.vocab import ScorerError

CUTS = {"A": 0.6, "B": 0.3, "C": 0.1}


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return built()


# --- bands ---------------------------------------------------------------------------


def test_a_probability_on_a_threshold_is_in_that_band() -> None:
    below = np.nextafter
    probability = np.array(
        [1.0, 0.6, below(0.6, 0), 0.3, below(0.3, 0), 0.1, below(0.1, 0), 0.0]
    )
    assert band_letters(CUTS, probability).tolist() == list("AABBCCDD")


def test_the_scorers_bands_use_its_own_thresholds(scorer: Scorer) -> None:
    cuts = scorer.spec["model"]["band_thresholds"]
    assert scorer.thresholds == cuts
    at = np.array([cuts["A"], cuts["B"], cuts["C"]])
    assert scorer.bands(at).tolist() == ["A", "B", "C"]
    assert scorer.bands(np.nextafter(at, 0)).tolist() == ["B", "C", "D"]


# --- drift ---------------------------------------------------------------------------


def psi(expected: np.ndarray, counts: np.ndarray) -> float:
    """PSI by its formula, each share floored at 1e-4."""
    actual = counts / counts.sum()
    e, a = np.maximum(expected, 1e-4), np.maximum(actual, 1e-4)
    return float(sum((ai - ei) * np.log(ai / ei) for ai, ei in zip(a, e, strict=True)))


def test_population_stability_is_the_formula_with_empty_bins_floored() -> None:
    expected = np.array([0.5, 0.3, 0.2, 0.0])
    counts = np.array([10, 60, 0, 30])
    assert population_stability(expected, counts) == pytest.approx(
        psi(expected, counts), rel=1e-12
    )
    assert population_stability(np.array([0.25] * 4), np.array([5, 5, 5, 5])) == 0.0
    # No rows counted: every share is the floor, not a division by zero.
    nothing = population_stability(np.array([0.5, 0.5]), np.array([0, 0]))
    assert nothing == pytest.approx(2 * (1e-4 - 0.5) * np.log(1e-4 / 0.5))


def test_the_drift_reference_bins_numbers_by_deciles_and_categories_by_level() -> None:
    numbers = pd.Series(np.r_[np.arange(1.0, 101.0), [np.nan, np.nan]])
    levels = pd.Series(pd.Categorical(["a", "b", "a", None], categories=["a", "b"]))
    matrix = pd.DataFrame(
        {"n": numbers, "c": pd.concat([levels] * 25 + [levels[:2]], ignore_index=True)}
    )
    score = np.linspace(0, 1, len(matrix))
    reference = drift_reference(matrix, score)
    assert set(reference) == {"n", "c", "score"}
    edges = np.quantile(np.arange(1.0, 101.0), np.linspace(0.1, 0.9, 9))
    assert reference["n"]["kind"] == "number"
    assert reference["n"]["edges"] == pytest.approx(edges.tolist())
    # A value on an edge counts in the bin above it; missing ones in the last bin.
    bins = np.searchsorted(edges, np.arange(1.0, 101.0), side="right")
    counts = np.r_[np.bincount(bins, minlength=10), 2]
    assert reference["n"]["shares"] == pytest.approx((counts / 102).tolist())
    assert reference["c"]["kind"] == "category"
    assert reference["c"]["levels"] == ["a", "b"]
    assert reference["c"]["shares"] == pytest.approx([51 / 102, 26 / 102, 25 / 102])
    assert len(reference["score"]["shares"]) == 11


def test_the_shares_of_a_one_row_window_are_whole() -> None:
    reference = drift_reference(pd.DataFrame({"n": [3.0]}), np.array([0.4]))
    assert reference["n"]["edges"] == [3.0]
    assert reference["n"]["shares"] == [0.0, 1.0, 0.0]
    assert reference["score"]["shares"] == [0.0, 1.0, 0.0]


def test_a_column_without_a_known_value_has_no_edges() -> None:
    matrix = pd.DataFrame({"n": [np.nan, np.nan]})
    reference = drift_reference(matrix, np.array([0.2, 0.2]))
    assert reference["n"] == {"kind": "number", "edges": [], "shares": [0.0, 1.0]}
    assert reference["score"]["edges"] == [0.2]


def test_the_monitor_counts_frames_and_model_rows_alike_and_sorts_psi() -> None:
    reference = {
        "n": {"kind": "number", "edges": [1.0, 2.0], "shares": [0.2, 0.3, 0.4, 0.1]},
        "c": {"kind": "category", "levels": ["a", "b"], "shares": [0.5, 0.4, 0.1]},
        "score": {"kind": "number", "edges": [0.5], "shares": [0.5, 0.5, 0.0]},
    }
    n = np.array([0.5, 1.0, 2.0, 2.5, np.nan, 1.5])
    c = ["a", "b", None, None, "a", "a"]  # an unseen level is NaN in the matrix
    probability = np.array([0.1, 0.5, 0.9, 0.2, 0.7, 0.4])
    frames = DriftMonitor(reference)
    frame = pd.DataFrame({"n": n, "c": pd.Categorical(c, categories=["a", "b"])})
    frames.add(frame.iloc[:4], probability[:4])
    frames.add(frame.iloc[4:], probability[4:])
    rows = DriftMonitor(reference)
    codes = np.array([0.0, 1.0, np.nan, np.nan, 0.0, 0.0])
    rows.add_rows(np.c_[codes, n], ["c", "n"], probability)
    expected = {
        "n": [1, 2, 2, 1],  # [.5] [1, 1.5] [2, 2.5] NaN
        "c": [3, 1, 2],  # a a a, b, unseen and missing
        "score": [3, 3, 0],  # 0.5 itself counts above its edge
    }
    for monitor in (frames, rows):
        assert {k: v.tolist() for k, v in monitor.counts.items()} == expected
        values = monitor.psi()
        assert values == {
            name: pytest.approx(
                psi(np.array(reference[name]["shares"]), np.array(counts))
            )
            for name, counts in expected.items()
        }
        assert list(values.values()) == sorted(values.values(), reverse=True)


def test_psi_leaves_out_what_was_never_counted() -> None:
    reference = {"n": {"kind": "number", "edges": [1.0], "shares": [0.5, 0.5, 0.0]}}
    monitor = DriftMonitor(reference)
    assert monitor.psi() == {}
    monitor.counts["n"] = np.zeros(3, dtype=int)
    assert monitor.psi() == {}
    # One lead is enough to be counted.
    monitor.counts["n"] = np.array([1, 0, 0])
    assert monitor.psi() == {
        "n": pytest.approx(psi(np.array([0.5, 0.5, 0.0]), np.array([1, 0, 0])))
    }
    one = population_stability(np.array([0.5, 0.5]), np.array([1, 0]))
    assert one == pytest.approx((1 - 0.5) * np.log(2) + (1e-4 - 0.5) * np.log(2e-4))


def test_the_monitor_adds_chunks_of_rows_and_lists_the_largest_psi_first() -> None:
    reference = {
        "a": {"kind": "category", "levels": ["x", "y"], "shares": [0.5, 0.5, 0.0]},
        "b": {"kind": "number", "edges": [0.0], "shares": [0.5, 0.5, 0.0]},
        "score": {"kind": "number", "edges": [0.5], "shares": [0.5, 0.5, 0.0]},
    }
    monitor = DriftMonitor(reference)
    # Two chunks; the first holds only the first level and no missing value.
    monitor.add_rows(np.array([[0.0, -1.0], [0.0, 1.0]]), ["a", "b"], np.zeros(2))
    assert monitor.counts["a"].tolist() == [2, 0, 0]
    monitor.add_rows(np.array([[1.0, 1.0]]), ["a", "b"], np.zeros(1))
    assert {k: v.tolist() for k, v in monitor.counts.items()} == {
        "a": [2, 1, 0],
        "b": [1, 2, 0],
        "score": [3, 0, 0],
    }
    values = monitor.psi()
    expected = {
        name: psi(np.array(reference[name]["shares"]), monitor.counts[name])
        for name in reference
    }
    order = sorted(expected, key=lambda name: -expected[name])
    assert order == ["score", "a", "b"] or order == ["score", "b", "a"]
    assert order != sorted(expected)  # not merely by name
    assert list(values) == order
    assert values == {k: pytest.approx(v) for k, v in expected.items()}


# --- scoring -----------------------------------------------------------------------


def test_every_lead_gets_the_models_probability_score_and_band(
    scorer: Scorer,
) -> None:
    raw = raw_leads(50, seed=7).set_axis(np.arange(100, 150))
    out = scorer.score(raw)
    model, _ = trained()
    expected = predict_proba(model, features_of(raw))
    assert out.index.tolist() == list(range(100, 150))
    assert out["deal_id"].tolist() == raw["deal_id"].tolist()
    assert out["probability"].to_numpy() == pytest.approx(expected, rel=1e-9)
    assert out["score"].tolist() == np.clip(np.rint(expected * 100), 1, 99).tolist()
    assert out["band"].tolist() == band_letters(scorer.thresholds, expected).tolist()
    assert (out["model_version"] == VERSION).all()
    assert out["reject_reason"].isna().all()
    assert list(out.columns) == [*scorer.output_columns(), "reject_reason"]
    # Contributions add up to the calibrated log-odds.
    logit = np.log(expected / (1 - expected))
    total = out[list(CONTRIBUTION_COLUMNS)].sum(axis=1) + out["base_value"]
    assert total.to_numpy() == pytest.approx(logit, abs=1e-6)


def test_without_reasons_the_scores_are_the_same(scorer: Scorer) -> None:
    raw = raw_leads(20, seed=8)
    full = scorer.score(raw)
    short = scorer.score(raw, explain_reasons=False)
    assert list(short.columns) == [
        "deal_id",
        "probability",
        "score",
        "band",
        "model_version",
        "reject_reason",
    ]
    assert short["probability"].tolist() == full["probability"].tolist()
    assert scorer.output_columns(False) == list(short.columns[:-1])


def test_the_output_columns_and_types(scorer: Scorer) -> None:
    columns = scorer.output_columns()
    assert columns == [
        "deal_id",
        "probability",
        "score",
        "band",
        *CONTRIBUTION_COLUMNS,
        "base_value",
        *REASON_COLUMNS,
        "model_version",
    ]
    dtypes = scorer.output_dtypes()
    text = {"deal_id", "band", *REASON_COLUMNS, "model_version"}
    assert dtypes == {
        c: "int64" if c == "score" else "string" if c in text else "float64"
        for c in columns
    }
    empty = scorer.empty_output()
    assert len(empty) == 0
    assert {c: str(t) for c, t in empty.dtypes.items()} == dtypes


def test_bad_rows_are_rejected_with_their_reason_in_input_order(
    scorer: Scorer,
) -> None:
    raw = raw_leads(6, seed=9)
    raw.loc[1, "employees"] = "0"  # below the bound min 1
    raw.loc[2, "employees"] = "many"
    raw.loc[3, "deal_id"] = ""
    raw.at[4, "deal_id"] = str(raw.at[0, "deal_id"])
    out = scorer.score(raw)
    reasons = out["reject_reason"].tolist()
    assert pd.isna(reasons[0]) and pd.isna(reasons[5])
    assert "employees" in reasons[1] and "0" in reasons[1]
    assert "employees" in reasons[2] and "many" in reasons[2]
    assert reasons[3] == "deal_id is missing"
    assert reasons[4] == (
        f"duplicate deal_id {quote_value(raw.loc[0, 'deal_id'])} (first seen at row 0)"
    )
    assert out["probability"].isna().tolist() == [False, True, True, True, True, False]
    assert out["deal_id"].tolist()[:3] == raw["deal_id"].tolist()[:3]
    assert out["deal_id"].tolist()[4:] == raw["deal_id"].tolist()[4:]
    assert out["score"].dtype == "float64"
    model, _ = trained()
    kept = raw.iloc[[0, 5]]
    assert out["probability"].iloc[[0, 5]].to_numpy() == pytest.approx(
        predict_proba(model, features_of(kept)), rel=1e-9
    )


def test_score_chunk_numbers_rejects_by_their_rows(scorer: Scorer) -> None:
    raw = raw_leads(4, seed=10)
    raw.loc[2, "employees"] = "-3"
    scored = scorer.score_chunk(raw, rows=np.array([10, 11, 12, 13]))
    assert scored.rejects["row"].tolist() == [12]
    assert scored.rejects["table"].tolist() == ["leads"]
    assert scored.output["deal_id"].tolist() == raw["deal_id"].iloc[[0, 1, 3]].tolist()
    assert scored.rows.shape == (3, len(scorer.model.info.feature_names))
    assert scored.features["deal_id"].tolist() == scored.output["deal_id"].tolist()


def test_an_unseen_category_is_counted_and_scores_as_a_blank(scorer: Scorer) -> None:
    raw = raw_leads(3, seed=11)
    raw["industry"] = ["farming", "", "software"]
    raw["employees"] = "50"
    raw["meddic_champion"] = "yes"
    scored = scorer.score_chunk(raw)
    assert scored.unseen == {"industry": 1}
    p = scored.output["probability"].to_numpy()
    assert p[0] == p[1]
    assert p[2] != p[0]
    assert scorer.unseen(scored.features) == {"industry": 1}


def test_an_empty_frame_gives_the_empty_output(scorer: Scorer) -> None:
    out = scorer.score(raw_leads(0))
    assert len(out) == 0
    assert list(out.columns) == [*scorer.output_columns(), "reject_reason"]
    scored = scorer.score_chunk(raw_leads(0))
    assert scored.unseen == {"industry": 0}
    assert len(scored.rejects) == 0


def test_missing_and_repeated_columns_are_named(scorer: Scorer) -> None:
    raw = raw_leads(3)
    with pytest.raises(ScorerError, match=r"leads: missing column\(s\) industry;") as e:
        scorer.score_chunk(raw.drop(columns="industry"))
    assert "deal_id, created_at, employees, industry, meddic_champion" in str(e.value)
    assert "except deal_id" in str(e.value)
    twice = pd.concat([raw, raw[["employees"]]], axis=1)
    with pytest.raises(ScorerError, match=r"column\(s\) employees appear twice"):
        scorer.check_columns(list(twice.columns), "f.csv")
    scorer.check_columns(list(raw.columns), "f.csv")


def test_a_scorer_without_an_activity_log_refuses_one(scorer: Scorer) -> None:
    assert scorer.activity_columns is None
    assert not scorer.counts_activities
    assert scorer.activity_features == []
    log = pd.DataFrame({"deal_id": ["L0-00000"], "timestamp": ["2024-01-01"]})
    with pytest.raises(ScorerError, match="a.csv: this scorer counts no activities"):
        scorer.check_activity_columns(list(log.columns), "a.csv")
    # An empty log is no log for it: the scores are those without one.
    raw = raw_leads(5, seed=12)
    empty = log.iloc[:0].assign(activity_type=pd.Series(dtype=object))
    assert scorer.score(raw, empty)["probability"].tolist() == (
        scorer.score(raw)["probability"].tolist()
    )


def test_the_scorers_settings_come_from_scorer_json(scorer: Scorer) -> None:
    assert scorer.id_column == "deal_id"
    assert scorer.model_version == VERSION
    assert scorer.min_question_gain == MIN_QUESTION_GAIN
    changed = Scorer(scorer.model, scorer.spec | {"questions": {"min_gain": 0.05}})
    assert changed.min_question_gain == 0.05
    older = {k: v for k, v in scorer.spec.items() if k not in ("questions", "joins")}
    old = Scorer(scorer.model, older | {"reading": None})
    assert old.min_question_gain == MIN_QUESTION_GAIN
    assert old.joins == {}
    assert old.dialect() == Dialect()
    assert scorer.dialect() == Dialect.of(SOURCE.tables.deals, "deals")
    assert scorer.dialect("activities") == Dialect.of(
        SOURCE.tables.activities, "activities"
    )
    assert scorer.joins == dict(scorer.spec["joins"])


def test_a_scorer_reads_its_registry_contract_and_answers_from_scorer_json(
    scorer: Scorer,
) -> None:
    # As load_scorer reads it: through JSON, keys sorted.
    read = Scorer(scorer.model, json.loads(json.dumps(scorer.spec, sort_keys=True)))
    assert read.registry == REGISTRY
    assert read.contract == lead_contract(SOURCE, REGISTRY)
    # The id column first, as in the contract, although scorer.json sorts keys.
    assert list(read.contract.kinds) == [
        "deal_id",
        "created_at",
        "employees",
        "industry",
        "meddic_champion",
    ]
    assert read.answers == {
        "meddic_champion": [
            ({"meddic_champion": 2.0}, "yes"),
            ({"meddic_champion": 0.0}, "no"),
        ]
    }
    raw = raw_leads(10, seed=15)
    assert read.score(raw).equals(scorer.score(raw))


# --- the contract and scorer.json --------------------------------------------------


def test_the_lead_contract_of_a_model_without_activities() -> None:
    contract = lead_contract(SOURCE, REGISTRY)
    assert contract.id_column == "deal_id"
    assert contract.kinds == {
        "deal_id": "category",
        "created_at": "date",
        "employees": "number",
        "industry": "category",
        "meddic_champion": "evidence",
    }
    # Without activity features the created date may be blank.
    assert contract.required == ()
    assert contract.bounds == {"employees": (1.0, None)}
    assert contract.missing_values == tuple(SOURCE.missing_values)
    assert activity_columns(SOURCE, REGISTRY) is None
    counting = FeatureRegistry(REGISTRY.specs, uses_activities=True)
    assert activity_columns(SOURCE, counting) == [
        "deal_id",
        "timestamp",
        "activity_type",
    ]
    assert lead_contract(SOURCE, counting).required == ("created_at",)
    assert required_columns(contract) == ["deal_id"]


def test_a_source_without_an_activity_log_reads_none() -> None:
    tables = SOURCE.tables.model_copy(update={"activities": None})
    source = SOURCE.model_copy(update={"tables": tables})
    assert reading_spec(source) == {
        "deals": Dialect.of(SOURCE.tables.deals, "deals").as_dict(),
        "activities": None,
    }


def test_scorer_json_holds_what_a_batch_job_needs() -> None:
    model, window = trained()
    spec = bundle_spec(model, REGISTRY, SOURCE, window, min_question_gain=0.03)
    assert spec["format_version"] == FORMAT_VERSION
    assert spec["source_name"] == SOURCE.name
    assert spec["created_column"] == "created_at"
    assert spec["activities"] is None
    assert spec["questions"] == {"min_gain": 0.03}
    assert spec["bands"]["thresholds"] == model.info.band_thresholds
    assert spec["registry"] == REGISTRY.as_dict()
    assert spec["reading"] == {
        "deals": Dialect.of(SOURCE.tables.deals, "deals").as_dict(),
        "activities": Dialect.of(SOURCE.tables.activities, "activities").as_dict(),
    }
    accounts = SOURCE.tables.accounts
    assert accounts is not None
    assert spec["joins"] == {
        "accounts": {
            "key": "account_id",
            "id": accounts.id_column,
            "reading": Dialect.of(accounts, "accounts").as_dict(),
        }
    }
    assert spec["lead_ml_version"] == version("lead-ml")
    assert spec["library_versions"] == {lib: version(lib) for lib in LIBRARIES}
    assert spec["bands"]["meaning"] == (
        "A: probability >= thresholds.A; B: >= B; C: >= C; D: the rest. "
        "Thresholds cut the validation window into the configured shares."
    )
    matrix = model_matrix(window, model.info.categories, model.info.feature_names)
    assert spec["drift_reference"] == drift_reference(
        matrix, predict_proba(model, window)
    )
    # The answers a next question tries, of every askable MEDDIC feature.
    meddic = FeatureRegistry(
        (
            FeatureSpec("employees", "employees", "number", "fit"),
            FeatureSpec("industry", "industry", "category", "identify_pain"),
            FeatureSpec("meddic_champion", "meddic_champion", "evidence", "champion"),
        )
    )
    asked = bundle_spec(model, meddic, SOURCE, window)["answers"]
    assert asked == answers_to_json(question_answers(meddic, model, window))
    assert set(asked) == {"industry", "meddic_champion"}
    assert set(spec["drift_reference"]) == {*model.info.feature_names, "score"}
    json.dumps(spec, allow_nan=False)  # plain JSON, no NaN


# --- cells as pandas or JSON typed them ---------------------------------------------


def test_numbers_in_text_columns_read_as_the_export_wrote_them() -> None:
    values = pd.Series([3.0, 2.5, None, np.nan, np.inf, 7], dtype=object)
    assert numbers_as_written(values).tolist() == ["3", "2.5", None, None, "inf", "7"]
    # Only the decimal form is a training level: it is kept.
    assert numbers_as_written(pd.Series([4.0, 5.0]), [" 4.0 "]).tolist() == ["4.0", "5"]
    assert numbers_as_written(pd.Series([4, 5]), ["4.0"]).tolist() == ["4.0", "5"]
    assert numbers_as_written(pd.Series([4, 5]), ["4", "4.0"]).tolist() == ["4", "5"]
    assert numbers_as_written(pd.Series([4.0]), ["4", "4.0"]).tolist() == ["4"]
    mixed = pd.Series([True, 1.0, "x"], dtype=object)
    assert numbers_as_written(mixed).tolist() == [True, "1", "x"]
    text = pd.Series(["3.0", None], dtype=object)
    assert numbers_as_written(text) is text
    flags = pd.Series([True, False])
    assert numbers_as_written(flags) is flags


def test_cells_typed_by_pandas_score_as_the_text_of_the_export(scorer: Scorer) -> None:
    raw = raw_leads(6, seed=13)
    typed = raw.assign(
        deal_id=np.arange(6).astype(float),
        employees=raw["employees"].astype(int),
    )
    exported = as_exported(scorer, typed)
    assert exported["deal_id"].tolist() == ["0", "1", "2", "3", "4", "5"]
    assert exported["employees"].tolist() == typed["employees"].tolist()
    assert typed["deal_id"].dtype == float  # the input is not changed
    as_text = raw.assign(deal_id=[str(i) for i in range(6)])
    assert scorer.score(typed)["probability"].tolist() == (
        scorer.score(as_text)["probability"].tolist()
    )


def test_the_pyfunc_reads_absent_optional_columns_as_unknown(scorer: Scorer) -> None:
    raw = raw_leads(4, seed=14)
    lacking = raw.drop(columns=["meddic_champion", "created_at"])
    completed = with_absent_columns(scorer.contract, lacking)
    for column in ("meddic_champion", "created_at"):
        assert completed[column].dtype == object
        assert completed[column].isna().all()
        assert completed[column].index.equals(lacking.index)
    assert list(lacking.columns) == ["deal_id", "employees", "industry"]
    assert with_absent_columns(scorer.contract, raw) is raw
    blank = raw.assign(meddic_champion="", created_at="")
    out = predict_leads(scorer, lacking)
    assert list(out.columns) == [*scorer.output_columns(), "reject_reason"]
    assert out["top_reasons"].notna().all()
    assert out["probability"].dtype == "Float64"
    assert out["score"].dtype == "Int64"
    assert out["probability"].to_numpy(float) == pytest.approx(
        scorer.score(blank)["probability"].to_numpy(float)
    )
    # This id is the export's own, not its row number: a lead without it is refused.
    lacking_id = raw.drop(columns="deal_id")
    assert with_row_numbers(scorer, lacking_id) is lacking_id
    with pytest.raises(ScorerError, match="missing column"):
        predict_leads(scorer, raw.drop(columns="deal_id"))


def test_the_pyfunc_writes_empty_numbers_as_null() -> None:
    scores = pd.DataFrame(
        {"probability": [0.25, np.nan], "score": [25.0, np.nan], "band": ["C", None]}
    )
    out = pyfunc_output(scores)
    assert [str(t) for t in out.dtypes[:2]] == ["Float64", "Int64"]
    assert out["band"].dtype == scores["band"].dtype  # text is kept
    assert out["score"].tolist()[0] == 25
    assert out["probability"].isna().tolist() == [False, True]


# --- versions ---------------------------------------------------------------------


def test_the_model_version_is_the_hash_of_the_file_list() -> None:
    files = {"b.txt": "1" * 64, "a.txt": "0" * 64}
    listing = '{"a.txt":"' + "0" * 64 + '","b.txt":"' + "1" * 64 + '"}'
    digest = hashlib.sha256(listing.encode()).hexdigest()
    assert manifest_version(files) == "lead-ml-scorer:" + digest
    assert manifest_version({**files, "c": "2" * 64}) != manifest_version(files)


def test_an_expected_version_may_leave_out_its_prefix() -> None:
    digest = "ab" * 32
    assert expected_version(digest) == "lead-ml-scorer:" + digest
    assert expected_version(digest.upper()) == "lead-ml-scorer:" + digest
    assert expected_version(f" lead-ml-scorer:{digest} ") == "lead-ml-scorer:" + digest
    with pytest.raises(ScorerError, match="not a model version"):
        expected_version("ab" * 31)
    with pytest.raises(ScorerError, match="not a model version"):
        expected_version("lead-ml-scorer:" + "g" * 64)
