"""Training on the real extracts: quality, determinism, cards, immutable versions, promotion, CLI."""
from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from attrition.card import ARTIFACT_FILE as ARTIFACT
from attrition.card import CARD_FILE as CARD
from attrition.card import ModelCard
from attrition.extracts import features_and_target, load_employees
from attrition.schema import FEATURE_NAMES, feature_schema
from attrition.synthetic import EXAMPLE_EMPLOYEE
from registry.aliases import CHAMPION, promote, read_aliases
from registry.trust import TrustedManifest, load_artifact, sha256_of
from tests.attrition.synthetic_extracts import synthetic_extract_frames, write_extracts
from tests.training.card_checks import check_explanation_reference, check_out_of_fold_references
from training import evaluate
from training.evaluate import QUALITY_BAR
from training.pipelines import BASELINE, GRADIENT_BOOSTING, LOGISTIC_REGRESSION, MODEL_NAMES
from tests.training.conftest import manifest_of
from training.train import (TrainingDataError, TrainingResult, TrustError, data_fingerprint,
                            load_training_data, main, train_all)

Trained = tuple[Path, list[TrainingResult]]


def _walk(value: Any) -> Iterator[Any]:
    """Every value nested in a JSON document, containers included."""
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """sha256 and modification time of every file under ``folder``."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def models_copy(trained: Trained, tmp_path: Path) -> Path:
    """A private copy of the session's trained models folder and of its trusted manifest, free to modify."""
    shutil.copy(manifest_of(trained[0]), manifest_of(tmp_path / "models"))
    return Path(shutil.copytree(trained[0], tmp_path / "models"))


def _quiet(models: Path) -> dict[str, Any]:
    """Options of a silent run pinning into the manifest of ``models``."""
    return {"log": lambda _: None, "manifest": manifest_of(models)}


@pytest.mark.extracts
def test_a_first_run_writes_v1_of_each_model_and_promotes_the_best_non_baseline(trained: Trained) -> None:
    out, results = trained
    assert [(r.name, r.version, r.status) for r in results] == [(n, "v1", "created") for n in MODEL_NAMES]
    for name in MODEL_NAMES:
        assert (out / name / "v1" / ARTIFACT).is_file() and (out / name / "v1" / CARD).is_file()
    best = max((r for r in results if r.name != BASELINE), key=lambda r: r.card.metrics["cv"]["roc_auc_mean"])
    assert read_aliases(out) == {CHAMPION: best.card.tag}


@pytest.mark.extracts
def test_the_champion_meets_the_quality_bar(trained: Trained) -> None:
    out, results = trained
    champion = ModelCard.model_validate_json((out / read_aliases(out)[CHAMPION].replace(":", "/") / CARD).read_text())
    assert champion.name != BASELINE
    assert champion.metrics["cv"]["roc_auc_mean"] >= QUALITY_BAR["cv_roc_auc_mean"] == 0.80
    assert champion.metrics["holdout"]["roc_auc"] >= QUALITY_BAR["holdout_roc_auc"] == 0.78
    baseline = next(r for r in results if r.name == BASELINE)
    assert baseline.card.metrics["cv"]["roc_auc_mean"] == 0.5  # the floor: a constant answer ranks no one


@pytest.mark.extracts
def test_every_threshold_keeps_out_of_fold_recall_on_leavers_at_least_0_65(trained: Trained) -> None:
    for result in trained[1]:
        selection = result.card.metrics["threshold_selection"]
        assert selection["recall"] >= 0.65
        assert selection["threshold"] == result.card.threshold == result.card.metrics["holdout"]["threshold"]
        matrix = result.card.metrics["holdout"]["confusion_matrix"]
        assert sum(matrix.values()) == result.card.metrics["holdout"]["test_rows"] == 294


@pytest.mark.extracts
def test_two_trainings_on_the_same_data_give_identical_metrics(trained: Trained, extracts_dir: Path,
                                                               tmp_path: Path) -> None:
    again = train_all(extracts_dir, tmp_path / "again", [BASELINE, LOGISTIC_REGRESSION], **_quiet(tmp_path / "again"))
    first = {r.name: r.card for r in trained[1]}
    for result in again:
        assert result.card.metrics == first[result.name].metrics
        assert result.card.threshold == first[result.name].threshold
        assert result.card.self_check == first[result.name].self_check
        assert result.card.reference_distributions == first[result.name].reference_distributions


