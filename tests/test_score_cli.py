"""`lead-ml score` on every source: a summary that reconciles, a rejects file, a drift
warning, --no-explain, activities refused where the model counts none, and one-line
errors naming what is wrong."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from projects import Project
from rich.console import Console
from typer.testing import CliRunner

from lead_ml import cli
from lead_ml.batch import DRIFT_MIN_ROWS, score_file
from lead_ml.cli import app
from lead_ml.scorer import Scorer, load_scorer

runner = CliRunner()


@pytest.fixture(scope="module")
def scorer_dir(project: Project) -> Path:
    return project.path("models/scorer")


@pytest.fixture(scope="module")
def scorer(scorer_dir: Path) -> Scorer:
    return load_scorer(scorer_dir)


@pytest.fixture(scope="module")
def activities(
    project: Project, tmp_path_factory: pytest.TempPathFactory
) -> Path | None:
    """The source's activity log as a file (None without one)."""
    return project.activities_file(tmp_path_factory.mktemp(f"cli-log-{project.name}"))


@pytest.fixture(scope="module")
def leads(project: Project) -> pd.DataFrame:
    rows = project.leads()
    return rows.iloc[:: len(rows) // 80].head(80).reset_index(drop=True)


@pytest.fixture(scope="module")
def window(project: Project) -> pd.DataFrame:
    """The lead rows of the training window: the drift reference itself."""
    features = project.features()
    train = set(features.loc[features["split"].eq("train").fillna(False), "deal_id"])
    rows = project.leads()
    id_column = project.params.source.tables.deals.id
    rows = rows[rows[id_column].astype(str).isin(train)]
    assert len(rows) >= DRIFT_MIN_ROWS
    return rows


def _score(*arguments: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, ["score", *map(str, arguments)])
    return result.exit_code, result.output


def _with_log(activities: Path | None) -> list[str | Path]:
    return [] if activities is None else ["--activities", activities]


def _one_line_error(output: str) -> str:
    """The error a failed command printed: one line, no traceback."""
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


def _bounded(scorer: Scorer) -> tuple[str, float]:
    return next(
        (c, low)
        for c, (low, _) in sorted(scorer.contract.bounds.items())
        if low is not None
    )


def _category(scorer: Scorer) -> tuple[str, str]:
    """(source column, feature) of the first category feature."""
    return next(
        (s.column, s.name) for s in scorer.registry.specs if s.kind == "category"
    )


def test_score_prints_a_summary_that_reconciles(
    scorer_dir: Path,
    scorer: Scorer,
    leads: pd.DataFrame,
    activities: Path | None,
    tmp_path: Path,
) -> None:
    bounded, low = _bounded(scorer)
    column, feature = _category(scorer)
    levels = scorer.model.info.categories[feature]
    inputs = leads.assign(**{column: levels[0]})
    inputs.loc[[4, 9], bounded] = low - 1
    inputs.loc[[10, 11, 12], column] = "space mining"
    inputs.to_parquet(tmp_path / "leads.parquet")
    code, output = _score(
        "--model",
        scorer_dir,
        "--input",
        tmp_path / "leads.parquet",
        "--output",
        tmp_path / "out/scores.csv",
        *_with_log(activities),
        "--summary",
        tmp_path / "summary.json",
    )
    assert code == 0, output
    said = " ".join(output.split())  # rich wraps long lines
    assert "rows in = scored + rejected: 80 = 78 + 2 (checked)" in said
    assert f"unseen category values (scored as unseen): {{'{feature}': 3}}" in said
    assert "rows/s" in said and "drift vs training window" in said
    assert f"(not judged: fewer than {DRIFT_MIN_ROWS:,} rows)" in said
    rejects = tmp_path / "out/scores.rejects.csv"
    assert f"rejected rows and reasons -> {rejects}" in said
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["rows_in"], summary["scored"], summary["rejected"]) == (80, 78, 2)
    scores = pd.read_csv(tmp_path / "out/scores.csv")
    assert list(scores.columns) == scorer.output_columns()
    assert len(scores) == 78
    written = pd.read_csv(rejects)
    assert written["row"].tolist() == [4, 9]
    assert (
        written["reason"].tolist() == [f"{bounded} is below {low:g} ({low - 1:g})"] * 2
    )


