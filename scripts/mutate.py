"""Mutation testing of lead-ml's core modules (`make mutate`), with mutmut 3.

Each module is mutated on its own, in its own folder ``mutants/<module>/`` (git- and
dvc-ignored), and each of its mutants runs only against the module's fast tests
(:data:`MODULES`), never the whole suite: mutmut maps every test of that selection to
the functions it calls and runs a mutant against the tests that call its function.
The settings every module shares are ``[tool.mutmut]`` in pyproject.toml; this script
adds the module's ``only_mutate`` and test selection to a copy of it.

The summary goes to ``reports/mutation.json``: per module the mutants, how many were
killed, survived, judged equivalent (``tests/mutation_equivalent.txt``: a mutant's name
and why it cannot change behaviour), and the score, killed / (mutants - equivalent).
A timeout counts as killed (the mutant never finished its tests); a mutant no selected
test reaches counts as survived; a mutant whose tests ended otherwise (stopped by
mutmut's wall-clock limit on a busy machine: "suspicious") is counted as unclear, left
out of the score and retested by ``--retest``.

Usage: ``python scripts/mutate.py [module ...] [--retest]``. A run judges the
mutants not judged yet (every one the first time; later the new ones and those of
functions edited since, named to mutmut: :func:`unjudged`); ``--retest`` runs again
only the survivors and unclear mutants of an earlier run (after adding tests). Both
keep every other verdict even when mutmut reset them (it forgets them all when the
test selection changes, e.g. a test file added to :data:`MODULES`); ``--summary``
only rewrites the JSON from the results on disk. Every verdict is also kept in
``reports/mutation_verdicts.json`` (committed, as mutants/ is not): in a clean
checkout a run judges only the mutants of functions new or edited since. mutmut
runs niced, one worker (``--max-children 1``; ``--children 2`` on an otherwise idle
machine).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "mutants"
SUMMARY = ROOT / "reports" / "mutation.json"
#: Every mutant's verdict and every mutated function's hash, committed: mutants/ is
#: not, so a clean checkout (or another machine) judges only what changed since.
STORE = ROOT / "reports" / "mutation_verdicts.json"
EQUIVALENT = ROOT / "tests" / "mutation_equivalent.txt"

#: Core module -> its source files and its fast tests, smallest module first.
MODULES: dict[str, tuple[list[str], list[str]]] = {
    "baseline": (
        ["baseline.py"],
        [
            "tests/test_baseline.py",
            "tests/test_bant_messages.py",
            "tests/test_baseline_rule.py",
        ],
    ),
    "evaluate": (
        ["evaluate.py"],
        ["tests/test_evaluate.py", "tests/test_evaluate_claims.py"],
    ),
    "model": (
        ["model.py"],
        [
            "tests/test_model.py",
            "tests/test_model_units.py",
            "tests/test_small_data_units.py",
        ],
    ),
    "features": (
        ["features.py"],
        [
            "tests/test_features.py",
            "tests/test_features_units.py",
            "tests/test_missing.py",
        ],
    ),
    "explanations": (
        ["explain.py", "fastshap.py"],
        [
            "tests/test_explain.py",
            "tests/test_fastshap.py",
            "tests/test_explain_units.py",
        ],
    ),
    "scorer": (
        ["scorer.py"],
        [
            "tests/test_scorer.py",
            "tests/test_missing.py",
            "tests/test_scorer_units.py",
            "tests/test_scorer_folder_units.py",
            "tests/test_scorer_serving_units.py",
            "tests/test_scorer_export_units.py",
            "tests/test_scorer_reference_units.py",
        ],
    ),
    "batch": (
        ["batch.py"],
        [
            "tests/test_batch.py",
            "tests/test_batch_units.py",
            "tests/test_batch_job_units.py",
            "tests/test_batch_files_units.py",
        ],
    ),
}

#: mutmut's exit codes by outcome (mutmut.stats.status_by_exit_code, grouped).
KILLED = {1, 3, 36, -24, 24, 152, 255, -11, -9, 37}
SURVIVED = {0, 5, 33}
NOT_RUN = {None, 2, 34}


def mutmut_table() -> dict[str, Any]:
    """The shared ``[tool.mutmut]`` settings of pyproject.toml."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    return dict(data["tool"]["mutmut"])


def toml_value(value: Any) -> str:
    """A str, number, bool or list of them as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    return "[" + ", ".join(toml_value(v) for v in value) + "]"


def module_pyproject(module: str) -> str:
    """pyproject.toml for a module's folder: the project's, its [tool.mutmut] made
    the module's (its files to mutate, its tests)."""
    files, tests = MODULES[module]
    text = (ROOT / "pyproject.toml").read_text("utf-8")
    # Drop the shared table (up to the next table header): it is written back below.
    text = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[)", "", text + "\n[end]")
    text = text.removesuffix("\n[end]")
    table = mutmut_table() | {
        "only_mutate": [f"src/lead_ml/{f}" for f in files],
        "pytest_add_cli_args_test_selection": tests,
    }
    lines = [f"{key} = {toml_value(value)}" for key, value in table.items()]
    return text + "\n[tool.mutmut]\n" + "\n".join(lines) + "\n"


