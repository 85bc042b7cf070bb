"""Evaluation, Comparison and Fairness on a seeded database whose answers are known by construction, both backends.

The seed (``tests.dashboard.seed``) labels 100 predictions of the
champion, right on exactly 80 of them: the recall and
precision below are computed here from the stored predictions and that rule,
never read back from the code under test.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from dashboard import queries
from dashboard.context import read_only_engine
from dashboard.evaluation import (BEYOND_HORIZON, FORECAST, RETROSPECTIVE, agreement, bootstrap_metrics,
                                  group_table, judge)
from dashboard.queries import Window
from persistence.database.engine import make_engine
from persistence.database.schema import prediction_traces, trace_reads
from tests.dashboard.seed import BOOSTING, LOGISTIC, OUTCOMES, SeedCounts, _scored
from tests.dashboard.test_pages import run_page

EVALUATION, COMPARISON, FAIRNESS = (f"views/{name}.py" for name in ("evaluation", "comparison", "fairness"))
LOGISTIC_TAG = ":".join(LOGISTIC)


def seeded_rows(url: str) -> pd.DataFrame:
    """The seeded traces of the last 24 hours with a prediction (inputs included)."""
    since = datetime.now(timezone.utc) - timedelta(hours=24)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.select(prediction_traces).where(
                prediction_traces.c.received_at >= since, prediction_traces.c.prediction.is_not(None))).mappings()
            return pd.DataFrame([dict(r) for r in rows])
    finally:
        engine.dispose()


def expected_confusion(url: str, labelled_rows: range) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) of the logistic rows the seed labels, from their stored predictions and the 80 % rule."""
    rows = seeded_rows(url).set_index("request_id")
    tp = fp = fn = tn = 0
    for k in labelled_rows:
        predicted = int(rows.loc[f"seed-logistic_regression-{11 + k:04d}", "prediction"])
        left = predicted if k % 5 != 4 else 1 - predicted
        tp += predicted and left
        fp += predicted and not left
        fn += (not predicted) and left
        tn += (not predicted) and not left
    return tp, fp, fn, tn


def reads_of(url: str, route: str) -> list[dict]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return [dict(r) for r in connection.execute(sa.select(trace_reads).where(trace_reads.c.route == route))
                    .mappings()]
    finally:
        engine.dispose()


@pytest.fixture
def seeded_dashboard(seeded: tuple[str, SeedCounts], read_from: Callable[[str], None]) -> tuple[str, SeedCounts]:
    read_from(seeded[0])
    return seeded


def test_the_labelled_predictions_split_into_forecasts_retrospective_and_beyond_the_horizon(seeded) -> None:
    url, _ = seeded
    labelled = queries.labelled_predictions(read_only_engine(url), Window())
    judged = judge(labelled, 365)
    logistic = judged[judged["model"] == LOGISTIC_TAG]
    kinds = logistic["kind"].value_counts().to_dict()
    assert kinds == {FORECAST: OUTCOMES.forecasts, RETROSPECTIVE: OUTCOMES.retrospective,
                     BEYOND_HORIZON: OUTCOMES.beyond_horizon}
    assert int(logistic["in_sample"].sum()) == OUTCOMES.in_sample
    assert set(logistic.loc[logistic["in_sample"], "kind"]) == {RETROSPECTIVE}
    # A longer horizon judges the forecasts known 400 days ahead too.
    assert (judge(labelled, 500)["kind"] == BEYOND_HORIZON).sum() == 0
    # The corrected employee's current outcome is the later recording, the one the 80 % rule set.
    corrected = logistic[logistic["employee_id"] == OUTCOMES.corrected_employee]
    assert len(corrected) == 1 and bool(corrected["has_left"].iloc[0]) == bool(corrected["prediction"].iloc[0])
    right = logistic[logistic["kind"] != BEYOND_HORIZON]
    assert (right["prediction"] == right["has_left"].astype(int)).mean() == pytest.approx(0.8)


def test_recall_and_precision_are_those_of_the_construction_with_intervals(seeded) -> None:
    url, _ = seeded
    judged = judge(queries.labelled_predictions(read_only_engine(url), Window()), 365)
    for kind, labelled_rows in ((FORECAST, range(OUTCOMES.forecasts)), (None, range(OUTCOMES.labelled))):
        part = judged[(judged["model"] == LOGISTIC_TAG) & (judged["kind"] != BEYOND_HORIZON)]
        if kind is not None:
            part = part[part["kind"] == kind]
        tp, fp, fn, _ = expected_confusion(url, labelled_rows)
        estimates = bootstrap_metrics(part["has_left"], part["probability"], part["prediction"])
        assert estimates["recall"].value == pytest.approx(tp / (tp + fn))
        assert estimates["precision"].value == pytest.approx(tp / (tp + fp))
        assert estimates["F1"].value == pytest.approx(2 * tp / (2 * tp + fp + fn))
        for name, estimate in estimates.items():
            assert estimate.low <= estimate.value <= estimate.high, name
        # The same rows give the same interval: the seed is fixed.
        again = bootstrap_metrics(part["has_left"], part["probability"], part["prediction"])
        assert again["recall"] == estimates["recall"]


