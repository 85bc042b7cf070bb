"""Erasure: one employee's data goes from every place the service keeps it, and a journal replay brings none back."""
from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from attrition.schema import FEATURE_NAMES, TARGET
from persistence.cli import commands as command
from persistence.database.columns import utcnow
from persistence.database.schema import employee_erasures, employees, trace_reads
from persistence.database.traces import Trace
from persistence.personal_data.erasure import erase_employees
from persistence.personal_data.reads import record_read
from persistence.trace.journal import TraceJournal
from persistence.trace.journal_format import journal_lines, read_journal
from persistence.trace.store import make_trace_store
from persistence.trace.writer import TraceWriter
from settings import settings
from tests.persistence.expectations import assert_stored_exactly
from tests.persistence.factories import EMPLOYEES, make_trace

ERASED, KEPT = 1, 2


def traces_of(employee_id: int | None, count: int, start: int) -> list[Trace]:
    """``count`` distinct traces tagged with ``employee_id`` (None: inline fields, no id)."""
    return [make_trace(start + n, employee_id=employee_id) for n in range(count)]


def seed_employees(engine: Engine, ids: list[int]) -> None:
    """Employee rows of synthetic employees under ``ids``."""
    rows = [{"id_employee": employee_id, **{name: EMPLOYEES[n][name] for name in FEATURE_NAMES}, TARGET: "Non"}
            for n, employee_id in enumerate(ids)]
    with engine.begin() as connection:
        connection.execute(sa.insert(employees), rows)


def employee_ids_in(path: Path) -> list[int | None]:
    """The employee id of each trace of a journal-format file, in order."""
    return [trace.employee_id for trace in read_journal(path)]


