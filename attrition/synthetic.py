"""Synthetic, schema-valid employees for self-checks, examples, tests and demo traffic.

No value here comes from the HR extracts: rows are drawn from the schema's
domains and bounds (or a model card's aggregate distributions) with a seed.
"""
from __future__ import annotations

import random
from typing import Any

from attrition.schema import EXAMPLE_EMPLOYEE, FEATURES, Employee

__all__ = ["EXAMPLE_EMPLOYEE", "synthetic_employee", "synthetic_employees"]

# Realistic ranges for drawing synthetic rows (narrower than the validation bounds).
_TYPICAL_RANGES: dict[str, tuple[int, int]] = {
    "age": (20, 60),
    "revenu_mensuel": (1_200, 19_000),
    "nombre_experiences_precedentes": (0, 9),
    "nombre_heures_travailless": (80, 80),
    "augementation_salaire_precedente": (11, 25),
    "nombre_participation_pee": (0, 3),
    "nb_formations_suivies": (0, 6),
    "nombre_employee_sous_responsabilite": (1, 1),
    "distance_domicile_travail": (1, 29),
    "note_evaluation_actuelle": (3, 4),
}


def synthetic_employee(rng: random.Random) -> dict[str, Any]:
    """Draw one schema-valid synthetic employee."""
    row: dict[str, Any] = {}
    for spec in FEATURES:
        if spec.categories is not None:
            row[spec.name] = rng.choice(spec.categories)
        else:
            low, high = _TYPICAL_RANGES.get(spec.name, (spec.minimum, min(spec.maximum, 10)))
            row[spec.name] = rng.randint(low, high)
    # Keep the career consistent: post <= company <= experience <= age - 14.
    experience = rng.randint(0, min(40, row["age"] - 14))
    company = rng.randint(0, experience)
    row["annee_experience_totale"] = experience
    row["annees_dans_l_entreprise"] = company
    row["annees_dans_le_poste_actuel"] = rng.randint(0, company)
    row["annees_depuis_la_derniere_promotion"] = rng.randint(0, company)
    row["annes_sous_responsable_actuel"] = rng.randint(0, company)
    return Employee.model_validate(row).model_dump()


def synthetic_employees(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """Draw ``count`` schema-valid synthetic employees, reproducibly from ``seed``."""
    rng = random.Random(seed)
    return [synthetic_employee(rng) for _ in range(count)]
