"""``create_app(settings) -> FastAPI``: the constellation service, assembled.

Nothing is opened at import time. The lifespan opens storage, loads (or makes) the JWT
keys and admin token, starts the release watcher, in-process federation rounds (when
``federation_interval`` is above 0) and the other doors the settings open (gRPC, HTTP/3,
MCP: ``omega.constellation.doors``), and stops them all on shutdown. ``uvicorn
--factory omega.constellation.app:create_app`` builds one from ``OMEGA_*`` variables.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline
from starlette.routing import Route

from omega.clock import Clock, SystemClock
from omega.constellation._runtime import Runtime, load_admin_token, load_keys, load_release_keys
from omega.constellation.auth import AdminGate, TokenService
from omega.constellation.dashboard import Dashboard, RoundLog, Sampler, Sessions, run_sampler
from omega.constellation.distribute import Pacer
from omega.constellation.doors import open_doors
from omega.constellation.doors.mcp_tools import MCP_PATH, McpEndpoint
from omega.constellation.event_bus import LocalEventBus, PostgresEventBus
from omega.constellation.events import EventBroker, ReleaseWatcher
from omega.constellation.exchange import Exchange, ExchangeLimits
from omega.constellation.guards import ViewerRoute, known_query_only
from omega.constellation.helper_client import helper_settings
from omega.constellation.hot_routes import HotRoutes
from omega.constellation.ingest import CodebookCache
from omega.constellation.metrics import Metrics, MetricsMiddleware
from omega.constellation.metrics_shared import forget_this_process
from omega.constellation.openapi import document_components
from omega.constellation.problems import install_problem_handlers
from omega.constellation.ratelimit import RateLimiter
from omega.constellation.ratelimit_shared import LimitStore, open_limit_store
from omega.constellation.rounds import RoundRunner
from omega.constellation.routes import (
    consensus,
    consensus_router,
    cowatch,
    cowatch_router,
    dashboard_router,
    manage_router,
    manufacturers_router,
    operator,
    operator_router,
    ops_router,
    registry,
    registry_router,
    stream_router,
    sync_router,
    viewers_router,
)
from omega.constellation.routes.manage import CodebookDocument, CodebookPublished
from omega.constellation.routes.manufacturers import (
    DeviceRekey,
    ManufacturerKeyDocument,
    RekeyedDevice,
    TrustedManufacturerKey,
)
from omega.constellation.settings import Settings
from omega.errors import ConfigError
from omega.protocol.messages import (
    ProblemDetail,
    PullResponse,
    PushAck,
    PushRequest,
    Registration,
    RegistrationResponse,
    ServerEvent,
    SyncRequest,
    SyncResponse,
    TokenRefresh,
)
from omega.storage.base import Storage
from omega.storage.factory import open_storage, postgres_dsn

__all__ = ["create_app", "ensure_data_dir"]

log = logging.getLogger("omega.constellation")

_DOC_TYPES: list[Any] = [
    Registration,
    RegistrationResponse,
    TokenRefresh,
    SyncRequest,
    SyncResponse,
    PushRequest,
    PushAck,
    PullResponse,
    ServerEvent,
    ProblemDetail,
    CodebookDocument,
    ManufacturerKeyDocument,
    TrustedManufacturerKey,
    DeviceRekey,
    RekeyedDevice,
    CodebookPublished,
    *operator.DOC_TYPES,
    *consensus.DOC_TYPES,
    *cowatch.DOC_TYPES,
    *registry.DOC_TYPES,
]


def ensure_data_dir(path: Path) -> None:
    """Create the data directory (keys, admin token, the default database), or say in one
    sentence why it cannot be used."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot use {path} as the data directory: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot use {path} as the data directory: it is not writable")


