"""The batch scoring job: stream a file of leads through a scorer in bounded memory.

Leads are read in chunks (Parquet row batches or CSV chunks, only the columns the
scorer needs); each chunk is validated, featurized, scored and appended to a
temporary output file that is renamed into place only when every row is accounted
for: rows in = scored + rejected, or the job fails.

What a job guarantees about the files it writes (the output, the rejects and, with
a :class:`CrmFile`, the CRM import file: scored leads only, columns as the params'
``writeback`` section maps them):

- written whole or not at all: each goes to a temporary file in a scratch folder
  beside it (same disk, so the final rename is atomic), through one open handle;
  a failed, interrupted or killed job leaves the previous file as it was;
- one writer at a time: a job holds an exclusive lock on each file it writes
  (``.<name>.lead-ml.lock`` beside it, ``flock``); a second job on the same file
  fails at once, naming the file, and the first one's result is kept;
- no path is two things: the input, output, rejects, activities and summary must
  be different files (after following symlinks and hard links), checked before a
  row is read;
- no stray files: the scratch folder (``.<name>.lead-ml-job-<pid>-<random>``: the
  temporary output, the id hashes, the split activity log) is removed on success,
  on an error, on SIGTERM and on SIGINT; what a SIGKILL leaves is removed by the
  next job writing the same file, once it holds the lock.

Duplicate ids are caught across chunks without holding every id: a first pass reads
the id column alone and writes 64-bit hashes of the ids to disk (:class:`IdIndex`),
spread over buckets that are then checked one at a time for hashes occurring twice.
Only those repeated hashes are remembered while scoring, so memory does not grow
with the file (10 million leads: ~160 MB of temporary files beside the output). Ids
are compared as the scorer reads them: trimmed, whole-number floats as integers.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lead_ml.config import WritebackConfig
from lead_ml.schema import id_text
from lead_ml.scorer import (
    PSI_WARNING,
    JobCounts,
    JoinedTable,
    Scored,
    Scorer,
    ScorerError,
    joins_onto,
    read_join_tables,
    with_joins,
)
from lead_ml.tables import (
    Chunk,
    Dialect,
    as_text,
    quote_value,
    read_chunks,
    read_header,
    reject_columns,
    reject_frame,
    spreadsheet_safe,
)
from lead_ml.vocab import REJECT_COLUMNS, ConfigError, ContractError

DEFAULT_CHUNK_ROWS = 50_000
#: Fewer scored rows than this and PSI is mostly sampling noise (100 leads drawn from
#: the training window itself give PSI ~0.8 on a 46-level category, 1,000 ~0.05):
#: PSI is still reported, but no drift warning is raised.
DRIFT_MIN_ROWS = 1_000
OUTPUT_FORMATS = (".parquet", ".csv")


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
    crm_file: str = ""
    crm_rows: int = 0
    #: Per table joined (--table NAME=PATH): leads whose key it lacks, scored with
    #: its columns unknown, as training kept such deals.
    unmatched: dict[str, int] = field(default_factory=dict)

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
        done = {
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
        } | (
            {"crm_file": self.crm_file, "crm_rows": self.crm_rows}
            if self.crm_file
            else {}
        )
        return done | self._unmatched()

    def _unmatched(self) -> dict[str, Any]:
        return {"leads_without_match": self.unmatched} if self.unmatched else {}


class JobInterrupted(BaseException):
    """SIGTERM or SIGINT stopped a job; it removed its scratch files and replaced
    nothing. A BaseException, as KeyboardInterrupt is: no ``except Exception`` on
    the way may swallow it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by this signal (130, 143)."""
        return 128 + self.signum


# --- ids ---------------------------------------------------------------------------


def id_keys(ids: pd.Series, missing: tuple[str, ...] = ()) -> pd.Series:
    """Ids as the scorer reads them: text, trimmed, whole-number floats without a
    decimal point, blanks and placeholders missing.

    >>> id_keys(pd.Series([" a", "a ", None, "Select"]), ("Select",)).tolist()
    ['a', 'a', <NA>, <NA>]
    >>> id_keys(pd.Series([7.0, 7.5])).tolist()
    ['7', '7.5']
    """
    return as_text(id_text(ids), missing)


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
        cls,
        path: Path,
        chunk_rows: int,
        folder: Path,
        id_column: str,
        missing: tuple[str, ...] = (),
        progress: Callable[[int], None] | None = None,
        dialect: Dialect | None = None,
        stop: StopRequest | None = None,
    ) -> IdIndex:
        """Hash every id (column ``id_column``, read as :func:`id_keys` reads it
        with the placeholders ``missing``) of the file at ``path`` into files in
        ``folder``; ``progress`` hears the rows of each chunk hashed, ``stop`` is
        checked before each."""
        index = cls(folder)
        shift = np.uint64(64 - ID_BUCKET_BITS)
        # ExitStack: every file is closed even when one fails (a full disk fails
        # the flush of each close).
        with ExitStack() as files:
            buckets = [
                files.enter_context(open(folder / f"bucket{b}.u64", "wb"))
                for b in range(ID_BUCKETS)
            ]
            out = files.enter_context(open(folder / HASH_FILE, "wb"))
            for chunk in read_chunks(path, [id_column], chunk_rows, dialect):
                if stop is not None:
                    stop.check()
                hashes = SeenIds.hash(id_keys(chunk.frame[id_column], missing))
                out.write(hashes.tobytes())
                index.rows += len(hashes)
                if progress is not None:
                    progress(len(hashes))
                bucket = hashes >> shift
                order = np.argsort(bucket, kind="stable")
                starts = np.searchsorted(bucket[order], np.arange(ID_BUCKETS + 1))
                for b, file in enumerate(buckets):
                    file.write(hashes[order[starts[b] : starts[b + 1]]].tobytes())
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


# --- paths, locks and scratch -----------------------------------------------------

#: Hints for the errors a write can meet, by errno.
WRITE_HINTS: dict[int, str] = {
    errno.ENOSPC: "free space on that disk or write to another one",
    errno.EDQUOT: "free space within your disk quota or write to another disk",
    errno.EROFS: "that folder is read-only: choose a folder you can write to",
    errno.EACCES: "no permission to write there: choose a folder you can write to",
    errno.EPERM: "no permission to write there: choose a folder you can write to",
}


def cannot_write(path: Path, error: OSError) -> ContractError:
    """The one-line error for a file the job could not write (disk full, read-only
    or forbidden folder...), saying that the previous file is untouched."""
    code = error.errno
    if code is None and "No space left" in str(error):  # pyarrow drops the errno
        code = errno.ENOSPC
    reason = os.strerror(code) if code else str(error).strip().splitlines()[0]
    hint = WRITE_HINTS.get(code or 0, "check that folder and try again")
    return ContractError(
        f"{path}: cannot write it ({reason}); {hint}. Nothing was replaced: the "
        "previous file, if any, is as it was"
    )


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an OSError raised while writing for ``path`` into :func:`cannot_write`."""
    try:
        yield
    except OSError as error:
        raise cannot_write(path, error) from None


