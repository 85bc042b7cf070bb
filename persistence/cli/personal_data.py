"""The personal-data commands: ``erase`` (erasure with tombstones), ``purge`` (retention), ``reads`` (the read log)."""
from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from attrition.schema import MAX_ID
from persistence.database.columns import utcnow
from persistence.database.engine import make_engine
from persistence.personal_data.erasure import ERASED_BY_LENGTH, erase_employees, settle_time_s
from persistence.personal_data.reads import reads_of_employee
from persistence.personal_data.retention import (AI_ACT_MINIMUM_DAYS, DEFAULT_BATCH_ROWS, DEFAULT_PAUSE_S,
                                                 purge_traces, retention_cutoff)
from settings import settings


def add_erase_command(commands: argparse._SubParsersAction) -> None:
    """Declare ``python -m persistence erase``."""
    erase = commands.add_parser("erase", help="erase employees' data everywhere (traces, employee row, read log, "
                                              "journals, quarantine) and leave a tombstone")
    erase.add_argument("--employee", type=int, nargs="+", default=[], metavar="N", help="employee id(s)")
    erase.add_argument("--employees-file", type=Path, metavar="FILE",
                       help="a file of employee ids, one a line (blank lines and # comments ignored)")
    erase.add_argument("--by", default=None, help="who erases, for the tombstone (default: the OS user)")
    erase.add_argument("--settle-s", type=float, default=None,
                       help="wait before the second sweep of late traces (default: the longest statement a write "
                            f"may run, FUTURISYS_STATEMENT_TIMEOUT_MS, plus a margin: now {settle_time_s():g})")


def _ids_of(arguments: argparse.Namespace) -> list[int]:
    """The employee ids asked, checked; raises ValueError naming the faulty entry's place, not its value."""
    ids = list(arguments.employee)
    if arguments.employees_file is not None:
        text = Path(arguments.employees_file).read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), start=1):
            entry = line.split("#", 1)[0].strip()
            if not entry:
                continue
            if not entry.isdigit():
                raise ValueError(f"{arguments.employees_file}:{number}: not an employee id (digits only)")
            ids.append(int(entry))
    for employee_id in ids:
        if not 0 <= employee_id <= MAX_ID:
            raise ValueError(f"employee ids go from 0 to {MAX_ID}")
    if not ids:
        raise ValueError("no employee to erase: give --employee N or --employees-file FILE")
    return ids


def run_erase(arguments: argparse.Namespace, url: str) -> int:
    """Run ``erase`` on the migrated database at ``url`` and the state directory of ``settings``.

    Prints what was removed; returns the exit code (2: bad arguments).
    """
    try:
        ids = _ids_of(arguments)
    except (ValueError, OSError) as exc:
        print(f"error: erase: {exc}", file=sys.stderr)
        return 2
    erased_by = (arguments.by or getpass.getuser())[:ERASED_BY_LENGTH]
    engine = make_engine(url)
    try:
        erasures, scrub = erase_employees(engine, ids, erased_by, settings.state_dir, settle_s=arguments.settle_s)
    finally:
        engine.dispose()
    for erasure in erasures:
        print(erasure.line())
    for line in scrub.lines():
        print(line)
    return 0


def add_purge_command(commands: argparse._SubParsersAction) -> None:
    """Declare ``python -m persistence purge``."""
    purge = commands.add_parser("purge", help="delete traces older than the retention period, in batches")
    purge.add_argument("--older-than-days", type=int, default=None, metavar="N",
                       help="delete traces received more than N days ago (default: FUTURISYS_TRACE_RETENTION_DAYS)")
    purge.add_argument("--batch-rows", type=int, default=DEFAULT_BATCH_ROWS, metavar="ROWS",
                       help=f"traces deleted per transaction (default {DEFAULT_BATCH_ROWS})")
    purge.add_argument("--pause-ms", type=float, default=DEFAULT_PAUSE_S * 1000,
                       help=f"pause between batches (default {DEFAULT_PAUSE_S * 1000:g})")


def refusal(arguments: argparse.Namespace) -> str | None:
    """Why ``purge`` must not run with these arguments (checked before the database is touched), or None."""
    days = arguments.older_than_days
    if days is None and settings.trace_retention_days is None:
        return ("nothing to do: no retention period is set (FUTURISYS_TRACE_RETENTION_DAYS is unset, so every "
                "trace is kept) and no --older-than-days N was given")
    if days is not None and days < 1:
        return "--older-than-days must be at least 1"
    if arguments.batch_rows < 1 or arguments.pause_ms < 0:
        return "--batch-rows must be at least 1 and --pause-ms at least 0"
    return None


def run_purge(arguments: argparse.Namespace, url: str) -> int:
    """Run ``purge`` on the migrated database at ``url``; print what was deleted; return the exit code."""
    cutoff = retention_cutoff(arguments.older_than_days)
    assert cutoff is not None  # refusal() was asked first
    days = (utcnow() - cutoff).days
    if days < AI_ACT_MINIMUM_DAYS:
        print(f"warning: a retention of {days} days is shorter than the six months the EU AI Act (Art. 26(6)) "
              "asks deployers of high-risk systems to keep their logs", file=sys.stderr)
    engine = make_engine(url)
    try:
        purge = purge_traces(engine, cutoff, arguments.batch_rows, arguments.pause_ms / 1000)
    finally:
        engine.dispose()
    print(f"purged {purge.deleted} trace(s) received before {cutoff.isoformat()} in {purge.batches} batch(es) "
          f"of at most {arguments.batch_rows}, {purge.seconds:.1f} s; {purge.outcomes} outcome row(s) recorded "
          "before it")
    return 0


def add_reads_command(commands: argparse._SubParsersAction) -> None:
    """Declare ``python -m persistence reads``."""
    reads = commands.add_parser("reads", help="who read an employee's traces, and when (the read log)")
    reads.add_argument("--employee", type=int, required=True, metavar="N", help="the employee id")


def run_reads(arguments: argparse.Namespace, url: str) -> int:
    """Print who read an employee's traces, one read per line; return the exit code."""
    engine = make_engine(url)
    try:
        reads = reads_of_employee(engine, arguments.employee)
    finally:
        engine.dispose()
    if not reads:
        print(f"no read of employee {arguments.employee}'s traces is recorded")
    for read in reads:
        what = f"request {read['request_id']}" if read["request_id"] else read["how"]
        print(f"{read['read_at']}  key={read['key_id'] or '(none: loopback, no keys)'}  "
              f"reader={read['reader'] or '-'}  {read['route']}  {what}  "
              f"rows={read['rows']}  parameters={read['parameters']}")
    return 0
