"""Benchmarks of the batch scorer, each figure a ratio to a reference measured in the
same run (the machines are noisy: compare ratios, not seconds, across runs).

``make bench`` (or ``lead-ml bench``, ``python -m lead_ml.bench``) builds everything
it measures from params.yaml: the synthetic CRM, its features and the configured
model, exported as a scorer bundle, then measures

1. scoring without explanations, end to end from a Parquet file of raw leads to the
   output file, against LightGBM's ``Booster.predict`` on the prebuilt matrix (the
   physical limit for the model): target within 2x;
2. scoring with MEDDIC explanations against ``predict(pred_contrib=True)`` on the same
   matrix (target well over 10x faster) and against ``shap.TreeExplainer`` plus a
   pandas group-by per dimension; and explained leads per second (goal 20,000);
3. peak memory (ru_maxrss) of ``lead-ml score`` on 100 thousand against 10 million
   leads, each in its own process: target within 1.3x;
4. featurize and train time at 1x, 4x and 16x the data (the CRM tiled with fresh
   ids): rows per second per stage and the growth exponent (1 is linear).

Results go to ``reports/bench.json`` (declared as the metrics of the ``bench`` stage in
``bench/dvc.yaml``, so ``dvc metrics diff`` compares two commits). ``--quick`` scales
everything down to seconds, for tests.

>>> growth_exponent([1, 4, 16], [2.0, 8.0, 32.0])
1.0
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lead_ml.config import Params, TrainConfig
from lead_ml.features import build_features, feature_dimensions
from lead_ml.model import (
    TrainedModel,
    model_matrix,
    predict_proba,
    time_split,
    train_model,
)
from lead_ml.scorer import (
    ID_COLUMN,
    Scorer,
    bundle_spec,
    input_columns,
    load_scorer,
    write_bundle,
)
from lead_ml.synthetic import SyntheticCRM, generate_crm

#: Every figure and what it must reach ("<=" for costs, ">=" for speeds; None: only
#: reported). "explain" is the whole batch job with reasons and next questions;
#: "contributions" the exact per-dimension values alone. The issue asks for the
#: explained job against the same model's pred_contrib to be reported, and for well
#: over 10x against a 31-leaf model (the shape it starts from).
TARGETS: dict[str, tuple[str, float] | None] = {
    "score_slowdown_vs_predict": ("<=", 2.0),
    "explain_speedup_vs_pred_contrib": None,
    "contributions_speedup_vs_pred_contrib": (">=", 10.0),
    "explain_speedup_vs_31_leaf_pred_contrib": (">=", 10.0),
    "explain_speedup_vs_shap_groupby": None,
    "explained_leads_per_second": (">=", 20_000.0),
    "auc_gap_vs_31_leaf": ("<=", 0.005),
    "memory_ratio_large_vs_small": ("<=", 1.3),
    "featurize_growth_exponent": ("<=", 1.15),
    "train_growth_exponent": ("<=", 1.15),
}
#: The tree shape the issue starts from: what "unconstrained" means in the figures.
REFERENCE_SHAPE = {"num_leaves": 31, "max_depth": -1}
T = TypeVar("T")
#: Trees trained when timing the train stage: a fixed count, so time follows rows.
TIMED_TREES = 200


@dataclass(frozen=True)
class BenchSizes:
    """How much each benchmark processes; ``quick()`` is the tiny version for tests."""

    leads: int = 200_000
    contrib_rows: int = 5_000
    shap_rows: int = 2_000
    memory_small: int = 100_000
    memory_large: int = 10_000_000
    growth: tuple[int, ...] = (1, 4, 16)
    n_deals: int | None = None  # None: params.synthetic.n_deals
    timed_trees: int = TIMED_TREES

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
            n_deals=1_500,
            timed_trees=10,
        )


@dataclass
class Context:
    """What the benchmarks share: the CRM, its lead rows and the exported scorer."""

    params: Params
    sizes: BenchSizes
    work: Path
    crm: SyntheticCRM
    leads: pd.DataFrame
    bundle: Path
    scorer: Scorer
    reference: TrainedModel  # REFERENCE_SHAPE, trained on the same split
    test: pd.DataFrame  # the split's test window, for AUC


# --- set-up -----------------------------------------------------------------------


def prepare(params: Params, sizes: BenchSizes, work: Path) -> Context:
    """Generate the CRM, train the configured model and export it as a bundle."""
    synthetic = params.synthetic
    if sizes.n_deals is not None:
        synthetic = synthetic.model_copy(
            update={
                "n_deals": sizes.n_deals,
                "n_accounts": max(10, sizes.n_deals // 5),
            }
        )
    crm = generate_crm(synthetic, seed=params.seed, dirty_fraction=0.0)
    features = build_features(crm.deals, crm.accounts, crm.activities, params.featurize)
    split = time_split(features, params.split)
    model = train_model(split, params.train, params.bands, params.seed)
    reference_train = params.train.model_copy(update=REFERENCE_SHAPE)
    reference = train_model(split, reference_train, params.bands, params.seed)
    spec = bundle_spec(model, split.train, params.featurize)
    bundle = write_bundle(model, spec, work / "scorer")
    leads = crm.deals.merge(crm.accounts, on="account_id", how="left")
    scorer = load_scorer(bundle)
    return Context(
        params,
        sizes,
        work,
        crm,
        leads[list(input_columns())],
        bundle,
        scorer,
        reference,
        split.test,
    )


def write_leads(base: pd.DataFrame, n: int, path: Path) -> Path:
    """n lead rows in a Parquet file: base rows repeated with fresh ids (cheap at
    10 million: one base-sized row group at a time)."""
    with pq.ParquetWriter(
        path, pa.Schema.from_pandas(base, preserve_index=False)
    ) as out:
        for copy, start in enumerate(range(0, n, len(base))):
            piece = base.iloc[: min(len(base), n - start)].copy()
            piece[ID_COLUMN] = piece[ID_COLUMN].astype("string") + f"~{copy}"
            out.write_table(pa.Table.from_pandas(piece, preserve_index=False))
    return path


def tile_crm(crm: SyntheticCRM, factor: int) -> SyntheticCRM:
    """The CRM repeated ``factor`` times, every copy with fresh account, deal and
    activity ids (same distribution, factor times the rows)."""

    def tiled(frame: pd.DataFrame, text_ids: list[str], number_id: str = "") -> Any:
        copies = []
        for copy in range(factor):
            piece = frame.copy()
            for column in text_ids:
                piece[column] = piece[column].astype("string") + f"~{copy}"
            if number_id:
                piece[number_id] += copy * (int(frame[number_id].max()) + 1)
            copies.append(piece)
        return pd.concat(copies, ignore_index=True)

    return SyntheticCRM(
        accounts=tiled(crm.accounts, ["account_id"]),
        deals=tiled(crm.deals, ["deal_id", "account_id"]),
        activities=tiled(crm.activities, ["deal_id"], "activity_id"),
        truth=crm.truth,
    )


@contextmanager
def _timer() -> Iterator[Callable[[], float]]:
    """Seconds elapsed in the block (read after it)."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: end[0] - start
    end.append(time.perf_counter())


