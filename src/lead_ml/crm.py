"""Bring your own CRM: the ``crm:`` section of params.yaml and the tables it describes.

A revenue-ops analyst describes an export instead of reshaping it: the deals table
(CSV or Parquet), its id column, the outcome column with the values that mean won
and lost (every other value is an open deal), optional created and closed dates, an
optional accounts table joined on a key and an optional activity log. Every other
column is a candidate feature unless it is ignored, forbidden (recorded after the
outcome), the join key, or free text.

Kinds. Each used column gets one kind. A kind declared under ``crm.types`` wins;
otherwise it is inferred from the values, blank cells and ``crm.missing_values``
counting as missing: only numbers is ``number``; only ISO 8601 dates is ``date``;
anything else is ``category`` up to ``crm.max_levels`` distinct values and ``text``
beyond. ``bool`` comes from a typed (Parquet) column or a declaration only: yes/no
text stays as written, so a BANT condition such as ``pain == 'yes'`` reads it.
**Text columns are rejected, not hashed**: thousands of distinct values mean free text
or an identifier, hashed buckets cannot be explained in MEDDIC terms, and an
identifier learned by heart is leakage. Declaring such a column ``category`` keeps
it with all its levels. When most values of a column read as numbers or dates but
some do not, the guess is unsafe and the kind carries a note naming the first value
that does not read.

Rows. Nothing is dropped silently. A deal with no id or a repeated id, a value that
does not convert to its declared kind, a closed deal without a created date (or order
value) when one is configured, or a deal closed before it was created goes to
``rejects`` with one reason. An account row repeating an account id and an activity
whose deal is unknown or whose timestamp does not read are rejected the same way.

The second phase of the pipeline calls :func:`load_crm` (tables to a labelled deal
frame), :func:`bant_rule` / :func:`evaluate_bant` (the user's BANT rule) and
:func:`check_columns` (``lead-ml check-config``).

>>> crm = CrmConfig.model_validate({
...     "deals": {"path": "deals.csv", "id": "deal"},
...     "outcome": {"column": "stage", "won": ["Won"], "lost": ["Lost"]},
...     "bant": {"letters": {"budget": "revenue >= 1e6", "need": "pain == 'yes'"}},
... })
>>> bant_config(crm).threshold  # share 0.75 of two letters: both must pass
1.5
>>> infer_kind(pd.Series(["2024-01-31", None]), max_levels=50)
('date', '')
>>> kind, note = infer_kind(pd.Series(["12", "n/a"] + ["3"] * 20), max_levels=50)
>>> kind, note.split(";")[0]
('category', "95% of values read as numbers but 'n/a' does not")
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from lead_ml.baseline import BantRule
    from lead_ml.config import BantConfig

# config.py imports this module for ``Params.crm``, so nothing from lead_ml is imported
# at module level here (it would be a circular import); those imports sit in the
# functions that need them.

Kind = Literal["number", "date", "bool", "category", "text"]
DeclaredKind = Literal["number", "date", "bool", "category"]
#: Columns lead-ml puts first in the labelled deal frame; user columns may not use them.
META_COLUMNS: tuple[str, ...] = (
    "deal_id",
    "created_at",
    "closed_at",
    "order",
    "outcome",
    "won",
    "amount",
)
#: The dimension of features the user did not map.
OTHER = "other"
TIME_DTYPE = np.dtype("datetime64[ms]")
_TRUE_WORDS = frozenset({"yes", "true", "y", "1"})
_FALSE_WORDS = frozenset({"no", "false", "n", "0"})
#: A share of readable values above which a mixed column is reported as unsafe.
_UNSAFE_SHARE = 0.9
#: Words in a column name that usually mean "the state at export time": the audit
#: flags them (see lead_ml.audit); the user may allow a column after checking.
LATE_NAME_WORDS: tuple[str, ...] = tuple(
    "last latest status stage tag tags quality rating score reason close closed "
    "closing won lost converted outcome result final".split()
)


# --- the crm section of params.yaml -------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DealsTable(_Strict):
    """The deals table: one row per lead or opportunity."""

    path: Path = Field(description="CSV or Parquet file, relative to the project root")
    id: str = Field(min_length=1, description="column with a unique id per deal")
    created: str | None = Field(
        None, description="column with the date the lead came in (time split)"
    )
    closed: str | None = Field(
        None, description="column with the date the deal was won or lost"
    )
    order: str | None = Field(
        None,
        description="with no created date: a column of numbers or dates that orders "
        "deals in time (e.g. a sequential lead number)",
    )
    amount: str | None = Field(
        None, description="column with the deal's expected value, known at creation"
    )


class OutcomeConfig(_Strict):
    """The outcome column and which of its values mean won and lost."""

    column: str = Field(min_length=1)
    won: list[str] = Field(min_length=1, description="values meaning closed-won")
    lost: list[str] = Field(min_length=1, description="values meaning closed-lost")

    @field_validator("won", "lost", mode="before")
    @classmethod
    def _values_as_text(cls, values: Any) -> Any:
        if not isinstance(values, list):
            values = [values]
        return [_outcome_value(value) for value in values]

    @model_validator(mode="after")
    def _won_and_lost_differ(self) -> OutcomeConfig:
        both = sorted(set(self.won) & set(self.lost))
        if both:
            raise ValueError(f"{both} listed as both won and lost; keep each in one")
        return self


def _outcome_value(value: Any) -> Any:
    """YAML reads Yes and 1 as a bool and an int: say how to write them."""
    if isinstance(value, bool):
        raise ValueError(
            f"YAML read {value!r} as a boolean; quote the value as it is written in "
            "the file, e.g. won: ['Yes']"
        )
    return str(value) if isinstance(value, int) else value


class AccountsTable(_Strict):
    """An optional accounts table joined onto the deals on a key."""

    path: Path
    key: str = Field(min_length=1, description="column of the deals naming the account")
    id: str | None = Field(
        None, description="the account id column of this table (default: key)"
    )
    columns: list[str] | None = Field(
        None, description="account columns to join (default: all but the id)"
    )

    @property
    def id_column(self) -> str:
        """The account id column of the accounts table."""
        return self.id or self.key


class ActivitiesTable(_Strict):
    """An optional activity log: one row per email, call, visit... of a deal."""

    path: Path
    key: str = Field(min_length=1, description="column holding the deal id")
    timestamp: str = Field(min_length=1, description="column with when it happened")
    type: str = Field(min_length=1, description="column with the kind of activity")


class CrmBant(_Strict):
    """The BANT rule on the user's columns: a pandas query condition per letter.

    Letters with no data are left out; a lead passes the rule when it passes at
    least ``share`` of the configured letters.
    """

    letters: dict[str, str] = Field(min_length=1)
    share: float = Field(0.75, gt=0, le=1)

    @field_validator("letters")
    @classmethod
    def _letters_parse(cls, letters: dict[str, str]) -> dict[str, str]:
        from lead_ml.config import BANT_LETTERS

        unknown = sorted(set(letters) - set(BANT_LETTERS))
        if unknown:
            raise ValueError(
                f"unknown letters {unknown}; use some of {list(BANT_LETTERS)}"
            )
        for letter, condition in letters.items():
            columns_read(letter, condition)  # raises naming the letter
        return letters


class AuditConfig(_Strict):
    """Thresholds of the checks before training (see :mod:`lead_ml.audit`)."""

    min_per_outcome: int = Field(
        300,
        ge=1,
        description="won and lost deals each split needs; fewer: repeated CV instead",
    )
    max_single_auc: float = Field(
        0.95,
        gt=0.5,
        le=1,
        description="a column ranking won above lost this well on its own is leakage",
    )
    decisive_purity: float = Field(
        0.97, gt=0.5, le=1, description="a value this one-sided decides the outcome"
    )
    decisive_min_rows: int = Field(
        30, ge=1, description="rows a value needs before its purity counts"
    )
    decisive_share: float = Field(
        0.05,
        gt=0,
        le=1,
        description="share of training deals with deciding values that flags a column",
    )
    one_outcome_max_other: float = Field(
        0.01,
        ge=0,
        lt=0.2,
        description="a column filled for at most this share of one outcome (and five "
        "times more of the other) is filled only once the outcome is known",
    )
    late_date_share: float = Field(
        0.01,
        ge=0,
        lt=1,
        description="share of closed deals with a date after the close that flags it",
    )
    late_name_words: list[str] = Field(
        default_factory=lambda: list(LATE_NAME_WORDS),
        description="words in a column name that mean a state at export time",
    )
    cv_splits: int = Field(5, ge=2, description="folds of repeated stratified CV")
    cv_repeats: int = Field(3, ge=1, description="repeats of stratified CV")


class CrmConfig(_Strict):
    """The ``crm:`` section: the user's CRM export and how to read it."""

    deals: DealsTable
    outcome: OutcomeConfig
    bant: CrmBant
    accounts: AccountsTable | None = None
    activities: ActivitiesTable | None = None
    missing_values: list[str] = Field(
        default_factory=list, description='values meaning "not answered", e.g. Select'
    )
    ignore: list[str] = Field(default_factory=list, description="not features")
    forbidden: list[str] = Field(
        default_factory=list, description="recorded after the outcome: never features"
    )
    allowed: list[str] = Field(
        default_factory=list,
        description="columns the audit flagged that the user checked and keeps",
    )
    types: dict[str, DeclaredKind] = Field(
        default_factory=dict, description="kinds that cannot be inferred safely"
    )
    max_levels: int = Field(
        50, ge=2, description="distinct values above which text is not a category"
    )
    dimensions: dict[str, str] = Field(
        default_factory=dict, description="column -> MEDDIC dimension, fit, engagement"
    )
    audit: AuditConfig = AuditConfig()

    @field_validator("dimensions")
    @classmethod
    def _known_dimensions(cls, dimensions: dict[str, str]) -> dict[str, str]:
        from lead_ml.config import DIMENSIONS

        names = (*DIMENSIONS, OTHER)
        for column, dimension in dimensions.items():
            if dimension not in names:
                raise ValueError(
                    f"{column!r}: {dimension!r} is not a dimension; use one of "
                    f"{', '.join(names)}"
                )
        return dimensions

    @model_validator(mode="after")
    def _consistent(self) -> CrmConfig:
        problem = _consistency_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    def roles(self) -> dict[str, str]:
        """Columns with a role (id, outcome, dates...) keyed by their params key."""
        named = {
            "crm.deals.id": self.deals.id,
            "crm.outcome.column": self.outcome.column,
            "crm.deals.created": self.deals.created,
            "crm.deals.closed": self.deals.closed,
            "crm.deals.order": self.deals.order,
            "crm.deals.amount": self.deals.amount,
            "crm.accounts.key": self.accounts.key if self.accounts else None,
        }
        return {key: column for key, column in named.items() if column is not None}

    def excluded(self) -> dict[str, str]:
        """Columns that are never features, with the reason."""
        reasons = {column: f"its role is {key}" for key, column in self.roles().items()}
        reasons |= dict.fromkeys(self.ignore, "listed under crm.ignore")
        reasons |= dict.fromkeys(
            self.forbidden, "listed under crm.forbidden (recorded after the outcome)"
        )
        return reasons


