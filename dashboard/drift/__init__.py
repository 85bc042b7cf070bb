"""Drift statistics, apart from any page: distances (PSI, Jensen–Shannon), the goodness-of-fit test and Holm's
adjustment, each input's verdict, and where a value stands in a card's reference.

Plain functions over numpy and pandas: no Streamlit, no database (the import contracts in ``setup.cfg`` hold it).
"""
from dashboard.drift.distances import (EMPTY_BIN_SHARE, PSI_DRIFT, PSI_WATCH, change_size, floored, js_distance, psi,
                                       shares_of)
from dashboard.drift.features import (DRIFT, NO_VERDICT, SEVERITY_ORDER, STABLE, WATCH, FeatureDrift,
                                      categorical_drift, daily_worst, drifting, features_drift, numeric_drift,
                                      verdicts, without_reference)
from dashboard.drift.reference import bin_labels, histogram_bin, outside_reference, reference_percentile
from dashboard.drift.significance import FAMILY_ALPHA, MIN_EXPECTED, goodness_of_fit, holm, merged_groups

__all__ = ["EMPTY_BIN_SHARE", "PSI_DRIFT", "PSI_WATCH", "change_size", "floored", "js_distance", "psi", "shares_of",
           "DRIFT", "NO_VERDICT", "SEVERITY_ORDER", "STABLE", "WATCH", "FeatureDrift", "categorical_drift",
           "daily_worst", "drifting", "features_drift", "numeric_drift", "verdicts", "without_reference",
           "bin_labels", "histogram_bin", "outside_reference", "reference_percentile", "FAMILY_ALPHA",
           "MIN_EXPECTED", "goodness_of_fit", "holm", "merged_groups"]
