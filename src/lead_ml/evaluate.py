"""Metrics that compare the model with the BANT rule on the test window.

Pure functions on arrays and frames: no files, no printing, no MLflow. Every dict
they return holds plain Python numbers and lists so it can go straight to
``json.dump``.

One ROC AUC per run: on a test window it is that window's, with a bootstrap CI;
out of fold (:func:`evaluate_folds`) it is the mean of the folds' AUCs, with their
spread and a CI from resampling within every fold. The other metrics, the capacity
view and the plots are read off the pooled out-of-fold scores. :func:`drift_checks`
warns of a base-rate shift and miscalibration on the judged window, and
:func:`capacity_check` of an AUC gain that the capacity view contradicts.

>>> won = np.array([0, 0, 1, 1])
>>> classification_metrics(won, np.array([0.1, 0.4, 0.35, 0.8]))["roc_auc"]
0.75
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from lead_ml.baseline import base_rate_verdict
from lead_ml.config import EvaluateConfig, Params
from lead_ml.features import FeatureRegistry
from lead_ml.model import fold_scores

#: Points per approach on the cumulative gains curve (every 1% of leads).
GAINS_POINTS = 101


def _outcomes(y_true: ArrayLike) -> np.ndarray:
    """Outcomes as a 0/1 int array; ValueError if anything else is in there."""
    won = np.asarray(y_true)
    if won.ndim != 1 or won.size == 0 or not np.isin(won, [0, 1]).all():
        raise ValueError("y_true must be a non-empty 1-d array of 0/1 outcomes")
    return won.astype(int)


def _scores(score: ArrayLike, n: int, name: str) -> np.ndarray:
    """Scores as a finite float array of length n; ValueError naming it otherwise."""
    values = np.asarray(score, dtype=float)
    if values.shape != (n,) or not np.isfinite(values).all():
        raise ValueError(f"{name} must be {n} finite numbers, one per outcome")
    return values


def _both_classes(won: np.ndarray) -> None:
    if won.min() == won.max():
        raise ValueError("y_true needs both won (1) and lost (0) deals to rank them")


def _calibration_bins(prob: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin of each probability among n_bins equal-width bins; 1.0 goes in the last."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1; got {n_bins}")
    if prob.min() < 0 or prob.max() > 1:
        raise ValueError("probabilities must lie in [0, 1]")
    return np.minimum((prob * n_bins).astype(int), n_bins - 1)


def expected_calibration_error(
    y_true: ArrayLike, prob: ArrayLike, n_bins: int = 10
) -> float:
    """Expected calibration error over equal-width bins of [0, 1].

    ``ECE = sum over non-empty bins b of (n_b / n) * |mean(prob in b) - mean(y in b)|``
    with bins ``[0, 1/n_bins), ..., [1 - 1/n_bins, 1]``. 0 means every bin's
    average prediction matches its observed win rate.

    >>> ece = expected_calibration_error([0, 1, 0, 1], [0.2, 0.2, 0.9, 0.9], n_bins=2)
    >>> round(ece, 6)
    0.35
    """
    won = _outcomes(y_true)
    p = _scores(prob, won.size, "prob")
    bins = _calibration_bins(p, n_bins)
    # Per bin, n_b/n * |mean_p - mean_y| is |sum_p - sum_y| / n.
    gap = np.bincount(bins, weights=p - won, minlength=n_bins)
    return float(np.abs(gap).sum() / won.size)


def classification_metrics(
    y_true: ArrayLike, prob: ArrayLike, n_bins: int = 10
) -> dict[str, float]:
    """Ranking and probability quality of predicted win probabilities.

    Keys: roc_auc, pr_auc (average precision), brier, log_loss, ece.

    >>> metrics = classification_metrics([0, 1], [0.0, 1.0])
    >>> metrics["roc_auc"], metrics["brier"], metrics["ece"]
    (1.0, 0.0, 0.0)
    """
    won = _outcomes(y_true)
    p = _scores(prob, won.size, "prob")
    _both_classes(won)
    return {
        "roc_auc": float(roc_auc_score(won, p)),
        "pr_auc": float(average_precision_score(won, p)),
        "brier": float(brier_score_loss(won, p)),
        "log_loss": float(log_loss(won, p, labels=[0, 1])),
        "ece": expected_calibration_error(won, p, n_bins),
    }


def _tie_groups(score: np.ndarray) -> tuple[np.ndarray, int]:
    """Rank group of each score (equal scores share one) and the number of groups."""
    values, groups = np.unique(score, return_inverse=True)
    return groups, values.size


def _weighted_auc(
    groups: np.ndarray, n_groups: int, won: np.ndarray, copies: np.ndarray
) -> float:
    """ROC AUC when row i appears copies[i] times (Mann-Whitney, ties count half)."""
    pos = np.bincount(groups, weights=copies * won, minlength=n_groups)
    neg = np.bincount(groups, weights=copies * (1 - won), minlength=n_groups)
    neg_below = np.cumsum(neg) - neg
    return float(pos @ (neg_below + 0.5 * neg) / (pos.sum() * neg.sum()))


def paired_bootstrap_auc_delta(
    y_true: ArrayLike,
    score_model: ArrayLike,
    score_baseline: ArrayLike,
    n_bootstrap: int,
    seed: int,
) -> dict[str, Any]:
    """ROC AUC of the model minus the baseline's, with a paired bootstrap 95% CI.

    Each resample draws rows with replacement and scores both approaches on the
    same rows. Resamples holding one class only are skipped; ``n_bootstrap`` in the
    result counts the resamples the interval is built from.

    >>> won = [0, 0, 1, 1, 0, 1]
    >>> result = paired_bootstrap_auc_delta(won, [1, 2, 3, 4, 5, 6], [0] * 6, 200, 0)
    >>> round(result["delta_roc_auc"], 4), result["n_bootstrap"] <= 200
    (0.2778, True)
    """
    won = _outcomes(y_true)
    model = _tie_groups(_scores(score_model, won.size, "score_model"))
    baseline = _tie_groups(_scores(score_baseline, won.size, "score_baseline"))
    _both_classes(won)
    deltas = [
        _weighted_auc(*model, won, copies) - _weighted_auc(*baseline, won, copies)
        for copies in _resamples(won, n_bootstrap, seed)
    ]
    if not deltas:
        raise ValueError("every bootstrap resample had one class only; add more rows")
    ones = np.ones(won.size)
    delta = _weighted_auc(*model, won, ones) - _weighted_auc(*baseline, won, ones)
    low, high = np.percentile(deltas, [2.5, 97.5])
    return {
        "delta_roc_auc": float(delta),
        "delta_roc_auc_ci95": [float(low), float(high)],
        "n_bootstrap": len(deltas),
    }


def _resamples(won: np.ndarray, n_bootstrap: int, seed: int) -> Iterator[np.ndarray]:
    """How many times each row is drawn, per resample holding both classes."""
    rng = np.random.default_rng(seed)
    for _ in range(n_bootstrap):
        copies = np.bincount(rng.integers(0, won.size, won.size), minlength=won.size)
        if 0 < copies @ won < won.size:
            yield copies


def _top_k(score: np.ndarray, k: int, tiebreak: np.ndarray) -> np.ndarray:
    """Positions of the k highest scores; ties go by the tiebreak order."""
    return np.lexsort((tiebreak, -score))[:k]


def capacity_view(
    y_true: ArrayLike,
    model_score: ArrayLike,
    bant_points: ArrayLike,
    k: int,
    seed: int,
    amount: ArrayLike | None = None,
) -> dict[str, float | int]:
    """Wins each approach puts in front of reps who can work only k leads.

    Each approach takes its k best leads; equal scores are ordered by one seeded
    random permutation, so with k equal to the number of BANT-qualified leads the
    rule takes exactly the qualified ones. With ``amount``, the pipeline value is
    the summed amount of the won deals chosen (missing amounts count as 0).

    >>> view = capacity_view([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1], [4, 4, 1, 0], 2, 0)
    >>> view["model_wins"], view["bant_wins"], view["base_win_rate"]
    (1, 1, 0.5)
    """
    won = _outcomes(y_true)
    model = _scores(model_score, won.size, "model_score")
    points = _scores(bant_points, won.size, "bant_points")
    if not 1 <= k <= won.size:
        raise ValueError(f"k must be between 1 and the {won.size} leads; got {k}")
    tiebreak = np.random.default_rng(seed).permutation(won.size)
    chosen = {"model": _top_k(model, k, tiebreak), "bant": _top_k(points, k, tiebreak)}
    view: dict[str, float | int] = {"k": int(k)}
    for name, rows in chosen.items():
        view[f"{name}_wins"] = int(won[rows].sum())
        view[f"{name}_win_rate"] = float(won[rows].mean())
    view["base_win_rate"] = float(won.mean())
    if amount is not None:
        value = np.nan_to_num(_amounts(amount, won.size)) * won
        for name, rows in chosen.items():
            view[f"{name}_pipeline_value"] = float(value[rows].sum())
    return view


def _taken(copies: np.ndarray, k: int) -> np.ndarray:
    """How many copies of each row, in ranked order, fill the top k of a resample:
    whole rows until k is reached, the row crossing k in part."""
    before = np.cumsum(copies) - copies
    return np.clip(k - before, 0, copies)


def paired_bootstrap_wins_delta(
    y_true: ArrayLike,
    score_model: ArrayLike,
    score_other: ArrayLike,
    k: int,
    n_bootstrap: int,
    seed: int,
) -> dict[str, Any]:
    """Wins the model puts in the top k leads minus the other approach's, with a
    paired bootstrap 95% CI.

    The point value is :func:`capacity_view`'s (the same seeded tiebreak). Each
    resample draws the leads with replacement, as
    :func:`paired_bootstrap_auc_delta` does, and both approaches take their k best
    of the same drawn leads; a lead drawn twice fills two places.

    >>> won = [1, 0, 1, 0, 1, 0]
    >>> result = paired_bootstrap_wins_delta(
    ...     won, [6, 5, 4, 3, 2, 1], [1, 2, 3, 4, 5, 6], 2, 200, 0)
    >>> result["delta_wins"], result["n_bootstrap"] <= 200
    (0, True)
    >>> paired_bootstrap_wins_delta(
    ...     won, [6, 1, 5, 2, 4, 3], [1, 6, 2, 5, 3, 4], 3, 200, 0)["delta_wins"]
    3
    """
    won = _outcomes(y_true)
    scores = [
        _scores(score_model, won.size, "score_model"),
        _scores(score_other, won.size, "score_other"),
    ]
    if not 1 <= k <= won.size:
        raise ValueError(f"k must be between 1 and the {won.size} leads; got {k}")
    tiebreak = np.random.default_rng(seed).permutation(won.size)
    orders = [np.lexsort((tiebreak, -score)) for score in scores]
    ranked_won = [won[order] for order in orders]

    def delta(copies: np.ndarray) -> int:
        model, other = (
            int(_taken(copies[order], k) @ wins)
            for order, wins in zip(orders, ranked_won, strict=True)
        )
        return model - other

    deltas = [delta(copies) for copies in _resamples(won, n_bootstrap, seed)]
    if not deltas:
        raise ValueError("every bootstrap resample had one class only; add more rows")
    low, high = np.percentile(deltas, [2.5, 97.5])
    return {
        "delta_wins": delta(np.ones(won.size, dtype=np.int64)),
        "delta_wins_ci95": [float(low), float(high)],
        "n_bootstrap": len(deltas),
    }


def _amounts(amount: ArrayLike, n: int) -> np.ndarray:
    values = np.asarray(amount, dtype=float)
    if values.shape != (n,):
        raise ValueError(f"amount must have {n} values, one per outcome")
    return values


def _gains(won: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative share of wins against share of leads worked, best score first.

    Leads with equal scores are worked in random order, so within a tie group the
    curve is the straight line between the group's ends (its expected value).
    """
    order = np.argsort(-score, kind="stable")
    ranked, ranked_won = score[order], won[order]
    group_ends = np.r_[ranked[1:] != ranked[:-1], True]
    leads = np.r_[0, np.flatnonzero(group_ends) + 1] / won.size
    wins = np.r_[0, np.cumsum(ranked_won)[group_ends]] / won.sum()
    grid = np.linspace(0, 1, GAINS_POINTS)
    return grid, np.interp(grid, leads, wins)


