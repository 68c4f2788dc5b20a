"""Reading tables and converting values: one reader and one converter per kind."""

from __future__ import annotations

import json
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lead_ml import tables
from lead_ml.tables import (
    SEP_NAMES,
    SHOWN_CHARS,
    Dialect,
    as_text,
    atomic_path,
    close_match,
    concat_rejects,
    convert,
    count_rows,
    describe,
    duplicate_reasons,
    first_reason,
    header_hint,
    infer_kind,
    no_reasons,
    not_read_reasons,
    quote_value,
    read_chunks,
    read_header,
    read_table,
    reject_frame,
    rejected_rows,
    repeated_ids,
    sniff,
    spreadsheet_safe,
    write_csv,
    write_json,
    write_parquet,
)
from lead_ml.vocab import REJECT_COLUMNS, TIME_DTYPE, ContractError, Kind

KEY = "source.tables.deals.path"


def unchained(error: BaseException) -> bool:
    """True when Python prints the error alone, without the error it came from."""
    return error.__cause__ is None and (
        error.__context__ is None or error.__suppress_context__
    )


def text(*values: object) -> pd.Series:
    """A column as a CSV reads it: text, empty cells missing."""
    return pd.Series(list(values), dtype="string")


# --- reading ------------------------------------------------------------------------


def test_csv_cells_are_read_as_text_and_only_empty_cells_are_missing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "deals.csv"
    path.write_text("region,answer,count,id\nNA,None,007,1\n,null,1.50,2\n")
    frame = read_table(path, KEY)
    # "NA" may be North America and "None" an answer; "007" keeps its zeros.
    assert frame["region"].tolist()[0] == "NA"
    assert pd.isna(frame["region"].tolist()[1])
    assert frame["answer"].tolist() == ["None", "null"]
    assert frame["count"].tolist() == ["007", "1.50"]
    assert all(pd.api.types.is_string_dtype(frame[c]) for c in frame.columns)


def test_parquet_columns_keep_their_types(tmp_path: Path) -> None:
    path = tmp_path / "deals.parquet"
    pd.DataFrame(
        {
            "id": ["a", "b"],
            "seats": [3, 4],
            "signed": pd.to_datetime(["2024-01-01", "2024-02-01"]),
            "trial": [True, False],
        }
    ).to_parquet(path, index=False)
    frame = read_table(path, KEY)
    assert frame["seats"].dtype == np.dtype("int64")
    assert pd.api.types.is_datetime64_any_dtype(frame["signed"])
    assert frame["trial"].dtype == np.dtype(bool)


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\xff\xfe not a table \x00" * 50)


def _empty_parquet(path: Path) -> None:
    pd.DataFrame({"id": pd.Series(dtype="string")}).to_parquet(path)


def _repeated_parquet(path: Path) -> None:
    names = ["id", "stage", "id"]
    pq.write_table(pa.table([pa.array([1])] * 3, names=names), path)


