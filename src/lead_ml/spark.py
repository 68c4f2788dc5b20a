"""Score leads on Spark with the exported scorer, unchanged, as a pandas UDF.

The scorer folder that ``lead-ml export`` writes is run as its pyfunc in a Spark
pandas UDF (:func:`pyfunc_udf`: a struct of the output columns, then flattened;
``mlflow.pyfunc.spark_udf`` with any env_manager but "local", or with
``LEAD_ML_SPARK_MLFLOW_UDF=1``), so a Spark job returns the columns of the local
scorer, whatever the source: the export's own id column, ``probability``,
``score``, ``band``, ``contrib_<dimension>``, ``base_value``, ``top_reasons``,
``next_question``, ``model_version``, and ``reject_reason`` (empty when scored).
Every input row comes out: scored, or with the reason it was rejected.

Spark feeds the pyfunc in Arrow batches (``chunk_rows`` leads each), and each batch
is scored on its own. What a batch cannot see is settled on the Spark side first:

- every row is checked by the scorer's own lead contract
  (:meth:`lead_ml.schema.LeadContract.check_rows`, run on the executors through
  ``mapInPandas``), so values that do not read as their kind, missing required
  values, placeholders and bounds are judged by the same code and in the same words
  as the local job; the rows go on to the pyfunc typed as its MLflow signature
  declares them (numbers double, dates time stamps, the rest text), which MLflow
  would otherwise refuse for the whole batch, and rejected ones without an id (the
  pyfunc rejects them before building any feature; their reason is kept);
- ids repeated across batches: the first valid row (in input order) keeps the id,
  later valid ones are rejected as ``duplicate <id column> 'X' (first seen at row
  N)``, as the local scorer words it. A pass over the id column finds the ids held
  more than once, and only their rows are checked whole to find each one's first
  valid row (:func:`repeated_ids`), joined onto the leads from the driver; the
  leads are not shuffled by id (but when more than ``MAX_REPEATED_IDS`` ids
  repeat: :func:`reject_duplicates`);
- CSV lines without one value per header column (Spark would pad or cut them).

The many-to-one tables training joined onto the deals (``--table NAME=PATH``) are
read on the driver as `lead-ml score` reads them and joined by key on the executors
before the check (:func:`table_joiner`): a lead without a match is scored with the
table's columns unknown, and :func:`unmatched_counts` counts such leads as the local
job does (the summary's ``leads_without_match``).

The summary carries what the local job's does: rows in = scored + rejected
(counted on what was written), and the drift (PSI of every feature and of the
score against the training window) and unseen-category counts. Those are counted
by the pyfunc while it scores each batch (:class:`lead_ml.scorer.JobCounts`, the
local job's own counting), travel with the batch's output as one text cell, are
collected by an observation of the write (:func:`observe_counts`: no second pass
over the leads) and merged on the driver (:func:`merged_counts`); merged counts
that do not cover exactly the rows read and scored (a task counted twice or lost)
fail the job (:func:`check_counts`).

The check runs lead-ml's own code on the executors, so lead-ml must be installed
there, with ``env_manager="virtualenv"`` too (the check imports only
lead_ml.schema and lead_ml.tables, with pandas, numpy and pyarrow). Activities
reach the pyfunc as its ``activities_path`` param, which every batch reads in full:
the cost grows with batches x activities (see README, "Scoring on a Spark
cluster"). Time stamps are read as UTC, as the local scorer does: the session's
time zone is set to UTC.

Needs the ``spark`` extra (``pip install 'lead-ml[spark]'``) and Java 17.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lead_ml.batch import BatchSummary
from lead_ml.schema import LeadContract, id_text
from lead_ml.scorer import (
    ALLOW_ACTIVITIES_ENV,
    BATCH_COUNTS_COLUMN,
    BATCH_COUNTS_ENV,
    MODEL_CODE_FILE,
    JobCounts,
    JoinedTable,
    Scorer,
    joins_onto,
    load_pyfunc,
    load_scorer,
    read_join_tables,
    resolve_scorer,
)
from lead_ml.tables import (
    FORMATS,
    Dialect,
    as_text,
    decimal_text,
    quote_value,
    read_header,
)
from lead_ml.tracking import quiet_environment
from lead_ml.vocab import TIME_DTYPE, ScorerError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, Observation, SparkSession
    from pyspark.sql.types import StructType

#: Columns the job adds to the leads; a source column may not be named so.
ROW = "_row"
REJECT = "_reject"
#: The id as the contract reads it (what duplicates compare), quoted for reasons,
#: and as given (what a rejected row's output shows).
KEY = "_key"
SHOWN_KEY = "_shown_key"
RAW_ID = "_raw_id"
FIRST = "_first"
MALFORMED = "_malformed_line"
OUTPUT = "_output"
MALFORMED_LINE = "the CSV line does not have one value per header column"
#: Spark type of an input column in the pyfunc's MLflow signature, by kind
#: (lead_ml.scorer.signature_example); other kinds are text.
SIGNATURE_TYPES = {"number": "double", "date": "timestamp"}


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


def _column(name: str) -> Column:
    """A column by its exact name (source names may hold spaces, dots, backticks)."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


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


