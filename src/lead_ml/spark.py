"""Score leads on Spark with the exported scorer: each Arrow batch as a chunk of the
local job.

The scorer folder that ``lead-ml export`` writes is shipped to the executors (a zip
archive added to the Spark context, named by the model version) and loaded there
once per Python worker with lead_ml's own loader (:func:`lead_ml.scorer.load_scorer`:
every file checked against the manifest and pinned to the version the driver
checked; nothing in the folder is imported or executed, and MLflow is not imported
on the executors). One ``mapInArrow`` stage does all of a batch's work
(:class:`BatchScorer`): every batch of ``chunk_rows`` leads is checked, featurized,
scored and explained by :meth:`lead_ml.scorer.Scorer.score_chunk`, the local job's
own call, so a Spark job returns the columns of the local scorer, whatever the
source: the export's own id column, ``probability``, ``score``, ``band``,
``contrib_<dimension>``, ``base_value``, ``top_reasons``, ``next_question``,
``model_version``, and ``reject_reason`` (empty when scored). Every input row comes
out: scored, or with the reason it was rejected, in the local scorer's words.

What a batch cannot see is settled first:

- ids repeated across batches: the first valid row (in input order) keeps the id,
  later valid ones are rejected as ``duplicate <id column> 'X' (first seen at row
  N)``, as the local scorer words it. A pass over the id column alone (read by the
  contract's own code) finds the ids held more than once; only the rows holding one
  are checked whole to find each id's first valid row (:func:`repeated_rows`), and
  the reasons of the later ones are joined onto the leads by row number (broadcast:
  the leads are not shuffled by id, but when more than :data:`MAX_REPEATED_ROWS`
  rows repeat an id);
- rows are numbered by input position (:func:`number_rows`), so that reasons name
  "row N" as the local scorer does;
- CSV lines without one value per header column (Spark would pad or cut them).

The many-to-one tables training joined onto the deals (``--table NAME=PATH``) are
read on the driver as `lead-ml score` reads them and joined by key on the executors
before the check (:func:`table_joiner`): a lead without a match is scored with the
table's columns unknown, and :func:`unmatched_counts` counts such leads as the local
job does (the summary's ``leads_without_match``).

The summary carries what the local job's does: rows in = scored + rejected
(counted on what was written), and the drift (PSI of every feature and of the
score against the training window) and unseen-category counts. Each batch counts
them as the local job counts a chunk (:class:`lead_ml.scorer.JobCounts`); they
travel with the batch's output as one text cell, are collected by an observation
of the write (:func:`observe_counts`: no second pass over the leads) and merged on
the driver (:func:`merged_counts`); merged counts that do not cover exactly the
rows read and scored (a task counted twice or lost) fail the job
(:func:`check_counts`).

The executors run lead-ml's own code, so lead-ml must be installed there. The
activities file (``activities_path``) is read once per Python worker and kept
while it scores the job's batches. Time stamps are read as UTC, as the local scorer
does: the session's time zone is set to UTC.

Needs the ``spark`` extra (``pip install 'lead-ml[spark]'``) and Java 17.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lead_ml.batch import BatchSummary
from lead_ml.schema import LeadContract, id_text
from lead_ml.scorer import (
    VERSION_PREFIX,
    JobCounts,
    JoinedTable,
    Scorer,
    joins_onto,
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
    read_table,
)
from lead_ml.vocab import ScorerError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, Observation, SparkSession
    from pyspark.sql.types import StructType

#: Columns the job adds to the leads; a source column may not be named so.
ROW = "_row"
REJECT = "_reject"
#: The id as the contract reads it (what duplicates compare), and quoted for reasons.
KEY = "_key"
SHOWN_KEY = "_shown_key"
FIRST = "_first"
MALFORMED = "_malformed_line"
#: A batch's drift and unseen counts (:class:`lead_ml.scorer.JobCounts` as text),
#: on its first output row.
COUNTS = "_batch_counts"
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


def table_joiner(
    tables: Sequence[JoinedTable], missing: Sequence[str]
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Lead rows with the many-to-one tables' columns joined by key, as
    :meth:`lead_ml.scorer.JoinedTable.join` joins them for `lead-ml score` (the
    same key reading; a lead without a match gets empty columns: unknown).

    The tables travel with the function as plain frames (read on the driver).
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


@dataclass(frozen=True)
class LeadReader:
    """How an executor reads a batch of raw lead rows before the contract: the
    tables of ``--table`` joined (:func:`table_joiner`), numbers written with a
    decimal comma (1.234,5) read as the local job reads a CSV in that dialect
    (:func:`lead_ml.tables.decimal_text`), and CSV lines that were not one value
    per header column found."""

    contract: LeadContract
    join: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    decimal: str = "."

    def read(self, leads: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """A batch (the leads' columns, ``_row``, from CSV ``_malformed_line``) as
        (the rows as the local job's chunk holds them, their row numbers, and per
        row the reason its CSV line was malformed or None)."""
        rows = leads[ROW].to_numpy(np.int64)
        reasons = np.full(len(leads), None, dtype=object)
        if MALFORMED in leads.columns:
            line = leads[MALFORMED].to_numpy(dtype=object)
            broken = pd.notna(line)
            reasons[broken] = [
                f"{MALFORMED_LINE}: {quote_value(t)}" for t in line[broken]
            ]
        if self.join is not None:
            leads = self.join(leads)
        raw = leads[self.contract.columns]
        if self.decimal == ",":
            raw = raw.apply(decimal_text)
        return raw, rows, reasons

    def check(self, leads: pd.DataFrame) -> pd.DataFrame:
        """The batch checked row by row (see :func:`check_frame`)."""
        raw, rows, malformed = self.read(leads)
        contract = self.contract
        typed, reasons = contract.check_rows(raw)
        broken = pd.notna(malformed)
        reasons[broken] = malformed[broken]
        ids = typed[contract.id_column].astype("string")
        absent = ids.isna().tolist()
        shown = [
            None if gone else quote_value(i)
            for i, gone in zip(ids.astype(object).tolist(), absent, strict=True)
        ]
        return pd.DataFrame(
            {
                ROW: rows,
                KEY: ids,
                SHOWN_KEY: pd.Series(shown, index=raw.index, dtype="string"),
                REJECT: pd.Series(reasons, index=raw.index, dtype="string"),
            }
        )

    def keys(self, leads: pd.DataFrame) -> pd.DataFrame:
        """The batch's ids as the contract reads them (``_key``, rows without one
        left out) with their row numbers: the check of the id column alone."""
        contract = self.contract
        column = contract.id_column
        alone = LeadContract(
            column,
            {column: contract.kinds[column]},
            missing_values=contract.missing_values,
        )
        ids = leads[[column]]
        if self.decimal == ",":
            ids = ids.apply(decimal_text)
        typed, _ = alone.check_rows(ids)
        keys = typed[column].astype("string")
        held = keys.notna().to_numpy()
        return pd.DataFrame({KEY: keys[held], ROW: leads[ROW].to_numpy(np.int64)[held]})


def _arrow_map(
    function: Callable[[pd.DataFrame], pd.DataFrame], schema: pa.Schema
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """``function`` of pandas frames as ``mapInArrow`` runs it: each batch to pandas
    as the local job converts a chunk (``pa.Table.to_pandas``), the result back."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            frame = pa.Table.from_batches([batch]).to_pandas()
            out = pa.Table.from_pandas(function(frame), schema, preserve_index=False)
            yield from out.to_batches()

    return run


