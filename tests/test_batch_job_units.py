"""What a batch job reads besides the leads, on small scorers built in memory
(tests/small_scorer.py) and files in tmp_path: the activity log split once into
parts and read back chunk by chunk (each chunk's activities exactly those the
scorer reads from the whole log), malformed CSV records rejected in place, the
many-to-one tables joined onto every chunk, and each file named in its errors.
Every expected value is worked out in the test: scores by Scorer.score of the whole
frame (and the whole activity log)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from small_scorer import activity_scorer, raw_activities, raw_leads, write
from small_scorer import small_scorer as built

from lead_ml import batch
from lead_ml.batch import (
    ACTIVITY_KEY,
    ActivityParts,
    CrmFile,
    JobInterrupted,
    SeenIds,
    StopRequest,
    _chunk_activities,
    _overlap,
    _with_joins,
    id_keys,
    score_file,
    scored_at_moment,
    split_activities,
)
from lead_ml.config import WritebackConfig
from lead_ml.scorer import Scorer
from lead_ml.tables import Chunk
from lead_ml.vocab import ContractError, ScorerError


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return built()


@pytest.fixture(scope="module")
def counting() -> Scorer:
    return activity_scorer()


def hashes_of(ids: list[str | None]) -> np.ndarray:
    return np.unique(SeenIds.hash(pd.Series(ids, dtype="string").dropna()))


# --- the activity log in parts -----------------------------------------------------


def test_hashes_overlap_only_where_a_value_is_shared() -> None:
    held = np.array([10, 20, 30], dtype=np.uint64)
    for hashes, shared in (
        ([20], True),
        ([30], True),  # the last one held
        ([10], True),
        ([5, 40], False),  # before the first and past the last
        ([15, 25], False),
        ([40, 41, 30], True),
        ([], False),
    ):
        assert _overlap(held, np.array(hashes, dtype=np.uint64)) is shared, hashes
    assert _overlap(np.array([7], dtype=np.uint64), np.array([7], np.uint64))
    assert not _overlap(np.array([7], np.uint64), np.array([8, 6], np.uint64))
    nothing = np.empty(0, dtype=np.uint64)
    assert not _overlap(nothing, np.array([0, 1], dtype=np.uint64))


def test_an_activity_log_is_split_into_parts_with_each_ones_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = pd.DataFrame(
        {
            "deal_id": ["a", " b ", "a", "unknown", "c", "d", "", "e", "f"],
            "timestamp": ["2024-01-02"] * 9,
            "activity_type": ["call"] * 9,
            "other": ["x"] * 9,  # not read
        }
    )
    text = log.to_csv(index=False).replace("\nc,", "\nc,extra,field,", 1)
    path = tmp_path / "activities.csv"
    path.write_text(text)
    monkeypatch.setattr(batch, "ACTIVITY_PART_ROWS", 3)
    first = hashes_of(["a", "b"])  # part 0's ids: blank and the placeholder are none
    # The index budget is spent exactly by the first part: the later ones are
    # read for every chunk (no hashes kept).
    monkeypatch.setattr(batch, "ACTIVITY_INDEX_BYTES", first.nbytes + 8)
    columns = ["deal_id", "timestamp", "activity_type"]
    split = split_activities(path, columns, tmp_path / "parts", ("unknown",))
    assert split.source == path and split.folder == tmp_path / "parts"
    assert split.malformed == 1  # the record of c, with two fields too many
    assert [name.name for name, _ in split.parts] == ["0.arrow", "1.arrow", "2.arrow"]
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == [
        "0.arrow",
        "1.arrow",
        "2.arrow",
    ]
    held = [h for _, h in split.parts]
    assert held[0] is not None and held[0].tolist() == first.tolist()
    assert held[1] is not None  # 8 bytes of budget were left for it
    assert held[1].tolist() == hashes_of(["d"]).tolist()  # the placeholder is no id
    assert held[2] is None
    tables = []
    for name, _ in split.parts:
        with pa.memory_map(str(name)) as source:
            tables.append(pa.ipc.open_file(source).read_all())
    assert [t.column_names for t in tables] == [[*columns, ACTIVITY_KEY]] * 3
    keys = [v for t in tables for v in t.column(ACTIVITY_KEY).to_pylist()]
    assert keys == ["a", "b", "a", None, "d", None, "e", "f"]
    ids = [v for t in tables for v in t.column("deal_id").to_pylist()]
    assert ids == ["a", " b ", "a", "unknown", "d", None, "e", "f"]
    # With a budget of exactly one part's hashes, the next part has none.
    monkeypatch.setattr(batch, "ACTIVITY_INDEX_BYTES", first.nbytes)
    again = split_activities(path, columns, tmp_path / "again", ("unknown",))
    assert [h is None for _, h in again.parts] == [False, True, True]


def test_splitting_the_log_stops_at_a_signal(tmp_path: Path) -> None:
    path = write(
        pd.DataFrame({"deal_id": ["a"], "timestamp": ["x"], "activity_type": ["c"]}),
        tmp_path / "activities.csv",
    )
    stop = StopRequest()
    stop.record(signal.SIGTERM, None)
    columns = ["deal_id", "timestamp", "activity_type"]
    with pytest.raises(JobInterrupted):
        split_activities(path, columns, tmp_path / "parts", stop=stop)
    assert split_activities(path, columns, tmp_path / "p2", stop=StopRequest()).parts


def parts_of(
    counting: Scorer, log: pd.DataFrame, tmp_path: Path, rows: int, budget: int
) -> ActivityParts:
    path = write(log, tmp_path / "activities.csv")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(batch, "ACTIVITY_PART_ROWS", rows)
        patch.setattr(batch, "ACTIVITY_INDEX_BYTES", budget)
        assert counting.activity_columns is not None
        return split_activities(
            path,
            counting.activity_columns,
            tmp_path / "parts",
            counting.contract.missing_values,
        )


def test_a_chunks_activities_are_those_the_scorer_reads_from_the_whole_log(
    counting: Scorer, tmp_path: Path
) -> None:
    raw = raw_leads(30, seed=31)
    log = raw_activities(raw, seed=31)
    log.loc[4, "timestamp"] = "not a time"  # unusable: counted, left out
    # The log in lead order: most parts hold the ids of few chunks.
    split = parts_of(counting, log, tmp_path, rows=10, budget=10**6)
    assert len(split.parts) == -(-len(log) // 10) >= 4
    assert all(held is not None for _, held in split.parts)
    chunk = raw.iloc[12:20].copy()
    chunk.loc[14, "deal_id"] = ""  # no id: has no activities
    keys = id_keys(chunk["deal_id"], counting.contract.missing_values)
    hashes = SeenIds.hash(keys)
    got, left_out = _chunk_activities(counting, split, keys, hashes)
    assert got is not None
    wanted = log[log["deal_id"].isin(chunk["deal_id"])]
    expected, unusable = counting.read_activities(wanted, "x")
    pd.testing.assert_frame_equal(got, expected)
    assert left_out == unusable == int(wanted.index.isin([4]).sum())
    # Parts that hold none of the chunk's ids are never opened.
    keep = [
        name
        for name, held in split.parts
        if held is not None and _overlap(held, np.unique(hashes))
    ]
    assert 0 < len(keep) < len(split.parts)
    for name, _ in split.parts:
        if name not in keep:
            name.unlink()
    again, _ = _chunk_activities(counting, split, keys, hashes)
    assert again is not None
    pd.testing.assert_frame_equal(again, expected)
    # Parts kept without hashes (past the index budget) are read for every chunk.
    blind = ActivityParts(split.source, split.folder, [(n, None) for n in keep])
    read_blind, _ = _chunk_activities(counting, blind, keys, hashes)
    assert read_blind is not None
    pd.testing.assert_frame_equal(read_blind, expected)
    assert _chunk_activities(counting, None, keys, hashes) == (None, 0)


def test_leads_the_log_never_mentions_have_no_activities(
    counting: Scorer, tmp_path: Path
) -> None:
    raw = raw_leads(6, seed=32)
    split = parts_of(counting, raw_activities(raw, 32), tmp_path, 4, 10**6)
    others = pd.Series(["nobody", "no-one"], dtype="string")
    got, left_out = _chunk_activities(counting, split, others, SeenIds.hash(others))
    assert left_out == 0
    assert got is not None and len(got) == 0
    assert list(got.columns) == ["deal_id", "timestamp", "activity_type"]
    assert got["timestamp"].dtype.kind == "M"
    scored = counting.score_chunk(
        pd.DataFrame({**raw.iloc[:2].to_dict("list"), "deal_id": ["nobody", "no-one"]}),
        got,
    )
    # No activity is 0 activities, not unknown: as when the whole log is given.
    whole = counting.score(
        raw.iloc[:2].assign(deal_id=["nobody", "no-one"]), raw_activities(raw, 32)
    )
    assert scored.output["probability"].tolist() == pytest.approx(
        whole["probability"].tolist(), rel=1e-12
    )


def test_a_job_with_an_activity_log_scores_as_the_whole_log_scores(
    counting: Scorer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = raw_leads(40, seed=33)
    log = raw_activities(raw, seed=33)
    bad = [3, 17, 30]  # unusable activity rows in three different chunks
    log.loc[bad, "timestamp"] = "soon"
    source = write(raw, tmp_path / "leads.csv")
    # A malformed activity record (a field too many) is counted as rejected too.
    text = log.to_csv(index=False).splitlines()
    text.insert(9, text[9] + ",extra")
    (tmp_path / "activities.csv").write_text("\n".join(text) + "\n")
    monkeypatch.setattr(batch, "ACTIVITY_PART_ROWS", 25)
    out, rejects = tmp_path / "scores.parquet", tmp_path / "rejects.csv"
    summary = score_file(
        counting,
        source,
        out,
        rejects,
        activities_path=tmp_path / "activities.csv",
        chunk_rows=9,
    )
    assert summary.activities_rejected == len(bad) + 1
    assert (summary.rows_in, summary.scored, summary.rejected) == (40, 40, 0)
    written = pd.read_parquet(out)
    whole = counting.score(pd.read_csv(source, dtype=str, keep_default_na=False), log)
    assert written["deal_id"].tolist() == whole["deal_id"].tolist()
    assert written["probability"].to_numpy() == pytest.approx(
        whole["probability"].to_numpy(float), rel=1e-12
    )
    assert written["top_reasons"].tolist() == whole["top_reasons"].tolist()
    without = counting.score(raw)  # activities unknown: other scores
    assert not np.allclose(
        written["probability"].to_numpy(), without["probability"].to_numpy(float)
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "activities.csv",
        "leads.csv",
        "rejects.csv",
        "scores.parquet",
    ]


def test_an_activity_log_the_scorer_cannot_read_is_named(
    counting: Scorer, tmp_path: Path
) -> None:
    raw = raw_leads(3, seed=34)
    source = write(raw, tmp_path / "leads.csv")
    out, rejects = tmp_path / "scores.csv", tmp_path / "rejects.csv"
    lacking = write(
        pd.DataFrame({"deal_id": ["a"], "activity_type": ["call"]}),
        tmp_path / "log.csv",
    )
    with pytest.raises(ScorerError) as raised:
        score_file(counting, source, out, rejects, activities_path=lacking)
    assert str(raised.value).startswith(f"{lacking}: ")
    assert "timestamp" in str(raised.value)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ContractError) as empty_log:
        score_file(counting, source, out, rejects, activities_path=empty)
    assert str(empty_log.value) == (
        f"{empty} (the activities): empty (not even a header); export it again"
    )
    assert not out.exists() and not rejects.exists()


# --- the leads file ----------------------------------------------------------------


def test_malformed_lead_records_are_rejected_where_they_are(
    scorer: Scorer, tmp_path: Path
) -> None:
    raw = raw_leads(12, seed=35)
    raw.loc[7, "employees"] = "0"  # out of bounds: the scorer rejects it
    lines = raw.to_csv(index=False).splitlines()
    lines[3] += ",surplus"  # data row 2
    lines[10] = lines[10].rsplit(",", 1)[0]  # data row 9, a field short
    source = tmp_path / "leads.csv"
    source.write_text("\n".join(lines) + "\n")
    out, rejects = tmp_path / "scores.csv", tmp_path / "rejects.csv"
    summary = score_file(scorer, source, out, rejects, chunk_rows=4)
    assert (summary.rows_in, summary.scored, summary.rejected) == (12, 9, 3)
    bad = pd.read_csv(rejects, dtype=str, keep_default_na=False)
    assert bad["row"].tolist() == ["2", "7", "9"]
    assert bad["table"].tolist() == ["leads"] * 3
    assert bad["reason"][0].startswith("malformed CSV line 4: 6 field(s) where the ")
    assert bad["reason"][2].startswith("malformed CSV line 11: 4 field(s) where ")
    assert "employees" in bad["reason"][1]
    # The rejected leads' ids as the file holds them, to find them in the CRM.
    assert bad["deal_id"].tolist() == ["", raw.loc[7, "deal_id"], ""]
    written = pd.read_csv(out, dtype={"deal_id": str})
    kept = raw.drop(index=[2, 7, 9])
    assert written["deal_id"].tolist() == kept["deal_id"].tolist()
    expected = scorer.score(kept)["probability"].to_numpy(float)
    assert written["probability"].to_numpy() == pytest.approx(expected, rel=1e-12)
    # The default is explained scores.
    assert list(written.columns) == scorer.output_columns(True)


def test_repeats_and_rejects_of_several_chunks_are_in_file_order(
    scorer: Scorer, tmp_path: Path
) -> None:
    raw = raw_leads(10, seed=36)
    raw.at[6, "deal_id"] = str(raw.at[1, "deal_id"])  # a repeat in a later chunk
    raw.loc[5, "industry"] = "farming"  # unseen: scored, counted
    raw.loc[8, "employees"] = "-3"
    lines = raw.to_csv(index=False).splitlines()
    lines[8] += ",x"  # data row 7, the same chunk as the repeat
    source = tmp_path / "leads.csv"
    source.write_text("\n".join(lines) + "\n")
    out, rejects = tmp_path / "scores.parquet", tmp_path / "rejects.parquet"
    summary = score_file(scorer, source, out, rejects, chunk_rows=5)
    bad = pd.read_parquet(rejects)
    assert bad["row"].astype(int).tolist() == [6, 7, 8]
    assert bad["table"].tolist() == ["leads"] * 3
    assert bad["reason"][0].startswith("duplicate deal_id")
    assert bad["reason"][1].startswith("malformed CSV line 9")
    assert bad.index.tolist() == [0, 1, 2]
    assert summary.unseen == {"industry": 1}
    assert (summary.rows_in, summary.scored, summary.rejected) == (10, 7, 3)


def test_each_file_a_job_cannot_use_is_named_in_its_error(
    scorer: Scorer, tmp_path: Path
) -> None:
    out, rejects = tmp_path / "scores.csv", tmp_path / "rejects.csv"
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ContractError) as unread:
        score_file(scorer, empty, out, rejects)
    assert str(unread.value) == (
        f"{empty} (the input): empty (not even a header); export it again"
    )
    lacking = write(raw_leads(3, 37).drop(columns="deal_id"), tmp_path / "l.csv")
    with pytest.raises(ScorerError) as raised:
        score_file(scorer, lacking, out, rejects)
    assert str(raised.value).startswith(f"{lacking}: ")
    assert "deal_id" in str(raised.value)
    assert not out.exists() and not rejects.exists()


def test_a_job_times_itself(scorer: Scorer, tmp_path: Path) -> None:
    source = write(raw_leads(5, seed=38), tmp_path / "leads.csv")
    before = time.perf_counter()
    summary = score_file(scorer, source, tmp_path / "s.csv", tmp_path / "r.csv")
    took = time.perf_counter() - before
    assert 0 < summary.seconds <= took


def test_a_signal_stops_the_id_pass_at_its_next_chunk(
    scorer: Scorer, tmp_path: Path
) -> None:
    source = write(raw_leads(20, seed=39), tmp_path / "leads.csv")
    heard: list[int] = []

    def checking(rows: int) -> None:
        heard.append(rows)
        os.kill(os.getpid(), signal.SIGTERM)  # recorded by the job's handler

    out, rejects = tmp_path / "scores.csv", tmp_path / "rejects.csv"
    with pytest.raises(JobInterrupted):
        score_file(scorer, source, out, rejects, chunk_rows=3, checking=checking)
    assert heard == [3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leads.csv"]


# --- many-to-one tables -------------------------------------------------------------


ACCOUNTS = "account_id,industry\nA1,software\nA2,retail\nA3,mining\n"


def test_a_joined_table_fills_every_chunk_as_training_joined_it(
    scorer: Scorer, tmp_path: Path
) -> None:
    raw = raw_leads(11, seed=40)
    account = ["A1", "A2", "A3", "A9", "A1", "", "A2", "A9", "A3", "A1", "A2"]
    leads = raw.drop(columns="industry").assign(account_id=account)
    source = write(leads, tmp_path / "leads.csv")
    (tmp_path / "accounts.csv").write_text(ACCOUNTS)
    out, rejects = tmp_path / "scores.parquet", tmp_path / "rejects.csv"
    summary = score_file(
        scorer,
        source,
        out,
        rejects,
        chunk_rows=4,
        tables={"accounts": tmp_path / "accounts.csv"},
    )
    # Leads with no account row (A9, and the blank) have the industry unknown.
    assert summary.unmatched == {"accounts": 3}
    assert summary.as_dict()["leads_without_match"] == {"accounts": 3}
    industry = {"A1": "software", "A2": "retail", "A3": "mining"}
    joined = raw.assign(industry=[industry.get(a, "") for a in account])
    expected = scorer.score(joined)
    written = pd.read_parquet(out)
    assert written["deal_id"].tolist() == raw["deal_id"].tolist()
    assert written["probability"].to_numpy() == pytest.approx(
        expected["probability"].to_numpy(float), rel=1e-12
    )
    assert written["top_reasons"].tolist() == expected["top_reasons"].tolist()


def test_joining_a_chunk_keeps_its_rows_and_numbers(scorer: Scorer) -> None:
    frame = pd.DataFrame({"deal_id": ["d1", "d2", "d3"], "account_id": ["A1", "x", ""]})
    chunk = Chunk(pa.Table.from_pandas(frame), 40, {1: "malformed"})
    rows = pd.DataFrame({"industry": ["software"]}, index=["A1"])
    summary = batch.BatchSummary(unmatched={"accounts": 5})
    joined = _with_joins(
        chunk, [batch.JoinedTable("accounts", "account_id", rows)], summary, ()
    )
    assert joined.first_row == 40 and joined.malformed == {1: "malformed"}
    assert joined.table.column_names == ["deal_id", "account_id", "industry"]
    assert joined.frame["industry"].tolist()[0] == "software"
    assert pd.isna(joined.frame["industry"].tolist()[1:]).all()
    assert summary.unmatched == {"accounts": 7}
    fresh = batch.BatchSummary()
    _with_joins(chunk, [batch.JoinedTable("accounts", "account_id", rows)], fresh, ())
    assert fresh.unmatched == {"accounts": 2}


# --- the job as a whole --------------------------------------------------------------


def in_dialect(scorer: Scorer) -> Scorer:
    """``scorer`` as trained on exports in ``;``-separated cp1252 with decimal
    commas (leads and activities alike)."""
    reading = {"sep": ";", "encoding": "cp1252", "decimal": ","}
    spec = scorer.spec | {
        "reading": {
            table: dict(scorer.spec["reading"][table]) | reading
            for table in ("deals", "activities")
        }
    }
    return Scorer(scorer.model, spec)


def test_leads_and_activities_are_read_in_the_training_dialect(
    counting: Scorer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = raw_leads(30, seed=51)
    raw.loc[[2, 9, 20], "industry"] = "énergie"  # cp1252 bytes in three chunks
    raw.loc[[4, 11], "employees"] = ["12.5", "1980.25"]
    log = raw_activities(raw, seed=51)
    log.loc[[1, 30], "activity_type"] = "réunion"
    export = raw.assign(employees=raw["employees"].str.replace(".", ",", regex=False))
    source = tmp_path / "leads.csv"
    export.to_csv(source, sep=";", encoding="cp1252", index=False)
    activities = tmp_path / "activities.csv"
    log.to_csv(activities, sep=";", encoding="cp1252", index=False)
    monkeypatch.setattr(batch, "ACTIVITY_PART_ROWS", 25)  # several parts
    out, rejects = tmp_path / "scores.parquet", tmp_path / "rejects.csv"
    summary = score_file(
        in_dialect(counting),
        source,
        out,
        rejects,
        activities_path=activities,
        chunk_rows=7,
    )
    assert (summary.rows_in, summary.scored, summary.rejected) == (30, 30, 0)
    assert summary.unseen == {"industry": 3}
    written = pd.read_parquet(out)
    whole = counting.score(raw, log)  # the same values, read by the default dialect
    assert written["deal_id"].tolist() == raw["deal_id"].tolist()
    assert written["probability"].to_numpy() == pytest.approx(
        whole["probability"].to_numpy(float), rel=1e-12
    )
    assert written["top_reasons"].tolist() == whole["top_reasons"].tolist()
    # A file in that dialect that is empty is named as the input (or activities).
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    for leads_file, log_file, what in (
        (empty, None, "the input"),
        (source, empty, "the activities"),
    ):
        with pytest.raises(ContractError) as raised:
            score_file(
                in_dialect(counting),
                leads_file,
                tmp_path / "again.csv",
                tmp_path / "again-rejects.csv",
                activities_path=log_file,
            )
        assert str(raised.value) == (
            f"{empty} ({what}): empty (not even a header); export it again"
        )


def test_a_lead_file_without_the_id_is_told_so_not_sent_to_a_join(
    scorer: Scorer, tmp_path: Path
) -> None:
    """Training joined an accounts table onto the deals: a file lacking a column
    the table could give is told to pass it, but a file lacking the id (which no
    table gives) is told that its id is missing, naming the file."""
    out, rejects = tmp_path / "scores.csv", tmp_path / "rejects.csv"
    lacking = write(raw_leads(3, 52).drop(columns="deal_id"), tmp_path / "l.csv")
    with pytest.raises(ScorerError) as raised:
        score_file(scorer, lacking, out, rejects)
    needed = ", ".join(scorer.contract.columns)
    assert str(raised.value) == (
        f"{lacking}: missing column(s) deal_id; a lead row needs {needed} (values "
        "may be empty except deal_id)"
    )
    no_industry = raw_leads(3, 52).drop(columns="industry")
    lacking = write(no_industry.assign(account_id="A1"), tmp_path / "m.csv")
    with pytest.raises(ScorerError) as joined:
        score_file(scorer, lacking, out, rejects)
    assert str(joined.value).startswith(
        f"{lacking}: missing column(s) industry; training joined table(s) accounts "
        "onto the deals by key (account_id): pass --table accounts=PATH"
    )
    assert not out.exists() and not rejects.exists()


def test_a_placeholder_id_is_missing_in_every_chunk_never_a_duplicate(
    scorer: Scorer, tmp_path: Path
) -> None:
    raw = raw_leads(9, seed=53)
    placeholder = scorer.contract.missing_values[0]
    raw.loc[[1, 7], "deal_id"] = placeholder  # in two chunks
    source = write(raw, tmp_path / "leads.csv")
    out, rejects = tmp_path / "scores.csv", tmp_path / "rejects.csv"
    summary = score_file(scorer, source, out, rejects, chunk_rows=4)
    bad = pd.read_csv(rejects, dtype=str, keep_default_na=False)
    assert bad["row"].tolist() == ["1", "7"]
    assert bad["reason"].tolist() == ["deal_id is missing"] * 2
    assert bad["deal_id"].tolist() == [placeholder] * 2  # as the file holds it
    assert (summary.scored, summary.rejected) == (7, 2)


def test_an_id_first_seen_on_a_rejected_row_is_scored_when_it_comes_again(
    scorer: Scorer, tmp_path: Path
) -> None:
    """Only a scored lead makes a later one with its id a duplicate: an id whose
    first row was rejected (out of bounds) is scored at its next valid row."""
    raw = raw_leads(12, seed=54)
    raw.at[9, "deal_id"] = str(raw.at[5, "deal_id"])  # a later chunk
    raw.loc[5, "employees"] = "0"
    raw.at[10, "deal_id"] = str(raw.at[6, "deal_id"])  # scored first: a duplicate
    source = write(raw, tmp_path / "leads.csv")
    out, rejects = tmp_path / "scores.csv", tmp_path / "rejects.csv"
    summary = score_file(scorer, source, out, rejects, chunk_rows=4)
    bad = pd.read_csv(rejects, dtype=str, keep_default_na=False)
    assert bad["row"].tolist() == ["5", "10"]
    assert "employees" in bad["reason"][0]
    assert bad["reason"][1].startswith("duplicate deal_id")
    written = pd.read_csv(out, dtype={"deal_id": str})
    kept = raw.drop(index=[5, 10])
    assert written["deal_id"].tolist() == kept["deal_id"].tolist()
    assert (summary.scored, summary.rejected) == (10, 2)


def test_a_job_without_reasons_writes_the_plain_columns(
    scorer: Scorer, tmp_path: Path
) -> None:
    raw = raw_leads(6, seed=55)
    source = write(raw, tmp_path / "leads.csv")
    out, rejects = tmp_path / "scores.csv", tmp_path / "rejects.csv"
    score_file(scorer, source, out, rejects, explain_reasons=False, chunk_rows=4)
    written = pd.read_csv(out, dtype={"deal_id": str})
    assert list(written.columns) == scorer.output_columns(False)
    assert list(written.columns) != scorer.output_columns(True)
    expected = scorer.score(raw, explain_reasons=False)
    assert written["probability"].to_numpy() == pytest.approx(
        expected["probability"].to_numpy(float), rel=1e-12
    )


def renamed(scorer: Scorer, names: dict[str, str]) -> Scorer:
    """``scorer`` as trained on an export whose columns carry other ``names``."""
    contract = dict(scorer.spec["contract"])
    contract["id_column"] = names.get(contract["id_column"], contract["id_column"])
    contract["kinds"] = {names.get(k, k): v for k, v in contract["kinds"].items()}
    registry = scorer.spec["registry"]
    specs = [
        dict(s) | {"column": names.get(s["column"], s["column"])}
        for s in registry["specs"]
    ]
    spec = scorer.spec | {
        "contract": contract,
        "registry": dict(registry) | {"specs": specs},
        "joins": {},
    }
    return Scorer(scorer.model, spec)


def test_input_columns_named_like_the_rejects_own_are_kept_as_input_columns(
    scorer: Scorer, tmp_path: Path
) -> None:
    """An export whose id is called ``row`` and whose industry is called
    ``reason``: the rejects file keeps its own table, row and reason columns, and
    gives the input's as input_row and input_reason."""
    names = {"deal_id": "row", "industry": "reason"}
    odd = renamed(scorer, names)
    raw = raw_leads(8, seed=56)
    raw.loc[3, "employees"] = "0"
    raw.at[6, "deal_id"] = str(raw.at[2, "deal_id"])
    source = write(raw.rename(columns=names), tmp_path / "leads.csv")
    out, rejects = tmp_path / "scores.csv", tmp_path / "rejects.csv"
    summary = score_file(odd, source, out, rejects, chunk_rows=4)
    assert (summary.scored, summary.rejected) == (6, 2)
    bad = pd.read_csv(rejects, dtype=str, keep_default_na=False)
    assert list(bad.columns) == [
        "table",
        "row",
        "reason",
        "input_row",
        "created_at",
        "employees",
        "input_reason",
        "meddic_champion",
    ]
    assert bad["row"].tolist() == ["3", "6"]
    assert bad["input_row"].tolist() == raw["deal_id"][[3, 6]].tolist()
    assert bad["input_reason"].tolist() == raw["industry"][[3, 6]].tolist()
    assert bad["reason"][1].startswith("duplicate row ")
    written = pd.read_csv(out, dtype={"row": str})
    expected = scorer.score(raw.drop(index=[3, 6]))
    assert written["row"].tolist() == expected["deal_id"].tolist()
    assert written["probability"].to_numpy() == pytest.approx(
        expected["probability"].to_numpy(float), rel=1e-12
    )


