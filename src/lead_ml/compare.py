"""Compare scorer versions side by side on one test window, and gate promotion.

Every candidate is a registered version of the exported scorer, for any source. It is
loaded from the MLflow model registry and re-scored, by its own contract, from lead
rows as the export holds them (the source's own column names, with its activity log
when it has one) on the same window of closed deals: the newest test split of the
features table, or the days given when the source has created dates. So the
comparison is fair even when the versions were trained on different data or
features. The BANT rule is scored on the same rows; without one (``bant: null``)
the models are compared with the base rate, leads taken in no order, and every
table, the headline and the gate say "base rate". The result is a list of tidy
:class:`Row` records that render as a terminal table, Markdown and CSV. A source
without created dates (X Education is ordered by its Lead Number) has no months:
stability by month says so rather than inventing any.

The promotion gate (``promotion:`` in params.yaml) reads the same numbers:
:func:`promote` moves the registry's champion alias only when every condition holds,
:func:`rollback` moves it to a version of your choice without the gate.

>>> Row("metrics", "ROC AUC", "v2", 0.8123, "number", 0.79, 0.83).text
'0.812 [0.790, 0.830]'
>>> Row("bands", "band A", "v2", 0.4, "rate", note="(40/100)").text
'40.0% (40/100)'
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from lead_ml import tracking
from lead_ml.baseline import bant_scores
from lead_ml.config import Params, PromotionConfig
from lead_ml.evaluate import (
    capacity_view,
    classification_metrics,
    paired_bootstrap_auc_delta,
    paired_bootstrap_wins_delta,
)
from lead_ml.model import split_frames
from lead_ml.scorer import Scorer, load_scorer
from lead_ml.sources import lead_rows, read_deals, source_activities
from lead_ml.vocab import BANDS, CompareError

if TYPE_CHECKING:
    from mlflow import MlflowClient

BANT = "BANT"
#: The label of the comparison when params give no BANT rule (``bant: null``).
BASE_RATE = "base rate"
#: How the headline names what the models are compared with when there is no rule.
NO_RULE_GIVEN = "the base rate (no BANT rule given: leads taken in no order)"
RUN_ID = re.compile(r"[0-9a-f]{32}")
VERSION = re.compile(r"[vV]?(\d+)")
DIFFERS = "What differs"
METRICS = "Metrics (95% CI)"
CAPACITY = "Business view at capacity"
BAND_CONVERSION = "Conversion by band"
MONTHS = "Stability by month (ROC AUC)"
Kind = Literal["number", "delta", "rate", "count", "count_delta", "text"]
#: Why a source without created dates has no stability by month.
NO_MONTHS = (
    "no dated months to judge: the source has no created dates "
    "(source.tables.deals.created), so its deals fall in no calendar month"
)

# --- finding the candidates ---------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A registered scorer version and the MLflow run that trained it."""

    version: int
    run_id: str
    role: str = ""

    @property
    def label(self) -> str:
        """Short name used as a column header: v3."""
        return f"v{self.version}"

    @property
    def title(self) -> str:
        """The label with its role: v3 (champion)."""
        return f"{self.label} ({self.role})" if self.role else self.label


def registry_client() -> MlflowClient:
    """A client of the tracking store in force (MLFLOW_TRACKING_URI or mlflow.db)."""
    return tracking.store_client()


def registered_versions(client: MlflowClient, name: str) -> dict[int, str]:
    """Run id of every registered version of a model; CompareError if there is none."""
    found = {
        int(v.version): str(v.run_id)
        for v in client.search_model_versions(f"name = '{name}'")
    }
    if not found:
        raise CompareError(
            f"no version of registered model {name!r} in {tracking.tracking_uri()}; "
            "run `dvc repro` (its export stage registers one) or set "
            "MLFLOW_TRACKING_URI to the store that holds them"
        )
    return found


def champion_version(client: MlflowClient, params: Params) -> int | None:
    """The version the champion alias points at; None when there is none yet."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(params.tracking.registered_model)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = model.aliases.get(params.tracking.champion_alias)
    return None if version is None else int(version)


def _git(repo: Path, *args: str) -> str | None:
    """Output of a git command in repo, or None when it fails (no git, no repo)."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout


def experiment_record(name: str, repo: Path, record: Path) -> dict[str, Any] | None:
    """The export record a DVC experiment committed; None if no such experiment.

    DVC keeps experiments as git refs ``refs/exps/.../<name>``; the export stage's
    record (git-tracked JSON) in that commit names the scorer it exported.
    """
    refs = _git(repo, "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps")
    commits = [
        line.split()[0]
        for line in (refs or "").splitlines()
        if line.rsplit("/", 1)[-1] == name
    ]
    if not commits:
        return None
    if len(commits) > 1:
        raise CompareError(
            f"{len(commits)} DVC experiments are named {name!r}; pass the model "
            "version instead (`dvc exp show` lists them)"
        )
    text = _git(repo, "show", f"{commits[0]}:{record.as_posix()}")
    if text is None:
        raise CompareError(
            f"DVC experiment {name!r} has no {record}: it did not reach the export "
            "stage, so it registered no scorer"
        )
    try:
        found = json.loads(text)
    except ValueError:
        found = None
    if not isinstance(found, dict):
        raise CompareError(f"DVC experiment {name!r}: {record} is not a JSON object")
    return found


def _elsewhere(name: str, claim: str) -> CompareError:
    """The refusal when the registry holds no version of an experiment's model."""
    return CompareError(
        f"DVC experiment {name!r} {claim} in {tracking.tracking_uri()}: its runs "
        "went to another tracking store (a queued or --temp experiment run by an "
        "older lead-ml trained in a temporary copy's own mlflow.db), so no version "
        "here is its model; run it again (`dvc exp run`, queued or not) to register "
        "it in this store, or set MLFLOW_TRACKING_URI to the store that holds it"
    )


