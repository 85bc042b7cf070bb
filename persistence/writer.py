"""The trace writer: group commits of prediction traces, and a local journal while the database is down.

One :class:`TraceWriter` per worker process, started in its event loop.
``await writer.record(traces)`` returns only once the traces are durable:
``"committed"`` in the database, or ``"journaled"`` (appended and fsynced to
this process's journal file) when the database is unreachable. Concurrent
calls are grouped: a single flusher task takes everything queued (up to
``max_rows``) and writes it in one transaction: on PostgreSQL with an
asyncio ``COPY`` in the event loop itself, elsewhere in a worker thread, so
the event loop keeps serving. Its :class:`~persistence.replay.JournalReplayer`
moves journaled traces into the database once it answers again, exactly once
(the request id is unique).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sqlalchemy.engine import URL, Engine

from persistence import metrics
from persistence.database import is_unreachable, make_engine
from persistence.journal import TraceJournal
from persistence.replay import JournalReplayer
from persistence.store import make_trace_store
from persistence.traces import Trace

log = logging.getLogger(__name__)

Outcome = Literal["committed", "journaled"]


class TraceWriteError(RuntimeError):
    """Traces were neither committed nor journaled: their request must not be answered as a success."""


@dataclass
class WriterStats:
    """What one writer did since it was created (for tests, benchmarks and logs)."""

    record_calls: int = 0
    transactions: int = 0  # group commits to the database (each holds one or more record() calls)
    committed: int = 0
    journaled: int = 0
    replayed: int = 0
    rejected: int = 0
    peak_queue_rows: int = 0


@dataclass
class _QueuedCall:
    traces: list[Trace]
    future: asyncio.Future[Outcome] = field(repr=False)


class TraceWriter:
    """Group-commit writer of prediction traces, with a local journal for database outages."""

    def __init__(self, database_url: str | URL | Engine | None = None, *, journal_dir: Path | None = None,
                 max_rows: int | None = None, queue_size: int | None = None,
                 replay_interval_s: float | None = None) -> None:
        """Prepare a writer for ``database_url``; every other knob defaults to ``settings``.

        The database must already be migrated (:func:`persistence.migrate.upgrade`).
        Nothing connects until :meth:`start`.
        """
        from settings import settings

        # An engine may be shared with the caller's reads (one connection pool per worker, not two):
        # then the caller owns it and disposes of it, else the writer does.
        self._owns_engine = not isinstance(database_url, Engine)
        self.engine = database_url if isinstance(database_url, Engine) else make_engine(
            database_url or settings.resolved_database_url)
        self.store = make_trace_store(self.engine)
        # PostgreSQL's store commits from the event loop; the others run in a worker thread.
        self._insert_async = getattr(self.store, "insert_async", None)
        self.journal = TraceJournal(journal_dir or settings.journal_dir)
        self.max_rows = max_rows or settings.writer_max_rows
        self.queue_size = queue_size or settings.writer_queue_size
        self.replay_interval_s = replay_interval_s or settings.replay_interval_s
        self.stats = WriterStats()
        self.replayer = JournalReplayer(self.store, self.journal, self.stats, chunk_rows=self.max_rows,
                                        interval_s=self.replay_interval_s, on_database_back=self._database_back)
        self._queue: deque[_QueuedCall] = deque()
        self._queued_rows = 0
        self._admitting = 0  # record() calls between their start and their place in the queue
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._replayer: asyncio.Task[None] | None = None
        # Set when the database failed: until then flushes go straight to the journal instead of
        # each paying a connection attempt. A successful replay pass clears it.
        self._database_down_until = 0.0

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._flusher is not None and not self._closing

    async def start(self) -> None:
        """Start the flusher and the journal replay (the first replay runs at once) in the running loop."""
        if self._flusher is not None:
            raise RuntimeError("the trace writer is already started")
        self._loop = asyncio.get_running_loop()
        self._space = asyncio.Condition()
        self._work = asyncio.Event()
        self._stopping = asyncio.Event()
        self._flusher = asyncio.create_task(self._flush_forever(), name="trace-writer-flusher")
        self._replayer = asyncio.create_task(self.replayer.run_forever(self._stopping), name="trace-writer-replay")

    async def record(self, traces: Sequence[Trace]) -> Outcome:
        """Store the traces durably; return ``"committed"`` or ``"journaled"`` once they are.

        Waits while ``queue_size`` traces are already waiting (back-pressure,
        nothing is dropped). Raises :class:`TraceWriteError` when the database
        refuses these traces (e.g. a duplicate request id) or when it is
        unreachable and the journal cannot be written either.
        """
        if not self.running:
            raise RuntimeError("the trace writer is not running: await start() first")
        batch = list(traces)
        if not batch:
            return "committed"
        assert self._loop is not None
        self.stats.record_calls += 1
        future: asyncio.Future[Outcome] = self._loop.create_future()
        self._admitting += 1
        try:
            async with self._space:
                # A batch larger than the whole queue waits for an empty queue rather than forever.
                await self._space.wait_for(
                    lambda: self._queued_rows == 0 or self._queued_rows + len(batch) <= self.queue_size)
                self._queue.append(_QueuedCall(batch, future))
                self._queued_rows += len(batch)
                self.stats.peak_queue_rows = max(self.stats.peak_queue_rows, self._queued_rows)
                metrics.QUEUE_DEPTH.inc(len(batch))
        finally:
            self._admitting -= 1
        self._work.set()
        return await future

    def record_from_thread(self, traces: Sequence[Trace]) -> Outcome:
        """:meth:`record` for synchronous code running in a thread other than the writer's event loop."""
        if self._loop is None:
            raise RuntimeError("the trace writer is not running: await start() first")
        return asyncio.run_coroutine_threadsafe(self.record(traces), self._loop).result()

    async def replay_once(self) -> int:
        """Replay the journals (this process's and dead processes') now; return the traces inserted.

        Returns 0 without touching the journals when the database is unreachable.
        """
        return await self.replayer.replay_once()

    async def stop(self) -> None:
        """Flush every queued trace, replay the journals if the database answers, release journal and pool.

        Journal files left behind (database still down) are replayed by
        another process, or by the next start.
        """
        if self._closing:
            return
        self._closing = True
        if self._flusher is not None:
            self._stopping.set()
            self._work.set()
            await self._flusher
            if self._replayer is not None:
                await self._replayer
            await self.replayer.replay_logging_failures()
        self.journal.close()
        if self._insert_async is not None:
            await self.store.aclose()
        if self._owns_engine:
            self.engine.dispose()

    # -- group commit -------------------------------------------------------------------------------

    async def _flush_forever(self) -> None:
        while True:
            await self._work.wait()
            self._work.clear()
            while self._queue:
                try:
                    await self._flush(self._take_group())
                except Exception:  # the flusher must outlive any failure
                    log.exception("trace flush failed unexpectedly")
            if self._closing and not self._queue and self._admitting == 0:
                return

    def _take_group(self) -> list[_QueuedCall]:
        calls = [self._queue.popleft()]
        rows = len(calls[0].traces)
        while self._queue and rows + len(self._queue[0].traces) <= self.max_rows:
            call = self._queue.popleft()
            calls.append(call)
            rows += len(call.traces)
        return calls

    async def _flush(self, calls: list[_QueuedCall]) -> None:
        rows = sum(len(call.traces) for call in calls)
        started = time.perf_counter()
        try:
            outcomes = await self._write_async(calls)
        except Exception as exc:  # _write reports failures as outcomes; this is a bug guard
            log.exception("trace flush crashed")
            outcomes = [TraceWriteError(f"trace flush crashed: {exc!r}")] * len(calls)
        finally:
            metrics.FLUSH_SECONDS.observe(time.perf_counter() - started)
            metrics.FLUSH_ROWS.observe(rows)
            async with self._space:
                self._queued_rows -= rows
                self._space.notify_all()
            metrics.QUEUE_DEPTH.dec(rows)
        for call, outcome in zip(calls, outcomes):
            if call.future.done():  # the caller was cancelled; its traces are stored all the same
                continue
            if isinstance(outcome, BaseException):
                call.future.set_exception(outcome)
            else:
                call.future.set_result(outcome)

    async def _write_async(self, calls: list[_QueuedCall]) -> list[Outcome | TraceWriteError]:
        """Commit the calls' traces in the event loop when the store can, else :meth:`_write` in a thread.

        Only the common case runs here: a commit, or the database found
        unreachable (then the group is journaled). A rejected group goes to
        :meth:`_write`, which tells the faulty call from the others.
        """
        insert_async = self._insert_async
        if insert_async is None or time.monotonic() < self._database_down_until:
            return await asyncio.to_thread(self._write, calls)
        traces = [trace for call in calls for trace in call.traces]
        try:
            await insert_async(traces)
        except Exception as exc:  # classified just below
            if not is_unreachable(exc):
                return await asyncio.to_thread(self._write, calls)
            self._mark_unreachable(exc)
            return await asyncio.to_thread(self._journal, calls, traces)
        self._count_committed(traces)
        return ["committed"] * len(calls)

    def _mark_unreachable(self, exc: BaseException) -> None:
        metrics.WRITE_FAILURES.labels("unreachable").inc()
        log.warning("trace database unreachable, journaling: %s", exc)
        self._database_down_until = time.monotonic() + self.replay_interval_s

    def _database_back(self) -> None:
        self._database_down_until = 0.0

    def _count_committed(self, traces: list[Trace]) -> None:
        self.stats.transactions += 1
        self.stats.committed += len(traces)
        metrics.COMMITTED.inc(len(traces))

    def _write(self, calls: list[_QueuedCall]) -> list[Outcome | TraceWriteError]:
        """Runs in a worker thread: commit the calls' traces in one transaction, or journal them."""
        traces = [trace for call in calls for trace in call.traces]
        if time.monotonic() >= self._database_down_until:
            try:
                self.store.insert(traces)
            except Exception as exc:  # classified just below
                if not is_unreachable(exc):
                    if len(calls) > 1:
                        # One caller's faulty trace must not fail the others of its group.
                        return [self._write([call])[0] for call in calls]
                    metrics.WRITE_FAILURES.labels("rejected").inc()
                    self.stats.rejected += len(traces)
                    log.error("the database rejected %d trace(s): %s", len(traces), exc)
                    return [TraceWriteError(f"the database rejected the trace: {exc}")]
                self._mark_unreachable(exc)
            else:
                self._count_committed(traces)
                return ["committed"] * len(calls)
        return self._journal(calls, traces)

    def _journal(self, calls: list[_QueuedCall], traces: list[Trace]) -> list[Outcome | TraceWriteError]:
        """Runs in a worker thread: append the calls' traces to the journal, fsynced."""
        try:
            self.journal.append(traces)
        except Exception as exc:
            if len(calls) > 1 and not isinstance(exc, OSError):
                # A trace that cannot be serialised (say, a numpy value in its inputs) fails its own call only.
                return [self._write([call])[0] for call in calls]
            metrics.WRITE_FAILURES.labels("journal").inc()
            log.error("trace database unreachable and journal not writable: %s", exc)
            return [TraceWriteError(f"trace database unreachable and journal not writable: {exc}")] * len(calls)
        self.stats.journaled += len(traces)
        metrics.JOURNALED.inc(len(traces))
        return ["journaled"] * len(calls)
