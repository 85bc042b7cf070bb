"""Import of the versioned artifacts in ``models/`` into BentoML's local model store.

``models/<name>/<version>/{model.joblib,card.json}`` becomes the store model
``name:version`` (files copied, the card as metadata). The import is
idempotent and runs under a file lock, because every BentoML worker process
runs it at start. A version that is incomplete, unreadable or not pinned by
the trusted manifest (:mod:`registry.trust`) is refused and reported, never
imported, and never stops the import of the others.
"""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import bentoml
from bentoml.exceptions import NotFound
from filelock import FileLock
from pydantic import ValidationError

from attrition.card import ARTIFACT_FILE as ARTIFACT
from attrition.card import CARD_FILE as CARD
from attrition.card import ModelCard
from registry.trust import TrustedManifest, sha256_of
from settings import SERVICE_NAME

logger = logging.getLogger(__name__)

PROJECT_LABEL = "project"
PROJECT = SERVICE_NAME
"""The value of the ``project`` label that marks this service's models in a shared store."""


@dataclass(frozen=True)
class Refusal:
    """A version folder of ``models/`` that was not imported, and why (listed invalid by the catalogue)."""

    tag: str
    folder: Path
    reason: str
    card: ModelCard | None = None


@dataclass(frozen=True)
class ImportReport:
    """What one import did: tags imported now, tags already in the store, versions refused."""

    imported: tuple[str, ...]
    present: tuple[str, ...]
    refused: tuple[Refusal, ...] = ()

    @property
    def refused_tags(self) -> tuple[str, ...]:
        """The ``name:version`` of each refused folder."""
        return tuple(refusal.tag for refusal in self.refused)


def artifact_versions(models_dir: Path) -> list[Path]:
    """Every ``models/<name>/<version>/`` folder, complete or not, in name/version order (hidden names skipped)."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    return sorted(version for model in models_dir.iterdir() if model.is_dir() and not model.name.startswith(".")
                  for version in model.iterdir() if version.is_dir() and not version.name.startswith("."))


def store_home() -> Path:
    """The BentoML home in force (``BENTOML_HOME``, default ``~/bentoml``)."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    return Path(BentoMLContainer.bentoml_home.get())


class UnreadableCard(ValueError):
    """A card that is missing, not JSON, or not a valid :class:`~attrition.card.ModelCard`."""


def read_card(folder: Path) -> ModelCard:
    """The card of a version folder; :class:`UnreadableCard` naming what is wrong (never its values)."""
    path = folder / CARD
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise UnreadableCard(f"no {CARD}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnreadableCard(f"{CARD} is not readable JSON: {exc.__class__.__name__}") from None
    try:
        return ModelCard.model_validate(document)
    except ValidationError as exc:
        fields = sorted({".".join(map(str, error["loc"])) or "(card)" for error in exc.errors()})
        raise UnreadableCard(f"{CARD} fails validation: field(s) {', '.join(fields)}") from None


def check_version(folder: Path, tag: str, manifest: TrustedManifest) -> tuple[ModelCard | None, str | None]:
    """The card of a version folder and, when it must not be served, why (``None``: importable).

    Reads files and digests only: nothing is unpickled here.
    """
    try:
        card = read_card(folder)
    except UnreadableCard as exc:
        missing_artifact = "" if (folder / ARTIFACT).is_file() else f"; no {ARTIFACT}"
        return None, f"{exc}{missing_artifact}"
    if not (folder / ARTIFACT).is_file():
        return card, f"no {ARTIFACT}"
    digest = sha256_of(folder / ARTIFACT)
    if digest != card.artifact_sha256:
        return card, f"{ARTIFACT} does not match the card's sha256"
    return card, manifest.refusal(tag, digest)


def import_models(models_dir: str | Path, manifest: TrustedManifest | None = None) -> ImportReport:
    """Import every version of ``models_dir`` missing from the BentoML store, if it is complete and trusted.

    A version already in the store is left untouched (versions are immutable).
    A folder without its card or artifact, with a card that does not parse or
    validate, an artifact that does not match its card, or one the trusted
    manifest (``manifest``, default the one in force) does not pin, is refused:
    logged, reported, not imported. One bad folder never stops the others.
    """
    models_dir = Path(models_dir)
    manifest = manifest if manifest is not None else TrustedManifest.read()
    home = store_home()
    home.mkdir(parents=True, exist_ok=True)
    imported: list[str] = []
    present: list[str] = []
    refused: list[Refusal] = []
    with FileLock(str(home / ".futurisys-import.lock")):
        for folder in artifact_versions(models_dir):
            tag = f"{folder.parent.name}:{folder.name}"
            card = None
            try:
                try:
                    bentoml.models.get(tag)
                    present.append(tag)
                    continue
                except NotFound:
                    pass
                card, reason = check_version(folder, tag, manifest)
                if reason is None:
                    assert card is not None
                    _copy_into_store(tag, folder, card)
                    imported.append(tag)
                    logger.info("Imported %s into the model store", tag)
                    continue
            except Exception as exc:  # a folder the store refuses (a bad tag, a read error) is one refusal
                reason = f"cannot be imported: {exc.__class__.__name__}"
            logger.error("Refusing model version %s (%s): %s", tag, folder, reason)
            refused.append(Refusal(tag, folder, reason, card))
    return ImportReport(tuple(imported), tuple(present), tuple(refused))


def _copy_into_store(tag: str, folder: Path, card: ModelCard) -> None:
    # Aliases are not labels: store models are immutable, aliases move (models/aliases.json).
    labels = {PROJECT_LABEL: PROJECT, "estimator": card.estimator}
    # BentoML metadata holds scalars only; the full card travels as card.json in the model folder.
    metadata = {"threshold": card.threshold, "estimator": card.estimator, "created_at": card.created_at,
                "artifact_sha256": card.artifact_sha256, "data_fingerprint": card.data_fingerprint}
    with bentoml.models.create(tag, labels=labels, metadata=metadata) as model:
        shutil.copyfile(folder / ARTIFACT, model.path_of(ARTIFACT))
        shutil.copyfile(folder / CARD, model.path_of(CARD))
