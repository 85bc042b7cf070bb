"""The 30-field employee schema: what it accepts, what it rejects and why, and the feature lists."""
from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from attrition.schema import (CATEGORICAL_FEATURES, FEATURE_NAMES, FEATURES, NUMERIC_FEATURES, Employee,
                              EmployeeId, feature_schema)
from attrition.synthetic import EXAMPLE_EMPLOYEE

SOURCE_FILES = {"extrait_sirh.csv", "extrait_eval.csv", "extrait_sondage.csv"}


def _without(field: str) -> dict[str, Any]:
    return {k: v for k, v in EXAMPLE_EMPLOYEE.items() if k != field}


def _with(**changes: Any) -> dict[str, Any]:
    return {**EXAMPLE_EMPLOYEE, **changes}


ACCEPTED = [
    pytest.param(EXAMPLE_EMPLOYEE, id="example employee"),
    pytest.param(_with(age=16, annee_experience_totale=2, annees_dans_l_entreprise=1, annees_dans_le_poste_actuel=0),
                 id="youngest age, career fits"),
    pytest.param(_with(age=75, annee_experience_totale=60), id="oldest age"),
    pytest.param(_with(revenu_mensuel=100_000), id="income at upper bound"),
    pytest.param(_with(satisfaction_employee_equipe=1, note_evaluation_actuelle=4), id="scores at bounds"),
    pytest.param(_with(annee_experience_totale=5, annees_dans_l_entreprise=5, annees_dans_le_poste_actuel=5),
                 id="whole career in one post"),
    pytest.param(_with(poste="Tech Lead", domaine_etude="Entrepreunariat", frequence_deplacement="Frequent"),
                 id="other known categories"),
]

# (employee, field the error must name, words the error must contain)
REJECTED = [
    pytest.param(_without("age"), "age", "Field required", id="missing field"),
    pytest.param(_without("heure_supplementaires"), "heure_supplementaires", "Field required",
                 id="missing categorical field"),
    pytest.param(_with(salaire_brut=4200), "salaire_brut", "Extra inputs are not permitted", id="extra field"),
    pytest.param(_with(age=15), "age", "greater than or equal to 16", id="age below bound"),
    pytest.param(_with(age=76), "age", "less than or equal to 75", id="age above bound"),
    pytest.param(_with(revenu_mensuel=499), "revenu_mensuel", "greater than or equal to 500",
                 id="income below bound"),
    pytest.param(_with(satisfaction_employee_environnement=5), "satisfaction_employee_environnement",
                 "less than or equal to 4", id="score above bound"),
    pytest.param(_with(niveau_hierarchique_poste=0), "niveau_hierarchique_poste", "greater than or equal to 1",
                 id="level below bound"),
    pytest.param(_with(distance_domicile_travail=-1), "distance_domicile_travail", "greater than or equal to 0",
                 id="negative distance"),
    pytest.param(_with(genre="X"), "genre", "Input should be 'F' or 'M'", id="unknown gender"),
    pytest.param(_with(poste="Astronaute"), "poste", "Input should be", id="unknown job title"),
    pytest.param(_with(heure_supplementaires="oui"), "heure_supplementaires", "Input should be",
                 id="category with wrong case"),
    pytest.param(_with(ayant_enfants="N"), "ayant_enfants", "Input should be 'Y'", id="unseen constant category"),
    pytest.param(_with(age="41"), "age", "Input should be a valid integer", id="number as a string"),
    pytest.param(_with(age=41.5), "age", "Input should be a valid integer", id="number with a fraction"),
    pytest.param(_with(age=True), "age", "Input should be a valid integer", id="number as a boolean"),
    pytest.param(_with(age=None), "age", "Input should be a valid integer", id="null number"),
    pytest.param(_with(genre=1), "genre", "Input should be", id="category as a number"),
    pytest.param(_with(annees_dans_le_poste_actuel=6), "", "annees_dans_le_poste_actuel cannot exceed",
                 id="longer in post than in company"),
    pytest.param(_with(annees_dans_l_entreprise=11, annees_dans_le_poste_actuel=3), "",
                 "annees_dans_l_entreprise cannot exceed annee_experience_totale",
                 id="longer in company than career"),
    pytest.param(_with(age=20, annee_experience_totale=10), "", "annee_experience_totale cannot exceed age - 14",
                 id="career started before 14"),
]


