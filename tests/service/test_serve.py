"""End to end: a real ``bentoml serve`` subprocess, the committed models, a real database."""
from __future__ import annotations

import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa

from attrition.schema import FEATURE_NAMES
from attrition.synthetic import EXAMPLE_EMPLOYEE, synthetic_employees
from registry.aliases import read_aliases
from registry.trust import COMMITTED_MANIFEST, load_artifact, pin
from tests.conftest import PROJECT_ROOT
from tests.service.server import bentoml_serve

pytestmark = pytest.mark.serve

MODELS_DIR = PROJECT_ROOT / "models"
BATCH_CAP = 25


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def served(request, tmp_path_factory):
    """A running service (fresh BentoML store, a copy of models/ plus one corrupted model) and its database URL."""
    home = tmp_path_factory.mktemp("serve")
    models = home / "models"
    shutil.copytree(MODELS_DIR, models)
    corrupted = models / "corrupted_model" / "v1"
    shutil.copytree(sorted((MODELS_DIR / "logistic_regression").iterdir())[-1], corrupted)
    card = json.loads((corrupted / "card.json").read_text())
    (corrupted / "model.joblib").write_bytes(b"these bytes are not a model")
    from registry.store import sha256_of
    card.update(name="corrupted_model", version="v1", artifact_sha256=sha256_of(corrupted / "model.joblib"))
    (corrupted / "card.json").write_text(json.dumps(card))
    # Trusted (pinned in the server's own manifest), so that it reaches the loader and fails there.
    manifest = shutil.copy(COMMITTED_MANIFEST, home / COMMITTED_MANIFEST.name)
    pin("corrupted_model:v1", card["artifact_sha256"], manifest)
    if request.param == "postgres":
        database_url = request.getfixturevalue("postgres_url_module")
    else:
        database_url = f"sqlite:///{home / 'traces.db'}"
    env = {"BENTOML_HOME": str(home / "bentoml"), "FUTURISYS_STATE_DIR": str(home / "state"),
           "FUTURISYS_MODELS_DIR": str(models), "DATABASE_URL": database_url,
           "FUTURISYS_MAX_BATCH_ROWS": str(BATCH_CAP), "FUTURISYS_MAX_LATENCY_MS": "10",
           "FUTURISYS_TRUSTED_MANIFEST": str(manifest)}
    with bentoml_serve(env, home / "serve.log") as url:
        yield url, database_url


@pytest.fixture
def client(served):
    with httpx.Client(base_url=served[0], timeout=30) as http:
        yield http


def reference_probabilities(tag: str, rows: list[dict]) -> list[float]:
    """What the committed artifact says for ``rows``, computed here, outside the service."""
    name, version = tag.split(":")
    model = load_artifact(tag, MODELS_DIR / name / version / "model.joblib")
    return model.predict_proba(pd.DataFrame(rows, columns=FEATURE_NAMES))[:, 1].tolist()


def champion() -> str:
    return read_aliases(MODELS_DIR)["champion"]


def test_predict_answers_the_contract_and_the_trace_is_stored(client):
    answer = client.post("/predict", json={"employee": EXAMPLE_EMPLOYEE}).json()
    assert set(answer) == {"request_id", "model", "model_version", "requested_model", "prediction", "label",
                           "probability", "threshold", "fallback"}
    assert f"{answer['model']}:{answer['model_version']}" == champion()
    assert answer["probability"] == pytest.approx(reference_probabilities(champion(), [EXAMPLE_EMPLOYEE])[0],
                                                  abs=1e-6)
    assert answer["prediction"] == int(answer["probability"] >= answer["threshold"])
    assert answer["label"] == ("Oui" if answer["prediction"] else "Non") and answer["fallback"] is False

    trace = client.get(f"/predictions/{answer['request_id']}")
    assert trace.status_code == 200
    stored = trace.json()
    assert stored["inputs"] == EXAMPLE_EMPLOYEE
    assert stored["outputs"]["probability"] == pytest.approx(answer["probability"])
    assert stored["outputs"]["prediction"] == answer["prediction"]
    assert stored["model_version"] == answer["model_version"] and stored["status"] == "ok"
    assert client.get("/predictions/not-a-request-id").status_code == 404


@pytest.mark.parametrize("ref", ["logistic_regression", "random_forest:v1", "champion", "gradient_boosting"])
def test_predict_resolves_names_versions_and_aliases(client, ref):
    answer = client.post("/predict", json={"employee": EXAMPLE_EMPLOYEE, "model": ref}).json()
    expected = champion() if ref == "champion" else ref
    assert answer["model"] == expected.split(":")[0] and answer["requested_model"] == ref


def test_unknown_model_is_404_listing_valid_names(client):
    response = client.post("/predict", json={"employee": EXAMPLE_EMPLOYEE, "model": "nope"})
    assert response.status_code == 404
    body = response.json()
    assert "nope" in body["error"] and "logistic_regression" in body["detail"][0]["valid"]


