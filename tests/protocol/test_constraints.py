"""The sync messages' msgspec constraints and the rules across fields (``_rules``) accept
exactly what ``validation`` accepts, and a refused body gets ``validation``'s words."""

from __future__ import annotations

import math
import sys
from typing import Any

import msgspec
import pytest
from _protocol_strategies import (
    pull_requests,
    pull_responses,
    push_acks,
    push_requests,
    sync_requests,
    sync_responses,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.errors import InvalidMessageError, LocalProtocolError, RemoteProtocolError
from omega.protocol import (
    MAX_CELL,
    CowatchCursor,
    Message,
    Pattern,
    PullRequest,
    PullResponse,
    PushRequest,
    SyncRequest,
    Trend,
    decode,
    decode_json,
    encode,
    encode_json,
    validate,
)
from omega.protocol._lenient import real, twin
from omega.protocol.codec import frame

_MESSAGES: tuple[type[Any], ...] = Message.__args__

# Values on both sides of every bound the sync messages have, and of the wrong type.
_WILD: list[object] = [
    *(-2, -1, 0, 1, 2, 127, 128, 200, 256, 512, 513, 1024, 5120, MAX_CELL - 1, MAX_CELL),
    *(2**20, 2**22, 2**22 + 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63),
    *(True, False, None, 0.0, 0.5, 1.0, 1.0000001, -1e-9, 20.0, 20.5, 2_592_000.0, 3e6),
    *(math.nan, math.inf, -math.inf, sys.float_info.max),
    *("", "a", "p1", "k1", "k 1", "k1\n", "é" * 128, "x" * 129, "x" * 257, "morning", "gossip"),
    *(b"", b"x", b"x" * 16, b"x" * 64, b"x" * 65, b"x" * 512, b"x" * 513),
    *((), (1,), (1, 2), (MAX_CELL,), [], ["p1"]),
]


def _slots(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every field and list entry inside ``value``, as a path to it."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, msgspec.Struct):
        children: list[tuple[Any, Any]] = [(n, getattr(value, n)) for n in value.__struct_fields__]
    elif isinstance(value, (list, tuple)):
        children = list(enumerate(value))
    else:
        children = []
    for key, child in children:
        found.append((*path, key))
        found.extend(_slots(child, (*path, key)))
    return found


def _put(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    key, rest = path[0], path[1:]
    if isinstance(value, msgspec.Struct):
        return msgspec.structs.replace(value, **{key: _put(getattr(value, key), rest, new)})
    items = list(value)
    items[key] = _put(items[key], rest, new)
    return type(value)(items)


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = getattr(value, key) if isinstance(value, msgspec.Struct) else value[key]
    return value


def _holds_structs(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return any(isinstance(v, msgspec.Struct) for v in value)
    return isinstance(value, msgspec.Struct)


@st.composite
def _wild(draw: st.DrawFn) -> Any:
    """A valid sync message with one or two of its fields or entries changed: to a value
    from ``_WILD``, or a list entry copied (duplicate ids, one entry too many)."""
    msg = draw(
        push_requests()
        | pull_requests
        | pull_responses()
        | push_acks
        | sync_requests()
        | sync_responses
    )
    for _ in range(draw(st.integers(1, 2))):
        slots = _slots(msg)
        if not slots:
            break
        path = draw(st.sampled_from(slots))
        target = _get(msg, path)
        if isinstance(target, list) and target and draw(st.booleans()):
            msg = _put(msg, path, [*target, draw(st.sampled_from(target))])
        elif target is not None and not _holds_structs(target):  # Structs are due there
            msg = _put(msg, path, draw(st.sampled_from(_WILD)))
    return msg


def _valid(msg: Any) -> bool:
    try:
        validate(msg)
    except RemoteProtocolError:
        return False
    return True


@settings(max_examples=1500, deadline=None)
@given(msg=_wild())
def test_the_codec_accepts_exactly_what_validation_accepts(msg: Any) -> None:
    valid = _valid(msg)
    try:
        sent = encode(msg)
    except LocalProtocolError:
        assert not valid
    else:
        assert valid
        assert decode(sent) == _as_received(msg)
        assert decode_json(encode_json(msg)) == _as_received(msg)
    try:
        raw = frame(msgspec.msgpack.encode(msg))  # what a careless peer could send
    except (TypeError, ValueError, OverflowError):
        return
    try:
        got = decode(raw, expect=type(msg))
    except RemoteProtocolError:
        assert not valid
    else:
        assert valid and got == _as_received(msg)


def _as_received(msg: Any) -> Any:
    """``msg`` as msgspec hands it to a peer, unchecked (an integer where a float is due
    arrives as a float)."""
    return real(msgspec.msgpack.decode(msgspec.msgpack.encode(msg), type=twin(type(msg))))


def _raw(msg: Any) -> bytes:
    return frame(msgspec.msgpack.encode(msg))


_PATTERN = Pattern(id="p1", task="preference", cells=(3,), success_rate=0.5, support=2)


@pytest.mark.parametrize(
    ("msg", "words"),
    [
        (
            PushRequest(
                viewer_id="v",
                batch_id="b",
                codebook_id="c",
                added=[_PATTERN, msgspec.structs.replace(_PATTERN, id="p2", success_rate=1.5)],
            ),
            "invalid PushRequest: PushRequest.added[1].success_rate must be in [0, 1], got 1.5",
        ),
        (
            SyncRequest(pull=PullRequest(viewer_id="v", max_bytes=0)),
            "invalid SyncRequest: SyncRequest.pull.max_bytes must be an integer in "
            "[1, 4194304], got 0",
        ),
        (
            PullResponse(version=1, trends=[Trend(cell=MAX_CELL, score=1.0)]),
            "invalid PullResponse: PullResponse.trends[0].cell must be an integer in "
            "[0, 65535], got 65536",
        ),
        (
            PushRequest(viewer_id="v", batch_id="b", codebook_id="c", removed=["r", "r"]),
            "invalid PushRequest: PushRequest: pattern id 'r' appears more than once",
        ),
    ],
)
def test_a_broken_bound_gets_validations_words(msg: Any, words: str) -> None:
    with pytest.raises(InvalidMessageError) as raised:
        decode(_raw(msg))
    assert str(raised.value) == words
    with pytest.raises(InvalidMessageError) as raised:
        decode_json(msgspec.json.encode(msg), expect=type(msg))
    assert str(raised.value) == words
    with pytest.raises(LocalProtocolError, match=r"^" + words.replace("[", r"\[")[:40]):
        encode(msg)


def test_bytes_that_are_no_message_keep_msgspecs_words() -> None:
    body = msgspec.msgpack.encode({"msg": "pull", "viewer_id": "v", "since_version": "zero"})
    with pytest.raises(RemoteProtocolError) as raised:
        decode(frame(body), expect=PullRequest)
    assert not isinstance(raised.value, InvalidMessageError)
    assert str(raised.value) == (
        "malformed message (expected PullRequest): Expected `int`, got `str` - at `$.since_version`"
    )


@pytest.mark.parametrize("kind", _MESSAGES, ids=lambda kind: kind.__name__)
def test_every_twin_has_its_messages_fields_and_no_constraint(kind: type[Any]) -> None:
    lenient = twin(kind)
    assert lenient.__struct_config__.tag == kind.__struct_config__.tag
    ours = msgspec.structs.fields(kind)
    theirs = msgspec.structs.fields(lenient)
    assert [f.name for f in theirs] == [f.name for f in ours]
    assert [f.required for f in theirs] == [f.required for f in ours]
    assert "minimum" not in str(msgspec.json.schema(lenient))
    assert "maxLength" not in str(msgspec.json.schema(lenient))


def test_a_twin_turns_back_into_the_message() -> None:
    msg = SyncRequest(
        pull=PullRequest(viewer_id="v", cowatch=CowatchCursor(version=2, source=5)),
        push=PushRequest(viewer_id="v", batch_id="b", codebook_id="c", added=[_PATTERN]),
        nonce=b"n" * 16,
    )
    lenient = msgspec.msgpack.decode(msgspec.msgpack.encode(msg), type=twin(Message))
    assert type(lenient) is not SyncRequest
    back = real(lenient)
    assert type(back) is SyncRequest and back == msg