def _same_file(first: Path, second: Path) -> bool:
    """Whether two paths name one file: equal once resolved (symlinks followed),
    or two names of one inode (a hard link)."""
    if first.resolve() == second.resolve():
        return True
    try:
        one, other = first.stat(), second.stat()
    except OSError:  # one does not exist (yet): no inode to share
        return False
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino)


def refuse_collisions(paths: Mapping[str, Path | None]) -> None:
    """ContractError when two of the paths (option name -> path; None: not given)
    are one file, naming both options; a job must never read and write, or write
    twice, the same file."""
    given = [(option, Path(path)) for option, path in paths.items() if path]
    for i, (option, path) in enumerate(given):
        for other, second in given[i + 1 :]:
            if _same_file(path, second):
                raise ContractError(
                    f"{other} and {option} are the same file ({second}); give "
                    f"{other} a path of its own"
                )


def refuse_folder(path: Path, option: str) -> None:
    """ContractError when a file the job writes is an existing folder (checked
    before any row is scored, not when the file is renamed into place)."""
    if path.is_dir():
        raise ContractError(
            f"{path} ({option}): a folder, not a file; give a file path such as "
            f"{path / ('scores' + (path.suffix or '.parquet'))}"
        )


def output_suffix(path: Path) -> str:
    """The format of a file the job writes (.parquet or .csv); ScorerError else."""
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ScorerError(
            f"{path}: the output must be .parquet or .csv, not {suffix or 'none'}"
        )
    return suffix


