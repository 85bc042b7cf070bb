"""Database faults against a real ``bentoml serve``: load, a fault, and the figures of what the clients got.

Used by ``tests/service/test_stalls.py`` (short versions) and as a command
for the long ones, e.g. the 12 s table lock of the Stalls issue with the
default commit deadline::

    python3 -m tests.service.stalls --lock-s 12

Each scenario reports: answers (requests started during the fault), 200s,
traces found, lost (a 200 whose request id has no trace) and the p95 latency
of the requests started during the fault.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import httpx
import psycopg

from attrition.synthetic import synthetic_employees
from tests.pgcluster import PostgresCluster
from tests.service.server import bentoml_serve

CLIENTS = 8
TRACE_DATABASE = "traces"
ROWS = synthetic_employees(64, seed=33)

# Loaded into every process of the served service (PYTHONPATH), never into the project: SIGUSR1 cancels the
# trace writer's task in a worker, as a crash would end it.
KILL_HOOK = '''
import gc
import signal


def _kill_trace_writer(signum, frame):
    gc.unfreeze()  # the worker froze its long-lived objects out of the collector's view
    try:
        for obj in gc.get_objects():
            if type(obj).__name__ == "TraceWriter" and getattr(obj, "_flusher", None) is not None:
                obj._loop.call_soon_threadsafe(obj._flusher.cancel)
    finally:
        gc.freeze()


signal.signal(signal.SIGUSR1, _kill_trace_writer)
'''


@dataclass
class Answer:
    """One request as its client saw it."""

    started: float
    seconds: float
    status: int  # 0: no HTTP answer (connection error, client timeout)
    request_id: str | None
    failure: str | None = None  # the client's error without an HTTP answer (ConnectError: refused cleanly)
    body: dict | None = None  # the JSON body of an answer other than 200


@dataclass
class Figures:
    """What one scenario gave."""

    scenario: str
    answers: int  # requests started during the fault
    ok: int  # ... answered 200
    traces_found: int  # 200s of the whole run whose trace is in the database
    lost: int  # 200s of the whole run without a trace
    p95_ms: float  # of the requests started during the fault
    max_ms: float = 0.0  # the slowest of them (those in flight when a commit first missed its deadline)
    statuses: dict[int, int] = field(default_factory=dict)
    duplicated: int = 0  # request ids stored more than once
    unanswered_traces: int = 0  # traces of the run without a 200 (cut off by the fault after being stored)
    server_errors: int = 0  # 5xx answers during the fault

    def line(self) -> str:
        """One printable line."""
        return (f"{self.scenario}: answers={self.answers} 200s={self.ok} traces_found={self.traces_found} "
                f"lost={self.lost} duplicated={self.duplicated} traces_without_200={self.unanswered_traces} "
                f"5xx={self.server_errors} p95_during_fault={self.p95_ms:.0f} ms "
                f"max_during_fault={self.max_ms:.0f} ms statuses={self.statuses}")


TABLE_COLUMNS = ("scenario", "answers", "200s", "traces found", "lost", "duplicated", "traces without a 200", "5xx",
                 "p95 during fault")


def table(results: list[Figures]) -> str:
    """The figures of several scenarios as one plain-text table."""
    rows = [TABLE_COLUMNS] + [(r.scenario, str(r.answers), str(r.ok), str(r.traces_found), str(r.lost),
                               str(r.duplicated), str(r.unanswered_traces), str(r.server_errors),
                               f"{r.p95_ms:.0f} ms") for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS))]
    lines = [" | ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                        for i, (cell, width) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


class Load:
    """``CLIENTS`` threads posting /predict in a loop until stopped; every answer recorded."""

    def __init__(self, url: str, clients: int = CLIENTS, timeout_s: float = 30.0,
                 pause_after_failure_s: float = 0.05) -> None:
        self.url = url
        self._pause_after_failure_s = pause_after_failure_s
        self.started_at = datetime.now(timezone.utc)  # set again when the load starts
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i, timeout_s), daemon=True)
                         for i in range(clients)]
        self._clients = clients

    def _client(self, index: int, timeout_s: float) -> None:
        with httpx.Client(base_url=self.url, timeout=timeout_s) as http:
            n = index
            while not self._stop.is_set():
                started = time.monotonic()
                failure, body = None, None
                try:
                    response = http.post("/predict", json={"employee": ROWS[n % len(ROWS)]})
                    status = response.status_code
                    request_id = response.json().get("request_id") if status == 200 else None
                    if status != 200:
                        try:
                            body = response.json()
                        except ValueError:
                            body = {"not json": response.text[:200]}
                except httpx.HTTPError as exc:
                    status, request_id, failure = 0, None, type(exc).__name__
                self.answers.append(Answer(started, time.monotonic() - started, status, request_id, failure, body))
                n += self._clients
                if status == 0 and self._pause_after_failure_s:
                    time.sleep(self._pause_after_failure_s)  # a server that is gone: do not spin on refusals

    def __enter__(self) -> Load:
        self.started_at = datetime.now(timezone.utc)
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def connect(cluster: PostgresCluster, database: str = "postgres") -> psycopg.Connection:
    """An autocommit admin connection to one database of the cluster."""
    return psycopg.connect(host="127.0.0.1", port=cluster.port, user="postgres", dbname=database, autocommit=True)


def service_url(cluster: PostgresCluster, database: str = TRACE_DATABASE) -> str:
    """The service's DATABASE_URL: a database of its own in the cluster (the admin stays on ``postgres``)."""
    return f"postgresql+psycopg://postgres@127.0.0.1:{cluster.port}/{database}"


