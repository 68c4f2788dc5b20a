"""The batch scoring job: stream a file of leads through a scorer in bounded memory.

Leads are read in chunks (Parquet row batches or CSV chunks, only the columns the
scorer needs); each chunk is validated, featurized, scored and appended to a
temporary output file that is renamed into place only when every row is accounted
for: rows in = scored + rejected, or the job fails.

Duplicate ids are caught across chunks without holding every id: a first pass reads
the id column alone and writes 64-bit hashes of the ids to disk (:class:`IdIndex`),
spread over buckets that are then checked one at a time for hashes occurring twice.
Only those repeated hashes are remembered while scoring, so memory does not grow
with the file (10 million leads: ~160 MB of temporary files beside the output).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lead_ml.scorer import PSI_WARNING, DriftMonitor, Scored, Scorer, ScorerError
from lead_ml.tables import (
    quote_value,
    read_chunks,
    read_header,
    readable,
    reject_frame,
)
from lead_ml.vocab import REJECT_COLUMNS, ContractError

DEFAULT_CHUNK_ROWS = 50_000
#: Fewer scored rows than this and PSI is mostly sampling noise (100 leads drawn from
#: the training window itself give PSI ~0.8 on a 46-level category, 1,000 ~0.05):
#: PSI is still reported, but no drift warning is raised.
DRIFT_MIN_ROWS = 1_000


@dataclass
class BatchSummary:
    """What a batch run did: counts that reconcile, speed, drift."""

    rows_in: int = 0
    scored: int = 0
    rejected: int = 0
    unseen: dict[str, int] = field(default_factory=dict)
    activities_rejected: int = 0
    seconds: float = 0.0
    drift: dict[str, float] = field(default_factory=dict)
    output: str = ""
    rejects: str = ""

    @property
    def rows_per_second(self) -> float:
        """Rows in per second of wall time."""
        return self.rows_in / self.seconds if self.seconds else 0.0

    @property
    def drift_checked(self) -> bool:
        """Whether enough rows were scored for PSI to tell drift from noise."""
        return self.scored >= DRIFT_MIN_ROWS

    @property
    def drift_warnings(self) -> list[str]:
        """Inputs (and the score) whose PSI against the training window exceeds 0.25
        (none when too few rows were scored to tell)."""
        if not self.drift_checked:
            return []
        return [name for name, psi in self.drift.items() if psi > PSI_WARNING]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready view."""
        return {
            "rows_in": self.rows_in,
            "scored": self.scored,
            "rejected": self.rejected,
            "unseen_categories": self.unseen,
            "activities_rejected": self.activities_rejected,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second, 1),
            "drift_psi": {k: round(v, 4) for k, v in self.drift.items()},
            "drift_warnings": self.drift_warnings,
            "drift_checked": self.drift_checked,
            "drift_min_rows": DRIFT_MIN_ROWS,
            "output": self.output,
            "rejects": self.rejects,
        }


class SeenIds:
    """Sorted 64-bit hashes of ids scored so far (only those of ids the file holds
    more than once: see :class:`IdIndex`).

    Two different ids share a hash with odds of about n^2 / 2^65 (10 million ids:
    3 in a million), in which case the later lead is rejected as a duplicate.
    """

    def __init__(self) -> None:
        self.hashes = np.empty(0, dtype=np.uint64)

    @staticmethod
    def hash(ids: pd.Series) -> np.ndarray:
        """Stable 64-bit hashes of id strings."""
        return pd.util.hash_array(ids.astype("string").fillna("").to_numpy(object))

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        """Which hashes were seen before."""
        position = np.searchsorted(self.hashes, hashes)
        found = position < len(self.hashes)
        found[found] = self.hashes[position[found]] == hashes[found]
        return found

    def add(self, hashes: np.ndarray) -> None:
        """Remember hashes (kept sorted; insertion is linear in what is kept)."""
        new = np.unique(hashes)
        self.hashes = np.insert(self.hashes, np.searchsorted(self.hashes, new), new)


