"""The exported scorer: a checked bundle turning raw lead rows into scores and reasons.

One scorer serves every source. A bundle is a folder holding ``booster.txt``
(LightGBM's text format), ``scorer.json`` (everything else: the lead contract of
the source's columns, the feature registry, category levels, calibration, bands, the
answers a next question tries, versions, training window, drift reference) and
``checksums.json``. Nothing in it is a pickle or code; a changed or truncated file
is refused on load. :func:`export_scorer` wraps the bundle in an MLflow pyfunc model
folder (models-from-code), so ``mlflow.pyfunc.load_model(path)`` and
:func:`load_scorer` give the same scores.

A lead row carries the source's own columns: its id, its created date (when the
source has one) and every column the features read; account columns are joined in.
Rows are read by the same contract as training read the deals
(:class:`lead_ml.schema.LeadContract`): a value that does not read as its kind or
lies outside its bounds, a missing id, or an id repeated after its first valid row
rejects the row with a reason; blank and the source's placeholders are unknown.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lead_ml.config import SourceConfig
from lead_ml.explain import (
    CONTRIBUTION_COLUMNS,
    REASON_COLUMNS,
    Answer,
    answers_from_json,
    answers_to_json,
    explain,
    question_answers,
)
from lead_ml.features import FeatureRegistry, build_features
from lead_ml.model import (
    Calibration,
    ModelInfo,
    TrainedModel,
    feature_rows,
    model_matrix,
    predict_proba,
    probability_of_margin,
    rows_margin,
)
from lead_ml.schema import LeadContract
from lead_ml.sources import activity_log
from lead_ml.tables import reject_frame
from lead_ml.tracking import quiet_environment
from lead_ml.vocab import BANDS, Kind, ScorerError

#: Bumped whenever the bundle layout changes; a scorer reads only its own format.
FORMAT_VERSION = 2
BOOSTER_FILE = "booster.txt"
SPEC_FILE = "scorer.json"
CHECKSUM_FILE = "checksums.json"
BUNDLE_FILES = (BOOSTER_FILE, SPEC_FILE)
PSI_WARNING = 0.25
#: What scorer.json must hold besides its format version.
SPEC_KEYS = (
    "contract",
    "registry",
    "model",
    "answers",
    "activities",
    "drift_reference",
    "model_version",
)
#: Python libraries a scorer folder's environment needs, pinned to the training ones.
LIBRARIES = (
    "lightgbm",
    "pandas",
    "numpy",
    "pyarrow",
    "scikit-learn",
    "pydantic",
    "numba",
    "scipy",
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- drift reference ----------------------------------------------------------------


def _numeric_reference(values: np.ndarray) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    edges: list[float] = (
        np.unique(np.quantile(finite, np.linspace(0.1, 0.9, 9))).tolist()
        if finite.size
        else []
    )
    return {"kind": "number", "edges": [float(e) for e in edges]}


def _bin_counts(reference: dict[str, Any], values: pd.Series) -> np.ndarray:
    """Counts per reference bin; the last bin holds missing and unseen values."""
    if reference["kind"] == "number":
        return _number_counts(reference, pd.to_numeric(values, errors="coerce"))
    levels = pd.Index(reference["levels"])
    codes = levels.get_indexer(pd.Index(values.astype(object)))
    return np.bincount(
        np.where(codes < 0, len(levels), codes), minlength=len(levels) + 1
    )


def _number_counts(reference: dict[str, Any], values: Any) -> np.ndarray:
    numbers = np.asarray(values, dtype=float)
    bins = np.searchsorted(np.asarray(reference["edges"]), numbers, side="right")
    bins = np.where(np.isfinite(numbers), bins, len(reference["edges"]) + 1)
    return np.bincount(bins, minlength=len(reference["edges"]) + 2)


def _code_counts(reference: dict[str, Any], codes: np.ndarray) -> np.ndarray:
    """Counts per level of category codes of the reference levels (NaN: the last
    bin, missing or unseen)."""
    n = len(reference["levels"])
    bins = np.where(np.isnan(codes), n, codes).astype(np.int64)
    return np.bincount(bins, minlength=n + 1)


def drift_reference(matrix: pd.DataFrame, probability: np.ndarray) -> dict[str, Any]:
    """Bin edges (or levels) and shares of each feature and of the score in a window."""
    reference: dict[str, Any] = {}
    columns = {
        **{c: matrix[c] for c in matrix.columns},
        "score": pd.Series(probability),
    }
    for name, values in columns.items():
        if isinstance(values.dtype, pd.CategoricalDtype):
            entry: dict[str, Any] = {
                "kind": "category",
                "levels": [str(v) for v in values.cat.categories],
            }
        else:
            entry = _numeric_reference(values.to_numpy(float))
        counts = _bin_counts(entry, values)
        entry["shares"] = [float(x) for x in counts / max(counts.sum(), 1)]
        reference[name] = entry
    return reference


def population_stability(expected: np.ndarray, actual_counts: np.ndarray) -> float:
    """PSI between reference shares and observed counts (bins floored at 1e-4).

    >>> round(population_stability(np.array([0.5, 0.5]), np.array([50, 50])), 6)
    0.0
    """
    actual = actual_counts / max(actual_counts.sum(), 1)
    expected, actual = np.maximum(expected, 1e-4), np.maximum(actual, 1e-4)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


@dataclass
class DriftMonitor:
    """Accumulates bin counts over chunks; reports PSI against the training window."""

    reference: dict[str, Any]
    counts: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, matrix: pd.DataFrame, probability: np.ndarray) -> None:
        """Count one chunk's feature values and scores into the reference bins."""
        columns = {
            **{c: matrix[c] for c in matrix.columns},
            "score": pd.Series(probability),
        }
        for name, entry in self.reference.items():
            counts = _bin_counts(entry, columns[name])
            self.counts[name] = self.counts.get(name, 0) + counts

    def add_rows(
        self, rows: np.ndarray, names: list[str], probability: np.ndarray
    ) -> None:
        """:meth:`add` for model rows (:func:`lead_ml.model.feature_rows`; columns
        ``names``), whose categories are already codes of the reference levels: the
        batch job counts what it scored without building a frame again."""
        column = {name: i for i, name in enumerate(names)}
        for name, entry in self.reference.items():
            values = probability if name == "score" else rows[:, column[name]]
            if entry["kind"] == "category":
                counts = _code_counts(entry, values)
            else:
                counts = _number_counts(entry, values)
            self.counts[name] = self.counts.get(name, 0) + counts

    def psi(self) -> dict[str, float]:
        """PSI of every feature and of the score, largest first."""
        values = {
            name: population_stability(np.asarray(entry["shares"]), self.counts[name])
            for name, entry in self.reference.items()
            if name in self.counts and self.counts[name].sum() > 0
        }
        return dict(sorted(values.items(), key=lambda kv: -kv[1]))