def stored_counts(cluster: PostgresCluster, request_ids: list[str],
                  database: str = TRACE_DATABASE) -> dict[str, int]:
    """How many rows each of ``request_ids`` has in the trace table."""
    with connect(cluster, database) as connection:
        rows = connection.execute("SELECT request_id, count(*) FROM prediction_traces "
                                  "WHERE request_id = ANY(%s) GROUP BY request_id", [request_ids]).fetchall()
    return dict(rows)


def stored_since(cluster: PostgresCluster, since: datetime, database: str = TRACE_DATABASE) -> dict[str, int]:
    """Rows per request id of the traces received since ``since``."""
    with connect(cluster, database) as connection:
        rows = connection.execute("SELECT request_id, count(*) FROM prediction_traces WHERE received_at >= %s "
                                  "GROUP BY request_id", [since]).fetchall()
    return dict(rows)


def figures(scenario: str, cluster: PostgresCluster, answers: list[Answer], fault: tuple[float, float],
            settle_s: float = 40.0, since: datetime | None = None, database: str = TRACE_DATABASE) -> Figures:
    """The figures of a run, once every 200 is traced or ``settle_s`` has passed (the journal replays).

    ``since``: when the run's load started, to count the traces stored
    without a 200 and the request ids stored twice among every trace of the run.
    """
    ok_ids = [a.request_id for a in answers if a.status == 200 and a.request_id]
    deadline = time.monotonic() + settle_s
    while True:
        try:
            stored = stored_counts(cluster, ok_ids, database)
        except psycopg.Error:
            stored = {}
        if len(stored) >= len(ok_ids) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    of_run = stored_since(cluster, since, database) if since is not None else dict(stored)
    during = [a for a in answers if fault[0] <= a.started <= fault[1]]
    latencies = sorted(a.seconds * 1000 for a in during)
    p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 2 else (latencies or [0.0])[0]
    statuses: dict[int, int] = {}
    for answer in during:
        statuses[answer.status] = statuses.get(answer.status, 0) + 1
    answered = set(ok_ids)
    return Figures(scenario=scenario, answers=len(during), ok=sum(1 for a in during if a.status == 200),
                   traces_found=sum(1 for i in ok_ids if i in stored), lost=sum(1 for i in ok_ids if i not in stored),
                   p95_ms=p95, max_ms=latencies[-1] if latencies else 0.0, statuses=statuses,
                   duplicated=sum(1 for c in {**of_run, **stored}.values() if c > 1),
                   unanswered_traces=sum(1 for i in of_run if i not in answered),
                   server_errors=sum(1 for a in during if a.status >= 500))


