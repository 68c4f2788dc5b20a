"""A source's tables to labelled deals: one loader for the synthetic CRM and exports.

The ``source`` section of params.yaml names the deals table (id, or the row number
when the export has none; optional created and closed dates, order, amount), the
outcome column and its won / lost (and optionally open) values, or a table holding
the outcome (a deal is won when its key is there, or by a column there), optional
many-to-one tables joined on a key (the accounts, products, teams...), and an
optional activity log; each file is read by its table's dialect (separator,
encoding, decimal mark, sheet: :class:`lead_ml.tables.Dialect`).
:func:`load_deals` reads the tables `lead-ml read` copied, gives every column its
kind (:func:`lead_ml.schema.type_table`), labels each deal, joins the other tables
and reads the activity log. Nothing is dropped silently: a deal with no id, a
repeated id, a value that does not read as its kind or lies outside its bounds, an
outcome value that is not listed, a closed deal with no created date (or order
value), or one closed before it was created is rejected with one reason; so is a row
of the accounts (or of any joined table, or of the outcome table) repeating its id,
and an activity whose deal is unknown, whose time stamp does not read or that has
no type. ``rows in = deals + rejected`` for every table.

The labelled deal frame (:class:`Deals`) holds :data:`~lead_ml.vocab.META_COLUMNS`
(the roles under lead-ml's names), then every column that may be a feature, in the
source's own names and kinds, then columns only the BANT rule reads.
:func:`lead_rows` turns it back into rows as the export holds them: what a scorer
takes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lead_ml.config import (
    AccountsTable,
    ActivitiesTable,
    BantConfig,
    DealsTable,
    JoinTable,
    SourceConfig,
)
from lead_ml.schema import ColumnKind, id_text, type_table
from lead_ml.tables import (
    Dialect,
    as_text,
    atomic_path,
    close_match,
    concat_rejects,
    convert,
    describe,
    duplicate_reasons,
    first_reason,
    header_hint,
    infer_kind,
    no_reasons,
    not_read_reasons,
    quote_value,
    read_header,
    read_table,
    rejected_rows,
    typed_kind,
    write_csv,
    write_json,
    write_parquet,
)
from lead_ml.vocab import (
    ACTIVITY_COLUMNS,
    META_COLUMNS,
    OTHER,
    TIME_DTYPE,
    ConfigError,
    ContractError,
    Kind,
)

TABLE_FILE = "{name}.parquet"
DEALS_FILE = "deals.parquet"
ACTIVITIES_FILE = "activities.parquet"
SOURCE_FILE = "source.json"


def table_key(name: str) -> str:
    """The params key of a table's path, as messages name it."""
    return f"source.tables.{name}.path"


# --- reading the files (`lead-ml read`) ---------------------------------------------


def dialect(table: DealsTable | AccountsTable | ActivitiesTable, name: str) -> Dialect:
    """How a source table's file is read (its sep, encoding, decimal, sheet, and the
    deals' row-number id)."""
    return Dialect.of(table, name)


def reading(table: DealsTable | AccountsTable | ActivitiesTable, name: str) -> str:
    """How a source table's file is read, in words (the dialect detected or set)."""
    return describe(table.path, dialect(table, name))


def copy_table(
    table: DealsTable | AccountsTable | ActivitiesTable, name: str, out: Path
) -> int:
    """Copy one source table to ``out`` as Parquet (a Parquet file byte for byte, a
    CSV or Excel sheet with every cell as text, read by the table's dialect);
    return its rows. ContractError when it cannot be read."""
    how = dialect(table, name)
    frame = read_table(table.path, table_key(name), how)
    with atomic_path(out) as partial:
        if table.path.suffix.lower() == ".parquet" and not how.row_number:
            shutil.copyfile(table.path, partial)
        else:
            frame.to_parquet(partial, index=False, compression="zstd")
    return len(frame)


def read_tables(source: SourceConfig, folder: Path) -> dict[str, pd.DataFrame]:
    """The source's tables as `lead-ml read` copied them into ``folder``."""
    frames = {}
    for name in source.tables.present():
        path = folder / TABLE_FILE.format(name=name)
        if not path.exists():
            raise ContractError(
                f"{path}: the {name} table has not been read; run `dvc repro` (or "
                f"`lead-ml read --table {name}`) first"
            )
        frames[name] = pd.read_parquet(path)
    return frames


