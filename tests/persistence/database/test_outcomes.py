"""Outcomes: recorded from a CSV file and the extracts, all or none, corrected by a new row, erased and purged."""
from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from attrition.errors import UnknownEmployees
from attrition.schema import FEATURE_NAMES, TARGET
from persistence.cli import commands as command
from persistence.database.columns import utcnow
from persistence.database.dataset import import_employees
from persistence.database.outcomes import (API, TRAINING_EXTRACTS, Outcome, current_outcomes, read_outcomes_csv,
                                           record_outcomes)
from persistence.database.schema import employees, outcomes
from persistence.personal_data.erasure import erase_employees
from persistence.personal_data.retention import purge_traces
from persistence.trace.store import make_trace_store
from settings import settings
from tests.persistence.factories import EMPLOYEES, make_trace

STORED, OTHER, TAGGED, STRANGER = 1, 2, 50, 777


@pytest.fixture
def known(migrated_engine: Engine) -> Engine:
    """Employees 1 and 2 imported, employee 50 known only as the tag of one trace."""
    with migrated_engine.begin() as connection:
        connection.execute(sa.insert(employees), [
            {"id_employee": i, **{name: EMPLOYEES[i][name] for name in FEATURE_NAMES}, TARGET: "Non"}
            for i in (STORED, OTHER)])
    make_trace_store(migrated_engine).insert([make_trace(3, employee_id=TAGGED)])
    return migrated_engine


def current(engine: Engine) -> dict[int, tuple[bool, date, str]]:
    """Employee id → (has_left, known_at, source) of their current outcome."""
    latest = current_outcomes()
    with engine.connect() as connection:
        rows = connection.execute(sa.select(latest.c.employee_id, latest.c.has_left, latest.c.known_at,
                                            latest.c.source)).all()
    return {row.employee_id: (bool(row.has_left), row.known_at, row.source) for row in rows}


def stored_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(outcomes)).scalar_one()


def record_csv(path: Path, text: str, url: str, monkeypatch: pytest.MonkeyPatch) -> int:
    path.write_text(text, encoding="utf-8")
    monkeypatch.setattr(settings, "database_url", url)
    return command.main(["record-outcomes", str(path)])


def test_a_csv_records_every_row_and_a_correction_is_a_new_row_that_becomes_current(
        known: Engine, migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    today = utcnow().date()
    first = ("id_employee,a_quitte_l_entreprise,known_at\n"
             f"{STORED},Oui,2026-10-01\n{OTHER},Non,\n{TAGGED},Oui,2026-09-15\n")
    assert record_csv(tmp_path / "first.csv", first, migrated_url, monkeypatch) == 0
    assert current(known) == {STORED: (True, date(2026, 10, 1), "csv"), OTHER: (False, today, "csv"),
                              TAGGED: (True, date(2026, 9, 15), "csv")}
    # Same day, recorded later: the correction wins. An earlier day, recorded even later: it does not.
    assert record_csv(tmp_path / "fix.csv", f"id_employee,a_quitte_l_entreprise\n{STORED},Non\n", migrated_url,
                      monkeypatch) == 0
    assert current(known)[STORED] == (False, today, "csv")
    record_outcomes(known, [Outcome(STORED, True, date(2026, 1, 1))], API)
    assert current(known)[STORED] == (False, today, "csv")
    record_outcomes(known, [Outcome(STORED, True, today)], API)
    assert current(known)[STORED] == (True, today, API)
    assert stored_rows(known) == 6  # append-only: every row kept


@pytest.mark.parametrize("body, lines", [
    (f"{STORED},Oui,2026-10-01\n{STRANGER},Non,2026-10-01\n{OTHER},Non,\n", [3]),  # unknown employee
    (f"{STORED},Oui,2026-10-01\n{OTHER},Partie,2026-10-01\n", [3]),  # bad label
    (f"{STORED},Oui,2026-13-01\n{OTHER},Non,01/10/2026\n", [2, 3]),  # bad dates
    (f"{STORED},Oui,2026-10-01\nabc,Non,\n", [3]),  # bad id
])
def test_a_bad_row_rejects_the_file_naming_its_line_and_nothing_is_written(
        known: Engine, migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], body: str, lines: list[int]) -> None:
    path = tmp_path / "outcomes.csv"
    assert record_csv(path, "id_employee,a_quitte_l_entreprise,known_at\n" + body, migrated_url, monkeypatch) == 2
    error = capsys.readouterr().err
    assert "nothing recorded" in error
    for line in lines:
        assert f"{path}:{line}: " in error
    assert f"{path}:2: " not in error or 2 in lines  # the good line is not named
    assert stored_rows(known) == 0
    assert "Partie" not in error and "01/10/2026" not in error  # no value quoted back


