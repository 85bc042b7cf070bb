"""Engines for the trace database: PostgreSQL (psycopg 3) or an embedded SQLite file."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any, Literal

import psycopg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

SQLITE_BUSY_TIMEOUT_MS = 5_000
"""How long a SQLite writer waits for another process's write lock before giving up."""

POSTGRES_CONNECT_TIMEOUT_S = 5
"""Bounded, so an unreachable host sends traces to the journal instead of hanging requests."""

KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT = 10, 5, 3
"""TCP keepalives: a peer gone silent (no reset) is detected in about 25 s even on an idle connection."""

REJECTED_SQLSTATE_CLASSES = ("22", "23")
"""Data exception and integrity violation: the only refusals that concern a row's own content."""

Verdict = Literal["unavailable", "rejected"]


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


def database_identity(url: str | URL) -> str:
    """The database a URL names, without driver or credentials: ``postgresql://host:port/database``.

    SQLite: ``sqlite:///<absolute path>`` (``sqlite://:memory:`` in memory).
    Two URLs that reach the same database the same way have the same identity,
    whoever connects and whatever the driver.
    """
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if is_sqlite_memory(parsed):
            return "sqlite://:memory:"
        return f"sqlite:///{Path(parsed.database).expanduser().resolve()}"
    port = parsed.port or (5432 if backend == "postgresql" else "")
    return f"{backend}://{(parsed.host or 'localhost').lower()}:{port}/{parsed.database or ''}"


def database_fingerprint(url: str | URL) -> str:
    """A short stable name of the database ``url`` names (sha256 of :func:`database_identity`, 16 hex digits).

    Recorded with every journal, so that a journal is only ever replayed into
    the database it was written for.
    """
    import hashlib

    return hashlib.sha256(database_identity(url).encode()).hexdigest()[:16]


def is_sqlite_memory(url: URL) -> bool:
    """True for an in-memory SQLite database (one connection shared by every thread)."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def postgres_session_options(statement_timeout_ms: int, lock_timeout_ms: int) -> str:
    """The libpq ``options`` string of a service session: bounded statements and lock waits, durable commits.

    ``synchronous_commit = on`` whatever the server's default: a commit (or a
    replay, after which the journal is deleted) must be on disk when it returns.
    """
    return (f"-c synchronous_commit=on -c statement_timeout={int(statement_timeout_ms)} "
            f"-c lock_timeout={int(lock_timeout_ms)}")


def postgres_connect_args(statement_timeout_ms: int | None = None, lock_timeout_ms: int | None = None,
                          tcp_user_timeout_ms: int | None = None) -> dict[str, Any]:
    """libpq parameters of every service connection; unset values come from ``settings``.

    A connect timeout, TCP keepalives and ``tcp_user_timeout`` (a network
    path that drops packets without a reset fails the connection instead of
    hanging it), and :func:`postgres_session_options`.
    """
    from settings import settings

    return {
        "connect_timeout": POSTGRES_CONNECT_TIMEOUT_S,
        "keepalives": 1, "keepalives_idle": KEEPALIVE_IDLE_S, "keepalives_interval": KEEPALIVE_INTERVAL_S,
        "keepalives_count": KEEPALIVE_COUNT,
        "tcp_user_timeout": settings.tcp_user_timeout_ms if tcp_user_timeout_ms is None else tcp_user_timeout_ms,
        "options": postgres_session_options(
            settings.statement_timeout_ms if statement_timeout_ms is None else statement_timeout_ms,
            settings.lock_timeout_ms if lock_timeout_ms is None else lock_timeout_ms),
    }


def make_engine(url: str | URL, *, statement_timeout_ms: int | None = None, lock_timeout_ms: int | None = None,
                **options: Any) -> Engine:
    """An engine for ``url``, tuned for the trace workload.

    SQLite: the parent directory of the file is created; every connection runs
    in WAL mode (readers such as the dashboard do not block the writer) with a
    busy timeout (several worker processes share the file), ``synchronous =
    FULL`` and enforced foreign keys. PostgreSQL: connections are checked
    before use (``pool_pre_ping``: a restarted server leaves dead connections
    in the pool), a modest pool (one per worker process), and the bounded,
    durable session of :func:`postgres_connect_args` (``statement_timeout_ms``
    and ``lock_timeout_ms`` override the settings). ``options`` are passed on
    to :func:`sqlalchemy.create_engine`.
    """
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    # A failed statement's error must not quote the trace it carried: its inputs are personal data.
    options.setdefault("hide_parameters", True)
    if backend == "sqlite":
        if is_sqlite_memory(parsed):
            options.setdefault("poolclass", StaticPool)
            options.setdefault("connect_args", {"check_same_thread": False})
        else:
            create_private_file(Path(parsed.database).expanduser())
        engine = sa.create_engine(parsed, **options)
        event.listen(engine, "connect", _configure_sqlite_connection)
        return engine
    if backend == "postgresql":
        options.setdefault("pool_pre_ping", True)
        options.setdefault("pool_size", 4)
        options.setdefault("max_overflow", 4)
        connect_args = {**postgres_connect_args(statement_timeout_ms, lock_timeout_ms),
                        **options.pop("connect_args", {})}
        return sa.create_engine(parsed, connect_args=connect_args, **options)
    raise ValueError(f"unsupported database backend {backend!r} in {parsed.render_as_string()}: "
                     "use postgresql+psycopg:// or sqlite:///")


PRIVATE_FILE_MODE = 0o600
"""Files holding traces (the SQLite database, journals, quarantine): readable by the service's user only."""


