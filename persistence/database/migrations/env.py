"""Alembic environment: migrates the trace database described by persistence.database.schema.

Programmatic callers (:func:`persistence.database.migrate.upgrade`) pass an open
connection in ``config.attributes["connection"]``; the ``alembic`` command
line falls back to ``settings.resolved_database_url``.
"""
from __future__ import annotations

from logging.config import fileConfig
from typing import Any

import sqlalchemy as sa
from alembic import context

from persistence.database.schema import UTCDateTime, metadata

MIGRATION_LOCK_KEY = 0x46_75_74_75_72  # "Futur": one advisory lock id for every migrating process

config = context.config


def _render_item(kind: str, item: Any, autogen_context: Any) -> str | bool:
    """Render the schema's own types as plain SQLAlchemy ones, so revisions never import the app."""
    if kind == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _migrate(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: later migrations rebuild tables in batch mode.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Workers on other hosts may migrate the same database at the same moment; the
            # file lock of persistence.database.migrate only serialises the processes of one host.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the SQL of the migrations (``alembic upgrade --sql``) instead of running it."""
    from settings import settings

    context.configure(url=settings.resolved_database_url, target_metadata=metadata,
                      literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the given connection, or on a new one to the configured database."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    from persistence.database.engine import make_engine
    from settings import settings

    engine = make_engine(settings.resolved_database_url)
    try:
        with engine.begin() as new_connection:
            _migrate(new_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
