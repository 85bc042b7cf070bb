"""How long each dashboard page takes on a large trace: 1,000,000 synthetic traces over 30 days in PostgreSQL.

``python3 -m benchmarks.dashboard_scale`` creates a throw-away database on
the server of ``--admin-url`` (default: 127.0.0.1:5432), migrates it, fills
it with ``COPY`` (synthetic employees drawn from the champion card, four
model versions, a fifth of the rows in batches, 1 % errors, in time order as
the service appends them), then runs every
page with Streamlit's AppTest for the default window (last 24 hours, about
33,000 traces) and for all traces, and prints the seconds of each run (the
query cache cleared before each; one warm-up run first). Target: under 2 s per
page for the 24 h window. It drops the database at the end unless ``--keep``.
"""
from __future__ import annotations

import argparse
import io
import json
import random
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from attrition.schema import FEATURE_NAMES  # noqa: E402
from dashboard.demo_traffic import champion_references, reference_employee  # noqa: E402
from persistence.database.migrate import upgrade  # noqa: E402
from settings import settings  # noqa: E402

PAGES = ("service", "predictions", "models", "drift")
MODELS = (("logistic_regression", "v1", 0.6), ("gradient_boosting", "v1", 0.2), ("random_forest", "v1", 0.15),
          ("baseline", "v1", 0.05))
COLUMNS = ("request_id", "received_at", "endpoint", "requested_model", "employee_id", "batch_index", "inputs",
           "model_name", "model_version", "model_sha256", "service_version", "prediction", "probability",
           "threshold", "fallback", "status", "error", "inference_ms", "total_ms", "created_at")
BATCH_SIZE = 10
BATCH_CALL_SHARE = 0.025
"""Share of calls that are batches of BATCH_SIZE rows: about a fifth of the rows."""
EMPLOYEE_POOL = 5_000


def _cards() -> dict[tuple[str, str], dict]:
    cards = {}
    for name, version, _ in MODELS:
        path = Path(settings.models_dir) / name / version / "card.json"
        cards[(name, version)] = json.loads(path.read_text(encoding="utf-8"))
    return cards


def _copy_text(value: object) -> str:
    if value is None:
        return "\\N"
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def trace_lines(rows: int, days: int, seed: int, first: int = 0, total: int | None = None) -> io.StringIO:
    """Traces ``first`` to ``first + rows`` of ``total`` spread evenly over the last ``days`` days, oldest first.

    As the text of a ``COPY`` (tab-separated). The service appends traces as
    they come, so the table is in time order on disk, as here.
    """
    rng = random.Random(seed)
    references = champion_references(Path(settings.models_dir))
    pool = []
    for _ in range(EMPLOYEE_POOL):
        employee = reference_employee(rng, references)
        if rng.random() < 0.2:  # some drift to find
            employee["heure_supplementaires"] = "Oui"
        pool.append(json.dumps({name: employee[name] for name in FEATURE_NAMES}, ensure_ascii=False))
    cards = _cards()
    weights = [w for *_, w in MODELS]
    now = datetime.now(timezone.utc)
    span_s = days * 86_400
    step_s = span_s / (total or rows)
    buffer = io.StringIO()
    written = 0
    while written < rows:
        name, version, _ = rng.choices(MODELS, weights=weights)[0]
        card = cards[(name, version)]
        size = BATCH_SIZE if rng.random() < BATCH_CALL_SHARE else 1
        size = min(size, rows - written)
        received = now - timedelta(seconds=span_s - (first + written + rng.random()) * step_s)
        for index in range(size):
            error = rng.random() < 0.01
            probability = None if error else round(rng.betavariate(1.2, 5.0), 6)
            total = 2.0 + rng.expovariate(1 / 6.0)
            values = (uuid.uuid4(), received.isoformat(), "predict_batch" if size > 1 else "predict", name,
                      rng.randint(1, 2_000) if rng.random() < 0.3 else None, index if size > 1 else None,
                      rng.choice(pool), name, version, card["artifact_sha256"], "1.0.0",
                      None if error else int(probability >= card["threshold"]), probability, card["threshold"],
                      "t" if rng.random() < 0.005 else "f", "error" if error else "ok",
                      "model call failed" if error else None, None if error else round(total * 0.2, 3),
                      round(total, 3), (received + timedelta(milliseconds=total)).isoformat())
            buffer.write("\t".join(_copy_text(v) for v in values) + "\n")
        written += size
    buffer.seek(0)
    return buffer


