"""Checks before training a model on the user's CRM export, with a plain report.

:func:`run_audit` takes the labelled deals of :func:`lead_ml.sources.load_deals`
(any source: the synthetic CRM as any export) and:

- **splits** the closed deals into train, validation and test: by the created date
  when there is one, else by the order column the user names, else at random,
  stratified by outcome and seeded from params; the report says which and why;
- **groups duplicates**: deals equal on every column of the export but the id and
  the order column (the deals table as `lead-ml read` copied it, ignored and
  forbidden columns included) share a group id, and every splitter here
  (:func:`split_deals`, :func:`cv_folds`) keeps a group on one side, so a copy of a
  training deal never inflates the test score. Deals that merely answered a coarse
  form the same way but differ in any other column are not copies;
- **counts** won and lost deals per split: below ``audit.min_per_outcome`` it
  says so and recommends repeated stratified cross-validation (:func:`cv_folds`)
  instead of one small test window;
- **flags columns**, each with a plain-language reason. The run stops only on
  near-certain leakage (the column must be forbidden, or allowed by the user after
  checking): a column that ranks won above lost almost perfectly on its own
  (out-of-fold AUC on the training deals); values nearly always won that cover a
  sizeable share of deals (one-sided beyond chance at the base rate, so rare wins
  do not make every small level look decisive); a column filled in for only one
  outcome; a date after the close. Warnings (the column is kept): values that
  seldom convert (a low-converting segment is normal), and a name that says it
  may hold the state at export time (``Last Activity``, ``Lead Quality``: a
  heuristic, because no statistic separates "last activity" from honest
  engagement). Dropped: a constant column, which cannot tell deals apart;
- **names every column left out** with its reason (``data.excluded``: roles,
  ignored, forbidden, free text, dropped, refused) and warns when one of them is
  mapped to a dimension under ``source.dimensions``.

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
from lead_ml.schema import id_text
from lead_ml.sources import Deals
from lead_ml.tables import as_text
from lead_ml.vocab import SPLITS, LeakageError

Check = Literal[
    "constant",
    "single_feature_auc",
    "decisive_values",
    "low_converting_values",
    "one_outcome",
    "date_after_close",
    "late_name",
]
#: What a flag does: stop the run (near-certain leakage, until the user forbids or
#: allows the column), say something the reader should know (the column is kept),
#: or drop the column.
Severity = Literal["leakage", "warning", "dropped"]
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
    severity: Severity
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
    if kind == "date":
        stamps = values.to_numpy(dtype="datetime64[ms]")
        numbers = np.where(np.isnat(stamps), np.nan, stamps.astype("int64"))
    else:
        numbers = values.to_numpy(dtype="float64", na_value=np.nan)
    words = _date_words if kind == "date" else _number_words
    labels = np.full(len(numbers), MISSING_LEVEL, dtype=object)
    present = ~np.isnan(numbers)
    distinct, inverse, counts = np.unique(
        numbers[present], return_inverse=True, return_counts=True
    )
    spike = (counts >= len(numbers) / _BINS)[inverse]
    where = np.flatnonzero(present)
    labels[where[spike]] = ["= " + words(v) for v in numbers[where[spike]]]
    rest = np.sort(numbers[where[~spike]])
    if len(rest):
        # Quantile bins by rank, cut only between different values: ties, constant
        # stretches and one lone value stay whole, and no arithmetic on the values
        # (infinite, huge or subnormal ones included) can make a bin empty.
        cuts = rest[np.linspace(0, len(rest) - 1, _BINS + 1).round().astype(int)]
        edges = np.unique(cuts[1:-1])
        bins = np.searchsorted(edges, numbers[where[~spike]], side="right")
        low = np.searchsorted(edges, rest, side="right")
        lows = {b: rest[low == b][0] for b in np.unique(low)}
        highs = {b: rest[low == b][-1] for b in np.unique(low)}
        labels[where[~spike]] = [
            "= " + words(lows[b])
            if lows[b] == highs[b]
            else f"{words(lows[b])} to {words(highs[b])}"
            for b in bins
        ]
    return pd.Series(labels, index=values.index, dtype="string")


def _number_words(value: float) -> str:
    return f"{value:g}"


def _date_words(value: float) -> str:
    stamp = np.datetime64(int(value), "ms")
    text = str(stamp)
    return text[:10] if text.endswith("T00:00:00.000") else text[:16].replace("T", " ")


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
    # A missing label (there is none from column_levels) is a level too, never -1.
    codes = pd.factorize(levels, use_na_sentinel=False)[0]
    size = int(codes.max()) + 1 if len(codes) else 0
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

    Columns ``level``, ``deals``, ``win_rate``; largest first. Both sides are
    returned: values nearly always won, and values nearly always lost (a segment
    that seldom converts, which is usually honest).
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


def _shown(levels: pd.DataFrame) -> str:
    return ", ".join(
        f"{row.level!r} ({row.win_rate:.0%} won, {row.deals:,} deals)"
        for row in levels.head(3).itertuples()
    )


def _decisive_flag(
    column: str, decisive: pd.DataFrame, n: int, cfg: AuditConfig
) -> Flag | None:
    """Leakage when values nearly always won cover decisive_share of the deals."""
    won = decisive[decisive["win_rate"] >= 0.5]
    share = won["deals"].sum() / n if n else 0.0
    if share < cfg.decisive_share:
        return None
    return Flag(
        column,
        "decisive_values",
        "leakage",
        f"values that are nearly always won cover {share:.0%} of training deals "
        f"(audit.decisive_share={cfg.decisive_share}): {_shown(won)}; a value "
        "that wins a deal is usually written once the deal is won",
    )


def _low_converting_flag(
    column: str, decisive: pd.DataFrame, n: int, cfg: AuditConfig
) -> Flag | None:
    """A warning (the column is kept) when values nearly always lost cover
    decisive_share of the deals: low-converting segments are normal."""
    lost = decisive[decisive["win_rate"] < 0.5]
    share = lost["deals"].sum() / n if n else 0.0
    if share < cfg.decisive_share:
        return None
    return Flag(
        column,
        "low_converting_values",
        "warning",
        f"values that seldom convert cover {share:.0%} of training deals: "
        f"{_shown(lost)}; kept as a feature, since a segment that rarely converts "
        "is common and honest; it is leakage only if the value is written once "
        "the deal is lost (a loss reason, a closed status)",
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
        "warning",
        f"its name suggests a state at export time ({', '.join(words)}): kept as a "
        "feature, as no statistic shows it leaks; if the CRM updates it after the "
        "lead comes in (until the export), list it under source.forbidden",
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
    share = float(decisive.loc[decisive["win_rate"] >= 0.5, "deals"].sum() / len(won))
    candidates = [
        _auc_flag(column, auc, cfg),
        _decisive_flag(column, decisive, len(won), cfg),
        _presence_flag(column, values, won, cfg),
        _low_converting_flag(column, decisive, len(won), cfg),
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


def auc_ci_width(n_won: int, n_lost: int, auc: float) -> float:
    """Width of the 95% confidence interval of a ROC AUC of ``auc`` measured on
    n_won and n_lost deals (the Hanley-McNeil standard error, 1982).

    >>> round(auc_ci_width(159, 350, 0.75), 3)
    0.097
    """
    if n_won < 1 or n_lost < 1:
        return float("inf")
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (n_won - 1) * (q1 - auc**2) + (n_lost - 1) * (q2 - auc**2)
    ) / (n_won * n_lost)
    return float(2 * 1.959964 * np.sqrt(variance))


#: The evaluation of each split method when one test window is too small: folds that
#: respect time wherever deals are dated or ordered.
FOLDS_BY_METHOD = {"time": "rolling_origin", "order": "rolling_origin"}


def evaluation_plan(
    counts: dict[str, dict[str, int]], method: str, cfg: AuditConfig
) -> dict[str, Any]:
    """How the model is judged: one test window when its AUC's 95% CI would be at
    most ``audit.max_auc_ci_width`` wide (planned at ``audit.planning_auc``), else
    folds over every closed deal: rolling-origin (expanding-window) folds when the
    split is by time or order, repeated stratified folds only when it is random.

    >>> cfg = AuditConfig()
    >>> counts = {"train": {"won": 600, "lost": 1200}, "valid": {"won": 120, "lost":
    ...     240}, "test": {"won": 159, "lost": 350}}
    >>> evaluation_plan(counts, "time", cfg)["evaluation"]
    'holdout'
    >>> small = {name: {"won": 30, "lost": 60} for name in counts}
    >>> evaluation_plan(small, "time", cfg)["evaluation"]
    'rolling_origin'
    >>> evaluation_plan(small, "random", cfg)["evaluation"]
    'repeated_cv'
    """
    test = counts["test"]
    width = auc_ci_width(test["won"], test["lost"], cfg.planning_auc)
    enough = width <= cfg.max_auc_ci_width and all(
        row["won"] and row["lost"] for row in counts.values()
    )
    folds = FOLDS_BY_METHOD.get(method, "repeated_cv")
    repeats = 1 if folds == "rolling_origin" else cfg.cv_repeats
    planned = (
        f"the test window's {test['won']:,} won and {test['lost']:,} lost deals give "
        f"a 95% CI about {width:.3f} wide for an AUC near {cfg.planning_auc:g}"
    )
    if enough:
        message = (
            f"{planned}, within audit.max_auc_ci_width={cfg.max_auc_ci_width:g}: "
            "one test window is enough"
        )
    elif folds == "rolling_origin":
        message = (
            f"{planned}, wider than audit.max_auc_ci_width={cfg.max_auc_ci_width:g}: "
            f"evaluate with {cfg.cv_splits} rolling-origin folds (each trains on "
            "every deal before its test block, the oldest "
            f"{cfg.rolling_min_train:.0%} first) and report the mean AUC with its CI"
        )
    else:
        message = (
            f"{planned}, wider than audit.max_auc_ci_width={cfg.max_auc_ci_width:g}: "
            f"the deals have no dates or order, so evaluate with repeated stratified "
            f"cross-validation ({cfg.cv_splits} folds x {cfg.cv_repeats} repeats) "
            "and report the mean AUC with its CI"
        )
    return {
        "max_auc_ci_width": cfg.max_auc_ci_width,
        "planning_auc": cfg.planning_auc,
        "test_auc_ci_width": width,
        "enough": enough,
        "evaluation": "holdout" if enough else folds,
        "cv_splits": cfg.cv_splits,
        "cv_repeats": repeats,
        "rolling_min_train": cfg.rolling_min_train,
        "message": message,
    }


def _duplicates(groups: pd.Series, split: pd.Series, columns: list[str]) -> dict:
    sizes = groups.map(groups.value_counts())
    sides = split.dropna().groupby(groups.loc[split.dropna().index]).nunique()
    return {
        "compared_columns": columns,
        "groups": int(groups.nunique()),
        "rows_with_a_copy": int((sizes > 1).sum()),
        "groups_with_copies": int((groups.value_counts() > 1).sum()),
        "groups_across_splits": int((sides > 1).sum()),
        "rule": "deals equal on every compared column form a group; a group stays "
        "on one side of every split",
    }


def export_rows(
    frame: pd.DataFrame, export: pd.DataFrame, source: SourceConfig
) -> tuple[pd.DataFrame, list[str]] | None:
    """The export's row of each deal (deal order), on every column of the export
    but the id and order columns, and those columns; None when the deals cannot all
    be found in the export by their id (then copies are judged on the columns
    lead-ml reads)."""
    deals = source.tables.deals
    skip = {deals.id, deals.order}
    columns = [c for c in export.columns if c not in skip]
    if deals.id not in export.columns or not columns:
        return None
    ids = as_text(id_text(export[deals.id]))
    first = ~ids.duplicated(keep="first") & ids.notna()
    rows = pd.Series(np.flatnonzero(first.to_numpy(bool)), index=ids[first].to_numpy())
    wanted = frame["deal_id"].astype("string")
    if not wanted.isin(rows.index).all():
        return None
    picked = export.iloc[rows.reindex(wanted.tolist()).to_numpy()][columns]
    # Text as the export holds it, trimmed: "7" and "7.0" in a CSV are told apart
    # as a person reading the file would, and a blank equals a blank.
    text = picked.astype("string").apply(lambda c: as_text(c))
    return text.set_axis(frame.index), columns


def _mapped_but_left_out(
    deals: Deals, source: SourceConfig, flags: list[Flag]
) -> list[str]:
    """A warning per column the user mapped to a dimension that is not a feature."""
    said = []
    for column, reason in deals.excluded.items():
        if column in source.dimensions:
            said.append(
                f"{column}: mapped to {source.dimensions[column]} under "
                f"source.dimensions but left out of the features: {reason}"
            )
    for flag in flags:
        if flag.column in source.dimensions and (
            flag.severity == "dropped" or flag.blocking
        ):
            said.append(
                f"{flag.column}: mapped to {source.dimensions[flag.column]} under "
                f"source.dimensions but left out of the features ({flag.check})"
            )
    return said


def left_out(deals: Deals, flags: list[Flag]) -> dict[str, str]:
    """Every column of the deals that is not a feature, with the reason: the
    source's exclusions (roles, ignore, forbidden, free text) and the audit's
    (dropped, refused)."""
    out = dict(deals.excluded)
    for flag in flags:
        if flag.severity == "dropped" or flag.blocking:
            what = "dropped" if flag.severity == "dropped" else "refused as leakage"
            out.setdefault(flag.column, f"{what} by the audit ({flag.check})")
    return out


def run_audit(
    deals: Deals,
    source: SourceConfig,
    cfg: AuditConfig,
    split: SplitConfig,
    seed: int,
    export: pd.DataFrame | None = None,
) -> AuditReport:
    """Split, count, group duplicates and check every feature (see the module doc).

    ``export``: the deals table as read (`lead-ml read`); copies are judged on
    every one of its columns but the id and the order. Without it (or when a deal
    cannot be found in it), on the columns lead-ml reads.
    """
    frame = deals.frame
    dimensions = deals.dimensions(source)
    on_export = None if export is None else export_rows(frame, export, source)
    if on_export is not None:
        rows, compared = on_export
        groups = duplicate_groups(rows, compared)
        judged = "every column of the export but the id and the order column"
    else:
        compared = [c for c in frame.columns if c not in _NOT_COMPARED]
        groups = duplicate_groups(frame, compared)
        judged = "the columns lead-ml reads (" + (
            "no export given)"
            if export is None
            else "the export's ids do not all match the deals')"
        )
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
        "data": {**deals.summary, "excluded": left_out(deals, flags)},
        "split": {"method": method, "explanation": why, "counts": counts},
        "sufficiency": evaluation_plan(counts, method, cfg),
        "duplicates": _duplicates(groups, labels, compared) | {"judged_on": judged},
        "flags": [asdict(f) | {"blocking": f.blocking} for f in flags],
        "blocking": sorted({f.column for f in flags if f.blocking}),
        "columns": columns,
        "kinds": [deals.kinds[c].as_dict() for c in deals.kinds],
        "features": list(features),
        "dimensions": {c: dimensions[c] for c in features},
        "rejects_by_reason": _rejects_by_reason(deals.rejects),
        "passed": not any(f.blocking for f in flags),
    }
    report["warnings"] = _warnings(report, flags) + _mapped_but_left_out(
        deals, source, flags
    )
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


def excluded_lines(excluded: dict[str, str]) -> list[str]:
    """One line per column left out of the features: the column and why."""
    return [f"{column}: {reason}" for column, reason in excluded.items()]


def _allow(flag: Flag, source: SourceConfig) -> Flag:
    if flag.column in source.allowed and flag.severity != "dropped":
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
        f"({r['duplicates']['groups_with_copies']:,} groups of copies, "
        f"{r['duplicates']['groups']:,} groups in all); groups across splits: "
        f"{r['duplicates']['groups_across_splits']}. Compared on "
        f"{len(r['duplicates']['compared_columns'])} columns: "
        f"{', '.join(map(str, r['duplicates']['compared_columns']))}.",
        "",
        "## Flags",
        *_flag_lines(report.flags),
        "",
        "## Columns left out",
        *([f"- {line}" for line in excluded_lines(data["excluded"])] or ["None."]),
        "",
        "## Warnings",
        *([f"- {w}" for w in r["warnings"]] or ["None."]),
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
    if flag.severity == "warning":
        return "warning (kept)"
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
