"""Your own CRM export through the pipeline: features, audit gate, model vs BANT."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from lead_ml.audit import LeakageError
from lead_ml.byo import FeaturePlan, build_crm_features, run_crm_pipeline, slug
from lead_ml.config import load_params, parse_params

# MLflow's own warnings when saving the scorer (its AnyType hints; its input example
# check comparing a string index with a range), not lead-ml's.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*AnyType:UserWarning"),
    pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:mlflow"),
]
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not SHARED.is_dir(),
    reason=f"needs the real data sets in {SHARED} (../shared/data beside the "
    "project); it is absent",
)


def _export(n: int, seed: int = 5) -> pd.DataFrame:
    """A CRM export whose answer is known: `champion` and `visits` drive the odds."""
    rng = np.random.default_rng(seed)
    champion = rng.choice(["yes", "no", "unknown"], n)
    visits = rng.poisson(3, n)
    revenue = rng.lognormal(13, 1, n)
    logit = -0.8 + 1.6 * (champion == "yes") - 0.8 * (champion == "no") + 0.3 * visits
    won = rng.random(n) < 1 / (1 + np.exp(-logit))
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n) * 3, unit="h")
    stage = np.where(won, "Closed Won", "Closed Lost")
    stage[-n // 10 :] = "Negotiation"  # the latest deals are still open
    return pd.DataFrame(
        {
            "Opportunity ID": [f"O-{i:05d}" for i in range(n)],
            "Stage": stage,
            "Created Date": created.strftime("%Y-%m-%d"),
            "Champion?": champion,
            "Web Visits": visits,
            "Annual Revenue": revenue.round(0),
            "Region": rng.choice(["EMEA", "AMER", "APAC"], n),
            # written when the deal closed: the outcome in disguise
            "Close Reason": np.where(won, "price accepted", "went dark"),
        }
    )


def _params(tmp_path: Path, n: int, **crm: Any) -> dict[str, Any]:
    path = tmp_path / "deals.csv"
    _export(n).to_csv(path, index=False)
    section: dict[str, Any] = {
        "deals": {"path": str(path), "id": "Opportunity ID", "created": "Created Date"},
        "outcome": {"column": "Stage", "won": ["Closed Won"], "lost": ["Closed Lost"]},
        "bant": {"letters": {"budget": "`Annual Revenue` >= 500000"}, "share": 1.0},
        "dimensions": {"Champion?": "champion", "Web Visits": "engagement"},
        **crm,
    }
    return {
        "seed": 3,
        "train": {"n_estimators": 150, "num_threads": 1},
        "evaluate": {"n_bootstrap": 200},
        "crm": section,
    }


def test_slug_gives_names_lightgbm_accepts() -> None:
    assert slug("Champion?") == "champion"
    assert slug("Total Time: Spent") == "total_time_spent"
    assert slug("???") == "column"


def test_features_see_nothing_after_the_snapshot() -> None:
    plan = FeaturePlan(
        id_column="deal_id",
        created_column="created_at",
        columns={"Signed On": "date", "Trial": "bool", "Seats": "number"},
        names={"Signed On": "signed_on", "Trial": "trial", "Seats": "seats"},
        dimensions={"Signed On": "fit", "Trial": "engagement", "Seats": "fit"},
        activity_types=["call", "email"],
        snapshot_days=7,
    )
    frame = pd.DataFrame(
        {
            "deal_id": ["a", "b"],
            "created_at": pd.to_datetime(["2024-01-01", "2024-02-01"]),
            "Signed On": pd.Series(["2024-01-11", None], dtype="datetime64[ms]"),
            "Trial": pd.array([True, None], dtype="boolean"),
            "Seats": [3.0, None],
        }
    )
    early = pd.DataFrame(
        {
            "deal_id": ["a", "a", "b"],
            "timestamp": pd.to_datetime(["2024-01-02", "2024-01-05", "2024-02-03"]),
            "activity_type": ["call", "email", "email"],
        }
    )
    late = pd.DataFrame(
        {
            "deal_id": ["a", "b"],
            "timestamp": pd.to_datetime(["2024-01-09", "2024-03-01"]),
            "activity_type": ["call", "call"],
        }
    )
    features = build_crm_features(plan, frame, early)
    assert features["signed_on"].tolist()[0] == 10.0  # days after created
    assert np.isnan(features["signed_on"].tolist()[1])
    assert features["trial"].tolist()[0] == 1.0
    assert features[["n_call", "n_email", "n_activities"]].to_numpy().tolist() == [
        [1.0, 1.0, 2.0],
        [0.0, 1.0, 1.0],
    ]
    assert features["days_since_last_touch"].tolist() == [3.0, 5.0]
    with_late = build_crm_features(plan, frame, pd.concat([early, late]))
    pd.testing.assert_frame_equal(features, with_late)


def test_pipeline_refuses_a_leaky_column_then_beats_bant(tmp_path: Path) -> None:
    raw = _params(tmp_path, 4000, audit={"min_per_outcome": 150})
    with pytest.raises(LeakageError, match="Close Reason"):
        run_crm_pipeline(parse_params(raw), tmp_path / "refused")
    report = json.loads((tmp_path / "refused" / "audit.json").read_text())
    assert "Close Reason" in report["blocking"]

    raw["crm"]["forbidden"] = ["Close Reason"]
    result = run_crm_pipeline(parse_params(raw), tmp_path / "run")
    metrics = result["metrics"]
    assert metrics["evaluation"] == "holdout"
    assert metrics["split"] == "time"
    assert metrics["model"]["roc_auc"] > metrics["bant"]["roc_auc"]
    assert metrics["delta_roc_auc_ci95"][0] > 0
    assert "close_reason" not in metrics["features"]
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["model"] == metrics["model"]
    for name in ("features.parquet", "model/booster.txt", "audit.md", "plots"):
        assert (tmp_path / "run" / name).exists(), name
    # model.json knows each feature's dimension, user columns included
    info = json.loads((tmp_path / "run" / "model" / "model.json").read_text())
    assert info["dimensions"]["champion"] == "champion"
    assert info["dimensions"]["region"] == "other"


def test_too_few_deals_switch_to_repeated_cv(tmp_path: Path) -> None:
    raw = _params(tmp_path, 700, forbidden=["Close Reason"])
    metrics = run_crm_pipeline(parse_params(raw), tmp_path / "run")["metrics"]
    assert metrics["evaluation"] == "repeated_cv"
    cv = metrics["cv"]
    assert cv["repeats"] == 3 and len(cv["model_roc_auc_by_repeat"]) == 3
    closed = int((_export(700)["Stage"] != "Negotiation").sum())
    assert metrics["n_test"] == closed  # every closed deal scored out of fold
    assert metrics["model"]["roc_auc"] == pytest.approx(
        cv["model_roc_auc_by_repeat"][0]
    )


def test_same_params_same_metrics(tmp_path: Path) -> None:
    raw = _params(tmp_path, 1500, forbidden=["Close Reason"])
    first = run_crm_pipeline(parse_params(raw), tmp_path / "a")["metrics"]
    second = run_crm_pipeline(parse_params(raw), tmp_path / "b")["metrics"]
    assert first == second
    booster = (tmp_path / "a" / "model" / "booster.txt").read_bytes()
    assert booster == (tmp_path / "b" / "model" / "booster.txt").read_bytes()


def _example(name: str, tmp_path: Path, **changes: Any) -> Any:
    raw = yaml.safe_load((ROOT / "examples" / name / "params.yaml").read_text())
    for value in raw["crm"].values():
        if isinstance(value, dict) and "path" in value:
            value["path"] = str(ROOT / value["path"])
    raw["crm"] |= changes
    raw.setdefault("evaluate", {})["n_bootstrap"] = 300
    return parse_params(raw)


@needs_data
@pytest.mark.realdata
def test_x_education_model_beats_the_bant_style_rule(tmp_path: Path) -> None:
    params = _example("x_education", tmp_path)
    metrics = run_crm_pipeline(params, tmp_path / "x")["metrics"]
    assert metrics["split"] == "order"
    assert metrics["delta_roc_auc_ci95"][0] > 0, metrics["delta_roc_auc_ci95"]
    assert metrics["capacity"]["model_wins"] > metrics["capacity"]["bant_wins"]
    for leaky in ("tags", "lead_quality", "last_activity", "last_notable_activity"):
        assert leaky not in metrics["features"]


@needs_data
@pytest.mark.realdata
def test_examples_refuse_their_leaky_columns_by_default(tmp_path: Path) -> None:
    with pytest.raises(LeakageError, match="close_value"):
        run_crm_pipeline(_example("maven_crm", tmp_path, forbidden=[]), tmp_path / "m")
    with pytest.raises(LeakageError, match="Tags"):
        run_crm_pipeline(
            _example("x_education", tmp_path, forbidden=[]), tmp_path / "x"
        )


def test_example_params_validate() -> None:
    for name in ("x_education", "maven_crm"):
        params = load_params(ROOT / "examples" / name / "params.yaml")
        assert params.crm is not None


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CRM-export run with its scorer (open deals included)."""
    tmp_path = tmp_path_factory.mktemp("crm")
    raw = _params(tmp_path, 3000, forbidden=["Close Reason"])
    raw["crm"]["audit"] = {"min_per_outcome": 100}
    out = tmp_path / "run"
    run_crm_pipeline(parse_params(raw), out)
    return out


