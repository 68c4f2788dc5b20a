"""The exported scorer of every source: a checked bundle without pickles, the same
numbers however it is loaded, one set of output columns, and an in-memory API that
scores or rejects every row it is given, reading blanks and placeholders as unknown."""

from __future__ import annotations

import json
import os
import pickle
import pickletools
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import treeoracle
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from projects import Project
from scoring import (
    feature_columns,
    feature_of,
    same_scores,
    score_variants,
    unknown_spellings,
)
from typer.testing import CliRunner

from lead_ml.cli import app
from lead_ml.explain import CONTRIBUTION_COLUMNS, nothing_worth_asking
from lead_ml.model import absent_features, load_model, predict_proba
from lead_ml.scorer import (
    ALLOW_ACTIVITIES_ENV,
    Scorer,
    file_digest,
    folder_files,
    load_scorer,
    manifest_version,
    merge_rejects,
    predict_leads,
    signature_example,
)
from lead_ml.vocab import (
    EVIDENCE_CODES,
    OUTPUT_DIMENSIONS,
    ContractError,
    ScorerError,
)

BUNDLE = Path("artifacts/bundle")
# MLflow's own warnings on import and load (its AnyType hints; its input example
# comparing a string index with a range), not lead-ml's.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*AnyType:UserWarning"),
    pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:mlflow"),
]


@pytest.fixture(scope="module")
def scorer_dir(project: Project) -> Path:
    return project.path("models/scorer")


@pytest.fixture(scope="module")
def scorer(scorer_dir: Path) -> Scorer:
    return load_scorer(scorer_dir)


@pytest.fixture(scope="module")
def leads(project: Project) -> pd.DataFrame:
    """200 lead rows, the last 120 of them the most recent deals."""
    rows = project.leads()
    return pd.concat([rows.head(80), rows.tail(120)], ignore_index=True)


@pytest.fixture(scope="module")
def log(project: Project, scorer: Scorer) -> pd.DataFrame | None:
    """The activity log as read by the scorer (None without one)."""
    activities = project.activities()
    return None if activities is None else scorer.read_activities(activities)[0]


@pytest.fixture
def copy(scorer_dir: Path, tmp_path: Path) -> Path:
    """A scratch copy of the exported scorer folder, to damage."""
    return Path(shutil.copytree(scorer_dir, tmp_path / "scorer"))


def number_columns(scorer: Scorer) -> list[str]:
    return [c for c, k in scorer.contract.kinds.items() if k == "number"]


def bounded_column(scorer: Scorer) -> tuple[str, float]:
    """A number column with a lower bound, and the bound."""
    return next(
        (c, low)
        for c, (low, _) in sorted(scorer.contract.bounds.items())
        if low is not None
    )


# --- a checked folder (its faults: test_faults_bundle.py) ---------------------------


def test_the_intact_copy_loads_with_the_version_of_every_file(
    copy: Path, scorer: Scorer
) -> None:
    loaded = load_scorer(copy)
    files = {path: file_digest(copy, path) for path in folder_files(copy)}
    assert loaded.model_version == scorer.model_version == manifest_version(files)
    assert {"MLmodel", "pyfunc_model.py", "requirements.txt"} <= set(files)
    assert load_scorer(copy / BUNDLE).model_version == scorer.model_version
    assert load_scorer(copy, expect_version=scorer.model_version) is not None


def _is_pickle(data: bytes) -> bool:
    """Whether bytes parse as a pickle stream from the start to a STOP opcode."""
    try:
        return any(op.name == "STOP" for op, _, _ in pickletools.genops(data))
    except Exception:  # any parse error: not a pickle
        return False


def test_the_pickle_scan_finds_a_pickle() -> None:
    assert _is_pickle(pickle.dumps({"booster": [1.0, 2.0]}))
    assert _is_pickle(pickle.dumps([1, 2], protocol=0))
    assert not _is_pickle(b'{"format_version": 2}')


