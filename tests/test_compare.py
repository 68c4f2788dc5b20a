"""`lead-ml compare` and `lead-ml promote` on a real MLflow registry in a tmp dir.

Two versions are trained and exported by the pipeline functions from a small
synthetic CRM: v1 a one-split stump, v2 a real model. Both are registered in a sqlite
store in a tmp folder, which is also the working directory (MLflow's artifacts).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pandas.errors import Pandas4Warning
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from lead_ml import compare
from lead_ml.cli import app
from lead_ml.compare import (
    BANT,
    DIFFERS,
    Candidate,
    CompareError,
    Comparison,
    Window,
    champion_changes,
    gate_checks,
    month_table,
    registry_client,
    resolve,
    run_compare,
)
from lead_ml.config import (
    CompareConfig,
    EvaluateConfig,
    Params,
    PromotionConfig,
    TrainConfig,
)
from lead_ml.model import time_split
from lead_ml.pipeline import (
    run_evaluate,
    run_export,
    run_featurize,
    run_train,
    run_validate,
)
from lead_ml.scorer import input_columns, load_scorer
from lead_ml.synthetic import SyntheticCRM, write_crm

pytestmark = pytest.mark.slow

with warnings.catch_warnings():
    # Importing mlflow.pyfunc warns about MLflow's own type hints (AnyType), which
    # filterwarnings=error would turn into a failure of the first export here.
    warnings.simplefilter("ignore", UserWarning)
    importlib.import_module("mlflow.pyfunc")
runner = CliRunner()

STUMP = TrainConfig(n_estimators=1, num_leaves=2, max_depth=1, early_stopping_rounds=1)
MODEL = TrainConfig(n_estimators=150, num_leaves=7, max_depth=3, min_child_samples=20)
PARAMS = Params(
    evaluate=EvaluateConfig(n_bootstrap=200),
    compare=CompareConfig(min_month_deals=20),
)


@dataclass(frozen=True)
class Project:
    """A tmp project: validated tables, features, params file, two registered models."""

    root: Path
    params_file: Path
    features: Path
    validated: Path
    scorers: dict[int, Path]
    runs: dict[int, str]

    def cli(self, *args: str) -> list[str]:
        """Arguments that point a command at this project's files."""
        return [
            *args,
            "--params",
            str(self.params_file),
            "--features",
            str(self.features),
            "--validated",
            str(self.validated),
        ]


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory, small_crm: SyntheticCRM
) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("compare")
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        # MLflow 3.17 writes the input example comparing a string index with a range,
        # which pandas 3.1 deprecates; the warning is MLflow's, not the pipeline's.
        warnings.filterwarnings("ignore", category=Pandas4Warning, module=r"mlflow\.")
        patch.chdir(root)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        write_crm(small_crm, root / "raw", "parquet")
        run_validate(root / "raw", root / "validated", root / "rejects.csv")
        features = root / "features.parquet"
        run_featurize(PARAMS, root / "validated", features)
        scorers, runs = {}, {}
        for version, train in ((1, STUMP), (2, MODEL)):
            params = PARAMS.model_copy(update={"train": train})
            model = root / f"model{version}"
            runs[version] = run_train(params, features, model)["run_id"]
            run_evaluate(params, features, model, root / "metrics.json", root / "plots")
            scorers[version] = root / f"scorer{version}"
            record = run_export(
                params,
                features,
                model,
                root / "validated",
                scorers[version],
                root / "export.json",
            )
            assert record["registered_version"] == version
        params_file = root / "params.yaml"
        params_file.write_text(yaml.safe_dump(PARAMS.model_dump(mode="json")))
        yield Project(root, params_file, features, root / "validated", scorers, runs)


def _champion() -> int | None:
    return compare.champion_version(registry_client(), PARAMS)


def _set_champion(version: int | None) -> None:
    client = registry_client()
    name, alias = PARAMS.tracking.registered_model, PARAMS.tracking.champion_alias
    if version is None:
        if _champion() is not None:
            client.delete_registered_model_alias(name, alias)
    else:
        client.set_registered_model_alias(name, alias, str(version))


def _compare(
    project: Project,
    *refs: str,
    start: date | None = None,
    end: date | None = None,
    capacity: int | None = None,
) -> Comparison:
    return run_compare(
        PARAMS, list(refs), project.features, project.validated, start, end, capacity
    )


