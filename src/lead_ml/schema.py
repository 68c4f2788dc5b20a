"""The row contract: each column's kind, and which rows break it, with one reason.

Training and scoring read rows the same way. :func:`type_table` gives every column
of a source table its kind (declared under ``source.types`` or inferred from the
values, see :func:`lead_ml.tables.infer_kind`), converts it, and gives each row whose
value does not convert, or lies outside ``source.bounds``, the first such reason.
:class:`LeadContract` is the part of the contract a scorer keeps: the kinds of the
columns a lead row carries, the placeholders meaning missing, the bounds and the id
column; :meth:`LeadContract.read` checks a frame of leads as training checked deals.

Two kinds of problem, two outcomes: a structural one (a declared kind that no value
of the column reads as) raises :class:`~lead_ml.vocab.ContractError` naming the
file, column and fix; a row-level one rejects the row, never silently.

>>> contract = LeadContract("id", {"id": "category", "amount": "number"},
...                         bounds={"amount": (0.0, None)})
>>> leads = pd.DataFrame({"id": ["a", "b", "a", None], "amount": ["9", "-2", "3", "1"]})
>>> typed, reasons = contract.read(leads)
>>> for reason in reasons:
...     print(reason)
None
amount is below 0 (-2)
duplicate id 'a' (first seen at row 0)
id is missing
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lead_ml.tables import (
    NOUNS,
    as_text,
    convert,
    duplicate_reasons,
    first_reason,
    infer_kind,
    no_reasons,
    not_read_reasons,
    quote_value,
    typed_kind,
)
from lead_ml.vocab import ContractError, Kind

Range = tuple[float | None, float | None]


@dataclass(frozen=True)
class ColumnKind:
    """What a column of a source table is, and how sure lead-ml is about it."""

    column: str
    table: str
    kind: Kind
    declared: bool
    levels: int
    missing_share: float
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain values for reports."""
        return asdict(self) | {"missing_share": round(self.missing_share, 4)}


@dataclass(frozen=True, eq=False)
class TypedTable:
    """A table's columns in their kinds (the input's index kept), each column's kind,
    and the first reason each row breaks the contract (None where it does not)."""

    frame: pd.DataFrame
    kinds: dict[str, ColumnKind]
    reasons: np.ndarray


def _fmt(value: float) -> str:
    return f"{value:g}"


def bound_reasons(
    values: pd.Series, column: str, bounds: Range, reasons: np.ndarray
) -> None:
    """Reject rows whose number lies outside ``bounds`` (min, max; None is open)."""
    low, high = bounds
    numbers = values.to_numpy(dtype=float, na_value=np.nan)
    for limit, outside, word in (
        (low, lambda x, b: x < b, "below"),
        (high, lambda x, b: x > b, "above"),
    ):
        if limit is None:
            continue
        with np.errstate(invalid="ignore"):
            failed = outside(numbers, limit)

        def messages(rows: np.ndarray, limit: float = limit, word: str = word) -> list:
            return [
                f"{column} is {word} {_fmt(limit)} ({_fmt(v)})" for v in numbers[rows]
            ]

        first_reason(reasons, failed, messages)


def type_table(
    raw: pd.DataFrame,
    table: str,
    source: str,
    declared: Mapping[str, Kind],
    missing: Iterable[str] = (),
    max_levels: int = 50,
    bounds: Mapping[str, Range] | None = None,
) -> TypedTable:
    """Every column in its declared or inferred kind (a column with bounds is a
    number), and the rows that break it.

    ``source`` (the file) is named by errors. ContractError when no present value of
    a declared column converts: a wrong declaration or a wrong column, not bad rows.
    """
    placeholders = list(missing)
    bounds = dict(bounds or {})
    columns: dict[str, pd.Series] = {}
    kinds: dict[str, ColumnKind] = {}
    reasons = no_reasons(len(raw))
    for column in raw.columns:
        values = raw[column]
        # Bounds are on numbers: a bounded column is a number column, so a value
        # that is not one rejects its row instead of making the column text.
        kind = declared.get(column) or ("number" if column in bounds else None)
        note = ""
        if kind is None:
            text = values if typed_kind(values) else as_text(values, placeholders)
            kind, note = infer_kind(text, max_levels)
        converted, failed = convert(values, kind, placeholders)
        if failed.any() and not converted.notna().any():
            first = values[failed].iloc[0]
            raise ContractError(
                f"{source}: no value of column {column!r} reads as "
                f"{NOUNS.get(kind, kind)} (first: {quote_value(first)}); fix its kind "
                "under source.types or the column named in params (dates must be "
                "ISO 8601, 2024-01-31; numbers plain, 1234.5)"
            )
        first_reason(reasons, failed, not_read_reasons(values, column, kind))
        if column in bounds:
            bound_reasons(converted, column, bounds[column], reasons)
        columns[column] = converted
        kinds[column] = ColumnKind(
            column,
            table,
            kind,
            column in declared or column in bounds,
            int(converted.nunique()),
            float(converted.isna().mean()),
            note,
        )
    return TypedTable(pd.DataFrame(columns, index=raw.index), kinds, reasons)


