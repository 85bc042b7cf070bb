"""Per-worker model runners: lazy, self-checked loading and adaptive batching of rows.

A :class:`ModelRunner` owns one model version inside one worker process. It
loads the artifact on first use (once, thread-safely), checks it against its
card, then serves rows: the rows of concurrent requests are grouped into one
``predict_proba`` call, bounded by ``max_batch_size`` rows and a
``max_latency_ms`` window. A model of the known layout is called through its
checked :class:`~registry.encoding.RowEncoder` (about 0.1 ms per call for the
logistic regression); any other pipeline costs milliseconds per call, and a
row inside a batch microseconds.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from prometheus_client import Counter, Histogram

from attrition.schema import CATEGORICAL_FEATURES, FEATURE_NAMES
from attrition.synthetic import synthetic_employees
from registry.catalogue import ModelCatalogue, ModelEntry
from registry.encoding import RowEncoder, matches_pipeline, row_encoder
from registry.trust import UntrustedArtifact, load_artifact

logger = logging.getLogger(__name__)

BATCH_SIZE = Histogram(
    "futurisys_runner_batch_size", "Rows per model call of a runner.", ["model", "version"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048))
INFERENCE_SECONDS = Histogram(
    "futurisys_inference_duration_seconds", "Duration of one batched model call.", ["model", "version"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))
LOAD_FAILURES = Counter(
    "futurisys_model_load_failures_total", "Models that failed to load or failed their self-check.",
    ["model", "version"])
SELF_CHECK_TOLERANCE = 1e-6
# Synthetic rows on which a fast path must reproduce its pipeline before it is used.
FAST_PATH_CHECK_ROWS = 256
CATEGORICAL = frozenset(CATEGORICAL_FEATURES)


class ModelUnavailable(RuntimeError):
    """The model cannot serve: its artifact failed to load, its self-check or a prediction."""


@dataclass
class Scores:
    """Probabilities of leaving for a group of rows, with the model call's duration."""

    probabilities: np.ndarray
    inference_ms: float


def load_checked(entry: ModelEntry) -> Any:
    """Load ``entry``'s artifact and prove it works, or raise :class:`ModelUnavailable`.

    The artifact is unpickled only through :func:`registry.trust.load_artifact`,
    which refuses bytes the trusted manifest does not pin (the catalogue
    already checked them against the card). The self-check then predicts the
    card's synthetic reference row and compares classes and probability with
    what training recorded.
    """
    card = entry.card
    if card is None:
        raise ModelUnavailable(entry.invalid_reason or "no model card")
    if not entry.artifact.is_file():
        raise ModelUnavailable(f"artifact missing: {entry.artifact}")
    try:
        model = load_artifact(entry.tag, entry.artifact, entry.manifest)
    except UntrustedArtifact as exc:
        raise ModelUnavailable(f"refused, never unpickled: {exc}") from exc
    except Exception as exc:  # any failure of a foreign artifact makes it invalid
        raise ModelUnavailable(f"artifact failed to load: {exc.__class__.__name__}: {exc}") from exc
    try:
        classes = [int(c) for c in getattr(model, "classes_", [])]
        probability = model.predict_proba(employee_frame([card.self_check.employee]))
    except Exception as exc:  # any failure of a foreign artifact makes it invalid
        raise ModelUnavailable(f"artifact failed to predict: {exc.__class__.__name__}: {exc}") from exc
    if classes != [0, 1]:
        raise ModelUnavailable(f"unexpected classes {classes}, expected [0, 1]")
    if probability.shape != (1, 2) or not np.all((probability >= 0) & (probability <= 1)):
        raise ModelUnavailable("self-check probabilities outside [0, 1]")
    if abs(float(probability[0, 1]) - card.self_check.probability) > SELF_CHECK_TOLERANCE:
        raise ModelUnavailable(
            f"self-check probability {probability[0, 1]:.6f} differs from the card's "
            f"{card.self_check.probability:.6f}")
    return model


def checked_encoder(entry: ModelEntry, model: Any) -> RowEncoder | None:
    """The array-level fast path of ``model``, if it has one and it gives the pipeline's own answers.

    Checked on the card's self-check row and on synthetic rows; a pipeline of
    another layout, or a mismatch, keeps the runner on ``model.predict_proba``.
    """
    import sklearn

    encoder = row_encoder(model)
    if encoder is None:
        logger.info("Model %s has no fast path: its pipeline layout is not the one-hot + numeric one", entry.tag)
        return None
    rows = synthetic_employees(FAST_PATH_CHECK_ROWS, seed=1)
    if entry.card is not None:
        rows.append(dict(entry.card.self_check.employee))
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        if matches_pipeline(encoder, model, rows, employee_frame(rows)):
            return encoder
    logger.warning("Model %s: the fast path does not reproduce the pipeline; the pipeline serves", entry.tag)
    return None


def employee_frame(rows: Sequence[dict[str, Any]]) -> Any:
    """The pipelines' input: a DataFrame of the 30 fields, one numpy array per column.

    Built column-wise from arrays, which costs less than ``from_records`` and
    hands the encoders integer columns as int64 directly.
    """
    import pandas as pd

    columns = {name: np.array([row[name] for row in rows], dtype=object if name in CATEGORICAL else np.int64)
               for name in FEATURE_NAMES}
    return pd.DataFrame(columns, copy=False)


def import_model_libraries() -> None:
    """Import what unpickling a pipeline needs (about a second), so a first request does not pay it.

    Models themselves still load lazily, on first use.
    """
    import importlib

    for module in ("joblib", "pandas", "sklearn.pipeline", "sklearn.compose", "sklearn.preprocessing",
                   "sklearn.impute", "sklearn.linear_model", "sklearn.ensemble", "sklearn.dummy"):
        importlib.import_module(module)


