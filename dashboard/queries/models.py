"""The Models page's reads: volume, positive rate and distribution of probabilities per model version."""
from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dashboard.queries.sql import count_if, frame_of, is_error
from dashboard.queries.window import Window
from persistence.database.schema import prediction_traces as traces

PROBABILITY_BINS = 20


def model_volume(engine: Engine, window: Window) -> pd.DataFrame:
    """Per model version: rows, predicted positives, positive rate, fallbacks, errors, mean probability."""
    statement = (
        sa.select(traces.c.model_name, traces.c.model_version, sa.func.count().label("rows"),
                  count_if(traces.c.prediction == 1).label("positives"),
                  count_if(traces.c.prediction.is_not(None)).label("predicted"),
                  count_if(traces.c.fallback.is_(True)).label("fallbacks"),
                  count_if(is_error()).label("errors"),
                  sa.func.avg(traces.c.probability).label("mean_probability"))
        .where(*window.where())
        .group_by(traces.c.model_name, traces.c.model_version)
        .order_by(traces.c.model_name, traces.c.model_version)
    )
    frame = frame_of(engine, statement)
    if not frame.empty:
        frame["positive_rate"] = frame["positives"] / frame["predicted"].where(frame["predicted"] > 0)
        frame["model"] = frame["model_name"] + ":" + frame["model_version"]
    return frame


def probability_histogram(engine: Engine, window: Window, bins: int = PROBABILITY_BINS) -> pd.DataFrame:
    """Rows per probability bin (``bins`` equal bins over [0, 1]) and model version."""
    cases = [(traces.c.probability < (index + 1) / bins, index) for index in range(bins - 1)]
    probability_bin = sa.case(*cases, else_=bins - 1).label("bin")
    statement = (
        sa.select(traces.c.model_name, traces.c.model_version, probability_bin, sa.func.count().label("rows"))
        .where(*window.where(), traces.c.probability.is_not(None))
        .group_by(traces.c.model_name, traces.c.model_version, probability_bin)
    )
    frame = frame_of(engine, statement)
    if not frame.empty:
        frame["model"] = frame["model_name"] + ":" + frame["model_version"]
        frame["probability_from"] = frame["bin"] / bins
        frame["probability_to"] = (frame["bin"] + 1) / bins
        frame["share"] = frame["rows"] / frame.groupby("model")["rows"].transform("sum")
    return frame


def served_inputs(engine: Engine, window: Window, model_name: str, model_version: str,
                  max_rows: int) -> list[dict]:
    """The inputs of the newest ``max_rows`` answered rows of one model version in the window (no errors)."""
    statement = (sa.select(traces.c.inputs)
                 .where(*window.where(), traces.c.model_name == model_name, traces.c.model_version == model_version,
                        traces.c.probability.is_not(None), traces.c.inputs.is_not(None))
                 .order_by(traces.c.received_at.desc(), traces.c.request_id).limit(max_rows))
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(statement).scalars()]
