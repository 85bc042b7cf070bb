"""The runners' fast path reproduces the committed pipelines exactly, and stays off for other layouts."""
from __future__ import annotations

import numpy as np
import pytest
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

from attrition.schema import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from attrition.synthetic import synthetic_employees
from registry.catalogue import ModelCatalogue
from registry.encoding import matches_pipeline, row_encoder
from registry.runner import ModelRunner, employee_frame
from registry.trust import load_artifact
from tests.registry.conftest import MODELS_DIR

COMMITTED = sorted(path.parent for path in MODELS_DIR.glob("*/*/model.joblib"))


def _labels(rows: list[dict]) -> np.ndarray:
    """A learnable synthetic target: long commutes and overtime make people leave."""
    return np.array([int(row["distance_domicile_travail"] > 15 or row["heure_supplementaires"] == "Oui")
                     for row in rows])


def _fitted(transformers: list, classifier=None) -> Pipeline:
    rows = synthetic_employees(400, seed=11)
    pipeline = Pipeline([("preprocess", ColumnTransformer(transformers)),
                         ("classifier", classifier or LogisticRegression(max_iter=2000))])
    return pipeline.fit(employee_frame(rows), _labels(rows))


@pytest.mark.parametrize("folder", COMMITTED, ids=lambda folder: f"{folder.parent.name}:{folder.name}")
def test_fast_path_gives_the_committed_pipelines_probabilities_bit_for_bit(folder):
    pipeline = load_artifact(f"{folder.parent.name}:{folder.name}", folder / "model.joblib")
    encoder = row_encoder(pipeline)
    assert encoder is not None, "every committed model has the one-hot + numeric layout"
    rows = synthetic_employees(1000, seed=5)
    unknown = dict(rows[0], departement="Unknown department")
    rows.append(unknown)  # unknown categories encode as zeros, as with handle_unknown="ignore"
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        expected = pipeline.predict_proba(employee_frame(rows))
        actual = encoder.predict_proba(rows)
    np.testing.assert_array_equal(actual, expected)
    assert np.array_equal(encoder.encode(rows), pipeline.named_steps["preprocess"].transform(employee_frame(rows)))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # unscaled numerics: fit quality is moot
def test_other_layouts_have_no_fast_path():
    categorical, numeric = list(CATEGORICAL_FEATURES), list(NUMERIC_FEATURES)
    ordinal = _fitted([("categorical", OrdinalEncoder(), categorical), ("numeric", StandardScaler(), numeric)])
    imputed = _fitted([("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
                       ("numeric", SimpleImputer(), numeric)])
    kept = _fitted([("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)])
    strict = _fitted([("categorical", OneHotEncoder(sparse_output=False), categorical),
                      ("numeric", StandardScaler(), numeric)])
    counts = ["revenu_mensuel", "distance_domicile_travail"]
    others = [name for name in numeric if name not in counts]
    one_hot = ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)

    def with_counts(step) -> Pipeline:
        return _fitted([one_hot, ("counts", step, counts), ("numeric", StandardScaler(), others)])

    # Another function than log1p, log1p with arguments, or log1p then an unknown step: not the known steps.
    other_function = with_counts(FunctionTransformer(np.sqrt))
    with_arguments = with_counts(FunctionTransformer(np.log1p, kw_args={"out": None}))
    log_then_imputed = with_counts(Pipeline([("log1p", FunctionTransformer(np.log1p)), ("impute", SimpleImputer())]))
    for pipeline in (ordinal, imputed, kept, strict, other_function, with_arguments, log_then_imputed):
        assert row_encoder(pipeline) is None
    assert row_encoder(ordinal.named_steps["classifier"]) is None, "a bare classifier is not a pipeline"


def test_a_layout_of_several_one_hot_and_log1p_blocks_has_an_exact_fast_path():
    levels = ["satisfaction_employee_equipe", "niveau_hierarchique_poste"]
    counts = ["revenu_mensuel", "annees_dans_l_entreprise"]
    pipeline = _fitted([
        ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), list(CATEGORICAL_FEATURES)),
        ("levels", OneHotEncoder(categories=[[1, 2, 3, 4], [1, 2, 3, 4, 5]], handle_unknown="ignore",
                                 sparse_output=False), levels),
        ("log", Pipeline([("log1p", FunctionTransformer(np.log1p)), ("scale", StandardScaler())]), counts),
        ("raw_log", FunctionTransformer(np.log1p), ["distance_domicile_travail"]),
        ("numeric", StandardScaler(), ["age", "nb_formations_suivies"])])
    encoder = row_encoder(pipeline)
    assert encoder is not None
    rows = synthetic_employees(300, seed=8)
    rows.append(dict(rows[0], satisfaction_employee_equipe=9))  # an unknown level encodes as zeros
    assert np.array_equal(encoder.encode(rows), pipeline.named_steps["preprocess"].transform(employee_frame(rows)))
    assert matches_pipeline(encoder, pipeline, rows, employee_frame(rows))


def test_a_fast_path_that_disagrees_with_its_pipeline_is_detected():
    layout = [("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), list(CATEGORICAL_FEATURES)),
              ("numeric", StandardScaler(), list(NUMERIC_FEATURES))]
    pipeline = _fitted(layout)
    other = _fitted(layout, LogisticRegression(C=0.01, max_iter=2000))
    rows = synthetic_employees(64, seed=3)
    assert matches_pipeline(row_encoder(pipeline), pipeline, rows, employee_frame(rows))
    assert not matches_pipeline(row_encoder(other), pipeline, rows, employee_frame(rows))


def test_runner_serves_through_the_checked_fast_path(imported):
    catalogue = ModelCatalogue.from_store(MODELS_DIR)
    entry = catalogue.resolve("logistic_regression")
    runner = ModelRunner(entry, catalogue.mark_invalid)
    rows = synthetic_employees(50, seed=9)
    probabilities = runner.predict_now(rows)
    assert runner.fast_path
    pipeline = load_artifact(entry.tag, entry.artifact)
    np.testing.assert_array_equal(probabilities, pipeline.predict_proba(employee_frame(rows))[:, 1])
