"""Scoring on Spark: the exported scorer under spark_udf equals the local scorer.

The Spark tests run Spark in local mode (``local[2]``) and are marked ``spark``:
``make test`` leaves them out, ``make test-spark`` installs the extra and runs them.
They skip, saying why, when pyspark or Java is missing. The checks of paths and
arguments need no Spark and run everywhere.
"""

from __future__ import annotations

import doctest
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lead_ml import spark as lead_spark
from lead_ml.cli import app
from lead_ml.scorer import ScorerError, load_scorer
from lead_ml.spark import SparkJob, check_paths

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

N_LEADS = 1200
#: Leads per Arrow batch: small, so that a run crosses several batches.
CHUNK_ROWS = 250
SPARK_PROBLEM = lead_spark.spark_problem()
runner = CliRunner()
T = TypeVar("T", bound=Callable[..., Any])


def spark_test(test: T) -> T:
    """Mark a test as a Spark test: deselected by `make test`, skipped without Spark."""
    marks = (
        pytest.mark.spark,
        pytest.mark.skipif(
            SPARK_PROBLEM is not None, reason=f"Spark tests skipped: {SPARK_PROBLEM}"
        ),
        # pyspark 4.3 warns that it does not fully support pandas 3: these tests
        # are what shows that the results agree all the same.
        pytest.mark.filterwarnings(
            "ignore:PySpark does not yet fully support pandas:FutureWarning"
        ),
    )
    for mark in marks:
        test = mark(test)
    return test


@pytest.fixture(scope="module")
def scorer_dir(small_project: Path) -> Path:
    """The scorer `lead-ml export` wrote for the small project (an MLflow pyfunc)."""
    return small_project / "models" / "scorer"


@pytest.fixture(scope="module")
def leads(small_leads: pd.DataFrame) -> pd.DataFrame:
    """The first lead rows of the small project, numbered from 0."""
    return small_leads.head(N_LEADS).reset_index(drop=True)


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    """A local Spark with two cores whose Python workers run this interpreter."""
    session = lead_spark.start_session("local[2]", CHUNK_ROWS)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def dirty_typed_leads(clean: pd.DataFrame) -> pd.DataFrame:
    """Typed lead rows with the problems a batch job meets, spread over batches."""
    leads = clean.copy()
    ids = leads["deal_id"].copy()
    leads.loc[3, "deal_id"] = None
    leads.loc[7, "annual_revenue"] = -5.0
    leads.loc[9, "created_at"] = pd.NaT
    for row, first in {1100: 5, 900: 7, 11: 10, 640: 600}.items():
        leads.loc[row, "deal_id"] = ids[first]
    leads.loc[11, "minutes_to_first_response"] = -1.0  # a repeat that is invalid
    leads.loc[20, "industry"] = "space mining"  # unseen: scored, not rejected
    return leads


def dirty_text_leads(clean: pd.DataFrame) -> pd.DataFrame:
    """Lead rows as text (a CSV export) with values that do not read."""
    leads = clean.astype("string")
    leads.loc[10, "annual_revenue"] = "abc"
    leads.loc[11, "created_at"] = "not a date"
    leads.loc[12, "employees"] = "12.5"
    leads.loc[13, "employees"] = None
    leads.loc[14, "annual_revenue"] = "NaN"
    leads.loc[15, "created_at"] = "2025-06-01T10:00:00+02:00"
    leads.loc[16, "minutes_to_first_response"] = "x" * 80
    leads.loc[17, "deal_id"] = "  "
    leads.loc[1000, "deal_id"] = leads["deal_id"].iloc[20]
    return leads


