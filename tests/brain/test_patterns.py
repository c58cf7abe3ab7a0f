from __future__ import annotations

from omega.brain import Brain
from omega.clock import ManualClock


def _binge(brain: Brain, clock: ManualClock, items: list[str], fraction: float) -> None:
    for item in items:
        clock.advance(1800)
        brain.track_view(item, watch_fraction=fraction, completed=fraction >= 0.95)


def test_only_quality_patterns_with_enough_support_are_exported(
    brain: Brain, clock: ManualClock
) -> None:
    assert brain.export_patterns() == []
    _binge(brain, clock, ["ani0", "ani1"], 1.0)
    assert brain.export_patterns() == []  # support 2 < 3
    _binge(brain, clock, ["ani2", "ani3", "ani4"], 1.0)
    _binge(brain, clock, ["cri0", "cri1", "cri2", "cri3"], 0.05)  # abandons
    exported = brain.export_patterns()
    assert exported
    for pattern in exported:
        # quality: success rate, or for abandonment (behaviour) 1 − success rate
        quality = 1 - pattern.success_rate if pattern.task == "behaviour" else pattern.success_rate
        assert quality >= 0.7
        assert pattern.support >= 3
    tasks = {p.task for p in exported}
    assert "preference" in tasks
    # the abandoned crime titles became a behaviour pattern, not a preference
    assert "behaviour" in tasks
    every = {s.id: s for s in brain.learner.bank}
    weak = [s for s in every.values() if s.support >= 3 and s.quality < 0.7]
    assert weak, "the abandons should have produced low-success preference patterns"
    assert not {s.id for s in weak} & {p.id for p in exported}
    assert len(brain.export_patterns(min_quality=0.0)) > len(exported)


def test_patterns_never_name_items(brain: Brain, clock: ManualClock) -> None:
    _binge(brain, clock, ["ani0", "ani1", "ani2", "ani3", "ani4", "ani5"], 1.0)
    for pattern in brain.export_patterns():
        encoded = repr(pattern)
        assert all(item not in encoded for item in ("ani0", "Toy Story"))
        assert all(0 <= c < 6 for c in pattern.cells)


def test_shareable_patterns_go_to_the_outbox(brain: Brain, clock: ManualClock) -> None:
    _binge(brain, clock, ["ani0", "ani1", "ani2", "ani3", "ani4"], 1.0)
    brain.flush()
    queued = {q.pattern_id: q.op for q in brain.store.outbox.pending(100)}
    exported = {p.id for p in brain.export_patterns()}
    assert exported and exported <= set(queued)
    assert set(queued.values()) == {"upsert"}


def test_pattern_storage_is_bounded(brain: Brain, clock: ManualClock) -> None:
    from dataclasses import replace

    brain.learner.bank.max_patterns = 5
    brain.config = replace(brain.config, max_patterns=5)
    _binge(brain, clock, [f"ani{n}" for n in range(12)] + [f"doc{n}" for n in range(12)], 1.0)
    brain.consolidate()
    assert len(brain.learner.bank) <= 5
    assert brain.stats()["patterns"] <= 5
