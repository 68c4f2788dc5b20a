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
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lead_ml.config import DIMENSIONS, FeaturizeConfig
from lead_ml.explain import explain
from lead_ml.features import REGISTRY, build_features
from lead_ml.model import Calibration, ModelInfo, TrainedModel, margin, model_matrix
from lead_ml.schema import ColumnSpec, TableContract, validate_table

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
    unseen and counted, not rejected.
    """
    specs = [ColumnSpec(ID_COLUMN, "string"), ColumnSpec("created_at", "datetime")]
    for name, kind in list(input_columns().items())[2:]:
        bound = {"min_value": 0.0} if kind == "float" else {}
        specs.append(ColumnSpec(name, kind, nullable=True, **bound))  # type: ignore[arg-type]
    return TableContract("leads", ID_COLUMN, tuple(specs))


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
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(float)
        bins = np.searchsorted(np.asarray(reference["edges"]), numbers, side="right")
        bins = np.where(np.isfinite(numbers), bins, len(reference["edges"]) + 1)
        return np.bincount(bins, minlength=len(reference["edges"]) + 2)
    levels = pd.Index(reference["levels"])
    codes = levels.get_indexer(pd.Index(values.astype(object)))
    return np.bincount(
        np.where(codes < 0, len(levels), codes), minlength=len(levels) + 1
    )


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
) -> dict[str, Any]:
    """scorer.json: all a batch job needs besides the booster, as plain JSON."""
    matrix = model_matrix(reference, model.info.categories)
    probability = _probability(model, reference)
    return {
        "format_version": FORMAT_VERSION,
        "lead_ml_version": version("lead-ml"),
        "library_versions": {
            lib: version(lib) for lib in ("lightgbm", "pandas", "numpy", "pyarrow")
        },
        "id_column": ID_COLUMN,
        "input_columns": input_columns(),
        "model": asdict(model.info),
        "registry": [asdict(spec) for spec in REGISTRY],
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
    for candidate in (path, path / "artifacts" / "bundle"):
        if (candidate / CHECKSUM_FILE).exists():
            return candidate
    raise ScorerError(
        f"{path}: no lead-ml scorer here (no {CHECKSUM_FILE}); "
        "pass the folder `lead-ml export` wrote, e.g. models/scorer"
    )


def _verify(bundle: Path) -> None:
    try:
        expected = json.loads((bundle / CHECKSUM_FILE).read_text())
    except json.JSONDecodeError:
        raise ScorerError(
            f"{bundle / CHECKSUM_FILE}: not valid JSON; re-export"
        ) from None
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
    spec: dict[str, Any] = json.loads((bundle / SPEC_FILE).read_text())
    found = spec.get("format_version")
    if found != FORMAT_VERSION:
        raise ScorerError(
            f"{bundle}: scorer format {found} (exported by lead-ml "
            f"{spec.get('lead_ml_version', '?')}), but lead-ml {version('lead-ml')} "
            f"reads format {FORMAT_VERSION}; re-export the model with this lead-ml "
            "or install the lead-ml version that exported it"
        )
    return spec


def _probability(model: TrainedModel, features: pd.DataFrame) -> np.ndarray:
    log_odds = model.info.calibration.log_odds(margin(model, features))
    return 1.0 / (1.0 + np.exp(-log_odds))


# --- scoring ------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    """One chunk's result: output rows (input order), rejects, and counters."""

    output: pd.DataFrame
    rejects: pd.DataFrame
    unseen: dict[str, int]
    features: pd.DataFrame


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
    ) -> Scored:
        """Validate, featurize and score one frame of leads (all rows in one chunk)."""
        self.check_columns(list(leads.columns), source)
        checked = validate_table(
            leads[list(self.spec["input_columns"])], self.contract, source
        )
        valid = checked.valid
        features = build_features(valid, None, activities, self.featurize)
        output = self._score_features(features, explain_reasons)
        return Scored(output, checked.rejects, self.unseen(features), features)

    def _score_features(
        self, features: pd.DataFrame, explain_reasons: bool
    ) -> pd.DataFrame:
        probability = _probability(self.model, features)
        out = pd.DataFrame(
            {
                ID_COLUMN: features[ID_COLUMN].to_numpy(),
                "probability": probability,
                "score": np.clip(np.rint(probability * 100), 1, 99).astype("int64"),
                "band": self.bands(probability),
            },
            index=features.index,
        )
        if explain_reasons and len(features):
            explained = explain(self.model, features)
            out = pd.concat([out, explained[self.output_columns()[4:-1]]], axis=1)
        elif explain_reasons:
            out = out.reindex(columns=self.output_columns()[:-1])
        out["model_version"] = self.model_version
        return out

    def bands(self, probability: np.ndarray) -> np.ndarray:
        """Band A-D of each probability, by thresholds from the validation window."""
        cuts = [self.thresholds[b] for b in BANDS[:3]]
        position = np.searchsorted(-np.asarray(cuts), -probability, side="right")
        return np.asarray(BANDS, dtype=object)[position]

    def unseen(self, features: pd.DataFrame) -> dict[str, int]:
        """Per categorical feature: non-empty values the model never saw in training."""
        counts = {}
        for name, levels in self.model.info.categories.items():
            values = features[name]
            unseen = values.notna() & ~values.isin(levels)
            counts[name] = int(unseen.sum())
        return counts

    def score(
        self,
        leads: pd.DataFrame,
        activities: pd.DataFrame | None = None,
        explain_reasons: bool = True,
    ) -> pd.DataFrame:
        """Score a frame in memory: one output row per input row, input order kept.

        Rejected rows are kept with empty scores and their reason in ``reject_reason``.
        """
        scored = self.score_chunk(leads, activities, explain_reasons)
        return merge_rejects(scored, len(leads), self.output_columns(explain_reasons))


