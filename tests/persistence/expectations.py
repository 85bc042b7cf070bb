"""What the persistence tests check in the database: every trace stored once, exactly as recorded."""
from __future__ import annotations

import sqlalchemy as sa
from prometheus_client import REGISTRY
from sqlalchemy.engine import Engine

from persistence.schema import prediction_requests, prediction_results
from persistence.traces import Trace


def stored_rows(engine: Engine, table: sa.Table) -> dict[str, dict]:
    """Rows of ``table`` by request id, without the surrogate key."""
    with engine.connect() as connection:
        rows = connection.execute(sa.select(table)).mappings().all()
    return {row["request_id"]: {k: v for k, v in row.items() if k != "id"} for row in rows}


def assert_stored_exactly(engine: Engine, traces: list[Trace]) -> None:
    """Each trace has one request row and one result row, equal to what was recorded, and nothing else is stored."""
    requests = stored_rows(engine, prediction_requests)
    results = stored_rows(engine, prediction_results)
    assert len(requests) == len(results) == len(traces)
    for trace in traces:
        assert requests[trace.request_id] == trace.request_row()
        assert results[trace.request_id] == trace.result_row()


def sample(name: str) -> float:
    """The current value of one metric sample of this process (0 when never set)."""
    return REGISTRY.get_sample_value(name) or 0.0
