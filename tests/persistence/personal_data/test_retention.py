"""Retention: the purge deletes exactly the traces older than the cutoff, batch by batch, and only when asked to."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from persistence.cli import commands as command
from persistence.database.columns import utcnow
from persistence.personal_data.retention import purge_traces, retention_cutoff
from persistence.trace.store import make_trace_store
from settings import settings
from tests.persistence.expectations import assert_stored_exactly, stored_rows
from tests.persistence.factories import make_trace


def test_the_purge_deletes_exactly_the_traces_older_than_the_cutoff_in_bounded_batches(
        migrated_engine: Engine) -> None:
    cutoff = utcnow() - timedelta(days=30)
    # Five old traces received at one instant: a batch ends among them, and the next must still find the rest.
    old = [make_trace(n, received_at=cutoff - timedelta(days=1, minutes=n)) for n in range(6)]
    old += [make_trace(10 + n, received_at=cutoff - timedelta(hours=2)) for n in range(5)]
    kept = [make_trace(20, received_at=cutoff)] + [make_trace(21 + n, received_at=cutoff + timedelta(hours=n))
                                                   for n in range(6)]
    make_trace_store(migrated_engine).insert([*old, *kept])
    commits: list[int] = []
    sa.event.listen(migrated_engine, "commit", lambda _connection: commits.append(1))
    progress: list[int] = []

    purge = purge_traces(migrated_engine, cutoff, batch_rows=4, pause_s=0,
                         on_batch=lambda done: progress.append(done.deleted))

    assert (purge.deleted, purge.batches) == (11, 3)
    assert progress == [4, 8, 11]
    assert len(commits) == 3  # one transaction per batch
    assert_stored_exactly(migrated_engine, kept)


def test_the_retention_setting_drives_the_default_cutoff_of_the_command(
        migrated_url: str, migrated_engine: Engine, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    now = utcnow()
    old = make_trace(0, received_at=now - timedelta(days=31))
    recent = make_trace(1, received_at=now - timedelta(days=29))
    make_trace_store(migrated_engine).insert([old, recent])
    monkeypatch.setattr(settings, "database_url", migrated_url)
    monkeypatch.setattr(settings, "trace_retention_days", 30)
    assert retention_cutoff(None, now) == now - timedelta(days=30)
    assert retention_cutoff(7, now) == now - timedelta(days=7)

    assert command.main(["purge", "--pause-ms", "0"]) == 0

    out, err = capsys.readouterr()
    assert "purged 1 trace(s) received before" in out and "in 1 batch(es)" in out
    assert "shorter than the six months the EU AI Act" in err
    assert set(stored_rows(migrated_engine)) == {recent.request_id}


def test_a_purge_with_no_retention_set_and_no_option_refuses_and_deletes_nothing(
        sqlite_engine: Engine, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    ancient = make_trace(0, received_at=utcnow() - timedelta(days=3650))
    make_trace_store(sqlite_engine).insert([ancient])
    monkeypatch.setattr(settings, "database_url", sqlite_url)
    monkeypatch.setattr(settings, "trace_retention_days", None)

    assert command.main(["purge"]) == command.EXIT_USAGE

    assert "nothing to do: no retention period is set (FUTURISYS_TRACE_RETENTION_DAYS" in capsys.readouterr().err
    assert set(stored_rows(sqlite_engine)) == {ancient.request_id}
    assert retention_cutoff(None) is None
