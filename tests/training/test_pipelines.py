"""Model definitions and evaluation pieces, on synthetic employees (no real data needed)."""
from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pandas as pd
import pytest

from attrition.schema import FEATURE_NAMES, FEATURES
from attrition.synthetic import EXAMPLE_EMPLOYEE, synthetic_employees
from training.evaluate import reference_distributions, select_threshold
from training.pipelines import (LEVEL_FEATURES, LOG_FEATURES, MODEL_NAMES, build_pipeline, hyperparameters,
                                json_safe)


def _synthetic_training_set(count: int = 200) -> tuple[pd.DataFrame, pd.Series]:
    features = pd.DataFrame(synthetic_employees(count, seed=3), columns=list(FEATURE_NAMES))
    # A learnable synthetic rule, so fitting has a signal: overtime and a short tenure leave.
    target = ((features["heure_supplementaires"] == "Oui") & (features["annees_dans_l_entreprise"] < 8)).astype(int)
    return features, target


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_each_model_is_one_pipeline_taking_the_30_raw_fields(name: str) -> None:
    features, target = _synthetic_training_set()
    model = build_pipeline(name).fit(features, target)
    assert tuple(model.feature_names_in_) == FEATURE_NAMES
    probability = model.predict_proba(pd.DataFrame([EXAMPLE_EMPLOYEE], columns=list(FEATURE_NAMES)))
    assert probability.shape == (1, 2) and 0.0 <= probability[0, 1] <= 1.0
    with pytest.raises(ValueError, match="columns are missing"):
        model.predict_proba(features.drop(columns=["age"]))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_an_unknown_category_is_encoded_not_refused(name: str) -> None:
    features, target = _synthetic_training_set()
    model = build_pipeline(name).fit(features, target)
    unseen = pd.DataFrame([{**EXAMPLE_EMPLOYEE, "poste": "Astronaute"}], columns=list(FEATURE_NAMES))
    assert np.isfinite(model.predict_proba(unseen)).all()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_each_encoded_column_is_named_after_the_one_raw_field_it_comes_from(name: str) -> None:
    features, target = _synthetic_training_set()
    model = build_pipeline(name).fit(features, target)
    assert [step for step, _ in model.steps] == ["preprocess", "classifier"]
    transformer = model.named_steps["preprocess"]
    names = transformer.get_feature_names_out()
    assert len(names) == transformer.transform(features.head(3)).shape[1]
    used = set()
    for block, _, columns in transformer.transformers_:
        if block == "remainder":
            continue
        for column_name in names[transformer.output_indices_[block]]:
            prefix, _, rest = column_name.partition("__")
            sources = [field for field in columns if rest == field or rest.startswith(f"{field}_")]
            assert prefix == block and len(max(sources, key=len, default="")) > 0, column_name
            used.add(max(sources, key=len))
    assert used == set(FEATURE_NAMES) - {"nombre_employee_sous_responsabilite"} or used == set(FEATURE_NAMES)


def test_level_and_log_blocks_hold_integer_fields_of_the_schema() -> None:
    numeric = {spec.name for spec in FEATURES if spec.categories is None}
    assert set(LEVEL_FEATURES) <= numeric and set(LOG_FEATURES) <= numeric
    assert all(spec.minimum >= 0 for spec in FEATURES if spec.name in LOG_FEATURES)  # log1p is defined
    assert not set(LEVEL_FEATURES) & set(LOG_FEATURES)


def test_an_unseen_level_is_encoded_not_refused() -> None:
    features, target = _synthetic_training_set()
    model = build_pipeline("logistic_regression").fit(features, target)
    unseen = pd.DataFrame([{**EXAMPLE_EMPLOYEE, "nombre_participation_pee": 9}], columns=list(FEATURE_NAMES))
    assert np.isfinite(model.predict_proba(unseen)).all()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_fitted_pipeline_pickles_without_any_project_module(name: str) -> None:
    features, target = _synthetic_training_set()
    payload = pickle.dumps(build_pipeline(name).fit(features, target))
    modules: set[str] = set()

    class Recording(pickle.Unpickler):
        """Records the module of every class or function the pickle refers to."""

        def find_class(self, module: str, qualname: str) -> object:
            modules.add(module)
            return super().find_class(module, qualname)

    Recording(io.BytesIO(payload)).load()
    assert "sklearn.pipeline" in modules
    assert not {module.split(".")[0] for module in modules} & {"training", "attrition", "registry", "settings"}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_hyperparameters_are_json_safe_and_seeded(name: str) -> None:
    params = hyperparameters(build_pipeline(name))
    assert json.loads(json.dumps(params)) == params
    assert params["random_state"] == 42


def test_overrides_replace_one_hyperparameter_and_keep_the_others() -> None:
    default, changed = hyperparameters(build_pipeline("logistic_regression")), hyperparameters(
        build_pipeline("logistic_regression", {"C": 2.0}))
    assert changed == {**default, "C": 2.0}


def test_an_unknown_model_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown model 'xgboost'"):
        build_pipeline("xgboost")


def test_json_safe_unwraps_numpy_values() -> None:
    assert json_safe({"a": np.int64(3), "b": (np.float32(0.5), None), "c": float("nan")}) == {
        "a": 3, "b": [0.5, None], "c": "nan"}


def test_the_threshold_is_the_highest_keeping_recall_at_least_the_target() -> None:
    target = np.array([1, 1, 1, 1, 0, 0, 0])
    probability = np.array([0.9, 0.8, 0.7, 0.2, 0.75, 0.1, 0.05])
    selection = select_threshold(target, probability, min_recall=0.65)
    # 3 of the 4 leavers are needed; the third-highest leaver score is 0.7.
    assert selection["threshold"] == 0.7
    assert selection["recall"] == 0.75 and selection["precision"] == 0.75
    assert selection["confusion_matrix"] == {"tn": 2, "fp": 1, "fn": 1, "tp": 3}
    higher = (probability[target == 1] >= np.nextafter(0.7, 1.0)).mean()
    assert higher < 0.65


def test_the_threshold_survives_an_exact_recall_boundary() -> None:
    target = np.array([1] * 20 + [0] * 5)
    probability = np.linspace(1.0, 0.0, 25)
    # 0.65 * 20 is 13 (13.000000000000002 in floating point): the 13th leaver, not the 14th.
    assert select_threshold(target, probability)["threshold"] == probability[12]


def test_reference_distributions_are_shares_for_every_field() -> None:
    features = pd.DataFrame(synthetic_employees(300, seed=4), columns=list(FEATURE_NAMES))
    distributions = reference_distributions(features)
    assert tuple(distributions) == FEATURE_NAMES
    for spec in FEATURES:
        distribution = distributions[spec.name]
        if spec.categories is not None:
            assert set(distribution["shares"]) == set(spec.categories)
            assert sum(distribution["shares"].values()) == pytest.approx(1.0, abs=1e-5)
        else:
            edges, shares = distribution["histogram"]["edges"], distribution["histogram"]["shares"]
            assert len(edges) == len(shares) + 1 and edges == sorted(edges)
            assert edges[0] <= spec.minimum and edges[-1] >= spec.maximum
            assert sum(shares) == pytest.approx(1.0, abs=1e-5)


def test_a_constant_field_gets_empty_outer_bins_so_a_change_shows_as_drift() -> None:
    features = pd.DataFrame(synthetic_employees(50, seed=4), columns=list(FEATURE_NAMES))
    histogram = reference_distributions(features)["nombre_heures_travailless"]["histogram"]
    assert histogram == {"edges": [0.5, 79.5, 80.5, 100.5], "shares": [0.0, 1.0, 0.0]}
