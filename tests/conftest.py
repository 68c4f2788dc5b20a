"""Shared fixtures: small generated CRMs, built once per session."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pandas.errors import Pandas4Warning

from lead_ml.config import FeaturizeConfig, SyntheticConfig, load_params
from lead_ml.features import build_features
from lead_ml.synthetic import SyntheticCRM, generate_crm

SMALL = SyntheticConfig(n_deals=3000, n_accounts=600, activities_per_deal=20)


@pytest.fixture(scope="session")
def small_crm() -> SyntheticCRM:
    """A clean 3,000-deal CRM (no injected dirty rows)."""
    return generate_crm(SMALL, seed=11, dirty_fraction=0.0)


@pytest.fixture(scope="session")
def default_crm() -> SyntheticCRM:
    """The CRM `make run` uses (default size and seed), dirty rows included."""
    return generate_crm(SyntheticConfig(), seed=42)


@pytest.fixture(scope="session")
def small_features(small_crm: SyntheticCRM) -> pd.DataFrame:
    """Point-in-time features of the small CRM."""
    return build_features(
        small_crm.deals, small_crm.accounts, small_crm.activities, FeaturizeConfig()
    )


#: params.yaml of `small_project`: a 3,000-deal CRM, quick to train and explain.
SMALL_PROJECT_PARAMS = {
    "synthetic": {"n_deals": 3000, "n_accounts": 600, "activities_per_deal": 20.0},
    "train": {"n_estimators": 150},
    "evaluate": {"n_bootstrap": 200},
}


@pytest.fixture(scope="session")
def small_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder after every pipeline stage up to export on a small CRM, laid
    out as dvc.yaml lays it out, with its own MLflow store (``mlflow.db`` and
    ``mlruns/`` in the folder; set MLFLOW_TRACKING_URI to use it)."""
    from lead_ml import pipeline

    root = tmp_path_factory.mktemp("project")
    (root / "params.yaml").write_text(yaml.safe_dump(SMALL_PROJECT_PARAMS))
    params = load_params(root / "params.yaml")
    features = root / "data/features/features.parquet"
    with pytest.MonkeyPatch.context() as env, warnings.catch_warnings():
        # MLflow's own warnings (its AnyType hints; its input example comparing a
        # string index with a range, deprecated by pandas 3.1), not the pipeline's.
        warnings.filterwarnings("ignore", ".*AnyType", UserWarning)
        warnings.filterwarnings("ignore", category=Pandas4Warning, module=r"mlflow\.")
        # MLflow puts a new experiment's artifacts under the working directory.
        env.chdir(root)
        env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        pipeline.run_generate(params, root / "data/raw")
        pipeline.run_validate(
            root / "data/raw", root / "data/validated", root / "reports/rejects.csv"
        )
        pipeline.run_featurize(params, root / "data/validated", features)
        pipeline.run_train(params, features, root / "models/model")
        pipeline.run_evaluate(
            params,
            features,
            root / "models/model",
            root / "reports/metrics.json",
            root / "reports/plots",
        )
        pipeline.run_export(
            params,
            features,
            root / "models/model",
            root / "data/validated",
            root / "models/scorer",
            root / "reports/export.json",
        )
    return root


@pytest.fixture(scope="session")
def small_leads(small_project: Path) -> pd.DataFrame:
    """Every valid deal of `small_project` as a lead row (the columns the exported
    scorer takes, account columns joined in), in deal order."""
    from lead_ml.scorer import input_columns

    validated = small_project / "data/validated"
    deals = pd.read_parquet(validated / "deals.parquet")
    accounts = pd.read_parquet(validated / "accounts.parquet")
    leads = deals.merge(accounts, on="account_id", how="left", validate="many_to_one")
    return leads[list(input_columns())]
