"""A trace database seeded with synthetic traffic whose counts, error rate and drift are known in advance.

Rows are synthetic employees (``attrition.synthetic``), scored by the real
committed models so that their traces reproduce; they are written by Core
inserts into ``prediction_traces``. In the last 24 hours:

- the champion (``logistic_regression``, the version ``champion`` names): 120 single calls (6 errors, 5 fallbacks) and 2
  batches of 15 rows: 150 rows, 122 requests; every row works overtime
  (``heure_supplementaires`` = ``Oui``): a seeded shift on that input;
- ``gradient_boosting:v1``: 40 single calls and 1 batch of 10 rows: 50 rows,
  41 requests (fewer than the Drift page's 100 rows: no verdict);

and 30 more single calls of the champion ten days ago.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from attrition.synthetic import synthetic_employees
from persistence.database.engine import make_engine
from persistence.database.migrate import upgrade
from persistence.database.schema import prediction_traces
from registry.aliases import CHAMPION, read_aliases
from registry.runner import employee_frame
from registry.store import ARTIFACT, sha256_of
from registry.trust import load_artifact
from settings import settings

# The champion serves most of the traffic, as it does in production; the pages open on it.
LOGISTIC = tuple(read_aliases(Path(settings.models_dir))[CHAMPION].split(":"))
LOGISTIC_TAG = ":".join(LOGISTIC)
BOOSTING = ("gradient_boosting", "v1")
AUDITED_REQUEST = "seed-logistic_regression-0020"
TAMPERED_REQUEST = "seed-logistic_regression-0021"
SHIFTED_INPUT = "heure_supplementaires"
SHIFTED_VALUE = "Oui"


@dataclass(frozen=True)
class SeedCounts:
    """What the seed implies for the default window (last 24 hours) and for all traces."""

    rows_24h: int = 200
    requests_24h: int = 163
    errors_24h: int = 6
    fallbacks_24h: int = 5
    rows_all: int = 230
    requests_all: int = 193
    logistic_rows_24h: int = 150
    boosting_rows_24h: int = 50

    @property
    def error_rate_24h(self) -> float:
        """Errors over rows in the last 24 hours."""
        return self.errors_24h / self.rows_24h


SEED = SeedCounts()


def _scored(model: tuple[str, str], employees: list[dict[str, Any]]) -> tuple[list[float], str, float]:
    folder = Path(settings.models_dir) / model[0] / model[1]
    pipeline = load_artifact(f"{model[0]}:{model[1]}", folder / ARTIFACT)
    threshold = json.loads((folder / "card.json").read_text(encoding="utf-8"))["threshold"]
    probabilities = pipeline.predict_proba(employee_frame(employees))[:, 1]
    return [round(float(p), 6) for p in probabilities], sha256_of(folder / ARTIFACT), float(threshold)


def _traces(model: tuple[str, str], employees: list[dict[str, Any]], calls: list[tuple[str, int | None]],
            start: datetime, prefix: str, errors: int = 0, fallbacks: int = 0) -> list[dict[str, Any]]:
    probabilities, sha, threshold = _scored(model, employees)
    rows = []
    for index, (employee, probability, (endpoint, batch_index)) in enumerate(zip(employees, probabilities, calls)):
        received = start + timedelta(seconds=37 * index)
        error = index < errors
        fallback = errors <= index < errors + fallbacks
        rows.append({
            "request_id": f"{prefix}-{index:04d}",
            "received_at": received, "endpoint": endpoint,
            "requested_model": "random_forest" if fallback else model[0], "employee_id": 1000 + index,
            "batch_index": batch_index, "inputs": employee, "model_name": model[0], "model_version": model[1],
            "model_sha256": sha, "service_version": "1.0.0",
            "prediction": None if error else int(probability >= threshold),
            "probability": None if error else probability, "threshold": threshold, "fallback": fallback,
            "status": "error" if error else "ok", "error": "model call failed" if error else None,
            "inference_ms": None if error else 0.4 + (index % 10) * 0.3, "total_ms": 2.0 + (index % 20) * 1.5,
            "created_at": received + timedelta(milliseconds=3),
        })
    return rows


def _calls(singles: int, batches: list[int]) -> list[tuple[str, int | None]]:
    calls: list[tuple[str, int | None]] = [("predict", None)] * singles
    for size in batches:
        calls.extend(("predict_batch", i) for i in range(size))
    return calls


def seed_database(url: str, lock_dir: Path) -> SeedCounts:
    """Create the schema at ``url`` and insert the seeded traces; returns what they imply."""
    upgrade(url, lock_dir=lock_dir)
    now = datetime.now(timezone.utc)
    recent = now - timedelta(hours=20)
    logistic = synthetic_employees(150, seed=11)
    for employee in logistic:
        employee[SHIFTED_INPUT] = SHIFTED_VALUE
    rows = _traces(LOGISTIC, logistic, _calls(120, [15, 15]), recent, "seed-logistic_regression", errors=6, fallbacks=5)
    rows += _traces(BOOSTING, synthetic_employees(50, seed=12), _calls(40, [10]), recent + timedelta(minutes=3),
                    "seed-gradient_boosting")
    rows += _traces(LOGISTIC, synthetic_employees(30, seed=13), _calls(30, []), now - timedelta(days=10),
                    "seed-old-logistic_regression")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.insert(prediction_traces), rows)
    finally:
        engine.dispose()
    return SEED


def empty_database(url: str, lock_dir: Path) -> None:
    """Create the schema at ``url`` with no trace."""
    upgrade(url, lock_dir=lock_dir)
