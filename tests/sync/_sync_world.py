"""A small world for the sync tests: real constellations (uvicorn child processes on
127.0.0.1, or the app in this process), a 384-dim codebook, and TV brains whose catalog
sits around its cells so what they learn is predictable."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from threading import Thread
from typing import Any

import httpx
import msgspec
import numpy as np

from omega.bench.serving import ServerProcess, bound_socket, uvicorn_command
from omega.brain import DIM, Brain, BrainConfig, CatalogItem
from omega.clock import ManualClock
from omega.protocol import codec
from omega.protocol.attestation import Manufacturer
from omega.protocol.messages import Pattern, PushRequest, Registration, RegistrationResponse

ADMIN_TOKEN = "sync-test-admin-" + "y" * 16
K = 8
ITEMS_PER_CELL = 4
CODEBOOK_ID = "cb-sync-test"


def centroids() -> np.ndarray:
    rng = np.random.default_rng(11)
    c = rng.normal(size=(K, DIM)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    # What the server stores and hands out: f16. Round-trip so both sides agree exactly.
    return c.astype("<f2").astype(np.float32)


def codebook_document() -> bytes:
    doc = {
        "codebook_id": CODEBOOK_ID,
        "dim": DIM,
        "k": K,
        "centroids_f16": centroids().astype("<f2").tobytes(),
    }
    return msgspec.json.encode(doc)


def catalog() -> list[CatalogItem]:
    rng = np.random.default_rng(5)
    cells = centroids()
    items = []
    for cell in range(K):
        for n in range(ITEMS_PER_CELL):
            vector = cells[cell] + 0.02 * rng.normal(size=DIM).astype(np.float32)
            items.append(
                CatalogItem(
                    item_id=f"c{cell}i{n}",
                    title=f"Title {cell}-{n}",
                    genres=("Drama",),
                    runtime_min=100,
                    embedding=vector / np.linalg.norm(vector),
                )
            )
    return items


def open_brain(directory: Path, clock: ManualClock, **config: Any) -> Brain:
    fresh = not (directory / "brain.db").exists()
    brain = Brain.open(directory, clock=clock, config=BrainConfig(codebook_cells=K, **config))
    if fresh:
        brain.upsert_items(catalog())  # builds a local codebook until the server's arrives
    return brain


def watch(brain: Brain, clock: ManualClock, cells: list[int], *, rounds: int = 3) -> None:
    """Watch items of ``cells`` in turn, nearly to the end, ``rounds`` times over."""
    for r in range(rounds):
        for cell in cells:
            brain.track_view(f"c{cell}i{r % ITEMS_PER_CELL}", watch_fraction=0.95)
            clock.advance(1800)


# -- servers ----------------------------------------------------------------------------
@dataclass(eq=False, kw_only=True)
class Server(ServerProcess):
    """A constellation child process (``omega.bench.serving``) with the test's data."""

    data_dir: Path
    db_url: str

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def publish_codebook(self) -> None:
        answer = httpx.post(
            self.base_url + "/api/omega/codebook",
            content=codebook_document(),
            headers={"Content-Type": "application/json", **self.admin()},
        )
        assert answer.status_code == 201, answer.text

    def run_round(self) -> dict[str, Any]:
        answer = httpx.post(self.base_url + "/api/omega/rounds", headers=self.admin(), timeout=60)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def stats(self) -> dict[str, Any]:
        answer = httpx.get(self.base_url + "/api/omega/stats", headers=self.admin())
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result


def server_env(data_dir: Path, **env: str) -> dict[str, str]:
    return {
        **os.environ,
        "OMEGA_DATA_DIR": str(data_dir),
        "OMEGA_ADMIN_TOKEN": ADMIN_TOKEN,
        "OMEGA_FEDERATION_INTERVAL": "0",
        "OMEGA_RELEASE_POLL_INTERVAL": "0.2",
        "OMEGA_RATE_LIMIT": "100000",
        # The sync suite is about syncing: its TVs register without attestation, many from
        # this one address (tests/sync/test_sync_attestation.py attests them).
        "OMEGA_ALLOW_UNATTESTED": "true",
        "OMEGA_REGISTRATION_RATE_LIMIT": "0",
        **env,
    }


