"""While the database is unreachable traces go to a durable local journal, and reach the database exactly once."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from sqlalchemy.engine import Engine

from persistence.cli.commands import main as persistence_command
from persistence.database import engine as database
from persistence.database.engine import database_fingerprint, database_identity
from persistence.database.traces import Trace
from persistence.trace.journal import TraceJournal
from persistence.trace.journal_format import (DATABASE_RECORD, journal_lines, read_database_record, read_journal,
                                              write_database_record)
from persistence.trace.replay import replay_directory
from persistence.trace.store import make_trace_store
from persistence.trace.writer import TraceWriteError, TraceWriter
from settings import settings
from tests.conftest import need
from tests.persistence.expectations import assert_stored_exactly, eventually, sample, stored_rows
from tests.persistence.factories import make_trace, make_traces, unreachable_postgres_url


def journal_files(directory: Path) -> list[Path]:
    """Journal files waiting for a replay."""
    return sorted(directory.glob("journal-*.jsonl"))


def leftovers(directory: Path) -> list[Path]:
    """What a journal directory holds besides the record of its database: journals, locks, quarantine."""
    return sorted(p for p in directory.iterdir() if p.name != DATABASE_RECORD)


def as_journaled_for(journal_dir: Path, url: str) -> None:
    """Record ``journal_dir`` for ``url``'s database: its journals were written while that database was away.

    The writers of these tests reach "away" through an address where nothing
    listens, so their directory is recorded for that address; a replay only
    ever goes into the database a directory is recorded for.
    """
    write_database_record(journal_dir, database_fingerprint(url), database_identity(url), "test")


async def journal_while_unreachable(journal_dir: Path, traces: list[Trace], url: str) -> list[str]:
    """Record ``traces`` while ``url``'s database is away, then stop the writer (as a dying worker)."""
    writer = TraceWriter(unreachable_postgres_url(), journal_dir=journal_dir)
    await writer.start()
    try:
        return await asyncio.gather(*(writer.record([trace]) for trace in traces))
    finally:
        await writer.stop()
        as_journaled_for(journal_dir, url)


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

    assert asyncio.run(journal_while_unreachable(journal_dir, traces, migrated_url)) == ["journaled"] * 20
    [journal] = journal_files(journal_dir)
    shutil.copy(journal, tmp_path / "copy.jsonl")

    assert asyncio.run(replay_into(migrated_url, journal_dir)) == 19
    assert leftovers(journal_dir) == []  # journal and lock file gone
    assert_stored_exactly(migrated_engine, [already, *traces[1:]])

    # The same journal replayed again (a replayer died between commit and delete): nothing doubles.
    shutil.copy(tmp_path / "copy.jsonl", journal)
    assert asyncio.run(replay_into(migrated_url, journal_dir)) == 0
    assert leftovers(journal_dir) == []
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
            await eventually(lambda: not orphan.exists(), "the dead process's journal replayed and deleted")
            return writer.stats.replayed
        finally:
            await writer.stop()

    assert asyncio.run(scenario()) == 12
    assert leftovers(journal_dir) == []
    assert_stored_exactly(migrated_engine, traces)


def test_journal_of_a_live_process_is_left_to_its_owner(migrated_url: str, migrated_engine: Engine,
                                                        journal_dir: Path) -> None:
    traces = make_traces(5)

    async def scenario():
        owner = TraceWriter(unreachable_postgres_url(), journal_dir=journal_dir)
        await owner.start()
        try:
            assert await owner.record(traces) == "journaled"
            as_journaled_for(journal_dir, migrated_url)
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
    # As written, with where it was: never dropped.
    offset = len("\n".join(lines[:2])) + 1
    assert json.loads(kept) == {"unreadable_journal_line": {
        "file": str(orphan), "line": 3, "offset": offset, "text": lines[2] + "\n"}}


def test_locked_sqlite_database_journals_then_replays_own_journal(
        sqlite_url: str, tmp_path: Path, journal_dir: Path, monkeypatch) -> None:
    from persistence.database.migrate import upgrade

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


# -- crashes: what survives is what was synced ------------------------------------------------------

