"""What the trace writer and its journal replay report: their counts, the writer's health and outcomes.

Below both :mod:`persistence.trace.writer` and :mod:`persistence.trace.replay`,
which share a :class:`WriterStats`.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Outcome = Literal["committed", "journaled"]
WriterState = Literal["committing", "journaling", "failed", "stopped"]


class TraceWriteError(RuntimeError):
    """Traces were neither committed nor journaled: their request must not be answered as a success."""


@dataclass
class WriterStats:
    """What one writer did since it was created (for tests, benchmarks and logs)."""

    record_calls: int = 0
    transactions: int = 0  # group commits to the database (each holds one or more record() calls)
    committed: int = 0
    journaled: int = 0
    replayed: int = 0
    rejected: int = 0  # traces refused for their own content (live: the call failed; replay: quarantined)
    deadline_misses: int = 0
    late_committed: int = 0  # traces of a group that missed its deadline (so journaled) and landed after all
    restarts: int = 0
    peak_queue_rows: int = 0


@dataclass(frozen=True)
class WriterHealth:
    """The trace writer's state, as the health detail shows it."""

    state: WriterState
    healthy: bool  # the flusher runs: traces are committed or journaled
    database_reachable: bool
    journal_backlog: int  # this process's journaled traces not yet replayed
    journal_bytes: int  # ... their size, bounded by journal_max_bytes
    journal_full: bool  # the last append was refused (cap or full disk): requests needing the journal get 503
    orphaned_journals: int  # journal files of processes that are gone, waiting for a replay
    replay_failing: bool  # the database answers but the replay fails: a journal this worker cannot drain
    replay_failures: int  # consecutive failed replay passes (each waits twice as long, up to a bound)
    replay_error: str | None  # what the last failed pass met (its class and SQLSTATE, no value)
    quarantined: int  # traces set aside in quarantine files (an alarm: see `python -m persistence`)
    quarantine_bytes: int
    last_commit_at: datetime | None
    restarts: int
