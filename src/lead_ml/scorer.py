"""The exported scorer: a checked bundle turning raw lead rows into scores and reasons.

A bundle is a folder holding ``booster.txt`` (LightGBM's text format), ``scorer.json``
(everything else: features, category levels, registry, calibration, bands, versions,
training window, drift reference) and ``checksums.json``. Nothing in it is a pickle;
a changed or truncated file is refused on load. :func:`export_scorer` wraps the bundle
in an MLflow pyfunc model directory (models-from-code), so
``mlflow.pyfunc.load_model(path)`` and :func:`load_scorer` give the same scores.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lead_ml.config import DIMENSIONS, FeaturizeConfig
from lead_ml.explain import explain
from lead_ml.features import REGISTRY, FeatureSpec, build_features
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
from lead_ml.schema import ACTIVITIES, ColumnSpec, TableContract, validate_table

#: Bumped whenever the bundle layout changes; a scorer reads only its own format.
FORMAT_VERSION = 1
BOOSTER_FILE = "booster.txt"
SPEC_FILE = "scorer.json"
CHECKSUM_FILE = "checksums.json"
BUNDLE_FILES = (BOOSTER_FILE, SPEC_FILE)
ID_COLUMN = "deal_id"
PSI_WARNING = 0.25
BANDS = ("A", "B", "C", "D")
REASON_COLUMNS = ("top_reasons", "next_question")
#: What scorer.json must hold besides its format version.
SPEC_KEYS = ("model", "featurize", "input_columns", "drift_reference", "model_version")


class ScorerError(ValueError):
    """A scorer bundle cannot be used: missing, tampered, or from another format."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def input_columns() -> dict[str, str]:
    """The raw columns a lead row carries, with their kind in the data contract."""
    kinds = {
        "category": "string",
        "evidence": "string",
        "number": "float",
        "log": "float",
    }
    columns = {ID_COLUMN: "string", "created_at": "datetime"}
    for spec in REGISTRY:
        table, _, column = spec.source.partition(".")
        if table != "activities":
            columns[column] = kinds[spec.kind]
    return columns


def scoring_contract() -> TableContract:
    """The contract of a lead row: id and created_at required, the rest may be empty.

    Category values are not restricted: a value the model never saw is scored as
    unseen and counted, not rejected. Ids are checked for repeats by the scorer
    (across chunks too), not by the contract.
    """
    specs = [ColumnSpec(ID_COLUMN, "string"), ColumnSpec("created_at", "datetime")]
    for name, kind in list(input_columns().items())[2:]:
        bound = {"min_value": 0.0} if kind == "float" else {}
        specs.append(ColumnSpec(name, kind, nullable=True, **bound))  # type: ignore[arg-type]
    return TableContract("leads", None, tuple(specs))


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


def bundle_spec(
    model: TrainedModel,
    reference: pd.DataFrame,
    featurize: FeaturizeConfig,
    registry: Sequence[FeatureSpec] = REGISTRY,
    id_column: str = ID_COLUMN,
    inputs: dict[str, str] | None = None,
) -> dict[str, Any]:
    """scorer.json: all a batch job needs besides the booster, as plain JSON.

    ``registry``, ``id_column`` and ``inputs`` (raw column -> kind) default to the
    built-in CRM's; a scorer of a user's own export passes its own.
    """
    matrix = model_matrix(reference, model.info.categories, model.info.feature_names)
    probability = predict_proba(model, reference)
    return {
        "format_version": FORMAT_VERSION,
        "lead_ml_version": version("lead-ml"),
        "library_versions": {
            lib: version(lib) for lib in ("lightgbm", "pandas", "numpy", "pyarrow")
        },
        "id_column": id_column,
        "input_columns": input_columns() if inputs is None else inputs,
        "model": asdict(model.info),
        "registry": [asdict(spec) for spec in registry],
        "featurize": featurize.model_dump(),
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

#: Longest input value quoted in a reject reason; the rejects file keeps it whole.
SHOWN_CHARS = 60
#: Any activity type is accepted when scoring: an unknown type counts in no type.
ACTIVITY_CONTRACT = TableContract(
    ACTIVITIES.name,
    ACTIVITIES.id_column,
    tuple(replace(spec, allowed=None) for spec in ACTIVITIES.columns),
)
ACTIVITY_COLUMNS = tuple(spec.name for spec in ACTIVITIES.columns)


@dataclass(frozen=True)
class Scored:
    """One chunk's result: output rows (input order), rejects, and counters."""

    output: pd.DataFrame
    rejects: pd.DataFrame
    unseen: dict[str, int]
    features: pd.DataFrame
    #: The scored leads' model rows (lead_ml.model.feature_rows), output order.
    rows: np.ndarray


def quote_value(value: Any) -> str:
    """An input value quoted for a reject reason, cut to SHOWN_CHARS characters.

    >>> quote_value("D1"), quote_value("x" * 100)[-8:]
    ("'D1'", "xxxx...'")
    """
    text = repr(str(value))
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 4] + "...'"


