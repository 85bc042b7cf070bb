"""Reading the trace back: one request in full, or an employee's requests over a period, page by page."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.engine import Engine

from persistence.database.queries import MAX_PAGE_SIZE, get_trace, list_traces
from persistence.trace.store import make_trace_store
from tests.persistence.factories import T0, make_trace

PARIS = timezone(timedelta(hours=1))


@pytest.fixture
def stored(migrated_engine: Engine) -> dict:
    """Twelve traces of employee 7 one hour apart, interleaved with traces of employee 8 and untagged ones."""
    traces = {
        "seven": [make_trace(i, employee_id=7, received_at=T0 + timedelta(hours=i)) for i in range(12)],
        "eight": [make_trace(100 + i, employee_id=8, received_at=T0 + timedelta(hours=i, minutes=30))
                  for i in range(3)],
        "untagged": [make_trace(200, employee_id=None, status="error", prediction=None, probability=None,
                                threshold=None, inference_ms=None, error="model failed its self-check")],
    }
    make_trace_store(migrated_engine).insert([t for group in traces.values() for t in group])
    return traces


def test_get_trace_returns_inputs_outputs_model_and_timings(migrated_engine: Engine, stored: dict) -> None:
    trace = stored["seven"][3]
    found = get_trace(migrated_engine, trace.request_id)
    assert found == {
        "request_id": trace.request_id,
        "endpoint": trace.endpoint,
        "received_at": trace.received_at.isoformat(),
        "created_at": trace.created_at.isoformat(),
        "requested_model": trace.requested_model,
        "employee_id": 7,
        "batch_index": trace.batch_index,
        "key_id": None,
        "inputs": trace.inputs,
        "outputs": {"prediction": trace.prediction, "probability": trace.probability,
                    "threshold": trace.threshold, "fallback": trace.fallback},
        "model": trace.model_name,
        "model_version": trace.model_version,
        "model_sha256": trace.model_sha256,
        "service_version": trace.service_version,
        "timings": {"inference_ms": trace.inference_ms, "total_ms": trace.total_ms},
        "status": "ok",
        "error": None,
    }


def test_get_trace_of_a_failed_request_shows_the_error(migrated_engine: Engine, stored: dict) -> None:
    found = get_trace(migrated_engine, stored["untagged"][0].request_id)
    assert found["status"] == "error" and found["error"] == "model failed its self-check"
    assert found["outputs"]["prediction"] is None


def test_unknown_request_id_gives_none(migrated_engine: Engine, stored: dict) -> None:
    assert get_trace(migrated_engine, "00000000-0000-0000-0000-000000000000") is None


def test_list_traces_of_one_employee_oldest_first(migrated_engine: Engine, stored: dict) -> None:
    page = list_traces(migrated_engine, employee_id=8)
    assert page["total"] == 3 and (page["limit"], page["offset"]) == (50, 0)
    assert [item["request_id"] for item in page["items"]] == [t.request_id for t in stored["eight"]]


def test_list_traces_over_a_period_in_any_timezone(migrated_engine: Engine, stored: dict) -> None:
    # Hours 2 (inclusive) to 5 (exclusive) of employee 7, the bounds given in UTC+1.
    start, end = (T0 + timedelta(hours=2)).astimezone(PARIS), (T0 + timedelta(hours=5)).astimezone(PARIS)
    page = list_traces(migrated_engine, employee_id=7, start=start, end=end)
    assert [item["request_id"] for item in page["items"]] == [t.request_id for t in stored["seven"][2:5]]
    # A naive bound is UTC; no employee filter takes employee 8's traces of the period as well.
    everyone = list_traces(migrated_engine, start=datetime(2026, 3, 1, 10), end=datetime(2026, 3, 1, 12))
    seven, eight = stored["seven"], stored["eight"]
    assert [item["request_id"] for item in everyone["items"]] == [
        t.request_id for t in (seven[1], eight[1], seven[2], eight[2])]


def test_list_traces_pages_through_every_match(migrated_engine: Engine, stored: dict) -> None:
    pages = [list_traces(migrated_engine, employee_id=7, limit=5, offset=offset) for offset in (0, 5, 10)]
    assert [len(p["items"]) for p in pages] == [5, 5, 2]
    assert all(p["total"] == 12 for p in pages)
    seen = [item["request_id"] for p in pages for item in p["items"]]
    assert seen == [t.request_id for t in stored["seven"]]
    assert list_traces(migrated_engine, employee_id=7, offset=50)["items"] == []


@pytest.mark.parametrize("arguments", [
    {"limit": 0}, {"limit": MAX_PAGE_SIZE + 1}, {"offset": -1},
    {"start": datetime(2026, 3, 2, tzinfo=timezone.utc), "end": datetime(2026, 3, 1, tzinfo=timezone.utc)},
])
def test_list_traces_refuses_impossible_pages(sqlite_engine: Engine, arguments: dict) -> None:
    with pytest.raises(ValueError):
        list_traces(sqlite_engine, **arguments)
