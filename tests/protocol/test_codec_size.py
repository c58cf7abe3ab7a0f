"""encoded_size(m) == len(encode(m)) for every valid message, compressed or not; an
invalid one is sized all the same and refused when the answer carrying it is encoded."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from _protocol_strategies import messages, push_acks
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.bench.sync import synthetic_pulls
from omega.errors import LocalProtocolError
from omega.protocol import PullResponse, PushAck, Rejection, SyncResponse, codec

_EMPTY_PULL = PullResponse(version=0)

# Acks as a server writes them: many ids alike, so their bodies compress.
_server_ids = st.integers(0, 10**6).map(lambda n: f"pattern-{n:07d}")
_server_acks = st.builds(
    PushAck,
    batch_id=st.uuids().map(str),
    accepted=st.lists(_server_ids, max_size=200),
    rejected=st.lists(
        st.builds(Rejection, pattern_id=_server_ids, reason=st.sampled_from(["stale", "dup"])),
        max_size=40,
    ),
    server_version=st.integers(0, 2**63 - 1),
)


@settings(max_examples=300, deadline=None)
@given(msg=messages)
def test_size_of_every_message_type(msg: Any) -> None:
    assert codec.encoded_size(msg) == len(codec.encode(msg))


@settings(max_examples=300, deadline=None)
@given(ack=push_acks | _server_acks)
def test_size_of_an_ack_beside_an_empty_pull(ack: PushAck) -> None:
    """What ``Exchange`` sizes at every ``/sync`` with a push."""
    answer = SyncResponse(pull=_EMPTY_PULL, ack=ack)
    assert codec.encoded_size(answer) == len(codec.encode(answer))


def test_size_of_pulls_that_compress() -> None:
    pulls = synthetic_pulls(16, rng=np.random.default_rng(7))
    sized = [codec.encoded_size(p) for p in pulls]
    assert sized == [len(codec.encode(p)) for p in pulls]
    assert any(codec.payload(codec.encode(p))[0] & codec.FLAG_ZSTD for p in pulls)


def test_an_invalid_ack_is_refused_where_the_answer_is_encoded() -> None:
    """Sizing does not check; the whole answer's encoding refuses it as sizing by
    :func:`codec.encode` did."""
    bad = PushAck(batch_id="")  # an id is at least one character
    with pytest.raises(LocalProtocolError) as before:
        codec.encode(SyncResponse(pull=_EMPTY_PULL, ack=bad))
    assert codec.encoded_size(SyncResponse(pull=_EMPTY_PULL, ack=bad)) > 0
    with pytest.raises(LocalProtocolError) as whole:
        codec.encode(SyncResponse(pull=PullResponse(version=3, removed=["a"]), ack=bad))
    assert str(whole.value) == str(before.value)


def test_what_msgpack_cannot_encode_raises_as_encode_does() -> None:
    bad = PushAck(batch_id="b", accepted=[object()])  # type: ignore[list-item]
    with pytest.raises(LocalProtocolError) as encoded:
        codec.encode(bad)
    with pytest.raises(LocalProtocolError) as sized:
        codec.encoded_size(bad)
    assert str(sized.value) == str(encoded.value)