def test_crm_scorer_scores_open_leads_with_additive_reasons(exported: Path) -> None:
    from lead_ml.byo import CrmScorer
    from lead_ml.scorer import load_scorer

    leads = pd.read_csv(exported / "open_leads.csv", dtype=str)
    assert len(leads) == 300  # the latest tenth are open
    scorer = load_scorer(exported / "scorer")
    assert isinstance(scorer, CrmScorer)
    out = scorer.score(leads)
    assert out["reject_reason"].isna().all()
    assert out["Opportunity ID"].tolist() == leads["Opportunity ID"].tolist()
    contrib = out.filter(like="contrib_").to_numpy(float)
    log_odds = np.log(out["probability"] / (1 - out["probability"]))
    np.testing.assert_allclose(
        out["base_value"] + contrib.sum(axis=1), log_odds, atol=1e-9
    )
    assert "contrib_other" in out  # Region and Annual Revenue are unmapped
    # a lead whose champion is unknown is never told it lacks one
    reasons = out["top_reasons"].str.split("; ")
    for said in reasons:
        for reason in said:
            assert not (reason.startswith("-") and "not yet known" in reason)
    unknown = leads["Champion?"].eq("unknown").to_numpy()
    assert (out.loc[unknown, "band"].isin(list("ABCD"))).all()


