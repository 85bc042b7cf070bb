"""Journal replay: moving journaled traces into the database once it answers again, exactly once.

One :class:`JournalReplayer` per trace writer. Each pass replays this
process's journals (after rotating, so new appends go to a new file) and
those of dead processes (whose lock can be taken), chunk by chunk with
``INSERT ... ON CONFLICT DO NOTHING``: a trace already stored, or replayed
twice, is stored once. A trace the database refuses for its own content is
quarantined, never dropped.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from persistence import metrics
from persistence.database import is_unreachable, ping
from persistence.journal import JOURNAL_GLOB, TraceJournal, read_journal
from persistence.store import TraceStore
from persistence.traces import Trace

if TYPE_CHECKING:
    from persistence.writer import WriterStats

log = logging.getLogger(__name__)


class JournalReplayer:
    """Replays the journals of one writer's directory into its database, now and every ``interval_s``."""

    def __init__(self, store: TraceStore, journal: TraceJournal, stats: WriterStats, *, chunk_rows: int,
                 interval_s: float, on_database_back: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.journal = journal
        self.stats = stats
        self.chunk_rows = chunk_rows
        self.interval_s = interval_s
        self._on_database_back = on_database_back
        self._guard = threading.Lock()  # one pass at a time (the periodic task and replay_once)

    async def run_forever(self, stopping: asyncio.Event) -> None:
        """Replay at once, then every ``interval_s`` until ``stopping`` is set."""
        while not stopping.is_set():
            await self.replay_logging_failures()
            try:
                await asyncio.wait_for(stopping.wait(), timeout=self.interval_s)
            except TimeoutError:
                pass

    async def replay_once(self) -> int:
        """One pass now, in a worker thread; the traces inserted (0 when the database is unreachable)."""
        return await asyncio.to_thread(self.replay_pass)

    async def replay_logging_failures(self) -> int:
        """:meth:`replay_once`, logging a failure instead of raising it (retried at the next interval)."""
        try:
            return await self.replay_once()
        except Exception as exc:  # retried at the next interval
            log.warning("journal replay failed, retrying in %.1f s: %s", self.interval_s, exc)
            return 0

    def replay_pass(self) -> int:
        """One replay of every journal this process may replay; the traces inserted."""
        with self._guard:
            own = self.journal.own_files()
            if not own and not self._orphans_may_exist():
                return 0
            if not ping(self.store.engine):
                return 0
            self._on_database_back()
            inserted = 0
            # Rotate first: traces journaled from now on go to a new file, never to one being deleted.
            for path in self.journal.rotate():
                inserted += self._replay_file(path)
                self.journal.forget(path)
            with self.journal.claim_orphans() as orphans:
                for path in orphans:
                    log.info("replaying %s, left by a process that is gone", path.name)
                    inserted += self._replay_file(path)
                    self.journal.drop_orphan(path)
            return inserted

    def _orphans_may_exist(self) -> bool:
        own = set(self.journal.own_files())
        return any(path not in own for path in self.journal.directory.glob(JOURNAL_GLOB))

    def _replay_file(self, path: Path) -> int:
        inserted = 0
        chunk: list[Trace] = []
        for trace in read_journal(path):
            chunk.append(trace)
            if len(chunk) >= self.chunk_rows:
                inserted += self._insert_missing(path, chunk)
                chunk = []
        if chunk:
            inserted += self._insert_missing(path, chunk)
        if inserted:
            log.info("replayed %d journaled trace(s) from %s", inserted, path.name)
        return inserted

    def _insert_missing(self, source: Path, traces: list[Trace]) -> int:
        try:
            inserted = self.store.insert_missing(traces)
        except Exception as exc:  # classified just below
            if is_unreachable(exc):
                raise
            if len(traces) > 1:
                # Find the trace the database refuses, so the others are not held back by it.
                return sum(self._insert_missing(source, [trace]) for trace in traces)
            kept = self.journal.quarantine(source, traces)
            metrics.WRITE_FAILURES.labels("rejected").inc()
            self.stats.rejected += 1
            log.error("the database rejects journaled trace %s (%s); kept in %s", traces[0].request_id, exc, kept)
            return 0
        self.stats.replayed += inserted
        metrics.REPLAYED.inc(inserted)
        return inserted