_CHECKED = pa.schema(
    [
        pa.field(ROW, pa.int64(), nullable=False),
        (KEY, pa.string()),
        (SHOWN_KEY, pa.string()),
        (REJECT, pa.string()),
    ]
)
_KEYS = pa.schema([(KEY, pa.string()), pa.field(ROW, pa.int64(), nullable=False)])


def _spark_schema(schema: pa.Schema) -> StructType:
    """The Spark schema ``mapInArrow`` is told of a batch function's Arrow output."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


def check_frame(contract: LeadContract, leads: pd.DataFrame) -> pd.DataFrame:
    """One batch of raw lead rows checked by the contract, one row out per row in.

    ``leads`` holds the contract's columns, ``_row`` and, from CSV, ``_malformed_line``.
    Out come ``_row``, ``_key`` (the id as the contract reads it), ``_shown_key`` (it
    quoted for a reason) and ``_reject``: the first reason the row breaks the
    contract on its own (:meth:`lead_ml.schema.LeadContract.check_rows`, the local
    job's check), or None. Repeated ids are left to :func:`repeated_rows`.
    """
    return LeadReader(contract).check(leads)


def _input_columns(
    leads: DataFrame, contract: LeadContract, tables: Sequence[JoinedTable]
) -> list[str]:
    """The columns of the leads a batch reads: the contract's (but those the tables
    add), the tables' keys, ``_row`` and, from CSV, ``_malformed_line``."""
    ours = {ROW, REJECT, KEY, SHOWN_KEY, FIRST, MALFORMED, COUNTS}
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
    return names


