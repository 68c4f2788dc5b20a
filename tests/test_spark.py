"""Scoring on Spark: the scorer run batch by batch on executors equals the local job.

Each source's finished project (the ``project`` fixture: the synthetic CRM, X
Education, Maven) is scored on Spark in local mode (``local[2]``) from dirty CSV and
Parquet input spread over partitions and Arrow batches, and every output column is
compared with the local scorer's, reasons included. The Spark tests are marked
``spark``: ``make test`` leaves them out, ``make test-spark`` installs the extra and
runs them. They skip, saying why, when pyspark or Java is missing; the checks of
paths and arguments need no Spark and run everywhere.
"""

from __future__ import annotations

import doctest
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from projects import Project, project_environment
from typer.testing import CliRunner

from lead_ml import spark as lead_spark
from lead_ml.batch import BatchSummary
from lead_ml.cli import app
from lead_ml.schema import LeadContract
from lead_ml.scorer import (
    CACHE_ENV,
    JobCounts,
    Scorer,
    as_exported,
    load_scorer,
    with_absent_columns,
)
from lead_ml.spark import SparkJob, check_paths
from lead_ml.tables import read_table
from lead_ml.vocab import ScorerError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

N_LEADS = 800
#: Leads per Arrow batch: small, so that a run crosses several batches.
CHUNK_ROWS = 200
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
def spark() -> Iterator[SparkSession]:
    """A local Spark with two cores whose Python workers run this interpreter."""
    session = lead_spark.start_session("local[2]", CHUNK_ROWS)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


# --- dirty leads, from each source's own columns ---------------------------------


def columns_of(contract: LeadContract, *kinds: str) -> list[str]:
    """The contract's input columns of these kinds (the id left out)."""
    return [
        c for c, k in contract.kinds.items() if k in kinds and c != contract.id_column
    ]


def bounded(contract: LeadContract) -> tuple[str, float]:
    """A number column with a lower bound, and that bound."""
    for column, (low, _) in contract.bounds.items():
        if low is not None:
            return column, low
    raise AssertionError("every source of the tests bounds a number from below")


def export_leads(project: Project, scorer: Scorer) -> pd.DataFrame:
    """The first leads as the export holds them: the deals file's own rows (text,
    placeholders and all) when it holds every column a lead needs, as X Education's
    Leads.csv does; else the validated deals as lead rows (account columns joined)."""
    path = project.params.source.tables.deals.path
    raw = read_table(path, "deals")
    if not scorer.contract.missing_columns(raw.columns):
        return raw.head(N_LEADS).reset_index(drop=True)
    return project.leads().head(N_LEADS).reset_index(drop=True)


def dirty_typed_leads(leads: pd.DataFrame, contract: LeadContract) -> pd.DataFrame:
    """Typed lead rows (Parquet) with the problems a batch job meets, spread over
    batches: a missing id, values out of bounds, an infinite number, a missing
    required date, bad yes/no answers, placeholders, an unseen category and ids
    repeated in other batches (of a valid row, of an invalid one, by an invalid one).
    """
    leads = leads.copy()
    id_column = contract.id_column
    ids = leads[id_column].copy()
    column, low = bounded(contract)
    leads[column] = leads[column].astype("float64")
    leads.loc[3, id_column] = None
    leads.loc[7, column] = low - 5
    numbers = columns_of(contract, "number")
    leads[numbers[-1]] = leads[numbers[-1]].astype("float64")
    leads.loc[8, numbers[-1]] = np.inf
    for required in contract.required:
        leads.loc[9, required] = None
    for row, first in {700: 5, 500: 7, 11: 10, 640: 600}.items():
        leads.loc[row, id_column] = ids[first]
    leads.loc[11, column] = low - 1  # a repeat that is invalid itself
    categories = columns_of(contract, "category")
    leads[categories] = leads[categories].astype("string")
    leads.loc[20, categories[0]] = "space mining"  # unseen: scored, not rejected
    for placeholder in contract.missing_values:
        leads.loc[21, id_column] = placeholder
        leads.loc[22, categories[-1]] = f" {placeholder} "
    for answer in columns_of(contract, "evidence", "bool"):
        leads.loc[12, answer] = "maybe"
        leads.loc[13, answer] = " YES "
    return leads


