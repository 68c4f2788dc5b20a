"""The exported scorer: a checked bundle without pickles, the same numbers however it
is loaded, and an in-memory API that scores or rejects every row it is given."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import pickletools
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lead_ml.cli import app
from lead_ml.explain import CONTRIBUTION_COLUMNS
from lead_ml.model import load_model, predict_proba
from lead_ml.schema import ContractError
from lead_ml.scorer import (
    FORMAT_VERSION,
    ID_COLUMN,
    Scorer,
    ScorerError,
    input_columns,
    load_scorer,
)

BUNDLE = Path("artifacts/bundle")
RESULT_COLUMNS = ["probability", "score", "band", *CONTRIBUTION_COLUMNS, "base_value"]


@pytest.fixture(scope="module")
def scorer_dir(small_project: Path) -> Path:
    return small_project / "models/scorer"


@pytest.fixture(scope="module")
def scorer(scorer_dir: Path) -> Scorer:
    return load_scorer(scorer_dir)


@pytest.fixture(scope="module")
def activities_path(small_project: Path) -> Path:
    return small_project / "data/validated/activities.parquet"


@pytest.fixture(scope="module")
def leads(small_leads: pd.DataFrame) -> pd.DataFrame:
    """200 lead rows, the last 120 of them the most recent deals."""
    return pd.concat([small_leads.head(80), small_leads.tail(120)], ignore_index=True)


@pytest.fixture
def copy(scorer_dir: Path, tmp_path: Path) -> Path:
    """A scratch copy of the exported scorer folder, to damage."""
    return Path(shutil.copytree(scorer_dir, tmp_path / "scorer"))


def _reseal(folder: Path, name: str) -> None:
    """Recompute one file's checksum, as a careless hand edit plus re-hash would."""
    checksums = folder / BUNDLE / "checksums.json"
    sums = json.loads(checksums.read_text())
    sums[name] = hashlib.sha256((folder / BUNDLE / name).read_bytes()).hexdigest()
    checksums.write_text(json.dumps(sums))


# --- a checked bundle ---------------------------------------------------------------


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    middle += next(i for i, b in enumerate(data[middle:]) if chr(b).isdigit())
    data[middle] = ord("7") if data[middle] != ord("7") else ord("3")
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _replace(folder: Path, name: str, text: str, reseal: bool = False) -> None:
    (folder / BUNDLE / name).write_text(text)
    if reseal:
        _reseal(folder, name)


DAMAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "booster byte": (
        lambda f: _flip_a_byte(f / BUNDLE / "booster.txt"),
        r"booster\.txt: checksum mismatch",
    ),
    "spec byte": (
        lambda f: _flip_a_byte(f / BUNDLE / "scorer.json"),
        r"scorer\.json: checksum mismatch",
    ),
    "truncated booster": (
        lambda f: _truncate(f / BUNDLE / "booster.txt"),
        r"booster\.txt: checksum mismatch, the file was changed or truncated",
    ),
    "missing booster": (
        lambda f: (f / BUNDLE / "booster.txt").unlink(),
        r"booster\.txt: missing from the scorer bundle",
    ),
    "missing spec": (
        lambda f: (f / BUNDLE / "scorer.json").unlink(),
        r"scorer\.json: missing from the scorer bundle",
    ),
    "missing checksums": (
        lambda f: (f / BUNDLE / "checksums.json").unlink(),
        r"checksums\.json: missing from the scorer bundle",
    ),
    "checksums not JSON": (
        lambda f: _replace(f, "checksums.json", "{booster.txt: 1"),
        r"checksums\.json: not valid JSON",
    ),
    "checksums not a mapping": (
        lambda f: _replace(f, "checksums.json", "[1, 2]"),
        r"checksums\.json: expected a file -> sha256 mapping",
    ),
    "spec not JSON, resealed": (
        lambda f: _replace(f, "scorer.json", '{"format_version": 1,', reseal=True),
        r"scorer\.json: not valid JSON",
    ),
    "booster not LightGBM, resealed": (
        lambda f: _replace(f, "booster.txt", "hello\n", reseal=True),
        r"booster\.txt: not a LightGBM model",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_bundle_is_refused_with_a_clear_message(
    copy: Path, damage: str
) -> None:
    spoil, message = DAMAGES[damage]
    spoil(copy)
    with pytest.raises(ScorerError, match=message) as refused:
        load_scorer(copy)
    assert str(copy) in str(refused.value)
    assert "re-export" in str(refused.value).lower()


def test_the_intact_copy_loads(copy: Path) -> None:
    assert load_scorer(copy).model_version.startswith("lead-ml-scorer:")


def test_a_damaged_bundle_is_refused_by_mlflow_too(copy: Path) -> None:
    import mlflow

    _flip_a_byte(copy / BUNDLE / "booster.txt")
    with pytest.raises(Exception, match="checksum mismatch"):
        mlflow.pyfunc.load_model(str(copy))


def _edit_spec(folder: Path, **changes: object) -> None:
    spec_path = folder / BUNDLE / "scorer.json"
    spec = json.loads(spec_path.read_text())
    for key, value in changes.items():
        if value is None:
            del spec[key]
        else:
            spec[key] = value
    spec_path.write_text(json.dumps(spec))
    _reseal(folder, "scorer.json")


def test_another_format_version_names_both_versions(copy: Path) -> None:
    _edit_spec(copy, format_version=FORMAT_VERSION + 98, lead_ml_version="9.9.9")
    with pytest.raises(ScorerError) as refused:
        load_scorer(copy)
    message = str(refused.value)
    assert f"scorer format {FORMAT_VERSION + 98}" in message
    assert "exported by lead-ml 9.9.9" in message
    assert f"reads format {FORMAT_VERSION}" in message


def test_an_incomplete_spec_names_what_is_missing(copy: Path) -> None:
    _edit_spec(copy, drift_reference=None, featurize=None)
    with pytest.raises(ScorerError, match="lacks featurize, drift_reference"):
        load_scorer(copy)


def test_a_path_without_a_scorer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScorerError, match="no such folder"):
        load_scorer(tmp_path / "nowhere")
    with pytest.raises(ScorerError, match="no lead-ml scorer here"):
        load_scorer(tmp_path)


