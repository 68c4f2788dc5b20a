"""Serving for real: MLflow's scoring server on a loopback port, started as the README
says (`mlflow models serve --env-manager local`, and `lead-ml serve` with no venv on
PATH), against exported scorers of the synthetic CRM and of X Education.

Each server takes some 15-30 s to start on a busy 2-core machine; it is started once
per module and source and stopped by its process group, with timeouts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from projects import ROOT, Project
from typer.testing import CliRunner

from lead_ml.cli import app
from lead_ml.scorer import (
    EXPECT_VERSION_ENV,
    Scorer,
    as_exported,
    load_scorer,
    predict_leads,
    serving_example,
    verify_folder,
)
from lead_ml.scorer import serve_command as scorer_serve_command
from lead_ml.tables import read_table
from lead_ml.vocab import MEDDIC_DIMENSIONS

REQUEST_FILE = ROOT / "examples" / "deploy" / "request.json"
VENV_BIN = Path(sys.executable).parent
#: How long a server may take to answer /ping, and to stop.
START_SECONDS = 180
STOP_SECONDS = 15


def readme_section() -> str:
    """The README's "Serving and deployment" section."""
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Serving and deployment\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def readme_json_blocks() -> list[Any]:
    """The section's ```json blocks, parsed: the example request, then its response."""
    blocks = re.findall(r"```json\n(.*?)```", readme_section(), re.DOTALL)
    return [json.loads(block) for block in blocks]


