"""``omega simulate --cowatch central-k3``: a stand-in for the private co-watch release.

Until the private protocol (pairs contributed so that no server links a pair to its TV)
runs in the simulator, this module plays its part **centrally**: it collects each TV's
pairs through the brain's own interface (``Brain.pairs_to_contribute`` at every sync,
each sync an epoch of its own), counts how many distinct TVs contributed each
ordered pair (a TV never contributes a pair twice, so a count is a number of TVs), and
releases a pair only when at least ``k`` (3) did. Each source title's neighbours are its
``neighbours`` best-backed pairs. A new version (the rows changed) is published at every
federation round, and each TV receives the rows changed since the version it holds at
its next sync, through ``Brain.apply_cowatch``, as the protocol's pulls would deliver
them. The figures it gives
are those a private release of the same pairs would give (the k-anonymity rule is the
same; the servers' view is not), and it is labelled as a stand-in in every report.

Only the replayed (train) events reach the brains, so the table never holds a held-out
interaction. The attack of ``--attack promote-item`` adds the coalition's forged pairs
(:meth:`CentralRelease.forge`) to the same counts; :func:`defended_rows` is the defence
the release applies to every row.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from omega.brain import Brain

__all__ = ["CentralRelease", "CowatchSource", "Forgery", "defended_rows"]

CowatchSource = Literal["off", "central-k3", "private"]


def defended_rows(found: Counter[int], *, k: int, neighbours: int) -> list[tuple[int, int]]:
    """One source's released neighbours (position, count), best first: pairs backed by at
    least ``k`` TVs, at most ``neighbours`` of them."""
    kept = [(b, count) for b, count in found.items() if count >= k]
    return sorted(kept, key=lambda nc: (-nc[1], nc[0]))[:neighbours]


@dataclass(slots=True)
class Forgery:
    """The promote-item coalition's forged pairs: every attacking TV contributes
    (source → ``target``) for the ``sources`` (the most watched titles first, as
    positions), a budget's worth per epoch; ``sent``: how far each TV got."""

    target: int
    sources: list[int]
    sent: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class CentralRelease:
    """Counts contributed pairs, publishes the k ≥ ``k`` table in versions of changed
    rows, and delivers each TV the rows changed since the version it holds."""

    k: int = 3
    neighbours: int = 50
    #: source position → neighbour position → TVs that contributed the pair.
    counts: dict[int, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    contributed: int = 0
    forged: int = 0
    #: deltas[v - 1]: the rows version v changed (an empty list removes a source).
    deltas: list[dict[int, list[tuple[int, int]]]] = field(default_factory=list)
    _dirty: set[int] = field(default_factory=set)
    _released: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    @property
    def version(self) -> int:
        return len(self.deltas)

    def collect(self, brain: Brain, epoch: int) -> int:
        """Take a TV's pairs for ``epoch``; how many it gave."""
        pairs = brain.pairs_to_contribute(epoch)
        self._count(pairs)
        self.contributed += len(pairs)
        return len(pairs)

    def forge(self, pairs: Iterable[tuple[int, int]]) -> None:
        """One attacking TV's forged pairs (each counts once for that TV)."""
        unique = set(pairs)
        self._count(unique)
        self.forged += len(unique)

    def forge_epoch(self, tv: int, attack: Forgery, budget: int) -> int:
        """An attacking TV's epoch: its whole budget of pairs goes to forged ones, each
        pointing a popular title at the target, the next ``budget`` it has not sent."""
        done = attack.sent.setdefault(tv, 0)
        pairs = [(source, attack.target) for source in attack.sources[done : done + budget]]
        attack.sent[tv] = done + len(pairs)
        self.forge(pairs)
        return len(pairs)

    def _count(self, pairs: Iterable[tuple[int, int]]) -> None:
        for a, b in pairs:
            found = self.counts[a]
            found[b] += 1
            if found[b] >= self.k:
                self._dirty.add(a)

    def publish(self) -> int:
        """A new version holding the rows changed since the last (none: no version)."""
        changes = {}
        for source in self._dirty:
            row = defended_rows(self.counts[source], k=self.k, neighbours=self.neighbours)
            if row != self._released.get(source, []):
                changes[source] = row
                self._released[source] = row
        self._dirty.clear()
        if changes:
            self.deltas.append(changes)
        return len(changes)

    def deliver(self, brain: Brain) -> int:
        """Bring a TV's table up to the newest version; the rows it received."""
        held = brain.cowatch.version()
        if held >= self.version:
            return 0
        rows: dict[int, list[tuple[int, int]]] = {}
        for delta in self.deltas[held:]:
            rows.update(delta)
        brain.apply_cowatch(self.version, sorted(rows.items()))
        return len(rows)

    def summary(self) -> dict[str, float | str]:
        table = self._released
        pairs = sum(len(found) for found in table.values())
        return {
            "source": "central-k3 (a centralised stand-in for the private release: same "
            f"k ≥ {self.k} distinct-TV rule, computed from the train split only)",
            "pairs_contributed": float(self.contributed),
            "pairs_forged": float(self.forged),
            "distinct_pairs": float(sum(len(c) for c in self.counts.values())),
            "released_pairs": float(pairs),
            "released_sources": float(sum(1 for found in table.values() if found)),
            "versions": float(self.version),
            # Each released pair as (position, count): two int32 on the brain's disk.
            "released_bytes_int32": float(8 * pairs + 4 * len(table)),
        }
