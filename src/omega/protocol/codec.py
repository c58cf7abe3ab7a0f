"""Binary frames for every message, and the JSON debug form, with no I/O.

A frame is::

    byte 0     PROTOCOL_VERSION
    byte 1     flags (bit 0: payload is one zstd frame; bit 1: sealed; other bits must be 0)
    bytes 2–5  CRC-32 of bytes 6… (big-endian), checked before anything is decoded
    [sealed]   2 bytes: the seal's length n (big-endian), then the n-byte seal
    bytes …    msgpack of the tagged message, zstd-compressed when that makes it smaller

The checksum catches what would otherwise decode: a flipped bit in a compressed body can
still expand into different valid data (measured: 26 of 558 single-bit flips of a pull
answer did), which a device would apply and move its cursor past. CRC-32 catches every
single-bit flip and every burst up to 32 bits.

A seal is the constellation's Ed25519 signature over the body and the request it answers
(``omega.protocol.signing`` makes and checks it; the codec only carries it): the codec
decodes a sealed frame without looking at its seal, so a device checks the seal first.

Decoding is hostile-input safe: every failure is a :class:`RemoteProtocolError` (or its
subclass :class:`PayloadTooLargeError`), and decompression memory is bounded by
``max_decompressed`` whether or not the zstd frame declares its size: a declared size is
checked from the header, and the decompressor is asked for at most one byte over the
limit whatever the frame says.

zstd is Python's own binding of libzstd (``compression.zstd``, Python 3.14; its backport
``backports.zstd`` before): the one zstd API that CPython and the browser's Pyodide both
have, so this module is the same code on a server, a TV and in WebAssembly (``omega.wasm``).
"""

from __future__ import annotations

import struct
import sys
import threading
import zlib
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import msgspec

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

from omega.errors import LocalProtocolError, PayloadTooLargeError, RemoteProtocolError
from omega.protocol._lenient import real, twin
from omega.protocol._rules import rules_ok
from omega.protocol.messages import PROTOCOL_VERSION, Message
from omega.protocol.validation import validate

__all__ = [
    "BINARY_MEDIA_TYPE",
    "COMPRESS_THRESHOLD",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DECOMPRESSED",
    "FLAG_SEALED",
    "FLAG_ZSTD",
    "FRAME_HEADER",
    "MAX_SEAL",
    "FrameParts",
    "decode",
    "decode_json",
    "encode",
    "encode_json",
    "encoded_size",
    "frame",
    "parts",
    "payload",
    "read_json",
]

BINARY_MEDIA_TYPE = "application/x-omega"
"""The HTTP media type of a binary frame (``Content-Type`` and ``Accept``)."""
FLAG_ZSTD = 0x01
FLAG_SEALED = 0x02
"""The frame carries a seal (``omega.protocol.signing``) between its header and its body."""
_KNOWN_FLAGS = FLAG_ZSTD | FLAG_SEALED
MAX_SEAL = 1024
"""Largest seal a frame may carry (one key id, one signature, a few key endorsements)."""
COMPRESS_THRESHOLD = 64
"""msgpack bodies shorter than this are sent raw: zstd's frame overhead would not pay."""
DEFAULT_MAX_BYTES = 1 << 20
"""Largest frame (or JSON body) accepted by default."""
DEFAULT_MAX_DECOMPRESSED = 2 << 20
"""Largest msgpack body a compressed frame may expand to by default."""

FRAME_HEADER = 6
"""Bytes before a frame's body (or its seal): version, flags, CRC-32."""
_SEAL_LENGTH = struct.Struct(">H")
_ZSTD_LEVEL = 3
# Level 3 never uses a window above 2 MiB, so a frame asking for more is not ours; the
# cap also stops a hostile window size from making the decoder allocate a huge buffer.
_DECOMPRESSION: dict[int, int] = {zstd.DecompressionParameter.window_log_max: 21}

M = TypeVar("M", bound=msgspec.Struct)
Buffer = bytes | bytearray | memoryview

