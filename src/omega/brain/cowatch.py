"""Co-watch knowledge at the level of titles: what viewers watch next after a title.

Two directions, both through ``Brain``:

- **Contributing** (:meth:`CowatchState.pairs_to_contribute`): the TV derives ordered
  pairs a → b from its own viewing — b started within ``cowatch_window`` engaged titles
  after a — and hands the sync at most ``cowatch_pairs_per_epoch`` per epoch (fewer when
  the sync says its budget allows fewer: only the pairs handed over count as sent), as
  positions in the server's catalog order: the closest pairs first (a title watched
  right after another says the most about it), then — with ``cowatch_likely_first``,
  the default — those likeliest to reach the release's k TVs (:func:`likely_first`: by
  the released popularity of the pair's rarer title), then the most recent. A pair is
  contributed once in the TV's life (``cowatch_sent`` records them); asking again for
  the same epoch returns the same pairs, so a retried sync sends nothing new.
  *Engaged*: a view or rating with reward ≥ ``cowatch_min_reward`` (0.3: the learner's
  line below which a title counts as abandoned; on ml-latest-small a 2★ rating is a 25 %
  view, reward 0.31, and counts). Pairs come from the newest ``cowatch_lookback``
  engaged titles.
- **Scoring** (:class:`CowatchMatrix`): the released table (per source title, its
  neighbours with quantised counts of distinct TVs) becomes one sparse matrix
  M = C + ``cowatch_backward`` · Cᵀ with each row divided by its sum (the source's
  degree) to the power ``cowatch_degree_exponent``. A household's co-watch score for
  every title is Σᵢ decayⁱ · M[aᵢ] over its last ``cowatch_recent`` distinct engaged
  titles aᵢ, most recent first, on the table's own scale (:meth:`CowatchMatrix.scores`):
  divided by what a title scores when every one of those titles points to it as
  strongly as the table's typical source points to its best neighbour, and capped at 1.
  The matrix is built once per release (and catalog), not per request; a request costs
  a few sparse rows, and a request for the same titles again (a screen redrawn) none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from omega.brain._cowatch_edges import Edges
from omega.brain._cowatch_spread import spread_capped
from omega.brain._store_cowatch import CowatchRows
from omega.brain.catalog import Catalog
from omega.brain.config import BrainConfig
from omega.errors import ConfigError, InputError

if TYPE_CHECKING:
    from omega.brain.store import BrainStore
    from omega.brain.sync_state import SyncState

__all__ = ["CowatchMatrix", "CowatchState", "Edges", "likely_first", "ordered_pairs"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
#: The most neighbours one released row may list, and the largest quantised count.
MAX_NEIGHBOURS = 1000
MAX_COUNT = 2**31 - 1


def ordered_pairs(sequence: Sequence[int], window: int) -> list[tuple[int, int]]:
    """Ordered pairs (a, b), b within ``window`` titles after a in ``sequence`` (oldest
    first, each title once), the closest first and the most recent first among equals."""
    ranked: list[tuple[int, int, int, int]] = []
    for i, a in enumerate(sequence):
        for gap in range(1, window + 1):
            if i + gap < len(sequence):
                ranked.append((gap, -(i + gap), a, sequence[i + gap]))
    ranked.sort()
    return [(a, b) for _, _, a, b in ranked]


def likely_first(
    sequence: Sequence[int], window: int, popularity: Mapping[int, float]
) -> list[tuple[int, int]]:
    """:func:`ordered_pairs`, with the pairs likeliest to reach the release's k TVs
    first among those equally close: the closest first, then by the released popularity
    of the pair's *rarer* title (a pair is as common as its rarer title allows; a title
    off the released list counts 0), then the most recent. A pair helps only once k TVs
    sent it, so a TV whose budget cannot pay for every pair spends it where other TVs
    are likeliest to meet it; closeness still leads (ranking by popularity alone did
    better on ml-latest-small but much worse on the demo's viewers, who watch in
    order: docs/cowatch.md)."""
    ranked: list[tuple[int, float, int, int, int]] = []
    for i, a in enumerate(sequence):
        rare = popularity.get(a, 0.0)
        for gap in range(1, window + 1):
            if i + gap < len(sequence):
                b = sequence[i + gap]
                ranked.append((gap, -min(rare, popularity.get(b, 0.0)), -(i + gap), a, b))
    ranked.sort()
    return [(a, b) for _, _, _, a, b in ranked]


@dataclass(frozen=True, slots=True)
class CowatchMatrix:
    """The released table over catalog rows: M (CSR, each row divided by its degree to
    ``cowatch_degree_exponent``) and the settings."""

    matrix: sp.csr_matrix
    recent: int
    decay: float
    min_reward: float
    #: The score at which the co-watch signal reaches 1 (see :meth:`scores`).
    full_score: float = 1.0
    #: The last household's history and what :meth:`read` answered for it.
    _last: dict[tuple[tuple[tuple[int, float], ...], int], tuple[Edges, F32]] = field(
        init=False, default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def build(cls, rows: CowatchRows, row_of_position: I64, config: BrainConfig) -> CowatchMatrix:
        rows = spread_capped(rows, ratio=config.cowatch_spread, floor=0.0)
        n = len(row_of_position)
        inside = (rows.sources < n) & (rows.neighbours < n)
        src = row_of_position[rows.sources[inside]]
        dst = row_of_position[rows.neighbours[inside]]
        keep = (src >= 0) & (dst >= 0) & (src != dst)
        size = int(row_of_position.max(initial=-1)) + 1
        counts = sp.csr_matrix(
            (rows.counts[inside][keep], (src[keep], dst[keep])), shape=(size, size)
        )
        both = (counts + np.float32(config.cowatch_backward) * counts.T).tocsr()
        degree = np.asarray(both.sum(axis=1), dtype=np.float64).ravel()
        degree[degree == 0] = 1.0
        scale = degree ** -float(config.cowatch_degree_exponent)
        normalised = sp.csr_matrix(sp.diags(scale) @ both, dtype=np.float32)
        normalised.sort_indices()
        history = sum(config.cowatch_decay**p for p in range(config.cowatch_recent))
        return cls(
            normalised,
            config.cowatch_recent,
            config.cowatch_decay,
            config.cowatch_min_reward,
            full_score=typical_best(normalised) * history,
        )

    @property
    def nbytes(self) -> int:
        m = self.matrix
        return int(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes)

    def history(self, recent: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
        """From (row, reward) of the titles started, most recent first: the first
        ``recent`` distinct engaged rows with decayed weights."""
        out: list[tuple[int, float]] = []
        taken: set[int] = set()
        for row, reward in recent:
            if reward >= self.min_reward and row not in taken:
                out.append((row, self.decay ** len(out)))
                taken.add(row)
            if len(out) == self.recent:
                break
        return out

    def read(self, history: Sequence[tuple[int, float]], n: int) -> tuple[Edges, F32]:
        """:meth:`edges` and :meth:`scores` for one household's ``history``, kept for the
        next request with the same history (a home screen redrawn). The table itself
        never changes: a release builds a new one. The arrays are read-only."""
        key = (tuple(history), n)
        held = self._last.get(key)
        if held is not None:
            return held
        edges = self.edges(history)
        scores = self.scores(edges, n)
        for array in (edges.neighbours, edges.values, edges.sources, scores):
            array.flags.writeable = False
        self._last.clear()
        self._last[key] = edges, scores
        return edges, scores

    def edges(self, history: Sequence[tuple[int, float]]) -> Edges:
        """The table's entries for the household's titles: (neighbour row, weighted value,
        household row) as flat arrays, gathered once per request."""
        m = self.matrix
        kept = [(row, weight) for row, weight in history if row < m.shape[0]]
        rows = np.fromiter((r for r, _ in kept), np.int64, len(kept))
        weights = np.fromiter((w for _, w in kept), np.float32, len(kept))
        starts = m.indptr[rows].astype(np.int64)
        lengths = m.indptr[rows + 1] - starts
        # Every listed entry's place in the matrix, span after span, in one gather: a
        # slice and a product per title cost more than the gathering itself.
        ends = np.cumsum(lengths)
        at = np.arange(int(ends[-1]) if len(ends) else 0, dtype=np.int64)
        at += np.repeat(starts - ends + lengths, lengths)
        val: F32 = m.data[at] * np.repeat(weights, lengths)
        return Edges(m.indices[at].astype(np.int64), val, np.repeat(rows, lengths))

    def scores(self, edges: Edges, n: int) -> F32:
        """The co-watch score of every catalog row (``n`` of them) in [0, 1] (zeros when
        nothing the household watched is in the table).

        On the table's scale, not the household's: the sum over its titles divided by
        ``full_score`` — what a title scores when each of the last ``recent`` titles
        points to it as strongly as the table's median source points to its best
        neighbour — and capped at 1. Dividing by the household's own best score instead
        made its best co-watch title score 1 however thin the evidence, so a single weak
        pair outranked what its other signals preferred (validation, ml-latest-small,
        ``--cowatch central-k3``: NDCG@10 0.0816 → 0.0849, docs/cowatch.md). Both the
        scores and ``full_score`` grow alike with the fleet's counts."""
        if len(edges.neighbours) == 0:
            return np.zeros(n, np.float32)
        out = np.bincount(edges.neighbours, edges.values, minlength=n)[:n].astype(np.float32)
        out *= np.float32(1.0 / self.full_score)
        np.minimum(out, np.float32(1.0), out=out)
        return out

    @staticmethod
    def sources(edges: Edges, targets: Sequence[int]) -> list[int | None]:
        """For each target row, the household title that most makes it a co-watch pick
        (None: none)."""
        return edges.best_sources(targets)


