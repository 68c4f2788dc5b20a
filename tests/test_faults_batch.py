"""The fault suite of the batch job (`lead-ml score`): concurrent writers, colliding
paths, killed jobs, broken files, a full disk, read-only folders, markup in names and
bad cells. Each test checks the message and that no data was lost: rows in = scored +
rejected, the previous output intact, no stray files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import typer
from held import finish, held_job
from projects import Project
from typer.testing import CliRunner

from lead_ml.batch import (
    BatchSummary,
    IdIndex,
    JobInterrupted,
    StopRequest,
    Target,
    score_file,
    split_activities,
)
from lead_ml.cli import app, friendly
from lead_ml.scorer import Scorer, load_scorer
from lead_ml.vocab import ContractError

runner = CliRunner()


@pytest.fixture(scope="module")
def scorer_dir(synthetic_project: Project) -> Path:
    return synthetic_project.path("models/scorer")


@pytest.fixture(scope="module")
def scorer(scorer_dir: Path) -> Scorer:
    return load_scorer(scorer_dir)


@pytest.fixture(scope="module")
def leads(synthetic_project: Project) -> pd.DataFrame:
    """300 lead rows of the synthetic CRM."""
    return synthetic_project.leads().head(300).reset_index(drop=True)


def names(folder: Path) -> list[str]:
    """Every file and folder in ``folder`` (hidden ones too), sorted."""
    return sorted(p.name for p in folder.iterdir())


def score(*arguments: str | Path) -> tuple[int, str]:
    """`lead-ml score` in this process: the exit code and what it printed."""
    result = runner.invoke(app, ["score", *map(str, arguments)])
    return result.exit_code, result.output


def one_line_error(output: str) -> str:
    """The error a refused command printed: one line starting 'error: ', no
    traceback (notes before it aside)."""
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, output
    return lines[0]


def reconciles(out: Path, rejects: Path, rows_in: int) -> tuple[int, int]:
    """Scored and rejected rows as the files hold them, summing to ``rows_in``."""
    scored = len(pd.read_csv(out) if out.suffix == ".csv" else pd.read_parquet(out))
    rejected = len(pd.read_csv(rejects))
    assert scored + rejected == rows_in
    return scored, rejected


def previous_output(
    scorer_dir: Path, leads: pd.DataFrame, folder: Path, name: str = "scores.parquet"
) -> bytes:
    """Score 20 leads into ``folder``/``name`` (yesterday's output); its bytes."""
    leads.head(20).to_parquet(folder / "old.parquet")
    code, output = score(
        "--model",
        scorer_dir,
        "--input",
        folder / "old.parquet",
        "--output",
        folder / name,
        "--no-explain",
    )
    assert code == 0, output
    (folder / "old.parquet").unlink()
    return (folder / name).read_bytes()


# --- concurrent writers, killed jobs -------------------------------------------------


def wait_mid_write(job: subprocess.Popen[str], out: Path) -> Path:
    """Wait until the job has begun its temporary output (its first chunk is
    scored); the job's scratch folder."""
    deadline = time.monotonic() + 120
    pattern = f".{out.name}.lead-ml-job-*/{out.name}"
    while time.monotonic() < deadline:
        partial = list(out.parent.glob(pattern))
        if partial:
            return partial[0].parent
        if job.poll() is not None:
            pytest.fail(f"the job ended first: {job.communicate()}")
        time.sleep(0.02)
    pytest.fail("the job never started writing")


def test_a_second_job_writing_the_same_file_fails_at_once_and_the_first_finishes(
    scorer_dir: Path, leads: pd.DataFrame, tmp_path: Path
) -> None:
    leads.to_parquet(tmp_path / "a.parquet")
    leads.head(40).to_parquet(tmp_path / "b.parquet")
    out, go = tmp_path / "out" / "scores.csv", tmp_path / "go"
    with held_job(
        scorer_dir,
        go,
        "--input",
        tmp_path / "a.parquet",
        "--output",
        out,
        "--chunk-rows",
        "50",
        "--no-explain",
    ) as first:
        wait_mid_write(first, out)
        second = [  # the same output; another output whose rejects are that output
            ["--output", out],
            ["--output", tmp_path / "out/other.parquet", "--rejects", out],
        ]
        losers = [  # both at once: each fails as soon as it reaches the lock
            subprocess.Popen(
                [sys.executable, "-m", "lead_ml.cli", "score", "--model"]
                + [str(scorer_dir), "--input", str(tmp_path / "b.parquet")]
                + list(map(str, options)),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for options in second
        ]
        said = [loser.communicate(timeout=300)[0] for loser in losers]
        go.touch()
        stdout, stderr = finish(first)
        assert first.returncode == 0, stderr
        assert "rows in = scored + rejected: 300 = 300 + 0 (checked)" in stdout
        for loser, output in zip(losers, said, strict=True):
            assert loser.returncode == 2, output
            error = one_line_error(output)
            assert (
                f"{out}: another lead-ml job (pid {first.pid}) is writing it" in error
            )
            assert "wait for that job to end or give --" in error
        scores = pd.read_csv(out)  # the first job's, whole
        assert scores["deal_id"].tolist() == leads["deal_id"].tolist()
        assert names(out.parent) == ["scores.csv", "scores.rejects.csv"]


def test_a_lock_held_in_this_process_refuses_a_job_before_it_reads_a_row(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    leads.to_parquet(tmp_path / "leads.parquet")
    held = Target(tmp_path / "scores.parquet", "--output")
    held.acquire()
    rows: list[int] = []
    try:
        with pytest.raises(ContractError, match=rf"pid {os.getpid()}\) is writing it"):
            score_file(
                scorer,
                tmp_path / "leads.parquet",
                tmp_path / "scores.parquet",
                tmp_path / "r.csv",
                progress=rows.append,
            )
    finally:
        held.release()
    assert rows == [] and names(tmp_path) == ["leads.parquet"]


@pytest.mark.parametrize(
    "stop",
    [signal.SIGKILL, signal.SIGTERM, signal.SIGINT],
    ids=["SIGKILL", "SIGTERM", "SIGINT"],
)
def test_a_killed_job_keeps_the_old_output_and_the_next_run_leaves_no_stray_file(
    synthetic_project: Project,
    scorer_dir: Path,
    leads: pd.DataFrame,
    tmp_path: Path,
    stop: signal.Signals,
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    leads.to_parquet(inputs / "leads.parquet")
    log = synthetic_project.activities_file(inputs)
    assert log is not None
    out = tmp_path / "out"
    out.mkdir()
    before = previous_output(scorer_dir, leads, out)
    with held_job(
        scorer_dir,
        tmp_path / "go",
        "--input",
        inputs / "leads.parquet",
        "--output",
        out / "scores.parquet",
        "--activities",
        log,
        "--chunk-rows",
        "50",
    ) as job:
        scratch = wait_mid_write(job, out / "scores.parquet")
        assert sorted(p.name for p in scratch.iterdir()) == [
            "activities",
            "ids",
            "scores.parquet",
        ]
        job.send_signal(stop)
        # The job stops at the next chunk: let the held one go on to it.
        (tmp_path / "go").touch()
        stdout, stderr = finish(job, 120)
        assert (out / "scores.parquet").read_bytes() == before
        if (
            stop == signal.SIGKILL
        ):  # nothing runs: what it leaves waits for the next job
            assert job.returncode == -signal.SIGKILL
            assert scratch.exists() and (out / ".scores.parquet.lead-ml.lock").exists()
        else:
            assert job.returncode == 128 + stop, stderr
            error = one_line_error(stdout + stderr)
            assert error == (
                f"error: stopped by {stop.name}: nothing was replaced, "
                f"{out / 'scores.parquet'} is as it was; run the job again"
            )
            assert names(out) == ["scores.parquet", "scores.rejects.csv"]
        code, output = score(
            "--model",
            scorer_dir,
            "--input",
            inputs / "leads.parquet",
            "--output",
            out / "scores.parquet",
            "--activities",
            log,
        )
        assert code == 0, output
        assert names(out) == ["scores.parquet", "scores.rejects.csv"]
        assert reconciles(out / "scores.parquet", out / "scores.rejects.csv", 300)[0]


def test_the_signal_handlers_in_place_before_a_job_come_back_after_it(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    leads.head(10).to_parquet(tmp_path / "leads.parquet")
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    score_file(
        scorer, tmp_path / "leads.parquet", tmp_path / "s.csv", tmp_path / "r.csv"
    )
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_a_signal_mid_job_stops_it_at_the_next_chunk_and_replaces_nothing(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    """The handler only records the signal (SIGTERM to this very process, after
    the first chunk); the job stops before the second chunk, its scratch files
    gone, the old output kept and the handlers in place before back."""
    leads.head(30).to_parquet(tmp_path / "leads.parquet")
    (tmp_path / "s.csv").write_text("yesterday\n")
    before = signal.getsignal(signal.SIGTERM)
    chunks: list[int] = []

    def first_chunk_then_term(rows: int) -> None:
        chunks.append(rows)
        if len(chunks) == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(JobInterrupted) as stopped:
        score_file(
            scorer,
            tmp_path / "leads.parquet",
            tmp_path / "s.csv",
            tmp_path / "r.csv",
            chunk_rows=10,
            progress=first_chunk_then_term,
        )
    assert stopped.value.signum == signal.SIGTERM and stopped.value.exit_code == 143
    assert chunks == [10]
    assert (tmp_path / "s.csv").read_text() == "yesterday\n"
    assert names(tmp_path) == ["leads.parquet", "s.csv"]
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_stop_is_heard_in_the_id_pre_pass_and_the_activity_split(
    synthetic_project: Project, scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    """A big file's pre-passes take a while: each checks the request per chunk."""
    asked = StopRequest()
    asked.check()  # nothing asked yet
    asked.record(signal.SIGINT, None)
    asked.record(signal.SIGTERM, None)  # a second signal changes nothing
    leads.head(10).to_parquet(tmp_path / "leads.parquet")
    (tmp_path / "ids").mkdir()
    with pytest.raises(JobInterrupted, match="SIGINT"):
        leads_file, ids = tmp_path / "leads.parquet", tmp_path / "ids"
        IdIndex.build(leads_file, 5, ids, scorer.id_column, stop=asked)
    log = synthetic_project.activities_file(tmp_path)
    assert log is not None and scorer.activity_columns is not None
    with pytest.raises(JobInterrupted, match="SIGINT"):
        split_activities(log, scorer.activity_columns, tmp_path / "parts", stop=asked)


# --- colliding paths ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"--output": "leads.csv"}, ("--output", "--input")),
        ({"--rejects": "leads.csv"}, ("--rejects", "--input")),
        ({"--rejects": "scores.csv"}, ("--rejects", "--output")),
        ({"--summary": "scores.csv"}, ("--summary", "--output")),
        ({"--summary": "leads.csv"}, ("--summary", "--input")),
        ({"--activities": "scores.csv"}, ("--activities", "--output")),
        ({"--output": "link-to-leads.csv"}, ("--output", "--input")),  # symlink
        ({"--rejects": "hard-link-to-leads.csv"}, ("--rejects", "--input")),
        ({"--output": "sub/../leads.csv"}, ("--output", "--input")),
    ],
)
def test_colliding_paths_are_refused_before_a_row_is_read(
    scorer_dir: Path,
    leads: pd.DataFrame,
    tmp_path: Path,
    options: dict[str, str],
    named: tuple[str, str],
) -> None:
    leads.to_csv(tmp_path / "leads.csv", index=False)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link-to-leads.csv").symlink_to(tmp_path / "leads.csv")
    os.link(tmp_path / "leads.csv", tmp_path / "hard-link-to-leads.csv")
    before = (tmp_path / "leads.csv").read_bytes()
    files = names(tmp_path)
    chosen = {"--input": "leads.csv", "--output": "scores.csv"} | options
    arguments = [x for o, p in chosen.items() for x in (o, str(tmp_path / p))]
    code, output = score("--model", scorer_dir, *arguments)
    assert code == 2
    error = one_line_error(output)
    assert f"error: {named[0]} and {named[1]} are the same file (" in error
    assert f"give {named[0]} a path of its own" in error
    assert (tmp_path / "leads.csv").read_bytes() == before
    assert names(tmp_path) == files


# --- files that cannot be read or written ---------------------------------------------


def _corrupt_page(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 400] = b"\x07" * 400
    path.write_bytes(bytes(data))


def _corrupt_footer(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-12] + b"\x00" * 12)


def _repeated_column(path: Path) -> None:
    table = pq.read_table(path)
    pq.write_table(table.append_column("region", table["region"]), path)


@pytest.mark.parametrize(
    ("spoil", "said"),
    [
        (_corrupt_page, "(the input): cannot read it ("),
        (_corrupt_footer, "(the input): cannot read it ("),
        (_repeated_column, "(the input): column 'region' appears twice"),
    ],
)
def test_a_broken_input_is_one_line_and_the_old_output_is_kept(
    scorer_dir: Path, leads: pd.DataFrame, tmp_path: Path, spoil: object, said: str
) -> None:
    before = previous_output(scorer_dir, leads, tmp_path)
    path = tmp_path / "leads.parquet"
    leads.to_parquet(path, compression="snappy")
    assert callable(spoil)
    spoil(path)
    code, output = score(
        "--model", scorer_dir, "--input", path, "--output", tmp_path / "scores.parquet"
    )
    assert code == 2
    error = one_line_error(output)
    assert error.startswith(f"error: {path} {said}"), error
    assert (tmp_path / "scores.parquet").read_bytes() == before
    assert names(tmp_path) == ["leads.parquet", "scores.parquet", "scores.rejects.csv"]


def test_an_output_that_is_a_folder_is_refused_before_any_row_is_scored(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    leads.to_parquet(tmp_path / "leads.parquet")
    (tmp_path / "scores.parquet").mkdir()
    (tmp_path / "scores.parquet" / "kept.txt").write_text("mine")
    rows: list[int] = []
    with pytest.raises(ContractError) as refused:
        score_file(
            scorer,
            tmp_path / "leads.parquet",
            tmp_path / "scores.parquet",
            tmp_path / "r.csv",
            progress=rows.append,
        )
    assert str(refused.value) == (
        f"{tmp_path / 'scores.parquet'} (--output): a folder, not a file; give a "
        f"file path such as {tmp_path / 'scores.parquet' / 'scores.parquet'}"
    )
    assert rows == [] and names(tmp_path) == ["leads.parquet", "scores.parquet"]
    assert names(tmp_path / "scores.parquet") == ["kept.txt"]


@contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A small tmpfs mounted at ``folder`` (root only; skipped otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root: the disk-full case is skipped")
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.mark.parametrize(
    ("size", "name"),
    [
        ("256k", "scores.parquet"),  # full while hashing the ids (64 files of 4 kB)
        ("1m", "scores.csv"),  # full while writing the scores
    ],
)
def test_a_full_disk_is_one_line_and_the_old_output_is_kept(
    scorer_dir: Path,
    synthetic_project: Project,
    leads: pd.DataFrame,
    tmp_path: Path,
    size: str,
    name: str,
) -> None:
    with tmpfs(tmp_path / "small", size) as disk:
        before = previous_output(scorer_dir, leads, disk, name)
        many = synthetic_project.leads()  # ~3,000 leads with reasons: ~1.5 MB of CSV
        many.to_parquet(tmp_path / "leads.parquet")
        code, output = score(
            "--model",
            scorer_dir,
            "--input",
            tmp_path / "leads.parquet",
            "--output",
            disk / name,
            "--chunk-rows",
            "500",
        )
        assert code == 2
        error = one_line_error(output)
        assert error.startswith(
            f"error: {disk / name}: cannot write it (No space left on device); free "
            "space on that disk or write to another one. Nothing was replaced"
        ), error
        assert (disk / name).read_bytes() == before
        stem = name.split(".")[0]
        assert names(disk) == sorted([name, f"{stem}.rejects.csv"])


@contextmanager
def read_only(folder: Path) -> Iterator[str]:
    """Make ``folder`` read-only (a tmpfs remounted read-only as root, whom file
    modes do not stop; the mode otherwise); what the error says."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield "Permission denied"
        finally:
            folder.chmod(0o755)
        return
    remount = ["mount", "-o", "remount,ro", str(folder)]
    subprocess.run(remount, check=True)
    yield "Read-only file system"


def test_a_read_only_output_folder_is_one_line_and_the_old_output_is_kept(
    scorer_dir: Path, leads: pd.DataFrame, tmp_path: Path
) -> None:
    leads.to_parquet(tmp_path / "leads.parquet")
    folder = tmp_path / "shared"
    mount = tmpfs(folder, "4m") if os.geteuid() == 0 else None
    if mount is None:
        folder.mkdir()
    with mount or _nothing():
        before = previous_output(scorer_dir, leads, folder)
        with read_only(folder) as reason:
            code, output = score(
                "--model",
                scorer_dir,
                "--input",
                tmp_path / "leads.parquet",
                "--output",
                folder / "scores.parquet",
            )
        assert code == 2
        error = one_line_error(output)
        assert error.startswith(
            f"error: {folder / 'scores.parquet'}: cannot write it ({reason}); "
        ), error
        assert "choose a folder you can write to" in error
        assert (folder / "scores.parquet").read_bytes() == before
        assert names(folder) == ["scores.parquet", "scores.rejects.csv"]


@contextmanager
def _nothing() -> Iterator[None]:
    yield


# --- markup in names ------------------------------------------------------------------


def test_markup_in_file_names_is_printed_as_typed(
    scorer_dir: Path, leads: pd.DataFrame, tmp_path: Path
) -> None:
    folder = tmp_path / "a[" / "x]"  # the path holds "[/x]", a closing tag to rich
    folder.mkdir(parents=True)
    leads.head(30).to_parquet(folder / "[red]leads.parquet")
    code, output = score(
        "--model",
        scorer_dir,
        "--input",
        folder / "[red]leads.parquet",
        "--output",
        folder / "[red]scores.csv",
        "--no-explain",
    )
    assert code == 0, output
    assert f"scores -> {folder / '[red]scores.csv'}" in output
    assert len(pd.read_csv(folder / "[red]scores.csv")) == 30
    code, output = score(
        "--model",
        scorer_dir,
        "--input",
        folder / "[red]missing.parquet",
        "--output",
        folder / "[red]scores.csv",
    )
    assert code == 2
    error = one_line_error(output)
    assert (
        error == f"error: {folder / '[red]missing.parquet'}: the input file not found"
    )


def test_the_error_handler_prints_markup_in_a_message_as_typed() -> None:
    hint = "pyspark is not installed: pip install 'lead-ml[spark]' [/x] [red]"
    demo = typer.Typer()

    @demo.command()
    @friendly
    def fail() -> None:
        raise ContractError(hint)

    result = runner.invoke(demo, [])
    assert result.exit_code == 2
    assert one_line_error(result.output) == f"error: {hint}"


# --- bad cells ------------------------------------------------------------------------


def test_csv_rows_with_too_few_or_too_many_fields_are_rejected_with_their_line(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "leads.csv"
    leads.head(40).to_csv(path, index=False)
    lines = path.read_text().splitlines()
    width = len(lines[0].split(","))
    # data row r is line r + 2 (the header is line 1)
    lines[3 + 1] = ",".join(lines[3 + 1].split(",")[:-3])  # row 3: 3 fields short
    lines[17 + 1] += ",surplus"  # row 17 (another chunk): one field too many
    lines[39 + 1] = lines[39 + 1].split(",")[0]  # the last row: its id alone
    path.write_text("\n".join(lines) + "\n")
    out, rejects = tmp_path / "s.parquet", tmp_path / "r.csv"
    summary = score_file(scorer, path, out, rejects, chunk_rows=8)
    written = pd.read_csv(rejects)
    reasons = dict(zip(written["row"].astype(int), written["reason"], strict=True))
    assert sorted(reasons) == [3, 17, 39]
    for row, fields in ((3, width - 3), (17, width + 1), (39, 1)):
        assert reasons[row].startswith(
            f"malformed CSV line {row + 2}: {fields} field(s) where the header has "
            f"{width} ("
        )
        assert reasons[row].endswith("a value holding a comma must be quoted)")
    assert (summary.rows_in, summary.scored, summary.rejected) == (40, 37, 3)
    kept = leads.head(40).drop(index=[3, 17, 39])
    assert pd.read_parquet(out)["deal_id"].tolist() == kept["deal_id"].tolist()


def test_dates_that_are_not_iso_or_have_no_plausible_year_are_rejected(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    created = scorer.spec["created_column"]
    dated = leads.head(20).astype({created: str})
    dated.loc[[2, 5, 9], created] = ["2025/03/20", "0001-01-01", "9999-12-31"]
    dated.to_csv(tmp_path / "leads.csv", index=False)
    summary = score_file(
        scorer, tmp_path / "leads.csv", tmp_path / "s.csv", tmp_path / "r.csv"
    )
    reasons = pd.read_csv(tmp_path / "r.csv").set_index("row")["reason"].to_dict()
    sentinel = "; if it stands for blank, declare it under source.missing_values"
    assert reasons == {
        2: f"{created} is not an ISO 8601 date: '2025/03/20'",
        5: f"{created} has the year 1, outside 1900-2200: '0001-01-01'{sentinel}",
        9: f"{created} has the year 9999, outside 1900-2200: '9999-12-31'{sentinel}",
    }
    assert (summary.scored, summary.rejected) == (17, 3)


def test_ids_differing_only_by_spaces_are_one_lead_across_chunks(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    ids = leads["deal_id"].head(40).astype(str).tolist()
    lead = ids[2]
    ids[2], ids[30] = f"  {lead} ", lead  # row 30: a later chunk
    leads.head(40).assign(deal_id=ids).to_csv(tmp_path / "leads.csv", index=False)
    summary = score_file(
        scorer,
        tmp_path / "leads.csv",
        tmp_path / "s.csv",
        tmp_path / "r.csv",
        chunk_rows=10,
    )
    rejects = pd.read_csv(tmp_path / "r.csv")
    assert rejects["row"].tolist() == [30]
    assert rejects["reason"].tolist() == [
        f"duplicate deal_id '{lead}' (already scored at an earlier row)"
    ]
    scores = pd.read_csv(tmp_path / "s.csv")
    assert scores["deal_id"].tolist()[2] == lead  # trimmed
    assert (summary.scored, summary.rejected) == (39, 1)


def test_float_ids_are_written_as_whole_numbers_and_still_find_their_activities(
    synthetic_project: Project, scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    numbers = {deal: float(i + 1) for i, deal in enumerate(leads["deal_id"])}
    log = synthetic_project.activities()
    assert log is not None
    log = log[log["deal_id"].isin(numbers)].assign(
        deal_id=lambda frame: frame["deal_id"].map(numbers)
    )
    log.to_parquet(tmp_path / "log.parquet")
    floats = leads.assign(deal_id=leads["deal_id"].map(numbers))
    floats.loc[4, "employees"] = -5.0  # below its bound: a reject
    floats.loc[250, "deal_id"] = 3.0  # a later chunk repeats lead 3
    floats.to_parquet(tmp_path / "leads.parquet")
    summary = score_file(
        scorer,
        tmp_path / "leads.parquet",
        tmp_path / "s.csv",
        tmp_path / "r.csv",
        tmp_path / "log.parquet",
        explain_reasons=False,
        chunk_rows=100,
    )
    scores = pd.read_csv(tmp_path / "s.csv", dtype=str)
    assert scores["deal_id"].head(3).tolist() == ["1", "2", "3"]
    rejects = pd.read_csv(tmp_path / "r.csv", dtype=str)
    assert rejects["deal_id"].tolist() == ["5", "3"]
    assert rejects["reason"].tolist()[1] == (
        "duplicate deal_id '3' (already scored at an earlier row)"
    )
    in_memory = scorer.score(leads, synthetic_project.activities(), False)
    kept = in_memory.drop(index=[4, 250])
    np.testing.assert_allclose(
        scores["probability"].astype(float), kept["probability"].to_numpy(float)
    )
    assert (summary.scored, summary.rejected) == (298, 2)


def test_a_job_rejecting_every_row_exits_3_with_a_warning(
    scorer_dir: Path, leads: pd.DataFrame, tmp_path: Path
) -> None:
    leads.head(25).assign(employees=-1.0).to_parquet(tmp_path / "leads.parquet")
    code, output = score(
        "--model",
        scorer_dir,
        "--input",
        tmp_path / "leads.parquet",
        "--output",
        tmp_path / "s.parquet",
        "--summary",
        tmp_path / "summary.json",
    )
    assert code == 3
    said = " ".join(output.split())
    assert (
        "warning: every row was rejected (25 of 25) and no lead was scored; see the "
        f"reasons in {tmp_path / 's.rejects.csv'}"
    ) in said
    assert reconciles(tmp_path / "s.parquet", tmp_path / "s.rejects.csv", 25) == (0, 25)
    assert json.loads((tmp_path / "summary.json").read_text())["rejected"] == 25


def test_rejected_activity_rows_are_counted_in_the_printed_summary(
    synthetic_project: Project, scorer_dir: Path, leads: pd.DataFrame, tmp_path: Path
) -> None:
    leads.head(50).to_parquet(tmp_path / "leads.parquet")
    log = synthetic_project.activities()
    assert log is not None
    path = tmp_path / "log.csv"
    log[log["deal_id"].isin(leads["deal_id"].head(50))].to_csv(path, index=False)
    lead = str(leads["deal_id"].iloc[3])
    with path.open("a") as file:  # an unreadable time stamp; a line cut short
        file.write(f"{lead},soon,demo_booked\n{lead},2024-05-01\n")
    code, output = score(
        "--model",
        scorer_dir,
        "--input",
        tmp_path / "leads.parquet",
        "--output",
        tmp_path / "s.parquet",
        "--activities",
        path,
        "--summary",
        tmp_path / "summary.json",
    )
    assert code == 0, output
    said = " ".join(output.split())
    assert "activity rows left out: 2 (no lead id, no readable time stamp" in said
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["activities_rejected"] == 2 and summary["scored"] == 50


def test_formula_like_text_is_escaped_in_csv_outputs_and_kept_in_parquet(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    hostile = leads.head(6).copy()
    hostile["deal_id"] = ["=HYPERLINK(1)", "+cmd", "@SUM(1)", "-2+3", "D4", "D-5"]
    hostile.loc[5, "region"] = "=evil()"
    hostile.loc[5, "contact_title"] = "\tTab"
    hostile.loc[5, "employees"] = -5.0  # rejected: its values go to the rejects file
    hostile.to_parquet(tmp_path / "leads.parquet")
    summary = score_file(
        scorer, tmp_path / "leads.parquet", tmp_path / "s.csv", tmp_path / "r.csv"
    )
    assert isinstance(summary, BatchSummary) and summary.rejected == 1
    scores = pd.read_csv(tmp_path / "s.csv", dtype=str, keep_default_na=False)
    assert scores["deal_id"].tolist() == [
        "'=HYPERLINK(1)",
        "'+cmd",
        "'@SUM(1)",
        "'-2+3",
        "D4",
    ]
    assert scores["top_reasons"].str[0].isin(["'", "?"]).all()  # '+ ...', '- ...'
    rejects = pd.read_csv(tmp_path / "r.csv", dtype=str)
    assert rejects.loc[0, "region"] == "'=evil()"
    assert rejects.loc[0, "contact_title"] == "'\tTab"
    assert rejects.loc[0, "employees"] == "-5.0"  # a plain number stays as it is
    score_file(
        scorer, tmp_path / "leads.parquet", tmp_path / "s.parquet", tmp_path / "r.csv"
    )
    assert pd.read_parquet(tmp_path / "s.parquet")["deal_id"][0] == "=HYPERLINK(1)"
