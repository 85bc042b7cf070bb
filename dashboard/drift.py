"""Drift statistics: the live distribution of an input against its training reference.

Both distributions are shares over the same bins: for a numeric input the
reference histogram's own edges (from the model card), for a categorical one
its categories (plus any category seen live only). Empty bins are floored at
``EMPTY_BIN_SHARE`` on both sides before either score, as Evidently does, so
a bin seen on one side only gives a large but finite score.

- PSI (population stability index): ``sum((ref - live) * ln(ref / live))``;
  below 0.1 stable, 0.1 to 0.25 watch, 0.25 and above drift.
- Jensen–Shannon distance (natural log, so between 0 and sqrt(ln 2)): the
  square root of the mean Kullback–Leibler divergence of each side to their
  average (``scipy.spatial.distance.jensenshannon``, which normalises the
  floored shares).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon

EMPTY_BIN_SHARE = 1e-4
PSI_WATCH = 0.1
PSI_DRIFT = 0.25
STABLE, WATCH, DRIFT, NO_VERDICT = "stable", "watch", "drift", "no verdict"
SEVERITY_ORDER = {DRIFT: 0, WATCH: 1, STABLE: 2, NO_VERDICT: 3}


def floored(shares: Sequence[float]) -> np.ndarray:
    """The shares with every empty bin raised to ``EMPTY_BIN_SHARE``."""
    values = np.asarray(shares, dtype=float)
    return np.where(values <= 0, EMPTY_BIN_SHARE, values)


def psi(reference: Sequence[float], live: Sequence[float]) -> float:
    """Population stability index of ``live`` against ``reference`` (shares over the same bins)."""
    ref, cur = floored(reference), floored(live)
    if ref.shape != cur.shape:
        raise ValueError(f"reference has {ref.size} bins, live {cur.size}")
    return float(np.sum((ref - cur) * np.log(ref / cur)))


def js_distance(reference: Sequence[float], live: Sequence[float]) -> float:
    """Jensen–Shannon distance (natural log) of ``live`` against ``reference``."""
    ref, cur = floored(reference), floored(live)
    if ref.shape != cur.shape:
        raise ValueError(f"reference has {ref.size} bins, live {cur.size}")
    return float(jensenshannon(ref, cur))


def psi_severity(score: float | None) -> str:
    """``stable``, ``watch`` or ``drift`` for a PSI; ``no verdict`` when there is none."""
    if score is None or not np.isfinite(score):
        return NO_VERDICT
    if score >= PSI_DRIFT:
        return DRIFT
    if score >= PSI_WATCH:
        return WATCH
    return STABLE


def shares_of(counts: Sequence[float]) -> np.ndarray:
    """Counts turned into shares (all zeros when there is nothing to count)."""
    values = np.asarray(counts, dtype=float)
    total = values.sum()
    return values / total if total > 0 else values


def histogram_bin(value: float, edges: Sequence[float]) -> int:
    """Index of the reference bin ``[edges[i], edges[i+1])`` holding ``value``, outer bins extended."""
    index = int(np.searchsorted(np.asarray(edges, dtype=float), value, side="right")) - 1
    return min(max(index, 0), len(edges) - 2)


@dataclass(frozen=True)
class FeatureDrift:
    """The drift of one input for one model version over a window."""

    feature: str
    kind: str
    rows: int
    psi: float | None
    js_distance: float | None
    severity: str
    outside_share: float
    bins: tuple[str, ...]
    reference_shares: tuple[float, ...]
    live_shares: tuple[float, ...]


def bin_labels(edges: Sequence[float]) -> tuple[str, ...]:
    """Readable labels of the bins of a reference histogram (``[17.5, 26.5)``)."""
    return tuple(f"[{low:g}, {high:g})" for low, high in zip(edges[:-1], edges[1:]))


def numeric_drift(feature: str, reference: Mapping[str, Any], bin_counts: Mapping[int, int],
                  outside_rows: int, min_rows: int) -> FeatureDrift:
    """Drift of a numeric input from its live counts per reference bin (``{bin index: rows}``)."""
    edges = reference["histogram"]["edges"]
    ref = np.asarray(reference["histogram"]["shares"], dtype=float)
    counts = np.zeros(len(edges) - 1)
    for index, rows in bin_counts.items():
        counts[min(max(int(index), 0), counts.size - 1)] += rows
    return _feature_drift(feature, "numeric", bin_labels(edges), ref, counts, outside_rows, min_rows)


def categorical_drift(feature: str, reference: Mapping[str, Any], category_counts: Mapping[str, int],
                      min_rows: int) -> FeatureDrift:
    """Drift of a categorical input from its live counts per category; unseen categories count as outside."""
    ref_shares: Mapping[str, float] = reference["shares"]
    categories = list(ref_shares) + sorted(c for c in category_counts if c not in ref_shares)
    ref = np.asarray([ref_shares.get(c, 0.0) for c in categories], dtype=float)
    counts = np.asarray([category_counts.get(c, 0) for c in categories], dtype=float)
    unseen = sum(rows for c, rows in category_counts.items() if ref_shares.get(c, 0.0) <= 0)
    return _feature_drift(feature, "categorical", tuple(categories), ref, counts, unseen, min_rows)


def _feature_drift(feature: str, kind: str, bins: tuple[str, ...], ref: np.ndarray, counts: np.ndarray,
                   outside_rows: int, min_rows: int) -> FeatureDrift:
    rows = int(counts.sum())
    live = shares_of(counts)
    score = psi(ref, live) if rows >= min_rows else None
    distance = js_distance(ref, live) if rows >= min_rows else None
    return FeatureDrift(feature, kind, rows, score, distance, psi_severity(score),
                        outside_rows / rows if rows else 0.0, bins, tuple(float(x) for x in ref),
                        tuple(float(x) for x in live))


def reference_percentile(value: float, reference: Mapping[str, Any]) -> float:
    """Where ``value`` stands among the training values, in percent, from the card's quantiles.

    Interpolated between the card's minimum, quantiles and maximum; 0 below the
    minimum, 100 above the maximum.
    """
    quantiles = sorted((float(q), float(x)) for q, x in reference["quantiles"].items())
    levels = [0.0] + [q for q, _ in quantiles] + [1.0]
    points = [float(reference["min"])] + [x for _, x in quantiles] + [float(reference["max"])]
    xs, ps = np.asarray(points), np.asarray(levels)
    if value < xs[0]:
        return 0.0
    if value > xs[-1]:
        return 100.0
    equal = ps[xs == value]
    if equal.size:  # tied quantiles (common on integer inputs): the middle of the tied levels
        return 100.0 * float(equal.min() + equal.max()) / 2
    below = int(np.flatnonzero(xs < value)[-1])
    above = below + 1
    step = (value - xs[below]) / (xs[above] - xs[below])
    return 100.0 * float(ps[below] + step * (ps[above] - ps[below]))


def outside_reference(value: Any, reference: Mapping[str, Any]) -> bool:
    """True when training never saw ``value``: outside its range, or a category of no share."""
    if reference.get("kind") == "categorical":
        return float(reference["shares"].get(value, 0.0)) <= 0
    return not float(reference["min"]) <= float(value) <= float(reference["max"])


def features_drift(counts: pd.DataFrame, references: Mapping[str, Mapping[str, Any]],
                   min_rows: int) -> list[FeatureDrift]:
    """The drift of every input with a reference, from live counts (``queries.drift_counts``), by severity.

    ``counts`` has columns ``feature``, ``bin`` (numeric inputs), ``category``
    (categorical inputs), ``rows`` and ``outside``; days are summed.
    """
    results = []
    for feature, reference in references.items():
        rows = counts[counts["feature"] == feature] if not counts.empty else counts
        if reference.get("kind") == "categorical":
            by_category = rows.groupby("category")["rows"].sum() if not rows.empty else {}
            results.append(categorical_drift(feature, reference, {str(k): int(v) for k, v in dict(by_category).items()},
                                             min_rows))
        else:
            by_bin = rows.dropna(subset=["bin"]).groupby("bin")["rows"].sum() if not rows.empty else {}
            outside = int(rows["outside"].sum()) if not rows.empty else 0
            results.append(numeric_drift(feature, reference, {int(k): int(v) for k, v in dict(by_bin).items()},
                                         outside, min_rows))
    return sorted(results, key=lambda d: (SEVERITY_ORDER[d.severity], -(d.psi or 0.0), d.feature))


def daily_worst(counts: pd.DataFrame, references: Mapping[str, Mapping[str, Any]],
                min_rows: int) -> pd.DataFrame:
    """Per day with at least ``min_rows`` rows: the worst PSI and JS distance among the inputs, and which input."""
    records = []
    if not counts.empty:
        for day, rows in counts.groupby("day", sort=True):
            drifts = [d for d in features_drift(rows, references, min_rows) if d.psi is not None]
            if not drifts:
                continue
            worst = max(drifts, key=lambda d: d.psi or 0.0)
            records.append({"day": pd.to_datetime(int(day), unit="s", utc=True), "worst_psi": worst.psi,
                            "worst_js": max(d.js_distance or 0.0 for d in drifts), "feature": worst.feature,
                            "rows": worst.rows})
    return pd.DataFrame(records, columns=["day", "worst_psi", "worst_js", "feature", "rows"])
