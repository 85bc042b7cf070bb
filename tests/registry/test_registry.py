"""Registry behaviour on the committed, really trained models in a temporary BentoML store."""
from __future__ import annotations

import asyncio
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from attrition.synthetic import synthetic_employees
from registry.aliases import CHAMPION, promote, read_aliases
from registry.catalogue import ModelCatalogue, UnknownModel
from registry.runner import LOAD_FAILURES, ModelRunner, ModelUnavailable, RunnerPool
from registry.serving import DefaultModelUnavailable, serve_rows
from registry.store import import_models, sha256_of
from registry.trust import TrustedManifest
from tests.registry.conftest import MODELS_DIR, copy_version, rewrite_card, trust


def test_import_puts_every_committed_version_in_the_store_once(imported):
    versions = sorted(f"{p.parent.name}:{p.name}" for p in MODELS_DIR.glob("*/*") if (p / "card.json").is_file())
    assert sorted(imported.imported + imported.present) == versions
    again = import_models(MODELS_DIR)
    assert again.imported == () and sorted(again.present) == versions


def test_import_refuses_an_artifact_that_does_not_match_its_card(imported, tmp_path):
    folder = copy_version(tmp_path, "tampered_model")
    with open(folder / "model.joblib", "ab") as artifact:
        artifact.write(b"tampered")
    report = import_models(tmp_path)
    assert report.refused_tags == ("tampered_model:v1",)
    assert report.refused[0].reason == "model.joblib does not match the card's sha256"


def test_resolve_accepts_name_tag_and_alias(imported):
    catalogue = ModelCatalogue.from_store(MODELS_DIR)
    champion_tag = read_aliases(MODELS_DIR)[CHAMPION]
    champion = catalogue.resolve(CHAMPION)
    assert champion.tag == champion_tag
    latest = max((e for e in catalogue.entries() if e.name == champion.name), key=lambda e: int(e.version[1:]))
    assert catalogue.resolve(champion.name) is latest, "a bare name means its latest version"
    assert catalogue.resolve(champion_tag) is champion
    assert catalogue.resolve(None) is champion, "without FUTURISYS_DEFAULT_MODEL the champion is the default"
    assert CHAMPION in champion.aliases


def test_default_model_comes_from_the_setting(imported):
    catalogue = ModelCatalogue.from_store(MODELS_DIR, default_ref="random_forest")
    assert catalogue.default.name == "random_forest"
    assert catalogue.resolve(None).name == "random_forest"


def test_unknown_model_names_the_valid_ones(imported):
    catalogue = ModelCatalogue.from_store(MODELS_DIR)
    with pytest.raises(UnknownModel) as caught:
        catalogue.resolve("no_such_model")
    assert "logistic_regression" in caught.value.valid and CHAMPION in caught.value.valid
    assert "no_such_model" in str(caught.value)


