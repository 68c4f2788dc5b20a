"""The data contract of the CRM tables, and row-level validation with one reason a row.

A :class:`TableContract` declares a table: its columns (:class:`ColumnSpec`: kind,
nullability, allowed values, bounds), its id column and its table rules (dates in
order, a column null exactly for some states, references to other tables). The logic
below reads only the contract, so a contract built from a user's params file works
the same as the synthetic CRM's :data:`ACCOUNTS`, :data:`DEALS` and :data:`ACTIVITIES`.

Two kinds of problem, two outcomes:

- structural (unreadable or empty file, missing column, a column where no value
  converts): :class:`ContractError`, whose message names the file, table, column
  and the fix. The stage stops.
- row-level: the row goes to ``rejects`` with the first failing check as its reason,
  never dropped silently; ``len(valid) + len(rejects)`` is always the input's length.

Checks run column by column in contract order (value converts, not null, allowed
value, within bounds), then the table rules, then the unique id. Of rows sharing an
id, the first row that passed every other check is kept and later ones are rejected
as duplicates (a first row that is itself invalid does not cost the id its valid
copy). Blank strings count as missing. Dates must be ISO 8601 (day/month order is
ambiguous otherwise); time-zone-aware stamps become naive UTC.

>>> contract = TableContract(
...     "deals",
...     "deal_id",
...     (ColumnSpec("deal_id", "string"), ColumnSpec("amount", "float", min_value=0)),
... )
>>> deals = pd.DataFrame({"deal_id": ["D1", "D2", "D1"], "amount": ["9.5", "-2", "3"]})
>>> result = validate_table(deals, contract, source="deals.csv")
>>> result.valid["amount"].tolist()
[9.5]
>>> for row, reason in result.rejects[["row", "reason"]].itertuples(index=False):
...     print(row, reason)
1 amount is negative (-2.0)
2 duplicate deal_id 'D1' (first seen at row 0)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import pyarrow as pa

from lead_ml.synthetic import (
    ACTIVITY_TYPES,
    BANT_TIMELINES,
    INDUSTRY_EFFECT,
    LEAD_SOURCE_EFFECT,
    MEDDIC_YES_NO_EFFECT,
    PAIN_TYPE_EFFECT,
    REGION_EFFECT,
    SENIORITY_SHARE,
    TIME_DTYPE,
)

Kind = Literal["string", "float", "int", "datetime", "category"]
#: The columns every rejects table starts with.
REJECT_COLUMNS: tuple[str, ...] = ("table", "row", "reason")
_DTYPES: dict[str, str] = {
    "string": "string",
    "category": "string",
    "float": "float64",
    "int": "Int64",
    "datetime": TIME_DTYPE,
}
_NOUNS = {"float": "a number", "int": "an integer", "datetime": "a date"}
_FIXES = {
    "float": "write plain numbers (1234.5: no currency signs or thousands separators)",
    "int": "write whole numbers (1234)",
    "datetime": "write ISO 8601 dates (2024-01-31 or 2024-01-31T09:30:00)",
}


class ContractError(ValueError):
    """A table cannot be validated at all; the message names the file and the fix."""


@dataclass(frozen=True)
class ColumnSpec:
    """One column: its kind and the values a row may hold.

    ``allowed`` applies to string and category columns, ``min_value`` and
    ``max_value`` to numbers. An optional column (``required=False``) must be
    nullable: when absent it is added as nulls. ``description`` is the hint an error
    message gives when the column is missing.
    """

    name: str
    kind: Kind
    required: bool = True
    nullable: bool = False
    allowed: tuple[str, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        problem = _spec_problem(self)
        if problem:
            raise ValueError(f"column {self.name!r}: {problem}")


def _spec_problem(spec: ColumnSpec) -> str:
    if spec.kind not in get_args(Kind):
        return f"kind {spec.kind!r} is not one of {', '.join(get_args(Kind))}"
    if spec.allowed is not None and spec.kind not in ("string", "category"):
        return "allowed values need a string or category column"
    bounded = spec.min_value is not None or spec.max_value is not None
    if bounded and spec.kind not in ("float", "int"):
        return "min_value and max_value need a float or int column"
    if not spec.required and not spec.nullable:
        return "an optional column must be nullable (it is all null when absent)"
    return ""


@dataclass(frozen=True)
class DateOrder:
    """``later`` must not be before ``earlier`` when both are set."""

    earlier: str
    later: str


@dataclass(frozen=True)
class NullExactlyWhen:
    """``column`` is null exactly when ``condition`` is one of ``values``."""

    column: str
    condition: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Reference:
    """Non-null values of ``column`` must be ids of valid rows of ``table``."""

    column: str
    table: str


@dataclass(frozen=True)
class TableContract:
    """A table's columns, its id column (unique when set) and its table rules."""

    name: str
    id_column: str | None
    columns: tuple[ColumnSpec, ...]
    date_order: tuple[DateOrder, ...] = ()
    null_exactly_when: tuple[NullExactlyWhen, ...] = ()
    references: tuple[Reference, ...] = ()

    def __post_init__(self) -> None:
        names = [spec.name for spec in self.columns]
        if len(set(names)) < len(names):
            raise ValueError(f"contract {self.name!r}: a column is declared twice")
        unknown = sorted(set(self._rule_columns()) - set(names))
        if unknown:
            raise ValueError(f"contract {self.name!r}: rules name unknown {unknown}")
        kinds = {spec.name: spec.kind for spec in self.columns}
        ordered = {c for rule in self.date_order for c in (rule.earlier, rule.later)}
        if any(kinds[column] != "datetime" for column in ordered):
            raise ValueError(
                f"contract {self.name!r}: date_order needs datetime columns"
            )

    def _rule_columns(self) -> list[str]:
        columns = [] if self.id_column is None else [self.id_column]
        columns += [c for rule in self.date_order for c in (rule.earlier, rule.later)]
        columns += [c for r in self.null_exactly_when for c in (r.column, r.condition)]
        return columns + [reference.column for reference in self.references]


