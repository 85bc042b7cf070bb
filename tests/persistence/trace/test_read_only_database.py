"""A database that answers SELECT 1 but refuses writes: the replay backs off, holds its files, and says so."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from persistence.database.migrate import upgrade
from persistence.trace.writer import TraceWriter
from tests.conftest import POSTGRES_ADMIN_URL
from tests.persistence.factories import make_trace

SIMULATED_S = 3600.0  # an hour of the replay's own schedule
INTERVAL_S = 2.0  # the default replay interval
WARM_UP_PASSES = 8  # pools, the first journal file and its lock open during these
# Descriptors that come and go without a leak: a pool's connections (the writer's, the replay's probe) opened or
# closed between two samples. A leak of one per pass grows past this within the hour's first dozen passes.
CHURN = 6


def open_descriptors() -> int:
    """File descriptors this process holds now."""
    return len(os.listdir("/proc/self/fd"))


def set_read_only(url: str, on: bool) -> None:
    """Make every new session of ``url``'s database read-only (a failover's read replica), or not."""
    database = sa.engine.make_url(url).database
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(
                f'ALTER DATABASE "{database}" SET default_transaction_read_only = {"on" if on else "off"}'))
    finally:
        admin.dispose()


@pytest.mark.postgres
def test_an_hour_of_a_read_only_database_leaves_the_open_descriptors_flat_and_shows_an_undrainable_journal(
        postgres_url: str, tmp_path: Path) -> None:
    upgrade(postgres_url, lock_dir=tmp_path)
    set_read_only(postgres_url, True)

    async def scenario() -> dict:
        # The test runs the passes itself, on the replay's schedule (its delay_s after each pass), a trace
        # arriving before each as under traffic: an hour of passes in seconds. (The replay's own task may run
        # a pass too meanwhile: passes take turns, and each counts.)
        writer = TraceWriter(postgres_url, journal_dir=tmp_path / "journal", replay_interval_s=INTERVAL_S)
        await writer.start()
        replayer = writer.replayer
        try:
            seen: dict = {"passes": 0, "descriptors": []}
            simulated, number = 0.0, 0
            while simulated < SIMULATED_S:
                outcome = await writer.record([make_trace(number)])
                assert outcome == "journaled"
                number += 1
                await replayer.replay_logging_failures()
                seen["passes"] += 1
                if seen["passes"] >= WARM_UP_PASSES:
                    seen["descriptors"].append(open_descriptors())
                simulated += replayer.delay_s
            seen["health"] = writer.health()
            seen["accepting"] = writer.accepting
            seen["delay_s"] = replayer.delay_s
            seen["own_files"] = len(writer.journal.own_files())
            seen["backlog"] = writer.journal.backlog_rows
            seen["recorded"] = number
            seen["gauge"] = REGISTRY.get_sample_value("futurisys_trace_replay_failing")
        finally:
            await writer.stop()
        return seen

    try:
        seen = asyncio.run(scenario())
    finally:
        set_read_only(postgres_url, False)
    descriptors = seen["descriptors"]
    assert descriptors and max(descriptors) - min(descriptors) <= CHURN, (
        f"open descriptors went from {min(descriptors)} to {max(descriptors)} over {seen['passes']} passes")
    assert seen["own_files"] <= 2 and seen["backlog"] == seen["recorded"]  # every trace kept, in two files at most
    assert seen["delay_s"] > INTERVAL_S  # backed off
    health = seen["health"]
    assert health.database_reachable and health.replay_failing and health.replay_failures >= seen["passes"] - 1
    assert "ReadOnlySqlTransaction" in (health.replay_error or "")
    assert seen["accepting"], "a database refusing writes must not make the worker unready (only a full journal)"
    assert seen["gauge"] == 1
