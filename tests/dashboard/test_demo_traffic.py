"""The demo traffic: schema-valid employees drawn like training, and a shift the Drift page detects."""
from __future__ import annotations

import random

import numpy as np
import pandas as pd

from attrition.schema import Employee
from dashboard.demo_traffic import SHIFTED_INPUTS, TrafficPlan, champion_references, reference_employee
from dashboard.drift import PSI_DRIFT, PSI_WATCH, features_drift, histogram_bin
from settings import settings

REFERENCES = champion_references(settings.models_dir)


def _counts(employees: list[dict]) -> pd.DataFrame:
    """The live counts the Drift page computes in SQL, computed here from the drawn employees."""
    rows = []
    for employee in employees:
        for feature, value in employee.items():
            reference = REFERENCES[feature]
            if reference["kind"] == "categorical":
                rows.append({"day": 0, "feature": feature, "bin": None, "category": value, "outside": 0})
            else:
                outside = int(not reference["min"] <= value <= reference["max"])
                rows.append({"day": 0, "feature": feature, "bin": histogram_bin(value, reference["histogram"]["edges"]),
                             "category": None, "outside": outside})
    frame = pd.DataFrame(rows)
    return frame.groupby(["day", "feature", "bin", "category"], dropna=False, as_index=False).agg(
        rows=("outside", "size"), outside=("outside", "sum"))


def test_drawn_employees_are_valid_and_look_like_training() -> None:
    rng = random.Random(3)
    employees = [reference_employee(rng, REFERENCES) for _ in range(3000)]
    for employee in employees[:200]:
        Employee.model_validate(employee)
    drifts = features_drift(_counts(employees), REFERENCES, min_rows=100)
    assert max(d.psi for d in drifts) < PSI_WATCH, [(d.feature, d.psi) for d in drifts[:3]]


def test_the_shift_option_makes_the_shifted_inputs_drift() -> None:
    plan = TrafficPlan(["logistic_regression:v1"], REFERENCES, shift=0.6, seed=5)
    employees = [plan.employee() for _ in range(2000)]
    drifts = {d.feature: d for d in features_drift(_counts(employees), REFERENCES, min_rows=100)}
    assert all(drifts[name].psi >= PSI_DRIFT for name in SHIFTED_INPUTS), {n: drifts[n].psi for n in SHIFTED_INPUTS}
    assert drifts["distance_domicile_travail"].outside_share > 0.3
    assert max(d.psi for name, d in drifts.items() if name not in SHIFTED_INPUTS) < PSI_WATCH


def test_calls_mix_single_batch_and_stored_employees_over_the_models() -> None:
    plan = TrafficPlan(["a:v1", "b:v1"], REFERENCES, batch_share=0.2, employee_ids=(1, 50), seed=1)
    calls = list(plan.calls(300))
    paths = [c.path for c in calls]
    assert 30 < paths.count("/predict_batch") < 90
    stored = [c.body["employee_id"] for c in calls if "employee_id" in c.body]
    assert stored and all(1 <= n <= 50 for n in stored)
    assert {c.body["model"] for c in calls} == {"a:v1", "b:v1"}
    sizes = np.array([c.rows for c in calls if c.path == "/predict_batch"])
    assert sizes.min() >= 2 and sizes.max() <= plan.max_batch


def test_the_outcomes_option_tags_inline_calls_and_its_rule_makes_the_served_model_80_percent_right() -> None:
    from dashboard.demo_traffic import demo_outcomes

    plan = TrafficPlan(["a:v1"], REFERENCES, batch_share=0.2, employee_ids=(1, 50), seed=2, tag_ids_from=900_001)
    calls = list(plan.calls(400))
    tagged = [c.body["employee_id"] for c in calls if "employee" in c.body]
    assert tagged == list(range(900_001, 900_001 + len(tagged)))  # every inline single call, a new id
    assert all(1 <= c.body["employee_id"] <= 50 for c in calls if "employee" not in c.body and "employee_id" in c.body)
    answered = [(employee_id, employee_id % 3 == 0) for employee_id in tagged]
    outcomes = demo_outcomes(answered, 0.6, seed=2, known_at="2026-12-08")
    predicted = dict(answered)
    right = sum(o["left"] == predicted[o["employee_id"]] for o in outcomes)
    assert right == len(outcomes) - len(outcomes) // 5  # every fifth is flipped: exactly 80 % right (to one row)
    assert 0.5 < len(outcomes) / len(tagged) < 0.7
    assert {o["known_at"] for o in outcomes} == {"2026-12-08"}
    assert demo_outcomes(answered, 0.6, seed=2, known_at="2026-12-08") == outcomes  # the seed fixes the draw
