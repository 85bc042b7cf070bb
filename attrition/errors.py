"""The service's domain errors: what can go wrong with a request, named once, without HTTP.

Each error says what is at fault in ``message`` and names the field or model
in ``detail`` (a list of ``{"field": ..., "message": ...}`` objects). Which
HTTP answer each one gets is decided in one table, ``api/errors.py``.
"""
from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A request the service cannot answer as asked."""

    def __init__(self, message: str, detail: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or []


def problem(field: str, message: str, **extra: Any) -> dict[str, Any]:
    """One entry of an error's ``detail``: the field at fault and what is wrong with it."""
    return {"field": field, "message": message, **extra}


class InvalidRequest(DomainError):
    """The request does not follow the schema: ``detail`` names every field at fault."""


class UnknownModel(DomainError):
    """A requested model matches no name, version or alias; carries the valid names."""

    def __init__(self, requested: str, valid: list[str]) -> None:
        super().__init__(f"unknown model {requested!r}", [problem("model", "no such model", valid=valid)])
        self.requested = requested
        self.valid = valid


class NotFound(DomainError):
    """An id that names nothing stored (an employee, a request)."""

    def __init__(self, field: str, value: Any, what: str) -> None:
        super().__init__(f"unknown {what} {value!r}", [problem(field, f"no such {what}")])


class UnknownEmployee(NotFound):
    """No stored employee has this id."""

    def __init__(self, employee_id: int) -> None:
        super().__init__("employee_id", employee_id, "employee")


class UnknownRequest(NotFound):
    """No trace has this request id."""

    def __init__(self, request_id: str) -> None:
        super().__init__("request_id", request_id, "request id")


class BatchTooLarge(DomainError):
    """A batch holds more rows than the service accepts in one call."""

    def __init__(self, rows: int, cap: int, field: str = "employees") -> None:
        super().__init__(f"batch of {rows} rows exceeds the cap of {cap}",
                         [problem(field, f"at most {cap} rows")])


class DefaultModelUnavailable(DomainError):
    """The default model cannot serve: nothing can answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, [problem("model", "default model invalid")])


class TraceNotStored(DomainError):
    """The answer's trace was neither committed nor journaled: the answer must not be sent."""

    def __init__(self, reason: str) -> None:
        super().__init__("the prediction could not be traced; it was not answered",
                         [problem("trace", "trace storage failed")])
        self.reason = reason


class OutcomesNotStored(DomainError):
    """The database refused or could not be reached while recording outcomes: nothing was recorded."""

    def __init__(self, reason: str) -> None:
        super().__init__("the outcomes could not be stored; nothing was recorded",
                         [problem("outcomes", "database unavailable")])
        self.reason = reason


class UnknownEmployees(NotFound):
    """Employee ids that are neither imported nor tag a trace: an outcome must be about someone scored or known."""

    def __init__(self, fields: list[str]) -> None:
        DomainError.__init__(self, f"unknown employee id in {len(fields)} item(s): " + ", ".join(fields[:5])
                             + (" ..." if len(fields) > 5 else ""),
                             [problem(field, "no such employee: not imported, and no trace is tagged with it")
                              for field in fields[:50]])
        self.fields = fields


class ExplanationUnavailable(DomainError):
    """An answer that cannot be explained as asked: no answer in the trace, another artifact, an unsupported model."""

    def __init__(self, reason: str, field: str = "request_id") -> None:
        super().__init__(f"no explanation: {reason}", [problem(field, reason)])


class ModelVersionGone(DomainError):
    """The model version that answered a traced request is no longer in the model store."""

    def __init__(self, tag: str) -> None:
        super().__init__(f"the model version {tag} that answered this request is no longer in the model store: "
                         "its answer cannot be recomputed", [problem("model_version", f"{tag} is not in the store")])
