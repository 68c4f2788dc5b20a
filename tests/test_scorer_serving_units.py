"""What the pyfunc and `lead-ml score` do around the scoring itself, on the small
scorer built in memory (tests/small_scorer.py): the counts a job (or a Spark batch)
adds and merges, the many-to-one tables joined at scoring, the pyfunc's settings
and its rows (row-number ids, absent columns, cells typed by pandas or JSON,
nullable output), and the activity log a scorer reads. Every expected value is
worked out in the test; every error a user sees is pinned to its text."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from small_scorer import activity_scorer, raw_activities, raw_leads, refusal
from small_scorer import small_scorer as built

from lead_ml.model import TrainedModel
from lead_ml.scorer import (
    _LOADING,
    ALLOW_ACTIVITIES_ENV,
    EXPECT_VERSION_ENV,
    DriftMonitor,
    JobCounts,
    JoinedTable,
    Scorer,
    ServingSettings,
    _column_levels,
    _empty_counts,
    _number_text,
    _requested,
    _switched_on,
    as_exported,
    joins_onto,
    numbers_as_written,
    predict_leads,
    pyfunc_output,
    read_join_tables,
    row_number_id,
    with_joins,
    with_row_numbers,
)
from lead_ml.vocab import ContractError, ScorerError

DIGEST = "ab" * 32
PINNED = "lead-ml-scorer:" + DIGEST


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return built()


def with_spec(scorer: Scorer, **changes: Any) -> Scorer:
    """The small scorer with scorer.json's keys ``changes`` replaced."""
    return Scorer(scorer.model, scorer.spec | changes)


# --- the counts of a job --------------------------------------------------------------


def counted(scorer: Scorer, rows: Any, probability: np.ndarray) -> dict[str, list]:
    monitor = DriftMonitor(scorer.spec["drift_reference"])
    monitor.add_rows(rows, scorer.model.info.feature_names, probability)
    return {name: bins.tolist() for name, bins in monitor.counts.items()}


def test_job_counts_add_chunks_as_the_batch_job_counts_them(scorer: Scorer) -> None:
    raw = raw_leads(40, seed=21)
    raw.loc[3, "employees"] = "0"  # rejected: below the bound
    raw.loc[5, "industry"] = "farming"  # never seen in training
    result = scorer.score_chunk(raw)
    counts = JobCounts.of(scorer)
    assert counts.monitor.reference == scorer.spec["drift_reference"]
    assert (counts.rows_in, counts.scored, counts.unseen, counts.parts) == (0, 0, {}, 0)
    assert counts.monitor.counts == {}
    counts.add(scorer, result, 40)
    probability = result.output["probability"].to_numpy(float)
    once = counted(scorer, result.rows, probability)
    assert (counts.rows_in, counts.scored, counts.unseen, counts.parts) == (
        40,
        39,
        {"industry": 1},
        1,
    )
    assert {k: v.tolist() for k, v in counts.monitor.counts.items()} == once
    assert sum(once["score"]) == 39
    counts.add(scorer, result, 40)
    assert (counts.rows_in, counts.scored, counts.unseen, counts.parts) == (
        80,
        78,
        {"industry": 2},
        2,
    )
    twice = {k: [2 * n for n in v] for k, v in once.items()}
    assert {k: v.tolist() for k, v in counts.monitor.counts.items()} == twice


def test_a_chunk_of_nothing_but_rejects_counts_its_rows_and_no_bins(
    scorer: Scorer,
) -> None:
    raw = raw_leads(3, seed=22).assign(employees="0")
    result = scorer.score_chunk(raw)
    assert len(result.output) == 0
    counts = JobCounts.of(scorer)
    counts.add(scorer, result, 3)
    assert (counts.rows_in, counts.scored, counts.unseen, counts.parts) == (
        3,
        0,
        {"industry": 0},
        1,
    )
    assert counts.monitor.counts == {}


