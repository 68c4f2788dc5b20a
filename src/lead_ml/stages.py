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
import yaml

from lead_ml import tracking
from lead_ml.audit import check, evaluation_plan, split_method, summary_markdown
from lead_ml.audit import run_audit as audit_deals
from lead_ml.baseline import (
    bant_scores,
    baseline_of,
    check_rule,
    compared_with_base_rate,
)
from lead_ml.config import EvaluateConfig, Params, parse_params
from lead_ml.evaluate import (
    auc_interval,
    evaluate_folds,
    evaluate_score_frame,
    evaluation_warnings,
    plot_data,
    verdict,
)
from lead_ml.features import FeatureRegistry, build_features, plan_features
from lead_ml.model import (
    META_FILE,
    MODEL_FILE,
    FoldScores,
    Split,
    TrainedModel,
    closed_in_time,
    cross_validated_model,
    judged,
    load_model,
    model_matrix,
    predict_proba,
    save_model,
    split_frames,
    train_model,
)
from lead_ml.scorer import bundle_spec, export_scorer, verify_folder
from lead_ml.sources import (
    TABLE_FILE,
    Deals,
    copy_table,
    lead_rows,
    load_deals,
    read_deals,
    read_tables,
    reading,
    write_deals,
)
from lead_ml.synthetic import Progress, generate_crm, write_crm
from lead_ml.tables import atomic_path, write_json, write_parquet
from lead_ml.vocab import FEATURE_META, ConfigError, ContractError

#: The training record in the model folder: the model's content id, data version and
#: source. No MLflow run id: evaluate and export find the run by the content id.
RUN_FILE = "run.json"
REGISTRY_FILE = "registry.json"
#: Prefix of a trained model folder's content id (booster and its info).
MODEL_PREFIX = "lead-ml-model"


def _read_json(path: Path, hint: str) -> Any:
    if not path.exists():
        raise ContractError(f"{path}: not found; {hint}")
    return json.loads(path.read_text())


def run_generate(
    params: Params, out_dir: Path, progress: Progress | None = None
) -> dict[str, Any]:
    """Generate the synthetic CRM into out_dir; return its truth summary.
    ``progress`` hears each step begin (lead_ml.synthetic.STEPS)."""
    crm = generate_crm(params.synthetic, seed=params.seed, progress=progress)
    write_crm(crm, out_dir, params.synthetic.format, progress)
    return {**crm.summary, "n_activities": len(crm.activities)}


def run_read(params: Params, table: str, out: Path) -> dict[str, Any]:
    """Copy one table of the source (``deals``, ``accounts``, ``activities`` or a
    further table) to ``out`` as Parquet; ``read_with`` says how the file was read
    (the CSV dialect detected or set)."""
    tables = params.source.tables.present()
    if table not in tables:
        raise ConfigError(
            f"--table {table!r}: the source has no such table; it has "
            f"{', '.join(tables)} (source.tables in params.yaml)"
        )
    rows = copy_table(tables[table], table, out)
    return {
        "table": table,
        "path": str(tables[table].path),
        "rows": rows,
        "read_with": reading(tables[table], table),
    }


def run_validate(
    params: Params, tables_dir: Path, out_dir: Path, rejects_path: Path
) -> dict[str, Any]:
    """Label the source's deals; valid rows to out_dir, rejected rows (one reason
    each) to rejects_path. Returns the counts, which reconcile per table."""
    tables = read_tables(params.source, tables_dir)
    deals = load_deals(params.source, params.bant, tables)
    if params.bant is not None:
        check_rule(params.bant, lead_rows(deals.frame, params.source))
    write_deals(deals, out_dir, rejects_path)
    return deals.summary


def run_audit(
    params: Params,
    validated_dir: Path,
    json_path: Path,
    summary_path: Path,
    split_path: Path,
    tables_dir: Path | None = None,
) -> dict[str, Any]:
    """Split, count, group duplicates and check every column for leakage; write the
    report, its Markdown summary and the split, then raise LeakageError when a
    column looks like leakage and is not allowed. ``tables_dir``: the tables
    `lead-ml read` copied; copies of a deal are judged on every column of its
    deals table (without it, on the columns lead-ml reads)."""
    deals = read_deals(validated_dir)
    export = None
    if tables_dir is not None:
        copied = tables_dir / TABLE_FILE.format(name="deals")
        if not copied.exists():
            raise ContractError(
                f"{copied}: not found; run `lead-ml read --table deals --out "
                f"{copied}` first (copies are judged on every column it holds)"
            )
        export = pd.read_parquet(copied)
    audit = audit_deals(
        deals, params.source, params.audit, params.split, params.seed, export
    )
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
        train_created=deals.frame.loc[train_ids.index, "created_at"],
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


