"""The Helm chart, linted and rendered through Helm's own Go SDK (``helm-python-sdk``),
then its manifests read back and checked against what the processes really take."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from omega.constellation import Settings, load_admin_token, load_keys, load_release_keys
from omega.helper.service import SECRET_FILE
from omega.protocol.aggregation import parse_secret

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "omega"
PRODUCTION = yaml.safe_load((CHART / "values-production.yaml").read_text())
HELPER_SIDE = yaml.safe_load((CHART / "values-helper.yaml").read_text())
Manifest = dict[str, Any]


def render(helm: ModuleType, values: dict[str, Any]) -> list[Manifest]:
    with helm.Chart.load(str(CHART)) as chart:
        files = chart.render(values, name="omega", namespace="omega")
    return [
        doc
        for name, text in sorted(files.items())
        if name.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def kinds(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def container(deployment: Manifest) -> Manifest:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    result: Manifest = only
    return result


def env_of(c: Manifest) -> dict[str, Manifest]:
    return {e["name"]: e for e in c.get("env", [])}


@pytest.mark.parametrize(
    "values", [{}, PRODUCTION, HELPER_SIDE], ids=["default", "production", "helper"]
)
def test_lint_is_clean(helm: ModuleType, values: dict[str, Any]) -> None:
    report = helm.lint(str(CHART), values, strict=True)
    assert report["errors"] == []
    # Severity 1 is information ("icon is recommended"); 2 and 3 are warnings and errors.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize(
    "values", [{}, PRODUCTION, HELPER_SIDE], ids=["default", "production", "helper"]
)
def test_every_deployment_is_probed_hardened_and_sized(
    helm: ModuleType, values: dict[str, Any]
) -> None:
    deployments = kinds(render(helm, values), "Deployment")
    assert deployments
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        assert pod["automountServiceAccountToken"] is False, name
        c = container(deployment)
        assert c["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], name
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]), name
        assert {"cpu", "memory"} <= set(c["resources"]["limits"]), name
        assert "readinessProbe" in c, name
        if c["name"] == "worker":
            continue  # no HTTP; see worker.yaml
        port = next(a for a in c["args"] if a.startswith("--port="))
        assert c["ports"] == [{"name": "http", "containerPort": int(port.split("=")[1])}]
        # A loopback default would leave every probe and Service unanswered.
        assert "--host=0.0.0.0" in c["args"], name
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, (name, probe)


@pytest.mark.parametrize(
    "values", [{}, PRODUCTION, HELPER_SIDE], ids=["default", "production", "helper"]
)
def test_every_command_is_what_the_cli_takes(
    helm: ModuleType,
    values: dict[str, Any],
    parse_cli: Callable[[Sequence[str]], dict[str, Any]],
) -> None:
    for name, deployment in kinds(render(helm, values), "Deployment").items():
        c = container(deployment)
        options = parse_cli(c["args"])
        if c["name"] != "worker":
            assert options["host"] == "0.0.0.0", name
            assert options["port"] == c["ports"][0]["containerPort"], name


@pytest.mark.postgres
def test_worker_readiness_probe_asks_postgresql(helm: ModuleType, postgres_url: str) -> None:
    worker = container(kinds(render(helm, {}), "Deployment")["omega-worker"])
    command = [sys.executable, *worker["readinessProbe"]["exec"]["command"][1:]]
    for url, ready in ((postgres_url, True), ("postgresql://nobody@127.0.0.1:1/none", False)):
        env = {**os.environ, "OMEGA_DB_URL": url}
        answer = subprocess.run(command, capture_output=True, timeout=60, env=env)
        assert (answer.returncode == 0) is ready, answer.stderr


def test_defaults_run_the_three_processes_with_secrets_from_secrets(helm: ModuleType) -> None:
    manifests = render(helm, {})
    deployments = kinds(manifests, "Deployment")
    assert set(deployments) == {"omega-constellation", "omega-worker", "omega-helper"}
    serve = container(deployments["omega-constellation"])
    assert serve["args"][0] == "serve"
    env = env_of(serve)
    for name, key in (
        ("OMEGA_DB_URL", "database-url"),
        ("OMEGA_JWT_KEYS", "jwt-keys"),
        ("OMEGA_RELEASE_KEYS", "release-keys"),
        ("OMEGA_ADMIN_TOKEN", "admin-token"),
    ):
        assert env[name]["valueFrom"]["secretKeyRef"]["key"] == key
    assert env["OMEGA_DB_URL"]["valueFrom"]["secretKeyRef"]["name"] == "omega-database"
    worker = container(deployments["omega-worker"])
    # `omega worker` reads the URL from --db only: Kubernetes fills it from the Secret.
    assert "--db=$(OMEGA_DB_URL)" in worker["args"]
    assert "secretKeyRef" in env_of(worker)["OMEGA_DB_URL"]["valueFrom"]
    for c in (serve, worker):
        for variable in c.get("env", []):
            assert "value" not in variable, variable  # nothing secret inline
    config = kinds(manifests, "ConfigMap")["omega-config"]["data"]
    assert config["OMEGA_FEDERATION_INTERVAL"] == "0"  # the worker runs the rounds
    assert kinds(manifests, "HorizontalPodAutoscaler") == {}
    assert kinds(manifests, "Ingress") == {}


def test_config_names_are_real_settings(helm: ModuleType) -> None:
    known = {f"OMEGA_{name.upper()}" for name in Settings.model_fields}
    for values in ({}, PRODUCTION):
        config = kinds(render(helm, values), "ConfigMap")["omega-config"]["data"]
        unknown = {name for name in config if name.startswith("OMEGA_")} - known
        assert unknown == set(), unknown


def test_generated_secrets_are_what_the_servers_load(helm: ModuleType, tmp_path: Path) -> None:
    secrets = kinds(render(helm, {}), "Secret")
    auth = {k: base64.b64decode(v).decode() for k, v in secrets["omega-auth"]["data"].items()}
    settings = Settings(
        data_dir=tmp_path,
        jwt_keys=json.loads(auth["jwt-keys"]),
        release_keys=json.loads(auth["release-keys"]),
        admin_token=auth["admin-token"],
    )
    ring = load_keys(settings)
    assert ring.signer.algorithm == "EdDSA" and ring.signer.private is not None
    assert len(load_release_keys(settings).public_keys()) == 1
    assert not (tmp_path / "release-keys").exists()  # from the Secret, not a ring per pod
    assert len(load_admin_token(settings)) >= 32
    shared = secrets["omega-helper-secret"]["data"]["aggregation-secret"]
    assert len(parse_secret(base64.b64decode(shared).decode(), source="chart")) == 32
    assert secrets["omega-auth"]["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_constellation_worker_and_helper_share_one_secret_file(helm: ModuleType) -> None:
    deployments = kinds(render(helm, {}), "Deployment")
    helper = deployments["omega-helper"]
    h = container(helper)
    data_dir = next(a for a in h["args"] if a.startswith("--data-dir=")).split("=")[1]
    mounts = {m["name"]: m for m in h["volumeMounts"]}
    assert mounts["secret"]["mountPath"] == f"{data_dir}/{SECRET_FILE}"
    assert mounts["data"]["mountPath"] == data_dir
    volumes = {v["name"]: v for v in helper["spec"]["template"]["spec"]["volumes"]}
    assert volumes["secret"]["secret"]["secretName"] == "omega-helper-secret"
    assert "persistentVolumeClaim" in volumes["data"]
    assert helper["spec"]["replicas"] == 1 and helper["spec"]["strategy"]["type"] == "Recreate"
    for name in ("omega-constellation", "omega-worker"):
        deployment = deployments[name]
        c = container(deployment)
        assert "--helper-url=http://omega-helper:8100" in c["args"]
        path = next(a for a in c["args"] if a.startswith("--helper-secret-file=")).split("=")[1]
        mount = next(m for m in c["volumeMounts"] if m["name"] == "helper-secret")
        assert path == f"{mount['mountPath']}/aggregation-secret"
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes["helper-secret"]["secret"]["secretName"] == "omega-helper-secret"


def test_hpa_only_when_enabled(helm: ModuleType) -> None:
    on = {"constellation": {"autoscaling": {"enabled": True, "maxReplicas": 8}}}
    manifests = render(helm, on)
    hpa = kinds(manifests, "HorizontalPodAutoscaler")["omega-constellation"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "omega-constellation"
    assert hpa["spec"]["maxReplicas"] == 8
    # The HPA owns the replica count; the Deployment must not fight it.
    assert "replicas" not in kinds(manifests, "Deployment")["omega-constellation"]["spec"]
    off = kinds(render(helm, {}), "Deployment")["omega-constellation"]["spec"]
    assert off["replicas"] == 2


def test_rate_limits_count_in_redis_when_its_secret_is_given(helm: ModuleType) -> None:
    """Default: no OMEGA_RATE_LIMIT_URL (the replicas count in PostgreSQL); a Secret
    holding a Redis URL moves the counts there, read from the Secret, never from values."""
    default = env_of(container(kinds(render(helm, {}), "Deployment")["omega-constellation"]))
    assert "OMEGA_RATE_LIMIT_URL" not in default
    redis = {"constellation": {"rateLimit": {"existingSecret": "omega-redis"}}}
    serve = container(kinds(render(helm, redis), "Deployment")["omega-constellation"])
    reference = env_of(serve)["OMEGA_RATE_LIMIT_URL"]["valueFrom"]["secretKeyRef"]
    assert reference == {"name": "omega-redis", "key": "rate-limit-url"}
    assert Settings.model_fields["rate_limit_url"] is not None  # the variable is a setting


def test_production_values(helm: ModuleType) -> None:
    manifests = render(helm, PRODUCTION)
    assert set(kinds(manifests, "Deployment")) == {"omega-constellation", "omega-worker"}
    assert kinds(manifests, "Secret") == {}  # all made beforehand, none in values
    ingress = kinds(manifests, "Ingress")["omega-constellation"]
    assert ingress["spec"]["tls"][0]["secretName"] == "omega-tls"
    assert [p["path"] for p in ingress["spec"]["rules"][0]["http"]["paths"]] == ["/api/"]
    serve = container(kinds(manifests, "Deployment")["omega-constellation"])
    assert "--helper-url=https://helper.partner.example" in serve["args"]
    assert env_of(serve)["OMEGA_JWT_KEYS"]["valueFrom"]["secretKeyRef"]["name"] == "omega-auth"
    assert "omega-constellation" in kinds(manifests, "HorizontalPodAutoscaler")


def test_helper_side_values_need_no_database(helm: ModuleType) -> None:
    manifests = render(helm, HELPER_SIDE)
    assert {m["kind"] for m in manifests} == {"PersistentVolumeClaim", "Deployment", "Service"}
    h = container(kinds(manifests, "Deployment")["omega-helper"])
    assert "env" not in h and "envFrom" not in h


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"database": {"existingSecret": ""}}, "database.existingSecret"),
        (
            {"database": {"existingSecret": "", "url": "sqlite:///x.db"}},
            "postgresql:// URL",
        ),
        (
            {"helper": {"enabled": False}, "constellation": {"helper": {"url": "https://h"}}},
            "existingSecret",
        ),
    ],
    ids=["no-database", "sqlite", "helper-without-secret"],
)
def test_values_that_cannot_work_fail_the_render(
    helm: ModuleType, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render(helm, values)