def dirty_text_leads(leads: pd.DataFrame, contract: LeadContract) -> pd.DataFrame:
    """Lead rows as text (a CSV export) with values that do or do not read."""
    leads = leads.astype("string")
    id_column = contract.id_column
    number = columns_of(contract, "number")[0]
    for row, value in {
        10: "abc",
        14: "NaN",
        15: "1d",
        16: "x" * 80,
        18: " 12 ",
    }.items():
        leads.loc[row, number] = value
    for date in columns_of(contract, "date"):
        leads.loc[19, date] = "not a date"
        leads.loc[24, date] = "2025-06-01T10:00:00+02:00"
        leads.loc[25, date] = "2024-1-5"
    for answer in columns_of(contract, "evidence", "bool"):
        leads.loc[26, answer] = "maybe"
        leads.loc[27, answer] = " Yes "
    category = columns_of(contract, "category")[0]
    leads.loc[28, category] = 'say "hi", then go'
    for placeholder in contract.missing_values:
        leads.loc[29, category] = f" {placeholder}"
    leads.loc[17, id_column] = "  "
    ids = leads[id_column].copy()
    leads.loc[30, id_column] = f" {ids.iloc[30]} "
    leads.loc[650, id_column] = ids.iloc[30]  # the padded id, trimmed
    leads.loc[700, id_column] = ids.iloc[20]
    return leads


# --- comparing ---------------------------------------------------------------------


def in_id_order(scores: pd.DataFrame, id_column: str) -> pd.DataFrame:
    """Rows sorted by id, then reason (a repeated id is scored once at most)."""
    keys = scores[[id_column, "reject_reason"]].astype("string").fillna("")
    order = keys.sort_values([id_column, "reject_reason"], kind="stable").index
    return scores.loc[order].reset_index(drop=True)


def assert_same_scores(
    on_spark: pd.DataFrame, local: pd.DataFrame, scorer: Scorer
) -> None:
    """Same rows, columns and values (numbers to 1e-9) after sorting by id."""
    assert list(on_spark.columns) == list(local.columns)
    spark_rows = in_id_order(on_spark, scorer.id_column)
    local_rows = in_id_order(local, scorer.id_column)
    assert len(spark_rows) == len(local_rows)
    text = [c for c, d in scorer.output_dtypes().items() if d == "string"]
    for column in local.columns:
        expected, found = local_rows[column], spark_rows[column]
        if column in (*text, "reject_reason"):
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
def test_parquet_leads_score_as_the_local_scorer_across_partitions(
    spark: SparkSession, project: Project, tmp_path: Path
) -> None:
    scorer = load_scorer(project.path("models/scorer"))
    dirty = dirty_typed_leads(export_leads(project, scorer), scorer.contract)
    dirty.to_parquet(tmp_path / "leads.parquet", row_group_size=150)
    spark.conf.set("spark.sql.files.maxPartitionBytes", "16k")
    try:
        frame = lead_spark.read_leads(spark, str(tmp_path / "leads.parquet"))
        assert frame.rdd.getNumPartitions() > 1  # row numbers cross partitions
        scored = lead_spark.score_dataframe(
            spark, frame, str(project.path("models/scorer"))
        )
        on_spark = collected(scored, tmp_path / "scores.parquet")
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    local = scorer.score(dirty)
    assert_same_scores(on_spark, local, scorer)
    reasons = on_spark["reject_reason"].dropna()
    # a missing id, two out of bounds (one a repeat), an infinite number, ...
    assert len(reasons) >= 4
    # ... and the two repeats of valid rows; the repeat of an invalid row is scored
    assert reasons.str.startswith(f"duplicate {scorer.id_column} ").sum() == 2
    assert on_spark[scorer.id_column].isin([dirty.loc[500, scorer.id_column]]).any()


