"""The out-of-fold references of a card, on rows whose answer is known by construction (no real data)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import PROJECT_ROOT
from training.references import (AGE_BANDS, age_band, calibration_bins, fairness_reference, out_of_fold_references,
                                 probability_distribution)


def _ten_employees() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Four women then six men, all in Consulting, ages on the band edges; predictions at 0.5 chosen by hand.

    Women: leavers (1, 1), stayers (0, 0), flagged (1, 0, 1, 0): rate 1/2, recall 1/2, false positives 1/2.
    Men: one leaver, five stayers, flagged (1, 0, 0, 0, 0, 1): rate 1/3, recall 1, false positives 1/5.
    """
    features = pd.DataFrame({
        "genre": ["F"] * 4 + ["M"] * 6,
        "departement": ["Consulting"] * 10,
        "age": [25, 35, 45, 55, 29, 30, 39, 40, 49, 50],
    })
    target = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 0])
    probability = np.array([0.9, 0.1, 0.8, 0.2, 0.9, 0.1, 0.1, 0.1, 0.1, 0.6])
    return features, target, probability


def test_age_bands_put_each_edge_age_in_the_band_it_opens() -> None:
    ages = pd.Series([16, 29, 30, 39, 40, 49, 50, 75])
    assert age_band(ages).tolist() == ["under 30", "under 30", "30-39", "30-39", "40-49", "40-49",
                                       "50 and over", "50 and over"]
    assert [label for label, _, _ in AGE_BANDS] == ["under 30", "30-39", "40-49", "50 and over"]


def test_fairness_by_genre_gives_the_rates_computed_by_hand() -> None:
    reference = fairness_reference(*_ten_employees(), threshold=0.5)
    women, men = reference["genre"]["groups"]["F"], reference["genre"]["groups"]["M"]
    assert (women["size"], women["leavers"], men["size"], men["leavers"]) == (4, 2, 6, 1)
    assert women["positive_rate"] == 0.5 and men["positive_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert women["recall"] == 0.5 and men["recall"] == 1.0
    assert women["false_positive_rate"] == 0.5 and men["false_positive_rate"] == 0.2
    # The highest rate is the women's: their ratio is 1, the men's (1/3) / (1/2).
    assert women["ratio_to_highest"] == 1.0 and men["ratio_to_highest"] == pytest.approx(2 / 3, abs=1e-6)
    assert reference["genre"]["lowest_ratio"] == men["ratio_to_highest"]
    assert reference["genre"]["below_four_fifths"] == ["M"]
    assert reference["overall"] == {"size": 10, "positive_rate": 0.4}


def test_every_group_is_listed_with_its_size_and_undefined_rates_are_none() -> None:
    reference = fairness_reference(*_ten_employees(), threshold=0.5)
    departments = reference["departement"]["groups"]
    assert list(departments) == ["Commercial", "Consulting", "Ressources Humaines"]
    assert departments["Commercial"] == {"size": 0, "leavers": 0, "positive_rate": None, "ratio_to_highest": None,
                                         "recall": None, "false_positive_rate": None}
    assert departments["Consulting"]["size"] == 10 and departments["Consulting"]["ratio_to_highest"] == 1.0
    bands = reference["age_band"]["groups"]
    assert {label: group["size"] for label, group in bands.items()} == {
        "under 30": 2, "30-39": 3, "40-49": 3, "50 and over": 2}
    # Under 30: two leavers, no stayer (no false-positive rate); 50 and over: no leaver (no recall).
    assert bands["under 30"]["false_positive_rate"] is None and bands["under 30"]["recall"] == 1.0
    assert bands["50 and over"]["recall"] is None and bands["50 and over"]["false_positive_rate"] == 0.5


def test_a_prediction_at_exactly_the_threshold_counts_as_flagged() -> None:
    features, target, probability = _ten_employees()
    at_threshold = fairness_reference(features, target, probability, threshold=0.6)
    assert at_threshold["genre"]["groups"]["M"]["positive_rate"] == pytest.approx(2 / 6, abs=1e-6)


def test_calibration_bins_hold_counts_means_and_observed_rates() -> None:
    target = np.array([0, 1, 0, 1, 1])
    probability = np.array([0.05, 0.05, 0.15, 0.95, 1.0])
    calibration = calibration_bins(target, probability)
    bins = calibration["bins"]
    assert len(bins) == 10 and bins[0]["lower"] == 0.0 and bins[-1]["upper"] == 1.0
    assert (bins[0]["count"], bins[0]["mean_predicted"], bins[0]["observed_rate"]) == (2, 0.05, 0.5)
    assert (bins[1]["count"], bins[1]["mean_predicted"], bins[1]["observed_rate"]) == (1, 0.15, 0.0)
    # 1.0 falls in the last bin, which is closed on the right.
    assert (bins[9]["count"], bins[9]["positives"], bins[9]["mean_predicted"]) == (2, 2, 0.975)
    assert all(b["mean_predicted"] is None and b["observed_rate"] is None for b in bins[2:9])
    assert calibration["expected_calibration_error"] == pytest.approx((2 * 0.45 + 0.15 + 2 * 0.025) / 5, abs=1e-6)


def test_on_any_probabilities_the_bins_add_up_to_the_rows() -> None:
    generator = np.random.default_rng(3)
    probability = generator.beta(0.7, 3.0, size=997)
    target = (generator.random(997) < probability).astype(int)
    distribution = probability_distribution(probability)
    assert sum(distribution["counts"]) == distribution["rows"] == 997
    assert distribution["counts"] == np.histogram(probability, bins=distribution["edges"])[0].tolist()
    assert sum(distribution["shares"]) == pytest.approx(1.0, abs=1e-4)
    calibration = calibration_bins(target, probability)
    assert sum(b["count"] for b in calibration["bins"]) == 997
    assert sum(b["positives"] for b in calibration["bins"]) == target.sum()
    for b in calibration["bins"]:
        if b["count"]:
            assert b["lower"] <= b["mean_predicted"] <= b["upper"]
            assert b["observed_rate"] == pytest.approx(b["positives"] / b["count"], abs=1e-6)


def _lists(value: object) -> list[list]:
    if isinstance(value, dict):
        return [found for item in value.values() for found in _lists(item)]
    if isinstance(value, list):
        return [value, *(found for item in value for found in _lists(item))]
    return []


def test_the_references_are_aggregates_only() -> None:
    generator = np.random.default_rng(5)
    rows = 600
    features = pd.DataFrame({"genre": generator.choice(["F", "M"], rows),
                             "departement": generator.choice(["Commercial", "Consulting"], rows),
                             "age": generator.integers(18, 65, rows)})
    probability = generator.random(rows)
    target = pd.Series((generator.random(rows) < probability).astype(int))
    references = out_of_fold_references(features, target, probability, 0.5)
    assert set(references) == {"probability_distribution", "calibration", "fairness"}
    assert json.loads(json.dumps(references)) == references
    # Bins and groups, never one entry per row.
    assert max(len(found) for found in _lists(references)) <= 21


def test_the_service_imports_neither_fairlearn_nor_training() -> None:
    # fairlearn is a training and dashboard dependency: importing the service must not pull it in.
    script = "import sys, service; print(sorted(m for m in ('fairlearn', 'training') if m in sys.modules))"
    completed = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                               timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip().splitlines()[-1] == "[]"
