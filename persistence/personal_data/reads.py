"""The read log: who read traces, what they asked, how many rows they got, and when.

Every read of traces through the API (``GET /predictions``,
``GET /predictions/{request_id}``) is recorded in ``trace_reads`` before its
answer is sent; the dashboard records its audit views and exports the same
way (:func:`record_read`). A read logs identifiers only: the employee id or
request id asked, the period and page; never a trace's contents.

    python -m persistence reads --employee N    who read employee N's traces, and when
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from persistence.database.columns import utcnow
from persistence.database.schema import prediction_traces, trace_reads


def _json_ready(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def record_read(engine: Engine, key_id: str | None, route: str, parameters: dict[str, Any], rows: int,
                employee_id: int | None = None) -> None:
    """Record one read of traces: by ``key_id`` (None without keys), through ``route``, returning ``rows``.

    ``parameters`` are what the read asked (datetimes become ISO 8601); an
    ``employee_id`` or ``request_id`` among them is also kept in a column of
    its own, for :func:`reads_of_employee`. ``employee_id`` names the employee
    whose trace a read by request id returned.
    """
    asked = {name: _json_ready(value) for name, value in parameters.items()}
    with engine.begin() as connection:
        connection.execute(sa.insert(trace_reads).values(
            read_id=str(uuid.uuid4()), read_at=utcnow(), key_id=key_id, route=route,
            employee_id=asked.get("employee_id", employee_id), request_id=asked.get("request_id"),
            parameters=asked, rows=rows))


def reads_of_employee(engine: Engine, employee_id: int) -> list[dict[str, Any]]:
    """Every read that returned or may have returned employee ``employee_id``'s traces, oldest first.

    ``reader`` is the database role that recorded the read (PostgreSQL sets
    it; None on SQLite and before revision 0005). Each has ``how``:
    ``employee`` (asked by employee id, or a trace of theirs by request id),
    or ``listing`` (a listing with no employee filter that returned rows
    after their first trace was written: it may have shown it).
    """
    first_trace = (sa.select(sa.func.min(prediction_traces.c.received_at))
                   .where(prediction_traces.c.employee_id == employee_id).scalar_subquery())
    asked = trace_reads.c.employee_id == employee_id
    listing = sa.and_(trace_reads.c.employee_id.is_(None), trace_reads.c.request_id.is_(None),
                      trace_reads.c.rows > 0, trace_reads.c.read_at >= first_trace)
    query = sa.select(trace_reads).where(sa.or_(asked, listing)).order_by(trace_reads.c.read_at)
    with engine.connect() as connection:
        found = connection.execute(query).mappings().all()
    return [{"read_at": row["read_at"].isoformat(), "key_id": row["key_id"], "reader": row["reader"],
             "route": row["route"],
             "how": "employee" if row["employee_id"] == employee_id else "listing", "request_id": row["request_id"],
             "parameters": row["parameters"], "rows": row["rows"]} for row in found]
