"""Registry fixtures: the committed models imported into the session's temporary store."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from registry.store import ImportReport, import_models, sha256_of
from tests.conftest import PROJECT_ROOT

MODELS_DIR = PROJECT_ROOT / "models"


@pytest.fixture(scope="session")
def imported() -> ImportReport:
    """The committed models/ imported into the test session's BentoML store."""
    return import_models(MODELS_DIR)


def copy_version(tmp_models: Path, name: str, source: str = "logistic_regression") -> Path:
    """Copy the latest committed version of ``source`` as ``tmp_models/name/v1``; returns the folder."""
    latest = sorted((MODELS_DIR / source).iterdir())[-1]
    target = tmp_models / name / "v1"
    shutil.copytree(latest, target)
    card = json.loads((target / "card.json").read_text())
    card["name"], card["version"] = name, "v1"
    (target / "card.json").write_text(json.dumps(card))
    return target


def rewrite_card(folder: Path, **changes: object) -> None:
    """Change fields of a copied card (the artifact's sha256 is kept in step with the file)."""
    card = json.loads((folder / "card.json").read_text())
    card.update(changes)
    card["artifact_sha256"] = sha256_of(folder / "model.joblib")
    (folder / "card.json").write_text(json.dumps(card))
