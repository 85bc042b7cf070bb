"""The migrations build the schema the models describe, on PostgreSQL and SQLite, from any number of workers."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from attrition.schema import FEATURES, FEATURE_NAMES, TARGET
from persistence.database.engine import make_engine, normalize_url
from persistence.database.migrate import alembic_config, current_revision, head_revision, upgrade
from persistence.database.schema import CATEGORY_LENGTH, employees, metadata
from tests.conftest import PROJECT_ROOT
from tests.persistence.expectations import stored_rows
from tests.persistence.factories import make_trace

# The columns of the two tables of revision 0001, which revision 0002 merged.
REQUEST_COLUMNS = ("request_id", "received_at", "endpoint", "requested_model", "employee_id", "batch_index", "inputs")
RESULT_COLUMNS = ("request_id", "model_name", "model_version", "model_sha256", "service_version", "prediction",
                  "probability", "threshold", "fallback", "status", "error", "inference_ms", "total_ms", "created_at")

TABLES = {"employees", "prediction_traces"}


def test_upgrade_from_empty_creates_every_table_at_head(database_url: str, tmp_path: Path) -> None:
    assert upgrade(database_url, lock_dir=tmp_path) == head_revision()
    engine = make_engine(database_url)
    try:
        assert TABLES <= set(sa.inspect(engine).get_table_names())
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_models_and_migrations_agree(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_downgrade_to_base_then_upgrade_again(migrated_url: str, tmp_path: Path) -> None:
    engine = make_engine(migrated_url)
    try:
        config = alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        assert not TABLES & set(sa.inspect(engine).get_table_names())
        assert upgrade(migrated_url, lock_dir=tmp_path) == head_revision()
        assert TABLES <= set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_traces_of_the_two_table_schema_move_into_one_row_each_and_back(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    trace = make_trace(7, employee_id=1234)
    requested = {name: getattr(trace, name) for name in REQUEST_COLUMNS}
    answered = {name: getattr(trace, name) for name in RESULT_COLUMNS}
    try:
        config = alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0001")
        old = sa.MetaData()
        old.reflect(engine, only=["prediction_requests", "prediction_results"])
        with engine.begin() as connection:
            connection.execute(old.tables["prediction_requests"].insert(), [requested])
            connection.execute(old.tables["prediction_results"].insert(), [answered])
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        assert not {"prediction_requests", "prediction_results"} & set(sa.inspect(engine).get_table_names())
        assert stored_rows(engine) == {trace.request_id: trace.row()}
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0001")
        with engine.connect() as connection:
            back = connection.execute(old.tables["prediction_requests"].select()).mappings().one()
            assert back["inputs"] == trace.inputs and back["employee_id"] == 1234
            assert connection.execute(old.tables["prediction_results"].select()).mappings().one()["probability"] \
                == trace.probability
    finally:
        engine.dispose()


def test_concurrent_migrate_commands_all_succeed(database_url: str, tmp_path: Path) -> None:
    # Every BentoML worker migrates at start: several processes race on an empty database.
    environment = {**os.environ, "DATABASE_URL": database_url, "FUTURISYS_STATE_DIR": str(tmp_path)}
    processes = [subprocess.Popen([sys.executable, "-m", "persistence", "migrate"], cwd=PROJECT_ROOT,
                                  env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
    results = [(process.wait(timeout=60), process.stderr.read()) for process in processes]
    for process in processes:
        process.stdout.close()
        process.stderr.close()
    assert [code for code, _ in results] == [0, 0, 0], results
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_employees_table_follows_the_employee_schema() -> None:
    columns = [column.name for column in employees.columns]
    assert columns == ["id_employee", *FEATURE_NAMES, TARGET, "imported_at"]
    for spec in FEATURES:
        column_type = employees.c[spec.name].type
        if spec.kind == "integer":
            assert isinstance(column_type, sa.Integer), spec.name
        else:
            assert isinstance(column_type, sa.String), spec.name
            assert max(len(category) for category in spec.categories) <= CATEGORY_LENGTH


def test_sqlite_engine_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'traces.db'}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("given", ["postgres://u:p@db.example:5432/x", "postgresql://u:p@db.example:5432/x"])
def test_hosted_postgres_urls_use_psycopg3(given: str) -> None:
    assert normalize_url(given).drivername == "postgresql+psycopg"
