"""Build the Hugging Face Space bundle: the bento, its models and a Dockerfile at the root.

    python deploy/build_space.py [--out build/space] [--skip-import]

Steps: ``python -m registry import`` (models/ → the BentoML store in
``$BENTOML_HOME``), ``bentoml build``, ``bentoml export`` of the new bento (an
archive that holds ``models/`` too: a complete Docker build context), then the
archive is unpacked into ``--out`` and adapted for a Docker Space:

- ``env/docker/Dockerfile`` moves to the bundle root (its paths are relative to
  the bento root already, the build context ``bentoml containerize`` uses);
  it exposes 7860 and runs as uid 1000, the user Spaces start containers as;
- ``README.md`` carries the Space front-matter (``sdk: docker``, ``app_port``).

The bundle is checked before the script ends: every model of bentofile.yaml is
inside, the port is 7860, and no secret of this environment (``HF_TOKEN``,
API keys, database passwords) nor anything shaped like a token is in any file.
The deploy job pushes this folder as it is (deploy/deploy_space.py).

It writes a second bundle too, ``--dashboard-out`` (default
``build/dashboard-space``): a Docker Space that runs the Streamlit dashboard
(``dashboard/``, the modules it imports, ``models/`` for the audit's
re-scoring) on 7860, pointed through its ``FUTURISYS_DASHBOARD_DATABASE_URL``
secret at the same hosted PostgreSQL, as the read-only role.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = PROJECT_ROOT / "build" / "space"
SPACE_PORT = 7860
SPACE_UID = 1000
DEFAULT_DASHBOARD_OUT = PROJECT_ROOT / "build" / "dashboard-space"

SPACE_FRONT_MATTER = {
    "title": "Futurisys Attrition",
    "emoji": "📉",
    "colorFrom": "blue",
    "colorTo": "indigo",
    "sdk": "docker",
    "app_port": SPACE_PORT,
    "pinned": False,
    "short_description": "Employee attrition classifier served with BentoML",
}

# A Hugging Face access token, a private key block.
TOKEN_PATTERNS = (
    re.compile(rb"\bhf_[A-Za-z0-9]{30,}\b"),
    re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
)
# A password inside a URL (scheme://user:password@host), unless it is a documentation placeholder.
URL_CREDENTIAL = re.compile(rb"[a-z][a-z0-9+.-]*://[^/\s:@'\"`]+:([^/\s@'\"`]+)@", re.IGNORECASE)
PLACEHOLDER_PASSWORDS = frozenset({b"pass", b"password", b"passwd", b"changeme", b"secret", b"xxx", b"***",
                                   b"<password>", b"${password}", b"$password"})
SECRET_ENV_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "FUTURISYS_API_KEYS")
URL_ENV_VARS = ("DATABASE_URL", "FUTURISYS_DASHBOARD_DATABASE_URL", "FUTURISYS_TEST_POSTGRES")


class BundleError(RuntimeError):
    """The bundle cannot be built, or is not fit to be pushed."""


def run(command: list[str], env: dict[str, str] | None = None) -> str:
    """Run ``command`` in the project root; return its stdout, or raise with its output on failure."""
    print(f"$ {' '.join(command)}", flush=True)
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, text=True, capture_output=True)
    if done.returncode != 0:
        raise BundleError(f"{' '.join(command)} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def bentofile() -> dict:
    """The parsed ``bentofile.yaml`` of the project."""
    return yaml.safe_load((PROJECT_ROOT / "bentofile.yaml").read_text(encoding="utf-8"))


def bentofile_models(config: dict) -> list[str]:
    """The model tags (``name:version``) that ``bentofile.yaml`` packages."""
    return [entry if isinstance(entry, str) else entry["tag"] for entry in config.get("models", [])]


def build_bento(env: dict[str, str]) -> str:
    """Run ``bentoml build`` and return the tag of the new bento."""
    output = run([sys.executable, "-m", "bentoml", "build", "--output", "tag"], env=env)
    tags = [line.split("__tag__:", 1)[1].strip() for line in output.splitlines() if "__tag__:" in line]
    if not tags:
        raise BundleError(f"bentoml build printed no tag:\n{output}")
    return tags[-1]


def export_bento(tag: str, out: Path, env: dict[str, str]) -> None:
    """Export the bento ``tag`` (with its models) and unpack it into ``out``, replacing what was there."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="futurisys-export-") as tmp:
        archive = Path(tmp) / "bundle.bento"
        run([sys.executable, "-m", "bentoml", "export", tag, str(archive)], env=env)
        with tarfile.open(archive) as tar:
            tar.extractall(out, filter="data")
    # The archive keeps the store's private modes (0700); a Docker build context must be readable.
    for path in [out, *out.rglob("*")]:
        path.chmod(path.stat().st_mode | (0o755 if path.is_dir() else 0o644))


