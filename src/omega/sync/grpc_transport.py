"""A device transport over the constellation's gRPC door (``sync.proto``, docs/grpc.md).

``GrpcTransport("host:port")`` is a :class:`~omega.sync.transport.Transport`: each request
of the sync client goes as the RPC that stands for its route (``omega.proto.RPCS``), and
comes back as the :class:`Response` the HTTP door would give — the frame as the body
(``application/x-omega``; the codebook and release keys as their JSON documents), or, for
an error, the same problem document rebuilt from the door's status and trailing metadata
(HTTP status, slug, detail, ``Retry-After``). So the client decides alike on both doors:
refresh on 401, wait on 429 and 503, stop on a lasting refusal.

``POST /api/omega/sync`` goes over the device's one ``StreamSync`` stream: opened on first
use and kept for every sync and pull page while the token stays the same. It is replaced
when the token changes, when it has ended (an error ends it, as does a server restart or
the server's idle limit), and when it sat unused ``reuse_for`` seconds (less than the
server's ``grpc_stream_idle``, so a request does not race the server ending it). A
request a stream could not take because it had ended is written once more on a new
stream: nothing was sent.

No answer — refused, reset, timed out, the server stopping — is a :class:`TransportError`.
A status with no HTTP status of the constellation's (a proxy's, or gRPC's own, e.g. a
message over a size limit) becomes the HTTP status it stands for with a plain-text body,
which the client never takes for the constellation's own refusal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

import grpc
import msgspec
from google.protobuf.message import DecodeError

from omega.errors import (
    ConfigError,
    LocalProtocolError,
    RemoteProtocolError,
    TransportError,
    UnreachableError,
)
from omega.proto import (
    HTTP_STATUS_KEY,
    PROBLEM_KEY,
    RETRY_AFTER_KEY,
    RPCS,
    Rpc,
    rpc_for,
    status_for_code,
)
from omega.protocol import BINARY_MEDIA_TYPE
from omega.protocol.messages import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE, ProblemDetail
from omega.sync.transport import IO_TIMEOUT, Response

__all__ = ["STREAM_REUSE", "GrpcTransport"]

#: Seconds a StreamSync stream may sit unused and still carry the next sync (the
#: server's ``grpc_stream_idle`` is 300 by default).
STREAM_REUSE = 60.0
_JSON = "application/json"
_STREAM_SYNC = next(rpc for rpc in RPCS if rpc.streaming)
#: Codes that mean no answer came, unless the constellation set them (its 503).
_NO_ANSWER = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
)


#: What gRPC core says when a call found no connection to make (refused, no route,
#: connect timeout): "failed to connect to all addresses; last error: …".
_NEVER_CONNECTED = "failed to connect to all addresses"


def check_target(target: str) -> str:
    """``target`` (``host:port``, or any gRPC target name); ConfigError for a URL."""
    if not target or target.startswith(("http://", "https://")):
        raise ConfigError(f"a gRPC target is host:port (e.g. 127.0.0.1:50051), got {target!r}")
    return target


@dataclass(slots=True)
class _Stream:
    call: Any  # grpc.aio.StreamStreamCall
    metadata: tuple[tuple[str, str], ...]
    used: float
    answered: int = 0  # answers read on it: a stream that gave some was reused


class GrpcTransport:
    """The constellation's gRPC door at ``target`` (see the module docstring).

    ``credentials``: ``grpc.ssl_channel_credentials(…)`` for a TLS door (a proxy in front
    of it); None: plaintext. ``channel``: a ``grpc.aio`` channel to share (several devices
    over one connection, as the server bench does); the transport then leaves it open.
    """

    def __init__(
        self,
        target: str,
        *,
        credentials: Any = None,
        timeout: float = IO_TIMEOUT,
        reuse_for: float = STREAM_REUSE,
        channel: Any = None,
    ) -> None:
        self.target = check_target(target)
        self.timeout = timeout
        self.reuse_for = reuse_for
        self.streams_opened = 0
        self._credentials = credentials
        self._channel = channel
        self._owns_channel = channel is None
        self._stream: _Stream | None = None
        self._stream_lock = asyncio.Lock()

    async def request(
        self, method: str, path: str, *, body: bytes | None, headers: Mapping[str, str]
    ) -> Response:
        parts = urlsplit(path)
        rpc = rpc_for(method, parts.path)
        if rpc is None:
            raise LocalProtocolError(
                f"the gRPC door has no RPC for {method} {parts.path} (sync.proto)"
            )
        lowered = {k.lower(): v for k, v in headers.items()}
        request = _message(rpc, body, parts.query, lowered).SerializeToString()
        token = lowered.get("authorization")
        metadata = (("authorization", token),) if token else ()
        where = f"{method} {parts.path}"
        try:
            if rpc.streaming:
                raw = await self._over_stream(request, metadata, where)
            else:
                call = self._open().unary_unary(rpc.full_path)  # raw bytes both ways
                raw = await call(request, metadata=metadata, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            return _error_answer(exc, where)
        return _answer(rpc, raw)

    # -- the device's stream -------------------------------------------------------------
    async def _over_stream(
        self, request: bytes, metadata: tuple[tuple[str, str], ...], where: str
    ) -> bytes:
        """One request and its answer on the device's stream (one at a time).

        A reused stream that ends without answering was ended by the server meanwhile (its
        idle timeout, a restart: the request found no handler); the request goes again,
        once, on a new stream (safe: a push applies once per batch id). A new stream that
        ends so is an error."""
        async with self._stream_lock:
            for _ in range(2):
                stream = await self._write(request, metadata, where)
                try:
                    async with asyncio.timeout(self.timeout):
                        raw = await stream.call.read()
                except TimeoutError:
                    self._drop()
                    raise TransportError(f"{where}: timed out after {self.timeout:g} s") from None
                except grpc.aio.AioRpcError:
                    self._drop()
                    raise
                if raw is not grpc.aio.EOF:
                    stream.used = asyncio.get_running_loop().time()
                    stream.answered += 1
                    answer: bytes = raw
                    return answer
                self._drop()
                if not stream.answered:
                    break
            raise TransportError(f"{where}: the stream ended before answering")

    async def _write(
        self, request: bytes, metadata: tuple[tuple[str, str], ...], where: str
    ) -> _Stream:
        """Write ``request`` on the current stream, or on a new one if it had ended."""
        for attempt in (1, 2):
            stream = self._stream_for(metadata)
            try:
                async with asyncio.timeout(self.timeout):
                    await stream.call.write(request)
                return stream
            except TimeoutError:
                self._drop()
                raise TransportError(f"{where}: timed out after {self.timeout:g} s") from None
            except asyncio.InvalidStateError:
                self._drop()  # it had ended: nothing was sent
                if attempt == 2:
                    raise TransportError(f"{where}: the stream ended at once, twice") from None
            except grpc.aio.AioRpcError:
                self._drop()  # it had failed: nothing was sent
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _stream_for(self, metadata: tuple[tuple[str, str], ...]) -> _Stream:
        now = asyncio.get_running_loop().time()
        stream = self._stream
        if stream is not None and (
            stream.metadata != metadata or stream.call.done() or now - stream.used > self.reuse_for
        ):
            self._drop()
            stream = None
        if stream is None:
            call = self._open().stream_stream(_STREAM_SYNC.full_path)(metadata=metadata)
            stream = self._stream = _Stream(call, metadata, now)
            self.streams_opened += 1
        return stream

    def _drop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None and not stream.call.done():
            stream.call.cancel()

    # -- the channel ---------------------------------------------------------------------
    def _open(self) -> Any:
        """The channel, made on first use (inside the event loop that uses it)."""
        if self._channel is None:
            # No size cap of gRPC's on answers, as over HTTP: the client checks each
            # answer's size itself (omega.sync.replies, the codebook's own limit).
            options = [("grpc.max_receive_message_length", -1)]
            if self._credentials is None:
                self._channel = grpc.aio.insecure_channel(self.target, options=options)
            else:
                self._channel = grpc.aio.secure_channel(
                    self.target, self._credentials, options=options
                )
        return self._channel

    async def aclose(self) -> None:
        self._drop()
        channel, self._channel = self._channel, None
        if channel is not None and self._owns_channel:
            await channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _message(rpc: Rpc, body: bytes | None, query: str, headers: Mapping[str, str]) -> Any:
    """The RPC's request message for the route's body or query."""
    if rpc.name == "PullPatterns":
        return rpc.request(**_pull_query(query))
    if rpc.document:
        return rpc.request()
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if body and media != BINARY_MEDIA_TYPE:
        raise LocalProtocolError(
            f"the gRPC door carries {BINARY_MEDIA_TYPE} frames, not {media or 'untyped'} bodies"
        )
    return rpc.request(frame=body or b"")


def _pull_query(query: str) -> dict[str, int]:
    values: dict[str, int] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in ("since", "max_bytes") or not value.isdigit():
            raise LocalProtocolError(f"PullPatterns takes since and max_bytes, not {key}={value}")
        values[key] = int(value)
    return values


def _answer(rpc: Rpc, raw: bytes) -> Response:
    """The HTTP door's answer for ``rpc``'s response message ``raw``."""
    try:
        message = rpc.response.FromString(raw)
    except DecodeError:
        name = rpc.response.DESCRIPTOR.full_name
        raise RemoteProtocolError(f"the answer is not a valid {name} message") from None
    if rpc.document:
        return Response(status=200, headers={"content-type": _JSON}, body=message.json)
    status = 201 if rpc.name == "Register" and message.created else 200
    return Response(status=status, headers={"content-type": BINARY_MEDIA_TYPE}, body=message.frame)


def _error_answer(error: Any, where: str) -> Response:
    """The HTTP door's answer for a gRPC error status; TransportError if none came."""
    code, detail = error.code(), error.details() or ""
    trailers = dict(error.trailing_metadata() or ())
    status = trailers.get(HTTP_STATUS_KEY, "")
    if not (isinstance(status, str) and status.isdigit() and 400 <= int(status) <= 599):
        if code == grpc.StatusCode.UNAVAILABLE and _NEVER_CONNECTED in detail.lower():
            # gRPC's own words when no connection could be made: nothing was sent, so
            # another endpoint of the service may be tried (FailoverTransport).
            raise UnreachableError(f"{where}: unavailable: {detail}")
        if code in _NO_ANSWER:
            raise TransportError(f"{where}: {code.name.lower()}: {detail}")
        text = f"gRPC {code.name}: {detail}".encode()
        headers = {"content-type": "text/plain; charset=utf-8"}
        return Response(status=status_for_code(code), headers=headers, body=text)
    slug = trailers.get(PROBLEM_KEY)
    problem = ProblemDetail(
        title=_title(int(status)),
        status=int(status),
        detail=detail,
        type=PROBLEM_TYPE + slug if isinstance(slug, str) and slug else "about:blank",
    )
    headers = {"content-type": PROBLEM_MEDIA_TYPE}
    retry_after = trailers.get(RETRY_AFTER_KEY)
    if isinstance(retry_after, str):
        headers["retry-after"] = retry_after
    return Response(status=int(status), headers=headers, body=msgspec.json.encode(problem))


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
