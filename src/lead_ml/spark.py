"""Score leads on Spark with the exported scorer, unchanged, through ``spark_udf``.

The scorer folder that ``lead-ml export`` writes is run by
``mlflow.pyfunc.spark_udf`` (a struct of the output columns, then flattened), so a
Spark job returns the columns of the local scorer: ``deal_id``, ``probability``,
``score``, ``band``, ``contrib_<dimension>``, ``base_value``, ``top_reasons``,
``next_question``, ``model_version`` and ``reject_reason`` (empty when scored).
Every input row comes out: scored, or with the reason it was rejected.

Spark feeds the pyfunc in Arrow batches (``chunk_rows`` leads each), and each batch
is validated and scored on its own. What a batch cannot see is checked on the
Spark side first, with the local scorer's wording:

- the types of the model's MLflow signature: MLflow refuses a whole batch whose
  column does not have the declared type (text in a number column, an empty value
  in a ``long`` column), so such a value rejects its row instead;
- ids repeated across batches: the first valid row (in input order) keeps the id,
  later ones are rejected as ``duplicate deal_id 'X' (first seen at row N)``;
- CSV lines without one value per header column (Spark would pad or cut them).

Activities reach the pyfunc as its ``activities_path`` param, which every batch
reads in full (``pandas.read_parquet``): the cost grows with batches x activities
(see README, "Scoring on a Spark cluster"). Time stamps are read as UTC, as the
local scorer does: the session's time zone is set to UTC.

Needs the ``spark`` extra (``pip install 'lead-ml[spark]'``) and Java 17.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lead_ml.scorer import ID_COLUMN, SHOWN_CHARS, ScorerError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from lead_ml.batch import BatchSummary
    from lead_ml.schema import TableContract
    from lead_ml.scorer import Scorer

ROW = "_row"
REJECT = "_reject"
MALFORMED = "_malformed_line"
OUTPUT = "_output"
TEXT_COLUMNS = ("deal_id", "band", "top_reasons", "next_question", "model_version")
#: The local scorer's words for values that do not read (lead_ml.scorer.read_values).
NOT_A_NUMBER = "is not a finite number"
NOT_A_DATE = "is not an ISO 8601 date"
MALFORMED_LINE = "the CSV line does not have one value per header column"


def spark_problem() -> str | None:
    """Why Spark cannot run here (pyspark or Java missing), or None when it can."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed: pip install 'lead-ml[spark]'"
    java_home = os.environ.get("JAVA_HOME", "")
    if not shutil.which("java") and not Path(java_home, "bin", "java").exists():
        return "Java (17) is not found: install it (apt-get install openjdk-17-jre)"
    return None


def start_session(master: str = "local[*]", chunk_rows: int = 50_000) -> SparkSession:
    """A Spark session for scoring (or the running one, e.g. under spark-submit).

    Python workers use this interpreter unless PYSPARK_PYTHON says otherwise.
    """
    problem = spark_problem()
    if problem is not None:
        raise ScorerError(f"--engine spark: {problem}")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master(master)
        .appName("lead-ml score")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(chunk_rows))
        .getOrCreate()
    )


# --- reading ------------------------------------------------------------------------


#: Object stores whose URIs always name a bucket or container after "//".
OBJECT_STORES = ("s3", "s3a", "s3n", "gs", "abfs", "abfss", "wasb", "wasbs", "oss")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+):/+")


def spark_uri(path: Path) -> str:
    """A path from the command line as Spark needs it (``//`` restored in URIs).

    The command line hands over paths as ``pathlib.Path``, which folds ``s3://b``
    into ``s3:/b``; object-store URIs get their ``//`` back, others are kept.

    >>> spark_uri(Path("s3://crm/leads.parquet"))
    's3://crm/leads.parquet'
    >>> spark_uri(Path("dbfs:/Volumes/crm/leads.parquet"))
    'dbfs:/Volumes/crm/leads.parquet'
    >>> spark_uri(Path("data/leads.csv"))
    'data/leads.csv'
    """
    text = str(path)
    match = _SCHEME.match(text)
    if match and match.group(1).lower() in OBJECT_STORES:
        return f"{match.group(1)}://{text[match.end() :]}"
    return text


