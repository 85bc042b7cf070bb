"""Fixtures of the dashboard tests: seeded and empty trace databases on both backends, the dashboard pointed at one."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest
import streamlit as st

from settings import settings
from tests.dashboard.seed import SeedCounts, empty_database, seed_database

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def seeded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, SeedCounts]:
    """A database of each backend holding the seeded traces (one per test module); its URL and counts."""
    folder = tmp_path_factory.mktemp("seeded")
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'traces.db'}"
    else:
        url = request.getfixturevalue("postgres_url_module")
    return url, seed_database(url, folder)


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    """Streamlit's caches outlive an AppTest run: every test starts without them."""
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database of each backend with the trace schema and no trace."""
    url = request.getfixturevalue(f"{request.param}_url")
    empty_database(url, tmp_path)
    return url


@pytest.fixture
def read_from(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Point the dashboard at a database URL for one test."""
    def point(url: str) -> None:
        monkeypatch.setattr(settings, "dashboard_database_url", url)
    return point
