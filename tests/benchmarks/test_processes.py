"""A server start that loses its port to another process is retried on a new one, with real servers and ports.

The servers are Python's own ``http.server`` (started in well under a second)
serving a folder whose ``readyz`` file makes ``GET /readyz`` answer 200; the
ports are taken by real listening sockets of this test process.
"""
from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from benchmarks.common import HOST, BenchmarkError
from benchmarks.processes import PortLost, PortRetry, free_port, listens_on, port_loss, running

TIMEOUT_S = 30.0  # a start that hangs fails the test instead of waiting the harness's 120 s


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A folder served by ``http.server``: ``/readyz`` answers 200 with the body ``ours``."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "readyz").write_text("ours")
    return folder


@pytest.fixture
def occupied() -> Iterator[int]:
    """A port of 127.0.0.1 held by a listening socket that never answers."""
    with socket.socket() as holder:
        holder.bind((HOST, 0))
        holder.listen()
        yield holder.getsockname()[1]


class _Answers(BaseHTTPRequestHandler):
    """Answers every GET with ``status`` and the body ``occupant``."""

    status = 200

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        self.send_response(self.status)
        self.send_header("Content-Length", "8")
        self.end_headers()
        self.wfile.write(b"occupant")

    def log_message(self, *_args: object) -> None:
        pass


def _occupant(status: int) -> Iterator[int]:
    handler = type("Handler", (_Answers,), {"status": status})
    server = ThreadingHTTPServer((HOST, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def answering_occupant() -> Iterator[int]:
    """A port held by another HTTP server, which answers ``/readyz`` 200 too."""
    yield from _occupant(200)


@pytest.fixture
def refusing_occupant() -> Iterator[int]:
    """A port held by another HTTP server, which answers 503."""
    yield from _occupant(503)


def http_server(site: Path, port: int, delay_s: float = 0.0) -> list[str]:
    """The command of ``python3 -m http.server`` on ``port`` serving ``site``, started after ``delay_s``."""
    code = ("import runpy, sys, time; time.sleep(float(sys.argv[1])); sys.argv = ['http.server', *sys.argv[2:]]; "
            "runpy.run_module('http.server', run_name='__main__')")
    return [sys.executable, "-c", code, str(delay_s), str(port), "--bind", HOST, "--directory", str(site)]


def test_a_start_that_finds_its_port_taken_is_retried_on_a_new_port(
        site: Path, occupied: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ports: list[int] = []

    def launch(port: int) -> tuple[list[str], dict[str, str]]:
        ports.append(port)
        return http_server(site, port), dict(os.environ)

    log = tmp_path / "web.log"
    with running("web", launch, log, port=occupied, timeout_s=TIMEOUT_S) as server:
        assert ports[0] == occupied and len(ports) == 2
        assert server.port == ports[1] != occupied
        assert server.url == f"http://{HOST}:{server.port}"
        assert httpx.get(f"{server.url}/readyz").text == "ours"
        assert listens_on(server.process.pid, server.port) is True
        assert len(server.port_retries) == 1
        retry = server.port_retries[0]
        assert retry.port == occupied
        assert "Address already in use" in retry.reason
        lost_log = tmp_path / f"web.port-{occupied}.log"
        assert "Address already in use" in lost_log.read_text()
        assert "Address already in use" not in log.read_text()
    assert server.process.poll() is not None  # stopped on the way out
    printed = capsys.readouterr().out
    assert f"web: port {occupied} lost to another process" in printed
    assert f"retrying on port {server.port} (start 2 of 4)" in printed


def test_another_server_answering_on_the_port_is_not_taken_for_ours(
        site: Path, answering_occupant: int, tmp_path: Path) -> None:
    # Ours starts a second late on the first port: meanwhile the occupant answers /readyz 200.
    def launch(port: int) -> tuple[list[str], dict[str, str]]:
        return http_server(site, port, delay_s=1.0 if port == answering_occupant else 0.0), dict(os.environ)

    with running("web", launch, tmp_path / "web.log", port=answering_occupant, timeout_s=TIMEOUT_S) as server:
        assert server.port != answering_occupant
        assert server.port_retries == [PortRetry(answering_occupant,
                                                 f"another process answers on port {answering_occupant}")]
        assert httpx.get(f"{server.url}/readyz").text == "ours"


def test_an_internal_port_lost_to_another_process_is_retried_too(
        site: Path, occupied: int, tmp_path: Path) -> None:
    # As BentoML's process manager does: bind ZMQ endpoints on ports of its own, then serve HTTP.
    pytest.importorskip("zmq")
    internal = [occupied, free_port()]

    def launch(port: int) -> tuple[list[str], dict[str, str]]:
        code = ("import runpy, sys, zmq; zmq.Context().socket(zmq.REP).bind(f'tcp://127.0.0.1:{sys.argv[1]}'); "
                "sys.argv = ['http.server', *sys.argv[2:]]; runpy.run_module('http.server', run_name='__main__')")
        return [sys.executable, "-c", code, str(internal.pop(0)), str(port), "--bind", HOST,
                "--directory", str(site)], dict(os.environ)

    first = free_port()
    with running("web", launch, tmp_path / "web.log", port=first, timeout_s=TIMEOUT_S) as server:
        assert [r.port for r in server.port_retries] == [first]
        assert "ZMQError: Address already in use" in server.port_retries[0].reason
        assert server.port != first
        assert httpx.get(f"{server.url}/readyz").text == "ours"


def test_the_retries_are_bounded(site: Path, refusing_occupant: int, tmp_path: Path) -> None:
    starts: list[int] = []

    def launch(port: int) -> tuple[list[str], dict[str, str]]:
        starts.append(port)
        return http_server(site, refusing_occupant), dict(os.environ)  # whatever port it is given: always the taken one

    with pytest.raises(BenchmarkError, match="lost its port to another process at each of 2 starts") as raised:
        with running("web", launch, tmp_path / "web.log", port=refusing_occupant, timeout_s=TIMEOUT_S, attempts=2):
            pytest.fail("a server that never had its port was taken as ready")
    assert len(starts) == 2
    assert isinstance(raised.value.__cause__, PortLost)


def test_a_server_that_dies_of_something_else_is_not_retried(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    starts: list[int] = []

    def launch(port: int) -> tuple[list[str], dict[str, str]]:
        starts.append(port)
        return [sys.executable, "-c", "import sys; print('no model to serve'); sys.exit(3)"], dict(os.environ)

    with pytest.raises(BenchmarkError, match="exited with 3 before it was ready") as raised:
        with running("web", launch, tmp_path / "web.log", timeout_s=TIMEOUT_S):
            pytest.fail("a server that exited was taken as ready")
    assert type(raised.value) is BenchmarkError
    assert "no model to serve" in str(raised.value)
    assert len(starts) == 1
    assert "retrying" not in capsys.readouterr().out


def test_port_loss_reads_the_bind_errors_of_the_servers_logs() -> None:
    port = free_port()
    zmq = "Traceback (most recent call last):\n  ...\nzmq.error.ZMQError: Address already in use " \
          "(addr='tcp://127.0.0.1:40071')\n"
    uvicorn = "ERROR:    [Errno 98] error while attempting to bind on address ('127.0.0.1', 8000): " \
              "address already in use\n"
    assert port_loss(zmq, port) == "zmq.error.ZMQError: Address already in use (addr='tcp://127.0.0.1:40071')"
    assert port_loss(uvicorn, port) == uvicorn.strip()
    assert port_loss("ModuleNotFoundError: No module named 'service'\n", port) is None
