"""Faults of the scorer folder (issue 13): tampered files, hand-made manifests and
scorer.json, pinned versions, and what the pyfunc reads.

Every case runs on a real exported scorer (the synthetic project's; the check does
not depend on the source) copied to a scratch folder. A "resealed" tamper also
recomputes the manifest, as anyone who can write the folder can: the check then
passes unless the version is pinned, and the version always changes. A tamper that
would run code touches a marker file; the tests assert that nothing made it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pickle
import py_compile
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from projects import Project
from typer.testing import CliRunner

from lead_ml import stages
from lead_ml.cli import app
from lead_ml.model import load_model, split_frames
from lead_ml.scorer import (
    ALLOW_ACTIVITIES_ENV,
    EXPECT_VERSION_ENV,
    FORMAT_VERSION,
    MAX_SMALL_BYTES,
    SPEC_KEYS,
    Scorer,
    bundle_spec,
    export_scorer,
    file_digest,
    folder_files,
    load_pyfunc,
    load_scorer,
    manifest_version,
    signature_example,
)
from lead_ml.sources import read_deals
from lead_ml.vocab import ScorerError

BUNDLE = Path("artifacts/bundle")
MANIFEST = BUNDLE / "manifest.json"
SPEC = BUNDLE / "scorer.json"
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*AnyType:UserWarning"),
    pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:mlflow"),
]


@pytest.fixture(scope="module")
def scorer_dir(synthetic_project: Project) -> Path:
    return synthetic_project.path("models/scorer")


@pytest.fixture(scope="module")
def scorer(scorer_dir: Path) -> Scorer:
    return load_scorer(scorer_dir)


@pytest.fixture(scope="module")
def leads_file(
    synthetic_project: Project, scorer: Scorer, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = tmp_path_factory.mktemp("leads") / "leads.parquet"
    signature_example(scorer, synthetic_project.leads().head(30)).to_parquet(path)
    return path


@pytest.fixture
def copy(scorer_dir: Path, tmp_path: Path) -> Path:
    """A scratch copy of the exported scorer folder, to damage."""
    return Path(shutil.copytree(scorer_dir, tmp_path / "scorer"))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """The file a tamper that runs code would create."""
    return tmp_path / "ran"


def reseal(folder: Path) -> str:
    """Recompute the manifest from the files, as anyone who can write the folder
    can; the new model version."""
    files = {path: file_digest(folder, path) for path in folder_files(folder)}
    manifest = {
        "format_version": FORMAT_VERSION,
        "model_version": manifest_version(files),
        "files": files,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return str(manifest["model_version"])


def _add_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True)
    path.write_text(text)


def edit_json(path: Path, change: Callable[[Any], object]) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def edit_mlmodel(folder: Path, change: Callable[[dict[str, Any]], object]) -> None:
    meta = yaml.safe_load((folder / "MLmodel").read_text())
    change(meta)
    (folder / "MLmodel").write_text(yaml.safe_dump(meta))


def touching(marker: Path) -> str:
    """Python that creates the marker when it runs."""
    return f"\nimport pathlib\npathlib.Path({str(marker)!r}).touch()\n"


def score(*arguments: object) -> tuple[int, str]:
    """`lead-ml score --no-explain` with these arguments: exit code and output."""
    result = CliRunner().invoke(app, ["score", "--no-explain", *map(str, arguments)])
    return result.exit_code, result.output


def one_line(output: str) -> str:
    """The error line of a refused command (no traceback)."""
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    return " ".join(lines)


# --- every file kind, tampered ------------------------------------------------------


def _flip_a_digit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    middle += next(i for i, b in enumerate(data[middle:]) if chr(b).isdigit())
    data[middle] = ord("7") if data[middle] != ord("7") else ord("3")
    path.write_bytes(bytes(data))


def _raise_a_leaf(path: Path) -> None:
    """The first digit of the first leaf value changed (same length: the booster
    loads and scores otherwise)."""
    text = path.read_text()
    start = text.index("leaf_value=") + len("leaf_value=")
    start += text[start] == "-"
    digit = "8" if text[start] == "9" else "9"
    path.write_text(text[:start] + digit + text[start + 1 :])


def _calibrate_up(spec: dict[str, Any]) -> None:
    spec["model"]["calibration"]["intercept"] += 4.0


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def _code_folder(folder: Path, marker: Path) -> None:
    """MLflow puts a `code` folder on sys.path, and imports lead_ml from it."""
    edit_mlmodel(folder, lambda m: m["flavors"]["python_function"].update(code="code"))


#: Tamper -> (edit of the folder given the marker, the file the refusal names).
TAMPERS: dict[str, tuple[Callable[[Path, Path], object], str]] = {
    "booster": (
        lambda f, m: _raise_a_leaf(f / BUNDLE / "booster.txt"),
        f"{BUNDLE}/booster.txt",
    ),
    "calibration": (lambda f, m: edit_json(f / SPEC, _calibrate_up), str(SPEC)),
    "MLmodel": (_code_folder, "MLmodel"),
    "models-from-code file": (
        lambda f, m: _append(f / "pyfunc_model.py", touching(m)),
        "pyfunc_model.py",
    ),
    "requirements": (
        lambda f, m: _append(f / "requirements.txt", "evil-package==1.0\n"),
        "requirements.txt",
    ),
    "conda env": (
        lambda f, m: _append(f / "conda.yaml", "- evil-package\n"),
        "conda.yaml",
    ),
    "input example": (
        lambda f, m: _flip_a_digit(f / "input_example.json"),
        "input_example.json",
    ),
    "added code": (
        lambda f, m: _add_file(f / "code/lead_ml/__init__.py", touching(m)),
        "code/lead_ml/__init__.py",
    ),
    "added .pth": (
        lambda f, m: (f / "lead_ml.pth").write_text(touching(m)),
        "lead_ml.pth",
    ),
    "added to the bundle": (
        lambda f, m: (f / BUNDLE / "scorer.py").write_text(touching(m)),
        "artifacts/bundle/scorer.py",
    ),
}
ADDED = {"added code", "added .pth", "added to the bundle"}


@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_a_tampered_file_is_refused_by_name_and_nothing_runs(
    copy: Path, marker: Path, leads_file: Path, tmp_path: Path, tamper: str
) -> None:
    edit, named = TAMPERS[tamper]
    edit(copy, marker)
    out = tmp_path / "scores.parquet"
    code, output = score("--model", copy, "--input", leads_file, "--output", out)
    why = "not part of the exported scorer" if tamper in ADDED else "checksum mismatch"
    assert code == 2 and f"{copy / named}: {why}" in one_line(output)
    with pytest.raises(ScorerError, match=why):
        load_pyfunc(copy)
    assert not out.exists() and not marker.exists()


@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_a_resealed_tamper_changes_the_version_and_a_pin_refuses_it(
    copy: Path,
    scorer: Scorer,
    marker: Path,
    leads_file: Path,
    tmp_path: Path,
    tamper: str,
) -> None:
    edit, _ = TAMPERS[tamper]
    edit(copy, marker)
    resealed = reseal(copy)
    assert resealed != scorer.model_version
    out = tmp_path / "scores.parquet"
    pinned = ("--expect-version", scorer.model_version)
    code, output = score(
        "--model", copy, "--input", leads_file, "--output", out, *pinned
    )
    line = one_line(output)
    assert code == 2 and f"model version {resealed}" in line
    assert f"but {scorer.model_version} is expected" in line
    with pytest.raises(ScorerError, match="is expected"):
        load_pyfunc(copy, expect_version=scorer.model_version)
    assert not out.exists() and not marker.exists()
    # Unpinned, the folder checks out: `lead-ml score` reads the bundle only, so
    # not even a resealed edit of the code it would run executes.
    code, output = score("--model", copy, "--input", leads_file, "--output", out)
    assert code == 0, output
    assert (pd.read_parquet(out)["model_version"] == resealed).all()
    assert not marker.exists()


def test_a_resealed_calibration_shows_in_the_version_of_every_row(
    copy: Path, scorer: Scorer, synthetic_project: Project
) -> None:
    edit_json(copy / SPEC, _calibrate_up)
    resealed = reseal(copy)
    leads = synthetic_project.leads().head(50)
    before, after = scorer.score(leads), load_scorer(copy).score(leads)
    assert (after["probability"] > before["probability"] + 0.2).mean() > 0.5
    assert set(before["model_version"]) == {scorer.model_version}
    assert set(after["model_version"]) == {resealed}


@pytest.mark.parametrize(
    "edit",
    [
        lambda t: t.replace("leaf_value=", "leaf_value=1", 1),
        lambda t: t.replace("[boosting: gbdt]", "[boosting gbdt", 1),
    ],
    ids=["a tree longer than tree_sizes says", "a broken parameter line"],
)
def test_a_resealed_booster_lightgbm_would_abort_on_is_one_line(
    copy: Path, leads_file: Path, tmp_path: Path, edit: Callable[[str], str]
) -> None:
    # LightGBM aborts the process (no exception) on either: checked before it reads.
    booster = copy / BUNDLE / "booster.txt"
    booster.write_text(edit(booster.read_text()))
    reseal(copy)
    out = tmp_path / "scores.parquet"
    code, output = score("--model", copy, "--input", leads_file, "--output", out)
    assert code == 2 and "booster.txt: not a LightGBM model" in one_line(output)


def test_a_tampered_booster_is_refused_by_mlflow_itself(copy: Path) -> None:
    import mlflow

    _flip_a_digit(copy / BUNDLE / "booster.txt")
    with pytest.raises(ScorerError, match="booster.txt: checksum mismatch"):
        mlflow.pyfunc.load_model(str(copy))


def test_an_mlmodel_loading_a_pickle_is_refused_before_mlflow_reads_it(
    copy: Path, scorer: Scorer, marker: Path
) -> None:
    class Touch:
        def __reduce__(self) -> tuple[Any, ...]:
            return (Path(marker).touch, ())

    (copy / "python_model.pkl").write_bytes(pickle.dumps(Touch()))

    def swap(meta: dict[str, Any]) -> None:
        pyfunc = meta["flavors"]["python_function"]
        del pyfunc["model_code_path"]
        pyfunc.update(
            loader_module="mlflow.pyfunc.model", python_model="python_model.pkl"
        )

    edit_mlmodel(copy, swap)
    with pytest.raises(ScorerError, match="python_model.pkl: not part of"):
        load_pyfunc(copy)
    resealed = reseal(copy)
    with pytest.raises(ScorerError, match=f"model version {resealed}"):
        load_pyfunc(copy, expect_version=scorer.model_version)
    assert not marker.exists()


def test_python_bytecode_of_the_model_file_is_allowed_but_never_read_by_load_pyfunc(
    copy: Path, scorer: Scorer, marker: Path, tmp_path: Path
) -> None:
    import mlflow

    source = copy / "pyfunc_model.py"
    cache = Path(importlib.util.cache_from_source(str(source)))
    # Bytecode of another source, stamped with the real file's time and size:
    # Python would run it in place of pyfunc_model.py.
    planted = tmp_path / "planted.py"
    planted.write_text(source.read_text() + touching(marker))
    timestamped = py_compile.PycInvalidationMode.TIMESTAMP
    py_compile.compile(str(planted), cfile=str(cache), invalidation_mode=timestamped)
    stat = source.stat()
    header = int(stat.st_mtime).to_bytes(4, "little") + stat.st_size.to_bytes(
        4, "little"
    )
    data = cache.read_bytes()
    cache.write_bytes(data[:8] + header + data[16:])
    assert load_scorer(copy).model_version == scorer.model_version
    load_pyfunc(copy)
    assert not marker.exists()
    mlflow.pyfunc.load_model(str(copy))  # what load_pyfunc guards against
    assert marker.exists()
    other = copy / "__pycache__" / "scorer.cpython-311.pyc"
    shutil.copyfile(cache, other)
    with pytest.raises(ScorerError, match="scorer.cpython-311.pyc: not part of"):
        load_scorer(copy)


def test_a_missing_file_and_odd_entries_are_refused(copy: Path, tmp_path: Path) -> None:
    (copy / "conda.yaml").unlink()
    with pytest.raises(ScorerError, match="conda.yaml: missing from the scorer folder"):
        load_scorer(copy)
    (copy / "conda.yaml").symlink_to(tmp_path)  # a link to a folder
    with pytest.raises(ScorerError, match="conda.yaml: a link to a folder"):
        load_scorer(copy)


def test_files_linked_from_a_cache_check_out_by_content(
    copy: Path, scorer: Scorer, tmp_path: Path
) -> None:
    # DVC's symlink or hardlink cache types put links in place of the files.
    cached = tmp_path / "cache-booster"
    (copy / BUNDLE / "booster.txt").rename(cached)
    (copy / BUNDLE / "booster.txt").symlink_to(cached)
    assert load_scorer(copy).model_version == scorer.model_version
    _flip_a_digit(cached)
    with pytest.raises(ScorerError, match="booster.txt: checksum mismatch"):
        load_scorer(copy)


# --- a pinned version ---------------------------------------------------------------


def test_expect_version_accepts_the_model_and_refuses_any_other(
    scorer_dir: Path, scorer: Scorer, leads_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scores.parquet"
    common = ("--model", scorer_dir, "--input", leads_file, "--output", out)
    bare = scorer.model_version.removeprefix("lead-ml-scorer:").upper()
    for pin in (scorer.model_version, bare):
        code, output = score(*common, "--expect-version", pin)
        assert code == 0, output
    assert (pd.read_parquet(out)["model_version"] == scorer.model_version).all()
    out.unlink()
    other = scorer.model_version[:-4] + "0000"
    code, output = score(*common, "--expect-version", other)
    assert code == 2 and f"but {other} is expected" in one_line(output)
    code, output = score(*common, "--expect-version", "abc123")
    assert code == 2 and "'abc123': not a model version" in one_line(output)
    assert not out.exists()


def test_the_pyfunc_takes_the_pin_from_the_environment_or_load_pyfunc(
    scorer_dir: Path, scorer: Scorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    other = scorer.model_version[:-4] + "0000"
    with pytest.raises(ScorerError, match=f"but {other} is expected"):
        load_pyfunc(scorer_dir, expect_version=other)
    load_pyfunc(scorer_dir, expect_version=scorer.model_version)
    monkeypatch.setenv(EXPECT_VERSION_ENV, other)
    with pytest.raises(ScorerError, match=f"but {other} is expected"):
        mlflow.pyfunc.load_model(str(scorer_dir))
    # Two pins: each is checked, so two different ones refuse every model.
    with pytest.raises(ScorerError, match=f"but {other} is expected"):
        load_pyfunc(scorer_dir, expect_version=scorer.model_version)
    monkeypatch.setenv(EXPECT_VERSION_ENV, scorer.model_version)
    mlflow.pyfunc.load_model(str(scorer_dir))


# --- hand-made manifests ------------------------------------------------------------


def _manifest(change: Callable[[dict[str, Any]], object]) -> Callable[[Path], object]:
    return lambda folder: edit_json(folder / MANIFEST, change)


def _drop_listed(folder: Path) -> None:
    (folder / "pyfunc_model.py").unlink()
    reseal(folder)


#: Damage -> what the refusal says.
MANIFESTS: dict[str, tuple[Callable[[Path], object], str]] = {
    "not JSON": (
        lambda f: (f / MANIFEST).write_text('{"files": {'),
        r"manifest\.json: not valid JSON",
    ),
    "not an object": (
        lambda f: (f / MANIFEST).write_text("[1, 2]"),
        r"manifest\.json: \(the whole file\): input should be an object",
    ),
    "files not a mapping": (
        _manifest(lambda m: m.update(files=["booster.txt"])),
        r"manifest\.json: files: input should be an object",
    ),
    "a digest that is no sha256": (
        _manifest(lambda m: m["files"].update({"MLmodel": "12ab"})),
        r"manifest\.json: files\.MLmodel: string should match pattern",
    ),
    "a path outside the folder": (
        _manifest(lambda m: m["files"].update({"../outside": "0" * 64})),
        r"manifest\.json: files\['\.\./outside'\]: not a path inside the folder",
    ),
    "an absolute path": (
        _manifest(lambda m: m["files"].update({"/etc/passwd": "0" * 64})),
        r"manifest\.json: files\['/etc/passwd'\]: not a path inside the folder",
    ),
    "a required file left out": (
        _drop_listed,
        r"manifest\.json: files: lacks pyfunc_model\.py",
    ),
    "a version that is not the hash": (
        _manifest(lambda m: m.update(model_version="lead-ml-scorer:" + "0" * 64)),
        r"manifest\.json: model_version lead-ml-scorer:0+ is not the hash",
    ),
    "another key": (
        _manifest(lambda m: m.update(signed_by="me")),
        r"manifest\.json: signed_by: extra inputs are not permitted",
    ),
    "too large": (
        lambda f: (f / MANIFEST).write_text(" " * (MAX_SMALL_BYTES + 1)),
        r"manifest\.json: larger than 1,048,576 bytes",
    ),
    "another format": (
        _manifest(lambda m: m.update(format_version=FORMAT_VERSION + 1)),
        f"scorer format {FORMAT_VERSION + 1} .* reads format {FORMAT_VERSION}",
    ),
}


@pytest.mark.parametrize("damage", list(MANIFESTS))
def test_a_hand_made_manifest_is_refused_naming_the_key(
    copy: Path, damage: str
) -> None:
    spoil, message = MANIFESTS[damage]
    spoil(copy)
    with pytest.raises(ScorerError, match=message) as refused:
        load_scorer(copy)
    assert "\n" not in str(refused.value)


def test_a_folder_of_the_old_format_is_refused_with_what_to_do(copy: Path) -> None:
    sums = {"booster.txt": "0" * 64, "scorer.json": "0" * 64}
    (copy / BUNDLE / "checksums.json").write_text(json.dumps(sums))
    (copy / MANIFEST).unlink()
    edit_json(
        copy / SPEC, lambda s: s.update(format_version=2, lead_ml_version="0.0.9")
    )
    with pytest.raises(ScorerError) as refused:
        load_scorer(copy)
    message = str(refused.value)
    assert "scorer format 2 (exported by lead-ml 0.0.9)" in message
    assert f"reads format {FORMAT_VERSION}; re-export" in message


def test_a_path_without_a_scorer_is_refused(tmp_path: Path, scorer_dir: Path) -> None:
    with pytest.raises(ScorerError, match="no such folder"):
        load_scorer(tmp_path / "nowhere")
    with pytest.raises(ScorerError, match="no lead-ml scorer here"):
        load_scorer(tmp_path)
    with pytest.raises(ScorerError, match="no lead-ml scorer here"):
        load_scorer(scorer_dir / BUNDLE / "booster.txt")


# --- hand-made scorer.json ----------------------------------------------------------


def _spec(change: Callable[[dict[str, Any]], object]) -> Callable[[Path], object]:
    return lambda folder: edit_json(folder / SPEC, change)


def _spec_text(change: Callable[[str], str]) -> Callable[[Path], object]:
    def edit(folder: Path) -> None:
        (folder / SPEC).write_text(change((folder / SPEC).read_text()))

    return edit


def _set(*path_and_value: Any) -> Callable[[dict[str, Any]], object]:
    *keys, value = path_and_value

    def change(spec: dict[str, Any]) -> None:
        inner = spec
        for key in keys[:-1]:
            inner = inner[key]
        inner[keys[-1]] = value

    return change


def _drop_a_feature(spec: dict[str, Any]) -> None:
    """The last feature gone from every part of scorer.json, consistently: only the
    booster still has it."""
    name = spec["model"]["feature_names"].pop()
    spec["registry"]["specs"] = [
        s for s in spec["registry"]["specs"] if s["name"] != name
    ]
    for part in (spec["model"]["categories"], spec["model"]["dimensions"]):
        part.pop(name, None)
    spec["drift_reference"].pop(name)
    spec["answers"].pop(name, None)
    spec["answers"] = {
        k: [pair for pair in v if name not in pair[0]]
        for k, v in spec["answers"].items()
    }
    if name in spec["model"].get("complete_features", []):
        spec["model"]["complete_features"].remove(name)


def _nested(text: str) -> str:
    text = json.dumps(json.loads(text))
    start = text.index('"answers": ') + len('"answers": ')
    end = text.index(', "bands"')
    return text[:start] + "[" * 100_000 + "]" * 100_000 + text[end:]


def _first_feature(spec: dict[str, Any]) -> str:
    return str(spec["model"]["feature_names"][0])


#: Crafted scorer.json -> (edit, the key and problem the refusal names).
SPECS: dict[str, tuple[Callable[[Path], object], str]] = {
    "a number as text": (
        _spec(_set("model", "calibration", "slope", "1.0")),
        r"model\.calibration\.slope: input should be a valid number, got '1\.0'",
    ),
    "true as a count": (
        _spec(_set("model", "best_iteration", True)),
        r"model\.best_iteration: input should be a valid integer, got True",
    ),
    "a count as a float": (
        _spec(_set("registry", "snapshot_days", 14.0)),
        r"registry\.snapshot_days: input should be a valid integer",
    ),
    "an unknown kind": (
        _spec(_set("registry", "specs", 0, "kind", "pickle")),
        r"registry\.specs\[0\]\.kind: input should be 'number'",
    ),
    "an unknown key": (
        _spec(_set("model", "loader", "os.system")),
        r"model\.loader: unexpected keyword argument",
    ),
    "a list for an object": (
        _spec(_set("contract", [1, 2])),
        r"contract: input should be an object, got \[1, 2\]",
    ),
    "one feature fewer than the booster": (
        _spec(_drop_a_feature),
        r"model\.feature_names: \d+ features, but booster\.txt has \d+",
    ),
    "features the registry lacks": (
        _spec(lambda s: s["registry"]["specs"].pop()),
        r"registry\.specs: the features differ from model\.feature_names",
    ),
    "deeply nested": (
        _spec_text(_nested),
        r"scorer\.json: not valid JSON \(recursion limit exceeded",
    ),
    "a huge integer": (
        _spec(_set("registry", "snapshot_days", 10**12)),
        r"registry\.snapshot_days: expected 0 to 36,500 days",
    ),
    "a huge iteration": (
        _spec(_set("model", "best_iteration", 10**15)),
        r"model\.best_iteration: 1000000000000000, but booster\.txt has \d+ trees",
    ),
    "a number with 5,000 digits": (
        _spec_text(
            lambda t: t.replace(
                '"best_iteration": ', '"best_iteration": 9' + "9" * 5000, 1
            )
        ),
        r"scorer\.json: not valid JSON \(number out of range",
    ),
    "a huge calibration": (
        _spec(_set("model", "calibration", "slope", 1e300)),
        r"model\.calibration\.slope: beyond \+-1e\+06",
    ),
    "infinity": (
        _spec_text(lambda t: t.replace('"slope": ', '"slope": 1e999, "_": ', 1)),
        r"model\.calibration\.slope: input should be a finite number",
    ),
    "NaN": (
        _spec_text(lambda t: t.replace('"intercept": ', '"intercept": NaN, "_": ', 1)),
        r"model\.calibration\.intercept: input should be a finite number",
    ),
    "thresholds out of order": (
        _spec(_set("model", "band_thresholds", {"A": 0.1, "B": 0.5, "C": 0.2})),
        r"model\.band_thresholds: expected 0 <= C <= B <= A <= 1",
    ),
    "a drift reference without a feature": (
        _spec(lambda s: s["drift_reference"].pop(_first_feature(s))),
        r"drift_reference: lacks ",
    ),
    "bounds of a text column": (
        _spec(
            lambda s: s["contract"]["bounds"].update(
                {s["contract"]["id_column"]: [0, 1]}
            )
        ),
        r"contract\.bounds\.deal_id: not a number column",
    ),
    "no lists of keys": (
        _spec(lambda s: [s.pop(k) for k in ("registry", "drift_reference")]),
        r"scorer\.json: lacks registry, drift_reference",
    ),
    "not an object": (
        _spec_text(lambda t: "[1, 2]"),
        r"scorer\.json: \(the whole file\): input should be an object",
    ),
    "another format": (
        _spec(
            lambda s: s.update(
                format_version=FORMAT_VERSION + 98, lead_ml_version="9.9.9"
            )
        ),
        rf"scorer format {FORMAT_VERSION + 98} \(exported by lead-ml 9\.9\.9\), but "
        rf"lead-ml \S+ reads format {FORMAT_VERSION}",
    ),
}


@pytest.mark.parametrize("case", list(SPECS))
def test_a_crafted_scorer_json_is_one_line_naming_the_file_and_key(
    copy: Path, leads_file: Path, tmp_path: Path, case: str
) -> None:
    assert {"registry", "drift_reference"} <= set(SPEC_KEYS)
    craft, message = SPECS[case]
    craft(copy)
    reseal(copy)
    with pytest.raises(ScorerError, match=message) as refused:
        load_scorer(copy)
    assert str(copy) in str(refused.value) and "\n" not in str(refused.value)
    out = tmp_path / "scores.parquet"
    code, output = score("--model", copy, "--input", leads_file, "--output", out)
    assert code == 2 and "scorer" in one_line(output) and not out.exists()


# --- the pyfunc reads no file a request names unless enabled ------------------------


def test_activities_path_is_refused_unless_enabled(
    synthetic_project: Project,
    scorer_dir: Path,
    scorer: Scorer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow

    log = synthetic_project.activities_file(tmp_path)
    assert log is not None
    leads = signature_example(scorer, synthetic_project.leads().head(20))
    asked = {"activities_path": str(log), "explain": False}
    served = mlflow.pyfunc.load_model(str(scorer_dir))
    with pytest.raises(ScorerError, match=f"set {ALLOW_ACTIVITIES_ENV}=1"):
        served.predict(leads, params=asked)
    without = served.predict(leads, params={"explain": False})
    enabled = load_pyfunc(scorer_dir, allow_activities_path=True)
    counted = enabled.predict(leads, params=asked)
    assert not np.allclose(counted["probability"], without["probability"])
    monkeypatch.setenv(ALLOW_ACTIVITIES_ENV, "1")
    by_environment = mlflow.pyfunc.load_model(str(scorer_dir))
    pd.testing.assert_frame_equal(by_environment.predict(leads, params=asked), counted)


# --- the export itself --------------------------------------------------------------


def export_again(
    project: Project, out_dir: Path, allow_activities_path: bool = False
) -> Path:
    """The project's scorer exported again (as the export stage does, without
    logging it to MLflow)."""
    model = load_model(project.path("models/model"))
    registry = stages.read_registry(project.path("data/features/registry.json"))
    split = split_frames(project.features())
    spec = bundle_spec(model, registry, project.params.source, split.train)
    deals = read_deals(project.path("data/validated"))
    example = stages.example_leads(
        project.params, deals, list(spec["contract"]["kinds"])
    )
    with tempfile.TemporaryDirectory() as staging:
        export_scorer(
            model,
            spec,
            example,
            out_dir,
            Path(staging) / "bundle",
            allow_activities_path=allow_activities_path,
        )
    return out_dir


def _hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_the_same_model_exports_the_same_bytes_and_version(
    synthetic_project: Project, scorer_dir: Path, scorer: Scorer, tmp_path: Path
) -> None:
    again = export_again(synthetic_project, tmp_path / "again")
    assert _hashes(again) == _hashes(scorer_dir)
    assert load_scorer(again).model_version == scorer.model_version
    meta = yaml.safe_load((again / "MLmodel").read_text())
    assert meta["model_uuid"] == scorer.model_version.split(":")[1][:32]
    assert str(tmp_path) not in (again / "MLmodel").read_text()


def test_an_export_may_enable_activities_path(
    synthetic_project: Project, scorer: Scorer, tmp_path: Path
) -> None:
    import mlflow

    folder = export_again(synthetic_project, tmp_path / "enabled", True)
    assert load_scorer(folder).model_version != scorer.model_version
    log = synthetic_project.activities_file(tmp_path)
    leads = signature_example(scorer, synthetic_project.leads().head(5))
    model = mlflow.pyfunc.load_model(str(folder))
    scored = model.predict(leads, params={"activities_path": str(log)})
    assert scored["reject_reason"].isna().all()
    assert os.environ.get(ALLOW_ACTIVITIES_ENV) is None