def in_id_order(scores: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by id, then reason (a repeated id is scored once at most)."""
    keys = scores[["deal_id", "reject_reason"]].astype("string").fillna("")
    order = keys.sort_values(["deal_id", "reject_reason"], kind="stable").index
    return scores.loc[order].reset_index(drop=True)


def assert_same_scores(on_spark: pd.DataFrame, local: pd.DataFrame) -> None:
    """Same rows, columns and values (numbers to 1e-9) after sorting by id."""
    assert list(on_spark.columns) == list(local.columns)
    spark_rows, local_rows = in_id_order(on_spark), in_id_order(local)
    assert len(spark_rows) == len(local_rows)
    for column in local.columns:
        expected, found = local_rows[column], spark_rows[column]
        if column in (*lead_spark.TEXT_COLUMNS, "reject_reason"):
            np.testing.assert_array_equal(
                found.astype("string").fillna("<empty>").to_numpy(),
                expected.astype("string").fillna("<empty>").to_numpy(),
                err_msg=column,
            )
        else:
            np.testing.assert_allclose(
                found.to_numpy(float),
                expected.to_numpy(float),
                rtol=0,
                atol=1e-9,
                err_msg=column,
            )


def collected(frame: DataFrame, folder: Path) -> pd.DataFrame:
    """A Spark DataFrame in pandas, through Parquet (part files in partition order).

    Not toPandas: pyspark 4.3 calls pandas 3 with a deprecated keyword there.
    """
    frame.write.parquet(str(folder))
    return pd.read_parquet(folder)


def read_like_the_batch_job(path: Path) -> pd.DataFrame:
    """A CSV of leads read as `lead-ml score` reads it: every value as text."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


# --- on Spark -------------------------------------------------------------------------


@spark_test
@pytest.mark.parametrize("explain", [True, False])
def test_spark_udf_scores_equal_the_local_scorer(
    spark: SparkSession,
    scorer_dir: Path,
    leads: pd.DataFrame,
    tmp_path: Path,
    explain: bool,
) -> None:
    dirty = dirty_typed_leads(leads)
    dirty.to_parquet(tmp_path / "leads.parquet", row_group_size=200)
    spark.conf.set("spark.sql.files.maxPartitionBytes", "16k")
    try:
        frame = lead_spark.read_leads(spark, str(tmp_path / "leads.parquet"))
        assert frame.rdd.getNumPartitions() > 1  # row numbers cross partitions
        scored = lead_spark.score_dataframe(spark, frame, str(scorer_dir), explain)
        on_spark = collected(scored, tmp_path / "scores.parquet")
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    local = load_scorer(scorer_dir).score(dirty, explain_reasons=explain)
    assert_same_scores(on_spark, local)
    reasons = on_spark["reject_reason"].dropna()
    # no id, a negative, no date, a bad repeat, and two repeats of valid rows
    assert len(reasons) == 6
    assert reasons.str.startswith("duplicate deal_id").sum() == 2


@spark_test
def test_activities_reach_every_batch_through_the_pyfunc_param(
    spark: SparkSession,
    scorer_dir: Path,
    small_project: Path,
    leads: pd.DataFrame,
    tmp_path: Path,
) -> None:
    leads.to_parquet(tmp_path / "leads.parquet")
    activities = small_project / "data" / "validated" / "activities.parquet"
    frame = lead_spark.read_leads(spark, str(tmp_path / "leads.parquet"))
    result = lead_spark.score_dataframe(
        spark, frame, str(scorer_dir), activities_path=str(activities)
    )
    scored = collected(result, tmp_path / "scores.parquet")
    local = load_scorer(scorer_dir).score(leads, pd.read_parquet(activities))
    assert_same_scores(scored, local)
    without = load_scorer(scorer_dir).score(leads)
    assert not np.allclose(without["contrib_engagement"], local["contrib_engagement"])


@spark_test
def test_score_command_on_spark_keeps_every_csv_row(
    spark: SparkSession, scorer_dir: Path, leads: pd.DataFrame, tmp_path: Path
) -> None:
    dirty_text_leads(leads).to_csv(tmp_path / "leads.csv", index=False)
    output, summary = tmp_path / "scores.parquet", tmp_path / "summary.json"
    arguments = ["score", "--engine", "spark", "--master", "local[2]"]
    arguments += ["--model", str(scorer_dir), "--input", str(tmp_path / "leads.csv")]
    arguments += ["--output", str(output), "--summary", str(summary)]
    result = runner.invoke(app, [*arguments, "--chunk-rows", str(CHUNK_ROWS)])
    assert result.exit_code == 0, result.output
    assert f"{N_LEADS:,} = " in result.output  # rows in = scored + rejected
    on_spark = pd.read_parquet(output)
    local = load_scorer(scorer_dir).score(
        read_like_the_batch_job(tmp_path / "leads.csv")
    )
    assert_same_scores(on_spark, local)
    counts = json.loads(summary.read_text())
    assert counts["rows_in"] == N_LEADS == counts["scored"] + counts["rejected"]
    assert counts["rejected"] == on_spark["reject_reason"].notna().sum() == 6
    again = runner.invoke(app, [*arguments, "--no-explain"])
    assert again.exit_code == 0, again.output  # a Spark output may be replaced
    assert "contrib_fit" not in pd.read_parquet(output).columns


@spark_test
def test_rows_are_numbered_in_input_order_across_partitions(
    spark: SparkSession, tmp_path: Path
) -> None:
    frame = spark.range(1000, numPartitions=3).withColumnRenamed("id", "position")
    numbered, total = lead_spark.number_rows(frame.coalesce(1).union(frame))
    rows = collected(numbered, tmp_path / "rows.parquet")
    assert total == 2000
    assert rows["_row"].tolist() == list(range(2000))
    assert (rows["_row"] % 1000 == rows["position"]).all()


@spark_test
def test_values_a_long_signature_cannot_take_are_rejected_not_failed(
    spark: SparkSession, tmp_path: Path
) -> None:
    rows = [("a", "5"), ("b", None), ("c", "12.5"), ("d", "many")]
    text = spark.createDataFrame(rows, "deal_id string, employees string")
    frame, _ = lead_spark.number_rows(text)
    signature = {"deal_id": "string", "employees": "long"}
    checked = collected(lead_spark.check_leads(frame, signature), tmp_path / "c")
    reasons = checked.set_index("deal_id")["_reject"]
    assert pd.isna(reasons["a"]) and checked["employees"].iloc[0] == 5
    assert reasons["b"].startswith("employees is empty; this scorer's MLflow signature")
    assert reasons["c"].startswith("employees is not a whole number: 12.5")
    assert reasons["d"] == "employees is not a finite number: 'many'"


@spark_test
def test_csv_lines_that_do_not_match_the_header_are_rejected(
    spark: SparkSession, tmp_path: Path
) -> None:
    path = tmp_path / "leads.csv"
    path.write_text('deal_id,employees\na,5\nb\nc,6,7\n"d,e",8\n')
    leads, _ = lead_spark.number_rows(lead_spark.read_leads(spark, str(path)))
    signature = {"deal_id": "string", "employees": "double"}
    checked = collected(lead_spark.check_leads(leads, signature), tmp_path / "c")
    reasons = checked.set_index("_row")["_reject"]
    malformed = f"{lead_spark.MALFORMED_LINE}: "
    assert reasons[1] == malformed + "'b'" and reasons[2] == malformed + "'c,6,7'"
    assert reasons[[0, 3]].isna().all()
    assert checked.set_index("_row").loc[3, "deal_id"] == "d,e"


# --- before Spark starts (no Spark needed) --------------------------------------------


def job(tmp_path: Path, **changes: Any) -> SparkJob:
    """A Spark job reading and writing in tmp_path."""
    settings: dict[str, Any] = {
        "model": tmp_path / "scorer",
        "input": str(tmp_path / "leads.parquet"),
        "output": str(tmp_path / "scores.parquet"),
    }
    return SparkJob(**(settings | changes))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"output": "scores.csv"}, "writes a Parquet folder"),
        ({"activities": "activities.csv"}, "must be one Parquet file"),
    ],
)
def test_outputs_and_activities_spark_cannot_use_are_refused(
    tmp_path: Path, changes: dict[str, str], message: str
) -> None:
    with pytest.raises(ScorerError, match=message):
        check_paths(job(tmp_path, **changes))


