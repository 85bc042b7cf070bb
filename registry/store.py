"""Import of the versioned artifacts in ``models/`` into BentoML's local model store.

``models/<name>/<version>/{model.joblib,card.json}`` becomes the store model
``name:version`` (files copied, the card as metadata). The import is
idempotent and runs under a file lock, because every BentoML worker process
runs it at start.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import bentoml
from bentoml.exceptions import NotFound
from filelock import FileLock

from attrition.card import ARTIFACT_FILE as ARTIFACT
from attrition.card import CARD_FILE as CARD
from attrition.card import ModelCard
from settings import SERVICE_NAME

logger = logging.getLogger(__name__)

PROJECT_LABEL = "project"
PROJECT = SERVICE_NAME
"""The value of the ``project`` label that marks this service's models in a shared store."""


@dataclass(frozen=True)
class ImportReport:
    """What one import did: tags imported now, tags already in the store, artifacts refused."""

    imported: tuple[str, ...]
    present: tuple[str, ...]
    refused: tuple[str, ...]


def sha256_of(path: Path) -> str:
    """The sha256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def artifact_versions(models_dir: Path) -> list[Path]:
    """Every ``models/<name>/<version>/`` folder holding a card, in name/version order."""
    return sorted(p.parent for p in Path(models_dir).glob(f"*/*/{CARD}"))


def store_home() -> Path:
    """The BentoML home in force (``BENTOML_HOME``, default ``~/bentoml``)."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    return Path(BentoMLContainer.bentoml_home.get())


def import_models(models_dir: str | Path) -> ImportReport:
    """Import every version of ``models_dir`` missing from the BentoML store.

    A version already in the store is left untouched (versions are immutable).
    A version whose artifact does not match its card's sha256 is refused and
    reported, not imported.
    """
    models_dir = Path(models_dir)
    home = store_home()
    home.mkdir(parents=True, exist_ok=True)
    imported, present, refused = [], [], []
    with FileLock(str(home / ".futurisys-import.lock")):
        for folder in artifact_versions(models_dir):
            tag = f"{folder.parent.name}:{folder.name}"
            try:
                bentoml.models.get(tag)
                present.append(tag)
                continue
            except NotFound:
                pass
            card_data = json.loads((folder / CARD).read_text(encoding="utf-8"))
            card = ModelCard.model_validate(card_data)
            if sha256_of(folder / ARTIFACT) != card.artifact_sha256:
                logger.error("Refusing %s: %s does not match the card's sha256", tag, folder / ARTIFACT)
                refused.append(tag)
                continue
            # Aliases are not labels: store models are immutable, aliases move (models/aliases.json).
            labels = {PROJECT_LABEL: PROJECT, "estimator": card.estimator}
            # BentoML metadata holds scalars only; the full card travels as card.json in the model folder.
            metadata = {"threshold": card.threshold, "estimator": card.estimator, "created_at": card.created_at,
                        "artifact_sha256": card.artifact_sha256, "data_fingerprint": card.data_fingerprint}
            with bentoml.models.create(tag, labels=labels, metadata=metadata) as model:
                shutil.copyfile(folder / ARTIFACT, model.path_of(ARTIFACT))
                shutil.copyfile(folder / CARD, model.path_of(CARD))
            imported.append(tag)
            logger.info("Imported %s into the model store", tag)
    return ImportReport(tuple(imported), tuple(present), tuple(refused))
