"""Every page of the dashboard, run by Streamlit's AppTest against seeded databases on SQLite and PostgreSQL."""
from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from attrition.card import ModelCard
from dashboard import queries
from dashboard.audit import listed_table, read_card, rows_csv, trace_json
from dashboard.cards import card_summary
from dashboard.context import read_only_engine
from dashboard.queries import PredictionFilter, Window
from persistence.database.engine import make_engine
from persistence.database.schema import prediction_traces, trace_reads
from settings import settings
from tests.dashboard.conftest import APP
from tests.dashboard.seed import (AUDITED_REQUEST, LOGISTIC, LOGISTIC_TAG, SHIFTED_INPUT, SHIFTED_VALUE,
                                  TAMPERED_REQUEST, SeedCounts)

SERVICE, PREDICTIONS, MODELS, DRIFT = (f"views/{name}.py" for name in ("service", "predictions", "models", "drift"))


def run_page(page: str, request_id: str | None = None) -> AppTest:
    """Run the dashboard on ``page`` (optionally with ``?request_id=``); fails on any Streamlit exception."""
    app = AppTest.from_file(str(APP), default_timeout=60)
    if request_id is not None:
        app.query_params["request_id"] = request_id
    app.run()
    if page != SERVICE:
        app.switch_page(page).run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.sidebar.selectbox(key="window").label == "Time window"  # run through app.py's navigation
    return app


def metrics(app: AppTest) -> dict[str, str]:
    """The page's headline metrics, label to shown value."""
    return {m.label: m.value for m in app.metric}


def chart_specs(app: AppTest) -> list[dict]:
    """The Vega-Lite specs of the page's Altair charts."""
    return [json.loads(chart.proto.spec) for chart in app.get("vega_lite_chart")]


def encoded_fields(spec: dict) -> set[str]:
    """Every data field a chart spec encodes (in any layer)."""
    fields: set[str] = set()
    for layer in [spec, *spec.get("layer", [])]:
        fields.update(channel["field"] for channel in layer.get("encoding", {}).values()
                      if isinstance(channel, dict) and "field" in channel)
    return fields


@pytest.fixture
def seeded_dashboard(seeded: tuple[str, SeedCounts], read_from: Callable[[str], None]) -> tuple[str, SeedCounts]:
    """The dashboard reading the seeded database."""
    read_from(seeded[0])
    return seeded


def test_service_page_counts_requests_rows_and_errors_of_the_last_24_hours(seeded_dashboard) -> None:
    url, seed = seeded_dashboard
    app = run_page(SERVICE)
    shown = metrics(app)
    assert shown["Requests"] == f"{seed.requests_24h:,}"
    assert shown["Rows"] == f"{seed.rows_24h:,}"
    assert shown["Error rate"] == f"{100 * seed.error_rate_24h:.1f} %"
    assert shown["Fallback rate"] == f"{100 * seed.fallbacks_24h / seed.rows_24h:.1f} %"
    assert shown["Batch share of requests"] == f"{100 * 3 / seed.requests_24h:.1f} %"  # 3 batch calls
    approximate = url.startswith("sqlite")
    assert ("p95 total latency (approx.)" in shown) is approximate
    assert ("p95 total latency" in shown) is not approximate
    assert app.warning[0].value.startswith(
        f"**Service answered with failures:** {seed.errors_24h} errors ({100 * seed.error_rate_24h:.1f} %) and "
        f"{seed.fallbacks_24h} fallbacks")
    specs = chart_specs(app)
    assert len(specs) == 5
    assert {"start", "end", "requests", "model"} <= encoded_fields(specs[0])
    assert {"start", "end", "rows", "model"} <= encoded_fields(specs[1])
    assert {"middle", "ms", "percentile", "measure"} <= encoded_fields(specs[2])
    assert {"start", "end", "share", "rate"} <= encoded_fields(specs[3])
    for spec in specs[:4]:  # over time: bars span their bucket on the axis's span, 24-hour labels, zone named
        x = spec.get("encoding", spec.get("layer", [{}])[0].get("encoding", {}))["x"]
        assert x["scale"]["type"] == "utc" and len(x["scale"]["domain"]) == 2
        assert "%H:%M" in x["axis"]["format"] and "(UTC," in x["title"]
    for spec in specs:  # the height is the plot area's, not the whole chart's
        assert spec["autosize"]["type"] == "fit-x" and spec["height"] >= 100


