"""The dashboard's read queries over the trace: aggregates computed by the database, one module per page.

Every function takes a read-only engine and a :class:`Window` and returns a
small pandas frame of aggregates (never the trace table itself, except the
rows the Predictions page lists), with the same code on PostgreSQL and
SQLite (``sql`` holds where they differ). No Streamlit here: the pages call
these through ``dashboard.context.cached_query``, which caches them by name.

Counting: a *request* is an HTTP call (a batch counts once, by its row with
``batch_index`` 0); a *row* is a trace. An *error* is a trace with status
``error`` and no prediction; a *fallback* a trace served by the default model
after a failure.
"""
from dashboard.queries.drift import drift_counts, sample_start
from dashboard.queries.outcomes import (group_predictions, labelled_predictions, outcomes_table_exists,
                                        recent_inputs)
from dashboard.queries.models import PROBABILITY_BINS, model_volume, probability_histogram, served_inputs
from dashboard.queries.service import (LATENCY_EDGES_MS, PERCENTILES, any_trace_received_at, latency_percentiles,
                                       trace_table_exists, trace_totals, volume_over_time)
from dashboard.queries.sql import DAY_S, backend, epoch_bucket, has_percentiles
from dashboard.queries.traces import (LISTED_COLUMNS, TRACE_COLUMNS, prediction_count, prediction_rows,
                                      prediction_summary, trace_by_request_id)
from dashboard.queries.window import PredictionFilter, Window

__all__ = ["drift_counts", "sample_start", "PROBABILITY_BINS", "model_volume", "probability_histogram", "served_inputs",
           "LATENCY_EDGES_MS", "PERCENTILES", "any_trace_received_at", "latency_percentiles", "trace_table_exists",
           "trace_totals", "volume_over_time", "DAY_S", "backend", "epoch_bucket", "has_percentiles",
           "LISTED_COLUMNS", "TRACE_COLUMNS", "prediction_count", "prediction_rows", "prediction_summary",
           "trace_by_request_id",
           "PredictionFilter", "Window", "group_predictions", "labelled_predictions", "outcomes_table_exists",
           "recent_inputs"]