def test_crm_scorer_rejects_bad_rows_and_matches_pyfunc(exported: Path) -> None:
    import mlflow

    from lead_ml.scorer import load_scorer

    leads = pd.read_csv(exported / "open_leads.csv", dtype=str).head(20)
    bad = leads.head(3).copy()
    bad.loc[0, "Opportunity ID"] = None
    bad.loc[1, "Created Date"] = "yesterday"
    bad.loc[2, "Web Visits"] = "lots"
    rows = pd.concat([leads, bad, leads.head(1)], ignore_index=True)
    out = load_scorer(exported / "scorer").score(rows)
    assert len(out) == len(rows)
    reasons = out["reject_reason"].tolist()
    assert reasons[20] == "Opportunity ID is missing"
    assert reasons[21].startswith("Created Date is not a date")
    assert reasons[22].startswith("Web Visits is not a number")
    assert reasons[23].startswith("duplicate Opportunity ID")
    assert out["reject_reason"].notna().sum() == 4
    # through MLflow, numbers come as numbers (as pandas reads a CSV export)
    typed = pd.read_csv(exported / "open_leads.csv").head(20)
    via_mlflow = mlflow.pyfunc.load_model(str(exported / "scorer")).predict(typed)
    np.testing.assert_array_equal(
        via_mlflow["probability"].to_numpy(float),
        out["probability"].head(20).to_numpy(float),
    )


