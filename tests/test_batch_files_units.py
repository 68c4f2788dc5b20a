"""The batch job's plumbing, with no scorer and files in tmp_path: the summary as
JSON (keys and rounding), the one-line message for a file the job cannot write,
the lock and scratch folder of each file a job writes (a second job refused, what
killed jobs left swept, everything removed on release), the temporary file that
reaches its path only on commit (CSV with or without a byte order mark, Parquet in
zstd without an index), the options named when a job's files are refused, the CRM
import file's checks and dtypes, the id hashes and their index on disk, and the
time stamp of a job. Every expected value is written out in the test."""

from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from lead_ml.batch import (
    AtomicWriter,
    BatchSummary,
    CrmFile,
    IdIndex,
    JobFiles,
    SeenIds,
    Target,
    cannot_write,
    refuse_folder,
    scored_at_moment,
)
from lead_ml.config import WritebackConfig
from lead_ml.tables import Dialect
from lead_ml.vocab import ConfigError, ContractError, ScorerError

UNTOUCHED = "Nothing was replaced: the previous file, if any, is as it was"
AGAIN = "check that folder and try again"


def text(ids: list[str]) -> np.ndarray:
    """The 64-bit hashes pandas gives these strings (what an id hashes to)."""
    return pd.util.hash_array(np.array(ids, dtype=object))


# --- the summary -------------------------------------------------------------------


def test_the_summary_as_json_rounds_each_number_to_its_places() -> None:
    summary = BatchSummary(
        rows_in=1003,
        scored=1000,
        rejected=3,
        unseen={"industry": 2},
        activities_rejected=4,
        seconds=2.71828,
        drift={"employees": 0.123456, "score": 0.30004},
        output="scores.parquet",
        rejects="rejects.csv",
    )
    done = summary.as_dict()
    assert done == {
        "rows_in": 1003,
        "scored": 1000,
        "rejected": 3,
        "unseen_categories": {"industry": 2},
        "activities_rejected": 4,
        "seconds": 2.718,
        "rows_per_second": 369.0,  # 1003 / 2.71828 = 368.983...
        "drift_psi": {"employees": 0.1235, "score": 0.3},
        "drift_warnings": ["score"],
        "drift_checked": True,
        "drift_min_rows": 1000,
        "output": "scores.parquet",
        "rejects": "rejects.csv",
    }
    assert list(done)[:6] == [
        "rows_in",
        "scored",
        "rejected",
        "unseen_categories",
        "activities_rejected",
        "seconds",
    ]


def test_the_crm_file_and_unmatched_leads_are_in_the_summary_only_when_there() -> None:
    summary = BatchSummary(
        rows_in=2,
        scored=2,
        output="s.csv",
        rejects="r.csv",
        crm_file="crm.csv",
        crm_rows=2,
        unmatched={"accounts": 1},
    )
    assert summary.as_dict() == {
        "rows_in": 2,
        "scored": 2,
        "rejected": 0,
        "unseen_categories": {},
        "activities_rejected": 0,
        "seconds": 0.0,
        "rows_per_second": 0.0,
        "drift_psi": {},
        "drift_warnings": [],
        "drift_checked": False,
        "drift_min_rows": 1000,
        "output": "s.csv",
        "rejects": "r.csv",
        "crm_file": "crm.csv",
        "crm_rows": 2,
        "leads_without_match": {"accounts": 1},
    }
    assert list(summary.as_dict())[-3:] == [
        "crm_file",
        "crm_rows",
        "leads_without_match",
    ]


# --- a file the job cannot write ---------------------------------------------------