def test_service_page_follows_the_sidebar_window(seeded_dashboard) -> None:
    _, seed = seeded_dashboard
    app = run_page(SERVICE)
    assert app.sidebar.selectbox(key="window").value == "Last 24 hours"
    app.sidebar.selectbox(key="window").set_value("All").run()
    assert metrics(app)["Rows"] == f"{seed.rows_all:,}" and metrics(app)["Requests"] == f"{seed.requests_all:,}"
    app.sidebar.selectbox(key="window").set_value("Last hour").run()
    assert not app.metric
    assert "No trace in the last hour" in app.info[0].value
    # A custom range around ten days ago holds only the 30 older single calls.
    app.sidebar.selectbox(key="window").set_value("Custom range").run()
    today = datetime.now(timezone.utc).date()
    app.sidebar.date_input(key="window_range").set_value((today - timedelta(days=12), today - timedelta(days=8))).run()
    assert metrics(app)["Rows"] == "30" and metrics(app)["Requests"] == "30"


def test_predictions_page_opens_the_audit_view_and_reproduces_the_answer(seeded_dashboard) -> None:
    url, seed = seeded_dashboard
    stored = queries.trace_by_request_id(read_only_engine(url), AUDITED_REQUEST)
    app = run_page(PREDICTIONS, request_id=AUDITED_REQUEST)
    assert f"**{seed.rows_24h:,} rows** match" in app.markdown[0].value
    listed = app.dataframe[0].value
    assert len(listed) == seed.rows_24h and AUDITED_REQUEST in set(listed["request id"])
    # An analyst reads when, who, which model version, what answer first; ids stay, last.
    assert list(listed.columns)[:5] == ["received", "employee id", "model", "label", "probability"]
    assert list(listed.columns)[-1] == "request id" and listed["received"].iloc[0].endswith(" UTC")
    assert app.header[0].value == f"Audit of request {AUDITED_REQUEST}"
    shown = metrics(app)
    assert shown["Probability of leaving"] == f"{stored['probability']:.6f}"
    assert shown["Predicted label"] == ("Oui" if stored["prediction"] == 1 else "Non")
    inputs = app.dataframe[1].value
    assert len(inputs) == 30
    assert inputs.set_index("input").loc[SHIFTED_INPUT, "value"] == SHIFTED_VALUE
    assert inputs.set_index("input").loc["age", "in training"].startswith("percentile ")
    assert stored["model_sha256"] in " ".join(m.value for m in app.markdown)
    app.button(key="reproduce").click().run()
    assert [s.value for s in app.success] == [f"reproduced: {stored['probability']:.6f} is the stored probability"]
    assert not app.error
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            logged = connection.execute(sa.select(trace_reads).where(
                trace_reads.c.request_id == AUDITED_REQUEST)).mappings().all()
    finally:
        engine.dispose()
    # The audit view and its explanation are recorded in the read log, once for the session although the page ran
    # twice.
    assert sorted((r["route"], r["rows"], r["employee_id"]) for r in logged) == [
        ("dashboard:audit", 1, stored["employee_id"]), ("dashboard:explanation", 1, stored["employee_id"])]
    assert logged[0]["key_id"].startswith("dashboard:")
    # So is the listing of the rows, with the filter it used.
    assert [(r["route"], r["rows"], r["employee_id"]) for r in listings(url)] == [
        ("dashboard:predictions", seed.rows_24h, None)]


