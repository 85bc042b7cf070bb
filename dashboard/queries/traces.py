"""Reads of trace rows (personal data: every page that shows them records the read): the listed rows, one trace."""
from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dashboard.queries.sql import count_if, frame_of
from dashboard.queries.window import PredictionFilter, Window
from persistence.database.schema import prediction_traces as traces

TRACE_COLUMNS = ("request_id", "received_at", "endpoint", "requested_model", "employee_id", "batch_index",
                 "model_name", "model_version", "model_sha256", "service_version", "prediction", "probability",
                 "threshold", "fallback", "status", "error", "inference_ms", "total_ms", "created_at")
"""The columns of one trace the audit view shows (with ``inputs``), selected by name."""

LISTED_COLUMNS = ("received_at", "employee_id", "model_name", "model_version", "prediction", "probability",
                  "threshold", "status", "fallback", "endpoint", "total_ms", "request_id")
"""The columns of the Predictions page's table and CSV export, in the order an analyst reads them (ids last)."""


def prediction_count(engine: Engine, window: Window, selection: PredictionFilter) -> int:
    """How many traces of the window match ``selection``."""
    statement = sa.select(sa.func.count()).select_from(traces).where(*window.where(), *selection.where())
    with engine.connect() as connection:
        return int(connection.execute(statement).scalar_one())


def prediction_rows(engine: Engine, window: Window, selection: PredictionFilter, limit: int) -> pd.DataFrame:
    """The newest ``limit`` traces of the window matching ``selection`` (listed columns, no inputs)."""
    statement = (sa.select(*[traces.c[name] for name in LISTED_COLUMNS])
                 .where(*window.where(), *selection.where())
                 .order_by(traces.c.received_at.desc(), traces.c.request_id)
                 .limit(limit))
    frame = frame_of(engine, statement)
    if frame.empty:
        return pd.DataFrame(columns=list(LISTED_COLUMNS))
    return frame


def trace_by_request_id(engine: Engine, request_id: str) -> dict[str, Any] | None:
    """The whole stored trace of one request, inputs included (``None`` when unknown)."""
    statement = sa.select(*[traces.c[name] for name in TRACE_COLUMNS], traces.c.inputs).where(
        traces.c.request_id == request_id)
    with engine.connect() as connection:
        row = connection.execute(statement).mappings().one_or_none()
    return dict(row) if row is not None else None


def prediction_summary(engine: Engine, window: Window, selection: PredictionFilter) -> dict[str, Any]:
    """Of the traces matching ``selection``: how many, how many predicted Oui, their mean probability."""
    statement = sa.select(
        sa.func.count().label("rows"), count_if(traces.c.prediction == 1).label("positives"),
        count_if(traces.c.prediction.is_not(None)).label("predicted"),
        sa.func.avg(traces.c.probability).label("mean_probability"),
    ).where(*window.where(), *selection.where())
    with engine.connect() as connection:
        row = connection.execute(statement).mappings().one()
    mean = row["mean_probability"]
    return {"rows": int(row["rows"]), "positives": int(row["positives"]), "predicted": int(row["predicted"]),
            "mean_probability": None if mean is None else float(mean)}