def test_the_evaluation_page_shows_the_metrics_the_flags_and_records_the_read(seeded_dashboard) -> None:
    url, _ = seeded_dashboard
    app = run_page(EVALUATION)
    table = app.dataframe[0].value.set_index(["model", "predictions"])
    tp, fp, fn, _ = expected_confusion(url, range(OUTCOMES.forecasts))
    forecasts = table.loc[(LOGISTIC_TAG, "forecasts")]
    assert forecasts["labelled"] == OUTCOMES.forecasts and forecasts["in-sample"] == "no"
    assert forecasts["recall"].startswith(f"{tp / (tp + fn):.3f} [")
    assert forecasts["precision"].startswith(f"{tp / (tp + fp):.3f} [")
    every = table.loc[(LOGISTIC_TAG, "all labelled")]
    assert every["labelled"] == OUTCOMES.labelled and every["beyond horizon"] == str(OUTCOMES.beyond_horizon)
    assert every["in-sample"] == f"partly ({OUTCOMES.in_sample} of {OUTCOMES.labelled})"
    assert table.loc[(LOGISTIC_TAG, "out of sample")]["labelled"] == OUTCOMES.labelled - OUTCOMES.in_sample
    in_sample = table.loc[(LOGISTIC_TAG, "in-sample (training extracts)")]
    assert in_sample["labelled"] == OUTCOMES.in_sample and in_sample["in-sample"] == "IN-SAMPLE (all)"
    assert in_sample["verdict"] == "too few labelled (20 < 30)"
    boosting = table.loc[(":".join(BOOSTING), "forecasts")]
    assert boosting["verdict"] == f"too few labelled ({OUTCOMES.boosting_labelled} < 30)"
    assert any("in-sample" in w.value for w in app.warning)
    assert app.info[0].value.startswith(f"**{LOGISTIC_TAG}** on {OUTCOMES.forecasts} labelled predictions (forecasts)")
    # The ROC AUC intervals, and a calibration curve per version with a verdict (not the 20 boosting rows).
    assert len(app.get("vega_lite_chart")) == 1 + 1
    assert [r["rows"] for r in reads_of(url, "dashboard:evaluation")] == [
        OUTCOMES.labelled + OUTCOMES.beyond_horizon + OUTCOMES.boosting_labelled]


def test_the_comparison_page_rescores_the_traffic_with_every_version(seeded_dashboard) -> None:
    url, seed = seeded_dashboard
    app = run_page(COMPARISON)
    table = app.dataframe[0].value.set_index("model")
    rows = seeded_rows(url)
    probabilities, _, threshold = _scored(LOGISTIC, rows["inputs"].tolist())
    rescored = (np.array(probabilities) >= threshold).astype(int)
    rate, kappa = agreement(rows["prediction"].to_numpy(dtype=int), rescored)
    assert table.loc[LOGISTIC_TAG, "disagreements"] == int((rescored != rows["prediction"]).sum())
    assert table.loc[LOGISTIC_TAG, "agreement"] == pytest.approx(rate)
    assert table.loc[LOGISTIC_TAG, "kappa"] == pytest.approx(kappa)
    # The logistic model reproduces its own answers: every disagreement is on a row another version served.
    served_by_logistic = (rows["model_name"] == LOGISTIC[0]).to_numpy()
    assert (rescored[served_by_logistic] == rows["prediction"].to_numpy()[served_by_logistic]).all()
    side = app.dataframe[1].value
    assert "as served" in set(side["model"]) and LOGISTIC_TAG in set(side["model"])
    links = app.dataframe[2].value["audit"]
    assert all(link.startswith("/predictions?request_id=") for link in links)
    assert [r["rows"] for r in reads_of(url, "dashboard:comparison")] == [len(rows)]


def test_the_fairness_page_gives_each_groups_rate_and_flags(seeded_dashboard) -> None:
    url, _ = seeded_dashboard
    app = run_page(FAIRNESS)
    assert app.selectbox(key="fairness_model").value == LOGISTIC_TAG  # the champion
    rows = seeded_rows(url)
    logistic = rows[rows["model_name"] == LOGISTIC[0]]
    genre = logistic["inputs"].map(lambda inputs: inputs["genre"])
    expected = logistic.groupby(genre)["prediction"].agg(["size", "mean"])
    shown = app.dataframe[0].value.set_index("group")
    for group, (size, rate) in expected.iterrows():
        assert shown.loc[group, "rows"] == size
        assert shown.loc[group, "positive rate"] == pytest.approx(rate)
    compared = expected[expected["size"] >= 30]
    for group, (size, rate) in compared.iterrows():
        assert shown.loc[group, "ratio to highest"] == pytest.approx(rate / compared["mean"].max())
    assert shown.loc[expected.index[expected["size"] < 30], "verdict"].eq("too small").all()
    assert len(app.get("vega_lite_chart")) == 3
    assert [r["rows"] for r in reads_of(url, "dashboard:fairness")] == [len(rows)]


