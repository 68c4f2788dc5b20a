"""The batch job's rules on a small scorer built in memory (tests/small_scorer.py) and
files in tmp_path: a file scored in chunks gives the scorer's own output, repeated
ids are rejected within and across chunks, the counts reconcile, what it refuses
before reading a row, the id index, the CRM import file and the summary. Every
expected value is worked out in the test (scores by Scorer.score of the whole
frame)."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from small_scorer import VERSION, raw_leads, write
from small_scorer import small_scorer as built

from lead_ml.batch import (
    DRIFT_MIN_ROWS,
    BatchSummary,
    CrmFile,
    IdIndex,
    JobInterrupted,
    SeenIds,
    StopRequest,
    id_keys,
    output_suffix,
    refuse_collisions,
    refuse_folder,
    score_file,
    scored_at_moment,
)
from lead_ml.config import WritebackConfig
from lead_ml.scorer import Scorer
from lead_ml.tables import quote_value
from lead_ml.vocab import ConfigError, ContractError, ScorerError


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return built()


# --- the job -----------------------------------------------------------------------


def test_a_file_scored_in_chunks_is_the_scorers_output_with_rejects_apart(
    scorer: Scorer, tmp_path: Path
) -> None:
    raw = raw_leads(23, seed=21)
    raw.loc[3, "employees"] = "0"  # out of bounds
    raw.at[9, "deal_id"] = str(raw.at[2, "deal_id"])  # a repeat in another chunk
    raw.at[5, "deal_id"] = str(raw.at[4, "deal_id"])  # a repeat in the same chunk
    raw.loc[12, "deal_id"] = ""
    source = write(raw, tmp_path / "leads.csv")
    out, rejects = tmp_path / "scores.csv", tmp_path / "rejects.csv"
    seen: list[int] = []
    checked: list[int] = []
    summary = score_file(
        scorer,
        source,
        out,
        rejects,
        chunk_rows=4,
        progress=seen.append,
        checking=checked.append,
    )
    assert seen == [4, 4, 4, 4, 4, 3]
    assert checked == [4, 4, 4, 4, 4, 3]
    assert (summary.rows_in, summary.scored, summary.rejected) == (23, 19, 4)
    assert summary.unseen == {"industry": 0}
    assert summary.output == str(out) and summary.rejects == str(rejects)
    assert summary.seconds > 0
    written = pd.read_csv(out, dtype={"deal_id": str})
    whole = scorer.score(pd.read_csv(source, dtype=str, keep_default_na=False))
    kept = whole[whole["reject_reason"].isna()]
    assert written["deal_id"].tolist() == kept["deal_id"].tolist()
    assert written["probability"].to_numpy() == pytest.approx(
        kept["probability"].to_numpy(float), rel=1e-12
    )
    assert written["band"].tolist() == kept["band"].tolist()
    assert (written["model_version"] == VERSION).all()
    bad = pd.read_csv(rejects, dtype=str, keep_default_na=False)
    assert list(bad.columns[:3]) == ["table", "row", "reason"]
    assert bad["row"].astype(int).tolist() == [3, 5, 9, 12]
    assert "employees" in bad["reason"][0]
    # Within a chunk the contract names the repeat; across chunks the job does.
    assert "duplicate" in bad["reason"][1] and raw.loc[4, "deal_id"] in bad["reason"][1]
    assert bad["reason"][2] == (
        f"duplicate deal_id {quote_value(raw.loc[2, 'deal_id'])} (already scored at "
        "an earlier row)"
    )
    assert bad["reason"][3] == "deal_id is missing"
    assert bad["deal_id"].tolist()[:3] == [
        raw.loc[3, "deal_id"],
        raw.loc[4, "deal_id"],
        raw.loc[2, "deal_id"],
    ]
    # Too few rows for drift warnings, but PSI is reported for every feature.
    assert not summary.drift_checked
    assert set(summary.drift) == {*scorer.model.info.feature_names, "score"}
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == ["leads.csv", "rejects.csv", "scores.csv"]


def test_a_parquet_output_and_no_reasons_give_the_same_scores(
    scorer: Scorer, tmp_path: Path
) -> None:
    raw = raw_leads(9, seed=22)
    source = write(raw, tmp_path / "leads.csv")
    out = tmp_path / "scores.parquet"
    summary = score_file(
        scorer,
        source,
        out,
        tmp_path / "rejects.parquet",
        explain_reasons=False,
        chunk_rows=5,
    )
    assert summary.scored == 9 and summary.rejected == 0
    written = pd.read_parquet(out)
    assert list(written.columns) == scorer.output_columns(False)
    expected = scorer.score(raw, explain_reasons=False)["probability"]
    assert written["probability"].tolist() == pytest.approx(expected.tolist())
    assert len(pd.read_parquet(tmp_path / "rejects.parquet")) == 0


def test_a_job_refuses_what_it_cannot_do_before_writing(
    scorer: Scorer, tmp_path: Path
) -> None:
    raw = raw_leads(3, seed=23)
    source = write(raw, tmp_path / "leads.csv")
    out, rejects = tmp_path / "scores.csv", tmp_path / "rejects.csv"
    with pytest.raises(FileNotFoundError, match="the input file not found"):
        score_file(scorer, tmp_path / "none.csv", out, rejects)
    lacking = write(raw.drop(columns="industry"), tmp_path / "l.csv")
    # A column the leads lack may come from a table training joined: it says so.
    with pytest.raises(ScorerError, match=r"missing column\(s\) industry;") as e:
        score_file(scorer, lacking, out, rejects)
    assert "pass --table accounts=PATH" in str(e.value)
    with pytest.raises(ContractError, match="--rejects and --output are the same"):
        score_file(scorer, source, out, out)
    with pytest.raises(ScorerError, match="must be .parquet or .csv, not .txt"):
        score_file(scorer, source, tmp_path / "scores.txt", rejects)
    log = tmp_path / "activities.csv"
    log.write_text("deal_id,timestamp,activity_type\n")
    with pytest.raises(ScorerError, match="counts no activities"):
        score_file(scorer, source, out, rejects, activities_path=log)
    with pytest.raises(ContractError, match="--activities and --input are the same"):
        score_file(scorer, source, out, rejects, activities_path=source)
    empty = write(raw.iloc[:0], tmp_path / "empty.csv")
    with pytest.raises(ContractError, match="no rows to score"):
        score_file(scorer, empty, out, rejects)
    assert not out.exists() and not rejects.exists()


def test_the_crm_file_holds_one_row_per_scored_lead(
    scorer: Scorer, tmp_path: Path
) -> None:
    raw = raw_leads(7, seed=24).assign(owner=[f"O{i}" for i in range(7)])
    raw.loc[1, "employees"] = "0"
    source = write(raw, tmp_path / "leads.csv")
    mapping = WritebackConfig(
        columns={
            "id": "Id",
            "probability": "Score__c",
            "band": "Band__c",
            "model_version": "Model__c",
            "scored_at": "Scored__c",
        },
        passthrough={"owner": "OwnerId"},
    )
    crm = CrmFile(tmp_path / "crm.csv", mapping, scored_at_moment("2026-12-01T10:00Z"))
    summary = score_file(
        scorer, source, tmp_path / "s.csv", tmp_path / "r.csv", crm=crm, chunk_rows=3
    )
    assert summary.crm_rows == 6 and summary.crm_file == str(crm.path)
    assert summary.as_dict()["crm_rows"] == 6
    rows = pd.read_csv(crm.path, dtype=str)
    assert list(rows.columns) == [
        "Id",
        "Score__c",
        "Band__c",
        "Model__c",
        "Scored__c",
        "OwnerId",
    ]
    scores = pd.read_csv(tmp_path / "s.csv", dtype={"deal_id": str})
    assert rows["Id"].tolist() == scores["deal_id"].tolist()
    percent = np.rint(scores["probability"].to_numpy() * 100).astype(int)
    assert rows["Score__c"].astype(int).tolist() == percent.tolist()
    assert rows["OwnerId"].tolist() == ["O0", "O2", "O3", "O4", "O5", "O6"]
    assert (rows["Scored__c"] == "2026-12-01T10:00:00Z").all()
    with pytest.raises(ContractError, match="no column 'owner'"):
        crm.check(["deal_id"], True, "leads.csv")
    explained = WritebackConfig(columns=mapping.columns | {"top_reasons": "Why__c"})
    with pytest.raises(ConfigError, match="maps top_reasons, which --no-explain"):
        CrmFile(crm.path, explained, crm.scored_at).check([], False, "leads.csv")


def test_a_decimal_crm_probability_and_a_date_stamp() -> None:
    mapping = WritebackConfig(
        columns={
            "id": "Id",
            "probability": "P",
            "model_version": "M",
            "scored_at": "T",
        },
        probability="decimal",
        decimals=2,
        scored_at="date",
    )
    crm = CrmFile(Path("crm.csv"), mapping, scored_at_moment("2026-12-01T23:30-02:00"))
    assert crm.stamp == "2026-12-02"
    scores = pd.DataFrame(
        {"deal_id": ["a", "b"], "probability": [0.4242, 0.004], "model_version": "v"},
        index=[3, 5],
    )
    rows = crm.rows(scores, pd.DataFrame(index=range(6)), "deal_id")
    assert rows["P"].tolist() == [0.42, 0.0]
    assert rows.index.tolist() == [3, 5]
    assert crm.dtypes() == {
        "Id": "string",
        "P": "float64",
        "M": "string",
        "T": "string",
    }
    assert crm.passthrough(["deal_id"]) == []


# --- ids ---------------------------------------------------------------------------


def test_ids_are_read_as_the_scorer_reads_them() -> None:
    ids = pd.Series([" a", "a ", None, "unknown", ""])
    assert id_keys(ids, ("unknown",)).isna().tolist() == [False] * 2 + [True] * 3
    assert id_keys(ids, ("unknown",)).tolist()[:2] == ["a", "a"]
    assert id_keys(ids).tolist()[3] == "unknown"
    # A float id column (Parquet, or pandas' reading of a CSV) reads as the text.
    assert id_keys(pd.Series([7.0, 7.5, np.nan])).tolist()[:2] == ["7", "7.5"]


def test_seen_ids_find_exactly_the_hashes_added() -> None:
    seen = SeenIds()
    hashes = SeenIds.hash(pd.Series(["a", "b", "c", "d"]))
    assert len(set(hashes.tolist())) == 4
    assert not seen.contains(hashes).any()
    seen.add(hashes[[2, 0, 2]])
    assert seen.contains(hashes).tolist() == [True, False, True, False]
    assert seen.hashes.tolist() == sorted({hashes[0], hashes[2]})
    seen.add(hashes[[3]])
    assert seen.contains(hashes).tolist() == [True, False, True, True]
    big = np.array([np.iinfo(np.uint64).max], dtype=np.uint64)
    assert seen.contains(big).tolist() == [False]


def test_the_id_index_finds_the_ids_a_file_repeats(tmp_path: Path) -> None:
    ids = ["x", "y", " x", "z", "y", "w", "unknown", "unknown", "7", "7 "]
    frame = pd.DataFrame({"deal_id": ids})
    source = tmp_path / "leads.parquet"
    frame.to_parquet(source)
    folder = tmp_path / "ids"
    folder.mkdir()
    index = IdIndex.build(source, 3, folder, "deal_id", ("unknown",))
    assert index.rows == 10
    keys = SeenIds.hash(id_keys(frame["deal_id"], ("unknown",)))
    assert index.hashes(4).tolist() == keys[:4].tolist()
    assert index.hashes(6).tolist() == keys[4:].tolist()
    with pytest.raises(RuntimeError, match="the id index ran out"):
        index.hashes(1)
    index.close()
    # x, y, the blank (placeholder) ids and 7 occur twice
    repeated = {
        *SeenIds.hash(pd.Series(["x", "y", "7"])).tolist(),
        *SeenIds.hash(pd.Series([None], dtype="string")).tolist(),
    }
    assert set(index.repeated.tolist()) == repeated
    assert index.repeated.tolist() == sorted(repeated)
    assert index.is_repeated(keys).tolist() == [
        True,
        True,
        True,
        False,
        True,
        False,
        True,
        True,
        True,
        True,
    ]
    assert sorted(p.name for p in folder.iterdir()) == ["hashes.u64"]
    empty = IdIndex(folder)
    assert empty.is_repeated(keys[:2]).tolist() == [False, False]


# --- paths -------------------------------------------------------------------------


def test_paths_a_job_refuses(tmp_path: Path) -> None:
    assert output_suffix(Path("a.CSV")) == ".csv"
    assert output_suffix(Path("a.parquet")) == ".parquet"
    with pytest.raises(ScorerError, match="not none"):
        output_suffix(Path("scores"))
    refuse_folder(tmp_path / "new.csv", "--output")
    with pytest.raises(ContractError, match=r"\(--output\): a folder, not a file"):
        refuse_folder(tmp_path, "--output")
    one = tmp_path / "one.csv"
    one.write_text("x\n")
    link = tmp_path / "link.csv"
    link.symlink_to(one)
    hard = tmp_path / "hard.csv"
    hard.hardlink_to(one)
    refuse_collisions({"--input": one, "--output": tmp_path / "o.csv", "--x": None})
    for other in (link, hard, one):
        with pytest.raises(ContractError, match="--output and --input are the same"):
            refuse_collisions({"--input": one, "--output": other})


# --- summary and signals ----------------------------------------------------------


def test_the_summary_reconciles_and_warns_of_drift_only_when_it_can_tell() -> None:
    summary = BatchSummary(rows_in=10, scored=8, rejected=2, seconds=4.0)
    summary.drift = {"employees": 0.3, "score": 0.25, "industry": 0.1}
    assert summary.rows_per_second == 2.5
    assert not summary.drift_checked and summary.drift_warnings == []
    done = summary.as_dict()
    assert done["rows_per_second"] == 2.5 and done["drift_min_rows"] == DRIFT_MIN_ROWS
    assert "crm_file" not in done and "leads_without_match" not in done
    assert BatchSummary().rows_per_second == 0.0
    big = BatchSummary(
        rows_in=DRIFT_MIN_ROWS, scored=DRIFT_MIN_ROWS, drift=summary.drift
    )
    assert big.drift_checked
    assert big.drift_warnings == ["employees"]  # 0.25 itself is no warning
    assert BatchSummary(scored=DRIFT_MIN_ROWS - 1).drift_checked is False
    matched = BatchSummary(unmatched={"accounts": 2}).as_dict()
    assert matched["leads_without_match"] == {"accounts": 2}


def test_a_stop_request_keeps_the_first_signal() -> None:
    stop = StopRequest()
    stop.check()
    stop.record(signal.SIGTERM, None)
    stop.record(signal.SIGINT, None)
    with pytest.raises(JobInterrupted, match="stopped by SIGTERM") as raised:
        stop.check()
    assert raised.value.exit_code == 143
    assert JobInterrupted(signal.SIGINT).exit_code == 130


def test_a_job_time_stamp_is_utc_to_the_second() -> None:
    moment = scored_at_moment("2026-12-01T10:30:00.5+01:00")
    assert moment == datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    now = scored_at_moment()
    assert now.tzinfo is not None and now.microsecond == 0
    with pytest.raises(ConfigError, match="no time zone"):
        scored_at_moment("2026-12-01T10:30:00")
    with pytest.raises(ConfigError, match="not an ISO 8601 time"):
        scored_at_moment("yesterday")