def _long(
    approaches: dict[str, tuple[np.ndarray, np.ndarray]], x: str, y: str
) -> pd.DataFrame:
    """Stack one (x, y) curve per approach into a tidy frame."""
    frames = [
        pd.DataFrame({"approach": name, x: xs, y: ys})
        for name, (xs, ys) in approaches.items()
    ]
    return pd.concat(frames, ignore_index=True)


def _calibration_table(won: np.ndarray, prob: np.ndarray, n_bins: int) -> pd.DataFrame:
    """Mean prediction and observed win rate per non-empty equal-width bin (1-based)."""
    table = pd.DataFrame(
        {"bin": _calibration_bins(prob, n_bins) + 1, "p": prob, "y": won}
    )
    return table.groupby("bin", as_index=False).agg(
        mean_predicted=("p", "mean"), observed_rate=("y", "mean"), count=("y", "size")
    )


def _win_rate_by_band(won: np.ndarray, score: np.ndarray, n_bands: int) -> pd.DataFrame:
    """Leads split into n_bands equal-sized bands by score, band 1 the highest."""
    if not 1 <= n_bands <= won.size:
        raise ValueError(f"n_bands must be between 1 and the {won.size} leads")
    order = np.argsort(-score, kind="stable")
    bands = np.empty(won.size, dtype=int)
    bands[order] = np.arange(won.size) * n_bands // won.size + 1
    table = pd.DataFrame({"band": bands, "won": won, "score": score})
    return table.groupby("band", as_index=False).agg(
        n=("won", "size"),
        wins=("won", "sum"),
        win_rate=("won", "mean"),
        min_score=("score", "min"),
        max_score=("score", "max"),
    )


