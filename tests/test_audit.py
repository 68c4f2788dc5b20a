"""Checks before training: splits that keep copies together, sufficiency, leakage.

Rules are pinned on a small export whose problems are known; every source's own
leaks (the synthetic CRM's post-qualification fields, X Education's sales fields,
Maven's close_value) are found when they are not forbidden.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from projects import Project, merged

from lead_ml.audit import (
    AuditReport,
    check,
    column_levels,
    cv_folds,
    decisive_levels,
    duplicate_groups,
    name_words,
    refusal,
    run_audit,
    single_feature_auc,
    split_deals,
    split_method,
    summary_markdown,
    write_report,
)
from lead_ml.config import Params, SplitConfig, parse_params, read_params_file
from lead_ml.sources import load_deals, read_tables
from lead_ml.synthetic import POST_QUALIFICATION_COLUMNS
from lead_ml.vocab import LeakageError

SPLIT = SplitConfig()


def export(n: int = 600, seed: int = 3) -> pd.DataFrame:
    """Deals whose answer is known: honest noise plus one column per problem."""
    rng = np.random.default_rng(seed)
    won = rng.random(n) < 0.4
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n), unit="h")
    closed = created + pd.to_timedelta(rng.integers(5, 60, n), unit="D")
    return pd.DataFrame(
        {
            "id": [f"D{i}" for i in range(n)],
            "stage": np.where(won, "Won", "Lost"),
            "created": created.strftime("%Y-%m-%d %H:%M"),
            "closed": closed.strftime("%Y-%m-%d"),
            "region": rng.choice(["EU", "US", "APAC", "LATAM"], n),
            "visits": rng.poisson(4, n).astype(str),
            "source": "web",  # constant
            "signal": np.where(won, "green", "red"),  # the outcome in disguise
            "memo": pd.Series("paid in full", index=range(n)).where(won),  # won only
            "renewal_on": (closed + pd.Timedelta(days=30)).strftime("%Y-%m-%d"),
            "Last Touch": rng.choice(["email", "call"], n),  # an export-time name
        }
    ).astype("string")


BASE: dict[str, Any] = {
    "source": {
        "tables": {"deals": {"path": "deals.csv", "id": "id", "created": "created"}},
        "outcome": {"column": "stage", "won": ["Won"], "lost": ["Lost"]},
    },
    "bant": {"letters": {"need": "visits >= 4"}, "threshold": 1},
    "audit": {"min_per_outcome": 20},
}


def audit(deals: pd.DataFrame, **changes: Any) -> AuditReport:
    """The audit of an export (CSV-like text frame) under BASE with changes."""
    params = parse_params(merged(BASE, changes))
    loaded = load_deals(params.source, params.bant, {"deals": deals})
    return run_audit(loaded, params.source, params.audit, params.split, seed=7)


def checks(report: AuditReport) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for flag in report.flags:
        found.setdefault(flag.column, set()).add(flag.check)
    return found


WITH_CLOSE = {"source": {"tables": {"deals": {"closed": "closed"}}}}
HONEST = ["id", "stage", "created", "region", "visits"]


# --- the leakage and column checks on known answers -------------------------------


def test_each_problem_column_gets_its_flag_and_honest_ones_none() -> None:
    report = audit(export(), **WITH_CLOSE)
    found = checks(report)
    assert found["source"] == {"constant"}
    assert {"single_feature_auc", "decisive_values"} <= found["signal"]
    assert "one_outcome" in found["memo"]
    assert found["renewal_on"] == {"date_after_close"}
    assert found["Last Touch"] == {"late_name"}
    assert "region" not in found and "visits" not in found
    assert set(report.report["blocking"]) == {
        "signal",
        "memo",
        "renewal_on",
        "Last Touch",
    }
    assert report.features == ("region", "visits")
    assert report.report["features"] == ["region", "visits"]


def test_reasons_are_plain_language() -> None:
    report = audit(export(), **WITH_CLOSE)
    reasons = {(f.column, f.check): f.reason for f in report.flags}
    assert "cannot tell deals apart" in reasons[("source", "constant")]
    assert "AUC 1.000" in reasons[("signal", "single_feature_auc")]
    assert "'green' (100% won" in reasons[("signal", "decisive_values")]
    assert (
        "100% of won training deals but 0.0% of lost"
        in reasons[("memo", "one_outcome")]
    )
    assert "after their close date" in reasons[("renewal_on", "date_after_close")]
    assert "(last)" in reasons[("Last Touch", "late_name")]


def test_the_pipeline_stops_unless_the_user_allows_the_column() -> None:
    deals = export()[[*HONEST, "signal"]]
    refused = audit(deals)
    with pytest.raises(LeakageError) as caught:
        check(refused)
    message = str(caught.value)
    assert message.startswith("audit: 1 column(s) look like leakage")
    assert "signal (single_feature_auc)" in message
    assert "source.allowed" in message and "source.forbidden" in message
    assert message == refusal(refused)
    allowed = audit(deals, source={"allowed": ["signal"]})
    check(allowed)  # no error
    assert allowed.blocking == [] and allowed.report["passed"]
    assert "signal" in allowed.features
    assert all(f.allowed for f in allowed.flags if f.column == "signal")
    forbidden = audit(deals, source={"forbidden": ["signal"]})
    assert forbidden.flags == [] and "signal" not in forbidden.features


def test_rejected_rows_are_counted_by_kind_of_problem() -> None:
    deals = export()[HONEST].copy()
    deals.loc[[5, 9], "id"] = ["D1", "D2"]
    report = audit(deals)
    assert report.report["rejects_by_reason"] == {
        "deals: duplicate id '...' (first seen at row ...)": 2
    }
    assert "2 deal rows rejected (see rejects)" in report.report["warnings"]


def test_the_name_check_can_be_switched_off() -> None:
    report = audit(export()[[*HONEST, "Last Touch"]], audit={"late_name_words": []})
    assert report.flags == []


@pytest.mark.parametrize(
    ("column", "words"),
    [
        ("Last Notable_Activity", {"last", "notable", "activity"}),
        ("closeValue", {"close", "value"}),
        ("Lead Quality", {"lead", "quality"}),
    ],
)
def test_column_names_are_split_into_words(column: str, words: set[str]) -> None:
    assert name_words(column) == words


def test_single_feature_auc_does_not_reward_identifiers() -> None:
    rng = np.random.default_rng(0)
    won = (rng.random(4000) < 0.4).astype(int)
    folds = rng.integers(0, 5, 4000)
    ids = pd.Series([f"D{i}" for i in range(4000)])
    assert single_feature_auc(ids, won, folds) == pytest.approx(0.5)
    noise = pd.Series(rng.choice(list("abcd"), 4000))  # AUC sd about 0.01 here
    assert abs(single_feature_auc(noise, won, folds) - 0.5) < 0.04
    copy = pd.Series(np.where(won == 1, "yes", "no"))
    assert single_feature_auc(copy, won, folds) == pytest.approx(1.0)


def test_deciding_values_are_judged_against_the_base_rate() -> None:
    # 5% win rate: 60 deals without a win happen by chance (0.95**60 = 5%).
    won = np.array([1] * 50 + [0] * 950 + [1] * 100)
    levels = pd.Series(["a"] * 940 + ["rare"] * 60 + ["paid"] * 100)
    decisive = decisive_levels(levels, won, purity=0.97, min_rows=30)
    assert decisive["level"].tolist() == ["paid"]


def test_numbers_are_binned_with_spikes_of_their_own() -> None:
    values = pd.Series([0.0] * 50 + list(np.linspace(1, 100, 50)) + [np.nan] * 5)
    levels = column_levels(values, "number")
    assert (levels == "= 0").sum() == 50
    assert (levels == "(missing)").sum() == 5
    assert levels.iloc[50:100].nunique() == 20


# --- splits and duplicates ---------------------------------------------------------


def deals_frame(
    rows: list[tuple[int, int, int]], with_dates: bool, with_order: bool
) -> pd.DataFrame:
    """A labelled frame from (feature value, won, day) rows."""
    n = len(rows)
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta([r[2] for r in rows], "D")
    return pd.DataFrame(
        {
            "deal_id": [f"D{i:04d}" for i in range(n)],
            "created_at": created if with_dates else pd.NaT,
            "order": [float(r[2]) for r in rows] if with_order else np.nan,
            "won": pd.array([r[1] for r in rows], dtype="Int8"),
            "outcome": ["won" if r[1] else "lost" for r in rows],
            "colour": [str(r[0]) for r in rows],
        },
        index=pd.RangeIndex(100, 100 + n),  # not 0..n-1: the index must be kept
    )


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 1), st.integers(0, 30)),
        min_size=12,
        max_size=80,
    ),
    method=st.sampled_from(["time", "order", "random"]),
    seed=st.integers(0, 10),
)
def test_duplicates_never_straddle_a_split(
    rows: list[tuple[int, int, int]], method: str, seed: int
) -> None:
    frame = deals_frame(rows, method == "time", method == "order")
    before = frame.copy()
    groups = duplicate_groups(frame, ["colour", "outcome"])
    labels = split_deals(frame, groups, SPLIT, seed)
    pd.testing.assert_frame_equal(frame, before)  # inputs are never changed
    assert labels.index.equals(frame.index)
    assert split_method(frame)[0] == method
    assert labels.notna().all()
    assert (labels.groupby(groups).nunique() == 1).all()


@settings(max_examples=20, deadline=None, derandomize=True)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 8), st.integers(0, 1), st.integers(0, 9)),
        min_size=40,
        max_size=120,
    ),
    seed=st.integers(0, 10),
)
def test_cv_folds_keep_copies_together_and_test_each_deal_once(
    rows: list[tuple[int, int, int]], seed: int
) -> None:
    frame = deals_frame(rows, True, False)
    groups = duplicate_groups(frame, ["colour", "outcome"])
    if groups.nunique() < 3:
        return  # too few groups for three folds
    folds = cv_folds(frame, groups, n_splits=3, n_repeats=2, seed=seed)
    assert len(folds) == 6
    for repeat in range(2):
        tested = np.concatenate(
            [test for _, test in folds[3 * repeat : 3 * repeat + 3]]
        )
        assert sorted(tested) == list(range(len(frame)))
    for train, test in folds:
        assert not set(groups.iloc[train]) & set(groups.iloc[test])


def test_open_deals_get_no_split_and_no_fold() -> None:
    frame = deals_frame([(i, i % 2, i) for i in range(40)], True, False)
    frame["won"] = frame["won"].mask(frame.index >= 130)  # the last ten are open
    groups = duplicate_groups(frame, ["colour"])
    labels = split_deals(frame, groups, SPLIT, 0)
    assert labels.isna().tolist() == [False] * 30 + [True] * 10
    tested = np.concatenate([test for _, test in cv_folds(frame, groups, 3, 1, 0)])
    assert sorted(tested) == list(range(30))


def test_time_split_puts_the_latest_deals_in_test() -> None:
    rows = [(i, i % 2, i) for i in range(100)]  # no copies: every colour differs
    frame = deals_frame(rows, True, False)
    labels = split_deals(frame, duplicate_groups(frame, ["colour"]), SPLIT, 0)
    latest_train = frame.loc[labels == "train", "created_at"].max()
    assert latest_train < frame.loc[labels == "valid", "created_at"].min()
    latest_valid = frame.loc[labels == "valid", "created_at"].max()
    assert latest_valid < frame.loc[labels == "test", "created_at"].min()
    assert labels.value_counts().to_dict() == {"train": 65, "test": 20, "valid": 15}


def test_random_split_is_stratified_and_seeded() -> None:
    rng = np.random.default_rng(1)
    rows = [(i, int(rng.random() < 0.3), 0) for i in range(3000)]
    frame = deals_frame(rows, False, False)
    groups = duplicate_groups(frame, ["colour"])
    labels = split_deals(frame, groups, SPLIT, seed=5)
    rates = frame["won"].astype(float).groupby(labels).mean()
    assert (rates - frame["won"].mean()).abs().max() < 0.01
    assert labels.equals(split_deals(frame, groups, SPLIT, seed=5))
    assert not labels.equals(split_deals(frame, groups, SPLIT, seed=6))


def test_the_report_says_how_deals_were_split() -> None:
    deals = export()[HONEST]
    by_time = audit(deals)
    assert by_time.report["split"]["method"] == "time"
    assert not any(w.startswith("split:") for w in by_time.report["warnings"])
    by_order = audit(
        deals.assign(seq=[str(i) for i in range(len(deals))]),
        source={"tables": {"deals": {"created": None, "order": "seq"}}},
    )
    assert by_order.report["split"]["method"] == "order"
    assert "order column" in by_order.report["warnings"][0]
    at_random = audit(deals, source={"tables": {"deals": {"created": None}}})
    assert at_random.report["split"]["method"] == "random"
    assert "at random, stratified by outcome" in at_random.report["warnings"][0]


def test_copies_of_a_deal_are_grouped_and_kept_on_one_side() -> None:
    deals = export(300)[["id", "stage", "region", "visits"]]
    copies = deals.iloc[:40].assign(id=[f"C{i}" for i in range(40)])
    report = audit(
        pd.concat([deals, copies], ignore_index=True),
        source={"tables": {"deals": {"created": None}}},
    )
    duplicates = report.report["duplicates"]
    assert duplicates["rows_with_a_copy"] >= 80
    assert duplicates["groups_across_splits"] == 0
    assert "id" not in duplicates["compared_columns"]
    assert "deal_id" not in duplicates["compared_columns"]
    assert (report.split.groupby(report.groups).nunique() <= 1).all()


def test_too_few_deals_recommends_repeated_cross_validation() -> None:
    deals = export(300)[HONEST]
    small = audit(deals, audit={"min_per_outcome": 100})
    enough = small.report["sufficiency"]
    assert enough["evaluation"] == "repeated_cv" and not enough["enough"]
    assert "below audit.min_per_outcome=100" in enough["message"]
    assert (
        "repeated stratified cross-validation (5 folds x 3 repeats)"
        in enough["message"]
    )
    assert any(w.startswith("sufficiency:") for w in small.report["warnings"])
    counts = small.report["split"]["counts"]
    assert sum(c["won"] + c["lost"] for c in counts.values()) == 300
    fine = audit(deals, audit={"min_per_outcome": 10})
    assert fine.report["sufficiency"]["evaluation"] == "holdout"


def test_the_report_is_written_as_json_and_markdown(tmp_path: Any) -> None:
    refused = audit(export()[[*HONEST, "signal"]])
    write_report(refused, tmp_path / "a" / "audit.json", tmp_path / "b" / "audit.md")
    written = json.loads((tmp_path / "a" / "audit.json").read_text())
    assert written["passed"] is False and written["blocking"] == ["signal"]
    assert any(
        w.startswith("signal (single_feature_auc, refused)")
        for w in written["warnings"]
    )
    page = (tmp_path / "b" / "audit.md").read_text()
    assert page == summary_markdown(refused)
    assert "**Refused**: signal" in page
    assert "| signal | single_feature_auc | refused |" in page


# --- every source -----------------------------------------------------------------

#: The columns each source records after the outcome; the audit must find them.
KNOWN_LEAKS: dict[str, set[str]] = {
    "synthetic": set(POST_QUALIFICATION_COLUMNS),
    "x_education": {"Tags", "Lead Quality", "Last Activity", "Last Notable Activity"},
    "maven": {"close_value"},
}
SPLIT_METHOD = {"synthetic": "time", "x_education": "order", "maven": "time"}


def unforbidden(project: Project) -> Params:
    """The project's params with nothing forbidden."""
    raw = read_params_file(project.path("params.yaml"))
    raw["source"]["forbidden"] = []
    return parse_params(raw)