# --- the bundle ---------------------------------------------------------------------


def lead_contract(source: SourceConfig, registry: FeatureRegistry) -> LeadContract:
    """The contract of a lead row for a model of this source: the id, the created
    date (required when activities are counted from it) and the features' columns,
    with the source's placeholders and bounds."""
    deals = source.tables.deals
    kinds: dict[str, Kind] = {deals.id: "category"}
    required: tuple[str, ...] = ()
    if deals.created is not None:
        kinds[deals.created] = "date"
        if registry.uses_activities:
            required = (deals.created,)
    kinds |= registry.column_kinds()
    bounds = {c: (b.min, b.max) for c, b in source.bounds.items() if c in kinds}
    return LeadContract(
        id_column=deals.id,
        kinds=kinds,
        required=required,
        missing_values=tuple(source.missing_values),
        bounds=bounds,
    )


def activity_columns(
    source: SourceConfig, registry: FeatureRegistry
) -> list[str] | None:
    """The activity log's columns (key, time stamp, type) a scorer reads, or None
    when the model counts no activity."""
    log = source.tables.activities
    if log is None or not registry.uses_activities:
        return None
    return [log.key, log.timestamp, log.type]


def bundle_spec(
    model: TrainedModel,
    registry: FeatureRegistry,
    source: SourceConfig,
    reference: pd.DataFrame,
) -> dict[str, Any]:
    """scorer.json: all a batch job needs besides the booster, as plain JSON.
    ``reference`` is the training window's features (drift bins, answers)."""
    names = model.info.feature_names
    matrix = model_matrix(reference, model.info.categories, names)
    probability = predict_proba(model, reference)
    answers = question_answers(registry, model, reference)
    return {
        "format_version": FORMAT_VERSION,
        "lead_ml_version": version("lead-ml"),
        "library_versions": {lib: version(lib) for lib in LIBRARIES},
        "source_name": source.name,
        "contract": lead_contract(source, registry).as_dict(),
        "created_column": source.tables.deals.created,
        "activities": activity_columns(source, registry),
        "registry": registry.as_dict(),
        "model": asdict(model.info),
        "answers": answers_to_json(answers),
        "bands": {
            "thresholds": model.info.band_thresholds,
            "meaning": "A: probability >= thresholds.A; B: >= B; C: >= C; D: the rest. "
            "Thresholds cut the validation window into the configured shares.",
        },
        "drift_reference": drift_reference(matrix, probability),
    }


