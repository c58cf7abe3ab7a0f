"""Property tests of the pure rules both backends share."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from omega.storage._pending import Leased, latest_per_key
from omega.storage._release import delta_cut


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=12),
    limit=st.integers(min_value=1, max_value=8),
    since=st.integers(min_value=0, max_value=12),
)
def test_delta_cursor_never_skips_a_change(sizes: list[int], limit: int, since: int) -> None:
    """Release v (1-based) changed sizes[v-1] patterns; the device pulls from ``since``."""
    current = len(sizes)
    rows = [v for v, n in enumerate(sizes, start=1) for _ in range(n)]
    changed = [v for v in rows if v > since]
    n, version = delta_cut(changed[: limit + 1], limit=limit, since=since, current=current)
    sent = changed[:n]
    assert n <= limit
    assert since <= version or current < since
    # Every change up to the cursor was sent; nothing after the cursor is needed to trust it.
    assert [v for v in changed if v <= version] == [v for v in sent if v <= version]
    if len(changed) <= limit:
        assert (n, version) == (len(changed), current)
    elif sizes[since] <= limit:  # the next version (since + 1) fits in one answer
        assert version > since  # so the device makes progress


@given(
    st.lists(
        st.tuples(
            st.sampled_from("abc"), st.sampled_from("xyz"), st.sampled_from(["upsert", "remove"])
        ),
        max_size=30,
    ),
    st.randoms(use_true_random=False),
)
def test_folding_keeps_the_newest_per_key_in_any_split(
    ops: list[tuple[str, str, str]], rnd: object
) -> None:
    rows = [
        Leased(seq, viewer, "eu", "cb", pid, op, None) for seq, (viewer, pid, op) in enumerate(ops)
    ]
    whole = latest_per_key(rows)
    shuffled = list(rows)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert latest_per_key(shuffled) == whole
    # Folding two disjoint leases separately, then keeping the newer per key, is the same.
    cut = len(rows) // 2
    merged = latest_per_key(latest_per_key(shuffled[:cut]) + latest_per_key(shuffled[cut:]))
    assert merged == whole
    assert [(r.viewer_id, r.pattern_id) for r in whole] == sorted({(v, p) for v, p, _ in ops})
