"""Access control end to end: keys and scopes on every route of a real ``bentoml serve``, the caller in the
trace, the read log, the docs' bearer scheme, the old key format refused at start, and the loopback-only
default without keys (in process, through the ASGI scope's client address; ``test_forwarded.py`` runs it
through a real server and a real non-loopback peer)."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time

import httpx
import pytest
import sqlalchemy as sa

from attrition.synthetic import EXAMPLE_EMPLOYEE
from tests.conftest import PROJECT_ROOT
from tests.service.server import bentoml_serve, free_port, stop_process_group

pytestmark = pytest.mark.serve

KEYS = {"predictor": "fk_predictor-key-for-tests-0001", "reader": "fk_reader-key-for-tests-0002",
        "recorder": "fk_recorder-key-for-tests-0003"}
SCOPES = {"predictor": "predict", "reader": "read", "recorder": "outcomes"}
ENTRIES = ",".join(f"{name}:{hashlib.sha256(key.encode()).hexdigest()}:{SCOPES[name]}" for name, key in KEYS.items())
CREDENTIALS = ["none", "wrong", *KEYS]

OPEN = {c: 200 for c in CREDENTIALS}
ANY_KEY = {"none": 401, "wrong": 401, "predictor": 200, "reader": 200, "recorder": 200}
# (method, path) → expected status per credential. Unknown paths (look-alikes) need a key, then are 404.
EXPECTED: dict[tuple[str, str], dict[str, int]] = {
    ("POST", "/predict"): {"none": 401, "wrong": 401, "predictor": 200, "reader": 403, "recorder": 403},
    ("POST", "/predict_batch"): {"none": 401, "wrong": 401, "predictor": 200, "reader": 403, "recorder": 403},
    ("GET", "/predictions"): {"none": 401, "wrong": 401, "predictor": 403, "reader": 200, "recorder": 403},
    ("GET", "/predictions/{request_id}"): {"none": 401, "wrong": 401, "predictor": 403, "reader": 200,
                                           "recorder": 403},
    ("POST", "/outcomes"): {"none": 401, "wrong": 401, "predictor": 403, "reader": 403, "recorder": 400},
    ("GET", "/models"): ANY_KEY,
    ("GET", "/models/champion"): ANY_KEY,
    ("GET", "/metadata"): ANY_KEY,
    ("GET", "/schema.json"): ANY_KEY,
    ("GET", "/metrics"): OPEN,
    ("GET", "/livez"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/healthz"): OPEN,
    ("GET", "/"): OPEN,
    ("GET", "/docs.json"): OPEN,
    ("GET", "/static_content/swagger-ui.css"): OPEN,
    ("GET", "/livezz"): {**ANY_KEY, **{k: 404 for k in KEYS}},
    ("GET", "/metricsX"): {**ANY_KEY, **{k: 404 for k in KEYS}},
    ("GET", "/docs.jsonx"): {**ANY_KEY, **{k: 404 for k in KEYS}},
    ("GET", "/docs"): {**ANY_KEY, **{k: 404 for k in KEYS}},
}
BODIES = {"/predict": {"employee": EXAMPLE_EMPLOYEE}, "/predict_batch": {"employees": [EXAMPLE_EMPLOYEE]},
          "/outcomes": {"outcomes": []}}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    """A running service with three keys of one scope each, on SQLite; yields (url, database_url, log path)."""
    home = tmp_path_factory.mktemp("access")
    database_url = f"sqlite:///{home / 'traces.db'}"
    env = {"BENTOML_HOME": str(home / "bentoml"), "FUTURISYS_STATE_DIR": str(home / "state"),
           "DATABASE_URL": database_url, "FUTURISYS_API_KEYS": ENTRIES}
    with bentoml_serve(env, home / "serve.log") as url:
        yield url, database_url, home / "serve.log"


@pytest.fixture
def http(keyed):
    with httpx.Client(base_url=keyed[0], timeout=30) as client:
        yield client


def headers_of(credential: str) -> dict[str, str]:
    if credential == "none":
        return {}
    return {"Authorization": f"Bearer {KEYS.get(credential, 'fk_not-a-configured-key')}"}


def test_every_route_answers_each_credential_as_its_scope_says(http):
    request_id = http.post("/predict", json=BODIES["/predict"], headers=headers_of("predictor")).json()["request_id"]
    measured = {}
    for method, path in EXPECTED:
        url = path.replace("{request_id}", request_id)
        measured[(method, path)] = {
            credential: http.request(method, url, json=BODIES.get(path), headers=headers_of(credential)).status_code
            for credential in CREDENTIALS}
    print("\n| route | " + " | ".join(CREDENTIALS) + " |\n|---|" + "---|" * len(CREDENTIALS))
    for (method, path), row in measured.items():
        print(f"| {method} {path} | " + " | ".join(str(row[c]) for c in CREDENTIALS) + " |")
    assert measured == EXPECTED


def test_refusals_are_json_naming_what_is_missing(http):
    missing = http.get("/models")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["detail"][0]["field"] == "Authorization" and "Bearer" in missing.json()["error"]
    forbidden = http.get("/predictions", headers=headers_of("predictor"))
    assert forbidden.status_code == 403 and forbidden.json()["detail"][0]["scope"] == "read"
    assert "'predictor'" in forbidden.json()["error"]


def test_domain_errors_of_the_keyed_apis_keep_their_status(http):
    # The predict APIs take BentoML's request context, whose status BentoML puts on every answer.
    predictor = headers_of("predictor")
    unknown = http.post("/predict", json={**BODIES["/predict"], "model": "nope"}, headers=predictor)
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]
    assert http.post("/predict", json={}, headers=predictor).status_code == 400
    assert http.post("/predict_batch", json={"employees": []}, headers=predictor).status_code == 400


def test_x_api_key_and_bearer_both_work_and_the_key_id_is_in_the_trace(keyed, http):
    by_header = http.post("/predict", json=BODIES["/predict"], headers={"X-API-Key": KEYS["predictor"]}).json()
    batch = http.post("/predict_batch", json={"employees": [EXAMPLE_EMPLOYEE] * 2},
                      headers=headers_of("predictor")).json()["predictions"]
    trace = http.get(f"/predictions/{by_header['request_id']}", headers={"X-API-Key": KEYS["reader"]}).json()
    assert trace["key_id"] == "predictor"
    engine = sa.create_engine(keyed[1])
    try:
        with engine.connect() as connection:
            stored = dict(connection.execute(sa.text("select request_id, key_id from prediction_traces")).all())
    finally:
        engine.dispose()
    assert [stored[p["request_id"]] for p in batch] == ["predictor", "predictor"]
    assert KEYS["predictor"] not in str(stored)


def test_every_trace_read_is_logged_with_its_key_and_a_refused_read_is_not(keyed, http):
    answer = http.post("/predict", json={"employee": EXAMPLE_EMPLOYEE, "employee_id": 4242},
                       headers=headers_of("predictor")).json()
    reader = headers_of("reader")
    listing = http.get("/predictions", params={"employee_id": 4242, "limit": 10}, headers=reader).json()
    assert [t["request_id"] for t in listing["items"]] == [answer["request_id"]]
    assert http.get(f"/predictions/{answer['request_id']}", headers=reader).status_code == 200
    assert http.get("/predictions/no-such-request", headers=reader).status_code == 404
    assert http.get("/predictions", params={"employee_id": 4242}, headers=headers_of("predictor")).status_code == 403
    engine = sa.create_engine(keyed[1])
    try:
        from persistence.personal_data.reads import reads_of_employee

        reads = reads_of_employee(engine, 4242)
        with engine.connect() as connection:
            missing = connection.execute(sa.text(
                "select key_id, rows from trace_reads where request_id = 'no-such-request'")).all()
    finally:
        engine.dispose()
    assert [(r["key_id"], r["route"], r["rows"]) for r in reads] == [
        ("reader", "GET /predictions", 1), ("reader", "GET /predictions/{request_id}", 1)]
    assert reads[0]["parameters"] == {"employee_id": 4242, "from": None, "to": None, "limit": 10, "offset": 0}
    assert reads[1]["request_id"] == answer["request_id"]
    assert [tuple(row) for row in missing] == [("reader", 0)]


def test_the_docs_declare_the_bearer_scheme_for_the_authorize_button(http):
    spec = http.get("/docs.json").json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert spec["components"]["securitySchemes"]["apiKey"]["name"] == "X-API-Key"
    assert spec["paths"]["/predict"]["post"]["security"] == [{"bearer": []}, {"apiKey": []}]
    assert spec["paths"]["/predictions"]["get"]["security"] == [{"bearer": []}, {"apiKey": []}]
    assert "'read' scope" in spec["paths"]["/predictions/{request_id}"]["get"]["description"]
    assert spec["paths"]["/livez"]["get"]["security"] == []
    assert spec["components"]["schemas"]["Employee"]["example"] == EXAMPLE_EMPLOYEE
    assert "swagger" in http.get("/").text.lower()


def test_the_old_plain_key_format_is_refused_at_start(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "FUTURISYS_STATE_DIR": str(tmp_path / "state"),
           "FUTURISYS_API_KEYS": "k1-old-plain-secret,k2-old-plain-secret"}
    command = [sys.executable, "-m", "bentoml", "serve", "service:AttritionService", "--host", "127.0.0.1",
               "--port", str(free_port())]
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            started = time.monotonic()
            code = process.wait(timeout=60)
        finally:
            stop_process_group(process)
    output = log_path.read_text()
    print(f"refused in {time.monotonic() - started:.1f} s")
    assert code != 0 and "entry 1 is a plain key" in output and "python -m api keys" in output
    assert "old-plain-secret" not in output


def test_without_keys_trace_reads_answer_loopback_peers_only(tmp_path, monkeypatch):
    # The test session configures no keys: the real service, in process, with the TCP peer address chosen.
    from starlette.testclient import TestClient

    from service import AttritionService

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    service = AttritionService.to_asgi()
    peer = ["127.0.0.1"]

    async def from_peer(scope, receive, send):
        if scope["type"] == "http":
            scope = {**scope, "client": (peer[0], 41000)}
        await service(scope, receive, send)

    with TestClient(from_peer) as client:
        answer = client.post("/predict", json={"employee": EXAMPLE_EMPLOYEE, "employee_id": 5150})
        assert answer.status_code == 200
        assert client.get(f"/predictions/{answer.json()['request_id']}").json()["key_id"] is None
        peer[0] = "203.0.113.9"
        refused = client.get("/predictions", headers={"X-Forwarded-For": "127.0.0.1"})
        assert refused.status_code == 401 and "'read' API key is needed" in refused.json()["error"]
        assert client.get(f"/predictions/{answer.json()['request_id']}").status_code == 401
        assert client.post("/predict", json={"employee": EXAMPLE_EMPLOYEE}).status_code == 200
        assert client.get("/models").status_code == 200
        peer[0] = "::1"
        assert client.get("/predictions", params={"employee_id": 5150}).json()["total"] == 1
        # A proxy on this host is a loopback peer for every client it forwards: a named client is refused.
        for proxied in ({"X-Forwarded-For": "127.0.0.1"}, {"Forwarded": "for=127.0.0.1"}, {"X-Real-IP": "::1"}):
            assert client.get("/predictions", headers=proxied).status_code == 401, proxied
