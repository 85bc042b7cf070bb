"""Outcomes: whether an employee really left, recorded months after the predictions about them.

The table is append-only: a correction is a new row, and an employee's
**current outcome** is the row with the latest ``known_at``, then the latest
``recorded_at``. An outcome is recorded only for a *known* employee: one in
``employees`` or whose id tags at least one trace. Three ways in, each
all-or-nothing (one transaction, the ids checked inside it): ``import-dataset``
(the extracts' target, source ``training_extracts``), a CSV file
(:func:`read_outcomes_csv`, ``python -m persistence record-outcomes``) and
``POST /outcomes`` (source ``api``).
"""
from __future__ import annotations

import csv
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from attrition.errors import UnknownEmployees
from attrition.schema import EMPLOYEE_ID, MAX_ID, NEGATIVE_LABEL, POSITIVE_LABEL, TARGET
from persistence.database.columns import utcnow
from persistence.database.schema import OUTCOME_SOURCES, employees, outcomes, prediction_traces

TRAINING_EXTRACTS, CSV_FILE, API = OUTCOME_SOURCES
KNOWN_AT = "known_at"
CSV_COLUMNS = (EMPLOYEE_ID, TARGET, KNOWN_AT)
"""The CSV's columns, with the source's own names (``known_at`` optional)."""
MAX_PROBLEMS = 50


@dataclass(frozen=True)
class Outcome:
    """One outcome to record: the employee, whether they left, the day it became known."""

    employee_id: int
    has_left: bool
    known_at: date


class OutcomeFileError(ValueError):
    """A CSV of outcomes that cannot be recorded; the message names the file and the line of each problem."""

    def __init__(self, problems: list[str]) -> None:
        shown = problems[:MAX_PROBLEMS]
        more = f" (and {len(problems) - len(shown)} more)" if len(problems) > len(shown) else ""
        super().__init__("; ".join(shown) + more)
        self.problems = problems


def unknown_employees(connection: Connection, ids: Sequence[int]) -> set[int]:
    """The ids among ``ids`` that are neither imported nor tag any trace."""
    wanted = sorted(set(ids))
    known: set[int] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        bound = sa.bindparam("ids", chunk, expanding=True, type_=sa.BigInteger)
        known.update(connection.execute(sa.select(employees.c[EMPLOYEE_ID]).where(
            sa.cast(employees.c[EMPLOYEE_ID], sa.BigInteger).in_(bound))).scalars())
        known.update(connection.execute(sa.select(prediction_traces.c.employee_id).distinct().where(
            prediction_traces.c.employee_id.in_(bound))).scalars())
    return set(wanted) - known


def record_outcomes(engine: Engine, rows: Sequence[Outcome], source: str,
                    field_of: Callable[[int], str] = lambda index: f"outcomes[{index}].employee_id") -> int:
    """Record ``rows`` in one transaction, or nothing; returns how many.

    Raises :class:`UnknownEmployees` naming each faulty row by ``field_of(index)``
    when an id is unknown; the check runs in the transaction that inserts.
    """
    if not rows:
        return 0
    recorded_at = utcnow()
    with engine.begin() as connection:
        unknown = unknown_employees(connection, [row.employee_id for row in rows])
        if unknown:
            raise UnknownEmployees([field_of(index) for index, row in enumerate(rows) if row.employee_id in unknown])
        connection.execute(sa.insert(outcomes), [
            {"outcome_id": str(uuid.uuid4()), "employee_id": row.employee_id, "has_left": row.has_left,
             "known_at": row.known_at, "source": source, "recorded_at": recorded_at} for row in rows])
    return len(rows)


def record_extracts_target(connection: Connection, targets: dict[int, str], known_at: date) -> int:
    """Record the extracts' target of each imported employee, unless their current extracts outcome already says it.

    Runs in the import's transaction; a second import of the same extracts adds nothing.
    """
    latest = (sa.select(outcomes.c.employee_id, outcomes.c.has_left,
                        sa.func.row_number().over(partition_by=outcomes.c.employee_id,
                                                  order_by=(outcomes.c.known_at.desc(),
                                                            outcomes.c.recorded_at.desc())).label("rank"))
              .where(outcomes.c.source == TRAINING_EXTRACTS).subquery())
    stored = dict(connection.execute(sa.select(latest.c.employee_id, latest.c.has_left).where(latest.c.rank == 1))
                  .all())
    recorded_at = utcnow()
    rows = [{"outcome_id": str(uuid.uuid4()), "employee_id": employee_id, "has_left": target == POSITIVE_LABEL,
             "known_at": known_at, "source": TRAINING_EXTRACTS, "recorded_at": recorded_at}
            for employee_id, target in targets.items() if stored.get(employee_id) != (target == POSITIVE_LABEL)]
    if rows:
        connection.execute(sa.insert(outcomes), rows)
    return len(rows)