def _reader(
    contract: LeadContract, tables: Sequence[JoinedTable], decimal: str
) -> LeadReader:
    join = table_joiner(tables, contract.missing_values) if tables else None
    return LeadReader(contract, join, decimal)


def check_leads(
    leads: DataFrame,
    contract: LeadContract,
    tables: Sequence[JoinedTable] = (),
    decimal: str = ".",
) -> DataFrame:
    """Every lead checked by the contract on the executors (see :func:`check_frame`).

    ``leads`` must carry the contract's columns (but those of ``tables``, joined
    first by key: :func:`table_joiner`) and ``_row``; other columns are left out.
    ``decimal``: the decimal mark of text numbers (see :class:`LeadReader`).
    """
    selected = leads.select(
        *[_column(n) for n in _input_columns(leads, contract, tables)]
    )
    reader = _reader(contract, tables, decimal)
    return selected.mapInArrow(
        _arrow_map(reader.check, _CHECKED), _spark_schema(_CHECKED)
    )


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


#: Rows holding an id that another row holds too, beyond which the first valid row
#: of each id is found by a shuffle of every row by id (and the reasons joined by a
#: shuffle) rather than from those rows alone, broadcast.
MAX_REPEATED_ROWS = 200_000


def repeated_rows(
    leads: DataFrame,
    contract: LeadContract,
    tables: Sequence[JoinedTable] = (),
    decimal: str = ".",
) -> tuple[DataFrame | None, bool]:
    """The rows that repeat the id of an earlier valid row, with the local
    scorer's reason (``_row``, ``_reject``: ``duplicate <id column> 'X' (first seen
    at row N)``), and whether they are few (at most :data:`MAX_REPEATED_ROWS`
    rows hold a repeated id: the frame is small enough to broadcast); None when no
    id is held twice.

    A pass over the id column alone (read by the contract's own check, as every
    row's is) counts the rows of each id; only the rows holding an id counted more
    than once are checked whole, to know which is valid and so the first valid row
    of each id, as the local job's id pre-pass reads the ids alone
    (lead_ml.batch.IdIndex).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spark = leads.sparkSession
    reader = LeadReader(contract, None, decimal)
    ids = leads.select(_column(contract.id_column), ROW)
    keys = ids.mapInArrow(_arrow_map(reader.keys, _KEYS), _spark_schema(_KEYS))
    # A count per id, not the list of its rows: most exports repeat no id, and then
    # this aggregate is all the check costs (a list of rows per id cost more than
    # the count).
    held = keys.groupBy(KEY).agg(F.count("*").alias("n")).where(F.col("n") > 1)
    counted = held.limit(MAX_REPEATED_ROWS + 1).collect()
    if not counted:
        return None, True
    # Every repeated id is held by 2 rows or more: MAX_REPEATED_ROWS + 1 ids
    # already hold too many rows.
    few = sum(int(row[1]) for row in counted) <= MAX_REPEATED_ROWS
    holding = leads
    if few:  # the rows holding a repeated id: the id pass again, on those ids
        repeated = spark.createDataFrame(
            [(row[0],) for row in counted], f"{KEY} string"
        )
        found = keys.join(F.broadcast(repeated), KEY).select(ROW).collect()
        wanted = spark.createDataFrame([(row[0],) for row in found], f"{ROW} long")
        holding = leads.join(F.broadcast(wanted), ROW)
    checked = check_leads(holding, contract, tables, decimal).where(
        F.col(KEY).isNotNull()
    )
    valid = F.col(REJECT).isNull()
    first = F.min(F.when(valid, F.col(ROW))).over(Window.partitionBy(KEY))
    marked = checked.withColumn(FIRST, first)
    later = marked.where(valid & (F.col(ROW) != F.col(FIRST)))
    reason = F.concat(
        F.lit(f"duplicate {contract.id_column} "),
        F.col(SHOWN_KEY),
        F.lit(" (first seen at row "),
        F.col(FIRST).cast("string"),
        F.lit(")"),
    )
    repeats = later.select(ROW, reason.alias(REJECT))
    if not few:
        return repeats, False
    rows = repeats.collect()
    if not rows:
        return None, True
    table = spark.createDataFrame(
        [(row[0], row[1]) for row in rows], f"{ROW} long, {REJECT} string"
    )
    return table, True


# --- scoring ------------------------------------------------------------------------


def output_types(scorer: Scorer, explain: bool) -> dict[str, str]:
    """Spark type of every output column (``score`` long, empty when rejected),
    then ``reject_reason``."""
    dtypes = scorer.output_dtypes(explain)
    types = {c: "string" if d == "string" else "double" for c, d in dtypes.items()}
    return types | {"score": "long", "reject_reason": "string"}


_ARROW_TYPES = {"double": pa.float64(), "long": pa.int64(), "string": pa.string()}


#: Per driver: the scorer archives added to a Spark application, by (application
#: id, model version): the file name the executors find it under.
_SHIPPED: dict[tuple[str, str], str] = {}


def ship_scorer(spark: SparkSession, folder: Path, version: str) -> str:
    """The name under which the executors find a checked scorer folder
    (``SparkFiles.get``): the folder as a zip archive named by its model version,
    added to the application once (``SparkContext.addArchive``; the executors
    unpack it), removed from the driver's disk when this process ends."""
    context = spark.sparkContext
    key = (str(context.applicationId), version)
    if key not in _SHIPPED:
        name = f"lead-ml-scorer-{version.removeprefix(VERSION_PREFIX)[:16]}"
        scratch = tempfile.mkdtemp(prefix="lead-ml-spark-")
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        archive = shutil.make_archive(str(Path(scratch, name)), "zip", folder)
        context.addArchive(archive)
        _SHIPPED[key] = Path(archive).name
    return _SHIPPED[key]


