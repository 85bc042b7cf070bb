"""Explanations on the dashboard: the audit view's waterfall and the Models page's drivers, on SQLite and PostgreSQL.

The waterfall is recomputed in the dashboard process; it must give the
numbers the prediction layer's ``trace_explanation`` (the endpoint
``GET /predictions/{id}/explanation``) gives for the same seeded trace.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from attrition.schema import FEATURE_NAMES
from dashboard import queries
from dashboard.audit import read_card
from dashboard.context import read_only_engine
from dashboard.explaining import (WATERFALL_FIELDS, explain_trace, training_reference, version_explainer,
                                  waterfall_steps)
from dashboard.queries import Window
from persistence.database.engine import make_engine
from persistence.database.schema import prediction_traces, trace_reads
from predictions.layer import PredictionLayer
from registry.catalogue import ModelCatalogue
from registry.runner import RunnerPool
from settings import settings
from tests.dashboard.seed import AUDITED_REQUEST, BOOSTING, LOGISTIC, LOGISTIC_TAG, TAMPERED_REQUEST, SeedCounts
from tests.dashboard.test_pages import MODELS, PREDICTIONS, run_page
from tests.registry.conftest import MODELS_DIR, imported  # noqa: F401  (the session fixture)

EXACT = 1e-9
BOOSTING_TAG = ":".join(BOOSTING)


@pytest.fixture
def seeded_dashboard(seeded: tuple[str, SeedCounts], read_from: Callable[[str], None]) -> tuple[str, SeedCounts]:
    """The dashboard reading the seeded database."""
    read_from(seeded[0])
    return seeded


def charts_titled(app, prefix: str) -> list:
    """The page's Altair charts whose title starts with ``prefix``."""
    return [chart for chart in app.get("vega_lite_chart") if str(json.loads(chart.proto.spec).get("title", ""))
            .startswith(prefix)]


def chart_frames(chart) -> list[pd.DataFrame]:
    """The data sets a chart was sent with (Arrow tables), as frames."""
    return [pa.ipc.open_stream(dataset.data.data).read_all().to_pandas() for dataset in chart.proto.datasets]


def service_explanation(url: str, request_id: str):
    """What ``GET /predictions/{id}/explanation`` answers: the prediction layer's trace explanation."""
    catalogue = ModelCatalogue.from_store(MODELS_DIR)
    engine = make_engine(url)
    try:
        layer = PredictionLayer(catalogue, RunnerPool(catalogue, 64, 1.0), engine, None, max_batch_rows=5)
        return layer.trace_explanation(request_id, "auditor")
    finally:
        engine.dispose()


def reads_of(url: str, request_id: str) -> list[tuple[str, int, int | None]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return [(r["route"], r["rows"], r["employee_id"]) for r in connection.execute(
                sa.select(trace_reads).where(trace_reads.c.request_id == request_id)
                .order_by(trace_reads.c.read_at, trace_reads.c.route)).mappings()]
    finally:
        engine.dispose()


def test_the_audit_view_draws_the_explanation_the_endpoint_gives(seeded_dashboard, imported) -> None:  # noqa: F811
    url, _ = seeded_dashboard
    service = service_explanation(url, AUDITED_REQUEST)
    trace = queries.trace_by_request_id(read_only_engine(url), AUDITED_REQUEST)
    recomputed = explain_trace(trace, settings.models_dir)
    explanation = recomputed.explanation
    assert recomputed.verdict == "explained" and explanation is not None
    # Every number, as the endpoint gives it, to 1e-9.
    assert explanation.link == service.explanation.link == "logit"
    assert abs(explanation.base_value - service.explanation.base_value) <= EXACT
    assert abs(explanation.output - service.explanation.output) <= EXACT
    assert [c.field for c in explanation.contributions] == [c.field for c in service.explanation.contributions]
    assert max(abs(mine.contribution - theirs.contribution) for mine, theirs in zip(
        explanation.contributions, service.explanation.contributions)) <= EXACT
    assert [c.value for c in explanation.contributions] == [c.value for c in service.explanation.contributions]
    assert recomputed.probability == service.probability == trace["probability"]

    app = run_page(PREDICTIONS, request_id=AUDITED_REQUEST)
    [chart] = charts_titled(app, "Why this answer, on the log-odds of leaving (logit scale)")
    steps, marks = chart_frames(chart)
    # Base value, the 12 largest pushes (value beside the name), the other 18 as one step, the output.
    assert len(steps) == WATERFALL_FIELDS + 3
    assert steps["step"].iloc[0].startswith("base value") and steps["step"].iloc[-1] == "output"
    assert steps["step"].iloc[-2] == f"{30 - WATERFALL_FIELDS} other fields"
    top = service.explanation.contributions[:WATERFALL_FIELDS]
    assert list(steps["step"].iloc[1:-2]) == [f"{c.field} = {c.value:g}" if isinstance(c.value, float)
                                              else f"{c.field} = {c.value}" for c in top]
    assert np.max(np.abs(steps["contribution"].iloc[1:-2].to_numpy() - [c.contribution for c in top])) <= EXACT
    assert abs(steps["contribution"].iloc[0] - service.explanation.base_value) <= EXACT
    # The steps end on the output, and the grouped step is the exact remainder.
    assert abs(steps["end"].iloc[-2] - service.explanation.output) <= EXACT
    assert abs(steps["end"].iloc[-1] - service.explanation.output) <= EXACT
    # The stored probability and the threshold, on the log-odds scale.
    at = dict(zip(marks["name"].str.split(" ").str[0], marks["at"]))
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    assert abs(at["stored"] - logit(trace["probability"])) <= 1e-12
    assert abs(at["threshold"] - logit(trace["threshold"])) <= 1e-12
    assert abs(at["stored"] - service.explanation.output) <= 1e-5  # the stored probability is rounded to 6 decimals
    # A read of personal data, recorded like the audit view: once per session, by its own route.
    assert sorted(reads_of(url, AUDITED_REQUEST)) == [
        ("GET /predictions/{request_id}/explanation", 1, trace["employee_id"]),  # the service_explanation above
        ("dashboard:audit", 1, trace["employee_id"]), ("dashboard:explanation", 1, trace["employee_id"])]


def test_a_trace_whose_artifact_is_not_the_recorded_one_gets_no_explanation(seeded_dashboard) -> None:
    url, _ = seeded_dashboard
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.update(prediction_traces).where(prediction_traces.c.request_id == TAMPERED_REQUEST)
                               .values(model_sha256="0" * 64))
    finally:
        engine.dispose()
    app = run_page(PREDICTIONS, request_id=TAMPERED_REQUEST)
    assert not charts_titled(app, "Why this answer")
    assert any(c.value == "No explanation: the artifact's sha256 is not the one the trace recorded: this is not the "
               "model that answered." for c in app.caption)