def _parse_row(record: dict[str, str | None], today: date) -> tuple[Outcome | None, list[str]]:
    problems = []
    text = (record.get(EMPLOYEE_ID) or "").strip()
    employee_id = int(text) if text.isdigit() and 1 <= int(text) <= MAX_ID else None
    if employee_id is None:
        problems.append(f"{EMPLOYEE_ID}: expected a whole number from 1 to {MAX_ID}")
    label = (record.get(TARGET) or "").strip()
    if label not in (POSITIVE_LABEL, NEGATIVE_LABEL):
        problems.append(f"{TARGET}: expected {POSITIVE_LABEL} or {NEGATIVE_LABEL}")
    known_text = (record.get(KNOWN_AT) or "").strip()
    known_at: date | None = today
    if known_text:
        try:
            known_at = date.fromisoformat(known_text)
        except ValueError:
            known_at = None
            problems.append(f"{KNOWN_AT}: expected an ISO date (YYYY-MM-DD)")
    if problems or employee_id is None or known_at is None:
        return None, problems
    return Outcome(employee_id, label == POSITIVE_LABEL, known_at), []


def read_outcomes_csv(path: Path, today: date | None = None) -> tuple[list[Outcome], list[int]]:
    """The outcomes of a CSV file and the line number of each; raises :class:`OutcomeFileError` naming bad lines.

    Columns: ``id_employee,a_quitte_l_entreprise[,known_at]`` (``Oui``/``Non``,
    an ISO date; an empty or absent ``known_at`` is ``today``). Every line is
    checked before anything is recorded; no value is quoted back.
    """
    today = today or datetime.now().astimezone().date()
    with Path(path).open(encoding="utf-8-sig", newline="") as stream:
        reader = csv.DictReader(stream)
        header = [name.strip() for name in reader.fieldnames or []]
        if header[:2] != list(CSV_COLUMNS[:2]) or header[2:] not in ([], [KNOWN_AT]):
            raise OutcomeFileError([f"{path}:1: the header must be {','.join(CSV_COLUMNS[:2])}[,{KNOWN_AT}]"])
        rows, lines, problems = [], [], []
        for record in reader:
            line = reader.line_num
            if None in record:
                problems.append(f"{path}:{line}: more columns than the header")
                continue
            outcome, found = _parse_row({k.strip(): v for k, v in record.items()}, today)
            problems.extend(f"{path}:{line}: {problem}" for problem in found)
            if outcome is not None:
                rows.append(outcome)
                lines.append(line)
    if problems:
        raise OutcomeFileError(problems)
    if not rows:
        raise OutcomeFileError([f"{path}: no outcome below the header"])
    return rows, lines


def current_outcomes() -> sa.Subquery:
    """Each employee's current outcome (latest ``known_at``, then latest ``recorded_at``): one row per employee.

    Columns: ``employee_id``, ``has_left``, ``known_at``, ``source``, ``recorded_at``, ``corrections`` (rows
    recorded for the employee, beyond the first).
    """
    order = (outcomes.c.known_at.desc(), outcomes.c.recorded_at.desc(), outcomes.c.outcome_id.desc())
    ranked = sa.select(outcomes.c.employee_id, outcomes.c.has_left, outcomes.c.known_at, outcomes.c.source,
                       outcomes.c.recorded_at,
                       sa.func.row_number().over(partition_by=outcomes.c.employee_id, order_by=order).label("rank"),
                       (sa.func.count().over(partition_by=outcomes.c.employee_id) - 1).label("corrections")).subquery()
    return (sa.select(ranked.c.employee_id, ranked.c.has_left, ranked.c.known_at, ranked.c.source,
                      ranked.c.recorded_at, ranked.c.corrections)
            .where(ranked.c.rank == 1).subquery("current_outcomes"))
