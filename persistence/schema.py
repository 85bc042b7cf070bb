"""The trace database schema: imported employees and prediction traces.

One trace row per prediction, keyed by ``request_id`` (the id the service
answers with): the request and its answer together. The same models run on PostgreSQL and
SQLite: JSON inputs are json on PostgreSQL, timestamps are stored in UTC.
Migrations in ``persistence/migrations`` create exactly these tables; a test
checks that the two agree.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

CATEGORY_LENGTH = 32
"""Room for every categorical value of the employee schema (the longest has 23 characters)."""

ENDPOINTS = ("predict", "predict_batch")
STATUSES = ("ok", "error")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so migrations can name what they alter on both backends."""


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware timestamp, stored in UTC on every backend.

    PostgreSQL keeps ``timestamptz``; SQLite has no timezone, so values are
    converted to UTC before they are written and read back as UTC. Naive
    datetimes are refused: their meaning depends on the machine's clock.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to UTC (the only zone SQLite can compare correctly)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given where a timezone-aware one is required")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to SQLite's naive values and normalise PostgreSQL's to UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


JSONDocument = sa.JSON().with_variant(JSON(), "postgresql")
"""A JSON document stored as the text written: ``json`` on PostgreSQL (no re-encoding on insert), text on SQLite."""


class Base(DeclarativeBase):
    """Declarative base of the trace database."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def _category() -> Any:
    return mapped_column(sa.String(CATEGORY_LENGTH))


class StoredEmployee(Base):
    """One employee of the HR extracts: the 30 input fields and whether they left."""

    __tablename__ = "employees"

    id_employee: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False,
                                             comment="The employee id of the extracts.")
    # extrait_sirh.csv
    age: Mapped[int]
    genre: Mapped[str] = _category()
    revenu_mensuel: Mapped[int]
    statut_marital: Mapped[str] = _category()
    departement: Mapped[str] = _category()
    poste: Mapped[str] = _category()
    nombre_experiences_precedentes: Mapped[int]
    nombre_heures_travailless: Mapped[int]
    annee_experience_totale: Mapped[int]
    annees_dans_l_entreprise: Mapped[int]
    annees_dans_le_poste_actuel: Mapped[int]
    # extrait_eval.csv
    satisfaction_employee_environnement: Mapped[int]
    note_evaluation_precedente: Mapped[int]
    niveau_hierarchique_poste: Mapped[int]
    satisfaction_employee_nature_travail: Mapped[int]
    satisfaction_employee_equipe: Mapped[int]
    satisfaction_employee_equilibre_pro_perso: Mapped[int]
    note_evaluation_actuelle: Mapped[int]
    heure_supplementaires: Mapped[str] = _category()
    augementation_salaire_precedente: Mapped[int]
    # extrait_sondage.csv
    nombre_participation_pee: Mapped[int]
    nb_formations_suivies: Mapped[int]
    nombre_employee_sous_responsabilite: Mapped[int]
    distance_domicile_travail: Mapped[int]
    niveau_education: Mapped[int]
    domaine_etude: Mapped[str] = _category()
    ayant_enfants: Mapped[str] = _category()
    frequence_deplacement: Mapped[str] = _category()
    annees_depuis_la_derniere_promotion: Mapped[int]
    annes_sous_responsable_actuel: Mapped[int]
    # the target
    a_quitte_l_entreprise: Mapped[str] = mapped_column(sa.String(3), comment="Oui when the employee left.")
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PredictionTrace(Base):
    """One prediction: what the client asked, what the service answered, which model, how fast.

    One row per predicted employee (a batch row has its own request id), written
    whole in one statement, so a request never exists without its answer.
    """

    __tablename__ = "prediction_traces"
    __table_args__ = (
        sa.CheckConstraint("status IN ('ok', 'error')", name="status"),
        sa.CheckConstraint("prediction IS NULL OR prediction IN (0, 1)", name="prediction"),
        sa.Index(None, "received_at"),
        # The dashboard and GET /predictions look up one employee's traces over a period.
        sa.Index(None, "employee_id", "received_at"),
        sa.Index(None, "model_name", "model_version", "received_at"),
    )

    # The request id is the key: no surrogate id to generate and index on the hot path.
    request_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    # The request
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    endpoint: Mapped[str] = mapped_column(sa.String(32), comment="predict or predict_batch")
    requested_model: Mapped[str | None] = mapped_column(sa.String(200))
    employee_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    batch_index: Mapped[int | None] = mapped_column(sa.Integer)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONDocument, comment="The 30 fields the model was given.")
    # The answer
    model_name: Mapped[str] = mapped_column(sa.String(200))
    model_version: Mapped[str] = mapped_column(sa.String(200))
    model_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    service_version: Mapped[str] = mapped_column(sa.String(64))
    prediction: Mapped[int | None] = mapped_column(sa.SmallInteger)
    probability: Mapped[float | None] = mapped_column(sa.Float)
    threshold: Mapped[float | None] = mapped_column(sa.Float)
    fallback: Mapped[bool] = mapped_column(sa.Boolean, comment="Served by the default model after a failure.")
    status: Mapped[str] = mapped_column(sa.String(8))
    error: Mapped[str | None] = mapped_column(sa.Text)
    inference_ms: Mapped[float | None] = mapped_column(sa.Float)
    total_ms: Mapped[float] = mapped_column(sa.Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


employees = StoredEmployee.__table__
prediction_traces = PredictionTrace.__table__
metadata = Base.metadata
