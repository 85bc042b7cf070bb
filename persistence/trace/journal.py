"""The local trace journal's folder: where traces go, durably, while the database is unreachable.

Layout: one directory per service instance (``<state>/journal/<instance id>``,
see ``settings.journal_dir``), holding ``database.json`` (the fingerprint of
the database its journals belong to: :func:`persistence.database.engine.database_fingerprint`)
and one file per process, ``journal-<pid>-<uuid>.jsonl``: one trace per JSON
line, written and fsynced before the caller is answered. Each process holds
an exclusive lock on ``<file>.lock`` for as long as it lives. A replay first
*rotates* (the next append opens a new file), so traces journaled during a
replay are never lost by deleting the replayed file. A journal whose lock can
be taken belongs to a dead process: whoever takes the lock replays and
deletes it — in its own instance directory, or in the directory of another
instance recorded for the same database, never another database's.

The lines, locks and integrity of each file are
:mod:`persistence.trace.journal_format`'s. A failed append is cut back to
where it started. Bounded: past ``max_bytes``
of this process's journals, or on a full disk, an append raises
:class:`JournalFull` (the request is refused, never answered untraced), and
quarantine files stop growing past ``quarantine_max_bytes`` (the journal they
would come from is then kept).
"""
from __future__ import annotations

import errno
import logging
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import orjson
from filelock import FileLock, Timeout

from persistence.database.engine import PRIVATE_FILE_MODE
from persistence.database.traces import Trace
from persistence.trace import metrics
from persistence.trace.journal_format import (JOURNAL_GLOB, QuarantineCount, delete_locked, directory_for,
                                              fsync_directory, journal_lines, lock_for, quarantine_bytes,
                                              quarantine_path, quarantined_offsets, read_database_record,
                                              sibling_directories, unreadable_entry, write_all,
                                              write_database_record, write_lines)

