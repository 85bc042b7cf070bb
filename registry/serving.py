"""Serving a request's rows: resolve the model, infer through its runner, fall back visibly.

A model that cannot serve (artifact broken, self-check failed, prediction
error) hands its rows to the default model; the answer says so with
``fallback: true`` and the failure shows in ``/models`` and ``/metrics``.
If the default itself cannot serve, :class:`DefaultModelUnavailable` (503).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from prometheus_client import Counter

from attrition.errors import DefaultModelUnavailable
from attrition.schema import NEGATIVE_LABEL, POSITIVE_LABEL
from registry.catalogue import ModelEntry
from registry.runner import ModelUnavailable, RunnerPool

PREDICTIONS = Counter(
    "futurisys_predictions_total", "Predictions served, by the model that served them and the outcome.",
    ["model", "version", "outcome"])
FALLBACKS = Counter(
    "futurisys_fallbacks_total", "Requests served by the default model because the requested one is invalid.",
    ["requested_model", "requested_version"])


__all__ = ["DefaultModelUnavailable", "Served", "serve_rows"]


@dataclass
class Served:
    """The outcome of scoring a group of rows."""

    requested: ModelEntry
    model: ModelEntry
    fallback: bool
    error: str | None
    probabilities: np.ndarray
    inference_ms: float

    @property
    def threshold(self) -> float:
        """The decision threshold of the model that served."""
        assert self.model.card is not None
        return self.model.card.threshold


async def serve_rows(pool: RunnerPool, requested: ModelEntry, rows: Sequence[dict[str, Any]]) -> Served:
    """Score ``rows`` with ``requested``, or with the default model if ``requested`` cannot serve."""
    error = None
    if requested.valid:
        try:
            scores = await pool.runner(requested).predict(rows)
            served = Served(requested, requested, False, None, scores.probabilities, scores.inference_ms)
            _count(served)
            return served
        except ModelUnavailable as exc:
            error = str(exc)
    else:
        error = requested.invalid_reason
    default = pool.catalogue.default
    if default is requested:
        raise DefaultModelUnavailable(f"the default model {default.tag} is invalid: {error}")
    FALLBACKS.labels(requested.name, requested.version).inc()
    try:
        scores = await pool.runner(default).predict(rows)
    except ModelUnavailable as exc:
        raise DefaultModelUnavailable(f"the default model {default.tag} is invalid: {exc}") from exc
    served = Served(requested, default, True, f"{requested.tag} is invalid: {error}",
                    scores.probabilities, scores.inference_ms)
    _count(served)
    return served


def _count(served: Served) -> None:
    threshold = served.threshold
    positives = int(np.count_nonzero(served.probabilities >= threshold))
    counter = PREDICTIONS.labels(served.model.name, served.model.version, POSITIVE_LABEL)
    if positives:
        counter.inc(positives)
    negatives = len(served.probabilities) - positives
    if negatives:
        PREDICTIONS.labels(served.model.name, served.model.version, NEGATIVE_LABEL).inc(negatives)
