"""The production stack in deployments/, checked with real parsers and Prefect's own validation,
since neither Docker images nor Kubernetes can run here: the compose file (docker compose's
own `config` where a compose CLI is installed, else PyYAML), the worker image's Dockerfile
against the README, and the Kubernetes work pool's base job template."""

from __future__ import annotations

import asyncio
import json
import tomllib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from atelier.settings import Settings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
DEPLOYMENTS = REPO / "deployments"
COMPOSE = DEPLOYMENTS / "compose.yaml"
PASSWORDS = {"PREFECT_DB_PASSWORD": "prefect-pw", "CATALOG_DB_PASSWORD": "catalog-pw", "MINIO_ROOT_PASSWORD": "minio-pw-123"}
SETTING_VARIABLES = {f"{Settings.model_config['env_prefix']}{name.upper()}" for name in Settings.model_fields}
ATELIER_SERVICES = ("setup", "worker")  # the services that run the worker image


def compose_cli() -> list[str] | None:
    """The installed compose CLI (the v2 plugin or the standalone v1), or None."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cli = compose_cli()
    if cli is None:
        pytest.skip("no docker compose CLI on this machine")
    return subprocess.run([*cli, "-f", str(COMPOSE), "config"], env={"PATH": "/usr/bin:/bin:/usr/local/bin", **env},
                          capture_output=True, text=True, timeout=60)


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's `${NAME:?message}` (required) and `${NAME:-default}`, for when no compose CLI is here."""
    def value(match: re.Match[str]) -> str:
        name, kind, rest = match["name"], match["kind"], match["rest"]
        if name in env:
            return env[name]
        assert kind == "-", f"{name} is required by the compose file: {rest}"
        return rest

    return re.sub(r"\$\{(?P<name>\w+):(?P<kind>[?-])(?P<rest>[^}]*)\}", value, text)


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    """The compose file as the compose CLI resolves it (interpolated, anchors merged), or where
    none is installed as PyYAML reads it (anchors and merge keys resolved) after interpolation."""
    if compose_cli() is None:
        return yaml.safe_load(interpolate(COMPOSE.read_text(), PASSWORDS))
    done = compose_config(PASSWORDS)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    return dict(item.split("=", 1) for item in env) if isinstance(env, list) else {k: str(v) for k, v in env.items()}


def test_compose_cli_accepts_the_file_and_refuses_it_without_passwords():
    assert compose_config(PASSWORDS).returncode == 0
    refused = compose_config({})
    assert refused.returncode != 0 and "PASSWORD" in refused.stderr


def test_compose_has_the_stack_and_every_atelier_variable_is_a_setting(stack):
    services = stack["services"]
    assert {"prefect-server", "prefect-db", "catalog-db", "minio", "setup", "worker"} <= set(services)
    for name, service in services.items():
        unknown = {key for key in environment(service) if key.startswith("ATELIER_")} - SETTING_VARIABLES
        assert not unknown, f"service {name}: {unknown} are not settings of atelier/settings.py"
    for name in ATELIER_SERVICES:
        env = environment(services[name])
        assert {"ATELIER_DATABASE_URL", "ATELIER_STORE_URL", "ATELIER_S3_ENDPOINT_URL", "PREFECT_API_URL"} <= set(env)
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env)  # the store's keys: the AWS chain only


def test_compose_services_point_at_each_other(stack):
    services = stack["services"]
    worker, catalog_db, prefect_db = (environment(services[n]) for n in ("worker", "catalog-db", "prefect-db"))
    catalog = urlsplit(worker["ATELIER_DATABASE_URL"])
    assert (catalog.scheme, catalog.hostname, catalog.username, catalog.path.lstrip("/")) == (
        "postgresql+psycopg", "catalog-db", catalog_db["POSTGRES_USER"], catalog_db["POSTGRES_DB"])
    assert urlsplit(worker["ATELIER_S3_ENDPOINT_URL"]).hostname == "minio"
    assert worker["AWS_ACCESS_KEY_ID"] == environment(services["minio"])["MINIO_ROOT_USER"]
    assert urlsplit(worker["PREFECT_API_URL"]).hostname == "prefect-server"
    server_db = urlsplit(environment(services["prefect-server"])["PREFECT_API_DATABASE_CONNECTION_URL"])
    assert (server_db.scheme, server_db.hostname, server_db.username) == (
        "postgresql+asyncpg", "prefect-db", prefect_db["POSTGRES_USER"])
    assert catalog.password == catalog_db["POSTGRES_PASSWORD"] == PASSWORDS["CATALOG_DB_PASSWORD"]
    assert worker["AWS_SECRET_ACCESS_KEY"] == PASSWORDS["MINIO_ROOT_PASSWORD"]
    [gpu] = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert environment(services["worker"])["ATELIER_DEVICE"] == "cuda"