def _rows(comparison: Comparison, measure: str, approach: str) -> list[compare.Row]:
    return [
        r for r in comparison.rows if r.measure == measure and r.approach == approach
    ]


# --- the comparison -----------------------------------------------------------------


def test_only_params_that_differ_are_shown(project: Project) -> None:
    comparison = _compare(project, "v1", "v2")
    shown = {r.measure for r in comparison.rows if r.section == DIFFERS}
    assert {"param train.n_estimators", "param train.num_leaves", "booster"} <= shown
    assert "param seed" not in shown
    assert "param split.test_fraction" not in shown
    assert "data_version" not in shown  # same features file
    for measure in shown:
        values = {r.value for r in comparison.rows if r.measure == measure}
        assert len(values) == 2, measure


def test_metrics_carry_95_percent_intervals(project: Project) -> None:
    comparison = _compare(project, "v1", "v2")
    for approach in ("v1", "v2", BANT):
        (auc,) = _rows(comparison, "ROC AUC", approach)
        assert auc.low is not None and auc.high is not None
        assert auc.low <= float(auc.value) <= auc.high and auc.low < auc.high
        assert "[" in auc.text
    (gain,) = _rows(comparison, "ROC AUC gain vs v1", "v2")
    assert gain.low is not None and gain.low > 0, "the stump should clearly lose"


def test_rescoring_reproduces_the_evaluate_stage(project: Project) -> None:
    # v2 was evaluated on the same test split: re-scoring it from raw lead rows
    # through the registry must give the AUC its run logged.
    client = registry_client()
    logged = client.get_run(project.runs[2]).data.metrics["model.roc_auc"]
    (auc,) = _rows(_compare(project, "v2"), "ROC AUC", "v2")
    assert auc.value == pytest.approx(logged, abs=1e-12)


def _window_by_hand(project: Project) -> pd.DataFrame:
    """Lead rows of the test split with outcome and amount, built without compare."""
    test = time_split(pd.read_parquet(project.features), PARAMS.split).test
    deals = pd.read_parquet(project.validated / "deals.parquet")
    accounts = pd.read_parquet(project.validated / "accounts.parquet")
    rows = test[["deal_id"]].merge(deals, on="deal_id").merge(accounts, on="account_id")
    return rows


def test_capacity_wins_and_pipeline_value_match_a_hand_count(
    project: Project,
) -> None:
    leads = _window_by_hand(project)
    activities = pd.read_parquet(project.validated / "activities.parquet")
    scored = load_scorer(project.scorers[2]).score(
        leads[list(input_columns())], activities, explain_reasons=False
    )
    probability = scored["probability"].to_numpy()
    won = (leads["outcome"] == "won").to_numpy()
    value = np.where(won, leads["amount"].to_numpy(), 0.0)
    k = 60
    order = np.argsort(-probability)
    assert probability[order[k - 1]] > probability[order[k]], "no tie at the cut"
    comparison = _compare(project, "v1", "v2", capacity=k)
    assert comparison.wins["v2"] == won[order[:k]].sum()
    (pipeline,) = [
        r
        for r in comparison.rows
        if r.measure == "pipeline value" and r.approach == "v2"
    ]
    assert pipeline.value == pytest.approx(value[order[:k]].sum())


def test_bant_at_default_capacity_takes_exactly_the_qualified_leads(
    project: Project,
) -> None:
    leads = _window_by_hand(project)
    passed = [
        (leads[letter] == "yes").to_numpy(bool)
        for letter in ("bant_budget", "bant_authority", "bant_need")
    ]
    passed.append(leads["bant_timeline"].isin(["0-3 months", "3-6 months"]).to_numpy())
    qualified = np.sum(passed, axis=0) >= 3
    comparison = _compare(project, "v2")
    assert comparison.k == qualified.sum()
    won = (leads["outcome"] == "won").to_numpy(bool)
    assert comparison.wins[BANT] == won[qualified].sum()


