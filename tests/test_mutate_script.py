"""`make mutate`'s bookkeeping (scripts/mutate.py), without running mutmut: which
verdicts it keeps, and that a clean checkout (no mutants/ folder) reads them from the
committed store and judges only the mutants of functions edited since."""

from __future__ import annotations

import doctest
import importlib.util
import json
import signal
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "mutate.py"


@pytest.fixture
def mutate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """scripts/mutate.py with its mutants/ folder and its store under tmp_path."""
    spec = importlib.util.spec_from_file_location("mutate_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "mutate_script", module)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "WORK", tmp_path / "mutants")
    monkeypatch.setattr(module, "STORE", tmp_path / "reports" / "verdicts.json")
    return module


def write_meta(mutate: ModuleType, codes: dict[str, int | None]) -> Path:
    meta = mutate.WORK / "baseline" / "mutants" / "src" / "lead_ml" / "baseline.py.meta"
    meta.parent.mkdir(parents=True)
    data = {"exit_code_by_key": codes, "hash_by_function_name": {"x_f": "a"}}
    meta.write_text(json.dumps(data))
    return meta


def test_the_scripts_examples_hold(mutate: ModuleType) -> None:
    failed, tried = doctest.testmod(mutate)
    assert (failed, tried) == (0, 2)


def test_a_clean_checkout_reads_the_verdicts_from_the_committed_store(
    mutate: ModuleType,
) -> None:
    codes: dict[str, int | None] = {
        "lead_ml.baseline.x_f__mutmut_1": 1,
        "lead_ml.baseline.x_f__mutmut_2": 0,
    }
    assert mutate.verdicts("baseline") == {}
    meta = write_meta(mutate, codes)
    mutate.store_verdicts("baseline")
    stored = json.loads(mutate.STORE.read_text())
    assert stored == {
        "baseline": {
            "baseline.py": {"exit_codes": codes, "function_hashes": {"x_f": "a"}}
        }
    }
    # nothing partial left beside it
    assert {p.name for p in mutate.STORE.parent.iterdir()} == {
        mutate.STORE.name,
        f".{mutate.STORE.name}.lock",
    }
    meta.unlink()  # a clean checkout: no mutants/ folder
    assert mutate.verdicts("baseline") == {"baseline.py": (codes, {"x_f": "a"})}
    assert mutate.results("baseline") == codes
    summary = mutate.summarise("baseline", None)
    assert (summary["killed"], summary["survived"], summary["score"]) == (1, 1, 0.5)
    # The store's verdicts are kept for an unchanged function, judged again for an
    # edited one.
    names = [*codes, "lead_ml.baseline.x_g__mutmut_1"]
    before = mutate.verdicts("baseline")
    assert mutate.to_judge(names, {"x_f": "a", "x_g": "b"}, before) == [names[2]]
    assert mutate.to_judge(names, {"x_f": "edited", "x_g": "b"}, before) == names


def test_a_meta_file_wins_over_the_store_and_other_modules_are_kept(
    mutate: ModuleType,
) -> None:
    mutate.STORE.parent.mkdir()
    other = {"model": {"model.py": {"exit_codes": {"m": 1}, "function_hashes": {}}}}
    old = {"baseline.py": {"exit_codes": {"k": 0}, "function_hashes": {"x_f": "a"}}}
    mutate.STORE.write_text(json.dumps(other | {"baseline": old}))
    write_meta(mutate, {"k": 1})
    assert mutate.results("baseline") == {"k": 1}
    mutate.store_verdicts("baseline")
    stored = json.loads(mutate.STORE.read_text())
    assert stored["model"] == other["model"]
    assert stored["baseline"]["baseline.py"]["exit_codes"] == {"k": 1}


def test_a_summary_keeps_the_modules_it_has_no_verdicts_for(
    mutate: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "reports" / "mutation.json"
    monkeypatch.setattr(mutate, "SUMMARY", summary)
    monkeypatch.setattr(mutate, "EQUIVALENT", tmp_path / "equivalent.txt")
    summary.parent.mkdir()
    earlier = {"killed": 9, "survived": 1, "seconds": 5, "score": 0.9}
    summary.write_text(json.dumps({"modules": {"model": earlier}}))
    write_meta(mutate, {"lead_ml.baseline.x_f__mutmut_1": 1})
    assert mutate.main(["--summary"]) == 0
    written = json.loads(summary.read_text())
    assert written["modules"]["model"] == earlier  # no verdicts here: kept
    assert written["modules"]["baseline"]["killed"] == 1
    assert written["score"] == round(10 / 11, 4)
    stored = json.loads(mutate.STORE.read_text())
    assert set(stored) == {"baseline"}  # nothing written for the others


def test_a_sigterm_unwinds_a_run_as_an_interrupt_does(mutate: ModuleType) -> None:
    # run()'s finally gives back and stores the verdicts only if the stop unwinds.
    with pytest.raises(SystemExit) as stopped:
        mutate._stop(signal.SIGTERM, None)
    assert stopped.value.code == 128 + signal.SIGTERM


def test_a_shared_fixtures_calls_are_mapped_to_every_test_using_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = SCRIPT.with_name("mutation_plugin.py")
    spec = importlib.util.spec_from_file_location("mutation_plugin_under_test", path)
    assert spec is not None and spec.loader is not None
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    calls = {"called_by_the_first_test"}
    monkeypatch.setattr(plugin, "_stats", lambda: calls)
    shared = SimpleNamespace(scope="module", argname="exported", baseid="tests/a.py")
    setup = plugin.pytest_fixture_setup(shared, None)
    next(setup)
    calls.add("export_scorer")  # what the fixture's setup calls
    with pytest.raises(StopIteration):
        next(setup)
    assert calls == {"called_by_the_first_test", "export_scorer"}
    # A function-scoped fixture runs inside each test: nothing to carry over.
    own = SimpleNamespace(scope="function", argname="tmp", baseid="tests/a.py")
    setup = plugin.pytest_fixture_setup(own, None)
    next(setup)
    calls.add("per_test")
    with pytest.raises(StopIteration):
        next(setup)
    # A later test using the shared fixture (set up already) gets its calls too.
    calls.clear()
    later = SimpleNamespace(
        _fixtureinfo=SimpleNamespace(
            name2fixturedefs={"exported": [shared], "tmp": [own]}
        )
    )
    plugin.pytest_runtest_teardown(later)
    assert calls == {"export_scorer"}