def readme_install_step() -> str:
    section = REPO.joinpath("README.md").read_text().split("## Scaling out", 1)[1].split("\n## ", 1)[0]
    [step] = [line.strip() for line in section.splitlines() if re.match(r"\s*python -m pip install ", line)]
    return step


def test_the_dockerfile_installs_the_project_as_the_readme_says():
    dockerfile = (DEPLOYMENTS / "Dockerfile").read_text()
    instructions = [line.strip() for line in dockerfile.splitlines() if line.strip() and not line.startswith("#")]
    assert f"RUN {readme_install_step()}" in instructions
    assert "COPY . ." in instructions
    packages = {name.rstrip("*") for name in
                tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]}
    ignored = {line.strip().rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert not packages & ignored, f"packages left out of the image: {packages & ignored}"
    env_names = set(re.findall(r"\b(ATELIER_[A-Z_]+)=", dockerfile))
    assert env_names <= SETTING_VARIABLES
    assert re.search(r"load_vgg\('caffe'\)", dockerfile), "the build must check the caffe weights are inside"


def base_job_template() -> dict[str, Any]:
    return json.loads((DEPLOYMENTS / "kubernetes" / "base-job-template.json").read_text())


def test_the_job_template_passes_the_prefect_servers_work_pool_validation():
    from jsonschema import Draft202012Validator
    from prefect.server.schemas.actions import WorkPoolCreate

    template = base_job_template()
    WorkPoolCreate(name="atelier-k8s", type="kubernetes", base_job_template=template)
    Draft202012Validator.check_schema(template["variables"])
    for name, schema in template["variables"]["properties"].items():
        if "default" in schema:
            Draft202012Validator(schema).validate(schema["default"])


def test_the_job_template_renders_a_gpu_job_for_the_kubernetes_worker():
    """Rendered by the kubernetes worker's own configuration class, as the worker does for each
    flow run. The template references no block or Prefect variable, so rendering needs no API:
    the client handed in points at a closed port."""
    from prefect.client.orchestration import PrefectClient

    from tests.fixtures.s3 import free_port

    worker = pytest.importorskip("prefect_kubernetes.worker")
    config = asyncio.run(worker.KubernetesWorkerJobConfiguration.from_template_and_values(
        base_job_template(), {"image": "registry.example.com/atelier-worker:0.1.0"},
        client=PrefectClient(f"http://127.0.0.1:{free_port()}/api")))
    [container] = config.job_manifest["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/atelier-worker:0.1.0"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["envFrom"] == [{"secretRef": {"name": "atelier-settings"}}]
    assert config.namespace == "atelier"
    # The kubernetes worker's own template has every key of ours (ours adds no unknown one).
    default = worker.KubernetesWorker.get_default_base_job_template()["job_configuration"]
    assert set(base_job_template()["job_configuration"]) <= set(default)


def test_the_settings_secret_holds_settings_and_aws_credentials_only():
    secret = yaml.safe_load((DEPLOYMENTS / "kubernetes" / "atelier-settings.example.yaml").read_text())
    assert (secret["kind"], secret["metadata"]["name"]) == ("Secret", "atelier-settings")
    keys = set(secret["stringData"])
    assert {"ATELIER_DATABASE_URL", "ATELIER_STORE_URL"} <= keys
    assert {key for key in keys if not key.startswith("AWS_")} <= SETTING_VARIABLES
    assert "ATELIER_HOST" not in keys, "every pod must be a host of its own (its hostname)"
