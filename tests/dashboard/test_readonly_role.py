"""The dashboard's database role: exactly what the dashboard does, nothing more, checked by reading as it."""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from dashboard.context import read_log_engine, read_only_engine, reader_id
from dashboard.readonly_role import READ_TABLES, create_read_only_role, main
from persistence.database.migrate import upgrade
from persistence.database.schema import prediction_traces, trace_reads
from persistence.personal_data.reads import record_read
from tests.conftest import POSTGRES_ADMIN_URL
from tests.dashboard.conftest import APP
from tests.dashboard.seed import AUDITED_REQUEST, seed_database

TRACE = {"request_id": "role-test", "received_at": datetime.now(timezone.utc), "endpoint": "predict",
         "inputs": {}, "model_name": "m", "model_version": "v1", "service_version": "1.0.0", "fallback": False,
         "status": "ok", "total_ms": 1.0, "created_at": datetime.now(timezone.utc)}
# Every page of the dashboard, the one it opens on first: a page added later is run as the role too.
PAGES = ("views/service.py", *sorted(f"views/{page.name}" for page in (APP.parent / "views").glob("*.py")
                                     if page.name not in ("__init__.py", "service.py")))


def admin() -> sa.engine.Engine:
    """The cluster's administrator, on its maintenance database."""
    return sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture
def role(postgres_url: str) -> Iterator[str]:
    """A role name for the test; the role and its grants are dropped afterwards."""
    name = f"futurisys_dashboard_{uuid.uuid4().hex[:8]}"
    yield name
    owner = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with owner.connect() as connection:  # its grants live in the test database
        connection.execute(sa.text(f'DROP OWNED BY "{name}"'))
    owner.dispose()
    cluster = admin()
    with cluster.connect() as connection:
        connection.execute(sa.text(f'DROP ROLE IF EXISTS "{name}"'))
    cluster.dispose()


@pytest.fixture
def other_database() -> Iterator[str]:
    """Another database of the cluster, with a table of its own; its URL (as the administrator)."""
    name = f"futurisys_other_{uuid.uuid4().hex[:8]}"
    cluster = admin()
    with cluster.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(POSTGRES_ADMIN_URL).set(database=name)
    other = sa.create_engine(url)
    with other.begin() as connection:
        connection.execute(sa.text("CREATE TABLE salaries (employee_id bigint, amount numeric)"))
        connection.execute(sa.text("INSERT INTO salaries VALUES (1, 4200)"))
    other.dispose()
    yield url.render_as_string(hide_password=False)
    with cluster.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    cluster.dispose()


def refused(url: str, statement: str, read_write: bool = False) -> bool:
    """True when the role of ``url`` is refused ``statement`` for want of a privilege."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            if read_write:
                connection.execute(sa.text("SET TRANSACTION READ WRITE"))
            try:
                connection.execute(sa.text(statement))
            except sa.exc.ProgrammingError as exc:
                return "permission denied" in str(exc)
            return False
    finally:
        engine.dispose()


def role_url(printed: str) -> str:
    """The URL the command printed for the dashboard."""
    return printed.strip().splitlines()[-1].removeprefix("FUTURISYS_DASHBOARD_DATABASE_URL=")


@pytest.mark.postgres
def test_the_role_reads_only_the_listed_tables_writes_only_its_own_reads_and_a_rerun_revokes_the_rest(
        postgres_url: str, role: str, other_database: str, tmp_path: Path, capsys) -> None:
    upgrade(postgres_url, lock_dir=tmp_path)
    assert main(["--role", role, "--database-url", postgres_url]) == 0
    url = role_url(capsys.readouterr().out)
    assert sa.engine.make_url(url).username == role
    # What an earlier version granted, and a grant made by hand: the next run takes them back.
    owner = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with owner.connect() as connection:
        connection.execute(sa.text(f'GRANT pg_read_all_data TO "{role}"'))
        connection.execute(sa.text(f'GRANT SELECT, UPDATE ON employee_erasures TO "{role}"'))
        connection.execute(sa.text(f'GRANT INSERT (reader), DELETE ON trace_reads TO "{role}"'))
    assert not refused(url, "SELECT count(*) FROM employee_erasures")
    create_read_only_role(postgres_url, role, "another-password")
    url = sa.engine.make_url(url).set(password="another-password").render_as_string(hide_password=False)

    # Reads: the listed tables, and nothing else of this database, another database or the catalog's secrets.
    for table in READ_TABLES:
        assert not refused(url, f"SELECT count(*) FROM {table}")
    for table in ("employee_erasures", "employees", "alembic_version", "trace_reads"):
        assert refused(url, f"SELECT count(*) FROM {table}"), table
    assert refused(url, "SELECT rolpassword FROM pg_authid")
    assert refused(url, "SELECT count(*) FROM pg_statistic")
    other = sa.engine.make_url(other_database).set(username=role, password="another-password")
    assert refused(other.render_as_string(hide_password=False), "SELECT * FROM salaries")
    # Writes: none but the read log's rows, even in a read-write transaction.
    assert refused(url, "INSERT INTO prediction_traces (request_id) VALUES ('forged')", read_write=True)
    assert refused(url, "DELETE FROM trace_reads", read_write=True)
    assert refused(url, "UPDATE employee_erasures SET erased_by = 'x'", read_write=True)
    assert refused(url, "CREATE TABLE mine (x int)", read_write=True)
    # It cannot record a read under another name: the reader column is the database's.
    assert refused(url, "INSERT INTO trace_reads (read_id, read_at, route, parameters, rows, reader) "
                        "VALUES ('r-0', now(), 'x', '{}', 0, 'someone_else')", read_write=True)
    logger = read_log_engine(url)
    try:
        record_read(logger, reader_id(url), "dashboard:audit", {"request_id": "r-1"}, 1, employee_id=7)
    finally:
        logger.dispose()
    with owner.connect() as connection:
        assert connection.execute(sa.select(trace_reads.c.key_id, trace_reads.c.employee_id,
                                            trace_reads.c.reader)).all() == [(f"dashboard:{role}", 7, role)]
    owner.dispose()


@pytest.mark.postgres
def test_the_dashboard_runs_every_page_and_records_its_reads_as_the_role(
        postgres_url: str, role: str, tmp_path: Path, read_from: Callable[[str], None]) -> None:
    seed_database(postgres_url, tmp_path)
    url = create_read_only_role(postgres_url, role, "dashboard-password")
    read_from(url)
    for page in PAGES:
        app = AppTest.from_file(str(APP), default_timeout=60)
        app.query_params["request_id"] = AUDITED_REQUEST
        app.run()
        if page != PAGES[0]:
            app.switch_page(page).run()
        assert not app.exception, (page, [e.value for e in app.exception])
        # A page shows its findings in error boxes too (drift): none may be a refusal of the database.
        refusals = [e.value for e in app.error if "permission" in e.value or "not be recorded" in e.value
                    or "rror" in e.value]
        assert not refusals, (page, refusals)
    app.switch_page("views/predictions.py").run()
    app.button(key="reproduce").click().run()
    assert app.success and not app.exception
    owner = sa.create_engine(postgres_url)
    try:
        with owner.connect() as connection:
            readers = set(connection.execute(sa.select(trace_reads.c.route, trace_reads.c.reader)).all())
    finally:
        owner.dispose()
    assert ("dashboard:audit", role) in readers and ("dashboard:predictions", role) in readers


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
