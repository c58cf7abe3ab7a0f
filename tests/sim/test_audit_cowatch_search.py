"""The co-watch audit's search for pairs and tags in request bodies: its filter gives
the answer the plain search gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from omega.sim.audit_cowatch import _Needles

_needles = st.lists(st.binary(min_size=1, max_size=24), max_size=12)


@settings(max_examples=300, deadline=None)
@given(needles=_needles, body=st.binary(max_size=200), planted=st.integers(0, 11), at=st.integers())
def test_the_search_finds_what_the_plain_search_finds(
    needles: list[bytes], body: bytes, planted: int, at: int
) -> None:
    search = _Needles(needles)
    assert search.found_in(body) == any(n in body for n in needles)
    if needles:  # a body holding a needle anywhere, the ends included
        needle = needles[planted % len(needles)]
        cut = at % (len(body) + 1)
        holding = body[:cut] + needle + body[cut:]
        assert search.found_in(holding)


def test_a_body_holding_no_needle_is_not_found() -> None:
    pairs = [i.to_bytes(4, "big") + (i + 1).to_bytes(4, "big") for i in range(500)]
    search = _Needles(pairs)
    body = bytes(range(256)) * 20
    assert not search.found_in(body) and not any(p in body for p in pairs)
    assert search.found_in(body[:1000] + pairs[499] + body[1000:])
    assert not _Needles([]).found_in(body)
