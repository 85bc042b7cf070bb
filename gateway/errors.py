"""The one place that maps domain failures to HTTP answers.

Every error body is a JSON object ``{"error": "...", "detail": [...]}`` that
names the field or model at fault; never a bare list, never a stack trace.
"""
from __future__ import annotations

from typing import Any, Iterable

import orjson
from starlette.responses import JSONResponse


class AnswerResponse(JSONResponse):
    """A JSON answer rendered by orjson (several times faster than ``json.dumps`` on large batches)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(status: int, error: str, detail: list[Any] | None = None) -> JSONResponse:
    """A JSON error answer."""
    return JSONResponse({"error": error, "detail": detail or []}, status_code=status)


def describe_location(loc: Iterable[Any]) -> str:
    """``("employees", 3, "age")`` → ``employees[3].age``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "body"


def validation_error_body(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """An error body from pydantic-style errors, naming each field at fault in ``error``."""
    detail = []
    for err in errors:
        loc = [p for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        detail.append({"field": describe_location(loc), "message": err.get("msg", "invalid"),
                       "type": err.get("type", "value_error")})
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in detail) or "invalid request"
    return {"error": f"invalid request: {summary}", "detail": detail}


def unknown_model(requested: str, valid: list[str]) -> JSONResponse:
    """404 for a model that matches no name, version or alias."""
    return error_response(404, f"unknown model {requested!r}",
                          [{"field": "model", "message": "no such model", "valid": valid}])


def not_found(field: str, value: Any, what: str) -> JSONResponse:
    """404 for an unknown id."""
    return error_response(404, f"unknown {what} {value!r}", [{"field": field, "message": f"no such {what}"}])
