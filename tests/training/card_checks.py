"""Checks shared by the training tests: a card's out-of-fold references agree with each other and its rows."""
from __future__ import annotations

import pytest

from attrition.card import ModelCard
from training.references import AGE_BANDS, FAIRNESS_GROUPS
from training.versions import CARD_FORMAT


def check_out_of_fold_references(card: ModelCard, rows: int, leavers: int) -> None:
    """The card's references are consistent with each other, with its threshold selection and with its
    ``rows`` training rows of which ``leavers`` left."""
    references = card.model_extra["out_of_fold"]
    assert card.model_extra["card_format"] == CARD_FORMAT
    distribution = references["probability_distribution"]
    assert sum(distribution["counts"]) == distribution["rows"] == rows
    assert len(distribution["edges"]) == len(distribution["counts"]) + 1
    assert distribution["edges"][0] == 0.0 and distribution["edges"][-1] == 1.0
    calibration = references["calibration"]["bins"]
    assert sum(b["count"] for b in calibration) == rows
    assert sum(b["positives"] for b in calibration) == leavers
    for b in calibration:
        if b["count"]:
            assert b["lower"] <= b["mean_predicted"] <= b["upper"]
            assert b["observed_rate"] == pytest.approx(b["positives"] / b["count"], abs=1e-6)
        else:
            assert b["mean_predicted"] is None and b["observed_rate"] is None
    fairness = references["fairness"]
    assert fairness["threshold"] == card.threshold
    selection = card.metrics["threshold_selection"]
    for attribute in FAIRNESS_GROUPS:
        groups = fairness[attribute]["groups"]
        assert sum(g["size"] for g in groups.values()) == rows
        assert sum(g["leavers"] for g in groups.values()) == leavers
        ratios = [g["ratio_to_highest"] for g in groups.values() if g["ratio_to_highest"] is not None]
        assert all(0.0 <= r <= 1.0 for r in ratios) and max(ratios) == 1.0
        # The groups' recalls, weighted by their leavers, are the overall recall at the threshold.
        caught = sum(g["recall"] * g["leavers"] for g in groups.values() if g["leavers"])
        assert caught / leavers == pytest.approx(selection["recall"], abs=1e-5)
        flagged = sum(g["positive_rate"] * g["size"] for g in groups.values() if g["size"])
        assert flagged / rows == pytest.approx(selection["predicted_positive_share"], abs=1e-5)
    assert list(fairness["age_band"]["groups"]) == [label for label, _, _ in AGE_BANDS]


def check_explanation_reference(card: ModelCard, pipeline, features) -> None:
    """The card's ``explanation_reference`` is the mean |contribution| per field of ``pipeline`` (its artifact) over
    the training rows ``features``, as the explainer built from the artifact and this card computes it."""
    import numpy as np

    from attrition.schema import FEATURE_NAMES
    from registry.explanations import build_explainer

    reference = card.model_extra["explanation_reference"]
    assert reference["rows"] == len(features)
    assert [item["field"] for item in reference["mean_abs_contribution"]] == list(FEATURE_NAMES)
    explainer = build_explainer(pipeline, card)
    contributions, outputs = explainer.field_contributions(features[list(FEATURE_NAMES)].to_dict("records"))
    assert np.max(np.abs(explainer.base_value + contributions.sum(axis=1) - outputs)) <= 1e-6
    expected = np.abs(contributions).mean(axis=0)
    assert reference["link"] == explainer.link
    assert reference["base_value"] == pytest.approx(explainer.base_value, abs=1e-9)
    assert np.max(np.abs(np.array([item["mean_abs"] for item in reference["mean_abs_contribution"]]) - expected)) \
        <= 1e-9
