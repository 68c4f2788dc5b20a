"""Benchmarks of the scorer on every source, each figure a ratio to a reference
measured in the same run (the machines are noisy: compare ratios, not seconds,
across runs).

``make bench`` (``dvc repro --force bench/dvc.yaml``) runs::

    python bench/harness.py --params params.yaml \\
        --export-params examples/x_education/params.yaml --out reports/bench.json

For each source, the synthetic CRM (``--params``) and a real-shaped export
(``--export-params``: the X Education leads), it builds the project's pipeline in a
temporary folder through the stage functions (:mod:`lead_ml.stages`: generate for
the synthetic CRM, read, validate, audit, featurize, train, export; evaluate is left
out, it measures the model, not the scorer), loads the exported scorer and tiles the
source's leads with fresh ids into files of ``leads`` rows, as Parquet and as CSV:
the export's own file, every column of it (CSV columns in pandas' own types for the
Parquet file), and the synthetic CRM's valid deals joined to their accounts, scored
with their activity log (tiled with the leads, under the same fresh ids, a Parquet
file given to the job as ``--activities`` is) as a real batch job scores them; and
once more without it (the activity counts then not known: :mod:`lead_ml.fastshap`'s
collapsed trees), reported apart. The batch jobs of the sources take turns, run by
run, so that both see the machine alike. Then, per source:

1. scoring without explanations, end to end from the Parquet file to the output
   file, against LightGBM's ``Booster.predict`` on the prebuilt matrix (the physical
   limit for the model, at its best thread count, best of three): target at most
   0.7 of its time (tl2cgen's compiled predictor, the issue's compiled anchor, is
   reported as not measured: tl2cgen is no dependency); CSV input against Parquet
   input: target at least 0.85x;
2. scoring with MEDDIC explanations (contributions, reasons, next question) against
   scoring without (target at most 1.5x the cost), against
   ``predict(pred_contrib=True)`` of the same model and of a 31-leaf model trained
   on the same split (target 10x), against ``shap.TreeExplainer`` plus a pandas
   group-by per dimension, and in explained leads per second (goal 20,000), from
   Parquet and from CSV; the exact contributions alone against ``pred_contrib``
   (target 10x); the next question alone, in process, and its share of the
   explained chunk's time; the test AUC the tree shape gives up against the 31-leaf
   model;
3. peak memory (ru_maxrss) and seconds of ``lead-ml score`` on 100 thousand and on
   10 million leads, each in its own process, without an activity log (a
   10-million-lead log would be 280 million rows), without and with explanations:
   peak memory of the large run within 1.3x of the small one's without
   explanations, 1.2x with them; the 10 million explained leads end to end from
   Parquet in at most 60 seconds, and their time over the plain run's (reported);
4. featurize and train time at 1x, 4x and 16x a size (the synthetic CRM: 62,500
   deals, so 1 million with 28 million activities at 16x; an export: its own
   deals; tiled with fresh ids), trees fixed: rows per second per stage and the
   growth exponent (target at most 1.1; 1 is linear); and featurize plus the
   train stage's own training (early stopping, calibration, bands) at 16x: target
   at most 120 seconds.

And across sources, the issue's target: the export's explained leads per second at
least 0.8x the synthetic CRM's, from the same file format in the same run. And for
the project as a whole:

5. the export's leads tiled to 1 million in a Parquet file, explained by the local
   job and by ``lead-ml score --engine spark`` on local[2] and on local[1], each in
   a fresh process (``bench/spark_bench.py``; skipped, and said so, without
   pyspark): Spark at least 0.7x the local job's rows per second, local[2] at
   least 1.7x local[1]'s;
6. ``dvc repro`` of a fresh clone of the repository (its committed tree, the
   default source), with this install: target at most 45 seconds; the seconds of
   each stage are recorded beside it.

Results go to ``reports/bench.json`` (every figure, target, detail and version: a
plain output of the ``bench`` stage in ``bench/dvc.yaml``; ``dvc metrics diff
reports/bench.json`` still compares two commits) and the headline figures, numbers
only, to ``reports/bench_metrics.json`` (``--metrics``, the stage's only metrics, so
``dvc exp show`` leads with the model's metrics and adds just these). ``--quick``
scales everything down to seconds, for tests. The harness lives outside the
package, so it does not ship in scorer bundles.

>>> growth_exponent([1, 4, 16], [2.0, 8.0, 32.0])
1.0
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from pandas.errors import Pandas4Warning

from lead_ml import stages
from lead_ml.batch import score_file
from lead_ml.config import Params, load_params, read_params_file
from lead_ml.explain import (
    dimension_contributions,
    feature_contributions,
    next_question,
)
from lead_ml.features import FeatureRegistry, build_features
from lead_ml.model import (
    Split,
    TrainedModel,
    model_matrix,
    predict_proba,
    rows_margin,
    split_frames,
    train_model,
)
from lead_ml.scorer import Scorer, load_scorer
from lead_ml.sources import Deals, lead_rows, read_deals, source_activities

#: Every figure of a source and what it must reach ("<=" for costs, ">=" for
#: speeds; None: only reported). "explain" is the whole batch job with reasons and
#: next questions; "contributions" the exact per-dimension values alone. The issue
#: asks for the explained job against the same model's pred_contrib to be reported,
#: and for well over 10x against a 31-leaf model (the shape it starts from).
TARGETS: dict[str, tuple[str, float] | None] = {
    "score_slowdown_vs_predict": ("<=", 0.7),
    "csv_vs_parquet_score": (">=", 0.85),
    "csv_vs_parquet_explained": None,
    "explain_cost_vs_score": ("<=", 1.5),
    "explain_cost_vs_score_csv": ("<=", 1.5),
    "next_question_share_of_explained": None,
    "explain_speedup_vs_pred_contrib": None,
    "contributions_speedup_vs_pred_contrib": (">=", 10.0),
    "explain_speedup_vs_31_leaf_pred_contrib": (">=", 10.0),
    "explain_speedup_vs_shap_groupby": None,
    "explained_leads_per_second": (">=", 20_000.0),
    "explained_leads_per_second_csv": None,
    "explained_leads_per_second_no_log": None,
    "no_log_vs_log_explained": None,
    "auc_gap_vs_31_leaf": ("<=", 0.005),
    "memory_ratio_large_vs_small": ("<=", 1.3),
    "explained_memory_ratio_large_vs_small": ("<=", 1.2),
    "explained_large_seconds": ("<=", 60.0),
    "explained_vs_plain_large": None,
    "featurize_growth_exponent": ("<=", 1.1),
    "train_growth_exponent": ("<=", 1.1),
    "featurize_train_seconds_largest": ("<=", 120.0),
}
#: Figures only a source with an activity log has (scored without it too).
LOG_FIGURES = ("explained_leads_per_second_no_log", "no_log_vs_log_explained")
#: The figures of bench_metrics.json, the bench stage's DVC metrics (numbers only).
HEADLINE = (
    "explained_leads_per_second",
    "explain_cost_vs_score",
    "score_slowdown_vs_predict",
    "csv_vs_parquet_score",
)
#: Figures of the project as a whole: `dvc repro` of a fresh clone of the repository
#: (the default source, after install), in seconds.
PIPELINE_TARGETS: dict[str, tuple[str, float] | None] = {
    "dvc_repro_clean_clone_seconds": ("<=", 45.0),
}
#: Figures of the Spark job against the local job on the same 1M-lead export file,
#: explained (bench/spark_bench.py): local[2] over local, local[2] over local[1].
SPARK_TARGETS: dict[str, tuple[str, float] | None] = {
    "spark_vs_local_explained": (">=", 0.7),
    "spark_scaling_1_to_2": (">=", 1.7),
    "spark_vs_local_explained_wall": None,
    "spark_scaling_1_to_2_wall": None,
}
#: Figures comparing the export with the synthetic CRM (the issue's done-when: the
#: export's scorer explains at no less than 0.8x the synthetic scorer's leads/s).
CROSS_TARGETS: dict[str, tuple[str, float] | None] = {
    "export_vs_synthetic_explained": (">=", 0.8),
    "export_vs_synthetic_explained_csv": (">=", 0.8),
}
#: The tree shape the issue starts from: what "unconstrained" means in the figures.
REFERENCE_SHAPE = {"num_leaves": 31, "max_depth": -1}
#: Trees trained when timing the train stage: a fixed count, so time follows rows.
TIMED_TREES = 200
#: Runs per stage and size when timing growth: the fastest of three, because the 1x
#: featurize run takes ~0.1 s and one disturbed run would move the exponent; fewer
#: once the runs took GROWTH_BUDGET seconds (a long run is disturbed proportionally
#: less, and the 16x runs would take minutes).
GROWTH_REPEATS = 3
GROWTH_BUDGET = 5.0
FORMATS = ("parquet", "csv")
#: Seconds after which the in-process timings of all the leads stop repeating.
CHUNK_BUDGET = 10.0
SYNTHETIC, EXPORT = "synthetic", "x_education"
#: The details and figures of the project as a whole (not of one source), and of
#: the export scored on Spark.
PIPELINE, SPARK = "pipeline", "spark"


@dataclass(frozen=True)
class BenchSizes:
    """How much each benchmark processes; ``quick()`` is the tiny version for tests."""

    leads: int = 200_000
    contrib_rows: int = 5_000
    shap_rows: int = 2_000
    memory_small: int = 100_000
    memory_large: int = 10_000_000
    growth: tuple[int, ...] = (1, 4, 16)
    #: The generated source's deals at 1x (the issue's 62,500: 1 million at 16x,
    #: with 28 million activities); an export grows from its own deals.
    growth_base: int = 62_500
    timed_trees: int = TIMED_TREES
    #: Whether to time `dvc repro` of a fresh clone (about two minutes).
    repro: bool = True
    #: Leads of the export scored locally and on Spark (0: not measured).
    spark_leads: int = 1_000_000
    #: Params changed for the bench projects (the quick ones are small and fast).
    changes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def quick(cls) -> BenchSizes:
        """Seconds instead of minutes: the same steps on a few thousand rows."""
        return cls(
            leads=3_000,
            contrib_rows=300,
            shap_rows=200,
            memory_small=1_000,
            memory_large=4_000,
            growth=(1, 2),
            growth_base=2_000,
            timed_trees=10,
            repro=False,
            spark_leads=0,
            changes={
                "train": {"n_estimators": 60},
                "audit": {"max_auc_ci_width": 0.15},
                "synthetic": {
                    "n_deals": 3000,
                    "n_accounts": 600,
                    "activities_per_deal": 20.0,
                },
            },
        )


@dataclass(frozen=True)
class Source:
    """A source the bench measures: its params file, and whether its tables are
    generated (the synthetic CRM, under data/raw) or an export on disk."""

    name: str
    params: Path
    generated: bool


@dataclass
class Prepared:
    """A source's finished project and what its benchmarks share."""

    source: Source
    params: Params
    folder: Path
    scorer: Scorer
    deals: Deals
    features: pd.DataFrame
    registry: FeatureRegistry
    split: Split
    reference: TrainedModel  # REFERENCE_SHAPE, trained on the same split
    leads: pd.DataFrame  # the source's lead rows as its export holds them
    #: The activity log of those leads in the source's own columns, when the
    #: scorer counts activities (None: the source has none, or it counts none).
    log: pd.DataFrame | None = None

    @property
    def bundle(self) -> Path:
        """The exported scorer folder."""
        return self.folder / "models/scorer"


