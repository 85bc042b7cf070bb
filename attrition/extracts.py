"""Reading and joining the three HR extracts into one row per employee.

The extracts are personal data: this module reads them from a directory it
is given and never writes them anywhere.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from attrition.schema import (EMPLOYEE_ID, EVAL_FILE, FEATURE_NAMES, FEATURES, POSITIVE_LABEL, SIRH_FILE, SONDAGE_FILE,
                              TARGET)

if TYPE_CHECKING:  # imported where used: the service needs this module's names, not pandas
    import pandas as pd

__all__ = ["EMPLOYEE_ID", "EVAL_FILE", "SIRH_FILE", "SONDAGE_FILE", "ExtractError", "load_employees"]


class ExtractError(ValueError):
    """An extract is missing, malformed, or does not join with the others."""


def _read(directory: Path, name: str, required: set[str]) -> pd.DataFrame:
    import pandas as pd

    path = directory / name
    if not path.is_file():
        raise ExtractError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ExtractError(f"{path}: cannot be parsed as CSV ({exc})") from exc
    missing = sorted(required - set(frame.columns))
    if missing:
        raise ExtractError(f"{path}: missing columns {missing}")
    return frame


def _employee_ids(frame: pd.DataFrame, column: str, path: Path, parse) -> pd.Series:

    try:
        ids = frame[column].map(parse).astype("int64")
    except (ValueError, TypeError) as exc:
        raise ExtractError(f"{path}: column {column!r} holds a value that is not an employee id ({exc})") from exc
    duplicated = sorted(ids[ids.duplicated()].unique().tolist())
    if duplicated:
        raise ExtractError(f"{path}: duplicate employee ids {duplicated[:10]}")
    return ids


def _parse_eval_number(value: object) -> int:
    text = str(value)
    if not text.startswith("E_"):
        raise ValueError(f"eval_number {text!r} does not look like E_<id>")
    return int(text[2:])


def _parse_percent(value: object) -> int:
    text = str(value).replace("%", "").strip()
    return int(round(float(text)))


def _fields_from(name: str) -> set[str]:
    return {spec.name for spec in FEATURES if spec.source == name}


def load_employees(directory: str | Path) -> pd.DataFrame:
    """Join the three extracts on the employee id.

    Returns one row per employee, indexed by ``id_employee``, with the 30
    input fields (raise as a number of percent) and the target (``Oui``/``Non``).
    Raises :class:`ExtractError` naming the file at fault when a file is
    missing or malformed, an id is duplicated, or an id has no match in the
    other files.
    """

    directory = Path(directory)
    columns = set(FEATURE_NAMES) | {TARGET}
    # Each file must hold its key and the fields the schema says come from it, so a
    # missing column is reported against the file that lacks it.
    sirh = _read(directory, SIRH_FILE, {EMPLOYEE_ID, *_fields_from(SIRH_FILE)})
    evaluation = _read(directory, EVAL_FILE, {"eval_number", *_fields_from(EVAL_FILE)})
    sondage = _read(directory, SONDAGE_FILE, {"code_sondage", TARGET, *_fields_from(SONDAGE_FILE)})

    sirh.index = _employee_ids(sirh, EMPLOYEE_ID, directory / SIRH_FILE, int)
    evaluation.index = _employee_ids(evaluation, "eval_number", directory / EVAL_FILE, _parse_eval_number)
    sondage.index = _employee_ids(sondage, "code_sondage", directory / SONDAGE_FILE, int)

    reference = set(sirh.index)
    for name, frame in ((EVAL_FILE, evaluation), (SONDAGE_FILE, sondage)):
        orphans = sorted(set(frame.index) - reference)
        absent = sorted(reference - set(frame.index))
        if orphans or absent:
            raise ExtractError(
                f"{directory / name}: ids do not match {SIRH_FILE} "
                f"(only in {name}: {orphans[:10]}, missing from {name}: {absent[:10]})")

    for name, frame in ((SIRH_FILE, sirh), (EVAL_FILE, evaluation), (SONDAGE_FILE, sondage)):
        # An empty cell would reach the models as NaN, which no input field may be.
        empty = sorted(column for column in frame.columns if column in columns and frame[column].isna().any())
        if empty:
            raise ExtractError(f"{directory / name}: empty values in column(s) {empty}")

    joined = sirh.drop(columns=[EMPLOYEE_ID]).join(
        evaluation.drop(columns=["eval_number"])).join(sondage.drop(columns=["code_sondage"]))
    missing = sorted(columns - set(joined.columns))
    if missing:
        raise ExtractError(f"{directory}: the joined extracts lack columns {missing}")
    try:
        joined["augementation_salaire_precedente"] = joined["augementation_salaire_precedente"].map(_parse_percent)
    except ValueError as exc:
        raise ExtractError(f"{directory / EVAL_FILE}: column 'augementation_salaire_precedente' holds a value "
                           f"that is not a percentage ({exc})") from exc
    joined.index.name = EMPLOYEE_ID
    return joined.loc[:, [*FEATURE_NAMES, TARGET]].sort_index()


def features_and_target(employees: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Split joined employees into the 30 input fields and a 0/1 target (1 = left)."""

    target = (employees[TARGET] == POSITIVE_LABEL).astype("int64")
    return employees.loc[:, list(FEATURE_NAMES)], target
