"""Crashes and replicas against real ``bentoml serve`` processes and a throw-away PostgreSQL cluster.

Two instances on different ports share one cluster and one state
directory, each with its own database (``traces`` and ``staging``, as
production and staging on one host): ``main`` with two workers, ``staging``
with one, both with the default journal cap. In turn: both under load
through an outage; one worker of ``main`` killed with SIGKILL in the middle
of an outage (its journal holds answered traces); the journal of a third
instance, ``capped``, whose cap is low enough to reach in seconds, filling
up; SIGTERM to ``main`` under load. Every scenario
prints its figures and asserts that no 200 lost its trace and no request id
was stored twice; ``python3 -m benchmarks.faults`` runs the long versions.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import need
from tests.pgcluster import PostgresCluster, cluster_available
from tests.service.stalls import (ROWS, TRACE_DATABASE, Crash, Overflow, connect, fill_journal, journals_of,
                                  kill_worker_during_outage, replicas_outage, run_fault, run_loaded, serve_on,
                                  terminate_server, together)

pytestmark = [pytest.mark.serve, pytest.mark.pgcluster]

DEADLINE_MS = 1000
OUTAGE_S = 1.2
STAGING = "staging"
CAPPED = "capped"
# Per worker, for the full-journal test alone: reached in a few seconds of outage under load.
JOURNAL_MAX_BYTES = 600_000
MARGIN_S = 0.5


def wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """One throw-away cluster for the module, its work directory and the state dir the instances share."""
    available, why = cluster_available()
    need("pgcluster", available, why)
    workdir = tmp_path_factory.mktemp("crashes")
    state_dir = workdir / "state"  # shared, as the default ~/.local/share/futurisys of one user is
    with PostgresCluster() as started:
        with connect(started) as admin:
            for database in (TRACE_DATABASE, STAGING, CAPPED):
                admin.execute(f"CREATE DATABASE {database}")
        yield started, workdir, state_dir


@pytest.fixture(scope="module")
def instances(cluster):
    """``main`` (two workers, database traces) and ``staging`` (one worker), one state dir, the default journal cap."""
    postgres, workdir, state_dir = cluster
    with together(
            serve_on(postgres, workdir, DEADLINE_MS, state_dir=state_dir, name="main",
                     extra_env={"FUTURISYS_WORKERS": "2"}),
            serve_on(postgres, workdir, DEADLINE_MS, database=STAGING, state_dir=state_dir, name=STAGING)) as served:
        yield served


@pytest.fixture
def capped(cluster, instances):
    """A third instance whose journal cap an outage reaches in seconds, beside the two others, on the same state dir."""
    postgres, workdir, state_dir = cluster
    with serve_on(postgres, workdir, DEADLINE_MS, database=CAPPED, state_dir=state_dir, name=CAPPED,
                  extra_env={"FUTURISYS_JOURNAL_MAX_BYTES": str(JOURNAL_MAX_BYTES)}) as served:
        yield served


def test_replicas_sharing_a_state_dir_trace_each_answer_once_in_their_own_database_through_an_outage(instances):
    results, crossed = replicas_outage(instances, OUTAGE_S, before_s=MARGIN_S, after_s=MARGIN_S)
    for result in results:
        print(f"\n{result.line()}")
    print(f"answered ids stored in the other instance's database: {crossed}")
    journals = sorted(p.name for p in (instances[0].state_dir / "journal").iterdir() if p.is_dir())
    ports = [service.url.rsplit(":", 1)[1] for service in instances]
    assert len(journals) == 2 and all(any(name.endswith(f"-{port}") for name in journals) for port in ports)
    assert all(result.ok == result.answers > 0 for result in results)  # the outage cost no answer
    assert all(result.lost == 0 and result.duplicated == 0 for result in results)
    assert crossed == 0


def test_a_worker_killed_mid_outage_loses_no_answered_trace_and_a_survivor_replays_its_journal(instances):
    main = instances[0]
    crash: list[Crash] = []
    result, _ = run_fault(main, "worker killed (SIGKILL) mid-outage",
                          lambda: kill_worker_during_outage(main, OUTAGE_S, crash), before_s=MARGIN_S,
                          after_s=MARGIN_S)
    [killed] = crash
    print(f"\n{result.line()}\n  worker {killed.victim} killed holding {len(killed.journals)} journal(s); "
          f"a new worker process {killed.respawned_after_s} s later")
    assert killed.journals, "the killed worker had journaled nothing: the scenario proves nothing"
    assert result.lost == 0 and result.duplicated == 0
    assert not any(path.exists() for path in killed.journals)  # replayed by another process, then deleted
    assert journals_of(main, killed.victim) == []
    assert killed.respawned_after_s is not None
    assert result.ok > 0  # the survivor answered all along
    with httpx.Client(base_url=main.url, timeout=10) as http:
        assert http.post("/predict", json={"employee": ROWS[0]}).status_code == 200


def test_a_full_journal_refuses_with_503_turns_unready_shows_in_metrics_and_recovers(capped):
    seen = Overflow()
    result, answers = run_loaded(capped, "journal full (cap)", lambda load: fill_journal(capped, load, seen),
                                 before_s=MARGIN_S, after_s=MARGIN_S)
    print(f"\n{result.line()}\n  {seen}")
    assert seen.first_refusal is not None, "the journal never filled up"
    assert set(seen.first_refusal) == {"error", "detail"} and seen.first_refusal["detail"][0]["field"] == "trace"
    assert seen.unready_seen and seen.refusals_metric > 0 and seen.journal_bytes_metric > 0
    assert seen.ready_again_after_s is not None
    assert {a.status for a in answers} <= {200, 503}
    assert result.lost == 0 and result.duplicated == 0
    assert result.unanswered_traces == 0  # a refused request left no trace: its append was refused whole


def test_sigterm_under_load_answers_or_refuses_cleanly_and_every_answer_is_traced(instances):
    main = instances[0]
    wait_until(lambda: main.workers_started() >= 3, 60)  # the worker that replaced the killed one serves
    signalled: list[float] = []
    exited: list[float] = []

    def terminate() -> None:
        signalled.append(time.monotonic())
        exited.append(terminate_server(main))

    result, answers = run_fault(main, "SIGTERM under load", terminate, before_s=MARGIN_S, after_s=0.2)
    failures: dict[str, int] = {}
    for answer in answers:
        if answer.status == 0:
            failures[answer.failure or "?"] = failures.get(answer.failure or "?", 0) + 1
    in_flight = [a for a in answers if a.started < signalled[0]]
    print(f"\n{result.line()}\n  server exited {exited[0]:.1f} s after SIGTERM; without an answer: {failures}")
    # Accepted before the signal: answered. Sent after it: answered, or refused (connection refused, or a
    # keep-alive connection closed before the worker read the request: nothing of it is stored).
    assert {a.status for a in in_flight} == {200}
    assert {a.status for a in answers} <= {0, 200, 503}
    assert result.lost == 0 and result.duplicated == 0 and result.unanswered_traces == 0
    assert exited[0] < 30  # it exited (bounded shutdown), not killed at the timeout