def test_job_counts_as_text_merge_to_the_same_counts(scorer: Scorer) -> None:
    raw = raw_leads(30, seed=23)
    raw.loc[7, "industry"] = "farming"
    result = scorer.score_chunk(raw)
    counts = JobCounts.of(scorer)
    counts.add(scorer, result, 31)
    text = counts.as_text()
    assert text.startswith(
        '{"rows_in":31,"scored":30,"unseen":{"industry":1},"drift":{'
    )
    assert " " not in text
    read = json.loads(text)
    assert list(read) == ["rows_in", "scored", "unseen", "drift"]
    assert read["drift"] == {k: v.tolist() for k, v in counts.monitor.counts.items()}
    assert all(type(n) is int for bins in read["drift"].values() for n in bins)
    merged = JobCounts.of(scorer)
    merged.unseen["other"] = 4
    merged.add_text(text)
    merged.add_text(text)
    assert (merged.rows_in, merged.scored, merged.parts) == (62, 60, 2)
    assert merged.unseen == {"other": 4, "industry": 2}
    for name, bins in merged.monitor.counts.items():
        assert bins.dtype == np.int64
        assert bins.tolist() == [2 * n for n in read["drift"][name]]
    assert merged.monitor.psi() == pytest.approx(counts.monitor.psi())


def test_partial_counts_are_read_as_whole_numbers(scorer: Scorer) -> None:
    counts = JobCounts.of(scorer)
    counts.add_text('{"rows_in":3.0,"scored":2.0,"unseen":{"industry":1.0},"drift":{}}')
    assert (counts.rows_in, counts.scored, counts.unseen) == (3, 2, {"industry": 1})
    assert type(counts.rows_in) is int and type(counts.scored) is int
    assert type(counts.unseen["industry"]) is int
    assert counts.monitor.counts == {}


def test_partial_counts_of_another_model_are_refused(scorer: Scorer) -> None:
    reference = scorer.spec["drift_reference"]
    size = len(reference["employees"]["edges"]) + 2
    counts = JobCounts.of(scorer)
    wrong = '{"rows_in":1,"scored":1,"unseen":{},"drift":{"employees":[1,0]}}'
    assert refusal(counts.add_text, wrong) == (
        "batch counts of 'employees' do not fit the scorer's drift reference "
        f"(2 bins, expected {size}): another model"
    )
    ghost = '{"rows_in":1,"scored":1,"unseen":{},"drift":{"ghost":[1]}}'
    assert refusal(counts.add_text, ghost) == (
        "batch counts of 'ghost' do not fit the scorer's drift reference "
        "(1 bins, expected None): another model"
    )
    # Nothing of a refused text was merged.
    assert (counts.rows_in, counts.scored, counts.parts) == (0, 0, 0)
    assert counts.monitor.counts == {}
    levels = len(reference["industry"]["levels"]) + 1
    fits = {"industry": [1] * levels, "employees": [0] * size}
    counts.add_text(
        json.dumps({"rows_in": 1, "scored": 1, "unseen": {}, "drift": fits})
    )
    assert {k: v.tolist() for k, v in counts.monitor.counts.items()} == fits


def test_the_empty_bins_of_a_reference_entry() -> None:
    category = {"kind": "category", "levels": ["a", "b"], "shares": [0.5, 0.5, 0]}
    number = {"kind": "number", "edges": [1.0, 2.0, 3.0], "shares": [0.25] * 4 + [0]}
    assert _empty_counts(category).tolist() == [0, 0, 0]
    assert _empty_counts(number).tolist() == [0, 0, 0, 0, 0]
    assert _empty_counts({"kind": "number", "edges": []}).tolist() == [0, 0]
    assert _empty_counts(category).dtype.kind == "i"


