"""The DVC stages as functions: read files, call the pure logic, write outputs.

Each ``run_*`` function is what one ``lead-ml <stage>`` command does, for every
source alike; paths come in as arguments (dvc.yaml holds them once, templated from
params.yaml) and a summary dict goes back for the CLI to print. Every file is
written atomically (a hidden temporary file renamed into place).

    read (one per table) -> validate -> audit -> featurize -> train -> evaluate
        -> export -> report (lead_ml.report)
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from lead_ml import tracking
from lead_ml.audit import check, cv_folds, summary_markdown
from lead_ml.audit import run_audit as audit_deals
from lead_ml.baseline import bant_scores, check_rule
from lead_ml.config import EvaluateConfig, Params
from lead_ml.evaluate import (
    cross_validated_probability,
    evaluate_score_frame,
    plot_data,
)
from lead_ml.features import FeatureRegistry, build_features, plan_features
from lead_ml.model import (
    Split,
    TrainedModel,
    load_model,
    model_matrix,
    predict_proba,
    save_model,
    split_frames,
    train_model,
)
from lead_ml.scorer import bundle_spec, export_scorer
from lead_ml.sources import (
    Deals,
    copy_table,
    lead_rows,
    load_deals,
    read_deals,
    read_tables,
    write_deals,
)
from lead_ml.synthetic import generate_crm, write_crm
from lead_ml.tables import atomic_path, write_json, write_parquet
from lead_ml.vocab import FEATURE_META, ConfigError, ContractError

RUN_FILE = "run.json"
REGISTRY_FILE = "registry.json"


def _read_json(path: Path, hint: str) -> Any:
    if not path.exists():
        raise ContractError(f"{path}: not found; {hint}")
    return json.loads(path.read_text())


def run_generate(params: Params, out_dir: Path) -> dict[str, Any]:
    """Generate the synthetic CRM into out_dir; return its truth summary."""
    crm = generate_crm(params.synthetic, seed=params.seed)
    write_crm(crm, out_dir, params.synthetic.format)
    return {**crm.summary, "n_activities": len(crm.activities)}


def run_read(params: Params, table: str, out: Path) -> dict[str, Any]:
    """Copy one table of the source (``deals``, ``accounts`` or ``activities``) to
    ``out`` as Parquet."""
    tables = params.source.tables.present()
    if table not in tables:
        raise ConfigError(
            f"--table {table!r}: the source has no such table; it has "
            f"{', '.join(tables)} (source.tables in params.yaml)"
        )
    rows = copy_table(tables[table], table, out)
    return {"table": table, "path": str(tables[table].path), "rows": rows}


def run_validate(
    params: Params, tables_dir: Path, out_dir: Path, rejects_path: Path
) -> dict[str, Any]:
    """Label the source's deals; valid rows to out_dir, rejected rows (one reason
    each) to rejects_path. Returns the counts, which reconcile per table."""
    tables = read_tables(params.source, tables_dir)
    deals = load_deals(params.source, params.bant, tables)
    check_rule(params.bant, lead_rows(deals.frame, params.source))
    write_deals(deals, out_dir, rejects_path)
    return deals.summary


def run_audit(
    params: Params,
    validated_dir: Path,
    json_path: Path,
    summary_path: Path,
    split_path: Path,
) -> dict[str, Any]:
    """Split, count, group duplicates and check every column for leakage; write the
    report, its Markdown summary and the split, then raise LeakageError when a
    column looks like leakage and is not allowed."""
    deals = read_deals(validated_dir)
    audit = audit_deals(deals, params.source, params.audit, params.split, params.seed)
    write_json(audit.report, json_path)
    with atomic_path(summary_path) as partial:
        partial.write_text(summary_markdown(audit))
    split = pd.DataFrame(
        {
            "deal_id": deals.frame["deal_id"],
            "split": audit.split.astype("string"),
            "group": audit.groups.astype("int64"),
        }
    )
    write_parquet(split, split_path)
    check(audit)
    return audit.report


def _features_table(
    deals: Deals, split: pd.DataFrame, registry: FeatureRegistry
) -> pd.DataFrame:
    frame = deals.frame
    if (
        not frame["deal_id"]
        .reset_index(drop=True)
        .equals(split["deal_id"].astype(frame["deal_id"].dtype).reset_index(drop=True))
    ):
        raise ContractError(
            "the split does not match the validated deals; run `dvc repro` again"
        )
    built = build_features(
        registry, frame, frame["deal_id"], frame["created_at"], deals.activities
    )
    meta = frame[["order", "outcome", "won", "amount"]].assign(
        split=split["split"].to_numpy(), group=split["group"].to_numpy()
    )
    return pd.concat([built, meta], axis=1)[[*FEATURE_META, *registry.names]]


def run_featurize(
    params: Params,
    validated_dir: Path,
    audit_path: Path,
    split_path: Path,
    out_path: Path,
    registry_path: Path,
) -> dict[str, Any]:
    """Plan the features of the columns the audit kept and build them for every
    valid deal, point in time; write the features table and its registry."""
    deals = read_deals(validated_dir)
    report = _read_json(audit_path, "run `dvc repro` (the audit stage) first")
    split = pd.read_parquet(split_path)
    kept = list(report["features"])
    train_ids = deals.frame.loc[
        split["split"].eq("train").fillna(False).to_numpy(bool), "deal_id"
    ]
    registry = plan_features(
        kept,
        {c: deals.kinds[c].kind for c in kept},
        params.source,
        params.featurize,
        deals.activities,
        train_ids,
        has_created=bool(deals.frame["created_at"].notna().any()),
    )
    features = _features_table(deals, split, registry)
    write_parquet(features, out_path)
    write_json(registry.as_dict(), registry_path)
    return {
        "deals": len(features),
        "features": len(registry.specs),
        "notes": list(registry.notes),
    }


def read_registry(path: Path) -> FeatureRegistry:
    """The feature registry `lead-ml featurize` wrote."""
    return FeatureRegistry.from_dict(
        _read_json(path, "run `dvc repro` (the featurize stage) first")
    )


def run_train(
    params: Params, features_path: Path, registry_path: Path, model_dir: Path
) -> dict[str, Any]:
    """Train on the audit's split, save the model, and log the run to MLflow."""
    features = pd.read_parquet(features_path)
    registry = read_registry(registry_path)
    split = split_frames(features)
    model = train_model(split, registry, params.train, params.bands, params.seed)
    save_model(model, model_dir)
    tags = {
        "data_version": tracking.file_md5(features_path),
        "git_commit": tracking.git_commit(),
        "source": params.source.name,
    }
    sizes = {"n_train": len(split.train), "n_valid": len(split.valid)}
    with tracking.training_run(
        params.tracking.experiment, params.model_dump(mode="json"), tags
    ) as run:
        tracking.log_metrics({**sizes, "best_iteration": model.info.best_iteration})
        example = model_matrix(
            split.valid.head(5), model.info.categories, registry.names
        )
        tracking.log_booster(model.booster, example)
        run_id = run.info.run_id
    write_json({"run_id": run_id, **tags}, model_dir / RUN_FILE)
    return {**sizes, "best_iteration": model.info.best_iteration, "run_id": run_id}


