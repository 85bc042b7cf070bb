"""The 30-field employee schema, defined once for validation, training, storage and docs.

Field names are the source columns verbatim, typos included
(``nombre_heures_travailless``, ``augementation_salaire_precedente``,
``annes_sous_responsable_actuel``). Categorical domains are the categories
observed in the HR extracts; numeric bounds are documented plausible ranges,
wider than what the extracts contain.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, model_validator

TARGET = "a_quitte_l_entreprise"
"""The target column: ``Oui`` when the employee left the company."""

POSITIVE_LABEL = "Oui"
NEGATIVE_LABEL = "Non"

Genre = Literal["F", "M"]
StatutMarital = Literal["Célibataire", "Divorcé(e)", "Marié(e)"]
Departement = Literal["Commercial", "Consulting", "Ressources Humaines"]
Poste = Literal[
    "Assistant de Direction",
    "Cadre Commercial",
    "Consultant",
    "Directeur Technique",
    "Manager",
    "Représentant Commercial",
    "Ressources Humaines",
    "Senior Manager",
    "Tech Lead",
]
DomaineEtude = Literal[
    "Autre",
    "Entrepreunariat",
    "Infra & Cloud",
    "Marketing",
    "Ressources Humaines",
    "Transformation Digitale",
]
OuiNon = Literal["Oui", "Non"]
FrequenceDeplacement = Literal["Aucun", "Occasionnel", "Frequent"]
AyantEnfants = Literal["Y"]


MAX_ID = 2**63 - 1
"""The largest id the storage takes (a signed 64-bit integer)."""


def integral(value: Any) -> Any:
    """``35.0`` → ``35``: JSON has one number type, and pandas or JavaScript clients send integers as floats.

    Anything else is left for the strict integer check, which refuses
    ``35.5``, booleans and numeric strings.
    """
    if type(value) is float and value.is_integer():
        return int(value)
    return value


EmployeeId = Annotated[int, Strict(), Field(ge=1, le=MAX_ID), BeforeValidator(integral)]
"""An employee id: a positive integer (an integral float is taken as the integer), never a boolean or a string.

The validator stands last, so it runs first and the bounds stay visible to the OpenAPI document
(``minimum``/``maximum``)."""


def _count(low: int, high: int, description: str, source: str) -> Any:
    """An integer field bounded to a plausible range."""
    return Field(ge=low, le=high, description=description, json_schema_extra={"source": source})


def _category(description: str, source: str) -> Any:
    """A categorical field whose domain (its ``Literal`` type) is the observed categories."""
    return Field(description=description, json_schema_extra={"source": source})


EXAMPLE_EMPLOYEE: dict[str, Any] = {
    "age": 35,
    "genre": "F",
    "revenu_mensuel": 4200,
    "statut_marital": "Marié(e)",
    "departement": "Consulting",
    "poste": "Consultant",
    "nombre_experiences_precedentes": 2,
    "nombre_heures_travailless": 80,
    "annee_experience_totale": 10,
    "annees_dans_l_entreprise": 5,
    "annees_dans_le_poste_actuel": 3,
    "satisfaction_employee_environnement": 3,
    "note_evaluation_precedente": 3,
    "niveau_hierarchique_poste": 2,
    "satisfaction_employee_nature_travail": 3,
    "satisfaction_employee_equipe": 3,
    "satisfaction_employee_equilibre_pro_perso": 3,
    "note_evaluation_actuelle": 3,
    "heure_supplementaires": "Non",
    "augementation_salaire_precedente": 14,
    "nombre_participation_pee": 1,
    "nb_formations_suivies": 2,
    "nombre_employee_sous_responsabilite": 1,
    "distance_domicile_travail": 7,
    "niveau_education": 3,
    "domaine_etude": "Infra & Cloud",
    "ayant_enfants": "Y",
    "frequence_deplacement": "Occasionnel",
    "annees_depuis_la_derniere_promotion": 1,
    "annes_sous_responsable_actuel": 2,
}
"""A made-up (synthetic) employee, used as the OpenAPI example and the models' self-check row."""


SIRH_FILE = "extrait_sirh.csv"
EVAL_FILE = "extrait_eval.csv"
SONDAGE_FILE = "extrait_sondage.csv"
"""The three HR extracts, by file name; each field's ``source`` is one of them."""
EXTRACT_FILES = (SIRH_FILE, EVAL_FILE, SONDAGE_FILE)
EMPLOYEE_ID = "id_employee"
"""The employee id column of the extracts and of the ``employees`` table."""