@dataclass(frozen=True)
class LeadContract:
    """What a lead row must be for a scorer: the kind of every input column (the id
    first), which of them must be present, the placeholders meaning missing, and the
    bounds of number columns."""

    id_column: str
    kinds: dict[str, Kind]
    required: tuple[str, ...] = ()
    missing_values: tuple[str, ...] = ()
    bounds: dict[str, Range] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        """The input columns, in order."""
        return list(self.kinds)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON (stored in a scorer bundle)."""
        return {
            "id_column": self.id_column,
            "kinds": dict(self.kinds),
            "required": list(self.required),
            "missing_values": list(self.missing_values),
            "bounds": {c: list(b) for c, b in self.bounds.items()},
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> LeadContract:
        """The contract :meth:`as_dict` wrote."""
        return cls(
            id_column=str(raw["id_column"]),
            kinds=dict(raw["kinds"]),
            required=tuple(raw["required"]),
            missing_values=tuple(raw["missing_values"]),
            bounds={c: (b[0], b[1]) for c, b in raw["bounds"].items()},
        )

    def missing_columns(self, columns: Iterable[str]) -> list[str]:
        """The input columns a frame or file lacks."""
        have = set(columns)
        return [c for c in self.kinds if c not in have]

    def read(
        self, leads: pd.DataFrame, rows: np.ndarray | None = None
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """The input columns in their kinds (index kept), and per lead the first
        reason it is rejected (None where it is not): a value that does not read as
        its kind, a required value missing, a number out of bounds, or an id seen in
        an earlier valid row (``rows`` numbers the leads, default 0, 1, ...)."""
        typed, reasons = self.check_rows(leads)
        numbers = np.arange(len(leads)) if rows is None else np.asarray(rows, int)
        duplicate_reasons(typed[self.id_column], reasons, self.id_column, numbers)
        return typed, reasons

    def check_rows(self, leads: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """:meth:`read` but for repeated ids: the checks each row passes or fails on
        its own (a Spark job checks ids across its batches itself)."""
        reasons = no_reasons(len(leads))
        typed: dict[str, pd.Series] = {}
        for column, kind in self.kinds.items():
            values = leads[column]
            if column == self.id_column:
                values = id_text(values)
            typed[column], failed = convert(values, kind, self.missing_values)
            first_reason(reasons, failed, not_read_reasons(values, column, kind))
        for column in (self.id_column, *self.required):
            absent = typed[column].isna().to_numpy()
            first_reason(reasons, absent, f"{column} is missing")
        for column, bounds in self.bounds.items():
            bound_reasons(typed[column], column, bounds, reasons)
        return pd.DataFrame(typed, index=leads.index), reasons


def id_text(values: pd.Series) -> pd.Series:
    """Ids as text; whole numbers without a decimal point (1.0 -> '1').

    >>> id_text(pd.Series([660737.0, None])).tolist()
    ['660737', <NA>]
    """
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
        values.dtype
    ):
        numbers = values.astype("float64")
        whole = np.isfinite(numbers) & (numbers % 1 == 0)
        text = numbers.astype("string")
        return text.mask(whole, numbers[whole].astype("int64").astype("string"))
    return values.astype("string")
