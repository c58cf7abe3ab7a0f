"""FastAPI dependencies: who is calling (viewer or admin), and are they over their budget."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any, cast

from fastapi import Depends, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response

from omega.constellation._runtime import Runtime, runtime_of
from omega.constellation.auth import VerifiedToken
from omega.constellation.problems import Problem
from omega.constellation.ratelimit import ViewerRateLimiter
from omega.errors import AuthError

__all__ = [
    "ADMIN_ROUTE",
    "VIEWER_ROUTE",
    "Admin",
    "Viewer",
    "ViewerRoute",
    "bearer_token",
    "enforce_manufacturer_rate",
    "enforce_rate",
    "enforce_registration_rate",
    "known_query_only",
    "refund_manufacturer_rate",
    "require_admin",
    "require_own",
    "require_viewer",
]


#: The two bearer schemes, for the OpenAPI document only (``auto_error=False``): the
#: guards read the header themselves, so a missing or malformed one is a 401 problem.
_VIEWER_TOKEN = HTTPBearer(
    scheme_name="viewerToken",
    bearerFormat="JWT",
    description="A viewer's access token (from registration or /api/omega/token).",
    auto_error=False,
)
_ADMIN_TOKEN = HTTPBearer(
    scheme_name="adminToken",
    description="The operator's management token (admin_token, or <data_dir>/admin-token).",
    auto_error=False,
)
_Documented = HTTPAuthorizationCredentials | None

#: The problems every guarded route may answer with, besides its own (see
#: ``omega.constellation.openapi.problem_responses``): bad credentials, the viewer's
#: rate limit, and storage that does not answer.
VIEWER_ROUTE = (401, 429, 503)
ADMIN_ROUTE = (401, 503)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("the Authorization header must be 'Bearer <token>'")
    return token.strip()


async def require_viewer(
    request: Request, _: Annotated[_Documented, Security(_VIEWER_TOKEN)]
) -> VerifiedToken:
    """A valid access token, within its viewer's rate limit (429 with Retry-After if not)."""
    runtime = runtime_of(request)
    token = bearer_token(request)
    if token is None:
        raise AuthError("this endpoint needs a viewer access token (Authorization: Bearer)")
    verified = runtime.tokens.verify(token, "access")
    request.state.viewer_id = verified.viewer_id  # for the dashboard's active devices
    enforce_rate(runtime, verified.viewer_id)
    return verified


def enforce_rate(runtime: Runtime, viewer_id: str) -> None:
    _enforce(runtime, runtime.limiter, viewer_id, "this viewer", "viewer")


def enforce_registration_rate(request: Request) -> None:
    runtime = runtime_of(request)
    limiter = runtime.registration_limiter
    if limiter is not None:
        address = request.client.host if request.client else "unknown"
        _enforce(runtime, limiter, address, "registrations from here", "registration")


def enforce_manufacturer_rate(runtime: Runtime, manufacturer_id: str) -> None:
    limiter = runtime.manufacturer_limiter
    if limiter is not None:
        who = f"registrations of manufacturer {manufacturer_id!r}"
        _enforce(runtime, limiter, manufacturer_id, who, "manufacturer")


def refund_manufacturer_rate(runtime: Runtime, manufacturer_id: str) -> None:
    """Undo :func:`enforce_manufacturer_rate`'s hit for a registration that made no new
    identity, so one device registering over and over cannot use up its maker's budget."""
    if runtime.manufacturer_limiter is not None:
        runtime.manufacturer_limiter.refund(manufacturer_id)


def _enforce(runtime: Runtime, limiter: ViewerRateLimiter, key: str, who: str, limit: str) -> None:
    """A 429 problem if ``key`` is over ``limiter``'s budget (counted under ``limit``)."""
    decision = limiter.hit(key)
    if not decision.allowed:
        runtime.metrics.rate_limited.labels(limit).inc()
        raise Problem(
            429,
            f"over {limiter.limit} requests per {runtime.settings.rate_window} s for {who}; "
            f"retry in {decision.retry_after} s",
            slug="rate-limited",
            headers={"Retry-After": str(decision.retry_after)},
        )


async def require_admin(
    request: Request, _: Annotated[_Documented, Security(_ADMIN_TOKEN)]
) -> None:
    runtime_of(request).admin.check(bearer_token(request))


async def known_query_only(request: Request) -> None:
    """Refuse query parameters the route does not declare (a 400 problem): a misspelt
    ``?sinse=5`` must not silently pull everything from version 0."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    known = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise Problem(
            400,
            f"unknown query parameter(s): {', '.join(unknown)}; this route takes {allowed}",
            slug="bad-request",
        )


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def require_own(verified: VerifiedToken, viewer_id: str) -> None:
    if verified.viewer_id != viewer_id:
        raise Problem(403, "a viewer may only read or write its own data", slug="not-your-viewer")


Viewer = Annotated[VerifiedToken, Depends(require_viewer)]
Admin = Annotated[None, Depends(require_admin)]


_ViewerEndpoint = Callable[[Request, VerifiedToken], Awaitable[Response]]


class ViewerRoute(APIRoute):
    """A viewer's hot route (``POST /sync``, ``POST /patterns``): FastAPI documents it
    from its signature ``(request: Request, verified: Viewer)`` as any route, but a
    request runs the route's two guards directly, :func:`known_query_only` then
    :func:`require_viewer`, instead of through FastAPI's dependency solving and its exit
    stack (where ``omega bench server --profile`` found a sixth of a sync's samples).

    The endpoint must take exactly those two parameters and the route no other
    dependencies: anything else would be documented and never run, so it is refused when
    the app is built.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        parameters = list(inspect.signature(endpoint).parameters)
        calls = {d.call for d in self.dependant.dependencies}
        if parameters != ["request", "verified"] or not calls <= {
            require_viewer,
            known_query_only,
        }:
            raise TypeError(
                f"{path}: a ViewerRoute endpoint takes (request, verified: Viewer) and no "
                f"other dependencies; got {parameters} and {sorted(map(str, calls))}"
            )

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = cast(_ViewerEndpoint, self.endpoint)

        async def handler(request: Request) -> Response:
            await known_query_only(request)
            return await endpoint(request, await require_viewer(request, None))

        return handler
