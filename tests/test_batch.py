"""The batch job on every source: every row scored or rejected with a reason, files
written whole or not at all, the same bytes twice, the same scores as one frame,
drift against the training window, and memory bounded as the input grows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from projects import Project

from lead_ml.batch import (
    HASH_FILE,
    ID_BUCKET_BITS,
    BatchSummary,
    IdIndex,
    SeenIds,
    score_file,
)
from lead_ml.model import model_matrix
from lead_ml.scorer import DriftMonitor, Scorer, load_scorer
from lead_ml.tables import read_table
from lead_ml.vocab import ContractError, ScorerError


@pytest.fixture(scope="module")
def scorer(project: Project) -> Scorer:
    return load_scorer(project.path("models/scorer"))


@pytest.fixture(scope="module")
def activities(
    project: Project, tmp_path_factory: pytest.TempPathFactory
) -> Path | None:
    """The source's activity log as a file (None without one)."""
    return project.activities_file(tmp_path_factory.mktemp(f"log-{project.name}"))


@pytest.fixture(scope="module")
def leads(project: Project) -> pd.DataFrame:
    """120 lead rows from across the history."""
    rows = project.leads()
    return rows.iloc[:: len(rows) // 120].head(120).reset_index(drop=True)


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
    return summary, scores, pd.read_csv(rejects, dtype=str)


def _reconciles(
    summary: BatchSummary, scores: pd.DataFrame, rejects: pd.DataFrame
) -> None:
    assert summary.rows_in == summary.scored + summary.rejected
    assert (summary.scored, summary.rejected) == (len(scores), len(rejects))


def _bounded(scorer: Scorer) -> tuple[str, float]:
    """A number column with a lower bound, and the bound."""
    return next(
        (c, low)
        for c, (low, _) in sorted(scorer.contract.bounds.items())
        if low is not None
    )


def _numbers(scorer: Scorer) -> list[str]:
    return [c for c, k in scorer.contract.kinds.items() if k == "number"]


def _categories(scorer: Scorer) -> list[tuple[str, str]]:
    """(source column, feature) of the category features, in model order."""
    return [(s.column, s.name) for s in scorer.registry.specs if s.kind == "category"]


# --- no row lost ----------------------------------------------------------------------


def test_every_bad_row_is_rejected_with_its_reason_and_the_rest_keep_their_order(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    id_column = scorer.id_column
    bounded, low = _bounded(scorer)
    other = next((c for c in _numbers(scorer) if c != bounded), bounded)
    bad = leads.astype({bounded: object, other: object})
    bad.loc[5, id_column] = None
    bad.loc[70, bounded] = low - 12
    bad.loc[71, other] = "twelve"
    bad.loc[99, other] = "inf"
    expected = {
        5: f"{id_column} is missing",
        70: f"{bounded} is below {low:g} ({low - 12:g})",
        71: f"{other} is not a number: 'twelve'",
        99: f"{other} is not a number: 'inf'",
    }
    created = scorer.spec["created_column"]
    if created:
        bad[created] = bad[created].astype(str)
        bad.loc[40, created] = "2024-13-45"
        expected[40] = f"{created} is not an ISO 8601 date: '2024-13-45'"
    path = _write(bad, tmp_path / "leads.csv")
    summary, scores, rejects = _run(scorer, path, tmp_path / "s.parquet", chunk_rows=32)
    _reconciles(summary, scores, rejects)
    assert summary.rows_in == 120 and summary.rejected == len(expected)
    found = dict(zip(rejects["row"].astype(int), rejects["reason"], strict=True))
    assert found == expected
    assert list(rejects.columns[:4]) == ["table", "row", "reason", id_column]
    assert rejects.loc[rejects["row"] == "71", other].item() == "twelve"
    kept = np.setdiff1d(np.arange(120), list(expected))
    assert scores[id_column].tolist() == bad.loc[kept, id_column].astype(str).tolist()


def test_repeated_ids_are_rejected_within_and_across_chunks(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    id_column = scorer.id_column
    bounded, low = _bounded(scorer)
    ids = leads[id_column].astype(object).copy()
    ids[3] = ids[1]  # same chunk as its first copy
    ids[25] = ids[2]  # a later chunk
    ids[41] = ids[40]  # row 40 is invalid: row 41 keeps the id
    ids[55] = ids[49]  # row 49 (another chunk) is invalid: row 55 keeps the id
    repeated = leads.assign(**{id_column: ids})
    repeated.loc[[40, 49], bounded] = low - 1
    path = _write(repeated, tmp_path / "leads.parquet")
    summary, scores, rejects = _run(
        scorer, path, tmp_path / "s.parquet", chunk_rows=10, explain_reasons=False
    )
    _reconciles(summary, scores, rejects)
    reasons = dict(zip(rejects["row"].astype(int), rejects["reason"], strict=True))
    below = f"{bounded} is below {low:g} ({low - 1:g})"
    assert reasons == {
        3: f"duplicate {id_column} '{ids[1]}' (first seen at row 1)",
        25: f"duplicate {id_column} '{ids[2]}' (already scored at an earlier row)",
        40: below,
        49: below,
    }
    assert scores[id_column].is_unique
    assert {ids[41], ids[55]} <= set(scores[id_column])


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_the_id_index_finds_exactly_the_repeated_ids(
    tmp_path: Path, suffix: str
) -> None:
    rng = np.random.default_rng(5)
    values: list[str | None] = [f"D{i}" for i in rng.integers(0, 20_000, 6_000)]
    values[17] = None  # one missing id: hashed as "", repeated by nothing
    ids = pd.Series(values, dtype="string")
    path = _write(pd.DataFrame({"Lead ID": ids, "x": 1.0}), tmp_path / f"ids{suffix}")
    folder = tmp_path / "index"
    folder.mkdir()
    index = IdIndex.build(path, 700, folder, "Lead ID")
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
    bounded, low = _bounded(scorer)
    spoiled = leads.copy()
    spoiled.loc[:19, bounded] = low - 5
    path = _write(spoiled, tmp_path / "leads.parquet")
    summary, scores, rejects = _run(scorer, path, tmp_path / "s.parquet", chunk_rows=20)
    _reconciles(summary, scores, rejects)
    assert summary.rejected == 20 and len(scores) == 100
    assert scores["probability"].dtype == "float64"
    assert scores["top_reasons"].str.len().gt(0).all()


def test_unseen_categories_are_scored_and_counted(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    (first, first_name), (second, second_name) = _categories(scorer)[:2]
    levels = scorer.model.info.categories
    # known levels everywhere, then values the model never saw in a few rows
    odd = leads.assign(**{first: levels[first_name][0], second: levels[second_name][0]})
    odd.loc[::10, first] = "space mining"
    odd.loc[::40, second] = "antarctica"
    path = _write(odd, tmp_path / "leads.parquet")
    summary, scores, _ = _run(
        scorer, path, tmp_path / "s.parquet", chunk_rows=50, explain_reasons=False
    )
    assert summary.rejected == 0 and len(scores) == 120
    assert summary.unseen[first_name] == 12
    assert summary.unseen[second_name] == 3
    assert summary.as_dict()["unseen_categories"][first_name] == 12
    # 120 rows are too few to judge drift: PSI is reported, no warning raised.
    assert summary.drift and not summary.drift_checked and summary.drift_warnings == []


# --- refused input -------------------------------------------------------------------


def test_missing_columns_are_named_and_nothing_is_written(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    dropped = sorted(column for column, _ in _categories(scorer)[:2])
    path = _write(leads.drop(columns=dropped), tmp_path / "leads.csv")
    with pytest.raises(ScorerError, match=rf"missing column\(s\) {', '.join(dropped)}"):
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
    message = "empty" if name == "nothing.csv" else "no rows to score"
    with pytest.raises(ContractError, match=message):
        score_file(scorer, path, tmp_path / "s.parquet", tmp_path / "r.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_wrong_suffixes_and_unreadable_files_are_refused(
    scorer: Scorer, leads: pd.DataFrame, tmp_path: Path
) -> None:
    good = _write(leads, tmp_path / "leads.parquet")
    (tmp_path / "leads.txt").write_text(f"{scorer.id_column}\n")
    with pytest.raises(ContractError, match=r"leads\.txt .*cannot read a '\.txt' file"):
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
    with pytest.raises(ContractError, match=r"broken\.parquet .*cannot read it"):
        score_file(scorer, broken, tmp_path / "s.csv", tmp_path / "r.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "broken.parquet",
        "leads.parquet",
        "leads.txt",
    ]


def test_an_activity_log_the_scorer_cannot_use_is_refused(
    scorer: Scorer, leads: pd.DataFrame, activities: Path | None, tmp_path: Path
) -> None:
    path = _write(leads, tmp_path / "leads.parquet")
    if activities is None:
        log = _write(
            pd.DataFrame({"Opp": ["O-1"], "When": ["2024-01-02"], "Kind": ["Demo"]}),
            tmp_path / "log.csv",
        )
        message = "trained without an activity log"
    else:
        log = _write(
            pd.read_parquet(activities).drop(columns="timestamp"),
            tmp_path / "log.parquet",
        )
        message = "missing activity column.s. timestamp"
    with pytest.raises(ScorerError, match=message):
        score_file(scorer, path, tmp_path / "s.parquet", tmp_path / "r.csv", log)
    assert not (tmp_path / "s.parquet").exists() and not (tmp_path / "r.csv").exists()


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
    scorer: Scorer,
    leads: pd.DataFrame,
    activities: Path | None,
    tmp_path: Path,
    suffix: str,
) -> None:
    bounded, low = _bounded(scorer)
    inputs = leads.head(40).copy()
    inputs.loc[7, bounded] = low - 1  # a reject, so the rejects file is compared too
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
    scorer: Scorer, leads: pd.DataFrame, activities: Path | None, tmp_path: Path
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
    assert list(plain.columns) == scorer.output_columns(explain_reasons=False)
    assert list(explained.columns) == scorer.output_columns()
    pd.testing.assert_frame_equal(plain, explained[plain.columns])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_file_streamed_in_chunks_scores_as_one_frame(
    scorer: Scorer,
    leads: pd.DataFrame,
    activities: Path | None,
    tmp_path: Path,
    suffix: str,
) -> None:
    id_column = scorer.id_column
    bounded, low = _bounded(scorer)
    inputs = leads.astype({id_column: object})
    ids = inputs[id_column].copy()
    inputs.loc[7, id_column] = ids[3]  # same chunk of 40 as its first copy
    inputs.loc[95, id_column] = ids[10]  # a later chunk
    inputs.loc[60, bounded] = low - 1  # invalid: row 100 keeps its id
    inputs.loc[100, id_column] = ids[60]
    path = _write(inputs, tmp_path / f"leads{suffix}")
    out = tmp_path / "out"
    summary, streamed, rejects = _run(
        scorer, path, out / "s.parquet", chunk_rows=40, activities_path=activities
    )
    assert (summary.rows_in, summary.scored, summary.rejected) == (120, 117, 3)
    reasons = dict(zip(rejects["row"].astype(int), rejects["reason"], strict=True))
    assert reasons[7] == f"duplicate {id_column} '{ids[3]}' (first seen at row 3)"
    assert reasons[95] == (
        f"duplicate {id_column} '{ids[10]}' (already scored at an earlier row)"
    )
    assert reasons[60].startswith(f"{bounded} is below")
    # the same scores as the whole file read at once and scored in one frame
    log = None if activities is None else pd.read_parquet(activities)
    whole = scorer.score(read_table(path, "the input"), log)
    kept = whole[whole["reject_reason"].isna()].reset_index(drop=True)
    assert whole["reject_reason"].notna().sum() == 3
    assert streamed[id_column].tolist() == kept[id_column].tolist()
    np.testing.assert_array_equal(
        streamed["probability"].to_numpy(float), kept["probability"].to_numpy(float)
    )
    assert streamed["top_reasons"].tolist() == kept["top_reasons"].tolist()
    assert streamed["next_question"].tolist() == kept["next_question"].tolist()


# --- activities ----------------------------------------------------------------------


def test_the_activity_log_reaches_the_model_and_bad_rows_are_counted(
    synthetic_project: Project, tmp_path: Path
) -> None:
    scorer = load_scorer(synthetic_project.path("models/scorer"))
    assert scorer.counts_activities
    key, stamp, kind = scorer.activity_columns or []
    leads = synthetic_project.leads().head(150)
    path = _write(leads, tmp_path / "leads.parquet")
    log = synthetic_project.activities()
    assert log is not None
    lead = str(leads[scorer.id_column].iloc[3])
    bad = pd.DataFrame(
        {key: [lead, lead], stamp: ["2024-05-01", "soon"], kind: [None, "demo_booked"]}
    )
    dirty = _write(
        pd.concat([log.astype({stamp: str}), bad], ignore_index=True),
        tmp_path / "log.csv",
    )
    counted, with_log, _ = _run(
        scorer, path, tmp_path / "a.parquet", chunk_rows=70, activities_path=dirty
    )
    assert counted.activities_rejected == 2
    in_memory = scorer.score(leads, log)
    np.testing.assert_array_equal(
        with_log["probability"].to_numpy(float),
        in_memory["probability"].to_numpy(float),
    )
    blind, without, _ = _run(scorer, path, tmp_path / "b.parquet")
    assert blind.scored == counted.scored == 150
    moved = with_log["probability"].to_numpy() != without["probability"].to_numpy()
    assert moved.mean() > 0.5  # the log reaches the model
    strangers = leads.head(30).assign(
        **{scorer.id_column: [f"NEW{i}" for i in range(30)]}
    )
    new = _write(strangers, tmp_path / "new.parquet")
    _, scored, _ = _run(scorer, new, tmp_path / "c.parquet", activities_path=dirty)
    assert len(scored) == 30
    assert scored["top_reasons"].str.contains("no activity before the snapshot").any()


# --- drift ---------------------------------------------------------------------------


def window(project: Project) -> pd.DataFrame:
    """The lead rows of the training window: the drift reference itself."""
    features = project.features()
    train = set(features.loc[features["split"].eq("train").fillna(False), "deal_id"])
    leads = project.leads()
    column = project.params.source.tables.deals.id
    return leads[leads[column].astype(str).isin(train)]


def test_the_training_window_shows_no_drift_and_a_shifted_input_does(
    project: Project,
    scorer: Scorer,
    activities: Path | None,
    tmp_path: Path,
) -> None:
    train = window(project)
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
    bounded, _ = _bounded(scorer)
    (column, name), *_ = _categories(scorer)
    rare = train[column].value_counts().index[-1]
    shifted = train.assign(**{bounded: train[bounded] * 1000 + 1000, column: rare})
    path = _write(shifted, tmp_path / "shifted.parquet")
    moved, _, _ = _run(
        scorer,
        path,
        tmp_path / "moved.parquet",
        activities_path=activities,
        explain_reasons=False,
        chunk_rows=500,
    )
    number = next(s.name for s in scorer.registry.specs if s.column == bounded)
    assert {number, name} <= set(moved.drift_warnings), moved.drift
    assert moved.drift[number] > 0.25


def test_the_jobs_drift_counts_what_it_scored(
    scorer: Scorer, leads: pd.DataFrame, activities: Path | None, tmp_path: Path
) -> None:
    """The streamed job's PSI equals binning the scored leads' model matrix at once."""
    path = _write(leads, tmp_path / "leads.parquet")
    done, _, _ = _run(
        scorer, path, tmp_path / "s.parquet", chunk_rows=32, activities_path=activities
    )
    log = None
    if activities is not None:
        log = scorer.read_activities(pd.read_parquet(activities))[0]
    scored = scorer.score_chunk(leads, log, explain_reasons=False)
    info = scorer.model.info
    monitor = DriftMonitor(scorer.spec["drift_reference"])
    monitor.add(
        model_matrix(scored.features, info.categories, info.feature_names),
        scored.output["probability"].to_numpy(float),
    )
    expected = monitor.psi()
    assert done.drift.keys() == expected.keys()
    assert done.drift == pytest.approx(expected, abs=1e-12)
    assert len(expected) == len(info.feature_names) + 1  # every feature and the score


# --- bounded memory -------------------------------------------------------------------

MEMORY_SCRIPT = """
import json, sys
from pathlib import Path
import pyarrow.parquet as pq
from lead_ml.batch import score_file
from lead_ml.scorer import load_scorer

def status(field):
    lines = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in lines if line.startswith(field))

scorer, out, runs = sys.argv[1:]
scorer = load_scorer(scorer)
report = {}
for name, leads, chunk_rows in json.loads(runs):
    if not report:  # warm up (libraries, compiled kernels) on a few leads
        first = next(pq.ParquetFile(leads).iter_batches(batch_size=10)).to_pandas()
        scorer.score_chunk(first, explain_reasons=False)
    # VmHWM, the peak resident memory of this process, from the memory in use now
    Path("/proc/self/clear_refs").write_text("5")
    base = status("VmRSS:")
    summary = score_file(
        scorer, Path(leads), Path(out) / f"{name}.parquet",
        Path(out) / f"{name}.rejects.csv", explain_reasons=False,
        chunk_rows=chunk_rows,
    )
    peak = status("VmHWM:")
    report[name] = {"rows": summary.scored, "peak_kb": peak, "taken_kb": peak - base}
print(json.dumps(report))
"""


@pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(),
    reason="reads and resets VmHWM through /proc (Linux)",
)
def test_memory_stays_bounded_as_the_input_grows_tenfold(
    project: Project, scorer: Scorer, tmp_path: Path
) -> None:
    """Peak memory of a job over 100k leads in chunks of 5k stays within 1.3x that of
    10k leads (run after it in the same fresh process); reading the 100k at once, as
    a control, takes several times the memory the 10k job takes."""
    rows = project.leads()[scorer.contract.columns]
    paths = {}
    for n in (10_000, 100_000):
        many = pd.concat([rows] * (n // len(rows) + 1)).head(n)
        many[scorer.id_column] = [f"L{i:07d}" for i in range(n)]
        paths[n] = str(_write(many, tmp_path / f"leads{n}.parquet"))
    jobs = {
        "chunked": [("small", paths[10_000], 5_000), ("large", paths[100_000], 5_000)],
        "control": [("whole", paths[100_000], 100_000)],
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", MEMORY_SCRIPT, str(project.path("models/scorer"))]
            + [str(tmp_path), json.dumps(runs)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for runs in jobs.values()
    ]
    report: dict[str, dict[str, int]] = {}
    for process in processes:
        stdout, _ = process.communicate()
        assert process.returncode == 0
        report |= json.loads(stdout)
    assert [report[n]["rows"] for n in ("small", "large", "whole")] == [
        10_000,
        100_000,
        100_000,
    ]
    peak = {name: run["peak_kb"] for name, run in report.items()}
    taken = {name: run["taken_kb"] for name, run in report.items()}
    assert peak["large"] <= 1.3 * peak["small"], report
    # The measurement sees a whole-file read: the control takes far more.
    assert taken["whole"] > 3 * taken["small"], report