class Target:
    """A file a job writes, held for the job: an exclusive lock on it (a lock
    file beside it), and the job's scratch folder beside it, everything the job
    leaves there swept by the next job that holds the lock."""

    def __init__(self, path: Path, option: str) -> None:
        # Resolved: two names of one file (a symlink) share its lock.
        self.path = Path(path).absolute()
        self.path = self.path.parent.resolve() / self.path.name
        self.option = option
        self.lock = self.path.with_name(f".{self.path.name}.lead-ml.lock")
        self.prefix = f".{self.path.name}.lead-ml-job-"
        self.scratch = self.path.with_name(
            f"{self.prefix}{os.getpid()}-{secrets.token_hex(4)}"
        )
        self._fd: int | None = None

    def acquire(self) -> None:
        """Lock the file for this job (ContractError at once if another job holds
        it), sweep what killed jobs left, make the scratch folder."""
        with writing(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = self._locked()
            os.ftruncate(self._fd, 0)
            os.write(self._fd, f"{os.getpid()}\n".encode())
            self._sweep()
            self.scratch.mkdir()

    def _locked(self) -> int:
        """An open lock file this job holds the flock of."""
        while True:
            fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise ContractError(
                    f"{self.path}: another lead-ml job (pid {holder}) is writing "
                    f"it; wait for that job to end or give {self.option} another "
                    "path"
                ) from None
            # A job that just ended removes its lock file while holding it: a lock
            # taken on that removed file guards nothing, so take the new one.
            try:
                if os.stat(self.lock).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)

    def _sweep(self) -> None:
        """Remove the scratch folders of earlier jobs on this file (killed: the
        lock this job holds proves none is running) and the temporary file of
        lead-ml versions before them."""
        with os.scandir(self.path.parent) as entries:
            stale = [e.path for e in entries if e.name.startswith(self.prefix)]
        for folder in stale:
            shutil.rmtree(folder, ignore_errors=True)
        self.path.with_name(f".{self.path.name}.partial").unlink(missing_ok=True)

    def release(self) -> None:
        """Remove the scratch folder and the lock file, then unlock."""
        shutil.rmtree(self.scratch, ignore_errors=True)
        if self._fd is None:
            return
        self.lock.unlink(missing_ok=True)  # while still held: see _locked
        os.close(self._fd)
        self._fd = None


