"""Checks before training a model on the user's CRM export, with a plain report.

:func:`run_audit` takes the labelled deals of :func:`lead_ml.sources.load_deals`
(any source: the synthetic CRM as any export) and:

- **splits** the closed deals into train, validation and test: by the created date
  when there is one, else by the order column the user names, else at random,
  stratified by outcome and seeded from params; the report says which and why;
- **groups duplicates**: deals equal on every column lead-ml reads but the id (dates,
  order, outcome, amount, features) share a group id, and every splitter here
  (:func:`split_deals`, :func:`cv_folds`) keeps a group on one side, so a copy of a
  training deal never inflates the test score. Deals that merely answered a coarse
  form the same way but came in at different times are not copies;
- **counts** won and lost deals per split: below ``audit.min_per_outcome`` it
  says so and recommends repeated stratified cross-validation (:func:`cv_folds`)
  instead of one small test window;
- **flags columns**, each with a plain-language reason. Leakage (the column must be
  forbidden, or allowed by the user after checking): a column that ranks won above
  lost almost perfectly on its own (out-of-fold AUC on the training deals); values
  that decide the outcome for a sizeable share of deals (one-sided beyond chance at
  the base rate, so rare wins do not make every small level look decisive); a
  column filled in for only
  one outcome; a date after the close; a name that says it holds the state at
  export time (``Last Activity``, ``Lead Quality``, ``close_value``: a heuristic,
  because no statistic separates "last activity" from honest engagement). Dropped:
  a constant column, which cannot tell deals apart.

Statistics are computed on the training deals only, so the audit never looks at the
window the model is judged on.

>>> won = pd.Series([1, 1, 0, 0, 1, 0] * 20)
>>> deals = pd.DataFrame({"outcome": won.map({1: "won", 0: "lost"}),
...                       "colour": ["red", "red", "red", "red", "blue", "red"] * 20})
>>> duplicate_groups(deals, ["colour", "outcome"]).nunique()
3
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import binom
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold

from lead_ml.config import AuditConfig, SourceConfig, SplitConfig
from lead_ml.sources import Deals
from lead_ml.vocab import SPLITS, LeakageError

Check = Literal[
    "constant",
    "single_feature_auc",
    "decisive_values",
    "one_outcome",
    "date_after_close",
    "late_name",
]
MISSING_LEVEL = "(missing)"
#: Quantile bins of a number or date column when scoring it on its own.
_BINS = 20
#: Pseudo-deals of the training win rate each level's rate is shrunk towards.
_PRIOR_DEALS = 10.0
#: Folds of the out-of-fold level encoding behind the single-feature AUC.
_ENCODING_FOLDS = 5
#: A deciding value must be this unlikely at the base rate (dozens of columns and
#: levels are tested, so the bar is far below the usual 5%).
_DECISIVE_CHANCE = 1e-6
#: Meta columns that say nothing about whether two rows are the same deal.
_NOT_COMPARED = ("deal_id", "won")


@dataclass(frozen=True)
class Flag:
    """One finding about one column: what was seen, why it matters, what happens."""

    column: str
    check: Check
    severity: Literal["leakage", "dropped"]
    reason: str
    allowed: bool = False

    @property
    def blocking(self) -> bool:
        """True when the pipeline must stop until the user decides."""
        return self.severity == "leakage" and not self.allowed


@dataclass(frozen=True, eq=False)
class AuditReport:
    """The audit's result: the split, duplicate groups, flags and the JSON report."""

    split: pd.Series
    groups: pd.Series
    flags: list[Flag]
    features: tuple[str, ...]
    report: dict[str, Any] = field(repr=False)

    @property
    def blocking(self) -> list[Flag]:
        """Leakage flags on columns the user has not allowed."""
        return [flag for flag in self.flags if flag.blocking]


def name_words(column: str) -> set[str]:
    """Lower-case words of a column name (spaces, punctuation and camelCase split).

    >>> sorted(name_words("Last Notable_Activity"))
    ['activity', 'last', 'notable']
    >>> sorted(name_words("closeValue"))
    ['close', 'value']
    """
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", column)
    return {word for word in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if word}


# --- duplicates and splits ----------------------------------------------------------


def duplicate_groups(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """A group id per row: rows equal on every one of ``columns`` share it.

    Missing values compare equal to each other. The frame's index is kept.
    """
    if not columns:
        return pd.Series(np.arange(len(frame)), index=frame.index)
    keys = frame[columns].astype("string").fillna(MISSING_LEVEL)
    return keys.groupby(columns, sort=False, dropna=False).ngroup()


def _closed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["won"].notna()]