def test_every_answered_trace_survives_a_crash_that_keeps_only_what_was_synced(
        migrated_url: str, migrated_engine: Engine, journal_dir: Path, tmp_path: Path, monkeypatch) -> None:
    # The page cache is not durable: a crash keeps of each file what the last fsync of it covered. The test
    # records that length at every fsync of a regular file, answers the calls, then "crashes" (copies each
    # journal cut to its synced length, as the disk would hold it after a power loss) and replays the copy.
    synced: dict[int, int] = {}
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        real_fsync(fd)
        status = os.fstat(fd)
        if stat.S_ISREG(status.st_mode):
            synced[status.st_ino] = status.st_size

    monkeypatch.setattr(os, "fsync", recording_fsync)
    traces = make_traces(25)
    crashed = tmp_path / "after-crash"

    async def answer_then_crash() -> list[str]:
        writer = TraceWriter(unreachable_postgres_url(), journal_dir=journal_dir)
        await writer.start()
        try:
            outcomes = await asyncio.gather(*(writer.record([trace]) for trace in traces[:10]))
            outcomes += [await writer.record(traces[10:])]
            crashed.mkdir()
            for path in journal_files(journal_dir):  # the crash, right after the answers were sent
                (crashed / path.name).write_bytes(path.read_bytes()[:synced.get(path.stat().st_ino, 0)])
            return outcomes
        finally:
            await writer.stop()

    assert asyncio.run(answer_then_crash()) == ["journaled"] * 11
    monkeypatch.setattr(os, "fsync", real_fsync)
    inserted, replayed, _ = replay_directory(make_trace_store(migrated_engine), crashed,
                                             database_fingerprint(migrated_url))
    assert replayed and inserted == 25
    assert_stored_exactly(migrated_engine, traces)


def test_a_torn_last_line_is_discarded_and_a_corrupt_line_in_the_middle_quarantined(
        migrated_url: str, migrated_engine: Engine, journal_dir: Path) -> None:
    traces = make_traces(3)
    journal_dir.mkdir(parents=True)
    orphan = journal_dir / "journal-999997-torn.jsonl"
    lines = [journal_lines([t]).encode() for t in traces]
    corrupt = b'{"request_id": "x", "received_at": \xff\xfe}\n'  # not even UTF-8: a bad sector, say
    orphan.write_bytes(lines[0] + corrupt + lines[1] + lines[2][:30])  # a crash while appending the last one

    assert asyncio.run(replay_into(migrated_url, journal_dir)) == 2
    assert_stored_exactly(migrated_engine, traces[:2])
    [entry] = [json.loads(line) for line in (journal_dir / f"quarantine-{orphan.name}").read_text().splitlines()]
    kept = entry["unreadable_journal_line"]
    assert (kept["file"], kept["line"], kept["offset"]) == (str(orphan), 2, len(lines[0]))
    assert base64.b64decode(kept["base64"]) == corrupt
    assert not orphan.exists()


def test_a_journal_is_kept_while_its_unreadable_lines_cannot_be_quarantined_and_never_set_aside_twice(
        migrated_url: str, migrated_engine: Engine, journal_dir: Path, monkeypatch) -> None:
    traces = make_traces(2)
    journal_dir.mkdir(parents=True)
    orphan = journal_dir / "journal-999996-bad.jsonl"
    orphan.write_text(journal_lines(traces[:1]) + "not a trace\n" + journal_lines(traces[1:]), encoding="utf-8")
    monkeypatch.setattr(settings, "quarantine_max_bytes", 10)  # the quarantine is full

    asyncio.run(replay_into(migrated_url, journal_dir))
    assert_stored_exactly(migrated_engine, traces)
    assert orphan.exists()  # a line neither stored nor quarantined: the file stays
    assert not list(journal_dir.glob("quarantine-*"))

    monkeypatch.setattr(settings, "quarantine_max_bytes", 1 << 20)
    # A pass that set the line aside, then died before deleting the journal: the next adds it no second time.
    offset = len(journal_lines(traces[:1]).encode())
    TraceJournal(journal_dir).quarantine_unreadable(orphan, [(2, offset, b"not a trace\n")])
    assert asyncio.run(replay_into(migrated_url, journal_dir)) == 0
    assert not orphan.exists()
    assert len((journal_dir / f"quarantine-{orphan.name}").read_text().splitlines()) == 1
    assert_stored_exactly(migrated_engine, traces)


# -- one journal per instance, for one database ---------------------------------------------------------

def test_a_writer_replays_dead_instances_of_its_database_and_never_another_databases(
        migrated_url: str, migrated_engine: Engine, tmp_path: Path) -> None:
    root = tmp_path / "state" / "journal"
    ours, theirs = make_traces(3), make_traces(2, start=10)
    other_database = "postgresql+psycopg://postgres@127.0.0.1:5432/staging"
    for instance, url, batch in (("host-3001", migrated_url, ours), ("host-3002", other_database, theirs)):
        write_database_record(root / instance, database_fingerprint(url), database_identity(url), instance)
        (root / instance / "journal-999990-gone.jsonl").write_text(journal_lines(batch), encoding="utf-8")

    assert asyncio.run(replay_into(migrated_url, root / "host-3000")) == 3
    assert_stored_exactly(migrated_engine, ours)
    assert journal_files(root / "host-3001") == []
    assert len(journal_files(root / "host-3002")) == 1  # another database's: left alone


