"""Model references on a small MLflow store of their own (sqlite, made here): a
sealed folder of the small scorer (tests/small_scorer.py) logged as a run's
artifacts and as a logged model, and registered as versions with an alias. The
resolver's folders, cache names, downloads and every one-line refusal are pinned;
the cache's download-check-rename is also run with plain download functions."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from small_scorer import refusal, unsealed

from lead_ml.scorer import (
    BUNDLE_DIR,
    CACHE_ENV,
    REFERENCE_FORMS,
    ScorerSource,
    _cache_key,
    _cached,
    _run_artifact_location,
    _shown,
    _slug,
    model_cache,
    resolve_scorer,
    seal_folder,
    verify_folder,
)
from lead_ml.tracking import SCORER_TAG
from lead_ml.vocab import ScorerError

NAME = "lead-ml-scorer"
OTHER = "lead-ml-scorer:" + "0" * 64


def sealed_folder(folder: Path) -> str:
    """A sealed scorer folder of the small scorer (MLmodel as MLflow writes it)."""
    return seal_folder(unsealed(folder))


@dataclass(frozen=True)
class Store:
    """A store holding the small scorer: run ``run_id`` logged it as artifacts
    ``scorer`` and as the logged model ``model``; lead-ml-scorer v1 (tagged with
    its version, alias champion) and v2 (untagged) register it, and ``tagged-wrong``
    v1 is tagged with another version."""

    uri: str
    run_id: str
    artifact_uri: str
    version: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("store")
    folder = root / "scorer"
    version = sealed_folder(folder)
    notes = root / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("not a scorer\n")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment(
        "refs", artifact_location=(root / "artifacts").as_uri()
    )
    run = client.create_run(experiment)
    run_id = run.info.run_id
    client.log_artifacts(run_id, str(folder), "scorer")
    client.log_artifacts(run_id, str(notes), "notes")
    logged = client.create_logged_model(experiment, name="model", source_run_id=run_id)
    client.log_model_artifacts(logged.model_id, str(folder))
    client.set_terminated(run_id)
    # Two later runs log a model of the same name: the run's own is found past them.
    for _ in range(2):
        other = client.create_run(experiment).info.run_id
        client.create_logged_model(experiment, name="model", source_run_id=other)
        client.set_terminated(other)
    source = f"{run.info.artifact_uri}/scorer"
    client.create_registered_model(NAME)
    client.create_model_version(NAME, source, run_id, tags={SCORER_TAG: version})
    client.create_model_version(NAME, source, run_id)
    client.set_registered_model_alias(NAME, "champion", "1")
    client.create_registered_model("tagged-wrong")
    client.create_model_version(
        "tagged-wrong", source, run_id, tags={SCORER_TAG: OTHER}
    )
    client.create_registered_model("empty")
    return Store(uri, run_id, run.info.artifact_uri, version)


@pytest.fixture
def store(
    built: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    """The store in force (MLFLOW_TRACKING_URI) and an empty model cache."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", built.uri)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    yield built


# --- what a reference names -----------------------------------------------------------


def test_a_folder_is_taken_as_it_is() -> None:
    assert resolve_scorer("models/scorer") == ScorerSource(
        "models/scorer", Path("models/scorer")
    )
    assert resolve_scorer(Path("a/b")) == ScorerSource("a/b", Path("a/b"))
    assert resolve_scorer(" a/b ").reference == "a/b"


def test_a_source_describes_itself() -> None:
    folder = Path("/cache/x")
    version = ScorerSource("models:/m@c", folder, "s", "m", 3, "champion", "r1")
    assert version.describe() == "m v3 (alias champion)"
    assert ScorerSource("models:/m/3", folder, "s", "m", 3).describe() == "m v3"
    run = ScorerSource("runs:/r1/scorer", folder, "s", run_id="r1")
    assert run.describe() == "runs:/r1/scorer"
    assert ScorerSource("here", Path("models/scorer")).describe() == "models/scorer"
    assert version.as_dict() == {
        "reference": "models:/m@c",
        "folder": "/cache/x",
        "store": "s",
        "registered_model": "m",
        "version": 3,
        "alias": "champion",
        "run_id": "r1",
        "description": "m v3 (alias champion)",
    }
    assert ScorerSource("a", Path("a")).as_dict() == {
        "reference": "a",
        "folder": "a",
        "store": None,
        "registered_model": None,
        "version": None,
        "alias": None,
        "run_id": None,
        "description": "a",
    }


