"""Your own CRM export through the whole pipeline: audit, features, train, evaluate.

``lead-ml pipeline --params my_params.yaml`` runs, for a ``crm:`` section (see
:mod:`lead_ml.crm`): load and label the export, the audit (which stops on columns
that look like leakage unless allowed), point-in-time features, LightGBM with early
stopping and Platt calibration on the audit's split, the user's BANT rule on the same
test deals, and the export of a scorer that takes the user's own columns.

Features keep the user's columns, one feature each, named by a slug of the column
(LightGBM refuses some characters in names); the registry records the column each
comes from, its kind and its dimension (``other`` when unmapped):

- numbers stay numbers; yes/no booleans become 0/1;
- dates become days before (negative) or after the deal's created date, or with no
  created date, days since 1970 (an order, which is all a tree needs);
- categories keep their text; levels unseen in training are scored as missing;
- an activity log adds counts per type (the most common 20), a total, and the days
  since the last touch, counted up to the snapshot (created + snapshot_days); without
  created dates activities cannot be placed in time and are not used.

When the audit finds too few won or lost deals for one test window, the evaluation
is repeated stratified cross-validation (folds from the audit, duplicates kept
together): metrics are on the out-of-fold scores, the CI of the AUC gain comes from
a paired bootstrap of the first repeat, and the spread over repeats is reported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lead_ml.audit import AuditReport, check, cv_folds, run_audit, write_report
from lead_ml.config import FeaturizeConfig, Params
from lead_ml.crm import (
    CrmConfig,
    LabelledDeals,
    bant_rule,
    load_crm,
)
from lead_ml.features import FeatureSpec
from lead_ml.model import (
    Split,
    TrainedModel,
    feature_rows,
    predict_proba,
    save_model,
    train_model,
)

#: Activity types counted one by one; rarer types count only in the total.
MAX_ACTIVITY_TYPES = 20
SNAPSHOT_META = ("deal_id", "created_at", "snapshot_at", "outcome", "won", "amount")
DAY = np.timedelta64(1, "D")


def slug(column: str) -> str:
    """A feature name LightGBM accepts, from a user's column name.

    >>> slug("Total Time Spent on Website")
    'total_time_spent_on_website'
    """
    name = re.sub(r"[^0-9a-zA-Z]+", "_", column).strip("_").lower()
    return name or "column"


def _unique_names(columns: list[str]) -> dict[str, str]:
    names: dict[str, str] = {}
    taken: set[str] = set(SNAPSHOT_META)
    for column in columns:
        base = slug(column)
        name, n = base, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        taken.add(name)
        names[column] = name
    return names


@dataclass(frozen=True)
class FeaturePlan:
    """How raw user rows become features: what a scorer needs to repeat it."""

    id_column: str
    created_column: str | None
    columns: dict[str, str]  # user column -> kind (number, date, bool, category)
    names: dict[str, str]  # user column -> feature name
    dimensions: dict[str, str]  # user column -> dimension
    activity_types: list[str]
    snapshot_days: int

    def registry(self) -> list[FeatureSpec]:
        """One FeatureSpec per feature, activity features last."""
        kinds = {"category": "category"}
        specs = [
            FeatureSpec(
                self.names[c],
                f"deals.{c}",
                kinds.get(kind, "number"),  # type: ignore[arg-type]
                self.dimensions[c],
            )
            for c, kind in self.columns.items()
        ]
        return specs + [
            FeatureSpec(name, "activities", "number", "engagement")
            for name in activity_feature_names(self.activity_types)
        ]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON view (stored in the scorer bundle)."""
        return {
            "id_column": self.id_column,
            "created_column": self.created_column,
            "columns": self.columns,
            "names": self.names,
            "dimensions": self.dimensions,
            "activity_types": self.activity_types,
            "snapshot_days": self.snapshot_days,
        }


def activity_feature_names(types: list[str]) -> list[str]:
    """Names of the activity features for these types."""
    if not types:
        return []
    counted = _unique_names([f"n {t}" for t in types])
    return [*counted.values(), "n_activities", "days_since_last_touch"]


