"""Every committed model version re-evaluated on the same cross-validation folds, side by side.

Usage (from the project root)::

    python -m training.compare --data ../shared/data/hr-attrition --models models

Each version's pipeline definition is taken from its own artifact (an unfitted
``clone`` of it: same steps, same hyperparameters) and cross-validated on the
folds training uses (stratified, shuffled, 5 folds, seed ``RANDOM_STATE``) over
the current extracts, so versions made at different times compare on identical
rows. An artifact is loaded only when its sha256 is the one its card records.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklearn.base import clone
from threadpoolctl import threadpool_limits

from attrition.card import ARTIFACT_FILE, CARD_FILE, ModelCard
from attrition.extracts import ExtractError, features_and_target
from registry.trust import TrustedManifest, UntrustedArtifact, load_artifact, sha256_of
from training.evaluate import N_SPLITS, cross_validate
from training.train import TrainingDataError, data_fingerprint, load_training_data


@dataclass(frozen=True)
class VersionScores:
    """One model version's scores on the shared folds, with what its card says."""

    tag: str
    cv: dict[str, Any]
    threshold: float
    artifact_bytes: int
    card_cv: dict[str, Any]
    trained_on_these_data: bool

    @property
    def reproduces_card(self) -> bool:
        """Whether the fold scores are the card's own (same data, same folds, same libraries)."""
        keys = ("roc_auc_folds", "average_precision_folds", "brier_folds")
        return all(self.cv.get(key) == self.card_cv.get(key) for key in keys)


def committed_versions(models_dir: Path) -> list[Path]:
    """``models/<name>/<version>/`` folders holding a card and an artifact, by name then version number."""
    folders = [p.parent for p in models_dir.glob(f"*/v*/{CARD_FILE}") if (p.parent / ARTIFACT_FILE).is_file()]
    return sorted(folders, key=lambda p: (p.parent.name, int(p.name[1:]) if p.name[1:].isdigit() else 0))


def evaluate_version(folder: Path, features: Any, target: Any, fingerprint: str,
                     manifest: TrustedManifest | None = None) -> VersionScores:
    """Cross-validate the definition of the version in ``folder`` on the shared folds.

    The artifact is unpickled only through the trusted loader (``manifest``:
    default, the one in force), and only if it is also the one its card describes.
    """
    card = ModelCard.model_validate(json.loads((folder / CARD_FILE).read_text(encoding="utf-8")))
    artifact = folder / ARTIFACT_FILE
    if sha256_of(artifact) != card.artifact_sha256:
        raise ValueError(f"{card.tag}: {artifact} does not match the sha256 of its card")
    try:
        definition = clone(load_artifact(card.tag, artifact, manifest))
    except UntrustedArtifact as exc:
        raise ValueError(f"{card.tag}: {exc}") from None
    cv, _ = cross_validate(definition, features, target)
    return VersionScores(card.tag, cv, card.threshold, artifact.stat().st_size, card.metrics.get("cv", {}),
                         card.data_fingerprint == fingerprint)


def compare_versions(data_dir: str | Path, models_dir: str | Path,
                     manifest: str | Path | None = None) -> list[VersionScores]:
    """Scores of every committed version on the same folds of the extracts in ``data_dir``.

    ``manifest``: the trusted manifest the artifacts are checked against (default: the one in force).
    """
    trusted = TrustedManifest.read(manifest)
    employees = load_training_data(data_dir)
    fingerprint = data_fingerprint(employees)
    features, target = features_and_target(employees)
    with threadpool_limits(limits=1):
        return [evaluate_version(folder, features, target, fingerprint, trusted)
                for folder in committed_versions(Path(models_dir))]


def comparison_report(scores: list[VersionScores]) -> str:
    """The table of every version: CV means ± standard deviations, threshold, artifact size."""
    header = (f"{'version':<24} {'CV ROC AUC':>13} {'CV PR AUC':>13} {'CV Brier':>13} {'threshold':>9} "
              f"{'artifact':>10}  card")
    lines = [header, "-" * len(header)]
    for s in scores:
        cv = s.cv
        note = ("trained on other data" if not s.trained_on_these_data
                else "same figures" if s.reproduces_card else "differs")
        lines.append(
            f"{s.tag:<24} {cv['roc_auc_mean']:.3f} ± {cv['roc_auc_std']:.3f} "
            f"{cv['average_precision_mean']:.3f} ± {cv['average_precision_std']:.3f} "
            f"{cv['brier_mean']:.3f} ± {cv['brier_std']:.3f} {s.threshold:>9.3f} "
            f"{s.artifact_bytes / 1024:>7.0f} KiB  {note}")
    lines.append(f"mean ± population sd over the same {N_SPLITS} stratified folds (seed {scores[0].cv['random_state']})"
                 if scores else "no model version found")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m training.compare", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="folder of the three HR extracts (read only)")
    parser.add_argument("--models", default=Path("models"), type=Path, help="models folder (default: models)")
    parser.add_argument("--manifest", type=Path, default=None,
                        help="trusted manifest of the artifacts (default: the one in force)")
    args = parser.parse_args(argv)
    try:
        scores = compare_versions(args.data, args.models, args.manifest)
    except (ExtractError, TrainingDataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(comparison_report(scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