@pytest.mark.extracts
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_the_card_describes_the_artifact_with_aggregates_only(trained: Trained, extracts_dir: Path,
                                                              name: str) -> None:
    folder = trained[0] / name / "v1"
    document = json.loads((folder / CARD).read_text(encoding="utf-8"))
    card = ModelCard.model_validate(document)
    assert (card.name, card.version) == (name, "v1")
    assert card.artifact_sha256 == hashlib.sha256((folder / ARTIFACT).read_bytes()).hexdigest()
    assert card.features == feature_schema()
    assert card.labels == {"0": "Non", "1": "Oui"} and card.target == "a_quitte_l_entreprise"
    assert set(card.metrics) == {"cv", "holdout", "threshold_selection"}
    libraries = {"python", "sklearn", "numpy", "pandas", "joblib"}
    assert set(card.versions) == (libraries | {"lightgbm"} if name == GRADIENT_BOOSTING else libraries)
    assert tuple(card.reference_distributions) == FEATURE_NAMES
    assert all(d["count"] == 1470 for d in card.reference_distributions.values())

    employees = load_employees(extracts_dir)
    assert card.data_fingerprint == data_fingerprint(employees)
    # No row-level data: no list as long as a column, no dict that is a real employee's row.
    assert max(len(v) for v in _walk(document) if isinstance(v, list)) < 100
    features, _ = features_and_target(employees)
    real_rows = set(features.itertuples(index=False, name=None))
    rows_in_card = [tuple(v[f] for f in FEATURE_NAMES) for v in _walk(document)
                    if isinstance(v, dict) and set(FEATURE_NAMES) <= set(v)
                    and not any(isinstance(v[f], (dict, list)) for f in FEATURE_NAMES)]
    assert rows_in_card == [tuple(EXAMPLE_EMPLOYEE[f] for f in FEATURE_NAMES)]
    # A bare boolean, so a failure cannot print a real row into the test log.
    leaked = bool(real_rows.intersection(rows_in_card))
    assert not leaked, "a real employee row appears in the card"

    model = load_artifact(card.tag, folder / ARTIFACT, TrustedManifest.read(manifest_of(trained[0])))
    example = pd.DataFrame([card.self_check.employee], columns=list(FEATURE_NAMES))
    assert model.predict_proba(example)[0, 1] == pytest.approx(card.self_check.probability, abs=1e-12)


@pytest.mark.extracts
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_the_card_holds_the_out_of_fold_references_of_the_extracts(trained: Trained, name: str) -> None:
    card = next(r.card for r in trained[1] if r.name == name)
    check_out_of_fold_references(card, 1470, 237)
    groups = card.model_extra["out_of_fold"]["fairness"]
    assert {label: g["size"] > 0 for label, g in groups["genre"]["groups"].items()} == {"F": True, "M": True}
    assert all(g["size"] > 0 for g in groups["departement"]["groups"].values())


@pytest.mark.extracts
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_the_card_holds_what_drives_the_final_model_over_the_training_rows(trained: Trained, extracts_dir: Path,
                                                                           name: str) -> None:
    card = next(r.card for r in trained[1] if r.name == name)
    model = load_artifact(card.tag, trained[0] / name / card.version / ARTIFACT,
                          TrustedManifest.read(manifest_of(trained[0])))
    features, _ = features_and_target(load_employees(extracts_dir))
    check_explanation_reference(card, model, features)
    if name == BASELINE:  # a constant: nothing drives it
        assert not any(item["mean_abs"] for item in card.model_extra["explanation_reference"]["mean_abs_contribution"])


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[TrainingResult]]:
    """Every model trained on 150 synthetic employees (every third one leaves)."""
    root = tmp_path_factory.mktemp("synthetic")
    data = write_extracts(root / "extracts", synthetic_extract_frames(150, seed=9))
    return data, root / "models", train_all(data, root / "models", **_quiet(root / "models"))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_card_trained_on_synthetic_extracts_holds_consistent_references(
        synthetic_run: tuple[Path, Path, list[TrainingResult]], name: str) -> None:
    _, out, results = synthetic_run
    result = next(r for r in results if r.name == name)
    check_out_of_fold_references(result.card, 150, 50)
    document = json.loads((out / name / "v1" / CARD).read_text(encoding="utf-8"))
    assert max(len(v) for v in _walk(document) if isinstance(v, list)) < 100


