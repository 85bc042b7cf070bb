"""The Futurisys attrition service: HTTP endpoints over the registry and the trace store.

POST ``/predict`` and ``/predict_batch`` are BentoML APIs; the GET routes
(``/models``, ``/metadata``, ``/predictions``) come from a FastAPI app mounted
on the service. What each endpoint does lives in ``registry/`` and
``persistence/``; this file only declares the endpoints.
"""
from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import sys
import time
import uuid
from datetime import datetime, timezone
from typing import Annotated, Any

import bentoml
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import Field
from starlette.responses import JSONResponse
from threadpoolctl import threadpool_limits

from attrition.schema import Employee, feature_schema
from attrition.synthetic import EXAMPLE_EMPLOYEE
from gateway.errors import AnswerResponse, error_response, not_found, unknown_model, validation_error_body
from gateway.middleware import GatewayMiddleware
from persistence import dataset, queries
from persistence.database import make_engine
from persistence.migrate import upgrade
from persistence.traces import Trace
from persistence.writer import TraceWriteError, TraceWriter
from registry.catalogue import ModelCatalogue, ModelEntry, UnknownModel
from registry.runner import RunnerPool, import_model_libraries
from registry.serving import DefaultModelUnavailable, Served, serve_rows
from registry.store import import_models
from settings import SERVICE_NAME, SERVICE_VERSION, settings

logger = logging.getLogger(__name__)

http = FastAPI(title="Futurisys attrition — read endpoints")