@dataclass(frozen=True, eq=False)  # frames do not compare to a bool
class ValidationResult:
    """Rows that passed (coerced, input order and index kept) and the rejected rest.

    ``rejects`` holds ``table``, ``row`` (0-based position in the input), ``reason``
    and the input's columns as strings.
    """

    valid: pd.DataFrame
    rejects: pd.DataFrame

    def counts(self) -> dict[str, int]:
        """Rows in, valid and rejected."""
        valid, rejected = len(self.valid), len(self.rejects)
        return {"rows_in": valid + rejected, "valid": valid, "rejected": rejected}


# --- the synthetic CRM's contract ---------------------------------------------------

_YES_NO_UNKNOWN = ("yes", "no", "unknown")


def _levels(name: str, levels: tuple[str, ...] | list[str]) -> ColumnSpec:
    return ColumnSpec(name, "category", allowed=tuple(levels))


def _post_qualification(name: str, kind: Kind, description: str) -> ColumnSpec:
    return ColumnSpec(
        name, kind, required=False, nullable=True, description=description
    )


ACCOUNTS = TableContract(
    name="accounts",
    id_column="account_id",
    columns=(
        ColumnSpec("account_id", "string", description="unique per account"),
        _levels("industry", list(INDUSTRY_EFFECT)),
        ColumnSpec("employees", "int", min_value=1, description="headcount"),
        ColumnSpec("annual_revenue", "float", min_value=0),
        _levels("region", list(REGION_EFFECT)),
    ),
)
DEALS = TableContract(
    name="deals",
    id_column="deal_id",
    columns=(
        ColumnSpec("deal_id", "string", description="unique per deal"),
        ColumnSpec("account_id", "string", description="the deal's account"),
        ColumnSpec("created_at", "datetime", description="when the lead came in"),
        ColumnSpec(
            "closed_at", "datetime", nullable=True, description="null for open deals"
        ),
        ColumnSpec("outcome", "category", allowed=("won", "lost", "open")),
        ColumnSpec("amount", "float", min_value=0),
        _levels("lead_source", list(LEAD_SOURCE_EFFECT)),
        ColumnSpec("contact_title", "string"),
        _levels("contact_seniority", list(SENIORITY_SHARE)),
        ColumnSpec("minutes_to_first_response", "float", min_value=0),
        _levels("bant_budget", _YES_NO_UNKNOWN),
        _levels("bant_authority", _YES_NO_UNKNOWN),
        _levels("bant_need", _YES_NO_UNKNOWN),
        _levels("bant_timeline", [*BANT_TIMELINES, "unknown"]),
        *(_levels(column, _YES_NO_UNKNOWN) for column in MEDDIC_YES_NO_EFFECT),
        _levels("meddic_pain_type", list(PAIN_TYPE_EFFECT)),
        ColumnSpec(
            "meddic_pain_severity", "float", nullable=True, min_value=0, max_value=5
        ),
        _levels("meddic_champion", _YES_NO_UNKNOWN),
        ColumnSpec(
            "meddic_champion_strength",
            "float",
            nullable=True,
            min_value=1,
            max_value=5,
        ),
        _post_qualification("stage_at_close", "string", "recorded after qualification"),
        _post_qualification("discount_pct", "float", "recorded after qualification"),
        _post_qualification("lost_reason", "string", "recorded after qualification"),
    ),
    date_order=(DateOrder("created_at", "closed_at"),),
    null_exactly_when=(NullExactlyWhen("closed_at", "outcome", ("open",)),),
    references=(Reference("account_id", "accounts"),),
)
ACTIVITIES = TableContract(
    name="activities",
    id_column="activity_id",
    columns=(
        ColumnSpec("activity_id", "int", description="unique per activity"),
        ColumnSpec("deal_id", "string", description="the deal the activity belongs to"),
        ColumnSpec("timestamp", "datetime"),
        _levels("activity_type", ACTIVITY_TYPES),
    ),
    references=(Reference("deal_id", "deals"),),
)
#: The CRM's contracts, each table after the tables it references.
CRM_CONTRACTS: tuple[TableContract, ...] = (ACCOUNTS, DEALS, ACTIVITIES)


