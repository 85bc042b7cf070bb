"""The join of the three HR extracts: the real one, and clear errors on bad (synthetic) extracts."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from attrition.extracts import (EVAL_FILE, SIRH_FILE, SONDAGE_FILE, ExtractError, features_and_target,
                                load_employees)
from attrition.schema import FEATURE_NAMES, TARGET, Employee
from attrition.synthetic import synthetic_employees
from tests.attrition.synthetic_extracts import synthetic_extract_frames, write_extracts


@pytest.mark.extracts
def test_real_extracts_join_into_1470_employees_with_30_fields_and_the_target(extracts_dir: Path) -> None:
    employees = load_employees(extracts_dir)
    assert len(employees) == 1470
    assert list(employees.columns) == [*FEATURE_NAMES, TARGET]
    assert employees.index.is_unique and employees.index.is_monotonic_increasing
    assert not employees.isna().any().any()
    assert set(employees[TARGET]) == {"Oui", "Non"}
    assert (employees[TARGET] == "Oui").mean() == pytest.approx(0.161, abs=0.001)
    assert employees["augementation_salaire_precedente"].dtype.kind == "i"


@pytest.mark.extracts
def test_every_real_employee_is_accepted_by_the_schema(extracts_dir: Path) -> None:
    features, _ = features_and_target(load_employees(extracts_dir))
    rejected = []
    for employee_id, row in zip(features.index, features.to_dict("records")):
        try:
            Employee.model_validate(row)
        except ValidationError as exc:
            # Ids and field names only: a failure must not print personal data into the test log.
            rejected.append((employee_id, sorted({str(e["loc"]) for e in exc.errors()})))
    assert rejected == []


def test_synthetic_extracts_join_back_into_the_employees_they_were_made_from(synthetic_extracts: Path) -> None:
    employees = load_employees(synthetic_extracts)
    assert list(employees.index) == list(range(1, 13))
    assert employees.loc[:, list(FEATURE_NAMES)].to_dict("records") == synthetic_employees(12, 7)
    assert list(employees[TARGET]) == ["Oui" if i % 3 == 0 else "Non" for i in range(1, 13)]


def test_join_matches_ids_not_row_order(tmp_path: Path) -> None:
    frames = synthetic_extract_frames()
    frames[EVAL_FILE] = frames[EVAL_FILE].iloc[::-1]
    frames[SONDAGE_FILE] = frames[SONDAGE_FILE].sample(frac=1.0, random_state=3)
    employees = load_employees(write_extracts(tmp_path, frames))
    assert employees.loc[:, list(FEATURE_NAMES)].to_dict("records") == synthetic_employees(12, 7)


def test_features_and_target_give_the_30_fields_in_schema_order_and_a_0_1_target(synthetic_extracts: Path) -> None:
    features, target = features_and_target(load_employees(synthetic_extracts))
    assert tuple(features.columns) == FEATURE_NAMES
    assert list(target) == [1 if i % 3 == 0 else 0 for i in range(1, 13)]


def _break(frames: dict[str, pd.DataFrame], file_name: str, how: str) -> dict[str, pd.DataFrame]:
    frame = frames[file_name]
    key = {SIRH_FILE: "id_employee", EVAL_FILE: "eval_number", SONDAGE_FILE: "code_sondage"}[file_name]
    if how == "duplicate id":
        frames[file_name] = pd.concat([frame, frame.iloc[[0]]])
    elif how == "orphan id":
        frame = frame.copy()
        frame.loc[frame.index[-1], key] = {EVAL_FILE: "E_999", SONDAGE_FILE: "000999"}.get(file_name, 999)
        frames[file_name] = frame
    elif how == "missing column":
        frames[file_name] = frame.drop(columns=[frame.columns[1]])
    elif how == "empty cell":
        frame = frame.copy()
        frame[frame.columns[1]] = frame[frame.columns[1]].astype(object)
        frame.iloc[2, 1] = None
        frames[file_name] = frame
    return frames


BROKEN_EXTRACTS = [
    (EVAL_FILE, "duplicate id", "duplicate employee ids [1]"),
    (SIRH_FILE, "duplicate id", "duplicate employee ids [1]"),
    (SONDAGE_FILE, "orphan id", "only in extrait_sondage.csv: [999]"),
    (EVAL_FILE, "orphan id", "only in extrait_eval.csv: [999]"),
    (SONDAGE_FILE, "missing column", "missing columns"),
    (EVAL_FILE, "empty cell", "empty values"),
]


@pytest.mark.parametrize(("file_name", "how", "message"), BROKEN_EXTRACTS)
def test_a_broken_extract_raises_an_extract_error_naming_the_file(
        tmp_path: Path, file_name: str, how: str, message: str) -> None:
    directory = write_extracts(tmp_path, _break(synthetic_extract_frames(), file_name, how))
    with pytest.raises(ExtractError) as error:
        load_employees(directory)
    assert file_name in str(error.value)
    assert message in str(error.value)


@pytest.mark.parametrize("file_name", [SIRH_FILE, EVAL_FILE, SONDAGE_FILE])
def test_a_missing_extract_file_is_named(synthetic_extracts: Path, file_name: str) -> None:
    (synthetic_extracts / file_name).unlink()
    with pytest.raises(ExtractError, match=f"{file_name}: file not found"):
        load_employees(synthetic_extracts)


@pytest.mark.parametrize(("content", "message"), [
    (b"", "cannot be parsed as CSV"),
    (b'id_employee,age\n1,"unterminated\n', "cannot be parsed as CSV"),
    ("id_employee,âge\n1,41\n".encode("latin-1"), "cannot be parsed as CSV"),
    (b"just some text\nwithout any of the columns\n", "missing columns"),
])
def test_a_malformed_extract_file_is_named(synthetic_extracts: Path, content: bytes, message: str) -> None:
    (synthetic_extracts / SIRH_FILE).write_bytes(content)
    with pytest.raises(ExtractError) as error:
        load_employees(synthetic_extracts)
    assert SIRH_FILE in str(error.value) and message in str(error.value)


@pytest.mark.parametrize(("column", "value", "message"), [
    ("eval_number", "X_3", "not an employee id"),
    ("augementation_salaire_precedente", "beaucoup %", "not a percentage"),
])
def test_an_unreadable_value_in_the_eval_extract_is_named(tmp_path: Path, column: str, value: str,
                                                          message: str) -> None:
    frames = synthetic_extract_frames()
    frames[EVAL_FILE].loc[frames[EVAL_FILE].index[2], column] = value
    with pytest.raises(ExtractError) as error:
        load_employees(write_extracts(tmp_path, frames))
    assert EVAL_FILE in str(error.value) and message in str(error.value)
