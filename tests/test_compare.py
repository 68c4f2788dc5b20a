"""`lead-ml compare` and `lead-ml promote` on a real MLflow registry, every source.

Each source's finished project is copied to a tmp folder with an MLflow store of its
own, where two versions are trained, evaluated and exported by the pipeline's stages:
v1 a one-split stump, v2 the project's model (its params.yaml). Commands run inside
the copy (its working directory), so their default paths are the project's.

On the synthetic CRM and X Education the model clearly beats the stump and the BANT
rule (ROC AUC gain over BANT +0.25 [+0.20, +0.32] and +0.21 [+0.19, +0.23]); the Maven
opportunities carry almost no signal (model 0.50 [0.47, 0.53], stump 0.52, BANT
0.49), so there the gate must refuse every promotion. X Education has no created
dates (its leads are ordered by Lead Number): no months, and no --start/--end.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from projects import (
    FEATURES,
    VALIDATED,
    Project,
    Versions,
    project_environment,
    two_versions,
)
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from lead_ml import compare, report
from lead_ml.baseline import BantRule
from lead_ml.cli import app
from lead_ml.compare import (
    BANT,
    DIFFERS,
    MONTHS,
    NO_MONTHS,
    Candidate,
    CompareError,
    Comparison,
    Window,
    champion_changes,
    compare_candidates,
    gate_checks,
    month_table,
    registry_client,
    resolve,
    run_compare,
    scoring_window,
)
from lead_ml.config import CompareConfig, Params, PromotionConfig
from lead_ml.scorer import load_scorer
from lead_ml.vocab import CompareError as VocabCompareError

pytestmark = pytest.mark.slow
runner = CliRunner()

#: Whether the model clearly beats the stump and BANT on the source (module doc).
SIGNAL = {"synthetic": True, "x_education": True, "maven": False}


@pytest.fixture
def two(
    project: Project, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Versions]:
    """Each source's two-version project, its folder the working directory."""
    versions = two_versions(project, tmp_path_factory)
    with project_environment(versions.project.root):
        yield versions


@pytest.fixture
def synthetic_two(
    synthetic_project: Project, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Versions]:
    """The synthetic CRM's two-version project (the one source with a log)."""
    versions = two_versions(synthetic_project, tmp_path_factory)
    with project_environment(versions.project.root):
        yield versions


def _champion(params: Params) -> int | None:
    return compare.champion_version(registry_client(), params)


def _set_champion(params: Params, version: int | None) -> None:
    client = registry_client()
    name, alias = params.tracking.registered_model, params.tracking.champion_alias
    if version is None:
        if _champion(params) is not None:
            client.delete_registered_model_alias(name, alias)
    else:
        client.set_registered_model_alias(name, alias, str(version))


def _compare(
    two: Versions,
    *refs: str,
    start: date | None = None,
    end: date | None = None,
    capacity: int | None = None,
) -> Comparison:
    return run_compare(
        two.params, list(refs), FEATURES, VALIDATED, start, end, capacity
    )


_BOTH: dict[str, Comparison] = {}


def _both(two: Versions) -> Comparison:
    """v1 against v2 (and BANT) on the test split, compared once per source: the
    tests reading it only read it, and neither version changes."""
    if two.name not in _BOTH:
        _BOTH[two.name] = _compare(two, "v1", "v2")
    return _BOTH[two.name]


def _rows(comparison: Comparison, measure: str, approach: str) -> list[compare.Row]:
    return [
        r for r in comparison.rows if r.measure == measure and r.approach == approach
    ]


# --- the window -----------------------------------------------------------------


def test_compare_error_is_the_shared_one() -> None:
    assert CompareError is VocabCompareError


