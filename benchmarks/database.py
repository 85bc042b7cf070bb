"""The run's PostgreSQL database: a fresh one per run, row counts of the trace tables, checkpoints."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from benchmarks.common import BenchmarkError


@contextmanager
def fresh_database(admin_url: str, keep: bool = False) -> Iterator[str]:
    """Create an empty PostgreSQL database for the run; yields its URL, drops it afterwards unless ``keep``."""
    name = f"futurisys_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.SQLAlchemyError as exc:
        admin.dispose()
        raise BenchmarkError(f"cannot create a database through {admin_url}: {exc.__class__.__name__}: {exc}") from exc
    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        if keep:
            print(f"database kept: {url}")
        else:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def count_rows(engine: sa.Engine, table: str) -> int:
    """Rows of ``table`` now (0 while the table does not exist)."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table(table):
            return 0
        return int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def checkpoint(engine: sa.Engine) -> None:
    """Flush PostgreSQL's dirty pages now, so a checkpoint does not land in the middle of a measured run."""
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("CHECKPOINT"))
    except sa.exc.SQLAlchemyError:
        pass  # needs a superuser; only a source of variance when it fails