def test_predict_leads_is_the_scored_frame_as_the_pyfunc_returns_it(
    scorer: Scorer,
) -> None:
    raw = raw_leads(12, seed=24)
    raw.loc[2, "employees"] = "0"
    raw.loc[4, "industry"] = "farming"
    out = predict_leads(scorer, raw)
    pd.testing.assert_frame_equal(out, pyfunc_output(scorer.score(raw)))
    assert len(out) == 12 and out["reject_reason"].notna().sum() == 1
    plain = predict_leads(scorer, raw, explain_reasons=False)
    pd.testing.assert_frame_equal(
        plain, pyfunc_output(scorer.score(raw, explain_reasons=False))
    )
    assert len(predict_leads(scorer, raw.head(0))) == 0


def test_predict_leads_counts_the_activities_it_is_given() -> None:
    counting = activity_scorer()
    raw = raw_leads(8, seed=25)
    log = raw_activities(raw, seed=25)
    out = predict_leads(counting, raw, log)
    pd.testing.assert_frame_equal(out, pyfunc_output(counting.score(raw, log)))
    unknown = predict_leads(counting, raw)  # no log: the activities are unknown
    assert not np.allclose(out["probability"], unknown["probability"])


# --- tables joined at scoring ---------------------------------------------------------


def accounts_file(tmp_path: Path, text: str, name: str = "accounts.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


ACCOUNTS = (
    "account_id,region,industry,employees\n"
    " A1 ,north,software,120\n"
    "A2,south,retail,8\n"
    "A1,west,mining,5\n"  # a repeated id: the first row is kept
    ",east,mining,9\n"  # no id: left out
    "unknown,east,mining,9\n"  # the source's placeholder: no id either
    "7,east,retail,70\n"
)


def test_a_joined_table_is_read_by_its_training_dialect(
    scorer: Scorer, tmp_path: Path
) -> None:
    path = accounts_file(tmp_path, ACCOUNTS)
    (table,) = read_join_tables(scorer, {"accounts": str(path)})
    assert (table.name, table.key) == ("accounts", "account_id")
    # The scorer's columns it holds, in the contract's order, by id as text.
    assert list(table.rows.columns) == ["employees", "industry"]
    assert table.rows.index.tolist() == ["A1", "A2", "7"]
    assert table.rows.to_dict("index") == {
        "A1": {"employees": "120", "industry": "software"},
        "A2": {"employees": "8", "industry": "retail"},
        "7": {"employees": "70", "industry": "retail"},
    }
    assert read_join_tables(scorer, {}) == []


def test_a_table_the_model_never_joined_or_cannot_join_is_refused(
    scorer: Scorer, tmp_path: Path
) -> None:
    path = accounts_file(tmp_path, ACCOUNTS)
    assert refusal(
        read_join_tables, scorer, {"zones": path, "products": path, "accounts": path}
    ) == (
        "--table products: the model joined no table 'products' in training (it "
        "joined: accounts); drop it"
    )
    alone = with_spec(scorer, joins={})
    assert refusal(read_join_tables, alone, {"accounts": path}) == (
        "--table accounts: the model joined no table 'accounts' in training (it "
        "joined: none); drop it"
    )
    gone = tmp_path / "gone.csv"
    with pytest.raises(FileNotFoundError) as missing:
        read_join_tables(scorer, {"accounts": gone})
    assert str(missing.value) == (
        f"{gone}: the accounts table (--table accounts) not found"
    )
    other = accounts_file(tmp_path, "id,industry\nA1,retail\n", "other.csv")
    assert refusal(read_join_tables, scorer, {"accounts": other}) == (
        f"{other} (--table accounts): no column 'account_id', the id training "
        "joined accounts by; give the accounts export training read"
    )


def two_tables(scorer: Scorer) -> Scorer:
    """The small scorer as if training had joined products (on product_id, its id
    ``id``) before accounts."""
    accounts = scorer.spec["joins"]["accounts"]
    products = {"key": "product_id", "id": "id", "reading": accounts["reading"]}
    return with_spec(scorer, joins={"products": products, "accounts": accounts})


def test_a_joined_table_is_read_in_the_encoding_and_separator_training_read(
    scorer: Scorer, tmp_path: Path
) -> None:
    accounts = scorer.spec["joins"]["accounts"]
    latin = accounts | {"reading": accounts["reading"] | {"encoding": "latin-1"}}
    path = tmp_path / "accounts.csv"
    path.write_bytes("account_id;industry\nA1;café\nA2;retail\n".encode("latin-1"))
    (table,) = read_join_tables(
        with_spec(scorer, joins={"accounts": latin}), {"accounts": path}
    )
    assert table.rows.to_dict("index") == {
        "A1": {"industry": "café"},
        "A2": {"industry": "retail"},
    }
    # Read as UTF-8, as another table's reading would, the same bytes are refused.
    with pytest.raises(ContractError) as raised:
        read_join_tables(scorer, {"accounts": path})
    assert str(raised.value).startswith(
        f"{path} (--table accounts): not UTF-8 text; save it as 'CSV UTF-8'"
    )


def test_a_table_file_that_does_not_read_is_named_with_its_option(
    scorer: Scorer, tmp_path: Path
) -> None:
    for name, text, problem in (
        ("empty.csv", "", "empty (not even a header); export it again"),
        (
            "twice.csv",
            "account_id,industry,industry\nA1,x,y\n",
            "column 'industry' appears twice; give each column its own name",
        ),
        (
            "ragged.csv",
            "account_id,industry\nA1,x\nA2,y,z,w\n",
            "malformed CSV line 3: 4 field(s) where the header has 2",
        ),
    ):
        path = accounts_file(tmp_path, text, name)
        with pytest.raises(ContractError) as raised:
            read_join_tables(scorer, {"accounts": path})
        assert str(raised.value).startswith(f"{path} (--table accounts): {problem}")
    joined = two_tables(scorer)
    assert refusal(read_join_tables, joined, {"zones": tmp_path}) == (
        "--table zones: the model joined no table 'zones' in training (it joined: "
        "products, accounts); drop it"
    )


def test_tables_are_read_in_the_scorers_order_of_joins(
    scorer: Scorer, tmp_path: Path
) -> None:
    joined = two_tables(scorer)
    accounts = accounts_file(tmp_path, ACCOUNTS)
    products = accounts_file(tmp_path, "id,industry\nP1,retail\n", "products.csv")
    read = read_join_tables(joined, {"accounts": accounts, "products": products})
    assert [(t.name, t.key) for t in read] == [
        ("products", "product_id"),
        ("accounts", "account_id"),
    ]
    assert read[0].rows.to_dict("index") == {"P1": {"industry": "retail"}}
    # A table training joined but not given is skipped, the later ones still read.
    (only,) = read_join_tables(joined, {"accounts": accounts})
    assert only.name == "accounts"


def test_a_joined_table_adds_its_columns_by_key(scorer: Scorer) -> None:
    rows = pd.DataFrame(
        {"industry": ["software", "retail"], "employees": ["120", "8"]},
        index=["A1", "7"],
    )
    table = JoinedTable("accounts", "account_id", rows)
    leads = pd.DataFrame(
        {"deal_id": ["d1", "d2", "d3", "d4", "d5"]},
        index=[10, 11, 12, 13, 14],
    ).assign(
        account_id=pd.Series(
            [" A1", "7", "A9", None, "unknown"],
            index=[10, 11, 12, 13, 14],
            dtype=object,
        )
    )
    joined, unmatched = table.join(leads, ["unknown"])
    assert unmatched == 3  # A9, no key, the placeholder
    assert joined.index.tolist() == [10, 11, 12, 13, 14]
    assert list(joined.columns) == ["deal_id", "account_id", "industry", "employees"]
    assert joined["industry"].tolist()[:2] == ["software", "retail"]
    assert joined["industry"].isna().tolist() == [False, False, True, True, True]
    frame, counts = with_joins(
        leads, [table, JoinedTable("x", "deal_id", rows[[]])], []
    )
    assert counts == {"accounts": 3, "x": 5}
    assert list(frame.columns) == ["deal_id", "account_id", "industry", "employees"]
    same, none = with_joins(leads, [], [])
    assert same is leads and none == {}


def test_tables_join_only_the_columns_the_leads_lack(scorer: Scorer) -> None:
    joined = two_tables(scorer)
    products = JoinedTable(
        "products", "product_id", pd.DataFrame({"industry": ["a"], "x": [1]})
    )
    accounts = JoinedTable(
        "accounts",
        "account_id",
        pd.DataFrame({"industry": ["b"], "employees": ["3"], "deal_id": ["z"]}),
    )
    header = ["deal_id", "product_id", "account_id", "created_at", "meddic_champion"]
    fitted = joins_onto(joined, [products, accounts], header, "leads.csv")
    assert [(t.name, t.key) for t in fitted] == [
        ("products", "product_id"),
        ("accounts", "account_id"),
    ]
    # the leads' own columns and an earlier table's are not joined again
    assert list(fitted[0].rows.columns) == ["industry", "x"]
    assert list(fitted[1].rows.columns) == ["employees"]
    assert refusal(
        joins_onto, joined, [accounts], ["deal_id", "industry"], "leads.csv"
    ) == (
        "leads.csv: no column 'account_id', the key training joined accounts on "
        "(joining the accounts table needs it)"
    )


def test_leads_lacking_columns_name_the_tables_to_pass(scorer: Scorer) -> None:
    joined = two_tables(scorer)
    header = ["deal_id", "created_at", "meddic_champion", "account_id"]
    assert refusal(joins_onto, joined, [], header, "leads.csv") == (
        "leads.csv: missing column(s) employees, industry; training joined table(s) "
        "products, accounts onto the deals by key (product_id, account_id): pass "
        "--table products=PATH --table accounts=PATH (the export of each table), or "
        "leads with those columns joined"
    )
    accounts = JoinedTable("accounts", "account_id", pd.DataFrame({"industry": ["b"]}))
    assert refusal(joins_onto, joined, [accounts], header, "x").startswith(
        "x: missing column(s) employees; training joined table(s) products onto "
        "the deals by key (product_id): pass --table products=PATH (the export"
    )
    # Not asked to be complete (the pyfunc), or every table given: no refusal.
    assert joins_onto(joined, [], header, "x", complete=False) == []
    everything = JoinedTable("products", "deal_id", pd.DataFrame({"employees": ["3"]}))
    fitted = joins_onto(joined, [accounts, everything], header, "x")
    assert [t.name for t in fitted] == ["accounts", "products"]
    # Nothing lacking: no refusal although tables were left out.
    full = [*header, "employees", "industry"]
    assert joins_onto(joined, [], full, "x") == []


# --- the pyfunc's settings ------------------------------------------------------------


def test_switched_on_reads_yes_words_only() -> None:
    for value in ("1", "true", "yes", " TRUE ", "Yes\n"):
        assert _switched_on(value), value
    for value in ("", "0", "no", "false", "on", "y", "2"):
        assert not _switched_on(value), value


def test_a_request_names_a_file_only_where_that_is_allowed() -> None:
    closed = ServingSettings()
    assert (closed.expect_version, closed.allow_activities_path) == (None, False)
    assert refusal(closed.activities_file, "/etc/passwd") == (
        "activities_path: this scorer reads no file a request names (a served model "
        "would read any path its server can see); to allow it, set "
        f"{ALLOW_ACTIVITIES_ENV}=1 where the model is loaded, load it with "
        "lead_ml.scorer.load_pyfunc(..., allow_activities_path=True), or export it "
        "with export_scorer(..., allow_activities_path=True)"
    )
    opened = ServingSettings(allow_activities_path=True)
    assert opened.activities_file("logs/a.csv") == Path("logs/a.csv")
    assert refusal(closed.table_files, ["accounts=a.csv"]) == (
        "tables: this scorer reads no file a request names (a served model would "
        "read any path its server can see); to allow it (with activities_path), set "
        f"{ALLOW_ACTIVITIES_ENV}=1 where the model is loaded or load it with "
        "lead_ml.scorer.load_pyfunc(..., allow_activities_path=True); or join the "
        "tables onto the leads"
    )
    # Blank entries name no file: nothing to refuse.
    assert closed.table_files(["", "  "]) == {}
    assert closed.table_files([]) == {}


def test_table_files_are_name_equals_path_each_once() -> None:
    opened = ServingSettings(allow_activities_path=True)
    assert opened.table_files([" accounts = a b.csv ", "", "teams=x=y.csv"]) == {
        "accounts": Path("a b.csv"),
        "teams": Path("x=y.csv"),
    }
    for options in (["accounts"], ["=a.csv"], ["accounts=  "], ["a=1", " a =2"]):
        assert refusal(opened.table_files, options) == (
            f"tables: {options[-1]!r}: give each table once as NAME=PATH, e.g. "
            "['accounts=accounts.csv'] (NAME as under source.tables)"
        )


def test_the_loaders_settings_come_from_the_environment_or_load_pyfunc() -> None:
    assert _requested({}) == ServingSettings(None, False)
    assert _requested({EXPECT_VERSION_ENV: f"  {DIGEST.upper()} "}) == (
        ServingSettings(PINNED, False)
    )
    assert _requested({EXPECT_VERSION_ENV: "   "}) == ServingSettings(None, False)
    assert _requested({ALLOW_ACTIVITIES_ENV: " yes"}) == ServingSettings(None, True)
    assert _requested({ALLOW_ACTIVITIES_ENV: "0"}) == ServingSettings(None, False)
    with pytest.raises(ScorerError, match="not a model version"):
        _requested({EXPECT_VERSION_ENV: "v1"})
    other = "lead-ml-scorer:" + "cd" * 32
    token = _LOADING.set(ServingSettings(other, True))
    try:
        assert _requested({}) == ServingSettings(other, True)
        # The environment's pin wins; its switch only adds.
        assert _requested({EXPECT_VERSION_ENV: DIGEST, ALLOW_ACTIVITIES_ENV: "0"}) == (
            ServingSettings(PINNED, True)
        )
    finally:
        _LOADING.reset(token)
    token = _LOADING.set(ServingSettings(other, False))
    try:
        assert _requested({ALLOW_ACTIVITIES_ENV: "1"}) == ServingSettings(other, True)
    finally:
        _LOADING.reset(token)
    assert _LOADING.get() is None


# --- the pyfunc's rows ----------------------------------------------------------------


def row_numbered(scorer: Scorer) -> Scorer:
    """The small scorer as if its source had no id column (``id: {row_number:
    true}``): deal_id is each row's 1-based number."""
    reading = dict(scorer.spec["reading"])
    reading["deals"] = reading["deals"] | {"row_number": "deal_id"}
    return with_spec(scorer, reading=reading)


def test_a_row_number_id_is_added_in_input_order(scorer: Scorer) -> None:
    assert not row_number_id(scorer)
    numbered = row_numbered(scorer)
    assert row_number_id(numbered)
    other = dict(scorer.spec["reading"])
    other["deals"] = other["deals"] | {"row_number": "row"}
    assert not row_number_id(with_spec(scorer, reading=other))
    raw = raw_leads(3, seed=25).drop(columns="deal_id").set_axis([7, 5, 9])
    added = with_row_numbers(numbered, raw)
    assert list(added.columns) == ["deal_id", *raw.columns]
    assert added["deal_id"].tolist() == ["1", "2", "3"]
    assert added["deal_id"].dtype == "string"
    assert added.index.tolist() == [7, 5, 9]
    assert "deal_id" not in raw.columns  # the input is not changed
    pd.testing.assert_frame_equal(added[list(raw.columns)], raw)
    given = raw.assign(deal_id=["x", "y", "z"])
    assert with_row_numbers(numbered, given) is given
    out = predict_leads(numbered, raw)
    assert out["deal_id"].tolist() == ["1", "2", "3"]
    assert out["probability"].to_numpy(float) == pytest.approx(
        scorer.score(raw.assign(deal_id=["1", "2", "3"]))["probability"].to_numpy(float)
    )
    assert len(with_row_numbers(numbered, raw.head(0))) == 0


def test_the_pyfunc_output_has_nullable_numbers() -> None:
    scores = pd.DataFrame(
        {
            "probability": [0.25, np.nan],
            "score": [25.0, np.nan],
            "n": np.array([1, 2], dtype=np.int64),
            "f": np.array([0.5, 1.5], dtype=np.float32),
            "band": pd.Series(["C", None], dtype="string"),
        }
    )
    out = pyfunc_output(scores)
    assert {c: str(t) for c, t in out.dtypes.items()} == {
        "probability": "Float64",
        "score": "Int64",
        "n": "int64",
        "f": "Float64",
        "band": "string",
    }
    assert out["score"].tolist() == [25, pd.NA]
    assert out["f"].tolist() == [0.5, 1.5]
    assert pyfunc_output(scores[["band"]])["band"].dtype == "string"


def test_one_cell_of_a_text_column_as_the_export_wrote_it() -> None:
    assert _number_text(np.int64(4), set()) == "4"
    assert _number_text(4, {"4.0"}) == "4.0"
    assert _number_text(np.int32(4), {"4", "4.0"}) == "4"
    assert _number_text(4, {"4"}) == "4"
    assert _number_text(4.0, {"4.0"}) == "4.0"
    assert _number_text(4.0, {"4"}) == "4"
    assert _number_text(4.0, {"4", "4.0"}) == "4"
    assert _number_text(4.0, set()) == "4"
    assert _number_text(2.5, {"2.5"}) == "2.5"
    assert _number_text(np.float32(2.5), set()) == "2.5"
    assert _number_text(-3.0, set()) == "-3"
    assert _number_text(1e20, set()) == "100000000000000000000"
    assert _number_text(float("inf"), set()) == "inf"
    assert _number_text(float("-inf"), set()) == "-inf"
    assert _number_text(float("nan"), {"nan"}) is None
    assert _number_text(np.float64("nan"), set()) is None
    for kept in (True, False, np.True_, "3.0", None, pd.NA, b"3"):
        assert _number_text(kept, {"3"}) is kept


def test_which_columns_hold_numbers_to_write_as_text() -> None:
    numbers = pd.Series([3.0, 2.5], name="c", index=[4, 2])
    written = numbers_as_written(numbers)
    assert written.tolist() == ["3", "2.5"]
    assert (written.name, written.index.tolist(), written.dtype) == (
        "c",
        [4, 2],
        np.dtype(object),
    )
    assert numbers_as_written(pd.Series([1, 2], dtype="Int64")).tolist() == ["1", "2"]
    assert numbers_as_written(pd.Series([7, None], dtype=object)).tolist() == [
        "7",
        None,
    ]
    assert numbers_as_written(pd.Series([7.0], dtype=object), ["7.0"]).tolist() == [
        "7.0"
    ]
    for kept in (
        pd.Series(["3", None], dtype=object),  # text (and a blank)
        pd.Series([], dtype=object),
        pd.Series([None, None], dtype=object),
        pd.Series([True, None], dtype=object),
        pd.Series([True, False]),
        pd.Series(["3"], dtype="string"),
    ):
        assert numbers_as_written(kept) is kept


def test_the_levels_of_a_source_column_are_its_categories_training_levels(
    scorer: Scorer,
) -> None:
    categories = scorer.model.info.categories
    assert _column_levels(scorer) == {"industry": categories["industry"]}
    model = scorer.model
    info = replace(model.info, categories={"industry": ["retail", "7.0"]})
    coded = Scorer(TrainedModel(booster=model.booster, info=info), scorer.spec)
    leads = raw_leads(3, seed=26).assign(
        industry=[7.0, 8.0, np.nan], deal_id=[1.0, 2.0, 3.0]
    )
    exported = as_exported(coded, leads)
    assert exported["industry"].tolist() == ["7.0", "8", None]
    assert exported["deal_id"].tolist() == ["1", "2", "3"]
    assert leads["industry"].tolist()[:2] == [7.0, 8.0]  # the input is not changed


def test_a_column_given_twice_is_left_for_the_scorer_to_refuse(scorer: Scorer) -> None:
    leads = raw_leads(2, seed=27).assign(industry=[3.0, 4.0])
    twice = pd.concat([leads, leads[["industry"]]], axis=1)
    exported = as_exported(scorer, twice)
    assert exported.iloc[:, -1].tolist() == [3.0, 4.0]
    assert exported.iloc[:, 3].tolist() == [3.0, 4.0]
    with pytest.raises(ScorerError, match=r"column\(s\) industry appear twice"):
        scorer.score(twice)
    # Number columns keep their numbers (read by their kind).
    typed = leads.assign(employees=[5, 6])
    assert as_exported(scorer, typed)["employees"].tolist() == [5, 6]


# --- the activity log a scorer reads --------------------------------------------------

LOG_COLUMNS = ["deal_id", "timestamp", "activity_type"]


def counting(scorer: Scorer) -> Scorer:
    """The small scorer as if it read an activity log (scorer.json's activities)."""
    return with_spec(scorer, activities=LOG_COLUMNS)


def test_an_activity_log_is_read_by_the_scorers_columns(scorer: Scorer) -> None:
    reads = counting(scorer)
    assert reads.activity_columns == LOG_COLUMNS
    assert reads.counts_activities
    raw = pd.DataFrame(
        {
            # the source's placeholder (missing_values: [unknown]) is no type
            "activity_type": ["call", "email", "", "call", "visit", " Unknown", "call"],
            "deal_id": ["L1", "", "L2", "L3", " L4 ", "L5", "UNKNOWN"],  # nor an id
            "timestamp": [
                "2024-01-02",
                "2024-01-03",
                "2024-01-04",
                "soon",
                "2024-02-01",
                "2024-02-02",
                "2024-02-03",
            ],
            "note": ["a", "b", "c", "d", "e", "f", "g"],
        },
        index=[5, 6, 7, 8, 9, 10, 11],
    )
    assert reads.contract.missing_values == ("unknown",)
    log, left_out = reads.read_activities(raw)
    assert left_out == 5
    assert list(log.columns) == ["deal_id", "timestamp", "activity_type"]
    assert log.index.tolist() == [0, 1]
    assert log["deal_id"].tolist() == ["L1", "L4"]
    assert log["activity_type"].tolist() == ["call", "visit"]
    assert log["timestamp"].tolist() == [
        pd.Timestamp("2024-01-02"),
        pd.Timestamp("2024-02-01"),
    ]
    nothing = reads.no_activities()
    assert list(nothing.columns) == LOG_COLUMNS
    assert len(nothing) == 0
    assert pd.api.types.is_datetime64_any_dtype(nothing["timestamp"])


def test_an_activity_log_lacking_a_column_is_refused_naming_it(scorer: Scorer) -> None:
    reads = counting(scorer)
    assert reads.check_activity_columns([*LOG_COLUMNS, "x"], "a.csv") == LOG_COLUMNS
    assert refusal(reads.check_activity_columns, ["timestamp"], "a.csv") == (
        "a.csv: missing activity column(s) deal_id, activity_type; the activity log "
        "needs deal_id, timestamp, activity_type, as in training"
    )
    with pytest.raises(ScorerError, match=r"^activities: missing activity column"):
        reads.read_activities(pd.DataFrame({"deal_id": ["L1"]}))
    assert refusal(scorer.check_activity_columns, LOG_COLUMNS, "b.csv") == (
        "b.csv: this scorer counts no activities (trained without an activity log); "
        "score without activities"
    )
    with pytest.raises(ScorerError, match="^activities: this scorer counts no"):
        scorer.no_activities()
