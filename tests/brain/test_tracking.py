from __future__ import annotations

import math

import pytest

from omega.brain import Brain
from omega.clock import ManualClock
from omega.errors import InputError


def test_each_event_type_becomes_an_episode_with_reward_and_critique(brain: Brain) -> None:
    view = brain.track_view("ani0", watch_fraction=0.95, completed=True)
    assert view.kind == "view" and view.success and view.reward >= 0.95
    assert "95%" in view.critique and "good recommendation" in view.critique

    early = brain.track_view("cri0", watch_fraction=0.05)
    assert not early.success and early.reward < 0.3 and "abandoned" in early.critique

    skip = brain.track_skip("cri1", at_seconds=30)
    assert skip.kind == "skip" and skip.reward == 0.0 and not skip.success

    loved = brain.track_rating("ani1", 5)
    assert loved.reward == 1.0 and loved.success and "5★" in loved.critique
    hated = brain.track_rating("cri2", 1)
    assert hated.reward < 0.2 and not hated.success

    found = brain.track_search("toy story", ["ani0", "ani1", "ani2"], selected="ani2")
    assert found.kind == "search" and found.success and "position 3" in found.critique
    missed = brain.track_search("cooking", ["doc5"], selected=None)
    assert not missed.success

    browse = brain.track_browse(["doc0", "doc1"])
    assert browse.kind == "browse" and "browsed 2" in browse.critique

    assert brain.stats()["episodes"] == 8
    assert view.context.time_bucket in {"morning", "afternoon", "evening", "night"}
    assert view.context.day_type == "weekday"
    assert view.context.session_id


def test_duration_is_turned_into_a_watch_fraction(brain: Brain) -> None:
    # ani0 runs 90 minutes: 81 minutes watched is 90%.
    tracked = brain.track_view("ani0", duration_s=81 * 60)
    assert tracked.success and "90%" in tracked.critique


@pytest.mark.parametrize(
    "call",
    [
        lambda b: b.track_view("nope", watch_fraction=0.5),
        lambda b: b.track_view("ani0", watch_fraction=1.5),
        lambda b: b.track_view("ani0", watch_fraction=-0.1),
        lambda b: b.track_view("ani0", watch_fraction=math.nan),
        lambda b: b.track_view("ani0", duration_s=-5),
        lambda b: b.track_view("ani0", duration_s=math.inf),
        lambda b: b.track_view("ani0"),
        lambda b: b.track_skip("ani0", at_seconds=-1),
        lambda b: b.track_rating("ani0", 7),
        lambda b: b.track_rating("ani0", math.nan),
        lambda b: b.track_search("", ["ani0"], selected=None),
        lambda b: b.track_search("toy", ["ani0"], selected="ani1"),
        lambda b: b.track_search("toy", ["missing"], selected=None),
        lambda b: b.track_browse([]),
        lambda b: b.track_browse(["missing"]),
    ],
)
def test_bad_input_is_a_clear_error_and_stores_nothing(brain: Brain, call: object) -> None:
    before = brain.stats()["episodes"]
    with pytest.raises(InputError) as info:
        call(brain)  # type: ignore[operator]
    assert str(info.value)
    assert brain.stats()["episodes"] == before


def test_a_long_gap_starts_a_new_session(brain: Brain, clock: ManualClock) -> None:
    first = brain.track_view("ani0", watch_fraction=1.0)
    clock.advance(600)
    second = brain.track_view("ani1", watch_fraction=1.0)
    clock.advance(5 * 3600)
    third = brain.track_view("ani2", watch_fraction=1.0)
    assert first.context.session_id == second.context.session_id
    assert third.context.session_id != second.context.session_id
