"""`lead-ml monitor`: past scores judged by the outcomes that closed since.

On the synthetic CRM, scoring runs are replayed: on five days of the last half
year, the leads open that day (`lead-ml open-leads`, activities up to the day) go
through the real `lead-ml score` with the exported scorer; the validated deals hold
the outcomes that closed later. Numbers are checked against an independent
computation (pandas, sklearn); shuffled scores and a drifted window must say
retrain, the real scores must not. X Education (no dates) checks the join and the
per-band table on a real export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from projects import Project, project_environment
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from lead_ml.cli import app
from lead_ml.config import parse_params, read_params_file
from lead_ml.monitor import (
    ScoreFile,
    judge,
    monitor_scores,
    outcomes_of,
    read_scores,
    rejected_keys,
    score_files,
)
from lead_ml.vocab import ConfigError

runner = CliRunner()
GHOSTS = ["ghost-1", "ghost-2", "ghost-3"]


def invoke(root: Path, *arguments: object) -> Any:
    """Run a lead-ml command inside a project folder (its own MLflow store)."""
    with project_environment(root):
        return runner.invoke(app, [str(a) for a in arguments])


def params_file(project: Project, folder: Path, monitor: dict[str, Any]) -> Path:
    """The project's params with a ``monitor`` section of our own."""
    raw = read_params_file(project.path("params.yaml"))
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(raw | {"monitor": monitor}, sort_keys=False))
    return path


@dataclass(frozen=True)
class Replay:
    """Score files of replayed scoring runs, the days they ran, and the folder."""

    project: Project
    folder: Path
    files: list[Path]
    days: list[pd.Timestamp]

    def monitor(self, *extra: object, files: list[Path] | None = None) -> Any:
        """`lead-ml monitor` on the files (or ``files``), each with its day."""
        files = self.files if files is None else files
        days = [f"--scored-at={d.date()}" for d in self.days[: len(files)]]
        return invoke(
            self.project.root,
            "monitor",
            *files,
            *days,
            "--params",
            self.project.path("params.yaml"),
            "--validated",
            self.project.path("data/validated"),
            "--model",
            self.project.path("models/scorer"),
            *extra,
        )


def score_day(project: Project, folder: Path, day: pd.Timestamp, suffix: str) -> Path:
    """The leads open on ``day`` through `lead-ml open-leads` and `lead-ml score`."""
    leads = folder / f"leads-{day.date()}.parquet"
    activities = folder / f"activities-{day.date()}.parquet"
    done = invoke(
        project.root,
        "open-leads",
        f"--at={day.date()}",
        "--out",
        leads,
        "--activities-out",
        activities,
        "--params",
        project.path("params.yaml"),
        "--validated",
        project.path("data/validated"),
    )
    assert done.exit_code == 0, done.output
    if suffix == ".csv":  # three ids the outcomes never heard of
        rows = pd.read_parquet(leads)
        ghosts = rows.head(3).assign(deal_id=GHOSTS)
        pd.concat([rows, ghosts], ignore_index=True).to_parquet(leads)
    scores = folder / f"scores-{day.date()}{suffix}"
    done = invoke(
        project.root,
        "score",
        "--model",
        project.path("models/scorer"),
        "--input",
        leads,
        "--activities",
        activities,
        "--output",
        scores,
        "--no-explain",
    )
    assert done.exit_code == 0, done.output
    return scores


@pytest.fixture(scope="module")
def replay(
    synthetic_project: Project, tmp_path_factory: pytest.TempPathFactory
) -> Replay:
    """Five scoring runs of the last half year, one of them CSV with ghost ids."""
    folder = tmp_path_factory.mktemp("monitor")
    closed = synthetic_project.deals().frame["closed_at"]
    end = closed.max().normalize() + pd.offsets.MonthEnd(0)
    days = [end - pd.offsets.MonthEnd(m) for m in (6, 5, 4, 3, 1)]
    suffixes = [".parquet", ".parquet", ".csv", ".parquet", ".parquet"]
    files = [
        score_day(synthetic_project, folder, day, suffix)
        for day, suffix in zip(days, suffixes, strict=True)
    ]
    return Replay(synthetic_project, folder, files, days)