def metric(url: str, name: str) -> float:
    """The sum of one metric's samples at the service's /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(float(v) for v in re.findall(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", text, re.M))


def worker_pids(state_dir: Path, url: str | None = None) -> list[int]:
    """The live BentoML worker processes serving with ``state_dir`` (and at ``url``), found by their environment."""
    return _pids(state_dir, b"_bentoml_impl.worker", url)


def server_pid(state_dir: Path, url: str) -> int:
    """The ``bentoml serve`` process at ``url`` serving with ``state_dir``."""
    [pid] = _pids(state_dir, b"bentoml\0serve", url)
    return pid


def _pids(state_dir: Path, command_part: bytes, url: str | None) -> list[int]:
    marker = f"FUTURISYS_STATE_DIR={state_dir}".encode()
    port = url.rsplit(":", 1)[1].encode() if url else None
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            command = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z" or marker not in environ.split(b"\0") or command_part not in command:
            continue
        if port is None or b"--port\0" + port + b"\0" in command or b":" + port + b'"' in environ:
            pids.append(int(entry.name))
    return pids


@dataclass
class StalledService:
    """A served service on its own cluster, with what a scenario needs to cause faults."""

    url: str
    cluster: PostgresCluster
    state_dir: Path
    deadline_ms: int
    ready_after_s: float
    log_path: Path | None = None
    database: str = TRACE_DATABASE

    def workers_started(self) -> int:
        """Worker processes of this server that completed their startup (each new one counts, restarts too)."""
        if self.log_path is None or not self.log_path.exists():
            return 0
        return self.log_path.read_text(errors="replace").count("Completed async startup hook: start_worker")


@contextmanager
def stalled_service(workdir: Path, deadline_ms: int, database_down: bool = False,
                    extra_env: dict[str, str] | None = None) -> Iterator[StalledService]:
    """A cluster with the service's database, and ``bentoml serve`` on it (started while it is down, if asked)."""
    with PostgresCluster() as cluster:
        with connect(cluster) as admin:
            admin.execute(f"CREATE DATABASE {TRACE_DATABASE}")
        if database_down:
            cluster.stop()
        with serve_on(cluster, workdir, deadline_ms, extra_env=extra_env) as service:
            yield service


@contextmanager
def serve_on(cluster: PostgresCluster, workdir: Path, deadline_ms: int, database: str = TRACE_DATABASE,
             state_dir: Path | None = None, name: str = "serve",
             extra_env: dict[str, str] | None = None) -> Iterator[StalledService]:
    """``bentoml serve`` on ``database`` of ``cluster``, its state in ``state_dir`` (default: ``workdir/state``)."""
    hook_dir = workdir / "hook"
    hook_dir.mkdir(parents=True, exist_ok=True)
    (hook_dir / "sitecustomize.py").write_text(KILL_HOOK)
    state_dir = state_dir or workdir / "state"
    env = {"BENTOML_HOME": str(workdir / f"bentoml-{name}"), "FUTURISYS_STATE_DIR": str(state_dir),
           "DATABASE_URL": service_url(cluster, database), "FUTURISYS_COMMIT_DEADLINE_MS": str(deadline_ms),
           "FUTURISYS_LOCK_TIMEOUT_MS": str(deadline_ms), "FUTURISYS_REPLAY_INTERVAL_S": "0.5",
           "FUTURISYS_ACCESS_LOG": "false",
           "PYTHONPATH": os.pathsep.join(p for p in (str(hook_dir), os.environ.get("PYTHONPATH")) if p),
           **(extra_env or {})}
    started = time.monotonic()
    with bentoml_serve(env, workdir / f"{name}.log") as url:
        yield StalledService(url, cluster, state_dir, deadline_ms, time.monotonic() - started,
                             workdir / f"{name}.log", database)


