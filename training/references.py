"""The out-of-fold references a card carries for live evaluation: score distribution, calibration, fairness.

Everything is computed on the out-of-fold probabilities of the cross-validation
(each employee scored by a model that did not see them), so the figures are
what the model does on employees it was not fitted on, the closest the
extracts come to live traffic. The dashboard draws the live figures against
them. Aggregates only: counts, shares and rates per bin or per group, never a row.

The fairness figures are computed with ``fairlearn``'s ``MetricFrame``, a
training (and dashboard) dependency only: the service never imports this module.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, count, false_positive_rate, selection_rate, true_positive_rate

from attrition.schema import FEATURES

DISTRIBUTION_BINS = 20
"""Equal-width bins of the probability distribution over [0, 1] (width 0.05)."""
CALIBRATION_BINS = 10
"""Equal-width bins of the calibration table over [0, 1] (width 0.1)."""

AGE_BANDS: tuple[tuple[str, int, int | None], ...] = (
    ("under 30", 0, 30), ("30-39", 30, 40), ("40-49", 40, 50), ("50 and over", 50, None))
"""Age bands ``(label, lowest age, first age above the band)``, the groups HR reports by."""
FAIRNESS_GROUPS: tuple[str, ...] = ("genre", "departement", "age_band")
FOUR_FIFTHS = 0.8
"""A group whose positive-prediction rate is under this share of the highest group's is flagged."""

_DIGITS = 6


def _rate(value: float) -> float | None:
    """A rate rounded for the card; ``None`` where it is undefined (no row to compute it on)."""
    value = float(value)
    return round(value, _DIGITS) if np.isfinite(value) else None


def _edges(bins: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, bins + 1)


def _bin_index(probability: np.ndarray, bins: int) -> np.ndarray:
    """The bin of each probability: [k/bins, (k+1)/bins), the last bin closed at 1.0 (as ``np.histogram``)."""
    return np.minimum((np.asarray(probability, dtype=float) * bins).astype(int), bins - 1)


def probability_distribution(probability: np.ndarray, bins: int = DISTRIBUTION_BINS) -> dict[str, Any]:
    """How many rows fall in each equal-width probability bin: edges, counts and shares."""
    counts = np.bincount(_bin_index(probability, bins), minlength=bins)
    return {
        "source": "out-of-fold probabilities of the cross-validation",
        "edges": [round(float(edge), _DIGITS) for edge in _edges(bins)],
        "counts": [int(c) for c in counts],
        "shares": [round(float(c) / len(probability), _DIGITS) for c in counts],
        "rows": int(len(probability)),
    }


