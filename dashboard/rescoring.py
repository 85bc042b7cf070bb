"""Re-scoring traced inputs with every model version of ``models/``: the same traffic, every model.

Each version's artifact is unpickled only through the trusted loader
(``registry.trust.load_artifact``: its sha256 must be pinned), as the audit's
reproduction does; a refused version is reported, never loaded.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from attrition.card import ModelCard
from dashboard.audit import PROBABILITY_DECIMALS, load_model, model_folder


@dataclass(frozen=True)
class Rescored:
    """One model version's answers on the re-scored inputs (or why it could not give them)."""

    model: str
    threshold: float
    probabilities: np.ndarray | None
    refused: str | None = None

    @property
    def predictions(self) -> np.ndarray | None:
        """0/1 at the version's own threshold, as the service would have answered."""
        return None if self.probabilities is None else (self.probabilities >= self.threshold).astype(int)


def rescore(inputs: Sequence[dict[str, Any]], cards: Sequence[ModelCard], models_dir: Path) -> list[Rescored]:
    """Every version of ``cards`` scores ``inputs`` (probabilities rounded as the service stores them)."""
    from registry.runner import employee_frame
    from attrition.card import ARTIFACT_FILE as ARTIFACT
    from registry.trust import sha256_of
    from registry.trust import UntrustedArtifact

    frame = employee_frame(list(inputs)) if inputs else None
    answers = []
    for card in cards:
        artifact = model_folder(models_dir, card.name, card.version) / ARTIFACT
        if not artifact.is_file():
            answers.append(Rescored(card.tag, card.threshold, None, f"no artifact in {models_dir}"))
            continue
        try:
            model = load_model(card.tag, str(artifact), sha256_of(artifact))
        except UntrustedArtifact as exc:
            answers.append(Rescored(card.tag, card.threshold, None, f"refused, never unpickled: {exc}"))
            continue
        probabilities = (np.round(model.predict_proba(frame)[:, 1].astype(float), PROBABILITY_DECIMALS)
                         if frame is not None else np.array([]))
        answers.append(Rescored(card.tag, card.threshold, probabilities))
    return answers