def _is_local(path: str) -> bool:
    return _SCHEME.match(path) is None


def read_leads(spark: SparkSession, path: str) -> DataFrame:
    """Leads from CSV (a header row; values read as text) or Parquet (file, folder).

    A CSV line without one value per header column keeps its text in
    ``_malformed_line`` (null for the others).
    """
    if _is_local(path) and not Path(path).exists():
        raise FileNotFoundError(f"{path}: input file not found")
    from pyspark.sql.types import StringType, StructField, StructType

    if not path.lower().endswith(".csv"):
        return spark.read.parquet(path)
    # Spark sees a line's field count only when it parses every field of it.
    spark.conf.set("spark.sql.csv.parser.columnPruning.enabled", "false")
    header = spark.read.csv(path, header=True).columns
    schema = StructType([StructField(c, StringType()) for c in [*header, MALFORMED]])
    return spark.read.csv(
        path, header=True, schema=schema, columnNameOfCorruptRecord=MALFORMED
    )


def number_rows(leads: DataFrame) -> tuple[DataFrame, int]:
    """Leads with their 0-based position in the input (``_row``), and the row count.

    Spark's row ids skip between partitions; one counting pass per partition turns
    them into positions, so messages can name "row N" as the local scorer does.
    """
    from pyspark.sql import functions as F

    partition = F.spark_partition_id()
    counts: dict[int, int] = dict(leads.groupBy(partition).count().collect())
    offsets, total = [], 0
    for index in range(max(counts, default=-1) + 1):
        offsets.append(total)
        total += counts.get(index, 0)
    if not offsets:
        return leads.withColumn(ROW, F.lit(0).cast("long")), 0
    start = F.element_at(F.array(*[F.lit(o) for o in offsets]), partition + 1)
    inside = F.monotonically_increasing_id() - partition.cast("long") * (1 << 33)
    return leads.withColumn(ROW, (start + inside).cast("long")), total


# --- the checks a single batch cannot make ------------------------------------------


def _quoted(value: Column) -> Column:
    """A value quoted as the local scorer quotes it in reasons (long ones cut)."""
    from pyspark.sql import functions as F

    cut = F.concat(F.lit("'"), F.substring(value, 1, SHOWN_CHARS - 5), F.lit("...'"))
    whole = F.concat(F.lit("'"), value, F.lit("'"))
    return F.when(F.length(value) + 2 > SHOWN_CHARS, cut).otherwise(whole)


def _number(value: Column, is_text: bool) -> tuple[Column, Column]:
    """A column as double, and where a present value is not a finite number."""
    from pyspark.sql import functions as F

    if is_text:
        text = F.trim(value)
        number = text.try_cast("double")
        bad = (text != "") & (number.isNull() | F.isnan(number))
    else:
        number, bad = value.cast("double"), F.lit(False)
    return number, F.coalesce(bad | (F.abs(number) == float("inf")), F.lit(False))