def experiment_version(
    client: MlflowClient, params: Params, name: str, repo: Path, record: Path
) -> int | None:
    """Version of the scorer a DVC experiment exported, checked against the
    registry; None if no such experiment.

    The experiment's record names the scorer's content version (``model_version``);
    the newest registered version carrying it (tag ``lead_ml.model_version``) is the
    experiment's. A record that names a registry version and its run instead (older
    lead-ml) counts only when that version was registered from that run. Anything
    else is refused (CompareError naming the experiment, the version and the store).
    """
    found = experiment_record(name, repo, record)
    if found is None:
        return None
    model = params.tracking.registered_model
    if isinstance(found.get("model_version"), str):
        content = found["model_version"]
        matching = [
            int(v.version)
            for v in client.search_model_versions(f"name = '{model}'")
            if v.tags.get(tracking.SCORER_TAG) == content
        ]
        if not matching:
            raise _elsewhere(
                name, f"exported {content}, but no version of {model} holds it"
            )
        return max(matching)
    return _checked_legacy(client, model, name, found, record)


def _checked_legacy(
    client: MlflowClient, model: str, name: str, found: dict[str, Any], record: Path
) -> int:
    """The version an older record names, when its run is the record's run."""
    from mlflow.exceptions import MlflowException

    version, run_id = found.get("registered_version"), found.get("run_id")
    if not isinstance(version, int) or not isinstance(run_id, str):
        raise CompareError(
            f"DVC experiment {name!r}: {record} names no model_version (nor a "
            "registered_version with its run_id), so its model cannot be told from "
            "another; run the experiment again with this lead-ml"
        )
    try:
        registered = client.get_model_version(model, str(version))
    except MlflowException:
        raise _elsewhere(name, f"names v{version} of {model}, not registered") from None
    if registered.run_id != run_id:
        raise _elsewhere(
            name,
            f"names v{version} of {model} from run {run_id}, but v{version} was "
            f"registered from run {registered.run_id}",
        )
    return version


def _version_of(
    client: MlflowClient,
    reference: str,
    versions: dict[int, str],
    champion: int | None,
    params: Params,
    repo: Path,
    record: Path,
) -> int:
    """The version number a reference names (see :func:`resolve` for the forms)."""
    if reference == "latest":
        return max(versions)
    if reference.lstrip("@") == params.tracking.champion_alias:
        if champion is None:
            raise CompareError(
                f"no model has the {params.tracking.champion_alias!r} alias yet; "
                "`lead-ml promote` sets it"
            )
        return champion
    if match := VERSION.fullmatch(reference):
        return int(match.group(1))
    if RUN_ID.fullmatch(reference):
        matching = [v for v, run in versions.items() if run == reference]
        if not matching:
            raise CompareError(
                f"run {reference} registered no scorer version; `lead-ml export` "
                "registers one"
            )
        return max(matching)
    found = experiment_version(client, params, reference, repo, record)
    if found is None:
        raise CompareError(
            f"{reference!r} is not a model version (v3 or 3), 'latest', "
            f"{params.tracking.champion_alias!r}, an MLflow run id or a DVC "
            f"experiment name; registered versions: {_listing(versions)}"
        )
    return found


def _listing(versions: dict[int, str]) -> str:
    return ", ".join(f"v{v}" for v in sorted(versions))


def resolve(
    client: MlflowClient,
    params: Params,
    reference: str,
    repo: Path = Path("."),
    record: Path = Path("reports/export.json"),
) -> Candidate:
    """The registered version a reference names.

    A reference is a version (``v3`` or ``3``), ``latest``, the champion alias
    (``champion`` or ``@champion``), an MLflow run id (its newest version) or the name
    of a DVC experiment in ``repo`` (the version its export ``record`` names).
    """
    name = params.tracking.registered_model
    versions = registered_versions(client, name)
    champion = champion_version(client, params)
    text = reference.strip()
    version = _version_of(client, text, versions, champion, params, repo, record)
    if version not in versions:
        raise CompareError(
            f"{name} has no version {version} (from {text!r}); registered versions: "
            f"{_listing(versions)}"
        )
    role = (
        "champion"
        if version == champion
        else "latest"
        if version == max(versions)
        else ""
    )
    return Candidate(version, versions[version], role)


def default_candidates(client: MlflowClient, params: Params) -> list[Candidate]:
    """The champion (if any) then the latest version, when they differ."""
    latest = resolve(client, params, "latest")
    champion = champion_version(client, params)
    if champion is None or champion == latest.version:
        return [latest]
    return [resolve(client, params, str(champion)), latest]


