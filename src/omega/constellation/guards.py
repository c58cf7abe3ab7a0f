"""FastAPI dependencies: who is calling (viewer or admin), and are they over their budget."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from omega.constellation._runtime import Runtime, runtime_of
from omega.constellation.auth import VerifiedToken
from omega.constellation.problems import Problem
from omega.constellation.ratelimit import ViewerRateLimiter
from omega.errors import AuthError

__all__ = [
    "Admin",
    "Viewer",
    "bearer_token",
    "enforce_manufacturer_rate",
    "enforce_rate",
    "enforce_registration_rate",
    "refund_manufacturer_rate",
    "require_admin",
    "require_own",
    "require_viewer",
]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("the Authorization header must be 'Bearer <token>'")
    return token.strip()


async def require_viewer(request: Request) -> VerifiedToken:
    """A valid access token, within its viewer's rate limit (429 with Retry-After if not)."""
    runtime = runtime_of(request)
    token = bearer_token(request)
    if token is None:
        raise AuthError("this endpoint needs a viewer access token (Authorization: Bearer)")
    verified = runtime.tokens.verify(token, "access")
    enforce_rate(runtime, verified.viewer_id)
    return verified


def enforce_rate(runtime: Runtime, viewer_id: str) -> None:
    _enforce(runtime.limiter, viewer_id, runtime.settings.rate_window, "this viewer")


def enforce_registration_rate(request: Request) -> None:
    runtime = runtime_of(request)
    limiter = runtime.registration_limiter
    if limiter is not None:
        address = request.client.host if request.client else "unknown"
        _enforce(limiter, address, runtime.settings.rate_window, "registrations from here")


def enforce_manufacturer_rate(runtime: Runtime, manufacturer_id: str) -> None:
    limiter = runtime.manufacturer_limiter
    if limiter is not None:
        who = f"registrations of manufacturer {manufacturer_id!r}"
        _enforce(limiter, manufacturer_id, runtime.settings.rate_window, who)


def refund_manufacturer_rate(runtime: Runtime, manufacturer_id: str) -> None:
    """Undo :func:`enforce_manufacturer_rate`'s hit for a registration that made no new
    identity, so one device registering over and over cannot use up its maker's budget."""
    if runtime.manufacturer_limiter is not None:
        runtime.manufacturer_limiter.refund(manufacturer_id)


def _enforce(limiter: ViewerRateLimiter, key: str, window: int, who: str) -> None:
    decision = limiter.hit(key)
    if not decision.allowed:
        raise Problem(
            429,
            f"over {limiter.limit} requests per {window} s for {who}; "
            f"retry in {decision.retry_after} s",
            slug="rate-limited",
            headers={"Retry-After": str(decision.retry_after)},
        )


async def require_admin(request: Request) -> None:
    runtime_of(request).admin.check(bearer_token(request))


def require_own(verified: VerifiedToken, viewer_id: str) -> None:
    if verified.viewer_id != viewer_id:
        raise Problem(403, "a viewer may only read or write its own data", slug="not-your-viewer")


Viewer = Annotated[VerifiedToken, Depends(require_viewer)]
Admin = Annotated[None, Depends(require_admin)]
