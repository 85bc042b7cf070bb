"""Journal replay: moving journaled traces into the database once it answers again, exactly once.

One :class:`JournalReplayer` per trace writer. Each pass replays this
process's journals (after rotating, so new appends go to a new file) and
those of dead processes (whose lock can be taken), chunk by chunk with
``INSERT ... ON CONFLICT DO NOTHING``: a trace already stored, or replayed
twice, is stored once. A trace the database refuses for its own content is
quarantined, never dropped; a database that refuses or fails as a whole
(:func:`persistence.database.engine.classify_failure`) leaves every journal where
it is, for the next pass.

While its writer journals (the database was found unavailable), a pass is
also the writer's probe: it runs even with nothing to replay, and only a pass
that went through (schema migrated if the writer migrates, own journals
inserted) puts the writer back to committing.

A database that answers ``SELECT 1`` but refuses writes (read-only after a
failover, a revoked INSERT) fails every pass: the replay then backs off
(the interval doubles, up to :data:`MAX_BACKOFF_S`), rotates no more files
until those it holds went in (so the files and locks it holds stay two at
most), and says so: ``failing`` in the health detail, the
``futurisys_trace_replay_failing`` gauge. It does not make the worker
unready (replicas share the database: they would all turn unready at once);
only a full journal does.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from persistence.database.engine import classify_failure, describe_failure, is_missing_table, ping
from persistence.database.tombstones import without_erased
from persistence.database.traces import Trace
from persistence.trace import metrics
from persistence.trace.journal import QuarantineFull, TraceJournal, claim_unlocked
from persistence.trace.journal_format import (JOURNAL_GLOB, journal_lines, open_private, read_database_record,
                                              read_journal, unreadable_text)
from persistence.trace.stats import WriterStats
from persistence.trace.store import TraceStore

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0
"""The longest wait between two replay passes while the database refuses them (never below the interval)."""


class JournalReplayer:
    """Replays the journals of one writer's directory into its database, now and every ``interval_s``."""

    def __init__(self, store: TraceStore, journal: TraceJournal, stats: WriterStats, *, chunk_rows: int,
                 interval_s: float, on_database_back: Callable[[], None] = lambda: None,
                 needs_probe: Callable[[], bool] = lambda: False,
                 prepare: Callable[[], None] | None = None,
                 on_missing_table: Callable[[], None] = lambda: None) -> None:
        """``needs_probe``: True while the writer journals; ``prepare`` runs before a replay (migrations)."""
        self.store = store
        self.journal = journal
        self.stats = stats
        self.chunk_rows = chunk_rows
        self.interval_s = interval_s
        self._on_database_back = on_database_back
        self._needs_probe = needs_probe
        self._prepare = prepare
        self._on_missing_table = on_missing_table
        self._guard = threading.Lock()  # one pass at a time (the periodic task and replay_once)
        self.database_answers = False  # the last probe's ping
        self.first_pass = asyncio.Event()  # set once the first pass ended, however it ended
        self.failed_passes = 0  # consecutive passes that failed with the database answering: it refuses writes
        self.last_failure: str | None = None  # what the last failed pass met (no value: describe_failure)
        self._counted_failing = False

    @property
    def failing(self) -> bool:
        """True while the journal cannot be drained: the database answers but the last pass failed."""
        return self.failed_passes > 0

    @property
    def delay_s(self) -> float:
        """The wait before the next pass: the interval, doubled for each consecutive failed pass, up to a bound."""
        if not self.failed_passes:
            return self.interval_s
        return min(self.interval_s * 2 ** min(self.failed_passes, 30), max(self.interval_s, MAX_BACKOFF_S))

    def release_alarm(self) -> None:
        """Take this replay out of ``futurisys_trace_replay_failing`` (its writer stops)."""
        if self._counted_failing:
            metrics.REPLAY_FAILING.dec()
            self._counted_failing = False

    def _passed(self, exc: BaseException | None) -> None:
        """Count a pass's outcome: a failure with the database answering backs off and raises the alarm."""
        if exc is None or not self.database_answers:
            self.failed_passes, self.last_failure = 0, None
        else:
            self.failed_passes += 1
            self.last_failure = describe_failure(exc)
            metrics.REPLAY_FAILURES.inc()
        if self.failing != self._counted_failing:
            metrics.REPLAY_FAILING.inc(1 if self.failing else -1)
            self._counted_failing = self.failing

    async def run_forever(self, stopping: asyncio.Event) -> None:
        """Replay at once, then every ``interval_s`` until ``stopping`` is set."""
        while not stopping.is_set():
            await self.replay_logging_failures()
            self.first_pass.set()
            try:
                await asyncio.wait_for(stopping.wait(), timeout=self.delay_s)
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
            log.warning("journal replay failed (%d in a row), retrying in %.1f s: %s", self.failed_passes,
                        self.delay_s, describe_failure(exc))
            return 0

    def replay_pass(self) -> int:
        """One replay of every journal this process may replay; the traces inserted."""
        try:
            inserted = self._replay_pass()
        except Exception as exc:
            self._passed(exc)
            if is_missing_table(exc):
                self._on_missing_table()  # the next pass migrates first
            raise
        self._passed(None)
        return inserted

    def _replay_pass(self) -> int:
        with self._guard:
            own = self.journal.own_files()
            probing = self._needs_probe()
            if not own and not probing and not self._orphans_may_exist():
                return 0
            self.database_answers = ping(self.store.engine)
            if not self.database_answers:
                return 0
            if self._prepare is not None:
                self._prepare()
            inserted = 0
            # Rotate first: traces journaled from now on go to a new file, never to one being deleted. Files an
            # earlier pass rotated and could not replay go first, and the current file is rotated only once they
            # went in: a database refusing writes never makes a pass open (and lock) one more file.
            paths, rotated = self.journal.rotate_unless_behind()
            while True:
                left = False
                for path in paths:
                    if (replayed := self._replay_kept_if_quarantine_full(path)) is not None:
                        inserted += replayed
                        self.journal.forget(path)
                    else:
                        left = True
                if rotated or left:
                    break
                paths, rotated = self.journal.rotate_unless_behind()
            # This process's journal went in: the database takes writes again (what other processes left may
            # take longer, and is not this writer's backlog).
            if probing:
                self._on_database_back()
            with self.journal.claim_orphans() as orphans:
                for path in orphans:
                    log.info("replaying %s, left by a process that is gone", path.name)
                    if (replayed := self._replay_kept_if_quarantine_full(path)) is not None:
                        inserted += replayed
                        self.journal.drop_orphan(path)
            return inserted

    def _replay_kept_if_quarantine_full(self, path: Path) -> int | None:
        """:meth:`_replay_file`; None (the file is kept, for a later pass) when its quarantine has no room."""
        try:
            return self._replay_file(path)
        except QuarantineFull as exc:
            log.error("%s kept: %s", path.name, exc)
            return None

    def _orphans_may_exist(self) -> bool:
        own = set(self.journal.own_files())
        return any(path not in own for directory in self.journal.replayable_directories()
                   for path in directory.glob(JOURNAL_GLOB))

    def _replay_file(self, path: Path) -> int:
        inserted = 0
        chunk: list[Trace] = []
        unreadable: list[tuple[int, int, bytes]] = []
        for trace in read_journal(path, on_unreadable=lambda *line: unreadable.append(line)):
            chunk.append(trace)
            if len(chunk) >= self.chunk_rows:
                inserted += self._insert_missing(path, chunk)
                chunk = []
        if chunk:
            inserted += self._insert_missing(path, chunk)
        # Set aside once the file went in, in one fsynced append that skips lines an earlier attempt set
        # aside (same file and offset): the file is deleted only once each line is stored or quarantined.
        if unreadable:
            kept = self.journal.quarantine_unreadable(path, unreadable)
            self.stats.rejected += len(unreadable)
            for number, offset, _line in unreadable:
                log.error("%s:%d (byte %d): a journal line that is not a valid trace; quarantined in %s",
                          path.name, number, offset, kept.name)
        if inserted:
            log.info("replayed %d journaled trace(s) from %s", inserted, path.name)
        return inserted

    def _insert_missing(self, source: Path, traces: list[Trace]) -> int:
        # An erased employee's traces journaled before the erasure never come back (persistence/database/tombstones.py).
        traces = without_erased(self.store.engine, traces)
        if not traces:
            return 0
        try:
            inserted = self.store.insert_missing(traces)
        except Exception as exc:  # classified just below
            if classify_failure(exc) == "unavailable":
                raise  # the whole database: keep the journal for the next pass, never quarantine
            if len(traces) > 1:
                # Find the trace the database refuses, so the others are not held back by it.
                return sum(self._insert_missing(source, [trace]) for trace in traces)
            kept = self.journal.quarantine(source, traces)
            metrics.WRITE_FAILURES.labels("rejected").inc()
            self.stats.rejected += 1
            log.error("the database rejects journaled trace %s for its content (%s); quarantined in %s",
                      traces[0].request_id, describe_failure(exc), kept)
            return 0
        self.stats.replayed += inserted
        metrics.REPLAYED.inc(inserted)
        return inserted


