"""What the scores did after deployment: past score files judged by the outcomes
that closed since, and a retrain verdict by the rule declared in params.yaml.

Input: score files written by `lead-ml score` (CSV or Parquet: the source's id,
``probability``, ``band``, ``model_version``) and the source's deals as
`lead-ml validate` labelled them from a newer export (outcome won / lost / open,
``closed_at`` when the source has a closed date).

When a lead was scored comes from, per file: ``--scored-at`` when given, else a
``scored_at`` column (an import file of the write-back carries one), else the file's
modification time (what `lead-ml score` leaves: the file is renamed into place when
the job ends). The result says which for every file.

How leads are judged:

- score rows are matched to deals by the source's id, read as the scorer reads it
  (trimmed; a whole-number float id 7.0 is ``7``; a CSV's formula escape dropped);
- a lead scored several times is judged by its **latest scoring at or before its
  close** (the score reps had last while the deal was open); scorings after the close
  are left out, and a lead scored only after it closed is counted, not judged. With
  no closed date the latest scoring is taken;
- leads still open are counted per band and month, never judged; scored leads
  missing from the outcomes (an id the export no longer holds, or one the validate
  stage rejected) are counted, never dropped silently.

What is measured: the realized win rate per band A-D against the band's mean
predicted probability, calibration per month of scoring (each lead in the month of
its judged scoring), both with a 95% Wilson interval; the ROC AUC of past scores
against the realized outcomes with a bootstrap 95% CI (as `lead-ml compare`); the
PSI of the score distribution per month of scoring (every scoring counts) against
the scorer's training window (or, without a scorer, the first month scored), as the
batch job computes it. The retrain rule (``monitor:`` in params.yaml) reads them:

>>> wilson(30, 100)
[0.2189, 0.3958]
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score

from lead_ml.batch import id_keys
from lead_ml.config import MonitorConfig, Params, SourceConfig
from lead_ml.evaluate import paired_bootstrap_auc_delta
from lead_ml.schema import id_text
from lead_ml.scorer import DriftMonitor, drift_reference
from lead_ml.sources import Deals, lead_rows, source_activities
from lead_ml.tables import read_chunks, read_header
from lead_ml.vocab import BANDS, ConfigError, ContractError

#: Score rows read at a time (only the few columns monitoring needs).
CHUNK_ROWS = 200_000
#: What a score file must hold besides the source's id column.
SCORE_COLUMNS = ("probability", "band")
SCORED_AT = "scored_at"
#: A CSV written by lead-ml escapes text starting like a formula with a quote.
FORMULA_ESCAPE = r"^'(?=[=+\-@\t\r])"
#: Unknown ids listed in the result, as examples (all are counted).
MAX_EXAMPLES = 10
RETRAIN, KEEP, UNDECIDED = "retrain", "keep", "not enough data"


@dataclass(frozen=True)
class ScoreFile:
    """A score file and, when the user gave it, when it was scored (naive UTC)."""

    path: Path
    scored_at: datetime | None = None


def scoring_time(text: str) -> datetime:
    """When a file was scored, from ISO 8601 text (a date, or a time with or
    without a zone; none means UTC), as naive UTC.

    >>> scoring_time("2025-06-30T02:00+02:00").isoformat()
    '2025-06-30T00:00:00'"""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--scored-at: {text!r} is not an ISO 8601 date or time; give one such "
            "as 2025-06-30 or 2025-06-30T09:30:00Z"
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def score_files(paths: list[Path], scored_at: list[str] | None) -> list[ScoreFile]:
    """The files with their scoring times: none given, one for every file, or one
    per file in order; ConfigError otherwise."""
    times = [scoring_time(text) for text in scored_at or []]
    if len(times) == 1:
        times = times * len(paths)
    if times and len(times) != len(paths):
        raise ConfigError(
            f"--scored-at: {len(times)} times for {len(paths)} score files; give "
            "one for all files or one per file, in the order of the files"
        )
    if not times:
        return [ScoreFile(path) for path in paths]
    return [ScoreFile(p, t) for p, t in zip(paths, times, strict=True)]


# --- reading score files -----------------------------------------------------------


def wilson(wins: int, n: int) -> list[float] | None:
    """The 95% Wilson interval of a win rate (None for no leads), 4 decimals."""
    if n == 0:
        return None
    interval = binomtest(int(wins), int(n)).proportion_ci(method="wilson")
    return [round(float(interval.low), 4), round(float(interval.high), 4)]


def _stamps(values: pd.Series, path: Path) -> pd.Series:
    """A ``scored_at`` column as naive UTC time stamps; ContractError naming the
    first value that does not read."""
    text = values.astype("string")
    stamps = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    bad = stamps.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ContractError(
            f"{path}: scored_at {text.iloc[row]!r} at row {row} is not an ISO 8601 "
            "time stamp; fix the file or give --scored-at"
        )
    return stamps.dt.tz_convert(None).astype("datetime64[ms]")


def _scored_at(file: ScoreFile, frame: pd.DataFrame) -> tuple[pd.Series, str]:
    """When each row was scored, and where that came from."""
    if file.scored_at is not None:
        stamp = pd.Timestamp(file.scored_at).tz_localize(None)
        return pd.Series(stamp, index=frame.index, dtype="datetime64[ms]"), "option"
    if SCORED_AT in frame:
        return _stamps(frame[SCORED_AT], file.path), "column"
    modified = datetime.fromtimestamp(file.path.stat().st_mtime, UTC)
    stamp = pd.Timestamp(modified).tz_localize(None)
    return pd.Series(stamp, index=frame.index, dtype="datetime64[ms]"), "file time"


def _columns(path: Path, id_column: str) -> list[str]:
    """The columns to read from a score file; ContractError when one is missing."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: the score file not found")
    header = read_header(path, "a score file")
    missing = [c for c in (id_column, *SCORE_COLUMNS) if c not in header]
    if missing:
        raise ContractError(
            f"{path}: no column(s) {', '.join(missing)}; monitor reads files of "
            f"`lead-ml score` ({id_column}, probability, band, model_version) for "
            "this source"
        )
    return [
        id_column,
        *SCORE_COLUMNS,
        *(c for c in ("model_version", SCORED_AT) if c in header),
    ]


