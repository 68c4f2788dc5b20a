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
  the defaults of params.yaml: early stopping on the latest share, Platt, and the
  small-data tree shape of :func:`lead_ml.model.scaled_train`);
- ``lead-ml unscaled``: the same with ``train.small_data: false`` (the tree shape
  tuned at tens of thousands of deals);
- ``notebook lightgbm``: ``lightgbm.LGBMClassifier()`` with its defaults (100 trees
  of 31 leaves, no early stopping) on every training deal, categories as pandas
  categoricals;
- ``logistic regression``: scikit-learn's default ``LogisticRegression`` on
  standardised numbers (median-imputed, with a missing flag) and one-hot categories.

It prints, per data set and size, each approach's mean fold ROC AUC over draws and
folds, and lead-ml minus the best baseline with a 95% CI over the draws; ``--out``
writes them as JSON. Run::

    nice -n 15 .venv/bin/python bench/small_data.py --draws 5 \
        --out reports/small_data.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
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


def fold_aucs(
    sample: pd.DataFrame, registry: FeatureRegistry, params: Params
) -> dict[str, list[float]]:
    """Each approach's ROC AUC on each rolling-origin fold of the sample."""
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
    out: dict[str, list[float]] = {name: [] for name in APPROACHES}
    for i, (_, test) in enumerate(folds):
        if won[test].min() == won[test].max():
            continue  # a block with one outcome has no AUC, for any approach
        for name in APPROACHES:
            out[name].append(float(roc_auc_score(won[test], scored[name][i])))
    return out


def measure(
    draws: int, sizes: tuple[int, ...], sources: list[str] | None = None
) -> dict[str, Any]:
    """Every data set (or ``sources``), size and draw (see the module doc)."""
    results: dict[str, Any] = {}
    for name in sources or list(SOURCES):
        with tempfile.TemporaryDirectory() as folder:
            params, features, registry = featurized(name, Path(folder))
        for n in sizes:
            per_draw: dict[str, list[float]] = {a: [] for a in APPROACHES}
            for draw in range(draws):
                sample = subsample(features, n, params.seed + draw)
                aucs = fold_aucs(sample, registry, params)
                for approach, values in aucs.items():
                    per_draw[approach].append(float(np.mean(values)))
            mean = {a: float(np.mean(v)) for a, v in per_draw.items()}
            best = max(
                ("notebook lightgbm", "logistic regression"), key=mean.__getitem__
            )
            gap = np.array(per_draw["lead-ml"]) - np.array(per_draw[best])
            half = 1.96 * gap.std(ddof=1) / np.sqrt(len(gap)) if len(gap) > 1 else 0.0
            results[f"{name} {n}"] = {
                "deals": n,
                "draws": draws,
                "mean_fold_auc": mean,
                "best_baseline": best,
                "lead_ml_minus_best": float(gap.mean()),
                "lead_ml_minus_best_ci95": [
                    float(gap.mean() - half),
                    float(gap.mean() + half),
                ],
                "per_draw": per_draw,
            }
            row = "  ".join(f"{a} {mean[a]:.3f}" for a in APPROACHES)
            print(  # noqa: T201 - the bench's report
                f"{name:12} n={n:5}: {row}  | lead-ml - {best}: {gap.mean():+.3f} "
                f"[{gap.mean() - half:+.3f}, {gap.mean() + half:+.3f}]",
                flush=True,
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--sources", nargs="+", default=list(SOURCES))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = measure(args.draws, tuple(args.sizes), args.sources)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
