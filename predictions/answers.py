"""The typed answers of every endpoint: what ``/docs.json`` documents and what the service returns.

The hot answers (:class:`Prediction`, :class:`PredictionBatch`) hold JSON
types only, so ``api.responses.AnswerResponse`` renders them with orjson
straight from their fields. :class:`TraceRecord` is derived from the one
declaration of a trace's columns (:class:`persistence.database.traces.Trace`).
"""
from __future__ import annotations

import typing
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from attrition.card import ModelCard
from attrition.schema import NEGATIVE_LABEL, POSITIVE_LABEL
from persistence.database import traces

Label = Literal["Oui", "Non"]
assert set(typing.get_args(Label)) == {POSITIVE_LABEL, NEGATIVE_LABEL}


class Prediction(BaseModel):
    """The answer for one employee: which model served, what it predicted, and the trace's request id."""

    request_id: str = Field(description="The id of this prediction's trace (GET /predictions/{request_id}).")
    model: str = Field(description="The model that served (after a fallback: the default model).")
    model_version: str
    requested_model: str | None = Field(description="The model the request named, as written (null: default).")
    prediction: Literal[0, 1] = Field(description="1 when the employee is predicted to leave.")
    label: Label = Field(description="Oui when the employee is predicted to leave, else Non.")
    probability: float = Field(ge=0, le=1, description="Probability of leaving, rounded to 6 decimals.")
    threshold: float = Field(ge=0, le=1, description="prediction = 1 when probability >= threshold.")
    fallback: bool = Field(description="True when the requested model could not serve and the default did.")


class PredictionBatch(BaseModel):
    """The answers of a batch, one per row, in input order."""

    predictions: list[Prediction]


class Contribution(BaseModel):
    """One input field of the request: its value, and how far it moved the output from the base value."""

    field: str = Field(description="One of the 30 employee fields (its one-hot or derived columns summed).")
    value: str | int = Field(description="The field's value in the request.")
    contribution: float = Field(description="Its push on the output, on the explanation's link scale.")


class Explanation(BaseModel):
    """Why the model answered what it did: base_value + sum(contributions) = output, to 1e-6."""

    link: Literal["logit", "identity"] = Field(
        description="Scale of base_value, output and contributions. logit: log-odds, probability = "
                    "1 / (1 + exp(-output)); identity: the probability itself (the random forest averages "
                    "its trees' probabilities, and the baseline answers a constant).")
    base_value: float = Field(description="The model's expected output over its training data.")
    output: float = Field(description="The model's output for this employee, on the link scale.")
    contributions: list[Contribution] = Field(
        description="One per input field, the largest |contribution| first (exact: linear terms or TreeSHAP).")


class ExplainedPrediction(Prediction):
    """The answer for one employee, and its explanation when the request asked ``"explain": true``.

    The service's answers are :class:`Prediction` objects (no ``explanation``
    key at all) unless an explanation is asked: this class is what the
    endpoints declare, so the document and ``bentoml.SyncHTTPClient`` know the
    optional field.
    """

    explanation: Explanation | None = Field(
        default=None, description='Present only when the request asks "explain": true.')


class ExplainedPredictionBatch(BaseModel):
    """The answers of a batch, one per row, in input order; each explained when the request asks it."""

    predictions: list[ExplainedPrediction]


class TraceExplanation(BaseModel):
    """The explanation of a traced answer, recomputed from its stored inputs with the model version that answered."""

    model_config = ConfigDict(protected_namespaces=())

    request_id: str
    model: str = Field(description="The model that answered (after a fallback: the default model).")
    model_version: str
    model_sha256: str = Field(description="The artifact's sha256: the trace's, checked against the store's.")
    probability: float = Field(description="The probability the trace stores.")
    threshold: float
    explanation: Explanation


class ModelSummary(BaseModel):
    """One model version of the store, with its health in this worker."""

    model_config = ConfigDict(protected_namespaces=())

    name: str
    version: str
    tag: str = Field(description="name:version")
    aliases: list[str]
    default: bool = Field(description="Serves requests that name no model, and fallbacks.")
    loaded: bool = Field(description="Loaded in the worker that answered.")
    valid: bool
    invalid_reason: str | None = Field(description="Why the model cannot serve (null when valid).")
    estimator: str | None
    threshold: float | None
    metrics: dict[str, Any] | None = Field(description="Evaluation metrics of the card (cross-validation, holdout).")
    artifact_sha256: str | None
    created_at: str | None