def write_bundle(model: TrainedModel, spec: dict[str, Any], out_dir: Path) -> Path:
    """Write booster.txt, scorer.json and checksums.json into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.booster.save_model(
        str(out_dir / BOOSTER_FILE), num_iteration=model.info.best_iteration
    )
    booster_hash = _sha256(out_dir / BOOSTER_FILE)
    spec = {**spec, "model_version": f"lead-ml-scorer:{booster_hash[:12]}"}
    (out_dir / SPEC_FILE).write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n")
    checksums = {name: _sha256(out_dir / name) for name in BUNDLE_FILES}
    (out_dir / CHECKSUM_FILE).write_text(json.dumps(checksums, indent=1) + "\n")
    return out_dir


def find_bundle(path: Path) -> Path:
    """The bundle folder of a scorer path: the folder itself or an MLflow model's."""
    if not path.exists():
        raise ScorerError(
            f"{path}: no such folder; pass the folder `lead-ml export` wrote, "
            "e.g. models/scorer"
        )
    for candidate in (path, path / "artifacts" / "bundle"):
        names = (*BUNDLE_FILES, CHECKSUM_FILE)
        if any((candidate / name).exists() for name in names):
            return candidate
    raise ScorerError(
        f"{path}: no lead-ml scorer here (no {CHECKSUM_FILE}); "
        "pass the folder `lead-ml export` wrote, e.g. models/scorer"
    )


def _read_json(path: Path) -> Any:
    """A bundle file's JSON; a missing or unreadable file is a ScorerError."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ScorerError(
            f"{path}: missing from the scorer bundle; re-export with `lead-ml export`"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ScorerError(
            f"{path}: not valid JSON ({error}); re-export with `lead-ml export`"
        ) from None


def _verify(bundle: Path) -> None:
    expected = _read_json(bundle / CHECKSUM_FILE)
    if not isinstance(expected, dict):
        raise ScorerError(
            f"{bundle / CHECKSUM_FILE}: expected a file -> sha256 mapping; re-export "
            "with `lead-ml export`"
        )
    for name in BUNDLE_FILES:
        path = bundle / name
        if not path.exists():
            raise ScorerError(f"{path}: missing from the scorer bundle; re-export it")
        if _sha256(path) != expected.get(name):
            raise ScorerError(
                f"{path}: checksum mismatch, the file was changed or truncated after "
                "export; refusing to load it. Re-export with `lead-ml export`."
            )


def _read_spec(bundle: Path) -> dict[str, Any]:
    spec = _read_json(bundle / SPEC_FILE)
    if not isinstance(spec, dict):
        raise ScorerError(f"{bundle / SPEC_FILE}: expected a JSON object; re-export")
    found = spec.get("format_version")
    if found != FORMAT_VERSION:
        raise ScorerError(
            f"{bundle}: scorer format {found} (exported by lead-ml "
            f"{spec.get('lead_ml_version', '?')}), but lead-ml {version('lead-ml')} "
            f"reads format {FORMAT_VERSION}; re-export the model with this lead-ml "
            "or install the lead-ml version that exported it"
        )
    missing = [key for key in SPEC_KEYS if key not in spec]
    if missing:
        raise ScorerError(
            f"{bundle / SPEC_FILE}: lacks {', '.join(missing)}; re-export with "
            "`lead-ml export`"
        )
    return spec


# --- scoring ------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    """One chunk's result: output rows (input order), rejects, and counters."""

    output: pd.DataFrame
    rejects: pd.DataFrame
    unseen: dict[str, int]
    features: pd.DataFrame
    #: The scored leads' model rows (lead_ml.model.feature_rows), output order.
    rows: np.ndarray


