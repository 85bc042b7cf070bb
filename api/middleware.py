"""The ASGI middleware in front of every route of the service: the HTTP edge's checks.

- API keys and scopes (``FUTURISYS_API_KEYS``, :mod:`api.keys`): 401 without a valid key
  (``Authorization: Bearer`` or ``X-API-Key``), 403 for a key without the route's scope;
  the probes and the docs stay open (exact paths). The verified key's id is left in
  ``scope["state"]`` for the endpoints to record. Without keys, trace reads and
  outcomes answer loopback clients only, and never a request that names a
  forwarded client (``Forwarded``, ``X-Forwarded-For``, ``X-Real-IP``): a proxy
  on this host is a loopback peer, and uvicorn rewrites the client address from
  ``X-Forwarded-For`` for the peers of ``FORWARDED_ALLOW_IPS``.
- Body size: 413 past ``max_body_bytes``.
- Content type: a POST body must be JSON (415 otherwise; BentoML answers 5xx).
- Bounded work: a POST body is parsed once here (orjson) before any route runs:
  400 when it is not JSON or nests deeper than ``max_json_depth``, 413 for a
  ``/predict_batch`` over ``max_batch_rows`` rows (or ``/outcomes`` over as
  many items), before a single row is validated (BentoML validates every row first: a body of 20,000 empty rows
  costs seconds of CPU and an error body of tens of megabytes).
- Error bodies: any 4xx or 5xx answer becomes a JSON object naming the fields at
  fault (BentoML wraps some in a list, Starlette answers some in plain text); a
  4xx is counted in ``/metrics``.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import sys
from itertools import compress, repeat
from typing import Any, Awaitable, Callable, Iterable, Sequence

import orjson
from prometheus_client import Counter

from api.errors import (BodyTooLarge, Forbidden, MissingApiKey, RequestRejected, UnsupportedMediaType, error_answer,
                        invalid_request)
from api.keys import (ANY_KEY, KEY_ID_STATE, LOOPBACK_ONLY_SCOPES, OPEN, ApiKey, KeyRing, is_loopback, is_proxied,
                      presented_key, requirement)
from attrition.errors import BatchTooLarge, DomainError, InvalidRequest, problem

log = logging.getLogger(__name__)

INVALID_REQUESTS = Counter(
    "futurisys_invalid_requests_total", "Requests rejected with a 4xx answer (not traced).",
    ["endpoint", "status"])

TRACKED_ENDPOINTS = {"/predict", "/predict_batch", "/models", "/metadata", "/predictions", "/outcomes"}

MAX_JSON_DEPTH = 32
"""Nesting levels a JSON body may have (a request to /predict_batch has 3)."""
CONTAINERS = (dict, list)
BATCH_PATH = "/predict_batch"
"""The route whose ``employees`` list the batch cap bounds."""
CAPPED_LISTS = {BATCH_PATH: "employees", "/outcomes": "outcomes"}
"""The routes whose list the batch cap bounds, and the list's key."""

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _endpoint(path: str) -> str:
    """A bounded label for a path (unknown paths must not add label values)."""
    for known in TRACKED_ENDPOINTS:
        if path == known or path.startswith(known + "/"):
            return known
    return "other"


def _normalise_error(body: bytes) -> bytes | None:
    """Rewrite an error body into ``{"error", "detail"}`` naming the fields, or None to keep it."""
    try:
        data = json.loads(body)
    except ValueError:
        return json.dumps({"error": body.decode("utf-8", "replace").strip() or "invalid request",
                           "detail": []}).encode()
    if isinstance(data, list):
        first = data[0] if data and isinstance(data[0], dict) else {}
        error = str(first.get("error", "invalid request"))
        return json.dumps({"error": error, "detail": [problem("body", error)]}).encode()
    if isinstance(data, dict) and isinstance(data.get("detail"), list) and data["detail"] \
            and isinstance(data["detail"][0], dict) and "loc" in data["detail"][0]:
        invalid = invalid_request(data["detail"])
        return json.dumps({"error": invalid.message, "detail": invalid.detail}).encode()
    if isinstance(data, dict) and "error" not in data:
        return json.dumps({"error": str(data.get("detail", "invalid request")), "detail": []}).encode()
    if isinstance(data, dict) and not isinstance(data.get("detail"), list):
        return json.dumps({"error": str(data["error"]), "detail": []}).encode()
    return None