def _score_frame(
    deals: pd.DataFrame, probability: np.ndarray, bant: pd.DataFrame
) -> pd.DataFrame:
    ids = deals["deal_id"].to_numpy()
    return pd.DataFrame(
        {
            "deal_id": ids,
            "won": deals["won"].to_numpy(int),
            "probability": probability,
            "bant_points": bant.loc[ids, "bant_points"].to_numpy(float),
            "bant_qualified": bant.loc[ids, "bant_qualified"].to_numpy(bool),
            "amount": deals["amount"].to_numpy(float),
        }
    )


def _day(value: Any) -> str:
    return "" if pd.isna(value) else pd.Timestamp(value).date().isoformat()


def holdout_scores(
    params: Params, split: Split, model: TrainedModel, bant: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Model and BANT on the test window: the scores and their metrics."""
    scores = _score_frame(split.test, predict_proba(model, split.test), bant)
    metrics = evaluate_score_frame(scores, params.evaluate, params.seed)
    return scores, metrics | {"evaluation": "holdout"}


def cross_validated_scores(
    params: Params,
    features: pd.DataFrame,
    registry: FeatureRegistry,
    bant: pd.DataFrame,
    sufficiency: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Repeated stratified CV (folds keep duplicates together): metrics on the
    out-of-fold scores of the first repeat, and the AUC of every repeat."""
    n_splits, n_repeats = sufficiency["cv_splits"], sufficiency["cv_repeats"]
    folds = cv_folds(features, features["group"], n_splits, n_repeats, params.seed)
    repeats = cross_validated_probability(features, registry, params, folds, n_splits)
    closed = features["won"].notna().to_numpy()
    scores = _score_frame(features[closed], repeats[0][closed], bant)
    metrics = evaluate_score_frame(scores, params.evaluate, params.seed)
    won = scores["won"].to_numpy()
    aucs = [float(roc_auc_score(won, p[closed])) for p in repeats]
    return scores, metrics | {
        "evaluation": "repeated_cv",
        "cv": {
            "folds": n_splits,
            "repeats": n_repeats,
            "model_roc_auc_by_repeat": aucs,
            "model_roc_auc_mean": float(np.mean(aucs)),
            "model_roc_auc_std": float(np.std(aucs)),
        },
    }


def run_evaluate(
    params: Params,
    paths: dict[str, Path],
) -> dict[str, Any]:
    """Model vs BANT on the audit's test window, or out of fold when the audit finds
    too few deals for one: metrics.json, plot data, and the MLflow run.

    ``paths``: features, registry, model, validated, audit (inputs), metrics,
    plots (outputs).
    """
    features = pd.read_parquet(paths["features"])
    registry = read_registry(paths["registry"])
    model = load_model(paths["model"])
    report = _read_json(paths["audit"], "run `dvc repro` (the audit stage) first")
    deals = read_deals(paths["validated"])
    bant = bant_scores(params.bant, params.source, deals.frame)
    split = split_frames(features)
    if report["sufficiency"]["evaluation"] == "repeated_cv":
        scores, metrics = cross_validated_scores(
            params, features, registry, bant, report["sufficiency"]
        )
    else:
        scores, metrics = holdout_scores(params, split, model, bant)
    created = split.test["created_at"].dropna()
    metrics |= {
        "source": params.source.name,
        "n_train": len(split.train),
        "n_valid": len(split.valid),
        "n_test": len(scores),
        "test_start": _day(created.min()) if len(created) else "",
        "test_end": _day(created.max()) if len(created) else "",
        "split": report["split"]["method"],
        "split_explanation": report["split"]["explanation"],
        "features": registry.names,
        "warnings": report["warnings"],
    }
    write_json(metrics, paths["metrics"])
    write_score_plots(scores, params.evaluate, paths["plots"])
    run_id = _read_json(paths["model"] / RUN_FILE, "run `lead-ml train` first")[
        "run_id"
    ]
    with tracking.resumed_run(params.tracking.experiment, run_id):
        tracking.log_metrics(metrics)
        tracking.log_artifacts([paths["metrics"]])
        tracking.log_artifacts([paths["plots"]], artifact_path="plots")
    return metrics


def example_leads(
    params: Params, deals: Deals, columns: list[str], n: int = 5
) -> pd.DataFrame:
    """A few lead rows of the source (open deals first) as a batch job sends them."""
    frame = deals.frame
    ordered = pd.concat(
        [frame[frame["outcome"] == "open"], frame[frame["outcome"] != "open"]]
    )
    return lead_rows(ordered.head(n), params.source, columns).reset_index(drop=True)


def run_export(
    params: Params,
    paths: dict[str, Path],
) -> dict[str, Any]:
    """Export the scorer folder, log it to the training run and register a version.

    ``paths``: features, registry, model, validated (inputs), scorer, record
    (outputs).
    """
    model = load_model(paths["model"])
    registry = read_registry(paths["registry"])
    split = split_frames(pd.read_parquet(paths["features"]))
    deals = read_deals(paths["validated"])
    spec = bundle_spec(model, registry, params.source, split.train)
    columns = list(spec["contract"]["kinds"])
    example = example_leads(params, deals, columns)
    with tempfile.TemporaryDirectory() as staging:
        arguments = export_scorer(
            model, spec, example, paths["scorer"], Path(staging) / "bundle"
        )
        run_id = _read_json(paths["model"] / RUN_FILE, "run `lead-ml train` first")[
            "run_id"
        ]
        with tracking.resumed_run(params.tracking.experiment, run_id):
            registered = tracking.log_scorer(
                arguments, params.tracking.registered_model
            )
    record = {"run_id": run_id, **registered}
    write_json(record, paths["record"])
    return record


def write_score_plots(
    scores: pd.DataFrame, cfg: EvaluateConfig, plots_dir: Path
) -> list[Path]:
    """The plot data of scored deals (won, probability, bant_points) as CSVs in
    plots_dir: one per plot, and per approach where a plot compares model and BANT."""
    plots = plot_data(
        scores["won"].to_numpy(),
        scores["probability"].to_numpy(),
        scores["bant_points"].to_numpy(),
        cfg.calibration_bins,
        cfg.score_bands,
    )
    written = []
    for name, frame in plots.items():
        parts = (
            {
                f"{name}_{a}": rows.drop(columns="approach")
                for a, rows in frame.groupby("approach")
            }
            if "approach" in frame
            else {name: frame}
        )
        for stem, rows in parts.items():
            path = plots_dir / f"{stem}.csv"
            with atomic_path(path) as partial:
                rows.to_csv(partial, index=False, float_format="%.6g")
            written.append(path)
    return written
