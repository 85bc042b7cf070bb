"""Service: how is the service doing? Volume, latency, errors and fallbacks over the window."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.context import (COUNTING_NOTE, cached_query, chart_axis, current_window, display_zone, percent,
                               require_traces, window_label)
from dashboard.journal import journal_backlog
from settings import settings

st.title("Service")
window = current_window()
totals = require_traces(window)
axis = chart_axis(window, totals)
zone = display_zone()
latency = cached_query("latency_percentiles", window, None)
approximate = bool(latency["approximate"].any()) if not latency.empty else False
total_latency = latency[latency["measure"] == "total"]
p95 = float(total_latency["p95"].iloc[0]) if not total_latency.empty else None
p95_text = "no latency recorded" if p95 is None else f"p95 {p95:.0f} ms" + (" (approx.)" if approximate else "")

# The page's answer first: healthy means no error and no fallback in the window.
problems = [f"{totals['errors']:,} errors ({percent(totals['error_rate'])})" if totals["errors"] else "",
            f"{totals['fallbacks']:,} fallbacks ({percent(totals['fallback_rate'])})" if totals["fallbacks"] else ""]
problems = [p for p in problems if p]
answer = (f"{totals['requests']:,} requests ({totals['rows']:,} rows), {p95_text} over the {window_label()}.")
if problems:
    st.warning(f"**Service answered with failures:** {' and '.join(problems)}; {answer}")
else:
    st.success(f"**Service healthy:** 0 errors, 0 fallbacks; {answer}")
st.caption(f"How is the service doing? Traces of the {window_label()}. {COUNTING_NOTE}")

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
backlog.metric("Journaled, not yet in the database", "unknown" if pending.pending is None else f"{pending.pending:,}",
               help=f"Traces in the journal files of {settings.journal_dir} (readable only on the service's host).")
if pending.pending is None:
    backlog.caption(f"Unknown: {pending.why}.")

volume = cached_query("volume_over_time", window, axis.step_s)
st.subheader("Requests and rows over time, by model version")
if axis.zoomed:
    first, last = (pd.Timestamp(moment).tz_convert(zone) for moment in (axis.start, axis.end))
    st.caption(f"All the traffic of the {window_label()} falls between {first:%H:%M:%S} and {last:%H:%M:%S} {zone}: "
               f"the charts over time show that span, in {axis.bucket} buckets.")
for column, count in zip(st.columns(2), ("requests", "rows")):
    column.altair_chart(charts.volume_bars(volume, axis, zone, count), width="stretch")

st.subheader("Latency percentiles over time" + (" (approximate)" if approximate else ""))
if approximate:
    st.caption("SQLite has no percentile function: these come from fixed latency buckets counted in SQL, "
               "interpolated within a bucket.")
over_time = cached_query("latency_percentiles", window, axis.step_s)
if over_time.empty:
    st.caption("No latency recorded in this window.")
else:
    percentiles = over_time.melt(id_vars=["time", "measure"], value_vars=["p50", "p95", "p99"],
                                 var_name="percentile", value_name="ms")
    st.altair_chart(charts.latency_lines(percentiles, axis, zone), width="stretch")

st.subheader("Error and fallback rates over time")
by_time = volume.groupby("time", as_index=False)[["rows", "errors", "fallbacks"]].sum()
by_time = by_time[by_time["rows"] > 0]
if not (by_time["errors"].any() or by_time["fallbacks"].any()):
    st.success(f"No errors and no fallbacks in the {window_label()}: 0 of {totals['rows']:,} rows.")
else:
    by_time["error rate"] = by_time["errors"] / by_time["rows"]
    by_time["fallback rate"] = by_time["fallbacks"] / by_time["rows"]
    rates = by_time.melt(id_vars=["time", "rows"], value_vars=["error rate", "fallback rate"], var_name="rate",
                         value_name="share")
    st.altair_chart(charts.rate_bars(rates, axis, zone), width="stretch")
    st.caption(("No errors in this window. " if not totals["errors"] else "")
               + ("No fallbacks in this window. " if not totals["fallbacks"] else "")
               + "A bucket without traffic has no rate: it is left empty, not drawn at 0.")

st.subheader("Batch and single requests")
shares = pd.DataFrame({"kind": ["single /predict", "batch /predict_batch"],
                       "requests": [totals["requests"] - totals["batch_requests"], totals["batch_requests"]],
                       "rows": [totals["rows"] - totals["batch_rows"], totals["batch_rows"]]})
st.altair_chart(charts.share_bar(shares), width="stretch")