def plot_data(
    y_true: ArrayLike,
    prob: ArrayLike,
    bant_points: ArrayLike,
    n_bins: int,
    n_bands: int,
) -> dict[str, pd.DataFrame]:
    """Tidy frames behind the evaluation plots, ready to write as CSV for DVC.

    ``roc`` (approach, fpr, tpr), ``pr`` (approach, recall, precision),
    ``calibration`` (bin, mean_predicted, observed_rate, count) for the model,
    ``gains`` (approach, share_of_leads, share_of_wins) at every 1% of leads, and
    ``win_rate_by_band`` (band, n, wins, win_rate, min_score, max_score) with band 1
    the model's highest-scored leads.

    >>> frames = plot_data([0, 1, 0, 1], [0.1, 0.9, 0.3, 0.6], [1, 3, 2, 4], 2, 2)
    >>> frames["win_rate_by_band"][["band", "wins"]].to_numpy().tolist()
    [[1, 2], [2, 0]]
    """
    won = _outcomes(y_true)
    scores = {
        "model": _scores(prob, won.size, "prob"),
        "bant": _scores(bant_points, won.size, "bant_points"),
    }
    _both_classes(won)
    roc = {name: roc_curve(won, score)[:2] for name, score in scores.items()}
    pr = {
        name: precision_recall_curve(won, score)[:2] for name, score in scores.items()
    }
    return {
        "roc": _long(roc, "fpr", "tpr"),
        "pr": _long(
            {name: (rec, prec) for name, (prec, rec) in pr.items()},
            "recall",
            "precision",
        ),
        "calibration": _calibration_table(won, scores["model"], n_bins),
        "gains": _long(
            {name: _gains(won, score) for name, score in scores.items()},
            "share_of_leads",
            "share_of_wins",
        ),
        "win_rate_by_band": _win_rate_by_band(won, scores["model"], n_bands),
    }


