"""The card's explanation reference: what drives the final model's scores over its training rows, as aggregates.

``explanation_reference`` holds, for the model refitted on all employees,
the mean |contribution| of each of the 30 input fields over the training
rows, computed with :mod:`registry.explanations` (the explainer the service
and the dashboard build from the artifact and this card), so the dashboard
can set the live traffic's figure beside it. A model that one-hot encodes
numeric fields by level also gets each level's training share
(``level_shares``): its linear background needs them, and the reference
histograms may join levels in one bin. Aggregates only, never a row.

``python -m training.explained models/ v2`` adds the reference to the cards
of existing versions, their artifacts untouched (loaded through the trusted
manifest); ``training.train`` writes it for every new version.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from attrition.card import ARTIFACT_FILE, CARD_FILE, ModelCard
from attrition.schema import FEATURE_NAMES

_DIGITS = 6


def level_shares(pipeline: Any, features: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per numeric field the pipeline one-hot encodes by level: the training share of each of its levels."""
    from sklearn.preprocessing import OneHotEncoder

    transformer = pipeline.steps[0][1]
    shares: dict[str, dict[str, float]] = {}
    for _, step, columns in getattr(transformer, "transformers_", []):
        if not isinstance(step, OneHotEncoder):
            continue
        for field, categories in zip([columns] if isinstance(columns, str) else list(columns), step.categories_):
            values = features[field]
            if not pd.api.types.is_numeric_dtype(values):
                continue  # categorical fields: the reference distributions hold their shares
            shares[field] = {str(level): round(float((values == level).mean()), _DIGITS) for level in categories}
    return shares


def explanation_reference(pipeline: Any, card: ModelCard, features: pd.DataFrame) -> dict[str, Any]:
    """The ``explanation_reference`` of ``card``'s model (``pipeline``) over the training rows ``features``."""
    from registry.explanations import build_explainer

    levels = level_shares(pipeline, features)
    provisional = ModelCard.model_validate({**card.model_dump(), "explanation_reference": {"level_shares": levels}})
    explainer = build_explainer(pipeline, provisional)
    rows = features[list(FEATURE_NAMES)].to_dict("records")
    contributions, _ = explainer.field_contributions(rows)
    mean_abs = np.abs(contributions).mean(axis=0)
    return {
        "link": explainer.link,
        "base_value": round(explainer.base_value, 9),
        "rows": len(rows),
        # Per-field records, not a dict of the 30 fields: a card holds nothing shaped like an employee's row.
        "mean_abs_contribution": [{"field": field, "mean_abs": round(float(value), 9)}
                                  for field, value in zip(FEATURE_NAMES, mean_abs)],
        "level_shares": levels,
        "about": ("mean |contribution| of each input field over the training rows, on the link scale, for the "
                  "final model (registry.explanations); level_shares: training share of each level of a numeric "
                  "field one-hot encoded by level"),
    }


def with_reference(card: ModelCard, pipeline: Any, features: pd.DataFrame) -> ModelCard:
    """``card`` with its explanation reference."""
    reference = explanation_reference(pipeline, card, features)
    return ModelCard.model_validate({**card.model_dump(), "explanation_reference": reference})


def add_to_versions(models_dir: Path, version: str, data_dir: Path) -> list[str]:
    """Write the explanation reference into the card of every ``<name>/<version>`` of ``models_dir``.

    The artifacts are read (through the trusted manifest), never written.
    """
    from attrition.extracts import features_and_target, load_employees
    from registry.trust import load_artifact

    from training.versions import data_fingerprint, write_atomically

    employees = load_employees(data_dir)
    fingerprint = data_fingerprint(employees)
    features, _ = features_and_target(employees)
    written = []
    for folder in sorted(Path(models_dir).glob(f"*/{version}")):
        card_path = folder / CARD_FILE
        card = ModelCard.model_validate(json.loads(card_path.read_text(encoding="utf-8")))
        if card.data_fingerprint != fingerprint:  # the training rows are the ones the version was fitted on
            raise ValueError(f"{card.tag} was not trained on the extracts of {data_dir}")
        pipeline = load_artifact(card.tag, folder / ARTIFACT_FILE)
        updated = with_reference(card, pipeline, features)
        write_atomically(card_path, (updated.model_dump_json(indent=2) + "\n").encode("utf-8"))
        written.append(card.tag)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m training.explained MODELS_DIR VERSION --data DIR``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models_dir", type=Path)
    parser.add_argument("version")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/hr-attrition"))
    arguments = parser.parse_args(argv)
    for tag in add_to_versions(arguments.models_dir, arguments.version, arguments.data):
        print(f"{tag}: explanation_reference written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