_MESSAGE_TYPES: tuple[type[msgspec.Struct], ...] = Message.__args__
_msgpack_encoder = msgspec.msgpack.Encoder()
_msgpack_decoder: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)
_json_encoder = msgspec.json.Encoder()
_json_decoder: msgspec.json.Decoder[Message] = msgspec.json.Decoder(Message)
_typed_msgpack: dict[type, msgspec.msgpack.Decoder[Any]] = {
    t: msgspec.msgpack.Decoder(t) for t in _MESSAGE_TYPES
}
_typed_json: dict[type, msgspec.json.Decoder[Any]] = {
    t: msgspec.json.Decoder(t) for t in _MESSAGE_TYPES
}


class _Compressor(threading.local):
    """One compressor per thread: a shared one would serialise every encode on its lock.
    (A decompressor reads one frame and is spent, so each decode makes its own.)"""

    def __init__(self) -> None:
        self.compressor = zstd.ZstdCompressor(level=_ZSTD_LEVEL)


_local = _Compressor()


def canonical(msg: Message) -> bytes:
    """``msg``'s msgpack body alone (no frame, no compression, no validation): the same
    message gives the same bytes however it travelled, for digests."""
    return _msgpack_encoder.encode(msg)


def encode(msg: Message) -> bytes:
    """Validate ``msg`` and return its binary frame; :class:`LocalProtocolError` if invalid.

    The check is of the body: decoded back with the constraints (in C) it must give
    ``msg`` again and keep the rules across fields (``_rules``); ``validation`` walks the
    message field by field only when it does not, to name what is wrong."""
    try:
        body = _msgpack_encoder.encode(msg)
    except (TypeError, ValueError, OverflowError) as exc:
        _check_outgoing(msg)  # a broken rule says more than msgpack's complaint
        raise LocalProtocolError(f"cannot encode {type(msg).__name__}: {exc}") from None
    if not _decodes_back(msg, body):
        _check_outgoing(msg)
    packed, flags = _packed(body)
    return frame(packed, flags=flags)


def encoded_size(msg: Message) -> int:
    """``len(encode(msg))`` for a valid ``msg``, without checking it: the same body,
    compressed or not as :func:`encode` decides. For sizing a part of an answer that is
    encoded (so checked) whole before it is sent; what msgpack cannot encode raises as
    :func:`encode` does."""
    try:
        body = _msgpack_encoder.encode(msg)
    except (TypeError, ValueError, OverflowError):
        return len(encode(msg))  # raises, as it would have
    return FRAME_HEADER + len(_packed(body)[0])


def _packed(body: bytes) -> tuple[bytes, int]:
    """``body`` as a frame carries it, and the flag that says so: zstd-compressed when
    that makes it smaller."""
    if len(body) >= COMPRESS_THRESHOLD:
        # One call that ends the frame: zstd knows the size and declares it in the header.
        packed = _local.compressor.compress(body, mode=zstd.ZstdCompressor.FLUSH_FRAME)
        if len(packed) < len(body):
            return packed, FLAG_ZSTD
    return body, 0


def frame(body: bytes, *, flags: int = 0, seal: bytes = b"") -> bytes:
    """A frame around ``body`` (already compressed when ``flags`` says so), with ``seal``
    when given: the header and the checksum. :func:`encode` is what senders use."""
    if seal:
        if len(seal) > MAX_SEAL:
            raise LocalProtocolError(f"a seal of {len(seal)} bytes is over the {MAX_SEAL} limit")
        flags |= FLAG_SEALED
        rest = _SEAL_LENGTH.pack(len(seal)) + seal + body
    else:
        flags &= ~FLAG_SEALED
        rest = body
    return struct.pack(">BBI", PROTOCOL_VERSION, flags, zlib.crc32(rest)) + rest


@dataclass(frozen=True, slots=True)
class FrameParts:
    """An intact frame taken apart: ``flags`` as sent, the ``seal`` (empty when the frame
    is not sealed) and the ``body`` (compressed when ``flags`` has :data:`FLAG_ZSTD`)."""

    flags: int
    seal: bytes
    body: bytes