#: Runs per stage and size when timing growth: the fastest of three, because the 1x
#: featurize run takes ~0.1 s and one disturbed run would move the exponent.
GROWTH_REPEATS = 3


def _timed(run: Callable[[], T], repeats: int = 2) -> tuple[T, float]:
    """The result of the last of a few runs, and the fastest run's seconds."""
    best, result = np.inf, None
    for _ in range(repeats):
        with _timer() as seconds:
            result = run()
        best = min(best, seconds())
    return result, float(best)  # type: ignore[return-value]


def _best_seconds(run: Callable[[], object], repeats: int = 3) -> float:
    """Fastest of a few runs: the least disturbed by other processes."""
    best = np.inf
    for _ in range(repeats):
        with _timer() as seconds:
            run()
        best = min(best, seconds())
    return float(best)


# --- 1 and 2: scoring speed ---------------------------------------------------------


def _score_seconds(ctx: Context, path: Path, explain: bool, repeats: int = 2) -> float:
    """Seconds of the batch job (read, validate, featurize, score, write) on a file:
    the fastest of a few runs, as for the references."""
    from lead_ml.batch import score_file

    out = ctx.work / f"scores_{'explained' if explain else 'plain'}.parquet"
    best = np.inf
    for _ in range(repeats):
        summary = score_file(
            ctx.scorer, path, out, out.with_suffix(".rejects.csv"), None, explain
        )
        if summary.scored != summary.rows_in:
            raise RuntimeError(f"bench leads were rejected: {summary.as_dict()}")
        best = min(best, summary.seconds)
    return float(best)