@http.exception_handler(RequestValidationError)
async def _invalid_query(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(validation_error_body(list(exc.errors())), status_code=400)


@bentoml.service(
    name=SERVICE_NAME,
    workers=settings.workers,
    traffic={"timeout": settings.request_timeout_s},
    logging={"access": {"enabled": settings.access_log}},
)
@bentoml.asgi_app(http, path="/")
class AttritionService:
    """Predicts which employees are likely to leave, and keeps a durable trace of every answer."""

    def __init__(self) -> None:
        # Workers share the cores: one BLAS/OpenMP thread each, or they fight over them under load.
        threadpool_limits(limits=1)
        # Threads (the runners', journal writes) hold the GIL for whole switch intervals
        # (5 ms by default): a shorter one hands the event loop back sooner.
        sys.setswitchinterval(settings.switch_interval_ms / 1000.0)
        limit_malloc_arenas()
        report = import_models(settings.models_dir)
        if report.imported:
            logger.info("Imported %s into the model store", ", ".join(report.imported))
        self.catalogue = ModelCatalogue.from_store(settings.models_dir, settings.default_model)
        self.runners = RunnerPool(self.catalogue, settings.max_batch_size, settings.max_latency_ms)
        self.database_url = settings.resolved_database_url
        upgrade(self.database_url)
        self.engine = make_engine(self.database_url)
        self.writer: TraceWriter | None = None

    @bentoml.on_startup
    async def start_worker(self) -> None:
        """Prepare this worker: trace writer and journal replay started, model libraries imported."""
        if settings.tracing:
            self.writer = TraceWriter(self.engine)
            await self.writer.start()
        # Before the worker reports ready: importing scikit-learn takes about a second, which a
        # first request would otherwise pay on top of loading its model.
        await asyncio.to_thread(_warm_up_worker)

    @bentoml.on_shutdown
    async def stop(self) -> None:
        """Commit what is pending, then release the runners and the database pool."""
        if self.writer is not None:
            await self.writer.stop()
        await self.runners.close()
        self.engine.dispose()

    def __is_ready__(self) -> bool:
        return self.catalogue.default.valid and (not settings.tracing or self.writer is not None)

    # ---- predictions -------------------------------------------------------------------------

    @bentoml.api(route="/predict")
    async def predict(
        self,
        employee: Annotated[Employee | None, Field(
            description="The 30 employee fields. Omit it to score a stored employee by employee_id.",
            examples=[EXAMPLE_EMPLOYEE])] = None,
        employee_id: Annotated[int | None, Field(
            ge=1, description="A stored employee to score, or a tag for the trace of inline fields.")] = None,
        model: Annotated[str | None, Field(
            description="name, name:version or alias (champion); default model when omitted.",
            examples=["champion"])] = None,
    ) -> dict:
        """Score one employee: inline fields, or a stored employee by id."""
        received_at = datetime.now(timezone.utc)
        started = time.perf_counter()
        if employee is not None:
            row = dict(employee.__dict__)  # the validated fields; model_dump() costs more for the same dict
        elif employee_id is not None:
            row = await asyncio.to_thread(dataset.get_employee, self.engine, employee_id)
            if row is None:
                return not_found("employee_id", employee_id, "employee")
        else:
            return error_response(400, "invalid request: employee: give the employee fields or an employee_id",
                                  [{"field": "employee", "message": "employee or employee_id is required"}])
        answers = await self._score([row], model, "predict", received_at, started, employee_id)
        # A response object skips BentoML's per-answer schema generation for `dict` outputs.
        return answers if isinstance(answers, JSONResponse) else AnswerResponse(answers[0])

    @bentoml.api(route="/predict_batch")
    async def predict_batch(
        self,
        employees: Annotated[list[Employee], Field(
            description=f"Employees to score, in order; at most {settings.max_batch_rows} rows.",
            examples=[[EXAMPLE_EMPLOYEE]])],
        model: Annotated[str | None, Field(
            description="name, name:version or alias; default model when omitted.")] = None,
    ) -> dict:
        """Score many employees in one call; one answer per row, in input order."""
        received_at = datetime.now(timezone.utc)
        started = time.perf_counter()
        if len(employees) > settings.max_batch_rows:
            return error_response(
                413, f"batch of {len(employees)} rows exceeds the cap of {settings.max_batch_rows}",
                [{"field": "employees", "message": f"at most {settings.max_batch_rows} rows"}])
        if not employees:
            return error_response(400, "invalid request: employees: at least one row is required",
                                  [{"field": "employees", "message": "empty batch"}])
        rows = [dict(e.__dict__) for e in employees]
        answers = await self._score(rows, model, "predict_batch", received_at, started, None)
        return answers if isinstance(answers, JSONResponse) else AnswerResponse({"predictions": answers})

    async def _score(self, rows: list[dict[str, Any]], model: str | None, endpoint: str,
                     received_at: datetime, started: float,
                     employee_id: int | None) -> list[dict[str, Any]] | JSONResponse:
        try:
            requested = self.catalogue.resolve(model)
        except UnknownModel as exc:
            return unknown_model(exc.requested, exc.valid)
        try:
            served = await serve_rows(self.runners, requested, rows)
        except DefaultModelUnavailable as exc:
            # Nothing could answer: the failure itself is part of the audit trail.
            if self.writer is not None:
                try:
                    await self.writer.record([
                        _failed_trace(endpoint, received_at, model, employee_id, index, row, self.catalogue.default,
                                      str(exc), started)
                        for index, row in enumerate(rows)])
                except TraceWriteError:
                    logger.exception("Trace write failed")
            return error_response(503, str(exc), [{"field": "model", "message": "default model invalid"}])
        answers = served.answers()
        for answer in answers:
            answer["request_id"] = str(uuid.uuid4())
            answer["requested_model"] = model
        if self.writer is not None:
            total_ms = (time.perf_counter() - started) * 1000
            try:
                await self.writer.record([
                    _trace(endpoint, received_at, model, employee_id, index if endpoint == "predict_batch" else None,
                           row, answer, served, total_ms)
                    for index, (row, answer) in enumerate(zip(rows, answers))])
            except TraceWriteError as exc:
                # No trace, no answer: the durability rule outranks availability.
                logger.error("Trace write failed: %s", exc)
                return error_response(500, "the prediction could not be traced; it was not answered",
                                      [{"field": "trace", "message": "trace storage failed"}])
        return answers

    # ---- read endpoints (GET, FastAPI) -------------------------------------------------------

    @http.get("/models", summary="Every model in the store")
    def list_models(self) -> dict:
        """Every model version: aliases, default flag, loaded, valid (and why not), threshold, metrics."""
        return {"default": self.catalogue.default.tag,
                "models": [self.catalogue.describe(e, self.runners.is_loaded(e)) for e in self.catalogue.entries()]}

    @http.get("/models/{name}", summary="One model's card")
    def model_card(self, name: str) -> Any:
        """The card of ``name`` (name, name:version or alias), with its current health."""
        try:
            entry = self.catalogue.resolve(name)
        except UnknownModel as exc:
            return unknown_model(exc.requested, exc.valid)
        summary = self.catalogue.describe(entry, self.runners.is_loaded(entry))
        return {**summary, "card": entry.card.model_dump() if entry.card else None}

    @http.get("/metadata", summary="Service, default model, feature schema, dataset")
    def metadata(self) -> dict:
        """Service name and version, default model, the 30-field schema, dataset summary, database backend."""
        return {
            "service": SERVICE_NAME,
            "version": SERVICE_VERSION,
            "default_model": self.catalogue.default.tag,
            "models": [e.tag for e in self.catalogue.entries()],
            "aliases": self.catalogue.aliases,
            "features": feature_schema(),
            "example_employee": EXAMPLE_EMPLOYEE,
            "dataset": {"employees": dataset.count_employees(self.engine)},
            "database_backend": self.engine.dialect.name,
            "tracing": settings.tracing,
            "max_batch_rows": settings.max_batch_rows,
        }

    @http.get("/predictions/{request_id}", summary="The stored trace of one request")
    def prediction_trace(self, request_id: str) -> Any:
        """Inputs, outputs, model, version and timings of one request, as stored."""
        trace = queries.get_trace(self.engine, request_id)
        return trace if trace is not None else not_found("request_id", request_id, "request id")

    @http.get("/predictions", summary="An employee's traces over a period")
    def prediction_traces(
        self,
        employee_id: Annotated[int | None, Query(ge=1, description="Only this employee's traces.")] = None,
        start: Annotated[datetime | None, Query(alias="from", description="ISO 8601, inclusive.")] = None,
        end: Annotated[datetime | None, Query(alias="to", description="ISO 8601, exclusive.")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict:
        """Traces ordered by reception time, paginated."""
        try:
            return queries.list_traces(self.engine, employee_id=employee_id, start=start, end=end,
                                       limit=limit, offset=offset)
        except ValueError as exc:
            return error_response(400, f"invalid request: {exc}", [{"field": "from", "message": str(exc)}])


AttritionService.add_asgi_middleware(GatewayMiddleware, api_keys=settings.api_key_set,
                                     recycle_every=settings.recycle_connections_every)


def _warm_up_worker() -> None:
    import_model_libraries()
    # What exists now lives as long as the worker: keep it out of the collector's way. Full
    # collections over these objects paused requests by 100-300 ms under load.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas for this worker (``MALLOC_ARENA_MAX``).

    Each thread that contends for malloc gets an arena of its own, kept for
    the life of the process: with the inference and trace-writer threads
    that cost about a hundred MiB per worker under load. No-op off glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def _failed_trace(endpoint: str, received_at: datetime, requested_model: str | None, employee_id: int | None,
                  index: int, row: dict[str, Any], model: ModelEntry, error: str, started: float) -> Trace:
    return Trace(
        request_id=str(uuid.uuid4()), received_at=received_at, endpoint=endpoint, requested_model=requested_model,
        employee_id=employee_id, batch_index=index if endpoint == "predict_batch" else None, inputs=row,
        model_name=model.name, model_version=model.version, service_version=SERVICE_VERSION, status="error",
        error=error, total_ms=(time.perf_counter() - started) * 1000)


def _trace(endpoint: str, received_at: datetime, requested_model: str | None, employee_id: int | None,
           batch_index: int | None, row: dict[str, Any], answer: dict[str, Any], served: Served,
           total_ms: float) -> Trace:
    card = served.model.card
    return Trace(
        request_id=answer["request_id"], received_at=received_at, endpoint=endpoint,
        requested_model=requested_model, employee_id=employee_id, batch_index=batch_index, inputs=row,
        model_name=served.model.name, model_version=served.model.version,
        model_sha256=card.artifact_sha256 if card else None, service_version=SERVICE_VERSION,
        prediction=answer["prediction"], probability=answer["probability"], threshold=answer["threshold"],
        fallback=served.fallback, status="error" if served.fallback else "ok", error=served.error,
        inference_ms=served.inference_ms, total_ms=total_ms, created_at=datetime.now(timezone.utc))
