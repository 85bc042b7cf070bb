"""The prediction layer: everything an endpoint does, with no HTTP in it.

``predict`` and ``predict_batch``: resolve the requested model (registry) →
score the rows through this worker's runner, falling back visibly to the
default model → build one trace per row → record them durably (persistence)
→ return the typed answers, only once the traces are stored. The reads
(models, metadata, traces) answer from the catalogue and the database.
Failures are domain errors (:mod:`attrition.errors`); ``api/errors.py``
decides their HTTP answers.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from attrition.errors import (BatchTooLarge, DefaultModelUnavailable, InvalidRequest, OutcomesNotStored, TraceNotStored,
                              UnknownEmployee, UnknownRequest, problem)
from attrition.outcome import OutcomeReport
from attrition.schema import EXAMPLE_EMPLOYEE, NEGATIVE_LABEL, POSITIVE_LABEL, Employee, feature_schema
from persistence.database import dataset, outcomes, queries
from persistence.database.traces import Trace
from persistence.personal_data import reads
from persistence.trace.writer import TraceWriteError, TraceWriter
from predictions.answers import (DatasetSummary, ExplainedPrediction, ExplainedPredictionBatch, Health, Metadata,
                                 ModelDetail, ModelList, ModelSummary, OutcomesRecorded, Prediction, PredictionBatch,
                                 TraceExplanation, TracePage, TraceRecord, WriterDetail)
from predictions.explaining import ExplainerPool
from registry.catalogue import ModelCatalogue, ModelEntry
from registry.runner import RunnerPool
from registry.serving import Served, serve_rows
from settings import SERVICE_NAME, SERVICE_VERSION, Settings

log = logging.getLogger(__name__)


class PredictionLayer:
    """The models of this worker, its trace writer and its database, behind the operations of the HTTP contract."""

    def __init__(self, catalogue: ModelCatalogue, runners: RunnerPool, engine: Engine,
                 writer: TraceWriter | None, *, max_batch_rows: int) -> None:
        """A layer over parts already built; :meth:`open` builds them from the settings."""
        self.catalogue = catalogue
        self.runners = runners
        self.engine = engine
        self.writer = writer
        self.max_batch_rows = max_batch_rows
        self.explainers = ExplainerPool(runners)  # builds nothing until an answer is to be explained
        self._writer_started = False

    @classmethod
    def open(cls, settings: Settings) -> PredictionLayer:
        """Import ``models/`` into the store and build the layer of one worker; nothing touches the database.

        The trace writer migrates the database itself, at start or once the
        database is back: a worker starts, serves and journals during an outage.
        """
        from persistence.database.engine import make_engine

        catalogue = ModelCatalogue.open(settings.models_dir, settings.default_model)
        runners = RunnerPool(catalogue, settings.max_batch_size, settings.max_latency_ms)
        engine = make_engine(settings.resolved_database_url)
        writer = TraceWriter(engine, migrate=True) if settings.tracing else None
        return cls(catalogue, runners, engine, writer, max_batch_rows=settings.max_batch_rows)

    async def start(self) -> None:
        """Start the trace writer (it migrates, then replays the journals) in the running event loop."""
        if self.writer is not None:
            await self.writer.start()
            self._writer_started = True
        else:
            await asyncio.to_thread(_migrate_logging_failure, self.engine)

    async def close(self) -> None:
        """Commit what is pending, stop the runners, then release the database pool (owned here)."""
        if self.writer is not None and self._writer_started:
            await self.writer.stop()
        await self.runners.close()
        self.engine.dispose()

    @property
    def ready(self) -> bool:
        """True when the default model can serve and, with tracing on, the trace writer takes traces.

        A writer whose task died, or whose journal is full (cap or disk) while it
        journals, makes the worker unready: it would only answer 503.
        """
        return self.catalogue.default.valid and (self.writer is None or self.writer.accepting)

    def health(self) -> Health:
        """The health detail: readiness, the default model, the trace writer's state (no database call)."""
        default = self.catalogue.default
        writer = None
        if self.writer is not None:
            detail = self.writer.health()
            writer = WriterDetail(**{**detail.__dict__, "last_commit_at": (
                detail.last_commit_at.isoformat() if detail.last_commit_at else None)})
        return Health(ready=self.ready, default_model=default.tag, default_model_valid=default.valid,
                      tracing=self.writer is not None, writer=writer)

    # -- predictions -------------------------------------------------------------------------------

    async def predict(self, employee: Employee | None, employee_id: int | None, model: str | None,
                      key_id: str | None = None, explain: bool = False) -> Prediction:
        """Score one employee: the inline fields (``employee_id`` then only tags the trace), or a stored employee.

        ``key_id`` is the id of the API key that asked (None without keys), recorded in the trace. With
        ``explain``, the answer is an :class:`ExplainedPrediction`.
        """
        received_at = datetime.now(timezone.utc)
        started = time.perf_counter()
        if employee is not None:
            row = dict(employee.__dict__)  # the validated fields; model_dump() costs more for the same dict
        elif employee_id is not None:
            row = await asyncio.to_thread(dataset.get_employee, self.engine, employee_id)
            if row is None:
                raise UnknownEmployee(employee_id)
        else:
            raise InvalidRequest("invalid request: employee: give the employee fields or an employee_id",
                                 [problem("employee", "employee or employee_id is required")])
        answers = await self._score([row], model, "predict", received_at, started, employee_id, key_id, explain)
        return answers[0]

    async def predict_batch(self, employees: list[Employee], model: str | None,
                            key_id: str | None = None, explain: bool = False) -> PredictionBatch:
        """Score many employees; one answer per row, in input order, each with its own request id.

        With ``explain``, each answer carries its explanation (an :class:`ExplainedPredictionBatch`).
        """
        received_at = datetime.now(timezone.utc)
        started = time.perf_counter()
        if len(employees) > self.max_batch_rows:
            raise BatchTooLarge(len(employees), self.max_batch_rows)
        if not employees:
            raise InvalidRequest("invalid request: employees: at least one row is required",
                                 [problem("employees", "empty batch")])
        rows = [dict(e.__dict__) for e in employees]
        answers = await self._score(rows, model, "predict_batch", received_at, started, None, key_id, explain)
        if explain:
            return ExplainedPredictionBatch.model_construct(predictions=answers)
        return PredictionBatch(predictions=answers)

    async def _score(self, rows: list[dict[str, Any]], model: str | None, endpoint: str, received_at: datetime,
                     started: float, employee_id: int | None, key_id: str | None,
                     explain: bool = False) -> list[Prediction]:
        requested = self.catalogue.resolve(model)
        try:
            served = await serve_rows(self.runners, requested, rows)
        except DefaultModelUnavailable as exc:
            # Nothing could answer: the failure itself is part of the audit trail.
            await self._record_failure(rows, model, endpoint, received_at, started, employee_id, str(exc), key_id)
            raise
        answers = _answers(served, model)
        if explain:
            # Before the traces: an answer that cannot be explained is not answered, so it needs no trace.
            explanations = await self.explainers.explain_soon(served.model, rows)
            answers = [ExplainedPrediction.model_construct(**answer.__dict__, explanation=explanation)
                       for answer, explanation in zip(answers, explanations)]
        if self.writer is not None:
            total_ms = (time.perf_counter() - started) * 1000
            batch = endpoint == "predict_batch"
            try:
                await self.writer.record([
                    _trace(endpoint, received_at, model, employee_id, index if batch else None, row, answer,
                           served, total_ms, key_id)
                    for index, (row, answer) in enumerate(zip(rows, answers))])
            except TraceWriteError as exc:
                # No trace, no answer: the durability rule outranks availability.
                raise TraceNotStored(str(exc)) from exc
        return answers

    async def _record_failure(self, rows: list[dict[str, Any]], model: str | None, endpoint: str,
                              received_at: datetime, started: float, employee_id: int | None, error: str,
                              key_id: str | None) -> None:
        if self.writer is None:
            return
        default = self.catalogue.default
        try:
            await self.writer.record([
                _failed_trace(endpoint, received_at, model, employee_id, index, row, default, error, started, key_id)
                for index, row in enumerate(rows)])
        except TraceWriteError as exc:
            log.error("Trace of a failed request not stored: %s", exc)

    # -- outcomes ------------------------------------------------------------------------------------

    async def record_outcomes(self, reports: list[OutcomeReport]) -> OutcomesRecorded:
        """Record what happened to employees, all or none (source ``api``); ``known_at`` defaults to today (UTC).

        An employee id that is neither imported nor tags a trace rejects the
        whole request (404 naming ``outcomes[i].employee_id``).
        """
        if len(reports) > self.max_batch_rows:
            raise BatchTooLarge(len(reports), self.max_batch_rows, "outcomes")
        if not reports:
            raise InvalidRequest("invalid request: outcomes: at least one outcome is required",
                                 [problem("outcomes", "empty list")])
        today = datetime.now(timezone.utc).date()
        rows = [outcomes.Outcome(r.employee_id, r.left, r.known_at or today) for r in reports]
        try:
            count = await asyncio.to_thread(outcomes.record_outcomes, self.engine, rows, outcomes.API)
        except SQLAlchemyError as exc:
            raise OutcomesNotStored(exc.__class__.__name__) from exc
        return OutcomesRecorded(recorded=count, source=outcomes.API)

    # -- reads ---------------------------------------------------------------------------------------

    def models(self) -> ModelList:
        """Every model version: aliases, default flag, loaded, valid (and why not), threshold, metrics."""
        return ModelList(default=self.catalogue.default.tag,
                         models=[self._summary(entry) for entry in self.catalogue.entries()])

    def model_card(self, name: str) -> ModelDetail:
        """The card of ``name`` (name, name:version or alias), with its current health."""
        entry = self.catalogue.resolve(name)
        return ModelDetail(**self._summary(entry).__dict__, card=entry.card)

    def _summary(self, entry: ModelEntry) -> ModelSummary:
        return ModelSummary(**self.catalogue.describe(entry, self.runners.is_loaded(entry)))

    def metadata(self) -> Metadata:
        """Service name and version, default model, the 30-field schema, dataset summary, database backend."""
        return Metadata(
            service=SERVICE_NAME, version=SERVICE_VERSION, default_model=self.catalogue.default.tag,
            models=[e.tag for e in self.catalogue.entries()], aliases=self.catalogue.aliases,
            features=feature_schema(), example_employee=EXAMPLE_EMPLOYEE,
            dataset=DatasetSummary(employees=dataset.count_employees(self.engine)),
            database_backend=self.engine.dialect.name, tracing=self.writer is not None,
            max_batch_rows=self.max_batch_rows)

    def trace(self, request_id: str, key_id: str | None = None) -> TraceRecord:  # type: ignore[valid-type]
        """The stored trace of one request; the read is logged (by ``key_id``) before it is answered."""
        return TraceRecord(**self._read_trace(request_id, key_id, "GET /predictions/{request_id}"))

    def trace_explanation(self, request_id: str, key_id: str | None = None) -> TraceExplanation:
        """The explanation of one traced answer, recomputed with the model version that answered it.

        A read of the trace like :meth:`trace`, logged (by ``key_id``) before it is answered.
        """
        record = self._read_trace(request_id, key_id, "GET /predictions/{request_id}/explanation")
        return self.explainers.explain_trace(self.catalogue, record)

    def _read_trace(self, request_id: str, key_id: str | None, route: str) -> dict:
        """One stored trace, its read recorded under ``route`` first; :class:`UnknownRequest` when there is none."""
        record = queries.get_trace(self.engine, request_id)
        reads.record_read(self.engine, key_id, route, {"request_id": request_id}, rows=int(record is not None),
                          employee_id=record["employee_id"] if record else None)
        if record is None:
            raise UnknownRequest(request_id)
        return record

    def traces(self, employee_id: int | None, start: datetime | None, end: datetime | None, limit: int,
               offset: int, key_id: str | None = None) -> TracePage:
        """Traces by reception time, oldest first, paginated; an employee's when ``employee_id`` is given.

        The read is logged (by ``key_id``) before it is answered.
        """
        try:
            page = queries.list_traces(self.engine, employee_id=employee_id, start=start, end=end, limit=limit,
                                       offset=offset)
        except ValueError as exc:
            raise InvalidRequest(f"invalid request: {exc}", [problem("from", str(exc))]) from exc
        asked = {"employee_id": employee_id, "from": start, "to": end, "limit": limit, "offset": offset}
        reads.record_read(self.engine, key_id, "GET /predictions", asked, rows=len(page["items"]))
        return TracePage(**page)