def test_corrupted_model_falls_back_to_the_default_visibly(client):
    answer = client.post("/predict", json={"employee": EXAMPLE_EMPLOYEE, "model": "corrupted_model"}).json()
    assert answer["fallback"] is True and answer["requested_model"] == "corrupted_model"
    assert f"{answer['model']}:{answer['model_version']}" == champion()
    models = {m["tag"]: m for m in client.get("/models").json()["models"]}
    assert models["corrupted_model:v1"]["valid"] is False
    assert "failed to load" in models["corrupted_model:v1"]["invalid_reason"]
    trace = client.get(f"/predictions/{answer['request_id']}").json()
    assert trace["status"] == "error" and trace["outputs"]["fallback"] is True
    assert "corrupted_model:v1" in trace["error"]
    metrics = client.get("/metrics").text
    assert re.search(r'futurisys_fallbacks_total\{[^}]*requested_model="corrupted_model"[^}]*\} [1-9]', metrics)


@pytest.mark.parametrize("body, field", [
    ({"employee": {**EXAMPLE_EMPLOYEE, "age": 300}}, "employee.age"),
    ({"employee": {**EXAMPLE_EMPLOYEE, "genre": "X"}}, "employee.genre"),
    ({"employee": {**EXAMPLE_EMPLOYEE, "unexpected": 1}}, "employee.unexpected"),
    ({"employee": {k: v for k, v in EXAMPLE_EMPLOYEE.items() if k != "poste"}}, "employee.poste"),
    ({"employee": {**EXAMPLE_EMPLOYEE, "revenu_mensuel": "4200"}}, "employee.revenu_mensuel"),
    ({}, "employee"),
    ({"employee": {**EXAMPLE_EMPLOYEE, "age": 35.5}}, "employee.age"),
    ({"employee_id": True}, "employee_id"),
    ({"employee_id": "12"}, "employee_id"),
    ({"employee_id": 2**63}, "employee_id"),
])
def test_invalid_input_is_a_400_object_naming_the_field(client, body, field):
    response = client.post("/predict", json=body)
    assert response.status_code == 400
    payload = response.json()
    assert isinstance(payload, dict) and field in payload["error"]
    assert field in [d["field"] for d in payload["detail"]]


def test_an_integral_float_is_scored_and_traced_as_the_integer(client):
    as_floats = {**EXAMPLE_EMPLOYEE, "age": float(EXAMPLE_EMPLOYEE["age"]), "revenu_mensuel": 4200.0}
    answer = client.post("/predict", json={"employee": as_floats})
    assert answer.status_code == 200
    reference = client.post("/predict", json={"employee": EXAMPLE_EMPLOYEE}).json()
    assert answer.json()["probability"] == reference["probability"]
    stored = client.get(f"/predictions/{answer.json()['request_id']}").json()["inputs"]
    assert stored == EXAMPLE_EMPLOYEE and type(stored["age"]) is int


