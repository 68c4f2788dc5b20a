"""The exported folder for real, on the small scorer (tests/small_scorer.py): the
MLflow pyfunc folder `export_scorer` writes (signature, example, pinned
requirements, sealed manifest), how `load_pyfunc` and the pyfunc's `load_context`
check and load it, what `lead-ml serve` runs, and the folder's parts one by one
(MLmodel's canonical form, the reads that refuse a file, the messages that name
it). Real MLflow and LightGBM, no project: the export takes a few seconds, once."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.types.schema import AnyType, DataType
from pydantic import ValidationError
from small_scorer import raw_leads, refusal
from small_scorer import small_scorer as built

import lead_ml.scorer as scorer_module
from lead_ml.explain import CONTRIBUTION_COLUMNS
from lead_ml.scorer import (
    _LOADING,
    BUNDLE_DIR,
    EXPECT_VERSION_ENV,
    EXPORT_TIME,
    Manifest,
    Scorer,
    ServingSettings,
    _canonical_mlmodel,
    _format_error,
    _mlmodel_digest,
    _pinned,
    _read_bytes,
    _repeats_a_part,
    _signature,
    _where,
    drop_bytecode,
    export_scorer,
    file_digest,
    find_folder,
    folder_files,
    load_pyfunc,
    load_scorer,
    open_pyfunc,
    predict_leads,
    schema_error,
    scorer_requirements,
    seal_folder,
    serve_command,
    serving_example,
    signature_example,
    verify_folder,
    write_bundle,
)
from lead_ml.vocab import ScorerError

REEXPORT = "re-export with `lead-ml export`"
LEAD_ML = version("lead-ml")
OTHER = "lead-ml-scorer:" + "0" * 64


@contextmanager
def mlflow_quiet() -> Iterator[None]:
    """MLflow's own warnings while it saves and loads (its AnyType hints), which
    are not lead-ml's to fix."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*AnyType", UserWarning)
        warnings.filterwarnings("ignore", category=FutureWarning, module="mlflow")
        warnings.filterwarnings("ignore", category=pd.errors.Pandas4Warning)
        yield


@dataclass(frozen=True)
class Exported:
    """The small scorer exported: its folder, staging bundle, example and what
    export_scorer returned."""

    folder: Path
    staging: Path
    example: pd.DataFrame
    arguments: dict[str, Any]
    version: str


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    scorer = built()
    spec = {k: v for k, v in scorer.spec.items() if k != "model_version"}
    root = tmp_path_factory.mktemp("export")
    # MLflow names the artifact folder after it: artifacts/bundle
    folder, staging = root / "scorer", root / "bundle"
    folder.mkdir()
    (folder / "stale.txt").write_text("from an earlier export\n")
    example = raw_leads(4, seed=31)
    example.loc[1, "employees"] = None
    example.loc[2, "created_at"] = None
    with mlflow_quiet():
        arguments = export_scorer(scorer.model, spec, example, folder, staging)
    return Exported(folder, staging, example, arguments, verify_folder(folder))


@pytest.fixture
def copy(exported: Exported, tmp_path: Path) -> Path:
    """A copy of the exported folder to change."""
    target = tmp_path / "scorer"
    shutil.copytree(exported.folder, target)
    return target


# --- export_scorer --------------------------------------------------------------------