# --- the projects -------------------------------------------------------------------


def merged(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied section by section (nested dicts merged).

    >>> merged({"train": {"a": 1, "b": 2}}, {"train": {"b": 3}})
    {'train': {'a': 1, 'b': 3}}
    """
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def project_params(
    source: Source, folder: Path, root: Path, changes: Mapping[str, Any]
) -> dict[str, Any]:
    """The raw params of a bench project: the source's params file with its table
    paths under ``folder`` (generated) or made absolute from ``root`` (an export's
    paths are relative to the project root), and ``changes`` applied."""
    raw = merged(read_params_file(source.params), changes)
    for table in raw["source"]["tables"].values():
        path = Path(table["path"])
        table["path"] = str(folder / path if source.generated else root / path)
    return raw


@contextmanager
def project_environment(folder: Path) -> Iterator[None]:
    """Work inside a project folder with its own MLflow store, MLflow's own warnings
    silenced; the working directory and environment are restored after."""
    cwd, uri = Path.cwd(), os.environ.get("MLFLOW_TRACKING_URI")
    with warnings.catch_warnings():
        # MLflow's own warnings (its AnyType hints; its input example comparing a
        # string index with a range, deprecated by pandas 3.1), not the pipeline's.
        warnings.filterwarnings("ignore", ".*AnyType", UserWarning)
        warnings.filterwarnings("ignore", category=Pandas4Warning, module=r"mlflow\.")
        os.chdir(folder)  # MLflow puts a new experiment's artifacts under it
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
        try:
            yield
        finally:
            os.chdir(cwd)
            if uri is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = uri


def build_project(raw: dict[str, Any], folder: Path, generated: bool) -> Params:
    """Run the pipeline's stages up to export on params ``raw`` into ``folder``, laid
    out as dvc.yaml lays a project out (the same stage functions `dvc repro` runs)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    params = load_params(folder / "params.yaml")
    path = folder.joinpath
    common = {
        "features": path("data/features/features.parquet"),
        "registry": path("data/features/registry.json"),
        "model": path("models/model"),
        "validated": path("data/validated"),
    }
    with project_environment(folder):
        if generated:
            stages.run_generate(params, path("data/raw"))
        for table in params.source.tables.present():
            stages.run_read(params, table, path(f"data/tables/{table}.parquet"))
        stages.run_validate(
            params,
            path("data/tables"),
            common["validated"],
            path("reports/rejects.csv"),
        )
        audit, split = path("reports/audit.json"), path("data/audit/split.parquet")
        stages.run_audit(
            params, common["validated"], audit, path("reports/audit.md"), split
        )
        stages.run_featurize(
            params,
            common["validated"],
            audit,
            split,
            common["features"],
            common["registry"],
        )
        stages.run_train(
            params, common["features"], common["registry"], path("models/model")
        )
        stages.run_export(
            params,
            common
            | {"scorer": path("models/scorer"), "record": path("reports/export.json")},
        )
    return params


def export_rows(path: Path) -> pd.DataFrame:
    """An export's rows as a user converting it would hold them: a CSV with pandas'
    own types (numbers as numbers), a Parquet file as it is."""
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


def prepare(source: Source, sizes: BenchSizes, work: Path, root: Path) -> Prepared:
    """Build a source's project, load its scorer, and train the 31-leaf reference."""
    folder = work / source.name
    raw = project_params(source, folder, root, sizes.changes)
    params = build_project(raw, folder, source.generated)
    deals = read_deals(folder / "data/validated")
    features = pd.read_parquet(folder / "data/features/features.parquet")
    registry = stages.read_registry(folder / "data/features/registry.json")
    split = split_frames(features)
    shape = params.train.model_copy(update=REFERENCE_SHAPE)
    reference = train_model(split, registry, shape, params.bands, params.seed)
    scorer = load_scorer(folder / "models/scorer")
    if source.generated:  # its leads: the valid deals joined to their accounts
        leads = lead_rows(deals.frame, params.source).reset_index(drop=True)
    else:  # the export's own file, every column and row of it
        leads = export_rows(params.source.tables.deals.path)
    log = None
    if scorer.counts_activities and deals.activities is not None:
        log = source_activities(deals.activities, params.source)
    return Prepared(
        source,
        params,
        folder,
        scorer,
        deals,
        features,
        registry,
        split,
        reference,
        leads,
        log,
    )


# --- lead files and tiled tables ----------------------------------------------------


def fresh_ids(values: pd.Series, copy: int) -> pd.Series:
    """Ids of the ``copy``-th copy of a table: distinct from every other copy's.

    >>> fresh_ids(pd.Series(["a", None]), 2).tolist()
    ['a~2', <NA>]
    """
    return values.astype("string") + f"~{copy}"


def write_leads(base: pd.DataFrame, n: int, path: Path, id_column: str) -> Path:
    """n lead rows in a Parquet or CSV file (by its suffix): ``base`` repeated, each
    copy with fresh ids in ``id_column`` (cheap at 10 million: one base-sized piece
    at a time)."""
    parquet = path.suffix.lower() == ".parquet"
    path.unlink(missing_ok=True)
    writer: pq.ParquetWriter | None = None
    try:
        for copy, start in enumerate(range(0, n, len(base))):
            piece = base.iloc[: min(len(base), n - start)].copy()
            piece[id_column] = fresh_ids(piece[id_column], copy)
            if not parquet:
                piece.to_csv(path, mode="a", header=copy == 0, index=False)
                continue
            table = pa.Table.from_pandas(piece, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()
    return path


def write_activities(
    log: pd.DataFrame, leads: pd.DataFrame, n: int, path: Path, keys: tuple[str, str]
) -> Path:
    """The activity log of the n leads :func:`write_leads` tiles from ``leads``, in
    a Parquet file: each copy's activities under that copy's fresh ids. ``keys``:
    the leads' id column and the log's key column."""
    id_column, key = keys
    ids, owner = leads[id_column].astype("string"), log[key].astype("string")
    path.unlink(missing_ok=True)
    writer: pq.ParquetWriter | None = None
    try:
        for copy, start in enumerate(range(0, n, len(leads))):
            kept = ids.iloc[: min(len(leads), n - start)]
            piece = log[owner.isin(kept).to_numpy(bool)].copy()
            piece[key] = fresh_ids(piece[key], copy)
            table = pa.Table.from_pandas(piece, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()
    return path


def tile(frame: pd.DataFrame, factor: int, id_column: str) -> pd.DataFrame:
    """``frame`` repeated ``factor`` times, every copy with fresh ids."""
    copies = [
        frame.assign(**{id_column: fresh_ids(frame[id_column], copy)})
        for copy in range(factor)
    ]
    return pd.concat(copies, ignore_index=True)


def resized(
    deals: pd.DataFrame, log: pd.DataFrame | None, n: int
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``n`` deals made of ``deals``: as many copies as it takes (:func:`tile`,
    fresh ids), of which every k-th row is kept, so that the deals still span
    every date (and both outcomes) in the same proportions; and the activities of
    exactly those deals, tiled alike (``log`` keyed by ``deal_id``, as the
    validated tables are).

    >>> deals = pd.DataFrame({"deal_id": ["a", "b"]})
    >>> log = pd.DataFrame({"deal_id": ["a", "a", "b"], "n": [1, 2, 3]})
    >>> more, more_log = resized(deals, log, 3)
    >>> more["deal_id"].tolist(), more_log["deal_id"].tolist()
    (['a~0', 'a~1', 'b~1'], ['a~0', 'a~0', 'a~1', 'a~1', 'b~1'])
    >>> resized(pd.DataFrame({"deal_id": list("abcd")}), None, 2)[0]["deal_id"].tolist()
    ['a~0', 'd~0']
    """
    factor = -(-n // len(deals))
    copies = tile(deals, factor, "deal_id")
    kept_rows = np.linspace(0, len(copies) - 1, n).round().astype(np.int64)
    frame = copies.iloc[kept_rows].reset_index(drop=True)
    if log is None:
        return frame, None
    activities = tile(log, factor, "deal_id")
    kept = activities["deal_id"].isin(frame["deal_id"]).to_numpy(bool)
    return frame, activities[kept].reset_index(drop=True)


# --- timing -------------------------------------------------------------------------


def best_seconds(
    run: Callable[[], object], repeats: int = 3, budget: float = np.inf
) -> float:
    """Fastest of a few runs (the least disturbed by other processes), stopping
    early once the runs took ``budget`` seconds."""
    best, spent = np.inf, 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        seconds = time.perf_counter() - started
        best, spent = min(best, seconds), spent + seconds
        if spent >= budget:
            break
    return float(best)


#: The batch jobs timed on each source's lead files: (name, explained).
JOBS = (("score", False), ("explained", True))
#: The key of a source's activity log among its files (lead_files).
LOG = "activities"


def job_runs(files: Mapping[str, Path]) -> list[tuple[str, Path, Path | None, bool]]:
    """The batch jobs timed on a source's files: (figure, leads, activity log,
    explained) for each format and job, with the log when the source has one;
    and then, on Parquet, the same jobs without it (figures ``..._no_log``).

    >>> for run in job_runs({"parquet": Path("a"), "csv": Path("b")}):
    ...     print(run[0])
    score_rows_per_second
    explained_rows_per_second
    score_rows_per_second_csv
    explained_rows_per_second_csv
    """
    log = files.get(LOG)
    runs = [
        (f"{what}_rows_per_second{'' if fmt == 'parquet' else '_csv'}", path, log, x)
        for fmt, path in files.items()
        if fmt != LOG
        for what, x in JOBS
    ]
    if log is not None:
        runs += [
            (f"{what}_rows_per_second_no_log", files["parquet"], None, explain)
            for what, explain in JOBS
        ]
    return runs


def job_rates(
    preps: Sequence[Prepared],
    files: Mapping[str, Mapping[str, Path]],
    repeats: int = 3,
) -> dict[str, dict[str, float]]:
    """Leads per second of the batch job (read, validate, featurize, score, explain,
    write) per source, file format, with and without explanations (and without the
    activity log, see :func:`job_runs`): the fastest of ``repeats`` runs, the
    sources taking turns run by run, so that a machine getting busier or quieter
    moves every source alike (the export's ratio to the synthetic CRM is a
    target). Also the leads each source's files rejected."""
    best: dict[str, dict[str, float]] = {prep.source.name: {} for prep in preps}
    for _ in range(repeats):
        for prep in preps:
            name = prep.source.name
            for key, path, log, explain in job_runs(files[name]):
                what = key.split("_rows_")[0]
                summary = score_file(
                    prep.scorer,
                    path,
                    path.with_name(f"scores_{what}.parquet"),
                    path.with_name(f"scores_{what}.rejects.csv"),
                    log,
                    explain,
                )
                if summary.rows_in != summary.scored + summary.rejected:
                    raise RuntimeError(
                        f"bench leads do not reconcile: {summary.as_dict()}"
                    )
                rate = summary.rows_in / summary.seconds
                best[name][key] = max(best[name].get(key, 0.0), rate)
                best[name]["rejected"] = summary.rejected
    return best


def lead_files(prep: Prepared, sizes: BenchSizes) -> dict[str, Path]:
    """The source's leads tiled to ``sizes.leads`` rows in a file per format, and
    their activity log (key :data:`LOG`) when the source has one, in the project's
    scratch folder; the scorer warmed up on a few (what is lazy is compiled and
    loaded outside the timings)."""
    work = prep.folder / "bench"
    work.mkdir(exist_ok=True)
    id_column = prep.scorer.id_column
    files = {
        fmt: write_leads(prep.leads, sizes.leads, work / f"leads.{fmt}", id_column)
        for fmt in FORMATS
    }
    few = pd.read_parquet(files["parquet"]).head(100)
    prep.scorer.score_chunk(few)
    if prep.log is not None:
        key = prep.params.source.tables.activities
        assert key is not None  # a log is read only for a source with one
        files[LOG] = write_activities(
            prep.log,
            prep.leads,
            sizes.leads,
            work / "activities.parquet",
            (id_column, key.key),
        )
        prep.scorer.score_chunk(few, chunk_log(prep, files[LOG], few))
    return files


def chunk_log(prep: Prepared, path: Path, leads: pd.DataFrame) -> pd.DataFrame:
    """The activities of these leads in a log file, read by the scorer."""
    table = prep.params.source.tables.activities
    assert table is not None
    log = pd.read_parquet(path)
    ids = leads[prep.scorer.id_column].astype("string")
    mine = log[log[table.key].astype("string").isin(ids).to_numpy(bool)]
    return prep.scorer.read_activities(mine.reset_index(drop=True))[0]


# --- 1 and 2: scoring speed ---------------------------------------------------------


def shap_explainer(booster: Any) -> Any:
    """shap.TreeExplainer of a booster (shap's import warns about matplotlib)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import shap

        return shap.TreeExplainer(booster)


def shap_groupby(
    explainer: Any, matrix: pd.DataFrame, dimensions: Mapping[str, str]
) -> pd.DataFrame:
    """The obvious alternative: ``shap.TreeExplainer`` values summed per dimension
    with a pandas group-by (raw margin units, bias left out)."""
    with warnings.catch_warnings():
        # shap's notice that LightGBM binary output is one array is not ours to act on
        warnings.simplefilter("ignore", UserWarning)
        values = explainer.shap_values(matrix)
    if isinstance(values, list):  # older shap: one array per class
        values = values[-1]
    per_feature = pd.DataFrame(values, columns=matrix.columns, index=matrix.index)
    return per_feature.T.groupby(lambda name: dimensions[name]).sum().T


def best_predict_seconds(booster: Any, matrix: pd.DataFrame, best: int) -> float:
    """``Booster.predict`` on a prebuilt matrix at its best thread count (1 up to
    the machine's cores), best of three each."""

    def predict(threads: int) -> None:
        booster.predict(matrix, raw_score=True, num_iteration=best, num_threads=threads)

    counts = sorted({1, os.cpu_count() or 1})
    return min(best_seconds(partial(predict, n)) for n in counts)


def reference_rates(
    prep: Prepared, leads: pd.DataFrame, sizes: BenchSizes, log: Path | None = None
) -> dict[str, float]:
    """Rows per second of the references on the leads' prebuilt matrix: predict,
    pred_contrib (this model and the 31-leaf one), shap plus a group-by, the
    scorer's exact contributions summed per dimension, its next question alone,
    and an explained chunk in process. ``log``: the leads' activity log file."""
    model, reference = prep.scorer.model, prep.reference
    names = model.info.feature_names
    activities = None if log is None else chunk_log(prep, log, leads)
    scored = prep.scorer.score_chunk(leads, activities, explain_reasons=False)
    features, rows = scored.features, scored.rows
    matrix = model_matrix(features, model.info.categories, names)
    booster, best = model.booster, model.info.best_iteration
    few, fewer = matrix.iloc[: sizes.contrib_rows], matrix.iloc[: sizes.shap_rows]
    few_reference = model_matrix(
        features.iloc[: sizes.contrib_rows], reference.info.categories, names
    )
    explainer = shap_explainer(booster)  # built once, as a batch job would: untimed

    def contributions() -> pd.DataFrame:
        per_feature = feature_contributions(model, rows)
        return dimension_contributions(model, per_feature, features.index)

    raw = rows_margin(model, rows)
    scorer = prep.scorer
    seconds = {
        "predict": best_predict_seconds(booster, matrix, best),
        "pred_contrib": best_seconds(
            lambda: booster.predict(few, pred_contrib=True, num_iteration=best), 1
        ),
        "pred_contrib_31_leaf": best_seconds(
            lambda: reference.booster.predict(
                few_reference,
                pred_contrib=True,
                num_iteration=reference.info.best_iteration,
            ),
            1,
        ),
        "shap_groupby": best_seconds(
            lambda: shap_groupby(explainer, fewer, model.info.dimensions), 1
        ),
        "dimension_contributions": best_seconds(contributions),
        "next_question": best_seconds(
            lambda: next_question(
                scorer.registry, model, scorer.answers, features, rows, raw
            ),
            budget=CHUNK_BUDGET,
        ),
        "explained_chunk": best_seconds(
            lambda: scorer.score_chunk(leads, activities, explain_reasons=True),
            budget=CHUNK_BUDGET,
        ),
    }
    counted = {"pred_contrib": len(few), "pred_contrib_31_leaf": len(few)}
    counted["shap_groupby"] = len(fewer)
    return {
        f"{name}_rows_per_second": counted.get(name, len(matrix)) / s
        for name, s in seconds.items()
    }


def compiled_anchor() -> dict[str, Any]:
    """The compiled predictor the issue asks beside ``Booster.predict`` (tl2cgen's
    C code of the trees): reported as not measured when tl2cgen is not installed
    (it is not a dependency of lead-ml; the bench adds no package)."""
    installed = importlib.util.find_spec("tl2cgen") is not None
    return {
        "tl2cgen": "installed, not measured by this harness"
        if installed
        else "not measured: tl2cgen is not installed"
    }


def bench_scoring(
    prep: Prepared,
    sizes: BenchSizes,
    files: Mapping[str, Path],
    jobs: Mapping[str, float],
) -> dict[str, Any]:
    """Figures 1 and 2: the batch jobs' rates (``jobs``, see :func:`job_rates`)
    against LightGBM and shap on the prebuilt matrix of the leads in the Parquet
    file of ``files`` (with their activity log, when there is one)."""
    leads = pd.read_parquet(files["parquet"])
    rates = {**reference_rates(prep, leads, sizes, files.get(LOG)), **jobs}
    rejected = int(rates.pop("rejected"))
    explained = rates["explained_rows_per_second"]
    contrib = rates["pred_contrib_rows_per_second"]
    score, csv = rates["score_rows_per_second"], "explained_rows_per_second_csv"
    by_log = {}
    if "explained_rows_per_second_no_log" in rates:
        no_log = rates["explained_rows_per_second_no_log"]
        by_log = {
            "explained_leads_per_second_no_log": no_log,
            "no_log_vs_log_explained": no_log / explained,
        }
    return {
        "leads": len(leads),
        "rejected": rejected,
        "compiled_anchor": compiled_anchor(),
        **{name: round(rate, 1) for name, rate in rates.items()},
        "score_slowdown_vs_predict": rates["predict_rows_per_second"] / score,
        "csv_vs_parquet_score": rates["score_rows_per_second_csv"] / score,
        "csv_vs_parquet_explained": rates[csv] / explained,
        "explain_cost_vs_score": score / explained,
        "explain_cost_vs_score_csv": rates["score_rows_per_second_csv"] / rates[csv],
        "next_question_share_of_explained": rates["explained_chunk_rows_per_second"]
        / rates["next_question_rows_per_second"],
        **by_log,
        "explain_speedup_vs_pred_contrib": explained / contrib,
        "contributions_speedup_vs_pred_contrib": rates[
            "dimension_contributions_rows_per_second"
        ]
        / contrib,
        "explain_speedup_vs_31_leaf_pred_contrib": explained
        / rates["pred_contrib_31_leaf_rows_per_second"],
        "explain_speedup_vs_shap_groupby": explained
        / rates["shap_groupby_rows_per_second"],
        "explained_leads_per_second": explained,
        "explained_leads_per_second_csv": rates["explained_rows_per_second_csv"],
        **holdout_auc(prep),
    }


def holdout_auc(prep: Prepared) -> dict[str, float]:
    """Test ROC AUC of the configured model and of the 31-leaf reference: the tree
    shape must not buy its speed with accuracy."""
    from sklearn.metrics import roc_auc_score

    test = prep.split.test
    won = test["won"].astype(int)
    model = roc_auc_score(won, predict_proba(prep.scorer.model, test))
    reference = roc_auc_score(won, predict_proba(prep.reference, test))
    return {
        "test_auc": round(float(model), 4),
        "test_auc_31_leaf": round(float(reference), 4),
        # how far the configured shape falls short of the reference (0 if not)
        "auc_gap_vs_31_leaf": max(float(reference - model), 0.0),
    }


# --- 3: memory ----------------------------------------------------------------------


# Linux carries a process's resident high-water mark across exec, so a child
# forked from this (large) process reports at least our size: a small Python in
# between starts the command and reports the command's own ru_maxrss.
_MEASURE = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def peak_memory_mb(command: list[str]) -> float:
    """Peak resident memory (MB) of a command run in its own process (its own
    ru_maxrss, from wait4: not the maximum over every child so far)."""
    with tempfile.TemporaryFile() as stderr:  # a file: a pipe could fill and block
        done = subprocess.run(
            [sys.executable, "-c", _MEASURE, *command],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            check=False,
        )
        kilobytes, code = (int(x) for x in done.stdout.split()[-2:])
        if code != 0 or done.returncode != 0:
            stderr.seek(0)
            message = stderr.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(command)} failed: {message}")
    return kilobytes / 1024  # Linux reports kilobytes


def score_command(bundle: Path, path: Path, explain: bool = False) -> list[str]:
    """`lead-ml score` of a leads file, as a batch job runs it: without
    explanations, or with them (``explain``)."""
    out = path.with_name(f"{path.stem}.scores.parquet")
    return [
        *(sys.executable, "-m", "lead_ml.cli", "score"),
        *("--model", str(bundle), "--input", str(path), "--output", str(out)),
        *(() if explain else ("--no-explain",)),
    ]


def bench_memory(prep: Prepared, sizes: BenchSizes, work: Path) -> dict[str, Any]:
    """Figure 3: peak memory and seconds of `lead-ml score` on a small and a large
    file, each in its own process, without and with explanations."""
    measured: dict[str, Any] = {}
    for label, n in (("small", sizes.memory_small), ("large", sizes.memory_large)):
        path = write_leads(
            prep.leads, n, work / f"leads_{label}.parquet", prep.scorer.id_column
        )
        measured[f"{label}_leads"] = n
        for job, explain in (("", False), ("explained_", True)):
            started = time.perf_counter()
            peak = peak_memory_mb(score_command(prep.bundle, path, explain))
            measured[f"{job}{label}_peak_mb"] = round(peak, 1)
            measured[f"{job}{label}_seconds"] = round(time.perf_counter() - started, 2)
        for written in work.glob(f"{path.stem}*"):
            written.unlink()
    for job in ("", "explained_"):
        measured[f"{job}memory_ratio_large_vs_small"] = (
            measured[f"{job}large_peak_mb"] / measured[f"{job}small_peak_mb"]
        )
    measured["explained_vs_plain_large"] = (
        measured["explained_large_seconds"] / measured["large_seconds"]
    )
    return measured


# --- 4: growth ----------------------------------------------------------------------


def growth_exponent(sizes: Sequence[int], seconds: Sequence[float]) -> float:
    """Slope of log(time) against log(size): 1 is linear, 2 quadratic."""
    slope = np.polyfit(np.log(sizes), np.log(seconds), 1)[0]
    return round(float(slope), 3)


def stage_seconds(prep: Prepared, n: int, trees: int) -> dict[str, tuple[float, int]]:
    """Best-of-GROWTH_REPEATS seconds and rows of featurizing ``n`` of the source's
    deals (:func:`resized`, with their activities), and of training on their
    features with a fixed count of trees."""
    params, registry = prep.params, prep.registry
    frame, activities = resized(prep.deals.frame, prep.deals.activities, n)

    def featurize() -> pd.DataFrame:
        return build_features(
            registry, frame, frame["deal_id"], frame["created_at"], activities
        )

    featurize_seconds = best_seconds(featurize, GROWTH_REPEATS, GROWTH_BUDGET)
    split = split_frames(resized(prep.features, None, n)[0])
    train = params.train.model_copy(
        update={"n_estimators": trees, "early_stopping_rounds": trees}
    )
    train_seconds = best_seconds(
        lambda: train_model(split, registry, train, params.bands, params.seed),
        GROWTH_REPEATS,
        GROWTH_BUDGET,
    )
    return {
        "featurize": (featurize_seconds, len(frame)),
        "train": (train_seconds, len(split.train)),
    }


def configured_train_seconds(prep: Prepared, n: int) -> dict[str, Any]:
    """Seconds of training on ``n`` deals' features as the train stage does (the
    project's settings: early stopping, calibration, bands), and its trees."""
    params = prep.params
    split = split_frames(resized(prep.features, None, n)[0])
    started = time.perf_counter()
    trained = train_model(split, prep.registry, params.train, params.bands, params.seed)
    return {
        "configured_train_seconds": round(time.perf_counter() - started, 3),
        "configured_train_trees": trained.info.best_iteration,
        "configured_train_deals": len(split.train),
    }


def growth_sizes(prep: Prepared, sizes: BenchSizes) -> list[int]:
    """The deals timed per growth factor: a generated source from
    ``sizes.growth_base``, an export from its own deals."""
    base = sizes.growth_base if prep.source.generated else len(prep.deals.frame)
    return [base * factor for factor in sizes.growth]


def bench_growth(prep: Prepared, sizes: BenchSizes) -> dict[str, Any]:
    """Figure 4: featurize and train time at growing data sizes, and featurize plus
    the configured train at the largest."""
    factors, trees = list(sizes.growth), sizes.timed_trees
    deals = growth_sizes(prep, sizes)
    measured: dict[str, dict[str, list[float]]] = {
        "featurize": {"seconds": [], "rows": []},
        "train": {"seconds": [], "rows": []},
    }
    for n in deals:
        for stage, (seconds, rows) in stage_seconds(prep, n, trees).items():
            measured[stage]["seconds"].append(seconds)
            measured[stage]["rows"].append(rows)
    figures: dict[str, Any] = {"factors": factors, "deals": deals}
    figures["timed_trees"] = trees
    for stage, values in measured.items():
        rates = [r / s for r, s in zip(values["rows"], values["seconds"], strict=True)]
        figures[f"{stage}_rows_per_second"] = [round(r, 1) for r in rates]
        figures[f"{stage}_seconds"] = [round(s, 3) for s in values["seconds"]]
        figures[f"{stage}_growth_exponent"] = growth_exponent(
            factors, values["seconds"]
        )
    figures |= configured_train_seconds(prep, deals[-1])
    figures["featurize_train_seconds_largest"] = (
        figures["featurize_seconds"][-1] + figures["configured_train_seconds"]
    )
    return figures


# --- 5: Spark -----------------------------------------------------------------------


def spark_module() -> Any:
    """bench/spark_bench.py, beside this file (a script folder, not a package)."""
    path = Path(__file__).with_name("spark_bench.py")
    spec = importlib.util.spec_from_file_location("spark_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["spark_bench"] = module
    spec.loader.exec_module(module)
    return module


def bench_spark(
    preps: Sequence[Prepared], sizes: BenchSizes, work: Path
) -> dict[str, Any]:
    """Figure 5 (:mod:`spark_bench`): the export's leads tiled to
    ``sizes.spark_leads`` in a Parquet file, explained by the local job and by the
    Spark job on local[2] and local[1], each in a fresh process."""
    export = [prep for prep in preps if not prep.source.generated]
    if not sizes.spark_leads or not export:
        return {"skipped": "quick run" if not sizes.spark_leads else "no export"}
    prep = export[0]
    folder = work / "spark"
    folder.mkdir(parents=True, exist_ok=True)
    path = write_leads(
        prep.leads, sizes.spark_leads, folder / "leads.parquet", prep.scorer.id_column
    )
    try:
        measured: dict[str, Any] = spark_module().bench_spark(
            prep.bundle, path, None, folder
        )
    finally:
        path.unlink()
    return measured


# --- 6: the pipeline from a fresh clone ------------------------------------------


def stage_times(lines: Sequence[tuple[float, str]], end: float) -> dict[str, float]:
    """Seconds of each stage `dvc repro` ran, from its output lines and the time
    each was read: a stage lasts from its "Running stage" line to the next one's
    (the last to ``end``).

    >>> stage_times([(0.0, "Running stage 'read@deals':"), (0.5, "x"),
    ...              (2.0, "Running stage 'train':")], 5.0)
    {'read@deals': 2.0, 'train': 3.0}
    """
    starts = [
        (when, line.split("'")[1])
        for when, line in lines
        if line.startswith("Running stage '")
    ]
    ends = [when for when, _ in starts[1:]] + [end]
    return {
        name: round(stop - when, 2)
        for (when, name), stop in zip(starts, ends, strict=True)
    }


def bench_repro(root: Path, work: Path) -> dict[str, Any]:
    """Figure 6: `dvc repro` of a fresh clone of the repository at ``root`` (its
    committed tree, the default source), run with this install (the clone's own
    code first on the path), in seconds, and the seconds of each stage."""
    if not (root / ".git").exists():
        return {"skipped": f"{root} is not a git repository"}
    clone = work / "clone"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(root), str(clone)],
        check=True,
    )
    # The outer `dvc repro` of the bench stage sets DVC_* variables for its
    # command; the clone is another repository.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVC_")}
    env["PYTHONPATH"] = str(clone / "src")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    dvc = str(Path(sys.executable).parent / "dvc")
    lines: list[tuple[float, str]] = []
    started = time.perf_counter()
    with subprocess.Popen(
        [dvc, "repro"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append((time.perf_counter() - started, line.strip()))
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        tail = "\n".join(line for _, line in lines[-20:])
        raise RuntimeError(f"dvc repro in a fresh clone failed:\n{tail}")
    return {
        "dvc_repro_clean_clone_seconds": round(seconds, 2),
        "stage_seconds": stage_times(lines, seconds),
        "commit": subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=clone,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip(),
    }


# --- the run ------------------------------------------------------------------------


def model_shape(prep: Prepared) -> dict[str, Any]:
    """The scorer's trees and training settings, and the size of its project."""
    trees = prep.scorer.model.booster.dump_model()["tree_info"]
    return {
        "source": prep.params.source.name,
        "deals": len(prep.deals.frame),
        "features": len(prep.registry.specs),
        "trees": len(trees),
        "max_leaves": max(t["num_leaves"] for t in trees),
        "train": prep.params.train.model_dump(),
    }


def environment(sizes: BenchSizes, models: dict[str, Any]) -> dict[str, Any]:
    """Where and on what the figures were measured."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "versions": {
            lib: version(lib)
            for lib in ("lightgbm", "numba", "numpy", "pandas", "pyarrow", "shap")
        },
        "models": models,
        "sizes": asdict(sizes),
    }


def judge(
    figures: Mapping[str, float], targets: Mapping[str, tuple[str, float] | None]
) -> dict[str, bool]:
    """Whether each figure with a target meets it."""
    met = {}
    for name, target in targets.items():
        if name in figures and target is not None:
            sense, limit = target
            value = figures[name]
            met[name] = bool(value <= limit if sense == "<=" else value >= limit)
    return met


def target_text(target: tuple[str, float] | None) -> str:
    """A target as text ("<= 2"), or "reported" when there is none."""
    return "reported" if target is None else f"{target[0]} {target[1]:g}"


def bench_source(
    prep: Prepared,
    steps: Mapping[str, Callable[[], dict[str, Any]]],
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """The details of one source: each step's result and how long it took."""
    details: dict[str, Any] = {}
    for name, step in steps.items():
        progress(f"{prep.source.name}: {name}")
        started = time.perf_counter()
        details[name] = step()
        details[name]["step_seconds"] = round(time.perf_counter() - started, 1)
    return details


def source_figures(details: Mapping[str, Any]) -> dict[str, float]:
    """The figures of one source's details, rounded."""
    return {
        name: round(float(part[name]), 4)
        for part in details.values()
        for name in TARGETS
        if name in part
    }


def cross_figures(figures: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The export's explained leads per second over the synthetic CRM's."""
    synthetic, export = figures[SYNTHETIC], figures[EXPORT]
    return {
        f"export_vs_synthetic_explained{suffix}": round(
            export[f"explained_leads_per_second{suffix}"]
            / synthetic[f"explained_leads_per_second{suffix}"],
            4,
        )
        for suffix in ("", "_csv")
    }


def run_bench(
    sources: Sequence[Source],
    sizes: BenchSizes,
    root: Path,
    work: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Run every benchmark on every source; return the figures, their targets,
    whether each is met, and the details."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lead-ml-bench-") as scratch:
        folder = work or Path(scratch)
        preps = []
        for source in sources:
            progress(f"{source.name}: building the project (stages up to export)")
            preps.append(prepare(source, sizes, folder, root))
        files = {prep.source.name: lead_files(prep, sizes) for prep in preps}
        progress("batch jobs on every source, taking turns")
        jobs = job_rates(preps, files)
        details, figures, models = {}, {}, {}
        for prep in preps:
            name, work_dir = prep.source.name, prep.folder / "bench"
            steps: dict[str, Callable[[], dict[str, Any]]] = {
                "scoring": partial(bench_scoring, prep, sizes, files[name], jobs[name]),
                "memory": partial(bench_memory, prep, sizes, work_dir),
                "growth": partial(bench_growth, prep, sizes),
            }
            details[name] = bench_source(prep, steps, progress)
            for path in files[name].values():
                path.unlink()
            figures[name] = source_figures(details[name])
            models[name] = model_shape(prep)
        progress("the export on Spark and locally")
        details[SPARK] = bench_spark(preps, sizes, folder)
        progress("dvc repro in a fresh clone")
        details[PIPELINE] = (
            bench_repro(root, folder) if sizes.repro else {"skipped": "quick run"}
        )
    met: dict[str, Any] = {name: judge(f, TARGETS) for name, f in figures.items()}
    targets: dict[str, str] = {n: target_text(t) for n, t in TARGETS.items()}
    if {SYNTHETIC, EXPORT} <= set(figures):
        cross = cross_figures(figures)
        figures["export_vs_synthetic"] = cross
        met["export_vs_synthetic"] = judge(cross, CROSS_TARGETS)
        targets |= {n: target_text(t) for n, t in CROSS_TARGETS.items()}
    for group, wanted in ((SPARK, SPARK_TARGETS), (PIPELINE, PIPELINE_TARGETS)):
        found = details[group].get("figures", details[group])
        whole = {name: float(found[name]) for name in wanted if name in found}
        if whole:
            figures[group], met[group] = whole, judge(whole, wanted)
            targets |= {n: target_text(t) for n, t in wanted.items()}
    return {
        "figures": figures,
        "targets": targets,
        "met": met,
        "details": details,
        "environment": environment(sizes, models),
        "compiled_anchor": compiled_anchor(),
        "seconds": round(time.perf_counter() - started, 1),
    }


def summary_lines(results: Mapping[str, Any]) -> list[str]:
    """One line per figure: source, figure, value, target and whether it is met."""
    lines = []
    for group, figures in results["figures"].items():
        for name, value in figures.items():
            met = results["met"][group].get(name)
            verdict = "" if met is None else ("met" if met else "NOT MET")
            target = results["targets"][name]
            lines.append(
                f"{group:<20} {name:<42} {value:>12,.4g} {target:>10} {verdict}"
            )
    for name, said in results.get("compiled_anchor", {}).items():
        lines.append(f"{'compiled anchor':<20} {name:<42} {said}")
    return lines


def write_results(results: Mapping[str, Any], path: Path) -> None:
    """Write the results as JSON (the bench stage's full record)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def headline(results: Mapping[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """The headline figures per source (:data:`HEADLINE`) and the cross-source
    ones, numbers only, under one key ``bench``: the bench stage's DVC metrics,
    the few columns `dvc exp show` adds after the model's (``bench.synthetic...``,
    apart from the ``synthetic`` params)."""
    figures = results["figures"]
    out = {
        source: {name: figures[source][name] for name in HEADLINE}
        for source in figures
        if source in (SYNTHETIC, EXPORT)
    }
    for group in ("export_vs_synthetic", PIPELINE):
        if group in figures:
            out[group] = dict(figures[group])
    return {"bench": out}


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: run the benchmarks, write the JSON, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument(
        "--export-params",
        type=Path,
        default=Path("examples/x_education/params.yaml"),
        help="params of the real-shaped export; its paths are relative to --root",
    )
    parser.add_argument("--out", type=Path, default=Path("reports/bench.json"))
    parser.add_argument(
        "--metrics",
        type=Path,
        help="also write the headline figures (numbers only) here",
    )
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument("--quick", action="store_true", help="seconds, for tests")
    parser.add_argument("--work", type=Path, help="keep the projects in this folder")
    args = parser.parse_args(argv)
    sources = [
        Source(SYNTHETIC, args.params, generated=True),
        Source(EXPORT, args.export_params, generated=False),
    ]
    sizes = BenchSizes.quick() if args.quick else BenchSizes()

    def progress(message: str) -> None:
        sys.stderr.write(f"bench: {message}\n")

    results = run_bench(sources, sizes, args.root.resolve(), args.work, progress)
    write_results(results, args.out)
    if args.metrics is not None:
        write_results(headline(results), args.metrics)
    sys.stdout.write("\n".join(summary_lines(results)) + "\n")
    sys.stdout.write(f"{args.out}: written in {results['seconds']} s\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
