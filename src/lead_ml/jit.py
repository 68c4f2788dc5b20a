"""numba compilation with an on-disk cache that survives a copy of the code.

lead-ml's compiled loops (:mod:`lead_ml.fastshap`, the activity aggregation in
:mod:`lead_ml.features`) are decorated with :func:`jit`: ``numba.njit`` whose cache is
keyed by the source file's content, so the copy of the package MLflow makes for
every pyfunc load or Spark job reuses what an earlier one compiled.

It also holds the elementary functions whose results reach a model or a DVC output
(:data:`exp`, :data:`log1p`, ...): numpy picks an implementation of ``np.exp`` by
the CPU it runs on (AVX-512 or AVX2), and the two differ in the last bit, so the
same params and data gave another model and other DVC hashes on another machine.
These call the C library's functions one element at a time, the same on every
x86-64 CPU with FMA (every one since 2013) and within 1 ulp of the true value.
"""

from __future__ import annotations

import functools
import hashlib
import math
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


def _cached(compile_: Callable[..., Any], function: Any, **options: Any) -> Any:
    """``compile_(cache=True, **options)(function)`` with lead-ml's cache
    locators, uncached where no place is writable."""
    config: Any = numba.config  # its settings are set at import: no stubs
    chosen = config.CACHE_LOCATOR_CLASSES
    # numba reads the setting when a function is decorated: set it for ours only
    config.CACHE_LOCATOR_CLASSES = chosen or ",".join(CACHE_LOCATORS)
    try:
        return compile_(cache=True, **options)(function)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return compile_(cache=False, **options)(function)
    finally:
        config.CACHE_LOCATOR_CLASSES = chosen


def jit(**options: Any) -> Callable[[Any], Any]:
    """numba.njit with an on-disk cache where one can be written, without otherwise.

    The cache is found by :data:`CACHE_LOCATORS` unless NUMBA_CACHE_LOCATOR_CLASSES
    says otherwise; when no place is writable (a read-only install and home) numba
    refuses to cache, and the functions are compiled once per process instead of
    failing to import.
    """

    def decorate(function: Any) -> Any:
        return _cached(numba.njit, function, **options)

    return decorate


def _ufunc(signature: str) -> Callable[[Any], Any]:
    """A numpy ufunc of a scalar function (numba.vectorize, cached like
    :func:`jit`): it broadcasts, and takes scalars, as numpy's own do. Built at its
    first call, so that importing this module (every stage, every Spark executor)
    loads none of them: each costs ~40 ms to load from the cache."""

    def decorate(function: Any) -> Any:
        built: list[Any] = []

        def compile_(**options: Any) -> Any:
            return numba.vectorize([signature], **options)

        @functools.wraps(function)
        def call(*args: Any) -> Any:
            if not built:
                built.append(_cached(compile_, function))
            return built[0](*args)

        return call

    return decorate


# Without numba's SVML (it is not installed, and lead-ml does not ask for it) LLVM
# keeps each call a call to the C library: no vector variant to pick by CPU. The
# logarithms answer nan and -inf outside their domain themselves: C's would too,
# but raising the floating-point flags numpy reports as warnings.


@_ufunc("float64(float64)")
def exp(x: float) -> float:
    """e to the x, the C library's (see the module docstring)."""
    return math.exp(x)


@_ufunc("float64(float64)")
def log(x: float) -> float:
    """Natural logarithm, the C library's (nan below 0, -inf at 0)."""
    if x < 0.0:
        return math.nan
    if x == 0.0:
        return -math.inf
    return math.log(x)


@_ufunc("float64(float64)")
def log10(x: float) -> float:
    """Base-10 logarithm, the C library's (nan below 0, -inf at 0)."""
    if x < 0.0:
        return math.nan
    if x == 0.0:
        return -math.inf
    return math.log10(x)


@_ufunc("float64(float64)")
def log1p(x: float) -> float:
    """log(1 + x), exact for small x, the C library's (nan below -1)."""
    if x < -1.0:
        return math.nan
    if x == -1.0:
        return -math.inf
    return math.log1p(x)


@_ufunc("float64(float64)")
def sin(x: float) -> float:
    """Sine, the C library's."""
    return math.sin(x)


@_ufunc("float64(float64, float64)")
def power(x: float, y: float) -> float:
    """x to the y, the C library's ``pow``."""
    return x**y


@jit()
def logistic(x: float) -> float:
    """The logistic function 1 / (1 + e^-x) of one number, for compiled code,
    never overflowing: e^x / (1 + e^x) below 0."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@_ufunc("float64(float64)")
def sigmoid(x: float) -> float:
    """:func:`logistic` of every element."""
    return logistic(x)
