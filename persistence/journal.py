"""The local trace journal: where traces go, durably, while the database is unreachable.

Each process appends to its own file, ``journal-<pid>-<uuid>.jsonl`` (one
trace per JSON line, flushed and fsynced before the caller is answered), and
holds an exclusive lock on ``<file>.lock`` for as long as it lives. A replay
first *rotates* (the next append opens a new file), so traces journaled
during a replay are never lost by deleting the replayed file. A journal whose
lock can be taken belongs to a dead process: whoever takes the lock replays
and deletes it.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import orjson
from filelock import FileLock, Timeout

from persistence import metrics
from persistence.database import PRIVATE_FILE_MODE
from persistence.traces import Trace

log = logging.getLogger(__name__)

JOURNAL_GLOB = "journal-*.jsonl"
QUARANTINE_PREFIX = "quarantine-"
QUARANTINE_GLOB = f"{QUARANTINE_PREFIX}*.jsonl"


def _lock_for(path: Path, timeout: float) -> FileLock:
    # Shared across threads (appends and replays run in worker threads); never a soft
    # (file-exists) lock, which a dead owner would leave behind and make look alive.
    return FileLock(f"{path}.lock", timeout=timeout, thread_local=False, fallback_to_soft=False)


def _delete_locked(path: Path) -> None:
    """Delete a journal file, then its lock file, while the caller still holds that lock.

    In this order, a lock file never disappears while its journal exists, so
    two processes can never both believe they own a journal; whoever locks a
    stale lock name afterwards finds no journal behind it.
    """
    path.unlink(missing_ok=True)
    Path(f"{path}.lock").unlink(missing_ok=True)
    _fsync_directory(path.parent)


def open_private(path: Path, mode: str) -> IO[str]:
    """Open the text file ``path`` to append (``"a"``) or replace (``"w"``); a new file gets mode 0600.

    Journals and quarantine files hold traces, whose inputs are personal data.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "a" else os.O_TRUNC)
    return open(os.open(path, flags, PRIVATE_FILE_MODE), mode, encoding="utf-8")


def _fsync_directory(directory: Path) -> None:
    # A new or removed file is durable only once its directory entry is.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_journal(path: Path, on_unreadable: Callable[[int, str], None] | None = None) -> Iterator[Trace]:
    """The traces of a journal file, in order.

    A torn last line (no newline: the process died mid-append, before fsync
    returned, so nobody was answered for it) is skipped. Any other line that
    does not read as a valid trace goes to ``on_unreadable(line number,
    line)`` (the replay quarantines it), or is skipped with a warning.
    """
    with path.open("r", encoding="utf-8") as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                yield Trace.from_dict(json.loads(line))
            except (ValueError, TypeError) as exc:
                if not line.endswith("\n"):
                    log.warning("%s:%d: skipping a torn last line", path, number)
                elif on_unreadable is not None:
                    on_unreadable(number, line)
                else:
                    log.warning("%s:%d: skipping an unreadable journal line (%s)", path, number, exc)


def journal_lines(traces: Sequence[Trace]) -> str:
    """The journal lines of ``traces``: one JSON object per line, encoded as the trace writer's COPY encodes.

    orjson, as the check at the door (:mod:`persistence.fitting`) and the COPY
    do: whatever a trace holds, if it was accepted, it can be journaled.
    """
    return "".join(orjson.dumps(t.to_dict()).decode() + "\n" for t in traces)


def write_traces(path: Path, traces: Sequence[Trace], mode: str = "a") -> None:
    """Write traces as journal lines to ``path`` (``"a"``: append, ``"w"``: replace), fsynced with the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_private(path, mode) as stream:
        stream.write(journal_lines(traces))
        stream.flush()
        os.fsync(stream.fileno())
    _fsync_directory(path.parent)


def quarantined_rows(directory: Path) -> int:
    """Traces held in the quarantine files of a journal directory."""
    total = 0
    for path in Path(directory).glob(QUARANTINE_GLOB):
        try:
            with path.open("rb") as stream:
                total += sum(1 for line in stream if line.strip())
        except OSError:  # removed while counting (a replay of it finished)
            continue
    return total


def orphan_journals(journal: TraceJournal) -> list[Path]:
    """Journal files in ``journal``'s directory that are not its own (dead processes', or other live ones')."""
    own = set(journal.own_files())
    return [path for path in sorted(journal.directory.glob(JOURNAL_GLOB)) if path not in own]


