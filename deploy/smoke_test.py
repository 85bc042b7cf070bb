"""Smoke test of a running service: ready, then one prediction of the README example employee.

    python deploy/smoke_test.py http://127.0.0.1:3000 [--timeout 120] [--api-key KEY]

``--api-key`` (default: ``FUTURISYS_API_KEY``) is a key with the ``predict``
scope, as ``python -m api keys create`` printed it: the key itself, not the
``id:sha256hex:scopes`` entry the service is configured with.

Polls ``/readyz`` until it answers 200, posts ``{"employee": EXAMPLE_EMPLOYEE}``
to ``/predict`` and checks the answer: ``prediction`` in {0, 1}, ``probability``
in [0, 1], a ``request_id``. Exits 0 when all holds, 1 otherwise. Standard
library only, so it runs wherever the project's sources are.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:  # run as a script: make `attrition` importable
    sys.path.insert(0, str(PROJECT_ROOT))

from attrition.synthetic import EXAMPLE_EMPLOYEE  # noqa: E402


class SmokeFailure(AssertionError):
    """The service did not become ready, or answered the example wrongly."""


def wait_ready(base_url: str, timeout: float, interval: float = 1.0) -> float:
    """Poll ``base_url/readyz`` until it answers 200; return the seconds waited."""
    started = time.monotonic()
    last = "no answer"
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=5) as response:
                if response.status == 200:
                    return time.monotonic() - started
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(interval)
    raise SmokeFailure(f"{base_url}/readyz not ready after {timeout:.0f} s (last: {last})")


def predict_example(base_url: str, api_key: str | None = None) -> dict[str, Any]:
    """POST the example employee to ``base_url/predict`` and return the decoded answer."""
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["X-API-Key"] = api_key
    body = json.dumps({"employee": EXAMPLE_EMPLOYEE}).encode()
    request = urllib.request.Request(f"{base_url}/predict", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise SmokeFailure(f"POST /predict answered {exc.code}: {exc.read()[:500]!r}") from None


def check_answer(answer: Any) -> None:
    """Raise :class:`SmokeFailure` unless ``answer`` is a well-formed prediction."""
    if not isinstance(answer, dict):
        raise SmokeFailure(f"answer is not a JSON object: {answer!r}")
    problems = []
    if answer.get("prediction") not in (0, 1) or isinstance(answer.get("prediction"), bool):
        problems.append(f"prediction {answer.get('prediction')!r} not in {{0, 1}}")
    probability = answer.get("probability")
    if not isinstance(probability, (int, float)) or isinstance(probability, bool) or not 0 <= probability <= 1:
        problems.append(f"probability {probability!r} not in [0, 1]")
    if not isinstance(answer.get("request_id"), str) or not answer["request_id"]:
        problems.append("no request_id")
    if problems:
        raise SmokeFailure("; ".join(problems) + f" in {answer!r}")


def main(argv: list[str] | None = None) -> int:
    """Command line: exit 0 when the service at the given URL passes the smoke test."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url", help="e.g. http://127.0.0.1:3000")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for /readyz")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between two /readyz probes")
    parser.add_argument("--api-key", default=os.environ.get("FUTURISYS_API_KEY") or None,
                        help="a key with the predict scope, sent as X-API-Key (default: FUTURISYS_API_KEY; the "
                             "service's FUTURISYS_API_KEYS holds only hashes)")
    args = parser.parse_args(argv)
    base_url = args.base_url.rstrip("/")
    try:
        waited = wait_ready(base_url, args.timeout, args.interval)
        answer = predict_example(base_url, args.api_key)
        check_answer(answer)
    except SmokeFailure as exc:
        print(f"smoke test failed: {exc}", file=sys.stderr)
        return 1
    print(f"ready after {waited:.1f} s; /predict → prediction={answer['prediction']} "
          f"probability={answer['probability']:.3f} model={answer.get('model')} request_id={answer['request_id']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
