"""Shared fixtures: small generated CRMs, built once per session."""

from __future__ import annotations

import pandas as pd
import pytest

from lead_ml.config import FeaturizeConfig, SyntheticConfig
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
