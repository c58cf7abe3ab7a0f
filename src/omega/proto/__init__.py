"""Omega's sync API over gRPC (``sync.proto``): the generated code, and what each RPC
stands for in the HTTP API.

``sync_pb2`` (messages) and ``sync_pb2_grpc`` (``SyncStub`` for clients) are generated
from ``sync.proto`` by grpcio-tools and committed; ``tests/proto`` regenerates them and
fails if they are not current. Every message carries the protocol's frame bytes
(``omega.protocol.codec``), not fields mirroring its types: ``sync.proto`` says why.

:data:`RPCS` maps each RPC to its HTTP route (the constellation's gRPC door answers
each call through that route of the same app; the device's ``GrpcTransport`` routes the
sync client's requests the other way), and :mod:`omega.proto.status` maps HTTP statuses
to gRPC codes and back, with the trailing metadata that carries the HTTP status.
"""

from __future__ import annotations

from omega.proto import sync_pb2
from omega.proto.routes import RPCS, SERVICE, Rpc, rpc_for
from omega.proto.status import (
    HTTP_STATUS_KEY,
    PROBLEM_KEY,
    RETRY_AFTER_KEY,
    code_for_status,
    status_for_code,
)

__all__ = [
    "HTTP_STATUS_KEY",
    "PROBLEM_KEY",
    "RETRY_AFTER_KEY",
    "RPCS",
    "SERVICE",
    "Rpc",
    "code_for_status",
    "rpc_for",
    "status_for_code",
    "sync_pb2",
]
