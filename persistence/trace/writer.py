"""The trace writer: group commits of prediction traces, and a local journal while the database is away.

One :class:`TraceWriter` per worker process, started in its event loop.
``await writer.record(traces)`` returns only once the traces are durable:
``"committed"`` in the database, or ``"journaled"`` (appended and fsynced to
this process's journal file) when the database is unavailable. Concurrent
calls are grouped: a single flusher task takes everything queued (up to
``max_rows``) and writes it in one transaction: on PostgreSQL with an
asyncio ``COPY`` in the event loop itself, elsewhere in a worker thread, so
the event loop keeps serving.

Time is bounded: a group commit not done within ``commit_deadline_ms`` is
journaled and answered, and the writer enters *journal mode* until its
:class:`~persistence.trace.replay.JournalReplayer` (which probes the database
every ``replay_interval_s``) has moved the journal into the database again:
that policy is :class:`~persistence.trace.commit_policy.CommitPolicy`'s. The
calls wait for their group in a :class:`~persistence.trace.group_queue.GroupQueue`;
this module runs the flusher over them, supervises it, and starts and stops
the whole.

The journal is bounded (``settings.journal_max_bytes``): past it, or on a
full disk, a call that must be journaled fails (its request answers 503,
nothing is answered untraced) and the writer reports itself not accepting
traces (``/readyz`` unready) until an append goes through again or the
database takes writes again.

The flusher task is supervised: a task that dies is restarted (and
counted), the group it held is journaled; past ``max_restarts`` a minute the
writer reports itself unhealthy and refuses traces instead of hanging them.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import URL, Engine

from persistence.database.engine import database_fingerprint, database_identity, make_engine
from persistence.database.traces import Trace
from persistence.trace import metrics
from persistence.trace.commit_policy import CommitPolicy
from persistence.trace.group_queue import GroupQueue, QueuedCall, resolve, traces_of
from persistence.trace.journal import TraceJournal, orphan_journals
from persistence.trace.journal_format import quarantine_bytes
from persistence.trace.replay import JournalReplayer
from persistence.trace.stats import Outcome, TraceWriteError, WriterHealth, WriterState, WriterStats
from persistence.trace.store import make_trace_store

log = logging.getLogger(__name__)

RESTART_WINDOW_S = 60.0


class TraceWriter:
    """Group-commit writer of prediction traces, with a local journal for a database that is away."""

    def __init__(self, database_url: str | URL | Engine | None = None, *, journal_dir: Path | None = None,
                 max_rows: int | None = None, queue_size: int | None = None,
                 replay_interval_s: float | None = None, commit_deadline_ms: int | None = None,
                 migrate: bool = False, max_restarts: int | None = None,
                 journal_max_bytes: int | None = None) -> None:
        """Prepare a writer for ``database_url``; every other knob defaults to ``settings``.

        With ``migrate``, the writer brings the schema to head itself, at
        start and whenever the database comes back (a worker then starts,
        serves and journals while the database is down); else the database
        must already be migrated (:func:`persistence.database.migrate.upgrade`).
        Nothing connects until :meth:`start`.
        """
        from settings import settings

        # An engine may be shared with the caller's reads (one connection pool per worker, not two):
        # then the caller owns it and disposes of it, else the writer does.
        self._owns_engine = not isinstance(database_url, Engine)
        self.engine = database_url if isinstance(database_url, Engine) else make_engine(
            database_url or settings.resolved_database_url)
        self.commit_deadline_s = (commit_deadline_ms or settings.commit_deadline_ms) / 1000
        self.store = make_trace_store(self.engine, commit_deadline_ms or settings.commit_deadline_ms)
        # PostgreSQL's store commits from the event loop on an async connection of its own, closed at stop().
        self._insert_async = getattr(self.store, "insert_async", None)
        # The journal directory is recorded for this database: only this database ever replays it.
        self.journal = TraceJournal(
            journal_dir or settings.instance_journal_dir, fingerprint=database_fingerprint(self.engine.url),
            database=database_identity(self.engine.url), instance=settings.resolved_instance_id,
            max_bytes=journal_max_bytes or settings.journal_max_bytes,
            quarantine_max_bytes=settings.quarantine_max_bytes)
        self.max_rows = max_rows or settings.writer_max_rows
        self.queue_size = queue_size or settings.writer_queue_size
        self.replay_interval_s = replay_interval_s or settings.replay_interval_s
        self.max_restarts = settings.writer_max_restarts if max_restarts is None else max_restarts
        self.migrate = migrate
        self.stats = WriterStats()
        self.policy = CommitPolicy(self.store, self.journal, self.stats, engine=self.engine,
                                   deadline_s=self.commit_deadline_s, migrate=migrate)
        self.queue = GroupQueue(self.max_rows, self.queue_size, self.stats)
        self.replayer = JournalReplayer(
            self.store, self.journal, self.stats, chunk_rows=self.max_rows, interval_s=self.replay_interval_s,
            on_database_back=self.policy.database_back, needs_probe=lambda: not self.policy.available,
            prepare=self.policy.migrate_schema if migrate else None, on_missing_table=self.policy.schema_lost)
        self._closing = False
        self._failed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._replayer: asyncio.Task[None] | None = None
        self._restart_times: deque[float] = deque()
        # How long stop() waits for a replay (pass in progress, then the final one) before leaving it.
        self._stop_grace_s = max(5.0, 2 * self.commit_deadline_s)

    @property
    def last_commit_at(self) -> datetime | None:
        """When this writer's last group commit went through (None: none yet)."""
        return self.policy.last_commit_at

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._flusher is not None and not self._closing

    @property
    def healthy(self) -> bool:
        """True while the writer runs and its flusher task is alive (traces are committed or journaled)."""
        return self.running and not self._failed and not self._flusher.done()

    @property
    def accepting(self) -> bool:
        """True while :meth:`healthy` and the journal has room (a full journal refuses what it would take)."""
        return self.healthy and not self.policy.journal_full

    async def start(self) -> None:
        """Start the flusher and the journal replay (the first replay, a probe, runs at once) in the running loop.

        A migrating writer waits for that first probe up to the commit
        deadline: with the database up, the worker starts migrated and
        committing; without it, it starts anyway, journaling.
        """
        if self._flusher is not None:
            raise RuntimeError("the trace writer is already started")
        self._loop = asyncio.get_running_loop()
        self.queue.open()
        self._stopping = asyncio.Event()
        self._spawn_flusher()
        self._spawn_replayer()
        if self.migrate:
            first = asyncio.ensure_future(self.replayer.first_pass.wait())
            done, _ = await asyncio.wait({first}, timeout=self.commit_deadline_s)
            if not done:
                first.cancel()
                log.warning("trace database not ready at start: serving, traces journaled until it is")
        metrics.JOURNAL_MODE.set(0 if self.policy.available else 1)
        # An alarm from the start: quarantine files left by earlier runs count too.
        metrics.QUARANTINE_BYTES.set(quarantine_bytes(self.journal.directory))

    def _spawn_flusher(self) -> None:
        self._flusher = asyncio.create_task(self._flush_forever(), name="trace-writer-flusher")
        self._flusher.add_done_callback(self._flusher_ended)

    def _spawn_replayer(self) -> None:
        self._replayer = asyncio.create_task(self.replayer.run_forever(self._stopping), name="trace-writer-replay")
        self._replayer.add_done_callback(self._replayer_ended)

    async def record(self, traces: Sequence[Trace]) -> Outcome:
        """Store the traces durably; return ``"committed"`` or ``"journaled"`` once they are.

        Waits while ``queue_size`` traces are already waiting (back-pressure,
        nothing is dropped). Raises :class:`TraceWriteError` when the database
        refuses these traces for their content (e.g. a duplicate request id),
        when the database is unavailable and the journal cannot be written
        either, or when the writer has failed.
        """
        if not self.running:
            raise RuntimeError("the trace writer is not running: await start() first")
        if self._failed:
            raise TraceWriteError("the trace writer has failed (its task kept dying): see the worker's log")
        batch = list(traces)
        if not batch:
            return "committed"
        assert self._loop is not None
        self.stats.record_calls += 1
        future: asyncio.Future[Outcome] = self._loop.create_future()
        await self.queue.admit(batch, future)
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

    def health(self) -> WriterHealth:
        """The writer's state now: mode, journal backlog, quarantine, last commit, database reachable."""
        if self._closing or self._flusher is None:
            state: WriterState = "stopped"
        elif not self.healthy:
            state = "failed"
        else:
            state = "committing" if self.policy.available else "journaling"
        return WriterHealth(
            state=state, healthy=self.healthy,
            database_reachable=self.policy.available or self.replayer.database_answers,
            journal_backlog=self.journal.backlog_rows, journal_bytes=self.journal.backlog_bytes,
            journal_full=self.policy.journal_full, orphaned_journals=len(orphan_journals(self.journal)),
            replay_failing=self.replayer.failing, replay_failures=self.replayer.failed_passes,
            replay_error=self.replayer.last_failure,
            quarantined=self.journal.quarantine_count.rows(),
            quarantine_bytes=quarantine_bytes(self.journal.directory), last_commit_at=self.policy.last_commit_at,
            restarts=self.stats.restarts)

    async def stop(self) -> None:
        """Flush every queued trace, replay the journals if the database takes writes, release journal and pool.

        Bounded: each group waits at most the commit deadline (then the rest
        go to the journal), the final replay only runs when the database was
        taking writes, a replay is waited for a few seconds at most, and a
        commit still running past its deadline is given one more deadline.
        Journal files left behind are replayed by another process, or by the
        next start.
        """
        if self._closing:
            return
        self._closing = True
        replaying = False
        if self._flusher is not None:
            self._stopping.set()
            self.queue.work.set()
            if not self._flusher.done():
                await asyncio.wait({self._flusher})
            if self.queue.calls:  # the flusher died while stopping: what it left is journaled here
                calls = self.queue.drain()
                resolve(calls, await asyncio.to_thread(self.policy.journal_calls, calls, traces_of(calls)))
            replaying = self._replayer is not None and not self._replayer.done()
            if replaying:
                done, _ = await asyncio.wait({self._replayer}, timeout=self._stop_grace_s)
                replaying = not done
            if self.policy.available and not replaying:
                final = asyncio.ensure_future(self.replayer.replay_logging_failures())
                done, _ = await asyncio.wait({final}, timeout=self._stop_grace_s)
                replaying = not done
        await self.policy.wait_late()
        if replaying:
            # A replay stuck on a database gone silent still uses this process's journals: they stay locked
            # (the locks die with the process) and are replayed by another process or the next start.
            log.warning("stopping with a journal replay still waiting for the database")
        else:
            self.journal.close()
        if self._insert_async is not None:
            try:
                await asyncio.wait_for(self.store.aclose(), timeout=self.commit_deadline_s)
            except Exception as exc:  # closing a connection to a database gone silent: nothing more to save
                log.warning("closing the trace writer's connection: %r", exc)
        if self._owns_engine:
            self.engine.dispose()
        self.replayer.release_alarm()
        metrics.JOURNAL_MODE.set(0)

    # -- supervision --------------------------------------------------------------------------------

    def _flusher_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            reason = "cancelled"
        elif task.exception() is not None:
            reason = repr(task.exception())
        elif self._closing:
            return  # a normal end: stop() asked for it
        else:
            reason = "returned"
        rescued, self.queue.in_flight = self.queue.in_flight, []
        if self._closing and not rescued and not self.queue.calls:
            return
        self.stats.restarts += 1
        metrics.WRITER_RESTARTS.labels("flusher").inc()
        now = time.monotonic()
        self._restart_times.append(now)
        while self._restart_times and now - self._restart_times[0] > RESTART_WINDOW_S:
            self._restart_times.popleft()
        log.error("trace writer task died (%s); %d trace call(s) it held go to the journal", reason, len(rescued))
        if len(self._restart_times) > self.max_restarts and not self._closing:
            self._failed = True
            log.critical("trace writer task died %d times within %.0f s: worker unhealthy",
                         len(self._restart_times), RESTART_WINDOW_S)
            failing = [*rescued, *self.queue.drain()]
            for call in failing:
                if not call.future.done():
                    call.future.set_exception(TraceWriteError("the trace writer has failed"))
            return
        # The dead task's group may have been committed too: the journal copy is then skipped by the replay.
        if rescued:
            asyncio.ensure_future(self._journal_rescued(rescued))
        if not self._closing:
            self._spawn_flusher()
            self.queue.work.set()

    async def _journal_rescued(self, calls: list[QueuedCall]) -> None:
        try:
            outcomes = await asyncio.to_thread(self.policy.journal_calls, calls, traces_of(calls))
        except Exception as exc:  # _journal reports failures as outcomes; this is a bug guard
            outcomes = [TraceWriteError(f"journaling rescued traces failed: {exc!r}")] * len(calls)
        resolve(calls, outcomes)

    def _replayer_ended(self, task: asyncio.Task[None]) -> None:
        if self._closing or self._stopping.is_set():
            return
        reason = "cancelled" if task.cancelled() else repr(task.exception())
        log.error("journal replay task died (%s); restarting it", reason)
        self.stats.restarts += 1
        metrics.WRITER_RESTARTS.labels("replay").inc()
        self._spawn_replayer()

    # -- group commit -------------------------------------------------------------------------------

    async def _flush_forever(self) -> None:
        queue = self.queue
        while True:
            await queue.work.wait()
            queue.work.clear()
            while queue.calls:
                try:
                    await self._flush(queue.take_group())
                except Exception:  # the flusher must outlive any failure
                    log.exception("trace flush failed unexpectedly")
            if self._closing and not queue.calls and queue.admitting == 0:
                return

    async def _flush(self, calls: list[QueuedCall]) -> None:
        rows = sum(len(call.traces) for call in calls)
        started = time.perf_counter()
        try:
            outcomes = await self.policy.store_group(calls)
        except Exception as exc:  # store_group reports failures as outcomes; this is a bug guard
            log.exception("trace flush crashed")
            outcomes = [TraceWriteError(f"trace flush crashed: {exc!r}")] * len(calls)
        finally:
            metrics.FLUSH_SECONDS.observe(time.perf_counter() - started)
            metrics.FLUSH_ROWS.observe(rows)
            await self.queue.release(rows)
        self.queue.in_flight = []
        resolve(calls, outcomes)
