"""The Futurisys attrition service: the declaration of its HTTP endpoints, and nothing else.

POST ``/predict`` and ``/predict_batch`` are BentoML APIs; the GET routes
(``/models``, ``/metadata``, ``/predictions``) come from a FastAPI app mounted
on the service. Each endpoint hands its validated arguments to the prediction
layer (``predictions/``) and returns its typed answer; ``api/`` is the HTTP
edge: keys, body limits, content type, and the one table that turns domain
errors into HTTP answers.
"""
from __future__ import annotations

import asyncio
from typing import Annotated

import bentoml
from fastapi import FastAPI, Query, Request
from fastapi.responses import Response
from pydantic import Field, StrictBool

from api import errors
from api.bodies import refuse_unknown_keys
from api.keys import document_keys, key_id_of
from api.middleware import EdgeMiddleware
from api.openapi import ServiceDocument, document_answers
from api.parameters import ModelReference, Offset, PeriodBound, RequestId, StoredId
from attrition.outcome import OutcomeReport
from attrition.schema import EXAMPLE_EMPLOYEE, Employee, EmployeeId
from persistence.database.queries import MAX_PAGE_SIZE
from predictions.answers import (ExplainedPrediction, ExplainedPredictionBatch, Health, Metadata, ModelDetail,
                                 ModelList, OutcomesRecorded, TraceExplanation, TracePage, TraceRecord)
from predictions.layer import PredictionLayer
from api.traffic import label_traffic_by_route, route_templates
from settings import SERVICE_NAME, settings
from tuning import tune_worker, warm_up_worker

EXPLAIN = ("true: each answer adds its explanation (base value, output on the link scale, one contribution "
           "per input field, the largest first; base_value + sum = output).")
