"""The HR extracts import into ``employees``: complete, faithful, idempotent, and loud about bad files."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from attrition.extracts import ExtractError, load_employees
from attrition.schema import FEATURE_NAMES
from attrition.synthetic import synthetic_employees
from persistence.database.columns import utcnow
from persistence.database.dataset import count_employees, get_employee, import_employees
from persistence.database.schema import employee_erasures
from persistence.database.schema import employees as employees_table
from tests.conftest import PROJECT_ROOT
from tests.persistence.factories import write_extracts

EMPLOYEES_IN_EXTRACTS = 1470


@pytest.mark.extracts
def test_real_extracts_import_completely_faithfully_and_idempotently(
        migrated_engine: Engine, extracts_dir: Path) -> None:
    assert import_employees(migrated_engine, extracts_dir, progress=None) == EMPLOYEES_IN_EXTRACTS
    assert count_employees(migrated_engine) == EMPLOYEES_IN_EXTRACTS
    expected = load_employees(extracts_dir)
    some_id = int(expected.index[len(expected) // 2])
    assert get_employee(migrated_engine, some_id) == {
        name: value.item() if hasattr(value, "item") else value
        for name, value in expected.loc[some_id, list(FEATURE_NAMES)].items()}

    assert import_employees(migrated_engine, extracts_dir, progress=None) == EMPLOYEES_IN_EXTRACTS
    assert count_employees(migrated_engine) == EMPLOYEES_IN_EXTRACTS


def test_synthetic_extracts_round_trip_with_a_progress_bar(migrated_engine: Engine, tmp_path: Path) -> None:
    employees = synthetic_employees(600, seed=3)
    directory = write_extracts(tmp_path / "extracts", employees, first_id=10)
    progress = io.StringIO()
    assert import_employees(migrated_engine, directory, progress=progress) == 600
    assert progress.getvalue().rstrip().endswith("600/600")
    assert get_employee(migrated_engine, 10) == employees[0]
    assert get_employee(migrated_engine, 609) == employees[-1]
    assert get_employee(migrated_engine, 9) is None


def test_reimport_updates_rows_without_adding_any(migrated_engine: Engine, tmp_path: Path) -> None:
    employees = synthetic_employees(20, seed=4)
    import_employees(migrated_engine, write_extracts(tmp_path / "v1", employees), progress=None)
    corrected = [{**employees[0], "distance_domicile_travail": 28}, *employees[1:]]
    import_employees(migrated_engine, write_extracts(tmp_path / "v2", corrected), progress=None)
    assert count_employees(migrated_engine) == 20
    assert get_employee(migrated_engine, 1)["distance_domicile_travail"] == 28


def test_an_erased_employee_is_not_imported_again(migrated_engine: Engine, tmp_path: Path) -> None:
    employees = synthetic_employees(6, seed=5)
    directory = write_extracts(tmp_path / "extracts", employees)
    import_employees(migrated_engine, directory, progress=None)
    with migrated_engine.begin() as connection:
        connection.execute(sa.delete(employees_table).where(employees_table.c.id_employee == 3))
        connection.execute(sa.insert(employee_erasures).values(
            erasure_id=str(uuid.uuid4()), employee_id=3, erased_at=utcnow(), erased_by="dpo"))
    progress = io.StringIO()
    assert import_employees(migrated_engine, directory, progress=progress) == 5
    assert get_employee(migrated_engine, 3) is None and get_employee(migrated_engine, 4) == employees[3]
    assert count_employees(migrated_engine) == 5 and "skipping 1 erased employee" in progress.getvalue()


def _drop_column(path: Path, column: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    position = lines[0].split(",").index(column)
    path.write_text("\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != position)
                              for line in lines) + "\n", encoding="utf-8")


def _replace(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize("damage, bad_file, message", [
    (lambda d: (d / "extrait_eval.csv").unlink(), "extrait_eval.csv", "not found"),
    (lambda d: _drop_column(d / "extrait_sondage.csv", "code_sondage"), "extrait_sondage.csv", "missing columns"),
    (lambda d: _drop_column(d / "extrait_sirh.csv", "age"), "extrait_sirh.csv", "age"),
    (lambda d: _replace(d / "extrait_eval.csv", "\nE_2,", "\nX_2,"), "extrait_eval.csv", "eval_number"),
    (lambda d: _replace(d / "extrait_sirh.csv", ",Consulting,", ",Astrologie,"), "extrait_sirh.csv", "departement"),
    (lambda d: (d / "extrait_sirh.csv").write_bytes(b"\xff\xfe\x00garbage"), "extrait_sirh.csv", "cannot be parsed"),
], ids=["missing-file", "missing-key", "missing-field", "bad-id", "unknown-category", "not-csv"])
def test_malformed_extract_is_refused_naming_the_file(sqlite_engine: Engine, tmp_path: Path,
                                                      damage, bad_file: str, message: str) -> None:
    # Refused before anything is written, whatever the backend: SQLite is enough here.
    employees = [{**e, "departement": "Consulting"} for e in synthetic_employees(8, seed=5)]
    directory = write_extracts(tmp_path / "extracts", employees)
    damage(directory)
    with pytest.raises(ExtractError, match=message) as caught:
        import_employees(sqlite_engine, directory, progress=None)
    assert bad_file in str(caught.value)
    assert count_employees(sqlite_engine) == 0  # nothing half-imported


def test_cli_exits_2_with_a_clear_message_on_a_malformed_extract(sqlite_url: str, tmp_path: Path) -> None:
    directory = write_extracts(tmp_path / "extracts", synthetic_employees(5, seed=6))
    _drop_column(directory / "extrait_eval.csv", "eval_number")
    environment = {**os.environ, "DATABASE_URL": sqlite_url, "FUTURISYS_STATE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "persistence", "import-dataset", str(directory)],
                          cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "extrait_eval.csv" in done.stderr and "missing columns" in done.stderr


def test_cli_imports_the_dataset(sqlite_url: str, tmp_path: Path) -> None:
    directory = write_extracts(tmp_path / "extracts", synthetic_employees(30, seed=8))
    environment = {**os.environ, "DATABASE_URL": sqlite_url, "FUTURISYS_STATE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "persistence", "import-dataset", str(directory)],
                          cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "30 employees imported" in done.stderr and "30/30" in done.stderr
