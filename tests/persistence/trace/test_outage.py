"""A real database outage mid-traffic: every answered trace ends up in the database exactly once."""
from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from persistence.database.migrate import upgrade
from persistence.database.schema import prediction_traces
from persistence.trace.writer import TraceWriter
from tests.persistence.factories import make_trace
from tests.pgcluster import PostgresCluster

PRODUCERS = 24
PHASE_S = 1.0
REPLAY_DEADLINE_S = 30.0


@pytest.mark.pgcluster
def test_traces_recorded_through_an_outage_are_all_stored_exactly_once(
        pg_cluster: PostgresCluster, tmp_path: Path) -> None:
    upgrade(pg_cluster.url, lock_dir=tmp_path)
    journal_dir = tmp_path / "journal"
    answered: dict[str, str] = {}
    failures: list[BaseException] = []
    numbers = itertools.count()

    async def produce(writer: TraceWriter, running: asyncio.Event) -> None:
        while running.is_set():
            trace = make_trace(next(numbers))
            try:
                answered[trace.request_id] = await writer.record([trace])
            except Exception as exc:  # counted: the test requires that none happens
                failures.append(exc)
            await asyncio.sleep(0.002)

    async def scenario() -> tuple[dict[str, int], float]:
        writer = TraceWriter(pg_cluster.url, journal_dir=journal_dir, replay_interval_s=0.2)
        await writer.start()
        running = asyncio.Event()
        running.set()
        producers = [asyncio.create_task(produce(writer, running)) for _ in range(PRODUCERS)]
        try:
            await asyncio.sleep(PHASE_S)
            await asyncio.to_thread(pg_cluster.stop)  # the database goes away mid-traffic
            down_at = len(answered)
            await asyncio.sleep(PHASE_S)
            assert len(answered) > down_at, "record() stopped answering during the outage"
            await asyncio.to_thread(pg_cluster.start)
            await asyncio.sleep(PHASE_S)
        finally:
            running.clear()
            await asyncio.gather(*producers)
        started = time.monotonic()
        while writer.journal.backlog_rows and time.monotonic() - started < REPLAY_DEADLINE_S:
            await asyncio.sleep(0.1)
        waited = time.monotonic() - started
        stats = writer.stats
        await writer.stop()
        return {"answers": len(answered), "committed": stats.committed, "journaled": stats.journaled,
                "replayed": stats.replayed, "backlog": writer.journal.backlog_rows}, waited

    counts, waited = asyncio.run(scenario())
    print(f"\noutage: {counts} (journal drained {waited:.1f} s after traffic stopped)")

    assert failures == []
    assert counts["journaled"] > 0, "the outage did not reach the writer: nothing was journaled"
    assert counts["backlog"] == 0
    assert set(answered.values()) == {"committed", "journaled"}
    engine = sa.create_engine(pg_cluster.url)
    try:
        with engine.connect() as connection:
            table = prediction_traces
            stored = connection.execute(
                sa.select(table.c.request_id, sa.func.count()).group_by(table.c.request_id)).all()
        assert all(count == 1 for _, count in stored), "a request id stored twice"
        assert {request_id for request_id, _ in stored} == set(answered), "traces missing"
    finally:
        engine.dispose()
    # Every journal (and its lock file) replayed and deleted; the record of its database stays.
    assert [p.name for p in journal_dir.iterdir()] == ["database.json"]
