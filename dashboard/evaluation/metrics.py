"""Metrics of labelled predictions with bootstrap 95 % intervals (1,000 resamples, a fixed seed).

The predictions are resampled with replacement, each metric recomputed on
every resample, and the interval is the 2.5th to 97.5th percentile of the
resampled values (resamples where a metric is undefined, e.g. a ROC AUC
with one class only, are left out). Thresholded metrics use the prediction
the service stored, so they are at the threshold it used.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

RESAMPLES = 1_000
SEED = 20_261_207
"""The bootstrap's seed: the same labelled rows always give the same interval."""
METRICS = ("ROC AUC", "PR AUC", "Brier score", "precision", "recall", "F1")


@dataclass(frozen=True)
class Estimate:
    """A metric and its bootstrap 95 % interval (``None``: undefined on these rows)."""

    value: float | None
    low: float | None = None
    high: float | None = None

    def text(self, digits: int = 3) -> str:
        """``0.812 [0.751, 0.866]``, or ``–`` when undefined."""
        if self.value is None:
            return "–"
        interval = "" if self.low is None else f" [{self.low:.{digits}f}, {self.high:.{digits}f}]"
        return f"{self.value:.{digits}f}{interval}"


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def roc_auc_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The ROC AUC of each row of ``y`` (0/1) and ``p`` (probabilities), by ranks (ties averaged); NaN: one class."""
    ranks = rankdata(p, axis=-1)
    positives = y.sum(axis=-1)
    negatives = y.shape[-1] - positives
    numerator = (ranks * y).sum(axis=-1) - positives * (positives + 1) / 2
    return _ratio(numerator, positives * negatives)


def average_precision_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The average precision (PR AUC, as scikit-learn computes it, ties grouped) of each row; NaN without a leaver.

    Each leaver adds the precision at the end of its tie group of probabilities, over the number of leavers.
    """
    order = np.argsort(-p, axis=-1, kind="stable")
    ranked_p, ranked_y = np.take_along_axis(p, order, -1), np.take_along_axis(y, order, -1)
    true_positives = np.cumsum(ranked_y, axis=-1)
    precision = true_positives / np.arange(1, p.shape[-1] + 1)
    group_end = np.ones_like(ranked_p, dtype=bool)
    group_end[:, :-1] = ranked_p[:, :-1] != ranked_p[:, 1:]
    positions = np.where(group_end, np.arange(p.shape[-1]), p.shape[-1])
    end_of_group = np.minimum.accumulate(positions[:, ::-1], axis=-1)[:, ::-1]
    return _ratio((ranked_y * np.take_along_axis(precision, end_of_group, -1)).sum(axis=-1), ranked_y.sum(axis=-1))


def metric_rows(y: np.ndarray, p: np.ndarray, predicted: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric of each row of the 2-D arrays ``y``, ``p``, ``predicted`` (one resample per row)."""
    y, predicted = y.astype(bool), predicted.astype(bool)
    tp = (predicted & y).sum(axis=-1)
    fp = (predicted & ~y).sum(axis=-1)
    fn = (~predicted & y).sum(axis=-1)
    return {"ROC AUC": roc_auc_rows(y.astype(float), p), "PR AUC": average_precision_rows(y.astype(float), p),
            "Brier score": ((p - y) ** 2).mean(axis=-1), "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn), "F1": _ratio(2 * tp, 2 * tp + fp + fn)}


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def bootstrap_metrics(y: np.ndarray, p: np.ndarray, predicted: np.ndarray, resamples: int = RESAMPLES,
                      seed: int = SEED) -> dict[str, Estimate]:
    """Each of :data:`METRICS` on the labelled rows, with its bootstrap 95 % interval.

    ``y``: 1 when the employee left; ``p``: the stored probability;
    ``predicted``: the stored prediction (at the model's threshold).
    """
    y, p, predicted = np.asarray(y, dtype=float), np.asarray(p, dtype=float), np.asarray(predicted, dtype=float)
    if y.size == 0:
        return {name: Estimate(None) for name in METRICS}
    point = metric_rows(y[None, :], p[None, :], predicted[None, :])
    indexes = np.random.default_rng(seed).integers(0, y.size, size=(resamples, y.size))
    resampled = metric_rows(y[indexes], p[indexes], predicted[indexes])
    estimates = {}
    for name in METRICS:
        values = resampled[name][~np.isnan(resampled[name])]
        value = _finite(point[name][0])
        if value is None or values.size == 0:
            estimates[name] = Estimate(value)
            continue
        low, high = np.percentile(values, [2.5, 97.5])
        estimates[name] = Estimate(value, float(low), float(high))
    return estimates
