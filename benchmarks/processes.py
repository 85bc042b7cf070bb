"""The servers under test as processes: ports, starting and stopping them, their memory and CPU.

``running`` starts a server in its own process group, waits until ``/readyz``
answers 200 from that very server, and stops the whole group afterwards. A
start that loses its port to another process is retried on a fresh port (see
``running``). ``RssSampler`` and ``CpuAccount`` account for the memory of a
process tree and for where the machine's CPU went during a measured run.
"""
from __future__ import annotations

import math
import os
import re
import resource
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from benchmarks.common import HOST, PROJECT_ROOT, BenchmarkError

PORT_ATTEMPTS = 4
"""Starts of one server at most, each on a fresh port, when the previous one lost its port."""
ADDRESS_IN_USE = re.compile(r"address already in use|EADDRINUSE|\[Errno 98\]", re.IGNORECASE)
"""What a server's log shows when a bind failed: Python's OSError, uvicorn's message, ZMQError (BentoML's circus)."""

Launch = Callable[[int], tuple[Sequence[str], dict[str, str]]]
"""Given a port, the command that serves on it and its environment."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


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
class PortRetry:
    """A start of a server that lost its port: the port, and what showed it."""

    port: int
    reason: str


class PortLost(BenchmarkError):
    """A server could not have its port, or one of its internal ports: another process holds it."""

    def __init__(self, name: str, port: int, reason: str, log: str) -> None:
        super().__init__(f"{name} lost port {port} to another process ({reason}):\n{log}")
        self.port = port
        self.reason = reason


@dataclass
class Server:
    """A system under test running in its own process group."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    ready_s: float
    port: int = 0
    port_retries: list[PortRetry] = field(default_factory=list)

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


def port_is_taken(port: int) -> bool:
    """Whether some process listens on ``port`` of 127.0.0.1 (a bind with SO_REUSEADDR fails)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
        return False


def listens_on(pid: int, port: int) -> bool | None:
    """Whether the process ``pid`` or one of its descendants listens on ``port``; None when it cannot be told."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return False
    readable = False
    for process in processes:
        try:
            sockets = process.net_connections(kind="tcp")
        except psutil.Error:
            continue
        readable = True
        if any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in sockets):
            return True
    return False if readable else None


def port_loss(log: str, port: int) -> str | None:
    """Why a server that died before it was ready lost its port, or None when it died of something else.

    Either its log shows a failed bind (the HTTP port or an internal one, such
    as the ZMQ endpoints of BentoML's process manager), or another process now
    listens on its HTTP port. Call it once the server's whole process group is
    gone, so that none of its own sockets are left.
    """
    match = ADDRESS_IN_USE.search(log)
    if match is not None:
        start = log.rfind("\n", 0, match.start()) + 1
        end = log.find("\n", match.end())
        return log[start:end if end >= 0 else len(log)].strip()[:300]
    if port_is_taken(port):
        return f"another process listens on port {port}"
    return None


def _start(name: str, command: Sequence[str], env: dict[str, str], log_path: Path, port: int,
           timeout_s: float) -> Server:
    """Start one server on ``port`` and wait until it answers ``/readyz`` 200; raises ``PortLost`` if it lost it."""
    url = f"http://{HOST}:{port}"
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(list(command), cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = Server(name, url, process, log_path, math.nan, port)
    try:
        with httpx.Client(timeout=2.0) as client:
            while True:
                if process.poll() is not None:
                    stop_process_group(process)  # its children too, before looking who holds the port
                    reason = port_loss(log_path.read_text(errors="replace"), port)
                    if reason is not None:
                        raise PortLost(name, port, reason, server.log_tail())
                    raise BenchmarkError(f"{name} exited with {process.returncode} before it was ready:\n"
                                         f"{server.log_tail()}")
                try:
                    if client.get(f"{url}/readyz").status_code == 200:
                        if listens_on(process.pid, port) is False:  # someone else's server answered
                            raise PortLost(name, port, f"another process answers on port {port}", server.log_tail())
                        break
                except httpx.HTTPError:
                    pass
                if time.perf_counter() - started > timeout_s:
                    raise BenchmarkError(f"{name} not ready after {timeout_s:.0f} s:\n{server.log_tail()}")
                time.sleep(0.05)
    except BaseException:
        stop_process_group(process)
        raise
    server.ready_s = time.perf_counter() - started
    return server


@contextmanager
def running(name: str, launch: Launch, log_path: Path, port: int | None = None, timeout_s: float = 120.0,
            attempts: int = PORT_ATTEMPTS) -> Iterator[Server]:
    """Start the server ``launch(port)`` describes, wait for ``/readyz`` 200 from it, stop its process group after.

    ``port`` is the first port tried (a free one when None). A start that loses
    its port to another process (the port was taken between ``free_port()`` and
    the bind, or an internal port of the server was) is stopped and retried on a
    fresh free port, ``attempts`` starts at most; each retry is printed and
    recorded in ``Server.port_retries``, and the log of the lost start is kept
    next to ``log_path`` (``<name>.port-<port>.log``). ``ready_s`` is the time to
    ready of the start that succeeded. Any other failure is not retried.
    """
    port = free_port() if port is None else port
    retries: list[PortRetry] = []
    while True:
        command, env = launch(port)
        try:
            server = _start(name, command, env, log_path, port, timeout_s)
            break
        except PortLost as lost:
            retries.append(PortRetry(port, lost.reason))
            try:
                log_path.replace(log_path.with_name(f"{log_path.stem}.port-{port}{log_path.suffix}"))
            except OSError:
                pass
            if len(retries) >= attempts:
                raise BenchmarkError(f"{name} lost its port to another process at each of {attempts} starts "
                                     f"(ports {', '.join(str(r.port) for r in retries)}); last: {lost}") from lost
            port = free_port()
            print(f"   {name}: port {retries[-1].port} lost to another process ({lost.reason}); "
                  f"retrying on port {port} (start {len(retries) + 1} of {attempts})", flush=True)
    server.port_retries = retries
    try:
        yield server
    finally:
        stop_process_group(server.process)
