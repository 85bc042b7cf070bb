"""A trace refused for its own content: checked at the door, else quarantined (an alarm), and replayed by a command."""
from __future__ import annotations

import asyncio
import builtins
import io
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from persistence.cli import commands as command
from persistence.database.migrate import upgrade
from persistence.trace.journal_format import journal_lines, read_journal
from persistence.trace.writer import TraceWriter
from settings import settings
from tests.persistence.expectations import assert_stored_exactly, sample
from tests.persistence.factories import make_trace, make_traces

REFUSED_MODEL = "refused_by_a_rule"


def refuse_model(engine: Engine, refused: bool) -> None:
    """A rule of the database (a constraint added later, say) that refuses one model name, or its removal."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(sa.text(
                f"ALTER TABLE prediction_traces ADD CONSTRAINT refused CHECK (model_name <> '{REFUSED_MODEL}')"
                if refused else "ALTER TABLE prediction_traces DROP CONSTRAINT refused"))
        elif refused:
            connection.execute(sa.text(
                f"CREATE TRIGGER refused BEFORE INSERT ON prediction_traces WHEN NEW.model_name = '{REFUSED_MODEL}' "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"))
        else:
            connection.execute(sa.text("DROP TRIGGER refused"))


def test_a_trace_the_database_refuses_is_quarantined_counted_shown_then_replayed_by_the_command(
        migrated_url: str, migrated_engine: Engine, journal_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good, refused = make_traces(6), make_trace(50, model_name=REFUSED_MODEL)
    journal_dir.mkdir(parents=True)
    orphan = journal_dir / "journal-999997-feed.jsonl"
    orphan.write_text(journal_lines([*good[:3], refused, *good[3:]]), encoding="utf-8")
    refuse_model(migrated_engine, True)
    quarantined_before = sample("futurisys_trace_quarantined_total")

    async def replay_and_look():
        writer = TraceWriter(migrated_url, journal_dir=journal_dir, replay_interval_s=3600)
        try:
            inserted = await writer.replay_once()
            await writer.start()
            return inserted, writer.health()
        finally:
            await writer.stop()

    inserted, health = asyncio.run(replay_and_look())
    quarantine = journal_dir / f"quarantine-{orphan.name}"
    assert inserted == 6 and not orphan.exists()
    assert [t.request_id for t in read_journal(quarantine)] == [refused.request_id]
    assert sample("futurisys_trace_quarantined_total") - quarantined_before == 1
    assert health.quarantined == 1
    assert_stored_exactly(migrated_engine, good)

    # Still refused: the command keeps it and says so.
    monkeypatch.setattr(settings, "database_url", migrated_url)
    assert command.main(["replay-quarantine", str(quarantine)]) == command.EXIT_STILL_REFUSED
    assert [t.request_id for t in read_journal(quarantine)] == [refused.request_id]
    # The cause fixed: the command replays it, exactly once, and removes the file.
    refuse_model(migrated_engine, False)
    assert command.main(["replay-quarantine", str(quarantine)]) == 0
    assert not quarantine.exists()
    assert_stored_exactly(migrated_engine, [*good, refused])


def test_the_quarantine_command_keeps_a_file_whose_database_is_unavailable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    quarantine = tmp_path / "quarantine-journal-1-a.jsonl"
    quarantine.write_text(journal_lines(make_traces(2)), encoding="utf-8")
    before = quarantine.read_bytes()
    monkeypatch.setattr(settings, "database_url", f"sqlite:///{tmp_path / 'not-a-dir.db' / 'x.db'}")
    (tmp_path / "not-a-dir.db").write_text("")  # the database's directory is a file: it cannot open
    assert command.main(["replay-quarantine", str(quarantine)]) == command.EXIT_DATABASE
    assert quarantine.read_bytes() == before


@pytest.mark.parametrize("field, value, rule", [
    ("model_name", "m" * 201, "its column holds 200"),
    ("request_id", "r" * 65, "its column holds 64"),
    ("batch_index", 2 ** 31, "out of its column's range"),
    ("employee_id", 2 ** 63, "out of its column's range"),
    ("prediction", 2, "prediction must be 0, 1 or None"),
    ("probability", float("nan"), "finite"),
    ("total_ms", float("inf"), "finite"),
    ("error", "boom\x00", "NUL"),
    ("fallback", "yes", "must be a boolean"),
    ("inputs", {"age": {35}}, "not a JSON document"),
    ("inputs", {"poste": "a\x00b"}, "NUL"),
])
def test_every_traced_value_is_checked_against_its_column_at_the_door(field: str, value: object, rule: str) -> None:
    with pytest.raises(ValueError, match=rule) as refused:
        make_trace(1, **{field: value})
    assert field in str(refused.value)
    assert "\x00" not in str(refused.value) and "mmmm" not in str(refused.value)  # names the field, not the value


def test_values_at_the_edge_of_their_columns_are_accepted_and_journaled_as_given(tmp_path: Path) -> None:
    trace = make_trace(1, model_name="m" * 200, batch_index=2 ** 31 - 1, employee_id=-(2 ** 63), error="é" * 5000)
    path = tmp_path / "j.jsonl"
    path.write_text(journal_lines([trace]), encoding="utf-8")
    assert list(read_journal(path)) == [trace]
    assert json.loads(path.read_text())["model_name"] == "m" * 200


def test_health_reads_a_quarantine_file_once_per_change_not_on_every_call(
        sqlite_url: str, journal_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    upgrade(sqlite_url, lock_dir=tmp_path)
    journal_dir.mkdir(parents=True)
    files = {journal_dir / f"quarantine-journal-99999{n}-gone.jsonl": make_traces(n + 2, start=10 * n)
             for n in range(3)}
    for path, traces in files.items():
        path.write_text(journal_lines(traces), encoding="utf-8")
    reads: list[str] = []
    real_open = io.open

    def counting_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, Path)) and Path(file).name.startswith("quarantine-") and "r" in mode:
            reads.append(Path(file).name)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(io, "open", counting_open)
    monkeypatch.setattr(builtins, "open", counting_open)

    async def look():
        writer = TraceWriter(sqlite_url, journal_dir=journal_dir, replay_interval_s=3600)
        await writer.start()
        try:
            seen = [writer.health().quarantined for _ in range(100)]
            reads_at_first = len(reads)
            # The writer quarantines one more trace: it keeps the count without reading the file again.
            writer.journal.quarantine(next(iter(files)).parent / "journal-999990-gone.jsonl", [make_trace(99)])
            seen += [writer.health().quarantined for _ in range(100)]
            reads_after_own_append = len(reads)
            # Another process rewrites one (an erasure, a replay of it): read again, once.
            last = list(files)[-1]
            last.write_text(journal_lines(files[last][:1]), encoding="utf-8")
            seen += [writer.health().quarantined for _ in range(100)]
            return seen, reads_at_first, reads_after_own_append
        finally:
            await writer.stop()

    seen, reads_at_first, reads_after_own_append = asyncio.run(look())
    assert seen[:100] == [2 + 3 + 4] * 100 and seen[100:200] == [10] * 100 and seen[200:] == [10 - 3] * 100
    assert reads_at_first == len(files), f"{reads_at_first} reads of quarantine files for 100 health calls"
    assert reads_after_own_append == reads_at_first
    assert len(reads) == reads_at_first + 1
