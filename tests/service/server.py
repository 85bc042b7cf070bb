"""Start a real ``bentoml serve`` of the project in a subprocess, on a free port of 127.0.0.1."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx

from tests.conftest import PROJECT_ROOT


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving(command: list[str], env: dict[str, str], log_path: Path, port: int, ready_path: str,
            timeout_s: float, host: str = "127.0.0.1") -> Iterator[str]:
    """Run a server ``command`` (``env`` added to the environment) reached on ``port`` of ``host``.

    Yields its base URL once ``ready_path`` answers 200; stops the server and its
    workers on exit. Fails with the end of its log if it dies or is not ready in time.
    """
    name = " ".join(command[1:4])
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env={**os.environ, **env},
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://{host}:{port}"
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
                try:
                    if httpx.get(f"{url}{ready_path}", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not ready after {timeout_s}s:\n{log_path.read_text()[-4000:]}")
                time.sleep(0.25)
            yield url
        finally:
            stop_process_group(process)


@contextmanager
def bentoml_serve(env: dict[str, str], log_path: Path, timeout_s: float = 90.0,
                  namespace: tuple[str, str] | None = None) -> Iterator[str]:
    """Run ``bentoml serve`` with ``env`` added to the environment; yields its base URL once ready.

    ``namespace``: ``(name, address)`` of a network namespace to run it in
    (``ip netns exec``), listening on all of that namespace's addresses and
    reached on ``address``; by default it listens on 127.0.0.1 here.
    """
    port = free_port()
    host, prefix = "127.0.0.1", []
    if namespace is not None:
        prefix = ["ip", "netns", "exec", namespace[0]]
        host = namespace[1]
    command = [*prefix, sys.executable, "-m", "bentoml", "serve", "service:AttritionService",
               "--host", "0.0.0.0" if namespace else host, "--port", str(port)]
    with serving(command, env, log_path, port, "/readyz", timeout_s, host=host) as url:
        yield url


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM a server started with ``start_new_session=True`` and its workers; SIGKILL after 30 s."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
