"""Bounded work and clean logs, against a real ``bentoml serve`` on PostgreSQL (the stricter storage).

Every parameter of every route at and past its bounds answers 400 JSON naming
it (never 5xx, never a plain-text body), and so does a body key no parameter
declares; an over-cap batch is refused before its rows are validated; JSON
nesting is bounded; integral floats are taken as integers; ``/metrics`` keeps
its series whatever paths are asked. Then every error path is run with distinctive values, and the
server's log is searched for them: none may appear.
"""
from __future__ import annotations

import json
import shutil
import stat
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from attrition.synthetic import EXAMPLE_EMPLOYEE
from tests.conftest import PROJECT_ROOT
from tests.service.server import bentoml_serve

pytestmark = [pytest.mark.serve, pytest.mark.postgres]

BATCH_CAP = 1000
REFUSED_TAG = 777_001
"""Traces tagged with this employee id are refused by a constraint the test adds: a database rejection."""


@pytest.fixture(scope="module")
def served(tmp_path_factory, postgres_url_module):
    """A running service over a fresh PostgreSQL database; yields its URL, database URL and log file."""
    home = tmp_path_factory.mktemp("bounds")
    shutil.copytree(PROJECT_ROOT / "models", home / "models")
    log_path = home / "serve.log"
    env = {"BENTOML_HOME": str(home / "bentoml"), "FUTURISYS_STATE_DIR": str(home / "state"),
           "FUTURISYS_MODELS_DIR": str(home / "models"), "DATABASE_URL": postgres_url_module,
           "FUTURISYS_MAX_BATCH_ROWS": str(BATCH_CAP)}
    with bentoml_serve(env, log_path) as url:
        yield url, postgres_url_module, log_path


@pytest.fixture
def client(served):
    with httpx.Client(base_url=served[0], timeout=60) as http:
        yield http


def employee(**fields) -> dict:
    return {**EXAMPLE_EMPLOYEE, **fields}


def assert_refused(answer: httpx.Response, status: int, field: str | None = None) -> dict:
    """``answer`` is a JSON error object of ``status`` naming ``field``; returns its body."""
    assert answer.status_code == status, answer.text[:500]
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert isinstance(body, dict) and isinstance(body["error"], str) and isinstance(body["detail"], list)
    if field is not None:
        assert field in [d.get("field") for d in body["detail"]], body
    return body


def test_a_batch_over_its_cap_is_refused_before_any_row_is_validated(client):
    body = json.dumps({"employees": [{}] * 20_000})
    started = time.perf_counter()
    answer = client.post("/predict_batch", content=body, headers={"content-type": "application/json"})
    elapsed_ms = (time.perf_counter() - started) * 1000
    refused = assert_refused(answer, 413, "employees")
    assert "20000" in refused["error"] and len(answer.content) < 1000
    print(f"20,000 empty rows ({len(body)} bytes): {answer.status_code} in {elapsed_ms:.0f} ms, "
          f"{len(answer.content)}-byte answer")


def test_an_error_body_lists_at_most_fifty_problems_and_counts_them_all(client):
    answer = client.post("/predict_batch", json={"employees": [{}] * BATCH_CAP})
    body = assert_refused(answer, 400)
    assert len(body["detail"]) == 50 and f"{BATCH_CAP * 30} problems" in body["error"]
    assert body["detail"][0]["field"].startswith("employees[0].") and len(answer.content) < 20_000


@pytest.mark.parametrize("depth, status", [(31, 400), (33, 400), (100_000, 400)])
def test_json_nesting_is_bounded(client, depth, status):
    answer = client.post("/predict", content="[" * depth + "]" * depth, headers={"content-type": "application/json"})
    body = assert_refused(answer, status, "body")
    if depth > 32:
        assert "nested deeper than 32 levels" in body["error"]


def test_a_body_that_is_not_json_is_400_naming_the_body(client):
    assert_refused(client.post("/predict", content=b"{nope", headers={"content-type": "application/json"}), 400,
                   "body")


