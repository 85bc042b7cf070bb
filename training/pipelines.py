"""The model definitions: one scikit-learn ``Pipeline`` per model name, encoding included.

Every pipeline takes a DataFrame of the 30 raw fields and nothing else; the
serving side never re-implements preprocessing. Only library classes and
functions go into a pipeline (scikit-learn, numpy, and LightGBM for the
gradient-boosted model; no function or class of this project), so an artifact
unpickles wherever those are installed, without ``training/``.

Each pipeline is two steps: ``preprocess``, one ``ColumnTransformer`` whose
every output column comes from exactly one raw field (its name, from
``get_feature_names_out``, starts with the block and names that field, e.g.
``levels__satisfaction_employee_equipe_1``), then ``classifier``. Per-field
explanations therefore add up the columns of each field, with nothing shared.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from lightgbm import LGBMClassifier
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from attrition.schema import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES, FeatureSpec

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
    # ~100 encoded columns for ~1,500 rows: stronger regularisation than C=1 helps
    # (C=0.1 beat 0.3 and 1.0). No class weights in any model: the threshold
    # handles the 16 % of leavers, and unweighted fits keep the probabilities
    # calibrated (weighting "balanced" lowered CV ROC AUC and raised the Brier score).
    LOGISTIC_REGRESSION: (LogisticRegression, {"C": 0.1, "max_iter": 5_000, "random_state": RANDOM_STATE}),
    # Depth and leaf size bounded so model.joblib stays around 1-2 MB.
    RANDOM_FOREST: (RandomForestClassifier, {
        "n_estimators": 300, "max_depth": 8, "min_samples_leaf": 3, "n_jobs": 1, "random_state": RANDOM_STATE}),
    # Stumps (one split per tree), so the model is additive, one term per encoded
    # column: deeper trees (2-4 leaves) scored lower on these ~1,500 rows. Row and
    # column subsampling and 40 rows per leaf keep the 1,500 small steps from
    # following noise. One thread (the service scores small batches); deterministic
    # and row-wise histograms so a refit gives the same trees.
    GRADIENT_BOOSTING: (LGBMClassifier, {
        "n_estimators": 1_500, "learning_rate": 0.03, "max_depth": 1, "num_leaves": 2, "min_child_samples": 40,
        "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.5, "reg_lambda": 1.0,
        "random_state": RANDOM_STATE, "n_jobs": 1, "deterministic": True, "force_row_wise": True, "verbose": -1}),
}

# Scaling changes nothing for trees; it matters for the linear model's penalty.
_SCALED = frozenset({BASELINE, LOGISTIC_REGRESSION})
# The baseline ignores its inputs: it keeps the plain encoding of its first version.
_PLAIN = frozenset({BASELINE})

LEVEL_FEATURES: tuple[str, ...] = (
    "satisfaction_employee_environnement", "satisfaction_employee_nature_travail", "satisfaction_employee_equipe",
    "satisfaction_employee_equilibre_pro_perso", "note_evaluation_precedente", "note_evaluation_actuelle",
    "niveau_hierarchique_poste", "niveau_education", "nombre_participation_pee")
"""Integer fields on a short scale whose effect is not a straight line (e.g. the lowest
satisfaction level alone, or having any employee shares at all): each level also gets
a column of its own, beside the field's numeric value."""

LOG_FEATURES: tuple[str, ...] = (
    "revenu_mensuel", "annee_experience_totale", "annees_dans_l_entreprise", "annees_dans_le_poste_actuel",
    "annees_depuis_la_derniere_promotion", "annes_sous_responsable_actuel", "distance_domicile_travail",
    "nombre_experiences_precedentes")
"""Right-skewed counts and amounts (all >= 0): taken as log(1 + x). The first years
of a tenure weigh more than the later ones, and on the log scale the ratios HR reads
(tenure over career, years in the role over tenure) are differences the linear model
learns itself: explicit ratio columns added at most 0.002 CV ROC AUC on top (less
than a tenth of the fold-to-fold spread), and lowered it for the trees."""


def _levels(spec: FeatureSpec) -> list[int]:
    return list(range(int(spec.minimum), int(spec.maximum) + 1))