def test_every_source_leaks_are_refused_when_not_forbidden(project: Project) -> None:
    params = unforbidden(project)
    tables = read_tables(params.source, project.path("data/tables"))
    deals = load_deals(params.source, params.bant, tables)
    report = run_audit(deals, params.source, params.audit, params.split, params.seed)
    blocking = set(report.report["blocking"])
    assert KNOWN_LEAKS[project.name] <= blocking
    if project.name == "synthetic":  # its truth is known: nothing else leaks
        assert blocking == KNOWN_LEAKS["synthetic"]
    with pytest.raises(LeakageError) as caught:
        check(report)
    for column in KNOWN_LEAKS[project.name]:
        assert f"  {column} (" in str(caught.value)


def test_every_source_passes_its_audit_as_shipped(project: Project) -> None:
    report = json.loads(project.path("reports/audit.json").read_text())
    assert report["passed"] and report["blocking"] == []
    assert not KNOWN_LEAKS[project.name] & set(report["features"])
    assert report["duplicates"]["groups_across_splits"] == 0
    assert report["split"]["method"] == SPLIT_METHOD[project.name]
    deals = project.deals()
    closed = int(deals.frame["won"].notna().sum())
    counts = report["split"]["counts"]
    assert sum(c["won"] + c["lost"] for c in counts.values()) == closed
    split = pd.read_parquet(project.path("data/audit/split.parquet"))
    assert split["deal_id"].tolist() == deals.frame["deal_id"].tolist()
    assert split["split"].isna().tolist() == deals.frame["won"].isna().tolist()
    assert set(report["dimensions"]) == set(report["features"])


def test_x_education_constant_columns_are_dropped_not_fatal(
    x_education_project: Project,
) -> None:
    report = json.loads(x_education_project.path("reports/audit.json").read_text())
    dropped = {f["column"] for f in report["flags"] if f["severity"] == "dropped"}
    assert {"Magazine", "I agree to pay the amount through cheque"} <= dropped
    assert not dropped & set(report["features"])


def test_maven_close_value_is_the_outcome_written_as_a_number(
    maven_project: Project,
) -> None:
    params = unforbidden(maven_project)
    tables = read_tables(params.source, maven_project.path("data/tables"))
    deals = load_deals(params.source, params.bant, tables)
    report = run_audit(deals, params.source, params.audit, params.split, params.seed)
    found = checks(report)["close_value"]
    assert {"late_name", "single_feature_auc", "decisive_values"} <= found
