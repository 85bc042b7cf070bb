"""Command line of the trace database.

``python -m persistence migrate``              bring the database to the latest schema
``python -m persistence import-dataset DIR``   migrate, then import (or update) the employees of the extracts in DIR
``python -m persistence record-outcomes FILE``  migrate, then record the outcomes of a CSV file
                                               (id_employee,a_quitte_l_entreprise[,known_at]), all or none
``python -m persistence replay-quarantine FILE``  migrate, then insert the traces of a quarantine file (once the
                                               cause of their refusal is fixed); what is still refused stays in FILE
``python -m persistence replay-journal DIR [--force-database]``  migrate, then replay the journals of a journal
                                               directory whose processes are gone (a scaled-down pod's, say); only
                                               into the database DIR is recorded for, unless --force-database
``python -m persistence erase --employee N ...``  migrate, then erase employees' data everywhere, leave tombstones
``python -m persistence purge [--older-than-days N]``  migrate, then delete traces older than the retention period
``python -m persistence reads --employee N``     migrate, then print who read employee N's traces, and when

Every command uses ``settings.resolved_database_url`` (``DATABASE_URL``, or the embedded SQLite file).
Exit codes: 0 done, 1 database failure, 2 bad arguments or malformed extracts, 3 traces still refused. A database
failure is printed as its class and what to do (:func:`failure_advice`), never the driver's message.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import psycopg
import sqlalchemy as sa

EXIT_DATABASE = 1
EXIT_USAGE = 2
EXIT_STILL_REFUSED = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m persistence", description="The trace database.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="migrate the database to the latest schema (alembic upgrade head)")
    importing = commands.add_parser("import-dataset", help="import the employees of the HR extracts")
    importing.add_argument("directory", type=Path,
                           help="directory holding the three HR extracts (extrait_*.csv)")
    importing.add_argument("--quiet", action="store_true", help="no progress bar")
    recording = commands.add_parser("record-outcomes", help="record outcomes (who left) from a CSV file, all or none")
    recording.add_argument("file", type=Path, help="CSV: id_employee,a_quitte_l_entreprise[,known_at] (Oui/Non, "
                                                   "ISO dates; known_at empty or absent: today)")
    replaying = commands.add_parser("replay-quarantine",
                                    help="insert the traces of a quarantine file (quarantine-*.jsonl)")
    replaying.add_argument("file", type=Path, help="a quarantine file of the journal directory")
    journal = commands.add_parser("replay-journal", help="replay the journals of a journal directory by hand")
    journal.add_argument("directory", type=Path, help="an instance's journal directory (STATE_DIR/journal/<id>)")
    journal.add_argument("--force-database", action="store_true",
                         help="replay even if DIR is recorded for another database")
    from persistence.cli.personal_data import add_erase_command, add_purge_command, add_reads_command

    add_erase_command(commands)
    add_purge_command(commands)
    add_reads_command(commands)
    return parser


def _replay_quarantine(url: str, shown: str, path: Path) -> int:
    from persistence.database.engine import make_engine
    from persistence.trace.replay import replay_quarantine
    from persistence.trace.store import make_trace_store

    if not path.is_file():
        print(f"error: {path}: no such file", file=sys.stderr)
        return EXIT_USAGE
    engine = make_engine(url)
    try:
        inserted, kept = replay_quarantine(make_trace_store(engine), path)
    finally:
        engine.dispose()
    print(f"{shown}: {inserted} trace(s) inserted from {path}; {kept} still refused"
          + (f", kept in {path}" if kept else ", file removed"), file=sys.stderr)
    return EXIT_STILL_REFUSED if kept else 0


def _replay_journal(url: str, shown: str, directory: Path, force_database: bool) -> int:
    from persistence.database.engine import database_fingerprint, make_engine
    from persistence.trace.replay import DatabaseMismatch, replay_directory
    from persistence.trace.store import make_trace_store

    if not directory.is_dir():
        print(f"error: {directory}: no such directory", file=sys.stderr)
        return EXIT_USAGE
    engine = make_engine(url)
    try:
        inserted, replayed, held = replay_directory(make_trace_store(engine), directory, database_fingerprint(url),
                                                    force_database=force_database)
    except DatabaseMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        engine.dispose()
    print(f"{shown}: {inserted} trace(s) inserted from {len(replayed)} journal(s) of {directory}"
          + (f"; {len(held)} journal(s) left to their live owner" if held else ""), file=sys.stderr)
    return 0


def _import_dataset(url: str, shown: str, directory: Path, quiet: bool) -> int:
    # Imported here: pandas costs every worker's `migrate` call a third of a second for nothing.
    from attrition.extracts import ExtractError
    from persistence.database.dataset import import_employees
    from persistence.database.engine import make_engine

    engine = make_engine(url)
    try:
        count = import_employees(engine, directory, progress=None if quiet else sys.stderr)
    except ExtractError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        engine.dispose()
    print(f"{shown}: {count} employees imported from {directory}", file=sys.stderr)
    return 0


def _record_outcomes(url: str, shown: str, path: Path) -> int:
    from attrition.errors import UnknownEmployees
    from persistence.database.engine import make_engine
    from persistence.database.outcomes import CSV_FILE, OutcomeFileError, read_outcomes_csv, record_outcomes

    try:
        rows, lines = read_outcomes_csv(path)
    except (OutcomeFileError, UnicodeDecodeError, FileNotFoundError) as exc:
        print(f"error: nothing recorded: {exc}", file=sys.stderr)
        return EXIT_USAGE
    engine = make_engine(url)
    try:
        count = record_outcomes(engine, rows, CSV_FILE, field_of=lambda index: f"{path}:{lines[index]}: id_employee")
    except UnknownEmployees as exc:
        print(f"error: nothing recorded: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        engine.dispose()
    print(f"{shown}: {count} outcome(s) recorded from {path}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one command; return the process exit code."""
    arguments = _parser().parse_args(argv)
    from persistence.cli.personal_data import refusal
    from persistence.database.migrate import upgrade
    from settings import settings

    if arguments.command == "purge" and (refused := refusal(arguments)) is not None:
        print(f"error: purge: {refused}", file=sys.stderr)
        return EXIT_USAGE
    url = settings.resolved_database_url
    shown = sa.engine.make_url(url).render_as_string(hide_password=True)
    try:
        revision = upgrade(url)
        print(f"{shown}: schema at revision {revision}", file=sys.stderr)
        if arguments.command == "import-dataset":
            return _import_dataset(url, shown, arguments.directory, quiet=arguments.quiet)
        if arguments.command == "record-outcomes":
            return _record_outcomes(url, shown, arguments.file)
        if arguments.command == "replay-quarantine":
            return _replay_quarantine(url, shown, arguments.file)
        if arguments.command == "replay-journal":
            return _replay_journal(url, shown, arguments.directory, arguments.force_database)
        if arguments.command == "erase":
            from persistence.cli.personal_data import run_erase

            return run_erase(arguments, url)
        if arguments.command == "purge":
            from persistence.cli.personal_data import run_purge

            return run_purge(arguments, url)
        if arguments.command == "reads":
            from persistence.cli.personal_data import run_reads

            return run_reads(arguments, url)
    except (sa.exc.SQLAlchemyError, psycopg.Error, OSError) as exc:
        print(f"error: database {shown}: {failure_advice(exc)}", file=sys.stderr)
        return EXIT_DATABASE
    return 0