def _migrate_logging_failure(engine: Engine) -> None:
    """Without tracing there is no writer to migrate: try once at start, and say so when it fails."""
    from persistence.database.migrate import upgrade

    try:
        upgrade(engine.url)
    except Exception as exc:  # the reads then fail on their own; the service still starts
        log.warning("database migration at start failed: %s", exc)


def _answers(served: Served, requested_model: str | None) -> list[Prediction]:
    """One answer per scored row, each with a new request id."""
    threshold = served.threshold
    name, version, fallback = served.model.name, served.model.version, served.fallback
    answers = []
    for probability in served.probabilities.tolist():
        prediction = int(probability >= threshold)
        answers.append(Prediction(
            request_id=str(uuid.uuid4()), model=name, model_version=version, requested_model=requested_model,
            prediction=prediction, label=POSITIVE_LABEL if prediction else NEGATIVE_LABEL,
            probability=round(probability, 6), threshold=threshold, fallback=fallback))
    return answers


def _trace(endpoint: str, received_at: datetime, requested_model: str | None, employee_id: int | None,
           batch_index: int | None, row: dict[str, Any], answer: Prediction, served: Served,
           total_ms: float, key_id: str | None) -> Trace:
    card = served.model.card
    return Trace(
        request_id=answer.request_id, received_at=received_at, endpoint=endpoint,
        requested_model=requested_model, employee_id=employee_id, batch_index=batch_index, key_id=key_id, inputs=row,
        model_name=served.model.name, model_version=served.model.version,
        model_sha256=card.artifact_sha256 if card else None, service_version=SERVICE_VERSION,
        prediction=answer.prediction, probability=answer.probability, threshold=answer.threshold,
        fallback=served.fallback, status="error" if served.fallback else "ok", error=served.error,
        inference_ms=served.inference_ms, total_ms=total_ms, created_at=datetime.now(timezone.utc))


def _failed_trace(endpoint: str, received_at: datetime, requested_model: str | None, employee_id: int | None,
                  index: int, row: dict[str, Any], model: ModelEntry, error: str, started: float,
                  key_id: str | None) -> Trace:
    return Trace(
        request_id=str(uuid.uuid4()), received_at=received_at, endpoint=endpoint, requested_model=requested_model,
        employee_id=employee_id, batch_index=index if endpoint == "predict_batch" else None, key_id=key_id,
        inputs=row,
        model_name=model.name, model_version=model.version, service_version=SERVICE_VERSION, status="error",
        error=error, total_ms=(time.perf_counter() - started) * 1000)
