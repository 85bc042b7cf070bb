"""The ``FUTURISYS_API_KEYS`` entries, parsed: ``id:sha256hex:scope+scope``, comma-separated.

Plain code below the settings, which check the entries at start: the HTTP
edge (``api/keys.py``) identifies presented keys against what this returns.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

SCOPES = ("predict", "read", "outcomes")
"""Every scope a key can hold."""

KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DIGEST_PATTERN = re.compile(r"^[0-9a-f]{64}$")
CONVERT_HINT = ("entries are id:sha256hex:scopes (scopes joined by +, among " + ", ".join(SCOPES) + "). "
                "Create a new key with `python -m api keys create ID --scopes predict+read`, or convert an "
                "existing plain key with `python -m api keys entry ID --scopes predict+read` (it reads the key "
                "from standard input and prints the entry to configure)")


class KeyConfigurationError(Exception):
    """``FUTURISYS_API_KEYS`` does not hold valid ``id:sha256hex:scopes`` entries.

    Not a ValueError on purpose: pydantic turns those into a validation error
    that repeats the input value, and the value may be a key in clear.
    """


@dataclass(frozen=True)
class ApiKey:
    """One configured key: its id (recorded in traces and the read log), the SHA-256 of the key, its scopes."""

    id: str
    digest: bytes
    scopes: frozenset[str]

    def entry(self) -> str:
        """The ``id:sha256hex:scopes`` entry of this key."""
        return f"{self.id}:{self.digest.hex()}:{'+'.join(s for s in SCOPES if s in self.scopes)}"


def digest_of(key: str) -> bytes:
    """The SHA-256 of a key, as the configuration holds it."""
    return hashlib.sha256(key.encode("utf-8")).digest()


def parse_scopes(text: str) -> frozenset[str]:
    """``predict+read`` → ``{"predict", "read"}``; ValueError naming an unknown or missing scope."""
    scopes = [s.strip() for s in text.split("+")]
    if not scopes or any(not s for s in scopes):
        raise ValueError(f"give at least one scope among {', '.join(SCOPES)}, joined by +")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r}: scopes are {', '.join(SCOPES)}")
    return frozenset(scopes)


def parse_keys(value: str) -> tuple[ApiKey, ...]:
    """The keys of a ``FUTURISYS_API_KEYS`` value (empty: no keys, access control off).

    Raises :class:`KeyConfigurationError` naming the entry at fault by its
    position, never by its text: an entry in the old plain-key format *is* a
    key, and must not reach a log.
    """
    keys: list[ApiKey] = []
    for position, entry in enumerate((e.strip() for e in value.split(",") if e.strip()), start=1):
        parts = entry.split(":")
        if len(parts) == 1:
            raise KeyConfigurationError(
                f"FUTURISYS_API_KEYS entry {position} is a plain key; the service no longer accepts keys in "
                f"clear: {CONVERT_HINT}")
        if len(parts) != 3:
            raise KeyConfigurationError(f"FUTURISYS_API_KEYS entry {position} has {len(parts)} parts: "
                                        f"{CONVERT_HINT}")
        key_id, digest, scopes = (p.strip() for p in parts)
        if not KEY_ID_PATTERN.match(key_id):
            raise KeyConfigurationError(f"FUTURISYS_API_KEYS entry {position}: the id must be 1-64 letters, digits, "
                                        f"'.', '_' or '-': {CONVERT_HINT}")
        if not DIGEST_PATTERN.match(digest.lower()):
            raise KeyConfigurationError(f"FUTURISYS_API_KEYS entry {position} ({key_id}): the hash must be 64 hex "
                                        f"digits (the SHA-256 of the key): {CONVERT_HINT}")
        try:
            scope_set = parse_scopes(scopes)
        except ValueError as exc:
            raise KeyConfigurationError(f"FUTURISYS_API_KEYS entry {position} ({key_id}): {exc}") from None
        if any(k.id == key_id for k in keys):
            raise KeyConfigurationError(f"FUTURISYS_API_KEYS: the id {key_id!r} is configured twice")
        key = ApiKey(key_id, bytes.fromhex(digest), scope_set)
        if any(k.digest == key.digest for k in keys):
            raise KeyConfigurationError(f"FUTURISYS_API_KEYS: {key_id!r} has the same key as another entry")
        keys.append(key)
    return tuple(keys)


def check_key_id(key_id: str) -> str:
    """``key_id`` when it is a valid key id; ValueError otherwise."""
    if not KEY_ID_PATTERN.match(key_id):
        raise ValueError("the id must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return key_id
