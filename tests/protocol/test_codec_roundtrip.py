"""decode(encode(m)) == m for every message type, in binary and JSON form."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from _protocol_strategies import STRATEGIES, messages
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.bench.sync import synthetic_pulls
from omega.errors import LocalProtocolError, RemoteProtocolError
from omega.protocol import (
    FLAG_ZSTD,
    PROTOCOL_VERSION,
    Message,
    Pattern,
    PullRequest,
    PullResponse,
    PushRequest,
    Registration,
    decode,
    decode_json,
    encode,
    encode_json,
)

_TYPES = sorted(STRATEGIES, key=lambda t: t.__name__)


def test_every_message_type_has_a_strategy() -> None:
    assert set(STRATEGIES) == set(Message.__args__)


@pytest.mark.parametrize("kind", _TYPES, ids=lambda t: t.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_binary_round_trip(kind: type, data: st.DataObject) -> None:
    msg = data.draw(STRATEGIES[kind])
    frame = encode(msg)
    assert frame[0] == PROTOCOL_VERSION
    assert decode(frame) == msg
    assert decode(frame, expect=kind) == msg


@pytest.mark.parametrize("kind", _TYPES, ids=lambda t: t.__name__)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_json_round_trip(kind: type, data: st.DataObject) -> None:
    msg = data.draw(STRATEGIES[kind])
    assert decode_json(encode_json(msg)) == msg
    assert decode_json(encode_json(msg), expect=kind) == msg


@settings(max_examples=40, deadline=None)
@given(msg=messages, other=messages)
def test_expect_rejects_other_types(msg: Any, other: Any) -> None:
    if type(msg) is type(other):
        return
    with pytest.raises(RemoteProtocolError, match=f"expected {type(other).__name__}"):
        decode(encode(msg), expect=type(other))
    with pytest.raises(RemoteProtocolError):
        decode_json(encode_json(msg), expect=type(other))


def test_expect_must_be_a_message_type() -> None:
    with pytest.raises(LocalProtocolError):
        decode(encode(Registration()), expect=Pattern)


def test_small_messages_are_sent_raw_and_large_ones_compressed() -> None:
    small = encode(Registration())
    assert small[1] == 0
    big = PushRequest(
        viewer_id="viewer-1",
        batch_id="batch-1",
        codebook_id="cb-1",
        added=[
            Pattern(id=f"p{i}", task="preference", cells=(i,), success_rate=0.75, support=9)
            for i in range(40)
        ],
    )
    frame = encode(big)
    assert frame[1] == FLAG_ZSTD
    assert decode(frame) == big


def test_accepts_bytearray_and_memoryview() -> None:
    frame = encode(PullRequest(viewer_id="v"))
    assert decode(bytearray(frame)) == decode(memoryview(frame)) == PullRequest(viewer_id="v")


def test_non_bytes_input_is_a_remote_error() -> None:
    with pytest.raises(RemoteProtocolError):
        decode("not bytes")  # type: ignore[call-overload]


def test_threads_share_the_codec_safely() -> None:
    """The server encodes and decodes from a thread pool; zstd contexts are per thread."""
    pulls = synthetic_pulls(8, rng=np.random.default_rng(5))

    def work(seed: int) -> bool:
        ok = True
        for i in range(60):
            msg = pulls[(seed + i) % len(pulls)]
            ok &= decode(encode(msg), expect=PullResponse) == msg
        return ok

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(work, range(8)))