def _build_runtime(settings: Settings, clock: Clock, metrics: Metrics) -> Runtime:
    """Every part of the service, wired from ``settings`` (the lifespan opens it)."""
    ensure_data_dir(settings.data_dir)
    tokens = _token_service(settings, clock)
    sealer = load_release_keys(settings)
    admin = AdminGate(load_admin_token(settings))
    storage = open_storage(settings.storage_url)
    limits = open_limit_store(settings.rate_limit_url, settings.storage_url)
    broker = EventBroker()
    watcher = ReleaseWatcher(
        storage,
        broker,
        interval=settings.release_poll_interval,
        on_version=metrics.release_changed,
    )
    dsn = postgres_dsn(settings.storage_url)  # replicas share events through it
    events = LocalEventBus(broker) if dsn is None else PostgresEventBus(dsn, broker, watcher)
    codebooks = CodebookCache(storage, clock=clock)
    exchange_limits = ExchangeLimits(
        max_patterns_per_batch=settings.max_patterns_per_batch,
        min_pull_bytes=settings.min_pull_bytes,
        max_pull_bytes=settings.max_pull_bytes,
        two_server_reports=settings.helper_url is not None,
        seal_reserve=sealer.reserve,
        share_epsilon=settings.share_noise_epsilon,
    )
    return Runtime(
        settings=settings,
        clock=clock,
        storage=storage,
        tokens=tokens,
        admin=admin,
        limits=limits,
        limiter=limits.limiter("viewer", limit=settings.rate_limit, window=settings.rate_window),
        registration_limiter=_limiter(
            limits, "address", settings.registration_rate_limit, settings.rate_window
        ),
        manufacturer_limiter=_limiter(
            limits, "manufacturer", settings.manufacturer_registration_limit, settings.rate_window
        ),
        broker=broker,
        events=events,
        metrics=metrics,
        pacer=Pacer(
            interval=settings.sync_interval,
            jitter=settings.sync_jitter,
            target_per_second=settings.target_syncs_per_second,
            clock=clock,
        ),
        watcher=watcher,
        codebooks=codebooks,
        exchange=Exchange(
            storage,
            codebooks,
            limits=exchange_limits,
            clock=clock,
            metrics=metrics,
            failpoints=settings.failpoints,
            # On PostgreSQL the broker knows the release version (NOTIFY): no query a pull.
            release_version=None if dsn is None else (lambda: broker.version),
        ),
        rounds=_round_runner(settings, storage, clock=clock, metrics=metrics, watcher=watcher),
        sealer=sealer,
    )


def _dashboard(runtime: Runtime) -> Dashboard:
    """The dashboard's sampler (over the metrics' counters and the viewers the rate
    limiter saw, as ``omega_active_devices``), round history and logins; the rounds
    report to it."""
    rounds = RoundLog(runtime.clock)
    runtime.rounds.observe(rounds.record)
    sampler = Sampler(
        runtime.metrics.registry,
        runtime.limiter.active,
        interval=runtime.settings.dashboard_sample_interval,
    )
    return Dashboard(sampler=sampler, rounds=rounds, sessions=Sessions(runtime.clock))


def _limiter(limits: LimitStore, name: str, limit: int, window: int) -> RateLimiter | None:
    """``limit`` per ``window`` seconds for each key; None when ``limit`` is 0 (no limit)."""
    return limits.limiter(name, limit=limit, window=window) if limit else None


def _token_service(settings: Settings, clock: Clock) -> TokenService:
    """The JWT issuer and checker, with the keys from the data directory."""
    return TokenService(
        load_keys(settings),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        access_ttl=settings.access_token_ttl,
        refresh_ttl=settings.refresh_token_ttl,
        leeway=settings.jwt_leeway,
        clock=clock,
    )


