"""Packaging and deployment: bentofile.yaml, the Hugging Face Space bundle, the deploy and smoke scripts.

The bundle test (marker ``build``) runs deploy/build_space.py for real, with a
temporary ``BENTOML_HOME``: `python -m registry import`, `bentoml build` (which
resolves the requirements against the package index) and the export. The Hub is
never contacted: the deploy is tested up to the client it would call.
"""
from __future__ import annotations

import ast
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pathspec
import pytest
import yaml

from api.keys import create_key
from deploy import build_space, deploy_space, smoke_test
from tests.conftest import PROJECT_ROOT, need
from tests.service.server import stop_process_group

MODELS_DIR = PROJECT_ROOT / "models"
BENTOFILE = yaml.safe_load((PROJECT_ROOT / "bentofile.yaml").read_text(encoding="utf-8"))
BENTOFILE_MODELS = build_space.bentofile_models(BENTOFILE)


def shipped_versions() -> set[str]:
    """Every ``name:version`` under models/ that has an artifact."""
    return {f"{artifact.parent.parent.name}:{artifact.parent.name}"
            for artifact in MODELS_DIR.glob("*/*/model.joblib")}


with warnings.catch_warnings():  # BentoML matches with "gitwildmatch", which pathspec now calls deprecated
    warnings.simplefilter("ignore", DeprecationWarning)
    INCLUDED = pathspec.PathSpec.from_lines("gitwildmatch", BENTOFILE.get("include", ["*"]))
    EXCLUDED = pathspec.PathSpec.from_lines("gitwildmatch", BENTOFILE.get("exclude", []))


def packaged(relative_path: str) -> bool:
    """Whether ``bentoml build`` copies ``relative_path`` into the bento (same rules as BentoML's)."""
    return INCLUDED.match_file(relative_path) and not EXCLUDED.match_file(relative_path)


def module_file(module: str) -> Path | None:
    """The project file of a dotted module name, or None when it is not the project's."""
    base = PROJECT_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def project_imports(path: Path) -> set[Path]:
    """The project files ``path`` imports (any depth of the code, relative imports resolved)."""
    package = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts[:-1])
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(p for p in [*parent, base] if p)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):  # the packages on the way count too
                file = module_file(".".join(parts[:depth]))
                if file is not None:
                    found.add(file)
    return found


# ---- bentofile.yaml ----------------------------------------------------------------------------


def test_bentofile_lists_every_model_version_under_models():
    shipped = shipped_versions()
    assert shipped, f"no model artifact under {MODELS_DIR}"
    listed = set(BENTOFILE_MODELS)
    assert shipped - listed == set(), "models/ has versions bentofile.yaml does not package"
    assert listed - shipped == set(), "bentofile.yaml packages versions models/ does not have"
    assert len(BENTOFILE_MODELS) == len(listed), "a model is listed twice"


def test_bentofile_packages_every_module_the_service_runs():
    roots = [PROJECT_ROOT / "service.py", *sorted((PROJECT_ROOT / "persistence").glob("database/migrations/**/*.py"))]
    seen: set[Path] = set()
    todo = [root for root in roots if root.is_file()]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(project_imports(path) - seen)
    missing = sorted(str(p.relative_to(PROJECT_ROOT)) for p in seen if not packaged(str(p.relative_to(PROJECT_ROOT))))
    assert len(seen) > 5, f"the import graph from service.py looks wrong: {sorted(map(str, seen))}"
    assert missing == [], f"imported by the service but not packaged by bentofile.yaml: {missing}"


def test_bentofile_packages_migrations_models_and_settings_but_not_tests_training_or_data():
    for path in ["service.py", "settings/__init__.py", "settings/keys.py", "persistence/database/migrations/env.py",
                 "persistence/database/migrations/script.py.mako",
                 "persistence/database/migrations/versions/0001_initial.py", "models/aliases.json",
                 "models/random_forest/v1/card.json", "models/random_forest/v1/model.joblib",
                 "registry/trusted_artifacts.json"]:
        assert packaged(path), path
    for path in ["tests/conftest.py", "training/pipelines.py", "benchmarks/run.py", "deploy/build_space.py",
                 "registry/__pycache__/store.cpython-311.pyc", "extrait_sirh.csv", "models/extrait_eval.csv",
                 "tests/service/service.py", "var/futurisys.db"]:
        assert not packaged(path), path


