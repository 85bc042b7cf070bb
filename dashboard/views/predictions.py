"""Predictions: what did the service answer, and can we reproduce it? The filtered traces and one request's audit."""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from attrition.schema import NEGATIVE_LABEL, POSITIVE_LABEL
from dashboard import charts, queries
from dashboard.audit import input_standing, listed_table, read_card, reproduce, rows_csv, trace_json
from dashboard.context import (COUNTING_NOTE, cached_query, current_window, display_zone, engine, log_read,
                               percent, require_traces, window_label)
from dashboard.explaining import SCALES, explain_trace, on_link_scale, waterfall_steps
from dashboard.queries import PredictionFilter
from settings import settings

TABLE_ROWS = 500
LABELS = {"Any": None, POSITIVE_LABEL: 1, NEGATIVE_LABEL: 0}


def audit_view(request_id: str) -> None:
    """The audit of one request: its inputs against training, the answer, the model, timings, reproduce."""
    trace = queries.trace_by_request_id(engine(), request_id)
    if trace is None:
        st.warning(f"No trace has the request id `{request_id}`.")
        return
    if not log_read("dashboard:audit", {"request_id": request_id}, 1, employee_id=trace["employee_id"]):
        return
    st.header(f"Audit of request {request_id}")
    card = read_card(settings.models_dir, trace["model_name"], trace["model_version"])
    label = {1: POSITIVE_LABEL, 0: NEGATIVE_LABEL}.get(trace["prediction"], "none (error)")
    answer, probability, threshold, fallback = st.columns(4)
    answer.metric("Predicted label", label)
    probability.metric("Probability of leaving", "–" if trace["probability"] is None
                       else f"{trace['probability']:.6f}")
    threshold.metric("Threshold", "–" if trace["threshold"] is None else f"{trace['threshold']:.6f}")
    fallback.metric("Fallback", "yes" if trace["fallback"] else "no")
    row = "" if trace["batch_index"] is None else f" (row {trace['batch_index']})"
    employee_id = "–" if trace["employee_id"] is None else str(trace["employee_id"])
    error = f": {trace['error']}" if trace["error"] else ""
    inference = "–" if trace["inference_ms"] is None else f"{trace['inference_ms']:.2f} ms"
    zone = display_zone()
    received = pd.Timestamp(trace["received_at"]).tz_localize("UTC") if pd.Timestamp(trace["received_at"]).tzinfo \
        is None else pd.Timestamp(trace["received_at"])
    received = received.tz_convert(zone)
    st.markdown(
        f"**Model** `{trace['model_name']}:{trace['model_version']}` (asked: `{trace['requested_model']}`) · "
        f"**artifact sha256** `{trace['model_sha256']}`  \n"
        f"**Received** {received:%Y-%m-%d %H:%M:%S.%f} {zone} · **endpoint** `{trace['endpoint']}`{row} · "
        f"**employee id** {employee_id} · **status** {trace['status']}{error}  \n"
        f"**Timings** inference {inference} · total {trace['total_ms']:.2f} ms · service {trace['service_version']}")
    st.subheader("The 30 inputs, against the model's training reference")
    if card is None:
        st.caption(f"The card of {trace['model_name']}:{trace['model_version']} is not in {settings.models_dir}.")
    standing = input_standing(trace["inputs"] or {}, card)
    outside = int(standing["outside training"].sum())
    st.caption(f"{outside} of 30 inputs outside what training saw." if outside else
               "Every input is within what training saw.")
    st.dataframe(standing, hide_index=True, width="stretch", key="audit_inputs")
    explanation_view(trace, request_id)
    if st.button("Reproduce this answer", key="reproduce", help="Load the stored model version from models/, check "
                 "its sha256, re-score the stored inputs and compare with the stored probability."):
        outcome = reproduce(trace, settings.models_dir)
        (st.success if outcome.matches else st.error)(outcome.verdict)
        st.caption(f"Stored sha256 {outcome.stored_sha256} · artifact sha256 {outcome.artifact_sha256}")
    st.download_button("This trace as JSON", data=trace_json(trace), file_name=f"trace-{request_id}.json",
                       mime="application/json", key="trace_json",
                       on_click=log_read, args=("dashboard:trace-json", {"request_id": request_id}, 1),
                       kwargs={"employee_id": trace["employee_id"]})


