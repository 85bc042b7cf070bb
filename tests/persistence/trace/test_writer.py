"""Group commit: concurrent traces share transactions, are stored exactly as given, and none is dropped."""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from persistence.database.engine import make_engine
from persistence.database.migrate import upgrade
from persistence.trace.store import CopyTraceStore, ExecutemanyTraceStore
from persistence.trace.writer import TraceWriteError, TraceWriter
from tests.persistence.expectations import assert_stored_exactly, eventually, sample
from tests.persistence.factories import make_trace, make_traces


def run(scenario) -> object:
    """Run an async scenario in a fresh event loop, as a BentoML worker would."""
    return asyncio.run(scenario)


def test_backend_gets_its_fastest_store(migrated_url: str, journal_dir: Path) -> None:
    writer = TraceWriter(migrated_url, journal_dir=journal_dir)
    expected = CopyTraceStore if migrated_url.startswith("postgresql") else ExecutemanyTraceStore
    assert type(writer.store) is expected
    asyncio.run(writer.stop())


def test_concurrent_records_are_stored_exactly_once_in_few_transactions(
        migrated_url: str, migrated_engine: Engine, journal_dir: Path) -> None:
    traces = make_traces(200)

    async def scenario() -> list[str]:
        writer = TraceWriter(migrated_url, journal_dir=journal_dir)
        await writer.start()
        try:
            return await asyncio.gather(*(writer.record([trace]) for trace in traces)), writer.stats
        finally:
            await writer.stop()

    committed_before, flushes_before = sample("futurisys_trace_committed_total"), sample(
        "futurisys_trace_flush_rows_count")
    outcomes, stats = run(scenario())
    assert outcomes == ["committed"] * 200
    assert_stored_exactly(migrated_engine, traces)
    assert stats.record_calls == 200
    assert 1 <= stats.transactions < 200  # grouped: far fewer commits than calls
    assert sample("futurisys_trace_committed_total") - committed_before == 200
    assert sample("futurisys_trace_flush_rows_count") - flushes_before == stats.transactions
    print(f"200 record() calls -> {stats.transactions} transaction(s)")


def test_a_group_never_exceeds_max_rows(migrated_url: str, migrated_engine: Engine, journal_dir: Path) -> None:
    traces = make_traces(100)

    async def scenario():
        writer = TraceWriter(migrated_url, journal_dir=journal_dir, max_rows=10)
        await writer.start()
        try:
            await asyncio.gather(*(writer.record([trace]) for trace in traces))
            # A batch larger than max_rows is still committed, whole, in one transaction.
            await writer.record(make_traces(25, start=1000))
            return writer.stats
        finally:
            await writer.stop()

    stats = run(scenario())
    assert stats.transactions >= 100 // 10 + 1
    assert stats.committed == 125


def test_back_pressure_bounds_the_queue_and_drops_nothing(migrated_url: str, migrated_engine: Engine,
                                                          journal_dir: Path) -> None:
    traces = make_traces(120)

    async def scenario():
        writer = TraceWriter(migrated_url, journal_dir=journal_dir, queue_size=8)
        await writer.start()
        try:
            outcomes = await asyncio.gather(*(writer.record(traces[i:i + 2]) for i in range(0, 120, 2)))
            return outcomes, writer.stats
        finally:
            await writer.stop()

    outcomes, stats = run(scenario())
    assert outcomes == ["committed"] * 60
    assert stats.peak_queue_rows <= 8
    assert_stored_exactly(migrated_engine, traces)


def test_a_rejected_trace_fails_only_its_own_call_and_the_flusher_lives_on(
        migrated_url: str, migrated_engine: Engine, journal_dir: Path) -> None:
    first, others = make_trace(1), make_traces(5, start=10)
    duplicate = make_trace(2, request_id=first.request_id)
    later = make_trace(99)

    async def scenario():
        writer = TraceWriter(migrated_url, journal_dir=journal_dir)
        await writer.start()
        try:
            assert await writer.record([first]) == "committed"
            # Queued together, so they share a group: the duplicate must not sink the others.
            outcomes = await asyncio.gather(writer.record([duplicate]), *(writer.record([t]) for t in others),
                                            return_exceptions=True)
            after = await writer.record([later])
            return outcomes, after, writer.stats
        finally:
            await writer.stop()

    outcomes, after, stats = run(scenario())
    assert isinstance(outcomes[0], TraceWriteError)
    assert outcomes[1:] == ["committed"] * 5
    assert after == "committed"
    assert stats.rejected == 1 and stats.journaled == 0
    assert_stored_exactly(migrated_engine, [first, *others, later])


def test_stop_flushes_every_pending_trace(migrated_url: str, migrated_engine: Engine, journal_dir: Path) -> None:
    traces = make_traces(50)

    async def scenario():
        writer = TraceWriter(migrated_url, journal_dir=journal_dir)
        await writer.start()
        pending = [asyncio.create_task(writer.record([trace])) for trace in traces]
        await asyncio.sleep(0)  # the calls are queued, not yet committed
        await writer.stop()
        return [task.result() for task in pending]

    assert run(scenario()) == ["committed"] * 50
    assert_stored_exactly(migrated_engine, traces)


def test_record_from_a_synchronous_thread(migrated_url: str, migrated_engine: Engine, journal_dir: Path) -> None:
    traces = make_traces(3)

    async def scenario() -> list[str]:
        writer = TraceWriter(migrated_url, journal_dir=journal_dir)
        await writer.start()
        outcomes: list[str] = []
        try:
            worker = threading.Thread(target=lambda: outcomes.extend(writer.record_from_thread([t]) for t in traces))
            worker.start()
            await asyncio.to_thread(worker.join)
            return outcomes
        finally:
            await writer.stop()

    assert run(scenario()) == ["committed"] * 3
    assert_stored_exactly(migrated_engine, traces)


def test_record_before_start_is_refused(sqlite_url: str, journal_dir: Path) -> None:
    writer = TraceWriter(sqlite_url, journal_dir=journal_dir)
    with pytest.raises(RuntimeError, match="start"):
        run(writer.record(make_traces(1)))
    run(writer.stop())


@pytest.mark.postgres
def test_a_killed_writer_connection_costs_one_journaled_group_then_reconnects(
        postgres_url: str, tmp_path: Path, journal_dir: Path) -> None:
    upgrade(postgres_url, lock_dir=tmp_path)
    traces = make_traces(30)
    admin = make_engine(postgres_url)

    async def scenario() -> tuple[list[str], int, int]:
        writer = TraceWriter(postgres_url, journal_dir=journal_dir, replay_interval_s=0.1)
        await writer.start()
        try:
            first = await writer.record(traces[:10])
            killed = writer.store.async_backend_pid
            with admin.connect() as connection:
                assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": killed}).scalar()
            second = await writer.record(traces[10:20])
            # Until the replay found the database back: an event, not a fixed time (a slow machine takes longer).
            # The replay thread counts the group before it tells the writer the database is back: wait for both.
            await eventually(lambda: writer.stats.replayed == 10 and writer.health().state == "committing",
                             "the journaled group replayed and the writer committing again")
            third = await writer.record(traces[20:])
            return [first, second, third], killed, writer.store.async_backend_pid
        finally:
            await writer.stop()

    try:
        outcomes, killed, kept = run(scenario())
        assert outcomes == ["committed", "journaled", "committed"]
        assert killed is not None and kept is not None and kept != killed, "the store connected afresh"
        assert_stored_exactly(admin, traces)
    finally:
        admin.dispose()