def typical_best(matrix: sp.csr_matrix) -> float:
    """The median over the table's sources of each one's largest entry (1.0 for an empty
    table): how strongly a typical source points to its best neighbour."""
    lengths = np.diff(matrix.indptr)
    starts = matrix.indptr[:-1][lengths > 0]
    if len(starts) == 0:
        return 1.0
    best = np.maximum.reduceat(matrix.data, starts)
    median = float(np.median(best))
    return median if median > 0 else 1.0


@dataclass(slots=True)
class _Positions:
    """Catalog order ↔ catalog rows, for one catalog and one order."""

    catalog: Catalog | None = None
    order_generation: int = -1
    row_of_position: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    position_of_key: dict[int, int] = field(default_factory=dict)


class CowatchState:
    """One brain's co-watch part: its contributions and the released table it holds."""

    def __init__(self, store: BrainStore, config: BrainConfig, sync: SyncState) -> None:
        self._store = store
        self._config = config
        self._sync = sync
        self._generation = 0  # bumped by every applied page
        #: The stored table, read once and then kept in step with every page applied.
        self._rows: dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]] | None = None
        self._positions_cache = _Positions()
        self._matrix: tuple[_Positions, int, CowatchMatrix | None] | None = None
        self._sent: set[tuple[int, int]] | None = None

    def version(self) -> int:
        """The version of the last table page applied (0: none)."""
        return self._store.cowatch.version()

    # -- positions -------------------------------------------------------------------
    def _positions(self, catalog: Catalog) -> _Positions:
        """Positions ↔ rows for this catalog and catalog order (rebuilt when either
        changes)."""
        cached = self._positions_cache
        generation = self._sync.order_generation
        if cached.catalog is catalog and cached.order_generation == generation:
            return cached
        order = self._sync.catalog_order()
        self._rows = None  # a new order dropped the stored table: read it afresh
        rows = np.full(len(order), -1, np.int64)
        position_of_key: dict[int, int] = {}
        for position, item_id in enumerate(order):
            k = catalog.key_of_id.get(item_id)
            row = None if k is None else catalog.row_of_key.get(k)
            if k is not None and row is not None:
                rows[position] = row
                position_of_key[k] = position
        self._positions_cache = _Positions(catalog, generation, rows, position_of_key)
        return self._positions_cache

    def matrix(self, catalog: Catalog) -> CowatchMatrix | None:
        """The released table over this catalog's rows (None when none is held)."""
        positions = self._positions(catalog)
        held = self._matrix
        if held is not None and held[0] is positions and held[1] == self._generation:
            return held[2]
        rows = self._table()
        matrix = (
            CowatchMatrix.build(rows, positions.row_of_position, self._config)
            if len(rows) and len(positions.row_of_position)
            else None
        )
        self._matrix = (positions, self._generation, matrix)
        return matrix

    def _table(self) -> CowatchRows:
        if self._rows is None:
            stored = self._store.cowatch.load()
            # Grouped by one stable sort (each source's neighbours in their stored order),
            # not a pass over the whole table per source: 10,000 sources took seconds.
            order = np.argsort(stored.sources, kind="stable")
            sources, starts = np.unique(stored.sources[order], return_index=True)
            neighbours = np.split(stored.neighbours[order], starts[1:])
            counts = np.split(stored.counts[order], starts[1:])
            pairs = zip(neighbours, counts, strict=True)
            self._rows = dict(zip(sources.tolist(), pairs, strict=True)) if len(order) else {}
        if not self._rows:
            empty = np.zeros(0, np.int64)
            return CowatchRows(empty, empty, np.zeros(0, np.float32))
        sources = np.fromiter(self._rows, np.int64, len(self._rows))
        lengths = np.fromiter((len(n) for n, _ in self._rows.values()), np.int64, len(sources))
        return CowatchRows(
            np.repeat(sources, lengths),
            np.concatenate([n for n, _ in self._rows.values()]),
            np.concatenate([c for _, c in self._rows.values()]),
        )

    # -- contributing ----------------------------------------------------------------
    def pairs_to_contribute(
        self, epoch: int, catalog: Catalog, limit: int | None = None
    ) -> list[tuple[int, int]]:
        """See the module docstring; [] while the brain holds no catalog order. ``limit``:
        the most the sync may send now (its privacy budget and the server's bound); the
        pairs over it stay unsent, for a later epoch."""
        config = self._config
        if epoch < 0:
            raise InputError(f"epoch must be ≥ 0, got {epoch}", param="epoch")
        if limit is not None and limit < 0:
            raise InputError(f"limit must be ≥ 0, got {limit}", param="limit")
        most = config.cowatch_pairs_per_epoch
        most = most if limit is None else min(limit, most)
        positions = self._positions(catalog).position_of_key
        table = self._store.cowatch
        already = table.sent_in(epoch)
        if already or most == 0 or not positions:
            return [(positions[a], positions[b]) for a, b in already if {a, b} <= positions.keys()]
        sent = self._sent if self._sent is not None else table.sent()
        self._sent = sent
        sequence: list[int] = []
        seen: set[int] = set()
        for key in table.engaged_keys(config.cowatch_lookback, config.cowatch_min_reward):
            if key in positions and key not in seen:
                sequence.append(key)
                seen.add(key)
        window = config.cowatch_window
        ranked = (
            likely_first(sequence, window, self._popularity(catalog))
            if config.cowatch_likely_first
            else ordered_pairs(sequence, window)
        )
        chosen = [pair for pair in ranked if pair not in sent][:most]
        if chosen:
            with self._store.transaction(durable=True) as conn:
                table.record(conn, epoch, chosen)
            sent.update(chosen)
        return [(positions[a], positions[b]) for a, b in chosen]

    def _popularity(self, catalog: Catalog) -> dict[int, float]:
        """The released popularity list by title key (titles not listed: absent)."""
        keys = catalog.key_of_id
        return {
            keys[item_id]: score
            for item_id, score in self._store.releases.popular().items()
            if item_id in keys
        }

    # -- the released table -----------------------------------------------------------
    def apply(self, version: int, rows: Sequence[tuple[int, Sequence[tuple[int, int]]]]) -> int:
        """Store a page of the released table (see ``Brain.apply_cowatch``)."""
        size = len(self._sync.catalog_order())
        if size == 0:
            raise ConfigError(
                "the brain holds no catalog order yet: fetch the codebook before co-watch rows"
            )
        _check_page(version, rows, size, self._store.cowatch.version())
        with self._store.transaction(durable=True) as conn:
            written = self._store.cowatch.apply(conn, version, rows)
        self._generation += 1
        if self._rows is not None:
            for source, neighbours in rows:
                if neighbours:
                    pos = np.fromiter((n for n, _ in neighbours), np.int64, len(neighbours))
                    cnt = np.fromiter((c for _, c in neighbours), np.float32, len(neighbours))
                    self._rows[source] = (pos, cnt)
                else:
                    self._rows.pop(source, None)
        return written


def _check_page(
    version: int, rows: Sequence[tuple[int, Sequence[tuple[int, int]]]], size: int, held: int
) -> None:
    """A clear error for a page the brain cannot apply (nothing is stored then)."""
    if version < held:
        raise InputError(
            f"co-watch version {version} is older than the one held ({held})", param="version"
        )
    for source, neighbours in rows:
        if not 0 <= source < size:
            raise InputError(
                f"co-watch source position {source} is outside the catalog of {size}",
                param="rows",
            )
        if len(neighbours) > MAX_NEIGHBOURS:
            raise InputError(
                f"co-watch source {source} lists {len(neighbours)} neighbours "
                f"(at most {MAX_NEIGHBOURS})",
                param="rows",
            )
        for position, count in neighbours:
            if not 0 <= position < size or not 0 <= count <= MAX_COUNT:
                raise InputError(
                    f"co-watch neighbour ({position}, {count}) of source {source} is outside "
                    f"the catalog of {size} or has a negative count",
                    param="rows",
                )
