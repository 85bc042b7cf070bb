"""BentoML's request metrics, labelled by route template: ``/metrics`` stays bounded whatever paths clients send.

BentoML counts every request in ``bentoml_service_request_total``,
``bentoml_service_request_duration_seconds`` and
``bentoml_service_request_in_progress`` (its ``RunnerTrafficMetricsMiddleware``)
with the raw path as the ``endpoint`` label: each trace id read and each
unknown path a scanner tries becomes series of its own, for as long as the
process lives. :class:`RouteLabelledTrafficMetrics` is that middleware, with
the metric names, labels and buckets BentoML gives them, shown the route
template instead (``/predictions/{request_id}``; every path that is no route
as :data:`UNKNOWN_ROUTE`); the routes themselves still get the real path.

:func:`label_traffic_by_route` puts it in BentoML's place. BentoML imports
the middleware by its name from ``bentoml._internal.server.http.instruments``
each time it builds a service's app, so the class is replaced there, once,
before the first app is built. ``tests/api/test_traffic.py`` pins the names
this relies on: after a BentoML upgrade that moves or renames them, that test
fails, and this module's import fails loudly rather than let labels grow.
"""
from __future__ import annotations

import re
from typing import Any, Awaitable, Callable, Iterable

from bentoml._internal.server.http import instruments
from starlette.routing import compile_path

BENTOML_TRAFFIC_MIDDLEWARE = instruments.RunnerTrafficMetricsMiddleware
"""BentoML's own middleware (taken before any replacement), whose metrics and bookkeeping are kept."""
BENTOML_METRIC_NAMES = ("request_total", "request_duration_seconds", "request_in_progress")
"""BentoML's request metrics with an ``endpoint`` label (after its namespace, ``bentoml_service_``)."""

BUILTIN_ROUTES = ("/", "/docs.json", "/schema.json", "/metrics", "/livez", "/healthz", "/readyz",
                  "/static_content/{file:path}")
"""Routes BentoML serves itself on the main service (the docs page, its spec and files, the probes)."""
UNKNOWN_ROUTE = "/{other}"
"""The one label of every path that is no route (as in the access log, :func:`api.logs.route_of`)."""

REAL_PATH = "futurisys.real_path"
"""The scope entry that carries the real path past BentoML's middleware while it sees the template."""

Scope = dict[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]


class RouteTemplates:
    """The route templates of a service, and the one a request path belongs to."""

    def __init__(self, templates: Iterable[str]) -> None:
        """Templates as the routers declare them: ``/predict``, ``/models/{name}``, ``/static_content/{file:path}``."""
        self.exact: set[str] = set()
        self.parametrised: list[tuple[re.Pattern[str], str]] = []
        for template in dict.fromkeys(templates):
            regex, shown, _convertors = compile_path(template)
            if "{" in template:
                self.parametrised.append((regex, shown))
            else:
                self.exact.add(template)

    def of(self, path: str) -> str:
        """The template ``path`` matches (without its convertor: ``/static_content/{file}``), or UNKNOWN_ROUTE."""
        if path in self.exact:
            return path
        for regex, shown in self.parametrised:
            if regex.match(path):
                return shown
        return UNKNOWN_ROUTE

    def __iter__(self):
        """Every template, as shown in labels."""
        return iter([*sorted(self.exact), *(shown for _regex, shown in self.parametrised)])


class RouteLabelledTrafficMetrics(BENTOML_TRAFFIC_MIDDLEWARE):  # type: ignore[misc, valid-type]
    """BentoML's traffic metrics middleware, labelling each request by its route template."""

    routes = RouteTemplates(BUILTIN_ROUTES)
    """The service's templates (set by :func:`label_traffic_by_route`)."""

    def __init__(self, app: App, **options: Any) -> None:
        """BentoML's middleware in front of ``app``, which is handed each request with its real path."""
        super().__init__(_with_real_path(app), **options)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Count the request under its template; the app below answers the real path."""
        if scope["type"] in ("http", "websocket"):
            # A copy: the server's own scope keeps its path, whatever BentoML reads from this one.
            scope = {**scope, "path": self.routes.of(scope["path"]), REAL_PATH: scope["path"]}
        await super().__call__(scope, receive, send)


def _with_real_path(app: App) -> App:
    """``app``, given back the path that :class:`RouteLabelledTrafficMetrics` replaced by its template."""
    async def restored(scope: Scope, receive: Any, send: Any) -> None:
        if REAL_PATH in scope:
            scope["path"] = scope.pop(REAL_PATH)
        await app(scope, receive, send)
    return restored


def route_templates(routes: Iterable[Any], prefix: str = "") -> list[str]:
    """The path templates of a Starlette or FastAPI app's ``routes``, those of included routers and mounts too.

    FastAPI keeps a router included into an app (as BentoML's ``asgi_app`` does
    with a service's routes) as one entry without a path of its own: its routes
    are those of its ``original_router``, under its include prefix.
    """
    templates: list[str] = []
    for route in routes:
        path = getattr(route, "path", None)
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            templates += route_templates(included.routes, prefix + str(getattr(context, "prefix", "") or ""))
        elif isinstance(path, str) and getattr(route, "routes", None):
            templates += route_templates(route.routes, prefix + path)  # a mount
        elif isinstance(path, str):
            templates.append(prefix + path)
    return templates


def label_traffic_by_route(templates: Iterable[str]) -> None:
    """Make BentoML label its request metrics by these route templates (plus its own routes), in this process.

    Call it before BentoML builds the service's app (``service.py`` does, at import).
    """
    RouteLabelledTrafficMetrics.routes = RouteTemplates([*BUILTIN_ROUTES, *templates])
    instruments.RunnerTrafficMetricsMiddleware = RouteLabelledTrafficMetrics
