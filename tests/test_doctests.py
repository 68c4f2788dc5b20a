"""The examples in the package's docstrings run and show what they claim.

pytest collects tests/ only (testpaths), so without this file the examples in
src/lead_ml would never run and could drift from the code unnoticed.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import warnings

import pytest

import lead_ml

#: pyfunc_model is MLflow models-from-code: importing it registers a model with
#: MLflow (mlflow.models.set_model), which only the pyfunc loader should do.
SKIPPED = {"pyfunc_model"}
MODULES = sorted(
    m.name for m in pkgutil.iter_modules(lead_ml.__path__) if m.name not in SKIPPED
)
#: The package documents its behaviour by example: at least this many in all.
MIN_EXAMPLES = 80


def imported(name: str) -> object:
    """A module of the package (shap and friends warn on import)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module(f"lead_ml.{name}")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(
        imported(name),  # type: ignore[arg-type]
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.failed == 0, f"{result.failed} example(s) of lead_ml.{name} failed"


def test_the_examples_are_not_all_empty() -> None:
    finder = doctest.DocTestFinder()
    attempted = sum(
        len(test.examples) for name in MODULES for test in finder.find(imported(name))
    )
    assert attempted >= MIN_EXAMPLES
