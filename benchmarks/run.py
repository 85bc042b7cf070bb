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

The parts: ``benchmarks.bench`` (the run, system by system),
``benchmarks.processes`` (servers, ports, memory and CPU of a process tree),
``benchmarks.load`` (request bodies, wrk), ``benchmarks.database`` (the run's
database), ``benchmarks.report`` (results, targets, table, JSON); this module
is the command line.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from benchmarks.bench import (DEFAULT_ADMIN_URL, DEFAULT_MODELS_DIR, Bench, Options, Run, not_yet_loaded_model,
                              server_env, time_first_request)
from benchmarks.common import (GIB, HOST, LABELS, MIB, PROJECT_ROOT, SYSTEMS, TRACE_TABLES, TRACED,
                               BenchmarkError)
from benchmarks.database import checkpoint, count_rows, fresh_database
from benchmarks.load import LUA_SCRIPT, Load, drive, ensure_wrk, write_bodies
from benchmarks.processes import (CpuAccount, PortLost, PortRetry, RssSampler, Server, connections_per_process,
                                  free_port, running, stop_process_group, tree_memory, wait_for_quiet)
from benchmarks.report import BUSY_CPU, Check, Report, SystemResult, checks, render, table, to_json

__all__ = [  # what this module held before it was split, still importable from here
    "BUSY_CPU", "DEFAULT_ADMIN_URL", "DEFAULT_MODELS_DIR", "GIB", "HOST", "LABELS", "LUA_SCRIPT", "MIB",
    "PROJECT_ROOT", "SYSTEMS", "TRACED", "TRACE_TABLES", "Bench", "BenchmarkError", "Check", "CpuAccount", "Load",
    "Options", "PortLost", "PortRetry", "Report", "RssSampler", "Run", "Server", "SystemResult", "checkpoint",
    "checks", "connections_per_process", "count_rows", "drive", "ensure_wrk", "free_port", "fresh_database",
    "main", "not_yet_loaded_model", "parse_args", "render", "run", "running", "server_env", "stop_process_group",
    "table", "time_first_request", "to_json", "tree_memory", "wait_for_quiet", "write_bodies",
]


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
