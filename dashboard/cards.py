"""The model cards as the Models page compares them: each evaluation figure with where it comes from."""
from __future__ import annotations

from typing import Any

from attrition.card import ModelCard


def metric(section: dict[str, Any], key: str) -> float | None:
    """A figure of a section of the card's metrics, ``None`` when the card does not hold it."""
    value = section.get(key)
    return None if value is None else float(value)


def sourced(card: ModelCard, cv_key: str, holdout_key: str) -> str:
    """A metric of the card with where it comes from: cross-validation (mean ± std), else the holdout split."""
    cv, holdout = card.metrics.get("cv", {}), card.metrics.get("holdout", {})
    mean, std = metric(cv, f"{cv_key}_mean"), metric(cv, f"{cv_key}_std")
    if mean is not None:
        return f"{mean:.3f} ± {std or 0:.3f} ({cv.get('n_splits', '?')}-fold CV)"
    value = metric(holdout, holdout_key)
    return "–" if value is None else f"{value:.3f} (holdout)"


def at_threshold(card: ModelCard, key: str) -> str:
    """A metric at the card's threshold: out-of-fold (training's CV) when the card has it, else the holdout."""
    selection, holdout = card.metrics.get("threshold_selection") or {}, card.metrics.get("holdout") or {}
    if metric(selection, key) is not None:
        return f"{metric(selection, key):.3f} (out-of-fold CV)"
    value = metric(holdout, key)
    return "–" if value is None else f"{value:.3f} (holdout)"


def card_summary(card: ModelCard, aliases: dict[str, str]) -> dict[str, Any]:
    """One column of the side-by-side comparison: the card's evaluation, each figure with its source."""
    return {
        "model": card.tag,
        "aliases": ", ".join(sorted(a for a, tag in aliases.items() if tag == card.tag)) or "–",
        "ROC AUC": sourced(card, "roc_auc", "roc_auc"),
        "PR AUC (average precision)": sourced(card, "average_precision", "average_precision"),
        "Brier score": sourced(card, "brier", "brier"),
        "precision at threshold": at_threshold(card, "precision"),
        "recall at threshold": at_threshold(card, "recall"),
        "F1 at threshold": at_threshold(card, "f1"),
        "threshold": f"{card.threshold:.4f}",
        "trained": card.created_at[:19].replace("T", " "),
        "data fingerprint": card.data_fingerprint[:12],
    }


def headline_auc(card: ModelCard) -> float | None:
    """The card's ROC AUC: cross-validated where it has it, else the holdout's (as its column says)."""
    return metric(card.metrics.get("cv", {}), "roc_auc_mean") or metric(card.metrics.get("holdout", {}), "roc_auc")


def out_of_fold(card: ModelCard | None) -> dict[str, Any]:
    """The card's out-of-fold references (v2 cards: probability bins, calibration, fairness); empty when absent."""
    if card is None:
        return {}
    return dict((card.model_extra or {}).get("out_of_fold") or {})


def probability_reference(card: ModelCard | None) -> list[dict[str, float]] | None:
    """The card's out-of-fold distribution of probabilities as bins (``probability_from``, ``_to``, ``share``)."""
    distribution = out_of_fold(card).get("probability_distribution") or {}
    edges, shares = distribution.get("edges"), distribution.get("shares")
    if not edges or not shares:
        return None
    return [{"probability_from": float(low), "probability_to": float(high), "share": float(share)}
            for low, high, share in zip(edges[:-1], edges[1:], shares)]


def calibration_reference(card: ModelCard | None) -> list[dict[str, Any]] | None:
    """The card's calibration bins (``lower``, ``upper``, ``count``, ``mean_predicted``, ``observed_rate``), or None."""
    bins = (out_of_fold(card).get("calibration") or {}).get("bins")
    return list(bins) if bins else None


def fairness_reference(card: ModelCard | None, attribute: str) -> dict[str, dict[str, Any]] | None:
    """The card's out-of-fold figures by group of ``attribute`` (``genre``, ``departement``, ``age_band``), or None."""
    groups = ((out_of_fold(card).get("fairness") or {}).get(attribute) or {}).get("groups")
    return dict(groups) if groups else None