class ModelList(BaseModel):
    """Every model version in the store, and the default."""

    default: str = Field(description="name:version of the default model.")
    models: list[ModelSummary]


class ModelDetail(ModelSummary):
    """One model's summary and its whole card."""

    card: ModelCard | None


class DatasetSummary(BaseModel):
    """What the ``employees`` table holds."""

    employees: int = Field(description="Employees imported (scored by {\"employee_id\": N}).")


class Metadata(BaseModel):
    """The service, its models, the input schema and the storage in use."""

    service: str
    version: str
    default_model: str
    models: list[str]
    aliases: dict[str, str]
    features: list[dict[str, Any]] = Field(description="The 30 input fields: kind, bounds or categories, source.")
    example_employee: dict[str, Any]
    dataset: DatasetSummary
    database_backend: str
    tracing: bool
    max_batch_rows: int


def _record_type(annotation: Any) -> Any:
    # Timestamps are answered as ISO 8601 strings; the record keeps every other field's own type.
    return str if annotation is datetime else annotation


def _trace_record() -> type[BaseModel]:
    hints = typing.get_type_hints(traces.Trace)
    groups: dict[str | None, dict[str, Any]] = {}
    for field in traces.TRACE_FIELDS:
        name = field.metadata["record"] or field.name
        groups.setdefault(field.metadata["group"], {})[name] = (_record_type(hints[field.name]), ...)
    # extra="forbid": a record that does not match the trace's declaration fails loudly, never silently.
    nested = {group: (create_model(f"Trace{group.capitalize()}", __config__=ConfigDict(extra="forbid"), **fields), ...)
              for group, fields in groups.items() if group is not None}
    return create_model("TraceRecord", __doc__="The stored trace of one request, as it was written.",
                        __config__=ConfigDict(protected_namespaces=(), extra="forbid"), **groups[None], **nested)


TraceRecord = _trace_record()
"""The stored trace of one request: inputs, outputs, model and version, artifact sha256, timings."""


class TracePage(BaseModel):
    """One page of traces, oldest first."""

    items: list[TraceRecord]  # type: ignore[valid-type]
    total: int = Field(description="Every matching trace, not just this page.")
    limit: int
    offset: int


class WriterDetail(BaseModel):
    """The trace writer of the worker that answered."""

    state: Literal["committing", "journaling", "failed", "stopped"] = Field(
        description="committing: traces go to the database; journaling: the database is unavailable (down, "
                    "refusing writes or missing its deadline) and traces go to the local journal.")
    healthy: bool = Field(description="The writer's task runs: every trace is committed or journaled.")
    database_reachable: bool = Field(description="The database answered its last commit or probe.")
    journal_backlog: int = Field(description="Traces journaled by this worker, not yet replayed.")
    journal_bytes: int = Field(description="Bytes of this worker's journals (cap: FUTURISYS_JOURNAL_MAX_BYTES).")
    journal_full: bool = Field(description="The journal refused its last append (cap or full disk): requests that "
                                           "need it answer 503 and the worker is unready.")
    orphaned_journals: int = Field(description="Journal files of other processes waiting for a replay.")
    replay_failing: bool = Field(description="The database answers but refuses the replay (read-only, a revoked "
                                             "INSERT): a journal this worker cannot drain. Not a readiness matter "
                                             "(replicas share the database); the replay backs off.")
    replay_failures: int = Field(description="Consecutive failed replay passes.")
    replay_error: str | None = Field(description="What the last failed replay met: its class and SQLSTATE.")
    quarantined: int = Field(description="Traces in quarantine files: the database refused them for their content "
                                         "(an alarm; `python -m persistence replay-quarantine FILE`).")
    quarantine_bytes: int = Field(description="Bytes of the quarantine files "
                                              "(cap: FUTURISYS_QUARANTINE_MAX_BYTES).")
    last_commit_at: str | None = Field(description="ISO 8601 time of this worker's last group commit.")
    restarts: int = Field(description="Writer tasks that died and were restarted.")


class Health(BaseModel):
    """The health detail of one worker (``/readyz`` answers the same ``ready``, with an empty body)."""

    ready: bool
    default_model: str
    default_model_valid: bool
    tracing: bool
    writer: WriterDetail | None = Field(description="Null when tracing is off.")


class OutcomesRecorded(BaseModel):
    """What ``POST /outcomes`` recorded: every outcome of the request, or (on an error) none."""

    recorded: int = Field(description="Outcomes recorded, one per item, in one transaction.")
    source: Literal["api"] = Field(description="The source the outcomes are recorded with.")
