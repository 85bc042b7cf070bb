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
journaled and answered, and the writer enters *journal mode*: every group
goes to the journal at once, without touching the database, until its
:class:`~persistence.replay.JournalReplayer` (which probes the database
every ``replay_interval_s``) has moved the journal into the database again.
A commit that lands after its deadline is harmless: the replay inserts
only request ids not stored yet. A database that refuses every write
(read-only, no privilege, no table...) is unavailable, not a reason to
reject a trace (:func:`persistence.database.classify_failure`).

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
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from sqlalchemy.engine import URL, Engine

from persistence import metrics
from persistence.columns import utcnow
from persistence.database import (classify_failure, database_fingerprint, database_identity, describe_failure,
                                  is_missing_table, make_engine)
from persistence.journal import JournalFull, TraceJournal, orphan_journals, quarantine_bytes, quarantined_rows
from persistence.replay import JournalReplayer
from persistence.store import make_trace_store
from persistence.traces import Trace

log = logging.getLogger(__name__)

Outcome = Literal["committed", "journaled"]
WriterState = Literal["committing", "journaling", "failed", "stopped"]
RESTART_WINDOW_S = 60.0


class TraceWriteError(RuntimeError):
    """Traces were neither committed nor journaled: their request must not be answered as a success."""


class CommitDeadlineMissed(TimeoutError):
    """A group commit did not finish within the commit deadline (the database is slow or hanging)."""


@dataclass
class WriterStats:
    """What one writer did since it was created (for tests, benchmarks and logs)."""

    record_calls: int = 0
    transactions: int = 0  # group commits to the database (each holds one or more record() calls)
    committed: int = 0
    journaled: int = 0
    replayed: int = 0
    rejected: int = 0  # traces refused for their own content (live: the call failed; replay: quarantined)
    deadline_misses: int = 0
    late_committed: int = 0  # traces of a group that missed its deadline (so journaled) and landed after all
    restarts: int = 0
    peak_queue_rows: int = 0


@dataclass(frozen=True)
class WriterHealth:
    """The trace writer's state, as the health detail shows it."""

    state: WriterState
    healthy: bool  # the flusher runs: traces are committed or journaled
    database_reachable: bool
    journal_backlog: int  # this process's journaled traces not yet replayed
    journal_bytes: int  # ... their size, bounded by journal_max_bytes
    journal_full: bool  # the last append was refused (cap or full disk): requests needing the journal get 503
    orphaned_journals: int  # journal files of processes that are gone, waiting for a replay
    quarantined: int  # traces set aside in quarantine files (an alarm: see `python -m persistence`)
    quarantine_bytes: int
    last_commit_at: datetime | None
    restarts: int