# --- the window and the scores ------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The closed deals every approach is scored on, oldest first.

    ``leads`` are the deals as the export holds them (the source's own column names,
    :func:`lead_ml.sources.lead_rows`), ``activities`` their activity log likewise
    (None when the source has none). ``amount`` is None when the source has no
    amount, ``month`` (each deal's created month, ``YYYY-MM``) None when it has no
    created dates. ``span`` says which deals in words: ``created 2024-01-01 to
    2024-06-30``, ``with Lead Number 7001 to 9240``, or nothing for a random split.
    ``rule_given`` is False when params give no BANT rule: ``bant_points`` are then
    0 everywhere, the base rate, and :attr:`baseline` labels it so.
    """

    leads: pd.DataFrame
    activities: pd.DataFrame | None
    won: np.ndarray
    amount: np.ndarray | None
    month: np.ndarray | None
    bant_points: np.ndarray
    bant_qualified: np.ndarray
    source: str
    span: str = ""
    rule_given: bool = True

    @property
    def baseline(self) -> str:
        """The label of what models are compared with: BANT, or the base rate."""
        return BANT if self.rule_given else BASE_RATE

    def describe(self) -> str:
        """One line: how many deals, which ones, and where the window came from."""
        span = f" {self.span}" if self.span else ""
        return (
            f"{len(self.won):,} closed deals ({int(self.won.sum()):,} won){span} "
            f"({self.source})"
        )


def _read(path: Path, hint: str) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; {hint}")
    return pd.read_parquet(path)


def _in_order(deals: pd.DataFrame) -> pd.DataFrame:
    """Deals in time order, as :func:`lead_ml.model.split_frames` orders a window."""
    return deals.sort_values(
        ["created_at", "order", "deal_id"], kind="stable", na_position="last"
    )


def _test_deals(deals: pd.DataFrame, features_path: Path) -> pd.DataFrame:
    """The validated deals of the newest test split of the features table."""
    features = _read(features_path, "run `dvc repro` first or pass --features")
    if "split" not in features.columns:
        raise CompareError(
            f"{features_path}: no split column (built by an older lead-ml); run "
            "`dvc repro` to rebuild it"
        )
    try:
        test = split_frames(features).test
    except ValueError as error:
        raise CompareError(f"{features_path}: {error}") from None
    positions = pd.Index(deals["deal_id"]).get_indexer(test["deal_id"])
    unknown = test["deal_id"].to_numpy()[positions < 0]
    if len(unknown):
        raise CompareError(
            f"{features_path}: {len(unknown):,} deals of its test split are not among "
            f"the validated deals (first: {unknown[0]!r}); the two come from "
            "different runs: run `dvc repro`"
        )
    return deals.iloc[positions]


def _dated_deals(
    deals: pd.DataFrame,
    params: Params,
    features_path: Path,
    start: date | None,
    end: date | None,
) -> pd.DataFrame:
    """The closed deals created from start to end (days, both included)."""
    if params.source.tables.deals.created is None:
        raise CompareError(
            f"--start/--end: {params.source.name} has no created dates "
            "(source.tables.deals.created is not set), so deals cannot be picked by "
            f"day; the window is the test split of {features_path}: drop --start "
            "and --end"
        )
    closed = deals[deals["outcome"].isin(["won", "lost"]).to_numpy(dtype=bool)]
    day = closed["created_at"].dt.normalize()
    keep = pd.Series(True, index=closed.index)
    if start is not None:
        keep &= day >= pd.Timestamp(start)
    if end is not None:
        keep &= day <= pd.Timestamp(end)
    return _in_order(closed[keep.to_numpy(dtype=bool)])


def _value(value: Any) -> str:
    """An order value as a span shows it: a day, a whole number, or a number."""
    if isinstance(value, pd.Timestamp | np.datetime64):
        return pd.Timestamp(value).date().isoformat()
    number = float(value)
    return str(int(number)) if number.is_integer() else f"{number:g}"


def _span(deals: pd.DataFrame, params: Params) -> str:
    """Which deals, in words: created days, else the order column's range."""
    created, order = deals["created_at"], deals["order"]
    if params.source.tables.deals.created is not None and created.notna().all():
        first, last = (_value(d) for d in (created.min(), created.max()))
        return f"created {first} to {last}"
    name = params.source.tables.deals.order
    if name is not None and order.notna().all():
        return f"with {name} {_value(order.min())} to {_value(order.max())}"
    return ""


def scoring_window(
    params: Params,
    features_path: Path,
    validated_dir: Path,
    start: date | None = None,
    end: date | None = None,
) -> Window:
    """Closed deals of the newest test split (the ``split`` column of the features
    table), or those created from start to end (days; only when the source has
    created dates).

    Lead rows are built from the validated deals as the export holds them, with the
    activity log when the source has one; the BANT rule of params.yaml is scored on
    the same rows.
    """
    validated = read_deals(validated_dir)
    deals = validated.frame
    if start is None and end is None:
        chosen = _test_deals(deals, features_path)
        source = f"the test split of {features_path}"
    else:
        chosen = _dated_deals(deals, params, features_path, start, end)
        source = f"--start {start or 'first deal'} --end {end or 'last deal'}"
    won = chosen["won"].to_numpy(dtype=float, na_value=np.nan)
    if won.size == 0 or np.isnan(won).any() or won.min() == won.max():
        raise CompareError(
            f"the window ({source}) holds {won.size} closed deals, "
            f"{int(np.nansum(won))} won; it needs both won and lost deals: widen "
            "--start/--end"
        )
    chosen = chosen.reset_index(drop=True)
    activities = None
    if validated.activities is not None:
        log = validated.activities
        log = log[log["deal_id"].isin(chosen["deal_id"]).to_numpy(dtype=bool)]
        activities = source_activities(log.reset_index(drop=True), params.source)
    bant = bant_scores(params.bant, params.source, chosen)
    dated = params.source.tables.deals.created is not None
    return Window(
        leads=lead_rows(chosen, params.source),
        activities=activities,
        won=won.astype(int),
        amount=(
            chosen["amount"].to_numpy(dtype=float, na_value=np.nan)
            if params.source.tables.deals.amount is not None
            else None
        ),
        month=(
            chosen["created_at"].dt.strftime("%Y-%m").to_numpy(str) if dated else None
        ),
        bant_points=bant["bant_points"].to_numpy(float),
        bant_qualified=bant["bant_qualified"].to_numpy(bool),
        source=source,
        span=_span(chosen, params),
        rule_given=params.bant is not None,
    )


def load_version(client: MlflowClient, name: str, version: int) -> Scorer:
    """Download a registered scorer version and load its checked bundle."""
    import mlflow

    # The bundle is all a scorer needs; loading through mlflow.pyfunc would also put
    # the model's own copy of lead_ml on sys.path inside this process. The client
    # finds where the version is stored: a models:/ URI would be looked up in the
    # registry MLflow last set for the process, not necessarily this one.
    location = client.get_model_version_download_uri(name, str(version))
    with tempfile.TemporaryDirectory() as folder:
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=folder, tracking_uri=client.tracking_uri
        )
        return load_scorer(path)


def _window_activities(
    scorer: Scorer, window: Window, label: str
) -> pd.DataFrame | None:
    """The activity log a version reads (None when it counts no activity)."""
    columns = scorer.activity_columns
    if columns is None:
        return None
    if window.activities is None:
        raise CompareError(
            f"{label} counts activities, but the source has no activity log "
            "(source.tables.activities), so it would score every lead as having "
            "none; compare it on the source it was trained on"
        )
    missing = [c for c in columns if c not in window.activities.columns]
    if missing:
        raise CompareError(
            f"{label} reads activity column(s) {', '.join(missing)}, which the "
            f"source's activity log lacks (it has "
            f"{', '.join(window.activities.columns)}); compare it on the source it "
            "was trained on"
        )
    return window.activities


