"""Writing traces to the database: one statement for many traces, two strategies behind one interface.

PostgreSQL takes them with one ``COPY ... FROM STDIN`` per group (psycopg 3),
measured faster than a multi-row ``INSERT`` for group commits; SQLite with a
Core ``insert(table)`` and a list of rows (executemany). Journal replays use
``INSERT ... ON CONFLICT (request_id) DO NOTHING`` on both (on PostgreSQL from
a COPY-filled staging table), so a trace replayed twice, or already committed,
is stored once.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import orjson
import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from persistence.database.engine import classify_failure, postgres_connect_args
from persistence.database.schema import prediction_traces
from persistence.database.traces import TRACE_COLUMNS, Trace


class TraceStore(Protocol):
    """Where the trace writer commits traces."""

    engine: Engine

    def insert(self, traces: Sequence[Trace]) -> None:
        """Insert the traces in one transaction; fail on any duplicate."""

    def insert_missing(self, traces: Sequence[Trace]) -> int:
        """Insert, in one transaction, the traces whose request id is not stored yet; return how many."""


class ExecutemanyTraceStore:
    """Core ``insert(table)`` with a list of rows (SQLite, and any backend)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def insert(self, traces: Sequence[Trace]) -> None:
        """Insert the traces in one transaction; fail on any duplicate request id."""
        with self._session() as connection:
            connection.execute(sa.insert(prediction_traces), [trace.row() for trace in traces])

    def insert_missing(self, traces: Sequence[Trace]) -> int:
        """Insert, in one transaction, the traces whose request id is not stored yet; return how many."""
        if not traces:
            return 0
        dialect_insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        add = (dialect_insert(prediction_traces).on_conflict_do_nothing(index_elements=["request_id"])
               .returning(prediction_traces.c.request_id))
        with self._session() as connection:
            inserted = connection.execute(add, [trace.row() for trace in traces]).all()
        return len(inserted)

    @contextmanager
    def _session(self) -> Iterator[sa.Connection]:
        """A transaction on a pooled connection; after a whole-database failure the connection is discarded.

        A session made read-only (or otherwise refused) stays so until it is
        closed: a new one is needed to see the database change back.
        """
        with self.engine.connect() as connection:
            try:
                with connection.begin():
                    yield connection
            except Exception as exc:
                if classify_failure(exc) == "unavailable" and not connection.invalidated:
                    connection.invalidate()
                raise


STATEMENT_MARGIN_MS = 1000
"""The writer's statement_timeout past the commit deadline: the server ends what the writer stopped waiting for."""

_COLUMN_LIST = ", ".join(TRACE_COLUMNS)
_COPY = f"COPY {prediction_traces.name} ({_COLUMN_LIST}) FROM STDIN"
_STAGING = f"replay_{prediction_traces.name}"
_STAGE = (f"CREATE TEMPORARY TABLE {_STAGING} ON COMMIT DROP AS "
          f"SELECT {_COLUMN_LIST} FROM {prediction_traces.name} WITH NO DATA")
_COPY_STAGED = f"COPY {_STAGING} ({_COLUMN_LIST}) FROM STDIN"
_MOVE_STAGED = (f"INSERT INTO {prediction_traces.name} ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM {_STAGING} "
                "ON CONFLICT (request_id) DO NOTHING")
_INPUTS_POSITION = TRACE_COLUMNS.index("inputs")


def _copy_values(trace: Trace) -> list[Any]:
    values = [getattr(trace, name) for name in TRACE_COLUMNS]
    # COPY's text format takes the json column as JSON text (orjson: a tenth of json.dumps's cost).
    values[_INPUTS_POSITION] = orjson.dumps(values[_INPUTS_POSITION]).decode()
    return values