def adapt_dockerfile(text: str, port: int = SPACE_PORT, uid: int = SPACE_UID) -> str:
    """Return the generated Dockerfile adapted to a Space: exposed ``port``, user ``uid``.

    Fails when the generated file no longer has the lines this relies on, so a
    BentoML upgrade that changes them is noticed here rather than on the Space.
    """
    replacements = (
        (r"^EXPOSE 3000$", f"EXPOSE {port}"),
        (r"^ARG BENTO_USER_UID=\d+$", f"ARG BENTO_USER_UID={uid}"),
        (r"^ARG BENTO_USER_GID=\d+$", f"ARG BENTO_USER_GID={uid}"),
    )
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        if count != 1:
            raise BundleError(f"generated Dockerfile: expected one line matching {pattern!r}, found {count}")
    if not re.search(rf"^ARG BENTOML_PORT={port}$", text, flags=re.MULTILINE) or \
            not re.search(r"^ENV BENTOML_PORT=\$BENTOML_PORT$", text, flags=re.MULTILINE):
        raise BundleError(f"generated Dockerfile does not set BENTOML_PORT={port}: check envs in bentofile.yaml")
    header = (
        "# Hugging Face Space image of the Futurisys attrition service, generated by\n"
        "# `bentoml build` and adapted by deploy/build_space.py: this file sits at the\n"
        f"# root of the bento (the build context), exposes {port} and runs as uid {uid}.\n"
    )
    return header + text


def space_readme(tag: str, models: list[str]) -> str:
    """The Space's README.md: front-matter read by Hugging Face, then what the Space serves."""
    front_matter = yaml.safe_dump(SPACE_FRONT_MATTER, sort_keys=False, allow_unicode=True)
    model_lines = "\n".join(f"- `{model}`" for model in models)
    return f"""---
{front_matter}---

# Futurisys — employee attrition service

A BentoML service (`{tag}`) that scores how likely an employee is to leave and
keeps a trace of every prediction.

- `POST /predict` with `{{"employee": {{...30 fields...}}}}`; the page at `/`
  documents every endpoint with examples.
- `GET /models`, `GET /metadata`, `GET /metrics`; probes `/livez`, `/readyz`.

Models in this image:

{model_lines}

## Configuration (Space settings → Variables and secrets)

- `DATABASE_URL` (secret): a hosted PostgreSQL. Without it the traces go to an
  embedded SQLite file, and a Space's disk does not survive a restart.
- `FUTURISYS_API_KEYS` (secret): comma-separated `id:sha256hex:scopes` entries
  (scopes `predict`, `read`, `outcomes` joined by `+`). Create each key on your
  machine with `python -m api keys create hr-tool --scopes predict+read`: it
  prints the key once (give it to the client) and the entry to paste here; the
  Space keeps only the hash. Clients send `Authorization: Bearer <key>` or
  `X-API-Key: <key>`; the page at `/` has an Authorize button. Without keys,
  anyone can predict, and the traces (`GET /predictions`) are not readable from
  outside the container at all.
- `FUTURISYS_DEFAULT_MODEL` (variable): the model used when a request names none.
"""


