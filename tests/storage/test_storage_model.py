"""A Hypothesis state machine drives each backend against a dictionary model of the spec:
pushes (with retries and reused keys), applies in batches of any size, releases on fresh
and stale bases; after every step the live set, the release and the stats must match."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from storage_records import CODEBOOK, ack_all, digest, pattern, push, released, viewer

from omega.errors import ConflictError
from omega.protocol.messages import Pattern
from omega.storage import Storage
from omega.storage._sqlite_live import live_path

VIEWERS = ["v0", "v1", "v2"]
IDS = ["a", "b", "c", "d"]
_TABLES = ["pending", "push_batches", "released", "releases", "trends"]


def _reset(url: str) -> None:
    """Empty the contribution and release tables between examples (viewers stay)."""
    statements = [f"DELETE FROM {t}" for t in _TABLES]
    statements.append("UPDATE release_state SET version = 0")
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        with sqlite3.connect(path) as conn:
            for s in statements:
                conn.execute(s)
        with sqlite3.connect(live_path(path)) as conn:  # the SQLite live set's own file
            conn.execute("DELETE FROM live")
    else:
        with psycopg.connect(url) as conn:
            for s in [*statements, "DELETE FROM live"]:
                conn.execute(s.encode())


patterns_st = st.lists(
    st.builds(
        lambda pid, s: pattern(pid, success=s), st.sampled_from(IDS), st.sampled_from([0.7, 0.9])
    ),
    max_size=3,
    unique_by=lambda p: p.id,
)


@pytest.mark.slow
def test_backend_matches_the_model(store: Storage, storage_url: str) -> None:
    for v in VIEWERS:
        viewer(store, v)

    class Model(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            _reset(storage_url)
            self.batches: dict[tuple[str, str], str] = {}
            self.pending: list[tuple[str, str, Pattern | None]] = []
            self.live: dict[tuple[str, str], Pattern] = {}
            self.version = 0
            self.released: dict[str, float] = {}  # id → weight
            self.removed: set[str] = set()

        @rule(
            v=st.sampled_from(VIEWERS),
            batch=st.sampled_from(["b1", "b2", "b3"]),
            added=patterns_st,
            removed=st.lists(st.sampled_from(IDS), max_size=2, unique=True),
        )
        def push(self, v: str, batch: str, added: list[Pattern], removed: list[str]) -> None:
            p = push(v, batch, added=added, removed=removed)
            d = digest(p)
            known = self.batches.get((v, batch))
            if known is not None and known != d:
                with pytest.raises(ConflictError):
                    store.ingest(p, digest=d, region="eu", ack=ack_all(p), now=1.0)
                return
            assert store.ingest(p, digest=d, region="eu", ack=ack_all(p), now=1.0) == ack_all(p)
            if known is None:
                self.batches[(v, batch)] = d
                self.pending += [(v, x.id, x) for x in added] + [(v, i, None) for i in removed]

        @rule(limit=st.integers(min_value=1, max_value=6))
        def apply(self, limit: int) -> None:
            taken, self.pending = self.pending[:limit], self.pending[limit:]
            assert store.apply_pending(worker_id="w", limit=limit, now=2.0) == len(taken)
            for v, pid, p in taken:
                if p is None:
                    self.live.pop((v, pid), None)
                else:
                    self.live[(v, pid)] = p

        @rule(
            stale=st.booleans(),
            upserted=st.lists(st.sampled_from(IDS), max_size=3, unique=True),
            removed=st.lists(st.sampled_from(IDS), max_size=2, unique=True),
            weight=st.sampled_from([0.5, 2.0]),
        )
        def commit(
            self, stale: bool, upserted: list[str], removed: list[str], weight: float
        ) -> None:
            removed = [r for r in removed if r not in upserted]
            base = self.version - 1 if stale else self.version
            result = store.commit_release(
                base_version=base,
                upserted=[released(pid, weight=weight) for pid in upserted],
                removed=removed,
                trends=[],
                now=3.0,
            )
            if stale:
                assert result is None
                return
            self.version += 1
            assert result == self.version
            for pid in removed:
                if pid in self.released:
                    del self.released[pid]
                    self.removed.add(pid)
            for pid in upserted:
                self.released[pid] = weight
                self.removed.discard(pid)

        @invariant()
        def matches(self) -> None:
            live = store.live_patterns(codebook_id=CODEBOOK, updated_after=0.0)
            assert {(lp.viewer_id, lp.pattern.id): lp.pattern for lp in live} == self.live
            version, current = store.current_release()
            assert version == self.version
            assert {p.id: p.weight for p in current} == self.released
            delta = store.release_delta(since_version=0, limit=100)
            assert (delta.version, set(delta.removed)) == (self.version, self.removed)
            stats = store.stats()
            assert (stats.pending_contributions, stats.live_patterns) == (
                len(self.pending),
                len(self.live),
            )
            assert (stats.released_patterns, stats.version) == (len(self.released), self.version)

    run_state_machine_as_test(
        Model,
        settings=settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