def read_leads(
    spark: SparkSession, path: str, dialect: Dialect | None = None
) -> DataFrame:
    """Leads from CSV (a header row; values read as text) or Parquet (file, folder).

    CSV is read as the local job reads it: by the dialect's separator and encoding
    (the training's reading, :meth:`lead_ml.scorer.Scorer.dialect`; a comma when
    none is known), empty cells missing and nothing else (no "NA" or "null" words),
    quotes doubled inside quoted values. A line without one value per header column
    keeps its text in ``_malformed_line`` (null for the others). A decimal comma is
    read by :func:`check_leads` (``decimal``); an .xlsx workbook is refused, naming
    what to do.
    """
    if _is_local(path) and not Path(path).exists():
        raise FileNotFoundError(f"{path}: input file not found")
    from pyspark.sql.types import StringType, StructField, StructType

    if path.lower().endswith(".xlsx"):
        raise ScorerError(
            f"{path}: an .xlsx workbook; --engine spark reads CSV or Parquet: save "
            "the sheet as CSV (or Parquet), or score the workbook with --engine local"
        )
    if not path.lower().endswith(".csv"):
        return spark.read.parquet(path)
    dialect = dialect or Dialect()
    # Spark sees a line's field count only when it parses every field of it.
    spark.conf.set("spark.sql.csv.parser.columnPruning.enabled", "false")
    reader = spark.read.options(
        header=True,
        escape='"',
        sep=dialect.sep or ",",
        encoding=java_encoding(spark, dialect.encoding, path),
    )
    # A byte-order mark stays on the first name in Java's UTF-8; the schema's names
    # are the ones read (Spark enforces a given schema by position).
    header = [name.removeprefix("\ufeff") for name in reader.csv(path).columns]
    schema = StructType([StructField(c, StringType()) for c in [*header, MALFORMED]])
    return reader.csv(path, schema=schema, columnNameOfCorruptRecord=MALFORMED)


def java_encoding(spark: SparkSession, encoding: str, path: str) -> str:
    """The JVM's name of a Python text encoding (utf-8-sig is UTF-8: the mark is
    dropped from the header); ScorerError naming the file when Java lacks it."""
    import codecs

    name = codecs.lookup(encoding).name
    java = {"utf-8-sig": "UTF-8", "cp1252": "windows-1252", "iso8859-1": "ISO-8859-1"}
    java_name = java.get(name, name)
    # Any: pyspark types _jvm as optional, and without pyspark installed (the plain
    # lint) SparkSession is Any already.
    context: Any = spark.sparkContext
    charsets = context._jvm.java.nio.charset.Charset
    if not charsets.isSupported(java_name):
        raise ScorerError(
            f"{path}: encoding {encoding!r} has no Java name Spark knows; save the "
            "file as UTF-8, or score it with --engine local"
        )
    return str(java_name)


def input_dialect(scorer: Scorer, path: str) -> Dialect:
    """How a Spark job reads a file of leads: the training's reading of the deals,
    its separator detected from a local CSV when training detected it, and the
    row-number id left out when the file holds that column already."""
    dialect = scorer.dialect()
    if not path.lower().endswith(".csv"):
        return replace(dialect, decimal=".")  # typed: no text numbers to read
    if _is_local(path):
        return dialect.for_input(Path(path))
    return dialect


def with_row_numbers(leads: DataFrame, dialect: Dialect) -> DataFrame:
    """The leads with the row-number id the training gave them (1-based data row,
    as text, from ``_row``) when the dialect names one the leads lack."""
    from pyspark.sql import functions as F

    name = dialect.row_number
    if not name or name in leads.columns:
        return leads
    return leads.withColumn(name, (F.col(ROW) + 1).cast("string"))


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


# --- the checks, with the scorer's own contract -------------------------------------


def signature_types(contract: LeadContract) -> dict[str, str]:
    """Spark type of each input column as the pyfunc's signature takes it."""
    return {c: SIGNATURE_TYPES.get(k, "string") for c, k in contract.kinds.items()}


