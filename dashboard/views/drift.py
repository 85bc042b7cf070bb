"""Drift: has the input population moved away from what the serving model was trained on?"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from attrition.schema import FEATURES
from dashboard import charts
from dashboard.audit import read_card
from dashboard.context import cached_query, champion, current_window, percent, require_traces, window_label
from dashboard.drift import (DRIFT, FAMILY_ALPHA, MIN_EXPECTED, PSI_DRIFT, PSI_WATCH, WATCH,
                             change_size, daily_worst, drifting, features_drift)
from settings import settings

SHOWN_AT_FIRST = 4

st.title("Drift")
answer = st.empty()  # the page's answer, once the inputs are judged
st.caption(f"Has the input population moved? Each of the 30 inputs in the {window_label()} against the training "
           "reference stored in the card of the model version that served it.")
st.markdown(
    f"**Verdict**: per input, a chi-square goodness-of-fit of the live counts against the card's shares (bins "
    f"merged until each expects {MIN_EXPECTED:g} rows), with Holm's adjustment over every input tested, so a window "
    f"with no drift raises the alarm at most {FAMILY_ALPHA:.0%} of the time. An input **drifts** when its change is "
    f"significant and not small (PSI ≥ {PSI_WATCH}); significant but small (PSI < {PSI_WATCH}) is a "
    f"**small change**. **Size of the change**: PSI (below {PSI_WATCH} small, {PSI_WATCH}–{PSI_DRIFT} moderate, "
    f"{PSI_DRIFT} and above large) and Jensen–Shannon distance (natural log, 0 to 0.83); empty bins count as "
    f"0.0001. No verdict below **{settings.drift_min_rows} rows** (setting `FUTURISYS_DRIFT_MIN_ROWS`).")

window = current_window()
require_traces(window)
volume = cached_query("model_volume", window).sort_values("rows", ascending=False)
served = volume["model"].tolist()
lead = champion()
# Open on the champion when it served in the window: the model whose inputs matter most.
chosen = st.selectbox("Model version that served", served, index=served.index(lead) if lead in served else 0,
                      key="drift_model", help="Opens on the champion" + (f" ({lead})" if lead else ""))
record = volume[volume["model"] == chosen].iloc[0]
card = read_card(settings.models_dir, record["model_name"], record["model_version"])
if card is None:
    answer.warning(f"**No verdict**: the card of {chosen} is not in {settings.models_dir}.")
    st.warning(f"The card of {chosen} is not in {settings.models_dir}: no reference to compare with.")
    st.stop()
references = card.reference_distributions

in_window = int(record["rows"])
counts = cached_query("drift_counts", window, record["model_name"], record["model_version"], references,
                      settings.drift_max_rows)
if in_window > settings.drift_max_rows:
    st.info(f"Sampled: the newest {settings.drift_max_rows:,} of the {in_window:,} rows of {chosen} in this window "
            "(setting `FUTURISYS_DRIFT_MAX_ROWS`).")
drifts = features_drift(counts, references, settings.drift_min_rows, features=[f.name for f in FEATURES])
tested = [d for d in drifts if d.adjusted_p is not None]
rows = max((d.rows for d in drifts), default=0)
moved = drifting(drifts)
small = [d.feature for d in drifts if d.severity == WATCH]
unreferenced = [d.feature for d in drifts if not d.bins]  # the card holds no reference for them
if not tested:
    answer.warning(f"**No verdict**: {rows:,} rows of {chosen} in the {window_label()}, fewer than the "
                   f"{settings.drift_min_rows} needed.")
    st.warning(f"No verdict: {rows} rows of {chosen} in this window, fewer than the {settings.drift_min_rows} "
               "needed. Widen the time window or send more traffic.")
elif moved:
    answer.error(f"**{len(moved)} of {len(tested)} inputs drift** ({rows:,} rows of {chosen}): " + ", ".join(moved))
else:
    answer.success(f"**No input drifts** ({len(tested)} inputs tested, {rows:,} rows of {chosen})"
                   + (f"; {len(small)} significant but small changes." if small else "."))
if unreferenced:
    st.warning(f"The card of {chosen} holds no training reference for {', '.join(unreferenced)}: "
               "these inputs are not compared.")

flagged, watching, outside = st.columns(3)
flagged.metric("Inputs drifting", f"{len(moved)} / {len(tested)}", help=", ".join(moved) or None)
watching.metric("Significant but small", f"{len(small)} / {len(tested)}", help=", ".join(small) or None)
worst_outside = max(drifts, key=lambda d: d.outside_share) if drifts else None
outside.metric("Largest share outside training",
               percent(worst_outside.outside_share if worst_outside else None),
               help=None if worst_outside is None else f"{worst_outside.feature}: values outside the training "
                                                       "range, or categories training never saw")

summary = pd.DataFrame([{
    "input": d.feature, "kind": d.kind, "verdict": d.severity, "adjusted p": d.adjusted_p, "p": d.p_value,
    "PSI": d.psi, "size": change_size(d.psi), "JS distance": d.js_distance, "outside training": d.outside_share,
    "rows": d.rows, "note": d.note} for d in drifts])
st.dataframe(summary, hide_index=True, width="stretch", key="drift_table",
             column_config={"adjusted p": st.column_config.NumberColumn(format="%.2g", help="Holm-adjusted"),
                            "p": st.column_config.NumberColumn(format="%.2g"),
                            "PSI": st.column_config.NumberColumn(format="%.4f"),
                            "JS distance": st.column_config.NumberColumn(format="%.4f"),
                            "outside training": st.column_config.NumberColumn(format="percent")})

scored = summary.dropna(subset=["PSI"])
if not scored.empty:
    st.altair_chart(charts.psi_bars(scored), width="stretch")
    st.caption(f"Log scale: a PSI below 0.0001 is drawn at 0.0001. Dashed lines: {PSI_WATCH} and {PSI_DRIFT}. "
               "The colour is the verdict of the test, not the PSI band.")

st.subheader("Live against reference")
compared = [d for d in drifts if d.bins]
judged = [d.feature for d in compared if d.severity in (DRIFT, WATCH)]  # worst first
features = st.multiselect("Inputs", [d.feature for d in compared],
                          default=judged[:SHOWN_AT_FIRST] or [d.feature for d in compared[:1]], key="drift_features",
                          help=f"Opens on the (at most {SHOWN_AT_FIRST}) inputs with the strongest evidence of change.")
if len(judged) > SHOWN_AT_FIRST:
    st.caption(f"{len(judged) - SHOWN_AT_FIRST} more inputs changed significantly: add them above.")
by_feature = {d.feature: d for d in drifts}
for feature in features:
    detail = by_feature.get(feature)
    if detail is None or not detail.bins:
        st.info(f"`{feature}`: the card of {chosen} holds no training reference for this input.")
        continue
    st.altair_chart(charts.reference_bars(f"{feature} — {detail.severity}", detail.bins, detail.reference_shares,
                                          detail.live_shares), width="stretch")

st.subheader("Worst scores per day")
trend = daily_worst(counts, references, settings.drift_min_rows)
if trend.empty:
    st.caption(f"No day with at least {settings.drift_min_rows} rows of {chosen} in this window.")
else:
    st.altair_chart(charts.daily_trend(trend), width="stretch")