#: Per Python worker: the scorers loaded, by (archive name, model version), and
#: the activity logs read, by (path, size, modification time, model version).
_SCORERS: dict[tuple[str, str], Scorer] = {}
_ACTIVITIES: dict[tuple[str, int, int, str], pd.DataFrame] = {}


@dataclass(frozen=True)
class BatchScorer:
    """What each Python worker does with its batches of raw lead rows: read them
    (:class:`LeadReader`), reject the rows that repeat an earlier valid row's id
    (their reason in ``_reject``, from :func:`repeated_rows`) and score the rest
    as the local job scores a chunk (:meth:`lead_ml.scorer.Scorer.score_chunk`:
    the contract's check, features, scores, reasons), one output row per input
    row, with the batch's drift and unseen counts in ``_batch_counts``."""

    #: The scorer archive's name (:func:`ship_scorer`) and its model version.
    archive: str
    version: str
    reader: LeadReader
    #: Output column -> Spark type (:func:`output_types`).
    types: dict[str, str]
    explain: bool = True
    activities_path: str = ""
    #: Threads of each worker's numba kernels (a task's share of the cores).
    threads: int = 1

    def schema(self) -> pa.Schema:
        """The Arrow schema of a scored batch: the output, then ``_batch_counts``."""
        fields = [(c, _ARROW_TYPES[t]) for c, t in self.types.items()]
        return pa.schema([*fields, (COUNTS, pa.string())])

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Score every batch of a task (what ``mapInArrow`` calls)."""
        scorer = self.scorer()
        log = self.activities(scorer)
        schema = self.schema()
        for batch in batches:
            yield self.score(scorer, log, batch, schema)

    def scorer(self) -> Scorer:
        """The scorer in this worker: the shipped folder checked and loaded once
        (pinned to the driver's model version), later tasks reuse it."""
        key = (self.archive, self.version)
        if key not in _SCORERS:
            import numba
            from pyspark import SparkFiles

            config: Any = numba.config  # settings made at import: no stubs
            numba.set_num_threads(max(1, min(self.threads, config.NUMBA_NUM_THREADS)))
            folder = Path(SparkFiles.get(self.archive))
            _SCORERS[key] = load_scorer(folder, expect_version=self.version)
        return _SCORERS[key]

    def activities(self, scorer: Scorer) -> pd.DataFrame | None:
        """The job's activity log read as :meth:`lead_ml.scorer.Scorer.score`
        reads one (None without one), once per worker while the file is unchanged."""
        if not self.activities_path:
            return None
        path = Path(self.activities_path)
        status = path.stat()
        key = (str(path), status.st_size, status.st_mtime_ns, self.version)
        if key not in _ACTIVITIES:
            raw = read_table(path, "activities_path")
            log = scorer.read_activities(raw)[0] if len(raw) else scorer.no_activities()
            _ACTIVITIES.clear()  # one job's log at a time
            _ACTIVITIES[key] = log
        return _ACTIVITIES[key]

    def score(
        self,
        scorer: Scorer,
        log: pd.DataFrame | None,
        batch: pa.RecordBatch,
        schema: pa.Schema,
    ) -> pa.RecordBatch:
        """One batch's output rows (input order) and counts."""
        frame = pa.Table.from_batches([batch]).to_pandas()  # as a local job's chunk
        raw, rows, reasons = self.reader.read(frame)
        if REJECT in frame.columns:  # repeats of an earlier valid row
            repeated = frame[REJECT].to_numpy(dtype=object)
            later = pd.notna(repeated)
            reasons[later] = repeated[later]
        fresh = np.flatnonzero(pd.isna(reasons))
        result = scorer.score_chunk(
            raw.iloc[fresh], log, self.explain, "leads", rows=rows[fresh]
        )
        # Rejects come numbered as in the file: back to their place in the batch.
        # (No id repeats among the fresh rows: of each repeated id only its first
        # valid row is fresh.)
        numbers = rows[fresh]  # unique, in no particular order after a shuffle
        order = np.argsort(numbers, kind="stable")
        found = np.searchsorted(numbers[order], result.rejects["row"].to_numpy(int))
        reasons[fresh[order[found]]] = result.rejects["reason"].to_numpy(dtype=object)
        counts = JobCounts.of(scorer)
        counts.add(scorer, result, len(frame))
        return self.output(raw, result.output, reasons, counts, schema)

    def output(
        self,
        raw: pd.DataFrame,
        scored: pd.DataFrame,
        reasons: np.ndarray,
        counts: JobCounts,
        schema: pa.Schema,
    ) -> pa.RecordBatch:
        """The output of a batch of ``len(raw)`` rows: ``scored`` (the scorer's
        output of the rows it scored, indexed by position in the batch) in place, empty
        values and the reason in the others, whose id is shown as given."""
        n = len(raw)
        where = np.full(n, -1, dtype=np.int64)
        where[scored.index.to_numpy(np.int64)] = np.arange(len(scored))
        taken = pa.array(where, mask=where < 0)
        columns = [c for c in self.types if c != "reject_reason"]
        table = pa.Table.from_pandas(scored[columns], preserve_index=False)
        arrays = [table.column(c).combine_chunks().take(taken) for c in columns]
        id_column = self.reader.contract.id_column
        given = pa.array(raw[id_column].astype("string"), type=pa.string())
        position = columns.index(id_column)
        arrays[position] = pc.if_else(
            pa.array(where >= 0), arrays[position].cast(pa.string()), given
        )
        arrays.append(pa.array(reasons, type=pa.string(), from_pandas=True))
        cells = np.full(n, None, dtype=object)
        cells[:1] = counts.as_text()
        arrays.append(pa.array(cells, type=pa.string()))
        types = [f.type for f in schema]
        arrays = [a.cast(t) for a, t in zip(arrays, types, strict=True)]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)


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
    partitions: int = 0,
    tables: Sequence[JoinedTable] = (),
    decimal: str = ".",
    counts: Observation | None = None,
) -> DataFrame:
    """Score a Spark DataFrame of raw lead rows: one output row per input row.

    The rows come out in no particular order (join on the id column).
    ``activities_path`` must be a Parquet or CSV file every executor can read;
    ``partitions`` spreads the leads over at least that many tasks.
    ``model_dir``: a scorer folder, or a model reference (``models:/NAME@ALIAS``,
    ``models:/NAME/VERSION``, ``runs:/RUN_ID/PATH``) resolved to its downloaded
    folder on the driver (:func:`lead_ml.scorer.resolve_scorer`), which is checked
    there and shipped to the executors (:func:`ship_scorer`).
    ``tables``: the many-to-one tables training joined onto the deals
    (:func:`lead_ml.scorer.read_join_tables`, read on the driver), joined onto the
    leads by key on the executors as `lead-ml score --table` joins them.
    ``decimal=","``: the leads' text numbers are written with a decimal comma (a
    CSV in the training's dialect, :func:`input_dialect`).
    ``counts``: an unused ``pyspark.sql.Observation`` that the first action on the
    result (a write) fills with every batch's partial drift and unseen counts, as
    counted while scoring (no second pass over the leads); :func:`merged_counts`
    adds them up.
    """
    from pyspark.sql import functions as F

    spark.conf.set("spark.sql.session.timeZone", "UTC")
    folder = resolve_scorer(model_dir).folder
    scorer = load_scorer(folder)
    tables = joins_onto(scorer, tables, list(leads.columns), "leads")
    added = [c for table in tables for c in table.rows.columns]
    scorer.check_columns([*leads.columns, *added], "leads")
    check_activities(scorer, activities_path)
    contract = scorer.contract
    if ROW not in leads.columns:
        leads, _ = number_rows(leads)
    names = _input_columns(leads, contract, tables)
    repeats, few = repeated_rows(leads, contract, tables, decimal)
    selected = leads.select(*[_column(name) for name in names])
    if partitions and leads.rdd.getNumPartitions() < partitions:
        selected = selected.repartition(partitions, F.col(ROW))  # fewer than cores
    if repeats is not None:
        selected = selected.join(F.broadcast(repeats) if few else repeats, ROW, "left")
    types = output_types(scorer, explain)
    batches = BatchScorer(
        ship_scorer(spark, folder, scorer.model_version),
        scorer.model_version,
        _reader(contract, tables, decimal),
        types,
        explain,
        activities_path,
        int(spark.conf.get("spark.task.cpus", "1") or 1),
    )
    scored = selected.mapInArrow(batches, _spark_schema(batches.schema()))
    if counts is not None:
        scored = observe_counts(scored, counts)
    return scored.drop(COUNTS)


#: The name of the observed metric holding the batches' counts.
BATCHES = "batches"


def observe_counts(scored: DataFrame, counts: Observation) -> DataFrame:
    """``scored`` (each batch's counts in ``_batch_counts``) observed into
    ``counts``: the list of every batch's counts, collected as the rows stream to
    the action (a write), on the task that scores them.

    An observation is an accumulator: a result task's update is applied once
    however often the task runs, but a task whose stage is re-run could count
    twice, and a task lost could count never; :func:`check_counts` compares the
    merged counts with the rows written and refuses any difference.
    """
    from pyspark.sql import functions as F

    return scored.observe(counts, F.collect_list(F.col(COUNTS)).alias(BATCHES))


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

    counts = Observation("lead-ml batch counts")
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
    merged = merged_counts(counts, scorer)
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
    check_counts(merged, summary)
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