def score_window(scorer: Scorer, window: Window, label: str) -> pd.DataFrame:
    """Probability and band of every lead in the window (input order), scored by a
    version (``label``, for messages) with its own contract and activity columns.

    A version whose input columns the window lacks, or that rejects a lead, would
    make the comparison unfair, so either is a CompareError.
    """
    missing = scorer.contract.missing_columns(window.leads.columns)
    if missing:
        raise CompareError(
            f"{label} reads column(s) {', '.join(missing)}, which the window's lead "
            "rows lack (the source section no longer keeps them); compare it on the "
            "source it was trained on"
        )
    activities = _window_activities(scorer, window, label)
    scored = scorer.score(window.leads, activities, explain_reasons=False)
    rejected = scored[scored["reject_reason"].notna()]
    if len(rejected):
        first = rejected.iloc[0]
        raise CompareError(
            f"{label} ({scorer.model_version}) rejected {len(rejected)} of the "
            f"{len(scored)} leads in the window ({scorer.id_column} "
            f"{first[scorer.id_column]}: {first['reject_reason']}); compare on a "
            "window it can score"
        )
    return scored[[scorer.id_column, "probability", "band"]]


# --- the comparison -----------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One value of the comparison: what, for whom, the value and its 95% CI."""

    section: str
    measure: str
    approach: str
    value: float | str
    kind: Kind = "text"
    low: float | None = None
    high: float | None = None
    note: str = ""

    @property
    def text(self) -> str:
        """The value as shown in tables, CI in brackets and the note after it."""
        shown = _format(self.value, self.kind)
        if self.low is not None and self.high is not None:
            shown += (
                f" [{_format(self.low, self.kind)}, {_format(self.high, self.kind)}]"
            )
        return f"{shown} {self.note}".strip()


def _format(value: float | str, kind: Kind) -> str:
    if isinstance(value, str):
        return value
    if math.isnan(value):
        return "n/a"
    formats = {
        "number": "{:.3f}",
        "delta": "{:+.3f}",
        "rate": "{:.1%}",
        "count": "{:,.0f}",
        "count_delta": "{:+,.0f}",
        "text": "{}",
    }
    return formats[kind].format(value)


@dataclass
class Comparison:
    """Everything `lead-ml compare` shows, and the numbers the promotion gate reads.

    ``reference`` is the model deltas are taken against (the champion, or the first
    model named); ``deltas`` maps (approach, other) to a paired bootstrap result;
    ``wins`` holds each approach's wins in the top ``k`` leads; ``months`` has one
    row per month with deals, a ``judged`` flag and one ROC AUC column per approach.
    """

    candidates: list[Candidate]
    reference: str | None
    window: Window
    k: int
    rows: list[Row] = field(default_factory=list)
    deltas: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    wins: dict[str, int] = field(default_factory=dict)
    months: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def challengers(self) -> list[str]:
        """Labels of the models compared against the reference."""
        return [c.label for c in self.candidates if c.label != self.reference]


def capacity_k(window: Window, capacity: int | None) -> int:
    """Leads reps can work: the given capacity, else as many as BANT qualifies, else
    (no rule given, or none qualified) as many as won, as `lead-ml evaluate` takes.

    >>> window = Window(pd.DataFrame(), None, np.array([1, 0, 1]), None, None,
    ...                 np.zeros(3), np.array([True, False, True]), "example")
    >>> capacity_k(window, None), capacity_k(window, 1)
    (2, 1)
    """
    k = capacity or max(1, int(window.bant_qualified.sum()) or int(window.won.sum()))
    if k > len(window.won):
        raise CompareError(
            f"capacity {k} exceeds the {len(window.won)} leads in the window; "
            "lower --capacity (or evaluate.capacity) or widen the window"
        )
    return k


def _auc_ci(won: np.ndarray, score: np.ndarray, params: Params) -> list[float]:
    # A constant score has ROC AUC exactly 0.5 on every resample, so the paired delta
    # against one, shifted by 0.5, is the score's own bootstrap interval.
    zeros = np.zeros(won.size)
    result = paired_bootstrap_auc_delta(
        won, score, zeros, params.evaluate.n_bootstrap, params.seed
    )
    return [bound + 0.5 for bound in result["delta_roc_auc_ci95"]]


def _metric_rows(
    comparison: Comparison, scores: dict[str, np.ndarray], params: Params
) -> list[Row]:
    """ROC/PR AUC (CI) of every approach, probability quality and AUC deltas (CI)."""
    window, rows = comparison.window, []
    for label, score in scores.items():
        low, high = _auc_ci(window.won, score, params)
        auc = float(roc_auc_score(window.won, score))
        rows.append(Row(METRICS, "ROC AUC", label, auc, "number", low, high))
        pr_auc = float(average_precision_score(window.won, score))
        rows.append(Row(METRICS, "PR AUC", label, pr_auc, "number"))
    for label in (c.label for c in comparison.candidates):
        quality = classification_metrics(
            window.won, scores[label], params.evaluate.calibration_bins
        )
        for key, measure in (("brier", "Brier score"), ("ece", "calibration (ECE)")):
            rows.append(Row(METRICS, measure, label, quality[key], "number"))
    for (label, other), delta in comparison.deltas.items():
        low, high = delta["delta_roc_auc_ci95"]
        value = delta["delta_roc_auc"]
        measure = f"ROC AUC gain vs {other}"
        rows.append(Row(METRICS, measure, label, value, "delta", low, high))
    return rows


def _pairs(comparison: Comparison) -> list[tuple[str, str]]:
    """(model, other) pairs to compare: challengers vs the reference, all vs BANT
    (or the base rate when no rule is given)."""
    pairs = [(c, comparison.reference) for c in comparison.challengers]
    models = [c.label for c in comparison.candidates]
    baseline = comparison.window.baseline
    return [(a, b) for a, b in pairs if b is not None] + [(m, baseline) for m in models]


