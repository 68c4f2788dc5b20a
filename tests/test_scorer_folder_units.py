"""The scorer folder's checks on a small folder sealed here (no MLflow: the MLmodel
file is written as MLflow writes it, tests/small_scorer.py gives the model): the
manifest lists every file with its sha256 and the model version is the hash of that
list, any change to any file is refused naming it, and scorer.json and booster.txt
are checked against each other before anything is scored."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from small_scorer import raw_leads, refusal, small_scorer, unsealed

from lead_ml.scorer import (
    _REEXPORT,
    BUNDLE_DIR,
    EXPORT_TIME,
    FORMAT_VERSION,
    MAX_SMALL_BYTES,
    _tree_layout_problem,
    file_digest,
    find_folder,
    folder_files,
    load_scorer,
    manifest_version,
    read_manifest,
    read_spec,
    seal_folder,
    verify_folder,
)
from lead_ml.vocab import ScorerError


@pytest.fixture
def sealed(tmp_path: Path) -> tuple[Path, str]:
    folder = unsealed(tmp_path / "scorer")
    return folder, seal_folder(folder)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- sealing and loading -------------------------------------------------------------


def test_a_sealed_folder_loads_and_scores_as_the_scorer_it_was_made_of(
    sealed: tuple[Path, str],
) -> None:
    folder, version = sealed
    manifest = json.loads((folder / BUNDLE_DIR / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert sorted(manifest["files"]) == [
        "MLmodel",
        "artifacts/bundle/booster.txt",
        "artifacts/bundle/scorer.json",
        "pyfunc_model.py",
        "requirements.txt",
    ]
    for name in manifest["files"]:
        if name != "MLmodel":
            assert manifest["files"][name] == sha256(folder / name)
    assert version == manifest["model_version"] == manifest_version(manifest["files"])
    # MLmodel: the export's fixed time, a uuid of the version, paths in the folder.
    meta = yaml.safe_load((folder / "MLmodel").read_text())
    assert meta["utc_time_created"] == EXPORT_TIME
    assert meta["model_uuid"] == version.removeprefix("lead-ml-scorer:")[:32]
    pyfunc = meta["flavors"]["python_function"]
    assert pyfunc["model_code_path"] == "pyfunc_model.py"
    assert pyfunc["artifacts"]["bundle"]["uri"] == BUNDLE_DIR
    loaded = load_scorer(folder, expect_version=version)
    assert loaded.model_version == version
    raw = raw_leads(30, seed=41)
    expected = small_scorer().score(raw)
    got = loaded.score(raw)
    assert got["probability"].to_numpy() == pytest.approx(
        expected["probability"].to_numpy(float), rel=1e-12
    )
    assert got["top_reasons"].tolist() == expected["top_reasons"].tolist()
    assert (got["model_version"] == version).all()
    # The bundle folder names the same scorer; sealing again gives the same version.
    assert load_scorer(folder / BUNDLE_DIR).model_version == version
    assert seal_folder(folder) == version


def test_the_mlmodel_digest_ignores_what_mlflow_rewrites_on_every_save(
    sealed: tuple[Path, str],
) -> None:
    folder, _ = sealed
    before = file_digest(folder, "MLmodel")
    meta = yaml.safe_load((folder / "MLmodel").read_text())
    meta |= {"utc_time_created": "x", "run_id": "r", "model_size_bytes": 9}
    meta["flavors"]["python_function"]["model_code_path"] = "/tmp/a/pyfunc_model.py"
    meta["flavors"]["python_function"]["artifacts"]["bundle"]["uri"] = "/x"
    (folder / "MLmodel").write_text(yaml.safe_dump(meta))
    assert file_digest(folder, "MLmodel") == before
    meta["flavors"]["python_function"]["loader_module"] = "evil"
    (folder / "MLmodel").write_text(yaml.safe_dump(meta))
    assert file_digest(folder, "MLmodel") != before
    with pytest.raises(ScorerError, match="MLmodel: checksum mismatch"):
        verify_folder(folder)


def test_a_pinned_version_refuses_any_other_model(sealed: tuple[Path, str]) -> None:
    folder, version = sealed
    assert verify_folder(folder, version.removeprefix("lead-ml-scorer:")) == version
    other = "lead-ml-scorer:" + "0" * 64
    with pytest.raises(ScorerError, match=f"but {other} is expected"):
        load_scorer(folder, expect_version=other)


# --- what a folder check refuses -----------------------------------------------------


def edited(folder: Path, name: str, change: Callable[[bytes], bytes]) -> None:
    path = folder / name
    path.write_bytes(change(path.read_bytes()))


def test_a_changed_file_is_refused_naming_it(sealed: tuple[Path, str]) -> None:
    folder, _ = sealed
    edited(folder, "requirements.txt", lambda b: b + b"evil\n")
    with pytest.raises(ScorerError, match=r"requirements\.txt: checksum mismatch"):
        load_scorer(folder)


def test_a_file_the_manifest_does_not_list_is_refused(
    sealed: tuple[Path, str],
) -> None:
    folder, _ = sealed
    (folder / "a.pth").write_text("import os\n")
    with pytest.raises(ScorerError, match=r"a\.pth: not part of the exported scorer: "):
        verify_folder(folder)
    (folder / "b.py").write_text("")
    with pytest.raises(ScorerError, match=r"a\.pth: not part .*\(and 1 more\)"):
        verify_folder(folder)


def test_pythons_cache_of_the_model_code_is_the_only_file_left_unlisted(
    sealed: tuple[Path, str],
) -> None:
    folder, version = sealed
    cache = folder / "__pycache__"
    cache.mkdir()
    (cache / "pyfunc_model.cpython-311.pyc").write_bytes(b"\0")
    (cache / "pyfunc_model.cpython-311.opt-1.pyc").write_bytes(b"\0")
    assert verify_folder(folder) == version
    assert "__pycache__/pyfunc_model.cpython-311.pyc" not in folder_files(folder)
    (cache / "other.cpython-311.pyc").write_bytes(b"\0")
    with pytest.raises(ScorerError, match="other.cpython-311.pyc: not part"):
        verify_folder(folder)


def test_a_missing_file_and_an_edited_manifest_are_refused(
    sealed: tuple[Path, str],
) -> None:
    folder, _ = sealed
    manifest_path = folder / BUNDLE_DIR / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    (folder / "requirements.txt").unlink()
    with pytest.raises(ScorerError, match=r"requirements\.txt: missing from the"):
        verify_folder(folder)
    (folder / "requirements.txt").write_text("lead-ml\n")
    assert verify_folder(folder) == manifest["model_version"]
    manifest["model_version"] = "lead-ml-scorer:" + "1" * 64
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ScorerError, match="is not the hash of the files it lists"):
        verify_folder(folder)


def test_links_and_odd_files_are_refused(
    sealed: tuple[Path, str], tmp_path: Path
) -> None:
    folder, _ = sealed
    (tmp_path / "outside").mkdir()
    (folder / "linked").symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.raises(ScorerError, match="linked: a link to a folder"):
        folder_files(folder)
    (folder / "linked").unlink()
    (folder / "broken").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ScorerError, match="broken: not a plain file"):
        folder_files(folder)


def dropped(mapping: dict[str, Any], *keys: str) -> None:
    """``mapping`` without ``keys``."""
    for key in list(keys):
        mapping.pop(key)


def write_manifest(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = folder / BUNDLE_DIR / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_a_manifest_is_checked_before_any_file(sealed: tuple[Path, str]) -> None:
    folder, _ = sealed
    path = folder / BUNDLE_DIR / "manifest.json"
    good = path.read_text()
    cases: list[tuple[Callable[[dict[str, Any]], None], str]] = [
        (lambda m: m["files"].update({"../x": "0" * 64}), "not a path inside"),
        (lambda m: m["files"].update({"a/./b": "0" * 64}), "not a path inside"),
        (lambda m: m["files"].pop("MLmodel"), "files: lacks MLmodel;"),
        (
            lambda m: dropped(m["files"], "MLmodel", "pyfunc_model.py"),
            "files: lacks MLmodel, pyfunc_model.py;",
        ),
        (lambda m: m["files"].update({"x": "00"}), r"files\.x: string should match"),
        (lambda m: m.update({"extra": 1}), "extra: extra inputs are not permitted"),
        (lambda m: m.update({"format_version": 2}), "scorer format 2 .exported by"),
    ]
    for change, message in cases:
        path.write_text(good)
        write_manifest(folder, change)
        with pytest.raises(ScorerError, match=message) as raised:
            read_manifest(folder)
        # Every refusal names the file first (the format error names the folder).
        assert str(raised.value).startswith(
            f"{folder}: scorer format" if "format" in message else f"{path}: "
        ), raised.value
    path.write_text("{not json")
    with pytest.raises(ScorerError, match="manifest.json: not valid JSON"):
        read_manifest(folder)
    path.write_bytes(b" " * (MAX_SMALL_BYTES + 1))
    with pytest.raises(ScorerError, match="larger than 1,048,576 bytes"):
        read_manifest(folder)
    path.write_text(good)
    assert read_manifest(folder).model_version == json.loads(good)["model_version"]


def test_an_mlmodel_that_is_not_mlflows_is_refused(sealed: tuple[Path, str]) -> None:
    folder, _ = sealed
    for text, message in (
        ("a: [1\n", "not valid YAML"),
        ("- 1\n", "expected a YAML mapping"),
        ("a: &x [1]\nb: *x\n", "uses YAML aliases"),
        ("1: 2\na: 3\n", "not an MLflow MLmodel"),
    ):
        (folder / "MLmodel").write_text(text)
        with pytest.raises(ScorerError, match=message):
            file_digest(folder, "MLmodel")


def test_the_folder_of_a_path(sealed: tuple[Path, str], tmp_path: Path) -> None:
    folder, _ = sealed
    assert find_folder(folder) == folder
    assert find_folder(folder / BUNDLE_DIR) == folder
    with pytest.raises(ScorerError, match="no such folder"):
        find_folder(tmp_path / "none")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ScorerError, match="no lead-ml scorer here"):
        find_folder(empty)
    old = tmp_path / "old"
    (old / BUNDLE_DIR).mkdir(parents=True)
    (old / BUNDLE_DIR / "checksums.json").write_text("{}")
    with pytest.raises(
        ScorerError, match=r"scorer format 2 \(exported by lead-ml \?\)"
    ):
        find_folder(old)
    (old / BUNDLE_DIR / "checksums.json").unlink()
    (old / "checksums.json").write_text("{}")
    with pytest.raises(ScorerError, match="scorer format 1 or 2"):
        find_folder(old)


# --- scorer.json and booster.txt -------------------------------------------------


def spec_with(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """A bundle folder whose scorer.json ``change`` edited."""
    bundle = unsealed(tmp_path / "s") / BUNDLE_DIR
    path = bundle / "scorer.json"
    spec = json.loads(path.read_text())
    change(spec)
    path.write_text(json.dumps(spec))
    return bundle


def test_scorer_json_is_read_as_written(tmp_path: Path) -> None:
    raw, spec = read_spec(spec_with(tmp_path, lambda s: None))
    written = {k: v for k, v in small_scorer().spec.items() if k != "model_version"}
    assert raw == json.loads(json.dumps(written))
    assert spec.model.feature_names == ["employees", "industry", "meddic_champion"]


SPEC_CASES: list[tuple[Callable[[dict[str, Any]], None], str]] = [
    (
        lambda s: s["model"]["band_thresholds"].pop("C"),
        r"scorer\.json: model\.band_thresholds: expected the thresholds of A, B and "
        "C; re-export",
    ),
    (
        lambda s: s["model"]["band_thresholds"].update(A=0.1, B=0.5),
        r"scorer\.json: model\.band_thresholds: expected 0 <= C <= B <= A <= 1; re-",
    ),
    (
        lambda s: s["model"]["band_thresholds"].update(A=1.5),
        r"json: model\.band_thresholds: expected 0 <= C <= B <= A <= 1; re-export",
    ),
    (
        lambda s: s["model"]["calibration"].update(slope=2e6),
        r"model\.calibration\.slope: beyond \+-1e\+06",
    ),
    (
        lambda s: s["model"]["calibration"].update(intercept=-2e6),
        r"model\.calibration\.intercept: beyond",
    ),
    (lambda s: s["model"].update(best_iteration=0), "best_iteration: expected at"),
    (lambda s: s["registry"].update(snapshot_days=-1), "snapshot_days: expected 0 to"),
    (lambda s: s["registry"].update(half_life_days=0), "half_life_days: expected"),
    (
        lambda s: s["model"]["dimensions"].update(industry="nowhere"),
        r"model\.dimensions\.industry: 'nowhere' is no dimension",
    ),
    (
        lambda s: s["model"]["dimensions"].update(ghost="fit"),
        r"model\.dimensions: ghost not among model\.feature_names",
    ),
    (
        lambda s: s["model"]["categories"].update(ghost=["a"]),
        r"model\.categories: ghost not among",
    ),
    (
        lambda s: s["model"].update(feature_names=["employees"] * 2 + ["industry"]),
        r"model\.feature_names: employees appear twice",
    ),
    (
        lambda s: s["model"].update(feature_names=["industry", "employees"] * 2),
        r"model\.feature_names: employees, industry appear twice;",
    ),
    (
        lambda s: s["model"]["categories"].update(d=["a"], b=["a"], c=["a"], a=["a"]),
        r"model\.categories: a, b, c not among model\.feature_names;",
    ),
    (
        lambda s: s["answers"].update(ghost=[]),
        r"json: answers: ghost not among model\.feature_names;",
    ),
    (
        lambda s: s["drift_reference"].update(ghost=s["drift_reference"]["industry"]),
        r"json: drift_reference: ghost not among model\.feature_names;",
    ),
    (
        lambda s: dropped(s["drift_reference"], *s["drift_reference"]),
        r"json: drift_reference: lacks employees, industry, meddic_champion; re-",
    ),
    (
        lambda s: dropped(s, "activities", "answers"),
        r"scorer\.json: lacks answers, activities; re-export",
    ),
    (
        lambda s: s.update(activities=["a", "b", "c", "d"]),
        "activities: expected the key, time stamp and type columns; re-export",
    ),
    (lambda s: s["registry"]["specs"].pop(), "registry.specs: the features differ"),
    (
        lambda s: s["model"].update(complete_features=["ghost"]),
        "complete_features: names a feature the model lacks",
    ),
    (lambda s: s["drift_reference"].pop("score"), "drift_reference: lacks score"),
    (
        lambda s: s["drift_reference"]["employees"]["shares"].pop(),
        r"drift_reference\.employees: shares do not match its bins",
    ),
    (
        lambda s: s["drift_reference"]["industry"]["shares"].pop(),
        r"drift_reference\.industry: shares do not match",
    ),
    (
        lambda s: s["drift_reference"]["employees"]["edges"].reverse(),
        r"employees\.edges: not in increasing order",
    ),
    (
        lambda s: s["drift_reference"]["employees"]["shares"].__setitem__(0, 1.5),
        r"employees\.shares: expected shares from 0 to 1",
    ),
    (
        lambda s: s["drift_reference"]["employees"]["shares"].__setitem__(0, -0.5),
        r"employees\.shares: expected shares from 0 to 1",
    ),
    (
        lambda s: s["contract"].update(id_column="ghost"),
        r"contract\.id_column: not among contract\.kinds",
    ),
    (
        lambda s: s["contract"].update(required=["ghost"]),
        r"contract\.required: ghost not among",
    ),
    (
        lambda s: s["contract"]["bounds"].update(industry=[0, 1]),
        r"contract\.bounds\.industry: not a number column",
    ),
    (
        lambda s: s["contract"]["bounds"].update(employees=[5, 1]),
        r"contract\.bounds\.employees: the minimum exceeds the maximum",
    ),
    (
        lambda s: s["contract"]["kinds"].pop("industry"),
        "registry.specs: reads industry, which the contract lacks",
    ),
    (
        lambda s: s.update(created_column="employees"),
        "created_column: not a date column",
    ),
    (lambda s: s.update(activities=["a", "b"]), "activities: expected the key"),
    (
        lambda s: s["answers"]["meddic_champion"][0][0].update(ghost=1.0),
        r"answers\.meddic_champion: sets a feature the model lacks",
    ),
    (lambda s: s.pop("drift_reference"), "scorer.json: lacks drift_reference;"),
    (lambda s: s.update(format_version=2), "scorer format 2 "),
    (
        lambda s: s["model"]["calibration"].update(slope="1"),
        r"model\.calibration\.slope: input should be a valid number, got '1'",
    ),
    (
        lambda s: s["registry"]["specs"][0].update(kind="x" * 80),
        r"registry\.specs\[0\]\.kind: .*got 'x{56}\.\.\.; re-export",
    ),
    (
        lambda s: s["model"].update(best_iteration="1", window=1),
        r"\(and 1 more problem\);",
    ),
    (
        lambda s: s["model"].update(best_iteration="1", window=1, evaluation=2),
        r"\(and 2 more problems\);",
    ),
    (lambda s: s["joins"].update({"a b": 1}), r"joins\['a b'\]: "),
]


@pytest.mark.parametrize("change, message", SPEC_CASES)
def test_what_the_types_allow_but_a_scorer_cannot_use_is_refused(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    bundle = spec_with(tmp_path, change)
    with pytest.raises(ScorerError, match=message) as raised:
        read_spec(bundle)
    assert str(raised.value).startswith(str(bundle / "scorer.json")) or (
        "scorer format" in str(raised.value)
    )


#: Edits of scorer.json at the edge of what its checks allow: each is accepted.
SPEC_EDGES: list[Callable[[dict[str, Any]], None]] = [
    lambda s: s["model"]["band_thresholds"].update(C=0.0),
    lambda s: s["model"]["band_thresholds"].update(A=0.5, B=0.5, C=0.5),
    lambda s: s["model"]["band_thresholds"].update(A=1.0),
    lambda s: s["model"]["calibration"].update(slope=1e6, intercept=-1e6),
    lambda s: s["model"].update(best_iteration=1),
    lambda s: s["registry"].update(snapshot_days=0),
    lambda s: s["registry"].update(snapshot_days=36_500, half_life_days=36_500),
    lambda s: s["registry"].update(half_life_days=1),
    lambda s: s["registry"].update(half_life_days=0.01),
    lambda s: s["contract"]["bounds"].update(employees=[5, 5]),
    lambda s: s.update(activities=["deal_id", "timestamp", "activity_type"]),
    lambda s: s["drift_reference"]["industry"].update(
        shares=[1.0] + [0.0] * (len(s["drift_reference"]["industry"]["shares"]) - 1)
    ),
]


@pytest.mark.parametrize("change", SPEC_EDGES)
def test_what_the_checks_allow_at_their_edges_is_read(
    tmp_path: Path, change: Callable[[dict[str, Any]], None]
) -> None:
    bundle = spec_with(tmp_path, change)
    raw, spec = read_spec(bundle)
    expected = json.loads((bundle / "scorer.json").read_text())
    assert raw == expected


def test_a_scorer_json_that_is_not_json_is_named(tmp_path: Path) -> None:
    bundle = unsealed(tmp_path / "s") / BUNDLE_DIR
    path = bundle / "scorer.json"
    for text in ("{not json", "[1, 2]"):
        path.write_text(text)
        message = refusal(read_spec, bundle)
        assert message.startswith(f"{path}: "), message
    path.write_text("{not json")
    assert refusal(read_spec, bundle).startswith(f"{path}: not valid JSON (")
    path.write_text("[1, 2]")
    assert refusal(read_spec, bundle) == (
        f"{path}: (the whole file): input should be an object, got [1, 2]; {_REEXPORT}"
    )


def test_the_tree_layout_of_the_booster_is_checked_before_lightgbm_reads_it(
    sealed: tuple[Path, str],
) -> None:
    folder, _ = sealed
    data = (folder / BUNDLE_DIR / "booster.txt").read_bytes()
    assert _tree_layout_problem(data) is None
    sizes = re.search(rb"^tree_sizes=([0-9 ]*)$", data, re.MULTILINE)
    assert sizes is not None
    first, *rest = sizes.group(1).split()
    grown = b" ".join([str(int(first) + 1).encode(), *rest])
    assert _tree_layout_problem(data.replace(sizes.group(0), b"tree_sizes=" + grown))
    assert _tree_layout_problem(data.replace(b"tree_sizes=", b"tree_size=")) == (
        "no tree_sizes line or no first tree"
    )
    assert _tree_layout_problem(data.replace(b"\nTree=0\n", b"\nTree=9\n")) == (
        "no tree_sizes line or no first tree"
    )
    assert _tree_layout_problem(data.replace(b"Tree=1\n", b"Tree=7\n")) == (
        "tree 1 is not where tree_sizes puts it"
    )
    assert _tree_layout_problem(data.replace(b"end of trees", b"end of tree!")) == (
        "the trees do not end where tree_sizes says"
    )
    head, _, params = data.partition(b"\nparameters:\n")
    assert params, "LightGBM writes its parameters"
    unended = head + b"\nparameters:\n[boosting: gbdt]\n"
    assert _tree_layout_problem(unended) == "the parameters do not end"
    odd = data.replace(b"\nparameters:\n", b"\nparameters:\nboosting gbdt\n")
    assert _tree_layout_problem(odd) == "a parameter line reads b'boosting gbdt'"
    # Sealed again after an edit, the booster itself is refused with its problem.
    edited(
        folder,
        f"{BUNDLE_DIR}/booster.txt",
        lambda b: b.replace(b"Tree=1\n", b"Tree=7\n"),
    )
    seal_folder(folder)
    with pytest.raises(ScorerError, match="booster.txt: not a LightGBM model .tree 1"):
        load_scorer(folder)


def renamed(spec: dict[str, Any]) -> None:
    """scorer.json with its last feature renamed x everywhere, as if consistent."""
    spec["model"]["feature_names"][2] = "x"
    spec["registry"]["specs"][2]["name"] = "x"
    spec["model"]["dimensions"]["x"] = spec["model"]["dimensions"].pop(
        "meddic_champion"
    )
    spec["drift_reference"]["x"] = spec["drift_reference"].pop("meddic_champion")
    spec["answers"].clear()
    spec["model"]["complete_features"] = []


def test_the_booster_must_have_the_features_and_trees_scorer_json_names(
    tmp_path: Path,
) -> None:
    trees = small_scorer().model.info.best_iteration
    cases: list[tuple[Callable[[dict[str, Any]], None], str]] = [
        (
            lambda s: s["model"].update(best_iteration=trees + 1),
            rf"best_iteration: {trees + 1}, but booster.txt has {trees} trees",
        ),
        (renamed, r"model\.feature_names: 3 features, but booster.txt has 3 .or other"),
    ]
    for i, (change, message) in enumerate(cases):
        folder = tmp_path / str(i)
        bundle = spec_with(folder, change)
        with pytest.raises(ScorerError, match=message):
            load_scorer(bundle.parent.parent, seal_folder(bundle.parent.parent))