def test_bentofile_runs_the_service_on_python_3_11_port_7860_from_the_pinned_requirements():
    assert BENTOFILE["service"] == "service:AttritionService"
    assert BENTOFILE["docker"]["python_version"] == "3.11"
    assert BENTOFILE["python"]["requirements_txt"] == "requirements.txt"
    assert {"name": "BENTOML_PORT", "value": str(build_space.SPACE_PORT)} in BENTOFILE["envs"]


# ---- build_space.py helpers --------------------------------------------------------------------

GENERATED_DOCKERFILE = """FROM python:3.11-slim AS base-container
ARG BENTO_USER=bentoml
ARG BENTO_USER_UID=1034
ARG BENTO_USER_GID=1034
ARG BENTOML_PORT=7860
ENV BENTOML_PORT=$BENTOML_PORT
COPY --chown=bentoml:bentoml ./env/docker ./env/docker/
EXPOSE 3000
EXPOSE 3001
"""


def test_dockerfile_is_adapted_to_the_space_port_and_user():
    adapted = build_space.adapt_dockerfile(GENERATED_DOCKERFILE)
    assert "EXPOSE 7860" in adapted and "EXPOSE 3000" not in adapted
    assert "ARG BENTO_USER_UID=1000" in adapted and "ARG BENTO_USER_GID=1000" in adapted
    assert adapted.endswith(GENERATED_DOCKERFILE.replace("3000", "7860").replace("1034", "1000"))


@pytest.mark.parametrize("broken", [
    GENERATED_DOCKERFILE.replace("EXPOSE 3000\n", ""),
    GENERATED_DOCKERFILE.replace("ARG BENTO_USER_UID=1034\n", ""),
    GENERATED_DOCKERFILE.replace("ARG BENTOML_PORT=7860", "ARG BENTOML_PORT=3000"),
])
def test_dockerfile_adaptation_refuses_a_file_it_does_not_recognise(broken):
    with pytest.raises(build_space.BundleError):
        build_space.adapt_dockerfile(broken)


def front_matter(readme: str) -> dict:
    """The YAML front-matter of a Space README."""
    match = re.match(r"^---\n(.*?)\n---\n", readme, re.DOTALL)
    assert match, "no front-matter"
    return yaml.safe_load(match.group(1))


def test_space_readme_front_matter_declares_a_docker_space_on_7860():
    readme = build_space.space_readme("futurisys-attrition:abc", ["baseline:v1", "random_forest:v1"])
    meta = front_matter(readme)
    assert meta["sdk"] == "docker" and meta["app_port"] == 7860 and meta["title"]
    assert len(meta["short_description"]) <= 60
    assert "`random_forest:v1`" in readme and "DATABASE_URL" in readme


def test_secret_scan_finds_tokens_credentials_and_this_environment_s_secrets(tmp_path):
    token = "hf_" + secrets.token_hex(17)
    api_key = secrets.token_urlsafe(16)
    (tmp_path / "clean.py").write_text('URL = "postgresql+psycopg://user:pass@host:5432/db"  # documented\n')
    (tmp_path / "token.txt").write_text(f"token = {token}\n")
    (tmp_path / "url.cfg").write_text("url = postgresql://app:s3cr3t-Value@db.internal/traces\n")
    (tmp_path / "key.json").write_text(json.dumps({"key": api_key}))
    found = build_space.find_secrets(tmp_path, {"FUTURISYS_API_KEYS": f"short,{api_key}"})
    assert sorted(f.split(":")[0] for f in found) == ["key.json", "token.txt", "url.cfg"]
    assert not any(token in f or api_key in f for f in found), "a finding must not print the secret"