def expected_judged(replay: Replay) -> pd.DataFrame:
    """The judged leads computed independently: every scoring with its day, the
    latest at or before the close of each closed deal."""
    frames = []
    for path, day in zip(replay.files, replay.days, strict=True):
        read = pd.read_csv if path.suffix == ".csv" else pd.read_parquet
        frames.append(read(path).assign(scored_at=day))
    scorings = pd.concat(frames, ignore_index=True)
    deals = replay.project.deals().frame[["deal_id", "outcome", "won", "closed_at"]]
    scorings = scorings.merge(deals.astype({"deal_id": str}), on="deal_id")
    closed = scorings["outcome"].isin(["won", "lost"])
    before = scorings[closed & (scorings["scored_at"] <= scorings["closed_at"])]
    latest = before.groupby("deal_id")["scored_at"].idxmax()
    return before.loc[latest].reset_index(drop=True)


def strict_json(path: Path) -> dict[str, Any]:
    """The JSON file, refusing NaN and Infinity (invalid JSON)."""

    def refuse(name: str) -> None:
        raise AssertionError(f"{path} holds {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_the_replayed_window_is_judged_as_computed_independently(
    replay: Replay,
) -> None:
    out = replay.folder / "monitor.json"
    done = replay.monitor("--out", out)
    assert done.exit_code == 0, done.output
    result = strict_json(out)
    expected = expected_judged(replay)
    counts = result["counts"]
    assert counts["judged"] == len(expected)
    assert counts["won"] == int(expected["won"].sum())
    auc = float(roc_auc_score(expected["won"].astype(int), expected["probability"]))
    assert result["auc"]["roc_auc"] == pytest.approx(auc, abs=1e-4)
    low, high = result["auc"]["ci95"]
    assert low < auc < high
    for row in result["bands"]:
        band = expected[expected["band"] == row["band"]]
        assert row["judged"] == len(band)
        assert row["wins"] == int(band["won"].sum())
        if len(band):
            assert row["win_rate"] == pytest.approx(band["won"].mean(), abs=1e-4)
            assert row["mean_predicted"] == pytest.approx(
                band["probability"].mean(), abs=1e-4
            )
    assert sum(m["closed"] for m in result["months"]) == len(expected)
    assert "judged" in done.output and "Retrain rule" in done.output


def test_every_scored_lead_is_accounted_for(replay: Replay) -> None:
    out = replay.folder / "counted.json"
    assert replay.monitor("--out", out).exit_code == 0
    counts = strict_json(out)["counts"]
    deals = replay.project.deals().frame.set_index("deal_id")["outcome"]
    ids = set()
    for path in replay.files:
        read = pd.read_csv if path.suffix == ".csv" else pd.read_parquet
        ids |= set(read(path)["deal_id"].astype(str))
    known = [i for i in ids if i in deals.index]
    assert counts["leads"] == len(ids)
    assert counts["not_in_outcomes"] == 3
    assert sorted(counts["not_in_outcomes_examples"]) == GHOSTS
    assert counts["open"] == int((deals.loc[known] == "open").sum())
    assert counts["open"] > 0 and counts["rescored_leads"] > 0
    parts = ("judged", "open", "scored_after_close", "not_in_outcomes")
    assert sum(counts[p] for p in parts) == counts["leads"]


def test_real_scores_keep_the_model(replay: Replay, tmp_path: Path) -> None:
    # PSI judged from 100 scorings a month, so that every check is judged here.
    rules = params_file(replay.project, tmp_path, {"min_psi_rows": 100})
    out = tmp_path / "monitor.json"
    done = replay.monitor("--params", rules, "--out", out, "--fail-on-retrain")
    assert done.exit_code == 0, done.output
    verdict = strict_json(out)["verdict"]
    assert verdict["decision"] == "keep"
    assert all(check["judged"] for check in verdict["checks"])


