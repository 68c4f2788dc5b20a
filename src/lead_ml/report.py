"""The model report: one self-contained HTML page for revenue ops.

It reads what the pipeline already wrote (``reports/metrics.json``, the plot data in
``reports/plots/``, the features, the exported scorer, the rejects file) and draws
every chart as inline SVG: the page needs no network, no script and no other file.

Sections, in order: the headline (wins the model and the BANT rule put in front of
reps at capacity), ROC and precision-recall curves, calibration, cumulative gains,
win rate by score band, MEDDIC importance (the exported scorer run on the test
window), five example leads with their reasons and next question, a data summary,
audit warnings, and what changed versus the registered champion.

>>> svg = line_chart("Demo", [Series("model", "Model", [0, 1], [0, 1])], "x", "y")
>>> svg.count('class="series"'), svg.startswith("<svg")
(1, True)
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from lead_ml.baseline import BantRule
from lead_ml.config import DIMENSIONS, Params
from lead_ml.explain import EVIDENCE_FIELDS
from lead_ml.model import Split, time_split
from lead_ml.scorer import ID_COLUMN, Scorer, input_columns, load_scorer

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
#: metrics.json keys the report cannot do without (dotted paths).
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
#: The recorded MEDDIC answer behind each MEDDIC dimension (fit and engagement have
#: no single answer).
ANSWER_FIELDS: dict[str, str] = {
    **EVIDENCE_FIELDS,
    "identify_pain": "meddic_pain_type",
}
#: The audit findings shown besides its warnings (`lead-ml audit`'s audit.json).
AUDIT_FIELDS: dict[str, str] = {
    "passed": "passed (no unallowed leakage)",
    "split.method": "split",
    "split.explanation": "why this split",
    "sufficiency.message": "enough data",
    "blocking": "columns refused as leakage",
}
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
}


class ReportError(ValueError):
    """An input of the report is missing or malformed; the message names it."""


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
class ReportData:
    """Everything the page shows, gathered from the pipeline's outputs."""

    metrics: dict[str, Any]
    plots: dict[str, pd.DataFrame]
    importance: pd.DataFrame
    by_answer: pd.DataFrame
    examples: pd.DataFrame
    summary: dict[str, Any]
    audit: dict[str, Any] | None
    champion: dict[str, Any] | None | str
    model_version: str = ""
    run_id: str = ""


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


def run_id_of(record_path: Path) -> str:
    """The MLflow run the exported scorer was trained in (from export.json)."""
    record = _read_json(record_path, "the export record of `lead-ml export`")
    if not isinstance(record.get("run_id"), str):
        raise ReportError(f"{record_path}: no 'run_id'; re-run `lead-ml export`")
    return str(record["run_id"])


# --- the test window through the exported scorer --------------------------------------


