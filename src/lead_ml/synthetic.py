"""A synthetic B2B SaaS CRM with known ground truth: the data `make run` uses.

Real teams cannot share their CRM, so lead-ml ships a simulator whose generative
model is written down and whose true effects are saved next to the data.

The generative model (log-odds of a win, one term per dimension)::

    logit = base(t)                          drifts down over time, with seasonality
          + fit                              industry, region, size (mid-market best),
                                             persona, and the big-company executive
                                             who asks for everything and buys nothing
          + engagement                       latent buying intent (seen only through
                                             the activity log), lead source, and a
                                             first response within 5 minutes
          + metrics + economic_buyer         the MEDDIC fields as the rep recorded
          + decision_criteria                them: "yes" raises, "no" lowers and
          + decision_process                 "unknown" is neutral (its own state)
          + identify_pain + champion
          + noise                            what no CRM field records

BANT as recorded is a weak, partly misleading proxy: budget follows company size,
authority follows the contact's title, need loosely follows pain and timeline loosely
follows the decision process, and none of them enters the log-odds directly.

Leakage traps for later stages: ``stage_at_close``, ``discount_pct`` and
``lost_reason`` are filled only after qualification, and activities more than
:data:`OUTCOME_ACTIVITY_AFTER_DAYS` days after ``created_at`` depend on the outcome.
A small share of rows is dirty on purpose (bad dates, negative amounts, unknown
outcome values, duplicate ids, orphan activities) so the validate stage has work.

>>> crm = generate_crm(SyntheticConfig(n_deals=300, n_accounts=60), seed=7)
>>> sorted(crm.deals["outcome"].dropna().unique())
['lost', 'open', 'pending', 'won']

``pending`` is one of the dirty rows: an outcome value the contract does not know.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lead_ml.config import SyntheticConfig

# numpy picks its exp and log by CPU (the truth table differed from machine to
# machine): these are the C library's, the same everywhere.
from lead_ml.jit import exp, log1p, log10, sigmoid, sin
from lead_ml.vocab import DIMENSIONS

#: Activities later than this many days after created_at depend on the outcome.
OUTCOME_ACTIVITY_AFTER_DAYS = 21
#: Columns recorded only after qualification: forbidden as features.
POST_QUALIFICATION_COLUMNS: tuple[str, ...] = (
    "stage_at_close",
    "discount_pct",
    "lost_reason",
)
#: Every timestamp column, as Parquet stores it.
TIME_DTYPE = "datetime64[ms]"
#: The tables :func:`write_crm` writes, in order (and truth.json).
TABLES = ("accounts", "deals", "activities", "truth")
#: The steps of making a synthetic CRM, in order, as a progress callback hears each
#: one begin: :func:`generate_crm` the first four, :func:`write_crm` the rest.
STEPS = (
    "accounts",
    "deals",
    "activities",
    "export quirks",
    *(f"writing {name}" for name in TABLES),
)
#: A progress callback: called with the step (one of :data:`STEPS`) about to run.
Progress = Callable[[str], None]
#: Expected win rate of deals created at the very start of the history.
START_WIN_RATE = 0.30

INDUSTRY_EFFECT = {
    "software": 0.45,
    "fintech": 0.35,
    "healthcare": 0.25,
    "manufacturing": 0.0,
    "logistics": 0.0,
    "retail": -0.3,
    "education": -0.35,
    "media": -0.4,
}
INDUSTRY_SHARE = [0.22, 0.1, 0.12, 0.14, 0.08, 0.14, 0.1, 0.1]
REGION_EFFECT = {"north_america": 0.15, "emea": 0.1, "apac": -0.2, "latam": -0.3}
REGION_SHARE = [0.45, 0.3, 0.15, 0.1]
LEAD_SOURCE_EFFECT = {
    "referral": 0.45,
    "partner": 0.25,
    "inbound_web": 0.15,
    "webinar": 0.1,
    "event": 0.0,
    "paid_search": -0.15,
    "outbound": -0.35,
}
LEAD_SOURCE_SHARE = [0.08, 0.07, 0.3, 0.1, 0.08, 0.17, 0.2]
SENIORITY_SHARE = {
    "individual_contributor": 0.3,
    "manager": 0.3,
    "director": 0.2,
    "vp": 0.12,
    "c_level": 0.08,
}
TITLES = {
    "individual_contributor": ["Analyst", "Specialist", "Engineer", "Coordinator"],
    "manager": ["Manager"],
    "director": ["Director"],
    "vp": ["VP"],
    "c_level": ["Chief Executive Officer", "Chief Operating Officer", "CIO", "CFO"],
}
DEPARTMENTS = ["Operations", "Customer Support", "IT", "Marketing", "Finance", "Sales"]
#: Departments that feel the pain the product solves: the persona fit.
PERSONA_DEPARTMENTS = {"Operations", "Customer Support", "IT"}
PERSONA_EFFECT = 0.3
BIG_COMPANY_EXEC_EFFECT = -1.2
BIG_COMPANY_EMPLOYEES = 5000
FAST_RESPONSE_MINUTES = 5.0
FAST_RESPONSE_EFFECT = 0.7
INTENT_EFFECT = 0.8
NOISE_SD = 0.3
#: MEDDIC yes/no fields: (effect of "yes", effect of "no"); "unknown" is 0.
MEDDIC_YES_NO_EFFECT = {
    "meddic_metrics": (0.55, -0.4),
    "meddic_economic_buyer": (0.8, -0.6),
    "meddic_decision_criteria": (0.3, -0.2),
    "meddic_decision_process": (0.4, -0.3),
}
PAIN_TYPE_EFFECT = {
    "productivity": 0.55,
    "support": 0.35,
    "financial": 0.1,
    "none": -1.1,
    "unknown": 0.0,
}
PAIN_SEVERITY_EFFECT = 0.2  # per point of severity (1-5) away from 3
CHAMPION_NO_EFFECT = -0.8
CHAMPION_STRENGTH_EFFECT = 0.3  # per point of strength (1-5) of an identified champion
BANT_TIMELINES = ["0-3 months", "3-6 months", "6-12 months", "12+ months"]
ACTIVITY_TYPES = [
    "email_open",
    "email_click",
    "web_visit",
    "pricing_page_view",
    "content_download",
    "webinar",
    "demo_booked",
    "demo_attended",
    "trial_signup",
    "trial_active_day",
    "meeting",
    "call",
]
# Type mixes: low intent reads emails; high intent looks at pricing, demos and trials;
# after qualification, won deals meet and trial, lost deals go quiet.
LOW_INTENT_MIX = [0.42, 0.12, 0.22, 0.03, 0.1, 0.04, 0.01, 0.01, 0.01, 0.01, 0.01, 0.02]
HIGH_INTENT_MIX = [
    0.14,
    0.12,
    0.16,
    0.12,
    0.06,
    0.05,
    0.08,
    0.07,
    0.06,
    0.08,
    0.03,
    0.03,
]
WON_LATE_MIX = [0.08, 0.05, 0.08, 0.08, 0.02, 0.01, 0.04, 0.08, 0.04, 0.3, 0.12, 0.1]
LOST_LATE_MIX = [0.5, 0.08, 0.14, 0.04, 0.04, 0.02, 0.01, 0.01, 0.01, 0.02, 0.03, 0.1]


@dataclass(frozen=True)
class SyntheticCRM:
    """The generated tables, the per-deal truth and a summary of the truth."""

    accounts: pd.DataFrame
    deals: pd.DataFrame
    activities: pd.DataFrame
    truth: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def _choice(
    rng: np.random.Generator, levels: list[str], p: list[float], n: int
) -> np.ndarray:
    weights = np.asarray(p, dtype=float)
    return np.asarray(levels, dtype=object)[
        rng.choice(len(levels), size=n, p=weights / weights.sum())
    ]


def _generate_accounts(cfg: SyntheticConfig, rng: np.random.Generator) -> pd.DataFrame:
    n = cfg.n_accounts
    employees = np.clip(np.round(rng.lognormal(math.log(180), 1.5, n)), 3, 250_000)
    revenue = np.round(employees * 140_000 * rng.lognormal(0, 0.5, n), -3)
    return pd.DataFrame(
        {
            "account_id": [f"A{i:06d}" for i in range(1, n + 1)],
            "industry": _choice(rng, list(INDUSTRY_EFFECT), INDUSTRY_SHARE, n),
            "employees": employees.astype("int64"),
            "annual_revenue": revenue,
            "region": _choice(rng, list(REGION_EFFECT), REGION_SHARE, n),
        }
    )


def _created_days(
    cfg: SyntheticConfig, rng: np.random.Generator, n: int, span: float
) -> np.ndarray:
    # Lead volume grows ~60% over the history: inverse CDF of a linear density.
    growth = 0.6
    u = rng.random(n)
    x = (-1 + np.sqrt(1 + 2 * growth * u + growth**2 * u)) / growth
    return np.sort(x * span)


def _yes_no_unknown(
    rng: np.random.Generator, p_yes: np.ndarray, p_unknown: float | np.ndarray
) -> np.ndarray:
    n = len(p_yes)
    answer = np.where(rng.random(n) < p_yes, "yes", "no").astype(object)
    answer[rng.random(n) < p_unknown] = "unknown"
    return answer


def _meddic(
    rng: np.random.Generator, quality: np.ndarray, big_exec: np.ndarray
) -> dict[str, np.ndarray]:
    n = len(quality)
    fields: dict[str, np.ndarray] = {}
    for column, (offset, p_unknown) in {
        "meddic_metrics": (-0.2, 0.35),
        "meddic_economic_buyer": (-0.4, 0.3),
        "meddic_decision_criteria": (0.2, 0.3),
        "meddic_decision_process": (-0.1, 0.4),
    }.items():
        p_yes = sigmoid(offset + 1.1 * quality + rng.normal(0, 0.6, n))
        fields[column] = _yes_no_unknown(rng, p_yes, p_unknown)
    pain_weights = np.column_stack(
        [
            np.full(n, 0.25),  # productivity
            np.full(n, 0.2),  # support
            np.full(n, 0.2),  # financial
            0.25 * exp(-0.9 * quality) + 0.6 * big_exec,  # none
        ]
    )
    pain_weights /= pain_weights.sum(axis=1, keepdims=True)
    draw = (pain_weights.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1)
    pain = np.asarray(["productivity", "support", "financial", "none"], dtype=object)[
        draw
    ]
    pain[rng.random(n) < 0.28] = "unknown"
    severity = np.clip(np.round(3 + 1.0 * quality + rng.normal(0, 1, n)), 1, 5)
    fields["meddic_pain_type"] = pain
    fields["meddic_pain_severity"] = np.where(
        pain == "none", 0.0, np.where(pain == "unknown", np.nan, severity)
    )
    p_champion = sigmoid(-0.6 + 1.2 * quality - 1.5 * big_exec)
    champion = _yes_no_unknown(rng, p_champion, 0.3)
    strength = np.clip(np.round(3 + 0.9 * quality + rng.normal(0, 1, n)), 1, 5)
    fields["meddic_champion"] = champion
    fields["meddic_champion_strength"] = np.where(champion == "yes", strength, np.nan)
    return fields


def _bant(
    rng: np.random.Generator,
    employees: np.ndarray,
    seniority: np.ndarray,
    meddic: dict[str, np.ndarray],
    big_exec: np.ndarray,
) -> dict[str, np.ndarray]:
    n = len(employees)
    size = log10(employees)
    p_authority = (
        pd.Series(seniority)
        .map(
            {
                "individual_contributor": 0.05,
                "manager": 0.2,
                "director": 0.5,
                "vp": 0.85,
                "c_level": 0.95,
            }
        )
        .to_numpy(float)
    )
    has_pain = np.isin(
        meddic["meddic_pain_type"], ["productivity", "support", "financial"]
    )
    p_need = np.clip(
        sigmoid(-0.9 + 1.5 * has_pain + rng.normal(0, 0.8, n)) + 0.5 * big_exec, 0, 1
    )
    urgency = (
        1.0 * (meddic["meddic_decision_process"] == "yes")
        + rng.normal(0, 1.0, n)
        + 2.0 * big_exec
    )
    horizon = np.digitize(-urgency, [-1.2, -0.2, 0.8])
    timeline = np.asarray(BANT_TIMELINES, dtype=object)[horizon]
    timeline[rng.random(n) < 0.2] = "unknown"
    return {
        "bant_budget": _yes_no_unknown(rng, sigmoid(-3.2 + 1.1 * size), 0.2),
        "bant_authority": _yes_no_unknown(rng, p_authority, 0.12),
        "bant_need": _yes_no_unknown(rng, p_need, 0.2),
        "bant_timeline": timeline,
    }


def _contacts(
    rng: np.random.Generator, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    seniority = _choice(rng, list(SENIORITY_SHARE), list(SENIORITY_SHARE.values()), n)
    department = _choice(rng, DEPARTMENTS, [0.22, 0.18, 0.18, 0.16, 0.13, 0.13], n)
    title = np.empty(n, dtype=object)
    for level, names in TITLES.items():
        rows = np.flatnonzero(seniority == level)
        picked = np.asarray(names, dtype=object)[rng.integers(0, len(names), len(rows))]
        if level == "c_level":
            title[rows] = picked
        else:
            title[rows] = picked + " of " + department[rows]
    return title, seniority, department


def _yes_no_effect(values: np.ndarray, yes: float, no: float) -> np.ndarray:
    return np.where(values == "yes", yes, np.where(values == "no", no, 0.0))


def _meddic_contributions(meddic: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    contributions = {
        column.removeprefix("meddic_"): _yes_no_effect(meddic[column], *effects)
        for column, effects in MEDDIC_YES_NO_EFFECT.items()
    }
    pain = meddic["meddic_pain_type"]
    severity = np.nan_to_num(meddic["meddic_pain_severity"], nan=3.0)
    severity_term = np.where(np.isin(pain, ["none", "unknown"]), 0.0, severity - 3.0)
    contributions["identify_pain"] = (
        pd.Series(pain).map(PAIN_TYPE_EFFECT).to_numpy(float)
        + PAIN_SEVERITY_EFFECT * severity_term
    )
    strength = np.nan_to_num(meddic["meddic_champion_strength"], nan=0.0)
    champion = meddic["meddic_champion"]
    contributions["champion"] = np.where(
        champion == "yes",
        CHAMPION_STRENGTH_EFFECT * strength,
        np.where(champion == "no", CHAMPION_NO_EFFECT, 0.0),
    )
    return contributions


def _fit_contribution(
    accounts: pd.DataFrame, department: np.ndarray, big_exec: np.ndarray
) -> np.ndarray:
    size = log10(accounts["employees"].to_numpy(float))
    return (
        accounts["industry"].map(INDUSTRY_EFFECT).to_numpy(float)
        + accounts["region"].map(REGION_EFFECT).to_numpy(float)
        + np.maximum(0.45 - 0.4 * (size - 2.5) ** 2, -0.9)
        + PERSONA_EFFECT * np.isin(department, list(PERSONA_DEPARTMENTS))
        + BIG_COMPANY_EXEC_EFFECT * big_exec
    )


def _base_rate(
    other: np.ndarray, created_day: np.ndarray, span: float, rng: np.random.Generator
) -> np.ndarray:
    drift = -0.45 * created_day / span + 0.12 * sin(2 * np.pi * created_day / 365.25)
    start = created_day < 90
    low, high = -8.0, 4.0
    # Bisection: the intercept that gives START_WIN_RATE for the first quarter's deals.
    for _ in range(50):
        mid = (low + high) / 2
        rate = sigmoid(mid + other[start] + drift[start]).mean()
        low, high = (mid, high) if rate < START_WIN_RATE else (low, mid)
    return (low + high) / 2 + drift


def _activity_log(
    rng: np.random.Generator,
    created: pd.Series,
    closed: pd.Series,
    intent: np.ndarray,
    won: np.ndarray,
    export_at: pd.Timestamp,
    per_deal: float,
) -> pd.DataFrame:
    n = len(created)
    # Early activity (10 days before to 21 days after creation) follows intent;
    # later activity, up to the close or the export, follows the outcome.
    early_rate = 0.6 * per_deal * exp(0.55 * intent - 0.55**2 / 2)
    late_days = (
        (closed.fillna(export_at) - created).dt.total_seconds() / 86400
    ).to_numpy()
    late_span = np.clip(late_days - OUTCOME_ACTIVITY_AFTER_DAYS, 0, None)
    late_rate = np.where(won, 1.0, 0.3) * per_deal * np.minimum(late_span / 45, 2.0)
    early_n = rng.poisson(early_rate)
    late_n = rng.poisson(late_rate)
    early_deal = np.repeat(np.arange(n), early_n)
    late_deal = np.repeat(np.arange(n), late_n)
    early_offset = rng.uniform(-10, OUTCOME_ACTIVITY_AFTER_DAYS, len(early_deal))
    late_offset = (
        OUTCOME_ACTIVITY_AFTER_DAYS + rng.random(len(late_deal)) * late_span[late_deal]
    )
    high_intent = rng.random(len(early_deal)) < sigmoid(1.2 * intent[early_deal] - 0.6)
    early_type = np.where(
        high_intent,
        _draw_types(rng, HIGH_INTENT_MIX, len(early_deal)),
        _draw_types(rng, LOW_INTENT_MIX, len(early_deal)),
    )
    late_type = np.where(
        won[late_deal],
        _draw_types(rng, WON_LATE_MIX, len(late_deal)),
        _draw_types(rng, LOST_LATE_MIX, len(late_deal)),
    )
    deal = np.concatenate([early_deal, late_deal])
    offset_s = np.round(np.concatenate([early_offset, late_offset]) * 86400).astype(
        "int64"
    )
    timestamp = (created.to_numpy()[deal] + offset_s.astype("timedelta64[s]")).astype(
        TIME_DTYPE
    )
    log = pd.DataFrame(
        {
            "deal_index": deal,
            "timestamp": timestamp,
            "activity_type": np.asarray(ACTIVITY_TYPES, dtype=object)[
                np.concatenate([early_type, late_type])
            ],
        }
    )
    log = log[log["timestamp"] <= export_at].sort_values(
        ["timestamp", "deal_index"], kind="stable"
    )
    return log.reset_index(drop=True)


def _draw_types(rng: np.random.Generator, mix: list[float], n: int) -> np.ndarray:
    cumulative = np.cumsum(mix) / np.sum(mix)
    return np.minimum(np.searchsorted(cumulative, rng.random(n)), len(mix) - 1)


def generate_crm(
    cfg: SyntheticConfig,
    seed: int,
    dirty_fraction: float = 0.002,
    progress: Progress | None = None,
) -> SyntheticCRM:
    """Generate accounts, deals, activities and the per-deal truth for a seed.

    ``progress`` hears each step (:data:`STEPS`) begin; it draws no random number,
    so the tables are the same with it or without.
    """
    step = progress or _quiet
    rng = np.random.default_rng(seed)
    step("accounts")
    accounts = _generate_accounts(cfg, rng)
    step("deals")
    n = cfg.n_deals
    # Bigger accounts open more deals.
    account_weight = log1p(accounts["employees"].to_numpy(float))
    deal_account = rng.choice(len(accounts), n, p=account_weight / account_weight.sum())
    acct = accounts.iloc[deal_account].reset_index(drop=True)
    start = pd.Timestamp(cfg.start)
    export_at = start + pd.DateOffset(months=cfg.months)
    span = (export_at - start).days
    created_day = _created_days(cfg, rng, n, span)
    created = pd.Series(
        (start + pd.to_timedelta(np.round(created_day * 86400), unit="s")).astype(
            TIME_DTYPE
        )
    )
    title, seniority, department = _contacts(rng, n)
    big_exec = (seniority == "c_level") & (
        acct["employees"].to_numpy() >= BIG_COMPANY_EMPLOYEES
    )
    quality = rng.normal(0, 1, n) - 1.2 * big_exec
    intent = rng.normal(0, 1, n)
    meddic = _meddic(rng, quality, big_exec)
    bant = _bant(rng, acct["employees"].to_numpy(float), seniority, meddic, big_exec)
    lead_source = _choice(rng, list(LEAD_SOURCE_EFFECT), LEAD_SOURCE_SHARE, n)
    minutes = np.round(rng.lognormal(math.log(90), 1.9, n), 1)

    dims = _meddic_contributions(meddic)
    dims["fit"] = _fit_contribution(acct, department, big_exec)
    dims["engagement"] = (
        INTENT_EFFECT * intent
        + pd.Series(lead_source).map(LEAD_SOURCE_EFFECT).to_numpy(float)
        + FAST_RESPONSE_EFFECT * (minutes <= FAST_RESPONSE_MINUTES)
    )
    other = sum(dims.values()) + rng.normal(0, NOISE_SD, n)
    base = _base_rate(np.asarray(other), created_day, span, rng)
    logit = base + other
    won = rng.random(n) < sigmoid(logit)

    cycle_days = rng.lognormal(math.log(45), 0.55, n)
    cycle = pd.to_timedelta(np.round(cycle_days * 86400), unit="s")
    closed = pd.Series((created + cycle).to_numpy().astype(TIME_DTYPE))
    is_open = (closed > export_at).to_numpy()
    outcome = np.where(is_open, "open", np.where(won, "won", "lost")).astype(object)
    closed = closed.where(~is_open)

    employees = acct["employees"].to_numpy(float)
    amount = np.round(2500 * employees**0.45 * rng.lognormal(0, 0.4, n), -2)
    deals = pd.DataFrame(
        {
            "deal_id": [f"D{i:07d}" for i in range(1, n + 1)],
            "account_id": acct["account_id"].to_numpy(),
            "created_at": created.to_numpy(),
            "closed_at": closed.to_numpy(),
            "outcome": outcome,
            "amount": amount,
            "lead_source": lead_source,
            "contact_title": title,
            "contact_seniority": seniority,
            "minutes_to_first_response": minutes,
            **bant,
            **meddic,
            **_post_qualification(rng, outcome),
        }
    )
    truth = pd.DataFrame(
        {"deal_id": deals["deal_id"], "true_logit": logit, "base": base}
        | {f"true_{d}": dims[d] for d in DIMENSIONS}
    )
    step("activities")
    log = _activity_log(
        rng, created, closed, intent, won & ~is_open, export_at, cfg.activities_per_deal
    )
    activities = pd.DataFrame(
        {
            "activity_id": np.arange(1, len(log) + 1, dtype="int64"),
            "deal_id": deals["deal_id"].to_numpy()[log["deal_index"].to_numpy()],
            "timestamp": log["timestamp"].to_numpy(),
            "activity_type": log["activity_type"].to_numpy(),
        }
    )
    step("export quirks")
    deals, activities = _make_dirty(rng, deals, activities, dirty_fraction)
    summary = _summarise(deals, truth, export_at)
    return SyntheticCRM(
        accounts=_as_strings(accounts),
        deals=_as_strings(deals),
        activities=_as_strings(activities),
        truth=truth,
        summary=summary,
    )


def _quiet(step: str) -> None:
    """The progress callback of no one: hears every step, says nothing."""


def _post_qualification(
    rng: np.random.Generator, outcome: np.ndarray
) -> dict[str, np.ndarray]:
    n = len(outcome)
    lost_stage = _choice(
        rng,
        ["qualification", "discovery", "demo", "proposal", "negotiation"],
        [0.3, 0.25, 0.2, 0.15, 0.1],
        n,
    )
    open_stage = _choice(
        rng, ["qualification", "discovery", "demo", "proposal"], [0.4, 0.3, 0.2, 0.1], n
    )
    stage = np.where(
        outcome == "won",
        "closed_won",
        np.where(outcome == "lost", lost_stage, open_stage),
    )
    discount = np.where(outcome == "won", np.round(rng.uniform(0, 25, n)), np.nan)
    reason = _choice(
        rng,
        ["price", "competitor", "no_decision", "timing", "no_budget"],
        [0.25, 0.25, 0.3, 0.12, 0.08],
        n,
    )
    return {
        "stage_at_close": stage.astype(object),
        "discount_pct": discount,
        "lost_reason": pd.Series(reason).where(outcome == "lost").to_numpy(object),
    }


def _make_dirty(
    rng: np.random.Generator,
    deals: pd.DataFrame,
    activities: pd.DataFrame,
    fraction: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Spoil a few rows the way real exports are spoiled, for validate to reject."""
    deals = deals.copy()
    n_bad = int(round(fraction * len(deals)))
    if n_bad == 0:
        return deals, activities
    closed_rows = np.flatnonzero(deals["outcome"].isin(["won", "lost"]).to_numpy())
    bad_dates = rng.choice(closed_rows, n_bad, replace=False)
    deals.loc[bad_dates, "closed_at"] = deals.loc[
        bad_dates, "created_at"
    ] - pd.Timedelta(days=3)
    deals.loc[rng.choice(len(deals), n_bad, replace=False), "amount"] = -1.0
    deals.loc[rng.choice(len(deals), n_bad, replace=False), "outcome"] = "pending"
    duplicates = deals.iloc[rng.choice(len(deals), n_bad, replace=False)]
    deals = pd.concat([deals, duplicates], ignore_index=True)
    spoiled = activities.copy()
    orphan = rng.choice(len(spoiled), n_bad, replace=False)
    spoiled.loc[orphan, "deal_id"] = "D9999999"
    odd = rng.choice(len(spoiled), n_bad, replace=False)
    spoiled.loc[odd, "activity_type"] = "fax"
    return deals, spoiled


