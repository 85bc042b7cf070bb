"""The documented role-creation command gives the dashboard a role that reads the trace but cannot write it."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from dashboard.context import read_log_engine, read_only_engine, reader_id
from dashboard.readonly_role import create_read_only_role, main
from persistence.database.migrate import upgrade
from persistence.database.schema import prediction_traces, trace_reads
from persistence.personal_data.reads import record_read
from tests.conftest import POSTGRES_ADMIN_URL

TRACE = {"request_id": "role-test", "received_at": datetime.now(timezone.utc), "endpoint": "predict",
         "inputs": {}, "model_name": "m", "model_version": "v1", "service_version": "1.0.0", "fallback": False,
         "status": "ok", "total_ms": 1.0, "created_at": datetime.now(timezone.utc)}


@pytest.mark.postgres
def test_the_read_only_role_can_select_but_not_insert(postgres_url: str, tmp_path: Path, capsys) -> None:
    upgrade(postgres_url, lock_dir=tmp_path)
    role = f"futurisys_dashboard_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        assert main(["--role", role, "--database-url", postgres_url]) == 0
        printed = capsys.readouterr().out
        url = printed.strip().splitlines()[-1].removeprefix("FUTURISYS_DASHBOARD_DATABASE_URL=")
        assert sa.engine.make_url(url).username == role
        reader = sa.create_engine(url)
        try:
            with reader.connect() as connection:
                assert connection.execute(sa.select(sa.func.count()).select_from(prediction_traces)).scalar() == 0
                with pytest.raises(sa.exc.InternalError, match="read-only transaction"):
                    connection.execute(sa.insert(prediction_traces), TRACE)
                connection.rollback()
                # Even in a read-write transaction the role holds no write privilege.
                connection.execute(sa.text("SET TRANSACTION READ WRITE"))
                with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                    connection.execute(sa.insert(prediction_traces), TRACE)
        finally:
            reader.dispose()
        # Its one write: the dashboard's own rows of the read log.
        logger = read_log_engine(url)
        try:
            record_read(logger, reader_id(url), "dashboard:audit", {"request_id": "r-1"}, 1, employee_id=7)
            with logger.connect() as connection:
                assert connection.execute(sa.select(trace_reads.c.key_id, trace_reads.c.employee_id)).all() == [
                    (f"dashboard:{role}", 7)]
                connection.execute(sa.text("SET TRANSACTION READ WRITE"))
                with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                    connection.execute(sa.delete(trace_reads))
        finally:
            logger.dispose()
        # Running the command again updates the role instead of failing.
        create_read_only_role(postgres_url, role, "another-password")
    finally:
        owner = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        with owner.connect() as connection:  # its grant on trace_reads lives in the test database
            connection.execute(sa.text(f'DROP OWNED BY "{role}"'))
        owner.dispose()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


@pytest.mark.postgres
def test_the_dashboard_engine_refuses_writes_even_as_an_administrator(postgres_url: str, tmp_path: Path) -> None:
    upgrade(postgres_url, lock_dir=tmp_path)
    engine = read_only_engine(postgres_url)
    try:
        with engine.connect() as connection:
            with pytest.raises(sa.exc.InternalError, match="read-only transaction"):
                connection.execute(sa.insert(prediction_traces), TRACE)
    finally:
        engine.dispose()


def test_the_dashboard_engine_refuses_writes_on_sqlite(sqlite_url: str, tmp_path: Path) -> None:
    upgrade(sqlite_url, lock_dir=tmp_path)
    engine = read_only_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            with pytest.raises(sa.exc.OperationalError, match="readonly"):
                connection.execute(sa.insert(prediction_traces), TRACE)
    finally:
        engine.dispose()