def start_server(data_dir: Path, *, db_url: str | None = None, port: int = 0, **env: str) -> Server:
    """uvicorn on a socket bound here (no port race; ``port`` 0: any free one, else that
    one again, as a restarted server takes its old port); waits for /healthz."""
    data_dir.mkdir(parents=True, exist_ok=True)
    child_env = server_env(data_dir, **env)
    if db_url is not None:
        child_env["OMEGA_DB_URL"] = db_url
    with bound_socket(port) as sock:
        server = Server(
            uvicorn_command(fd=sock.fileno()),
            env=child_env,
            base_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
            log_path=data_dir / "server.log",
            pass_fds=(sock.fileno(),),
            data_dir=data_dir,
            db_url=db_url or f"sqlite:///{data_dir / 'constellation.db'}",
        )
        return server.start()


def crowd_release(server: Server, rounds: list[list[int]], *, viewers: int = 3) -> int:
    """Releases made by a crowd of protocol-level viewers: for each entry of ``rounds``,
    every viewer pushes a preference pattern per cell, then a federation round runs (one
    release version each). Returns the server's release version."""
    crowd = []
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for _ in range(viewers):
            answer = client.post(
                "/api/omega/viewers",
                content=codec.encode(Registration()),
                headers={"Content-Type": "application/x-omega"},
            )
            assert answer.status_code == 201, answer.text
            crowd.append(codec.decode(answer.content, expect=RegistrationResponse))
        for n, cells in enumerate(rounds):
            patterns = [
                Pattern(id=f"crowd-{c}", task="preference", cells=(c,), success_rate=0.9, support=9)
                for c in cells
            ]
            for viewer in crowd:
                push = PushRequest(
                    viewer_id=viewer.viewer_id,
                    batch_id=f"crowd-{n}",
                    codebook_id=CODEBOOK_ID,
                    added=patterns,
                )
                answer = client.post(
                    "/api/omega/patterns",
                    content=codec.encode(push),
                    headers={
                        "Content-Type": "application/x-omega",
                        "Authorization": f"Bearer {viewer.access_token}",
                    },
                )
                assert answer.status_code == 200, answer.text
            server.run_round()
    version: int = server.stats()["version"]
    return version


def device_template(server: Server, directory: Path, cells: list[int]) -> Path:
    """A TV brain that adopted ``server``'s codebook and learned ``cells`` (its outbox
    full, nothing pushed or pulled yet), without credentials: each copy of it registers as
    a viewer of its own on its first sync. Closed; copy it with :func:`copy_device`."""
    from omega.sync import HttpTransport, SyncClient

    clock = ManualClock()
    brain = open_brain(directory, clock)

    async def adopt() -> None:
        async with HttpTransport(server.base_url) as transport:
            await SyncClient(brain, transport).fetch_codebook()

    asyncio.run(adopt())
    watch(brain, clock, cells)
    brain.flush()
    assert brain.sync.outbox_size() > 0
    forget = ("sync.viewer_id", "sync.access_token", "sync.refresh_token")
    brain.sync.set_cursors(dict.fromkeys(forget, ""))
    brain.close()
    (directory / "clock").write_text(repr(clock.now()))
    return directory


def copy_device(template: Path, directory: Path) -> tuple[Brain, ManualClock]:
    """A fresh TV from :func:`device_template`, opened at the template's time."""
    shutil.copytree(template, directory)
    clock = ManualClock(float((template / "clock").read_text()))
    return open_brain(directory, clock), clock