def _round_runner(
    settings: Settings,
    storage: Storage,
    *,
    clock: Clock,
    metrics: Metrics,
    watcher: ReleaseWatcher,
) -> RoundRunner:
    """In-process federation rounds, counting two-server reports with the helper if set."""
    return RoundRunner(
        storage,
        clock=clock,
        metrics=metrics,
        watcher=watcher,
        interval=settings.federation_interval,
        storage_url=settings.storage_url,
        helper=helper_settings(settings),
    )


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    cowatch_clock: Clock | None = None,
) -> FastAPI:
    """The constellation ASGI app. ``settings`` default: read from ``OMEGA_*`` variables.
    ``cowatch_clock``: the clock co-watch epochs follow (default ``clock``: a replay
    passes its simulated clock, ``omega.sim.cowatch_private``)."""
    settings = settings if settings is not None else Settings()
    clock = clock if clock is not None else SystemClock()
    metrics = Metrics(helper=settings.helper_url is not None)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = _build_runtime(settings, clock, metrics)
        runtime.cowatch_clock = cowatch_clock
        app.state.runtime = runtime
        dashboard = _dashboard(runtime)
        app.state.dashboard = dashboard
        tasks: list[asyncio.Task[None]] = []
        doors = contextlib.AsyncExitStack()
        try:
            await runtime.limits.open()
            await runtime.storage.open_async()
            await runtime.watcher.check()
            tasks.append(asyncio.create_task(runtime.watcher.run(), name="omega-release-watch"))
            tasks.append(asyncio.create_task(runtime.events.run(), name="omega-event-bus"))
            stats = functools.partial(runtime.db, runtime.storage.stats)
            sampling = run_sampler(dashboard.sampler, stats, clock)
            tasks.append(asyncio.create_task(sampling, name="omega-dashboard-sampler"))
            if settings.federation_interval > 0:
                tasks.append(asyncio.create_task(runtime.rounds.run(), name="omega-rounds"))
            for line in await open_doors(app, settings, doors):
                log.info("door open: %s", line)
            log.info(
                "constellation up: storage %s, rate limits in %s, release v%d, signing kid %s,"
                " release kid %s",
                settings.storage_url.split("@")[-1],
                runtime.limits.where,
                runtime.broker.version,
                runtime.tokens.keys.signer.kid,
                runtime.sealer.kid,
            )
            if settings.gc_freeze:  # see Settings.gc_freeze
                gc.collect()
                gc.freeze()
            yield
        finally:
            await doors.aclose()  # stop taking requests before the parts they need stop
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await runtime.limits.aclose()
            await runtime.storage.close_async()
            forget_this_process()
            runtime.rounds.close()
            runtime.storage.close()

    # FastAPIOffline: /docs and /redoc load Swagger UI and ReDoc from the package, no CDN.
    app = FastAPIOffline(
        title="Omega constellation",
        summary="Federated pattern exchange for Omega TV brains.",
        description=(
            "Devices register, then sync: push quality-filtered patterns and pull the "
            "consolidated release delta. Bodies are binary frames (`application/x-omega`) "
            "or JSON (`application/json`) for debugging; errors are RFC 9457 problems."
        ),
        version="0.1.0",
        lifespan=lifespan,
        dependencies=[Depends(known_query_only)],
        # Prometheus (/metrics) is the server's telemetry; FastAPI's OpenTelemetry hooks
        # would look up tracer and meter providers on every request (~3 % of a sync's
        # samples under py-spy) to find none configured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_problem_handlers(app)
    # Inside the metrics middleware (added after it, so the metrics wrap it): the hot
    # routes skip the framework's layers between the two (omega.constellation.hot_routes).
    hot = [r for r in sync_router.routes if isinstance(r, ViewerRoute)]
    app.add_middleware(HotRoutes, routes=hot, exception_handlers=app.exception_handlers)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    for router in (
        viewers_router,
        sync_router,
        cowatch_router,
        manage_router,
        manufacturers_router,
        operator_router,
        consensus_router,
        registry_router,
        stream_router,
        ops_router,
        dashboard_router,
    ):
        app.include_router(router)
    if settings.mcp:
        app.router.routes.append(Route(MCP_PATH, McpEndpoint(), include_in_schema=False))
    document_components(app, _DOC_TYPES)
    return app
