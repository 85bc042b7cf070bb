"""Erasure reaches every copy of an employee's data, in its own database's files only, and traces in flight."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from persistence.database.columns import utcnow
from persistence.database.engine import database_fingerprint, make_engine
from persistence.database.migrate import upgrade
from persistence.database.schema import employee_erasures, prediction_traces
from persistence.personal_data.erasure import erase_employees
from persistence.trace.journal_format import journal_lines, unreadable_entry, write_database_record
from persistence.trace.store import make_trace_store
from settings import settings
from tests.persistence.factories import make_trace

ERASED, KEPT = 1, 2
OLD_SETTLE_S = 5.0  # the fixed settle time erasure used to wait, shorter than the statement timeout


def trace_line(number: int, employee_id: int) -> bytes:
    """One journal line of a trace of ``employee_id``."""
    return journal_lines([make_trace(number, employee_id=employee_id)]).encode()


def not_utf8_line(number: int, employee_id: int) -> bytes:
    """A journal line of a trace of ``employee_id`` with a byte that is not UTF-8 in one of its strings."""
    return trace_line(number, employee_id).replace(b'"model_name":"', b'"model_name":"\xff', 1)


def quarantined(line: bytes, number: int) -> bytes:
    """The quarantine entry the replay writes for a journal line that does not read as a trace."""
    return orjson.dumps(unreadable_entry(Path("journal-999990-gone.jsonl"), number, number * 100, line)) + b"\n"


# Every encoding in which the service keeps a line of an employee's trace in its files.
COPIES = {
    "journal: a trace": ("journal-999991-dead.jsonl", lambda n, e: trace_line(n, e)),
    "journal: a line that is not UTF-8": ("journal-999991-dead.jsonl", not_utf8_line),
    "quarantine: a refused trace": ("quarantine-journal-999992-gone.jsonl", trace_line),
    "quarantine: a line set aside as text": (
        "quarantine-journal-999992-gone.jsonl", lambda n, e: quarantined(trace_line(n, e)[:-1] + b' \n', n)),
    "quarantine: a line set aside as base64": (
        "quarantine-journal-999992-gone.jsonl", lambda n, e: quarantined(not_utf8_line(n, e), n)),
}


@pytest.mark.parametrize("copy", COPIES)
def test_erasure_finds_the_employee_in_each_copy_whatever_its_encoding(
        copy: str, sqlite_engine: Engine, tmp_path: Path) -> None:
    name, encode = COPIES[copy]
    path = tmp_path / "state" / "journal" / "instance-a" / name
    path.parent.mkdir(parents=True)
    theirs, others = encode(1, ERASED), encode(2, KEPT)
    if copy.endswith("base64"):
        assert b'"base64"' in theirs  # the service's own encoding of such a line
    path.write_bytes(theirs + others)

    erasures, scrub = erase_employees(sqlite_engine, [ERASED], "dpo", tmp_path / "state", settle_s=0)

    assert path.read_bytes() == others
    found = erasures[0].journal_lines + erasures[0].quarantine_lines
    assert found == 1, scrub.lines()


def test_erasure_leaves_the_files_of_another_database_sharing_the_state_directory(
        sqlite_engine: Engine, tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    ours, staging = state_dir / "journal" / "production-0", state_dir / "journal" / "staging-0"
    write_database_record(ours, database_fingerprint(sqlite_engine.url), "ours", "production-0")
    write_database_record(staging, "0123456789abcdef", "staging", "staging-0")
    files = {}
    for directory in (ours, staging):
        for name in ("journal-999991-dead.jsonl", "quarantine-journal-999992-gone.jsonl"):
            files[directory / name] = trace_line(1, ERASED) + trace_line(2, KEPT)
            (directory / name).write_bytes(files[directory / name])

    _, scrub = erase_employees(sqlite_engine, [ERASED], "dpo", state_dir, settle_s=0)

    for path, written in files.items():
        if path.parent == ours:
            assert path.read_bytes() == written.split(b"\n", 1)[1], f"our file kept the employee: {path}"
        else:
            assert path.read_bytes() == written, f"another database's file was changed: {path}"
    assert (scrub.journals_scanned, scrub.quarantine_scanned) == (1, 1)


@pytest.fixture
def pg_engine(postgres_url: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a fresh PostgreSQL database at the latest schema."""
    upgrade(postgres_url, lock_dir=tmp_path)
    engine = make_engine(postgres_url)
    yield engine
    engine.dispose()


