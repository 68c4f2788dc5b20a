"""Writing scores back to the CRM (`lead-ml score --crm-file`), on the synthetic CRM
and the X Education export: the mapping and passthrough applied, one time stamp and
the model version in every row, rejected rows left out and counted, formula-like
text escaped, bad mappings refused naming the key, the file written whole or not at
all, and both example mappings (Salesforce, HubSpot) loaded and used."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from held import finish, held_job
from projects import ROOT, Project
from typer.testing import CliRunner

from lead_ml.batch import CrmFile, score_file, scored_at_moment
from lead_ml.cli import app
from lead_ml.config import (
    WRITEBACK_FIELDS,
    WritebackConfig,
    load_writeback,
    parse_fragment,
)
from lead_ml.scorer import Scorer, load_scorer
from lead_ml.vocab import ConfigError, ScorerError

runner = CliRunner()
EXAMPLES = ROOT / "examples" / "writeback"
STAMP = "2026-12-01T09:30:00Z"
#: The owner column a CRM export carries (not a feature): passed through as read.
OWNER = "Owner ID"
MAPPING: dict[str, Any] = {
    "columns": {
        "id": "Id",
        "probability": "Lead_Score__c",
        "band": "Lead_Grade__c",
        "top_reasons": "Lead_Score_Reasons__c",
        "next_question": "Lead_Next_Question__c",
        "model_version": "Lead_Score_Model__c",
        "scored_at": "Lead_Scored_At__c",
    },
    "passthrough": {OWNER: "OwnerId"},
}


@pytest.fixture(scope="module", params=["synthetic", "x_education"])
def source(request: pytest.FixtureRequest) -> Project:
    """A finished project of the synthetic CRM, then of the X Education export."""
    project: Project = request.getfixturevalue(f"{request.param}_project")
    return project


@pytest.fixture(scope="module")
def scorer(source: Project) -> Scorer:
    return load_scorer(source.path("models/scorer"))


@pytest.fixture(scope="module")
def leads(source: Project, scorer: Scorer) -> pd.DataFrame:
    """120 lead rows as the export holds them (CSV text), with an owner column;
    row 7 has no id (rejected), row 3's owner looks like a formula."""
    rows = source.leads().head(120).reset_index(drop=True).astype("string")
    rows[OWNER] = [f"005{i:012d}" for i in range(len(rows))]
    rows.loc[3, OWNER] = '=HYPERLINK("http://x","y")'
    rows.loc[7, scorer.id_column] = pd.NA
    return rows


def fragment(
    folder: Path, changes: dict[str, Any] | None = None, name: str = "writeback"
) -> Path:
    """A params fragment holding MAPPING (with ``changes``) in ``folder``."""
    path = folder / f"{name}.yaml"
    raw = {"writeback": MAPPING | (changes or {})}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def score(folder: Path, scorer_dir: Path, *extra: str | Path) -> tuple[int, str]:
    """`lead-ml score` of ``folder``/leads.csv into ``folder`` with a CRM file."""
    arguments = [
        "score",
        "--model",
        scorer_dir,
        "--input",
        folder / "leads.csv",
        "--output",
        folder / "scores.csv",
        "--crm-file",
        folder / "crm.csv",
        "--scored-at",
        STAMP,
        *extra,
    ]
    result = runner.invoke(app, [str(a) for a in arguments])
    return result.exit_code, result.output