def exceeds_depth(document: Any, limit: int, containers: int | None = None) -> bool:
    """True when ``document`` (parsed JSON) nests containers deeper than ``limit`` levels.

    Level by level, without recursion; scalars are looked at once and never descended into.
    ``containers``, an upper bound of the containers in the document (the
    brackets of its text), ends the walk as soon as that many have been seen:
    none is left deeper, so a batch's rows need not be scanned value by value.
    """
    level = [document] if isinstance(document, (dict, list)) else []
    seen, depth = len(level), 0
    while level:
        depth += 1
        if depth > limit:
            return True
        if containers is not None and seen >= containers:
            return False
        below: list[Any] = []
        for container in level:
            values = container.values() if type(container) is dict else container
            below.extend(compress(values, map(isinstance, values, repeat(CONTAINERS))))
        seen += len(below)
        level = below
    return False


def check_document(path: str, body: bytes, max_batch_rows: int | None,
                   max_depth: int = MAX_JSON_DEPTH) -> DomainError | None:
    """The refusal of a POST body before its route runs (None: the route may validate it).

    Not JSON, or nested past ``max_depth`` → :class:`InvalidRequest`; a batch
    of more than ``max_batch_rows`` rows → :class:`BatchTooLarge`, counted on
    the parsed document before any row is validated. An empty body is the
    route's to refuse.
    """
    if not body.strip():
        return None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson refuses past 1024 levels itself; below that, the depth is counted here.
        reason = f"nested deeper than {max_depth} levels" if "depth" in str(exc) else "not valid JSON"
        return InvalidRequest(f"invalid request: body: {reason}", [problem("body", reason)])
    if exceeds_depth(document, max_depth, containers=body.count(b"{") + body.count(b"[")):
        reason = f"nested deeper than {max_depth} levels"
        return InvalidRequest(f"invalid request: body: {reason}", [problem("body", reason)])
    if path in CAPPED_LISTS and max_batch_rows is not None and isinstance(document, dict):
        rows = document.get(CAPPED_LISTS[path])
        if isinstance(rows, list) and len(rows) > max_batch_rows:
            return BatchTooLarge(len(rows), max_batch_rows, CAPPED_LISTS[path])
    return None


def listening_addresses(argv: Sequence[str] | None = None) -> list[tuple[str, int]] | None:
    """The addresses this BentoML worker listens on, or None when they cannot be known.

    ``bentoml serve`` binds the socket in its supervisor and hands it to each
    worker as ``--fd N`` on the worker's command line: the worker asks that
    socket (a duplicate of it) where it is bound.
    """
    argv = sys.argv if argv is None else argv
    try:
        fd = int(argv[list(argv).index("--fd") + 1])
    except (ValueError, IndexError):
        return None
    try:
        with socket.socket(fileno=os.dup(fd)) as listening:
            address = listening.getsockname()
    except OSError:
        return None
    return [(str(address[0]), int(address[1]))] if isinstance(address, tuple) else None


def exposure_warning(keys: Iterable[ApiKey], addresses: list[tuple[str, int]] | None) -> str | None:
    """The warning for a service without keys that listens beyond loopback (None when there is none to give)."""
    if any(True for _ in keys) or not addresses:
        return None
    exposed = [f"{host}:{port}" for host, port in addresses if not is_loopback((host, port))]
    if not exposed:
        return None
    return (f"No API keys configured (FUTURISYS_API_KEYS) and the service listens on {', '.join(exposed)}, beyond "
            "loopback: anyone who reaches it can predict and read models; trace reads and outcomes answer loopback "
            "clients only. Create keys with `python -m api keys create ID --scopes predict+read`.")


