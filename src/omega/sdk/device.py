"""What the C API's handles stand for: a configuration (:class:`DeviceSettings`, the
builder's values) and an open brain with its sync (:class:`Device`).

Plain Python over ``omega.brain`` and ``omega.sync``; ``omega.sdk.cabi`` turns C
arguments into these calls and their answers back into C. The periodic sync is the
device runtime (:class:`omega.sync.DeviceRuntime`) run on a thread of the device's own,
so that the error that stops it by itself (a refused TV, say) is kept for
:meth:`Device.stop_sync` to return.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from omega.brain import Brain, BrainConfig
from omega.errors import ConfigError, InputError, OmegaError
from omega.protocol.attestation import DeviceIdentity, load_private_key
from omega.protocol.messages import DeviceCertificate

if TYPE_CHECKING:
    from omega.sync import DeviceRuntime, SyncResult

__all__ = ["Device", "DeviceSettings", "read_identity"]

#: How long stopping waits for the sync thread: the runtime's grace for a sync in
#: flight (10 s) and its final flush, with room to spare.
STOP_TIMEOUT_S = 60.0
#: One process holds one Device per brain directory: two would write one SQLite file
#: and one index behind each other's backs.
_OPEN: set[Path] = set()
_OPEN_LOCK = threading.Lock()
_DEFAULTS = BrainConfig()
log = logging.getLogger(__name__)


@dataclass(slots=True)
class DeviceSettings:
    """What a configuration handle holds; each setter checks its value at once."""

    storage_path: Path | None = None
    constellation_url: str | None = None
    sync_interval: float = 1800.0
    min_quality: float = _DEFAULTS.min_quality
    max_patterns: int = _DEFAULTS.max_patterns
    identity: DeviceIdentity | None = None

    def set_storage_path(self, path: str) -> None:
        if not path.strip():
            raise ConfigError("the storage path is empty")
        self.storage_path = Path(path)

    def set_constellation_url(self, url: str) -> None:
        from omega.sync.transport import check_base_url

        self.constellation_url = check_base_url(url)

    def set_sync_interval(self, seconds: float) -> None:
        if not (math.isfinite(seconds) and seconds > 0):
            raise ConfigError(
                f"the sync interval must be a positive number of seconds, got {seconds}"
            )
        self.sync_interval = seconds

    def set_min_quality(self, quality: float) -> None:
        if not (math.isfinite(quality) and 0.0 <= quality <= 1.0):
            raise ConfigError(f"the minimum quality must be within [0, 1], got {quality}")
        self.min_quality = quality

    def set_max_patterns(self, count: int) -> None:
        if count < 1:
            raise ConfigError(f"the most patterns kept must be at least 1, got {count}")
        self.max_patterns = count

    def set_identity(self, certificate: Path, device_key: Path) -> None:
        self.identity = read_identity(certificate, device_key)


def read_identity(certificate: Path, device_key: Path) -> DeviceIdentity:
    """The TV's identity from the two files ``omega attest device`` writes."""
    cert_bytes = _read(certificate, "the device certificate")
    try:
        cert = msgspec.json.decode(cert_bytes, type=DeviceCertificate)
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{certificate} is not a device certificate: {exc}") from None
    try:
        return DeviceIdentity(cert, load_private_key(_read(device_key, "the device key")))
    except InputError as exc:
        raise ConfigError(f"the device key {device_key}: {exc}") from None


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path} ({exc.strerror})") from None


class Device:
    """One open brain (``brain``) and its sync with the constellation."""

    def __init__(self, settings: DeviceSettings) -> None:
        if settings.storage_path is None:
            raise ConfigError("the configuration has no storage path (set one first)")
        self.settings = replace(settings)
        self._path = settings.storage_path.absolute()
        with _OPEN_LOCK:
            if self._path in _OPEN:
                raise ConfigError(f"the brain in {self._path} is open already in this process")
            _OPEN.add(self._path)
        try:
            config = BrainConfig(
                min_quality=settings.min_quality, max_patterns=settings.max_patterns
            )
            self.brain = Brain.open(self._path, config=config, create=True)
        except BaseException:
            self._release()
            raise
        self._sync_lock = threading.Lock()  # one sync at a time, and start/stop
        self._runtime: DeviceRuntime | None = None
        self._thread: threading.Thread | None = None
        self._fatal: BaseException | None = None

    # -- sync ----------------------------------------------------------------------------
    def _url(self) -> str:
        if self.settings.constellation_url is None:
            raise ConfigError("the configuration has no constellation URL to sync with")
        return self.settings.constellation_url

    def _options(self) -> dict[str, Any]:
        identity = self.settings.identity
        return {"attestation": identity} if identity is not None else {}

    def sync_now(self) -> SyncResult:
        """One sync now: through the periodic sync when it runs, else here."""
        runtime, thread = self._runtime, self._thread
        if runtime is not None and thread is not None:
            if not thread.is_alive():
                raise ConfigError(
                    f"the periodic sync stopped by itself ({runtime.status().last_error}); "
                    "stop it to get its error"
                )
            return runtime.sync_now().result()
        from omega.sync import run_sync

        url = self._url()
        with self._sync_lock:
            return run_sync(self.brain, url, **self._options())

    def start_sync(self) -> None:
        from omega.sync import DeviceRuntime, SyncSchedule

        with self._sync_lock:
            if self._runtime is not None:
                raise ConfigError("the periodic sync is running already")
            runtime = DeviceRuntime(
                self.brain,
                self._url(),
                schedule=SyncSchedule(interval=self.settings.sync_interval),
                sync_options=self._options(),
            )
            thread = threading.Thread(
                target=self._run, args=(runtime,), name="omega-sdk-sync", daemon=True
            )
            self._runtime, self._thread, self._fatal = runtime, thread, None
            thread.start()

    def _run(self, runtime: DeviceRuntime) -> None:
        try:
            asyncio.run(runtime.run())
        except BaseException as exc:  # kept for stop_sync; the status says it meanwhile
            self._fatal = exc

    def stop_sync(self) -> None:
        """Stop the periodic sync (nothing if it is not running); raise the error that
        stopped it by itself, if one did."""
        with self._sync_lock:
            runtime, thread = self._runtime, self._thread
            if runtime is None or thread is None:
                return
            runtime.stop()
            thread.join(STOP_TIMEOUT_S)
            fatal = self._fatal
            self._runtime = self._thread = self._fatal = None
        if fatal is not None:
            raise fatal

    # -- the rest ------------------------------------------------------------------------
    def stats(self) -> dict[str, object]:
        runtime = self._runtime
        sync = runtime.status().as_dict() if runtime is not None else {"state": "off"}
        return {**self.brain.stats(), "sync": sync}

    def close(self) -> None:
        """Stop the sync (its own error does not stop the close), flush and close."""
        try:
            self.stop_sync()
        except OmegaError as exc:  # said by stop_sync and the stats before; close anyway
            log.info("the periodic sync had stopped by itself: %s", exc)
        finally:
            try:
                self.brain.close()
            finally:
                self._release()

    def _release(self) -> None:
        with _OPEN_LOCK:
            _OPEN.discard(self._path)
