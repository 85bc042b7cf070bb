"""The error table: every domain error answers with its status and a JSON object naming the field."""
from __future__ import annotations

import asyncio

import orjson
import pytest
from fastapi import FastAPI, Query
from starlette.testclient import TestClient

from api import errors
from api.errors import (BodyTooLarge, MissingApiKey, UnsupportedMediaType, answering, error_answer, invalid_request,
                        status_of)
from api.responses import AnswerResponse
from attrition.errors import (BatchTooLarge, DefaultModelUnavailable, DomainError, InvalidRequest, NotFound,
                              TraceNotStored, UnknownEmployee, UnknownModel, UnknownRequest)
from predictions.answers import Prediction, PredictionBatch

CONTRACT = [
    (InvalidRequest("invalid request: age: too old", [{"field": "age", "message": "too old"}]), 400, "age"),
    (MissingApiKey("missing or invalid API key", [{"field": "X-API-Key", "message": "missing"}]), 401, "X-API-Key"),
    (UnknownModel("nope", ["champion"]), 404, "model"),
    (UnknownEmployee(12), 404, "employee_id"),
    (UnknownRequest("abc"), 404, "request_id"),
    (BodyTooLarge(1024), 413, "body"),
    (BatchTooLarge(30, 25), 413, "employees"),
    (UnsupportedMediaType("text/plain"), 415, "content-type"),
    (TraceNotStored("journal not writable"), 503, "trace"),
    (DefaultModelUnavailable("the default model x:v1 is invalid"), 503, "model"),
]


@pytest.mark.parametrize("error, status, field", CONTRACT, ids=lambda value: type(value).__name__)
def test_each_domain_error_answers_its_status_with_an_object_naming_the_field(error, status, field):
    answer = error_answer(error)
    body = orjson.loads(answer.body)
    assert answer.status_code == status and answer.media_type == "application/json"
    assert body["error"] == error.message and field in [d["field"] for d in body["detail"]]


def test_a_subclass_answers_as_its_nearest_listed_ancestor_and_an_unlisted_error_as_500():
    class UnknownOutcome(NotFound):
        pass

    class Unforeseen(DomainError):
        pass

    assert status_of(UnknownOutcome("employee_id", 3, "outcome")) == 404
    assert status_of(Unforeseen("?")) == 500


def test_pydantic_errors_become_an_invalid_request_naming_each_location():
    invalid = invalid_request([
        {"loc": ("body", "employees", 3, "age"), "msg": "too large", "type": "less_than_equal"},
        {"loc": ("query", "employee_id"), "msg": "not an integer", "type": "int_parsing"},
    ])
    assert [d["field"] for d in invalid.detail] == ["employees[3].age", "employee_id"]
    assert "employees[3].age: too large" in invalid.message and status_of(invalid) == 400


def _prediction(request_id: str = "r1") -> Prediction:
    return Prediction(request_id=request_id, model="logistic_regression", model_version="v1", requested_model=None,
                      prediction=1, label="Oui", probability=0.5, threshold=0.25, fallback=False)


def test_answering_renders_typed_answers_with_orjson_and_domain_errors_from_the_table():
    async def predict(_self, ok: bool):
        if not ok:
            raise UnknownModel("nope", ["champion"])
        return PredictionBatch(predictions=[_prediction("a"), _prediction("b")])

    wrapped = answering(predict)
    answered = asyncio.run(wrapped(None, ok=True))
    assert isinstance(answered, AnswerResponse)
    assert orjson.loads(answered.body) == PredictionBatch(predictions=[_prediction("a"), _prediction("b")]).model_dump()
    refused = asyncio.run(wrapped(None, ok=False))
    assert refused.status_code == 404 and orjson.loads(refused.body)["detail"][0]["valid"] == ["champion"]


def test_install_answers_the_mounted_app_from_the_same_table():
    class Service:
        apis: dict = {}

    app = FastAPI()

    @app.get("/employees/{employee_id}")
    def employee(employee_id: int, limit: int = Query(1, le=10)) -> dict:
        raise UnknownEmployee(employee_id)

    errors.install(Service, app)
    with TestClient(app) as client:
        missing = client.get("/employees/7")
        assert missing.status_code == 404 and missing.json()["detail"][0]["field"] == "employee_id"
        invalid = client.get("/employees/7", params={"limit": 11})
        assert invalid.status_code == 400 and invalid.json()["detail"][0]["field"] == "limit"


def test_an_invalid_request_lists_the_first_fifty_problems_and_counts_them_all():
    problems = [{"loc": ("body", "employees", row, "age"), "msg": "Field required", "type": "missing",
                 "input": {"revenu_mensuel": 98765}} for row in range(20_000)]
    invalid = invalid_request(problems)
    assert len(invalid.detail) == 50 and invalid.detail[49]["field"] == "employees[49].age"
    assert "20000 problems in all" in invalid.message and len(invalid.message) < 1000
    assert "98765" not in orjson.dumps({"error": invalid.message, "detail": invalid.detail}).decode()
