"""Log lines of the HTTP edge without input values.

BentoML logs every failed API call with its exception: for a request that
fails validation, pydantic's message quotes each rejected value
(``input_value=98765``), one traceback per request and a line per problem.
Its access log writes each request's path, where a request id or a model
name is a path segment. The filters here keep those lines and drop the
values: an exception is logged by its type and stack (no message), a
validation failure by its count of problems, a path by its route template.
"""
from __future__ import annotations

import logging
import re
import traceback
from typing import Any

from pydantic import ValidationError

EXCEPTION_LOGGERS = ("bentoml._internal.server.http_app", "bentoml.serve", "uvicorn.error", "api.errors",
                     "predictions.layer", "persistence.trace.writer", "persistence.trace.replay",
                     "persistence.trace.journal")
"""Loggers that log exceptions met while answering (BentoML's API wrapper, the ASGI server, the service's own)."""
ACCESS_LOGGER = "bentoml.access"

KNOWN_PATHS = frozenset({"/", "/predict", "/predict_batch", "/models", "/metadata", "/health", "/predictions",
                         "/docs.json", "/livez", "/healthz", "/readyz", "/metrics", "/schema.json"})
"""Paths logged as they are: they carry no value."""
PATH_TEMPLATES = (("/predictions/", "/predictions/{request_id}"), ("/models/", "/models/{name}"),
                  ("/static_content/", "/static_content/{file}"))
"""Routes with a path parameter, logged by their template."""
PATH_FIELD = re.compile(r"path=([^,)]*)")


def route_of(path: str) -> str:
    """The route template of ``path``: itself when it has no parameter, ``{other}`` when it is no route."""
    if path in KNOWN_PATHS:
        return path
    for prefix, template in PATH_TEMPLATES:
        if path.startswith(prefix):
            return template
    return "/{other}"


def value_free_exception(error: BaseException) -> str:
    """``error`` as its type and stack, without its message (which may quote values)."""
    if isinstance(error, ValidationError):
        return f"{error.error_count()} validation problem(s) in {error.title} (values not logged)"
    stack = "".join(traceback.format_tb(error.__traceback__)).rstrip()
    return f"{type(error).__module__}.{type(error).__name__} (message not logged)\n{stack}"


class ValueFreeExceptions(logging.Filter):
    """Logs an exception as :func:`value_free_exception`, never with its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place; every record is kept."""
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            if isinstance(record.args, tuple):
                record.args = tuple(_route_only(arg) for arg in record.args)
            record.msg = f"{record.getMessage()}: {value_free_exception(error)}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


class RouteOnlyAccess(logging.Filter):
    """Writes the route template of each request in the access log instead of its path."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the ``path=`` fields of ``record``'s arguments; every record is kept."""
        if isinstance(record.args, tuple):
            record.args = tuple(_route_only(arg) for arg in record.args)
        return True


def _route_only(value: Any) -> Any:
    if isinstance(value, str) and "path=" in value:
        return PATH_FIELD.sub(lambda match: f"path={route_of(match.group(1))}", value)
    if isinstance(value, str) and value.startswith("/"):
        return route_of(value)
    return value


_ACCESS_FILTER = RouteOnlyAccess()
_EXCEPTION_FILTER = ValueFreeExceptions()


def install() -> None:
    """Put the filters on BentoML's loggers (idempotent; each worker process calls it)."""
    for name in EXCEPTION_LOGGERS:
        logger = logging.getLogger(name)
        if _EXCEPTION_FILTER not in logger.filters:
            logger.addFilter(_EXCEPTION_FILTER)
    access = logging.getLogger(ACCESS_LOGGER)
    if _ACCESS_FILTER not in access.filters:
        access.addFilter(_ACCESS_FILTER)
