"""The usual design, as the benchmark's reference: FastAPI, one row per call, one transaction per request.

``POST /predict`` validates the 30 fields (``attrition.schema.Employee``), runs
the champion's scikit-learn pipeline on that one row and commits one
SQLAlchemy transaction (a request row and a result row, in tables of its own)
before answering. Served by uvicorn, two workers::

    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/db \\
        uvicorn benchmarks.baseline_app:app --workers 2 --no-access-log

Only the benchmark uses it; it is kept small on purpose and is not the service.
"""
from __future__ import annotations

import json
import uuid
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pandas as pd
import sqlalchemy as sa
from fastapi import Depends, FastAPI
from pydantic import BaseModel
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from attrition.schema import FEATURE_NAMES, NEGATIVE_LABEL, POSITIVE_LABEL, Employee
from persistence.database.engine import normalize_url
from registry.aliases import CHAMPION, read_aliases
from registry.trust import load_artifact
from settings import settings


class Base(DeclarativeBase):
    """Declarative base of the baseline's own two tables."""


class BaselineRequest(Base):
    """One request: its id, when it arrived and the 30 fields."""

    __tablename__ = "baseline_requests"

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    request_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    received_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    inputs: Mapped[dict[str, Any]] = mapped_column(sa.JSON)


class BaselineResult(Base):
    """What was answered to one request, by which model."""

    __tablename__ = "baseline_results"

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    request_id: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("baseline_requests.request_id"),
                                            unique=True)
    model_name: Mapped[str] = mapped_column(sa.String(200))
    model_version: Mapped[str] = mapped_column(sa.String(200))
    prediction: Mapped[int] = mapped_column(sa.SmallInteger)
    probability: Mapped[float] = mapped_column(sa.Float)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class PredictRequest(BaseModel):
    """The body of ``POST /predict``: the same shape as the service's."""

    employee: Employee
    model: str | None = None


class Champion:
    """The champion model of ``models_dir``, loaded once per worker."""

    def __init__(self, models_dir: Path) -> None:
        self.tag = read_aliases(models_dir)[CHAMPION]
        self.name, self.version = self.tag.split(":")
        folder = models_dir / self.name / self.version
        self.pipeline = load_artifact(self.tag, folder / "model.joblib")  # only if the trusted manifest pins it
        self.threshold = float(json.loads((folder / "card.json").read_text(encoding="utf-8"))["threshold"])

    def probability(self, row: dict[str, Any]) -> float:
        """Probability of leaving for one employee."""
        return float(self.pipeline.predict_proba(pd.DataFrame([row], columns=FEATURE_NAMES))[0, 1])


# The PostgreSQL advisory lock key under which the first worker creates the tables.
_SCHEMA_LOCK = 0x5F0B_A5E1


def create_tables(engine: sa.Engine) -> None:
    """Create the baseline's tables once, even when several workers start together."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        Base.metadata.create_all(connection)


state: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    """Per worker: the database engine (SQLAlchemy's default pool), the tables, the champion."""
    engine = sa.create_engine(normalize_url(settings.resolved_database_url))
    create_tables(engine)
    state["sessions"] = sessionmaker(engine)
    state["champion"] = Champion(Path(settings.models_dir))
    yield
    engine.dispose()


app = FastAPI(title="Baseline: one row, one transaction per request", lifespan=lifespan)


def get_session() -> Iterator[Session]:
    """One database session per request."""
    with state["sessions"]() as session:
        yield session


@app.get("/readyz")
def readyz() -> dict[str, bool]:
    """Ready once the worker has loaded its model."""
    return {"ready": "champion" in state}


@app.post("/predict")
def predict(body: PredictRequest, session: Session = Depends(get_session)) -> dict[str, Any]:
    """Score one employee with the champion and commit its trace before answering."""
    champion: Champion = state["champion"]
    received_at = datetime.now(timezone.utc)
    row = body.employee.model_dump()
    probability = champion.probability(row)
    prediction = int(probability >= champion.threshold)
    request_id = str(uuid.uuid4())
    session.add(BaselineRequest(request_id=request_id, received_at=received_at, inputs=row))
    session.add(BaselineResult(request_id=request_id, model_name=champion.name, model_version=champion.version,
                               prediction=prediction, probability=probability,
                               created_at=datetime.now(timezone.utc)))
    session.commit()
    return {"request_id": request_id, "model": champion.name, "model_version": champion.version,
            "prediction": prediction, "label": POSITIVE_LABEL if prediction else NEGATIVE_LABEL,
            "probability": round(probability, 6), "threshold": champion.threshold}
