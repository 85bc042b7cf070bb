"""The explanations of one worker: built lazily per model version, for inline answers and stored traces.

A model version's explainer is built the first time an answer of that
version is to be explained, from the model its runner has loaded and
self-checked (:mod:`registry.explanations`); a request that does not ask
``"explain": true`` builds none, imports none of it, and costs nothing more.
"""
from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any, Sequence

from attrition.errors import ExplanationUnavailable, ModelVersionGone
from predictions.answers import Contribution, Explanation, TraceExplanation
from registry.catalogue import ModelCatalogue, ModelEntry
from registry.runner import ModelUnavailable, RunnerPool

if TYPE_CHECKING:
    from registry.explanations import Explanation as FieldExplanation
    from registry.explanations import ModelExplainer

INLINE_ROWS = 16
"""Rows a cheap explainer explains in the event loop itself (about half a millisecond)."""
REPRODUCTION_TOLERANCE = 1e-6
"""How far the recomputed probability may be from the stored one (stored rounded to 6 decimals)."""


def explanation_answer(explained: FieldExplanation) -> Explanation:
    """The typed, validated answer of one explanation."""
    return Explanation(link=explained.link, base_value=explained.base_value, output=explained.output,
                       contributions=[Contribution(field=c.field, value=c.value, contribution=c.contribution)
                                      for c in explained.contributions])


def rendered_explanations(explainer: ModelExplainer, rows: Sequence[dict[str, Any]]) -> list[Explanation]:
    """The explanations of ``rows`` for an answer that is rendered, not serialised by pydantic.

    The answers are rendered by orjson from their fields (``api.responses``):
    each contribution is left a plain ``{"field", "value", "contribution"}``
    object, the JSON of a :class:`Contribution`, which costs a tenth of a
    pydantic object per contribution in a batch of explained rows.
    """
    link, base = explainer.link, explainer.base_value
    return [Explanation.model_construct(link=link, base_value=base, output=output, contributions=[
        {"field": field, "value": value, "contribution": contribution} for field, value, contribution in ranked])
        for output, ranked in explainer.ranked(rows)]


class ExplainerPool:
    """The explainers of one worker, one per model version, built on first use (thread-safe)."""

    def __init__(self, runners: RunnerPool) -> None:
        self.runners = runners
        self._explainers: dict[str, ModelExplainer] = {}
        self._refusals: dict[str, str] = {}
        self._lock = threading.Lock()

    def explainer(self, entry: ModelEntry) -> ModelExplainer:
        """The explainer of ``entry``; :class:`ExplanationUnavailable` when its model cannot be loaded or explained."""
        explainer = self._explainers.get(entry.tag)
        if explainer is not None:
            return explainer
        with self._lock:
            if entry.tag not in self._explainers and entry.tag not in self._refusals:
                from registry.explanations import ExplanationUnsupported, build_explainer

                try:
                    model = self.runners.runner(entry).load()
                    self._explainers[entry.tag] = build_explainer(model, entry.card)
                except ModelUnavailable as exc:
                    raise ExplanationUnavailable(f"the model {entry.tag} cannot be loaded: {exc}", "model") from exc
                except ExplanationUnsupported as exc:
                    self._refusals[entry.tag] = str(exc)
        if entry.tag in self._refusals:
            raise ExplanationUnavailable(f"the model {entry.tag} cannot be explained exactly: "
                                         f"{self._refusals[entry.tag]}", "explain")
        return self._explainers[entry.tag]

    def explain(self, entry: ModelEntry, rows: Sequence[dict[str, Any]]) -> list[Explanation]:
        """The explanations of ``rows`` by ``entry``, ready to render (CPU work: call it from a thread)."""
        return rendered_explanations(self.explainer(entry), rows)

    async def explain_soon(self, entry: ModelEntry, rows: Sequence[dict[str, Any]]) -> list[Explanation]:
        """:meth:`explain` from the event loop: in a thread, unless the explainer is built and a few rows are cheap.

        A linear model explains a row in tens of microseconds, less than the hop to a thread.
        """
        explainer = self._explainers.get(entry.tag)
        if explainer is not None and explainer.cheap and len(rows) <= INLINE_ROWS:
            return rendered_explanations(explainer, rows)
        return await asyncio.to_thread(self.explain, entry, rows)

    def explain_trace(self, catalogue: ModelCatalogue, record: dict[str, Any]) -> TraceExplanation:
        """Recompute the explanation of a stored trace with the model version that answered it.

        The store's artifact must be the one the trace names (its sha256), and
        the recomputed output must give back the stored probability.
        """
        outputs = record["outputs"]
        if outputs.get("probability") is None or record.get("inputs") is None:
            raise ExplanationUnavailable("the trace holds no answer to explain (no model could serve it)")
        tag = f"{record['model']}:{record['model_version']}"
        entry = catalogue.entry(tag)
        if entry is None or not entry.artifact.is_file():
            raise ModelVersionGone(tag)
        # The catalogue checked the store's artifact against its card when it was built, and the runner unpickles
        # only pinned bytes: the card's digest is the artifact's, without reading the file again on each request.
        if entry.card is not None:
            digest = entry.card.artifact_sha256
        else:
            from registry.store import sha256_of

            digest = sha256_of(entry.artifact)
        if digest != record.get("model_sha256"):
            raise ExplanationUnavailable(f"the artifact of {tag} in the store (sha256 {digest[:12]}…) is not the "
                                         "one that answered this request", "model_sha256")
        explained = self.explainer(entry).explain([record["inputs"]])[0]
        if abs(explained.probability - outputs["probability"]) > REPRODUCTION_TOLERANCE:
            raise ExplanationUnavailable(f"{tag} gives {explained.probability:.6f} for the stored inputs, the trace "
                                         f"stores {outputs['probability']:.6f}", "probability")
        return TraceExplanation(request_id=record["request_id"], model=record["model"],
                                model_version=record["model_version"], model_sha256=digest,
                                probability=outputs["probability"], threshold=outputs["threshold"],
                                explanation=explanation_answer(explained))