def prepare(module: str) -> Path:
    """The module's folder, its code and tests linked in (mutmut copies them)."""
    folder = WORK / module
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(module_pyproject(module), "utf-8")
    for name in ["src", "tests", *mutmut_table().get("also_copy", [])]:
        link = folder / name
        if not link.is_symlink():
            link.symlink_to(ROOT / name, target_is_directory=(ROOT / name).is_dir())
    return folder


def results(module: str) -> dict[str, int | None]:
    """Exit code of each mutant of a module's files (None: not run yet)."""
    codes: dict[str, int | None] = {}
    for file_codes, _ in verdicts(module).values():
        codes |= file_codes
    return codes


def equivalents() -> dict[str, str]:
    """Mutants judged equivalent: name -> why (tests/mutation_equivalent.txt)."""
    found: dict[str, str] = {}
    if EQUIVALENT.exists():
        for line in EQUIVALENT.read_text("utf-8").splitlines():
            name, _, reason = line.partition("#")
            if name.strip():
                found[name.strip()] = reason.strip()
    return found


def summarise(module: str, seconds: float | None) -> dict[str, Any]:
    """Counts and score of a module's last run."""
    codes = results(module)
    judged = equivalents()
    survivors = sorted(k for k, c in codes.items() if c in SURVIVED)
    equivalent = [k for k in survivors if k in judged]
    killed = sum(1 for c in codes.values() if c in KILLED)
    not_run = sum(1 for c in codes.values() if c in NOT_RUN)
    unclear = sorted(
        k for k, c in codes.items() if c not in KILLED | SURVIVED | NOT_RUN
    )
    counted = len(codes) - not_run - len(unclear) - len(equivalent)
    return {
        "files": [f"src/lead_ml/{f}" for f in MODULES[module][0]],
        "tests": MODULES[module][1],
        "mutants": len(codes),
        "killed": killed,
        "survived": len(survivors) - len(equivalent),
        "equivalent": len(equivalent),
        "not_run": not_run,
        # of the survivors: mutants in code no selected test calls
        "no_tests": sum(
            1 for k in survivors if codes[k] in {5, 33} and k not in judged
        ),
        "unclear": len(unclear),
        "score": round(killed / counted, 4) if counted else None,
        "seconds": None if seconds is None else round(seconds),
        "survivors": [k for k in survivors if k not in judged],
        "unclear_mutants": unclear,
        "equivalents": {k: judged[k] for k in equivalent},
    }


def run(
    module: str, retest: bool, also: Sequence[str] = (), children: int = 1
) -> float:
    """Run mutmut on one module (niced, ``children`` workers); seconds taken.

    A run judges the mutants not judged yet (every one the first time; later the
    new ones and those of functions edited since: :func:`unjudged`). ``retest``
    runs again only the survivors and unclear mutants (after tests were added), and
    the mutants matching the ``also`` patterns (e.g.
    ``lead_ml.model.x_scaled_train__mutmut_*``: a function edited since), keeping
    every other verdict.
    """
    folder = prepare(module)
    env = os.environ | {
        # LightGBM's and numba's thread pools do not survive mutmut's fork.
        "OMP_NUM_THREADS": "1",
        "NUMBA_NUM_THREADS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        # -p mutation_plugin ([tool.mutmut] pytest_add_cli_args) is imported from here
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT / "scripts"), os.environ.get("PYTHONPATH")) if p
        ),
    }
    names: list[str] = []
    if retest:
        judged = equivalents()
        names = [
            k
            for k, c in results(module).items()
            if c not in KILLED | NOT_RUN and k not in judged
        ]
        names += also
        if not names:
            return 0.0
    elif verdicts(module):
        # Named, not left to mutmut: after a test selection change it would judge
        # every mutant again, the ones already judged included.
        names = unjudged(module)
        if not names:
            return 0.0
    # pytest's temporary folders in a root of their own: other pytest runs on the
    # machine delete the folders of finished sessions (the projects the tests share).
    temporary = folder / "tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    env["PYTEST_DEBUG_TEMPROOT"] = str(temporary)
    before = verdicts(module)
    start = time.monotonic()
    try:
        mutmut(folder, env, names, children)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
        # Also when mutmut stopped early (it resets every verdict before it runs
        # the stats session, which can fail) or was interrupted.
        keep_verdicts(module, before)
        store_verdicts(module)
    return time.monotonic() - start


