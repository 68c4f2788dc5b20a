"""Projects for tests: one finished pipeline run per source.

Every behaviour is tested on each source through the same pipeline: the built-in
synthetic CRM (small), and the two real exports in ``../shared/data`` (X Education
leads, Maven CRM opportunities), whose tests skip with a message when the folder is
absent. A project is a folder laid out as dvc.yaml lays it out, after every stage
up to export, with its own MLflow store.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from pandas.errors import Pandas4Warning

from lead_ml.config import Params, SyntheticConfig, load_params, read_params_file
from lead_ml.sources import Deals, lead_rows, read_deals, source_activities

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SMALL = SyntheticConfig(n_deals=3000, n_accounts=600, activities_per_deal=20)
#: The sources every behaviour is tested on: name -> the params file it starts from.
SOURCES: dict[str, Path] = {
    "synthetic": ROOT / "params.yaml",
    "x_education": ROOT / "examples" / "x_education" / "params.yaml",
    "maven": ROOT / "examples" / "maven_crm" / "params.yaml",
}
#: What each source needs on disk besides the project.
NEEDS: dict[str, Path | None] = {
    "synthetic": None,
    "x_education": SHARED / "x_education_leads" / "Leads.csv",
    "maven": SHARED / "maven_crm" / "sales_pipeline.csv",
}
#: Settings that keep a test project quick (fewer trees and resamples, a small CRM).
QUICK: dict[str, Any] = {
    "train": {"n_estimators": 150},
    # 3,000 synthetic deals hold ~135 wins in the test window, an AUC CI ~0.10 wide:
    # a wider bound than the default keeps the quick project on the holdout path.
    "audit": {"max_auc_ci_width": 0.15},
    "evaluate": {"n_bootstrap": 200},
    "synthetic": {"n_deals": 3000, "n_accounts": 600, "activities_per_deal": 20.0},
}


def require_source(name: str) -> None:
    """Skip, saying why, when a real data set of ../shared/data is absent."""
    needed = NEEDS[name]
    if needed is not None and not needed.exists():
        pytest.skip(f"{needed} is absent: the {name} tests need ../shared/data")


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied section by section (nested dicts merged)."""
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def source_params(
    name: str, root: Path, changes: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The raw params of a source for a project folder ``root``: its params file
    with the quick settings, paths made absolute (real data) or under ``root``
    (the synthetic CRM's generated tables), and ``changes`` applied."""
    raw = merged(read_params_file(SOURCES[name]), QUICK)
    for table in raw["source"]["tables"].values():
        path = Path(table["path"])
        table["path"] = str(
            root / path if name == "synthetic" else (ROOT / path).resolve()
        )
    return merged(raw, changes or {})


@dataclass(frozen=True)
class Project:
    """A finished pipeline run of one source (see the module doc)."""

    name: str
    root: Path

    @property
    def params(self) -> Params:
        """The project's params.yaml, validated."""
        return load_params(self.root / "params.yaml")

    def path(self, relative: str) -> Path:
        """A path inside the project."""
        return self.root / relative

    def deals(self) -> Deals:
        """The validated deals."""
        return read_deals(self.path("data/validated"), self.path("reports/rejects.csv"))

    def features(self) -> pd.DataFrame:
        """The features table."""
        return pd.read_parquet(self.path("data/features/features.parquet"))

    def leads(self, outcome: str | None = None) -> pd.DataFrame:
        """Valid deals as lead rows in the source's own columns (all, or those with
        this outcome), in deal order."""
        frame = self.deals().frame
        if outcome is not None:
            frame = frame[frame["outcome"] == outcome]
        return lead_rows(frame, self.params.source).reset_index(drop=True)

    def activities(self) -> pd.DataFrame | None:
        """The validated activity log in the source's own columns (None without)."""
        deals = self.deals()
        if deals.activities is None:
            return None
        return source_activities(deals.activities, self.params.source)

    def activities_file(self, folder: Path) -> Path | None:
        """The activity log written as a Parquet file in ``folder`` (None without)."""
        log = self.activities()
        if log is None:
            return None
        path = folder / "activities.parquet"
        log.to_parquet(path, index=False)
        return path


@contextmanager
def project_environment(root: Path) -> Iterator[None]:
    """Work inside a project folder with its own MLflow store (``mlflow.db`` and
    ``mlruns/`` there), MLflow's own warnings silenced."""
    with pytest.MonkeyPatch.context() as env, warnings.catch_warnings():
        # MLflow's own warnings (its AnyType hints; its input example comparing a
        # string index with a range, deprecated by pandas 3.1), not the pipeline's.
        warnings.filterwarnings("ignore", ".*AnyType", UserWarning)
        warnings.filterwarnings("ignore", category=Pandas4Warning, module=r"mlflow\.")
        # MLflow puts a new experiment's artifacts under the working directory.
        env.chdir(root)
        env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        yield


def build_project(
    name: str, root: Path, changes: dict[str, Any] | None = None
) -> Project:
    """Run every stage up to export for a source into ``root`` (a fresh folder), in
    this process, with the MLflow store in the folder."""
    from lead_ml import stages

    raw = source_params(name, root, changes)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    params = load_params(root / "params.yaml")
    with project_environment(root):
        if name == "synthetic":
            stages.run_generate(params, root / "data/raw")
        for table in params.source.tables.present():
            stages.run_read(params, table, root / f"data/tables/{table}.parquet")
        stages.run_validate(
            params,
            root / "data/tables",
            root / "data/validated",
            root / "reports/rejects.csv",
        )
        stages.run_audit(
            params,
            root / "data/validated",
            root / "reports/audit.json",
            root / "reports/audit.md",
            root / "data/audit/split.parquet",
            root / "data/tables",
        )
        stages.run_featurize(
            params,
            root / "data/validated",
            root / "reports/audit.json",
            root / "data/audit/split.parquet",
            root / "data/features/features.parquet",
            root / "data/features/registry.json",
        )
        stages.run_train(
            params,
            root / "data/features/features.parquet",
            root / "data/features/registry.json",
            root / "models/model",
        )
        common = {
            "features": root / "data/features/features.parquet",
            "registry": root / "data/features/registry.json",
            "model": root / "models/model",
            "validated": root / "data/validated",
        }
        stages.run_evaluate(
            params,
            common
            | {
                "audit": root / "reports/audit.json",
                "metrics": root / "reports/metrics.json",
                "plots": root / "reports/plots",
            },
        )
        stages.run_export(
            params,
            common
            | {
                "scorer": root / "models/scorer",
                "record": root / "reports/export.json",
            },
        )
    return Project(name, root)


# --- a registry of two versions -----------------------------------------------------

#: v1: one tree with one split, so the real model (v2) has something to beat.
STUMP: dict[str, Any] = {
    "n_estimators": 1,
    "num_leaves": 2,
    "max_depth": 1,
    "early_stopping_rounds": 1,
}
#: The quick synthetic CRM's test window has 50 to 95 closed deals a month: with the
#: default 100 no month would be judged, and the gate refuses a dated window with no
#: month to judge.
JUDGED: dict[str, Any] = {"compare": {"min_month_deals": 40}}
FEATURES = Path("data/features/features.parquet")
VALIDATED = Path("data/validated")


@dataclass(frozen=True)
class Versions:
    """A copy of a finished project whose MLflow store holds v1 (stump) and v2 (the
    project's model), each trained, evaluated and exported by the pipeline's stages."""

    project: Project
    runs: dict[int, str]
    scorers: dict[int, Path]

    @property
    def name(self) -> str:
        """The source's name (synthetic, x_education, maven)."""
        return self.project.name

    @property
    def params(self) -> Params:
        """The project's params: v2's."""
        return self.project.params

    def window_deals(self) -> pd.DataFrame:
        """The closed deals of the features' test split in time order, by hand."""
        features = self.project.features()
        test = features[features["split"].eq("test").fillna(False).to_numpy(bool)]
        ids = test.sort_values(["created_at", "order", "deal_id"], kind="stable")
        frame = self.project.deals().frame.set_index("deal_id")
        return frame.loc[ids["deal_id"].to_numpy()].reset_index()

    def window_leads(self) -> pd.DataFrame:
        """The same deals as lead rows (the source's own columns), by hand."""
        id_column = self.params.source.tables.deals.id
        leads = self.project.leads().set_index(id_column, drop=False)
        return leads.loc[self.window_deals()["deal_id"].to_numpy()].reset_index(
            drop=True
        )

    def hand_scores(self, version: int) -> Any:
        """A version's probabilities on the window, scored from its folder."""
        from lead_ml.scorer import load_scorer

        scorer = load_scorer(self.scorers[version])
        activities = self.project.activities() if scorer.counts_activities else None
        scored = scorer.score(self.window_leads(), activities, explain_reasons=False)
        assert scored["reject_reason"].isna().all()
        return scored["probability"].to_numpy(float)

    def moved_to(self, root: Path) -> Versions:
        """The same versions read from a copy of the project folder at ``root``."""
        old = self.project.root
        return Versions(
            Project(self.name, root),
            self.runs,
            {v: root / path.relative_to(old) for v, path in self.scorers.items()},
        )


def export_version(
    params: Params, root: Path, model: str, outputs: str, train: dict[str, Any]
) -> dict[str, Any]:
    """Train, evaluate and export one version into the project at root."""
    from lead_ml import stages

    changed = params.model_copy(update={"train": params.train.model_copy(update=train)})
    stages.run_train(
        changed,
        root / FEATURES,
        root / "data/features/registry.json",
        root / "models" / model,
    )
    common = {
        "features": root / FEATURES,
        "registry": root / "data/features/registry.json",
        "model": root / "models" / model,
        "validated": root / VALIDATED,
    }
    out = root / outputs
    stages.run_evaluate(
        changed,
        common
        | {
            "audit": root / "reports/audit.json",
            "metrics": out / "metrics.json",
            "plots": out / "plots",
        },
    )
    scorer = root / "models" / f"{model}-scorer"
    record = stages.run_export(
        changed, common | {"scorer": scorer, "record": out / "export.json"}
    )
    return {**record, "scorer": scorer}


#: Per source: the two-version project, and a copy of it taken before any test ran.
_VERSIONS: dict[str, tuple[Versions, Path]] = {}


def two_versions(project: Project, factory: pytest.TempPathFactory) -> Versions:
    """The two-version copy of a finished project, built once per session (per
    worker). Its tests move the champion alias: see :func:`fresh_versions`."""
    if project.name not in _VERSIONS:
        root = factory.mktemp(f"compare-{project.name}")
        skip = shutil.ignore_patterns("mlflow.db", "mlruns")
        shutil.copytree(project.root, root, ignore=skip, dirs_exist_ok=True)
        raw = merged(read_params_file(root / "params.yaml"), JUDGED)
        (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        copy = Project(project.name, root)
        runs, scorers = {}, {}
        with project_environment(root):
            params = copy.params
            for version, (model, outputs, train) in enumerate(
                (("stump", "reports/stump", STUMP), ("model", "reports", {})), 1
            ):
                record = export_version(params, root, model, outputs, train)
                assert record["registered_version"] == version
                runs[version], scorers[version] = record["run_id"], record["scorer"]
        # The store as the stages left it (no alias, no move), for fresh_versions.
        # Its artifacts stay in root/mlruns: the copies' stores point there.
        pristine = factory.mktemp(f"compare-{project.name}-pristine")
        shutil.copytree(
            root, pristine, ignore=shutil.ignore_patterns("mlruns"), dirs_exist_ok=True
        )
        _VERSIONS[project.name] = (Versions(copy, runs, scorers), pristine)
    return _VERSIONS[project.name][0]


def fresh_versions(
    project: Project, factory: pytest.TempPathFactory, label: str
) -> Versions:
    """A folder of its own holding the two-version project as it was built: its
    registry has no champion and no alias moves, whatever other tests promoted.
    The store's artifacts are read from the built project's mlruns/ (read only)."""
    versions = two_versions(project, factory)
    root = factory.mktemp(label)
    shutil.copytree(_VERSIONS[project.name][1], root, dirs_exist_ok=True)
    return versions.moved_to(root)