def test_a_version_with_an_older_card_is_kept_and_a_new_one_carries_the_references(
        synthetic_run: tuple[Path, Path, list[TrainingResult]], tmp_path: Path) -> None:
    data, out, _ = synthetic_run
    models = Path(shutil.copytree(out, tmp_path / "models"))
    # A first-format card: same model, same data, no references.
    card_path = models / BASELINE / "v1" / CARD
    document = json.loads(card_path.read_text(encoding="utf-8"))
    for field in ("card_format", "out_of_fold"):
        document.pop(field)
    card_path.write_text(json.dumps(document), encoding="utf-8")
    before = _snapshot(models / BASELINE / "v1")
    [result] = train_all(data, models, [BASELINE], **_quiet(models))
    assert (result.version, result.status) == ("v2", "created")
    assert result.card.model_extra["out_of_fold"]["probability_distribution"]["rows"] == 150
    assert _snapshot(models / BASELINE / "v1") == before
    [again] = train_all(data, models, [BASELINE], **_quiet(models))
    assert (again.version, again.status) == ("v2", "unchanged")


def test_training_is_reproducible_to_the_byte(
        synthetic_run: tuple[Path, Path, list[TrainingResult]], tmp_path: Path) -> None:
    data, out, _ = synthetic_run
    again = train_all(data, tmp_path / "again", **_quiet(tmp_path / "again"))
    for result in again:
        first = out / result.name / "v1"
        assert (first / ARTIFACT).read_bytes() == (result.path / ARTIFACT).read_bytes(), result.name
        assert result.card.model_extra["out_of_fold"] == json.loads(
            (first / CARD).read_text(encoding="utf-8"))["out_of_fold"]


@pytest.mark.extracts
def test_a_rerun_on_the_same_data_is_unchanged_and_rewrites_nothing(models_copy: Path, extracts_dir: Path) -> None:
    before = _snapshot(models_copy)
    results = train_all(extracts_dir, models_copy, **_quiet(models_copy))
    assert [(r.version, r.status) for r in results] == [("v1", "unchanged")] * len(MODEL_NAMES)
    assert _snapshot(models_copy) == before


@pytest.mark.extracts
def test_changed_hyperparameters_make_v2_and_leave_v1_untouched(models_copy: Path, extracts_dir: Path) -> None:
    before = _snapshot(models_copy / LOGISTIC_REGRESSION / "v1")
    changed = {LOGISTIC_REGRESSION: {"C": 1.0}}
    [result] = train_all(extracts_dir, models_copy, [LOGISTIC_REGRESSION], overrides=changed, **_quiet(models_copy))
    assert (result.version, result.status, result.card.hyperparameters["C"]) == ("v2", "created", 1.0)
    assert _snapshot(models_copy / LOGISTIC_REGRESSION / "v1") == before
    # Each definition finds its own version again.
    [same] = train_all(extracts_dir, models_copy, [LOGISTIC_REGRESSION], overrides=changed, **_quiet(models_copy))
    [default] = train_all(extracts_dir, models_copy, [LOGISTIC_REGRESSION], **_quiet(models_copy))
    assert (same.version, same.status, default.version, default.status) == ("v2", "unchanged", "v1", "unchanged")


@pytest.mark.extracts
def test_a_new_version_never_reuses_an_existing_folder(models_copy: Path, extracts_dir: Path) -> None:
    leftover = models_copy / LOGISTIC_REGRESSION / "v2"
    leftover.mkdir()
    (leftover / "note.txt").write_text("half-written by someone else")
    [result] = train_all(extracts_dir, models_copy, [LOGISTIC_REGRESSION], overrides={LOGISTIC_REGRESSION: {"C": 2.0}},
                         **_quiet(models_copy))
    assert result.version == "v3"
    assert [p.name for p in leftover.iterdir()] == ["note.txt"]


@pytest.mark.extracts
def test_promote_best_moves_the_champion_and_a_plain_rerun_does_not(models_copy: Path, extracts_dir: Path) -> None:
    promote(models_copy, f"{BASELINE}:v1", CHAMPION, manifest_of(models_copy))
    train_all(extracts_dir, models_copy, **_quiet(models_copy))
    assert read_aliases(models_copy)[CHAMPION] == f"{BASELINE}:v1"
    results = train_all(extracts_dir, models_copy, promote_best=True, **_quiet(models_copy))
    best = max((r for r in results if r.name != BASELINE), key=lambda r: r.card.metrics["cv"]["roc_auc_mean"])
    assert read_aliases(models_copy)[CHAMPION] == best.card.tag != f"{BASELINE}:v1"


