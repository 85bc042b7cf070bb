"""Names every part of the benchmark shares: where the project is, the systems under test, units, its error."""
from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
GIB = 1 << 30
MIB = 1 << 20

SYSTEMS = ("baseline", "traced", "untraced", "noop", "batch", "explained", "explained_batch")
LABELS = {
    "baseline": "baseline: FastAPI, 1 tx/request, traced",
    "traced": "ours, traced",
    "untraced": "ours, tracing off",
    "noop": "no-op BentoML endpoint",
    "batch": "ours /predict_batch, traced",
    "explained": "ours + explain, traced",
    "explained_batch": "ours /predict_batch + explain, traced",
}
TRACE_TABLES = {"baseline": "baseline_results", "traced": "prediction_traces", "untraced": "prediction_traces",
                "batch": "prediction_traces", "explained": "prediction_traces", "explained_batch": "prediction_traces"}
TRACED = ("baseline", "traced", "batch", "explained", "explained_batch")
BATCHES = ("batch", "explained_batch")
"""The systems that post ``/predict_batch`` (their rate is in rows per second)."""
EXPLAINED = ("explained", "explained_batch")
"""The systems whose requests ask ``"explain": true`` (the same bodies otherwise)."""


class BenchmarkError(RuntimeError):
    """The benchmark could not run (a tool, a server or the database is missing or failed)."""