def _is_pickle(data: bytes) -> bool:
    """Whether bytes parse as a pickle stream from the start to a STOP opcode."""
    try:
        return any(op.name == "STOP" for op, _, _ in pickletools.genops(data))
    except Exception:  # any parse error: not a pickle
        return False


def test_the_pickle_scan_finds_a_pickle() -> None:
    assert _is_pickle(pickle.dumps({"booster": [1.0, 2.0]}))
    assert _is_pickle(pickle.dumps([1, 2], protocol=0))
    assert not _is_pickle(b'{"format_version": 1}')


def test_the_bundle_holds_no_pickle(scorer_dir: Path) -> None:
    files = [p for p in scorer_dir.rglob("*") if p.is_file()]
    assert (scorer_dir / BUNDLE / "booster.txt") in files
    for path in files:
        assert path.suffix not in {".pkl", ".pickle", ".joblib", ".cloudpickle"}, path
        assert not _is_pickle(path.read_bytes()), path
    flavor = yaml.safe_load((scorer_dir / "MLmodel").read_text())["flavors"]
    pyfunc = flavor["python_function"]
    assert pyfunc["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert "python_model" not in pyfunc  # the key of a pickled PythonModel
    assert (scorer_dir / BUNDLE / "booster.txt").read_text().startswith("tree\n")


def test_the_export_registered_this_scorer(small_project: Path) -> None:
    from mlflow import MlflowClient
    from mlflow.utils.file_utils import local_file_uri_to_path

    record = json.loads((small_project / "reports/export.json").read_text())
    client = MlflowClient(tracking_uri=f"sqlite:///{small_project / 'mlflow.db'}")
    version = client.get_model_version(
        record["registered_model"], str(record["registered_version"])
    )
    assert version.run_id == record["run_id"]
    assert version.source == record["model_uri"]
    logged = client.get_logged_model(record["model_uri"].removeprefix("models:/"))
    stored = Path(local_file_uri_to_path(logged.artifact_location)) / BUNDLE
    exported = small_project / "models/scorer" / BUNDLE
    for name in ("checksums.json", "booster.txt", "scorer.json"):
        assert (stored / name).read_bytes() == (exported / name).read_bytes()


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
    scorer_dir: Path,
    scorer: Scorer,
    leads: pd.DataFrame,
    activities_path: Path,
    tmp_path: Path,
) -> None:
    inputs = leads.iloc[::3].reset_index(drop=True)  # 67 leads: explaining is slow
    inputs = inputs.astype({"employees": "float64"})  # a double in the signature
    inputs.loc[3, ID_COLUMN] = None  # rejected everywhere, with a reason
    inputs.loc[5, "employees"] = np.nan  # scored: an empty number is allowed
    leads_path = tmp_path / "leads.parquet"
    inputs.to_parquet(leads_path)
    workdir = tmp_path / "empty"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    pyfunc_out = tmp_path / "pyfunc.parquet"
    subprocess.run(
        [sys.executable, "-c", PYFUNC_SCRIPT, str(scorer_dir), str(leads_path)]
        + [str(activities_path), str(pyfunc_out)],
        cwd=workdir,
        env=env,
        check=True,
        capture_output=True,
    )
    assert list(workdir.iterdir()) == []  # no store, no params, nothing written
    from_mlflow = pd.read_parquet(pyfunc_out)
    in_memory = scorer.score(inputs, pd.read_parquet(activities_path))
    pd.testing.assert_frame_equal(_plain(from_mlflow), _plain(in_memory))
    assert in_memory["reject_reason"].notna().sum() == 1
    assert in_memory.loc[3, "reject_reason"] == "deal_id is missing"

    cli_out = tmp_path / "cli.parquet"
    result = CliRunner().invoke(
        app,
        ["score", "--model", str(scorer_dir), "--input", str(leads_path)]
        + ["--output", str(cli_out), "--activities", str(activities_path)],
    )
    assert result.exit_code == 0, result.output
    from_cli = pd.read_parquet(cli_out)
    scored = in_memory[in_memory["reject_reason"].isna()].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        _plain(from_cli), _plain(scored.drop(columns="reject_reason"))
    )


