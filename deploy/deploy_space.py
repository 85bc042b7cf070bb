"""Push the Space bundle (deploy/build_space.py) to a Hugging Face Docker Space.

    HF_TOKEN=... python deploy/deploy_space.py --space-id OWNER/NAME [--bundle build/space]

The token is read from the environment only (``HF_TOKEN``), never from the
command line, so it stays out of shell histories and process lists. The Space
id comes from ``--space-id`` or ``HF_SPACE_ID``. The Space is created when
missing (Docker SDK), then the bundle folder becomes its content in one commit:
files of an earlier deploy that the bundle no longer has are removed.
Needs ``huggingface_hub`` (``pip install -r deploy/requirements.txt``).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any, Protocol

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BUNDLE = PROJECT_ROOT / "build" / "space"
SPACE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class DeployError(RuntimeError):
    """The deploy cannot start: a missing token, Space id or bundle."""


class SpaceApi(Protocol):
    """The part of ``huggingface_hub.HfApi`` a deploy uses."""

    def create_repo(self, repo_id: str, **kwargs: Any) -> Any:
        """Create the repository (here: a Space) unless it exists."""

    def upload_folder(self, **kwargs: Any) -> Any:
        """Upload a folder as one commit."""


def check_inputs(bundle: Path, space_id: str | None, token: str | None) -> str:
    """Validate what a deploy needs before any network call; return the Space id."""
    if not token:
        raise DeployError("HF_TOKEN is not set: export a Hugging Face access token with write access "
                          "(GitHub: the repository secret HF_TOKEN)")
    if not space_id:
        raise DeployError("no Space id: pass --space-id OWNER/NAME or set HF_SPACE_ID "
                          "(GitHub: the repository variable HF_SPACE_ID)")
    if not SPACE_ID.match(space_id):
        raise DeployError(f"Space id {space_id!r} is not of the form OWNER/NAME")
    if not (bundle / "Dockerfile").is_file() or not (bundle / "README.md").is_file():
        raise DeployError(f"{bundle} is not a Space bundle (no Dockerfile or README.md): "
                          "run python deploy/build_space.py first")
    readme = (bundle / "README.md").read_text(encoding="utf-8")
    if not readme.startswith("---\n") or "\nsdk: docker\n" not in readme:
        raise DeployError(f"{bundle / 'README.md'} has no Space front-matter with sdk: docker")
    return space_id


def deploy(bundle: Path, space_id: str, api: SpaceApi, private: bool = False, message: str | None = None) -> Any:
    """Create the Docker Space ``space_id`` if needed and make ``bundle`` its content; return the commit info."""
    api.create_repo(space_id, repo_type="space", space_sdk="docker", exist_ok=True, private=private)
    return api.upload_folder(
        repo_id=space_id,
        repo_type="space",
        folder_path=str(bundle),
        commit_message=message or "Deploy the attrition service",
        delete_patterns=["*"],  # drop what a previous deploy left; .gitattributes is always kept
    )


def hub_api(token: str) -> SpaceApi:
    """A ``huggingface_hub.HfApi`` client authenticated with ``token``."""
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise DeployError("huggingface_hub is not installed: pip install -r deploy/requirements.txt") from None
    return HfApi(token=token)


def main(argv: list[str] | None = None) -> int:
    """Command line: deploy the bundle; exit 2 with the reason when the inputs are missing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help=f"default: {DEFAULT_BUNDLE}")
    parser.add_argument("--space-id", default=os.environ.get("HF_SPACE_ID") or None,
                        help="OWNER/NAME of the Space (default: $HF_SPACE_ID)")
    parser.add_argument("--private", action="store_true", help="create the Space private (when it does not exist)")
    parser.add_argument("--message", default=None, help="commit message on the Space")
    args = parser.parse_args(argv)
    try:
        space_id = check_inputs(args.bundle, args.space_id, os.environ.get("HF_TOKEN"))
        commit = deploy(args.bundle, space_id, hub_api(os.environ["HF_TOKEN"]), args.private, args.message)
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"deployed {args.bundle} to https://huggingface.co/spaces/{space_id} ({getattr(commit, 'oid', commit)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
