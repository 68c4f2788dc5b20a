"""The batch job: every row scored or rejected with a reason, files written whole or
not at all, the same bytes twice, drift against the training window, bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lead_ml.batch import (
    HASH_FILE,
    ID_BUCKET_BITS,
    BatchSummary,
    IdIndex,
    SeenIds,
    score_file,
)
from lead_ml.config import SplitConfig
from lead_ml.model import time_split
from lead_ml.schema import ContractError
from lead_ml.scorer import ID_COLUMN, Scorer, ScorerError, load_scorer


@pytest.fixture(scope="module")
def scorer(small_project: Path) -> Scorer:
    return load_scorer(small_project / "models/scorer")


@pytest.fixture(scope="module")
def activities(small_project: Path) -> Path:
    return small_project / "data/validated/activities.parquet"


@pytest.fixture(scope="module")
def leads(small_leads: pd.DataFrame) -> pd.DataFrame:
    """120 lead rows from across the history."""
    return small_leads.iloc[::25].head(120).reset_index(drop=True)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def _run(
    scorer: Scorer, leads_path: Path, out: Path, **options: Any
) -> tuple[BatchSummary, pd.DataFrame, pd.DataFrame]:
    """Score a file; return the summary, the scores and the rejects as read back."""
    rejects = out.with_name(f"{out.stem}.rejects.csv")
    summary = score_file(scorer, leads_path, out, rejects, **options)
    scores = pd.read_csv(out) if out.suffix == ".csv" else pd.read_parquet(out)
    return summary, scores, pd.read_csv(rejects, dtype={"reason": str})


def _reconciles(
    summary: BatchSummary, scores: pd.DataFrame, rejects: pd.DataFrame
) -> None:
    assert summary.rows_in == summary.scored + summary.rejected
    assert (summary.scored, summary.rejected) == (len(scores), len(rejects))


# --- no row lost ----------------------------------------------------------------------


def test_every_bad_row_is_rejected_with_its_reason_and_the_rest_keep_their_order(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    bad = leads.astype({"employees": object, "annual_revenue": object})
    bad["created_at"] = bad["created_at"].astype(str)
    bad.loc[5, ID_COLUMN] = None
    bad.loc[40, "created_at"] = "2024-13-45"
    bad.loc[70, "employees"] = -12
    bad.loc[71, "employees"] = "twelve"
    bad.loc[99, "annual_revenue"] = "inf"
    path = _write(bad, tmp_path / "leads.csv")
    summary, scores, rejects = _run(scorer, path, tmp_path / "s.parquet", chunk_rows=32)
    _reconciles(summary, scores, rejects)
    assert summary.rows_in == 120 and summary.rejected == 5
    assert dict(zip(rejects["row"], rejects["reason"], strict=True)) == {
        5: "deal_id is missing",
        40: "created_at is not an ISO 8601 date: '2024-13-45'",
        70: "employees is negative (-12.0)",
        71: "employees is not a finite number: 'twelve'",
        99: "annual_revenue is not a finite number: 'inf'",
    }
    assert rejects.loc[rejects["row"] == 71, "employees"].item() == "twelve"
    kept = np.setdiff1d(np.arange(120), [5, 40, 70, 71, 99])
    assert scores[ID_COLUMN].tolist() == bad.loc[kept, ID_COLUMN].tolist()


def test_repeated_ids_are_rejected_within_and_across_chunks(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    ids = leads[ID_COLUMN].astype(object).copy()
    ids[3] = ids[1]  # same chunk as its first copy
    ids[25] = ids[2]  # a later chunk
    ids[41] = ids[40]  # row 40 is invalid: row 41 keeps the id
    ids[55] = ids[49]  # row 49 (another chunk) is invalid: row 55 keeps the id
    repeated = leads.assign(**{ID_COLUMN: ids})
    repeated.loc[[40, 49], "employees"] = -1
    path = _write(repeated, tmp_path / "leads.parquet")
    summary, scores, rejects = _run(
        scorer, path, tmp_path / "s.parquet", chunk_rows=10, explain_reasons=False
    )
    _reconciles(summary, scores, rejects)
    reasons = dict(zip(rejects["row"], rejects["reason"], strict=True))
    assert reasons == {
        3: f"duplicate deal_id '{ids[1]}' (first seen at row 1)",
        25: f"duplicate deal_id '{ids[2]}' (already scored at an earlier row)",
        40: "employees is negative (-1.0)",
        49: "employees is negative (-1.0)",
    }
    assert scores[ID_COLUMN].is_unique
    assert {ids[41], ids[55]} <= set(scores[ID_COLUMN])


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_the_id_index_finds_exactly_the_repeated_ids(
    tmp_path: Path, suffix: str
) -> None:
    rng = np.random.default_rng(5)
    values: list[str | None] = [f"D{i}" for i in rng.integers(0, 20_000, 6_000)]
    values[17] = None  # one missing id: hashed as "", repeated by nothing
    ids = pd.Series(values, dtype="string")
    path = _write(pd.DataFrame({ID_COLUMN: ids, "x": 1.0}), tmp_path / f"ids{suffix}")
    folder = tmp_path / "index"
    folder.mkdir()
    index = IdIndex.build(path, 700, folder)
    assert index.rows == len(ids)
    hashes = np.concatenate([index.hashes(n) for n in (1, 2_999, 3_000)])
    assert np.array_equal(hashes, SeenIds.hash(ids))
    counts = ids.value_counts()
    twice = SeenIds.hash(pd.Series(counts.index[counts > 1], dtype="string"))
    assert np.array_equal(index.repeated, np.sort(twice))
    assert len(np.unique(index.repeated >> np.uint64(64 - ID_BUCKET_BITS))) > 40
    repeated_rows = ids.duplicated(keep=False).to_numpy() & ids.notna().to_numpy()
    assert np.array_equal(index.is_repeated(hashes), repeated_rows)
    with pytest.raises(RuntimeError, match="input changed"):
        index.hashes(1)
    index.close()
    assert [p.name for p in folder.iterdir()] == [HASH_FILE]  # buckets removed


def test_the_job_leaves_no_scratch_files_beside_the_output(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    path = _write(leads, tmp_path / "leads.parquet")
    _run(scorer, path, tmp_path / "out" / "s.parquet", chunk_rows=50)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "s.parquet",
        "s.rejects.csv",
    ]


def test_a_chunk_of_nothing_but_bad_rows_does_not_stop_the_job(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    spoiled = leads.copy()
    spoiled.loc[:19, "minutes_to_first_response"] = -5.0
    path = _write(spoiled, tmp_path / "leads.parquet")
    summary, scores, rejects = _run(scorer, path, tmp_path / "s.parquet", chunk_rows=20)
    _reconciles(summary, scores, rejects)
    assert summary.rejected == 20 and len(scores) == 100
    assert scores["probability"].dtype == "float64"
    assert scores["top_reasons"].str.len().gt(0).all()


def test_unseen_categories_are_scored_and_counted(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    odd = leads.copy()
    odd.loc[::10, "industry"] = "space mining"
    odd.loc[::40, "region"] = "antarctica"
    path = _write(odd, tmp_path / "leads.parquet")
    summary, scores, rejects = _run(
        scorer, path, tmp_path / "s.parquet", chunk_rows=50, explain_reasons=False
    )
    assert summary.rejected == 0 and len(scores) == 120
    assert summary.unseen["industry"] == 12
    assert summary.unseen["region"] == 3
    assert summary.as_dict()["unseen_categories"]["industry"] == 12
    # 120 rows are too few to judge drift: PSI is reported, no warning raised.
    assert summary.drift and not summary.drift_checked and summary.drift_warnings == []


# --- refused input -------------------------------------------------------------------


def test_missing_columns_are_named_and_nothing_is_written(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    path = _write(leads.drop(columns=["region", "bant_need"]), tmp_path / "leads.csv")
    with pytest.raises(ScorerError, match=r"missing column\(s\) bant_need, region"):
        score_file(scorer, path, tmp_path / "s.parquet", tmp_path / "r.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leads.csv"]


@pytest.mark.parametrize("name", ["empty.parquet", "header.csv", "nothing.csv"])
def test_empty_input_is_refused(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    if name == "nothing.csv":
        path.write_text("")
    else:
        _write(leads.iloc[:0], path)
    message = "is empty" if name == "nothing.csv" else "no rows to score"
    with pytest.raises(ContractError, match=message):
        score_file(scorer, path, tmp_path / "s.parquet", tmp_path / "r.csv")
    assert not (tmp_path / "s.parquet").exists()
    assert not list(tmp_path.glob(".*partial"))


def test_wrong_suffixes_and_unreadable_files_are_refused(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    good = _write(leads, tmp_path / "leads.parquet")
    (tmp_path / "leads.txt").write_text("deal_id\n")
    with pytest.raises(ScorerError, match=r"leads\.txt: the input must be"):
        score_file(
            scorer, tmp_path / "leads.txt", tmp_path / "s.csv", tmp_path / "r.csv"
        )
    with pytest.raises(ScorerError, match=r"s\.json: the output must be"):
        score_file(scorer, good, tmp_path / "s.json", tmp_path / "r.csv")
    with pytest.raises(FileNotFoundError, match="input file not found"):
        score_file(
            scorer, tmp_path / "no.parquet", tmp_path / "s.csv", tmp_path / "r.csv"
        )
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(good.read_bytes()[:500])
    with pytest.raises(ContractError, match=r"broken\.parquet: cannot read the input"):
        score_file(scorer, broken, tmp_path / "s.csv", tmp_path / "r.csv")
    assert not (tmp_path / "s.csv").exists() and not (tmp_path / "s.json").exists()


def test_activities_without_the_needed_columns_are_refused(
    scorer: Scorer, leads: pd.DataFrame, activities: Path, tmp_path: Path
) -> None:
    path = _write(leads, tmp_path / "leads.parquet")
    log = _write(
        pd.read_parquet(activities).drop(columns="timestamp"), tmp_path / "log.parquet"
    )
    with pytest.raises(ScorerError, match="missing activity column"):
        score_file(scorer, path, tmp_path / "s.parquet", tmp_path / "r.csv", log)


# --- written whole, and the same twice -----------------------------------------------


class Crash(RuntimeError):
    """The job dies half-way."""


def test_a_crash_leaves_no_file_that_looks_done(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    path = _write(leads, tmp_path / "leads.parquet")
    out, rejects = tmp_path / "scores.parquet", tmp_path / "scores.rejects.csv"
    out.write_bytes(b"yesterday's complete scores")
    chunks: list[int] = []

    def die_on_the_second_chunk(n: int) -> None:
        chunks.append(n)
        if len(chunks) == 2:
            raise Crash("killed")

    with pytest.raises(Crash):
        score_file(
            scorer,
            path,
            out,
            rejects,
            chunk_rows=40,
            explain_reasons=False,
            progress=die_on_the_second_chunk,
        )
    assert out.read_bytes() == b"yesterday's complete scores"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "leads.parquet",
        "scores.parquet",
    ]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_scoring_twice_gives_the_same_bytes(
    scorer: Scorer, leads: pd.DataFrame, activities: Path, tmp_path: Path, suffix: str
) -> None:
    inputs = leads.head(40).copy()
    inputs.loc[7, "employees"] = -1  # a reject, so the rejects file is compared too
    path = _write(inputs, tmp_path / "leads.parquet")
    written = []
    for run in ("a", "b"):
        out = tmp_path / run / f"scores{suffix}"
        score_file(
            scorer,
            path,
            out,
            out.with_suffix(".rejects.csv"),
            activities,
            chunk_rows=25,
        )
        written.append([out.read_bytes(), out.with_suffix(".rejects.csv").read_bytes()])
    assert written[0] == written[1]
    assert len(written[0][0]) > 1000 and written[0][1].count(b"\n") == 2


def test_csv_and_parquet_input_give_the_same_scores(
    scorer: Scorer, leads: pd.DataFrame, activities: Path, tmp_path: Path
) -> None:
    results = [
        _run(
            scorer,
            _write(leads.head(50), tmp_path / f"leads{suffix}"),
            tmp_path / f"scores{suffix}.parquet",
            activities_path=activities,
        )[1]
        for suffix in (".csv", ".parquet")
    ]
    pd.testing.assert_frame_equal(results[0], results[1])


def test_no_explain_gives_the_same_scores_without_reasons(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    path = _write(leads.head(50), tmp_path / "leads.parquet")
    _, explained, _ = _run(scorer, path, tmp_path / "with.csv")
    _, plain, _ = _run(scorer, path, tmp_path / "without.csv", explain_reasons=False)
    assert list(plain.columns) == [
        ID_COLUMN,
        "probability",
        "score",
        "band",
        "model_version",
    ]
    pd.testing.assert_frame_equal(plain, explained[plain.columns])
    assert "top_reasons" in explained


def test_leads_without_any_activity_are_scored(
    scorer: Scorer, leads: pd.DataFrame, activities: Path, tmp_path: Path
) -> None:
    strangers = leads.head(30).assign(**{ID_COLUMN: [f"NEW{i}" for i in range(30)]})
    path = _write(strangers, tmp_path / "leads.parquet")
    summary, scores, _ = _run(
        scorer, path, tmp_path / "s.parquet", activities_path=activities, chunk_rows=10
    )
    assert summary.scored == 30
    assert scores["top_reasons"].str.contains("no recorded activity").any()


# --- drift ---------------------------------------------------------------------------


def test_the_training_window_shows_no_drift_and_a_shifted_input_does(
    small_project: Path,
    small_leads: pd.DataFrame,
    scorer: Scorer,
    activities: Path,
    tmp_path: Path,
) -> None:
    features = pd.read_parquet(small_project / "data/features/features.parquet")
    window = set(time_split(features, SplitConfig()).train[ID_COLUMN])
    train = small_leads[small_leads[ID_COLUMN].isin(window)]
    path = _write(train, tmp_path / "train.parquet")
    same, _, _ = _run(
        scorer,
        path,
        tmp_path / "same.parquet",
        activities_path=activities,
        explain_reasons=False,
        chunk_rows=500,
    )
    assert len(same.drift) == len(scorer.spec["drift_reference"])
    assert max(same.drift.values()) < 0.01 and same.drift_warnings == []
    assert same.drift_checked
    shifted = train.assign(
        employees=train["employees"] * 1000,
        lead_source="outbound",
        meddic_champion="no",
        meddic_economic_buyer="no",
    )
    path = _write(shifted, tmp_path / "shifted.parquet")
    moved, _, _ = _run(
        scorer, path, tmp_path / "moved.parquet", explain_reasons=False, chunk_rows=500
    )
    assert {"log_employees", "lead_source", "n_activities", "score"} <= set(
        moved.drift_warnings
    ), moved.drift
    assert "industry" not in moved.drift_warnings
    assert moved.drift["log_employees"] > 0.25


# --- bounded memory -------------------------------------------------------------------

MEMORY_SCRIPT = """
import json, sys
from pathlib import Path
from lead_ml.batch import score_file
from lead_ml.scorer import load_scorer