@spark_test
@pytest.mark.parametrize("limit", [8, 7], ids=["broadcast", "shuffled"])
def test_repeated_ids_are_found_alike_from_their_rows_or_by_a_shuffle(
    spark: SparkSession,
    x_education_project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    limit: int,
) -> None:
    """Eight rows of the X Education export hold a repeated id (of a valid row, of
    an invalid one, by an invalid one). At most MAX_REPEATED_ROWS such rows are
    checked from those rows alone (8: exactly at the limit), more by a shuffle of
    every row (7): the same repeats either way, in the local scorer's words."""
    model = x_education_project.path("models/scorer")
    scorer = load_scorer(model)
    dirty = dirty_typed_leads(
        export_leads(x_education_project, scorer), scorer.contract
    )
    path = tmp_path / "leads.parquet"
    dirty.to_parquet(path, row_group_size=150)
    monkeypatch.setattr(lead_spark, "MAX_REPEATED_ROWS", limit)
    spark.conf.set("spark.sql.files.maxPartitionBytes", "16k")
    try:
        leads, _ = lead_spark.number_rows(lead_spark.read_leads(spark, str(path)))
        assert leads.rdd.getNumPartitions() > 1  # repeats in other partitions
        repeats, few = lead_spark.repeated_rows(leads, scorer.contract)
        assert repeats is not None
        found = sorted((int(row[0]), str(row[1])) for row in repeats.collect())
        scored = lead_spark.score_dataframe(spark, leads, str(model))
        on_spark = collected(scored, tmp_path / "scores.parquet")
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    assert few is (limit == 8)
    local = scorer.score(dirty)
    reasons = local["reject_reason"].astype("string")
    duplicates = reasons[reasons.str.startswith("duplicate ").fillna(False)]
    assert found == sorted(zip(duplicates.index, duplicates, strict=True))
    assert [row for row, _ in found] == [640, 700]  # 500 repeats an invalid row
    assert_same_scores(on_spark, local, scorer)


@spark_test
def test_score_command_on_spark_equals_the_local_job(
    spark: SparkSession, project: Project, tmp_path: Path
) -> None:
    """Issue 12: `lead-ml score --engine spark` scores the export's leads with
    columns equal to the local job's, whatever the source."""
    model = project.path("models/scorer")
    scorer = load_scorer(model)
    leads = dirty_text_leads(export_leads(project, scorer), scorer.contract)
    leads.to_csv(tmp_path / "leads.csv", index=False)
    output, summary = tmp_path / "scores.parquet", tmp_path / "summary.json"
    common = ["score", "--model", str(model), "--input", str(tmp_path / "leads.csv")]
    on_spark_args = [*common, "--engine", "spark", "--master", "local[2]"]
    on_spark_args += ["--output", str(output), "--summary", str(summary)]
    result = runner.invoke(app, [*on_spark_args, "--chunk-rows", str(CHUNK_ROWS)])
    assert result.exit_code == 0, result.output
    assert f"{N_LEADS:,} = " in result.output  # rows in = scored + rejected
    local_out = tmp_path / "local.parquet"
    local_run = runner.invoke(app, [*common, "--output", str(local_out)])
    assert local_run.exit_code == 0, local_run.output

    on_spark = pd.read_parquet(output)
    local = pd.read_parquet(local_out)
    rejects = read_like_the_batch_job(tmp_path / "local.rejects.csv")
    id_column = scorer.id_column
    assert list(on_spark.columns) == [*local.columns, "reject_reason"]
    scored = on_spark[on_spark["reject_reason"].isna()].drop(columns="reject_reason")
    assert_same_scores(
        scored.assign(reject_reason=None), local.assign(reject_reason=None), scorer
    )
    rejected = on_spark[on_spark["reject_reason"].notna()]
    pairs = sorted(
        zip(rejected[id_column].fillna(""), rejected["reject_reason"], strict=True)
    )
    local_pairs = sorted(
        zip(rejects[id_column].fillna(""), rejects["reason"], strict=True)
    )
    assert pairs == local_pairs
    # placeholders are unknown, not rejected; a repeat is known by its trimmed id
    assert not rejected["reject_reason"].str.contains("Select|unknown").any()
    assert f"duplicate {id_column} " in " ".join(rejected["reject_reason"])

    counts = json.loads(summary.read_text())
    assert counts["rows_in"] == N_LEADS == counts["scored"] + counts["rejected"]
    assert counts["rejected"] == len(rejected) == len(rejects) >= 5
    again = runner.invoke(app, [*on_spark_args, "--no-explain"])
    assert again.exit_code == 0, again.output  # a Spark output may be replaced
    plain = scorer.score(
        read_like_the_batch_job(tmp_path / "leads.csv"), explain_reasons=False
    )
    assert_same_scores(pd.read_parquet(output), plain, scorer)


