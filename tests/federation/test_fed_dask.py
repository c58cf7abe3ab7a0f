"""Rounds on a real Dask cluster (two worker processes on loopback): the release is the
one the local round publishes from the same store, and the cluster leaves nothing behind."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby
from pathlib import Path

import psutil
import pytest
from _engine_world import CONFIG, NOW, engine_world
from _fed_helpers import push

from omega.federation import DaskEngine, run_round
from omega.storage import Storage, open_storage


@pytest.fixture(scope="module")
def dask_engine() -> Iterator[DaskEngine]:
    engine = DaskEngine(workers=2)
    try:
        yield engine
    finally:
        engine.close()


def filled(path: Path) -> Storage:
    """A SQLite store holding the engine world's pushes (each viewer at its own time)."""
    codebook, live = engine_world()
    store = open_storage(f"sqlite:///{path}")
    store.put_codebook(codebook)
    by_viewer = groupby(sorted(live, key=lambda p: p.viewer_id), key=lambda p: p.viewer_id)
    for i, (viewer, group) in enumerate(by_viewer):
        rows = list(group)
        added = [p.pattern for p in rows]
        push(store, viewer, added=added, region=rows[0].region, now=NOW - i * 4000)
    return store


def test_a_round_on_dask_releases_what_the_local_round_releases(
    dask_engine: DaskEngine, tmp_path: Path
) -> None:
    local, remote = filled(tmp_path / "local.db"), filled(tmp_path / "dask.db")
    try:
        assert dask_engine.workers == 2
        mine = run_round(local, CONFIG, now=NOW + 60, worker_id="local")
        theirs = run_round(remote, CONFIG, now=NOW + 60, worker_id="dask", engine=dask_engine)
        assert mine.status == theirs.status == "released"
        assert mine.stats == theirs.stats and mine.stats is not None
        assert mine.stats.released > 0 and mine.stats.disputed > 0
        assert remote.current_release() == local.current_release()
        assert remote.current_trends() == local.current_trends() != []
    finally:
        local.close()
        remote.close()


def test_a_closed_local_cluster_leaves_no_process() -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    engine = DaskEngine(workers=1)
    assert engine.workers == 1
    engine.close()
    after = {p.pid for p in psutil.Process().children(recursive=True) if p.is_running()}
    assert after <= before
