"""The journal's file format and its integrity: one trace per JSON line, locks, fsyncs, quarantine entries.

A journal file, ``journal-<pid>-<uuid>.jsonl``, holds one trace per JSON
line, written and fsynced (with its directory entry) before the caller is
answered; it is locked by ``<file>.lock`` for as long as its process lives.
A line that does not read as a trace is quarantined with its file and byte
offset, never dropped; only a torn last line (the process died while
appending it, so before the fsync that precedes every answer) is discarded.
Journals and quarantine files are private (mode 0600): traces hold personal
data. ``database.json`` names the database a journal directory belongs to.
The folder's rotation and caps are :mod:`persistence.trace.journal`'s.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson
from filelock import FileLock

from persistence.database.engine import PRIVATE_FILE_MODE
from persistence.database.traces import Trace

log = logging.getLogger("persistence.trace.journal")  # one logger for the journal, whichever module logs

JOURNAL_GLOB = "journal-*.jsonl"
QUARANTINE_PREFIX = "quarantine-"
QUARANTINE_GLOB = f"{QUARANTINE_PREFIX}*.jsonl"
DATABASE_RECORD = "database.json"
"""The file of a journal directory that names the database its journals belong to."""
UNREADABLE_KEY = "unreadable_journal_line"
"""The key of a quarantine entry that holds a journal line as written, with its file and offset."""


def lock_for(path: Path, timeout: float) -> FileLock:
    """The lock of a journal file, ``<file>.lock``: held by its writer while it lives, and by whoever replays it."""
    # Shared across threads (appends and replays run in worker threads); never a soft
    # (file-exists) lock, which a dead owner would leave behind and make look alive.
    return FileLock(f"{path}.lock", timeout=timeout, thread_local=False, fallback_to_soft=False)


def delete_locked(path: Path) -> None:
    """Delete a journal file, then its lock file, while the caller still holds that lock.

    In this order, a lock file never disappears while its journal exists, so
    two processes can never both believe they own a journal; whoever locks a
    stale lock name afterwards finds no journal behind it.
    """
    path.unlink(missing_ok=True)
    Path(f"{path}.lock").unlink(missing_ok=True)
    fsync_directory(path.parent)


def open_private(path: Path, mode: str) -> IO[str]:
    """Open the text file ``path`` to append (``"a"``) or replace (``"w"``); a new file gets mode 0600.

    Journals and quarantine files hold traces, whose inputs are personal data.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "a" else os.O_TRUNC)
    return open(os.open(path, flags, PRIVATE_FILE_MODE), mode, encoding="utf-8")


def fsync_directory(directory: Path) -> None:
    """Make a file created in or removed from ``directory`` durable."""
    # A new or removed file is durable only once its directory entry is.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd`` (``os.write`` may write fewer)."""
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
    fsync_directory(directory)


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

    orjson, as the check at the door (:mod:`persistence.database.fitting`) and the COPY
    do: whatever a trace holds, if it was accepted, it can be journaled.
    """
    return "".join(orjson.dumps(t.to_dict()).decode() + "\n" for t in traces)


def write_traces(path: Path, traces: Sequence[Trace], mode: str = "a") -> None:
    """Write traces as journal lines to ``path`` (``"a"``: append, ``"w"``: replace), fsynced with the directory."""
    write_lines(path, journal_lines(traces), mode)


def write_lines(path: Path, text: str, mode: str = "a") -> None:
    """Write ``text`` to ``path`` (``"a"``: append, ``"w"``: replace), fsynced with its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_private(path, mode) as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    fsync_directory(path.parent)


class QuarantineCount:
    """The traces held in the quarantine files of one journal directory, counted once per change of a file.

    ``/health`` asks on every call: a file is read again only when its
    identity, size or modification time changed (a ``stat``, no read), so a
    file written by another process (a replay of it, an erasure) is counted
    anew. Whoever appends to a file it counted (:meth:`appended`) keeps the
    count without reading it again.
    """

    def __init__(self, directory: Path) -> None:
        """Count the quarantine files of ``directory``."""
        self.directory = Path(directory)
        self._files: dict[Path, tuple[tuple[int, int, int], int]] = {}  # path: ((inode, size, mtime), lines)
        self._guard = threading.Lock()

    @staticmethod
    def _key(path: Path) -> tuple[int, int, int] | None:
        try:
            status = path.stat()
        except OSError:
            return None
        return status.st_ino, status.st_size, status.st_mtime_ns

    def rows(self) -> int:
        """Traces in the quarantine files now."""
        with self._guard:
            seen: dict[Path, tuple[tuple[int, int, int], int]] = {}
            for path in self.directory.glob(QUARANTINE_GLOB):
                key = self._key(path)
                if key is None:
                    continue  # removed while counting (a replay of it finished)
                known = self._files.get(path)
                if known is not None and known[0] == key:
                    seen[path] = known
                elif (lines := _count_lines(path)) is not None:
                    seen[path] = (key, lines)
            self._files = seen
            return sum(lines for _key, lines in seen.values())

    def appended(self, path: Path, before: tuple[int, int, int] | None, lines: int) -> None:
        """Record ``lines`` appended to ``path`` whose state before the append was ``before`` (see :meth:`state`)."""
        with self._guard:
            known = self._files.get(path)
            after = self._key(path)
            if after is None:
                return
            if before is None:
                self._files[path] = (after, lines)  # a new file: all its lines are these
            elif known is not None and known[0] == before:
                self._files[path] = (after, known[1] + lines)
            # else: never counted, or changed by someone else meanwhile: the next rows() reads it

    def state(self, path: Path) -> tuple[int, int, int] | None:
        """The state of ``path`` (None: it does not exist), to give :meth:`appended` after an append."""
        return self._key(path)


def _count_lines(path: Path) -> int | None:
    try:
        with path.open("rb") as stream:
            return sum(1 for line in stream if line.strip())
    except OSError:
        return None


def quarantine_bytes(directory: Path) -> int:
    """Bytes of the quarantine files of a journal directory."""
    total = 0
    for path in Path(directory).glob(QUARANTINE_GLOB):
        try:
            total += path.stat().st_size
        except OSError:
            continue
    return total


def quarantine_path(source: Path) -> Path:
    """The quarantine file of a journal (a quarantine file is its own)."""
    name = source.name if source.name.startswith(QUARANTINE_PREFIX) else f"{QUARANTINE_PREFIX}{source.name}"
    return source.parent / name


def quarantined_offsets(path: Path) -> set[tuple[str, int]]:
    """``(journal file, byte offset)`` of each unreadable line a quarantine file already holds."""
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
