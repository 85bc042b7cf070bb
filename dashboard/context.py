"""What every page shares: the read-only database connection, the time window and display zone, cached queries,
the read log, the empty state, the champion."""
from __future__ import annotations

import sqlite3
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import sqlalchemy as sa
import streamlit as st
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from dashboard import queries
from dashboard.queries import Window
from dashboard.time_axis import TimeAxis, time_axis
from persistence.database.engine import make_engine, normalize_url
from persistence.personal_data.reads import record_read
from registry.aliases import CHAMPION, read_aliases
from settings import settings

WINDOWS = {"Last hour": timedelta(hours=1), "Last 24 hours": timedelta(hours=24), "Last 7 days": timedelta(days=7),
           "All": None, "Custom range": None}
DEFAULT_WINDOW = "Last 24 hours"
WINDOW_KEY = "window"
CUSTOM_RANGE_KEY = "window_range"
ZONE_KEY = "display_zone"
ZONES = ("UTC", "Europe/Paris", "Europe/London", "America/New_York", "Asia/Tokyo")
"""Display zones offered in the sidebar: every time on every page is shown in the chosen one, named."""

COUNTING_NOTE = ("A **request** is an HTTP call (a batch counts once); a **row** is a trace (one per predicted "
                 "employee). An **error** is a trace with status `error` and no prediction; a **fallback** a row "
                 "served by the default model after its model failed.")

GET_DATA = """No prediction has been traced in this database yet. To get data:

```bash
bentoml serve                                  # the service, on 127.0.0.1:3000
python3 -m dashboard.demo_traffic --requests 600 --shift   # realistic traffic, some inputs shifted
```

then reload this page."""


def database_url() -> str:
    """The database the dashboard reads: ``FUTURISYS_DASHBOARD_DATABASE_URL``, else the service's."""
    return settings.dashboard_database_url or settings.resolved_database_url


