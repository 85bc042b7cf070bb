"""Models: which model does better, on paper (the cards) and on the traffic actually served?"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.audit import all_cards
from dashboard.cards import card_summary, headline_auc, probability_reference
from dashboard.context import (cached_query, current_window, database_url, percent, require_traces,
                               window_label)
from dashboard.explaining import (SHORT_SCALES, NotExplained, drivers_table, mean_abs_contributions, training_reference,
                                  version_explainer)
from dashboard.queries import Window
from registry.aliases import CHAMPION, read_aliases
from settings import settings

# Served rows explained per model version: the newest of the window (a bounded sample, cached).
EXPLAINED_ROWS = 2_000
DRIVER_FIELDS = 10


@st.cache_data(ttl=settings.dashboard_cache_ttl_s, show_spinner="Explaining the served rows…")
def served_drivers(name: str, version: str, window: Window, url: str) -> tuple[pd.Series | None, int, str]:
    """Mean |contribution| per field over the newest served rows of ``name:version`` in the database at ``url``,
    their count, and the link scale (or why the version cannot be explained here, in place of the scale)."""
    inputs = cached_query("served_inputs", window, name, version, EXPLAINED_ROWS)
    try:
        explainer = version_explainer(settings.models_dir, name, version)
    except NotExplained as exc:
        return None, len(inputs), str(exc)
    return mean_abs_contributions(explainer, inputs), len(inputs), explainer.link


st.title("Models")
answer = st.empty()  # the page's answer, once the traffic is read
st.caption("Which model is better? The cards' offline evaluation side by side, then what each version did on the "
           f"traffic of the {window_label()}.")
cards = all_cards(settings.models_dir)
aliases = read_aliases(settings.models_dir)
best = None
if cards:
    summaries = [card_summary(card, aliases) for card in cards]
    comparison = pd.DataFrame(summaries).set_index("model").T
    st.subheader("The cards side by side")
    st.caption("Each figure names its source: the mean ± std over training's cross-validation folds, the pooled "
               "out-of-fold probabilities of that cross-validation (at the threshold), or the holdout split when "
               "the card has no cross-validation.")
    st.dataframe(comparison, width="stretch", key="cards")
    # The best on paper: the highest ROC AUC, cross-validated where the card has it (as its column says).
    scored = [(headline_auc(card), summary) for card, summary in zip(cards, summaries)]
    best = max(((auc, s) for auc, s in scored if auc is not None), key=lambda pair: pair[0], default=(None, None))[1]
else:
    st.info(f"No model card in {settings.models_dir}.")

window = current_window()
require_traces(window)
volume = cached_query("model_volume", window)
lead = aliases.get(CHAMPION)  # the aliases this page read once above
served = volume.set_index("model")["rows"]
share = (f"the champion {lead} served {served.get(lead, 0):,} of {int(served.sum()):,} rows" if lead
         else f"no champion is named; {int(served.sum()):,} rows served")
answer.info(f"**{len(volume)} model versions served traffic**; {share}"
            + (f"; best ROC AUC on paper: {best['model']} ({best['ROC AUC']})." if best else "."))

by_tag = {card.tag: card for card in cards}

st.subheader("Live volume and positive rate per model version")
columns = st.columns(max(len(volume), 1))
for column, record in zip(columns, volume.to_dict(orient="records")):
    column.metric(record["model"], f"{record['rows']:,} rows",
                  help=f"{record['fallbacks']:,} fallbacks, {record['errors']:,} errors")
    column.caption(f"positive rate {percent(record['positive_rate'])} · mean probability "
                   + ("–" if pd.isna(record["mean_probability"]) else f"{record['mean_probability']:.3f}"))
st.altair_chart(charts.positive_rate_bars(volume), width="stretch")

st.subheader("Distribution of predicted probabilities per model version")
histogram = cached_query("probability_histogram", window)
if histogram.empty:
    st.caption("No probability in this window (only errors).")
else:
    thresholds = {card.tag: card.threshold for card in cards}
    unreferenced = []
    for column, (model, bins) in zip(st.columns(2) * len(histogram), histogram.groupby("model", sort=True)):
        reference = probability_reference(by_tag.get(model))
        if reference is None:
            unreferenced.append(model)
        column.altair_chart(charts.probability_histogram(bins, model, thresholds.get(model),
                                                         None if reference is None else pd.DataFrame(reference)),
                            width="stretch")
    st.caption("Dashed line: the model's threshold (rows at or above it are predicted Oui). Black line: the card's "
               "out-of-fold distribution of training, where the card holds it.")
    if unreferenced:
        st.caption(f"No out-of-fold distribution in the card of {', '.join(unreferenced)} (it arrives with the v2 "
                   "cards): the live distribution is drawn alone.")

st.subheader("What drives the scores: mean |contribution| per field")
st.caption(f"Per model version, each field's mean |contribution| over the newest {EXPLAINED_ROWS:,} rows it served "
           f"in the {window_label()} (recomputed here from the stored inputs, through the trusted loader), beside "
           "the card's figure over its training rows: a field that drives live scores much more (or less) than in "
           f"training is a change in what the model sees. The {DRIVER_FIELDS} fields that drive the live scores most.")
without_reference = []
records = volume.to_dict(orient="records")
# Two versions a row, each row its own pair of columns, so the charts of a row start level.
for index, record in enumerate(records):
    if index % 2 == 0:
        row = st.columns(2)
    column = row[index % 2]
    live, rows, link = served_drivers(record["model_name"], record["model_version"], window, database_url())
    if live is None:
        column.caption(f"{record['model']}: no explanation ({link}).")
        continue
    if not rows:
        column.caption(f"{record['model']}: no answered row in this window (only errors).")
        continue
    if not live.any():
        column.caption(f"{record['model']}: a constant answer (the prior); no field moves it, every contribution "
                       "is 0.")
        continue
    reference = training_reference(by_tag.get(record["model"]))
    if reference is None:
        without_reference.append(record["model"])
    column.altair_chart(charts.driver_bars(drivers_table(live, reference, rows, DRIVER_FIELDS),
                                           f"{record['model']}: mean |contribution| per field",
                                           SHORT_SCALES[link]), width="stretch")
if without_reference:
    st.caption(f"The card of {', '.join(without_reference)} lacks the training reference (`explanation_reference`, "
               "in the cards from v2 on): its served traffic is drawn alone.")