# One docs page, BentoML's at / with /docs.json: no second one from FastAPI.
http = FastAPI(title="Futurisys attrition — read endpoints", docs_url=None, redoc_url=None, openapi_url=None)


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
        tune_worker(settings.switch_interval_ms)
        self.predictions = PredictionLayer.open(settings)

    @bentoml.on_startup
    async def start_worker(self) -> None:
        """Start the trace writer, then import the model libraries before the worker reports ready."""
        await self.predictions.start()
        await asyncio.to_thread(warm_up_worker)

    @bentoml.on_shutdown
    async def stop(self) -> None:
        """Commit what is pending, then release the runners and the database pool."""
        await self.predictions.close()

    def __is_ready__(self) -> bool:
        return self.predictions.ready

    # ---- predictions (POST, BentoML) ----------------------------------------------------------

    @bentoml.api(route="/predict")
    async def predict(
        self,
        ctx: bentoml.Context,  # given by BentoML: the caller's request, with its verified key
        employee: Annotated[Employee | None, Field(
            description="The 30 employee fields. Omit it to score a stored employee by employee_id.",
            examples=[EXAMPLE_EMPLOYEE])] = None,
        employee_id: Annotated[EmployeeId | None, Field(
            description="A stored employee to score, or a tag for the trace of inline fields.")] = None,
        model: Annotated[ModelReference | None, Field(
            description="name, name:version or alias (champion); default model when omitted.",
            examples=["champion"])] = None,
        explain: Annotated[StrictBool, Field(description=EXPLAIN)] = False,
    ) -> ExplainedPrediction:
        """Score one employee: inline fields, or a stored employee by id."""
        return await self.predictions.predict(employee, employee_id, model, key_id_of(ctx.request.scope), explain)

    @bentoml.api(route="/predict_batch")
    async def predict_batch(
        self,
        ctx: bentoml.Context,  # given by BentoML: the caller's request, with its verified key
        employees: Annotated[list[Employee], Field(
            description=f"Employees to score, in order; at most {settings.max_batch_rows} rows.",
            examples=[[EXAMPLE_EMPLOYEE]])],
        model: Annotated[ModelReference | None, Field(
            description="name, name:version or alias; default model when omitted.")] = None,
        explain: Annotated[StrictBool, Field(description=EXPLAIN)] = False,
    ) -> ExplainedPredictionBatch:
        """Score many employees in one call; one answer per row, in input order."""
        return await self.predictions.predict_batch(employees, model, key_id_of(ctx.request.scope), explain)

    # ---- outcomes (POST, BentoML) -------------------------------------------------------------

    @bentoml.api(route="/outcomes")
    async def record_outcomes(
        self,
        outcomes: Annotated[list[OutcomeReport], Field(
            description=f"What happened to employees, at most {settings.max_batch_rows} items; all recorded, or "
                        "none. A correction is a new outcome: the latest known_at (then the latest recording) "
                        "counts.",
            examples=[[{"employee_id": 12, "left": True, "known_at": "2026-11-30"}]])],
    ) -> OutcomesRecorded:
        """Record whether employees left (imported employees, or ids that tag a trace)."""
        return await self.predictions.record_outcomes(outcomes)

    # ---- reads (GET, FastAPI) -----------------------------------------------------------------

    @http.get("/models", summary="Every model in the store")
    def list_models(self) -> ModelList:
        """Every model version: aliases, default flag, loaded, valid (and why not), threshold, metrics."""
        return self.predictions.models()

    @http.get("/models/{name}", summary="One model's card")
    def model_card(self, name: ModelReference) -> ModelDetail:
        """The card of ``name`` (name, name:version or alias), with its current health."""
        return self.predictions.model_card(name)

    @http.get("/health", summary="Health detail: readiness, default model, trace writer and journal")
    def health(self) -> Health:
        """What /readyz decides on, spelled out: writer state, journal backlog, quarantine, last commit."""
        return self.predictions.health()

    @http.get("/metadata", summary="Service, default model, feature schema, dataset")
    def metadata(self) -> Metadata:
        """Service name and version, default model, the 30-field schema, dataset summary, database backend."""
        return self.predictions.metadata()

    @http.get("/predictions/{request_id}", summary="The stored trace of one request")
    def prediction_trace(self, request: Request, request_id: RequestId) -> TraceRecord:  # type: ignore[valid-type]
        """Inputs, outputs, model, version and timings of one request, as stored."""
        return self.predictions.trace(request_id, key_id_of(request.scope))

    @http.get("/predictions/{request_id}/explanation", summary="Why one traced answer: its explanation")
    def prediction_explanation(self, request: Request, request_id: RequestId) -> TraceExplanation:
        """The explanation of a traced answer, recomputed from its stored inputs with the model version that
        answered (artifact sha256 checked); 410 when that version has left the store."""
        return self.predictions.trace_explanation(request_id, key_id_of(request.scope))

    @http.get("/predictions", summary="Traces over a period, an employee's or all")
    def prediction_traces(
        self,
        request: Request,
        employee_id: Annotated[StoredId | None, Query(description="Only this employee's traces.")] = None,
        start: Annotated[PeriodBound | None, Query(
            alias="from", description="ISO 8601, inclusive; 1970-01-01 to 9999-12-30 UTC (naive: UTC).")] = None,
        end: Annotated[PeriodBound | None, Query(
            alias="to", description="ISO 8601, exclusive; 1970-01-01 to 9999-12-30 UTC (naive: UTC).")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
        offset: Annotated[Offset, Query()] = 0,
    ) -> TracePage:
        """Traces ordered by reception time, paginated."""
        return self.predictions.traces(employee_id, start, end, limit, offset, key_id_of(request.scope))

    # ---- docs ---------------------------------------------------------------------------------

    @http.get("/docs.json", include_in_schema=False)
    def openapi_document(self) -> Response:
        """The OpenAPI document of the service (built once per worker, see ``OPENAPI_DOCUMENT``)."""
        return Response(OPENAPI_DOCUMENT.body(), media_type="application/json")


def build_openapi_document() -> dict:
    """BentoML's OpenAPI document of the service, with the API key schemes and the real error answers."""
    spec = document_keys(AttritionService.openapi_spec.asdict(), settings.metrics_open)
    return document_answers(spec, AttritionService.apis, settings.metrics_open)


OPENAPI_DOCUMENT = ServiceDocument(build_openapi_document)
"""``/docs.json``: nothing in it changes while the service runs."""

refuse_unknown_keys(AttritionService)
errors.install(AttritionService, http)
label_traffic_by_route([*(api.route for api in AttritionService.apis.values()), *route_templates(http.routes)])
AttritionService.add_asgi_middleware(EdgeMiddleware, keys=settings.api_key_entries, metrics_open=settings.metrics_open,
                                     recycle_every=settings.recycle_connections_every,
                                     max_batch_rows=settings.max_batch_rows)
