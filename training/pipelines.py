"""The model definitions: one scikit-learn ``Pipeline`` per model name, encoding included.

Every pipeline takes a DataFrame of the 30 raw fields and nothing else; the
serving side never re-implements preprocessing. Only scikit-learn classes go
into a pipeline (no function or class of this project), so an artifact
unpickles wherever scikit-learn is installed, without ``training/``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from attrition.schema import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES

RANDOM_STATE = 42

BASELINE = "baseline"
LOGISTIC_REGRESSION = "logistic_regression"
RANDOM_FOREST = "random_forest"
GRADIENT_BOOSTING = "gradient_boosting"
MODEL_NAMES: tuple[str, ...] = (BASELINE, LOGISTIC_REGRESSION, RANDOM_FOREST, GRADIENT_BOOSTING)

# Classifier and its hyperparameters for each model name. The values were
# chosen once by 5-fold CV ROC AUC among a handful of candidates, not searched.
_CLASSIFIERS: dict[str, tuple[type[BaseEstimator], dict[str, Any]]] = {
    # The floor any real model must beat: always answers the training prior.
    BASELINE: (DummyClassifier, {"strategy": "prior", "random_state": RANDOM_STATE}),
    # 45 encoded columns for ~1,500 rows: a little more regularisation than C=1
    # helps. No class weights in any model: the threshold handles the 16 % of
    # leavers, and unweighted fits keep the probabilities calibrated (weighting
    # "balanced" lowered CV ROC AUC and raised the Brier score here).
    LOGISTIC_REGRESSION: (LogisticRegression, {"C": 0.3, "max_iter": 5_000, "random_state": RANDOM_STATE}),
    # Depth and leaf size bounded so model.joblib stays around 1-2 MB.
    RANDOM_FOREST: (RandomForestClassifier, {
        "n_estimators": 300, "max_depth": 8, "min_samples_leaf": 3, "n_jobs": 1, "random_state": RANDOM_STATE}),
    # Shallow trees and a small learning rate: the data set is small and noisy.
    # Early stopping off, so every fit sees the same rows (no internal split).
    GRADIENT_BOOSTING: (HistGradientBoostingClassifier, {
        "learning_rate": 0.05, "max_iter": 300, "max_depth": 2, "l2_regularization": 1.0,
        "early_stopping": False, "random_state": RANDOM_STATE}),
}

# Scaling changes nothing for trees; it matters for the linear model's penalty.
_SCALED = frozenset({BASELINE, LOGISTIC_REGRESSION})


def preprocessing(scale_numeric: bool) -> ColumnTransformer:
    """Encode the 30 raw fields: one-hot categoricals, numerics scaled or passed through.

    The one-hot categories are the schema's domains (not the ones seen in the
    data), so the encoded layout is fixed by the schema; an unknown category
    at prediction time encodes as all zeros instead of failing.
    """
    categories = [list(spec.categories) for spec in FEATURES if spec.categories is not None]
    return ColumnTransformer(
        [
            ("categorical", OneHotEncoder(categories=categories, handle_unknown="ignore", sparse_output=False),
             list(CATEGORICAL_FEATURES)),
            ("numeric", StandardScaler() if scale_numeric else "passthrough", list(NUMERIC_FEATURES)),
        ],
        remainder="drop",
    )


def build_pipeline(name: str, overrides: Mapping[str, Any] | None = None) -> Pipeline:
    """The unfitted pipeline of model ``name``; ``overrides`` replace classifier hyperparameters."""
    if name not in _CLASSIFIERS:
        raise ValueError(f"unknown model {name!r}; expected one of {list(MODEL_NAMES)}")
    estimator_class, params = _CLASSIFIERS[name]
    classifier = estimator_class(**{**params, **dict(overrides or {})})
    return Pipeline([("preprocess", preprocessing(name in _SCALED)), ("classifier", classifier)])


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON types: numpy scalars unwrapped, containers recursed, objects as repr."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else repr(value)
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in value]
    return repr(value)


def hyperparameters(pipeline: Pipeline) -> dict[str, Any]:
    """The classifier's hyperparameters as JSON-safe values (what identifies a model version)."""
    return json_safe(pipeline.named_steps["classifier"].get_params(deep=False))


def estimator_name(pipeline: Pipeline) -> str:
    """Public dotted name of the classifier class, e.g. ``sklearn.linear_model.LogisticRegression``."""
    cls = type(pipeline.named_steps["classifier"])
    public = [part for part in cls.__module__.split(".") if not part.startswith("_")]
    return ".".join([*public, cls.__name__])


def preprocessing_description(pipeline: Pipeline) -> dict[str, Any]:
    """What the pipeline does to the raw fields before the classifier, as JSON-safe values."""
    transformer: ColumnTransformer = pipeline.named_steps["preprocess"]
    description: dict[str, Any] = {}
    for step, encoder, columns in transformer.transformers:
        kind = encoder if isinstance(encoder, str) else type(encoder).__name__
        params = {} if isinstance(encoder, str) else {
            key: value for key, value in encoder.get_params(deep=False).items() if key != "categories"}
        description[step] = {"transformer": kind, "params": json_safe(params), "columns": list(columns)}
    description["remainder"] = transformer.remainder
    return description
