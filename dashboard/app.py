"""The Futurisys dashboard: ``streamlit run dashboard/app.py`` (reads the trace database, never writes).

One page per question: how is the service doing (Service), what did it answer
for this request and can we reproduce it (Predictions), which model does
better on our traffic (Models), has the input population moved (Drift), how right were the models once
outcomes are known (Evaluation), would another version have done better on the same traffic (Comparison),
does a model treat groups of employees differently (Fairness).
"""
from __future__ import annotations

import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:  # `streamlit run` puts only dashboard/ on the path
    sys.path.insert(0, str(PROJECT_ROOT))

import streamlit as st  # noqa: E402

from dashboard.context import sidebar_window  # noqa: E402

# Not "pages/": Streamlit would also serve a folder of that name as pages of their own, without app.py.
PAGES = Path(__file__).resolve().parent / "views"

st.set_page_config(page_title="Futurisys attrition — dashboard", layout="wide")
sidebar_window()
navigation = st.navigation([
    st.Page(PAGES / "service.py", title="Service", default=True),  # the root URL
    st.Page(PAGES / "predictions.py", title="Predictions", url_path="predictions"),
    st.Page(PAGES / "models.py", title="Models", url_path="models"),
    st.Page(PAGES / "drift.py", title="Drift", url_path="drift"),
    st.Page(PAGES / "evaluation.py", title="Evaluation", url_path="evaluation"),
    st.Page(PAGES / "comparison.py", title="Comparison", url_path="comparison"),
    st.Page(PAGES / "fairness.py", title="Fairness", url_path="fairness"),
])
navigation.run()
