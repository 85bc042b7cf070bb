"""Prometheus metrics of the trace writer (exposed at the service's GET /metrics).

Module level, so every writer of a process shares them; gauges sum the live
worker processes when prometheus_client runs in multiprocess mode.
"""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WRITE_FAILURES = Counter(
    "futurisys_trace_write_failures", "Group commits that failed, by reason (unavailable: the database refused "
    "or failed as a whole, sent to the journal; deadline: not done within the commit deadline, sent to the journal; "
    "rejected: the database refused a trace for its content; journal: the journal could not be written).",
    ["reason"])
COMMITTED = Counter("futurisys_trace_committed", "Traces committed to the database by group commits.")
JOURNALED = Counter("futurisys_trace_journaled",
                    "Traces written to the local journal while the database was unreachable.")
REPLAYED = Counter("futurisys_trace_replayed", "Journaled traces inserted into the database by a replay.")
JOURNAL_BACKLOG = Gauge("futurisys_trace_journal_backlog_rows", "Traces in this process's journals, not yet replayed.",
                        multiprocess_mode="livesum")
QUEUE_DEPTH = Gauge("futurisys_trace_queue_rows", "Traces waiting for the next group commit.",
                    multiprocess_mode="livesum")
FLUSH_ROWS = Histogram("futurisys_trace_flush_rows", "Traces per group commit.",
                       buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000))
FLUSH_SECONDS = Histogram("futurisys_trace_flush_seconds", "Duration of one group commit (database or journal).",
                          buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
QUARANTINED = Counter("futurisys_trace_quarantined",
                      "Journaled traces the database refused for their content, set aside in a quarantine file "
                      "(an alarm: replay it with `python -m persistence replay-quarantine FILE`).")
LATE_COMMITS = Counter("futurisys_trace_late_committed",
                       "Traces of group commits that landed after their deadline (journaled too; replay skips them).")
WRITER_RESTARTS = Counter("futurisys_trace_writer_restarts", "Trace writer tasks that died and were restarted.",
                          ["task"])
JOURNAL_MODE = Gauge("futurisys_trace_journal_mode",
                     "Worker processes whose trace writer journals (database unavailable) instead of committing.",
                     multiprocess_mode="livesum")
LAST_COMMIT = Gauge("futurisys_trace_last_commit_timestamp_seconds", "Unix time of the last group commit.",
                    multiprocess_mode="livemax")
JOURNAL_BYTES = Gauge("futurisys_trace_journal_bytes",
                      "Bytes of this process's journals, not yet replayed (bounded by FUTURISYS_JOURNAL_MAX_BYTES).",
                      multiprocess_mode="livesum")
JOURNAL_REFUSALS = Counter(
    "futurisys_trace_journal_refusals", "Traces refused (503, no answer) because the journal took no more: "
    "cap (FUTURISYS_JOURNAL_MAX_BYTES reached) or disk_full.", ["reason"])
QUARANTINE_BYTES = Gauge("futurisys_trace_quarantine_bytes",
                         "Bytes of the quarantine files of this instance's journal directory (an alarm when above 0; "
                         "bounded by FUTURISYS_QUARANTINE_MAX_BYTES).", multiprocess_mode="livemax")
REPLAY_FAILING = Gauge(
    "futurisys_trace_replay_failing", "Worker processes whose journal replay fails while the database answers "
    "(read-only, a revoked INSERT): a journal they cannot drain; the replay backs off.", multiprocess_mode="livesum")
REPLAY_FAILURES = Counter("futurisys_trace_replay_failures",
                          "Journal replay passes that failed while the database answered SELECT 1.")