def crm_file(path: Path, excel_bom: bool = False) -> CrmFile:
    mapping = WritebackConfig(
        columns={
            "id": "Id",
            "probability": "Score__c",
            "model_version": "Model__c",
            "scored_at": "Scored__c",
        },
        passthrough={"owner": "OwnerId"},
        excel_bom=excel_bom,
    )
    return CrmFile(path, mapping, scored_at_moment("2026-12-01T10:00Z"))


def test_the_crm_file_is_a_job_target_like_the_output(
    scorer: Scorer, tmp_path: Path
) -> None:
    """The CRM import file starts with a byte order mark when the mapping asks for
    one; another job writing it, or a path the output also takes, is refused with
    its option named; a passthrough column the input lacks names the input."""
    raw = raw_leads(5, seed=57).assign(owner=[f"O{i}" for i in range(5)])
    source = write(raw, tmp_path / "leads.csv")
    out, rejects = tmp_path / "scores.csv", tmp_path / "rejects.csv"
    crm = crm_file(tmp_path / "crm.csv", excel_bom=True)
    summary = score_file(scorer, source, out, rejects, crm=crm, chunk_rows=2)
    assert summary.crm_rows == 5
    text = crm.path.read_bytes()
    assert text.startswith(b"\xef\xbb\xbfId,Score__c,Model__c,Scored__c,OwnerId\n")
    plain = crm_file(tmp_path / "plain.csv")
    score_file(scorer, source, out, rejects, crm=plain)
    assert plain.path.read_bytes().startswith(
        b"Id,Score__c,Model__c,Scored__c,OwnerId\n"
    )
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    held = batch.Target(crm.path, "--crm-file")
    held.acquire()
    try:
        with pytest.raises(ContractError) as locked:
            score_file(scorer, source, out, rejects, crm=crm)
    finally:
        held.release()
    assert str(locked.value) == (
        f"{crm.path}: another lead-ml job (pid {os.getpid()}) is writing it; wait "
        "for that job to end or give --crm-file another path"
    )
    with pytest.raises(ContractError) as clash:
        score_file(scorer, source, out, rejects, crm=crm_file(out))
    assert str(clash.value) == (
        f"--crm-file and --output are the same file ({out}); give --crm-file a "
        "path of its own"
    )
    no_owner = write(raw.drop(columns="owner"), tmp_path / "no-owner.csv")
    with pytest.raises(ContractError) as absent:
        score_file(scorer, no_owner, out, rejects, crm=crm)
    assert str(absent.value).startswith(f"{no_owner}: no column 'owner', which ")
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before | {"no-owner.csv": no_owner.read_bytes()}