@pytest.mark.parametrize(
    ("error", "reason", "hint"),
    [
        (
            OSError(errno.ENOSPC, "No space left on device"),
            "No space left on device",
            "free space on that disk or write to another one",
        ),
        (
            OSError(errno.EDQUOT, "Disk quota exceeded"),
            "Disk quota exceeded",
            "free space within your disk quota or write to another disk",
        ),
        (
            OSError(errno.EROFS, "Read-only file system"),
            "Read-only file system",
            "that folder is read-only: choose a folder you can write to",
        ),
        (
            PermissionError(errno.EACCES, "Permission denied"),
            "Permission denied",
            "no permission to write there: choose a folder you can write to",
        ),
        (
            PermissionError(errno.EPERM, "Operation not permitted"),
            "Operation not permitted",
            "no permission to write there: choose a folder you can write to",
        ),
        # An errno without a hint; its own text, even one saying "No space left",
        # is not read: the errno's name is the reason.
        (OSError(errno.EIO, "No space left, it says"), "Input/output error", AGAIN),
        # No errno: the first line of the text.
        (OSError("\n  the disk went away\nsecond line"), "the disk went away", AGAIN),
        # pyarrow's full disk: no errno, the words in the text.
        (
            OSError("Error writing bytes to file. Detail: No space left on device"),
            "No space left on device",
            "free space on that disk or write to another one",
        ),
    ],
    ids=["ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "EIO", "none", "pyarrow"],
)
def test_a_write_error_is_one_line_naming_the_file_the_reason_and_a_fix(
    error: OSError, reason: str, hint: str
) -> None:
    message = str(cannot_write(Path("/data/scores.csv"), error))
    assert message == (
        f"/data/scores.csv: cannot write it ({reason}); {hint}. {UNTOUCHED}"
    )


def test_a_folder_given_as_a_file_is_refused_with_a_file_path_to_use(
    tmp_path: Path,
) -> None:
    for name, suggested in (
        ("out.csv", "scores.csv"),
        ("r.parquet", "scores.parquet"),
        ("outdir", "scores.parquet"),  # no suffix: Parquet
    ):
        folder = tmp_path / name
        folder.mkdir()
        with pytest.raises(ContractError) as raised:
            refuse_folder(folder, "--rejects")
        assert str(raised.value) == (
            f"{folder} (--rejects): a folder, not a file; give a file path such as "
            f"{tmp_path}/{name}/{suggested}"
        )


# --- locks and scratch folders -----------------------------------------------------


def refusal(path: Path, holder: str, option: str) -> str:
    return (
        f"{path}: another lead-ml job (pid {holder}) is writing it; wait for that "
        f"job to end or give {option} another path"
    )


def test_a_second_job_on_a_file_is_refused_naming_the_holder_and_the_option(
    tmp_path: Path,
) -> None:
    path = tmp_path.resolve() / "out.csv"
    first = Target(path, "--output")
    old = os.umask(0o022)
    try:
        first.acquire()
    finally:
        os.umask(old)
    lock = tmp_path / ".out.csv.lead-ml.lock"
    assert lock.read_text() == f"{os.getpid()}\n"
    assert stat.S_IMODE(lock.stat().st_mode) == 0o644
    assert first.scratch.is_dir() and list(first.scratch.iterdir()) == []
    second = Target(tmp_path / "out.csv", "--rejects")
    with pytest.raises(ContractError) as raised:
        second.acquire()
    assert str(raised.value) == refusal(path, str(os.getpid()), "--rejects")
    assert not second.scratch.exists()
    second.release()  # the refused one removes nothing of the first one's
    assert lock.read_text() == f"{os.getpid()}\n" and first.scratch.is_dir()
    first.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    first.release()  # twice: nothing more to do
    third = Target(path, "--output")
    third.acquire()
    third.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "holder"),
    [
        (b"", "?"),
        # Not lead-ml's: the first 32 bytes, undecodable ones replaced.
        (b"\xff" + b"7" * 40, "\ufffd" + "7" * 31),
    ],
    ids=["empty", "garbage"],
)
def test_a_refusal_quotes_what_the_lock_file_holds(
    tmp_path: Path, content: bytes, holder: str
) -> None:
    first = Target(tmp_path / "out.parquet", "--output")
    first.acquire()
    (tmp_path / ".out.parquet.lead-ml.lock").write_bytes(content)
    second = Target(tmp_path / "out.parquet", "--output")
    with pytest.raises(ContractError) as raised:
        second.acquire()
    path = tmp_path.resolve() / "out.parquet"
    assert str(raised.value) == refusal(path, holder, "--output")
    first.release()