def strict_json(text: str) -> Any:
    """JSON as the standard defines it: no NaN or Infinity literals."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Server:
    """A running scoring server: its URL, process and log."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def post(self, body: dict[str, Any]) -> tuple[int, str]:
        """POST a JSON body to /invocations; the status and the response text."""
        request = urllib.request.Request(
            f"{self.url}/invocations",
            json.dumps(body, allow_nan=False).encode(),
            {"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def _wait_until_up(server: Server) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"the server exited ({server.process.returncode}):\n"
                + _tail(server.log)
            )
        try:
            with urllib.request.urlopen(f"{server.url}/ping", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(
        f"no answer on {server.url}/ping in {START_SECONDS} s:\n" + _tail(server.log)
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's whole process group (MLflow's CLI and uvicorn), then
    SIGKILL if it has not stopped in time."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_SECONDS)


def serve_command(launcher: str, folder: Path, port: int) -> tuple[list[str], dict]:
    """The README's commands: MLflow's own with the venv's bin first on PATH, or
    `lead-ml serve` with a PATH that lacks it (as from cron or systemd)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LEAD_ML_"))
    }
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    if launcher == "mlflow":
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', os.defpath)}"
        argv = [str(VENV_BIN / "mlflow"), "models", "serve", "-m", str(folder)]
        argv += ["--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)]
        return argv, env
    env["PATH"] = os.defpath
    argv = [str(VENV_BIN / "lead-ml"), "serve", "--model", str(folder)]
    return [*argv, "--port", str(port)], env


#: (source, how it is started): each README command on one source.
SERVED = {"synthetic": "mlflow", "x_education": "lead-ml"}


@pytest.fixture(scope="module", params=list(SERVED))
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Project, Server]]:
    """A scoring server of each source's exported scorer, in turn."""
    project: Project = request.getfixturevalue(f"{request.param}_project")
    folder = project.path("models/scorer")
    port = free_port()
    argv, env = serve_command(SERVED[request.param], folder, port)
    log = tmp_path_factory.mktemp(f"serve-{request.param}") / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv,
            env=env,
            cwd=log.parent,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as one
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_until_up(server)
        yield project, server
    finally:
        _stop(process)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON objects, empty values null."""
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return [{str(k): v for k, v in row.items()} for row in rows]


def in_process(scorer: Scorer, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the server should answer for these rows: the pyfunc's output, scored
    in this process, through JSON."""
    frame = pd.DataFrame.from_records(rows)
    return strict_json(json.dumps(records(predict_leads(scorer, frame))))


def meddic_columns(scorer: Scorer) -> list[str]:
    """The source's columns the model reads for a MEDDIC dimension."""
    specs = scorer.registry.specs
    return sorted(
        {s.column for s in specs if s.column and s.dimension in MEDDIC_DIMENSIONS}
    )


# --- the README's example ----------------------------------------------------------


def test_the_readme_example_is_the_request_file() -> None:
    request, response = readme_json_blocks()[:2]
    assert request == strict_json(REQUEST_FILE.read_text())
    assert len(response["predictions"]) == len(request["dataframe_records"])


def test_the_readme_example_is_answered_in_valid_json(
    served: tuple[Project, Server],
) -> None:
    project, server = served
    if project.name != "synthetic":
        pytest.skip("the README's example is in the synthetic CRM's columns")
    scorer = load_scorer(project.path("models/scorer"))
    request = strict_json(REQUEST_FILE.read_text())
    status, text = server.post(request)
    assert status == 200, text
    assert "NaN" not in text
    predictions = strict_json(text)["predictions"]
    assert predictions == in_process(scorer, request["dataframe_records"])
    # The README's response: the same columns, the same rows scored and rejected.
    shown = readme_json_blocks()[1]["predictions"]
    assert [list(row) for row in shown] == [list(row) for row in predictions]
    assert [r["reject_reason"] for r in shown] == [
        r["reject_reason"] for r in predictions
    ]
    # The second lead lacks every MEDDIC answer, the third is out of bounds.
    assert predictions[1]["probability"] is not None
    rejected = predictions[2]
    assert rejected["reject_reason"].startswith("employees is below")
    assert rejected["probability"] is rejected["score"] is rejected["band"] is None


# --- every source -------------------------------------------------------------------


def test_scores_equal_in_process_scoring_and_rejects_carry_their_reason(
    served: tuple[Project, Server],
) -> None:
    project, server = served
    scorer = load_scorer(project.path("models/scorer"))
    rows = records(serving_example(scorer, project.leads().head(6)))
    rows[2][scorer.id_column] = None  # rejected: no id
    status, text = server.post({"dataframe_records": rows})
    assert status == 200, text
    predictions = strict_json(text)["predictions"]
    assert predictions == in_process(scorer, rows)
    assert predictions[2]["reject_reason"] == f"{scorer.id_column} is missing"
    assert predictions[2]["probability"] is None
    assert sum(p["reject_reason"] is None for p in predictions) == 5


def test_a_lead_lacking_meddic_columns_is_scored_with_them_unknown(
    served: tuple[Project, Server],
) -> None:
    project, server = served
    scorer = load_scorer(project.path("models/scorer"))
    meddic = meddic_columns(scorer)
    assert meddic, "every source maps some column to a MEDDIC dimension"
    leads = serving_example(scorer, project.leads().head(3))
    lacking = records(leads.drop(columns=meddic))
    status, text = server.post({"dataframe_split": _split(lacking)})
    assert status == 200, text  # not a schema error
    predictions = strict_json(text)["predictions"]
    blank = records(leads.assign(**dict.fromkeys(meddic)))
    assert predictions == in_process(scorer, blank)  # missing reads as blank
    assert all(p["reject_reason"] is None for p in predictions)
    assert any("not yet known" in p["top_reasons"] for p in predictions)


def _split(rows: list[dict[str, Any]]) -> dict[str, Any]:
    columns = list(rows[0])
    return {"columns": columns, "data": [[row[c] for c in columns] for row in rows]}


def test_a_request_without_the_id_column_is_refused_by_the_signature(
    served: tuple[Project, Server],
) -> None:
    project, server = served
    scorer = load_scorer(project.path("models/scorer"))
    leads = serving_example(scorer, project.leads().head(2))
    status, text = server.post(
        {"dataframe_records": records(leads.drop(columns=scorer.id_column))}
    )
    assert status == 400
    assert scorer.id_column in strict_json(text)["message"]


# --- the export as pandas reads it --------------------------------------------------


def export_frames(project: Project) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The source's deals file as pandas reads it (``pd.read_csv``: int64 and
    float64 columns; ``pd.read_parquet``: its own types), accounts merged in as
    pandas merges them; and the same rows as `lead-ml score` reads a file (cells as
    text, :func:`lead_ml.tables.read_table`)."""
    tables = project.params.source.tables
    frames = []
    for read in (_pandas_read, lambda path: read_table(path, "export")):
        deals = read(tables.deals.path)
        if tables.accounts is not None:
            accounts = read(tables.accounts.path)
            key, id_column = tables.accounts.key, tables.accounts.id_column
            accounts = accounts.rename(columns={id_column: key})
            deals = deals.merge(accounts, on=key, how="left")
        frames.append(deals)
    return frames[0], frames[1]


def _pandas_read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


#: MLflow's own warnings on load (its AnyType hints; its input example comparing a
#: string index with a range), not lead-ml's.
MLFLOW_WARNINGS = [
    pytest.mark.filterwarnings("ignore:.*AnyType:UserWarning"),
    pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:mlflow"),
]


@pytest.fixture(scope="module")
def pyfunc(project: Project) -> Any:
    """Each source's scorer as ``mlflow.pyfunc.load_model`` loads it."""
    import mlflow

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*AnyType", UserWarning)
        return mlflow.pyfunc.load_model(str(project.path("models/scorer")))


@MLFLOW_WARNINGS[0]
@MLFLOW_WARNINGS[1]
def test_the_pyfunc_scores_the_export_as_pandas_reads_it(
    project: Project, pyfunc: Any, tmp_path: Path
) -> None:
    """``mlflow.pyfunc.load_model(path).predict(pd.read_csv(export))`` on the export's
    own file scores every row as `lead-ml score` scores the file: int64 numbers and
    numbers in text columns are read by their kinds, not refused by the signature."""
    scorer = load_scorer(project.path("models/scorer"))
    by_pandas, as_text = export_frames(project)
    reads = [by_pandas]
    if project.name == "synthetic":  # its export is Parquet: a CSV of it too
        by_pandas.to_csv(tmp_path / "deals.csv", index=False)
        reads.append(pd.read_csv(tmp_path / "deals.csv"))
    expected = predict_leads(scorer, as_text, explain_reasons=False)
    assert len(expected) > 1000 and expected["probability"].notna().mean() > 0.9
    for read in reads:
        dtypes = read[scorer.contract.columns].dtypes
        assert any(pd.api.types.is_numeric_dtype(d) for d in dtypes), "typed cells"
        scored = pyfunc.predict(read, params={"explain": False})
        pd.testing.assert_frame_equal(scored, expected.set_axis(scored.index))
    # with reasons and next questions, on a few hundred leads
    head = pyfunc.predict(by_pandas.head(300))
    pd.testing.assert_frame_equal(head, predict_leads(scorer, as_text.head(300)))


@MLFLOW_WARNINGS[0]
@MLFLOW_WARNINGS[1]
def test_numbers_in_a_category_column_read_as_the_text_the_export_holds(
    project: Project, pyfunc: Any
) -> None:
    """A category column that pandas typed as numbers (codes such as 3; with gaps,
    3.0) or JSON as mixed values scores as its text would; MLflow refused it
    before ("Can not safely convert float64 to <U0")."""
    scorer = load_scorer(project.path("models/scorer"))
    column = next(
        s.column
        for s in scorer.registry.specs
        if s.kind == "category" and s.column and s.column != scorer.id_column
    )
    leads = serving_example(scorer, project.leads().head(4))
    as_text = leads.assign(**{column: pd.Series(["3", None, "2.5", "7"], dtype=object)})
    as_numbers = leads.assign(**{column: [3.0, np.nan, 2.5, 7.0]})
    as_json = leads.assign(**{column: pd.Series([3, None, 2.5, 7], dtype=object)})
    expected = predict_leads(scorer, as_text)
    for typed in (as_numbers, as_json):
        pd.testing.assert_frame_equal(pyfunc.predict(typed), expected)
    assert as_exported(scorer, as_numbers)[column].tolist() == ["3", None, "2.5", "7"]


# --- lead-ml serve's own checks ------------------------------------------------------


def test_lead_ml_serve_refuses_another_version_before_serving(
    synthetic_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = "lead-ml-scorer:" + "0" * 64
    folder = str(synthetic_project.path("models/scorer"))
    arguments = ["serve", "--model", folder, "--expect-version", other]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2
    assert "is expected" in result.output
    monkeypatch.setenv(EXPECT_VERSION_ENV, other)  # the pyfunc's pin counts too
    result = CliRunner().invoke(app, ["serve", "--model", folder])
    assert result.exit_code == 2
    assert "is expected" in result.output


def test_lead_ml_serve_never_runs_bytecode_left_in_the_folder(
    synthetic_project: Project, tmp_path: Path
) -> None:
    """MLflow's loader would run a cached pyfunc_model bytecode (planted, or left by
    an earlier plain mlflow.pyfunc.load_model) instead of the checked source: the
    serve command removes it before the server starts, and its server writes none.
    A cache that cannot be removed is one line naming it."""
    folder = tmp_path / "scorer"
    shutil.copytree(synthetic_project.path("models/scorer"), folder)
    cache = folder / "__pycache__"  # there already when another test loaded it
    cache.mkdir(exist_ok=True)
    planted = cache / f"pyfunc_model.{sys.implementation.cache_tag}.pyc"
    planted.write_bytes(b"planted")
    assert verify_folder(folder)  # the cache is no file of the model's own...
    argv, env = scorer_serve_command(folder, verify_folder(folder))
    assert not cache.exists()  # ...and is gone before the server could run it
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    (planted / "x").mkdir(parents=True)  # a cache entry no unlink removes (EISDIR)
    result = CliRunner().invoke(app, ["serve", "--model", str(folder)])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert message.startswith("error: ") and "cannot be removed" in message
    assert "Traceback" not in result.output


# --- the Docker context -----------------------------------------------------------

DEPLOY = ROOT / "examples" / "deploy"
#: Dockerfile instructions (the reference's list).
INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
    "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK",
    "SHELL",
}  # fmt: skip


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(instruction, arguments) of a Dockerfile: comments dropped, continued lines
    joined; an unknown instruction fails."""
    joined = re.sub(r"\\\n", " ", re.sub(r"(?m)^\s*#.*\n", "", text))
    found = []
    for line in filter(str.strip, joined.splitlines()):
        word, _, rest = line.strip().partition(" ")
        assert word.upper() in INSTRUCTIONS, f"not a Dockerfile instruction: {line}"
        found.append((word.upper(), rest.strip()))
    return found


def docker_daemon() -> bool:
    try:
        done = subprocess.run(
            ["docker", "info"], capture_output=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def test_the_docker_context_holds_the_scorer_and_the_wheel_it_pins(
    synthetic_project: Project, tmp_path: Path
) -> None:
    import yaml

    folder = synthetic_project.path("models/scorer")
    context = tmp_path / "docker"
    done = subprocess.run(
        [str(DEPLOY / "build-context.sh"), str(folder), str(context)],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"PYTHON": sys.executable},
    )
    assert done.returncode == 0, done.stderr
    scorer = load_scorer(context / "scorer")  # copied whole: the manifest checks out
    assert scorer.model_version == load_scorer(folder).model_version
    pins = dict(
        line.split("==")
        for line in (context / "scorer/requirements.txt").read_text().splitlines()
        if "==" in line
    )
    (wheel,) = (context / "wheels").glob("lead_ml-*.whl")
    assert wheel.name.startswith(f"lead_ml-{pins['lead-ml']}-")
    for library, pinned in scorer.spec["library_versions"].items():
        assert pins[library] == pinned  # the image installs the training stack
    # The image's `pip install --find-links wheels -r requirements.txt` resolves:
    # checked with uv, offline from its cache (`make install` fills it), dry run.
    uv = str(VENV_BIN / "uv")
    venv = tmp_path / "venv"
    subprocess.run(
        [uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True
    )
    resolved = subprocess.run(
        [uv, "pip", "install", "--dry-run", "--offline"]
        + ["--python", str(venv / "bin" / "python")]
        + ["--find-links", str(context / "wheels")]
        + ["-r", str(context / "scorer" / "requirements.txt")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resolved.returncode == 0, resolved.stderr[-3000:]
    assert f"+ lead-ml=={pins['lead-ml']}\n" in resolved.stderr

    steps = dockerfile_instructions((context / "Dockerfile").read_text())
    python = yaml.safe_load((context / "scorer/python_env.yaml").read_text())["python"]
    base = next(rest for word, rest in steps if word == "FROM")
    assert base.startswith("python:" + ".".join(python.split(".")[:2]) + "-")
    for word, rest in steps:
        if word == "COPY":
            *sources, _ = rest.split()
            assert all((context / s).exists() for s in sources), rest
    assert any("--find-links" in rest for word, rest in steps if word == "RUN")
    command = json.loads(next(rest for word, rest in steps if word == "CMD"))
    assert command[:2] == ["lead-ml", "serve"]
    # the CMD parses as `lead-ml serve` and checks the copied scorer before serving
    arguments = [context / "scorer" if a == "/srv/scorer" else a for a in command[1:]]
    other = "lead-ml-scorer:" + "0" * 64
    result = CliRunner().invoke(app, [*map(str, arguments), "--expect-version", other])
    assert result.exit_code == 2 and "is expected" in result.output, result.output
    if not docker_daemon():
        pytest.skip("no Docker daemon answers here: the context is checked, not built")
    built = subprocess.run(
        ["docker", "build", "-t", "lead-ml-scorer-test", str(context)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert built.returncode == 0, built.stderr[-3000:]


# --- the scheduled batch job ------------------------------------------------------


def run_job(
    folder: Path, leads: Path, output: Path, **settings: str
) -> subprocess.CompletedProcess[str]:
    """score-open-leads.sh as cron or Airflow runs it (with a scorer folder)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env |= {"MLFLOW_DISABLE_TELEMETRY": "true", "PATH": os.defpath}
    env |= {"LEAD_ML_HOME": str(output.parent), "LEAD_ML": str(VENV_BIN / "lead-ml")}
    env |= {"MODEL": str(folder), "INPUT": str(leads), "OUTPUT": str(output)}
    return subprocess.run(
        [str(DEPLOY / "score-open-leads.sh")],
        env=env | settings,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_scheduled_job_exits_0_done_2_fault_3_all_rejected(
    synthetic_project: Project, tmp_path: Path
) -> None:
    folder = synthetic_project.path("models/scorer")
    scorer = load_scorer(folder)
    leads = synthetic_project.leads().head(40)
    leads.to_csv(tmp_path / "leads.csv", index=False)
    output = tmp_path / "scores.parquet"
    done = run_job(folder, tmp_path / "leads.csv", output)
    assert done.returncode == 0, done.stderr
    assert len(pd.read_parquet(output)) == 40
    summary = json.loads((tmp_path / "scores.summary.json").read_text())
    assert summary["scored"] == 40

    other = run_job(folder, tmp_path / "leads.csv", output, EXPECT_VERSION="0" * 64)
    assert other.returncode == 2 and "is expected" in other.stderr + other.stdout

    leads.assign(**{scorer.id_column: None}).to_csv(tmp_path / "bad.csv", index=False)
    rejected = run_job(folder, tmp_path / "bad.csv", tmp_path / "none.parquet")
    assert rejected.returncode == 3, rejected.stderr


def test_cron_and_airflow_run_the_job_script() -> None:
    import ast

    entries = [
        line
        for line in (DEPLOY / "crontab").read_text().splitlines()
        if line.strip() and not line.startswith("#") and "=" not in line.split()[0]
    ]
    (entry,) = entries
    fields = entry.split(None, 5)
    assert all(re.fullmatch(r"[\d*,/-]+", f) for f in fields[:5]), fields
    assert "examples/deploy/score-open-leads.sh" in fields[5]

    dag = ast.parse((DEPLOY / "airflow_score_open_leads.py").read_text())
    calls = [
        node
        for node in ast.walk(dag)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "BashOperator"
    ]
    (task,) = calls
    keywords = {k.arg: k.value for k in task.keywords}
    assert "score-open-leads.sh" in ast.unparse(keywords["bash_command"])
    settings = next(
        node.value
        for node in dag.body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "SCORE_ENV"
    )
    assert isinstance(settings, ast.Dict)
    env = {
        ast.unparse(k).strip("'\""): v
        for k, v in zip(settings.keys, settings.values, strict=True)
        if k is not None
    }
    assert ast.literal_eval(env["MODEL"]) == "models:/lead-ml-scorer@champion"
    assert {"INPUT", "OUTPUT", "LEAD_ML_HOME"} <= set(env)
