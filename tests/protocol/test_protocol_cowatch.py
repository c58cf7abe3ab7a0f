"""The co-watch protocol's pure parts: the two-server OPRF, threshold reports, proofs."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.clock import ManualClock
from omega.errors import AuthError, InputError
from omega.protocol import oprf
from omega.protocol.attestation import Manufacturer
from omega.protocol.cowatch import (
    SealedReport,
    Share,
    make_report,
    open_report,
    pair_input,
    quantise,
    recover,
    seal_report,
)
from omega.protocol.cowatch_wire import (
    OprfPoints,
    OprfRequest,
    ReportRequest,
    pieces,
    prove,
    verify_proof,
)

K1, K2 = oprf.new_key(), oprf.new_key()
LEADER = X25519PrivateKey.generate()


def _r(a: int, b: int) -> bytes:
    return oprf.direct((K1, K2), pair_input(a, b))


def _shares(a: int, b: int, n: int, k: int = 3) -> tuple[bytes, list[Share]]:
    reports = [seal_report(make_report(_r(a, b), a, b, k=k), LEADER.public_key()) for _ in range(n)]
    return reports[0].tag, [open_report(r, LEADER) for r in reports]


def test_the_oprf_needs_both_keys_in_either_order_and_hides_its_input() -> None:
    data = pair_input(3, 7)
    assert oprf.direct((K1, K2), data) == oprf.direct((K2, K1), data)
    assert oprf.direct((K1,), data) != oprf.direct((K1, K2), data)
    assert oprf.direct((K1, K2), pair_input(7, 3)) != oprf.direct((K1, K2), data)
    assert oprf.blind(data).point != oprf.blind(data).point  # fresh blinding every time


def test_direct_is_what_the_blinded_protocol_gives() -> None:
    for a in range(5):
        data = pair_input(a, a + 1)
        for keys in [(), (K1,), (K1, K2)]:
            blinded = oprf.blind(data)
            point = blinded.point
            for key in keys:
                point = oprf.evaluate(key, point)
            assert oprf.finalize(blinded, point) == oprf.direct(keys, data)


@pytest.mark.parametrize("point", [bytes(32), b"\x01" + bytes(31), b"\xff" * 32, b"short"], ids=str)
def test_a_server_refuses_anything_but_a_group_point(point: bytes) -> None:
    with pytest.raises(InputError, match="not a valid point"):
        oprf.evaluate(K1, point)


def test_keys_are_checked() -> None:
    assert oprf.check_key(K1, "k") == K1
    with pytest.raises(InputError, match="non-zero 32-byte scalar"):
        oprf.check_key(bytes(32), "the key")
    with pytest.raises(InputError, match="not a reduced scalar"):
        oprf.check_key(b"\xff" * 32, "the key")


@settings(max_examples=10, deadline=None)
@given(k=st.integers(2, 5), extra=st.integers(0, 3))
def test_a_pair_opens_from_k_points_and_never_below(k: int, extra: int) -> None:
    tag, shares = _shares(11, 12, k + extra, k=k)
    assert recover(tag, shares[: k - 1], k=k) is None
    found = recover(tag, shares, k=k)
    assert found is not None and (found.a, found.b) == (11, 12) and len(found.xs) == k + extra


def test_garbage_points_neither_count_nor_block_the_pair() -> None:
    tag, shares = _shares(1, 2, 3)
    garbage = [Share(s.x + 1, s.y, s.ciphertext) for s in shares] + [Share(5, 9, b"x" * 24)]
    found = recover(tag, garbage[:2] + shares + garbage[2:], k=3)
    assert found is not None and len(found.xs) == 3
    assert recover(b"\x00" * 16, shares, k=3) is None  # the ciphertext is bound to its tag


def test_a_report_opens_only_under_its_own_tag_and_key() -> None:
    report = seal_report(make_report(_r(1, 2), 1, 2, k=3), LEADER.public_key())
    with pytest.raises(InputError, match="does not open"):
        open_report(SealedReport(tag=b"\x01" * 16, sealed=report.sealed), LEADER)
    with pytest.raises(InputError, match="does not open"):
        open_report(report, X25519PrivateKey.generate())
    with pytest.raises(InputError, match="tag is 16 bytes"):
        open_report(SealedReport(tag=b"x", sealed=report.sealed), LEADER)
    with pytest.raises(InputError, match="two different catalog positions"):
        pair_input(4, 4)


def test_counts_are_quantised_to_two_leading_bits() -> None:
    assert [quantise(n) for n in (3, 4, 5, 6, 7, 8, 11, 12, 100)] == [3, 4, 4, 6, 6, 8, 8, 12, 96]


def test_a_device_proof_covers_the_request_and_its_time() -> None:
    clock = ManualClock()
    maker = Manufacturer.generate("acme", "k1")
    device = maker.device("SN-1", clock=clock)
    trusted = {("acme", "k1"): maker.key.public_key()}
    request = OprfRequest(points=[oprf.blind(b"x").point])
    proof = prove(device, "oprf", request)
    check = {"now": clock.now(), "max_skew": 300.0}
    assert verify_proof(proof, "oprf", request, trusted, **check) == "acme/SN-1"
    with pytest.raises(AuthError, match="not signed by the key"):
        verify_proof(proof, "reports", ReportRequest(reports=[]), trusted, **check)
    other = msgspec.structs.replace(request, points=[oprf.blind(b"y").point])
    with pytest.raises(AuthError, match="not signed by the key"):
        verify_proof(proof, "oprf", other, trusted, **check)
    with pytest.raises(AuthError, match="more than 300 s"):
        verify_proof(proof, "oprf", request, trusted, now=clock.now() + 301, max_skew=300.0)
    with pytest.raises(AuthError, match="trusts no manufacturer key"):
        verify_proof(proof, "oprf", request, {}, **check)
    with pytest.raises(AuthError, match="carries a device proof"):
        verify_proof(None, "oprf", request, trusted, **check)
    # Each proof has its own nonce (a retry in the same second is a new proof), and the
    # signature covers it.
    again = prove(device, "oprf", request)
    assert again.signature != proof.signature and again.nonce != proof.nonce
    swapped = msgspec.structs.replace(proof, nonce=again.nonce)
    with pytest.raises(AuthError, match="not signed by the key"):
        verify_proof(swapped, "oprf", request, trusted, **check)


def test_pieces_fill_each_request_up_to_the_bound_in_order() -> None:
    items = [bytes([i]) * 32 for i in range(200)]

    def size(piece: Sequence[bytes]) -> int:
        return len(msgspec.msgpack.encode(OprfPoints(points=list(piece))))

    cut = pieces(items, size, limit=1_000)
    assert [i for piece in cut for i in piece] == items  # in order, none lost or doubled
    assert all(size(p) <= 1_000 for p in cut)
    assert all(size([*p, items[0]]) > 1_000 for p in cut[:-1])  # each one full
    assert pieces(items, size) == [items[:150], items[150:]]  # 5 KB: 150 points of 34 B
    assert pieces([], size) == []
    with pytest.raises(InputError, match="alone is over 40 bytes"):
        pieces(items, size, limit=40)
