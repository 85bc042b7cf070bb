"""Is a change in live counts more than sampling noise? Goodness-of-fit per input, Holm across the inputs.

The card holds each input's training distribution as shares over bins (the
histogram of a number, the shares of a category), not the training rows, so
the test is a chi-square goodness-of-fit of the live counts against those
shares. Its chi-square approximation needs about 5 expected rows per bin:
bins are merged until each group expects at least ``MIN_EXPECTED`` rows
(adjacent bins for a number, the rarest categories together for a category),
so the test adapts to the sample size as Evidently's choice of test does.

A page tests some 30 inputs at once: Holm's step-down adjustment keeps the
chance that a window with no drift at all flags any input at most
``FAMILY_ALPHA``, whatever the dependence between inputs.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import chi2

from dashboard.drift.distances import floored

FAMILY_ALPHA = 0.01
"""The page's false-alarm rate: the chance that a window drawn from the reference flags any input."""
MIN_EXPECTED = 5.0
"""Rows a merged bin must expect under the reference for the chi-square approximation to hold."""


def merged_groups(reference: np.ndarray, rows: int, ordered: bool) -> np.ndarray:
    """The group of each bin, merged so that every group expects at least ``MIN_EXPECTED`` of ``rows`` rows.

    ``ordered`` bins (a histogram) merge with their neighbours, left to right,
    and a short last group joins the one before it; unordered bins
    (categories) merge from the rarest up.
    """
    shares = floored(reference)
    shares = shares / shares.sum()
    order = np.arange(shares.size) if ordered else np.argsort(shares, kind="stable")
    groups = np.empty(shares.size, dtype=int)
    group, expected = 0, 0.0
    for index in order:
        groups[index] = group
        expected += shares[index] * rows
        if expected >= MIN_EXPECTED:
            group, expected = group + 1, 0.0
    if expected > 0 and group > 0:  # the last group is short of MIN_EXPECTED: it joins the previous one
        groups[groups == group] = group - 1
    return groups


def goodness_of_fit(reference: np.ndarray, counts: np.ndarray, ordered: bool) -> float | np.ndarray:
    """p-value of the chi-square goodness-of-fit of live ``counts`` against the ``reference`` shares.

    ``counts`` is one sample (``(bins,)``) or many samples of the same size
    (``(samples, bins)``); 1.0 when merging leaves a single group (nothing
    the counts could contradict).
    """
    counts = np.asarray(counts, dtype=float)
    rows = int(round(float(counts.reshape(-1, counts.shape[-1])[0].sum())))
    if rows == 0:
        return 1.0 if counts.ndim == 1 else np.ones(counts.shape[0])
    groups = merged_groups(np.asarray(reference, dtype=float), rows, ordered)
    size = int(groups.max()) + 1
    membership = np.zeros((groups.size, size))
    membership[np.arange(groups.size), groups] = 1.0
    shares = floored(reference)
    expected = (shares / shares.sum()) @ membership * rows
    observed = counts @ membership
    statistic = np.sum((observed - expected) ** 2 / expected, axis=-1)
    p_values = np.ones_like(statistic) if size < 2 else chi2.sf(statistic, size - 1)
    return float(p_values) if np.ndim(p_values) == 0 else p_values


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's adjusted p-values along the last axis (one family of tests per row).

    The i-th smallest of m p-values is multiplied by m - i (i from 0), then
    made non-decreasing; an adjusted p-value at or below α rejects with a
    family-wise error rate of at most α.
    """
    p = np.asarray(p_values, dtype=float)
    tests = p.shape[-1]
    if tests == 0:
        return p.copy()
    order = np.argsort(p, axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1) * np.arange(tests, 0, -1)
    adjusted_sorted = np.minimum(np.maximum.accumulate(ranked, axis=-1), 1.0)
    adjusted = np.empty_like(adjusted_sorted)
    np.put_along_axis(adjusted, order, adjusted_sorted, axis=-1)
    return adjusted
