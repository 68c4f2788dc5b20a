"""Shared fixtures: one finished project per source, built once per test session.

See :mod:`projects` for what a project is and the sources it covers.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import settings
from projects import SMALL, SOURCES, Project, build_project, require_source

from lead_ml.config import SyntheticConfig
from lead_ml.synthetic import SyntheticCRM, generate_crm

# Property tests draw the same examples on every run (seeded from each test), so a
# failure reruns as it happened; HYPOTHESIS_PROFILE=explore draws new ones.
settings.register_profile("pinned", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "pinned"))


@pytest.fixture(scope="session")
def small_crm() -> SyntheticCRM:
    """A clean 3,000-deal synthetic CRM (no injected dirty rows)."""
    return generate_crm(SMALL, seed=11, dirty_fraction=0.0)


@pytest.fixture(scope="session")
def default_crm() -> SyntheticCRM:
    """The synthetic CRM `make run` uses (default size, seed and dirty rows)."""
    return generate_crm(SyntheticConfig(), seed=42)


#: Scopes that take minutes (a DVC pipeline each, or fresh venvs and processes),
#: slowest first: `make test` hands them out before the rest (see below).
SLOW_SCOPES = (
    "tests/test_pipeline_dvc.py::TestSynthetic",
    "tests/test_pipeline_dvc.py::TestXEducation",
    "tests/test_pipeline_dvc.py::TestMaven",
    "tests/test_compare.py",
    "tests/test_bench.py",
    "tests/test_clean_env.py",
    "tests/test_fastshap.py",
)


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """On an xdist worker, order the scopes (a module, or a class: what
    ``--dist loadscope`` sends to one worker) slowest first, then by their number of
    tests. The Makefile turns xdist's own reordering off (it sorts by number of
    tests only), so the last scopes handed out are short and neither worker idles
    for minutes while the other finishes a pipeline. A scope's tests keep their
    order; a run without xdist keeps the collection order."""
    if not hasattr(config, "workerinput"):
        return

    def scope(item: pytest.Item) -> str:
        return item.nodeid.rsplit("::", 1)[0]

    counts = Counter(scope(item) for item in items)

    def rank(item: pytest.Item) -> tuple[int, int]:
        found = scope(item)
        slow = next(
            (i for i, name in enumerate(SLOW_SCOPES) if found == name),
            len(SLOW_SCOPES),
        )
        return slow, -counts[found]

    items.sort(key=rank)  # stable: within a scope, the collection order


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