log = logging.getLogger(__name__)

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class JournalFull(OSError):
    """The journal takes no more traces: its size cap is reached, or the disk is full."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(errno.ENOSPC, message)
        self.reason = reason  # "cap" or "disk_full"

    def __str__(self) -> str:
        return str(self.strerror)


class QuarantineFull(OSError):
    """The quarantine files of a journal directory reached their cap: the journal they come from is kept."""


def orphan_journals(journal: TraceJournal) -> list[Path]:
    """Journal files this process may replay that are not its own (dead processes', or other live ones')."""
    own = set(journal.own_files())
    return [path for directory in journal.replayable_directories()
            for path in sorted(directory.glob(JOURNAL_GLOB)) if path not in own]


class TraceJournal:
    """The journal files of this process, and access to those of dead processes.

    Thread-safe: appends (from the writer's flushes) and rotations (from its
    replays) may run in different threads. With a ``fingerprint``, the
    directory is recorded for that database (:func:`directory_for`) and the
    journals of dead processes of other instances of that database are
    replayable too.
    """

    def __init__(self, directory: Path, *, fingerprint: str | None = None, database: str = "",
                 instance: str = "", max_bytes: int | None = None,
                 quarantine_max_bytes: int | None = None) -> None:
        self.fingerprint = fingerprint
        self.directory = directory_for(Path(directory), fingerprint) if fingerprint else Path(directory)
        self.database = database
        self.instance = instance or self.directory.name
        self.max_bytes = max_bytes
        self.quarantine_max_bytes = quarantine_max_bytes
        self._guard = threading.Lock()
        self._current: Path | None = None
        self._fd: int | None = None
        self._locks: dict[Path, FileLock] = {}  # every own journal not yet replayed, current included
        self._rows: dict[Path, int] = {}
        self._bytes: dict[Path, int] = {}
        self._recorded = False
        self.quarantine_count = QuarantineCount(self.directory)  # /health's count, read once per change

    @property
    def backlog_rows(self) -> int:
        """Traces in this process's journals, not yet replayed."""
        with self._guard:
            return sum(self._rows.values())

    @property
    def backlog_bytes(self) -> int:
        """Bytes of this process's journals, not yet replayed (what ``max_bytes`` bounds)."""
        with self._guard:
            return sum(self._bytes.values())

    def own_files(self) -> list[Path]:
        """This process's journal files (the current one last)."""
        with self._guard:
            return sorted(self._locks, key=lambda p: p == self._current)

    def replayable_directories(self) -> list[Path]:
        """This journal's directory, then those of other instances recorded for the same database."""
        if self.fingerprint is None:
            return [self.directory]
        return [self.directory, *sibling_directories(self.directory, self.fingerprint)]

    def append(self, traces: Sequence[Trace]) -> Path:
        """Append the traces and fsync; on return they survive a crash. Returns the file written.

        Raises :class:`JournalFull` past ``max_bytes`` or on a full disk; an
        append that fails is cut back, so the file holds none of its traces.
        """
        data = journal_lines(traces).encode("utf-8")
        with self._guard:
            held = sum(self._bytes.values())
            if self.max_bytes is not None and held + len(data) > self.max_bytes:
                metrics.JOURNAL_REFUSALS.labels("cap").inc(len(traces))
                raise JournalFull("cap", f"journal full: {held} bytes held, cap {self.max_bytes} "
                                         "(FUTURISYS_JOURNAL_MAX_BYTES)")
            try:
                if self._fd is None:
                    self._open_new_file()
                assert self._fd is not None and self._current is not None
                self._write_durably(self._fd, self._current, data)
            except OSError as exc:
                if exc.errno in DISK_FULL_ERRNOS:
                    metrics.JOURNAL_REFUSALS.labels("disk_full").inc(len(traces))
                    raise JournalFull("disk_full", f"journal not writable, disk full: {exc.strerror}") from exc
                raise
            self._rows[self._current] += len(traces)
            self._bytes[self._current] += len(data)
            metrics.JOURNAL_BACKLOG.inc(len(traces))
            metrics.JOURNAL_BYTES.inc(len(data))
            return self._current

    def _write_durably(self, fd: int, path: Path, data: bytes) -> None:
        start = self._bytes[path]
        try:
            write_all(fd, data)
            os.fsync(fd)  # before the caller answers: what a crash keeps is what was synced
        except OSError:
            # Cut back what reached the file, so no trace of a refused call is replayed; if even that fails,
            # later appends go to a new file and a torn line stays last in its file, where the reader expects it.
            try:
                os.ftruncate(fd, start)
                os.fsync(fd)
            except OSError:
                pass
            self._close_current()
            raise

    def _open_new_file(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.fingerprint is not None and not self._recorded:
            record = read_database_record(self.directory)
            if record is None or record["fingerprint"] != self.fingerprint:
                write_database_record(self.directory, self.fingerprint, self.database, self.instance)
            self._recorded = True
        path = self.directory / f"journal-{os.getpid()}-{uuid.uuid4().hex}.jsonl"
        lock = lock_for(path, timeout=0)
        # Locked before the file exists: a replayer that sees the file always finds it locked.
        lock.acquire()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE)
            fsync_directory(self.directory)
        except OSError:
            lock.release()
            raise
        self._fd = fd
        self._current = path
        self._locks[path] = lock
        self._rows[path] = 0
        self._bytes[path] = 0

    def rotate(self) -> list[Path]:
        """Close the current file (the next append starts a new one); return the own files to replay."""
        with self._guard:
            self._close_current()
            return sorted(self._locks)

    def rotate_unless_behind(self) -> tuple[list[Path], bool]:
        """The own files a replay takes now, and whether the current file was rotated for it.

        While files rotated out by an earlier pass are still waiting (their
        replay failed: a database that answers but refuses writes), those are
        taken and the current file is kept open: the files, and the lock each
        holds, stay at most two however long the database refuses.
        """
        with self._guard:
            behind = sorted(path for path in self._locks if path != self._current)
            if behind:
                return behind, False
            self._close_current()
            return sorted(self._locks), True

    def _close_current(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError as exc:  # the data that mattered was fsynced; a close error loses nothing acknowledged
                log.warning("closing journal %s: %s", self._current, exc)
        self._fd = None
        self._current = None

    def forget(self, path: Path) -> None:
        """Delete an own journal file whose traces are all in the database or quarantine, and release its lock."""
        with self._guard:
            if path == self._current:
                raise ValueError(f"{path} is still being appended to: rotate first")
            lock = self._locks.pop(path)
            metrics.JOURNAL_BACKLOG.dec(self._rows.pop(path))
            metrics.JOURNAL_BYTES.dec(self._bytes.pop(path))
        delete_locked(path)
        lock.release()

    @contextmanager
    def claim_orphans(self) -> Iterator[Iterator[Path]]:
        """Journal files of dead processes (this directory, then same-database siblings), each locked meanwhile.

        Used as ``with journal.claim_orphans() as orphans: for path in orphans: ...``.
        The caller deletes a file with :meth:`drop_orphan` once replayed; a file it
        leaves (a failed replay) is unlocked for a later attempt.
        """
        held: list[FileLock] = []

        def orphans() -> Iterator[Path]:
            with self._guard:
                own = set(self._locks)
            for directory in self.replayable_directories():
                yield from claim_unlocked(directory, own, held)

        try:
            yield orphans()
        finally:
            for lock in held:
                lock.release()

    def drop_orphan(self, path: Path) -> None:
        """Delete a dead process's journal once its traces are in the database (lock held by claim_orphans)."""
        delete_locked(path)

    def quarantine(self, source: Path, traces: Sequence[Trace]) -> Path:
        """Set aside traces the database refuses for their own content, so a replay can move on.

        They go to ``quarantine-<journal name>`` next to the journal, which no
        automatic replay reads: an alarm (``futurisys_trace_quarantined_total``,
        the health detail), never a silent loss; ``python -m persistence
        replay-quarantine FILE`` replays it once the cause is fixed.
        """
        path = quarantine_path(source)
        self._write_quarantine(path, journal_lines(traces))
        metrics.QUARANTINED.inc(len(traces))
        return path

    def quarantine_unreadable(self, source: Path, lines: Sequence[tuple[int, int, bytes]]) -> Path:
        """Set aside journal lines that do not read as traces, each with its file, line number and byte offset.

        One fsynced append for all of them; a line already set aside by an
        earlier attempt (same file and offset) is not set aside twice.
        """
        path = quarantine_path(source)
        known = quarantined_offsets(path)
        entries = [unreadable_entry(source, number, offset, raw) for number, offset, raw in lines
                   if (str(source), offset) not in known]
        if entries:
            self._write_quarantine(path, "".join(orjson.dumps(entry).decode() + "\n" for entry in entries))
            metrics.QUARANTINED.inc(len(entries))
        return path

    def _write_quarantine(self, path: Path, text: str) -> None:
        size = quarantine_bytes(path.parent)
        if self.quarantine_max_bytes is not None and size + len(text.encode()) > self.quarantine_max_bytes:
            metrics.QUARANTINE_BYTES.set(size)
            raise QuarantineFull(errno.ENOSPC, f"quarantine of {path.parent} full: {size} bytes, cap "
                                               f"{self.quarantine_max_bytes} (FUTURISYS_QUARANTINE_MAX_BYTES); "
                                               "its journal is kept")
        before = self.quarantine_count.state(path)
        write_lines(path, text)
        self.quarantine_count.appended(path, before, sum(1 for line in text.splitlines() if line.strip()))
        metrics.QUARANTINE_BYTES.set(quarantine_bytes(path.parent))

    def close(self) -> None:
        """Close the current file and release every lock; files left behind are replayed by another process."""
        with self._guard:
            self._close_current()
            for lock in self._locks.values():
                lock.release()
            metrics.JOURNAL_BACKLOG.dec(sum(self._rows.values()))
            metrics.JOURNAL_BYTES.dec(sum(self._bytes.values()))
            self._locks.clear()
            self._rows.clear()
            self._bytes.clear()


def claim_unlocked(directory: Path, skip: set[Path], held: list[FileLock]) -> Iterator[Path]:
    """Journal files of ``directory`` whose lock can be taken (their process is gone); locks go to ``held``."""
    for path in sorted(Path(directory).glob(JOURNAL_GLOB)):
        if path in skip:
            continue
        lock = lock_for(path, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            continue  # its owner is alive and will replay it
        held.append(lock)
        if path.exists():
            yield path
        else:  # another replayer finished it between glob and lock: clear the lock file we made
            delete_locked(path)