def create_private_file(path: Path) -> None:
    """Create ``path`` (and its folder) with mode 0600 if it does not exist yet; an existing file keeps its mode.

    SQLite creates its ``-wal``, ``-shm`` and ``-journal`` files with the
    database file's own permissions, so they are private too.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    except FileExistsError:
        return


def describe_failure(exc: BaseException) -> str:
    """What failed, for a log line or an error's reason, without any value the statement carried.

    A database's refusal of a row quotes it (PostgreSQL's ``DETAIL: Failing
    row contains (...)``, ``Key (request_id)=(...)``, ``invalid input syntax
    for type integer: "..."``): for a refusal (SQLSTATE classes 22 and 23),
    only the error's kind, SQLSTATE and the table, column and constraint it
    names are kept. Other database errors keep their primary message, which
    concerns the database (a timeout, a refused connection), not the row.
    """
    original: BaseException = exc
    if isinstance(exc, sa.exc.StatementError) and exc.orig is not None:
        original = exc.orig
    kind = type(original).__name__
    if isinstance(original, psycopg.Error):
        state, diag = original.sqlstate, original.diag
        if state is None:
            return f"{kind}: {_first_line(original)}"
        if state[:2] in REJECTED_SQLSTATE_CLASSES:
            names = ", ".join(f"{what} {name}" for what, name in (
                ("table", diag.table_name), ("column", diag.column_name), ("constraint", diag.constraint_name))
                if name)
            return f"{kind} (SQLSTATE {state}{'; ' + names if names else ''})"
        return f"{kind} (SQLSTATE {state}): {diag.message_primary or ''}"
    if isinstance(original, sqlite3.Error):
        return f"{kind}: {_first_line(original)}"  # SQLite names the constraint or the parameter, never a value
    if isinstance(original, (TypeError, ValueError)) and not isinstance(original, OSError):
        return f"{kind} (a value the driver cannot send)"
    return f"{kind}: {_first_line(original)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _configure_sqlite_connection(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Set, not assumed (a build may default to NORMAL): a "committed" trace must survive a power cut.
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


def classify_failure(exc: BaseException) -> Verdict:
    """``"rejected"`` when ``exc`` is the database refusing a row for its own content, else ``"unavailable"``.

    Only data exceptions and integrity violations (SQLSTATE classes 22 and
    23; SQLite's integrity and data errors) and values that cannot even be
    sent (a type the driver cannot bind or serialise) concern the row.
    Everything else concerns the whole database, whatever its exception
    class: down or unreachable (08xxx), read-only after a failover (25006),
    a revoked privilege (42501), a missing table (42P01), too many
    connections (53300), a full disk (53100), an admin shutdown (57P01), a
    statement or lock timeout (57014, 55P03), a deadline missed. Those send
    traces to the journal, and a replay keeps them there until the database
    takes them: never a rejection.
    """
    original: BaseException = exc
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated:
            return "unavailable"
        original = exc.orig
    elif isinstance(exc, sa.exc.StatementError) and exc.orig is not None:
        original = exc.orig  # a bind parameter the column's type could not process
    if isinstance(original, psycopg.Error):
        state = original.sqlstate
        if state is not None:
            return "rejected" if state[:2] in REJECTED_SQLSTATE_CLASSES else "unavailable"
        # Client-side refusals of a value (say, a NUL character in text) carry no SQLSTATE.
        return "rejected" if isinstance(original, (psycopg.DataError, psycopg.IntegrityError)) else "unavailable"
    if isinstance(original, sqlite3.Error):
        if isinstance(original, (sqlite3.IntegrityError, sqlite3.DataError)):
            return "rejected"
        if isinstance(original, (sqlite3.InterfaceError, sqlite3.ProgrammingError)) and "binding" in str(original):
            return "rejected"
        return "unavailable"
    if isinstance(original, (TypeError, ValueError)) and not isinstance(original, OSError):
        return "rejected"  # the value cannot be serialised for the database (e.g. a set in the inputs)
    return "unavailable"


def is_missing_table(exc: BaseException) -> bool:
    """True when ``exc`` says a table is missing (PostgreSQL 42P01, SQLite "no such table"): migrate again."""
    original = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    if isinstance(original, psycopg.Error):
        return original.sqlstate == "42P01"
    return isinstance(original, sqlite3.OperationalError) and str(original).startswith("no such table")


def is_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` means the database cannot take writes now (see :func:`classify_failure`)."""
    return classify_failure(exc) == "unavailable"


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