class TraceJournal:
    """The journal files of this process, and access to those of dead processes.

    Thread-safe: appends (from the writer's flushes) and rotations (from its
    replays) may run in different threads.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._guard = threading.Lock()
        self._current: Path | None = None
        self._stream: IO[str] | None = None
        self._locks: dict[Path, FileLock] = {}  # every own journal not yet replayed, current included
        self._rows: dict[Path, int] = {}

    @property
    def backlog_rows(self) -> int:
        """Traces in this process's journals, not yet replayed."""
        with self._guard:
            return sum(self._rows.values())

    def own_files(self) -> list[Path]:
        """This process's journal files (the current one last)."""
        with self._guard:
            return sorted(self._locks, key=lambda p: p == self._current)

    def append(self, traces: Sequence[Trace]) -> Path:
        """Append the traces and fsync; on return they survive a crash. Returns the file written."""
        lines = journal_lines(traces)
        with self._guard:
            if self._stream is None:
                self._open_new_file()
            assert self._stream is not None and self._current is not None
            try:
                self._stream.write(lines)
                self._stream.flush()
                os.fsync(self._stream.fileno())
            except OSError:
                # A partial line may be on disk: later appends go to a new file, so that
                # torn line stays last in its file, where the reader expects one.
                self._close_current()
                raise
            self._rows[self._current] += len(traces)
            metrics.JOURNAL_BACKLOG.inc(len(traces))
            return self._current

    def _open_new_file(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"journal-{os.getpid()}-{uuid.uuid4().hex}.jsonl"
        lock = _lock_for(path, timeout=0)
        # Locked before the file exists: a replayer that sees the file always finds it locked.
        lock.acquire()
        self._stream = open_private(path, "a")
        _fsync_directory(self.directory)
        self._current = path
        self._locks[path] = lock
        self._rows[path] = 0

    def rotate(self) -> list[Path]:
        """Close the current file (the next append starts a new one); return the own files to replay."""
        with self._guard:
            self._close_current()
            return sorted(self._locks)

    def _close_current(self) -> None:
        if self._stream is not None:
            try:
                self._stream.close()
            except OSError as exc:  # the data that mattered was fsynced; a close error loses nothing acknowledged
                log.warning("closing journal %s: %s", self._current, exc)
        self._stream = None
        self._current = None

    def forget(self, path: Path) -> None:
        """Delete an own journal file whose traces are all in the database, and release its lock."""
        with self._guard:
            if path == self._current:
                raise ValueError(f"{path} is still being appended to: rotate first")
            lock = self._locks.pop(path)
            metrics.JOURNAL_BACKLOG.dec(self._rows.pop(path))
        _delete_locked(path)
        lock.release()

    @contextmanager
    def claim_orphans(self) -> Iterator[Iterator[Path]]:
        """Journal files of dead processes, each locked while the caller handles it.

        Used as ``with journal.claim_orphans() as orphans: for path in orphans: ...``.
        The caller deletes a file with :meth:`drop_orphan` once replayed; a file it
        leaves (a failed replay) is unlocked for a later attempt.
        """
        held: list[FileLock] = []

        def orphans() -> Iterator[Path]:
            with self._guard:
                own = set(self._locks)
            for path in sorted(self.directory.glob(JOURNAL_GLOB)):
                if path in own:
                    continue
                lock = _lock_for(path, timeout=0)
                try:
                    lock.acquire()
                except Timeout:
                    continue  # its owner is alive and will replay it
                held.append(lock)
                if path.exists():
                    yield path
                else:  # another replayer finished it between glob and lock: clear the lock file we made
                    _delete_locked(path)

        try:
            yield orphans()
        finally:
            for lock in held:
                lock.release()

    def drop_orphan(self, path: Path) -> None:
        """Delete a dead process's journal once its traces are in the database (lock held by claim_orphans)."""
        _delete_locked(path)

    def quarantine(self, source: Path, traces: Sequence[Trace]) -> Path:
        """Set aside traces the database refuses for their own content, so a replay can move on.

        They go to ``quarantine-<journal name>``, which no automatic replay
        reads: an alarm (``futurisys_trace_quarantined_total``, the health
        detail), never a silent loss; ``python -m persistence
        replay-quarantine FILE`` replays it once the cause is fixed.
        """
        path = self._quarantine_path(source)
        write_traces(path, traces, mode="a")
        metrics.QUARANTINED.inc(len(traces))
        return path

    def quarantine_line(self, source: Path, line: str) -> Path:
        """Set aside a journal line that does not read as a valid trace, as written (to be fixed by hand)."""
        path = self._quarantine_path(source)
        with open_private(path, "a") as stream:
            stream.write(line if line.endswith("\n") else line + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        _fsync_directory(path.parent)
        metrics.QUARANTINED.inc()
        return path

    def _quarantine_path(self, source: Path) -> Path:
        name = source.name if source.name.startswith(QUARANTINE_PREFIX) else f"{QUARANTINE_PREFIX}{source.name}"
        return self.directory / name

    def close(self) -> None:
        """Close the current file and release every lock; files left behind are replayed by another process."""
        with self._guard:
            self._close_current()
            for lock in self._locks.values():
                lock.release()
            metrics.JOURNAL_BACKLOG.dec(sum(self._rows.values()))
            self._locks.clear()
            self._rows.clear()