# --- checking named columns against the files ---------------------------------------


def _named_columns(
    source: SourceConfig, bant: BantConfig | None
) -> list[tuple[str, str]]:
    """(params key, column) for every key naming a deal or account column."""
    named = [
        (f"source.{key}", c)
        for key in ("ignore", "forbidden", "allowed")
        for c in getattr(source, key)
    ]
    named += [
        (f"source.{key}.{c}", c)
        for key in ("types", "dimensions", "directions", "bounds")
        for c in getattr(source, key)
    ]
    named += [
        (f"source.details.{detail}", c)
        for detail, parent in source.details.items()
        for c in (detail, parent)
    ]
    if bant is not None:
        named += [
            (f"bant.letters.{letter} ({bant.letters[letter]!r})", c)
            for letter, read in bant.letter_columns().items()
            for c in read
        ]
    return named


def _missing(
    key: str, column: str, where: str, header: list[str], hint: str = ""
) -> str:
    return f"{key}: no column {column!r} in {where}{close_match(column, header)}{hint}"


def joins(source: SourceConfig) -> dict[str, JoinTable]:
    """The many-to-one tables joined onto the deals by key, in order: the accounts,
    then every further table but the outcome's."""
    tables = source.tables
    found: dict[str, JoinTable] = {}
    if tables.accounts is not None:
        found["accounts"] = tables.accounts
    for name, table in tables.extra().items():
        if name != source.outcome.table:
            found[name] = table
    return found


def _check_outcome_table(
    source: SourceConfig, headers: dict[str, list[str]], problems: list[str]
) -> None:
    name = source.outcome.table
    if name is None:
        return
    table, header = source.tables.extra()[name], headers[name]
    deals = source.tables.deals
    hint = header_hint(table.path, dialect(table, name))
    key = f"source.tables.{name}"
    if table.id_column not in header:
        which = f"{key}.id" if table.id else f"{key}.key"
        problems.append(_missing(which, table.id_column, str(table.path), header, hint))
    if table.key not in headers["deals"]:
        deals_hint = header_hint(deals.path, dialect(deals, "deals"))
        problems.append(
            _missing(
                f"{key}.key", table.key, str(deals.path), headers["deals"], deals_hint
            )
        )
    column = source.outcome.column
    if column is not None and column not in header:
        problems.append(
            _missing("source.outcome.column", column, str(table.path), header, hint)
        )


def check_columns(
    source: SourceConfig, bant: BantConfig | None = None
) -> dict[str, list[str]]:
    """Check every column the source section (and the BANT rule) names against the
    files' headers, reading no rows (each file read by its table's dialect).
    Returns each table's columns; raises ConfigError listing every key that names a
    column the files lack (with the closest match, and how the file was read), or
    ContractError when a file cannot be read."""
    tables = source.tables
    headers = {
        name: read_header(table.path, table_key(name), dialect(table, name))
        for name, table in tables.present().items()
    }
    deals = headers["deals"]
    deals_hint = header_hint(tables.deals.path, dialect(tables.deals, "deals"))
    problems: list[str] = []
    joined: list[str] = []
    for name, join in joins(source).items():
        header, where = headers[name], str(join.path)
        hint = header_hint(join.path, dialect(join, name))
        if join.id_column not in header:
            key = f"source.tables.{name}." + ("id" if join.id else "key")
            problems.append(_missing(key, join.id_column, where, header, hint))
        if join.key not in deals:
            key = f"source.tables.{name}.key"
            problems.append(
                _missing(key, join.key, str(tables.deals.path), deals, deals_hint)
            )
        for column in join.columns or []:
            if column not in header:
                key = f"source.tables.{name}.columns"
                problems.append(_missing(key, column, where, header, hint))
        columns = _account_columns(join, header)
        both = sorted((set(deals) | set(joined)) & set(columns) - {join.key})
        if both:
            problems.append(
                f"source.tables.{name}.columns: {both} are in both "
                f"{join.path} and {tables.deals.path} (or a table joined before); "
                "list the columns to join without them"
            )
        joined += columns
    _check_outcome_table(source, headers, problems)
    if tables.activities is not None:
        log, header = tables.activities, headers["activities"]
        hint = header_hint(log.path, dialect(log, "activities"))
        for key in ("key", "timestamp", "type"):
            column = getattr(log, key)
            if column not in header:
                where = str(log.path)
                problems.append(
                    _missing(
                        f"source.tables.activities.{key}", column, where, header, hint
                    )
                )
    for key, column in source.roles().items():
        if key == "source.tables.accounts.key":
            continue  # checked with the accounts above
        if column not in deals:
            problems.append(
                _missing(key, column, str(tables.deals.path), deals, deals_hint)
            )
    paths = [tables.deals.path, *(t.path for t in joins(source).values())]
    where = " or ".join(str(p) for p in paths)
    for key, column in _named_columns(source, bant):
        if column not in deals and column not in joined:
            problems.append(_missing(key, column, where, [*deals, *joined], deals_hint))
    if problems:
        raise ConfigError(
            f"source: {len(problems)} problem(s)\n  " + "\n  ".join(problems)
        )
    return headers