def check_bundle(out: Path, models: list[str], environ: dict[str, str]) -> None:
    """Raise :class:`BundleError` unless ``out`` is a complete Space bundle free of secrets."""
    dockerfile = out / "Dockerfile"
    if not dockerfile.is_file():
        raise BundleError("no Dockerfile at the bundle root")
    if f"EXPOSE {SPACE_PORT}" not in dockerfile.read_text(encoding="utf-8"):
        raise BundleError(f"the Dockerfile does not expose {SPACE_PORT}")
    for model in models:
        name, _, version = model.partition(":")
        if not (out / "models" / name / version / "model.yaml").is_file():
            raise BundleError(f"model {model} is not in the bundle")
    if not (out / "env" / "python" / "requirements.txt").is_file():
        raise BundleError("no env/python/requirements.txt in the bundle")
    findings = find_secrets(out, environ)
    if findings:
        raise BundleError("possible secrets in the bundle (values not shown): " + ", ".join(findings))


def secret_values(environ: dict[str, str]) -> list[bytes]:
    """The secret values of ``environ``: tokens, API keys, database URLs that carry a password."""
    values: list[str] = []
    for name in SECRET_ENV_VARS:
        entries = [v.strip() for v in environ.get(name, "").split(",") if v.strip()]
        # An API key entry (id:sha256hex:scopes) is searched whole and by its hash alone.
        values += entries + [part for entry in entries for part in entry.split(":") if len(part) >= 32]
    for name in URL_ENV_VARS:
        url = environ.get(name, "")
        try:
            has_password = bool(urlsplit(url).password)
        except ValueError:
            has_password = False
        if has_password:
            values.append(url)
    # Very short values (a test key "x") would match anywhere by chance.
    return [v.encode() for v in values if len(v) >= 6]


def find_secrets(root: Path, environ: dict[str, str]) -> list[str]:
    """Files under ``root`` holding a secret of ``environ`` or a token-shaped string, as ``path: why``."""
    values = secret_values(environ)
    findings = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        relative = path.relative_to(root).as_posix()
        if any(value in data for value in values):
            findings.append(f"{relative}: a secret value of this environment")
        for pattern in TOKEN_PATTERNS:
            if pattern.search(data):
                findings.append(f"{relative}: matches {pattern.pattern.decode()}")
        if any(m.group(1).lower() not in PLACEHOLDER_PASSWORDS for m in URL_CREDENTIAL.finditer(data)):
            findings.append(f"{relative}: a URL with a password")
    return findings


def build_space(out: Path, skip_import: bool = False) -> str:
    """Build the bundle into ``out``; return the bento tag."""
    # A build needs no API keys: the keys of this environment never reach it, nor the service it imports.
    env = {**{k: v for k, v in os.environ.items() if k != "FUTURISYS_API_KEYS"}, "BENTOML_DO_NOT_TRACK": "True"}
    if not skip_import:
        print(run([sys.executable, "-m", "registry", "import"], env=env), end="")
    tag = build_bento(env)
    export_bento(tag, out, env)
    generated = out / "env" / "docker" / "Dockerfile"
    (out / "Dockerfile").write_text(adapt_dockerfile(generated.read_text(encoding="utf-8")), encoding="utf-8")
    generated.unlink()  # one Dockerfile only: the one the Space builds
    models = bentofile_models(bentofile())
    (out / "README.md").write_text(space_readme(tag, models), encoding="utf-8")
    check_bundle(out, models, dict(os.environ))
    return tag


DASHBOARD_SOURCES = ("dashboard", "attrition", "persistence", "registry", "api", "settings", "models",
                     "requirements.txt", ".streamlit")
