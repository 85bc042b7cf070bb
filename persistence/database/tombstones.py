"""The tombstones of erased employees, as the journal replay reads them.

``employee_erasures`` holds one row per erasure (written by
:mod:`persistence.personal_data.erasure`): a replay asks :func:`without_erased`
before it inserts journaled traces, so an erased employee's traces received
up to their erasure never come back from a journal.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from persistence.database.engine import is_missing_table
from persistence.database.schema import employee_erasures
from persistence.database.traces import Trace

log = logging.getLogger(__name__)


def without_erased(bind: Engine | Connection, traces: Sequence[Trace]) -> list[Trace]:
    """The traces a replay may insert: all but those of an erased employee received up to their erasure.

    Called by the journal replay before it inserts journaled traces. One
    query, only when a trace carries an employee id. A database without the
    tombstone table (never migrated to 0004) has recorded no erasure.
    """
    ids = {trace.employee_id for trace in traces if trace.employee_id is not None}
    if not ids:
        return list(traces)
    query = (sa.select(employee_erasures.c.employee_id, sa.func.max(employee_erasures.c.erased_at))
             .where(employee_erasures.c.employee_id.in_(sorted(ids))).group_by(employee_erasures.c.employee_id))
    try:
        if isinstance(bind, Engine):
            with bind.connect() as connection:
                erased = dict(connection.execute(query).all())
        else:
            erased = dict(bind.execute(query).all())
    except sa.exc.DBAPIError as exc:
        if is_missing_table(exc):
            return list(traces)
        raise
    if not erased:
        return list(traces)
    kept = [trace for trace in traces
            if trace.employee_id not in erased or trace.received_at > erased[trace.employee_id]]
    if len(kept) < len(traces):
        # A count only: which employees were erased is not for the service's log.
        log.info("journal replay: %d journaled trace(s) of erased employees skipped", len(traces) - len(kept))
    return kept
