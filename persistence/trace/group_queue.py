"""The trace writer's queue: ``record()`` calls wait here for their group commit, under back-pressure.

A call is admitted while its traces fit in ``queue_size`` (a batch larger than
the whole queue waits for an empty queue rather than forever); nothing is
dropped. The writer's flusher takes the calls in order, in groups of up to
``max_rows`` traces, one group at a time, and resolves each call's future
with its outcome.
"""
from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from persistence.database.traces import Trace
from persistence.trace import metrics
from persistence.trace.stats import Outcome, TraceWriteError, WriterStats


@dataclass
class QueuedCall:
    """One ``record()`` call: its traces, and the future its caller awaits."""

    traces: list[Trace]
    future: asyncio.Future[Outcome] = field(repr=False)


class GroupQueue:
    """The calls waiting for a group commit, and the group being written."""

    def __init__(self, max_rows: int, queue_size: int, stats: WriterStats) -> None:
        """A queue of at most ``queue_size`` traces, taken in groups of at most ``max_rows``."""
        self.max_rows = max_rows
        self.queue_size = queue_size
        self.stats = stats
        self.calls: deque[QueuedCall] = deque()
        self.rows = 0
        self.admitting = 0  # record() calls between their start and their place in the queue
        self.in_flight: list[QueuedCall] = []  # the group the flusher is writing

    def open(self) -> None:
        """Create the queue's asyncio primitives, in the running event loop."""
        self._space = asyncio.Condition()
        self.work = asyncio.Event()  # set when calls wait for the flusher

    async def admit(self, batch: list[Trace], future: asyncio.Future[Outcome]) -> None:
        """Queue a call once its traces fit (back-pressure), then wake the flusher."""
        self.admitting += 1
        try:
            async with self._space:
                # A batch larger than the whole queue waits for an empty queue rather than forever.
                await self._space.wait_for(lambda: self.rows == 0 or self.rows + len(batch) <= self.queue_size)
                self.calls.append(QueuedCall(batch, future))
                self.rows += len(batch)
                self.stats.peak_queue_rows = max(self.stats.peak_queue_rows, self.rows)
                metrics.QUEUE_DEPTH.inc(len(batch))
        finally:
            self.admitting -= 1
        self.work.set()

    def take_group(self) -> list[QueuedCall]:
        """The next group: the oldest call, then the following ones while they fit in ``max_rows``."""
        calls = [self.calls.popleft()]
        rows = len(calls[0].traces)
        while self.calls and rows + len(self.calls[0].traces) <= self.max_rows:
            call = self.calls.popleft()
            calls.append(call)
            rows += len(call.traces)
        self.in_flight = calls
        return calls

    async def release(self, rows: int) -> None:
        """Give back the room of a group written (committed, journaled or failed): waiting calls may enter."""
        async with self._space:
            self.rows -= rows
            self._space.notify_all()
        metrics.QUEUE_DEPTH.dec(rows)

    def drain(self) -> list[QueuedCall]:
        """Take every waiting call out of the queue."""
        calls = list(self.calls)
        self.calls.clear()
        return calls


def resolve(calls: list[QueuedCall], outcomes: list[Outcome | TraceWriteError]) -> None:
    """Answer each call's caller with its outcome (a failure as the call's exception)."""
    for call, outcome in zip(calls, outcomes):
        if call.future.done():  # the caller was cancelled; its traces are stored all the same
            continue
        if isinstance(outcome, BaseException):
            call.future.set_exception(outcome)
        else:
            call.future.set_result(outcome)


def traces_of(calls: list[QueuedCall]) -> list[Trace]:
    """Every trace of ``calls``, in order."""
    return [trace for call in calls for trace in call.traces]
