"""Traces and extract files for the persistence tests, built from synthetic employees only."""
from __future__ import annotations

import csv
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from attrition.schema import FEATURES, TARGET
from attrition.synthetic import synthetic_employees
from persistence.database.traces import Trace
from tests.pgcluster import free_port

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
EMPLOYEES = synthetic_employees(40, seed=7)


def make_trace(number: int = 0, **overrides: Any) -> Trace:
    """A realistic, distinct trace: synthetic inputs, a fresh request id, varied outputs."""
    received = T0 + timedelta(seconds=number)
    values: dict[str, Any] = {
        "request_id": str(uuid.uuid4()),
        "received_at": received,
        "endpoint": "predict" if number % 3 else "predict_batch",
        "requested_model": None if number % 2 else "champion",
        "employee_id": number % 7,
        "batch_index": number % 5 if number % 3 == 0 else None,
        "inputs": EMPLOYEES[number % len(EMPLOYEES)],
        "model_name": "logistic_regression",
        "model_version": f"v{number % 2 + 1}",
        "model_sha256": f"{number:064x}",
        "service_version": "1.0.0",
        "prediction": number % 2,
        "probability": (number % 100) / 100 + 0.001234567,
        "threshold": 0.42,
        "fallback": number % 11 == 0,
        "status": "ok",
        "error": None,
        "inference_ms": 1.5 + number / 1000,
        "total_ms": 3.25 + number / 1000,
        "created_at": received + timedelta(milliseconds=4),
    }
    values.update(overrides)
    return Trace(**values)


def make_traces(count: int, start: int = 0) -> list[Trace]:
    """``count`` distinct traces."""
    return [make_trace(number) for number in range(start, start + count)]


def unreachable_postgres_url() -> str:
    """A PostgreSQL URL on 127.0.0.1 where nothing listens: connections are refused at once."""
    return f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres"


def write_extracts(directory: Path, employees: list[dict[str, Any]], first_id: int = 1) -> Path:
    """Write the three HR extract files, in their source format, for synthetic employees."""
    directory.mkdir(parents=True, exist_ok=True)
    by_source: dict[str, list[str]] = {}
    for spec in FEATURES:
        by_source.setdefault(spec.source, []).append(spec.name)
    ids = range(first_id, first_id + len(employees))
    tables = {
        "extrait_sirh.csv": (["id_employee", *by_source["extrait_sirh.csv"]], [str(i) for i in ids]),
        "extrait_eval.csv": (["eval_number", *by_source["extrait_eval.csv"]], [f"E_{i}" for i in ids]),
        "extrait_sondage.csv": (["code_sondage", *by_source["extrait_sondage.csv"], TARGET], [f"{i:06d}" for i in ids]),
    }
    for name, (header, keys) in tables.items():
        with (directory / name).open("w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(header)
            for number, (key, employee) in enumerate(zip(keys, employees)):
                values = {**employee, TARGET: "Oui" if number % 4 == 0 else "Non"}
                values["augementation_salaire_precedente"] = f"{employee['augementation_salaire_precedente']} %"
                writer.writerow([key, *(values[column] for column in header[1:])])
    return directory