def _capacity_rows(
    comparison: Comparison, scores: dict[str, np.ndarray], seed: int
) -> list[Row]:
    """Wins, win rate and pipeline value (when the source has an amount) each
    approach puts in the top k leads."""
    window, k = comparison.window, comparison.k
    views = {}
    for label in (c.label for c in comparison.candidates):
        view = capacity_view(
            window.won, scores[label], window.bant_points, k, seed, window.amount
        )
        views[label] = {key[6:]: v for key, v in view.items() if key[:6] == "model_"}
    # Every call ranks BANT the same way (one seeded tiebreak), so any view will do;
    # without a rule (0 points everywhere) that tiebreak is a list in no order.
    views[window.baseline] = {
        key[5:]: v for key, v in view.items() if key[:5] == "bant_"
    }
    section = f"{CAPACITY}: top {k:,} of {len(window.won):,} leads"
    rows = []
    for label, numbers in views.items():
        comparison.wins[label] = int(numbers["wins"])
        rows += [
            Row(section, "wins", label, numbers["wins"], "count"),
            Row(section, "win rate", label, numbers["win_rate"], "rate"),
        ]
        if window.amount is not None:
            value = numbers["pipeline_value"]
            rows.append(Row(section, "pipeline value", label, value, "count"))
    for (label, other), delta in comparison.deltas.items():
        low, high = delta["delta_wins_ci95"]
        measure = f"wins gain vs {other}"
        rows.append(
            Row(section, measure, label, delta["delta_wins"], "count_delta", low, high)
        )
    return rows


def _band_rows(comparison: Comparison, bands: dict[str, np.ndarray]) -> list[Row]:
    """Win rate of the leads each model puts in band A, B, C and D."""
    won, rows = comparison.window.won, []
    for label, band in bands.items():
        for name in BANDS:
            chosen = band == name
            n, wins = int(chosen.sum()), int(won[chosen].sum())
            rate = wins / n if n else float("nan")
            note = f"({wins:,}/{n:,})"
            rows.append(
                Row(BAND_CONVERSION, f"band {name}", label, rate, "rate", note=note)
            )
    return rows


def month_table(
    window: Window, scores: dict[str, np.ndarray], min_deals: int
) -> pd.DataFrame:
    """Per month of the window: deals, wins, judged, and each approach's ROC AUC.

    A month is judged when it has at least ``min_deals`` closed deals of both outcomes;
    the ROC AUC of a month with one outcome only is NaN. A window without created
    dates has no months: the table has its columns and no rows.
    """
    columns = ["month", "deals", "won", "judged", *scores]
    if window.month is None:
        return pd.DataFrame(columns=columns)
    records = []
    for month in sorted(set(window.month)):
        rows = window.month == month
        won = window.won[rows]
        both = 0 < won.sum() < won.size
        record: dict[str, Any] = {"month": month, "deals": int(rows.sum())}
        record["won"] = int(won.sum())
        record["judged"] = bool(both and rows.sum() >= min_deals)
        for label, score in scores.items():
            auc = roc_auc_score(won, score[rows]) if both else float("nan")
            record[label] = float(auc)
        records.append(record)
    return pd.DataFrame(records, columns=columns)


def _month_rows(comparison: Comparison) -> list[Row]:
    """AUC per month and approach, and each challenger's lead over the others; for
    a window without created dates, one row saying there is nothing to judge."""
    if comparison.window.month is None:
        return [Row(MONTHS, "months", "note", NO_MONTHS)]
    rows, others = [], [comparison.reference, comparison.window.baseline]
    # Every pair gets its count, "0 of 0" included: no judged month is news too.
    counted = {
        f"{challenger} - {other}": 0
        for challenger in comparison.challengers
        for other in others
        if other is not None
    }
    for month in comparison.months.to_dict("records"):
        note = "" if month["judged"] else "(not judged)"
        rows.append(
            Row(MONTHS, month["month"], "deals", month["deals"], "count", note=note)
        )
        approaches = [c.label for c in comparison.candidates]
        approaches.append(comparison.window.baseline)
        rows += [Row(MONTHS, month["month"], a, month[a], "number") for a in approaches]
        for challenger in comparison.challengers:
            for other in (o for o in others if o is not None):
                column = f"{challenger} - {other}"
                gain = month[challenger] - month[other]
                rows.append(Row(MONTHS, month["month"], column, gain, "delta"))
                if month["judged"]:
                    counted[column] += int(gain > 0)
    judged = int(comparison.months["judged"].sum())
    for column, ahead in counted.items():
        rows.append(Row(MONTHS, "judged months ahead", column, f"{ahead} of {judged}"))
    return rows


def compare_scores(
    candidates: list[Candidate],
    window: Window,
    scored: dict[str, pd.DataFrame],
    params: Params,
    capacity: int | None = None,
) -> Comparison:
    """Compare models' scores on a window with each other and the BANT rule (the
    base rate when params give none, labelled :data:`BASE_RATE`).

    ``scored`` maps each candidate's label to its :func:`score_window` output. The
    first candidate is the reference when there are two or more. Capacity: the one
    given, else ``evaluate.capacity``, else as many leads as BANT qualifies (as the
    evaluate stage counts it).
    """
    reference = candidates[0].label if len(candidates) > 1 else None
    k = capacity_k(window, capacity or params.evaluate.capacity)
    comparison = Comparison(candidates, reference, window, k)
    scores = {
        c.label: scored[c.label]["probability"].to_numpy(float) for c in candidates
    }
    scores[window.baseline] = window.bant_points
    for model, other in _pairs(comparison):
        comparison.deltas[(model, other)] = {
            **paired_bootstrap_auc_delta(
                window.won,
                scores[model],
                scores[other],
                params.evaluate.n_bootstrap,
                params.seed,
            ),
            **paired_bootstrap_wins_delta(
                window.won,
                scores[model],
                scores[other],
                k,
                params.evaluate.n_bootstrap,
                params.seed,
            ),
        }
    comparison.months = month_table(window, scores, params.compare.min_month_deals)
    bands = {c.label: scored[c.label]["band"].to_numpy(str) for c in candidates}
    comparison.rows = [
        *_metric_rows(comparison, scores, params),
        *_capacity_rows(comparison, scores, params.seed),
        *_band_rows(comparison, bands),
        *_month_rows(comparison),
    ]
    return comparison


