"""Explanations end to end: a real ``bentoml serve``, ``bentoml.SyncHTTPClient``, the erasure command."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import bentoml
import httpx
import pytest

from attrition.schema import FEATURE_NAMES
from attrition.synthetic import EXAMPLE_EMPLOYEE, synthetic_employees
from tests.conftest import PROJECT_ROOT
from tests.service.server import bentoml_serve

pytestmark = pytest.mark.serve

MODELS_DIR = PROJECT_ROOT / "models"
ERASED = 4242


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A running service on a fresh store and SQLite file: its URL and the environment the commands need."""
    home = tmp_path_factory.mktemp("explain")
    shutil.copytree(MODELS_DIR, home / "models")
    env = {"BENTOML_HOME": str(home / "bentoml"), "FUTURISYS_STATE_DIR": str(home / "state"),
           "FUTURISYS_MODELS_DIR": str(home / "models"), "DATABASE_URL": f"sqlite:///{home / 'traces.db'}"}
    with bentoml_serve(env, home / "serve.log") as url:
        yield url, env


@pytest.fixture
def client(served):
    with httpx.Client(base_url=served[0], timeout=60) as http:
        yield http


def assert_additive(explanation: dict) -> None:
    assert [c["field"] for c in explanation["contributions"]] != [] and \
        sorted(c["field"] for c in explanation["contributions"]) == sorted(FEATURE_NAMES)
    total = explanation["base_value"] + sum(c["contribution"] for c in explanation["contributions"])
    assert total == pytest.approx(explanation["output"], abs=1e-6)
    sizes = [abs(c["contribution"]) for c in explanation["contributions"]]
    assert sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize("model", ["random_forest", "gradient_boosting", "logistic_regression"])
def test_a_trace_explained_through_the_endpoint_equals_the_inline_explanation(served, client, model):
    with bentoml.SyncHTTPClient(served[0], timeout=60) as sdk:
        answer = sdk.predict(employee=EXAMPLE_EMPLOYEE, model=model, explain=True)
        plain = sdk.predict(employee=EXAMPLE_EMPLOYEE, model=model)
    assert "explanation" not in plain and plain["probability"] == answer["probability"]
    assert_additive(answer["explanation"])
    assert {c["field"]: c["value"] for c in answer["explanation"]["contributions"]} == EXAMPLE_EMPLOYEE
    response = client.get(f"/predictions/{answer['request_id']}/explanation")
    assert response.status_code == 200, response.text
    stored = response.json()
    assert stored["explanation"] == answer["explanation"]
    assert (stored["model"], stored["probability"], stored["request_id"]) == (
        model, answer["probability"], answer["request_id"])


def test_a_batch_explains_each_row_as_its_trace_does(client):
    rows = synthetic_employees(4, seed=31)
    answers = client.post("/predict_batch", json={"employees": rows, "model": "random_forest",
                                                  "explain": True}).json()["predictions"]
    for row, answer in zip(rows, answers):
        assert_additive(answer["explanation"])
        assert client.get(f"/predictions/{answer['request_id']}/explanation").json()["explanation"] == \
            answer["explanation"]


@pytest.mark.parametrize("value", ["true", 1, None, [True], {"on": True}])
def test_explain_that_is_not_a_boolean_is_a_400_naming_it(client, value):
    for path, body in (("/predict", {"employee": EXAMPLE_EMPLOYEE}),
                       ("/predict_batch", {"employees": [EXAMPLE_EMPLOYEE]})):
        response = client.post(path, json={**body, "explain": value})
        assert response.status_code == 400, (path, value, response.text)
        payload = response.json()
        assert "explain" in payload["error"] and "explain" in [d["field"] for d in payload["detail"]]


def test_unknown_request_id_is_404_and_the_docs_document_the_route_and_fields(client):
    missing = client.get("/predictions/no-such-request/explanation")
    assert missing.status_code == 404 and missing.json()["detail"][0]["field"] == "request_id"
    spec = client.get("/docs.json").json()
    route = spec["paths"]["/predictions/{request_id}/explanation"]["get"]
    assert {"200", "404", "409", "410"} <= set(route["responses"])
    schemas = spec["components"]["schemas"]
    assert "explain" in schemas["predict_request"]["properties"]
    answer = spec["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    explanation = schemas[answer["$ref"].rsplit("/", 1)[1]]["properties"]["explanation"]
    assert {"$ref": "#/components/schemas/Explanation"} in explanation["anyOf"]
    assert {"base_value", "output", "link", "contributions"} <= set(schemas["Explanation"]["properties"])


def test_an_erased_employees_trace_has_no_explanation_left(served, client):
    url, env = served
    answer = client.post("/predict", json={"employee": EXAMPLE_EMPLOYEE, "employee_id": ERASED,
                                           "explain": True}).json()
    path = f"/predictions/{answer['request_id']}/explanation"
    assert client.get(path).json()["explanation"] == answer["explanation"]
    erase = subprocess.run([sys.executable, "-m", "persistence", "erase", "--employee", str(ERASED), "--by", "dpo"],
                           cwd=PROJECT_ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert erase.returncode == 0, erase.stderr
    assert f"employee {ERASED}: removed 1 trace(s)" in erase.stdout
    gone = client.get(path)
    assert gone.status_code == 404 and gone.json()["detail"][0]["field"] == "request_id"