def plan_features(
    deals: LabelledDeals, audit: AuditReport, cfg: FeaturizeConfig
) -> FeaturePlan:
    """The feature plan of an audited export."""
    columns: dict[str, str] = {c: deals.kinds[c].kind for c in audit.features}
    types: list[str] = []
    if deals.activities is not None and deals.frame["created_at"].notna().any():
        counts = deals.activities["activity_type"].value_counts()
        types = sorted(counts.index[:MAX_ACTIVITY_TYPES].astype(str))
    return FeaturePlan(
        id_column="deal_id",
        created_column="created_at",
        columns=columns,
        names=_unique_names(list(columns)),
        dimensions={c: deals.dimensions.get(c, "other") for c in columns},
        activity_types=types,
        snapshot_days=cfg.snapshot_days,
    )


def _feature_values(values: pd.Series, kind: str, created: pd.Series) -> pd.Series:
    if kind == "category":
        return values.astype("string")
    if kind == "date":
        stamps = pd.to_datetime(values).to_numpy("datetime64[ms]")
        start = created.to_numpy("datetime64[ms]")
        anchor = np.where(pd.isna(start), np.datetime64(0, "ms"), start)
        # whole milliseconds to days: exact for any date a CRM holds
        days = (stamps - anchor).astype("int64") / 86_400_000
        days[np.isnat(stamps)] = np.nan
        return pd.Series(days, index=values.index, dtype="float64")
    if kind == "bool":
        return values.astype("boolean").astype("Float64").astype(float)
    return pd.to_numeric(values, errors="coerce").astype(float)


def _activity_features(
    plan: FeaturePlan,
    meta: pd.DataFrame,
    activities: pd.DataFrame | None,
) -> pd.DataFrame:
    names = activity_feature_names(plan.activity_types)
    if not names:
        return pd.DataFrame(index=meta.index)
    out = pd.DataFrame(0.0, index=meta.index, columns=names)
    out["days_since_last_touch"] = np.nan
    if activities is None or activities.empty:
        return out
    position = pd.Series(np.arange(len(meta)), index=meta["deal_id"].to_numpy())
    log = activities[activities["deal_id"].isin(position.index)]
    row = position.loc[log["deal_id"].to_numpy()].to_numpy()
    snapshot = meta["snapshot_at"].to_numpy("datetime64[ms]")[row]
    stamp = log["timestamp"].to_numpy("datetime64[ms]")
    known = ~np.isnat(snapshot) & (stamp <= snapshot)  # nothing after the snapshot
    row, stamp, snapshot = row[known], stamp[known], snapshot[known]
    kind = log["activity_type"].astype(str).to_numpy()[known]
    for name, activity_type in zip(names, plan.activity_types, strict=False):
        out[name] = np.bincount(row[kind == activity_type], minlength=len(meta)).astype(
            float
        )
    out["n_activities"] = np.bincount(row, minlength=len(meta)).astype(float)
    age = (snapshot - stamp) / DAY
    last = np.full(len(meta), np.inf)
    np.minimum.at(last, row, age)
    out["days_since_last_touch"] = np.where(np.isfinite(last), last, np.nan)
    return out


def build_crm_features(
    plan: FeaturePlan, frame: pd.DataFrame, activities: pd.DataFrame | None
) -> pd.DataFrame:
    """Features of labelled (or typed lead) rows: meta columns, then the plan's."""
    created = frame["created_at"].astype("datetime64[ms]")
    meta = pd.DataFrame(
        {
            "deal_id": frame["deal_id"].astype("string"),
            "created_at": created,
            "snapshot_at": created + pd.Timedelta(days=plan.snapshot_days),
            "outcome": frame.get("outcome", pd.Series("open", index=frame.index)),
            "won": frame.get("won", pd.Series(pd.NA, index=frame.index, dtype="Int8")),
            "amount": frame.get(
                "amount", pd.Series(np.nan, index=frame.index, dtype=float)
            ),
        },
        index=frame.index,
    )
    values = {
        plan.names[c]: _feature_values(frame[c], kind, created)
        for c, kind in plan.columns.items()
    }
    return pd.concat(
        [meta, pd.DataFrame(values, index=frame.index)]
        + [_activity_features(plan, meta, activities)],
        axis=1,
    )


