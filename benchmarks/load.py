"""The load: the request bodies wrk posts, ``wrk`` itself (installed when missing), one driven run and its figures.

``drive`` runs wrk with ``post.lua``, which cycles through JSON bodies of
synthetic employees, stops sending at the end of the measured window, waits
for the answers in flight and prints one ``BENCH_RESULT`` JSON line; ``Load``
is that line read back.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from attrition.synthetic import synthetic_employees
from benchmarks.common import BenchmarkError

LUA_SCRIPT = Path(__file__).resolve().with_name("post.lua")


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


def write_bodies(folder: Path, count: int, batch_rows: int, seed: int = 2024, explain: bool = False,
                 ) -> tuple[Path, Path]:
    """Write the bodies wrk cycles through: ``count`` single-employee bodies, and batches of ``batch_rows``.

    With ``explain``, the same bodies ask ``"explain": true`` (files ``explained_*.jsonl``).
    """
    extra = {"explain": True} if explain else {}
    prefix = "explained_" if explain else ""
    employees = synthetic_employees(count, seed)
    single = folder / f"{prefix}predict.jsonl"
    single.write_text("".join(json.dumps({"employee": e, **extra}, ensure_ascii=False) + "\n" for e in employees),
                      encoding="utf-8")
    batches = max(8, min(64, count // batch_rows))
    pool = synthetic_employees(batches * batch_rows, seed + 1)
    batch = folder / f"{prefix}predict_batch.jsonl"
    batch.write_text("".join(
        json.dumps({"employees": pool[i * batch_rows:(i + 1) * batch_rows], **extra}, ensure_ascii=False) + "\n"
        for i in range(batches)), encoding="utf-8")
    return single, batch


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