def failure_advice(exc: BaseException) -> str:
    """The class of a command's failure and what to do about it, without the driver's message.

    A driver's message quotes values (PostgreSQL's ``DETAIL: Key (id)=(1234)
    already exists.``, a failing row): only the exception's class, the
    SQLSTATE and the table, column and constraint it names are printed.
    """
    from persistence.database.engine import classify_failure

    original: BaseException = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None else exc
    kind = type(original).__name__
    if isinstance(original, OSError) and not isinstance(exc, sa.exc.SQLAlchemyError):
        # A file of the state directory or a socket: its path and the system's reason carry no row.
        return (f"{kind}: {original.strerror or original} ({original.filename or 'no file'}): check that the path "
                "exists and is writable, then run the command again")
    state = getattr(original, "sqlstate", None)
    named = ""
    if isinstance(original, psycopg.Error):
        diag = original.diag
        named = ", ".join(f"{what} {name}" for what, name in (
            ("table", diag.table_name), ("column", diag.column_name), ("constraint", diag.constraint_name)) if name)
    where = f" (SQLSTATE {state}{'; ' + named if named else ''})" if state else (f" ({named})" if named else "")
    if classify_failure(exc) == "rejected":
        return (f"{kind}{where}: the database refused a row for its content (a duplicate key or a value outside "
                "its column's rules); nothing of this command's transaction was kept. Fix the data it writes (or "
                "what is already stored), then run the command again")
    return (f"{kind}{where}: the database is unreachable, read-only, or refuses this role; check DATABASE_URL, "
            "that the server runs and takes writes, and the role's privileges, then run the command again")
