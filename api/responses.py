"""Response classes of the service: typed answers and error bodies rendered by orjson."""
from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import JSONResponse


def _fields(value: Any) -> Any:
    # The answers' fields are JSON types already: their __dict__ is the document, no model_dump() needed.
    if isinstance(value, BaseModel):
        return value.__dict__
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class AnswerResponse(JSONResponse):
    """A JSON answer rendered by orjson: a typed answer (pydantic model) or plain JSON data.

    orjson walks a batch of answers several times faster than ``json.dumps``
    or pydantic's own serialiser; the models' fields hold JSON types only.
    """

    def render(self, content: Any) -> bytes:
        """The answer as JSON bytes."""
        return orjson.dumps(content, default=_fields)


class ErrorResponse(AnswerResponse):
    """An error answer ``{"error": "...", "detail": [...]}``."""

    def __init__(self, status_code: int, error: str, detail: list[Any] | None = None) -> None:
        super().__init__({"error": error, "detail": detail or []}, status_code=status_code)
