"""Every fault scenario of the Stalls and the Crashes issues, against real servers; one table of figures.

    python3 -m benchmarks.faults                      # the long versions (about 4 minutes)
    python3 -m benchmarks.faults --lock-s 3 --fault-s 2 --deadline-ms 1000   # shorter

Each scenario runs ``bentoml serve`` under load (``tests.service.stalls``)
against a throw-away PostgreSQL cluster and counts, from the clients'
answers and the trace table: answers (requests started during the fault),
200s, traces found (200s of the whole run whose trace is stored), lost (a
200 whose request id has no trace), duplicated (a request id stored twice),
traces without a 200 (requests cut off by the fault after their trace was
stored: shown, not an error), 5xx and the p95 latency during the fault.

The Stalls scenarios run on one service started while its database is
down. The Crashes scenarios run on instances that share one state
directory and one cluster, each on its own database: ``main`` (two
workers), ``staging`` (one worker, a journal cap) and ``tiny-disk`` (its
state directory on a 1 MiB tmpfs: needs root to mount, skipped otherwise).
Exit code 1 when any scenario lost or duplicated a trace.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.pgcluster import PostgresCluster
from tests.service.stalls import (TRACE_DATABASE, Crash, Figures, Overflow, connect, fill_journal, freeze_database,
                                  journal_unwritable_outage, kill_worker_during_outage, kill_writer_task, lock_table,
                                  read_only_database, replicas_outage, run_fault, run_loaded, serve_on,
                                  stalled_service, table, terminate_server, together)


def stalls(workdir: Path, lock_s: float, fault_s: float, deadline_ms: int) -> list[Figures]:
    """The Stalls issue's scenarios on one service started while its database is down."""
    results = []
    with stalled_service(workdir, deadline_ms, database_down=True) as service:
        def outage_then_back() -> None:
            time.sleep(fault_s)
            service.cluster.start()

        def kill_task() -> None:
            kill_writer_task(service)
            time.sleep(fault_s)

        for scenario, fault, before_s in (
                (f"start during an outage ({fault_s:g} s)", outage_then_back, 0.0),
                (f"table locked {lock_s:g} s", lambda: lock_table(service, lock_s), 2.0),
                (f"database frozen (SIGSTOP) {fault_s:g} s", lambda: freeze_database(service, fault_s), 2.0),
                (f"read-only database {fault_s:g} s", lambda: read_only_database(service, fault_s), 2.0),
                ("writer task killed", kill_task, 2.0),
                (f"journal unwritable, database down {fault_s:g} s",
                 lambda: journal_unwritable_outage(service, fault_s), 2.0)):
            result, _ = run_fault(service, scenario, fault, before_s=before_s, after_s=2.0)
            print(result.line(), file=sys.stderr)
            results.append(result)
    return results


@contextmanager
def tiny_disk(directory: Path) -> Iterator[Path | None]:
    """A 1 MiB tmpfs at ``directory`` (None when it cannot be mounted), unmounted after."""
    directory.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(directory)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        print(f"disk-full scenario skipped: {mounted.stderr.strip()}", file=sys.stderr)
        yield None
        return
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def crashes(workdir: Path, fault_s: float, deadline_ms: int, journal_max_bytes: int) -> list[Figures]:
    """The Crashes issue's scenarios on instances sharing one state directory, each on its own database."""
    results: list[Figures] = []
    state_dir = workdir / "state"
    with PostgresCluster() as cluster, tiny_disk(workdir / "tiny-disk") as small, ExitStack() as stack:
        with connect(cluster) as admin:
            for database in (TRACE_DATABASE, "staging", "tiny_disk"):
                admin.execute(f"CREATE DATABASE {database}")
        managers = [serve_on(cluster, workdir, deadline_ms, state_dir=state_dir, name="main",
                             extra_env={"FUTURISYS_WORKERS": "2"}),
                    serve_on(cluster, workdir, deadline_ms, database="staging", state_dir=state_dir, name="staging",
                             extra_env={"FUTURISYS_JOURNAL_MAX_BYTES": str(journal_max_bytes)})]
        if small is not None:
            managers.append(serve_on(cluster, workdir, deadline_ms, database="tiny_disk", state_dir=small,
                                     name="tiny-disk"))
        services = stack.enter_context(together(*managers))
        main, staging = services[0], services[1]

        replicas, crossed = replicas_outage([main, staging], fault_s, before_s=2.0, after_s=2.0)
        print(f"answered ids stored in the other instance's database: {crossed}", file=sys.stderr)
        results += replicas

        crash: list[Crash] = []
        result, _ = run_fault(main, "worker killed (SIGKILL) mid-outage",
                              lambda: kill_worker_during_outage(main, fault_s, crash, wait_serving=True),
                              before_s=2.0, after_s=2.0)
        results.append(result)
        print(f"{result.line()}\n  killed worker's journals replayed and deleted: "
              f"{not any(p.exists() for p in crash[0].journals)}; new process after "
              f"{crash[0].respawned_after_s} s, serving after {crash[0].serving_after_s} s", file=sys.stderr)

        for service, scenario in ((staging, "journal full (cap)"), *(
                [(services[2], "disk full (1 MiB tmpfs)")] if small is not None else [])):
            seen = Overflow()
            result, _ = run_loaded(service, scenario, lambda load, s=service, o=seen: fill_journal(s, load, o),
                                   before_s=2.0, after_s=2.0)
            results.append(result)
            print(f"{result.line()}\n  {seen}", file=sys.stderr)

        exited: list[float] = []
        result, _ = run_fault(main, "SIGTERM under load", lambda: exited.append(terminate_server(main)),
                              before_s=2.0, after_s=0.5)
        results.append(result)
        print(f"{result.line()}\n  exited {exited[0]:.1f} s after SIGTERM", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    """Run every scenario, print the table; 1 when a trace was lost or duplicated."""
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.faults", description=__doc__.split("\n")[0])
    parser.add_argument("--lock-s", type=float, default=12.0, help="how long the table stays locked")
    parser.add_argument("--fault-s", type=float, default=5.0, help="how long the other faults last")
    parser.add_argument("--deadline-ms", type=int, default=2000, help="FUTURISYS_COMMIT_DEADLINE_MS")
    parser.add_argument("--journal-max-bytes", type=int, default=2_000_000,
                        help="FUTURISYS_JOURNAL_MAX_BYTES of the staging instance (reached by its full-journal run)")
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="futurisys-faults-") as workdir:
        results = stalls(Path(workdir) / "stalls", arguments.lock_s, arguments.fault_s, arguments.deadline_ms)
        results += crashes(Path(workdir) / "crashes", arguments.fault_s, arguments.deadline_ms,
                           arguments.journal_max_bytes)
    print(table(results))
    return 1 if any(result.lost or result.duplicated for result in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
