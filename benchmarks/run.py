"""Load benchmark: the service against the usual design, on this machine, over 127.0.0.1.

    python3 -m benchmarks.run [--duration 20] [--connections 64] [--quick]

Creates a fresh PostgreSQL database, then starts each system in turn and
drives it with ``wrk`` and ``benchmarks/post.lua`` (JSON bodies of synthetic
employees, cycled):

- ``baseline``: FastAPI + uvicorn, 2 workers, one row and one transaction per
  request (``benchmarks/baseline_app.py``);
- ``traced``: ``bentoml serve`` of the service, 2 workers, access log off,
  every answer traced to PostgreSQL;
- ``untraced``: the same with ``FUTURISYS_TRACING=false``;
- ``noop``: a BentoML service with the same configuration whose ``/predict``
  does nothing (``benchmarks/noop_service.py``), the framework's ceiling;
- ``batch``: ``/predict_batch`` of the traced service, ``--batch-rows`` rows a
  call, in rows per second.

Each system is warmed up, then measured ``--repeat`` times (3; the median run
is shown): wrk's keep-alive connections stay with the worker process that
accepted them, and how a burst of them splits between the two workers changes
from run to run (the table shows the split). Each run ends with a drain (no
request in flight when wrk stops), so the traces counted in the database can
be compared exactly with the rows of the 2xx answers. It also measures the
traced service's time to ready, its first request to a model not loaded yet,
the memory of its process tree, and where the CPU went (server, PostgreSQL,
client, other processes). Prints one table and the ratios to the targets.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import sqlalchemy as sa

from attrition.synthetic import synthetic_employees
from registry.aliases import CHAMPION, read_aliases

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LUA_SCRIPT = Path(__file__).resolve().with_name("post.lua")
DEFAULT_MODELS_DIR = PROJECT_ROOT / "models"
DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
HOST = "127.0.0.1"
GIB = 1 << 30
BUSY_CPU = 10.0
MIB = 1 << 20

SYSTEMS = ("baseline", "traced", "untraced", "noop", "batch")
LABELS = {
    "baseline": "baseline: FastAPI, 1 tx/request, traced",
    "traced": "ours, traced",
    "untraced": "ours, tracing off",
    "noop": "no-op BentoML endpoint",
    "batch": "ours /predict_batch, traced",
}
TRACE_TABLES = {"baseline": "baseline_results", "traced": "prediction_traces", "untraced": "prediction_traces",
                "batch": "prediction_traces"}
TRACED = ("baseline", "traced", "batch")


class BenchmarkError(RuntimeError):
    """The benchmark could not run (a tool, a server or the database is missing or failed)."""


# ---- tools ---------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """The path of ``wrk``, installed with apt-get (Debian package ``wrk``) when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None:
        raise BenchmarkError("wrk is not installed and apt-get is not available: install wrk (Debian package 'wrk')")
    print("wrk not found: apt-get install -y wrk", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "-q", "wrk"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run([apt, "update", "-q"], env=env, capture_output=True)
        result = subprocess.run(install, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise BenchmarkError(f"wrk is missing and 'apt-get install -y wrk' failed:\n{result.stderr[-2000:]}")
    found = shutil.which("wrk")
    if not found:
        raise BenchmarkError("apt-get installed wrk but it is not on PATH")
    return found


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


# ---- database ------------------------------------------------------------------------------------


@contextmanager
def fresh_database(admin_url: str, keep: bool = False) -> Iterator[str]:
    """Create an empty PostgreSQL database for the run; yields its URL, drops it afterwards unless ``keep``."""
    name = f"futurisys_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.SQLAlchemyError as exc:
        admin.dispose()
        raise BenchmarkError(f"cannot create a database through {admin_url}: {exc.__class__.__name__}: {exc}") from exc
    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        if keep:
            print(f"database kept: {url}")
        else:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def count_rows(engine: sa.Engine, table: str) -> int:
    """Rows of ``table`` now (0 while the table does not exist)."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table(table):
            return 0
        return int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def checkpoint(engine: sa.Engine) -> None:
    """Flush PostgreSQL's dirty pages now, so a checkpoint does not land in the middle of a measured run."""
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("CHECKPOINT"))
    except sa.exc.SQLAlchemyError:
        pass  # needs a superuser; only a source of variance when it fails


# ---- request bodies ------------------------------------------------------------------------------


def write_bodies(folder: Path, count: int, batch_rows: int, seed: int = 2024) -> tuple[Path, Path]:
    """Write the bodies wrk cycles through: ``count`` single-employee bodies, and batches of ``batch_rows``."""
    employees = synthetic_employees(count, seed)
    single = folder / "predict.jsonl"
    single.write_text("".join(json.dumps({"employee": e}, ensure_ascii=False) + "\n" for e in employees),
                      encoding="utf-8")
    batches = max(8, min(64, count // batch_rows))
    pool = synthetic_employees(batches * batch_rows, seed + 1)
    batch = folder / "predict_batch.jsonl"
    batch.write_text("".join(
        json.dumps({"employees": pool[i * batch_rows:(i + 1) * batch_rows]}, ensure_ascii=False) + "\n"
        for i in range(batches)), encoding="utf-8")
    return single, batch


# ---- servers -------------------------------------------------------------------------------------


def tree_memory(pid: int) -> tuple[int, int]:
    """Resident memory of a process and all its descendants, in bytes: (sum of RSS, sum of PSS).

    RSS counts the pages that processes share (the interpreter, libraries) once
    per process; PSS splits them among the processes that map them, so its sum
    is the tree's real footprint.
    """
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    rss = pss = 0
    for process in processes:
        try:
            info = process.memory_full_info()
        except psutil.AccessDenied:
            try:
                info = process.memory_info()
            except psutil.Error:
                continue
        except psutil.Error:
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return rss, pss


def connections_per_process(pid: int, port: int) -> list[int]:
    """Established client connections on ``port`` held by each process under ``pid``, most first."""
    counts = []
    try:
        processes = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    for process in processes:
        try:
            held = sum(1 for c in process.net_connections(kind="tcp")
                       if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port)
        except psutil.Error:
            continue
        if held:
            counts.append(held)
    return sorted(counts, reverse=True)


class RssSampler:
    """Samples the memory of a process tree in a background thread; keeps the peaks of RSS and PSS.

    With ``port``, it also records how the client connections are split among the
    worker processes (keep-alive connections stay with the worker that accepted them).
    """

    def __init__(self, pid: int, interval_s: float = 0.5, port: int | None = None) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.port = port
        self.peak = 0
        self.peak_pss = 0
        self.split: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _record(self) -> None:
        rss, pss = tree_memory(self.pid)
        self.peak = max(self.peak, rss)
        self.peak_pss = max(self.peak_pss, pss)
        if self.port is not None:
            split = connections_per_process(self.pid, self.port)
            if sum(split) >= sum(self.split):
                self.split = split

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._record()
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._record()


class CpuAccount:
    """Where the machine's CPU went during a measured run: the server tree, PostgreSQL, the client, others.

    Shares are percentages of all cores. "others" is what processes outside the
    benchmark took (someone's tests, a build): it makes the run's numbers noisy.
    PostgreSQL counts every backend, including those serving other clients.
    """

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.shares: dict[str, float] = {}

    def _server(self) -> float:
        try:
            root = psutil.Process(self.server_pid)
            return _cpu_seconds([root, *root.children(recursive=True)])
        except psutil.NoSuchProcess:
            return 0.0

    @staticmethod
    def _postgres() -> float:
        return _cpu_seconds([p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("postgres")])

    @staticmethod
    def _client() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once waited for
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    @staticmethod
    def _busy() -> float:
        times = psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    def _snapshot(self) -> dict[str, float]:
        return {"server": self._server(), "postgres": self._postgres(), "client": self._client(),
                "busy": self._busy()}

    def __enter__(self) -> "CpuAccount":
        self._started = time.perf_counter()
        self._start = self._snapshot()
        return self

    def __exit__(self, *_exc: object) -> None:
        elapsed = time.perf_counter() - self._started
        end = self._snapshot()
        delta = {k: end[k] - self._start[k] for k in end}
        capacity = elapsed * (os.cpu_count() or 1)
        if capacity <= 0:
            return
        # A process that ended between the snapshots takes its CPU time away: clamp at zero.
        self.shares = {k: round(max(0.0, 100.0 * delta[k] / capacity), 1) for k in ("server", "postgres", "client")}
        others = delta["busy"] - delta["server"] - delta["postgres"] - delta["client"]
        self.shares["others"] = round(max(0.0, 100.0 * others / capacity), 1)
        self.shares["idle"] = round(max(0.0, 100.0 - 100.0 * delta["busy"] / capacity), 1)

    @property
    def others_percent(self) -> float | None:
        """CPU taken by processes outside the benchmark, in % of all cores."""
        return self.shares.get("others")


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def wait_for_quiet(limit_s: float, threshold: float = 15.0) -> float:
    """Wait (``limit_s`` at most) until the machine's CPU use drops under ``threshold`` %; return the last reading."""
    deadline = time.monotonic() + limit_s
    busy = psutil.cpu_percent(interval=1.0)
    while busy >= threshold and time.monotonic() < deadline:
        busy = psutil.cpu_percent(interval=1.0)
    return busy


@dataclass
class Server:
    """A system under test running in its own process group."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    ready_s: float

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def stop_process_group(process: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    """SIGTERM the process group of ``process``, then SIGKILL it if it is still there after ``grace_s``."""
    if process.poll() is not None:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # orphaned children of a dead leader, if any
        except ProcessLookupError:
            pass
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@contextmanager
def running(name: str, command: Sequence[str], env: dict[str, str], log_path: Path,
            timeout_s: float = 120.0) -> Iterator[Server]:
    """Start ``command`` (which listens on the port in ``env['PORT']``), wait for ``/readyz`` 200, stop it after."""
    url = f"http://{HOST}:{env['PORT']}"
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(list(command), cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = Server(name, url, process, log_path, math.nan)
    try:
        with httpx.Client(timeout=2.0) as client:
            while True:
                if process.poll() is not None:
                    raise BenchmarkError(f"{name} exited with {process.returncode} before it was ready:\n"
                                         f"{server.log_tail()}")
                try:
                    if client.get(f"{url}/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.perf_counter() - started > timeout_s:
                    raise BenchmarkError(f"{name} not ready after {timeout_s:.0f} s:\n{server.log_tail()}")
                time.sleep(0.05)
        server.ready_s = time.perf_counter() - started
        yield server
    finally:
        stop_process_group(process)


# ---- load ----------------------------------------------------------------------------------------


@dataclass
class Load:
    """What one wrk run measured (from post.lua's done() summary)."""

    ok_responses: int
    ok_rows: int
    non_2xx: int
    non_2xx_statuses: dict[str, int]
    socket_errors: int
    unanswered: int
    window_s: float
    latency_ms: dict[str, float]

    @property
    def requests_per_s(self) -> float:
        """Answers (any status) per second of the measured window."""
        return (self.ok_responses + self.non_2xx) / self.window_s if self.window_s > 0 else 0.0

    @property
    def rows_per_s(self) -> float:
        """Employees answered with 2xx per second."""
        return self.ok_rows / self.window_s if self.window_s > 0 else 0.0


def drive(wrk: str, url: str, bodies: Path, seconds: float, max_drain_s: float, connections: int, threads: int,
          output: Path, recycle: int = 0) -> Load:
    """Run wrk against ``url`` for ``seconds``, wait for the answers in flight (``max_drain_s`` at most), read it.

    post.lua stops sending at the end of ``seconds`` and prints ``BENCH_DRAINED`` per
    thread once that thread has nothing in flight; wrk is then interrupted (SIGINT), so
    it stops with every answer the server sent counted. One request in ``recycle``
    (0: none) asks the server to close the connection after its answer.
    """
    threads = max(1, min(threads, connections))
    length = max(1, math.ceil(seconds + max_drain_s))
    command = [wrk, "--latency", "-t", str(threads), "-c", str(connections), "-d", f"{length}s",
               "--timeout", "30s", "-s", str(LUA_SCRIPT), url, "--", str(bodies), str(seconds), str(recycle)]
    lines: list[str] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        timer = threading.Timer(length + 60, process.kill)
        timer.start()
        try:
            assert process.stdout is not None
            drained = 0
            for line in process.stdout:
                lines.append(line)
                if line.startswith("BENCH_DRAINED"):
                    drained += 1
                    if drained == threads:
                        process.send_signal(signal.SIGINT)
            process.wait()
        finally:
            timer.cancel()
            if process.poll() is None:
                process.kill()
    text = "".join(lines)
    output.write_text(f"$ {' '.join(command)}\n{text}")
    line = next((x for x in lines if x.startswith("BENCH_RESULT ")), None)
    if process.returncode != 0 or line is None:
        raise BenchmarkError(f"wrk failed ({process.returncode}) against {url}:\n{text[-3000:]}")
    data = json.loads(line.removeprefix("BENCH_RESULT "))
    statuses: dict[str, int] = {}
    for status in data["non_2xx_statuses"].split():
        statuses[status] = statuses.get(status, 0) + 1
    errors = data["socket_errors"]
    return Load(
        ok_responses=data["ok_responses"], ok_rows=data["ok_rows"], non_2xx=data["non_2xx"],
        non_2xx_statuses=statuses,
        socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        unanswered=data["sent"] - data["ok_responses"] - data["non_2xx"],
        window_s=data["window_s"],
        latency_ms={k: v / 1000.0 for k, v in data["latency_us"].items()})


# ---- the run -------------------------------------------------------------------------------------


@dataclass
class Options:
    """How the benchmark runs."""

    duration_s: float = 20.0
    warmup_s: float = 5.0
    drain_s: float = 30.0
    connections: int = 64
    threads: int = 1
    batch_rows: int = 100
    bodies: int = 2000
    systems: tuple[str, ...] = SYSTEMS
    models_dir: Path = DEFAULT_MODELS_DIR
    admin_url: str = DEFAULT_ADMIN_URL
    env: dict[str, str] = field(default_factory=dict)
    keep_db: bool = False
    workdir: Path | None = None
    profile_dir: Path | None = None
    wait_quiet_s: float = 60.0
    quick: bool = False
    repeat: int = 3
    recycle: int = 0


@dataclass
class SystemResult:
    """One row of the table."""

    system: str
    label: str
    connections: int
    load: Load | None = None
    traces: int | None = None
    ready_s: float | None = None
    rss_bytes: int | None = None
    pss_bytes: int | None = None
    background_cpu: float | None = None
    others_cpu: float | None = None
    cpu_shares: dict[str, float] = field(default_factory=dict)
    connection_split: list[int] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    every_run_traced: bool | None = None
    error: str | None = None

    @property
    def traces_match(self) -> bool | None:
        """For a traced system: whether the traces committed equal the rows answered 2xx."""
        if self.system not in TRACED or self.load is None or self.traces is None:
            return None
        return self.traces == self.load.ok_rows and self.every_run_traced is not False


@dataclass
class Report:
    """Everything one run measured."""

    options: dict[str, Any]
    results: dict[str, SystemResult] = field(default_factory=dict)
    first_request: dict[str, Any] | None = None
    machine: dict[str, Any] = field(default_factory=dict)


def server_env(options: Options, base: dict[str, str], port: int, **overrides: str) -> dict[str, str]:
    """The environment of a system under test: the caller's, the run's fixed settings, then ``--env``."""
    env = {**os.environ, **base, "PORT": str(port), "BENTOML_PORT": str(port), **overrides, **options.env}
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def not_yet_loaded_model(models_dir: Path) -> str:
    """A model other than the champion (gradient_boosting when there is one), to time a lazy load."""
    champion = read_aliases(models_dir).get(CHAMPION, "").split(":")[0]
    names = sorted(p.parent.parent.name for p in models_dir.glob("*/*/model.joblib"))
    candidates = [n for n in names if n != champion]
    if "gradient_boosting" in candidates:
        return "gradient_boosting"
    return next((n for n in candidates if n != "baseline"), candidates[0] if candidates else champion)


def time_first_request(url: str, model: str, employee: dict[str, Any]) -> dict[str, Any]:
    """POST /predict naming ``model`` and time the answer (the model is loaded by this very request)."""
    started = time.perf_counter()
    response = httpx.post(f"{url}/predict", json={"employee": employee, "model": model}, timeout=60)
    elapsed = time.perf_counter() - started
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    served = body.get("model") if isinstance(body, dict) else None
    return {"model": model, "status": response.status_code, "served_by": served,
            "fallback": body.get("fallback") if isinstance(body, dict) else None, "seconds": elapsed}


@dataclass
class Run:
    """One measured run of a system."""

    load: Load
    traces: int | None
    cpu_shares: dict[str, float]
    split: list[int]


class Bench:
    """Runs the systems of one benchmark, in turn, against one fresh database."""

    def __init__(self, options: Options, wrk: str, database_url: str, workdir: Path) -> None:
        self.options = options
        self.wrk = wrk
        self.database_url = database_url
        self.workdir = workdir
        self.engine = sa.create_engine(database_url)
        self.single_bodies, self.batch_bodies = write_bodies(workdir, options.bodies, options.batch_rows)
        self.first_employee = json.loads(self.single_bodies.read_text(encoding="utf-8").splitlines()[0])["employee"]
        self.base_env = {
            "DATABASE_URL": database_url,
            "FUTURISYS_MODELS_DIR": str(options.models_dir),
            "FUTURISYS_STATE_DIR": str(workdir / "state"),
            "BENTOML_HOME": str(workdir / "bentoml"),
            "FUTURISYS_WORKERS": "2",
            "FUTURISYS_ACCESS_LOG": "false",
            "FUTURISYS_TRACING": "true",
        }
        self.report = Report(options={k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()})

    def _bentoml(self, target: str, port: int) -> list[str]:
        return [sys.executable, "-m", "bentoml", "serve", target, "--host", HOST, "--port", str(port)]

    def run(self) -> Report:
        """Start each selected system in turn, measure it, stop it; returns the report."""
        wanted = self.options.systems
        plan: list[tuple[str, tuple[str, ...]]] = [
            ("baseline", ("baseline",)),
            ("traced", tuple(s for s in ("traced", "batch") if s in wanted)),
            ("untraced", ("untraced",)),
            ("noop", ("noop",)),
        ]
        for server_name, systems in plan:
            systems = tuple(s for s in systems if s in wanted)
            if not systems:
                continue
            try:
                self._run_server(server_name, systems)
            except Exception as exc:  # one broken system must not cost the others their rows
                if not isinstance(exc, BenchmarkError):
                    exc = BenchmarkError(f"{exc.__class__.__name__}: {exc}")
                for system in systems:
                    result = self.report.results.setdefault(
                        system, SystemResult(system, LABELS[system], self.options.connections))
                    result.error = str(exc)
                print(f"!! {server_name}: {exc}", file=sys.stderr, flush=True)
        return self.report

    def _command(self, server_name: str, port: int) -> tuple[list[str], dict[str, str]]:
        if server_name == "baseline":
            command = [sys.executable, "-m", "uvicorn", "benchmarks.baseline_app:app", "--host", HOST,
                       "--port", str(port), "--workers", "2", "--no-access-log", "--log-level", "warning"]
            return command, server_env(self.options, self.base_env, port)
        if server_name == "noop":
            return self._bentoml("benchmarks.noop_service:NoopService", port), server_env(
                self.options, self.base_env, port)
        tracing = "true" if server_name == "traced" else "false"
        return self._bentoml("service:AttritionService", port), server_env(
            self.options, self.base_env, port, FUTURISYS_TRACING=tracing)

    def _run_server(self, server_name: str, systems: tuple[str, ...]) -> None:
        port = free_port()
        command, env = self._command(server_name, port)
        # CPU used by others while nothing of the benchmark runs: other load makes the numbers noisy.
        background = wait_for_quiet(self.options.wait_quiet_s)
        print(f"-- {server_name}: starting {' '.join(command[2:5])} on port {port} "
              f"(background CPU {background:.0f}%)", flush=True)
        with running(server_name, command, env, self.workdir / f"{server_name}.log") as server:
            print(f"   ready in {server.ready_s:.2f} s", flush=True)
            if server_name == "traced":
                model = not_yet_loaded_model(self.options.models_dir)
                self.report.first_request = time_first_request(server.url, model, self.first_employee)
                first = self.report.first_request
                print(f"   first request to {model}: {first['seconds'] * 1000:.0f} ms (status {first['status']}, "
                      f"served by {first['served_by']})", flush=True)
            for system in systems:
                self.report.results[system] = self._measure(system, server)
                self.report.results[system].background_cpu = background

    def _measure(self, system: str, server: Server) -> SystemResult:
        options = self.options
        result = SystemResult(system, LABELS[system], options.connections, ready_s=server.ready_s)
        path, bodies = ("/predict_batch", self.batch_bodies) if system == "batch" else ("/predict", self.single_bodies)
        url = server.url + path
        table = TRACE_TABLES.get(system)
        with RssSampler(server.process.pid) as rss:  # memory through warm-up and run
            if options.warmup_s > 0:
                warm = drive(self.wrk, url, bodies, options.warmup_s, options.drain_s, options.connections,
                             options.threads, self.workdir / f"{system}-warmup.txt", options.recycle)
                print(f"   {system} warm-up: {warm.requests_per_s:,.0f} req/s, {warm.non_2xx} non-2xx", flush=True)
            runs = []
            for attempt in range(max(1, options.repeat)):
                runs.append(self._measured_run(system, server, url, bodies, table, attempt))
        # Each run opens new connections, split anew among the workers: keep the median run.
        runs.sort(key=lambda run: run.load.requests_per_s)
        chosen = runs[len(runs) // 2]
        result.load, result.traces = chosen.load, chosen.traces
        result.cpu_shares, result.others_cpu = chosen.cpu_shares, chosen.cpu_shares.get("others")
        result.connection_split = chosen.split
        result.runs = [{"requests_per_s": round(run.load.requests_per_s, 1),
                        "rows_per_s": round(run.load.rows_per_s, 1), "p99_ms": run.load.latency_ms["p99"],
                        "ok_rows": run.load.ok_rows, "traces": run.traces, "connection_split": run.split}
                       for run in runs]
        if table and system in TRACED:
            result.every_run_traced = all(run.traces == run.load.ok_rows for run in runs)
        result.rss_bytes = rss.peak
        result.pss_bytes = rss.peak_pss
        if server.process.poll() is not None:
            result.error = f"server exited with {server.process.returncode}:\n{server.log_tail()}"
        return result

    def _measured_run(self, system: str, server: Server, url: str, bodies: Path, table: str | None,
                      attempt: int) -> "Run":
        options = self.options
        before = count_rows(self.engine, table) if table else 0
        checkpoint(self.engine)
        profiler = self._start_profiler(system, server) if attempt == 0 else None
        try:
            with CpuAccount(server.process.pid) as cpu, \
                    RssSampler(server.process.pid, 1.0, port=int(server.url.rsplit(":", 1)[1])) as split:
                load = drive(self.wrk, url, bodies, options.duration_s, options.drain_s, options.connections,
                             options.threads, self.workdir / f"{system}-wrk-{attempt + 1}.txt", options.recycle)
        finally:
            self._stop_profiler(profiler)
        traces = count_rows(self.engine, table) - before if table else None
        print(f"   {system}: {load.requests_per_s:,.0f} req/s, {load.rows_per_s:,.0f} rows/s, "
              f"p99 {load.latency_ms['p99']:.1f} ms, non-2xx {load.non_2xx}, traces {traces} "
              f"for {load.ok_rows} rows answered, connections per worker {split.split}; "
              f"CPU % of all cores {cpu.shares}", flush=True)
        return Run(load, traces, cpu.shares, split.split)

    def _start_profiler(self, system: str, server: Server) -> Any:
        if self.options.profile_dir is None:
            return None
        from benchmarks.pyspy import start_recording

        return start_recording(server.process.pid, self.options.profile_dir, system, self.options.duration_s)

    def _stop_profiler(self, profiler: Any) -> None:
        if profiler is not None:
            from benchmarks.pyspy import finish_recording

            finish_recording(profiler)

    def close(self) -> None:
        """Release the run's database connections."""
        self.engine.dispose()


# ---- report --------------------------------------------------------------------------------------


@dataclass
class Check:
    """One target: the measured value, the bar, and whether it is met."""

    name: str
    value: float | None
    target: str
    passed: bool | None
    unit: str = ""

    def line(self) -> str:
        """The check as one line of the report."""
        verdict = {True: "PASS", False: "MISS", None: "n/a "}[self.passed]
        shown = "n/a" if self.value is None or math.isnan(self.value) else f"{self.value:,.2f}{self.unit}"
        return f"{verdict}  {self.name:<52} {shown:>14}   target {self.target}"


def _rate(report: Report, system: str, rows: bool = False) -> float | None:
    result = report.results.get(system)
    if result is None or result.load is None or result.error:
        return None
    return result.load.rows_per_s if rows else result.load.requests_per_s


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def checks(report: Report) -> list[Check]:
    """The targets of the issue, each with its measured value."""
    def check(name: str, value: float | None, bar: float, higher_is_better: bool, unit: str = "") -> Check:
        passed = None if value is None else (value >= bar if higher_is_better else value <= bar)
        return Check(name, value, f"{'>=' if higher_is_better else '<='} {bar:,g}{unit}", passed, unit)

    traced = report.results.get("traced")
    p99 = traced.load.latency_ms["p99"] if traced and traced.load and not traced.error else None
    ours = [report.results[s] for s in ("traced", "batch") if s in report.results]
    rss = max((r.rss_bytes for r in ours if r.rss_bytes), default=None)
    first = report.first_request
    first_ok = first is not None and first["status"] == 200 and first["served_by"] == first["model"]
    first_check = check(f"first request, model not loaded ({first['model'] if first else '-'})",
                        first["seconds"] if first else None, 1, False, " s")
    if first is not None and not first_ok:
        first_check.passed = False  # an error, or another model answered: not a served first request
    result = [
        check("traced / baseline traced (req/s)", _ratio(_rate(report, "traced"), _rate(report, "baseline")), 5,
              True, "x"),
        check("traced / untraced (req/s)", _ratio(_rate(report, "traced"), _rate(report, "untraced")), 0.8, True),
        check("traced / no-op (req/s)", _ratio(_rate(report, "traced"), _rate(report, "noop")), 0.6, True),
        check("batch, traced (rows/s)", _rate(report, "batch", rows=True), 15_000, True),
        check("p99 latency, traced (ms)", p99, 300, False, " ms"),
        check("time to ready, traced (s)", traced.ready_s if traced else None, 6, False, " s"),
        first_check,
        check("RSS of the process tree, 2 workers (GiB)", rss / GIB if rss else None, 1, False, " GiB"),
    ]
    for system in TRACED:
        row = report.results.get(system)
        if row is not None and row.load is not None:
            result.append(Check(f"traces == 2xx rows ({system})", float(row.traces or 0),
                                f"== {row.load.ok_rows:,}", row.traces_match))
    untraced = report.results.get("untraced")
    if untraced is not None and untraced.load is not None and untraced.traces is not None:
        result.append(Check("no trace with tracing off (untraced)", float(untraced.traces), "== 0",
                            untraced.traces == 0))
    return result


def table(report: Report) -> str:
    """The results as one fixed-width table, in the order of the issue."""
    header = ("system", "conns", "req/s", "rows/s", "p50 ms", "p95 ms", "p99 ms", "non-2xx", "sock err",
              "2xx rows", "traces", "ready s", "RSS MiB", "PSS MiB", "conns/worker", "others CPU")
    rows: list[tuple[str, ...]] = []
    for system in SYSTEMS:
        r = report.results.get(system)
        if r is None:
            continue
        if r.load is None:
            rows.append((r.label, str(r.connections), "failed", *[""] * 13))
            continue
        load = r.load
        rows.append((
            r.label, str(r.connections), f"{load.requests_per_s:,.0f}", f"{load.rows_per_s:,.0f}",
            f"{load.latency_ms['p50']:.1f}", f"{load.latency_ms['p95']:.1f}", f"{load.latency_ms['p99']:.1f}",
            f"{load.non_2xx}" + (f" {load.non_2xx_statuses}" if load.non_2xx_statuses else ""),
            str(load.socket_errors), f"{load.ok_rows:,}", "-" if r.traces is None else f"{r.traces:,}",
            "-" if r.ready_s is None else f"{r.ready_s:.2f}",
            "-" if not r.rss_bytes else f"{r.rss_bytes / MIB:,.0f}",
            "-" if not r.pss_bytes else f"{r.pss_bytes / MIB:,.0f}",
            "/".join(map(str, r.connection_split)) or "-",
            "-" if r.others_cpu is None else f"{r.others_cpu:.0f}%"))
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]

    def fmt(cells: Sequence[str]) -> str:
        return " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    lines = [fmt(header), "-+-".join("-" * w for w in widths), *(fmt(row) for row in rows)]
    return "\n".join(lines)


def render(report: Report) -> str:
    """The whole printed report: the table, the first-request line, the checks."""
    parts = [table(report), ""]
    shares = [(r.label, r.cpu_shares) for s in SYSTEMS if (r := report.results.get(s)) and r.cpu_shares]
    if shares:
        parts.append("CPU during each measured run, % of all cores (server tree / PostgreSQL / wrk+harness / "
                     "others / idle):")
        width = max(len(label) for label, _ in shares)
        parts.extend(f"  {label:<{width}}  {c['server']:5.1f} / {c['postgres']:5.1f} / {c['client']:5.1f} / "
                     f"{c['others']:5.1f} / {c['idle']:5.1f}" for label, c in shares)
        parts.append("")
    first = report.first_request
    if first:
        parts.append(f"first request to a model not loaded yet ({first['model']}): {first['seconds'] * 1000:.0f} ms, "
                     f"status {first['status']}, served by {first['served_by']}, fallback {first['fallback']}")
    ours = [r for s in ("traced", "batch") if (r := report.results.get(s)) and r.rss_bytes]
    if ours:
        parts.append(f"memory of the traced service's tree (2 workers), peak: RSS sum "
                     f"{max(r.rss_bytes or 0 for r in ours) / GIB:.2f} GiB, PSS sum "
                     f"{max(r.pss_bytes or 0 for r in ours) / GIB:.2f} GiB (shared pages counted once)")
    errors = [f"{r.system}: {r.error.splitlines()[0]}" for r in report.results.values() if r.error]
    busy = {r.system: round(r.others_cpu) for r in report.results.values() if (r.others_cpu or 0) > BUSY_CPU}
    if busy:
        parts.append(f"NOTE: other processes took CPU during these runs (% of all cores): {busy}; "
                     "their numbers are noisy (see 'others CPU')")
    parts.extend(f"ERROR {e}" for e in errors)
    unanswered = {r.system: r.load.unanswered for r in report.results.values() if r.load and r.load.unanswered}
    if unanswered:
        parts.append(f"NOTE: requests still unanswered when wrk stopped (their traces may be counted): {unanswered}")
    repeated = [(r.label, r.runs) for s in SYSTEMS if (r := report.results.get(s)) and len(r.runs) > 1]
    if repeated:
        parts.append("runs of each system (the table shows the median run): req/s (rows/s for the batch), "
                     "connections per worker:")
        parts.extend(f"  {label}: " + ", ".join(
            f"{run['rows_per_s'] if 'batch' in label else run['requests_per_s']:,.0f} "
            f"({'/'.join(map(str, run['connection_split'])) or '-'})" for run in runs) for label, runs in repeated)
    if report.options.get("quick"):
        parts.append("NOTE: --quick is a smoke run of the harness: too short to measure anything")
    parts.append("")
    parts.extend(c.line() for c in checks(report))
    return "\n".join(parts)


def to_json(report: Report) -> dict[str, Any]:
    """The report as plain JSON data."""
    results = {}
    for system, r in report.results.items():
        data = asdict(r)
        if r.load is not None:
            data["load"]["requests_per_s"] = r.load.requests_per_s
            data["load"]["rows_per_s"] = r.load.rows_per_s
        data["traces_match"] = r.traces_match
        results[system] = data
    return {"options": report.options, "machine": report.machine, "results": results,
            "first_request": report.first_request,
            "checks": [asdict(c) for c in checks(report)]}


# ---- command line --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> tuple[Options, argparse.Namespace]:
    """Options from the command line (``--quick`` sets short runs and fewer connections)."""
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, help="measured seconds per system (default 20; --quick: 2)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds before each measured run (default 5; quick: 1)")
    parser.add_argument("--drain", type=float, default=30.0,
                        help="at most this many seconds for the answers in flight after a run (default 30)")
    parser.add_argument("--connections", type=int, help="concurrent connections (default 64; --quick: 16)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: leave the cores to servers)")
    parser.add_argument("--batch-rows", type=int, default=100, help="rows per /predict_batch call (default 100)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: a few seconds per system")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated subset of {','.join(SYSTEMS)}")
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR, help="models/ to serve")
    parser.add_argument("--postgres", default=os.environ.get("FUTURISYS_BENCH_POSTGRES", DEFAULT_ADMIN_URL),
                        help="admin URL of the PostgreSQL server, where a fresh database is created for the run")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for every server, e.g. FUTURISYS_MAX_LATENCY_MS=10 (repeatable)")
    parser.add_argument("--keep-db", action="store_true", help="keep the run's database")
    parser.add_argument("--workdir", type=Path, help="keep bodies, wrk outputs and server logs here")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record py-spy profiles of the server processes during measured runs (skews results)")
    parser.add_argument("--wait-quiet", type=float, metavar="SECONDS",
                        help="before each server, wait up to this long for the machine's CPU to go quiet "
                             "(default 60; --quick: 0)")
    parser.add_argument("--recycle", type=int, default=0, metavar="N",
                        help="one request in N asks for 'Connection: close', so connections come and go and "
                             "spread over the workers (default 0: keep-alive for the whole run)")
    parser.add_argument("--repeat", type=int,
                        help="measured runs per system, each with new connections (split anew among the workers); "
                             "the median run is kept (default 3; --quick: 1)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    systems = tuple(s.strip() for s in args.systems.split(",") if s.strip())
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; choose among {', '.join(SYSTEMS)}")
    env = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--env expects KEY=VALUE, got {item!r}")
        env[key] = value
    quick = args.quick
    options = Options(
        duration_s=args.duration if args.duration is not None else (2.0 if quick else 20.0),
        warmup_s=args.warmup if args.warmup is not None else (1.0 if quick else 5.0),
        drain_s=args.drain,
        connections=args.connections if args.connections is not None else (16 if quick else 64),
        threads=args.threads, batch_rows=args.batch_rows, bodies=400 if quick else 2000, systems=systems,
        models_dir=args.models_dir.resolve(), admin_url=args.postgres, env=env, keep_db=args.keep_db,
        workdir=args.workdir, profile_dir=args.profile,
        wait_quiet_s=args.wait_quiet if args.wait_quiet is not None else (0.0 if quick else 60.0), quick=quick,
        repeat=args.repeat if args.repeat is not None else (1 if quick else 3), recycle=args.recycle)
    return options, args


def _raise_on_sigterm(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the servers


def run(options: Options) -> Report:
    """Run the whole benchmark; servers and the database are cleaned up whatever happens."""
    if not (options.models_dir / "aliases.json").is_file():
        raise BenchmarkError(f"no models in {options.models_dir} (models/<name>/<version>/ and aliases.json)")
    wrk = ensure_wrk()
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="futurisys-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        with fresh_database(options.admin_url, options.keep_db) as database_url:
            bench = Bench(options, wrk, database_url, workdir)
            bench.report.machine = {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / GIB, 1),
                                    "python": sys.version.split()[0],
                                    "wrk": subprocess.run([wrk, "--version"], capture_output=True,
                                                          text=True).stdout.splitlines()[0:1]}
            try:
                return bench.run()
            finally:
                bench.close()
    finally:
        if options.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark from the command line; 0 when every system ran (1 with --check and a miss)."""
    options, args = parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        print(f"benchmark: {options.duration_s:g} s per system after {options.warmup_s:g} s of warm-up, "
              f"{options.connections} connections, systems {','.join(options.systems)}"
              + (f", env {options.env}" if options.env else ""), flush=True)
        report = run(options)
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    print()
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(to_json(report), indent=2))
    if any(r.error for r in report.results.values()):
        return 2
    if args.check and any(c.passed is False for c in checks(report)):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
