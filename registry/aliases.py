"""Model aliases (``champion``, ...): kept in one file, ``models/aliases.json``.

Versions are immutable; an alias is the only thing that moves, through
:func:`promote` (``python -m registry promote NAME:VERSION --alias champion``).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from attrition.card import ARTIFACT_FILE

ALIASES_FILE = "aliases.json"
CHAMPION = "champion"


def read_aliases(models_dir: str | Path) -> dict[str, str]:
    """Return ``{alias: "name:version"}`` from ``models_dir/aliases.json`` (empty when absent)."""
    path = Path(models_dir) / ALIASES_FILE
    if not path.is_file():
        return {}
    return {str(k): str(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}


def promote(models_dir: str | Path, tag: str, alias: str = CHAMPION) -> dict[str, str]:
    """Point ``alias`` at ``tag`` (``name:version``), which must exist in ``models_dir``.

    The file is replaced atomically; returns the new alias table.
    """
    models_dir = Path(models_dir)
    name, sep, version = tag.partition(":")
    if not sep or not (models_dir / name / version / ARTIFACT_FILE).is_file():
        raise ValueError(f"{tag!r} is not a model version in {models_dir} (expected name:version)")
    aliases = read_aliases(models_dir)
    aliases[alias] = tag
    payload = json.dumps(dict(sorted(aliases.items())), indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(dir=models_dir, prefix=".aliases-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(payload)
    os.chmod(tmp, 0o644)  # mkstemp makes private files; the alias table is read by every worker
    os.replace(tmp, models_dir / ALIASES_FILE)
    return aliases
