"""Through a real ``bentoml serve``: a broken default model and an untrusted pickle never stop the service."""
from __future__ import annotations

import shutil
import sys

import httpx
import pytest

from attrition.synthetic import EXAMPLE_EMPLOYEE
from registry.aliases import CHAMPION, read_aliases
from tests.registry.conftest import MODELS_DIR
from tests.registry.test_trust import plant_exploit
from tests.service.server import free_port, serving

pytestmark = pytest.mark.serve


def test_a_broken_default_and_an_untrusted_pickle_are_refused_listed_and_the_service_answers(tmp_path):
    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR, models)
    champion = read_aliases(models)[CHAMPION]
    (models / champion.replace(":", "/") / "card.json").write_text('{"name": "half a card",')
    marker = tmp_path / "exploit-ran"
    plant_exploit(models, "evil", marker)
    others = sorted(f"{card.parent.parent.name}:{card.parent.name}" for card in MODELS_DIR.glob("*/*/card.json")
                    if f"{card.parent.parent.name}:{card.parent.name}" != champion)

    env = {"BENTOML_HOME": str(tmp_path / "bentoml"), "FUTURISYS_STATE_DIR": str(tmp_path / "state"),
           "FUTURISYS_MODELS_DIR": str(models), "DATABASE_URL": f"sqlite:///{tmp_path / 'traces.db'}"}
    port = free_port()
    command = [sys.executable, "-m", "bentoml", "serve", "service:AttritionService",
               "--host", "127.0.0.1", "--port", str(port)]
    log = tmp_path / "serve.log"
    # Live, not ready: /readyz stays 503 while the default model is invalid.
    with serving(command, env, log, port, "/livez", timeout_s=180) as url, \
            httpx.Client(base_url=url, timeout=60) as client:
        listed = {model["tag"]: model for model in client.get("/models").json()["models"]}
        assert listed[champion]["valid"] is False and listed[champion]["default"] is True
        assert listed[champion]["invalid_reason"] == ("refused at import: card.json is not readable JSON: "
                                                      "JSONDecodeError")
        assert listed["evil:v1"]["valid"] is False
        assert "evil:v1 is not in the trusted manifest" in listed["evil:v1"]["invalid_reason"]
        assert all(listed[tag]["valid"] for tag in others)
        assert client.get("/readyz").status_code == 503

        unavailable = client.post("/predict", json={"employee": EXAMPLE_EMPLOYEE})
        assert unavailable.status_code == 503
        assert champion in unavailable.json()["error"] and unavailable.json()["detail"][0]["field"] == "model"
        for tag in others:
            answer = client.post("/predict", json={"employee": EXAMPLE_EMPLOYEE, "model": tag})
            assert answer.status_code == 200 and answer.json()["fallback"] is False, tag
        # The untrusted version falls back to the default, which is refused too: 503, and the pickle stays closed.
        assert client.post("/predict", json={"employee": EXAMPLE_EMPLOYEE, "model": "evil"}).status_code == 503
    text = log.read_text()
    assert f"Refusing model version {champion}" in text and "Refusing model version evil:v1" in text
    assert not marker.exists()