def test_score_cli_on_a_crm_scorer(exported: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lead_ml.cli import app

    leads = pd.read_csv(exported / "open_leads.csv", dtype=str)
    leads.loc[5, "Web Visits"] = "-"
    source = tmp_path / "leads.csv"
    leads.to_csv(source, index=False)
    result = CliRunner().invoke(
        app,
        [
            "score",
            "--model",
            str(exported / "scorer"),
            "--input",
            str(source),
            "--output",
            str(tmp_path / "scores.parquet"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "300 = 299 + 1" in result.output
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    assert len(scores) == 299
    rejects = pd.read_csv(tmp_path / "scores.rejects.csv")
    assert rejects["row"].tolist() == [5]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_crm_file_is_streamed_in_chunks_like_one_frame(
    exported: Path, tmp_path: Path, suffix: str
) -> None:
    from lead_ml.byo import CrmScorer, score_crm_file
    from lead_ml.scorer import load_scorer

    leads = pd.read_csv(exported / "open_leads.csv", dtype=str)
    ids = leads["Opportunity ID"].copy()
    leads.loc[7, "Opportunity ID"] = ids[3]  # same chunk of 40 as its first copy
    leads.loc[95, "Opportunity ID"] = ids[10]  # a later chunk
    leads.loc[130, "Web Visits"] = "lots"  # invalid: row 170 keeps its id
    leads.loc[170, "Opportunity ID"] = str(ids[130])
    source = tmp_path / f"leads{suffix}"
    if suffix == ".csv":
        leads.to_csv(source, index=False)
    else:
        leads.to_parquet(source, index=False)
    scorer = load_scorer(exported / "scorer")
    assert isinstance(scorer, CrmScorer)
    out = tmp_path / "out"
    out.mkdir()
    done = score_crm_file(
        scorer, source, out / "s.parquet", out / "r.csv", chunk_rows=40
    )
    assert (done["rows_in"], done["scored"], done["rejected"]) == (300, 297, 3)
    rejects = pd.read_csv(out / "r.csv", dtype=str)
    assert list(rejects.columns[:3]) == ["table", "row", "reason"]
    reasons = dict(zip(rejects["row"].astype(int), rejects["reason"], strict=True))
    assert reasons[7] == f"duplicate Opportunity ID '{ids[3]}' (first at row 3)"
    assert reasons[95] == (
        f"duplicate Opportunity ID '{ids[10]}' (already scored at an earlier row)"
    )
    assert reasons[130].startswith("Web Visits is not a number")
    assert sorted(p.name for p in out.iterdir()) == ["r.csv", "s.parquet"]
    # the same scores as the whole file in one frame
    whole = scorer.score(
        pd.read_csv(source, dtype=str) if suffix == ".csv" else pd.read_parquet(source)
    )
    kept = whole[whole["reject_reason"].isna()].reset_index(drop=True)
    streamed = pd.read_parquet(out / "s.parquet")
    assert streamed["Opportunity ID"].tolist() == kept["Opportunity ID"].tolist()
    np.testing.assert_array_equal(
        streamed["probability"].to_numpy(float), kept["probability"].to_numpy(float)
    )
    assert streamed["top_reasons"].tolist() == kept["top_reasons"].tolist()


@needs_data
@pytest.mark.realdata
def test_maven_scorer_scores_the_open_deals(tmp_path: Path) -> None:
    from lead_ml.scorer import load_scorer

    params = _example("maven_crm", tmp_path)
    run_crm_pipeline(params, tmp_path / "m")
    raw = pd.read_csv(SHARED / "maven_crm" / "sales_pipeline.csv", dtype=str)
    open_ids = raw.loc[raw["deal_stage"].isin(["Engaging", "Prospecting"])]
    leads = pd.read_csv(tmp_path / "m" / "open_leads.csv", dtype=str)
    assert set(leads["opportunity_id"]) == set(open_ids["opportunity_id"])
    out = load_scorer(tmp_path / "m" / "scorer").score(leads)
    assert out["reject_reason"].isna().all()
    assert out["probability"].between(0, 1).all()
    assert out["top_reasons"].str.len().gt(0).all()


def _activity_log(export: pd.DataFrame, seed: int = 9) -> pd.DataFrame:
    """Demos and emails in the first days of each deal; won deals saw more demos."""
    rng = np.random.default_rng(seed)
    won = export["Stage"].eq("Closed Won").to_numpy()
    rows = []
    for i, (deal, created) in enumerate(
        zip(export["Opportunity ID"], export["Created Date"], strict=True)
    ):
        demos = rng.poisson(2.0 if won[i] else 0.8)
        emails = rng.poisson(3)
        for day, kind in enumerate(["Demo"] * demos + ["Email"] * emails):
            stamp = pd.Timestamp(created) + pd.Timedelta(hours=6 * day + 1)
            rows.append((deal, stamp.strftime("%Y-%m-%d %H:%M"), kind))
    return pd.DataFrame(rows, columns=["Opp", "When", "Kind"])


@pytest.fixture(scope="module")
def with_activities(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A CRM-export run whose export has an activity log; the run and the log."""
    tmp_path = tmp_path_factory.mktemp("crm_log")
    log = tmp_path / "activities.csv"
    _activity_log(_export(3000)).to_csv(log, index=False)
    raw = _params(
        tmp_path,
        3000,
        forbidden=["Close Reason"],
        activities={
            "path": str(log),
            "key": "Opp",
            "timestamp": "When",
            "type": "Kind",
        },
    )
    raw["crm"]["audit"] = {"min_per_outcome": 100}
    out = tmp_path / "run"
    run_crm_pipeline(parse_params(raw), out)
    return out, log


def test_crm_scorer_counts_the_exports_activity_log(
    with_activities: tuple[Path, Path], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from lead_ml.byo import CrmScorer, score_crm_file
    from lead_ml.cli import app
    from lead_ml.scorer import load_scorer

    run, log = with_activities
    scorer = load_scorer(run / "scorer")
    assert isinstance(scorer, CrmScorer) and scorer.counts_activities
    leads = run / "open_leads.csv"
    raw_log = pd.read_csv(log, dtype=str)
    bad = pd.DataFrame(
        {"Opp": [None, "O-02999"], "When": ["2024-05-01", "soon"], "Kind": ["Demo"] * 2}
    )
    dirty = tmp_path / "log.csv"
    pd.concat([raw_log, bad], ignore_index=True).to_csv(dirty, index=False)
    done = score_crm_file(
        scorer,
        leads,
        tmp_path / "a.parquet",
        tmp_path / "a.csv",
        chunk_rows=70,
        activities_path=dirty,
    )
    assert done["activities_rejected"] == 2
    counted = pd.read_parquet(tmp_path / "a.parquet")
    in_memory = scorer.score(pd.read_csv(leads, dtype=str), raw_log)
    np.testing.assert_array_equal(
        counted["probability"].to_numpy(float),
        in_memory["probability"].to_numpy(float),
    )
    blind = score_crm_file(scorer, leads, tmp_path / "b.parquet", tmp_path / "b.csv")
    assert blind["scored"] == done["scored"]
    without = pd.read_parquet(tmp_path / "b.parquet")
    moved = counted["probability"].to_numpy(float) != without["probability"].to_numpy(
        float
    )
    assert moved.mean() > 0.5  # the log reaches the model
    # the CLI says when a model that counts activities is given none
    result = CliRunner().invoke(
        app,
        [
            "score",
            "--model",
            str(run / "scorer"),
            "--input",
            str(leads),
            "--output",
            str(tmp_path / "c.parquet"),
        ],
    )
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # rich wraps long lines
    assert "without --activities every lead is scored as having none" in said


def test_crm_scorer_without_a_log_refuses_one(exported: Path, tmp_path: Path) -> None:
    from lead_ml.byo import CrmScorer, score_crm_file
    from lead_ml.scorer import ScorerError, load_scorer

    scorer = load_scorer(exported / "scorer")
    assert isinstance(scorer, CrmScorer) and not scorer.counts_activities
    log = tmp_path / "log.csv"
    pd.DataFrame({"Opp": ["O-00001"], "When": ["2024-01-02"], "Kind": ["Demo"]}).to_csv(
        log, index=False
    )
    with pytest.raises(ScorerError, match="trained without an activity log"):
        score_crm_file(
            scorer,
            exported / "open_leads.csv",
            tmp_path / "s.parquet",
            tmp_path / "r.csv",
            activities_path=log,
        )
    assert not (tmp_path / "s.parquet").exists()


def test_crm_job_drift_counts_what_it_scored(exported: Path, tmp_path: Path) -> None:
    """The streamed job's PSI equals binning the scored leads' model matrix at once."""
    from lead_ml.byo import CrmScorer, score_crm_file
    from lead_ml.model import model_matrix
    from lead_ml.scorer import DriftMonitor, load_scorer

    scorer = load_scorer(exported / "scorer")
    assert isinstance(scorer, CrmScorer)
    leads = exported / "open_leads.csv"
    done = score_crm_file(
        scorer, leads, tmp_path / "s.parquet", tmp_path / "r.csv", chunk_rows=64
    )
    out, features = scorer.score_frame(pd.read_csv(leads, dtype=str))
    info = scorer.model.info
    monitor = DriftMonitor(scorer.spec["drift_reference"])
    monitor.add(
        model_matrix(features, info.categories, info.feature_names),
        out["probability"].dropna().to_numpy(float),
    )
    expected = {k: round(v, 4) for k, v in monitor.psi().items()}
    assert done["drift_psi"] == expected
    assert len(expected) == len(info.feature_names) + 1  # every feature and the score
