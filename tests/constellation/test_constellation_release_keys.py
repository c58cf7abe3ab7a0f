"""The server's side of signed releases, on a real server: which answers are sealed, to
what, with which key; rotation, endorsements, and keys from the settings."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from _constellation_harness import (
    BINARY,
    MANUFACTURER,
    Device,
    ServerProcess,
    publish_codebook,
    start_server,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from omega.constellation._keys import RELEASE_KEYS, KeyRing
from omega.errors import ConfigError, SignatureError
from omega.protocol import codec, signing
from omega.protocol.messages import PullRequest, Registration, SyncRequest, SyncResponse


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = start_server(tmp_path_factory.mktemp("release-keys"))
    yield process
    process.stop()


def _keys(server: ServerProcess) -> tuple[str, dict[str, bytes]]:
    answer = httpx.get(server.base_url + "/api/omega/release-keys")
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    return doc["signing_kid"], {k: base64.b64decode(v) for k, v in doc["keys"].items()}


def _request(device: Device, *kids: str) -> bytes:
    pull = PullRequest(viewer_id=device.viewer_id)
    return codec.encode(SyncRequest(pull=pull, nonce=uuid.uuid4().bytes, release_kids=[*kids]))


def _stamp(frame: bytes) -> signing.Seal:
    return msgspec.msgpack.decode(codec.parts(frame).seal, type=signing.Seal)


def test_answers_are_sealed_to_their_request_with_the_key_given_at_registration(
    server: ServerProcess,
) -> None:
    kid, published = _keys(server)
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        device = Device.register(client)
        sent = _request(device, kid)
        answer = device.post_frame("/api/omega/sync", sent)
        assert answer.status_code == 200, answer.text
        trusted = {kid: published[kid]}
        signing.verify(answer.content, request=signing.request_digest(sent), trusted=trusted)
        with pytest.raises(SignatureError, match="another request"):
            signing.verify(answer.content, request=signing.UNBOUND, trusted=trusted)
        # GET /patterns is sealed too, to no request (a cache may serve it again)
        pulled = client.get("/api/omega/patterns", headers={**device.auth, "Accept": BINARY})
        signing.verify(pulled.content, request=signing.UNBOUND, trusted=trusted)
        # the JSON debug form is not sealed (devices refuse it where a release is due)
        as_json = client.post(
            "/api/omega/sync",
            content=codec.encode_json(SyncRequest(pull=PullRequest(viewer_id=device.viewer_id))),
            headers={"Content-Type": "application/json", **device.auth},
        )
        assert as_json.status_code == 200 and "seal" not in as_json.json()
    assert codec.decode(answer.content, expect=SyncResponse).pull.version >= 0


def test_registration_pins_the_signing_key_and_the_codebook_is_sealed(
    server: ServerProcess,
) -> None:
    kid, published = _keys(server)
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        device = Device.register(client)
        identity = MANUFACTURER.device(uuid.uuid4().hex, model="test-tv")
        answer = client.post(
            "/api/omega/viewers",
            content=codec.encode_json(identity.attest(Registration())),
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 201, answer.text
        assert json.loads(answer.content)["release_keys"] == {
            kid: base64.b64encode(published[kid]).decode()
        }
        publish_codebook(server)
        doc = client.get("/api/omega/codebook", headers=device.auth).json()
    raw = base64.b64decode(doc["centroids_f16"])
    digest = signing.codebook_digest(
        doc["codebook_id"], doc["dim"], doc["k"], raw, [], sequence=doc["sequence"]
    )
    stamp = msgspec.convert(doc["seal"], signing.Seal, strict=False)
    signing.verify_document(stamp, digest, trusted={kid: published[kid]}, what="the codebook")


def test_rotation_endorses_the_new_key_with_the_one_a_device_names(
    server: ServerProcess, tmp_path: Path
) -> None:
    old, published = _keys(server)
    assert httpx.post(server.base_url + "/api/omega/release-keys/rotate").status_code == 401
    rotated = httpx.post(server.base_url + "/api/omega/release-keys/rotate", headers=server.admin())
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["signing_kid"]
    assert new != old and rotated.json()["kids"] == sorted([old, new])
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        device = Device.register(client)
        naming_old = _request(device, old)
        answer = device.post_frame("/api/omega/sync", naming_old).content
        assert _stamp(answer).kid == new
        assert [(e.kid, e.by) for e in _stamp(answer).endorsements] == [(new, old)]
        learned = signing.verify(
            answer, request=signing.request_digest(naming_old), trusted={old: published[old]}
        )
        assert [e.kid for e in learned] == [new]
        naming_none = _request(device)
        bare = device.post_frame("/api/omega/sync", naming_none).content
        assert _stamp(bare).endorsements == []
        with pytest.raises(SignatureError, match="no trusted key endorses"):
            signing.verify(
                bare, request=signing.request_digest(naming_none), trusted={old: published[old]}
            )


def test_release_keys_from_the_settings(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    server = start_server(tmp_path / "server", OMEGA_RELEASE_KEYS=json.dumps({"ops-2026": pem}))
    try:
        kid, published = _keys(server)
        assert (kid, published) == ("ops-2026", {"ops-2026": signing.public_bytes(key)})
        refused = httpx.post(
            server.base_url + "/api/omega/release-keys/rotate", headers=server.admin()
        )
        assert refused.status_code == 409
        assert "OMEGA_RELEASE_KEYS" in refused.json()["detail"]
    finally:
        server.stop()
    assert not (tmp_path / "server" / "release-keys").exists()


def test_a_release_ring_takes_only_ed25519_keys() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = weak.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ConfigError, match="release key 'r1': only Ed25519"):
        KeyRing.from_pems({"r1": pem}, kind=RELEASE_KEYS)
    assert KeyRing.from_pems({"r1": pem}).signer.algorithm == "RS256"  # JWTs may use RSA
