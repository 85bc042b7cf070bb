"""Writing three extract files in the source layout from SYNTHETIC employees only.

Tests of the join build their good and bad extracts with this, never from
the real (personal) extracts.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from attrition.extracts import EMPLOYEE_ID, EVAL_FILE, SIRH_FILE, SONDAGE_FILE
from attrition.schema import FEATURES, TARGET
from attrition.synthetic import synthetic_employees


def fields_of(file_name: str) -> list[str]:
    """The schema fields that come from one extract file, in schema order."""
    return [spec.name for spec in FEATURES if spec.source == file_name]


def synthetic_extract_frames(count: int = 12, seed: int = 7) -> dict[str, pd.DataFrame]:
    """The three extracts, as the source spells them, for ``count`` synthetic employees (ids 1..count).

    Every third employee has left (``Oui``).
    """
    employees: list[dict[str, Any]] = synthetic_employees(count, seed)
    ids = list(range(1, count + 1))
    frame = pd.DataFrame(employees)
    sirh = frame[fields_of(SIRH_FILE)].copy()
    sirh.insert(0, EMPLOYEE_ID, ids)
    evaluation = frame[fields_of(EVAL_FILE)].copy()
    evaluation["eval_number"] = [f"E_{i}" for i in ids]
    evaluation["augementation_salaire_precedente"] = [f"{v} %" for v in evaluation["augementation_salaire_precedente"]]
    sondage = frame[fields_of(SONDAGE_FILE)].copy()
    sondage.insert(0, TARGET, ["Oui" if i % 3 == 0 else "Non" for i in ids])
    sondage["code_sondage"] = [f"{i:06d}" for i in ids]
    return {SIRH_FILE: sirh, EVAL_FILE: evaluation, SONDAGE_FILE: sondage}


def write_extracts(directory: Path, frames: dict[str, pd.DataFrame]) -> Path:
    """Write the frames as the three CSV files of ``directory``; returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.to_csv(directory / name, index=False)
    return directory
