"""API keys and scopes at the edge, in front of a real ASGI app: entries, verification, open paths, loopback."""
from __future__ import annotations

import hashlib
import hmac
import os
import socket
import subprocess
import sys

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from api import __main__ as keys_command
from api import keys
from api.keys import KeyConfigurationError, KeyRing, document_keys, key_id_of, parse_keys, requirement
from api.middleware import EdgeMiddleware, exposure_warning, listening_addresses
from tests.conftest import PROJECT_ROOT

PREDICTOR, READER = "k-predict-0123456789", "k-read-0123456789"


def sha256_hex(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


ENTRIES = f"hr-tool:{sha256_hex(PREDICTOR)}:predict,auditor:{sha256_hex(READER)}:read"

GUARDED = ["/predict", "/predict_batch", "/predictions", "/predictions/abc", "/outcomes", "/models", "/models/x",
           "/metadata", "/schema.json"]
OPEN = ["/", "/livez", "/healthz", "/readyz", "/docs.json", "/static_content/swagger-ui.css"]
LOOK_ALIKES = ["/livezz", "/livez/", "/readyz.json", "/metricsX", "/docs.jsonx", "/docs", "/static_content",
               "/static_contentX/a.css", "/healthz/x"]


async def who(request: Request) -> JSONResponse:
    return JSONResponse({"key_id": key_id_of(request.scope)})


def edge(keys_value: str = ENTRIES, client: tuple[str, int] = ("127.0.0.1", 50000), **options) -> TestClient:
    paths = sorted(set(GUARDED + OPEN + LOOK_ALIKES + ["/metrics"]))
    app = Starlette(routes=[Route(path, who, methods=["GET", "POST"]) for path in paths])
    return TestClient(EdgeMiddleware(app, keys=parse_keys(keys_value), **options), client=client)


def test_entries_parse_into_ids_hashes_and_scopes():
    parsed = parse_keys(f" {ENTRIES} ,")
    assert [(k.id, k.digest.hex(), sorted(k.scopes)) for k in parsed] == [
        ("hr-tool", sha256_hex(PREDICTOR), ["predict"]), ("auditor", sha256_hex(READER), ["read"])]
    assert parse_keys("") == ()
    scopes = parse_keys(f"x:{sha256_hex('a').upper()}:predict+read+outcomes")[0].scopes
    assert scopes == {"predict", "read", "outcomes"}


def test_the_old_plain_key_format_is_refused_saying_how_to_convert_without_repeating_the_key():
    with pytest.raises(KeyConfigurationError) as refused:
        parse_keys("my-old-plain-key-42,another-one")
    message = str(refused.value)
    assert "entry 1 is a plain key" in message and "id:sha256hex:scopes" in message
    assert "python -m api keys entry" in message and "python -m api keys create" in message
    assert "my-old-plain-key-42" not in message


@pytest.mark.parametrize("value, fault", [
    (f"a:{sha256_hex('x')}:write", "unknown scope 'write'"),
    (f"a:{sha256_hex('x')}:", "at least one scope"),
    ("a:abc123:read", "64 hex digits"),
    (f"a b:{sha256_hex('x')}:read", "the id"),
    (f"a:{sha256_hex('x')}:read,a:{sha256_hex('y')}:read", "configured twice"),
    (f"a:{sha256_hex('x')}:read,b:{sha256_hex('x')}:read", "same key"),
    (f"a:{sha256_hex('x')}:read:extra", "4 parts"),
])
def test_malformed_entries_are_refused_naming_the_fault(value, fault):
    with pytest.raises(KeyConfigurationError, match=fault):
        parse_keys(value)


def test_settings_refuse_the_old_format_at_start_and_never_print_the_key():
    environment = {**os.environ, "FUTURISYS_API_KEYS": "my-old-plain-key-42"}
    done = subprocess.run([sys.executable, "-c", "import settings"], cwd=PROJECT_ROOT, env=environment,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "KeyConfigurationError" in done.stderr and "python -m api keys entry" in done.stderr
    assert "my-old-plain-key-42" not in done.stderr + done.stdout


def test_bearer_and_x_api_key_both_identify_the_key_and_its_id_reaches_the_route():
    client = edge()
    assert client.post("/predict", headers={"Authorization": f"Bearer {PREDICTOR}"}).json() == {"key_id": "hr-tool"}
    assert client.post("/predict", headers={"authorization": f"bearer {PREDICTOR}"}).json() == {"key_id": "hr-tool"}
    assert client.post("/predict", headers={"X-API-Key": PREDICTOR}).json() == {"key_id": "hr-tool"}
    assert client.get("/predictions", headers={"X-API-Key": READER}).json() == {"key_id": "auditor"}
    assert edge("").post("/predict").json() == {"key_id": None}


@pytest.mark.parametrize("headers, why", [
    ({}, "no API key"),
    ({"Authorization": PREDICTOR}, "Bearer <key>"),
    ({"Authorization": f"Basic {PREDICTOR}"}, "Bearer <key>"),
    ({"Authorization": "Bearer "}, "Bearer <key>"),
    ({"X-API-Key": PREDICTOR, "Authorization": f"Bearer {READER}"}, "different keys"),
    ({"X-API-Key": PREDICTOR + "x"}, "unknown API key"),
    ({"X-API-Key": sha256_hex(PREDICTOR)}, "unknown API key"),
])
def test_a_missing_malformed_or_unknown_key_is_401_saying_why(headers, why):
    answer = edge().post("/predict", headers=headers)
    assert answer.status_code == 401 and why in answer.json()["error"]
    assert answer.json()["detail"][0]["field"] == "Authorization"


def test_a_key_without_the_scope_is_403_naming_the_scope():
    client = edge()
    refused = client.get("/predictions/abc", headers={"X-API-Key": PREDICTOR})
    assert refused.status_code == 403
    assert "'read' scope" in refused.json()["error"] and refused.json()["detail"][0]["scope"] == "read"
    assert client.post("/predict_batch", headers={"X-API-Key": READER}).status_code == 403
    assert client.post("/outcomes", headers={"X-API-Key": READER}).status_code == 403
    # Routes of no scope take any valid key.
    assert client.get("/models/x", headers={"X-API-Key": READER}).status_code == 200
    assert client.get("/metadata", headers={"X-API-Key": PREDICTOR}).status_code == 200


def test_open_paths_match_exactly_and_look_alikes_need_a_key():
    client = edge()
    for path in OPEN:
        assert client.get(path).status_code == 200, path
    for path in LOOK_ALIKES + GUARDED:
        assert client.get(path).status_code == 401, path
    assert client.get("/metrics").status_code == 200
    assert edge(metrics_open=False).get("/metrics").status_code == 401
    assert edge(metrics_open=False).get("/metrics", headers={"X-API-Key": READER}).status_code == 200


@pytest.mark.parametrize("path, needed", [
    ("/PREDICTIONS", "read"), ("//predictions", "read"), ("/predictions/", "read"), ("/Predict", "predict"),
    ("/predict_batch/", "predict"), ("/predictionsX", "any"), ("/LIVEZ", "any"), ("/metrics/", "any"),
])
def test_look_alikes_of_scoped_routes_get_the_stricter_requirement(path, needed):
    assert requirement(path, metrics_open=True) == needed


def test_verification_compares_every_entry_with_compare_digest(monkeypatch):
    calls, compare = [], hmac.compare_digest

    def counting(a, b):
        calls.append((len(a), len(b)))
        return compare(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", counting)
    ring = KeyRing(parse_keys(ENTRIES))
    assert ring.identify(PREDICTOR).id == "hr-tool"
    assert ring.identify("nobody") is None
    # Two entries, two lookups: every entry compared each time, on digests, whether or not one matched first.
    assert calls == [(32, 32)] * 4


def test_a_valid_key_is_accepted_only_through_compare_digest(monkeypatch):
    client = edge()
    assert client.post("/predict", headers={"X-API-Key": PREDICTOR}).status_code == 200
    monkeypatch.setattr(keys.hmac, "compare_digest", lambda a, b: False)
    assert client.post("/predict", headers={"X-API-Key": PREDICTOR}).status_code == 401


def test_without_keys_trace_reads_and_outcomes_answer_loopback_peers_only():
    for peer in (("127.0.0.1", 40000), ("::1", 40000), ("::ffff:127.0.0.1", 40000), ("127.8.9.10", 40000)):
        assert edge("", client=peer).get("/predictions").status_code == 200, peer
    outsider = edge("", client=("203.0.113.7", 40000))
    refused = outsider.get("/predictions/abc", headers={"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1"})
    assert refused.status_code == 401 and "'read' API key is needed" in refused.json()["error"]
    assert outsider.post("/outcomes").status_code == 401
    assert edge("", client=("testclient", 1)).get("/predictions").status_code == 401
    # What holds no personal data stays open without keys.
    for path in ("/predict", "/models", "/metadata", "/livez"):
        assert outsider.post(path).status_code == 200, path


def test_the_listening_address_is_read_from_the_socket_bentoml_hands_the_worker():
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert listening_addresses(["worker", "--fd", str(listening.fileno())]) == [("127.0.0.1", port)]
    assert listening_addresses(["pytest"]) is None


def test_a_service_without_keys_listening_beyond_loopback_is_warned_about():
    warning = exposure_warning((), [("0.0.0.0", 3000)])
    assert warning and "0.0.0.0:3000" in warning and "python -m api keys create" in warning
    assert exposure_warning((), [("127.0.0.1", 3000)]) is None
    assert exposure_warning(parse_keys(ENTRIES), [("0.0.0.0", 3000)]) is None
    assert exposure_warning((), None) is None


def test_the_key_command_prints_a_key_once_with_an_entry_that_verifies_it(capsys, monkeypatch):
    assert keys_command.main(["keys", "create", "hr-tool", "--scopes", "predict+read"]) == 0
    printed = capsys.readouterr().out.splitlines()
    key = printed[0].rsplit(" ", 1)[1]
    entry = printed[1].rsplit(" ", 1)[1]
    assert key.startswith("fk_") and key not in entry
    [parsed] = parse_keys(entry)
    assert (parsed.id, parsed.scopes) == ("hr-tool", {"predict", "read"})
    assert KeyRing([parsed]).identify(key) == parsed
    assert keys_command.main(["keys", "create", "x", "--scopes", "write"]) == 2

    done = subprocess.run([sys.executable, "-m", "api", "keys", "entry", "legacy", "--scopes", "read"],
                          input="my-old-plain-key-42\n", cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and f"legacy:{sha256_hex('my-old-plain-key-42')}:read" in done.stdout


def test_the_openapi_document_declares_the_key_schemes_and_what_each_operation_needs():
    spec = {"paths": {"/predictions/{request_id}": {"get": {"responses": {}}}, "/livez": {"get": {"responses": {}}},
                      "/models": {"get": {"responses": {}, "description": "Models."}},
                      "/metrics": {"get": {"responses": {}}}}}
    documented = document_keys(spec, metrics_open=False)
    assert documented["components"]["securitySchemes"]["bearer"] == {**keys.BEARER_SCHEME}
    paths = documented["paths"]
    assert paths["/livez"]["get"]["security"] == []
    assert paths["/predictions/{request_id}"]["get"]["security"] == [{"bearer": []}, {"apiKey": []}]
    assert "'read' scope" in paths["/predictions/{request_id}"]["get"]["description"]
    assert "any valid API key" in paths["/models"]["get"]["description"]
    assert paths["/metrics"]["get"]["security"] != []
