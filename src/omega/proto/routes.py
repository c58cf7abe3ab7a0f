"""Each RPC of ``omega.sync.v1.Sync`` and the HTTP route it stands for.

One table for both ends: the constellation's gRPC door answers an RPC by calling its
route of the app, and the device's transport sends a route's request as its RPC. A test
checks the table against the service ``sync.proto`` declares (names, message types,
streaming).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omega.proto import sync_pb2

__all__ = ["RPCS", "SERVICE", "Rpc", "rpc_for"]

#: The service's full name: RPC paths are ``/{SERVICE}/{rpc}``.
SERVICE: str = sync_pb2.DESCRIPTOR.services_by_name["Sync"].full_name


@dataclass(frozen=True, slots=True)
class Rpc:
    """One RPC: its name, its HTTP route, its message types.

    ``document``: the answer is the route's JSON document (field ``json``), not a frame
    (field ``frame``). ``streaming``: a bidirectional stream, one answer per request.
    """

    name: str
    method: str
    path: str
    request: Any  # a generated message class (google.protobuf ships no type hints)
    response: Any
    streaming: bool = False
    document: bool = False

    @property
    def full_path(self) -> str:
        """The gRPC method path, e.g. ``/omega.sync.v1.Sync/StreamSync``."""
        return f"/{SERVICE}/{self.name}"


RPCS: tuple[Rpc, ...] = (
    Rpc(
        "Register",
        "POST",
        "/api/omega/viewers",
        sync_pb2.RegisterRequest,
        sync_pb2.RegisterResponse,
    ),
    Rpc("RefreshToken", "POST", "/api/omega/token", sync_pb2.TokenRequest, sync_pb2.TokenResponse),
    Rpc("PushPatterns", "POST", "/api/omega/patterns", sync_pb2.PushRequest, sync_pb2.PushAck),
    Rpc("PullPatterns", "GET", "/api/omega/patterns", sync_pb2.PullRequest, sync_pb2.PullResponse),
    Rpc(
        "StreamSync",
        "POST",
        "/api/omega/sync",
        sync_pb2.SyncRequest,
        sync_pb2.SyncResponse,
        streaming=True,
    ),
    Rpc(
        "GetCodebook",
        "GET",
        "/api/omega/codebook",
        sync_pb2.CodebookRequest,
        sync_pb2.CodebookDocument,
        document=True,
    ),
    Rpc(
        "GetReleaseKeys",
        "GET",
        "/api/omega/release-keys",
        sync_pb2.ReleaseKeysRequest,
        sync_pb2.ReleaseKeys,
        document=True,
    ),
)

_BY_ROUTE = {(rpc.method, rpc.path): rpc for rpc in RPCS}


def rpc_for(method: str, path: str) -> Rpc | None:
    """The RPC standing for ``method path`` (a path without its query), if there is one."""
    return _BY_ROUTE.get((method.upper(), path))