def test_malformed_json_and_wrong_content_type_are_4xx_objects(client):
    malformed = client.post("/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 400 and "error" in malformed.json()
    text = client.post("/predict", content=b"age=41", headers={"content-type": "text/plain"})
    assert text.status_code == 415 and "error" in text.json()


def test_batch_answers_in_order_with_one_request_id_per_row(client):
    rows = synthetic_employees(12, seed=11)
    response = client.post("/predict_batch", json={"employees": rows, "model": "random_forest"})
    predictions = response.json()["predictions"]
    assert len(predictions) == 12 and len({p["request_id"] for p in predictions}) == 12
    # The name alone is its latest version: every row served by it, and scored as that artifact scores it.
    [version] = {p["model_version"] for p in predictions}
    assert version == max((p.name for p in (MODELS_DIR / "random_forest").glob("v*")), key=lambda v: int(v[1:]))
    expected = reference_probabilities(f"random_forest:{version}", rows)
    assert [p["probability"] for p in predictions] == pytest.approx(expected, abs=1e-6)


def test_batch_with_invalid_rows_names_each_index_and_field(client):
    rows = synthetic_employees(5, seed=2)
    rows[1] = {**rows[1], "age": 7}
    rows[3] = {**rows[3], "domaine_etude": "Astrologie"}
    response = client.post("/predict_batch", json={"employees": rows})
    assert response.status_code == 400
    fields = [d["field"] for d in response.json()["detail"]]
    assert "employees[1].age" in fields and "employees[3].domaine_etude" in fields


def test_batch_over_the_cap_is_413(client):
    response = client.post("/predict_batch", json={"employees": synthetic_employees(BATCH_CAP + 1)})
    assert response.status_code == 413 and str(BATCH_CAP) in response.json()["error"]


def test_models_metadata_and_cards(client):
    listing = client.get("/models").json()
    tags = {m["tag"] for m in listing["models"]}
    assert {"baseline:v1", "logistic_regression:v1", "random_forest:v1", "gradient_boosting:v1"} <= tags
    assert listing["default"] == champion()
    assert [m["tag"] for m in listing["models"] if m["default"]] == [champion()]
    card = client.get("/models/champion").json()
    assert card["tag"] == champion() and len(card["card"]["features"]) == 30
    assert client.get("/models/nope").status_code == 404
    metadata = client.get("/metadata").json()
    assert metadata["default_model"] == champion() and len(metadata["features"]) == 30
    assert metadata["database_backend"] in ("sqlite", "postgresql")


def test_docs_document_every_endpoint_with_an_example(client):
    spec = client.get("/docs.json").json()
    for path, method in [("/predict", "post"), ("/predict_batch", "post"), ("/models", "get"),
                         ("/models/{name}", "get"), ("/metadata", "get"), ("/predictions/{request_id}", "get"),
                         ("/predictions", "get"), ("/outcomes", "post")]:
        assert method in spec["paths"][path], path
    outcome = spec["components"]["schemas"]["OutcomeReport"]
    assert outcome["additionalProperties"] is False and set(outcome["required"]) == {"employee_id", "left"}
    assert set(spec["paths"]["/outcomes"]["post"]["responses"]) >= {"200", "400", "404", "413"}
    assert spec["components"]["schemas"]["Employee"]["example"] == EXAMPLE_EMPLOYEE
    page = client.get("/")
    assert page.status_code == 200 and "swagger" in page.text.lower()


def test_fifty_concurrent_predictions_are_correct_batched_and_traced(served, client):
    url, database_url = served
    rows = synthetic_employees(50, seed=5)
    before = _batch_histogram(client.get("/metrics").text)

    def call(row):
        with httpx.Client(base_url=url, timeout=30) as http:
            return http.post("/predict", json={"employee": row})

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(call, rows))
    assert [r.status_code for r in responses] == [200] * 50
    answers = [r.json() for r in responses]
    assert [a["probability"] for a in answers] == pytest.approx(reference_probabilities(champion(), rows), abs=1e-6)

    after = _batch_histogram(client.get("/metrics").text)
    calls, rows_scored = after[0] - before[0], after[1] - before[1]
    assert rows_scored == 50 and calls < 50, f"50 rows took {calls} model calls: no batching"

    engine = sa.create_engine(database_url)
    ids = [a["request_id"] for a in answers]
    with engine.connect() as connection:
        stored = connection.execute(sa.text(
            "select request_id, prediction, probability from prediction_traces")).all()
    engine.dispose()
    by_id = {r.request_id: r for r in stored}
    assert all(i in by_id for i in ids)
    for answer in answers:
        assert by_id[answer["request_id"]].prediction == answer["prediction"]
        assert by_id[answer["request_id"]].probability == pytest.approx(answer["probability"], abs=1e-6)


def _batch_histogram(metrics: str) -> tuple[float, float]:
    """(model calls, rows) summed over the runners, from ``futurisys_runner_batch_size``."""
    calls = sum(float(v) for v in re.findall(r"^futurisys_runner_batch_size_count\{[^}]*\} (\S+)$", metrics, re.M))
    rows = sum(float(v) for v in re.findall(r"^futurisys_runner_batch_size_sum\{[^}]*\} (\S+)$", metrics, re.M))
    return calls, rows


def test_metrics_expose_service_and_bentoml_counters(client):
    client.post("/predict", json={"employee": EXAMPLE_EMPLOYEE})
    client.post("/predict", json={"employee": {**EXAMPLE_EMPLOYEE, "age": 1}})
    metrics = client.get("/metrics").text
    for name in ("futurisys_predictions_total", "futurisys_runner_batch_size_bucket",
                 "futurisys_inference_duration_seconds_bucket", "futurisys_invalid_requests_total",
                 "bentoml_service_request_total"):
        assert name in metrics, name


def test_health_probes(client):
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200


def _store_synthetic_employees(database_url: str, ids: list[int]) -> list[dict]:
    """Put synthetic employees in the ``employees`` table (the extracts are not needed for this)."""
    from persistence.database.schema import employees

    rows = synthetic_employees(len(ids), seed=99)
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(sa.delete(employees).where(employees.c.id_employee.in_(ids)))
        connection.execute(sa.insert(employees), [{**row, "id_employee": i, "a_quitte_l_entreprise": "Non"}
                                                  for i, row in zip(ids, rows)])
    engine.dispose()
    return rows


