"""The trace of one prediction: what was asked, what was answered, by which model, how fast."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from persistence.schema import ENDPOINTS, STATUSES, utcnow

Endpoint = Literal["predict", "predict_batch"]
Status = Literal["ok", "error"]

_DATETIME_FIELDS = ("received_at", "created_at")

TRACE_COLUMNS = ("request_id", "received_at", "endpoint", "requested_model", "employee_id", "batch_index", "inputs",
                 "model_name", "model_version", "model_sha256", "service_version", "prediction",
                 "probability", "threshold", "fallback", "status", "error", "inference_ms", "total_ms", "created_at")
"""The columns of ``prediction_traces``, in the order the trace writer copies them."""


@dataclass(frozen=True, kw_only=True)
class Trace:
    """One prediction, as the service hands it to the trace writer.

    ``received_at`` and ``created_at`` must be timezone-aware. ``inputs`` are
    the 30 fields the model was given (a JSON object). ``prediction``,
    ``probability`` and ``threshold`` are None when ``status`` is ``"error"``.
    """

    request_id: str
    received_at: datetime
    endpoint: Endpoint
    inputs: dict[str, Any]
    model_name: str
    model_version: str
    service_version: str
    status: Status
    total_ms: float
    requested_model: str | None = None
    employee_id: int | None = None
    batch_index: int | None = None
    model_sha256: str | None = None
    prediction: int | None = None
    probability: float | None = None
    threshold: float | None = None
    fallback: bool = False
    error: str | None = None
    inference_ms: float | None = None
    created_at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        # Checked here, where the caller's stack shows the culprit, not later in the flusher thread.
        if self.endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {ENDPOINTS}, not {self.endpoint!r}")
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {self.status!r}")
        if self.prediction not in (None, 0, 1):
            raise ValueError(f"prediction must be 0, 1 or None, not {self.prediction!r}")
        for name in _DATETIME_FIELDS:
            if getattr(self, name).tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field (timestamps as ISO 8601 strings)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in _DATETIME_FIELDS:
            data[name] = data[name].isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trace:
        """The trace :meth:`to_dict` produced (unknown keys are refused)."""
        values = dict(data)
        for name in _DATETIME_FIELDS:
            if isinstance(values.get(name), str):
                values[name] = datetime.fromisoformat(values[name])
        return cls(**values)

    def row(self) -> dict[str, Any]:
        """The ``prediction_traces`` row of this trace."""
        return {name: getattr(self, name) for name in TRACE_COLUMNS}
