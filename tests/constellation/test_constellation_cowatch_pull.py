"""``with_cowatch``: co-watch rows fill what a pull's budget leaves, behind their own cursor."""

from __future__ import annotations

import random

from omega.constellation.distribute import with_cowatch
from omega.protocol import codec
from omega.protocol.messages import CowatchCursor, CowatchRow, PullResponse


def _size(response: PullResponse) -> int:
    return len(codec.encode(response))


def _rows(n: int, seed: int = 0) -> list[tuple[int, CowatchRow]]:
    rng = random.Random(seed)
    return [
        (
            1 + s // 50,
            CowatchRow(source=s, neighbours=[(rng.randrange(9742), 3) for _ in range(20)]),
        )
        for s in range(n)
    ]


def test_rows_fill_the_budget_and_move_the_cursor_to_the_last_one_sent() -> None:
    rows = _rows(200)
    page = with_cowatch(
        PullResponse(version=4),
        rows,
        after=CowatchCursor(),
        max_bytes=5120,
        size_of=_size,
        fetched_all=True,
    )
    assert page.cowatch is not None
    sent = len(page.cowatch.rows)
    assert 0 < sent < 200 and _size(page) <= 5120 and page.more
    assert page.cowatch.cursor == CowatchCursor(version=rows[sent - 1][0], source=sent - 1)
    assert page.version == 4  # the pattern cursor is untouched


def test_the_last_rows_end_the_paging_unless_storage_has_more() -> None:
    rows = _rows(3)
    done = with_cowatch(
        PullResponse(version=1),
        rows,
        after=CowatchCursor(),
        max_bytes=5120,
        size_of=_size,
        fetched_all=True,
    )
    assert done.cowatch is not None and len(done.cowatch.rows) == 3 and not done.more
    cut = with_cowatch(
        PullResponse(version=1),
        rows,
        after=CowatchCursor(),
        max_bytes=5120,
        size_of=_size,
        fetched_all=False,
    )
    assert cut.more  # storage was read up to its limit: ask again


def test_a_full_page_keeps_the_cursor_and_asks_for_more() -> None:
    full = PullResponse(version=1, removed=[f"p{i:04d}" for i in range(700)])
    after = CowatchCursor(version=2, source=7)
    fits = {"max_bytes": _size(full) + 12, "size_of": _size, "fetched_all": True}
    page = with_cowatch(full, _rows(5), after=after, **fits)  # type: ignore[arg-type]
    assert page.more and page.cowatch is not None
    assert page.cowatch.rows == [] and page.cowatch.cursor == after
    nothing = with_cowatch(
        PullResponse(version=1), [], after=after, max_bytes=5120, size_of=_size, fetched_all=True
    )
    assert not nothing.more and nothing.cowatch is not None and nothing.cowatch.cursor == after
