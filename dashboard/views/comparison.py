"""Comparison: which model would have done better on the traffic the service actually got?"""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, queries
from dashboard.audit import all_cards
from dashboard.context import (champion, current_window, database_url, display_zone, engine_for, log_read,
                               require_outcomes_table, require_traces, window_label)
from dashboard.evaluation import METRICS, RESAMPLES, agreement, auc_difference, bootstrap_metrics
from dashboard.queries import Window
from dashboard.rescoring import rescore
from settings import settings

LISTED_DISAGREEMENTS = 200


@st.cache_data(ttl=settings.dashboard_cache_ttl_s, show_spinner="Re-scoring the traced inputs with every version…")
def rescored(url: str, start: datetime | None, end: datetime | None, max_rows: int) -> tuple[pd.DataFrame, dict]:
    """The newest traced inputs and every version's probabilities on them (cached like the queries)."""
    inputs = queries.recent_inputs(engine_for(url), Window(start, end), max_rows)
    answers = rescore(inputs["inputs"].tolist(), all_cards(settings.models_dir), settings.models_dir)
    return inputs.drop(columns=["inputs"]), {a.model: a for a in answers}


st.title("Comparison")
answer = st.empty()  # the page's answer, once the traffic is re-scored
st.caption(f"Which model would have done better on the traffic of the {window_label()}? The newest "
           f"{settings.comparison_max_rows:,} traced inputs (setting `FUTURISYS_COMPARISON_MAX_ROWS`) re-scored with "
           "every model version in models/, each at its own threshold, against the answer the service gave. "
           f"Intervals: bootstrap 95 %, {RESAMPLES:,} resamples, fixed seed, rows resampled jointly.")
window = current_window()
require_traces(window)
require_outcomes_table()
rows, versions = rescored(database_url(), window.start, window.end, settings.comparison_max_rows)
# The re-scored rows are per-employee rows with their outcome: recorded first, or not shown.
if not log_read("dashboard:comparison", {"from": window.start, "to": window.end,
                                         "max_rows": settings.comparison_max_rows}, len(rows)):
    st.stop()
if rows.empty:
    answer.warning(f"**No comparison**: no prediction in the {window_label()}.")
    st.stop()

served_prediction = rows["prediction"].to_numpy(dtype=int)
labelled = rows["has_left"].notna().to_numpy()
y = rows.loc[labelled, "has_left"].to_numpy(dtype=float)
served_probability = rows["probability"].to_numpy(dtype=float)
summary, side_by_side = [], []
if labelled.sum():
    served_metrics = bootstrap_metrics(y, served_probability[labelled], served_prediction[labelled])
    side_by_side.append({"model": "as served", **{m: served_metrics[m].text() for m in METRICS}})
for tag, version in sorted(versions.items()):
    if version.probabilities is None:
        summary.append({"model": tag, "agreement": None, "kappa": None, "disagreements": None,
                        "ROC AUC − served (labelled)": "–", "note": version.refused})
        continue
    rate, kappa = agreement(served_prediction, version.predictions)
    difference = auc_difference(y, served_probability[labelled], version.probabilities[labelled])
    summary.append({"model": tag, "agreement": rate, "kappa": kappa,
                    "disagreements": int((served_prediction != version.predictions).sum()),
                    "ROC AUC − served (labelled)": difference.text(), "note": ""})
    if labelled.sum():
        metrics = bootstrap_metrics(y, version.probabilities[labelled], version.predictions[labelled])
        side_by_side.append({"model": tag, **{m: metrics[m].text() for m in METRICS}})
table = pd.DataFrame(summary)
scored = table.dropna(subset=["agreement"])
served_models = ", ".join(sorted(rows["model"].unique()))
if scored.empty:
    answer.warning("**No comparison**: no model version of models/ could be loaded.")
else:
    lowest = scored.sort_values("agreement").iloc[0]
    answer.info(f"**{len(rows):,} traced inputs re-scored by {len(scored)} versions** (served by {served_models}); "
                f"lowest agreement: {lowest['model']} {100 * lowest['agreement']:.1f} % (κ "
                + ("–" if pd.isna(lowest["kappa"]) else f"{lowest['kappa']:.3f}") + f"); {int(labelled.sum()):,} "
                "of these rows are labelled.")

st.subheader("Agreement with the model that served")
st.dataframe(table, hide_index=True, width="stretch", key="comparison_table",
             column_config={"agreement": st.column_config.NumberColumn(format="percent"),
                            "kappa": st.column_config.NumberColumn("Cohen's κ", format="%.3f")})
if not scored.empty:
    st.altair_chart(charts.agreement_bars(scored), width="stretch")
st.caption("Agreement: the share of rows where the version's answer (at its own threshold) is the one the service "
           "gave. Cohen's κ: agreement beyond chance (1: the same answers; 0: no better than chance). ROC AUC − "
           "served: the version's ROC AUC minus that of the stored answers, on the labelled rows.")

st.subheader("Metrics side by side on the labelled rows")
if side_by_side:
    in_sample = int((rows.loc[labelled, "source"] == "training_extracts").sum())
    st.dataframe(pd.DataFrame(side_by_side), hide_index=True, width="stretch", key="comparison_metrics")
    st.caption(f"{int(labelled.sum()):,} labelled rows"
               + (f", {in_sample:,} with outcomes from the training extracts (**in-sample**: the models were "
                  "fitted on these employees)." if in_sample else "."))
else:
    st.caption("No re-scored row has a known outcome: agreement only.")

st.subheader("Disagreements")
loaded = [tag for tag in sorted(versions) if versions[tag].probabilities is not None]
if loaded:
    lead = champion()
    chosen = st.selectbox("Model version", loaded, index=loaded.index(lead) if lead in loaded else 0,
                          key="comparison_model")
    version = versions[chosen]
    differ = served_prediction != version.predictions
    listed = rows.loc[differ].head(LISTED_DISAGREEMENTS).copy()
    zone = display_zone()
    listed["received"] = (pd.to_datetime(listed["received_at"], utc=True).dt.tz_convert(zone)
                          .dt.strftime("%Y-%m-%d %H:%M:%S") + f" {zone}")
    listed[f"{chosen} probability"] = version.probabilities[differ][:LISTED_DISAGREEMENTS]
    listed["employee_id"] = listed["employee_id"].astype("Int64")
    listed["left"] = listed["has_left"].map({1.0: "Oui", 0.0: "Non"}).fillna("unknown")
    listed["audit"] = "/predictions?request_id=" + listed["request_id"].astype(str)
    st.markdown(f"**{int(differ.sum()):,} rows** where {chosen} would have answered otherwise"
                + (f" (the newest {LISTED_DISAGREEMENTS} below)" if differ.sum() > LISTED_DISAGREEMENTS else "")
                + ". Open one in the audit view.")
    st.dataframe(listed[["received", "employee_id", "model", "probability", f"{chosen} probability", "left",
                         "audit"]].rename(columns={"model": "served by", "probability": "served probability",
                                                   "employee_id": "employee id"}),
                 hide_index=True, width="stretch", key="disagreements",
                 column_config={"audit": st.column_config.LinkColumn("audit view", display_text="open audit"),
                                "served probability": st.column_config.NumberColumn(format="%.4f"),
                                f"{chosen} probability": st.column_config.NumberColumn(format="%.4f")})
    if not np.any(differ):
        st.caption(f"{chosen} gives the served answer on every row.")