def fill(url: str, rows: int, days: int, seed: int) -> float:
    """Migrate the database at ``url`` and ``COPY`` the synthetic traces into it; returns the seconds taken."""
    import psycopg

    started = time.monotonic()
    upgrade(url, lock_dir=Path(settings.state_dir))
    plain = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    chunk = 200_000
    with psycopg.connect(plain) as connection:
        for offset in range(0, rows, chunk):
            text = trace_lines(min(chunk, rows - offset), days, seed + offset, offset, rows)
            with connection.cursor() as cursor:
                with cursor.copy(f"COPY prediction_traces ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                    while block := text.read(1 << 20):
                        copy.write(block)
            connection.commit()
            print(f"  {offset + min(chunk, rows - offset):,} traces", file=sys.stderr)
        connection.autocommit = True
        connection.execute("VACUUM ANALYZE prediction_traces")
    return time.monotonic() - started


def time_pages(url: str) -> dict[str, dict[str, float]]:
    """Seconds of one AppTest run of every page, for the last 24 hours and for all traces."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    settings.dashboard_database_url = url
    app_path = str(PROJECT_ROOT / "dashboard" / "app.py")
    figures: dict[str, dict[str, float]] = {}
    for window in ("Last 24 hours", "All"):
        figures[window] = {}
        for page in PAGES:
            seconds = []
            for _ in range(2):  # a warm-up run (database buffers, imports), then the measured one
                app = AppTest.from_file(app_path, default_timeout=600)
                app.session_state["window"] = window
                app.run()
                if page != "service":
                    app.switch_page(f"views/{page}.py")
                st.cache_data.clear()
                started = time.monotonic()
                app.run()
                seconds.append(time.monotonic() - started)
                if app.exception:
                    raise RuntimeError(f"{page} ({window}): {app.exception[0].value}")
            figures[window][page] = seconds[-1]
            print(f"  {window:14} {page:12} {seconds[-1]:6.2f} s", file=sys.stderr)
    return figures


def main(argv: list[str] | None = None) -> int:
    """Create, fill and measure; print the per-page figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    parser.add_argument("--url", default=None, help="measure an already filled database instead")
    args = parser.parse_args(argv)

    admin = sa.create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
    name = f"futurisys_dashboard_scale_{uuid.uuid4().hex[:8]}"
    url = args.url
    try:
        if url is None:
            with admin.connect() as connection:
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
            url = sa.engine.make_url(args.admin_url).set(database=name).render_as_string(hide_password=False)
            print(f"Filling {name} with {args.rows:,} traces over {args.days} days...", file=sys.stderr)
            print(f"filled in {fill(url, args.rows, args.days, args.seed):.0f} s", file=sys.stderr)
        figures = time_pages(url)
        print(f"\nDashboard pages on PostgreSQL, {args.rows:,} traces over {args.days} days (seconds per run):")
        print(f"{'page':12} {'24 h':>8} {'all':>8}")
        for page in PAGES:
            day, whole = figures["Last 24 hours"][page], figures["All"][page]
            print(f"{page:12} {day:8.2f} {whole:8.2f}   {'PASS' if day < 2 else 'MISS'} (24 h target < 2 s)")
        if args.keep or args.url:
            print(f"database: {url}")
    finally:
        if args.url is None and not args.keep:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
