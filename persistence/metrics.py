"""Prometheus metrics of the trace writer (exposed at the service's GET /metrics).

Module level, so every writer of a process shares them; gauges sum the live
worker processes when prometheus_client runs in multiprocess mode.
"""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WRITE_FAILURES = Counter(
    "futurisys_trace_write_failures", "Group commits that failed, by reason (unreachable: sent to the journal; "
    "rejected: the database refused a trace; journal: the journal could not be written).", ["reason"])
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
