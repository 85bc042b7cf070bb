"""Command line of the trace database.

``python -m persistence migrate``              bring the database to the latest schema
``python -m persistence import-dataset DIR``   migrate, then import (or update) the employees of the extracts in DIR

Both use ``settings.resolved_database_url`` (``DATABASE_URL``, or the embedded SQLite file).
Exit codes: 0 done, 1 database failure, 2 bad arguments or malformed extracts.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import sqlalchemy as sa

EXIT_DATABASE = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m persistence", description="The trace database.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="migrate the database to the latest schema (alembic upgrade head)")
    importing = commands.add_parser("import-dataset", help="import the employees of the HR extracts")
    importing.add_argument("directory", type=Path,
                           help="directory holding the three HR extracts (extrait_*.csv)")
    importing.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _import_dataset(url: str, shown: str, directory: Path, quiet: bool) -> int:
    # Imported here: pandas costs every worker's `migrate` call a third of a second for nothing.
    from attrition.extracts import ExtractError
    from persistence.database import make_engine
    from persistence.dataset import import_employees

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


def main(argv: list[str] | None = None) -> int:
    """Run one command; return the process exit code."""
    arguments = _parser().parse_args(argv)
    from persistence.migrate import upgrade
    from settings import settings

    url = settings.resolved_database_url
    shown = sa.engine.make_url(url).render_as_string(hide_password=True)
    try:
        revision = upgrade(url)
        print(f"{shown}: schema at revision {revision}", file=sys.stderr)
        if arguments.command == "import-dataset":
            return _import_dataset(url, shown, arguments.directory, quiet=arguments.quiet)
    except sa.exc.SQLAlchemyError as exc:
        print(f"error: database {shown}: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return EXIT_DATABASE
    return 0


if __name__ == "__main__":
    sys.exit(main())