def test_predict_by_stored_employee_id_and_read_the_history(served, client):
    url, database_url = served
    rows = _store_synthetic_employees(database_url, [901, 902])
    first = client.post("/predict", json={"employee_id": 901}).json()
    second = client.post("/predict", json={"employee_id": 901, "model": "random_forest"}).json()
    assert first["probability"] == pytest.approx(reference_probabilities(champion(), rows[:1])[0], abs=1e-6)
    assert second["model"] == "random_forest"
    assert client.post("/predict", json={"employee_id": 999_999}).status_code == 404

    tagged = client.post("/predict", json={"employee": EXAMPLE_EMPLOYEE, "employee_id": 902}).json()
    history = client.get("/predictions", params={"employee_id": 901}).json()
    assert [t["request_id"] for t in history["items"]] == [first["request_id"], second["request_id"]]
    assert history["total"] == 2 and history["items"][0]["inputs"] == rows[0]
    page = client.get("/predictions", params={"employee_id": 901, "limit": 1, "offset": 1}).json()
    assert [t["request_id"] for t in page["items"]] == [second["request_id"]]
    later = client.get("/predictions", params={"employee_id": 901, "from": "2999-01-01T00:00:00Z"}).json()
    assert later["items"] == []
    assert client.get("/predictions", params={"employee_id": 902}).json()["items"][0]["request_id"] \
        == tagged["request_id"]
    backwards = client.get("/predictions", params={"from": "2030-01-02T00:00:00Z", "to": "2030-01-01T00:00:00Z"})
    assert backwards.status_code == 400 and "error" in backwards.json()
    bad = client.get("/predictions", params={"employee_id": "abc"})
    assert bad.status_code == 400 and bad.json()["detail"][0]["field"] == "employee_id"


def test_keep_alive_connections_are_recycled_so_clients_spread_over_workers(client):
    closes = [client.get("/livez").headers.get("connection") for _ in range(150)]
    assert "close" in closes, "no answer closed its connection in 150 requests (recycling every 100)"
    assert closes.count("close") <= 2


def test_outcomes_over_http_all_or_none_naming_the_item_and_a_correction_wins(served, client):
    from persistence.database.outcomes import current_outcomes
    from persistence.database.schema import outcomes

    url, database_url = served
    _store_synthetic_employees(database_url, [911, 912])
    tagged = client.post("/predict", json={"employee": EXAMPLE_EMPLOYEE, "employee_id": 913})
    assert tagged.status_code == 200
    engine = sa.create_engine(database_url)

    def stored() -> dict[int, tuple[bool, str, str]]:
        latest = current_outcomes()
        with engine.connect() as connection:
            rows = connection.execute(sa.select(latest.c.employee_id, latest.c.has_left, latest.c.known_at,
                                                latest.c.source).where(latest.c.employee_id.in_([911, 912, 913])))
            return {r.employee_id: (bool(r.has_left), str(r.known_at), r.source) for r in rows}

    def count() -> int:
        with engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(outcomes)).scalar_one()

    try:
        before = count()
        unknown = client.post("/outcomes", json={"outcomes": [
            {"employee_id": 911, "left": True, "known_at": "2026-11-30"},
            {"employee_id": 999_998, "left": False}]})
        assert unknown.status_code == 404
        assert [d["field"] for d in unknown.json()["detail"]] == ["outcomes[1].employee_id"]
        invalid = client.post("/outcomes", json={"outcomes": [
            {"employee_id": 911, "left": "Oui"}, {"employee_id": 912, "left": False, "known_at": "30/11/2026"},
            {"employee_id": 913, "left": False, "knwon_at": "2026-11-30"}]})
        assert invalid.status_code == 400
        assert {d["field"] for d in invalid.json()["detail"]} == {
            "outcomes[0].left", "outcomes[1].known_at", "outcomes[2].knwon_at"}
        too_many = client.post("/outcomes", json={"outcomes": [{"employee_id": 911, "left": True}] * (BATCH_CAP + 1)})
        assert too_many.status_code == 413 and too_many.json()["detail"][0]["field"] == "outcomes"
        assert count() == before  # nothing written by any refused request

        recorded = client.post("/outcomes", json={"outcomes": [
            {"employee_id": 911, "left": True, "known_at": "2026-11-30"},
            {"employee_id": 912, "left": False, "known_at": "2026-11-30"},
            {"employee_id": 913, "left": True}]})
        assert recorded.status_code == 200 and recorded.json() == {"recorded": 3, "source": "api"}
        correction = client.post("/outcomes", json={"outcomes": [
            {"employee_id": 911, "left": False, "known_at": "2026-11-30"}]})
        assert correction.status_code == 200
        today = pd.Timestamp.now(tz="UTC").date().isoformat()
        assert stored() == {911: (False, "2026-11-30", "api"), 912: (False, "2026-11-30", "api"),
                            913: (True, today, "api")}
        assert count() == before + 4
    finally:
        engine.dispose()
