"""lead-ml's training defaults on small exports against a notebook baseline, measured
in the same run on the same folds (issue 14, "Small data").

For each shared data set (X Education leads, Maven CRM; ``../shared/data``) the
pipeline runs once up to featurize in a temporary folder (read, validate, audit,
featurize: no MLflow), then, for each size (300 to 1,000 closed deals) and each
draw, a seeded random subsample of the closed deals keeps its time order and is cut
into the rolling-origin folds the evaluation uses (:func:`lead_ml.model.
rolling_origin_folds`). On every fold four approaches train on the same deals and
score the same test block:

- ``lead-ml``: the pipeline's own fold model (:func:`lead_ml.model.fold_scores`,
  the defaults of params.yaml: below 4,000 training deals the small-data model of
  :func:`lead_ml.model.inner_cv_model`, its tree count chosen by stratified folds
  over its own training deals and refit on all of them, Platt on their out-of-fold
  margins with a slope never below 0, the tree shape of
  :func:`lead_ml.model.scaled_train`);
- ``lead-ml unscaled``: the same with ``train.small_data: false`` (the tree shape
  tuned at tens of thousands of deals, early stopping and Platt on the latest 15%
  of the training deals);
- ``notebook lightgbm``: ``lightgbm.LGBMClassifier()`` with its defaults (100 trees
  of 31 leaves, no early stopping) on every training deal, categories as pandas
  categoricals;
- ``logistic regression``: scikit-learn's default ``LogisticRegression`` on
  standardised numbers (median-imputed, with a missing flag) and one-hot categories.

It prints, per data set and size, each approach's mean fold ROC AUC over draws and
folds, and lead-ml minus the best baseline (the better of the two by mean) with a
95% paired-bootstrap CI (:func:`paired_gaps`): each replicate redraws the
subsamples and, inside every test block, its deals, the same deals for lead-ml and
the baseline, so that the noise of 50-deal test blocks is counted, not only the
spread between draws. ``no_worse`` is that CI reaching 0 or above. ``--out`` writes
it all as JSON. Run::

    nice -n 15 .venv/bin/python bench/small_data.py --draws 5 --sizes 300 500 1000 \
        --out reports/small_data.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from lead_ml import stages
from lead_ml.config import Params, load_params, read_params_file
from lead_ml.features import FeatureRegistry
from lead_ml.model import (
    category_levels,
    closed_in_time,
    fold_scores,
    model_matrix,
    rolling_origin_folds,
)

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {
    "x_education": ROOT / "examples" / "x_education" / "params.yaml",
    "maven": ROOT / "examples" / "maven_crm" / "params.yaml",
}
SIZES = (300, 500, 1000)
APPROACHES = ("lead-ml", "lead-ml unscaled", "notebook lightgbm", "logistic regression")
BASELINES = ("notebook lightgbm", "logistic regression")
COMMAND = (
    "nice -n 15 .venv/bin/python bench/small_data.py --draws 5 --sizes 300 500 1000 "
    "--out reports/small_data.json"
)


def featurized(name: str, folder: Path) -> tuple[Params, pd.DataFrame, FeatureRegistry]:
    """A data set's params, features table and registry, built in folder."""
    raw = read_params_file(SOURCES[name])
    for table in raw["source"]["tables"].values():
        table["path"] = str((ROOT / table["path"]).resolve())
    (folder / "params.yaml").write_text(json.dumps(raw))
    params = load_params(folder / "params.yaml")
    path = folder.joinpath
    for table in params.source.tables.present():
        stages.run_read(params, table, path(f"data/tables/{table}.parquet"))
    stages.run_validate(
        params, path("data/tables"), path("data/validated"), path("rejects.csv")
    )
    stages.run_audit(
        params,
        path("data/validated"),
        path("audit.json"),
        path("audit.md"),
        path("split.parquet"),
    )
    stages.run_featurize(
        params,
        path("data/validated"),
        path("audit.json"),
        path("split.parquet"),
        path("features.parquet"),
        path("registry.json"),
    )
    features = pd.read_parquet(path("features.parquet"))
    return params, features, stages.read_registry(path("registry.json"))


