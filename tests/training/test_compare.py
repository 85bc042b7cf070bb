"""Every committed version re-evaluated on the same folds: figures, the report, a tampered artifact refused."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from attrition.card import ARTIFACT_FILE as ARTIFACT
from tests.attrition.synthetic_extracts import synthetic_extract_frames, write_extracts
from training.compare import compare_versions, comparison_report, main
from training.pipelines import BASELINE, LOGISTIC_REGRESSION
from tests.training.conftest import manifest_of
from training.train import train_all


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Baseline and logistic regression on 150 synthetic employees: v1, then v2 with another C."""
    root = tmp_path_factory.mktemp("compare")
    data = write_extracts(root / "extracts", synthetic_extract_frames(150, seed=9))
    models = root / "models"
    quiet = {"log": lambda _: None, "manifest": manifest_of(models)}
    train_all(data, models, [BASELINE, LOGISTIC_REGRESSION], **quiet)
    train_all(data, models, [LOGISTIC_REGRESSION], overrides={LOGISTIC_REGRESSION: {"C": 1.0}}, **quiet)
    return data, models


def test_every_version_is_scored_on_the_folds_its_card_was(two_versions: tuple[Path, Path]) -> None:
    data, models = two_versions
    scores = compare_versions(data, models, manifest_of(models))
    assert [s.tag for s in scores] == ["baseline:v1", "logistic_regression:v1", "logistic_regression:v2"]
    assert all(s.reproduces_card and s.trained_on_these_data for s in scores)
    first, second = scores[1].cv, scores[2].cv
    assert first["roc_auc_folds"] != second["roc_auc_folds"]  # two definitions, two sets of scores
    report = comparison_report(scores)
    assert "logistic_regression:v2" in report and "same figures" in report and "±" in report


def test_on_other_data_the_report_says_the_card_was_made_on_other_data(
        two_versions: tuple[Path, Path], tmp_path: Path) -> None:
    _, models = two_versions
    other = write_extracts(tmp_path / "other", synthetic_extract_frames(150, seed=10))
    scores = compare_versions(other, models, manifest_of(models))
    assert not any(s.trained_on_these_data for s in scores)
    assert not scores[1].reproduces_card  # the logistic regression learns something else from other rows
    assert comparison_report(scores).count("trained on other data") == 3


def test_an_artifact_that_does_not_match_its_card_is_not_loaded(two_versions: tuple[Path, Path], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    data, models = two_versions
    copy = Path(shutil.copytree(models, tmp_path / "models"))
    # A valid artifact, but not the one the v2 card describes.
    shutil.copyfile(copy / LOGISTIC_REGRESSION / "v1" / ARTIFACT, copy / LOGISTIC_REGRESSION / "v2" / ARTIFACT)
    assert main(["--data", str(data), "--models", str(copy), "--manifest", str(manifest_of(models))]) == 1
    assert "logistic_regression:v2" in capsys.readouterr().err


def test_an_artifact_its_card_describes_but_the_manifest_does_not_pin_is_not_loaded(
        two_versions: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, models = two_versions
    empty = tmp_path / "trusted.json"
    empty.write_text('{"artifacts": {}}', encoding="utf-8")
    assert main(["--data", str(data), "--models", str(models), "--manifest", str(empty)]) == 1
    assert "baseline:v1" in capsys.readouterr().err
