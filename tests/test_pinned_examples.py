"""Property tests are reproducible: conftest pins Hypothesis' examples."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


def draws() -> list[int]:
    """The integers a property test is given."""
    seen: list[int] = []

    @settings(max_examples=25)
    @given(st.integers())
    def record(value: int) -> None:
        seen.append(value)

    record()
    return seen


def test_a_property_test_draws_the_same_examples_on_every_run() -> None:
    if os.environ.get("HYPOTHESIS_PROFILE", "pinned") != "pinned":
        pytest.skip("HYPOTHESIS_PROFILE asks for new examples")
    pinned = settings.default
    assert pinned is not None and pinned.derandomize and pinned.database is None
    first = draws()
    assert len(set(first)) > 5 and draws() == first