def test_secret_scan_finds_api_key_entries_their_hashes_and_the_dashboard_database_url(tmp_path):
    _, entry = create_key("svc", ["predict"])
    digest = entry.digest.hex()
    password = secrets.token_urlsafe(12)
    environ = {"FUTURISYS_API_KEYS": f"{entry.entry()},{create_key('ops', ['read'])[1].entry()}",
               "FUTURISYS_DASHBOARD_DATABASE_URL": f"postgresql+psycopg://reader:{password}@db.example.invalid/traces"}
    (tmp_path / "entry.env").write_text(f"KEYS={entry.entry()}\n")
    (tmp_path / "digest.txt").write_text(f"{digest}\n")
    (tmp_path / "dashboard.toml").write_text(f'url = "{environ["FUTURISYS_DASHBOARD_DATABASE_URL"]}"\n')
    (tmp_path / "clean.txt").write_text("no secret here\n")
    found = build_space.find_secrets(tmp_path, environ)
    assert sorted({f.split(":")[0] for f in found}) == ["dashboard.toml", "digest.txt", "entry.env"]
    assert not any(digest in f or password in f for f in found), "a finding must not print the secret"


KNOWN_URL_PASSWORDS = {
    ".github/workflows/ci.yml": {b"postgres"},  # the CI job's own throw-away PostgreSQL service container
    "README.md": {b"..."},  # an elided password in an example
    "tests/persistence/database/test_migrations.py": {b"p"},  # URL normalisation examples
    # The scanner's own tests: a planted fake secret and f-strings of random passwords.
    "tests/deploy/test_bundle.py": {b"s3cr3t-value", b"{password}", b"{secrets.token_urlsafe(12)}"},
}
"""Passwords in URLs of tracked files that are not secrets, by file."""


def test_the_repository_holds_no_secret():
    """No tracked file holds a token, a private key, a URL with a password, or a secret of this environment."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT_ROOT, capture_output=True, check=True).stdout
    values = build_space.secret_values(dict(os.environ))
    findings = []
    for name in filter(None, tracked.decode().split("\0")):
        path = PROJECT_ROOT / name
        if not path.is_file() or path.stat().st_size > 5_000_000:
            continue
        data = path.read_bytes()
        allowed = build_space.PLACEHOLDER_PASSWORDS | KNOWN_URL_PASSWORDS.get(name, set())
        findings += [f"{name}: a secret of this environment" for value in values if value in data]
        findings += [f"{name}: {p.pattern.decode()}" for p in build_space.TOKEN_PATTERNS if p.search(data)]
        findings += [f"{name}: a URL with a password" for m in build_space.URL_CREDENTIAL.finditer(data)
                     if m.group(1).lower() not in allowed]
    assert findings == []


# ---- deploy_space.py ---------------------------------------------------------------------------


class RecordingHub:
    """Stands in for huggingface_hub.HfApi: the Hub is never contacted from the tests."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []

    def create_repo(self, *args, **kwargs):
        self.calls.append(("create_repo", args, kwargs))

    def upload_folder(self, *args, **kwargs):
        self.calls.append(("upload_folder", args, kwargs))
        return "commit-1"


def space_bundle(root: Path) -> Path:
    """A minimal folder with what a bundle must have for a deploy to start."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text("FROM python:3.11-slim\n")
    (root / "README.md").write_text(build_space.space_readme("futurisys-attrition:abc", ["baseline:v1"]))
    return root


def test_deploy_creates_a_docker_space_and_uploads_the_bundle(tmp_path):
    bundle = space_bundle(tmp_path / "space")
    hub = RecordingHub()
    assert deploy_space.deploy(bundle, "futurisys/attrition", hub) == "commit-1"
    (create, args, kwargs), (upload, _, upload_kwargs) = hub.calls
    assert create == "create_repo" and args == ("futurisys/attrition",)
    assert kwargs["repo_type"] == "space" and kwargs["space_sdk"] == "docker" and kwargs["exist_ok"] is True
    assert upload == "upload_folder"
    assert upload_kwargs["repo_id"] == "futurisys/attrition" and upload_kwargs["repo_type"] == "space"
    assert Path(upload_kwargs["folder_path"]) == bundle


def run_deploy_script(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """deploy/deploy_space.py as the workflow runs it, with ``env`` as its whole Hugging Face environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    return subprocess.run([sys.executable, "deploy/deploy_space.py", *args], cwd=PROJECT_ROOT,
                          env={**base, **env}, capture_output=True, text=True, timeout=60)