def test_pyfunc_reads_activities_from_csv_or_parquet(
    scorer_dir: Path, leads: pd.DataFrame, activities_path: Path, tmp_path: Path
) -> None:
    import mlflow

    model = mlflow.pyfunc.load_model(str(scorer_dir))
    as_csv = tmp_path / "activities.csv"
    pd.read_parquet(activities_path).to_csv(as_csv, index=False)
    sample = leads.head(20).astype({"employees": "float64"})
    options = {"explain": False}
    from_csv = model.predict(sample, params={**options, "activities_path": str(as_csv)})
    from_parquet = model.predict(
        sample, params={**options, "activities_path": str(activities_path)}
    )
    pd.testing.assert_frame_equal(from_csv, from_parquet)
    without = model.predict(sample, params=options)
    assert not np.allclose(without["probability"], from_csv["probability"])
    with pytest.raises(ScorerError, match="activities must be .parquet or .csv"):
        model.predict(sample, params={"activities_path": str(tmp_path / "a.json")})


def test_the_bundle_scores_like_the_trained_model(
    small_project: Path, scorer: Scorer, leads: pd.DataFrame
) -> None:
    scored = scorer.score_chunk(leads, explain_reasons=False)
    trained = load_model(small_project / "models/model")
    np.testing.assert_array_equal(
        scored.output["probability"].to_numpy(),
        predict_proba(trained, scored.features),
    )


# --- the in-memory API ------------------------------------------------------------


def test_score_gives_one_row_per_lead_in_order_with_the_index(
    scorer: Scorer, leads: pd.DataFrame, activities_path: Path
) -> None:
    inputs = leads.set_axis(pd.Index(range(1000, 1000 + len(leads)), name="lead"))
    before = inputs.copy()
    scores = scorer.score(inputs, pd.read_parquet(activities_path))
    pd.testing.assert_frame_equal(inputs, before)  # the input is not touched
    assert scores.index.equals(inputs.index)
    assert scores[ID_COLUMN].tolist() == inputs[ID_COLUMN].tolist()
    assert list(scores.columns) == [*scorer.output_columns(), "reject_reason"]
    assert scores["probability"].dtype == "float64"
    assert scores["probability"].between(0, 1, inclusive="neither").all()
    expected = np.clip(np.rint(100 * scores["probability"]), 1, 99)
    assert (scores["score"] == expected).all()
    cuts = scorer.thresholds
    band = np.select(
        [scores["probability"] >= cuts[b] for b in "ABC"], list("ABC"), default="D"
    )
    assert (scores["band"] == band).all()
    assert set(scores["band"]) == set("ABCD")
    assert (scores["model_version"] == scorer.model_version).all()


def test_bad_rows_are_rejected_with_their_reason(
    scorer: Scorer, leads: pd.DataFrame
) -> None:
    inputs = leads.head(10).astype(object)
    inputs.loc[0, ID_COLUMN] = None
    inputs.loc[1, "created_at"] = "31/01/2024"
    inputs.loc[2, "employees"] = -3
    inputs.loc[3, "annual_revenue"] = "lots"
    inputs.loc[4, "minutes_to_first_response"] = np.inf
    inputs.loc[6, ID_COLUMN] = repeated = str(inputs.loc[5, ID_COLUMN])
    inputs.loc[7, "meddic_pain_severity"] = True
    scores = scorer.score(inputs, explain_reasons=False)
    reasons = scores["reject_reason"]
    assert reasons[0] == "deal_id is missing"
    assert reasons[1] == "created_at is not an ISO 8601 date: '31/01/2024'"
    assert reasons[2] == "employees is negative (-3.0)"
    assert reasons[3] == "annual_revenue is not a finite number: 'lots'"
    assert reasons[4] == "minutes_to_first_response is not a finite number: 'inf'"
    assert reasons[6] == f"duplicate deal_id '{repeated}' (first seen at row 5)"
    assert reasons[7] == "meddic_pain_severity is not a finite number: 'True'"
    assert reasons[[5, 8, 9]].isna().all()
    assert scores.loc[reasons.notna(), "probability"].isna().all()
    assert scores.loc[reasons.isna(), "probability"].notna().all()