def evaluate_scores(
    y_true: ArrayLike,
    prob: ArrayLike,
    bant_points: ArrayLike,
    bant_qualified: ArrayLike,
    cfg: EvaluateConfig,
    seed: int,
    amount: ArrayLike | None = None,
) -> dict[str, Any]:
    """The model-vs-BANT metrics dict for the test window (JSON-ready).

    Capacity k is ``cfg.capacity``, or else the number of BANT-qualified leads, or
    when none is qualified (no rule given: every lead has 0 points) as many leads
    as won (at least 1).

    >>> metrics = evaluate_scores(
    ...     [0, 1, 0, 1], [0.2, 0.7, 0.4, 0.9], [1, 3, 3, 4], [0, 1, 1, 1],
    ...     EvaluateConfig(n_bootstrap=50), seed=0,
    ... )
    >>> metrics["model"]["roc_auc"], metrics["bant"]["qualified_share"]
    (1.0, 0.75)
    >>> metrics["capacity"]["k"], metrics["capacity"]["bant_wins"]
    (3, 2)
    """
    won = _outcomes(y_true)
    points = _scores(bant_points, won.size, "bant_points")
    qualified = _scores(bant_qualified, won.size, "bant_qualified").astype(bool)
    delta = paired_bootstrap_auc_delta(won, prob, points, cfg.n_bootstrap, seed)
    k = cfg.capacity or max(1, int(qualified.sum()) or int(won.sum()))
    return {
        "model": classification_metrics(won, prob, cfg.calibration_bins),
        "bant": {
            "roc_auc": float(roc_auc_score(won, points)),
            "pr_auc": float(average_precision_score(won, points)),
            "qualified_share": float(qualified.mean()),
        },
        "delta_roc_auc": delta["delta_roc_auc"],
        "delta_roc_auc_ci95": delta["delta_roc_auc_ci95"],
        "capacity": capacity_view(won, prob, points, k, seed, amount),
    }


