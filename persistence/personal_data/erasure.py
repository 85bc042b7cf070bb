"""Erasure of an employee's data, everywhere the service keeps it: the answer to a data subject's erasure request.

``python -m persistence erase --employee N [N ...]`` (or ``--employees-file``)
removes, for each employee id:

- the traces tagged with the id (``prediction_traces.employee_id``);
- the ``employees`` row (the imported HR fields);
- their outcomes, corrections included (``outcomes.employee_id``);
- the read log's rows about them (``trace_reads.employee_id``) and the rows
  of reads of one of their traces by request id;
- their lines in the journals of dead instances and in quarantine files
  (every ``journal-*.jsonl`` and ``quarantine-*.jsonl`` under the state
  directory, whatever the layout of its journal directories, but only in the
  directories recorded for this database, ``database.json``, or recorded for
  none: another database's files on a shared volume are its own), whatever
  the encoding of the line (a trace, a line set aside as text or as base64,
  a line that is not even UTF-8);

then leaves a tombstone in ``employee_erasures``: the id, when, by whom, no
other data. A journal replay asks the tombstones first
(:func:`persistence.database.tombstones.without_erased`) and skips the
journaled traces of an erased employee received up to the erasure: the
journal of a running service (locked by its owner, so not rewritten here) can
never bring them back. A prediction made after the erasure is new processing
and is stored as usual.

The second sweep (see :func:`erase_employees`) waits until every write
that may have started before the tombstone's commit has ended: the longest
statement a replay or a group commit may run (``statement_timeout_ms``, the
writer's own deadline) plus a margin, not a fixed few seconds. The erasure's
time is the database's clock, the one clock every instance's traces meet.

Limits: a trace of inline fields never tagged with an id cannot be found by
id; backups and copies outside the database and the state directory are out
of reach. An import of extracts that still hold the employee skips them: the
import asks the tombstones too (:mod:`persistence.database.dataset`).
"""
from __future__ import annotations

import base64
import logging
import os
import re
import stat
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson
import sqlalchemy as sa
from filelock import FileLock, Timeout
from sqlalchemy.engine import Connection, Engine

from persistence.database.columns import utcnow
from persistence.database.engine import database_fingerprint
from persistence.database.schema import employee_erasures, employees, outcomes, prediction_traces, trace_reads
from persistence.trace.journal_format import (JOURNAL_GLOB, QUARANTINE_GLOB, QUARANTINE_PREFIX, UNREADABLE_KEY,
                                              read_database_record)
from persistence.trace.store import STATEMENT_MARGIN_MS
from settings import settings

log = logging.getLogger(__name__)

ERASED_BY_LENGTH = 200
SETTLE_MARGIN_S = 2.0
"""Added to the longest statement a write may run: connection set-up, the commit itself."""
EMPLOYEE_ID_FIELD = re.compile(rb'"employee_id"\s*:\s*(\d{1,19})')
"""An employee id in a line that does not parse as JSON (a torn or hand-edited line, bytes that are not UTF-8)."""


def settle_time_s() -> float:
    """How long the erasure waits before its second sweep: the longest write that may be in flight, and a margin.

    A replay inserts on the pooled connections (``statement_timeout_ms``), a
    group commit on the writer's own (its deadline plus a margin: see
    :mod:`persistence.trace.store`); a statement running when the tombstone
    commits ends, committed or cancelled by the server, within the longer
    of the two. Without a statement timeout (0), the commit deadline's bound.
    """
    longest_ms = max(settings.statement_timeout_ms, settings.commit_deadline_ms + STATEMENT_MARGIN_MS)
    return longest_ms / 1000 + SETTLE_MARGIN_S


@dataclass
class Erasure:
    """What one employee's erasure removed, and its tombstone."""

    employee_id: int
    erasure_id: str
    erased_at: datetime
    erased_by: str
    traces: int = 0
    employee_rows: int = 0
    read_log_rows: int = 0
    journal_lines: int = 0
    quarantine_lines: int = 0
    outcome_rows: int = 0

    def line(self) -> str:
        """One line of the command's report."""
        return (f"employee {self.employee_id}: removed {self.traces} trace(s), {self.employee_rows} employee row(s), "
                f"{self.read_log_rows} read-log row(s), {self.journal_lines} journal line(s), "
                f"{self.quarantine_lines} quarantine line(s); tombstone {self.erasure_id} at "
                f"{self.erased_at.isoformat()} by {self.erased_by}; {self.outcome_rows} outcome row(s)")


