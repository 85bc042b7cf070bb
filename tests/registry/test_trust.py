"""No pickle is opened unless the trusted manifest pins its bytes; a broken version never stops the others.

The untrusted artifact here is a real exploit: unpickling it creates a marker
file. Each test proves the marker never appears while the version is refused.
"""
from __future__ import annotations

import asyncio
import json
import logging
import pathlib
import re
import shutil
import subprocess
from pathlib import Path

import joblib
import pytest

from attrition.synthetic import EXAMPLE_EMPLOYEE, synthetic_employees
from registry.catalogue import ModelCatalogue
from registry.runner import ModelRunner, ModelUnavailable, RunnerPool, load_checked
from registry.serving import DefaultModelUnavailable, serve_rows
from registry.store import import_models, sha256_of
from registry.trust import COMMITTED_MANIFEST, TrustedManifest, UntrustedArtifact, load_artifact
from tests.registry.conftest import MODELS_DIR, copy_version, rewrite_card, trust


class Exploit:
    """Unpickling this object touches ``marker``: what any pickle can do, and worse."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def plant_exploit(models: Path, name: str, marker: Path) -> Path:
    """``models/<name>/v1``: a valid card (copied) whose sha256 is the exploit's, as an attacker would write it."""
    folder = copy_version(models, name)
    joblib.dump(Exploit(marker), folder / "model.joblib")
    rewrite_card(folder)
    return folder


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """A temporary models folder: the committed versions and aliases."""
    target = tmp_path / "models"
    shutil.copytree(MODELS_DIR, target)
    return target


def test_the_planted_exploit_does_run_when_unpickled_without_the_manifest(tmp_path):
    # The exploit is real: a plain joblib.load of it writes the marker.
    marker = tmp_path / "ran"
    folder = plant_exploit(tmp_path / "models", "evil", marker)
    joblib.load(folder / "model.joblib")
    assert marker.exists()


def test_an_untrusted_pickle_with_a_matching_card_is_refused_logged_listed_and_never_unpickled(
        imported, models, tmp_path, caplog):
    marker = tmp_path / "exploit-ran"
    plant_exploit(models, "evil", marker)
    with caplog.at_level(logging.ERROR, logger="registry"):
        catalogue = ModelCatalogue.open(models)
    evil = catalogue.resolve("evil:v1")
    listed = catalogue.describe(evil, loaded=False)
    assert listed["valid"] is False and "evil:v1 is not in the trusted manifest" in listed["invalid_reason"]
    assert any("evil:v1" in record.getMessage() and "trusted manifest" in record.getMessage()
               for record in caplog.records)
    assert all(entry.valid for entry in catalogue.entries() if entry.name in {p.name for p in MODELS_DIR.iterdir()})

    # A request for it is served by the default model; the pickle is still never opened.
    pool = RunnerPool(catalogue, max_batch_size=8, max_latency_ms=1)
    served = asyncio.run(serve_rows(pool, evil, synthetic_employees(2, seed=1)))
    assert served.fallback and served.model is catalogue.default and served.model.valid
    with pytest.raises(ModelUnavailable):
        ModelRunner(evil, catalogue.mark_invalid).load()
    assert not marker.exists()


def test_the_store_copy_is_checked_too_and_the_loader_refuses_bytes_swapped_after_start(imported, models, tmp_path,
                                                                                        manifest_path):
    # A trusted version, imported; then its copy in the BentoML store is replaced by the exploit with a matching card.
    folder = copy_version(models, "swapped_model")
    manifest = trust(manifest_path, folder)
    assert import_models(models, manifest).imported == ("swapped_model:v1",)
    entry = ModelCatalogue.from_store(models, manifest=manifest).resolve("swapped_model:v1")
    assert entry.valid
    marker = tmp_path / "exploit-ran"
    joblib.dump(Exploit(marker), entry.artifact)
    card = json.loads((entry.path / "card.json").read_text())
    card["artifact_sha256"] = sha256_of(entry.artifact)
    (entry.path / "card.json").write_text(json.dumps(card))

    # Refused when the catalogue is built (a worker starting now) ...
    restarted = ModelCatalogue.from_store(models, manifest=manifest).resolve("swapped_model:v1")
    assert not restarted.valid and "not the one the trusted manifest" in restarted.invalid_reason
    # ... and by the loader itself, for a worker that listed the version before the swap.
    with pytest.raises(ModelUnavailable, match="refused, never unpickled"):
        load_checked(entry)
    assert not marker.exists()