def _matrix(ctx: Context, path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The features and the model matrix of a leads file, built outside any timing."""
    leads = pd.read_parquet(path)
    features = build_features(leads, None, None, ctx.scorer.featurize)
    return features, model_matrix(features, ctx.scorer.model.info.categories)


def shap_explainer(booster: Any) -> Any:
    """shap.TreeExplainer of a booster (shap's import warns about matplotlib)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import shap

        return shap.TreeExplainer(booster)


def shap_groupby(explainer: Any, matrix: pd.DataFrame) -> pd.DataFrame:
    """The obvious alternative: ``shap.TreeExplainer`` values summed per dimension
    with a pandas group-by (raw margin units, bias left out)."""
    with warnings.catch_warnings():
        # shap's notice that LightGBM binary output is one array is not ours to act on
        warnings.simplefilter("ignore", UserWarning)
        values = explainer.shap_values(matrix)
    if isinstance(values, list):  # older shap: one array per class
        values = values[-1]
    per_feature = pd.DataFrame(values, columns=matrix.columns, index=matrix.index)
    dimension_of = feature_dimensions()
    return per_feature.T.groupby(lambda name: dimension_of[name]).sum().T


def bench_scoring(ctx: Context) -> dict[str, Any]:
    """Figures 1 and 2: plain and explained scoring against LightGBM and shap."""
    from lead_ml.explain import dimension_contributions

    path = write_leads(ctx.leads, ctx.sizes.leads, ctx.work / "leads.parquet")
    booster, best = ctx.scorer.model.booster, ctx.scorer.model.info.best_iteration
    features, matrix = _matrix(ctx, path)
    ctx.scorer.score(ctx.leads.head(100))  # compile and load what is lazy, untimed
    predict = _best_seconds(
        lambda: booster.predict(matrix, raw_score=True, num_iteration=best)
    )
    plain, explained = _score_seconds(ctx, path, False), _score_seconds(ctx, path, True)
    few, fewer = (
        matrix.iloc[: ctx.sizes.contrib_rows],
        matrix.iloc[: ctx.sizes.shap_rows],
    )
    contrib = _best_seconds(
        lambda: booster.predict(few, pred_contrib=True, num_iteration=best), 1
    )
    reference = ctx.reference
    few_reference = model_matrix(
        features.iloc[: ctx.sizes.contrib_rows], reference.info.categories
    )
    contrib_reference = _best_seconds(
        lambda: reference.booster.predict(
            few_reference,
            pred_contrib=True,
            num_iteration=reference.info.best_iteration,
        ),
        1,
    )
    explainer = shap_explainer(booster)  # built once, as a batch job would: untimed
    shap_seconds = _best_seconds(lambda: shap_groupby(explainer, fewer), 1)
    kernel = _best_seconds(lambda: dimension_contributions(ctx.scorer.model, features))
    n = len(matrix)
    rates = {
        "predict_rows_per_second": n / predict,
        "score_rows_per_second": n / plain,
        "explained_rows_per_second": n / explained,
        "pred_contrib_rows_per_second": len(few) / contrib,
        "pred_contrib_31_leaf_rows_per_second": len(few) / contrib_reference,
        "shap_groupby_rows_per_second": len(fewer) / shap_seconds,
        "dimension_contributions_rows_per_second": n / kernel,
    }
    explained = rates["explained_rows_per_second"]
    return {
        "leads": n,
        **{k: round(v, 1) for k, v in rates.items()},
        "score_slowdown_vs_predict": rates["predict_rows_per_second"]
        / rates["score_rows_per_second"],
        "explain_speedup_vs_pred_contrib": explained
        / rates["pred_contrib_rows_per_second"],
        "contributions_speedup_vs_pred_contrib": rates[
            "dimension_contributions_rows_per_second"
        ]
        / rates["pred_contrib_rows_per_second"],
        "explain_speedup_vs_31_leaf_pred_contrib": explained
        / rates["pred_contrib_31_leaf_rows_per_second"],
        "explain_speedup_vs_shap_groupby": explained
        / rates["shap_groupby_rows_per_second"],
        "explained_leads_per_second": explained,
        **test_auc(ctx),
    }


def test_auc(ctx: Context) -> dict[str, float]:
    """Test ROC AUC of the configured model and of the 31-leaf reference: the tree
    shape must not buy its speed with accuracy."""
    from sklearn.metrics import roc_auc_score

    won = ctx.test["won"].astype(int)
    model = roc_auc_score(won, predict_proba(ctx.scorer.model, ctx.test))
    reference = roc_auc_score(won, predict_proba(ctx.reference, ctx.test))
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


def peak_memory_mb(command: list[str], env: dict[str, str] | None = None) -> float:
    """Peak resident memory (MB) of a command run in its own process (its own
    ru_maxrss, from wait4: not the maximum over every child so far)."""
    with tempfile.TemporaryFile() as stderr:  # a file: a pipe could fill and block
        done = subprocess.run(
            [sys.executable, "-c", _MEASURE, *command],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            text=True,
            check=False,
        )
        kilobytes, code = (int(x) for x in done.stdout.split()[-2:])
        if code != 0 or done.returncode != 0:
            stderr.seek(0)
            message = stderr.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(command)} failed: {message}")
    return kilobytes / 1024  # Linux reports kilobytes


def _score_command(ctx: Context, path: Path) -> list[str]:
    out = path.with_name(f"{path.stem}.scores.parquet")
    return [
        sys.executable,
        "-m",
        "lead_ml.cli",
        "score",
        "--model",
        str(ctx.bundle),
        "--input",
        str(path),
        "--output",
        str(out),
        "--no-explain",
    ]


def bench_memory(ctx: Context) -> dict[str, Any]:
    """Figure 3: peak memory of `lead-ml score` on a small and a large file."""
    measured: dict[str, Any] = {}
    for label, n in (
        ("small", ctx.sizes.memory_small),
        ("large", ctx.sizes.memory_large),
    ):
        path = write_leads(ctx.leads, n, ctx.work / f"leads_{label}.parquet")
        with _timer() as seconds:
            measured[f"{label}_peak_mb"] = round(
                peak_memory_mb(_score_command(ctx, path)), 1
            )
        measured[f"{label}_leads"] = n
        measured[f"{label}_seconds"] = round(seconds(), 2)
        path.unlink()
    measured["memory_ratio_large_vs_small"] = (
        measured["large_peak_mb"] / measured["small_peak_mb"]
    )
    return measured


# --- 4: growth ----------------------------------------------------------------------


def growth_exponent(sizes: list[int], seconds: list[float]) -> float:
    """Slope of log(time) against log(size): 1 is linear, 2 quadratic."""
    slope = np.polyfit(np.log(sizes), np.log(seconds), 1)[0]
    return round(float(slope), 3)


def bench_growth(ctx: Context) -> dict[str, Any]:
    """Figure 4: featurize and train time at growing data sizes."""
    params, trees = ctx.params, ctx.sizes.timed_trees
    train = params.train.model_copy(
        update={"n_estimators": trees, "early_stopping_rounds": trees}
    )
    stages: dict[str, dict[str, list[float]]] = {
        "featurize": {"seconds": [], "rows": []},
        "train": {"seconds": [], "rows": []},
    }
    for factor in ctx.sizes.growth:
        for stage, (seconds, rows) in _time_stages(
            tile_crm(ctx.crm, factor), params, train
        ).items():
            stages[stage]["seconds"].append(seconds)
            stages[stage]["rows"].append(rows)
    return _growth_figures(list(ctx.sizes.growth), stages, trees)


def _time_stages(
    crm: SyntheticCRM, params: Params, train: TrainConfig
) -> dict[str, tuple[float, int]]:
    """Best-of-GROWTH_REPEATS seconds and rows of the featurize and train stages."""
    features, featurize_seconds = _timed(
        partial(
            build_features, crm.deals, crm.accounts, crm.activities, params.featurize
        ),
        GROWTH_REPEATS,
    )
    split = time_split(features, params.split)
    del features
    _, train_seconds = _timed(
        partial(train_model, split, train, params.bands, params.seed), GROWTH_REPEATS
    )
    return {
        "featurize": (featurize_seconds, len(crm.deals)),
        "train": (train_seconds, len(split.train)),
    }


def _growth_figures(
    factors: list[int], stages: dict[str, dict[str, list[float]]], trees: int
) -> dict[str, Any]:
    figures: dict[str, Any] = {"factors": factors, "timed_trees": trees}
    for stage, measured in stages.items():
        rates = [
            r / s for r, s in zip(measured["rows"], measured["seconds"], strict=True)
        ]
        figures[f"{stage}_rows_per_second"] = [round(r, 1) for r in rates]
        figures[f"{stage}_seconds"] = [round(s, 3) for s in measured["seconds"]]
        figures[f"{stage}_growth_exponent"] = growth_exponent(
            factors, measured["seconds"]
        )
    return figures


# --- the run ------------------------------------------------------------------------


def environment(ctx: Context) -> dict[str, Any]:
    """Where and on what the figures were measured."""
    dump = ctx.scorer.model.booster.dump_model()
    trees = dump["tree_info"]
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "versions": {
            lib: version(lib)
            for lib in ("lightgbm", "numba", "numpy", "pandas", "shap")
        },
        "model": {
            "trees": len(trees),
            "max_leaves": max(t["num_leaves"] for t in trees),
            "train": ctx.params.train.model_dump(),
        },
        "sizes": asdict(ctx.sizes),
    }