def test_the_export_is_a_sealed_mlflow_folder_of_the_small_scorer(
    exported: Exported,
) -> None:
    folder = exported.folder
    assert not (folder / "stale.txt").exists()  # the earlier folder is replaced
    assert folder_files(folder) == [
        "MLmodel",
        "artifacts/bundle/booster.txt",
        "artifacts/bundle/scorer.json",
        "conda.yaml",
        "input_example.json",
        "pyfunc_model.py",
        "python_env.yaml",
        "requirements.txt",
        "serving_input_example.json",
    ]
    manifest = (folder / BUNDLE_DIR / "manifest.json").read_bytes()
    # The staging bundle holds the same manifest: the copy logged to MLflow checks
    # out with the same model version.
    assert (exported.staging / "manifest.json").read_bytes() == manifest
    assert json.loads(manifest)["model_version"] == exported.version
    spec = json.loads((folder / BUNDLE_DIR / "scorer.json").read_text())
    assert spec["serving"] == {"allow_activities_path": False}
    meta = yaml.safe_load((folder / "MLmodel").read_text())
    assert meta["utc_time_created"] == EXPORT_TIME
    assert meta["model_uuid"] == exported.version.removeprefix("lead-ml-scorer:")[:32]
    pyfunc = meta["flavors"]["python_function"]
    assert pyfunc["model_code_path"] == "pyfunc_model.py"
    assert pyfunc["artifacts"]["bundle"]["uri"] == BUNDLE_DIR
    assert pyfunc["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    requirements = (folder / "requirements.txt").read_text().split()
    assert requirements == scorer_requirements()
    raw = raw_leads(20, seed=32)
    loaded = load_scorer(folder)
    assert loaded.model_version == exported.version
    pd.testing.assert_frame_equal(
        loaded.score(raw).drop(columns="model_version"),
        built().score(raw).drop(columns="model_version"),
    )


def test_export_scorer_returns_the_arguments_that_log_the_same_model(
    exported: Exported,
) -> None:
    arguments = exported.arguments
    assert sorted(arguments) == [
        "artifacts",
        "input_example",
        "pip_requirements",
        "python_model",
        "signature",
    ]
    code = Path(scorer_module.__file__).parent / "pyfunc_model.py"
    assert arguments["python_model"] == str(code)
    assert arguments["artifacts"] == {"bundle": str(exported.staging)}
    assert arguments["pip_requirements"] == scorer_requirements()
    scorer = built()
    pd.testing.assert_frame_equal(
        arguments["input_example"], serving_example(scorer, exported.example)
    )
    assert arguments["signature"] == _signature(
        scorer, signature_example(scorer, exported.example)
    )
    # MLflow wrote that example as valid JSON: no NaN.
    text = (exported.folder / "serving_input_example.json").read_text()
    assert "NaN" not in text and "null" in text


def test_the_signature_requires_only_the_id_and_takes_any_type(
    exported: Exported,
) -> None:
    signature = exported.arguments["signature"]
    inputs = {spec.name: (spec.type, spec.required) for spec in signature.inputs}
    assert list(inputs) == [
        "deal_id",
        "created_at",
        "employees",
        "industry",
        "meddic_champion",
        "account_id",  # the key the tables param joins by
    ]
    assert all(isinstance(t, AnyType) for t, _ in inputs.values())
    assert [name for name, (_, required) in inputs.items() if required] == ["deal_id"]
    params = {p.name: (p.dtype, p.default, p.shape) for p in signature.params}
    assert params == {
        "explain": (DataType.boolean, True, None),
        "activities_path": (DataType.string, "", None),
        "tables": (DataType.string, [], (-1,)),
    }
    outputs = {spec.name: (spec.type, spec.required) for spec in signature.outputs}
    numbers = {"probability", *CONTRIBUTION_COLUMNS, "base_value"}
    expected = {
        name: (
            DataType.long
            if name == "score"
            else DataType.double
            if name in numbers
            else DataType.string,
            False,
        )
        for name in [*built().output_columns(), "reject_reason"]
    }
    assert outputs == expected
    assert list(outputs) == list(expected)


def test_the_signature_follows_the_scorers_ids_keys_and_tables() -> None:
    scorer = built()
    example = signature_example(scorer, raw_leads(3, seed=33))
    reading = dict(scorer.spec["reading"])
    reading["deals"] = reading["deals"] | {"row_number": "deal_id"}
    numbered = Scorer(scorer.model, scorer.spec | {"reading": reading})
    with mlflow_quiet():
        signature = _signature(numbered, example)
    assert not any(spec.required for spec in signature.inputs)  # numbered if absent
    counting = Scorer(
        scorer.model,
        scorer.spec
        | {"contract": scorer.spec["contract"] | {"required": ["created_at"]}},
    )
    with mlflow_quiet():
        signature = _signature(counting, example)
    assert [s.name for s in signature.inputs if s.required] == [
        "deal_id",
        "created_at",
    ]
    alone = Scorer(scorer.model, scorer.spec | {"joins": {}})
    with mlflow_quiet():
        signature = _signature(alone, example)
    assert [p.name for p in signature.params] == ["explain", "activities_path"]
    assert "account_id" not in [s.name for s in signature.inputs]
    keyed = example.assign(account_id="A1")
    with mlflow_quiet():
        signature = _signature(scorer, keyed)
    names = [s.name for s in signature.inputs]
    assert names.count("account_id") == 1
    assert len(names) == len(set(names)) == 6


def test_the_example_is_typed_by_the_leads_kinds() -> None:
    scorer = built()
    leads = raw_leads(3, seed=34).assign(extra="x")
    leads.loc[1, "employees"] = np.nan
    leads.loc[2, "created_at"] = None
    leads.loc[0, "industry"] = None
    typed = signature_example(scorer, leads)
    assert list(typed.columns) == scorer.contract.columns
    assert {c: str(t) for c, t in typed.dtypes.items()} == {
        "deal_id": "string",
        "created_at": "datetime64[ms]",
        "employees": "float64",
        "industry": "string",
        "meddic_champion": "string",
    }
    assert typed["employees"].isna().tolist() == [False, True, False]
    assert leads["employees"].dtype != "float64"  # the input is not changed
    served = serving_example(scorer, leads)
    assert str(served["employees"].dtype) == "Float64"
    assert served["employees"].isna().tolist() == [False, True, False]
    assert served["created_at"].tolist() == [
        "2024-01-01T00:00:00",
        "2024-01-02T00:00:00",
        None,
    ]
    assert served["created_at"].dtype == object
    assert served["industry"].tolist()[0] is pd.NA
    assert str(served["deal_id"].dtype) == "string"


# --- requirements ---------------------------------------------------------------------


def test_the_requirements_pin_lead_ml_and_what_it_depends_on() -> None:
    pins = scorer_requirements()
    assert pins[0] == f"lead-ml=={LEAD_ML}"
    for library in ("lightgbm", "pandas", "numpy", "mlflow", "pydantic"):
        assert f"{library}=={version(library)}" in pins, library
    assert not any("extra" in pin for pin in pins)
    assert all("==" in pin for pin in pins)
    assert len(pins) == len(set(pins)) > 6


def test_a_dependency_is_pinned_to_the_installed_version() -> None:
    numpy = version("numpy")
    assert _pinned("numpy>=1.26") == f"numpy=={numpy}"
    assert _pinned(" numpy >=1.26 ; python_version >= '3.11' ") == (
        f"numpy=={numpy}; python_version >= '3.11'"
    )
    assert (
        _pinned("scikit-learn[all]>=1.4") == f"scikit-learn=={version('scikit-learn')}"
    )
    assert _pinned('pytest>=8; extra == "dev"') is None
    assert _pinned("") is None
    assert _pinned(">=1") is None
    # Not installed here (a marker false on this machine): kept as declared.
    assert _pinned("surely-not-installed-x>=1") == "surely-not-installed-x>=1"
    assert _pinned("surely-not-installed-x>=1; sys_platform == 'win32'") == (
        "surely-not-installed-x>=1; sys_platform == 'win32'"
    )


# --- loading: load_pyfunc and the pyfunc's load_context -------------------------------


def test_load_pyfunc_checks_then_loads_the_mlflow_model(
    exported: Exported, copy: Path
) -> None:
    before = sys.pycache_prefix
    with mlflow_quiet():
        model = load_pyfunc(copy)
    assert sys.pycache_prefix == before
    assert _LOADING.get() is None
    python_model = model.unwrap_python_model()
    assert python_model.settings == ServingSettings(exported.version, False)
    assert python_model.scorer.model_version == exported.version
    raw = raw_leads(6, seed=35)
    raw.loc[2, "employees"] = "0"
    with mlflow_quiet():
        got = model.predict(raw)
    pd.testing.assert_frame_equal(got, predict_leads(load_scorer(copy), raw))
    assert not (copy / "__pycache__").exists()  # its bytecode went elsewhere
    with mlflow_quiet():
        opened = load_pyfunc(copy / BUNDLE_DIR, exported.version, True)
    assert opened.unwrap_python_model().settings == ServingSettings(
        exported.version, True
    )
    with pytest.raises(ScorerError, match=f"but {OTHER} is expected"):
        load_pyfunc(copy, OTHER)
    (copy / "x.pth").write_text("import os\n")
    with pytest.raises(ScorerError, match=r"x\.pth: not part of the exported"):
        load_pyfunc(copy)


def test_the_pyfunc_refuses_a_bundle_outside_its_folder(
    exported: Exported, tmp_path: Path
) -> None:
    folder = exported.folder
    code = folder / "pyfunc_model.py"
    elsewhere = tmp_path / "bundle"
    assert refusal(open_pyfunc, code, {"bundle": str(elsewhere)}, environ={}) == (
        f"{folder / 'MLmodel'}: its bundle artifact is {elsewhere}, not "
        f"{BUNDLE_DIR} of the folder; {REEXPORT}"
    )
    with pytest.raises(ScorerError, match="its bundle artifact is "):
        open_pyfunc(code, {}, environ={})


def test_the_pyfunc_opens_its_folder_as_the_environment_asks(
    exported: Exported,
) -> None:
    folder = exported.folder
    code, bundle = folder / "pyfunc_model.py", {"bundle": str(folder / BUNDLE_DIR)}
    scorer, settings = open_pyfunc(code, bundle, environ={})
    assert scorer.model_version == exported.version
    assert settings == ServingSettings(None, False)
    digest = exported.version.removeprefix("lead-ml-scorer:")
    _, settings = open_pyfunc(code, bundle, {EXPECT_VERSION_ENV: digest})
    assert settings == ServingSettings(exported.version, False)
    _, settings = open_pyfunc(code, bundle, {"LEAD_ML_ALLOW_ACTIVITIES_PATH": "1"})
    assert settings == ServingSettings(None, True)
    with pytest.raises(ScorerError, match=f"but {OTHER} is expected"):
        open_pyfunc(code, bundle, {EXPECT_VERSION_ENV: OTHER})


def test_a_folder_exported_to_read_activity_files_serves_so(copy: Path) -> None:
    path = copy / BUNDLE_DIR / "scorer.json"
    spec = json.loads(path.read_text())
    spec["serving"] = {"allow_activities_path": True}
    path.write_text(json.dumps(spec))
    version_ = seal_folder(copy)
    code, bundle = copy / "pyfunc_model.py", {"bundle": str(copy / BUNDLE_DIR)}
    scorer, settings = open_pyfunc(code, bundle, environ={})
    assert settings == ServingSettings(None, True)
    assert scorer.model_version == version_
    token = _LOADING.set(ServingSettings(version_, False))
    try:
        _, settings = open_pyfunc(code, bundle, environ={})
    finally:
        _LOADING.reset(token)
    assert settings == ServingSettings(version_, True)


# --- lead-ml serve --------------------------------------------------------------------


def test_the_serve_command_pins_the_version_and_this_python(tmp_path: Path) -> None:
    folder = tmp_path / "scorer"
    folder.mkdir()
    environ = {"PATH": "/usr/bin::/bin", "HOME": "/h"}
    argv, env = serve_command(folder, "v1", "0.0.0.0", 6000, 3, environ)
    assert argv == [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        str(folder.absolute()),
        "--env-manager",
        "local",
        "--host",
        "0.0.0.0",
        "--port",
        "6000",
        "--workers",
        "3",
    ]
    here = str(Path(sys.executable).parent)
    assert env == {
        "PATH": os.pathsep.join([here, "/usr/bin", "/bin"]),
        "HOME": "/h",
        EXPECT_VERSION_ENV: "v1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    assert environ == {"PATH": "/usr/bin::/bin", "HOME": "/h"}
    argv, env = serve_command(Path("rel"), "v2", environ={})
    assert argv[6:] == [
        str(Path("rel").absolute()),
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        "5001",
        "--workers",
        "1",
    ]
    assert env["PATH"] == here
    # The user's own choices are kept, but the pin and the bytecode switch.
    given = {
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true",
        "MLFLOW_DISABLE_TELEMETRY": "false",
        EXPECT_VERSION_ENV: "old",
        "PYTHONDONTWRITEBYTECODE": "",
    }
    _, env = serve_command(folder, "v3", environ=given)
    assert env == given | {
        "PATH": here,
        EXPECT_VERSION_ENV: "v3",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def test_the_serve_command_drops_the_bytecode_cache_first(tmp_path: Path) -> None:
    folder = tmp_path / "scorer"
    cache = folder / "__pycache__"
    cache.mkdir(parents=True)
    (cache / "pyfunc_model.cpython-311.pyc").write_bytes(b"\0")
    serve_command(folder, "v", environ={})
    assert not cache.exists()


def test_only_the_model_codes_bytecode_is_dropped(tmp_path: Path) -> None:
    folder = tmp_path / "scorer"
    folder.mkdir()
    drop_bytecode(folder)  # no cache: nothing to do
    assert list(folder.iterdir()) == []
    (folder / "__pycache__").write_text("a file, not a cache")
    drop_bytecode(folder)
    assert (folder / "__pycache__").is_file()
    (folder / "__pycache__").unlink()
    cache = folder / "__pycache__"
    cache.mkdir()
    names = ["pyfunc_model.cpython-311.pyc", "pyfunc_model.cpython-312.opt-2.pyc"]
    for name in names:
        (cache / name).write_bytes(b"\0")
    (cache / "other.cpython-311.pyc").write_bytes(b"\0")
    drop_bytecode(folder)
    assert [p.name for p in cache.iterdir()] == ["other.cpython-311.pyc"]
    (cache / "other.cpython-311.pyc").unlink()
    (cache / names[0]).write_bytes(b"\0")
    drop_bytecode(folder)
    assert not cache.exists()


def test_a_cache_that_cannot_be_removed_is_one_line_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "scorer"
    cache = folder / "__pycache__"
    (cache / "pyfunc_model.cpython-311.pyc").mkdir(parents=True)  # not removable
    assert refusal(drop_bytecode, folder) == (
        f"{cache}: compiled Python in the scorer folder, left by an earlier "
        "mlflow.pyfunc.load_model or put there, cannot be removed (Is a directory); "
        "MLflow's server would run it instead of the checked pyfunc_model.py. "
        f"Delete it (rm -r {cache}) and serve again"
    )


# --- the folder's parts ---------------------------------------------------------------


def test_mlmodels_canonical_form_leaves_out_what_mlflow_rewrites() -> None:
    meta = {
        "utc_time_created": "t",
        "model_uuid": "u",
        "model_id": "m",
        "run_id": "r",
        "artifact_path": "a",
        "model_size_bytes": 3,
        "mlflow_version": "3",
        "flavors": {
            "python_function": {
                "model_code_path": "/staging/x/pyfunc_model.py",
                "artifacts": {
                    "bundle": {"path": BUNDLE_DIR, "uri": "/staging/bundle"},
                    "odd": "kept",
                },
                "loader_module": "mlflow.pyfunc.loaders.code_model",
            },
            "other": {"model_code_path": "/x/y.py"},
        },
    }
    original = json.loads(json.dumps(meta))
    assert _canonical_mlmodel(meta) == {
        "mlflow_version": "3",
        "flavors": {
            "python_function": {
                "model_code_path": "pyfunc_model.py",
                "artifacts": {"bundle": {"path": BUNDLE_DIR}, "odd": "kept"},
                "loader_module": "mlflow.pyfunc.loaders.code_model",
            },
            "other": {"model_code_path": "/x/y.py"},
        },
    }
    assert meta == original  # the parsed MLmodel is not changed
    odd: dict[str, Any] = {"python_function": {"model_code_path": 3, "artifacts": [1]}}
    assert _canonical_mlmodel({"run_id": 1, "flavors": odd}) == {"flavors": odd}
    assert _canonical_mlmodel({"flavors": "x", "a": 1}) == {"flavors": "x", "a": 1}
    assert _canonical_mlmodel({"flavors": {"python_function": 2}}) == {
        "flavors": {"python_function": 2}
    }
    assert _canonical_mlmodel({"model_uuid": "u", "b": 2}) == {"b": 2}


def test_the_mlmodel_digest_is_the_sha256_of_its_compact_sorted_json(
    tmp_path: Path,
) -> None:
    path = tmp_path / "MLmodel"
    path.write_text("b: 1\na: [x, 2]\nrun_id: r\nt: 2024-01-01\n")
    text = '{"a":["x",2],"b":1,"t":"2024-01-01"}'
    assert _mlmodel_digest(path) == hashlib.sha256(text.encode()).hexdigest()
    assert file_digest(tmp_path, "MLmodel") == _mlmodel_digest(path)


def test_yaml_that_repeats_a_part_is_told_apart() -> None:
    shared: list[Any] = [1]
    assert not _repeats_a_part({})
    assert not _repeats_a_part([])
    assert not _repeats_a_part("text")
    assert not _repeats_a_part({"a": [1], "b": [1], "c": {"d": [1]}})
    assert _repeats_a_part({"a": shared, "b": shared})
    assert _repeats_a_part([shared, shared])
    assert _repeats_a_part({"a": [{"b": shared}], "c": [[shared]]})
    nested = {"x": 1}
    assert _repeats_a_part([[nested], {"y": nested}])
    assert not _repeats_a_part({"a": 1, "b": 1, "c": "s", "d": "s"})


def test_a_file_that_cannot_be_read_is_named_with_why(tmp_path: Path) -> None:
    folder = tmp_path / "scorer"
    (folder / "requirements.txt").mkdir(parents=True)
    assert refusal(file_digest, folder, "requirements.txt") == (
        f"{folder / 'requirements.txt'}: cannot be read (Is a directory)"
    )
    assert refusal(file_digest, folder, "gone.txt") == (
        f"{folder / 'gone.txt'}: missing from the scorer folder; {REEXPORT}"
    )
    assert refusal(_read_bytes, folder / "requirements.txt", 10) == (
        f"{folder / 'requirements.txt'}: cannot be read (Is a directory)"
    )
    assert refusal(_read_bytes, folder / "gone.txt", 10) == (
        f"{folder / 'gone.txt'}: missing from the scorer folder; {REEXPORT}"
    )
    path = folder / "ten.txt"
    path.write_bytes(b"0123456789")
    assert _read_bytes(path, 10) == b"0123456789"
    assert refusal(_read_bytes, path, 9) == (
        f"{path}: larger than 9 bytes, far more than an export writes; refusing "
        f"to parse it; {REEXPORT}"
    )
    big = folder / "big.txt"
    big.write_bytes(b"x" * 1001)
    with pytest.raises(ScorerError, match="larger than 1,000 bytes"):
        _read_bytes(big, 1000)


def test_a_validation_errors_key_path() -> None:
    assert _where(("model", "calibration", "slope")) == "model.calibration.slope"
    assert _where(("registry", "specs", 0, "kind")) == "registry.specs[0].kind"
    assert _where(("joins", "a b")) == "joins['a b']"
    assert _where(("a b", "x")) == "['a b'].x"
    assert _where((0, "x")) == "[0].x"
    assert _where(("_x9",)) == "_x9"
    assert _where(("9x",)) == "['9x']"
    assert _where(()) == "(the whole file)"


def test_a_schema_error_is_one_line_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    digest = "0" * 64

    def error(data: dict[str, Any] | str) -> str:
        text = data if isinstance(data, str) else json.dumps(data)
        try:
            Manifest.model_validate_json(text)
        except ValidationError as raised:
            return str(schema_error(path, raised))
        raise AssertionError("valid")

    good = {"format_version": 3, "model_version": "v", "files": {"a": digest}}
    assert error(good | {"format_version": "3"}) == (
        f"{path}: format_version: input should be a valid integer, got '3'; {REEXPORT}"
    )
    assert error(good | {"files": {"a": "00"}, "format_version": "3"}) == (
        f"{path}: format_version: input should be a valid integer, got '3' (and 1 "
        f"more problem); {REEXPORT}"
    )
    long = "x" * 70
    assert error(good | {"files": {"a": long}}) == (
        f"{path}: files.a: string should match pattern '[0-9a-f]{{64}}', got "
        f"'{'x' * 56}...; {REEXPORT}"
    )
    # The value is shown whole up to 60 characters of its repr, cut past that.
    pattern = "string should match pattern '[0-9a-f]{64}'"
    assert error(good | {"files": {"a": "x" * 58}}) == (
        f"{path}: files.a: {pattern}, got '{'x' * 58}'; {REEXPORT}"
    )
    assert error(good | {"files": {"a": "x" * 59}}) == (
        f"{path}: files.a: {pattern}, got '{'x' * 56}...; {REEXPORT}"
    )
    assert error({"files": 1}).startswith(f"{path}: format_version: field required")
    assert error({"files": 1}).endswith(f"(and 2 more problems); {REEXPORT}")
    assert error("{not json") == (
        f"{path}: not valid JSON (key must be a string at line 1 column 2); {REEXPORT}"
    )
    assert error("[]") == (
        f"{path}: (the whole file): input should be an object, got []; {REEXPORT}"
    )


def test_another_formats_folder_names_both_versions(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    spec = folder / BUNDLE_DIR / "scorer.json"
    spec.parent.mkdir(parents=True)
    tail = (
        f"but lead-ml {LEAD_ML} reads format 3; re-export the model with this "
        "lead-ml or install the lead-ml version that exported it"
    )
    assert str(_format_error(folder, 2)) == (
        f"{folder}: scorer format 2 (exported by lead-ml ?), {tail}"
    )
    spec.write_text(json.dumps({"lead_ml_version": "0.4.1"}))
    assert str(_format_error(folder, None)) == (
        f"{folder}: scorer format None (exported by lead-ml 0.4.1), {tail}"
    )
    for text in ("[1]", "{", '{"x": 1}', '"text"'):
        spec.write_text(text)
        assert "(exported by lead-ml ?)" in str(_format_error(folder, 4))


def test_a_folders_refusals_name_the_file_and_what_to_do(copy: Path) -> None:
    version_ = verify_folder(copy)
    (copy / "a.py").write_text("")
    (copy / "b.pth").write_text("")
    (copy / "c.txt").write_text("")
    assert refusal(verify_folder, copy) == (
        f"{copy / 'a.py'}: not part of the exported scorer (and 2 more): the "
        "manifest does not list it, and an added file could be imported or "
        f"executed; remove it or {REEXPORT}"
    )
    for name in ("a.py", "b.pth"):
        (copy / name).unlink()
    assert refusal(verify_folder, copy).startswith(
        f"{copy / 'c.txt'}: not part of the exported scorer: the manifest"
    )
    (copy / "c.txt").unlink()
    (copy / "conda.yaml").write_text("evil\n")
    assert refusal(verify_folder, copy) == (
        f"{copy / 'conda.yaml'}: checksum mismatch, the file was changed or "
        "truncated after export; refusing to load it. Re-export with "
        "`lead-ml export`."
    )
    with pytest.raises(ScorerError) as raised:
        verify_folder(copy, OTHER)
    assert "conda.yaml: checksum mismatch" in str(raised.value)
    assert seal_folder(copy) != version_
    with pytest.raises(ScorerError) as raised:
        verify_folder(copy, version_)
    found = verify_folder(copy)
    assert str(raised.value) == (
        f"{copy}: model version {found}, but {version_} is expected "
        "(--expect-version, load_pyfunc's expect_version or "
        f"{EXPECT_VERSION_ENV}); refusing another model. Use the pinned scorer "
        "folder, or change the pin if this model is meant to replace it"
    )
    manifest_path = copy / BUNDLE_DIR / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["model_version"] = OTHER
    manifest_path.write_text(json.dumps(manifest))
    assert refusal(verify_folder, copy) == (
        f"{manifest_path}: model_version {OTHER} is not the hash of the files it "
        f"lists ({found}): the manifest was edited; {REEXPORT}"
    )


def test_sealing_drops_pythons_cache_of_the_model_code(copy: Path) -> None:
    version_ = verify_folder(copy)
    cache = copy / "__pycache__"
    cache.mkdir()
    (cache / "pyfunc_model.cpython-311.pyc").write_bytes(b"\0")
    assert verify_folder(copy) == version_  # let through: not a listed file
    assert seal_folder(copy) == version_
    assert not cache.exists()


def test_an_mlmodel_without_artifacts_is_sealed(copy: Path) -> None:
    path = copy / "MLmodel"
    meta = yaml.safe_load(path.read_text())
    del meta["flavors"]["python_function"]["artifacts"]
    path.write_text(yaml.safe_dump(meta))
    version_ = seal_folder(copy)
    sealed = yaml.safe_load(path.read_text())
    assert "artifacts" not in sealed["flavors"]["python_function"]
    assert sealed["flavors"]["python_function"]["model_code_path"] == (
        "pyfunc_model.py"
    )
    assert sealed["model_uuid"] == version_.removeprefix("lead-ml-scorer:")[:32]
    assert sealed["utc_time_created"] == EXPORT_TIME


def test_the_folder_messages_of_a_path(tmp_path: Path, exported: Exported) -> None:
    gone = tmp_path / "gone"
    assert refusal(find_folder, gone) == (
        f"{gone}: no such folder; pass the folder `lead-ml export` wrote, e.g. "
        "models/scorer"
    )
    assert refusal(find_folder, tmp_path) == (
        f"{tmp_path}: no lead-ml scorer here (no {BUNDLE_DIR}/manifest.json); pass "
        "the folder `lead-ml export` wrote, e.g. models/scorer"
    )
    # A folder called bundle, but not in an artifacts folder, is taken as it is.
    bundle = tmp_path / "x" / "bundle"
    bundle.mkdir(parents=True)
    with pytest.raises(ScorerError, match="no lead-ml scorer here"):
        find_folder(bundle)
    artifacts = tmp_path / "artifacts" / "bundle"
    artifacts.mkdir(parents=True)
    with pytest.raises(ScorerError, match="no lead-ml scorer here"):
        find_folder(artifacts)
    old = tmp_path / "old" / BUNDLE_DIR
    old.mkdir(parents=True)
    (old / "checksums.json").write_text("{}")
    with pytest.raises(ScorerError, match=r"scorer format 2 \(exported by"):
        find_folder(tmp_path / "old")
    assert find_folder(exported.folder / BUNDLE_DIR) == exported.folder
    assert find_folder(exported.folder) == exported.folder


def test_a_bundle_is_written_byte_for_byte_the_same_whatever_its_keys_order(
    tmp_path: Path,
) -> None:
    scorer = built()
    spec = {k: v for k, v in scorer.spec.items() if k != "model_version"}
    first = write_bundle(scorer.model, spec, tmp_path / "a" / "bundle")
    again = write_bundle(scorer.model, dict(reversed(spec.items())), first)
    assert again == first  # written over: an export's staging folder may exist
    text = (first / "scorer.json").read_text()
    assert text == json.dumps(spec, indent=1, sort_keys=True) + "\n"
    other = write_bundle(scorer.model, dict(reversed(spec.items())), tmp_path / "b")
    for name in ("scorer.json", "booster.txt"):
        assert (other / name).read_bytes() == (first / name).read_bytes()