@dataclass
class FileScrub:
    """What the scan of the journal and quarantine files did."""

    journals_scanned: int = 0
    journals_rewritten: int = 0
    journals_live: list[Path] = field(default_factory=list)  # locked by a running process: left to the tombstone
    quarantine_scanned: int = 0
    quarantine_rewritten: int = 0
    quarantine_busy: list[Path] = field(default_factory=list)  # its journal is being replayed right now
    journal_lines: Counter[int] = field(default_factory=Counter)
    quarantine_lines: Counter[int] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        """The command's report of the files."""
        report = [f"journals: {self.journals_scanned} scanned, {self.journals_rewritten} rewritten"
                  + (f"; {len(self.journals_live)} locked by a running process, not rewritten (the tombstone keeps "
                     "their lines of these employees out at replay)" if self.journals_live else ""),
                  f"quarantine files: {self.quarantine_scanned} scanned, {self.quarantine_rewritten} rewritten"
                  + (f"; {len(self.quarantine_busy)} being replayed, not rewritten: run erase again"
                     if self.quarantine_busy else "")]
        return report


def _delete_from_database(connection: Connection, employee_id: int, received_until: datetime | None = None) -> tuple[
        int, int, int, int]:
    """Delete the employee's traces, read-log rows, outcomes and employee row; return the four counts.

    With ``received_until``, only traces received up to then (and the reads of
    those), and the employee row is left alone; every outcome goes either way
    (one recorded while the erasure settles is theirs too).
    """
    theirs = prediction_traces.c.employee_id == employee_id
    if received_until is not None:
        theirs = sa.and_(theirs, prediction_traces.c.received_at <= received_until)
    their_requests = sa.select(prediction_traces.c.request_id).where(theirs)
    about_them = trace_reads.c.request_id.in_(their_requests)
    if received_until is None:
        about_them = sa.or_(trace_reads.c.employee_id == employee_id, about_them)
    reads = connection.execute(sa.delete(trace_reads).where(about_them)).rowcount
    traces = connection.execute(sa.delete(prediction_traces).where(theirs)).rowcount
    known = connection.execute(sa.delete(outcomes).where(outcomes.c.employee_id == employee_id)).rowcount
    rows = 0
    if received_until is None:
        rows = connection.execute(sa.delete(employees).where(employees.c.id_employee == employee_id)).rowcount
    return traces, reads, known, rows


def _employee_of(line: bytes | str) -> int | None:
    """The employee id of a journal line, whatever its encoding; None when it names none.

    A trace line; a quarantine entry holding a journal line as text or, when
    it was not UTF-8, as base64; a line that is not JSON at all (bytes that
    are not UTF-8, a torn or hand-edited line), searched for its
    ``"employee_id": N`` field: each is still the employee's data.
    """
    raw = line.encode("utf-8", errors="surrogateescape") if isinstance(line, str) else line
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        found = EMPLOYEE_ID_FIELD.search(raw)
        return int(found.group(1)) if found else None
    if not isinstance(document, dict):
        return None
    value = document.get("employee_id")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    # A line that did not read as a trace (another version's, say) is quarantined wrapped with where it came
    # from, kept as written: as text, or as base64 when it was not UTF-8. It is still theirs.
    entry = document.get(UNREADABLE_KEY)
    if isinstance(entry, dict):
        if isinstance(entry.get("text"), str):
            return _employee_of(entry["text"])
        if isinstance(entry.get("base64"), str):
            try:
                return _employee_of(base64.b64decode(entry["base64"], validate=True))
            except ValueError:
                return None
    return None


