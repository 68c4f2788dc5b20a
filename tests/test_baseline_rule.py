"""The BANT rule's edges a user meets: its messages, the kinds it compares, the
scores it gives each deal, the check on the source's files, and the base-rate
comparison when params give no rule. Expectations are written out by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from lead_ml.baseline import (
    NO_RULE,
    BantRule,
    LetterError,
    bant_scores,
    base_rate_verdict,
    baseline_of,
    check_rule_on_files,
    column_kind,
    compared_with_base_rate,
    condition_holds,
)
from lead_ml.config import BantConfig, Params, load_params, parse_condition
from lead_ml.synthetic import SyntheticCRM
from lead_ml.vocab import ConfigError, ContractError

ROOT = Path(__file__).resolve().parents[1]


# --- messages -------------------------------------------------------------------


def test_a_rule_given_something_other_than_a_frame_names_what_it_got() -> None:
    with pytest.raises(TypeError) as caught:
        not_a_frame: Any = [{"a": "yes"}]
        BantRule({"need": "a == 'yes'"}, threshold=1.0).fit(not_a_frame)
    assert str(caught.value) == "BantRule needs a pandas DataFrame; got list"


def test_a_missing_column_says_where_to_change_the_letter() -> None:
    frame = pd.DataFrame({"a": ["yes"]})
    with pytest.raises(LetterError) as caught:
        BantRule({"need": "b == 'yes'"}, threshold=1.0).fit(frame)
    assert str(caught.value) == (
        "BANT letter 'need': \"b == 'yes'\" reads column(s) ['b'] that the deals do "
        "not have; add them to the data or change bant.letters.need in params.yaml."
    )


def test_a_kind_without_its_own_hint_gets_the_general_one() -> None:
    """A date column compared with a number: no specific hint exists."""
    frame = pd.DataFrame({"signed": pd.to_datetime(["2024-01-01", "2024-02-01"])})
    with pytest.raises(LetterError) as caught:
        BantRule({"timeline": "signed > 5"}, threshold=1.0).fit(frame)
    assert caught.value.problem == (
        "'signed > 5': it compares 'signed', a date column, with 5 (number); "
        "compare it with a value of its kind"
    )


def test_a_literal_on_the_left_still_names_the_column() -> None:
    frame = pd.DataFrame({"employees": ["10", "200"]})
    with pytest.raises(LetterError) as caught:
        BantRule({"need": "100 <= employees"}, threshold=1.0).fit(frame)
    assert caught.value.problem == (
        "'100 <= employees': it compares 'employees', a text column, with 100 "
        "(number); quote the value as the file holds it, e.g. '3'"
    )


def test_columns_of_two_kinds_are_refused_columns_of_one_kind_compared() -> None:
    frame = pd.DataFrame({"low": [1.0, 5.0], "high": [3.0, 2.0], "name": ["a", "b"]})
    with pytest.raises(LetterError) as caught:
        BantRule({"budget": "low < name"}, threshold=1.0).fit(frame)
    assert caught.value.problem == (
        "'low < name': it compares 'low' (number) with 'name' (text); "
        "compare columns of one kind"
    )
    rule = BantRule({"budget": "low < high"}, threshold=1.0).fit(frame)
    assert rule.predict(frame).tolist() == [1, 0]


def test_a_negated_condition_is_checked_for_kinds_too() -> None:
    frame = pd.DataFrame({"employees": [10.0, 200.0]})
    with pytest.raises(LetterError, match="a number column, with 'ten'"):
        BantRule({"need": "not employees == 'ten'"}, threshold=1.0).fit(frame)


def test_a_kind_change_after_fit_is_named_with_the_letter_and_condition() -> None:
    rule = BantRule({"need": "employees > 50"}, threshold=1.0)
    rule.fit(pd.DataFrame({"employees": [10.0, 200.0]}))
    with pytest.raises(LetterError) as caught:
        rule.predict(pd.DataFrame({"employees": ["10", "200"]}))
    assert caught.value.letter == "need"
    assert caught.value.problem.startswith("'employees > 50': it compares 'employees'")


def test_values_that_cannot_be_ordered_name_the_letter() -> None:
    """A column of mixed text and numbers has no kind to check at fit; ordering it
    fails when evaluated, and the error says which letter."""
    frame = pd.DataFrame({"spend": pd.Series([5, "a lot"], dtype=object)})
    rule = BantRule({"budget": "spend > 10"}, threshold=1.0).fit(frame)
    with pytest.raises(LetterError) as caught:
        rule.predict(frame)
    assert caught.value.letter == "budget"
    assert caught.value.problem.startswith("'spend > 10' cannot be evaluated: ")
    assert len(caught.value.problem) > len("'spend > 10' cannot be evaluated: ")


# --- kinds and evaluation -------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (pd.Series(["a", None], dtype=object), "text"),
        (pd.Series([1, 2.5, None], dtype=object), "number"),
        (pd.Series([True, None], dtype=object), "bool"),
        (pd.Series(["a", 3], dtype=object), ""),
        (pd.Series([None, None], dtype=object), ""),
        (pd.Series([True, False]), "bool"),
        (pd.Series([3, 4]), "number"),
        (pd.Series(pd.to_datetime(["2024-01-01"])), "date"),
        (pd.Series(["a", "b"], dtype="string"), "text"),
        (pd.Series(["a", "b"], dtype="category"), ""),
    ],
)
def test_column_kind_names_what_a_column_holds(values: pd.Series, kind: str) -> None:
    """Blanks do not make a text column mixed; a category column is of no kind
    (a condition on it is not kind-checked)."""
    assert column_kind(values) == kind


def test_a_comparison_of_two_columns_is_undecided_when_either_is_missing() -> None:
    deals = pd.DataFrame(
        {"a": [1.0, None, 3.0, 4.0], "b": [2.0, 2.0, None, 1.0]},
        index=pd.Index([7, 8, 9, 10], name="deal_id"),
    )
    holds = condition_holds(parse_condition("a < b"), deals)
    assert holds.tolist() == [True, pd.NA, pd.NA, False]
    assert holds.index.tolist() == [7, 8, 9, 10]


def test_an_in_list_keeps_the_deals_index() -> None:
    deals = pd.DataFrame({"t": ["x", None, "y"]}, index=pd.Index([5, 3, 1]))
    holds = condition_holds(parse_condition("t in ['x']"), deals)
    assert holds.tolist() == [True, pd.NA, False]
    assert holds.index.tolist() == [5, 3, 1]


def test_letter_passes_are_boolean_columns() -> None:
    frame = pd.DataFrame({"a": ["yes", None, "no"]})
    rule = BantRule({"need": "a == 'yes'"}, threshold=1.0).fit(frame)
    passes = rule.letter_passes(frame)
    assert passes["need"].dtype == bool and passes["need"].tolist() == [
        True,
        False,
        False,
    ]


def test_the_rule_declares_it_reads_text_and_blanks_and_needs_no_target() -> None:
    """scikit-learn's checks and meta-estimators read these tags: the rule takes
    text and categorical columns with blanks, and fits without ``y``."""
    tags = BantRule({"need": "a == 'yes'"}).__sklearn_tags__()
    assert tags.input_tags.string and tags.input_tags.categorical
    assert tags.input_tags.allow_nan
    assert tags.target_tags.required is False


# --- scores of deals and the files' check -----------------------------------------


@pytest.fixture(scope="module")
def params() -> Params:
    return load_params(ROOT / "params.yaml")


def test_bant_scores_count_each_deals_letters_by_id(params: Params) -> None:
    """The synthetic CRM's rule (one point a letter, 3 to qualify) on deals whose
    points are counted by hand: 4, 3 (unknown budget), 2, 0."""
    deals = pd.DataFrame(
        {
            "deal_id": ["d1", "d2", "d3", "d4"],
            "bant_budget": ["yes", "unknown", "no", None],
            "bant_authority": ["yes", "yes", "yes", "no"],
            "bant_need": ["yes", "yes", "yes", "no"],
            "bant_timeline": ["0-3 months", "3-6 months", "12+ months", None],
        }
    )
    assert params.bant is not None
    scores = bant_scores(params.bant, params.source, deals)
    assert scores.index.tolist() == ["d1", "d2", "d3", "d4"]
    assert scores["bant_points"].tolist() == [4.0, 3.0, 2.0, 0.0]
    assert scores["bant_qualified"].tolist() == [True, True, False, False]
    assert scores["bant_qualified"].dtype == bool

    weighted = params.bant.model_copy(
        update={
            "weights": {"budget": 2.0, "authority": 0.5, "need": 1.0, "timeline": 0.25},
            "threshold": 1.75,
        }
    )
    scores = bant_scores(weighted, params.source, deals)
    assert scores["bant_points"].tolist() == [3.75, 1.75, 1.5, 0.0]
    assert scores["bant_qualified"].tolist() == [True, True, False, False]


def test_bant_scores_without_a_rule_give_every_deal_nothing(params: Params) -> None:
    deals = pd.DataFrame({"deal_id": [30, 10, 20], "bant_need": ["yes"] * 3})
    scores = bant_scores(None, params.source, deals)
    assert scores.index.tolist() == [30, 10, 20]
    assert scores.to_dict("list") == {
        "bant_points": [0.0, 0.0, 0.0],
        "bant_qualified": [False, False, False],
    }


def test_bant_scores_name_a_bad_letter_as_params_spell_it(params: Params) -> None:
    deals = pd.DataFrame({"deal_id": [1], "bant_need": [3.0]})
    rule = BantConfig(letters={"need": "bant_need == 'yes'"}, threshold=1.0)
    with pytest.raises(ConfigError) as caught:
        bant_scores(rule, params.source, deals)
    assert str(caught.value).startswith(
        "bant.letters.need: \"bant_need == 'yes'\": it compares 'bant_need', "
        "a number column, with 'yes' (text)"
    )


def _on_files(params: Params, crm: SyntheticCRM, folder: Path) -> Any:
    """The params' source reading 300 of the CRM's deals from files in folder."""
    crm.deals.head(300).to_parquet(folder / "deals.parquet")
    crm.accounts.to_parquet(folder / "accounts.parquet")
    tables = params.source.tables
    assert tables.accounts is not None and tables.activities is not None
    moved = tables.model_copy(
        update={
            "deals": tables.deals.model_copy(update={"path": folder / "deals.parquet"}),
            "accounts": tables.accounts.model_copy(
                update={"path": folder / "accounts.parquet"}
            ),
            # the rule reads no activity: a log that is not there is not read
            "activities": tables.activities.model_copy(
                update={"path": folder / "absent.parquet"}
            ),
        }
    )
    return params.source.model_copy(update={"tables": moved})


def test_the_rule_is_checked_on_the_sources_files(
    params: Params, small_crm: SyntheticCRM, tmp_path: Path
) -> None:
    """`lead-ml check-config` with files: the rule fitted on the labelled deals
    the files hold, and a letter true for none of them refused with its values."""
    source = _on_files(params, small_crm, tmp_path)
    assert params.bant is not None
    rule = check_rule_on_files(params.bant, source)
    head = small_crm.deals.head(300)
    labelled = head[head["outcome"].isin(["won", "lost", "open"])]
    budget = (labelled["bant_budget"] == "yes").to_numpy()
    assert rule.letter_passes(labelled)["budget"].to_numpy().tolist() == (
        budget.tolist()
    )
    assert rule.threshold_ == 3.0 and list(rule.letters_) == list(params.bant.letters)

    typo = params.bant.model_copy(
        update={"letters": dict(params.bant.letters) | {"need": "bant_need == 'Yes'"}}
    )
    with pytest.raises(ConfigError) as caught:
        check_rule_on_files(typo, source)
    said = str(caught.value)
    assert said.startswith(
        "bant.letters.need: \"bant_need == 'Yes'\" is true for no deal; check the "
        "values as written (case matters) - bant_need: "
    )
    commonest = head["bant_need"].value_counts().index[0]
    assert f"{commonest!r} (" in said


# --- no rule: the base rate -------------------------------------------------------


def test_baseline_of_says_what_the_model_is_compared_with() -> None:
    assert baseline_of(None) == {
        "kind": "base_rate",
        "label": "base rate",
        "rule_given": False,
        "note": NO_RULE,
    }
    rule = BantConfig(
        letters={"budget": "b == 'yes'", "need": "n == 'yes'"},
        weights={"budget": 2.0, "need": 0.5},
        threshold=2.5,
    )
    assert baseline_of(rule) == {
        "kind": "bant",
        "label": "BANT rule",
        "rule_given": True,
        "note": "the BANT rule of params.yaml: letters budget (2), need (0.5), "
        "qualified at 2.5 points",
    }


def test_compared_with_base_rate_drops_the_rule_and_counts_wins_by_chance() -> None:
    metrics: dict[str, Any] = {
        "model": {"roc_auc": 0.8},
        "bant": {"roc_auc": 0.6, "pr_auc": 0.3},
        "delta_roc_auc": 0.2,
        "capacity": {
            "k": 40,
            "model_wins": 20,
            "model_pipeline_value": 900.0,
            "bant_wins": 12,
            "bant_win_rate": 0.3,
            "bant_pipeline_value": 500.0,
            "base_win_rate": 0.25,
        },
        "cv": {"model_roc_auc_by_fold": [0.8, 0.7], "bant_roc_auc_by_fold": [0.6]},
    }
    before = {
        key: dict(value) for key, value in metrics.items() if isinstance(value, dict)
    }
    compared = compared_with_base_rate(metrics)
    assert compared == {
        "model": {"roc_auc": 0.8},
        "bant": None,
        "delta_roc_auc": 0.2,
        "capacity": {
            "k": 40,
            "model_wins": 20,
            "model_pipeline_value": 900.0,
            "base_win_rate": 0.25,
            "base_rate_wins": 10.0,
        },
        "cv": {"model_roc_auc_by_fold": [0.8, 0.7]},
        "baseline": baseline_of(None) | {"roc_auc": 0.5, "pr_auc": 0.3},
    }
    assert isinstance(compared["capacity"]["base_rate_wins"], float)
    # the caller's metrics are left as they were
    assert {k: v for k, v in metrics.items() if isinstance(v, dict)} == before


def test_compared_with_base_rate_takes_pr_auc_from_the_win_rate_without_a_rule() -> (
    None
):
    compared = compared_with_base_rate(
        {"capacity": {"base_win_rate": 0.125, "model_wins": 3}, "cv": None}
    )
    assert compared["capacity"] == {"base_win_rate": 0.125, "model_wins": 3}
    assert compared["cv"] is None
    assert compared["baseline"]["pr_auc"] == 0.125
    bare = compared_with_base_rate({"model": {}})
    assert "capacity" not in bare and "cv" not in bare
    assert bare["baseline"] == baseline_of(None) | {"roc_auc": 0.5, "pr_auc": 0.0}
    assert bare["bant"] is None


def _verdict(low: float, high: float, model: int, chance: float, k: int = 1200) -> str:
    return base_rate_verdict(
        {
            "delta_roc_auc_ci95": [low, high],
            "capacity": {"k": k, "model_wins": model, "base_rate_wins": chance},
        }
    )


def test_base_rate_verdict_claims_only_what_the_ci_and_the_top_k_agree_on() -> None:
    counts = "1,500 wins in the top 1,200 against 1,500 by chance"
    assert _verdict(0.01, 0.2, 1500, 1500.0) == (
        f"the model beats the base rate: {counts}"
    )
    assert _verdict(-0.2, -0.01, 1500, 1500.0) == (
        f"the model ranks worse than the base rate: {counts}"
    )
    assert _verdict(0.01, 0.2, 40, 52.6, k=90) == (
        "mixed: the ROC AUC and the top 90 disagree "
        "(40 wins in the top 90 against 53 by chance)"
    )
    assert _verdict(-0.2, -0.01, 60, 52.4, k=90) == (
        "mixed: the ROC AUC and the top 90 disagree "
        "(60 wins in the top 90 against 52 by chance)"
    )
    no_difference = (
        "no clear difference from the base rate: the AUC gain's 95% CI includes 0"
    )
    assert _verdict(0.0, 0.2, 60, 10.0) == no_difference
    assert _verdict(-0.2, 0.0, 5, 10.0) == no_difference
    assert _verdict(-0.1, 0.1, 60, 10.0) == no_difference


def test_a_column_the_rule_reads_is_read_from_the_files_though_ignored(
    params: Params, small_crm: SyntheticCRM, tmp_path: Path
) -> None:
    """source.ignore keeps a column out of the features, not out of the rule."""
    source = _on_files(params, small_crm, tmp_path)
    ignoring = source.model_copy(update={"ignore": ["bant_need"]})
    assert params.bant is not None
    rule = check_rule_on_files(params.bant, ignoring)
    assert rule.columns_read_["need"] == ["bant_need"]


def test_a_missing_file_is_named_by_its_params_key(
    params: Params, small_crm: SyntheticCRM, tmp_path: Path
) -> None:
    source = _on_files(params, small_crm, tmp_path)
    tables = source.tables
    gone = tables.model_copy(
        update={"deals": tables.deals.model_copy(update={"path": tmp_path / "no.csv"})}
    )
    assert params.bant is not None
    with pytest.raises(ContractError) as caught:
        check_rule_on_files(params.bant, source.model_copy(update={"tables": gone}))
    assert str(caught.value) == (
        f"{tmp_path / 'no.csv'} (source.tables.deals.path): no such file; check the "
        "path (relative to the project root)"
    )
