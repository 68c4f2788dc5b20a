"""The exported scorer: a checked folder turning raw lead rows into scores and reasons.

One scorer serves every source. :func:`export_scorer` writes an MLflow pyfunc model
folder (MLflow "models from code"). Its ``artifacts/bundle`` holds ``booster.txt``
(LightGBM's text format), ``scorer.json`` (everything else: the lead contract of the
source's columns, the feature registry, category levels, calibration, bands, the
answers a next question tries, versions, training window, drift reference) and
``manifest.json``: the sha256 of every other file of the folder, and the model
version, a sha256 of that list (:func:`manifest_version`). Nothing in the folder is
a pickle, and the only code is MLflow's models-from-code file ``pyfunc_model.py``,
which imports the installed lead-ml: lead_ml's own code is not shipped.

:func:`load_scorer` (and so ``lead-ml score``) checks every file against the
manifest and refuses any file it does not list (:func:`verify_folder`), validates
``scorer.json`` against its schema, and only then reads the booster; nothing in the
folder is imported or executed. ``mlflow.pyfunc.load_model(path)`` gives the same
scores, with the limits :func:`verify_folder` states; :func:`load_pyfunc` checks the
folder before MLflow reads it.

Wherever a folder is taken, a model reference may name it instead:
:func:`resolve_scorer` downloads ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or
``runs:/RUN_ID/PATH`` from the tracking store into a per-version cache folder, which
is then checked like any other. The folder's ``requirements.txt`` pins lead-ml and
everything it depends on (:func:`scorer_requirements`).

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
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter
from pydantic import ValidationError as SchemaError

from lead_ml.config import SourceConfig
from lead_ml.explain import (
    CONTRIBUTION_COLUMNS,
    MIN_QUESTION_GAIN,
    REASON_COLUMNS,
    Answer,
    answers_from_json,
    answers_to_json,
    codes_margin,
    explain,
    question_answers,
    tree_codes,
)
from lead_ml.features import FeatureRegistry, build_features
from lead_ml.jit import log
from lead_ml.model import (
    ModelInfo,
    TrainedModel,
    feature_rows,
    model_matrix,
    predict_proba,
    probability_of_margin,
    rows_margin,
)
from lead_ml.schema import LeadContract, id_text
from lead_ml.sources import activity_log, joins
from lead_ml.tables import Dialect, as_text, read_header, read_table, reject_frame
from lead_ml.tracking import SCORER_TAG, quiet_environment, store_client
from lead_ml.vocab import BANDS, OUTPUT_DIMENSIONS, Kind, ScorerError

#: Bumped whenever the folder layout changes; a scorer reads only its own format.
#: 3: manifest.json covers every file of the folder and holds the model version
#: (format 2's checksums.json covered booster.txt and scorer.json only).
FORMAT_VERSION = 3
BOOSTER_FILE = "booster.txt"
SPEC_FILE = "scorer.json"
MANIFEST_FILE = "manifest.json"
#: Where the bundle sits in the model folder (MLflow's artifacts of the pyfunc).
BUNDLE_DIR = "artifacts/bundle"
MLMODEL_FILE = "MLmodel"
#: The models-from-code file: MLflow copies it into the folder and executes it.
MODEL_CODE_FILE = "pyfunc_model.py"
#: What every folder lists besides MLflow's environment and example files.
REQUIRED_FILES = (
    MLMODEL_FILE,
    MODEL_CODE_FILE,
    f"{BUNDLE_DIR}/{BOOSTER_FILE}",
    f"{BUNDLE_DIR}/{SPEC_FILE}",
)
VERSION_PREFIX = "lead-ml-scorer:"
#: The environment's pin of the model version for the pyfunc (as --expect-version).
EXPECT_VERSION_ENV = "LEAD_ML_EXPECT_VERSION"
#: Set to 1 to let a pyfunc request's activities_path name a file the server reads.
ALLOW_ACTIVITIES_ENV = "LEAD_ML_ALLOW_ACTIVITIES_PATH"
PSI_WARNING = 0.25
#: What scorer.json must hold besides its format version.
SPEC_KEYS = (
    "contract",
    "registry",
    "model",
    "answers",
    "activities",
    "drift_reference",
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
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


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


def _empty_counts(reference: dict[str, Any]) -> np.ndarray:
    """The bins of a reference entry, none counted (the last: missing, unseen)."""
    if reference["kind"] == "category":
        return _code_counts(reference, np.empty(0))
    return _number_counts(reference, np.empty(0))


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
    return float(np.sum((actual - expected) * log(actual / expected)))


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


def reading_spec(source: SourceConfig) -> dict[str, dict[str, Any] | None]:
    """How the deals and the activity log were read (:class:`Dialect`): a batch
    job reads an export of the same CRM the same way."""
    log = source.tables.activities
    return {
        "deals": Dialect.of(source.tables.deals, "deals").as_dict(),
        "activities": None if log is None else Dialect.of(log, "activities").as_dict(),
    }


def join_spec(source: SourceConfig) -> dict[str, dict[str, Any]]:
    """The many-to-one tables training joined onto the deals (accounts, products,
    ...), by name: the deals' key, the table's id and how it was read, so that
    `lead-ml score --table NAME=PATH` joins an export of it the same way."""
    return {
        name: {
            "key": table.key,
            "id": table.id_column,
            "reading": Dialect.of(table, name).as_dict(),
        }
        for name, table in joins(source).items()
    }


def bundle_spec(
    model: TrainedModel,
    registry: FeatureRegistry,
    source: SourceConfig,
    reference: pd.DataFrame,
    min_question_gain: float = MIN_QUESTION_GAIN,
) -> dict[str, Any]:
    """scorer.json: all a batch job needs besides the booster, as plain JSON.
    ``reference`` is the training window's features (drift bins, answers);
    ``min_question_gain`` the least change in win probability a next question's
    answer must make to be offered (``explain.min_question_gain``)."""
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
        "reading": reading_spec(source),
        "joins": join_spec(source),
        "registry": registry.as_dict(),
        "model": asdict(model.info),
        "answers": answers_to_json(answers),
        "questions": {"min_gain": float(min_question_gain)},
        "bands": {
            "thresholds": model.info.band_thresholds,
            "meaning": "A: probability >= thresholds.A; B: >= B; C: >= C; D: the rest. "
            "Thresholds cut the validation window into the configured shares.",
        },
        "drift_reference": drift_reference(matrix, probability),
    }


def write_bundle(model: TrainedModel, spec: dict[str, Any], out_dir: Path) -> Path:
    """Write booster.txt and scorer.json into out_dir (the model version is not in
    them: it is the hash of the whole folder, see :func:`seal_folder`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.booster.save_model(
        str(out_dir / BOOSTER_FILE), num_iteration=model.info.best_iteration
    )
    (out_dir / SPEC_FILE).write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n")
    return out_dir


# --- the folder's manifest ----------------------------------------------------------

#: MLmodel keys MLflow writes afresh on every save of the same model (time, ids,
#: where it was logged). They decide nothing about loading, so the MLmodel hash
#: leaves them out: the copy MLflow logs to the registry then has the same hash.
VOLATILE_MLMODEL_KEYS = (
    "utc_time_created",
    "model_uuid",
    "model_id",
    "run_id",
    "artifact_path",
    "model_size_bytes",
)
#: The export's own MLmodel time: a fixed one, so the same model writes the same bytes
#: (the copy logged to MLflow keeps MLflow's real time).
EXPORT_TIME = "1970-01-01 00:00:00.000000"
#: Python writes this cache of the models-from-code file beside it when MLflow
#: imports it; the only file a scorer folder may hold that its manifest cannot list.
_MODEL_CODE_CACHE = re.compile(r"__pycache__/pyfunc_model\.[\w-]+(\.opt-[12])?\.pyc")
_RELATIVE_PATH = re.compile(r"[\w.-]+(/[\w.-]+)*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: Far beyond what an export writes; a larger file is refused before it is parsed.
MAX_SPEC_BYTES = 256 * 2**20
MAX_SMALL_BYTES = 2**20
_REEXPORT = "re-export with `lead-ml export`"


def _read_bytes(path: Path, limit: int) -> bytes:
    """A small file's bytes; missing, unreadable or larger than ``limit``: refused."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise ScorerError(
            f"{path}: missing from the scorer folder; {_REEXPORT}"
        ) from None
    except OSError as error:
        raise ScorerError(f"{path}: cannot be read ({error.strerror})") from None
    if len(data) > limit:
        raise ScorerError(
            f"{path}: larger than {limit:,} bytes, far more than an export writes; "
            f"refusing to parse it; {_REEXPORT}"
        )
    return data


def _canonical_mlmodel(meta: dict[Any, Any]) -> dict[Any, Any]:
    """MLmodel without what MLflow rewrites on every save (see
    VOLATILE_MLMODEL_KEYS): the source URI of each artifact, and the folder of the
    models-from-code file, of which MLflow reads only the file name."""
    kept = {k: v for k, v in meta.items() if k not in VOLATILE_MLMODEL_KEYS}
    flavors = kept.get("flavors")
    pyfunc = flavors.get("python_function") if isinstance(flavors, dict) else None
    if not isinstance(flavors, dict) or not isinstance(pyfunc, dict):
        return kept
    pyfunc = dict(pyfunc)
    if isinstance(pyfunc.get("model_code_path"), str):
        pyfunc["model_code_path"] = os.path.basename(pyfunc["model_code_path"])
    if isinstance(pyfunc.get("artifacts"), dict):
        pyfunc["artifacts"] = {
            name: {k: v for k, v in a.items() if k != "uri"}
            if isinstance(a, dict)
            else a
            for name, a in pyfunc["artifacts"].items()
        }
    return kept | {"flavors": flavors | {"python_function": pyfunc}}


def _repeats_a_part(document: object) -> bool:
    """Whether a parsed YAML document holds one list or mapping twice (an alias):
    a few nested aliases expand to billions of nodes once written out."""
    seen: set[int] = set()
    pending = [document]
    while pending:
        part = pending.pop()
        if isinstance(part, dict | list):
            if id(part) in seen:
                return True
            seen.add(id(part))
            pending.extend(part.values() if isinstance(part, dict) else part)
    return False


def _read_mlmodel(path: Path) -> dict[Any, Any]:
    """MLmodel as YAML, refused if it is not a mapping or uses aliases (MLflow never
    writes them)."""
    try:
        # yaml.safe_load, as mlflow.models.Model.load reads MLmodel: another parser
        # could see other content in the same bytes than the one MLflow acts on.
        meta = yaml.safe_load(_read_bytes(path, MAX_SMALL_BYTES).decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise ScorerError(f"{path}: not valid YAML ({error}); {_REEXPORT}") from None
    if not isinstance(meta, dict):
        raise ScorerError(f"{path}: expected a YAML mapping; {_REEXPORT}")
    if _repeats_a_part(meta):
        raise ScorerError(f"{path}: uses YAML aliases, which MLflow never writes")
    return meta


def _mlmodel_digest(path: Path) -> str:
    try:
        text = json.dumps(
            _canonical_mlmodel(_read_mlmodel(path)),
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )
    except (TypeError, ValueError) as error:  # keys that are not all text
        raise ScorerError(f"{path}: not an MLflow MLmodel ({error})") from None
    return hashlib.sha256(text.encode()).hexdigest()


def file_digest(folder: Path, relative: str) -> str:
    """The sha256 the manifest holds for a file of a scorer folder: of its bytes, or
    for MLmodel of its content without the keys MLflow rewrites on every save."""
    path = folder / relative
    if relative == MLMODEL_FILE:
        return _mlmodel_digest(path)
    try:
        return _sha256(path)
    except FileNotFoundError:
        raise ScorerError(
            f"{path}: missing from the scorer folder; {_REEXPORT}"
        ) from None
    except OSError as error:
        raise ScorerError(f"{path}: cannot be read ({error.strerror})") from None


def manifest_version(files: Mapping[str, str]) -> str:
    """The model version of a folder: ``lead-ml-scorer:`` and the sha256 of its
    files' list (relative path -> sha256), so a change to any file changes it.

    >>> manifest_version({"booster.txt": "0" * 64})[:31]
    'lead-ml-scorer:eb110a2c786c4794'
    """
    listing = json.dumps(dict(files), sort_keys=True, separators=(",", ":"))
    return VERSION_PREFIX + hashlib.sha256(listing.encode()).hexdigest()


def folder_files(folder: Path) -> list[str]:
    """Every file of a scorer folder as a relative path, but the manifest and the
    bytecode cache Python writes of the models-from-code file. A link to a folder,
    or anything that is not a file, is refused."""
    found = []
    for current, folders, names in os.walk(folder):
        here = Path(current)
        for name in folders:
            if (here / name).is_symlink():
                raise ScorerError(
                    f"{here / name}: a link to a folder; an exported scorer holds "
                    f"plain files only; {_REEXPORT}"
                )
        for name in names:
            path = here / name
            if not path.is_file():
                raise ScorerError(
                    f"{path}: not a plain file (a broken link or a device); {_REEXPORT}"
                )
            found.append(path.relative_to(folder).as_posix())
    manifest = f"{BUNDLE_DIR}/{MANIFEST_FILE}"
    return sorted(
        p for p in found if p != manifest and not _MODEL_CODE_CACHE.fullmatch(p)
    )


class _Closed(BaseModel):
    """A JSON object of exactly these keys and types: no other key, no coercion
    (``true`` is no number, ``"1"`` no integer), no NaN or infinity."""

    model_config = ConfigDict(
        extra="forbid", strict=True, allow_inf_nan=False, frozen=True
    )


class Manifest(_Closed):
    """manifest.json: the format, every file's sha256 and the model version."""

    format_version: int
    model_version: str
    files: dict[str, Annotated[str, StringConstraints(pattern=_SHA256.pattern)]]


def _where(location: tuple[int | str, ...]) -> str:
    """A validation error's location as a key path, e.g. ``model.calibration.slope``
    or ``registry.specs[0].kind``."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_]\w*", part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text or "(the whole file)"


def schema_error(path: Path, error: SchemaError) -> ScorerError:
    """One line naming the file, the key and what is wrong with it."""
    first = error.errors(include_url=False)[0]
    message = str(first["msg"])
    if first["type"] == "json_invalid":
        reason = message.removeprefix("Invalid JSON: ")
        return ScorerError(f"{path}: not valid JSON ({reason}); {_REEXPORT}")
    got = repr(first.get("input"))
    got = got if len(got) <= 60 else got[:57] + "..."
    more = error.error_count() - 1
    others = f" (and {more} more problem{'s' * (more > 1)})" if more else ""
    problem = message[:1].lower() + message[1:]
    return ScorerError(
        f"{path}: {_where(first['loc'])}: {problem}, got {got}{others}; {_REEXPORT}"
    )


def _check_paths(path: Path, manifest: Manifest) -> None:
    for relative in manifest.files:
        parts = relative.split("/")
        if not _RELATIVE_PATH.fullmatch(relative) or {".", ".."} & set(parts):
            raise ScorerError(
                f"{path}: files[{relative!r}]: not a path inside the folder; "
                f"{_REEXPORT}"
            )
    lacking = [name for name in REQUIRED_FILES if name not in manifest.files]
    if lacking:
        raise ScorerError(f"{path}: files: lacks {', '.join(lacking)}; {_REEXPORT}")


def read_manifest(folder: Path) -> Manifest:
    """A scorer folder's manifest, checked against its schema (not yet against the
    files)."""
    path = folder / BUNDLE_DIR / MANIFEST_FILE
    data = _read_bytes(path, MAX_SMALL_BYTES)
    try:
        head = TypeAdapter(dict[str, Any]).validate_json(data)
    except SchemaError as error:
        raise schema_error(path, error) from None
    if head.get("format_version") != FORMAT_VERSION:
        raise _format_error(folder, head.get("format_version"))
    try:
        manifest = Manifest.model_validate_json(data)
    except SchemaError as error:
        raise schema_error(path, error) from None
    _check_paths(path, manifest)
    return manifest


def _format_error(folder: Path, found: object) -> ScorerError:
    """Another format's folder: both versions named, with what to do."""
    exported = "?"
    spec = folder / BUNDLE_DIR / SPEC_FILE
    try:  # only for the message: the file is not trusted for anything else
        exported = str(json.loads(_read_bytes(spec, MAX_SPEC_BYTES))["lead_ml_version"])
    except (ScorerError, ValueError, KeyError, TypeError, RecursionError):
        pass
    return ScorerError(
        f"{folder}: scorer format {found} (exported by lead-ml {exported}), but "
        f"lead-ml {version('lead-ml')} reads format {FORMAT_VERSION}; re-export the "
        "model with this lead-ml or install the lead-ml version that exported it"
    )


def expected_version(text: str) -> str:
    """A pinned model version, as a scored row's model_version writes it (the
    ``lead-ml-scorer:`` prefix may be left out).

    >>> expected_version(" " + "AB" * 32)[:19]
    'lead-ml-scorer:abab'
    """
    digest = text.strip().removeprefix(VERSION_PREFIX).lower()
    if not _SHA256.fullmatch(digest):
        raise ScorerError(
            f"expected model version {text!r}: not a model version; give "
            f"{VERSION_PREFIX} and the 64 hex digits of the model_version column"
        )
    return VERSION_PREFIX + digest


def verify_folder(folder: Path, expect_version: str | None = None) -> str:
    """Check every file of a scorer folder against its manifest; the model version.

    Refused, naming the file: a file the manifest lists that is missing or whose
    sha256 differs, a file it does not list (an added ``.py`` or ``.pth`` could be
    imported), a link to a folder, a manifest whose model version is not the hash
    of its list, and, with ``expect_version``, any other version. Only reading: no
    file of the folder is imported or executed here.

    What this protects: against corruption and accidental edits of any file, always;
    with ``expect_version`` pinned from a trusted place (the version you validated,
    kept outside the folder), against any change at all, deliberate ones included,
    because the version is the hash of every file (of MLmodel without the keys MLflow
    rewrites on each save, which do not change how it loads). A manifest stored
    beside the files is no protection against an attacker who can write the folder:
    they recompute it. Through ``mlflow.pyfunc.load_model`` MLflow reads MLmodel,
    imports the loader it names, puts its ``code`` folders on sys.path and executes
    ``pyfunc_model.py`` (or its cached bytecode) before lead-ml's check runs, and
    env managers install ``requirements.txt``: check the folder first
    (:func:`load_pyfunc`)."""
    manifest = read_manifest(folder)
    listed = manifest.files
    extra = [p for p in folder_files(folder) if p not in listed]
    if extra:
        others = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise ScorerError(
            f"{folder / extra[0]}: not part of the exported scorer{others}: the "
            "manifest does not list it, and an added file could be imported or "
            f"executed; remove it or {_REEXPORT}"
        )
    for relative in sorted(listed):
        if file_digest(folder, relative) != listed[relative]:
            raise ScorerError(
                f"{folder / relative}: checksum mismatch, the file was changed or "
                "truncated after export; refusing to load it. Re-export with "
                "`lead-ml export`."
            )
    found = manifest_version(listed)
    if manifest.model_version != found:
        raise ScorerError(
            f"{folder / BUNDLE_DIR / MANIFEST_FILE}: model_version "
            f"{manifest.model_version} is not the hash of the files it lists "
            f"({found}): the manifest was edited; {_REEXPORT}"
        )
    if expect_version is not None and expected_version(expect_version) != found:
        raise ScorerError(
            f"{folder}: model version {found}, but {expected_version(expect_version)} "
            "is expected (--expect-version, load_pyfunc's expect_version or "
            f"{EXPECT_VERSION_ENV}); refusing another model. Use the pinned scorer "
            "folder, or change the pin if this model is meant to replace it"
        )
    return found


def _write_mlmodel(folder: Path, model_version: str) -> None:
    """MLmodel with the export's fixed time and paths, and a uuid of the version:
    the same model writes the same bytes (same DVC hash)."""
    meta = _read_mlmodel(folder / MLMODEL_FILE)
    meta["utc_time_created"] = EXPORT_TIME
    meta["model_uuid"] = model_version.removeprefix(VERSION_PREFIX)[:32]
    pyfunc = meta["flavors"]["python_function"]
    pyfunc["model_code_path"] = MODEL_CODE_FILE
    for artifact in pyfunc.get("artifacts", {}).values():
        artifact["uri"] = BUNDLE_DIR
    (folder / MLMODEL_FILE).write_text(yaml.safe_dump(meta, default_flow_style=False))


def seal_folder(folder: Path) -> str:
    """Write the manifest of an exported folder (every file's sha256 and the model
    version) and normalise its MLmodel; the model version."""
    # Python's cache of the models-from-code file, if MLflow ran it on save, would
    # hold a time stamp: not part of what an export writes.
    shutil.rmtree(folder / "__pycache__", ignore_errors=True)
    files = {
        relative: file_digest(folder, relative) for relative in folder_files(folder)
    }
    model_version = manifest_version(files)
    manifest = {
        "format_version": FORMAT_VERSION,
        "model_version": model_version,
        "files": files,
    }
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    (folder / BUNDLE_DIR / MANIFEST_FILE).write_text(text)
    _write_mlmodel(folder, model_version)
    return verify_folder(folder, model_version)


def find_folder(path: Path) -> Path:
    """The scorer folder (the MLflow model folder) of a path: the folder itself, or
    the one whose ``artifacts/bundle`` it is."""
    if not path.exists():
        raise ScorerError(
            f"{path}: no such folder; pass the folder `lead-ml export` wrote, "
            "e.g. models/scorer"
        )
    inside = path.name == "bundle" and path.parent.name == "artifacts"
    candidates = [path, path.parent.parent] if inside else [path]
    for folder in candidates:
        if (folder / BUNDLE_DIR / MANIFEST_FILE).is_file():
            return folder
    for folder in candidates:
        for old in (folder / BUNDLE_DIR, folder):
            if (old / "checksums.json").is_file():  # format 2 had no manifest
                found = 2 if old == folder / BUNDLE_DIR else "1 or 2"
                raise _format_error(folder, found)
    raise ScorerError(
        f"{path}: no lead-ml scorer here (no {BUNDLE_DIR}/{MANIFEST_FILE}); "
        "pass the folder `lead-ml export` wrote, e.g. models/scorer"
    )


# --- scorer.json's schema -----------------------------------------------------------


class _Bands(_Closed):
    thresholds: dict[str, float]
    meaning: str


class _Serving(_Closed):
    allow_activities_path: bool = False


class _Questions(_Closed):
    min_gain: float = Field(MIN_QUESTION_GAIN, ge=0, lt=1)


class _DriftBins(_Closed):
    kind: Literal["number", "category"]
    edges: list[float] | None = None
    levels: list[str] | None = None
    shares: list[float]


class _Join(_Closed):
    key: str
    id: str
    reading: dict[str, str | None]


class SpecSchema(_Closed):
    """scorer.json: every key with its type; the nested parts are the dataclasses
    the scorer builds from them (their fields, checked as closed objects)."""

    format_version: int
    lead_ml_version: str
    library_versions: dict[str, str]
    source_name: str
    contract: LeadContract
    created_column: str | None
    activities: list[str] | None
    registry: FeatureRegistry
    model: ModelInfo
    #: feature -> the answers a next question tries: [values by feature, words]
    answers: dict[str, list[tuple[dict[str, float | None], str]]]
    bands: _Bands
    drift_reference: dict[str, _DriftBins]
    #: How the pyfunc serves (export_scorer's allow_activities_path).
    serving: _Serving = _Serving()
    #: When a next question is offered (explain.min_question_gain of params).
    questions: _Questions = _Questions()
    #: How the deals and the activity log were read (reading_spec); None: defaults.
    reading: dict[str, dict[str, Any] | None] | None = None
    #: The many-to-one tables training joined (join_spec); none in older bundles.
    joins: dict[str, _Join] = Field(default_factory=dict)


#: Larger than any fitted value, small enough that nothing overflows.
MAX_CALIBRATION = 1e6
MAX_DAYS = 36_500


def _spec_problems(spec: SpecSchema) -> Iterator[tuple[str, str]]:
    """(key, problem) for what the types allow but a scorer cannot use."""
    names = spec.model.feature_names
    known = set(names)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        yield "model.feature_names", f"{', '.join(twice)} appear twice"
    if spec.registry.names != names:
        yield "registry.specs", "the features differ from model.feature_names"
    for key, mapping in (
        ("model.categories", spec.model.categories),
        ("model.dimensions", spec.model.dimensions),
        ("answers", spec.answers),
        ("drift_reference", dict.fromkeys(set(spec.drift_reference) - {"score"})),
    ):
        unknown = sorted(set(mapping) - known)
        if unknown:
            yield key, f"{', '.join(unknown[:3])} not among model.feature_names"
    for name, dimension in spec.model.dimensions.items():
        if dimension not in OUTPUT_DIMENSIONS:
            yield f"model.dimensions.{name}", f"{dimension!r} is no dimension"
    complete = spec.model.complete_features
    if set(complete) - known:
        yield "model.complete_features", "names a feature the model lacks"
    yield from _model_problems(spec)
    yield from _contract_problems(spec)
    yield from _answer_problems(spec, known)
    yield from _drift_problems(spec, known)


def _model_problems(spec: SpecSchema) -> Iterator[tuple[str, str]]:
    cuts = spec.model.band_thresholds
    if sorted(cuts) != ["A", "B", "C"]:
        yield "model.band_thresholds", "expected the thresholds of A, B and C"
    elif not 0 <= cuts["C"] <= cuts["B"] <= cuts["A"] <= 1:
        yield "model.band_thresholds", "expected 0 <= C <= B <= A <= 1"
    calibration = spec.model.calibration
    for key in ("slope", "intercept"):
        if abs(getattr(calibration, key)) > MAX_CALIBRATION:
            yield f"model.calibration.{key}", f"beyond +-{MAX_CALIBRATION:g}"
    if spec.model.best_iteration < 1:
        yield "model.best_iteration", "expected at least 1"
    if not 0 <= spec.registry.snapshot_days <= MAX_DAYS:
        yield "registry.snapshot_days", f"expected 0 to {MAX_DAYS:,} days"
    if not 0 < spec.registry.half_life_days <= MAX_DAYS:
        yield "registry.half_life_days", f"expected more than 0, at most {MAX_DAYS:,}"


def _contract_problems(spec: SpecSchema) -> Iterator[tuple[str, str]]:
    kinds = spec.contract.kinds
    if spec.contract.id_column not in kinds:
        yield "contract.id_column", "not among contract.kinds"
    for column in spec.contract.required:
        if column not in kinds:
            yield "contract.required", f"{column} not among contract.kinds"
    for column, (low, high) in spec.contract.bounds.items():
        if kinds.get(column) != "number":
            yield f"contract.bounds.{column}", "not a number column"
        elif low is not None and high is not None and low > high:
            yield f"contract.bounds.{column}", "the minimum exceeds the maximum"
    for column in spec.registry.column_kinds():
        if column not in kinds:
            yield "registry.specs", f"reads {column}, which the contract lacks"
    created = spec.created_column
    if created is not None and kinds.get(created) != "date":
        yield "created_column", "not a date column of the contract"
    if spec.activities is not None and len(spec.activities) != 3:
        yield "activities", "expected the key, time stamp and type columns"


def _answer_problems(spec: SpecSchema, known: set[str]) -> Iterator[tuple[str, str]]:
    for name, tried in spec.answers.items():
        for values, _ in tried:
            if set(values) - known:
                yield f"answers.{name}", "sets a feature the model lacks"


def _drift_problems(spec: SpecSchema, known: set[str]) -> Iterator[tuple[str, str]]:
    missing = sorted((known | {"score"}) - set(spec.drift_reference))
    if missing:
        yield "drift_reference", f"lacks {', '.join(missing[:3])}"
    for name, bins in spec.drift_reference.items():
        cuts = bins.edges if bins.kind == "number" else bins.levels
        extra = 2 if bins.kind == "number" else 1
        if cuts is None or len(bins.shares) != len(cuts) + extra:
            yield f"drift_reference.{name}", "shares do not match its bins"
        elif bins.edges is not None and bins.edges != sorted(bins.edges):
            yield f"drift_reference.{name}.edges", "not in increasing order"
        elif not all(0 <= share <= 1 for share in bins.shares):
            yield f"drift_reference.{name}.shares", "expected shares from 0 to 1"


def read_spec(bundle: Path) -> tuple[dict[str, Any], SpecSchema]:
    """scorer.json as plain JSON and as checked by its schema: types, then what
    the parts must agree on. Any problem is a ScorerError naming the key."""
    path = bundle / SPEC_FILE
    data = _read_bytes(path, MAX_SPEC_BYTES)
    try:
        raw = TypeAdapter(dict[str, Any]).validate_json(data)
    except SchemaError as error:
        raise schema_error(path, error) from None
    if raw.get("format_version") != FORMAT_VERSION:
        raise _format_error(bundle.parent.parent, raw.get("format_version"))
    missing = [key for key in SPEC_KEYS if key not in raw]
    if missing:
        raise ScorerError(f"{path}: lacks {', '.join(missing)}; {_REEXPORT}")
    try:
        spec = SpecSchema.model_validate_json(data)
    except SchemaError as error:
        raise schema_error(path, error) from None
    for key, problem in _spec_problems(spec):
        raise ScorerError(f"{path}: {key}: {problem}; {_REEXPORT}")
    return raw, spec


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


@dataclass
class JobCounts:
    """What a job counts besides its scores: rows in and scored, unseen category
    values per categorical feature and the drift bins (:class:`DriftMonitor`),
    added chunk by chunk as the batch job adds them, or merged from the partial
    counts of batches scored elsewhere (a Spark job's, :meth:`as_text`): integer
    counts, so any order of merging gives the same PSI."""

    monitor: DriftMonitor
    rows_in: int = 0
    scored: int = 0
    unseen: dict[str, int] = field(default_factory=dict)
    #: How many chunks or partial counts were added.
    parts: int = 0

    @classmethod
    def of(cls, scorer: Scorer) -> JobCounts:
        """No rows counted yet, against the scorer's training window."""
        return cls(DriftMonitor(scorer.spec["drift_reference"]))

    def add(self, scorer: Scorer, result: Scored, rows_in: int) -> None:
        """Count one chunk of ``rows_in`` leads, scored into ``result``, as
        `lead-ml score` counts each of its chunks (lead_ml.batch)."""
        output = result.output
        if len(output):
            self.monitor.add_rows(
                result.rows,
                scorer.model.info.feature_names,
                output["probability"].to_numpy(float),
            )
        self._merge(rows_in, len(output), result.unseen, {})

    def as_text(self) -> str:
        """The counts as compact JSON text (what :meth:`add_text` reads)."""
        drift = {name: [int(n) for n in c] for name, c in self.monitor.counts.items()}
        counts: dict[str, Any] = {"rows_in": self.rows_in, "scored": self.scored}
        counts |= {"unseen": self.unseen, "drift": drift}
        return json.dumps(counts, separators=(",", ":"))

    def add_text(self, text: str) -> None:
        """Merge partial counts written by :meth:`as_text`; ScorerError when they
        do not fit this training window (other features or bins)."""
        counts = json.loads(text)
        drift = {}
        for name, bins in counts["drift"].items():
            entry = self.monitor.reference.get(name)
            size = None if entry is None else len(_empty_counts(entry))
            if size != len(bins):
                raise ScorerError(
                    f"batch counts of {name!r} do not fit the scorer's drift "
                    f"reference ({len(bins)} bins, expected {size}): another model"
                )
            drift[name] = np.asarray(bins, dtype=np.int64)
        self._merge(counts["rows_in"], counts["scored"], counts["unseen"], drift)

    def _merge(
        self,
        rows_in: int,
        scored: int,
        unseen: Mapping[str, int],
        drift: Mapping[str, np.ndarray],
    ) -> None:
        self.rows_in += int(rows_in)
        self.scored += int(scored)
        for name, n in unseen.items():
            self.unseen[name] = self.unseen.get(name, 0) + int(n)
        for name, bins in drift.items():
            self.monitor.counts[name] = self.monitor.counts.get(name, 0) + bins
        self.parts += 1


def band_letters(thresholds: dict[str, float], probability: np.ndarray) -> np.ndarray:
    """Band A-D of each probability: A at or above ``thresholds["A"]``, B at or
    above B, C at or above C, D the rest (as scorer.json's ``bands.meaning`` says:
    a probability equal to a threshold is in that threshold's band).

    >>> cuts = {"A": 0.6, "B": 0.3, "C": 0.1}
    >>> band_letters(cuts, np.array([0.7, 0.6, 0.35, 0.3, 0.1, 0.05])).tolist()
    ['A', 'A', 'B', 'B', 'C', 'D']
    """
    cuts = [thresholds[b] for b in BANDS[:3]]
    position = np.searchsorted(-np.asarray(cuts), -probability, side="left")
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
        """``lead-ml-scorer:`` and the sha256 of the folder's manifest: a hash of
        every file, the booster and scorer.json's calibration and thresholds
        included (:func:`manifest_version`)."""
        return str(self.spec["model_version"])

    @property
    def min_question_gain(self) -> float:
        """The least change in win probability an answer must make for its next
        question to be offered (scorer.json ``questions``; older bundles: one
        percentage point)."""
        return float(self.spec.get("questions", {}).get("min_gain", MIN_QUESTION_GAIN))

    @property
    def thresholds(self) -> dict[str, float]:
        """The band thresholds (A, B, C) from the validation window."""
        return dict(self.spec["model"]["band_thresholds"])

    def dialect(self, table: str = "deals") -> Dialect:
        """How an export of this source's ``deals`` (leads) or ``activities`` is
        read: the training's separator, encoding, decimal mark, sheet and
        row-number id."""
        reading = self.spec.get("reading") or {}
        return Dialect.from_dict(reading.get(table))

    @property
    def joins(self) -> dict[str, dict[str, Any]]:
        """The many-to-one tables training joined onto the deals, by name: ``key``
        (the leads' column), ``id`` (the table's) and ``reading`` (its dialect)."""
        return dict(self.spec.get("joins") or {})

    @property
    def activity_columns(self) -> list[str] | None:
        """The activity log's columns (key, time stamp, type), or None when the
        model counts no activity."""
        columns = self.spec["activities"]
        return None if columns is None else list(columns)

    @property
    def counts_activities(self) -> bool:
        """Whether the model has activity features (without a log they are not
        known: see :meth:`score_chunk`)."""
        return self.activity_columns is not None

    @property
    def activity_features(self) -> list[str]:
        """The features counted from the activity log (none: counts no activity)."""
        return [spec.name for spec in self.registry.specs if spec.kind == "activity"]

    def no_activities(self) -> pd.DataFrame:
        """A read activity log (:meth:`read_activities`) without rows: given to
        :meth:`score_chunk`, it says the leads had no activity (counts of 0), where
        None says that nobody knows. Only for a scorer that counts activities."""
        nothing = pd.DataFrame(columns=self.activity_columns or [], dtype="string")
        return self.read_activities(nothing)[0]

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

        ``activities``: the log already read (:meth:`read_activities`); None when
        there is none, and then the activity features are not known (scored as
        missing values are), never 0: a lead has no activity only when a log says
        so (:meth:`no_activities`). ``rows`` numbers the leads in their file
        (default 0, 1, ...): rejects and reasons use these numbers. Of leads
        sharing an id, the first valid one is scored.
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
        if activities is None and self.counts_activities:
            # Counted from no log, every lead would have 0 activities, and be
            # scored as never engaged (half the mean probability on the synthetic
            # CRM): without a log the counts are not known.
            features[self.activity_features] = np.nan
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
        # Explained, each lead's way through the trees is decided once: its score,
        # contributions and answered scores are read from it.
        codes = tree_codes(self.model, rows) if explain_reasons else None
        raw = (
            rows_margin(self.model, rows)
            if codes is None
            else codes_margin(self.model, rows, codes)
        )
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
                self.registry,
                self.model,
                self.answers,
                features,
                rows,
                raw,
                min_gain=self.min_question_gain,
                codes=codes,
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
        ``reject_reason``; ``score`` is a float so that it can be empty. Cells may
        have any type pandas or JSON gives them (:func:`as_exported`).
        """
        log = None
        if activities is not None and len(activities):
            log, _ = self.read_activities(activities)
        elif activities is not None and self.counts_activities:  # a log, no rows
            log = self.no_activities()
        scored = self.score_chunk(as_exported(self, leads), log, explain_reasons)
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


def _tree_layout_problem(data: bytes) -> str | None:
    """What is wrong with the tree layout of LightGBM's text format, if anything.

    LightGBM cuts the file into trees by the byte counts of its ``tree_sizes`` line
    and aborts the whole process when they do not fit: any edit that changes a
    tree's length does that, so the counts are checked here first.
    """
    found = re.search(rb"^tree_sizes=([0-9 ]*)$", data, re.MULTILINE)
    start = data.find(b"\nTree=0\n") + 1
    if found is None or start == 0:
        return "no tree_sizes line or no first tree"
    position = start
    for number, size in enumerate(int(s) for s in found.group(1).split()):
        if not data.startswith(b"Tree=%d\n" % number, position):
            return f"tree {number} is not where tree_sizes puts it"
        position += size
    if not data.startswith(b"end of trees", position):
        return "the trees do not end where tree_sizes says"
    # The parameters block too: LightGBM aborts on a line it cannot split.
    head, _, rest = data[position:].partition(b"\nparameters:\n")
    block, ended, _ = rest.partition(b"\nend of parameters")
    if rest and not ended:
        return "the parameters do not end"
    for line in block.splitlines():
        if line and not re.fullmatch(rb"\[\w+: [^\n]*\]", line):
            return f"a parameter line reads {line[:40]!r}"
    return None


def _read_booster(path: Path, spec: SpecSchema, spec_path: Path) -> Any:
    """The LightGBM booster, checked against scorer.json's features."""
    import lightgbm as lgb

    problem = _tree_layout_problem(path.read_bytes())
    if problem is not None:
        raise ScorerError(f"{path}: not a LightGBM model ({problem}); {_REEXPORT}")
    try:
        booster = lgb.Booster(model_file=str(path))
    except lgb.basic.LightGBMError as error:
        raise ScorerError(
            f"{path}: not a LightGBM model ({error}); {_REEXPORT}"
        ) from None
    names = spec.model.feature_names
    if booster.num_feature() != len(names) or booster.feature_name() != names:
        raise ScorerError(
            f"{spec_path}: model.feature_names: {len(names)} features, but "
            f"{path.name} has {booster.num_feature()} (or other names); {_REEXPORT}"
        )
    if spec.model.best_iteration > booster.current_iteration():
        raise ScorerError(
            f"{spec_path}: model.best_iteration: {spec.model.best_iteration}, but "
            f"{path.name} has {booster.current_iteration()} trees; {_REEXPORT}"
        )
    return booster


def _open_bundle(bundle: Path, model_version: str) -> Scorer:
    """The Scorer of a bundle folder whose files are already checked."""
    raw, spec = read_spec(bundle)
    booster = _read_booster(bundle / BOOSTER_FILE, spec, bundle / SPEC_FILE)
    model = TrainedModel(booster=booster, info=spec.model)
    return Scorer(model, raw | {"model_version": model_version})


def load_scorer(path: Path | str, expect_version: str | None = None) -> Scorer:
    """Load a scorer from its folder (or the folder's artifacts/bundle).

    Every file is checked before any is parsed (:func:`verify_folder`, which says
    what that protects), then scorer.json against its schema and the booster against
    scorer.json. ``expect_version``: refuse any other model version (pin it to the
    model_version you validated). Nothing in the folder is imported or executed.
    """
    folder = find_folder(Path(path))
    model_version = verify_folder(folder, expect_version)
    return _open_bundle(folder / BUNDLE_DIR, model_version)


def signature_example(scorer: Scorer, leads: pd.DataFrame) -> pd.DataFrame:
    """Lead rows typed by their kinds: numbers as doubles (any may be empty), dates
    as time stamps, the rest as text. The pyfunc's signature takes any type for
    every column (:func:`_signature`); this is the typed form of its example."""
    example = leads[scorer.contract.columns].copy()
    for column, kind in scorer.contract.kinds.items():
        if kind == "number":
            example[column] = example[column].astype("float64")
        elif kind == "date":
            example[column] = example[column].astype("datetime64[ms]")
        else:
            example[column] = example[column].astype("string")
    return example


# --- many-to-one tables joined at scoring (--table NAME=PATH) ----------------------


@dataclass(frozen=True)
class JoinedTable:
    """A many-to-one table joined onto the leads as training joined it (first row
    per id kept, rows without an id left out): ``rows`` holds the columns the
    scorer reads from it, indexed by the table's id as text."""

    name: str
    key: str
    rows: pd.DataFrame

    def join(
        self, frame: pd.DataFrame, missing: Sequence[str]
    ) -> tuple[pd.DataFrame, int]:
        """The lead rows with the table's columns added by key, and how many leads
        have no match (their columns empty: unknown, as in training)."""
        keys = as_text(id_text(frame[self.key]), missing)
        joined = self.rows.reindex(keys.to_numpy()).set_axis(frame.index)
        unmatched = int((~keys.isin(self.rows.index)).sum())
        return pd.concat([frame, joined], axis=1), unmatched


def read_join_tables(
    scorer: Scorer, tables: Mapping[str, Path | str]
) -> list[JoinedTable]:
    """Each table given (name -> file) that training joined onto the deals, read
    by its training dialect with every scorer column it holds (first row per id,
    rows without an id left out), in the scorer's order of joins. ScorerError for
    a table the model never joined or a file without the table's id."""
    expected, missing = scorer.joins, scorer.contract.missing_values
    unknown = sorted(set(tables) - set(expected))
    if unknown:
        joined = ", ".join(expected) or "none"
        raise ScorerError(
            f"--table {unknown[0]}: the model joined no table {unknown[0]!r} in "
            f"training (it joined: {joined}); drop it"
        )
    found = []
    for name, spec in expected.items():
        if name not in tables:
            continue
        path, what = Path(tables[name]), f"--table {name}"
        if not path.exists():
            raise FileNotFoundError(f"{path}: the {name} table ({what}) not found")
        dialect = Dialect.from_dict(spec["reading"]).resolve(path, what)
        columns = read_header(path, what, dialect)
        if spec["id"] not in columns:
            raise ScorerError(
                f"{path} ({what}): no column {spec['id']!r}, the id training joined "
                f"{name} by; give the {name} export training read"
            )
        wanted = [c for c in scorer.contract.columns if c in columns]
        raw = read_table(path, what, dialect)
        ids = as_text(id_text(raw[spec["id"]]), missing)
        keep = (ids.notna() & ~ids.duplicated(keep="first")).to_numpy()
        rows = raw.loc[keep, wanted].set_axis(ids[keep].to_numpy())
        found.append(JoinedTable(name, spec["key"], rows))
    return found


def joins_onto(
    scorer: Scorer,
    tables: Sequence[JoinedTable],
    header: Sequence[str],
    source: Any,
    complete: bool = True,
) -> list[JoinedTable]:
    """The tables (:func:`read_join_tables`) as joined onto leads with the columns
    ``header``: each keeps the scorer columns that neither the leads nor an earlier
    table give. ScorerError for leads without a table's key, and (``complete``, as
    `lead-ml score` asks) for leads lacking columns while a joined table was not
    given (naming it and what to pass); ``source`` names the leads in messages."""
    expected = scorer.joins
    found, have = [], list(header)
    for table in tables:
        if table.key not in have:
            raise ScorerError(
                f"{source}: no column {table.key!r}, the key training joined "
                f"{table.name} on (joining the {table.name} table needs it)"
            )
        wanted = [c for c in table.rows.columns if c not in have]
        found.append(JoinedTable(table.name, table.key, table.rows[wanted]))
        have += wanted
    lacking = scorer.contract.missing_columns(have)
    given = {table.name for table in tables}
    absent = [n for n in expected if n not in given]
    # No table gives the leads' own id: a file without it is told so (by
    # check_columns), not sent to fetch a table.
    if complete and lacking and absent and scorer.id_column not in lacking:
        passes = " ".join(f"--table {n}=PATH" for n in absent)
        raise ScorerError(
            f"{source}: missing column(s) {', '.join(lacking)}; training "
            f"joined table(s) {', '.join(absent)} onto the deals by key "
            f"({', '.join(expected[n]['key'] for n in absent)}): pass {passes} "
            "(the export of each table), or leads with those columns joined"
        )
    return found


def with_joins(
    frame: pd.DataFrame, tables: Sequence[JoinedTable], missing: Sequence[str]
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Lead rows with every table's columns joined by key (:meth:`JoinedTable.join`),
    and per table how many leads have no row in it."""
    unmatched = {}
    for table in tables:
        frame, unmatched[table.name] = table.join(frame, missing)
    return frame, unmatched


# --- the pyfunc ---------------------------------------------------------------------


def _switched_on(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class ServingSettings:
    """How the pyfunc serves: the pinned model version (None: any) and whether a
    request's ``activities_path`` may name a file to read."""

    expect_version: str | None = None
    allow_activities_path: bool = False

    def activities_file(self, activities_path: str) -> Path:
        """The file a request's activities_path names, when that is allowed."""
        if not self.allow_activities_path:
            raise ScorerError(
                "activities_path: this scorer reads no file a request names (a "
                "served model would read any path its server can see); to allow it, "
                f"set {ALLOW_ACTIVITIES_ENV}=1 where the model is loaded, load it "
                "with lead_ml.scorer.load_pyfunc(..., allow_activities_path=True), "
                "or export it with export_scorer(..., allow_activities_path=True)"
            )
        return Path(activities_path)

    def table_files(self, tables: Sequence[str]) -> dict[str, Path]:
        """The files a request's ``tables`` param names (``NAME=PATH`` each, as
        `lead-ml score --table`), when reading a file a request names is allowed
        (the switch of ``activities_path``)."""
        given = [t for t in tables if str(t).strip()]
        if given and not self.allow_activities_path:
            raise ScorerError(
                "tables: this scorer reads no file a request names (a served model "
                "would read any path its server can see); to allow it (with "
                f"activities_path), set {ALLOW_ACTIVITIES_ENV}=1 where the model is "
                "loaded or load it with lead_ml.scorer.load_pyfunc(..., "
                "allow_activities_path=True); or join the tables onto the leads"
            )
        files: dict[str, Path] = {}
        for option in given:
            name, sep, path = str(option).partition("=")
            name = name.strip()
            if not sep or not name or not path.strip() or name in files:
                raise ScorerError(
                    f"tables: {option!r}: give each table once as NAME=PATH, e.g. "
                    "['accounts=accounts.csv'] (NAME as under source.tables)"
                )
            files[name] = Path(path.strip())
        return files


#: What load_pyfunc asks of the pyfunc it is loading (MLflow passes nothing through
#: but a model_config, whose keys MLflow would also log as params of the run).
_LOADING: ContextVar[ServingSettings | None] = ContextVar("_LOADING", default=None)


def _requested(environ: Mapping[str, str]) -> ServingSettings:
    """What the loader asks for: the environment's settings (LEAD_ML_EXPECT_VERSION,
    LEAD_ML_ALLOW_ACTIVITIES_PATH=1), else :func:`load_pyfunc`'s."""
    loading = _LOADING.get() or ServingSettings()
    pinned = environ.get(EXPECT_VERSION_ENV, "").strip()
    allowed = _switched_on(environ.get(ALLOW_ACTIVITIES_ENV, ""))
    return ServingSettings(
        expected_version(pinned) if pinned else loading.expect_version,
        allowed or loading.allow_activities_path,
    )


def open_pyfunc(
    model_file: Path,
    artifacts: Mapping[str, str],
    environ: Mapping[str, str] = os.environ,
) -> tuple[Scorer, ServingSettings]:
    """What the pyfunc's load_context does: the folder of the models-from-code file
    MLflow executed, checked whole (and against the pinned version, if any), its
    Scorer, and how it serves (reading activities_path allowed by the loader or at
    export, scorer.json's ``serving``)."""
    folder = model_file.resolve().parent
    bundle = Path(artifacts.get("bundle", "")).resolve()
    if bundle != (folder / BUNDLE_DIR).resolve():
        raise ScorerError(
            f"{folder / MLMODEL_FILE}: its bundle artifact is {bundle}, not "
            f"{BUNDLE_DIR} of the folder; {_REEXPORT}"
        )
    asked = _requested(environ)
    scorer = load_scorer(folder, asked.expect_version)
    exported = bool(scorer.spec.get("serving", {}).get("allow_activities_path"))
    allowed = asked.allow_activities_path or exported
    return scorer, replace(asked, allow_activities_path=allowed)


@contextmanager
def _private_bytecode() -> Iterator[None]:
    """Imports read and write compiled bytecode only in a fresh temporary folder:
    a ``__pycache__`` planted in the scorer folder is never used."""
    before = sys.pycache_prefix
    # Process-wide while MLflow loads: another thread importing meanwhile compiles
    # afresh too (slower, not wrong).
    with tempfile.TemporaryDirectory() as cache:
        sys.pycache_prefix = cache
        try:
            yield
        finally:
            sys.pycache_prefix = before


def load_pyfunc(
    path: Path | str,
    expect_version: str | None = None,
    allow_activities_path: bool = False,
) -> Any:
    """``mlflow.pyfunc.load_model`` of a scorer folder, checked before MLflow reads
    any of it: MLmodel and ``pyfunc_model.py`` too, which a check inside the pyfunc
    comes too late for (see :func:`verify_folder`). The pyfunc then checks the
    folder again, pinned to the version found. ``allow_activities_path``: let
    requests name an activity file to read (see :class:`ServingSettings`).

    The check and MLflow's load read the folder one after the other: keep it where
    nobody else can write while it loads.
    """
    import importlib

    import mlflow

    folder = find_folder(Path(path))
    checked = verify_folder(folder, expect_version)
    # The loader the checked MLmodel names, imported before bytecode goes private.
    importlib.import_module("mlflow.pyfunc.loaders.code_model")
    token = _LOADING.set(ServingSettings(checked, allow_activities_path))
    try:
        with _private_bytecode():
            return mlflow.pyfunc.load_model(str(folder))
    finally:
        _LOADING.reset(token)


#: The model version of a bundle not yet in a folder (the export's own example run).
_UNSEALED = VERSION_PREFIX + "0" * 64


def required_columns(contract: LeadContract) -> list[str]:
    """The input columns a lead row must have: the id, and the created date when
    the model counts activities from it. A lead may lack any other column (a
    MEDDIC answer nobody asked yet): it is read as unknown, as a blank value is."""
    return [contract.id_column, *contract.required]


def with_absent_columns(contract: LeadContract, leads: pd.DataFrame) -> pd.DataFrame:
    """The lead rows with every optional column they lack added as unknown (empty);
    the input is not changed. A missing required column is left for the scorer to
    name (:meth:`Scorer.check_columns`)."""
    required = set(required_columns(contract))
    absent = [c for c in contract.missing_columns(leads.columns) if c not in required]
    empty = {c: pd.Series(None, index=leads.index, dtype=object) for c in absent}
    return leads.assign(**empty) if empty else leads


def pyfunc_output(scores: pd.DataFrame) -> pd.DataFrame:
    """:meth:`Scorer.score`'s output as the pyfunc returns it: numbers in pandas'
    nullable dtypes (``Float64``, ``score`` as ``Int64``), so that a rejected row's
    empty values are ``<NA>``, which MLflow's server writes as JSON ``null`` (NaN
    would be the ``NaN`` literal, which is not JSON); text stays ``string``.

    >>> scores = pd.DataFrame({"probability": [0.5, np.nan], "score": [50.0, np.nan]})
    >>> pyfunc_output(scores).to_dict("records")[1]
    {'probability': None, 'score': None}
    """
    numbers = {
        c: "Int64" if c == "score" else "Float64"
        for c in scores.columns
        if pd.api.types.is_float_dtype(scores[c].dtype)
    }
    return scores.astype(numbers)


#: Kinds read from text, whose numbers pandas or JSON may have typed: ``3`` or
#: ``3.0`` for the text ``3`` the export holds.
_TEXT_KINDS = ("category", "text", "bool", "evidence")


def _number_text(value: Any, known: Collection[str]) -> Any:
    """One cell of a text-read column as the export wrote it (see
    :func:`numbers_as_written`); anything but a number as it is."""
    if not isinstance(value, int | float | np.number) or isinstance(value, bool):
        return value
    if isinstance(value, int | np.integer):
        short = str(int(value))
        return short if short in known or f"{short}.0" not in known else f"{short}.0"
    if not np.isfinite(value):
        return None if np.isnan(value) else str(float(value))
    written = str(float(value))
    short = str(int(value)) if float(value).is_integer() else written
    return written if written in known and short not in known else short


def numbers_as_written(values: pd.Series, levels: Collection[str] = ()) -> pd.Series:
    """A text-read column's numbers (as ``pd.read_csv`` or JSON types them) as the
    text an export holds: a whole number without a decimal point (``3.0`` -> ``3``,
    as an int64 column reads), unless only its decimal form is among ``levels``
    (the training levels, compared trimmed and in any case, as the model compares
    them); other numbers as Python writes them. Text, booleans and missing values
    are kept; a column holding no number is returned as it is.

    >>> numbers_as_written(pd.Series([3.0, 2.5, None])).tolist()
    ['3', '2.5', None]
    >>> numbers_as_written(pd.Series([3, "x", 4.0], dtype=object), ["4.0"]).tolist()
    ['3', 'x', '4.0']
    """
    dtype = values.dtype
    typed = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(
        dtype
    )
    mixed = dtype == np.dtype(object) and pd.api.types.infer_dtype(
        values, skipna=True
    ) not in ("string", "empty", "boolean")
    if not (typed or mixed):
        return values
    known = {str(level).strip().lower() for level in levels}
    cells = [_number_text(value, known) for value in values.astype(object)]
    return pd.Series(cells, index=values.index, dtype=object, name=values.name)


def _column_levels(scorer: Scorer) -> dict[str, list[str]]:
    """Per source column, the training levels of the categories read from it."""
    categories = scorer.model.info.categories
    levels: dict[str, list[str]] = {}
    for spec in scorer.registry.specs:
        if spec.column and spec.name in categories:
            levels.setdefault(spec.column, []).extend(categories[spec.name])
    return levels


def as_exported(scorer: Scorer, leads: pd.DataFrame) -> pd.DataFrame:
    """Lead rows as the export holds them, whatever types pandas or JSON gave their
    cells: the numbers of every text-read column (categories, the id, yes/no
    columns) as written (:func:`numbers_as_written`), so that ``pd.read_csv`` of
    the export scores as `lead-ml score` of the file does. The input is not changed.
    """
    levels = _column_levels(scorer)
    once = leads.columns[~leads.columns.duplicated(keep=False)]
    changed = {
        column: numbers_as_written(leads[column], levels.get(column, ()))
        for column, kind in scorer.contract.kinds.items()
        # a column given twice is refused as it is (Scorer.check_columns)
        if kind in _TEXT_KINDS and column in once
    }
    return leads.assign(**changed) if changed else leads


def predict_leads(
    scorer: Scorer,
    leads: pd.DataFrame,
    activities: pd.DataFrame | None = None,
    explain_reasons: bool = True,
) -> pd.DataFrame:
    """What the pyfunc returns for a frame of lead rows: one row per lead, input
    order kept, cells of any type (``pd.read_csv`` of the export as it is, see
    :func:`as_exported`), optional columns a lead lacks read as unknown, rejected
    rows with empty scores and their ``reject_reason`` (see :func:`pyfunc_output`).
    """
    numbered = with_row_numbers(scorer, leads)
    complete = with_absent_columns(scorer.contract, numbered)
    return pyfunc_output(scorer.score(complete, activities, explain_reasons))


def row_number_id(scorer: Scorer) -> bool:
    """Whether the scorer's id is the export's row number (``id: {row_number:
    true}``): the leads file has no id column and `lead-ml score` numbers its rows."""
    return scorer.dialect("deals").row_number == scorer.id_column


def with_row_numbers(scorer: Scorer, leads: pd.DataFrame) -> pd.DataFrame:
    """The lead rows with the row-number id added (1-based, in input order, as
    `lead-ml score` numbers a file's rows) when the scorer's id is the row number
    and the frame has no such column; otherwise the rows as they are. The input is
    not changed."""
    if not row_number_id(scorer) or scorer.id_column in leads.columns:
        return leads
    numbers = np.arange(1, len(leads) + 1).astype(str)
    numbered = leads.copy()
    numbered.insert(
        0, scorer.id_column, pd.Series(numbers, index=leads.index, dtype="string")
    )
    return numbered


def drop_bytecode(folder: Path) -> None:
    """Remove the bytecode cache of ``pyfunc_model.py`` that an earlier
    ``mlflow.pyfunc.load_model`` of the folder left in ``__pycache__``: MLflow's own
    loader runs a cached bytecode whose header matches the source's size and time
    instead of the checked source, and no check can tell a planted one from a cache
    (:func:`verify_folder` lets the cache through for loaders that never read it:
    :func:`load_scorer`, :func:`load_pyfunc`). Any other file there is refused by
    :func:`verify_folder`; a cache that cannot be removed is a ScorerError."""
    cache = folder / "__pycache__"
    if not cache.is_dir():
        return
    try:
        for path in sorted(cache.iterdir()):
            if _MODEL_CODE_CACHE.fullmatch(f"{cache.name}/{path.name}"):
                path.unlink()
        if not any(cache.iterdir()):
            cache.rmdir()
    except OSError as error:
        raise ScorerError(
            f"{cache}: compiled Python in the scorer folder, left by an earlier "
            "mlflow.pyfunc.load_model or put there, cannot be removed "
            f"({error.strerror}); MLflow's server would run it instead of the checked "
            f"pyfunc_model.py. Delete it (rm -r {cache}) and serve again"
        ) from None


def serve_command(
    folder: Path,
    model_version: str,
    host: str = "127.0.0.1",
    port: int = 5001,
    workers: int = 1,
    environ: Mapping[str, str] = os.environ,
) -> tuple[list[str], dict[str, str]]:
    """The command and environment that serve a checked scorer folder with MLflow's
    scoring server (``mlflow models serve --env-manager local``), pinned to
    ``model_version`` (:data:`EXPECT_VERSION_ENV`): a folder changed after its check
    is refused when the server loads it. The folder's bytecode cache is removed
    first (:func:`drop_bytecode`), and the server writes none.

    MLflow starts its server as ``bash -c "exec uvicorn ..."``, found on PATH: the
    folder of this Python (a venv's ``bin``) goes first on PATH, so the server runs
    in the environment lead-ml is installed in, activated or not.

    >>> argv, env = serve_command(Path("models/scorer"), "v", environ={"PATH": "/bin"})
    >>> argv[1:5], env["PATH"].endswith(os.pathsep + "/bin"), env[EXPECT_VERSION_ENV]
    (['-m', 'mlflow', 'models', 'serve'], True, 'v')
    """
    drop_bytecode(folder)
    here = str(Path(sys.executable).parent)
    path = [here, *(p for p in environ.get("PATH", "").split(os.pathsep) if p)]
    env = dict(environ) | {
        "PATH": os.pathsep.join(path),
        EXPECT_VERSION_ENV: model_version,
        # The server imports pyfunc_model.py from the folder: it must not leave
        # bytecode there, which the next server would run instead of the source.
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    # The scorer holds no pickle: refuse any (MLflow allows them by default).
    env.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    argv = [sys.executable, "-m", "mlflow", "models", "serve"]
    argv += ["-m", str(folder.absolute()), "--env-manager", "local"]
    argv += ["--host", host, "--port", str(port), "--workers", str(workers)]
    return argv, env


def serving_example(scorer: Scorer, leads: pd.DataFrame) -> pd.DataFrame:
    """:func:`signature_example` as valid JSON writes it (MLflow's
    ``serving_input_example.json``): empty numbers ``null`` rather than ``NaN``,
    dates as ISO text (the signature takes any type for dates)."""
    example = signature_example(scorer, leads)
    for column, kind in scorer.contract.kinds.items():
        if kind == "number":
            example[column] = example[column].astype("Float64")
        elif kind == "date":
            stamps = example[column]
            text = stamps.dt.strftime("%Y-%m-%dT%H:%M:%S").astype(object)
            example[column] = text.where(stamps.notna(), None)
    return example


def _signature(scorer: Scorer, example: pd.DataFrame) -> Any:
    """The pyfunc's MLflow signature. Only the id (and the created date when
    activities are counted) is a required column: a lead may lack any other
    (:func:`with_absent_columns`). Every column takes any type, and the scorer
    reads it by its kind as `lead-ml score` reads a file: a declared type would
    let MLflow refuse ``pd.read_csv`` of the export itself before the scorer sees
    it (int64 numbers for a double, numbers in a category column for a string,
    a time stamp with a time zone for a datetime)."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import (
        AnyType,
        ColSpec,
        DataType,
        ParamSchema,
        ParamSpec,
        Schema,
        TensorSpec,
    )

    inferred = infer_signature(example, params={"explain": True, "activities_path": ""})
    params = inferred.params
    if scorer.joins:  # the many-to-one tables to join, as `lead-ml score --table`
        tables = ParamSpec("tables", DataType.string, default=[], shape=(-1,))
        params = ParamSchema([*params.params, tables])
    required = set(required_columns(scorer.contract))
    if row_number_id(scorer):  # numbered in input order when absent (predict_leads)
        required.discard(scorer.id_column)
    inputs: list[ColSpec | TensorSpec] = [
        ColSpec(AnyType(), spec.name, required=spec.name in required)
        for spec in inferred.inputs.inputs
    ]
    # The keys the ``tables`` param joins by: MLflow drops columns not named here.
    keys = {spec["key"] for spec in scorer.joins.values()} - set(example.columns)
    inputs += [ColSpec(AnyType(), key, required=False) for key in sorted(keys)]
    # The output's types from its dtypes (MLflow's inference warns on Int64). A
    # rejected row's values are empty, but for its reason: none is always there.
    types = {"Float64": DataType.double, "Int64": DataType.long}
    outputs: list[ColSpec | TensorSpec] = [
        ColSpec(types.get(str(dtype), DataType.string), str(name), required=False)
        for name, dtype in predict_leads(scorer, example).dtypes.items()
    ]
    return ModelSignature(Schema(inputs), Schema(outputs), params)


def scorer_requirements() -> list[str]:
    """requirements.txt of a scorer folder: lead-ml and every library lead-ml
    depends on (what the scorer imports is among them), each pinned to the version
    installed where it is exported: the same list for every source.

    lead-ml is not on PyPI: install it from a wheel built from the same commit
    (``pip install --find-links DIR -r requirements.txt``; README, "Installing the
    scorer elsewhere"). A dependency not installed here (its marker false) is kept
    as declared.
    """
    pins = [_pinned(requirement) for requirement in requires("lead-ml") or []]
    return [f"lead-ml=={version('lead-ml')}", *(pin for pin in pins if pin)]


_REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _pinned(requirement: str) -> str | None:
    """A dependency of lead-ml pinned to the installed version; None for an
    extra's (``; extra == "dev"``)."""
    declared, _, marker = (part.strip() for part in requirement.partition(";"))
    named = _REQUIREMENT_NAME.match(declared)
    if "extra" in marker or named is None:
        return None
    try:
        pin = f"{named.group()}=={version(named.group())}"
    except PackageNotFoundError:
        pin = declared
    return f"{pin}; {marker}" if marker else pin


def pyfunc_arguments(bundle: Path, input_example: pd.DataFrame) -> dict[str, Any]:
    """Arguments of mlflow.pyfunc save_model/log_model for a bundle (from code).

    No code_paths: the folder ships none of lead_ml's code (which MLflow would put
    on sys.path before any check); the pinned requirements install lead-ml itself.
    """
    scorer = _open_bundle(bundle, _UNSEALED)
    example = signature_example(scorer, input_example)
    return {
        "python_model": str(Path(__file__).parent / MODEL_CODE_FILE),
        "artifacts": {"bundle": str(bundle)},
        "signature": _signature(scorer, example),
        # Written as MLflow's serving_input_example.json: valid JSON, no NaN.
        "input_example": serving_example(scorer, input_example),
        # Explicit requirements: no slow inference, and the exact training stack.
        "pip_requirements": scorer_requirements(),
    }


def export_scorer(
    model: TrainedModel,
    spec: dict[str, Any],
    input_example: pd.DataFrame,
    out_dir: Path,
    staging: Path,
    allow_activities_path: bool = False,
) -> dict[str, Any]:
    """Write the bundle to staging, then the sealed MLflow pyfunc folder to out_dir.

    The arguments returned log the same model to MLflow: the bundle in staging gets
    the manifest too, so the logged copy checks out with the same model version.
    ``allow_activities_path``: let the pyfunc read the file a request's
    activities_path names (off: see :class:`ServingSettings`); kept in scorer.json's
    ``serving``, so it is part of the model version. No model_config: MLflow would
    log its keys as params of the training run.
    """
    import mlflow

    quiet_environment()
    serving = {"allow_activities_path": allow_activities_path}
    bundle = write_bundle(model, spec | {"serving": serving}, staging)
    arguments = pyfunc_arguments(bundle, input_example)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    mlflow.pyfunc.save_model(path=str(out_dir), **arguments)
    seal_folder(out_dir)
    shutil.copyfile(out_dir / BUNDLE_DIR / MANIFEST_FILE, bundle / MANIFEST_FILE)
    return arguments


# --- model references ---------------------------------------------------------------

#: Where scorer versions downloaded from the tracking store are kept (one folder
#: each); default: ``$XDG_CACHE_HOME/lead-ml/models`` or ``~/.cache/lead-ml/models``.
CACHE_ENV = "LEAD_ML_MODEL_CACHE"
REFERENCE_FORMS = (
    "a scorer folder, models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID/PATH"
)
_MODELS_URI = re.compile(
    r"models:/(?P<name>[^/@]+)(@(?P<alias>[^/@]+)|/(?P<version>[^/@]+))"
)
_RUNS_URI = re.compile(r"runs:/(?P<run_id>[^/]+)/(?P<path>[^/].*)")


@dataclass(frozen=True)
class ScorerSource:
    """Where a scorer folder came from: a folder as given, or a registered version
    (or a run's model) downloaded from the tracking store into the cache."""

    reference: str
    folder: Path
    store: str | None = None
    registered_model: str | None = None
    version: int | None = None
    alias: str | None = None
    run_id: str | None = None

    def describe(self) -> str:
        """``lead-ml-scorer v3 (alias champion)``, a run's model, or the folder."""
        if self.version is not None:
            alias = f" (alias {self.alias})" if self.alias else ""
            return f"{self.registered_model} v{self.version}{alias}"
        return self.reference if self.run_id else str(self.folder)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready view (the folder as text, and :meth:`describe`)."""
        return asdict(self) | {
            "folder": str(self.folder),
            "description": self.describe(),
        }


def model_cache() -> Path:
    """The folder that keeps downloaded scorer versions (see :data:`CACHE_ENV`)."""
    given = os.environ.get(CACHE_ENV)
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lead-ml" / "models"


def resolve_scorer(reference: str | Path, cache: Path | None = None) -> ScorerSource:
    """The local scorer folder a reference names: a folder as it is, or
    ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` (or ``latest``) and
    ``runs:/RUN_ID/PATH`` looked up in the tracking store in force
    (:func:`lead_ml.tracking.tracking_uri`) and downloaded once into a folder of
    their own in ``cache`` (default :func:`model_cache`).

    A download is checked whole (:func:`verify_folder`, against the content version
    its registered version is tagged with, when it is) before it is renamed into
    place, so a cache folder is complete or absent, also with jobs resolving the
    same version at once. An alias is looked up on every call: moving it moves what
    is scored. Load the folder with :func:`load_scorer`, which checks it again.

    >>> resolve_scorer("models/scorer").describe()
    'models/scorer'
    """
    text = str(reference).strip()
    if not text.startswith(("models:", "runs:")):
        return ScorerSource(text, Path(reference))
    # The registry is the store's own unless MLFLOW_REGISTRY_URI names another.
    client = store_client()
    root = model_cache() if cache is None else cache
    if found := _MODELS_URI.fullmatch(text):
        return _registered_scorer(client, text, found, root)
    if found := _RUNS_URI.fullmatch(text):
        return _run_scorer(client, text, found["run_id"], found["path"], root)
    raise ScorerError(
        f"{text}: not a model reference; give {REFERENCE_FORMS} (e.g. "
        "models:/lead-ml-scorer@champion)"
    )


def _shown(store: str) -> str:
    """A store URI for messages, without any password in it."""
    return re.sub(r"//[^/@]*@", "//***@", store)


def _slug(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text)[:60]


def _cache_key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _registered_scorer(
    client: Any, text: str, found: re.Match[str], root: Path
) -> ScorerSource:
    """A registered version (by alias, number or ``latest``), downloaded."""
    import mlflow

    name, alias = found["name"], found["alias"]
    store = str(client.tracking_uri)
    number = _version_number(client, text, name, alias, found["version"])
    entry = client.get_model_version(name, str(number))
    folder = root / (
        f"{_slug(name)}-v{number}-"
        f"{_cache_key(store, name, str(number), str(entry.source), str(entry.run_id))}"
    )
    location = client.get_model_version_download_uri(name, str(number))

    def download(staging: Path) -> str:
        return str(
            mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=str(staging), tracking_uri=store
            )
        )

    tagged = (entry.tags or {}).get(SCORER_TAG)
    _cached(folder, download, text, tagged)
    return ScorerSource(
        text, folder, _shown(store), name, number, alias, str(entry.run_id)
    )


def _version_number(
    client: Any, text: str, name: str, alias: str | None, version: str | None
) -> int:
    """The version number a models:/ reference names, or a one-line ScorerError
    naming the store and what to do."""
    from mlflow.exceptions import MlflowException

    store = _shown(str(client.tracking_uri))
    try:
        model = client.get_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise ScorerError(
            f"{text}: no registered model {name!r} in the tracking store {store}; "
            "`lead-ml export` registers one, or set MLFLOW_TRACKING_URI to the "
            "store that holds it"
        ) from None
    versions = sorted(
        int(v.version) for v in client.search_model_versions(f"name = '{name}'")
    )
    listing = ", ".join(f"v{v}" for v in versions) or "none"
    if alias is not None:
        if alias not in model.aliases:
            aliases = ", ".join(
                f"@{a} (v{v})" for a, v in sorted(model.aliases.items())
            )
            raise ScorerError(
                f"{text}: {name} has no alias {alias!r} in the tracking store "
                f"{store} (aliases: {aliases or 'none'}; versions: {listing}); "
                "`lead-ml promote` sets the champion alias, `lead-ml compare` "
                "compares the versions"
            )
        return int(model.aliases[alias])
    number = max(versions, default=0) if version == "latest" else None
    if version is not None and version.isdigit():
        number = int(version)
    if number is None or number not in versions:
        raise ScorerError(
            f"{text}: {name} has no version {version!r} in the tracking store "
            f"{store} (versions: {listing}); give one of them, 'latest' or an "
            "alias (models:/NAME@champion); `lead-ml compare` compares them"
        )
    return number


def _run_scorer(
    client: Any, text: str, run_id: str, path: str, root: Path
) -> ScorerSource:
    """The model (or artifact folder) ``path`` of a run, downloaded."""
    from mlflow.exceptions import MlflowException

    store = str(client.tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ScorerError(
            f"{text}: no run {run_id!r} in the tracking store {_shown(store)}; check "
            "the run id (the MLflow UI), or follow the champion with "
            "models:/lead-ml-scorer@champion (`lead-ml promote`)"
        ) from None
    location = _run_artifact_location(client, run, path)
    if location is None:
        raise ScorerError(
            f"{text}: run {run_id} has no artifact {path!r} in the tracking "
            f"store {_shown(store)}; the export logs its scorer as "
            "runs:/RUN_ID/scorer"
        )
    folder = root / f"run-{_slug(run_id)}-{_slug(path)}-{_cache_key(store, text)}"

    def download(staging: Path) -> str:
        import mlflow

        return str(
            mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=str(staging), tracking_uri=store
            )
        )

    _cached(folder, download, text, None)
    return ScorerSource(text, folder, _shown(store), run_id=run_id)


def _run_artifact_location(client: Any, run: Any, path: str) -> str | None:
    """Where ``path`` of a run is stored: a model the run logged under that name
    (as the export logs its scorer), else a file or folder among the run's own
    artifacts; None when it is neither. Looked up through ``client`` alone:
    MLflow's own runs:/ resolution reads logged models from the process's global
    tracking URI, which may name another store than the one asked."""
    name, _, rest = path.partition("/")
    found = client.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"name = '{name}'"
    )
    while True:
        for model in found:
            if model.source_run_id == run.info.run_id:
                return f"{model.artifact_location.rstrip('/')}/{rest}".rstrip("/")
        if not found.token:
            break
        found = client.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"name = '{name}'",
            page_token=found.token,
        )
    parent, _, leaf = path.rstrip("/").rpartition("/")
    listed = client.list_artifacts(run.info.run_id, parent or None)
    if any(item.path.rstrip("/").rpartition("/")[2] == leaf for item in listed):
        return f"{run.info.artifact_uri.rstrip('/')}/{path}"
    return None


def _cached(
    folder: Path, download: Callable[[Path], str], text: str, expect: str | None
) -> Path:
    """``folder``, downloaded first unless it is there: into a fresh folder beside
    it, checked, then renamed into place (atomic: another job's copy of the same
    version, renamed first, wins and this one is dropped)."""
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        got = Path(download(staging))
        # MLflow notes the registered name and version beside a model it downloads
        # through models:/ (YAML it reads back, not part of the export).
        (got / "registered_model_meta").unlink(missing_ok=True)
        if not (got / BUNDLE_DIR / MANIFEST_FILE).is_file():
            raise ScorerError(
                f"{text}: no lead-ml scorer there (no {BUNDLE_DIR}/{MANIFEST_FILE}); "
                "name the scorer `lead-ml export` logged (runs:/RUN_ID/scorer or a "
                "registered version)"
            )
        try:
            verify_folder(got, expect)
        except ScorerError as error:
            raise ScorerError(
                f"{text}: the downloaded copy does not check out ({error})"
            ) from None
        try:
            got.rename(folder)
        except OSError:
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
