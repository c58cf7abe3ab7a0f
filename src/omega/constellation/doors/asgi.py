"""One buffered request through the constellation's ASGI app, in this process.

The gRPC and HTTP/3 doors translate their protocol's request into the very request the
HTTP door would receive, and call the app with it: the same routes, guards (token, rate
limit, ownership), body limits, idempotency and sealing answer on every door, and the
metrics middleware counts them all. The call is an ASGI function call, not a socket:
nothing is re-encoded as HTTP/1.1.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["AppReply", "call_app"]


@dataclass(frozen=True, slots=True)
class AppReply:
    """The app's answer: status, lower-case headers (last value wins) and the whole body."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


#: The longest target :func:`_split` remembers (the sync API's paths are ~20 characters).
_CACHED_TARGET = 64


def _split(target: str) -> tuple[str, bytes, bytes]:
    """``target``'s decoded path (ASGI's, as uvicorn gives it), raw path and query."""
    parts = urlsplit(target)
    return unquote(parts.path), parts.path.encode("latin-1"), parts.query.encode("latin-1")


#: :func:`_split` remembered: a device's syncs share one target (see ``call_app``).
_split_cached = functools.lru_cache(maxsize=64)(_split)


async def call_app(
    app: Any,
    method: str,
    target: str,
    *,
    headers: Mapping[str, str],
    body: bytes = b"",
    client: tuple[str, int] | None = None,
    scheme: str = "https",
    http_version: str = "2",
) -> AppReply:
    """``method target`` (a path with an optional ``?query``) with ``headers`` and ``body``.

    ``client`` is the peer's (address, port): per-address limits (registrations) see the
    door's real peer. The app must be inside its lifespan (its runtime is running).
    """
    # The gRPC door's targets are a handful of fixed paths; an HTTP/3 client chooses its
    # own, so only short targets without a query are remembered.
    cacheable = len(target) <= _CACHED_TARGET and "?" not in target
    path, raw_path, query = _split_cached(target) if cacheable else _split(target)
    raw_headers = [
        (k.lower().encode("latin-1"), v.encode("latin-1"))
        for k, v in headers.items()
        if k.lower() != "content-length"
    ]
    if body:  # the body's own length, whatever the door was told
        raw_headers.append((b"content-length", str(len(body)).encode()))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": http_version,
        "method": method.upper(),
        "scheme": scheme,
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": raw_headers,
        "client": client,
        "server": None,
        "state": {},
    }
    sent = False
    status = 500
    answer_headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: Mapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            for key, value in message.get("headers", ()):
                answer_headers[key.decode("latin-1").lower()] = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))

    await app(scope, receive, send)
    return AppReply(status=status, headers=answer_headers, body=b"".join(chunks))
