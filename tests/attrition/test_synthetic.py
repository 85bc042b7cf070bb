"""Synthetic employees: schema-valid, reproducible, and varied enough to exercise the models."""
from __future__ import annotations

from attrition.schema import FEATURE_NAMES, FEATURES, Employee
from attrition.synthetic import EXAMPLE_EMPLOYEE, synthetic_employees


def test_every_synthetic_employee_is_accepted_by_the_schema() -> None:
    for row in synthetic_employees(500, seed=11):
        assert Employee.model_validate(row).model_dump() == row


def test_synthetic_employees_have_exactly_the_30_fields_in_schema_order() -> None:
    for row in synthetic_employees(20, seed=1):
        assert tuple(row) == FEATURE_NAMES


def test_the_example_employee_is_schema_valid() -> None:
    assert Employee.model_validate(EXAMPLE_EMPLOYEE).model_dump() == EXAMPLE_EMPLOYEE


def test_the_same_seed_draws_the_same_employees_and_another_seed_others() -> None:
    assert synthetic_employees(30, seed=5) == synthetic_employees(30, seed=5)
    assert synthetic_employees(30, seed=5) != synthetic_employees(30, seed=6)


def test_synthetic_employees_cover_every_category_of_the_schema() -> None:
    rows = synthetic_employees(500, seed=2)
    for spec in FEATURES:
        if spec.categories is not None:
            assert {row[spec.name] for row in rows} == set(spec.categories), spec.name
