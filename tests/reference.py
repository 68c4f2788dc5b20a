"""Reference computations the tests check lead-ml against, written independently of
lead-ml's own code."""

from __future__ import annotations

import numpy as np


def newton_logistic(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope and intercept of an unpenalised one-feature logistic regression."""
    design = np.column_stack([x, np.ones_like(x)])
    beta = np.zeros(2)
    for _ in range(100):
        p = 1 / (1 + np.exp(-design @ beta))
        step = np.linalg.solve(
            design.T @ (design * (p * (1 - p))[:, None]), design.T @ (y - p)
        )
        beta += step
        if np.abs(step).max() < 1e-12:
            break
    return float(beta[0]), float(beta[1])