POST_CASES = [
    ("integral float for a field", {"employee": employee(age=35.0)}, 200, None),
    ("fractional number", {"employee": employee(age=35.5)}, 400, "employee.age"),
    ("boolean for a number", {"employee": employee(age=True)}, 400, "employee.age"),
    ("numeric string", {"employee": employee(age="35")}, 400, "employee.age"),
    ("employee_id past 2^63 - 1", {"employee_id": 2**63}, 400, "employee_id"),
    ("employee_id of 31 digits", {"employee_id": 10**30}, 400, "employee_id"),
    ("employee_id 0", {"employee_id": 0}, 400, "employee_id"),
    ("employee_id true", {"employee_id": True}, 400, "employee_id"),
    ("employee_id as a string", {"employee_id": "12"}, 400, "employee_id"),
    ("employee_id 12.5", {"employee_id": 12.5}, 400, "employee_id"),
    ("employee_id 2^63 - 1, unknown", {"employee_id": 2**63 - 1}, 404, "employee_id"),
    ("employee_id 12.0, unknown", {"employee_id": 12.0}, 404, "employee_id"),
    ("model of 201 characters", {"employee": EXAMPLE_EMPLOYEE, "model": "m" * 201}, 400, "model"),
    ("model with a NUL byte", {"employee": EXAMPLE_EMPLOYEE, "model": "champ\u0000ion"}, 400, "model"),
    ("model of 200 characters, unknown", {"employee": EXAMPLE_EMPLOYEE, "model": "m" * 200}, 404, "model"),
    ("misspelt key beside the fields", {"employee": EXAMPLE_EMPLOYEE, "modle": "random_forest"}, 400, "modle"),
    ("unknown key beside a stored id", {"employee_id": 1, "explain": "yes"}, 400, "explain"),
]


@pytest.mark.parametrize("case, body, status, field", POST_CASES, ids=[c[0] for c in POST_CASES])
def test_predict_body_values_at_and_past_their_bounds(client, case, body, status, field):
    answer = client.post("/predict", json=body)
    if status == 200:
        assert answer.status_code == 200, answer.text
    else:
        assert_refused(answer, status, field)


def test_an_integral_float_is_stored_as_an_integer(client):
    answer = client.post("/predict", json={"employee": employee(age=41.0, revenu_mensuel=5200.0), "employee_id": 12.0})
    assert answer.status_code == 200, answer.text
    stored = client.get(f"/predictions/{answer.json()['request_id']}").json()
    assert stored["employee_id"] == 12 and type(stored["employee_id"]) is int
    assert stored["inputs"]["age"] == 41 and type(stored["inputs"]["age"]) is int
    assert type(stored["inputs"]["revenu_mensuel"]) is int


def test_batch_refuses_an_undeclared_key_by_name(client):
    body = assert_refused(client.post("/predict_batch", json={"employees": [EXAMPLE_EMPLOYEE], "modle": "x"}), 400,
                          "modle")
    assert "modle" in body["error"] and [d["field"] for d in body["detail"]] == ["modle"]


def test_the_document_shows_the_api_bodies_closed(client):
    schemas = client.get("/docs.json").json()["components"]["schemas"]
    assert [schemas[f"{api}_request"]["additionalProperties"] for api in ("predict", "predict_batch")] == [False] * 2


def test_batch_model_past_its_bound_is_400(client):
    assert_refused(client.post("/predict_batch", json={"employees": [EXAMPLE_EMPLOYEE], "model": "m" * 201}), 400,
                   "model")


GET_CASES = [
    ("/predictions", {"from": "0001-01-01T00:00:00+01:00"}, 400, "from"),
    ("/predictions", {"from": "1969-12-31T23:59:59Z"}, 400, "from"),
    ("/predictions", {"from": "1970-01-01T00:00:00Z"}, 200, None),
    ("/predictions", {"to": "9999-12-30T00:00:00Z"}, 200, None),
    ("/predictions", {"to": "9999-12-30T00:00:00.000001Z"}, 400, "to"),
    ("/predictions", {"to": "9999-12-31T23:59:59-05:00"}, 400, "to"),
    ("/predictions", {"from": "2026-11-30"}, 200, None),
    ("/predictions", {"from": "0.5"}, 400, "from"),
    ("/predictions", {"to": "1700000000"}, 400, "to"),
    ("/predictions", {"offset": str(2**63 - 1)}, 200, None),
    ("/predictions", {"offset": str(2**63)}, 400, "offset"),
    ("/predictions", {"offset": "-1"}, 400, "offset"),
    ("/predictions", {"employee_id": str(2**63 - 1)}, 200, None),
    ("/predictions", {"employee_id": str(2**63)}, 400, "employee_id"),
    ("/predictions", {"employee_id": "0"}, 400, "employee_id"),
    ("/predictions", {"employee_id": "true"}, 400, "employee_id"),
    ("/predictions", {"employee_id": "12.5"}, 400, "employee_id"),
    ("/predictions", {"employee_id": "12.0"}, 200, None),
    ("/predictions", {"limit": "0"}, 400, "limit"),
    ("/predictions", {"limit": "501"}, 400, "limit"),
    ("/predictions/%00", {}, 400, "request_id"),
    ("/predictions/" + "a" * 64, {}, 404, "request_id"),
    ("/predictions/" + "a" * 65, {}, 400, "request_id"),
    ("/models/" + "m" * 200, {}, 404, "model"),
    ("/models/" + "m" * 201, {}, 400, "name"),
    ("/models/%00", {}, 400, "name"),
]