def category_source(scorer: Scorer) -> tuple[str, str]:
    """A categorical feature read straight from a source column: (feature, column)."""
    categories = scorer.model.info.categories
    for spec in scorer.registry.specs:
        if spec.column and spec.name in categories:
            return spec.name, spec.column
    raise AssertionError("every source of the tests has a categorical feature")


def summary_lines(output: str) -> list[str]:
    """The drift and unseen-category lines a `lead-ml score` run printed."""
    starts = ("drift vs training window", "unseen category values")
    return [line for line in output.splitlines() if line.startswith(starts)]


@spark_test
def test_drift_and_unseen_counts_on_spark_equal_the_local_jobs(
    spark: SparkSession, x_education_project: Project, tmp_path: Path
) -> None:
    """Issue 17: on the whole X Education export, with a category value unseen in
    training here and there, `lead-ml score --engine spark` reports the drift (PSI
    per feature and of the score) and unseen counts of the local job, counted per
    batch on the executors and merged on the driver, printed and written alike."""
    model = x_education_project.path("models/scorer")
    scorer = load_scorer(model)
    leads = read_table(x_education_project.params.source.tables.deals.path, "deals")
    original = leads.copy()
    feature, column = category_source(scorer)
    unseen_rows = leads.index[::150]  # spread over every partition and batch
    leads[column] = leads[column].astype("string")
    leads.loc[unseen_rows, column] = "space mining"
    leads.to_csv(tmp_path / "leads.csv", index=False)
    common = ["score", "--model", str(model), "--input", str(tmp_path / "leads.csv")]
    said, summary = {}, {}
    for engine in ("local", "spark"):
        out, path = tmp_path / f"{engine}.parquet", tmp_path / f"{engine}.json"
        argv = [*common, "--engine", engine, "--output", str(out)]
        argv += ["--summary", str(path), "--chunk-rows", str(CHUNK_ROWS)]
        result = runner.invoke(app, argv, terminal_width=300)
        assert result.exit_code == 0, result.output
        said[engine], summary[engine] = result.output, json.loads(path.read_text())
    local, on_spark = summary["local"], summary["spark"]
    # The export holds values unseen in training already (levels of later deals).
    before = scorer.score_chunk(as_exported(scorer, original), None, False).unseen
    leads_read = read_like_the_batch_job(tmp_path / "leads.csv")
    expected = scorer.score_chunk(as_exported(scorer, leads_read), None, False).unseen
    assert expected[feature] > before[feature] + len(unseen_rows) / 2
    assert local["unseen_categories"] == expected
    assert on_spark["unseen_categories"] == local["unseen_categories"]
    # Every feature of the reference and the score, with the same PSI: a batch or
    # a partition counted twice or lost would move them (and fail the job).
    assert set(local["drift_psi"]) == set(scorer.spec["drift_reference"])
    assert on_spark["drift_psi"] == local["drift_psi"]
    assert list(on_spark["drift_psi"]) == list(local["drift_psi"])
    assert on_spark["drift_checked"] and local["drift_checked"]
    assert on_spark["drift_warnings"] == local["drift_warnings"]
    assert on_spark["scored"] == local["scored"] >= 9000
    lines = summary_lines(said["local"])
    assert len(lines) == 2 and feature in lines[1]
    assert summary_lines(said["spark"]) == lines


