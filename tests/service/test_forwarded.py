"""The loopback rule cannot be spoofed: trace reads without keys, through a real ``bentoml serve``.

Without keys, trace reads answer loopback clients only. uvicorn, under
``bentoml serve``, rewrites the client address from ``X-Forwarded-For`` for the
peers of ``FORWARDED_ALLOW_IPS``; here that is every peer (``*``), as behind a
proxy a deployment trusts. The server runs in a network namespace this test
makes (a veth pair with an address on each end of a private /30), so the test
is a real non-loopback peer; traffic goes only to that namespace and to the
namespace's own loopback. The namespace is removed afterwards, also on failure.
"""
from __future__ import annotations

import ipaddress
import json
import random
import shutil
import subprocess
import sys
import uuid

import httpx
import pytest

from attrition.synthetic import EXAMPLE_EMPLOYEE
from tests.conftest import need
from tests.service.server import bentoml_serve

pytestmark = [pytest.mark.serve, pytest.mark.netns]

PRIVATE_RANGE = ipaddress.ip_network("10.231.0.0/16")
"""Where the test picks its /30 (nothing else on the test machines uses it)."""
PROXY_HEADERS = [{"X-Forwarded-For": "127.0.0.1"}, {"Forwarded": "for=127.0.0.1"}, {"X-Real-IP": "127.0.0.1"}]


def ip(*arguments: str, namespace: str | None = None) -> subprocess.CompletedProcess:
    """Run ``ip ARGUMENTS`` (in ``namespace``), raising with its error output when it fails."""
    command = ["ip", "netns", "exec", namespace, "ip", *arguments] if namespace else ["ip", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")
    return done


def unused_subnet() -> ipaddress.IPv4Network:
    """A /30 of PRIVATE_RANGE that no address of this host is in."""
    taken = [ipaddress.ip_interface(word).network for line in ip("-4", "-o", "addr", "show").stdout.splitlines()
             for word in line.split() if "/" in word and word[0].isdigit()]
    subnets = list(PRIVATE_RANGE.subnets(new_prefix=30))
    for subnet in random.sample(subnets, 64):
        if not any(subnet.overlaps(other) for other in taken):
            return subnet
    raise RuntimeError(f"no free /30 in {PRIVATE_RANGE}")


@pytest.fixture(scope="module")
def namespace():
    """A network namespace joined to this one by a veth pair; yields (name, its address, our address)."""
    need("netns", shutil.which("ip") is not None, "no `ip` command")
    tag = uuid.uuid4().hex[:8]
    name, outside, inside = f"futurisys-test-{tag}", f"fxo{tag}", f"fxi{tag}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, timeout=30)
    need("netns", made.returncode == 0, f"`ip netns add` refused: {made.stderr.strip()}")
    try:
        subnet = unused_subnet()
        ours, theirs = (str(address) for address in list(subnet.hosts())[:2])
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        ip("link", "set", inside, "netns", name)
        ip("addr", "add", f"{ours}/30", "dev", outside)
        ip("link", "set", outside, "up")
        ip("addr", "add", f"{theirs}/30", "dev", inside, namespace=name)
        ip("link", "set", inside, "up", namespace=name)
        ip("link", "set", "lo", "up", namespace=name)
        yield name, theirs, ours
    finally:
        # Deleting the namespace deletes its end of the pair, and with it ours.
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "delete", outside], capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def served(namespace, tmp_path_factory):
    """The service without keys, trusting every peer's X-Forwarded-For, in the namespace; yields its URL."""
    home = tmp_path_factory.mktemp("forwarded")
    env = {"BENTOML_HOME": str(home / "bentoml"), "FUTURISYS_STATE_DIR": str(home / "state"),
           "DATABASE_URL": f"sqlite:///{home / 'traces.db'}", "FUTURISYS_API_KEYS": "", "FORWARDED_ALLOW_IPS": "*"}
    with bentoml_serve(env, home / "serve.log", timeout_s=180, namespace=namespace[:2]) as url:
        yield url


LOOPBACK_CLIENT = """
import json, sys
import httpx
port, paths, headers = json.loads(sys.argv[1])
with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
    print(json.dumps([[client.get(path, headers=h).status_code for h in headers] for path in paths]))
"""


def from_namespace_loopback(name: str, url: str, paths: list[str], headers: list[dict]) -> list[list[int]]:
    """The status of each path read with each set of headers by a client on the namespace's own loopback."""
    port = int(url.rsplit(":", 1)[1])
    done = subprocess.run(["ip", "netns", "exec", name, sys.executable, "-c", LOOPBACK_CLIENT,
                           json.dumps([port, paths, headers])], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_a_keyless_trace_read_is_refused_to_a_remote_peer_whatever_it_forwards(served):
    with httpx.Client(base_url=served, timeout=60) as client:
        answer = client.post("/predict", json={"employee": EXAMPLE_EMPLOYEE, "employee_id": 5151})
        assert answer.status_code == 200, answer.text  # predictions need no key: the peer is served
        reads = [f"/predictions/{answer.json()['request_id']}", "/predictions?employee_id=5151"]
        for path in reads:
            for headers in [{}, *PROXY_HEADERS, {"X-Forwarded-For": "127.0.0.1, 127.0.0.1"}]:
                refused = client.get(path, headers=headers)
                assert refused.status_code == 401, (path, headers, refused.text)
                assert "'read' API key is needed" in refused.json()["error"]
                assert refused.json()["detail"][0]["field"] == "Authorization"


def test_a_keyless_trace_read_from_loopback_is_refused_through_a_proxy_and_answered_without(served, namespace):
    with httpx.Client(base_url=served, timeout=60) as client:
        answer = client.post("/predict", json={"employee": EXAMPLE_EMPLOYEE, "employee_id": 5152})
    reads = [f"/predictions/{answer.json()['request_id']}", "/predictions?employee_id=5152"]
    statuses = from_namespace_loopback(namespace[0], served, reads, [{}, *PROXY_HEADERS])
    assert statuses == [[200, 401, 401, 401], [200, 401, 401, 401]]