def test_a_column_of_nothing_but_bad_values_rejects_rows_not_the_frame(
    scorer: Scorer, leads: pd.DataFrame
) -> None:
    inputs = leads.head(4).assign(created_at="yesterday", employees="many")
    scores = scorer.score(inputs, explain_reasons=False)
    assert scores["reject_reason"].str.startswith("created_at is not").all()
    inputs = leads.head(4).assign(employees="many")
    scores = scorer.score(inputs, explain_reasons=False)
    assert scores["reject_reason"].str.startswith("employees is not a finite").all()


def test_unseen_categories_are_scored_and_counted(
    scorer: Scorer, leads: pd.DataFrame
) -> None:
    inputs = leads.head(30).copy()
    inputs.loc[:9, "industry"] = "space mining"
    inputs.loc[:4, "lead_source"] = "carrier pigeon"
    scored = scorer.score_chunk(inputs, explain_reasons=True)
    assert len(scored.rejects) == 0 and len(scored.output) == 30
    assert scored.unseen["industry"] == 10
    assert scored.unseen["lead_source"] == 5
    assert scored.unseen["region"] == 0
    known = scorer.score_chunk(leads.head(30), explain_reasons=False).output
    assert not np.allclose(scored.output["probability"], known["probability"])


def test_missing_columns_are_named(scorer: Scorer, leads: pd.DataFrame) -> None:
    with pytest.raises(
        ScorerError, match=r"missing column\(s\) meddic_champion, region;"
    ):
        scorer.score(leads.drop(columns=["meddic_champion", "region"]))


def test_a_repeated_column_is_refused(scorer: Scorer, leads: pd.DataFrame) -> None:
    twice = pd.concat([leads.head(3), leads.head(3)[["industry"]]], axis=1)
    with pytest.raises(ScorerError, match="column.s. industry appear twice"):
        scorer.score(twice)


def test_an_empty_frame_gives_an_empty_output(
    scorer: Scorer, leads: pd.DataFrame
) -> None:
    scores = scorer.score(leads.iloc[:0])
    assert len(scores) == 0
    assert list(scores.columns) == [*scorer.output_columns(), "reject_reason"]


# --- malformed frames never crash the scorer ---------------------------------------

JUNK = st.one_of(
    st.none(),
    st.sampled_from([np.nan, np.inf, -np.inf, -1.0, 0.0, 1e308, -0.0]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(["", "   ", "x" * 50_000, "unknown", "yes", "no", "none"]),
    st.sampled_from(["2024-02-30", "2024-01-31T09:30:00+05:00", "2024-06-01", "1e3"]),
    st.datetimes(),
    st.dates(),
    st.lists(st.integers(), max_size=2),
)


@st.composite
def malformed_frames(draw: st.DrawFn, pool: pd.DataFrame) -> pd.DataFrame:
    rows = draw(st.lists(st.integers(0, len(pool) - 1), max_size=6))
    frame = pool.iloc[rows].reset_index(drop=True)
    columns = list(input_columns())
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
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_malformed_frames_are_scored_or_rejected_row_by_row(
    scorer: Scorer, leads: pd.DataFrame, data: st.DataObject
) -> None:
    frame = data.draw(malformed_frames(leads.head(12)))
    explain_reasons = data.draw(st.booleans())
    missing = [c for c in input_columns() if c not in frame.columns]
    try:
        scores = scorer.score(frame, explain_reasons=explain_reasons)
        chunk = scorer.score_chunk(frame, explain_reasons=explain_reasons)
    except (ScorerError, ContractError) as error:
        assert missing, f"refused a frame with every column: {error}"
        assert all(c in str(error) for c in missing)
        return
    assert not missing
    assert len(scores) == len(frame) and scores.index.equals(frame.index)
    scored = scores["reject_reason"].isna()
    ids = frame.loc[scored, ID_COLUMN].astype("string")
    assert (scores.loc[scored, ID_COLUMN] == ids).all()
    assert scores.loc[scored, "probability"].between(0, 1).all()
    assert scores.loc[~scored, "probability"].isna().all()
    assert (scores.loc[~scored, "reject_reason"].str.len() > 0).all()
    assert len(chunk.output) + len(chunk.rejects) == len(frame)
    assert sorted(chunk.rejects["row"]) == np.flatnonzero(~scored).tolist()
