"""One TV for the viewer tools: its brain and, given a constellation, its device runtime.

:class:`ViewerSession` holds the logic of every ``viewer_*`` tool as a plain, blocking
method (the tools run them on worker threads); it reaches the brain through its public
API and the sync through :class:`omega.sync.DeviceRuntime`, which keeps the TV syncing
in the background on its own thread and answers ``sync_now`` at once.

The brain lives in one directory (``brain.db``, the index). ``viewer_init`` creates it
(or reopens it), imports titles and keeps the viewer's name and region beside it in
``viewer.json``, so a restarted server speaks for the same viewer. The other tools open
an existing brain on first use.

Registration: a TV registers itself at its first sync, attested by its device
certificate (``sync_options`` ``attestation``); an operator may instead provision the
viewer (``omega_register_viewer``) and hand its credentials to ``viewer_init``.
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omega.brain import Brain, CatalogItem, Context, Filters, Tracked
from omega.clock import Clock
from omega.errors import ConfigError, InputError, TransportError
from omega.mcp.viewer_models import (
    Action,
    BehaviorMetadata,
    ExportedPattern,
    ExportedPatterns,
    ProvisionedCredentials,
    Recommendations,
    RecommendContext,
    RecommendedTitle,
    RecommendFilters,
    SyncOutcome,
    SyncStatus,
    TrackedEvent,
    ViewerConfig,
    ViewerInitialised,
    ViewerStats,
)
from omega.sync import DeviceRuntime, SyncSchedule
from omega.sync.cursors import Credentials, load_credentials, save_credentials
from omega.sync.releases import PinnedKey

__all__ = ["SYNC_TIMEOUT", "ViewerOptions", "ViewerSession"]

#: Seconds ``viewer_sync`` waits for the sync it asked for.
SYNC_TIMEOUT = 120.0
_PROFILE = "viewer.json"
_DB_FILE = "brain.db"


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewerOptions:
    """``server``: the constellation's base URL (None: no sync). ``every``: the
    background sync interval, seconds (the first background sync comes within it too;
    ``viewer_sync`` syncs at once). ``sync_options`` go to the sync client
    (``attestation``, ``release_keys`` …)."""

    directory: Path
    server: str | None = None
    every: float = 1800.0
    sync_options: Mapping[str, Any] = field(default_factory=dict)
    clock: Clock | None = None


@dataclass(slots=True)
class _Profile:
    viewer_id: str | None = None
    region: str = "global"


class ViewerSession:
    """The viewer tools' state; safe to call from several threads. Close it."""

    def __init__(self, options: ViewerOptions) -> None:
        if not options.every > 0:
            raise ConfigError(f"the sync interval must be > 0 seconds, got {options.every!r}")
        self.options = options
        self._lock = threading.RLock()
        self._brain: Brain | None = None
        self._runtime: DeviceRuntime | None = None
        self._profile = _read_profile(options.directory / _PROFILE)

    # -- lifecycle -----------------------------------------------------------------------
    def init(self, viewer_id: str, config: ViewerConfig) -> ViewerInitialised:
        """Create or reopen the brain, import ``config.catalog``, keep the profile, install
        provisioned credentials; (re)start the runtime."""
        with self._lock:
            self._stop()
            directory = self.options.directory
            created = not (directory / _DB_FILE).exists()
            brain = Brain.open(directory, create=True, clock=self.options.clock)
            self._brain = brain
            if config.credentials is not None:
                _install(brain, viewer_id, config.credentials)
            imported = brain.upsert_items([_item(e) for e in config.catalog])
            self._profile = _Profile(viewer_id=viewer_id, region=config.region)
            _write_profile(directory / _PROFILE, self._profile)
            self._start_runtime(brain)
            creds = load_credentials(brain)
            return ViewerInitialised(
                viewer_id=viewer_id,
                directory=str(directory),
                created=created,
                imported=imported,
                items=len(brain.catalog),
                codebook_id=brain.codebook_id,
                region=config.region,
                server=self.options.server,
                registered_as=creds.viewer_id if creds else None,
            )

    def close(self) -> None:
        """Stop the runtime (a sync in flight gets its grace) and flush the brain."""
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        if self._runtime is not None:
            self._runtime.stop(timeout=30)
            self._runtime = None
        if self._brain is not None:
            self._brain.close()
            self._brain = None

    def brain(self) -> Brain:
        """The brain, opened on first use; ConfigError before ``viewer_init`` made one."""
        with self._lock:
            if self._brain is None:
                directory = self.options.directory
                if not (directory / _DB_FILE).exists():
                    raise ConfigError(f"no brain in {directory} yet: call viewer_init first")
                self._brain = Brain.open(directory, create=False, clock=self.options.clock)
                self._start_runtime(self._brain)
            return self._brain

    def _start_runtime(self, brain: Brain) -> None:
        if self.options.server is None:
            return
        every = self.options.every
        runtime = DeviceRuntime(
            brain,
            self.options.server,
            schedule=SyncSchedule(interval=every, first_delay=every),
            sync_options={"region": self._profile.region, **self.options.sync_options},
        )
        runtime.start()
        self._runtime = runtime

    # -- the tools' work -----------------------------------------------------------------
    def track(self, action: Action, media_id: str | None, meta: BehaviorMetadata) -> TrackedEvent:
        done = _track(self.brain(), action, media_id, meta)
        return TrackedEvent(
            episode=done.episode_id,
            action=action,
            reward=round(done.reward, 4),
            success=done.success,
            critique=done.critique,
            time_bucket=done.context.time_bucket,
            day_type=done.context.day_type,
        )

    def recommend(
        self,
        context: RecommendContext | None,
        k: int,
        filters: RecommendFilters | None,
        explain: bool = False,
    ) -> Recommendations:
        brain = self.brain()
        when = Context(context.time_bucket, context.day_type) if context else None
        wanted = filters or RecommendFilters()
        chosen = Filters(
            genres=tuple(wanted.genres),
            max_runtime_min=wanted.max_runtime_min,
            exclude=frozenset(wanted.exclude),
        )
        start = time.perf_counter()
        ranked = brain.recommend(k, context=when, filters=chosen)
        brain_ms = (time.perf_counter() - start) * 1000.0
        items = [
            RecommendedTitle(
                item_id=r.item_id,
                title=r.title,
                score=round(r.score, 4),
                reason=r.reason,
                signals={n: round(v, 4) for n, v in r.signals.items()} if explain else {},
            )
            for r in ranked
        ]
        return Recommendations(items=items, brain_ms=round(brain_ms, 3))

    def export(self, min_quality: float | None) -> ExportedPatterns:
        brain = self.brain()
        floor = brain.config.min_quality if min_quality is None else min_quality
        patterns = [
            ExportedPattern(
                id=p.id,
                task=p.task,
                cells=list(p.cells),
                time_bucket=p.context.time_bucket,
                day_type=p.context.day_type,
                success_rate=p.success_rate,
                support=p.support,
                version=p.version,
            )
            for p in brain.export_patterns(floor)
        ]
        return ExportedPatterns(min_quality=floor, patterns=patterns)

    def stats(self) -> ViewerStats:
        figures = self.brain().stats()
        wanted = {k: v for k, v in figures.items() if k in ViewerStats.model_fields}
        runtime, server = self._runtime, self.options.server
        sync = _status(runtime, server) if runtime is not None and server is not None else None
        return ViewerStats.model_validate(
            {**wanted, "viewer_id": self._profile.viewer_id, "sync": sync}
        )

    def sync(self, force: bool) -> SyncOutcome:
        """Sync now (``force``, or when due); the outcome and the runtime's status."""
        runtime, server = self._live_runtime()
        status = runtime.status()
        now = self.brain().clock.now()
        due = status.syncs == 0 or status.next_sync_at is None or now >= status.next_sync_at
        if not force and not due:
            wait = (status.next_sync_at or now) - now
            reason = f"not due for {wait:.0f} s (the constellation paces TVs); force syncs now"
            return SyncOutcome(
                synced=False, reason=reason, result=None, status=_status(runtime, server)
            )
        try:
            result = runtime.sync_now().result(timeout=SYNC_TIMEOUT)
        except concurrent.futures.TimeoutError:
            raise TransportError(
                f"the sync did not finish within {SYNC_TIMEOUT:.0f} s; it goes on in the background"
            ) from None
        except concurrent.futures.CancelledError:
            raise TransportError("the sync was abandoned: the device runtime is stopping") from None
        return SyncOutcome(
            synced=True, reason="synced", result=result.as_dict(), status=_status(runtime, server)
        )

    def _live_runtime(self) -> tuple[DeviceRuntime, str]:
        """The running runtime and its server; a new runtime if the last stopped on an
        error that needed a person (the operator may have fixed it since)."""
        server = self.options.server
        if server is None:
            raise ConfigError(
                "this viewer has no constellation: start `omega mcp viewer` with --server URL"
            )
        with self._lock:
            brain = self.brain()
            runtime = self._runtime
            if runtime is None or runtime.status().state in ("failed", "stopped"):
                if runtime is not None:
                    runtime.stop(timeout=30)
                self._start_runtime(brain)
            assert self._runtime is not None
            return self._runtime, server