class Employee(BaseModel):
    """One employee, as the 30 raw input fields the models take."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True,
                              json_schema_extra={"example": EXAMPLE_EMPLOYEE})

    # extrait_sirh.csv
    age: int = _count(16, 75, "Age in years.", SIRH_FILE)
    genre: Genre = _category("Gender.", SIRH_FILE)
    revenu_mensuel: int = _count(500, 100_000, "Monthly gross income.", SIRH_FILE)
    statut_marital: StatutMarital = _category("Marital status.", SIRH_FILE)
    departement: Departement = _category("Department.", SIRH_FILE)
    poste: Poste = _category("Job title.", SIRH_FILE)
    nombre_experiences_precedentes: int = _count(0, 30, "Number of previous employers.", SIRH_FILE)
    nombre_heures_travailless: int = _count(1, 100, "Standard hours worked (80 in every extract row).", SIRH_FILE)
    annee_experience_totale: int = _count(0, 60, "Total years of professional experience.", SIRH_FILE)
    annees_dans_l_entreprise: int = _count(0, 60, "Years in the company.", SIRH_FILE)
    annees_dans_le_poste_actuel: int = _count(0, 60, "Years in the current position.", SIRH_FILE)
    # extrait_eval.csv
    satisfaction_employee_environnement: int = _count(1, 4, "Satisfaction with the work environment (1-4).", EVAL_FILE)
    note_evaluation_precedente: int = _count(1, 4, "Previous yearly evaluation (1-4).", EVAL_FILE)
    niveau_hierarchique_poste: int = _count(1, 5, "Hierarchical level of the position (1-5).", EVAL_FILE)
    satisfaction_employee_nature_travail: int = _count(
        1, 4, "Satisfaction with the nature of the work (1-4).", EVAL_FILE)
    satisfaction_employee_equipe: int = _count(1, 4, "Satisfaction with the team (1-4).", EVAL_FILE)
    satisfaction_employee_equilibre_pro_perso: int = _count(
        1, 4, "Satisfaction with work-life balance (1-4).", EVAL_FILE)
    note_evaluation_actuelle: int = _count(1, 4, "Current yearly evaluation (1-4).", EVAL_FILE)
    heure_supplementaires: OuiNon = _category("Works overtime.", EVAL_FILE)
    augementation_salaire_precedente: int = _count(
        0, 100, "Last salary raise, in percent (11 for the extract's \"11 %\").", EVAL_FILE)
    # extrait_sondage.csv
    nombre_participation_pee: int = _count(0, 10, "Number of company savings plan participations.", SONDAGE_FILE)
    nb_formations_suivies: int = _count(0, 20, "Number of trainings followed last year.", SONDAGE_FILE)
    nombre_employee_sous_responsabilite: int = _count(
        0, 1_000, "Number of direct reports (1 in every extract row).", SONDAGE_FILE)
    distance_domicile_travail: int = _count(0, 200, "Commute distance, in km.", SONDAGE_FILE)
    niveau_education: int = _count(1, 5, "Education level (1-5).", SONDAGE_FILE)
    domaine_etude: DomaineEtude = _category("Field of study.", SONDAGE_FILE)
    ayant_enfants: AyantEnfants = _category("Has children (Y in every extract row).", SONDAGE_FILE)
    frequence_deplacement: FrequenceDeplacement = _category("Business travel frequency.", SONDAGE_FILE)
    annees_depuis_la_derniere_promotion: int = _count(0, 60, "Years since the last promotion.", SONDAGE_FILE)
    annes_sous_responsable_actuel: int = _count(0, 60, "Years under the current manager.", SONDAGE_FILE)

    @model_validator(mode="before")
    @classmethod
    def _integral_numbers(cls, data: Any) -> Any:
        """Take integral floats as integers (one pass over the row, cheaper than a validator per field)."""
        if isinstance(data, dict) and float in map(type, data.values()):
            return {name: integral(value) if name in _INTEGER_FIELDS else value for name, value in data.items()}
        return data

    @model_validator(mode="after")
    def _check_career_consistency(self) -> "Employee":
        """Reject careers that cannot exist (years in post > years in company > experience)."""
        if self.annees_dans_le_poste_actuel > self.annees_dans_l_entreprise:
            raise ValueError("annees_dans_le_poste_actuel cannot exceed annees_dans_l_entreprise")
        if self.annees_dans_l_entreprise > self.annee_experience_totale:
            raise ValueError("annees_dans_l_entreprise cannot exceed annee_experience_totale")
        if self.annee_experience_totale > self.age - 14:
            raise ValueError("annee_experience_totale cannot exceed age - 14")
        return self


_INTEGER_FIELDS = frozenset(name for name, info in Employee.model_fields.items() if info.annotation is int)


@dataclass(frozen=True)
class FeatureSpec:
    """What one input field is: name, kind, domain or bounds, source file, meaning."""

    name: str
    kind: str  # "categorical" or "integer"
    source: str
    description: str
    categories: tuple[str, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready description of the field (used in model cards and /metadata)."""
        spec: dict[str, Any] = {"name": self.name, "kind": self.kind, "source": self.source,
                                "description": self.description}
        if self.categories is not None:
            spec["categories"] = list(self.categories)
        else:
            spec["minimum"], spec["maximum"] = self.minimum, self.maximum
        return spec


def _feature_specs() -> tuple[FeatureSpec, ...]:
    specs = []
    for name, info in Employee.model_fields.items():
        extra = info.json_schema_extra or {}
        if info.annotation is int:
            bounds = {type(m).__name__: m for m in info.metadata}
            specs.append(FeatureSpec(name, "integer", extra["source"], info.description or "",
                                     minimum=bounds["Ge"].ge, maximum=bounds["Le"].le))
        else:
            specs.append(FeatureSpec(name, "categorical", extra["source"], info.description or "",
                                     categories=tuple(get_args(info.annotation))))
    return tuple(specs)


FEATURES: tuple[FeatureSpec, ...] = _feature_specs()
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == "categorical")
NUMERIC_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == "integer")


def feature_schema() -> list[dict[str, Any]]:
    """The schema of the 30 input fields as JSON-ready dicts."""
    return [f.as_dict() for f in FEATURES]