def stored_of(engine: Engine, employee_id: int) -> int:
    """Traces of ``employee_id`` in the database."""
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(prediction_traces).where(
            prediction_traces.c.employee_id == employee_id)).scalar_one()


def wait_for(condition, what: str, deadline_s: float = 60.0) -> None:
    """Poll ``condition`` until true; fail naming ``what`` past a generous deadline."""
    ends = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < ends, f"timed out waiting for {what}"
        time.sleep(0.05)


def tombstone_written(engine: Engine) -> bool:
    """True once an erasure's tombstone is committed."""
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(employee_erasures)).scalar_one() > 0


@pytest.mark.postgres
def test_a_trace_in_flight_when_the_erasure_starts_is_erased_even_if_it_lands_after_the_old_settle_time(
        postgres_url: str, pg_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A write may run for the whole statement timeout; here longer than the old fixed settle time.
    monkeypatch.setattr(settings, "statement_timeout_ms", 12_000)
    in_flight = make_trace(1, employee_id=ERASED, received_at=utcnow())
    blocker_engine = make_engine(postgres_url)
    # Bounded by the statement timeout only (a lock wait is what keeps it in flight here).
    writer_engine = make_engine(postgres_url, statement_timeout_ms=settings.statement_timeout_ms, lock_timeout_ms=0)
    blocker = blocker_engine.connect()
    landed: list[int] = []
    try:
        # Another transaction holds the same request id, uncommitted: the in-flight insert waits on it.
        blocker.execute(sa.insert(prediction_traces), [make_trace(2, employee_id=KEPT, request_id=in_flight.request_id)
                                                       .row()])
        writing = threading.Thread(target=lambda: landed.append(
            make_trace_store(writer_engine).insert_missing([in_flight])))
        writing.start()

        def waiting_on_lock() -> bool:
            with pg_engine.connect() as connection:
                return connection.execute(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'")).scalar_one() > 0

        wait_for(waiting_on_lock, "the in-flight insert to wait")

        def release_after_the_old_settle_time() -> None:
            wait_for(lambda: tombstone_written(pg_engine), "the tombstone")
            time.sleep(OLD_SETTLE_S + 1)
            blocker.rollback()  # the in-flight insert goes on and commits its trace

        releasing = threading.Thread(target=release_after_the_old_settle_time)
        releasing.start()
        erase_employees(pg_engine, [ERASED], "dpo", tmp_path / "state")
        releasing.join()
        writing.join()
    finally:
        blocker.close()
        blocker_engine.dispose()
        writer_engine.dispose()
    assert landed == [1], "the in-flight trace must have landed during the erasure"
    assert stored_of(pg_engine, ERASED) == 0


@pytest.mark.postgres
def test_a_trace_from_an_instance_whose_clock_runs_ahead_is_erased_when_it_lands_during_the_erasure(
        pg_engine: Engine, tmp_path: Path) -> None:
    def land_a_trace_stamped_ahead() -> None:
        wait_for(lambda: tombstone_written(pg_engine), "the tombstone")
        # Received just after the tombstone by the database's clock, stamped 3 s later by the instance's.
        ahead = make_trace(1, employee_id=ERASED, received_at=utcnow() + timedelta(seconds=3))
        make_trace_store(pg_engine).insert_missing([ahead])

    landing = threading.Thread(target=land_a_trace_stamped_ahead)
    landing.start()
    erase_employees(pg_engine, [ERASED], "dpo", tmp_path / "state", settle_s=6.0)
    landing.join()
    assert stored_of(pg_engine, ERASED) == 0
