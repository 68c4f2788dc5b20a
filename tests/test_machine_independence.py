"""The same params and data give the same bytes on another machine.

numpy picks its exp, log and pow by the CPU it finds (AVX-512 or AVX2), OpenBLAS
picks its kernels by CPU, and numba compiles for the host CPU; each of them once
made the features, the Platt fit, the model and so every DVC hash differ from one
machine to the next. Here the pipeline runs again in a process that behaves as
another machine would: numpy held to its baseline instructions, OpenBLAS on its
most generic kernel and numba compiling for a generic x86-64. Every output
`dvc repro` hashes, and the scores of the exported scorer, must come out the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from projects import ROOT, Project

from lead_ml import jit
from lead_ml.model import fit_platt
from lead_ml.scorer import load_scorer

#: Outputs of a finished project that DVC hashes and that hold no path or time.
HASHED = (
    "data/features/features.parquet",
    "data/features/registry.json",
    "data/audit/split.parquet",
    "reports/audit.json",
    "models/model/booster.txt",
    "models/model/model.json",
    "reports/metrics.json",
    "models/scorer/artifacts/bundle/booster.txt",
    "models/scorer/artifacts/bundle/scorer.json",
)


def other_machine() -> dict[str, str]:
    """The environment of a process that computes as another CPU would."""
    from numpy._core._multiarray_umath import (
        __cpu_dispatch__,
        __cpu_features__,
    )

    found = [name for name in __cpu_dispatch__ if __cpu_features__.get(name)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        NPY_DISABLE_CPU_FEATURES=" ".join(found),
        OPENBLAS_CORETYPE="Prescott",
        NUMBA_CPU_NAME="generic",
        PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), str(ROOT / "src")]),
    )
    return env


#: Run in the other process: build the project, score its leads with its scorer.
BUILD = """
import sys
from pathlib import Path
from projects import Project, build_project, project_environment
from lead_ml.scorer import load_scorer

name, root = sys.argv[1], Path(sys.argv[2])
project = build_project(name, root)
with project_environment(root):
    scored = load_scorer(root / "models" / "scorer").score(
        project.leads(), project.activities(), explain_reasons=True
    )