class EdgeMiddleware:
    """API keys and scopes, body limits, content type and uniform 4xx error bodies."""

    def __init__(self, app: Callable[..., Awaitable[None]], keys: Iterable[ApiKey] = (), metrics_open: bool = True,
                 max_body_bytes: int = 4 * 1024 * 1024, recycle_every: int = 0, max_batch_rows: int | None = None,
                 max_json_depth: int = MAX_JSON_DEPTH) -> None:
        """The edge in front of ``app``; with no ``keys``, access control is off except for personal data.

        ``max_batch_rows``: the row cap of ``/predict_batch`` (None: left to the route).
        """
        self.app = app
        self.max_batch_rows = max_batch_rows
        self.max_json_depth = max_json_depth
        self.keys = KeyRing(keys)
        self.metrics_open = metrics_open
        self.max_body_bytes = max_body_bytes
        self.recycle_every = recycle_every
        self._answered = 0
        warning = exposure_warning(self.keys.keys, listening_addresses())
        if warning:
            log.warning(warning)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        endpoint = _endpoint(path)
        rejection: DomainError | None = self._reject(scope, path, headers)
        if rejection is None and scope.get("method") == "POST":
            body = await self._read_body(receive)
            if body is None:
                rejection = BodyTooLarge(self.max_body_bytes)
            else:
                rejection = check_document(path, body, self.max_batch_rows, self.max_json_depth)
                receive = _replay(body)
        if rejection is not None:
            answer = error_answer(rejection)
            if answer.status_code == 401:
                answer.headers["WWW-Authenticate"] = "Bearer"
            INVALID_REQUESTS.labels(endpoint, str(answer.status_code)).inc()
            await answer(scope, receive, send)
            return
        state: dict[str, Any] = {"status": 200, "buffer": [], "start": None}

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                message = self._recycle(message)
                if message["status"] >= 400:
                    state["start"] = message
                    return
            elif message["type"] == "http.response.body" and state["start"] is not None:
                state["buffer"].append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                await self._send_error(send, state["start"], b"".join(state["buffer"]))
                if state["status"] < 500:
                    INVALID_REQUESTS.labels(endpoint, str(state["status"])).inc()
                return
            await send(message)

        await self.app(scope, receive, guarded_send)

    def _recycle(self, start: Message) -> Message:
        """Close one keep-alive connection every ``recycle_every`` answers (as nginx's keepalive_requests).

        Workers share one listening socket and a client's connections stay on the
        worker that accepted them: a pool opened at once often lands on a single
        worker while the other idles. A closed connection is reopened by the
        client and accepted by whichever worker is free, which evens the load.
        """
        if not self.recycle_every:
            return start
        self._answered += 1
        if self._answered % self.recycle_every:
            return start
        return {**start, "headers": [*start.get("headers", []), (b"connection", b"close")]}

    def _reject(self, scope: Scope, path: str, headers: dict[str, str]) -> RequestRejected | None:
        refused = self._authorize(scope, path, headers)
        if refused is not None:
            return refused
        if scope.get("method") == "POST":
            length = headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                return BodyTooLarge(self.max_body_bytes)
            content_type = headers.get("content-type", "application/json").split(";")[0].strip().lower()
            if content_type not in ("application/json", ""):
                return UnsupportedMediaType(content_type)
        return None

    def _authorize(self, scope: Scope, path: str, headers: dict[str, str]) -> RequestRejected | None:
        """Refuse a request its credentials do not allow; otherwise record the verified key's id in its state."""
        state = scope.setdefault("state", {})
        state[KEY_ID_STATE] = None
        needed = requirement(path, self.metrics_open)
        if needed == OPEN:
            return None
        if not self.keys:
            if needed in LOOPBACK_ONLY_SCOPES and (is_proxied(headers) or not is_loopback(scope.get("client"))):
                message = (f"a '{needed}' API key is needed: this service has no keys configured, and without keys "
                           "it answers this route to loopback clients only, never through a proxy (a request with "
                           "Forwarded, X-Forwarded-For or X-Real-IP)")
                return MissingApiKey(message, [problem("Authorization", message, scope=needed)])
            return None
        presented, why = presented_key(headers)
        if presented is None:
            return MissingApiKey(f"missing API key: {why}", [problem("Authorization", str(why))])
        key = self.keys.identify(presented)
        if key is None:
            return MissingApiKey("unknown API key", [problem("Authorization", "this key is not configured")])
        if needed != ANY_KEY and needed not in key.scopes:
            message = f"API key {key.id!r} lacks the '{needed}' scope this route needs"
            return Forbidden(message, [problem("scope", message, scope=needed, key_id=key.id)])
        state[KEY_ID_STATE] = key.id
        return None

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole request body, or None past the size limit (chunked bodies have no length)."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _send_error(self, send: Send, start: Message, body: bytes) -> None:
        rewritten = _normalise_error(body)
        if rewritten is not None:
            body = rewritten
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-length", b"content-type")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes) -> Receive:
    """A receive callable that hands the already-read body to the app, then waits for disconnect."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}
    return receive
