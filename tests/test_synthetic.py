"""The synthetic CRM: determinism, schema, realism, a signal worth modelling, and a
source section (params.yaml) that describes it like any export."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from projects import SOURCES
from sklearn.metrics import roc_auc_score

from lead_ml.config import SyntheticConfig, load_params
from lead_ml.synthetic import (
    ACTIVITY_TYPES,
    BANT_TIMELINES,
    OUTCOME_ACTIVITY_AFTER_DAYS,
    POST_QUALIFICATION_COLUMNS,
    SyntheticCRM,
    generate_crm,
    write_crm,
)
from lead_ml.vocab import DIMENSIONS

YES_NO_UNKNOWN = {"yes", "no", "unknown"}
EXPECTED_COLUMNS = {
    "accounts": ["account_id", "industry", "employees", "annual_revenue", "region"],
    "deals": [
        "deal_id",
        "account_id",
        "created_at",
        "closed_at",
        "outcome",
        "amount",
        "lead_source",
        "contact_title",
        "contact_seniority",
        "minutes_to_first_response",
        "bant_budget",
        "bant_authority",
        "bant_need",
        "bant_timeline",
        "meddic_metrics",
        "meddic_economic_buyer",
        "meddic_decision_criteria",
        "meddic_decision_process",
        "meddic_pain_type",
        "meddic_pain_severity",
        "meddic_champion",
        "meddic_champion_strength",
        "stage_at_close",
        "discount_pct",
        "lost_reason",
    ],
    "activities": ["activity_id", "deal_id", "timestamp", "activity_type"],
}


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
    }


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_same_seed_gives_same_bytes(tmp_path: Path, fmt: str) -> None:
    cfg = SyntheticConfig(n_deals=800, n_accounts=100)
    write_crm(generate_crm(cfg, seed=5), tmp_path / "a", fmt)
    write_crm(generate_crm(cfg, seed=5), tmp_path / "b", fmt)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    write_crm(generate_crm(cfg, seed=6), tmp_path / "c", fmt)
    assert (
        _digests(tmp_path / "a")["deals." + fmt]
        != _digests(tmp_path / "c")["deals." + fmt]
    )


@pytest.mark.parametrize("table", sorted(EXPECTED_COLUMNS))
def test_tables_have_the_documented_columns(
    small_crm: SyntheticCRM, table: str
) -> None:
    assert list(getattr(small_crm, table).columns) == EXPECTED_COLUMNS[table]


def test_column_types_and_values(small_crm: SyntheticCRM) -> None:
    deals, accounts, log = small_crm.deals, small_crm.accounts, small_crm.activities
    for column in ("created_at", "closed_at"):
        assert deals[column].dtype == "datetime64[ms]"
    assert log["timestamp"].dtype == "datetime64[ms]"
    assert set(deals["outcome"]) == {"won", "lost", "open"}
    for column in (
        "bant_budget",
        "bant_authority",
        "bant_need",
        "meddic_metrics",
        "meddic_economic_buyer",
        "meddic_decision_criteria",
        "meddic_decision_process",
        "meddic_champion",
    ):
        assert set(deals[column]) == YES_NO_UNKNOWN, column
    assert set(deals["bant_timeline"]) == {*BANT_TIMELINES, "unknown"}
    assert set(deals["meddic_pain_type"]) == {
        "financial",
        "support",
        "productivity",
        "none",
        "unknown",
    }
    assert set(log["activity_type"]) == set(ACTIVITY_TYPES)
    assert deals["deal_id"].is_unique and accounts["account_id"].is_unique
    assert log["activity_id"].is_unique
    assert (deals["amount"] > 0).all() and (
        deals["minutes_to_first_response"] >= 0
    ).all()


def test_dates_are_consistent(small_crm: SyntheticCRM) -> None:
    deals = small_crm.deals
    closed = deals["outcome"] != "open"
    assert deals.loc[closed, "closed_at"].notna().all()
    assert deals.loc[~closed, "closed_at"].isna().all()
    assert (deals.loc[closed, "closed_at"] >= deals.loc[closed, "created_at"]).all()
    export_at = pd.Timestamp(small_crm.summary["export_at"])
    assert (small_crm.activities["timestamp"] <= export_at).all()


def test_unknown_states_are_explicit(small_crm: SyntheticCRM) -> None:
    deals = small_crm.deals
    unknown_pain = deals["meddic_pain_type"] == "unknown"
    assert deals.loc[unknown_pain, "meddic_pain_severity"].isna().all()
    assert (
        deals.loc[deals["meddic_pain_type"] == "none", "meddic_pain_severity"] == 0
    ).all()
    champion = deals["meddic_champion"] == "yes"
    assert deals.loc[champion, "meddic_champion_strength"].between(1, 5).all()
    assert deals.loc[~champion, "meddic_champion_strength"].isna().all()


def test_post_qualification_fields_follow_the_outcome(small_crm: SyntheticCRM) -> None:
    deals = small_crm.deals
    assert set(POST_QUALIFICATION_COLUMNS) <= set(deals.columns)
    assert deals.loc[deals["outcome"] != "lost", "lost_reason"].isna().all()
    assert deals.loc[deals["outcome"] == "lost", "lost_reason"].notna().all()
    assert deals.loc[deals["outcome"] != "won", "discount_pct"].isna().all()


def test_realism_ranges_at_default_size(default_crm: SyntheticCRM) -> None:
    summary = default_crm.summary
    assert 0.15 <= summary["win_rate_closed"] <= 0.35
    assert summary["sales_ready_share"] < 0.5
    assert 0.02 < summary["bant_pass_share"] < 0.5
    assert summary["n_open"] > 500
    assert 30_000 <= summary["n_deals"] <= 50_000
    assert 700_000 <= len(default_crm.activities) <= 1_500_000


def test_base_rate_drifts_over_time(default_crm: SyntheticCRM) -> None:
    closed = default_crm.deals[default_crm.deals["outcome"].isin(["won", "lost"])]
    year = closed["created_at"].dt.year
    by_year = (closed["outcome"] == "won").groupby(year).mean()
    assert by_year.iloc[0] - by_year.iloc[-1] > 0.02


def test_fast_response_raises_the_odds(default_crm: SyntheticCRM) -> None:
    closed = default_crm.deals[default_crm.deals["outcome"].isin(["won", "lost"])]
    fast = closed["minutes_to_first_response"] <= 5
    won = closed["outcome"] == "won"
    assert won[fast].mean() > won[~fast].mean() + 0.05


def _evidence_points(deals: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return sum((deals[c] == "yes").to_numpy(int) for c in columns)  # type: ignore[return-value]


def test_meddic_separates_won_from_lost_more_than_bant(
    default_crm: SyntheticCRM,
) -> None:
    deals = default_crm.deals
    closed = deals[deals["outcome"].isin(["won", "lost"])]
    won = (closed["outcome"] == "won").to_numpy(int)
    meddic = _evidence_points(
        closed,
        [
            "meddic_metrics",
            "meddic_economic_buyer",
            "meddic_decision_criteria",
            "meddic_decision_process",
            "meddic_champion",
        ],
    ) + closed["meddic_pain_type"].isin(
        ["financial", "support", "productivity"]
    ).to_numpy(int)
    bant = _evidence_points(
        closed, ["bant_budget", "bant_authority", "bant_need"]
    ) + closed["bant_timeline"].isin(BANT_TIMELINES[:2]).to_numpy(int)
    meddic_auc, bant_auc = roc_auc_score(won, meddic), roc_auc_score(won, bant)
    assert meddic_auc > 0.68
    assert meddic_auc > bant_auc + 0.1


def test_big_company_executive_passes_bant_but_rarely_wins(
    default_crm: SyntheticCRM,
) -> None:
    deals = default_crm.deals.merge(default_crm.accounts, on="account_id")
    closed = deals[deals["outcome"].isin(["won", "lost"])]
    big_exec = (closed["contact_seniority"] == "c_level") & (
        closed["employees"] >= 5000
    )
    won = closed["outcome"] == "won"
    assert big_exec.sum() > 50
    assert (closed.loc[big_exec, "bant_authority"] == "yes").mean() > 0.8
    assert won[big_exec].mean() < 0.5 * won.mean()


def test_late_activity_depends_on_the_outcome(default_crm: SyntheticCRM) -> None:
    deals = default_crm.deals.drop_duplicates("deal_id")
    log = default_crm.activities.merge(
        deals[["deal_id", "created_at", "outcome"]], on="deal_id"
    )
    late = log["timestamp"] > log["created_at"] + pd.Timedelta(
        days=OUTCOME_ACTIVITY_AFTER_DAYS
    )
    per_deal = (
        log[late].groupby("deal_id").size().reindex(deals["deal_id"], fill_value=0)
    )
    outcome = deals.set_index("deal_id")["outcome"]
    assert per_deal[outcome == "won"].mean() > 2 * per_deal[outcome == "lost"].mean()


def test_truth_is_written_next_to_the_data(
    tmp_path: Path, small_crm: SyntheticCRM
) -> None:
    written = write_crm(small_crm, tmp_path)
    assert {p.name for p in written} == {
        "accounts.parquet",
        "deals.parquet",
        "activities.parquet",
        "truth.parquet",
        "truth.json",
    }
    summary = json.loads((tmp_path / "truth.json").read_text())
    assert set(summary["dimension_strength"]) == set(DIMENSIONS)
    assert summary["effects"]["champion"]["unknown"] == 0.0
    truth = pd.read_parquet(tmp_path / "truth.parquet")
    parts = truth[[f"true_{d}" for d in DIMENSIONS]].sum(axis=1) + truth["base"]
    # What the dimensions and base do not explain is the unobserved noise.
    assert (truth["true_logit"] - parts).std() == pytest.approx(0.3, abs=0.05)


def test_dirty_rows_are_injected_for_validate(default_crm: SyntheticCRM) -> None:
    deals, log = default_crm.deals, default_crm.activities
    assert deals["deal_id"].duplicated().sum() > 0
    assert (deals["amount"] < 0).sum() > 0
    assert (deals["outcome"] == "pending").sum() > 0
    assert (log["activity_type"] == "fax").sum() > 0


def test_params_yaml_describes_every_generated_column(small_crm: SyntheticCRM) -> None:
    source = load_params(SOURCES["synthetic"]).source
    described = {*source.roles().values(), *source.forbidden, *source.dimensions}
    log = source.tables.activities
    assert log is not None
    for table in ("deals", "accounts"):
        columns = set(getattr(small_crm, table).columns)
        assert columns <= described, sorted(columns - described)
    assert {log.key, log.timestamp, log.type} <= set(small_crm.activities.columns)
    assert set(source.forbidden) == set(POST_QUALIFICATION_COLUMNS)
    # the MEDDIC answers are evidence, "unknown" (what reps record) is missing
    assert "unknown" in source.missing_values
    meddic = [str(c) for c in small_crm.deals if str(c).startswith("meddic_")]
    yes_no = [c for c in meddic if set(small_crm.deals[c]) == YES_NO_UNKNOWN]
    assert {c: source.types.get(c) for c in yes_no} == dict.fromkeys(yes_no, "evidence")
