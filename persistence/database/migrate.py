"""Bring the trace database to the latest schema (``alembic upgrade head``), safely from many processes."""
from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy.engine import URL, Engine

from persistence.database.engine import make_engine, normalize_url

PACKAGE_DIR = Path(__file__).resolve().parent
ALEMBIC_INI = PACKAGE_DIR / "alembic.ini"
MIGRATIONS_DIR = PACKAGE_DIR / "migrations"
LOCK_NAME = "migrate.lock"

# Alembic's `context` is a module-level proxy: two threads of one process must not migrate at once.
_in_process = threading.Lock()


def alembic_config() -> Config:
    """The Alembic configuration of the trace database (scripts in persistence/database/migrations)."""
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest migration revision."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str | URL, lock_dir: Path | None = None) -> str:
    """Migrate the database at ``url`` to the newest revision and return that revision.

    Every worker process calls this at start: a file lock in ``lock_dir``
    (default ``settings.state_dir``) serialises the processes of this host,
    and on PostgreSQL an advisory lock taken inside the migration transaction
    serialises hosts. A database already at head is left untouched.

    A migration may run long (no statement timeout), but it waits for a lock
    no longer than ``settings.lock_timeout_ms``: a migration queued behind a
    long transaction would otherwise hold every trace write queued behind it.
    It then fails, and the trace writer retries at its next probe.
    """
    if lock_dir is None:
        from settings import settings

        lock_dir = settings.state_dir
    lock_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(normalize_url(url), statement_timeout_ms=0)
    try:
        with _in_process, FileLock(str(lock_dir / LOCK_NAME), thread_local=False):
            config = alembic_config()
            with engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
            return current_revision(engine) or ""
    finally:
        engine.dispose()