# --- reading --------------------------------------------------------------------


def _read_csv(path: Path) -> pd.DataFrame:
    # Every cell as text and only empty cells as missing: "NA" may be a region and
    # "None" a pain type; conversion to each column's kind happens in validation.
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


_READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    ".parquet": pd.read_parquet,
    ".csv": _read_csv,
}


def read_table(path: Path, contract: TableContract) -> pd.DataFrame:
    """Read a .parquet or .csv table; raise ContractError if it cannot be validated.

    Extra columns are kept; CSV cells are read as text (validation converts them).
    """
    frame = _read(Path(path), contract)
    _check_structure(frame, contract, str(path))
    return frame


def _read(path: Path, contract: TableContract) -> pd.DataFrame:
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise ContractError(
            f"{path}: cannot read a {path.suffix or 'suffix-less'!r} file as the "
            f"{contract.name} table; export it as .parquet or .csv"
        )
    try:
        return reader(path)
    except FileNotFoundError:
        raise ContractError(
            f"{path}: the {contract.name} table is not there; check the path"
        ) from None
    except pd.errors.EmptyDataError:
        raise ContractError(_empty_message(str(path), contract)) from None
    except (OSError, ValueError, pa.ArrowException) as error:
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ContractError(
            f"{path}: cannot read the {contract.name} table ({detail}); check that it "
            f"is a valid {path.suffix.lower().lstrip('.')} file"
        ) from None


def _empty_message(source: str, contract: TableContract) -> str:
    return f"{source}: the {contract.name} table has no rows; export it again with data"


def _check_structure(frame: pd.DataFrame, contract: TableContract, source: str) -> None:
    repeated = frame.columns[frame.columns.duplicated()]
    if len(repeated):
        raise ContractError(
            f"{source}: column {repeated[0]!r} appears twice in the {contract.name} "
            "table; keep one"
        )
    if len(frame.index) == 0:
        raise ContractError(_empty_message(source, contract))
    missing = [s for s in contract.columns if s.required and s.name not in frame]
    if missing:
        raise ContractError(_missing_message(source, contract, missing))


