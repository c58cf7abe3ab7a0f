"""Seals on frames and documents: what verifies, and every way an answer is refused."""

from __future__ import annotations

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from omega.errors import LocalProtocolError, RemoteProtocolError, SignatureError
from omega.protocol import codec, signing
from omega.protocol.messages import (
    ConsolidatedPattern,
    PullRequest,
    PullResponse,
    SyncRequest,
    SyncResponse,
    Trend,
)

OLD, NEW = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
TRUSTED = {"k1": signing.public_bytes(OLD)}
REQUEST = signing.request_digest(b"the request frame")


def _answer(patterns: int = 3) -> SyncResponse:
    pull = PullResponse(
        version=7,
        patterns=[
            ConsolidatedPattern(
                id=f"p{i}",
                task="preference",
                cells=(i,),
                success_rate=0.8,
                support=20,
                viewers=5,
                weight=1.0,
                version=7,
            )
            for i in range(patterns)
        ],
        trends=[Trend(cell=1, score=0.5)],
    )
    return SyncResponse(pull=pull)


def _sealed(msg: SyncResponse | None = None, **options: object) -> bytes:
    frame = codec.encode(msg or _answer())
    values: dict[str, object] = {"request": REQUEST, "kid": "k1", "key": OLD, **options}
    return signing.seal(frame, **values)  # type: ignore[arg-type]


def test_a_sealed_answer_verifies_and_still_decodes() -> None:
    sealed = _sealed()
    assert sealed[1] & codec.FLAG_SEALED
    assert signing.verify(sealed, request=REQUEST, trusted=TRUSTED) == []
    # The codec reads a sealed frame without checking it (a load generator does).
    assert codec.decode(sealed, expect=SyncResponse) == _answer()
    assert signing.unseal(sealed) == codec.encode(_answer())


def test_an_unsealed_frame_is_refused() -> None:
    with pytest.raises(SignatureError, match="not signed"):
        signing.verify(codec.encode(_answer()), request=REQUEST, trusted=TRUSTED)


def test_an_answer_to_another_request_is_refused() -> None:
    other = signing.request_digest(b"an older request")
    with pytest.raises(SignatureError, match="another request"):
        signing.verify(_sealed(), request=other, trusted=TRUSTED)


def test_a_forged_body_with_a_correct_checksum_is_refused() -> None:
    taken = codec.parts(_sealed())
    forged = codec.parts(codec.encode(_answer(patterns=4)))
    reframed = codec.frame(forged.body, flags=forged.flags, seal=taken.seal)
    assert codec.decode(reframed, expect=SyncResponse) == _answer(patterns=4)  # CRC is right
    with pytest.raises(SignatureError, match="does not match its signature"):
        signing.verify(reframed, request=REQUEST, trusted=TRUSTED)


def test_a_key_nobody_trusts_is_refused_by_name() -> None:
    sealed = _sealed(kid="k-stranger", key=NEW)
    with pytest.raises(SignatureError, match="'k-stranger', which this device does not trust"):
        signing.verify(sealed, request=REQUEST, trusted=TRUSTED)
    with pytest.raises(SignatureError, match="trusts: none"):
        signing.verify(sealed, request=REQUEST, trusted={})


def test_the_right_kid_with_the_wrong_key_is_refused() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        signing.verify(_sealed(kid="k1", key=NEW), request=REQUEST, trusted=TRUSTED)


def test_a_new_key_endorsed_by_a_trusted_one_is_learned() -> None:
    endorsement = signing.endorse("k2", signing.public_bytes(NEW), by="k1", key=OLD)
    sealed = _sealed(kid="k2", key=NEW, endorsements=[endorsement])
    assert signing.verify(sealed, request=REQUEST, trusted=TRUSTED) == [endorsement]