def test_missing_activities_are_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "activities.parquet")
    with pytest.raises(FileNotFoundError, match="activities.parquet"):
        check_paths(job(tmp_path, activities=missing))


def test_only_a_previous_spark_output_is_replaced(tmp_path: Path) -> None:
    output = tmp_path / "scores.parquet"
    output.write_text("not a folder")
    with pytest.raises(ScorerError, match="is a file"):
        check_paths(job(tmp_path))
    output.unlink()
    output.mkdir()
    (output / "notes.txt").write_text("mine")
    with pytest.raises(ScorerError, match="no _SUCCESS"):
        check_paths(job(tmp_path))
    (output / "_SUCCESS").touch()
    check_paths(job(tmp_path))


def test_object_store_uris_survive_the_command_line() -> None:
    assert doctest.testmod(lead_spark).failed == 0
    assert lead_spark.spark_uri(Path("gs://crm/leads/")) == "gs://crm/leads"


def test_missing_java_is_one_line_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pyspark", reason="the Java check comes after pyspark's")
    monkeypatch.setattr(lead_spark.shutil, "which", lambda name: None)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    result = runner.invoke(
        app, ["score", "--engine", "spark", "--output", str(tmp_path / "s.parquet")]
    )
    assert result.exit_code == 2
    assert "Java (17) is not found" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--engine", "dask"], "expected local or spark"),
        (["--engine", "spark", "--rejects", "r.csv"], "stay in the output"),
    ],
)
def test_bad_engine_options_are_one_line_errors(
    options: list[str], message: str
) -> None:
    result = runner.invoke(app, ["score", *options])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
