"""The command line says what failed and what to do, never the driver's message (which quotes values)."""
from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from persistence.cli import commands as command
from persistence.database.migrate import upgrade
from settings import settings

EMPLOYEE = 1234


@pytest.mark.postgres
def test_a_unique_violation_prints_its_class_and_what_to_do_not_the_key_it_refused(
        postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    upgrade(postgres_url, lock_dir=tmp_path)
    owner = sa.create_engine(postgres_url)
    try:
        with owner.begin() as connection:
            # One tombstone per employee: a second erasure of the same id is a duplicate key whose DETAIL
            # quotes the id ("Key (employee_id)=(1234) already exists.").
            connection.execute(sa.text("CREATE UNIQUE INDEX one_tombstone ON employee_erasures (employee_id)"))
    finally:
        owner.dispose()
    monkeypatch.setattr(settings, "database_url", postgres_url)
    monkeypatch.setattr(settings, "state_dir", tmp_path / "state")
    assert command.main(["erase", "--employee", str(EMPLOYEE), "--settle-s", "0"]) == 0
    capsys.readouterr()

    assert command.main(["erase", "--employee", str(EMPLOYEE), "--settle-s", "0"]) == command.EXIT_DATABASE
    error = capsys.readouterr().err
    assert "UniqueViolation (SQLSTATE 23505; table employee_erasures, constraint one_tombstone)" in error
    assert "run the command again" in error
    assert str(EMPLOYEE) not in error and "DETAIL" not in error and "already exists" not in error
