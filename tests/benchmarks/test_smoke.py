"""The benchmark harness still runs end to end: a short ``--quick`` run of every system.

No timing or throughput is asserted (this machine's speed is not the
harness's business); what must hold is that every system produced a row and
that each traced system committed exactly one trace per row it answered 2xx.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import POSTGRES_ADMIN_URL, PROJECT_ROOT, _postgres_reachable, need

pytestmark = [pytest.mark.serve, pytest.mark.postgres]

SYSTEMS = ("baseline", "traced", "untraced", "noop", "batch", "explained", "explained_batch")
TRACED = ("baseline", "traced", "batch", "explained", "explained_batch")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    """One ``python3 -m benchmarks.run --quick`` of every system: its printed report and its JSON results."""
    reachable, why = _postgres_reachable()
    need("postgres", reachable, why)
    from benchmarks.common import BenchmarkError
    from benchmarks.load import ensure_wrk

    try:
        ensure_wrk()
    except BenchmarkError as exc:
        need("wrk", False, str(exc))
    folder = tmp_path_factory.mktemp("bench")
    output = folder / "results.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--duration", "1.5", "--warmup", "0.5",
         "--connections", "8", "--postgres", POSTGRES_ADMIN_URL, "--json", str(output),
         "--workdir", str(folder / "work")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, f"benchmark failed ({completed.returncode}):\n" \
                                      f"{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}"
    return completed.stdout, json.loads(output.read_text())


def test_the_table_has_a_row_per_system(quick_run: tuple[str, dict]) -> None:
    from benchmarks.common import LABELS

    printed, results = quick_run
    assert set(results["results"]) == set(SYSTEMS)
    table_lines = [line for line in printed.splitlines() if " | " in line]
    for system in SYSTEMS:
        assert sum(line.startswith(LABELS[system]) for line in table_lines) == 1, printed
        assert results["results"][system]["error"] is None
        assert results["results"][system]["load"]["ok_responses"] > 0, system


def test_every_2xx_answer_of_a_traced_system_has_its_trace(quick_run: tuple[str, dict]) -> None:
    results = quick_run[1]["results"]
    for system in TRACED:
        load = results[system]["load"]
        assert load["ok_rows"] > 0, system
        assert results[system]["traces"] == load["ok_rows"], system
    for batch in ("batch", "explained_batch"):
        assert results[batch]["load"]["ok_rows"] == 100 * results[batch]["load"]["ok_responses"] > 0
    assert results["untraced"]["traces"] == 0


def test_the_report_lists_every_target(quick_run: tuple[str, dict]) -> None:
    printed = quick_run[0]
    for target in ("traced / baseline traced", "traced / untraced", "traced / no-op", "batch, traced (rows/s)",
                   "p99 latency", "time to ready", "first request", "RSS of the process tree",
                   "explain: true on /predict:", "explain: true on /predict_batch:"):
        assert target in printed
