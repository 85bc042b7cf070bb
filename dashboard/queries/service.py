"""The Service page's reads: totals of a window, volume and latency percentiles per time bucket.

Latency percentiles: ``percentile_cont`` on PostgreSQL; on SQLite, which has
no percentile function, counts in fixed latency buckets computed in SQL,
interpolated within their bucket (approximate).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dashboard.queries.sql import as_time, count_if, epoch_bucket, frame_of, has_percentiles, is_error, is_request
from dashboard.queries.window import Window
from persistence.database.schema import prediction_traces as traces

LATENCY_EDGES_MS = (0.0, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750,
                    1_000, 2_000, 5_000, 10_000, 30_000, 60_000)
"""Fixed latency buckets (ms) for backends without a percentile function; the last one is open-ended."""
PERCENTILES = (0.5, 0.95, 0.99)


def trace_table_exists(engine: Engine) -> bool:
    """True when the database holds the trace table (the service has migrated it)."""
    return sa.inspect(engine).has_table(traces.name)


def trace_totals(engine: Engine, window: Window) -> dict[str, Any]:
    """Headline counts of the window: requests, rows, errors, fallbacks, batch share, first and last trace."""
    statement = sa.select(
        sa.func.count().label("rows"),
        count_if(is_request()).label("requests"),
        count_if(traces.c.batch_index == 0).label("batch_requests"),
        count_if(traces.c.batch_index.is_not(None)).label("batch_rows"),
        count_if(is_error()).label("errors"),
        count_if(traces.c.fallback.is_(True)).label("fallbacks"),
        sa.func.min(traces.c.received_at).label("first"),
        sa.func.max(traces.c.received_at).label("last"),
    ).where(*window.where())
    with engine.connect() as connection:
        row = connection.execute(statement).mappings().one()
    totals = {key: int(row[key]) for key in ("rows", "requests", "batch_requests", "batch_rows", "errors",
                                             "fallbacks")}
    totals.update(first=row["first"], last=row["last"])
    rows = totals["rows"]
    totals["error_rate"] = totals["errors"] / rows if rows else 0.0
    totals["fallback_rate"] = totals["fallbacks"] / rows if rows else 0.0
    totals["batch_request_share"] = totals["batch_requests"] / totals["requests"] if totals["requests"] else 0.0
    return totals


def any_trace_received_at(engine: Engine) -> datetime | None:
    """When the newest trace of the whole table was received (``None``: no trace at all)."""
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.max(traces.c.received_at))).scalar()


def volume_over_time(engine: Engine, window: Window, step_s: int) -> pd.DataFrame:
    """Requests, rows, errors and fallbacks per time bucket and model version."""
    bucket = epoch_bucket(engine, traces.c.received_at, step_s).label("bucket")
    statement = (
        sa.select(bucket, traces.c.model_name, traces.c.model_version,
                  count_if(is_request()).label("requests"), sa.func.count().label("rows"),
                  count_if(is_error()).label("errors"), count_if(traces.c.fallback.is_(True)).label("fallbacks"))
        .where(*window.where())
        .group_by(bucket, traces.c.model_name, traces.c.model_version)
        .order_by(bucket)
    )
    frame = frame_of(engine, statement)
    if not frame.empty:
        frame["time"] = as_time(frame["bucket"])
        frame["model"] = frame["model_name"] + ":" + frame["model_version"]
    return frame


def _approximate_percentiles(counts: np.ndarray) -> list[float]:
    """Percentiles from counts in ``LATENCY_EDGES_MS`` buckets, linear within a bucket."""
    total = counts.sum()
    cumulative = np.cumsum(counts)
    values = []
    for q in PERCENTILES:
        rank = q * total
        index = int(np.searchsorted(cumulative, rank, side="left"))
        index = min(index, len(counts) - 1)
        before = cumulative[index - 1] if index else 0
        low = LATENCY_EDGES_MS[index]
        high = LATENCY_EDGES_MS[index + 1] if index + 1 < len(LATENCY_EDGES_MS) else low
        inside = (rank - before) / counts[index] if counts[index] else 0.0
        values.append(float(low + inside * (high - low)))
    return values


def latency_percentiles(engine: Engine, window: Window, step_s: int | None = None) -> pd.DataFrame:
    """p50/p95/p99 of total and inference time (ms), per time bucket when ``step_s`` is given.

    Columns: ``bucket`` (epoch seconds, 0 without a step), ``measure``
    (``total`` or ``inference``), ``p50``, ``p95``, ``p99``, ``approximate``.
    """
    rows = []
    for measure, column in (("total", traces.c.total_ms), ("inference", traces.c.inference_ms)):
        bucket = epoch_bucket(engine, traces.c.received_at, step_s) if step_s else sa.literal_column("0")
        bucket = bucket.label("bucket")
        grouping = [bucket] if step_s else []
        conditions = [*window.where(), column.is_not(None)]
        if has_percentiles(engine):
            exact = [sa.func.percentile_cont(q).within_group(column).label(f"p{q}") for q in PERCENTILES]
            statement = sa.select(bucket, *exact).where(*conditions).group_by(*grouping)
            for record in frame_of(engine, statement).itertuples(index=False):
                if record[1] is not None:
                    rows.append((int(record[0]), measure, *map(float, record[1:]), False))
            continue
        cases = [(column < edge, index) for index, edge in enumerate(LATENCY_EDGES_MS[1:])]
        latency_bucket = sa.case(*cases, else_=len(LATENCY_EDGES_MS) - 1).label("latency_bucket")
        statement = (sa.select(bucket, latency_bucket, sa.func.count().label("rows"))
                     .where(*conditions).group_by(*grouping, latency_bucket))
        frame = frame_of(engine, statement)
        for time_bucket, group in frame.groupby("bucket", sort=True):
            counts = np.zeros(len(LATENCY_EDGES_MS))
            counts[group["latency_bucket"].astype(int).to_numpy()] = group["rows"].to_numpy()
            rows.append((int(time_bucket), measure, *_approximate_percentiles(counts), True))
    frame = pd.DataFrame(rows, columns=["bucket", "measure", "p50", "p95", "p99", "approximate"])
    if not frame.empty:
        frame["time"] = as_time(frame["bucket"])
    return frame
