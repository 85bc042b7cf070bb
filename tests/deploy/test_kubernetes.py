"""The Kubernetes manifest: valid against the Kubernetes schemas offline, and wired as the service needs."""
from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import PROJECT_ROOT

MANIFEST = PROJECT_ROOT / "deploy" / "kubernetes" / "attrition.yaml"
KUBERNETES_VERSION = "1.37.0"


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    """The manifest's resources by ``Kind/name``."""
    loaded = [doc for doc in yaml.safe_load_all(MANIFEST.read_text(encoding="utf-8")) if doc]
    return {f"{doc['kind']}/{doc['metadata']['name']}": doc for doc in loaded}


def test_every_resource_is_valid_for_kubernetes_strictly(documents):
    assert set(documents) == {"Service/futurisys-attrition", "Service/futurisys-attrition-pods",
                              "StatefulSet/futurisys-attrition", "HorizontalPodAutoscaler/futurisys-attrition",
                              "PodDisruptionBudget/futurisys-attrition", "CronJob/futurisys-attrition-retention"}
    for document in documents.values():
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_validation_catches_a_malformed_resource(documents):
    broken = copy.deepcopy(documents["StatefulSet/futurisys-attrition"])
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def _container(documents) -> dict[str, Any]:
    (container,) = documents["StatefulSet/futurisys-attrition"]["spec"]["template"]["spec"]["containers"]
    return container


def test_each_pod_keeps_its_journal_on_a_volume_of_its_own_that_is_never_released(documents):
    stateful = documents["StatefulSet/futurisys-attrition"]["spec"]
    env = {item["name"]: item for item in _container(documents)["env"]}
    (template,) = stateful["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in _container(documents)["volumeMounts"]}
    assert mounts[template["metadata"]["name"]] == env["FUTURISYS_STATE_DIR"]["value"]
    assert template["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert stateful["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert env["FUTURISYS_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_the_database_url_comes_from_a_secret_and_probes_use_the_health_routes(documents):
    container = _container(documents)
    env = {item["name"]: item for item in container["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "futurisys-database", "key": "url"}
    assert "value" not in env["DATABASE_URL"] and "value" not in env["FUTURISYS_API_KEYS"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    (port,) = container["ports"]
    assert str(port["containerPort"]) == env["BENTOML_PORT"]["value"] == "7860"
    assert env["FUTURISYS_WORKERS"]["value"] == "2" and container["resources"]["requests"]["cpu"] == "2"


def test_the_service_autoscaler_and_disruption_budget_all_target_the_pods(documents):
    labels = documents["StatefulSet/futurisys-attrition"]["spec"]["template"]["metadata"]["labels"]
    for name in ("Service/futurisys-attrition", "Service/futurisys-attrition-pods"):
        assert documents[name]["spec"]["selector"].items() <= labels.items()
    assert documents["PodDisruptionBudget/futurisys-attrition"]["spec"]["selector"]["matchLabels"].items() \
        <= labels.items()
    target = documents["HorizontalPodAutoscaler/futurisys-attrition"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("StatefulSet", "futurisys-attrition")
    assert documents["StatefulSet/futurisys-attrition"]["spec"]["serviceName"] == "futurisys-attrition-pods"


def test_the_retention_job_purges_with_the_service_image_and_database(documents):
    job = documents["CronJob/futurisys-attrition-retention"]["spec"]
    (purge,) = job["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert purge["command"] == ["python", "-m", "persistence", "purge"] and job["concurrencyPolicy"] == "Forbid"
    assert purge["image"] == _container(documents)["image"]
    env = {item["name"]: item for item in purge["env"]}
    assert int(env["FUTURISYS_TRACE_RETENTION_DAYS"]["value"]) >= 183  # at least six months of logs
    service_env = {item["name"]: item for item in _container(documents)["env"]}
    assert env["DATABASE_URL"]["valueFrom"] == service_env["DATABASE_URL"]["valueFrom"]