def test_batches_score_as_the_local_scorer_and_their_counts_merge_to_the_whole(
    synthetic_project: Project,
) -> None:
    """A Spark task's work on its Arrow batches (lead_ml.spark.BatchScorer, run here
    without Spark): each batch's output equals the local scorer's, a reject keeps
    its id as given and its reason, and the per-batch counts (``_batch_counts``, on
    each batch's first row) merge to the counts of the whole frame; merged counts
    missing a batch, or holding one twice, fail the job's check."""
    scorer = load_scorer(synthetic_project.path("models/scorer"))
    leads = synthetic_project.leads().head(N_LEADS).reset_index(drop=True)
    column, low = bounded(scorer.contract)
    leads[column] = leads[column].astype("float64")
    leads.loc[[7, 400], column] = low - 5  # a reject in each batch
    types = lead_spark.output_types(scorer, explain=True)
    batches = lead_spark.BatchScorer(
        "not shipped",
        scorer.model_version,
        lead_spark.LeadReader(scorer.contract),
        types,
    )
    schema = batches.schema()
    parts = []
    for part in (slice(0, 300), slice(300, None)):
        frame = leads.iloc[part].assign(_row=np.arange(len(leads))[part])
        batch = pa.RecordBatch.from_pandas(frame, preserve_index=False)
        parts.append(batches.score(scorer, None, batch, schema).to_pandas())
    texts = [part[lead_spark.COUNTS] for part in parts]
    assert all(text.iloc[1:].isna().all() for text in texts)
    on_batches = pd.concat(parts, ignore_index=True).drop(columns=lead_spark.COUNTS)
    assert_same_scores(on_batches, scorer.score(leads), scorer)
    assert on_batches["reject_reason"].notna().sum() == 2
    merged = JobCounts.of(scorer)
    for text in texts:
        merged.add_text(text.iloc[0])
    whole = JobCounts.of(scorer)
    scored = scorer.score_chunk(as_exported(scorer, leads))
    whole.add(scorer, scored, len(leads))
    assert merged.monitor.psi() == whole.monitor.psi()
    assert merged.unseen == whole.unseen and merged.scored == whole.scored
    assert merged.rows_in == len(leads) and merged.parts == 2
    written = BatchSummary(rows_in=len(leads), scored=whole.scored)
    lead_spark.check_counts(merged, written)
    for wrong in (texts[:1], [*texts, texts[1]]):
        partial = JobCounts.of(scorer)
        for text in wrong:
            partial.add_text(text.iloc[0])
        with pytest.raises(RuntimeError, match="counted twice"):
            lead_spark.check_counts(partial, written)


@spark_test
def test_activities_reach_every_batch_through_the_pyfunc_param(
    spark: SparkSession, synthetic_project: Project, tmp_path: Path
) -> None:
    model = synthetic_project.path("models/scorer")
    scorer = load_scorer(model)
    leads = synthetic_project.leads().head(N_LEADS)
    leads.to_parquet(tmp_path / "leads.parquet")
    activities = synthetic_project.activities()
    assert activities is not None
    activities.to_parquet(tmp_path / "activities.parquet")
    frame = lead_spark.read_leads(spark, str(tmp_path / "leads.parquet"))
    result = lead_spark.score_dataframe(
        spark, frame, str(model), activities_path=str(tmp_path / "activities.parquet")
    )
    on_spark = collected(result, tmp_path / "scores.parquet")
    local = scorer.score(leads, activities)
    assert_same_scores(on_spark, local, scorer)
    without = scorer.score(leads)
    assert not np.allclose(without["contrib_engagement"], local["contrib_engagement"])