def _missing_message(
    source: str, contract: TableContract, missing: list[ColumnSpec]
) -> str:
    first = missing[0]
    hint = f" ({first.description})" if first.description else ""
    others = ", ".join(repr(spec.name) for spec in missing[1:])
    also = f" (also missing: {others})" if others else ""
    return (
        f"{source}: required column {first.name!r} is missing from the "
        f"{contract.name} table{also}; add it{hint} or map your column to it in "
        "params.yaml"
    )


# --- converting each column to its kind -------------------------------------------


def _mask(values: pd.Series | np.ndarray) -> np.ndarray:
    """A plain boolean array; missing (NA) counts as False."""
    if isinstance(values, np.ndarray):
        return values.astype(bool)
    return values.to_numpy(dtype=bool, na_value=False)


def _is_number(values: pd.Series) -> bool:
    dtype = values.dtype
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(
        dtype
    )


def _to_text(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    text = values.astype("string")
    blank = _mask(text.str.strip().eq(""))
    if blank.any():
        text = text.mask(blank)
    return text, _mask(text.notna())


def _to_numbers(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    if _is_number(values):
        return values, _mask(values.notna())
    text, present = _to_text(values)
    return pd.to_numeric(text, errors="coerce"), present


def _to_float(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    numbers, present = _to_numbers(values)
    floats = numbers.astype("float64")
    return floats.where(np.isfinite(floats.to_numpy())), present


def _to_int(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    numbers, present = _to_numbers(values)
    if pd.api.types.is_signed_integer_dtype(numbers.dtype):
        return numbers.astype("Int64"), present
    floats = numbers.astype("float64")
    whole = floats.to_numpy()
    with np.errstate(invalid="ignore"):
        fits = np.isfinite(whole) & (whole % 1 == 0) & (np.abs(whole) < 2.0**63)
    return floats.where(fits).astype("Int64"), present


def _parse_iso(text: pd.Series) -> pd.Series:
    try:
        return pd.to_datetime(text, format="ISO8601", errors="coerce")
    except ValueError:  # mixed time zones: compare them all in UTC
        return pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)


def _to_datetime(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        stamps, present = values, _mask(values.notna())
    else:
        text, present = _to_text(values)
        stamps = _parse_iso(text)
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_convert(None)
    return stamps.astype(np.dtype(TIME_DTYPE)), present


_CONVERTERS: dict[str, Callable[[pd.Series], tuple[pd.Series, np.ndarray]]] = {
    "string": _to_text,
    "category": _to_text,
    "float": _to_float,
    "int": _to_int,
    "datetime": _to_datetime,
}


def _convert(
    frame: pd.DataFrame, spec: ColumnSpec, contract: TableContract, source: str
) -> tuple[pd.Series, np.ndarray]:
    """The column in its kind's dtype, and where a present value failed to convert."""
    if spec.name not in frame:
        absent = pd.Series(None, index=frame.index, dtype=_DTYPES[spec.kind])
        return absent, np.zeros(len(frame), dtype=bool)
    converted, present = _CONVERTERS[spec.kind](frame[spec.name])
    failed = present & _mask(converted.isna())
    if failed.any() and failed.sum() == present.sum():
        example = str(frame[spec.name].iloc[int(np.argmax(failed))])
        raise ContractError(
            f"{source}: column {spec.name!r} of the {contract.name} table has no value "
            f"that reads as {_NOUNS[spec.kind]} (first: {example!r}); "
            f"{_FIXES[spec.kind]} or map the right column to it in params.yaml"
        )
    return converted, failed


# --- row checks -------------------------------------------------------------------


@dataclass
class _Checked:
    """A table under validation: the input, its coerced copy and a reason per row."""

    contract: TableContract
    frame: pd.DataFrame
    coerced: pd.DataFrame
    reasons: np.ndarray
    rejected: np.ndarray

    def reject(
        self, failed: np.ndarray, describe: Callable[[np.ndarray], list[str]]
    ) -> None:
        """Give rows failing this check, and no earlier one, this check's reason."""
        rows = np.flatnonzero(failed & ~self.rejected)
        if rows.size:
            self.reasons[rows] = describe(rows)
            self.rejected[rows] = True

    def values(self, column: str, rows: np.ndarray) -> list[Any]:
        """The coerced values of ``column`` at these positions, as Python objects."""
        return self.coerced[column].iloc[rows].tolist()


def _same(reason: str, rows: np.ndarray) -> list[str]:
    return [reason] * len(rows)


def _check(frame: pd.DataFrame, contract: TableContract, source: str) -> _Checked:
    _check_structure(frame, contract, source)
    converted = {s.name: _convert(frame, s, contract, source) for s in contract.columns}
    coerced = frame.assign(**{name: pair[0] for name, pair in converted.items()})
    size = len(frame)
    checked = _Checked(
        contract,
        frame,
        coerced,
        np.full(size, None, dtype=object),
        np.zeros(size, bool),
    )
    for spec in contract.columns:
        _check_column(checked, spec, converted[spec.name][1])
    _check_rules(checked)
    _check_unique_id(checked)
    return checked


def _check_column(checked: _Checked, spec: ColumnSpec, failed: np.ndarray) -> None:
    name, column = spec.name, checked.coerced[spec.name]
    if spec.kind in _NOUNS:
        checked.reject(failed, partial(_not_converted, checked, spec))
    if not spec.nullable:
        checked.reject(_mask(column.isna()), partial(_same, f"{name} is missing"))
    if spec.allowed is not None:
        levels = ", ".join(spec.allowed)
        outside = _mask(column.notna()) & ~_mask(column.isin(spec.allowed))
        checked.reject(
            outside,
            lambda rows: [
                f"{name} {v!r} is not one of {levels}"
                for v in checked.values(name, rows)
            ],
        )
    _check_bounds(checked, spec)


def _not_converted(checked: _Checked, spec: ColumnSpec, rows: np.ndarray) -> list[str]:
    raw = checked.frame[spec.name].iloc[rows].astype("string").tolist()
    return [f"{spec.name} is not {_NOUNS[spec.kind]}: {text!r}" for text in raw]


def _check_bounds(checked: _Checked, spec: ColumnSpec) -> None:
    name, column = spec.name, checked.coerced[spec.name]
    if spec.min_value is not None:
        low = "is negative" if spec.min_value == 0 else f"is below {spec.min_value:g}"
        checked.reject(
            _mask(column < spec.min_value),
            lambda rows: [f"{name} {low} ({v!r})" for v in checked.values(name, rows)],
        )
    if spec.max_value is not None:
        high = f"is above {spec.max_value:g}"
        checked.reject(
            _mask(column > spec.max_value),
            lambda rows: [f"{name} {high} ({v!r})" for v in checked.values(name, rows)],
        )


def _check_rules(checked: _Checked) -> None:
    coerced = checked.coerced
    for order in checked.contract.date_order:
        before = _mask(coerced[order.later] < coerced[order.earlier])
        checked.reject(
            before, partial(_same, f"{order.later} is before {order.earlier}")
        )
    for rule in checked.contract.null_exactly_when:
        condition = coerced[rule.condition]
        should_be_null = _mask(condition.isin(rule.values))
        is_null = _mask(coerced[rule.column].isna())
        known = _mask(condition.notna())
        checked.reject(
            should_be_null & ~is_null, partial(_null_when, checked, rule, "set")
        )
        checked.reject(
            ~should_be_null & is_null & known,
            partial(_null_when, checked, rule, "missing"),
        )


def _null_when(
    checked: _Checked, rule: NullExactlyWhen, state: str, rows: np.ndarray
) -> list[str]:
    return [
        f"{rule.column} is {state} but {rule.condition} is {value!r}"
        for value in checked.values(rule.condition, rows)
    ]


def _check_unique_id(checked: _Checked) -> None:
    id_column = checked.contract.id_column
    if id_column is None:
        return
    ids = checked.coerced[id_column]
    candidates = np.flatnonzero(~checked.rejected & _mask(ids.notna()))
    repeated = ids.iloc[candidates].duplicated(keep="first").to_numpy()
    if not repeated.any():
        return
    firsts = candidates[~repeated]
    first_seen = pd.Index(ids.iloc[firsts].to_numpy())
    failed = np.zeros(len(ids), dtype=bool)
    failed[candidates[repeated]] = True

    def describe(rows: np.ndarray) -> list[str]:
        values = checked.values(id_column, rows)
        seen = firsts[first_seen.get_indexer(ids.iloc[rows].to_numpy())]
        return [
            f"duplicate {id_column} {v!r} (first seen at row {r})"
            for v, r in zip(values, seen, strict=True)
        ]

    checked.reject(failed, describe)


def _check_reference(child: _Checked, reference: Reference, parent: _Checked) -> None:
    parent_id = parent.contract.id_column
    if parent_id is None:
        raise ValueError(f"{reference.table} has no id column to reference")
    ids = parent.coerced[parent_id]
    values = child.coerced[reference.column]
    known = _mask(values.isin(ids.iloc[np.flatnonzero(~parent.rejected)]))
    rejected_there = set(ids.iloc[np.flatnonzero(parent.rejected)].tolist())

    def describe(rows: np.ndarray) -> list[str]:
        return [
            f"{reference.column} {v!r} not found in {reference.table}"
            + (" (its row there was rejected)" if v in rejected_there else "")
            for v in child.values(reference.column, rows)
        ]

    child.reject(_mask(values.notna()) & ~known, describe)


# --- results ----------------------------------------------------------------------


def _result(checked: _Checked) -> ValidationResult:
    kept = checked.coerced.iloc[np.flatnonzero(~checked.rejected)]
    whole = {
        spec.name: "int64"
        for spec in checked.contract.columns
        if spec.kind == "int" and not spec.nullable
    }
    return ValidationResult(valid=kept.astype(whole), rejects=_rejects(checked))


def _rejects(checked: _Checked) -> pd.DataFrame:
    rows = np.flatnonzero(checked.rejected)
    rejects = checked.frame.iloc[rows].astype("string")
    # An input column named like a report column keeps its values under a new name.
    clashes = {c: f"input_{c}" for c in REJECT_COLUMNS if c in rejects.columns}
    rejects = rejects.rename(columns=clashes)
    report: dict[str, Any] = {
        "table": pd.array([checked.contract.name] * len(rows), dtype="string"),
        "row": rows.astype("int64"),
        "reason": pd.array(checked.reasons[rows], dtype="string"),
    }
    for position, (column, values) in enumerate(report.items()):
        rejects.insert(position, column, values)
    return rejects


def validate_table(
    frame: pd.DataFrame, contract: TableContract, source: str
) -> ValidationResult:
    """Coerce a table to its contract and split it into valid rows and rejects.

    ``source`` (usually the file name) is named by ContractError messages.
    """
    return _result(_check(frame, contract, source))


def validate_crm(
    deals: pd.DataFrame,
    accounts: pd.DataFrame,
    activities: pd.DataFrame,
    *,
    contracts: tuple[TableContract, ...] = CRM_CONTRACTS,
    sources: Mapping[str, str] | None = None,
) -> dict[str, ValidationResult]:
    """Validate the three CRM tables, then their references to each other.

    A deal whose account was not found or rejected is rejected, and so are its
    activities: ``contracts`` lists each table after the tables it references.
    ``sources`` maps table names to the file names used in error messages.
    """
    frames = {"deals": deals, "accounts": accounts, "activities": activities}
    if sorted(c.name for c in contracts) != sorted(frames):
        raise ValueError(f"contracts must describe exactly the tables {sorted(frames)}")
    names = dict(sources or {})
    checked = {
        c.name: _check(frames[c.name], c, names.get(c.name, c.name)) for c in contracts
    }
    for contract in contracts:
        for reference in contract.references:
            parent = checked[reference.table]
            _check_reference(checked[contract.name], reference, parent)
    return {name: _result(table) for name, table in checked.items()}


def write_validated(
    results: Mapping[str, ValidationResult], out_dir: Path, rejects_path: Path
) -> dict[str, dict[str, int]]:
    """Write ``<table>.parquet`` per table and one rejects CSV; return the counts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, result in results.items():
        result.valid.to_parquet(
            out_dir / f"{name}.parquet", index=False, compression="zstd"
        )
    rejects_path.parent.mkdir(parents=True, exist_ok=True)
    parts = [result.rejects for result in results.values() if len(result.rejects)]
    rejects = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=list(REJECT_COLUMNS))
    )
    rejects.to_csv(rejects_path, index=False)
    return {name: result.counts() for name, result in results.items()}
