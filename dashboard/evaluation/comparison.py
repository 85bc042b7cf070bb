"""Two models on the same rows: how often they agree (and Cohen's κ), and the difference of their ROC AUC."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import cohen_kappa_score

from dashboard.evaluation.metrics import RESAMPLES, SEED, Estimate, roc_auc_rows


def agreement(served: np.ndarray, other: np.ndarray) -> tuple[float | None, float | None]:
    """The share of rows where two 0/1 predictions agree, and Cohen's κ (agreement beyond chance).

    κ is 1.0 when the two agree on every row (sklearn leaves it undefined when both predict one class only).
    """
    served, other = np.asarray(served, dtype=int), np.asarray(other, dtype=int)
    if served.size == 0:
        return None, None
    rate = float((served == other).mean())
    if rate == 1.0:
        return rate, 1.0
    kappa = float(cohen_kappa_score(served, other))
    return rate, None if np.isnan(kappa) else kappa


def auc_difference(y: np.ndarray, served: np.ndarray, other: np.ndarray, resamples: int = RESAMPLES,
                   seed: int = SEED) -> Estimate:
    """ROC AUC of ``other`` minus that of ``served`` on the same labelled rows, rows resampled jointly."""
    y, served, other = (np.asarray(a, dtype=float) for a in (y, served, other))
    if y.size == 0 or not 0 < y.sum() < y.size:
        return Estimate(None)
    value = float(roc_auc_rows(y[None, :], other[None, :])[0] - roc_auc_rows(y[None, :], served[None, :])[0])
    indexes = np.random.default_rng(seed).integers(0, y.size, size=(resamples, y.size))
    differences = roc_auc_rows(y[indexes], other[indexes]) - roc_auc_rows(y[indexes], served[indexes])
    differences = differences[~np.isnan(differences)]
    if differences.size == 0:
        return Estimate(value)
    low, high = np.percentile(differences, [2.5, 97.5])
    return Estimate(value, float(low), float(high))
