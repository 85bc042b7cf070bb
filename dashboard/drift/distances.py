"""How far live shares are from the reference shares: PSI and Jensen–Shannon distance (the size of a change)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.spatial.distance import jensenshannon

EMPTY_BIN_SHARE = 1e-4
"""An empty bin counts as this share, so that PSI's logarithm stays finite (Evidently's convention)."""
PSI_WATCH = 0.1
PSI_DRIFT = 0.25
"""The usual PSI bands: below 0.1 a small change, 0.1–0.25 a moderate one, 0.25 and above a large one."""


def floored(shares: Sequence[float] | np.ndarray) -> np.ndarray:
    """The shares with every empty bin raised to ``EMPTY_BIN_SHARE``."""
    values = np.asarray(shares, dtype=float)
    return np.where(values <= 0, EMPTY_BIN_SHARE, values)


def _same_bins(ref: np.ndarray, cur: np.ndarray) -> None:
    if ref.shape[-1] != cur.shape[-1]:
        raise ValueError(f"reference has {ref.shape[-1]} bins, live {cur.shape[-1]}")


def psi(reference: Sequence[float] | np.ndarray, live: Sequence[float] | np.ndarray) -> float | np.ndarray:
    """Population stability index of ``live`` against ``reference`` (shares over the same bins).

    ``live`` may hold one sample per row (shape ``(samples, bins)``): then one PSI per row.
    """
    ref, cur = floored(reference), floored(live)
    _same_bins(ref, cur)
    scores = np.sum((cur - ref) * np.log(cur / ref), axis=-1)
    return float(scores) if np.ndim(scores) == 0 else scores


def js_distance(reference: Sequence[float] | np.ndarray, live: Sequence[float] | np.ndarray) -> float | np.ndarray:
    """Jensen–Shannon distance (natural log) of ``live`` against ``reference``; one per row of a 2-D ``live``."""
    ref, cur = floored(reference), floored(live)
    _same_bins(ref, cur)
    distances = jensenshannon(np.broadcast_to(ref, cur.shape), cur, axis=-1)
    return float(distances) if np.ndim(distances) == 0 else np.asarray(distances)


def shares_of(counts: Sequence[float] | np.ndarray) -> np.ndarray:
    """Counts turned into shares along the last axis (all zeros where there is nothing to count)."""
    values = np.asarray(counts, dtype=float)
    total = values.sum(axis=-1, keepdims=True)
    return np.divide(values, total, out=np.zeros_like(values), where=total > 0)


def change_size(score: float | None) -> str:
    """The PSI band in words: ``small``, ``moderate`` or ``large`` (``–`` without a score)."""
    if score is None or not np.isfinite(score):
        return "–"
    if score >= PSI_DRIFT:
        return "large"
    if score >= PSI_WATCH:
        return "moderate"
    return "small"