def table_joiner(
    tables: Sequence[JoinedTable], missing: Sequence[str]
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Lead rows with the many-to-one tables' columns joined by key, as
    :meth:`lead_ml.scorer.JoinedTable.join` joins them for `lead-ml score` (the
    same key reading; a lead without a match gets empty columns: unknown).

    The tables travel with the function as plain frames (read on the driver), so
    the executors import only lead_ml.schema and lead_ml.tables for it.
    """
    plain = [(table.key, table.rows) for table in tables]
    placeholders = list(missing)
    text_of, ids_of = as_text, id_text

    def join(leads: pd.DataFrame) -> pd.DataFrame:
        for key, rows in plain:
            keys = text_of(ids_of(leads[key]), placeholders)
            joined = rows.reindex(keys.to_numpy()).set_axis(leads.index)
            leads = pd.concat([leads, joined], axis=1)
        return leads

    return join


def batch_checker(
    contract: LeadContract,
    join: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    decimal: str = ".",
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The check of every batch of raw lead rows (see :func:`check_frame`), as
    ``mapInPandas`` runs it on the executors; ``join`` (:func:`table_joiner`)
    first adds the columns of the tables given with ``--table``. ``decimal=","``:
    numbers written with a decimal comma (1.234,5) are read as the local job reads
    a CSV in that dialect (:func:`lead_ml.tables.decimal_text`).

    A function made here is not importable by name, so Spark ships its code and
    the executors import only what it names (lead_ml.schema, lead_ml.tables and
    pandas), not the model stack that lead_ml.spark imports (seconds a worker).
    """
    quote, time_dtype = quote_value, TIME_DTYPE
    row, key, shown_key, raw_id, reject = ROW, KEY, SHOWN_KEY, RAW_ID, REJECT
    malformed, malformed_line = MALFORMED, MALFORMED_LINE

    plain = decimal_text

    def check(leads: pd.DataFrame) -> pd.DataFrame:
        if join is not None:
            leads = join(leads)
        raw = leads[contract.columns]
        if decimal == ",":
            raw = raw.apply(plain)
        typed, reasons = contract.check_rows(raw)
        if malformed in leads.columns:
            line = leads[malformed].to_numpy(dtype=object)
            broken = pd.notna(line)
            reasons[broken] = [f"{malformed_line}: {quote(t)}" for t in line[broken]]
        out: dict[str, Any] = {}
        for column, kind in contract.kinds.items():
            if kind == "number":
                out[column] = typed[column].astype("float64")
            elif kind == "date":
                out[column] = typed[column].astype(time_dtype)
            elif column == contract.id_column:
                out[column] = typed[column].astype("string")
            else:  # the pyfunc reads the text again, as the local scorer reads it
                out[column] = raw[column].astype("string")
        ids = typed[contract.id_column].astype("string")
        # Plain lists: iterating an Arrow-backed array, with pd.isna per cell,
        # cost three times the quoting itself.
        absent = ids.isna().tolist()
        shown = [
            None if gone else quote(i)
            for i, gone in zip(ids.astype(object).tolist(), absent, strict=True)
        ]
        out[row] = leads[row].astype("int64")
        out[key] = ids
        out[shown_key] = pd.Series(shown, index=leads.index, dtype="string")
        out[raw_id] = raw[contract.id_column].astype("string")
        out[reject] = pd.Series(reasons, index=leads.index, dtype="string")
        return pd.DataFrame(out, index=leads.index)

    def check_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            yield check(batch)

    return check_batches


def check_frame(contract: LeadContract, leads: pd.DataFrame) -> pd.DataFrame:
    """One batch of raw lead rows checked by the contract, one row out per row in.

    ``leads`` holds the contract's columns, ``_row`` and, from CSV, ``_malformed_line``.
    Out come the input columns typed for the pyfunc's signature (the id as the
    contract reads it), ``_row``, ``_key`` (that id), ``_shown_key`` (it quoted for a
    reason), ``_raw_id`` (the id as given, as text) and ``_reject``: the first reason
    the row breaks the contract on its own, or None. Repeated ids are left to
    :func:`reject_duplicates`, which sees every batch.
    """
    return next(batch_checker(contract)(iter([leads])))


def checked_schema(contract: LeadContract) -> StructType:
    """The Spark schema of :func:`check_frame`'s output."""
    from pyspark.sql.types import (
        DoubleType,
        LongType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )

    spark_type = {"double": DoubleType(), "timestamp": TimestampType()}
    fields = [
        StructField(name, spark_type.get(kind, StringType()))
        for name, kind in signature_types(contract).items()
    ]
    fields.append(StructField(ROW, LongType(), nullable=False))
    fields += [StructField(c, StringType()) for c in (KEY, SHOWN_KEY, RAW_ID, REJECT)]
    return StructType(fields)


def check_leads(
    leads: DataFrame,
    contract: LeadContract,
    tables: Sequence[JoinedTable] = (),
    decimal: str = ".",
) -> DataFrame:
    """Every lead checked by the contract on the executors (see :func:`check_frame`).

    ``leads`` must carry the contract's columns (but those of ``tables``, joined
    first by key: :func:`table_joiner`) and ``_row``; other columns are left out.
    ``decimal``: the decimal mark of text numbers (see :func:`batch_checker`).
    """
    ours = {ROW, REJECT, KEY, SHOWN_KEY, RAW_ID, FIRST, OUTPUT, MALFORMED}
    clash = ours & set(contract.kinds)
    if clash:
        raise ScorerError(
            f"column(s) {', '.join(sorted(clash))}: --engine spark uses these names "
            "itself; rename them in the export"
        )
    added = {c for table in tables for c in table.rows.columns}
    names = [c for c in contract.columns if c not in added]
    names += [t.key for t in tables if t.key not in names]
    names.append(ROW)
    if MALFORMED in leads.columns:
        names.append(MALFORMED)
    selected = leads.select(*[_column(name) for name in names])
    join = table_joiner(tables, contract.missing_values) if tables else None
    checker = batch_checker(contract, join, decimal)
    return selected.mapInPandas(checker, checked_schema(contract))


def unmatched_counts(
    leads: DataFrame, tables: Sequence[JoinedTable], missing: Sequence[str]
) -> dict[str, int]:
    """Per table, how many leads have no row in it (their key read as the join
    reads it, :func:`table_joiner`; a missing key has none), as `lead-ml score`
    counts them: one pass over the key columns."""
    if not tables:
        return {}
    from pyspark.sql import functions as F

    known = [(t.name, t.key, set(t.rows.index)) for t in tables]
    placeholders = list(missing)
    text_of, ids_of = as_text, id_text
    keys = list(dict.fromkeys(t.key for t in tables))

    def count(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            yield pd.DataFrame(
                {
                    name: [
                        int(
                            (~text_of(ids_of(batch[key]), placeholders).isin(ids)).sum()
                        )
                    ]
                    for name, key, ids in known
                }
            )

    schema = ", ".join(f"`{name}` long" for name, _, _ in known)
    counted = leads.select(*[_column(k) for k in keys]).mapInPandas(count, schema)
    totals: Any = counted.agg(
        *[F.sum(_column(n)).alias(n) for n, _, _ in known]
    ).first()
    return {name: int(totals[name] or 0) for name, _, _ in known}


#: Ids held by more rows than this are checked by a shuffle of every row by id
#: (:func:`reject_duplicates`) rather than from a table on the driver.
MAX_REPEATED_IDS = 200_000


def repeated_ids(
    leads: DataFrame,
    contract: LeadContract,
    tables: Sequence[JoinedTable] = (),
    decimal: str = ".",
) -> pd.DataFrame:
    """Every id (as the contract reads it, ``_key``) that more than one lead holds,
    with the first valid row holding it (``_first``; missing when none is valid),
    on the driver: no more than :data:`MAX_REPEATED_IDS` + 1 of them (more: the
    caller falls back to :func:`reject_duplicates`).

    A pass over the id column alone (read by the contract's own check, as every
    row's is: :func:`check_leads` of a contract of the id) finds the repeated ids;
    only the rows holding one are checked whole, to know which is valid, as the
    local job's id pre-pass reads the ids alone (lead_ml.batch.IdIndex).
    """
    from pyspark.sql import functions as F

    id_column = contract.id_column
    alone = LeadContract(
        id_column,
        {id_column: contract.kinds[id_column]},
        missing_values=contract.missing_values,
    )
    keys = check_leads(leads.select(_column(id_column), ROW), alone, (), decimal)
    keys = keys.where(F.col(KEY).isNotNull()).select(KEY, ROW)
    repeated = keys.groupBy(KEY).count().where(F.col("count") > 1).select(KEY)
    found = repeated.limit(MAX_REPEATED_IDS + 1).collect()
    if not found or len(found) > MAX_REPEATED_IDS:
        return pd.DataFrame({KEY: [row[0] for row in found], FIRST: None})
    spark = leads.sparkSession
    wanted = spark.createDataFrame([(row[0],) for row in found], f"{KEY} string")
    rows = keys.join(F.broadcast(wanted), KEY).select(ROW)
    holding = leads.join(F.broadcast(rows), ROW)
    checked = check_leads(holding, contract, tables, decimal)
    valid = F.when(F.col(REJECT).isNull(), F.col(ROW))
    firsts = checked.groupBy(KEY).agg(F.min(valid).alias(FIRST)).collect()
    first = {row[0]: row[1] for row in firsts}
    keys_found = [row[0] for row in found]
    return pd.DataFrame(
        {
            KEY: pd.Series(keys_found, dtype="string"),
            FIRST: pd.Series([first.get(k) for k in keys_found], dtype="Int64"),
        }
    )


def mark_repeats(
    checked: DataFrame, repeated: pd.DataFrame, id_column: str
) -> DataFrame:
    """:func:`reject_duplicates` with the repeated ids and their first valid rows
    known (:func:`repeated_ids`): a join with that small table, broadcast, in
    place of a shuffle of every row by id."""
    from pyspark.sql import functions as F

    firsts = repeated.dropna(subset=[FIRST])
    if firsts.empty:
        return checked
    spark = checked.sparkSession
    table = spark.createDataFrame(
        list(
            zip(
                firsts[KEY].tolist(),
                firsts[FIRST].astype("int64").tolist(),
                strict=True,
            )
        ),
        f"{KEY} string, {FIRST} long",
    )
    marked = checked.join(F.broadcast(table), KEY, "left")
    return _duplicate_reasons(marked, id_column).drop(FIRST)


def reject_duplicates(checked: DataFrame, id_column: str) -> DataFrame:
    """Rows repeating the id of an earlier valid row get a duplicate reason.

    As in the local scorer, of the rows sharing an id the first valid one (lowest
    ``_row``, no reason yet) keeps it; invalid rows keep their own reason.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    valid = F.col(REJECT).isNull()
    by_id = Window.partitionBy(KEY)
    first = F.min(F.when(valid, F.col(ROW))).over(by_id)
    marked = checked.withColumn(FIRST, first)
    return _duplicate_reasons(marked, id_column).drop(FIRST)


def _duplicate_reasons(marked: DataFrame, id_column: str) -> DataFrame:
    """Valid rows whose ``_first`` (the first valid row of their id) is another
    row get the duplicate reason."""
    from pyspark.sql import functions as F

    valid = F.col(REJECT).isNull()
    later = valid & (F.col(ROW) != F.col(FIRST))
    reason = F.concat(
        F.lit(f"duplicate {id_column} "),
        F.col(SHOWN_KEY),
        F.lit(" (first seen at row "),
        F.col(FIRST).cast("string"),
        F.lit(")"),
    )
    return marked.withColumn(REJECT, F.when(later, reason).otherwise(F.col(REJECT)))


# --- scoring ------------------------------------------------------------------------


def output_types(scorer: Scorer, explain: bool) -> dict[str, str]:
    """Spark type of every output column as the UDF returns it (score as double:
    empty when rejected), then ``reject_reason``."""
    dtypes = scorer.output_dtypes(explain)
    types = {c: "string" if d == "string" else "double" for c, d in dtypes.items()}
    return types | {"reject_reason": "string"}


def _struct(types: dict[str, str]) -> StructType:
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    spark_type = {"double": DoubleType(), "string": StringType()}
    return StructType([StructField(c, spark_type[t]) for c, t in types.items()])


def scoring_udf(
    spark: SparkSession,
    model_dir: str,
    types: dict[str, str],
    params: dict[str, Any],
    env_manager: str = "local",
    counts: bool = False,
) -> Any:
    """The scorer folder as a Spark UDF returning a struct of the output columns;
    ``counts``: with each batch's drift and unseen counts as the text field
    ``_batch_counts`` (:data:`lead_ml.scorer.BATCH_COUNTS_COLUMN`) too."""
    import mlflow

    quiet_environment()
    env: dict[str, str] = {}
    if params.get("activities_path"):
        # The job names its own activities file: the pyfunc may read it (a served
        # pyfunc reads no file a request names unless enabled; lead_ml.scorer).
        env[ALLOW_ACTIVITIES_ENV] = "1"
    if counts:
        env[BATCH_COUNTS_ENV] = "1"
        types = types | {BATCH_COUNTS_COLUMN: "string"}
    if env_manager == "local" and os.environ.get(MLFLOW_UDF_ENV, "") != "1":
        return pyfunc_udf(spark, model_dir, types, params, env)
    return mlflow.pyfunc.spark_udf(
        spark,
        model_dir,
        result_type=_struct(types),
        env_manager=env_manager,
        params=params,
        extra_env=env or None,
    )


#: Set to 1 to score through MLflow's ``spark_udf`` with env_manager "local" too
#: (as every other env_manager does) instead of :func:`pyfunc_udf`.
MLFLOW_UDF_ENV = "LEAD_ML_SPARK_MLFLOW_UDF"
#: Per Python worker: the pyfunc loaded, by (folder or archive, activities allowed).
_PYFUNCS: dict[tuple[str, bool], Any] = {}


def pyfunc_udf(
    spark: SparkSession,
    model_dir: str,
    types: dict[str, str],
    params: dict[str, Any],
    env: Mapping[str, str],
) -> Any:
    """The scorer folder's pyfunc as a Spark pandas UDF returning a struct of the
    output columns: what ``mlflow.pyfunc.spark_udf`` does with env_manager
    "local" (the folder shipped to the executors as MLflow ships it, loaded once
    per Python worker, ``env`` set around each call), but the folder is checked
    before it loads (:func:`lead_ml.scorer.load_pyfunc`), and the pyfunc's own
    ``predict`` takes the batch as it comes.

    MLflow's ``PyFuncModel.predict`` would first rebuild every input column
    value by value for the signature's any-type columns (a Python call per cell),
    and its struct conversion writes every text cell through ``str``; the
    batches here come typed by the contract check already (:func:`check_leads`).
    Each worker's numba kernels use ``spark.task.cpus`` threads (a task's share
    of the cores, not every core of the machine for each of them).
    """
    from pyspark.sql.functions import pandas_udf

    master = str(spark.sparkContext.master)
    where, shipped = model_dir, not master.startswith("local")
    if shipped:
        from mlflow.pyfunc.spark_model_cache import SparkModelCache

        where = SparkModelCache.add_local_model(spark, model_dir)
    threads = int(spark.conf.get("spark.task.cpus", "1") or 1)
    settings, kinds, allowed = dict(env), dict(types), ALLOW_ACTIVITIES_ENV in env
    arguments = dict(params)

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = _worker_pyfunc(where, shipped, allowed, threads)
        saved = {name: os.environ.get(name) for name in settings}
        os.environ.update(settings)
        try:
            for batch in batches:
                yield _udf_frame(model.predict(None, batch, arguments), kinds)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    # Any: pyspark's overloads of pandas_udf do not cover a function with a
    # returnType (and without pyspark installed, the plain lint, it is Any already).
    make_udf: Any = pandas_udf
    return make_udf(score, _struct(types))


def _worker_pyfunc(where: str, shipped: bool, allowed: bool, threads: int) -> Any:
    """The python model of a scorer folder in this Python worker (checked and
    loaded once: later tasks reuse it), its numba kernels on ``threads`` threads.
    ``shipped``: ``where`` is the archive MLflow's ``SparkModelCache`` added."""
    import numba

    config: Any = numba.config  # settings made at import: no stubs
    numba.set_num_threads(max(1, min(threads, config.NUMBA_NUM_THREADS)))
    key = (where, allowed)
    if key not in _PYFUNCS:
        folder = where
        if shipped:
            from mlflow.utils._spark_utils import _SparkDirectoryDistributor

            folder = _SparkDirectoryDistributor.get_or_extract(where)
        loaded = load_pyfunc(folder, allow_activities_path=allowed)
        _PYFUNCS[key] = loaded.unwrap_python_model()
    return _PYFUNCS[key]


def _udf_frame(scores: pd.DataFrame, types: Mapping[str, str]) -> pd.DataFrame:
    """The pyfunc's output as the UDF's struct takes it: numbers as float64
    (empty: NaN), text as text (empty: missing)."""
    columns: dict[str, Any] = {}
    for name, kind in types.items():
        values = scores[name]
        if kind == "double":
            columns[name] = values.to_numpy(dtype="float64", na_value=np.nan)
        else:  # Python text and None: what pyspark turns into an Arrow struct field
            columns[name] = values.astype(object).where(values.notna(), None)
    return pd.DataFrame(columns, index=scores.index)


#: What MLflow makes of a missing text value on its way into a Spark struct.
_MISSING_TEXT = ("nan", "<NA>", "None")


def _flatten(scored: DataFrame, types: dict[str, str], id_column: str) -> DataFrame:
    """The UDF's struct as columns; values only where scored, a reason where not.

    Rows rejected on the Spark side keep their id as given and their reason. MLflow
    turns a missing text value into the text "nan" or "<NA>" on its way into a
    Spark struct: emptiness is restored from whether the row was scored, and in a
    scored row's text columns (no band, reason or question reads "nan").
    """
    from pyspark.sql import functions as F

    out = F.col(OUTPUT)
    probability = out["probability"]
    early = F.col(REJECT).isNotNull()
    ok = ~early & probability.isNotNull() & ~F.isnan(probability)
    columns = [F.when(early, F.col(RAW_ID)).otherwise(out[id_column]).alias(id_column)]
    for name, kind in types.items():
        if name in (id_column, "reject_reason"):
            continue
        value = out[name]
        if kind == "string":
            value = F.when(~value.isin(*_MISSING_TEXT), value)
        value = F.when(ok, value).cast("long" if name == "score" else kind)
        columns.append(value.alias(name))
    reason = F.coalesce(F.col(REJECT), F.when(~ok, out["reject_reason"]))
    columns.append(reason.alias("reject_reason"))
    return scored.select(*columns)


def check_activities(scorer: Scorer, activities_path: str) -> None:
    """Refuse activities this scorer cannot use (its columns checked when local)."""
    if not activities_path:
        return
    # A remote file's header is the executors' to read; its columns checked there.
    header = (
        read_header(Path(activities_path), "the activities")
        if _is_local(activities_path)
        else list(scorer.activity_columns or [])
    )
    scorer.check_activity_columns(header, activities_path)


def score_dataframe(
    spark: SparkSession,
    leads: DataFrame,
    model_dir: str,
    explain: bool = True,
    activities_path: str = "",
    env_manager: str = "local",
    partitions: int = 0,
    tables: Sequence[JoinedTable] = (),
    decimal: str = ".",
    counts: Observation | None = None,
) -> DataFrame:
    """Score a Spark DataFrame of raw lead rows: one output row per input row.

    The rows come out in no particular order (join on the id column).
    ``activities_path`` must be a Parquet or CSV file every executor can read;
    ``env_manager`` is MLflow's (``local``: executors use the Python of the job,
    with lead-ml installed); ``partitions`` spreads the leads to score over that many
    tasks (by id). ``model_dir``: a scorer folder, or a model reference
    (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/RUN_ID/PATH``)
    resolved to its downloaded folder on the driver
    (:func:`lead_ml.scorer.resolve_scorer`), which Spark ships to the executors.
    ``tables``: the many-to-one tables training joined onto the deals
    (:func:`lead_ml.scorer.read_join_tables`, read on the driver), joined onto the
    leads by key on the executors as `lead-ml score --table` joins them.
    ``decimal=","``: the leads' text numbers are written with a decimal comma (a
    CSV in the training's dialect, :func:`input_dialect`).
    ``counts``: an unused ``pyspark.sql.Observation`` that the first action on the
    result (a write) fills with every batch's partial drift and unseen counts, as
    the pyfunc counted them while scoring (no second pass over the leads);
    :func:`merged_counts` adds them up.
    """
    from pyspark.sql import functions as F

    spark.conf.set("spark.sql.session.timeZone", "UTC")
    model_dir = str(resolve_scorer(model_dir).folder)
    scorer = load_scorer(model_dir)
    tables = joins_onto(scorer, tables, list(leads.columns), "leads")
    added = [c for table in tables for c in table.rows.columns]
    scorer.check_columns([*leads.columns, *added], "leads")
    check_activities(scorer, activities_path)
    contract = scorer.contract
    if ROW not in leads.columns:
        leads, _ = number_rows(leads)
    checked = check_leads(leads, contract, tables, decimal)
    repeated = repeated_ids(leads, contract, tables, decimal)
    if len(repeated) > MAX_REPEATED_IDS:
        if partitions:
            # The check shuffles the rows by id: into this many tasks, which then
            # score them (AQE would merge a small job's into one).
            checked = checked.repartition(partitions, F.col(KEY))
        checked = reject_duplicates(checked, contract.id_column)
    else:
        if partitions and leads.rdd.getNumPartitions() < partitions:
            checked = checked.repartition(partitions)  # fewer parts than cores
        checked = mark_repeats(checked, repeated, contract.id_column)
    types = output_types(scorer, explain)
    params = {"explain": explain, "activities_path": activities_path}
    predict = scoring_udf(
        spark, model_dir, types, params, env_manager, counts is not None
    )
    # Rejected rows reach the pyfunc too, without an id (which it rejects before
    # any feature is built): one pass over the checked rows, not one per outcome.
    inputs = [_column(name) for name in contract.columns]
    inputs[contract.columns.index(contract.id_column)] = F.when(
        F.col(REJECT).isNull(), _column(contract.id_column)
    ).alias(contract.id_column)
    scored = checked.withColumn(OUTPUT, predict(F.struct(*inputs)))
    if counts is not None:
        scored = observe_counts(scored, counts)
    return _flatten(scored, types, contract.id_column)


#: The name of the observed metric holding the batches' counts.
BATCHES = "batches"


def observe_counts(scored: DataFrame, counts: Observation) -> DataFrame:
    """``scored`` (the UDF's struct in ``_output``, counts included) observed into
    ``counts``: the list of every batch's counts, collected as the rows stream to
    the action (a write), on the task that scores them.

    An observation is an accumulator: a result task's update is applied once
    however often the task runs, but a task whose stage is re-run could count
    twice, and a task lost could count never; :func:`check_counts` compares the
    merged counts with the rows written and refuses any difference.
    """
    from pyspark.sql import functions as F

    text = F.col(OUTPUT)[BATCH_COUNTS_COLUMN]
    # MLflow writes a batch's other (empty) cells as the text "None" or "nan".
    batch = F.when(text.startswith("{"), text)
    return scored.observe(counts, F.collect_list(batch).alias(BATCHES))


def merged_counts(counts: Observation, scorer: Scorer) -> JobCounts:
    """The counts of every batch observed by :func:`observe_counts`, merged (after
    the action on the observed result has run)."""
    merged = JobCounts.of(scorer)
    for text in counts.get.get(BATCHES) or []:
        merged.add_text(str(text))
    return merged


def check_counts(counts: JobCounts, summary: BatchSummary) -> None:
    """Refuse drift and unseen counts that do not add up to the rows the job read
    and scored (a batch counted twice or lost): RuntimeError, naming both."""
    if (counts.rows_in, counts.scored) != (summary.rows_in, summary.scored):
        raise RuntimeError(
            f"the batches' drift and unseen counts cover {counts.rows_in} rows in "
            f"and {counts.scored} scored ({counts.parts} batches), but the job read "
            f"{summary.rows_in} and wrote {summary.scored} scored rows: a task's "
            "counts were lost or counted twice (a task run again?); the scores in "
            f"{summary.output} are complete, the drift is not known: run the job "
            "again"
        )


# --- the batch job ------------------------------------------------------------------


@dataclass(frozen=True)
class SparkJob:
    """Where a Spark batch job reads and writes, and how it scores."""

    #: A scorer folder or a model reference (see :func:`score_dataframe`).
    model: Path | str
    input: str
    output: str
    activities: str = ""
    explain: bool = True
    master: str = "local[*]"
    chunk_rows: int = 50_000
    #: ``--table NAME=PATH``: many-to-one tables to join by key (read on the
    #: driver: local files), name -> path.
    tables: Mapping[str, str] = field(default_factory=dict)


def check_paths(job: SparkJob) -> None:
    """Refuse outputs and activities the Spark job cannot use, before Spark starts."""
    if job.output.lower().endswith(".csv"):
        raise ScorerError(
            f"{job.output}: --engine spark writes a Parquet folder; name the output "
            "e.g. scores.parquet"
        )
    if job.activities and not job.activities.lower().endswith(FORMATS):
        raise ScorerError(
            f"{job.activities}: with --engine spark the activities must be one "
            ".parquet or .csv file (the scorer reads it whole on every executor)"
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
    scored + rejected is checked on what was written, and so are the batches'
    drift and unseen counts (:func:`check_counts`).
    """
    check_paths(job)
    spark = spark or start_session(job.master, job.chunk_rows)
    started = time.perf_counter()
    scorer = load_scorer(resolve_scorer(str(job.model)).folder)
    dialect = input_dialect(scorer, job.input)
    leads, rows_in = number_rows(read_leads(spark, job.input, dialect))
    if rows_in == 0:
        raise ScorerError(f"{job.input}: no rows to score; check the export")
    leads = with_row_numbers(leads, dialect)
    tables = read_join_tables(scorer, job.tables)
    from pyspark.sql import Observation

    folder = resolve_scorer(str(job.model)).folder
    counts = Observation("lead-ml batch counts") if counts_batches(folder) else None
    result = score_dataframe(
        spark,
        leads,
        str(job.model),
        job.explain,
        _absolute(job.activities),
        partitions=spark.sparkContext.defaultParallelism,
        tables=tables,
        decimal=dialect.decimal,
        counts=counts,
    )
    result.write.mode("overwrite").parquet(job.output)
    scored, rejected = _written_counts(spark, job.output)
    merged = JobCounts.of(scorer) if counts is None else merged_counts(counts, scorer)
    summary = BatchSummary(
        rows_in=rows_in,
        scored=scored,
        rejected=rejected,
        seconds=time.perf_counter() - started,
        output=job.output,
        rejects=f"{job.output} (rows with a reject_reason)",
        unmatched=unmatched_counts(leads, tables, scorer.contract.missing_values),
        unseen=merged.unseen,
        drift=merged.monitor.psi(),
    )
    _reconcile(summary)
    if counts is not None:
        check_counts(merged, summary)
    return summary


def counts_batches(folder: Path) -> bool:
    """Whether a scorer folder's pyfunc counts each batch's drift and unseen values
    (:data:`lead_ml.scorer.BATCH_COUNTS_ENV`): a folder exported by an earlier
    lead-ml does not, and is scored without them (as that lead-ml did)."""
    code = folder / MODEL_CODE_FILE
    return code.is_file() and BATCH_COUNTS_ENV in code.read_text(encoding="utf-8")


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