def calibration_bins(target: pd.Series | np.ndarray, probability: np.ndarray,
                     bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Mean predicted probability against the observed rate of leavers, per equal-width bin, with counts.

    An empty bin has count 0 and no mean nor rate. ``expected_calibration_error``
    is the row-weighted mean gap between the two.
    """
    target = np.asarray(target, dtype=float)
    index = _bin_index(probability, bins)
    edges = _edges(bins)
    rows, gap = [], 0.0
    for k in range(bins):
        members = index == k
        size = int(members.sum())
        predicted = float(probability[members].mean()) if size else float("nan")
        observed = float(target[members].mean()) if size else float("nan")
        if size:
            gap += size * abs(predicted - observed)
        rows.append({"lower": round(float(edges[k]), _DIGITS), "upper": round(float(edges[k + 1]), _DIGITS),
                     "count": size, "positives": int(target[members].sum()),
                     "mean_predicted": _rate(predicted), "observed_rate": _rate(observed)})
    return {"source": "out-of-fold probabilities of the cross-validation", "bins": rows,
            "rows": int(len(target)), "expected_calibration_error": round(gap / len(target), _DIGITS)}


def age_band(ages: pd.Series) -> pd.Series:
    """The ``AGE_BANDS`` label of each age."""
    labels = pd.Series(index=ages.index, dtype=object)
    for label, low, high in AGE_BANDS:
        labels[(ages >= low) & ((ages < high) if high is not None else True)] = label
    return labels


def _group_labels(attribute: str) -> list[str]:
    """Every group of an attribute, present in the data or not: the schema's categories, or the age bands."""
    if attribute == "age_band":
        return [label for label, _, _ in AGE_BANDS]
    return [str(c) for spec in FEATURES if spec.name == attribute for c in spec.categories or ()]


def fairness_reference(features: pd.DataFrame, target: pd.Series | np.ndarray, probability: np.ndarray,
                       threshold: float) -> dict[str, Any]:
    """Positive-prediction rate, its ratio to the highest group's, recall and false-positive rate, by group.

    The groups are those of ``FAIRNESS_GROUPS`` (``genre``, ``departement`` and the
    age band); the predictions are the out-of-fold probabilities at ``threshold``
    (1 when p >= threshold, as served). Every group of the schema is listed, with
    its size (0 and no rate when the extracts hold none of it). A recall is
    undefined (``None``) in a group without leavers, a false-positive rate in a
    group without stayers.
    """
    y_true = pd.Series(np.asarray(target, dtype=int), index=features.index)
    y_pred = pd.Series((np.asarray(probability) >= threshold).astype(int), index=features.index)
    sensitive = {"genre": features["genre"].astype(str), "departement": features["departement"].astype(str),
                 "age_band": age_band(features["age"])}
    metrics = {"size": count, "positive_rate": selection_rate}
    by_attribute: dict[str, Any] = {}
    for attribute in FAIRNESS_GROUPS:
        frame = MetricFrame(metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=sensitive[attribute])
        # Recall is the true-positive rate on leavers, the false-positive rate on stayers: each is taken on the
        # rows where it is defined, so a group without leavers (or stayers) gets None rather than a warning's 0.
        leavers = y_true == 1
        recall = MetricFrame(metrics=true_positive_rate, y_true=y_true[leavers], y_pred=y_pred[leavers],
                             sensitive_features=sensitive[attribute][leavers]).by_group
        stayers = ~leavers
        false_positive = MetricFrame(metrics=false_positive_rate, y_true=y_true[stayers], y_pred=y_pred[stayers],
                                     sensitive_features=sensitive[attribute][stayers]).by_group
        table = frame.by_group
        highest = float(table["positive_rate"].max())
        groups = {}
        for label in _group_labels(attribute):
            present = label in table.index
            rate = float(table.loc[label, "positive_rate"]) if present else float("nan")
            groups[label] = {
                "size": int(table.loc[label, "size"]) if present else 0,
                "leavers": int(leavers[sensitive[attribute] == label].sum()),
                "positive_rate": _rate(rate),
                "ratio_to_highest": _rate(rate / highest) if present and highest > 0 else None,
                "recall": _rate(recall.get(label, float("nan"))),
                "false_positive_rate": _rate(false_positive.get(label, float("nan"))),
            }
        ratios = [g["ratio_to_highest"] for g in groups.values() if g["ratio_to_highest"] is not None]
        by_attribute[attribute] = {
            "groups": groups,
            "lowest_ratio": min(ratios) if ratios else None,
            "below_four_fifths": sorted(label for label, g in groups.items()
                                        if g["ratio_to_highest"] is not None and g["ratio_to_highest"] < FOUR_FIFTHS),
        }
    overall = MetricFrame(metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=sensitive["genre"]).overall
    return {
        "source": "out-of-fold probabilities of the cross-validation, at the model's threshold",
        "threshold": threshold,
        "computed_with": "fairlearn.metrics.MetricFrame (selection_rate, true_positive_rate, false_positive_rate)",
        "age_bands": [{"label": label, "from": low, "below": high} for label, low, high in AGE_BANDS],
        "four_fifths": FOUR_FIFTHS,
        "overall": {"size": int(overall["size"]), "positive_rate": _rate(overall["positive_rate"])},
        **by_attribute,
    }


def out_of_fold_references(features: pd.DataFrame, target: pd.Series, probability: np.ndarray,
                           threshold: float) -> dict[str, Any]:
    """The three references of a card: probability distribution, calibration bins and fairness by group."""
    return {
        "probability_distribution": probability_distribution(probability),
        "calibration": calibration_bins(target, probability),
        "fairness": fairness_reference(features, target, probability, threshold),
    }
