"""The audit of one stored request: where its inputs stand in training, and whether it reproduces.

Reproducing a trace proves to an auditor that the record explains the answer:
the stored model version is loaded from ``models/``, its artifact must have the
sha256 the trace recorded, and re-scoring the stored inputs must give the
stored probability at the precision the service stores it (6 decimals).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from attrition.card import ARTIFACT_FILE, CARD_FILE, ModelCard
from attrition.schema import FEATURES, NEGATIVE_LABEL, POSITIVE_LABEL
from dashboard.drift import outside_reference, reference_percentile

PROBABILITY_DECIMALS = 6
"""The service rounds the probability it answers, and stores, to 6 decimals."""


def model_folder(models_dir: Path, name: str, version: str) -> Path:
    """``models/<name>/<version>/``."""
    return Path(models_dir) / name / version


def read_card(models_dir: Path, name: str, version: str) -> ModelCard | None:
    """The card of a model version, or ``None`` when ``models/`` does not hold it."""
    path = model_folder(models_dir, name, version) / CARD_FILE
    if not path.is_file():
        return None
    return ModelCard.model_validate(json.loads(path.read_text(encoding="utf-8")))


def all_cards(models_dir: Path) -> list[ModelCard]:
    """Every model card of ``models/``, in name/version order."""
    return [ModelCard.model_validate(json.loads(p.read_text(encoding="utf-8")))
            for p in sorted(Path(models_dir).glob(f"*/*/{CARD_FILE}"))]


def input_standing(inputs: Mapping[str, Any], card: ModelCard | None) -> pd.DataFrame:
    """Each of the 30 inputs with where it stands in the training reference of ``card``.

    Numbers: their percentile among training values; categories: the share
    of training rows with that category; ``outside_training`` when training
    never saw the value (outside its range, or a category of no share).
    """
    references = card.reference_distributions if card is not None else {}
    rows = []
    for spec in FEATURES:
        value = inputs.get(spec.name)
        reference = references.get(spec.name)
        standing, outside = "", False
        if reference is not None and value is not None:
            outside = outside_reference(value, reference)
            if reference.get("kind") == "categorical":
                standing = f"{100 * float(reference['shares'].get(value, 0.0)):.1f} % of training rows"
            else:
                standing = f"percentile {reference_percentile(float(value), reference):.0f}"
        rows.append({"input": spec.name, "value": str(value), "in training": standing,
                     "outside training": outside})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Reproduction:
    """What re-scoring a stored trace showed."""

    matches: bool
    verdict: str
    stored_probability: float | None
    reproduced_probability: float | None
    stored_sha256: str | None
    artifact_sha256: str | None


@lru_cache(maxsize=16)
def load_model(tag: str, path: str, sha256: str) -> Any:
    """The unpickled artifact at ``path``, only if the trusted manifest pins it (cached per path and digest).

    Shared by the audit's reproduction and the Comparison page's re-scoring.
    """
    from registry.trust import load_artifact

    return load_artifact(tag, Path(path))


def reproduce(trace: Mapping[str, Any], models_dir: Path) -> Reproduction:
    """Re-score the stored inputs of ``trace`` with its stored model version and compare."""
    from registry.runner import employee_frame
    from registry.trust import sha256_of

    stored = trace.get("probability")
    stored_sha = trace.get("model_sha256")
    artifact = model_folder(models_dir, trace["model_name"], trace["model_version"]) / ARTIFACT_FILE
    if not artifact.is_file():
        return Reproduction(False, f"the model version {trace['model_name']}:{trace['model_version']} is not in "
                                   f"{models_dir}", stored, None, stored_sha, None)
    digest = sha256_of(artifact)
    if digest != stored_sha:
        return Reproduction(False, "the artifact's sha256 is not the one the trace recorded: this is not the "
                                   "model that answered", stored, None, stored_sha, digest)
    if stored is None or trace.get("inputs") is None:
        return Reproduction(False, "the trace holds no probability to compare (an error trace)", stored, None,
                            stored_sha, digest)
    from registry.trust import UntrustedArtifact

    try:
        model = load_model(f"{trace['model_name']}:{trace['model_version']}", str(artifact), digest)
    except UntrustedArtifact as exc:
        return Reproduction(False, f"refused, never unpickled: {exc}", stored, None, stored_sha, digest)
    reproduced = round(float(model.predict_proba(employee_frame([trace["inputs"]]))[:, 1][0]), PROBABILITY_DECIMALS)
    if reproduced == round(float(stored), PROBABILITY_DECIMALS):
        return Reproduction(True, f"reproduced: {reproduced:.{PROBABILITY_DECIMALS}f} is the stored probability",
                            stored, reproduced, stored_sha, digest)
    return Reproduction(False, f"mismatch: the model gives {reproduced:.{PROBABILITY_DECIMALS}f}, the trace "
                               f"stores {float(stored):.{PROBABILITY_DECIMALS}f}", stored, reproduced, stored_sha,
                        digest)


def trace_json(trace: Mapping[str, Any]) -> str:
    """One stored trace as a JSON document (times in ISO 8601)."""
    def encode(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        return str(value)

    return json.dumps(dict(trace), ensure_ascii=False, indent=2, default=encode)


def rows_csv(frame: pd.DataFrame) -> bytes:
    """A frame of traces as CSV bytes (UTF-8)."""
    return frame.to_csv(index=False).encode("utf-8")


LISTED_NAMES = {"received_at": "received", "employee_id": "employee id", "model": "model", "label": "label",
                "probability": "probability", "threshold": "threshold", "status": "status", "fallback": "fallback",
                "endpoint": "endpoint", "total_ms": "total ms", "request_id": "request id"}
"""The listed traces' columns as an analyst reads them: when, who, which model, what answer; ids last."""


def listed_table(rows: pd.DataFrame, zone: str) -> pd.DataFrame:
    """Trace rows (``queries.prediction_rows``) in the analyst's order and words, times in ``zone`` (24-hour)."""
    table = pd.DataFrame(index=rows.index)
    received = pd.to_datetime(rows["received_at"], utc=True)
    table["received"] = received.dt.tz_convert(zone).dt.strftime("%Y-%m-%d %H:%M:%S") + f" {zone}"
    table["employee_id"] = rows["employee_id"].astype("Int64")
    table["model"] = rows["model_name"] + ":" + rows["model_version"]
    table["label"] = rows["prediction"].map({1: POSITIVE_LABEL, 0: NEGATIVE_LABEL}).fillna("none (error)")
    for column in ("probability", "threshold", "status", "fallback", "endpoint", "total_ms", "request_id"):
        table[column] = rows[column]
    return table.rename(columns=LISTED_NAMES)