def _typed(leads: DataFrame, name: str, kind: str) -> tuple[Column, Column]:
    """A column in the type of the model's signature, and its problem (or null)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DateType, StringType, TimestampNTZType, TimestampType

    value, source = F.col(name), leads.schema[name].dataType
    raw = _quoted(value.cast("string"))
    if kind == "datetime":
        if isinstance(source, TimestampType | TimestampNTZType | DateType):
            return value.cast("timestamp"), F.lit(None)
        text = F.trim(value.cast("string"))
        stamp = text.try_cast("timestamp")
        bad = (text != "") & stamp.isNull()
        return stamp, F.when(bad, F.concat(F.lit(f"{name} {NOT_A_DATE}: "), raw))
    if kind not in ("double", "long", "float", "integer"):
        return value.cast("string"), F.lit(None)
    number, bad = _number(value, isinstance(source, StringType))
    problem = F.when(bad, F.concat(F.lit(f"{name} {NOT_A_NUMBER}: "), raw))
    if kind in ("double", "float"):
        return number, problem
    return number.cast("long"), F.coalesce(problem, _whole_number_problem(name, number))


def _whole_number_problem(name: str, number: Column) -> Column:
    """Why a value cannot pass as the signature's whole number (long), or null.

    Scorers exported before numbers were declared double have such a column.
    """
    from pyspark.sql import functions as F

    hint = (
        "; this scorer's MLflow signature takes only whole numbers there: "
        f"re-export it with `lead-ml export` to score such {name}"
    )
    whole = (F.floor(number) == number) & (F.abs(number) < 2.0**63)
    return F.when(number.isNull(), F.lit(f"{name} is empty{hint}")).when(
        ~whole,
        F.concat(
            F.lit(f"{name} is not a whole number: "),
            number.cast("string"),
            F.lit(hint),
        ),
    )


def check_leads(leads: DataFrame, signature: dict[str, str]) -> DataFrame:
    """The signature's columns, typed, with ``_row`` and the first problem, if any.

    ``signature`` maps each input column to its MLflow type (string, double, long,
    datetime); ``leads`` must carry them all and ``_row``. The problem, in
    ``_reject``, is null for a row that may go to the scorer.
    """
    from pyspark.sql import functions as F

    typed = {name: _typed(leads, name, kind) for name, kind in signature.items()}
    problems = [problem for _, problem in typed.values()]
    if MALFORMED in leads.columns:
        line = F.col(MALFORMED)
        reason = F.concat(F.lit(f"{MALFORMED_LINE}: "), _quoted(line))
        problems.insert(0, F.when(line.isNotNull(), reason))
    return leads.select(
        *[value.alias(name) for name, (value, _) in typed.items()],
        F.col(ROW),
        F.coalesce(*problems, F.lit(None).cast("string")).alias(REJECT),
    )


def meets_contract(contract: TableContract) -> Column:
    """True where a typed lead row passes the column checks of the lead contract."""
    from pyspark.sql import functions as F

    passes = F.lit(True)
    for spec in contract.columns:
        value = F.col(spec.name)
        present = value.isNotNull()
        if spec.kind in ("string", "category"):
            present = present & (F.trim(value) != "")
        checks = [] if spec.nullable else [present]
        if spec.allowed is not None:
            checks.append(~present | value.isin(*spec.allowed))
        if spec.min_value is not None:
            checks.append(value.isNull() | (value >= spec.min_value))
        if spec.max_value is not None:
            checks.append(value.isNull() | (value <= spec.max_value))
        for check in checks:
            passes = passes & F.coalesce(check, F.lit(False))
    return passes


def reject_duplicates(leads: DataFrame, valid: Column) -> DataFrame:
    """Rows repeating the id of an earlier valid row get a duplicate reason.

    As in the local scorer, of the rows sharing an id the first valid one (lowest
    ``_row``, no problem, ``valid`` true) keeps it; invalid rows keep their own
    reason, which the scorer gives them.
    """
    from pyspark.sql import functions as F

    candidate = F.col(REJECT).isNull() & valid
    repeated = (
        leads.filter(candidate)
        .groupBy(ID_COLUMN)
        .agg(F.min(ROW).alias("_first"), F.count("*").alias("_copies"))
        .filter(F.col("_copies") > 1)
        .drop("_copies")
    )
    joined = leads.join(repeated, on=ID_COLUMN, how="left")
    later = F.coalesce(candidate & (F.col(ROW) != F.col("_first")), F.lit(False))
    reason = F.concat(
        F.lit(f"duplicate {ID_COLUMN} "),
        _quoted(F.col(ID_COLUMN)),
        F.lit(" (first seen at row "),
        F.col("_first").cast("string"),
        F.lit(")"),
    )
    marked = F.when(later, reason).otherwise(F.col(REJECT))
    return joined.withColumn(REJECT, marked).drop("_first")


# --- scoring ------------------------------------------------------------------------


def output_types(scorer: Scorer, explain: bool) -> dict[str, str]:
    """Spark type of every output column (score as double: empty when rejected)."""
    columns = [*scorer.output_columns(explain), "reject_reason"]
    text = (*TEXT_COLUMNS, "reject_reason")
    return {c: "string" if c in text else "double" for c in columns}


def input_signature(model_dir: str) -> dict[str, str]:
    """Input column -> MLflow type, from the scorer folder's signature."""
    from mlflow.models import Model
    from mlflow.types import DataType

    schema = Model.load(model_dir).get_input_schema()
    columns = {} if schema is None else {s.name: s.type for s in schema.inputs}
    if not columns or not all(isinstance(t, DataType) for t in columns.values()):
        raise ScorerError(
            f"{model_dir}: the model's input signature is not one of named columns of "
            "plain types; re-export it with `lead-ml export`"
        )
    return {str(name): kind.name for name, kind in columns.items()}


