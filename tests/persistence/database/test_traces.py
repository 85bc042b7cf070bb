"""A trace survives its JSON form unchanged, and refuses values the database would misread."""
from __future__ import annotations

import json
from datetime import datetime

import pytest

from persistence.database.schema import prediction_traces
from persistence.database.traces import TRACE_COLUMNS, Trace
from tests.persistence.factories import make_trace


def test_trace_round_trips_through_json() -> None:
    trace = make_trace(5, error="boom", status="error", prediction=None, probability=None)
    assert Trace.from_dict(json.loads(json.dumps(trace.to_dict()))) == trace


def test_the_row_holds_every_field_in_the_table_order() -> None:
    trace = make_trace(1)
    row = trace.row()
    assert row == trace.to_dict() | {"received_at": trace.received_at, "created_at": trace.created_at}
    assert tuple(row) == TRACE_COLUMNS == tuple(column.name for column in prediction_traces.columns)


@pytest.mark.parametrize("override, message", [
    ({"received_at": datetime(2026, 1, 1)}, "timezone-aware"),
    ({"status": "maybe"}, "status"),
    ({"endpoint": "explain"}, "endpoint"),
    ({"prediction": 2}, "prediction"),
])
def test_trace_refuses_values_the_database_would_misread(override: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_trace(1, **override)
