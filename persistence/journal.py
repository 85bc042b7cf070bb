"""The local trace journal: where traces go, durably, while the database is unreachable.

Layout: one directory per service instance (``<state>/journal/<instance id>``,
see ``settings.journal_dir``), holding ``database.json`` (the fingerprint of
the database its journals belong to: :func:`persistence.database.database_fingerprint`)
and one file per process, ``journal-<pid>-<uuid>.jsonl``: one trace per JSON
line, written and fsynced before the caller is answered. Each process holds
an exclusive lock on ``<file>.lock`` for as long as it lives. A replay first
*rotates* (the next append opens a new file), so traces journaled during a
replay are never lost by deleting the replayed file. A journal whose lock can
be taken belongs to a dead process: whoever takes the lock replays and
deletes it — in its own instance directory, or in the directory of another
instance recorded for the same database, never another database's.

Integrity: a line that does not read as a trace is quarantined with its file
and byte offset, never dropped; only a torn last line (the process died while
appending it, so before the fsync that precedes every answer) is discarded.
A failed append is cut back to where it started. Bounded: past ``max_bytes``
of this process's journals, or on a full disk, an append raises
:class:`JournalFull` (the request is refused, never answered untraced), and
quarantine files stop growing past ``quarantine_max_bytes`` (the journal they
would come from is then kept).
"""
from __future__ import annotations

import base64
import errno
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import orjson
from filelock import FileLock, Timeout

from persistence import metrics
from persistence.database import PRIVATE_FILE_MODE
from persistence.traces import Trace

log = logging.getLogger(__name__)

JOURNAL_GLOB = "journal-*.jsonl"
QUARANTINE_PREFIX = "quarantine-"
QUARANTINE_GLOB = f"{QUARANTINE_PREFIX}*.jsonl"
DATABASE_RECORD = "database.json"
"""The file of a journal directory that names the database its journals belong to."""
UNREADABLE_KEY = "unreadable_journal_line"
"""The key of a quarantine entry that holds a journal line as written, with its file and offset."""
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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# -- which database a directory belongs to ---------------------------------------------------------

def read_database_record(directory: Path) -> dict[str, Any] | None:
    """The ``database.json`` of a journal directory (``fingerprint``, ``database``, ``instance``), or None."""
    try:
        record = json.loads((Path(directory) / DATABASE_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("fingerprint"), str) else None


def write_database_record(directory: Path, fingerprint: str, database: str, instance: str) -> None:
    """Record, atomically and durably, which database the journals of ``directory`` belong to."""
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{DATABASE_RECORD}.{os.getpid()}.tmp"
    with open_private(temporary, "w") as stream:
        json.dump({"fingerprint": fingerprint, "database": database, "instance": instance}, stream)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, directory / DATABASE_RECORD)
    _fsync_directory(directory)


def holds_traces(directory: Path) -> bool:
    """True when a journal directory still holds journal or quarantine files."""
    return any(Path(directory).glob(JOURNAL_GLOB)) or any(Path(directory).glob(QUARANTINE_GLOB))


def directory_for(directory: Path, fingerprint: str) -> Path:
    """The journal directory of this database at ``directory``: it, or a sibling when it holds another's journals.

    A directory recorded for another database that still holds traces (the
    same instance id served another database before) is left to that
    database: this one journals into ``<directory>-<fingerprint>``. A
    directory without a record (new, or from an earlier version) or recorded
    for another database but empty is taken.
    """
    directory = Path(directory)
    record = read_database_record(directory)
    if record is None or record["fingerprint"] == fingerprint or not holds_traces(directory):
        return directory
    return directory.with_name(f"{directory.name}-{fingerprint}")


def sibling_directories(directory: Path, fingerprint: str) -> list[Path]:
    """Journal directories of other instances next to ``directory`` recorded for the same database."""
    try:
        candidates = sorted(p for p in Path(directory).parent.iterdir() if p.is_dir() and p != Path(directory))
    except OSError:
        return []
    return [p for p in candidates if (record := read_database_record(p)) and record["fingerprint"] == fingerprint]


# -- reading ------------------------------------------------------------------------------------------