@pytest.mark.parametrize(
    ("name", "write", "said"),
    [
        ("absent.csv", None, "no such file"),
        ("deals.parquet", _garbage, "cannot read it"),
        ("deals.csv", lambda p: p.write_bytes(b"id,stage\n\xff\xfe,x\n"), "UTF-8"),
        ("deals.csv", lambda p: p.write_bytes(b""), "empty (not even a header)"),
        ("deals.csv", lambda p: p.write_text("id,stage\n"), "the table has no rows"),
        ("deals.parquet", _empty_parquet, "the table has no rows"),
        ("deals.csv", lambda p: p.write_text("id,stage,id\n1,2,3\n"), "'id' appears"),
        ("deals.csv", lambda p: p.write_text("id,stage\n1,2\n3\n"), "malformed CSV"),
        ("deals.csv", lambda p: p.write_text("id,stage\n1,2,9\n"), "line 2: 3 field"),
        ("deals.parquet", _repeated_parquet, "'id' appears twice"),
        ("deals.xlsx", lambda p: p.write_bytes(b"PK"), "not a valid .xlsx workbook"),
        ("deals.json", lambda p: p.write_text("{}"), "cannot read a '.json' file"),
    ],
)
def test_a_file_that_cannot_be_read_is_a_contract_error_naming_file_and_key(
    tmp_path: Path, name: str, write: object, said: str
) -> None:
    path = tmp_path / name
    if callable(write):
        write(path)
    with pytest.raises(ContractError) as caught:
        read_table(path, KEY)
    message = str(caught.value)
    assert message.startswith(f"{path} ({KEY}): ")
    assert said in message
    assert unchained(caught.value)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_header_rows_and_chunks_read_what_the_whole_table_reads(
    tmp_path: Path, suffix: str
) -> None:
    frame = pd.DataFrame(
        {"id": [f"D{i}" for i in range(25)], "n": [str(i) for i in range(25)]}
    )
    path = tmp_path / f"deals{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    assert read_header(path, KEY) == ["id", "n"]
    assert count_rows(path) == (25 if suffix == ".parquet" else None)
    chunks = list(read_chunks(path, ["n"], chunk_rows=10))
    assert [len(chunk) for chunk in chunks] == [10, 10, 5]
    assert [chunk.first_row for chunk in chunks] == [0, 10, 20]
    assert all(chunk.malformed == {} for chunk in chunks)
    joined = pd.concat([chunk.frame for chunk in chunks], ignore_index=True)
    assert joined["n"].tolist() == read_table(path, KEY)["n"].tolist()
    assert list(joined.columns) == ["n"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_read_header_refuses_a_repeated_column_name(
    tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"leads{suffix}"
    if suffix == ".csv":
        path.write_text("id,stage,stage\n1,a,b\n")
    else:
        _repeated_parquet(path)
    repeated = "stage" if suffix == ".csv" else "id"
    with pytest.raises(ContractError, match=f"column '{repeated}' appears twice"):
        read_header(path, KEY)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    shapes=st.lists(st.sampled_from([3, 3, 3, 3, 2, 4, 1]), min_size=0, max_size=60),
    chunk_rows=st.integers(1, 25),
    block_bytes=st.sampled_from([64, 128, 2**20]),
)
def test_malformed_csv_records_keep_their_place_among_the_rows(
    shapes: list[int], chunk_rows: int, block_bytes: int
) -> None:
    """Whatever the chunk and parse block sizes, every record is a row in file
    order; those without one field per header column are missing rows with a
    reason naming their line."""
    lines = ["a,b,c"] + [
        ",".join(f"{r}x{f}" for f in range(n)) for r, n in enumerate(shapes)
    ]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.csv"
        path.write_text("\n".join(lines) + "\n")
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(tables, "CSV_BLOCK_BYTES", block_bytes)
            chunks = list(read_chunks(path, ["a", "c"], chunk_rows))
    assert [len(chunk) for chunk in chunks[:-1]] == [chunk_rows] * (len(chunks) - 1)
    assert all(0 < len(chunk) <= chunk_rows for chunk in chunks)
    assert [chunk.first_row for chunk in chunks] == list(
        np.cumsum([0] + [len(chunk) for chunk in chunks])[:-1]
    )
    rows = pd.concat([chunk.frame for chunk in chunks]) if chunks else None
    found = {
        chunk.first_row + at: reason
        for chunk in chunks
        for at, reason in chunk.malformed.items()
    }
    bad = [r for r, n in enumerate(shapes) if n != 3]
    assert sorted(found) == bad
    for r in bad:
        assert found[r].startswith(f"malformed CSV line {r + 2}: {shapes[r]} field")
    if rows is None:
        assert shapes == []
        return
    kept = rows.astype(object).where(rows.notna(), None)
    assert kept["a"].tolist() == [
        f"{r}x0" if n == 3 else None for r, n in enumerate(shapes)
    ]
    assert kept["c"].tolist() == [
        f"{r}x2" if n == 3 else None for r, n in enumerate(shapes)
    ]


def test_a_record_longer_than_the_fast_block_is_read_whole_in_its_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read first in small blocks, a long record makes the reader start again with
    # large ones: no row given twice or lost, malformed rows still in place.
    monkeypatch.setattr(tables, "CSV_FAST_BLOCK_BYTES", 64)
    monkeypatch.setattr(tables, "CSV_BLOCK_BYTES", 2**20)
    long = "y" * 500
    path = tmp_path / "rows.csv"
    path.write_text(f'a,b\n1,x\n2\n3,"{long}"\n4,z\n')
    chunks = list(read_chunks(path, ["a", "b"], 1))
    rows = pd.concat([chunk.frame for chunk in chunks])
    assert rows["a"].tolist()[:1] + rows["a"].tolist()[2:] == ["1", "3", "4"]
    assert rows["b"].tolist()[2:] == [long, "z"]
    assert [chunk.first_row for chunk in chunks] == [0, 1, 2, 3]
    assert chunks[1].malformed[0].startswith("malformed CSV line 3")
    monkeypatch.setattr(tables, "CSV_BLOCK_BYTES", 128)  # longer than every block
    with pytest.raises(ContractError, match="straddl"):
        list(read_chunks(path, ["a", "b"], 1))


def test_read_header_names_the_key_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match=r"absent\.csv \(source\.tables\.x\.path\)"):
        read_header(tmp_path / "absent.csv", "source.tables.x.path")