def split_method(frame: pd.DataFrame) -> tuple[str, str]:
    """How closed deals are split ("time", "order" or "random") and the sentence why."""
    closed = _closed(frame)
    if closed["created_at"].notna().all() and len(closed):
        return "time", (
            "closed deals ordered by their created date: the oldest train the model, "
            "the next validate it, the latest test it, as it will be used"
        )
    if closed["order"].notna().all() and len(closed):
        return "order", (
            "there are no created dates, so closed deals are ordered by the order "
            "column (source.tables.deals.order) and cut oldest to latest as if it "
            "were time"
        )
    return "random", (
        "there are no created dates and no order column, so closed deals are split "
        "at random, stratified by outcome (seeded from params): the test score "
        "assumes the future looks like the past; name an order column if there is one"
    )


def _cut(start: np.ndarray, n: int, split: SplitConfig) -> np.ndarray:
    """train / valid / test by where a group starts among n ordered rows."""
    n_test = int(round(split.test_fraction * n))
    n_valid = int(round(split.valid_fraction * n))
    n_train = n - n_valid - n_test
    names = np.array(SPLITS, dtype=object)
    return names[(start >= n_train).astype(int) + (start >= n_train + n_valid)]


def _ordered_split(
    closed: pd.DataFrame, groups: pd.Series, key: str, split: SplitConfig
) -> pd.Series:
    """Cut in order; a duplicate group goes where its first member falls."""
    ordered = closed.sort_values([key, "deal_id"], kind="stable")
    codes = pd.factorize(groups.loc[ordered.index])[0]
    sizes = np.bincount(codes)
    starts = np.cumsum(sizes) - sizes
    return pd.Series(_cut(starts, len(ordered), split)[codes], index=ordered.index)


def _random_split(
    closed: pd.DataFrame, groups: pd.Series, split: SplitConfig, seed: int
) -> pd.Series:
    """Shuffle whole groups within each outcome stratum, then cut each stratum."""
    rng = np.random.default_rng(seed)
    group_of = groups.loc[closed.index]
    rate = closed["won"].astype(float).groupby(group_of).mean()
    stratum = np.where(rate == 1, "won", np.where(rate == 0, "lost", "mixed"))
    sizes = group_of.value_counts()
    assigned: dict[Any, str] = {}
    for name in ("won", "lost", "mixed"):
        members = rate.index[stratum == name].to_numpy()
        members = members[rng.permutation(len(members))]
        counts = sizes.loc[members].to_numpy()
        starts = np.cumsum(counts) - counts
        assigned |= dict(
            zip(members, _cut(starts, int(counts.sum()), split), strict=True)
        )
    return group_of.map(assigned)


def split_deals(
    frame: pd.DataFrame, groups: pd.Series, split: SplitConfig, seed: int
) -> pd.Series:
    """train / valid / test for each closed deal (missing for open deals).

    The method is :func:`split_method`'s; a duplicate group never straddles a cut.
    The frame's index is kept.
    """
    closed = _closed(frame)
    method, _ = split_method(frame)
    if method == "random":
        labels = _random_split(closed, groups, split, seed)
    else:
        key = "created_at" if method == "time" else "order"
        labels = _ordered_split(closed, groups, key, split)
    return labels.reindex(frame.index).astype("string")


