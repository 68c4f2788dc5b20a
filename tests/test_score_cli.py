"""`lead-ml score`: a summary that reconciles, a drift warning, and one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from lead_ml.batch import DRIFT_MIN_ROWS
from lead_ml.cli import app
from lead_ml.config import SplitConfig
from lead_ml.model import time_split
from lead_ml.scorer import ID_COLUMN

runner = CliRunner()


@pytest.fixture(scope="module")
def scorer_dir(small_project: Path) -> Path:
    return small_project / "models/scorer"


@pytest.fixture(scope="module")
def activities(small_project: Path) -> Path:
    return small_project / "data/validated/activities.parquet"


@pytest.fixture(scope="module")
def leads(small_leads: pd.DataFrame) -> pd.DataFrame:
    return small_leads.iloc[::30].head(80).reset_index(drop=True)


def _score(*arguments: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, ["score", *map(str, arguments)])
    return result.exit_code, result.output


def _one_line_error(output: str) -> str:
    """The error a failed command printed: one line, no traceback."""
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


def test_score_prints_a_summary_that_reconciles(
    scorer_dir: Path, leads: pd.DataFrame, activities: Path, tmp_path: Path
) -> None:
    inputs = leads.copy()
    inputs.loc[[4, 9], "employees"] = -1.0
    inputs.loc[[10, 11, 12], "industry"] = "space mining"
    inputs.to_parquet(tmp_path / "leads.parquet")
    code, output = _score(
        "--model",
        scorer_dir,
        "--input",
        tmp_path / "leads.parquet",
        "--output",
        tmp_path / "out/scores.csv",
        "--activities",
        activities,
        "--summary",
        tmp_path / "summary.json",
    )
    assert code == 0, output
    assert "rows in = scored + rejected: 80 = 78 + 2 (checked)" in output
    assert "unseen category values (scored as unseen): {'industry': 3}" in output
    assert "rows/s" in output and "drift vs training window" in output
    rejects = tmp_path / "out/scores.rejects.csv"
    assert f"rejected rows and reasons -> {rejects}" in output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["rows_in"], summary["scored"], summary["rejected"]) == (80, 78, 2)
    assert len(pd.read_csv(tmp_path / "out/scores.csv")) == 78
    assert (
        pd.read_csv(rejects)["reason"].tolist() == ["employees is negative (-1.0)"] * 2
    )


@pytest.fixture(scope="module")
def window(small_project: Path, small_leads: pd.DataFrame) -> pd.DataFrame:
    """The lead rows of the training window: the drift reference itself."""
    features = pd.read_parquet(small_project / "data/features/features.parquet")
    train = set(time_split(features, SplitConfig()).train[ID_COLUMN])
    rows = small_leads[small_leads[ID_COLUMN].isin(train)]
    assert len(rows) >= DRIFT_MIN_ROWS
    return rows


def test_a_drifted_input_prints_a_warning(
    scorer_dir: Path, window: pd.DataFrame, tmp_path: Path
) -> None:
    shifted = window.assign(employees=window["employees"] * 1000)
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
    warning = next(line for line in output.splitlines() if "warning" in line)
    assert warning.startswith(
        "warning: drift above PSI 0.25 against the training window in "
    )
    assert "log_employees" in warning and "may need a retrain" in warning
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    assert "top_reasons" not in scores and len(scores) == len(window)


def test_the_training_window_raises_no_warning(
    scorer_dir: Path, window: pd.DataFrame, activities: Path, tmp_path: Path
) -> None:
    window.to_parquet(tmp_path / "leads.parquet")
    code, output = _score(
        "--model",
        scorer_dir,
        "--input",
        tmp_path / "leads.parquet",
        "--output",
        tmp_path / "scores.parquet",
        "--activities",
        activities,
        "--no-explain",
    )
    assert code == 0, output
    assert "warning" not in output
    assert "largest PSI 0.000" in output


def test_a_small_batch_is_not_judged_for_drift(
    scorer_dir: Path, leads: pd.DataFrame, tmp_path: Path
) -> None:
    shifted = leads.assign(employees=leads["employees"] * 1000)
    shifted.to_parquet(tmp_path / "leads.parquet")
    code, output = _score(
        "--model",
        scorer_dir,
        "--input",
        tmp_path / "leads.parquet",
        "--output",
        tmp_path / "scores.parquet",
        "--no-explain",
    )
    assert code == 0, output
    assert "warning" not in output
    assert f"(not judged: fewer than {DRIFT_MIN_ROWS:,} rows)" in output


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


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("missing column", "missing column(s) meddic_champion"),
        ("no rows", "no rows to score"),
        ("no such file", "input file not found"),
        ("wrong suffix", "must be .parquet or .csv, not .xlsx"),
    ],
)
def test_bad_input_is_a_one_line_error(
    scorer_dir: Path, leads: pd.DataFrame, tmp_path: Path, problem: str, message: str
) -> None:
    path = tmp_path / "leads.parquet"
    if problem == "missing column":
        leads.drop(columns="meddic_champion").to_parquet(path)
    elif problem == "no rows":
        leads.iloc[:0].to_parquet(path)
    elif problem == "wrong suffix":
        path = tmp_path / "leads.xlsx"
        path.write_bytes(b"PK")
    code, output = _score(
        "--model", scorer_dir, "--input", path, "--output", tmp_path / "s.parquet"
    )
    assert code == 2
    assert message in _one_line_error(output)
    assert not (tmp_path / "s.parquet").exists()
    assert ID_COLUMN not in output or problem == "missing column"