def explanation_view(trace: dict[str, Any], request_id: str) -> None:
    """The request's explanation as a waterfall, recomputed here as ``GET /predictions/{id}/explanation`` does."""
    st.subheader("Explanation")
    if not log_read("dashboard:explanation", {"request_id": request_id}, 1, employee_id=trace["employee_id"]):
        return
    explained = explain_trace(trace, settings.models_dir)
    explanation = explained.explanation
    if explanation is None:
        st.caption(f"No explanation: {explained.verdict}.")
        return
    scale = SCALES[explanation.link]
    marks = pd.DataFrame({"name": [f"stored probability {explained.probability:.6f}",
                                   f"threshold {explained.threshold:.6f}"],
                          "at": [on_link_scale(explained.probability, explanation.link),
                                 on_link_scale(explained.threshold, explanation.link)]})
    st.altair_chart(charts.waterfall(waterfall_steps(explanation), scale, marks), width="stretch")
    threshold_note = ("the threshold as log-odds is logit(threshold)" if explanation.link == "logit"
                      else "the threshold is a probability")
    st.caption(f"Recomputed from the stored inputs with {trace['model_name']}:{trace['model_version']} (its sha256 "
               f"checked), as `GET /predictions/{request_id}/explanation` gives it. Base value "
               f"{explanation.base_value:+.6f} + the fields' pushes (red: towards leaving, blue: away) = output "
               f"{explanation.output:+.6f} on the {scale}, which is the stored probability; {threshold_note}.")


st.title("Predictions")
answer = st.empty()  # the page's answer, once the filter is read
st.caption(f"What did the service answer? Traces of the {window_label()}, newest first. {COUNTING_NOTE}")
window = current_window()
require_traces(window)
volume = cached_query("model_volume", window)
zone = display_zone()

models, label, probability, employee = st.columns([3, 1, 2, 1])
chosen_models = models.multiselect("Model version", sorted(volume["model"].unique()), key="filter_models")
chosen_label = label.selectbox("Predicted label", list(LABELS), key="filter_label")
low, high = probability.slider("Probability", 0.0, 1.0, (0.0, 1.0), step=0.01, key="filter_probability")
employee_text = employee.text_input("Employee id", key="filter_employee").strip()
employee_id = int(employee_text) if employee_text.isdigit() else None
if employee_text and employee_id is None:
    employee.caption("An employee id is a whole number.")
selection = PredictionFilter(tuple(chosen_models), LABELS[chosen_label], low, high, employee_id)


def asked() -> dict[str, Any]:
    """The read as the read log records it: the window and the filter."""
    return {"from": window.start, "to": window.end, "models": list(selection.models),
            "prediction": selection.prediction, "probability": [selection.probability_min, selection.probability_max],
            "employee_id": selection.employee_id}


summary = cached_query("prediction_summary", window, selection)
matching = summary["rows"]
oui = summary["positives"] / summary["predicted"] if summary["predicted"] else None
mean = "–" if summary["mean_probability"] is None else f"{summary['mean_probability']:.3f}"
answer.info(f"**{matching:,} rows match**: {percent(oui)} predicted {POSITIVE_LABEL}, mean probability {mean}"
            + ("" if employee_id is None else f", employee {employee_id}") + f", over the {window_label()}.")
rows = cached_query("prediction_rows", window, selection, TABLE_ROWS)
# Listing trace rows (and filtering by an employee) reads personal data: recorded first, or not shown.
if log_read("dashboard:predictions", asked(), len(rows), employee_id=selection.employee_id):
    st.markdown(f"**{matching:,} rows** match" + (f" (the newest {TABLE_ROWS} below)" if matching > TABLE_ROWS
                                                  else "") + ". Select a row to open its audit view.")
    table = listed_table(rows, zone)
    picked = st.dataframe(table, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                          key="predictions_table",
                          column_config={"probability": st.column_config.NumberColumn(format="%.4f"),
                                         "threshold": st.column_config.NumberColumn(format="%.4f"),
                                         "total ms": st.column_config.NumberColumn(format="%.1f")})
    selected_rows = picked.selection.rows if picked is not None else []
    if selected_rows:
        st.query_params["request_id"] = str(table.iloc[selected_rows[0]]["request id"])
    if not table.empty and table["probability"].notna().any():
        st.altair_chart(charts.probability_ticks(table.dropna(subset=["probability"])), width="stretch")


def export_csv() -> bytes:
    """The filtered rows as CSV (the table's columns), built on click and recorded in the read log."""
    frame = queries.prediction_rows(engine(), window, selection, settings.dashboard_max_export_rows)
    if not log_read("dashboard:export-csv", asked(), len(frame), employee_id=selection.employee_id):
        return b""
    return rows_csv(listed_table(frame, zone))


st.download_button(f"Filtered rows as CSV (at most {settings.dashboard_max_export_rows:,})", data=export_csv,
                   file_name="predictions.csv", mime="text/csv", key="rows_csv")

request_id = st.query_params.get("request_id")
if request_id:
    audit_view(str(request_id))
else:
    st.caption("No request selected: select a row, or open this page with `?request_id=...`.")