def evaluate_score_frame(
    scores: pd.DataFrame, cfg: EvaluateConfig, seed: int
) -> dict[str, Any]:
    """The model-vs-BANT metrics of a frame of won, probability, bant_points,
    bant_qualified and amount (a missing amount counts as 0 pipeline value)."""
    return evaluate_scores(
        scores["won"].to_numpy(),
        scores["probability"].to_numpy(),
        scores["bant_points"].to_numpy(),
        scores["bant_qualified"].to_numpy(),
        cfg,
        seed=seed,
        amount=np.nan_to_num(scores["amount"].to_numpy(float)),
    )


def cross_validated_probability(
    features: pd.DataFrame,
    registry: FeatureRegistry,
    params: Params,
    folds: list[tuple[np.ndarray, np.ndarray]],
    n_splits: int,
    in_time: bool = False,
) -> list[np.ndarray]:
    """Out-of-fold win probabilities of the closed deals, one array per repeat of
    ``n_splits`` folds (positions into ``features``; NaN where never held out).

    Each fold trains on its other deals, a share (``split.valid_fraction``) of them
    held back for early stopping and calibration, as the final model is: the latest
    ones when ``in_time``, else a seeded draw.
    """
    scores = fold_scores(features, registry, params, folds, in_time)
    repeats = []
    for start in range(0, len(folds), n_splits):
        probability = np.full(len(features), np.nan)
        for rows, prob in zip(
            scores.tested[start : start + n_splits],
            scores.probability[start : start + n_splits],
            strict=True,
        ):
            probability[rows] = prob
        repeats.append(probability)
    return repeats


def _auc_of(
    groups: tuple[np.ndarray, int], won: np.ndarray, copies: np.ndarray
) -> float:
    return _weighted_auc(*groups, won, copies)


def evaluate_folds(
    scores: pd.DataFrame, cfg: EvaluateConfig, seed: int
) -> dict[str, Any]:
    """Model-vs-BANT metrics out of fold: ``scores`` holds one row per deal and fold
    that tested it (won, probability, bant_points, bant_qualified, amount, fold).

    The ROC AUCs and their gain are the means over folds (a fold with one outcome
    only is left out), their 95% CIs from resampling deals within every fold
    (paired: model and BANT on the same draws); ``cv`` holds each fold's AUCs and
    their spread. The rest is :func:`evaluate_score_frame` on every deal's mean
    out-of-fold probability (its folds' mean when repeats test it again).
    """
    model_auc: list[float] = []
    bant_auc: list[float] = []
    sizes: list[int] = []
    wins: list[int] = []
    model_draws: list[list[float]] = []
    bant_draws: list[list[float]] = []
    for _, rows in scores.groupby("fold", sort=True):
        won = rows["won"].to_numpy(int)
        if won.min() == won.max():
            continue
        model = _tie_groups(rows["probability"].to_numpy(float))
        bant = _tie_groups(rows["bant_points"].to_numpy(float))
        draws = list(_resamples(won, cfg.n_bootstrap, seed + len(sizes)))
        ones = np.ones(won.size)
        sizes.append(int(won.size))
        wins.append(int(won.sum()))
        model_auc.append(_auc_of(model, won, ones))
        bant_auc.append(_auc_of(bant, won, ones))
        model_draws.append([_auc_of(model, won, c) for c in draws])
        bant_draws.append([_auc_of(bant, won, c) for c in draws])
    if not sizes:
        raise ValueError("no fold holds both won and lost deals; add more deals")
    # Draw r of the run is draw r of every fold: the mean over folds per draw.
    n_draws = min(len(d) for d in model_draws)
    model_mean = np.mean([d[:n_draws] for d in model_draws], axis=0)
    bant_mean = np.mean([d[:n_draws] for d in bant_draws], axis=0)
    model_by_fold, bant_by_fold = np.array(model_auc), np.array(bant_auc)
    pooled = (
        scores.groupby("deal_id", sort=False)
        .agg(
            won=("won", "first"),
            probability=("probability", "mean"),
            bant_points=("bant_points", "first"),
            bant_qualified=("bant_qualified", "first"),
            amount=("amount", "first"),
        )
        .reset_index()
    )
    metrics = evaluate_score_frame(pooled, cfg, seed)
    metrics["model"] |= {
        "roc_auc": float(model_by_fold.mean()),
        "roc_auc_ci95": _interval(model_mean),
    }
    metrics["bant"] |= {"roc_auc": float(bant_by_fold.mean())}
    metrics["delta_roc_auc"] = float((model_by_fold - bant_by_fold).mean())
    metrics["delta_roc_auc_ci95"] = _interval(model_mean - bant_mean)
    metrics["cv"] = {
        "folds": len(sizes),
        "fold_sizes": sizes,
        "fold_wins": wins,
        "model_roc_auc_by_fold": model_by_fold.tolist(),
        "bant_roc_auc_by_fold": bant_by_fold.tolist(),
        "model_roc_auc_mean": float(model_by_fold.mean()),
        "model_roc_auc_std": float(model_by_fold.std()),
        "model_roc_auc_ci95": _interval(model_mean),
        "n_bootstrap": int(n_draws),
    }
    return metrics