#: The out-of-fold scores in the model folder of a model refit after folds: what
#: the evaluation judges (deal_id, fold, margin, probability).
OUT_OF_FOLD_FILE = "out_of_fold.parquet"


def training_plan(params: Params, features: pd.DataFrame) -> dict[str, Any]:
    """The evaluation plan (:func:`lead_ml.audit.evaluation_plan`) of a features
    table: its split's won and lost counts, its split method and ``audit``."""
    counts = {}
    for name in ("train", "valid", "test"):
        won = features.loc[features["split"].eq(name).fillna(False).to_numpy(bool)]
        counts[name] = {
            "won": int((won["won"] == 1).sum()),
            "lost": int((won["won"] == 0).sum()),
        }
    return evaluation_plan(counts, split_method(features)[0], params.audit)


def run_train(
    params: Params, features_path: Path, registry_path: Path, model_dir: Path
) -> dict[str, Any]:
    """Train on the audit's split, save the model, and log the run to MLflow. When
    the plan (:func:`training_plan`) calls for folds, cross-validate, write the
    out-of-fold scores beside the model and refit it on every labelled deal."""
    features = pd.read_parquet(features_path)
    registry = read_registry(registry_path)
    plan = training_plan(params, features)
    if plan["evaluation"] == "holdout":
        split = split_frames(features)
        model = train_model(split, registry, params.train, params.bands, params.seed)
        save_model(model, model_dir)
        (model_dir / OUT_OF_FOLD_FILE).unlink(missing_ok=True)
    else:
        model, scores = cross_validated_model(features, registry, params, plan)
        closed = features.iloc[closed_in_time(features)]
        split = Split(closed, closed.iloc[:0], closed.iloc[:0])
        save_model(model, model_dir)
        write_parquet(out_of_fold_frame(features, scores), model_dir / OUT_OF_FOLD_FILE)
    record = {
        "model": model_id(model_dir),
        "data_version": tracking.file_md5(features_path),
        "source": params.source.name,
    }
    run_id = log_training(params, features_path, record, (model, registry, split))
    write_json(record, model_dir / RUN_FILE)
    sizes = {"n_train": len(split.train), "n_valid": len(split.valid)}
    return {
        **sizes,
        "evaluation": plan["evaluation"],
        "best_iteration": model.info.best_iteration,
        "run_id": run_id,
    }


def out_of_fold_frame(features: pd.DataFrame, scores: FoldScores) -> pd.DataFrame:
    """One row per deal and fold that tested it: deal_id, fold, margin, probability."""
    ids = features["deal_id"].to_numpy()
    return pd.DataFrame(
        {
            "deal_id": np.concatenate([ids[t] for t in scores.tested]),
            "fold": np.concatenate(
                [np.full(len(t), i) for i, t in enumerate(scores.tested)]
            ).astype("int64"),
            "margin": np.concatenate(scores.margin),
            "probability": np.concatenate(scores.probability),
        }
    )


def log_training(
    params: Params,
    features_path: Path,
    record: dict[str, str],
    trained: tuple[TrainedModel, FeatureRegistry, Split],
    tags: dict[str, str] | None = None,
) -> str:
    """Start the MLflow run of a trained model: params, name, the record's tags and
    ``tags``, window sizes, the train and valid datasets and the booster; its id.
    ``record``: the model folder's run.json (content id, data version, source);
    ``trained``: the model, its feature registry and the split of features_path."""
    model, registry, split = trained
    # The commit is a tag of the run only: the record is a DVC output, the same
    # for the same params and data on every commit.
    run_tags = {
        tracking.MODEL_TAG: record["model"],
        "data_version": record["data_version"],
        "git_commit": tracking.git_commit(),
        "source": params.source.name,
    }
    sizes = {"n_train": len(split.train), "n_valid": len(split.valid)}
    with tracking.training_run(
        params.tracking.experiment,
        params.model_dump(mode="json"),
        run_tags | (tags or {}),
        run_name(params),
    ) as run:
        tracking.log_metrics({**sizes, "best_iteration": model.info.best_iteration})
        parts = {"train": split.train, "valid": split.valid}
        log_datasets(params, features_path, parts)
        # A model refit on every deal after folds has no validation window.
        shown = split.valid if len(split.valid) else split.train
        example = model_matrix(shown.head(5), model.info.categories, registry.names)
        tracking.log_booster(model.booster, example)
        return str(run.info.run_id)


