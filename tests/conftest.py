"""Shared fixtures: where the real parts are, and whether a missing one may be skipped.

A test that needs a part some machines lack carries a marker (``postgres``,
``extracts``, ``serve``, ...). Where the part is missing it is skipped,
unless the part is named in ``FUTURISYS_REQUIRE`` (comma-separated), as
``.ci/run`` and the GitHub workflow set it: there a missing part fails.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Isolate the whole test session from the user's BentoML store and state: set before
# bentoml or settings are imported, since both read the environment once.
for _variable, _prefix in (("BENTOML_HOME", "futurisys-test-bentoml-"),
                           ("FUTURISYS_STATE_DIR", "futurisys-test-state-")):
    os.environ[_variable] = tempfile.mkdtemp(prefix=_prefix)
    atexit.register(shutil.rmtree, os.environ[_variable], True)
os.environ.pop("DATABASE_URL", None)
os.environ.pop("FUTURISYS_DEFAULT_MODEL", None)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The trusted manifest in force is a session copy of the committed one: a test that trains or promotes (and the
# servers it starts) pins into the copy, never into registry/trusted_artifacts.json.
_manifest_dir = tempfile.mkdtemp(prefix="futurisys-test-manifest-")
atexit.register(shutil.rmtree, _manifest_dir, True)
os.environ["FUTURISYS_TRUSTED_MANIFEST"] = shutil.copy(PROJECT_ROOT / "registry" / "trusted_artifacts.json",
                                                       _manifest_dir)
EXTRACTS_DIR = Path(os.environ.get("FUTURISYS_EXTRACTS_DIR", PROJECT_ROOT.parent / "shared" / "data" / "hr-attrition"))
REQUIRED_PARTS = frozenset(p.strip() for p in os.environ.get("FUTURISYS_REQUIRE", "").split(",") if p.strip())


def need(part: str, available: bool, why: str) -> None:
    """Skip the current test when ``part`` is missing, or fail if ``part`` is required here."""
    if available:
        return
    if part in REQUIRED_PARTS:
        pytest.fail(f"required part {part!r} is missing: {why}", pytrace=False)
    pytest.skip(f"{part} not available: {why}")


@pytest.fixture(scope="session")
def extracts_dir() -> Path:
    """The directory of the real HR extracts (personal data: read, never copied)."""
    need("extracts", (EXTRACTS_DIR / "extrait_sirh.csv").is_file(), f"no extracts in {EXTRACTS_DIR}")
    return EXTRACTS_DIR


POSTGRES_ADMIN_URL = os.environ.get("FUTURISYS_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _postgres_reachable() -> tuple[bool, str]:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(sa.text("select 1"))
        engine.dispose()
        return True, ""
    except Exception as exc:  # any failure means: no server to test against
        return False, f"{POSTGRES_ADMIN_URL}: {exc.__class__.__name__}"


def _fresh_postgres_database():
    """A context-managed fresh PostgreSQL database URL, dropped on exit."""
    import uuid

    import sqlalchemy as sa

    ok, why = _postgres_reachable()
    need("postgres", ok, why)
    name = f"futurisys_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> str:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    yield from _fresh_postgres_database()


@pytest.fixture(scope="module")
def postgres_url_module() -> str:
    """A fresh, empty PostgreSQL database shared by one test module."""
    yield from _fresh_postgres_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh embedded SQLite database file for one test."""
    return f"sqlite:///{tmp_path / 'traces.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def synthetic_extracts(tmp_path: Path) -> Path:
    """A folder holding three well-formed extracts of 12 synthetic employees (never rows of the real ones)."""
    from tests.attrition.synthetic_extracts import synthetic_extract_frames, write_extracts

    return write_extracts(tmp_path / "extracts", synthetic_extract_frames())