def band_letters(thresholds: dict[str, float], probability: np.ndarray) -> np.ndarray:
    """Band A-D of each probability: A above ``thresholds["A"]``, B above B, C above
    C, D the rest (a probability equal to a threshold falls in the band below).

    >>> cuts = {"A": 0.6, "B": 0.3, "C": 0.1}
    >>> band_letters(cuts, np.array([0.7, 0.35, 0.3, 0.05])).tolist()
    ['A', 'B', 'C', 'D']
    """
    cuts = [thresholds[b] for b in BANDS[:3]]
    position = np.searchsorted(-np.asarray(cuts), -probability, side="right")
    return np.asarray(BANDS, dtype=object)[position]


@dataclass
class Scorer:
    """A loaded bundle: score raw lead rows (plus optional activities) with reasons."""

    model: TrainedModel
    spec: dict[str, Any]
    registry: FeatureRegistry = field(init=False)
    contract: LeadContract = field(init=False)
    answers: dict[str, list[Answer]] = field(init=False)

    def __post_init__(self) -> None:
        self.registry = FeatureRegistry.from_dict(self.spec["registry"])
        contract = LeadContract.from_dict(self.spec["contract"])
        # scorer.json is written with sorted keys: put the id first again, as the
        # contract does (rejects and messages list the columns in this order).
        first = {contract.id_column: contract.kinds[contract.id_column]}
        self.contract = replace(contract, kinds=first | contract.kinds)
        self.answers = answers_from_json(self.spec["answers"])

    @property
    def id_column(self) -> str:
        """The source's id column, which the output carries."""
        return self.contract.id_column

    @property
    def model_version(self) -> str:
        """``lead-ml-scorer:`` and the first 12 hex digits of the booster's sha256."""
        return str(self.spec["model_version"])

    @property
    def thresholds(self) -> dict[str, float]:
        """The band thresholds (A, B, C) from the validation window."""
        return dict(self.spec["model"]["band_thresholds"])

    @property
    def activity_columns(self) -> list[str] | None:
        """The activity log's columns (key, time stamp, type), or None when the
        model counts no activity."""
        columns = self.spec["activities"]
        return None if columns is None else list(columns)

    @property
    def counts_activities(self) -> bool:
        """Whether the model has activity features (without a log every lead is
        scored as having no activity)."""
        return self.activity_columns is not None

    def output_columns(self, explain_reasons: bool = True) -> list[str]:
        """The columns of the output, in order."""
        columns = [self.id_column, "probability", "score", "band"]
        if explain_reasons:
            columns += [*CONTRIBUTION_COLUMNS, "base_value", *REASON_COLUMNS]
        return [*columns, "model_version"]

    def output_dtypes(self, explain_reasons: bool = True) -> dict[str, str]:
        """The pandas dtype of every output column of scored rows."""
        text = (self.id_column, "band", *REASON_COLUMNS, "model_version")
        return {
            column: "string" if column in text else "float64"
            for column in self.output_columns(explain_reasons)
        } | {"score": "int64"}

    def empty_output(self, explain_reasons: bool = True) -> pd.DataFrame:
        """An output frame with no rows: the columns and dtypes of scored rows."""
        dtypes = self.output_dtypes(explain_reasons)
        return pd.DataFrame({c: pd.Series(dtype=d) for c, d in dtypes.items()})

    def check_columns(self, columns: list[str], source: str) -> None:
        """Refuse input that lacks a column the model reads, naming every one."""
        missing = self.contract.missing_columns(columns)
        if missing:
            needed = ", ".join(self.contract.columns)
            raise ScorerError(
                f"{source}: missing column(s) {', '.join(missing)}; a lead row needs "
                f"{needed} (values may be empty except {self.id_column})"
            )
        twice = [c for c in self.contract.columns if list(columns).count(c) > 1]
        if twice:
            raise ScorerError(f"{source}: column(s) {', '.join(twice)} appear twice")

    def check_activity_columns(self, columns: list[str], source: str) -> list[str]:
        """The activity log's columns this scorer reads (key, time stamp, type);
        ScorerError when it counts no activities, or ``columns`` (an activity file's
        or frame's) lack one of them."""
        needed = self.activity_columns
        if needed is None:
            raise ScorerError(
                f"{source}: this scorer counts no activities (trained without an "
                "activity log); score without activities"
            )
        missing = [c for c in needed if c not in columns]
        if missing:
            raise ScorerError(
                f"{source}: missing activity column(s) {', '.join(missing)}; the "
                f"activity log needs {', '.join(needed)}, as in training"
            )
        return needed

    def read_activities(
        self, raw: pd.DataFrame, source: str = "activities"
    ) -> tuple[pd.DataFrame, int]:
        """The activity rows (in the source's own columns, as in training) as
        deal_id, timestamp, activity_type, and how many were left out (no id, no
        readable time stamp, no type)."""
        key, stamp, kind = self.check_activity_columns(list(raw.columns), source)
        log, reasons = activity_log(raw, key, stamp, kind, self.contract.missing_values)
        usable = pd.isna(reasons)
        return log[usable].reset_index(drop=True), int((~usable).sum())

    def score_chunk(
        self,
        leads: pd.DataFrame,
        activities: pd.DataFrame | None = None,
        explain_reasons: bool = True,
        source: str = "leads",
        rows: np.ndarray | None = None,
    ) -> Scored:
        """Read, featurize and score one frame of leads (all in memory).

        ``activities``: the log already read (:meth:`read_activities`). ``rows``
        numbers the leads in their file (default 0, 1, ...): rejects and reasons use
        these numbers. Of leads sharing an id, the first valid one is scored.
        """
        self.check_columns(list(leads.columns), source)
        raw = leads[self.contract.columns]
        rows = np.arange(len(raw)) if rows is None else np.asarray(rows, dtype=int)
        typed, reasons = self.contract.read(raw, rows)
        valid = typed[pd.isna(reasons)]
        created = self.spec["created_column"]
        features = build_features(
            self.registry,
            valid,
            valid[self.id_column],
            valid[created] if created else pd.Series(pd.NaT, index=valid.index),
            activities,
        )
        # The model's rows, built once: scores, explanations, unseen counts and drift
        model_input = feature_rows(self.model, features)
        output = self._score_features(features, model_input, explain_reasons)
        rejected = np.flatnonzero(pd.notna(reasons))
        rejects = reject_frame(
            raw, "leads", rejected, reasons[rejected].tolist(), rows[rejected]
        )
        unseen = self.unseen(features, model_input)
        return Scored(output, rejects, unseen, features, model_input)

    def _score_features(
        self, features: pd.DataFrame, rows: np.ndarray, explain_reasons: bool
    ) -> pd.DataFrame:
        if features.empty:  # LightGBM refuses to predict no rows
            return self.empty_output(explain_reasons).set_axis(features.index)
        raw = rows_margin(self.model, rows)
        probability = probability_of_margin(self.model, raw)
        out = pd.DataFrame(
            {
                self.id_column: features["deal_id"].to_numpy(),
                "probability": probability,
                "score": np.clip(np.rint(probability * 100), 1, 99),
                "band": self.bands(probability),
                "model_version": self.model_version,
            },
            index=features.index,
        )
        if explain_reasons:
            explained = explain(
                self.registry, self.model, self.answers, features, rows, raw
            )
            out = pd.concat([out, explained], axis=1)
        columns = self.output_dtypes(explain_reasons)
        return out[list(columns)].astype(columns)

    def bands(self, probability: np.ndarray) -> np.ndarray:
        """Band A-D of each probability, by thresholds from the validation window."""
        return band_letters(self.thresholds, probability)

    def unseen(
        self, features: pd.DataFrame, rows: np.ndarray | None = None
    ) -> dict[str, int]:
        """Per categorical feature: non-empty values the model never saw in training.

        ``rows``: the features' model rows, if at hand (a category the model never
        saw has no code there).
        """
        rows = feature_rows(self.model, features) if rows is None else rows
        column = {name: i for i, name in enumerate(self.model.info.feature_names)}
        counts = {}
        for name in self.model.info.categories:
            present = features[name].notna().to_numpy()
            counts[name] = int((present & np.isnan(rows[:, column[name]])).sum())
        return counts

    def score(
        self,
        leads: pd.DataFrame,
        activities: pd.DataFrame | None = None,
        explain_reasons: bool = True,
    ) -> pd.DataFrame:
        """Score a frame in memory: one output row per input row, input order and
        index kept. ``activities``: the activity log in the source's own columns.

        Rejected rows are kept with empty scores and their reason in
        ``reject_reason``; ``score`` is a float so that it can be empty.
        """
        log = None
        if activities is not None and len(activities):
            log, _ = self.read_activities(activities)
        scored = self.score_chunk(leads, log, explain_reasons)
        merged = merge_rejects(
            scored, len(leads), self.output_dtypes(explain_reasons), self.id_column
        )
        return merged.set_axis(leads.index)