#: The params file a run's name is diffed against, as the last commit holds it.
PARAMS_FILE = Path("params.yaml")
#: MLflow's context for each part of the split logged as a dataset.
DATASET_CONTEXTS = {"train": "training", "valid": "validation"}


def run_name(params: Params, params_file: Path = PARAMS_FILE) -> str:
    """The MLflow run name (:func:`lead_ml.tracking.run_name`): the DVC experiment's
    name, else the source's and the params that differ from params_file as the last
    commit holds it (none outside git, or when that file does not parse)."""
    experiment = tracking.dvc_experiment()
    text = None if experiment else tracking.committed_text(params_file)
    baseline = None
    if text is not None:
        try:
            baseline = parse_params(yaml.safe_load(text)).model_dump(mode="json")
        except (ConfigError, yaml.YAMLError):
            pass  # no usable baseline: the name is the source's alone
    changed = tracking.changed_params(params.model_dump(mode="json"), baseline)
    return tracking.run_name(params.source.name, changed, experiment)


def log_datasets(
    params: Params, features_path: Path, parts: dict[str, pd.DataFrame]
) -> None:
    """Log parts of the features table (train, valid, test...) as dataset inputs of
    the active run, named by the source and the part, from the DVC-tracked file."""
    for part, frame in parts.items():
        tracking.log_dataset(
            frame,
            f"{params.source.name} {part}",
            features_path,
            DATASET_CONTEXTS.get(part, "test"),
        )


def model_id(model_dir: Path) -> str:
    """Content id of a trained model folder: ``lead-ml-model:`` and a sha256 of its
    booster and info (the same training gives the same id in every workspace)."""
    files = [model_dir / name for name in (MODEL_FILE, META_FILE)]
    return tracking.content_id(MODEL_PREFIX, files)


def training_run_id(params: Params, model_dir: Path) -> str:
    """The MLflow run that trained the model in model_dir, found by its content id
    in the store in force (ContractError naming the store when none has it)."""
    run_id = find_training_run(params, model_dir)
    if run_id is None:
        # find_run's message names the store and the ways out.
        experiment, found = params.tracking.experiment, model_id(model_dir)
        return tracking.find_run(experiment, tracking.MODEL_TAG, found)
    return run_id


def find_training_run(params: Params, model_dir: Path) -> str | None:
    """The MLflow run that trained the model in model_dir (see
    :func:`training_run_id`), None when the store in force has none."""
    record = _read_json(model_dir / RUN_FILE, "run `lead-ml train` first")
    found = model_id(model_dir)
    if "model" not in record and isinstance(record.get("run_id"), str):
        # Written by an older lead-ml: that run, tagged now so it is found by content.
        tracking.tag_run(record["run_id"], {tracking.MODEL_TAG: found})
        return str(record["run_id"])
    if record.get("model") != found:
        raise ContractError(
            f"{model_dir / RUN_FILE} names model {record.get('model')}, but the "
            f"folder holds {found}: it was written by another lead-ml version or "
            "edited; run `dvc repro --force train`"
        )
    return tracking.search_run(params.tracking.experiment, tracking.MODEL_TAG, found)


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
    """Model and BANT on the test window: the scores and their metrics, the model's
    ROC AUC with its bootstrap CI, and the warnings of the window."""
    scores = _score_frame(split.test, predict_proba(judged(model), split.test), bant)
    metrics = evaluate_score_frame(scores, params.evaluate, params.seed)
    metrics["model"]["roc_auc_ci95"] = auc_interval(
        scores["won"], scores["probability"], params.evaluate.n_bootstrap, params.seed
    )
    trained = pd.concat([split.train["won"], split.valid["won"]]).to_numpy(int)
    found = evaluation_warnings(metrics, trained, scores, params.evaluate, params.seed)
    return scores, metrics | {"evaluation": "holdout", "evaluation_warnings": found}


