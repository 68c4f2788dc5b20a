"""Checks before training: splits that keep copies together, sufficiency, leakage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lead_ml.audit import (
    AuditReport,
    LeakageError,
    check,
    column_levels,
    cv_folds,
    decisive_levels,
    duplicate_groups,
    run_audit,
    single_feature_auc,
    split_deals,
    split_method,
)
from lead_ml.cli import app
from lead_ml.config import SplitConfig, SyntheticConfig
from lead_ml.crm import CrmConfig, load_crm
from lead_ml.synthetic import POST_QUALIFICATION_COLUMNS, generate_crm

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not SHARED.is_dir(),
    reason=f"needs the real data sets in {SHARED} (../shared/data beside the "
    "project); it is absent",
)
runner = CliRunner()
SPLIT = SplitConfig()


def _export(n: int = 600, seed: int = 3) -> pd.DataFrame:
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
    )


def _config(tmp_path: Path, export: pd.DataFrame, **changes: Any) -> CrmConfig:
    path = tmp_path / "deals.csv"
    export.to_csv(path, index=False)
    raw: dict[str, Any] = {
        "deals": {"path": str(path), "id": "id", "created": "created"},
        "outcome": {"column": "stage", "won": ["Won"], "lost": ["Lost"]},
        "bant": {"letters": {"need": "visits >= 4"}},
        "audit": {"min_per_outcome": 20},
    }
    for key, value in changes.items():
        merged = isinstance(value, dict) and isinstance(raw.get(key), dict)
        raw[key] = {**raw[key], **value} if merged else value
    return CrmConfig.model_validate(raw)


def _audit(tmp_path: Path, export: pd.DataFrame, **changes: Any) -> AuditReport:
    crm = _config(tmp_path, export, **changes)
    return run_audit(load_crm(crm), crm, SPLIT, seed=7)


def _checks(report: AuditReport) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for flag in report.flags:
        found.setdefault(flag.column, set()).add(flag.check)
    return found


# --- the leakage and column checks on known answers ---------------------------------


def test_each_problem_column_gets_its_flag_and_honest_ones_none(
    tmp_path: Path,
) -> None:
    report = _audit(tmp_path, _export(), deals={"closed": "closed"})
    found = _checks(report)
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


def test_reasons_are_plain_language(tmp_path: Path) -> None:
    report = _audit(tmp_path, _export(), deals={"closed": "closed"})
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


def test_the_pipeline_stops_unless_the_user_allows_the_column(tmp_path: Path) -> None:
    export = _export()[["id", "stage", "created", "region", "visits", "signal"]]
    refused = _audit(tmp_path, export)
    with pytest.raises(LeakageError) as caught:
        check(refused)
    message = str(caught.value)
    assert "signal (single_feature_auc)" in message
    assert "crm.allowed" in message and "crm.forbidden" in message
    allowed = _audit(tmp_path, export, allowed=["signal"])
    check(allowed)  # no error
    assert allowed.blocking == []
    assert "signal" in allowed.features
    assert all(f.allowed for f in allowed.flags if f.column == "signal")


def test_rejected_rows_are_counted_by_kind_of_problem(tmp_path: Path) -> None:
    export = _export()[["id", "stage", "created", "region", "visits"]]
    export.loc[[5, 9], "id"] = ["D1", "D2"]
    report = _audit(tmp_path, export)
    assert report.report["rejects_by_reason"] == {
        "deals: duplicate id '...' (first seen at row ...)": 2
    }
    assert "2 deal rows rejected (see rejects)" in report.report["warnings"]


def test_the_name_check_can_be_switched_off(tmp_path: Path) -> None:
    export = _export()[["id", "stage", "created", "region", "visits", "Last Touch"]]
    report = _audit(tmp_path, export, audit={"late_name_words": []})
    assert report.flags == []


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


# --- splits and duplicates -----------------------------------------------------------


def _deals_frame(
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


@settings(max_examples=40, deadline=None)
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
    frame = _deals_frame(rows, method == "time", method == "order")
    before = frame.copy()
    groups = duplicate_groups(frame, ["colour", "outcome"])
    labels = split_deals(frame, groups, SPLIT, seed)
    pd.testing.assert_frame_equal(frame, before)  # inputs are never changed
    assert labels.index.equals(frame.index)
    assert split_method(frame)[0] == method
    assert labels.notna().all()
    assert (labels.groupby(groups).nunique() == 1).all()


@settings(max_examples=20, deadline=None)
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
    frame = _deals_frame(rows, True, False)
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


def test_time_split_puts_the_latest_deals_in_test() -> None:
    rows = [(i, i % 2, i) for i in range(100)]  # no copies: every colour differs
    frame = _deals_frame(rows, True, False)
    labels = split_deals(frame, duplicate_groups(frame, ["colour"]), SPLIT, 0)
    latest_train = frame.loc[labels == "train", "created_at"].max()
    assert latest_train < frame.loc[labels == "valid", "created_at"].min()
    assert labels.value_counts().to_dict() == {"train": 65, "test": 20, "valid": 15}


def test_random_split_is_stratified_and_seeded() -> None:
    rng = np.random.default_rng(1)
    rows = [(i, int(rng.random() < 0.3), 0) for i in range(3000)]
    frame = _deals_frame(rows, False, False)
    groups = duplicate_groups(frame, ["colour"])
    labels = split_deals(frame, groups, SPLIT, seed=5)
    rates = frame["won"].astype(float).groupby(labels).mean()
    assert (rates - frame["won"].mean()).abs().max() < 0.01
    assert labels.equals(split_deals(frame, groups, SPLIT, seed=5))
    assert not labels.equals(split_deals(frame, groups, SPLIT, seed=6))


def test_the_report_says_how_deals_were_split(tmp_path: Path) -> None:
    export = _export()[["id", "stage", "created", "region", "visits"]]
    by_time = _audit(tmp_path, export)
    assert by_time.report["split"]["method"] == "time"
    by_order = _audit(
        tmp_path,
        export.assign(seq=np.arange(len(export))),
        deals={"created": None, "order": "seq"},
    )
    assert by_order.report["split"]["method"] == "order"
    assert "order column" in by_order.report["warnings"][0]
    at_random = _audit(tmp_path, export, deals={"created": None})
    assert at_random.report["split"]["method"] == "random"
    assert "at random, stratified by outcome" in at_random.report["warnings"][0]


def test_too_few_deals_recommends_repeated_cross_validation(tmp_path: Path) -> None:
    export = _export(300)[["id", "stage", "created", "region", "visits"]]
    small = _audit(tmp_path, export, audit={"min_per_outcome": 100})
    enough = small.report["sufficiency"]
    assert enough["evaluation"] == "repeated_cv"
    assert "below crm.audit.min_per_outcome=100" in enough["message"]
    assert (
        "repeated stratified cross-validation (5 folds x 3 repeats)"
        in enough["message"]
    )
    counts = small.report["split"]["counts"]
    assert sum(c["won"] + c["lost"] for c in counts.values()) == 300
    fine = _audit(tmp_path, export, audit={"min_per_outcome": 10})
    assert fine.report["sufficiency"]["evaluation"] == "holdout"


# --- the known truth of the synthetic CRM ---------------------------------------------


def test_the_audit_finds_exactly_the_synthetic_post_outcome_fields(
    tmp_path: Path,
) -> None:
    synthetic = generate_crm(
        SyntheticConfig(n_deals=2000, n_accounts=400, activities_per_deal=2),
        seed=5,
        dirty_fraction=0.0,
    )
    synthetic.deals.to_csv(tmp_path / "deals.csv", index=False)
    synthetic.accounts.to_csv(tmp_path / "accounts.csv", index=False)
    crm = CrmConfig.model_validate(
        {
            "deals": {
                "path": str(tmp_path / "deals.csv"),
                "id": "deal_id",
                "created": "created_at",
                "closed": "closed_at",
                "amount": "amount",
            },
            "outcome": {"column": "outcome", "won": ["won"], "lost": ["lost"]},
            "accounts": {"path": str(tmp_path / "accounts.csv"), "key": "account_id"},
            "bant": {"letters": {"budget": "bant_budget == 'yes'"}},
        }
    )
    report = run_audit(load_crm(crm), crm, SPLIT, seed=42)
    assert set(report.report["blocking"]) == set(POST_QUALIFICATION_COLUMNS)


# --- the command --------------------------------------------------------------------


def _params_file(tmp_path: Path, crm: CrmConfig) -> Path:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"crm": crm.model_dump(mode="json")}))
    return params


def test_audit_command_refuses_leakage_and_still_writes_the_report(
    tmp_path: Path,
) -> None:
    export = _export()[["id", "stage", "created", "region", "visits", "signal"]]
    params = _params_file(tmp_path, _config(tmp_path, export))
    out = tmp_path / "reports"
    arguments = [
        "audit",
        "--params",
        str(params),
        "--out",
        str(out / "audit.json"),
        "--summary",
        str(out / "audit.md"),
        "--rejects",
        str(out / "rejects.csv"),
    ]
    refused = runner.invoke(app, arguments)
    assert refused.exit_code == 2
    assert "signal" in refused.output and "look like leakage" in refused.output
    assert "Traceback" not in refused.output
    report = json.loads((out / "audit.json").read_text())
    assert report["passed"] is False and report["blocking"] == ["signal"]
    assert any(
        w.startswith("signal (single_feature_auc, refused)") for w in report["warnings"]
    )
    assert "**Refused**: signal" in (out / "audit.md").read_text()
    params = _params_file(tmp_path, _config(tmp_path, export, forbidden=["signal"]))
    passed = runner.invoke(app, arguments)
    assert passed.exit_code == 0, passed.output
    assert json.loads((out / "audit.json").read_text())["passed"] is True


def test_audit_without_a_crm_section_says_what_it_needs(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("seed: 1\n")
    result = runner.invoke(app, ["audit", "--params", str(params)])
    assert result.exit_code == 2
    assert "no crm section" in " ".join(result.output.split())


# --- the real data sets ---------------------------------------------------------------

KNOWN_LEAKS = {
    "x_education": {"Tags", "Lead Quality", "Last Activity", "Last Notable Activity"},
    "maven_crm": {"close_value"},
}


@needs_data
@pytest.mark.realdata
@pytest.mark.parametrize("example", sorted(KNOWN_LEAKS))
def test_real_data_leaks_are_refused_by_default(
    example: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # example paths are relative to the project root
    raw = yaml.safe_load((ROOT / "examples" / example / "params.yaml").read_text())
    raw["crm"]["forbidden"] = []
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    out = tmp_path / "audit.json"
    result = runner.invoke(
        app,
        [
            "audit",
            "-p",
            str(params),
            "--out",
            str(out),
            "--summary",
            str(tmp_path / "audit.md"),
            "--rejects",
            str(tmp_path / "rejects.csv"),
        ],
    )
    assert result.exit_code == 2, result.output
    blocking = set(json.loads(out.read_text())["blocking"])
    assert KNOWN_LEAKS[example] <= blocking
    for column in KNOWN_LEAKS[example]:
        assert column in result.output


@needs_data
@pytest.mark.realdata
@pytest.mark.parametrize("example", sorted(KNOWN_LEAKS))
def test_real_data_examples_pass_the_audit(
    example: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    params = ROOT / "examples" / example / "params.yaml"
    out = tmp_path / "audit.json"
    result = runner.invoke(
        app,
        [
            "audit",
            "-p",
            str(params),
            "--out",
            str(out),
            "--summary",
            str(tmp_path / "audit.md"),
            "--rejects",
            str(tmp_path / "rejects.csv"),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["passed"] and not KNOWN_LEAKS[example] & set(report["features"])
    assert report["duplicates"]["groups_across_splits"] == 0
    expected = {"x_education": "order", "maven_crm": "time"}[example]
    assert report["split"]["method"] == expected
    if example == "x_education":  # the constant "No" columns are dropped, not fatal
        dropped = {f["column"] for f in report["flags"] if f["severity"] == "dropped"}
        assert {"Magazine", "I agree to pay the amount through cheque"} <= dropped
