"""The simulator's handle on a constellation: in-process (ASGI, embedded SQLite), the same
app served by uvicorn on a loopback port of this process (``served=True``: what engine
workers in other processes reach), or a running ``omega serve`` over HTTP. Either way every
call is the real HTTP API.

The simulator acts as a TV maker: each run makes a manufacturer key, registers it with
the constellation through the admin API, and certifies every simulated TV with it
(:meth:`SimConstellation.device`), as a factory would."""

from __future__ import annotations

import base64
import json
import secrets
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
import uvicorn

from omega.brain.codebook import centroids_to_f16_bytes
from omega.clock import Clock
from omega.errors import ConfigError, ServerError
from omega.protocol.attestation import DeviceIdentity, Manufacturer
from omega.sync.transport import AsgiTransport, HttpTransport, Transport

if TYPE_CHECKING:
    from omega.constellation.settings import Settings

__all__ = ["ServedApp", "SimConstellation", "sim_settings"]


class _Stops(Protocol):
    """Servers the handle stops when it closes (a uvicorn thread, a child process)."""

    def stop(self) -> None: ...


def sim_settings(data_dir: Path, *, fsync: bool = True, **fields: Any) -> Settings:
    """A simulated constellation's settings (``fields``: more of them). Rounds are driven
    by the simulator as simulated time passes, and the per-viewer and registration rate
    limits are lifted: a replay compresses years into minutes of wall time, and every TV
    registers from one process, attested by the simulator's one manufacturer (unless
    ``fields`` set ``manufacturer_registration_limit``); the rounds fold no co-watch
    batches unless ``fields`` set ``cowatch_threshold``. ``fsync`` False: its SQLite file
    commits without waiting for the disk (``FleetConfig.fsync``)."""
    from omega.constellation.settings import Settings

    defaults: dict[str, Any] = {
        "federation_interval": 0,
        "rate_limit": 1_000_000,
        "access_token_ttl": 24 * 3600,
        "gc_freeze": False,  # a replay's servers live minutes, not a server's days
        "mcp": False,  # no assistant reaches them: no MCP endpoint to start
        "registration_rate_limit": 0,
        "manufacturer_registration_limit": 0,
        # No co-watch step in the rounds unless asked (its helper may have no desk).
        "cowatch_threshold": 0,
        "cowatch_per_epoch": 8,
    }
    if not fsync:
        database = (data_dir / "constellation.db").as_posix()
        defaults["db_url"] = f"sqlite:///{database}?synchronous=normal"
    return Settings(data_dir=data_dir, **(defaults | fields))


