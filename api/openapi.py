"""The answers of every operation in the OpenAPI document, as the service really gives them.

BentoML documents 400, 404 and 500 for its APIs with bodies of its own, and
flattens their request and answer schemas (a nullable field loses its
``null``); FastAPI documents a 422 the service never answers. This module
rewrites the document BentoML renders: the request and answer schemas of
the BentoML APIs come from their pydantic models, and each operation lists
the error statuses it can answer, all with the one error body
``{"error", "detail"}``. The statuses are those of ``api/errors.py``'s
table, per route. The document depends on nothing that changes while the
service runs: :class:`ServiceDocument` builds it once per process.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Mapping

import orjson

from api.keys import ANY_KEY, OPEN, requirement

ERROR_SCHEMA_NAME = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "title": ERROR_SCHEMA_NAME, "required": ["error", "detail"],
    "description": "Every error answer: what is wrong, and the fields at fault.",
    "properties": {
        "error": {"type": "string", "description": "What is wrong, naming the fields at fault."},
        "detail": {"type": "array", "description": "One entry per problem (at most the first 50).", "items": {
            "type": "object", "required": ["field", "message"],
            "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}},
    },
}

WHY: dict[int, str] = {
    400: "Invalid request: a body, path or query value outside its type or bounds, a body key the route does not "
         "declare, or JSON nested too deep.",
    401: "Missing or unknown API key.",
    403: "The API key lacks the scope this route needs.",
    404: "Unknown model, employee or request id (an outcome's employee: neither imported nor tagging a trace).",
    409: "The answer cannot be explained as asked: the trace holds no answer, the store's artifact is not the one "
         "that answered, or the model has no exact explanation.",
    410: "The model version that answered is no longer in the model store.",
    413: "Body larger than the size limit, or a batch over its row cap.",
    415: "A POST body that is not JSON.",
    503: "Not ready: the default model cannot serve, the trace could be stored nowhere, or the database could not "
         "record outcomes.",
}

BODY_ERRORS = (400, 413, 415)
"""What the edge answers to any POST body before the route runs."""
ERRORS_OF_ROUTE: dict[tuple[str, str], tuple[int, ...]] = {
    ("post", "/predict"): (*BODY_ERRORS, 404, 409, 503),
    ("post", "/predict_batch"): (*BODY_ERRORS, 404, 409, 503),
    ("post", "/outcomes"): (*BODY_ERRORS, 404, 503),
    ("get", "/models/{name}"): (400, 404),
    ("get", "/predictions/{request_id}"): (400, 404),
    ("get", "/predictions/{request_id}/explanation"): (400, 404, 409, 410),
    ("get", "/predictions"): (400,),
    ("get", "/readyz"): (503,),
}
"""The statuses each route answers beyond those of its key requirement."""

REPLACED_SCHEMAS = ("HTTPValidationError", "ValidationError", "InvalidArgument", "NotFound", "InternalServerError")
"""Error bodies of BentoML and FastAPI that the service never answers with."""


def error_statuses(method: str, path: str, metrics_open: bool) -> tuple[int, ...]:
    """The error statuses ``method path`` can answer: its own, and 401/403 from its key requirement."""
    needed = requirement(path.split("{")[0].rstrip("/") or "/", metrics_open)
    by_key: tuple[int, ...] = () if needed == OPEN else (401,) if needed == ANY_KEY else (401, 403)
    return tuple(sorted({*ERRORS_OF_ROUTE.get((method, path), ()), *by_key}))


def _model_schema(model: Any, components: dict[str, Any], name: str) -> dict[str, Any]:
    """A reference to ``model``'s own JSON schema, put in ``components`` with the models it uses."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for nested, definition in schema.pop("$defs", {}).items():
        components[nested] = definition
    components[name] = schema
    return {"$ref": f"#/components/schemas/{name}"}


def document_answers(spec: dict[str, Any], apis: Mapping[str, Any], metrics_open: bool) -> dict[str, Any]:
    """``spec`` with each BentoML API's own schemas and every operation's real error answers.

    ``apis`` are the service's BentoML APIs (``Service.apis``: each has a
    ``route`` and pydantic ``input_spec``/``output_spec``).
    """
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in REPLACED_SCHEMAS:
        components.pop(name, None)
    components[ERROR_SCHEMA_NAME] = ERROR_SCHEMA
    for name, api in apis.items():
        operation = spec.get("paths", {}).get(api.route, {}).get("post")
        if operation is None:
            continue
        body = operation.setdefault("requestBody", {"required": True})
        body["content"] = {"application/json": {"schema": _model_schema(api.input_spec, components, f"{name}_request")}}
        answer = _model_schema(api.output_spec, components, f"{name}_answer")
        operation["responses"] = {"200": {"description": "Successful Response",
                                          "content": {"application/json": {"schema": answer}}}}
    error = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}}}
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            responses = {code: answer for code, answer in operation.get("responses", {}).items()
                         if str(code).startswith("2")}
            for status in error_statuses(method, path, metrics_open):
                responses[str(status)] = {"description": WHY[status], "content": error}
            operation["responses"] = responses
    return spec


class ServiceDocument:
    """The service's OpenAPI document, built on its first request and kept, rendered, for the process's life.

    Building it walks every model's JSON schema (tens of milliseconds); the
    docs page asks for it on each visit. ``builds`` counts the builds.
    """

    def __init__(self, build: Callable[[], dict[str, Any]]) -> None:
        """A document that ``build`` makes, when first asked for."""
        self.build = build
        self.builds = 0
        self._body: bytes | None = None
        self._lock = threading.Lock()

    def body(self) -> bytes:
        """The document as JSON bytes (built on the first call; the same bytes after)."""
        if self._body is None:
            with self._lock:  # two first requests in threads of one worker build it once
                if self._body is None:
                    self._body = orjson.dumps(self.build())
                    self.builds += 1
        return self._body
