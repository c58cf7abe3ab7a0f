"""Two-server reports: the DPF adds up to the point function, each key alone looks
random, the sketch check accepts honest reports and refuses crafted ones."""

from __future__ import annotations

import secrets

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.errors import InputError
from omega.protocol import codec
from omega.protocol.dpf import PRIME, full_eval, gen, public_from_bytes
from omega.protocol.messages import PushRequest, SharedReport
from omega.protocol.shares import (
    _SUITE,
    HelperShare,
    _bind,
    _share_bytes,
    domain_bits,
    make_shared_report,
    open_helper_share,
    sketch,
    verify_share,
)

KEY = X25519PrivateKey.generate()
VERIFY = secrets.token_bytes(32)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12).flatmap(lambda b: st.tuples(st.just(b), st.integers(0, (1 << b) - 1))))
def test_the_two_keys_add_up_to_the_point_function(case: tuple[int, int]) -> None:
    bits, alpha = case
    keys = gen(alpha, bits, beta=7)
    public = public_from_bytes(keys.public.to_bytes())
    total = (full_eval(0, keys.seed0, public) + full_eval(1, keys.seed1, public)) % PRIME
    expected = np.zeros(1 << bits, dtype=np.int64)
    expected[alpha] = 7
    assert np.array_equal(total, expected)


def test_a_truncated_domain_evaluates_the_same_prefix() -> None:
    keys = gen(1200, 11)
    whole = full_eval(0, keys.seed0, keys.public)
    assert np.array_equal(full_eval(0, keys.seed0, keys.public, 1201), whole[:1201])


def test_one_key_alone_is_spread_over_the_whole_group() -> None:
    # A party's evaluation is pseudorandom: nothing marks the point.
    keys = gen(5, 10)
    share = full_eval(0, keys.seed0, keys.public)
    assert len(np.unique(share)) == len(share)
    assert share.min() >= 0 and share.max() < PRIME


def _check(report: SharedReport, size: int) -> bool:
    s0 = sketch(0, report, HelperShare.parse(report.leader), VERIFY)
    s1 = sketch(1, report, open_helper_share(report, KEY), VERIFY)
    d = (s0.d + s1.d) % PRIME
    assert len(s0.y) == size
    return verify_share(s0.w(d), s1.w(d))


def test_an_honest_report_passes_and_counts_one_title() -> None:
    report = make_shared_report(417, 1000, KEY.public_key())
    assert _check(report, 1000)
    s0 = sketch(0, report, HelperShare.parse(report.leader), VERIFY)
    s1 = sketch(1, report, open_helper_share(report, KEY), VERIFY)
    total = (s0.y + s1.y) % PRIME
    assert np.flatnonzero(total).tolist() == [417] and total[417] == 1
    # About 340 bytes on the wire: correction words, the leader's share, the sealed one.
    push = PushRequest(viewer_id="v", batch_id="b", codebook_id="cb", shares=[report])
    assert len(codec.encode(push)) < 450


def _crafted(alpha: int, beta: int, *, c_offset: int = 0, size: int = 1000) -> SharedReport:
    keys = gen(alpha, domain_bits(size), beta=beta)
    a = secrets.randbelow(PRIME)
    c = (a * a + c_offset) % PRIME
    a0, c0 = secrets.randbelow(PRIME), secrets.randbelow(PRIME)
    public = keys.public.to_bytes()
    helper = _share_bytes(keys.seed1, (a - a0) % PRIME, (c - c0) % PRIME)
    return SharedReport(
        size=size,
        public=public,
        leader=_share_bytes(keys.seed0, a0, c0),
        helper=_SUITE.encrypt(helper, KEY.public_key(), info=_bind(public)),
    )


@pytest.mark.parametrize("beta", [2, 1000, PRIME - 1])
def test_a_report_worth_more_than_one_view_is_refused(beta: int) -> None:
    assert _check(_crafted(3, 1), 1000)
    assert not _check(_crafted(3, beta), 1000)


def test_a_wrong_check_share_cannot_hide_a_bad_report() -> None:
    assert not _check(_crafted(3, 1, c_offset=5), 1000)
    assert not _check(_crafted(3, 2, c_offset=PRIME - 2), 1000)


def test_tampered_correction_words_are_refused() -> None:
    report = make_shared_report(10, 1000, KEY.public_key())
    public = bytearray(report.public)
    public[5] ^= 0x40  # a seed correction word of the first level
    tampered = SharedReport(
        size=1000, public=bytes(public), leader=report.leader, helper=report.helper
    )
    with pytest.raises(InputError, match="does not open"):  # bound to its correction words
        open_helper_share(tampered, KEY)


def test_malformed_parts_get_clear_errors() -> None:
    report = make_shared_report(10, 1000, KEY.public_key())
    with pytest.raises(InputError, match="outside"):
        make_shared_report(1000, 1000, KEY.public_key())
    with pytest.raises(InputError, match="bytes"):
        public_from_bytes(report.public[:-1])
    with pytest.raises(InputError, match="domain"):
        public_from_bytes(bytes([30]) + report.public[1:])
    with pytest.raises(InputError, match="input share"):
        HelperShare.parse(report.leader[:-1])
    wrong_size = SharedReport(
        size=5000, public=report.public, leader=report.leader, helper=report.helper
    )
    with pytest.raises(InputError, match="domain"):
        sketch(0, wrong_size, HelperShare.parse(report.leader), VERIFY)
    other = X25519PrivateKey.generate()
    with pytest.raises(InputError, match="does not open"):
        open_helper_share(report, other)
