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
reps at capacity; with no BANT rule given, against the base rate), bands A to D as
reps see them (the scorer's thresholds, realized win rates, wins against BANT, what
to do: report.guides), segments (win rate, AUC and calibration per region,
industry, lead source, owner...; small ones not judged), ROC and precision-recall
curves, calibration, cumulative gains, win rate by score bin, importance per MEDDIC
dimension (plus fit, engagement and, when the dimension map leaves columns out,
other), importance per column, the mean contribution of each MEDDIC column per
recorded answer, example leads with their reasons and the next questions that
matter, a data summary (time, order or random split), every warning of the audit
and the evaluation with the columns left out, and a verdict against the registered
champion (named v3, its alias and since when) with the params that changed; given
the result of `lead-ml monitor` (``--monitor``), what past scores did once their
outcomes closed.

The charts are the Vega-Lite specs of :mod:`lead_ml.charts`, rendered to inline SVG
by vl-convert; the page scales them and scrolls wide tables inside their card, from
a 360 px phone to a wide screen.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from lead_ml import compare, tracking
from lead_ml.audit import split_method
from lead_ml.baseline import bant_scores
from lead_ml.charts import (
    LOWERS,
    RAISES,
    Curve,
    bar_spec,
    calibration_spec,
    diverging_spec,
    line_spec,
    to_svg,
)
from lead_ml.compare import alias_history, registered_versions, registry_client
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
    CompareError,
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
    "capacity.k",
    "capacity.model_wins",
    "capacity.model_win_rate",
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
#: Keys metrics.json holds when a BANT rule is given (``bant`` is null without).
BANT_METRICS: tuple[str, ...] = (
    "bant.roc_auc",
    "bant.pr_auc",
    "delta_roc_auc",
    "delta_roc_auc_ci95",
    "capacity.bant_wins",
    "capacity.bant_win_rate",
)
N_EXAMPLES = 5
#: Leads shown whose next question moves the probability at least this much.
MIN_QUESTION_MOVE = 0.05
N_QUESTIONS = 3
#: What the page says where params.yaml gives no BANT rule.
NO_RULE = (
    "No BANT rule was given (bant in params.yaml), so the model is compared with "
    "the base rate: leads taken at random."
)
BANDS = ("A", "B", "C", "D")
BAND_COLOURS = {"A": "#1a7f37", "B": "#1f6feb", "C": "#9a6700", "D": "#8c959f"}
#: Words of a column name that make it a segment by default (report.segments).
SEGMENT_WORDS = (
    "region",
    "industry",
    "sector",
    "source",
    "country",
    "office",
    "owner",
    "team",
    "agent",
    "territory",
)
MAX_SEGMENT_COLUMNS = 4
#: A segment is judged with at least this many wins and this many losses.
MIN_SEGMENT_OUTCOMES = 10
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
    currency: str | None = None


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
    #: The validated deals of the window (test order, index 0..n-1), in the
    #: export's own column names: what the segments are read from.
    deals: pd.DataFrame | None = None


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
    #: Bands A-D of the test window (:func:`band_table`) and the scorer's cuts.
    letters: pd.DataFrame = field(default_factory=pd.DataFrame)
    thresholds: dict[str, float] = field(default_factory=dict)
    segments: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: Leads whose next question matters (:func:`question_leads`).
    questions: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: The model as people name it (:func:`model_names`).
    names: dict[str, Any] = field(default_factory=dict)
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


def has_bant(metrics: Mapping[str, Any]) -> bool:
    """Whether metrics.json compares with a BANT rule (``bant`` is null when
    params.yaml gives none).

    >>> has_bant({"bant": None}), has_bant({"bant": {"roc_auc": 0.5}})
    (False, True)
    """
    return metrics.get("bant") is not None


def read_metrics(path: Path) -> dict[str, Any]:
    """metrics.json from `lead-ml evaluate`, checked for every key the report shows
    (the BANT keys only when a rule was given)."""
    metrics = _read_json(path, "the metrics of `lead-ml evaluate`")
    required = (*REQUIRED_METRICS, *(BANT_METRICS if has_bant(metrics) else ()))
    for key in required:
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