def listings(url: str) -> list[dict]:
    """The read log's records of listed trace rows (the Predictions table), oldest first."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return [dict(r) for r in connection.execute(sa.select(trace_reads).where(
                trace_reads.c.route == "dashboard:predictions").order_by(trace_reads.c.read_at)).mappings()]
    finally:
        engine.dispose()


def test_the_employee_filter_and_the_rows_it_lists_are_recorded_in_the_read_log(seeded_dashboard) -> None:
    url, _ = seeded_dashboard
    app = run_page(PREDICTIONS)
    app.text_input(key="filter_employee").set_value("1003").run()
    listed = app.dataframe[0].value
    assert set(listed["employee id"]) == {1003} and len(listed) >= 1
    recorded = [r for r in listings(url) if r["employee_id"] == 1003]
    assert [(r["rows"], r["parameters"]["employee_id"]) for r in recorded] == [(len(listed), 1003)]


def test_reproduce_reports_a_mismatch_for_a_tampered_trace(seeded_dashboard) -> None:
    url, _ = seeded_dashboard
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.update(prediction_traces).where(prediction_traces.c.request_id == TAMPERED_REQUEST)
                               .values(probability=prediction_traces.c.probability + 0.01))
    finally:
        engine.dispose()
    app = run_page(PREDICTIONS, request_id=TAMPERED_REQUEST)
    app.button(key="reproduce").click().run()
    assert not app.success
    assert app.error[0].value.startswith("mismatch: the model gives ")


def test_predictions_filter_and_exports(seeded_dashboard) -> None:
    url, seed = seeded_dashboard
    app = run_page(PREDICTIONS)
    app.selectbox(key="filter_label").set_value("Oui").run()
    since = datetime.now(timezone.utc) - timedelta(hours=24)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            positives = connection.execute(sa.select(sa.func.count()).where(
                prediction_traces.c.prediction == 1, prediction_traces.c.received_at >= since)).scalar_one()
    finally:
        engine.dispose()
    assert 0 < positives < seed.rows_24h
    assert f"**{positives:,} rows** match" in app.markdown[0].value
    assert set(app.dataframe[0].value["label"]) == {"Oui"}
    assert any(c.value.startswith("No request selected") for c in app.main.caption)
    reader = read_only_engine(url)
    listed = queries.prediction_rows(reader, Window(since), PredictionFilter(), 10_000)
    exported = rows_csv(listed_table(listed, "UTC")).decode()
    assert len(exported.strip().splitlines()) == seed.rows_24h + 1
    assert exported.startswith("received,employee id,model,label,probability,")
    document = json.loads(trace_json(queries.trace_by_request_id(reader, AUDITED_REQUEST)))
    assert document["request_id"] == AUDITED_REQUEST and len(document["inputs"]) == 30


def test_models_page_compares_cards_and_live_volume(seeded_dashboard) -> None:
    _, seed = seeded_dashboard
    app = run_page(MODELS)
    cards = app.dataframe[0].value
    assert {LOGISTIC_TAG, "gradient_boosting:v1", "random_forest:v1", "baseline:v1"} <= set(cards.columns)
    card = read_card(settings.models_dir, *LOGISTIC)
    assert isinstance(card, ModelCard)
    assert cards.loc["ROC AUC", LOGISTIC_TAG] == (
        f"{card.metrics['cv']['roc_auc_mean']:.3f} ± {card.metrics['cv']['roc_auc_std']:.3f} (5-fold CV)")
    assert cards.loc["precision at threshold", LOGISTIC_TAG] == (
        f"{card.metrics['threshold_selection']['precision']:.3f} (out-of-fold CV)")
    assert app.info[0].value.startswith(f"**2 model versions served traffic**; the champion {LOGISTIC_TAG} "
                                        f"served {seed.logistic_rows_24h} of {seed.rows_24h} rows")
    shown = metrics(app)
    assert shown[LOGISTIC_TAG] == f"{seed.logistic_rows_24h} rows"
    assert shown["gradient_boosting:v1"] == f"{seed.boosting_rows_24h} rows"
    specs = chart_specs(app)
    # Positive rate, one probability histogram per model version, then one chart of drivers per model version.
    assert len(specs) == 5
    rates = specs[0]["layer"][0]["encoding"]
    assert rates["y"]["field"] == "model" and rates["x"]["field"] == "positive_rate"  # one row per name:version
    assert specs[0]["height"] == 100  # two rows of 28 px, raised to the 100 px floor
    assert {spec.get("title", {}).get("text") if isinstance(spec.get("title"), dict) else spec.get("title")
            for spec in specs[1:3]} == {"gradient_boosting:v1", LOGISTIC_TAG}
    assert {spec["title"] for spec in specs[3:]} == {f"{tag}: mean |contribution| per field"
                                                     for tag in ("gradient_boosting:v1", LOGISTIC_TAG)}


def test_drift_page_shows_the_psi_of_the_seeded_shift(seeded_dashboard) -> None:
    _, seed = seeded_dashboard
    app = run_page(DRIFT)
    assert app.selectbox(key="drift_model").value == LOGISTIC_TAG
    table = app.dataframe[0].value.set_index("input")
    assert len(table) == 30
    shares = read_card(settings.models_dir, *LOGISTIC).reference_distributions[SHIFTED_INPUT]["shares"]
    # Every seeded row works overtime: live shares Oui = 1, Non = 0 (floored at 1e-4).
    expected = ((shares["Oui"] - 1.0) * math.log(shares["Oui"] / 1.0)
                + (shares["Non"] - 1e-4) * math.log(shares["Non"] / 1e-4))
    assert table.loc[SHIFTED_INPUT, "PSI"] == pytest.approx(expected, abs=1e-9)
    assert table.loc[SHIFTED_INPUT, "verdict"] == "drift" and table.loc[SHIFTED_INPUT, "adjusted p"] < 1e-6
    assert table.loc[SHIFTED_INPUT, "rows"] == seed.logistic_rows_24h
    assert f"inputs drift** (150 rows of {LOGISTIC_TAG})" in app.error[0].value
    assert SHIFTED_INPUT in app.error[0].value
    assert "Holm's adjustment" in app.markdown[0].value
    shown = app.multiselect(key="drift_features").value
    assert SHIFTED_INPUT in shown
    assert len(chart_specs(app)) == 2 + len(shown)  # PSI, one histogram per input shown, the daily worst
    app.selectbox(key="drift_model").set_value("gradient_boosting:v1").run()
    assert app.warning[0].value.startswith(f"**No verdict**: {seed.boosting_rows_24h} rows of gradient_boosting:v1")
    assert app.dataframe[0].value["PSI"].isna().all()


def test_drift_page_opens_on_the_champion(seeded_dashboard, monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard import context

    # The champion here served fewer rows than the other version: the page still opens on it.
    monkeypatch.setattr(context, "champion", lambda: "gradient_boosting:v1")
    app = run_page(DRIFT)
    assert app.selectbox(key="drift_model").value == "gradient_boosting:v1"


def test_drift_counts_bin_numeric_inputs_on_the_reference_edges(seeded_dashboard) -> None:
    import numpy as np

    from attrition.synthetic import synthetic_employees

    url, _ = seeded_dashboard
    card = read_card(settings.models_dir, *LOGISTIC)
    since = datetime.now(timezone.utc) - timedelta(hours=24)
    counts = queries.drift_counts(read_only_engine(url), Window(since), *LOGISTIC, card.reference_distributions,
                                  10_000)
    edges = card.reference_distributions["age"]["histogram"]["edges"]
    ages = [e["age"] for e in synthetic_employees(150, seed=11)]
    expected = np.histogram(ages, bins=edges)[0]
    age = counts[counts["feature"] == "age"].groupby("bin")["rows"].sum()
    assert [int(age.get(i, 0)) for i in range(len(edges) - 1)] == expected.tolist()


@pytest.mark.parametrize("page", [SERVICE, PREDICTIONS, MODELS, DRIFT, *(f"views/{name}.py" for name in (
    "evaluation", "comparison", "fairness"))])
def test_pages_show_what_to_run_on_an_empty_database(page: str, empty_url: str, read_from) -> None:
    read_from(empty_url)
    app = run_page(page)
    assert "No prediction has been traced in this database yet" in app.info[-1].value
    assert "python3 -m dashboard.demo_traffic" in app.info[-1].value
    assert not app.get("vega_lite_chart")


def test_a_missing_database_file_is_an_empty_state_not_an_error(tmp_path, read_from) -> None:
    path = tmp_path / "never-created.db"
    read_from(f"sqlite:///{path}")
    app = run_page(SERVICE)
    assert app.info[0].value.startswith("Nothing to show yet: cannot open the database")
    assert not path.exists()  # the dashboard never creates (writes) the database


def test_a_card_without_cross_validation_says_its_metrics_come_from_the_holdout() -> None:
    card = read_card(settings.models_dir, *LOGISTIC)
    holdout_only = card.model_copy(update={"metrics": {"holdout": card.metrics["holdout"]}})
    summary = card_summary(holdout_only, {"champion": card.tag})
    assert summary["ROC AUC"] == f"{card.metrics['holdout']['roc_auc']:.3f} (holdout)"
    assert summary["recall at threshold"] == f"{card.metrics['holdout']['recall']:.3f} (holdout)"
    assert summary["aliases"] == "champion"


def test_times_follow_the_display_zone_of_the_sidebar(seeded_dashboard) -> None:
    app = run_page(PREDICTIONS)
    assert app.dataframe[0].value["received"].iloc[0].endswith(" UTC")
    app.sidebar.selectbox(key="display_zone").set_value("Europe/Paris").run()
    assert app.dataframe[0].value["received"].iloc[0].endswith(" Europe/Paris")
    app.switch_page(SERVICE).run()
    titles = [spec["encoding"]["x"]["title"] for spec in chart_specs(app)[:2]]
    assert all(title.startswith("time (Europe/Paris, ") for title in titles)


def test_the_service_page_says_when_the_journal_is_out_of_sight(seeded_dashboard, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(settings, "state_dir", tmp_path / "not-the-service-host")
    app = run_page(SERVICE)
    assert metrics(app)["Journaled, not yet in the database"] == "unknown"
    assert any(c.value.startswith("Unknown: no journal directory at") for c in app.caption)


def test_a_card_without_a_reference_for_an_input_names_it(seeded_dashboard, tmp_path, monkeypatch) -> None:
    folder = tmp_path / "models" / LOGISTIC[0] / LOGISTIC[1]
    folder.mkdir(parents=True)
    card = json.loads((Path(settings.models_dir) / LOGISTIC[0] / LOGISTIC[1] / "card.json").read_text("utf-8"))
    del card["reference_distributions"]["age"]
    (folder / "card.json").write_text(json.dumps(card), encoding="utf-8")
    monkeypatch.setattr(settings, "models_dir", tmp_path / "models")
    app = run_page(DRIFT)
    assert any("holds no training reference for age" in w.value for w in app.warning)
    table = app.dataframe[0].value.set_index("input")
    assert table.loc["age", "verdict"] == "no verdict" and "no training reference" in table.loc["age", "note"]
    app.multiselect(key="drift_features").set_value([SHIFTED_INPUT]).run()
    assert not app.exception