def test_the_folder_holds_no_pickle_and_no_code_but_the_models_from_code_file(
    scorer_dir: Path,
) -> None:
    files = [p for p in scorer_dir.rglob("*") if p.is_file()]
    assert (scorer_dir / BUNDLE / "booster.txt") in files
    for path in files:
        assert path.suffix not in {".pkl", ".pickle", ".joblib", ".cloudpickle"}, path
        assert not _is_pickle(path.read_bytes()), path
    # Loading the pyfunc imports pyfunc_model.py, and Python may cache its bytecode
    # beside it (__pycache__/pyfunc_model.cpython-311.pyc) when another test loaded
    # this folder first: that file is the same module, not code of its own.
    cached = re.compile(r"pyfunc_model\.cpython-\d+\.pyc")
    code = [
        p
        for p in files
        if p.suffix in {".py", ".pyc", ".pth", ".so"}
        and not (p.parent == scorer_dir / "__pycache__" and cached.fullmatch(p.name))
    ]
    assert code == [scorer_dir / "pyfunc_model.py"]
    flavor = yaml.safe_load((scorer_dir / "MLmodel").read_text())["flavors"]
    pyfunc = flavor["python_function"]
    assert pyfunc["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert "python_model" not in pyfunc  # the key of a pickled PythonModel
    assert not pyfunc.get("code")  # no folder MLflow would put on sys.path
    assert (scorer_dir / BUNDLE / "booster.txt").read_text().startswith("tree\n")
    requirements = (scorer_dir / "requirements.txt").read_text().split()
    assert f"lead-ml=={metadata.version('lead-ml')}" in requirements


def test_the_export_registered_this_scorer(project: Project, scorer: Scorer) -> None:
    from mlflow import MlflowClient
    from mlflow.utils.file_utils import local_file_uri_to_path

    record = json.loads(project.path("reports/export.json").read_text())
    client = MlflowClient(tracking_uri=f"sqlite:///{project.path('mlflow.db')}")
    # The record names the scorer by content; the store's version carries it.
    (version,) = [
        v
        for v in client.search_model_versions(f"name = '{record['registered_model']}'")
        if v.tags.get("lead_ml.model_version") == record["model_version"]
    ]
    assert record["model_version"] == scorer.model_version
    assert version.source is not None and version.run_id is not None
    logged = client.get_logged_model(version.source.removeprefix("models:/"))
    stored = Path(local_file_uri_to_path(logged.artifact_location))
    exported = project.path("models/scorer")
    for name in ("manifest.json", "booster.txt", "scorer.json"):
        copied = (stored / BUNDLE / name).read_bytes()
        assert copied == (exported / BUNDLE / name).read_bytes()
    # MLflow wrote the logged copy's MLmodel afresh (its own time, ids, paths): the
    # manifest's hash of it leaves exactly those out, so it checks out the same.
    assert (stored / "MLmodel").read_bytes() != (exported / "MLmodel").read_bytes()
    assert load_scorer(stored).model_version == scorer.model_version
    run = client.get_run(version.run_id)
    assert run.data.tags["source"] == project.params.source.name
    assert run.data.tags["lead_ml.model_version"] == record["model_version"]


# --- the same numbers from every door -------------------------------------------------


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers as float64, text as objects with None: dtypes of a round trip aside."""
    return frame.apply(
        lambda c: (
            c.astype("float64")
            if pd.api.types.is_numeric_dtype(c.dtype)
            else c.astype(object).where(c.notna(), None)
        )
    )


PYFUNC_SCRIPT = """
import sys
import mlflow
import pandas as pd

model = mlflow.pyfunc.load_model(sys.argv[1])
leads = pd.read_parquet(sys.argv[2])
scores = model.predict(leads, params={"activities_path": sys.argv[3]})
scores.to_parquet(sys.argv[4])
"""


def test_pyfunc_in_a_fresh_process_load_scorer_and_the_cli_agree(
    project: Project,
    scorer_dir: Path,
    scorer: Scorer,
    leads: pd.DataFrame,
    tmp_path: Path,
) -> None:
    # 67 leads typed as the MLflow signature declares them
    inputs = signature_example(scorer, leads.iloc[::3].reset_index(drop=True))
    inputs.loc[3, scorer.id_column] = None  # rejected everywhere, with a reason
    blank = number_columns(scorer)[0]
    inputs.loc[5, blank] = np.nan  # scored: an empty number is allowed
    leads_path = tmp_path / "leads.parquet"
    inputs.to_parquet(leads_path)
    activities = project.activities()
    activities_path = tmp_path / "activities.parquet"
    if activities is not None:
        activities.to_parquet(activities_path)
    workdir = tmp_path / "empty"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env[ALLOW_ACTIVITIES_ENV] = "1"  # the script names its activities file
    pyfunc_out = tmp_path / "pyfunc.parquet"
    done = subprocess.run(
        [sys.executable, "-c", PYFUNC_SCRIPT, str(scorer_dir), str(leads_path)]
        + [str(activities_path) if activities is not None else "", str(pyfunc_out)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert list(workdir.iterdir()) == []  # no store, no params, nothing written
    from_mlflow = pd.read_parquet(pyfunc_out)
    in_memory = scorer.score(inputs, activities)
    pd.testing.assert_frame_equal(_plain(from_mlflow), _plain(in_memory))
    assert in_memory["reject_reason"].notna().sum() == 1
    assert in_memory.loc[3, "reject_reason"] == f"{scorer.id_column} is missing"
    assert in_memory["probability"].notna().iloc[5]

    cli_out = tmp_path / "cli.parquet"
    arguments = ["score", "--model", str(scorer_dir), "--input", str(leads_path)]
    arguments += ["--output", str(cli_out)]
    if activities is not None:
        arguments += ["--activities", str(activities_path)]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    from_cli = pd.read_parquet(cli_out)
    scored = in_memory[in_memory["reject_reason"].isna()].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        _plain(from_cli), _plain(scored.drop(columns="reject_reason"))
    )


def test_pyfunc_reads_activities_from_csv_or_parquet(
    synthetic_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    scorer_dir = synthetic_project.path("models/scorer")
    monkeypatch.setenv(ALLOW_ACTIVITIES_ENV, "1")
    model = mlflow.pyfunc.load_model(str(scorer_dir))
    activities = synthetic_project.activities()
    assert activities is not None
    as_parquet, as_csv = tmp_path / "activities.parquet", tmp_path / "activities.csv"
    activities.to_parquet(as_parquet)
    activities.to_csv(as_csv, index=False)
    sample = signature_example(
        load_scorer(scorer_dir), synthetic_project.leads().head(20)
    )
    options = {"explain": False}
    from_csv = model.predict(sample, params={**options, "activities_path": str(as_csv)})
    from_parquet = model.predict(
        sample, params={**options, "activities_path": str(as_parquet)}
    )
    pd.testing.assert_frame_equal(from_csv, from_parquet)
    without = model.predict(sample, params=options)
    assert not np.allclose(without["probability"], from_csv["probability"])
    with pytest.raises(
        ContractError, match=r"a\.json .*export it as \.csv, \.xlsx or \.parquet"
    ):
        model.predict(sample, params={"activities_path": str(tmp_path / "a.json")})


def test_a_time_zone_in_created_at_reads_as_utc_in_the_pyfunc_and_the_cli(
    synthetic_project: Project, tmp_path: Path
) -> None:
    import mlflow

    scorer_dir = synthetic_project.path("models/scorer")
    scorer = load_scorer(scorer_dir)
    created = scorer.spec["created_column"]
    naive = signature_example(scorer, synthetic_project.leads().tail(40))
    naive = naive.reset_index(drop=True)
    aware = naive.assign(
        **{created: naive[created].dt.tz_localize("UTC").dt.tz_convert("Asia/Kolkata")}
    )
    offsets = naive.assign(**{created: aware[created].map(lambda t: t.isoformat())})
    assert offsets[created].str.endswith("+05:30").all()
    model = mlflow.pyfunc.load_model(str(scorer_dir))
    expected = model.predict(naive)
    assert expected["reject_reason"].isna().all()
    for leads in (aware, offsets):
        pd.testing.assert_frame_equal(model.predict(leads), expected)
    pd.testing.assert_frame_equal(predict_leads(scorer, aware), expected)

    aware.to_parquet(tmp_path / "leads.parquet")
    out = tmp_path / "scores.parquet"
    arguments = ["score", "--model", str(scorer_dir), "--input"]
    arguments += [str(tmp_path / "leads.parquet"), "--output", str(out)]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(
        _plain(pd.read_parquet(out)), _plain(expected.drop(columns="reject_reason"))
    )


def test_the_bundle_scores_like_the_trained_model(
    project: Project, scorer: Scorer, leads: pd.DataFrame, log: pd.DataFrame | None
) -> None:
    scored = scorer.score_chunk(leads, log, explain_reasons=False)
    trained = load_model(project.path("models/model"))
    np.testing.assert_array_equal(
        scored.output["probability"].to_numpy(),
        predict_proba(trained, scored.features),
    )


# --- one output for every source ------------------------------------------------------


def test_the_output_columns_are_the_same_for_every_source(
    project: Project, scorer: Scorer
) -> None:
    id_column = project.params.source.tables.deals.id
    assert scorer.id_column == id_column
    contributions = [f"contrib_{d}" for d in OUTPUT_DIMENSIONS]
    assert contributions[-1] == "contrib_other"
    assert scorer.output_columns() == [
        id_column,
        "probability",
        "score",
        "band",
        *contributions,
        "base_value",
        "top_reasons",
        "next_question",
        "model_version",
    ]
    assert scorer.output_columns(False) == [
        id_column,
        "probability",
        "score",
        "band",
        "model_version",
    ]
    # and the lead contract reads the id first, as the export holds it
    assert scorer.contract.columns[0] == id_column


def test_score_gives_one_row_per_lead_in_order_with_the_index(
    project: Project, scorer: Scorer, leads: pd.DataFrame
) -> None:
    inputs = leads.set_axis(pd.Index(range(1000, 1000 + len(leads)), name="lead"))
    before = inputs.copy()
    scores = scorer.score(inputs, project.activities())
    pd.testing.assert_frame_equal(inputs, before)  # the input is not touched
    assert scores.index.equals(inputs.index)
    id_column = scorer.id_column
    assert scores[id_column].tolist() == inputs[id_column].astype(str).tolist()
    assert list(scores.columns) == [*scorer.output_columns(), "reject_reason"]
    assert scores["reject_reason"].isna().all()
    assert scores["probability"].dtype == "float64"
    assert scores["probability"].between(0, 1, inclusive="neither").all()
    expected = np.clip(np.rint(100 * scores["probability"]), 1, 99)
    assert (scores["score"] == expected).all()
    cuts = scorer.thresholds
    band = np.select(
        [scores["probability"] > cuts[b] for b in "ABC"], list("ABC"), default="D"
    )
    assert (scores["band"] == band).all()
    assert (scores["model_version"] == scorer.model_version).all()
    assert (scores[list(CONTRIBUTION_COLUMNS)].notna()).all().all()


def test_every_band_occurs_among_the_sources_leads(
    project: Project, scorer: Scorer, log: pd.DataFrame | None
) -> None:
    scored = scorer.score_chunk(project.leads(), log, explain_reasons=False)
    assert set(scored.output["band"]) == set("ABCD")


def test_a_probability_on_a_threshold_is_in_that_band(scorer: Scorer) -> None:
    """The rule scorer.json states ("A: probability >= thresholds.A; ...") is the
    rule applied, at the exact boundary and just below it."""
    cuts = scorer.thresholds
    assert scorer.spec["bands"]["meaning"].startswith("A: probability >= thresholds.A")
    on = np.array([cuts["A"], cuts["B"], cuts["C"]])
    below = np.nextafter(on, 0.0)
    assert scorer.bands(on).tolist() == ["A", "B", "C"]
    assert scorer.bands(below).tolist() == ["B", "C", "D"]
    assert scorer.bands(np.array([1.0, 0.0])).tolist() == ["A", "D"]


def test_open_leads_are_scored_with_reasons(project: Project, scorer: Scorer) -> None:
    leads = project.leads("open")
    if leads.empty:
        pytest.skip(f"{project.name}: the export holds no open deals")
    scores = scorer.score(leads, project.activities())
    assert scores["reject_reason"].isna().all()
    assert scores["top_reasons"].str.len().gt(0).all()
    # The value: the trained model's probability of the deals' features as the
    # pipeline built them (an open deal is scored like any other).
    trained = load_model(project.path("models/model"))
    ids = scores[scorer.id_column].astype(str).tolist()
    features = project.features().set_index("deal_id").loc[ids]
    np.testing.assert_allclose(
        scores["probability"], predict_proba(trained, features), rtol=0, atol=1e-12
    )


# --- rejected rows ------------------------------------------------------------------


def test_bad_rows_are_rejected_with_their_reason(
    scorer: Scorer, leads: pd.DataFrame
) -> None:
    id_column = scorer.id_column
    inputs = leads.head(10)[scorer.contract.columns].astype(object)
    bounded, low = bounded_column(scorer)
    other = next((c for c in number_columns(scorer) if c != bounded), bounded)
    expected: dict[int, str] = {}
    inputs.loc[0, id_column] = None
    expected[0] = f"{id_column} is missing"
    inputs.loc[2, bounded] = low - 3
    expected[2] = f"{bounded} is below {low:g} ({low - 3:g})"
    inputs.loc[3, other] = "lots"
    expected[3] = f"{other} is not a number: 'lots'"
    inputs.loc[4, other] = np.inf
    expected[4] = f"{other} is not a number: 'inf'"
    inputs.loc[6, id_column] = repeated = str(inputs.loc[5, id_column])
    expected[6] = f"duplicate {id_column} '{repeated}' (first seen at row 5)"
    created = scorer.spec["created_column"]
    if created:
        inputs.loc[1, created] = "31/01/2024"
        expected[1] = f"{created} is not an ISO 8601 date: '31/01/2024'"
    evidence = feature_columns(scorer, "evidence")
    if evidence:
        inputs.loc[7, evidence[0]] = "maybe"
        expected[7] = f"{evidence[0]} is not yes/no: 'maybe'"
    scores = scorer.score(inputs, explain_reasons=False)
    reasons = scores["reject_reason"]
    assert reasons.dropna().to_dict() == expected
    assert scores.loc[reasons.notna(), "probability"].isna().all()
    assert scores.loc[reasons.isna(), "probability"].notna().all()
    assert scores[id_column].tolist()[1:] == inputs[id_column].astype(str).tolist()[1:]


def test_a_required_created_date_is_checked(
    synthetic_project: Project,
) -> None:
    scorer = load_scorer(synthetic_project.path("models/scorer"))
    created = scorer.spec["created_column"]
    assert scorer.contract.required == (created,)  # activities count from it
    inputs = synthetic_project.leads().head(3).astype({created: object})
    inputs.loc[1, created] = None
    scores = scorer.score(inputs, explain_reasons=False)
    assert scores["reject_reason"].tolist()[1] == f"{created} is missing"


def test_a_column_of_nothing_but_bad_values_rejects_rows_not_the_frame(
    scorer: Scorer, leads: pd.DataFrame
) -> None:
    column = number_columns(scorer)[0]
    scores = scorer.score(leads.head(4).assign(**{column: "many"}), None, False)
    assert (scores["reject_reason"] == f"{column} is not a number: 'many'").all()


def test_unseen_categories_are_scored_and_counted(
    scorer: Scorer, leads: pd.DataFrame, log: pd.DataFrame | None
) -> None:
    first, *rest = feature_columns(scorer, "category")
    inputs = leads.head(30).copy()
    inputs.loc[:9, first] = "space mining"
    scored = scorer.score_chunk(inputs, log, explain_reasons=True)
    assert len(scored.rejects) == 0 and len(scored.output) == 30
    assert scored.unseen[feature_of(scorer, first)] == 10
    known = scorer.score_chunk(leads.head(30), log, explain_reasons=False)
    for column in rest:
        name = feature_of(scorer, column)
        assert scored.unseen[name] == known.unseen[name]
    assert (
        scored.output[scorer.id_column].tolist()
        == known.output[scorer.id_column].tolist()
    )


def test_missing_columns_are_named(scorer: Scorer, leads: pd.DataFrame) -> None:
    dropped = sorted(feature_columns(scorer)[:2])
    with pytest.raises(
        ScorerError, match=rf"missing column\(s\) {', '.join(dropped)};"
    ):
        scorer.score(leads.drop(columns=dropped))


def test_a_repeated_column_is_refused(scorer: Scorer, leads: pd.DataFrame) -> None:
    column = feature_columns(scorer)[0]
    twice = pd.concat([leads.head(3), leads.head(3)[[column]]], axis=1)
    with pytest.raises(ScorerError, match=rf"column.s. {column} appear twice"):
        scorer.score(twice)


def test_an_empty_frame_gives_an_empty_output(
    scorer: Scorer, leads: pd.DataFrame
) -> None:
    scores = scorer.score(leads.iloc[:0])
    assert len(scores) == 0
    assert list(scores.columns) == [*scorer.output_columns(), "reject_reason"]


def test_a_scorer_without_an_activity_log_refuses_one(
    project: Project, scorer: Scorer
) -> None:
    if scorer.counts_activities:
        pytest.skip(f"{project.name}: its model counts activities")
    log = pd.DataFrame({"deal": ["a"], "when": ["2024-01-02"], "type": ["Demo"]})
    with pytest.raises(ScorerError, match="trained without an activity log"):
        scorer.score(project.leads().head(3), log)


# --- unknown is unknown, however it is written ----------------------------------------


def test_blank_null_and_declared_placeholders_score_as_the_same_unknown(
    scorer: Scorer, leads: pd.DataFrame, log: pd.DataFrame | None
) -> None:
    """Blank, null and a declared placeholder (X Education's 'Select', the synthetic
    CRM's 'unknown') give the same scores, reasons and question, and the reasons
    say "not yet known" with the source's own column name."""
    sample = leads.head(40)
    columns = feature_columns(scorer)
    spellings = unknown_spellings(scorer)
    # every column unknown at once, then every other column (the rest known)
    groups = [columns, columns[::2], columns[1::2]]
    variants = [
        dict.fromkeys(group, spelling) for group in groups for spelling in spellings
    ]
    scored = score_variants(scorer, sample, log, variants)
    spoken = 0
    for g, group in enumerate(groups):
        runs = scored[g * len(spellings) : (g + 1) * len(spellings)]
        for run in runs[1:]:
            same_scores(run, runs[0])
        for column in group:
            spec = next(s for s in scorer.registry.specs if s.column == column)
            values = runs[0].features[spec.name]
            if spec.kind == "evidence":
                assert (values == EVIDENCE_CODES["unknown"]).all(), column
            else:
                assert values.isna().all(), column
        output = runs[0].output
        for reasons in output["top_reasons"]:
            for reason in reasons.split("; "):
                unknown = next(
                    (c for c in group if f": {c} not yet known" in reason), None
                )
                if unknown is not None:
                    assert reason.startswith("? ") and reason.endswith(
                        f": {unknown} not yet known"
                    ), reason
                    spoken += 1
                assert not any(f": {c} is " in reason for c in group), reason
        for placeholder in scorer.contract.missing_values:
            assert not output["top_reasons"].str.contains(f"is {placeholder}").any()
    assert spoken > 0  # the unknown columns were among the reasons


def test_category_levels_match_without_regard_to_case_or_spaces(
    scorer: Scorer, leads: pd.DataFrame, log: pd.DataFrame | None
) -> None:
    """A category written in another case or with spaces around it is the same
    level: the same scores and explanations, and not counted as unseen."""
    sample = leads.head(80)
    respelled = sample.copy()
    for column in feature_columns(scorer, "category"):
        text = sample[column].astype("string")
        respelled[column] = "  " + text.str.upper() + " "
    before = scorer.score_chunk(sample, log, explain_reasons=True)
    after = scorer.score_chunk(respelled, log, explain_reasons=True)
    assert after.unseen == before.unseen
    columns = ["probability", "band", *CONTRIBUTION_COLUMNS, "next_question"]
    pd.testing.assert_frame_equal(after.output[columns], before.output[columns])


def test_google_and_google_are_one_lead_source(x_education_project: Project) -> None:
    scorer = load_scorer(x_education_project.path("models/scorer"))
    leads = x_education_project.leads().head(30)
    spelled = {
        spelling: scorer.score_chunk(leads.assign(**{"Lead Source": spelling}))
        for spelling in ("Google", "google", " GOOGLE ")
    }
    for scored in spelled.values():
        assert scored.unseen["lead_source"] == 0
        np.testing.assert_array_equal(
            scored.output["probability"], spelled["Google"].output["probability"]
        )
    assert "Google" in scorer.model.info.categories["lead_source"]


def test_a_select_answer_gets_a_question_and_an_unknown_reason(
    x_education_project: Project,
) -> None:
    """X Education's form default 'Select' is "not answered": its reason says
    "not yet known" and a mapped question asks for the answer."""
    scorer = load_scorer(x_education_project.path("models/scorer"))
    pain = "What matters most to you in choosing a course"
    leads = x_education_project.leads().head(50)
    asked = scorer.score(leads.assign(**{pain: "Select", "Specialization": "Select"}))
    assert asked["reject_reason"].isna().all()
    # asked about it, unless no answer would move the lead by explain.min_question_gain
    offered = asked["next_question"].str.startswith(f"Ask about {pain}: ")
    held = asked["next_question"] == nothing_worth_asking(scorer.min_question_gain)
    assert (offered | held).all() and offered.mean() > 0.8
    assert not asked["top_reasons"].str.contains("is Select").any()
    said = asked["top_reasons"].str.contains(r"\? fit: Specialization not yet known")
    assert said.any()
    answered = scorer.score(leads.assign(**{pain: "Better Career Prospects"}))
    assert not answered["next_question"].str.contains(pain).any()


# --- behaviour ----------------------------------------------------------------------


def test_changing_the_id_does_not_change_the_score(
    project: Project, scorer: Scorer, leads: pd.DataFrame
) -> None:
    id_column = scorer.id_column
    renamed = leads.assign(**{id_column: "X-" + leads[id_column].astype(str)})
    activities = project.activities()
    moved = None
    if activities is not None and scorer.activity_columns:
        key = scorer.activity_columns[0]
        moved = activities.assign(**{key: "X-" + activities[key].astype(str)})
    before = scorer.score(leads, activities)
    after = scorer.score(renamed, moved)
    assert after[id_column].tolist() == renamed[id_column].tolist()
    columns = [c for c in before.columns if c != id_column]
    pd.testing.assert_frame_equal(after[columns], before[columns])


def test_a_yes_never_lowers_the_score_where_the_field_is_monotone(
    project: Project, scorer: Scorer, leads: pd.DataFrame, log: pd.DataFrame | None
) -> None:
    """Filling in an evidence answer (no -> unknown -> yes) never lowers a lead's
    score; raising a number with a declared direction never moves it against that
    direction."""
    monotone = [s for s in scorer.registry.specs if s.monotone and s.kind != "activity"]
    if not monotone:
        pytest.skip(f"{project.name}: no column has a declared or known direction")
    ladders: list[list[object]] = []
    for spec in monotone:
        if spec.kind == "evidence":
            ladders.append(["no", None, "yes"])
        else:
            known = leads[spec.column].dropna().astype(float)
            quartiles = np.quantile(known, [0, 0.25, 0.5, 0.75, 1])
            ladders.append(sorted(set(quartiles.tolist())))
    variants = [
        {spec.column: value}
        for spec, ladder in zip(monotone, ladders, strict=True)
        for value in ladder
    ]
    scored = iter(score_variants(scorer, leads, log, variants, False))
    for spec, ladder in zip(monotone, ladders, strict=True):
        scores = [next(scored).output["probability"].to_numpy() for _ in ladder]
        steps = spec.monotone * np.diff(np.vstack(scores), axis=0)
        assert (steps >= -1e-12).all(), spec.name
        if spec.kind == "evidence":
            assert (steps > 0).any(), spec.name  # a yes does raise some scores


# --- malformed frames never crash the scorer ---------------------------------------

JUNK = st.one_of(
    st.none(),
    st.sampled_from([np.nan, np.inf, -np.inf, -1.0, 0.0, 1e308, -0.0]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(["", "   ", "x" * 50_000, "unknown", "Select", "yes", "no"]),
    st.sampled_from(["2024-02-30", "2024-01-31T09:30:00+05:00", "2024-06-01", "1e3"]),
    st.datetimes(),
    st.dates(),
    st.lists(st.integers(), max_size=2),
)


@st.composite
def malformed_frames(
    draw: st.DrawFn, pool: pd.DataFrame, columns: list[str]
) -> pd.DataFrame:
    rows = draw(st.lists(st.integers(0, len(pool) - 1), max_size=6))
    frame = pool.iloc[rows].reset_index(drop=True)
    for column in draw(st.lists(st.sampled_from(columns), max_size=4, unique=True)):
        values = frame[column].astype(object).tolist()
        if draw(st.booleans()):  # one kind of junk for the whole column
            values = [draw(JUNK)] * len(values)
        for row in draw(st.lists(st.integers(0, max(len(frame) - 1, 0)), max_size=3)):
            if values:
                values[row] = draw(JUNK)
        frame[column] = pd.Series(values, index=frame.index, dtype=object)
    if draw(st.booleans()):
        extra = [draw(JUNK)] * len(frame)
        frame["an_extra_column"] = pd.Series(extra, index=frame.index, dtype=object)
    dropped = draw(st.lists(st.sampled_from(columns), max_size=2, unique=True))
    if draw(st.integers(0, 9)) == 0:  # rarely: columns go missing
        frame = frame.drop(columns=dropped)
    return frame


@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data())
def test_malformed_frames_are_scored_or_rejected_row_by_row(
    scorer: Scorer, leads: pd.DataFrame, data: st.DataObject
) -> None:
    columns = scorer.contract.columns
    frame = data.draw(malformed_frames(leads.head(12), columns))
    explain_reasons = data.draw(st.booleans())
    missing = [c for c in columns if c not in frame.columns]
    try:
        chunk = scorer.score_chunk(frame, explain_reasons=explain_reasons)
    except (ScorerError, ContractError) as error:
        assert missing, f"refused a frame with every column: {error}"
        assert all(c in str(error) for c in missing)
        with pytest.raises(type(error)):
            scorer.score(frame, explain_reasons=explain_reasons)
        return
    # what Scorer.score returns, from the chunk already scored (one scoring each)
    dtypes = scorer.output_dtypes(explain_reasons)
    scores = merge_rejects(chunk, len(frame), dtypes, scorer.id_column)
    scores = scores.set_axis(frame.index)
    assert not missing
    id_column = scorer.id_column
    assert len(scores) == len(frame) and scores.index.equals(frame.index)
    scored = scores["reject_reason"].isna()
    assert scores.loc[scored, id_column].notna().all()
    assert scores.loc[scored, "probability"].between(0, 1).all()
    assert scores.loc[~scored, "probability"].isna().all()
    assert (scores.loc[~scored, "reject_reason"].str.len() > 0).all()
    assert len(chunk.output) + len(chunk.rejects) == len(frame)
    assert sorted(chunk.rejects["row"]) == np.flatnonzero(~scored).tolist()
    # The values, not only their range: each scored lead's probability is the
    # model's reading of its row (a plain-Python walk of the trees), its band by >=.
    model = scorer.model
    dump = model.booster.dump_model(num_iteration=model.info.best_iteration)
    absent = absent_features(model)
    probability = chunk.output["probability"].to_numpy(float)
    for row, p in zip(chunk.rows, probability, strict=True):
        raw = np.array(treeoracle.margin(dump, row, absent))
        expected = 1 / (1 + np.exp(-model.info.calibration.log_odds(raw)))
        assert p == pytest.approx(float(expected), abs=1e-12)
    cuts = scorer.thresholds
    above = [probability >= cuts[band] for band in "ABC"]
    bands = np.select(above, ["A", "B", "C"], "D")
    assert chunk.output["band"].astype(str).tolist() == bands.tolist()
