"""BrowserSync's decisions, on CPython (the same code runs in Pyodide: test_wasm_*)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from omega.errors import LocalProtocolError, RemoteProtocolError, SignatureError
from omega.protocol import NONCE_BYTES, codec, signing
from omega.protocol.messages import (
    Pattern,
    PullRequest,
    PullResponse,
    PushAck,
    PushRequest,
    SyncRequest,
    SyncResponse,
)
from omega.wasm import BrowserSync, Exchange

KEY = Ed25519PrivateKey.generate()
NEW = Ed25519PrivateKey.generate()
TRUSTED = {"k0": signing.public_bytes(KEY)}
PULL = PullRequest(viewer_id="v1")
PUSH = PushRequest(
    viewer_id="v1",
    batch_id="b1",
    codebook_id="cb",
    added=[Pattern(id="p1", task="preference", cells=(1,), success_rate=0.9, support=4)],
)


def _answer(
    exchange: Exchange,
    *,
    ack: str | None,
    kid: str = "k0",
    key: Ed25519PrivateKey = KEY,
    endorsements: tuple[signing.Endorsement, ...] = (),
) -> bytes:
    reply = SyncResponse(
        pull=PullResponse(version=7),
        ack=PushAck(batch_id=ack, accepted=["p1"]) if ack is not None else None,
    )
    digest = signing.request_digest(exchange.frame)
    frame = codec.encode(reply)
    return signing.seal(frame, request=digest, kid=kid, key=key, endorsements=endorsements)


def test_a_request_is_a_sync_frame_with_a_fresh_nonce_and_the_trusted_kids() -> None:
    sync = BrowserSync({**TRUSTED, "k1": signing.public_bytes(NEW)})
    first, second = sync.request(PULL, PUSH), sync.request(PULL, PUSH)
    sent = codec.decode(first.frame, expect=SyncRequest)
    assert sent.pull == PULL and sent.push == PUSH
    assert len(sent.nonce) == NONCE_BYTES
    assert sent.release_kids == ["k1", "k0"]
    assert first.batch_id == "b1"
    assert codec.decode(second.frame, expect=SyncRequest).nonce != sent.nonce


def test_an_answer_sealed_for_the_request_opens_and_teaches_endorsed_keys() -> None:
    sync = BrowserSync(TRUSTED)
    exchange = sync.request(PULL, PUSH)
    endorsement = signing.endorse("k1", signing.public_bytes(NEW), by="k0", key=KEY)
    answer = _answer(exchange, ack="b1", kid="k1", key=NEW, endorsements=(endorsement,))
    reply = sync.open(exchange, answer)
    assert reply.pull.version == 7
    assert reply.ack is not None and reply.ack.accepted == ["p1"]
    assert sync.keys() == {**TRUSTED, "k1": signing.public_bytes(NEW)}


def test_an_answer_to_another_request_is_refused() -> None:
    sync = BrowserSync(TRUSTED)
    answer = _answer(sync.request(PULL), ack=None)
    with pytest.raises(SignatureError, match="a replay"):
        sync.open(sync.request(PULL), answer)


@pytest.mark.parametrize("ack", [None, "b2"])
def test_an_answer_that_does_not_acknowledge_the_push_is_refused(ack: str | None) -> None:
    sync = BrowserSync(TRUSTED)
    exchange = sync.request(PULL, PUSH)
    with pytest.raises(RemoteProtocolError, match="not the batch b1 sent"):
        sync.open(exchange, _answer(exchange, ack=ack))


def test_keys_it_cannot_use_are_refused() -> None:
    with pytest.raises(SignatureError, match="no release key to trust"):
        BrowserSync({})
    with pytest.raises(SignatureError, match="must be 32 raw Ed25519 bytes, got 31"):
        BrowserSync({"k0": b"\x00" * 31})
    with pytest.raises(SignatureError, match="is not a key id"):
        BrowserSync({"k 0": TRUSTED["k0"]})


def test_a_push_that_breaks_a_rule_is_not_sent() -> None:
    bad = PushRequest(viewer_id="v1", batch_id="b1", codebook_id="cb", removed=["x"] * 100_000)
    with pytest.raises(LocalProtocolError):
        BrowserSync(TRUSTED).request(PULL, bad)