def _status(runtime: DeviceRuntime, server: str) -> SyncStatus:
    status = runtime.status()
    return SyncStatus(
        server=server,
        state=status.state,
        syncs=status.syncs,
        failures=status.failures,
        last_success_at=status.last_success_at,
        last_error=status.last_error,
        next_sync_at=status.next_sync_at,
    )


def _track(brain: Brain, action: Action, media_id: str | None, meta: BehaviorMetadata) -> Tracked:
    """One interaction through the brain's ``track_*`` (as ``omega brain track`` does)."""
    if action == "search":
        if meta.query is None:
            raise InputError("a search needs metadata.query (media_id: the title chosen, if any)")
        return brain.track_search(meta.query, meta.results, selected=media_id)
    if action == "browse":
        items = ([media_id] if media_id else []) + meta.items
        if not items:
            raise InputError("a browse needs media_id or metadata.items (the titles browsed)")
        return brain.track_browse(items)
    if media_id is None:
        raise InputError(f"a {action} needs media_id, the title it is about")
    if action == "view":
        return brain.track_view(
            media_id,
            watch_fraction=meta.watch_fraction,
            duration_s=meta.duration_s,
            completed=meta.completed,
        )
    if action == "skip":
        return brain.track_skip(media_id, at_seconds=meta.at_seconds)
    if meta.stars is None:
        raise InputError("a rate needs metadata.stars (0.5 to 5)")
    return brain.track_rating(media_id, meta.stars)


