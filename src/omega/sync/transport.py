"""How the sync client reaches a constellation: one small interface, real implementations.

``HttpTransport`` speaks HTTP over the network (httpx); ``AsgiTransport`` calls an ASGI
app in this process (httpx's ASGI transport) and runs the app's lifespan, so tests and
the simulator exercise the very same server code without a socket. Both do real I/O;
the client never sees httpx: connection failures become :class:`TransportError`
(:class:`UnreachableError` when the request never left). ``FailoverTransport``
(:mod:`omega.sync.failover`) spreads one service over several endpoints.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self

import httpx

from omega.errors import ConfigError, TransportError, UnreachableError

__all__ = ["AsgiTransport", "HttpTransport", "Response", "Transport", "check_base_url"]

#: Seconds to wait for a connection, and for each read/write of a request.
CONNECT_TIMEOUT = 5.0
IO_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP answer, whatever its status; header names are lower-case."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class Transport(Protocol):
    """Sends one request and returns the answer; raises TransportError if none came."""

    async def request(
        self, method: str, path: str, *, body: bytes | None, headers: Mapping[str, str]
    ) -> Response: ...

    async def aclose(self) -> None: ...


class _HttpxTransport:
    """The shared shell: an httpx.AsyncClient, with its errors translated at the edge."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def request(
        self, method: str, path: str, *, body: bytes | None, headers: Mapping[str, str]
    ) -> Response:
        try:
            answer = await self._client.request(method, path, content=body, headers=dict(headers))
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise UnreachableError(f"{method} {path}: {exc or type(exc).__name__}") from exc
        except httpx.TimeoutException as exc:
            raise TransportError(f"{method} {path}: timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise TransportError(f"{method} {path}: {exc or type(exc).__name__}") from exc
        return Response(
            status=answer.status_code,
            headers={k.lower(): v for k, v in answer.headers.items()},
            body=answer.content,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def check_base_url(base_url: str) -> str:
    """``base_url`` without its trailing slash; ConfigError unless it is http(s)."""
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"server URL must start with http:// or https://, got {base_url!r}")
    return base_url.rstrip("/")


class HttpTransport(_HttpxTransport):
    """HTTP to ``base_url`` (e.g. ``http://127.0.0.1:8000``), with connect and I/O timeouts."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        timeout: float = IO_TIMEOUT,
    ) -> None:
        self.base_url = check_base_url(base_url)
        super().__init__(
            httpx.AsyncClient(
                base_url=self.base_url,
                timeout=httpx.Timeout(timeout, connect=connect_timeout),
                follow_redirects=False,
            )
        )


class AsgiTransport(_HttpxTransport):
    """An ASGI app (e.g. ``omega.constellation.create_app(settings)``) in this process.

    ``open()`` (or ``async with``) enters the app's lifespan, so its storage and
    background tasks start as under uvicorn; ``aclose()`` shuts them down. When ``app``
    is a middleware around the real app, pass the real one as ``lifespan_app``.
    """

    def __init__(self, app: Any, *, lifespan_app: Any = None) -> None:
        self.app = app
        self.lifespan_app = app if lifespan_app is None else lifespan_app
        self._lifespan: contextlib.AbstractAsyncContextManager[Any] | None = None
        super().__init__(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://omega.asgi")
        )

    async def open(self) -> Self:
        if self._lifespan is None:
            lifespan = self.lifespan_app.router.lifespan_context(self.lifespan_app)
            await lifespan.__aenter__()
            self._lifespan = lifespan
        return self

    async def aclose(self) -> None:
        await super().aclose()
        lifespan, self._lifespan = self._lifespan, None
        if lifespan is not None:
            await lifespan.__aexit__(None, None, None)

    async def __aenter__(self) -> Self:
        return await self.open()