@spark_test
def test_a_registered_version_scores_on_spark_as_its_folder(
    spark: SparkSession,
    synthetic_project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 15: Spark takes a model reference (models:/NAME/VERSION) as the local
    job does: the driver downloads the version into the model cache, checks it,
    and Spark runs that folder."""
    scorer = load_scorer(synthetic_project.path("models/scorer"))
    leads = synthetic_project.leads().head(N_LEADS)
    leads.to_parquet(tmp_path / "leads.parquet")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    with project_environment(synthetic_project.root):  # its MLflow store
        frame = lead_spark.read_leads(spark, str(tmp_path / "leads.parquet"))
        result = lead_spark.score_dataframe(
            spark, frame, "models:/lead-ml-scorer/1", explain=False
        )
        on_spark = collected(result, tmp_path / "scores.parquet")
    assert_same_scores(on_spark, scorer.score(leads, explain_reasons=False), scorer)
    (cached,) = (tmp_path / "cache").iterdir()
    assert cached.name.startswith("lead-ml-scorer-v1-")


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
def test_csv_lines_that_do_not_match_the_header_are_rejected(
    spark: SparkSession, tmp_path: Path
) -> None:
    path = tmp_path / "leads.csv"
    path.write_text('deal id,employees\na,5\nb\nc,6,7\n"d,e",8\n"say ""hi""",9\n')
    leads, _ = lead_spark.number_rows(lead_spark.read_leads(spark, str(path)))
    contract = LeadContract("deal id", {"deal id": "category", "employees": "number"})
    checked = collected(lead_spark.check_leads(leads, contract), tmp_path / "c")
    by_row = checked.set_index("_row")
    malformed = f"{lead_spark.MALFORMED_LINE}: "
    assert by_row.loc[1, "_reject"] == malformed + "'b'"
    assert by_row.loc[2, "_reject"] == malformed + "'c,6,7'"
    assert by_row.loc[[0, 3, 4], "_reject"].isna().all()
    assert by_row.loc[3, "_key"] == "d,e" and by_row.loc[4, "_key"] == 'say "hi"'
    read = collected(leads, tmp_path / "read").set_index("_row")
    assert read.loc[4, "employees"] == "9"  # text, read by the contract's kind


# --- before Spark starts (no Spark needed) --------------------------------------------


def test_the_check_uses_the_local_scorers_words() -> None:
    contract = LeadContract(
        "id",
        {"id": "category", "n": "number", "on": "date", "ok": "evidence"},
        required=("on",),
        missing_values=("Select",),
        bounds={"n": (0.0, None)},
    )
    leads = pd.DataFrame(
        {
            "id": [" a ", "Select", "c", "d", "e", "f"],
            "n": ["1", "2", "x", "-1", "3", "4"],
            "on": ["2024-01-31", "2024-01-31", "2024-01-31", None, "2024-1-5", "2024"],
            "ok": ["yes", "no", "yes", "no", "maybe", "Select"],
            "_row": range(6),
        }
    )
    checked = lead_spark.check_frame(contract, leads)
    _, local = contract.read(leads[contract.columns])
    found = checked["_reject"].astype(object).where(checked["_reject"].notna(), None)
    assert found.tolist() == local.tolist()
    assert checked["_key"].tolist() == ["a", pd.NA, "c", "d", "e", "f"]
    assert checked["_shown_key"].iloc[0] == "'a'"
    assert checked["_row"].tolist() == list(range(6))


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
        ({"activities": "activities.json"}, "must be one .parquet or .csv file"),
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


def test_activities_the_scorer_cannot_use_are_refused(
    project: Project, tmp_path: Path
) -> None:
    scorer = load_scorer(project.path("models/scorer"))
    path = tmp_path / "activities.csv"
    path.write_text("lead,when\nD1,2024-01-31\n")
    expected = "missing activity column" if scorer.counts_activities else "no activit"
    with pytest.raises(ScorerError, match=expected):
        lead_spark.check_activities(scorer, str(path))


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


@pytest.mark.spark
def test_missing_java_is_one_line_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synthetic_project: Project
) -> None:
    """Needs pyspark (the Java check comes after pyspark's) and a scorer folder
    (the check comes after the folder's), so it runs with the Spark tests."""
    monkeypatch.setattr(lead_spark.shutil, "which", lambda name: None)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    model = synthetic_project.path("models/scorer")
    argv = ["score", "--engine", "spark", "--model", str(model)]
    argv += ["--output", str(tmp_path / "s.parquet")]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    assert "Java (17) is not found" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--engine", "dask"], "is not one of"),
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


@spark_test
def test_extra_tables_join_on_spark_as_in_the_local_job(
    spark: SparkSession, maven_project: Project, tmp_path: Path
) -> None:
    """Issue 14: `--table NAME=PATH` joins a many-to-one table on Spark as the
    local job joins it; a lead without a match is scored, its columns unknown, and
    both count it."""
    model = maven_project.path("models/scorer")
    scorer = load_scorer(model)
    spec = scorer.joins["accounts"]
    table = maven_project.params.source.tables.accounts
    assert table is not None
    accounts = Path(table.path)
    from_table = set(read_table(accounts, "accounts").columns) - {spec["id"]}
    leads = maven_project.leads().head(N_LEADS)
    leads = leads.drop(columns=[c for c in leads.columns if c in from_table])
    # The leads' key, as the deals export holds it (lead rows keep features only).
    deals = read_table(maven_project.params.source.tables.deals.path, "deals")
    key_of = deals.set_index(scorer.id_column)[spec["key"]]
    ids = leads[scorer.id_column].astype(str)
    leads[spec["key"]] = key_of.reindex(ids).astype("string").to_numpy()
    leads.loc[5, spec["key"]] = "No Such Account"
    leads.loc[6, spec["key"]] = None
    leads.to_csv(tmp_path / "leads.csv", index=False)
    common = ["score", "--model", str(model), "--input", str(tmp_path / "leads.csv")]
    common += ["--table", f"accounts={accounts}", "--no-explain"]
    said = {}
    for engine in ("local", "spark"):
        out = tmp_path / f"{engine}.parquet"
        argv = [*common, "--engine", engine, "--output", str(out)]
        argv += ["--summary", str(tmp_path / f"{engine}.json")]
        result = runner.invoke(app, argv, terminal_width=300)
        assert result.exit_code == 0, result.output
        said[engine] = result.output
    local, on_spark = (
        json.loads((tmp_path / f"{e}.json").read_text()) for e in ("local", "spark")
    )
    expected = int(leads[spec["key"]].isna().sum() + 1)  # the unknown name too
    assert local["leads_without_match"] == {"accounts": expected}
    assert on_spark["leads_without_match"] == local["leads_without_match"]
    line = f"--table accounts: {expected:,} leads have no row in it"
    assert line in said["local"] and line in said["spark"]
    scored = pd.read_parquet(tmp_path / "spark.parquet")
    scored = scored[scored["reject_reason"].isna()].drop(columns="reject_reason")
    assert_same_scores(
        scored.assign(reject_reason=None),
        pd.read_parquet(tmp_path / "local.parquet").assign(reject_reason=None),
        scorer,
    )
    # The accounts' columns moved the scores: the join is not a no-op.
    joined = pd.read_parquet(tmp_path / "local.parquet").set_index(scorer.id_column)
    unknown = with_absent_columns(scorer.contract, leads)  # accounts' columns empty
    plain = scorer.score(unknown, explain_reasons=False).set_index(scorer.id_column)
    moved = joined["probability"] - plain.loc[joined.index, "probability"]
    assert (moved.abs() > 1e-6).mean() > 0.5