def _interval(values: ArrayLike) -> list[float]:
    low, high = np.percentile(np.asarray(values, dtype=float), [2.5, 97.5])
    return [float(low), float(high)]


def auc_interval(
    y_true: ArrayLike, score: ArrayLike, n_bootstrap: int, seed: int
) -> list[float]:
    """Bootstrap 95% CI of one approach's ROC AUC (the resamples of
    :func:`paired_bootstrap_auc_delta` with the same seed).

    >>> low, high = auc_interval([0, 0, 1, 1, 0, 1], [1, 2, 3, 4, 5, 6], 200, 0)
    >>> 0 <= low <= high <= 1
    True
    """
    won = _outcomes(y_true)
    groups = _tie_groups(_scores(score, won.size, "score"))
    _both_classes(won)
    return _interval(
        [_auc_of(groups, won, c) for c in _resamples(won, n_bootstrap, seed)]
    )


# --- warnings: drift, miscalibration, a headline the capacity view contradicts ---


def base_rate_shift(
    train_won: ArrayLike, test_won: ArrayLike, max_ratio: float
) -> str | None:
    """A warning when the judged window's win rate is ``max_ratio`` times the
    training deals' (or less than its inverse) and beyond chance (a two-proportion
    z above 3); else None.

    >>> base_rate_shift([1] * 5 + [0] * 95, [1] * 31 + [0] * 69, 1.5)[:46]
    'base-rate shift: 31.0% of the judged deals won'
    >>> base_rate_shift([1, 0] * 50, [1, 0] * 50, 1.5) is None
    True
    """
    train, test = _outcomes(train_won), _outcomes(test_won)
    p1, p2 = train.mean(), test.mean()
    pooled = np.concatenate([train, test]).mean()
    se = np.sqrt(pooled * (1 - pooled) * (1 / train.size + 1 / test.size))
    z = abs(p2 - p1) / se if se > 0 else 0.0
    ratio = max(p2, 1e-9) / max(p1, 1e-9)
    if z <= 3 or 1 / max_ratio < ratio < max_ratio:
        return None
    return (
        f"base-rate shift: {p2:.1%} of the judged deals won against {p1:.1%} of the "
        f"training deals ({ratio:.1f}x): scores calibrated on the past are "
        f"{'too low' if p2 > p1 else 'too high'} now; consider "
        "train.calibrate_on: latest (Platt fit on the latest labelled window)"
    )


def chance_ece(prob: np.ndarray, n_bins: int, seed: int, draws: int = 200) -> float:
    """The 95th percentile of the ECE a perfectly calibrated model shows on these
    probabilities by chance alone (outcomes drawn from the probabilities)."""
    rng = np.random.default_rng(seed)
    bins = _calibration_bins(prob, n_bins)
    outcomes = rng.random((draws, prob.size)) < prob
    gaps = [
        np.abs(np.bincount(bins, weights=prob - row, minlength=n_bins)).sum()
        for row in outcomes
    ]
    return float(np.percentile(gaps, 95) / prob.size)


