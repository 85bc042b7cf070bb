"""The OpenAPI document of the real service declares the answers it really gives."""
from __future__ import annotations

import json

import pytest

from api.keys import document_keys
from api.openapi import ERROR_SCHEMA_NAME, document_answers, error_statuses
from service import AttritionService

ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}


@pytest.fixture(scope="module")
def document() -> dict:
    """The document as ``/docs.json`` builds it (an ASGI app of the service would register its metrics twice)."""
    spec = document_keys(AttritionService.openapi_spec.asdict(), metrics_open=True)
    return json.loads(json.dumps(document_answers(spec, AttritionService.apis, metrics_open=True)))


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_every_error_answer_is_the_one_error_body_and_none_is_undeclared_or_never_given(document):
    for method, path, operation in operations(document):
        codes = set(operation["responses"])
        assert not codes & {"422", "500"}, (method, path)
        for code in codes - {"200"}:
            assert operation["responses"][code]["content"]["application/json"]["schema"] == ERROR_REF, (path, code)
    assert {"HTTPValidationError", "InternalServerError"}.isdisjoint(document["components"]["schemas"])


def test_each_route_declares_its_own_refusals(document):
    declared = {(m, p): set(o["responses"]) for m, p, o in operations(document)}
    assert declared[("post", "/predict_batch")] >= {"400", "401", "403", "404", "413", "415", "503"}
    assert declared[("get", "/predictions")] == {"200", "400", "401", "403"}
    assert declared[("get", "/livez")] == {"200"} and error_statuses("get", "/models", True) == (401,)


def test_the_predict_answer_keeps_its_nullable_fields(document):
    answer = document["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    name = answer["$ref"].rsplit("/", 1)[1]
    requested = document["components"]["schemas"][name]["properties"]["requested_model"]
    assert {"type": "null"} in requested["anyOf"]
    request = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    employee_id = document["components"]["schemas"][request["$ref"].rsplit("/", 1)[1]]["properties"]["employee_id"]
    integer = next(s for s in employee_id["anyOf"] if s.get("type") == "integer")
    assert integer["minimum"] == 1 and integer["maximum"] == 2**63 - 1


def test_the_document_is_built_once_per_process_whatever_the_requests():
    from _bentoml_sdk.service import get_current_service, set_current_service
    from starlette.testclient import TestClient

    from service import OPENAPI_DOCUMENT, http

    try:
        previous = get_current_service()
    except Exception:  # BentoML raises while no service is instantiated
        previous = None
    # The route's `self` is the service instance BentoML sets in a worker; the document does not use it.
    set_current_service(object.__new__(AttritionService.inner))
    try:
        with TestClient(http) as client:
            answers = [client.get("/docs.json") for _ in range(5)]
    finally:
        set_current_service(previous)
    assert {a.status_code for a in answers} == {200} and len({a.content for a in answers}) == 1
    assert answers[0].headers["content-type"] == "application/json"
    assert answers[0].json()["paths"]["/predict"]["post"]["security"]
    assert OPENAPI_DOCUMENT.builds == 1  # however many requests, and whatever asked for it before in this process
