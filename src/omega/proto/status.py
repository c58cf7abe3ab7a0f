"""HTTP statuses and gRPC codes, both ways, and the trailing metadata between them.

The gRPC door answers an error with the gRPC code :func:`code_for_status` gives for the
app's HTTP status, the problem's ``detail`` as the message, and trailing metadata
:data:`HTTP_STATUS_KEY` (the HTTP status), :data:`PROBLEM_KEY` (the problem's slug) and
:data:`RETRY_AFTER_KEY` (seconds, when the app said): the device's transport rebuilds
from them the very answer the HTTP door gives. A status without that metadata did not
come from the constellation (a proxy, gRPC itself): :func:`status_for_code` gives the
HTTP status it stands for.
"""

from __future__ import annotations

from typing import Any

import grpc

__all__ = [
    "HTTP_STATUS_KEY",
    "PROBLEM_KEY",
    "RETRY_AFTER_KEY",
    "code_for_status",
    "status_for_code",
]

HTTP_STATUS_KEY = "omega-http-status"
PROBLEM_KEY = "omega-problem"
RETRY_AFTER_KEY = "retry-after"

_CODES: dict[int, Any] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    406: grpc.StatusCode.INVALID_ARGUMENT,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    409: grpc.StatusCode.ALREADY_EXISTS,
    410: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    425: grpc.StatusCode.UNAVAILABLE,  # too early: the same request later will do
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

# The HTTP status a gRPC code stands for (google.rpc.Code's mapping), for statuses that
# carry no HTTP status of the constellation's. RESOURCE_EXHAUSTED is 413, not 429: with
# no constellation status it comes from gRPC's own message size limits, and waiting does
# not make a message smaller.
_STATUSES: dict[Any, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def code_for_status(status: int) -> Any:
    """The gRPC code (``grpc.StatusCode``) for an HTTP status that is not a success.

    Another 4xx is FAILED_PRECONDITION (the request cannot succeed as the server stands:
    412, 428 …); another 5xx, and anything below 400 (a redirect or an interim answer,
    which an RPC cannot follow: the app answered the door with something it should
    not), is INTERNAL."""
    code = _CODES.get(status)
    if code is not None:
        return code
    if 400 <= status < 500:
        return grpc.StatusCode.FAILED_PRECONDITION
    return grpc.StatusCode.INTERNAL


def status_for_code(code: Any) -> int:
    """The HTTP status a gRPC code stands for (500 for INTERNAL, UNKNOWN, DATA_LOSS)."""
    return _STATUSES.get(code, 500)