def sigkill_when_stopped(process: subprocess.Popen[bytes], *, timeout: float = 60) -> Thread:
    """A thread that waits until ``process`` has stopped itself (the ``stop-after-ingest``
    failpoint's SIGSTOP, right after a commit), then SIGKILLs it from outside."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        stat = Path(f"/proc/{process.pid}/stat")
        while time.monotonic() < deadline and process.poll() is None:
            if stat.read_text().rsplit(")", 1)[1].split()[0] == "T":  # stopped
                os.kill(process.pid, signal.SIGKILL)
                return
            time.sleep(0.005)

    thread = Thread(target=watch, daemon=True)
    thread.start()
    return thread


# -- what the server holds ------------------------------------------------------------------
def pending_upserts(db_path: Path, viewer_id: str) -> Counter[tuple[str, int]]:
    """(pattern id, version) of every upsert queued for ``viewer_id`` on a SQLite server."""
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute(
            "SELECT body FROM pending WHERE viewer_id = ? AND op = 'upsert'", (viewer_id,)
        ).fetchall()
    decoded = [msgspec.msgpack.decode(r[0], type=Pattern) for r in rows]
    return Counter((p.id, p.version) for p in decoded)


def device_outbox(brain: Brain) -> set[str]:
    with brain.store.lock:
        rows = brain.store.conn.execute("SELECT pattern_id FROM outbox").fetchall()
    return {r[0] for r in rows}


# -- the constellation in this process ------------------------------------------------------
class Tamper:
    """An ASGI middleware around the real app that damages the next ``arm``-ed answers to
    ``POST /api/omega/sync`` after the app has fully handled them (committed its work).
    ``modes``: a list shared with the test, for a middleware the app itself builds
    (``app.add_middleware(Tamper, modes=…)``)."""

    def __init__(self, app: Any, modes: list[str] | None = None) -> None:
        self.app = app
        self.modes: list[str] = modes if modes is not None else []
        self.tampered = 0

    def arm(self, *modes: str) -> None:
        self.modes.extend(modes)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/api/omega/sync" or not self.modes:
            await self.app(scope, receive, send)
            return
        mode = self.modes.pop(0)
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        if mode == "truncate":
            body = body[: len(body) // 2]
        elif mode == "flip":
            middle = len(body) // 2
            body = (
                body[:middle]
                + bytes(b ^ 0xA5 for b in body[middle : middle + 8])
                + body[middle + 8 :]
            )
        elif mode == "garbage":
            body = b"\x01\x00" + b"\xc1" * 40  # our version byte, then bytes msgpack never uses
        self.tampered += 1
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def inprocess_settings(data_dir: Path, **overrides: Any) -> Any:
    from omega.constellation.settings import Settings

    values: dict[str, Any] = {
        "data_dir": data_dir,
        "admin_token": ADMIN_TOKEN,
        "federation_interval": 0,
        "release_poll_interval": 0.2,
        "rate_limit": 100_000,
        "allow_unattested": True,  # as server_env
        "registration_rate_limit": 0,
        "gc_freeze": False,  # the test process is not a server
        **overrides,
    }
    return Settings(**values)


async def publish_codebook_via(transport: Any) -> None:
    answer = await transport.request(
        "POST",
        "/api/omega/codebook",
        body=codebook_document(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert answer.status == 201, answer.body


async def trust_via(transport: Any, maker: Manufacturer) -> None:
    """Register ``maker``'s key with the constellation behind ``transport`` (admin API)."""
    doc = {
        "manufacturer_id": maker.manufacturer_id,
        "key_id": maker.key_id,
        "public_key": maker.public_key.hex(),
    }
    answer = await transport.request(
        "POST",
        "/api/omega/manufacturers",
        body=msgspec.json.encode(doc),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert answer.status == 201, answer.body


async def run_round_via(transport: Any) -> dict[str, Any]:
    answer = await transport.request(
        "POST", "/api/omega/rounds", body=None, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert answer.status == 200, answer.body
    result: dict[str, Any] = msgspec.json.decode(answer.body)
    return result
