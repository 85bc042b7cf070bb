"""The HTTP edge in front of a real ASGI app: keys, body limits, content type, error bodies, recycling."""
from __future__ import annotations

import hashlib
import json

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from api.keys import parse_keys
from api.middleware import INVALID_REQUESTS, EdgeMiddleware


def sha256_hex(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"received": len(await request.body())})


async def bentoml_style_error(_request: Request) -> JSONResponse:
    # BentoML wraps the errors of its own exceptions in a list.
    return JSONResponse([{"error": "the batch is refused"}], status_code=400)


async def validation_error(_request: Request) -> JSONResponse:
    return JSONResponse({"error": "1 validation error", "detail": [
        {"loc": ["employee", "age"], "msg": "Input should be less than or equal to 75", "type": "less_than_equal"}]},
        status_code=400)


async def plain_text_error(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("Method Not Allowed", status_code=405)


def edge(**options) -> TestClient:
    app = Starlette(routes=[Route("/predict", echo, methods=["POST"]), Route("/models", echo, methods=["GET"]),
                            Route("/livez", echo, methods=["GET"]),
                            Route("/bento_error", bentoml_style_error, methods=["POST"]),
                            Route("/validation_error", validation_error, methods=["POST"]),
                            Route("/plain_text", plain_text_error, methods=["GET"])])
    return TestClient(EdgeMiddleware(app, **options))


def test_a_body_over_the_limit_is_413_by_its_length_or_as_it_streams():
    client = edge(max_body_bytes=100)
    assert client.post("/predict", content=b"{}").json() == {"received": 2}
    declared = client.post("/predict", content=b"x" * 101, headers={"content-type": "application/json"})
    assert declared.status_code == 413 and declared.json()["detail"][0]["field"] == "body"

    def chunks():
        yield b"[" + b"0," * 60
        yield b"0," * 60 + b"0]"

    streamed = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and "100 bytes" in streamed.json()["error"]


def test_a_post_body_that_is_not_json_is_415_naming_the_content_type():
    answer = edge().post("/predict", content=b"age=41", headers={"content-type": "text/plain"})
    assert answer.status_code == 415 and answer.json()["detail"][0]["field"] == "content-type"
    assert edge().post("/predict", content=b"{}", headers={"content-type": "application/json; charset=utf-8"}) \
        .status_code == 200


def test_keys_guard_routes_but_not_probes_and_are_counted():
    client = edge(keys=parse_keys(f"tool:{sha256_hex('k1')}:predict"))
    before = INVALID_REQUESTS.labels("/models", "401")._value.get()
    refused = client.get("/models")
    assert refused.status_code == 401 and "API key" in refused.json()["error"]
    assert refused.headers["www-authenticate"] == "Bearer"
    assert INVALID_REQUESTS.labels("/models", "401")._value.get() == before + 1
    assert client.get("/models", headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.get("/models", headers={"X-API-Key": "k1"}).status_code == 200
    assert client.get("/models", headers={"Authorization": "Bearer k1"}).status_code == 200
    assert client.get("/livez").status_code == 200


@pytest.mark.parametrize("path, expected_field", [("/bento_error", None), ("/validation_error", "employee.age")])
def test_error_bodies_of_the_framework_become_objects_naming_the_field(path, expected_field):
    answer = edge().post(path, content=b"{}")
    body = answer.json()
    assert answer.status_code == 400 and isinstance(body, dict) and body["error"]
    if expected_field is not None:
        assert [d["field"] for d in body["detail"]] == [expected_field]
        assert expected_field in body["error"]
    assert int(answer.headers["content-length"]) == len(json.dumps(body).encode())


def test_a_plain_text_error_becomes_a_json_object():
    answer = edge().get("/plain_text")
    assert answer.status_code == 405 and answer.json() == {"error": "Method Not Allowed", "detail": []}


def test_one_keep_alive_connection_in_every_n_answers_is_closed():
    client = edge(recycle_every=10)
    closes = [client.get("/livez").headers.get("connection") for _ in range(30)]
    assert closes.count("close") == 3 and closes[9] == "close"


def counting_edge(**options) -> tuple[TestClient, list[int]]:
    """An edge in front of an app that counts the requests it is given."""
    reached: list[int] = []

    async def predict_batch(request: Request) -> JSONResponse:
        reached.append(len(await request.body()))
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/predict_batch", predict_batch, methods=["POST"]),
                            Route("/predict", predict_batch, methods=["POST"])])
    return TestClient(EdgeMiddleware(app, **options)), reached


def test_a_batch_over_its_cap_is_413_before_the_route_sees_a_row():
    client, reached = counting_edge(max_batch_rows=3)
    refused = client.post("/predict_batch", json={"employees": [{}] * 4})
    assert refused.status_code == 413 and refused.json()["detail"][0]["field"] == "employees" and reached == []
    assert client.post("/predict_batch", json={"employees": [{}] * 3}).status_code == 200 and len(reached) == 1
    # The cap counts the batch route's rows only.
    assert client.post("/predict", json={"employees": [{}] * 4}).status_code == 200


@pytest.mark.parametrize("body, reason", [("[" * 33 + "]" * 33, "nested deeper than 32 levels"),
                                          ("[" * 5000 + "]" * 5000, "nested deeper than 32 levels"),
                                          ('{"employees": [', "not valid JSON")])
def test_a_body_nested_too_deep_or_not_json_is_400_before_the_route(body, reason):
    client, reached = counting_edge()
    refused = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert refused.status_code == 400 and reason in refused.json()["error"] and reached == []
    assert client.post("/predict", content="[" * 32 + "]" * 32).status_code == 200


def test_a_server_error_in_plain_text_becomes_a_json_object_and_is_not_counted_as_invalid():
    async def crash(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("Internal Server Error", status_code=500)

    client = TestClient(EdgeMiddleware(Starlette(routes=[Route("/models", crash)])))
    answer = client.get("/models")
    assert answer.status_code == 500 and answer.json() == {"error": "Internal Server Error", "detail": []}


def test_a_blank_x_api_key_is_refused_even_beside_a_valid_bearer_key():
    client = edge(keys=parse_keys(f"tool:{sha256_hex('k1')}:predict"))
    assert client.get("/models", headers={"Authorization": "Bearer k1", "X-API-Key": " "}).status_code == 401
    assert client.get("/models", headers={"Authorization": "Bearer k1"}).status_code == 200
