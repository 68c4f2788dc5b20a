"""The exported scorer in a clean environment, from its own requirements.txt alone.

Issue 15: a venv built from a scorer folder's requirements.txt failed (``No module
named 'numba'``), the real exports' requirements were unpinned, and ``lead-ml==0.1.0``
is on no index. Now requirements.txt pins lead-ml and every library it depends on to
the versions that exported it (the same for every source), and lead-ml installs from
a wheel built from the sources (README, "Installing the scorer elsewhere"):

    uv build --wheel --out-dir dist
    pip install --find-links dist -r models/scorer/requirements.txt

Here the wheel is built offline, a fresh venv is made with uv and the requirements
are installed with ``--offline --find-links`` from uv's cache (which `make install`
fills with the same pinned versions: without them the test skips, saying so). The
pyfunc is then loaded in that venv with ``mlflow.pyfunc.load_model`` and scores
leads, which must equal the scores of this venv. About 25 s per source on the
2-core machine, most of it importing the stack for the first time (bytecode).
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from importlib.metadata import packages_distributions
from pathlib import Path

import pandas as pd
import pytest
from projects import ROOT, Project

from lead_ml.scorer import (
    ALLOW_ACTIVITIES_ENV,
    load_pyfunc,
    load_scorer,
    scorer_requirements,
    signature_example,
)

pytestmark = pytest.mark.slow
UV = Path(sys.executable).with_name("uv")
N_LEADS = 200
#: What the fresh venv runs: load the folder with MLflow alone, score, write.
CLEAN_SCRIPT = """
import sys
from pathlib import Path

import lead_ml
import mlflow
import pandas as pd

folder, leads, activities, out = sys.argv[1:]
assert Path(lead_ml.__file__).is_relative_to(sys.prefix), lead_ml.__file__
model = mlflow.pyfunc.load_model(folder)
params = {"explain": True, "activities_path": activities}
model.predict(pd.read_parquet(leads), params=params).to_parquet(out)
"""


def _run(
    argv: Sequence[object], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, env=env, cwd=cwd
    )


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lead-ml as a wheel, built offline from a copy of its sources (a build in the
    repository would leave build/ there)."""
    source = tmp_path_factory.mktemp("lead-ml-source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "src" / "lead_ml", source / "src" / "lead_ml", ignore=skip)
    out = tmp_path_factory.mktemp("wheels")
    built = _run([UV, "build", "--wheel", "--offline", "--quiet", "-o", out, source])
    if built.returncode and "network" in built.stderr:
        pytest.skip(f"uv's cache lacks the build backend: {built.stderr.strip()}")
    assert built.returncode == 0, built.stderr
    return out


_VENVS: dict[str, Path] = {}


def clean_python(requirements: Path, wheels: Path, parent: Path) -> Path:
    """The python of a fresh venv holding only what requirements.txt installs
    (offline, lead-ml from the wheel); one venv per distinct requirements."""
    text = requirements.read_text()
    if text not in _VENVS:
        venv = parent / f"venv-{len(_VENVS)}"
        made = _run(
            [UV, "venv", "--offline", "--quiet", "--python", sys.executable, venv]
        )
        assert made.returncode == 0, made.stderr
        python = venv / "bin" / "python"
        argv = [UV, "pip", "install", "--offline", "--quiet", "--python", python]
        done = _run([*argv, "--find-links", wheels, "-r", requirements])
        if done.returncode and "network was disabled" in done.stderr:
            # A pin missing from the cache is the machine's; lead-ml missing is ours.
            assert "lead-ml" not in done.stderr, done.stderr
            pytest.skip(
                "uv's cache lacks a pinned requirement of the scorer (run `make "
                f"install` with the network first): {done.stderr.strip()}"
            )
        assert done.returncode == 0, done.stderr
        _VENVS[text] = python
    return _VENVS[text]


def test_requirements_pin_lead_ml_and_all_it_depends_on(project: Project) -> None:
    """Every line is pinned (name==version), lead-ml first, the same for every
    source: the real exports' were unpinned while the synthetic's were pinned."""
    lines = project.path("models/scorer/requirements.txt").read_text().split()
    assert lines == scorer_requirements()
    assert lines[0].startswith("lead-ml==")
    assert all("==" in line for line in lines), lines


def test_requirements_list_every_library_the_scorer_imports() -> None:
    """What lead_ml's modules import when the pyfunc loads and scores (at the top
    or inside a function) is pinned in requirements.txt: ``numba`` was left out.
    (Every source's requirements.txt is this list: the test above.)"""
    code = (
        "import sys, lead_ml.pyfunc_model; "
        "print('\\n'.join(m.__file__ for n, m in sys.modules.items() "
        "if n.startswith('lead_ml.') and m.__file__))"
    )
    files = _run([sys.executable, "-c", code]).stdout.split()
    assert any(f.endswith("fastshap.py") for f in files), files
    imported = set().union(*(_top_imports(Path(f)) for f in files))
    distributions = packages_distributions()
    pinned = {line.split("==")[0].lower() for line in scorer_requirements()}
    for name in sorted(imported - {"lead_ml"}):
        owners = {d.lower() for d in distributions.get(name, [])}
        if owners:  # not the standard library
            assert owners & pinned, f"{name} ({owners}) is not in requirements.txt"


def _top_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_pyfunc_scores_in_a_fresh_venv_from_its_requirements(
    project: Project,
    wheels: Path,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    folder = project.path("models/scorer")
    python = clean_python(
        folder / "requirements.txt", wheels, tmp_path_factory.getbasetemp()
    )
    scorer = load_scorer(folder)
    leads = signature_example(scorer, project.leads().head(N_LEADS))
    leads.to_parquet(tmp_path / "leads.parquet")
    log = project.activities_file(tmp_path) if scorer.counts_activities else None
    activities = str(log or "")
    script = tmp_path / "score.py"
    script.write_text(CLEAN_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env |= {ALLOW_ACTIVITIES_ENV: "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    out = tmp_path / "clean.parquet"
    argv = [python, script, folder, tmp_path / "leads.parquet", activities, out]
    done = _run(argv, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    here = load_pyfunc(folder, allow_activities_path=True)
    params = {"explain": True, "activities_path": activities}
    here.predict(leads, params=params).to_parquet(tmp_path / "here.parquet")
    clean = pd.read_parquet(out)
    assert len(clean) == N_LEADS
    pd.testing.assert_frame_equal(clean, pd.read_parquet(tmp_path / "here.parquet"))
