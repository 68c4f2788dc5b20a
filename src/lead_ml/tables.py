"""Reading tables and converting their values: one copy of each, for every source.

Files are CSV (every cell read as text, only empty cells missing: "NA" may be a
region and "None" an answer), an Excel sheet (its cells as the same text) or
Parquet (typed). A :class:`Dialect` says how a file is read: the separator
(detected from the first lines among ``,`` ``;`` tab ``|`` when not set; any line
ends, double-quoted fields), the encoding, the decimal mark (with ``,`` a number
written 1.234,5 reads as 1234.5), the sheet, and an optional row-number id column
(the file's 1-based row). Every reader (the whole table, its header, its chunks)
reads a file the same way, in training and in scoring alike.

Each converter turns a column into its kind's dtype and says which present values
did not convert, so that a bad value rejects its row instead of being silently read
as missing. Blank text and the source's declared placeholders are missing before any
conversion: blank is never read as "no" or 0.

>>> text = as_text(pd.Series([" yes", "", "Select", " select ", None]), ["Select"])
>>> text.tolist()
['yes', <NA>, <NA>, <NA>, <NA>]
>>> numbers, failed = convert(pd.Series(["1.5", "n/a", ""]), "number")
>>> numbers.tolist(), failed.tolist()
([1.5, nan, nan], [False, True, False])
>>> convert(pd.Series(["Yes", "no", None]), "evidence")[0].tolist()
['yes', 'no', <NA>]
>>> infer_kind(pd.Series(["2024-01-31", None]), max_levels=50)
('date', '')
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import os
import re
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lead_ml.vocab import (
    NO_WORDS,
    REJECT_COLUMNS,
    TIME_DTYPE,
    YES_WORDS,
    ContractError,
    Kind,
)

FORMATS = (".parquet", ".csv")
#: Delimited text read like a CSV file (the dialect is detected or set).
TEXT_FORMATS = (".csv", ".tsv")
#: Every format a source table may come in.
READ_FORMATS = (".parquet", *TEXT_FORMATS, ".xlsx")
#: Longest input value quoted in a reject reason; the rejects file keeps it whole.
SHOWN_CHARS = 60
#: A share of readable values above which a mixed column is reported as unsafe.
UNSAFE_SHARE = 0.9
#: How a kind is named in messages about values that do not read as it.
NOUNS: dict[str, str] = {
    "number": "a number",
    "date": "an ISO 8601 date",
    "bool": "yes/no",
    "evidence": "yes/no",
}
#: Bytes of a text file the dialect is detected from.
SNIFF_BYTES = 64 * 1024
#: How separators are named in messages.
SEP_NAMES = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}
SEP_WORDS = {",": "a comma", ";": "a ';'", "\t": "a tab", "|": "a '|'"}


# --- the dialect --------------------------------------------------------------------


@dataclass(frozen=True)
class Dialect:
    """How a table's file is read: the CSV separator (None: detected among
    :data:`lead_ml.config.SEPARATORS`), text encoding, decimal mark, the sheet of
    an .xlsx file (None: the first), and ``row_number``: the name of a column to
    add holding each row's 1-based number (the export has no id column). ``key``
    is the params key of the table (``source.tables.deals``), named by messages.

    >>> Dialect(sep=";").resolve(Path("x.parquet")).sep
    ';'
    """

    sep: str | None = None
    encoding: str = "utf-8"
    decimal: str = "."
    sheet: str | None = None
    row_number: str | None = None
    key: str = ""

    @classmethod
    def of(cls, table: Any, name: str) -> Dialect:
        """The dialect a source table's settings give (``name``: its params name)."""
        row = table.id if getattr(table, "row_number", False) else None
        return cls(
            table.sep,
            table.encoding,
            table.decimal,
            table.sheet,
            row,
            f"source.tables.{name}",
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON (a scorer bundle keeps the deals' and activities' dialect)."""
        return {
            "sep": self.sep,
            "encoding": self.encoding,
            "decimal": self.decimal,
            "sheet": self.sheet,
            "row_number": self.row_number,
            "key": self.key,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> Dialect:
        """The dialect :meth:`as_dict` wrote (the default for None); ContractError
        for anything else."""
        if not raw:
            return cls()
        names = {f.name for f in fields(cls)}
        bad = [
            k for k, v in raw.items() if k not in names or not isinstance(v, str | None)
        ]
        if (
            bad
            or raw.get("sep") not in (None, *SEP_NAMES)
            or raw.get("decimal", ".") not in (".", ",")
        ):
            raise ContractError(f"reading: not a dialect ({raw!r})")
        return cls(**raw)

    def for_input(self, path: Path, what: str = "the input") -> Dialect:
        """This dialect, resolved, for a file of leads to score: a file that holds
        the row-number id column already (lead rows written back out) keeps it."""
        resolved = self.resolve(path, what)
        if not resolved.row_number:
            return resolved
        names = read_header(path, what, replace(resolved, row_number=None))
        if resolved.row_number in names:
            return replace(resolved, row_number=None)
        return resolved

    def resolve(self, path: Path, what: str = "the input") -> Dialect:
        """This dialect with the separator detected from a text file's first lines
        when it is not set (``,`` for other formats)."""
        if self.sep is not None:
            return self
        if Path(path).suffix.lower() not in TEXT_FORMATS:
            return replace(self, sep=",")
        return replace(self, sep=sniff(Path(path), self.encoding, what).sep)


@dataclass(frozen=True)
class Sniffed:
    """What the first lines of a text file look like."""

    sep: str
    header_sep: str
    line_end: str
    quoted: bool


def _sample(path: Path, encoding: str) -> str:
    with open(path, "rb") as handle:
        raw = handle.read(SNIFF_BYTES)
    text = raw.decode(encoding, errors="replace")
    return text.removeprefix("\ufeff")


def _fields(sample: str, sep: str) -> list[int]:
    """Fields per record of the sample (its last, maybe cut, record left out)."""
    rows = list(csv.reader(io.StringIO(sample, newline=""), delimiter=sep))
    if len(sample) >= SNIFF_BYTES - 8 and len(rows) > 1:
        rows = rows[:-1]
    return [len(row) for row in rows if row]


def sniff(path: Path, encoding: str = "utf-8", what: str = "the input") -> Sniffed:
    """The separator a text file's first lines are written with: the one among
    ``,`` ``;`` tab ``|`` that splits the header into the most fields with every
    sampled record as wide as it (``,`` when none splits anything), the
    separator its header alone suggests, the line ends and whether fields are
    quoted."""
    with readable(path, what, encoding):
        sample = _sample(path, encoding)
    first = sample.splitlines()[0] if sample.strip() else ""
    best, best_score = ",", (0.0, 1)
    header_sep, header_fields = ",", 1
    for sep in (",", ";", "\t", "|"):
        counts = _fields(sample, sep)
        if not counts or counts[0] < 2:
            continue
        if first.count(sep) + 1 > header_fields:
            header_sep, header_fields = sep, first.count(sep) + 1
        same = sum(n == counts[0] for n in counts) / len(counts)
        score = (same, counts[0])
        if score > best_score:
            best, best_score = sep, score
    line_end = "CRLF" if "\r\n" in sample else "CR" if "\r" in sample else "LF"
    return Sniffed(best, header_sep, line_end, '"' in sample)


def describe(path: Path, dialect: Dialect) -> str:
    """How a file is read, for the read stage's output and error messages, e.g.
    ``sep ';' (detected), CRLF line ends, encoding utf-8, decimal ','``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        parts = ["Parquet"]
    elif suffix == ".xlsx":
        parts = [
            f"Excel sheet {dialect.sheet!r}" if dialect.sheet else "Excel, first sheet"
        ]
    else:
        sniffed = sniff(path, dialect.encoding)
        sep = dialect.sep or sniffed.sep
        how = "set" if dialect.sep else "detected"
        parts = [f"sep {SEP_NAMES[sep]} ({how})", f"{sniffed.line_end} line ends"]
        if sniffed.quoted:
            parts.append("quoted fields")
        parts += [f"encoding {dialect.encoding}", f"decimal {dialect.decimal!r}"]
    if dialect.row_number:
        parts.append(f"id {dialect.row_number!r} = row number")
    return ", ".join(parts)


def header_hint(path: Path, dialect: Dialect) -> str:
    """For a column missing from a text file's header: how the file was read and,
    when its header looks split by another separator, which setting to change."""
    path = Path(path)
    if path.suffix.lower() not in TEXT_FORMATS:
        return ""
    try:
        sniffed = sniff(path, dialect.encoding)
    except ContractError:
        return ""
    used = dialect.sep or sniffed.sep
    how = "" if dialect.sep else ", detected"
    hint = f" (read with sep {SEP_NAMES[used]}{how}"
    if sniffed.header_sep != used:
        key = dialect.key or "source.tables.<table>"
        hint += (
            f"; the header looks {SEP_NAMES[sniffed.header_sep]}-separated: set "
            f"{key}.sep"
        )
    return hint + ")"


# --- reading --------------------------------------------------------------------


def _suffix(path: Path, what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in READ_FORMATS:
        raise ContractError(
            f"{path} ({what}): cannot read a {suffix or 'suffix-less'!r} file; "
            "export it as .csv, .xlsx or .parquet"
        )
    return suffix


@contextmanager
def readable(path: Path, what: str, encoding: str = "utf-8") -> Iterator[None]:
    """Turn a file that cannot be read into a ContractError naming it and why.

    pyarrow reports a corrupt Parquet page or footer as a plain OSError and bad
    text as ArrowInvalid: every such failure becomes one line naming the file.
    """
    try:
        yield
    except ContractError:
        raise
    except FileNotFoundError:
        raise ContractError(
            f"{path} ({what}): no such file; check the path (relative to the project "
            "root)"
        ) from None
    except IsADirectoryError:
        raise ContractError(
            f"{path} ({what}): a folder, not a file; give the path of a .csv or "
            ".parquet file"
        ) from None
    except pd.errors.EmptyDataError:
        raise ContractError(
            f"{path} ({what}): empty (not even a header); export it again"
        ) from None
    except UnicodeDecodeError:
        raise ContractError(_not_utf8(path, what, encoding)) from None
    except (zipfile.BadZipFile, KeyError) as error:
        if isinstance(error, KeyError) and path.suffix.lower() != ".xlsx":
            raise
        raise ContractError(
            f"{path} ({what}): not a valid .xlsx workbook; save it again from "
            "Excel as .xlsx (or export the sheet as CSV)"
        ) from None
    except (OSError, ValueError, pa.ArrowException) as error:
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0]
        if "invalid UTF8" in detail or "decode" in detail.lower():
            raise ContractError(_not_utf8(path, what, encoding)) from None
        if detail == "Empty CSV file":
            raise ContractError(
                f"{path} ({what}): empty (not even a header); export it again"
            ) from None
        raise ContractError(
            f"{path} ({what}): cannot read it ({detail}); check that it is a valid "
            f"{path.suffix.lower().lstrip('.')} file (export it again if it was cut "
            "or damaged)"
        ) from None


def _not_utf8(path: Path, what: str, encoding: str = "utf-8") -> str:
    if encoding.replace("-", "").lower() != "utf8":
        return (
            f"{path} ({what}): not {encoding} text; set the table's encoding to the "
            "one it was saved in"
        )
    return (
        f"{path} ({what}): not UTF-8 text; save it as 'CSV UTF-8', or set the "
        "table's encoding (e.g. source.tables.deals.encoding: cp1252) and try again"
    )


#: Digit-group separators of numbers written with a decimal comma (a point, a
#: space, a no-break space), as real characters: pandas and pyarrow (RE2) both
#: read them in a character class.
GROUPS = ". \u00a0\u202f"
#: A number written with a decimal comma: 1234,5 or 1.234,5 or 1 234,5 (or 1.234).
DECIMAL_COMMA = rf"^\s*[+-]?(?:\d{{1,3}}(?:[{GROUPS}]\d{{3}})+|\d+)(?:,\d+)?\s*$"


def decimal_text(text: pd.Series) -> pd.Series:
    """Numbers written with a decimal comma as plain numbers (1.234,5 -> 1234.5);
    other cells as they are."""
    values = text.astype("string")
    marked = values.str.contains(f"[,{GROUPS}]", regex=True)
    match = (values.str.match(DECIMAL_COMMA) & marked).fillna(False)
    if not match.any():
        return text
    plain = (
        values.str.strip()
        .str.replace(f"[{GROUPS}]", "", regex=True)
        .str.replace(",", ".", regex=False)
    )
    return values.mask(match.to_numpy(bool), plain)


def _with_row_numbers(frame: pd.DataFrame, name: str, first: int) -> pd.DataFrame:
    numbers = np.arange(first + 1, first + 1 + len(frame)).astype(str)
    frame.insert(0, name, pd.Series(numbers, index=frame.index, dtype="string"))
    return frame


def _read_csv(path: Path, dialect: Dialect) -> Any:
    frame = pd.read_csv(
        path,
        dtype=str,
        keep_default_na=False,
        na_values=[""],
        sep=dialect.sep,
        encoding=dialect.encoding,
    )
    if dialect.decimal == ",":
        for column in frame.columns:
            frame[column] = decimal_text(frame[column])
    return frame


def _cell_text(value: Any) -> str | None:
    """An Excel cell as CSV text: whole numbers without a point, dates ISO 8601."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        if value.time() == datetime.min.time():
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    return text if text.strip() else None


def _sheet(workbook: Any, path: Path, what: str, dialect: Dialect) -> Any:
    if dialect.sheet is None:
        return workbook.worksheets[0]
    if dialect.sheet not in workbook.sheetnames:
        key = dialect.key or "source.tables.<table>"
        raise ContractError(
            f"{path} ({what}): no sheet {dialect.sheet!r}; its sheets are "
            f"{', '.join(map(repr, workbook.sheetnames))}: set {key}.sheet"
        )
    return workbook[dialect.sheet]


def _xlsx_rows(
    path: Path, what: str, dialect: Dialect, header_only: bool = False
) -> tuple[list[str], list[list[str | None]]]:
    """The header and the rows (cells as text; entirely empty rows left out) of
    an .xlsx file's sheet."""
    import openpyxl

    with readable(path, what):
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        with readable(path, what):
            rows = _sheet(workbook, path, what, dialect).iter_rows(values_only=True)
            first = next(rows, None)
            if first is None:
                raise ContractError(
                    f"{path} ({what}): the sheet is empty (not even a header)"
                )
            cells = [_cell_text(v) for v in first]
            while cells and cells[-1] is None:
                cells.pop()
            if None in cells:
                raise ContractError(
                    f"{path} ({what}): header column {cells.index(None) + 1} has no "
                    "name; give every column a name"
                )
            names = [str(c) for c in cells]
            body: list[list[str | None]] = []
            if header_only:
                return names, body
            for number, row in enumerate(rows, start=2):
                values = [_cell_text(v) for v in row]
                if all(v is None for v in values):
                    continue
                if any(v is not None for v in values[len(names) :]):
                    raise ContractError(
                        f"{path} ({what}): sheet row {number} has values beyond "
                        f"the header's {len(names)} columns; name those columns "
                        "or clear them"
                    )
                body.append(values[: len(names)] + [None] * (len(names) - len(values)))
    finally:
        workbook.close()
    return names, body


def _read_xlsx(path: Path, what: str, dialect: Dialect) -> pd.DataFrame:
    names, body = _xlsx_rows(path, what, dialect)
    frame = pd.DataFrame(body, columns=names, dtype=object)
    return frame.astype("string").astype(object).where(frame.notna(), None)


def _written_names(
    path: Path, suffix: str, dialect: Dialect, what: str = "the input"
) -> list[str]:
    """The column names as the file writes them: pandas renames a repeated CSV
    header ``a`` to ``a.1``, and pyarrow cannot read a repeated Parquet name."""
    if suffix == ".parquet":
        return list(pq.read_schema(path).names)
    if suffix == ".xlsx":
        return _xlsx_rows(path, what, dialect, header_only=True)[0]
    first = pd.read_csv(
        path,
        header=None,
        nrows=1,
        dtype=str,
        keep_default_na=False,
        sep=dialect.sep,
        encoding=dialect.encoding,
    )
    return [str(name) for name in first.iloc[0]] if len(first) else []


def _refuse_repeated(names: list[str], path: Path, what: str) -> None:
    index = pd.Index(names)
    repeated = index[index.duplicated()]
    if len(repeated):
        raise ContractError(
            f"{path} ({what}): column {repeated[0]!r} appears twice; give each "
            "column its own name and export it again"
        )


def _refuse_row_column(
    names: list[str], path: Path, what: str, dialect: Dialect
) -> None:
    if dialect.row_number and dialect.row_number in names:
        key = dialect.key or "source.tables.deals"
        raise ContractError(
            f"{path} ({what}): the row-number id {dialect.row_number!r} is already a "
            f"column of the file; name it otherwise ({key}.id: {{row_number: true, "
            "name: ...}) or use that column as the id"
        )


def read_table(path: Path, what: str, dialect: Dialect | None = None) -> pd.DataFrame:
    """A whole CSV (cells as text), Excel sheet (cells as text) or Parquet table;
    ContractError if it cannot be read, has no rows, repeats a column name or
    (CSV) holds a row with more or fewer fields than its header. ``what`` (a params
    key such as ``source.tables.deals.path``) is named by the errors; ``dialect``
    says how to read it (default: CSV dialect detected)."""
    path = Path(path)
    suffix = _suffix(path, what)
    dialect = (dialect or Dialect()).resolve(path, what)
    with readable(path, what, dialect.encoding):
        names = _written_names(path, suffix, dialect, what)
    _refuse_repeated(names, path, what)
    _refuse_row_column(names, path, what, dialect)
    if suffix in TEXT_FORMATS:
        _refuse_malformed(path, what, names[0] if names else "", dialect)
    with readable(path, what, dialect.encoding):
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix == ".xlsx":
            frame = _read_xlsx(path, what, dialect)
        else:
            frame = _read_csv(path, dialect)
    if frame.empty:
        raise ContractError(f"{path} ({what}): the table has no rows; export it again")
    if dialect.row_number:
        frame = _with_row_numbers(frame, dialect.row_number, 0)
    return frame


def read_header(path: Path, what: str, dialect: Dialect | None = None) -> list[str]:
    """The column names of a file (with the row-number id first when the dialect
    adds one), reading no rows; ContractError when it cannot be read or repeats a
    name."""
    path = Path(path)
    suffix = _suffix(path, what)
    dialect = (dialect or Dialect()).resolve(path, what)
    with readable(path, what, dialect.encoding):
        names = _written_names(path, suffix, dialect, what)
    _refuse_repeated(names, path, what)
    _refuse_row_column(names, path, what, dialect)
    return [dialect.row_number, *names] if dialect.row_number else names


def count_rows(path: Path) -> int | None:
    """Rows in a Parquet file from its footer; None for CSV (unknown until read)."""
    if _suffix(path, "the input") != ".parquet":
        return None
    with readable(path, "the input"):
        return int(pq.ParquetFile(path).metadata.num_rows)


#: Bytes of CSV parsed at a time; a single row must fit in one block.
CSV_BLOCK_BYTES = 16 * 2**20
#: The block a CSV is read with first: pyarrow parses 1 MB blocks about twice as
#: fast as 16 MB ones (they stay in the caches). A file with a record longer than
#: that is read again with CSV_BLOCK_BYTES, from its first row.
CSV_FAST_BLOCK_BYTES = 2**20
#: pyarrow's message for a record longer than the parse block.
STRADDLING = "straddling object straddles two block boundaries"


@dataclass(eq=False)
class Chunk:
    """Consecutive rows of a file (``first_row``: the file's row number of the
    first, 0-based, header not counted), and the rows that could not be read
    (``malformed``: position in the chunk -> why). Those rows are in the chunk with
    every value missing, so that row numbers and counts stay those of the file."""

    table: pa.Table
    first_row: int
    malformed: dict[int, str]

    @cached_property
    def frame(self) -> pd.DataFrame:
        """The rows as a pandas frame (CSV cells as text)."""
        return self.table.to_pandas()

    def __len__(self) -> int:
        return self.table.num_rows


def read_chunks(
    path: Path, columns: list[str], chunk_rows: int, dialect: Dialect | None = None
) -> Iterator[Chunk]:
    """The named columns of a file, ``chunk_rows`` rows at a time, values as read
    (CSV and Excel cells as text, only empty cells missing). A CSV record with
    more or fewer fields than the header is kept as a malformed row, never guessed
    at. The dialect's row-number id, when among ``columns``, is each row's 1-based
    number in the file."""
    path = Path(path)
    dialect = (dialect or Dialect()).resolve(path)
    row = dialect.row_number if dialect.row_number in columns else None
    read = [c for c in columns if c != row]
    for chunk in _file_chunks(path, read, chunk_rows, dialect):
        if dialect.decimal == "," and path.suffix.lower() in TEXT_FORMATS:
            chunk = Chunk(_decimal_table(chunk.table), chunk.first_row, chunk.malformed)
        if row is not None:
            first = chunk.first_row + 1
            numbers = np.arange(first, first + len(chunk)).astype(str)
            table = chunk.table.add_column(0, row, pa.array(numbers, pa.string()))
            chunk = Chunk(table.select(columns), chunk.first_row, chunk.malformed)
        yield chunk


def _file_chunks(
    path: Path, columns: list[str], chunk_rows: int, dialect: Dialect
) -> Iterator[Chunk]:
    with readable(path, "the input", dialect.encoding):
        suffix = _suffix(path, "the input")
        if suffix == ".parquet":
            # pre_buffer (the default) keeps every range read until the iteration
            # ends: ~35 bytes a lead, 350 MB over 10 million. Local reads need no cache.
            parquet = pq.ParquetFile(path, pre_buffer=False)
            first = 0
            for batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns):
                yield Chunk(pa.Table.from_batches([batch]), first, {})
                first += batch.num_rows
            return
        if suffix == ".xlsx":
            frame = _read_xlsx(path, "the input", dialect)
            missing = [c for c in columns if c not in frame.columns]
            if missing:
                raise ContractError(f"{path}: no column(s) {', '.join(missing)}")
            table = pa.Table.from_pandas(
                frame[columns],
                preserve_index=False,
                schema=pa.schema([(c, pa.string()) for c in columns]),
            )
            for first in range(0, max(table.num_rows, 1), chunk_rows):
                part = table.slice(first, chunk_rows)
                if part.num_rows:
                    yield Chunk(part, first, {})
            return
        yield from _csv_chunks(path, columns, chunk_rows, dialect)


