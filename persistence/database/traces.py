"""The trace of one prediction: what was asked, what was answered, by which model, how fast.

:class:`Trace` is the one declaration of a trace's columns: each field carries
its SQL type, and the ``prediction_traces`` table (``persistence/database/schema.py``),
the COPY column list of the trace writer, the journal lines and the answer of
``GET /predictions/...`` (:func:`as_record`) are all derived from it. A field
is nullable in the table exactly when its default is ``None``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from persistence.database.columns import JSONDocument, UTCDateTime, utcnow
from persistence.database.fitting import RowCheck

ENDPOINTS = ("predict", "predict_batch")
STATUSES = ("ok", "error")
Endpoint = Literal["predict", "predict_batch"]
Status = Literal["ok", "error"]


def column(sql_type: Any, *, record: str | None = None, group: str | None = None, **options: Any) -> dict[str, Any]:
    """A trace field's metadata: its SQL type and column options, and where it sits in the trace record.

    ``record`` renames the field in :func:`as_record` (``model_name`` is
    answered as ``model``); ``group`` nests it (``outputs``, ``timings``).
    """
    return {"sql_type": sql_type, "options": options, "record": record, "group": group}


@dataclass(frozen=True, kw_only=True)
class Trace:
    """One prediction, as the service hands it to the trace writer.

    ``received_at`` and ``created_at`` must be timezone-aware. ``inputs`` are
    the 30 fields the model was given (a JSON object). ``prediction``,
    ``probability`` and ``threshold`` are None when ``status`` is ``"error"``.
    """

    # The request. The request id is the key: no surrogate id to generate and index on the hot path.
    request_id: str = field(metadata=column(sa.String(64), primary_key=True))
    received_at: datetime = field(metadata=column(UTCDateTime))
    endpoint: Endpoint = field(metadata=column(sa.String(32), comment="predict or predict_batch"))
    requested_model: str | None = field(default=None, metadata=column(sa.String(200)))
    employee_id: int | None = field(default=None, metadata=column(sa.BigInteger))
    batch_index: int | None = field(default=None, metadata=column(sa.Integer))
    key_id: str | None = field(default=None, metadata=column(
        sa.String(64), comment="Id of the API key that asked (never the key); null without keys."))
    inputs: dict[str, Any] = field(metadata=column(JSONDocument, comment="The 30 fields the model was given."))
    # The answer
    model_name: str = field(metadata=column(sa.String(200), record="model"))
    model_version: str = field(metadata=column(sa.String(200)))
    model_sha256: str | None = field(default=None, metadata=column(sa.String(64)))
    service_version: str = field(metadata=column(sa.String(64)))
    prediction: int | None = field(default=None, metadata=column(sa.SmallInteger, group="outputs"))
    probability: float | None = field(default=None, metadata=column(sa.Float, group="outputs"))
    threshold: float | None = field(default=None, metadata=column(sa.Float, group="outputs"))
    fallback: bool = field(default=False, metadata=column(
        sa.Boolean, group="outputs", comment="Served by the default model after a failure."))
    status: Status = field(metadata=column(sa.String(8)))
    error: str | None = field(default=None, metadata=column(sa.Text))
    inference_ms: float | None = field(default=None, metadata=column(sa.Float, group="timings"))
    total_ms: float = field(metadata=column(sa.Float, group="timings"))
    created_at: datetime = field(default_factory=utcnow, metadata=column(UTCDateTime))

    def __post_init__(self) -> None:
        # Checked here, where the caller's stack shows the culprit, not later in the writer.
        if self.endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {ENDPOINTS}, not {self.endpoint!r}")
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {self.status!r}")
        if self.prediction not in (None, 0, 1):
            raise ValueError(f"prediction must be 0, 1 or None, not {self.prediction!r}")
        for name in _DATETIME_FIELDS:
            if getattr(self, name).tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware")
        # Every value fits its column (length, range, type): the database may then refuse a trace only as
        # a whole-database failure, journaled, never for its content (see persistence.database.engine).
        _FITS_COLUMNS(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field (timestamps as ISO 8601 strings)."""
        data = {name: getattr(self, name) for name in TRACE_COLUMNS}
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


TRACE_FIELDS: tuple[dataclasses.Field[Any], ...] = dataclasses.fields(Trace)
TRACE_COLUMNS: tuple[str, ...] = tuple(f.name for f in TRACE_FIELDS)
"""The columns of ``prediction_traces``, in table order (also the order the trace writer copies them)."""
_DATETIME_FIELDS = tuple(f.name for f in TRACE_FIELDS if f.metadata["sql_type"] is UTCDateTime)
_FITS_COLUMNS = RowCheck(TRACE_FIELDS)


def trace_columns() -> list[sa.Column[Any]]:
    """The ``prediction_traces`` columns, one per :class:`Trace` field."""
    return [sa.Column(f.name, f.metadata["sql_type"], nullable=f.default is None, **f.metadata["options"])
            for f in TRACE_FIELDS]


def as_record(row: Any) -> dict[str, Any]:
    """A stored trace (a row mapping) as ``GET /predictions`` answers it: JSON-ready, outputs and timings nested."""
    record: dict[str, Any] = {}
    for f in TRACE_FIELDS:
        value = row[f.name]
        if isinstance(value, datetime):
            value = value.isoformat()
        name, group = f.metadata["record"] or f.name, f.metadata["group"]
        (record.setdefault(group, {}) if group else record)[name] = value
    return record