def test_a_group_under_the_minimum_is_shown_too_small_and_recall_needs_leavers() -> None:
    frame = pd.DataFrame({"prediction": [1] * 20 + [0] * 20 + [1] * 5,
                          "genre": ["F"] * 40 + ["M"] * 5,
                          "has_left": [1.0] * 10 + [0.0] * 10 + [0.0] * 20 + [np.nan] * 5})
    table = group_table(frame, "genre").set_index("group")
    assert table.loc["F", "positive rate"] == 0.5 and table.loc["F", "ratio to highest"] == 1.0
    assert table.loc["F", "recall"] == 1.0 and table.loc["F", "false-positive rate"] == pytest.approx(10 / 30)
    assert table.loc["M", "note"].startswith("too small") and np.isnan(table.loc["M", "ratio to highest"])
    assert np.isnan(table.loc["M", "recall"]) and table.loc["M", "labelled"] == 0


def test_the_pages_draw_the_cards_out_of_fold_references_beside_the_live_figures(
        seeded_dashboard, tmp_path, monkeypatch) -> None:
    """A card with out-of-fold references (as the v2 cards write them): each page draws the live figures against it."""
    import json
    import shutil

    from settings import settings

    models = tmp_path / "models"
    shutil.copytree(settings.models_dir, models)
    card_path = models / LOGISTIC[0] / LOGISTIC[1] / "card.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    edges = [i / 20 for i in range(21)]
    card["out_of_fold"] = {
        "probability_distribution": {"edges": edges, "shares": [0.05] * 20, "counts": [10] * 20, "rows": 200},
        "calibration": {"bins": [{"lower": i / 10, "upper": (i + 1) / 10, "count": 10, "positives": i,
                                  "mean_predicted": i / 10 + 0.05, "observed_rate": i / 10} for i in range(10)]},
        "fairness": {"genre": {"groups": {"F": {"positive_rate": 0.2, "ratio_to_highest": 0.8, "recall": 0.6,
                                                "false_positive_rate": 0.1},
                                          "M": {"positive_rate": 0.25, "ratio_to_highest": 1.0, "recall": 0.7,
                                                "false_positive_rate": 0.12}}}},
    }
    card_path.write_text(json.dumps(card), encoding="utf-8")
    monkeypatch.setattr(settings, "models_dir", models)

    evaluation = run_page(EVALUATION)
    calibration = evaluation.get("vega_lite_chart")[1].proto
    # Streamlit sends a chart's rows apart from its spec: its datasets, as Arrow tables.
    spec = json.dumps(json.loads(calibration.spec))
    assert '"field": "curve"' in spec
    drawn = set()
    for dataset in calibration.datasets:
        table = pa.ipc.open_stream(dataset.data.data).read_all().to_pandas()
        if "curve" in table:
            drawn |= set(table["curve"])
    assert drawn == {"live", "card (out-of-fold)"}
    fairness = run_page(FAIRNESS)
    genre = fairness.dataframe[0].value.set_index("group")
    assert genre.loc["F", "card positive rate"] == 0.2 and genre.loc["M", "card recall"] == 0.7
    assert any("no out-of-fold reference by departement" in c.value for c in fairness.caption)
    models_page = run_page("views/models.py")
    assert any("No out-of-fold distribution in the card of gradient_boosting:v1" in c.value
               for c in models_page.caption)


def test_without_outcomes_the_evaluation_says_how_to_record_them(empty_url, read_from) -> None:
    from persistence.trace.store import make_trace_store
    from tests.persistence.factories import make_trace

    engine = make_engine(empty_url)
    try:
        make_trace_store(engine).insert([make_trace(n, received_at=datetime.now(timezone.utc) - timedelta(hours=1),
                                                    model_name=LOGISTIC[0], model_version=LOGISTIC[1])
                                         for n in range(3)])
    finally:
        engine.dispose()
    read_from(empty_url)
    app = run_page(EVALUATION)
    assert app.warning[0].value.startswith("**No verdict**: no prediction of the last 24 hours has a known outcome")
    assert "python3 -m persistence record-outcomes FILE.csv" in app.info[-1].value
    fairness = run_page(FAIRNESS)
    assert (fairness.dataframe[0].value["verdict"] == "too small").all()  # 3 rows: every group too small
    assert "No group below four-fifths" in fairness.success[0].value


def test_no_page_has_a_bare_string_streamlit_would_draw() -> None:
    """Streamlit's magic writes any bare string statement of a page script on the page: only the docstring may be."""
    import ast
    from pathlib import Path

    views = Path(__file__).resolve().parents[2] / "dashboard" / "views"
    drawn = [f"{path.name}:{node.lineno}" for path in sorted(views.glob("*.py"))
             for node in ast.parse(path.read_text(encoding="utf-8")).body[1:]
             if isinstance(node, ast.Expr) and isinstance(getattr(node.value, "value", None), str)]
    assert drawn == []
