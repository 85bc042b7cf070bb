"""The run itself: its options, and ``Bench``, which starts each system in turn, measures it and stops it.

Each server is started on a fresh port in its own process group
(``benchmarks.processes``), warmed up and measured ``--repeat`` times with wrk
(``benchmarks.load``), its traces counted in the run's database
(``benchmarks.database``); each measured system becomes one ``SystemResult``
of the ``Report`` (``benchmarks.report``).
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from benchmarks.common import (BATCHES, EXPLAINED, HOST, LABELS, PROJECT_ROOT, SYSTEMS, TRACE_TABLES, TRACED,
                               BenchmarkError)
from benchmarks.database import checkpoint, count_rows
from benchmarks.load import Load, drive, write_bodies
from benchmarks.processes import CpuAccount, RssSampler, Server, free_port, running, wait_for_quiet
from benchmarks.report import Report, SystemResult
from registry.aliases import CHAMPION, read_aliases

DEFAULT_MODELS_DIR = PROJECT_ROOT / "models"
DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


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
        self.explained_bodies = write_bodies(workdir, options.bodies, options.batch_rows, explain=True)
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
        """The command of ``bentoml serve target`` on ``port``."""
        return [sys.executable, "-m", "bentoml", "serve", target, "--host", HOST, "--port", str(port)]

    def run(self) -> Report:
        """Start each selected system in turn, measure it, stop it; returns the report."""
        wanted = self.options.systems
        plan: list[tuple[str, tuple[str, ...]]] = [
            ("baseline", ("baseline",)),
            # Plain and explained requests to one server, interleaved: the same workers, the same warm state.
            ("traced", tuple(s for s in ("traced", "explained", "batch", "explained_batch") if s in wanted)),
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
        """The command and environment of ``server_name`` serving on ``port``."""
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
        # CPU used by others while nothing of the benchmark runs: other load makes the numbers noisy.
        background = wait_for_quiet(self.options.wait_quiet_s)
        port = free_port()  # right before the start: the less time another process has to take it
        command, _env = self._command(server_name, port)
        print(f"-- {server_name}: starting {' '.join(command[2:5])} on port {port} "
              f"(background CPU {background:.0f}%)", flush=True)
        with running(server_name, lambda p: self._command(server_name, p), self.workdir / f"{server_name}.log",
                     port=port) as server:
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
                self.report.results[system].port_retries = [asdict(retry) for retry in server.port_retries]

    def _measure(self, system: str, server: Server) -> SystemResult:
        options = self.options
        result = SystemResult(system, LABELS[system], options.connections, ready_s=server.ready_s)
        single, batch = self.explained_bodies if system in EXPLAINED else (self.single_bodies, self.batch_bodies)
        path, bodies = ("/predict_batch", batch) if system in BATCHES else ("/predict", single)
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
                    RssSampler(server.process.pid, 1.0, port=server.port) as split:
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