# --- converting values ----------------------------------------------------------


def test_blank_and_placeholders_are_missing_and_text_is_trimmed() -> None:
    values = text(" EU ", "", "   ", "Select", None, "select")
    assert as_text(values, missing=["Select"]).tolist() == [
        "EU",
        pd.NA,
        pd.NA,
        pd.NA,
        pd.NA,
        pd.NA,  # placeholders match whatever their case, as categories do
    ]


@pytest.mark.parametrize(
    ("kind", "value"), [("number", "0"), ("bool", "no"), ("evidence", "no")]
)
def test_blank_null_and_placeholders_are_never_zero_or_no(
    kind: Kind, value: str
) -> None:
    values = text(value, "", " ", None, "Select", "unknown")
    converted, failed = convert(values, kind, missing=["Select", "unknown"])
    assert converted.isna().tolist() == [False, True, True, True, True, True]
    assert not failed.any()


def test_numbers_read_plain_and_reject_everything_else() -> None:
    values = text("1.5", " 2 ", "1e3", "-0", "-7", "inf", "1,234", "n/a", "NaN", "")
    numbers, failed = convert(values, "number")
    assert numbers.dtype == np.dtype("float64")
    assert numbers.tolist()[:5] == [1.5, 2.0, 1000.0, 0.0, -7.0]
    assert failed.tolist() == [False] * 5 + [True] * 4 + [False]


def test_typed_numbers_keep_their_values_and_infinity_fails() -> None:
    numbers, failed = convert(pd.Series([3, 4], dtype="Int64"), "number")
    assert numbers.tolist() == [3.0, 4.0] and not failed.any()
    floats, failed = convert(pd.Series([1.5, np.inf, np.nan]), "number")
    assert np.isnan(floats.iloc[1]) and failed.tolist() == [False, True, False]


@pytest.mark.parametrize(
    ("written", "utc"),
    [
        ("2024-01-31", "2024-01-31 00:00:00"),
        ("2024-01-31T09:30:00", "2024-01-31 09:30:00"),
        ("2024-01-31 09:30:00", "2024-01-31 09:30:00"),
        ("2024-01-31T09:30:00+02:00", "2024-01-31 07:30:00"),
        ("2024-01-31T00:00:00Z", "2024-01-31 00:00:00"),
        ("2024-01-01T00:00:00-05:00", "2024-01-01 05:00:00"),
    ],
)
def test_iso_dates_read_as_naive_utc(written: str, utc: str) -> None:
    dates, failed = convert(text(written), "date")
    assert dates.dtype == TIME_DTYPE
    assert dates.iloc[0] == pd.Timestamp(utc) and not failed.any()