def read_plots(plots_dir: Path, bant: bool = True) -> dict[str, pd.DataFrame]:
    """Every plot-data file of `lead-ml evaluate`, by name (see PLOT_COLUMNS); the
    BANT curves only when a rule was given."""
    return {
        name: read_plot_file(plots_dir / f"{name}.csv", columns)
        for name, columns in PLOT_COLUMNS.items()
        if bant or not name.endswith("_bant")
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
        currency=params.report.currency,
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
    qualified = (
        bant_scores(params.bant, params.source, chosen)["bant_qualified"]
        if params.bant is not None
        else pd.Series(False, index=chosen.index)
    )
    scored = pd.concat(
        [
            pd.DataFrame(
                {
                    "deal_id": test["deal_id"].astype("string").to_numpy(),
                    "won": test["won"].to_numpy(int),
                    "bant_qualified": qualified.to_numpy(bool),
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
    window = chosen.reset_index(drop=True)
    return Window(scored, contributions, result.features, scorer.registry, window)


def band_table(scored: pd.DataFrame) -> pd.DataFrame:
    """Per band A-D (in order, every band even when empty): leads, wins, realized
    win rate, and the BANT-qualified leads and wins among them.

    >>> scored = pd.DataFrame({"band": ["A", "A", "D"], "won": [1, 0, 0],
    ...                        "bant_qualified": [True, False, True]})
    >>> band_table(scored)[["band", "leads", "wins", "bant_wins"]].values.tolist()
    [['A', 2, 1, 1], ['B', 0, 0, 0], ['C', 0, 0, 0], ['D', 1, 0, 0]]
    """
    rows = scored[scored["band"].notna()]
    won = rows["won"].astype(int)
    bant = rows["bant_qualified"].astype(bool)
    grouped = pd.DataFrame(
        {
            "leads": rows.groupby("band").size(),
            "wins": won.groupby(rows["band"]).sum(),
            "bant_leads": bant.groupby(rows["band"]).sum(),
            "bant_wins": (won * bant).groupby(rows["band"]).sum(),
        }
    ).reindex(list(BANDS), fill_value=0)
    table = grouped.astype(int).rename_axis("band").reset_index()
    table["win_rate"] = table["wins"] / table["leads"].where(table["leads"] > 0)
    return table


def _segment_name(column: str) -> str:
    return column.lower().replace("_", " ")


def segment_columns(params: Params, deals: pd.DataFrame) -> list[str]:
    """The export columns the page judges the model per value of: report.segments
    as given, else up to MAX_SEGMENT_COLUMNS columns named like a region, industry,
    sector, lead source, country, office, owner, team or agent, holding text with
    2 to 200 values."""
    if params.report.segments is not None:
        return [c for c in params.report.segments if c in deals.columns]
    found = []
    for column in deals.columns:
        words = _segment_name(str(column)).split()
        if not any(w in words for w in SEGMENT_WORDS):
            continue
        values = deals[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_dtype(
            values
        ):
            continue
        if 2 <= values.nunique() <= 200:
            found.append(str(column))
    return found[:MAX_SEGMENT_COLUMNS]


def _segment_row(column: str, name: str, part: pd.DataFrame, min_deals: int) -> dict:
    won = part["won"].to_numpy(int)
    probability = part["probability"].to_numpy(float)
    judged = bool(
        len(part) >= min_deals
        and won.sum() >= MIN_SEGMENT_OUTCOMES
        and (1 - won).sum() >= MIN_SEGMENT_OUTCOMES
    )
    return {
        "column": column,
        "segment": name,
        "deals": len(part),
        "wins": int(won.sum()),
        "win_rate": float(won.mean()),
        "auc": float(roc_auc_score(won, probability)) if judged else float("nan"),
        "mean_predicted": float(probability.mean()),
        "gap": float(won.mean() - probability.mean()),
        "judged": judged,
    }


def segment_table(
    window: Window, columns: Sequence[str], min_deals: int, max_values: int
) -> pd.DataFrame:
    """Per segment column and value (the max_values commonest; the rest share a
    row; blanks are "not recorded"): deals, wins, win rate, ROC AUC, mean
    predicted probability, calibration gap (observed minus predicted), and whether
    it is judged (enough deals, wins and losses)."""
    scored = window.scored[window.scored["probability"].notna()]
    rows = []
    for column in columns:
        assert window.deals is not None
        values = window.deals[column].astype("string").str.strip()
        values = values.mask(values == "").fillna("not recorded")
        common = values.value_counts().index[:max_values]
        rest = values.nunique() - len(common)
        values = values.where(values.isin(common), f"any of {rest:,} other values")
        for name, part in scored.groupby(values.loc[scored.index], sort=False):
            rows.append(_segment_row(column, str(name), part, min_deals))
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    # Per column, the largest segments first and the shared row of the rest last.
    order = table.assign(rest=table["segment"].str.startswith("any of ")).sort_values(
        ["column", "rest", "deals"], ascending=[True, True, False], kind="stable"
    )
    return order.drop(columns="rest").reset_index(drop=True)


def question_moves(scored: pd.DataFrame) -> pd.Series:
    """How much each lead's next question would move its win probability: the
    scorer's ``next_question_gain`` when it gives one, else read from the text
    ("... from 12% to 30%"); 0 where nothing is asked."""
    if "next_question_gain" in scored:
        return scored["next_question_gain"].astype(float).fillna(0.0)
    found = (
        scored["next_question"]
        .fillna("")
        .astype(str)
        .str.extract(r"from (\d+(?:\.\d+)?)% to (\d+(?:\.\d+)?)%")
    )
    moves = (found[1].astype(float) - found[0].astype(float)).abs() / 100
    return moves.fillna(0.0)


def question_leads(
    scored: pd.DataFrame, shown: pd.DataFrame, n: int = N_QUESTIONS
) -> pd.DataFrame:
    """Up to n leads (not among those already shown) whose next question moves the
    probability most, by MIN_QUESTION_MOVE at least."""
    moves = question_moves(scored)
    keep = (moves >= MIN_QUESTION_MOVE) & ~scored["deal_id"].isin(shown["deal_id"])
    chosen = scored[keep].assign(move=moves[keep])
    chosen = chosen.sort_values(["move", "deal_id"], ascending=[False, True])
    picked = chosen.head(n).assign(
        why=[f"its question moves it {m:.0%}" for m in chosen["move"].head(n)]
    )
    return picked.reset_index(drop=True)


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


def _day(milliseconds: int | None) -> str:
    if not milliseconds:
        return "on a date the registry did not keep"
    return datetime.fromtimestamp(milliseconds / 1000, UTC).strftime("%Y-%m-%d")


def model_names(params: Params, run_id: str) -> dict[str, Any]:
    """The exported model as people name it: its registered version (``label``,
    v3), the registered model, the date it was registered, whether it holds the
    champion alias; empty when the registry holds no version of this run."""
    client = registry_client()
    name = params.tracking.registered_model
    try:
        versions = registered_versions(client, name)
    except CompareError:
        return {}
    mine = sorted(v for v, run in versions.items() if run == run_id)
    if not mine:
        return {}
    version = client.get_model_version(name, str(mine[-1]))
    alias = params.tracking.champion_alias
    return {
        "label": f"v{mine[-1]}",
        "registered_model": name,
        "registered": _day(version.creation_timestamp),
        "alias": alias,
        "is_champion": alias in (version.aliases or []),
    }


def champion_changes(
    params: Params, run_id: str, names: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The registered champion against this run: its label (v2), alias, since
    when it holds the alias, the params that differ and both runs' logged metrics
    ({key: {champion, candidate, delta}}); None when no champion is registered."""
    result = compare_changes(params, run_id)
    if result is None:
        return None
    version = int(result["champion_version"])
    moves = [m for m in alias_history(registry_client(), params) if m.after == version]
    return {
        "champion_label": f"v{version}",
        "candidate_label": names.get("label") or "this model",
        "alias": params.tracking.champion_alias,
        "since": moves[-1].date[:10] if moves else "",
        "is_champion": result["champion_run_id"] == run_id,
        "params": result["params"],
        "metrics": result["metrics"],
    }


def versus_champion(
    params: Params,
    champion: Mapping[str, Any],
    scorer: Scorer,
    paths: ReportPaths,
) -> dict[str, Any]:
    """The champion and this model scored on one window, the test split of this
    run's features table, as `lead-ml compare` scores them: the
    :func:`lead_ml.compare.head_to_head` result, or ``{"refused": why}`` when the
    champion cannot score that window (trained on another source's columns)."""
    label, theirs = champion["candidate_label"], champion["champion_label"]
    try:
        window = compare.scoring_window(params, paths.features, paths.validated)
        reference = compare.load_version(
            registry_client(),
            params.tracking.registered_model,
            int(theirs.removeprefix("v")),
        )
        scores = [
            compare.score_window(model, window, name)["probability"].to_numpy(float)
            for model, name in ((scorer, label), (reference, theirs))
        ]
    except CompareError as error:
        return {"refused": str(error)}
    return compare.head_to_head(window, scores[0], scores[1], params)


def gather(params: Params, paths: ReportPaths) -> ReportData:
    """Read every input of the report and score the test window with the scorer."""
    metrics = read_metrics(paths.metrics)
    plots = read_plots(paths.plots, bant=has_bant(metrics))
    scorer = load_scorer(paths.scorer)
    features, split = read_features(paths.features)
    setting = setting_of(params, features, scorer)
    deals = read_deals(paths.validated)
    window = score_window(scorer, split.test, deals, params)
    summary = data_summary(
        features, split, count_rejects(paths.rejects), window.scored, setting.method
    )
    examples = example_leads(window.scored)
    segments = segment_table(
        window,
        segment_columns(
            params, window.deals if window.deals is not None else deals.frame
        ),
        params.report.min_segment_deals,
        params.report.max_segment_values,
    )
    # The store is read once every file checked out: a missing file is named first.
    run_id = run_id_of(paths.record, params.tracking.experiment)
    names = model_names(params, run_id)
    champion = champion_changes(params, run_id, names)
    if champion is not None and not champion["is_champion"]:
        champion["paired"] = versus_champion(params, champion, scorer, paths)
    return ReportData(
        metrics=metrics,
        plots=plots,
        importance=meddic_importance(window.scored, shown_dimensions(scorer.registry)),
        columns=column_importance(window.contributions, scorer.registry),
        by_answer=contribution_by_answer(window),
        examples=examples,
        summary=summary,
        audit=read_audit(paths.audit),
        champion=champion,
        setting=setting,
        model_version=scorer.model_version,
        run_id=run_id,
        letters=band_table(window.scored),
        thresholds=scorer.thresholds,
        segments=segments,
        questions=question_leads(window.scored, examples),
        names=names,
    )


# --- charts (Vega-Lite specs of lead_ml.charts, as inline SVG) ------------------------


def curve_specs(plots: dict[str, pd.DataFrame]) -> dict[str, dict[str, Any]]:
    """Vega-Lite specs of the ROC, precision-recall, calibration and gains charts
    from the plot data (BANT's curves only where it has plot data)."""

    def pair(name: str, x: str, y: str) -> list[Curve]:
        return [
            Curve(label, plots[f"{name}_{key}"][x], plots[f"{name}_{key}"][y])
            for key, label in (("model", "Model"), ("bant", "BANT rule"))
            if f"{name}_{key}" in plots
        ]

    diagonal = Curve("Random", [0, 1], [0, 1], dashed=True)
    base_rate = float(plots["pr_model"]["precision"].iloc[0])
    calibration = plots["calibration"]
    specs = {
        "roc": line_spec(
            "ROC curve",
            [*pair("roc", "fpr", "tpr"), diagonal],
            "false positive rate (share of losses taken)",
            "true positive rate (share of wins found)",
        ),
        "pr": line_spec(
            "Precision-recall curve",
            [
                *pair("pr", "recall", "precision"),
                Curve("Base rate", [0, 1], [base_rate, base_rate], dashed=True),
            ],
            "recall (share of wins found)",
            "precision (win rate of leads taken)",
        ),
        "calibration": calibration_spec(
            calibration["mean_predicted"],
            calibration["observed_rate"],
            "predicted win probability",
            "observed win rate",
        ),
        "gains": line_spec(
            "Cumulative gains",
            [*pair("gains", "share_of_leads", "share_of_wins"), diagonal],
            "share of leads worked, best first",
            "share of all wins found",
        ),
    }
    return specs


def curve_charts(plots: dict[str, pd.DataFrame]) -> dict[str, str]:
    """:func:`curve_specs` rendered to SVG."""
    return {name: to_svg(spec, name) for name, spec in curve_specs(plots).items()}


def decile_chart(bands: pd.DataFrame, base_rate: float) -> str:
    """Win rate per equal-sized score bin (1 the best-scored), in numeric order,
    bars above the base rate in green, below in red."""
    share = 100 / len(bands)
    labels = [
        f"{int(b)} ({'best ' if b == 1 else f'{share * (b - 1):.0f}-'}{share * b:.0f}%)"
        for b in bands["band"]
    ]
    return to_svg(
        bar_spec(
            "Win rate by score bin",
            labels,
            bands["win_rate"].tolist(),
            [RAISES if r >= base_rate else LOWERS for r in bands["win_rate"]],
            [f"{r:.0%}" for r in bands["win_rate"]],
            "win rate in the test window",
            "score bin (share of leads, best first)",
        ),
        "band-chart",
    )


def letter_chart(letters: pd.DataFrame) -> str:
    """Win rate per band A-D, in that order."""
    return to_svg(
        bar_spec(
            "Win rate by band",
            [f"band {b}" for b in letters["band"]],
            letters["win_rate"].fillna(0.0).tolist(),
            [BAND_COLOURS[str(b)] for b in letters["band"]],
            [f"{r:.0%}" if r == r else "no leads" for r in letters["win_rate"]],
            "win rate in the test window",
            "band reps see",
        ),
        "letter-chart",
    )


def dimension_chart(importance: pd.DataFrame) -> str:
    """Raised and lowered parts of the contribution per dimension."""
    labels = [DIMENSION_LABELS[d] for d in importance.index]
    return to_svg(
        diverging_spec(
            "Importance per dimension",
            labels,
            importance["raised"].tolist(),
            importance["lowered"].tolist(),
            "dimension",
        ),
        "importance-chart",
    )


def column_chart(columns: pd.DataFrame) -> str:
    """Raised and lowered parts of the MAX_CHART_COLUMNS most important columns."""
    top = columns.head(MAX_CHART_COLUMNS)
    return to_svg(
        diverging_spec(
            "Importance per column",
            top["column"].tolist(),
            top["raised"].tolist(),
            top["lowered"].tolist(),
            "column of the export",
        ),
        "column-chart",
    )


# --- the page -------------------------------------------------------------------------

#: Responsive from 360 px: charts scale to their card, wide tables scroll inside
#: their own box, long text wraps.
CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328;
background:#f6f8fa;overflow-wrap:break-word}
main{max-width:1040px;margin:0 auto;padding:16px}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:14px 16px;
margin:14px 0;min-width:0}
h1{margin:0 0 4px;font-size:1.6em}h2{margin-top:0}.muted{color:#59636e}
.headline{font-size:1.2em}.big{font-size:1.8em;font-weight:700}
.figures{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,420px),1fr));
gap:16px}
figure{margin:0;min-width:0}figcaption{color:#59636e;font-size:.9em}
figure svg{display:block;width:100%;max-width:620px;height:auto}
.scroll{overflow-x:auto;max-width:100%;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;width:100%;font-size:.92em}
th,td{border-bottom:1px solid #d0d7de;padding:6px 8px;text-align:left;
vertical-align:top}
td.num,th.num{text-align:right;white-space:nowrap}
td.wide{min-width:11em;overflow-wrap:anywhere}
.guides{padding-left:0;list-style:none}.guides li{margin:6px 0}
@media (max-width:600px){main{padding:8px}section{padding:10px 10px}
h1{font-size:1.3em}.headline{font-size:1.05em}.big{font-size:1.4em}}
.warning{color:#9a6700}.ok{color:#1a7f37}.verdict{font-size:1.1em}
.band{display:inline-block;min-width:1.8em;text-align:center;border-radius:4px;
color:#fff;font-weight:700}
"""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _table(
    header: Sequence[str], rows: Sequence[Sequence[object]], wide: Sequence[int] = ()
) -> str:
    """A table in a box that scrolls sideways on a narrow screen; ``wide``: the
    positions of text columns kept readable (reasons, questions)."""

    def cell(position: int, value: object) -> str:
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        shown = f"{value:,}" if isinstance(value, int) and numeric else value
        css = " class=num" if numeric else " class=wide" if position in wide else ""
        return f"<td{css}>{_esc(shown)}</td>"

    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(cell(i, v) for i, v in enumerate(row)) + "</tr>"
        for row in rows
    )
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _section(anchor: str, title: str, *parts: str) -> str:
    return f'<section id="{anchor}"><h2>{_esc(title)}</h2>{"".join(parts)}</section>'


def _figure(anchor: str, svg: str, caption: str) -> str:
    return (
        f'<figure id="{anchor}">{svg}<figcaption>{_esc(caption)}</figcaption></figure>'
    )


def money(value: float, currency: str | None) -> str:
    """An amount with its currency (from params, report.currency) when one is set.

    >>> money(28495800.0, "USD"), money(12.4, None)
    ('USD 28,495,800', '12')
    """
    amount = f"{value:,.0f}"
    return f"{currency} {amount}" if currency else amount


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
    if metrics.get("evaluation") == "rolling_origin":
        start, end = metrics.get("test_start"), metrics.get("test_end")
        when = f", created {start} to {end}" if start else ""
        return (
            f"the later closed deals{when}, each scored out of fold by a model "
            "trained on every deal before it (rolling-origin folds: too few deals "
            "for one test window)"
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


def _value_line(capacity: dict[str, Any], setting: Setting) -> str:
    if not (setting.has_amount and "model_pipeline_value" in capacity):
        return ""
    model_value = money(capacity["model_pipeline_value"], setting.currency)
    other = capacity.get("bant_pipeline_value")
    against = (
        f", {money(other, setting.currency)} with BANT" if other is not None else ""
    )
    return (
        f"<p>Pipeline value of those wins (summed deal amounts): <b>{model_value}"
        f"</b> with the model{against}.</p>"
    )


def headline(metrics: dict[str, Any], setting: Setting) -> str:
    """The first thing revenue ops read: wins at capacity, model against BANT (or,
    with no BANT rule given, against working the same number of leads at random)."""
    capacity = metrics["capacity"]
    k, model = capacity["k"], capacity["model_wins"]
    base = float(capacity["base_win_rate"])
    if has_bant(metrics):
        bant = int(capacity["bant_wins"])
        more = f"{model / bant:.1f}x as many" if bant else "all of them"
        low, high = metrics["delta_roc_auc_ci95"]
        against = (
            f'the BANT rule <span class="big">{bant:,}</span>: <b>{model - bant:+,} '
            f"wins</b> ({more})"
        )
        rates = (
            f"{capacity['model_win_rate']:.1%} with the model, "
            f"{capacity['bant_win_rate']:.1%} with BANT"
        )
        ranking = (
            f"<p>Ranking quality (ROC AUC): model {metrics['model']['roc_auc']:.3f}, "
            f"BANT {metrics['bant']['roc_auc']:.3f}; gain "
            f"{metrics['delta_roc_auc']:+.3f} (95% CI {low:+.3f} to {high:+.3f}, "
            "paired bootstrap).</p>"
        )
    else:
        chance = round(k * base)
        against = (
            f'{k:,} leads taken at random about <span class="big">{chance:,}</span> '
            f"(the base rate): <b>{model - chance:+,} wins</b>"
        )
        rates = f"{capacity['model_win_rate']:.1%} with the model"
        ranking = (
            f"<p>Ranking quality (ROC AUC): model {metrics['model']['roc_auc']:.3f} "
            f"(0.5 is chance). {NO_RULE}</p>"
        )
    return _section(
        "headline",
        "Headline: wins in front of reps",
        f'<p class="headline">If reps work <b>{k:,}</b> leads of the test window, '
        f'the model puts <span class="big">{model:,}</span> wins in front of them, '
        f"{against}.</p>",
        f"<p>Win rate of the leads worked: {rates}, {base:.1%} for all "
        f"{metrics['n_test']:,} test deals: {_esc(window_words(metrics, setting))}."
        "</p>",
        _value_line(capacity, setting),
        ranking,
    )


def curves_section(charts: dict[str, str], metrics: dict[str, Any]) -> str:
    """ROC, precision-recall, calibration and cumulative gains, with captions."""
    model = metrics["model"]
    bant = metrics["bant"] if has_bant(metrics) else None
    versus = f", BANT {bant['roc_auc']:.3f}" if bant else " (no BANT rule given)"
    pr_versus = f", BANT {bant['pr_auc']:.3f}" if bant else ""
    return _section(
        "curves",
        "Ranking: ROC and precision-recall",
        '<div class="figures">',
        _figure(
            "roc",
            charts["roc"],
            f"ROC AUC: model {model['roc_auc']:.3f}{versus}. Higher and further "
            "left is better; the dashed line is a coin flip.",
        ),
        _figure(
            "pr",
            charts["pr"],
            f"PR AUC: model {model['pr_auc']:.3f}{pr_versus}. How many of the leads "
            "taken are wins, as more wins are found.",
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


def _threshold_words(letter: str, thresholds: Mapping[str, float]) -> str:
    if letter == "D":
        return f"below {thresholds['C']:.1%}"
    return f"{thresholds[letter]:.1%} or more"


def bands_section(
    letters: pd.DataFrame,
    thresholds: Mapping[str, float],
    guides: Mapping[str, str],
    bant_given: bool,
) -> str:
    """Bands A-D as reps see them: threshold, leads, realized win rate, wins (and
    the BANT-qualified among them), and what to do with such a lead."""
    rows = []
    records: list[dict[Any, Any]] = letters.to_dict("records")
    for row in records:
        band = str(row["band"])
        rate = f"{row['win_rate']:.1%}" if row["leads"] else "no leads"
        bant = [int(row["bant_leads"]), int(row["bant_wins"])] if bant_given else []
        rows.append(
            (
                band,
                _threshold_words(band, thresholds),
                int(row["leads"]),
                int(row["wins"]),
                rate,
                *bant,
            )
        )
    header = ["band", "win probability", "leads", "wins", "realized win rate"]
    if bant_given:
        header += ["BANT-qualified leads", "wins BANT qualifies"]
    total = letters[["leads", "wins"]].sum()
    bant_words = (
        f" The BANT rule qualifies {int(letters['bant_leads'].sum()):,} of them, with "
        f"{int(letters['bant_wins'].sum()):,} of the {int(total['wins']):,} wins."
        if bant_given
        else f" {NO_RULE}"
    )
    return _section(
        "bands",
        "Bands A to D: what reps see",
        "<p>Each lead gets a band by its win probability (a lead exactly at a "
        "threshold is in that band); the thresholds are the scorer's, set on the "
        "validation window from the shares in params.yaml (<code>bands</code>). "
        f"Realized win rates are those of the {int(total['leads']):,} test-window "
        f"leads.{bant_words}</p>",
        '<div class="figures">',
        _figure(
            "letter-chart",
            letter_chart(letters),
            "Win rate of each band's test-window leads; A should win most.",
        ),
        "</div>",
        _table(header, rows),
        "<h3>What to do with each band (report.guides)</h3>",
        '<ul class="guides">'
        + "".join(
            f'<li><span class="band" style="background:{BAND_COLOURS[b]}">{b}</span> '
            f"{_esc(guides[b])}</li>"
            for b in BANDS
        )
        + "</ul>",
    )


def deciles_section(bands: pd.DataFrame, base_rate: float) -> str:
    """Win rate per equal-sized score bin: the chart and its table."""
    rows = [
        (int(band), int(n), int(wins), f"{rate:.1%}", f"{low:.2f} to {high:.2f}")
        for band, n, wins, rate, low, high in bands[
            ["band", "n", "wins", "win_rate", "min_score", "max_score"]
        ].to_numpy(float)
    ]
    return _section(
        "deciles",
        "Win rate by score bin",
        '<div class="figures">',
        _figure(
            "band-chart",
            decile_chart(bands, base_rate),
            f"Test deals in equal-sized bins by model score, bin 1 the best; green "
            f"bins win more often than the {base_rate:.1%} average.",
        ),
        "</div>",
        _table(["bin", "deals", "wins", "win rate", "probability range"], rows),
    )


def segments_section(segments: pd.DataFrame, min_deals: int) -> str:
    """Win rate, AUC and calibration per segment; small segments not judged."""
    if segments.empty:
        return _section(
            "segments",
            "Segments",
            '<p class="muted">No segment column: the export has no column named '
            "like a region, industry, lead source, owner or team, and "
            "report.segments in params.yaml names none.</p>",
        )
    records: list[dict[Any, Any]] = segments.to_dict("records")
    rows = [
        (
            seg["column"],
            seg["segment"],
            int(seg["deals"]),
            int(seg["wins"]),
            f"{seg['win_rate']:.1%}",
            f"{seg['auc']:.3f}" if seg["judged"] else "not judged",
            f"{seg['mean_predicted']:.1%}",
            f"{seg['gap']:+.1%}" if seg["judged"] else "not judged",
        )
        for seg in records
    ]
    weakest = segments[segments["judged"]].sort_values("auc", kind="stable")
    first = ""
    if len(weakest):
        worst = weakest.iloc[0]
        first = (
            f"<p>Weakest judged segment: <b>{_esc(worst['column'])} = "
            f"{_esc(worst['segment'])}</b>, ROC AUC {worst['auc']:.3f} on "
            f"{int(worst['deals']):,} deals.</p>"
        )
    return _section(
        "segments",
        "Segments: where the model works and where it does not",
        "<p>The test window per value of the export's segment columns "
        "(report.segments). Calibration gap: observed win rate minus mean "
        f"predicted probability. Segments with fewer than {min_deals:,} deals, or "
        "under 10 wins or 10 losses, are shown but <b>not judged</b>.</p>",
        first,
        _table(
            [
                "column",
                "segment",
                "deals",
                "wins",
                "win rate",
                "ROC AUC",
                "mean predicted",
                "calibration gap",
            ],
            rows,
        ),
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
        '<div class="figures">',
        _figure(
            "importance-chart",
            dimension_chart(importance),
            "Mean contribution per dimension: green the part that raised scores, red "
            "the part that lowered them.",
        ),
        "</div>",
        _table(
            ["dimension", "mean |contribution|", "leads it raised", "columns"],
            rows,
            wide=(3,),
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
        '<div class="figures">',
        _figure(
            "column-chart",
            column_chart(columns),
            f"The {min(len(columns), MAX_CHART_COLUMNS)} columns that moved scores "
            "most: green raised, red lowered.",
        ),
        "</div>",
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


def _lead_rows(examples: pd.DataFrame, bant_given: bool) -> list[tuple[Any, ...]]:
    def bant(lead: pd.Series) -> list[str]:
        if not bant_given:
            return []
        return ["yes" if lead["bant_qualified"] else "no"]

    moves = question_moves(examples) if len(examples) else pd.Series(dtype=float)

    def question(position: int, lead: pd.Series) -> str:
        if not lead["next_question"]:
            return "nothing left to ask"
        if moves.iloc[position] < MIN_QUESTION_MOVE:
            return f"no answer moves it {MIN_QUESTION_MOVE:.0%} or more"
        return str(lead["next_question"])

    return [
        (
            lead["deal_id"],
            lead["why"],
            f"{lead['probability']:.0%} ({lead['band']})",
            *bant(lead),
            "won" if lead["won"] == 1 else "lost",
            lead["top_reasons"] or "-",
            question(position, lead),
        )
        for position, (_, lead) in enumerate(examples.iterrows())
    ]


def examples_section(
    examples: pd.DataFrame,
    questions: pd.DataFrame,
    id_column: str,
    bant_given: bool,
) -> str:
    """Example leads with score, band, outcome, reasons and next question; then
    the leads whose next question moves their probability most."""
    header = [id_column, "why shown", "probability (band)"]
    header += ["BANT qualified"] if bant_given else []
    header += ["outcome", "top reasons", "next question"]
    wide = (len(header) - 2, len(header) - 1)
    if questions.empty:
        asked = (
            '<p class="muted">No lead of the test window has an unknown MEDDIC '
            f"answer that would move its probability by {MIN_QUESTION_MOVE:.0%} or "
            "more.</p>"
        )
    else:
        asked = _table(header, _lead_rows(questions, bant_given), wide=wide)
    return _section(
        "examples",
        "Example leads",
        "<p>Leads of the test window as the scorer explains them: <b>+</b> raised "
        "the score, <b>-</b> lowered it, <b>?</b> the column is not yet known. "
        "The outcome is what happened later.</p>",
        _table(header, _lead_rows(examples, bant_given), wide=wide),
        "<h3>Next questions that matter</h3>",
        "<p>Leads whose next question would move the win probability most (by "
        f"{MIN_QUESTION_MOVE:.0%} or more): ask these first.</p>",
        asked,
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


def excluded_columns(audit: dict[str, Any] | None) -> dict[str, str]:
    """The columns the audit left out of the features, with why
    (audit.json ``data.excluded``)."""
    if audit is None:
        return {}
    excluded = audit.get("data", {}).get("excluded") or {}
    return {str(k): _plain(v) for k, v in excluded.items()}


def warning_lines(audited: Sequence[str], evaluated: Sequence[str]) -> list[str]:
    """Every warning once, saying which file gave it (audit.json, metrics.json).

    >>> warning_lines(["23 rows rejected", "x"], ["23 rows rejected"])
    ['23 rows rejected (audit and evaluation)', 'x (audit)']
    """
    given: dict[str, list[str]] = {}
    for where, warnings in (("audit", audited), ("evaluation", evaluated)):
        for warning in warnings:
            given.setdefault(warning, []).append(where)
    return [f"{w} ({' and '.join(dict.fromkeys(by))})" for w, by in given.items()]


def audit_section(audit: dict[str, Any] | None, metrics: dict[str, Any]) -> str:
    """Every warning of the audit and of the evaluation, every excluded column,
    and the audit's checks."""
    evaluated = [str(w) for w in metrics.get("warnings") or []]
    audited = [_plain(w) for w in (audit or {}).get("warnings") or []]
    found = warning_lines(audited, evaluated)
    if audit is None:
        found.append("No audit run: no audit file (reports/audit.json) was found")
    items = "".join(f'<li class="warning">{_esc(w)}</li>' for w in found)
    listed = f"<ul>{items}</ul>" if found else '<p class="ok">No warnings.</p>'
    rows = []
    for key, label in AUDIT_FIELDS.items():
        try:
            rows.append((label, _plain(_lookup(audit or {}, key))))
        except KeyError:
            continue
    excluded = excluded_columns(audit)
    left_out = (
        "<h3>Columns left out of the model</h3>"
        + _table(["column", "why"], sorted(excluded.items()), wide=(1,))
        if excluded
        else '<p class="muted">No column was left out of the model.</p>'
    )
    return _section(
        "audit",
        "Warnings and audit",
        f"<p>{len(audited)} audit warning(s), {len(evaluated)} from the evaluation."
        "</p>",
        listed,
        left_out,
        _table(["check", "result"], rows) if rows else "",
    )


def _verdict(champion: dict[str, Any]) -> str:
    """One line: this model's wins in the top K against the champion's, paired on
    this page's test window with a 95% CI, or as each logged them when the champion
    cannot score this window."""
    mine, theirs = champion["candidate_label"], champion["champion_label"]
    if champion["is_champion"]:
        return f"{mine} is the {champion['alias']}: nothing to compare."
    paired = champion.get("paired") or {}
    if "delta_wins" in paired:
        return _paired_verdict(mine, theirs, paired)
    refused = (
        f"{theirs} could not score this test window ({paired['refused']}). "
        if ("refused" in paired)
        else ""
    )
    metrics = champion["metrics"]
    wins, k = metrics.get("capacity.model_wins"), metrics.get("capacity.k")
    auc = metrics.get("model.roc_auc")
    if wins is None or k is None:
        return refused + f"{mine} and {theirs} logged no wins at capacity to compare."
    delta = int(round(wins["delta"]))
    more = f"{abs(delta):,} {'more' if delta >= 0 else 'fewer'}"
    line = (
        f"{mine} puts {more} wins in the top {int(k['candidate']):,} than {theirs} "
        f"({int(wins['candidate']):,} against {int(wins['champion']):,})"
    )
    if auc is not None:
        line += (
            f"; ROC AUC {auc['candidate']:.3f} against {auc['champion']:.3f} "
            f"({auc['delta']:+.3f})"
        )
    return (
        refused + line + ". Each on its own test window, no CI; `lead-ml compare "
        f"{theirs} {mine}` scores both on one window with a paired 95% CI."
    )


def _paired_verdict(mine: str, theirs: str, paired: dict[str, Any]) -> str:
    """The verdict from both models scored on one window (see :func:`_verdict`).

    >>> text = _paired_verdict("v3", "v2", {
    ...     "deals": 3120, "k": 978, "wins": {"challenger": 700, "reference": 688},
    ...     "delta_wins": 12, "delta_wins_ci95": [-4.0, 29.0],
    ...     "roc_auc": {"challenger": 0.848, "reference": 0.845},
    ...     "delta_roc_auc": 0.003, "delta_roc_auc_ci95": [-0.004, 0.01]})
    >>> print(text[:79])
    v3 puts 12 more wins in the top 978 than v2 (700 against 688; 95% CI -4 to +29)
    >>> text[80:].split(". ")[-1]
    'The CI includes no change: the two are not told apart on this window.'
    >>> "on this page's test window of 3,120 closed deals" in text
    True
    >>> "ROC AUC 0.848 against 0.845 (+0.003, 95% CI -0.004 to +0.010)" in text
    True
    """
    delta, (low, high) = int(paired["delta_wins"]), paired["delta_wins_ci95"]
    wins, auc = paired["wins"], paired["roc_auc"]
    auc_low, auc_high = paired["delta_roc_auc_ci95"]
    more = f"{abs(delta):,} {'more' if delta >= 0 else 'fewer'}"
    if low > 0:
        judged = f"{mine} finds more wins than {theirs} beyond chance."
    elif high < 0:
        judged = f"{mine} finds fewer wins than {theirs} beyond chance."
    else:
        judged = "The CI includes no change: the two are not told apart on this window."
    return (
        f"{mine} puts {more} wins in the top {paired['k']:,} than {theirs} "
        f"({wins['challenger']:,} against {wins['reference']:,}; 95% CI "
        f"{low:+,.0f} to {high:+,.0f}), both scored on this page's test window of "
        f"{paired['deals']:,} closed deals; ROC AUC {auc['challenger']:.3f} against "
        f"{auc['reference']:.3f} ({paired['delta_roc_auc']:+.3f}, 95% CI "
        f"{auc_low:+.3f} to {auc_high:+.3f}). {judged}"
    )


def champion_section(champion: dict[str, Any] | None, alias: str) -> str:
    """Which champion this model was compared with and since when, a verdict line,
    then only the params that changed."""
    if champion is None:
        return _section(
            "champion",
            "Against the champion",
            f'<p class="muted">No {_esc(alias)} registered yet (read from the MLflow '
            "registry when this page was built): nothing to compare with. "
            "`lead-ml promote` sets one.</p>",
        )
    since = champion["since"] or "a date the registry did not keep"
    changed = champion["params"]
    rows = [
        (str(key), _plain(v.get("champion")), _plain(v.get("candidate")))
        for key, v in changed.items()
    ]
    params = (
        _table(["param", champion["champion_label"], champion["candidate_label"]], rows)
        if rows
        else '<p class="muted">No param differs.</p>'
    )
    return _section(
        "champion",
        "Against the champion",
        f'<p class="verdict"><b>{_esc(_verdict(champion))}</b></p>',
        f'<p class="muted">Compared with {_esc(champion["champion_label"])}, the '
        f"{_esc(champion['alias'])} since {_esc(since)}, as the registry held it "
        "when this page was built: after `lead-ml promote` run `lead-ml report` (or "
        "`dvc repro -f report`) to refresh it.</p>",
        "<h3>Params that changed</h3>",
        params,
    )


def model_words(data: ReportData) -> str:
    """The model as people name it: registered version, alias, date."""
    named = data.names
    if not named.get("label"):
        return f"Model {data.model_version}"
    role = f", the {named['alias']}" if named.get("is_champion") else ""
    return (
        f"Model {named['label']} of {named['registered_model']}{role}, registered "
        f"{named['registered']}"
    )


def render(data: ReportData, params: Params) -> str:
    """The whole report as one HTML document (no scripts, no external resources)."""
    metrics, setting = data.metrics, data.setting
    base_rate = float(metrics["capacity"]["base_win_rate"])
    bant_given = has_bant(metrics)
    sections = [
        headline(metrics, setting),
        bands_section(
            data.letters, data.thresholds, params.report.guides.model_dump(), bant_given
        ),
        segments_section(data.segments, params.report.min_segment_deals),
        curves_section(curve_charts(data.plots), metrics),
        deciles_section(data.plots["win_rate_by_band"], base_rate),
        importance_section(data.importance, data.columns),
        columns_section(data.columns),
        answers_section(data.by_answer),
        examples_section(data.examples, data.questions, setting.id_column, bant_given),
        data_section(data.summary, setting),
        audit_section(data.audit, metrics),
        champion_section(data.champion, params.tracking.champion_alias),
    ]
    if data.monitor is not None:
        sections.append(monitor_section(data.monitor))
    title = f"lead-ml model report: {setting.source}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{_esc(title)}</h1>"
        f'<p class="muted">{_esc(model_words(data))}; test window: '
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
    paths.out.write_text(render(data, params), encoding="utf-8")
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
    if champion is None:
        return "no champion registered"
    return f"compared with champion {champion['champion_label']}"
