"""The statistics of the Evaluation, Comparison and Fairness pages: plain numpy, scikit-learn and fairlearn.

No Streamlit, Altair or database here (an import contract holds it): the
pages hand in frames of labelled predictions and get figures back.
"""
from dashboard.evaluation.calibration import calibration_bins
from dashboard.evaluation.comparison import agreement, auc_difference
from dashboard.evaluation.fairness import (AGE_BANDS, ATTRIBUTES, FOUR_FIFTHS, MIN_GROUP_ROWS, age_band,
                                           group_table)
from dashboard.evaluation.labelled import BEYOND_HORIZON, FORECAST, RETROSPECTIVE, judge
from dashboard.evaluation.metrics import METRICS, RESAMPLES, SEED, Estimate, bootstrap_metrics

__all__ = ["calibration_bins", "agreement", "auc_difference", "AGE_BANDS", "ATTRIBUTES", "FOUR_FIFTHS",
           "MIN_GROUP_ROWS", "age_band", "group_table", "BEYOND_HORIZON", "FORECAST", "RETROSPECTIVE", "judge",
           "METRICS", "RESAMPLES", "SEED", "Estimate", "bootstrap_metrics"]
