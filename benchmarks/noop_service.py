"""The benchmark's ceiling: a BentoML service configured like ours whose ``/predict`` does nothing.

Same framework, same worker count and access-log setting (from ``settings``),
same request body parsed into a ``dict`` (no field validation, no model, no
trace), an empty answer. What it serves per second is what BentoML's HTTP
layer allows on this machine; the real service is measured against it.

    FUTURISYS_WORKERS=2 FUTURISYS_ACCESS_LOG=false bentoml serve benchmarks.noop_service:NoopService
"""
from __future__ import annotations

from typing import Any

import bentoml
from starlette.responses import JSONResponse

from settings import settings


@bentoml.service(
    name="futurisys-noop",
    workers=settings.workers,
    traffic={"timeout": settings.request_timeout_s},
    logging={"access": {"enabled": settings.access_log}},
)
class NoopService:
    """Accepts the prediction body and answers ``{}``."""

    @bentoml.api(route="/predict")
    async def predict(self, employee: dict[str, Any] | None = None, model: str | None = None) -> dict:
        """Do nothing with the body; answer an empty object (a response object, as the service does)."""
        return JSONResponse({})