def miscalibration(
    y_true: ArrayLike, prob: ArrayLike, cfg: EvaluateConfig, seed: int
) -> str | None:
    """A warning when the judged window's ECE is above ``evaluate.max_ece`` and
    above what a calibrated model shows there by chance (:func:`chance_ece`)."""
    won = _outcomes(y_true)
    p = _scores(prob, won.size, "prob")
    ece = expected_calibration_error(won, p, cfg.calibration_bins)
    noise = chance_ece(p, cfg.calibration_bins, seed)
    if ece <= max(cfg.max_ece, noise):
        return None
    return (
        f"miscalibration: calibration error (ECE) {ece:.3f} on the judged deals, "
        f"above evaluate.max_ece={cfg.max_ece:g} and the {noise:.3f} a calibrated "
        f"model shows by chance on {won.size:,} deals: mean predicted "
        f"{p.mean():.1%} against {won.mean():.1%} won; read probabilities as ranks, "
        "or set train.calibrate_on: latest"
    )


def capacity_check(metrics: dict[str, Any]) -> str | None:
    """A warning when the ROC AUC gain and the capacity view disagree: the model
    ranks better overall but puts fewer wins in the top k than the rule (or the
    reverse); else None.

    >>> capacity_check({"delta_roc_auc": 0.032,
    ...     "capacity": {"k": 2000, "model_wins": 655, "bant_wins": 899}})[:60]
    'capacity: the model ranks better overall (ROC AUC +0.032) bu'
    """
    capacity = metrics["capacity"]
    model, rule = capacity.get("model_wins"), capacity.get("bant_wins")
    if rule is None or model is None:
        return None
    delta, k = metrics["delta_roc_auc"], capacity["k"]
    if delta > 0 and model < rule:
        return (
            f"capacity: the model ranks better overall (ROC AUC {delta:+.3f}) but "
            f"puts fewer wins in the top {k:,} leads than the rule ({model:,} vs "
            f"{rule:,}): at this capacity the rule is the better list"
        )
    if delta < 0 and model > rule:
        return (
            f"capacity: the model ranks worse overall (ROC AUC {delta:+.3f}) yet "
            f"puts more wins in the top {k:,} leads than the rule ({model:,} vs "
            f"{rule:,}): its gain holds at this capacity only"
        )
    return None


def verdict(metrics: dict[str, Any]) -> str:
    """The one-line claim a summary may make: what the capacity view and the AUC
    gain's CI both support, never a win one of them contradicts.

    >>> verdict({"delta_roc_auc": 0.032, "delta_roc_auc_ci95": [0.01, 0.05],
    ...     "capacity": {"k": 2000, "model_wins": 655, "bant_wins": 899}})
    'mixed: the model ranks better overall but the rule puts more wins in the top 2,000'
    """
    capacity = metrics["capacity"]
    model, rule, k = (
        capacity.get("model_wins"),
        capacity.get("bant_wins"),
        capacity["k"],
    )
    low, high = metrics["delta_roc_auc_ci95"]
    if rule is None and model is not None and "base_rate_wins" in capacity:
        return base_rate_verdict(metrics)  # no rule given: the base rate
    if rule is None or model is None:
        return "no rule to compare"
    if low > 0 and model >= rule:
        return f"the model beats the rule: more wins in the top {k:,}, higher AUC"
    if high < 0 and model <= rule:
        return f"the rule beats the model: more wins in the top {k:,}, higher AUC"
    if (low > 0 and model < rule) or (high < 0 and model > rule):
        better, other = ("model", "rule") if low > 0 else ("rule", "model")
        return (
            f"mixed: the {better} ranks better overall but the {other} puts more "
            f"wins in the top {k:,}"
        )
    return "no clear difference: the AUC gain's 95% CI includes 0"


def evaluation_warnings(
    metrics: dict[str, Any],
    train_won: ArrayLike,
    judged: pd.DataFrame,
    cfg: EvaluateConfig,
    seed: int,
) -> list[str]:
    """The evaluation's warnings: a base-rate shift between the training deals and
    the judged ones, miscalibration on them (``judged``: their won and probability),
    and with a rule (``metrics`` bant not null) an AUC gain that the capacity view
    contradicts."""
    won = judged["won"].to_numpy(int)
    found = [
        base_rate_shift(train_won, won, cfg.max_base_rate_ratio),
        miscalibration(won, judged["probability"].to_numpy(float), cfg, seed),
        capacity_check(metrics) if metrics.get("bant") is not None else None,
    ]
    return [w for w in found if w is not None]