@pytest.mark.parametrize("change", ["removed", "replaced"])
def test_a_lock_file_removed_while_it_is_taken_is_taken_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    target = Target(tmp_path / "out.csv", "--output")
    real = fcntl.flock
    calls: list[int] = []

    def flock(fd: int, operation: int) -> None:
        real(fd, operation)
        calls.append(fd)
        if len(calls) == 1:  # the job before ends now: it removes its lock file
            target.lock.unlink()
            if change == "replaced":  # and another job makes a new one
                target.lock.write_bytes(b"")

    monkeypatch.setattr(fcntl, "flock", flock)
    target.acquire()
    assert len(calls) == 2
    assert target.lock.read_text() == f"{os.getpid()}\n"
    with pytest.raises(ContractError, match="another lead-ml job"):
        Target(tmp_path / "out.csv", "--output").acquire()  # the file's lock is held
    target.release()
    assert list(tmp_path.iterdir()) == []


def test_a_job_sweeps_what_killed_jobs_left_beside_its_file(tmp_path: Path) -> None:
    stale = tmp_path / ".out.csv.lead-ml-job-4242-0badcafe"
    (stale / "ids").mkdir(parents=True)
    (stale / "ids" / "hashes.u64").write_bytes(b"\0" * 8)
    (tmp_path / ".out.csv.partial").write_text("half a file")  # older versions
    (tmp_path / ".out.csv.lead-ml-job-stray").write_text("a file, not a folder")
    (tmp_path / ".other.csv.lead-ml-job-4242-0badcafe").mkdir()
    (tmp_path / "out.csv").write_text("previous\n")
    target = Target(tmp_path / "out.csv", "--output")
    target.acquire()
    kept = [".other.csv.lead-ml-job-4242-0badcafe", ".out.csv.lead-ml-job-stray"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*kept, ".out.csv.lead-ml.lock", target.scratch.name, "out.csv"]
    )
    assert (tmp_path / "out.csv").read_text() == "previous\n"
    (target.scratch / "tmp.csv").write_text("x")
    target.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*kept, "out.csv"])


def test_a_target_makes_its_folders_and_names_its_scratch_folder(
    tmp_path: Path,
) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    one = Target(tmp_path / "link" / "out.csv", "--output")
    two = Target(real / "out.csv", "--crm-file")
    assert one.path == real.resolve() / "out.csv"
    assert one.lock == real.resolve() / ".out.csv.lead-ml.lock"
    assert one.scratch.parent == real.resolve()
    pattern = rf"\.out\.csv\.lead-ml-job-{os.getpid()}-[0-9a-f]{{8}}"
    assert re.fullmatch(pattern, one.scratch.name)
    assert re.fullmatch(pattern, two.scratch.name)
    assert one.scratch != two.scratch
    one.acquire()  # through the symlink: the same lock
    with pytest.raises(ContractError, match=r"give --crm-file another path$"):
        two.acquire()
    one.release()
    deep = Target(tmp_path / "a" / "b" / "scores.csv", "--output")
    deep.acquire()
    assert deep.scratch.is_dir()
    assert (tmp_path / "a" / "b" / ".scores.csv.lead-ml.lock").is_file()
    deep.release()
    assert list((tmp_path / "a" / "b").iterdir()) == []


def test_a_target_in_a_folder_it_cannot_make_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("a file where the folder should be")
    target = Target(tmp_path / "afile" / "out.csv", "--output")
    with pytest.raises(ContractError) as raised:
        target.acquire()
    path = tmp_path.resolve() / "afile" / "out.csv"
    assert str(raised.value) == (
        f"{path}: cannot write it (File exists); {AGAIN}. {UNTOUCHED}"
    )
    target.release()


def test_releasing_a_lock_file_someone_removed_still_releases(tmp_path: Path) -> None:
    target = Target(tmp_path / "out.csv", "--output")
    target.acquire()
    target.lock.unlink()
    target.release()
    assert list(tmp_path.iterdir()) == []


# --- the temporary file and commit -------------------------------------------------

EMPTY = pd.DataFrame(
    {"deal_id": pd.Series(dtype="string"), "probability": pd.Series(dtype="float64")}
)


