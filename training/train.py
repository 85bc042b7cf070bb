"""Train, evaluate and write every model as an immutable version: ``models/<name>/v<N>/``.

Usage (from the project root)::

    python -m training.train --data ../shared/data/hr-attrition --out models [--promote-best] [--manifest PATH]

For each model: 5-fold CV on all employees (out-of-fold probabilities choose
the threshold), a stratified 80/20 held-out test, then a refit on all
employees, which is the saved artifact. A version is never rewritten: when a
model's definition and the data are those of an existing version, nothing is
trained and the run says ``unchanged``.

Each new version's artifact digest is pinned in the trusted manifest
(``--manifest``, default ``FUTURISYS_TRUSTED_MANIFEST``, i.e. the committed
``registry/trusted_artifacts.json``): the service unpickles nothing else.
The written artifact is then read back through that check
(:func:`registry.trust.load_artifact`) and must reproduce its self-check.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import platform
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from pydantic import ValidationError
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from attrition.card import ARTIFACT_FILE, CARD_FILE, ModelCard
from attrition.extracts import ExtractError, features_and_target, load_employees
from attrition.schema import FEATURE_NAMES, NEGATIVE_LABEL, POSITIVE_LABEL, TARGET, Employee, feature_schema
from attrition.synthetic import EXAMPLE_EMPLOYEE
from registry.aliases import ALIASES_FILE, CHAMPION, promote
from registry.trust import TrustedManifest, UntrustedArtifact, load_artifact, manifest_path, pin
from training.evaluate import (MIN_RECALL, N_SPLITS, QUALITY_BAR, cross_validate, holdout_evaluation,
                               meets_quality_bar, positive_probability, reference_distributions, select_threshold)
from training.pipelines import (BASELINE, MODEL_NAMES, RANDOM_STATE, build_pipeline, estimator_name,
                                hyperparameters, preprocessing_description)
from training.explained import with_reference
from training.references import out_of_fold_references
from training.versions import (CARD_FORMAT, claim_next_version, data_fingerprint, find_same_version,
                               write_atomically)

DECISION_RULE = "prediction = 1 (Oui, will leave) when the probability of class 1 >= threshold, else 0 (Non)"

Log = Callable[[str], None]


class TrainingDataError(ValueError):
    """The joined extracts hold a row or a target value the schema does not accept."""


class TrustError(ValueError):
    """A new version could not be pinned in the trusted manifest, or does not read back as written."""


@dataclass(frozen=True)
class TrainingResult:
    """One model after a run: its version, whether this run created it, and its card."""

    name: str
    version: str
    created: bool
    card: ModelCard
    path: Path

    @property
    def status(self) -> str:
        """``created`` for a new version, ``unchanged`` when an identical one already existed."""
        return "created" if self.created else "unchanged"


def load_training_data(data_dir: str | Path) -> pd.DataFrame:
    """Join the extracts and check every row against the Employee schema and the target's labels.

    Training on a row the service would reject as invalid would teach the
    model inputs it can never receive, so one such row stops the run. The
    error names the employee id and field, never the values.
    """
    employees = load_employees(data_dir)
    labels = {POSITIVE_LABEL, NEGATIVE_LABEL}
    unexpected = sorted(set(employees[TARGET].astype(str)) - labels)
    if unexpected:
        raise TrainingDataError(f"{TARGET} holds {len(unexpected)} value(s) other than {sorted(labels)}")
    for employee_id, row in zip(employees.index, employees.loc[:, list(FEATURE_NAMES)].to_dict("records")):
        try:
            Employee.model_validate(row)
        except ValidationError as exc:
            fields = sorted({".".join(map(str, error["loc"])) or "(row)" for error in exc.errors()})
            raise TrainingDataError(f"employee {employee_id}: invalid field(s) {fields}") from None
    return employees


def library_versions(pipeline: Pipeline | None = None) -> dict[str, str]:
    """Versions of the interpreter and libraries the artifact was made with (unpickling needs them).

    LightGBM is listed for a pipeline whose classifier comes from it.
    """
    versions = {"python": platform.python_version(), "sklearn": sklearn.__version__, "numpy": np.__version__,
                "pandas": pd.__version__, "joblib": joblib.__version__}
    if pipeline is not None and type(pipeline.named_steps["classifier"]).__module__.startswith("lightgbm"):
        import lightgbm

        versions["lightgbm"] = lightgbm.__version__
    return versions


def _serialise(model: Pipeline) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=3)
    return buffer.getvalue()


def train_model(name: str, employees: pd.DataFrame, out_dir: Path, fingerprint: str,
                overrides: Mapping[str, Any] | None = None, log: Log = print,
                manifest: Path | None = None) -> TrainingResult:
    """Evaluate model ``name``, refit it on all employees and write it as a new version, pinned in ``manifest``.

    Returns the existing version instead, untouched, when one has the same
    definition and data fingerprint. ``manifest`` defaults to the one in force.
    """
    manifest = manifest if manifest is not None else manifest_path()
    pipeline = build_pipeline(name, overrides)
    model_dir = out_dir / name
    identity = {"estimator": estimator_name(pipeline), "hyperparameters": hyperparameters(pipeline),
                "preprocessing": preprocessing_description(pipeline), "features": feature_schema(),
                "data_fingerprint": fingerprint, "card_format": CARD_FORMAT}
    same = find_same_version(model_dir, identity)
    if same is not None:
        folder, card = same
        log(f"{name}: unchanged ({card.tag} has the same definition and data)")
        if card.tag not in TrustedManifest.read(manifest).digests:
            log(f"{name}: {card.tag} is not in the trusted manifest {manifest}: the service refuses it until "
                f"`python -m registry promote {card.tag}` pins it")
        return TrainingResult(name, card.version, False, card, folder)

    features, target = features_and_target(employees)
    log(f"{name}: {N_SPLITS}-fold cross-validation on {len(target)} employees")
    cv_metrics, out_of_fold = cross_validate(pipeline, features, target)
    selection = select_threshold(target, out_of_fold)
    threshold = selection["threshold"]
    log(f"{name}: CV ROC AUC {cv_metrics['roc_auc_mean']:.3f} ± {cv_metrics['roc_auc_std']:.3f}, "
        f"threshold {threshold:.3f}; held-out test")
    holdout = holdout_evaluation(pipeline, features, target, threshold)
    references = out_of_fold_references(features, target, out_of_fold, threshold)
    log(f"{name}: held-out ROC AUC {holdout['roc_auc']:.3f}; refitting on all employees")
    final = clone(pipeline).fit(features, target)
    example = pd.DataFrame([EXAMPLE_EMPLOYEE], columns=list(FEATURE_NAMES))
    artifact = _serialise(final)

    version, folder = claim_next_version(model_dir)
    write_atomically(folder / ARTIFACT_FILE, artifact)
    digest = hashlib.sha256(artifact).hexdigest()
    try:
        pin(f"{name}:{version}", digest, manifest)
    except ValueError as exc:
        # The folder is this run's own claim: leave no half-written version behind.
        (folder / ARTIFACT_FILE).unlink()
        folder.rmdir()
        raise TrustError(f"{name}:{version} not written: {exc}") from None
    self_check = float(positive_probability(final, example)[0])
    _read_back(f"{name}:{version}", folder / ARTIFACT_FILE, manifest, example, self_check)
    card = ModelCard(
        name=name,
        version=version,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        estimator=identity["estimator"],
        hyperparameters=identity["hyperparameters"],
        threshold=threshold,
        target=TARGET,
        labels={"0": NEGATIVE_LABEL, "1": POSITIVE_LABEL},
        features=identity["features"],
        metrics={"cv": cv_metrics, "holdout": holdout, "threshold_selection": selection},
        reference_distributions=reference_distributions(features),
        data_fingerprint=fingerprint,
        artifact_sha256=digest,
        versions=library_versions(final),
        self_check={"employee": dict(EXAMPLE_EMPLOYEE), "probability": self_check},
        decision_rule=DECISION_RULE,
        preprocessing=identity["preprocessing"],
        card_format=CARD_FORMAT,
        out_of_fold=references,
        training={
            "final_fit": f"refit on all {len(target)} employees after evaluation (same hyperparameters)",
            "rows": int(len(target)),
            "positive_share": round(float(target.mean()), 6),
            "input": f"pandas DataFrame with exactly the {len(FEATURE_NAMES)} raw fields, named as in features",
            "evaluation": ("metrics.cv: stratified shuffled 5-fold CV on all rows; metrics.threshold_selection: "
                           "on the pooled out-of-fold probabilities; metrics.holdout: fit on a stratified 80 % "
                           "split, scored on the other 20 % at that threshold (chosen with those rows in the "
                           "CV, so held-out precision/recall are slightly optimistic; ROC AUC is not affected); "
                           "out_of_fold: the CV's out-of-fold probabilities, binned, and at the threshold by group"),
            "random_state": RANDOM_STATE,
        },
    )
    # What drives the final model's scores over its training rows, for the dashboard to set live traffic beside.
    card = with_reference(card, final, features)
    # The card goes last: a version folder with a card is complete.
    write_atomically(folder / CARD_FILE, (card.model_dump_json(indent=2) + "\n").encode("utf-8"))
    log(f"{name}: created {card.tag} ({len(artifact) / 1024:.0f} KiB)")
    return TrainingResult(name, version, True, card, folder)


def _read_back(tag: str, artifact: Path, manifest: Path, example: pd.DataFrame, expected: float) -> None:
    """Load the written artifact as the service will (through the manifest check) and redo its self-check."""
    try:
        model = load_artifact(tag, artifact, TrustedManifest.read(manifest))
    except UntrustedArtifact as exc:  # the manifest changed under the run
        raise TrustError(f"{tag}: {exc}") from None
    if float(positive_probability(model, example)[0]) != expected:
        raise TrustError(f"{tag}: the written artifact does not reproduce the fitted model's self-check")


def choose_champion(results: Iterable[TrainingResult]) -> TrainingResult | None:
    """The non-baseline model with the best mean CV ROC AUC (ties: the first name alphabetically)."""
    candidates = [r for r in results if r.name != BASELINE]
    if not candidates:
        return None
    return min(candidates, key=lambda r: (-r.card.metrics["cv"]["roc_auc_mean"], r.name))


def comparison_table(results: Iterable[TrainingResult]) -> str:
    """One line per model: CV and held-out scores at its threshold, as the run prints them."""
    header = (f"{'model':<20} {'version':<8} {'status':<9} {'CV ROC AUC':>15} {'ROC AUC':>8} {'PR AUC':>7} "
              f"{'threshold':>9} {'precision':>9} {'recall':>7} {'F1':>6} {'Brier':>6}")
    lines = [header, "-" * len(header)]
    for r in results:
        cv, holdout = r.card.metrics["cv"], r.card.metrics["holdout"]
        lines.append(
            f"{r.name:<20} {r.version:<8} {r.status:<9} "
            f"{cv['roc_auc_mean']:>8.3f}±{cv['roc_auc_std']:.3f} {holdout['roc_auc']:>8.3f} "
            f"{holdout['average_precision']:>7.3f} {r.card.threshold:>9.3f} {holdout['precision']:>9.3f} "
            f"{holdout['recall']:>7.3f} {holdout['f1']:>6.3f} {holdout['brier']:>6.3f}")
    lines.append(f"CV ROC AUC: mean±std over {N_SPLITS} folds; other columns: held-out 20 % at the model's "
                 f"threshold (highest with out-of-fold recall on leavers >= {MIN_RECALL}).")
    return "\n".join(lines)


def train_all(data_dir: str | Path, out_dir: str | Path, model_names: Iterable[str] = MODEL_NAMES,
              overrides: Mapping[str, Mapping[str, Any]] | None = None, promote_best: bool = False,
              log: Log = print, manifest: str | Path | None = None) -> list[TrainingResult]:
    """Train every model in ``model_names`` into ``out_dir`` and, if asked, promote the best.

    ``overrides`` maps a model name to hyperparameters replacing its defaults.
    The champion alias is set when ``promote_best`` is true or when
    ``out_dir`` has no aliases file yet (first run), and only to a model
    meeting ``QUALITY_BAR``. New versions are pinned in ``manifest`` (default:
    the trusted manifest in force).
    """
    manifest = Path(manifest) if manifest is not None else manifest_path()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    first_run = not (out_dir / ALIASES_FILE).is_file()
    employees = load_training_data(data_dir)
    fingerprint = data_fingerprint(employees)
    names = list(model_names)
    log(f"data: {len(employees)} employees from {data_dir} (fingerprint {fingerprint[:12]}…)")
    results = []
    # One thread: on ~1,500 rows OpenMP threads (gradient boosting) cost more than they
    # save, several times more on a busy machine; results are the same either way.
    with threadpool_limits(limits=1):
        for index, name in enumerate(names, start=1):
            log(f"[{index}/{len(names)}] {name}")
            results.append(train_model(name, employees, out_dir, fingerprint, (overrides or {}).get(name), log,
                                       manifest))
    log(comparison_table(results))

    if promote_best or first_run:
        best = choose_champion(results)
        if best is None:
            log("no non-baseline model trained: no champion promoted")
        elif not meets_quality_bar(best.card.metrics):
            log(f"not promoting {best.card.tag}: below the quality bar {QUALITY_BAR}")
        else:
            try:
                promote(out_dir, best.card.tag, CHAMPION, manifest)
            except ValueError as exc:
                raise TrustError(f"{CHAMPION} not moved: {exc}") from None
            log(f"{CHAMPION} -> {best.card.tag} (best mean CV ROC AUC {best.card.metrics['cv']['roc_auc_mean']:.3f})")
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="folder of the three HR extracts (read only)")
    parser.add_argument("--out", required=True, type=Path, help="models folder (models/<name>/<version>/)")
    parser.add_argument("--promote-best", action="store_true",
                        help=f"point the {CHAMPION!r} alias at the best non-baseline model by mean CV ROC AUC")
    parser.add_argument("--manifest", type=Path, default=None,
                        help="trusted manifest to pin new versions in (default: FUTURISYS_TRUSTED_MANIFEST, "
                             "else registry/trusted_artifacts.json)")
    parser.add_argument("--models", default=",".join(MODEL_NAMES),
                        help=f"comma-separated subset of {','.join(MODEL_NAMES)} (default: all)")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = sorted(set(names) - set(MODEL_NAMES))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; expected names among {list(MODEL_NAMES)}")
    try:
        train_all(args.data, args.out, names, promote_best=args.promote_best, manifest=args.manifest)
    except (ExtractError, TrainingDataError, TrustError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
