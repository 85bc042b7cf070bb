"""Why the model answered what it did, recomputed in the dashboard: one trace's waterfall, a version's drivers.

A trace is explained as ``GET /predictions/{id}/explanation`` explains it
(:mod:`registry.explanations`, built from the version's artifact and card):
the stored model version is loaded from ``models/`` through the trusted
loader, its artifact must have the sha256 the trace recorded, and the
recomputed output must give back the stored probability, as the audit's
reproduction requires. The same artifact, card and inputs give the same
numbers as the service.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from attrition.card import ModelCard
from attrition.schema import FEATURE_NAMES
from dashboard.audit import load_model, model_folder, read_card

if TYPE_CHECKING:
    from registry.explanations import Explanation, ModelExplainer

REPRODUCTION_TOLERANCE = 1e-6
"""How far the recomputed probability may be from the stored one (stored rounded to 6 decimals), as the service."""
WATERFALL_FIELDS = 12
"""Fields drawn one by one in the waterfall; the others are one step, "N other fields", their exact sum."""
SCALES = {"logit": "log-odds of leaving (logit scale)", "identity": "probability of leaving (identity scale)"}
SHORT_SCALES = {"logit": "log-odds", "identity": "probability"}


@dataclass(frozen=True)
class TraceExplanation:
    """The explanation of a stored trace, or why there is none."""

    explanation: Explanation | None
    verdict: str
    probability: float | None = None
    threshold: float | None = None


class NotExplained(Exception):
    """The model version cannot be loaded or explained here (the reason is the message)."""


@lru_cache(maxsize=16)
def _explainer(tag: str, path: str, sha256: str, card_json: str) -> ModelExplainer:
    from registry.explanations import build_explainer

    card = ModelCard.model_validate_json(card_json) if card_json else None
    return build_explainer(load_model(tag, path, sha256), card)


def version_explainer(models_dir: Path, name: str, version: str, sha256: str | None = None) -> ModelExplainer:
    """The explainer of ``name:version`` from its artifact (trusted, digest checked) and card (cached per digest).

    ``sha256``: the digest the artifact must have (a trace's); :class:`NotExplained` otherwise.
    """
    from registry.explanations import ExplanationUnsupported
    from attrition.card import ARTIFACT_FILE as ARTIFACT
    from registry.trust import sha256_of
    from registry.trust import UntrustedArtifact

    tag = f"{name}:{version}"
    artifact = model_folder(models_dir, name, version) / ARTIFACT
    if not artifact.is_file():
        raise NotExplained(f"the model version {tag} is not in {models_dir}")
    digest = sha256_of(artifact)
    if sha256 is not None and digest != sha256:
        raise NotExplained("the artifact's sha256 is not the one the trace recorded: this is not the model that "
                           "answered")
    card = read_card(models_dir, name, version)
    try:
        return _explainer(tag, str(artifact), digest, "" if card is None else card.model_dump_json())
    except UntrustedArtifact as exc:
        raise NotExplained(f"refused, never unpickled: {exc}") from None
    except ExplanationUnsupported as exc:
        raise NotExplained(f"{tag} cannot be explained exactly: {exc}") from None


def explain_trace(trace: Mapping[str, Any], models_dir: Path) -> TraceExplanation:
    """Recompute the explanation of ``trace`` with its stored model version, as the service's endpoint does."""
    stored = trace.get("probability")
    if stored is None or trace.get("inputs") is None:
        return TraceExplanation(None, "the trace holds no answer to explain (no model could serve it)")
    try:
        explainer = version_explainer(models_dir, trace["model_name"], trace["model_version"],
                                      trace.get("model_sha256"))
    except NotExplained as exc:
        return TraceExplanation(None, str(exc), stored, trace.get("threshold"))
    explained = explainer.explain([dict(trace["inputs"])])[0]
    if abs(explained.probability - float(stored)) > REPRODUCTION_TOLERANCE:
        return TraceExplanation(None, f"the model gives {explained.probability:.6f} for the stored inputs, the "
                                      f"trace stores {float(stored):.6f}", stored, trace.get("threshold"))
    return TraceExplanation(explained, "explained", float(stored), trace.get("threshold"))


def on_link_scale(probability: float, link: str) -> float:
    """A probability on the explanation's scale: its log-odds for a logit model (clipped off 0 and 1)."""
    if link != "logit":
        return float(probability)
    p = min(max(float(probability), 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def shown_value(value: Any) -> str:
    """A field's value beside its name (numbers as written, texts whole)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def waterfall_steps(explanation: Explanation, fields: int = WATERFALL_FIELDS) -> pd.DataFrame:
    """The waterfall's steps, top to bottom: the base value, each field's push, "N other fields", the output.

    Columns: ``step`` (label), ``order``, ``kind`` (``base``, ``up``, ``down``, ``others``, ``output``),
    ``start`` and ``end`` (on the link scale), ``contribution``. The fields are the largest |contribution|
    first; the others' step is their exact sum, so the steps end on the output.
    """
    # The base value and the output are levels, not pushes: they start and end where they stand.
    rows = [{"step": "base value (expected output)", "kind": "base", "start": explanation.base_value,
             "end": explanation.base_value, "contribution": explanation.base_value}]
    level = explanation.base_value
    shown, rest = explanation.contributions[:fields], explanation.contributions[fields:]
    for item in shown:
        rows.append({"step": f"{item.field} = {shown_value(item.value)}", "kind": "up" if item.contribution >= 0
                     else "down", "start": level, "end": level + item.contribution,
                     "contribution": item.contribution})
        level += item.contribution
    if rest:
        total = math.fsum(item.contribution for item in rest)
        rows.append({"step": f"{len(rest)} other fields", "kind": "others", "start": level, "end": level + total,
                     "contribution": total})
        level += total
    rows.append({"step": "output", "kind": "output", "start": explanation.output, "end": explanation.output,
                 "contribution": explanation.output})
    frame = pd.DataFrame(rows)
    frame["order"] = range(len(frame))
    return frame


def mean_abs_contributions(explainer: ModelExplainer, inputs: Sequence[Mapping[str, Any]]) -> pd.Series:
    """Mean |contribution| per field (schema order) over ``inputs``, on the explainer's link scale."""
    if not inputs:
        return pd.Series(np.zeros(len(FEATURE_NAMES)), index=list(FEATURE_NAMES))
    contributions, _ = explainer.field_contributions([dict(row) for row in inputs])
    return pd.Series(np.abs(contributions).mean(axis=0), index=list(FEATURE_NAMES))


def training_reference(card: ModelCard | None) -> pd.Series | None:
    """The card's mean |contribution| per field over its training rows, or ``None`` when the card lacks it."""
    reference = ((card.model_extra or {}).get("explanation_reference") or {}) if card is not None else {}
    means = reference.get("mean_abs_contribution")
    if not means:
        return None
    by_field = {item["field"]: float(item["mean_abs"]) for item in means}
    return pd.Series({field: by_field.get(field, 0.0) for field in FEATURE_NAMES})


def drivers_table(live: pd.Series, reference: pd.Series | None, rows: int, top: int) -> pd.DataFrame:
    """The ``top`` fields by live mean |contribution|, long form: ``field``, ``source``, ``mean_abs``."""
    order = live.sort_values(ascending=False, kind="stable").index[:top]
    frames = [pd.DataFrame({"field": order, "source": f"served ({rows:,} rows)",
                            "mean_abs": live[order].to_numpy()})]
    if reference is not None:
        frames.append(pd.DataFrame({"field": order, "source": "training (card)",
                                    "mean_abs": reference[order].to_numpy()}))
    return pd.concat(frames, ignore_index=True)