scorer, leads, out, chunk_rows = sys.argv[1:]
summary = score_file(
    load_scorer(scorer), Path(leads), Path(out), Path(out + ".rejects.csv"),
    explain_reasons=False, chunk_rows=int(chunk_rows),
)
# VmHWM: the peak resident memory of this process image (ru_maxrss would carry
# the parent's peak across fork and exec).
status = Path("/proc/self/status").read_text().splitlines()
peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"rows": summary.scored, "peak_kb": peak}))
"""


@pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc (Linux)"
)
def test_memory_stays_bounded_as_the_input_grows_tenfold(
    small_project: Path, small_leads: pd.DataFrame, tmp_path: Path
) -> None:
    """Peak memory (VmHWM of a fresh process) of 10k and 100k leads in chunks of 5k
    stays within 1.3x; reading 100k at once, as a control, does not."""
    paths = {}
    for n in (10_000, 100_000):
        many = pd.concat([small_leads] * (n // len(small_leads) + 1)).head(n)
        many[ID_COLUMN] = [f"L{i:07d}" for i in range(n)]
        paths[n] = _write(many, tmp_path / f"leads{n}.parquet")
    runs = {
        "small": (paths[10_000], 5_000),
        "large": (paths[100_000], 5_000),
        "large, one chunk": (paths[100_000], 100_000),
    }
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-c", MEMORY_SCRIPT, str(small_project / "models/scorer")]
            + [str(path), str(tmp_path / f"{name}.parquet"), str(chunk_rows)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, (path, chunk_rows) in runs.items()
    }
    peak = {}
    for name, process in processes.items():
        stdout, _ = process.communicate()
        assert process.returncode == 0
        report = json.loads(stdout)
        assert report["rows"] == (10_000 if name == "small" else 100_000)
        peak[name] = report["peak_kb"]
    assert peak["large"] <= 1.3 * peak["small"], peak
    # The measurement sees a whole-file read: the control breaks the bound.
    assert peak["large, one chunk"] > 1.3 * peak["small"], peak
