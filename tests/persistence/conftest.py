"""Fixtures of the persistence tests: migrated databases and a throw-away PostgreSQL cluster."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from persistence.database.engine import make_engine
from persistence.database.migrate import upgrade
from tests.conftest import need
from tests.pgcluster import PostgresCluster, cluster_available


@pytest.fixture
def migrated_url(database_url: str, tmp_path: Path) -> str:
    """A fresh database (SQLite and PostgreSQL, in turn) at the latest schema."""
    upgrade(database_url, lock_dir=tmp_path)
    return database_url


@pytest.fixture
def migrated_engine(migrated_url: str) -> Iterator:
    """An engine on :func:`migrated_url`."""
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(sqlite_url: str, tmp_path: Path) -> Iterator:
    """An engine on a fresh SQLite database at the latest schema."""
    upgrade(sqlite_url, lock_dir=tmp_path)
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture
def journal_dir(tmp_path: Path) -> Path:
    """An empty journal directory."""
    return tmp_path / "journal"


@pytest.fixture
def pg_cluster() -> Iterator[PostgresCluster]:
    """A running throw-away PostgreSQL cluster the test may stop and restart."""
    available, why = cluster_available()
    need("pgcluster", available, why)
    with PostgresCluster() as cluster:
        yield cluster
