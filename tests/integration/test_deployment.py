"""The production topology as files: docker-compose.yml and the Kubernetes manifests validate against
their published schemas (shipped in packages, not fetched), and start what the embedded platform starts."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from crm.platform import SERVICES, service_command
from shared.contract import topics
from shared.settings import Settings
from tests.conftest import ROOT

K8S_VERSION = "1.37.0"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _manifests() -> list[tuple[Path, dict]]:
    docs = []
    for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")):
        docs += [(path, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_the_compose_file_is_valid_against_the_compose_specification(compose):
    schema = json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())
    jsonschema.validate(compose, schema)


@pytest.mark.parametrize("path,doc", _manifests(), ids=lambda v: v.name if isinstance(v, Path) else v.get("kind"))
def test_every_kubernetes_manifest_is_valid_against_the_kubernetes_schemas(path, doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_compose_runs_every_service_with_the_command_the_embedded_platform_uses(compose):
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["crm"]' in dockerfile
    services = compose["services"]
    for name in SERVICES:
        assert services[name]["command"] == service_command(name)
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        # The same image for all four.
        assert services[name]["image"] == services["identity"]["image"]
    assert services["topics"]["command"] == ["topics"]


def test_kubernetes_runs_every_service_with_the_same_command_and_probes():
    # The console (issue 16) is checked on its own below: it consumes nothing, so it has no autoscaler.
    deployments = {d["metadata"]["name"]: d for _, d in _manifests()
                   if d["kind"] == "Deployment" and d["metadata"]["name"] != "console"}
    hpas = {d["metadata"]["name"] for _, d in _manifests() if d["kind"] == "HorizontalPodAutoscaler"}
    services = {d["metadata"]["name"] for _, d in _manifests() if d["kind"] == "Service"} - {"console"}
    assert set(deployments) == set(SERVICES) == hpas == services
    for name, d in deployments.items():
        container = d["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == service_command(name)
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["requests"] and container["resources"]["limits"]
        port = container["ports"][0]["containerPort"]
        assert port == getattr(Settings(_env_file=None), f"{name}_port")


def test_the_console_runs_from_the_same_image_over_the_services_apis(compose):
    console = compose["services"]["console"]
    assert console["command"] == ["console"] and console["image"] == compose["services"]["identity"]["image"]
    assert console["ports"] == ["8000:8000"] and console["env_file"] == [".env"]
    assert {n: d["condition"] for n, d in console["depends_on"].items()} == dict.fromkeys(SERVICES, "service_healthy")
    urls = {f"CRM_CONSOLE_{n.upper()}_URL": f"http://{n}:{getattr(Settings(_env_file=None), f'{n}_port')}"
            for n in SERVICES}
    assert {k: console["environment"][k] for k in urls} == urls
    (deployment,) = [d for _, d in _manifests() if d["kind"] == "Deployment" and d["metadata"]["name"] == "console"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["console"] and container["ports"][0]["containerPort"] == 8000
    assert (container["livenessProbe"]["httpGet"]["path"], container["readinessProbe"]["httpGet"]["path"]) == (
        "/livez", "/readyz")
    assert {e["name"] for e in container["env"]} == set(urls)
    assert "npm ci" in (ROOT / "deploy" / "Dockerfile").read_text()


def test_compose_starts_services_only_once_their_dependencies_are_healthy(compose):
    services = compose["services"]
    for name in ("kafka", "mongo", "otel-collector", *SERVICES):
        assert "healthcheck" in services[name], f"{name} has no health check"
    for name in SERVICES:
        deps = services[name]["depends_on"]
        assert deps["kafka"]["condition"] == "service_healthy"
        assert deps["mongo"]["condition"] == "service_healthy"
        assert deps["topics"]["condition"] == "service_completed_successfully"
    assert "--replSet" in services["mongo"]["command"]
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper


def test_no_secret_is_committed_and_services_read_them_from_an_env_file(compose):
    for name in SERVICES:
        env = compose["services"][name]["environment"]
        assert all(k not in env for k in ("CRM_PSEUDONYM_SECRET", "CRM_API_KEYS", "CRM_TOKEN_SECRET", "CRM_MASTER_KEY",
                                          "CRM_IDENTITY_NAME_INDEX_KEY"))
        assert compose["services"][name]["env_file"] == [".env"]
    example = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert example == {"CRM_PSEUDONYM_SECRET": "", "CRM_API_KEYS": "", "CRM_TOKEN_SECRET": "", "CRM_MASTER_KEY": "",
                       "CRM_IDENTITY_NAME_INDEX_KEY": ""}
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


def test_the_collector_redacts_personal_data_before_any_exporter(compose):
    config = yaml.safe_load((ROOT / "deploy" / "otel-collector.yaml").read_text())
    pipeline = config["service"]["pipelines"]["traces"]
    assert "redaction" in pipeline["processors"]
    assert pipeline["processors"].index("redaction") < pipeline["processors"].index("batch")
    import re

    patterns = [re.compile(p) for p in config["processors"]["redaction"]["blocked_values"]]
    for phone in ("13800138000", "+86 138 0013 8000", "138-0013-8000", "008613800138000"):
        assert any(p.search(f"x {phone} y") for p in patterns), phone
    assert compose["services"]["jaeger"]["ports"] == ["16686:16686"]


def test_prometheus_scrapes_every_service():
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets = config["scrape_configs"][0]["static_configs"][0]["targets"]
    settings = Settings(_env_file=None)
    assert targets == [f"{name}:{getattr(settings, f'{name}_port')}" for name in SERVICES]


def test_the_topic_step_creates_every_topic_the_services_use():
    # `crm topics` creates shared.topics.ALL_TOPICS; every topic a service consumes or publishes is there.
    used = {topics.CUSTOMER_EVENTS, topics.CUSTOMER_MERGED, topics.DEADLETTER, *topics.CHANNEL_TOPICS.values(),
            *topics.VIEW_PART_TOPICS, topics.CAMPAIGN_TOUCHES}
    assert used <= set(topics.ALL_TOPICS)
