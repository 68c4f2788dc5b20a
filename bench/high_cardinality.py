"""Category features of hundreds of levels: LightGBM's categorical splits (its
defaults, and the smoothed settings lead-ml uses) against out-of-fold target
statistics, measured on the shared data (issue 14, "Never drop a column silently").

For X Education (Specialization x City x Country, 406 levels; Lead Number order) and
Maven (account x product, 525 levels; engage-date order) the closed deals are cut
oldest 65% train, 15% validation, latest 20% test. LightGBM with lead-ml's tree shape
(8 leaves, depth 3, learning rate 0.05, early stopping on validation) trains on the
honest columns plus the high-cardinality one, four ways:

- ``drop``: without it (what happened to a column above ``source.max_levels``);
- ``lgb_default``: a LightGBM category with LightGBM's defaults (``cat_smooth`` 10,
  ``min_data_per_group`` 100, ``max_cat_threshold`` 32);
- ``lgb_smoothed``: with :data:`lead_ml.features.CATEGORY_SPLITS` (50, 50, 16);
- ``oof_target_stats``: the column replaced by its 5-fold out-of-fold win rate
  shrunk towards the base rate by 20 pseudo-deals (full-train rates for the
  validation and test windows).

It prints each test ROC AUC and the paired differences with a 95% bootstrap CI over
the test window (300 resamples), for the full training window and its latest 1,000
deals. Run::

    nice -n 15 .venv/bin/python bench/high_cardinality.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from lead_ml.features import CATEGORY_SPLITS

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TREES: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 8,
    "max_depth": 3,
    "min_child_samples": 40,
    "reg_lambda": 1.0,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.9,
    "bagging_freq": 1,
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
    "seed": 1,
}
WAYS: dict[str, dict[str, Any]] = {"lgb_default": {}, "lgb_smoothed": CATEGORY_SPLITS}


def _matrix(
    frame: pd.DataFrame,
    numbers: list[str],
    cats: list[str],
    levels: dict[str, list[Any]],
) -> pd.DataFrame:
    matrix = frame[numbers].astype(float)
    for column in cats:
        known = frame[column].where(frame[column].isin(levels[column]))
        matrix[column] = pd.Categorical(known, categories=levels[column])
    return matrix


def _scores(
    parts: list[pd.DataFrame],
    won: list[np.ndarray],
    numbers: list[str],
    cats: list[str],
    extra: dict[str, Any],
) -> np.ndarray:
    levels = {c: sorted(parts[0][c].dropna().unique()) for c in cats}
    train, valid, test = (_matrix(p, numbers, cats, levels) for p in parts)
    train_set = lgb.Dataset(train, won[0], categorical_feature=cats or "auto")
    valid_set = lgb.Dataset(valid, won[1], reference=train_set)
    booster = lgb.train(
        TREES | extra,
        train_set,
        600,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(50, verbose=False)],
    )
    return np.asarray(booster.predict(test, num_iteration=booster.best_iteration))


def _target_stats(
    parts: list[pd.DataFrame],
    won: list[np.ndarray],
    column: str,
    prior_deals: float = 20.0,
) -> list[pd.DataFrame]:
    """Out-of-fold win rates for the training window, full-window rates after."""
    base = won[0].mean()
    folds = np.random.default_rng(1).integers(0, 5, len(parts[0]))

    def rates(values: pd.Series, labels: np.ndarray) -> pd.Series:
        stats = pd.DataFrame({"v": values.to_numpy(), "y": labels}).groupby("v")["y"]
        return (stats.sum() + prior_deals * base) / (stats.count() + prior_deals)

    encoded = [np.full(len(parts[0]), np.nan)]
    for fold in range(5):
        fit = folds != fold
        table = rates(parts[0][column][fit], won[0][fit])
        encoded[0][~fit] = parts[0][column][~fit].map(table).fillna(base)
    table = rates(parts[0][column], won[0])
    encoded += [p[column].map(table).fillna(base).to_numpy() for p in parts[1:]]
    return [
        p.assign(**{f"{column} rate": e}) for p, e in zip(parts, encoded, strict=True)
    ]


def measure(
    name: str,
    frame: pd.DataFrame,
    won: np.ndarray,
    numbers: list[str],
    cats: list[str],
    high: str,
    n_train: int | None = None,
) -> None:
    n = len(frame)
    cuts = [0, int(n * 0.65), int(n * 0.80), n]
    parts = [frame.iloc[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
    labels = [won[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
    if n_train:
        parts[0], labels[0] = parts[0].iloc[-n_train:], labels[0][-n_train:]
    scores = {"drop": _scores(parts, labels, numbers, cats, {})}
    for way, extra in WAYS.items():
        scores[way] = _scores(parts, labels, numbers, [*cats, high], extra)
    encoded = _target_stats(parts, labels, high)
    scores["oof_target_stats"] = _scores(
        encoded, labels, [*numbers, f"{high} rate"], cats, {}
    )
    test = labels[2]
    rng = np.random.default_rng(0)
    draws = [rng.integers(0, len(test), len(test)) for _ in range(300)]

    def diff(a: str, b: str) -> str:
        d = [
            roc_auc_score(test[i], scores[a][i]) - roc_auc_score(test[i], scores[b][i])
            for i in draws
        ]
        low, high_ = np.percentile(d, [2.5, 97.5])
        return f"{np.mean(d):+.4f} [{low:+.4f}, {high_:+.4f}]"

    lines = [
        f"{name}: {frame[high].nunique()} levels, {len(labels[0]):,} training "
        f"deals, {len(test):,} test"
    ]
    for way, score in scores.items():
        versus = "" if way == "drop" else f"  vs drop {diff(way, 'drop')}"
        lines.append(f"  {way:17s} test AUC {roc_auc_score(test, score):.4f}{versus}")
    lines.append(f"  smoothed - default        {diff('lgb_smoothed', 'lgb_default')}")
    lines.append(
        f"  target stats - smoothed   {diff('oof_target_stats', 'lgb_smoothed')}"
    )
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def main() -> None:
    leads = pd.read_csv(DATA / "x_education_leads" / "Leads.csv")
    leads = leads.replace("Select", np.nan).sort_values("Lead Number")
    leads["where"] = (
        leads["Specialization"].fillna("?")
        + "|"
        + leads["City"].fillna("?")
        + "|"
        + leads["Country"].fillna("?")
    )
    x_numbers = ["TotalVisits", "Total Time Spent on Website", "Page Views Per Visit"]
    x_cats = [
        "Lead Origin",
        "Lead Source",
        "Do Not Email",
        "What is your current occupation",
        "What matters most to you in choosing a course",
        "A free copy of Mastering The Interview",
    ]
    pipeline = pd.read_csv(DATA / "maven_crm" / "sales_pipeline.csv")
    accounts = pd.read_csv(DATA / "maven_crm" / "accounts.csv")
    deals = pipeline[pipeline["deal_stage"].isin(["Won", "Lost"])]
    deals = deals.merge(accounts, on="account", how="left")
    deals = deals.sort_values(["engage_date", "opportunity_id"])
    deals["account x product"] = deals["account"].fillna("?") + "|" + deals["product"]
    m_numbers = ["revenue", "employees", "year_established"]
    m_cats = ["sector", "office_location", "subsidiary_of", "product", "sales_agent"]
    for n_train in (None, 1000):
        measure(
            "X Education, Specialization x City x Country",
            leads.reset_index(drop=True),
            leads["Converted"].to_numpy(),
            x_numbers,
            x_cats,
            "where",
            n_train,
        )
        measure(
            "Maven, account x product",
            deals.reset_index(drop=True),
            (deals["deal_stage"] == "Won").to_numpy(int),
            m_numbers,
            m_cats,
            "account x product",
            n_train,
        )


if __name__ == "__main__":
    main()