def head_to_head(
    window: Window,
    challenger: np.ndarray,
    reference: np.ndarray,
    params: Params,
    capacity: int | None = None,
) -> dict[str, Any]:
    """Two models' probabilities on one window, paired: wins each puts in the top
    k (the capacity :func:`compare_scores` takes), ROC AUC each, and the
    challenger's gains with paired bootstrap 95% CIs over the window's leads.

    Keys: deals, k, wins and roc_auc ({challenger, reference}), delta_wins,
    delta_wins_ci95, delta_roc_auc, delta_roc_auc_ci95 (plain numbers, for JSON).
    """
    k = capacity_k(window, capacity or params.evaluate.capacity)
    seed, draws = params.seed, params.evaluate.n_bootstrap
    view = capacity_view(window.won, challenger, reference, k, seed)
    return {
        "deals": len(window.won),
        "k": k,
        "wins": {"challenger": view["model_wins"], "reference": view["bant_wins"]},
        "roc_auc": {
            "challenger": float(roc_auc_score(window.won, challenger)),
            "reference": float(roc_auc_score(window.won, reference)),
        },
        **paired_bootstrap_wins_delta(
            window.won, challenger, reference, k, draws, seed
        ),
        **{
            key: value
            for key, value in paired_bootstrap_auc_delta(
                window.won, challenger, reference, draws, seed
            ).items()
            if key != "n_bootstrap"
        },
    }


def _run_facts(
    client: MlflowClient, candidate: Candidate, scorer: Scorer
) -> dict[str, str]:
    """Params, data and code version, training window and booster of a version."""
    run = client.get_run(candidate.run_id)
    window = scorer.spec["model"]["window"]
    trained = (
        f"{window['train_start']} to {window['valid_end']}"
        if window["train_start"]
        else "(no created dates)"
    )
    return {
        **{f"param {key}": value for key, value in run.data.params.items()},
        "data_version": run.data.tags.get("data_version", "(unset)"),
        "git_commit": run.data.tags.get("git_commit", "(unset)"),
        "trained on": trained,
        "booster": scorer.model_version,
        "MLflow run": candidate.run_id,
    }


def difference_rows(facts: dict[str, dict[str, str]]) -> list[Row]:
    """Only the facts (params, data, code, ...) whose values differ between models.

    >>> rows = difference_rows({"v1": {"lr": "0.1", "seed": "1"},
    ...                         "v2": {"lr": "0.05", "seed": "1"}})
    >>> [(r.measure, r.approach, r.value) for r in rows]
    [('lr', 'v1', '0.1'), ('lr', 'v2', '0.05')]
    """
    if len(facts) < 2:
        return []
    keys = list(dict.fromkeys(key for values in facts.values() for key in values))
    rows = [
        Row(DIFFERS, key, label, values.get(key, "(unset)"))
        for key in keys
        if len({values.get(key, "(unset)") for values in facts.values()}) > 1
        for label, values in facts.items()
    ]
    first = next(iter(facts))
    return rows or [Row(DIFFERS, "(nothing)", first, "same params, data and booster")]


def run_compare(
    params: Params,
    references: list[str],
    features_path: Path,
    validated_dir: Path,
    start: date | None = None,
    end: date | None = None,
    capacity: int | None = None,
    repo: Path = Path("."),
    record: Path = Path("reports/export.json"),
) -> Comparison:
    """Resolve the models named (default: champion and latest), score them and BANT
    (or the base rate without a rule).

    Every model is scored on the same window; see :func:`scoring_window`.
    """
    client = registry_client()
    candidates = (
        [resolve(client, params, ref, repo, record) for ref in references]
        if references
        else default_candidates(client, params)
    )
    _refuse_repeats(references, candidates)
    return compare_candidates(
        client,
        params,
        candidates,
        scoring_window(params, features_path, validated_dir, start, end),
        capacity,
    )


def _refuse_repeats(references: list[str], candidates: list[Candidate]) -> None:
    seen: dict[int, str] = {}
    for reference, candidate in zip(references, candidates, strict=False):
        if candidate.version in seen:
            raise CompareError(
                f"{reference!r} and {seen[candidate.version]!r} both name "
                f"{candidate.label}; name each model once"
            )
        seen[candidate.version] = reference


def compare_candidates(
    client: MlflowClient,
    params: Params,
    candidates: list[Candidate],
    window: Window,
    capacity: int | None = None,
) -> Comparison:
    """Load each candidate from the registry, score the window, compare (see above)."""
    name = params.tracking.registered_model
    scorers = {c.label: load_version(client, name, c.version) for c in candidates}
    scored = {label: score_window(s, window, label) for label, s in scorers.items()}
    comparison = compare_scores(candidates, window, scored, params, capacity)
    facts = {c.label: _run_facts(client, c, scorers[c.label]) for c in candidates}
    comparison.rows = difference_rows(facts) + comparison.rows
    return comparison


# --- rendering ----------------------------------------------------------------------


def sections(comparison: Comparison) -> dict[str, pd.DataFrame]:
    """One table of text per section: measures down, approaches across."""
    titles = {c.label: c.title for c in comparison.candidates}
    tables = {}
    for section in dict.fromkeys(r.section for r in comparison.rows):
        rows = [r for r in comparison.rows if r.section == section]
        measures = list(dict.fromkeys(r.measure for r in rows))
        approaches = list(dict.fromkeys(r.approach for r in rows))
        table = pd.DataFrame("", index=measures, columns=approaches, dtype=object)
        for row in rows:
            table.loc[row.measure, row.approach] = row.text
        table = table.rename(columns=titles)
        tables[section] = table.rename_axis("").reset_index()
    return tables


def headline(comparison: Comparison) -> str:
    """What was compared, on which window, at which capacity."""
    models = ", ".join(c.title for c in comparison.candidates)
    versus = "the BANT rule" if comparison.window.rule_given else NO_RULE_GIVEN
    return (
        f"{models} and {versus} on {comparison.window.describe()}; "
        f"capacity K = {comparison.k:,} leads"
    )


