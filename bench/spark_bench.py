"""`lead-ml score --engine spark` against the local job on one file of leads
(issue 17, target 5: "Spark close to local").

On the same leads file (the harness passes a 1,000,000-lead Parquet file; any size
and CSV work too), each in a fresh process started the same way
(``python -m lead_ml.cli score ... --summary S``), so that imports and the JVM's
start count alike every time:

1. the local job (``lead-ml score``, explained unless ``explain=False``);
2. the Spark job (``lead-ml score --engine spark``) on ``local[2]``;
3. the Spark job on ``local[1]``.

Rows per second are the job's own (the summary's ``rows_per_second``: rows in over
the job's seconds, from the scorer loaded to the output written and counted; for
Spark from the session started), as `lead-ml score` prints them; the wall time of
each process is reported beside it, and the JVM and session start of each master
on its own, measured in a fresh process that starts a session and runs one tiny job
(what a Spark job pays before its own seconds start). Figures:

- ``spark_vs_local_explained``: local[2] rows/s over the local job's (target 0.7);
- ``spark_scaling_1_to_2``: local[2] rows/s over local[1]'s (target 1.7);
- the same two on wall time (``..._wall``), and every raw rate and time.

The bench harness (bench/harness.py) calls :func:`bench_spark`; without pyspark or
Java it returns ``{"skipped": "<why>"}``. Alone, for profiling::

    nice -n 15 .venv/bin/python bench/spark_bench.py --model models/scorer \\
        --input leads.parquet [--activities log.parquet] [--only spark2] [--profile]

``--profile`` runs the local[2] job in this process with Spark's Python UDF
profiler on (``spark.sql.pyspark.udf.profiler=perf``) and prints where the
executors' Python time goes (the id pass, the check of rows holding a repeated id,
and the scoring stage: lead_ml.spark.BatchScorer).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Leads per chunk of the local job and per Arrow batch of the Spark job alike.
CHUNK_ROWS = 50_000
TARGETS = {"spark_vs_local_explained": 0.7, "spark_scaling_1_to_2": 1.7}
#: The Spark jobs timed: (name, master).
MASTERS = (("spark2", "local[2]"), ("spark1", "local[1]"))
#: A fresh process that starts a session as the Spark job does and runs one tiny
#: job: the seconds a Spark job pays before its own clock starts.
_SESSION = """
import json, sys, time
started = time.perf_counter()
from lead_ml.spark import start_session
imported = time.perf_counter()
spark = start_session(sys.argv[1], int(sys.argv[2]))
spark.range(1).count()
ready = time.perf_counter()
spark.stop()
print(json.dumps({"import": imported - started, "session": ready - imported}))
"""


def spark_problem() -> str | None:
    """Why the Spark jobs cannot run here, or None."""
    try:
        from lead_ml.spark import spark_problem as problem
    except ImportError as error:  # pragma: no cover - lead_ml itself is missing
        return f"lead_ml.spark does not import: {error}"
    return problem()


def job_environment() -> dict[str, str]:
    """The environment of the timed processes: this interpreter for Spark's Python
    workers, no telemetry, bytecode cached (as the Makefile runs lead-ml)."""
    env = dict(os.environ)
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["DO_NOT_TRACK"] = "1"
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def score_command(
    bundle: Path,
    leads: Path,
    activities: Path | None,
    output: Path,
    summary: Path,
    options: Sequence[str] = (),
) -> list[str]:
    """`lead-ml score` of the leads file into ``output``, its summary to ``summary``."""
    command = [sys.executable, "-m", "lead_ml.cli", "score", "--model", str(bundle)]
    command += ["--input", str(leads), "--output", str(output)]
    command += ["--summary", str(summary), "--chunk-rows", str(CHUNK_ROWS)]
    if activities is not None:
        command += ["--activities", str(activities)]
    return [*command, *options]


def run_job(command: list[str], summary: Path) -> dict[str, Any]:
    """Run one job in its own process: its summary, with ``wall_seconds``."""
    started = time.perf_counter()
    done = subprocess.run(
        command, env=job_environment(), capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-3000:]}"
        )
    result: dict[str, Any] = json.loads(summary.read_text())
    return result | {"wall_seconds": wall}


def session_start(master: str) -> dict[str, float]:
    """Seconds to import lead_ml.spark and to start a session of ``master`` (the
    JVM, and one tiny job), in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", _SESSION, master, str(CHUNK_ROWS)],
        env=job_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"a {master} session did not start: {done.stderr[-3000:]}")
    seconds: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return seconds


def _removed(path: Path) -> None:
    """A job's output gone (a Spark folder or a local file and its rejects)."""
    if path.is_dir():
        shutil.rmtree(path)
    for written in path.parent.glob(f"{path.stem}*"):
        if written.is_dir():
            shutil.rmtree(written)
        else:
            written.unlink()