def test_every_version_is_scored_on_the_test_split(two: Versions) -> None:
    comparison = _both(two)
    window = comparison.window
    id_column = two.params.source.tables.deals.id
    expected = two.window_deals()
    assert (
        window.leads[id_column].astype(str).tolist()
        == expected["deal_id"].astype(str).tolist()
    )
    assert window.won.tolist() == expected["won"].astype(int).tolist()
    # Lead rows carry the source's own column names, as the export does.
    assert "deal_id" not in window.leads.columns or id_column == "deal_id"
    assert (window.activities is None) == (two.project.activities() is None)
    if window.activities is not None:
        log = two.params.source.tables.activities
        assert log is not None
        assert set(window.activities[log.key]) <= set(expected["deal_id"])
    assert "the test split" in window.describe()


def test_rescoring_reproduces_the_evaluate_stage(two: Versions) -> None:
    # Both versions were evaluated on this test split: re-scoring them from lead
    # rows through the registry gives the numbers their runs logged, down to the
    # bootstrap interval of the gain over BANT (same rows, order and seed).
    client = registry_client()
    for metrics in ("reports/stump/metrics.json", "reports/metrics.json"):
        assert json.loads(Path(metrics).read_text())["evaluation"] == "holdout"
    comparison = _both(two)
    for version in (1, 2):
        logged = client.get_run(two.runs[version]).data.metrics
        assert logged["n_test"] == len(comparison.window.won)
        (auc,) = _rows(comparison, "ROC AUC", f"v{version}")
        assert auc.value == pytest.approx(logged["model.roc_auc"], abs=1e-12)
        (gain,) = _rows(comparison, "ROC AUC gain vs BANT", f"v{version}")
        assert gain.value == pytest.approx(logged["delta_roc_auc"], abs=1e-12)
        assert gain.low == pytest.approx(logged["delta_roc_auc_ci95_low"], abs=1e-12)
        assert gain.high == pytest.approx(logged["delta_roc_auc_ci95_high"], abs=1e-12)
        assert comparison.wins[f"v{version}"] == logged["capacity.model_wins"]
    assert comparison.k == logged["capacity.k"]
    assert comparison.wins[BANT] == logged["capacity.bant_wins"]


def test_only_params_that_differ_are_shown(two: Versions) -> None:
    comparison = _both(two)
    shown = {r.measure for r in comparison.rows if r.section == DIFFERS}
    assert {"param train.n_estimators", "param train.num_leaves", "booster"} <= shown
    assert "param seed" not in shown
    assert "param split.test_fraction" not in shown
    assert "data_version" not in shown  # the same features file
    for measure in shown:
        values = {r.value for r in comparison.rows if r.measure == measure}
        assert len(values) == 2, measure


def test_metrics_carry_95_percent_intervals(two: Versions) -> None:
    comparison = _both(two)
    for approach in ("v1", "v2", BANT):
        (auc,) = _rows(comparison, "ROC AUC", approach)
        assert auc.low is not None and auc.high is not None
        assert auc.low <= float(auc.value) <= auc.high and auc.low < auc.high
        assert "[" in auc.text
    (gain,) = _rows(comparison, "ROC AUC gain vs v1", "v2")
    assert gain.low is not None and gain.high is not None
    if SIGNAL[two.name]:
        assert gain.low > 0, "the stump should clearly lose"
    else:
        assert gain.low < 0 < gain.high, "no signal: no clear winner either way"
    # Wins at capacity: the gain is the difference of the counts shown, with its CI.
    for other in ("v1", BANT):
        (wins,) = _rows(comparison, f"wins gain vs {other}", "v2")
        assert wins.value == comparison.wins["v2"] - comparison.wins[other]
        assert wins.low is not None and wins.high is not None
        assert wins.low <= float(wins.value) <= wins.high
        assert wins.text.startswith(f"{int(wins.value):+,} [")