def test_mixed_time_zones_in_one_column_are_compared_in_utc() -> None:
    dates, failed = convert(
        text("2024-01-01T00:00:00+02:00", "2024-01-01T00:00:00Z", "2024-01-01"), "date"
    )
    assert dates.tolist() == [
        pd.Timestamp("2023-12-31 22:00"),
        pd.Timestamp("2024-01-01"),
        pd.Timestamp("2024-01-01"),
    ]
    assert not failed.any()


def test_non_iso_and_impossible_dates_fail() -> None:
    values = text(
        "31/01/2024", "2024-02-30", "soon", "2025/03/20", "20250320", "2024-1-5",
        "2024-01", "2024", "2024-01-31", "2024-01-31T09:30",
    )  # fmt: skip
    _, failed = convert(values, "date")
    assert failed.tolist() == [True] * 8 + [False, False]
    reasons = not_read_reasons(values, "created", "date")(np.arange(4))
    assert reasons[3] == "created is not an ISO 8601 date: '2025/03/20'"


@pytest.mark.parametrize(
    "values",
    [
        text("0001-01-01", "9999-12-31", "1899-12-31T23:59:59", "2024-01-31"),
        pd.Series(
            np.array(
                ["0001-01-01", "9999-12-31", "1899-12-31", "2024-01-31"],
                dtype="datetime64[ms]",
            )
        ),
    ],
    ids=["text", "typed"],
)
def test_dates_with_an_implausible_year_fail_until_declared_missing(
    values: pd.Series,
) -> None:
    dates, failed = convert(values, "date")
    assert failed.tolist() == [True, True, True, False]
    assert dates.isna().tolist() == [True, True, True, False]
    reason = not_read_reasons(values, "closed", "date")(np.array([1]))[0]
    assert reason.startswith("closed has the year 9999, outside 1900-2200: ")
    assert reason.endswith(
        "; if it stands for blank, declare it under source.missing_values"
    )
    declared, failed = convert(values, "date", missing=["9999-12-31", "0001-01-01"])
    assert failed.tolist() == [False, False, True, False]
    assert declared.isna().tolist() == [True, True, True, False]


def test_typed_dates_with_a_time_zone_become_naive_utc() -> None:
    aware = pd.Series(pd.to_datetime(["2024-01-01T00:00:00+02:00"]))
    dates, failed = convert(aware, "date")
    assert dates.dtype == TIME_DTYPE
    assert dates.iloc[0] == pd.Timestamp("2023-12-31 22:00") and not failed.any()


def test_bool_and_evidence_read_yes_no_words_in_any_case() -> None:
    values = text("YES", " No ", "true", "False", "Y", "n", "1", "0", "maybe")
    bools, failed = convert(values, "bool")
    assert bools.dtype == "boolean"
    assert bools.tolist()[:8] == [True, False, True, False, True, False, True, False]
    assert failed.tolist() == [False] * 8 + [True]
    evidence, failed = convert(values, "evidence")
    assert evidence.tolist()[:8] == ["yes", "no"] * 4
    assert failed.tolist() == [False] * 8 + [True]


@pytest.mark.parametrize("kind", ["bool", "evidence"])
def test_a_typed_zero_one_flag_with_gaps_reads_as_yes_no(kind: Kind) -> None:
    # Parquet stores an integer flag with gaps as floats: 1.0 is "1", not "1.0".
    converted, failed = convert(pd.Series([1.0, 0.0, np.nan, 2.0]), kind)
    yes, no = (True, False) if kind == "bool" else ("yes", "no")
    assert converted.tolist()[:2] == [yes, no]
    assert converted.isna().tolist()[2:] == [True, True]
    assert failed.tolist() == [False, False, False, True]


