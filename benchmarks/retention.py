"""The retention purge on 1,000,000 traces in PostgreSQL, while a real service answers a bounded load.

``python3 -m benchmarks.retention`` creates a throw-away database on the
server of ``--admin-url`` (default: 127.0.0.1:5432), fills it by ``COPY`` with
``--rows`` synthetic traces spread over ``--days`` days (as
``benchmarks.dashboard_scale`` does), starts ``bentoml serve`` against it,
and drives ``POST /predict`` with wrk at a bounded concurrency
(``--connections``, closed loop). It measures the service for
``--before-s`` seconds, then runs the real command ``python -m persistence
purge --older-than-days 30`` and keeps measuring in back-to-back windows of
``--window-s`` seconds while it runs. It prints the rows deleted, the
batches, the purge's duration, the service's p50/p99 before and during the
purge (during: the request-weighted p50 and the worst window's p99), non-2xx
answers, and the traces the writer journaled (a stalled writer journals past
its commit deadline). The database is dropped at the end unless ``--keep``.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from benchmarks.common import HOST  # noqa: E402
from benchmarks.dashboard_scale import fill  # noqa: E402
from benchmarks.database import checkpoint, count_rows, fresh_database  # noqa: E402
from benchmarks.load import Load, drive, ensure_wrk, write_bodies  # noqa: E402
from benchmarks.processes import running  # noqa: E402

PURGED = re.compile(r"purged (\d+) trace\(s\) .* in (\d+) batch\(es\) of at most \d+, ([\d.]+) s")


def _metric(url: str, name: str) -> float:
    """The sum of a metric's samples on the service's /metrics (0 when absent)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def _describe(label: str, loads: list[Load]) -> str:
    answers = sum(load.ok_responses + load.non_2xx for load in loads)
    p50 = sum(load.latency_ms["p50"] * (load.ok_responses + load.non_2xx) for load in loads) / max(answers, 1)
    p99 = max(load.latency_ms["p99"] for load in loads)
    window = sum(load.window_s for load in loads)
    non_2xx = sum(load.non_2xx for load in loads)
    return (f"{label:16} {answers:>8} answers  {answers / window if window else 0:7.0f}/s  p50 {p50:7.1f} ms  "
            f"p99 {p99:7.1f} ms  non-2xx {non_2xx}")


def main(argv: list[str] | None = None) -> int:
    """Fill, serve, load, purge; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--older-than-days", type=int, default=30)
    parser.add_argument("--connections", type=int, default=4, help="wrk connections (the bounded concurrency)")
    parser.add_argument("--workers", type=int, default=1, help="BentoML worker processes")
    parser.add_argument("--before-s", type=float, default=20.0)
    parser.add_argument("--window-s", type=float, default=5.0)
    parser.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    args = parser.parse_args(argv)

    wrk = ensure_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="futurisys-retention-"))
    bodies, _ = write_bodies(workdir, 500, 10)
    with fresh_database(args.admin_url, keep=args.keep) as url:
        print(f"filling {args.rows:,} traces over {args.days} days...", file=sys.stderr)
        print(f"filled in {fill(url, args.rows, args.days, seed=0):.0f} s", file=sys.stderr)
        engine = sa.create_engine(url)
        checkpoint(engine)
        before_rows = count_rows(engine, "prediction_traces")
        env = {**os.environ, "DATABASE_URL": url, "FUTURISYS_STATE_DIR": str(workdir / "state"),
               "BENTOML_HOME": str(workdir / "bentoml"), "FUTURISYS_WORKERS": str(args.workers),
               "FUTURISYS_ACCESS_LOG": "false", "PYTHONUNBUFFERED": "1"}

        def launch(port: int) -> tuple[list[str], dict[str, str]]:
            return [sys.executable, "-m", "bentoml", "serve", "service:AttritionService", "--host", HOST,
                    "--port", str(port)], env

        with running("service", launch, workdir / "service.log") as server:
            target = f"{server.url}/predict"
            drive(wrk, target, bodies, 3, 10, args.connections, 1, workdir / "warmup.txt")
            before = drive(wrk, target, bodies, args.before_s, 10, args.connections, 1, workdir / "before.txt")
            journaled_before = _metric(server.url, "futurisys_trace_journaled_total")
            started = time.perf_counter()
            purge = subprocess.Popen(
                [sys.executable, "-m", "persistence", "purge", "--older-than-days", str(args.older_than_days)],
                cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            during: list[Load] = []
            while purge.poll() is None:
                during.append(drive(wrk, target, bodies, args.window_s, 10, args.connections, 1,
                                    workdir / f"during-{len(during)}.txt"))
            wall_s = time.perf_counter() - started
            out, err = purge.communicate()
            journaled = _metric(server.url, "futurisys_trace_journaled_total") - journaled_before
        after_rows = count_rows(engine, "prediction_traces")
        engine.dispose()
        found = PURGED.search(out)
        if purge.returncode != 0 or found is None:
            print(f"purge failed ({purge.returncode}):\n{out}\n{err}", file=sys.stderr)
            return 1
        deleted, batches, seconds = int(found[1]), int(found[2]), float(found[3])
        print(f"\nRetention purge on PostgreSQL: {args.rows:,} traces over {args.days} days, everything older than "
              f"{args.older_than_days} days")
        print(f"  rows deleted     {deleted:,} in {batches} batches ({deleted / max(batches, 1):,.0f} rows each)")
        print(f"  purge duration   {seconds:.1f} s (command wall time {wall_s:.1f} s, "
              f"{deleted / max(seconds, 1e-9):,.0f} rows/s)")
        print(f"  traces           {before_rows:,} before the load, {after_rows:,} after (the load added some)")
        print(f"  load             wrk, {args.connections} connections, POST /predict, {args.workers} worker(s)")
        print("  " + _describe("before the purge", [before]))
        print("  " + _describe("during the purge", during) + f"  ({len(during)} windows of {args.window_s:g} s)")
        print(f"  journaled during the purge: {journaled:.0f} trace(s) (0: the writer never missed its deadline)")
        if not args.keep:
            print(f"  logs in {workdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
