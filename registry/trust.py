"""Which model artifacts this code may unpickle: the trusted-artifact manifest, and the one loader.

A joblib artifact is a pickle: loading it runs whatever code its bytes name.
The card beside an artifact holds its sha256, but whoever can write one file
of ``models/`` (a mounted volume, a copy in the BentoML store) can write both.
The digests this code trusts are therefore pinned in a manifest committed
with the code, outside ``models/``: ``registry/trusted_artifacts.json`` (or
the operator's own, ``FUTURISYS_TRUSTED_MANIFEST``)::

    {"artifacts": {"logistic_regression:v1": "<sha256 hex of model.joblib>", ...}}

Training pins each version it writes; ``python -m registry promote`` pins a
version it promotes. :func:`load_artifact` is the only place an artifact is
unpickled: it reads the bytes once, compares their digest with the pinned one
and only then hands those same bytes to ``joblib.load``. A version missing
from the manifest, or whose bytes differ, is refused without being unpickled.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_FILE = "trusted_artifacts.json"
COMMITTED_MANIFEST = Path(__file__).resolve().parent / MANIFEST_FILE
"""The manifest committed with the code (the default of ``FUTURISYS_TRUSTED_MANIFEST``)."""
_ABOUT = ("sha256 of each model artifact (models/<name>/<version>/model.joblib) this code may unpickle; written by "
          "`python -m training.train` and `python -m registry promote`, read by every loader (registry/trust.py)")
_SHA256_HEX = frozenset("0123456789abcdef")


class UntrustedArtifact(RuntimeError):
    """An artifact the manifest does not pin, or whose bytes are not the pinned ones: never unpickled."""


def sha256_of(path: Path) -> str:
    """The sha256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_path() -> Path:
    """The manifest in force: ``FUTURISYS_TRUSTED_MANIFEST``, else the committed one."""
    from settings import settings

    return Path(settings.trusted_manifest)


@dataclass(frozen=True)
class TrustedManifest:
    """The pinned digests ``{"name:version": sha256 hex}`` read from one manifest file.

    A manifest that cannot be read trusts nothing: every version is refused
    with the reason, and the service still starts.
    """

    path: Path
    digests: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def read(cls, path: str | Path | None = None) -> TrustedManifest:
        """The manifest at ``path`` (default: :func:`manifest_path`); never raises."""
        path = Path(path) if path is not None else manifest_path()
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path, {}, f"the trusted manifest {path.name} does not exist")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            return cls(path, {}, f"the trusted manifest {path.name} is unreadable: {exc.__class__.__name__}")
        artifacts = document.get("artifacts") if isinstance(document, dict) else None
        if not isinstance(artifacts, dict) or not all(
                isinstance(tag, str) and _is_sha256(digest) for tag, digest in artifacts.items()):
            return cls(path, {}, f"the trusted manifest {path.name} is not "
                                 f"{{\"artifacts\": {{\"name:version\": sha256}}}}")
        return cls(path, dict(artifacts))

    def refusal(self, tag: str, sha256: str) -> str | None:
        """Why the artifact of ``tag`` with this digest must not be unpickled; ``None`` when it is trusted."""
        if self.error is not None:
            return self.error
        pinned = self.digests.get(tag)
        # The file's name, not its path: reasons reach clients (GET /models); the log names the path at start.
        if pinned is None:
            return f"{tag} is not in the trusted manifest {self.path.name}"
        if pinned != sha256:
            return f"the artifact's sha256 is not the one the trusted manifest {self.path.name} pins for {tag}"
        return None


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _SHA256_HEX


def pin(tag: str, sha256: str, path: str | Path | None = None) -> bool:
    """Pin ``tag`` to ``sha256`` in the manifest at ``path`` (default: the one in force); True if it was added.

    A version is immutable: a tag already pinned to other bytes is refused
    (:class:`ValueError`), never re-pinned. The file is replaced atomically
    and created if absent.
    """
    path = Path(path) if path is not None else manifest_path()
    if not _is_sha256(sha256):
        raise ValueError(f"{sha256!r} is not a sha256 hex digest")
    if path.exists():
        manifest = TrustedManifest.read(path)
        if manifest.error is not None:
            raise ValueError(manifest.error)
        digests = dict(manifest.digests)
    else:
        digests = {}
    if digests.get(tag) == sha256:
        return False
    if tag in digests:
        raise ValueError(f"{tag} is already pinned to other bytes in {path}: a version is immutable, "
                         f"make a new version instead")
    digests[tag] = sha256
    payload = json.dumps({"about": _ABOUT, "artifacts": dict(sorted(digests.items()))}, indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(payload)
    os.chmod(tmp, 0o644)  # mkstemp makes private files; every worker reads the manifest
    os.replace(tmp, path)
    return True


def load_artifact(tag: str, artifact: Path, manifest: TrustedManifest | None = None) -> Any:
    """Unpickle the artifact of ``tag`` at ``artifact``, only if the manifest pins its bytes.

    The bytes are read once; their digest is checked, then the same bytes are
    unpickled, so a file swapped between check and load changes nothing.
    Raises :class:`UntrustedArtifact` (nothing unpickled) or ``OSError``.
    """
    # joblib is imported on first load, in the workers only (the supervisor stays small).
    import joblib

    manifest = manifest if manifest is not None else TrustedManifest.read()
    payload = Path(artifact).read_bytes()
    reason = manifest.refusal(tag, hashlib.sha256(payload).hexdigest())
    if reason is not None:
        raise UntrustedArtifact(reason)
    return joblib.load(io.BytesIO(payload))
