"""Positive-prediction rate, recall and false-positive rate by group, with fairlearn's ``MetricFrame``.

Groups: ``genre``, ``departement`` and the age band (under 30, 30–39, 40–49,
50 and over). Each group's positive rate is compared with the highest
group's; the four-fifths rule flags a ratio below 0.8. A group of fewer than
``MIN_GROUP_ROWS`` rows is shown as too small: no rate of it is compared,
and it is not the highest. Recall and false-positive rate are on labelled
rows only (a group without a leaver has no recall, without a stayer no FPR).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, count, false_positive_rate, selection_rate, true_positive_rate

AGE_BANDS = (("under 30", 0, 30), ("30-39", 30, 40), ("40-49", 40, 50), ("50 and over", 50, None))
"""The age bands (label, from, below), as the v2 cards' fairness references name them."""
ATTRIBUTES = {"genre": "genre", "departement": "departement", "age band": "age_band"}
"""Each attribute as the page names it, and as the v2 card's fairness reference does."""
FOUR_FIFTHS = 0.8
MIN_GROUP_ROWS = 30


def age_band(ages: pd.Series) -> pd.Series:
    """The age band of each age."""
    edges = [band[1] for band in AGE_BANDS] + [np.inf]
    return pd.cut(ages.astype(float), bins=edges, right=False, labels=[band[0] for band in AGE_BANDS]).astype(str)


def _leavers(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.sum(y_true))


def _stayers(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.size(y_true) - np.sum(y_true))


def group_table(frame: pd.DataFrame, attribute: str, min_rows: int = MIN_GROUP_ROWS) -> pd.DataFrame:
    """One row per group of ``attribute`` (a column of ``frame``): rows, positive rate, ratio to the highest.

    ``frame`` holds the served rows of one model version: ``prediction``
    (0/1), the attribute, and ``has_left`` (NaN when unlabelled). Columns:
    ``group``, ``rows``, ``positive rate``, ``ratio to highest``,
    ``below four-fifths``, ``labelled``, ``recall``, ``false-positive rate``, ``note``.
    """
    groups = frame[attribute].astype(str)
    served = MetricFrame(metrics={"rows": count, "positive rate": selection_rate},
                         y_true=frame["prediction"].astype(int), y_pred=frame["prediction"].astype(int),
                         sensitive_features=groups.rename(attribute)).by_group
    table = pd.DataFrame(served)
    table["rows"] = table["rows"].astype(int)
    large = table["rows"] >= min_rows
    highest = table.loc[large, "positive rate"].max() if large.any() else np.nan
    table["ratio to highest"] = np.where(large & (highest > 0), table["positive rate"] / highest, np.nan)
    table["below four-fifths"] = large & (table["ratio to highest"] < FOUR_FIFTHS)
    labelled = frame[frame["has_left"].notna()]
    table["labelled"] = 0
    table["recall"] = np.nan
    table["false-positive rate"] = np.nan
    if not labelled.empty:
        by_group = MetricFrame(metrics={"labelled": count, "leavers": _leavers, "stayers": _stayers,
                                        "recall": true_positive_rate, "false-positive rate": false_positive_rate},
                               y_true=labelled["has_left"].astype(int), y_pred=labelled["prediction"].astype(int),
                               sensitive_features=labelled[attribute].astype(str).rename(attribute)).by_group
        by_group = pd.DataFrame(by_group).reindex(table.index)
        table["labelled"] = by_group["labelled"].fillna(0).astype(int)
        table["recall"] = by_group["recall"].where(by_group["leavers"] > 0)
        table["false-positive rate"] = by_group["false-positive rate"].where(by_group["stayers"] > 0)
    table["note"] = np.where(large, "", f"too small (< {min_rows} rows): not compared")
    for column in ("positive rate", "recall", "false-positive rate"):
        table[column] = table[column].astype(float)
    bands = [band[0] for band in AGE_BANDS]
    if set(table.index) <= set(bands):  # age bands read youngest first, not alphabetically
        table = table.reindex([band for band in bands if band in table.index])
    return table.reset_index(names="group")
