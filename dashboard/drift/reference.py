"""Where a value stands in a card's training reference: its bin, its percentile, whether training saw it."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np


def histogram_bin(value: float, edges: Sequence[float]) -> int:
    """Index of the reference bin ``[edges[i], edges[i+1])`` holding ``value``, outer bins extended."""
    index = int(np.searchsorted(np.asarray(edges, dtype=float), value, side="right")) - 1
    return min(max(index, 0), len(edges) - 2)


def bin_labels(edges: Sequence[float]) -> tuple[str, ...]:
    """Readable labels of the bins of a reference histogram (``[17.5, 26.5)``)."""
    return tuple(f"[{low:g}, {high:g})" for low, high in zip(edges[:-1], edges[1:]))


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