@pytest.mark.parametrize("employee", ACCEPTED)
def test_the_schema_accepts_a_valid_employee_unchanged(employee: dict[str, Any]) -> None:
    assert Employee.model_validate(employee).model_dump() == employee


@pytest.mark.parametrize(("employee", "field", "words"), REJECTED)
def test_the_schema_rejects_an_invalid_employee_naming_the_field(employee: dict[str, Any], field: str,
                                                                 words: str) -> None:
    with pytest.raises(ValidationError) as error:
        Employee.model_validate(employee)
    errors = error.value.errors()
    assert len(errors) == 1
    assert ".".join(map(str, errors[0]["loc"])) == field
    assert words in errors[0]["msg"]


def test_a_valid_employee_from_json_text_is_accepted() -> None:
    assert Employee.model_validate_json(json.dumps(EXAMPLE_EMPLOYEE)).model_dump() == EXAMPLE_EMPLOYEE


def test_an_employee_is_immutable() -> None:
    employee = Employee.model_validate(EXAMPLE_EMPLOYEE)
    with pytest.raises(ValidationError):
        employee.age = 50


def test_there_are_30_features_split_into_numeric_and_categorical() -> None:
    assert len(FEATURE_NAMES) == 30 == len(set(FEATURE_NAMES))
    assert set(NUMERIC_FEATURES) | set(CATEGORICAL_FEATURES) == set(FEATURE_NAMES)
    assert not set(NUMERIC_FEATURES) & set(CATEGORICAL_FEATURES)
    assert len(CATEGORICAL_FEATURES) == 8
    assert tuple(Employee.model_fields) == FEATURE_NAMES


def test_field_names_keep_the_source_spelling() -> None:
    for typo in ("nombre_heures_travailless", "augementation_salaire_precedente", "annes_sous_responsable_actuel"):
        assert typo in FEATURE_NAMES


def test_feature_schema_is_json_ready_and_complete() -> None:
    schema = feature_schema()
    assert json.loads(json.dumps(schema)) == schema
    assert [f["name"] for f in schema] == list(FEATURE_NAMES)
    for spec, entry in zip(FEATURES, schema):
        assert entry["source"] in SOURCE_FILES and entry["description"]
        if spec.kind == "categorical":
            assert entry["categories"] and "minimum" not in entry
        else:
            assert entry["minimum"] < entry["maximum"] and "categories" not in entry


@pytest.mark.parametrize("parse", [Employee.model_validate, lambda row: Employee.model_validate_json(json.dumps(row))],
                         ids=["python", "json"])
def test_an_integral_float_is_taken_as_the_integer_and_anything_else_refused(parse) -> None:
    employee = parse({**EXAMPLE_EMPLOYEE, "age": 35.0, "revenu_mensuel": 4200.0})
    assert (employee.age, employee.revenu_mensuel) == (35, 4200) and type(employee.age) is int
    for value in (35.5, True, "35", 1e300):
        with pytest.raises(ValidationError) as refused:
            parse({**EXAMPLE_EMPLOYEE, "age": value})
        assert [error["loc"] for error in refused.value.errors()] == [("age",)]
    with pytest.raises(ValidationError):
        Employee.model_validate({**EXAMPLE_EMPLOYEE, "age": float("inf")})
    with pytest.raises(ValidationError):
        parse({**EXAMPLE_EMPLOYEE, "genre": 1.0})


@pytest.mark.parametrize("value, accepted", [(12, 12), (12.0, 12), (True, None), ("12", None), (0, None),
                                             (2**63 - 1, 2**63 - 1), (2**63, None), (12.5, None)])
def test_an_employee_id_is_a_positive_64_bit_integer_never_a_boolean_or_a_string(value, accepted) -> None:
    adapter = TypeAdapter(EmployeeId)
    if accepted is None:
        with pytest.raises(ValidationError):
            adapter.validate_python(value)
    else:
        assert adapter.validate_python(value) == accepted and type(adapter.validate_python(value)) is int
