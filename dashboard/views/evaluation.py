"""Evaluation: how does each model version do on the employees it scored, now that their outcomes are known?"""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.audit import read_card
from dashboard.cards import calibration_reference
from dashboard.context import (RECORD_OUTCOMES, cached_query, champion, current_window, log_read, percent,
                               require_outcomes_table, require_traces, window_label)
from dashboard.evaluation import (BEYOND_HORIZON, FORECAST, METRICS, RESAMPLES, Estimate, bootstrap_metrics,
                                  calibration_bins, judge)
from dashboard.evaluation.calibration import DEFAULT_EDGES
from settings import settings

# The predictions each version is judged on: forecasts, every labelled one, and apart, those with outcomes from the
# training extracts and the others (a bare string here would be drawn on the page by Streamlit's magic).
SLICES = ("forecasts", "all labelled", "out of sample", "in-sample (training extracts)")


@st.cache_data(ttl=settings.dashboard_cache_ttl_s, show_spinner=False)
def evaluate(y: np.ndarray, p: np.ndarray, predicted: np.ndarray) -> dict[str, Estimate]:
    """The metrics of one slice with their bootstrap intervals (cached: 1,000 resamples cost a second)."""
    return bootstrap_metrics(y, p, predicted)


def in_sample_text(rows: pd.DataFrame) -> str:
    """Whether a slice's outcomes come from the training extracts: no, partly, or all (in-sample)."""
    inside = int(rows["in_sample"].sum())
    if inside == 0:
        return "no"
    return "IN-SAMPLE (all)" if inside == len(rows) else f"partly ({inside} of {len(rows)})"


st.title("Evaluation")
answer = st.empty()  # the page's answer, once the outcomes are read
st.caption(f"How right was each model version on the employees it scored in the {window_label()}, now that their "
           "outcomes are known? A prediction is labelled when its employee id has an outcome (the latest known "
           "day, then the latest recording). A **forecast** was received before the day its outcome became known "
           f"(00:00 UTC), at most {settings.outcome_horizon_days} days before (setting "
           "`FUTURISYS_OUTCOME_HORIZON_DAYS`); a **retrospective** prediction after. Intervals: bootstrap 95 %, "
           f"{RESAMPLES:,} resamples, fixed seed.")
window = current_window()
require_traces(window)
require_outcomes_table()
labelled = cached_query("labelled_predictions", window)
asked = {"from": window.start, "to": window.end}
# Labelled predictions are per-employee rows with their outcome: recorded first, or not shown.
if not log_read("dashboard:evaluation", asked, len(labelled)):
    st.stop()
if labelled.empty:
    answer.warning(f"**No verdict**: no prediction of the {window_label()} has a known outcome.")
    st.info(RECORD_OUTCOMES)
    st.stop()

judged = judge(labelled, settings.outcome_horizon_days)
volume = cached_query("model_volume", window).set_index("model")
minimum = settings.evaluation_min_labelled
rows, verdicts = [], {}
for model, group in judged.groupby("model", sort=True):
    evaluated = group[group["kind"] != BEYOND_HORIZON]
    predicted = int(volume["predicted"].get(model, len(group)))
    slices = {"forecasts": evaluated[evaluated["kind"] == FORECAST], "all labelled": evaluated}
    if evaluated["in_sample"].any():
        slices["out of sample"] = evaluated[~evaluated["in_sample"]]
        slices["in-sample (training extracts)"] = evaluated[evaluated["in_sample"]]
    for name, part in slices.items():
        record = {"model": model, "predictions": name, "labelled": len(part),
                  "share of predictions": percent(len(part) / predicted if predicted else None),
                  "in-sample": in_sample_text(part) if len(part) else "–",
                  "beyond horizon": str(int((group["kind"] == BEYOND_HORIZON).sum())) if name == "all labelled"
                  else ""}
        if len(part) < minimum:
            record.update({metric: "–" for metric in METRICS})
            record["verdict"] = f"too few labelled ({len(part)} < {minimum})"
        else:
            estimates = evaluate(part["has_left"].to_numpy(dtype=float), part["probability"].to_numpy(dtype=float),
                                 part["prediction"].to_numpy(dtype=float))
            record.update({metric: estimates[metric].text() for metric in METRICS})
            record["verdict"] = "in-sample: proves nothing about the future" if part["in_sample"].all() else "judged"
            verdicts[(model, name)] = (estimates, len(part), part)
        rows.append(record)
table = pd.DataFrame(rows)

lead = champion()
judged_models = sorted({model for model, _ in verdicts})
focus = lead if lead in judged_models else (judged_models[0] if judged_models else None)
if focus is None:
    answer.warning(f"**No verdict**: no model version has {minimum} labelled predictions in the {window_label()} "
                   "(setting `FUTURISYS_EVALUATION_MIN_LABELLED`).")
else:
    for name in SLICES:
        if (focus, name) in verdicts:
            estimates, count, part = verdicts[(focus, name)]
            break
    inside = " — **in-sample** (outcomes from the training extracts): a good number here proves nothing about " \
             "the future" if part["in_sample"].all() else ""
    answer.info(f"**{focus}** on {count:,} labelled predictions ({name}): ROC AUC {estimates['ROC AUC'].text()}, "
                f"recall {estimates['recall'].text()}, precision {estimates['precision'].text()}{inside}.")
if judged["in_sample"].any():
    st.warning(f"{int(judged['in_sample'].sum()):,} labelled predictions have outcomes from the **training "
               "extracts**: the models were fitted on these employees, so their metrics are **in-sample** and prove "
               "nothing about the future. Read the forecasts and out-of-sample rows.")

st.subheader("Metrics per model version that served")
st.dataframe(table, hide_index=True, width="stretch", key="evaluation_table")
st.caption(f"Thresholded metrics use the prediction the service stored (at the model's threshold). No verdict below "
           f"{minimum} labelled predictions. Share of predictions: labelled over the version's predictions in the "
           "window (batch rows carry no employee id, so they are never labelled).")
intervals = pd.DataFrame([{"row": f"{model} · {name}", "which": name, "value": estimates["ROC AUC"].value,
                           "low": estimates["ROC AUC"].low, "high": estimates["ROC AUC"].high, "labelled": count}
                          for (model, name), (estimates, count, _) in sorted(verdicts.items())
                          if estimates["ROC AUC"].value is not None])
if not intervals.empty:
    st.altair_chart(charts.interval_chart(intervals, "ROC AUC"), width="stretch")

st.subheader("Calibration: predicted against observed")
for model in judged_models:
    _, _, part = verdicts.get((model, "all labelled"), (None, 0, judged.iloc[0:0]))
    name, _, version = model.partition(":")
    reference = calibration_reference(read_card(settings.models_dir, name, version))
    edges = [b["lower"] for b in reference] + [reference[-1]["upper"]] if reference else list(DEFAULT_EDGES)
    live = calibration_bins(part["has_left"], part["probability"], edges).assign(curve="live")
    curves = live if reference is None else pd.concat(
        [live, pd.DataFrame(reference).assign(curve="card (out-of-fold)")])
    st.altair_chart(charts.calibration_curve(curves, f"{model}: calibration"), width="stretch")
    if reference is None:
        st.caption(f"The card of {model} holds no calibration reference (out-of-fold calibration bins arrive with "
                   "the v2 cards): the live curve is drawn alone.")
