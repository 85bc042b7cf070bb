"""A trace survives its JSON form unchanged, and refuses values the database would misread."""
from __future__ import annotations

import json
from datetime import datetime

import pytest

from persistence.traces import REQUEST_COLUMNS, RESULT_COLUMNS, Trace
from tests.persistence.factories import make_trace


def test_trace_round_trips_through_json() -> None:
    trace = make_trace(5, error="boom", status="error", prediction=None, probability=None)
    assert Trace.from_dict(json.loads(json.dumps(trace.to_dict()))) == trace


def test_rows_split_every_field_between_the_two_tables() -> None:
    trace = make_trace(1)
    request, result = trace.request_row(), trace.result_row()
    assert set(request) | set(result) == set(trace.to_dict())
    assert set(request) & set(result) == {"request_id"}
    assert tuple(request) == REQUEST_COLUMNS and tuple(result) == RESULT_COLUMNS


@pytest.mark.parametrize("override, message", [
    ({"received_at": datetime(2026, 1, 1)}, "timezone-aware"),
    ({"status": "maybe"}, "status"),
    ({"endpoint": "explain"}, "endpoint"),
    ({"prediction": 2}, "prediction"),
])
def test_trace_refuses_values_the_database_would_misread(override: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_trace(1, **override)