def test_typed_bools_stay_bools() -> None:
    bools, failed = convert(pd.Series([True, None, False], dtype="boolean"), "bool")
    assert bools.tolist() == [True, pd.NA, False] and not failed.any()


def test_categories_are_trimmed_text_and_never_fail() -> None:
    values, failed = convert(text(" EU", "US ", "", "Select"), "category", ["Select"])
    assert values.tolist() == ["EU", "US", pd.NA, pd.NA] and not failed.any()


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (["1", "0", "1"], "number"),
        (["12.5", "-3", "1e6", None], "number"),
        (["2024-01-31", "2024-02-01T09:30:00", None], "date"),
        (["Yes", "no", None, "YES"], "category"),
        (["EU", "US", "EU"], "category"),
        ([None, None], "category"),
        ([f"note {i}" for i in range(6)], "text"),
    ],
)
def test_kinds_are_inferred_from_the_values(
    values: list[str | None], kind: str
) -> None:
    assert infer_kind(text(*values), max_levels=5)[0] == kind


def test_typed_columns_keep_their_kind() -> None:
    assert infer_kind(pd.Series([1.5, 2.0]), 5) == ("number", "")
    assert infer_kind(pd.Series([True, False]), 5) == ("bool", "")
    assert infer_kind(pd.Series(pd.to_datetime(["2024-01-01"])), 5) == ("date", "")


@pytest.mark.parametrize(
    ("odd", "kind", "noun"), [("1,234", "number", "numbers"), ("soon", "date", "dates")]
)
def test_a_mostly_readable_column_is_inferred_with_a_note_saying_what_to_declare(
    odd: str, kind: str, noun: str
) -> None:
    good = "7" if kind == "number" else "2024-01-31"
    kind_found, note = infer_kind(text(*[good] * 30, odd), max_levels=50)
    assert kind_found == "category"
    assert f"97% of values read as {noun} but {odd!r} does not" in note
    assert f"declare `{kind}` under source.types" in note


def test_a_column_below_the_unsafe_share_gets_no_note() -> None:
    assert infer_kind(text("1", "2", "x", "y"), max_levels=50) == ("category", "")


def test_an_all_missing_column_says_so() -> None:
    assert infer_kind(text(None, "", " "), 50) == ("category", "every value is missing")


# --- rejects and ids ------------------------------------------------------------


def test_first_reason_never_overwrites_an_earlier_reason() -> None:
    reasons = no_reasons(4)
    first_reason(reasons, np.array([True, True, False, False]), "first check")
    first_reason(
        reasons,
        np.array([False, True, True, False]),
        lambda rows: [f"second check at {r}" for r in rows],
    )
    assert reasons.tolist() == ["first check", "first check", "second check at 2", None]


def test_the_first_valid_row_keeps_an_id_and_later_copies_name_it() -> None:
    ids = text("a", "b", "a", "a", None, "b")
    reasons = no_reasons(6)
    reasons[0] = "amount is below 0 (-1)"  # the first copy is invalid: row 2 keeps "a"
    duplicate_reasons(ids, reasons, "Deal Id", np.arange(10, 16))
    assert reasons.tolist() == [
        "amount is below 0 (-1)",
        None,
        None,
        "duplicate Deal Id 'a' (first seen at row 12)",
        None,
        "duplicate Deal Id 'b' (first seen at row 11)",
    ]
    assert repeated_ids(ids.dropna().reset_index(drop=True)).tolist() == [0, 1, 0, 0, 1]


