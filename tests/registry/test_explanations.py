"""Explanations of every committed model version: additivity, agreement with ``shap``, determinism.

``shap`` (a dev requirement, never imported by the service) is the reference:
its LinearExplainer with the same training-mean background for the linear
models, its TreeExplainer (path-dependent, from the trees' own covers) for
the tree ensembles, compared field by field to 1e-6 on every row of the
extracts, and on synthetic rows where the extracts are missing.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest

from attrition.card import ModelCard
from attrition.schema import FEATURE_NAMES
from attrition.synthetic import synthetic_employees
from registry.explanations import (IDENTITY, LOGIT, ExplanationUnsupported, build_explainer, field_weights,
                                   linear_background)
from registry.runner import employee_frame
from tests.registry.conftest import MODELS_DIR

TOLERANCE = 1e-6
VERSIONS = sorted(p.parent for p in MODELS_DIR.glob("*/*/card.json"))


def load_version(folder: Path):
    card = ModelCard.model_validate(json.loads((folder / "card.json").read_text()))
    return joblib.load(folder / "model.joblib"), card


def link_output(pipeline, rows: list[dict], link: str) -> np.ndarray:
    """The model's own output for ``rows`` on ``link``'s scale, from its predicted probability."""
    probability = pipeline.predict_proba(employee_frame(rows))[:, 1]
    return np.log(probability / (1 - probability)) if link == LOGIT else probability


def shap_reference(pipeline, card, rows: list[dict]) -> tuple[float, np.ndarray] | None:
    """``(base value, per-field values)`` of ``shap`` for ``rows``, or None for a model it does not cover."""
    import shap

    classifier = pipeline.steps[-1][1]
    matrix = np.asarray(pipeline[:-1].transform(employee_frame(rows)), dtype=np.float64)
    name = type(classifier).__name__
    if name == "LogisticRegression":
        background = linear_background(pipeline.steps[0][1], card)
        explainer = shap.LinearExplainer(classifier, shap.maskers.Independent(background.reshape(1, -1)))
        values, base = explainer.shap_values(matrix), explainer.expected_value
    elif name in ("RandomForestClassifier", "HistGradientBoostingClassifier", "LGBMClassifier"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            explainer = shap.TreeExplainer(classifier)
            values = explainer.shap_values(matrix, check_additivity=False)
        values, base = np.asarray(values), np.ravel(explainer.expected_value)
        if values.ndim == 3:  # one slice per class: the positive class is explained
            values, base = values[:, :, 1], base[1]
        else:
            base = base[-1]
    else:
        return None
    return float(np.ravel(base)[0]), np.asarray(values) @ field_weights(pipeline.steps[0][1])


def assert_exact(folder: Path, rows: list[dict]) -> None:
    pipeline, card = load_version(folder)
    explainer = build_explainer(pipeline, card)
    contributions, outputs = explainer.field_contributions(rows)
    assert contributions.shape == (len(rows), len(FEATURE_NAMES))
    # Additivity, and the output is the model's own.
    assert np.max(np.abs(explainer.base_value + contributions.sum(axis=1) - outputs)) <= TOLERANCE
    assert np.max(np.abs(outputs - link_output(pipeline, rows, explainer.link))) <= TOLERANCE
    reference = shap_reference(pipeline, card, rows)
    if reference is None:  # the baseline: a constant, explained by its base value alone
        assert explainer.link == IDENTITY and not contributions.any()
        assert explainer.base_value == pytest.approx(float(outputs[0]), abs=1e-12)
        return
    base, values = reference
    assert explainer.base_value == pytest.approx(base, abs=TOLERANCE)
    assert np.max(np.abs(values - contributions)) <= TOLERANCE


@pytest.mark.extracts
@pytest.mark.parametrize("folder", VERSIONS, ids=lambda f: f"{f.parent.name}:{f.name}")
def test_every_version_explains_every_extract_row_exactly_and_as_shap_does(folder, extracts_dir):
    from attrition.extracts import load_employees

    rows = load_employees(extracts_dir)[list(FEATURE_NAMES)].to_dict("records")
    assert len(rows) == 1470
    assert_exact(folder, rows)


@pytest.mark.parametrize("folder", VERSIONS, ids=lambda f: f"{f.parent.name}:{f.name}")
def test_every_version_explains_synthetic_rows_exactly_and_as_shap_does(folder):
    assert_exact(folder, synthetic_employees(300, seed=11))


def test_a_row_gets_the_same_numbers_alone_in_a_batch_and_from_a_second_build():
    pipeline, card = load_version(MODELS_DIR / "random_forest" / "v1")
    rows = synthetic_employees(40, seed=5)
    batch = build_explainer(pipeline, card).explain(rows)
    again = build_explainer(joblib.load(MODELS_DIR / "random_forest" / "v1" / "model.joblib"), card)
    assert [again.explain([row])[0] for row in rows] == batch


def test_contributions_name_every_field_once_with_its_value_largest_first():
    pipeline, card = load_version(MODELS_DIR / "logistic_regression" / "v1")
    row = synthetic_employees(1, seed=9)[0]
    explanation = build_explainer(pipeline, card).explain([row])[0]
    assert sorted(c.field for c in explanation.contributions) == sorted(FEATURE_NAMES)
    assert all(c.value == row[c.field] for c in explanation.contributions)
    sizes = [abs(c.contribution) for c in explanation.contributions]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > 0
    # Fields the training data never varied (one category, one value) push nothing.
    assert {c.field: c.contribution for c in explanation.contributions}["ayant_enfants"] == 0
    assert explanation.probability == pytest.approx(pipeline.predict_proba(employee_frame([row]))[0, 1], abs=1e-12)


def test_a_lightgbm_pipeline_is_explained_by_its_own_treeshap_as_shap_does():
    lightgbm = pytest.importorskip("lightgbm")
    from sklearn.pipeline import Pipeline

    from training.pipelines import preprocessing

    rows = synthetic_employees(400, seed=21)
    # A learnable synthetic target: overtime, low satisfaction and short tenure make leaving likelier.
    rng = np.random.default_rng(3)
    score = np.array([(r["heure_supplementaires"] == "Oui") * 1.5 - r["satisfaction_employee_environnement"] * 0.6
                      - r["annees_dans_l_entreprise"] * 0.1 + rng.normal() for r in rows])
    labels = (score > np.quantile(score, 0.8)).astype(int)
    pipeline = Pipeline([("preprocess", preprocessing(scale_numeric=False)), ("classifier", lightgbm.LGBMClassifier(
        n_estimators=40, num_leaves=8, learning_rate=0.1, random_state=0, verbose=-1))])
    pipeline.fit(employee_frame(rows), labels)
    explainer = build_explainer(pipeline, None)
    assert explainer.link == LOGIT
    checked = synthetic_employees(200, seed=22)
    contributions, outputs = explainer.field_contributions(checked)
    assert np.max(np.abs(explainer.base_value + contributions.sum(axis=1) - outputs)) <= TOLERANCE
    assert np.max(np.abs(outputs - link_output(pipeline, checked, LOGIT))) <= TOLERANCE
    base, values = shap_reference(pipeline, None, checked)
    assert explainer.base_value == pytest.approx(base, abs=TOLERANCE)
    assert np.max(np.abs(values - contributions)) <= TOLERANCE
    assert np.abs(contributions).sum() > 0


def test_an_estimator_without_an_exact_method_is_refused():
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline

    from training.pipelines import preprocessing

    rows = synthetic_employees(60, seed=1)
    pipeline = Pipeline([("preprocess", preprocessing(scale_numeric=True)), ("classifier", KNeighborsClassifier())])
    pipeline.fit(employee_frame(rows), [index % 2 for index in range(len(rows))])
    with pytest.raises(ExplanationUnsupported, match="KNeighborsClassifier"):
        build_explainer(pipeline, None)


def income_per_year_of_age(frame):
    """A column derived from two fields: it is shared equally between them."""
    return (frame["revenu_mensuel"] / frame["age"]).to_frame()


def test_a_column_derived_from_two_fields_is_shared_between_them_and_still_adds_up():
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    from attrition.schema import CATEGORICAL_FEATURES, NUMERIC_FEATURES

    rows = synthetic_employees(300, seed=41)
    labels = [int(r["revenu_mensuel"] / r["age"] < 150 or r["heure_supplementaires"] == "Oui") for r in rows]
    transformer = ColumnTransformer([
        ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), list(CATEGORICAL_FEATURES)),
        ("numeric", "passthrough", [name for name in NUMERIC_FEATURES if name not in ("revenu_mensuel", "age")]),
        ("derived", FunctionTransformer(income_per_year_of_age), ["revenu_mensuel", "age"]),
    ])
    pipeline = Pipeline([("preprocess", transformer), ("classifier", HistGradientBoostingClassifier(
        max_iter=30, max_depth=3, random_state=0))]).fit(employee_frame(rows), labels)
    weights = field_weights(pipeline.steps[0][1])
    derived = weights[-1]
    assert derived[FEATURE_NAMES.index("revenu_mensuel")] == derived[FEATURE_NAMES.index("age")] == 0.5
    explainer = build_explainer(pipeline, None)
    checked = synthetic_employees(100, seed=42)
    contributions, outputs = explainer.field_contributions(checked)
    assert np.max(np.abs(explainer.base_value + contributions.sum(axis=1) - outputs)) <= TOLERANCE
    base, values = shap_reference(pipeline, None, checked)
    assert np.max(np.abs(values - contributions)) <= TOLERANCE
    by_field = dict(zip(FEATURE_NAMES, np.abs(contributions).sum(axis=0)))
    assert by_field["revenu_mensuel"] == pytest.approx(by_field["age"]) and by_field["age"] > 0