@spark_test
def test_a_semicolon_crlf_decimal_comma_export_without_ids_scores_as_locally(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Issue 14 on Spark: a leads file in the training's own dialect (';' detected,
    CRLF, decimal commas, a UTF-8 byte-order mark, the row number as the id) is
    read as the local job reads it, with the same ids and scores."""
    import test_export_shapes as shapes

    if not shapes.LEADS.exists():
        pytest.skip(f"{shapes.LEADS} is absent: this test needs ../shared/data")
    export = tmp_path / "leads_export.csv"
    shapes._european_leads(export)
    export.write_bytes(b"\xef\xbb\xbf" + export.read_bytes())
    params = shapes._base("x_education")
    params["source"]["tables"]["deals"] = {
        "path": str(export),
        "id": {"row_number": True, "name": "lead_row"},
        "order": "lead_row",
        "decimal": ",",
        "encoding": "utf-8-sig",
    }
    shapes._run(tmp_path, params, export)
    model = tmp_path / "models/scorer"
    scorer = load_scorer(model)
    assert scorer.dialect().decimal == "," and scorer.id_column == "lead_row"
    common = ["score", "--model", str(model), "--input", str(export), "--no-explain"]
    for engine in ("local", "spark"):
        out = tmp_path / f"{engine}.parquet"
        result = runner.invoke(
            app, [*common, "--engine", engine, "--output", str(out)], terminal_width=300
        )
        assert result.exit_code == 0, result.output
    local = pd.read_parquet(tmp_path / "local.parquet")
    on_spark = pd.read_parquet(tmp_path / "spark.parquet")
    rejected = on_spark["reject_reason"].notna()
    # Numbers read with a point would be rejected rows here (not numbers).
    assert len(local) > 0.95 * len(on_spark)
    assert rejected.sum() == len(pd.read_csv(tmp_path / "local.rejects.csv"))
    assert_same_scores(
        on_spark[~rejected].assign(reject_reason=None),
        local.assign(reject_reason=None),
        scorer,
    )


@spark_test
def test_a_workbook_and_an_unknown_java_encoding_are_refused_in_one_line(
    spark: SparkSession, tmp_path: Path
) -> None:
    workbook = tmp_path / "leads.xlsx"
    workbook.write_bytes(b"PK")
    with pytest.raises(ScorerError, match="save the sheet as CSV"):
        lead_spark.read_leads(spark, str(workbook))
    assert lead_spark.java_encoding(spark, "latin-1", "x.csv") == "ISO-8859-1"
    assert lead_spark.java_encoding(spark, "utf-8-sig", "x.csv") == "UTF-8"
    with pytest.raises(ScorerError, match="x.csv: encoding 'mac-farsi'"):
        lead_spark.java_encoding(spark, "mac-farsi", "x.csv")
