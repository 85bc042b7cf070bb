"""Reads of the prediction trace: one request, or an employee's requests over a period.

Answers are JSON-ready dicts (timestamps as ISO 8601 strings in UTC), the
shape ``GET /predictions/{request_id}`` and ``GET /predictions`` return.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from persistence.database.schema import prediction_traces as traces
from persistence.database.traces import as_record

MAX_PAGE_SIZE = 500
"""The largest ``limit`` of :func:`list_traces`."""


def get_trace(engine: Engine, request_id: str) -> dict[str, Any] | None:
    """The stored trace of one request (None when the request id is unknown)."""
    query = sa.select(traces).where(traces.c.request_id == request_id)
    with engine.connect() as connection:
        row = connection.execute(query).mappings().first()
    return as_record(row) if row is not None else None


def _aware(value: datetime | None) -> datetime | None:
    # A naive bound is read as UTC, the zone every trace timestamp is stored in.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def list_traces(engine: Engine, employee_id: int | None = None, start: datetime | None = None,
                end: datetime | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """One page of traces, oldest first: ``{"items": [...], "total": n, "limit": ..., "offset": ...}``.

    Filters: ``employee_id`` (the tag or stored id a request named),
    ``start`` (inclusive) and ``end`` (exclusive) on ``received_at``; naive
    datetimes are taken as UTC. ``total`` counts every matching trace, not
    just the page. Raises ValueError for a limit outside 1..MAX_PAGE_SIZE, a
    negative offset, or an end before start.
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}, not {limit}")
    if offset < 0:
        raise ValueError(f"offset must be 0 or more, not {offset}")
    start, end = _aware(start), _aware(end)
    if start is not None and end is not None and end < start:
        raise ValueError(f"the period ends ({end.isoformat()}) before it starts ({start.isoformat()})")
    conditions = []
    if employee_id is not None:
        conditions.append(traces.c.employee_id == employee_id)
    if start is not None:
        conditions.append(traces.c.received_at >= start)
    if end is not None:
        conditions.append(traces.c.received_at < end)
    page = (sa.select(traces).where(*conditions)
            .order_by(traces.c.received_at, traces.c.batch_index, traces.c.request_id)
            .limit(limit).offset(offset))
    count = sa.select(sa.func.count()).select_from(traces).where(*conditions)
    with engine.connect() as connection:
        total = connection.execute(count).scalar_one()
        items = [as_record(row) for row in connection.execute(page).mappings()]
    return {"items": items, "total": total, "limit": limit, "offset": offset}