def read_score_file(
    file: ScoreFile, id_column: str, missing: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One file's score rows (key, id, probability, band, model_version, scored_at)
    and what was read from it."""
    columns = _columns(file.path, id_column)
    parts = [c.frame for c in read_chunks(file.path, columns, CHUNK_ROWS)]
    empty = pd.DataFrame({c: pd.Series(dtype="string") for c in columns})
    # A job that rejected every lead leaves a file of no rows: nothing to judge.
    frame = pd.concat(parts, ignore_index=True) if parts else empty
    ids = frame[id_column]
    if not pd.api.types.is_numeric_dtype(ids.dtype):
        ids = ids.astype("string").str.replace(FORMULA_ESCAPE, "", regex=True)
    stamps, origin = _scored_at(file, frame)
    rows = pd.DataFrame(
        {
            "key": id_keys(ids, missing),
            "id": id_text(ids),
            "probability": pd.to_numeric(frame["probability"], errors="coerce"),
            "band": frame["band"].astype("string").str.strip(),
            "model_version": frame.get(
                "model_version", pd.Series(pd.NA, index=frame.index)
            ).astype("string"),
            "scored_at": stamps,
        }
    )
    info = {
        "path": str(file.path),
        "rows": len(rows),
        "scored_at_from": origin,
        "first_scored_at": _day(stamps.min()),
        "last_scored_at": _day(stamps.max()),
        "model_versions": sorted(rows["model_version"].dropna().unique().tolist()),
    }
    return rows, info


def _day(value: Any) -> str | None:
    return None if pd.isna(value) else pd.Timestamp(value).isoformat()


def read_scores(
    files: list[ScoreFile], id_column: str, missing: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Every file's score rows, in file then row order (``order`` numbers them)."""
    if not files:
        raise ContractError("no score file given; name the files `lead-ml score` wrote")
    frames, infos = [], []
    for number, file in enumerate(files):
        rows, info = read_score_file(file, id_column, missing)
        frames.append(rows.assign(file=number))
        infos.append(info)
    scores = pd.concat(frames, ignore_index=True)
    return scores.assign(order=np.arange(len(scores))), infos


# --- judging leads by their outcomes ------------------------------------------------


def outcomes_of(deals: Deals, missing: tuple[str, ...] = ()) -> pd.DataFrame:
    """The deals' outcome, won and closed date by lead key (one row per key)."""
    frame = deals.frame
    outcomes = pd.DataFrame(
        {
            "key": id_keys(frame["deal_id"], missing),
            "outcome": frame["outcome"].astype("string"),
            "won": frame["won"].astype("Int8"),
            "closed_at": frame["closed_at"],
        }
    )
    return outcomes.dropna(subset=["key"]).drop_duplicates("key")


def _chosen(merged: pd.DataFrame) -> pd.DataFrame:
    """Per lead, the scoring judged: the latest at or before the close (any, when
    the close is not dated or the lead is open); the latest overall for leads
    scored only after they closed, marked ``after_close``."""
    closed = merged["outcome"].isin(["won", "lost"]).to_numpy(bool)
    dated = merged["closed_at"].notna().to_numpy(bool)
    before = (merged["scored_at"] <= merged["closed_at"]).fillna(False).to_numpy(bool)
    usable = ~(closed & dated) | before
    ranked = merged.assign(usable=usable).sort_values(
        ["key", "usable", "scored_at", "order"], kind="stable"
    )
    latest = ranked.drop_duplicates("key", keep="last").copy()
    latest["after_close"] = ~latest["usable"]
    scorings = merged.groupby("key").size()
    latest["scorings"] = scorings.reindex(latest["key"]).to_numpy()
    return latest.drop(columns="usable").sort_values("order").reset_index(drop=True)


def _status(leads: pd.DataFrame) -> pd.Series:
    """judged (won or lost, scored before the close), open or after_close."""
    status = pd.Series("open", index=leads.index, dtype="string")
    closed = leads["outcome"].isin(["won", "lost"])
    status[closed] = "judged"
    status[closed & leads["after_close"]] = "after_close"
    return status


def judge(
    scores: pd.DataFrame,
    outcomes: pd.DataFrame,
    rejected_ids: set[str] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per scored lead known to the outcomes (its judged scoring, outcome,
    ``status``: judged / open / after_close), and the counts that reconcile:
    leads = judged + open + after_close + not_in_outcomes."""
    valid = scores["probability"].notna() & scores["key"].notna()
    scored = scores[valid]
    merged = scored.merge(outcomes, on="key", how="left")
    known = merged["outcome"].notna()
    unknown = merged.loc[~known].drop_duplicates("key")
    leads = _chosen(merged[known])
    leads["status"] = _status(leads)
    leads["month"] = leads["scored_at"].dt.strftime("%Y-%m")
    by_status = leads["status"].value_counts()
    judged = leads[leads["status"] == "judged"]
    counts = {
        "score_rows": len(scores),
        "unscored_rows": int((~valid).sum()),
        "scorings": len(scored),
        "leads": int(scored["key"].nunique()),
        "rescored_leads": int((leads["scorings"] > 1).sum()),
        "judged": int(by_status.get("judged", 0)),
        "won": int(judged["won"].sum()),
        "lost": int(len(judged) - judged["won"].sum()),
        "open": int(by_status.get("open", 0)),
        "scored_after_close": int(by_status.get("after_close", 0)),
        "not_in_outcomes": len(unknown),
        "rejected_by_validate": int(unknown["key"].isin(rejected_ids or set()).sum()),
        "not_in_outcomes_examples": unknown["id"].head(MAX_EXAMPLES).tolist(),
    }
    return leads, counts


# --- what the scores did ------------------------------------------------------------


def _rate(wins: int, n: int, predicted: float) -> dict[str, Any]:
    """Realized rate, its interval, the predicted mean and the gap between them."""
    rate = wins / n if n else None
    interval = wilson(wins, n)
    outside = interval is not None and not interval[0] <= predicted <= interval[1]
    return {
        "wins": wins,
        "win_rate": _round(rate),
        "win_rate_ci95": interval,
        "mean_predicted": _round(predicted if n else None),
        "gap": _round(rate - predicted if rate is not None else None),
        "predicted_outside_ci": bool(outside),
    }


def _round(value: float | None, digits: int = 4) -> float | None:
    """A JSON-safe number: rounded, None for missing or NaN."""
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), digits)


def band_table(leads: pd.DataFrame) -> list[dict[str, Any]]:
    """Per band A-D: judged leads, realized win rate (95% interval) against the
    band's mean predicted probability, and the band's leads still open."""
    judged = leads[leads["status"] == "judged"]
    rows = []
    for band in BANDS:
        chosen = judged[judged["band"] == band]
        probability = chosen["probability"]
        row = {"band": band, "judged": len(chosen)}
        row |= _rate(int(chosen["won"].sum()), len(chosen), float(probability.mean()))
        row["min_probability"] = _round(probability.min() if len(chosen) else None)
        row["max_probability"] = _round(probability.max() if len(chosen) else None)
        row["open"] = int(((leads["band"] == band) & (leads["status"] == "open")).sum())
        rows.append(row)
    return rows


def month_table(leads: pd.DataFrame, cfg: MonitorConfig) -> list[dict[str, Any]]:
    """Per month of scoring: leads (in the month of their judged scoring), closed,
    open, the closed share, and mean predicted against realized with its interval;
    ``judged`` when enough closed (``cfg.min_month_leads``, ``min_closed_share``)."""
    rows = []
    for month, group in leads.groupby("month", sort=True):
        judged = group[group["status"] == "judged"]
        still_open = int((group["status"] == "open").sum())
        share = len(judged) / (len(judged) + still_open) if len(judged) else 0.0
        predicted = float(judged["probability"].mean())
        row: dict[str, Any] = {"month": str(month), "leads": len(group)}
        row |= {"closed": len(judged), "open": still_open}
        row["closed_share"] = _round(share)
        row |= _rate(int(judged["won"].sum()), len(judged), predicted)
        row["judged"] = bool(
            len(judged) >= cfg.min_month_leads and share >= cfg.min_closed_share
        )
        rows.append(row)
    return rows


def auc_summary(
    leads: pd.DataFrame, cfg: MonitorConfig, n_bootstrap: int, seed: int
) -> dict[str, Any]:
    """ROC AUC of the judged scorings against the realized outcomes, with its
    bootstrap 95% CI; ``judged`` with ``cfg.min_outcomes`` wins and losses each."""
    judged = leads[leads["status"] == "judged"]
    won = judged["won"].to_numpy(int)
    wins, losses = int(won.sum()), int(len(won) - won.sum())
    result: dict[str, Any] = {"leads": len(won), "won": wins, "lost": losses}
    if not (wins and losses):
        return result | {"roc_auc": None, "ci95": None, "judged": False}
    probability = judged["probability"].to_numpy(float)
    # A constant score has AUC 0.5 on every resample: the paired delta against one,
    # shifted by 0.5, is the score's own bootstrap interval (as `lead-ml compare`).
    delta = paired_bootstrap_auc_delta(
        won, probability, np.zeros(len(won)), n_bootstrap, seed
    )
    low, high = (bound + 0.5 for bound in delta["delta_roc_auc_ci95"])
    return result | {
        "roc_auc": _round(roc_auc_score(won, probability)),
        "ci95": [_round(low), _round(high)],
        "judged": bool(min(wins, losses) >= cfg.min_outcomes),
    }


def psi_table(
    scores: pd.DataFrame,
    reference: dict[str, Any] | None,
    cfg: MonitorConfig,
) -> dict[str, Any]:
    """PSI of the score distribution per month of scoring, every scoring counted,
    against ``reference`` (the scorer's drift reference of the score: its training
    window) or, without one, the first month scored."""
    valid = scores[scores["probability"].notna()]
    months = valid["scored_at"].dt.strftime("%Y-%m")
    first = months.min() if len(months) else None
    if reference is None and first is not None:
        values = valid.loc[months == first, "probability"].to_numpy(float)
        reference = drift_reference(pd.DataFrame(), values)["score"]
        against = f"the first month scored ({first})"
    else:
        against = "the scorer's training window"
    rows = []
    for month in sorted(months.unique()):
        probability = valid.loc[months == month, "probability"].to_numpy(float)
        drift = DriftMonitor({"score": reference or {}})
        drift.add(pd.DataFrame(index=range(len(probability))), probability)
        is_reference = against.startswith("the first") and month == first
        rows.append(
            {
                "month": str(month),
                "scorings": len(probability),
                "psi": _round(drift.psi()["score"]),
                "judged": bool(len(probability) >= cfg.min_psi_rows)
                and not is_reference,
            }
        )
    return {"reference": against, "months": rows}


# --- replaying a past scoring run -----------------------------------------------------


def open_at(
    deals: Deals, source: SourceConfig, at: datetime
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The leads open at ``at`` (naive UTC) as the export held them, created by
    then and not closed by then, with no closed date; and their activity log up to
    ``at`` (None without one): what a scoring run on that day saw. ConfigError for
    a source without created dates (nothing says what was open when)."""
    if source.tables.deals.created is None:
        raise ConfigError(
            "source.tables.deals.created: this source has no created dates, so "
            "which leads were open on a day is unknown; score your own past files"
        )
    frame, moment = deals.frame, pd.Timestamp(at)
    closed = (frame["closed_at"] <= moment).fillna(False)
    chosen = frame[(frame["created_at"] <= moment) & ~closed]
    leads = lead_rows(chosen.drop(columns="closed_at"), source).reset_index(drop=True)
    log = deals.activities
    if log is None or source.tables.activities is None:
        return leads, None
    seen = log["deal_id"].isin(chosen["deal_id"].tolist()) & (
        log["timestamp"] <= moment
    )
    return leads, source_activities(log[seen].reset_index(drop=True), source)


# --- the retrain rule -----------------------------------------------------------------


def _check(
    name: str, condition: str, value: float | None, judged: bool, failed: bool
) -> dict[str, Any]:
    return {
        "check": name,
        "condition": condition,
        "value": value,
        "judged": judged,
        "failed": bool(judged and failed),
    }


def _latest(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    judged = [row for row in rows if row["judged"]]
    return judged[-1] if judged else None


def verdict(result: dict[str, Any], cfg: MonitorConfig) -> dict[str, Any]:
    """The retrain rule on a monitor result: each check with its numbers, and the
    decision (retrain when a judged check fails; keep when checks were judged and
    none failed; not enough data when none could be judged)."""
    auc = result["auc"]
    month = _latest(result["months"])
    drift = _latest(result["psi"]["months"])
    checks = [
        _check(
            "auc",
            f"ROC AUC of past scores at least {cfg.min_auc:g} (with "
            f"{cfg.min_outcomes} won and lost leads each)",
            auc["roc_auc"],
            auc["judged"],
            auc["roc_auc"] is not None and auc["roc_auc"] < cfg.min_auc,
        ),
        _check(
            "calibration",
            f"latest judged month ({month['month'] if month else 'none'}): mean "
            f"predicted within {cfg.max_calibration_gap:g} of the realized win rate "
            "or inside its 95% interval",
            month["gap"] if month else None,
            month is not None,
            month is not None
            and abs(month["gap"]) > cfg.max_calibration_gap
            and month["predicted_outside_ci"],
        ),
        _check(
            "psi",
            f"latest judged month ({drift['month'] if drift else 'none'}): score PSI "
            f"at most {cfg.max_psi:g} against {result['psi']['reference']}",
            drift["psi"] if drift else None,
            drift is not None,
            drift is not None and drift["psi"] > cfg.max_psi,
        ),
    ]
    failed = [c["check"] for c in checks if c["failed"]]
    judged = any(c["judged"] for c in checks)
    decision = RETRAIN if failed else KEEP if judged else UNDECIDED
    return {"decision": decision, "retrain": bool(failed), "checks": checks}


def monitor_scores(
    params: Params,
    files: list[ScoreFile],
    deals: Deals,
    reference: dict[str, Any] | None = None,
    reference_version: str | None = None,
) -> dict[str, Any]:
    """The whole monitor result (JSON-ready): files, counts, bands, months, AUC,
    PSI and the verdict. ``reference``: the scorer's drift reference of the score
    (``scorer.spec["drift_reference"]["score"]``), or None for the first month;
    ``reference_version``: that scorer's model version (files scored by another
    version are still compared with it, and the result lists their versions)."""
    source, cfg = params.source, params.monitor
    missing = tuple(source.missing_values)
    scores, infos = read_scores(files, source.tables.deals.id, missing)
    rejected = rejected_keys(deals, source.tables.deals.id, missing)
    leads, counts = judge(scores, outcomes_of(deals, missing), rejected)
    closed = deals.frame["closed_at"]
    result: dict[str, Any] = {
        "source": source.name,
        "id_column": source.tables.deals.id,
        "outcomes_closed_until": _day(closed.max()) if closed.notna().any() else None,
        "scoring_judged": "latest scoring at or before the close"
        if source.tables.deals.closed
        else "latest scoring (the source has no closed date)",
        "files": infos,
        "counts": counts,
        "bands": band_table(leads),
        "months": month_table(leads, cfg),
        "auc": auc_summary(leads, cfg, params.evaluate.n_bootstrap, params.seed),
        "psi": psi_table(scores, reference, cfg)
        | {"reference_version": reference_version if reference else None},
        "rule": cfg.model_dump(),
    }
    result["verdict"] = verdict(result, cfg)
    return result


def rejected_keys(deals: Deals, id_column: str, missing: tuple[str, ...]) -> set[str]:
    """Keys of the deal rows the validate stage rejected (from its rejects file)."""
    rejects = deals.rejects
    if not len(rejects) or id_column not in rejects:
        return set()
    rows = rejects[rejects["table"] == "deals"]
    return set(id_keys(rows[id_column], missing).dropna().tolist())


# --- tables for the terminal and the report -------------------------------------------


def _interval(row: dict[str, Any]) -> str:
    interval = row["win_rate_ci95"]
    return "" if interval is None else f"{interval[0]:.1%} to {interval[1]:.1%}"


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def tables(result: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The result as titled tables of text (the CLI prints them, the report
    renders them)."""
    bands = pd.DataFrame(
        [
            (
                r["band"],
                f"{r['judged']:,}",
                f"{r['wins']:,}",
                _share(r["win_rate"]),
                _interval(r),
                _share(r["mean_predicted"]),
                f"{r['open']:,}",
            )
            for r in result["bands"]
        ],
        columns=[
            "band",
            "judged",
            "won",
            "win rate",
            "95% interval",
            "predicted",
            "open",
        ],
    )
    months = pd.DataFrame(
        [
            (
                r["month"],
                f"{r['closed']:,}",
                f"{r['open']:,}",
                _share(r["win_rate"]),
                _interval(r),
                _share(r["mean_predicted"]),
                "yes" if r["judged"] else "no",
            )
            for r in result["months"]
        ],
        columns=[
            "month scored",
            "closed",
            "open",
            "win rate",
            "95% interval",
            "predicted",
            "judged",
        ],
    )
    drift = pd.DataFrame(
        [
            (
                r["month"],
                f"{r['scorings']:,}",
                f"{r['psi']:.3f}",
                "yes" if r["judged"] else "no",
            )
            for r in result["psi"]["months"]
        ],
        columns=["month scored", "scorings", "score PSI", "judged"],
    )
    checks = pd.DataFrame(
        [
            (
                c["check"],
                c["condition"],
                "" if c["value"] is None else f"{c['value']:.3f}",
                "FAIL" if c["failed"] else "pass" if c["judged"] else "not judged",
            )
            for c in result["verdict"]["checks"]
        ],
        columns=["check", "condition", "value", "result"],
    )
    return {
        "Realized win rate by band": bands,
        "Calibration by month of scoring": months,
        f"Score PSI against {result['psi']['reference']}": drift,
        "Retrain rule": checks,
    }


def headline(result: dict[str, Any]) -> str:
    """One paragraph: what was judged, the AUC and the verdict."""
    counts, auc = result["counts"], result["auc"]
    ranked = "no AUC (one outcome only)"
    if auc["roc_auc"] is not None:
        low, high = auc["ci95"]
        ranked = f"ROC AUC {auc['roc_auc']:.3f} (95% CI {low:.3f} to {high:.3f})"
    return (
        f"{counts['leads']:,} leads scored ({counts['scorings']:,} scorings, "
        f"{counts['rescored_leads']:,} scored more than once): {counts['judged']:,} "
        f"closed and judged ({counts['won']:,} won), {counts['open']:,} still open, "
        f"{counts['scored_after_close']:,} scored only after they closed, "
        f"{counts['not_in_outcomes']:,} not in the outcomes "
        f"({counts['rejected_by_validate']:,} of them rejected by validate); "
        f"{ranked}. Verdict: {result['verdict']['decision']}."
    )
