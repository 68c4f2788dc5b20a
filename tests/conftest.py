"""Shared fixtures: one finished project per source, built once per test session.

See :mod:`projects` for what a project is and the sources it covers.
"""

from __future__ import annotations

import pytest
from projects import SMALL, SOURCES, Project, build_project, require_source

from lead_ml.config import SyntheticConfig
from lead_ml.synthetic import SyntheticCRM, generate_crm


@pytest.fixture(scope="session")
def small_crm() -> SyntheticCRM:
    """A clean 3,000-deal synthetic CRM (no injected dirty rows)."""
    return generate_crm(SMALL, seed=11, dirty_fraction=0.0)


@pytest.fixture(scope="session")
def default_crm() -> SyntheticCRM:
    """The synthetic CRM `make run` uses (default size, seed and dirty rows)."""
    return generate_crm(SyntheticConfig(), seed=42)


_PROJECTS: dict[str, Project] = {}


def finished_project(name: str, factory: pytest.TempPathFactory) -> Project:
    """The finished project of a source, built once per session (per worker)."""
    require_source(name)
    if name not in _PROJECTS:
        _PROJECTS[name] = build_project(name, factory.mktemp(f"project-{name}"))
    return _PROJECTS[name]


@pytest.fixture(scope="session", params=list(SOURCES))
def project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Project:
    """A finished project of each source in turn: tests using it run once per source."""
    return finished_project(request.param, tmp_path_factory)


@pytest.fixture(scope="session")
def synthetic_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The finished project of the small synthetic CRM."""
    return finished_project("synthetic", tmp_path_factory)


@pytest.fixture(scope="session")
def x_education_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The finished project of the X Education leads (skipped without shared data)."""
    return finished_project("x_education", tmp_path_factory)


@pytest.fixture(scope="session")
def maven_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The finished project of the Maven CRM (skipped without shared data)."""
    return finished_project("maven", tmp_path_factory)