def _flatten(scored: DataFrame, types: dict[str, str]) -> DataFrame:
    """The UDF's struct as columns; values only where scored, reason only where not.

    MLflow turns a missing text value into the text "nan" or "<NA>" on its way
    into a Spark struct, so emptiness is restored from whether the row was scored.
    """
    from pyspark.sql import functions as F

    out = F.col(OUTPUT)
    probability = out["probability"]
    ok = probability.isNotNull() & ~F.isnan(probability)
    columns = [F.col(ID_COLUMN)]
    for name, kind in types.items():
        if name in (ID_COLUMN, "reject_reason"):
            continue
        value = F.when(ok, out[name]).cast("long" if name == "score" else kind)
        columns.append(value.alias(name))
    columns.append(F.when(~ok, out["reject_reason"]).alias("reject_reason"))
    return scored.select(*columns)


def _rejected(leads: DataFrame, types: dict[str, str]) -> DataFrame:
    """Rows rejected before the UDF: id and reason, every score column empty."""
    from pyspark.sql import functions as F

    columns = [
        F.lit(None).cast("long" if name == "score" else kind).alias(name)
        for name, kind in types.items()
        if name not in (ID_COLUMN, "reject_reason")
    ]
    return leads.select(
        F.col(ID_COLUMN), *columns, F.col(REJECT).alias("reject_reason")
    )


def scoring_udf(
    spark: SparkSession,
    model_dir: str,
    types: dict[str, str],
    params: dict[str, Any],
    env_manager: str = "local",
) -> Any:
    """The scorer folder as a Spark UDF returning a struct of the output columns."""
    import mlflow

    from lead_ml.tracking import quiet_environment

    quiet_environment()
    return mlflow.pyfunc.spark_udf(
        spark,
        model_dir,
        result_type=", ".join(f"{name} {kind}" for name, kind in types.items()),
        env_manager=env_manager,
        params=params,
    )


def _spread(leads: DataFrame, partitions: int) -> DataFrame:
    """Leads over at least ``partitions`` partitions (one file is often one)."""
    if partitions and leads.rdd.getNumPartitions() < partitions:
        return leads.repartition(partitions)
    return leads


def score_dataframe(
    spark: SparkSession,
    leads: DataFrame,
    model_dir: str,
    explain: bool = True,
    activities_path: str = "",
    env_manager: str = "local",
    partitions: int = 0,
) -> DataFrame:
    """Score a Spark DataFrame of raw lead rows: one output row per input row.

    The rows come out in no particular order (join on deal_id). ``activities_path``
    must be a Parquet file every executor can read; ``env_manager`` is MLflow's
    (``local``: executors use the Python of the job, with lead-ml installed);
    ``partitions`` spreads the leads to score over at least that many tasks.
    """
    from pyspark.sql import functions as F

    from lead_ml.scorer import load_scorer

    spark.conf.set("spark.sql.session.timeZone", "UTC")
    scorer = load_scorer(model_dir)
    scorer.check_columns(list(leads.columns), "leads")
    signature = input_signature(model_dir)
    if ROW not in leads.columns:
        leads, _ = number_rows(leads)
    checked = check_leads(leads, signature)
    checked = reject_duplicates(checked, meets_contract(scorer.contract))
    types = output_types(scorer, explain)
    params = {"explain": explain, "activities_path": activities_path}
    predict = scoring_udf(spark, model_dir, types, params, env_manager)
    clean = _spread(checked.filter(F.col(REJECT).isNull()), partitions)
    scored = clean.withColumn(OUTPUT, predict(F.struct(*signature)))
    rejected = checked.filter(F.col(REJECT).isNotNull())
    return _flatten(scored, types).unionByName(_rejected(rejected, types))


