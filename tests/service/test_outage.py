"""The durability rule end to end: a real service, its own PostgreSQL stopped mid-run, then restarted.

Every 200 answer must end up with exactly one trace in the database (committed
at once, or journaled during the outage and replayed once it is back), and
answers must keep coming while the database is down.
"""
from __future__ import annotations

import re
import threading
import time

import httpx
import pytest
import sqlalchemy as sa

from attrition.synthetic import synthetic_employees
from tests.conftest import need
from tests.pgcluster import PostgresCluster, cluster_available
from tests.service.server import bentoml_serve

pytestmark = [pytest.mark.serve, pytest.mark.pgcluster]

CLIENTS = 8


def _metric(metrics: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", metrics, re.M))


def test_every_200_answer_has_exactly_one_trace_across_a_database_outage(tmp_path):
    available, why = cluster_available()
    need("pgcluster", available, why)
    rows = synthetic_employees(64, seed=21)
    with PostgresCluster() as cluster:
        env = {"BENTOML_HOME": str(tmp_path / "bentoml"), "FUTURISYS_STATE_DIR": str(tmp_path / "state"),
               "DATABASE_URL": cluster.url, "FUTURISYS_REPLAY_INTERVAL_S": "0.5"}
        with bentoml_serve(env, tmp_path / "serve.log") as url:
            answers: list[tuple[float, str]] = []  # (answered at, request id) of every 200
            failures: list[int] = []
            phase = {"stop": False}

            def client(index: int) -> None:
                with httpx.Client(base_url=url, timeout=30) as http:
                    n = index
                    while not phase["stop"]:
                        response = http.post("/predict", json={"employee": rows[n % len(rows)]})
                        if response.status_code == 200:
                            answers.append((time.monotonic(), response.json()["request_id"]))
                        else:
                            failures.append(response.status_code)
                        n += CLIENTS

            threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
            for thread in threads:
                thread.start()
            try:
                time.sleep(2)
                cluster.stop()
                down_at = time.monotonic()
                time.sleep(3)
                up_at = time.monotonic()
                cluster.start()
                time.sleep(2)
            finally:
                phase["stop"] = True
                for thread in threads:
                    thread.join(timeout=60)

            during_outage = sum(1 for at, _ in answers if down_at + 0.5 < at < up_at)
            engine = sa.create_engine(cluster.url)
            deadline = time.monotonic() + 60
            while True:
                with engine.connect() as connection:
                    stored = connection.execute(sa.text(
                        "select request_id, count(*) from prediction_traces group by request_id")).all()
                if len(stored) >= len(answers) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            engine.dispose()
            metrics = httpx.get(f"{url}/metrics", timeout=10).text

    traces = dict(stored)
    journaled = _metric(metrics, "futurisys_trace_journaled_total")
    replayed = _metric(metrics, "futurisys_trace_replayed_total")
    print(f"\noutage test: answers={len(answers)} during_outage={during_outage} traces={len(traces)} "
          f"journaled={journaled:.0f} replayed={replayed:.0f} non_200={len(failures)}")
    assert failures == [], f"non-200 answers during the run: {failures[:10]}"
    assert during_outage > 0, "no answer while the database was down"
    assert journaled > 0 and replayed > 0
    ids = [request_id for _, request_id in answers]
    assert len(set(ids)) == len(ids)
    missing = [i for i in ids if i not in traces]
    assert missing == [], f"{len(missing)} answered requests have no trace"
    assert all(count == 1 for count in traces.values())
    assert len(traces) == len(answers)
