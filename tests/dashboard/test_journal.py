"""The journal backlog as the Service page shows it: a count where the journal is visible, else unknown and why."""
from __future__ import annotations

from pathlib import Path

from dashboard.journal import journal_backlog


def test_traces_waiting_in_journal_files_are_counted(tmp_path: Path) -> None:
    instance = tmp_path / "journal" / "instance-a"
    instance.mkdir(parents=True)
    (instance / "journal-1-abc.jsonl").write_text('{"a": 1}\n{"a": 2}\n\n', encoding="utf-8")
    (instance / "journal-2-def.jsonl").write_text('{"a": 3}\n', encoding="utf-8")
    (instance / "notes.txt").write_text("not a journal\n", encoding="utf-8")
    assert journal_backlog(tmp_path / "journal").pending == 3


def test_an_empty_journal_directory_is_zero(tmp_path: Path) -> None:
    (tmp_path / "journal").mkdir()
    assert journal_backlog(tmp_path / "journal").pending == 0


def test_a_journal_the_dashboard_cannot_see_is_unknown_not_zero(tmp_path: Path) -> None:
    backlog = journal_backlog(tmp_path / "elsewhere" / "journal")
    assert backlog.pending is None
    assert "does not run on the service's host" in backlog.why and str(tmp_path / "elsewhere") in backlog.why
