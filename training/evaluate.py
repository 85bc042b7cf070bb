"""Evaluation of one pipeline: cross-validation, threshold choice, held-out test, reference distributions.

Every split is seeded (``RANDOM_STATE``) so two runs on the same data give the
same numbers. Everything returned here is an aggregate: no row, no
per-employee value, leaves this module.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import (average_precision_score, brier_score_loss, confusion_matrix, f1_score, log_loss,
                             precision_score, recall_score, roc_auc_score)
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline

from attrition.schema import FEATURES
from training.pipelines import RANDOM_STATE

N_SPLITS = 5
HOLDOUT_SIZE = 0.2
MIN_RECALL = 0.65
"""The threshold is the highest one that still catches this share of the leavers."""

QUALITY_BAR = {"cv_roc_auc_mean": 0.80, "holdout_roc_auc": 0.78}
"""The least a model must reach to be promoted champion."""

QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)

# Numerics with at most this many distinct values get one histogram bin per value.
_MAX_BINS_PER_VALUE = 15

_DIGITS = 6  # metrics are rounded for the card; the threshold never is


def _round(value: float) -> float:
    return round(float(value), _DIGITS)


def positive_probability(model: Pipeline, features: pd.DataFrame) -> np.ndarray:
    """Probability of class 1 (the employee leaves) for each row."""
    column = list(model.classes_).index(1)
    return model.predict_proba(features)[:, column]


def classification_metrics(target: pd.Series | np.ndarray, probability: np.ndarray,
                           threshold: float) -> dict[str, Any]:
    """Ranking and calibration scores, and the decision scores at ``threshold`` (1 when p >= threshold)."""
    target = np.asarray(target)
    predicted = (probability >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(target, predicted, labels=[0, 1]).ravel()
    return {
        "roc_auc": _round(roc_auc_score(target, probability)),
        "average_precision": _round(average_precision_score(target, probability)),
        "brier": _round(brier_score_loss(target, probability)),
        "log_loss": _round(log_loss(target, probability, labels=[0, 1])),
        "precision": _round(precision_score(target, predicted, zero_division=0)),
        "recall": _round(recall_score(target, predicted, zero_division=0)),
        "f1": _round(f1_score(target, predicted, zero_division=0)),
        "predicted_positive_share": _round(predicted.mean()),
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }


def cross_validate(pipeline: Pipeline, features: pd.DataFrame,
                   target: pd.Series) -> tuple[dict[str, Any], np.ndarray]:
    """Stratified, shuffled 5-fold CV on all rows: per-fold scores and the out-of-fold probabilities.

    Returns the CV summary (mean and population std over the folds of ROC AUC,
    average precision, Brier score and log loss, plus the scores of the pooled
    out-of-fold probabilities) and those probabilities, one per row.
    """
    folds = StratifiedKFold(n_splits=N_SPLITS, shuffle=True, random_state=RANDOM_STATE)
    out_of_fold = np.full(len(target), np.nan)
    scores: dict[str, list[float]] = {"roc_auc": [], "average_precision": [], "brier": [], "log_loss": []}
    for train_index, test_index in folds.split(features, target):
        model = clone(pipeline).fit(features.iloc[train_index], target.iloc[train_index])
        probability = positive_probability(model, features.iloc[test_index])
        out_of_fold[test_index] = probability
        fold_target = target.iloc[test_index]
        scores["roc_auc"].append(roc_auc_score(fold_target, probability))
        scores["average_precision"].append(average_precision_score(fold_target, probability))
        scores["brier"].append(brier_score_loss(fold_target, probability))
        scores["log_loss"].append(log_loss(fold_target, probability, labels=[0, 1]))
    summary: dict[str, Any] = {"n_splits": N_SPLITS, "shuffle": True, "random_state": RANDOM_STATE,
                               "rows": int(len(target))}
    for metric, values in scores.items():
        summary[f"{metric}_mean"] = _round(np.mean(values))
        summary[f"{metric}_std"] = _round(np.std(values))
        summary[f"{metric}_folds"] = [_round(v) for v in values]
    summary["oof_roc_auc"] = _round(roc_auc_score(target, out_of_fold))
    summary["oof_average_precision"] = _round(average_precision_score(target, out_of_fold))
    return summary, out_of_fold


def select_threshold(target: pd.Series | np.ndarray, probability: np.ndarray,
                     min_recall: float = MIN_RECALL) -> dict[str, Any]:
    """The highest threshold whose recall on leavers (class 1) is at least ``min_recall``.

    A row is flagged when its probability is >= the threshold. Recall can only
    fall as the threshold rises, so the answer is the k-th highest probability
    among leavers, k = ceil(min_recall x leavers); any higher threshold flags
    fewer than k of them. Returns the threshold (unrounded, so the recall
    guarantee holds exactly) and the scores it gives on ``probability``.
    """
    target = np.asarray(target)
    leavers = np.sort(probability[target == 1])[::-1]
    if len(leavers) == 0:
        raise ValueError("cannot choose a threshold without any leaver (class 1)")
    # The small epsilon keeps e.g. 0.65 * 20 = 13.000000000000002 from asking for 14 leavers.
    needed = max(1, math.ceil(min_recall * len(leavers) - 1e-9))
    threshold = float(leavers[needed - 1])
    scores = classification_metrics(target, probability, threshold)
    return {
        "method": f"highest threshold with out-of-fold recall on class 1 >= {min_recall}",
        "min_recall": min_recall,
        "threshold": threshold,
        "precision": scores["precision"],
        "recall": scores["recall"],
        "f1": scores["f1"],
        "predicted_positive_share": scores["predicted_positive_share"],
        "confusion_matrix": scores["confusion_matrix"],
    }


def holdout_evaluation(pipeline: Pipeline, features: pd.DataFrame, target: pd.Series,
                       threshold: float) -> dict[str, Any]:
    """Fit on a stratified 80 % split, score the other 20 % at ``threshold``."""
    train_x, test_x, train_y, test_y = train_test_split(
        features, target, test_size=HOLDOUT_SIZE, stratify=target, random_state=RANDOM_STATE)
    model = clone(pipeline).fit(train_x, train_y)
    probability = positive_probability(model, test_x)
    return {
        "test_size": HOLDOUT_SIZE, "random_state": RANDOM_STATE, "stratified": True,
        "train_rows": int(len(train_y)), "test_rows": int(len(test_y)), "test_positives": int(test_y.sum()),
        "threshold": threshold,
        **classification_metrics(test_y, probability, threshold),
    }


def meets_quality_bar(metrics: Mapping[str, Any]) -> bool:
    """Whether card metrics reach ``QUALITY_BAR`` (CV and held-out ROC AUC)."""
    return (metrics["cv"]["roc_auc_mean"] >= QUALITY_BAR["cv_roc_auc_mean"]
            and metrics["holdout"]["roc_auc"] >= QUALITY_BAR["holdout_roc_auc"])


def _numeric_histogram(values: np.ndarray, minimum: int, maximum: int) -> dict[str, list[float]]:
    """Bins for an integer field, edges on half-integers so no value sits on an edge.

    Few distinct values: one bin per value over the observed range. Otherwise:
    bins split at the deciles. Outer bins reach the schema bounds (with share 0
    in the reference), so any valid input falls in exactly one bin and a move
    outside the observed range shows as drift.
    """
    low, high = float(values.min()), float(values.max())
    if len(np.unique(values)) <= _MAX_BINS_PER_VALUE:
        edges = list(np.arange(low - 0.5, high + 1.0, 1.0))
    else:
        deciles = np.floor(np.quantile(values, np.linspace(0.1, 0.9, 9))) + 0.5
        edges = sorted({low - 0.5, *deciles.tolist(), high + 0.5})
    if minimum - 0.5 < edges[0]:
        edges.insert(0, minimum - 0.5)
    if maximum + 0.5 > edges[-1]:
        edges.append(maximum + 0.5)
    counts, _ = np.histogram(values, bins=edges)
    return {"edges": [float(e) for e in edges], "shares": [_round(c / len(values)) for c in counts]}


def reference_distributions(features: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Aggregate distribution of each of the 30 inputs, the reference for drift monitoring.

    Numeric: count, mean, std, min, max, quantiles and a histogram (bin edges
    and the share of rows in each bin). Categorical: the share of each
    schema category (0 for categories absent from the data).
    """
    distributions: dict[str, dict[str, Any]] = {}
    for spec in FEATURES:
        column = features[spec.name]
        if spec.categories is not None:
            shares = column.value_counts(normalize=True)
            categories = list(spec.categories) + sorted(set(shares.index) - set(spec.categories))
            distributions[spec.name] = {
                "kind": "categorical", "count": int(column.size),
                "shares": {str(c): _round(shares.get(c, 0.0)) for c in categories},
            }
        else:
            values = column.to_numpy(dtype=float)
            distributions[spec.name] = {
                "kind": "numeric", "count": int(values.size),
                "mean": _round(values.mean()), "std": _round(values.std()),
                "min": _round(values.min()), "max": _round(values.max()),
                "quantiles": {str(q): _round(np.quantile(values, q)) for q in QUANTILES},
                "histogram": _numeric_histogram(values, spec.minimum, spec.maximum),
            }
    return distributions
