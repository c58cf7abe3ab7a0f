"""Strict validation: invalid values are a LocalProtocolError out, a RemoteProtocolError in."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.errors import LocalProtocolError, RemoteProtocolError
from omega.protocol import (
    EMBEDDING_DIM,
    MAX_CELL,
    MAX_PATTERNS_PER_PUSH,
    MAX_REMOVED,
    ConsolidatedPattern,
    ContentUpdate,
    Message,
    Pattern,
    PullRequest,
    PullResponse,
    PushRequest,
    ServerEvent,
    SyncRequest,
    Trend,
    Vector,
    decode,
    decode_json,
    encode,
    encode_json,
    validate,
    validate_vector,
)
from omega.protocol._fast import ids_ok, patterns_ok, trends_ok
from omega.protocol.codec import frame
from omega.protocol.quantize import to_vector


def _pattern(**changes: Any) -> Pattern:
    fields: dict[str, Any] = {
        "id": "p1",
        "task": "preference",
        "cells": (3,),
        "success_rate": 0.8,
        "support": 5,
    }
    return Pattern(**(fields | changes))


def _consolidated(**changes: Any) -> ConsolidatedPattern:
    fields: dict[str, Any] = {
        "id": "c1",
        "task": "recommendation",
        "cells": (3, 4),
        "success_rate": 0.8,
        "support": 50,
        "viewers": 7,
        "weight": 2.5,
        "version": 4,
    }
    return ConsolidatedPattern(**(fields | changes))


def _push(*patterns: Pattern, removed: list[str] | None = None) -> PushRequest:
    return PushRequest(
        viewer_id="v1",
        batch_id="b1",
        codebook_id="cb1",
        added=list(patterns),
        removed=removed or [],
    )


def _pull(**changes: Any) -> PullResponse:
    return PullResponse(**({"version": 3} | changes))


def _raw_frame(msg: Any) -> bytes:
    """What a careless or hostile peer could send: msgpack without our validation."""
    return frame(msgspec.msgpack.encode(msg))


_NON_FINITE = [math.nan, math.inf, -math.inf]

INVALID: dict[str, Any] = {
    "nan success_rate": _push(_pattern(success_rate=math.nan)),
    "success_rate above 1": _push(_pattern(success_rate=1.5)),
    "negative success_rate": _push(_pattern(success_rate=-0.1)),
    "zero support": _push(_pattern(support=0)),
    "negative cell": _push(_pattern(cells=(-1,))),
    "cell past the codebook": _push(_pattern(cells=(MAX_CELL,))),
    "recommendation with one cell": _push(_pattern(task="recommendation", cells=(1,))),
    "preference with two cells": _push(_pattern(cells=(1, 2))),
    "unknown task": _push(_pattern(task="gossip")),
    "empty id": _push(_pattern(id="")),
    "long id": _push(_pattern(id="x" * 129)),
    "duplicate ids": _push(_pattern(), _pattern()),
    "added and removed": _push(_pattern(), removed=["p1"]),
    "too many patterns": _push(*(_pattern(id=f"p{i}") for i in range(MAX_PATTERNS_PER_PUSH + 1))),
    "too many removals": _push(removed=[f"r{i}" for i in range(MAX_REMOVED + 1)]),
    "bool support": _push(_pattern(support=True)),
    "empty viewer id": PushRequest(viewer_id="", batch_id="b", codebook_id="c"),
    **{f"{v} weight": _pull(patterns=[_consolidated(weight=v)]) for v in _NON_FINITE},
    "negative weight": _pull(patterns=[_consolidated(weight=-1.0)]),
    "zero viewers": _pull(patterns=[_consolidated(viewers=0)]),
    **{f"{v} trend score": _pull(trends=[Trend(cell=1, score=v)]) for v in _NON_FINITE},
    "nan next_sync_after": _pull(next_sync_after=math.nan),
    "negative next_sync_after": _pull(next_sync_after=-1.0),
    "negative version": _pull(version=-1),
    "nan in event data": ServerEvent(kind="trend", version=1, data={"score": math.nan}),
    "negative since_version": PullRequest(viewer_id="v", since_version=-1),
    "zero max_bytes": PullRequest(viewer_id="v", max_bytes=0),
    "interest out of range": PullRequest(viewer_id="v", interests=[MAX_CELL]),
    "sync for two viewers": SyncRequest(
        pull=PullRequest(viewer_id="a"),
        push=PushRequest(viewer_id="b", batch_id="x", codebook_id="c"),
    ),
}


def _content(vector: Vector) -> PullResponse:
    return _pull(content=[ContentUpdate(item_id="tt1", embedding=vector)])


_GOOD_F16 = to_vector([0.1] * EMBEDDING_DIM, "f16")
INVALID_VECTORS: dict[str, Any] = {
    "wrong dim": _content(to_vector([0.1] * 383, "f16")),
    "data shorter than dim": Vector(encoding="f16", dim=EMBEDDING_DIM, data=b"\x00" * 10),
    "int8 data of f16 length": Vector(
        encoding="int8", dim=EMBEDDING_DIM, data=_GOOD_F16.data, scale=0.1
    ),
    "f16 NaN payload": Vector(
        encoding="f16", dim=EMBEDDING_DIM, data=b"\x00\x7e" + _GOOD_F16.data[2:]
    ),
    "f16 Inf payload": Vector(
        encoding="f16", dim=EMBEDDING_DIM, data=b"\x00\x7c" + _GOOD_F16.data[2:]
    ),
    "f16 with a scale": Vector(encoding="f16", dim=EMBEDDING_DIM, data=_GOOD_F16.data, scale=2.0),
    "int8 nan scale": Vector(
        encoding="int8", dim=EMBEDDING_DIM, data=b"\x01" * EMBEDDING_DIM, scale=math.nan
    ),
    "int8 zero scale": Vector(
        encoding="int8", dim=EMBEDDING_DIM, data=b"\x01" * EMBEDDING_DIM, scale=0.0
    ),
    "unknown encoding": Vector(encoding="bf16", dim=EMBEDDING_DIM, data=_GOOD_F16.data),  # type: ignore[arg-type]
}
for _name, _value in list(INVALID_VECTORS.items()):
    if isinstance(_value, Vector):
        INVALID_VECTORS[_name] = _content(_value)
INVALID |= INVALID_VECTORS


@pytest.mark.parametrize("msg", INVALID.values(), ids=INVALID.keys())
def test_invalid_messages_are_refused_both_ways(msg: Any) -> None:
    with pytest.raises(RemoteProtocolError):
        validate(msg)
    with pytest.raises(LocalProtocolError):
        encode(msg)
    with pytest.raises(LocalProtocolError):
        encode_json(msg)
    try:
        frame = _raw_frame(msg)
    except (TypeError, ValueError):  # not even msgpack can carry it; nothing to receive
        return
    with pytest.raises(RemoteProtocolError):
        decode(frame)


def test_nan_in_json_is_refused() -> None:
    good = encode_json(_push(_pattern(success_rate=0.5))).decode()
    for bad in ("NaN", "Infinity", "1e999", "null"):
        with pytest.raises(RemoteProtocolError):
            decode_json(good.replace('"success_rate":0.5', f'"success_rate":{bad}').encode())


def test_errors_name_the_field() -> None:
    with pytest.raises(LocalProtocolError, match=r"added\[1\]\.success_rate"):
        encode(_push(_pattern(id="a"), _pattern(id="b", success_rate=math.inf)))


def test_values_that_msgpack_cannot_carry_are_local_errors() -> None:
    with pytest.raises(LocalProtocolError):
        encode(_pull(version=2**64))
    with pytest.raises(LocalProtocolError):
        encode(Pattern(id="p", task="preference", cells=(1,), success_rate=0.5, support=3))  # type: ignore[arg-type]


def test_boundaries_are_accepted() -> None:
    edge = _push(
        _pattern(id="a", success_rate=0.0, cells=(0,), support=1),
        _pattern(id="b", success_rate=1.0, cells=(MAX_CELL - 1,), task="behaviour"),
        _pattern(id="x" * 128, task="recommendation", cells=(0, MAX_CELL - 1)),
    )
    assert decode(encode(edge)) == edge
    assert decode(encode(_pull(patterns=[_consolidated(weight=0.0)])))


_wild_ints = st.integers(-5, 5) | st.integers(-(2**70), 2**70) | st.booleans()
_wild_floats = st.floats() | st.integers(-2, 2) | st.booleans()
_wild_text = st.text(max_size=3) | st.text(min_size=126, max_size=130) | st.integers()
_wild_cells = st.lists(st.integers(-2, MAX_CELL + 2) | st.booleans(), max_size=3).map(tuple)


@settings(max_examples=300, deadline=None)
@given(
    pid=_wild_text,
    task=st.sampled_from(["preference", "recommendation", "behaviour", "gossip"]),
    cells=_wild_cells,
    rate=_wild_floats,
    support=_wild_ints,
    viewers=_wild_ints,
    weight=_wild_floats,
    version=_wild_ints,
)
def test_fast_path_accepts_only_what_the_full_rules_accept(
    pid: Any,
    task: Any,
    cells: Any,
    rate: Any,
    support: Any,
    viewers: Any,
    weight: Any,
    version: Any,
) -> None:
    pattern = Pattern(
        id=pid, task=task, cells=cells, success_rate=rate, support=support, version=version
    )
    released = ConsolidatedPattern(
        id=pid,
        task=task,
        cells=cells,
        success_rate=rate,
        support=support,
        viewers=viewers,
        weight=weight,
        version=version,
    )
    trend = Trend(cell=support, region=pid, score=weight, version=version)
    cases: list[tuple[bool, Message]] = [
        (patterns_ok([pattern], Pattern), _push(pattern)),
        (patterns_ok([released], ConsolidatedPattern), _pull(patterns=[released])),
        (trends_ok([trend]), _pull(trends=[trend])),
        (ids_ok([pid]), _pull(removed=[pid])),
    ]
    for fast, msg in cases:
        if fast:
            validate(msg)


def test_every_f16_value_is_judged_as_ieee_754_says() -> None:
    """All 65,536 halves: finite ones pass, NaN and ±Inf are refused (numpy is the judge)."""
    halves = np.arange(1 << 16, dtype="<u2")
    finite = np.isfinite(halves.view("<f2"))
    verdicts = []
    for value in halves:
        vector = Vector(encoding="f16", dim=1, data=int(value).to_bytes(2, "little"))
        try:
            validate_vector(vector, dim=1)
            verdicts.append(True)
        except RemoteProtocolError:
            verdicts.append(False)
    assert verdicts == finite.tolist()
