"""The DVC stages as functions: read files, call the pure logic, write outputs.

Each ``run_*`` function is what one ``lead-ml <stage>`` command does; paths come in as
arguments (dvc.yaml holds them once) and a summary dict goes back for the CLI to print.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lead_ml import schema, tracking
from lead_ml.baseline import BantRule
from lead_ml.config import EvaluateConfig, Params
from lead_ml.evaluate import evaluate_scores, plot_data
from lead_ml.features import build_features
from lead_ml.model import (
    TrainedModel,
    load_model,
    model_matrix,
    predict_proba,
    save_model,
    time_split,
    train_model,
)
from lead_ml.scorer import export_scorer, input_columns
from lead_ml.synthetic import generate_crm, write_crm

RUN_FILE = "run.json"
TABLES = ("accounts", "deals", "activities")


def run_generate(params: Params, out_dir: Path) -> dict[str, Any]:
    """Generate the synthetic CRM into out_dir; return its truth summary."""
    crm = generate_crm(params.synthetic, seed=params.seed)
    write_crm(crm, out_dir, params.data.format)
    return {**crm.summary, "n_activities": len(crm.activities)}


def _raw_path(raw_dir: Path, table: str) -> Path:
    for suffix in (".parquet", ".csv"):
        if (raw_dir / f"{table}{suffix}").exists():
            return raw_dir / f"{table}{suffix}"
    return raw_dir / f"{table}.parquet"  # read_table names the missing file


def run_validate(
    raw_dir: Path, out_dir: Path, rejects_path: Path
) -> dict[str, dict[str, int]]:
    """Apply the data contract; valid rows to out_dir, rejected rows to rejects_path."""
    contracts = {
        "accounts": schema.ACCOUNTS,
        "deals": schema.DEALS,
        "activities": schema.ACTIVITIES,
    }
    paths = {t: _raw_path(raw_dir, t) for t in TABLES}
    frames = {t: schema.read_table(paths[t], contracts[t]) for t in TABLES}
    results = schema.validate_crm(
        frames["deals"],
        frames["accounts"],
        frames["activities"],
        sources={t: str(p) for t, p in paths.items()},
    )
    return schema.write_validated(results, out_dir, rejects_path)


def run_featurize(
    params: Params, validated_dir: Path, out_path: Path
) -> dict[str, Any]:
    """Build point-in-time features for every valid deal."""
    tables = {t: pd.read_parquet(validated_dir / f"{t}.parquet") for t in TABLES}
    features = build_features(
        tables["deals"], tables["accounts"], tables["activities"], params.featurize
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    features.to_parquet(out_path, index=False)
    return {"deals": len(features), "features": features.shape[1]}


def run_train(params: Params, features_path: Path, model_dir: Path) -> dict[str, Any]:
    """Train on the time split, save the model, and log the run to MLflow."""
    features = pd.read_parquet(features_path)
    split = time_split(features, params.split)
    model = train_model(split, params.train, params.bands, params.seed)
    save_model(model, model_dir)
    tags = {
        "data_version": tracking.file_md5(features_path),
        "git_commit": tracking.git_commit(),
    }
    sizes = {"n_train": len(split.train), "n_valid": len(split.valid)}
    with tracking.training_run(
        params.tracking.experiment, params.model_dump(mode="json"), tags
    ) as run:
        tracking.log_metrics({**sizes, "best_iteration": model.info.best_iteration})
        example = model_matrix(split.valid.head(5), model.info.categories)
        tracking.log_booster(model.booster, example)
        run_id = run.info.run_id
    (model_dir / RUN_FILE).write_text(
        json.dumps({"run_id": run_id, **tags}, indent=2) + "\n"
    )
    return {**sizes, "best_iteration": model.info.best_iteration, "run_id": run_id}


def evaluate_score_frame(params: Params, scores: pd.DataFrame) -> dict[str, Any]:
    """The model-vs-BANT metrics of a frame of won, probability, bant_points,
    bant_qualified and amount (a missing amount counts as 0 pipeline value)."""
    return evaluate_scores(
        scores["won"].to_numpy(),
        scores["probability"].to_numpy(),
        scores["bant_points"].to_numpy(),
        scores["bant_qualified"].to_numpy(),
        params.evaluate,
        seed=params.seed,
        amount=np.nan_to_num(scores["amount"].to_numpy(float)),
    )


def score_test_window(
    params: Params, features: pd.DataFrame, model: TrainedModel
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Score model and BANT rule on the test window; return scores and metrics."""
    split = time_split(features, params.split)
    test = split.test
    rule = BantRule.from_config(params.bant).fit(test)
    scores = pd.DataFrame(
        {
            "deal_id": test["deal_id"].to_numpy(),
            "won": test["won"].to_numpy(int),
            "probability": predict_proba(model, test),
            "bant_points": rule.decision_function(test),
            "bant_qualified": rule.predict(test).astype(bool),
            "amount": test["amount"].to_numpy(float),
        }
    )
    metrics = evaluate_score_frame(params, scores)
    metrics |= {
        "n_train": len(split.train),
        "n_valid": len(split.valid),
        "n_test": len(test),
        "test_start": pd.Timestamp(test["created_at"].iloc[0]).date().isoformat(),
        "test_end": pd.Timestamp(test["created_at"].iloc[-1]).date().isoformat(),
    }
    return scores, metrics