def test_month_stability_is_per_calendar_month(project: Project) -> None:
    comparison = _compare(project, "v1", "v2")
    months = comparison.months
    leads = _window_by_hand(project)
    month = leads["created_at"].dt.strftime("%Y-%m").to_numpy()
    assert months["month"].tolist() == sorted(set(month))
    assert months["deals"].sum() == len(leads)
    scored = load_scorer(project.scorers[2]).score(
        leads[list(input_columns())],
        pd.read_parquet(project.validated / "activities.parquet"),
        explain_reasons=False,
    )
    busiest = months.iloc[int(months["deals"].to_numpy().argmax())]
    rows = month == busiest["month"]
    won = (leads["outcome"] == "won").to_numpy()[rows]
    expected = roc_auc_score(won, scored["probability"].to_numpy()[rows])
    assert busiest["v2"] == pytest.approx(expected)
    judged = months["deals"] >= PARAMS.compare.min_month_deals
    assert months["judged"].tolist() == (judged & (months["won"] > 0)).tolist()
    (ahead,) = _rows(comparison, "judged months ahead", "v2 - v1")
    wins = (months["v2"] > months["v1"])[months["judged"]].sum()
    assert ahead.value == f"{wins} of {months['judged'].sum()}"


def test_outputs_are_markdown_and_csv(project: Project) -> None:
    out = project.root / "out"
    result = runner.invoke(
        app, project.cli("compare", "v1", "v2", "--out-dir", str(out))
    )
    assert result.exit_code == 0, result.output
    assert "Business view at capacity" in result.output
    markdown = (out / "compare.md").read_text()
    for heading in ("## What differs", "## Metrics", "## Conversion by band"):
        assert heading in markdown
    assert "| ROC AUC |" in markdown
    tidy = pd.read_csv(out / "compare.csv")
    assert {"section", "measure", "approach", "value", "ci_low", "ci_high"} <= set(
        tidy.columns
    )
    auc = tidy[(tidy["measure"] == "ROC AUC") & (tidy["approach"] == BANT)]
    assert auc["ci_low"].notna().all()


def test_a_window_given_by_dates(project: Project) -> None:
    comparison = _compare(project, "v2", start=date(2024, 1, 1), end=date(2024, 6, 30))
    created = comparison.window.leads["created_at"]
    assert created.min() >= pd.Timestamp("2024-01-01")
    assert created.max() < pd.Timestamp("2024-07-01")
    assert "--start 2024-01-01" in comparison.window.describe()
    with pytest.raises(CompareError, match="both won and lost"):
        _compare(project, "v2", start=date(2031, 1, 1))


# --- finding models -----------------------------------------------------------------


def test_versions_run_ids_and_aliases_resolve(project: Project) -> None:
    client = registry_client()
    _set_champion(1)
    assert resolve(client, PARAMS, "v1") == Candidate(1, project.runs[1], "champion")
    assert resolve(client, PARAMS, "2").role == "latest"
    assert resolve(client, PARAMS, "latest").version == 2
    assert resolve(client, PARAMS, "@champion").version == 1
    assert resolve(client, PARAMS, project.runs[2]).version == 2


def test_a_dvc_experiment_name_resolves_to_its_export(
    project: Project, tmp_path: Path
) -> None:
    def run(*args: str) -> None:
        subprocess.run(args, cwd=tmp_path, check=True, capture_output=True)

    run("git", "init", "-q")
    run("git", "config", "user.email", "ci@example.com")
    run("git", "config", "user.name", "ci")
    run(sys.executable, "-m", "dvc", "init", "-q")
    run(sys.executable, "-m", "dvc", "config", "core.analytics", "false")
    record = tmp_path / "reports" / "export.json"
    record.parent.mkdir()
    record.write_text('{"registered_version": 1}\n')
    run("git", "add", "-A")
    run("git", "commit", "-qm", "baseline")
    record.write_text('{"registered_version": 2}\n')
    run(sys.executable, "-m", "dvc", "exp", "save", "-n", "more-trees")
    found = resolve(registry_client(), PARAMS, "more-trees", repo=tmp_path)
    assert found.version == 2


def test_unknown_version_is_a_clear_error(project: Project) -> None:
    result = runner.invoke(app, project.cli("compare", "v9"))
    assert result.exit_code == 2
    assert "no version 9" in result.output and "v1, v2" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, project.cli("compare", "no-such-experiment"))
    assert result.exit_code == 2
    assert "DVC experiment name" in result.output
    result = runner.invoke(app, project.cli("promote", "--to", "7"))
    assert result.exit_code == 2 and "no version 7" in result.output


# --- the gate -----------------------------------------------------------------------


