"""Engines for the trace database: PostgreSQL (psycopg 3) or an embedded SQLite file."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

SQLITE_BUSY_TIMEOUT_MS = 5_000
"""How long a SQLite writer waits for another process's write lock before giving up."""

POSTGRES_CONNECT_TIMEOUT_S = 5
"""Bounded, so an unreachable host sends traces to the journal instead of hanging requests."""


def normalize_url(url: str | URL) -> URL:
    """The URL with the psycopg 3 driver made explicit for PostgreSQL.

    Hosted databases hand out ``postgres://`` or ``postgresql://`` URLs, which
    SQLAlchemy would map to psycopg2 (not installed); the trace writer needs
    psycopg 3 for ``COPY``.
    """
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_sqlite_memory(url: URL) -> bool:
    """True for an in-memory SQLite database (one connection shared by every thread)."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def make_engine(url: str | URL, **options: Any) -> Engine:
    """An engine for ``url``, tuned for the trace workload.

    SQLite: the parent directory of the file is created; every connection runs
    in WAL mode (readers such as the dashboard do not block the writer) with a
    busy timeout (several worker processes share the file) and enforced
    foreign keys. PostgreSQL: connections are checked before use
    (``pool_pre_ping``: a restarted server leaves dead connections in the
    pool), a modest pool (one per worker process) and a connect timeout.
    ``options`` are passed on to :func:`sqlalchemy.create_engine`.
    """
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if is_sqlite_memory(parsed):
            options.setdefault("poolclass", StaticPool)
            options.setdefault("connect_args", {"check_same_thread": False})
        else:
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, **options)
        event.listen(engine, "connect", _configure_sqlite_connection)
        return engine
    if backend == "postgresql":
        options.setdefault("pool_pre_ping", True)
        options.setdefault("pool_size", 4)
        options.setdefault("max_overflow", 4)
        connect_args = dict(options.pop("connect_args", {}))
        connect_args.setdefault("connect_timeout", POSTGRES_CONNECT_TIMEOUT_S)
        return sa.create_engine(parsed, connect_args=connect_args, **options)
    raise ValueError(f"unsupported database backend {backend!r} in {parsed.render_as_string()}: "
                     "use postgresql+psycopg:// or sqlite:///")


def _configure_sqlite_connection(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # synchronous stays FULL (the default): a "committed" trace must survive a power cut.
    finally:
        cursor.close()


def is_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` means the database cannot take writes now (down, refused, locked, full).

    Those failures send traces to the local journal. Anything else (a
    constraint violation, a value the column rejects) is a fault of the trace
    itself, and journaling it would only defer the same failure.
    """
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    unreachable = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError,
                   psycopg.OperationalError, psycopg.InterfaceError, sqlite3.OperationalError,
                   ConnectionError, TimeoutError)
    return isinstance(exc, unreachable)


def ping(engine: Engine) -> bool:
    """True when the database answers ``SELECT 1`` now."""
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return True
    except Exception as exc:  # reachability probe: any failure means "not now"
        if is_unreachable(exc):
            return False
        raise