#: The id hashes are spread over 2^ID_BUCKET_BITS buckets on disk by their top bits;
#: looking for repeats holds one bucket at a time (10 million leads: ~1.3 MB).
ID_BUCKET_BITS = 6
ID_BUCKETS = 1 << ID_BUCKET_BITS
HASH_FILE = "hashes.u64"


class IdIndex:
    """The 64-bit hashes of a file's ids in file order, on disk, and the sorted
    hashes that occur more than once (the only ids a later row can repeat).

    Built by :meth:`build` in a pass over the id column alone; the batch job then
    reads each chunk's hashes back (:meth:`hashes`) instead of hashing again.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.rows = 0
        self.repeated = np.empty(0, dtype=np.uint64)
        self._reader: Any = None

    @classmethod
    def build(
        cls, path: Path, chunk_rows: int, folder: Path, id_column: str
    ) -> IdIndex:
        """Hash every id (column ``id_column``) of the file at ``path`` into files
        in ``folder``."""
        index = cls(folder)
        shift = np.uint64(64 - ID_BUCKET_BITS)
        buckets = [open(folder / f"bucket{b}.u64", "wb") for b in range(ID_BUCKETS)]
        try:
            with open(folder / HASH_FILE, "wb") as out:
                for chunk in read_chunks(path, [id_column], chunk_rows):
                    hashes = SeenIds.hash(chunk[id_column])
                    out.write(hashes.tobytes())
                    index.rows += len(hashes)
                    bucket = hashes >> shift
                    order = np.argsort(bucket, kind="stable")
                    starts = np.searchsorted(bucket[order], np.arange(ID_BUCKETS + 1))
                    for b, file in enumerate(buckets):
                        file.write(hashes[order[starts[b] : starts[b + 1]]].tobytes())
        finally:
            for file in buckets:
                file.close()
        repeated = []
        for b in range(ID_BUCKETS):
            name = folder / f"bucket{b}.u64"
            values = np.sort(np.fromfile(name, dtype=np.uint64))
            name.unlink()
            twice = values[1:][values[1:] == values[:-1]]
            repeated.append(np.unique(twice))
        index.repeated = np.concatenate(repeated)  # buckets ascend: sorted
        return index

    def hashes(self, n: int) -> np.ndarray:
        """The hashes of the next ``n`` ids (the file's rows in order)."""
        if self._reader is None:
            self._reader = open(self.folder / HASH_FILE, "rb")
        values = np.fromfile(self._reader, dtype=np.uint64, count=n)
        if len(values) != n:
            raise RuntimeError(
                f"the id index ran out at {n} more rows: the input changed while "
                "it was being scored; run the job again"
            )
        return values

    def is_repeated(self, hashes: np.ndarray) -> np.ndarray:
        """Which of these hashes belong to ids the file holds more than once."""
        position = np.minimum(
            np.searchsorted(self.repeated, hashes), max(len(self.repeated) - 1, 0)
        )
        if not len(self.repeated):
            return np.zeros(len(hashes), dtype=bool)
        return np.asarray(self.repeated[position] == hashes)

    def close(self) -> None:
        """Release the hash file (the caller removes the folder)."""
        if self._reader is not None:
            self._reader.close()


class AtomicWriter:
    """Appends frames to a temporary file; commit() renames it into place."""

    def __init__(self, path: Path, empty: pd.DataFrame) -> None:
        self.path = path
        self.suffix = path.suffix.lower()
        if self.suffix not in (".parquet", ".csv"):
            raise ScorerError(
                f"{path}: the output must be .parquet or .csv, not "
                f"{self.suffix or 'none'}"
            )
        self.tmp = path.with_name(f".{path.name}.partial")
        self.empty = empty
        self.schema = pa.Schema.from_pandas(empty, preserve_index=False)
        self.parquet: pq.ParquetWriter | None = None
        self.started = False
        self.rows = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp.unlink(missing_ok=True)

    def write(self, frame: pd.DataFrame) -> None:
        """Append a frame, cast to the columns and dtypes of ``empty``."""
        if self.started and len(frame) == 0:
            return
        frame = frame[list(self.empty.columns)].astype(self.empty.dtypes.to_dict())
        if self.suffix == ".csv":
            frame.to_csv(self.tmp, mode="a", header=not self.started, index=False)
        else:
            if self.parquet is None:
                self.parquet = pq.ParquetWriter(
                    self.tmp, self.schema, compression="zstd"
                )
            self.parquet.write_table(
                pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
            )
        self.started = True
        self.rows += len(frame)

    def commit(self) -> None:
        """Finish the file and move it into place (no rows if nothing came)."""
        if not self.started:
            self.write(self.empty)
        if self.parquet is not None:
            self.parquet.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Drop the temporary file: a crash never leaves a file that looks done."""
        if self.parquet is not None:
            self.parquet.close()
        self.tmp.unlink(missing_ok=True)


#: Rows per part when an activities file is split for scoring (_activity_parts).
ACTIVITY_PART_ROWS = 250_000
#: Bytes of id hashes kept to skip parts; parts past it are read for every chunk.
ACTIVITY_INDEX_BYTES = 64 * 2**20


@dataclass(eq=False)
class _ActivityParts:
    """An activities file split once into Arrow files in ``folder``, with each
    one's id hashes (None once the index budget is spent: read for every chunk)."""

    key: tuple[str, int, int, tuple[str, ...]]
    folder: str
    parts: list[tuple[str, np.ndarray | None]] = field(default_factory=list)


_ACTIVITY_PARTS: list[_ActivityParts] = []  # the file split last, in this process


def _activity_parts(path: Path, columns: list[str]) -> _ActivityParts:
    """The activities file (``columns``: its key, time stamp and type) in parts,
    read (and, for CSV, parsed) once per process and file version; each chunk of
    leads then opens only the parts holding its ids. Activities exported in time or
    deal order cluster, so most parts are skipped."""
    import shutil
    import weakref

    import pyarrow.csv as pcsv
    import pyarrow.dataset as ds

    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, tuple(columns))
    if _ACTIVITY_PARTS and _ACTIVITY_PARTS[0].key == key:
        return _ACTIVITY_PARTS[0]
    _ACTIVITY_PARTS.clear()  # drops the previous file's parts (and their folder)
    split = _ActivityParts(key, tempfile.mkdtemp(prefix="lead-ml-activities-"))
    weakref.finalize(split, shutil.rmtree, split.folder, ignore_errors=True)
    fmt: Any = "parquet"
    if path.suffix.lower() != ".parquet":
        # Every cell as text, as lead-ml reads any CSV (the scorer converts and
        # rejects row by row): types inferred from the first rows failed the whole
        # job on one unreadable time stamp further down, and read ids as numbers.
        text = pcsv.ConvertOptions(column_types=dict.fromkeys(columns, pa.string()))
        fmt = ds.CsvFileFormat(convert_options=text)
    pending: list[pa.RecordBatch] = []
    budget = ACTIVITY_INDEX_BYTES
    with readable(path, "the activities"):
        scanner = ds.dataset(path, format=fmt).scanner(
            columns=list(columns), batch_size=ACTIVITY_PART_ROWS
        )
        for batch in scanner.to_batches():
            pending.append(batch)
            if sum(b.num_rows for b in pending) >= ACTIVITY_PART_ROWS:
                budget = _write_part(split, pending, budget, columns[0])
                pending = []
        if pending:
            _write_part(split, pending, budget, columns[0])
    _ACTIVITY_PARTS.append(split)
    return split


