"""The artifacts committed in ``models/``: complete, consistent with their cards, loadable by the service alone."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from attrition.card import ARTIFACT_FILE as ARTIFACT
from attrition.card import CARD_FILE as CARD
from attrition.card import ModelCard
from attrition.extracts import load_employees
from attrition.schema import FEATURE_NAMES, feature_schema
from attrition.synthetic import EXAMPLE_EMPLOYEE
from registry.aliases import CHAMPION, read_aliases
from registry.trust import COMMITTED_MANIFEST, TrustedManifest, load_artifact
from tests.conftest import PROJECT_ROOT
from training.evaluate import QUALITY_BAR, meets_quality_bar
from training.pipelines import BASELINE, MODEL_NAMES
from tests.training.card_checks import check_explanation_reference, check_out_of_fold_references
from training.train import data_fingerprint

MODELS_DIR = PROJECT_ROOT / "models"
VERSION_FOLDERS = sorted(p.parent for p in MODELS_DIR.glob(f"*/v*/{CARD}"))
MAX_ARTIFACT_BYTES = 5 * 1024 * 1024


def _card(folder: Path) -> ModelCard:
    return ModelCard.model_validate_json((folder / CARD).read_text(encoding="utf-8"))


# The first versions are immutable: their files stay byte for byte what was first committed.
V1_SHA256 = {
    "baseline": ("021637bc5464727cc0966a647ac98a3307ef39bb5903a9678d84f3d9cdc15ea6",
                 "a29bacc63118f2ffdb4532b9609ea99e469cb7b3f7d6e44db31acd53838f91b5"),
    "gradient_boosting": ("2ae90aae93b266983fc419c9d7b2ec89bfbb09d83f21756ebc8188b825ddffbe",
                          "0f92ee6ec192d519143257a3ef6d287fd4e79c01e8f3a17ac38e4f343b57af61"),
    "logistic_regression": ("dd973aff94eaafd6166fa8fafa05a579827c291d755374d8f17658faf154c4dd",
                            "ff497bde3108bcc87f28b28d23f675de8a31d1aad269c81ace4ac26e122cdeee"),
    "random_forest": ("fc6f91696b05d40d650ea17baef0e05771f19404f2a27ecc6974198e5970526f",
                      "4a52dee56e82c63f28ceec77e07882a1cdd4a3bdfb129d6c619380e38e8a6f1c"),
}


def test_every_model_has_a_committed_v1_and_v2() -> None:
    assert {(p.parent.name, p.name) for p in VERSION_FOLDERS} >= {
        (name, version) for name in MODEL_NAMES for version in ("v1", "v2")}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_the_first_versions_are_unchanged(name: str) -> None:
    folder = MODELS_DIR / name / "v1"
    digests = tuple(hashlib.sha256((folder / f).read_bytes()).hexdigest() for f in (ARTIFACT, CARD))
    assert digests == V1_SHA256[name]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_second_version_card_holds_consistent_out_of_fold_references(name: str) -> None:
    card = _card(MODELS_DIR / name / "v2")
    rows = card.training["rows"]
    leavers = round(card.training["positive_share"] * rows)
    check_out_of_fold_references(card, rows, leavers)


@pytest.mark.extracts
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_second_version_card_holds_what_drives_its_artifact(name: str, extracts_dir: Path) -> None:
    from attrition.extracts import features_and_target

    folder = MODELS_DIR / name / "v2"
    card = _card(folder)
    features, _ = features_and_target(load_employees(extracts_dir))
    check_explanation_reference(card, load_artifact(card.tag, folder / ARTIFACT), features)
    # The artifact is the one the manifest pins: the card was completed, the model never rewritten.
    assert TrustedManifest.read(COMMITTED_MANIFEST).digests[card.tag] == card.artifact_sha256


@pytest.mark.parametrize("folder", VERSION_FOLDERS, ids=lambda p: f"{p.parent.name}:{p.name}")
def test_a_committed_card_validates_and_matches_its_artifact(folder: Path) -> None:
    card = _card(folder)
    assert (card.name, card.version) == (folder.parent.name, folder.name)
    artifact = folder / ARTIFACT
    assert artifact.stat().st_size < MAX_ARTIFACT_BYTES
    assert card.artifact_sha256 == hashlib.sha256(artifact.read_bytes()).hexdigest()
    assert card.features == feature_schema()
    assert tuple(card.reference_distributions) == FEATURE_NAMES
    model = load_artifact(card.tag, artifact, TrustedManifest.read(COMMITTED_MANIFEST))
    example = pd.DataFrame([card.self_check.employee], columns=list(FEATURE_NAMES))
    assert model.predict_proba(example)[0, 1] == pytest.approx(card.self_check.probability, abs=1e-9)


def test_the_champion_is_a_committed_model_meeting_the_quality_bar() -> None:
    tag = read_aliases(MODELS_DIR)[CHAMPION]
    name, _, version = tag.partition(":")
    card = _card(MODELS_DIR / name / version)
    assert name != BASELINE
    assert meets_quality_bar(card.metrics), (card.metrics["cv"]["roc_auc_mean"], QUALITY_BAR)
    # The live evaluation draws the champion's figures against its card's references.
    assert "out_of_fold" in card.model_extra


def test_committed_artifacts_load_and_predict_without_any_project_module(tmp_path: Path) -> None:
    # The service loads artifacts with scikit-learn alone: block this project's packages and try (each artifact's
    # bytes checked against the committed manifest first, as the service does).
    script = """
import hashlib, importlib.abc, io, json, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"training", "attrition", "registry", "persistence", "settings", "service"}:
            raise ImportError("blocked " + name)
sys.meta_path.insert(0, Blocked())
import joblib, pandas as pd
pinned = json.load(open(sys.argv[1], encoding="utf-8"))["artifacts"]
for folder in sys.argv[2:]:
    card = json.load(open(folder + "/card.json", encoding="utf-8"))
    payload = open(folder + "/model.joblib", "rb").read()
    assert hashlib.sha256(payload).hexdigest() == pinned[card["name"] + ":" + card["version"]], folder
    model = joblib.load(io.BytesIO(payload))
    frame = pd.DataFrame([card["self_check"]["employee"]], columns=[f["name"] for f in card["features"]])
    assert abs(model.predict_proba(frame)[0, 1] - card["self_check"]["probability"]) < 1e-9, folder
print("ok", len(sys.argv) - 2)
"""
    completed = subprocess.run([sys.executable, "-c", script, str(COMMITTED_MANIFEST), *map(str, VERSION_FOLDERS)],
                               cwd=tmp_path,
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == f"ok {len(VERSION_FOLDERS)}"


def test_models_hold_no_data_file_and_only_the_synthetic_self_check_employee() -> None:
    allowed = {ARTIFACT, CARD, "aliases.json"}
    assert sorted(str(p.relative_to(MODELS_DIR)) for p in MODELS_DIR.rglob("*")
                  if p.is_file() and p.name not in allowed) == []
    for folder in VERSION_FOLDERS:
        assert _card(folder).self_check.employee == EXAMPLE_EMPLOYEE


@pytest.mark.extracts
def test_committed_models_were_trained_on_the_current_extracts(extracts_dir: Path) -> None:
    fingerprint = data_fingerprint(load_employees(extracts_dir))
    for folder in VERSION_FOLDERS:
        assert _card(folder).data_fingerprint == fingerprint, folder