def test_endorsements_by_strangers_or_forged_ones_do_not_help() -> None:
    stranger = Ed25519PrivateKey.generate()
    by_stranger = signing.endorse("k2", signing.public_bytes(NEW), by="k9", key=stranger)
    with pytest.raises(SignatureError, match="no trusted key endorses"):
        signing.verify(
            _sealed(kid="k2", key=NEW, endorsements=[by_stranger]),
            request=REQUEST,
            trusted=TRUSTED,
        )
    # Claims to be by the trusted k1, but signed by someone else: refused outright.
    forged = signing.endorse("k2", signing.public_bytes(NEW), by="k1", key=stranger)
    with pytest.raises(SignatureError, match="endorsement of key 'k2' by 'k1'"):
        signing.verify(
            _sealed(kid="k2", key=NEW, endorsements=[forged]), request=REQUEST, trusted=TRUSTED
        )


def test_every_single_bit_flip_of_a_sealed_frame_is_refused() -> None:
    """Header, checksum, seal or body: a damaged sealed frame never verifies."""
    sealed = _sealed(_answer(patterns=1))
    for i in range(len(sealed) * 8):
        damaged = bytearray(sealed)
        damaged[i // 8] ^= 1 << (i % 8)
        with pytest.raises(RemoteProtocolError):
            signing.verify(bytes(damaged), request=REQUEST, trusted=TRUSTED)


def test_old_frame_versions_are_refused_by_name() -> None:
    sealed = _sealed()
    with pytest.raises(RemoteProtocolError, match="unsupported protocol version 1 "):
        signing.verify(bytes((1,)) + sealed[1:], request=REQUEST, trusted=TRUSTED)


def test_malformed_seals_are_refused() -> None:
    body = codec.parts(codec.encode(_answer()))
    for seal in (
        b"\xc1",
        msgspec.msgpack.encode(["k1"]),
        msgspec.msgpack.encode(["bad kid!", b"x"]),
    ):
        framed = codec.frame(body.body, flags=body.flags, seal=seal)
        with pytest.raises(SignatureError, match=r"seal is malformed|not a key id"):
            signing.verify(framed, request=REQUEST, trusted=TRUSTED)
    with pytest.raises(LocalProtocolError, match="sealed already"):
        signing.seal(_sealed(), request=REQUEST, kid="k1", key=OLD)


def test_a_key_id_is_matched_whole() -> None:
    assert signing.check_kid("k-1.2_x") == "k-1.2_x"
    for bad in ("k1\n", "\nk1", "k 1", "", "k" * 65):  # "$" would let "k1\n" through
        with pytest.raises(SignatureError, match="is not a key id"):
            signing.check_kid(bad)
    request = SyncRequest(pull=PullRequest(viewer_id="v"), nonce=b"n" * 16, release_kids=["k1\n"])
    with pytest.raises(LocalProtocolError, match="release_kids"):
        codec.encode(request)


def test_a_codebook_seal_covers_its_centroids_catalog_and_sequence() -> None:
    digest = signing.codebook_digest("cb", 2, 2, b"\x00\x3c" * 4, ["a", "b"], sequence=7)
    stamp = signing.seal_document(digest, kid="k1", key=OLD)
    assert signing.verify_document(stamp, digest, trusted=TRUSTED, what="codebook 'cb'") == []
    for changed in (
        signing.codebook_digest("cb", 2, 2, b"\x00\x3c" * 3 + b"\x00\x00", ["a", "b"], sequence=7),
        signing.codebook_digest("cb", 2, 2, b"\x00\x3c" * 4, ["b", "a"], sequence=7),
        signing.codebook_digest("cb2", 2, 2, b"\x00\x3c" * 4, ["a", "b"], sequence=7),
        signing.codebook_digest("cb", 2, 2, b"\x00\x3c" * 4, ["a", "b"], sequence=6),
    ):
        with pytest.raises(SignatureError, match="codebook 'cb' does not match"):
            signing.verify_document(stamp, changed, trusted=TRUSTED, what="codebook 'cb'")