def _account_columns(accounts: AccountsTable, header: list[str]) -> list[str]:
    wanted = accounts.columns if accounts.columns is not None else header
    return [c for c in wanted if c != accounts.id_column and c in header]


# --- the labelled deals -------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Deals:
    """The labelled deals of a source (see the module doc).

    ``frame``: META_COLUMNS, then ``candidates`` (columns that may be features), then
    columns only the BANT rule reads; ``outcome`` is won / lost / open and ``won``
    1 / 0 / missing (Int8). ``kinds`` covers every typed column, ``excluded`` says
    why each column that is not a candidate is left out, ``activities`` is the log
    as deal_id, timestamp, activity_type (None without one), ``rejects`` every
    rejected row of every table with its reason.
    """

    frame: pd.DataFrame
    kinds: dict[str, ColumnKind]
    candidates: tuple[str, ...]
    excluded: dict[str, str]
    activities: pd.DataFrame | None
    rejects: pd.DataFrame
    summary: dict[str, Any]

    def dimensions(self, source: SourceConfig) -> dict[str, str]:
        """The dimension of every candidate (``other`` when the map leaves it out)."""
        return {c: source.dimensions.get(c, OTHER) for c in self.candidates}


def _role_kinds(source: SourceConfig) -> dict[str, Kind]:
    """Kinds the roles imply: dates are dates, the amount a number, keys text."""
    deals, accounts = source.tables.deals, source.tables.accounts
    kinds: dict[str, Kind] = {deals.id: "category"}
    for column in (deals.created, deals.closed):
        if column is not None:
            kinds[column] = "date"
    if deals.amount is not None:
        kinds[deals.amount] = "number"
    if accounts is not None:
        kinds[accounts.key] = "category"
    return kinds


def _used(
    columns: Iterable[str], source: SourceConfig, bant: BantConfig | None
) -> list[str]:
    """Columns to read: all but forbidden and ignored ones (unless BANT reads them)."""
    read = set(bant.columns()) if bant is not None else set()
    return [
        c
        for c in columns
        if c not in source.forbidden and (c not in source.ignore or c in read)
    ]


def _bounds(source: SourceConfig) -> dict[str, tuple[float | None, float | None]]:
    return {c: (b.min, b.max) for c, b in source.bounds.items()}


def _outcome_text(values: pd.Series) -> pd.Series:
    return as_text(id_text(values))