def _consistency_problem(crm: CrmConfig) -> str:
    """The first contradiction between keys of the crm section, or ''."""
    roles = crm.roles()
    seen: dict[str, str] = {}
    for key, column in roles.items():
        # A sequential id may also be the order column; no other role is shared.
        shared = {key, seen.get(column)} == {"crm.deals.id", "crm.deals.order"}
        if column in seen and not shared:
            return f"{key} and {seen[column]} both name column {column!r}; use one"
        seen[column] = key
    excluded = {**dict.fromkeys(crm.ignore, "crm.ignore")}
    excluded |= dict.fromkeys(crm.forbidden, "crm.forbidden")
    for column in crm.allowed:
        if column in excluded:
            return (
                f"crm.allowed: {column!r} is also under {excluded[column]}; a column "
                "is either used (allowed) or left out"
            )
    for column in crm.dimensions:
        where = excluded.get(column) or _role_key(roles, column)
        if where:
            return (
                f"crm.dimensions.{column}: {column!r} is not a feature (it is under "
                f"{where}); remove it from crm.dimensions"
            )
    for letter, condition in crm.bant.letters.items():
        for column in columns_read(letter, condition):
            if column in crm.forbidden or column == crm.outcome.column:
                return (
                    f"crm.bant.letters.{letter}: {condition!r} reads {column!r}, which "
                    "is known only after the outcome; a rule on it would leak"
                )
    return ""