def scratch_in(tmp_path: Path) -> Path:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return scratch


def test_a_csv_file_has_its_header_once_and_no_index(tmp_path: Path) -> None:
    scratch = scratch_in(tmp_path)
    path = tmp_path / "scores.csv"
    writer = AtomicWriter(path, EMPTY, scratch)
    writer.write(
        pd.DataFrame({"probability": [0.25], "deal_id": ["a"], "x": [1]}, index=[7])
    )
    writer.write(EMPTY)  # once begun, an empty frame adds nothing
    writer.write(pd.DataFrame({"deal_id": ["b", "c"], "probability": [0.5, 0.125]}))
    assert writer.rows == 3
    assert not path.exists()
    writer.commit()
    assert path.read_bytes() == b"deal_id,probability\na,0.25\nb,0.5\nc,0.125\n"
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize(
    ("options", "start"),
    [({}, b""), ({"bom": False}, b""), ({"bom": True}, b"\xef\xbb\xbf")],
    ids=["default", "no-bom", "bom"],
)
def test_a_csv_file_starts_with_a_byte_order_mark_only_when_asked(
    tmp_path: Path, options: dict[str, bool], start: bytes
) -> None:
    path = tmp_path / "crm.csv"
    writer = AtomicWriter(path, EMPTY, scratch_in(tmp_path), **options)
    writer.write(pd.DataFrame({"deal_id": ["é"], "probability": [0.5]}))
    writer.commit()
    assert path.read_bytes() == start + b"deal_id,probability\n\xc3\xa9,0.5\n"


def test_a_parquet_file_is_zstd_with_the_empty_frames_schema_and_no_index(
    tmp_path: Path,
) -> None:
    path = tmp_path / "scores.parquet"
    writer = AtomicWriter(path, EMPTY, scratch_in(tmp_path))
    writer.write(pd.DataFrame({"deal_id": ["a", "b"], "probability": [1, 0]}, [3, 5]))
    writer.write(pd.DataFrame({"deal_id": ["c"], "probability": [0.5]}, index=[9]))
    assert not path.exists()
    writer.commit()
    file = pq.ParquetFile(path)
    meta = file.metadata
    assert (meta.num_rows, meta.num_row_groups, meta.num_columns) == (3, 2, 2)
    assert {
        meta.row_group(g).column(c).compression for g in range(2) for c in range(2)
    } == {"ZSTD"}
    schema = file.schema_arrow
    assert schema.names == ["deal_id", "probability"]
    assert [str(t) for t in schema.types] == ["large_string", "double"]
    assert schema.pandas_metadata["index_columns"] == []
    assert file.read().to_pydict() == {
        "deal_id": ["a", "b", "c"],
        "probability": [1.0, 0.0, 0.5],
    }


def test_an_aborted_file_leaves_the_previous_one_as_it_was(tmp_path: Path) -> None:
    scratch = scratch_in(tmp_path)
    for name in ("scores.csv", "scores.parquet"):
        path = tmp_path / name
        path.write_bytes(b"previous")
        writer = AtomicWriter(path, EMPTY, scratch)
        writer.write(pd.DataFrame({"deal_id": ["a"], "probability": [0.5]}))
        assert (scratch / name).exists()
        writer.abort()
        assert path.read_bytes() == b"previous"
        assert list(scratch.iterdir()) == []


def test_a_file_that_cannot_be_written_or_moved_into_place_is_named(
    tmp_path: Path,
) -> None:
    lead = pd.DataFrame({"deal_id": ["a"], "probability": [0.5]})
    lost = AtomicWriter(tmp_path / "scores.csv", EMPTY, tmp_path / "gone")
    with pytest.raises(ContractError) as raised:
        lost.write(lead)
    assert str(raised.value) == (
        f"{tmp_path}/scores.csv: cannot write it (No such file or directory); "
        f"{AGAIN}. {UNTOUCHED}"
    )
    taken = tmp_path / "taken.csv"
    (taken / "inside").mkdir(parents=True)  # a folder where the file goes
    scratch = scratch_in(tmp_path)
    writer = AtomicWriter(taken, EMPTY, scratch)
    writer.write(lead)
    with pytest.raises(ContractError) as raised:
        writer.commit()
    assert str(raised.value) == (
        f"{taken}: cannot write it (Is a directory); {AGAIN}. {UNTOUCHED}"
    )
    writer.abort()
    assert list(scratch.iterdir()) == []


