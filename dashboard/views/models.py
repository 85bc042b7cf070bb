"""Models: which model does better, on paper (the cards) and on the traffic actually served?"""
from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from attrition.card import ModelCard
from dashboard.audit import all_cards
from dashboard.context import cached_query, current_window, percent, require_traces, window_label
from registry.aliases import read_aliases
from settings import settings


def _metric(section: dict[str, Any], key: str) -> float | None:
    value = section.get(key)
    return None if value is None else float(value)


def card_summary(card: ModelCard, aliases: dict[str, str]) -> dict[str, Any]:
    """One column of the side-by-side comparison: the card's evaluation at its threshold."""
    cv = card.metrics.get("cv", {})
    at_threshold = card.metrics.get("threshold_selection") or card.metrics.get("holdout") or {}
    auc, std = _metric(cv, "roc_auc_mean"), _metric(cv, "roc_auc_std")
    return {
        "model": card.tag,
        "aliases": ", ".join(sorted(a for a, tag in aliases.items() if tag == card.tag)) or "–",
        "CV ROC AUC ± std": "–" if auc is None else f"{auc:.3f} ± {std or 0:.3f}",
        "PR AUC (CV)": _format(_metric(cv, "average_precision_mean")),
        "Brier (CV)": _format(_metric(cv, "brier_mean")),
        "precision at threshold": _format(_metric(at_threshold, "precision")),
        "recall at threshold": _format(_metric(at_threshold, "recall")),
        "F1 at threshold": _format(_metric(at_threshold, "f1")),
        "threshold": f"{card.threshold:.4f}",
        "trained": card.created_at[:19].replace("T", " "),
        "data fingerprint": card.data_fingerprint[:12],
    }


def _format(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


st.title("Models")
st.caption("Which model is better? The cards' offline evaluation side by side, then what each version did on the "
           f"traffic of the {window_label()}.")
cards = all_cards(settings.models_dir)
aliases = read_aliases(settings.models_dir)
if cards:
    comparison = pd.DataFrame([card_summary(card, aliases) for card in cards]).set_index("model").T
    st.subheader("The cards side by side")
    st.caption("Precision, recall and F1 at each model's threshold, on the pooled out-of-fold probabilities of "
               "training's cross-validation.")
    st.dataframe(comparison, width="stretch", key="cards")
else:
    st.info(f"No model card in {settings.models_dir}.")

window = current_window()
require_traces(window)
volume = cached_query("model_volume", window)
st.subheader("Live volume and positive rate per model version")
columns = st.columns(max(len(volume), 1))
for column, record in zip(columns, volume.to_dict(orient="records")):
    column.metric(record["model"], f"{record['rows']:,} rows",
                  help=f"{record['fallbacks']:,} fallbacks, {record['errors']:,} errors")
    column.caption(f"positive rate {percent(record['positive_rate'])} · mean probability "
                   f"{record['mean_probability'] or 0:.3f}")
st.altair_chart(
    alt.Chart(volume).mark_bar().encode(
        x=alt.X("model:N", title="model version"), y=alt.Y("positive_rate:Q", title="predicted Oui share",
                                                           axis=alt.Axis(format="%")),
        color="model:N", tooltip=["model:N", "rows:Q", alt.Tooltip("positive_rate:Q", format=".1%")],
    ).properties(height=220, title="Positive rate on served traffic"),
    width="stretch")

st.subheader("Distribution of predicted probabilities per model version")
histogram = cached_query("probability_histogram", window)
if histogram.empty:
    st.caption("No probability in this window (only errors).")
else:
    thresholds = {card.tag: card.threshold for card in cards}
    for column, (model, bins) in zip(st.columns(2) * len(histogram), histogram.groupby("model", sort=True)):
        bars = alt.Chart(bins).mark_bar(opacity=0.85).encode(
            x=alt.X("probability_from:Q", bin="binned", title="probability of leaving",
                    scale=alt.Scale(domain=[0, 1])),
            x2="probability_to:Q", y=alt.Y("share:Q", title="share of rows", axis=alt.Axis(format="%")),
            tooltip=["probability_from:Q", "probability_to:Q", "rows:Q"])
        chart = bars
        if model in thresholds:
            rule = alt.Chart(pd.DataFrame({"threshold": [thresholds[model]]})).mark_rule(
                strokeDash=[4, 3], color="black").encode(x="threshold:Q")
            chart = alt.layer(bars, rule)
        column.altair_chart(chart.properties(height=180, title=model), width="stretch")
    st.caption("Dashed line: the model's threshold (rows at or above it are predicted Oui).")
