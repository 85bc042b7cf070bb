"""While the database is unreachable traces go to a durable local journal, and reach the database exactly once."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from persistence import database
from persistence.journal import read_journal
from persistence.store import make_trace_store
from persistence.traces import Trace
from persistence.writer import TraceWriter
from tests.persistence.factories import make_trace, make_traces, unreachable_postgres_url
from tests.persistence.expectations import assert_stored_exactly, sample, stored_rows


def journal_files(directory: Path) -> list[Path]:
    """Journal files waiting for a replay."""
    return sorted(directory.glob("journal-*.jsonl"))


async def journal_while_unreachable(journal_dir: Path, traces: list[Trace]) -> list[str]:
    """Record ``traces`` with a writer whose database refuses connections, then stop it (as a dying worker)."""
    writer = TraceWriter(unreachable_postgres_url(), journal_dir=journal_dir)
    await writer.start()
    try:
        return await asyncio.gather(*(writer.record([trace]) for trace in traces))
    finally:
        await writer.stop()


async def replay_into(url: str, journal_dir: Path) -> int:
    """One replay pass by a writer on ``url``; the traces it inserted."""
    writer = TraceWriter(url, journal_dir=journal_dir)
    try:
        return await writer.replay_once()
    finally:
        await writer.stop()


def test_unreachable_database_journals_traces_durably(journal_dir: Path) -> None:
    traces = make_traces(30)
    journaled_before = sample("futurisys_trace_journaled_total")

    async def scenario():
        writer = TraceWriter(unreachable_postgres_url(), journal_dir=journal_dir)
        await writer.start()
        try:
            outcomes = await asyncio.gather(*(writer.record([trace]) for trace in traces))
            # Answered only after fsync: the file already holds every trace, while the writer still runs.
            on_disk = [trace for path in journal_files(journal_dir) for trace in read_journal(path)]
            return outcomes, on_disk, writer.stats, writer.journal.backlog_rows
        finally:
            await writer.stop()

    outcomes, on_disk, stats, backlog = asyncio.run(scenario())
    assert outcomes == ["journaled"] * 30
    assert sorted(t.request_id for t in on_disk) == sorted(t.request_id for t in traces)
    assert {t.request_id: t for t in on_disk} == {t.request_id: t for t in traces}
    assert stats.journaled == 30 and stats.committed == 0 and backlog == 30
    assert sample("futurisys_trace_journaled_total") - journaled_before == 30
    [path] = journal_files(journal_dir)
    assert path.name.startswith(f"journal-{os.getpid()}-")


def test_journaled_traces_reach_the_database_exactly_once(migrated_url: str, migrated_engine: Engine,
                                                          journal_dir: Path, tmp_path: Path) -> None:
    traces = make_traces(20)
    # A trace already in the database under one of the request ids (say, committed just before an
    # acknowledgement was lost): the replay must keep the stored row, not add a second one.
    already = make_trace(500, request_id=traces[0].request_id, model_name="already_there")
    make_trace_store(migrated_engine).insert([already])

    assert asyncio.run(journal_while_unreachable(journal_dir, traces)) == ["journaled"] * 20
    [journal] = journal_files(journal_dir)
    shutil.copy(journal, tmp_path / "copy.jsonl")

    assert asyncio.run(replay_into(migrated_url, journal_dir)) == 19
    assert list(journal_dir.iterdir()) == []  # journal and lock file gone
    assert_stored_exactly(migrated_engine, [already, *traces[1:]])

    # The same journal replayed again (a replayer died between commit and delete): nothing doubles.
    shutil.copy(tmp_path / "copy.jsonl", journal)
    assert asyncio.run(replay_into(migrated_url, journal_dir)) == 0
    assert list(journal_dir.iterdir()) == []
    assert_stored_exactly(migrated_engine, [already, *traces[1:]])


def test_journal_of_a_dead_process_is_replayed_and_deleted(migrated_url: str, migrated_engine: Engine,
                                                           journal_dir: Path) -> None:
    traces = make_traces(12)
    journal_dir.mkdir(parents=True)
    orphan = journal_dir / "journal-999999-deadbeef.jsonl"  # nobody holds its lock: its writer is gone
    lines = [json.dumps(t.to_dict()) + "\n" for t in traces]
    orphan.write_text("".join(lines) + lines[0][:40], encoding="utf-8")  # torn last line: a crash mid-append

    async def scenario():
        writer = TraceWriter(migrated_url, journal_dir=journal_dir, replay_interval_s=3600)
        await writer.start()  # a starting worker replays what dead ones left, without being asked
        try:
            for _ in range(100):
                if not orphan.exists():
                    break
                await asyncio.sleep(0.05)
            return writer.stats.replayed
        finally:
            await writer.stop()

    assert asyncio.run(scenario()) == 12
    assert list(journal_dir.iterdir()) == []
    assert_stored_exactly(migrated_engine, traces)


def test_journal_of_a_live_process_is_left_to_its_owner(migrated_url: str, migrated_engine: Engine,
                                                        journal_dir: Path) -> None:
    traces = make_traces(5)

    async def scenario():
        owner = TraceWriter(unreachable_postgres_url(), journal_dir=journal_dir)
        await owner.start()
        try:
            assert await owner.record(traces) == "journaled"
            assert await replay_into(migrated_url, journal_dir) == 0  # the owner's lock keeps others off
            assert len(journal_files(journal_dir)) == 1
        finally:
            await owner.stop()  # the owner dies with its database still unreachable
        return await replay_into(migrated_url, journal_dir)

    assert asyncio.run(scenario()) == 5
    assert journal_files(journal_dir) == []
    assert_stored_exactly(migrated_engine, traces)


def test_a_journal_line_that_is_not_a_valid_trace_is_quarantined_and_the_rest_replayed(
        migrated_url: str, migrated_engine: Engine, journal_dir: Path) -> None:
    traces = make_traces(4)
    refused = {**make_trace(9).to_dict(), "model_name": None}  # NOT NULL: no replay could ever insert it
    journal_dir.mkdir(parents=True)
    orphan = journal_dir / "journal-999998-cafe.jsonl"
    lines = [json.dumps(t.to_dict()) for t in traces[:2]] + [json.dumps(refused)] + [
        json.dumps(t.to_dict()) for t in traces[2:]]
    orphan.write_text("\n".join(lines) + "\n", encoding="utf-8")

    assert asyncio.run(replay_into(migrated_url, journal_dir)) == 4
    assert not orphan.exists()
    assert_stored_exactly(migrated_engine, traces)
    [kept] = (journal_dir / f"quarantine-{orphan.name}").read_text(encoding="utf-8").splitlines()
    assert json.loads(kept) == refused  # as written, never dropped


def test_locked_sqlite_database_journals_then_replays_own_journal(
        sqlite_url: str, tmp_path: Path, journal_dir: Path, monkeypatch) -> None:
    from persistence.migrate import upgrade

    upgrade(sqlite_url, lock_dir=tmp_path)
    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT_MS", 100)  # give up on the lock quickly
    traces, later = make_traces(10), make_traces(3, start=100)
    blocker = sqlite3.connect(sa.engine.make_url(sqlite_url).database, isolation_level=None)

    async def scenario():
        writer = TraceWriter(sqlite_url, journal_dir=journal_dir, replay_interval_s=3600)
        await writer.start()
        try:
            blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock for too long
            journaled = await writer.record(traces)
            blocker.execute("ROLLBACK")
            replayed = await writer.replay_once()
            committed = await writer.record(later)  # the replay cleared the outage: straight to the database
            return journaled, replayed, committed, writer.journal.backlog_rows
        finally:
            await writer.stop()
            blocker.close()

    assert asyncio.run(scenario()) == ("journaled", 10, "committed", 0)
    assert journal_files(journal_dir) == []
    engine = database.make_engine(sqlite_url)
    try:
        assert_stored_exactly(engine, [*traces, *later])
        assert len(stored_rows(engine)) == 13
    finally:
        engine.dispose()


def test_a_trace_whose_inputs_cannot_be_serialised_is_refused_at_the_door() -> None:
    # Refused when the trace is built (before any answer), never later by the journal or the database.
    with pytest.raises(ValueError, match="inputs is not a JSON document"):
        make_trace(50, inputs={"age": {35}})  # a set: no JSON form