def test_reject_frame_keeps_values_as_text_and_renames_clashing_columns() -> None:
    frame = pd.DataFrame(
        {"id": ["a", "b", "c"], "row": [7, 8, 9], "amount": [1.5, -2.0, 3.0]},
        index=[30, 10, 20],
    )
    rejects = reject_frame(frame, "deals", np.array([1]), ["amount is below 0 (-2)"])
    assert list(rejects.columns) == [*REJECT_COLUMNS, "id", "input_row", "amount"]
    assert rejects.iloc[0].tolist() == [
        "deals",
        1,
        "amount is below 0 (-2)",
        "b",
        "8",
        "-2.0",
    ]
    numbered = reject_frame(frame, "deals", np.array([2]), ["x"], numbers=np.array([5]))
    assert numbered["row"].tolist() == [5]


def test_rejected_rows_and_an_empty_rejects_table() -> None:
    frame = pd.DataFrame({"id": ["a", "b"]})
    reasons = np.array([None, "id is odd"], dtype=object)
    rejects = rejected_rows(frame, "accounts", reasons)
    assert rejects[["table", "row", "reason"]].values.tolist() == [
        ["accounts", 1, "id is odd"]
    ]
    empty = concat_rejects([rejects.iloc[:0]])
    assert list(empty.columns) == list(REJECT_COLUMNS) and empty.empty
    assert len(concat_rejects([rejects, empty, rejects])) == 2


def test_quoted_values_are_cut_to_a_readable_length() -> None:
    assert quote_value(12) == "'12'"
    long = quote_value("x" * 500)
    assert len(long) == SHOWN_CHARS and long.endswith("...'")


def test_close_match_suggests_only_near_misses() -> None:
    assert close_match("regoin", ["region", "revenue"]) == " (did you mean 'region'?)"
    assert close_match("zzz", ["region"]) == ""


# --- atomic writes --------------------------------------------------------------


def test_a_failed_write_leaves_the_previous_file_and_no_partial_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "reports" / "metrics.json"
    write_json({"auc": 0.8}, path)
    with pytest.raises(RuntimeError), atomic_path(path) as partial:
        partial.write_text('{"auc": ')
        raise RuntimeError("the stage failed half way")
    assert json.loads(path.read_text()) == {"auc": 0.8}
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.json"]


def test_a_frame_parquet_cannot_store_leaves_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "deals.parquet"
    write_parquet(pd.DataFrame({"id": ["a"]}), path)
    mixed = pd.DataFrame({"id": [object(), "b"]})  # pyarrow cannot store this
    with pytest.raises((pa.ArrowException, TypeError, ValueError)):
        write_parquet(mixed, path)
    assert pd.read_parquet(path)["id"].tolist() == ["a"]
    assert [p.name for p in tmp_path.iterdir()] == ["deals.parquet"]


def test_csv_writes_escape_formulas_and_keep_line_breaks_inside_their_cell(
    tmp_path: Path,
) -> None:
    cells = ["=1+1", "+cmd", "-cmd", "@SUM(A1)", "\tx", "\rx", "-5", "+1.5e3", "a\rb"]
    frame = pd.DataFrame({"text": cells, "number": range(9)})
    escaped = ["'=1+1", "'+cmd", "'-cmd", "'@SUM(A1)", "'\tx", "'\nx", "-5", "+1.5e3"]
    assert spreadsheet_safe(frame)["text"].tolist() == [*escaped, "a\nb"]
    assert frame["text"].tolist() == cells  # the input is left alone
    write_csv(frame, tmp_path / "out.csv")
    back = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    assert back["text"].tolist() == [*escaped, "a\nb"]  # nine rows, as written
    assert back["number"].tolist() == [str(n) for n in range(9)]


