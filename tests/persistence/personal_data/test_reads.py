"""The read log on both backends: a read is recorded with identifiers only, and answers "who read employee N"."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from persistence.database.schema import prediction_traces, trace_reads
from persistence.personal_data.reads import reads_of_employee, record_read
from tests.conftest import PROJECT_ROOT
from tests.persistence.factories import make_trace


def _store(engine, *traces) -> None:
    with engine.begin() as connection:
        connection.execute(sa.insert(prediction_traces), [t.row() for t in traces])


def test_a_read_is_recorded_with_its_key_route_parameters_and_rows(migrated_engine):
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    record_read(migrated_engine, "auditor", "GET /predictions", {"employee_id": 12, "from": start, "to": None,
                                                                 "limit": 50, "offset": 0}, rows=3)
    with migrated_engine.connect() as connection:
        [row] = connection.execute(sa.select(trace_reads)).mappings().all()
    assert (row["key_id"], row["route"], row["employee_id"], row["request_id"], row["rows"]) \
        == ("auditor", "GET /predictions", 12, None, 3)
    assert row["parameters"] == {"employee_id": 12, "from": start.isoformat(), "to": None, "limit": 50, "offset": 0}
    assert datetime.now(timezone.utc) - row["read_at"] < timedelta(minutes=1)


def test_who_read_an_employee_counts_their_reads_their_request_ids_and_listings_since_their_first_trace(
        migrated_engine):
    theirs = make_trace(1, employee_id=7, received_at=datetime.now(timezone.utc) - timedelta(hours=1))
    _store(migrated_engine, theirs, make_trace(2, employee_id=8))
    record_read(migrated_engine, "auditor", "GET /predictions", {"employee_id": 7}, rows=1)
    record_read(migrated_engine, "hr-tool", "GET /predictions/{request_id}", {"request_id": theirs.request_id},
                rows=1, employee_id=7)
    record_read(migrated_engine, None, "GET /predictions", {"employee_id": None, "limit": 500}, rows=2)
    record_read(migrated_engine, "auditor", "GET /predictions", {"employee_id": 8}, rows=1)
    record_read(migrated_engine, "auditor", "GET /predictions", {"employee_id": None}, rows=0)
    record_read(migrated_engine, "dashboard", "dashboard audit view", {"employee_id": 7}, rows=1)
    reads = reads_of_employee(migrated_engine, 7)
    assert sorted((r["key_id"] or "", r["how"], r["request_id"] or "") for r in reads) == [
        ("", "listing", ""), ("auditor", "employee", ""), ("dashboard", "employee", ""),
        ("hr-tool", "employee", theirs.request_id)]
    assert [r["read_at"] for r in reads] == sorted(r["read_at"] for r in reads)
    assert reads_of_employee(migrated_engine, 99) == []


def test_the_reads_command_prints_who_read_an_employee(sqlite_url: str, tmp_path: Path):
    environment = {**os.environ, "DATABASE_URL": sqlite_url, "FUTURISYS_STATE_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "persistence", "reads", "--employee", "7"]
    empty = subprocess.run(command, cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=60)
    assert empty.returncode == 0 and "no read" in empty.stdout
    from persistence.database.engine import make_engine

    engine = make_engine(sqlite_url)
    try:
        record_read(engine, "auditor", "GET /predictions", {"employee_id": 7}, rows=4)
    finally:
        engine.dispose()
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "key=auditor" in done.stdout and "GET /predictions" in done.stdout and "rows=4" in done.stdout