def test_models_load_lazily_once_even_under_concurrent_first_use(imported):
    catalogue = ModelCatalogue.from_store(MODELS_DIR)
    runner = ModelRunner(catalogue.resolve("gradient_boosting"), catalogue.mark_invalid)
    assert not runner.loaded
    loaded = []
    threads = [threading.Thread(target=lambda: loaded.append(runner.load())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert runner.loaded and all(model is loaded[0] for model in loaded)


def test_every_committed_model_passes_its_self_check(imported):
    catalogue = ModelCatalogue.from_store(MODELS_DIR)
    rows = synthetic_employees(20, seed=3)
    for entry in catalogue.entries():
        if entry.tag.split(":")[0] not in {p.name for p in MODELS_DIR.iterdir()}:
            continue  # models other tests imported on purpose
        probabilities = ModelRunner(entry, catalogue.mark_invalid).predict_now(rows)
        assert probabilities.shape == (20,) and np.all((probabilities >= 0) & (probabilities <= 1)), entry.tag


def _broken_catalogue(tmp_path: Path, manifest_path: Path, name: str, damage) -> ModelCatalogue:
    """A version whose artifact is trusted (pinned) yet fails to load or to pass its self-check."""
    folder = copy_version(tmp_path, name)
    damage(folder)
    manifest = trust(manifest_path, folder)
    assert import_models(tmp_path, manifest).imported == (f"{name}:v1",)
    shutil.copy(MODELS_DIR / "aliases.json", tmp_path / "aliases.json")
    return ModelCatalogue.from_store(tmp_path, manifest=manifest)


def _corrupt_artifact(folder: Path) -> None:
    (folder / "model.joblib").write_bytes(b"not a joblib pickle at all")
    rewrite_card(folder)


def test_a_corrupted_artifact_is_served_by_the_default_model_visibly(imported, tmp_path, manifest_path):
    catalogue = _broken_catalogue(tmp_path, manifest_path, "corrupted_model", _corrupt_artifact)
    pool = RunnerPool(catalogue, max_batch_size=16, max_latency_ms=1)
    failures_before = LOAD_FAILURES.labels("corrupted_model", "v1")._value.get()
    broken = catalogue.resolve("corrupted_model")
    served = asyncio.run(serve_rows(pool, broken, synthetic_employees(3, seed=1)))
    assert served.fallback and served.model is catalogue.default and served.requested is broken
    assert "failed to load" in broken.invalid_reason and not broken.valid
    assert served.error and "corrupted_model:v1" in served.error
    assert LOAD_FAILURES.labels("corrupted_model", "v1")._value.get() == failures_before + 1


def test_a_model_failing_its_self_check_is_invalid(imported, tmp_path, manifest_path):
    def wrong_reference(folder: Path) -> None:
        card = json.loads((folder / "card.json").read_text())
        card["self_check"]["probability"] = 1 - card["self_check"]["probability"]
        rewrite_card(folder, self_check=card["self_check"])

    catalogue = _broken_catalogue(tmp_path, manifest_path, "drifted_model", wrong_reference)
    runner = ModelRunner(catalogue.resolve("drifted_model"), catalogue.mark_invalid)
    with pytest.raises(ModelUnavailable, match="self-check probability"):
        runner.load()
    assert not catalogue.resolve("drifted_model").valid


def test_an_invalid_default_model_is_unavailable(imported, tmp_path, manifest_path):
    catalogue = _broken_catalogue(tmp_path, manifest_path, "broken_default", _corrupt_artifact)
    catalogue = ModelCatalogue(catalogue.entries(), catalogue.aliases, default_ref="broken_default")
    pool = RunnerPool(catalogue, max_batch_size=16, max_latency_ms=1)
    with pytest.raises(DefaultModelUnavailable, match="broken_default"):
        asyncio.run(serve_rows(pool, catalogue.default, synthetic_employees(1)))


def test_concurrent_rows_are_batched_and_scored_like_single_rows(imported):
    catalogue = ModelCatalogue.from_store(MODELS_DIR)
    runner = ModelRunner(catalogue.resolve(CHAMPION), catalogue.mark_invalid, max_batch_size=64, max_latency_ms=20)
    rows = synthetic_employees(50, seed=7)
    alone = runner.predict_now(rows)  # the reference: one call per row gives the same numbers
    calls = []
    original = runner.predict_now

    def counting(batch):
        calls.append(len(batch))
        return original(batch)

    runner.predict_now = counting

    async def concurrently():
        results = await asyncio.gather(*(runner.predict([row]) for row in rows))
        await runner.close()
        return results

    results = asyncio.run(concurrently())
    assert sum(calls) == 50 and max(calls) > 1 and len(calls) < 50
    assert np.allclose([r.probabilities[0] for r in results], alone, atol=1e-12)


def test_promote_pins_the_version_then_moves_an_alias_and_refuses_unknown_versions(tmp_path, manifest_path):
    folder = copy_version(tmp_path, "candidate")
    assert "candidate:v1" not in TrustedManifest.read(manifest_path).digests
    promote(tmp_path, "candidate:v1", "challenger", manifest_path)
    assert read_aliases(tmp_path) == {"challenger": "candidate:v1"}
    assert TrustedManifest.read(manifest_path).refusal("candidate:v1", sha256_of(folder / "model.joblib")) is None
    with pytest.raises(ValueError, match="not a model version"):
        promote(tmp_path, "candidate:v9", "challenger", manifest_path)
    assert read_aliases(tmp_path) == {"challenger": "candidate:v1"}


def test_promote_refuses_bytes_other_than_the_pinned_ones_and_moves_nothing(tmp_path, manifest_path):
    folder = copy_version(tmp_path, "candidate")
    promote(tmp_path, "candidate:v1", "challenger", manifest_path)
    pinned = manifest_path.read_bytes()
    (folder / "model.joblib").write_bytes(b"other bytes under the same version")
    rewrite_card(folder)  # even with a card that agrees, a pinned version never changes
    with pytest.raises(ValueError, match="already pinned to other bytes"):
        promote(tmp_path, "candidate:v1", "champion", manifest_path)
    assert manifest_path.read_bytes() == pinned and read_aliases(tmp_path) == {"challenger": "candidate:v1"}
    with open(folder / "model.joblib", "ab") as artifact:
        artifact.write(b"!")  # the card no longer matches: refused before the manifest is even read
    with pytest.raises(ValueError, match="does not match its card"):
        promote(tmp_path, "candidate:v1", "champion", manifest_path)
