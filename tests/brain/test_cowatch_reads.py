"""What a request reads of the co-watch table (``CowatchMatrix.edges``, ``sources`` and
``read``) is exactly what a plain pass over the matrix gives, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from omega.brain import BrainConfig
from omega.brain._store_cowatch import CowatchRows
from omega.brain.cowatch import CowatchMatrix, Edges


def _table(seed: int, n: int = 60) -> CowatchMatrix:
    """A random table over ``n`` titles: most list a few neighbours, some none."""
    rng = np.random.default_rng(seed)
    sources, neighbours = [], []
    for source in range(n):
        if rng.random() < 0.8:
            found = rng.choice(n, int(rng.integers(1, 9)), replace=False)
            sources += [source] * len(found)
            neighbours += found.tolist()
    counts = rng.integers(3, 100, len(sources)).astype(np.float32)
    rows = CowatchRows(np.array(sources, np.int64), np.array(neighbours, np.int64), counts)
    return CowatchMatrix.build(rows, np.arange(n, dtype=np.int64), BrainConfig())


def _plain_edges(table: CowatchMatrix, history: list[tuple[int, float]]) -> Edges:
    """Each household title's row of the matrix, times its weight, one after another."""
    m = table.matrix
    idx, val, src = [], [], []
    for row, weight in history:
        if row < m.shape[0]:
            lo, hi = int(m.indptr[row]), int(m.indptr[row + 1])
            idx.append(m.indices[lo:hi].astype(np.int64))
            val.append(m.data[lo:hi] * np.float32(weight))
            src.append(np.full(hi - lo, row, np.int64))
    if not idx:
        return Edges(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64))
    return Edges(np.concatenate(idx), np.concatenate(val), np.concatenate(src))


def _plain_sources(edges: Edges, targets: list[int]) -> list[int | None]:
    """For each target, the source of its first strongest edge (None: no edge above 0)."""
    best: dict[int, tuple[float, int]] = {}
    for target, value, source in zip(
        edges.neighbours.tolist(), edges.values.tolist(), edges.sources.tolist(), strict=True
    ):
        if target in targets and value > best.get(target, (0.0, -1))[0]:
            best[target] = (value, source)
    return [best[t][1] if t in best else None for t in targets]


def _same(a: Edges, b: Edges) -> bool:
    return all(
        x.dtype == y.dtype and x.tobytes() == y.tobytes()
        for x, y in zip(
            (a.neighbours, a.values, a.sources), (b.neighbours, b.values, b.sources), strict=True
        )
    )


@pytest.mark.parametrize("seed", range(8))
def test_edges_and_sources_are_a_plain_pass_over_the_table(seed: int) -> None:
    table = _table(seed)
    rng = np.random.default_rng(100 + seed)
    n = table.matrix.shape[0]
    for _ in range(20):
        rows = rng.choice(n + 5, int(rng.integers(0, 11)), replace=False)  # some off the table
        history = [(int(r), 0.7**i) for i, r in enumerate(rows)]
        edges = table.edges(history)
        assert _same(edges, _plain_edges(table, history))
        targets = rng.choice(n, int(rng.integers(0, 12)), replace=False).tolist()
        assert CowatchMatrix.sources(edges, targets) == _plain_sources(edges, targets)


def test_a_read_is_kept_for_its_history_and_cannot_be_changed() -> None:
    table = _table(0)
    first, second = [(3, 1.0), (7, 0.7)], [(5, 1.0)]
    edges, scores = table.read(first, 60)
    assert _same(edges, table.edges(first))
    assert scores.tobytes() == table.scores(table.edges(first), 60).tobytes()
    assert table.read(first, 60)[1] is scores  # kept
    other = table.read(second, 60)[1]
    assert other.tobytes() == table.scores(table.edges(second), 60).tobytes()
    assert table.read(first, 60)[1].tobytes() == scores.tobytes()  # asked afresh, same
    with pytest.raises(ValueError, match="read-only"):
        other[0] = 1.0


@pytest.mark.parametrize("seed", range(8))
def test_sources_with_ties_name_the_first_listed_of_the_strongest(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    size = int(rng.integers(0, 120))
    edges = Edges(
        rng.integers(0, 30, size).astype(np.int64),
        rng.choice([0.0, 0.5, 1.0, 2.0], size).astype(np.float32),  # equal values, and 0
        rng.integers(0, 30, size).astype(np.int64),
    )
    targets = rng.choice(35, int(rng.integers(0, 20)), replace=False).tolist()
    assert CowatchMatrix.sources(edges, targets) == _plain_sources(edges, targets)
    assert CowatchMatrix.sources(edges, targets[::-1]) == _plain_sources(edges, targets[::-1])


@pytest.mark.parametrize("seed", range(4))
def test_the_strongest_neighbours_are_those_scored_highest_and_are_kept(seed: int) -> None:
    table = _table(seed)
    history = [(int(r), 0.7**i) for i, r in enumerate(np.random.default_rng(seed).choice(60, 6))]
    edges, scores = table.read(history, 60)
    for count in (1, 5, 60):
        strongest = edges.strongest(scores, count)
        positive = np.flatnonzero(scores > 0)
        assert len(strongest) == min(count, len(positive))
        assert set(strongest.tolist()) <= set(positive.tolist())
        if len(strongest) < len(positive):  # none left out scores above one taken
            left = np.setdiff1d(positive, strongest)
            assert scores[left].max() <= scores[strongest].min()
        assert edges.strongest(scores, count) is strongest  # kept for the same ask
    assert edges.listed().tolist() == sorted(set(edges.neighbours.tolist()))
