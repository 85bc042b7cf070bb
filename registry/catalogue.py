"""The model catalogue: what is in the store, how a request's ``model`` resolves, the default.

``model`` accepts ``name`` (its latest version), ``name:version`` or an alias
(``champion``). The default is ``FUTURISYS_DEFAULT_MODEL`` when set, else the
champion.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bentoml
from pydantic import ValidationError

from attrition.card import ModelCard
from attrition.errors import UnknownModel
from registry.aliases import CHAMPION, read_aliases
from registry.store import ARTIFACT, CARD, PROJECT, PROJECT_LABEL, Refusal, import_models
from registry.trust import TrustedManifest, sha256_of


__all__ = ["ModelCatalogue", "ModelEntry", "UnknownModel"]
log = logging.getLogger(__name__)


@dataclass
class ModelEntry:
    """One model version of the store, and what this process knows of its health."""

    name: str
    version: str
    path: Path
    card: ModelCard | None
    aliases: list[str] = field(default_factory=list)
    invalid_reason: str | None = None  # set when built (refused) or through ModelCatalogue.mark_invalid
    manifest: TrustedManifest | None = field(default=None, repr=False)  # None: the manifest in force

    @property
    def tag(self) -> str:
        """``name:version``."""
        return f"{self.name}:{self.version}"

    @property
    def artifact(self) -> Path:
        """Path of the joblib artifact in the store."""
        return self.path / ARTIFACT

    @property
    def valid(self) -> bool:
        """False when refused (incomplete, unreadable, untrusted) or once loading or the self-check failed."""
        return self.invalid_reason is None


def _version_key(version: str) -> tuple[int, str]:
    match = re.fullmatch(r"v(\d+)", version)
    return (int(match.group(1)) if match else -1, version)


class ModelCatalogue:
    """The attrition models of the BentoML store, with name/alias resolution and a default."""

    def __init__(self, entries: list[ModelEntry], aliases: dict[str, str], default_ref: str | None) -> None:
        self._entries = {e.tag: e for e in sorted(entries, key=lambda e: (e.name, _version_key(e.version)))}
        self.aliases = dict(aliases)
        for alias, tag in self.aliases.items():
            if tag in self._entries:
                self._entries[tag].aliases.append(alias)
        self.default_ref = default_ref or CHAMPION
        self.default = self.resolve(self.default_ref)

    @classmethod
    def from_store(cls, models_dir: str | Path, default_ref: str | None = None,
                   manifest: TrustedManifest | None = None, refused: Iterable[Refusal] = ()) -> ModelCatalogue:
        """Build the catalogue from the BentoML store and the aliases of ``models_dir``.

        Each store copy is checked against the trusted manifest (``manifest``,
        default the one in force) and against its card: one that fails is
        listed invalid with the reason, and never loaded. ``refused`` (the
        import's refusals) are listed invalid too, so ``GET /models`` shows them.
        """
        manifest = manifest if manifest is not None else TrustedManifest.read()
        entries = []
        for model in bentoml.models.list():
            if model.info.labels.get(PROJECT_LABEL) != PROJECT:
                continue
            tag, path = f"{model.tag.name}:{model.tag.version}", Path(model.path)
            card, reason = None, None
            try:
                card = ModelCard.model_validate_json((path / CARD).read_bytes())
                digest = sha256_of(path / ARTIFACT)
                reason = (f"the store's {ARTIFACT} does not match the card's sha256"
                          if digest != card.artifact_sha256 else manifest.refusal(tag, digest))
            except (OSError, ValidationError) as exc:
                reason = f"unreadable model in the store: {exc.__class__.__name__}"
            if reason is not None:
                log.error("Model %s in the store is refused: %s", tag, reason)
            entries.append(ModelEntry(model.tag.name, model.tag.version, path, card, invalid_reason=reason,
                                      manifest=manifest))
        stored = {entry.tag for entry in entries}
        for refusal in refused:
            if refusal.tag not in stored:
                name, _, version = refusal.tag.partition(":")
                entries.append(ModelEntry(name, version, refusal.folder, refusal.card,
                                          invalid_reason=f"refused at import: {refusal.reason}", manifest=manifest))
        if not entries:
            raise LookupError("the BentoML model store holds no attrition model; run `python -m registry import`")
        return cls(entries, read_aliases(models_dir), default_ref)

    @classmethod
    def open(cls, models_dir: str | Path, default_ref: str | None = None,
             manifest: TrustedManifest | None = None) -> ModelCatalogue:
        """Import ``models_dir`` into the store, then build the catalogue, refused versions included.

        What a worker does at start: a broken or untrusted version is listed
        invalid with its reason and the others serve; nothing here raises for
        one version (an invalid default answers 503 naming it).
        """
        manifest = manifest if manifest is not None else TrustedManifest.read()
        if manifest.error is not None:
            log.error("No model can be trusted: %s (%s)", manifest.error, manifest.path)
        else:
            log.info("Trusted manifest %s pins %d model version(s)", manifest.path, len(manifest.digests))
        report = import_models(models_dir, manifest)
        if report.imported:
            log.info("Imported %s into the model store", ", ".join(report.imported))
        return cls.from_store(models_dir, default_ref, manifest, report.refused)

    def entries(self) -> list[ModelEntry]:
        """Every model version, by name then version."""
        return list(self._entries.values())

    def entry(self, tag: str) -> ModelEntry | None:
        """The version ``name:version`` exactly (no alias, no latest), or None when the store has none."""
        return self._entries.get(tag)

    def names(self) -> list[str]:
        """Every name a request may use: names, name:version tags and aliases."""
        names = {e.name for e in self._entries.values()}
        return sorted(names) + list(self._entries) + sorted(self.aliases)

    def resolve(self, ref: str | None) -> ModelEntry:
        """The entry that ``ref`` designates (``None``: the default); :class:`UnknownModel` otherwise."""
        if ref is None:
            return self.default
        ref = ref.strip()
        if ref in self.aliases:
            ref = self.aliases[ref]
        if ref in self._entries:
            return self._entries[ref]
        versions = [e for e in self._entries.values() if e.name == ref]
        if versions:
            return versions[-1]
        raise UnknownModel(ref, self.names())

    def mark_invalid(self, entry: ModelEntry, reason: str) -> None:
        """Record that ``entry`` cannot serve (its artifact, self-check or a prediction failed).

        Its requests are served by the default model from now on, and
        ``GET /models`` shows the reason.
        """
        if entry.invalid_reason is None:
            log.error("Model %s is invalid: %s", entry.tag, reason)
        entry.invalid_reason = reason

    def describe(self, entry: ModelEntry, loaded: bool) -> dict[str, Any]:
        """A JSON-ready summary of one model for ``GET /models``."""
        card = entry.card
        return {
            "name": entry.name,
            "version": entry.version,
            "tag": entry.tag,
            "aliases": sorted(entry.aliases),
            "default": entry is self.default,
            "loaded": loaded,
            "valid": entry.valid,
            "invalid_reason": entry.invalid_reason,
            "estimator": card.estimator if card else None,
            "threshold": card.threshold if card else None,
            "metrics": card.metrics if card else None,
            "artifact_sha256": card.artifact_sha256 if card else None,
            "created_at": card.created_at if card else None,
        }