def merge_rejects(scored: Scored, n_rows: int, columns: list[str]) -> pd.DataFrame:
    """Scored and rejected rows back in input order, with a reject_reason column."""
    output = scored.output.reset_index(drop=True)
    positions = np.setdiff1d(np.arange(n_rows), scored.rejects["row"].to_numpy(int))
    output.index = positions
    rejected = pd.DataFrame(index=scored.rejects["row"].to_numpy(int), columns=columns)
    rejected[ID_COLUMN] = scored.rejects.get(
        ID_COLUMN, pd.Series(dtype=object)
    ).to_numpy()
    merged = pd.concat([output.reindex(columns=columns), rejected]).sort_index()
    merged["reject_reason"] = pd.Series(
        scored.rejects["reason"].to_numpy(), index=rejected.index, dtype="string"
    ).reindex(merged.index)
    return merged.reset_index(drop=True)


def load_scorer(path: Path | str) -> Scorer:
    """Load a scorer from its folder (or MLflow model folder), checking every file."""
    import lightgbm as lgb

    bundle = find_bundle(Path(path))
    _verify(bundle)
    spec = _read_spec(bundle)
    info = dict(spec["model"])
    info["calibration"] = Calibration(**info["calibration"])
    booster = lgb.Booster(model_file=str(bundle / BOOSTER_FILE))
    return Scorer(TrainedModel(booster=booster, info=ModelInfo(**info)), spec)


def copy_bundle(source: Path, target: Path) -> None:
    """Copy a bundle's files (and nothing else) to another folder."""
    target.mkdir(parents=True, exist_ok=True)
    for name in (*BUNDLE_FILES, CHECKSUM_FILE):
        shutil.copy2(source / name, target / name)


def pyfunc_arguments(bundle: Path, input_example: pd.DataFrame) -> dict[str, Any]:
    """Arguments of mlflow.pyfunc save_model/log_model for a bundle (from code)."""
    from mlflow.models import infer_signature

    package = Path(__file__).parent
    example_output = load_scorer(bundle).score(input_example)
    # A rejected row has no score, so the output's score column is nullable.
    example_output["score"] = example_output["score"].astype("float64")
    libraries = ("lightgbm", "pandas", "numpy", "pyarrow", "scikit-learn", "pydantic")
    return {
        "python_model": str(package / "pyfunc_model.py"),
        "artifacts": {"bundle": str(bundle)},
        "signature": infer_signature(
            input_example,
            example_output,
            params={"explain": True, "activities_path": ""},
        ),
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
