"""The Drift page's alarm as a statistical statement: rare without drift, near-certain with a known shift.

Samples are drawn from the champion card's own reference distributions
(vectorised: numpy draws every sample of an input at once), binned as the
page's SQL bins them, and judged as the page judges them.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pytest

from dashboard.demo_traffic import champion_references
from dashboard.drift import DRIFT, FAMILY_ALPHA, goodness_of_fit, holm, psi, shares_of, verdicts
from dashboard.drift.features import FeatureDrift
from settings import settings

REFERENCES = champion_references(settings.models_dir)
NO_DRIFT_SAMPLES = 2_000
SHIFT_SAMPLES = 1_000
SHIFT_ROWS = 500
PAY_FACTOR = 1.3


def _shares(reference: Mapping[str, Any]) -> np.ndarray:
    values = list(reference["shares"].values()) if reference["kind"] == "categorical" else \
        reference["histogram"]["shares"]
    shares = np.asarray(values, dtype=float)
    return shares / shares.sum()


def _numeric_counts(rng: np.random.Generator, reference: Mapping[str, Any], rows: int, samples: int,
                    factor: float = 1.0) -> np.ndarray:
    """Counts per reference bin of values drawn from the histogram (uniform in a bin), times ``factor``."""
    edges = np.asarray(reference["histogram"]["edges"], dtype=float)
    shares = _shares(reference)
    bins = rng.choice(shares.size, size=(samples, rows), p=shares)
    values = edges[bins] + rng.random((samples, rows)) * (edges[bins + 1] - edges[bins])
    # The page's SQL bins: below the first inner edge is bin 0, at or above the last is the last bin.
    binned = np.searchsorted(edges[1:-1], values * factor, side="right")
    return np.stack([np.bincount(row, minlength=shares.size) for row in binned])


def _page_verdicts(rng: np.random.Generator, rows: int, samples: int,
                   shifted: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: does the page raise its alarm (an input judged ``drift``), and does any input reject."""
    p_values, scores = [], []
    for feature, reference in REFERENCES.items():
        shares = _shares(reference)
        ordered = reference["kind"] != "categorical"
        if shifted and feature == "revenu_mensuel":
            counts = _numeric_counts(rng, reference, rows, samples, PAY_FACTOR)
        elif shifted and feature == "heure_supplementaires":
            doubled = dict(reference["shares"])
            doubled["Oui"] = 2 * doubled["Oui"]
            doubled["Non"] = 1 - doubled["Oui"]
            counts = rng.multinomial(rows, [doubled[c] for c in reference["shares"]], size=samples)
        else:  # binned values drawn from the reference are multinomial on its shares
            counts = rng.multinomial(rows, shares, size=samples)
        p_values.append(goodness_of_fit(shares, counts, ordered))
        scores.append(psi(shares, shares_of(counts)))
    p, size = np.column_stack(p_values), np.column_stack(scores)
    adjusted = holm(p)
    # verdicts() on one sample is the page's own code: it must agree with the vectorised judgement.
    first = [FeatureDrift(f, "", rows, size[0, i], None, p[0, i], None, "", 0.0, (), (), ())
             for i, f in enumerate(REFERENCES)]
    alarm = (adjusted <= FAMILY_ALPHA) & (size >= 0.1)
    assert any(d.severity == DRIFT for d in verdicts(first)) == bool(alarm[0].any())
    return alarm.any(axis=1), (adjusted <= FAMILY_ALPHA).any(axis=1)


def test_without_drift_the_page_rarely_raises_its_alarm() -> None:
    rng = np.random.default_rng(20_261_207)
    alarms, rejections = _page_verdicts(rng, settings.drift_min_rows, NO_DRIFT_SAMPLES, shifted=False)
    print(f"\nno drift, {settings.drift_min_rows} rows, {NO_DRIFT_SAMPLES} samples: page alarm rate "
          f"{alarms.mean():.2%}, any input rejected {rejections.mean():.2%} (family-wise α {FAMILY_ALPHA:.0%})")
    assert alarms.mean() <= 0.02
    assert rejections.mean() <= 0.02


def test_a_known_shift_is_detected() -> None:
    rng = np.random.default_rng(7)
    alarms, _ = _page_verdicts(rng, SHIFT_ROWS, SHIFT_SAMPLES, shifted=True)
    print(f"\nshift (heure_supplementaires Oui share doubled, revenu_mensuel x{PAY_FACTOR}), {SHIFT_ROWS} rows, "
          f"{SHIFT_SAMPLES} samples: detected {alarms.mean():.2%}")
    assert alarms.mean() >= 0.90


@pytest.mark.parametrize("feature", ["revenu_mensuel", "heure_supplementaires"])
def test_each_shift_alone_is_detected(feature: str) -> None:
    reference = REFERENCES[feature]
    shares = _shares(reference)
    rng = np.random.default_rng(11)
    if feature == "revenu_mensuel":
        counts = _numeric_counts(rng, reference, SHIFT_ROWS, 200, PAY_FACTOR)
    else:
        counts = rng.multinomial(SHIFT_ROWS, [2 * shares[0], 1 - 2 * shares[0]], size=200)
    # Bonferroni over the page's inputs: the strictest step of Holm's adjustment.
    detected = goodness_of_fit(shares, counts, reference["kind"] != "categorical") * len(REFERENCES) <= FAMILY_ALPHA
    print(f"\n{feature} alone: detected {detected.mean():.2%}")
    assert detected.mean() >= 0.90