@pytest.mark.extracts
def test_a_model_below_the_quality_bar_is_not_promoted(models_copy: Path, extracts_dir: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    promote(models_copy, f"{BASELINE}:v1", CHAMPION, manifest_of(models_copy))
    monkeypatch.setitem(evaluate.QUALITY_BAR, "cv_roc_auc_mean", 0.99)
    messages: list[str] = []
    train_all(extracts_dir, models_copy, promote_best=True, log=messages.append,
              manifest=manifest_of(models_copy))
    assert read_aliases(models_copy)[CHAMPION] == f"{BASELINE}:v1"
    assert any(m.startswith("not promoting") for m in messages)


@pytest.mark.extracts
def test_the_command_line_prints_progress_and_the_comparison_table(models_copy: Path, extracts_dir: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    manifest = manifest_of(models_copy)
    assert main(["--data", str(extracts_dir), "--out", str(models_copy), "--manifest", str(manifest)]) == 0
    printed = capsys.readouterr().out
    assert "logistic_regression: unchanged" in printed
    assert "CV ROC AUC" in printed and "Brier" in printed
    for name in MODEL_NAMES:
        assert any(line.startswith(name) and "v1" in line for line in printed.splitlines())


@pytest.mark.extracts
def test_a_run_pins_each_version_it_creates_and_nothing_else(trained: Trained) -> None:
    out, results = trained
    pinned = TrustedManifest.read(manifest_of(out))
    assert dict(pinned.digests) == {r.card.tag: sha256_of(out / r.name / r.version / ARTIFACT) for r in results}
    assert all(r.card.artifact_sha256 == pinned.digests[r.card.tag] for r in results)


@pytest.mark.extracts
def test_a_version_pinned_to_other_bytes_is_not_written(models_copy: Path, extracts_dir: Path) -> None:
    # A manifest that already pins logistic_regression:v2 (another models folder's v2, say).
    manifest = manifest_of(models_copy)
    document = json.loads(manifest.read_text())
    document["artifacts"][f"{LOGISTIC_REGRESSION}:v2"] = "0" * 64
    manifest.write_text(json.dumps(document))
    before = manifest.read_bytes()
    with pytest.raises(TrustError, match="already pinned to other bytes"):
        train_all(extracts_dir, models_copy, [LOGISTIC_REGRESSION], overrides={LOGISTIC_REGRESSION: {"C": 1.0}},
                  **_quiet(models_copy))
    assert not (models_copy / LOGISTIC_REGRESSION / "v2").exists() and manifest.read_bytes() == before


@pytest.mark.extracts
def test_an_unchanged_version_missing_from_the_manifest_is_named(models_copy: Path, extracts_dir: Path) -> None:
    manifest = manifest_of(models_copy)
    manifest.write_text(json.dumps({"artifacts": {}}))
    messages: list[str] = []
    train_all(extracts_dir, models_copy, [LOGISTIC_REGRESSION], log=messages.append, manifest=manifest)
    assert any(f"{LOGISTIC_REGRESSION}:v1 is not in the trusted manifest" in m for m in messages)
    assert TrustedManifest.read(manifest).digests == {}


def test_the_command_line_names_a_missing_extract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "models")]) == 1
    assert "extrait_sirh.csv: file not found" in capsys.readouterr().err
    assert not (tmp_path / "models" / LOGISTIC_REGRESSION).exists()


@pytest.mark.parametrize(("file_name", "column", "value", "message"), [
    ("extrait_sirh.csv", "age", 90, "employee 3: invalid field(s) ['age']"),
    ("extrait_sondage.csv", "a_quitte_l_entreprise", "Peut-être", "a_quitte_l_entreprise holds 1 value(s)"),
])
def test_training_refuses_rows_the_schema_rejects(tmp_path: Path, file_name: str, column: str, value: Any,
                                                  message: str) -> None:
    frames = synthetic_extract_frames()
    frame = frames[file_name]
    frame[column] = frame[column].astype(object)
    frame.loc[frame.index[2], column] = value
    with pytest.raises(TrainingDataError) as error:
        load_training_data(write_extracts(tmp_path, frames))
    assert message in str(error.value)
    assert str(value) not in str(error.value).replace(message, "")  # the error names fields, not values
