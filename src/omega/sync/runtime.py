"""The device runtime: a TV's sync and its brain's loops, kept going while the TV runs.

:class:`DeviceRuntime` is the viewer agent's lifecycle — init → active (periodic sync)
→ shutdown — as one small object, driven two ways:

- ``await runtime.run()`` inside an asyncio program (returns after :meth:`stop`);
- ``runtime.start()`` … ``runtime.stop()``: the same, on a thread of its own with its own
  event loop (a TV's UI process, the C SDK, MCP tools); ``with runtime:`` does both.

``runtime.sync_now()`` asks for a sync at once, from any thread, and returns a
``concurrent.futures.Future`` of its :class:`SyncResult`; ``runtime.status()`` says
what it is doing. Syncs follow :class:`~omega.sync.schedule.SyncSchedule`: the interval
with jitter, the server's ``next_sync_after`` and ``Retry-After``, and after failures a
capped backoff with full jitter that never runs out of tries. Every ``tick`` seconds it
runs the brain's clock-driven loops (:meth:`Brain.tick`: the reactive, deliberative and
evolutionary ones; ``omega.brain.loops``).

Failures are of two kinds:

- **they heal by themselves** — no answer, 429/5xx and other error statuses, a damaged
  answer, a local store error, and any 401/403 that is not one of the constellation's
  lasting refusals (a captive portal's or a proxy's page, a registration refused for a
  clock not yet set or stepped back: :mod:`omega.sync.replies`; these wait
  ``SyncSchedule.refused_floor`` more): retried with backoff, forever. Nothing is lost
  meanwhile: the outbox keeps every change, and a batch sent but unanswered stays
  recorded and is resent with the same id and bytes (the server applies it once), see
  :mod:`omega.sync.client`;
- **they need a person** — the constellation's own refusal of this device
  (:class:`AuthError`: its refresh token refused, so it must register again; its maker's
  key unknown or revoked; attestation required and none configured), the server holding
  another payload under this device's batch id (:class:`ConflictError`), a bad setting
  (:class:`ConfigError`) or our own bug: the state becomes ``failed``, ``on_status``
  hears it, ``run()`` raises the error. Such a runtime is never left retrying silently.

Shutdown (:meth:`stop`): the wait is cut short; a sync in flight gets ``grace`` seconds to
finish and is then abandoned (safe at any point: what committed stays, the batch in
flight is resent next time); the brain is flushed; the transport is closed if the
runtime opened it (it opens one, for a base URL, only when it runs: a runtime made and
never run holds no connections). The brain itself stays open: its owner closes it.

Time comes from ``clock`` and ``sleep`` (the brain's clock and ``asyncio.sleep`` unless
given), and jitter from ``rng``: tests and simulators run a runtime through days in
milliseconds, deterministically.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, replace
from types import TracebackType
from typing import Any, Literal, Self

from omega.brain import TICK_S, Brain
from omega.clock import Clock
from omega.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    LocalProtocolError,
    OmegaError,
)
from omega.sync.client import SyncClient, SyncResult
from omega.sync.endpoints import parse_endpoints, transport_for
from omega.sync.retry import RetryPolicy
from omega.sync.schedule import SyncSchedule
from omega.sync.transport import Transport

__all__ = ["DeviceRuntime", "RuntimeState", "RuntimeStatus"]

log = logging.getLogger(__name__)

RuntimeState = Literal["init", "active", "syncing", "backoff", "stopping", "stopped", "failed"]
#: Errors no wait can heal: the runtime stops and says so.
_NEEDS_A_PERSON = (AuthError, ConflictError, ConfigError, LocalProtocolError)


@dataclass(frozen=True, slots=True)
class RuntimeStatus:
    """What a runtime is doing. Times are the runtime clock's (seconds since the epoch)."""

    state: RuntimeState = "init"
    syncs: int = 0  # syncs completed
    failures: int = 0  # failed attempts, in all
    consecutive_failures: int = 0  # failed attempts since the last success
    last_success_at: float | None = None
    last_failure_at: float | None = None
    last_error: str | None = None
    next_sync_at: float | None = None
    last_result: SyncResult | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class DeviceRuntime:
    """Keeps one brain syncing with one constellation; see the module docstring.

    ``server``: the constellation's URL, or several (``omega.sync.endpoints``: http://,
    grpc://, h3://; the runtime opens their transport when it runs and closes it when it
    stops), or a :class:`Transport` the caller opened and closes.
    ``sync_options`` go to :class:`SyncClient` (``region``, ``helper_key`` …); its retry
    policy defaults to one try, since the runtime does the waiting.
    """

    def __init__(
        self,
        brain: Brain,
        server: str | Transport,
        *,
        schedule: SyncSchedule | None = None,
        fetch_codebook: bool = True,
        tick: float = TICK_S,
        grace: float = 10.0,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        rng: random.Random | None = None,
        on_status: Callable[[RuntimeStatus], None] | None = None,
        sync_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not tick > 0 or not grace >= 0:
            raise ConfigError(f"tick must be > 0 and grace ≥ 0 seconds, got {tick!r}, {grace!r}")
        self.brain = brain
        self.schedule = schedule or SyncSchedule()
        if isinstance(server, str):
            parse_endpoints(server)  # a bad URL is said now, not at the first sync
        self._server = server
        #: The transport in use: the caller's, or the one ``run()`` opened (None before).
        self.transport: Transport | None = None if isinstance(server, str) else server
        self._options = {"retry": RetryPolicy(attempts=1), **(sync_options or {})}
        self._codebook_due = fetch_codebook
        self._tick, self._grace = tick, grace
        self._clock = clock or brain.clock
        self._sleep = sleep or asyncio.sleep
        self._rng = rng or random.Random()
        self._on_status = on_status
        self._status = RuntimeStatus()
        # Shared with other threads (under _guard): requests, the stop flag, the loop.
        self._guard = threading.Lock()
        self._requests: list[concurrent.futures.Future[SyncResult]] = []
        self._stop_requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ran = False
        # The loop's own (only touched on the runtime's event loop).
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._next_sync = self._next_tick = self._last_now = 0.0
        self._fatal: BaseException | None = None

    # -- the public surface ------------------------------------------------------------
    def status(self) -> RuntimeStatus:
        return self._status

    def sync_now(self) -> concurrent.futures.Future[SyncResult]:
        """Sync at once (whatever the schedule or backoff says); from any thread. The
        future holds the result, or the error of that one attempt (cancelled at stop)."""
        future: concurrent.futures.Future[SyncResult] = concurrent.futures.Future()
        with self._guard:
            if self._ran and self._loop is None:
                future.set_exception(ConfigError("this runtime has stopped"))
                return future
            self._requests.append(future)
            loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._wake.set)
        return future

    def start(self) -> None:
        """Run on a thread of its own (with its own event loop) until :meth:`stop`."""
        with self._guard:
            if self._thread is not None or self._ran:
                raise ConfigError("this runtime was already started; make a new one")
            self._thread = threading.Thread(
                target=self._thread_main, name="omega-device-runtime", daemon=True
            )
        self._thread.start()

    def stop(self, timeout: float | None = None) -> RuntimeStatus:
        """Shut down cleanly, from any thread; waits for the runtime's own thread (when
        :meth:`start` made one) up to ``timeout``. Under ``run()``, ``run()`` returns."""
        with self._guard:
            self._stop_requested = True
            loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: done
                loop.call_soon_threadsafe(self._stopping.set)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        return self._status

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def run(self) -> None:
        """Run until :meth:`stop` (or until cancelled); raise what needs a person."""
        self._enter()
        try:
            await self._lifecycle()
        except Exception as exc:  # a bad option or a bug: said, never swallowed
            self._fatal = exc
            self._publish(last_error=_describe(exc))
        finally:
            await self._shutdown()
        if self._fatal is not None:
            raise self._fatal

    # -- the lifecycle -----------------------------------------------------------------
    def _enter(self) -> None:
        with self._guard:
            if self._ran:
                raise ConfigError("a runtime runs once; make a new one")
            self._ran = True
            self._loop = asyncio.get_running_loop()
            if self._stop_requested:
                self._stopping.set()

    async def _lifecycle(self) -> None:
        if isinstance(self._server, str):
            self.transport = transport_for(self._server)
        assert self.transport is not None
        client = SyncClient(self.brain, self.transport, **self._options)
        now = self._last_now = self._clock.now()
        self._next_tick = now
        self._next_sync = now + self.schedule.first(self._rng)
        self._publish(state="active", next_sync_at=self._next_sync)
        while not self._stopping.is_set() and self._fatal is None:
            self._wake.clear()
            now = self._now()
            if now >= self._next_tick:
                await self._run_loops()
                self._next_tick = now + self._tick
            with self._guard:
                asked = bool(self._requests)
            if asked or now >= self._next_sync:
                await self._sync(client)
                continue
            await self._pause(min(self._next_sync, self._next_tick) - now)

    def _now(self) -> float:
        """The clock, with deadlines moved along if it went back (NTP, a user's change):
        otherwise a wall clock set back an hour would delay the next sync by an hour."""
        now = self._clock.now()
        if now < self._last_now:
            shift = now - self._last_now
            self._next_sync += shift
            self._next_tick += shift
        self._last_now = now
        return now

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if woken (sync_now) or stopped."""
        if seconds <= 0:
            return
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        woken = asyncio.ensure_future(self._wake.wait())
        stopped = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({sleeper, woken, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, woken, stopped):
                task.cancel()

    async def _run_loops(self) -> None:
        try:
            await asyncio.to_thread(self.brain.tick)
        except OmegaError as exc:  # e.g. a full disk: the next tick tries again
            log.warning("the brain's loops failed (%s); trying again at the next tick", exc)
            self._publish(last_error=f"brain loops: {exc}")

    # -- one sync ----------------------------------------------------------------------
    async def _sync(self, client: SyncClient) -> None:
        with self._guard:
            waiting, self._requests = self._requests, []
        self._publish(state="syncing")
        attempt = asyncio.ensure_future(self._attempt(client))
        if not await self._finish_or_abandon(attempt):
            for future in waiting:
                future.cancel()
            return
        now = self._now()
        error = attempt.exception()
        if error is None:
            result = attempt.result()
            self._succeeded(now, result)
            _settle(waiting, result=result)
            return
        _settle(waiting, error=error)
        if isinstance(error, _NEEDS_A_PERSON) or not isinstance(error, OmegaError):
            self._fatal = error
            self._publish(state="failed", last_error=_describe(error), last_failure_at=now)
            return
        self._failed(now, error)

    async def _attempt(self, client: SyncClient) -> SyncResult:
        if self._codebook_due:
            await client.fetch_codebook()
            self._codebook_due = False
        result = await client.sync()
        # Patterns refused: most likely the constellation moved to a new codebook (the
        # transformative loop); look before the next push.
        self._codebook_due = self._codebook_due or result.rejected > 0
        return result

    async def _finish_or_abandon(self, attempt: asyncio.Future[SyncResult]) -> bool:
        """Wait for the attempt; if a stop comes first, give it ``grace`` seconds, then
        cancel it. True when it finished (either way), False when abandoned."""
        stopped = asyncio.ensure_future(self._stopping.wait())
        try:
            first: set[asyncio.Future[Any]] = {attempt, stopped}
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # run() itself was cancelled: no grace
            attempt.cancel()
            raise
        finally:
            stopped.cancel()
        if not attempt.done():
            timer = asyncio.ensure_future(self._sleep(self._grace))
            try:
                either: set[asyncio.Future[Any]] = {attempt, timer}
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            finally:
                timer.cancel()
        if attempt.done():
            return True
        attempt.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await attempt
        log.info("stopping: the sync in flight was abandoned; its batch is resent next time")
        return False

    def _succeeded(self, now: float, result: SyncResult) -> None:
        wait = self.schedule.after_success(
            self._rng, next_sync_after=result.next_sync_after, more=result.more
        )
        self._next_sync = now + wait
        status = self._status
        self._publish(
            state="active",
            syncs=status.syncs + 1,
            consecutive_failures=0,
            last_success_at=now,
            next_sync_at=self._next_sync,
            last_result=result,
        )

    def _failed(self, now: float, error: BaseException) -> None:
        failures = self._status.consecutive_failures + 1
        wait = self.schedule.after_failure(self._rng, failures=failures, error=error)
        self._next_sync = now + wait
        self._publish(
            state="backoff",
            failures=self._status.failures + 1,
            consecutive_failures=failures,
            last_failure_at=now,
            last_error=_describe(error),
            next_sync_at=self._next_sync,
        )

    # -- shutdown ----------------------------------------------------------------------
    async def _shutdown(self) -> None:
        final: RuntimeState = "failed" if self._fatal is not None else "stopped"
        self._publish(state="stopping", next_sync_at=None)
        try:
            await asyncio.to_thread(self.brain.flush)
        finally:
            try:
                if isinstance(self._server, str) and self.transport is not None:
                    await self.transport.aclose()
            finally:
                with self._guard:
                    self._loop = None
                    leftover, self._requests = self._requests, []
                for future in leftover:
                    future.cancel()
                self._publish(state=final)

    def _thread_main(self) -> None:
        try:
            asyncio.run(self.run())
        except BaseException as exc:  # already in status(); the thread has no one to tell
            if not isinstance(exc, OmegaError):
                log.exception("the device runtime stopped on an unexpected error")

    def _publish(self, **changes: Any) -> None:
        self._status = replace(self._status, **changes)
        if self._on_status is not None:
            try:
                self._on_status(self._status)
            except Exception:  # the runtime must outlive a faulty listener
                log.exception("an on_status callback failed")


def _settle(
    futures: list[concurrent.futures.Future[SyncResult]],
    *,
    result: SyncResult | None = None,
    error: BaseException | None = None,
) -> None:
    """Answer every ``sync_now`` that asked for this sync (a caller may have cancelled)."""
    for future in futures:
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            if error is not None:
                future.set_exception(error)
            else:
                assert result is not None
                future.set_result(result)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