def _outcomes(values: pd.Series, source: SourceConfig) -> tuple[pd.Series, np.ndarray]:
    """won / lost / open per deal, and where a value is not a listed one (only when
    ``source.outcome.open`` lists the open values); ContractError if a won or lost
    value never occurs."""
    cfg, column = source.outcome, source.outcome.column
    text = _outcome_text(values)
    for key in ("won", "lost"):
        wanted = getattr(cfg, key) or []
        if not text.isin(wanted).any():
            counts = text.value_counts(dropna=False).head(12)
            seen = ", ".join(f"{v!r} ({n:,})" for v, n in counts.items())
            path = source.tables.deals.path
            if cfg.table is not None:
                path = source.tables.extra()[cfg.table].path
            raise ContractError(
                f"source.outcome.{key}: no deal in {path} has "
                f"{column} in {wanted}; its values are: {seen}"
            )
    won = text.isin(cfg.won or []).fillna(False).to_numpy(bool)
    lost = text.isin(cfg.lost or []).fillna(False).to_numpy(bool)
    outcome = pd.Series("open", index=values.index, dtype="string")
    outcome[won], outcome[lost] = "won", "lost"
    unlisted = np.zeros(len(values), dtype=bool)
    if cfg.open is not None:
        unlisted = ~(won | lost | text.isin(cfg.open).fillna(False).to_numpy(bool))
    return outcome, unlisted


def _outcome_reasons(
    values: pd.Series, source: SourceConfig, where: str = ""
) -> Callable[[np.ndarray], list[str]]:
    cfg = source.outcome
    listed = ", ".join([*(cfg.won or []), *(cfg.lost or []), *(cfg.open or [])])

    def messages(rows: np.ndarray) -> list[str]:
        return [
            f"{cfg.column} {quote_value(v)}{where} is not one of {listed}"
            for v in _outcome_text(values).iloc[rows].tolist()
        ]

    return messages


@dataclass(frozen=True, eq=False)
class _Outcome:
    """Each deal's outcome (won / lost / open), where its value is not listed, the
    reason for those, and the outcome table's rejects and counts (if one)."""

    outcome: pd.Series
    unlisted: np.ndarray
    reasons: Callable[[np.ndarray], list[str]]
    rejects: pd.DataFrame
    summary: dict[str, int]


def _key_text(values: pd.Series, source: SourceConfig) -> pd.Series:
    """Keys as both sides of a join compare them: trimmed text, whole numbers
    without a point, placeholders missing."""
    return as_text(id_text(values), source.missing_values)


def _table_rows(
    source: SourceConfig,
    table: JoinTable,
    raw: pd.DataFrame,
    unread: np.ndarray | None = None,
) -> tuple[pd.Series, np.ndarray]:
    """A joined table's ids, and the reason each row is left out: no id, a value
    that does not read (``unread``: reasons from :func:`type_table`), or an id an
    earlier row has (the first row is kept)."""
    ids = _key_text(raw[table.id_column], source)
    reasons = no_reasons(len(raw))
    first_reason(reasons, ids.isna().to_numpy(), f"{table.id_column} is missing")
    if unread is not None:
        left = pd.notna(unread) & pd.isna(reasons)
        reasons[left] = unread[left]
    repeated = ids.duplicated(keep="first").to_numpy() & ids.notna().to_numpy()
    first_reason(reasons, repeated, f"repeated {table.id_column}: first row kept")
    return ids, reasons


def _deals_outcome(source: SourceConfig, tables: dict[str, pd.DataFrame]) -> _Outcome:
    """The outcome of every deal row, from the deals' column or the outcome table."""
    cfg, raw = source.outcome, tables["deals"]
    if cfg.table is None:
        column = raw[cfg.column]
        outcome, unlisted = _outcomes(column, source)
        return _Outcome(
            outcome, unlisted, _outcome_reasons(column, source), concat_rejects([]), {}
        )
    name, table = cfg.table, source.tables.extra()[cfg.table]
    rows = tables[name]
    ids, reasons = _table_rows(source, table, rows)
    valid = pd.isna(reasons)
    keys = _key_text(raw[table.key], source)
    found = keys.isin(ids[valid].tolist()).fillna(False).to_numpy(bool)
    if not found.any():
        seen = ", ".join(map(repr, keys.dropna().head(3)))
        theirs = ", ".join(map(repr, ids.dropna().head(3)))
        raise ContractError(
            f"source.outcome.table: no deal's {table.key} ({seen}...) is a "
            f"{table.id_column} of {table.path} ({theirs}...); check "
            f"source.tables.{name}.key and id"
        )
    unlisted = np.zeros(len(raw), dtype=bool)
    messages = _outcome_reasons(pd.Series(dtype="string"), source)
    outcome = pd.Series(cfg.absent, index=raw.index, dtype="string")
    if cfg.column is None:
        outcome[found] = "won"
    else:
        status = rows[cfg.column][valid].set_axis(ids[valid].to_numpy())
        values = status.reindex(keys.to_numpy()).set_axis(raw.index)
        values = values.where(found)
        read, unlisted = _outcomes(values, source)
        outcome[found] = read[found]
        unlisted &= found
        messages = _outcome_reasons(values, source, f" in {table.path}")
    summary = {
        f"{name}_in": len(rows),
        f"{name}_rejected": int((~valid).sum()),
        f"{name}_without_deal": int(
            (valid & ~ids.isin(keys.dropna().tolist()).fillna(False).to_numpy()).sum()
        ),
    }
    return _Outcome(
        outcome, unlisted, messages, rejected_rows(rows, name, reasons), summary
    )