class CopyTraceStore:
    """PostgreSQL: ``COPY ... FROM STDIN`` with psycopg 3.

    A group commit is a single ``COPY`` in autocommit mode: one statement, so
    atomic on its own, and two round trips in all (``BEGIN`` and ``COMMIT``
    would add two more). The trace writer runs it on an asyncio connection
    it keeps (:meth:`insert_async`). Replays copy into a temporary staging
    table, then move the rows whose request id is new (``INSERT ... SELECT
    ... ON CONFLICT DO NOTHING``): the same exactly-once rule as the
    executemany path, at COPY speed, since a long outage leaves a large
    journal to catch up while live traffic goes on.
    """

    def __init__(self, engine: Engine, commit_deadline_ms: int | None = None) -> None:
        if engine.dialect.driver != "psycopg":
            raise ValueError(f"COPY needs the psycopg 3 driver, not {engine.dialect.driver!r}")
        if commit_deadline_ms is None:
            from settings import settings

            commit_deadline_ms = settings.commit_deadline_ms
        self.engine = engine
        self._async: psycopg.AsyncConnection[Any] | None = None
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        # The writer's session: a lock wait ends at the commit deadline and a statement soon after it, so
        # a group the writer gave up on (and journaled) stops holding the connection.
        self._async_connect_args = postgres_connect_args(
            statement_timeout_ms=commit_deadline_ms + STATEMENT_MARGIN_MS, lock_timeout_ms=commit_deadline_ms)

    def insert(self, traces: Sequence[Trace]) -> None:
        """Copy the traces in one transaction; fail on any duplicate request id."""
        with self._pooled() as connection:
            try:
                with connection.cursor() as cursor, cursor.copy(_COPY) as copy:
                    for trace in traces:
                        copy.write_row(_copy_values(trace))
                connection.commit()
            except BaseException as exc:
                if not connection.broken and not connection.closed:
                    connection.rollback()
                if isinstance(exc, Exception) and classify_failure(exc) == "unavailable":
                    connection.close()  # a refused session is not reused (see _pooled)
                raise

    async def insert_async(self, traces: Sequence[Trace]) -> None:
        """:meth:`insert` on an asyncio connection, from the writer's event loop.

        The group commit then needs no thread: under load, a thread doing the
        copy waited for the GIL at each of its round trips while the event
        loop served requests, which made commits, hence answers, slower. The
        connection is kept between calls and replaced once broken.
        """
        if self._async is None:
            self._async = await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, **self._async_connect_args)
        connection = self._async
        try:
            async with connection.cursor() as cursor, cursor.copy(_COPY) as copy:
                for trace in traces:
                    await copy.write_row(_copy_values(trace))
        except BaseException as exc:
            # Broken, or refused as a whole (read-only, no privilege...): the next group gets a new session,
            # which sees the database as it is by then.
            if (connection.broken or connection.closed or not isinstance(exc, Exception)
                    or classify_failure(exc) == "unavailable"):
                if self._async is connection:
                    self._async = None
                await connection.close()
            raise

    async def aclose(self) -> None:
        """Close the asyncio connection of :meth:`insert_async`."""
        if self._async is not None:
            connection, self._async = self._async, None
            await connection.close()

    @property
    def async_backend_pid(self) -> int | None:
        """The PostgreSQL backend serving :meth:`insert_async` (None before the first call)."""
        return self._async.info.backend_pid if self._async is not None else None

    def insert_missing(self, traces: Sequence[Trace]) -> int:
        """Insert, in one transaction, the traces whose request id is not stored yet; return how many."""
        if not traces:
            return 0
        with self._pooled() as connection:
            try:
                with connection.cursor() as cursor:
                    cursor.execute(_STAGE)
                    with cursor.copy(_COPY_STAGED) as copy:
                        for trace in traces:
                            copy.write_row(_copy_values(trace))
                    cursor.execute(_MOVE_STAGED)
                    inserted = cursor.rowcount
                connection.commit()
            except BaseException as exc:
                if not connection.broken and not connection.closed:
                    connection.rollback()
                if isinstance(exc, Exception) and classify_failure(exc) == "unavailable":
                    connection.close()  # a refused session is not reused (see _pooled)
                raise
        return inserted

    @contextmanager
    def _pooled(self) -> Iterator[psycopg.Connection[Any]]:
        """A raw psycopg connection from the engine's pool; a dead or closed one is invalidated, not returned."""
        pooled = self.engine.raw_connection()
        try:
            yield pooled.driver_connection
        finally:
            connection = pooled.driver_connection
            if connection is not None and (connection.broken or connection.closed):
                pooled.invalidate()
            pooled.close()


def make_trace_store(engine: Engine, commit_deadline_ms: int | None = None) -> TraceStore:
    """The fastest store for the engine's backend: COPY on PostgreSQL (psycopg), executemany elsewhere."""
    if engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg":
        return CopyTraceStore(engine, commit_deadline_ms)
    return ExecutemanyTraceStore(engine)