def test_the_header_must_use_the_sources_names(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.csv"
    path.write_text("employee,left\n1,Oui\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"outcomes.csv:1: the header must be id_employee,a_quitte_l_entreprise"):
        read_outcomes_csv(path)


def test_an_unknown_id_rejects_the_whole_list_naming_each_item(known: Engine) -> None:
    rows = [Outcome(STORED, True, date(2026, 5, 1)), Outcome(STRANGER, False, date(2026, 5, 1)),
            Outcome(TAGGED, True, date(2026, 5, 1)), Outcome(STRANGER + 1, True, date(2026, 5, 1))]
    with pytest.raises(UnknownEmployees) as rejected:
        record_outcomes(known, rows, API)
    assert [d["field"] for d in rejected.value.detail] == ["outcomes[1].employee_id", "outcomes[3].employee_id"]
    assert stored_rows(known) == 0
    assert record_outcomes(known, [rows[0], rows[2]], API) == 2


def test_the_import_records_the_extracts_target_once_as_in_sample_outcomes(
        migrated_engine: Engine, synthetic_extracts: Path) -> None:
    imported = import_employees(migrated_engine, synthetic_extracts, progress=None)
    with migrated_engine.connect() as connection:
        targets = dict(connection.execute(sa.select(employees.c.id_employee, employees.c[TARGET])).all())
    recorded = current(migrated_engine)
    assert len(recorded) == imported == len(targets)
    assert {i: left for i, (left, _, _) in recorded.items()} == {i: t == "Oui" for i, t in targets.items()}
    assert {source for _, _, source in recorded.values()} == {TRAINING_EXTRACTS}
    assert {day for _, day, _ in recorded.values()} == {utcnow().date()}
    import_employees(migrated_engine, synthetic_extracts, progress=None)
    assert stored_rows(migrated_engine) == imported  # a second import of the same extracts adds nothing


def test_erasure_removes_the_employees_outcomes_and_their_history_only(known: Engine, tmp_path: Path) -> None:
    record_outcomes(known, [Outcome(STORED, True, date(2026, 5, 1)), Outcome(OTHER, False, date(2026, 5, 1))], API)
    record_outcomes(known, [Outcome(STORED, False, date(2026, 6, 1))], API)
    erasures, _ = erase_employees(known, [STORED], "dpo", tmp_path / "state", settle_s=0)
    assert erasures[0].outcome_rows == 2 and "2 outcome row(s)" in erasures[0].line()
    assert set(current(known)) == {OTHER}
    assert stored_rows(known) == 1


def test_the_retention_purge_deletes_outcomes_recorded_before_its_cutoff(known: Engine) -> None:
    record_outcomes(known, [Outcome(STORED, True, date(2026, 5, 1))], API)
    assert purge_traces(known, utcnow() - timedelta(days=1)).outcomes == 0
    assert stored_rows(known) == 1
    assert purge_traces(known, utcnow() + timedelta(seconds=1)).outcomes == 1
    assert stored_rows(known) == 0