def run_fault(service: StalledService, scenario: str, fault: Callable[[], None], before_s: float = 1.0,
              after_s: float = 1.0, during: Callable[[], None] | None = None) -> tuple[Figures, list[Answer]]:
    """Load the service, run ``fault()`` (which returns when the fault is over), keep loading, then count."""
    with Load(service.url) as load:
        time.sleep(before_s)
        fault_start = time.monotonic()
        fault()
        fault_end = time.monotonic()
        time.sleep(after_s)
    if during is not None:
        during()
    return (figures(scenario, service.cluster, load.answers, (fault_start, fault_end), since=load.started_at,
                    database=service.database),
            load.answers)


def lock_table(service: StalledService, seconds: float, while_locked: Callable[[], None] | None = None) -> None:
    """Hold ``LOCK TABLE prediction_traces IN ACCESS EXCLUSIVE MODE`` for ``seconds`` (a migration, say)."""
    with connect(service.cluster, TRACE_DATABASE) as admin:
        with admin.transaction():
            admin.execute("LOCK TABLE prediction_traces IN ACCESS EXCLUSIVE MODE")
            ends = time.monotonic() + seconds
            time.sleep(min(seconds, 1.0))
            if while_locked is not None:
                while_locked()
            time.sleep(max(0.0, ends - time.monotonic()))


def read_only_database(service: StalledService, seconds: float,
                       while_read_only: Callable[[], None] | None = None) -> None:
    """A failover to a read-only standby, as the service sees it: every session of its database refuses writes."""
    with connect(service.cluster) as admin:
        admin.execute(f"ALTER DATABASE {TRACE_DATABASE} SET default_transaction_read_only = on")
        # The writer's session (and the pool's) were opened writable: cut them, as a failover does.
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                      [TRACE_DATABASE])
        time.sleep(seconds)
        if while_read_only is not None:
            while_read_only()
        admin.execute(f"ALTER DATABASE {TRACE_DATABASE} RESET default_transaction_read_only")


def server_pids(cluster: PostgresCluster) -> list[int]:
    """The PostgreSQL postmaster of the cluster and its children (backends, background processes)."""
    postmaster = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                children.append(int(entry.name))
    return [postmaster, *children]


def freeze_database(service: StalledService, seconds: float,
                    while_frozen: Callable[[], None] | None = None) -> None:
    """A database that hangs instead of failing: every server process stopped (SIGSTOP), then resumed.

    The kernel still accepts connections and acknowledges packets, so no
    timeout of the server and no TCP timeout fires: only the service's own
    deadline can answer.
    """
    pids = server_pids(service.cluster)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(min(seconds, 1.5))
        if while_frozen is not None:
            while_frozen()
        time.sleep(max(0.0, seconds - 1.5))
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def kill_writer_task(service: StalledService) -> int:
    """Cancel the trace writer's task in every worker (SIGUSR1 to the hook); the number of workers signalled."""
    pids = worker_pids(service.state_dir)
    for pid in pids:
        os.kill(pid, signal.SIGUSR1)
    return len(pids)


