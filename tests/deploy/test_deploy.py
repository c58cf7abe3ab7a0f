"""The image and the compose file, checked without a container engine.

No image is built here (there is no Docker engine): hadolint lints the Dockerfile, the
HEALTHCHECK command runs against real servers started the way the image starts them,
and Docker Compose's own ``config`` validates and normalises ``compose.yaml``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from omega.constellation import Settings, create_app
from omega.helper.app import create_helper_app
from omega.helper.service import SECRET_FILE, HelperService
from omega.protocol.aggregation import parse_secret

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


# -- Dockerfile -------------------------------------------------------------------------------
def test_hadolint_finds_nothing(hadolint: str) -> None:
    answer = subprocess.run(
        [hadolint, "--failure-threshold", "style", "-f", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(answer.stdout) == [], answer.stdout
    assert answer.returncode == 0, answer.stderr


def test_hadolint_does_flag_a_bad_dockerfile(hadolint: str) -> None:
    # The control: an empty list above means a clean file, not a linter that ran nothing.
    bad = "FROM python:latest\nRUN apt-get install gcc\nRUN pip install requests\n"
    answer = subprocess.run(
        [hadolint, "-f", "json", "-"], input=bad, capture_output=True, text=True, timeout=60
    )
    codes = {finding["code"] for finding in json.loads(answer.stdout)}
    assert {"DL3007", "DL3008", "DL3013"} <= codes
    assert answer.returncode != 0


def test_the_image_is_multi_stage_slim_and_non_root() -> None:
    steps = _instructions()
    starts = [i for i, (name, _) in enumerate(steps) if name == "FROM"]
    assert len(starts) == 2
    builder, final = steps[starts[0] : starts[1]], steps[starts[1] :]
    assert builder[0][1].endswith("AS builder")
    images = {a.split("=")[0]: a.split("=", 1)[1] for n, a in steps if n == "ARG" and "=" in a}
    assert final[0][1] == "${PYTHON_IMAGE}"
    assert images["PYTHON_IMAGE"].startswith("python:3.11") and "slim" in images["PYTHON_IMAGE"]
    assert "pip wheel" in " ".join(a for n, a in builder if n == "RUN")
    final_runs = " ".join(a for n, a in final if n == "RUN")
    for compiler in ("gcc", "build-essential", "apt-get"):
        assert compiler not in final_runs
    # Installed offline from the builder's wheels, which stay out of the image's layers.
    assert "--no-index" in final_runs and "from=builder" in final_runs
    user = next(a for n, a in final if n == "USER")
    assert user.split(":")[0] not in ("0", "root")
    assert dict(final)["ENTRYPOINT"] == '["omega"]'


def test_the_model_is_checked_at_build_time() -> None:
    runs = " ".join(a for n, a in _instructions() if n == "RUN")
    assert "shared_embedder" in runs and "(384,)" in runs


def test_the_build_context_keeps_what_the_wheel_needs() -> None:
    rules = [
        line
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert rules[0] == "*"
    assert {"!pyproject.toml", "!README.md", "!src/"} <= set(rules)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthcheck(url: str) -> subprocess.CompletedProcess[str]:
    """The image's HEALTHCHECK command, run as Docker would, against ``url``."""
    args = next(a for n, a in _instructions() if n == "HEALTHCHECK")
    command = json.loads(args.split(" CMD ", 1)[1])
    command[0] = sys.executable  # the image's `python`
    env = {**os.environ, "HEALTHCHECK_URL": url}
    return subprocess.run(command, capture_output=True, text=True, timeout=30, env=env)


