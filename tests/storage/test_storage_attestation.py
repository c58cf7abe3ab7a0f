"""Manufacturer keys and attested devices, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading

import msgspec
import pytest
from storage_records import OpenStore, ack_all, digest, pattern, push

from omega.errors import ConflictError, RevokedError
from omega.protocol.messages import FrequencyReport
from omega.storage import AttestedDevice, ManufacturerKey, Storage, ViewerRecord

KEY = ManufacturerKey("acme", "k1", b"\x01" * 32, created_at=10.0)


def _viewer(viewer_id: str) -> ViewerRecord:
    return ViewerRecord(viewer_id, "global", "tv", created_at=20.0)


def _device(
    device_id: str, signed_at: float, key_id: str = "k1", device_key: bytes = b"\x0a" * 32
) -> AttestedDevice:
    return AttestedDevice("acme", device_id, key_id, signed_at, device_key)


def test_keys_are_added_once_listed_and_revoked(store: Storage) -> None:
    assert store.add_manufacturer_key(KEY)
    assert not store.add_manufacturer_key(KEY)  # the same key again: nothing new
    with pytest.raises(ConflictError, match="another public key"):
        store.add_manufacturer_key(ManufacturerKey("acme", "k1", b"\x02" * 32, created_at=11.0))
    store.add_manufacturer_key(ManufacturerKey("acme", "k0", b"\x03" * 32, created_at=12.0))
    assert [(k.key_id, k.revoked_at) for k in store.manufacturer_keys()] == [
        ("k0", None),
        ("k1", None),
    ]

    revoked = store.revoke_manufacturer_key("acme", "k1", now=50.0)
    assert revoked is not None and revoked.revoked_at == 50.0
    again = store.revoke_manufacturer_key("acme", "k1", now=60.0)
    assert again is not None and again.revoked_at == 50.0  # the first time stands
    assert store.revoke_manufacturer_key("acme", "nope", now=60.0) is None
    with pytest.raises(ConflictError, match="stays revoked"):
        store.add_manufacturer_key(KEY)
    found = store.get_manufacturer_key("acme", "k1")
    assert found is not None and found.public_key == KEY.public_key


def test_a_device_is_one_viewer_and_its_signature_time_only_moves_forward(store: Storage) -> None:
    store.add_manufacturer_key(KEY)
    assert store.register_device(_device("SN1", 100.0), _viewer("v_a")) == "v_a"
    # Registering again returns the same viewer, and makes no new one.
    assert store.register_device(_device("SN1", 101.0), _viewer("v_b")) == "v_a"
    assert store.get_viewer("v_b") is None
    assert store.stats().viewers == 1
    # A registration signed no later than the last one is a replay.
    assert store.register_device(_device("SN1", 101.0), _viewer("v_c")) is None
    assert store.register_device(_device("SN1", 50.0), _viewer("v_c")) is None
    assert store.register_device(_device("SN2", 100.0), _viewer("v_d")) == "v_d"
    assert [k.devices for k in store.manufacturer_keys()] == [2]


def test_a_device_stays_bound_to_its_device_key_until_the_operator_rekeys_it(
    store: Storage,
) -> None:
    store.add_manufacturer_key(KEY)
    genuine, other = b"\x0a" * 32, b"\x0b" * 32
    assert store.register_device(_device("SN1", 100.0, device_key=genuine), _viewer("v_a")) == "v_a"
    # Whoever holds the manufacturer key can certify the serial under a key of its own:
    # that certificate does not take over the viewer, and changes nothing.
    with pytest.raises(ConflictError, match="'SN1' of manufacturer 'acme' is registered with"):
        store.register_device(_device("SN1", 200.0, device_key=other), _viewer("v_x"))
    assert store.get_viewer("v_x") is None
    assert store.register_device(_device("SN1", 150.0, device_key=genuine), _viewer("v_y")) == "v_a"

    # The operator re-keys the device (its key really changed): the next registration,
    # under whichever certified key, records its key and keeps the viewer.
    assert store.rekey_device("acme", "SN1") == "v_a"
    assert store.rekey_device("acme", "nope") is None
    assert store.register_device(_device("SN1", 300.0, device_key=other), _viewer("v_z")) == "v_a"
    with pytest.raises(ConflictError, match="another device key"):
        store.register_device(_device("SN1", 400.0, device_key=genuine), _viewer("v_z"))
    assert store.stats().viewers == 1


def test_revocation_marks_the_viewers_of_that_key_until_they_re_attest(store: Storage) -> None:
    store.add_manufacturer_key(KEY)
    store.add_manufacturer_key(ManufacturerKey("acme", "k2", b"\x04" * 32, created_at=12.0))
    store.register_device(_device("SN1", 100.0), _viewer("v_1"))
    store.register_device(_device("SN2", 100.0), _viewer("v_2"))
    store.register_device(_device("SN3", 100.0, key_id="k2"), _viewer("v_3"))
    assert store.revoked_viewers() == frozenset()
    assert store.revoked_key_of("v_1") is None

    store.revoke_manufacturer_key("acme", "k1", now=200.0)
    assert store.revoked_viewers() == {"v_1", "v_2"}
    key = store.revoked_key_of("v_1")
    assert key is not None and key.key_id == "k1"
    assert store.revoked_key_of("v_3") is None

    # SN1 gets a certificate from the new key and registers again: it is in good standing.
    assert store.register_device(_device("SN1", 300.0, key_id="k2"), _viewer("v_x")) == "v_1"
    assert store.revoked_viewers() == {"v_2"}


def test_the_viewers_of_a_revoked_key_cannot_push_anything(store: Storage) -> None:
    store.add_manufacturer_key(KEY)
    store.add_manufacturer_key(ManufacturerKey("acme", "k2", b"\x04" * 32, created_at=12.0))
    store.register_device(_device("SN1", 100.0), _viewer("v_1"))
    report = FrequencyReport(seed=7, value=1, buckets=2982, epsilon=8.0)
    before = push("v_1", "b0", added=[pattern("p0")])
    store.ingest(before, digest=digest(before), region="eu", ack=ack_all(before), now=150.0)
    store.revoke_manufacturer_key("acme", "k1", now=200.0)
    # Patterns, reports alone (they carry no viewer id once stored), and a retry of a
    # batch stored before the revocation: all refused, nothing stored.
    reports_only = msgspec.structs.replace(push("v_1", "b2"), reports=[report])
    for refused in (push("v_1", "b1", added=[pattern("p1")]), reports_only, before):
        with pytest.raises(RevokedError, match="acme/k1, since revoked"):
            store.ingest(
                refused, digest=digest(refused), region="eu", ack=ack_all(refused), now=250.0
            )
    assert store.stats().pending_contributions == 1  # p0, from before the revocation
    assert store.pending_reports(limit=10) == []

    # Re-attested under the maker's new key, the device pushes again.
    store.register_device(_device("SN1", 300.0, key_id="k2"), _viewer("v_x"))
    again = push("v_1", "b3", added=[pattern("p3")])
    assert store.ingest(again, digest=digest(again), region="eu", ack=ack_all(again), now=350.0)


def test_concurrent_first_registrations_of_one_device_make_one_viewer(
    open_store: OpenStore,
) -> None:
    first = open_store()
    first.add_manufacturer_key(KEY)
    stores = [first, *(open_store() for _ in range(3))]
    results: list[str | None] = [None] * len(stores)
    barrier = threading.Barrier(len(stores))

    def register(n: int) -> None:
        barrier.wait()
        results[n] = stores[n].register_device(_device("SN9", 100.0 + n), _viewer(f"v_{n}"))

    threads = [threading.Thread(target=register, args=(n,)) for n in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert first.stats().viewers == 1
    winners = {r for r in results if r is not None}
    assert len(winners) == 1  # every accepted registration names the one viewer