def _deal_reasons(
    raw: pd.DataFrame,
    typed: pd.DataFrame,
    reasons: np.ndarray,
    outcome: _Outcome,
    source: SourceConfig,
) -> np.ndarray:
    """The first reason each deal row is rejected, or None."""
    deals = source.tables.deals
    ids = typed[deals.id]
    missing_id = ids.isna().to_numpy()
    checked = no_reasons(len(raw))
    first_reason(checked, missing_id, f"{deals.id} is missing")
    unread = pd.notna(reasons)
    checked[unread & pd.isna(checked)] = reasons[unread & pd.isna(checked)]
    first_reason(checked, outcome.unlisted, outcome.reasons)
    closed = outcome.outcome.isin(["won", "lost"]).to_numpy()
    for key in ("created", "order"):
        column = getattr(deals, key)
        if column is not None:
            absent = closed & typed[column].isna().to_numpy()
            first_reason(checked, absent, f"closed deal with no {column} ({key})")
    if deals.created and deals.closed:
        before = (typed[deals.closed] < typed[deals.created]).fillna(False)
        message = f"{deals.closed} is before {deals.created}"
        first_reason(checked, before.to_numpy(dtype=bool), message)
    duplicate_reasons(ids, checked, deals.id, np.arange(len(raw)))
    return checked


def _load_join(
    source: SourceConfig,
    name: str,
    table: JoinTable,
    raw: pd.DataFrame,
    bant: BantConfig | None,
) -> tuple[pd.DataFrame, dict[str, ColumnKind], pd.DataFrame]:
    """A joined table typed (first row per id kept, indexed by id), its kinds and
    rejects."""
    columns = _used(_account_columns(table, list(raw.columns)), source, bant)
    keep = raw.loc[:, [table.id_column, *columns]]
    declared: dict[str, Kind] = {**source.types, table.id_column: "category"}
    typed = type_table(
        keep,
        name,
        str(table.path),
        declared,
        source.missing_values,
        source.max_levels,
        _bounds(source),
    )
    ids, reasons = _table_rows(source, table, raw, typed.reasons)
    valid = pd.isna(reasons)
    joined = typed.frame[columns][valid].set_axis(ids[valid].to_numpy())
    kinds = {c: typed.kinds[c] for c in columns}
    return joined, kinds, rejected_rows(raw, name, reasons)


def activity_log(
    raw: pd.DataFrame, key: str, timestamp: str, type_: str, missing: Iterable[str] = ()
) -> tuple[pd.DataFrame, np.ndarray]:
    """An activity log (columns ``key``, ``timestamp``, ``type_`` of the source) read
    as deal_id (text), timestamp (date), activity_type (text), and per row the first
    reason it cannot be used (None where it can): no id, a time stamp that does not
    read, no type."""
    placeholders = list(missing)
    deal = as_text(id_text(raw[key]), placeholders)
    stamp, unread = convert(raw[timestamp], "date", placeholders)
    kind = as_text(raw[type_], placeholders)
    reasons = no_reasons(len(raw))
    first_reason(reasons, deal.isna().to_numpy(), f"{key} is missing")
    first_reason(reasons, unread, not_read_reasons(raw[timestamp], timestamp, "date"))
    first_reason(reasons, stamp.isna().to_numpy(), f"{timestamp} is missing")
    first_reason(reasons, kind.isna().to_numpy(), f"{type_} is missing")
    frame = pd.DataFrame(
        {"deal_id": deal, "timestamp": stamp, "activity_type": kind}, index=raw.index
    )
    return frame, reasons