def _text(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Values as text (blank text is missing), and where a value is present."""
    text = values.astype("string")
    present = text.str.strip().ne("").to_numpy(dtype=bool, na_value=False)
    return text.where(present), present


def _read_floats(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """float64 values, and where a present value is not a finite number."""
    if pd.api.types.is_float_dtype(values.dtype) or pd.api.types.is_integer_dtype(
        values.dtype
    ):
        floats = values.to_numpy(dtype=float, na_value=np.nan)
        present = ~np.isnan(floats)
    else:
        text, present = _text(values)
        numbers = pd.to_numeric(text, errors="coerce")
        floats = numbers.to_numpy(dtype=float, na_value=np.nan)
    finite = np.isfinite(floats)
    return pd.Series(np.where(finite, floats, np.nan), index=values.index), (
        present & ~finite
    )


def _read_dates(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Naive UTC datetime64[ms] values, and where a present value is not an ISO date."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        stamps, present = values, values.notna().to_numpy()
    else:
        text, present = _text(values)
        try:
            stamps = pd.to_datetime(text, format="ISO8601", errors="coerce")
        except ValueError:  # mixed time zones: compare them all in UTC
            stamps = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_convert(None)
    return stamps.astype("datetime64[ms]"), present & stamps.isna().to_numpy()


_READERS = {
    "float": (_read_floats, "a finite number"),
    "datetime": (_read_dates, "an ISO 8601 date"),
}


def read_values(leads: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Lead rows with numbers and dates converted, and per row the first value that
    does not read as its column's kind (None where every value reads).

    A value that cannot be read rejects its row, whatever the rest of the column
    holds, so a chunk of bad values is rejected row by row, never as a whole.
    """
    reasons = np.full(len(leads), None, dtype=object)
    converted = {}
    for name, kind in input_columns().items():
        if kind not in _READERS:
            continue
        reader, noun = _READERS[kind]
        converted[name], failed = reader(leads[name])
        new = np.flatnonzero(failed & pd.isna(reasons))
        raw = leads[name].iloc[new].tolist()
        reasons[new] = [f"{name} is not {noun}: {quote_value(v)}" for v in raw]
    return leads.assign(**converted), reasons


def reject_rows(
    leads: pd.DataFrame, rows: np.ndarray, reasons: np.ndarray | list[str]
) -> pd.DataFrame:
    """Rejects of a lead frame: table, row, reason, then the rows' values as text.

    ``rows`` are positions in ``leads``; the ``row`` column holds them as given.
    """
    rejects = leads.iloc[np.asarray(rows, dtype=int)].astype("string")
    rejects = rejects.reset_index(drop=True)
    rejects.insert(0, "reason", pd.Series(list(reasons), dtype="string"))
    rejects.insert(0, "row", np.asarray(rows, dtype="int64"))
    rejects.insert(0, "table", pd.Series(["leads"] * len(rows), dtype="string"))
    return rejects


def repeated_ids(ids: pd.Series) -> np.ndarray:
    """Per id, the position of its first occurrence (its own position if first).

    >>> repeated_ids(pd.Series(["a", "b", "a"])).tolist()
    [0, 1, 0]
    """
    codes, _ = pd.factorize(ids)
    _, first = np.unique(codes, return_index=True)
    return first[codes]


def prepare_activities(
    activities: pd.DataFrame | None,
    source: str = "activities",
    ids: pd.Series | None = None,
) -> tuple[pd.DataFrame | None, int]:
    """Validated activities (None when there are none) and how many were rejected;
    with ``ids``, only the activities of those leads are kept and checked."""
    if activities is None or len(activities) == 0:
        return None, 0
    missing = [c for c in ACTIVITY_COLUMNS if c not in activities.columns]
    if missing:
        raise ScorerError(
            f"{source}: missing activity column(s) {', '.join(missing)}; an activity "
            f"row needs {', '.join(ACTIVITY_COLUMNS)}"
        )
    if ids is not None:
        wanted = activities[ID_COLUMN].astype("string").isin(ids.astype("string"))
        activities = activities[wanted.to_numpy(dtype=bool, na_value=False)]
        if len(activities) == 0:
            return None, 0
    checked = validate_table(activities, ACTIVITY_CONTRACT, source)
    return checked.valid, len(checked.rejects)


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


class Scorer:
    """A loaded bundle: score raw lead rows (plus optional activities) with reasons."""

    def __init__(self, model: TrainedModel, spec: dict[str, Any]) -> None:
        self.model = model
        self.spec = spec
        self.featurize = FeaturizeConfig(**spec["featurize"])
        self.contract = scoring_contract()
        self.model_version: str = spec["model_version"]
        self.thresholds: dict[str, float] = spec["model"]["band_thresholds"]

    def output_columns(self, explain_reasons: bool = True) -> list[str]:
        """The columns of the output, in order."""
        columns = [ID_COLUMN, "probability", "score", "band"]
        if explain_reasons:
            columns += [f"contrib_{d}" for d in DIMENSIONS]
            columns += ["base_value", *REASON_COLUMNS]
        return [*columns, "model_version"]

    def output_dtypes(self, explain_reasons: bool = True) -> dict[str, str]:
        """The pandas dtype of every output column of scored rows."""
        text = (ID_COLUMN, "band", *REASON_COLUMNS, "model_version")
        return {
            column: "string" if column in text else "float64"
            for column in self.output_columns(explain_reasons)
        } | {"score": "int64"}

    def check_columns(self, columns: list[str], source: str) -> None:
        """Refuse input that lacks required columns, naming every one missing."""
        missing = [c for c in self.spec["input_columns"] if c not in columns]
        if missing:
            raise ScorerError(
                f"{source}: missing column(s) {', '.join(missing)}; a lead row needs "
                f"{', '.join(self.spec['input_columns'])} (empty values are allowed "
                f"except for {ID_COLUMN} and created_at)"
            )

    def score_chunk(
        self,
        leads: pd.DataFrame,
        activities: pd.DataFrame | None = None,
        explain_reasons: bool = True,
        source: str = "leads",
        rows: np.ndarray | None = None,
    ) -> Scored:
        """Validate, featurize and score one frame of leads (all rows in one chunk).

        ``activities`` must be validated (see :func:`prepare_activities`). ``rows``
        numbers the leads in their file (default 0, 1, ...): rejects and reasons use
        these numbers. Of leads sharing an id, the first valid one is scored.
        """
        self.check_columns(list(leads.columns), source)
        twice = [
            c for c in self.spec["input_columns"] if (leads.columns == c).sum() > 1
        ]
        if twice:
            raise ScorerError(f"{source}: column(s) {', '.join(twice)} appear twice")
        raw = leads[list(self.spec["input_columns"])]
        rows = np.arange(len(raw)) if rows is None else np.asarray(rows, dtype=int)
        readable, reasons = read_values(raw)
        valid = self._valid(readable, reasons, rows, source)
        features = build_features(valid, None, activities, self.featurize)
        # The model's rows, built once: scores, explanations, unseen counts and drift
        model_input = feature_rows(self.model, features)
        output = self._score_features(features, model_input, explain_reasons)
        rejected = np.flatnonzero(pd.notna(reasons))
        rejects = reject_rows(raw, rejected, reasons[rejected])
        rejects["row"] = rows[rejected]
        unseen = self.unseen(features, model_input)
        return Scored(output, rejects, unseen, features, model_input)

    def _valid(
        self, leads: pd.DataFrame, reasons: np.ndarray, rows: np.ndarray, source: str
    ) -> pd.DataFrame:
        """Rows passing the contract, each id once; the reasons of the rest are set."""
        readable = np.flatnonzero(pd.isna(reasons))
        if readable.size == 0:  # the contract refuses an empty table
            return leads.iloc[:0]
        checked = validate_table(leads.iloc[readable], self.contract, source)
        failed = checked.rejects["row"].to_numpy(int)
        reasons[readable[failed]] = checked.rejects["reason"].to_numpy(object)
        kept, valid = np.delete(readable, failed), checked.valid
        first = repeated_ids(valid[ID_COLUMN])
        again = np.flatnonzero(first != np.arange(len(valid)))
        first_rows = rows[kept[first[again]]]
        reasons[kept[again]] = [
            f"duplicate {ID_COLUMN} {quote_value(v)} (first seen at row {r})"
            for v, r in zip(valid[ID_COLUMN].iloc[again], first_rows, strict=True)
        ]
        return valid.iloc[np.delete(np.arange(len(valid)), again)]

    def empty_output(self, explain_reasons: bool = True) -> pd.DataFrame:
        """An output frame with no rows: the columns and dtypes of scored rows."""
        dtypes = self.output_dtypes(explain_reasons)
        return pd.DataFrame({c: pd.Series(dtype=d) for c, d in dtypes.items()})

    def _score_features(
        self, features: pd.DataFrame, rows: np.ndarray, explain_reasons: bool
    ) -> pd.DataFrame:
        if features.empty:  # LightGBM refuses to predict no rows
            return self.empty_output(explain_reasons).set_axis(features.index)
        raw = rows_margin(self.model, rows)
        probability = probability_of_margin(self.model, raw)
        out = pd.DataFrame(
            {
                ID_COLUMN: features[ID_COLUMN].to_numpy(),
                "probability": probability,
                "score": np.clip(np.rint(probability * 100), 1, 99),
                "band": self.bands(probability),
                "model_version": self.model_version,
            },
            index=features.index,
        )
        if explain_reasons:
            explained = explain(self.model, features, rows=rows, raw=raw)
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
        index kept.

        Rejected rows are kept with empty scores and their reason in
        ``reject_reason``; ``score`` is a float so that it can be empty.
        """
        ids = leads[ID_COLUMN] if list(leads.columns).count(ID_COLUMN) == 1 else None
        valid_activities, _ = prepare_activities(activities, ids=ids)
        scored = self.score_chunk(leads, valid_activities, explain_reasons)
        merged = merge_rejects(scored, len(leads), self.output_dtypes(explain_reasons))
        return merged.set_axis(leads.index)


def merge_rejects(scored: Scored, n_rows: int, dtypes: dict[str, str]) -> pd.DataFrame:
    """Scored and rejected rows back in input order, with a reject_reason column.

    Rows are numbered 0..n_rows-1 in ``scored.rejects``; ``score`` becomes a float.
    """
    dtypes = dtypes | {"score": "float64"}
    rejected_rows = scored.rejects["row"].to_numpy(int)
    output = scored.output.set_axis(np.setdiff1d(np.arange(n_rows), rejected_rows))
    rejected = output.iloc[:0].astype(dtypes).reindex(rejected_rows)
    rejected[ID_COLUMN] = scored.rejects[ID_COLUMN].to_numpy()
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
        if "crm_plan" in spec:  # a scorer of the user's own CRM export
            from lead_ml.byo import CrmScorer

            return CrmScorer(model, spec)  # type: ignore[return-value]
        return Scorer(model, spec)
    except (KeyError, TypeError, ValueError) as error:
        raise ScorerError(
            f"{bundle / SPEC_FILE}: incomplete scorer spec ({error!r}); re-export "
            "with `lead-ml export`"
        ) from None


def copy_bundle(source: Path, target: Path) -> None:
    """Copy a bundle's files (and nothing else) to another folder."""
    target.mkdir(parents=True, exist_ok=True)
    for name in (*BUNDLE_FILES, CHECKSUM_FILE):
        shutil.copy2(source / name, target / name)


def pyfunc_arguments(bundle: Path, input_example: pd.DataFrame) -> dict[str, Any]:
    """Arguments of mlflow.pyfunc save_model/log_model for a bundle (from code)."""
    from mlflow.models import infer_signature

    package = Path(__file__).parent
    # Every number may be empty in a lead row (as load_scorer and `lead-ml score`
    # accept), and MLflow refuses an empty value in a long column: numbers are doubles.
    numbers = [c for c, kind in input_columns().items() if kind == "float"]
    input_example = input_example.astype(dict.fromkeys(numbers, "float64"))
    example_output = load_scorer(bundle).score(input_example)
    libraries = ("lightgbm", "pandas", "numpy", "pyarrow", "scikit-learn", "pydantic")
    signature = infer_signature(
        input_example, example_output, params={"explain": True, "activities_path": ""}
    )
    return {
        "python_model": str(package / "pyfunc_model.py"),
        "artifacts": {"bundle": str(bundle)},
        "signature": signature,
        "input_example": input_example,
        # The package travels with the model, so a batch job needs only the folder.
        "code_paths": [str(package)],
        # Explicit requirements: no slow inference, and the exact training stack.
        "pip_requirements": [f"{lib}=={version(lib)}" for lib in libraries]
        + [f"mlflow=={version('mlflow')}", "pyyaml", "rich", "typer"],
    }


def export_scorer(
    model: TrainedModel,
    reference: pd.DataFrame,
    featurize: FeaturizeConfig,
    input_example: pd.DataFrame,
    out_dir: Path,
    staging: Path,
) -> dict[str, Any]:
    """Write the bundle to staging, then the MLflow pyfunc model folder to out_dir."""
    import mlflow

    from lead_ml.tracking import quiet_environment

    quiet_environment()
    bundle = write_bundle(model, bundle_spec(model, reference, featurize), staging)
    arguments = pyfunc_arguments(bundle, input_example)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    mlflow.pyfunc.save_model(path=str(out_dir), **arguments)
    return arguments