def _role_key(roles: dict[str, str], column: str) -> str:
    return next((key for key, name in roles.items() if name == column), "")


def columns_read(letter: str, condition: str) -> list[str]:
    """The columns a BANT letter's condition reads; ValueError naming the letter.

    >>> columns_read("budget", "`annual revenue` >= 1e6 and region == 'EU'")
    ['annual revenue', 'region']
    """
    from lead_ml.baseline import _columns_read

    try:
        return _columns_read(condition)
    except SyntaxError as error:
        raise ValueError(
            f"letter {letter!r}: {condition!r} is not a pandas query condition "
            f'({error.msg}); write e.g. "annual_revenue >= 1e6", with `backticks` '
            "around column names that have spaces"
        ) from None


# --- errors -------------------------------------------------------------------------


def _config_error(message: str) -> ValueError:
    from lead_ml.config import ConfigError

    return ConfigError(message)


def _contract_error(message: str) -> ValueError:
    from lead_ml.schema import ContractError

    return ContractError(message)


def _close(name: str, candidates: Iterable[str]) -> str:
    """' (did you mean 'X'?)' for a near miss among the candidates, or ''."""
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


# --- reading ------------------------------------------------------------------------


def read_table(path: Path, key: str) -> pd.DataFrame:
    """Read a CSV (every cell as text, only empty cells missing) or Parquet table.

    ``key`` is the params key of the path (``crm.deals.path``), named by errors.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise _contract_error(
            f"{path} ({key}): cannot read a {suffix or 'suffix-less'!r} file; export "
            "the table as .csv or .parquet"
        )
    try:
        frame = _read(path, suffix)
    except FileNotFoundError:
        raise _contract_error(
            f"{path} ({key}): no such file; check the path (relative to the project "
            f"root) or set another one with `dvc exp run -S {key}=PATH`"
        ) from None
    except UnicodeDecodeError:
        raise _contract_error(
            f"{path} ({key}): not UTF-8 text; save it as 'CSV UTF-8' and try again"
        ) from None
    except (OSError, ValueError) as error:
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise _contract_error(f"{path} ({key}): cannot read it ({detail})") from None
    if frame.empty:
        raise _contract_error(f"{path} ({key}): the table has no rows; export it again")
    return frame


def _read(path: Path, suffix: str) -> pd.DataFrame:
    if suffix == ".parquet":
        return pd.read_parquet(path)
    # "NA" may be a region and "None" an answer: only empty cells are missing here;
    # crm.missing_values names the user's own placeholders.
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


def read_header(path: Path, key: str) -> list[str]:
    """The column names of a CSV or Parquet table, reading no rows."""
    path = Path(path)
    if path.suffix.lower() == ".parquet" and path.exists():
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except Exception as error:  # pyarrow raises several kinds on a bad file
            raise _contract_error(f"{path} ({key}): cannot read it ({error})") from None
    if path.suffix.lower() == ".csv" and path.exists():
        try:
            return list(pd.read_csv(path, nrows=0).columns)
        except (OSError, ValueError) as error:
            raise _contract_error(f"{path} ({key}): cannot read it ({error})") from None
    return list(read_table(path, key).columns)  # raises the right message


# --- kinds --------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnKind:
    """What a column of the user's tables is, and how sure lead-ml is about it."""

    column: str
    table: str
    kind: Kind
    declared: bool
    levels: int
    missing_share: float
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain values for reports."""
        return {
            "column": self.column,
            "table": self.table,
            "kind": self.kind,
            "declared": self.declared,
            "levels": self.levels,
            "missing_share": round(self.missing_share, 4),
            "note": self.note,
        }


def _as_text(values: pd.Series, missing: Iterable[str] = ()) -> pd.Series:
    """Stripped text with blank cells and the user's placeholders as missing."""
    text = values.astype("string").str.strip()
    placeholders = list(missing)
    return text.mask(text.eq("") | text.isin(placeholders))


def _bool_values(text: pd.Series) -> pd.Series:
    lower = text.str.lower()
    mapped = pd.Series(pd.NA, index=text.index, dtype="boolean")
    mapped[lower.isin(_TRUE_WORDS).fillna(False)] = True
    mapped[lower.isin(_FALSE_WORDS).fillna(False)] = False
    return mapped