def replay_quarantine(store: TraceStore, path: Path, chunk_rows: int = 1000) -> tuple[int, int]:
    """Replay a quarantine file once the cause of its refusals is fixed; return (inserted, still kept).

    Traces are inserted exactly once (a request id already stored is
    skipped); what the database still refuses for its content, and lines that
    still do not read as traces, stay in the file, which is deleted when
    empty. A database unavailable as a whole raises and leaves the file as it
    was.
    """
    kept_lines: list[str] = []
    traces: list[Trace] = []

    def unreadable(_number: int, _offset: int, line: bytes) -> None:
        # A journal line set aside with its file and offset: a trace now if it was fixed by hand (or reads
        # with this version), else kept as it is.
        text = unreadable_text(line)
        if text is not None:
            try:
                traces.append(Trace.from_dict(json.loads(text)))
                return
            except (ValueError, TypeError):
                pass
        kept_lines.append(line.decode("utf-8", errors="replace"))

    for trace in read_journal(path, on_unreadable=unreadable):
        traces.append(trace)
    traces = without_erased(store.engine, traces)  # as the journal replay does
    inserted = 0
    for start in range(0, len(traces), chunk_rows):
        chunk = traces[start:start + chunk_rows]
        try:
            inserted += store.insert_missing(chunk)
        except Exception as exc:  # classified just below
            if classify_failure(exc) == "unavailable":
                raise
            for trace in chunk:  # find the traces still refused
                try:
                    inserted += store.insert_missing([trace])
                except Exception as single:  # classified just below
                    if classify_failure(single) == "unavailable":
                        raise
                    kept_lines.append(journal_lines([trace]))
    if kept_lines:
        replacement = path.with_name(f".{path.name}.tmp")
        with open_private(replacement, "w") as stream:
            stream.writelines(line if line.endswith("\n") else line + "\n" for line in kept_lines)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(replacement, path)
    else:
        path.unlink()
    return inserted, len(kept_lines)


