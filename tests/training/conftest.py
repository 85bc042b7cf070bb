"""Fixtures of the training tests: synthetic extracts, and one real training run shared by the session."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

from training.train import TrainingResult, train_all


@pytest.fixture(autouse=True, scope="session")
def _single_threaded() -> Iterator[None]:
    """Fit models on one thread, as training does: faster on these small sets, same results."""
    with threadpool_limits(limits=1):
        yield


def manifest_of(models: Path) -> Path:
    """The trusted manifest a test keeps beside a models folder of its own (never inside it)."""
    return models.with_name(f"{models.name}.trusted.json")


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, extracts_dir: Path) -> tuple[Path, list[TrainingResult]]:
    """All four models trained once on the real extracts into a fresh models folder (first run: promotes).

    Its versions are pinned in a fresh manifest, :func:`manifest_of` the folder.
    """
    out = tmp_path_factory.mktemp("models")
    return out, train_all(extracts_dir, out, log=lambda _: None, manifest=manifest_of(out))
