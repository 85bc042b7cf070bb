"""Import of the joined HR extracts into the ``employees`` table, and lookup of one stored employee.

The extracts are personal data: they are read from the directory given and
written only to the configured database, never into the project tree.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from attrition.extracts import ExtractError, load_employees
from attrition.schema import (EMPLOYEE_ID, FEATURE_NAMES, FEATURES, NEGATIVE_LABEL, POSITIVE_LABEL, SONDAGE_FILE,
                              TARGET, Employee)
from persistence.database.columns import utcnow
from persistence.database.outcomes import record_extracts_target
from persistence.database.schema import employee_erasures, employees

if TYPE_CHECKING:  # the service imports this module for lookups; pandas only matters to the import
    import pandas as pd

CHUNK_ROWS = 250
_SOURCE_OF = {spec.name: spec.source for spec in FEATURES}


def _python(value: Any) -> Any:
    # pandas hands out numpy scalars; the strict Employee schema and the drivers want Python ones.
    return value.item() if hasattr(value, "item") else value


def employee_rows(frame: pd.DataFrame, directory: Path) -> list[dict[str, Any]]:
    """Rows of the ``employees`` table from :func:`load_employees`'s frame, each validated.

    Raises :class:`ExtractError` naming the extract file of the first field
    out of its domain or bounds.
    """
    rows = []
    for employee_id, record in zip(frame.index, frame.to_dict("records")):
        values = {name: _python(value) for name, value in record.items()}
        target = values.pop(TARGET)
        try:
            Employee.model_validate(values)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = str(error["loc"][0]) if error["loc"] else ""
            source = directory / _SOURCE_OF.get(field, "")
            raise ExtractError(f"{source}: employee {employee_id}: {field or 'row'}: {error['msg']}") from exc
        if target not in (POSITIVE_LABEL, NEGATIVE_LABEL):
            raise ExtractError(f"{directory / SONDAGE_FILE}: employee {employee_id}: "
                               f"{TARGET} is {target!r}, expected {POSITIVE_LABEL} or {NEGATIVE_LABEL}")
        rows.append({EMPLOYEE_ID: int(employee_id), **values, TARGET: target})
    return rows


def _upsert(engine: Engine) -> Any:
    dialect_insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    statement = dialect_insert(employees)
    # Re-importing corrected extracts updates the stored rows; the row count never grows.
    updated = {name: statement.excluded[name] for name in (*FEATURE_NAMES, TARGET, "imported_at")}
    return statement.on_conflict_do_update(index_elements=[EMPLOYEE_ID], set_=updated)


def _report(progress: TextIO | None, done: int, total: int) -> None:
    if progress is None:
        return
    width = 30
    filled = width * done // max(total, 1)
    progress.write(f"\rimporting employees [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        progress.write("\n")
    progress.flush()


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def import_employees(engine: Engine, directory: str | Path, progress: TextIO | None = sys.stderr) -> int:
    """Import (or update) every employee of the extracts in ``directory``; return how many.

    Idempotent: employees are upserted on their id, so a second import leaves
    the same rows. Every row is validated before anything is written, so a
    malformed extract (:class:`ExtractError`, naming the file) leaves the
    table untouched. ``progress`` (stderr by default, None for silence)
    shows a textual progress bar. The extracts' target is recorded in
    ``outcomes`` (source ``training_extracts``, known on the import day), in
    the same transaction. An employee erased before
    (``python -m persistence erase``, a tombstone in ``employee_erasures``)
    is not imported again, even when the extracts still hold them: the
    count returned leaves them out, and the progress says how many were skipped.
    """
    directory = Path(directory)
    rows = employee_rows(load_employees(directory), directory)
    with engine.connect() as connection:
        erased = set(connection.execute(sa.select(employee_erasures.c.employee_id).distinct()).scalars())
    if erased:
        kept = [row for row in rows if row[EMPLOYEE_ID] not in erased]
        if progress is not None:
            progress.write(f"skipping {len(rows) - len(kept)} erased employee(s) the extracts still hold\n")
        rows = kept
    imported_at = utcnow()
    statement = _upsert(engine)
    done = 0
    _report(progress, done, len(rows))
    with engine.begin() as connection:
        for chunk in _chunks(rows, CHUNK_ROWS):
            connection.execute(statement, [{**row, "imported_at": imported_at} for row in chunk])
            done += len(chunk)
            _report(progress, done, len(rows))
        # The extracts' target is an outcome too, known on the import day: in-sample for the models fitted on it.
        record_extracts_target(connection, {row[EMPLOYEE_ID]: row[TARGET] for row in rows}, imported_at.date())
    return len(rows)


def count_employees(engine: Engine) -> int:
    """How many employees are stored."""
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(employees)).scalar_one()


def get_employee(engine: Engine, employee_id: int) -> dict[str, Any] | None:
    """The 30 input fields of a stored employee (None when the id is unknown)."""
    columns = [employees.c[name] for name in FEATURE_NAMES]
    # Bound as a 64-bit integer, the range a request may name: cast to the column's 32-bit type, a larger
    # id would fail the query (out of range) instead of finding no one.
    wanted = sa.bindparam("employee_id", employee_id, type_=sa.BigInteger)
    with engine.connect() as connection:
        row = connection.execute(sa.select(*columns).where(employees.c[EMPLOYEE_ID] == wanted)).mappings().first()
    # Keyed by the schema's own names: the row's keys are SQLAlchemy's quoted names, which orjson refuses.
    return {name: row[name] for name in FEATURE_NAMES} if row is not None else None