def test_erasure_removes_the_employee_everywhere_and_only_them_and_leaves_a_tombstone(
        migrated_url: str, migrated_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    state_dir = tmp_path / "state"
    erased, kept, untagged = traces_of(ERASED, 3, 0), traces_of(KEPT, 2, 10), traces_of(None, 2, 20)
    make_trace_store(migrated_engine).insert([*erased, *kept, *untagged])
    seed_employees(migrated_engine, [ERASED, KEPT])
    record_read(migrated_engine, "auditor", "GET /predictions", {"employee_id": ERASED}, rows=3)
    record_read(migrated_engine, "auditor", "GET /predictions/{request_id}", {"request_id": erased[0].request_id},
                rows=1)
    record_read(migrated_engine, "auditor", "GET /predictions", {"employee_id": KEPT}, rows=2)
    record_read(migrated_engine, "auditor", "GET /predictions", {"limit": 10}, rows=7)
    # A dead instance's journal (in a per-instance directory, as replicas have), with a line no one can read.
    dead = state_dir / "journal" / "instance-a" / "journal-999991-dead.jsonl"
    dead.parent.mkdir(parents=True)
    dead_erased, dead_kept = traces_of(ERASED, 2, 30), [*traces_of(KEPT, 1, 40), *traces_of(None, 1, 50)]
    dead.write_text(journal_lines([dead_erased[0], *dead_kept, dead_erased[1]]) + "not a trace\n", encoding="utf-8")
    # A quarantine file: a refused trace of each, and a line of another version (an unknown field) set aside as
    # written, wrapped with where it came from.
    quarantine = state_dir / "journal" / "quarantine-journal-999992-gone.jsonl"
    newer = json.dumps({**traces_of(ERASED, 1, 90)[0].to_dict(), "field_of_a_newer_version": 1})
    wrapped = json.dumps({"unreadable_journal_line": {"file": "journal-999992-gone.jsonl", "line": 3, "offset": 999,
                                                      "text": newer + "\n"}})
    quarantine.write_bytes(journal_lines([*traces_of(ERASED, 1, 60), *traces_of(KEPT, 1, 70)]).encode()
                           + wrapped.encode() + b"\n" + b"\xff not utf-8\n")
    # A running service's journal: locked by its owner, it is not rewritten (the tombstone covers it).
    live = TraceJournal(state_dir / "journal")
    live_file = live.append(traces_of(ERASED, 1, 80))

    monkeypatch.setattr(settings, "database_url", migrated_url)
    monkeypatch.setattr(settings, "state_dir", state_dir)
    try:
        assert command.main(["erase", "--employee", str(ERASED), "--by", "dpo", "--settle-s", "0"]) == 0
    finally:
        live.close()
    printed = capsys.readouterr().out

    assert_stored_exactly(migrated_engine, [*kept, *untagged])
    with migrated_engine.connect() as connection:
        assert connection.execute(sa.select(employees.c.id_employee)).scalars().all() == [KEPT]
        reads = connection.execute(sa.select(trace_reads.c.employee_id, trace_reads.c.rows)).all()
        tombstones = connection.execute(sa.select(employee_erasures)).mappings().all()
    assert sorted(reads, key=str) == sorted([(KEPT, 2), (None, 7)], key=str)
    assert employee_ids_in(dead) == [KEPT, None] and dead.read_text().endswith("not a trace\n")
    first, *rest = quarantine.read_bytes().splitlines()
    assert json.loads(first)["employee_id"] == KEPT and rest == [b"\xff not utf-8"]
    assert employee_ids_in(live_file) == [ERASED]
    [tombstone] = tombstones
    assert set(tombstone) == {"erasure_id", "employee_id", "erased_at", "erased_by"}
    assert tombstone["employee_id"] == ERASED and tombstone["erased_by"] == "dpo"
    assert abs(tombstone["erased_at"] - utcnow()) < timedelta(minutes=1)
    assert (f"employee {ERASED}: removed 3 trace(s), 1 employee row(s), 2 read-log row(s), 2 journal line(s), "
            f"2 quarantine line(s); tombstone {tombstone['erasure_id']}") in printed
    assert "journals: 2 scanned, 1 rewritten; 1 locked by a running process" in printed
    assert "quarantine files: 1 scanned, 1 rewritten" in printed


def test_a_journal_written_before_the_erasure_brings_nothing_back_when_replayed(
        migrated_url: str, migrated_engine: Engine, tmp_path: Path) -> None:
    journal_dir = tmp_path / "state" / "journal"
    others = [*traces_of(KEPT, 2, 10), *traces_of(None, 1, 20)]
    now = utcnow()
    before = [make_trace(n, employee_id=ERASED, received_at=now - timedelta(seconds=n + 1)) for n in range(3)]
    # Journaled by a service during an outage; still running (its journal locked) when the employee is erased.
    service = TraceJournal(journal_dir)
    journal = service.append([before[0], *others, *before[1:]])
    erasures, scrub = erase_employees(migrated_engine, [ERASED], "dpo", journal_dir.parent, settle_s=0)
    assert scrub.journals_live == [journal] and erasures[0].journal_lines == 0
    service.close()  # the service dies: its journal is an orphan, replayed by the next writer
    # A prediction for that employee id after the erasure is new processing: journaled and replayed as usual.
    after = make_trace(30, employee_id=ERASED, received_at=utcnow() + timedelta(milliseconds=1))
    (journal_dir / "journal-999993-later.jsonl").write_text(journal_lines([after]), encoding="utf-8")

    async def replay() -> int:
        writer = TraceWriter(migrated_url, journal_dir=journal_dir)
        try:
            return await writer.replay_once()
        finally:
            await writer.stop()

    assert asyncio.run(replay()) == len(others) + 1
    assert_stored_exactly(migrated_engine, [*others, after])
    assert not list(journal_dir.glob("journal-*.jsonl"))


def test_erase_names_the_faulty_line_of_an_ids_file_and_erases_nothing(
        sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("# erasure requests of the week\n12\n\nJane Doe\n", encoding="utf-8")
    monkeypatch.setattr(settings, "database_url", sqlite_url)
    monkeypatch.setattr(settings, "state_dir", tmp_path / "state")
    assert command.main(["erase", "--employees-file", str(ids)]) == command.EXIT_USAGE
    error = capsys.readouterr().err
    assert f"{ids}:4: not an employee id" in error and "Jane" not in error
