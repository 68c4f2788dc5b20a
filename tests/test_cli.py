"""The `lead-ml` command: help everywhere, documented, and friendly errors.

A user's mistake (a misspelt or bad setting, a missing file, a leaky column the
audit refuses) exits 2 with a message naming what to fix, never a traceback.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from projects import QUICK, ROOT, SOURCES, merged
from rich.console import Console
from typer.core import TyperOption
from typer.main import get_command
from typer.testing import CliRunner

from lead_ml import cli, stages
from lead_ml.cli import GenerateFormat, app
from lead_ml.config import SyntheticConfig, load_params, read_params_file
from lead_ml.scorer import FORMAT_VERSION
from lead_ml.synthetic import STEPS

runner = CliRunner()
COMMANDS = sorted(get_command(app).commands)  # type: ignore[attr-defined]
#: A row of the README's command table: | `lead-ml <command>` | what it does |
README_ROW = re.compile(r"^\| `lead-ml ([a-z-]+)` \|", re.MULTILINE)


def readme_commands() -> list[str]:
    """The commands the README's command table lists, in its order."""
    return README_ROW.findall((ROOT / "README.md").read_text())


def params_file(folder: Path, changes: dict[str, Any]) -> Path:
    """The default params.yaml with ``changes`` merged in, written to ``folder``."""
    path = folder / "params.yaml"
    raw = merged(read_params_file(SOURCES["synthetic"]), changes)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def refused(args: list[str], *words: str) -> str:
    """Run a command that must refuse: exit 2, a message with ``words``, no
    traceback. Its output."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert re.search(r"^error: ", result.output, re.MULTILINE), result.output
    for word in words:
        assert word in result.output
    return result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output
    assert f"lead-ml {command}" in result.output.split("Example:", 1)[1]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_in_the_readme_command_table(command: str) -> None:
    assert command in readme_commands()


def test_the_readme_command_table_lists_no_other_command() -> None:
    listed = readme_commands()
    assert listed and [c for c in listed if c not in COMMANDS] == []
    assert len(listed) == len(set(listed))


def test_a_misspelt_setting_is_named_not_a_traceback(tmp_path: Path) -> None:
    params = params_file(tmp_path, {"train": {"learning_rat": 0.1}})
    refused(
        ["check-config", "--no-data", "--params", str(params)], "train.learning_rat"
    )


def test_a_bad_value_is_named_with_what_it_got(tmp_path: Path) -> None:
    params = params_file(tmp_path, {"train": {"learning_rate": -3}})
    refused(
        ["generate", "--params", str(params), "--out", str(tmp_path / "raw")],
        "train.learning_rate",
        "-3",
    )
    assert not (tmp_path / "raw").exists()


def test_a_missing_params_file_says_where_to_run(tmp_path: Path) -> None:
    missing = tmp_path / "params.yaml"
    refused(["check-config", "--params", str(missing)], str(missing), "--params")


def test_a_missing_export_names_its_setting(tmp_path: Path) -> None:
    missing = tmp_path / "export.csv"
    tables = {"deals": {"path": str(missing)}}
    params = params_file(tmp_path, {"source": {"tables": tables}})
    out = tmp_path / "deals.parquet"
    args = ["--params", str(params)]
    refused(["check-config", *args], str(missing), "source.tables.deals.path")
    refused(["read", "--table", "deals", *args, "--out", str(out)], str(missing))
    assert not out.exists()


def test_a_table_the_source_lacks_is_refused(tmp_path: Path) -> None:
    params = ROOT / "examples" / "x_education" / "params.yaml"
    out = tmp_path / "accounts.parquet"
    refused(
        ["read", "--table", "accounts", "--params", str(params), "--out", str(out)],
        "accounts",
        "deals",
    )


def test_missing_metrics_says_what_to_run(tmp_path: Path) -> None:
    refused(["summary", "--metrics", str(tmp_path / "metrics.json")], "dvc repro")


def test_a_leaky_column_stops_the_audit_with_a_message(tmp_path: Path) -> None:
    # stage_at_close is filled in at the outcome; without it under source.forbidden
    # the audit must refuse to go on, naming it and the way to allow it.
    raw = merged(read_params_file(SOURCES["synthetic"]), QUICK)
    raw["source"]["forbidden"] = ["discount_pct", "lost_reason"]
    for table in raw["source"]["tables"].values():
        table["path"] = str(tmp_path / table["path"])
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    params = load_params(path)
    stages.run_generate(params, tmp_path / "data/raw")
    for table in params.source.tables.present():
        stages.run_read(params, table, tmp_path / f"data/tables/{table}.parquet")
    stages.run_validate(
        params,
        tmp_path / "data/tables",
        tmp_path / "data/validated",
        tmp_path / "reports/rejects.csv",
    )
    report = tmp_path / "reports/audit.json"
    refused(
        [
            "audit",
            "--params",
            str(path),
            "--validated",
            str(tmp_path / "data/validated"),
            "--tables",
            str(tmp_path / "data/tables"),
            "--out",
            str(report),
            "--summary",
            str(tmp_path / "reports/audit.md"),
            "--split",
            str(tmp_path / "data/audit/split.parquet"),
        ],
        "stage_at_close",
        "source.allowed",
    )
    assert report.exists()  # the report is written, so the user can read why


def test_generate_writes_csv_on_request(tmp_path: Path) -> None:
    params = params_file(tmp_path, {"synthetic": {"n_deals": 300, "n_accounts": 50}})
    out = tmp_path / "raw"
    result = runner.invoke(
        app, ["generate", "--params", str(params), "--out", str(out), "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    accounts = (out / "accounts.csv").read_text().splitlines()
    assert len(accounts) == 1 + 50
    assert "deals" in result.output and "activities" in result.output


def test_version_names_the_package_and_its_scorer_format() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"lead-ml {version('lead-ml')}, ")
    assert f"scorer format {FORMAT_VERSION} " in result.output


def test_show_completion_prints_a_bash_script() -> None:
    # The shell is named and typer's detection is off: with shellingham installed
    # --show-completion is a flag that guesses the shell from the process tree, and
    # that guess fails under make or CI, where no shell is among the ancestors.
    lead_ml = Path(sys.executable).with_name("lead-ml")
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    script = subprocess.run(
        [str(lead_ml), "--show-completion", "bash"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
    ).stdout
    assert "_LEAD_ML_COMPLETE=complete_bash" in script
    assert "complete -o default -F _lead_ml_completion lead-ml" in script


def _help(command: str | None) -> str:
    args = [command, "--help"] if command else ["--help"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"}, terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def _choices(command: str | None) -> dict[str, list[str]]:
    """Options of a command (None: the group) that take one of a few values."""
    group = get_command(app)
    found = group if command is None else group.commands[command]  # type: ignore[attr-defined]
    return {
        param.opts[0]: [str(c) for c in param.type_descriptor.choices or ()]
        for param in found.params
        if isinstance(param, TyperOption) and param.type_descriptor.is_choice
    }


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_shows_no_bool_metavar_and_lists_every_choice(command: str | None) -> None:
    shown = _help(command)
    assert "<bool>" not in shown
    for option, choices in _choices(command).items():
        rows = [line for line in shown.splitlines() if line.startswith("│")]
        line = next(row for row in rows if f" {option} " in row)
        assert f"<{'|'.join(choices)}>" in line, line


def test_the_options_with_few_values_are_choices() -> None:
    assert _choices("score")["--engine"] == ["local", "spark"]
    assert _choices("generate")["--format"] == ["parquet", "csv"]
    synthetic_format = SyntheticConfig.model_fields["format"].annotation
    assert get_args(GenerateFormat) == get_args(synthetic_format)


@pytest.mark.parametrize(
    ("args", "option", "bad"),
    [
        (["score"], "--engine", "hadoop"),
        (["generate"], "--format", "xls"),
    ],
)
def test_a_bad_choice_is_refused_naming_the_choices(
    tmp_path: Path, args: list[str], option: str, bad: str
) -> None:
    command = args[0]
    out = tmp_path / "out"
    result = runner.invoke(
        app, [*args, option, bad, "--params", str(params_file(tmp_path, {}))]
    )
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.replace("│", " ").split())
    assert f"Invalid value for '{option}'" in said and repr(bad) in said
    for choice in _choices(command)[option]:
        assert repr(choice) in said
    assert "Traceback" not in result.output and not out.exists()


def test_read_refuses_a_table_the_source_lacks_naming_its_tables(
    tmp_path: Path,
) -> None:
    # --table takes any name: a source may join tables of its own (products, teams).
    out = tmp_path / "leads.parquet"
    params = params_file(tmp_path, {})
    result = runner.invoke(
        app, ["read", "--table", "leads", "--params", str(params), "--out", str(out)]
    )
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert "--table 'leads': the source has no such table; it has deals, " in said
    assert "Traceback" not in result.output and not out.exists()


def test_generate_hears_every_step_in_order_and_writes_the_same(
    tmp_path: Path,
) -> None:
    params = load_params(
        params_file(tmp_path, {"synthetic": {"n_deals": 300, "n_accounts": 50}})
    )
    heard: list[str] = []
    stages.run_generate(params, tmp_path / "heard", heard.append)
    stages.run_generate(params, tmp_path / "quiet")
    assert heard == list(STEPS)
    for path in sorted((tmp_path / "quiet").iterdir()):
        assert (tmp_path / "heard" / path.name).read_bytes() == path.read_bytes()


def test_generate_shows_its_steps_on_a_terminal_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = params_file(tmp_path, {"synthetic": {"n_deals": 300, "n_accounts": 50}})
    args = ["generate", "--params", str(params), "--out", str(tmp_path / "raw")]
    plain = runner.invoke(app, args)  # not a terminal: no bar
    assert plain.exit_code == 0, plain.output
    assert "writing" not in plain.output
    terminal = io.StringIO()
    monkeypatch.setattr(cli, "errors", Console(file=terminal, force_terminal=True))
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "writing truth" in terminal.getvalue()  # the bar's last step, labelled
