"""The service's local trace journal, seen from the dashboard: how many traces wait to reach the database."""
from __future__ import annotations

from pathlib import Path

JOURNAL_GLOB = "journal-*.jsonl"


def journal_backlog(journal_dir: Path) -> int | None:
    """Traces written to journal files under ``journal_dir`` and not yet replayed; ``None`` if unreadable.

    Replayed journals are deleted, so every line still there is a trace the
    database does not hold yet. No directory means no journal: 0.
    """
    if not journal_dir.exists():
        return 0
    try:
        pending = 0
        for path in journal_dir.rglob(JOURNAL_GLOB):
            with open(path, "rb") as journal:
                pending += sum(1 for line in journal if line.strip())
        return pending
    except OSError:
        return None
