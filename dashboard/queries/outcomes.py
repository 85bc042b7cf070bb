"""The reads of the Evaluation, Comparison and Fairness pages: predictions with their employee's current outcome.

A prediction is labelled when its trace is tagged with an employee id that
has an outcome (``persistence.database.outcomes.current_outcomes``: the
latest known day, then the latest recording). These are per-employee rows:
the pages record each read in the read log.
"""
from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dashboard.queries.sql import frame_of
from dashboard.queries.window import Window
from persistence.database.outcomes import current_outcomes
from persistence.database.schema import outcomes as outcome_rows
from persistence.database.schema import prediction_traces as traces

PREDICTION_COLUMNS = ("request_id", "received_at", "employee_id", "model_name", "model_version", "probability",
                      "prediction", "threshold")
GROUP_INPUTS = ("genre", "departement")


def outcomes_table_exists(engine: Engine) -> bool:
    """True when the database holds the outcomes table (migration 0006 has run)."""
    return sa.inspect(engine).has_table(outcome_rows.name)


def _predictions(window: Window, labelled_only: bool, with_groups: bool, with_inputs: bool = False) -> sa.Select:
    latest = current_outcomes()
    columns = [traces.c[name] for name in PREDICTION_COLUMNS]
    columns += [latest.c.has_left, latest.c.known_at, latest.c.source]
    if with_groups:
        columns += [traces.c.inputs[name].as_string().label(name) for name in GROUP_INPUTS]
        columns.append(traces.c.inputs["age"].as_integer().label("age"))
    if with_inputs:
        columns.append(traces.c.inputs)
    join = traces.join(latest, latest.c.employee_id == traces.c.employee_id, isouter=not labelled_only)
    return (sa.select(*columns).select_from(join)
            .where(*window.where(), traces.c.prediction.is_not(None)))


def labelled_predictions(engine: Engine, window: Window) -> pd.DataFrame:
    """Every prediction of the window whose employee has an outcome, with it (``has_left``, ``known_at``, source)."""
    statement = _predictions(window, labelled_only=True, with_groups=False).order_by(traces.c.received_at)
    frame = frame_of(engine, statement)
    if frame.empty:
        return pd.DataFrame(columns=[*PREDICTION_COLUMNS, "has_left", "known_at", "source", "model"])
    frame["model"] = frame["model_name"] + ":" + frame["model_version"]
    frame["has_left"] = frame["has_left"].astype(bool)
    return frame


def group_predictions(engine: Engine, window: Window, max_rows: int) -> pd.DataFrame:
    """The newest ``max_rows`` predictions of the window with ``genre``, ``departement``, ``age`` and the outcome.

    ``has_left`` is NaN where the employee has no outcome.
    """
    statement = (_predictions(window, labelled_only=False, with_groups=True)
                 .order_by(traces.c.received_at.desc()).limit(max_rows))
    frame = frame_of(engine, statement)
    if frame.empty:
        return pd.DataFrame(columns=[*PREDICTION_COLUMNS, "has_left", "known_at", "source", *GROUP_INPUTS, "age",
                                     "model"])
    frame["model"] = frame["model_name"] + ":" + frame["model_version"]
    frame["has_left"] = frame["has_left"].map(lambda v: float(v) if v is not None and not pd.isna(v) else float("nan"))
    return frame


def recent_inputs(engine: Engine, window: Window, max_rows: int) -> pd.DataFrame:
    """The newest ``max_rows`` predictions of the window with their 30 inputs and, where known, the outcome."""
    statement = (_predictions(window, labelled_only=False, with_groups=False, with_inputs=True)
                 .order_by(traces.c.received_at.desc(), traces.c.request_id).limit(max_rows))
    frame = frame_of(engine, statement)
    if frame.empty:
        return pd.DataFrame(columns=[*PREDICTION_COLUMNS, "has_left", "known_at", "source", "inputs", "model"])
    frame["model"] = frame["model_name"] + ":" + frame["model_version"]
    frame["has_left"] = frame["has_left"].map(lambda v: float(v) if v is not None and not pd.isna(v) else float("nan"))
    return frame
