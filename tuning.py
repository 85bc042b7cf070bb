"""Process tuning of a serving worker: why each knob is set, in one place.

Two BentoML workers share the machine's cores, and each serves many small
requests from one event loop while threads score rows and write journals.
Defaults tuned for one busy process are wrong there:

- **BLAS/OpenMP threads → 1.** Each worker would otherwise start a thread per
  core for every numpy/scikit-learn call, and the workers fight over the
  cores under load; the models here are small enough for one thread.
- **Thread switch interval → ``FUTURISYS_SWITCH_INTERVAL_MS`` (1 ms).**
  CPython lets a thread keep the GIL for 5 ms: the runner threads then hold
  the event loop back for whole intervals. A shorter one hands it back sooner.
- **malloc arenas → 2.** glibc gives each thread that contends for malloc an
  arena of its own, kept for the life of the process: with the inference and
  journal threads that cost about a hundred MiB per worker under load.
- **Library warm-up.** Importing scikit-learn, pandas and joblib takes about a
  second; done before the worker reports ready, a first request does not pay
  it (models themselves still load lazily).
- **GC freeze.** What exists once warm lives as long as the worker: frozen, it
  is out of the collector's way. Full collections over those objects paused
  requests by 100-300 ms under load; the raised threshold makes young
  collections rarer.
"""
from __future__ import annotations

import ctypes
import gc
import sys

from threadpoolctl import threadpool_limits

M_ARENA_MAX = -8
"""glibc's ``mallopt`` parameter for the arena cap (``MALLOC_ARENA_MAX``)."""


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas for this process; no-op off glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_ARENA_MAX, arenas)
    except (OSError, AttributeError):
        pass


def tune_worker(switch_interval_ms: float) -> None:
    """Set the worker's threads, switch interval and malloc arenas (before anything heavy is loaded)."""
    threadpool_limits(limits=1)
    sys.setswitchinterval(switch_interval_ms / 1000.0)
    limit_malloc_arenas()


def warm_up_worker() -> None:
    """Import the model libraries, then freeze what exists out of the garbage collector's way.

    Runs in a thread at worker start-up, before the worker reports ready.
    """
    from registry.runner import import_model_libraries

    import_model_libraries()
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