@contextmanager
def together(*managers: AbstractContextManager[StalledService]) -> Iterator[list[StalledService]]:
    """Enter several services' context managers at once (their starts overlap), exit them all."""
    entered: list[StalledService | BaseException | None] = [None] * len(managers)

    def enter(index: int) -> None:
        try:
            entered[index] = managers[index].__enter__()
        except BaseException as exc:  # re-raised below, once every start has ended
            entered[index] = exc

    threads = [threading.Thread(target=enter, args=(i,)) for i in range(len(managers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        for outcome in entered:
            if isinstance(outcome, BaseException):
                raise outcome
        yield [outcome for outcome in entered if isinstance(outcome, StalledService)]
    finally:
        for manager, outcome in zip(managers, entered):
            if isinstance(outcome, StalledService):
                manager.__exit__(None, None, None)


def journal_unwritable_outage(service: StalledService, seconds: float) -> None:
    """The database down while the journal cannot be written (its directory replaced by a file), then both back."""
    journal = service.state_dir / "journal"
    deadline = time.monotonic() + 30
    # No journal file open (appends to an open file would still work): the next append must create one.
    while httpx.get(f"{service.url}/health", timeout=10).json()["writer"]["journal_backlog"] and \
            time.monotonic() < deadline:
        time.sleep(0.2)
    aside = service.state_dir / "journal-aside"
    journal.rename(aside)
    journal.write_text("a file where the journal directory should be: the journal cannot be written")
    try:
        service.cluster.stop()
        time.sleep(seconds)
    finally:
        journal.unlink()
        aside.rename(journal)
        service.cluster.start()


def journals_of(service: StalledService, pid: int) -> list[Path]:
    """The journal files a worker process wrote, wherever its instance directory is."""
    return sorted((service.state_dir / "journal").glob(f"*/journal-{pid}-*.jsonl"))


@dataclass
class Crash:
    """What a killed worker left, and how the service came back."""

    victim: int
    journals: list[Path]  # the victim's journal files at its death (answered traces in them)
    respawned_after_s: float | None  # until the arbiter started a new worker process (None: not within 60 s)
    serving_after_s: float | None = None  # until that worker serves (when waited for)


def kill_worker_during_outage(service: StalledService, outage_s: float, crash: list[Crash],
                              wait_serving: bool = False) -> None:
    """``kill -9`` of one worker in the middle of an outage (its journal holds answered traces), then the database back.

    What the kill left goes to ``crash``; with ``wait_serving``, returns once the new worker serves.
    """
    before = worker_pids(service.state_dir, service.url)
    started = service.workers_started()
    service.cluster.stop()
    time.sleep(outage_s / 2)
    victim = before[0]
    journals = journals_of(service, victim)
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    time.sleep(outage_s / 2)
    service.cluster.start()
    respawned = serving = None
    while time.monotonic() - killed < 60:
        if respawned is None and len(set(worker_pids(service.state_dir, service.url)) - set(before)) > 0:
            respawned = time.monotonic() - killed
            if not wait_serving:
                break
        if service.workers_started() > started:  # the new worker completed its startup: it serves
            serving = time.monotonic() - killed
            break
        time.sleep(0.1)
    crash.append(Crash(victim, journals, respawned, serving))


def terminate_server(service: StalledService, timeout_s: float = 30.0) -> float:
    """SIGTERM to ``bentoml serve`` and its workers (as a pod deletion does); the seconds until it exited."""
    pid = server_pid(service.state_dir, service.url)
    started = time.monotonic()
    os.killpg(pid, signal.SIGTERM)
    while time.monotonic() - started < timeout_s and Path(f"/proc/{pid}").exists():
        try:
            if (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                break
        except OSError:
            break
        time.sleep(0.05)
    return time.monotonic() - started


@dataclass
class Overflow:
    """What the service showed while its journal was full."""

    first_refusal: dict | None = None  # the body of the first 503
    unready_seen: bool = False  # /readyz answered 503
    refusals_metric: float = 0.0  # futurisys_trace_journal_refusals_total
    journal_bytes_metric: float = 0.0  # futurisys_trace_journal_bytes when full
    ready_again_after_s: float | None = None  # once the database was back


def fill_journal(service: StalledService, load: Load, seen: Overflow, timeout_s: float = 30.0) -> None:
    """An outage that lasts until the journal is full (its cap): refusals, unready, metrics; then the database back."""
    service.cluster.stop()
    started = time.monotonic()
    while time.monotonic() - started < timeout_s and not seen.unready_seen:
        refused = [a for a in list(load.answers) if a.status == 503 and a.started >= started]
        if refused and seen.first_refusal is None:
            seen.first_refusal = refused[0].body
        if refused:
            seen.unready_seen = httpx.get(f"{service.url}/readyz", timeout=10).status_code == 503
        time.sleep(0.1)
    seen.refusals_metric = metric(service.url, "futurisys_trace_journal_refusals_total")
    seen.journal_bytes_metric = metric(service.url, "futurisys_trace_journal_bytes")
    service.cluster.start()
    back = time.monotonic()
    while time.monotonic() - back < timeout_s:
        if httpx.get(f"{service.url}/readyz", timeout=10).status_code == 200 and all(
                httpx.get(f"{service.url}/readyz", timeout=10).status_code == 200 for _ in range(4)):
            seen.ready_again_after_s = time.monotonic() - back
            break
        time.sleep(0.2)


def run_loaded(service: StalledService, scenario: str, fault: Callable[[Load], None], before_s: float = 1.0,
               after_s: float = 1.0) -> tuple[Figures, list[Answer]]:
    """:func:`run_fault` for a fault that watches the load while it runs."""
    with Load(service.url) as load:
        time.sleep(before_s)
        fault_start = time.monotonic()
        fault(load)
        fault_end = time.monotonic()
        time.sleep(after_s)
    return (figures(scenario, service.cluster, load.answers, (fault_start, fault_end), since=load.started_at,
                    database=service.database),
            load.answers)


def replicas_outage(services: list[StalledService], outage_s: float, before_s: float = 1.0,
                    after_s: float = 1.0) -> tuple[list[Figures], int]:
    """Load every instance at once, stop their cluster for ``outage_s`` in the middle; figures of each.

    Also returns how many answered request ids of one instance were stored
    in another instance's database (a journal replayed into the wrong one).
    """
    cluster = services[0].cluster
    loads = [Load(service.url, clients=CLIENTS // len(services)) for service in services]
    for load in loads:
        load.__enter__()
    try:
        time.sleep(before_s)
        fault_start = time.monotonic()
        cluster.stop()
        time.sleep(outage_s)
        cluster.start()
        fault_end = time.monotonic()
        time.sleep(after_s)
    finally:
        for load in loads:
            load.__exit__(None, None, None)
    results = [figures(f"replica {i + 1} of {len(services)} ({service.database}), outage {outage_s:g} s",
                       cluster, load.answers, (fault_start, fault_end), since=load.started_at,
                       database=service.database)
               for i, (service, load) in enumerate(zip(services, loads))]
    crossed = 0
    for service, load in zip(services, loads):
        ids = [a.request_id for a in load.answers if a.status == 200 and a.request_id]
        for other in services:
            if other.database != service.database:
                crossed += len(stored_counts(cluster, ids, other.database))
    return results, crossed


def main(argv: list[str] | None = None) -> int:
    """Run the long table-lock scenario (and optionally the others) and print their figures."""
    parser = argparse.ArgumentParser(prog="python3 -m tests.service.stalls", description=__doc__.split("\n")[0])
    parser.add_argument("--lock-s", type=float, default=12.0, help="how long the table stays locked")
    parser.add_argument("--deadline-ms", type=int, default=2000, help="FUTURISYS_COMMIT_DEADLINE_MS")
    parser.add_argument("--freeze-s", type=float, default=0.0,
                        help="also freeze every database process (SIGSTOP) this long, under load")
    arguments = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="futurisys-stalls-") as workdir:
        with stalled_service(Path(workdir), arguments.deadline_ms) as service:
            results.append(run_fault(service, f"table locked {arguments.lock_s:.0f} s",
                                     lambda: lock_table(service, arguments.lock_s), before_s=2, after_s=2)[0])
            if arguments.freeze_s:
                results.append(run_fault(service, f"database frozen {arguments.freeze_s:.0f} s",
                                         lambda: freeze_database(service, arguments.freeze_s), before_s=2,
                                         after_s=2)[0])
    target_ms = arguments.deadline_ms + 1500
    passed = True
    for result in results:
        print(result.line())
        print(f"  targets: 200s >= 90 % of answers: {result.ok / max(result.answers, 1):.1%}; "
              f"p95 < {target_ms} ms: {result.p95_ms:.0f} ms; lost = 0: {result.lost}")
        passed &= result.lost == 0 and result.ok >= 0.9 * result.answers and result.p95_ms < target_ms
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