"""What the dashboard Space needs: the app, the modules it imports, the model versions it re-scores."""
DASHBOARD_FRONT_MATTER = {**SPACE_FRONT_MATTER, "title": "Futurisys Attrition Dashboard", "emoji": "📊",
                          "short_description": "Service health, audit, models and drift of the trace"}


def dashboard_dockerfile(port: int = SPACE_PORT, uid: int = SPACE_UID) -> str:
    """The dashboard Space's Dockerfile: Python 3.11, both pinned requirement files, Streamlit on ``port``."""
    return f"""# Hugging Face Space image of the Futurisys dashboard, written by deploy/build_space.py.
FROM python:3.11-slim
RUN useradd --create-home --uid {uid} user
WORKDIR /home/user/app
COPY --chown=user requirements.txt ./requirements.txt
COPY --chown=user dashboard/requirements.txt ./dashboard/requirements.txt
RUN pip install --no-cache-dir -r requirements.txt -r dashboard/requirements.txt
COPY --chown=user . .
USER user
ENV FUTURISYS_STATE_DIR=/tmp/futurisys PYTHONUNBUFFERED=1
EXPOSE {port}
# The trace is personal data: listening on every interface is this image's deliberate choice (the Space
# puts its own authentication in front when it is private); locally the dashboard stays on 127.0.0.1.
CMD ["python", "-m", "streamlit", "run", "dashboard/app.py", "--server.address", "0.0.0.0", \\
     "--server.port", "{port}", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
"""


def dashboard_readme() -> str:
    """The dashboard Space's README.md: front-matter, then how to point it at the trace database."""
    front_matter = yaml.safe_dump(DASHBOARD_FRONT_MATTER, sort_keys=False, allow_unicode=True)
    return f"""---
{front_matter}---

# Futurisys — attrition dashboard

The Streamlit dashboard over the prediction trace of the Futurisys attrition
service: service health, the audit of one request (with its re-scoring),
the models compared on served traffic, and input drift.

## Configuration (Space settings → Variables and secrets)

- `FUTURISYS_DASHBOARD_DATABASE_URL` (secret): the service's hosted PostgreSQL,
  as the read-only role created with
  `DATABASE_URL=<admin url> python3 -m dashboard.readonly_role --role futurisys_dashboard`
  (it prints the URL to paste here). The dashboard never writes.
- Keep this Space **private**: the trace holds personal data.
"""


def build_dashboard_space(out: Path) -> None:
    """Write the dashboard Space bundle into ``out`` (replacing it) and check it is free of secrets."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    ignored = shutil.ignore_patterns("__pycache__", "*.pyc", "*.db", "*.db-*")
    for name in DASHBOARD_SOURCES:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, out / name, ignore=ignored)
        elif source.is_file():
            shutil.copyfile(source, out / name)
        else:
            raise BundleError(f"{name} is missing from the project")
    (out / "Dockerfile").write_text(dashboard_dockerfile(), encoding="utf-8")
    (out / "README.md").write_text(dashboard_readme(), encoding="utf-8")
    findings = find_secrets(out, dict(os.environ))
    if findings:
        raise BundleError("possible secrets in the dashboard bundle (values not shown): " + ", ".join(findings))


def main(argv: list[str] | None = None) -> int:
    """Command line: build the Space bundle; exit 1 with the reason when it cannot be built."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"bundle folder (default: {DEFAULT_OUT})")
    parser.add_argument("--skip-import", action="store_true",
                        help="do not run `python -m registry import` (the store already holds the models)")
    parser.add_argument("--dashboard-out", type=Path, default=DEFAULT_DASHBOARD_OUT,
                        help=f"dashboard Space bundle folder (default: {DEFAULT_DASHBOARD_OUT})")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        tag = build_space(args.out.resolve(), args.skip_import)
        build_dashboard_space(args.dashboard_out.resolve())
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"bundle of {tag} in {args.out} ({size / 2**20:.1f} MiB, {time.monotonic() - started:.0f} s)")
    print(f"dashboard bundle in {args.dashboard_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