def _sqlite_read_only(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA query_only = ON")
        cursor.execute("PRAGMA busy_timeout = 5000")
    finally:
        cursor.close()


def read_only_engine(url: str) -> Engine:
    """An engine that cannot write: read-only transactions on PostgreSQL, ``query_only`` and ``mode=ro`` on SQLite.

    A SQLite file that does not exist is not created (connecting fails instead).
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "").expanduser()
        readonly = make_url(f"sqlite:///file:{path}?mode=ro&uri=true")
        engine = sa.create_engine(readonly)
        event.listen(engine, "connect", _sqlite_read_only)
        return engine
    return sa.create_engine(parsed, pool_pre_ping=True, pool_size=2, max_overflow=2,
                            connect_args={"connect_timeout": 5, "options": "-c default_transaction_read_only=on"})


@st.cache_resource(show_spinner=False)
def engine_for(url: str) -> Engine:
    """The process-wide read-only engine of ``url``."""
    return read_only_engine(url)


def engine() -> Engine:
    """The read-only engine of the dashboard's database."""
    return engine_for(database_url())


def read_log_engine(url: str) -> Engine:
    """The one writable connection of the dashboard: for its rows of the read log (``trace_reads``), nothing else.

    On PostgreSQL it connects as the dashboard's role, whose only write
    privilege is INSERT on ``trace_reads`` (``dashboard.readonly_role``), in
    read-write transactions; on SQLite it opens the file as the service does.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return make_engine(parsed)
    return sa.create_engine(parsed, pool_pre_ping=True, pool_size=1, max_overflow=1,
                            connect_args={"connect_timeout": 5, "options": "-c default_transaction_read_only=off"})


@st.cache_resource(show_spinner=False)
def _read_log_engine_for(url: str) -> Engine:
    return read_log_engine(url)


def reader_id(url: str) -> str:
    """Who reads, as the read log records it: ``dashboard:<database role>`` (``dashboard:local`` on SQLite)."""
    return f"dashboard:{normalize_url(url).username or 'local'}"[:64]


def log_read(route: str, parameters: dict[str, Any], rows: int, employee_id: int | None = None) -> bool:
    """Record a read of traces by the dashboard in the read log, once per session and read; False if it failed.

    A view that cannot be recorded is not shown: who looked at an employee's
    data must always have an answer.
    """
    url = database_url()
    done: set[str] = st.session_state.setdefault("logged_reads", set())
    key = f"{route} {sorted(parameters.items())!r}"
    if key in done:
        return True
    try:
        record_read(_read_log_engine_for(url), reader_id(url), route, parameters, rows, employee_id=employee_id)
    except sa.exc.SQLAlchemyError as exc:
        st.error(f"This read could not be recorded in the read log ({exc.__class__.__name__}), so it is not shown. "
                 "The dashboard's role needs INSERT on trace_reads: run `python3 -m dashboard.readonly_role` again.")
        return False
    done.add(key)
    return True


@st.cache_data(ttl=settings.dashboard_cache_ttl_s, show_spinner=False)
def _cached(query: str, url: str, start: datetime | None, end: datetime | None, arguments: tuple) -> Any:
    function: Callable[..., Any] = getattr(queries, query)
    return function(engine_for(url), Window(start, end), *arguments)


def cached_query(query: str, window: Window, *arguments: Any) -> Any:
    """Run ``queries.<query>(engine, window, *arguments)``, cached for ``dashboard_cache_ttl_s``."""
    return _cached(query, database_url(), window.start, window.end, tuple(arguments))


@st.cache_data(ttl=settings.dashboard_cache_ttl_s, show_spinner=False)
def _database_state(url: str) -> tuple[bool, str, datetime | None]:
    try:
        reader = engine_for(url)
        if not queries.trace_table_exists(reader):
            return False, "the database has no trace table yet (the service creates it at its first start)", None
        return True, "", queries.any_trace_received_at(reader)
    except sa.exc.OperationalError as exc:
        return False, f"cannot open the database: {exc.orig.__class__.__name__}: {exc.orig}", None


def sidebar_window() -> None:
    """The time window widgets of the sidebar, shared by every page (kept in the session state)."""
    st.sidebar.selectbox("Time window", list(WINDOWS), index=list(WINDOWS).index(DEFAULT_WINDOW), key=WINDOW_KEY)
    if st.session_state.get(WINDOW_KEY) == "Custom range":
        today = datetime.now(timezone.utc).date()
        st.sidebar.date_input("From / to (UTC, inclusive)", value=(today - timedelta(days=7), today),
                              key=CUSTOM_RANGE_KEY)
    st.sidebar.selectbox("Time zone", ZONES, key=ZONE_KEY, help="Every time shown, on axes, tooltips and tables.")
    backend = queries.backend(engine())
    st.sidebar.caption(f"Database: {backend} (read-only), queries cached {settings.dashboard_cache_ttl_s:g} s.")


def current_window() -> Window:
    """The window chosen in the sidebar; relative windows start on a whole minute, so the cache can serve them."""
    choice = st.session_state.get(WINDOW_KEY, DEFAULT_WINDOW)
    if choice == "Custom range":
        chosen = st.session_state.get(CUSTOM_RANGE_KEY) or ()
        if len(chosen) == 2 and all(isinstance(d, date) for d in chosen):
            start = datetime.combine(chosen[0], time.min, tzinfo=timezone.utc)
            end = datetime.combine(chosen[1] + timedelta(days=1), time.min, tzinfo=timezone.utc)
            return Window(start, end)
        return Window()
    span = WINDOWS.get(choice)
    if span is None:
        return Window()
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=1)
    return Window(now - span, None)


def window_label() -> str:
    """The window in words, for captions."""
    return str(st.session_state.get(WINDOW_KEY, DEFAULT_WINDOW)).lower()


def require_traces(window: Window) -> dict[str, Any]:
    """The window's totals; shows the empty state and stops the page when there is nothing to show."""
    ready, why, newest = _database_state(database_url())
    if not ready:
        st.info(f"Nothing to show yet: {why}.\n\n{GET_DATA}")
        st.stop()
    if newest is None:
        st.info(GET_DATA)
        st.stop()
    totals = cached_query("trace_totals", window)
    if totals["rows"] == 0:
        st.info(f"No trace in the {window_label()}: the newest trace was received at "
                f"{newest:%Y-%m-%d %H:%M:%S} UTC. Choose a wider time window in the sidebar.")
        st.stop()
    return totals


RECORD_OUTCOMES = """No outcome is recorded for the predictions of this window. Outcomes (who really left) come from:

```bash
python3 -m persistence import-dataset DIR          # the extracts' target: in-sample for the models fitted on it
python3 -m persistence record-outcomes FILE.csv    # id_employee,a_quitte_l_entreprise[,known_at]
curl -s localhost:3000/outcomes -H 'content-type: application/json' \\
  -d '{"outcomes": [{"employee_id": 12, "left": true, "known_at": "2026-11-30"}]}'
python3 -m dashboard.demo_traffic --requests 600 --outcomes 0.6   # demo traffic, with outcomes by a stated rule
```"""


@st.cache_data(ttl=settings.dashboard_cache_ttl_s, show_spinner=False)
def _outcomes_ready(url: str) -> bool:
    return queries.outcomes_table_exists(engine_for(url))


def require_outcomes_table() -> None:
    """Stops the page, saying why, when the database has no outcomes table yet (a service older than 0006)."""
    if not _outcomes_ready(database_url()):
        st.info("This database has no outcomes table yet: the service creates it when it migrates (revision 0006, "
                "`python3 -m persistence migrate`).")
        st.stop()


def display_zone() -> str:
    """The zone times are shown in (the sidebar's choice, UTC by default)."""
    return str(st.session_state.get(ZONE_KEY, ZONES[0]))


def chart_axis(window: Window, totals: dict[str, Any]) -> TimeAxis:
    """The span and bucket width of the page's charts over time: the window, or its traffic when that is brief."""
    now = datetime.now(timezone.utc)
    end = window.end or (now if window.start is not None else None)
    return time_axis(window.start, end, totals["first"], totals["last"])


def champion() -> str | None:
    """``name:version`` of the champion model (``models/aliases.json``), if one is named."""
    return read_aliases(settings.models_dir).get(CHAMPION)


def percent(value: float | None) -> str:
    """A share as a percentage with one decimal."""
    return "–" if value is None or pd.isna(value) else f"{100 * value:.1f} %"
