"""The `lead-ml` command: help everywhere, documented, and friendly errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from lead_ml.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
COMMANDS = sorted(get_command(app).commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output
    assert f"lead-ml {command}" in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_in_the_readme(command: str) -> None:
    assert f"`lead-ml {command}" in (ROOT / "README.md").read_text()


def test_bad_params_file_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  learning_rate: -3\n")
    result = runner.invoke(
        app, ["generate", "--params", str(params), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "train.learning_rate" in result.output
    assert "Traceback" not in result.output


def test_missing_metrics_says_what_to_run(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["summary", "--metrics", str(tmp_path / "metrics.json")]
    )
    assert result.exit_code == 2
    assert "dvc repro" in result.output


def test_generate_writes_csv_on_request(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("synthetic:\n  n_deals: 300\n  n_accounts: 50\n")
    result = runner.invoke(
        app,
        [
            "generate",
            "--params",
            str(params),
            "--out",
            str(tmp_path / "raw"),
            "--format",
            "csv",
        ],
    )
    assert result.exit_code == 0, result.output
    accounts = (tmp_path / "raw" / "accounts.csv").read_text().splitlines()
    assert len(accounts) == 1 + 50
    assert "deals" in result.output and "activities" in result.output