def read_journal(path: Path, on_unreadable: Callable[[int, int, bytes], None] | None = None) -> Iterator[Trace]:
    """The traces of a journal file, in order.

    A torn last line (no newline: the process died mid-append, before fsync
    returned, so nobody was answered for it) is the only line discarded. Any
    other line that does not read as a valid trace goes to
    ``on_unreadable(line number, byte offset, line as written)`` (the replay
    quarantines it), or is skipped with a warning.
    """
    offset = 0
    with path.open("rb") as stream:
        for number, raw in enumerate(stream, start=1):
            start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            try:
                yield Trace.from_dict(json.loads(raw))
            except (ValueError, TypeError) as exc:
                if not raw.endswith(b"\n"):
                    log.warning("%s:%d: discarding a torn last line (never answered)", path, number)
                elif on_unreadable is not None:
                    on_unreadable(number, start, raw)
                else:
                    log.warning("%s:%d (byte %d): skipping an unreadable journal line (%s)", path, number, start,
                                type(exc).__name__)


def unreadable_entry(source: Path, number: int, offset: int, raw: bytes) -> dict[str, Any]:
    """The quarantine entry of a journal line that does not read as a trace: where it was, and what it was."""
    entry: dict[str, Any] = {"file": str(source), "line": number, "offset": offset}
    try:
        entry["text"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        entry["base64"] = base64.b64encode(raw).decode("ascii")
    return {UNREADABLE_KEY: entry}


def unreadable_text(line: bytes | str) -> str | None:
    """The journal line held by a quarantine entry of :func:`unreadable_entry` (None: not such an entry)."""
    try:
        entry = json.loads(line).get(UNREADABLE_KEY)
    except (ValueError, AttributeError):
        return None
    if not isinstance(entry, dict):
        return None
    if "text" in entry:
        return str(entry["text"])
    return base64.b64decode(entry.get("base64", "")).decode("utf-8", errors="replace")


def journal_lines(traces: Sequence[Trace]) -> str:
    """The journal lines of ``traces``: one JSON object per line, encoded as the trace writer's COPY encodes.

    orjson, as the check at the door (:mod:`persistence.fitting`) and the COPY
    do: whatever a trace holds, if it was accepted, it can be journaled.
    """
    return "".join(orjson.dumps(t.to_dict()).decode() + "\n" for t in traces)


def write_traces(path: Path, traces: Sequence[Trace], mode: str = "a") -> None:
    """Write traces as journal lines to ``path`` (``"a"``: append, ``"w"``: replace), fsynced with the directory."""
    _write_lines(path, journal_lines(traces), mode)


def _write_lines(path: Path, text: str, mode: str = "a") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_private(path, mode) as stream:
        stream.write(text)
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


def quarantine_bytes(directory: Path) -> int:
    """Bytes of the quarantine files of a journal directory."""
    total = 0
    for path in Path(directory).glob(QUARANTINE_GLOB):
        try:
            total += path.stat().st_size
        except OSError:
            continue
    return total


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
            _write_all(fd, data)
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
        lock = _lock_for(path, timeout=0)
        # Locked before the file exists: a replayer that sees the file always finds it locked.
        lock.acquire()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE)
            _fsync_directory(self.directory)
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
        _delete_locked(path)
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
        _delete_locked(path)

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
        known = _quarantined_offsets(path)
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
        _write_lines(path, text)
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


def quarantine_path(source: Path) -> Path:
    """The quarantine file of a journal (a quarantine file is its own)."""
    name = source.name if source.name.startswith(QUARANTINE_PREFIX) else f"{QUARANTINE_PREFIX}{source.name}"
    return source.parent / name


def _quarantined_offsets(path: Path) -> set[tuple[str, int]]:
    known: set[tuple[str, int]] = set()
    try:
        with path.open("rb") as stream:
            for line in stream:
                if UNREADABLE_KEY.encode() not in line:
                    continue
                try:
                    entry = json.loads(line)[UNREADABLE_KEY]
                    known.add((str(entry["file"]), int(entry["offset"])))
                except (ValueError, KeyError, TypeError):
                    continue
    except OSError:
        pass
    return known