def _write_part(
    split: _ActivityParts, batches: list[pa.RecordBatch], budget: int, key: str
) -> int:
    """Write one part (uncompressed Arrow: read back by memory map); return the
    index budget left."""
    table = pa.Table.from_batches(batches)
    name = os.path.join(split.folder, f"{len(split.parts)}.arrow")
    with pa.OSFile(name, "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
        out.write_table(table)
    held = None
    if budget > 0:
        ids = table[key].cast(pa.string()).to_pandas()
        held = np.unique(SeenIds.hash(ids))
        budget -= held.nbytes
    split.parts.append((name, held))
    return budget


def _overlap(held: np.ndarray, hashes: np.ndarray) -> bool:
    """Whether the sorted hashes ``held`` share any value with ``hashes``."""
    position = np.minimum(np.searchsorted(held, hashes), max(len(held) - 1, 0))
    return bool(len(held) and (held[position] == hashes).any())


def _chunk_activities(
    scorer: Scorer, path: Path | None, ids: pd.Series, hashes: np.ndarray
) -> tuple[pd.DataFrame | None, int]:
    """The activities of these leads, read by the scorer, and how many of them were
    left out (unusable rows). ``hashes``: the ids' hashes (:meth:`SeenIds.hash`).

    The file is split into parts once (see :func:`_activity_parts`) rather than
    scanned whole for every chunk, which made a job quadratic in its size.
    """
    columns = scorer.activity_columns
    if path is None or columns is None:
        return None, 0
    import pyarrow.compute as pc

    split = _activity_parts(path, columns)
    notna = ids.notna().to_numpy()
    present = ids[notna]
    wanted = pa.array(present.astype(str).tolist(), type=pa.string())
    distinct = np.unique(np.asarray(hashes)[notna])
    tables = []
    for name, held in split.parts:
        if held is not None and not _overlap(held, distinct):
            continue
        with pa.memory_map(name) as source:
            part = pa.ipc.open_file(source).read_all()
        keep = pc.is_in(part[columns[0]].cast(pa.string()), value_set=wanted)
        tables.append(part.filter(keep))
    if not tables:
        return None, 0
    return scorer.read_activities(pa.concat_tables(tables).to_pandas(), str(path))


def _score_one(
    scorer: Scorer,
    chunk: pd.DataFrame,
    first_row: int,
    ids: tuple[np.ndarray, IdIndex, SeenIds],
    activities: pd.DataFrame | None,
    options: tuple[bool, str],
) -> tuple[Scored, pd.DataFrame]:
    """Score a chunk whose first row is row ``first_row`` of the file; its rejects
    (numbered in the file) include ids already scored in an earlier chunk. ``ids``:
    the chunk's id hashes, the file's id index and the repeated ids scored so far."""
    explain_reasons, source = options
    hashes, index, seen = ids
    id_column = scorer.id_column
    earlier = seen.contains(hashes) & chunk[id_column].notna().to_numpy()
    fresh = np.flatnonzero(~earlier)
    result = scorer.score_chunk(
        chunk.iloc[fresh],
        activities,
        explain_reasons,
        source,
        rows=first_row + fresh,
    )
    rejected = result.rejects["row"].to_numpy(int) - first_row
    scored = hashes[np.setdiff1d(fresh, rejected)]
    seen.add(scored[index.is_repeated(scored)])  # no other id can come again
    duplicates = np.flatnonzero(earlier)
    reasons = [
        f"duplicate {id_column} {quote_value(v)} (already scored at an earlier row)"
        for v in chunk[id_column].iloc[duplicates]
    ]
    repeats = reject_frame(chunk, "leads", duplicates, reasons, first_row + duplicates)
    rejects = pd.concat([repeats, result.rejects], ignore_index=True)
    return result, rejects.sort_values("row", kind="stable", ignore_index=True)


@dataclass
class BatchJob:
    """What a chunk loop writes to and reads from: the output and rejects writers,
    the id index, the ids scored (of those the file repeats), and the summary."""

    writer: AtomicWriter
    reject_writer: AtomicWriter
    index: IdIndex
    summary: BatchSummary
    seen: SeenIds = field(default_factory=SeenIds)

    def count(self, rows_in: int, scored: int, rejected: int) -> None:
        """Add one chunk's counts to the summary."""
        self.summary.rows_in += rows_in
        self.summary.scored += scored
        self.summary.rejected += rejected


@contextmanager
def batch_job(
    input_path: Path,
    output_path: Path,
    rejects_path: Path,
    outputs: tuple[pd.DataFrame, list[str]],
    id_column: str,
    chunk_rows: int,
) -> Iterator[BatchJob]:
    """Open a batch job over a file: writers of the output (``outputs[0]``: its
    empty frame) and rejects (``outputs[1]``: its columns), and the id index. On
    leaving, the counts must reconcile and both files are moved into place; on any
    error neither is, and the scratch files go either way."""
    output, reject_columns = outputs
    summary = BatchSummary(output=str(output_path), rejects=str(rejects_path))
    writer = AtomicWriter(output_path, output)
    reject_writer = AtomicWriter(
        rejects_path, pd.DataFrame(columns=reject_columns, dtype="string")
    )
    # Beside the output: a big job's id hashes may not fit a small /tmp.
    scratch = tempfile.TemporaryDirectory(
        prefix=".lead-ml-ids-", dir=output_path.parent
    )
    index = IdIndex(Path(scratch.name))
    try:
        index = IdIndex.build(input_path, chunk_rows, index.folder, id_column)
        yield BatchJob(writer, reject_writer, index, summary)
        if summary.rows_in == 0:
            raise ContractError(f"{input_path}: no rows to score; check the export")
        if summary.rows_in != summary.scored + summary.rejected:
            raise RuntimeError(
                f"rows do not reconcile: {summary.rows_in} in, "
                f"{summary.scored} scored, "
                f"{summary.rejected} rejected; the output was not written"
            )
        writer.commit()
        reject_writer.commit()
    except BaseException:
        writer.abort()
        reject_writer.abort()
        raise
    finally:
        index.close()
        scratch.cleanup()


def score_file(
    scorer: Scorer,
    input_path: Path,
    output_path: Path,
    rejects_path: Path,
    activities_path: Path | None = None,
    explain_reasons: bool = True,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[int], None] | None = None,
) -> BatchSummary:
    """Score every lead of a file; write scores and rejects; return the summary."""
    started = time.perf_counter()
    if not input_path.exists():
        raise FileNotFoundError(f"{input_path}: the input file not found")
    scorer.check_columns(read_header(input_path, "the input"), str(input_path))
    if activities_path is not None:
        header = read_header(activities_path, "the activities")
        scorer.check_activity_columns(header, str(activities_path))
    wanted = scorer.contract.columns
    monitor = DriftMonitor(scorer.spec["drift_reference"])
    outputs = (scorer.empty_output(explain_reasons), [*REJECT_COLUMNS, *wanted])
    with batch_job(
        input_path, output_path, rejects_path, outputs, scorer.id_column, chunk_rows
    ) as job:
        summary = job.summary
        for chunk in read_chunks(input_path, wanted, chunk_rows):
            hashes = job.index.hashes(len(chunk))
            activities, bad = _chunk_activities(
                scorer, activities_path, chunk[scorer.id_column], hashes
            )
            result, rejects = _score_one(
                scorer,
                chunk,
                summary.rows_in,
                (hashes, job.index, job.seen),
                activities,
                (explain_reasons, str(input_path)),
            )
            output = result.output
            if len(output):
                monitor.add_rows(
                    result.rows,
                    scorer.model.info.feature_names,
                    output["probability"].to_numpy(float),
                )
            job.writer.write(output)
            if len(rejects):
                job.reject_writer.write(rejects[[*REJECT_COLUMNS, *wanted]])
            job.count(len(chunk), len(output), len(rejects))
            summary.activities_rejected += bad
            for name, n in result.unseen.items():
                summary.unseen[name] = summary.unseen.get(name, 0) + n
            if progress is not None:
                progress(len(chunk))
    summary.drift = monitor.psi()
    summary.seconds = time.perf_counter() - started
    return summary