class DatabaseMismatch(ValueError):
    """A journal directory recorded for another database than the one a replay would write to."""


def replay_directory(store: TraceStore, directory: Path, fingerprint: str, *, force_database: bool = False,
                     chunk_rows: int = 1000) -> tuple[int, list[Path], list[Path]]:
    """Replay by hand the journals of ``directory`` whose process is gone; (inserted, replayed, left to owners).

    Refuses (:class:`DatabaseMismatch`) a directory recorded for another
    database than ``fingerprint``'s unless ``force_database``; a directory
    with no record (an earlier version's) is replayed. Each file is deleted
    once every line is stored or quarantined, exactly as the service's own
    replay does; a journal whose owner is alive (locked) is left to it.
    """
    record = read_database_record(directory)
    if record is not None and record["fingerprint"] != fingerprint and not force_database:
        raise DatabaseMismatch(f"{directory} holds journals of database {record.get('database') or '?'} "
                               f"(fingerprint {record['fingerprint']}), not of this one ({fingerprint}): "
                               "point DATABASE_URL at it, or pass --force-database")
    journal = TraceJournal(directory)
    replayer = JournalReplayer(store, journal, WriterStats(), chunk_rows=chunk_rows, interval_s=1.0)
    inserted, replayed, held = 0, [], []
    locks: list = []
    try:
        for path in claim_unlocked(directory, set(), locks):
            inserted += replayer._replay_file(path)
            journal.drop_orphan(path)
            replayed.append(path)
    finally:
        for lock in locks:
            lock.release()
    held = sorted(set(directory.glob(JOURNAL_GLOB)) - set(replayed))
    return inserted, replayed, held