def test_the_models_page_sets_the_served_drivers_beside_the_cards(seeded_dashboard) -> None:
    url, seed = seeded_dashboard
    app = run_page(MODELS)
    [logistic] = charts_titled(app, f"{LOGISTIC_TAG}: mean |contribution| per field")
    [boosting] = charts_titled(app, f"{BOOSTING_TAG}: mean |contribution| per field")
    drawn = chart_frames(logistic)[0]
    # Independently: every answered row of the champion in the window, explained, |.| averaged.
    inputs = queries.served_inputs(read_only_engine(url), Window(None, None), *LOGISTIC, 10_000)
    window_rows = seed.logistic_rows_24h - seed.errors_24h  # answered rows of the champion in the last 24 hours
    contributions, _ = version_explainer(settings.models_dir, *LOGISTIC).field_contributions(inputs[:window_rows])
    live = pd.Series(np.abs(contributions).mean(axis=0), index=list(FEATURE_NAMES))
    served = drawn[drawn["source"] == f"served ({window_rows:,} rows)"].set_index("field")["mean_abs"]
    assert list(served.index) == list(live.sort_values(ascending=False, kind="stable").index[:10])
    assert np.max(np.abs(served - live[served.index])) <= EXACT
    card = json.loads((Path(settings.models_dir) / LOGISTIC[0] / LOGISTIC[1] / "card.json").read_text())
    trained = drawn[drawn["source"] == "training (card)"].set_index("field")["mean_abs"]
    assert list(trained.index) == list(served.index)
    in_card = {item["field"]: item["mean_abs"] for item in card["explanation_reference"]["mean_abs_contribution"]}
    assert all(trained[f] == in_card[f] for f in trained.index)
    # gradient_boosting:v1's card predates the reference: its served traffic alone, and the page says so.
    assert set(chart_frames(boosting)[0]["source"]) == {f"served ({seed.boosting_rows_24h:,} rows)"}
    assert any(c.value.startswith(f"The card of {BOOSTING_TAG} lacks the training reference") for c in app.caption)


def test_the_waterfall_groups_the_small_fields_without_losing_the_total() -> None:
    from attrition.synthetic import synthetic_employees

    for name in ("logistic_regression", "gradient_boosting", "random_forest", "baseline"):
        explainer = version_explainer(settings.models_dir, name, "v2")
        for explanation in explainer.explain(synthetic_employees(20, seed=5)):
            steps = waterfall_steps(explanation)
            pushes = steps[steps["kind"].isin(["up", "down", "others"])]
            assert abs(steps["end"].iloc[-2] - explanation.output) <= 1e-9
            assert abs(explanation.base_value + pushes["contribution"].sum() - explanation.output) <= 1e-6
            assert (pushes["start"].iloc[1:].to_numpy() == pushes["end"].iloc[:-1].to_numpy()).all()
    # The first versions' cards are untouched: they hold no reference, the second versions' do.
    assert training_reference(read_card(settings.models_dir, "logistic_regression", "v1")) is None
    assert training_reference(read_card(settings.models_dir, "logistic_regression", "v2")) is not None


def test_a_trace_whose_stored_probability_does_not_reproduce_gets_no_explanation(seeded_dashboard) -> None:
    url, _ = seeded_dashboard
    request_id = "seed-logistic_regression-0022"
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.update(prediction_traces).where(prediction_traces.c.request_id == request_id)
                               .values(probability=prediction_traces.c.probability + 0.01))
    finally:
        engine.dispose()
    app = run_page(PREDICTIONS, request_id=request_id)
    assert not charts_titled(app, "Why this answer")
    assert any(c.value.startswith("No explanation: the model gives ") for c in app.caption)
