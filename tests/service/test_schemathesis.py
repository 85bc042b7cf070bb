"""schemathesis against a real ``bentoml serve``: every operation of its own OpenAPI document, every check.

The document the service serves (``/docs.json``) is the contract: each
operation is called with data its schemas accept and with data they refuse,
and each answer must be one the document declares (status, content type,
body schema), refuse what the schema refuses, honour the API key scheme, and
never be a server error. Examples are few per operation, so the whole run
stays within about half a minute.
"""
from __future__ import annotations

import shutil
from collections import Counter

import httpx

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.keys import SCOPES, create_key, digest_of
from tests.conftest import PROJECT_ROOT
from tests.service.server import bentoml_serve

pytestmark = pytest.mark.serve

MAX_EXAMPLES = 12
"""Generated examples per operation and mode (the coverage of the schema's edges comes on top)."""
BATCH_CAP = 25

INCOMPLETE_SCHEMAS = {"POST /predict", "POST /predict_batch", "GET /predictions", "POST /outcomes"}
"""Operations whose schema cannot say every rule the service checks: a career whose years in the
company exceed its years of experience, a stored employee that does not exist, a period before
1970 or after 9999-12-30, an outcome of an employee neither imported nor tagging a trace, or
known on a day after tomorrow. Valid-looking data may rightly be refused there, so the check that every
schema-valid request is accepted (positive_data_acceptance) does not apply to them."""


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """A running service with one API key of every scope; yields its base URL and the key."""
    home = tmp_path_factory.mktemp("schemathesis")
    shutil.copytree(PROJECT_ROOT / "models", home / "models")
    key, entry = create_key("schemathesis", SCOPES)
    env = {"BENTOML_HOME": str(home / "bentoml"), "FUTURISYS_STATE_DIR": str(home / "state"),
           "FUTURISYS_MODELS_DIR": str(home / "models"), "DATABASE_URL": f"sqlite:///{home / 'traces.db'}",
           "FUTURISYS_API_KEYS": entry.entry(), "FUTURISYS_MAX_BATCH_ROWS": str(BATCH_CAP),
           "FUTURISYS_ACCESS_LOG": "false"}
    with bentoml_serve(env, home / "serve.log") as url:
        yield url, key, home / "serve.log"


@pytest.fixture(scope="module")
def api_schema(service):
    """The service's own OpenAPI document, loaded by schemathesis, with every check enabled."""
    url, key, _log = service
    config = SchemathesisConfig.from_dict({
        "base-url": url,
        "headers": {"Authorization": f"Bearer {key}"},
        "generation": {"max-examples": MAX_EXAMPLES, "mode": "all", "deterministic": True,
                       "database": "none"},
        "checks": {"enabled": True},
        "request-timeout": 30,
    })
    return schemathesis.openapi.from_url(f"{url}/docs.json", config=config)


schema = schemathesis.pytest.from_fixture("api_schema")
CALLS: Counter[str] = Counter()
"""Generated calls per operation in this run (printed at the end)."""


@schema.parametrize()
def test_every_operation_answers_as_its_document_says(case):
    operation = f"{case.method} {case.path}"
    CALLS[operation] += 1
    excluded = [positive_data_acceptance] if operation in INCOMPLETE_SCHEMAS else []
    case.call_and_validate(excluded_checks=excluded)


def test_the_api_key_and_its_hash_never_reach_the_log(service):
    url, key, log_path = service
    wrong = "fk_zzwrongkey-13579"
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert client.get("/models", headers={"X-API-Key": wrong}).status_code == 401
        assert client.post("/predict", json={}, headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
    if CALLS:
        documented = {op: n for op, n in CALLS.items() if op.split()[0] in ("GET", "POST") and n > 1}
        print(f"schemathesis: {sum(CALLS.values())} cases; {len(documented)} operations: {documented}; "
              f"{sum(CALLS.values()) - sum(documented.values())} unsupported-method or single probes")
    log = log_path.read_text(encoding="utf-8", errors="replace")
    assert [secret for secret in (key, digest_of(key).hex(), wrong) if secret in log] == []
