"""pytest plugin of `make mutate`: leaves out the tests that need a finished project,
and maps the code a shared fixture calls to every test that uses the fixture.

The project tests read the projects the first session built (``tests/projects.py``),
and in mutmut's forked workers they end on a SIGTERM whatever the mutant, which
mutmut reports as "suspicious": a mutant is judged by the tests that call the code
itself.

mutmut runs a mutant only against the tests it saw call the mutated function, and
it sees a call in the test that was running at that moment. A module- or
session-scoped fixture is set up during the first test that uses it, so the code
it calls (an export, a trained model) was mapped to that one test alone, and a
mutant there was judged by it, not by the tests that check what the fixture made.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

#: Functions each shared fixture's setup called, by (fixture name, where defined).
_FIXTURE_CALLS: dict[tuple[str, str], set[str]] = {}

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


def _stats() -> set[str] | None:
    """The functions mutmut's stats collection has seen called in this test (None
    outside a mutmut run)."""
    try:
        from mutmut import state
    except ImportError:
        return None
    calls: set[str] | None = getattr(state(), "_stats", None)
    return calls


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, None, None]:
    """Note what a shared fixture's setup calls (on top of what the test has)."""
    calls = _stats()
    if calls is None or fixturedef.scope == "function":
        yield
        return
    before = set(calls)
    calls.clear()
    try:
        yield
    finally:
        key = (fixturedef.argname, fixturedef.baseid)
        _FIXTURE_CALLS.setdefault(key, set()).update(calls)
        calls.update(before)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Before mutmut maps this test's calls: add those of its shared fixtures."""
    calls = _stats()
    info = getattr(item, "_fixtureinfo", None)
    if calls is None or info is None:
        return
    for definitions in info.name2fixturedefs.values():
        for fixturedef in definitions:
            key = (fixturedef.argname, fixturedef.baseid)
            calls.update(_FIXTURE_CALLS.get(key, ()))