def test_deploy_fails_clearly_without_a_token(tmp_path):
    bundle = space_bundle(tmp_path / "space")
    done = run_deploy_script({"HF_SPACE_ID": "futurisys/attrition"}, "--bundle", str(bundle))
    assert done.returncode == 2 and "HF_TOKEN is not set" in done.stderr


@pytest.mark.parametrize("env, args, message", [
    ({}, [], "no Space id"),
    ({"HF_SPACE_ID": "not-a-space-id"}, [], "OWNER/NAME"),
    ({"HF_SPACE_ID": "futurisys/attrition"}, ["--bundle", "missing"], "not a Space bundle"),
])
def test_deploy_refuses_before_contacting_the_hub(tmp_path, env, args, message):
    bundle = space_bundle(tmp_path / "space")
    token = "hf_" + secrets.token_hex(17)  # never sent: the checks fail first
    done = run_deploy_script({"HF_TOKEN": token, **env}, "--bundle", str(bundle), *args)
    assert done.returncode == 2 and message in done.stderr
    assert token not in done.stdout + done.stderr


def test_deploy_refuses_a_bundle_without_the_space_front_matter(tmp_path):
    bundle = space_bundle(tmp_path / "space")
    (bundle / "README.md").write_text("# no front-matter\n")
    with pytest.raises(deploy_space.DeployError, match="front-matter"):
        deploy_space.check_inputs(bundle, "futurisys/attrition", "token")


# ---- smoke_test.py -----------------------------------------------------------------------------

GOOD_ANSWER = {"request_id": "3f2a", "model": "random_forest", "prediction": 1, "probability": 0.71}


@pytest.mark.parametrize("answer", [
    [GOOD_ANSWER],
    {**GOOD_ANSWER, "prediction": 2},
    {**GOOD_ANSWER, "prediction": True},
    {**GOOD_ANSWER, "probability": 1.2},
    {**GOOD_ANSWER, "probability": "0.5"},
    {**GOOD_ANSWER, "request_id": ""},
])
def test_smoke_check_rejects_malformed_answers(answer):
    with pytest.raises(smoke_test.SmokeFailure):
        smoke_test.check_answer(answer)