scored.to_parquet(root / "scored.parquet")
"""


def _printed_there(expression: str, env: dict[str, str]) -> str:
    """The bytes (hex) of an array expression of ``ages`` (0 to 400 days, in
    weeks), computed in a process with ``env``; ``power`` is lead_ml.jit's."""
    code = (
        "import numpy as np; from lead_ml.jit import power; "
        "ages = np.linspace(0.0, 400.0, 200_001) / 7.0; "
        f"print({expression}.tobytes().hex())"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_the_other_machine_computes_numpy_differently_where_it_can() -> None:
    """The stand-in for another machine changes what numpy computes wherever this
    CPU has instructions beyond numpy's baseline: without that, the pipeline test
    below would prove nothing here."""
    env = other_machine()
    ages = np.linspace(0.0, 400.0, 200_001) / 7.0
    here = (0.5**ages).tobytes().hex()
    there = _printed_there("(0.5 ** ages)", env)
    if not env["NPY_DISABLE_CPU_FEATURES"]:
        pytest.skip("this CPU has no instructions beyond numpy's baseline")
    ours = _printed_there("power(0.5, ages)", env)
    assert ours == jit.power(0.5, ages).tobytes().hex()
    if here == there:
        pytest.skip(
            "numpy's pow is the same at every dispatch level of this CPU "
            f"({env['NPY_DISABLE_CPU_FEATURES']} held back)"
        )


def test_every_hashed_output_and_score_is_the_same_on_another_machine(
    project: Project, tmp_path: Path
) -> None:
    root = tmp_path / "elsewhere"
    root.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", BUILD, project.name, str(root)],
        env=other_machine(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    hashed = list(HASHED)
    if project.name == "synthetic":
        hashed += ["data/raw/deals.parquet", "data/raw/activities.parquet"]
        hashed += ["data/raw/truth.parquet", "data/raw/truth.json"]
    for relative in hashed:
        assert (root / relative).read_bytes() == project.path(relative).read_bytes(), (
            f"{relative} differs on the other machine"
        )
    from projects import project_environment

    with project_environment(project.root):
        here = load_scorer(project.path("models/scorer")).score(
            project.leads(), project.activities(), explain_reasons=True
        )
    # Both through Parquet, which reads text back as it reads text.
    here.to_parquet(tmp_path / "here.parquet")
    pd.testing.assert_frame_equal(
        pd.read_parquet(root / "scored.parquet"),
        pd.read_parquet(tmp_path / "here.parquet"),
        check_exact=True,
    )


def test_the_elementary_functions_are_the_c_librarys() -> None:
    import math

    values = np.concatenate([np.linspace(-30, 30, 601), [0.0, 1e-300, 700.0]])
    for ours, reference in [
        (jit.exp, math.exp),
        (jit.sin, math.sin),
    ]:
        assert ours(values).tolist() == [reference(v) for v in values]
    positive = values[values > 0]
    for ours, reference in [
        (jit.log, math.log),
        (jit.log10, math.log10),
        (jit.log1p, math.log1p),
    ]:
        assert ours(positive).tolist() == [reference(v) for v in positive]
    assert jit.power(0.5, positive).tolist() == [0.5**v for v in positive]
    # Where the C library answers nan or -inf, and Python's math raises.
    assert np.isnan(jit.log(-1.0)) and jit.log(0.0) == -math.inf
    assert np.isnan(jit.log10(-1.0)) and jit.log10(0.0) == -math.inf
    assert np.isnan(jit.log1p(-2.0)) and jit.log1p(-1.0) == -math.inf
    # The sigmoid never overflows, and is symmetric to the bit.
    wide = np.array([-1000.0, -40.0, -1.5, 0.0, 1.5, 40.0, 1000.0])
    assert jit.sigmoid(wide).tolist()[0] == 0.0 and jit.sigmoid(wide)[-1] == 1.0
    assert jit.sigmoid(0.0) == 0.5
    assert jit.sigmoid(-1.5) == math.exp(-1.5) / (1 + math.exp(-1.5))
    assert jit.sigmoid(1.5) == 1 / (1 + math.exp(-1.5))


def test_the_platt_fit_is_the_likelihoods_optimum() -> None:
    """Checked on the score equations (the gradient is 0 at the fit) and against
    every calibration nearby."""
    rng = np.random.default_rng(8)
    margin = rng.normal(-0.3, 1.7, 5_000)
    won = (rng.random(margin.size) < jit.sigmoid(1.3 * margin + 0.4)).astype(float)
    fitted = fit_platt(margin, won)
    p = jit.sigmoid(fitted.log_odds(margin))
    assert abs(np.sum(p - won)) < 1e-10
    assert abs(np.sum((p - won) * margin)) < 1e-10
    # Any nearby calibration fits worse.

    def loss(slope: float, intercept: float) -> float:
        z = slope * margin + intercept
        return float(np.sum(np.logaddexp(0, z) - won * z))

    best = loss(fitted.slope, fitted.intercept)
    for ds, di in [(1e-4, 0), (-1e-4, 0), (0, 1e-4), (0, -1e-4)]:
        assert loss(fitted.slope + ds, fitted.intercept + di) > best
    # Margins all alike cannot rank: slope 0, the intercept the base rate's log-odds.
    flat = fit_platt(np.full(10, 2.5), np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0]))
    assert flat.slope == 0.0
    assert flat.intercept == pytest.approx(math_log_odds(0.3), abs=1e-12)
    # In row order, on every run: the same bits.
    again = fit_platt(margin.copy(), won.copy())
    assert (again.slope, again.intercept) == (fitted.slope, fitted.intercept)
    assert json.dumps([fitted.slope]) == json.dumps([again.slope])


def math_log_odds(rate: float) -> float:
    """The log-odds of a rate."""
    import math

    return math.log(rate / (1 - rate))