def _cut_without_tie(probability: np.ndarray) -> tuple[int, np.ndarray]:
    """A capacity near a tenth of the leads where the k-th and (k+1)-th differ."""
    order = np.argsort(-probability, kind="stable")
    k = max(1, len(probability) // 10)
    while probability[order[k - 1]] == probability[order[k]]:
        k += 1
    return k, order


def test_capacity_wins_and_pipeline_value_match_a_hand_count(two: Versions) -> None:
    deals = two.window_deals()
    probability = two.hand_scores(2)
    won = deals["won"].to_numpy(int)
    k, order = _cut_without_tie(probability)
    # The capacity of params.yaml (evaluate.capacity), as the evaluate stage reads it.
    evaluate = two.params.evaluate.model_copy(update={"capacity": k})
    params = two.params.model_copy(update={"evaluate": evaluate})
    comparison = run_compare(params, ["v1", "v2"], FEATURES, VALIDATED)
    assert comparison.k == k
    assert comparison.wins["v2"] == won[order[:k]].sum()
    pipeline = [r for r in comparison.rows if r.measure == "pipeline value"]
    if two.params.source.tables.deals.amount is None:
        assert pipeline == [], "no amount in the source: no pipeline value"
    else:
        (value,) = [r for r in pipeline if r.approach == "v2"]
        amount = np.nan_to_num(deals["amount"].to_numpy(float))
        assert value.value == pytest.approx((amount * won)[order[:k]].sum())


def test_bant_at_default_capacity_takes_exactly_the_qualified_leads(
    two: Versions,
) -> None:
    leads = two.window_leads()
    assert two.params.bant is not None
    qualified = BantRule.from_config(two.params.bant).fit(leads).predict(leads) == 1
    comparison = _compare(two, "v2")
    assert two.params.evaluate.capacity is None
    assert comparison.k == qualified.sum()
    won = two.window_deals()["won"].to_numpy(int)
    assert comparison.wins[BANT] == won[qualified].sum()
    assert comparison.window.bant_qualified.tolist() == qualified.tolist()


def test_month_stability_is_per_calendar_month(two: Versions) -> None:
    if two.params.source.tables.deals.created is None:
        # No created dates: no months at all, and the section says why.
        comparison = _both(two)
        section = [r for r in comparison.rows if r.section == MONTHS]
        assert comparison.months.empty and comparison.window.month is None
        assert [r.value for r in section] == [NO_MONTHS]
        return
    created = two.window_deals()["created_at"]
    month = created.dt.strftime("%Y-%m").to_numpy()
    # Judge the busier half of the months, so that some are judged and some not.
    counts = pd.Series(month).value_counts().sort_values()
    least = int(counts.iloc[len(counts) // 2])
    params = two.params.model_copy(
        update={"compare": CompareConfig(min_month_deals=least)}
    )
    comparison = run_compare(params, ["v1", "v2"], FEATURES, VALIDATED)
    months = comparison.months
    assert months["month"].tolist() == sorted(set(month))
    assert months["deals"].sum() == len(created)
    probability = two.hand_scores(2)
    busiest = months.iloc[int(months["deals"].to_numpy().argmax())]
    rows = month == busiest["month"]
    won = two.window_deals()["won"].to_numpy(int)[rows]
    assert busiest["v2"] == pytest.approx(roc_auc_score(won, probability[rows]))
    judged = months["deals"] >= least
    both = (months["won"] > 0) & (months["won"] < months["deals"])
    assert months["judged"].tolist() == (judged & both).tolist()
    assert 0 < months["judged"].sum() < len(months)
    (ahead,) = _rows(comparison, "judged months ahead", "v2 - v1")
    wins = (months["v2"] > months["v1"])[months["judged"]].sum()
    assert ahead.value == f"{wins} of {months['judged'].sum()}"


def test_outputs_are_markdown_and_csv(two: Versions) -> None:
    out = two.project.root / "out"
    args = ["compare", "v1", "v2", "--capacity", "25", "--out-dir", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Business view at capacity" in result.output
    markdown = (out / "compare.md").read_text()
    for heading in (
        "## What differs",
        "## Business view at capacity: top 25 of",
        "## Metrics",
        "## Conversion by band",
        f"## {MONTHS}",
    ):
        assert heading in markdown
    assert "| ROC AUC |" in markdown
    tidy = pd.read_csv(out / "compare.csv")
    assert {"section", "measure", "approach", "value", "ci_low", "ci_high"} <= set(
        tidy.columns
    )
    auc = tidy[(tidy["measure"] == "ROC AUC") & (tidy["approach"] == BANT)]
    assert len(auc) == 1 and auc["ci_low"].notna().all()


def test_a_window_given_by_dates(two: Versions) -> None:
    created = two.params.source.tables.deals.created
    if created is None:
        result = runner.invoke(app, ["compare", "v2", "--start", "2024-01-01"])
        assert result.exit_code == 2, result.output
        assert "no created dates" in result.output
        assert "the window is the test split" in result.output
        assert "Traceback" not in result.output
        return
    days = two.window_deals()["created_at"]
    start = days.min().date()
    end = start + timedelta(days=60)
    comparison = _compare(two, "v2", start=start, end=end)
    chosen = pd.to_datetime(comparison.window.leads[created])
    assert chosen.min() >= pd.Timestamp(start)
    assert chosen.max() < pd.Timestamp(end + timedelta(days=1))
    assert chosen.is_monotonic_increasing
    assert f"--start {start}" in comparison.window.describe()
    later = days.max().date() + timedelta(days=400)
    with pytest.raises(CompareError, match="both won and lost"):
        _compare(two, "v2", start=later)


def test_a_version_whose_columns_the_window_lacks_is_refused(two: Versions) -> None:
    params, client = two.params, registry_client()
    window = scoring_window(params, FEATURES, VALIDATED)
    scorer = load_scorer(two.scorers[2])
    roles = {scorer.id_column, params.source.tables.deals.created}
    column = next(c for c in scorer.contract.columns if c not in roles)
    lacking = replace(window, leads=window.leads.drop(columns=[column]))
    with pytest.raises(
        CompareError, match=rf"v2 reads column\(s\) {re.escape(column)}"
    ):
        compare_candidates(client, params, [resolve(client, params, "v2")], lacking)


def test_a_version_counting_activities_needs_the_log(synthetic_two: Versions) -> None:
    params, client = synthetic_two.params, registry_client()
    window = scoring_window(params, FEATURES, VALIDATED)
    assert window.activities is not None
    no_log = replace(window, activities=None)
    with pytest.raises(CompareError, match="v2 counts activities"):
        compare_candidates(client, params, [resolve(client, params, "v2")], no_log)


def test_versions_load_from_this_store_whatever_mlflow_last_used(
    synthetic_two: Versions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process that logged to another store (a second project, a notebook) keeps
    # MLflow's own URI pointing there even once MLFLOW_TRACKING_URI names this one;
    # the registry client's store must still decide where a version is read from.
    import mlflow

    ours = os.environ["MLFLOW_TRACKING_URI"]
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'other.db'}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", ours)
    comparison = _compare(synthetic_two, "v2")
    assert [c.run_id for c in comparison.candidates] == [synthetic_two.runs[2]]


# --- finding models -------------------------------------------------------------


def test_versions_run_ids_and_aliases_resolve(two: Versions) -> None:
    params, client = two.params, registry_client()
    _set_champion(params, 1)
    assert resolve(client, params, "v1") == Candidate(1, two.runs[1], "champion")
    assert resolve(client, params, "2").role == "latest"
    assert resolve(client, params, "latest").version == 2
    assert resolve(client, params, "@champion").version == 1
    assert resolve(client, params, "champion").version == 1
    assert resolve(client, params, two.runs[2]).version == 2


def test_a_dvc_experiment_name_resolves_to_its_export(
    synthetic_two: Versions, tmp_path: Path
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
    # The records the two exports wrote: each names its scorer's content version.
    exports = synthetic_two.project.root / "reports"
    record.write_text((exports / "stump" / "export.json").read_text())
    run("git", "add", "-A")
    run("git", "commit", "-qm", "baseline")
    record.write_text((exports / "export.json").read_text())
    run(sys.executable, "-m", "dvc", "exp", "save", "-n", "more-trees")
    params = synthetic_two.params
    found = resolve(registry_client(), params, "more-trees", repo=tmp_path)
    assert found.version == 2
    with pytest.raises(CompareError, match="registered versions: v1, v2"):
        resolve(registry_client(), params, "fewer-trees", repo=tmp_path)


def test_unknown_version_is_a_clear_error(two: Versions) -> None:
    result = runner.invoke(app, ["compare", "v9"])
    assert result.exit_code == 2
    assert "no version 9" in result.output and "v1, v2" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["compare", "no-such-experiment"])
    assert result.exit_code == 2
    assert "DVC experiment name" in result.output
    result = runner.invoke(app, ["compare", "v1", "1"])
    assert result.exit_code == 2 and "name each model once" in result.output
    result = runner.invoke(app, ["promote", "--to", "7"])
    assert result.exit_code == 2 and "no version 7" in result.output


# --- the gate -------------------------------------------------------------------


def test_without_a_champion_compare_takes_the_latest_and_bant(two: Versions) -> None:
    _set_champion(two.params, None)
    comparison = _compare(two)
    assert [c.label for c in comparison.candidates] == ["v2"]
    assert comparison.reference is None
    assert champion_changes(two.params, two.runs[2]) is None


def test_first_promotion_must_beat_bant(two: Versions) -> None:
    _set_champion(two.params, None)
    result = runner.invoke(app, ["promote", "v2"])
    assert "ROC AUC gain over BANT" in result.output
    if not two.params.source.tables.deals.created:
        assert "no dated months to judge" in result.output
    if SIGNAL[two.name]:
        assert result.exit_code == 0, result.output
        assert "FAIL" not in result.output
        assert _champion(two.params) == 2
        tags = registry_client().get_model_version("lead-ml-scorer", "2").tags
        assert tags["lead_ml.promotion"].startswith("gate passed vs BANT on ")
        assert "closed deals" in tags["lead_ml.promotion"]
    else:
        assert result.exit_code == 1, result.output
        assert "FAIL" in result.output and "stays none" in result.output
        assert _champion(two.params) is None


def test_a_weaker_challenger_fails_the_gate_and_the_champion_stays(
    two: Versions,
) -> None:
    _set_champion(two.params, 2)
    result = runner.invoke(app, ["promote", "v1"])
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "gate failed" in result.output
    assert "stays v2" in result.output
    assert _champion(two.params) == 2


def test_a_stronger_challenger_passes_and_rollback_needs_no_gate(
    two: Versions,
) -> None:
    _set_champion(two.params, 1)
    result = runner.invoke(app, ["promote"])  # default: the latest, v2
    if SIGNAL[two.name]:
        assert result.exit_code == 0, result.output
        assert "promoted" in result.output and _champion(two.params) == 2
    else:  # no clear winner: the gate holds on to the champion
        assert result.exit_code == 1, result.output
        assert _champion(two.params) == 1
        _set_champion(two.params, 2)
    result = runner.invoke(app, ["promote", "--to", "v1"])
    assert result.exit_code == 0, result.output
    assert "without the promotion gate" in result.output
    assert _champion(two.params) == 1
    tags = registry_client().get_model_version("lead-ml-scorer", "1").tags
    assert tags["lead_ml.promotion"] == "set by --to from v2, no gate"
    result = runner.invoke(app, ["promote", "v1"])
    assert result.exit_code == 0 and "already the champion" in result.output
    result = runner.invoke(app, ["promote", "v2", "--to", "v1"])
    assert result.exit_code == 2 and "not both" in result.output


def test_champion_changes_lists_params_and_metric_deltas(two: Versions) -> None:
    _set_champion(two.params, 1)
    changes = champion_changes(two.params, two.runs[2])
    assert changes is not None
    assert changes["champion_version"] == 1
    assert changes["champion_run_id"] == two.runs[1]
    assert changes["params"]["train.n_estimators"] == {
        "champion": "1",
        "candidate": str(two.params.train.n_estimators),
    }
    assert "seed" not in changes["params"]
    auc = changes["metrics"]["model.roc_auc"]
    assert auc["delta"] == pytest.approx(auc["candidate"] - auc["champion"])
    if SIGNAL[two.name]:
        assert auc["delta"] > 0
    with pytest.raises(CompareError, match="not found"):
        champion_changes(two.params, "0" * 32)


def test_the_reports_verdict_is_compares_paired_result(two: Versions) -> None:
    """The report scores the champion on its own test window: the same wins, gains
    and CIs as `lead-ml compare champion candidate`."""
    _set_champion(two.params, 1)
    client = registry_client()
    name = two.params.tracking.registered_model
    candidate = compare.load_version(client, name, 2)
    names = {"label": "v2"}
    changes = report.champion_changes(two.params, two.runs[2], names)
    assert changes is not None and not changes["is_champion"]
    paths = report.ReportPaths(features=FEATURES, validated=VALIDATED)
    paired = report.versus_champion(two.params, changes, candidate, paths)

    comparison = _both(two)
    (wins,) = _rows(comparison, "wins gain vs v1", "v2")
    (auc,) = _rows(comparison, "ROC AUC gain vs v1", "v2")
    assert paired["k"] == comparison.k
    assert paired["wins"] == {
        "challenger": comparison.wins["v2"],
        "reference": comparison.wins["v1"],
    }
    assert paired["delta_wins"] == wins.value
    assert paired["delta_wins_ci95"] == [wins.low, wins.high]
    assert paired["delta_roc_auc"] == pytest.approx(auc.value)
    assert paired["delta_roc_auc_ci95"] == pytest.approx([auc.low, auc.high])
    changes["paired"] = paired
    line = report.champion_section(changes, two.params.tracking.champion_alias)
    assert f"in the top {comparison.k:,} than v1" in line
    assert f"95% CI {wins.low:+,.0f} to {wins.high:+,.0f}" in line
    assert "lead-ml compare" not in line, "paired already: no pointer elsewhere"


def _window(months: list[str] | None, won: list[int]) -> Window:
    return Window(
        leads=pd.DataFrame(index=range(len(won))),
        activities=None,
        won=np.array(won),
        amount=None,
        month=None if months is None else np.array(months),
        bant_points=np.zeros(len(won)),
        bant_qualified=np.zeros(len(won), dtype=bool),
        source="test",
    )


def _gate(window: Window, months: pd.DataFrame) -> list[bool]:
    comparison = Comparison(
        [Candidate(1, "a"), Candidate(2, "b")], "v1", window, k=2, months=months
    )
    comparison.deltas[("v2", "v1")] = {
        "delta_roc_auc": 0.1,
        "delta_roc_auc_ci95": [0.05, 0.15],
    }
    comparison.wins.update({"v1": 2, "v2": 2})
    return [c.passed for c in gate_checks(comparison, "v2", PromotionConfig())]


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
    assert _gate(window, table) == [True, False, True]
    # Too few deals in every month: nothing judged, so stability is not shown.
    assert _gate(window, month_table(window, scores, min_deals=5))[1] is False


def test_without_dates_the_month_condition_passes_with_a_note() -> None:
    window = _window(None, [0, 1, 0, 1])
    scores = {"v1": np.arange(4.0), "v2": np.arange(4.0), BANT: window.bant_points}
    table = month_table(window, scores, min_deals=1)
    assert table.empty and "v2" in table.columns
    assert _gate(window, table) == [True, True, True]
    comparison = Comparison([Candidate(2, "b")], None, window, k=2, months=table)
    comparison.deltas[("v2", BANT)] = {
        "delta_roc_auc": 0.1,
        "delta_roc_auc_ci95": [0.05, 0.15],
    }
    comparison.wins.update({"v2": 2, BANT: 1})
    (_, month, _) = gate_checks(comparison, "v2", PromotionConfig())
    assert month.passed and month.numbers.startswith("no dated months to judge")
