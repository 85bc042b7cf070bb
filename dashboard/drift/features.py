"""The drift of each input over a window: a test that says whether it changed, PSI and JS that say how much.

A verdict is a statistical statement: an input **drifts** when the
goodness-of-fit of its live counts against the card's reference rejects
after Holm's adjustment over every input tested (so a window with no drift
flags any input with probability at most ``FAMILY_ALPHA``) *and* the change is
not small (PSI at least ``PSI_WATCH``). A significant but small change, as
large samples find, is a ``small change``. PSI and Jensen–Shannon distance
are shown as the size of the change, not as the alarm.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from dashboard.drift.distances import PSI_WATCH, js_distance, psi, shares_of
from dashboard.drift.reference import bin_labels
from dashboard.drift.significance import FAMILY_ALPHA, goodness_of_fit, holm

STABLE, WATCH, DRIFT, NO_VERDICT = "no evidence", "small change", "drift", "no verdict"
SEVERITY_ORDER = {DRIFT: 0, WATCH: 1, STABLE: 2, NO_VERDICT: 3}


@dataclass(frozen=True)
class FeatureDrift:
    """The drift of one input for one model version over a window."""

    feature: str
    kind: str
    rows: int
    psi: float | None
    js_distance: float | None
    p_value: float | None
    adjusted_p: float | None
    severity: str
    outside_share: float
    bins: tuple[str, ...]
    reference_shares: tuple[float, ...]
    live_shares: tuple[float, ...]
    note: str = ""


def numeric_drift(feature: str, reference: Mapping[str, Any], bin_counts: Mapping[int, int],
                  outside_rows: int, min_rows: int) -> FeatureDrift:
    """Drift of a numeric input from its live counts per reference bin (``{bin index: rows}``), before Holm."""
    edges = reference["histogram"]["edges"]
    ref = np.asarray(reference["histogram"]["shares"], dtype=float)
    counts = np.zeros(len(edges) - 1)
    for index, rows in bin_counts.items():
        counts[min(max(int(index), 0), counts.size - 1)] += rows
    return _feature_drift(feature, "numeric", bin_labels(edges), ref, counts, outside_rows, min_rows, ordered=True)


def categorical_drift(feature: str, reference: Mapping[str, Any], category_counts: Mapping[str, int],
                      min_rows: int) -> FeatureDrift:
    """Drift of a categorical input from its live counts per category (unseen ones count as outside), before Holm."""
    ref_shares: Mapping[str, float] = reference["shares"]
    categories = list(ref_shares) + sorted(c for c in category_counts if c not in ref_shares)
    ref = np.asarray([ref_shares.get(c, 0.0) for c in categories], dtype=float)
    counts = np.asarray([category_counts.get(c, 0) for c in categories], dtype=float)
    unseen = sum(rows for c, rows in category_counts.items() if ref_shares.get(c, 0.0) <= 0)
    return _feature_drift(feature, "categorical", tuple(categories), ref, counts, unseen, min_rows, ordered=False)


def _feature_drift(feature: str, kind: str, bins: tuple[str, ...], ref: np.ndarray, counts: np.ndarray,
                   outside_rows: int, min_rows: int, ordered: bool) -> FeatureDrift:
    rows = int(counts.sum())
    live = shares_of(counts)
    scored = rows >= min_rows
    note = "" if scored else f"{rows} rows, fewer than the {min_rows} needed"
    return FeatureDrift(feature, kind, rows, psi(ref, live) if scored else None,
                        js_distance(ref, live) if scored else None,
                        goodness_of_fit(ref, counts, ordered) if scored else None, None, NO_VERDICT,
                        outside_rows / rows if rows else 0.0, bins, tuple(float(x) for x in ref),
                        tuple(float(x) for x in live), note)


def without_reference(feature: str) -> FeatureDrift:
    """An input the card holds no reference for: no comparison, and the page says so."""
    return FeatureDrift(feature, "–", 0, None, None, None, None, NO_VERDICT, 0.0, (), (), (),
                        "the model's card holds no training reference for this input")


def verdicts(drifts: list[FeatureDrift], alpha: float = FAMILY_ALPHA) -> list[FeatureDrift]:
    """The inputs with Holm-adjusted p-values and their severity, worst first."""
    tested = [index for index, d in enumerate(drifts) if d.p_value is not None]
    adjusted = holm(np.asarray([drifts[i].p_value for i in tested], dtype=float))
    judged = list(drifts)
    for index, p in zip(tested, adjusted):
        drift = drifts[index]
        severity = STABLE if p > alpha else DRIFT if (drift.psi or 0.0) >= PSI_WATCH else WATCH
        judged[index] = replace(drift, adjusted_p=float(p), severity=severity)
    return sorted(judged, key=lambda d: (SEVERITY_ORDER[d.severity], d.adjusted_p if d.adjusted_p is not None
                                         else 2.0, -(d.psi or 0.0), d.feature))


def features_drift(counts: pd.DataFrame, references: Mapping[str, Mapping[str, Any]], min_rows: int,
                   features: Iterable[str] | None = None, alpha: float = FAMILY_ALPHA) -> list[FeatureDrift]:
    """The drift of every input, from live counts (``queries.drift_counts``), worst first.

    ``counts`` has columns ``feature``, ``bin`` (numeric inputs), ``category``
    (categorical inputs), ``rows`` and ``outside``; days are summed.
    ``features`` (default: those of ``references``) may name inputs the card
    has no reference for: they come back without a verdict, and why.
    """
    results = []
    for feature in (list(references) if features is None else list(features)):
        reference = references.get(feature)
        if not reference:
            results.append(without_reference(feature))
            continue
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
    return verdicts(results, alpha)


def drifting(drifts: list[FeatureDrift]) -> list[str]:
    """The inputs whose verdict is drift: the page's alarm."""
    return [d.feature for d in drifts if d.severity == DRIFT]


def daily_worst(counts: pd.DataFrame, references: Mapping[str, Mapping[str, Any]],
                min_rows: int) -> pd.DataFrame:
    """Per day with at least ``min_rows`` rows: the worst PSI and JS distance, which input, how many drift."""
    records = []
    if not counts.empty:
        for day, rows in counts.groupby("day", sort=True):
            drifts = [d for d in features_drift(rows, references, min_rows) if d.psi is not None]
            if not drifts:
                continue
            worst = max(drifts, key=lambda d: d.psi or 0.0)
            records.append({"day": pd.to_datetime(int(day), unit="s", utc=True), "worst_psi": worst.psi,
                            "worst_js": max(d.js_distance or 0.0 for d in drifts), "feature": worst.feature,
                            "rows": worst.rows, "drifting": len(drifting(drifts))})
    return pd.DataFrame(records, columns=["day", "worst_psi", "worst_js", "feature", "rows", "drifting"])
