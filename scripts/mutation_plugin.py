"""pytest plugin of `make mutate`: leaves out the tests that need a finished project.

Those read the projects the first session built (``tests/projects.py``), and in
mutmut's forked workers they end on a SIGTERM whatever the mutant, which mutmut
reports as "suspicious": a mutant is judged by the tests that call the code itself.
"""

from __future__ import annotations

import pytest

#: The session fixtures that hold a finished pipeline run (tests/conftest.py).
PROJECT_FIXTURES = frozenset(
    {"project", "synthetic_project", "x_education_project", "maven_project"}
)


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Deselect every test that uses a project fixture, directly or through another."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        uses = PROJECT_FIXTURES & set(getattr(item, "fixturenames", ()))
        (drop if uses else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