class FakeService(BaseHTTPRequestHandler):
    """A stand-in service that is not ready for its first probes, then answers ``answer``."""

    not_ready_probes = 2
    answer: dict = GOOD_ANSWER
    received: list = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        ready = FakeService.not_ready_probes <= 0
        FakeService.not_ready_probes -= 1
        self.send_response(200 if ready and self.path == "/readyz" else 503)
        self.end_headers()

    def do_POST(self):  # noqa: N802
        FakeService.received.append((self.path, self.headers.get("X-API-Key"),
                                     json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
        body = json.dumps(FakeService.answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_service():
    FakeService.not_ready_probes, FakeService.answer, FakeService.received = 2, GOOD_ANSWER, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeService)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_smoke_test_waits_for_readiness_then_posts_the_example_employee(fake_service):
    from attrition.synthetic import EXAMPLE_EMPLOYEE

    assert smoke_test.main([fake_service, "--timeout", "20", "--interval", "0.05", "--api-key", "k-123"]) == 0
    assert FakeService.received == [("/predict", "k-123", {"employee": EXAMPLE_EMPLOYEE})]


def test_smoke_test_fails_on_a_wrong_answer_or_a_service_never_ready(fake_service):
    FakeService.answer = {**GOOD_ANSWER, "probability": -0.1}
    assert smoke_test.main([fake_service, "--timeout", "20", "--interval", "0.05"]) == 1
    FakeService.not_ready_probes = 10**6
    with pytest.raises(smoke_test.SmokeFailure, match="not ready"):
        smoke_test.wait_ready(fake_service, timeout=0.5, interval=0.1)


# ---- the bundle, built for real ----------------------------------------------------------------


def package_index_reachable() -> tuple[bool, str]:
    """Whether the index `bentoml build` resolves requirements against answers."""
    url = os.environ.get("UV_INDEX_URL") or os.environ.get("UV_DEFAULT_INDEX") or "https://pypi.org/simple/"
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/bentoml/", timeout=10):
            return True, ""
    except OSError as exc:
        return False, f"{url}: {exc}"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """deploy/build_space.py run into a temporary folder; yields (bundle, environment, seconds)."""
    ok, why = package_index_reachable()
    need("build", ok, why)
    home = tmp_path_factory.mktemp("bundle")
    env = {
        **os.environ,
        "BENTOML_HOME": str(home / "bentoml"),
        "FUTURISYS_STATE_DIR": str(home / "state"),
        # Secrets in the builder's environment must not reach the bundle.
        "HF_TOKEN": "hf_" + secrets.token_hex(17),
        # Entries as the service takes them (id:sha256hex:scopes): neither they nor their hashes may ship.
        "FUTURISYS_API_KEYS": ",".join(create_key(name, ["predict", "read"])[1].entry() for name in ("svc", "ops")),
        "DATABASE_URL": f"postgresql+psycopg://futurisys:{secrets.token_urlsafe(12)}@db.example.invalid:5432/traces",
        "FUTURISYS_DASHBOARD_DATABASE_URL":
            f"postgresql+psycopg://reader:{secrets.token_urlsafe(12)}@db.example.invalid:5432/traces",
    }
    started = time.monotonic()
    done = subprocess.run([sys.executable, "deploy/build_space.py", "--out", str(home / "space")],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"bundle built in {seconds:.1f} s: {done.stdout.strip().splitlines()[-1]}")
    yield home / "space", env, seconds


@pytest.mark.build
def test_bundle_has_the_dockerfile_at_its_root_exposing_7860(built):
    bundle, _, _ = built
    dockerfile = (bundle / "Dockerfile").read_text(encoding="utf-8")
    assert not (bundle / "env" / "docker" / "Dockerfile").exists()
    assert re.search(r"^FROM python:3\.11(-slim)?\b", dockerfile, re.MULTILINE)
    assert re.search(r"^EXPOSE 7860$", dockerfile, re.MULTILINE)
    assert re.search(r"^ARG BENTOML_PORT=7860$", dockerfile, re.MULTILINE)
    assert re.search(r"^ENV BENTOML_PORT=\$BENTOML_PORT$", dockerfile, re.MULTILINE)
    assert re.search(r"^ARG BENTO_USER_UID=1000$", dockerfile, re.MULTILINE)
    # Every COPY source is there: the bundle root is a complete build context.
    for source in re.findall(r"^COPY (?:--\S+ )*(\S+) \S+$", dockerfile, re.MULTILINE):
        assert (bundle / source).exists(), source
    assert os.access(bundle / "env" / "docker" / "entrypoint.sh", os.X_OK)


@pytest.mark.build
def test_bundle_holds_every_model_of_the_bentofile(built):
    bundle, _, _ = built
    info = yaml.safe_load((bundle / "bento.yaml").read_text(encoding="utf-8"))
    assert sorted(m["tag"] for m in info["models"]) == sorted(BENTOFILE_MODELS)
    assert {"name": "BENTOML_PORT", "value": "7860", "stage": "all"} in info["envs"]
    for tag in BENTOFILE_MODELS:
        name, version = tag.split(":")
        assert (bundle / "models" / name / version / "model.yaml").is_file(), tag
        assert (bundle / "src" / "models" / name / version / "card.json").is_file(), tag
    assert (bundle / "src" / "models" / "aliases.json").is_file()


@pytest.mark.build
def test_bundle_has_the_service_sources_and_migrations_but_no_tests_training_or_data(built):
    bundle, _, _ = built
    src = bundle / "src"
    for path in ["service.py", "settings/__init__.py", "settings/keys.py", "persistence/database/migrations/env.py",
                 "persistence/database/migrations/script.py.mako"]:
        assert (src / path).is_file(), path
    assert list((src / "persistence" / "database" / "migrations" / "versions").glob("*.py"))
    assert not (src / "tests").exists() and not (src / "training").exists() and not (src / "deploy").exists()
    assert not list(bundle.rglob("*.csv")) and not list(bundle.rglob("__pycache__"))


@pytest.mark.build
def test_bundle_readme_is_a_docker_space_on_7860(built):
    bundle, _, _ = built
    meta = front_matter((bundle / "README.md").read_text(encoding="utf-8"))
    assert meta["sdk"] == "docker" and meta["app_port"] == 7860


@pytest.mark.build
def test_bundle_pins_the_runtime_requirements_from_the_public_index(built):
    bundle, _, _ = built
    locked = (bundle / "env" / "python" / "requirements.txt").read_text(encoding="utf-8")
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", locked, re.MULTILINE))
    pins = {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins.items()}
    runtime = (PROJECT_ROOT / "requirements.txt").read_text(encoding="utf-8")
    for name, version in re.findall(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)$", runtime, re.MULTILINE):
        assert pins.get(re.sub(r"[-_.]+", "-", name).lower()) == version, name
    # The image is built on Hugging Face: nothing may point at this machine.
    assert not re.search(r"file:|--find-links|^-f |/opt/|/root/|/tmp/", locked, re.MULTILINE)


@pytest.mark.build
def test_bundle_carries_no_secret(built):
    bundle, env, _ = built
    assert build_space.find_secrets(bundle, env) == []
    digests = [entry.split(":")[1] for entry in env["FUTURISYS_API_KEYS"].split(",")]
    for name, value in [(n, env[n]) for n in ("HF_TOKEN", "FUTURISYS_API_KEYS", "FUTURISYS_DASHBOARD_DATABASE_URL")] \
            + [("an API key hash", d) for d in digests]:
        assert not [p for p in bundle.rglob("*") if p.is_file() and value.encode() in p.read_bytes()], name
    assert not list(bundle.rglob(".env")) and not list(bundle.rglob("*.db"))


@pytest.mark.build
@pytest.mark.serve
def test_built_bundle_serves_the_example_prediction(built, tmp_path):
    """The bundle as the Space gets it, served by BentoML from its own folder, passes the smoke test."""
    bundle, _, _ = built
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FUTURISYS_API_KEYS")}
    env.update(BENTOML_HOME=str(tmp_path / "bentoml"), FUTURISYS_STATE_DIR=str(tmp_path / "state"),
               BENTOML_DO_NOT_TRACK="True")
    with open(tmp_path / "serve.log", "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", str(bundle), "--host", "127.0.0.1",
                                   "--port", str(port)], cwd=tmp_path, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        try:
            done = subprocess.run([sys.executable, "deploy/smoke_test.py", f"http://127.0.0.1:{port}",
                                   "--timeout", "120"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                                  timeout=180)
        finally:
            stop_process_group(server)
    assert done.returncode == 0, done.stderr + (tmp_path / "serve.log").read_text(errors="replace")[-4000:]
    assert "prediction=" in done.stdout


# ---- the dashboard Space bundle ----------------------------------------------------------------


def test_dashboard_bundle_holds_every_module_the_dashboard_imports_and_runs_streamlit_on_7860(tmp_path):
    out = tmp_path / "dashboard-space"
    build_space.build_dashboard_space(out)
    roots = [PROJECT_ROOT / "dashboard" / "app.py", *sorted((PROJECT_ROOT / "dashboard" / "views").glob("*.py"))]
    seen: set[Path] = set()
    todo = list(roots)
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(project_imports(path) - seen)
    relative = sorted(str(p.relative_to(PROJECT_ROOT)) for p in seen)
    assert "dashboard/queries/traces.py" in relative and "persistence/database/schema.py" in relative
    assert [p for p in relative if not (out / p).is_file()] == []
    for version in shipped_versions():
        name, _, number = version.partition(":")
        assert (out / "models" / name / number / "model.joblib").is_file(), version
    assert not list(out.rglob("__pycache__")) and not (out / "tests").exists()
    dockerfile = (out / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM python:3.11" in dockerfile and "EXPOSE 7860" in dockerfile
    assert "-r requirements.txt -r dashboard/requirements.txt" in dockerfile
    assert '"--server.address", "0.0.0.0"' in dockerfile and '"--server.port", "7860"' in dockerfile
    meta = front_matter((out / "README.md").read_text(encoding="utf-8"))
    assert meta["sdk"] == "docker" and meta["app_port"] == 7860 and len(meta["short_description"]) <= 60
    assert "FUTURISYS_DASHBOARD_DATABASE_URL" in (out / "README.md").read_text(encoding="utf-8")
    assert build_space.find_secrets(out, {}) == []