def current_mutants(module: str) -> tuple[list[str], dict[str, str]]:
    """The mutants mutmut makes of a module's files as they are now, and the hash
    of each mutated function (as ``hash_by_function_name`` names them): mutmut's
    own mutation of the source, without running anything."""
    from mutmut.mutation.file_mutation import mutate_file_contents
    from mutmut.utils.format_utils import get_mutant_name

    names: list[str] = []
    hashes: dict[str, str] = {}
    for name in MODULES[module][0]:
        relative = Path("src", "lead_ml", name)
        mutated = mutate_file_contents(
            str(relative), (ROOT / relative).read_text("utf-8")
        )
        names += [get_mutant_name(relative, m) for m in mutated.mutant_names]
        hashes |= mutated.hash_by_function_name
    return names, hashes


def to_judge(
    names: Sequence[str], hashes: dict[str, str], before: Verdicts
) -> list[str]:
    """Of the mutants ``names`` of the code as it is (their functions' ``hashes``),
    those without a verdict to keep: never judged, or of a function new or edited
    since the run that judged them (mutmut's own rule, which it applies to every
    mutant when the test selection changed).

    >>> to_judge(
    ...     ["m.x_f__mutmut_1", "m.x_f__mutmut_2", "m.x_g__mutmut_1",
    ...      "m.x_h__mutmut_1"],
    ...     {"x_f": "a", "x_g": "edited", "x_h": "new"},
    ...     {"m.py": ({"m.x_f__mutmut_1": 1, "m.x_f__mutmut_2": None,
    ...                "m.x_g__mutmut_1": 1}, {"x_f": "a", "x_g": "old"})},
    ... )
    ['m.x_f__mutmut_2', 'm.x_g__mutmut_1', 'm.x_h__mutmut_1']
    """
    codes: dict[str, int | None] = {}
    old_hashes: dict[str, str] = {}
    for file_codes, file_hashes in before.values():
        codes |= file_codes
        old_hashes |= file_hashes
    return [
        key
        for key in names
        if codes.get(key) is None
        or old_hashes.get(function_of(key)) != hashes.get(function_of(key))
    ]


def unjudged(module: str) -> list[str]:
    """The mutants of a module a run judges (:func:`to_judge`), given by name."""
    names, hashes = current_mutants(module)
    return to_judge(names, hashes, verdicts(module))


def mutmut(
    folder: Path, env: dict[str, str], names: list[str], children: int = 1
) -> None:
    """``mutmut run`` in a module's folder, niced, with ``children`` workers; with
    ``names``, only those mutants (judged again)."""
    command = [
        "nice",
        "-n",
        "15",
        str(Path(sys.executable).parent / "mutmut"),
        "run",
        "--max-children",
        str(children),
        *names,
    ]
    subprocess.run(command, cwd=folder, env=env, check=True)


Verdicts = dict[str, tuple[dict[str, int | None], dict[str, str]]]


def verdicts(module: str) -> Verdicts:
    """Per source file of a module: each mutant's exit code and each function's
    hash, as mutmut's ``.meta`` files hold them, or for a file without one (a clean
    checkout) as the committed store holds them (:data:`STORE`; empty before a
    first run)."""
    found: Verdicts = {}
    kept = stored(module)
    for name in MODULES[module][0]:
        meta = WORK / module / "mutants" / "src" / "lead_ml" / f"{name}.meta"
        if meta.exists():
            data = json.loads(meta.read_text("utf-8"))
            found[name] = (data["exit_code_by_key"], data["hash_by_function_name"])
        elif name in kept:
            found[name] = kept[name]
    return found


def stored(module: str) -> Verdicts:
    """A module's verdicts as the committed store (:data:`STORE`) holds them."""
    if not STORE.exists():
        return {}
    files = json.loads(STORE.read_text("utf-8")).get(module, {})
    return {name: (f["exit_codes"], f["function_hashes"]) for name, f in files.items()}