def parts(data: Buffer) -> FrameParts:
    """A frame's flags, seal and body, checked (version, flags, checksum, seal length) but
    not expanded or decoded; :class:`RemoteProtocolError` when it is not an intact frame
    of ours."""
    frame_bytes = bytes(data)
    if len(frame_bytes) < FRAME_HEADER:
        raise RemoteProtocolError(f"truncated frame: {len(frame_bytes)} bytes, no header")
    version, flags, checksum = struct.unpack_from(">BBI", frame_bytes)
    if version != PROTOCOL_VERSION:
        raise RemoteProtocolError(
            f"unsupported protocol version {version} (this side speaks {PROTOCOL_VERSION})"
        )
    if flags & ~_KNOWN_FLAGS:
        raise RemoteProtocolError(f"unknown frame flags 0x{flags:02x}")
    if zlib.crc32(memoryview(frame_bytes)[FRAME_HEADER:]) != checksum:
        raise RemoteProtocolError("frame checksum mismatch: the bytes were damaged on the way")
    if not flags & FLAG_SEALED:
        return FrameParts(flags, b"", frame_bytes[FRAME_HEADER:])
    start = FRAME_HEADER + _SEAL_LENGTH.size
    if len(frame_bytes) < start:
        raise RemoteProtocolError("truncated frame: the seal's length is missing")
    (length,) = _SEAL_LENGTH.unpack_from(frame_bytes, FRAME_HEADER)
    if length == 0 or length > MAX_SEAL or start + length > len(frame_bytes):
        raise RemoteProtocolError(f"a frame's seal of {length} bytes does not fit the frame")
    return FrameParts(flags, frame_bytes[start : start + length], frame_bytes[start + length :])


def payload(data: Buffer) -> tuple[int, bytes]:
    """A frame's flags and its body (without any seal), checked as :func:`parts` does."""
    taken = parts(data)
    return taken.flags, taken.body


@overload
def decode(
    data: Buffer,
    *,
    expect: None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_decompressed: int = DEFAULT_MAX_DECOMPRESSED,
) -> Message: ...
@overload
def decode(
    data: Buffer,
    *,
    expect: type[M],
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_decompressed: int = DEFAULT_MAX_DECOMPRESSED,
) -> M: ...
def decode(
    data: Buffer,
    *,
    expect: type[M] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_decompressed: int = DEFAULT_MAX_DECOMPRESSED,
) -> Message | M:
    """Parse and validate one frame from a peer.

    ``expect`` restricts the accepted message type. Raises :class:`PayloadTooLargeError`
    when the frame or its decompressed body is over the limits, and
    :class:`RemoteProtocolError` for anything else wrong with the bytes.
    """
    _check_expect(expect)
    decoder = _msgpack_decoder if expect is None else _typed_msgpack[expect]
    body = _unframe(_as_bytes(data, max_bytes), max_decompressed)
    try:
        msg: Message = decoder.decode(body)
    except Exception:  # the peer's bytes: any failure in the parser is theirs (below)
        pass
    else:
        if rules_ok(msg):
            return msg
    return _refused(body, expect, json=False)


def encode_json(msg: Message) -> bytes:
    """The JSON debug form of ``msg`` (bytes fields in base64), validated like :func:`encode`."""
    _check_outgoing(msg)
    try:
        return _json_encoder.encode(msg)
    except (TypeError, ValueError, OverflowError) as exc:
        raise LocalProtocolError(f"cannot encode {type(msg).__name__}: {exc}") from None


