"""``explain_consensus``: the same verdict as ``consolidate``, said in words."""

from __future__ import annotations

from _fed_helpers import NOW, live, orthogonal_centroids

from omega.federation import FederationConfig, consolidate, explain_consensus, pattern_id

CENTROIDS = orthogonal_centroids(16)
CONFIG = FederationConfig()
#: The id a round gives the (any, any) transition cluster 1 → 2: context 14 is (any, any).
TRANSITION = pattern_id("cb", "recommendation", 14, (1, 2))


def explain(patterns, wanted=TRANSITION):
    return explain_consensus(patterns, CENTROIDS, CONFIG, now=NOW, codebook_id="cb", wanted=wanted)


def test_a_released_cluster_is_explained_with_its_voters() -> None:
    patterns = [live(f"v{i}", (1, 2)) for i in range(3)]
    (released,) = consolidate(patterns, CENTROIDS, CONFIG, now=NOW, codebook_id="cb")
    assert released.id == TRANSITION
    report = explain(patterns)
    assert report is not None
    assert report.released_by_rules
    assert (report.voters, report.voter_ids) == (3, ("v0", "v1", "v2"))
    assert (report.agreeing, report.opinions, report.agreement) == (3, 3, 1.0)
    assert report.task == "recommendation" and report.groups == (1, 2)
    assert "3 distinct viewers back it" in report.reasons[0]


def test_too_few_viewers_is_the_reason_it_is_withheld() -> None:
    patterns = [live(f"v{i}", (1, 2)) for i in range(2)]
    assert consolidate(patterns, CENTROIDS, CONFIG, now=NOW, codebook_id="cb") == []
    report = explain(patterns)
    assert report is not None and not report.released_by_rules
    assert report.reasons[0].startswith("only 2 distinct viewer(s) back it, 3 are needed")


def test_dissent_on_the_target_withholds_a_backed_cluster() -> None:
    # Three viewers like 1 → 2, four abandon content in cell 2: agreement 3 / 7.
    backers = [live(f"v{i}", (1, 2)) for i in range(3)]
    quitters = [live(f"q{i}", (2,), task="behaviour", success=0.1) for i in range(4)]
    patterns = backers + quitters
    released = consolidate(patterns, CENTROIDS, CONFIG, now=NOW, codebook_id="cb")
    assert TRANSITION not in {p.id for p in released}
    report = explain(patterns)
    assert report is not None and not report.released_by_rules
    assert (report.voters, report.agreeing, report.opinions) == (3, 3, 7)
    assert "disputed, withheld" in report.reasons[1]


def test_an_unknown_id_and_low_quality_patterns_explain_nothing() -> None:
    assert explain([live(f"v{i}", (1, 2)) for i in range(3)], wanted="nope") is None
    assert explain([live(f"v{i}", (1, 2), success=0.5) for i in range(3)]) is None
