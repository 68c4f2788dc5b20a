"""Names every layer shares: dimensions, BANT letters, column kinds, meta columns.

This module imports nothing from lead_ml, so every other module may import it.

>>> DIMENSIONS[:2], OUTPUT_DIMENSIONS[-1]
(('metrics', 'economic_buyer'), 'other')
>>> sorted(YES_WORDS)
['1', 'true', 'y', 'yes']
"""

from __future__ import annotations

from typing import Literal

import numpy as np

#: The six MEDDIC dimensions, then the two signals outside MEDDIC, in report order.
MEDDIC_DIMENSIONS: tuple[str, ...] = (
    "metrics",
    "economic_buyer",
    "decision_criteria",
    "decision_process",
    "identify_pain",
    "champion",
)
DIMENSIONS: tuple[str, ...] = (*MEDDIC_DIMENSIONS, "fit", "engagement")
#: The dimension of features the source's dimension map leaves out.
OTHER = "other"
#: Every dimension an explanation reports, ``other`` last.
OUTPUT_DIMENSIONS: tuple[str, ...] = (*DIMENSIONS, OTHER)
BANT_LETTERS: tuple[str, ...] = ("budget", "authority", "need", "timeline")

#: What a column of a source table holds. ``text`` (free text or an identifier) is
#: never a feature; ``evidence`` is a rep's yes / no answer, blank meaning unknown.
Kind = Literal["number", "date", "bool", "evidence", "category", "text"]
DeclaredKind = Literal["number", "date", "bool", "evidence", "category"]
#: Kinds a feature can have: a source column's, or a count from the activity log.
FeatureKind = Literal["number", "date", "bool", "evidence", "category", "activity"]

#: Text read as yes and as no (compared after trimming and lower-casing).
YES_WORDS = frozenset({"yes", "true", "y", "1"})
NO_WORDS = frozenset({"no", "false", "n", "0"})
#: Codes of an evidence answer, ordered so that more evidence never lowers the score
#: while "unknown" (blank, null or a declared placeholder) stays a value of its own.
EVIDENCE_CODES: dict[str, float] = {"no": 0.0, "unknown": 1.0, "yes": 2.0}

#: Columns lead-ml puts first in the labelled deal frame, whatever the source calls
#: them: the id, the dates, the order, the outcome (won / lost / open), won as 1 / 0
#: (missing while open) and the amount.
META_COLUMNS: tuple[str, ...] = (
    "deal_id",
    "created_at",
    "closed_at",
    "order",
    "outcome",
    "won",
    "amount",
)
#: Columns of the features table besides the features themselves.
FEATURE_META: tuple[str, ...] = (
    "deal_id",
    "created_at",
    "snapshot_at",
    "order",
    "outcome",
    "won",
    "amount",
    "split",
    "group",
)
#: The activity log's columns once read, whatever the source calls them.
ACTIVITY_COLUMNS: tuple[str, ...] = ("deal_id", "timestamp", "activity_type")
#: The columns every rejects table starts with.
REJECT_COLUMNS: tuple[str, ...] = ("table", "row", "reason")
#: Dates and time stamps, as Parquet stores them (naive UTC).
TIME_DTYPE = np.dtype("datetime64[ms]")
SPLITS: tuple[str, ...] = ("train", "valid", "test")
BANDS: tuple[str, ...] = ("A", "B", "C", "D")


class ConfigError(ValueError):
    """A setting in params.yaml is missing or wrong; the message names the key."""


class ContractError(ValueError):
    """A table cannot be read or checked at all; the message names the file and fix."""


class LeakageError(ValueError):
    """The audit flagged columns that look like leakage and the user did not allow."""


class ScorerError(ValueError):
    """A scorer bundle cannot be used: missing, tampered, or from another format."""


class CompareError(ValueError):
    """A comparison or promotion cannot run as asked; the message says what to do."""


class ReportError(ValueError):
    """An input of the report is missing or malformed; the message names it."""


#: Every error that is the user's to fix (a setting, a file, a name): the command
#: line prints its message and exits with code 2, no stack trace.
USER_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    ContractError,
    LeakageError,
    ScorerError,
    CompareError,
    ReportError,
    FileNotFoundError,
)


def dimension_label(dimension: str) -> str:
    """The dimension in words, as reasons print it.

    >>> dimension_label("economic_buyer")
    'economic buyer'
    """
    return dimension.replace("_", " ")
