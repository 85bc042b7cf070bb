"""The results and how they are reported: one row per system, the targets checked, the table, the JSON."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.common import GIB, MIB, SYSTEMS, TRACED
from benchmarks.load import Load

BUSY_CPU = 10.0
"""Above this share of all cores taken by other processes during a run, the report says its figures are noisy."""


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
    port_retries: list[dict[str, Any]] = field(default_factory=list)

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


def _explained_lines(report: Report) -> list[str]:
    """What ``"explain": true`` costs: each explained system next to the same requests without it."""
    lines = []
    for plain, explained, rows in (("traced", "explained", False), ("batch", "explained_batch", True)):
        with_it, without = _rate(report, explained, rows=rows), _rate(report, plain, rows=rows)
        ratio = _ratio(with_it, without)
        if ratio is not None:
            unit = "rows/s" if rows else "req/s"
            lines.append(f"explain: true on {'/predict_batch' if rows else '/predict'}: {with_it:,.0f} {unit} "
                         f"against {without:,.0f} without ({ratio:.2f}x), the default model")
    return lines


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
    parts.extend(_explained_lines(report))
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