@pytest.mark.parametrize("path, params, status, field", GET_CASES,
                         ids=[f"{c[0][:24]}?{c[1]}" for c in GET_CASES])
def test_get_parameters_at_and_past_their_bounds(client, path, params, status, field):
    answer = client.get(path, params=params)
    if status == 200:
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("application/json")
    else:
        assert_refused(answer, status, field)


def metric_series(text: str) -> set[str]:
    """The series of a Prometheus text exposition (name and labels, without the value)."""
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def endpoint_and_status(series: str) -> tuple[str | None, str | None]:
    """The ``endpoint`` and ``http_response_code`` labels of a series (None where it has none)."""
    labels = dict(re.findall(r'(\w+)="([^"]*)"', series.partition("{")[2]))
    return labels.get("endpoint"), labels.get("http_response_code")


BENTOML_REQUEST_METRICS = ("bentoml_service_request_total", "bentoml_service_request_duration_seconds_bucket",
                           "bentoml_service_request_in_progress")
"""BentoML's request metrics, labelled by endpoint (their names are pinned by tests/api/test_traffic.py)."""


def test_metrics_keep_their_series_whatever_paths_and_trace_ids_are_asked(client):
    known = client.post("/predict", json={"employee": EXAMPLE_EMPLOYEE}).json()["request_id"]
    for path in ("/no-such-route", f"/predictions/{known}", "/predictions/no-such-trace", "/models/no-such-model"):
        client.get(path)  # warm-up: every route and status the load below meets, once
    before = metric_series(client.get("/metrics").text)
    tokens = [uuid.uuid4().hex for _ in range(330)]
    for token in tokens[:300]:
        assert client.get(f"/{token}/{token[:8]}").status_code == 404
    for token in tokens[300:]:
        assert client.get(f"/predictions/{token}").status_code == 404
    exposition = client.get("/metrics").text
    after = metric_series(exposition)
    new = after - before
    old_pairs = {endpoint_and_status(s) for s in before}
    new_pairs = {endpoint_and_status(s) for s in new} - old_pairs
    per_pair = max(sum(1 for s in before if endpoint_and_status(s) == pair) for pair in old_pairs if pair[1])
    print(f"/metrics: {len(before)} series after the warm-up, {len(after)} after 300 unknown paths and 30 trace "
          f"ids; new (endpoint, status) pairs: {sorted(new_pairs, key=str)[:8]}")
    assert [token for token in tokens if token[:8] in exposition] == []
    assert all(pair[1] is not None for pair in new_pairs), new_pairs  # only a new status adds series
    assert len(new) <= len(new_pairs) * per_pair, sorted(new)[:10]
    endpoints = {endpoint_and_status(s)[0] for s in after if s.startswith(BENTOML_REQUEST_METRICS)}
    assert {"/{other}", "/predictions/{request_id}", "/predict"} <= endpoints
    assert all(e == "/{other}" or e.startswith("/") and "no-such" not in e for e in endpoints), endpoints


MARKERS = {
    "revenu_mensuel": 98765,  # in range, but in a career the consistency rule refuses
    "refused_revenu": 98764,  # in a trace the database refuses
    "model": "zzmodel-1234",
    "request_id": "zzrequest-5678",
    "period": "zzdate-2468",
    "long_model": "zzlong-" + "x" * 200,
}


