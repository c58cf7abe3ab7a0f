"""Reading request bodies within limits and answering in the format the device spoke.

Bodies are binary frames (``application/x-omega``, the codec) or JSON for debugging
(``application/json``). Binary answers that carry release data are sealed
(:func:`sealed_reply`) to the digest of the request's body as it arrived; the JSON debug
form is never sealed, and devices refuse it where they expect a release.

The byte limit is enforced while the body streams in: a ``Content-Length`` over it is
refused before a byte is read, and a chunked body is cut off as soon as it passes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeVar

import msgspec
from fastapi import Request
from starlette.responses import Response

from omega.constellation.problems import Problem
from omega.constellation.sealing import ReleaseSealer
from omega.errors import PayloadTooLargeError
from omega.protocol import BINARY_MEDIA_TYPE as BINARY
from omega.protocol import codec, signing
from omega.protocol.messages import Message

__all__ = [
    "JSON",
    "WireFormat",
    "read_body",
    "read_message",
    "read_request",
    "reply",
    "reply_format",
    "sealed_reply",
]

JSON = "application/json"
WireFormat = Literal["binary", "json"]
M = TypeVar("M", bound=msgspec.Struct)


async def read_body(request: Request, *, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise Problem(400, "Content-Length is not a number", slug="bad-request") from None
        if size > limit:
            raise PayloadTooLargeError(f"body of {size} bytes is over the {limit} byte limit")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLargeError(f"body is over the {limit} byte limit")
    return bytes(body)


def body_format(request: Request) -> WireFormat:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == BINARY:
        return "binary"
    if media == JSON or (media.startswith("application/") and media.endswith("+json")):
        return "json"
    shown = media or "none"
    raise Problem(
        415, f"Content-Type {shown} is not accepted; send {BINARY} or {JSON}", slug="media-type"
    )


def reply_format(request: Request) -> WireFormat:
    """For GETs: binary only when the device asks for it."""
    return "binary" if BINARY in request.headers.get("accept", "") else "json"


async def read_message(
    request: Request, expect: type[M], *, max_bytes: int, max_decompressed: int
) -> tuple[M, WireFormat]:
    msg, fmt, _ = await read_request(
        request, expect, max_bytes=max_bytes, max_decompressed=max_decompressed
    )
    return msg, fmt


async def read_request(
    request: Request, expect: type[M], *, max_bytes: int, max_decompressed: int
) -> tuple[M, WireFormat, bytes]:
    """:func:`read_message`, and the digest of the body as it arrived (what a sealed
    answer is bound to)."""
    fmt = body_format(request)
    data = await read_body(request, limit=max_bytes)
    if fmt == "binary":
        msg = codec.decode(
            data, expect=expect, max_bytes=max_bytes, max_decompressed=max_decompressed
        )
    else:
        msg = codec.decode_json(data, expect=expect, max_bytes=max_bytes)
    return msg, fmt, signing.request_digest(data)


def reply(msg: Message, fmt: WireFormat, *, status: int = 200) -> Response:
    if fmt == "binary":
        return Response(codec.encode(msg), status_code=status, media_type=BINARY)
    return Response(codec.encode_json(msg), status_code=status, media_type=JSON)


def sealed_reply(
    msg: Message,
    fmt: WireFormat,
    *,
    sealer: ReleaseSealer,
    request: bytes,
    trusted: Sequence[str] = (),
) -> Response:
    """:func:`reply`, sealed to the request digest ``request`` when binary."""
    if fmt == "binary":
        frame = sealer.seal(codec.encode(msg), request=request, trusted=trusted)
        return Response(frame, media_type=BINARY)
    return reply(msg, fmt)
