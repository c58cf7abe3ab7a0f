"""The running server's parts, built by the lifespan and reached through ``request.app``."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from anyio import to_thread
from fastapi import Request

from omega.clock import Clock
from omega.constellation._keys import RELEASE_KEYS, KeyRing
from omega.constellation.auth import AdminGate, TokenService
from omega.constellation.distribute import Pacer
from omega.constellation.event_bus import EventBus
from omega.constellation.events import EventBroker, ReleaseWatcher
from omega.constellation.exchange import Exchange
from omega.constellation.ingest import CodebookCache
from omega.constellation.metrics import Metrics
from omega.constellation.ratelimit import RateLimiter
from omega.constellation.ratelimit_shared import LimitStore
from omega.constellation.rounds import RoundRunner
from omega.constellation.sealing import ReleaseSealer
from omega.constellation.settings import Settings
from omega.storage.base import Storage

__all__ = ["Runtime", "load_admin_token", "load_keys", "load_release_keys", "runtime_of"]

T = TypeVar("T")


@dataclass(slots=True)
class Runtime:
    settings: Settings
    clock: Clock
    storage: Storage
    tokens: TokenService
    admin: AdminGate
    limits: LimitStore
    limiter: RateLimiter
    registration_limiter: RateLimiter | None
    manufacturer_limiter: RateLimiter | None
    broker: EventBroker
    events: EventBus  # publish here: every replica's streams (broker: this process's)
    metrics: Metrics
    pacer: Pacer
    watcher: ReleaseWatcher
    codebooks: CodebookCache
    exchange: Exchange
    rounds: RoundRunner
    sealer: ReleaseSealer
    #: The clock co-watch epochs follow (None: ``clock``; a replay's simulated clock).
    cowatch_clock: Clock | None = None

    async def db(self, call: Callable[[], T]) -> T:
        """Run a (blocking) storage call on a worker thread."""
        return await to_thread.run_sync(call)


def runtime_of(request: Request) -> Runtime:
    runtime = getattr(request.app.state, "runtime", None)
    assert isinstance(runtime, Runtime), "the lifespan has not started"
    return runtime


def load_keys(settings: Settings) -> KeyRing:
    if settings.jwt_keys:
        pems = {kid: pem.get_secret_value().encode() for kid, pem in settings.jwt_keys.items()}
        return KeyRing.from_pems(pems, signing_kid=settings.jwt_signing_kid)
    return KeyRing.open_directory(
        settings.data_dir / "jwt-keys", signing_kid=settings.jwt_signing_kid
    )


def load_release_keys(settings: Settings) -> ReleaseSealer:
    """The release key ring (``OMEGA_RELEASE_KEYS``, else ``<data_dir>/release-keys``)."""
    kid = settings.release_signing_kid
    if settings.release_keys:
        pems = {k: pem.get_secret_value().encode() for k, pem in settings.release_keys.items()}
        return ReleaseSealer(KeyRing.from_pems(pems, signing_kid=kid, kind=RELEASE_KEYS))
    directory = settings.data_dir / "release-keys"
    return ReleaseSealer(KeyRing.open_directory(directory, signing_kid=kid, kind=RELEASE_KEYS))


def load_admin_token(settings: Settings) -> str:
    """The configured admin token, else the one in ``<data_dir>/admin-token`` (made once)."""
    if settings.admin_token is not None:
        return settings.admin_token.get_secret_value()
    path: Path = settings.data_dir / "admin-token"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()