def _figures(runs: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The target ratios, on the jobs' own rates and on wall time."""
    rate = {name: float(run["rows_per_second"]) for name, run in runs.items()}
    wall = {name: run["rows_in"] / run["wall_seconds"] for name, run in runs.items()}
    figures: dict[str, float] = {}
    if "local" in rate and "spark2" in rate:
        figures["spark_vs_local_explained"] = rate["spark2"] / rate["local"]
        figures["spark_vs_local_explained_wall"] = wall["spark2"] / wall["local"]
    if "spark1" in rate and "spark2" in rate:
        figures["spark_scaling_1_to_2"] = rate["spark2"] / rate["spark1"]
        figures["spark_scaling_1_to_2_wall"] = wall["spark2"] / wall["spark1"]
    return {name: round(value, 3) for name, value in figures.items()}


def bench_spark(
    bundle: Path,
    leads: Path,
    activities: Path | None,
    work: Path,
    explain: bool = True,
    only: Sequence[str] = ("local", "spark2", "spark1"),
) -> dict[str, Any]:
    """Rows per second of the local job and of the Spark job on local[2] and
    local[1] on the same leads file (see the module doc), each in a fresh
    process, outputs written in ``work`` and removed after each run; ``only``
    picks among ``local``, ``spark2``, ``spark1``. Returns the figures against
    their targets, each job's rates, seconds, rows and drift check, and the
    session start of each master; ``{"skipped": why}`` without pyspark or Java.
    """
    problem = spark_problem()
    if problem is not None:
        return {"skipped": problem}
    work.mkdir(parents=True, exist_ok=True)
    explained = [] if explain else ["--no-explain"]
    jobs: dict[str, list[str]] = {"local": ["--engine", "local", *explained]}
    for name, master in MASTERS:
        jobs[name] = ["--engine", "spark", "--master", master, *explained]
    runs: dict[str, dict[str, Any]] = {}
    for name, options in jobs.items():
        if name not in only:
            continue
        output = work / f"spark_bench_{name}.parquet"
        summary = work / f"spark_bench_{name}.json"
        _removed(output)
        command = score_command(bundle, leads, activities, output, summary, options)
        try:
            runs[name] = run_job(command, summary)
        finally:
            _removed(output)
            summary.unlink(missing_ok=True)
    starts = {name: session_start(master) for name, master in MASTERS if name in only}
    figures = _figures(runs)
    return {
        "figures": figures,
        "targets": {k: v for k, v in TARGETS.items() if k in figures},
        "met": {k: figures[k] >= v for k, v in TARGETS.items() if k in figures},
        "jobs": {name: _job_figures(run) for name, run in runs.items()},
        "session_start_seconds": starts,
        "leads": str(leads),
        "explained": explain,
        "chunk_rows": CHUNK_ROWS,
        "local_job": "lead-ml score (python -m lead_ml.cli), a fresh process",
    }


def _job_figures(run: dict[str, Any]) -> dict[str, Any]:
    """What the bench keeps of a job's summary."""
    kept = ("rows_in", "scored", "rejected", "seconds", "rows_per_second")
    figures = {key: run[key] for key in kept}
    figures["wall_seconds"] = round(run["wall_seconds"], 2)
    figures["wall_rows_per_second"] = round(run["rows_in"] / run["wall_seconds"], 1)
    figures["drift_features"] = len(run["drift_psi"])
    figures["unseen_categories"] = sum(run["unseen_categories"].values())
    return figures


def profile_spark(
    bundle: Path, leads: Path, activities: Path | None, work: Path, explain: bool
) -> None:
    """The local[2] Spark job in this process with Spark's Python UDF profiler
    on; prints the job's summary and the executors' profile."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from lead_ml.spark import SparkJob, score_with_spark, start_session

    spark = start_session("local[2]", CHUNK_ROWS)
    spark.conf.set("spark.sql.pyspark.udf.profiler", "perf")
    output = work / "spark_bench_profile.parquet"
    _removed(output)
    job = SparkJob(
        model=bundle,
        input=str(leads),
        output=str(output),
        activities=str(activities or ""),
        explain=explain,
        master="local[2]",
        chunk_rows=CHUNK_ROWS,
    )
    try:
        summary = score_with_spark(job, spark)
        sys.stdout.write(json.dumps(summary.as_dict(), indent=1) + "\n")
        spark.profile.show(type="perf")
    finally:
        _removed(output)
        spark.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: run the jobs, print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a scorer folder")
    parser.add_argument("--input", type=Path, required=True, help="a leads file")
    parser.add_argument("--activities", type=Path)
    parser.add_argument("--work", type=Path, help="where outputs go (default: temp)")
    parser.add_argument("--no-explain", action="store_true")
    parser.add_argument(
        "--only", nargs="+", choices=["local", "spark2", "spark1"], default=None
    )
    parser.add_argument("--profile", action="store_true", help="profile local[2]")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="spark-bench-") as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        if args.profile:
            profile_spark(
                args.model, args.input, args.activities, work, not args.no_explain
            )
            return 0
        results = bench_spark(
            args.model,
            args.input,
            args.activities,
            work,
            explain=not args.no_explain,
            only=args.only or ("local", "spark2", "spark1"),
        )
    text = json.dumps(results, indent=1)
    sys.stdout.write(text + "\n")
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
