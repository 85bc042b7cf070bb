"""Writing traces to the database: one transaction for many traces, two strategies behind one interface.

PostgreSQL takes them with ``COPY ... FROM STDIN`` (psycopg 3), measured
faster than a multi-row ``INSERT`` for group commits; SQLite with a Core
``insert(table)`` and a list of rows (executemany). Journal replays use
``INSERT ... ON CONFLICT (request_id) DO NOTHING`` on both (on PostgreSQL
from COPY-filled staging tables), so a trace replayed twice, or already
committed, is stored once.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

import orjson
import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from persistence.database import POSTGRES_CONNECT_TIMEOUT_S
from persistence.schema import prediction_requests, prediction_results
from persistence.traces import REQUEST_COLUMNS, RESULT_COLUMNS, Trace


class TraceStore(Protocol):
    """Where the trace writer commits traces."""

    engine: Engine

    def insert(self, traces: Sequence[Trace]) -> None:
        """Insert the traces (request and result rows) in one transaction; fail on any duplicate."""

    def insert_missing(self, traces: Sequence[Trace]) -> int:
        """Insert, in one transaction, the traces whose request id is not stored yet; return how many."""

    def close(self) -> None:
        """Release any connection the store keeps."""


class _InsertMissing:
    """The replay path of the executemany store: dialect ``INSERT ... ON CONFLICT DO NOTHING``."""

    engine: Engine

    def insert_missing(self, traces: Sequence[Trace]) -> int:
        """Insert, in one transaction, the traces whose request id is not stored yet; return how many."""
        if not traces:
            return 0
        dialect_insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        add_requests = dialect_insert(prediction_requests).on_conflict_do_nothing(index_elements=["request_id"])
        add_results = (dialect_insert(prediction_results).on_conflict_do_nothing(index_elements=["request_id"])
                       .returning(prediction_results.c.request_id))
        with self.engine.begin() as connection:
            connection.execute(add_requests, [t.request_row() for t in traces])
            inserted = connection.execute(add_results, [t.result_row() for t in traces]).all()
        return len(inserted)


class ExecutemanyTraceStore(_InsertMissing):
    """Core ``insert(table)`` with a list of rows: one executemany per table (SQLite, and any backend)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def insert(self, traces: Sequence[Trace]) -> None:
        """Insert the traces in one transaction; fail on any duplicate request id."""
        with self.engine.begin() as connection:
            connection.execute(sa.insert(prediction_requests), [t.request_row() for t in traces])
            connection.execute(sa.insert(prediction_results), [t.result_row() for t in traces])

    def close(self) -> None:
        """Nothing to release: every call checks a connection out of the pool and returns it."""


def _copy_statement(table_name: str, columns: Sequence[str]) -> str:
    return f"COPY {table_name} ({', '.join(columns)}) FROM STDIN"


_COPY_REQUESTS = _copy_statement(prediction_requests.name, REQUEST_COLUMNS)
_COPY_RESULTS = _copy_statement(prediction_results.name, RESULT_COLUMNS)
_INPUTS_POSITION = REQUEST_COLUMNS.index("inputs")


def _copy_request_values(trace: Trace) -> list[Any]:
    values = [getattr(trace, name) for name in REQUEST_COLUMNS]
    # COPY's text format takes the json column as JSON text (orjson: a tenth of json.dumps's cost).
    values[_INPUTS_POSITION] = orjson.dumps(values[_INPUTS_POSITION]).decode()
    return values


def _staging(table: sa.Table, columns: Sequence[str]) -> tuple[str, str, str]:
    """SQL to create a per-transaction staging copy of ``table``, copy into it, and move its new rows over."""
    listed = ", ".join(columns)
    staging = f"replay_{table.name}"
    create = f"CREATE TEMPORARY TABLE {staging} ON COMMIT DROP AS SELECT {listed} FROM {table.name} WITH NO DATA"
    move = (f"INSERT INTO {table.name} ({listed}) SELECT {listed} FROM {staging} "
            "ON CONFLICT (request_id) DO NOTHING")
    return create, _copy_statement(staging, columns), move