class SimConstellation:
    def __init__(
        self,
        transport: Transport,
        admin_token: str,
        where: str,
        manufacturer: Manufacturer | None = None,
        *,
        url: str | None = None,
        server: _Stops | None = None,
    ) -> None:
        self.transport = transport
        self.admin_token = admin_token
        self.where = where
        self.manufacturer = manufacturer or self.new_manufacturer()
        #: Where other processes reach it over HTTP (None: only through ``transport``).
        self.url = url
        self._server = server

    @staticmethod
    def new_manufacturer() -> Manufacturer:
        """The simulator as a TV maker: a key id of its own per run (a server keeps the
        keys of earlier runs)."""
        return Manufacturer.generate("omega-sim", secrets.token_hex(6))

    @classmethod
    async def in_process(
        cls,
        data_dir: Path,
        *,
        helper_url: str | None = None,
        helper_secret_file: Path | None = None,
        share_min_batch: int = 500,
        share_noise_epsilon: float = 4.0,
        share_noise_seed: int | None = None,
        manufacturer_registration_limit: int = 0,
        manufacturer: Manufacturer | None = None,
        cowatch_threshold: int = 0,
        cowatch_per_epoch: int = 8,
        cowatch_epoch_s: float = 7 * 86_400.0,
        cowatch_clock: Clock | None = None,
        cowatch_dp_epsilon: float = 0.0,
        cowatch_dp_delta: float = 1e-6,
        cowatch_spread: float = 0.0,
        fsync: bool = True,
        served: bool = False,
    ) -> SimConstellation:
        """A fresh constellation in this process, on SQLite under ``data_dir``, with the
        settings of :func:`sim_settings`; with a helper when two-server reports are to be
        counted. ``manufacturer``: the maker to certify TVs with (one the helper trusts too);
        ``cowatch_threshold``: TVs before a co-watch pair is released (0: the rounds take
        no co-watch batches, for a fleet whose helper has no co-watch desk);
        ``cowatch_*``: the bound per TV per epoch, the epoch length TVs are told and the
        clock epochs follow (default the wall clock; ``omega.sim.cowatch_private`` passes
        the replay's); ``cowatch_dp_*``: central DP on released counts (ε 0: off), its
        noise seeded by ``share_noise_seed``; ``cowatch_spread``: the spread rule in
        the release (0: off); ``fsync``: see :func:`sim_settings`; ``served``: the same
        app served by uvicorn on a loopback port (``url``) for engine workers in other
        processes."""
        from omega.constellation.app import create_app

        settings = sim_settings(
            data_dir,
            fsync=fsync,
            helper_url=helper_url,
            helper_secret_file=helper_secret_file,
            share_min_batch=share_min_batch,
            share_noise_epsilon=share_noise_epsilon,
            share_noise_seed=share_noise_seed,
            manufacturer_registration_limit=manufacturer_registration_limit,
            cowatch_threshold=cowatch_threshold,
            cowatch_per_epoch=cowatch_per_epoch,
            cowatch_epoch_s=cowatch_epoch_s,
            cowatch_dp_epsilon=cowatch_dp_epsilon,
            cowatch_dp_delta=cowatch_dp_delta,
            cowatch_spread=cowatch_spread,
        )
        app = create_app(settings, cowatch_clock=cowatch_clock)
        if served:
            server = ServedApp(app).start()
            token = (data_dir / "admin-token").read_text().strip()
            where = f"in-process (uvicorn on {server.url}, SQLite)"
            transport: Transport = HttpTransport(server.url)
            sim = cls(transport, token, where, manufacturer, url=server.url, server=server)
        else:
            transport = await AsgiTransport(app).open()
            token = (data_dir / "admin-token").read_text().strip()
            sim = cls(transport, token, "in this process (ASGI, SQLite)", manufacturer)
        await sim.trust(sim.manufacturer)
        return sim

    @classmethod
    async def remote(cls, url: str, admin_token: str | None) -> SimConstellation:
        if not admin_token:
            raise ConfigError(
                "--server needs the constellation's admin token (--admin-token or "
                "OMEGA_ADMIN_TOKEN) to publish the codebook and run rounds"
            )
        sim = cls(HttpTransport(url), admin_token, url, url=url)
        await sim.trust(sim.manufacturer)
        return sim

    async def _admin(self, method: str, path: str, body: bytes | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        answer = await self.transport.request(method, path, body=body, headers=headers)
        if answer.status >= 400:
            raise ServerError(answer.status, answer.body.decode(errors="replace")[:300])
        return json.loads(answer.body) if answer.body else None

    async def publish_codebook(
        self,
        codebook_id: str,
        centroids: npt.NDArray[np.float32],
        item_ids: Sequence[str] = (),
    ) -> None:
        """Publish the content cells and the catalog's (public) item ids."""
        document = {
            "codebook_id": codebook_id,
            "dim": int(centroids.shape[1]),
            "k": int(centroids.shape[0]),
            "centroids_f16": base64.b64encode(centroids_to_f16_bytes(centroids)).decode(),
            "item_ids": list(item_ids),
        }
        await self._admin("POST", "/api/omega/codebook", json.dumps(document).encode())

    async def trust(self, maker: Manufacturer) -> dict[str, Any]:
        """Register ``maker``'s key with the constellation (as its operator would)."""
        doc = {
            "manufacturer_id": maker.manufacturer_id,
            "key_id": maker.key_id,
            "public_key": maker.public_key.hex(),
        }
        result = await self._admin("POST", "/api/omega/manufacturers", json.dumps(doc).encode())
        return result if isinstance(result, dict) else {}

    async def revoke(self, maker: Manufacturer) -> dict[str, Any]:
        path = f"/api/omega/manufacturers/{maker.manufacturer_id}/keys/{maker.key_id}/revoke"
        result = await self._admin("POST", path)
        return result if isinstance(result, dict) else {}

    def device(self, name: str) -> DeviceIdentity:
        """A TV certified by the simulator's manufacturer. Its serial names this run, as the
        key id does: a server keeps earlier runs' devices, each bound to its device key."""
        serial = f"sim-{self.manufacturer.key_id}-{name}"
        return self.manufacturer.device(serial, model="sim-tv")

    async def run_round(self) -> dict[str, Any]:
        result = await self._admin("POST", "/api/omega/rounds")
        return result if isinstance(result, dict) else {}

    async def stats(self) -> dict[str, Any]:
        result = await self._admin("GET", "/api/omega/stats")
        return result if isinstance(result, dict) else {}

    async def close(self) -> None:
        try:
            await self.transport.aclose()
        finally:
            if self._server is not None:
                self._server.stop()


class ServedApp:
    """An ASGI app (its lifespan included) under uvicorn on a loopback port, in a background
    thread of this process (as ``omega.helper.HelperThread`` serves the helper)."""

    def __init__(self, app: Any) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self, timeout: float = 60.0) -> ServedApp:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"the constellation did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=30.0)
        self._sock.close()
