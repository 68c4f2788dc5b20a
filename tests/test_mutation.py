"""`make mutate`'s bookkeeping (scripts/mutate.py): the verdicts a retest keeps, and
the module's mutmut settings. mutmut itself is not run here (hours of CPU)."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _mutate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutate", ROOT / "scripts/mutate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mutate = _mutate()


def test_a_retest_keeps_the_verdicts_of_unchanged_functions_only() -> None:
    """mutmut resets every verdict when the test selection changes: the earlier
    ones come back, except for a function edited since (a new mutant) and for the
    mutants the retest judged again."""
    before = (
        {
            "lead_ml.model.x_fit_platt__mutmut_1": 1,
            "lead_ml.model.x_fit_platt__mutmut_2": 0,
            "lead_ml.model.xǁCalibrationǁlog_odds__mutmut_1": 1,
            "lead_ml.model.x_margin__mutmut_1": 1,
            "lead_ml.model.x_margin__mutmut_2": None,
        },
        {"x_fit_platt": "a", "xǁCalibrationǁlog_odds": "b", "x_margin": "c"},
    )
    after = {
        "lead_ml.model.x_fit_platt__mutmut_1": None,  # reset, not retested
        "lead_ml.model.x_fit_platt__mutmut_2": 1,  # retested: now killed
        "lead_ml.model.xǁCalibrationǁlog_odds__mutmut_1": None,
        "lead_ml.model.x_margin__mutmut_1": None,  # margin was edited
        "lead_ml.model.x_margin__mutmut_2": None,
        "lead_ml.model.x_new__mutmut_1": None,  # a new function
    }
    hashes = {
        "x_fit_platt": "a",
        "xǁCalibrationǁlog_odds": "b",
        "x_margin": "edited",
        "x_new": "d",
    }
    assert mutate.restored(after, hashes, before) == {
        "lead_ml.model.x_fit_platt__mutmut_1": 1,
        "lead_ml.model.x_fit_platt__mutmut_2": 1,
        "lead_ml.model.xǁCalibrationǁlog_odds__mutmut_1": 1,
        "lead_ml.model.x_margin__mutmut_1": None,
        "lead_ml.model.x_margin__mutmut_2": None,
        "lead_ml.model.x_new__mutmut_1": None,
    }


def test_each_module_mutates_its_files_against_its_fast_tests() -> None:
    for module, (files, tests) in mutate.MODULES.items():
        table = tomllib.loads(mutate.module_pyproject(module))["tool"]["mutmut"]
        assert table["only_mutate"] == [f"src/lead_ml/{f}" for f in files]
        assert table["pytest_add_cli_args_test_selection"] == tests
        assert all((ROOT / t).is_file() for t in tests), module
        assert all((ROOT / "src/lead_ml" / f).is_file() for f in files), module
        # the shared settings are kept
        assert table["process_isolation"] == "forkserver"


def test_a_run_judges_only_the_mutants_without_a_verdict_to_keep() -> None:
    """A run names to mutmut the mutants never judged and those of a function new
    or edited since; the rest keep their verdicts (mutmut would judge them all
    again after a test selection change)."""
    before = {
        "model.py": (
            {
                "lead_ml.model.x_f__mutmut_1": 1,
                "lead_ml.model.x_f__mutmut_2": None,
                "lead_ml.model.x_g__mutmut_1": 0,
            },
            {"x_f": "a", "x_g": "b"},
        )
    }
    names = [
        "lead_ml.model.x_f__mutmut_1",
        "lead_ml.model.x_f__mutmut_2",
        "lead_ml.model.x_g__mutmut_1",
        "lead_ml.model.x_new__mutmut_1",
    ]
    kept = {"x_f": "a", "x_g": "b", "x_new": "c"}
    assert mutate.to_judge(names, kept, before) == [
        "lead_ml.model.x_f__mutmut_2",
        "lead_ml.model.x_new__mutmut_1",
    ]
    edited = kept | {"x_g": "edited"}
    assert mutate.to_judge(names, edited, before) == [
        "lead_ml.model.x_f__mutmut_2",
        "lead_ml.model.x_g__mutmut_1",
        "lead_ml.model.x_new__mutmut_1",
    ]