@overload
def decode_json(
    data: Buffer, *, expect: None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> Message: ...
@overload
def decode_json(data: Buffer, *, expect: type[M], max_bytes: int = DEFAULT_MAX_BYTES) -> M: ...
def decode_json(
    data: Buffer, *, expect: type[M] | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> Message | M:
    """Parse and validate a JSON message from a peer; same errors as :func:`decode`."""
    _check_expect(expect)
    body = _as_bytes(data, max_bytes)
    try:
        msg: Message = _json_message(body, expect)
    except Exception:  # the peer's bytes: any failure in the parser is theirs (below)
        pass
    else:
        if rules_ok(msg):
            return msg
    return _refused(body, expect, json=True)


def _json_message(body: bytes, expect: type[M] | None) -> Message:
    decoder = _json_decoder if expect is None else _typed_json[expect]
    try:
        return decoder.decode(body)
    except msgspec.ValidationError:
        msg: Message = read_json(body, Message if expect is None else expect)
        return msg


def _refused(body: bytes, expect: type[M] | None, *, json: bool) -> Message:
    """A body the constrained decoder or the rules across fields refused, decoded again
    without constraints (``_lenient``) for ``validation`` to name what is wrong — or,
    when the bytes are no message at all, msgspec's complaint about them."""
    kind = twin(Message if expect is None else expect)
    try:
        lenient = read_json(body, kind) if json else msgspec.msgpack.decode(body, type=kind)
    except Exception as exc:  # the peer's bytes: any failure in the parser is theirs
        wanted = f" (expected {expect.__name__})" if expect is not None else ""
        form = "JSON message" if json else "message"
        raise RemoteProtocolError(f"malformed {form}{wanted}: {exc}") from None
    msg: Message = real(lenient)
    validate(msg)
    return msg


def read_json(body: bytes, kind: Any) -> Any:
    """``body`` as msgspec decodes it into ``kind``, except that a whole number written
    as a float (``5.0``) is taken where an integer is due: JSON has one kind of number,
    and JSON Schema (so the OpenAPI documents) counts 5.0 as an integer. Raises
    msgspec's errors."""
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError:
        return msgspec.convert(_whole_numbers(msgspec.json.decode(body)), kind)


def _whole_numbers(node: Any) -> Any:
    if isinstance(node, float) and node.is_integer() and -(2**63) <= node < 2**64:
        return int(node)
    if isinstance(node, list):
        return [_whole_numbers(value) for value in node]
    if isinstance(node, dict):
        return {key: _whole_numbers(value) for key, value in node.items()}
    return node


def _decodes_back(msg: Message, body: bytes) -> bool:
    decoder = _typed_msgpack.get(type(msg))
    if decoder is None:
        return False
    try:
        back: Message = decoder.decode(body)
    except Exception:  # a value the constraints refuse: validation names it
        return False
    return back == msg and rules_ok(back)


def _check_outgoing(msg: Message) -> None:
    try:
        validate(msg)
    except RemoteProtocolError as exc:
        raise LocalProtocolError(str(exc)) from None


def _check_expect(expect: type | None) -> None:
    if expect is not None and expect not in _typed_msgpack:
        raise LocalProtocolError(f"cannot expect {expect!r}: not a protocol message type")


def _as_bytes(data: object, max_bytes: int) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise RemoteProtocolError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise PayloadTooLargeError(f"body of {len(data)} bytes is over the {max_bytes} limit")
    return bytes(data)


def _unframe(data: bytes, max_decompressed: int) -> bytes:
    flags, body = payload(data)
    if not flags & FLAG_ZSTD:
        if len(body) > max_decompressed:
            raise PayloadTooLargeError(
                f"body of {len(body)} bytes is over the {max_decompressed} limit"
            )
        return body
    return _decompress(body, max_decompressed)


def _decompress(payload: bytes, limit: int) -> bytes:
    try:
        declared = zstd.get_frame_info(payload).decompressed_size  # None: not declared
    except zstd.ZstdError as exc:
        raise RemoteProtocolError(f"compressed body is not a zstd frame: {exc}") from None
    if declared is not None and declared > limit:
        raise PayloadTooLargeError(
            f"compressed body declares {declared} bytes, over the {limit} limit"
        )
    decompressor = zstd.ZstdDecompressor(options=_DECOMPRESSION)
    try:
        # At most limit + 1 bytes, never trusting the declared size beyond the limit.
        body = decompressor.decompress(payload, max_length=limit + 1)
    except zstd.ZstdError as exc:
        raise RemoteProtocolError(f"corrupt zstd body: {exc}") from None
    if len(body) > limit:
        raise PayloadTooLargeError(f"compressed body expands past the {limit} byte limit")
    if not decompressor.eof:
        raise RemoteProtocolError("truncated zstd body: the frame does not end")
    if decompressor.unused_data:
        raise RemoteProtocolError(
            f"{len(decompressor.unused_data)} bytes after the zstd frame (a frame carries one)"
        )
    if declared is not None and len(body) != declared:
        raise RemoteProtocolError(
            f"zstd body expanded to {len(body)} bytes but declared {declared}"
        )
    return body
