"""Every error answer is an RFC 9457 problem (``application/problem+json``), never a traceback.

Handlers translate, in one place: ``Problem`` (raised by routes with an explicit status),
Omega's error tree (peer garbage → 400, a well-formed message that breaks a protocol rule
→ 422, too large → 413, reused idempotency key → 422, bad credentials → 401, good ones
refused → 403, storage trouble → 503, our own encoding bug → 500), FastAPI's request
validation, Starlette's 404/405, and anything unexpected (500, logged server-side with
its traceback).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from omega.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    InputError,
    InvalidMessageError,
    LocalProtocolError,
    OmegaError,
    PayloadTooLargeError,
    RemoteProtocolError,
    RevokedError,
    StoreError,
    ViewerRevokedError,
)
from omega.protocol.messages import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE, ProblemDetail

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_TYPE",
    "Problem",
    "install_problem_handlers",
    "problem_response",
    "problem_title",
]

log = logging.getLogger("omega.constellation")

_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    425: "Too Early",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem_title(status: int) -> str:
    return _TITLES.get(status, "Error")


class Problem(Exception):
    """Raised by routes: becomes a problem response with this status and detail."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug
        self.headers = dict(headers or {})


def problem_response(
    status: int, detail: str, *, slug: str | None = None, headers: Mapping[str, str] | None = None
) -> Response:
    body = ProblemDetail(
        title=problem_title(status),
        status=status,
        detail=detail,
        type=PROBLEM_TYPE + slug if slug else "about:blank",
    )
    all_headers = dict(headers or {})
    if status == 401:
        all_headers.setdefault("WWW-Authenticate", 'Bearer realm="omega"')
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=all_headers,
    )


def status_for(error: OmegaError) -> tuple[int, str]:
    """The HTTP status and problem slug for one of Omega's errors."""
    if isinstance(error, PayloadTooLargeError):
        return 413, "too-large"
    if isinstance(error, InvalidMessageError):
        return 422, "invalid-message"
    if isinstance(error, RemoteProtocolError):
        return 400, "bad-message"
    if isinstance(error, LocalProtocolError):  # we could not encode our own answer
        return 500, "internal"
    if isinstance(error, ConflictError):
        return 422, "idempotency-conflict"
    if isinstance(error, ViewerRevokedError):  # the operator revoked this viewer
        return 403, "viewer-revoked"
    if isinstance(error, RevokedError):  # a lasting refusal to a device (sync.replies)
        return 403, "manufacturer-key-revoked"
    if isinstance(error, AuthError):
        return 401, "unauthorized"
    if isinstance(error, InputError):
        return 422, "invalid-input"
    if isinstance(error, (StoreError, ConfigError)):
        return 503, "unavailable"
    return 500, "internal"


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(exc.status, exc.detail, slug=exc.slug, headers=exc.headers)

    async def on_omega(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, OmegaError)
        status, slug = status_for(exc)
        if status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
            return problem_response(status, "the server could not complete the request", slug=slug)
        return problem_response(status, str(exc), slug=slug)

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        parts = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()))
            parts.append(f"{where}: {error.get('msg', 'invalid')}")
        return problem_response(400, "; ".join(parts) or "invalid request", slug="bad-request")

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return problem_response(exc.status_code, str(exc.detail), headers=headers)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.error("%s %s crashed", request.method, request.url.path, exc_info=exc)
        return problem_response(500, "the server hit an unexpected error", slug="internal")

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(OmegaError, on_omega)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


def _allowed_methods(request: Request) -> str:
    """Every method the path serves (RFC 9110 ``Allow``): Starlette names only those of
    the first route whose path matched, so ``GET /codebook`` was missing from the 405 of
    ``PUT /codebook``. Asked of the routes one method at a time (FastAPI nests the
    routes of an included router behind one entry)."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ]
    return ", ".join(allowed)