def test_rejects_go_where_asked_and_no_explain_leaves_out_the_reasons(
    scorer_dir: Path, scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    bounded, low = _bounded(scorer)
    inputs = leads.copy()
    inputs.loc[3, bounded] = low - 1
    inputs.to_csv(tmp_path / "leads.csv", index=False)
    code, output = _score(
        "--model",
        scorer_dir,
        "--input",
        tmp_path / "leads.csv",
        "--output",
        tmp_path / "scores.parquet",
        "--rejects",
        tmp_path / "elsewhere/bad.csv",
        "--no-explain",
        "--chunk-rows",
        "25",
    )
    assert code == 0, output
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    assert list(scores.columns) == scorer.output_columns(explain_reasons=False)
    assert len(scores) == 79
    assert pd.read_csv(tmp_path / "elsewhere/bad.csv")["row"].tolist() == [3]
    assert not (tmp_path / "scores.rejects.csv").exists()


def test_a_drifted_input_prints_a_warning(
    scorer_dir: Path, scorer: Scorer, window: pd.DataFrame, tmp_path: Path
) -> None:
    bounded, _ = _bounded(scorer)
    feature = next(s.name for s in scorer.registry.specs if s.column == bounded)
    shifted = window.assign(**{bounded: window[bounded] * 1000 + 1000})
    shifted.to_csv(tmp_path / "leads.csv", index=False)
    code, output = _score(
        "--model",
        scorer_dir,
        "--input",
        tmp_path / "leads.csv",
        "--output",
        tmp_path / "scores.parquet",
        "--no-explain",
    )
    assert code == 0, output
    said = " ".join(output.split())
    warning = said[said.index("warning: drift") :]
    assert warning.startswith(
        "warning: drift above PSI 0.25 against the training window in "
    )
    assert feature in warning and "may need a retrain" in warning
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    assert "top_reasons" not in scores and len(scores) == len(window)


def test_the_training_window_raises_no_warning(
    scorer_dir: Path, window: pd.DataFrame, activities: Path | None, tmp_path: Path
) -> None:
    window.to_parquet(tmp_path / "leads.parquet")
    code, output = _score(
        "--model",
        scorer_dir,
        "--input",
        tmp_path / "leads.parquet",
        "--output",
        tmp_path / "scores.parquet",
        *_with_log(activities),
        "--no-explain",
    )
    assert code == 0, output
    assert "warning" not in output and "not judged" not in output
    assert "largest PSI 0.000" in output


def test_activities_given_to_a_model_that_counts_none_are_refused(
    project: Project,
    scorer_dir: Path,
    scorer: Scorer,
    leads: pd.DataFrame,
    activities: Path | None,
    tmp_path: Path,
) -> None:
    leads.to_parquet(tmp_path / "leads.parquet")
    if scorer.counts_activities:  # see test_scored_without_activities_...
        return
    log = tmp_path / "log.csv"
    pd.DataFrame({"Opp": ["O-1"], "When": ["2024-01-02"], "Kind": ["Demo"]}).to_csv(
        log, index=False
    )
    code, output = _score(
        "--model",
        scorer_dir,
        "--input",
        tmp_path / "leads.parquet",
        "--output",
        tmp_path / "s.parquet",
        "--activities",
        log,
    )
    assert code == 2
    assert "trained without an activity log" in _one_line_error(output)
    assert not (tmp_path / "s.parquet").exists()


def test_a_model_path_without_a_scorer_is_a_one_line_error(
    leads: pd.DataFrame, tmp_path: Path
) -> None:
    leads.to_parquet(tmp_path / "leads.parquet")
    code, output = _score(
        "--model",
        tmp_path / "models/nothing",
        "--input",
        tmp_path / "leads.parquet",
        "--output",
        tmp_path / "s.parquet",
    )
    assert code == 2
    assert "no such folder" in _one_line_error(output)
    assert not (tmp_path / "s.parquet").exists()


def test_a_tampered_model_is_a_one_line_error(
    scorer_dir: Path, leads: pd.DataFrame, tmp_path: Path
) -> None:
    model = Path(shutil.copytree(scorer_dir, tmp_path / "scorer"))
    booster = model / "artifacts/bundle/booster.txt"
    booster.write_bytes(booster.read_bytes()[:-100])
    leads.to_parquet(tmp_path / "leads.parquet")
    code, output = _score(
        "--model",
        model,
        "--input",
        tmp_path / "leads.parquet",
        "--output",
        tmp_path / "s.parquet",
    )
    assert code == 2
    assert "booster.txt: checksum mismatch" in _one_line_error(output)
    assert not (tmp_path / "s.parquet").exists()


@pytest.mark.parametrize(
    "problem", ["missing column", "no rows", "no such file", "wrong suffix"]
)
def test_bad_input_is_a_one_line_error(
    scorer_dir: Path,
    scorer: Scorer,
    leads: pd.DataFrame,
    activities: Path | None,
    tmp_path: Path,
    problem: str,
) -> None:
    path = tmp_path / "leads.parquet"
    column, _ = _category(scorer)
    message = {
        "missing column": f"missing column(s) {column};",
        "no rows": "no rows to score",
        "no such file": "input file not found",
        "wrong suffix": "cannot read a '.xls' file",
    }[problem]
    if problem == "missing column":
        leads.drop(columns=column).to_parquet(path)
    elif problem == "no rows":
        leads.iloc[:0].to_parquet(path)
    elif problem == "wrong suffix":
        path = tmp_path / "leads.xls"  # Excel 97-2003: saved again as .xlsx
        path.write_bytes(b"\xd0\xcf\x11\xe0")
    code, output = _score(
        "--model",
        scorer_dir,
        "--input",
        path,
        "--output",
        tmp_path / "s.parquet",
        *_with_log(activities),
    )
    assert code == 2
    assert message in _one_line_error(output)
    assert not (tmp_path / "s.parquet").exists()


def test_scored_without_activities_a_model_that_counts_them_warns(
    scorer_dir: Path, scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    leads.to_parquet(tmp_path / "leads.parquet")
    code, output = _score(
        "--model",
        scorer_dir,
        "--input",
        tmp_path / "leads.parquet",
        "--output",
        tmp_path / "s.parquet",
        "--summary",
        tmp_path / "summary.json",
    )
    assert code == 0, output
    said = " ".join(output.split())
    warnings = json.loads((tmp_path / "summary.json").read_text())["warnings"]
    if not scorer.counts_activities:  # X Education and Maven log no activity
        assert "counts activities" not in said and warnings == []
        return
    n = len(scorer.activity_features)
    warning = (
        f"this model counts activities ({n} features); no --activities given: "
        "those features are read as unknown"
    )
    assert said.count(f"warning: {warning}") == 1
    assert "pass --activities FILE" in said
    assert len(warnings) == 1 and warnings[0].startswith(warning)


def test_no_activity_log_is_unknown_and_an_empty_one_is_none(
    synthetic_project: Project, tmp_path: Path
) -> None:
    # Blank is never 0: without a log nobody knows a lead's activities; a log
    # that holds none of the lead's says it had none.
    scorer_dir = synthetic_project.path("models/scorer")
    scorer = load_scorer(scorer_dir)
    leads = synthetic_project.leads().head(200)
    names = scorer.activity_features
    assert names
    unknown = scorer.score_chunk(leads, None, False).features[names]
    none = scorer.score_chunk(leads, scorer.no_activities(), False).features[names]
    assert unknown.isna().all().all()
    counts = none.drop(columns="days_since_last_touch", errors="ignore")
    assert counts.eq(0).all().all()
    # the batch job agrees, given no log or a log of other leads only
    leads.to_parquet(tmp_path / "leads.parquet")
    other = synthetic_project.activities()
    assert other is not None
    other = other.head(5).assign(deal_id="nobody here")
    other.to_parquet(tmp_path / "other.parquet")
    logs: dict[str, list[str | Path]] = {
        "unknown": [],
        "none": ["--activities", tmp_path / "other.parquet"],
    }
    for name, log in logs.items():
        code, output = _score(
            "--model",
            scorer_dir,
            "--input",
            tmp_path / "leads.parquet",
            "--output",
            tmp_path / f"{name}.parquet",
            "--no-explain",
            *log,
        )
        assert code == 0, output
    scored = {
        name: pd.read_parquet(tmp_path / f"{name}.parquet")["probability"]
        for name in ("unknown", "none")
    }
    expected = {
        "unknown": scorer.score(leads, explain_reasons=False)["probability"],
        "none": scorer.score(leads, other.iloc[:0], False)["probability"],
    }
    for name, probability in scored.items():
        np.testing.assert_array_equal(probability, expected[name])
    assert not np.allclose(scored["unknown"], scored["none"])


def test_the_id_pre_pass_reports_its_rows(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    leads.to_parquet(tmp_path / "leads.parquet")
    heard: list[int] = []
    summary = score_file(
        scorer,
        tmp_path / "leads.parquet",
        tmp_path / "s.csv",
        tmp_path / "r.csv",
        explain_reasons=False,
        chunk_rows=25,
        checking=heard.append,
    )
    assert heard == [25, 25, 25, 5] and summary.rows_in == 80


def test_a_terminal_sees_the_id_check_and_the_files_do_not(
    scorer_dir: Path,
    leads: pd.DataFrame,
    activities: Path | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leads.to_parquet(tmp_path / "leads.parquet")
    outputs = {}
    for where in ("pipe", "terminal"):
        if where == "terminal":
            terminal = io.StringIO()
            shown = Console(file=terminal, force_terminal=True, width=120)
            monkeypatch.setattr(cli, "errors", shown)
        code, output = _score(
            "--model",
            scorer_dir,
            "--input",
            tmp_path / "leads.parquet",
            "--output",
            tmp_path / f"{where}.csv",
            *_with_log(activities),
        )
        assert code == 0, output
        assert "checking ids" not in output
        outputs[where] = (tmp_path / f"{where}.csv").read_bytes()
    assert "checking ids" in terminal.getvalue()
    assert outputs["terminal"] == outputs["pipe"]