def _as_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns become pandas' string dtype, as a CRM export reads back."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].astype("string")
    return out


def _summarise(
    deals: pd.DataFrame, truth: pd.DataFrame, export_at: pd.Timestamp
) -> dict[str, Any]:
    closed = deals["outcome"].isin(["won", "lost"])
    first = ~deals["deal_id"].duplicated()
    truth_closed = truth.set_index("deal_id").loc[deals.loc[closed & first, "deal_id"]]
    centred = {
        d: float(
            (truth_closed[f"true_{d}"] - truth_closed[f"true_{d}"].mean()).abs().mean()
        )
        for d in DIMENSIONS
    }
    passes = sum(
        (deals[c] == "yes").astype(int)
        for c in ("bant_budget", "bant_authority", "bant_need")
    ) + deals["bant_timeline"].isin(BANT_TIMELINES[:2]).astype(int)
    return {
        "export_at": export_at.isoformat(),
        "n_deals": int(len(deals)),
        "n_closed": int(closed.sum()),
        "n_open": int((deals["outcome"] == "open").sum()),
        "win_rate_closed": float((deals.loc[closed, "outcome"] == "won").mean()),
        "sales_ready_share": float(
            (sigmoid(truth["true_logit"].to_numpy()) >= 0.5).mean()
        ),
        "bant_pass_share": float((passes >= 3).mean()),
        "dimension_strength": dict(sorted(centred.items(), key=lambda kv: -kv[1])),
        "effects": _effects_table(),
        "post_qualification_columns": list(POST_QUALIFICATION_COLUMNS),
        "outcome_activity_after_days": OUTCOME_ACTIVITY_AFTER_DAYS,
    }