def window_leads(
    validated_dir: Path, deal_ids: pd.Series
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Lead rows (the columns a batch job sends) and activities of the given deals."""
    wanted = pd.Index(deal_ids.astype("string"))
    deals = pd.read_parquet(validated_dir / "deals.parquet")
    accounts = pd.read_parquet(validated_dir / "accounts.parquet")
    chosen = deals[deals["deal_id"].isin(wanted)]
    leads = chosen.merge(accounts, on="account_id", how="left")
    activities = pd.read_parquet(
        validated_dir / "activities.parquet",
        filters=[("deal_id", "in", wanted.tolist())],
    )
    return leads.loc[:, list(input_columns())].reset_index(drop=True), activities


def score_window(
    scorer: Scorer, test: pd.DataFrame, validated_dir: Path, params: Params
) -> pd.DataFrame:
    """The test window scored and explained by the exported scorer, one row per deal,
    with its recorded MEDDIC answers, its outcome (``won``) and whether the BANT rule
    qualifies it."""
    leads, activities = window_leads(validated_dir, test[ID_COLUMN])
    # One output row per lead in input order: the recorded answers line up by position.
    scored = scorer.score(leads, activities)
    scored[list(ANSWER_FIELDS.values())] = leads[list(ANSWER_FIELDS.values())]
    rule = BantRule.from_config(params.bant).fit(test)
    known = pd.DataFrame(
        {
            ID_COLUMN: test[ID_COLUMN].to_numpy(),
            "won": test["won"].to_numpy(int),
            "bant_qualified": rule.predict(test).astype(bool),
        }
    )
    return scored.merge(known, on=ID_COLUMN, how="right", validate="one_to_one")


def _contributions(scored: pd.DataFrame) -> pd.DataFrame:
    """Contribution per dimension (columns named by dimension) of the scored rows."""
    columns = [f"contrib_{d}" for d in DIMENSIONS]
    contributions = scored[columns].astype(float).dropna()
    contributions.columns = list(DIMENSIONS)
    return contributions


def meddic_importance(scored: pd.DataFrame) -> pd.DataFrame:
    """Per dimension, in calibrated log-odds: the mean absolute contribution, split
    into the mean part that raised scores (``raised``, >= 0) and lowered them
    (``lowered``, <= 0), and the share of leads it raised; largest first.

    >>> scored = pd.DataFrame({f"contrib_{d}": [0.2, -0.4] for d in DIMENSIONS})
    >>> meddic_importance(scored).loc["champion"].round(3).tolist()
    [0.3, 0.1, -0.2, 0.5]
    """
    contributions = _contributions(scored)
    table = pd.DataFrame(
        {
            "mean_abs": contributions.abs().mean(),
            "raised": contributions.clip(lower=0).mean(),
            "lowered": contributions.clip(upper=0).mean(),
            "share_raised": (contributions > 0).mean(),
        }
    )
    table.index.name = "dimension"
    return table.sort_values("mean_abs", ascending=False, kind="stable")


def contribution_by_answer(scored: pd.DataFrame) -> pd.DataFrame:
    """Mean contribution of each MEDDIC dimension per recorded answer of its field
    (yes / no / unknown; pain by type): which way an answer moves the score.

    >>> scored = pd.DataFrame({f"contrib_{d}": [0.5, -0.3, 0.1] for d in DIMENSIONS})
    >>> scored[list(ANSWER_FIELDS.values())] = "yes"
    >>> scored["meddic_champion"] = ["yes", "no", "no"]
    >>> table = contribution_by_answer(scored)
    >>> table[table["dimension"] == "champion"].to_numpy().tolist()
    [['champion', 'no', 2, -0.1], ['champion', 'yes', 1, 0.5]]
    """
    contributions = _contributions(scored)
    frames = []
    for dimension, column in ANSWER_FIELDS.items():
        answers = scored.loc[contributions.index, column].astype("string")
        grouped = contributions[dimension].groupby(answers.fillna("unknown"))
        frames.append(
            pd.DataFrame(
                {
                    "dimension": dimension,
                    "answer": grouped.mean().index.astype(str),
                    "leads": grouped.size().to_numpy(),
                    "mean_contribution": grouped.mean().round(6).to_numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _nearest(rows: pd.DataFrame, probability: float) -> pd.Series:
    order = (rows["probability"] - probability).abs()
    return rows.loc[order.sort_values(kind="stable").index[0]]


def example_leads(scored: pd.DataFrame, n: int = N_EXAMPLES) -> pd.DataFrame:
    """n leads worth reading: the typical (median) lead of each band A-D, the
    BANT-qualified lead the model ranks lowest, then the best-scored rest."""
    rows = scored[scored["probability"].notna()].sort_values(ID_COLUMN, kind="stable")
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
        if len(chosen) < n and lead[ID_COLUMN] not in chosen:
            chosen[lead[ID_COLUMN]] = pd.concat([lead, pd.Series({"why": why})])
    return pd.DataFrame(list(chosen.values())).reset_index(drop=True)


def _window_summary(name: str, window: pd.DataFrame) -> dict[str, Any]:
    return {
        "window": name,
        "deals": len(window),
        "won": int(window["won"].sum()),
        "win_rate": float(window["won"].astype(float).mean()),
        "from": pd.Timestamp(window["created_at"].min()).date().isoformat(),
        "to": pd.Timestamp(window["created_at"].max()).date().isoformat(),
    }


def data_summary(
    features: pd.DataFrame,
    split: Split,
    rejects: dict[str, int],
    scored: pd.DataFrame,
) -> dict[str, Any]:
    """Rows, closed win rate, the three time windows, rejected rows, refused leads."""
    closed = features["won"].notna()
    return {
        "deals": len(features),
        "closed": int(closed.sum()),
        "open": int((~closed).sum()),
        "win_rate_closed": float(features.loc[closed, "won"].astype(float).mean()),
        "windows": [
            _window_summary(name, window)
            for name, window in (
                ("train", split.train),
                ("validation", split.valid),
                ("test", split.test),
            )
        ],
        "rejects": rejects,
        "scorer_refused": int(scored["probability"].isna().sum()),
    }


def champion_changes(params: Params, run_id: str) -> dict[str, Any] | None | str:
    """What differs between this run and the registered champion: the dict of
    ``lead_ml.compare.champion_changes``, None when no champion is registered, or a
    sentence saying why the comparison is not available."""
    try:
        from lead_ml.compare import champion_changes as changes
    except (ImportError, AttributeError) as error:
        return f"comparison with the champion is not available ({error})"
    result = changes(params, run_id)
    return None if result is None else dict(result)


def gather(params: Params, paths: ReportPaths) -> ReportData:
    """Read every input of the report and score the test window with the scorer."""
    metrics = read_metrics(paths.metrics)
    plots = read_plots(paths.plots)
    run_id = run_id_of(paths.record)
    scorer = load_scorer(paths.scorer)
    features = pd.read_parquet(paths.features)
    split = time_split(features, params.split)
    scored = score_window(scorer, split.test, paths.validated, params)
    return ReportData(
        metrics=metrics,
        plots=plots,
        importance=meddic_importance(scored),
        by_answer=contribution_by_answer(scored),
        examples=example_leads(scored),
        summary=data_summary(features, split, count_rejects(paths.rejects), scored),
        audit=read_audit(paths.audit),
        champion=champion_changes(params, run_id),
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


def _svg(title: str, body: list[str], height: int = HEIGHT) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" aria-label="{_esc(title)}">'
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


def importance_chart(importance: pd.DataFrame) -> str:
    """Per dimension, a diverging bar: green to the right the mean part of its
    contribution that raised scores, red to the left the part that lowered them;
    together they are its mean absolute contribution."""
    row, label_width, centre = 26, 120, 270
    half = min(centre - label_width - 14, WIDTH - centre - 44)
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
    for i, (dimension, (raised, lowered)) in enumerate(
        zip(importance.index, values, strict=True)
    ):
        y, label = MARGIN["top"] + i * row, DIMENSION_LABELS[dimension]
        up, down = (round(abs(v) / top * half, 1) for v in (raised, lowered))
        body += [
            f'<text x="{label_width}" y="{y + 15}" text-anchor="end">'
            f"{_esc(label)}</text>",
            f'<rect class="bar" data-label="{_esc(label)}" data-side="lowered" '
            f'x="{centre - down}" y="{y + 3}" width="{down}" height="{row - 8}" '
            f'fill="{LOWERS}"/>',
            f'<rect class="bar" data-label="{_esc(label)}" data-side="raised" '
            f'x="{centre}" y="{y + 3}" width="{up}" height="{row - 8}" '
            f'fill="{RAISES}"/>',
            f'<text x="{centre + up + 4}" y="{y + 15}">{raised - lowered:.2f}</text>',
        ]
    return _svg("MEDDIC importance", body, height)


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


def headline(metrics: dict[str, Any]) -> str:
    """The first thing revenue ops read: wins at capacity, model against BANT."""
    capacity = metrics["capacity"]
    k, model, bant = capacity["k"], capacity["model_wins"], capacity["bant_wins"]
    low, high = metrics["delta_roc_auc_ci95"]
    more = f"{model / bant:.1f}x as many" if bant else "all of them"
    value = ""
    if "model_pipeline_value" in capacity and "bant_pipeline_value" in capacity:
        model_value = _money(capacity["model_pipeline_value"])
        bant_value = _money(capacity["bant_pipeline_value"])
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
        f"{capacity['base_win_rate']:.1%} for all {metrics['n_test']:,} test deals "
        f"(created {metrics['test_start']} to {metrics['test_end']}).</p>",
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


def _answers(by_answer: pd.DataFrame, dimension: str) -> str:
    rows = by_answer[by_answer["dimension"] == dimension]
    ordered = rows.sort_values("mean_contribution", ascending=False, kind="stable")
    return ", ".join(
        f"{answer} {round(mean, 2) or 0.0:+.2f}"
        for answer, mean in ordered[["answer", "mean_contribution"]].to_numpy()
    )


def importance_section(importance: pd.DataFrame, by_answer: pd.DataFrame) -> str:
    """Mean absolute contribution per MEDDIC dimension (plus fit and engagement),
    its direction, and the mean contribution per recorded answer."""
    values = importance[["mean_abs", "share_raised"]].to_numpy(float)
    rows = [
        (
            DIMENSION_LABELS[d],
            round(mean_abs, 3),
            f"{share:.0%}",
            _answers(by_answer, d) or "no single answer (model's own reading)",
        )
        for d, (mean_abs, share) in zip(importance.index, values, strict=True)
    ]
    return _section(
        "meddic",
        "MEDDIC importance",
        "<p>How much each dimension moved the test window's scores, from the exported "
        "scorer: exact tree contributions summed per dimension, in log-odds (+0.4 "
        "moves a 25% lead to about 33%). Contributions say what raised or lowered a "
        "score, not what caused a win.</p>",
        _figure(
            "importance-chart",
            importance_chart(importance),
            "Mean contribution per dimension: green the part that raised scores, red "
            "the part that lowered them; the number is the mean absolute contribution.",
        ),
        _table(
            [
                "dimension",
                "mean |contribution|",
                "leads it raised",
                "mean contribution by recorded answer",
            ],
            rows,
        ),
    )


def examples_section(examples: pd.DataFrame) -> str:
    """Five test-window leads with score, band, outcome, reasons and next question."""
    rows = [
        (
            lead[ID_COLUMN],
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
        "the score, <b>-</b> lowered it, <b>?</b> the MEDDIC field is not yet known. "
        "The outcome is what happened later.</p>",
        _table(
            [
                "deal",
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


def data_section(summary: dict[str, Any]) -> str:
    """Rows, win rate, the time windows and rejected rows."""
    windows = [
        (w["window"], w["deals"], w["won"], f"{w['win_rate']:.1%}", w["from"], w["to"])
        for w in summary["windows"]
    ]
    rejects = summary["rejects"]
    rejected = ", ".join(f"{n:,} {t}" for t, n in sorted(rejects.items())) or "none"
    refused = summary["scorer_refused"]
    return _section(
        "data",
        "Data summary",
        f"<p>{summary['deals']:,} valid deals: {summary['closed']:,} closed "
        f"(win rate {summary['win_rate_closed']:.1%}) and {summary['open']:,} open. "
        f"Rows rejected by the data contract: <b>{sum(rejects.values()):,}</b> "
        f"({rejected}), each with its reason in the rejects file.</p>",
        f"<p>Test deals the exported scorer refused: <b>{refused:,}</b>.</p>",
        "<p>Closed deals are split by creation date: the model learns from the oldest, "
        "is tuned and calibrated on the next, and is judged on the latest.</p>",
        _table(["window", "deals", "won", "win rate", "from", "to"], windows),
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


def champion_section(champion: dict[str, Any] | None | str) -> str:
    """What changed against the registered champion: params, metric deltas."""
    if isinstance(champion, str):
        body = f'<p class="muted">{_esc(champion)}.</p>'
    elif champion is None:
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
    metrics = data.metrics
    base_rate = float(metrics["capacity"]["base_win_rate"])
    sections = [
        headline(metrics),
        curves_section(curve_charts(data.plots), metrics),
        bands_section(data.plots["win_rate_by_band"], base_rate),
        importance_section(data.importance, data.by_answer),
        examples_section(data.examples),
        data_section(data.summary),
        audit_section(data.audit),
        champion_section(data.champion),
    ]
    title = "lead-ml model report"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{title}</h1>"
        f'<p class="muted">Model {_esc(data.model_version)}, MLflow run '
        f"{_esc(data.run_id)}; test window {_esc(metrics['test_start'])} to "
        f"{_esc(metrics['test_end'])}.</p>"
        + "".join(sections)
        + "</main></body></html>\n"
    )


def run_report(
    params: Params, paths: ReportPaths, log_to_mlflow: bool = True
) -> dict[str, Any]:
    """Write the report and (by default) log it to the scorer's MLflow run."""
    from lead_ml import tracking

    data = gather(params, paths)
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


def _champion_status(champion: dict[str, Any] | None | str) -> str:
    if isinstance(champion, str):
        return champion
    return "no champion registered" if champion is None else "compared with champion"