@contextmanager
def _running(command: list[str], port: int, tmp_path: Path) -> Iterator[str]:
    """Run an `omega` server until the HEALTHCHECK passes on ``port``; stop it after."""
    log = tmp_path / f"{command[0]}.log"
    env = {**os.environ, "OMEGA_DATA_DIR": str(tmp_path / "data"), "OMEGA_FEDERATION_INTERVAL": "0"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "omega.cli", *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        deadline = time.monotonic() + 60
        while _healthcheck(url).returncode != 0:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_healthcheck_passes_on_both_servers_and_fails_on_nothing(tmp_path: Path) -> None:
    port = _free_port()
    with _running(["serve", "--host=127.0.0.1", f"--port={port}"], port, tmp_path) as url:
        assert _healthcheck(url).returncode == 0
    port = _free_port()
    helper = ["helper", "serve", "--host=127.0.0.1", f"--port={port}"]
    with _running([*helper, f"--data-dir={tmp_path / 'helper'}"], port, tmp_path) as url:
        assert _healthcheck(url).returncode == 0
    assert _healthcheck(f"http://127.0.0.1:{_free_port()}/healthz").returncode != 0


def test_healthz_is_the_path_both_apps_serve(tmp_path: Path) -> None:
    constellation = create_app(Settings(data_dir=tmp_path / "data", gc_freeze=False))
    helper = create_helper_app(HelperService.open(tmp_path / "helper"))
    for app in (constellation, helper):
        assert "get" in app.openapi()["paths"]["/healthz"]


# -- compose.yaml -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose_model(compose: str) -> dict[str, Any]:
    """compose.yaml as Docker Compose validates and normalises it (no engine needed)."""
    env = {"PATH": os.environ.get("PATH", ""), "DOCKER_HOST": "unix:///nonexistent.sock"}
    answer = subprocess.run(
        [compose, "-f", str(COMPOSE), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert answer.returncode == 0, answer.stderr
    model: dict[str, Any] = json.loads(answer.stdout)
    return model


def test_compose_file_parses_as_plain_yaml() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    assert set(raw["services"]) == {"postgres", "constellation", "worker", "helper"}


def test_compose_services_listen_on_all_interfaces(compose_model: dict[str, Any]) -> None:
    services = compose_model["services"]
    assert services["constellation"]["command"][:2] == ["serve", "--host=0.0.0.0"]
    assert services["helper"]["command"][:3] == ["helper", "serve", "--host=0.0.0.0"]
    assert services["worker"]["command"][0] == "worker"
    assert services["postgres"]["image"].startswith("pgvector/pgvector:pg")


def test_compose_commands_are_what_the_cli_takes(
    compose_model: dict[str, Any], parse_cli: Callable[[Sequence[str]], dict[str, Any]]
) -> None:
    services = compose_model["services"]
    serve = parse_cli(services["constellation"]["command"])
    helper = parse_cli(services["helper"]["command"])
    worker = parse_cli(services["worker"]["command"])
    assert (serve["host"], serve["port"]) == ("0.0.0.0", 8000)
    assert (helper["host"], helper["port"]) == ("0.0.0.0", 8100)
    assert serve["helper_url"] == worker["helper_url"] == "http://helper:8100"
    assert serve["helper_secret_file"] == worker["helper_secret_file"]
    # The worker takes its URL from --db only; the server from OMEGA_DB_URL.
    assert worker["db"] == services["constellation"]["environment"]["OMEGA_DB_URL"]


def test_compose_healthchecks(compose_model: dict[str, Any]) -> None:
    services = compose_model["services"]
    for name, port in (("constellation", 8000), ("helper", 8100)):
        test = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/healthz" in test and "urllib" in test
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    # The worker serves no HTTP: the image's check would only ever fail there.
    assert services["worker"]["healthcheck"] == {"disable": True}
    assert services["constellation"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_volumes_persist_and_the_helper_keeps_its_own(
    compose_model: dict[str, Any],
) -> None:
    services = compose_model["services"]

    def volumes(name: str) -> dict[str, str]:
        return {
            v["source"]: v["target"]
            for v in services[name].get("volumes", [])
            if v["type"] == "volume"
        }

    assert volumes("postgres") == {"postgres-data": "/var/lib/postgresql/data"}
    assert volumes("constellation") == {"constellation-data": "/var/lib/omega/data"}
    assert volumes("helper") == {"helper-data": "/var/lib/omega/helper"}
    assert set(compose_model["volumes"]) == {"postgres-data", "constellation-data", "helper-data"}
    # Its own trust domain: no network path to PostgreSQL, no volume of the others.
    assert set(services["helper"]["networks"]) == {"helper"}
    assert "helper" not in services["postgres"]["networks"]


def test_compose_secrets_come_from_files(compose_model: dict[str, Any]) -> None:
    secrets = compose_model["secrets"]
    assert set(secrets) == {"postgres_password", "admin_token", "helper_secret"}
    assert all("file" in s for s in secrets.values())
    services = compose_model["services"]
    helper_target = next(s["target"] for s in services["helper"]["secrets"])
    assert helper_target == f"/var/lib/omega/helper/{SECRET_FILE}"
    assert "--data-dir=/var/lib/omega/helper" in services["helper"]["command"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")
    for service in services.values():
        for value in (service.get("environment") or {}).values():
            assert not re.search(r"://[^/@]*:[^/@]*@", str(value)), "a password in the environment"


def test_compose_entrypoint_turns_secret_files_into_environment(
    compose_model: dict[str, Any], tmp_path: Path
) -> None:
    # The shell the constellation and worker start under, with the secrets moved to a
    # temporary folder and a stand-in `omega` that prints what it was given.
    entrypoint = compose_model["services"]["constellation"]["entrypoint"]
    assert entrypoint[:2] == ["/bin/sh", "-c"]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "postgres_password").write_text("pg-pass\n")
    (secrets / "admin_token").write_text("admin-token\n")
    # `config` keeps compose's `$$` escapes; the engine runs them as `$`.
    script = entrypoint[2].replace("$$", "$").replace("/run/secrets", str(secrets))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "omega"
    fake.write_text('#!/bin/sh\necho "$PGPASSWORD|$OMEGA_ADMIN_TOKEN|$*"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    command = ["/bin/sh", "-c", script, *entrypoint[3:], "serve", "--host=0.0.0.0"]
    answer = subprocess.run(command, capture_output=True, text=True, timeout=30, env=env)
    assert answer.stdout.strip() == "pg-pass|admin-token|serve --host=0.0.0.0", answer.stderr


def test_make_secrets(tmp_path: Path) -> None:
    shutil.copy(DEPLOY / "make-secrets", tmp_path / "make-secrets")
    first = subprocess.run([str(tmp_path / "make-secrets")], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    folder = tmp_path / "secrets"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    made = {p.name: p.read_text() for p in folder.iterdir()}
    assert set(made) == {"postgres_password", "admin_token", "helper_secret"}
    assert len(parse_secret(made["helper_secret"], source="helper_secret")) == 32
    again = subprocess.run([str(tmp_path / "make-secrets")], capture_output=True, text=True)
    assert again.stdout.count("kept") == 3
    assert {p.name: p.read_text() for p in folder.iterdir()} == made
