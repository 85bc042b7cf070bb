"""The drift statistics against values computed by hand."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from dashboard.drift import (DRIFT, NO_VERDICT, STABLE, WATCH, categorical_drift, change_size, daily_worst,
                             features_drift, goodness_of_fit, holm, js_distance, merged_groups, numeric_drift,
                             outside_reference, psi, reference_percentile, verdicts)

NUMERIC = {"kind": "numeric", "min": 1.0, "max": 9.0,
           "quantiles": {"0.25": 2.0, "0.5": 4.0, "0.75": 6.0},
           "histogram": {"edges": [0.5, 3.5, 6.5, 9.5], "shares": [0.5, 0.5, 0.0]}}
CATEGORICAL = {"kind": "categorical", "shares": {"Oui": 0.25, "Non": 0.75}}


def test_psi_of_a_shifted_pair_of_bins_is_computed_by_hand() -> None:
    # (0.5 - 0.25) ln(0.5 / 0.25) + (0.5 - 0.75) ln(0.5 / 0.75) = 0.25 ln 2 + 0.25 ln 1.5
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5), abs=1e-12)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.274653072, abs=1e-9)


def test_psi_floors_an_empty_bin_at_one_ten_thousandth() -> None:
    # third bin: (0.0001 - 0.25) ln(0.0001 / 0.25); second: (0.5 - 0.25) ln 2
    expected = 0.25 * math.log(2) + (1e-4 - 0.25) * math.log(1e-4 / 0.25)
    assert psi([0.5, 0.5, 0.0], [0.5, 0.25, 0.25]) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(2.128516, abs=1e-6)


def test_identical_distributions_score_zero() -> None:
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    assert js_distance([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == pytest.approx(0.0, abs=1e-7)


def test_jensen_shannon_distance_uses_the_natural_log() -> None:
    # m = (0.375, 0.625); KL(p||m) = 0.5 ln(0.5/0.375) + 0.5 ln(0.5/0.625); KL(q||m) likewise.
    kl_p = 0.5 * math.log(0.5 / 0.375) + 0.5 * math.log(0.5 / 0.625)
    kl_q = 0.25 * math.log(0.25 / 0.375) + 0.75 * math.log(0.75 / 0.625)
    assert js_distance([0.5, 0.5], [0.25, 0.75]) == pytest.approx(math.sqrt((kl_p + kl_q) / 2), abs=1e-12)
    assert js_distance([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.183908, abs=1e-6)
    # Disjoint supports approach the natural-log maximum sqrt(ln 2), not 1 (base 2).
    assert js_distance([1.0, 0.0], [0.0, 1.0]) == pytest.approx(math.sqrt(math.log(2)), abs=2e-3)


def test_bins_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="bins"):
        psi([0.5, 0.5], [1.0])


@pytest.mark.parametrize(("score", "size"), [(0.0, "small"), (0.0999, "small"), (0.1, "moderate"),
                                             (0.2499, "moderate"), (0.25, "large"), (3.0, "large"), (None, "–")])
def test_psi_bands_name_the_size_of_a_change(score: float | None, size: str) -> None:
    assert change_size(score) == size


def test_numeric_input_is_compared_on_the_reference_bins() -> None:
    # live: 10 rows in [0.5, 3.5), 30 in [3.5, 6.5), none above: shares 0.25, 0.75, 0 against 0.5, 0.5, 0
    drift = numeric_drift("x", NUMERIC, {0: 10, 1: 30}, outside_rows=4, min_rows=40)
    assert drift.rows == 40
    assert drift.live_shares == (0.25, 0.75, 0.0)
    assert drift.psi == pytest.approx(0.274653072, abs=1e-9)  # the empty third bin is floored on both sides
    # 40 rows expect about 20, 20 and 0.004 (the empty bin floored at 1e-4, shares renormalised): the third bin joins
    # the second, and chi-square (10 - e1)²/e1 + (30 - e2)²/e2 is close to 10, with 1 degree of freedom
    e1, e2 = 40 * 0.5 / 1.0001, 40 * 0.5001 / 1.0001
    statistic = (10 - e1) ** 2 / e1 + (30 - e2) ** 2 / e2
    assert statistic == pytest.approx(10.0, abs=0.01)
    assert drift.p_value == pytest.approx(math.erfc(math.sqrt(statistic / 2)), rel=1e-9)  # chi-square sf, 1 df
    assert drift.severity == NO_VERDICT  # a verdict needs the other inputs: Holm's adjustment is over all of them
    assert verdicts([drift])[0].severity == DRIFT
    assert drift.outside_share == pytest.approx(0.1)
    assert drift.bins == ("[0.5, 3.5)", "[3.5, 6.5)", "[6.5, 9.5)")


def test_no_verdict_below_the_minimum_number_of_rows() -> None:
    drift = numeric_drift("x", NUMERIC, {0: 10, 1: 30}, outside_rows=0, min_rows=41)
    assert drift.psi is None and drift.js_distance is None and drift.p_value is None
    assert verdicts([drift])[0].severity == NO_VERDICT and "fewer than the 41 needed" in drift.note


def test_categorical_input_counts_unseen_categories_as_outside() -> None:
    drift = categorical_drift("h", CATEGORICAL, {"Oui": 30, "Non": 60, "Peut-être": 10}, min_rows=10)
    assert drift.bins == ("Oui", "Non", "Peut-être")
    assert drift.live_shares == pytest.approx((0.3, 0.6, 0.1))
    expected = ((0.25 - 0.3) * math.log(0.25 / 0.3) + (0.75 - 0.6) * math.log(0.75 / 0.6)
                + (1e-4 - 0.1) * math.log(1e-4 / 0.1))
    assert drift.psi == pytest.approx(expected, abs=1e-12)
    assert drift.outside_share == pytest.approx(0.1)


def test_features_are_sorted_by_verdict_then_evidence() -> None:
    counts = pd.DataFrame([
        {"day": 0, "feature": "x", "bin": 0, "category": None, "rows": 50, "outside": 0},
        {"day": 0, "feature": "x", "bin": 1, "category": None, "rows": 50, "outside": 0},
        {"day": 0, "feature": "h", "bin": None, "category": "Oui", "rows": 100, "outside": 0},
    ])
    drifts = features_drift(counts, {"x": NUMERIC, "h": CATEGORICAL}, min_rows=10, features=["x", "h", "z"])
    assert [d.feature for d in drifts] == ["h", "x", "z"]
    assert [d.severity for d in drifts] == [DRIFT, STABLE, NO_VERDICT]
    assert "no training reference" in drifts[2].note  # named, not a crash


def test_daily_worst_skips_days_below_the_minimum() -> None:
    counts = pd.DataFrame([
        {"day": 86_400, "feature": "h", "bin": None, "category": "Oui", "rows": 100, "outside": 0},
        {"day": 2 * 86_400, "feature": "h", "bin": None, "category": "Oui", "rows": 5, "outside": 0},
    ])
    trend = daily_worst(counts, {"h": CATEGORICAL}, min_rows=10)
    assert list(trend["day"]) == [pd.Timestamp("1970-01-02", tz="UTC")]
    expected = (0.25 - 1.0) * math.log(0.25 / 1.0) + (0.75 - 1e-4) * math.log(0.75 / 1e-4)
    assert trend["worst_psi"].iloc[0] == pytest.approx(expected, abs=1e-12)
    assert trend["feature"].iloc[0] == "h"


def test_percentile_in_the_training_reference() -> None:
    assert reference_percentile(4.0, NUMERIC) == pytest.approx(50.0)
    assert reference_percentile(3.0, NUMERIC) == pytest.approx(37.5)  # halfway between 2 (p25) and 4 (p50)
    assert reference_percentile(0.0, NUMERIC) == 0.0
    assert reference_percentile(10.0, NUMERIC) == 100.0
    tied = {**NUMERIC, "quantiles": {"0.25": 4.0, "0.5": 4.0, "0.75": 4.0}}
    assert reference_percentile(4.0, tied) == pytest.approx(50.0)  # the middle of p25..p75


def test_values_outside_what_training_saw() -> None:
    assert outside_reference(10, NUMERIC) and outside_reference(0, NUMERIC)
    assert not outside_reference(9, NUMERIC)
    assert outside_reference("Peut-être", CATEGORICAL) and not outside_reference("Oui", CATEGORICAL)


def test_holm_adjusts_by_rank_and_keeps_the_order() -> None:
    # sorted 0.01, 0.02, 0.04 times 3, 2, 1 = 0.03, 0.04, 0.04 (made non-decreasing); back in the given order
    assert holm([0.04, 0.01, 0.02]).tolist() == pytest.approx([0.04, 0.03, 0.04])
    assert holm([[0.2, 0.9], [0.001, 0.2]]).ravel().tolist() == pytest.approx([0.4, 0.9, 0.002, 0.2])
    assert holm([0.6, 0.7]).max() <= 1.0


def test_bins_merge_until_each_expects_five_rows() -> None:
    # 20 rows over shares 0.1, 0.1, 0.3, 0.5 expect 2, 2, 6, 10: the first three merge, the last stands
    assert merged_groups([0.1, 0.1, 0.3, 0.5], 20, ordered=True).tolist() == [0, 0, 0, 1]
    # categories merge from the rarest: 0.05 and 0.15 (1 + 3 rows) then 0.3 (6) makes a group of 10
    assert merged_groups([0.5, 0.05, 0.3, 0.15], 20, ordered=False).tolist() == [1, 0, 0, 0]
    assert merged_groups([0.5, 0.5], 4, ordered=True).tolist() == [0, 0]  # too few rows: one group, nothing to test


def test_goodness_of_fit_is_scipys_chi_square_on_the_merged_bins() -> None:
    from scipy.stats import chisquare

    counts = [30, 25, 45]
    expected = chisquare(counts, f_exp=[20, 30, 50]).pvalue
    assert goodness_of_fit([0.2, 0.3, 0.5], counts, ordered=True) == pytest.approx(expected, rel=1e-12)
    assert goodness_of_fit([0.5, 0.5], [2, 2], ordered=True) == 1.0
    many = goodness_of_fit([0.2, 0.3, 0.5], [counts, [20, 30, 50]], ordered=True)
    assert many.tolist() == pytest.approx([expected, 1.0])


def test_a_significant_but_small_change_is_not_an_alarm() -> None:
    # 100,000 rows at 0.26 / 0.74 against 0.25 / 0.75: certainly not sampling noise, but PSI 0.0005
    drift = verdicts([categorical_drift("h", CATEGORICAL, {"Oui": 26_000, "Non": 74_000}, min_rows=100)])[0]
    assert drift.adjusted_p < 1e-6 and drift.psi < 0.001
    assert drift.severity == WATCH
