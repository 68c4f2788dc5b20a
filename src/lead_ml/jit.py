"""numba compilation with an on-disk cache that survives a copy of the code.

lead-ml's compiled loops (:mod:`lead_ml.fastshap`, the activity aggregation in
:mod:`lead_ml.features`) are decorated with :func:`jit`: ``numba.njit`` whose cache is
keyed by the source file's content, so the copy of the package MLflow makes for
every pyfunc load or Spark job reuses what an earlier one compiled.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
from numba.core.caching import UserWideCacheLocator


class SourceHashCacheLocator(UserWideCacheLocator):
    """numba cache locator: the user's cache folder, under a hash of the decorated
    function's source file rather than of the folder the file lies in.

    MLflow copies a model's code into a fresh temporary folder for every job (a
    Spark executor, a pyfunc load), where numba's own locators would compile every
    kernel again (~12 s a process); any copy of the same source finds these.
    ``NUMBA_CACHE_DIR`` and ``NUMBA_CACHE_LOCATOR_CLASSES`` still take precedence.
    """

    def __init__(self, py_func: Any, py_file: str) -> None:
        super().__init__(py_func, py_file)
        digest = hashlib.sha256(Path(py_file).read_bytes()).hexdigest()[:16]
        home = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        self._cache_path = os.path.join(
            home, "lead-ml", "numba", f"{Path(py_file).stem}-{digest}"
        )


#: Where the kernels are cached, first that can be written: NUMBA_CACHE_DIR when
#: set, the content-keyed folder above, then numba's usual places.
CACHE_LOCATORS = (
    "UserProvidedCacheLocator",
    f"{__name__}.SourceHashCacheLocator",
    "InTreeCacheLocator",
    "UserWideCacheLocator",
)


def jit(**options: Any) -> Callable[[Any], Any]:
    """numba.njit with an on-disk cache where one can be written, without otherwise.

    The cache is found by :data:`CACHE_LOCATORS` unless NUMBA_CACHE_LOCATOR_CLASSES
    says otherwise; when no place is writable (a read-only install and home) numba
    refuses to cache, and the functions are compiled once per process instead of
    failing to import.
    """

    def decorate(function: Any) -> Any:
        config: Any = numba.config  # its settings are set at import: no stubs
        chosen = config.CACHE_LOCATOR_CLASSES
        # numba reads the setting when a function is decorated: set it for ours only
        config.CACHE_LOCATOR_CLASSES = chosen or ",".join(CACHE_LOCATORS)
        try:
            return numba.njit(cache=True, **options)(function)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return numba.njit(cache=False, **options)(function)
        finally:
            config.CACHE_LOCATOR_CLASSES = chosen

    return decorate
