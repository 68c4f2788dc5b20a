"""`lead-ml score` run in a fresh process and held after each chunk, for tests of
what a job leaves behind when it is stopped, killed or raced mid-write."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

#: Runs `lead-ml` (argv[2:]) in a fresh process, holding the job after each chunk
#: until the file argv[1] exists: the job is mid-write for as long as a test needs,
#: without a race against its speed.
HELD_JOB = """
import faulthandler, signal, sys, time
from pathlib import Path
import lead_ml.batch as batch

faulthandler.register(signal.SIGUSR1)  # a job that hangs shows where (see finish)

go, real = Path(sys.argv[1]), batch.score_file

def held(*args, **kwargs):
    report = kwargs["progress"]
    def wait(n):
        report(n)
        deadline = time.monotonic() + 120
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    kwargs["progress"] = wait
    return real(*args, **kwargs)

batch.score_file = held
from lead_ml.cli import app
app(sys.argv[2:], prog_name="lead-ml")
"""


@contextmanager
def held_job(
    scorer_dir: Path, go: Path, *arguments: str | Path
) -> Iterator[subprocess.Popen[str]]:
    """`lead-ml score --model scorer_dir ARGUMENTS` in a subprocess, held after each
    chunk until ``go`` exists (killed on leaving if it still runs: a failed test
    leaves no process)."""
    command = [sys.executable, "-c", HELD_JOB, str(go), "score", "--model"]
    with subprocess.Popen(
        [*command, str(scorer_dir), *map(str, arguments)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as job:
        try:
            yield job
        finally:
            if job.poll() is None:
                job.kill()
                job.communicate()


def finish(job: subprocess.Popen[str], timeout: float = 300) -> tuple[str, str]:
    """What a held job printed once it ends; a job still running after ``timeout``
    seconds fails the test with its threads' stacks (SIGUSR1: faulthandler)."""
    try:
        return job.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        job.send_signal(signal.SIGUSR1)
        time.sleep(2)
        job.kill()
        stdout, stderr = job.communicate()
        pytest.fail(f"the job still ran after {timeout} s:\n{stdout}\n{stderr}")