# --- a job's files -----------------------------------------------------------------


def test_job_files_by_the_option_naming_each(tmp_path: Path) -> None:
    files = JobFiles(
        tmp_path / "in.csv",
        tmp_path / "out.parquet",
        tmp_path / "rej.csv",
        None,
        tmp_path / "crm.CSV",
    )
    assert files.named() == {
        "--input": tmp_path / "in.csv",
        "--output": tmp_path / "out.parquet",
        "--rejects": tmp_path / "rej.csv",
        "--activities": None,
        "--crm-file": tmp_path / "crm.CSV",
    }
    files.check()  # none of them exists yet: nothing to refuse


@pytest.mark.parametrize("option", ["--output", "--rejects", "--crm-file"])
def test_a_folder_where_a_job_writes_a_file_is_refused_naming_the_option(
    tmp_path: Path, option: str
) -> None:
    paths = {
        "--output": tmp_path / "out.csv",
        "--rejects": tmp_path / "rej.csv",
        "--crm-file": tmp_path / "crm.csv",
    }
    paths[option].mkdir()
    files = JobFiles(
        tmp_path / "in.csv",
        paths["--output"],
        paths["--rejects"],
        crm=paths["--crm-file"],
    )
    with pytest.raises(ContractError) as raised:
        files.check()
    assert str(raised.value) == (
        f"{paths[option]} ({option}): a folder, not a file; give a file path such "
        f"as {paths[option]}/scores.csv"
    )


@pytest.mark.parametrize(
    ("name", "given"),
    [("crm.txt", ".txt"), ("crm", "none"), ("crm.parquet", ".parquet")],
)
def test_a_crm_file_that_is_not_csv_is_refused(
    tmp_path: Path, name: str, given: str
) -> None:
    crm = tmp_path / name
    files = JobFiles(
        tmp_path / "in.csv", tmp_path / "o.csv", tmp_path / "r.csv", crm=crm
    )
    with pytest.raises(ScorerError) as raised:
        files.check()
    assert str(raised.value) == (
        f"{crm}: the CRM import file (--crm-file) is CSV, what the CRM's import "
        f"tools read; give a .csv path, not {given}"
    )


