"""The service's local trace journal, seen from the dashboard: how many traces wait to reach the database."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

JOURNAL_GLOB = "journal-*.jsonl"


@dataclass(frozen=True)
class Backlog:
    """Traces journaled and not yet in the database: a count, or ``None`` (unknown) and why."""

    pending: int | None
    why: str = ""


def journal_backlog(journal_dir: Path) -> Backlog:
    """Traces written to journal files under ``journal_dir`` and not yet replayed.

    Replayed journals are deleted, so every line still there is a trace the
    database does not hold yet. The service creates the directory when it
    starts: without it, the dashboard is not on the service's host (its own
    Space, another machine) and cannot know, which is not the same as 0.
    """
    if not journal_dir.is_dir():
        return Backlog(None, f"no journal directory at {journal_dir}: the dashboard does not run on the service's "
                             "host (or with its FUTURISYS_STATE_DIR), so it cannot see the journal")
    try:
        pending = 0
        for path in journal_dir.rglob(JOURNAL_GLOB):
            with open(path, "rb") as journal:
                pending += sum(1 for line in journal if line.strip())
        return Backlog(pending)
    except OSError as exc:
        return Backlog(None, f"the journal at {journal_dir} cannot be read ({exc.__class__.__name__})")
