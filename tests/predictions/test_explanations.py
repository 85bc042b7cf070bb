"""Explanations through the prediction layer: inline answers, a trace's explanation, and what refuses one."""
from __future__ import annotations

import json
import math

import bentoml
import pytest
import sqlalchemy as sa

from api.responses import AnswerResponse
from attrition.errors import DefaultModelUnavailable, ExplanationUnavailable, ModelVersionGone, UnknownRequest
from attrition.schema import Employee
from attrition.synthetic import EXAMPLE_EMPLOYEE, synthetic_employees
from persistence.database.schema import prediction_traces, trace_reads
from predictions.answers import ExplainedPrediction, ExplainedPredictionBatch, Prediction, PredictionBatch
from registry.catalogue import ModelCatalogue
from registry.store import import_models
from registry.trust import pin, sha256_of
from tests.predictions.conftest import BATCH_CAP, MODELS_DIR, running_layer
from tests.registry.conftest import copy_version

ROUTE = "GET /predictions/{request_id}/explanation"


def employee(row: dict) -> Employee:
    return Employee.model_validate(row)


def rendered(value) -> dict:
    """What the client receives: the answer as the service renders it."""
    return json.loads(AnswerResponse(value).body)


def assert_explains(answer: ExplainedPrediction) -> dict:
    explanation = rendered(answer.explanation)
    assert len(explanation["contributions"]) == 30
    assert explanation["base_value"] + sum(c["contribution"] for c in explanation["contributions"]) == \
        pytest.approx(explanation["output"], abs=1e-6)
    output = explanation["output"]
    probability = 1 / (1 + math.exp(-output)) if explanation["link"] == "logit" else output
    assert probability == pytest.approx(answer.probability, abs=1e-6)
    return explanation


def reads_of(layer, request_id: str) -> list[dict]:
    with layer.layer.engine.connect() as connection:
        return [dict(r) for r in connection.execute(
            sa.select(trace_reads).where(trace_reads.c.request_id == request_id)).mappings()]


@pytest.mark.parametrize("model", ["logistic_regression", "random_forest", "gradient_boosting", "baseline"])
def test_an_explained_answer_equals_the_explanation_recomputed_from_its_trace(layer, model):
    answer = layer.run(layer.layer.predict(employee(EXAMPLE_EMPLOYEE), None, model, "auditor", explain=True))
    assert isinstance(answer, ExplainedPrediction) and answer.model == model
    inline = assert_explains(answer)
    recomputed = layer.layer.trace_explanation(answer.request_id, "auditor")
    assert recomputed.explanation.model_dump(mode="json") == inline
    assert (recomputed.model, recomputed.probability) == (model, answer.probability)
    assert [(r["route"], r["key_id"], r["rows"]) for r in reads_of(layer, answer.request_id)] == [
        (ROUTE, "auditor", 1)]


def test_a_batch_explains_every_row_as_its_trace_does(layer):
    rows = synthetic_employees(BATCH_CAP, seed=8)
    batch = layer.run(layer.layer.predict_batch([employee(r) for r in rows], "random_forest", explain=True))
    assert isinstance(batch, ExplainedPredictionBatch) and len(batch.predictions) == BATCH_CAP
    for row, answer in zip(rows, batch.predictions):
        inline = assert_explains(answer)
        assert {c["field"]: c["value"] for c in inline["contributions"]} == row
        recomputed = layer.layer.trace_explanation(answer.request_id)
        assert recomputed.explanation.model_dump(mode="json") == inline


def test_the_plain_path_builds_no_explainer(layer):
    answer = layer.run(layer.layer.predict(employee(EXAMPLE_EMPLOYEE), None, "random_forest"))
    batch = layer.run(layer.layer.predict_batch([employee(EXAMPLE_EMPLOYEE)], "gradient_boosting"))
    assert type(answer) is Prediction and type(batch) is PredictionBatch
    assert "explanation" not in answer.__dict__ and layer.layer.explainers._explainers == {}


def test_an_unknown_request_id_is_404_and_its_read_is_logged(layer):
    with pytest.raises(UnknownRequest):
        layer.layer.trace_explanation("no-such-request", "auditor")
    assert [(r["route"], r["rows"]) for r in reads_of(layer, "no-such-request")] == [(ROUTE, 0)]


def test_a_trace_whose_artifact_digest_differs_from_the_store_is_not_explained(layer):
    answer = layer.run(layer.layer.predict(employee(EXAMPLE_EMPLOYEE), None, "logistic_regression"))
    with layer.layer.engine.begin() as connection:
        connection.execute(sa.update(prediction_traces).where(prediction_traces.c.request_id == answer.request_id)
                           .values(model_sha256="0" * 64))
    with pytest.raises(ExplanationUnavailable) as refused:
        layer.layer.trace_explanation(answer.request_id)
    assert refused.value.detail[0]["field"] == "model_sha256" and "not the one that answered" in refused.value.message


def test_a_trace_whose_stored_probability_does_not_reproduce_is_not_explained(layer):
    answer = layer.run(layer.layer.predict(employee(EXAMPLE_EMPLOYEE), None, "gradient_boosting"))
    with layer.layer.engine.begin() as connection:
        connection.execute(sa.update(prediction_traces).where(prediction_traces.c.request_id == answer.request_id)
                           .values(probability=min(1.0, answer.probability + 0.01)))
    with pytest.raises(ExplanationUnavailable) as refused:
        layer.layer.trace_explanation(answer.request_id)
    assert refused.value.detail[0]["field"] == "probability"


def test_a_trace_whose_version_left_the_store_is_gone(tmp_path, sqlite_url, imported):
    models = tmp_path / "models"
    retired = copy_version(models, "retired_model", source="gradient_boosting")
    pin("retired_model:v1", sha256_of(retired / "model.joblib"))  # trusted: it is refused only once it is gone
    (models / "aliases.json").write_text((MODELS_DIR / "aliases.json").read_text())
    import_models(models)
    running = running_layer(sqlite_url, tmp_path, ModelCatalogue.from_store(models))
    try:
        answer = running.run(running.layer.predict(employee(EXAMPLE_EMPLOYEE), None, "retired_model"))
    finally:
        running.close()
    bentoml.models.delete("retired_model:v1")
    later = running_layer(sqlite_url, tmp_path, ModelCatalogue.from_store(MODELS_DIR))
    try:
        with pytest.raises(ModelVersionGone) as gone:
            later.layer.trace_explanation(answer.request_id)
        assert "retired_model:v1" in gone.value.message and gone.value.detail[0]["field"] == "model_version"
    finally:
        later.close()


def test_a_trace_of_a_request_no_model_could_answer_has_nothing_to_explain(tmp_path, sqlite_url, imported):
    running = running_layer(sqlite_url, tmp_path, ModelCatalogue.from_store(MODELS_DIR))
    try:
        running.layer.catalogue.mark_invalid(running.layer.catalogue.default, "made invalid for this test")
        with pytest.raises(DefaultModelUnavailable):
            running.run(running.layer.predict(employee(EXAMPLE_EMPLOYEE), None, None, explain=True))
        with running.layer.engine.connect() as connection:
            request_id = connection.execute(sa.select(prediction_traces.c.request_id)).scalar_one()
        with pytest.raises(ExplanationUnavailable, match="no answer to explain"):
            running.layer.trace_explanation(request_id)
    finally:
        running.close()