def _decimal_table(table: pa.Table) -> pa.Table:
    """Every text column with numbers written with a decimal comma made plain."""
    import pyarrow.compute as pc

    for position, name in enumerate(table.column_names):
        values = table.column(name)
        if not pa.types.is_string(values.type):
            continue
        match = pc.and_(
            pc.match_substring_regex(values, DECIMAL_COMMA),
            pc.match_substring_regex(values, f"[,{GROUPS}]"),
        )
        if not pc.any(match).as_py():
            continue
        plain = pc.replace_substring(
            pc.replace_substring_regex(
                pc.utf8_trim_whitespace(values), f"[{GROUPS}]", ""
            ),
            ",",
            ".",
        )
        table = table.set_column(
            position, name, pc.if_else(pc.fill_null(match, False), plain, values)
        )
    return table


@dataclass
class _Malformed:
    """CSV records the reader skipped (data row number -> reason), as reported."""

    reasons: dict[int, str] = field(default_factory=dict)
    #: The separator the file is read with, named by the advice.
    sep: str = ","

    def handler(self, row: Any) -> str:
        """pyarrow's invalid_row_handler: note the record, skip it."""
        if row.number < 2:  # unknown (-1), or the header itself: fail the read
            return "error"
        self.reasons[row.number - 2] = (
            f"malformed CSV line {row.number}: {row.actual_columns} field(s) where "
            f"the header has {row.expected_columns} ({quote_value(row.text)}); fix "
            f"the row in the export (a value holding {SEP_WORDS[self.sep]} must be "
            "quoted)"
        )
        return "skip"


