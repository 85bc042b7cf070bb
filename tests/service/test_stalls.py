"""A slow, refusing or absent database, and a dying writer task, against a real ``bentoml serve``.

One service on its own throw-away PostgreSQL cluster, started while that
database is down; then, in turn: the database comes back, the trace table is
locked under load, the database turns read-only, the writer's task is
killed. Every scenario prints its figures (answers, 200s, traces found,
lost, p95 during the fault); each asserts that no 200 lost its trace, and
the lock scenario the targets of the Stalls issue (scaled: a shorter lock
and deadline; ``python3 -m tests.service.stalls`` runs the full 12 s).
"""
from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import need
from tests.pgcluster import cluster_available
from tests.service.stalls import (ROWS, StalledService, freeze_database, kill_writer_task, lock_table, metric,
                                  read_only_database, run_fault, stalled_service)

pytestmark = [pytest.mark.serve, pytest.mark.pgcluster]

DEADLINE_MS = 1000
LOCK_S = 3.0
FAULT_S = 2.0  # the other faults
MARGIN_S = 0.5  # load before and after each fault


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    """The service, started while its database is down."""
    available, why = cluster_available()
    need("pgcluster", available, why)
    with stalled_service(tmp_path_factory.mktemp("stalls"), DEADLINE_MS, database_down=True) as served:
        yield served


def health(service: StalledService) -> dict:
    """The service's health detail."""
    return httpx.get(f"{service.url}/health", timeout=10).json()


def database_up(service: StalledService) -> None:
    """Start the cluster if a previous scenario (or the fixture) left it down."""
    if not service.cluster.is_running():
        service.cluster.start()


def test_a_worker_started_during_an_outage_serves_journals_then_migrates_and_replays(service):
    seen: dict = {}

    def outage_then_back() -> None:
        time.sleep(FAULT_S)
        seen["health"] = health(service)
        service.cluster.start()

    result, _ = run_fault(service, "start during an outage", outage_then_back, before_s=0.0, after_s=MARGIN_S)
    print(f"\nready {service.ready_after_s:.1f} s after start, database down; {result.line()}")
    assert seen["health"]["writer"]["state"] == "journaling"
    assert seen["health"]["writer"]["database_reachable"] is False
    assert seen["health"]["ready"] is True
    assert result.ok > 0 and result.lost == 0 and result.duplicated == 0
    assert health(service)["writer"]["journal_backlog"] == 0


STALLS = [("table locked", lock_table, LOCK_S), ("database frozen", freeze_database, FAULT_S)]


@pytest.mark.parametrize("fault, stall, seconds", STALLS, ids=["locked table", "frozen database"])
def test_a_database_that_stalls_under_load_is_journaled_around_within_the_deadline(service, fault, stall, seconds):
    database_up(service)
    seen: dict = {}
    result, _ = run_fault(service, f"{fault} {seconds:.0f} s",
                          lambda: stall(service, seconds, lambda: seen.update(health=health(service))),
                          before_s=MARGIN_S, after_s=MARGIN_S)
    print(f"\n{result.line()}")
    assert seen["health"]["writer"]["state"] == "journaling"
    assert result.lost == 0 and result.duplicated == 0
    # The targets, for a stall longer than the deadline.
    assert result.ok >= 0.9 * result.answers
    assert result.p95_ms < DEADLINE_MS + 1500


def test_a_read_only_database_is_journaled_around_and_nothing_is_quarantined(service):
    database_up(service)
    seen: dict = {}
    result, _ = run_fault(service, "read-only database",
                          lambda: read_only_database(service, FAULT_S, lambda: seen.update(health=health(service))),
                          before_s=MARGIN_S, after_s=MARGIN_S)
    print(f"\n{result.line()}")
    assert seen["health"]["writer"]["state"] == "journaling"
    assert result.ok == result.answers, f"refused answers: {result.statuses}"
    assert result.lost == 0 and result.duplicated == 0
    after = health(service)["writer"]
    assert after["quarantined"] == 0 and after["journal_backlog"] == 0 and after["state"] == "committing"


def test_a_killed_writer_task_is_restarted_counted_and_the_worker_stays_ready(service):
    database_up(service)
    restarts_before = metric(service.url, "futurisys_trace_writer_restarts_total")
    signalled: list[int] = []

    def kill_then_watch() -> None:
        signalled.append(kill_writer_task(service))
        time.sleep(FAULT_S)  # the requests right after the kill count as during the fault

    result, _ = run_fault(service, "writer task killed", kill_then_watch, before_s=MARGIN_S, after_s=MARGIN_S)
    print(f"\n{result.line()}")
    assert signalled == [1]
    assert metric(service.url, "futurisys_trace_writer_restarts_total") - restarts_before == 1
    assert health(service)["writer"]["restarts"] == 1
    assert httpx.get(f"{service.url}/readyz", timeout=10).status_code == 200
    assert result.ok == result.answers and result.lost == 0 and result.duplicated == 0


def test_the_health_detail_route_is_documented(service):
    spec = httpx.get(f"{service.url}/docs.json", timeout=10).json()
    assert "/health" in spec["paths"], sorted(spec["paths"])


def test_a_trace_that_can_be_stored_nowhere_answers_503_with_a_json_error_never_200(service):
    database_up(service)
    journal = service.state_dir / "journal"
    assert health(service)["writer"]["journal_backlog"] == 0  # no journal file open: the next one is created
    aside = service.state_dir / "journal-aside"
    journal.rename(aside)
    journal.write_text("a file where the journal directory should be: the journal cannot be written")
    try:
        service.cluster.stop()
        with httpx.Client(base_url=service.url, timeout=30) as http:
            answers = [http.post("/predict", json={"employee": ROWS[n]}) for n in range(5)]
    finally:
        journal.unlink()
        aside.rename(journal)
        service.cluster.start()
    statuses = [answer.status_code for answer in answers]
    print(f"\nstored nowhere: statuses {statuses}")
    assert statuses == [503] * 5
    body = answers[0].json()
    assert set(body) == {"error", "detail"} and body["detail"][0]["field"] == "trace"
    with httpx.Client(base_url=service.url, timeout=30) as http:  # the journal back: answers again
        assert http.post("/predict", json={"employee": ROWS[0]}).status_code == 200