def read_text(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def refused(output: str, *said: str) -> str:
    """The error a refused command printed, from its ``error:`` line on (notes
    before it aside), no traceback."""
    assert "Traceback" not in output, output
    assert output.count("error: ") == 1, output
    error = output[output.index("error: ") :].strip()
    for words in said:
        assert words in error, (words, output)
    return error


# --- the import file ----------------------------------------------------------------


def test_the_import_file_holds_each_scored_lead_mapped_stamped_and_escaped(
    source: Project, scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    leads.to_csv(tmp_path / "leads.csv", index=False)
    scorer_dir = source.path("models/scorer")
    code, output = score(
        tmp_path,
        scorer_dir,
        "--params",
        fragment(tmp_path),
        "--summary",
        tmp_path / "s.json",
    )
    assert code == 0, output
    crm = read_text(tmp_path / "crm.csv")
    assert crm.columns.tolist() == [*MAPPING["columns"].values(), "OwnerId"]
    scores = read_text(tmp_path / "scores.csv")
    rejects = read_text(tmp_path / "scores.rejects.csv")
    # Rejected rows stay in the rejects file only; counts reconcile and are said.
    assert len(rejects) == 1 and rejects.loc[0, "row"] == "7"
    assert len(crm) == len(scores) == len(leads) - 1
    said = " ".join(output.split())
    assert f"CRM import file: {len(crm)} rows, one per scored lead" in said
    assert crm["Id"].tolist() == scores[scorer.id_column].tolist()
    probability = scores["probability"].astype(float)
    percent = np.rint(probability * 100).astype(int).astype(str)
    assert crm["Lead_Score__c"].tolist() == percent.tolist()
    assert crm["Lead_Grade__c"].tolist() == scores["band"].tolist()
    for field in ("top_reasons", "next_question"):
        assert crm[MAPPING["columns"][field]].tolist() == scores[field].tolist()
    assert set(crm["Lead_Scored_At__c"]) == {STAMP}
    assert set(crm["Lead_Score__c"].str.fullmatch(r"\d{1,3}")) == {True}
    assert set(crm["Lead_Score_Model__c"]) == {scorer.model_version}
    # The owner of each lead, as read, matched by id; a formula is escaped.
    ids = leads[scorer.id_column].str.strip()
    owners = dict(zip(ids, leads[OWNER], strict=True))
    expected = [owners[i] for i in crm["Id"]]
    expected = ["'" + o if o.startswith("=") else o for o in expected]
    assert crm["OwnerId"].tolist() == expected
    assert "'=HYPERLINK" in crm["OwnerId"].iloc[3]


def test_decimals_and_a_byte_order_mark_are_settings(
    synthetic_project: Project, tmp_path: Path
) -> None:
    scorer = load_scorer(synthetic_project.path("models/scorer"))
    leads = synthetic_project.leads().head(40)
    leads.to_parquet(tmp_path / "leads.parquet")
    mapping = WritebackConfig.model_validate(
        {"columns": MAPPING["columns"], "probability": "decimal", "decimals": 3}
    )
    for bom in (False, True):
        crm = CrmFile(
            tmp_path / "crm.csv",
            mapping.model_copy(update={"excel_bom": bom}),
            scored_at_moment("2026-12-01T10:30:00+01:00"),
        )
        paths = (tmp_path / "leads.parquet", tmp_path / "s.parquet", tmp_path / "r.csv")
        score_file(scorer, *paths, crm=crm)
        assert (tmp_path / "crm.csv").read_bytes().startswith(b"\xef\xbb\xbf") == bom
    rows = pd.read_csv(tmp_path / "crm.csv", encoding="utf-8-sig", dtype=str)
    assert rows.columns[0] == "Id"
    scores = pd.read_parquet(tmp_path / "s.parquet")
    decimals = rows["Lead_Score__c"].astype(float)
    assert decimals.tolist() == scores["probability"].round(3).tolist()
    assert rows["Lead_Score__c"].str.len().max() <= len("0.123")
    assert set(rows["Lead_Scored_At__c"]) == {STAMP}


# --- refused before a row is read ----------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        (
            {"columns": MAPPING["columns"] | {"probabilty": "X__c"}},
            "writeback.columns: unknown field(s) 'probabilty'; a scored lead has id,",
        ),
        (
            {"columns": MAPPING["columns"] | {"score": "lead_score__C"}},
            "the CRM column 'lead_score__C' is given twice "
            "(writeback.columns.probability and writeback.columns.score)",
        ),
        (
            {"passthrough": {OWNER: "Lead_Grade__c"}},
            "(writeback.columns.band and writeback.passthrough.Owner ID)",
        ),
        (
            {"columns": {"id": "Id", "probability": "Lead_Score__c"}},
            "writeback.columns: map model_version, scored_at too",
        ),
        ({"columns": MAPPING["columns"] | {"band": "=B"}}, "writeback.columns.band"),
        ({"probability": "fraction"}, "writeback.probability: Input should be"),
    ],
    ids=["unknown-field", "twice", "twice-passthrough", "required", "formula", "fmt"],
)
def test_a_bad_mapping_is_refused_naming_its_key(
    synthetic_project: Project, tmp_path: Path, changes: dict[str, Any], said: str
) -> None:
    synthetic_project.leads().head(5).to_csv(tmp_path / "leads.csv", index=False)
    params = fragment(tmp_path, changes)
    code, output = score(
        tmp_path, synthetic_project.path("models/scorer"), "-p", params
    )
    assert code == 2
    header, line = refused(output).splitlines()
    assert header == f"error: {params}: 1 bad setting(s)"
    assert said in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leads.csv", params.name]


def test_a_job_the_mapping_cannot_fill_is_one_line_and_writes_nothing(
    synthetic_project: Project, tmp_path: Path
) -> None:
    scorer_dir = synthetic_project.path("models/scorer")
    synthetic_project.leads().head(5).to_csv(tmp_path / "leads.csv", index=False)
    params = fragment(tmp_path)
    cases: list[tuple[list[str | Path], str]] = [
        (
            ["-p", params],
            f"error: {tmp_path / 'leads.csv'}: no column 'Owner ID', which "
            "writeback.passthrough names; add it to the export or remove it from "
            "writeback.passthrough",
        ),
        (
            ["-p", fragment(tmp_path, {"passthrough": {}}, "bare"), "--no-explain"],
            "error: writeback.columns maps top_reasons, next_question, which "
            "--no-explain leaves out",
        ),
        (["-p", tmp_path / "none.yaml"], "none.yaml: not found"),
        (["--scored-at", "2026-12-01T09:30", "-p", params], "has no time zone"),
    ]
    (tmp_path / "other.yaml").write_text("train: {n_estimators: 5}\n")
    cases.append((["-p", tmp_path / "other.yaml"], "other.yaml: no writeback section"))
    before = sorted(p.name for p in tmp_path.iterdir())
    for extra, said in cases:
        code, output = score(tmp_path, scorer_dir, *extra)
        assert code == 2, output
        assert len(refused(output, said).splitlines()) == 1, output
    crm_output = ("--output", tmp_path / "crm.csv")
    code, output = score(tmp_path, scorer_dir, "-p", params, *crm_output)
    assert code == 2 and "are the same file" in refused(output)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    alone = ["score", "--model", scorer_dir, "--scored-at", STAMP, "-p", params]
    result = runner.invoke(app, [str(a) for a in alone])
    assert result.exit_code == 2
    refused(result.output, "--scored-at: only with --crm-file")
    crm = CrmFile(tmp_path / "crm.parquet", load_writeback(params), scored_at_moment())
    with pytest.raises(ScorerError, match=r"crm.parquet: the CRM import file .* CSV"):
        score_file(
            load_scorer(scorer_dir),
            tmp_path / "leads.csv",
            tmp_path / "s.csv",
            tmp_path / "r.csv",
            crm=crm,
        )