def merge_rejects(
    scored: Scored, n_rows: int, dtypes: dict[str, str], id_column: str
) -> pd.DataFrame:
    """Scored and rejected rows back in input order, with a reject_reason column.

    Rows are numbered 0..n_rows-1 in ``scored.rejects``; ``score`` becomes a float.
    """
    dtypes = dtypes | {"score": "float64"}
    rejected_rows = scored.rejects["row"].to_numpy(int)
    output = scored.output.set_axis(np.setdiff1d(np.arange(n_rows), rejected_rows))
    rejected = output.iloc[:0].astype(dtypes).reindex(rejected_rows)
    rejected[id_column] = scored.rejects[id_column].to_numpy()
    merged = pd.concat([output.astype(dtypes), rejected]).sort_index()
    merged["reject_reason"] = pd.Series(
        scored.rejects["reason"].to_numpy(), index=rejected_rows, dtype="string"
    ).reindex(merged.index)
    return merged.reset_index(drop=True)


def load_scorer(path: Path | str) -> Scorer:
    """Load a scorer from its folder (or MLflow model folder), checking every file."""
    import lightgbm as lgb

    bundle = find_bundle(Path(path))
    _verify(bundle)
    spec = _read_spec(bundle)
    try:
        booster = lgb.Booster(model_file=str(bundle / BOOSTER_FILE))
    except lgb.basic.LightGBMError as error:
        raise ScorerError(
            f"{bundle / BOOSTER_FILE}: not a LightGBM model ({error}); re-export "
            "with `lead-ml export`"
        ) from None
    try:
        info = dict(spec["model"])
        info["calibration"] = Calibration(**info["calibration"])
        model = TrainedModel(booster=booster, info=ModelInfo(**info))
        return Scorer(model, spec)
    except (KeyError, TypeError, ValueError) as error:
        raise ScorerError(
            f"{bundle / SPEC_FILE}: incomplete scorer spec ({error!r}); re-export "
            "with `lead-ml export`"
        ) from None


