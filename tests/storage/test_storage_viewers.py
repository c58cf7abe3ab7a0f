"""Viewer registry, refresh-token replay protection and the codebook, on both backends."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from storage_records import ack_all, digest, pattern, push, viewer

from omega.errors import ConflictError, InputError, ViewerRevokedError
from omega.storage import Codebook, Storage, ViewerRecord


def test_viewer_create_and_get(store: Storage) -> None:
    record = ViewerRecord("v1", "eu-west", "tv-9000", 1_700_000_000.5, client_version="0.2.0")
    store.create_viewer(record)
    assert store.get_viewer("v1") == record
    assert store.get_viewer("nobody") is None
    assert store.stats().viewers == 1


def test_creating_the_same_viewer_twice_is_idempotent(store: Storage) -> None:
    record = ViewerRecord("v1", "eu", "tv", 5.0)
    store.create_viewer(record)
    store.create_viewer(record)
    assert store.stats().viewers == 1


def test_reusing_a_viewer_id_for_another_device_conflicts(store: Storage) -> None:
    store.create_viewer(ViewerRecord("v1", "eu", "tv", 5.0))
    with pytest.raises(ConflictError, match="v1"):
        store.create_viewer(ViewerRecord("v1", "us", "phone", 6.0))
    assert store.get_viewer("v1") == ViewerRecord("v1", "eu", "tv", 5.0)


def test_refresh_token_is_single_use(store: Storage) -> None:
    viewer(store, "v1")
    viewer(store, "v2")
    assert store.use_refresh_token("jti-1", "v1", now=10.0) is True
    assert store.use_refresh_token("jti-1", "v1", now=11.0) is False  # replay
    assert store.use_refresh_token("jti-1", "v2", now=12.0) is False  # swapped to another viewer
    assert store.use_refresh_token("jti-2", "v1", now=13.0) is True


def test_refresh_token_of_unknown_viewer_is_bad_input(store: Storage) -> None:
    with pytest.raises(InputError, match="not registered"):
        store.use_refresh_token("jti-1", "ghost", now=1.0)


def _codebook(cid: str, k: int = 4, dim: int = 8, seed: int = 0) -> Codebook:
    centroids = np.random.default_rng(seed).standard_normal((k, dim)).astype("<f2")
    return Codebook(cid, dim, centroids.tobytes(), k)


def _stored(store: Storage) -> tuple[Codebook, int]:
    """The current codebook as put (the store's sequence set apart), and its sequence."""
    found = store.get_codebook()
    assert found is not None
    return dataclasses.replace(found, sequence=0), found.sequence


def test_codebook_put_get_returns_the_latest_put_each_later_in_sequence(store: Storage) -> None:
    assert store.get_codebook() is None
    first, second = _codebook("cb-1", seed=1), _codebook("cb-2", k=3, dim=384, seed=2)
    store.put_codebook(first)
    got, one = _stored(store)
    assert got == first
    store.put_codebook(second)
    got, two = _stored(store)
    assert got == second
    replaced = _codebook("cb-1", seed=3)
    store.put_codebook(replaced)  # re-publishing an id replaces it and makes it current
    got, three = _stored(store)
    assert got == replaced
    assert 0 < one < two < three  # a device refuses a codebook older than it holds


def test_codebook_with_wrong_centroid_size_is_refused(store: Storage) -> None:
    with pytest.raises(InputError, match="k \\* dim \\* 2"):
        store.put_codebook(Codebook("cb", 8, b"\x00" * 10, 4))
    assert store.get_codebook() is None


def test_viewers_are_listed_by_id_in_pages(store: Storage) -> None:
    for vid in ("v3", "v1", "v2"):
        viewer(store, vid)
    assert [v.viewer_id for v in store.list_viewers(limit=2)] == ["v1", "v2"]
    assert [v.viewer_id for v in store.list_viewers(after="v2", limit=2)] == ["v3"]
    assert store.list_viewers(after="v3", limit=2) == []


def test_a_revoked_viewer_is_left_out_and_cannot_push(store: Storage) -> None:
    viewer(store, "v1")
    viewer(store, "v2")
    assert store.revoke_viewer("ghost", now=5.0) is None
    revoked = store.revoke_viewer("v1", now=10.0)
    assert revoked is not None and revoked.revoked_at == 10.0
    again = store.revoke_viewer("v1", now=20.0)  # once: the first time stays
    assert again is not None and again.revoked_at == 10.0
    assert store.get_viewer("v1") == revoked
    assert [v.revoked_at for v in store.list_viewers(limit=5)] == [10.0, None]
    assert store.revoked_viewers() == {"v1"}
    refused = push("v1", "b1", added=[pattern("p1")])
    with pytest.raises(ViewerRevokedError, match="operator revoked"):
        store.ingest(refused, digest=digest(refused), region="eu", ack=ack_all(refused), now=30.0)
    assert store.stats().pending_contributions == 0
    allowed = push("v2", "b1", added=[pattern("p1")])
    store.ingest(allowed, digest=digest(allowed), region="eu", ack=ack_all(allowed), now=30.0)
