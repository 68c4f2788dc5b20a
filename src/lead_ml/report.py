"""The model report: one self-contained HTML page for revenue ops, for any source.

It reads what the pipeline already wrote (``reports/metrics.json``, the plot data in
``reports/plots/``, the features table, the validated deals, the exported scorer,
the rejects file, the audit) and draws every chart as inline SVG: the page needs no
network, no script and no other file.

The test window is scored as a batch job would score it: the validated deals of the
features table's test split, turned back into rows in the export's own column names
(:func:`lead_ml.sources.lead_rows`), with their activity log, through the exported
scorer. Every name on the page is the export's own: its columns, its id, its
source name (``source.name``), and the activity features by what they count.

Sections, in order: the headline (wins the model and the BANT rule put in front of
reps at capacity), ROC and precision-recall curves, calibration, cumulative gains,
win rate by score band, importance per MEDDIC dimension (plus fit, engagement and,
when the dimension map leaves columns out, other), importance per column, the mean
contribution of each MEDDIC column per recorded answer, five example leads with
their reasons and next question, a data summary (time, order or random split),
audit warnings, and what changed versus the registered champion; given the result
of `lead-ml monitor` (``--monitor``), what past scores did once their outcomes closed.

>>> svg = line_chart("Demo", [Series("model", "Model", [0, 1], [0, 1])], "x", "y")
>>> svg.count('class="series"'), svg.startswith("<svg")
(1, True)
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from lead_ml import tracking
from lead_ml.audit import split_method
from lead_ml.baseline import bant_scores
from lead_ml.compare import champion_changes as compare_changes
from lead_ml.config import Params
from lead_ml.explain import feature_contributions
from lead_ml.features import FeatureRegistry, FeatureSpec
from lead_ml.model import Split, split_frames
from lead_ml.monitor import headline as monitor_headline
from lead_ml.monitor import tables as monitor_tables
from lead_ml.scorer import Scorer, load_scorer
from lead_ml.sources import Deals, lead_rows, read_deals, source_activities
from lead_ml.vocab import (
    DIMENSIONS,
    EVIDENCE_CODES,
    MEDDIC_DIMENSIONS,
    OTHER,
    ReportError,
)

REPORT_FILE = "report.html"
#: The plot-data files `lead-ml evaluate` writes, and the columns the report reads.
PLOT_COLUMNS: dict[str, tuple[str, ...]] = {
    "roc_model": ("fpr", "tpr"),
    "roc_bant": ("fpr", "tpr"),
    "pr_model": ("recall", "precision"),
    "pr_bant": ("recall", "precision"),
    "gains_model": ("share_of_leads", "share_of_wins"),
    "gains_bant": ("share_of_leads", "share_of_wins"),
    "calibration": ("bin", "mean_predicted", "observed_rate", "count"),
    "win_rate_by_band": ("band", "n", "wins", "win_rate", "min_score", "max_score"),
}
#: metrics.json keys the report cannot do without (dotted paths); the test dates
#: are empty for a source without created dates.
REQUIRED_METRICS: tuple[str, ...] = (
    "model.roc_auc",
    "model.pr_auc",
    "model.ece",
    "bant.roc_auc",
    "bant.pr_auc",
    "delta_roc_auc",
    "delta_roc_auc_ci95",
    "capacity.k",
    "capacity.model_wins",
    "capacity.bant_wins",
    "capacity.model_win_rate",
    "capacity.bant_win_rate",
    "capacity.base_win_rate",
    "n_test",
    "test_start",
    "test_end",
)
#: The audit findings shown besides its warnings (`lead-ml audit`'s audit.json).
AUDIT_FIELDS: dict[str, str] = {
    "passed": "passed (no unallowed leakage)",
    "split.method": "split",
    "split.explanation": "why this split",
    "sufficiency.message": "enough data",
    "blocking": "columns refused as leakage",
}
#: Kinds of a MEDDIC column whose recorded answers are tabulated one by one.
ANSWER_KINDS = ("evidence", "category", "bool")
#: What the page calls an answer not yet known (blank, null or a placeholder).
NOT_KNOWN = "not yet known"
#: Values of a category shown one by one; rarer ones share a row.
MAX_ANSWERS = 12
#: Columns drawn in the per-column chart (the table lists every one).
MAX_CHART_COLUMNS = 12
#: Points per drawn curve: enough for the eye, small enough for a light page.
MAX_CURVE_POINTS = 300
N_EXAMPLES = 5
COLOURS = {"model": "#1f6feb", "bant": "#cf222e", "reference": "#8c959f"}
RAISES, LOWERS = "#1a7f37", "#cf222e"
DIMENSION_LABELS = {
    "metrics": "Metrics",
    "economic_buyer": "Economic buyer",
    "decision_criteria": "Decision criteria",
    "decision_process": "Decision process",
    "identify_pain": "Identify pain",
    "champion": "Champion",
    "fit": "Fit (ICP)",
    "engagement": "Engagement",
    OTHER: "Other (not mapped)",
}
#: How the page says each split method cut the closed deals.
SPLIT_WORDS = {
    "time": "Closed deals are split by their created date ({created}): the model "
    "learns from the oldest, is tuned and calibrated on the next, and is judged on "
    "the latest.",
    "order": "The export has no created dates, so closed deals are put in order by "
    "{order} and cut as if it were time: the model learns from the first, is tuned "
    "and calibrated on the next, and is judged on the last. There are no dates to "
    "show; the windows are ranges of {order}.",
    "random": "The export has no created dates and no order column, so closed "
    "deals are split at random, stratified by outcome (seeded from params.yaml): "
    "the windows have no dates, and the test score assumes the future looks like "
    "the past.",
}


@dataclass(frozen=True)
class ReportPaths:
    """Where the report reads its inputs and writes the page (dvc.yaml's paths)."""

    metrics: Path = Path("reports/metrics.json")
    plots: Path = Path("reports/plots")
    scorer: Path = Path("models/scorer")
    features: Path = Path("data/features/features.parquet")
    validated: Path = Path("data/validated")
    rejects: Path = Path("reports/rejects.csv")
    record: Path = Path("reports/export.json")
    audit: Path = Path("reports/audit.json")
    out: Path = Path("reports") / REPORT_FILE

    @classmethod
    def under(cls, root: Path) -> ReportPaths:
        """The default paths inside a project folder.

        >>> ReportPaths.under(Path("/p")).metrics.as_posix()
        '/p/reports/metrics.json'
        """
        return cls(**{k: root / v for k, v in vars(cls()).items()})


@dataclass(frozen=True)
class Setting:
    """What the page says about the source: its name, id column, how its closed
    deals were split (``time``, ``order`` or ``random``), the columns behind the
    created date and the order, and whether deals have an amount."""

    source: str
    id_column: str
    method: str
    created_column: str | None = None
    order_column: str | None = None
    has_amount: bool = False


@dataclass(frozen=True)
class Window:
    """The test window through the exported scorer.

    ``scored``: one row per test deal (test order) with ``deal_id``, the scorer's
    output (empty where it refused the row), ``won`` and ``bant_qualified``.
    ``contributions`` (one column per feature, calibrated log-odds) and
    ``features`` (as the scorer built them) cover the scored rows, same index.
    """

    scored: pd.DataFrame
    contributions: pd.DataFrame
    features: pd.DataFrame
    registry: FeatureRegistry


@dataclass(frozen=True)
class ReportData:
    """Everything the page shows, gathered from the pipeline's outputs."""

    metrics: dict[str, Any]
    plots: dict[str, pd.DataFrame]
    importance: pd.DataFrame
    columns: pd.DataFrame
    by_answer: pd.DataFrame
    examples: pd.DataFrame
    summary: dict[str, Any]
    audit: dict[str, Any] | None
    champion: dict[str, Any] | None
    setting: Setting
    model_version: str = ""
    run_id: str = ""
    #: `lead-ml monitor`'s result, shown when the report is given one (--monitor).
    monitor: dict[str, Any] | None = None


# --- reading the pipeline's outputs ---------------------------------------------------


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(
            f"{path}: not found ({what}); run `dvc repro` (or `make run`) first"
        ) from None
    except json.JSONDecodeError as error:
        raise ReportError(
            f"{path}: not valid JSON ({error}); re-run its stage"
        ) from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object ({what})")
    return data


def _lookup(mapping: Mapping[str, Any], dotted: str) -> Any:
    value: Any = mapping
    for key in dotted.split("."):
        if not isinstance(value, Mapping) or key not in value:
            raise KeyError(dotted)
        value = value[key]
    return value


def read_metrics(path: Path) -> dict[str, Any]:
    """metrics.json from `lead-ml evaluate`, checked for every key the report shows."""
    metrics = _read_json(path, "the metrics of `lead-ml evaluate`")
    for key in REQUIRED_METRICS:
        try:
            _lookup(metrics, key)
        except KeyError:
            raise ReportError(
                f"{path}: no {key!r}; it was written by another lead-ml version, "
                "re-run `lead-ml evaluate`"
            ) from None
    return metrics


def read_plot_file(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """One plot-data CSV, checked: every column present and every value a number."""
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise ReportError(
            f"{path}: plot data not found; re-run `lead-ml evaluate`"
        ) from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ReportError(f"{path}: missing column(s) {', '.join(missing)}")
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = np.flatnonzero(~np.isfinite(values.to_numpy(float)))
        if bad.size:
            raise ReportError(
                f"{path}: line {bad[0] + 2}, column {column}: "
                f"{frame[column].iloc[bad[0]]!r} is not a number; re-run evaluate"
            )
        frame[column] = values
    if frame.empty:
        raise ReportError(f"{path}: no rows; re-run `lead-ml evaluate`")
    return frame.loc[:, list(columns)]


def read_plots(plots_dir: Path) -> dict[str, pd.DataFrame]:
    """Every plot-data file of `lead-ml evaluate`, by name (see PLOT_COLUMNS)."""
    return {
        name: read_plot_file(plots_dir / f"{name}.csv", columns)
        for name, columns in PLOT_COLUMNS.items()
    }


def read_audit(path: Path) -> dict[str, Any] | None:
    """The audit stage's findings, or None when no audit has run."""
    return _read_json(path, "the data audit") if path.exists() else None


def count_rejects(path: Path) -> dict[str, int]:
    """Rejected rows per table in the validate stage's rejects file."""
    try:
        rejects = pd.read_csv(path, usecols=["table"], dtype="string")
    except FileNotFoundError:
        raise ReportError(
            f"{path}: rejects file not found; run `lead-ml validate` first"
        ) from None
    except ValueError:
        raise ReportError(
            f"{path}: no 'table' column; re-run `lead-ml validate`"
        ) from None
    return {str(k): int(v) for k, v in rejects["table"].value_counts().items()}


def run_id_of(record_path: Path, experiment: str) -> str:
    """The MLflow run the exported scorer was trained in: the run tagged with the
    scorer's content version that export.json names (no run id is kept there)."""
    record = _read_json(record_path, "the export record of `lead-ml export`")
    if not isinstance(record.get("model_version"), str):
        raise ReportError(f"{record_path}: no 'model_version'; re-run `lead-ml export`")
    return tracking.find_run(experiment, tracking.SCORER_TAG, record["model_version"])


def read_features(path: Path) -> tuple[pd.DataFrame, Split]:
    """The features table and its train / validation / test windows."""
    try:
        features = pd.read_parquet(path)
    except FileNotFoundError:
        raise ReportError(
            f"{path}: features not found; run `dvc repro` (or `lead-ml featurize`) "
            "first"
        ) from None
    try:
        return features, split_frames(features)
    except (KeyError, ValueError) as error:
        raise ReportError(f"{path}: {error}; re-run `dvc repro`") from None


def setting_of(params: Params, features: pd.DataFrame, scorer: Scorer) -> Setting:
    """The source's name, id, split method (as the audit chose it) and roles."""
    deals = params.source.tables.deals
    method, _ = split_method(features)
    return Setting(
        source=params.source.name,
        id_column=scorer.id_column,
        method=method,
        created_column=deals.created,
        order_column=deals.order,
        has_amount=deals.amount is not None,
    )


# --- the test window through the exported scorer --------------------------------------


def window_deals(deals: Deals, test: pd.DataFrame) -> pd.DataFrame:
    """The validated deals of the test window, in its order."""
    ids = pd.Index(deals.frame["deal_id"].astype("string"))
    position = ids.get_indexer(pd.Index(test["deal_id"].astype("string")))
    if (position < 0).any():
        raise ReportError(
            f"{int((position < 0).sum()):,} test deals of the features table are not "
            "among the validated deals; re-run `dvc repro`"
        )
    return deals.frame.iloc[position]


def window_activities(
    scorer: Scorer, deals: Deals, chosen: pd.DataFrame, params: Params
) -> pd.DataFrame | None:
    """The activity log of the chosen deals as the scorer reads it (None when the
    model counts no activity or the source has no log)."""
    if not scorer.counts_activities or deals.activities is None:
        return None
    log = deals.activities
    mine = log[log["deal_id"].isin(chosen["deal_id"].tolist()).to_numpy(bool)]
    read, _ = scorer.read_activities(source_activities(mine, params.source))
    return read


def score_window(
    scorer: Scorer, test: pd.DataFrame, deals: Deals, params: Params
) -> Window:
    """The test window scored and explained by the exported scorer from raw lead
    rows in the export's own columns (and its activities), as a batch job would."""
    chosen = window_deals(deals, test)
    leads = lead_rows(chosen, params.source, scorer.contract.columns)
    leads = leads.reset_index(drop=True)
    result = scorer.score_chunk(leads, window_activities(scorer, deals, chosen, params))
    output = result.output.drop(columns=scorer.id_column)
    bant = bant_scores(params.bant, params.source, chosen)
    scored = pd.concat(
        [
            pd.DataFrame(
                {
                    "deal_id": test["deal_id"].astype("string").to_numpy(),
                    "won": test["won"].to_numpy(int),
                    "bant_qualified": bant["bant_qualified"].to_numpy(bool),
                }
            ),
            output.reindex(leads.index),
        ],
        axis=1,
    )
    contributions = pd.DataFrame(
        feature_contributions(scorer.model, result.rows)[:, :-1],
        columns=scorer.model.info.feature_names,
        index=output.index,
    )
    return Window(scored, contributions, result.features, scorer.registry)


def _signed_means(contributions: pd.DataFrame) -> pd.DataFrame:
    """Per column of contributions: mean |c|, its raising and lowering parts and
    the share of leads it raised."""
    return pd.DataFrame(
        {
            "mean_abs": contributions.abs().mean(),
            "raised": contributions.clip(lower=0).mean(),
            "lowered": contributions.clip(upper=0).mean(),
            "share_raised": (contributions > 0).mean(),
        }
    ).fillna(0.0)


def shown_dimensions(registry: FeatureRegistry) -> tuple[str, ...]:
    """The dimensions the page shows: every one of DIMENSIONS, and ``other`` when a
    feature falls in it."""
    used = OTHER in {spec.dimension for spec in registry.specs}
    return (*DIMENSIONS, OTHER) if used else DIMENSIONS


def meddic_importance(
    scored: pd.DataFrame, dimensions: Sequence[str] = DIMENSIONS
) -> pd.DataFrame:
    """Per dimension, in calibrated log-odds: the mean absolute contribution, split
    into the mean part that raised scores (``raised``, >= 0) and lowered them
    (``lowered``, <= 0), and the share of leads it raised; largest first.

    >>> scored = pd.DataFrame({f"contrib_{d}": [0.2, -0.4] for d in DIMENSIONS})
    >>> meddic_importance(scored).loc["champion"].round(3).tolist()
    [0.3, 0.1, -0.2, 0.5]
    """
    columns = [f"contrib_{d}" for d in dimensions]
    contributions = scored[columns].astype(float).dropna()
    contributions.columns = list(dimensions)
    table = _signed_means(contributions)
    table.index.name = "dimension"
    return table.sort_values("mean_abs", ascending=False, kind="stable")


def column_importance(
    contributions: pd.DataFrame, registry: FeatureRegistry
) -> pd.DataFrame:
    """Per feature (index: its name), the export's column it reads (``column``: an
    activity feature by what it counts), its dimension and kind, and the means of
    :func:`meddic_importance`; largest first."""
    table = _signed_means(contributions.astype(float))
    specs = [registry.spec(name) for name in table.index]
    table.insert(0, "column", [spec.words for spec in specs])
    table.insert(1, "dimension", [spec.dimension for spec in specs])
    table.insert(2, "kind", [spec.kind for spec in specs])
    table.index.name = "feature"
    return table.sort_values("mean_abs", ascending=False, kind="stable")


def answer_columns(registry: FeatureRegistry) -> list[FeatureSpec]:
    """The features whose recorded answers the page tabulates: MEDDIC-mapped
    columns of kind evidence, category or bool."""
    return [
        spec
        for spec in registry.specs
        if spec.dimension in MEDDIC_DIMENSIONS and spec.kind in ANSWER_KINDS
    ]


def recorded_answers(spec: FeatureSpec, values: pd.Series) -> pd.Series:
    """A feature's values as the recorded answers a rep reads: yes / no for evidence
    and flags, the text of a category, NOT_KNOWN where it is not known.

    >>> spec = FeatureSpec("champion", "Champion", "evidence", "champion", 1)
    >>> recorded_answers(spec, pd.Series([2.0, 1.0, 0.0])).tolist()
    ['yes', 'not yet known', 'no']
    """
    if spec.kind == "category":
        text = values.astype("string").str.strip()
        return text.mask(text == "").fillna(NOT_KNOWN).astype(str)
    numbers = values.to_numpy(dtype=float, na_value=np.nan)
    yes = EVIDENCE_CODES["yes"] if spec.kind == "evidence" else 1.0
    no = EVIDENCE_CODES["no"] if spec.kind == "evidence" else 0.0
    words = np.where(numbers == yes, "yes", np.where(numbers == no, "no", NOT_KNOWN))
    return pd.Series(words, index=values.index)


def _fold_rare(answers: pd.Series) -> pd.Series:
    """The MAX_ANSWERS most common answers as they are; the rest share one row."""
    counts = answers.value_counts(sort=False)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = {a for a, _ in ranked[:MAX_ANSWERS]} | {NOT_KNOWN}
    rare = ~answers.isin(kept)
    n_rare = answers[rare].nunique()
    return answers.mask(rare, f"any of {n_rare:,} rarer values")


def contribution_by_answer(window: Window) -> pd.DataFrame:
    """For every MEDDIC column of kind evidence, category or bool, the mean
    contribution of that column per recorded answer (NOT_KNOWN its own answer),
    largest first within each column: which way an answer moves the score.
    Columns: column, feature, dimension, answer, leads, mean_contribution."""
    frames = []
    for spec in answer_columns(window.registry):
        answers = _fold_rare(recorded_answers(spec, window.features[spec.name]))
        grouped = window.contributions[spec.name].groupby(answers)
        means = grouped.mean().sort_values(ascending=False, kind="stable")
        frames.append(
            pd.DataFrame(
                {
                    "column": spec.words,
                    "feature": spec.name,
                    "dimension": spec.dimension,
                    "answer": means.index.astype(str),
                    "leads": grouped.size().reindex(means.index).to_numpy(),
                    "mean_contribution": means.round(6).to_numpy(),
                }
            )
        )
    columns = ["column", "feature", "dimension", "answer", "leads"]
    empty = pd.DataFrame(columns=[*columns, "mean_contribution"])
    return pd.concat(frames, ignore_index=True) if frames else empty


def _nearest(rows: pd.DataFrame, probability: float) -> pd.Series:
    order = (rows["probability"] - probability).abs()
    return rows.loc[order.sort_values(kind="stable").index[0]]


def example_leads(scored: pd.DataFrame, n: int = N_EXAMPLES) -> pd.DataFrame:
    """n leads worth reading: the typical (median) lead of each band A-D, the
    BANT-qualified lead the model ranks lowest, then the best-scored rest."""
    rows = scored[scored["probability"].notna()].sort_values("deal_id", kind="stable")
    picks: list[tuple[str, pd.Series]] = []
    for band, members in rows.groupby("band", sort=True):
        median = float(members["probability"].median())
        picks.append((f"a typical band {band} lead", _nearest(members, median)))
    qualified = rows[rows["bant_qualified"]]
    if len(qualified):
        lowest = qualified.sort_values("probability", kind="stable").iloc[0]
        picks.append(("BANT qualifies it; the model ranks it lowest", lowest))
    by_score = rows.sort_values("probability", ascending=False, kind="stable")
    picks += [
        ("among the best-scored", lead) for _, lead in by_score.head(n).iterrows()
    ]
    chosen: dict[str, pd.Series] = {}
    for why, lead in picks:
        if len(chosen) < n and lead["deal_id"] not in chosen:
            chosen[lead["deal_id"]] = pd.concat([lead, pd.Series({"why": why})])
    return pd.DataFrame(list(chosen.values())).reset_index(drop=True)


def _bound(value: Any, method: str) -> str:
    """A window's first or last created date (time) or order value (order)."""
    if pd.isna(value):
        return ""
    if method == "time" or isinstance(value, pd.Timestamp | np.datetime64):
        return pd.Timestamp(value).date().isoformat()
    number = float(value)
    return f"{number:.0f}" if number.is_integer() else f"{number:g}"


def _window_summary(name: str, window: pd.DataFrame, method: str) -> dict[str, Any]:
    summary = {
        "window": name,
        "deals": len(window),
        "won": int(window["won"].sum()),
        "win_rate": float(window["won"].astype(float).mean()),
    }
    if method == "random":
        return summary
    key = "created_at" if method == "time" else "order"
    return summary | {
        "from": _bound(window[key].min(), method),
        "to": _bound(window[key].max(), method),
    }


def data_summary(
    features: pd.DataFrame,
    split: Split,
    rejects: dict[str, int],
    scored: pd.DataFrame,
    method: str,
) -> dict[str, Any]:
    """Rows, closed win rate, the three windows (their created dates or order
    values; none for a random split), rejected rows, leads the scorer refused."""
    closed = features["won"].notna()
    return {
        "deals": len(features),
        "closed": int(closed.sum()),
        "open": int((~closed).sum()),
        "win_rate_closed": float(features.loc[closed, "won"].astype(float).mean()),
        "method": method,
        "windows": [
            _window_summary(name, window, method)
            for name, window in (
                ("train", split.train),
                ("validation", split.valid),
                ("test", split.test),
            )
        ],
        "rejects": rejects,
        "scorer_refused": int(scored["probability"].isna().sum()),
    }


def champion_changes(params: Params, run_id: str) -> dict[str, Any] | None:
    """What differs between this run and the registered champion (the dict of
    :func:`lead_ml.compare.champion_changes`), or None when no champion is
    registered."""
    result = compare_changes(params, run_id)
    if result is None:
        return None
    # The page is a DVC output: registry numbers and run ids differ per store, so
    # the champion is named by its scorer's content version instead.
    # The commit is left out too: the page is committed after it is written.
    per_store = ("champion_version", "champion_run_id", "candidate_run_id")
    shown = {key: value for key, value in result.items() if key not in per_store}
    shown["tags"] = {k: v for k, v in result["tags"].items() if k != "git_commit"}
    return shown


def gather(params: Params, paths: ReportPaths) -> ReportData:
    """Read every input of the report and score the test window with the scorer."""
    metrics = read_metrics(paths.metrics)
    plots = read_plots(paths.plots)
    scorer = load_scorer(paths.scorer)
    features, split = read_features(paths.features)
    setting = setting_of(params, features, scorer)
    deals = read_deals(paths.validated)
    window = score_window(scorer, split.test, deals, params)
    summary = data_summary(
        features, split, count_rejects(paths.rejects), window.scored, setting.method
    )
    # The store is read once every file checked out: a missing file is named first.
    run_id = run_id_of(paths.record, params.tracking.experiment)
    return ReportData(
        metrics=metrics,
        plots=plots,
        importance=meddic_importance(window.scored, shown_dimensions(scorer.registry)),
        columns=column_importance(window.contributions, scorer.registry),
        by_answer=contribution_by_answer(window),
        examples=example_leads(window.scored),
        summary=summary,
        audit=read_audit(paths.audit),
        champion=champion_changes(params, run_id),
        setting=setting,
        model_version=scorer.model_version,
        run_id=run_id,
    )


# --- charts (inline SVG) --------------------------------------------------------------

WIDTH, HEIGHT = 420, 320
MARGIN = {"left": 56, "right": 16, "top": 34, "bottom": 46}


@dataclass(frozen=True)
class Series:
    """One curve: a key (model, bant, reference...), its legend label and points."""

    key: str
    label: str
    x: ArrayLike
    y: ArrayLike
    markers: bool = False
    colour: str = ""


def thin(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, ...]:
    """At most about max_points points along the curve, evenly spaced by path length;
    the first and last points are kept.

    >>> xs, ys = thin(np.linspace(0, 1, 1001), np.linspace(0, 1, 1001), 10)
    >>> len(xs) <= 12, float(xs[0]), float(xs[-1])
    (True, 0.0, 1.0)
    """
    if len(x) <= max_points:
        return x, y
    travelled = np.r_[0.0, np.cumsum(np.hypot(np.diff(x), np.diff(y)))]
    step = travelled[-1] / max_points or 1.0
    bucket = np.floor(travelled / step)
    keep = np.r_[True, bucket[1:] != bucket[:-1]]
    keep[-1] = True
    return x[keep], y[keep]


def _px(value: float, axis: str) -> float:
    """A value in [0, 1] as a pixel position inside the plot area."""
    if axis == "x":
        span = WIDTH - MARGIN["left"] - MARGIN["right"]
        return round(MARGIN["left"] + value * span, 1)
    span = HEIGHT - MARGIN["top"] - MARGIN["bottom"]
    return round(HEIGHT - MARGIN["bottom"] - value * span, 1)


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _axes(x_label: str, y_label: str) -> list[str]:
    parts = []
    for tick in np.linspace(0, 1, 6):
        x, y = _px(tick, "x"), _px(tick, "y")
        parts += [
            f'<line class="grid" x1="{MARGIN["left"]}" y1="{y}" '
            f'x2="{WIDTH - MARGIN["right"]}" y2="{y}"/>',
            f'<text x="{MARGIN["left"] - 6}" y="{y + 4}" text-anchor="end">'
            f"{tick:.1f}</text>",
            f'<text x="{x}" y="{HEIGHT - MARGIN["bottom"] + 16}" '
            f'text-anchor="middle">{tick:.1f}</text>',
        ]
    parts += [
        f'<text x="{(WIDTH + MARGIN["left"]) / 2}" y="{HEIGHT - 8}" '
        f'text-anchor="middle">{_esc(x_label)}</text>',
        f'<text transform="translate(14 {HEIGHT / 2}) rotate(-90)" '
        f'text-anchor="middle">{_esc(y_label)}</text>',
    ]
    return parts


def _curve(series: Series, css_class: str) -> list[str]:
    x, y = thin(
        np.clip(np.asarray(series.x, float), 0, 1),
        np.clip(np.asarray(series.y, float), 0, 1),
        MAX_CURVE_POINTS,
    )
    colour = series.colour or COLOURS.get(series.key, COLOURS["reference"])
    points = " ".join(f"{_px(a, 'x')},{_px(b, 'y')}" for a, b in zip(x, y, strict=True))
    dash = ' stroke-dasharray="5 4"' if css_class == "reference" else ""
    parts = [
        f'<polyline class="{css_class}" data-series="{_esc(series.key)}" '
        f'fill="none" stroke="{colour}" stroke-width="2"{dash} points="{points}"/>'
    ]
    if series.markers:
        parts += [
            f'<circle class="marker" cx="{_px(a, "x")}" cy="{_px(b, "y")}" r="3.5" '
            f'fill="{colour}"/>'
            for a, b in zip(x, y, strict=True)
        ]
    return parts


def _legend(series: Sequence[Series]) -> list[str]:
    parts, x = [], MARGIN["left"]
    for item in series:
        colour = item.colour or COLOURS.get(item.key, COLOURS["reference"])
        parts += [
            f'<rect x="{x}" y="{MARGIN["top"] - 16}" width="12" height="4" '
            f'fill="{colour}"/>',
            f'<text x="{x + 16}" y="{MARGIN["top"] - 11}">{_esc(item.label)}</text>',
        ]
        x += 24 + 7 * len(item.label)
    return parts


def _svg(title: str, body: list[str], height: int = HEIGHT, width: int = WIDTH) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{_esc(title)}">'
        f"<title>{_esc(title)}</title>{''.join(body)}</svg>"
    )


def line_chart(
    title: str,
    series: Sequence[Series],
    x_label: str,
    y_label: str,
    references: Sequence[Series] = (),
) -> str:
    """An SVG line chart with both axes from 0 to 1 (every curve here is a share or a
    rate): one ``class="series"`` polyline per series, dashed references behind."""
    body = _axes(x_label, y_label)
    for reference in references:
        body += _curve(reference, "reference")
    for item in series:
        body += _curve(item, "series")
    return _svg(title, body + _legend([*series, *references]))


def bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    colours: Sequence[str],
    texts: Sequence[str],
) -> str:
    """An SVG horizontal bar chart, one ``class="bar"`` rect per label, bars scaled to
    the largest value, each with its value written beside it."""
    row, left, right = 26, 150, 70
    height = MARGIN["top"] + row * len(labels) + 10
    top = max(max(values, default=0.0), 1e-12)
    body = []
    for i, (label, value, colour, text) in enumerate(
        zip(labels, values, colours, texts, strict=True)
    ):
        y = MARGIN["top"] + i * row
        width = round(max(value, 0.0) / top * (WIDTH - left - right), 1)
        body += [
            f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{_esc(label)}</text>',
            f'<rect class="bar" data-label="{_esc(label)}" x="{left}" y="{y + 3}" '
            f'width="{width}" height="{row - 8}" fill="{colour}"/>',
            f'<text x="{left + width + 6}" y="{y + 15}">{_esc(text)}</text>',
        ]
    return _svg(title, body, height)