def subsample(features: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """n closed deals drawn at random, in time order, each its own group."""
    closed = features.iloc[closed_in_time(features)]
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(closed), size=min(n, len(closed)), replace=False))
    drawn = closed.iloc[keep].reset_index(drop=True)
    return drawn.assign(group=np.arange(len(drawn)))


def notebook_lightgbm(
    train: pd.DataFrame, test: pd.DataFrame, registry: FeatureRegistry, seed: int
) -> np.ndarray:
    """What a notebook writes: LGBMClassifier() on every training deal."""
    categories = category_levels(train, registry.categorical)
    model = lgb.LGBMClassifier(random_state=seed, verbose=-1, n_jobs=1)
    model.fit(model_matrix(train, categories, registry.names), train["won"].astype(int))
    matrix = model_matrix(test, categories, registry.names)
    return np.asarray(model.predict_proba(matrix))[:, 1]


def logistic(
    train: pd.DataFrame, test: pd.DataFrame, registry: FeatureRegistry
) -> np.ndarray:
    """Default logistic regression on scaled numbers and one-hot categories."""
    categorical = list(registry.categorical)
    numeric = [n for n in registry.names if n not in categorical]
    prepare = ColumnTransformer(
        [
            (
                "numbers",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True),
                    StandardScaler(),
                ),
                numeric,
            ),
            (
                "categories",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="(missing)"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                categorical,
            ),
        ]
    )

    def frame(part: pd.DataFrame) -> pd.DataFrame:
        out = part[registry.names].copy()
        out[numeric] = out[numeric].astype(float)
        for name in categorical:
            out[name] = out[name].astype(object).where(out[name].notna(), None)
        return out

    model = make_pipeline(prepare, LogisticRegression(max_iter=2000))
    model.fit(frame(train), train["won"].astype(int))
    return np.asarray(model.predict_proba(frame(test)))[:, 1]


@dataclass(frozen=True)
class Block:
    """One fold's test block: its deals' outcomes and each approach's scores."""

    won: np.ndarray
    scores: dict[str, np.ndarray]


def fold_blocks(
    sample: pd.DataFrame, registry: FeatureRegistry, params: Params
) -> list[Block]:
    """Each approach's scores on each rolling-origin test block of the sample
    (blocks of one outcome, which have no AUC, left out)."""
    audit = params.audit
    folds = rolling_origin_folds(sample, audit.cv_splits, audit.rolling_min_train)
    won = sample["won"].to_numpy(int)
    unscaled = params.model_copy(
        update={"train": params.train.model_copy(update={"small_data": False})}
    )
    scored = {
        "lead-ml": fold_scores(sample, registry, params, folds, True).probability,
        "lead-ml unscaled": fold_scores(
            sample, registry, unscaled, folds, True
        ).probability,
        "notebook lightgbm": [
            notebook_lightgbm(sample.iloc[tr], sample.iloc[te], registry, params.seed)
            for tr, te in folds
        ],
        "logistic regression": [
            logistic(sample.iloc[tr], sample.iloc[te], registry) for tr, te in folds
        ],
    }
    return [
        Block(won[test], {name: np.asarray(scored[name][i]) for name in APPROACHES})
        for i, (_, test) in enumerate(folds)
        if won[test].min() != won[test].max()
    ]


