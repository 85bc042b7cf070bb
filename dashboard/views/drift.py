"""Drift: has the input population moved away from what the serving model was trained on?"""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard.audit import read_card
from dashboard.context import cached_query, current_window, percent, require_traces, window_label
from dashboard.drift import DRIFT, PSI_DRIFT, PSI_WATCH, WATCH, daily_worst, features_drift
from settings import settings

SEVERITY_MARK = {DRIFT: "DRIFT", WATCH: "watch", "stable": "stable", "no verdict": "no verdict"}

st.title("Drift")
st.caption(f"Has the input population moved? Each of the 30 inputs in the {window_label()} against the training "
           "reference stored in the card of the model version that served it.")
st.markdown(
    f"**PSI** (population stability index): below {PSI_WATCH} stable, {PSI_WATCH}–{PSI_DRIFT} watch, "
    f"{PSI_DRIFT} and above drift. **Jensen–Shannon distance** with the natural log (0 to 0.83). Numeric inputs "
    "are compared on the reference histogram's own bins, categorical inputs on their shares; empty bins count "
    f"as 0.0001. No verdict below **{settings.drift_min_rows} rows** (setting `FUTURISYS_DRIFT_MIN_ROWS`).")

window = current_window()
require_traces(window)
volume = cached_query("model_volume", window).sort_values("rows", ascending=False)
served = volume["model"].tolist()
chosen = st.selectbox("Model version that served", served, key="drift_model")
record = volume[volume["model"] == chosen].iloc[0]
card = read_card(settings.models_dir, record["model_name"], record["model_version"])
if card is None:
    st.warning(f"The card of {chosen} is not in {settings.models_dir}: no reference to compare with.")
    st.stop()
references = card.reference_distributions

in_window = int(record["rows"])
counts = cached_query("drift_counts", window, record["model_name"], record["model_version"], references,
                      settings.drift_max_rows)
if in_window > settings.drift_max_rows:
    st.info(f"Sampled: the newest {settings.drift_max_rows:,} of the {in_window:,} rows of {chosen} in this window "
            "(setting `FUTURISYS_DRIFT_MAX_ROWS`).")
drifts = features_drift(counts, references, settings.drift_min_rows)
rows = drifts[0].rows if drifts else 0
if rows < settings.drift_min_rows:
    st.warning(f"No verdict: {rows} rows of {chosen} in this window, fewer than the {settings.drift_min_rows} "
               "needed. Widen the time window or send more traffic.")

drifting = [d.feature for d in drifts if d.severity == DRIFT]
watched = [d.feature for d in drifts if d.severity == WATCH]
flagged, watching, outside = st.columns(3)
flagged.metric("Inputs drifting", f"{len(drifting)} / {len(drifts)}", help=", ".join(drifting) or None)
watching.metric("Inputs to watch", f"{len(watched)} / {len(drifts)}", help=", ".join(watched) or None)
worst_outside = max(drifts, key=lambda d: d.outside_share) if drifts else None
outside.metric("Largest share outside training",
               percent(worst_outside.outside_share if worst_outside else None),
               help=None if worst_outside is None else f"{worst_outside.feature}: values outside the training "
                                                       "range, or categories training never saw")
if drifting:
    st.error("Drifting: " + ", ".join(drifting))

summary = pd.DataFrame([{
    "input": d.feature, "kind": d.kind, "severity": SEVERITY_MARK[d.severity], "PSI": d.psi,
    "JS distance": d.js_distance, "outside training": d.outside_share, "rows": d.rows} for d in drifts])
st.dataframe(summary, hide_index=True, width="stretch", key="drift_table",
             column_config={"PSI": st.column_config.NumberColumn(format="%.4f"),
                            "JS distance": st.column_config.NumberColumn(format="%.4f"),
                            "outside training": st.column_config.NumberColumn(format="percent")})

scored = summary.dropna(subset=["PSI"])
if not scored.empty:
    bars = alt.Chart(scored).mark_bar().encode(
        x=alt.X("PSI:Q"), y=alt.Y("input:N", sort="-x", title=None),
        color=alt.Color("severity:N", scale=alt.Scale(domain=list(SEVERITY_MARK.values()),
                                                      range=["#d62728", "#ff7f0e", "#2ca02c", "#bbbbbb"])),
        tooltip=["input:N", alt.Tooltip("PSI:Q", format=".4f"), alt.Tooltip("JS distance:Q", format=".4f")])
    limits = alt.Chart(pd.DataFrame({"PSI": [PSI_WATCH, PSI_DRIFT]})).mark_rule(strokeDash=[4, 3]).encode(x="PSI:Q")
    st.altair_chart(alt.layer(bars, limits).properties(height=520, title="PSI per input, worst first"),
                    width="stretch")

st.subheader("Live against reference")
feature = st.selectbox("Input", [d.feature for d in drifts], key="drift_feature")
detail = next(d for d in drifts if d.feature == feature)
shares = pd.DataFrame({"bin": list(detail.bins) * 2,
                       "share": list(detail.reference_shares) + list(detail.live_shares),
                       "distribution": ["training reference"] * len(detail.bins) + ["live"] * len(detail.bins)})
st.altair_chart(
    alt.Chart(shares).mark_bar().encode(
        x=alt.X("bin:N", sort=list(detail.bins), title=feature), xOffset="distribution:N",
        y=alt.Y("share:Q", axis=alt.Axis(format="%")), color="distribution:N",
        tooltip=["bin:N", "distribution:N", alt.Tooltip("share:Q", format=".1%")],
    ).properties(height=260),
    width="stretch")

st.subheader("Worst scores per day")
trend = daily_worst(counts, references, settings.drift_min_rows)
if trend.empty:
    st.caption(f"No day with at least {settings.drift_min_rows} rows of {chosen} in this window.")
else:
    lines = alt.Chart(trend).transform_fold(["worst_psi", "worst_js"], as_=["score", "value"]).mark_line(
        point=True).encode(x=alt.X("day:T", title="day (UTC)"), y=alt.Y("value:Q", title="worst score of the day"),
                           color="score:N", tooltip=["day:T", "feature:N", "rows:Q", "value:Q"])
    limits = alt.Chart(pd.DataFrame({"value": [PSI_WATCH, PSI_DRIFT]})).mark_rule(strokeDash=[4, 3]).encode(
        y="value:Q")
    st.altair_chart(alt.layer(lines, limits).properties(height=220), width="stretch")
