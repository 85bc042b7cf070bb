"""Retention: deleting traces older than the retention period, in bounded batches, while the service writes.

``python -m persistence purge [--older-than-days N]`` deletes the traces
received before now minus N days (default: ``FUTURISYS_TRACE_RETENTION_DAYS``;
with neither, traces are kept and the command refuses: nothing to do). Each
batch is one short transaction: the ``batch_rows`` oldest request ids found on
the ``received_at`` index from where the last batch ended (so no batch walks
over the index entries of rows already deleted), deleted by primary key, then
a pause. The trace writer appends new traces, far from the deleted ones: row
locks never meet, and on SQLite the pause hands it the write lock.

Outcomes (``outcomes``) recorded before the same cutoff go with the traces, in
one statement after them: an outcome is kept as long as the predictions it
judges. A correction recorded later outlives the row it corrects.

Run it daily (cron, a Kubernetes CronJob). The trade-off of the period is in
the README: the EU AI Act asks deployers of high-risk systems to keep the
logs at least six months, GDPR to keep personal data no longer than needed.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from persistence.database.columns import utcnow
from persistence.database.schema import outcomes, prediction_traces

DEFAULT_BATCH_ROWS = 5_000
DEFAULT_PAUSE_S = 0.05
AI_ACT_MINIMUM_DAYS = 183
"""Six months: the EU AI Act (Art. 26(6)) minimum for the logs of a high-risk system."""


@dataclass
class Purge:
    """What one purge did."""

    cutoff: datetime
    deleted: int = 0
    batches: int = 0  # transactions that deleted rows
    outcomes: int = 0  # outcome rows recorded before the cutoff, deleted after the traces
    seconds: float = 0.0


def retention_cutoff(older_than_days: int | None, now: datetime | None = None) -> datetime | None:
    """The time before which traces are purged: ``older_than_days``, else the setting; None: keep everything."""
    if older_than_days is None:
        from settings import settings

        older_than_days = settings.trace_retention_days
    if older_than_days is None:
        return None
    return (now or utcnow()) - timedelta(days=older_than_days)


def purge_traces(engine: Engine, cutoff: datetime, batch_rows: int = DEFAULT_BATCH_ROWS,
                 pause_s: float = DEFAULT_PAUSE_S, on_batch: Callable[[Purge], None] | None = None) -> Purge:
    """Delete every trace received before ``cutoff``, ``batch_rows`` per transaction, pausing ``pause_s`` between.

    ``on_batch`` is called after each committed batch (progress). A trace
    received before ``cutoff`` that arrives during the purge (a late journal
    replay) is left for the next purge when it lands behind the batches.
    """
    purge = Purge(cutoff)
    started = time.perf_counter()
    received_at = prediction_traces.c.received_at
    floor: datetime | None = None
    while True:
        window = received_at < cutoff if floor is None else sa.and_(received_at < cutoff, received_at >= floor)
        oldest = sa.select(prediction_traces.c.request_id).where(window).order_by(received_at).limit(batch_rows)
        delete = (sa.delete(prediction_traces).where(prediction_traces.c.request_id.in_(oldest))
                  .returning(received_at))
        with engine.begin() as connection:
            deleted = [row[0] for row in connection.execute(delete)]
        if not deleted:
            break
        purge.deleted += len(deleted)
        purge.batches += 1
        floor = max(deleted)  # ties at this instant not deleted yet are still >= floor
        if on_batch is not None:
            on_batch(purge)
        if len(deleted) < batch_rows:
            break
        time.sleep(pause_s)
    expired = outcomes.c.recorded_at < cutoff
    with engine.connect() as connection:  # looked for first: no write transaction when there is nothing to delete
        any_expired = connection.execute(sa.select(outcomes.c.outcome_id).where(expired).limit(1)).first()
    if any_expired is not None:
        with engine.begin() as connection:
            purge.outcomes = connection.execute(sa.delete(outcomes).where(expired)).rowcount
    purge.seconds = time.perf_counter() - started
    return purge
