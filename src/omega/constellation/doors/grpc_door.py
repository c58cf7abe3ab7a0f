"""The gRPC door: ``sync.proto``'s service on its own port, answered by the app.

:func:`start_grpc` starts a ``grpc.aio`` server on the app's event loop when
``Settings.grpc_port`` is set (uvicorn cannot serve HTTP/2 beside HTTP/1.1 on one port).
Each call becomes the request the HTTP door would receive for the RPC's route
(``omega.proto.RPCS``: frames in, frames out, ``authorization`` metadata as the bearer
header) and the app answers it through :func:`call_app`, so tokens, rate limits,
ownership, body and decompressed-size limits, idempotency and seals are the HTTP door's
own. An error answer becomes its gRPC code with the problem's detail as the message, and
the HTTP status, problem slug and ``Retry-After`` in trailing metadata
(``omega.proto.status``).

``StreamSync`` answers each ``SyncRequest`` of a device's stream in order; an error ends
the stream with its status, and a stream that waits ``grpc_stream_idle`` seconds for its
next request is ended (OK) so that idle devices hold no server task.

Bad input is the door's own clear answer, never gRPC's INTERNAL: handlers take raw bytes
and parse them here (malformed protobuf → INVALID_ARGUMENT naming the message); a message
over ``max_body_bytes`` plus its protobuf envelope is refused by gRPC itself
(RESOURCE_EXHAUSTED, decompressed size included), while the app answers 413 for a frame
over the limit within it; ambiguous ``authorization`` metadata → UNAUTHENTICATED. None of
these reach the app, so nothing is stored, and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

import grpc
import msgspec
from google.protobuf.message import DecodeError

from omega.constellation.doors.asgi import AppReply, call_app
from omega.constellation.settings import Settings
from omega.errors import ConfigError
from omega.proto import (
    HTTP_STATUS_KEY,
    PROBLEM_KEY,
    RETRY_AFTER_KEY,
    RPCS,
    SERVICE,
    Rpc,
    code_for_status,
)
from omega.protocol import BINARY_MEDIA_TYPE
from omega.protocol.messages import PROBLEM_TYPE

__all__ = ["ADDRESS_FILE", "ENVELOPE_BYTES", "start_grpc"]

log = logging.getLogger("omega.constellation")

#: Where the door writes the address it listens on (in the data directory): with
#: ``grpc_port`` 0 the port is the system's choice.
ADDRESS_FILE = "grpc-address"
#: Room for a message's protobuf envelope around a frame of ``max_body_bytes``.
ENVELOPE_BYTES = 64
#: Seconds calls in flight get to finish when the server stops.
STOP_GRACE = 2.0
#: Calls the door serves at once (more are refused with RESOURCE_EXHAUSTED), and streams
#: one connection may hold open: a device needs one StreamSync stream.
MAX_CONCURRENT_RPCS = 10_000
#: Seconds a new StreamSync stream may wait for its first request (then the idle limit).
FIRST_MESSAGE_WAIT = 30.0
MAX_STREAMS_PER_CONNECTION = 100

Handler = Callable[..., Awaitable[Any]]


async def start_grpc(app: Any, settings: Settings, stack: contextlib.AsyncExitStack) -> str | None:
    """Start the gRPC door ``settings`` open (None: closed); ``stack`` stops it."""
    if settings.grpc_port is None:
        return None
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.max_body_bytes + ENVELOPE_BYTES),
            ("grpc.so_reuseport", 0),  # a port in use is an error, as it is for HTTP
            # Bounds on what idle or slow clients hold: streams per connection, and
            # connections that stop answering keepalive pings.
            ("grpc.max_concurrent_streams", MAX_STREAMS_PER_CONNECTION),
            ("grpc.keepalive_time_ms", 60_000),
            ("grpc.keepalive_timeout_ms", 20_000),
        ],
        maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
    )
    server.add_generic_rpc_handlers((_Door(app, settings).handler(),))
    host = settings.grpc_host
    shown_host = f"[{host}]" if ":" in host else host
    try:
        port = server.add_insecure_port(f"{shown_host}:{settings.grpc_port}")
    except RuntimeError:
        raise ConfigError(
            f"the gRPC door cannot listen on {shown_host}:{settings.grpc_port} (the port is "
            "in use, or the host is not an address of this machine): choose another "
            "--grpc-port"
        ) from None
    await server.start()
    stack.push_async_callback(server.stop, STOP_GRACE)
    address = f"{shown_host}:{port}"
    _write_address(settings.data_dir / ADDRESS_FILE, address, stack)
    return f"gRPC on {address} ({SERVICE}, sync.proto)"


def _write_address(path: Path, address: str, stack: contextlib.AsyncExitStack) -> None:
    """Write ``address`` to ``path`` whole (rename), removed when the door closes."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(address + "\n")
    os.replace(partial, path)
    stack.callback(path.unlink, missing_ok=True)