def _item(entry: Any) -> CatalogItem:
    return CatalogItem(
        item_id=entry.item_id,
        title=entry.title,
        genres=tuple(entry.genres),
        year=entry.year,
        runtime_min=entry.runtime_min,
        description=entry.description,
    )


def _install(brain: Brain, viewer_id: str, given: ProvisionedCredentials) -> None:
    """Store an operator's credentials (and pin its release keys) in the brain."""
    if given.viewer_id != viewer_id:
        raise InputError(f"the credentials are for viewer {given.viewer_id!r}, not {viewer_id!r}")
    held = load_credentials(brain)
    if held is not None and held.viewer_id != given.viewer_id:
        raise InputError(
            f"this brain is registered as viewer {held.viewer_id!r}; it cannot become "
            f"{given.viewer_id!r} (use another --brain directory)"
        )
    pins: dict[str, PinnedKey] = {}
    for kid, encoded in given.release_keys.items():
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raw = b""
        if len(raw) != 32:
            raise InputError(f"release key {kid!r} is not base64 of 32 raw Ed25519 bytes")
        pins[kid] = PinnedKey(raw)
    creds = Credentials(given.viewer_id, given.access_token, given.refresh_token)
    save_credentials(brain, creds, release_keys=pins)


def _read_profile(path: Path) -> _Profile:
    if not path.exists():
        return _Profile()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return _Profile(viewer_id=str(data["viewer_id"]), region=str(data["region"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is unreadable ({exc}); delete it and call viewer_init") from None


def _write_profile(path: Path, profile: _Profile) -> None:
    text = json.dumps({"viewer_id": profile.viewer_id, "region": profile.region})
    path.write_text(text + "\n", encoding="utf-8")
