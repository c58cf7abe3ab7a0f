"""A real constellation on loopback for the tests: ``omega.constellation`` under uvicorn in
a child process (so a test can read its memory use and nothing leaks between servers),
plus a small device-side helper speaking the binary protocol over httpx."""

from __future__ import annotations

import os
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np

from omega.bench import serving
from omega.protocol import codec
from omega.protocol.attestation import Manufacturer
from omega.protocol.messages import (
    Pattern,
    PullRequest,
    PushRequest,
    RegistrationResponse,
    SyncRequest,
    SyncResponse,
)

BINARY = "application/x-omega"
ADMIN_TOKEN = "test-admin-token-" + "x" * 16
#: The tests' TV maker: every server started here trusts it, and ``Device.register``
#: attests each device with a certificate of its own.
MANUFACTURER = Manufacturer.generate("test-maker", "k1")


@dataclass(eq=False, kw_only=True)
class ServerProcess(serving.ServerProcess):
    """A constellation child process (``omega.bench.serving``) with the test's data."""

    data_dir: Path
    db_url: str

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def peak_rss_bytes(self) -> int:
        """The child's high-water resident memory (VmHWM), from /proc."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc status")


def start_server(data_dir: Path, *, db_url: str | None = None, **env: str) -> ServerProcess:
    """Start uvicorn on a socket bound here (no port race), wait for /healthz, and have it
    trust the tests' manufacturer."""
    data_dir.mkdir(parents=True, exist_ok=True)
    child_env = {
        **os.environ,
        "OMEGA_DATA_DIR": str(data_dir),
        "OMEGA_ADMIN_TOKEN": ADMIN_TOKEN,
        "OMEGA_FEDERATION_INTERVAL": "0",
        "OMEGA_RELEASE_POLL_INTERVAL": "0.2",
        # Many devices register from this one address; the limit tests set their own.
        "OMEGA_REGISTRATION_RATE_LIMIT": "0",
        "OMEGA_MANUFACTURER_REGISTRATION_LIMIT": "0",
        **env,
    }
    if db_url is not None:
        child_env["OMEGA_DB_URL"] = db_url
    with serving.bound_socket() as sock:
        server = ServerProcess(
            serving.uvicorn_command(fd=sock.fileno()),
            env=child_env,
            base_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
            log_path=data_dir / "server.log",
            pass_fds=(sock.fileno(),),
            data_dir=data_dir,
            db_url=db_url or f"sqlite:///{data_dir / 'constellation.db'}",
        ).start()
    try:
        trust(server, MANUFACTURER)
    except BaseException:
        server.stop()
        raise
    return server


def trust(server: ServerProcess, manufacturer: Manufacturer) -> httpx.Response:
    """Register ``manufacturer``'s key with ``server`` (admin API)."""
    doc = {
        "manufacturer_id": manufacturer.manufacturer_id,
        "key_id": manufacturer.key_id,
        "public_key": manufacturer.public_key.hex(),
    }
    response = httpx.post(
        server.base_url + "/api/omega/manufacturers", json=doc, headers=server.admin()
    )
    assert response.status_code in (200, 201), response.text
    return response


# -- the device side ------------------------------------------------------------------------
@dataclass
class Device:
    """One registered viewer talking to a server with binary frames."""

    client: httpx.Client
    viewer_id: str
    access_token: str
    refresh_token: str
    pushed: list[str] = field(default_factory=list)

    @classmethod
    def register(cls, client: httpx.Client, *, region: str = "global") -> Device:
        """A new device of the tests' manufacturer, attested."""
        identity = MANUFACTURER.device(uuid.uuid4().hex, model="test-tv")
        body = codec.encode_json(identity.attest(_registration(region)))
        response = client.post(
            "/api/omega/viewers", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 201, response.text
        reg = codec.decode_json(response.content, expect=RegistrationResponse)
        return cls(client, reg.viewer_id, reg.access_token, reg.refresh_token)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    def post_frame(self, path: str, content: bytes, **headers: str) -> httpx.Response:
        return self.client.post(
            path, content=content, headers={"Content-Type": BINARY, **self.auth, **headers}
        )

    def sync(
        self, push: PushRequest | None = None, *, since: int = 0, max_bytes: int = 5120
    ) -> SyncResponse:
        response = self.sync_raw(push, since=since, max_bytes=max_bytes)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == BINARY
        return codec.decode(response.content, expect=SyncResponse, max_bytes=1 << 22)

    def sync_raw(
        self, push: PushRequest | None = None, *, since: int = 0, max_bytes: int = 5120
    ) -> httpx.Response:
        request = SyncRequest(
            pull=PullRequest(viewer_id=self.viewer_id, since_version=since, max_bytes=max_bytes),
            push=push,
        )
        return self.post_frame("/api/omega/sync", codec.encode(request))

    def push(self, patterns: list[Pattern], *, codebook_id: str, batch_id: str = "") -> PushRequest:
        return PushRequest(
            viewer_id=self.viewer_id,
            batch_id=batch_id or uuid.uuid4().hex,
            codebook_id=codebook_id,
            added=patterns,
        )


def _registration(region: str) -> Any:
    from omega.protocol.messages import Registration

    return Registration(device_model="test-tv", region=region, client_version="0.1.0")


def preference(cell: int, *, success: float = 0.9, support: int = 20, pid: str = "") -> Pattern:
    return Pattern(
        id=pid or f"pref-{cell}",
        task="preference",
        cells=(cell,),
        success_rate=success,
        support=support,
    )


def publish_codebook(server: ServerProcess, *, k: int = 64, dim: int = 16) -> str:
    """A codebook of ``k`` random (so mutually dissimilar) unit centroids."""
    rng = np.random.default_rng(7)
    centroids = rng.normal(size=(k, dim))
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    codebook_id = "cb-" + secrets.token_hex(4)
    doc = {
        "codebook_id": codebook_id,
        "dim": dim,
        "k": k,
        "centroids_f16": centroids.astype("<f2").tobytes(),
    }
    response = httpx.post(
        server.base_url + "/api/omega/codebook",
        content=msgspec.json.encode(doc),
        headers={"Content-Type": "application/json", **server.admin()},
    )
    assert response.status_code == 201, response.text
    return codebook_id


def run_round(server: ServerProcess) -> dict[str, Any]:
    response = httpx.post(server.base_url + "/api/omega/rounds", headers=server.admin(), timeout=60)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def stats(server: ServerProcess) -> dict[str, Any]:
    response = httpx.get(server.base_url + "/api/omega/stats", headers=server.admin())
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result
