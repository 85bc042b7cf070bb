"""The one table from domain errors to HTTP answers, and its installation on every route.

Every error body is a JSON object ``{"error": "...", "detail": [...]}`` that
names the field or model at fault; never a bare list, never a stack trace.
:func:`install` registers the table once for the whole service: on the
BentoML APIs (each API call goes through :func:`answering`) and as the
exception handler of the mounted FastAPI app. The edge's own refusals
(keys, body size, content type) are domain errors of this table too.
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Awaitable, Callable, Iterable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from api import logs
from api.responses import AnswerResponse, ErrorResponse
from attrition.errors import (BatchTooLarge, DefaultModelUnavailable, DomainError, ExplanationUnavailable,
                              InvalidRequest, ModelVersionGone, NotFound, OutcomesNotStored, TraceNotStored,
                              UnknownModel, problem)

log = logging.getLogger(__name__)


class RequestRejected(DomainError):
    """A request refused at the HTTP edge, before any route runs."""


class MissingApiKey(RequestRejected):
    """No API key, or one the service does not know."""


class Forbidden(RequestRejected):
    """A valid API key without the scope the route needs."""


class BodyTooLarge(RequestRejected):
    """A request body over the size limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes", [problem("body", "too large")])


class UnsupportedMediaType(RequestRejected):
    """A POST body that is not JSON."""

    def __init__(self, content_type: str) -> None:
        super().__init__(f"content type {content_type!r} not supported: send application/json",
                         [problem("content-type", "send application/json")])


STATUS_OF: dict[type[DomainError], int] = {
    InvalidRequest: 400,
    MissingApiKey: 401,
    Forbidden: 403,
    UnknownModel: 404,
    NotFound: 404,
    ExplanationUnavailable: 409,  # the answer exists but cannot be explained as asked
    ModelVersionGone: 410,  # the model version that answered has left the store
    BodyTooLarge: 413,
    BatchTooLarge: 413,
    UnsupportedMediaType: 415,
    TraceNotStored: 503,  # stored nowhere (database and journal): no answer, retry later
    DefaultModelUnavailable: 503,
    OutcomesNotStored: 503,  # nothing recorded: retry later
}
"""The HTTP status of each domain error (a subclass answers as its nearest listed ancestor)."""


def status_of(error: DomainError) -> int:
    """The HTTP status that ``error`` answers with."""
    for kind in type(error).__mro__:
        if kind in STATUS_OF:
            return STATUS_OF[kind]
    return 500


def error_answer(error: DomainError) -> ErrorResponse:
    """The HTTP answer to ``error``: its status from the table, its message and detail as the body."""
    status = status_of(error)
    if isinstance(error, TraceNotStored):
        log.error("Trace write failed: %s", error.reason)
    if isinstance(error, OutcomesNotStored):
        log.error("Outcomes not stored: %s", error.reason)
    return ErrorResponse(status, error.message, error.detail)


def describe_location(loc: Iterable[Any]) -> str:
    """``("employees", 3, "age")`` → ``employees[3].age``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "body"


MAX_PROBLEMS = 50
"""Problems an error body lists at most (the first ones); its message gives the total."""
MAX_PROBLEMS_IN_MESSAGE = 5
"""Problems an error message names at most; the body's detail lists more."""


def invalid_request(errors: list[dict[str, Any]]) -> InvalidRequest:
    """The :class:`InvalidRequest` of pydantic-style errors, naming each field at fault in its message.

    Only the first :data:`MAX_PROBLEMS` are listed, and the message counts
    them all: a body of many bad rows must not cost an error body many times
    its own size. The input values pydantic quotes (``input``) are left out.
    """
    detail = []
    for err in errors[:MAX_PROBLEMS]:
        loc = [p for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        detail.append(problem(describe_location(loc), str(err.get("msg", "invalid")),
                              type=str(err.get("type", "value_error"))))
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in detail[:MAX_PROBLEMS_IN_MESSAGE]) or "invalid request"
    if len(errors) > MAX_PROBLEMS_IN_MESSAGE:
        listed = min(len(errors), MAX_PROBLEMS)
        summary += f" (and more: {len(errors)} problems in all, the first {listed} listed in detail)"
    return InvalidRequest(f"invalid request: {summary}", detail)


Endpoint = Callable[..., Awaitable[Any]]


def answering(endpoint: Endpoint) -> Endpoint:
    """Wrap a BentoML API: a typed answer becomes an :class:`AnswerResponse`, a domain error its table answer.

    A response object also skips BentoML's per-answer output schema work.
    """
    @functools.wraps(endpoint)
    async def answer(*args: Any, **kwargs: Any) -> Any:
        try:
            result = await endpoint(*args, **kwargs)
        except DomainError as error:
            refusal = error_answer(error)
            context = kwargs.get("ctx")
            if context is not None:
                # BentoML gives the answer of an API that takes a context the context's status: set it too.
                context.response.status_code = refusal.status_code
            return refusal
        return AnswerResponse(result) if isinstance(result, (BaseModel, dict, list)) else result
    return answer


async def _domain_error(_request: Request, error: Exception) -> ErrorResponse:
    assert isinstance(error, DomainError)
    return error_answer(error)


async def _invalid_query(_request: Request, error: Exception) -> ErrorResponse:
    assert isinstance(error, RequestValidationError)
    return error_answer(invalid_request(list(error.errors())))


def install(service: Any, http: FastAPI) -> None:
    """Answer every domain error of ``service``'s BentoML APIs and of its mounted ``http`` app from the table.

    Also keeps input values out of BentoML's logs of failed requests (:mod:`api.logs`).
    """
    for method in service.apis.values():
        method.func = answering(method.func)
    http.add_exception_handler(DomainError, _domain_error)
    http.add_exception_handler(RequestValidationError, _invalid_query)
    logs.install()