def _number_values(text: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(text, errors="coerce").astype("float64")
    return numbers.where(np.isfinite(numbers.to_numpy()))


def _date_values(text: pd.Series) -> pd.Series:
    try:
        stamps = pd.to_datetime(text, format="ISO8601", errors="coerce")
    except ValueError:  # mixed time zones: compare them in UTC
        stamps = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_convert(None)
    return stamps.astype(TIME_DTYPE)


_CONVERT: dict[str, Callable[[pd.Series], pd.Series]] = {
    "bool": _bool_values,
    "number": _number_values,
    "date": _date_values,
    "category": lambda text: text,
    "text": lambda text: text,
}
_NOUN = {"bool": "yes/no", "number": "a number", "date": "an ISO 8601 date"}


def _typed_input(values: pd.Series) -> Kind | None:
    """The kind a typed (Parquet) column already has, or None for text."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "date"
    return None


def infer_kind(values: pd.Series, max_levels: int) -> tuple[Kind, str]:
    """The kind of a column (missing values already removed or NA), with a note.

    The note is empty when the guess is safe; otherwise it says what to declare.
    """
    typed = _typed_input(values)
    if typed is not None:
        return typed, ""
    text = _as_text(values).dropna()
    if text.empty:
        return "category", "every value is missing"
    for kind in ("number", "date"):
        read = _CONVERT[kind](text).notna()
        if read.all():
            return kind, ""
        if read.mean() >= _UNSAFE_SHARE:
            first = text[~read.to_numpy()].iloc[0]
            return _text_kind(text, max_levels), (
                f"{read.mean():.0%} of values read as {_NOUN[kind].split()[-1]}s but "
                f"{first!r} does not; declare `{kind}` in crm.types if it is one"
            )
    return _text_kind(text, max_levels), ""


def _text_kind(text: pd.Series, max_levels: int) -> Kind:
    return "category" if text.nunique() <= max_levels else "text"


def convert(values: pd.Series, kind: Kind) -> pd.Series:
    """The column in its kind's dtype; values that do not convert become missing.

    numbers float64, dates datetime64[ms], bools boolean, categories and text string.
    """
    if kind == "number" and pd.api.types.is_numeric_dtype(values.dtype):
        return values.astype("float64")
    if kind == "date" and pd.api.types.is_datetime64_any_dtype(values.dtype):
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            values = values.dt.tz_convert(None)
        return values.astype(TIME_DTYPE)
    if kind == "bool" and pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("boolean")
    return _CONVERT[kind](_as_text(values))


@dataclass(frozen=True, eq=False)
class _Typed:
    """A table's columns converted to their kinds, and where conversion failed."""

    columns: dict[str, pd.Series]
    kinds: dict[str, ColumnKind]
    failed: dict[str, np.ndarray]


def _type_columns(
    frame: pd.DataFrame,
    table: str,
    source: str,
    declared: dict[str, Kind],
    crm: CrmConfig,
) -> _Typed:
    """Infer or apply each column's kind; declared kinds may fail on some rows.

    ContractError when no value of a declared column converts (a wrong declaration
    or a wrong column, not a few bad rows).
    """
    columns: dict[str, pd.Series] = {}
    kinds: dict[str, ColumnKind] = {}
    failed: dict[str, np.ndarray] = {}
    for column in frame.columns:
        raw = frame[column]
        if _typed_input(raw) is None:
            raw = _as_text(raw, crm.missing_values)
        kind, note = declared.get(column), ""
        if kind is None:
            kind, note = infer_kind(raw, crm.max_levels)
        converted = convert(raw, kind)
        failed[column] = (raw.notna() & converted.isna()).to_numpy(dtype=bool)
        if failed[column].any() and not converted.notna().any():
            first = raw[failed[column]].iloc[0]
            raise _contract_error(
                f"{source}: no value of column {column!r} reads as "
                f"{_NOUN.get(kind, kind)} (first: {first!r}); fix the kind under "
                f"crm.types or the column named in params (dates must be ISO 8601, "
                "2024-01-31; numbers plain, 1234.5)"
            )
        columns[column] = converted
        kinds[column] = ColumnKind(
            column,
            table,
            kind,
            column in declared,
            int(converted.nunique()),
            float(converted.isna().mean()),
            note,
        )
    return _Typed(columns, kinds, failed)


# --- checking named columns against the files ---------------------------------------


def _named_columns(crm: CrmConfig) -> list[tuple[str, str]]:
    """(params key, column) for every key that names a deal or account column."""
    named = [
        (f"crm.{key}", c)
        for key in ("ignore", "forbidden", "allowed")
        for c in getattr(crm, key)
    ]
    named += [
        (f"crm.{key}.{c}", c)
        for key in ("types", "dimensions")
        for c in getattr(crm, key)
    ]
    for letter, condition in crm.bant.letters.items():
        named += [
            (f"crm.bant.letters.{letter}", c) for c in columns_read(letter, condition)
        ]
    return named


def _missing(key: str, column: str, where: str, header: list[str]) -> str:
    return f"{key}: no column {column!r} in {where}{_close(column, header)}"


def _table_problems(crm: CrmConfig) -> tuple[list[str], list[str]]:
    """Problems with the accounts and activities tables, and the account columns."""
    problems: list[str] = []
    account_columns: list[str] = []
    if crm.accounts is not None:
        table = crm.accounts
        header = read_header(table.path, "crm.accounts.path")
        if table.id_column not in header:
            key = "crm.accounts.id" if table.id else "crm.accounts.key"
            problems.append(_missing(key, table.id_column, str(table.path), header))
        account_columns = [c for c in header if c != table.id_column]
        for column in table.columns or []:
            if column not in header:
                key = "crm.accounts.columns"
                problems.append(_missing(key, column, str(table.path), header))
        if table.columns is not None:
            account_columns = [c for c in account_columns if c in table.columns]
    if crm.activities is not None:
        log = crm.activities
        header = read_header(log.path, "crm.activities.path")
        for key in ("key", "timestamp", "type"):
            column = getattr(log, key)
            if column not in header:
                where = str(log.path)
                problems.append(
                    _missing(f"crm.activities.{key}", column, where, header)
                )
    return problems, account_columns


def check_columns(crm: CrmConfig) -> dict[str, list[str]]:
    """Check every column the crm section names against the files' headers.

    Reads no rows. Returns the deal and account column names; raises ConfigError
    listing every key that names a column the files do not have (with the closest
    match), or ContractError when a file cannot be read.
    """
    deals = read_header(crm.deals.path, "crm.deals.path")
    problems, accounts = _table_problems(crm)
    if crm.accounts is not None and crm.accounts.key not in deals:
        problems.append(
            _missing("crm.accounts.key", crm.accounts.key, str(crm.deals.path), deals)
        )
    both = set(deals) & set(accounts)
    if both:
        problems.append(
            f"crm.accounts.columns: {sorted(both)} are in both {crm.deals.path} and "
            f"{crm.accounts.path if crm.accounts else ''}; list the account columns "
            "to join without them"
        )
    where = f"{crm.deals.path}" + (f" or {crm.accounts.path}" if crm.accounts else "")
    roles = {k: c for k, c in crm.roles().items() if k != "crm.accounts.key"}
    for key, column in roles.items():
        if column not in deals:
            problems.append(_missing(key, column, str(crm.deals.path), deals))
    for key, column in _named_columns(crm):
        if column not in deals and column not in accounts:
            problems.append(_missing(key, column, where, [*deals, *accounts]))
    if problems:
        count = f"{len(problems)} problem(s)"
        raise _config_error(f"crm: {count}\n  " + "\n  ".join(problems))
    return {"deals": deals, "accounts": accounts}


# --- loading ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CrmTables:
    """The user's tables as read: typed deal and account columns, the activity log."""

    raw_deals: pd.DataFrame
    deals: pd.DataFrame
    accounts: pd.DataFrame | None
    activities: pd.DataFrame | None
    kinds: dict[str, ColumnKind]
    rejects: pd.DataFrame
    deal_failures: dict[str, np.ndarray] = field(default_factory=dict)


def _role_kinds(crm: CrmConfig) -> dict[str, Kind]:
    """Kinds the roles imply: dates are dates, the amount a number, ids text."""
    kinds: dict[str, Kind] = {crm.deals.id: "category", crm.outcome.column: "category"}
    for column in (crm.deals.created, crm.deals.closed):
        if column is not None:
            kinds[column] = "date"
    if crm.deals.amount is not None:
        kinds[crm.deals.amount] = "number"
    if crm.accounts is not None:
        kinds[crm.accounts.key] = "category"
    return kinds


def _reject_rows(frame: pd.DataFrame, table: str, reasons: np.ndarray) -> pd.DataFrame:
    """The rejects table (table, row, reason, then the row as text) of a table."""
    from lead_ml.schema import REJECT_COLUMNS

    rows = np.flatnonzero(pd.notna(reasons))
    rejects = frame.iloc[rows].astype("string")
    clashes = {c: f"input_{c}" for c in REJECT_COLUMNS if c in rejects.columns}
    rejects = rejects.rename(columns=clashes).reset_index(drop=True)
    report: dict[str, Any] = {
        "table": pd.array([table] * len(rows), dtype="string"),
        "row": rows.astype("int64"),
        "reason": pd.array(reasons[rows].tolist(), dtype="string"),
    }
    for position, (column, values) in enumerate(report.items()):
        rejects.insert(position, column, values)
    return rejects


def _first_reason(reasons: np.ndarray, failed: np.ndarray, messages: Any) -> None:
    """Give rows failing this check, and no earlier one, the check's reason."""
    rows = np.flatnonzero(failed & pd.isna(reasons))
    if rows.size == 0:
        return
    texts = messages(rows) if callable(messages) else [messages] * rows.size
    reasons[rows] = texts


def _order_kind(crm: CrmConfig, kinds: dict[str, ColumnKind]) -> None:
    order = crm.deals.order
    if order is not None and kinds[order].kind not in ("number", "date"):
        raise _config_error(
            f"crm.deals.order: column {order!r} holds {kinds[order].kind} values; it "
            "must be numbers or dates that put deals in time order (declare its kind "
            "under crm.types if it is one)"
        )


def _used(columns: Iterable[str], crm: CrmConfig) -> list[str]:
    """Columns to read: all but forbidden and ignored ones (unless BANT reads them)."""
    bant = {c for t in crm.bant.letters.items() for c in columns_read(*t)}
    return [
        c
        for c in columns
        if c not in crm.forbidden and (c not in crm.ignore or c in bant)
    ]


def _load_accounts(
    crm: CrmConfig,
) -> tuple[pd.DataFrame | None, dict[str, ColumnKind], pd.DataFrame]:
    """Typed accounts (first row per id kept), their kinds and rejected rows."""
    if crm.accounts is None:
        return None, {}, pd.DataFrame()
    table = crm.accounts
    raw = read_table(table.path, "crm.accounts.path")
    wanted = table.columns if table.columns is not None else list(raw.columns)
    keep = [table.id_column, *_used(wanted, crm)]
    raw = raw.loc[:, list(dict.fromkeys(keep))]
    declared: dict[str, Kind] = {**crm.types, table.id_column: "category"}
    typed = _type_columns(raw, "accounts", str(table.path), declared, crm)
    ids = typed.columns[table.id_column]
    reasons = np.full(len(raw), None, dtype=object)
    _first_reason(reasons, ids.isna().to_numpy(), f"{table.id_column} is missing")
    for column, failed in typed.failed.items():
        _first_reason(reasons, failed, _not_read(raw, column, typed.kinds[column].kind))
    repeated = ids.duplicated(keep="first").to_numpy() & ids.notna().to_numpy()
    _first_reason(reasons, repeated, f"repeated {table.id_column}: first row kept")
    accounts = pd.DataFrame(typed.columns, index=raw.index)[pd.isna(reasons)]
    kinds = {c: k for c, k in typed.kinds.items() if c != table.id_column}
    return accounts, kinds, _reject_rows(raw, "accounts", reasons)


def _not_read(
    raw: pd.DataFrame, column: str, kind: Kind
) -> Callable[[np.ndarray], list[str]]:
    def messages(rows: np.ndarray) -> list[str]:
        values = raw[column].iloc[rows].astype("string").tolist()
        noun = _NOUN.get(kind, kind)
        return [f"{column} is not {noun}: {value!r}" for value in values]

    return messages


def activity_columns(
    raw: pd.DataFrame, columns: tuple[str, str, str], missing_values: list[str]
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """A user's activity rows read as deal id (text), timestamp (date) and activity
    type (text); ``columns`` names the user's key, timestamp and type columns.
    Values that do not read are missing."""
    key, timestamp, kind = columns
    return (
        _as_text(raw[key]),
        convert(raw[timestamp], "date"),
        _as_text(raw[kind], missing_values),
    )


def _load_activities(
    crm: CrmConfig, deal_ids: pd.Series
) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """The activity log as deal_id, timestamp, activity_type; orphans rejected."""
    if crm.activities is None:
        return None, pd.DataFrame()
    log = crm.activities
    raw = read_table(log.path, "crm.activities.path")
    deal, stamp, kind = activity_columns(
        raw, (log.key, log.timestamp, log.type), crm.missing_values
    )
    reasons = np.full(len(raw), None, dtype=object)
    _first_reason(reasons, deal.isna().to_numpy(), f"{log.key} is missing")
    known = deal.isin(deal_ids.dropna().tolist()).fillna(False).to_numpy(dtype=bool)
    _first_reason(reasons, ~known, f"{log.key} not found among the deals")
    unread = stamp.isna().to_numpy()
    _first_reason(reasons, unread, _not_read(raw, log.timestamp, "date"))
    _first_reason(reasons, kind.isna().to_numpy(), f"{log.type} is missing")
    keep = pd.isna(reasons)
    activities = pd.DataFrame(
        {"deal_id": deal, "timestamp": stamp, "activity_type": kind}
    )[keep].reset_index(drop=True)
    return activities, _reject_rows(raw, "activities", reasons)


def load_tables(crm: CrmConfig) -> CrmTables:
    """Read and type the user's tables (headers checked first; see the module doc)."""
    check_columns(crm)
    raw = read_table(crm.deals.path, "crm.deals.path")
    declared: dict[str, Kind] = {**crm.types, **_role_kinds(crm)}
    keep = _used(raw.columns, crm)
    typed = _type_columns(raw[keep], "deals", str(crm.deals.path), declared, crm)
    accounts, account_kinds, account_rejects = _load_accounts(crm)
    kinds = {**typed.kinds, **account_kinds}
    _order_kind(crm, kinds)
    deals = pd.DataFrame(typed.columns, index=raw.index)
    activities, activity_rejects = _load_activities(crm, deals[crm.deals.id])
    rejects = [r for r in (account_rejects, activity_rejects) if not r.empty]
    return CrmTables(
        raw_deals=raw,
        deals=deals,
        accounts=accounts,
        activities=activities,
        kinds=kinds,
        rejects=pd.concat(rejects, ignore_index=True) if rejects else pd.DataFrame(),
        deal_failures=typed.failed,
    )


# --- the labelled deal frame --------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LabelledDeals:
    """One row per valid deal: META_COLUMNS, then the features, then BANT-only columns.

    ``outcome`` is won / lost / open and ``won`` 1 / 0 / missing (Int8);
    ``created_at``, ``closed_at`` (dates), ``order`` and ``amount`` are missing when
    not configured. Features keep the user's column names and their kind's dtype
    (dates stay dates: turning them into ages is featurize's job). ``rejects`` holds
    every rejected row of every table with its reason.
    """

    frame: pd.DataFrame
    features: tuple[str, ...]
    kinds: dict[str, ColumnKind]
    dimensions: dict[str, str]
    excluded: dict[str, str]
    rejects: pd.DataFrame
    activities: pd.DataFrame | None
    summary: dict[str, Any]


def _outcome_text(values: pd.Series) -> pd.Series:
    """Outcome values as text; whole numbers without a decimal point (1.0 -> '1')."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
        values.dtype
    ):
        numbers = values.astype("float64")
        whole = np.isfinite(numbers) & (numbers % 1 == 0)
        text = numbers.astype("string")
        return text.mask(whole, numbers[whole].astype("int64").astype("string"))
    return _as_text(values)


def _outcomes(values: pd.Series, crm: CrmConfig) -> pd.Series:
    """won / lost / open per deal; ContractError if a won or lost value never occurs."""
    text = _outcome_text(values)
    for key in ("won", "lost"):
        wanted = getattr(crm.outcome, key)
        if not text.isin(wanted).any():
            counts = text.value_counts(dropna=False).head(12)
            seen = ", ".join(f"{v!r} ({n:,})" for v, n in counts.items())
            raise _contract_error(
                f"crm.outcome.{key}: no deal in {crm.deals.path} has "
                f"{crm.outcome.column} in {wanted}; its values are: {seen}"
            )
    outcome = pd.Series("open", index=values.index, dtype="string")
    outcome[text.isin(crm.outcome.won).fillna(False)] = "won"
    outcome[text.isin(crm.outcome.lost).fillna(False)] = "lost"
    return outcome


def _deal_reasons(tables: CrmTables, crm: CrmConfig, outcome: pd.Series) -> np.ndarray:
    """The first reason each deal row is rejected, or None."""
    raw, typed = tables.raw_deals, tables.deals
    reasons = np.full(len(raw), None, dtype=object)
    ids = typed[crm.deals.id]
    _first_reason(reasons, ids.isna().to_numpy(), f"{crm.deals.id} is missing")
    for column, failed in tables.deal_failures.items():
        kind = tables.kinds[column].kind
        _first_reason(reasons, failed, _not_read(raw, column, kind))
    closed = outcome.isin(["won", "lost"]).to_numpy()
    for key in ("created", "order"):
        column = getattr(crm.deals, key)
        if column is not None:
            absent = closed & typed[column].isna().to_numpy()
            _first_reason(reasons, absent, f"closed deal with no {column} ({key})")
    if crm.deals.created and crm.deals.closed:
        before = typed[crm.deals.closed] < typed[crm.deals.created]
        message = f"{crm.deals.closed} is before {crm.deals.created}"
        _first_reason(reasons, before.fillna(False).to_numpy(dtype=bool), message)
    _first_reason(reasons, _repeats(ids, reasons), _first_seen(ids, crm.deals.id))
    return reasons


def _repeats(ids: pd.Series, reasons: np.ndarray) -> np.ndarray:
    """Rows repeating the id of an earlier row that passed the other checks."""
    candidates = pd.isna(reasons) & ids.notna().to_numpy()
    repeated = np.zeros(len(ids), dtype=bool)
    repeated[candidates] = ids[candidates].duplicated(keep="first").to_numpy()
    return repeated


def _first_seen(ids: pd.Series, name: str) -> Callable[[np.ndarray], list[str]]:
    first = {v: i for i, v in reversed(list(enumerate(ids.tolist())))}

    def messages(rows: np.ndarray) -> list[str]:
        values = ids.iloc[rows].tolist()
        return [
            f"duplicate {name} {v!r} (first seen at row {first[v]})" for v in values
        ]

    return messages


def _join_accounts(
    deals: pd.DataFrame, tables: CrmTables, crm: CrmConfig
) -> tuple[pd.DataFrame, int]:
    """Account columns for each deal (missing when the account is unknown)."""
    if crm.accounts is None or tables.accounts is None:
        return pd.DataFrame(index=deals.index), 0
    accounts = tables.accounts.set_index(crm.accounts.id_column)
    keys = deals[crm.accounts.key]
    joined = accounts.reindex(keys.to_numpy())
    joined.index = deals.index
    return joined, int((~keys.isin(accounts.index)).sum())


def _meta(typed: pd.DataFrame, outcome: pd.Series, crm: CrmConfig) -> pd.DataFrame:
    def column(name: str | None, dtype: Any) -> pd.Series:
        if name is None:
            return pd.Series(None, index=typed.index, dtype=dtype)
        return typed[name]

    won = (outcome == "won").astype("Int8").mask(outcome == "open")
    order_dtype = "float64"
    if crm.deals.order is not None:
        order_dtype = str(typed[crm.deals.order].dtype)
    return pd.DataFrame(
        {
            "deal_id": typed[crm.deals.id].astype("string"),
            "created_at": column(crm.deals.created, TIME_DTYPE),
            "closed_at": column(crm.deals.closed, TIME_DTYPE),
            "order": column(crm.deals.order, order_dtype),
            "outcome": outcome,
            "won": won,
            "amount": column(crm.deals.amount, "float64"),
        },
        index=typed.index,
    )


def _meta_sources(crm: CrmConfig) -> dict[str, str | None]:
    """The user column each META column is taken from."""
    deals = crm.deals
    return {
        "deal_id": deals.id,
        "created_at": deals.created,
        "closed_at": deals.closed,
        "order": deals.order,
        "outcome": crm.outcome.column,
        "amount": deals.amount,
    }


def _check_clash(columns: Iterable[str], crm: CrmConfig) -> None:
    """ConfigError when a user column carries a META name for something else."""
    sources = _meta_sources(crm)
    for column in columns:
        if column in META_COLUMNS and sources.get(column) != column:
            raise _config_error(
                f"column {column!r} has a name lead-ml uses for its own columns "
                f"({', '.join(META_COLUMNS)}); list it under crm.ignore or give it "
                "its role under crm.deals"
            )


def _features(
    columns: list[str], kinds: dict[str, ColumnKind], crm: CrmConfig
) -> tuple[tuple[str, ...], dict[str, str]]:
    """Usable feature columns and why each other column is left out."""
    excluded = crm.excluded()
    for column in columns:
        kind = kinds.get(column)
        if column not in excluded and kind is not None and kind.kind == "text":
            excluded[column] = (
                f"free text or an identifier ({kind.levels:,} distinct values, more "
                f"than crm.max_levels={crm.max_levels}); declare it `category` under "
                "crm.types to keep it, or list it under crm.ignore"
            )
    features = tuple(c for c in columns if c not in excluded)
    _check_clash(features, crm)
    return features, excluded


def label_deals(tables: CrmTables, crm: CrmConfig) -> LabelledDeals:
    """The labelled deal frame of the user's tables (see :class:`LabelledDeals`)."""
    raw, typed = tables.raw_deals, tables.deals
    outcome = _outcomes(raw[crm.outcome.column], crm)
    reasons = _deal_reasons(tables, crm, outcome)
    valid = pd.isna(reasons)
    typed, outcome = typed[valid], outcome[valid]
    joined, no_account = _join_accounts(typed, tables, crm)
    table = pd.concat([typed, joined], axis=1)
    features, excluded = _features(list(table.columns), tables.kinds, crm)
    read = {c for t in crm.bant.letters.items() for c in columns_read(*t)}
    _check_clash(read, crm)
    bant_only = sorted(read - set(features) - set(META_COLUMNS))
    frame = pd.concat(
        [_meta(typed, outcome, crm), table[[*features, *bant_only]]], axis=1
    ).reset_index(drop=True)
    rejects = [_reject_rows(raw, "deals", reasons), tables.rejects]
    rejects = [r for r in rejects if not r.empty]
    all_rejects = pd.concat(rejects, ignore_index=True) if rejects else pd.DataFrame()
    return LabelledDeals(
        frame=frame,
        features=features,
        kinds={c: k for c, k in tables.kinds.items() if c in table.columns},
        dimensions={c: crm.dimensions.get(c, OTHER) for c in features},
        excluded=excluded,
        rejects=all_rejects,
        activities=tables.activities,
        summary=_summary(frame, raw, all_rejects, no_account, tables),
    )


def _summary(
    frame: pd.DataFrame,
    raw: pd.DataFrame,
    rejects: pd.DataFrame,
    no_account: int,
    tables: CrmTables,
) -> dict[str, Any]:
    counts = frame["outcome"].value_counts()
    by_table = rejects["table"].value_counts() if len(rejects) else pd.Series()
    return {
        "rows_in": len(raw),
        "deals": len(frame),
        "rejected": int(by_table.get("deals", 0)),
        "won": int(counts.get("won", 0)),
        "lost": int(counts.get("lost", 0)),
        "open": int(counts.get("open", 0)),
        "deals_without_account": no_account,
        "accounts_rejected": int(by_table.get("accounts", 0)),
        "activities": 0 if tables.activities is None else len(tables.activities),
        "activities_rejected": int(by_table.get("activities", 0)),
    }


def load_crm(crm: CrmConfig) -> LabelledDeals:
    """Read, type and label the user's CRM export: what featurize starts from.

    Raises ConfigError when the params name a column the files do not have, and
    ContractError when a file cannot be read or a won/lost value never occurs.
    """
    deals = label_deals(load_tables(crm), crm)
    bant_rule(crm, deals.frame)  # every condition checked against the data up front
    return deals


# --- the BANT rule ------------------------------------------------------------------


def bant_config(crm: CrmConfig) -> BantConfig:
    """The user's rule as the pipeline's BantConfig: one point a letter.

    A lead passes when its points reach ``share`` x the number of letters.
    """
    from lead_ml.config import BantConfig

    letters = dict(crm.bant.letters)
    return BantConfig(
        letters=letters,
        weights=dict.fromkeys(letters, 1.0),
        threshold=crm.bant.share * len(letters),
    )


def bant_rule(crm: CrmConfig, deals: pd.DataFrame) -> BantRule:
    """The user's BANT rule fitted on the deal frame, every condition checked first.

    Raises ConfigError naming the letter and the column the deals do not have, or
    the letter whose condition does not evaluate to true/false on the data.
    """
    from lead_ml.baseline import BantRule

    for letter, condition in crm.bant.letters.items():
        for column in columns_read(letter, condition):
            if column not in deals.columns:
                raise _config_error(
                    f"crm.bant.letters.{letter}: {condition!r} reads column "
                    f"{column!r}, which the deals do not have"
                    f"{_close(column, deals.columns)}"
                )
    rule = BantRule.from_config(bant_config(crm)).fit(deals)
    try:
        passes = rule.letter_passes(deals)
    except ValueError as error:
        raise _config_error(f"crm.bant.letters: {error}") from None
    for letter in passes.columns[~passes.any().to_numpy()]:
        raise _config_error(_never_true(crm, letter, deals))
    return rule


def _never_true(crm: CrmConfig, letter: str, deals: pd.DataFrame) -> str:
    """Why a letter no deal passes is almost surely a typo, with the values seen."""
    condition = crm.bant.letters[letter]
    seen = []
    for column in columns_read(letter, condition):
        counts = deals[column].astype("string").value_counts(dropna=False).head(6)
        values = ", ".join(f"{v!r} ({n:,})" for v, n in counts.items())
        seen.append(f"{column}: {values}")
    return (
        f"crm.bant.letters.{letter}: {condition!r} is true for no deal; check the "
        f"values as written (case matters) - {'; '.join(seen)}"
    )


def evaluate_bant(crm: CrmConfig, deals: pd.DataFrame) -> pd.DataFrame:
    """Per deal: pass/fail per letter, then ``bant_points`` and ``bant_qualified``.

    The index of ``deals`` is kept.
    """
    rule = bant_rule(crm, deals)
    passes = rule.letter_passes(deals)
    return passes.assign(
        bant_points=rule.decision_function(deals),
        bant_qualified=rule.predict(deals).astype(bool),
    )


def name_words(column: str) -> set[str]:
    """Lower-case words of a column name (spaces, punctuation and camelCase split).

    >>> sorted(name_words("Last Notable_Activity"))
    ['activity', 'last', 'notable']
    >>> sorted(name_words("closeValue"))
    ['close', 'value']
    """
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", column)
    return {word for word in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if word}
