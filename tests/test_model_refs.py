"""Model references: a scorer taken from the MLflow store instead of a folder.

`lead-ml score --model` (and `lead-ml report --scorer`, and Spark) take
``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` and ``runs:/RUN_ID/PATH`` besides a
folder. The synthetic CRM's two-version project (:func:`projects.two_versions`, as
test_compare's: an MLflow store of its own, sqlite, where v1 a one-split stump and
v2 the project's model were trained, evaluated and exported by the pipeline's
stages) is copied to a folder of its own. The champion alias is then moved by the
real `lead-ml promote` (the gate) and `lead-ml promote --to` (no gate), and a job
following ``@champion`` must score what the alias names, exactly as scoring that
version's folder does. The resolver is the same for every source (nothing in it
reads a source's columns), so one source is enough here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient
from projects import Project, fresh_versions, project_environment
from typer.testing import CliRunner

from lead_ml.cli import app
from lead_ml.scorer import (
    CACHE_ENV,
    load_scorer,
    resolve_scorer,
    verify_folder,
)
from lead_ml.tracking import SCORER_TAG
from lead_ml.vocab import ScorerError

pytestmark = pytest.mark.slow
runner = CliRunner()
NAME = "lead-ml-scorer"


@dataclass(frozen=True)
class Store:
    """A project copy whose MLflow store holds v1 (stump) and v2 (the model)."""

    root: Path
    runs: dict[int, str]
    folders: dict[int, Path]
    leads: Path

    @property
    def uri(self) -> str:
        """The store's tracking URI."""
        return f"sqlite:///{self.root / 'mlflow.db'}"


@pytest.fixture(scope="module")
def built(
    synthetic_project: Project, tmp_path_factory: pytest.TempPathFactory
) -> Store:
    """The synthetic CRM's two-version project (as test_compare's, in a folder of
    its own: these tests move the champion alias), with 300 open leads to score."""
    versions = fresh_versions(synthetic_project, tmp_path_factory, "refs")
    root = versions.project.root
    leads = root / "leads.parquet"
    versions.project.leads("open").head(300).to_parquet(leads)
    return Store(root, versions.runs, versions.scorers, leads)