def cross_validated_scores(
    params: Params,
    features: pd.DataFrame,
    model_dir: Path,
    bant: pd.DataFrame,
    evaluation: str,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The out-of-fold scores train wrote (:data:`OUT_OF_FOLD_FILE`): metrics with
    the folds' mean AUC (:func:`lead_ml.evaluate.evaluate_folds`), the warnings of
    the latest fold against its training deals, and each deal's mean score."""
    path = model_dir / OUT_OF_FOLD_FILE
    if not path.exists():
        raise ContractError(f"{path}: not found; run `dvc repro --force train`")
    oof = pd.read_parquet(path)
    rows = features.set_index("deal_id").loc[oof["deal_id"]].reset_index()
    scores = _score_frame(rows, oof["probability"].to_numpy(float), bant).assign(
        fold=oof["fold"].to_numpy()
    )
    metrics = evaluate_folds(scores, params.evaluate, params.seed)
    pooled = scores.groupby("deal_id", sort=False, as_index=False).agg(
        won=("won", "first"),
        probability=("probability", "mean"),
        bant_points=("bant_points", "first"),
        bant_qualified=("bant_qualified", "first"),
        amount=("amount", "first"),
    )
    latest = scores[scores["fold"] == scores["fold"].max()]
    before = features[
        features["won"].notna().to_numpy()
        & ~features["deal_id"].isin(latest["deal_id"]).to_numpy()
    ]
    if evaluation == "rolling_origin":
        first = features["deal_id"].isin(latest["deal_id"]).to_numpy()
        order = closed_in_time(features)
        start = int(np.flatnonzero(first[order])[0])
        before = features.iloc[order[:start]]
    found = evaluation_warnings(
        metrics,
        before["won"].to_numpy(int),
        pooled,
        params.evaluate,
        params.seed,
    )
    return pooled, metrics | {"evaluation": evaluation, "evaluation_warnings": found}


def run_evaluate(
    params: Params,
    paths: dict[str, Path],
) -> dict[str, Any]:
    """Model vs BANT on the audit's test window, or out of fold when the plan
    (:func:`training_plan`) calls for folds: metrics.json, plot data, and the
    MLflow run. One ROC AUC: the window's, or the folds' mean with its CI.

    ``paths``: features, registry, model, validated, audit (inputs), metrics,
    plots (outputs).
    """
    features = pd.read_parquet(paths["features"])
    registry = read_registry(paths["registry"])
    model = load_model(paths["model"])
    report = _read_json(paths["audit"], "run `dvc repro` (the audit stage) first")
    deals = read_deals(paths["validated"])
    bant = bant_scores(params.bant, params.source, deals.frame)
    plan = training_plan(params, features)
    if plan["evaluation"] != model.info.evaluation:
        raise ContractError(
            f"{paths['model']} was trained for a {model.info.evaluation} evaluation, "
            f"but the features call for {plan['evaluation']}; run `dvc repro` again"
        )
    if plan["evaluation"] == "holdout":
        split = split_frames(features)
        scores, metrics = holdout_scores(params, split, model, bant)
        sizes = {"n_train": len(split.train), "n_valid": len(split.valid)}
        tested = split.test
    else:
        scores, metrics = cross_validated_scores(
            params, features, paths["model"], bant, plan["evaluation"]
        )
        sizes = {"n_train": int(features["won"].notna().sum()), "n_valid": 0}
        tested = features[features["deal_id"].isin(scores["deal_id"]).to_numpy()]
    if params.bant is None:  # compared with the base rate: say so (lead_ml.baseline)
        metrics = compared_with_base_rate(metrics)
    created = tested["created_at"].dropna()
    found = metrics.pop("evaluation_warnings")
    if params.bant is None:  # a list in no order: no capacity claim to contradict
        found = [w for w in found if not w.startswith("capacity:")]
    metrics |= {
        "source": params.source.name,
        **sizes,
        "n_test": len(scores),
        "test_start": _day(created.min()) if len(created) else "",
        "test_end": _day(created.max()) if len(created) else "",
        "split": report["split"]["method"],
        "split_explanation": report["split"]["explanation"],
        "plan": plan,
        "calibrate_on": params.train.calibrate_on,
        "baseline": metrics.get("baseline") or baseline_of(params.bant),
        "verdict": verdict(metrics),
        "features": registry.names,
        "warnings": [*report["warnings"], *found],
    }
    write_json(metrics, paths["metrics"])
    write_score_plots(scores, params.evaluate, paths["plots"])
    run_id = training_run_id(params, paths["model"])
    split_for_log = Split(tested, tested.iloc[:0], tested)
    logged = evaluated_deals(features, split_for_log, metrics["evaluation"])
    log_evaluation(params, paths, run_id, metrics, logged)
    return metrics


def evaluated_deals(
    features: pd.DataFrame, split: Split, evaluation: str
) -> dict[str, pd.DataFrame]:
    """The deals an evaluation scored, by dataset name: the test window, or every
    closed deal when they were scored out of fold (``evaluation`` not "holdout")."""
    if evaluation != "holdout":
        return {"closed, out of fold": features[features["won"].notna()]}
    return {"test": split.test}


def log_evaluation(
    params: Params,
    paths: dict[str, Path],
    run_id: str,
    metrics: dict[str, Any],
    tested: dict[str, pd.DataFrame],
) -> None:
    """Log an evaluation to its training run: the metrics, the deals it scored
    (:func:`evaluated_deals`) as the test dataset, metrics.json, the plot data and
    their figures; then describe the run's registered versions again.

    ``paths``: features, metrics, plots.
    """
    with tracking.resumed_run(params.tracking.experiment, run_id):
        tracking.log_metrics(metrics)
        log_datasets(params, paths["features"], tested)
        tracking.log_artifacts([paths["metrics"]])
        tracking.log_artifacts([paths["plots"]], artifact_path="plots")
        rule = "BANT" if params.bant is not None else "base rate (no rule given)"
        tracking.log_figures(paths["plots"], baseline=rule)
    baseline = metrics.get("baseline")
    if isinstance(baseline, dict):  # what the model was compared with, and why
        tracking.tag_run(
            run_id, {"baseline": baseline["label"], "baseline_note": baseline["note"]}
        )
    # When export ran first (DVC may order the two either way), its version's
    # description gains the test metrics now.
    tracking.describe_versions(
        run_id, params.tracking.registered_model, params.tracking.champion_alias
    )


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
    with tempfile.TemporaryDirectory() as staging:
        arguments = build_scorer(
            params, paths, paths["scorer"], Path(staging) / "bundle"
        )
        run_id = training_run_id(params, paths["model"])
        identity = {
            tracking.MODEL_TAG: model_id(paths["model"]),
            tracking.SCORER_TAG: verify_folder(paths["scorer"]),
        }
        registered = register_scorer(params, run_id, arguments, identity)
    # The record is a DVC output: only what the same params and data reproduce. The
    # run id and registry version differ per store; compare finds them by content.
    record = {
        "registered_model": registered["registered_model"],
        "model": identity[tracking.MODEL_TAG],
        "model_version": identity[tracking.SCORER_TAG],
    }
    write_json(record, paths["record"])
    return {**record, "run_id": run_id, **registered}


def training_deals(features: pd.DataFrame, model: TrainedModel) -> pd.DataFrame:
    """The deals the model was fit on: the train window, or every closed deal when
    it was refit after folds (its reference for drift bins and answers)."""
    if model.info.evaluation == "holdout":
        return split_frames(features).train
    return features.iloc[closed_in_time(features)]


def build_scorer(
    params: Params, paths: dict[str, Path], out_dir: Path, staging: Path
) -> dict[str, Any]:
    """Export the scorer of the trained model to out_dir (its bundle staged in
    staging); the arguments that log the same model to MLflow.

    ``paths``: features, registry, model, validated.
    """
    model = load_model(paths["model"])
    registry = read_registry(paths["registry"])
    deals = read_deals(paths["validated"])
    spec = bundle_spec(
        model,
        registry,
        params.source,
        training_deals(pd.read_parquet(paths["features"]), model),
        params.explain.min_question_gain,
    )
    columns = list(spec["contract"]["kinds"])
    example = example_leads(params, deals, columns)
    return export_scorer(model, spec, example, out_dir, staging)


def register_scorer(
    params: Params,
    run_id: str,
    arguments: dict[str, Any],
    identity: dict[str, str],
) -> dict[str, Any]:
    """Log the scorer (:func:`build_scorer`'s arguments) to its training run,
    register it as a new version, set the identity tags (model content id, scorer
    content version) on both and describe them; the registered model, version and
    model URI."""
    with tracking.resumed_run(params.tracking.experiment, run_id):
        registered = tracking.log_scorer(arguments, params.tracking.registered_model)
    name, version = registered["registered_model"], registered["registered_version"]
    tracking.tag_identity(run_id, name, version, identity)
    tracking.describe_versions(run_id, name, params.tracking.champion_alias)
    return registered


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


#: Tags of a training run that `lead-ml track` started for a model trained
#: elsewhere (another store, or one since deleted): the command that logged it.
TRACK_TAGS = {"mlflow.source.name": "lead-ml track"}


def run_track(params: Params, paths: dict[str, Path]) -> dict[str, Any]:
    """Complete the MLflow record of the current outputs, from the outputs alone.

    Finds the run that trained models/model (by content id), or starts one as train
    does (no retraining); logs the evaluation (metrics.json, plots, figures, the
    test dataset) when the run lacks any of it, the report page when it lacks it,
    and logs and registers the scorer as export does when no registered version
    carries the scorer's content version. A complete record is left as it is.
    Nothing here writes an output: a scorer is rebuilt only in a temporary folder,
    and registered only when it is the same version as the one in ``scorer``.

    ``paths``: features, registry, model, validated, metrics, plots, scorer,
    record (export.json), report (optional).
    Returns the run id, registered model and version, and what was ``logged``.
    """
    metrics = _read_json(paths["metrics"], "run `dvc repro` first")
    identity = exported_identity(paths)
    features = pd.read_parquet(paths["features"])
    try:
        split = split_frames(features)
    except ValueError as error:  # a window of one outcome: say which, no traceback
        raise ConfigError(f"{paths['features']}: {error}") from None
    logged: list[str] = []
    run_id = find_training_run(params, paths["model"])
    if run_id is None:
        record = _read_json(paths["model"] / RUN_FILE, "run `lead-ml train` first")
        model = load_model(paths["model"])
        trained = (model, read_registry(paths["registry"]), split)
        run_id = log_training(params, paths["features"], record, trained, TRACK_TAGS)
        logged.append("training run")
    tested = evaluated_deals(features, split, metrics["evaluation"])
    contexts = {DATASET_CONTEXTS.get(part, "test") for part in tested}
    files = evaluation_files(paths["metrics"], paths["plots"])
    if tracking.missing_from_run(run_id, metrics, files, contexts):
        log_evaluation(params, paths, run_id, metrics, tested)
        logged.append("evaluation")
    report = paths.get("report")
    if report is not None and report.exists():
        if report.name not in tracking.logged_files(run_id):
            with tracking.resumed_run(params.tracking.experiment, run_id):
                tracking.log_artifacts([report])
            logged.append("report")
    name = params.tracking.registered_model
    version = tracking.find_version(name, identity[tracking.SCORER_TAG])
    if version is None:
        version = register_exported(params, paths, run_id, identity)
        logged.append(f"{name} version {version}")
    return {
        "run_id": run_id,
        "registered_model": name,
        "registered_version": version,
        "logged": logged,
    }


def exported_identity(paths: dict[str, Path]) -> dict[str, str]:
    """The content ids of the trained model and the exported scorer, checked
    against the export record (ContractError when the outputs disagree)."""
    export = _read_json(paths["record"], "run `dvc repro` (the export stage) first")
    identity = {
        tracking.MODEL_TAG: model_id(paths["model"]),
        tracking.SCORER_TAG: verify_folder(paths["scorer"]),
    }
    recorded = {
        tracking.MODEL_TAG: export.get("model"),
        tracking.SCORER_TAG: export.get("model_version"),
    }
    if recorded != identity:
        raise ContractError(
            f"{paths['record']} names model {recorded[tracking.MODEL_TAG]} and "
            f"scorer {recorded[tracking.SCORER_TAG]}, but {paths['model']} and "
            f"{paths['scorer']} hold {identity[tracking.MODEL_TAG]} and "
            f"{identity[tracking.SCORER_TAG]}: the outputs are out of date; run "
            "`dvc repro` first"
        )
    return identity


def evaluation_files(metrics_path: Path, plots_dir: Path) -> set[str]:
    """The artifact files :func:`log_evaluation` logs from these outputs."""
    plots = {f"plots/{p.name}" for p in plots_dir.iterdir() if p.is_file()}
    return {metrics_path.name, *plots, *tracking.figure_files(plots_dir)}


def register_exported(
    params: Params, paths: dict[str, Path], run_id: str, identity: dict[str, str]
) -> int:
    """Register the exported scorer on its training run as export does: rebuilt
    from the model in a temporary folder (the output stays untouched), and only
    when it is the same version; the registered version."""
    with tempfile.TemporaryDirectory() as staging:
        rebuilt = Path(staging) / "scorer"
        arguments = build_scorer(params, paths, rebuilt, Path(staging) / "bundle")
        if verify_folder(rebuilt) != identity[tracking.SCORER_TAG]:
            raise ContractError(
                f"{paths['scorer']} is not what `lead-ml export` builds from "
                f"{paths['model']} with this lead-ml; run `dvc repro --force export`"
            )
        registered = register_scorer(params, run_id, arguments, identity)
    return int(registered["registered_version"])