class _Door:
    """The service's handlers: each RPC through its route of ``app``."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.idle = settings.grpc_stream_idle

    def handler(self) -> Any:
        methods = {
            rpc.name: grpc.stream_stream_rpc_method_handler(self._stream(rpc))
            if rpc.streaming
            else grpc.unary_unary_rpc_method_handler(self._unary(rpc))
            for rpc in RPCS
        }
        return grpc.method_handlers_generic_handler(SERVICE, methods)

    def _unary(self, rpc: Rpc) -> Handler:
        async def answer(raw: bytes, context: Any) -> bytes:
            headers = _headers(rpc, await _bearer(context))
            message = await _parse(rpc, raw, context)
            reply = await self._call(rpc, message, headers, context, _peer(context.peer()))
            return _response(rpc, reply)

        return answer

    def _stream(self, rpc: Rpc) -> Handler:
        async def answer(_: Any, context: Any) -> None:
            # One stream is one device on one connection: its headers and peer are the
            # same for every request it carries.
            headers = _headers(rpc, await _bearer(context))
            client = _peer(context.peer())
            wait = min(self.idle, FIRST_MESSAGE_WAIT)  # an opened stream must be used
            while True:
                try:
                    async with asyncio.timeout(wait):  # no task per read, as wait_for
                        raw = await context.read()
                    wait = self.idle
                except TimeoutError:
                    return  # idle: the device opens a new stream when it syncs again
                if raw is grpc.aio.EOF:
                    return
                message = await _parse(rpc, raw, context)
                reply = await self._call(rpc, message, headers, context, client)
                try:
                    async with asyncio.timeout(self.idle):  # a client that never reads
                        await context.write(_response(rpc, reply))
                except TimeoutError:
                    return

        return answer

    async def _call(
        self,
        rpc: Rpc,
        message: Any,
        headers: dict[str, str],
        context: Any,
        client: tuple[str, int] | None,
    ) -> AppReply:
        """``message`` through ``rpc``'s route with ``headers`` (:func:`_headers`); an
        error answer ends the call."""
        target, body = _target(rpc, message)
        if not body and rpc.name == "Register":
            # An empty Register frame goes as no body at all: a Registration's defaults.
            headers = {k: v for k, v in headers.items() if k != "content-type"}
        try:
            # Shielded: a client that cancels (or whose deadline passes) does not cut the
            # app off mid-request, as uvicorn does not for a client that goes away.
            reply = await asyncio.shield(
                call_app(
                    self.app,
                    rpc.method,
                    target,
                    headers=headers,
                    body=body,
                    client=client,
                    scheme="http",
                )
            )
        except Exception as exc:  # the app answered 500 and re-raised: a bug of ours
            log.error("gRPC %s crashed", rpc.name, exc_info=exc)
            await _abort(context, 500, "the server hit an unexpected error", "internal")
        if not 200 <= reply.status < 300:
            await _refuse(context, reply)
        return reply


def _headers(rpc: Rpc, bearer: dict[str, str]) -> dict[str, str]:
    """The HTTP door's request headers for ``rpc``'s route: ``bearer``, what the answer
    is accepted as, and the frame's media type for a write."""
    if rpc.document:
        return {**bearer, "accept": "application/json"}
    headers = {**bearer, "accept": BINARY_MEDIA_TYPE}
    if rpc.method == "POST":
        headers["content-type"] = BINARY_MEDIA_TYPE
    return headers