def _csv_reader(
    path: Path,
    columns: list[str],
    malformed: _Malformed,
    dialect: Dialect,
    block_bytes: int | None = None,
) -> Any:
    import pyarrow.csv as pcsv

    # Serial reading numbers every record (a threaded reader may not); lines
    # are counted as records, the header being line 1 (blank lines skipped).
    return pcsv.open_csv(
        path,
        read_options=pcsv.ReadOptions(
            use_threads=False,
            block_size=block_bytes or CSV_BLOCK_BYTES,
            encoding=dialect.encoding,
        ),
        parse_options=pcsv.ParseOptions(
            delimiter=dialect.sep or ",",
            newlines_in_values=True,
            invalid_row_handler=malformed.handler,
        ),
        convert_options=pcsv.ConvertOptions(
            include_columns=columns,
            column_types=dict.fromkeys(columns, pa.string()),
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )


def _csv_chunks(
    path: Path, columns: list[str], chunk_rows: int, dialect: Dialect
) -> Iterator[Chunk]:
    """CSV chunks with malformed records put back in place as missing rows, read
    in CSV_FAST_BLOCK_BYTES blocks, or again in CSV_BLOCK_BYTES ones when a record
    is longer: the chunks already given are read again, alike (chunking depends on
    the rows only), and skipped."""
    given = 0
    blocks = sorted({min(CSV_FAST_BLOCK_BYTES, CSV_BLOCK_BYTES), CSV_BLOCK_BYTES})
    for block in blocks:
        try:
            for at, chunk in enumerate(
                _csv_blocks(path, columns, chunk_rows, dialect, block)
            ):
                if at >= given:
                    given += 1
                    yield chunk
            return
        except pa.ArrowInvalid as error:
            if block == blocks[-1] or STRADDLING not in str(error):
                raise


def _csv_blocks(
    path: Path, columns: list[str], chunk_rows: int, dialect: Dialect, block: int
) -> Iterator[Chunk]:
    """CSV chunks with malformed records put back in place as missing rows, parsed
    ``block`` bytes at a time.

    The reader skips a malformed record and reports its number; the good rows of a
    batch take the lowest row numbers no reported record holds, since every record
    before a batch's last row is parsed (and reported) before the batch is out.
    """
    malformed = _Malformed(sep=dialect.sep or ",")
    reader = _csv_reader(path, columns, malformed, dialect, block)
    pending: list[pa.RecordBatch] = []
    held, placed, first = 0, 0, 0  # rows pending, rows placed, first row pending
    for batch in reader:
        table = _with_malformed(batch, placed, malformed.reasons)
        placed += table.num_rows
        pending.append(table)
        held += table.num_rows
        while held >= chunk_rows:
            chunk, pending, held = _take(pending, chunk_rows, held)
            yield _chunk(chunk, first, malformed.reasons)
            first += chunk.num_rows
    tail = sorted(n for n in malformed.reasons if n >= placed)
    if tail:  # malformed records after the last good row
        schema = reader.schema
        nulls = pa.table({c: pa.nulls(len(tail), pa.string()) for c in schema.names})
        pending.append(nulls.to_batches()[0])
        held += len(tail)
    while held:
        chunk, pending, held = _take(pending, min(chunk_rows, held), held)
        yield _chunk(chunk, first, malformed.reasons)
        first += chunk.num_rows


def _with_malformed(
    batch: pa.RecordBatch, placed: int, reasons: dict[int, str]
) -> pa.RecordBatch:
    """The batch with a row of nulls at each malformed record among its rows
    (``placed``: the file's rows before it)."""
    skipped = np.array(sorted(n for n in reasons if n >= placed), dtype=np.int64)
    if not skipped.size:
        return batch
    # The k-th good row of the batch is the k-th row number from `placed` on
    # that no skipped record holds.
    span = np.arange(placed, placed + batch.num_rows + skipped.size)
    good = np.setdiff1d(span, skipped, assume_unique=True)[: batch.num_rows]
    last = good[-1] if good.size else placed - 1
    rows = np.arange(placed, last + 1)
    take = np.full(rows.size, -1, dtype=np.int64)
    take[good - placed] = np.arange(batch.num_rows)
    indices = pa.array(take, mask=take < 0)
    return batch.take(indices)


def _take(
    pending: list[pa.RecordBatch], n: int, held: int
) -> tuple[pa.Table, list[pa.RecordBatch], int]:
    """The first ``n`` pending rows as a table, and the batches left."""
    table = pa.Table.from_batches(pending)
    rest = table.slice(n)
    return table.slice(0, n), rest.to_batches(), held - n


def _chunk(table: pa.Table, first: int, reasons: dict[int, str]) -> Chunk:
    end = first + table.num_rows
    found = {n - first: reasons[n] for n in reasons if first <= n < end}
    return Chunk(table, first, found)


def _refuse_malformed(path: Path, what: str, column: str, dialect: Dialect) -> None:
    """ContractError naming the first CSV record whose field count is wrong."""
    malformed = _Malformed(sep=dialect.sep or ",")
    with readable(path, what, dialect.encoding):
        for _ in _csv_reader(path, [column] if column else [], malformed, dialect):
            pass
    if malformed.reasons:
        first = min(malformed.reasons)
        count = len(malformed.reasons)
        raise ContractError(
            f"{path} ({what}): {malformed.reasons[first]} ({count} such row(s) in all)"
        )


# --- converting values ----------------------------------------------------------


def as_text(values: pd.Series, missing: Iterable[str] = ()) -> pd.Series:
    """Trimmed text; blank cells and the declared placeholders (whatever their case
    and surrounding spaces: ``Unknown`` is ``unknown``) become missing."""
    text = values.astype("string").str.strip()
    placeholders = [p.strip().lower() for p in missing]
    gone = text.eq("")
    if placeholders:
        gone = gone | text.str.lower().isin(placeholders)
    return text.mask(gone.fillna(False))


def _present(values: pd.Series) -> np.ndarray:
    return values.notna().to_numpy(dtype=bool)


def _numbers(text: pd.Series) -> tuple[pd.Series, np.ndarray]:
    # Parsed once per distinct text and spread back (the same values as parsing
    # each): an export repeats its numbers, a few hundred distinct ones among
    # 50,000 rows, and parsing text was most of reading a CSV's number columns.
    codes, distinct = pd.factorize(text)
    once = pd.to_numeric(pd.Series(distinct, dtype=text.dtype), errors="coerce")
    parsed = np.append(once.astype("float64").to_numpy(float, na_value=np.nan), np.nan)
    floats = parsed[codes]  # a missing text (code -1) takes the NaN appended
    finite = np.isfinite(floats)
    out = pd.Series(np.where(finite, floats, np.nan), index=text.index)
    return out, _present(text) & ~finite


#: ISO 8601 as exported: a calendar date, then optionally a time (minutes,
#: seconds, a fraction) and a zone. Anything else (2025/03/20, 20250320, 2024-1-5,
#: a bare year) is refused rather than guessed at.
ISO_DATE = (
    r"^\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$"
)
#: Years read as dates; one outside (0001-01-01, 9999-12-31) is a sentinel for
#: "none" far more often than a real date, and rejects its row until declared.
YEARS = (1900, 2200)


def _dates(text: pd.Series) -> tuple[pd.Series, np.ndarray]:
    stamps = _plausible(_iso_stamps(text))
    return stamps, _present(text) & stamps.isna().to_numpy()


def _iso_stamps(text: pd.Series) -> pd.Series:
    """ISO 8601 texts as naive UTC time stamps, whatever their year; others NaT."""
    iso = text.str.match(ISO_DATE).fillna(False).to_numpy(dtype=bool)
    shaped = text.where(iso)
    try:
        stamps = pd.to_datetime(shaped, format="ISO8601", errors="coerce")
    except ValueError:  # mixed time zones: compare them all in UTC
        stamps = pd.to_datetime(shaped, format="ISO8601", errors="coerce", utc=True)
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_convert(None)
    return stamps.astype(TIME_DTYPE)


def _plausible(stamps: pd.Series) -> pd.Series:
    """Dates with a year outside YEARS made missing (the caller counts them as
    failed)."""
    years = stamps.dt.year
    return stamps.mask(years.lt(YEARS[0]) | years.gt(YEARS[1]))


def _words(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    lower = text.str.lower()
    return lower.isin(YES_WORDS).fillna(False), lower.isin(NO_WORDS).fillna(False)


def _bools(text: pd.Series) -> tuple[pd.Series, np.ndarray]:
    yes, no = _words(text)
    out = pd.Series(pd.NA, index=text.index, dtype="boolean")
    out[yes.to_numpy(bool)] = True
    out[no.to_numpy(bool)] = False
    return out, _present(text) & out.isna().to_numpy()


def _evidence(text: pd.Series) -> tuple[pd.Series, np.ndarray]:
    yes, no = _words(text)
    out = pd.Series(pd.NA, index=text.index, dtype="string")
    out[yes.to_numpy(bool)] = "yes"
    out[no.to_numpy(bool)] = "no"
    return out, _present(text) & out.isna().to_numpy()


def _as_is(text: pd.Series) -> tuple[pd.Series, np.ndarray]:
    return text, np.zeros(len(text), dtype=bool)


_FROM_TEXT: dict[str, Callable[[pd.Series], tuple[pd.Series, np.ndarray]]] = {
    "number": _numbers,
    "date": _dates,
    "bool": _bools,
    "evidence": _evidence,
    "category": _as_is,
    "text": _as_is,
}


def typed_kind(values: pd.Series) -> Kind | None:
    """The kind a typed (Parquet) column already has, or None for text."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "date"
    return None


def _typed(
    values: pd.Series, kind: Kind, missing: Iterable[str] = ()
) -> tuple[pd.Series, np.ndarray] | None:
    """A typed column already in the kind's dtype family, converted; else None."""
    have = typed_kind(values)
    if have == "number" and kind == "number":
        floats = values.to_numpy(dtype=float, na_value=np.nan)
        finite = np.isfinite(floats)
        out = pd.Series(np.where(finite, floats, np.nan), index=values.index)
        return out, ~np.isnan(floats) & ~finite
    if have == "date" and kind == "date":
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            values = values.dt.tz_convert(None)
        stamps = values.astype(TIME_DTYPE)
        # A declared placeholder that is a date (9999-12-31) is missing here too.
        sentinels = _iso_stamps(as_text(pd.Series(list(missing), dtype="string")))
        stamps = stamps.mask(stamps.isin(sentinels.dropna()))
        plausible = _plausible(stamps)
        return plausible, (stamps.notna() & plausible.isna()).to_numpy()
    if have == "bool" and kind == "bool":
        return values.astype("boolean"), np.zeros(len(values), dtype=bool)
    if have == "number" and kind in ("bool", "evidence"):
        # A 0 / 1 flag with gaps is stored as floats: 1.0 is the word "1", not "1.0".
        floats = values.to_numpy(dtype=float, na_value=np.nan)
        text = values.astype("string").mask(floats == 1, "1").mask(floats == 0, "0")
        return _FROM_TEXT[kind](as_text(text))
    return None


def convert(
    values: pd.Series, kind: Kind, missing: Iterable[str] = ()
) -> tuple[pd.Series, np.ndarray]:
    """The column in its kind's dtype, and where a present value did not convert.

    numbers float64, dates datetime64[ms] (naive UTC), bools boolean, evidence the
    text "yes" / "no", categories and text trimmed text; missing values (blank,
    null, a placeholder in ``missing``) are missing and never fail. Dates must be
    ISO 8601 (2024-01-31, 2024-01-31T09:30:00Z) with a year from 1900 to 2200.
    """
    typed = _typed(values, kind, missing)
    if typed is not None:
        return typed
    return _FROM_TEXT[kind](as_text(values, missing))


def infer_kind(values: pd.Series, max_levels: int) -> tuple[Kind, str]:
    """The kind of a column (placeholders already missing), with a note.

    Only numbers is ``number``; only ISO dates is ``date``; other text is a
    ``category`` up to ``max_levels`` distinct values and ``text`` beyond. The note
    is empty when the guess is safe; otherwise it says what to declare.

    >>> kind, note = infer_kind(pd.Series(["12", "n/a"] + ["3"] * 20), max_levels=50)
    >>> kind, note.split(";")[0]
    ('category', "95% of values read as numbers but 'n/a' does not")
    """
    typed = typed_kind(values)
    if typed is not None:
        return typed, ""
    text = as_text(values).dropna()
    if text.empty:
        return "category", "every value is missing"
    for kind in ("number", "date"):
        failed = _FROM_TEXT[kind](text)[1]
        if not failed.any():
            return kind, ""
        if 1 - failed.mean() >= UNSAFE_SHARE:
            first = text[failed].iloc[0]
            return _text_kind(text, max_levels), (
                f"{1 - failed.mean():.0%} of values read as "
                f"{NOUNS[kind].split()[-1]}s but {first!r} does not; declare "
                f"`{kind}` under source.types if it is one"
            )
    return _text_kind(text, max_levels), ""


def _text_kind(text: pd.Series, max_levels: int) -> Kind:
    return "category" if text.nunique() <= max_levels else "text"


def not_read_reasons(
    raw: pd.Series, column: str, kind: str
) -> Callable[[np.ndarray], list[str]]:
    """Reject reasons for rows whose value of ``column`` does not read as ``kind``."""

    def messages(rows: np.ndarray) -> list[str]:
        values = raw.iloc[rows]
        if kind == "date":
            return [_date_reason(column, value) for value in values.tolist()]
        noun = NOUNS.get(kind, kind)
        return [f"{column} is not {noun}: {quote_value(v)}" for v in values.tolist()]

    return messages


def _date_reason(column: str, value: Any) -> str:
    """Why a date did not read: not ISO 8601, or a year outside YEARS."""
    year = _year(value)
    if year is not None and not YEARS[0] <= year <= YEARS[1]:
        return (
            f"{column} has the year {year}, outside {YEARS[0]}-{YEARS[1]}: "
            f"{quote_value(value)}; if it stands for blank, declare it under "
            "source.missing_values"
        )
    return f"{column} is not {NOUNS['date']}: {quote_value(value)}"


def _year(value: Any) -> int | None:
    """The year of a date value or of an ISO 8601 calendar date text, else None."""
    if not isinstance(value, str):
        year = getattr(value, "year", None)
        return int(year) if year is not None else None
    text = value.strip()
    if not re.match(ISO_DATE, text):
        return None
    try:
        return date.fromisoformat(text[:10]).year
    except ValueError:  # 2024-02-30: no such day
        return None


# --- rejects and ids -------------------------------------------------------------


def quote_value(value: Any) -> str:
    """An input value quoted for a reject reason, cut to SHOWN_CHARS characters.

    >>> quote_value("D1"), quote_value("x" * 100)[-8:]
    ("'D1'", "xxxx...'")
    """
    text = repr(str(value))
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 4] + "...'"


def no_reasons(n: int) -> np.ndarray:
    """A reason slot per row, none given yet."""
    return np.full(n, None, dtype=object)


def first_reason(reasons: np.ndarray, failed: np.ndarray, messages: Any) -> None:
    """Give rows failing this check, and no earlier one, the check's reason
    (a text, or a function of the row positions returning one text a row)."""
    rows = np.flatnonzero(np.asarray(failed, dtype=bool) & pd.isna(reasons))
    if rows.size == 0:
        return
    texts = messages(rows) if callable(messages) else [messages] * rows.size
    reasons[rows] = texts


def reject_columns(columns: Sequence[str]) -> list[str]:
    """The names a rejects file gives a table's ``columns``: an input column named
    like one of :data:`REJECT_COLUMNS` becomes ``input_<name>``.

    >>> reject_columns(["deal_id", "reason"])
    ['deal_id', 'input_reason']
    """
    return [f"input_{c}" if c in REJECT_COLUMNS else c for c in columns]


def reject_frame(
    frame: pd.DataFrame,
    table: str,
    rows: np.ndarray,
    reasons: Iterable[str],
    numbers: np.ndarray | None = None,
) -> pd.DataFrame:
    """The rejects of a table: ``table``, ``row``, ``reason``, then the rows' values
    as text (an input column named like those three is renamed ``input_<name>``).
    ``rows`` are positions in ``frame``; ``numbers`` what the ``row`` column says
    (default: the positions)."""
    rows = np.asarray(rows, dtype=np.int64)
    rejects = frame.iloc[rows].astype("string").reset_index(drop=True)
    rejects.columns = reject_columns(list(rejects.columns))
    report: dict[str, Any] = {
        "table": pd.array([table] * len(rows), dtype="string"),
        "row": rows if numbers is None else np.asarray(numbers, dtype=np.int64),
        "reason": pd.array(list(reasons), dtype="string"),
    }
    for position, (column, values) in enumerate(report.items()):
        rejects.insert(position, column, values)
    return rejects


def rejected_rows(frame: pd.DataFrame, table: str, reasons: np.ndarray) -> pd.DataFrame:
    """The rejects of a table whose rows carry a reason (0-based positions)."""
    rows = np.flatnonzero(pd.notna(reasons))
    return reject_frame(frame, table, rows, reasons[rows].tolist())


def empty_rejects() -> pd.DataFrame:
    """A rejects table with no rows."""
    return pd.DataFrame({c: pd.Series(dtype="string") for c in REJECT_COLUMNS})


def concat_rejects(parts: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Rejects of several tables in one frame (empty parts left out)."""
    kept = [part for part in parts if len(part)]
    return pd.concat(kept, ignore_index=True) if kept else empty_rejects()


def repeated_ids(ids: pd.Series) -> np.ndarray:
    """Per id, the position of its first occurrence (its own position if first).

    >>> repeated_ids(pd.Series(["a", "b", "a"])).tolist()
    [0, 1, 0]
    """
    codes, _ = pd.factorize(ids)
    _, first = np.unique(codes, return_index=True)
    return first[codes]


def duplicate_reasons(
    ids: pd.Series, reasons: np.ndarray, column: str, row_numbers: np.ndarray
) -> None:
    """Reject rows repeating the id of an earlier row that passed every other check,
    naming that row (numbered by ``row_numbers``); the first valid row keeps the id."""
    valid = np.flatnonzero(pd.isna(reasons) & ids.notna().to_numpy())
    first = repeated_ids(ids.iloc[valid])
    later = first != np.arange(len(valid))
    again, first_rows = valid[later], row_numbers[valid[first[later]]]
    reasons[again] = [
        f"duplicate {column} {quote_value(v)} (first seen at row {r})"
        for v, r in zip(ids.iloc[again].tolist(), first_rows, strict=True)
    ]


def close_match(name: str, candidates: Iterable[str]) -> str:
    """' (did you mean 'X'?)' for a near miss among the candidates, or ''.

    >>> close_match("Lead Numbr", ["Lead Number", "City"])
    " (did you mean 'Lead Number'?)"
    """
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


#: A text cell starting with one of these is a formula to a spreadsheet (OWASP
#: "CSV injection"): CRM admins open these files in Excel.
FORMULA_START = r"^[=+\-@\t\r]"
#: ... unless it is a plain number such as -5 or +1.5e3.
PLAIN_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of the frame for a CSV file: every text cell a spreadsheet would read
    as a formula (starting with =, +, -, @, a tab or a carriage return, and not a
    plain number such as -5) gets a leading single quote, and a carriage return
    inside a text becomes a line feed (pandas leaves a lone CR unquoted, which
    splits the row when the file is read back); other cells as they are.

    >>> spreadsheet_safe(pd.DataFrame({"a": ["=1+1", "-5", "+ champion", "ok"]}))[
    ...     "a"].tolist()
    ["'=1+1", '-5', "'+ champion", 'ok']
    """
    out = frame.copy()
    for column in frame.columns:
        values = frame[column]
        if not (pd.api.types.is_string_dtype(values) or values.dtype == object):
            continue
        text = values.astype("string")
        matches = text.str.match(FORMULA_START) & ~text.str.match(PLAIN_NUMBER)
        risky = matches.fillna(False).to_numpy(dtype=bool)
        breaks = text.str.contains("\r", regex=False).fillna(False).to_numpy(bool)
        if not (risky.any() or breaks.any()):
            continue
        safe = text.where(~risky, "'" + text)
        safe = safe.str.replace("\r\n", "\n", regex=False)
        safe = safe.str.replace("\r", "\n", regex=False)
        out[column] = values.where(~(risky | breaks), safe)
    return out


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A hidden temporary path beside ``path`` to write to; renamed onto ``path``
    only when the block ends without an error (removed otherwise), so a reader
    never sees half a file and a failed run leaves the previous file in place.
    The name is unique to the call: two writers never share a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(
        f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial"
    )
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_json(data: Any, path: Path) -> None:
    """Write JSON (indented, one trailing newline) atomically."""
    with atomic_path(path) as partial:
        partial.write_text(json.dumps(data, indent=2, default=str) + "\n")


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write a frame as zstd Parquet (no index) atomically."""
    with atomic_path(path) as partial:
        frame.to_parquet(partial, index=False, compression="zstd")


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write a frame as CSV (no index) atomically, formula-like text escaped
    (:func:`spreadsheet_safe`)."""
    with atomic_path(path) as partial:
        spreadsheet_safe(frame).to_csv(partial, index=False)
