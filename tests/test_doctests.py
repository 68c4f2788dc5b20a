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


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shap and friends warn on import
        module = importlib.import_module(f"lead_ml.{name}")
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.failed == 0, f"{result.failed} example(s) of lead_ml.{name} failed"


def test_the_examples_are_not_all_empty() -> None:
    attempted = 0
    for name in MODULES:
        module = importlib.import_module(f"lead_ml.{name}")
        finder = doctest.DocTestFinder()
        attempted += sum(len(t.examples) for t in finder.find(module))
    assert attempted >= 60  # the package documents its behaviour by example