def auc_rows(won: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of ``scores`` against the same row of ``won`` (ties
    count half; NaN where a row holds one outcome).

    >>> won = np.array([[0, 1, 1, 0], [1, 1, 1, 1]])
    >>> auc_rows(won, np.array([[0.1, 0.5, 0.2, 0.5]] * 2)).tolist()
    [0.625, nan]
    """
    ranks = rankdata(scores, axis=1)
    wins = won.sum(axis=1)
    losses = won.shape[1] - wins
    ranked = (ranks * won).sum(axis=1) - wins * (wins + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((wins > 0) & (losses > 0), ranked / (wins * losses), np.nan)


def paired_gaps(
    draws: list[list[Block]], first: str, second: str, n_bootstrap: int, seed: int
) -> np.ndarray:
    """Bootstrap replicates of mean fold AUC(first) - AUC(second): each replicate
    redraws the draws (subsamples) with replacement and, inside every test block of
    each, its deals with replacement, the same deals for both approaches; the gap is
    averaged over the blocks of the drawn subsamples, as the point estimate is."""
    rng = np.random.default_rng(seed)
    gaps = np.zeros(n_bootstrap)
    picks = rng.integers(0, len(draws), size=(n_bootstrap, len(draws)))
    for d, blocks in enumerate(draws):
        times = (picks == d).sum(axis=1)  # how often each replicate drew draw d
        if not times.any():
            continue
        per_block = np.full((n_bootstrap, len(blocks)), np.nan)
        for b, block in enumerate(blocks):
            n = len(block.won)
            index = rng.integers(0, n, size=(n_bootstrap, n))
            won = block.won[index]
            per_block[:, b] = auc_rows(won, block.scores[first][index]) - auc_rows(
                won, block.scores[second][index]
            )
        # A resample of one outcome has no AUC: the draw's other blocks count.
        gaps += times * np.nan_to_num(np.nanmean(per_block, axis=1))
    return gaps / len(draws)


def measure(
    draws: int,
    sizes: tuple[int, ...],
    sources: list[str] | None = None,
    n_bootstrap: int = 1000,
) -> dict[str, Any]:
    """Every data set (or ``sources``), size and draw (see the module doc)."""
    results: dict[str, Any] = {}
    for name in sources or list(SOURCES):
        with tempfile.TemporaryDirectory() as folder:
            params, features, registry = featurized(name, Path(folder))
        for n in sizes:
            blocks = [
                fold_blocks(subsample(features, n, params.seed + d), registry, params)
                for d in range(draws)
            ]
            per_draw = {
                a: [
                    float(np.mean([roc_auc_score(b.won, b.scores[a]) for b in bl]))
                    for bl in blocks
                ]
                for a in APPROACHES
            }
            mean = {a: float(np.mean(v)) for a, v in per_draw.items()}
            gaps: dict[str, float] = {}
            cis: dict[str, list[float]] = {}
            for baseline in BASELINES:
                gaps[baseline] = float(
                    np.mean(per_draw["lead-ml"]) - np.mean(per_draw[baseline])
                )
                replicates = paired_gaps(
                    blocks, "lead-ml", baseline, n_bootstrap, params.seed + n
                )
                cis[baseline] = [
                    float(q) for q in np.quantile(replicates, [0.025, 0.975])
                ]
            best = max(BASELINES, key=mean.__getitem__)
            low, high = cis[best]
            results[f"{name} {n}"] = {
                "deals": n,
                "draws": draws,
                "test_blocks": sum(len(bl) for bl in blocks),
                "mean_fold_auc": mean,
                "best_baseline": best,
                "lead_ml_minus_best": gaps[best],
                "lead_ml_minus_best_ci95": cis[best],
                "no_worse": high >= 0,
                "versus": {
                    b: {"lead_ml_minus": gaps[b], "ci95": cis[b]} for b in BASELINES
                },
                "per_draw": per_draw,
            }
            row = "  ".join(f"{a} {mean[a]:.3f}" for a in APPROACHES)
            print(  # noqa: T201 - the bench's report
                f"{name:12} n={n:5}: {row}  | lead-ml - {best}: "
                f"{gaps[best]:+.3f} [{low:+.3f}, {high:+.3f}]",
                flush=True,
            )
    return {
        "command": COMMAND,
        "n_bootstrap": n_bootstrap,
        "ci": "paired bootstrap: subsamples and, inside each test block, deals "
        "redrawn with replacement, the same deals for lead-ml and the baseline",
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--sources", nargs="+", default=list(SOURCES))
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = measure(args.draws, tuple(args.sizes), args.sources, args.bootstrap)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
