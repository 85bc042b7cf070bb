"""BentoML's request metrics are labelled by route template: unknown paths and trace ids add no series.

The names here are the ones ``api/traffic.py`` relies on: BentoML's middleware
class, where its app factory takes it from, and the metrics it counts. A
BentoML upgrade that changes one of them fails this module.
"""
from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry
from bentoml._internal.server.metrics.prometheus import PrometheusClient

from api.traffic import (BENTOML_METRIC_NAMES, UNKNOWN_ROUTE, RouteLabelledTrafficMetrics, RouteTemplates,
                         route_templates)
from service import AttritionService, http

BENTOML_NAMESPACE = "bentoml_service"
"""BentoML's default ``api_server.metrics.namespace``: its metrics are ``bentoml_service_request_total``..."""


def test_each_path_is_labelled_by_its_route_and_every_other_path_by_one_label():
    routes = RouteLabelledTrafficMetrics.routes
    assert routes.of("/predictions/0b7c6a9e-2f3e-4f1d-9d1e-6f1f2e3d4c5b") == "/predictions/{request_id}"
    assert routes.of("/predictions") == "/predictions" and routes.of("/predict") == "/predict"
    assert routes.of("/models/random_forest:v1") == "/models/{name}"
    assert routes.of("/static_content/swagger-ui.css") == "/static_content/{file}"
    assert {routes.of(p) for p in ("/wp-login.php", "/predictions/a/b", "/models/", "/.env", "/PREDICT")} \
        == {UNKNOWN_ROUTE}


def test_every_route_of_the_service_has_its_template():
    # FastAPI's own listing of the mounted app's routes (its OpenAPI paths) and BentoML's APIs.
    declared = {*http.openapi()["paths"], *(api.route for api in AttritionService.apis.values())}
    assert declared <= set(RouteLabelledTrafficMetrics.routes), declared - set(RouteLabelledTrafficMetrics.routes)
    assert "/docs.json" in route_templates(http.routes)


def test_bentoml_builds_the_service_app_with_the_route_labelled_middleware():
    from _bentoml_impl.server.app import ServiceAppFactory

    AttritionService.inject_config()
    middlewares = [m.cls for m in ServiceAppFactory(AttritionService, is_main=True).middlewares]
    assert RouteLabelledTrafficMetrics in middlewares
    assert not [m for m in middlewares if m is RouteLabelledTrafficMetrics.__mro__[1]], "BentoML's own is left in"


def test_bentoml_metric_names_are_kept_and_the_app_gets_the_real_path():
    seen: list[str] = []

    async def app(scope, receive, send):
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    client = PrometheusClient(multiproc=False)
    client._registry = CollectorRegistry()  # a registry of its own: the process's holds the service's metrics
    middleware = RouteLabelledTrafficMetrics(app, namespace=BENTOML_NAMESPACE)
    middleware.routes = RouteTemplates(["/predictions/{request_id}"])
    middleware._setup(metrics_client=client)

    async def request(path: str) -> None:
        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(_message):
            return None
        await middleware({"type": "http", "path": path, "method": "GET", "headers": []}, receive, send)

    paths = [f"/predictions/trace-{i}" for i in range(30)] + [f"/scan-{i}" for i in range(30)]
    for path in paths:
        asyncio.run(request(path))
    assert seen == paths
    families = {family.name: family for family in client.registry.collect()}
    for name in BENTOML_METRIC_NAMES:
        family = families[f"{BENTOML_NAMESPACE}_{name}".removesuffix("_total")]
        endpoints = {sample.labels["endpoint"] for sample in family.samples}
        assert endpoints == {"/predictions/{request_id}", UNKNOWN_ROUTE}, (name, endpoints)
    totals = {s.labels["endpoint"]: s.value for s in families[f"{BENTOML_NAMESPACE}_request"].samples
              if s.name.endswith("_total")}
    assert totals == {"/predictions/{request_id}": 30, UNKNOWN_ROUTE: 30}
