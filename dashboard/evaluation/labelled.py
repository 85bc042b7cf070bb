"""Which labelled predictions an outcome judges: forecasts, retrospective predictions, and those past the horizon.

A prediction is a **forecast** when it was received before its outcome's
known day (00:00 UTC), **retrospective** otherwise. A forecast made more
than the horizon before that day is too old to be judged by it (``beyond
horizon``: counted, not evaluated). An outcome from the training extracts is
**in-sample**: the models were fitted on those employees.
"""
from __future__ import annotations

import pandas as pd

FORECAST, RETROSPECTIVE, BEYOND_HORIZON = "forecast", "retrospective", "beyond horizon"
TRAINING_EXTRACTS = "training_extracts"


def judge(frame: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """``frame`` (``received_at``, ``known_at``, ``source``) with ``kind`` and ``in_sample`` columns added."""
    judged = frame.copy()
    received = pd.to_datetime(judged["received_at"], utc=True)
    known = pd.to_datetime(judged["known_at"]).dt.tz_localize("UTC") if len(judged) else received
    ahead = known - received
    judged["kind"] = RETROSPECTIVE
    judged.loc[ahead > pd.Timedelta(0), "kind"] = FORECAST
    judged.loc[ahead > pd.Timedelta(days=horizon_days), "kind"] = BEYOND_HORIZON
    judged["in_sample"] = judged["source"] == TRAINING_EXTRACTS
    return judged
