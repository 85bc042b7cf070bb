"""A trace database seeded with synthetic traffic whose counts, error rate and drift are known in advance.

Rows are synthetic employees (``attrition.synthetic``), scored by the real
committed models so that their traces reproduce; they are written by Core
inserts into ``prediction_traces``. In the last 24 hours:

- the champion (``logistic_regression``, the version ``champion`` names): 120 single calls (6 errors, 5 fallbacks) and 2
  batches of 15 rows: 150 rows, 122 requests; every row works overtime
  (``heure_supplementaires`` = ``Oui``): a seeded shift on that input;
- ``gradient_boosting:v1``: 40 single calls and 1 batch of 10 rows: 50 rows,
  41 requests (fewer than the Drift page's 100 rows: no verdict);

and 30 more single calls of the champion ten days ago. Employee ids: 1000 + row of the
logistic rows of the last 24 hours, 2000 + row of the boosting rows, 3000 + row of the old ones.

Outcomes, known by construction (:class:`SeededOutcomes`): 100 predictions of
the champion (rows 11 to 110, after the errors and fallbacks)
are labelled, and the prediction is right on exactly 80 of them (every fifth
labelled row is wrong): the first 60 are forecasts (known tomorrow), the
next 40 retrospective (known three days ago), 20 of those from the training
extracts (in-sample); 5 more (rows 111 to 115) are known 400 days ahead,
beyond the 365-day horizon. 20 rows of ``gradient_boosting:v1`` are labelled,
all right: fewer than the 30 a verdict needs. One logistic employee has a
correction: an earlier row says the opposite.
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
from persistence.database.schema import outcomes, prediction_traces
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
            start: datetime, prefix: str, errors: int = 0, fallbacks: int = 0,
            first_id: int = 1000) -> list[dict[str, Any]]:
    probabilities, sha, threshold = _scored(model, employees)
    rows = []
    for index, (employee, probability, (endpoint, batch_index)) in enumerate(zip(employees, probabilities, calls)):
        received = start + timedelta(seconds=37 * index)
        error = index < errors
        fallback = errors <= index < errors + fallbacks
        rows.append({
            "request_id": f"{prefix}-{index:04d}",
            "received_at": received, "endpoint": endpoint,
            "requested_model": "random_forest" if fallback else model[0], "employee_id": first_id + index,
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
                    "seed-gradient_boosting", first_id=2000)
    rows += _traces(LOGISTIC, synthetic_employees(30, seed=13), _calls(30, []), now - timedelta(days=10),
                    "seed-old-logistic_regression", first_id=3000)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.insert(prediction_traces), rows)
            connection.execute(sa.insert(outcomes), seeded_outcomes(rows, now))
    finally:
        engine.dispose()
    return SEED


def empty_database(url: str, lock_dir: Path) -> None:
    """Create the schema at ``url`` with no trace."""
    upgrade(url, lock_dir=lock_dir)


@dataclass(frozen=True)
class SeededOutcomes:
    """What the seeded outcomes imply for the champion in the last 24 hours."""

    labelled: int = 100
    right: int = 80
    forecasts: int = 60
    retrospective: int = 40
    in_sample: int = 20
    beyond_horizon: int = 5
    boosting_labelled: int = 20
    corrected_employee: int = 1011


OUTCOMES = SeededOutcomes()


def seeded_outcomes(rows: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """The outcome rows of the seed (see the module's docstring), from the seeded traces."""
    by_id = {row["request_id"]: row for row in rows}
    tomorrow, three_days_ago = (now + timedelta(days=1)).date(), (now - timedelta(days=3)).date()
    recorded = now - timedelta(hours=1)
    records = []

    def outcome(row: dict[str, Any], left: bool, known: Any, source: str, at: datetime = recorded) -> None:
        records.append({"outcome_id": f"seed-outcome-{len(records):04d}", "employee_id": row["employee_id"],
                        "has_left": left, "known_at": known, "source": source, "recorded_at": at})

    for k in range(OUTCOMES.labelled):
        row = by_id[f"seed-logistic_regression-{11 + k:04d}"]
        right = k % 5 != 4
        left = bool(row["prediction"]) if right else not row["prediction"]
        if k < OUTCOMES.forecasts:
            outcome(row, left, tomorrow, "api")
        else:
            outcome(row, left, three_days_ago, "training_extracts" if k % 2 else "csv")
        if k == 0:  # a correction: the earlier recording said the opposite
            outcome(row, not left, tomorrow, "api", recorded - timedelta(hours=1))
    for k in range(OUTCOMES.beyond_horizon):
        row = by_id[f"seed-logistic_regression-{111 + k:04d}"]
        outcome(row, bool(row["prediction"]), (now + timedelta(days=400)).date(), "api")
    for k in range(OUTCOMES.boosting_labelled):
        row = by_id[f"seed-gradient_boosting-{k:04d}"]
        outcome(row, bool(row["prediction"]), tomorrow, "api")
    return records
