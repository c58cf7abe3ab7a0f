"""The device side of sync: outbox push, cursor pull, conflict strategies, retries, tokens.

``SyncClient(brain, transport).sync()`` does one push + pull round trip; transports are
``HttpTransport`` (the network), ``AsgiTransport`` (an app in this process) and
``omega.sync.grpc_transport.GrpcTransport`` (the gRPC door; imported from its module, so
that grpcio loads only where it is used); ``FailoverTransport`` spreads them over several
endpoints of one service (replicas); ``transport_for("grpc://host:port,h3://…")`` opens
the transport a URL (or several) names (``omega.sync.endpoints``).
``DeviceRuntime(brain, base_url)`` keeps a TV syncing on a ``SyncSchedule`` through any
outage and drives the brain's loops; ``run_sync(brain, base_url)`` is a blocking one-shot.
Co-watch (``omega.sync.cowatch``, docs/cowatch.md): ``CowatchPairs`` / ``CowatchTable``
are the brain's seams, ``Contributor`` sends a TV's pairs through the helper.
"""

from __future__ import annotations

from omega.sync.client import SyncClient, SyncResult
from omega.sync.conflicts import (
    STRATEGIES,
    ConflictStrategy,
    Evidence,
    Ledger,
    check_strategy,
    resolve,
    resolve_updates,
)
from omega.sync.cowatch import Contributor, CowatchPairs, CowatchTable, NoCowatch
from omega.sync.endpoints import transport_for
from omega.sync.failover import FailoverTransport
from omega.sync.push import PushPlan, build_push
from omega.sync.retry import RetryPolicy
from omega.sync.runner import run_sync
from omega.sync.runtime import DeviceRuntime, RuntimeState, RuntimeStatus
from omega.sync.schedule import SyncSchedule
from omega.sync.transport import AsgiTransport, HttpTransport, Response, Transport

__all__ = [
    "STRATEGIES",
    "AsgiTransport",
    "ConflictStrategy",
    "Contributor",
    "CowatchPairs",
    "CowatchTable",
    "DeviceRuntime",
    "Evidence",
    "FailoverTransport",
    "HttpTransport",
    "Ledger",
    "NoCowatch",
    "PushPlan",
    "Response",
    "RetryPolicy",
    "RuntimeState",
    "RuntimeStatus",
    "SyncClient",
    "SyncResult",
    "SyncSchedule",
    "Transport",
    "build_push",
    "check_strategy",
    "resolve",
    "resolve_updates",
    "run_sync",
    "transport_for",
]
