"""Exact TreeSHAP over scikit-learn's tree arrays, vectorised over every root-to-leaf path at once.

The path-dependent TreeSHAP of Lundberg et al. (2020) explains a tree with
the covers recorded at training (``weighted_n_node_samples``, or ``count``
for the histogram gradient boosting's predictors): no background rows are
needed, so an explanation depends on the artifact alone. Written as a game
on one leaf ``l`` with the path's distinct features ``P``, ``z_j`` the
product of the cover ratios of ``j``'s splits on the path and ``o_j`` 1 when
the row satisfies all of them::

    g(S) = v_l * prod(o_j for j in P & S) * prod(z_j for j in P - S)

The Shapley value of ``i`` in ``P`` is ``v_l (o_i - z_i) sum_k w(k, D) [t^k] Q_i(t)``
with ``Q_i(t) = prod(z_j + o_j t for j in P - {i})`` and ``w(k, D) = k!(D-k-1)!/D!``.
Every path is padded to the deepest one's length ``D`` with null players
(``z = o = 1``, which change no other player's value). With ``Q`` the product
over the whole path, a slot the row does not satisfy gets ``-v_l sum_k w_k Q[k]``,
and a satisfied one ``v_l (1 - z_i)`` times the weighted coefficients of
``Q / (z_i + t)`` (a synthetic division, stable since ``0 < z_i <= 1``).
The work is a few dozen array operations over (rows × leaves): no compiled
extension, no per-node Python loop at explanation time.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from math import factorial
from typing import Any, Iterable

import numpy as np

ROW_CHUNK = 4
"""Rows explained per array pass: the (rows × leaves × depth) temporaries then stay in the CPU's caches."""


@dataclass(frozen=True)
class LeafPaths:
    """Every root-to-leaf path of an ensemble, flattened: the arrays TreeSHAP works on.

    ``feature``, ``lower``, ``upper``, ``zero``: (leaves, depth) — the column a
    path slot tests, the interval ``lower < x <= upper`` a row must fall in
    to follow the path, and the product of that column's cover ratios on the
    path. ``value``: (leaves,), each leaf's output already scaled (a forest's
    leaves divided by its number of trees). ``offset``: a constant added to
    every output (the gradient boosting's baseline).
    """

    feature: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    zero: np.ndarray
    value: np.ndarray
    offset: float
    columns: int

    @cached_property
    def by_length(self) -> list[PathGroup]:
        """The paths grouped by their number of distinct columns, each group in the slot-major layout."""
        lengths = np.sum(np.isfinite(self.lower) | np.isfinite(self.upper) | (self.zero < 1.0), axis=1)
        groups = []
        for length in np.unique(lengths[lengths > 0]).tolist():
            leaves = np.flatnonzero(lengths == length)
            feature = self.feature[leaves, :length]
            flat = feature.T.reshape(-1)  # slot-major, as the values are laid out
            order = np.argsort(flat, kind="stable")
            used, starts = np.unique(flat[order], return_index=True)
            groups.append(PathGroup(feature.T.copy(), self.lower[leaves, :length].T[:, None, :].copy(),
                                    self.upper[leaves, :length].T[:, None, :].copy(),
                                    self.zero[leaves, :length].T[:, None, :].copy(), self.value[leaves].copy(),
                                    _weights(length), order, used, starts))
        return groups

    @property
    def expected_value(self) -> float:
        """The output averaged over the training covers: the explanation's base value."""
        return float(self.offset + np.sum(self.value * np.prod(self.zero, axis=1)))


@dataclass(frozen=True)
class PathGroup:
    """Paths of one length ``d``, slot-major: ``feature`` (d, leaves), ``lower``/``upper``/``zero`` (d, 1, leaves)."""

    feature: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    zero: np.ndarray
    value: np.ndarray
    weights: np.ndarray
    order: np.ndarray
    used: np.ndarray
    starts: np.ndarray


Path = list[tuple[int, float, float, float]]


def _walk(left: np.ndarray, right: np.ndarray, feature: np.ndarray, threshold: np.ndarray,
          cover: np.ndarray) -> Iterable[tuple[int, Path]]:
    """Each leaf with its path: (column, lower, upper, cover product) per distinct column, in first-use order."""
    stack: list[tuple[int, dict[int, tuple[float, float, float]]]] = [(0, {})]
    while stack:
        node, bounds = stack.pop()
        if left[node] < 0 or left[node] == right[node]:
            yield node, [(column, *bound) for column, bound in bounds.items()]
            continue
        column, cut = int(feature[node]), float(threshold[node])
        low, high, zero = bounds.get(column, (-np.inf, np.inf, 1.0))
        for child, interval in ((left[node], (low, min(high, cut))), (right[node], (max(low, cut), high))):
            stack.append((int(child), {**bounds, column: (*interval, zero * float(cover[child]) / float(cover[node]))}))