def audit_split(features: pd.DataFrame, labels: pd.Series) -> Split:
    """The audit's train / valid / test deals, each in its own order."""
    parts = {
        name: features[labels.eq(name).fillna(False).to_numpy(dtype=bool)]
        for name in ("train", "valid", "test")
    }
    for name, part in parts.items():
        if part["won"].nunique() < 2:
            raise ValueError(
                f"the {name} window has {len(part)} deals and only one outcome; "
                "the export needs won and lost deals in every window "
                "(see reports/audit.md, sufficiency)"
            )
    return Split(parts["train"], parts["valid"], parts["test"])


# --- the pipeline -------------------------------------------------------------------


def _bant_scores(crm: CrmConfig, deals: LabelledDeals) -> pd.DataFrame:
    rule = bant_rule(crm, deals.frame)
    return pd.DataFrame(
        {
            "bant_points": rule.decision_function(deals.frame),
            "bant_qualified": rule.predict(deals.frame).astype(bool),
        },
        index=deals.frame.index,
    )


def _holdout(
    params: Params, split: Split, model: TrainedModel, bant: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, Any]]:
    from lead_ml.pipeline import evaluate_score_frame

    test = split.test
    scores = pd.DataFrame(
        {
            "deal_id": test["deal_id"].to_numpy(),
            "won": test["won"].to_numpy(int),
            "probability": predict_proba(model, test),
            "bant_points": bant.loc[test.index, "bant_points"].to_numpy(float),
            "bant_qualified": bant.loc[test.index, "bant_qualified"].to_numpy(bool),
            "amount": test["amount"].to_numpy(float),
        }
    )
    metrics = evaluate_score_frame(params, scores)
    return scores, metrics | {"evaluation": "holdout"}