def _load_activities(
    source: SourceConfig, raw: pd.DataFrame, deal_ids: pd.Series
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The activity log of the valid deals, and the rejected rows."""
    log = source.tables.activities
    assert log is not None
    frame, reasons = activity_log(
        raw, log.key, log.timestamp, log.type, source.missing_values
    )
    known = frame["deal_id"].isin(deal_ids.tolist()).fillna(False).to_numpy(bool)
    first_reason(reasons, ~known, f"{log.key} not found among the valid deals")
    keep = pd.isna(reasons)
    activities = frame[keep].reset_index(drop=True)
    return activities, rejected_rows(raw, "activities", reasons)


def _meta(
    typed: pd.DataFrame,
    outcome: pd.Series,
    source: SourceConfig,
    order: pd.Series | None = None,
) -> pd.DataFrame:
    """The META columns of the valid deals (``order``: the order values, when they
    are not a column of ``typed``, as when the order is the id)."""
    deals = source.tables.deals

    def column(name: str | None, dtype: Any) -> pd.Series:
        if name is None:
            return pd.Series(None, index=typed.index, dtype=dtype)
        return typed[name].astype(dtype)

    won = (outcome == "won").astype("Int8").mask(outcome == "open")
    if order is None:
        order = (
            column(deals.order, "float64")
            if deals.order is None
            else (typed[deals.order])
        )
    order_dtype: Any = "float64"
    if pd.api.types.is_datetime64_any_dtype(order.dtype):
        order_dtype = str(TIME_DTYPE)
    return pd.DataFrame(
        {
            "deal_id": id_text(typed[deals.id]),
            "created_at": column(deals.created, TIME_DTYPE),
            "closed_at": column(deals.closed, TIME_DTYPE),
            "order": order.astype(order_dtype),
            "outcome": outcome,
            "won": won,
            "amount": column(deals.amount, "float64"),
        },
        index=typed.index,
    )


def _meta_sources(source: SourceConfig) -> dict[str, str | None]:
    """The source column each META column is taken from."""
    deals = source.tables.deals
    return {
        "deal_id": deals.id,
        "created_at": deals.created,
        "closed_at": deals.closed,
        "order": deals.order,
        "outcome": source.outcome.deals_column,
        "amount": deals.amount,
    }


def _check_clash(columns: Iterable[str], source: SourceConfig) -> None:
    """ConfigError when a source column carries a META name for something else."""
    sources = _meta_sources(source)
    for column in columns:
        if column in META_COLUMNS and sources.get(column) != column:
            raise ConfigError(
                f"column {column!r} has a name lead-ml uses for its own columns "
                f"({', '.join(META_COLUMNS)}); list it under source.ignore or give it "
                "its role under source.tables.deals"
            )


def _candidates(
    columns: list[str], kinds: dict[str, ColumnKind], source: SourceConfig
) -> tuple[tuple[str, ...], dict[str, str]]:
    """Columns that may be features, and why each other column is left out."""
    excluded = source.excluded()
    for column in columns:
        kind = kinds.get(column)
        if column not in excluded and kind is not None and kind.kind == "text":
            excluded[column] = (
                f"free text or an identifier ({kind.levels:,} distinct values, more "
                f"than source.max_levels={source.max_levels}); declare it `category` "
                "under source.types to keep it, or list it under source.ignore"
            )
    candidates = tuple(c for c in columns if c not in excluded)
    _check_clash(candidates, source)
    return candidates, excluded


def _order_kind(source: SourceConfig, kind: Kind) -> None:
    order = source.tables.deals.order
    if order is not None and kind not in ("number", "date"):
        raise ConfigError(
            f"source.tables.deals.order: column {order!r} holds {kind} "
            "values; it must be numbers or dates that put deals in time order "
            "(declare its kind under source.types if it is one)"
        )


def _id_order(
    source: SourceConfig, raw: pd.DataFrame, reasons: np.ndarray
) -> pd.Series:
    """The order values of an order column that is also the id: the id stays text
    (its role), the order is its values read as numbers or dates (declared under
    source.types, or inferred); a value that does not read rejects its row."""
    column = source.tables.deals.order
    assert column is not None
    values = raw[column]
    declared = source.types.get(column)
    kind: Kind
    if declared is None:
        text = values if typed_kind(values) else as_text(values, source.missing_values)
        kind = infer_kind(text, source.max_levels)[0]
    else:
        kind = declared
    _order_kind(source, kind)
    order, failed = convert(values, kind, source.missing_values)
    first_reason(reasons, failed, not_read_reasons(values, column, kind))
    return order


def load_deals(
    source: SourceConfig, bant: BantConfig | None, tables: dict[str, pd.DataFrame]
) -> Deals:
    """The labelled deals of a source's tables (see :class:`Deals`); ``bant``: the
    rule, whose columns are kept (None: no rule is given)."""
    deals_cfg = source.tables.deals
    raw = tables["deals"]
    declared: dict[str, Kind] = {**source.types, **_role_kinds(source)}
    order = deals_cfg.order
    outcome_column = source.outcome.deals_column
    keep = [c for c in _used(raw.columns, source, bant) if c != outcome_column]
    typed = type_table(
        raw[keep],
        "deals",
        str(deals_cfg.path),
        declared,
        source.missing_values,
        source.max_levels,
        _bounds(source),
    )
    frame = typed.frame
    unread = typed.reasons.copy()
    id_order = None
    if order is not None and order == deals_cfg.id:
        # A sequential id: text as an id, its values (number or date) the order.
        id_order = _id_order(source, raw, unread)
    elif order is not None:
        _order_kind(source, typed.kinds[order].kind)
    outcome = _deals_outcome(source, tables)
    reasons = _deal_reasons(raw, frame, unread, outcome, source)
    valid = pd.isna(reasons)
    frame, labels = frame[valid], outcome.outcome[valid]
    if id_order is not None:
        id_order = id_order[valid]
    kinds = dict(typed.kinds)
    rejects = [rejected_rows(raw, "deals", reasons), outcome.rejects]
    unmatched: dict[str, int] = {}
    for name, join in joins(source).items():
        rows, join_kinds, join_rejects = _load_join(
            source, name, join, tables[name], bant
        )
        keys = _key_text(raw.loc[frame.index, join.key], source)
        joined = rows.reindex(keys.to_numpy()).set_axis(frame.index)
        unmatched[name] = int((~keys.isin(rows.index)).sum())
        frame = pd.concat([frame, joined], axis=1)
        kinds |= join_kinds
        rejects.append(join_rejects)
    candidates, excluded = _candidates(list(frame.columns), kinds, source)
    read = set(bant.columns()) if bant is not None else set()
    _check_clash(read, source)
    taken = {*candidates, *META_COLUMNS, *source.roles().values()}
    bant_only = sorted((read - taken) & set(frame.columns))
    labelled = pd.concat(
        [_meta(frame, labels, source, id_order), frame[[*candidates, *bant_only]]],
        axis=1,
    ).reset_index(drop=True)
    activities = None
    if source.tables.activities is not None:
        activities, activity_rejects = _load_activities(
            source, tables["activities"], labelled["deal_id"]
        )
        rejects.append(activity_rejects)
    all_rejects = concat_rejects(rejects)
    return Deals(
        frame=labelled,
        kinds={c: k for c, k in kinds.items() if c in frame.columns},
        candidates=candidates,
        excluded=excluded,
        activities=activities,
        rejects=all_rejects,
        summary=_summary(labelled, tables, all_rejects, unmatched, activities)
        | outcome.summary,
    )


def _summary(
    frame: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    rejects: pd.DataFrame,
    unmatched: dict[str, int],
    activities: pd.DataFrame | None,
) -> dict[str, Any]:
    counts = frame["outcome"].value_counts()
    by_table = rejects["table"].value_counts() if len(rejects) else pd.Series()
    return {
        "rows_in": len(tables["deals"]),
        "deals": len(frame),
        "rejected": int(by_table.get("deals", 0)),
        "won": int(counts.get("won", 0)),
        "lost": int(counts.get("lost", 0)),
        "open": int(counts.get("open", 0)),
        "accounts_in": len(tables["accounts"]) if "accounts" in tables else 0,
        "accounts_rejected": int(by_table.get("accounts", 0)),
        "deals_without_account": unmatched.get("accounts", 0),
        "activities_in": len(tables["activities"]) if "activities" in tables else 0,
        "activities": 0 if activities is None else len(activities),
        "activities_rejected": int(by_table.get("activities", 0)),
    } | {
        count: value
        for name, n in unmatched.items()
        if name != "accounts"
        for count, value in (
            (f"{name}_in", len(tables[name])),
            (f"{name}_rejected", int(by_table.get(name, 0))),
            (f"deals_without_{name}", n),
        )
    }


# --- lead rows: the deals as the export holds them ----------------------------------


def source_names(source: SourceConfig) -> dict[str, str]:
    """META column -> the source column it came from, for the roles that exist
    (the outcome excepted: lead rows carry no outcome)."""
    names = _meta_sources(source)
    if names["order"] == names["deal_id"]:
        names["order"] = None  # an order that is the id: one column of the export
    return {
        meta: column for meta, column in names.items() if column and meta != "outcome"
    }


def lead_rows(
    frame: pd.DataFrame, source: SourceConfig, columns: Iterable[str] | None = None
) -> pd.DataFrame:
    """Labelled deals as rows of the export: roles under the source's column names,
    then the other columns (all, or ``columns`` in that order); index kept."""
    roles = source_names(source)
    unused = [c for c in META_COLUMNS if c in frame and c not in roles]
    rows = frame.drop(columns=unused).rename(columns=roles)
    return rows if columns is None else rows[list(columns)]


def source_activities(log: pd.DataFrame, source: SourceConfig) -> pd.DataFrame:
    """An activity log (deal_id, timestamp, activity_type) under the source's
    column names, as the export holds it."""
    table = source.tables.activities
    if table is None:
        raise ConfigError("source.tables.activities: this source has no activity log")
    names = dict(
        zip(ACTIVITY_COLUMNS, (table.key, table.timestamp, table.type), strict=True)
    )
    return log.rename(columns=names)


# --- the validated folder -----------------------------------------------------------


def write_deals(deals: Deals, out_dir: Path, rejects_path: Path) -> None:
    """Write the labelled deals, the activity log and what is known of the columns
    into ``out_dir``, and every rejected row to ``rejects_path`` (each atomically)."""
    write_parquet(deals.frame, out_dir / DEALS_FILE)
    log = deals.activities
    if log is None:
        log = pd.DataFrame(
            {
                "deal_id": pd.Series(dtype="string"),
                "timestamp": pd.Series(dtype=TIME_DTYPE),
                "activity_type": pd.Series(dtype="string"),
            }
        )
    write_parquet(log, out_dir / ACTIVITIES_FILE)
    described = {
        "has_activities": deals.activities is not None,
        "candidates": list(deals.candidates),
        "excluded": deals.excluded,
        "kinds": [kind.as_dict() for kind in deals.kinds.values()],
        "summary": deals.summary,
    }
    write_json(described, out_dir / SOURCE_FILE)
    write_csv(deals.rejects, rejects_path)


def read_deals(folder: Path, rejects_path: Path | None = None) -> Deals:
    """The labelled deals :func:`write_deals` wrote."""
    path = folder / SOURCE_FILE
    if not path.exists():
        raise ContractError(
            f"{folder}: no validated deals here; run `dvc repro` (or `lead-ml "
            "validate`) first"
        )
    described = json.loads(path.read_text())
    kinds = {k["column"]: ColumnKind(**k) for k in described["kinds"]}
    activities = None
    if described["has_activities"]:
        activities = pd.read_parquet(folder / ACTIVITIES_FILE)
    rejects = (
        pd.read_csv(rejects_path, dtype=str, keep_default_na=False, na_values=[""])
        if rejects_path is not None and rejects_path.exists()
        else concat_rejects([])
    )
    return Deals(
        frame=pd.read_parquet(folder / DEALS_FILE),
        kinds=kinds,
        candidates=tuple(described["candidates"]),
        excluded=described["excluded"],
        activities=activities,
        rejects=rejects,
        summary=described["summary"],
    )