def test_an_activity_part_is_written_with_its_ids_hashes_while_budget_is_left(
    tmp_path: Path,
) -> None:
    table = pa.table({"deal_id": ["b", "a", None, "unknown", "a"]})
    split = ActivityParts(tmp_path / "log.csv", tmp_path)
    left = batch._write_part(split, table, 1, "deal_id", ("unknown",))
    ((name, held),) = split.parts
    assert name == tmp_path / "0.arrow"
    assert held is not None and held.tolist() == hashes_of(["a", "b"]).tolist()
    assert left == 1 - held.nbytes
    assert batch._write_part(split, table, 0, "deal_id", ()) == 0
    assert split.parts[1] == (tmp_path / "1.arrow", None)
    read = pa.ipc.open_file(str(name)).read_all()
    assert read[ACTIVITY_KEY].to_pylist() == ["b", "a", None, None, "a"]
    assert read.schema.field(ACTIVITY_KEY).type == pa.string()
    # All keys missing: still a text column, not Arrow's null type.
    nothing = batch._write_part(
        split, pa.table({"deal_id": [None, "unknown"]}), 5, "deal_id", ("unknown",)
    )
    assert nothing == 5
    last = pa.ipc.open_file(str(split.parts[-1][0])).read_all()
    assert last.schema.field(ACTIVITY_KEY).type == pa.string()
    gone = ActivityParts(tmp_path / "log.csv", tmp_path / "no-such-folder")
    with pytest.raises(ContractError) as unwritten:
        batch._write_part(gone, table, 0, "deal_id", ())
    assert str(unwritten.value).startswith(
        f"{tmp_path / 'no-such-folder' / '0.arrow'}: cannot write it ("
    )