def judge(figures: dict[str, float]) -> dict[str, bool]:
    """Whether each figure with a target meets it."""
    met = {}
    for name, target in TARGETS.items():
        if name in figures and target is not None:
            sense, limit = target
            value = figures[name]
            met[name] = bool(value <= limit if sense == "<=" else value >= limit)
    return met


def target_text(name: str) -> str:
    """A figure's target as text ("<= 2"), or "reported" when it has none."""
    target = TARGETS[name]
    return "reported" if target is None else f"{target[0]} {target[1]:g}"


def run_bench(
    params: Params,
    sizes: BenchSizes,
    work: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Run every benchmark; return the figures, their targets and the details."""
    with tempfile.TemporaryDirectory(prefix="lead-ml-bench-") as scratch:
        folder = work or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        progress("preparing: CRM, features, model, scorer bundle")
        ctx = prepare(params, sizes, folder)
        details: dict[str, Any] = {}
        for name, step in (
            ("scoring", bench_scoring),
            ("memory", bench_memory),
            ("growth", bench_growth),
        ):
            progress(f"measuring {name}")
            details[name] = step(ctx)
        figures = {
            name: round(float(details[part][name]), 4)
            for part in details
            for name in TARGETS
            if name in details[part]
        }
        return {
            "figures": figures,
            "targets": {name: target_text(name) for name in TARGETS},
            "met": judge(figures),
            "details": details,
            "environment": environment(ctx),
            "seconds": round(time.perf_counter() - started, 1),
        }


def write_results(results: dict[str, Any], path: Path) -> None:
    """Write the results as JSON (the bench stage's metrics file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    from lead_ml.cli import app

    app(["bench", *sys.argv[1:]])
