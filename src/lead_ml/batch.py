"""The batch scoring job: stream a file of leads through a scorer in bounded memory.

Leads are read in chunks (Parquet row batches or CSV chunks, only the columns the
scorer needs); each chunk is validated, featurized, scored and appended to a
temporary output file that is renamed into place only when every row is accounted
for: rows in = scored + rejected, or the job fails. Duplicate ids are caught across
chunks through 64-bit hashes of the ids seen so far (8 bytes a lead).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lead_ml.model import model_matrix
from lead_ml.schema import ACTIVITIES, REJECT_COLUMNS, ContractError, validate_table
from lead_ml.scorer import (
    ID_COLUMN,
    PSI_WARNING,
    DriftMonitor,
    Scored,
    Scorer,
    ScorerError,
)

DEFAULT_CHUNK_ROWS = 50_000
FORMATS = (".parquet", ".csv")


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
    def drift_warnings(self) -> list[str]:
        """Inputs (and the score) whose PSI against the training window exceeds 0.25."""
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
            "output": self.output,
            "rejects": self.rejects,
        }


def _suffix(path: Path, what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ScorerError(
            f"{path}: {what} must be .parquet or .csv, not {suffix or 'none'}"
        )
    return suffix


def file_columns(path: Path) -> list[str]:
    """Column names of a Parquet or CSV file, without reading its rows."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: input file not found")
    if _suffix(path, "the input") == ".parquet":
        return list(pq.ParquetFile(path).schema_arrow.names)
    header = pd.read_csv(path, nrows=0)
    return [str(c) for c in header.columns]


def count_rows(path: Path) -> int | None:
    """Rows in a Parquet file from its footer; None for CSV (unknown until read)."""
    return pq.ParquetFile(path).metadata.num_rows if path.suffix == ".parquet" else None