def _flatten(paths: list[tuple[float, Path]], offset: float, columns: int) -> LeafPaths:
    depth = max(1, max(len(path) for _, path in paths))
    leaves = len(paths)
    feature = np.zeros((leaves, depth), dtype=np.intp)
    lower = np.full((leaves, depth), -np.inf)
    upper = np.full((leaves, depth), np.inf)
    zero = np.ones((leaves, depth))
    for index, (_, path) in enumerate(paths):
        for slot, (column, low, high, ratio) in enumerate(path):
            feature[index, slot], lower[index, slot], upper[index, slot], zero[index, slot] = column, low, high, ratio
    value = np.array([value for value, _ in paths], dtype=np.float64)
    return LeafPaths(feature, lower, upper, zero, value, offset, columns)


def forest_paths(trees: list[Any], columns: int, positive: int = 1) -> LeafPaths:
    """The paths of scikit-learn decision trees whose outputs are averaged (a random forest's probability).

    Each leaf's value is its share of class ``positive``, divided by the number of trees.
    """
    paths = []
    for tree in trees:
        arrays = tree.tree_
        for leaf, path in _walk(arrays.children_left, arrays.children_right, arrays.feature, arrays.threshold,
                                arrays.weighted_n_node_samples):
            counts = arrays.value[leaf, 0]
            paths.append((float(counts[positive] / counts.sum()) / len(trees), path))
    return _flatten(paths, 0.0, columns)


def boosting_paths(predictors: list[Any], baseline: float, columns: int) -> LeafPaths:
    """The paths of a binary ``HistGradientBoostingClassifier``'s predictors (their sum is the log-odds).

    Raises ValueError for a predictor with a categorical split (a bitset, not an interval).
    """
    paths = []
    for predictor in predictors:
        nodes = predictor.nodes
        if np.any(nodes["is_categorical"]):
            raise ValueError("a tree with categorical splits is not supported")
        left = np.where(nodes["is_leaf"], -1, nodes["left"].astype(np.intp))
        for leaf, path in _walk(left, nodes["right"], nodes["feature_idx"], nodes["num_threshold"], nodes["count"]):
            paths.append((float(nodes["value"][leaf]), path))
    return _flatten(paths, float(baseline), columns)


def _weights(depth: int) -> np.ndarray:
    """``w(k, D) = k! (D - k - 1)! / D!`` for ``k`` in ``0 .. D-1``."""
    return np.array([factorial(k) * factorial(depth - k - 1) / factorial(depth) for k in range(depth)])


def shap_values(paths: LeafPaths, matrix: np.ndarray) -> np.ndarray:
    """The TreeSHAP value of every column for every row of ``matrix``: (rows, columns).

    ``matrix`` holds the values the trees compare with their thresholds (for
    scikit-learn's decision trees, the float32 rounding they apply). Each row
    is computed apart from the others, in a fixed order, so a row gets the
    same numbers alone or in any batch.
    """
    rows = matrix.shape[0]
    result = np.zeros((rows, paths.columns))
    for first in range(0, rows, ROW_CHUNK):
        block = matrix[first:first + ROW_CHUNK].T  # (columns, rows)
        for group in paths.by_length:
            values = _group_values(group, block)  # (rows, depth × leaves)
            sums = np.add.reduceat(values[:, group.order], group.starts, axis=1)
            result[first:first + ROW_CHUNK, group.used] += sums
    return result


def _group_values(group: PathGroup, block: np.ndarray) -> np.ndarray:
    """The value of each slot of each path of ``group`` for the rows of ``block`` (columns, rows)."""
    depth, leaves = group.feature.shape
    count = block.shape[1]
    weights, value = group.weights, group.value
    picked = block[group.feature].transpose(0, 2, 1)  # (depth, rows, leaves)
    satisfied = (picked > group.lower) & (picked <= group.upper)
    coefficients = np.zeros((depth + 1, count, leaves))
    coefficients[0] = 1.0
    for slot in range(depth):  # Q(t) = prod(z_j + o_j t), one factor per slot; degree slot + 1 after it
        ratio = group.zero[slot]
        coefficients[1:slot + 2] = coefficients[1:slot + 2] * ratio + coefficients[:slot + 1] * satisfied[slot]
        coefficients[0] *= ratio
    weighted = weights[0] * coefficients[0]
    for k in range(1, depth):
        weighted += weights[k] * coefficients[k]
    unsatisfied_value = -value * weighted  # (rows, leaves)
    phi = np.empty((count, depth, leaves))
    for slot in range(depth):
        ratio = group.zero[slot]
        quotient = coefficients[depth]  # Q / (z_i + t), highest coefficient first
        total = weights[depth - 1] * quotient
        for k in range(depth - 1, 0, -1):
            quotient = coefficients[k] - ratio * quotient
            total += weights[k - 1] * quotient
        phi[:, slot] = np.where(satisfied[slot], value * (1.0 - ratio) * total, unsatisfied_value)
    return phi.reshape(count, -1)
