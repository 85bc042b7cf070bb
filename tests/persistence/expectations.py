"""What the persistence tests check in the database: every trace stored once, exactly as recorded."""
from __future__ import annotations

import asyncio
from collections.abc import Callable

import sqlalchemy as sa
from prometheus_client import REGISTRY
from sqlalchemy.engine import Engine

from persistence.database.schema import prediction_traces
from persistence.database.traces import Trace

# How long a test waits for an event before it fails: far beyond what it takes on a machine three times slower.
PATIENCE_S = 120.0


def stored_rows(engine: Engine, table: sa.Table = prediction_traces) -> dict[str, dict]:
    """Rows of ``table`` by request id."""
    with engine.connect() as connection:
        rows = connection.execute(sa.select(table)).mappings().all()
    return {row["request_id"]: dict(row) for row in rows}


def assert_stored_exactly(engine: Engine, traces: list[Trace]) -> None:
    """Each trace has one row, equal to what was recorded, and nothing else is stored."""
    rows = stored_rows(engine)
    assert len(rows) == len(traces)
    for trace in traces:
        assert rows[trace.request_id] == trace.row()


def sample(name: str) -> float:
    """The current value of one metric sample of this process (0 when never set)."""
    return REGISTRY.get_sample_value(name) or 0.0


async def eventually(condition: Callable[[], bool], what: str, timeout_s: float = PATIENCE_S) -> None:
    """Wait, without blocking the event loop, until ``condition`` holds; fail naming ``what`` after ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.05)