@pytest.fixture
def store(
    built: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    """The store's project as the working directory, with an empty model cache."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    with project_environment(built.root):
        yield built


def _score(model: str, store: Store, out: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """`lead-ml score --model MODEL` of the store's leads: the scores and summary."""
    summary = out.with_suffix(".json")
    args = ["score", "--model", model, "--input", str(store.leads)]
    args += ["--output", str(out), "--summary", str(summary)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    facts = json.loads(summary.read_text())["model"]
    assert f"model: {facts['description']}, {facts['model_version']}" in " ".join(
        result.output.split()
    )
    return pd.read_parquet(out), facts


def _promote(*args: str) -> None:
    result = runner.invoke(app, ["promote", *args])
    assert result.exit_code == 0, result.output


def test_the_champion_alias_scores_what_promote_chose(
    store: Store, tmp_path: Path
) -> None:
    """Issue 15: `score --model models:/lead-ml-scorer@champion` failed with "no such
    folder". After a real promote it scores exactly as the version's folder does,
    and it follows the alias when the alias moves."""
    _promote("v2")  # the gate: v2 against BANT
    by_alias, facts = _score(f"models:/{NAME}@champion", store, tmp_path / "a.parquet")
    by_folder, _ = _score(str(store.folders[2]), store, tmp_path / "f.parquet")
    pd.testing.assert_frame_equal(by_alias, by_folder)
    assert facts["registered_model"] == NAME and facts["version"] == 2
    assert facts["alias"] == "champion" and facts["run_id"] == store.runs[2]
    assert facts["description"] == f"{NAME} v2 (alias champion)"
    assert facts["model_version"] == verify_folder(store.folders[2])
    assert facts["store"] == store.uri

    _promote("--to", "v1")  # a rollback moves the alias: the job follows it
    moved, facts = _score(f"models:/{NAME}@champion", store, tmp_path / "m.parquet")
    stump, _ = _score(str(store.folders[1]), store, tmp_path / "s.parquet")
    pd.testing.assert_frame_equal(moved, stump)
    assert facts["version"] == 1
    assert not moved["probability"].equals(by_alias["probability"])


def test_a_version_number_and_a_run_resolve_to_their_model(
    store: Store, tmp_path: Path
) -> None:
    """models:/NAME/VERSION, models:/NAME/latest and runs:/RUN_ID/scorer score as
    the folder of the version they name."""
    by_folder, _ = _score(str(store.folders[1]), store, tmp_path / "f.parquet")
    by_number, facts = _score(f"models:/{NAME}/1", store, tmp_path / "n.parquet")
    pd.testing.assert_frame_equal(by_number, by_folder)
    assert facts["version"] == 1 and facts["alias"] is None
    run = f"runs:/{store.runs[2]}/scorer"
    by_run, facts = _score(run, store, tmp_path / "r.parquet")
    latest, _ = _score(f"models:/{NAME}/latest", store, tmp_path / "l.parquet")
    pd.testing.assert_frame_equal(by_run, latest)
    assert facts["run_id"] == store.runs[2] and facts["description"] == run
    assert facts["model_version"] == verify_folder(store.folders[2])


@pytest.mark.parametrize(
    ("reference", "words"),
    [
        (f"models:/{NAME}@nobody", ["no alias 'nobody'", "`lead-ml promote`"]),
        (f"models:/{NAME}/9", ["no version '9'", "versions: v1, v2", "compare"]),
        ("models:/no-such-model@champion", ["no registered model", "lead-ml export"]),
        (f"runs:/{'0' * 32}/scorer", ["no run", "models:/lead-ml-scorer@champion"]),
        (f"models:/{NAME}", ["not a model reference", "models:/NAME@ALIAS"]),
    ],
)
def test_unknown_references_are_one_line_errors_naming_the_store(
    store: Store, reference: str, words: list[str], tmp_path: Path
) -> None:
    args = ["score", "--model", reference, "--input", str(store.leads)]
    result = runner.invoke(app, [*args, "--output", str(tmp_path / "s.parquet")])
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert message.startswith("error: ") and "\n" not in message
    assert all(word in message for word in words), message
    if reference != f"models:/{NAME}":
        assert store.uri in message
    assert not (tmp_path / "s.parquet").exists()


def test_a_run_artifact_that_is_no_scorer_is_refused(store: Store) -> None:
    with pytest.raises(ScorerError, match="no lead-ml scorer there"):
        resolve_scorer(f"runs:/{store.runs[2]}/booster")
    with pytest.raises(ScorerError, match="has no artifact 'nothing'"):
        resolve_scorer(f"runs:/{store.runs[2]}/nothing")


def test_a_run_resolves_in_the_store_asked_whatever_mlflow_last_tracked(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow's own runs:/ lookup of a logged model reads the process's global
    tracking URI, which an earlier training in the same process leaves pointing at
    its store (failed in CI: "has no artifact 'scorer'", after another test
    trained). The run's model is found in the store the reference is resolved in."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    other = f"sqlite:///{tmp_path / 'other.db'}"
    monkeypatch.setattr(utils, "_tracking_uri", other)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    assert mlflow.get_tracking_uri() == other
    source = resolve_scorer(f"runs:/{store.runs[2]}/scorer", tmp_path / "cache")
    assert verify_folder(source.folder) == verify_folder(store.folders[2])
    with pytest.raises(ScorerError, match="no lead-ml scorer there"):
        resolve_scorer(f"runs:/{store.runs[2]}/booster", tmp_path / "cache")
    version = resolve_scorer(f"models:/{NAME}/1", tmp_path / "cache")
    assert verify_folder(version.folder) == verify_folder(store.folders[1])
    # A run's own artifact folder (not a logged model) resolves too.
    with pytest.raises(ScorerError, match="no lead-ml scorer there"):
        resolve_scorer(f"runs:/{store.runs[2]}/plots", tmp_path / "cache")


def test_jobs_resolving_at_once_share_one_complete_cache_folder(
    store: Store, tmp_path: Path
) -> None:
    """Every download goes to a fresh folder and is renamed into place: jobs
    resolving the same version at once all get the one complete folder, and no
    partial download is left behind."""
    cache = tmp_path / "shared-cache"
    with ThreadPoolExecutor(4) as pool:
        found = list(
            pool.map(lambda _: resolve_scorer(f"models:/{NAME}/2", cache), range(4))
        )
    folders = {source.folder for source in found}
    assert len(folders) == 1 and list(cache.iterdir()) == [*folders]
    assert verify_folder(next(iter(folders))) == verify_folder(store.folders[2])
    # A version already in the cache is not downloaded again.
    booster = next(iter(folders)) / "artifacts/bundle/booster.txt"
    before = booster.stat().st_mtime_ns
    assert resolve_scorer(f"models:/{NAME}/2", cache).folder == found[0].folder
    assert booster.stat().st_mtime_ns == before


def test_a_cached_folder_is_checked_when_loaded(store: Store, tmp_path: Path) -> None:
    """The cache gives no pass: an edited cache folder is refused, as a folder is."""
    source = resolve_scorer(f"models:/{NAME}/1", tmp_path / "cache")
    spec = source.folder / "artifacts/bundle/scorer.json"
    spec.write_text(spec.read_text() + " ")
    with pytest.raises(ScorerError, match="checksum mismatch"):
        load_scorer(resolve_scorer(f"models:/{NAME}/1", tmp_path / "cache").folder)


def test_a_download_must_be_the_content_its_version_is_tagged_with(
    store: Store, tmp_path: Path
) -> None:
    """A registered version carries its scorer's content version (the export tags
    it): a download that is another content is refused and not cached."""
    client = MlflowClient(tracking_uri=store.uri)
    tagged = client.get_model_version(NAME, "1").tags[SCORER_TAG]
    assert tagged == verify_folder(store.folders[1])
    client.set_model_version_tag(NAME, "1", SCORER_TAG, verify_folder(store.folders[2]))
    try:
        with pytest.raises(ScorerError, match="downloaded copy does not check out"):
            resolve_scorer(f"models:/{NAME}/1", tmp_path / "cache")
        assert not any((tmp_path / "cache").iterdir())
    finally:
        client.set_model_version_tag(NAME, "1", SCORER_TAG, tagged)


def test_expect_version_applies_to_a_reference(store: Store, tmp_path: Path) -> None:
    """--expect-version pins the content, whichever version the alias names."""
    _promote("--to", "v2")
    pinned = verify_folder(store.folders[1])
    args = ["score", "--model", f"models:/{NAME}@champion", "--input"]
    args += [str(store.leads), "--output", str(tmp_path / "s.parquet")]
    result = runner.invoke(app, [*args, "--expect-version", pinned])
    assert result.exit_code == 2 and "is expected" in result.output


def test_the_report_takes_a_reference(store: Store, tmp_path: Path) -> None:
    """`lead-ml report --scorer models:/...` reports the version the alias names."""
    _promote("--to", "v2")
    out = tmp_path / "report.html"
    args = ["report", "--scorer", f"models:/{NAME}@champion", "--no-mlflow"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    # The page names the model as people do: its registered version and alias.
    assert f"Model v2 of {NAME}, the champion" in out.read_text()


def test_a_folder_is_taken_as_it_is() -> None:
    source = resolve_scorer(Path("models/scorer"))
    assert source.folder == Path("models/scorer") and source.version is None
    assert source.describe() == "models/scorer"
