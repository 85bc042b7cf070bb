"""Where a group of traces goes: the database within the commit deadline, or the journal.

A group commit not done within ``deadline_s`` raises
:class:`CommitDeadlineMissed`: the group is journaled and answered, and the
policy enters *journal mode*: every group goes to the journal at once,
without touching the database, until a journal replay goes through
(:meth:`CommitPolicy.database_back`). The commit itself is given up, not
cancelled: interrupting a COPY midway leaves its connection unusable, and
the server ends it soon anyway (``statement_timeout``); until it ends the
database is not tried again. A commit that lands after its deadline is
harmless: its traces were journaled too, and the replay inserts only
request ids not stored yet. A database that refuses every write (read-only,
no privilege, no table...) is unavailable, not a reason to reject a trace
(:func:`persistence.database.engine.classify_failure`); only a trace the
database refuses for its own content fails its call.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy.engine import Engine

from persistence.database.columns import utcnow
from persistence.database.engine import classify_failure, describe_failure, is_missing_table
from persistence.database.traces import Trace
from persistence.trace import metrics
from persistence.trace.group_queue import QueuedCall, traces_of
from persistence.trace.journal import JournalFull, TraceJournal
from persistence.trace.stats import Outcome, TraceWriteError, WriterStats
from persistence.trace.store import TraceStore

log = logging.getLogger("persistence.trace.writer")  # the writer's log: this is the writer's policy


class CommitDeadlineMissed(TimeoutError):
    """A group commit did not finish within the commit deadline (the database is slow or hanging)."""


class CommitPolicy:
    """The trace writer's choice for each group: commit within the deadline, or journal; and journal mode."""

    def __init__(self, store: TraceStore, journal: TraceJournal, stats: WriterStats, *, engine: Engine,
                 deadline_s: float, migrate: bool) -> None:
        """Commit to ``store`` within ``deadline_s``, journal to ``journal``; ``migrate``: the writer migrates."""
        self.store = store
        self.journal = journal
        self.stats = stats
        self.engine = engine
        self.deadline_s = deadline_s
        self.migrate = migrate
        # PostgreSQL's store commits from the event loop; the others run in a worker thread.
        self._insert_async = getattr(store, "insert_async", None)
        # False in journal mode: flushes go straight to the journal instead of each paying a failed or
        # hanging database call; a replay that went through sets it back. A migrating writer starts so,
        # until its first probe has migrated.
        self.available = not migrate
        self.schema_ready = not migrate
        self.journal_full = False  # the last append was refused for want of room
        self.late: asyncio.Future[None] | None = None  # a commit past its deadline, still running
        self.last_commit_at: datetime | None = None

    async def store_group(self, calls: list[QueuedCall]) -> list[Outcome | TraceWriteError]:
        """Commit the calls' traces within the deadline, or journal them; fail only a call the database rejects."""
        traces = traces_of(calls)
        if self.available and (self.late is None or self.late.done()):
            try:
                await self.commit(traces)
            except Exception as exc:  # classified just below
                if classify_failure(exc) == "rejected":
                    if len(calls) > 1:
                        # One caller's faulty trace must not fail the others of its group.
                        return [(await self.store_group([call]))[0] for call in calls]
                    metrics.WRITE_FAILURES.labels("rejected").inc()
                    self.stats.rejected += len(traces)
                    # By request id and kind of refusal only: the database's message quotes the row.
                    log.error("the database rejected trace(s) %s for their content: %s",
                              ", ".join(t.request_id for t in traces), describe_failure(exc))
                    return [TraceWriteError(f"the database rejected the trace: {describe_failure(exc)}")]
                self.enter_journal_mode(exc)
            else:
                self._count_committed(traces)
                return ["committed"] * len(calls)
        return await asyncio.to_thread(self.journal_calls, calls, traces)

    async def commit(self, traces: list[Trace]) -> None:
        """One group commit, given up (not cancelled) at the deadline: raises :class:`CommitDeadlineMissed`."""
        if self._insert_async is not None:
            attempt: asyncio.Future[None] = asyncio.ensure_future(self._insert_async(traces))
        else:
            attempt = asyncio.ensure_future(asyncio.to_thread(self.store.insert, traces))
        try:
            done, _ = await asyncio.wait({attempt}, timeout=self.deadline_s)
        except asyncio.CancelledError:
            self._abandon(attempt, len(traces))
            raise
        if not done:
            # Not cancelled: interrupting a COPY midway leaves its connection unusable, and the server ends it
            # soon anyway (statement_timeout). Until it ends, the database is not tried again.
            self._abandon(attempt, len(traces))
            self.stats.deadline_misses += 1
            raise CommitDeadlineMissed(f"group commit of {len(traces)} trace(s) not done within "
                                       f"{self.deadline_s * 1000:.0f} ms")
        attempt.result()

    async def wait_late(self) -> None:
        """Give a commit still running past its deadline one more deadline to end (the writer is stopping)."""
        if self.late is not None and not self.late.done():
            await asyncio.wait({self.late}, timeout=self.deadline_s)

    def _abandon(self, attempt: asyncio.Future[None], rows: int) -> None:
        self.late = attempt

        def landed(done: asyncio.Future[None]) -> None:
            if self.late is done:
                self.late = None
            if done.cancelled():
                return
            if done.exception() is None:
                # Journaled as well: the replay finds these request ids stored and skips them.
                self.stats.late_committed += rows
                metrics.LATE_COMMITS.inc(rows)
                log.warning("a group commit of %d trace(s) landed after the writer gave up on it (they were "
                            "journaled too)", rows)
        attempt.add_done_callback(landed)

    def enter_journal_mode(self, exc: BaseException) -> None:
        """A commit failed as a whole (unavailable, or past its deadline): journal until a replay goes through."""
        reason = "deadline" if isinstance(exc, CommitDeadlineMissed) else "unavailable"
        metrics.WRITE_FAILURES.labels(reason).inc()
        if is_missing_table(exc):
            self.schema_lost()
        if self.available:
            log.warning("trace database unavailable (%s), journaling until a replay goes through: %s", reason,
                        describe_failure(exc))
        self.available = False
        metrics.JOURNAL_MODE.set(1)

    def database_back(self) -> None:
        """A replay went through: commit again."""
        if not self.available:
            log.info("trace database takes writes again: committing")
        self.available = True
        self.journal_full = False
        metrics.JOURNAL_MODE.set(0)

    def schema_lost(self) -> None:
        """The table is gone (a database restored empty, say): a migrating writer migrates again first."""
        self.schema_ready = not self.migrate

    def migrate_schema(self) -> None:
        """Runs in the replay thread before a replay: bring the schema to head once, and after a lost table."""
        if self.schema_ready:
            return
        from persistence.database.migrate import upgrade

        upgrade(self.engine.url, lock_dir=self.journal.directory.parent)
        self.schema_ready = True

    def _count_committed(self, traces: list[Trace]) -> None:
        self.stats.transactions += 1
        self.stats.committed += len(traces)
        self.journal_full = False
        metrics.COMMITTED.inc(len(traces))
        self.last_commit_at = utcnow()
        metrics.LAST_COMMIT.set(self.last_commit_at.timestamp())

    def journal_calls(self, calls: list[QueuedCall], traces: list[Trace]) -> list[Outcome | TraceWriteError]:
        """Runs in a worker thread: append the calls' traces to the journal, fsynced."""
        try:
            self.journal.append(traces)
        except JournalFull as exc:
            if len(calls) > 1 and exc.reason == "cap":
                # The cap may still hold some of the group's calls: those that fit are answered.
                return [self.journal_calls([call], call.traces)[0] for call in calls]
            if not self.journal_full:  # once per episode: every refused request is counted in the metrics
                log.error("trace database unavailable and journal full (%s): refusing requests until it has room "
                          "or the database is back", exc)
            self.journal_full = True
            metrics.WRITE_FAILURES.labels("journal").inc()
            return [TraceWriteError(f"trace database unavailable and {exc}")] * len(calls)
        except Exception as exc:
            if len(calls) > 1 and not isinstance(exc, OSError):
                # A trace that cannot be serialised (say, a numpy value in its inputs) fails its own call only.
                return [self.journal_calls([call], call.traces)[0] for call in calls]
            metrics.WRITE_FAILURES.labels("journal").inc()
            log.error("trace database unavailable and journal not writable: %s", exc)
            return [TraceWriteError(f"trace database unavailable and journal not writable: {exc}")] * len(calls)
        self.stats.journaled += len(traces)
        self.journal_full = False
        metrics.JOURNALED.inc(len(traces))
        return ["journaled"] * len(calls)