def test_the_model_cache_is_where_the_environment_says(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert model_cache() == tmp_path / "c"
    monkeypatch.setenv(CACHE_ENV, "")
    assert model_cache() == tmp_path / "xdg" / "lead-ml" / "models"
    monkeypatch.delenv(CACHE_ENV)
    assert model_cache() == tmp_path / "xdg" / "lead-ml" / "models"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert model_cache() == tmp_path / "home" / ".cache" / "lead-ml" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert model_cache() == tmp_path / "home" / ".cache" / "lead-ml" / "models"


def test_store_uris_slugs_and_cache_keys() -> None:
    assert _shown("https://user:secret@host:5000/x") == "https://***@host:5000/x"
    assert _shown("https://token@host") == "https://***@host"
    assert _shown("http://a@b@c/") == "http://***@b@c/"
    assert _shown("sqlite:///a/b.db") == "sqlite:///a/b.db"
    assert _shown("http://host/a@b") == "http://host/a@b"
    assert _slug("lead ml/scorer:v1") == "lead_ml_scorer_v1"
    assert _slug("a.b-c_d") == "a.b-c_d"
    assert _slug("a  //b") == "a_b"
    assert _slug("x" * 70) == "x" * 60
    assert _cache_key("a", "b") == hashlib.sha256(b"a\nb").hexdigest()[:16]
    assert _cache_key("a") == hashlib.sha256(b"a").hexdigest()[:16]


def test_what_is_no_reference_is_one_line_naming_the_forms(store: Store) -> None:
    for text in ("models:/x", "models:/x@a/b", "runs:/x", " models:/ ", "runs://p"):
        assert refusal(resolve_scorer, text) == (
            f"{text.strip()}: not a model reference; give {REFERENCE_FORMS} (e.g. "
            "models:/lead-ml-scorer@champion)"
        )


# --- registered versions --------------------------------------------------------------


def test_an_alias_resolves_to_its_version_downloaded_and_checked(
    store: Store, tmp_path: Path
) -> None:
    found = resolve_scorer(f"models:/{NAME}@champion")
    client = MlflowClient(tracking_uri=store.uri)
    entry = client.get_model_version(NAME, "1")
    key = _cache_key(store.uri, NAME, "1", str(entry.source), store.run_id)
    folder = tmp_path / "cache" / f"{NAME}-v1-{key}"
    assert found == ScorerSource(
        f"models:/{NAME}@champion",
        folder,
        store.uri,
        NAME,
        1,
        "champion",
        store.run_id,
    )
    assert found.describe() == f"{NAME} v1 (alias champion)"
    assert verify_folder(folder, store.version) == store.version
    assert not (folder / "registered_model_meta").exists()
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]
    # Cached: a second resolve takes the folder as it is.
    (folder / "marker").write_text("")
    assert resolve_scorer(f"models:/{NAME}/1").folder == folder
    assert (folder / "marker").exists()


def test_a_version_number_and_latest_resolve_to_their_version(store: Store) -> None:
    two = resolve_scorer(f"models:/{NAME}/2")
    assert (two.version, two.alias, two.registered_model) == (2, None, NAME)
    assert two.folder.name.startswith(f"{NAME}-v2-")
    assert verify_folder(two.folder) == store.version
    latest = resolve_scorer(f"models:/{NAME}/latest")
    assert (latest.version, latest.folder) == (2, two.folder)
    assert resolve_scorer(f"models:/{NAME}/1", Path(two.folder.parent / "x")).folder
    assert (two.folder.parent / "x").is_dir()


