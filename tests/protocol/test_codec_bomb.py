"""Decompression bombs: rejected with PayloadTooLargeError, in bounded memory.

The bombs are zstd frames written by hand from RLE blocks (RFC 8878 §3.1.1.2): each
4-byte block expands to 128 KiB, so 1 GiB takes 8,192 blocks, about 32 KiB on the wire
(the densest a standard zstd frame can be). Building them by hand costs nothing, where
compressing a real gibibyte would take seconds and the gibibyte itself.
"""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Callable

import pytest
import zstandard

from omega.errors import PayloadTooLargeError, RemoteProtocolError
from omega.protocol import (
    DEFAULT_MAX_DECOMPRESSED,
    FLAG_ZSTD,
    Registration,
    decode,
    encode,
)
from omega.protocol.codec import frame

_GIB = 1 << 30
_BLOCK = 128 * 1024
_MAGIC = struct.pack("<I", 0xFD2FB528)
_WINDOW_128K = bytes((7 << 3,))  # Window_Descriptor: 2^(10 + 7) bytes
_MEMORY_BOUND = 8 << 20


def _rle_frame(total: int, *, declared: int | None, window: bytes = _WINDOW_128K) -> bytes:
    """A zstd frame of RLE blocks expanding to ``total`` zero bytes."""
    if declared is None:
        header = _MAGIC + bytes((0x00,)) + window
    else:  # Frame_Content_Size_flag = 3: an 8-byte content size follows the window byte
        header = _MAGIC + bytes((0xC0,)) + window + struct.pack("<Q", declared)
    blocks = bytearray()
    n_blocks = total // _BLOCK
    for i in range(n_blocks):
        last = 1 if i == n_blocks - 1 else 0
        blocks += struct.pack("<I", (_BLOCK << 3) | (1 << 1) | last)[:3] + b"\x00"
    return header + bytes(blocks)


def _frame(zstd_payload: bytes) -> bytes:
    return frame(zstd_payload, flags=FLAG_ZSTD)


def _peak_bytes(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        action()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def test_hand_made_bomb_really_expands() -> None:
    """Guard for the tests below: the frame is valid zstd and yields zeros."""
    bomb = _rle_frame(_GIB, declared=None)
    assert len(bomb) < 40 * 1024
    reader = zstandard.ZstdDecompressor().stream_reader(bomb)
    assert reader.read(3 * _BLOCK) == bytes(3 * _BLOCK)


@pytest.mark.parametrize("declared", [None, _GIB], ids=["undeclared", "declared"])
def test_one_gib_bomb_is_rejected_in_bounded_memory(declared: int | None) -> None:
    frame = _frame(_rle_frame(_GIB, declared=declared))

    def attempt() -> None:
        with pytest.raises(PayloadTooLargeError):
            decode(frame)

    assert _peak_bytes(attempt) < _MEMORY_BOUND


def test_bomb_declaring_a_small_size_is_rejected_in_bounded_memory() -> None:
    frame = _frame(_rle_frame(_GIB, declared=100))

    def attempt() -> None:
        with pytest.raises(RemoteProtocolError):
            decode(frame)

    assert _peak_bytes(attempt) < _MEMORY_BOUND


def test_frame_asking_for_a_huge_window_is_rejected() -> None:
    frame = _frame(_rle_frame(4 * _BLOCK, declared=None, window=bytes((20 << 3,))))
    with pytest.raises(RemoteProtocolError):
        decode(frame)


def test_limit_is_the_callers() -> None:
    just_over = _frame(_rle_frame(DEFAULT_MAX_DECOMPRESSED + _BLOCK, declared=None))
    with pytest.raises(PayloadTooLargeError):
        decode(just_over)
    with pytest.raises(PayloadTooLargeError):
        decode(encode(Registration(device_model="x" * 200)), max_decompressed=50)
    # Within a raised limit the same frame gets past the size check, to fail as msgpack.
    with pytest.raises(RemoteProtocolError) as caught:
        decode(just_over, max_decompressed=4 * DEFAULT_MAX_DECOMPRESSED)
    assert not isinstance(caught.value, PayloadTooLargeError)


def test_a_body_of_two_zstd_frames_is_refused() -> None:
    """A frame's compressed body is one zstd frame; a second one after it is not ours."""
    first, second = (zstandard.ZstdCompressor().compress(b"\x80" * 100) for _ in range(2))
    with pytest.raises(RemoteProtocolError, match="bytes after the zstd frame"):
        decode(_frame(first + second))