def test_no_input_value_reaches_the_log_on_any_error_path(served, client):
    url, database_url, log_path = served
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:  # a database that refuses one kind of trace for its content
        connection.execute(sa.text(f"ALTER TABLE prediction_traces ADD CONSTRAINT refuse_tag CHECK "
                                   f"(employee_id IS DISTINCT FROM {REFUSED_TAG})"))
    try:
        inconsistent = employee(revenu_mensuel=MARKERS["revenu_mensuel"], annees_dans_l_entreprise=11)
        assert_refused(client.post("/predict", json={"employee": inconsistent}), 400, "employee")
        assert_refused(client.post("/predict_batch", json={"employees": [EXAMPLE_EMPLOYEE, inconsistent]}), 400)
        assert_refused(client.post("/predict_batch", json={"employees": [inconsistent] * (BATCH_CAP + 1)}), 413)
        assert_refused(client.post("/predict", json={"employee": EXAMPLE_EMPLOYEE, "model": MARKERS["model"]}), 404)
        assert_refused(client.post("/predict", json={"employee": EXAMPLE_EMPLOYEE, "model": MARKERS["long_model"]}),
                       400)
        assert_refused(client.post("/predict", content=json.dumps({"employee": inconsistent}),
                                   headers={"content-type": "text/plain"}), 415)
        assert_refused(client.get(f"/models/{MARKERS['model']}"), 404)
        assert_refused(client.get(f"/predictions/{MARKERS['request_id']}"), 404)
        assert_refused(client.get("/predictions", params={"from": MARKERS["period"]}), 400, "from")
        assert_refused(client.get("/predictions", params={"employee_id": MARKERS["request_id"]}), 400)
        refused = employee(revenu_mensuel=MARKERS["refused_revenu"])
        assert_refused(client.post("/predict", json={"employee": refused, "employee_id": REFUSED_TAG}), 503, "trace")
        assert_refused(client.post("/predict_batch", json={"employees": [refused], "model": MARKERS["model"]}), 404)
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text("ALTER TABLE prediction_traces DROP CONSTRAINT refuse_tag"))
        engine.dispose()
    time.sleep(0.5)  # the workers' log lines of the last answers
    log = log_path.read_text(encoding="utf-8", errors="replace")
    assert "rejected trace(s)" in log, "the database rejection was not met: the search would prove nothing"
    searched = [str(v) for v in MARKERS.values()] + ["Failing row contains", "input_value", "[parameters:"]
    found = {value: [line for line in log.splitlines() if value in line] for value in searched}
    print(f"log: {len(log.splitlines())} lines searched for {searched}")
    assert {value: lines[:3] for value, lines in found.items() if lines} == {}


def test_the_sqlite_file_and_journals_are_private(tmp_path):
    """The embedded database, its journal files and the trace journals are created with mode 0600."""
    from persistence.database.engine import make_engine
    from persistence.trace.journal import TraceJournal
    from persistence.trace.journal_format import write_traces
    from tests.persistence.factories import make_trace

    engine = make_engine(f"sqlite:///{tmp_path / 'db' / 'traces.db'}")
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE t (x INTEGER)"))
        connection.execute(sa.text("INSERT INTO t VALUES (1)"))
    journal = TraceJournal(tmp_path / "journal")
    journal.append([make_trace()])
    write_traces(tmp_path / "journal" / "quarantine-test.jsonl", [make_trace()])
    files = [*Path(tmp_path / "db").iterdir(), *Path(tmp_path / "journal").glob("*.jsonl")]
    assert any(p.name.endswith("-wal") for p in files) and len([p for p in files if p.suffix == ".jsonl"]) == 2
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
    journal.close()
    engine.dispose()
    assert set(modes.values()) == {0o600}, modes


def test_engines_never_quote_statement_parameters_in_their_errors(tmp_path):
    from persistence.database.engine import make_engine

    for url in (f"sqlite:///{tmp_path / 'traces.db'}", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"):
        engine = make_engine(url)
        assert engine.hide_parameters, url
        engine.dispose()
    engine = make_engine(f"sqlite:///{tmp_path / 'traces.db'}")
    with pytest.raises(sa.exc.IntegrityError) as refused:
        with engine.begin() as connection:
            connection.execute(sa.text("CREATE TABLE t (x INTEGER PRIMARY KEY)"))
            connection.execute(sa.text("INSERT INTO t VALUES (:x)"), [{"x": 424242}, {"x": 424242}])
    engine.dispose()
    assert "424242" not in str(refused.value)
