"""Fixtures of the prediction layer tests: a layer over the committed models, a real database and writer."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from persistence.database.engine import make_engine
from persistence.database.migrate import upgrade
from persistence.trace.writer import TraceWriter
from predictions.layer import PredictionLayer
from registry.catalogue import ModelCatalogue
from registry.runner import RunnerPool
from tests.registry.conftest import MODELS_DIR, imported  # noqa: F401  (the session fixture)

BATCH_CAP = 5


class RunningLayer:
    """A started :class:`PredictionLayer` and the event loop it runs in (tests call it synchronously)."""

    def __init__(self, layer: PredictionLayer) -> None:
        self.layer = layer
        self.loop = asyncio.new_event_loop()
        self.run(layer.start())

    def run(self, awaitable):
        """Run one coroutine of the layer to completion."""
        return self.loop.run_until_complete(awaitable)

    def close(self) -> None:
        """Stop the layer (its writer commits what is pending) and its loop."""
        self.run(self.layer.close())
        self.loop.close()


def running_layer(database_url: str, tmp_path: Path, catalogue: ModelCatalogue, **writer_options) -> RunningLayer:
    """A layer over ``catalogue`` tracing into ``database_url`` (migrated here), its journal in ``tmp_path``."""
    upgrade(database_url, lock_dir=tmp_path)
    engine = make_engine(database_url)
    writer = TraceWriter(engine, journal_dir=tmp_path / "journal", **writer_options)
    layer = PredictionLayer(catalogue, RunnerPool(catalogue, 64, 1.0), engine, writer, max_batch_rows=BATCH_CAP)
    return RunningLayer(layer)


@pytest.fixture
def catalogue(imported) -> ModelCatalogue:  # noqa: F811
    """The committed models, as the store holds them."""
    return ModelCatalogue.from_store(MODELS_DIR)


@pytest.fixture
def layer(database_url: str, tmp_path: Path, catalogue: ModelCatalogue) -> Iterator[RunningLayer]:
    """A running layer on SQLite, then on PostgreSQL."""
    running = running_layer(database_url, tmp_path, catalogue)
    yield running
    running.close()
