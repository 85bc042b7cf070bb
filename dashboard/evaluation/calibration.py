"""The live calibration curve: per probability bin, the mean predicted probability against the observed rate."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

DEFAULT_EDGES = tuple(i / 10 for i in range(11))


def calibration_bins(y: Sequence[float], p: Sequence[float], edges: Sequence[float] = DEFAULT_EDGES) -> pd.DataFrame:
    """Labelled rows per bin ``[edges[i], edges[i+1])`` (the last closed): count, leavers, mean predicted, observed.

    Bins without rows are left out. Use the card's edges to compare with its curve.
    """
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    inner = np.asarray(edges[1:-1], dtype=float)
    index = np.searchsorted(inner, p, side="right")
    frame = pd.DataFrame({"bin": index, "y": y, "p": p})
    grouped = frame.groupby("bin").agg(count=("y", "size"), positives=("y", "sum"), mean_predicted=("p", "mean"),
                                       observed_rate=("y", "mean")).reset_index()
    grouped["lower"] = [float(edges[i]) for i in grouped["bin"]]
    grouped["upper"] = [float(edges[i + 1]) for i in grouped["bin"]]
    grouped["positives"] = grouped["positives"].astype(int)
    return grouped[["lower", "upper", "count", "positives", "mean_predicted", "observed_rate"]]