def test_an_instance_directory_holding_another_databases_journal_is_left_to_it(
        migrated_url: str, tmp_path: Path) -> None:
    directory = tmp_path / "journal" / "host-3000"
    other = "postgresql+psycopg://postgres@db.example:5432/production"
    write_database_record(directory, database_fingerprint(other), database_identity(other), "host-3000")
    (directory / "journal-999989-old.jsonl").write_text(journal_lines(make_traces(1)), encoding="utf-8")

    journal = TraceJournal(directory, fingerprint=database_fingerprint(migrated_url))
    journal.append(make_traces(1, start=5))
    journal.close()
    assert journal.directory == directory.with_name(f"host-3000-{database_fingerprint(migrated_url)}")
    assert read_database_record(journal.directory)["fingerprint"] == database_fingerprint(migrated_url)
    assert read_database_record(directory)["fingerprint"] == database_fingerprint(other)


def test_the_fingerprint_names_the_database_not_the_credentials_or_driver() -> None:
    assert database_fingerprint("postgresql+psycopg://alice:secret@DB.example:5432/traces") == \
        database_fingerprint("postgres://bob@db.example/traces")
    assert database_fingerprint("postgresql://db.example/traces") != database_fingerprint("postgresql://db.example/x")
    assert "secret" not in database_identity("postgresql://alice:secret@db.example/traces")


def test_the_replay_command_replays_a_directory_only_into_its_own_database_unless_forced(
        migrated_url: str, migrated_engine: Engine, tmp_path: Path, monkeypatch, capsys) -> None:
    directory = tmp_path / "journal" / "scaled-down-pod"
    other = "postgresql+psycopg://postgres@127.0.0.1:5432/staging"
    write_database_record(directory, database_fingerprint(other), database_identity(other), "pod-1")
    traces = make_traces(4)
    (directory / "journal-999988-gone.jsonl").write_text(journal_lines(traces), encoding="utf-8")
    monkeypatch.setattr(settings, "database_url", migrated_url)

    assert persistence_command(["replay-journal", str(directory)]) == 2
    assert "staging" in capsys.readouterr().err and len(journal_files(directory)) == 1
    assert persistence_command(["replay-journal", str(directory), "--force-database"]) == 0
    assert journal_files(directory) == []
    assert_stored_exactly(migrated_engine, traces)


# -- no silent overflow ------------------------------------------------------------------------------

def refusals(reason: str) -> float:
    """Traces the journal refused for ``reason`` in this process, as /metrics counts them."""
    return REGISTRY.get_sample_value("futurisys_trace_journal_refusals_total", {"reason": reason}) or 0.0


def test_past_its_cap_the_journal_refuses_and_the_writer_stops_accepting(journal_dir: Path) -> None:
    traces = make_traces(40)
    refused_before = refusals("cap")

    async def scenario():
        writer = TraceWriter(unreachable_postgres_url(), journal_dir=journal_dir,
                             journal_max_bytes=len(journal_lines(traces[:10]).encode()))
        await writer.start()
        try:
            outcomes = [await writer.record([trace]) for trace in traces[:10]]
            with pytest.raises(TraceWriteError, match="journal full"):
                await writer.record(traces[10:11])
            return outcomes, writer.accepting, writer.health()
        finally:
            await writer.stop()

    outcomes, accepting, health = asyncio.run(scenario())
    assert outcomes == ["journaled"] * 10 and not accepting
    assert health.journal_full and health.journal_bytes == len(journal_lines(traces[:10]).encode())
    assert refusals("cap") - refused_before == 1
    on_disk = [t.request_id for path in journal_files(journal_dir) for t in read_journal(path)]
    assert on_disk == [t.request_id for t in traces[:10]]  # the refused trace is nowhere


def test_a_full_disk_refuses_the_call_and_leaves_no_part_of_it_in_the_journal(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)],
                             capture_output=True, text=True)
    need("tmpfs", mounted.returncode == 0, f"cannot mount a small tmpfs: {mounted.stderr.strip()}")
    try:
        journal_dir = small / "journal"
        answered: list[str] = []

        async def scenario():
            writer = TraceWriter(unreachable_postgres_url(), journal_dir=journal_dir, journal_max_bytes=1 << 30)
            await writer.start()
            try:
                for number in range(1000):
                    batch = make_traces(5, start=number * 5)
                    try:
                        await writer.record(batch)
                    except TraceWriteError as exc:
                        return str(exc), writer.accepting
                    answered.extend(t.request_id for t in batch)
                return "never full", writer.accepting
            finally:
                await writer.stop()

        message, accepting = asyncio.run(scenario())
        assert "disk full" in message and not accepting
        on_disk = [t.request_id for path in journal_files(journal_dir) for t in read_journal(path)]
        assert on_disk == answered  # every answered trace, and not one line of the refused call
        assert all(path.read_bytes().endswith(b"\n") for path in journal_files(journal_dir))
    finally:
        subprocess.run(["umount", str(small)], check=False)