def test_load_artifact_refuses_a_version_missing_from_the_manifest_or_with_other_bytes(tmp_path, manifest_path):
    marker = tmp_path / "exploit-ran"
    folder = plant_exploit(tmp_path / "models", "evil", marker)
    manifest = TrustedManifest.read(manifest_path)
    with pytest.raises(UntrustedArtifact, match="evil:v1 is not in the trusted manifest"):
        load_artifact("evil:v1", folder / "model.joblib", manifest)
    # Under a trusted tag, other bytes are refused as well.
    with pytest.raises(UntrustedArtifact, match="not the one the trusted manifest .* pins for logistic_regression:v1"):
        load_artifact("logistic_regression:v1", folder / "model.joblib", manifest)
    # A manifest that cannot be read trusts nothing.
    manifest_path.write_text("{not json")
    with pytest.raises(UntrustedArtifact, match="unreadable"):
        load_artifact("evil:v1", folder / "model.joblib", TrustedManifest.read(manifest_path))
    assert not marker.exists()
    # The committed versions load, from the manifest in force.
    model = load_artifact("logistic_regression:v1", MODELS_DIR / "logistic_regression" / "v1" / "model.joblib")
    assert list(model.classes_) == [0, 1]


def test_the_operator_manifest_setting_replaces_the_committed_one(tmp_path, monkeypatch):
    from settings import settings

    operator = tmp_path / "operator-manifest.json"
    operator.write_text(json.dumps({"artifacts": {}}))
    monkeypatch.setattr(settings, "trusted_manifest", operator)
    artifact = MODELS_DIR / "logistic_regression" / "v1" / "model.joblib"
    with pytest.raises(UntrustedArtifact, match="operator-manifest.json"):
        load_artifact("logistic_regression:v1", artifact)
    operator.write_text(json.dumps({"artifacts": {"logistic_regression:v1": sha256_of(artifact)}}))
    assert list(load_artifact("logistic_regression:v1", artifact).classes_) == [0, 1]


def test_a_missing_manifest_trusts_nothing_yet_the_catalogue_opens(imported, tmp_path):
    catalogue = ModelCatalogue.open(MODELS_DIR, manifest=TrustedManifest.read(tmp_path / "nowhere.json"))
    assert catalogue.entries() and not any(entry.valid for entry in catalogue.entries())
    assert "the trusted manifest nowhere.json does not exist" in catalogue.default.invalid_reason


def test_the_dashboard_rescoring_refuses_an_untrusted_artifact(tmp_path):
    from dashboard.audit import reproduce

    marker = tmp_path / "exploit-ran"
    folder = plant_exploit(tmp_path / "models", "evil", marker)
    trace = {"model_name": "evil", "model_version": "v1", "model_sha256": sha256_of(folder / "model.joblib"),
             "probability": 0.5, "inputs": EXAMPLE_EMPLOYEE}
    reproduction = reproduce(trace, tmp_path / "models")
    assert not reproduction.matches and "never unpickled" in reproduction.verdict
    assert not marker.exists()


# -- broken versions ---------------------------------------------------------------------------------------------


def _unparsable_card(folder: Path) -> None:
    (folder / "card.json").write_text('{"name": "half a card",')


def _invalid_card(folder: Path) -> None:
    card = json.loads((folder / "card.json").read_text())
    card["threshold"] = 7
    del card["self_check"]
    (folder / "card.json").write_text(json.dumps(card))


def _missing_artifact(folder: Path) -> None:
    (folder / "model.joblib").unlink()


def _missing_card(folder: Path) -> None:
    (folder / "card.json").unlink()


def _artifact_not_matching_its_card(folder: Path) -> None:
    with open(folder / "model.joblib", "ab") as artifact:
        artifact.write(b"tampered")


