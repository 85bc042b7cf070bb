"""Models: which model does better, on paper (the cards) and on the traffic actually served?"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.audit import all_cards
from dashboard.cards import card_summary, headline_auc, probability_reference
from dashboard.context import cached_query, champion, current_window, percent, require_traces, window_label
from registry.aliases import read_aliases
from settings import settings

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
lead = champion()
served = volume.set_index("model")["rows"]
share = (f"the champion {lead} served {served.get(lead, 0):,} of {int(served.sum()):,} rows" if lead
         else f"no champion is named; {int(served.sum()):,} rows served")
answer.info(f"**{len(volume)} model versions served traffic**; {share}"
            + (f"; best ROC AUC on paper: {best['model']} ({best['ROC AUC']})." if best else "."))

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
    by_tag = {card.tag: card for card in cards}
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
