"""Signed releases against a live constellation (uvicorn on loopback), with a real man in
the middle (``_mitm``: an HTTP proxy on loopback) between it and a real device: forged,
replayed and re-signed answers are refused before anything is applied; a rotated key
reaches devices endorsed by the key they pinned."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np
import pytest
from _mitm import ManInTheMiddle, Seen
from _sync_world import K, Server, centroids, open_brain, start_server, watch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from omega.brain import DIM, Brain
from omega.clock import ManualClock
from omega.errors import SignatureError
from omega.protocol import codec, signing
from omega.protocol.messages import ConsolidatedPattern, SyncResponse
from omega.sync import HttpTransport, SyncClient, run_sync
from omega.sync.cursors import ReleasePins

FORGED = ConsolidatedPattern(
    id="forged-by-the-middle",
    task="preference",
    cells=(3,),
    success_rate=0.99,
    support=500,
    viewers=100,
    weight=1.0,
    version=1,
)


def _is_sync(seen: Seen) -> bool:
    return seen.path == "/api/omega/sync" and seen.status == 200


def _forged_reply(answer: bytes) -> bytes:
    """A valid frame (correct CRC) of the real answer with a pattern slipped in."""
    reply = codec.decode(answer, expect=SyncResponse)
    pull = msgspec.structs.replace(reply.pull, patterns=[*reply.pull.patterns, FORGED])
    return codec.encode(msgspec.structs.replace(reply, pull=pull))


def _server_keys(server: Server) -> dict[str, Any]:
    answer = httpx.get(server.base_url + "/api/omega/release-keys")
    assert answer.status_code == 200, answer.text
    keys: dict[str, Any] = answer.json()
    return keys


def _nothing_applied(tv: Brain, version_before: int) -> None:
    patterns, _ = tv.sync.collective()
    assert FORGED.id not in {p.id for p in patterns}
    assert tv.sync.release_version() == version_before


async def _through(mitm: ManInTheMiddle, tv: Brain, *, codebook: bool = True) -> Any:
    async with HttpTransport(mitm.base_url) as transport:
        client = SyncClient(tv, transport)
        if codebook:
            await client.fetch_codebook()
        return await client.sync()


@pytest.mark.parametrize("keep_seal", [False, True])
def test_a_forged_pattern_from_the_middle_is_refused_and_nothing_is_applied(
    server: Server, tmp_path: Path, keep_seal: bool
) -> None:
    clock = ManualClock()
    tv = open_brain(tmp_path / "tv", clock)

    def forge(seen: Seen) -> bytes | None:
        if not _is_sync(seen):
            return None
        forged = _forged_reply(seen.answer)
        if not keep_seal:
            return forged  # no seal at all
        # The real seal kept around the forged body, with the frame's CRC made right.
        body = codec.parts(forged)
        return codec.frame(body.body, flags=body.flags, seal=codec.parts(seen.answer).seal)

    async def scenario() -> None:
        async with (
            ManInTheMiddle(server.base_url) as mitm,
            HttpTransport(mitm.base_url) as transport,
        ):
            client = SyncClient(tv, transport)
            await client.fetch_codebook()
            watch(tv, clock, [0, 1, 2])
            before = tv.sync.release_version()
            mitm.rewrite = forge
            with pytest.raises(SignatureError, match=r"not signed|does not match"):
                await client.sync()
            assert mitm.rewritten == 1
            _nothing_applied(tv, before)
            assert tv.sync.inflight() is not None  # the push awaits a true ack

            mitm.rewrite = None
            result = await client.sync()
            assert result.resent and result.accepted == result.pushed > 0
            _nothing_applied(tv, result.version)

    asyncio.run(scenario())
    tv.close()


def test_an_older_answer_replayed_to_a_new_request_is_refused(
    server: Server, tmp_path: Path
) -> None:
    """A replay would freeze the device before a new release: it is refused, and the next
    honest answer brings the release."""
    clock = ManualClock()
    tv = open_brain(tmp_path / "tv", clock)

    async def first(mitm: ManInTheMiddle) -> bytes:
        await _through(mitm, tv)
        return next(s.answer for s in reversed(mitm.seen) if _is_sync(s))

    async def replayed(mitm: ManInTheMiddle, old: bytes) -> None:
        mitm.rewrite = lambda seen: old if _is_sync(seen) else None
        before = tv.sync.release_version()
        with pytest.raises(SignatureError, match="another request"):
            await _through(mitm, tv)
        assert mitm.rewritten == 1
        _nothing_applied(tv, before)

    async def scenario() -> None:
        async with ManInTheMiddle(server.base_url) as mitm:
            old = await first(mitm)
            released = await asyncio.to_thread(_make_release, server, tmp_path)
            await replayed(mitm, old)
            mitm.rewrite = None
            result = await _through(mitm, tv)
            assert result.version == released and result.pulled > 0

    asyncio.run(scenario())
    tv.close()


def _make_release(server: Server, tmp_path: Path) -> int:
    """Three TVs push the same taste, and a round releases it: the new version."""
    for n in range(3):
        other = open_brain(tmp_path / f"other{n}", ManualClock())
        watch(other, other.clock, [4, 5, 6])  # type: ignore[arg-type]
        run_sync(other, server.base_url)
        other.close()
    version: int = server.run_round()["version"]
    assert version >= 1
    return version


def test_an_answer_signed_by_an_unknown_key_is_refused(server: Server, tmp_path: Path) -> None:
    """The middle signs its own answers, bound to the right request: only the key is wrong."""
    evil = Ed25519PrivateKey.generate()
    tv = open_brain(tmp_path / "tv", ManualClock())

    def resign(seen: Seen) -> bytes | None:
        if not _is_sync(seen):
            return None
        forged = _forged_reply(seen.answer)
        digest = signing.request_digest(seen.request)
        return signing.seal(forged, request=digest, kid="k-evil", key=evil)

    async def scenario() -> None:
        async with ManInTheMiddle(server.base_url, rewrite=resign) as mitm:
            with pytest.raises(SignatureError, match="'k-evil', which this device does not trust"):
                await _through(mitm, tv)
        _nothing_applied(tv, 0)

    asyncio.run(scenario())
    tv.close()


def test_a_device_with_a_wrong_pinned_key_refuses_and_a_right_one_syncs(
    server: Server, tmp_path: Path
) -> None:
    """Keys configured out of band win over what registration hands out."""
    keys = _server_keys(server)
    kid = keys["signing_kid"]
    right = base64.b64decode(keys["keys"][kid])
    wrong = signing.public_bytes(Ed25519PrivateKey.generate())
    cases = [({kid: wrong}, "does not match its signature"), ({"k-other": right}, "not trust")]
    for n, (pinned, refusal) in enumerate(cases):
        tv = open_brain(tmp_path / f"tv{n}", ManualClock())
        with pytest.raises(SignatureError, match=refusal):
            run_sync(tv, server.base_url, release_keys=pinned)
        assert tv.stats()["release_version"] == 0
        tv.close()
    tv = open_brain(tmp_path / "right", ManualClock())
    assert run_sync(tv, server.base_url, release_keys={kid: right}).version >= 0
    tv.close()


def test_a_swapped_codebook_is_not_adopted(server: Server, tmp_path: Path) -> None:
    tv = open_brain(tmp_path / "tv", ManualClock())
    own = tv.codebook_id

    def swap(seen: Seen) -> bytes | None:
        if seen.path != "/api/omega/codebook" or seen.status != 200:
            return None
        doc = msgspec.json.decode(seen.answer)
        centroids = base64.b64decode(doc["centroids_f16"])
        doc["centroids_f16"] = base64.b64encode(centroids[2:] + centroids[:2]).decode()
        return msgspec.json.encode(doc)

    async def scenario() -> None:
        async with ManInTheMiddle(server.base_url, rewrite=swap) as mitm:
            with pytest.raises(SignatureError, match=r"codebook .* does not match"):
                await _through(mitm, tv)
            assert tv.codebook_id == own
            mitm.rewrite = None
            await _through(mitm, tv)
            assert tv.codebook_id != own

    asyncio.run(scenario())
    tv.close()


def test_rotation_reaches_devices_endorsed_by_the_key_they_pinned(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server")
    try:
        server.publish_codebook()
        _rotation(server, tmp_path)
    finally:
        server.stop()


def _rotate(server: Server) -> str:
    answer = httpx.post(server.base_url + "/api/omega/release-keys/rotate", headers=server.admin())
    assert answer.status_code == 200, answer.text
    kid: str = answer.json()["signing_kid"]
    return kid


def _endorsements(seen: Seen) -> list[str]:
    stamp = msgspec.msgpack.decode(codec.parts(seen.answer).seal, type=signing.Seal)
    return [e.kid for e in stamp.endorsements]


def _rotation(server: Server, tmp_path: Path) -> None:
    first = _server_keys(server)["signing_kid"]
    tv = open_brain(tmp_path / "tv", ManualClock())
    late = open_brain(tmp_path / "late", ManualClock())  # registers, then sleeps through it
    for brain in (tv, late):
        run_sync(brain, server.base_url)
        assert set(ReleasePins.load(brain)) == {first}
    assert httpx.post(server.base_url + "/api/omega/release-keys/rotate").status_code == 401
    second = _rotate(server)
    assert second != first

    async def scenario() -> None:
        async with ManInTheMiddle(server.base_url) as mitm:
            await _through(mitm, tv, codebook=False)  # sealed by the new key, endorsed
            assert _endorsements([s for s in mitm.seen if _is_sync(s)][-1]) == [second]
            await _through(mitm, tv, codebook=False)  # it names the new key: no endorsement
            assert _endorsements([s for s in mitm.seen if _is_sync(s)][-1]) == []

    asyncio.run(scenario())
    pins = ReleasePins.load(tv)
    assert pins[second].by == first and pins[first].by is None
    third = _rotate(server)  # twice rotated: the key it pinned still endorses the newest
    run_sync(late, server.base_url)  # the codebook first (endorsed), then the sync
    assert set(ReleasePins.load(late)) == {first, third}
    tv.close()
    late.close()


def test_a_device_registered_before_signing_pins_the_key_once(
    server: Server, tmp_path: Path
) -> None:
    tv = open_brain(tmp_path / "tv", ManualClock())
    run_sync(tv, server.base_url)
    pinned = ReleasePins.load(tv)
    tv.sync.set_cursors({"sync.release_keys": ""})  # as stored by an Omega before signing
    run_sync(tv, server.base_url)
    assert ReleasePins.load(tv) == pinned
    tv.close()


def test_pins_stored_but_unreadable_are_refused_not_replaced_by_the_servers_word(
    server: Server, tmp_path: Path
) -> None:
    tv = open_brain(tmp_path / "tv", ManualClock())
    run_sync(tv, server.base_url)
    (kid, pin), *_ = ReleasePins.load(tv).items()
    key = base64.b64encode(pin.public).decode()
    damaged = [
        "not json",
        "[]",
        json.dumps({kid: {"key": "not base64!"}}),
        json.dumps({kid: {"key": key[:-8]}}),  # too short a key
        json.dumps({kid: {"key": key, "by": "a-key-it-lost"}}),  # no root left
    ]
    for text in damaged:
        tv.sync.set_cursors({"sync.release_keys": text})
        with pytest.raises(SignatureError, match="will not trust whatever key the server"):
            run_sync(tv, server.base_url)
        assert tv.sync.cursor("sync.release_keys") == text  # nothing pinned in their place
    # The operator gives the key out of band: the device syncs again.
    assert run_sync(tv, server.base_url, release_keys={kid: pin.public}).version >= 0
    tv.close()


def _publish(server: Server, codebook_id: str, cells: np.ndarray) -> int:
    doc = {"codebook_id": codebook_id, "dim": DIM, "k": K, "centroids_f16": cells.tobytes()}
    answer = httpx.post(
        server.base_url + "/api/omega/codebook",
        content=msgspec.json.encode(doc),
        headers={"Content-Type": "application/json", **server.admin()},
    )
    assert answer.status_code == 201, answer.text
    sequence: int = answer.json()["sequence"]
    return sequence


def test_an_older_codebook_replayed_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server")
    try:
        _replay_codebook(server, tmp_path)
        _own_codebook_again(server, tmp_path)
    finally:
        server.stop()


def _own_codebook_again(server: Server, tmp_path: Path) -> None:
    """The server publishes the brain's own codebook under the brain's name for it (as
    ``omega bench fleet-restart`` does): nothing to adopt, and fetching it again is fine."""
    tv = open_brain(tmp_path / "own", ManualClock())
    sequence = _publish(server, tv.codebook_id, centroids().astype("<f2"))

    async def fetch_twice() -> list[bool]:
        async with HttpTransport(server.base_url) as transport:
            client = SyncClient(tv, transport)
            return [await client.fetch_codebook() for _ in range(2)]

    assert asyncio.run(fetch_twice()) == [False, False]
    assert tv.sync.cursor("sync.codebook_sequence") == str(sequence)
    tv.close()


def _replay_codebook(server: Server, tmp_path: Path) -> None:
    a = centroids().astype("<f2")
    first = _publish(server, "cb-A", a)
    tv = open_brain(tmp_path / "tv", ManualClock())
    kept: list[bytes] = []  # A's sealed document, as the server sent it
    replaying = False

    def replay(seen: Seen) -> bytes | None:
        if seen.path != "/api/omega/codebook" or seen.status != 200:
            return None
        if not kept:
            kept.append(seen.answer)
        return kept[0] if replaying else None

    cursors = ("sync.codebook_server_id", "sync.codebook_sequence", "sync.catalog_order")

    def state() -> tuple[str, list[str]]:
        return tv.codebook_id, [tv.sync.cursor(name) for name in cursors]

    async def scenario() -> None:
        nonlocal replaying
        async with (
            ManInTheMiddle(server.base_url, rewrite=replay) as mitm,
            HttpTransport(mitm.base_url) as transport,
        ):
            client = SyncClient(tv, transport)
            assert await client.fetch_codebook()  # A
            second = _publish(server, "cb-B", np.roll(a, 1, axis=0))
            assert second > first
            assert await client.fetch_codebook()  # B
            held = state()
            assert held[1][:2] == ["cb-B", str(second)]
            replaying = True  # from now on the codebook answer is A's, genuinely sealed
            with pytest.raises(SignatureError, match="older codebook, replayed"):
                await client.fetch_codebook()
            assert mitm.rewritten == 1
            assert state() == held

    asyncio.run(scenario())
    tv.close()


def test_a_server_whose_history_restarted_is_followed_to_its_codebook(
    server: Server, tmp_path: Path
) -> None:
    tv = open_brain(tmp_path / "tv", ManualClock())
    run_sync(tv, server.base_url)  # registered, the server's codebook adopted
    sequence = tv.sync.cursor("sync.codebook_sequence")
    # As if this TV had followed a longer history of this server, since restored from an
    # older backup: its release version and codebook publications count lower now.
    ahead = 10**6
    tv.sync.apply_release(version=ahead, patterns=[], removed=[], trends=[])
    tv.sync.set_cursors(
        {"sync.codebook_server_id": "cb-gone", "sync.codebook_sequence": str(ahead)}
    )

    async def scenario() -> None:
        async with HttpTransport(server.base_url) as transport:
            client = SyncClient(tv, transport)
            with pytest.raises(SignatureError, match="older codebook"):
                await client.fetch_codebook()
            # A sealed answer to this very request shows the history restarted (no replay
            # can): the TV follows it, and takes the server's codebook again.
            assert (await client.sync()).version < ahead
            assert await client.fetch_codebook()

    asyncio.run(scenario())
    assert tv.sync.cursor("sync.codebook_sequence") == sequence
    tv.close()