@dataclass
class _QueuedCall:
    traces: list[Trace]
    future: asyncio.Future[Outcome] = field(repr=False)


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
        must already be migrated (:func:`persistence.migrate.upgrade`).
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
        # PostgreSQL's store commits from the event loop; the others run in a worker thread.
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
        self.replayer = JournalReplayer(
            self.store, self.journal, self.stats, chunk_rows=self.max_rows, interval_s=self.replay_interval_s,
            on_database_back=self._database_back, needs_probe=lambda: not self._available,
            prepare=self._migrate if migrate else None, on_missing_table=self._schema_lost)
        self._queue: deque[_QueuedCall] = deque()
        self._queued_rows = 0
        self._admitting = 0  # record() calls between their start and their place in the queue
        self._closing = False
        self._failed = False
        self._journal_full = False  # the last append was refused for want of room
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._replayer: asyncio.Task[None] | None = None
        self._in_flight: list[_QueuedCall] = []  # the group the flusher is writing
        self._restart_times: deque[float] = deque()
        # False in journal mode: flushes go straight to the journal instead of each paying a failed or
        # hanging database call; a replay that went through sets it back. A migrating writer starts so,
        # until its first probe has migrated.
        self._available = not migrate
        self._schema_ready = not migrate
        self._late: asyncio.Future[None] | None = None  # a commit past its deadline, still running
        self.last_commit_at: datetime | None = None
        # How long stop() waits for a replay (pass in progress, then the final one) before leaving it.
        self._stop_grace_s = max(5.0, 2 * self.commit_deadline_s)

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
        return self.healthy and not self._journal_full

    async def start(self) -> None:
        """Start the flusher and the journal replay (the first replay, a probe, runs at once) in the running loop.

        A migrating writer waits for that first probe up to the commit
        deadline: with the database up, the worker starts migrated and
        committing; without it, it starts anyway, journaling.
        """
        if self._flusher is not None:
            raise RuntimeError("the trace writer is already started")
        self._loop = asyncio.get_running_loop()
        self._space = asyncio.Condition()
        self._work = asyncio.Event()
        self._stopping = asyncio.Event()
        self._spawn_flusher()
        self._spawn_replayer()
        if self.migrate:
            first = asyncio.ensure_future(self.replayer.first_pass.wait())
            done, _ = await asyncio.wait({first}, timeout=self.commit_deadline_s)
            if not done:
                first.cancel()
                log.warning("trace database not ready at start: serving, traces journaled until it is")
        metrics.JOURNAL_MODE.set(0 if self._available else 1)
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

    def health(self) -> WriterHealth:
        """The writer's state now: mode, journal backlog, quarantine, last commit, database reachable."""
        if self._closing or self._flusher is None:
            state: WriterState = "stopped"
        elif not self.healthy:
            state = "failed"
        else:
            state = "committing" if self._available else "journaling"
        return WriterHealth(
            state=state, healthy=self.healthy, database_reachable=self._available or self.replayer.database_answers,
            journal_backlog=self.journal.backlog_rows, journal_bytes=self.journal.backlog_bytes,
            journal_full=self._journal_full, orphaned_journals=len(orphan_journals(self.journal)),
            quarantined=quarantined_rows(self.journal.directory),
            quarantine_bytes=quarantine_bytes(self.journal.directory), last_commit_at=self.last_commit_at,
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
            self._work.set()
            if not self._flusher.done():
                await asyncio.wait({self._flusher})
            if self._queue:  # the flusher died while stopping: what it left is journaled here
                calls = list(self._queue)
                self._queue.clear()
                self._resolve(calls, await asyncio.to_thread(self._journal, calls, _traces_of(calls)))
            replaying = self._replayer is not None and not self._replayer.done()
            if replaying:
                done, _ = await asyncio.wait({self._replayer}, timeout=self._stop_grace_s)
                replaying = not done
            if self._available and not replaying:
                final = asyncio.ensure_future(self.replayer.replay_logging_failures())
                done, _ = await asyncio.wait({final}, timeout=self._stop_grace_s)
                replaying = not done
        if self._late is not None and not self._late.done():
            await asyncio.wait({self._late}, timeout=self.commit_deadline_s)
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
        rescued, self._in_flight = self._in_flight, []
        if self._closing and not rescued and not self._queue:
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
            failing = [*rescued, *self._queue]
            self._queue.clear()
            for call in failing:
                if not call.future.done():
                    call.future.set_exception(TraceWriteError("the trace writer has failed"))
            return
        # The dead task's group may have been committed too: the journal copy is then skipped by the replay.
        if rescued:
            asyncio.ensure_future(self._journal_rescued(rescued))
        if not self._closing:
            self._spawn_flusher()
            self._work.set()

    async def _journal_rescued(self, calls: list[_QueuedCall]) -> None:
        try:
            outcomes = await asyncio.to_thread(self._journal, calls, _traces_of(calls))
        except Exception as exc:  # _journal reports failures as outcomes; this is a bug guard
            outcomes = [TraceWriteError(f"journaling rescued traces failed: {exc!r}")] * len(calls)
        self._resolve(calls, outcomes)

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
        self._in_flight = calls
        return calls

    async def _flush(self, calls: list[_QueuedCall]) -> None:
        rows = sum(len(call.traces) for call in calls)
        started = time.perf_counter()
        try:
            outcomes = await self._store(calls)
        except Exception as exc:  # _store reports failures as outcomes; this is a bug guard
            log.exception("trace flush crashed")
            outcomes = [TraceWriteError(f"trace flush crashed: {exc!r}")] * len(calls)
        finally:
            metrics.FLUSH_SECONDS.observe(time.perf_counter() - started)
            metrics.FLUSH_ROWS.observe(rows)
            async with self._space:
                self._queued_rows -= rows
                self._space.notify_all()
            metrics.QUEUE_DEPTH.dec(rows)
        self._in_flight = []
        self._resolve(calls, outcomes)

    @staticmethod
    def _resolve(calls: list[_QueuedCall], outcomes: list[Outcome | TraceWriteError]) -> None:
        for call, outcome in zip(calls, outcomes):
            if call.future.done():  # the caller was cancelled; its traces are stored all the same
                continue
            if isinstance(outcome, BaseException):
                call.future.set_exception(outcome)
            else:
                call.future.set_result(outcome)

    async def _store(self, calls: list[_QueuedCall]) -> list[Outcome | TraceWriteError]:
        """Commit the calls' traces within the deadline, or journal them; fail only a call the database rejects."""
        traces = _traces_of(calls)
        if self._available and (self._late is None or self._late.done()):
            try:
                await self._commit(traces)
            except Exception as exc:  # classified just below
                if classify_failure(exc) == "rejected":
                    if len(calls) > 1:
                        # One caller's faulty trace must not fail the others of its group.
                        return [(await self._store([call]))[0] for call in calls]
                    metrics.WRITE_FAILURES.labels("rejected").inc()
                    self.stats.rejected += len(traces)
                    # By request id and kind of refusal only: the database's message quotes the row.
                    log.error("the database rejected trace(s) %s for their content: %s",
                              ", ".join(t.request_id for t in traces), describe_failure(exc))
                    return [TraceWriteError(f"the database rejected the trace: {describe_failure(exc)}")]
                self._enter_journal_mode(exc)
            else:
                self._count_committed(traces)
                return ["committed"] * len(calls)
        return await asyncio.to_thread(self._journal, calls, traces)

    async def _commit(self, traces: list[Trace]) -> None:
        """One group commit, given up (not cancelled) at the deadline: raises :class:`CommitDeadlineMissed`."""
        if self._insert_async is not None:
            attempt: asyncio.Future[None] = asyncio.ensure_future(self._insert_async(traces))
        else:
            attempt = asyncio.ensure_future(asyncio.to_thread(self.store.insert, traces))
        try:
            done, _ = await asyncio.wait({attempt}, timeout=self.commit_deadline_s)
        except asyncio.CancelledError:
            self._abandon(attempt, len(traces))
            raise
        if not done:
            # Not cancelled: interrupting a COPY midway leaves its connection unusable, and the server ends it
            # soon anyway (statement_timeout). Until it ends, the database is not tried again.
            self._abandon(attempt, len(traces))
            self.stats.deadline_misses += 1
            raise CommitDeadlineMissed(f"group commit of {len(traces)} trace(s) not done within "
                                       f"{self.commit_deadline_s * 1000:.0f} ms")
        attempt.result()

    def _abandon(self, attempt: asyncio.Future[None], rows: int) -> None:
        self._late = attempt

        def landed(done: asyncio.Future[None]) -> None:
            if self._late is done:
                self._late = None
            if done.cancelled():
                return
            if done.exception() is None:
                # Journaled as well: the replay finds these request ids stored and skips them.
                self.stats.late_committed += rows
                metrics.LATE_COMMITS.inc(rows)
                log.warning("a group commit of %d trace(s) landed after the writer gave up on it (they were "
                            "journaled too)", rows)
        attempt.add_done_callback(landed)

    def _enter_journal_mode(self, exc: BaseException) -> None:
        reason = "deadline" if isinstance(exc, CommitDeadlineMissed) else "unavailable"
        metrics.WRITE_FAILURES.labels(reason).inc()
        if is_missing_table(exc):
            self._schema_lost()
        if self._available:
            log.warning("trace database unavailable (%s), journaling until a replay goes through: %s", reason,
                        describe_failure(exc))
        self._available = False
        metrics.JOURNAL_MODE.set(1)

    def _database_back(self) -> None:
        if not self._available:
            log.info("trace database takes writes again: committing")
        self._available = True
        self._journal_full = False
        metrics.JOURNAL_MODE.set(0)

    def _schema_lost(self) -> None:
        """The table is gone (a database restored empty, say): a migrating writer migrates again first."""
        self._schema_ready = not self.migrate

    def _migrate(self) -> None:
        """Runs in the replay thread before a replay: bring the schema to head once, and after a lost table."""
        if self._schema_ready:
            return
        from persistence.migrate import upgrade

        upgrade(self.engine.url, lock_dir=self.journal.directory.parent)
        self._schema_ready = True

    def _count_committed(self, traces: list[Trace]) -> None:
        self.stats.transactions += 1
        self.stats.committed += len(traces)
        self._journal_full = False
        metrics.COMMITTED.inc(len(traces))
        self.last_commit_at = utcnow()
        metrics.LAST_COMMIT.set(self.last_commit_at.timestamp())

    def _journal(self, calls: list[_QueuedCall], traces: list[Trace]) -> list[Outcome | TraceWriteError]:
        """Runs in a worker thread: append the calls' traces to the journal, fsynced."""
        try:
            self.journal.append(traces)
        except JournalFull as exc:
            if len(calls) > 1 and exc.reason == "cap":
                # The cap may still hold some of the group's calls: those that fit are answered.
                return [self._journal([call], call.traces)[0] for call in calls]
            if not self._journal_full:  # once per episode: every refused request is counted in the metrics
                log.error("trace database unavailable and journal full (%s): refusing requests until it has room "
                          "or the database is back", exc)
            self._journal_full = True
            metrics.WRITE_FAILURES.labels("journal").inc()
            return [TraceWriteError(f"trace database unavailable and {exc}")] * len(calls)
        except Exception as exc:
            if len(calls) > 1 and not isinstance(exc, OSError):
                # A trace that cannot be serialised (say, a numpy value in its inputs) fails its own call only.
                return [self._journal([call], call.traces)[0] for call in calls]
            metrics.WRITE_FAILURES.labels("journal").inc()
            log.error("trace database unavailable and journal not writable: %s", exc)
            return [TraceWriteError(f"trace database unavailable and journal not writable: {exc}")] * len(calls)
        self.stats.journaled += len(traces)
        self._journal_full = False
        metrics.JOURNALED.inc(len(traces))
        return ["journaled"] * len(calls)


def _traces_of(calls: list[_QueuedCall]) -> list[Trace]:
    return [trace for call in calls for trace in call.traces]