def test_unknown_models_aliases_and_versions_are_one_line_each(store: Store) -> None:
    where = f"in the tracking store {store.uri}"
    cases = {
        "models:/nobody@x": (
            f"models:/nobody@x: no registered model 'nobody' {where}; `lead-ml "
            "export` registers one, or set MLFLOW_TRACKING_URI to the store that "
            "holds it"
        ),
        f"models:/{NAME}@gone": (
            f"models:/{NAME}@gone: {NAME} has no alias 'gone' {where} (aliases: "
            "@champion (v1); versions: v1, v2); `lead-ml promote` sets the champion "
            "alias, `lead-ml compare` compares the versions"
        ),
        f"models:/{NAME}/9": (
            f"models:/{NAME}/9: {NAME} has no version '9' {where} (versions: v1, "
            "v2); give one of them, 'latest' or an alias (models:/NAME@champion); "
            "`lead-ml compare` compares them"
        ),
        f"models:/{NAME}/v1": (
            f"models:/{NAME}/v1: {NAME} has no version 'v1' {where} (versions: v1, "
            "v2); give one of them, 'latest' or an alias (models:/NAME@champion); "
            "`lead-ml compare` compares them"
        ),
        "models:/empty/latest": (
            f"models:/empty/latest: empty has no version 'latest' {where} "
            "(versions: none); give one of them, 'latest' or an alias "
            "(models:/NAME@champion); `lead-ml compare` compares them"
        ),
        "models:/empty@champion": (
            f"models:/empty@champion: empty has no alias 'champion' {where} "
            "(aliases: none; versions: none); `lead-ml promote` sets the champion "
            "alias, `lead-ml compare` compares the versions"
        ),
    }
    for text, message in cases.items():
        assert refusal(resolve_scorer, text) == message


def test_a_download_must_be_the_version_it_is_tagged_with(
    store: Store, tmp_path: Path
) -> None:
    with pytest.raises(ScorerError) as raised:
        resolve_scorer("models:/tagged-wrong/1")
    text = str(raised.value)
    assert text.startswith(
        "models:/tagged-wrong/1: the downloaded copy does not check out ("
    )
    assert f"but {OTHER} is expected" in text
    # Nothing is left in the cache: no folder, no staging copy.
    assert list((tmp_path / "cache").iterdir()) == []


# --- runs -----------------------------------------------------------------------------


def test_a_runs_artifacts_and_logged_model_resolve_to_the_scorer(
    store: Store, tmp_path: Path
) -> None:
    for path in ("scorer", "model", "scorer/"):
        text = f"runs:/{store.run_id}/{path}"
        found = resolve_scorer(text)
        key = _cache_key(store.uri, text)
        name = f"run-{_slug(store.run_id)}-{_slug(path)}-{key}"
        assert found == ScorerSource(
            text, tmp_path / "cache" / name, store.uri, run_id=store.run_id
        )
        assert found.describe() == text
        assert verify_folder(found.folder) == store.version


def test_unknown_runs_and_artifacts_are_one_line_each(
    store: Store, tmp_path: Path
) -> None:
    where = f"in the tracking store {store.uri}"
    assert refusal(resolve_scorer, "runs:/nope/scorer") == (
        f"runs:/nope/scorer: no run 'nope' {where}; check the run id (the MLflow "
        "UI), or follow the champion with models:/lead-ml-scorer@champion "
        "(`lead-ml promote`)"
    )
    run = store.run_id
    for path in ("nothing", "scorer/nothing", "notes/b.txt"):
        assert refusal(resolve_scorer, f"runs:/{run}/{path}") == (
            f"runs:/{run}/{path}: run {run} has no artifact {path!r} {where}; the "
            "export logs its scorer as runs:/RUN_ID/scorer"
        )
    assert refusal(resolve_scorer, f"runs:/{run}/notes") == (
        f"runs:/{run}/notes: no lead-ml scorer there (no {BUNDLE_DIR}/manifest.json); "
        "name the scorer `lead-ml export` logged (runs:/RUN_ID/scorer or a "
        "registered version)"
    )
    assert list((tmp_path / "cache").iterdir()) == []
    # A folder inside the logged model: found, but no scorer.
    with pytest.raises(ScorerError, match="no lead-ml scorer there"):
        resolve_scorer(f"runs:/{run}/model/artifacts")