def test_writes_create_folders_and_replace_whole_files(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "rejects.csv"
    write_csv(pd.DataFrame({"table": ["deals"], "row": [3]}), path)
    write_csv(pd.DataFrame({"table": ["accounts"], "row": [1]}), path)
    assert path.read_text() == "table,row\naccounts,1\n"
    write_json({"b": 1}, tmp_path / "x.json")
    assert (tmp_path / "x.json").read_text() == '{\n  "b": 1\n}\n'


# --- dialects: separators, line ends, quotes, encodings, decimals -----------------

DIALECT_FRAME = pd.DataFrame(
    {
        "Id": ["1", "2", "3"],
        "Name": ["Acme; Inc", 'say "hi"', "Zed, Ltd"],
        "Amount": ["1.234,5", "7,25", "12"],
    }
)


def _whole(path: Path, dialect: Dialect) -> pd.DataFrame:
    """read_table and read_chunks (two rows a chunk) of a file: asserted equal."""
    frame = read_table(path, KEY, dialect)
    chunks = [c.frame for c in read_chunks(path, list(frame.columns), 2, dialect)]
    streamed = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(
        streamed.astype("string"), frame.astype("string"), check_dtype=False
    )
    assert read_header(path, KEY, dialect) == list(frame.columns)
    return frame


@pytest.mark.parametrize(
    ("sep", "line_end"), [(";", "\r\n"), ("\t", "\n"), ("|", "\r\n"), (",", "\n")]
)
def test_the_separator_is_detected_whatever_the_line_ends_and_quotes(
    tmp_path: Path, sep: str, line_end: str
) -> None:
    path = tmp_path / "deals.csv"
    DIALECT_FRAME.to_csv(path, sep=sep, index=False, lineterminator=line_end)
    sniffed = sniff(path)
    assert sniffed.sep == sep
    assert sniffed.line_end == ("CRLF" if line_end == "\r\n" else "LF")
    frame = _whole(path, Dialect(decimal=","))
    assert frame["Name"].tolist() == DIALECT_FRAME["Name"].tolist()
    assert frame["Amount"].tolist() == ["1234.5", "7.25", "12"]
    said = describe(path, Dialect())
    assert said.startswith(f"sep {SEP_NAMES[sep]} (detected)")
    assert describe(path, Dialect(sep=sep)).startswith(f"sep {SEP_NAMES[sep]} (set)")


def test_a_one_column_file_reads_with_commas(tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("Id\nA\nB\n")
    assert sniff(path).sep == ","
    assert read_table(path, KEY)["Id"].tolist() == ["A", "B"]


def test_a_wrong_separator_is_named_with_the_setting_to_change(tmp_path: Path) -> None:
    path = tmp_path / "deals.csv"
    DIALECT_FRAME.to_csv(path, sep=";", index=False)
    assert read_header(path, KEY, Dialect(sep=",")) == ["Id;Name;Amount"]
    hint = header_hint(path, Dialect(sep=",", key="source.tables.deals"))
    assert hint == (
        " (read with sep ','; the header looks ';'-separated: set "
        "source.tables.deals.sep)"
    )
    assert header_hint(path, Dialect()) == " (read with sep ';', detected)"


def test_decimal_commas_are_read_only_when_set() -> None:
    text = pd.Series(["1.234,5", "-0,5", "1 234", "2.5", "v1,2a", None, "1.2.3"])
    assert tables.decimal_text(text.astype("string")).tolist() == [
        "1234.5",
        "-0.5",
        "1234",
        "2.5",
        "v1,2a",
        pd.NA,
        "1.2.3",
    ]


def test_another_encoding_is_read_when_set_and_named_when_not(tmp_path: Path) -> None:
    path = tmp_path / "deals.csv"
    path.write_bytes("Id;Ville\r\n1;Orléans\r\n2;Köln\r\n".encode("cp1252"))
    with pytest.raises(ContractError, match="encoding: cp1252"):
        read_table(path, KEY)
    frame = _whole(path, Dialect(encoding="cp1252"))
    assert frame["Ville"].tolist() == ["Orléans", "Köln"]


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_name(tmp_path: Path) -> None:
    path = tmp_path / "deals.csv"
    path.write_bytes(b"\xef\xbb\xbfId;Stage\r\n1;Won\r\n")
    assert read_header(path, KEY) == ["Id", "Stage"]
    assert _whole(path, Dialect())["Stage"].tolist() == ["Won"]


# --- Excel workbooks ----------------------------------------------------------------


def _workbook(path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    about = book.active
    about.title = "About"
    about.append(["exported by the CRM"])
    sheet = book.create_sheet("Leads")
    sheet.append(["Id", "Revenue", "Created", "Opted in", "Note"])
    sheet.append([101, 1500.5, datetime(2024, 1, 31), True, "first"])
    sheet.append([None, None, None, None, None])  # a blank row: not a lead
    sheet.append([102, 3, datetime(2024, 2, 1, 9, 30), False, None])
    book.save(path)


def test_an_excel_sheet_reads_as_text_cells_like_a_csv(tmp_path: Path) -> None:
    path = tmp_path / "leads.xlsx"
    _workbook(path)
    frame = _whole(path, Dialect(sheet="Leads"))
    assert frame.to_dict("list") == {
        "Id": ["101", "102"],
        "Revenue": ["1500.5", "3"],
        "Created": ["2024-01-31", "2024-02-01T09:30:00"],
        "Opted in": ["yes", "no"],
        "Note": ["first", None],
    }
    assert read_header(path, KEY) == ["exported by the CRM"]  # the first sheet
    assert describe(path, Dialect(sheet="Leads")) == "Excel sheet 'Leads'"


def test_a_missing_sheet_names_the_sheets_and_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "leads.xlsx"
    _workbook(path)
    dialect = Dialect(sheet="Deals", key="source.tables.deals")
    with pytest.raises(ContractError) as caught:
        read_table(path, KEY, dialect)
    assert str(caught.value) == (
        f"{path} ({KEY}): no sheet 'Deals'; its sheets are 'About', 'Leads': set "
        "source.tables.deals.sheet"
    )


# --- the row-number id --------------------------------------------------------------


def test_the_row_number_id_is_the_files_one_based_row_in_every_reader(
    tmp_path: Path,
) -> None:
    path = tmp_path / "deals.csv"
    path.write_text("stage,x\nWon,1\nLost,2,9\nWon,3\n\nLost,4\n")
    dialect = Dialect(row_number="row_number")
    assert read_header(path, KEY, dialect) == ["row_number", "stage", "x"]
    chunks = list(read_chunks(path, ["stage", "row_number"], 2, dialect))
    numbers = [n for c in chunks for n in c.frame["row_number"].tolist()]
    assert numbers == ["1", "2", "3", "4"]  # the malformed row keeps its number
    assert chunks[0].frame.columns.tolist() == ["stage", "row_number"]
    parquet = tmp_path / "deals.parquet"
    pd.DataFrame({"stage": ["Won", "Lost"]}).to_parquet(parquet)
    assert read_table(parquet, KEY, dialect)["row_number"].tolist() == ["1", "2"]


def test_a_row_number_id_named_like_a_column_of_the_file_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "deals.csv"
    path.write_text("row_number,stage\n1,Won\n")
    with pytest.raises(ContractError, match="'row_number' is already a column"):
        read_table(path, KEY, Dialect(row_number="row_number"))
    # ... but a file of leads to score that carries it keeps its own.
    assert Dialect(row_number="row_number").for_input(path).row_number is None


def test_a_dialect_round_trips_and_refuses_anything_else() -> None:
    dialect = Dialect(";", "cp1252", ",", "Leads", "row_number", "source.tables.x")
    assert Dialect.from_dict(dialect.as_dict()) == dialect
    assert Dialect.from_dict(None) == Dialect()
    for bad in ({"sep": "x"}, {"nope": ","}, {"decimal": 1}):
        with pytest.raises(ContractError, match="not a dialect"):
            Dialect.from_dict(bad)