def read_chunks(
    path: Path, columns: list[str], chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """The named columns of a file, chunk by chunk, values as read (CSV as text)."""
    if path.suffix.lower() == ".parquet":
        for batch in pq.ParquetFile(path).iter_batches(
            batch_size=chunk_rows, columns=columns
        ):
            yield batch.to_pandas()
        return
    reader = pd.read_csv(
        path,
        usecols=columns,
        dtype=str,
        keep_default_na=False,
        na_values=[""],
        chunksize=chunk_rows,
    )
    with reader:
        yield from reader


class SeenIds:
    """Sorted 64-bit hashes of the ids scored so far: duplicates across chunks."""

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


class AtomicWriter:
    """Appends frames to a temporary file; commit() renames it into place."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.suffix = _suffix(path, "the output")
        self.tmp = path.with_name(f".{path.name}.partial")
        self.parquet: pq.ParquetWriter | None = None
        self.rows = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp.unlink(missing_ok=True)

    def write(self, frame: pd.DataFrame) -> None:
        """Append a frame (the first one fixes the columns and types)."""
        if self.suffix == ".csv":
            frame.to_csv(self.tmp, mode="a", header=self.rows == 0, index=False)
        else:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self.parquet is None:
                self.parquet = pq.ParquetWriter(
                    self.tmp, table.schema, compression="zstd"
                )
            self.parquet.write_table(table.cast(self.parquet.schema))
        self.rows += len(frame)

    def commit(self, empty: pd.DataFrame) -> None:
        """Finish the file and move it into place (an empty file if nothing came)."""
        if self.rows == 0:
            self.write(empty)
        if self.parquet is not None:
            self.parquet.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Drop the temporary file: a crash never leaves a file that looks done."""
        if self.parquet is not None:
            self.parquet.close()
        self.tmp.unlink(missing_ok=True)


def _chunk_activities(
    path: Path | None, ids: pd.Series
) -> tuple[pd.DataFrame | None, int]:
    """The activities of these leads, validated; and how many of them were rejected."""
    if path is None:
        return None, 0
    import pyarrow.dataset as ds

    fmt = "parquet" if path.suffix.lower() == ".parquet" else "csv"
    wanted = pa.array(ids.dropna().astype(str).tolist(), type=pa.string())
    table = ds.dataset(path, format=fmt).to_table(
        columns=["activity_id", "deal_id", "timestamp", "activity_type"],
        filter=ds.field("deal_id").cast(pa.string()).isin(wanted),
    )
    checked = validate_table(table.to_pandas(), _ACTIVITY_CONTRACT, str(path))
    return checked.valid, len(checked.rejects)


# Any activity type is accepted when scoring: unknown types simply count in no type.
_ACTIVITY_CONTRACT = type(ACTIVITIES)(
    ACTIVITIES.name,
    ACTIVITIES.id_column,
    tuple(
        type(spec)(spec.name, spec.kind, spec.required, spec.nullable, None)
        for spec in ACTIVITIES.columns
    ),
)


def _reject_frame(
    chunk: pd.DataFrame, rows: np.ndarray, reasons: list[str]
) -> pd.DataFrame:
    rejects = chunk.iloc[rows].astype("string").reset_index(drop=True)
    rejects.insert(0, "reason", pd.Series(reasons, dtype="string"))
    rejects.insert(0, "row", rows)
    rejects.insert(0, "table", "leads")
    return rejects


def _score_one(
    scorer: Scorer,
    chunk: pd.DataFrame,
    seen: SeenIds,
    activities: pd.DataFrame | None,
    explain_reasons: bool,
    source: str,
) -> tuple[Scored, pd.DataFrame]:
    """Score a chunk; its rejects (rows numbered in the chunk) include repeated ids."""
    hashes = SeenIds.hash(chunk[ID_COLUMN])
    earlier = seen.contains(hashes) & chunk[ID_COLUMN].notna().to_numpy()
    fresh = np.flatnonzero(~earlier)
    result = scorer.score_chunk(
        chunk.iloc[fresh].reset_index(drop=True), activities, explain_reasons, source
    )
    rejected = result.rejects["row"].to_numpy(int)
    seen.add(hashes[fresh[np.setdiff1d(np.arange(len(fresh)), rejected)]])
    duplicates = np.flatnonzero(earlier)
    reasons = [
        f"duplicate {ID_COLUMN} {v!r} (already scored in an earlier chunk)"
        for v in chunk[ID_COLUMN].iloc[duplicates]
    ]
    rejects = pd.concat(
        [
            _reject_frame(chunk, duplicates, reasons),
            result.rejects.assign(row=fresh[rejected]),
        ],
        ignore_index=True,
    ).sort_values("row", kind="stable")
    return result, rejects


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
    columns = file_columns(input_path)
    scorer.check_columns(columns, str(input_path))
    if activities_path is not None and not activities_path.exists():
        raise FileNotFoundError(f"{activities_path}: activities file not found")
    summary = BatchSummary(output=str(output_path), rejects=str(rejects_path))
    wanted = list(scorer.spec["input_columns"])
    writer, reject_writer = AtomicWriter(output_path), AtomicWriter(rejects_path)
    monitor, seen = DriftMonitor(scorer.spec["drift_reference"]), SeenIds()
    try:
        for chunk in read_chunks(input_path, wanted, chunk_rows):
            activities, bad = _chunk_activities(activities_path, chunk[ID_COLUMN])
            result, rejects = _score_one(
                scorer, chunk, seen, activities, explain_reasons, str(input_path)
            )
            output = result.output
            if len(output):
                matrix = model_matrix(result.features, scorer.model.info.categories)
                monitor.add(matrix, output["probability"].to_numpy(float))
            writer.write(output.reset_index(drop=True))
            if len(rejects):
                rejects["row"] += summary.rows_in
                reject_writer.write(
                    rejects[[*REJECT_COLUMNS, *wanted]].astype("string")
                )
            summary.rows_in += len(chunk)
            summary.scored += len(output)
            summary.rejected += len(rejects)
            summary.activities_rejected += bad
            for name, n in result.unseen.items():
                summary.unseen[name] = summary.unseen.get(name, 0) + n
            if progress is not None:
                progress(len(chunk))
        if summary.rows_in == 0:
            raise ContractError(f"{input_path}: no rows to score; check the export")
        if summary.rows_in != summary.scored + summary.rejected:
            raise RuntimeError(
                f"rows do not reconcile: {summary.rows_in} in, "
                f"{summary.scored} scored, "
                f"{summary.rejected} rejected; the output was not written"
            )
        empty = pd.DataFrame(columns=[*REJECT_COLUMNS, *wanted], dtype="string")
        writer.commit(pd.DataFrame(columns=scorer.output_columns(explain_reasons)))
        reject_writer.commit(empty)
    except BaseException:
        writer.abort()
        reject_writer.abort()
        raise
    summary.drift = monitor.psi()
    summary.seconds = time.perf_counter() - started
    return summary