def curve_charts(plots: dict[str, pd.DataFrame]) -> dict[str, str]:
    """ROC, precision-recall, calibration and gains charts from the plot data."""

    def pair(name: str, x: str, y: str) -> list[Series]:
        return [
            Series(key, label, plots[f"{name}_{key}"][x], plots[f"{name}_{key}"][y])
            for key, label in (("model", "Model"), ("bant", "BANT rule"))
        ]

    diagonal = Series("reference", "Random", [0, 1], [0, 1])
    base_rate = float(plots["pr_model"]["precision"].iloc[0])
    calibration = plots["calibration"]
    return {
        "roc": line_chart(
            "ROC curve",
            pair("roc", "fpr", "tpr"),
            "false positive rate",
            "true positive rate",
            [diagonal],
        ),
        "pr": line_chart(
            "Precision-recall curve",
            pair("pr", "recall", "precision"),
            "recall (share of wins found)",
            "precision (win rate of leads taken)",
            [Series("reference", "Base rate", [0, 1], [base_rate, base_rate])],
        ),
        "calibration": line_chart(
            "Calibration",
            [
                Series(
                    "model",
                    "Model",
                    calibration["mean_predicted"],
                    calibration["observed_rate"],
                    markers=True,
                )
            ],
            "predicted win probability",
            "observed win rate",
            [Series("reference", "Perfect", [0, 1], [0, 1])],
        ),
        "gains": line_chart(
            "Cumulative gains",
            pair("gains", "share_of_leads", "share_of_wins"),
            "share of leads worked, best first",
            "share of all wins found",
            [diagonal],
        ),
    }


