"""The two hot routes go from the metrics middleware straight to their handlers.

A viewer's ``POST /api/omega/sync`` and ``POST /api/omega/patterns`` are nearly all the
requests a constellation serves. Between the metrics middleware and such a route,
Starlette and FastAPI run their exception middleware, the router's matching across
every included router, FastAPI's exit-stack middleware and the route's request/response
wrapper: none of it does anything for these two routes, whose handlers
(:class:`~omega.constellation.guards.ViewerRoute`) run their own guards and need no
dependencies. :class:`HotRoutes` sits just inside the metrics middleware and sends an
exact match of either to the route's own handler — the same guards, the same endpoint,
``scope["route"]`` set as the router sets it — and turns what the handler raises into
the answer the app's exception handlers give, looked up as Starlette's exception
middleware looks them up. An exception no handler takes goes on up, to the server-error
middleware's 500, as before. Anything else (other paths and methods, a trailing slash,
a deployment under a root path) takes the usual way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["HotRoutes"]

_Handler = Callable[[Request], Awaitable[Response]]
_ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


class HotRoutes:
    """ASGI middleware: ``POST`` to one of ``routes``' paths runs that route's handler."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Iterable[APIRoute],
        exception_handlers: Mapping[Any, Callable[..., Any]],
    ) -> None:
        self._app = app
        self._routes = {
            route.path: (route, route.get_route_handler())
            for route in routes
            if route.methods == {"POST"}
        }
        # Read at each exception (the app's dict): handlers added later count too.
        self._exception_handlers = exception_handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = (
            self._routes.get(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path")
            else None
        )
        if hot is None:
            await self._app(scope, receive, send)
            return
        route, handler = hot
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except Exception as exc:
            on_error = self._handler_for(exc)
            if on_error is None:
                raise
            response = await on_error(request, exc)
        await response(scope, receive, send)

    def _handler_for(self, exc: Exception) -> _ExceptionHandler | None:
        """The app's handler for ``exc``'s nearest class (``Exception`` itself is the
        server-error middleware's, outside this one)."""
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            found = self._exception_handlers.get(cls)
            if found is not None:
                return found
        return None