def test_without_a_champion_compare_takes_the_latest_and_bant(
    project: Project,
) -> None:
    _set_champion(None)
    comparison = _compare(project)
    assert [c.label for c in comparison.candidates] == ["v2"]
    assert comparison.reference is None
    assert champion_changes(PARAMS, project.runs[2]) is None


def test_first_promotion_must_beat_bant(project: Project) -> None:
    _set_champion(None)
    result = runner.invoke(app, project.cli("promote", "v2"))
    assert result.exit_code == 0, result.output
    assert "ROC AUC gain over BANT" in result.output
    assert "FAIL" not in result.output
    assert _champion() == 2
    tags = registry_client().get_model_version("lead-ml-scorer", "2").tags
    assert tags["lead_ml.promotion"].startswith("gate passed vs BANT")


def test_a_weaker_challenger_fails_the_gate_and_the_champion_stays(
    project: Project,
) -> None:
    _set_champion(2)
    result = runner.invoke(app, project.cli("promote", "v1"))
    assert result.exit_code == 1
    assert "FAIL" in result.output and "gate failed" in result.output
    assert "stays v2" in result.output
    assert _champion() == 2


def test_a_stronger_challenger_passes_and_rollback_needs_no_gate(
    project: Project,
) -> None:
    _set_champion(1)
    result = runner.invoke(app, project.cli("promote"))  # default: the latest, v2
    assert result.exit_code == 0, result.output
    assert "promoted" in result.output and _champion() == 2
    result = runner.invoke(app, project.cli("promote", "--to", "v1"))
    assert result.exit_code == 0, result.output
    assert "without the promotion gate" in result.output
    assert _champion() == 1
    result = runner.invoke(app, project.cli("promote", "v1"))
    assert result.exit_code == 0 and "already the champion" in result.output


def test_champion_changes_lists_params_and_metric_deltas(project: Project) -> None:
    _set_champion(1)
    changes = champion_changes(PARAMS, project.runs[2])
    assert changes is not None
    assert changes["champion_version"] == 1
    assert changes["params"]["train.n_estimators"] == {
        "champion": "1",
        "candidate": "150",
    }
    assert "seed" not in changes["params"]
    auc = changes["metrics"]["model.roc_auc"]
    assert auc["delta"] == pytest.approx(auc["candidate"] - auc["champion"])
    assert auc["delta"] > 0


def _window(months: list[str], won: list[int]) -> Window:
    created = pd.to_datetime([f"{m}-15" for m in months])
    return Window(
        leads=pd.DataFrame({"created_at": created}),
        activities=pd.DataFrame(),
        won=np.array(won),
        amount=np.ones(len(won)),
        month=np.array(months),
        bant_points=np.zeros(len(won)),
        bant_qualified=np.zeros(len(won), dtype=bool),
        source="test",
    )


def test_a_month_where_the_challenger_trails_fails_the_gate() -> None:
    # Two months, four deals each: the challenger ranks January perfectly and
    # February backwards; the champion ranks both months perfectly.
    months = ["2025-01"] * 4 + ["2025-02"] * 4
    won = [0, 1, 0, 1, 0, 1, 0, 1]
    champion = np.array([0.1, 0.9, 0.2, 0.8, 0.1, 0.9, 0.2, 0.8])
    challenger = np.array([0.1, 0.9, 0.2, 0.8, 0.9, 0.1, 0.8, 0.2])
    window = _window(months, won)
    scores = {"v1": champion, "v2": challenger, BANT: window.bant_points}
    table = month_table(window, scores, min_deals=4)
    assert table["v2"].tolist() == [1.0, 0.0]
    comparison = Comparison(
        [Candidate(1, "a"), Candidate(2, "b")], "v1", window, k=2, months=table
    )
    comparison.deltas[("v2", "v1")] = {
        "delta_roc_auc": 0.1,
        "delta_roc_auc_ci95": [0.05, 0.15],
    }
    comparison.wins.update({"v1": 2, "v2": 2})
    checks = gate_checks(comparison, "v2", PromotionConfig())
    assert [c.passed for c in checks] == [True, False, True]
    assert "worst 2025-02" in checks[1].numbers
    too_small = month_table(window, scores, min_deals=5)
    comparison.months = too_small
    assert not gate_checks(comparison, "v2", PromotionConfig())[1].passed