def signature_example(scorer: Scorer, leads: pd.DataFrame) -> pd.DataFrame:
    """Lead rows typed as the pyfunc's MLflow signature declares its columns:
    numbers as doubles (any may be empty), dates as time stamps, the rest as text."""
    example = leads[scorer.contract.columns].copy()
    for column, kind in scorer.contract.kinds.items():
        if kind == "number":
            example[column] = example[column].astype("float64")
        elif kind == "date":
            example[column] = example[column].astype("datetime64[ms]")
        else:
            example[column] = example[column].astype("string")
    return example


def pyfunc_arguments(bundle: Path, input_example: pd.DataFrame) -> dict[str, Any]:
    """Arguments of mlflow.pyfunc save_model/log_model for a bundle (from code)."""
    from mlflow.models import infer_signature

    package = Path(__file__).parent
    scorer = load_scorer(bundle)
    example = signature_example(scorer, input_example)
    example_output = scorer.score(example)
    signature = infer_signature(
        example, example_output, params={"explain": True, "activities_path": ""}
    )
    return {
        "python_model": str(package / "pyfunc_model.py"),
        "artifacts": {"bundle": str(bundle)},
        "signature": signature,
        "input_example": example,
        # The package travels with the model, so a batch job needs only the folder.
        "code_paths": [str(package)],
        # Explicit requirements: no slow inference, and the exact training stack.
        "pip_requirements": [f"{lib}=={version(lib)}" for lib in LIBRARIES]
        + [f"mlflow=={version('mlflow')}", "pyyaml", "rich", "typer"],
    }


def export_scorer(
    model: TrainedModel,
    spec: dict[str, Any],
    input_example: pd.DataFrame,
    out_dir: Path,
    staging: Path,
) -> dict[str, Any]:
    """Write the bundle to staging, then the MLflow pyfunc model folder to out_dir."""
    import mlflow

    quiet_environment()
    bundle = write_bundle(model, spec, staging)
    arguments = pyfunc_arguments(bundle, input_example)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    mlflow.pyfunc.save_model(path=str(out_dir), **arguments)
    return arguments
