"""Fairness: does a model version predict leaving more for some groups of employees than for others?"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.audit import read_card
from dashboard.cards import fairness_reference
from dashboard.context import (cached_query, champion, current_window, log_read, require_outcomes_table,
                               require_traces, window_label)
from dashboard.evaluation import ATTRIBUTES, FOUR_FIFTHS, MIN_GROUP_ROWS, age_band, group_table
from settings import settings

CARD_COLUMNS = {"positive_rate": "card positive rate", "ratio_to_highest": "card ratio",
                "recall": "card recall", "false_positive_rate": "card FPR"}


def verdict(row: pd.Series) -> str:
    """How a group's positive rate stands: compared, below four-fifths of the highest, or too small to compare."""
    if row["note"]:
        return "too small"
    return "below four-fifths" if row["below four-fifths"] else "compared"


st.title("Fairness")
answer = st.empty()  # the page's answer, once the groups are counted
st.caption(f"Does a model version predict leaving more for some groups? Over the {window_label()} (the newest "
           f"{settings.evaluation_max_rows:,} predictions at most): the share predicted Oui by genre, department and "
           f"age band, each group's ratio to the highest (the four-fifths rule flags a ratio below {FOUR_FIFTHS}); "
           "on labelled rows, recall and false-positive rate by group. Groups under "
           f"{MIN_GROUP_ROWS} rows are shown as too small, not compared. Computed with fairlearn's MetricFrame; "
           "beside them, the card's out-of-fold figures on the training extracts, where the card has them.")
window = current_window()
require_traces(window)
require_outcomes_table()
frame = cached_query("group_predictions", window, settings.evaluation_max_rows)
if not log_read("dashboard:fairness", {"from": window.start, "to": window.end,
                                       "max_rows": settings.evaluation_max_rows}, len(frame)):
    st.stop()
if frame.empty:
    answer.warning(f"**No verdict**: no prediction in the {window_label()}.")
    st.stop()
frame = frame.assign(age_band=age_band(frame["age"]))
served = frame["model"].value_counts()
models = sorted(served.index)
lead = champion()
chosen = st.selectbox("Model version that served", models,
                      index=models.index(lead) if lead in models else models.index(served.idxmax()),
                      key="fairness_model", help="Opens on the champion" + (f" ({lead})" if lead else ""))
rows = frame[frame["model"] == chosen]
name, _, version = chosen.partition(":")
card = read_card(settings.models_dir, name, version)

flagged, small = [], 0
tables = {}
for label, column in ATTRIBUTES.items():
    table = group_table(rows, column)
    table["verdict"] = table.apply(verdict, axis=1)
    flagged += [f"{label} {g} ({r:.2f})" for g, r in zip(table["group"], table["ratio to highest"])
                if r < FOUR_FIFTHS]
    small += int((table["verdict"] == "too small").sum())
    tables[label] = (column, table)
labelled = int(rows["has_left"].notna().sum())
summary = f"{len(rows):,} predictions of {chosen}, {labelled:,} labelled"
if flagged:
    answer.error(f"**{len(flagged)} groups below four-fifths** of the highest positive rate ({summary}): "
                 + ", ".join(flagged) + ".")
else:
    answer.success(f"**No group below four-fifths** of the highest positive rate ({summary})"
                   + (f"; {small} groups too small to compare." if small else "."))

for label, (column, table) in tables.items():
    st.subheader(f"By {label}")
    reference = fairness_reference(card, column)
    shown = table.drop(columns=["below four-fifths", "note"])
    if reference is None:
        st.caption(f"The card of {chosen} holds no out-of-fold reference by {label} (it arrives with the v2 cards).")
    else:
        for key, title in CARD_COLUMNS.items():
            shown[title] = [reference.get(group, {}).get(key) for group in shown["group"]]
    st.altair_chart(charts.group_rates(table, f"{chosen}: predicted Oui share by {label}"), width="stretch")
    st.dataframe(shown, hide_index=True, width="stretch", key=f"fairness_{column}",
                 column_config={name: st.column_config.NumberColumn(format="%.3f")
                                for name in ("positive rate", "ratio to highest", "recall", "false-positive rate",
                                             *CARD_COLUMNS.values())})
st.caption("Dashed line: four-fifths of the highest rate among the groups compared. Recall: the share of leavers "
           "predicted Oui; false-positive rate: the share of stayers predicted Oui (labelled rows only; a group "
           "without leavers has no recall).")