def run_evaluate(
    params: Params,
    features_path: Path,
    model_dir: Path,
    metrics_path: Path,
    plots_dir: Path,
) -> dict[str, Any]:
    """Model vs BANT on the test window: metrics.json, plot data, and the MLflow run."""
    model = load_model(model_dir)
    scores, metrics = score_test_window(params, pd.read_parquet(features_path), model)
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    write_score_plots(scores, params.evaluate, plots_dir)
    run_id = json.loads((model_dir / RUN_FILE).read_text())["run_id"]
    with tracking.resumed_run(params.tracking.experiment, run_id):
        tracking.log_metrics(metrics)
        tracking.log_artifacts([metrics_path])
        tracking.log_artifacts([plots_dir], artifact_path="plots")
    return metrics


def open_leads(validated_dir: Path) -> pd.DataFrame:
    """The open deals of a validated CRM as lead rows (account columns joined in)."""
    deals = pd.read_parquet(validated_dir / "deals.parquet")
    accounts = pd.read_parquet(validated_dir / "accounts.parquet")
    leads = deals[deals["outcome"] == "open"].merge(
        accounts, on="account_id", how="left"
    )
    return leads[list(input_columns())].reset_index(drop=True)


def run_export(
    params: Params,
    features_path: Path,
    model_dir: Path,
    validated_dir: Path,
    out_dir: Path,
    record_path: Path,
) -> dict[str, Any]:
    """Export the scorer folder, log it to the training run and register a version."""
    model = load_model(model_dir)
    split = time_split(pd.read_parquet(features_path), params.split)
    example = open_leads(validated_dir).head(5)
    with tempfile.TemporaryDirectory() as staging:
        arguments = export_scorer(
            model,
            split.train,
            params.featurize,
            example,
            out_dir,
            Path(staging) / "bundle",
        )
        run_id = json.loads((model_dir / RUN_FILE).read_text())["run_id"]
        with tracking.resumed_run(params.tracking.experiment, run_id):
            registered = tracking.log_scorer(
                arguments, params.tracking.registered_model
            )
    record = {"run_id": run_id, **registered}
    record_path.parent.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def write_score_plots(
    scores: pd.DataFrame, cfg: EvaluateConfig, plots_dir: Path
) -> list[Path]:
    """The plot data of a scored test window (won, probability, bant_points) as
    CSVs in plots_dir (see :func:`write_plot_data`)."""
    plots = plot_data(
        scores["won"].to_numpy(),
        scores["probability"].to_numpy(),
        scores["bant_points"].to_numpy(),
        cfg.calibration_bins,
        cfg.score_bands,
    )
    return write_plot_data(plots, plots_dir)


def write_plot_data(plots: dict[str, pd.DataFrame], plots_dir: Path) -> list[Path]:
    """One CSV per plot, and per approach where a plot compares model and BANT."""
    plots_dir.mkdir(parents=True, exist_ok=True)
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
            rows.to_csv(path, index=False, float_format="%.6g")
            written.append(path)
    return written


def comparison_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The model-vs-BANT table `make run` prints: (measure, model, BANT)."""
    model, bant, capacity = metrics["model"], metrics["bant"], metrics["capacity"]
    low, high = metrics["delta_roc_auc_ci95"]
    return [
        ("ROC AUC", f"{model['roc_auc']:.3f}", f"{bant['roc_auc']:.3f}"),
        ("PR AUC", f"{model['pr_auc']:.3f}", f"{bant['pr_auc']:.3f}"),
        (
            "AUC gain (95% CI)",
            f"{metrics['delta_roc_auc']:+.3f} [{low:+.3f}, {high:+.3f}]",
            "",
        ),
        (
            f"wins in top {capacity['k']} leads",
            f"{capacity['model_wins']} ({capacity['model_win_rate']:.1%})",
            f"{capacity['bant_wins']} ({capacity['bant_win_rate']:.1%})",
        ),
        ("calibration error (ECE)", f"{model['ece']:.3f}", "-"),
    ]
