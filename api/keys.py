"""API keys and scopes: who may call which route.

A key is configured as an entry ``id:sha256hex:scope+scope`` of
``FUTURISYS_API_KEYS`` (comma-separated): the service keeps the SHA-256 of
each key, never the key, and identifies a presented key by comparing its
hash with every entry in constant time (:func:`hmac.compare_digest`), so
the time an answer takes says nothing about how close a guess came.

Scopes: ``predict`` (``/predict``, ``/predict_batch``), ``read`` (the trace
reads ``/predictions``, ``/predictions/{request_id}``), ``outcomes``
(``/outcomes``). Every other route needs a valid key of any scope, except the
open paths: the probes, the docs page, its spec and its static files, and
``/metrics`` when it is configured open. Open paths match exactly (the static
files by their folder's own prefix): ``/livezz`` is not ``/livez``.

``python -m api keys create ID --scopes predict+read`` creates a key.
"""
from __future__ import annotations

import hmac
import ipaddress
import secrets
from typing import Any, Iterable

# The entries' format is parsed below the settings, which check it at start; re-exported for the edge's users.
from settings.keys import (SCOPES, ApiKey, KeyConfigurationError, check_key_id, digest_of, parse_keys,  # noqa: F401
                           parse_scopes)

ANY_KEY = "any"
"""The requirement of routes that need a valid key, whatever its scopes."""
OPEN = "open"
"""The requirement of routes that answer without a key."""

OPEN_PATHS = frozenset({"/", "/livez", "/healthz", "/readyz", "/docs.json"})
"""Paths answered without a key, matched exactly."""
OPEN_FOLDERS = ("/static_content/",)
"""The docs page's static files: open below this folder, and nothing else."""
METRICS_PATH = "/metrics"

SCOPE_OF_PATH = {"/predict": "predict", "/predict_batch": "predict", "/predictions": "read", "/outcomes": "outcomes"}
"""The scope each guarded route needs (``/predictions/...`` as ``/predictions``)."""
LOOPBACK_ONLY_SCOPES = frozenset({"read", "outcomes"})
"""Without keys configured, routes of these scopes answer loopback clients only: they expose personal data."""

KEY_ID_STATE = "api_key_id"
"""The ``scope["state"]`` entry where the edge leaves the id of the verified key (None without keys)."""

KEY_PREFIX = "fk_"


def create_key(key_id: str, scopes: Iterable[str]) -> tuple[str, ApiKey]:
    """A new random key and its configuration entry; the key exists nowhere else."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, ApiKey(check_key_id(key_id), digest_of(key), frozenset(scopes))


class KeyRing:
    """The configured keys of the service, identifying a presented key by its hash."""

    def __init__(self, keys: Iterable[ApiKey] = ()) -> None:
        """A ring over ``keys`` (none: access control off)."""
        self.keys = tuple(keys)

    def __bool__(self) -> bool:
        return bool(self.keys)

    def identify(self, presented: str) -> ApiKey | None:
        """The configured key whose hash is the presented key's, or None.

        Every entry is compared, with :func:`hmac.compare_digest`, whichever
        matches: neither the comparison nor the loop ends early on a match.
        """
        digest = digest_of(presented)
        found: ApiKey | None = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.digest):
                found = key
        return found


def requirement(path: str, metrics_open: bool) -> str:
    """What ``path`` needs: :data:`OPEN`, :data:`ANY_KEY`, or the name of a scope.

    Open paths match the raw path exactly. Scoped routes are looked up on a
    canonical form (case and repeated or trailing slashes ignored), so a
    look-alike that a router might still serve gets the stricter requirement.
    """
    if path in OPEN_PATHS or path.startswith(OPEN_FOLDERS):
        return OPEN
    if path == METRICS_PATH and metrics_open:
        return OPEN
    segments = [s for s in path.lower().split("/") if s]
    canonical = "/" + "/".join(segments[:1])
    return SCOPE_OF_PATH.get(canonical, ANY_KEY)


def presented_key(headers: dict[str, str]) -> tuple[str | None, str | None]:
    """``(key, problem)`` from ``X-API-Key`` or ``Authorization: Bearer``; problem says why there is none."""
    if "x-api-key" in headers and not headers["x-api-key"].strip():
        # A blank key is a wrong key, not an absent one: it must not let another header's key through.
        return None, "the X-API-Key header is empty"
    api_key = headers.get("x-api-key", "").strip() or None
    authorization = headers.get("authorization", "").strip()
    bearer = None
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return None, "the Authorization header must be 'Bearer <key>'"
        bearer = credentials.strip()
    if api_key and bearer and api_key != bearer:
        return None, "X-API-Key and Authorization name different keys: send one"
    key = api_key or bearer
    return key, None if key else "no API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"


PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")
"""Headers a proxy adds to say who its client is (lower case). Their presence means the TCP peer is a proxy."""


def is_loopback(client: Any) -> bool:
    """Whether an ASGI ``scope["client"]`` address is a loopback one.

    ``scope["client"]`` is the TCP peer only when no proxy header was trusted:
    uvicorn's ``ProxyHeadersMiddleware`` (on under ``bentoml serve``) replaces
    it with the address an ``X-Forwarded-For`` header names when the peer is
    one of ``FORWARDED_ALLOW_IPS``. Decide on it together with
    :func:`is_proxied`, never alone.
    """
    if not client:
        return False
    try:
        address = ipaddress.ip_address(str(client[0]))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def is_proxied(headers: dict[str, str]) -> bool:
    """Whether a request (its headers, lower-case names) came through a proxy that names its client.

    A proxy on the same host is a loopback peer for every client it forwards,
    and a trusted one rewrites ``scope["client"]`` from ``X-Forwarded-For``:
    either way the address no longer says the client is on this machine.
    """
    return any(name in headers for name in PROXY_HEADERS)


def key_id_of(scope: dict[str, Any]) -> str | None:
    """The id of the key the edge verified for this request (an ASGI scope), None without keys."""
    state = scope.get("state") or {}
    return state.get(KEY_ID_STATE)


BEARER_SCHEME = {"type": "http", "scheme": "bearer", "description": "An API key: Authorization: Bearer <key>."}
API_KEY_SCHEME = {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "The same key, as X-API-Key."}


def document_keys(spec: dict[str, Any], metrics_open: bool) -> dict[str, Any]:
    """The OpenAPI document ``spec`` with the key schemes declared, and each operation's requirement.

    BentoML's spec model has no ``securitySchemes`` (its ``Components`` forbid
    extra keys), so they are added to the document it renders; the docs page
    then shows its Authorize button and sends the key.
    """
    components = spec.setdefault("components", {})
    components["securitySchemes"] = {"bearer": BEARER_SCHEME, "apiKey": API_KEY_SCHEME}
    for path, item in spec.get("paths", {}).items():
        needed = requirement(path.split("{")[0].rstrip("/") or "/", metrics_open)
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            if needed == OPEN:
                operation["security"] = []
                continue
            operation["security"] = [{"bearer": []}, {"apiKey": []}]
            what = "any valid API key" if needed == ANY_KEY else f"an API key with the '{needed}' scope"
            operation["description"] = (operation.get("description") or "").rstrip() + f"\n\nNeeds {what}."
    return spec