class ModelRunner:
    """Owns one lazily loaded model in this worker and batches the rows of concurrent requests."""

    def __init__(self, entry: ModelEntry, report_invalid: Callable[[ModelEntry, str], None],
                 max_batch_size: int = 64, max_latency_ms: float = 2.0) -> None:
        """A runner of ``entry``; ``report_invalid(entry, reason)`` (the catalogue's ``mark_invalid``) is told
        when the model cannot serve."""
        self.entry = entry
        self._report_invalid = report_invalid
        self.max_batch_size = max_batch_size
        self.max_latency_s = max_latency_ms / 1000.0
        self._model: Any = None
        self._encoder: RowEncoder | None = None
        self._load_lock = threading.Lock()
        self._queue: asyncio.Queue[tuple[Sequence[dict[str, Any]], asyncio.Future[Scores]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._batch_metric = BATCH_SIZE.labels(entry.name, entry.version)
        self._inference_metric = INFERENCE_SECONDS.labels(entry.name, entry.version)

    @property
    def loaded(self) -> bool:
        """True once the model is in memory."""
        return self._model is not None

    @property
    def fast_path(self) -> bool:
        """True when the loaded model serves through its checked :class:`RowEncoder`."""
        return self._encoder is not None

    def load(self) -> Any:
        """Load and self-check the model once; later calls return it. Thread-safe."""
        if self._model is not None:
            return self._model
        with self._load_lock:
            if self._model is None:
                if not self.entry.valid:
                    raise ModelUnavailable(self.entry.invalid_reason or "invalid model")
                started = time.perf_counter()
                try:
                    model = load_checked(self.entry)
                    self._encoder = checked_encoder(self.entry, model)
                    self._model = model
                except ModelUnavailable as exc:
                    LOAD_FAILURES.labels(self.entry.name, self.entry.version).inc()
                    self._report_invalid(self.entry, str(exc))
                    raise
                logger.info("Loaded %s in %.0f ms", self.entry.tag, (time.perf_counter() - started) * 1000)
        return self._model

    def predict_now(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        """Probabilities of class 1 for ``rows``, in the calling thread (no batching)."""
        import sklearn

        model = self.load()
        try:
            # The schema already guarantees finite, in-domain inputs: skip scikit-learn's re-checks.
            with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
                if self._encoder is not None:
                    probabilities = self._encoder.predict_proba(rows)[:, 1]
                else:
                    probabilities = model.predict_proba(employee_frame(rows))[:, 1]
        except Exception as exc:  # a model that fails on valid input is invalid from now on
            reason = f"prediction failed: {exc.__class__.__name__}: {exc}"
            self._report_invalid(self.entry, reason)
            raise ModelUnavailable(reason) from exc
        return probabilities

    async def predict(self, rows: Sequence[dict[str, Any]]) -> Scores:
        """Probabilities of class 1 for ``rows``, grouped with the rows of concurrent calls."""
        if self._model is None:
            await asyncio.to_thread(self.load)
        if self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._serve(), name=f"runner-{self.entry.tag}")
        future: asyncio.Future[Scores] = asyncio.get_running_loop().create_future()
        assert self._queue is not None
        self._queue.put_nowait((rows, future))
        return await future

    async def _serve(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            pending = [await queue.get()]
            size = len(pending[0][0])
            deadline = time.monotonic() + self.max_latency_s
            while size < self.max_batch_size:
                if queue.empty():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(queue.get(), remaining)
                    except TimeoutError:
                        break
                else:
                    item = queue.get_nowait()
                pending.append(item)
                size += len(item[0])
            await self._run(pending, size)

    async def _run(self, pending: list[tuple[Sequence[dict[str, Any]], asyncio.Future[Scores]]], size: int) -> None:
        rows = [row for group, _ in pending for row in group]
        started = time.perf_counter()
        try:
            probabilities = await asyncio.to_thread(self.predict_now, rows)
        except Exception as exc:
            for _, future in pending:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, ModelUnavailable) else ModelUnavailable(str(exc)))
            return
        elapsed = time.perf_counter() - started
        self._batch_metric.observe(size)
        self._inference_metric.observe(elapsed)
        offset = 0
        for group, future in pending:
            if not future.done():
                future.set_result(Scores(probabilities[offset:offset + len(group)], elapsed * 1000))
            offset += len(group)

    async def close(self) -> None:
        """Stop the batching task."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass


class RunnerPool:
    """The runners of one worker, one per model version, created on first use."""

    def __init__(self, catalogue: ModelCatalogue, max_batch_size: int, max_latency_ms: float) -> None:
        self.catalogue = catalogue
        self._runners: dict[str, ModelRunner] = {}
        self._max_batch_size = max_batch_size
        self._max_latency_ms = max_latency_ms

    def runner(self, entry: ModelEntry) -> ModelRunner:
        """The runner of ``entry`` (created, not loaded, on first call)."""
        runner = self._runners.get(entry.tag)
        if runner is None:
            runner = self._runners[entry.tag] = ModelRunner(entry, self.catalogue.mark_invalid,
                                                            self._max_batch_size, self._max_latency_ms)
        return runner

    def is_loaded(self, entry: ModelEntry) -> bool:
        """Whether ``entry`` is loaded in this worker."""
        runner = self._runners.get(entry.tag)
        return runner is not None and runner.loaded

    async def close(self) -> None:
        """Stop every runner's batching task."""
        for runner in self._runners.values():
            await runner.close()