def _cross_validated(
    params: Params,
    features: pd.DataFrame,
    audit: AuditReport,
    registry: list[FeatureSpec],
    bant: pd.DataFrame,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Repeated stratified CV: out-of-fold scores of every repeat, metrics on them."""
    from sklearn.metrics import roc_auc_score

    from lead_ml.pipeline import evaluate_score_frame

    sufficiency = audit.report["sufficiency"]
    n_splits, n_repeats = sufficiency["cv_splits"], sufficiency["cv_repeats"]
    folds = cv_folds(features, audit.groups, n_splits, n_repeats, params.seed)
    closed = features["won"].notna().to_numpy()
    repeats = []
    for r in range(n_repeats):
        probability = np.full(len(features), np.nan)
        for i, (train_rows, test_rows) in enumerate(
            folds[r * n_splits : (r + 1) * n_splits]
        ):
            part = features.iloc[train_rows]
            rng = np.random.default_rng(params.seed + 1000 * r + i)
            is_valid = rng.random(len(part)) < params.split.valid_fraction
            split = Split(part[~is_valid], part[is_valid], features.iloc[test_rows])
            model = train_model(
                split, params.train, params.bands, params.seed, registry
            )
            probability[test_rows] = predict_proba(model, split.test)
        repeats.append(probability)
    won = features["won"].to_numpy()[closed].astype(int)
    first = repeats[0][closed]
    scores = pd.DataFrame(
        {
            "deal_id": features["deal_id"].to_numpy()[closed],
            "won": won,
            "probability": first,
            "bant_points": bant["bant_points"].to_numpy(float)[closed],
            "bant_qualified": bant["bant_qualified"].to_numpy(bool)[closed],
            "amount": np.nan_to_num(features["amount"].to_numpy(float)[closed]),
        }
    )
    metrics = evaluate_score_frame(params, scores)
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


def _day(value: Any) -> str:
    return pd.Timestamp(value).date().isoformat()


def run_crm_pipeline(params: Params, out_dir: Path) -> dict[str, Any]:
    """Audit, featurize, train, evaluate and export a user's CRM into out_dir.

    Writes ``audit.json``/``audit.md``, ``rejects.csv``, ``features.parquet``,
    ``model/``, ``metrics.json``, ``plots/`` and ``scorer/`` (a bundle that scores the
    user's own columns); raises LeakageError when the audit refuses a column.
    """
    from lead_ml.pipeline import write_score_plots

    if params.crm is None:
        raise ValueError("params have no crm: section; this runs a CRM export")
    crm = params.crm
    out_dir.mkdir(parents=True, exist_ok=True)
    deals = load_crm(crm)
    deals.rejects.to_csv(out_dir / "rejects.csv", index=False)
    audit = run_audit(deals, crm, params.split, params.seed)
    write_report(audit, out_dir / "audit.json", out_dir / "audit.md")
    check(audit)  # stops on leakage the user has not allowed
    plan = plan_features(deals, audit, params.featurize)
    features = build_crm_features(plan, deals.frame, deals.activities)
    features.to_parquet(out_dir / "features.parquet", index=False)
    registry = plan.registry()
    bant = _bant_scores(crm, deals)
    split = audit_split(features, audit.split)
    model = train_model(split, params.train, params.bands, params.seed, registry)
    save_model(model, out_dir / "model")
    if audit.report["sufficiency"].get("evaluation") == "repeated_cv":
        scores, metrics = _cross_validated(params, features, audit, registry, bant)
    else:
        scores, metrics = _holdout(params, split, model, bant)
    created = split.test["created_at"].dropna()
    metrics |= {
        "n_train": len(split.train),
        "n_valid": len(split.valid),
        "n_test": len(scores),
        "test_start": _day(created.min()) if len(created) else "",
        "test_end": _day(created.max()) if len(created) else "",
        "split": audit.report["split"]["method"],
        "split_explanation": audit.report["split"]["explanation"],
        "features": [spec.name for spec in registry],
        "warnings": audit.report["warnings"],
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_score_plots(scores, params.evaluate, out_dir / "plots")
    leads = open_lead_rows(crm, deals.frame, list(plan.columns))
    leads.to_csv(out_dir / "open_leads.csv", index=False)
    spec = crm_bundle_spec(model, plan, crm, split.train, params.featurize)
    test_rows = deals.frame.loc[split.test.index[:5]].assign(outcome="open")
    example = leads.head(5)
    if example.empty:  # nothing open: a few test deals show the input's shape
        example = open_lead_rows(crm, test_rows, list(plan.columns))
    export_crm_scorer(model, spec, example, out_dir / "scorer")
    return {"metrics": metrics, "audit": audit.report, "plan": plan.as_dict()}


# --- the scorer of a CRM export -----------------------------------------------------

_TRUE = frozenset({"yes", "true", "y", "1", "1.0"})
_FALSE = frozenset({"no", "false", "n", "0", "0.0"})


def model_dimensions(model: TrainedModel) -> list[str]:
    """The dimensions a model's features explain, in report order (other last)."""
    from lead_ml.config import DIMENSIONS

    used = set(model.info.dimension_of().values())
    return [*DIMENSIONS, *(["other"] if "other" in used else [])]


def feature_contributions(model: TrainedModel, features: pd.DataFrame) -> np.ndarray:
    """Exact TreeSHAP per feature (bias last) in calibrated log-odds units."""
    from lead_ml.model import model_matrix

    matrix = model_matrix(features, model.info.categories, model.info.feature_names)
    raw = np.asarray(
        model.booster.predict(
            matrix, pred_contrib=True, num_iteration=model.info.best_iteration
        )
    )
    calibration = model.info.calibration
    scaled = calibration.slope * raw
    scaled[:, -1] = calibration.log_odds(raw[:, -1])
    return scaled


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    return str(value)


def crm_explain(
    model: TrainedModel, plan: FeaturePlan, features: pd.DataFrame, n: int = 3
) -> pd.DataFrame:
    """Per lead: contrib_<dimension> (summing with base_value to the calibrated
    log-odds), the n strongest dimensions as reasons naming the user's column and
    value ("?" when the value is missing: unknown, never negative evidence), and the
    next question: the missing MEDDIC-mapped answer that would move the lead most."""
    dims = model_dimensions(model)
    dimension_of = model.info.dimension_of()
    names = model.info.feature_names
    per_feature = feature_contributions(model, features)
    indicator = np.zeros((len(names), len(dims)))
    for i, name in enumerate(names):
        indicator[i, dims.index(dimension_of[name])] = 1.0
    summed = per_feature[:, :-1] @ indicator
    out = pd.DataFrame(summed, columns=[f"contrib_{d}" for d in dims])
    out["base_value"] = per_feature[:, -1]
    column_of = {name: column for column, name in plan.names.items()}
    reasons = []
    order = np.argsort(-np.abs(summed), axis=1, kind="stable")[:, :n]
    for row in range(len(features)):
        said = []
        for d in order[row]:
            if summed[row, d] == 0:
                continue
            members = np.flatnonzero(indicator[:, d])
            top = members[np.argmax(np.abs(per_feature[row, members]))]
            name = names[top]
            value = features[name].iloc[row]
            label = dims[d].replace("_", " ")
            column = column_of.get(name, name)
            if pd.isna(value):
                said.append(f"? {label}: {column} not yet known")
            else:
                sign = "+" if summed[row, d] > 0 else "-"
                said.append(f"{sign} {label}: {column} is {_value_text(value)}")
        reasons.append("; ".join(said))
    out["top_reasons"] = pd.Series(reasons, dtype="string")
    questions = crm_next_question(model, plan, features)
    out["next_question"] = questions.to_numpy()
    return out.set_axis(features.index)


#: Answers tried per missing category: the most common training levels suffice.
MAX_TRIED_LEVELS = 12


def crm_next_question(
    model: TrainedModel, plan: FeaturePlan, features: pd.DataFrame
) -> pd.Series:
    """Per lead, the missing answer of a MEDDIC-mapped column that would move its
    win probability most (trying the training levels, or the quartiles of a number),
    as a question for the rep; "" when every MEDDIC answer is known."""
    from lead_ml.config import MEDDIC_DIMENSIONS

    now = predict_proba(model, features)
    best_gain = np.full(len(features), -1.0)
    text = np.full(len(features), "", dtype=object)
    for column, name in plan.names.items():
        if plan.dimensions[column] not in MEDDIC_DIMENSIONS:
            continue
        missing = features[name].isna().to_numpy()
        if not missing.any():
            continue
        leads = features[missing]
        levels: list[Any] = list(model.info.categories.get(name, []))[:MAX_TRIED_LEVELS]
        if name not in model.info.categories:
            known = features[name].dropna()
            levels = sorted(set(known.quantile([0.25, 0.5, 0.75]).tolist()))
        for level in levels:
            after = predict_proba(model, leads.assign(**{name: level}))
            gain = np.abs(after - now[missing])
            rows = np.flatnonzero(missing)
            better = gain > best_gain[rows]
            best_gain[rows[better]] = gain[better]
            text[rows[better]] = [
                f"Ask about {column}: {_value_text(level)!s} would move the win "
                f"probability from {b:.0%} to {a:.0%}"
                for b, a in zip(now[rows[better]], after[better], strict=True)
            ]
    return pd.Series(text, index=features.index, dtype="string")


def _read_kind(values: pd.Series, kind: str) -> tuple[pd.Series, np.ndarray]:
    """Values of a lead column read as their kind, and where a present value fails."""
    from lead_ml.scorer import _read_dates, _read_floats, _text

    if kind == "number":
        return _read_floats(values)
    if kind == "date":
        return _read_dates(values)
    text, present = _text(values)
    if kind == "bool":
        lower = text.str.strip().str.lower()
        parsed = pd.Series(pd.NA, index=values.index, dtype="boolean")
        parsed[lower.isin(_TRUE).fillna(False).to_numpy(bool)] = True
        parsed[lower.isin(_FALSE).fillna(False).to_numpy(bool)] = False
        return parsed, present & parsed.isna().to_numpy()
    return text, np.zeros(len(values), dtype=bool)


class CrmScorer:
    """Scores raw rows of the user's own export, in the user's column names."""

    def __init__(self, model: TrainedModel, spec: dict[str, Any]) -> None:
        self.model = model
        self.spec = spec
        self.plan = FeaturePlan(**spec["crm_plan"])
        self.columns: dict[str, str] = spec["crm_columns"]  # user column -> kind
        self.model_version: str = spec["model_version"]
        self.thresholds: dict[str, float] = spec["model"]["band_thresholds"]
        self.dimensions = model_dimensions(model)

    @property
    def id_column(self) -> str:
        """The user's id column."""
        return str(self.spec["id_column"])

    def output_columns(self, explain_reasons: bool = True) -> list[str]:
        """The columns of the output, in order."""
        columns = [self.id_column, "probability", "score", "band"]
        if explain_reasons:
            columns += [f"contrib_{d}" for d in self.dimensions]
            columns += ["base_value", "top_reasons", "next_question"]
        return [*columns, "model_version"]

    def check_columns(self, columns: list[str], source: str) -> None:
        """Refuse input that lacks a column the model reads, naming every one."""
        from lead_ml.scorer import ScorerError

        missing = [c for c in self.columns if c not in columns]
        if missing:
            raise ScorerError(
                f"{source}: missing column(s) {', '.join(missing)}; this scorer "
                f"reads {', '.join(self.columns)} (values may be empty except "
                f"{self.id_column})"
            )

    def bands(self, probability: np.ndarray) -> np.ndarray:
        """Band A-D of each probability (thresholds from the validation window)."""
        from lead_ml.scorer import band_letters

        return band_letters(self.thresholds, probability)

    def score(
        self,
        leads: pd.DataFrame,
        activities: pd.DataFrame | None = None,
        explain_reasons: bool = True,
    ) -> pd.DataFrame:
        """One output row per input row, input order kept; rejected rows carry
        empty scores and their reason in ``reject_reason``. ``activities``: rows of
        the activity log in the export's own columns, as in training."""
        log = None if activities is None else self.activity_log(activities)[0]
        return self.score_frame(leads, log, explain_reasons)[0]

    @property
    def counts_activities(self) -> bool:
        """Whether the model has activity features (scores without a log count
        no activity for every lead)."""
        return bool(self.plan.activity_types)

    def activity_log(
        self, raw: pd.DataFrame, source: str = "activities"
    ) -> tuple[pd.DataFrame, int]:
        """The user's activity rows as deal_id, timestamp, activity_type, and how
        many rows were left out (no id, no readable timestamp or no type)."""
        from lead_ml.crm import activity_columns
        from lead_ml.scorer import ScorerError

        log = self.spec.get("crm_activities")
        if not log:
            raise ScorerError(
                f"{source}: this scorer was trained without an activity log (no "
                "crm.activities in its params); score without activities"
            )
        columns = list(log["columns"])
        missing = [c for c in columns if c not in raw.columns]
        if missing:
            raise ScorerError(
                f"{source}: missing activity column(s) {', '.join(missing)}; the "
                f"activity log needs {', '.join(columns)}, as in training"
            )
        deal, stamp, kind = activity_columns(
            raw, (columns[0], columns[1], columns[2]), log["missing_values"]
        )
        usable = (deal.notna() & stamp.notna() & kind.notna()).to_numpy(bool)
        frame = pd.DataFrame(
            {"deal_id": deal, "timestamp": stamp, "activity_type": kind}
        )
        return frame[usable].reset_index(drop=True), int((~usable).sum())

    def unseen(self, features: pd.DataFrame) -> dict[str, int]:
        """Per categorical feature: non-empty values never seen in training."""
        return {
            name: int((features[name].notna() & ~features[name].isin(levels)).sum())
            for name, levels in self.model.info.categories.items()
        }

    def empty_output(self, explain_reasons: bool = True) -> pd.DataFrame:
        """An output frame with no rows: the columns and dtypes of scored rows."""
        numbers = {"probability", "score", "base_value"}
        return pd.DataFrame(
            {
                column: pd.Series(
                    dtype="float64"
                    if column in numbers or column.startswith("contrib_")
                    else "string"
                )
                for column in self.output_columns(explain_reasons)
            }
        )

    def score_frame(
        self,
        leads: pd.DataFrame,
        activities: pd.DataFrame | None = None,
        explain_reasons: bool = True,
        rows: np.ndarray | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """:meth:`score`, and the features of the rows that were scored. ``rows``
        numbers the leads in their file (default 0, 1, ...) for reject reasons."""
        from lead_ml.scorer import quote_value, repeated_ids

        self.check_columns(list(leads.columns), "leads")
        raw = leads[list(self.columns)].reset_index(drop=True)
        reasons = np.full(len(raw), None, dtype=object)
        typed = {}
        for column, kind in self.columns.items():
            typed[column], failed = _read_kind(raw[column], kind)
            new = np.flatnonzero(failed & pd.isna(reasons))
            reasons[new] = [
                f"{column} is not a {kind}: {quote_value(v)}"
                for v in raw[column].iloc[new]
            ]
        ids = typed[self.id_column]
        no_id = ids.isna().to_numpy() & pd.isna(reasons)
        reasons[no_id] = f"{self.id_column} is missing"
        # Of rows sharing an id, the first valid one is scored (as the batch job does)
        valid = np.flatnonzero(pd.isna(reasons))
        first = repeated_ids(ids.iloc[valid])
        later = first != np.arange(len(valid))
        again, first_valid = valid[later], valid[first[later]]
        row_numbers = np.arange(len(raw)) if rows is None else np.asarray(rows, int)
        reasons[again] = [
            f"duplicate {self.id_column} {quote_value(v)} "
            f"(first at row {row_numbers[f]})"
            for f, v in zip(first_valid, ids.iloc[again], strict=True)
        ]
        keep = pd.isna(reasons)
        frame = pd.DataFrame(typed)[keep]
        created = self.spec.get("created_column")
        frame = frame.assign(
            deal_id=frame[self.id_column].astype("string"),
            created_at=(
                frame[created] if created else pd.Series(pd.NaT, index=frame.index)
            ),
        )
        features = build_crm_features(self.plan, frame, activities)
        columns = self.output_columns(explain_reasons)
        out = pd.DataFrame(index=raw.index, columns=columns)
        out[self.id_column] = ids.astype("string")
        if len(features):
            probability = predict_proba(self.model, features)
            out.loc[keep, "probability"] = probability
            out.loc[keep, "score"] = np.clip(np.rint(probability * 100), 1, 99)
            out.loc[keep, "band"] = self.bands(probability)
            if explain_reasons:
                explained = crm_explain(self.model, self.plan, features)
                for column in explained.columns:
                    out.loc[keep, column] = explained[column].to_numpy()
        out.loc[keep, "model_version"] = self.model_version
        numbers = ["probability", "score"]
        numbers += [c for c in columns if c.startswith("contrib_")]
        numbers += ["base_value"] if explain_reasons else []
        out = out.astype(dict.fromkeys(numbers, "float64"))
        text = [c for c in out.columns if c not in numbers]
        out = out.astype(dict.fromkeys(text, "string"))
        out["reject_reason"] = pd.Series(reasons, dtype="string")
        return out.set_axis(leads.index), features


def crm_bundle_spec(
    model: TrainedModel,
    plan: FeaturePlan,
    crm: CrmConfig,
    reference: pd.DataFrame,
    featurize: FeaturizeConfig,
) -> dict[str, Any]:
    """scorer.json of a CRM export's scorer: the plan, the user's columns, and what
    every scorer carries (model info, bands, versions, drift reference)."""
    from lead_ml.scorer import bundle_spec

    user_columns = {crm.deals.id: "category"}
    if crm.deals.created:
        user_columns[crm.deals.created] = "date"
    user_columns |= plan.columns
    spec = bundle_spec(
        model, reference, featurize, plan.registry(), crm.deals.id, user_columns
    )
    log = crm.activities
    activities = None
    if log is not None:
        activities = {
            "columns": [log.key, log.timestamp, log.type],
            "missing_values": list(crm.missing_values),
        }
    return spec | {
        "created_column": crm.deals.created,
        "crm_columns": user_columns,
        "crm_plan": plan.as_dict(),
        "crm_activities": activities,
    }


def open_lead_rows(
    crm: CrmConfig, frame: pd.DataFrame, columns: list[str]
) -> pd.DataFrame:
    """The open deals as lead rows in the user's column names (what a batch job
    scores): id, created date and the model's columns, accounts joined in."""
    open_rows = frame[frame["outcome"] == "open"]
    rows = pd.DataFrame({crm.deals.id: open_rows["deal_id"].astype("string")})
    if crm.deals.created:
        rows[crm.deals.created] = open_rows["created_at"]
    for column in columns:
        rows[column] = open_rows[column]
    return rows.reset_index(drop=True)


def export_crm_scorer(
    model: TrainedModel,
    spec: dict[str, Any],
    example: pd.DataFrame,
    out_dir: Path,
) -> None:
    """Write the bundle and the MLflow pyfunc model folder (models-from-code)."""
    import shutil
    import tempfile

    import mlflow
    from mlflow.models import infer_signature

    from lead_ml.scorer import load_scorer, write_bundle
    from lead_ml.tracking import quiet_environment

    quiet_environment()
    package = Path(__file__).parent
    # The signature takes the columns as a CSV export gives them: numbers as floats
    # (any may be empty), everything else as text that the scorer reads itself.
    kinds = spec["crm_columns"]
    example = example.astype(
        {c: "float64" if kinds[c] == "number" else "string" for c in example.columns}
    )
    with tempfile.TemporaryDirectory() as staging:
        bundle = write_bundle(model, spec, Path(staging) / "bundle")
        output = load_scorer(bundle).score(example)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        mlflow.pyfunc.save_model(
            path=str(out_dir),
            python_model=str(package / "pyfunc_model.py"),
            artifacts={"bundle": str(bundle)},
            signature=infer_signature(
                example, output, params={"explain": True, "activities_path": ""}
            ),
            input_example=example,
            code_paths=[str(package)],
            pip_requirements=[
                f"{lib}=={version}" for lib, version in spec["library_versions"].items()
            ]
            + ["mlflow", "scikit-learn", "pydantic", "pyyaml"],
        )


def score_crm_file(
    scorer: CrmScorer,
    input_path: Path,
    output_path: Path,
    rejects_path: Path,
    explain_reasons: bool = True,
    chunk_rows: int = 50_000,
    progress: Callable[[int], None] | None = None,
    activities_path: Path | None = None,
) -> dict[str, Any]:
    """Score a CSV or Parquet file of the user's lead rows with a CRM-export scorer
    (and, when given, the export's activity log, counted up to each snapshot).

    The file is streamed in chunks as the built-in batch job streams it (ids repeated
    across chunks are found by a first pass over the id column); output and rejects
    go to temporary files renamed into place when complete. Returns the same summary
    as the batch job (rows in = scored + rejected).
    """
    import time

    from lead_ml.batch import batch_job, file_columns, read_chunks
    from lead_ml.crm import read_table
    from lead_ml.schema import REJECT_COLUMNS
    from lead_ml.scorer import DriftMonitor, quote_value

    started = time.perf_counter()
    columns = file_columns(input_path)
    scorer.check_columns(columns, str(input_path))
    log, left_out = None, 0
    if activities_path is not None:
        if not activities_path.exists():
            raise FileNotFoundError(f"{activities_path}: activities file not found")
        raw_log = read_table(activities_path, "--activities")
        log, left_out = scorer.activity_log(raw_log, str(activities_path))
        del raw_log
    monitor = DriftMonitor(scorer.spec["drift_reference"])
    id_column = scorer.id_column
    outputs = (scorer.empty_output(explain_reasons), [*REJECT_COLUMNS, *columns])
    with batch_job(
        input_path, output_path, rejects_path, outputs, id_column, chunk_rows
    ) as job:
        for chunk in read_chunks(input_path, columns, chunk_rows):
            first_row = job.summary.rows_in
            hashes = job.index.hashes(len(chunk))
            earlier = job.seen.contains(hashes) & chunk[id_column].notna().to_numpy()
            fresh = np.flatnonzero(~earlier)
            out, features = scorer.score_frame(
                chunk.iloc[fresh], log, explain_reasons, first_row + fresh
            )
            rejected = out["reject_reason"].notna().to_numpy()
            scored = hashes[fresh[~rejected]]
            job.seen.add(scored[job.index.is_repeated(scored)])
            reasons = pd.Series(pd.NA, index=range(len(chunk)), dtype="string")
            reasons.iloc[fresh] = out["reject_reason"].to_numpy()
            reasons.iloc[np.flatnonzero(earlier)] = [
                f"duplicate {id_column} {quote_value(v)} (already scored at an "
                "earlier row)"
                for v in chunk[id_column].iloc[earlier]
            ]
            refused = np.flatnonzero(reasons.notna().to_numpy())
            if len(features):
                monitor.add_rows(
                    feature_rows(scorer.model, features),
                    scorer.model.info.feature_names,
                    out.loc[~rejected, "probability"].to_numpy(float),
                )
            job.writer.write(out[~rejected].drop(columns="reject_reason"))
            if refused.size:
                bad = chunk.iloc[refused].astype("string").reset_index(drop=True)
                bad.insert(0, "reason", reasons.iloc[refused].to_numpy())
                bad.insert(0, "row", first_row + refused)
                bad.insert(0, "table", "leads")
                job.reject_writer.write(bad)
            job.count(len(chunk), int((~rejected).sum()), len(refused))
            for name, n in scorer.unseen(features).items():
                job.summary.unseen[name] = job.summary.unseen.get(name, 0) + n
            if progress is not None:
                progress(len(chunk))
    job.summary.activities_rejected = left_out
    job.summary.drift = monitor.psi()
    job.summary.seconds = time.perf_counter() - started
    return job.summary.as_dict()