class StopRequest:
    """Whether SIGTERM or SIGINT asked the job to stop; the job looks between chunks
    (:meth:`check`). The signal handler only records it: an exception raised from a
    handler lands in whatever code runs at that moment, in a library's half-done
    step or a cleanup that swallows it, and a lost one leaves the job running."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def record(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler: the first signal is kept, later ones change nothing
        (so that the cleanup it starts finishes)."""
        if self.signum is None:
            self.signum = signum

    def check(self) -> None:
        """Raise :class:`JobInterrupted` if a signal asked the job to stop."""
        if self.signum is not None:
            raise JobInterrupted(self.signum)


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """While the block runs, SIGTERM and SIGINT are recorded in the
    :class:`StopRequest` it gets (Python's default for SIGTERM ends the process
    without running a finally block); the block checks it between chunks and
    stops with :class:`JobInterrupted`, so that its cleanup runs. The handlers in
    place before come back after it. Outside the main thread, where Python cannot
    set handlers, nothing is recorded."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    handled = (signal.SIGTERM, signal.SIGINT)
    before = {number: signal.getsignal(number) for number in handled}
    for number in handled:
        signal.signal(number, request.record)
    try:
        yield request
    finally:
        for number, handler in before.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)


class AtomicWriter:
    """Appends frames to a temporary file in a scratch folder beside the file,
    through one open handle; commit() renames it into place. Text a spreadsheet
    would read as a formula is escaped in CSV files (:func:`spreadsheet_safe`);
    ``bom``: a CSV file starts with a UTF-8 byte order mark (for Excel)."""

    def __init__(
        self, path: Path, empty: pd.DataFrame, scratch: Path, bom: bool = False
    ) -> None:
        self.path = path
        self.encoding = "utf-8-sig" if bom else "utf-8"
        self.suffix = output_suffix(path)
        self.tmp = scratch / path.name
        self.empty = empty
        self.schema = pa.Schema.from_pandas(empty, preserve_index=False)
        self.parquet: pq.ParquetWriter | None = None
        self.text: Any = None
        self.started = False
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        """Append a frame, cast to the columns and dtypes of ``empty``."""
        if self.started and len(frame) == 0:
            return
        frame = frame[list(self.empty.columns)].astype(self.empty.dtypes.to_dict())
        with writing(self.path):
            if self.suffix == ".csv":
                if self.text is None:
                    self.text = open(self.tmp, "w", encoding=self.encoding, newline="")
                spreadsheet_safe(frame).to_csv(
                    self.text, header=not self.started, index=False
                )
            else:
                if self.parquet is None:
                    self.parquet = pq.ParquetWriter(
                        self.tmp, self.schema, compression="zstd"
                    )
                self.parquet.write_table(
                    pa.Table.from_pandas(
                        frame, schema=self.schema, preserve_index=False
                    )
                )
        self.started = True
        self.rows += len(frame)

    def commit(self) -> None:
        """Finish the file, flush it to disk and move it into place (a file of no
        rows if nothing came)."""
        if not self.started:
            self.write(self.empty)
        with writing(self.path):
            self._close()
            with open(self.tmp, "rb") as done:
                os.fsync(done.fileno())
            os.replace(self.tmp, self.path)

    def _close(self) -> None:
        if self.parquet is not None:
            self.parquet.close()
            self.parquet = None
        if self.text is not None:
            self.text.close()
            self.text = None

    def abort(self) -> None:
        """Drop the temporary file: a crash never leaves a file that looks done."""
        try:
            self._close()
        except OSError:  # a full disk fails the flush too: the file goes anyway
            pass
        self.tmp.unlink(missing_ok=True)


# --- activities --------------------------------------------------------------------

#: Rows per part when an activities file is split for scoring (_activity_parts).
ACTIVITY_PART_ROWS = 250_000
#: Bytes of id hashes kept to skip parts; parts past it are read for every chunk.
ACTIVITY_INDEX_BYTES = 64 * 2**20
#: The part column holding the lead key as the scorer reads it (id_keys).
ACTIVITY_KEY = "__lead_ml_key"


@dataclass(eq=False)
class ActivityParts:
    """An activities file split once into Arrow files in ``folder``, with each
    one's id hashes (None once the index budget is spent: read for every chunk),
    and how many of its CSV records were malformed (never scored)."""

    source: Path
    folder: Path
    parts: list[tuple[Path, np.ndarray | None]] = field(default_factory=list)
    malformed: int = 0


def split_activities(
    path: Path,
    columns: list[str],
    folder: Path,
    missing: tuple[str, ...] = (),
    dialect: Dialect | None = None,
    stop: StopRequest | None = None,
) -> ActivityParts:
    """The activities file (``columns``: its key, time stamp and type) in parts in
    ``folder`` (a job's scratch), read (and, for CSV, parsed) once per job; each
    chunk of leads then opens only the parts holding its ids. Activities exported
    in time or deal order cluster, so most parts are skipped. ``stop`` is checked
    before each chunk."""
    folder.mkdir()
    split = ActivityParts(path, folder)
    budget = ACTIVITY_INDEX_BYTES
    # Every cell as text, as lead-ml reads any CSV (the scorer converts and
    # rejects row by row): types inferred from the first rows failed the whole
    # job on one unreadable time stamp further down, and read ids as numbers.
    for chunk in read_chunks(path, columns, ACTIVITY_PART_ROWS, dialect):
        if stop is not None:
            stop.check()
        table = chunk.table
        if chunk.malformed:  # nothing to read in them: counted, left out
            keep = np.ones(len(chunk), dtype=bool)
            keep[list(chunk.malformed)] = False
            table = table.filter(pa.array(keep))
            split.malformed += len(chunk.malformed)
        budget = _write_part(split, table, budget, columns[0], missing)
    return split


def _write_part(
    split: ActivityParts,
    table: pa.Table,
    budget: int,
    key: str,
    missing: tuple[str, ...],
) -> int:
    """Write one part (uncompressed Arrow: read back by memory map) with the lead
    key as the scorer reads it; return the index budget left."""
    keys = id_keys(table[key].to_pandas(), missing)
    table = table.append_column(
        ACTIVITY_KEY, pa.Array.from_pandas(keys, type=pa.string())
    )
    name = split.folder / f"{len(split.parts)}.arrow"
    with writing(name):
        with pa.OSFile(str(name), "wb") as sink:
            with pa.ipc.new_file(sink, table.schema) as out:
                out.write_table(table)
    held = None
    if budget > 0:
        held = np.unique(SeenIds.hash(keys.dropna()))
        budget -= held.nbytes
    split.parts.append((name, held))
    return budget


def _overlap(held: np.ndarray, hashes: np.ndarray) -> bool:
    """Whether the sorted hashes ``held`` share any value with ``hashes``."""
    position = np.minimum(np.searchsorted(held, hashes), max(len(held) - 1, 0))
    return bool(len(held) and (held[position] == hashes).any())


def _chunk_activities(
    scorer: Scorer,
    split: ActivityParts | None,
    keys: pd.Series,
    hashes: np.ndarray,
) -> tuple[pd.DataFrame | None, int]:
    """The activities of these leads (``keys``: their ids as :func:`id_keys` reads
    them; ``hashes``: the hashes of those), read by the scorer, and how many of
    them were left out (unusable rows).

    The file is split into parts once (see :func:`split_activities`) rather than
    scanned whole for every chunk, which made a job quadratic in its size.
    """
    if split is None:
        return None, 0
    import pyarrow.compute as pc

    present = keys.notna().to_numpy()
    wanted = pa.array(keys[present].tolist(), type=pa.string())
    distinct = np.unique(np.asarray(hashes)[present])
    tables = []
    for name, held in split.parts:
        if held is not None and not _overlap(held, distinct):
            continue
        with pa.memory_map(str(name)) as source:
            part = pa.ipc.open_file(source).read_all()
        keep = pc.is_in(part[ACTIVITY_KEY], value_set=wanted)
        tables.append(part.filter(keep).drop_columns([ACTIVITY_KEY]))
    if not tables:  # a log that holds no activity of these leads: they have none
        nothing = pd.DataFrame(columns=scorer.activity_columns, dtype="string")
        return scorer.read_activities(nothing, str(split.source))
    log = pa.concat_tables(tables).to_pandas()
    return scorer.read_activities(log, str(split.source))


# --- the CRM import file -----------------------------------------------------------

#: Fields of the import file that only explained scores have (not with --no-explain).
EXPLAINED_FIELDS = ("top_reasons", "next_question")


def scored_at_moment(text: str | None = None) -> datetime:
    """The time stamp of a job, in UTC to the second: ``text`` (ISO 8601 with a
    time zone, as `--scored-at` takes it) or, without one, now.

    >>> scored_at_moment("2026-12-01T10:30:00.5+01:00").isoformat()
    '2026-12-01T09:30:00+00:00'
    """
    if text is None:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--scored-at: {text!r} is not an ISO 8601 time; give one such as "
            "2026-12-01T09:30:00Z"
        ) from None
    if moment.tzinfo is None:
        raise ConfigError(
            f"--scored-at: {text!r} has no time zone; add Z for UTC (or an offset "
            "such as +01:00)"
        )
    return moment.astimezone(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class CrmFile:
    """The import file a job writes for the CRM (`--crm-file`): its path, the
    mapping (params' ``writeback`` section) and the job's one time stamp, which
    every row carries. Only scored leads are in it: a rejected row stays in the
    rejects file with its reason.

    >>> mapping = WritebackConfig(columns={
    ...     "id": "Id", "probability": "Score__c", "model_version": "Model__c",
    ...     "scored_at": "Scored__c"}, passthrough={"owner": "OwnerId"})
    >>> crm = CrmFile(Path("crm.csv"), mapping, scored_at_moment("2026-12-01T09:30Z"))
    >>> scores = pd.DataFrame({"deal_id": ["d1"], "probability": [0.4242],
    ...     "model_version": ["v1"]})
    >>> rows = crm.rows(scores, pd.DataFrame({"owner": ["Ana"]}), "deal_id")
    >>> print(rows.to_csv(index=False).strip())
    Id,Score__c,Model__c,Scored__c,OwnerId
    d1,42,v1,2026-12-01T09:30:00Z,Ana
    """

    path: Path
    mapping: WritebackConfig
    scored_at: datetime

    @property
    def stamp(self) -> str:
        """``scored_at`` as the file writes it: ISO 8601 in UTC (``Z``), or the
        date alone."""
        moment = self.scored_at.astimezone(UTC)
        if self.mapping.scored_at == "date":
            return moment.date().isoformat()
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    def passthrough(self, columns: list[str]) -> list[str]:
        """The input columns to read besides ``columns`` (the contract's)."""
        return [c for c in self.mapping.passthrough if c not in columns]

    def check(self, header: list[str], explain_reasons: bool, source: str) -> None:
        """Refuse, before a row is read, a mapping this job cannot fill: a
        passthrough column the input (its ``header``) lacks, or reasons asked for
        with --no-explain."""
        absent = [c for c in self.mapping.passthrough if c not in header]
        if absent:
            raise ContractError(
                f"{source}: no column {', '.join(map(repr, absent))}, which "
                "writeback.passthrough names; add it to the export or remove it "
                "from writeback.passthrough"
            )
        explained = [f for f in EXPLAINED_FIELDS if f in self.mapping.columns]
        if explained and not explain_reasons:
            raise ConfigError(
                f"writeback.columns maps {', '.join(explained)}, which --no-explain "
                "leaves out; drop --no-explain, or those fields from the mapping"
            )

    def dtypes(self) -> dict[str, str]:
        """The pandas dtype of each column of the file."""
        decimal = self.mapping.probability == "decimal"
        numbers = {"probability": "float64" if decimal else "int64", "score": "int64"}
        fields = {
            column: numbers.get(field, "string")
            for field, column in self.mapping.columns.items()
        }
        return fields | dict.fromkeys(self.mapping.passthrough.values(), "string")

    def empty(self) -> pd.DataFrame:
        """The file's columns with no rows."""
        return pd.DataFrame({c: pd.Series(dtype=d) for c, d in self.dtypes().items()})

    def rows(
        self, scores: pd.DataFrame, leads: pd.DataFrame, id_column: str
    ) -> pd.DataFrame:
        """The import rows of scored leads (``scores``: the output's rows, indexed
        by their position in ``leads``, the chunk as read)."""
        probability = scores["probability"].to_numpy(float)
        if self.mapping.probability == "decimal":
            probability = probability.round(self.mapping.decimals)
        else:
            probability = np.rint(probability * 100).astype("int64")
        values = {
            "id": scores[id_column],
            "probability": pd.Series(probability, index=scores.index),
            "scored_at": pd.Series(self.stamp, index=scores.index),
        }
        frame = pd.DataFrame(
            {
                column: values[field] if field in values else scores[field]
                for field, column in self.mapping.columns.items()
            },
            index=scores.index,
        )
        for column, name in self.mapping.passthrough.items():
            frame[name] = id_text(leads[column]).loc[scores.index]
        return frame.astype(self.dtypes())


# --- scoring -----------------------------------------------------------------------


def _score_one(
    scorer: Scorer,
    chunk: Chunk,
    ids: tuple[pd.Series, np.ndarray, IdIndex, SeenIds],
    activities: pd.DataFrame | None,
    options: tuple[bool, str],
) -> tuple[Scored, pd.DataFrame]:
    """Score a chunk; its rejects (numbered in the file) include malformed CSV
    records and ids already scored in an earlier chunk. ``ids``: the chunk's ids
    as read (:func:`id_keys`), their hashes, the file's id index and the repeated
    ids scored so far."""
    explain_reasons, source = options
    keys, hashes, index, seen = ids
    frame, first_row = chunk.frame, chunk.first_row
    malformed = np.zeros(len(frame), dtype=bool)
    malformed[list(chunk.malformed)] = True
    earlier = seen.contains(hashes) & keys.notna().to_numpy() & ~malformed
    fresh = np.flatnonzero(~earlier & ~malformed)
    result = scorer.score_chunk(
        frame.iloc[fresh],
        activities,
        explain_reasons,
        source,
        rows=first_row + fresh,
    )
    rejected = result.rejects["row"].to_numpy(int) - first_row
    scored = hashes[np.setdiff1d(fresh, rejected)]
    seen.add(scored[index.is_repeated(scored)])  # no other id can come again
    duplicates = np.flatnonzero(earlier)
    id_column = scorer.id_column
    reasons = [
        f"duplicate {id_column} {quote_value(v)} (already scored at an earlier row)"
        for v in keys.iloc[duplicates]
    ]
    repeats = reject_frame(frame, "leads", duplicates, reasons, first_row + duplicates)
    broken = np.flatnonzero(malformed)
    unread = reject_frame(
        frame,
        "leads",
        broken,
        [chunk.malformed[int(row)] for row in broken],
        first_row + broken,
    )
    rejects = pd.concat([unread, repeats, result.rejects], ignore_index=True)
    rejects = rejects.sort_values("row", kind="stable", ignore_index=True)
    # The id as the output writes it (a Parquet float id 7.0 is '7'), so that a
    # reject can be matched with the lead; other values stay as read.
    (column,) = reject_columns([id_column])
    positions = rejects["row"].to_numpy(int) - first_row
    rejects[column] = id_text(frame[id_column]).iloc[positions].to_numpy()
    return result, rejects


@dataclass
class BatchJob:
    """What a chunk loop writes to and reads from: the output and rejects writers,
    the id index, the ids scored (of those the file repeats), the split activity
    log (None without one), the summary, and the CRM import file with its writer
    (None without one)."""

    writer: AtomicWriter
    reject_writer: AtomicWriter
    index: IdIndex
    summary: BatchSummary
    activities: ActivityParts | None = None
    seen: SeenIds = field(default_factory=SeenIds)
    crm: tuple[CrmFile, AtomicWriter] | None = None

    def count(self, rows_in: int, scored: int, rejected: int) -> None:
        """Add one chunk's counts to the summary."""
        self.summary.rows_in += rows_in
        self.summary.scored += scored
        self.summary.rejected += rejected


@dataclass(frozen=True)
class JobFiles:
    """The files of a batch job: what it reads and what it writes."""

    input: Path
    output: Path
    rejects: Path
    activities: Path | None = None
    crm: Path | None = None

    def check(self) -> None:
        """Refuse, before any row is read, files the job cannot write and paths
        that collide (:func:`refuse_collisions`)."""
        for path, option in ((self.output, "--output"), (self.rejects, "--rejects")):
            output_suffix(path)
            refuse_folder(path, option)
        if self.crm is not None:
            if self.crm.suffix.lower() != ".csv":
                raise ScorerError(
                    f"{self.crm}: the CRM import file (--crm-file) is CSV, what the "
                    f"CRM's import tools read; give a .csv path, not "
                    f"{self.crm.suffix or 'none'}"
                )
            refuse_folder(self.crm, "--crm-file")
        refuse_collisions(self.named())

    def named(self) -> dict[str, Path | None]:
        """The files by the option of `lead-ml score` that names them."""
        return {
            "--input": self.input,
            "--output": self.output,
            "--rejects": self.rejects,
            "--activities": self.activities,
            "--crm-file": self.crm,
        }


@contextmanager
def batch_job(
    files: JobFiles,
    outputs: tuple[pd.DataFrame, list[str]],
    scorer: Scorer,
    chunk_rows: int,
    crm: CrmFile | None = None,
    checking: Callable[[int], None] | None = None,
    stop: StopRequest | None = None,
) -> Iterator[BatchJob]:
    """Open a batch job: lock the output and the rejects file, make their scratch
    folders, write the id index and split the activity log there, and open
    writers of the output (``outputs[0]``: its empty frame) and rejects
    (``outputs[1]``: its columns), and of the CRM import file ``crm`` (locked,
    scratch folder of its own) when there is one. On leaving, the counts must
    reconcile and every file is moved into place; on any error (or signal) none
    is, and the scratch folders and locks go either way. ``checking`` hears the
    rows of each chunk of the id pre-pass (:meth:`IdIndex.build`); ``stop`` is
    checked between the chunks of the pre-passes and once more before any file is
    moved into place."""
    stop = stop or StopRequest()
    output, rejected_columns = outputs
    summary = BatchSummary(output=str(files.output), rejects=str(files.rejects))
    missing = scorer.contract.missing_values
    with ExitStack() as stack:
        targets = [Target(files.output, "--output"), Target(files.rejects, "--rejects")]
        for target in targets:
            stack.callback(target.release)
            target.acquire()
        scratch = targets[0].scratch
        writer = AtomicWriter(files.output, output, scratch)
        stack.callback(writer.abort)
        reject_writer = AtomicWriter(
            files.rejects,
            pd.DataFrame(columns=rejected_columns, dtype="string"),
            targets[1].scratch,
        )
        stack.callback(reject_writer.abort)
        crm_writer = None if crm is None else _open_crm(crm, stack)
        # Beside the output: a big job's id hashes may not fit a small /tmp.
        with writing(files.output):
            (scratch / "ids").mkdir()
        index = IdIndex(scratch / "ids")
        stack.callback(lambda: index.close())
        with writing(files.output):
            index = IdIndex.build(
                files.input,
                chunk_rows,
                scratch / "ids",
                scorer.id_column,
                missing,
                checking,
                scorer.dialect().for_input(files.input),
                stop,
            )
        job = BatchJob(writer, reject_writer, index, summary)
        if crm is not None and crm_writer is not None:
            job.crm = (crm, crm_writer)
            summary.crm_file = str(crm.path)
        if files.activities is not None and scorer.activity_columns is not None:
            with writing(files.output):
                job.activities = split_activities(
                    files.activities,
                    scorer.activity_columns,
                    scratch / "activities",
                    missing,
                    scorer.dialect("activities").resolve(files.activities),
                    stop,
                )
            summary.activities_rejected += job.activities.malformed
        yield job
        if summary.rows_in == 0:
            raise ContractError(f"{files.input}: no rows to score; check the export")
        if summary.rows_in != summary.scored + summary.rejected:
            raise RuntimeError(
                f"rows do not reconcile: {summary.rows_in} in, "
                f"{summary.scored} scored, "
                f"{summary.rejected} rejected; the output was not written"
            )
        stop.check()  # the last moment a stop still leaves every file as it was
        reject_writer.commit()
        if crm_writer is not None:
            _commit_crm(crm_writer, summary)
        writer.commit()


def _open_crm(crm: CrmFile, stack: ExitStack) -> AtomicWriter:
    """Lock the CRM import file and open its writer in a scratch folder of its
    own; ``stack`` drops both when the job ends."""
    target = Target(crm.path, "--crm-file")
    stack.callback(target.release)
    target.acquire()
    writer = AtomicWriter(crm.path, crm.empty(), target.scratch, crm.mapping.excel_bom)
    stack.callback(writer.abort)
    return writer


def _commit_crm(writer: AtomicWriter, summary: BatchSummary) -> None:
    """Move the CRM import file into place once it holds one row per scored lead."""
    if writer.rows != summary.scored:
        raise RuntimeError(
            f"the CRM import file holds {writer.rows} rows for {summary.scored} "
            "scored leads; nothing was written"
        )
    writer.commit()
    summary.crm_rows = writer.rows


def read_joins(
    scorer: Scorer, tables: Mapping[str, Path], header: list[str], input_path: Path
) -> list[JoinedTable]:
    """The tables given as ``--table NAME=PATH`` that training joined onto the
    deals (:attr:`Scorer.joins`), each read by its training dialect, holding the
    scorer's columns that the leads file (``header``) lacks. ScorerError for a
    table the model never joined, a file without the table's id or leads without
    its key, and for leads lacking columns while a joined table was not given
    (naming the table and what to pass)."""
    return joins_onto(scorer, read_join_tables(scorer, tables), header, input_path)


def _with_joins(
    chunk: Chunk,
    joined: list[JoinedTable],
    summary: BatchSummary,
    missing: Sequence[str],
) -> Chunk:
    """The chunk with every joined table's columns added (its rows and numbers
    as they were); the leads without a match counted in ``summary``."""
    frame, unmatched = with_joins(chunk.frame, joined, missing)
    for name, n in unmatched.items():
        summary.unmatched[name] = summary.unmatched.get(name, 0) + n
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    return Chunk(arrow, chunk.first_row, chunk.malformed)


def score_file(
    scorer: Scorer,
    input_path: Path,
    output_path: Path,
    rejects_path: Path,
    activities_path: Path | None = None,
    explain_reasons: bool = True,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[int], None] | None = None,
    crm: CrmFile | None = None,
    checking: Callable[[int], None] | None = None,
    tables: Mapping[str, Path] | None = None,
) -> BatchSummary:
    """Score every lead of a file; write scores and rejects (and the CRM import
    file ``crm``, when given, with the same guarantees); return the summary.
    ``tables`` (name -> file) are the many-to-one tables training joined onto the
    deals (:func:`read_joins`), joined onto each chunk by key.
    ``progress`` hears the rows of each chunk scored, ``checking`` those of each
    chunk of the duplicate-id pre-pass that comes first.

    Raises ContractError or ScorerError (a file or path the job cannot use, another
    job writing the same file, a disk full...), before any file is replaced, and
    :class:`JobInterrupted` on SIGTERM or SIGINT (at the next chunk: a chunk
    already begun is finished first).
    """
    started = time.perf_counter()
    files = JobFiles(
        input_path,
        output_path,
        rejects_path,
        activities_path,
        None if crm is None else crm.path,
    )
    if not input_path.exists():
        raise FileNotFoundError(f"{input_path}: the input file not found")
    files.check()
    # Read as training read the deals (sep, encoding, decimal, row-number id).
    dialect = scorer.dialect().for_input(input_path)
    header = read_header(input_path, "the input", dialect)
    joined = read_joins(scorer, tables or {}, header, input_path)
    added = {c for table in joined for c in table.rows.columns}
    scorer.check_columns([*header, *added], str(input_path))
    if crm is not None:
        crm.check(header, explain_reasons, str(input_path))
    if activities_path is not None:
        header = read_header(
            activities_path, "the activities", scorer.dialect("activities")
        )
        scorer.check_activity_columns(header, str(activities_path))
    wanted = scorer.contract.columns
    missing_values = scorer.contract.missing_values
    counts = JobCounts.of(scorer)
    outputs = (
        scorer.empty_output(explain_reasons),
        [*REJECT_COLUMNS, *reject_columns(wanted)],
    )
    read = wanted if crm is None else [*wanted, *crm.passthrough(wanted)]
    keys = [t.key for t in joined if t.key not in read]
    read = [*(c for c in read if c not in added), *keys]
    with (
        stop_on_signals() as stop,
        batch_job(files, outputs, scorer, chunk_rows, crm, checking, stop) as job,
    ):
        job.summary.unseen = counts.unseen  # counted chunk by chunk, as it goes
        for chunk in read_chunks(input_path, read, chunk_rows, dialect):
            stop.check()
            if joined:
                chunk = _with_joins(chunk, joined, job.summary, missing_values)
            _score_into(scorer, chunk, job, counts, (explain_reasons, str(input_path)))
            if progress is not None:
                progress(len(chunk))
        stop.check()
    summary = job.summary
    summary.drift = counts.monitor.psi()
    summary.seconds = time.perf_counter() - started
    return summary


def _score_into(
    scorer: Scorer,
    chunk: Chunk,
    job: BatchJob,
    counts: JobCounts,
    options: tuple[bool, str],
) -> None:
    """Score one chunk into the job's writers, summary and drift and unseen
    counts."""
    summary = job.summary
    keys = id_keys(chunk.frame[scorer.id_column], scorer.contract.missing_values)
    hashes = job.index.hashes(len(chunk))
    activities, bad = _chunk_activities(scorer, job.activities, keys, hashes)
    result, rejects = _score_one(
        scorer, chunk, (keys, hashes, job.index, job.seen), activities, options
    )
    output = result.output
    counts.add(scorer, result, len(chunk))
    job.writer.write(output)
    if job.crm is not None:
        crm, crm_writer = job.crm
        crm_writer.write(crm.rows(output, chunk.frame, scorer.id_column))
    if len(rejects):
        # in the rejects file's columns (score_file's, see reject_columns)
        job.reject_writer.write(rejects[list(job.reject_writer.empty.columns)])
    job.count(len(chunk), len(output), len(rejects))
    summary.activities_rejected += bad