# --- written whole or not at all ------------------------------------------------------


def test_a_failing_job_leaves_the_previous_import_file_and_no_stray_file(
    synthetic_project: Project, tmp_path: Path
) -> None:
    scorer = load_scorer(synthetic_project.path("models/scorer"))
    leads = synthetic_project.leads().head(200)
    leads[OWNER] = "005A"
    leads.to_csv(tmp_path / "leads.csv", index=False)
    crm = CrmFile(
        tmp_path / "crm.csv",
        WritebackConfig.model_validate(MAPPING),
        scored_at_moment(STAMP),
    )
    paths = (tmp_path / "leads.csv", tmp_path / "s.csv", tmp_path / "r.csv")
    score_file(scorer, *paths, chunk_rows=50, crm=crm)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert len(read_text(tmp_path / "crm.csv")) == 200

    chunks: list[int] = []

    def fail_after_two_chunks(rows: int) -> None:
        chunks.append(rows)
        if len(chunks) == 2:
            raise RuntimeError("the scheduler gave up")

    later = CrmFile(crm.path, crm.mapping, scored_at_moment("2026-12-02T09:30:00Z"))
    with pytest.raises(RuntimeError, match="gave up"):
        score_file(
            scorer, *paths, chunk_rows=50, progress=fail_after_two_chunks, crm=later
        )
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_sigterm_mid_job_leaves_no_import_file(
    synthetic_project: Project, tmp_path: Path
) -> None:
    leads = synthetic_project.leads().head(200)
    leads[OWNER] = "005A"
    leads.to_csv(tmp_path / "leads.csv", index=False)
    params = fragment(tmp_path)
    arguments: list[str | Path] = ["--chunk-rows", "50"]
    arguments += ["--input", tmp_path / "leads.csv", "--output", tmp_path / "s.csv"]
    arguments += ["--crm-file", tmp_path / "crm.csv"]
    scorer_dir = synthetic_project.path("models/scorer")
    with held_job(scorer_dir, tmp_path / "go", *arguments, "-p", params) as job:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".crm.csv.lead-ml-job-*/crm.csv")):
            assert job.poll() is None, job.communicate()
            assert time.monotonic() < deadline, "the job never wrote a chunk"
            time.sleep(0.02)
        os.kill(job.pid, signal.SIGTERM)
        # The job stops at its next chunk: let the held one go on to it.
        (tmp_path / "go").touch()
        _, stderr = finish(job, 120)
    assert job.returncode == 128 + signal.SIGTERM, stderr
    (tmp_path / "go").unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leads.csv", params.name]


# --- the documented mappings ---------------------------------------------------------


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_the_example_mappings_pass_check_config_and_make_a_file(
    source: Project, leads: pd.DataFrame, tmp_path: Path, crm: str
) -> None:
    example = EXAMPLES / f"{crm}.yaml"
    result = runner.invoke(app, ["check-config", "--params", str(example)])
    assert result.exit_code == 0 and "a valid params fragment" in result.output
    mapping = load_writeback(example)
    assert set(mapping.columns) == set(WRITEBACK_FIELDS) - {"score"}
    exported = leads.rename(columns={OWNER: next(iter(mapping.passthrough))})
    exported.to_csv(tmp_path / "leads.csv", index=False)
    code, output = score(tmp_path, source.path("models/scorer"), "-p", example)
    assert code == 0, output
    rows = read_text(tmp_path / "crm.csv")
    assert rows.columns.tolist() == mapping.header()
    assert len(rows) == len(leads) - 1
    stamp = rows[mapping.columns["scored_at"]].unique().tolist()
    assert stamp == [STAMP if mapping.scored_at == "datetime" else STAMP[:10]]


def test_a_fragment_is_validated_as_params_validates_its_sections() -> None:
    with pytest.raises(ConfigError, match=r"  writeback.columns.id: .*non-blank"):
        parse_fragment({"writeback": {"columns": {"id": " "}}}, "f.yaml")
    with pytest.raises(ConfigError, match=r"  writebak: Extra inputs"):
        parse_fragment({"writebak": MAPPING}, "f.yaml")