def cv_folds(
    frame: pd.DataFrame,
    groups: pd.Series,
    n_splits: int,
    n_repeats: int,
    seed: int,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Repeated stratified K-fold over the closed deals, duplicates kept together.

    Returns (train positions, test positions) into ``frame``, ``n_splits`` per repeat;
    repeat ``r`` shuffles with seed ``seed + r``.
    """
    closed = np.flatnonzero(frame["won"].notna().to_numpy())
    won = frame["won"].to_numpy()[closed].astype(int)
    group_of = groups.to_numpy()[closed]
    folds = []
    for repeat in range(n_repeats):
        splitter = StratifiedGroupKFold(
            n_splits, shuffle=True, random_state=seed + repeat
        )
        for train, test in splitter.split(closed, won, group_of):
            folds.append((closed[train], closed[test]))
    return folds


# --- one column on its own ----------------------------------------------------------


def column_levels(values: pd.Series, kind: str) -> pd.Series:
    """The values as level labels: categories as they are, numbers and dates binned.

    A number or date taken by at least 1/20 of the rows is a level of its own (a
    spike such as 0); the rest fall in up to 20 quantile bins. Missing is a level.
    """
    if kind not in ("number", "date"):
        return values.astype("string").fillna(MISSING_LEVEL)
    numbers = pd.Series(
        values.to_numpy(dtype="float64", na_value=np.nan), index=values.index
    )
    if kind == "date":
        numbers = pd.Series(
            values.to_numpy(dtype="datetime64[ms]").astype("int64"), index=values.index
        ).where(values.notna())
    labels = pd.Series(MISSING_LEVEL, index=values.index, dtype="string")
    counts = numbers.value_counts()
    spikes = counts.index[counts >= len(values) / _BINS]
    is_spike = numbers.isin(spikes)
    labels[is_spike] = numbers[is_spike].map(lambda v: f"= {v:g}")
    rest = numbers.notna() & ~is_spike
    if rest.any():
        binned = pd.qcut(numbers[rest], q=_BINS, duplicates="drop")
        # Too few distinct values for quantile bins (one, say): each is a level.
        exact = numbers[rest].map(lambda v: f"= {v:g}").astype("string")
        labels[rest] = binned.astype("string").fillna(exact)
    return labels


def _encoding_folds(groups: pd.Series, seed: int) -> np.ndarray:
    """A fold per row for out-of-fold encoding; duplicates share a fold."""
    rng = np.random.default_rng(seed)
    codes, uniques = pd.factorize(groups)
    return rng.integers(0, _ENCODING_FOLDS, size=len(uniques))[codes]


def single_feature_auc(levels: pd.Series, won: np.ndarray, folds: np.ndarray) -> float:
    """ROC AUC of a column on its own: each deal scored by its level's win rate.

    The rate is learned out of fold (never from the deal itself) and shrunk towards
    the overall rate, so an identifier or a rare level cannot look predictive. The
    AUC is computed within each fold and averaged: pooling folds would compare
    scores learned from different deals and push a useless column below 0.5.
    """
    codes = pd.factorize(levels)[0]
    size = codes.max() + 1
    aucs = []
    for fold in np.unique(folds):
        held = folds == fold
        fit = ~held
        if not fit.any() or len(np.unique(won[held])) < 2:
            continue
        wins = np.bincount(codes[fit], weights=won[fit], minlength=size)
        seen = np.bincount(codes[fit], minlength=size)
        rate = (wins + _PRIOR_DEALS * won[fit].mean()) / (seen + _PRIOR_DEALS)
        aucs.append(roc_auc_score(won[held], rate[codes[held]]))
    return float(np.mean(aucs)) if aucs else 0.5


def decisive_levels(
    levels: pd.Series, won: np.ndarray, purity: float, min_rows: int
) -> pd.DataFrame:
    """Levels that settle the outcome: at least ``min_rows`` deals, at least
    ``purity`` of them one outcome, and that one-sided by chance at the base rate
    with probability below one in a million.

    Columns ``level``, ``deals``, ``win_rate``; largest first.
    """
    table = pd.DataFrame({"level": levels.to_numpy(), "won": won})
    stats = table.groupby("level", sort=False)["won"].agg(["size", "sum"])
    stats.columns = ["deals", "wins"]
    stats["win_rate"] = stats["wins"] / stats["deals"]
    base = float(np.mean(won))
    chance = np.where(
        stats["win_rate"] >= 0.5,
        binom.sf(stats["wins"] - 1, stats["deals"], base),
        binom.cdf(stats["wins"], stats["deals"], base),
    )
    one_sided = np.maximum(stats["win_rate"], 1 - stats["win_rate"]) >= purity
    keep = one_sided & (stats["deals"] >= min_rows) & (chance < _DECISIVE_CHANCE)
    decisive = stats.loc[keep, ["deals", "win_rate"]]
    return decisive.sort_values("deals", ascending=False).reset_index()


# --- flags --------------------------------------------------------------------------


def _constant(column: str, values: pd.Series) -> Flag | None:
    if values.nunique(dropna=False) > 1:  # "a value or empty" still tells apart
        return None
    present = values.dropna()
    what = f"the single value {str(present.iloc[0])!r}" if len(present) else "no value"
    return Flag(
        column,
        "constant",
        "dropped",
        f"{what} in every training deal: it cannot tell deals apart, so it is "
        "dropped from the features",
    )


def _auc_flag(column: str, auc: float, cfg: AuditConfig) -> Flag | None:
    if auc < cfg.max_single_auc:
        return None
    return Flag(
        column,
        "single_feature_auc",
        "leakage",
        f"on its own it ranks won above lost training deals with AUC {auc:.3f} "
        f"(audit.max_single_auc={cfg.max_single_auc}): nothing a rep records "
        "when a lead comes in is that decisive; it is probably written at or after "
        "the outcome",
    )


def _decisive_flag(
    column: str, decisive: pd.DataFrame, n: int, cfg: AuditConfig
) -> Flag | None:
    share = decisive["deals"].sum() / n if n else 0.0
    if share < cfg.decisive_share:
        return None
    shown = [
        f"{row.level!r} ({row.win_rate:.0%} won, {row.deals:,} deals)"
        for row in decisive.head(3).itertuples()
    ]
    return Flag(
        column,
        "decisive_values",
        "leakage",
        f"values that settle the outcome cover {share:.0%} of training deals "
        f"(audit.decisive_share={cfg.decisive_share}): {', '.join(shown)}; a "
        "value that decides a deal is usually written after the deal is decided",
    )


def _presence_flag(
    column: str, values: pd.Series, won: np.ndarray, cfg: AuditConfig
) -> Flag | None:
    present = values.notna().to_numpy()
    rate_won = present[won == 1].mean() if (won == 1).any() else 0.0
    rate_lost = present[won == 0].mean() if (won == 0).any() else 0.0
    low, high = sorted([rate_won, rate_lost])
    if low > cfg.one_outcome_max_other or high < max(
        5 * cfg.one_outcome_max_other, 0.05
    ):
        return None
    filled = "won" if rate_won > rate_lost else "lost"
    other = "lost" if filled == "won" else "won"
    return Flag(
        column,
        "one_outcome",
        "leakage",
        f"filled in for {high:.0%} of {filled} training deals but {low:.1%} of "
        f"{other} ones: a field filled in for one outcome only is filled in once the "
        "outcome is known",
    )


def _late_date_flag(
    column: str, values: pd.Series, closed_at: pd.Series, cfg: AuditConfig
) -> Flag | None:
    both = values.notna() & closed_at.notna()
    if not both.any():
        return None
    later = (values[both] > closed_at[both]).to_numpy(dtype=bool)
    if later.mean() <= cfg.late_date_share:
        return None
    return Flag(
        column,
        "date_after_close",
        "leakage",
        f"{later.mean():.0%} of closed deals ({later.sum():,}) have a {column} after "
        "their close date: it was recorded after the outcome",
    )


def _name_flag(column: str, cfg: AuditConfig) -> Flag | None:
    words = sorted(name_words(column) & {w.lower() for w in cfg.late_name_words})
    if not words:
        return None
    return Flag(
        column,
        "late_name",
        "leakage",
        f"its name says it holds a state at export time ({', '.join(words)}): CRM "
        "fields like that are updated until the export, after the outcome; allow it "
        "only if it is fixed when the lead comes in",
    )


@dataclass(frozen=True)
class _Column:
    """A feature's statistics on the training deals."""

    column: str
    kind: str
    dimension: str
    missing_share: float
    levels: int
    single_auc: float | None
    decisive_share: float | None
    filled_won: float
    filled_lost: float


def _column_flags(
    deals: Deals,
    column: str,
    dimension: str,
    train: pd.DataFrame,
    folds: np.ndarray,
    cfg: AuditConfig,
) -> tuple[list[Flag], _Column]:
    """Every check of one feature on the training deals."""
    values, won = train[column], train["won"].to_numpy(dtype=int)
    kind = deals.kinds[column].kind
    flags = [f for f in (_name_flag(column, cfg), _constant(column, values)) if f]
    present = values.notna().to_numpy()
    stats = _Column(
        column,
        kind,
        dimension,
        float(1 - present.mean()),
        int(values.nunique()),
        None,
        None,
        float(present[won == 1].mean()) if (won == 1).any() else 0.0,
        float(present[won == 0].mean()) if (won == 0).any() else 0.0,
    )
    if any(f.check == "constant" for f in flags) or len(np.unique(won)) < 2:
        return flags, stats
    levels = column_levels(values, kind)
    auc = single_feature_auc(levels, won, folds)
    decisive = decisive_levels(levels, won, cfg.decisive_purity, cfg.decisive_min_rows)
    share = float(decisive["deals"].sum() / len(won))
    candidates = [
        _auc_flag(column, auc, cfg),
        _decisive_flag(column, decisive, len(won), cfg),
        _presence_flag(column, values, won, cfg),
    ]
    if kind == "date":
        candidates.append(_late_date_flag(column, values, train["closed_at"], cfg))
    flags += [f for f in candidates if f]
    return flags, _replace(stats, single_auc=auc, decisive_share=share)


def _replace(stats: _Column, **changes: Any) -> _Column:
    return _Column(**{**asdict(stats), **changes})


# --- the whole audit ----------------------------------------------------------------


def _counts(frame: pd.DataFrame, split: pd.Series) -> dict[str, dict[str, int]]:
    counts = {}
    for name in SPLITS:
        won = frame.loc[split.eq(name).fillna(False).to_numpy(dtype=bool), "won"]
        counts[name] = {"won": int((won == 1).sum()), "lost": int((won == 0).sum())}
    return counts


def _sufficiency(counts: dict[str, dict[str, int]], cfg: AuditConfig) -> dict[str, Any]:
    fewest = min(
        (n, f"{outcome} deals in {name}")
        for name, row in counts.items()
        for outcome, n in row.items()
    )
    enough = fewest[0] >= cfg.min_per_outcome
    if enough:
        message = (
            f"every split has at least {cfg.min_per_outcome} won and lost deals "
            f"(fewest: {fewest[0]:,} {fewest[1]}): one test window is enough"
        )
    else:
        message = (
            f"only {fewest[0]:,} {fewest[1]}, below audit.min_per_outcome="
            f"{cfg.min_per_outcome}: a single test window this small gives a wide, "
            f"unstable AUC; evaluate with repeated stratified cross-validation "
            f"({cfg.cv_splits} folds x {cfg.cv_repeats} repeats) and report its CI"
        )
    return {
        "min_per_outcome": cfg.min_per_outcome,
        "enough": enough,
        "evaluation": "holdout" if enough else "repeated_cv",
        "cv_splits": cfg.cv_splits,
        "cv_repeats": cfg.cv_repeats,
        "message": message,
    }


def _duplicates(groups: pd.Series, split: pd.Series, columns: list[str]) -> dict:
    sizes = groups.map(groups.value_counts())
    sides = split.dropna().groupby(groups.loc[split.dropna().index]).nunique()
    return {
        "compared_columns": columns,
        "rows_with_a_copy": int((sizes > 1).sum()),
        "groups_with_copies": int((groups.value_counts() > 1).sum()),
        "groups_across_splits": int((sides > 1).sum()),
        "rule": "deals equal on every compared column form a group; a group stays "
        "on one side of every split",
    }


def run_audit(
    deals: Deals,
    source: SourceConfig,
    cfg: AuditConfig,
    split: SplitConfig,
    seed: int,
) -> AuditReport:
    """Split, count, group duplicates and check every feature (see the module doc)."""
    frame = deals.frame
    dimensions = deals.dimensions(source)
    compared = [c for c in frame.columns if c not in _NOT_COMPARED]
    groups = duplicate_groups(frame, compared)
    labels = split_deals(frame, groups, split, seed)
    train_rows = labels.eq("train").fillna(False).to_numpy(dtype=bool)
    train = frame[train_rows]
    folds = _encoding_folds(groups[train_rows], seed)
    flags: list[Flag] = []
    columns = []
    for column in deals.candidates:
        found, stats = _column_flags(
            deals, column, dimensions[column], train, folds, cfg
        )
        flags += [_allow(flag, source) for flag in found]
        columns.append(asdict(stats))
    unusable = {f.column for f in flags if f.blocking or f.severity == "dropped"}
    features = tuple(c for c in deals.candidates if c not in unusable)
    method, why = split_method(frame)
    counts = _counts(frame, labels)
    report = {
        "data": {**deals.summary, "excluded": deals.excluded},
        "split": {"method": method, "explanation": why, "counts": counts},
        "sufficiency": _sufficiency(counts, cfg),
        "duplicates": _duplicates(groups, labels, compared),
        "flags": [asdict(f) | {"blocking": f.blocking} for f in flags],
        "blocking": sorted({f.column for f in flags if f.blocking}),
        "columns": columns,
        "kinds": [deals.kinds[c].as_dict() for c in deals.kinds],
        "features": list(features),
        "dimensions": {c: dimensions[c] for c in features},
        "rejects_by_reason": _rejects_by_reason(deals.rejects),
        "passed": not any(f.blocking for f in flags),
    }
    report["warnings"] = _warnings(report, flags)
    return AuditReport(labels, groups, flags, features, report)


def _warnings(report: dict[str, Any], flags: list[Flag]) -> list[str]:
    """One plain sentence per finding a reader should act on or know about."""
    said = []
    if report["split"]["method"] != "time":
        said.append(f"split: {report['split']['explanation']}")
    if not report["sufficiency"]["enough"]:
        said.append(f"sufficiency: {report['sufficiency']['message']}")
    if report["data"]["rejected"]:
        said.append(f"{report['data']['rejected']:,} deal rows rejected (see rejects)")
    for flag in flags:
        state = _outcome(flag, "allowed by source.allowed")
        said.append(f"{flag.column} ({flag.check}, {state}): {flag.reason}")
    return said


def _allow(flag: Flag, source: SourceConfig) -> Flag:
    if flag.column in source.allowed and flag.severity == "leakage":
        return Flag(flag.column, flag.check, flag.severity, flag.reason, allowed=True)
    return flag


def _rejects_by_reason(rejects: pd.DataFrame) -> dict[str, int]:
    if rejects.empty:
        return {}
    # One line per kind of problem: the values and row numbers differ row to row.
    general = rejects["reason"].str.replace(r"'[^']*'", "'...'", regex=True)
    general = general.str.replace(r"row \d+", "row ...", regex=True)
    kinds = rejects["table"] + ": " + general
    return {str(k): int(v) for k, v in kinds.value_counts().items()}


# --- output -------------------------------------------------------------------------


def refusal(report: AuditReport) -> str:
    """The message that stops the pipeline: every blocking column and why."""
    lines = [
        f"audit: {len(report.report['blocking'])} column(s) look like leakage and are "
        "refused:"
    ]
    for flag in report.blocking:
        lines.append(f"  {flag.column} ({flag.check}): {flag.reason}")
    lines.append(
        "A model that reads them looks brilliant and is useless on new leads. List "
        "each under source.forbidden in params.yaml, or, only if it is known when "
        "the lead comes in, under source.allowed."
    )
    return "\n".join(lines)


def check(report: AuditReport) -> None:
    """Raise LeakageError (see :func:`refusal`) when a flagged column is not allowed."""
    if report.blocking:
        raise LeakageError(refusal(report))


def summary_markdown(report: AuditReport) -> str:
    """The audit as a readable Markdown page."""
    r = report.report
    data, split, enough = r["data"], r["split"], r["sufficiency"]
    lines = [
        "# Audit of the source",
        "",
        f"**{'Passed' if r['passed'] else 'Refused'}**: "
        + ("no blocking flag." if r["passed"] else ", ".join(r["blocking"])),
        "",
        "## Data",
        f"{data['rows_in']:,} rows in, {data['deals']:,} deals kept "
        f"({data['won']:,} won, {data['lost']:,} lost, {data['open']:,} open), "
        f"{data['rejected']:,} rejected.",
        "",
        "## Split",
        f"Method: {split['method']} - {split['explanation']}.",
        "",
        "| split | won | lost |",
        "|---|---:|---:|",
        *(
            f"| {n} | {c['won']:,} | {c['lost']:,} |"
            for n, c in split["counts"].items()
        ),
        "",
        f"Evaluation: **{enough['evaluation']}** - {enough['message']}.",
        "",
        "## Duplicates",
        f"{r['duplicates']['rows_with_a_copy']:,} deals have an exact copy "
        f"({r['duplicates']['groups_with_copies']:,} groups); groups across splits: "
        f"{r['duplicates']['groups_across_splits']}.",
        "",
        "## Flags",
        *_flag_lines(report.flags),
        "",
        "## Features used",
        ", ".join(f"{c} ({d})" for c, d in r["dimensions"].items()) or "(none)",
    ]
    return "\n".join(lines) + "\n"


def _outcome(flag: Flag, allowed: str) -> str:
    """What became of a flag: ``allowed`` (the user's words for it), refused, or
    its severity."""
    if flag.allowed:
        return allowed
    return "refused" if flag.blocking else flag.severity


def _flag_lines(flags: list[Flag]) -> list[str]:
    if not flags:
        return ["None."]
    lines = ["| column | check | outcome | reason |", "|---|---|---|---|"]
    for flag in flags:
        outcome = _outcome(flag, "allowed")
        lines.append(f"| {flag.column} | {flag.check} | {outcome} | {flag.reason} |")
    return lines


def write_report(report: AuditReport, json_path: Path, summary_path: Path) -> None:
    """Write the JSON report and its Markdown summary (folders created)."""
    for path in (json_path, summary_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report.report, indent=2, default=str) + "\n")
    summary_path.write_text(summary_markdown(report))