def test_a_crm_file_that_is_the_output_is_refused_naming_both(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    files = JobFiles(tmp_path / "in.csv", out, tmp_path / "r.csv", crm=out)
    with pytest.raises(ContractError) as raised:
        files.check()
    assert str(raised.value) == (
        f"--crm-file and --output are the same file ({out}); give --crm-file a path "
        "of its own"
    )


# --- the CRM import file -----------------------------------------------------------

MAPPING = WritebackConfig(
    columns={
        "id": "Id",
        "probability": "P",
        "score": "S",
        "band": "B",
        "model_version": "M",
        "scored_at": "T",
    },
    passthrough={"owner": "OwnerId", "region": "Region"},
)
CRM_DTYPES = {
    "Id": "string",
    "P": "int64",
    "S": "int64",
    "B": "string",
    "M": "string",
    "T": "string",
    "OwnerId": "string",
    "Region": "string",
}


def test_the_crm_file_has_a_dtype_per_column_and_an_empty_frame_of_them() -> None:
    crm = CrmFile(Path("crm.csv"), MAPPING, scored_at_moment("2026-12-01T09:30Z"))
    assert crm.dtypes() == CRM_DTYPES
    empty = crm.empty()
    assert len(empty) == 0
    assert {c: str(d) for c, d in empty.dtypes.items()} == CRM_DTYPES
    assert list(empty.columns) == list(CRM_DTYPES)


def test_crm_rows_are_whole_percents_kept_on_the_scores_index() -> None:
    crm = CrmFile(Path("crm.csv"), MAPPING, scored_at_moment("2026-12-01T09:30Z"))
    scores = pd.DataFrame(
        {
            "deal_id": ["a", "b"],
            "probability": [0.42, 0.994],
            "score": [42, 99],
            "band": ["C", "A"],
            "model_version": ["v1", "v1"],
        },
        index=[5, 2],
    )
    leads = pd.DataFrame(
        {"owner": [f"o{i}" for i in range(6)], "region": [f"r{i}" for i in range(6)]}
    )
    rows = crm.rows(scores, leads, "deal_id")
    assert rows.index.tolist() == [5, 2]
    assert {c: str(d) for c, d in rows.dtypes.items()} == CRM_DTYPES
    assert rows.to_dict("list") == {
        "Id": ["a", "b"],
        "P": [42, 99],
        "S": [42, 99],
        "B": ["C", "A"],
        "M": ["v1", "v1"],
        "T": ["2026-12-01T09:30:00Z"] * 2,
        "OwnerId": ["o5", "o2"],
        "Region": ["r5", "r2"],
    }


def test_a_crm_mapping_the_job_cannot_fill_is_refused_whole() -> None:
    crm = CrmFile(Path("crm.csv"), MAPPING, scored_at_moment("2026-12-01T09:30Z"))
    with pytest.raises(ContractError) as raised:
        crm.check(["deal_id"], True, "leads.csv")
    assert str(raised.value) == (
        "leads.csv: no column 'owner', 'region', which writeback.passthrough names; "
        "add it to the export or remove it from writeback.passthrough"
    )
    with pytest.raises(ContractError, match="^leads.csv: no column 'region', which"):
        crm.check(["deal_id", "owner"], True, "leads.csv")
    crm.check(["owner", "region"], False, "leads.csv")  # no reasons mapped
    explained = WritebackConfig(
        columns={
            "id": "Id",
            "next_question": "Ask",
            "top_reasons": "Why",
            "model_version": "M",
            "scored_at": "T",
        }
    )
    reasons = CrmFile(Path("crm.csv"), explained, crm.scored_at)
    reasons.check([], True, "leads.csv")
    with pytest.raises(ConfigError) as refused:
        reasons.check([], False, "leads.csv")
    assert str(refused.value) == (
        "writeback.columns maps top_reasons, next_question, which --no-explain "
        "leaves out; drop --no-explain, or those fields from the mapping"
    )


# --- id hashes and the id index ----------------------------------------------------


def test_seen_ids_keep_64_bit_hashes_apart_however_close() -> None:
    seen = SeenIds()
    assert seen.hashes.dtype == np.uint64 and seen.hashes.size == 0
    seen.add(np.array([2**63], dtype=np.uint64))
    near = np.array([2**63, 2**63 + 1, 2**63 - 1], dtype=np.uint64)
    assert seen.contains(near).tolist() == [True, False, False]
    assert seen.hashes.dtype == np.uint64


def test_a_blank_or_missing_id_hashes_as_the_empty_text() -> None:
    hashes = SeenIds.hash(pd.Series([None, "", pd.NA, "a"], dtype=object))
    blank, a = text(["", "a"]).tolist()
    assert hashes.dtype == np.uint64
    assert hashes.tolist() == [blank, blank, blank, a]


def test_a_new_id_index_holds_nothing(tmp_path: Path) -> None:
    index = IdIndex(tmp_path)
    assert (index.folder, index.rows) == (tmp_path, 0)
    assert index.repeated.dtype == np.uint64 and index.repeated.size == 0
    top = np.array([0, 2**64 - 1], dtype=np.uint64)
    assert index.is_repeated(top).tolist() == [False, False]
    index.close()


def test_repeated_hashes_are_found_among_one_or_several(tmp_path: Path) -> None:
    index = IdIndex(tmp_path)
    index.repeated = np.array([100], dtype=np.uint64)
    asked = np.array([50, 100, 200, 2**64 - 1], dtype=np.uint64)
    assert index.is_repeated(asked).tolist() == [False, True, False, False]
    index.repeated = np.array([10, 20, 30], dtype=np.uint64)
    asked = np.array([5, 10, 15, 30, 31], dtype=np.uint64)
    assert index.is_repeated(asked).tolist() == [False, True, False, True, False]


def test_the_id_index_spreads_ids_over_buckets_by_their_top_bits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [f"L{i}" for i in range(150)] + [f"L{i}" for i in range(0, 100, 2)]
    source = tmp_path / "leads.parquet"
    pd.DataFrame({"deal_id": ids, "x": 1}).to_parquet(source)
    folder = tmp_path / "ids"
    folder.mkdir()
    buckets: dict[str, list[int]] = {}
    real = np.fromfile

    def fromfile(file: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        values = real(file, *args, **kwargs)
        if isinstance(file, Path) and file.name.startswith("bucket"):
            buckets[file.name] = sorted(values.tolist())
        return values

    monkeypatch.setattr(np, "fromfile", fromfile)
    index = IdIndex.build(source, 16, folder, "deal_id")
    hashes = text(ids)
    top = hashes >> np.uint64(58)  # 64 buckets: the top 6 of the 64 bits
    assert sorted(buckets) == sorted(f"bucket{b}.u64" for b in range(64))
    for b in range(64):
        assert buckets[f"bucket{b}.u64"] == sorted(hashes[top == b].tolist())
    assert len(np.unique(top)) > 40  # 200 ids: most buckets hold some
    assert index.rows == 200
    assert index.repeated.dtype == np.uint64
    twice = text([f"L{i}" for i in range(0, 100, 2)])
    assert index.repeated.tolist() == sorted(twice.tolist())
    assert index.hashes(200).tolist() == hashes.tolist()
    index.close()
    assert [p.name for p in folder.iterdir()] == ["hashes.u64"]


def test_the_id_index_reads_the_file_by_its_dialect(tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    source.write_text("name,city\nAna,Lyon\nBo,Oslo\nCy,Rome\n")
    folder = tmp_path / "ids"
    folder.mkdir()
    dialect = Dialect(row_number="row")  # no id column: each row's number
    index = IdIndex.build(source, 2, folder, "row", dialect=dialect)
    assert index.rows == 3
    assert index.hashes(3).tolist() == text(["1", "2", "3"]).tolist()
    assert index.repeated.tolist() == []
    index.close()


def test_an_id_index_shorter_than_the_input_says_to_run_again(tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    source.write_text("deal_id\na\nb\nc\n")
    folder = tmp_path / "ids"
    folder.mkdir()
    index = IdIndex.build(source, 2, folder, "deal_id")
    assert index.hashes(2).tolist() == text(["a", "b"]).tolist()
    with pytest.raises(RuntimeError) as raised:
        index.hashes(5)  # the input grew: one hash left for five rows
    assert str(raised.value) == (
        "the id index ran out at 5 more rows: the input changed while it was "
        "being scored; run the job again"
    )
    index.close()


# --- the job's time stamp ----------------------------------------------------------


def test_a_job_time_stamp_that_cannot_be_read_is_refused_saying_why() -> None:
    with pytest.raises(ConfigError) as raised:
        scored_at_moment("yesterday")
    assert str(raised.value) == (
        "--scored-at: 'yesterday' is not an ISO 8601 time; give one such as "
        "2026-12-01T09:30:00Z"
    )
    with pytest.raises(ConfigError) as raised:
        scored_at_moment("2026-12-01T10:30:00")
    assert str(raised.value) == (
        "--scored-at: '2026-12-01T10:30:00' has no time zone; add Z for UTC (or an "
        "offset such as +01:00)"
    )


def test_a_time_stamp_with_an_offset_is_utc_whatever_the_local_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "XYZ-9")  # nine hours east of UTC, no tz database
    time.tzset()
    try:
        moment = scored_at_moment("2026-12-01T10:30:00.75-05:00")
    finally:
        monkeypatch.undo()
        time.tzset()
    assert moment.tzinfo is UTC
    assert moment.isoformat() == "2026-12-01T15:30:00+00:00"
    assert moment == datetime(2026, 12, 1, 15, 30, tzinfo=UTC)