def test_shuffled_scores_say_retrain(replay: Replay, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    shuffled = []
    for path in replay.files:
        read = pd.read_csv if path.suffix == ".csv" else pd.read_parquet
        scores = read(path)
        order = rng.permutation(len(scores))
        for column in ("probability", "band"):
            scores[column] = scores[column].to_numpy()[order]
        shuffled.append(tmp_path / f"{path.stem}.parquet")
        scores.to_parquet(shuffled[-1])
    out = tmp_path / "monitor.json"
    done = replay.monitor("--out", out, "--fail-on-retrain", files=shuffled)
    assert done.exit_code == 1, done.output
    result = strict_json(out)
    failed = [c["check"] for c in result["verdict"]["checks"] if c["failed"]]
    assert result["verdict"]["decision"] == "retrain" and "auc" in failed
    assert result["auc"]["roc_auc"] < 0.65


def test_a_drifted_window_says_retrain(replay: Replay, tmp_path: Path) -> None:
    """The last open leads scored again after the export, every MEDDIC answer now
    yes: the score distribution moves (these scorings come after every close, so
    the judged ones stay those of the real runs)."""
    project = replay.project
    leads = pd.read_parquet(replay.folder / f"leads-{replay.days[-1].date()}.parquet")
    for column in leads.columns[leads.columns.str.startswith("meddic_")]:
        if project.params.source.types.get(column) == "evidence":
            leads[column] = "yes"
    drifted_leads = tmp_path / "drifted.parquet"
    leads.to_parquet(drifted_leads)
    scores = tmp_path / "drifted-scores.parquet"
    done = invoke(
        project.root,
        "score",
        "--model",
        project.path("models/scorer"),
        "--input",
        drifted_leads,
        "--output",
        scores,
        "--no-explain",
    )
    assert done.exit_code == 0, done.output
    later = (project.deals().frame["closed_at"].max() + pd.Timedelta(days=1)).date()
    files = [*replay.files, scores]
    days = [*(f"--scored-at={d.date()}" for d in replay.days), f"--scored-at={later}"]
    rules = params_file(project, tmp_path, {"min_psi_rows": 100})
    out = tmp_path / "monitor.json"
    done = invoke(
        project.root,
        "monitor",
        *files,
        *days,
        "--params",
        rules,
        "--validated",
        project.path("data/validated"),
        "--model",
        project.path("models/scorer"),
        "--out",
        out,
    )
    assert done.exit_code == 0, done.output
    result = strict_json(out)
    psi = {c["check"]: c for c in result["verdict"]["checks"]}["psi"]
    assert psi["failed"] and psi["value"] > 0.25
    assert result["verdict"]["decision"] == "retrain"
    assert result["counts"]["judged"] == len(expected_judged(replay))


def test_too_few_closed_leads_is_not_enough_data(
    replay: Replay, tmp_path: Path
) -> None:
    few = tmp_path / "few.parquet"
    pd.read_parquet(replay.files[0]).head(20).to_parquet(few)
    deals = replay.project.deals()
    result = monitor_scores(
        replay.project.params, [ScoreFile(few, replay.days[0])], deals
    )
    assert result["verdict"]["decision"] == "not enough data"
    assert not result["verdict"]["retrain"]
    assert result["psi"]["reference"].startswith("the first month scored")


def test_latest_scoring_before_the_close_is_judged(
    synthetic_project: Project, tmp_path: Path
) -> None:
    """One lead scored three times (twice before its close, once after), one only
    after its close, one still open, an unknown id (formula-escaped in the CSV),
    one the validate stage rejected and a row without a score: each counted where
    it belongs."""
    deals = synthetic_project.deals()
    frame = deals.frame
    rejects = deals.rejects[deals.rejects["table"] == "deals"]
    refused = rejects.loc[~rejects["deal_id"].isin(frame["deal_id"]), "deal_id"]
    closed = frame[frame["outcome"].isin(["won", "lost"])].iloc[:2]
    opened = frame[frame["outcome"] == "open"].iloc[0]
    first, second = closed.iloc[0], closed.iloc[1]
    day = pd.Timedelta(days=1)
    rows = [
        (first["deal_id"], 0.2, "C", first["closed_at"] - 10 * day),
        (first["deal_id"], 0.9, "A", first["closed_at"] - day),
        (first["deal_id"], 0.1, "D", first["closed_at"] + day),
        (second["deal_id"], 0.5, "B", second["closed_at"] + day),
        (opened["deal_id"], 0.3, "C", opened["created_at"] + day),
        ("'=ghost", 0.4, "B", opened["created_at"]),
        (refused.iloc[0], 0.4, "B", opened["created_at"]),
        (opened["deal_id"], None, None, opened["created_at"]),
    ]
    scores = pd.DataFrame(rows, columns=["deal_id", "probability", "band", "when"])
    scores["scored_at"] = scores.pop("when").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    path = tmp_path / "scores.csv"
    scores.to_csv(path, index=False)
    read, files = read_scores([ScoreFile(path)], "deal_id")
    assert files[0]["scored_at_from"] == "column"
    rejected = rejected_keys(deals, "deal_id", ())
    leads, counts = judge(read, outcomes_of(deals), rejected)
    judged = leads[leads["status"] == "judged"]
    assert judged["key"].tolist() == [first["deal_id"]]
    assert judged["probability"].tolist() == [0.9]
    assert counts["scored_after_close"] == 1 and counts["open"] == 1
    assert counts["not_in_outcomes_examples"] == ["=ghost", refused.iloc[0]]
    assert counts["not_in_outcomes"] == 2 and counts["rejected_by_validate"] == 1
    assert counts["unscored_rows"] == 1 and counts["rescored_leads"] == 1


def test_scoring_times_are_one_for_all_or_one_per_file(tmp_path: Path) -> None:
    paths = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    one = score_files(paths, ["2025-06-30"])
    assert [f.scored_at.isoformat() for f in one if f.scored_at] == [
        "2025-06-30T00:00:00"
    ] * 2
    with pytest.raises(ConfigError, match="one per file"):
        score_files(paths, ["2025-06-30", "2025-07-31", "2025-08-31"])
    with pytest.raises(ConfigError, match="not an ISO 8601"):
        score_files(paths, ["June"])


@pytest.mark.parametrize(
    ("section", "named"),
    [({"min_auc": 1.5}, "monitor.min_auc"), ({"max_aucs": 0.1}, "monitor.max_aucs")],
)
def test_the_monitor_section_is_strict(
    section: dict[str, Any], named: str, synthetic_project: Project
) -> None:
    raw = read_params_file(synthetic_project.path("params.yaml"))
    with pytest.raises(ConfigError, match=named):
        parse_params(raw | {"monitor": section})


def test_the_report_shows_the_monitor_section(replay: Replay, tmp_path: Path) -> None:
    project = replay.project
    result = tmp_path / "monitor.json"
    assert replay.monitor("--out", result).exit_code == 0
    page = tmp_path / "report.html"
    common = [
        "report",
        "--no-mlflow",
        "--params",
        project.path("params.yaml"),
        "--metrics",
        project.path("reports/metrics.json"),
        "--plots",
        project.path("reports/plots"),
        "--scorer",
        project.path("models/scorer"),
        "--features",
        project.path("data/features/features.parquet"),
        "--validated",
        project.path("data/validated"),
        "--rejects",
        project.path("reports/rejects.csv"),
        "--record",
        project.path("reports/export.json"),
        "--audit",
        project.path("reports/audit.json"),
        "--out",
        page,
    ]
    done = invoke(project.root, *common, "--monitor", result)
    assert done.exit_code == 0, done.output
    html = page.read_text()
    assert 'id="monitor"' in html and "Realized win rate by band" in html
    verdict = strict_json(result)["verdict"]["decision"]
    assert f"Retrain rule: {verdict}" in html
    missing = invoke(project.root, *common, "--monitor", tmp_path / "none.json")
    assert missing.exit_code == 2 and "run `lead-ml monitor` first" in missing.output


def test_a_real_export_joins_by_its_own_id(
    x_education_project: Project, tmp_path: Path
) -> None:
    """X Education: its test leads (Prospect ID, no dates) scored as CSV and joined
    with their outcomes; per band as counted by hand."""
    project = x_education_project
    test_ids = project.features().query("split == 'test'")["deal_id"]
    frame = project.deals().frame
    leads = project.leads().loc[frame["deal_id"].isin(test_ids).to_numpy()]
    inputs = tmp_path / "leads.csv"
    leads.to_csv(inputs, index=False)
    scores = tmp_path / "scores.csv"
    done = invoke(
        project.root,
        "score",
        "--model",
        project.path("models/scorer"),
        "--input",
        inputs,
        "--output",
        scores,
        "--no-explain",
    )
    assert done.exit_code == 0, done.output
    result = monitor_scores(
        project.params, score_files([scores], ["2024-01-01"]), project.deals()
    )
    scored = pd.read_csv(scores, dtype={"Prospect ID": str})
    outcomes = frame.set_index("deal_id")["won"]
    scored["won"] = outcomes.reindex(scored["Prospect ID"]).to_numpy()
    counts = result["counts"]
    assert counts["judged"] == len(scored) and counts["not_in_outcomes"] == 0
    assert result["scoring_judged"].startswith("latest scoring (the source has no")
    for row in result["bands"]:
        band = scored[scored["band"] == row["band"]]
        assert (row["judged"], row["wins"]) == (len(band), int(band["won"].sum()))
    refused = invoke(
        project.root,
        "open-leads",
        "--at=2024-01-01",
        "--out",
        tmp_path / "open.parquet",
        "--params",
        project.path("params.yaml"),
        "--validated",
        project.path("data/validated"),
    )
    assert refused.exit_code == 2 and "no created dates" in refused.output
