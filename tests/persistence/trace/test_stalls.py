"""A slow, hanging or refusing database: answers keep a bounded time, traces go to the journal, none is lost.

Real databases only: PostgreSQL (a fresh database on 127.0.0.1:5432, or a
throw-away cluster the test stops) and SQLite files. Latencies are printed,
not asserted; the bound each test asserts is its guard against a hang
(``HANG_GUARD_S``), many times the deadline.
"""
from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from persistence.database.engine import classify_failure, make_engine
from persistence.database.migrate import upgrade
from persistence.trace.writer import TraceWriteError, TraceWriter
from tests.persistence.expectations import assert_stored_exactly
from tests.persistence.factories import make_trace, make_traces
from tests.pgcluster import PostgresCluster

DEADLINE_MS = 300
HANG_GUARD_S = 8.0  # a record() still waiting after this long is hanging: the property under test is gone


async def record_within_guard(writer: TraceWriter, traces) -> tuple[str, float]:
    """``writer.record(traces)`` and how long it took; fails the test if it hangs."""
    started = time.monotonic()
    outcome = await asyncio.wait_for(writer.record(traces), timeout=HANG_GUARD_S)
    return outcome, time.monotonic() - started


async def until(condition, timeout_s: float = 20.0) -> None:
    """Wait until ``condition()`` is true (the journal replayed, say)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def pg_admin(url: str) -> psycopg.Connection:
    """An autocommit psycopg connection to the test database, to lock, reconfigure or terminate."""
    return psycopg.connect(sa.engine.make_url(url).set(drivername="postgresql").render_as_string(False),
                           autocommit=True)


def restarts_counted() -> float:
    """futurisys_trace_writer_restarts_total of the flusher task, in this process."""
    return REGISTRY.get_sample_value("futurisys_trace_writer_restarts_total", {"task": "flusher"}) or 0.0


def database_failures() -> float:
    """Group commits that found the database unavailable or missed their deadline, in this process."""
    return sum(REGISTRY.get_sample_value("futurisys_trace_write_failures_total", {"reason": reason}) or 0.0
               for reason in ("unavailable", "deadline"))


def quarantine_files(journal_dir: Path) -> list[Path]:
    """Quarantine files of a journal directory."""
    return sorted(journal_dir.glob("quarantine-*.jsonl"))


@pytest.mark.postgres
def test_a_locked_table_costs_one_deadline_then_traces_are_journaled_and_replayed_once(
        postgres_url: str, tmp_path: Path, journal_dir: Path) -> None:
    upgrade(postgres_url, lock_dir=tmp_path)
    before, during, after = make_traces(5), make_traces(40, start=100), make_traces(5, start=200)
    admin = pg_admin(postgres_url)
    engine = make_engine(postgres_url)

    async def scenario():
        writer = TraceWriter(postgres_url, journal_dir=journal_dir, commit_deadline_ms=DEADLINE_MS,
                             replay_interval_s=0.2)
        await writer.start()
        try:
            assert (await record_within_guard(writer, before))[0] == "committed"
            locker = admin.transaction()
            locker.__enter__()
            admin.execute("LOCK TABLE prediction_traces IN ACCESS EXCLUSIVE MODE")  # a migration, say
            failures_before = database_failures()
            first, first_s = await record_within_guard(writer, during[:1])
            rest = await asyncio.gather(*(record_within_guard(writer, [t]) for t in during[1:20]))
            for trace in during[20:]:  # over several probe intervals: the probes fail, the traces are not held
                rest.append(await record_within_guard(writer, [trace]))
                await asyncio.sleep(0.05)
            attempts = database_failures() - failures_before
            health = writer.health()
            locker.__exit__(None, None, None)  # the lock goes
            await until(lambda: writer.journal.backlog_rows == 0 and writer.health().state == "committing")
            last = await record_within_guard(writer, after)
            return first, first_s, rest, health, last[0], writer.stats, attempts
        finally:
            await writer.stop()

    try:
        first, first_s, rest, health, last, stats, attempts = asyncio.run(scenario())
        print(f"\nlocked table: first trace {first} after {first_s * 1000:.0f} ms (deadline {DEADLINE_MS} ms), "
              f"then {max(s for _, s in rest) * 1000:.0f} ms at most; {stats}")
        assert first == "journaled"
        assert {outcome for outcome, _ in rest} == {"journaled"}
        assert attempts == 1, "after one missed commit, only a replay that goes through may try the database again"
        assert health.state == "journaling" and health.journal_backlog > 0
        assert last == "committed"
        assert stats.replayed + stats.late_committed == len(during)  # each journaled trace counted once
        assert_stored_exactly(engine, [*before, *during, *after])
        assert quarantine_files(journal_dir) == []
    finally:
        admin.close()
        engine.dispose()


@pytest.mark.postgres
def test_a_commit_that_lands_after_its_deadline_is_stored_once_and_counted_once(
        postgres_url: str, tmp_path: Path, journal_dir: Path) -> None:
    upgrade(postgres_url, lock_dir=tmp_path)
    traces = make_traces(10)
    admin = pg_admin(postgres_url)
    # A slow database: every insert statement takes 0.6 s, twice the deadline, but ends (no lock, no timeout).
    admin.execute("CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS "
                  "$$ BEGIN PERFORM pg_sleep(0.6); RETURN NULL; END $$")
    admin.execute("CREATE TRIGGER slow BEFORE INSERT ON prediction_traces FOR EACH STATEMENT EXECUTE FUNCTION slow()")
    engine = make_engine(postgres_url)

    async def scenario():
        writer = TraceWriter(postgres_url, journal_dir=journal_dir, commit_deadline_ms=DEADLINE_MS,
                             replay_interval_s=0.2)
        await writer.start()
        try:
            outcome, _ = await record_within_guard(writer, traces)
            await until(lambda: writer.stats.late_committed == len(traces) and writer.journal.backlog_rows == 0)
            return outcome, writer.stats
        finally:
            await writer.stop()

    try:
        outcome, stats = asyncio.run(scenario())
        print(f"\nlate commit: {stats}")
        assert outcome == "journaled"
        assert stats.committed == 0 and stats.late_committed == 10 and stats.replayed == 0
        assert_stored_exactly(engine, traces)
    finally:
        admin.close()
        engine.dispose()


@pytest.mark.postgres
def test_a_read_only_database_is_unavailable_not_a_reason_to_reject(
        postgres_url: str, tmp_path: Path, journal_dir: Path) -> None:
    upgrade(postgres_url, lock_dir=tmp_path)
    database = sa.engine.make_url(postgres_url).database
    before, during, after = make_traces(3), make_traces(20, start=100), make_traces(3, start=200)
    admin = pg_admin(postgres_url)
    engine = make_engine(postgres_url)

    def terminate_others() -> None:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s AND pid <> pg_backend_pid()", [database])

    async def scenario():
        writer = TraceWriter(postgres_url, journal_dir=journal_dir, commit_deadline_ms=DEADLINE_MS,
                             replay_interval_s=0.2)
        await writer.start()
        try:
            assert (await record_within_guard(writer, before))[0] == "committed"
            # A failover to a read-only standby, as the service sees it: every new session refuses writes.
            admin.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
            terminate_others()
            outcomes = [(await record_within_guard(writer, [t]))[0] for t in during[:10]]
            outcomes += [o for o, _ in await asyncio.gather(*(record_within_guard(writer, [t]) for t in during[10:]))]
            await asyncio.sleep(0.6)  # replays are attempted, and refused, meanwhile
            refused_meanwhile = list(journal_dir.iterdir())
            admin.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
            await until(lambda: writer.journal.backlog_rows == 0 and writer.health().state == "committing")
            last = (await record_within_guard(writer, after))[0]
            return outcomes, refused_meanwhile, last, writer.stats
        finally:
            await writer.stop()

    try:
        outcomes, refused_meanwhile, last, stats = asyncio.run(scenario())
        print(f"\nread-only: {stats}")
        assert outcomes == ["journaled"] * 20
        assert not [p for p in refused_meanwhile if p.name.startswith("quarantine-")]
        assert last == "committed"
        assert stats.rejected == 0
        assert_stored_exactly(engine, [*before, *during, *after])
        assert quarantine_files(journal_dir) == []
    finally:
        admin.close()
        engine.dispose()


@pytest.mark.pgcluster
def test_a_writer_starts_while_the_database_is_down_then_migrates_and_replays(
        pg_cluster: PostgresCluster, journal_dir: Path) -> None:
    traces = make_traces(15)
    pg_cluster.stop()

    async def scenario():
        writer = TraceWriter(pg_cluster.url, journal_dir=journal_dir, commit_deadline_ms=DEADLINE_MS,
                             replay_interval_s=0.2, migrate=True)
        started = time.monotonic()
        await asyncio.wait_for(writer.start(), timeout=HANG_GUARD_S)
        start_s = time.monotonic() - started
        try:
            outcomes = await asyncio.gather(*(record_within_guard(writer, [t]) for t in traces))
            health = writer.health()
            await asyncio.to_thread(pg_cluster.start)
            await until(lambda: writer.journal.backlog_rows == 0 and writer.health().state == "committing")
            last = (await record_within_guard(writer, [make_trace(99)]))[0]
            return start_s, [o for o, _ in outcomes], health, last
        finally:
            await writer.stop()

    start_s, outcomes, health, last = asyncio.run(scenario())
    print(f"\nstart during an outage: started in {start_s * 1000:.0f} ms")
    assert outcomes == ["journaled"] * 15
    assert health.state == "journaling" and not health.database_reachable and health.healthy
    assert last == "committed"
    engine = make_engine(pg_cluster.url)
    try:
        with engine.connect() as connection:
            stored = connection.execute(sa.text("SELECT count(*), count(DISTINCT request_id) "
                                                "FROM prediction_traces")).one()
        assert tuple(stored) == (16, 16)
    finally:
        engine.dispose()


def test_a_dropped_table_is_journaled_then_migrated_back(sqlite_url: str, tmp_path: Path,
                                                         journal_dir: Path) -> None:
    upgrade(sqlite_url, lock_dir=tmp_path)
    traces = make_traces(6)
    engine = make_engine(sqlite_url)

    async def scenario():
        writer = TraceWriter(sqlite_url, journal_dir=journal_dir, commit_deadline_ms=2000, replay_interval_s=0.2,
                             migrate=True)
        await writer.start()
        try:
            existing = sa.MetaData()  # a database restored empty, say
            existing.reflect(engine)
            existing.drop_all(engine)
            outcome = (await record_within_guard(writer, traces))[0]
            await until(lambda: writer.journal.backlog_rows == 0 and writer.health().state == "committing")
            return outcome
        finally:
            await writer.stop()

    try:
        assert asyncio.run(scenario()) == "journaled"
        assert_stored_exactly(engine, traces)
    finally:
        engine.dispose()


def test_a_killed_writer_task_is_restarted_its_group_journaled(
        sqlite_url: str, tmp_path: Path, journal_dir: Path) -> None:
    upgrade(sqlite_url, lock_dir=tmp_path)
    held, later = make_traces(4), make_traces(4, start=100)
    blocker = sqlite3.connect(sa.engine.make_url(sqlite_url).database, isolation_level=None)
    engine = make_engine(sqlite_url)
    restarts_before = restarts_counted()

    async def scenario():
        writer = TraceWriter(sqlite_url, journal_dir=journal_dir, commit_deadline_ms=5000, replay_interval_s=0.2)
        await writer.start()
        try:
            blocker.execute("BEGIN EXCLUSIVE")  # the group below waits for the lock: it is in flight
            pending = asyncio.ensure_future(writer.record(held))
            await until(lambda: bool(writer.queue.in_flight))
            writer._flusher.cancel()  # the writer's task dies with a group in its hands
            outcome = await asyncio.wait_for(pending, timeout=HANG_GUARD_S)
            healthy = writer.healthy
            blocker.execute("ROLLBACK")
            await until(lambda: writer.journal.backlog_rows == 0)
            return outcome, healthy, (await record_within_guard(writer, later))[0], writer.stats.restarts
        finally:
            await writer.stop()
            blocker.close()

    try:
        outcome, healthy, last, restarts = asyncio.run(scenario())
        assert (outcome, healthy, last, restarts) == ("journaled", True, "committed", 1)
        assert restarts_counted() - restarts_before == 1
        assert_stored_exactly(engine, [*held, *later])
    finally:
        engine.dispose()


def test_a_writer_task_that_keeps_dying_makes_the_writer_unhealthy_and_refusing(
        sqlite_url: str, tmp_path: Path, journal_dir: Path) -> None:
    upgrade(sqlite_url, lock_dir=tmp_path)

    async def scenario():
        writer = TraceWriter(sqlite_url, journal_dir=journal_dir, max_restarts=0)
        await writer.start()
        try:
            assert writer.healthy
            writer._flusher.cancel()
            await asyncio.sleep(0.05)
            with pytest.raises(TraceWriteError):
                await record_within_guard(writer, make_traces(1))
            return writer.healthy, writer.health().state
        finally:
            await writer.stop()

    assert asyncio.run(scenario()) == (False, "failed")


def test_a_journal_that_cannot_be_written_while_the_database_is_unavailable_fails_the_call(
        tmp_path: Path) -> None:
    journal_dir = tmp_path / "journal"
    journal_dir.write_text("a file where the journal directory should be")  # the journal cannot be written

    async def scenario():
        writer = TraceWriter(f"sqlite:///{tmp_path / 'missing' / 'x' / 'traces.db'}", journal_dir=journal_dir)
        await writer.start()
        try:
            with pytest.raises(TraceWriteError, match="journal not writable"):
                await record_within_guard(writer, make_traces(1))
        finally:
            await writer.stop()

    asyncio.run(scenario())


# -- unavailable vs rejected, on real errors --------------------------------------------------------------


def _error_of(connection: psycopg.Connection, statement: str) -> psycopg.Error:
    try:
        with connection.transaction():
            connection.execute(statement)
    except psycopg.Error as exc:
        return exc
    raise AssertionError(f"{statement!r} did not fail")


@pytest.mark.postgres
def test_postgresql_refusals_of_the_whole_database_are_unavailable_and_only_content_is_rejected(
        postgres_url: str, tmp_path: Path) -> None:
    upgrade(postgres_url, lock_dir=tmp_path)
    admin = pg_admin(postgres_url)
    row = ("INSERT INTO prediction_traces (request_id, received_at, endpoint, inputs, model_name, model_version, "
           "service_version, fallback, status, total_ms, created_at) VALUES "
           "('{id}', now(), 'predict', '{{}}', '{model}', 'v1', '1', false, 'ok', 1, now())")
    nobody = f"futurisys_nobody_{uuid.uuid4().hex[:8]}"  # roles belong to the whole server: a name of its own
    try:
        admin.execute(f"CREATE ROLE {nobody}")
        errors = {
            "too long": _error_of(admin, row.format(id="a", model="x" * 300)),
            "not null": _error_of(admin, row.format(id="b", model="m").replace("'v1'", "NULL")),
            "read only": _error_of(admin, "SET TRANSACTION READ ONLY; " + row.format(id="c", model="m")),
            "undefined table": _error_of(admin, "INSERT INTO no_such_table VALUES (1)"),
            "lock timeout": None, "statement timeout": _error_of(
                admin, "SET LOCAL statement_timeout = 10; SELECT pg_sleep(1)"),
            "no privilege": _error_of(admin, f"SET LOCAL ROLE {nobody}; " + row.format(id="d", model="m")),
        }
        other = pg_admin(postgres_url)
        with other.transaction():
            other.execute("LOCK TABLE prediction_traces IN ACCESS EXCLUSIVE MODE")
            errors["lock timeout"] = _error_of(admin, "SET LOCAL lock_timeout = 10; " + row.format(id="e", model="m"))
        other.close()
        verdicts = {name: classify_failure(exc) for name, exc in errors.items()}
        print(f"\n{ {name: (exc.sqlstate, verdicts[name]) for name, exc in errors.items()} }")
        assert verdicts == {"too long": "rejected", "not null": "rejected", "read only": "unavailable",
                            "undefined table": "unavailable", "lock timeout": "unavailable",
                            "statement timeout": "unavailable", "no privilege": "unavailable"}
    finally:
        admin.execute(f"DROP OWNED BY {nobody}; DROP ROLE IF EXISTS {nobody}")
        admin.close()
    try:
        psycopg.connect("host=127.0.0.1 port=1 connect_timeout=2")
    except psycopg.OperationalError as exc:
        assert classify_failure(exc) == "unavailable"


def test_sqlite_refusals_of_the_whole_database_are_unavailable_and_only_content_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE t (id TEXT PRIMARY KEY, v TEXT NOT NULL)")
    connection.commit()
    connection.close()
    errors = {}
    for name, statement in {"not null": "INSERT INTO t VALUES ('a', NULL)",
                            "undefined table": "INSERT INTO missing VALUES (1)"}.items():
        with pytest.raises(sqlite3.Error) as caught:
            sqlite3.connect(path).execute(statement)
        errors[name] = caught.value
    path.chmod(0o444)
    read_only = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.Error) as caught:
        read_only.execute("INSERT INTO t VALUES ('b', 'x')")
    errors["read only"] = caught.value
    assert {name: classify_failure(exc) for name, exc in errors.items()} == {
        "not null": "rejected", "undefined table": "unavailable", "read only": "unavailable"}


# -- durability settings pinned ---------------------------------------------------------------------------


@pytest.mark.postgres
def test_every_postgresql_session_of_the_service_commits_synchronously_with_bounded_waits(
        postgres_url: str, tmp_path: Path, journal_dir: Path) -> None:
    upgrade(postgres_url, lock_dir=tmp_path)
    database = sa.engine.make_url(postgres_url).database
    admin = pg_admin(postgres_url)
    admin.execute(f'ALTER DATABASE "{database}" SET synchronous_commit = off')  # the server's default says off

    async def scenario():
        writer = TraceWriter(postgres_url, journal_dir=journal_dir, commit_deadline_ms=DEADLINE_MS)
        await writer.start()
        try:
            assert await writer.record(make_traces(1)) == "committed"
            async with writer.store._async.cursor() as cursor:  # the writer's own session
                values = []
                for name in ("synchronous_commit", "lock_timeout", "statement_timeout"):
                    await cursor.execute(f"SHOW {name}")
                    values.append((await cursor.fetchone())[0])
            # Client-side socket options: libpq's own parameters, not server settings.
            parameters = writer.store._async.info.get_parameters()
            return values, {name: parameters.get(name) for name in ("tcp_user_timeout", "keepalives")}
        finally:
            await writer.stop()

    engine = make_engine(postgres_url, statement_timeout_ms=30_000, lock_timeout_ms=2000)
    try:
        writer_session, socket_options = asyncio.run(scenario())
        with engine.connect() as connection:  # a pooled session (reads, replays)
            pooled = [connection.execute(sa.text(f"SHOW {name}")).scalar() for name in
                      ("synchronous_commit", "lock_timeout", "statement_timeout")]
        print(f"\nwriter session {writer_session} {socket_options}, pooled session {pooled}")
        assert writer_session == ["on", f"{DEADLINE_MS}ms", f"{DEADLINE_MS + 1000}ms"]
        assert socket_options == {"tcp_user_timeout": "10000", "keepalives": "1"}
        assert pooled == ["on", "2s", "30s"]
    finally:
        engine.dispose()
        admin.close()


def test_sqlite_connections_set_synchronous_full(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("PRAGMA synchronous")).scalar() == 2  # FULL
    finally:
        engine.dispose()