def _rewrite_without(path: Path, ids: frozenset[int]) -> Counter[int]:
    """Drop the lines of ``ids`` from a journal-format file (atomically replaced, or removed when empty)."""
    removed: Counter[int] = Counter()
    kept: list[bytes] = []
    with path.open("rb") as stream:  # bytes: a line that is not UTF-8 is kept exactly as written
        for line in stream:
            employee_id = _employee_of(line)
            if employee_id in ids:
                removed[employee_id] += 1
            else:
                kept.append(line)
    if not removed:
        return removed
    if any(line.strip() for line in kept):
        replacement = path.with_name(f".{path.name}.erasure.tmp")
        mode = stat.S_IMODE(path.stat().st_mode)
        descriptor = os.open(replacement, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(descriptor, "wb") as stream:
            stream.writelines(kept)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(replacement, path)
    else:
        path.unlink()
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return removed


def _locked(journal: Path) -> FileLock:
    # The journal's own lock convention (persistence.trace.journal): held by its writer while it lives, and by a
    # replayer while it replays the journal or appends to that journal's quarantine file.
    return FileLock(f"{journal}.lock", timeout=0, thread_local=False, fallback_to_soft=False)


def _scrub_under_lock(path: Path, journal: Path, ids: frozenset[int]) -> Counter[int] | None:
    """Rewrite ``path`` holding ``journal``'s lock; None when the lock is held by someone else."""
    lock = _locked(journal)
    try:
        lock.acquire()
    except Timeout:
        return None
    try:
        removed = _rewrite_without(path, ids) if path.exists() else Counter()
        if not journal.exists():
            # Locking made the lock file: remove it while held, as the journal does, so none is left behind.
            Path(f"{journal}.lock").unlink(missing_ok=True)
        return removed
    finally:
        lock.release()


def _of_this_database(path: Path, fingerprint: str | None, verdicts: dict[Path, bool]) -> bool:
    """True when the journal directory of ``path`` is recorded for ``fingerprint``'s database, or for none."""
    directory = path.parent
    if directory not in verdicts:
        record = read_database_record(directory)
        # No record: an earlier version's directory, or files put there by hand; the erasure takes them as
        # this database's (as `replay-journal` does), for an erased employee's data must not survive by default.
        verdicts[directory] = fingerprint is None or record is None or record["fingerprint"] == fingerprint
    return verdicts[directory]


def scrub_files(state_dir: Path, ids: Iterable[int], fingerprint: str | None = None) -> FileScrub:
    """Remove the lines of ``ids`` from every journal of a dead process and every quarantine file under ``state_dir``.

    With ``fingerprint`` (:func:`persistence.database.engine.database_fingerprint`),
    only the files of directories recorded for that database, or recorded for
    none: instances of other databases sharing the state directory keep
    theirs. A journal whose lock is held belongs to a running process: it is
    left as it is (its replay asks the tombstones first). A quarantine file
    whose journal is being replayed right now is left too, and reported.
    """
    wanted = frozenset(ids)
    scrub = FileScrub()
    state_dir = Path(state_dir)
    if not state_dir.is_dir():
        return scrub
    verdicts: dict[Path, bool] = {}
    journals = [path for path in sorted(state_dir.rglob(JOURNAL_GLOB))
                if _of_this_database(path, fingerprint, verdicts)]
    quarantines = [path for path in sorted(state_dir.rglob(QUARANTINE_GLOB))
                   if _of_this_database(path, fingerprint, verdicts)]
    for path in journals:
        scrub.journals_scanned += 1
        removed = _scrub_under_lock(path, path, wanted)
        if removed is None:
            scrub.journals_live.append(path)
        elif removed:
            scrub.journals_rewritten += 1
            scrub.journal_lines.update(removed)
    for path in quarantines:
        scrub.quarantine_scanned += 1
        removed = _scrub_under_lock(path, path.with_name(path.name.removeprefix(QUARANTINE_PREFIX)), wanted)
        if removed is None:
            scrub.quarantine_busy.append(path)
        elif removed:
            scrub.quarantine_rewritten += 1
            scrub.quarantine_lines.update(removed)
    return scrub


def _database_now(connection: Connection) -> datetime:
    """The database's clock (PostgreSQL), the one every instance's writes meet; this host's for SQLite (one host)."""
    if connection.dialect.name == "postgresql":
        return connection.execute(sa.text("SELECT clock_timestamp()")).scalar_one()
    return utcnow()


def erase_employees(engine: Engine, employee_ids: Sequence[int], erased_by: str, state_dir: Path,
                    settle_s: float | None = None) -> tuple[list[Erasure], FileScrub]:
    """Erase each employee's data in the database and the state directory's files; leave a tombstone each.

    Per employee, one transaction deletes the traces, read-log rows and
    employee row, and writes the tombstone: from its commit on, no replay
    inserts a journaled trace of theirs received before it. Then the files
    of this database's journal directories are scrubbed. After ``settle_s``
    (default :func:`settle_time_s`: every write in flight at the commit has
    ended by then) a second sweep deletes any trace of theirs received before
    that sweep that landed meanwhile (a replay that read the tombstones just
    before the commit, a commit of a request in flight at the erasure), and
    moves the tombstone's time to the sweep's: the erasure ends there, and an
    instance whose clock runs behind or ahead of the database's by less than
    the settle time cannot bring back a trace it received before.
    """
    settle_s = settle_time_s() if settle_s is None else settle_s
    erasures: list[Erasure] = []
    for employee_id in dict.fromkeys(employee_ids):
        with engine.begin() as connection:
            traces, reads, known, rows = _delete_from_database(connection, employee_id)
            erasure = Erasure(employee_id, str(uuid.uuid4()), _database_now(connection), erased_by, traces=traces,
                              employee_rows=rows, read_log_rows=reads, outcome_rows=known)
            connection.execute(sa.insert(employee_erasures).values(
                erasure_id=erasure.erasure_id, employee_id=employee_id, erased_at=erasure.erased_at,
                erased_by=erased_by))
        erasures.append(erasure)
    scrub = scrub_files(state_dir, [erasure.employee_id for erasure in erasures], database_fingerprint(engine.url))
    if settle_s > 0:
        time.sleep(settle_s)
    for erasure in erasures:
        with engine.begin() as connection:
            ended_at = _database_now(connection)
            traces, reads, known, _ = _delete_from_database(connection, erasure.employee_id, ended_at)
            connection.execute(sa.update(employee_erasures).where(
                employee_erasures.c.erasure_id == erasure.erasure_id).values(erased_at=ended_at))
        erasure.erased_at = ended_at
        erasure.traces += traces
        erasure.read_log_rows += reads
        erasure.outcome_rows += known
        erasure.journal_lines = scrub.journal_lines[erasure.employee_id]
        erasure.quarantine_lines = scrub.quarantine_lines[erasure.employee_id]
    return erasures, scrub