def store_verdicts(module: str) -> None:
    """Write a module's current verdicts into the committed store (the other
    modules' kept as they are), atomically, one writer at a time (two modules may
    run side by side)."""
    STORE.parent.mkdir(exist_ok=True)
    with open(STORE.with_name(f".{STORE.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        everything = json.loads(STORE.read_text("utf-8")) if STORE.exists() else {}
        everything[module] = {
            name: {"exit_codes": codes, "function_hashes": hashes}
            for name, (codes, hashes) in verdicts(module).items()
        }
        text = json.dumps(everything, indent=0, sort_keys=True) + "\n"
        partial = STORE.with_name(f".{STORE.name}.{os.getpid()}.tmp")
        partial.write_text(text, "utf-8")
        os.replace(partial, STORE)


def function_of(key: str) -> str:
    """The function a mutant's name belongs to, as ``hash_by_function_name`` names
    it: ``lead_ml.model.x_fit_platt__mutmut_3`` -> ``x_fit_platt``."""
    return key.rpartition("__mutmut_")[0].rpartition(".")[2]


def restored(
    codes: dict[str, int | None],
    hashes: dict[str, str],
    before: tuple[dict[str, int | None], dict[str, str]],
) -> dict[str, int | None]:
    """The exit codes after a retest, with the earlier verdicts given back to the
    mutants mutmut left unjudged whose function is unchanged since.

    mutmut forgets every verdict when the test selection changes (a test file
    added), and a mutant the earlier tests killed is still killed by a selection
    holding them; a mutant of a changed function is a new mutant and stays unrun.

    >>> restored(
    ...     {"m.x_f__mutmut_1": None, "m.x_g__mutmut_1": None, "m.x_f__mutmut_2": 0},
    ...     {"x_f": "a", "x_g": "new"},
    ...     ({"m.x_f__mutmut_1": 1, "m.x_g__mutmut_1": 1, "m.x_f__mutmut_2": 1},
    ...      {"x_f": "a", "x_g": "old"}),
    ... )
    {'m.x_f__mutmut_1': 1, 'm.x_g__mutmut_1': None, 'm.x_f__mutmut_2': 0}
    """
    old_codes, old_hashes = before
    kept = dict(codes)
    for key, code in codes.items():
        function = function_of(key)
        unchanged = function in hashes and old_hashes.get(function) == hashes[function]
        if code is None and old_codes.get(key) is not None and unchanged:
            kept[key] = old_codes[key]
    return kept


def keep_verdicts(module: str, before: Verdicts) -> None:
    """After a retest, the verdicts mutmut reset given back (:func:`restored`)."""
    for name in MODULES[module][0]:
        meta = WORK / module / "mutants" / "src" / "lead_ml" / f"{name}.meta"
        if name not in before or not meta.exists():
            continue
        data = json.loads(meta.read_text("utf-8"))
        data["exit_code_by_key"] = restored(
            data["exit_code_by_key"], data["hash_by_function_name"], before[name]
        )
        meta.write_text(json.dumps(data, indent=4), "utf-8")


def write_summary(measured: dict[str, dict[str, Any]]) -> None:
    """Merge this run's modules into reports/mutation.json."""
    previous = json.loads(SUMMARY.read_text("utf-8")) if SUMMARY.exists() else {}
    earlier = previous.get("modules", {})
    for name, module in measured.items():
        if module["seconds"] is None and name in earlier:  # --summary: not rerun
            module["seconds"] = earlier[name].get("seconds")
    modules = earlier | measured
    killed = sum(m["killed"] for m in modules.values())
    counted = sum(m["killed"] + m["survived"] for m in modules.values())
    summary = {
        "command": "make mutate",
        "tool": "mutmut " + version(),
        "target": 0.9,
        "score": round(killed / counted, 4) if counted else None,
        "modules": {k: modules[k] for k in MODULES if k in modules},
    }
    SUMMARY.parent.mkdir(exist_ok=True)
    SUMMARY.write_text(json.dumps(summary, indent=2) + "\n", "utf-8")


def version() -> str:
    """The installed mutmut's version."""
    from importlib.metadata import version as installed

    return installed("mutmut")


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"of {', '.join(MODULES)}")
    parser.add_argument("--retest", action="store_true")
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="PATTERN",
        help="with --retest, also run the mutants matching this (fnmatch) pattern",
    )
    parser.add_argument("--summary", action="store_true")
    parser.add_argument(
        "--children",
        type=int,
        default=1,
        help="mutants run side by side (1; 2 on an otherwise idle 2-core machine)",
    )
    args = parser.parse_args(argv)
    # A stop by SIGTERM (as by SIGINT) unwinds: run() then gives back the verdicts
    # mutmut reset and stores them (a plain SIGTERM would leave the store short).
    signal.signal(signal.SIGTERM, _stop)
    chosen = args.modules or list(MODULES)
    unknown = sorted(set(chosen) - set(MODULES))
    if unknown:
        parser.error(f"no core module {', '.join(unknown)}: choose of {list(MODULES)}")
    measured = {}
    for module in chosen:
        if args.summary and not verdicts(module):
            # Never judged in this checkout nor in the store: what the summary
            # says of it stays (rewriting it would report 0 mutants).
            print(f"{module}: no verdicts here; its summary is kept")  # noqa: T201
            continue
        seconds = (
            None if args.summary else run(module, args.retest, args.also, args.children)
        )
        if args.summary:
            store_verdicts(module)
        measured[module] = summarise(module, seconds)
        m = measured[module]
        print(  # noqa: T201 - the command's report
            f"{module}: {m['killed']} killed, {m['survived']} survived, "
            f"{m['equivalent']} equivalent of {m['mutants']}: score {m['score']}"
        )
        write_summary({module: m})  # after each module: a long run can be stopped
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