# --- the batch job ------------------------------------------------------------------


@dataclass(frozen=True)
class SparkJob:
    """Where a Spark batch job reads and writes, and how it scores."""

    model: Path
    input: str
    output: str
    activities: str = ""
    explain: bool = True
    master: str = "local[*]"
    chunk_rows: int = 50_000


def check_paths(job: SparkJob) -> None:
    """Refuse outputs and activities the Spark job cannot use, before Spark starts."""
    if job.output.lower().endswith(".csv"):
        raise ScorerError(
            f"{job.output}: --engine spark writes a Parquet folder; name the output "
            "e.g. scores.parquet"
        )
    if job.activities and not job.activities.lower().endswith(".parquet"):
        raise ScorerError(
            f"{job.activities}: with --engine spark the activities must be one Parquet "
            "file (the scorer reads it with pandas.read_parquet on every executor)"
        )
    if job.activities and _is_local(job.activities):
        if not Path(job.activities).exists():
            raise FileNotFoundError(f"{job.activities}: activities file not found")
    if _is_local(job.output):
        _check_local_output(Path(job.output))


def _check_local_output(path: Path) -> None:
    """Only a previous Spark output (or nothing) may be replaced."""
    if path.is_file():
        raise ScorerError(
            f"{path}: is a file, and --engine spark writes a folder of Parquet files; "
            "choose another --output or delete it"
        )
    if path.is_dir() and any(path.iterdir()) and not (path / "_SUCCESS").exists():
        raise ScorerError(
            f"{path}: is a folder that no Spark job wrote (no _SUCCESS); refusing to "
            "replace it: choose another --output"
        )


def score_with_spark(job: SparkJob, spark: SparkSession | None = None) -> BatchSummary:
    """Score a file of leads on Spark, write a Parquet folder, return the summary.

    Rejected rows stay in the output with their ``reject_reason``; rows in =
    scored + rejected is checked on what was written.
    """
    from lead_ml.batch import BatchSummary

    check_paths(job)
    spark = spark or start_session(job.master, job.chunk_rows)
    started = time.perf_counter()
    leads, rows_in = number_rows(read_leads(spark, job.input))
    if rows_in == 0:
        raise ScorerError(f"{job.input}: no rows to score; check the export")
    result = score_dataframe(
        spark,
        leads,
        str(job.model),
        job.explain,
        _absolute(job.activities),
        partitions=spark.sparkContext.defaultParallelism,
    )
    result.write.mode("overwrite").parquet(job.output)
    scored, rejected = _written_counts(spark, job.output)
    summary = BatchSummary(
        rows_in=rows_in,
        scored=scored,
        rejected=rejected,
        seconds=time.perf_counter() - started,
        output=job.output,
        rejects=f"{job.output} (rows with a reject_reason)",
    )
    _reconcile(summary)
    return summary


def _absolute(path: str) -> str:
    """Executors may run elsewhere: local paths are passed on absolute."""
    return str(Path(path).resolve()) if path and _is_local(path) else path


def _written_counts(spark: SparkSession, output: str) -> tuple[int, int]:
    """(scored, rejected) rows in a written output."""
    from pyspark.sql import functions as F

    counts: Any = (
        spark.read.parquet(output)
        .agg(F.count("probability"), F.count("reject_reason"))
        .first()
    )
    return int(counts[0]), int(counts[1])


def _reconcile(summary: BatchSummary) -> None:
    if summary.rows_in != summary.scored + summary.rejected:
        raise RuntimeError(
            f"rows do not reconcile: {summary.rows_in} in, {summary.scored} scored, "
            f"{summary.rejected} rejected; {summary.output} is incomplete, delete it"
        )