def _effects_table() -> dict[str, Any]:
    return {
        "fit": {
            "industry": INDUSTRY_EFFECT,
            "region": REGION_EFFECT,
            "size": "max(0.45 - 0.4 * (log10(employees) - 2.5)^2, -0.9)",
            "persona_department": dict.fromkeys(
                sorted(PERSONA_DEPARTMENTS), PERSONA_EFFECT
            ),
            "c_level_at_company_of_employees_>=": {
                str(BIG_COMPANY_EMPLOYEES): BIG_COMPANY_EXEC_EFFECT
            },
        },
        "engagement": {
            "intent_per_sd": INTENT_EFFECT,
            "lead_source": LEAD_SOURCE_EFFECT,
            "first_response_within_5_minutes": FAST_RESPONSE_EFFECT,
        },
        **{
            column.removeprefix("meddic_"): {"yes": yes, "no": no, "unknown": 0.0}
            for column, (yes, no) in MEDDIC_YES_NO_EFFECT.items()
        },
        "identify_pain": {
            "type": PAIN_TYPE_EFFECT,
            "severity_per_point_from_3": PAIN_SEVERITY_EFFECT,
        },
        "champion": {
            "no": CHAMPION_NO_EFFECT,
            "yes_per_strength_point": CHAMPION_STRENGTH_EFFECT,
            "unknown": 0.0,
        },
        "noise_sd": NOISE_SD,
        "start_win_rate": START_WIN_RATE,
    }


def write_crm(
    crm: SyntheticCRM,
    out_dir: Path,
    fmt: str = "parquet",
    progress: Progress | None = None,
) -> list[Path]:
    """Write the tables (Parquet or CSV) and truth.json to out_dir; return paths.
    ``progress`` hears each table's step (``writing deals``...) begin."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in TABLES:
        (progress or _quiet)(f"writing {name}")
        frame: pd.DataFrame = getattr(crm, name)
        path = out_dir / f"{name}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False, compression="zstd")
        written.append(path)
    truth_json = out_dir / "truth.json"
    truth_json.write_text(json.dumps(crm.summary, indent=2, sort_keys=False) + "\n")
    return [*written, truth_json]