_STAGE_REQUESTS, _COPY_STAGED_REQUESTS, _MOVE_REQUESTS = _staging(prediction_requests, REQUEST_COLUMNS)
_STAGE_RESULTS, _COPY_STAGED_RESULTS, _MOVE_RESULTS = _staging(prediction_results, RESULT_COLUMNS)


class CopyTraceStore:
    """PostgreSQL: ``COPY ... FROM STDIN`` on the pool's raw psycopg connection.

    Group commits copy straight into both tables. Replays copy into
    temporary staging tables, then move the rows whose request id is new
    (``INSERT ... SELECT ... ON CONFLICT DO NOTHING``): the same exactly-once
    rule as the executemany path, at COPY speed, since a long outage leaves a
    large journal to catch up while live traffic goes on.
    """

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.driver != "psycopg":
            raise ValueError(f"COPY needs the psycopg 3 driver, not {engine.dialect.driver!r}")
        self.engine = engine
        self._kept: Any = None
        self._kept_lock = threading.Lock()
        self._async: psycopg.AsyncConnection[Any] | None = None
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def insert(self, traces: Sequence[Trace]) -> None:
        """Copy the traces into both tables in one transaction; fail on any duplicate request id.

        Group commits run on a connection the store keeps between calls: a
        pool checkout costs a liveness ping and a rollback on return, two
        round trips on top of the commit's own, per group. A connection found
        broken is dropped (the writer journals that group) and the next call
        connects afresh.
        """
        with self._kept_lock:
            if self._kept is None:
                self._kept = self.engine.raw_connection()
            try:
                self._copy(self._kept, traces, _COPY_REQUESTS, _COPY_RESULTS)
            except BaseException:
                if not self._kept.is_valid:  # invalidated by _copy: the server connection died
                    self._kept = None
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
                self._conninfo, connect_timeout=POSTGRES_CONNECT_TIMEOUT_S)
        connection = self._async
        try:
            async with connection.cursor() as cursor:
                async with cursor.copy(_COPY_REQUESTS) as copy:
                    for trace in traces:
                        await copy.write_row(_copy_request_values(trace))
                async with cursor.copy(_COPY_RESULTS) as copy:
                    for trace in traces:
                        await copy.write_row([getattr(trace, name) for name in RESULT_COLUMNS])
            await connection.commit()
        except BaseException:
            if connection.broken or connection.closed:
                self._async = None
                await connection.close()
            else:
                await connection.rollback()
            raise

    def close(self) -> None:
        """Return the kept connection to the pool (the asyncio one is closed by :meth:`aclose`)."""
        with self._kept_lock:
            if self._kept is not None:
                self._kept.close()
                self._kept = None

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
        pooled = self.engine.raw_connection()
        try:
            return self._copy(pooled, traces, _COPY_STAGED_REQUESTS, _COPY_STAGED_RESULTS, staged=True)
        finally:
            pooled.close()

    @staticmethod
    def _copy(pooled: Any, traces: Sequence[Trace], copy_requests: str, copy_results: str,
              staged: bool = False) -> int:
        """Copy ``traces`` on ``pooled`` in one transaction; a broken connection is invalidated."""
        connection = pooled.driver_connection
        inserted = len(traces)
        try:
            with connection.cursor() as cursor:
                if staged:
                    cursor.execute(_STAGE_REQUESTS)
                    cursor.execute(_STAGE_RESULTS)
                with cursor.copy(copy_requests) as copy:
                    for trace in traces:
                        copy.write_row(_copy_request_values(trace))
                with cursor.copy(copy_results) as copy:
                    for trace in traces:
                        copy.write_row([getattr(trace, name) for name in RESULT_COLUMNS])
                if staged:
                    cursor.execute(_MOVE_REQUESTS)
                    cursor.execute(_MOVE_RESULTS)
                    inserted = cursor.rowcount
            connection.commit()
        except BaseException:
            if connection.broken or connection.closed:
                # A dead server connection must not go back to the pool.
                pooled.invalidate()
            else:
                connection.rollback()
            raise
        return inserted


def make_trace_store(engine: Engine) -> TraceStore:
    """The fastest store for the engine's backend: COPY on PostgreSQL (psycopg), executemany elsewhere."""
    if engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg":
        return CopyTraceStore(engine)
    return ExecutemanyTraceStore(engine)
