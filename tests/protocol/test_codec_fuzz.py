"""Hostile bytes: whatever arrives, decode raises RemoteProtocolError or returns a valid message."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import zstandard
from _protocol_strategies import messages
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.errors import PayloadTooLargeError, RemoteProtocolError
from omega.protocol import (
    FLAG_ZSTD,
    PROTOCOL_VERSION,
    PullRequest,
    decode,
    decode_json,
    encode,
    encode_json,
)
from omega.protocol.codec import frame

_FUZZ = settings(max_examples=150, deadline=None)


def _decode_or_reject(data: bytes) -> None:
    """The property: a valid message (which then re-encodes) or a RemoteProtocolError."""
    try:
        msg = decode(data)
    except RemoteProtocolError:  # PayloadTooLargeError included
        return
    encode(msg)  # anything we accept must be something we could have sent


def _decode_json_or_reject(data: bytes) -> None:
    try:
        msg = decode_json(data)
    except RemoteProtocolError:
        return
    encode_json(msg)


def _frame(body: bytes, *, compress: bool) -> bytes:
    if compress:
        body = zstandard.ZstdCompressor().compress(body)
    return frame(body, flags=FLAG_ZSTD if compress else 0)


@_FUZZ
@given(data=st.binary(max_size=512))
def test_random_bytes(data: bytes) -> None:
    _decode_or_reject(data)


@_FUZZ
@given(body=st.binary(max_size=512), compress=st.booleans())
def test_random_bodies_behind_a_valid_header(body: bytes, compress: bool) -> None:
    _decode_or_reject(_frame(body, compress=compress))


@_FUZZ
@given(msg=messages, data=st.data())
def test_bit_flips_of_valid_frames(msg: Any, data: st.DataObject) -> None:
    frame = bytearray(encode(msg))
    for _ in range(data.draw(st.integers(1, 4))):
        bit = data.draw(st.integers(0, len(frame) * 8 - 1))
        frame[bit // 8] ^= 1 << (bit % 8)
    _decode_or_reject(bytes(frame))


@_FUZZ
@given(msg=messages, data=st.data())
def test_truncations_and_extensions(msg: Any, data: st.DataObject) -> None:
    frame = encode(msg)
    cut = data.draw(st.integers(0, len(frame) - 1))
    with pytest.raises(RemoteProtocolError):
        decode(frame[:cut])
    _decode_or_reject(frame + data.draw(st.binary(min_size=1, max_size=16)))


@_FUZZ
@given(msg=messages, data=st.data(), compress=st.booleans())
def test_mutated_msgpack_bodies(msg: Any, data: st.DataObject, compress: bool) -> None:
    """Flip bytes before compression so the damage reaches the msgpack parser and validator."""
    body = bytearray(msgspec.msgpack.encode(msg))
    for _ in range(data.draw(st.integers(1, 3))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    _decode_or_reject(_frame(bytes(body), compress=compress))


@_FUZZ
@given(msg=messages, data=st.data())
def test_mutated_json(msg: Any, data: st.DataObject) -> None:
    text = bytearray(encode_json(msg))
    for _ in range(data.draw(st.integers(1, 3))):
        text[data.draw(st.integers(0, len(text) - 1))] = data.draw(st.integers(0, 255))
    _decode_json_or_reject(bytes(text))


@_FUZZ
@given(data=st.binary(max_size=256))
def test_random_json(data: bytes) -> None:
    _decode_json_or_reject(data)


def test_empty_and_header_only_frames() -> None:
    for data in (b"", bytes((PROTOCOL_VERSION,)), bytes((PROTOCOL_VERSION, 0)), frame(b"")):
        with pytest.raises(RemoteProtocolError):
            decode(data)
    with pytest.raises(RemoteProtocolError, match="zstd"):
        decode(frame(b"", flags=FLAG_ZSTD))


def test_wrong_version_and_unknown_flags_are_named() -> None:
    sent = encode(_small_message())
    with pytest.raises(RemoteProtocolError, match="protocol version 9"):
        decode(bytes((9,)) + sent[1:])
    with pytest.raises(RemoteProtocolError, match="protocol version 1"):
        decode(bytes((1,)) + sent[1:])  # the frames before checksums: refused by name
    with pytest.raises(RemoteProtocolError, match="flags"):
        decode(sent[:1] + bytes((0x80,)) + sent[2:])


@pytest.mark.parametrize("compressed", [False, True])
def test_every_single_bit_flip_is_refused_not_applied(compressed: bool) -> None:
    """A flipped bit anywhere in a frame — header, checksum or body — is a protocol error:
    never a different valid message (without the checksum, some flips of a compressed
    body decoded into other valid data)."""
    msg = _small_message() if not compressed else _large_message()
    sent = encode(msg)
    assert bool(sent[1] & FLAG_ZSTD) == compressed
    for i in range(len(sent) * 8):
        damaged = bytearray(sent)
        damaged[i // 8] ^= 1 << (i % 8)
        with pytest.raises(RemoteProtocolError):
            decode(bytes(damaged))


def test_frame_over_max_bytes_is_payload_too_large() -> None:
    sent = encode(_small_message())
    with pytest.raises(PayloadTooLargeError):
        decode(sent, max_bytes=len(sent) - 1)
    with pytest.raises(PayloadTooLargeError):
        decode_json(encode_json(_small_message()), max_bytes=4)


def _small_message() -> PullRequest:
    return PullRequest(viewer_id="viewer-1", interests=[1, 2, 3])


def _large_message() -> PullRequest:
    """Long enough that its frame is compressed."""
    return PullRequest(viewer_id="viewer-1", interests=[c % 7 for c in range(60)])