class OnePerPage:
    """The store's client, its logged models searched one per page."""

    def __init__(self, client: MlflowClient) -> None:
        self.client = client

    def search_logged_models(self, **kwargs: Any) -> Any:
        return self.client.search_logged_models(max_results=1, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_a_runs_path_is_located_exactly_past_other_runs_models(store: Store) -> None:
    """A run's path is its logged model of that name (found on a later page of the
    search), or a file or folder among its artifacts, with no trailing slash added
    or left; anything else is not there."""
    client = MlflowClient(tracking_uri=store.uri)
    run = client.get_run(store.run_id)
    ids = [run.info.experiment_id]
    models = client.search_logged_models(ids, filter_string="name = 'model'")
    assert len(models) == 3
    (own,) = [m for m in models if m.source_run_id == store.run_id]
    assert models[0].source_run_id != store.run_id  # not on the first page
    paging = OnePerPage(client)
    location = own.artifact_location.rstrip("/")
    artifacts = run.info.artifact_uri
    for path, expected in (
        ("model", location),
        ("model/", location),
        ("model/artifacts/bundle", f"{location}/artifacts/bundle"),
        ("scorer", f"{artifacts}/scorer"),
        ("scorer/", f"{artifacts}/scorer/"),
        ("notes/a.txt", f"{artifacts}/notes/a.txt"),
        ("notes", f"{artifacts}/notes"),
        ("notes/b.txt", None),
        ("a.txt", None),
        ("nothing", None),
    ):
        assert _run_artifact_location(paging, run, path) == expected, path


# --- the cache ------------------------------------------------------------------------


def test_a_download_is_checked_then_renamed_into_place(tmp_path: Path) -> None:
    source = tmp_path / "source"
    version = sealed_folder(source)
    folder = tmp_path / "cache" / "deeper" / "m-v1"
    seen: list[Path] = []

    def download(staging: Path) -> str:
        seen.append(staging)
        got = staging / "scorer"
        shutil.copytree(source, got)
        (got / "registered_model_meta").write_text("name: m\n")
        return str(got)

    assert _cached(folder, download, "models:/m/1", version) == folder
    (staging,) = seen
    assert staging.parent == folder.parent
    assert staging.name.startswith(".m-v1.")
    assert not staging.exists()
    assert verify_folder(folder, version) == version
    assert sorted(p.name for p in folder.parent.iterdir()) == ["m-v1"]

    def never(staging: Path) -> str:
        raise AssertionError("downloaded again")

    assert _cached(folder, never, "models:/m/1", version) == folder


def test_a_download_that_is_no_scorer_or_not_the_version_is_dropped(
    tmp_path: Path,
) -> None:
    source = tmp_path / "source"
    sealed_folder(source)
    folder = tmp_path / "cache" / "m-v1"

    def nothing(staging: Path) -> str:
        return str(staging)

    assert refusal(_cached, folder, nothing, "runs:/r/x", None) == (
        f"runs:/r/x: no lead-ml scorer there (no {BUNDLE_DIR}/manifest.json); name "
        "the scorer `lead-ml export` logged (runs:/RUN_ID/scorer or a registered "
        "version)"
    )

    def copied(staging: Path) -> str:
        shutil.copytree(source, staging / "s")
        (staging / "s" / "extra.py").write_text("")
        return str(staging / "s")

    said = refusal(_cached, folder, copied, "models:/m/1", None)
    assert said.startswith(
        f"models:/m/1: the downloaded copy does not check out ({folder.parent}/."
    )
    assert "extra.py: not part of the exported scorer" in said
    assert said.endswith(")")
    assert list(folder.parent.iterdir()) == []


def test_a_copy_renamed_first_by_another_job_wins(tmp_path: Path) -> None:
    source = tmp_path / "source"
    version = sealed_folder(source)
    folder = tmp_path / "cache" / "m-v1"

    def racing(staging: Path) -> str:
        shutil.copytree(source, folder)  # the other job's copy lands meanwhile
        (folder / "theirs").write_text("")
        shutil.copytree(source, staging / "s")
        return str(staging / "s")

    assert _cached(folder, racing, "models:/m/1", version) == folder
    assert (folder / "theirs").exists()
    assert sorted(p.name for p in folder.parent.iterdir()) == ["m-v1"]
