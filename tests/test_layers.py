"""The import layers hold (issue 12, item 5): no cycles, floors kept, no back doors.

``[tool.importlinter]`` in pyproject.toml lists lead_ml's modules floor by floor,
and `lint-imports` (in `make lint`) checks that a module imports only from floors
below it. These tests keep that contract whole: every module is on a floor (a new
module cannot escape it), the contract passes and fails on a new cycle, and the
two ways around it stay closed: private names imported across modules, and imports
of lead_ml inside functions (which the linter sees but which hide a cycle from a
reader until it runs). cli.py alone imports its commands inside them, so that
`lead-ml --help` answers without loading LightGBM or MLflow; that is tested too.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import TypeGuard

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "lead_ml"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
#: The one module allowed to import lead_ml inside functions (see its comment).
LAZY = "cli"


def module_names() -> list[str]:
    """Every module of the package (``__init__`` aside)."""
    return sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def floors() -> list[list[str]]:
    """The layers contract's floors, top first, as module names."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
    contracts = config["importlinter"]["contracts"]
    (layers,) = [c for c in contracts if c["type"] == "layers"]
    assert config["importlinter"]["root_package"] == "lead_ml"
    return [
        [name.strip().removeprefix("lead_ml.") for name in floor.split("|")]
        for floor in layers["layers"]
    ]


def parsed(name: str) -> ast.Module:
    """A module's syntax tree."""
    path = PACKAGE / f"{name}.py"
    return ast.parse(path.read_text(), filename=str(path))


def lead_ml_module(node: ast.ImportFrom) -> str | None:
    """The lead_ml module an ``from ... import`` reads (None for other packages)."""
    if node.level:  # relative: inside the package
        return "lead_ml" + ("." + node.module if node.module else "")
    if node.module and (node.module == "lead_ml" or node.module.startswith("lead_ml.")):
        return node.module
    return None


def is_lead_ml_import(node: ast.AST) -> TypeGuard[ast.Import | ast.ImportFrom]:
    """Whether a node imports (from) lead_ml."""
    if isinstance(node, ast.ImportFrom):
        return lead_ml_module(node) is not None
    if isinstance(node, ast.Import):
        return any(a.name.split(".")[0] == "lead_ml" for a in node.names)
    return False


def is_private(name: str) -> bool:
    """A leading underscore, dunders aside."""
    return name.startswith("_") and not name.startswith("__")


def function_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports of lead_ml inside a function, at any depth."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            for inner in ast.walk(node):
                if is_lead_ml_import(inner):
                    yield inner


def imported_modules(tree: ast.Module) -> dict[str, str]:
    """Local name -> lead_ml module, for modules a file imports as names."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (module := lead_ml_module(node)):
            for alias in node.names:
                if module == "lead_ml" and alias.name in module_names():
                    names[alias.asname or alias.name] = f"lead_ml.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("lead_ml.") and alias.asname:
                    names[alias.asname] = alias.name
    return names


def private_uses(name: str) -> list[str]:
    """Private names a module takes from another lead_ml module, as text."""
    tree = parsed(name)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and lead_ml_module(node):
            found += [
                f"line {node.lineno}: from {lead_ml_module(node)} import {a.name}"
                for a in node.names
                if is_private(a.name)
            ]
    modules = imported_modules(tree)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and is_private(node.attr)
        ):
            found.append(f"line {node.lineno}: {modules[node.value.id]}.{node.attr}")
    return found


def lint_imports(cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run lint-imports in a folder (its pyproject.toml); output, and exit code last."""
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return f"{result.stdout}{result.stderr}\nexit {result.returncode}"


def test_every_module_is_on_exactly_one_floor() -> None:
    listed = [name for floor in floors() for name in floor]
    assert sorted(listed) == sorted(set(listed)), "a module is on two floors"
    assert [m for m in module_names() if m not in listed] == [], (
        "modules missing from [tool.importlinter] layers in pyproject.toml"
    )
    assert [m for m in listed if m not in module_names()] == [], "floors name no module"


def test_the_layers_contract_is_kept() -> None:
    output = lint_imports(ROOT)
    assert output.endswith("exit 0"), output
    assert "Contracts: 1 kept, 0 broken." in output


def test_the_layers_contract_fails_on_a_new_cycle(tmp_path: Path) -> None:
    # A copy of the package where a low floor imports a high one (features ->
    # stages -> features): what `make lint` must refuse.
    shutil.copytree(
        PACKAGE,
        tmp_path / "src" / "lead_ml",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    features = tmp_path / "src" / "lead_ml" / "features.py"
    features.write_text(features.read_text() + "\nfrom lead_ml import stages  # noqa\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}
    output = lint_imports(tmp_path, env)
    assert output.endswith("exit 1"), output
    assert "BROKEN" in output and "lead_ml.features -> lead_ml.stages" in output


@pytest.mark.parametrize("name", module_names())
def test_no_private_name_is_imported_across_modules(name: str) -> None:
    assert private_uses(name) == []


@pytest.mark.parametrize("name", [m for m in module_names() if m != LAZY])
def test_no_module_imports_lead_ml_inside_a_function(name: str) -> None:
    lines = [node.lineno for node in function_imports(parsed(name))]
    assert lines == [], f"lead_ml.{name} imports lead_ml inside functions at {lines}"


def test_the_cli_imports_its_commands_lazily_and_starts_light() -> None:
    # The exception is justified only while it buys something: importing the CLI
    # (what `lead-ml --help` does) loads neither LightGBM nor MLflow nor pandas'
    # heavy friends, and the reason is written down where the imports are.
    assert "import what they run when they run" in (PACKAGE / "cli.py").read_text()
    assert any(True for _ in function_imports(parsed(LAZY)))
    probe = (
        "import sys, lead_ml.cli; "
        "print(sorted(m for m in ('lightgbm', 'mlflow', 'sklearn', 'pyarrow') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
