"""Model versions on disk: ``models/<name>/v<N>/``, found by definition, claimed once, written atomically.

A version is never rewritten: training looks for an existing version with the
same definition and data (:func:`find_same_version`) before it claims the next
folder (:func:`claim_next_version`).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from attrition.card import CARD_FILE, ModelCard

_VERSION_DIR = re.compile(r"^v(\d+)$")
# Card fields that, with the data fingerprint, make a model version: equal on all → same model.
_IDENTITY_FIELDS = ("estimator", "hyperparameters", "preprocessing", "features", "data_fingerprint", "card_format")
CARD_FORMAT = 2
"""Cards of format 2 add ``out_of_fold`` (probability distribution, calibration, fairness by group); a
version whose card is of an older format (the first versions have none) is not reused, even when its
model is the same."""


def data_fingerprint(employees: pd.DataFrame) -> str:
    """sha256 of the joined frame's canonical CSV (ids, 30 fields, target), computed in memory only."""
    canonical = employees.to_csv(index=True, lineterminator="\n").encode("utf-8")
    return hashlib.sha256(canonical).hexdigest()


def existing_versions(model_dir: Path) -> list[tuple[int, Path]]:
    """``(N, path)`` of every ``vN`` folder of one model, in increasing N."""
    if not model_dir.is_dir():
        return []
    found = [(int(match.group(1)), child) for child in model_dir.iterdir()
             if child.is_dir() and (match := _VERSION_DIR.match(child.name))]
    return sorted(found)


def _identity(card: Mapping[str, Any]) -> dict[str, Any]:
    """The card fields that make a version, as the card stores them."""
    # Compared after a JSON round trip, so tuples and lists, ints and floats compare as the card stores them.
    return json.loads(json.dumps({field: card.get(field) for field in _IDENTITY_FIELDS}))


def find_same_version(model_dir: Path, identity: Mapping[str, Any]) -> tuple[Path, ModelCard] | None:
    """The existing version with the same definition and training data, if any."""
    wanted = _identity(identity)
    for _, folder in existing_versions(model_dir):
        card_path = folder / CARD_FILE
        if not card_path.is_file():
            continue
        card = json.loads(card_path.read_text(encoding="utf-8"))
        if _identity(card) == wanted:
            return folder, ModelCard.model_validate(card)
    return None


def claim_next_version(model_dir: Path) -> tuple[str, Path]:
    """Create the folder of the next version; mkdir fails on an existing folder, so none is ever reused."""
    model_dir.mkdir(parents=True, exist_ok=True)
    number = max((n for n, _ in existing_versions(model_dir)), default=0) + 1
    while True:
        folder = model_dir / f"v{number}"
        try:
            folder.mkdir()
            return folder.name, folder
        except FileExistsError:  # another run claimed it meanwhile
            number += 1


def write_atomically(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` all at once: a reader sees the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(payload)
    os.chmod(tmp, 0o644)  # mkstemp makes files private; artifacts are read by the service's user
    os.replace(tmp, path)