BROKEN = {
    "unparsable_card": (_unparsable_card, "card.json is not readable JSON: JSONDecodeError"),
    "invalid_card": (_invalid_card, "card.json fails validation: field(s) self_check, threshold"),
    "missing_artifact": (_missing_artifact, "no model.joblib"),
    "missing_card": (_missing_card, "no card.json"),
    "digest_mismatch": (_artifact_not_matching_its_card, "model.joblib does not match the card's sha256"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_version_is_refused_listed_and_the_others_serve(imported, models, manifest_path, caplog, case):
    damage, reason = BROKEN[case]
    name = f"broken_{case}"
    before = copy_version(models, f"{name}_before")  # sorts before the broken one: the import goes on past it
    folder = copy_version(models, name)
    after = copy_version(models, f"{name}_later")
    for trusted in (before, folder, after):
        manifest = trust(manifest_path, trusted)
    damage(folder)

    with caplog.at_level(logging.ERROR, logger="registry"):
        report = import_models(models, manifest)
    assert [(r.tag, r.reason) for r in report.refused] == [(f"{name}:v1", reason)]
    assert {f"{name}_before:v1", f"{name}_later:v1"} <= set(report.imported)
    assert any(f"{name}:v1" in record.getMessage() and reason in record.getMessage() for record in caplog.records)

    catalogue = ModelCatalogue.open(models, manifest=manifest)
    listed = {entry.tag: catalogue.describe(entry, loaded=False) for entry in catalogue.entries()}
    assert listed[f"{name}:v1"]["valid"] is False
    assert listed[f"{name}:v1"]["invalid_reason"] == f"refused at import: {reason}"
    assert listed[f"{name}_later:v1"]["valid"] and listed[f"{name}_before:v1"]["valid"]
    pool = RunnerPool(catalogue, max_batch_size=8, max_latency_ms=1)
    served = asyncio.run(serve_rows(pool, catalogue.resolve(f"{name}_later"), synthetic_employees(2, seed=2)))
    assert not served.fallback and served.model.tag == f"{name}_later:v1"


def test_a_version_the_manifest_pins_to_other_bytes_is_refused(imported, models, manifest_path):
    folder = copy_version(models, "repinned_model")
    manifest = trust(manifest_path, folder)
    (folder / "model.joblib").write_bytes((MODELS_DIR / "random_forest" / "v1" / "model.joblib").read_bytes())
    rewrite_card(folder)  # card and artifact agree; only the manifest knows these are not the bytes it trusts
    report = import_models(models, manifest)
    assert [r.tag for r in report.refused] == ["repinned_model:v1"]
    assert "not the one the trusted manifest" in report.refused[0].reason


def test_a_refused_default_model_starts_and_answers_unavailable_naming_it(imported, models, manifest_path):
    folder = copy_version(models, "broken_default_card")
    trust(manifest_path, folder)
    _unparsable_card(folder)
    catalogue = ModelCatalogue.open(models, default_ref="broken_default_card",
                                    manifest=TrustedManifest.read(manifest_path))
    assert catalogue.default.tag == "broken_default_card:v1" and not catalogue.default.valid
    pool = RunnerPool(catalogue, max_batch_size=8, max_latency_ms=1)
    with pytest.raises(DefaultModelUnavailable, match="broken_default_card:v1"):
        asyncio.run(serve_rows(pool, catalogue.default, synthetic_employees(1)))


def test_the_committed_manifest_pins_every_committed_version_with_its_cards_digest():
    pinned = TrustedManifest.read(COMMITTED_MANIFEST)
    assert pinned.error is None
    committed = {f"{card.parent.parent.name}:{card.parent.name}": json.loads(card.read_text())["artifact_sha256"]
                 for card in MODELS_DIR.glob("*/*/card.json")}
    assert dict(pinned.digests) == committed
    assert all(sha256_of(MODELS_DIR / tag.replace(":", "/") / "model.joblib") == digest
               for tag, digest in committed.items())


def test_only_the_trusted_loader_unpickles_anything_outside_the_tests():
    # One function checks and loads: a second unpickling call site would bypass the manifest.
    project = MODELS_DIR.parent
    calls = re.compile(r"\b(joblib|pickle|cloudpickle|dill)\.(load|loads|Unpickler)\b\s*\(")
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=project, capture_output=True, text=True, check=True)
    sites = sorted(path for path in tracked.stdout.split()
                   if not path.startswith("tests/") and calls.search((project / path).read_text(encoding="utf-8")))
    assert sites == ["registry/trust.py"]
