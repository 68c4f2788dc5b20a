"""A source's tables to labelled deals: one loader for the synthetic CRM and exports.

The ``source`` section of params.yaml names the deals table (id, optional created and
closed dates, order, amount), the outcome column and its won / lost (and optionally
open) values, an optional accounts table joined on a key, and an optional activity
log. :func:`load_deals` reads the tables `lead-ml read` copied, gives every column its
kind (:func:`lead_ml.schema.type_table`), labels each deal, joins the accounts and
reads the activity log. Nothing is dropped silently: a deal with no id, a repeated
id, a value that does not read as its kind or lies outside its bounds, an outcome
value that is not listed, a closed deal with no created date (or order value), or one
closed before it was created is rejected with one reason; so is an account row
repeating an account id, and an activity whose deal is unknown, whose time stamp does
not read or that has no type. ``rows in = deals + rejected`` for every table.

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
    SourceConfig,
)
from lead_ml.schema import ColumnKind, id_text, type_table
from lead_ml.tables import (
    as_text,
    atomic_path,
    close_match,
    concat_rejects,
    convert,
    duplicate_reasons,
    first_reason,
    no_reasons,
    not_read_reasons,
    quote_value,
    read_header,
    read_table,
    rejected_rows,
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


def copy_table(
    table: DealsTable | AccountsTable | ActivitiesTable, name: str, out: Path
) -> int:
    """Copy one source table to ``out`` as Parquet (a Parquet file byte for byte, a
    CSV with every cell as text); return its rows. ContractError when it cannot be
    read."""
    frame = read_table(table.path, table_key(name))
    with atomic_path(out) as partial:
        if table.path.suffix.lower() == ".parquet":
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


def _missing(key: str, column: str, where: str, header: list[str]) -> str:
    return f"{key}: no column {column!r} in {where}{close_match(column, header)}"


def check_columns(
    source: SourceConfig, bant: BantConfig | None = None
) -> dict[str, list[str]]:
    """Check every column the source section (and the BANT rule) names against the
    files' headers, reading no rows. Returns each table's columns; raises
    ConfigError listing every key that names a column the files lack (with the
    closest match), or ContractError when a file cannot be read."""
    tables = source.tables
    headers = {
        name: read_header(table.path, table_key(name))
        for name, table in tables.present().items()
    }
    deals = headers["deals"]
    problems: list[str] = []
    account_columns: list[str] = []
    if tables.accounts is not None:
        accounts, header = tables.accounts, headers["accounts"]
        where = str(accounts.path)
        if accounts.id_column not in header:
            key = "source.tables.accounts." + ("id" if accounts.id else "key")
            problems.append(_missing(key, accounts.id_column, where, header))
        for column in accounts.columns or []:
            if column not in header:
                key = "source.tables.accounts.columns"
                problems.append(_missing(key, column, where, header))
        account_columns = _account_columns(accounts, header)
        both = sorted(set(deals) & set(account_columns) - {accounts.key})
        if both:
            problems.append(
                f"source.tables.accounts.columns: {both} are in both "
                f"{tables.deals.path} and {accounts.path}; list the account columns "
                "to join without them"
            )
    if tables.activities is not None:
        log, header = tables.activities, headers["activities"]
        for key in ("key", "timestamp", "type"):
            column = getattr(log, key)
            if column not in header:
                where = str(log.path)
                problems.append(
                    _missing(f"source.tables.activities.{key}", column, where, header)
                )
    for key, column in source.roles().items():
        if column not in deals:
            problems.append(_missing(key, column, str(tables.deals.path), deals))
    where = " or ".join(str(t.path) for t in (tables.deals, tables.accounts) if t)
    for key, column in _named_columns(source, bant):
        if column not in deals and column not in account_columns:
            problems.append(_missing(key, column, where, [*deals, *account_columns]))
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


def _used(columns: Iterable[str], source: SourceConfig, bant: BantConfig) -> list[str]:
    """Columns to read: all but forbidden and ignored ones (unless BANT reads them)."""
    read = set(bant.columns())
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
        wanted = getattr(cfg, key)
        if not text.isin(wanted).any():
            counts = text.value_counts(dropna=False).head(12)
            seen = ", ".join(f"{v!r} ({n:,})" for v, n in counts.items())
            raise ContractError(
                f"source.outcome.{key}: no deal in {source.tables.deals.path} has "
                f"{column} in {wanted}; its values are: {seen}"
            )
    won = text.isin(cfg.won).fillna(False).to_numpy(bool)
    lost = text.isin(cfg.lost).fillna(False).to_numpy(bool)
    outcome = pd.Series("open", index=values.index, dtype="string")
    outcome[won], outcome[lost] = "won", "lost"
    unlisted = np.zeros(len(values), dtype=bool)
    if cfg.open is not None:
        unlisted = ~(won | lost | text.isin(cfg.open).fillna(False).to_numpy(bool))
    return outcome, unlisted


def _outcome_reasons(
    values: pd.Series, source: SourceConfig
) -> Callable[[np.ndarray], list[str]]:
    cfg = source.outcome
    listed = ", ".join([*cfg.won, *cfg.lost, *(cfg.open or [])])

    def messages(rows: np.ndarray) -> list[str]:
        return [
            f"{cfg.column} {quote_value(v)} is not one of {listed}"
            for v in _outcome_text(values).iloc[rows].tolist()
        ]

    return messages


def _deal_reasons(
    raw: pd.DataFrame,
    typed: pd.DataFrame,
    reasons: np.ndarray,
    outcome: pd.Series,
    unlisted: np.ndarray,
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
    first_reason(
        checked, unlisted, _outcome_reasons(raw[source.outcome.column], source)
    )
    closed = outcome.isin(["won", "lost"]).to_numpy()
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


def _load_accounts(
    source: SourceConfig, raw: pd.DataFrame, bant: BantConfig
) -> tuple[pd.DataFrame, dict[str, ColumnKind], pd.DataFrame]:
    """Typed accounts (first row per id kept, indexed by id), kinds and rejects."""
    table = source.tables.accounts
    assert table is not None
    columns = _used(_account_columns(table, list(raw.columns)), source, bant)
    keep = raw.loc[:, [table.id_column, *columns]]
    declared: dict[str, Kind] = {**source.types, table.id_column: "category"}
    typed = type_table(
        keep,
        "accounts",
        str(table.path),
        declared,
        source.missing_values,
        source.max_levels,
        _bounds(source),
    )
    ids = id_text(typed.frame[table.id_column])
    reasons = no_reasons(len(raw))
    first_reason(reasons, ids.isna().to_numpy(), f"{table.id_column} is missing")
    unread = pd.notna(typed.reasons) & pd.isna(reasons)
    reasons[unread] = typed.reasons[unread]
    repeated = ids.duplicated(keep="first").to_numpy() & ids.notna().to_numpy()
    first_reason(reasons, repeated, f"repeated {table.id_column}: first row kept")
    valid = pd.isna(reasons)
    accounts = typed.frame[columns][valid].set_axis(ids[valid].to_numpy())
    kinds = {c: typed.kinds[c] for c in columns}
    return accounts, kinds, rejected_rows(raw, "accounts", reasons)


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
    typed: pd.DataFrame, outcome: pd.Series, source: SourceConfig
) -> pd.DataFrame:
    deals = source.tables.deals

    def column(name: str | None, dtype: Any) -> pd.Series:
        if name is None:
            return pd.Series(None, index=typed.index, dtype=dtype)
        return typed[name].astype(dtype)

    won = (outcome == "won").astype("Int8").mask(outcome == "open")
    order_dtype = "float64"
    if deals.order is not None and pd.api.types.is_datetime64_any_dtype(
        typed[deals.order].dtype
    ):
        order_dtype = str(TIME_DTYPE)
    return pd.DataFrame(
        {
            "deal_id": id_text(typed[deals.id]),
            "created_at": column(deals.created, TIME_DTYPE),
            "closed_at": column(deals.closed, TIME_DTYPE),
            "order": column(deals.order, order_dtype),
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
        "outcome": source.outcome.column,
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


def _order_kind(source: SourceConfig, kinds: dict[str, ColumnKind]) -> None:
    order = source.tables.deals.order
    if order is not None and kinds[order].kind not in ("number", "date"):
        raise ConfigError(
            f"source.tables.deals.order: column {order!r} holds {kinds[order].kind} "
            "values; it must be numbers or dates that put deals in time order "
            "(declare its kind under source.types if it is one)"
        )


def load_deals(
    source: SourceConfig, bant: BantConfig, tables: dict[str, pd.DataFrame]
) -> Deals:
    """The labelled deals of a source's tables (see :class:`Deals`)."""
    deals_cfg = source.tables.deals
    raw = tables["deals"]
    declared: dict[str, Kind] = {**source.types, **_role_kinds(source)}
    order = deals_cfg.order
    if order is not None and order == deals_cfg.id and order not in source.types:
        declared.pop(order)  # a sequential id: its values decide the order's kind
    keep = [c for c in _used(raw.columns, source, bant) if c != source.outcome.column]
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
    _order_kind(source, typed.kinds)
    outcome, unlisted = _outcomes(raw[source.outcome.column], source)
    reasons = _deal_reasons(raw, frame, typed.reasons, outcome, unlisted, source)
    valid = pd.isna(reasons)
    frame, outcome = frame[valid], outcome[valid]
    kinds = dict(typed.kinds)
    rejects = [rejected_rows(raw, "deals", reasons)]
    no_account = 0
    if source.tables.accounts is not None:
        accounts, account_kinds, account_rejects = _load_accounts(
            source, tables["accounts"], bant
        )
        keys = frame[source.tables.accounts.key]
        joined = accounts.reindex(keys.to_numpy()).set_axis(frame.index)
        no_account = int((~keys.isin(accounts.index)).sum())
        frame = pd.concat([frame, joined], axis=1)
        kinds |= account_kinds
        rejects.append(account_rejects)
    candidates, excluded = _candidates(list(frame.columns), kinds, source)
    read = set(bant.columns())
    _check_clash(read, source)
    taken = {*candidates, *META_COLUMNS, *source.roles().values()}
    bant_only = sorted((read - taken) & set(frame.columns))
    labelled = pd.concat(
        [_meta(frame, outcome, source), frame[[*candidates, *bant_only]]], axis=1
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
        summary=_summary(labelled, tables, all_rejects, no_account, activities),
    )


def _summary(
    frame: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    rejects: pd.DataFrame,
    no_account: int,
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
        "deals_without_account": no_account,
        "activities_in": len(tables["activities"]) if "activities" in tables else 0,
        "activities": 0 if activities is None else len(activities),
        "activities_rejected": int(by_table.get("activities", 0)),
    }


# --- lead rows: the deals as the export holds them ----------------------------------


def source_names(source: SourceConfig) -> dict[str, str]:
    """META column -> the source column it came from, for the roles that exist
    (the outcome excepted: lead rows carry no outcome)."""
    names = _meta_sources(source)
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