def _markdown_table(table: pd.DataFrame) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    header = [str(c) for c in table.columns]
    body = [line([str(v) for v in row]) for row in table.itertuples(index=False)]
    return [line(header), line(["---"] * len(header)), *body]


def markdown(comparison: Comparison) -> str:
    """The whole comparison as a Markdown document."""
    lines = ["# Model comparison", "", headline(comparison), ""]
    for section, table in sections(comparison).items():
        lines += [f"## {section}", "", *_markdown_table(table), ""]
    return "\n".join(lines)


def tidy(comparison: Comparison) -> pd.DataFrame:
    """Every row as numbers: section, measure, approach, value, ci_low, ci_high."""
    return pd.DataFrame(
        {
            "section": [r.section for r in comparison.rows],
            "measure": [r.measure for r in comparison.rows],
            "approach": [r.approach for r in comparison.rows],
            "value": [r.value for r in comparison.rows],
            "ci_low": [r.low for r in comparison.rows],
            "ci_high": [r.high for r in comparison.rows],
            "shown": [r.text for r in comparison.rows],
        }
    )


def write_outputs(comparison: Comparison, out_dir: Path) -> list[Path]:
    """Write compare.md and compare.csv into out_dir; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "compare.md", out_dir / "compare.csv"]
    paths[0].write_text(markdown(comparison))
    tidy(comparison).to_csv(paths[1], index=False)
    return paths


# --- the promotion gate -------------------------------------------------------------


@dataclass(frozen=True)
class GateCheck:
    """One condition of the promotion gate, its verdict and the numbers behind it."""

    condition: str
    passed: bool
    numbers: str


def _month_check(
    comparison: Comparison, challenger: str, against: str, cfg: PromotionConfig
) -> GateCheck:
    """No judged month where the challenger's AUC trails by more than allowed; a
    window without created dates passes, saying it has no months to judge."""
    condition = (
        f"no month with ROC AUC below {against}'s by more than {cfg.max_month_drop:.3f}"
    )
    if comparison.window.month is None:
        return GateCheck(condition, True, NO_MONTHS)
    months = comparison.months[comparison.months["judged"]]
    skipped = len(comparison.months) - len(months)
    if months.empty:
        return GateCheck(
            condition,
            False,
            f"none of the {skipped} months has compare.min_month_deals closed "
            "deals of both outcomes, so stability cannot be judged",
        )
    drop = months[against] - months[challenger]
    worst = months.iloc[int(np.argmax(drop.to_numpy()))]
    numbers = (
        f"worst {worst['month']}: {worst[challenger]:.3f} vs {worst[against]:.3f} "
        f"(drop {drop.max():+.3f}); {len(months)} months judged, {skipped} not"
    )
    return GateCheck(condition, bool(drop.max() <= cfg.max_month_drop), numbers)


def gate_checks(
    comparison: Comparison, challenger: str, cfg: PromotionConfig
) -> list[GateCheck]:
    """The promotion gate: challenger vs the reference model (without one, BANT or,
    when no rule is given, the base rate)."""
    against = comparison.reference or comparison.window.baseline
    delta = comparison.deltas[(challenger, against)]
    low, high = delta["delta_roc_auc_ci95"]
    wins, base = comparison.wins[challenger], comparison.wins[against]
    need = cfg.min_capacity_wins_ratio * base
    return [
        GateCheck(
            f"ROC AUC gain over {against}: 95% CI low bound above "
            f"{cfg.min_delta_auc_ci_low:+.3f}",
            bool(low > cfg.min_delta_auc_ci_low),
            f"{delta['delta_roc_auc']:+.3f} [{low:+.3f}, {high:+.3f}]",
        ),
        _month_check(comparison, challenger, against, cfg),
        GateCheck(
            f"wins in the top {comparison.k:,} leads at least "
            f"{cfg.min_capacity_wins_ratio:g} x {against}'s",
            bool(wins >= need),
            f"{wins:,} vs {base:,} (needs {need:,.1f})",
        ),
    ]


@dataclass(frozen=True)
class Promotion:
    """What `lead-ml promote` decided: the checks and the champion before and after."""

    challenger: Candidate
    previous: int | None
    checks: list[GateCheck]
    promoted: bool
    window: str

    @property
    def passed(self) -> bool:
        """True when every gate condition holds."""
        return all(check.passed for check in self.checks)


#: Registered-model tags of the alias history: one per move, numbered from 1
#: (``lead_ml.alias_move.0001``), so a later move never overwrites an earlier one.
MOVE_TAG = "lead_ml.alias_move."
#: Version tag: how the version last became champion; ``lead_ml.promotion.0003``
#: (the move's number) keeps each time it did.
PROMOTION_TAG = "lead_ml.promotion"
#: The longest reason kept (MLflow keeps tag values up to 5,000 characters).
MAX_REASON = 1000


@dataclass(frozen=True)
class AliasMove:
    """One move of the champion alias as the registry keeps it (a tag's JSON).

    >>> move = AliasMove(2, "2026-01-05T09:30:00Z", "champion", 1, 3, "rollback",
    ...                  "set by --to from v1, no gate")
    >>> move.text
    '2026-01-05T09:30:00Z champion v1 -> v3 (rollback): set by --to from v1, no gate'
    >>> AliasMove.from_tag(*move.as_tag()) == move
    True
    """

    number: int
    date: str
    alias: str
    before: int | None
    after: int
    action: Literal["promote", "rollback"]
    reason: str

    @property
    def text(self) -> str:
        """One line: when, which versions, how and why."""
        before = f"v{self.before}" if self.before is not None else "none"
        return (
            f"{self.date} {self.alias} {before} -> v{self.after} ({self.action}): "
            f"{self.reason}"
        )

    def as_tag(self) -> tuple[str, str]:
        """The registered-model tag (key, JSON value) that keeps this move."""
        fields = {
            "date": self.date,
            "alias": self.alias,
            "from": self.before,
            "to": self.after,
            "action": self.action,
            "reason": self.reason,
        }
        return f"{MOVE_TAG}{self.number:04d}", json.dumps(fields)

    @classmethod
    def from_tag(cls, key: str, value: str) -> AliasMove:
        """The move a tag of :meth:`as_tag` keeps."""
        fields = json.loads(value)
        return cls(
            int(key.removeprefix(MOVE_TAG)),
            fields["date"],
            fields["alias"],
            fields["from"],
            fields["to"],
            fields["action"],
            fields["reason"],
        )


def alias_history(client: MlflowClient, params: Params) -> list[AliasMove]:
    """Every move of the champion alias (promote and rollback), oldest first; none
    when the registered model does not exist yet."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(params.tracking.registered_model)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise
    moves = [
        AliasMove.from_tag(key, value)
        for key, value in model.tags.items()
        if key.startswith(MOVE_TAG)
    ]
    return sorted(moves, key=lambda move: move.number)


def _move_alias(
    client: MlflowClient,
    params: Params,
    version: int,
    before: int | None,
    action: Literal["promote", "rollback"],
    why: str,
) -> AliasMove:
    """Point the alias at version and add the move to the history (see MOVE_TAG)."""
    name, alias = params.tracking.registered_model, params.tracking.champion_alias
    client.set_registered_model_alias(name, alias, str(version))
    number = max((move.number for move in alias_history(client, params)), default=0)
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    move = AliasMove(number + 1, when, alias, before, version, action, why)
    client.set_registered_model_tag(name, *move.as_tag())
    # The version keeps a note of how it became champion, for the audit trail: the
    # latest, and each move by its number.
    client.set_model_version_tag(name, str(version), PROMOTION_TAG, why)
    client.set_model_version_tag(
        name, str(version), f"{PROMOTION_TAG}.{move.number:04d}", move.text
    )
    return move


def _with_reason(why: str, reason: str | None) -> str:
    """The recorded reason: what lead-ml did, then the user's words (cut short)."""
    if not reason or not reason.strip():
        return why
    return f"{why}: {' '.join(reason.split())[:MAX_REASON]}"


def promote(
    params: Params,
    challenger_ref: str | None,
    features_path: Path,
    validated_dir: Path,
    repo: Path = Path("."),
    record: Path = Path("reports/export.json"),
    reason: str | None = None,
) -> Promotion:
    """Move the champion alias to the challenger only if the gate passes.

    The gate compares the challenger (default: the latest version) with the champion,
    or with the BANT rule (the base rate when params give none) when there is no
    champion yet, on the newest test window
    at the capacity of params.yaml; nothing here can be changed from the command line.
    A move is added to the alias history (:func:`alias_history`) with the gate's
    verdict and ``reason``.
    """
    client = registry_client()
    challenger = resolve(client, params, challenger_ref or "latest", repo, record)
    previous = champion_version(client, params)
    if previous == challenger.version:
        return Promotion(challenger, previous, [], False, "")
    window = scoring_window(params, features_path, validated_dir)
    candidates = [challenger]
    if previous is not None:
        candidates.insert(0, resolve(client, params, str(previous)))
    comparison = compare_candidates(client, params, candidates, window)
    checks = gate_checks(comparison, challenger.label, params.promotion)
    promoted = all(check.passed for check in checks)
    if promoted:
        against = f"v{previous}" if previous is not None else window.baseline
        why = _with_reason(f"gate passed vs {against} on {window.describe()}", reason)
        _move_alias(client, params, challenger.version, previous, "promote", why)
    return Promotion(challenger, previous, checks, promoted, window.describe())


def rollback(
    params: Params,
    to: str,
    repo: Path = Path("."),
    record: Path = Path("reports/export.json"),
    reason: str | None = None,
) -> tuple[int | None, Candidate]:
    """Move the champion alias to a version without the gate; return (before, after).

    The move is added to the alias history with ``reason``; earlier moves stay.
    """
    client = registry_client()
    target = resolve(client, params, to, repo, record)
    previous = champion_version(client, params)
    before = f"v{previous}" if previous is not None else "no champion"
    why = _with_reason(f"set by --to from {before}, no gate", reason)
    _move_alias(client, params, target.version, previous, "rollback", why)
    return previous, target


# --- for the report -----------------------------------------------------------------


def _changed(champion: dict[str, Any], candidate: dict[str, Any]) -> dict[str, Any]:
    keys = sorted(set(champion) | set(candidate))
    return {
        key: {"champion": champion.get(key), "candidate": candidate.get(key)}
        for key in keys
        if champion.get(key) != candidate.get(key)
    }


def champion_changes(params: Params, candidate_run_id: str) -> dict[str, Any] | None:
    """What changed in a run versus the champion's: params, data and code, metrics.

    Metrics are those each run logged on its own test window (`lead-ml compare`
    re-scores both on one window). Keys: champion_version, champion_model_version
    (its scorer's content version), champion_run_id, candidate_run_id, params and
    tags ({key: {champion, candidate}} for values that
    differ), metrics ({key: {champion, candidate, delta}} for metrics both logged).
    None when no model has the champion alias.
    """
    from mlflow.exceptions import MlflowException

    client = registry_client()
    version = champion_version(client, params)
    if version is None:
        return None
    name = params.tracking.registered_model
    champion_run = str(client.get_model_version(name, str(version)).run_id)
    try:
        runs = [client.get_run(champion_run), client.get_run(candidate_run_id)]
    except MlflowException:
        raise CompareError(
            f"run {candidate_run_id} not found in {tracking.tracking_uri()}"
        ) from None
    tags = [
        {k: r.data.tags.get(k) for k in ("data_version", "git_commit")} for r in runs
    ]
    old, new = (r.data.metrics for r in runs)
    return {
        "champion_version": version,
        "champion_model_version": runs[0].data.tags.get(tracking.SCORER_TAG, ""),
        "champion_run_id": champion_run,
        "candidate_run_id": candidate_run_id,
        "params": _changed(runs[0].data.params, runs[1].data.params),
        "tags": _changed(*tags),
        "metrics": {
            key: {
                "champion": old[key],
                "candidate": new[key],
                "delta": new[key] - old[key],
            }
            for key in sorted(set(old) & set(new))
        },
    }
