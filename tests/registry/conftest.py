"""Registry fixtures: the committed models imported into the session's temporary store."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from registry.store import ImportReport, import_models, sha256_of
from registry.trust import COMMITTED_MANIFEST, TrustedManifest, pin
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


@pytest.fixture
def manifest_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test's own trusted manifest: a copy of the committed one, outside any models folder."""
    return Path(shutil.copy(COMMITTED_MANIFEST, tmp_path_factory.mktemp("manifest") / COMMITTED_MANIFEST.name))


def trust(manifest_path: Path, folder: Path) -> TrustedManifest:
    """Pin the artifact of the version ``folder`` (``.../name/version``) in ``manifest_path``; returns the manifest."""
    pin(f"{folder.parent.name}:{folder.name}", sha256_of(folder / "model.joblib"), manifest_path)
    return TrustedManifest.read(manifest_path)
