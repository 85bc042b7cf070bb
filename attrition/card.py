"""The model card: everything known about one trained model version, never rows.

Written by ``training/`` as ``models/<name>/<version>/card.json`` next to
``model.joblib``; read by ``registry/`` (self-check, threshold, metadata) and
by the dashboard (reference distributions for drift).
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ARTIFACT_FILE = "model.joblib"
"""The trained pipeline of a model version, beside its card."""
CARD_FILE = "card.json"
"""The card of a model version: ``models/<name>/<version>/card.json``."""


class SelfCheck(BaseModel):
    """A synthetic employee and the probability the model gave it at training time."""

    employee: dict[str, Any]
    probability: float = Field(ge=0.0, le=1.0)


class ModelCard(BaseModel):
    """Metadata of one immutable model version."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    name: str
    version: str
    created_at: str
    estimator: str
    hyperparameters: dict[str, Any]
    threshold: float = Field(ge=0.0, le=1.0)
    target: str
    labels: dict[str, str]  # {"0": "Non", "1": "Oui"}
    features: list[dict[str, Any]]
    metrics: dict[str, Any]
    reference_distributions: dict[str, Any]
    data_fingerprint: str
    artifact_sha256: str
    versions: dict[str, str]
    self_check: SelfCheck
    # Optional, written by training/ since the first models; older cards may lack them.
    decision_rule: str | None = None  # how probability and threshold make the 0/1 prediction
    preprocessing: dict[str, Any] | None = None  # the pipeline's encoding of the 30 raw fields
    training: dict[str, Any] | None = None  # what the artifact was fit on, how it was evaluated

    @property
    def tag(self) -> str:
        """``name:version``, as BentoML names the model in its store."""
        return f"{self.name}:{self.version}"
