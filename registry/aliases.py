"""Model aliases (``champion``, ...): kept in one file, ``models/aliases.json``.

Versions are immutable; an alias is the only thing that moves, through
:func:`promote` (``python -m registry promote NAME:VERSION --alias champion``),
which first pins the version's artifact in the trusted manifest
(:mod:`registry.trust`).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from attrition.card import ARTIFACT_FILE, CARD_FILE, ModelCard

ALIASES_FILE = "aliases.json"
CHAMPION = "champion"


def read_aliases(models_dir: str | Path) -> dict[str, str]:
    """Return ``{alias: "name:version"}`` from ``models_dir/aliases.json`` (empty when absent)."""
    path = Path(models_dir) / ALIASES_FILE
    if not path.is_file():
        return {}
    return {str(k): str(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}


def trust_version(models_dir: str | Path, tag: str, manifest: str | Path | None = None) -> bool:
    """Pin the artifact of ``tag`` (``name:version`` of ``models_dir``) in the trusted manifest; True if added.

    The version must be complete and its artifact must match its card's
    sha256 (the digest traces record); a tag already pinned to other bytes is
    refused. ``manifest`` defaults to the one in force. :class:`ValueError`
    names what is wrong.
    """
    from pydantic import ValidationError

    from registry.trust import pin, sha256_of

    name, sep, version = tag.partition(":")
    folder = Path(models_dir) / name / version
    if not sep or not name or not version or not (folder / ARTIFACT_FILE).is_file():
        raise ValueError(f"{tag!r} is not a model version in {models_dir} (expected name:version)")
    try:
        card = ModelCard.model_validate_json((folder / CARD_FILE).read_bytes())
    except (OSError, ValidationError) as exc:
        raise ValueError(f"{tag}: {CARD_FILE} is missing or invalid ({exc.__class__.__name__})") from None
    digest = sha256_of(folder / ARTIFACT_FILE)
    if digest != card.artifact_sha256:
        raise ValueError(f"{tag}: {ARTIFACT_FILE} does not match its card's sha256")
    return pin(tag, digest, manifest)


def promote(models_dir: str | Path, tag: str, alias: str = CHAMPION,
            manifest: str | Path | None = None) -> dict[str, str]:
    """Point ``alias`` at ``tag`` (``name:version``), which must exist in ``models_dir``.

    The version is pinned in the trusted manifest first (``manifest``, default
    the one in force; see :func:`trust_version`), so the alias never points at
    bytes the service refuses. The file is replaced atomically; returns the
    new alias table.
    """
    models_dir = Path(models_dir)
    trust_version(models_dir, tag, manifest)
    aliases = read_aliases(models_dir)
    aliases[alias] = tag
    payload = json.dumps(dict(sorted(aliases.items())), indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(dir=models_dir, prefix=".aliases-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(payload)
    os.chmod(tmp, 0o644)  # mkstemp makes private files; the alias table is read by every worker
    os.replace(tmp, models_dir / ALIASES_FILE)
    return aliases