def preprocessing(scale_numeric: bool, plain: bool = False) -> ColumnTransformer:
    """Encode the 30 raw fields; every output column comes from one field.

    ``categorical``: one-hot over the schema's categories. ``levels``: one-hot of
    each level of ``LEVEL_FEATURES`` (levels from the schema bounds). ``log``:
    ``log1p`` of ``LOG_FEATURES``. ``numeric``: the other integer fields. The
    last two are standardised when ``scale_numeric``. ``plain`` keeps only the
    one-hot categoricals and the numerics as they are (the first versions' encoding).

    Categories and levels come from the schema, not from the data, so the encoded
    layout is fixed by the schema; an unknown category or level encodes as all
    zeros instead of failing.
    """
    categories = [list(spec.categories) for spec in FEATURES if spec.categories is not None]
    blocks: list[tuple[str, Any, list[str]]] = [
        ("categorical", OneHotEncoder(categories=categories, handle_unknown="ignore", sparse_output=False),
         list(CATEGORICAL_FEATURES))]
    numeric = list(NUMERIC_FEATURES)
    if not plain:
        specs = {spec.name: spec for spec in FEATURES}
        blocks.append(("levels", OneHotEncoder(categories=[_levels(specs[name]) for name in LEVEL_FEATURES],
                                               handle_unknown="ignore", sparse_output=False),
                       list(LEVEL_FEATURES)))
        log = FunctionTransformer(np.log1p, feature_names_out="one-to-one")
        blocks.append(("log", Pipeline([("log1p", log), ("scale", StandardScaler())]) if scale_numeric else log,
                       list(LOG_FEATURES)))
        numeric = [name for name in NUMERIC_FEATURES if name not in LOG_FEATURES]
    blocks.append(("numeric", StandardScaler() if scale_numeric else "passthrough", numeric))
    return ColumnTransformer(blocks, remainder="drop")


def build_pipeline(name: str, overrides: Mapping[str, Any] | None = None) -> Pipeline:
    """The unfitted pipeline of model ``name``; ``overrides`` replace classifier hyperparameters."""
    if name not in _CLASSIFIERS:
        raise ValueError(f"unknown model {name!r}; expected one of {list(MODEL_NAMES)}")
    estimator_class, params = _CLASSIFIERS[name]
    classifier = estimator_class(**{**params, **dict(overrides or {})})
    return Pipeline([("preprocess", preprocessing(name in _SCALED, plain=name in _PLAIN)),
                     ("classifier", classifier)])


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


def _describe_step(step: Any) -> dict[str, Any]:
    """One transformer as JSON-safe values: its class, its parameters, and its own steps when it is a Pipeline."""
    if isinstance(step, str):
        return {"transformer": step}
    if isinstance(step, Pipeline):
        steps = [{"name": name, **_describe_step(inner)} for name, inner in step.steps]
        return {"transformer": "Pipeline", "steps": steps}
    params = {key: value for key, value in step.get_params(deep=False).items() if key != "categories"}
    if isinstance(step, FunctionTransformer) and step.func is not None:
        params["func"] = f"{step.func.__module__ or 'numpy'}.{step.func.__name__}"
    described = {"transformer": type(step).__name__, "params": json_safe(params)}
    if isinstance(step, OneHotEncoder) and isinstance(step.categories, list):
        described["categories"] = json_safe(step.categories)
    return described


def preprocessing_description(pipeline: Pipeline) -> dict[str, Any]:
    """What the pipeline does to the raw fields before the classifier, as JSON-safe values.

    The first versions' cards hold this description without ``categories``; a
    block's categories are the schema's, already in the card's ``features``.
    """
    transformer: ColumnTransformer = pipeline.named_steps["preprocess"]
    description: dict[str, Any] = {}
    for name, step, columns in transformer.transformers:
        described = _describe_step(step)
        if name == "categorical":
            described.pop("categories", None)  # the schema's categories, as in the first versions' cards
        if isinstance(step, str):
            described["params"] = {}
        description[name] = {**described, "columns": list(columns)}
    description["remainder"] = transformer.remainder
    return description
