"""Service: how is the service doing? Volume, latency, errors and fallbacks over the window."""
from __future__ import annotations

from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from dashboard.context import (COUNTING_NOTE, cached_query, chart_step, current_window, percent, require_traces,
                               window_label)
from dashboard.journal import journal_backlog
from settings import settings

st.title("Service")
st.caption(f"How is the service doing? Traces of the {window_label()}. {COUNTING_NOTE}")

window = current_window()
totals = require_traces(window)
step = chart_step(window, totals)
latency = cached_query("latency_percentiles", window, None)
approximate = bool(latency["approximate"].any()) if not latency.empty else False
total_latency = latency[latency["measure"] == "total"]
p95 = float(total_latency["p95"].iloc[0]) if not total_latency.empty else None

requests, rows, errors, fallbacks = st.columns(4)
requests.metric("Requests", f"{totals['requests']:,}",
                help="HTTP calls: a batch counts once (its row with batch_index 0), plus single calls.")
rows.metric("Rows", f"{totals['rows']:,}", help="Traces: one per predicted employee.")
errors.metric("Error rate", percent(totals["error_rate"]),
              help=f"{totals['errors']:,} traces with status error and no prediction, over all rows.")
fallbacks.metric("Fallback rate", percent(totals["fallback_rate"]),
                 help=f"{totals['fallbacks']:,} rows served by the default model after their model failed.")
batch, latency_p95, backlog = st.columns(3)
batch.metric("Batch share of requests", percent(totals["batch_request_share"]),
             help=f"{totals['batch_requests']:,} batch calls ({totals['batch_rows']:,} rows) among "
                  f"{totals['requests']:,} requests.")
latency_p95.metric("p95 total latency" + (" (approx.)" if approximate else ""),
                   "–" if p95 is None else f"{p95:.1f} ms")
pending = journal_backlog(Path(settings.journal_dir))
backlog.metric("Journaled, not yet in the database", "unreadable" if pending is None else f"{pending:,}",
               help=f"Traces in the journal files of {settings.journal_dir} (readable only on the service's host).")

volume = cached_query("volume_over_time", window, step)
st.subheader("Requests and rows over time, by model version")
time_title = f"time (UTC, {step // 60} min buckets)" if step < 86_400 else "day (UTC)"
for column, count in zip(st.columns(2), ("requests", "rows")):
    column.altair_chart(
        alt.Chart(volume).mark_bar().encode(
            x=alt.X("time:T", title=time_title), y=alt.Y(f"sum({count}):Q", title=count),
            color=alt.Color("model:N", title="model version"),
            tooltip=["time:T", "model:N", f"sum({count}):Q"],
        ).properties(height=240, title=count.capitalize()),
        width="stretch")

st.subheader("Latency percentiles over time" + (" (approximate)" if approximate else ""))
if approximate:
    st.caption("SQLite has no percentile function: these come from fixed latency buckets counted in SQL, "
               "interpolated within a bucket.")
over_time = cached_query("latency_percentiles", window, step)
if over_time.empty:
    st.caption("No latency recorded in this window.")
else:
    percentiles = over_time.melt(id_vars=["time", "measure"], value_vars=["p50", "p95", "p99"],
                                 var_name="percentile", value_name="ms")
    st.altair_chart(
        alt.Chart(percentiles).mark_line(point=True).encode(
            x=alt.X("time:T", title="time (UTC)"), y=alt.Y("ms:Q", title="ms"),
            color=alt.Color("percentile:N"), strokeDash=alt.StrokeDash("measure:N", title="measure"),
            tooltip=["time:T", "measure:N", "percentile:N", alt.Tooltip("ms:Q", format=".2f")],
        ).properties(height=260),
        width="stretch")

st.subheader("Error and fallback rates over time")
by_time = volume.groupby("time", as_index=False)[["rows", "errors", "fallbacks"]].sum()
by_time["error rate"] = by_time["errors"] / by_time["rows"]
by_time["fallback rate"] = by_time["fallbacks"] / by_time["rows"]
rates = by_time.melt(id_vars=["time"], value_vars=["error rate", "fallback rate"], var_name="rate",
                     value_name="share")
st.altair_chart(
    alt.Chart(rates).mark_line(point=True).encode(
        x=alt.X("time:T", title="time (UTC)"), y=alt.Y("share:Q", title="share of rows", axis=alt.Axis(format="%")),
        color="rate:N", tooltip=["time:T", "rate:N", alt.Tooltip("share:Q", format=".2%")],
    ).properties(height=200),
    width="stretch")

st.subheader("Batch and single requests")
shares = pd.DataFrame({"kind": ["single /predict", "batch /predict_batch"],
                       "requests": [totals["requests"] - totals["batch_requests"], totals["batch_requests"]],
                       "rows": [totals["rows"] - totals["batch_rows"], totals["batch_rows"]]})
st.altair_chart(
    alt.Chart(shares.melt(id_vars="kind", var_name="count", value_name="n")).mark_bar().encode(
        y=alt.Y("count:N", title=None), x=alt.X("n:Q", stack="normalize", title="share", axis=alt.Axis(format="%")),
        color=alt.Color("kind:N", title=None), tooltip=["kind:N", "count:N", "n:Q"],
    ).properties(height=120),
    width="stretch")