def _target(rpc: Rpc, message: Any) -> tuple[str, bytes]:
    """The route's target (path and query) and body for ``message``."""
    if rpc.name == "PullPatterns":
        query = f"since={message.since}"
        if message.max_bytes:
            query += f"&max_bytes={message.max_bytes}"
        return f"{rpc.path}?{query}", b""
    if rpc.document:
        return rpc.path, b""
    return rpc.path, bytes(message.frame)


def _response(rpc: Rpc, reply: AppReply) -> bytes:
    if rpc.document:
        answer = rpc.response(json=reply.body)
    elif rpc.name == "Register":
        answer = rpc.response(frame=reply.body, created=reply.status == 201)
    else:
        answer = rpc.response(frame=reply.body)
    encoded: bytes = answer.SerializeToString()
    return encoded


async def _parse(rpc: Rpc, raw: bytes, context: Any) -> Any:
    """``raw`` as ``rpc``'s request message; INVALID_ARGUMENT if it is not one."""
    try:
        return rpc.request.FromString(raw)
    except DecodeError:
        name = rpc.request.DESCRIPTOR.full_name
        await _abort(
            context,
            400,
            f"the request is not a valid {name} message (see sync.proto): its protobuf "
            "encoding is malformed",
            "bad-message",
        )


async def _bearer(context: Any) -> dict[str, str]:
    """The ``authorization`` metadata as the HTTP door's header (the app checks it)."""
    values = [value for key, value in context.invocation_metadata() or () if key == "authorization"]
    if len(values) > 1:
        await _abort(
            context,
            401,
            f"send one authorization metadata entry, not {len(values)}",
            "unauthorized",
        )
    if not values:
        return {}
    value = values[0]
    if not isinstance(value, str) or not value.isascii():
        await _abort(
            context, 401, "the authorization metadata must be 'Bearer <token>'", "unauthorized"
        )
    return {"authorization": value}


def _peer(peer: str) -> tuple[str, int] | None:
    """``ipv4:127.0.0.1:5000`` / ``ipv6:[::1]:5000`` as (address, port)."""
    kind, _, rest = peer.partition(":")
    host, _, port = rest.rpartition(":")
    if kind not in ("ipv4", "ipv6") or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _problem(reply: AppReply) -> tuple[str, str | None]:
    """(detail, slug) of the app's problem answer."""
    try:
        problem = msgspec.json.decode(reply.body)
    except msgspec.DecodeError:
        problem = None
    if not isinstance(problem, dict) or not isinstance(problem.get("detail"), str):
        return f"HTTP {reply.status}", None
    kind = problem.get("type")
    slug = kind.removeprefix(PROBLEM_TYPE) if isinstance(kind, str) else None
    return problem["detail"], slug if kind != slug else None


async def _refuse(context: Any, reply: AppReply) -> NoReturn:
    detail, slug = _problem(reply)
    await _abort(context, reply.status, detail, slug, retry_after=reply.header("retry-after"))


async def _abort(
    context: Any, status: int, detail: str, slug: str | None, *, retry_after: str | None = None
) -> NoReturn:
    """End the call with the gRPC code for HTTP ``status`` and its trailing metadata."""
    trailers = [(HTTP_STATUS_KEY, str(status))]
    if slug:
        trailers.append((PROBLEM_KEY, slug))
    if retry_after:
        trailers.append((RETRY_AFTER_KEY, retry_after))
    await context.abort(code_for_status(status), detail, trailing_metadata=tuple(trailers))
    raise AssertionError("context.abort returned")  # it raises; this satisfies NoReturn