def band_chart(bands: pd.DataFrame, base_rate: float) -> str:
    """Win rate per score band (band 1 the best-scored), bars above the base rate
    in green, below in red."""
    share = 100 / len(bands)
    return bar_chart(
        "Win rate by score band",
        [
            f"band {int(b)} ({'best ' if b == 1 else f'{share * (b - 1):.0f}-'}"
            f"{share * b:.0f}%)"
            for b in bands["band"]
        ],
        bands["win_rate"].tolist(),
        [RAISES if r >= base_rate else LOWERS for r in bands["win_rate"]],
        [f"{r:.0%}" for r in bands["win_rate"]],
    )


def _short(label: str, limit: int) -> str:
    """A label cut to ``limit`` characters, with an ellipsis when cut.

    >>> _short("What matters most to you in choosing a course", 20)
    'What matters most t…'
    """
    return label if len(label) <= limit else label[: limit - 1] + "…"


def importance_chart(
    importance: pd.DataFrame,
    labels: Sequence[str],
    title: str,
    label_width: int = 120,
) -> str:
    """Per row (dimension or column), a diverging bar: green to the right the mean
    part of its contribution that raised scores, red to the left the part that
    lowered them; together they are its mean absolute contribution. Labels longer
    than the room beside the bars are cut (each bar's ``data-label`` holds all)."""
    row, width = 26, WIDTH + label_width - 120
    centre = label_width + 150
    half = min(centre - label_width - 14, width - centre - 44)
    height = MARGIN["top"] + row * len(importance) + 10
    top = float(max(importance["raised"].max(), -importance["lowered"].min(), 1e-12))
    body = [
        f'<line class="axis" x1="{centre}" y1="{MARGIN["top"] - 4}" x2="{centre}" '
        f'y2="{height - 6}" stroke="#59636e"/>',
        f'<text x="{centre - 6}" y="{MARGIN["top"] - 12}" text-anchor="end">'
        "lowered</text>",
        f'<text x="{centre + 6}" y="{MARGIN["top"] - 12}">raised</text>',
    ]
    values = importance[["raised", "lowered"]].to_numpy(float)
    for i, (label, (raised, lowered)) in enumerate(zip(labels, values, strict=True)):
        y = MARGIN["top"] + i * row
        up, down = (round(abs(v) / top * half, 1) for v in (raised, lowered))
        shown = _short(label, label_width // 6)
        body += [
            f'<text x="{label_width}" y="{y + 15}" text-anchor="end">'
            f"<title>{_esc(label)}</title>{_esc(shown)}</text>",
            f'<rect class="bar" data-label="{_esc(label)}" data-side="lowered" '
            f'x="{centre - down}" y="{y + 3}" width="{down}" height="{row - 8}" '
            f'fill="{LOWERS}"/>',
            f'<rect class="bar" data-label="{_esc(label)}" data-side="raised" '
            f'x="{centre}" y="{y + 3}" width="{up}" height="{row - 8}" '
            f'fill="{RAISES}"/>',
            f'<text x="{centre + up + 4}" y="{y + 15}">{raised - lowered:.2f}</text>',
        ]
    return _svg(title, body, height, width)


def dimension_chart(importance: pd.DataFrame) -> str:
    """:func:`importance_chart` of the dimensions."""
    labels = [DIMENSION_LABELS[d] for d in importance.index]
    return importance_chart(importance, labels, "Importance per dimension")


def column_chart(columns: pd.DataFrame) -> str:
    """:func:`importance_chart` of the MAX_CHART_COLUMNS most important columns."""
    top = columns.head(MAX_CHART_COLUMNS)
    return importance_chart(
        top, top["column"].tolist(), "Importance per column", label_width=250
    )


# --- the page -------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328;
background:#f6f8fa}
main{max-width:1000px;margin:0 auto;padding:24px}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px 20px;
margin:16px 0}
h1{margin:0 0 4px}h2{margin-top:0}.muted{color:#59636e}
.headline{font-size:1.3em}.big{font-size:2em;font-weight:700}
.figures{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0}figcaption{color:#59636e;max-width:420px;font-size:.9em}
svg{background:#fff}svg text{font-size:11px;fill:#1f2328}
svg .grid{stroke:#eaeef2;stroke-width:1}
table{border-collapse:collapse;width:100%;font-size:.92em}
th,td{border-bottom:1px solid #d0d7de;padding:6px 8px;text-align:left;
vertical-align:top}
td.num,th.num{text-align:right}
.warning{color:#9a6700}.ok{color:#1a7f37}
"""


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(tag: str, value: object) -> str:
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        shown = f"{value:,}" if isinstance(value, int) and numeric else value
        return f"<{tag}{' class=num' if numeric else ''}>{_esc(shown)}</{tag}>"

    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(cell("td", v) for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(anchor: str, title: str, *parts: str) -> str:
    return f'<section id="{anchor}"><h2>{_esc(title)}</h2>{"".join(parts)}</section>'


def _figure(anchor: str, svg: str, caption: str) -> str:
    return (
        f'<figure id="{anchor}">{svg}<figcaption>{_esc(caption)}</figcaption></figure>'
    )


def _money(value: float) -> str:
    return f"{value:,.0f}"


def window_words(metrics: dict[str, Any], setting: Setting) -> str:
    """Which deals the metrics' test window holds, in words: created dates for a
    time split, the order column for an order split, out of fold for
    cross-validation.

    >>> metrics = {"test_start": "", "test_end": ""}
    >>> window_words(metrics, Setting("X", "Prospect ID", "order", None, "Lead Number"))
    'the latest closed deals by Lead Number (the export has no created dates)'
    """
    if metrics.get("evaluation") == "repeated_cv":
        return (
            "every closed deal, scored out of fold by repeated cross-validation (too "
            "few deals for one test window)"
        )
    if setting.method == "time":
        start, end = metrics["test_start"], metrics["test_end"]
        return f"the latest closed deals, created {start} to {end}"
    if setting.method == "order":
        return (
            f"the latest closed deals by {setting.order_column} (the export has no "
            "created dates)"
        )
    return (
        "closed deals drawn at random, stratified by outcome (the export has no "
        "created dates and no order column)"
    )


def headline(metrics: dict[str, Any], setting: Setting) -> str:
    """The first thing revenue ops read: wins at capacity, model against BANT."""
    capacity = metrics["capacity"]
    k, model, bant = capacity["k"], capacity["model_wins"], capacity["bant_wins"]
    low, high = metrics["delta_roc_auc_ci95"]
    more = f"{model / bant:.1f}x as many" if bant else "all of them"
    value = ""
    if setting.has_amount and "model_pipeline_value" in capacity:
        model_value = _money(capacity["model_pipeline_value"])
        bant_value = _money(capacity.get("bant_pipeline_value", 0.0))
        value = (
            f"<p>Pipeline value of those wins (summed deal amounts): <b>{model_value}"
            f"</b> with the model, {bant_value} with BANT.</p>"
        )
    return _section(
        "headline",
        "Headline: wins in front of reps",
        f'<p class="headline">If reps work <b>{k:,}</b> leads of the test window, '
        f'the model puts <span class="big">{model:,}</span> wins in front of them, '
        f'the BANT rule <span class="big">{bant:,}</span>: <b>{model - bant:+,} wins'
        f"</b> ({more}).</p>",
        f"<p>Win rate of the leads worked: {capacity['model_win_rate']:.1%} with the "
        f"model, {capacity['bant_win_rate']:.1%} with BANT, "
        f"{capacity['base_win_rate']:.1%} for all {metrics['n_test']:,} test deals: "
        f"{_esc(window_words(metrics, setting))}.</p>",
        value,
        f"<p>Ranking quality (ROC AUC): model {metrics['model']['roc_auc']:.3f}, "
        f"BANT {metrics['bant']['roc_auc']:.3f}; gain {metrics['delta_roc_auc']:+.3f} "
        f"(95% CI {low:+.3f} to {high:+.3f}, paired bootstrap).</p>",
    )


def curves_section(charts: dict[str, str], metrics: dict[str, Any]) -> str:
    """ROC, precision-recall, calibration and cumulative gains, with captions."""
    model, bant = metrics["model"], metrics["bant"]
    return _section(
        "curves",
        "Ranking: ROC and precision-recall",
        '<div class="figures">',
        _figure(
            "roc",
            charts["roc"],
            f"ROC AUC: model {model['roc_auc']:.3f}, BANT {bant['roc_auc']:.3f}. "
            "Higher and further left is better; the dashed line is a coin flip.",
        ),
        _figure(
            "pr",
            charts["pr"],
            f"PR AUC: model {model['pr_auc']:.3f}, BANT {bant['pr_auc']:.3f}. "
            "How many of the leads taken are wins, as more wins are found.",
        ),
        "</div>",
    ) + _section(
        "calibration-gains",
        "Calibration and cumulative gains",
        '<div class="figures">',
        _figure(
            "calibration",
            charts["calibration"],
            f"Calibration error (ECE) {model['ece']:.3f}: points near the dashed "
            "line mean a lead shown at 30% wins about 30% of the time.",
        ),
        _figure(
            "gains",
            charts["gains"],
            "Share of all wins found when reps work a share of leads, best-scored "
            "first. BANT's straight stretches are leads it cannot tell apart.",
        ),
        "</div>",
    )


def bands_section(bands: pd.DataFrame, base_rate: float) -> str:
    """Win rate per model score band: the chart and its table."""
    rows = [
        (int(band), int(n), int(wins), f"{rate:.1%}", f"{low:.2f} to {high:.2f}")
        for band, n, wins, rate, low, high in bands[
            ["band", "n", "wins", "win_rate", "min_score", "max_score"]
        ].to_numpy(float)
    ]
    return _section(
        "bands",
        "Win rate by score band",
        _figure(
            "band-chart",
            band_chart(bands, base_rate),
            f"Test deals in equal-sized bands by model score, band 1 the best; green "
            f"bands win more often than the {base_rate:.1%} average.",
        ),
        _table(["band", "deals", "wins", "win rate", "probability range"], rows),
    )


def _members(columns: pd.DataFrame, dimension: str) -> str:
    names = columns.loc[columns["dimension"] == dimension, "column"].tolist()
    return ", ".join(names) or "no column of this export maps to it"


def importance_section(importance: pd.DataFrame, columns: pd.DataFrame) -> str:
    """Mean absolute contribution per MEDDIC dimension (plus fit, engagement and
    other), its direction, and the export's columns behind each."""
    values = importance[["mean_abs", "share_raised"]].to_numpy(float)
    rows = [
        (
            DIMENSION_LABELS[d],
            round(mean_abs, 3),
            f"{share:.0%}",
            _members(columns, str(d)),
        )
        for d, (mean_abs, share) in zip(importance.index, values, strict=True)
    ]
    return _section(
        "meddic",
        "MEDDIC importance",
        "<p>How much each dimension moved the test window's scores, from the exported "
        "scorer: exact tree contributions summed per dimension of the source's "
        "dimension map, in log-odds (+0.4 moves a 25% lead to about 33%). "
        "Contributions say what raised or lowered a score, not what caused a win.</p>",
        _figure(
            "importance-chart",
            dimension_chart(importance),
            "Mean contribution per dimension: green the part that raised scores, red "
            "the part that lowered them; the number is the mean absolute contribution.",
        ),
        _table(
            ["dimension", "mean |contribution|", "leads it raised", "columns"],
            rows,
        ),
    )


def columns_section(columns: pd.DataFrame) -> str:
    """Mean absolute contribution per column of the export (activity features by
    what they count), with its dimension and kind."""
    values = columns[["mean_abs", "share_raised"]].to_numpy(float)
    rows = [
        (
            column,
            DIMENSION_LABELS[dimension],
            kind,
            round(mean_abs, 3),
            f"{share:.0%}",
        )
        for column, dimension, kind, (mean_abs, share) in zip(
            columns["column"],
            columns["dimension"],
            columns["kind"],
            values,
            strict=True,
        )
    ]
    return _section(
        "columns",
        "Importance per column",
        "<p>The same contributions per column of the export, in its own names "
        "(activity features by what they count), largest first.</p>",
        _figure(
            "column-chart",
            column_chart(columns),
            f"The {min(len(columns), MAX_CHART_COLUMNS)} columns that moved scores "
            "most: green raised, red lowered.",
        ),
        _table(
            ["column", "dimension", "kind", "mean |contribution|", "leads it raised"],
            rows,
        ),
    )


def answers_section(by_answer: pd.DataFrame) -> str:
    """Mean contribution of each MEDDIC column per recorded answer."""
    if by_answer.empty:
        body = (
            '<p class="muted">No column of this export is mapped to a MEDDIC '
            "dimension as a recorded answer (yes / no, a flag or a category; "
            "source.dimensions and source.types in params.yaml).</p>"
        )
    else:
        rows = [
            (
                column,
                DIMENSION_LABELS[dimension],
                answer,
                int(leads),
                f"{round(mean, 2) or 0.0:+.2f}",
            )
            for column, dimension, answer, leads, mean in by_answer[
                ["column", "dimension", "answer", "leads", "mean_contribution"]
            ].to_numpy(object)
        ]
        header = ["column", "dimension", "recorded answer", "leads"]
        body = _table([*header, "mean contribution"], rows)
    return _section(
        "answers",
        "Contribution by recorded answer",
        "<p>For each column mapped to a MEDDIC dimension, the mean contribution of "
        "that column to the test window's scores per answer recorded; "
        f"<b>{NOT_KNOWN}</b> is a blank, null or placeholder answer. Which way an "
        "answer moves the score, in log-odds.</p>",
        body,
    )


def examples_section(examples: pd.DataFrame, id_column: str) -> str:
    """Five test-window leads with score, band, outcome, reasons and next question."""
    rows = [
        (
            lead["deal_id"],
            lead["why"],
            f"{lead['probability']:.0%} ({lead['band']})",
            "yes" if lead["bant_qualified"] else "no",
            "won" if lead["won"] == 1 else "lost",
            lead["top_reasons"] or "-",
            lead["next_question"] or "nothing left to ask",
        )
        for _, lead in examples.iterrows()
    ]
    return _section(
        "examples",
        "Example leads",
        "<p>Leads of the test window as the scorer explains them: <b>+</b> raised "
        "the score, <b>-</b> lowered it, <b>?</b> the column is not yet known. "
        "The outcome is what happened later.</p>",
        _table(
            [
                id_column,
                "why shown",
                "probability (band)",
                "BANT qualified",
                "outcome",
                "top reasons",
                "next question",
            ],
            rows,
        ),
    )


def _window_table(summary: dict[str, Any], setting: Setting) -> str:
    header = ["window", "deals", "won", "win rate"]
    method = summary["method"]
    if method == "time":
        header += ["created from", "created to"]
    elif method == "order":
        header += [f"first {setting.order_column}", f"last {setting.order_column}"]
    rows = [
        (
            w["window"],
            w["deals"],
            w["won"],
            f"{w['win_rate']:.1%}",
            *([w["from"], w["to"]] if method != "random" else []),
        )
        for w in summary["windows"]
    ]
    return _table(header, rows)


def data_section(summary: dict[str, Any], setting: Setting) -> str:
    """The source, rows, win rate, the windows and how they were cut, rejects."""
    rejects = summary["rejects"]
    rejected = ", ".join(f"{n:,} {t}" for t, n in sorted(rejects.items())) or "none"
    refused = summary["scorer_refused"]
    split = SPLIT_WORDS[summary["method"]].format(
        created=setting.created_column, order=setting.order_column
    )
    return _section(
        "data",
        "Data summary",
        f"<p>Source: <b>{_esc(setting.source)}</b>, one row per lead keyed by "
        f"{_esc(setting.id_column)}.</p>",
        f"<p>{summary['deals']:,} valid deals: {summary['closed']:,} closed "
        f"(win rate {summary['win_rate_closed']:.1%}) and {summary['open']:,} open. "
        f"Rows rejected by the data contract: <b>{sum(rejects.values()):,}</b> "
        f"({rejected}), each with its reason in the rejects file.</p>",
        f"<p>Test deals the exported scorer refused: <b>{refused:,}</b>.</p>",
        f"<p>{_esc(split)}</p>",
        _window_table(summary, setting),
    )


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value) or "none"
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    return str(value)


def _mapping_rows(mapping: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(str(key), _plain(value)) for key, value in mapping.items()]


def _mapping_table(mapping: Mapping[str, Any]) -> str:
    """A mapping as a table: one column per inner key when every value is a mapping
    (e.g. {name: {champion, candidate, delta}}), else name and value."""
    if not mapping:
        return '<p class="muted">None differ.</p>'
    if all(isinstance(v, Mapping) for v in mapping.values()):
        columns = list(dict.fromkeys(k for v in mapping.values() for k in v))
        rows = [
            (str(name), *(_plain(inner.get(c, "")) for c in columns))
            for name, inner in mapping.items()
        ]
        return _table(["name", *columns], rows)
    return _table(["name", "value"], _mapping_rows(mapping))


def audit_section(audit: dict[str, Any] | None) -> str:
    """The audit's warnings and checks, or a note that no audit has run."""
    if audit is None:
        return _section(
            "audit",
            "Audit warnings",
            '<p class="muted">No audit run: no audit file (reports/audit.json) '
            "was found.</p>",
        )
    warnings = audit.get("warnings", [])
    items = "".join(f'<li class="warning">{_esc(_plain(w))}</li>' for w in warnings)
    listed = f"<ul>{items}</ul>" if warnings else '<p class="ok">No warnings.</p>'
    rows = []
    for key, label in AUDIT_FIELDS.items():
        try:
            rows.append((label, _plain(_lookup(audit, key))))
        except KeyError:
            continue
    return _section(
        "audit",
        "Audit warnings",
        f"<p>{len(warnings)} warning(s).</p>",
        listed,
        _table(["check", "result"], rows) if rows else "",
    )


def champion_section(champion: dict[str, Any] | None) -> str:
    """What changed against the registered champion: params, metric deltas."""
    if champion is None:
        body = (
            '<p class="muted">No champion registered yet: nothing to compare with. '
            "`lead-ml promote` sets one.</p>"
        )
    else:
        scalars = {k: v for k, v in champion.items() if not isinstance(v, Mapping)}
        tables = [
            f"<h3>{_esc(key)}</h3>{_mapping_table(value)}"
            for key, value in champion.items()
            if isinstance(value, Mapping)
        ]
        body = (
            _table(["", "value"], _mapping_rows(scalars))
            + "".join(tables)
            + '<p class="muted">Metrics are those each run logged on its own test '
            "window; `lead-ml compare` re-scores both on the same window.</p>"
        )
    return _section("champion", "What changed versus the champion", body)


def render(data: ReportData) -> str:
    """The whole report as one HTML document (no scripts, no external resources)."""
    metrics, setting = data.metrics, data.setting
    base_rate = float(metrics["capacity"]["base_win_rate"])
    sections = [
        headline(metrics, setting),
        curves_section(curve_charts(data.plots), metrics),
        bands_section(data.plots["win_rate_by_band"], base_rate),
        importance_section(data.importance, data.columns),
        columns_section(data.columns),
        answers_section(data.by_answer),
        examples_section(data.examples, setting.id_column),
        data_section(data.summary, setting),
        audit_section(data.audit),
        champion_section(data.champion),
    ]
    if data.monitor is not None:
        sections.append(monitor_section(data.monitor))
    title = f"lead-ml model report: {setting.source}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{_esc(title)}</h1>"
        f'<p class="muted">Model {_esc(data.model_version)}; test window: '
        f"{_esc(window_words(metrics, setting))}.</p>"
        + "".join(sections)
        + "</main></body></html>\n"
    )


def monitor_section(monitor: dict[str, Any]) -> str:
    """What past scores did once their outcomes closed (`lead-ml monitor`): the
    verdict of the retrain rule, win rate by band, calibration by month of scoring,
    score PSI over time."""
    verdict = monitor["verdict"]["decision"]
    style = "warning" if monitor["verdict"]["retrain"] else "ok"
    parts = [
        f'<p class="{style}"><b>Retrain rule: {_esc(verdict)}</b></p>',
        f"<p>{_esc(monitor_headline(monitor))}</p>",
        f'<p class="muted">Each lead is judged by its '
        f"{_esc(monitor['scoring_judged'])}; outcomes closed until "
        f"{_esc(monitor['outcomes_closed_until'] or 'an undated export')}.</p>",
    ]
    for title, frame in monitor_tables(monitor).items():
        rows = frame.astype(str).to_numpy().tolist()
        parts.append(f"<h3>{_esc(title)}</h3>" + _table(list(frame.columns), rows))
    return _section("monitor", "After deployment: what the scores did", *parts)


def run_report(
    params: Params,
    paths: ReportPaths,
    log_to_mlflow: bool = True,
    monitor: Path | None = None,
) -> dict[str, Any]:
    """Write the report and (by default) log it to the scorer's MLflow run;
    with ``monitor`` (`lead-ml monitor`'s JSON), a section on past scores too."""
    data = gather(params, paths)
    if monitor is not None:
        if not monitor.exists():
            raise ReportError(f"{monitor}: not found; run `lead-ml monitor` first")
        result = _read_json(monitor, "the result of `lead-ml monitor`")
        data = replace(data, monitor=result)
    paths.out.parent.mkdir(parents=True, exist_ok=True)
    paths.out.write_text(render(data), encoding="utf-8")
    if log_to_mlflow:
        with tracking.resumed_run(params.tracking.experiment, data.run_id):
            tracking.log_artifacts([paths.out])
    return {
        "out": str(paths.out),
        "run_id": data.run_id,
        "bytes": paths.out.stat().st_size,
        "champion": _champion_status(data.champion),
    }


def _champion_status(champion: dict[str, Any] | None) -> str:
    return "no champion registered" if champion is None else "compared with champion"
