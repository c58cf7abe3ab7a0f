"""Attested registration on a real server: who may register, how often, and what revoking a
manufacturer key does to the identities it vouched for."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from _constellation_harness import (
    MANUFACTURER,
    Device,
    ServerProcess,
    preference,
    publish_codebook,
    run_round,
    start_server,
    trust,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from omega.clock import ManualClock
from omega.constellation import Settings, create_app
from omega.protocol import codec
from omega.protocol.attestation import DeviceIdentity, Manufacturer, registration_payload
from omega.protocol.messages import (
    Attestation,
    FrequencyReport,
    Registration,
    RegistrationResponse,
    TokenRefresh,
)
from omega.sync import AsgiTransport

JSON = {"Content-Type": "application/json"}


def _post(client: httpx.Client, registration: Registration) -> httpx.Response:
    return client.post("/api/omega/viewers", content=codec.encode_json(registration), headers=JSON)


def _problem(response: httpx.Response, status: int, slug: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/" + slug), body
    assert "Traceback" not in response.text
    return str(body["detail"])


def _tv(manufacturer: Manufacturer = MANUFACTURER, **options: object) -> DeviceIdentity:
    return manufacturer.device(uuid.uuid4().hex, model="test-tv", **options)  # type: ignore[arg-type]


def _registered(response: httpx.Response) -> RegistrationResponse:
    assert response.status_code in (200, 201), response.text
    return codec.decode_json(response.content, expect=RegistrationResponse)


# -- who may register ------------------------------------------------------------------------


def test_an_unattested_registration_is_refused_by_default(client: httpx.Client) -> None:
    detail = _problem(client.post("/api/omega/viewers"), 403, "attestation-required")
    assert "attested" in detail
    _problem(_post(client, Registration(device_model="tv")), 403, "attestation-required")


def test_an_unattested_registration_is_accepted_when_the_operator_allows_it(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path / "open", OMEGA_ALLOW_UNATTESTED="true")
    try:
        assert httpx.post(server.base_url + "/api/omega/viewers").status_code == 201
    finally:
        server.stop()


def test_an_attested_device_registers_once_and_gets_its_viewer_back(client: httpx.Client) -> None:
    tv = _tv()
    first = _post(client, tv.attest(Registration(device_model="claimed")))
    assert first.status_code == 201
    again = _post(client, tv.attest(Registration()))
    assert again.status_code == 200  # not a new identity
    viewer = _registered(first).viewer_id
    assert _registered(again).viewer_id == viewer
    token = _registered(again).access_token
    entry = client.get(f"/api/omega/viewers/{viewer}", headers={"Authorization": f"Bearer {token}"})
    assert entry.json()["device_model"] == "test-tv"  # the certificate's model, not the claim


def test_a_replayed_registration_is_refused(client: httpx.Client) -> None:
    body = codec.encode_json(_tv().attest(Registration()))
    assert client.post("/api/omega/viewers", content=body, headers=JSON).status_code == 201
    replay = client.post("/api/omega/viewers", content=body, headers=JSON)
    assert "replayed" in _problem(replay, 403, "registration-replayed")


def test_a_manufacturer_key_cannot_take_over_a_registered_tv(
    client: httpx.Client, server: ServerProcess
) -> None:
    genuine = _tv()
    first = _registered(_post(client, genuine.attest(Registration())))
    # Whoever holds the manufacturer key certifies the genuine TV's serial under a device
    # key of its own: a valid certificate, but not the key this TV registered with.
    thief = MANUFACTURER.device(genuine.certificate.device_id, model="test-tv")
    detail = _problem(_post(client, thief.attest(Registration())), 409, "device-key-conflict")
    assert "registered with another device key" in detail and "rekey" in detail
    back = _registered(_post(client, genuine.attest(Registration())))
    assert back.viewer_id == first.viewer_id  # the genuine TV is unaffected

    # The operator re-keys the device on purpose (a TV whose key really changed): its
    # next registration, under the new key, keeps the viewer; the old key is now refused.
    device = {
        "manufacturer_id": MANUFACTURER.manufacturer_id,
        "device_id": thief.certificate.device_id,
    }
    rekey = client.post("/api/omega/devices/rekey", json=device, headers=server.admin())
    assert rekey.status_code == 200 and rekey.json()["viewer_id"] == first.viewer_id
    renewed = _registered(_post(client, thief.attest(Registration())))
    assert renewed.viewer_id == first.viewer_id
    _problem(_post(client, genuine.attest(Registration())), 409, "device-key-conflict")

    unknown = {**device, "device_id": "never-registered"}
    missing = client.post("/api/omega/devices/rekey", json=unknown, headers=server.admin())
    _problem(missing, 404, "no-such-device")
    bad = client.post(
        "/api/omega/devices/rekey", json={**device, "device_id": ""}, headers=server.admin()
    )
    _problem(bad, 422, "invalid-device")
    assert client.post("/api/omega/devices/rekey", json=device).status_code == 401


def test_a_certificate_from_an_unknown_key_is_refused(client: httpx.Client) -> None:
    stranger = Manufacturer.generate("nobody-trusts-me", "k1")
    detail = _problem(
        _post(client, _tv(stranger).attest(Registration())), 403, "unknown-manufacturer-key"
    )
    assert "nobody-trusts-me/k1" in detail


def test_a_forged_certificate_is_refused(client: httpx.Client) -> None:
    # Same names as the trusted manufacturer, another key: what a forger can make.
    forger = Manufacturer(
        MANUFACTURER.manufacturer_id, MANUFACTURER.key_id, Ed25519PrivateKey.generate()
    )
    detail = _problem(_post(client, _tv(forger).attest(Registration())), 403, "attestation-refused")
    assert "not signed by manufacturer key test-maker/k1" in detail


def test_a_copied_certificate_without_the_device_key_is_refused(client: httpx.Client) -> None:
    genuine = _tv()
    thief = Ed25519PrivateKey.generate()  # has the certificate, not the device's key
    now = genuine.clock.now()
    payload = registration_payload(Registration(), now, genuine.certificate.signature)
    proof = Attestation(
        certificate=genuine.certificate, signed_at=now, signature=thief.sign(payload)
    )
    copied = Registration(attestation=proof)
    detail = _problem(_post(client, copied), 403, "attestation-refused")
    assert "not signed by the key of device" in detail


def test_expired_or_not_yet_valid_certificates_are_refused(client: httpx.Client) -> None:
    long_ago = ManualClock(1_000_000_000.0)
    old = _tv(clock=long_ago, lifetime=3600)
    stale = DeviceIdentity(old.certificate, old.key)  # signs with the wall clock
    assert "expired" in _problem(
        _post(client, stale.attest(Registration())), 403, "attestation-refused"
    )

    future = _tv(clock=ManualClock(4_000_000_000.0))
    early = DeviceIdentity(future.certificate, future.key)
    assert "not valid before" in _problem(
        _post(client, early.attest(Registration())), 403, "attestation-refused"
    )


def test_a_registration_signed_far_from_the_servers_time_is_refused(client: httpx.Client) -> None:
    tv = _tv()
    late = DeviceIdentity(tv.certificate, tv.key, ManualClock(tv.clock.now() + 3600))
    assert "set the device's clock" in _problem(
        _post(client, late.attest(Registration())), 403, "attestation-refused"
    )


def test_a_malformed_attestation_is_a_422(client: httpx.Client) -> None:
    registration = _tv().attest(Registration())
    assert registration.attestation is not None
    short = msgspec.structs.replace(registration.attestation, signature=b"\x00" * 10)
    bad = msgspec.structs.replace(registration, attestation=short)
    body = msgspec.json.encode(bad)  # the codec would refuse to build it
    response = client.post("/api/omega/viewers", content=body, headers=JSON)
    assert response.status_code == 422, response.text  # a well-formed message, out of bounds
    assert "signature must be 64 bytes" in response.json()["detail"]


# -- how often ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(
        tmp_path_factory.mktemp("limited"),
        OMEGA_REGISTRATION_RATE_LIMIT="6",
        OMEGA_MANUFACTURER_REGISTRATION_LIMIT="2",
    )
    yield server
    server.stop()


def test_out_of_the_box_a_server_limits_registrations(tmp_path: Path) -> None:
    fields = Settings.model_fields
    assert fields["allow_unattested"].default is False
    assert fields["manufacturer_registration_limit"].default == 1000
    app = create_app(Settings(data_dir=tmp_path / "data", gc_freeze=False))

    async def register_from_one_address(n: int) -> list[int]:
        async with AsgiTransport(app) as transport:
            answers = [
                await transport.request("POST", "/api/omega/viewers", body=None, headers={})
                for _ in range(n)
            ]
        return [a.status for a in answers]

    statuses = asyncio.run(register_from_one_address(31))
    assert statuses == [403] * 30 + [429]  # refused unattested, then over 30 a minute


def test_registrations_are_limited_per_manufacturer_and_per_address(
    limited: ServerProcess,
) -> None:
    other = Manufacturer.generate("other-maker", "k1")
    trust(limited, other)
    forger = Manufacturer(
        MANUFACTURER.manufacturer_id, MANUFACTURER.key_id, Ed25519PrivateKey.generate()
    )
    with httpx.Client(base_url=limited.base_url, timeout=30) as client:
        # Forged certificates do not use up the real manufacturer's budget, nor does a
        # device registering again (no new identity)…
        _problem(_post(client, _tv(forger).attest(Registration())), 403, "attestation-refused")
        first = _tv()
        assert _post(client, first.attest(Registration())).status_code == 201
        assert _post(client, first.attest(Registration())).status_code == 200
        assert _post(client, _tv().attest(Registration())).status_code == 201
        # …but its third device within the window is one too many.
        refused = _post(client, _tv().attest(Registration()))
        assert "manufacturer 'test-maker'" in _problem(refused, 429, "rate-limited")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert _post(client, _tv(other).attest(Registration())).status_code == 201
        # Six registrations from this address so far, whatever became of them: the next
        # is refused before anything is checked.
        by_address = client.post("/api/omega/viewers")
        assert "registrations from here" in _problem(by_address, 429, "rate-limited")
        assert 1 <= int(by_address.headers["retry-after"]) <= 60


# -- the admin API ---------------------------------------------------------------------------


def _add(client: httpx.Client, server: ServerProcess, doc: object) -> httpx.Response:
    return client.post("/api/omega/manufacturers", json=doc, headers=server.admin())


def test_manufacturer_keys_are_added_listed_and_validated(
    client: httpx.Client, server: ServerProcess
) -> None:
    maker = Manufacturer.generate("acme-" + uuid.uuid4().hex[:6], "2026")
    pem = maker.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    doc = {"manufacturer_id": maker.manufacturer_id, "key_id": "2026", "public_key": pem.decode()}
    added = _add(client, server, doc)
    assert added.status_code == 201, added.text
    assert added.json()["revoked_at"] is None
    assert _add(client, server, doc).status_code == 200  # the same key again
    listed = client.get("/api/omega/manufacturers", headers=server.admin()).json()["keys"]
    assert any(k["manufacturer_id"] == maker.manufacturer_id for k in listed)

    other = Manufacturer.generate("x", "y").public_key.hex()
    _problem(_add(client, server, {**doc, "public_key": other}), 409, "key-conflict")
    for bad in ("not a key", "AAAA", "-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----"):
        _problem(
            _add(client, server, {**doc, "key_id": "k-bad", "public_key": bad}), 422, "invalid-key"
        )
    for name in ("has space", "acme\n"):  # "$" would let the trailing newline through
        _problem(_add(client, server, {**doc, "manufacturer_id": name}), 422, "invalid-key")
    _problem(_add(client, server, {"manufacturer_id": "m"}), 400, "bad-request")
    bare = client.post("/api/omega/manufacturers", json=doc)
    assert bare.status_code == 401
    assert client.get("/api/omega/manufacturers").status_code == 401
    missing = client.post("/api/omega/manufacturers/acme/keys/none/revoke", headers=server.admin())
    _problem(missing, 404, "no-such-key")


# -- revocation ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of its own: the test below reads what its rounds release."""
    server = start_server(tmp_path_factory.mktemp("revocation"))
    yield server
    server.stop()


def _refresh(client: httpx.Client, token: str) -> httpx.Response:
    body = codec.encode_json(TokenRefresh(refresh_token=token))
    return client.post("/api/omega/token", content=body, headers=JSON)


def test_revoking_a_key_refuses_its_devices_and_drops_their_patterns(fresh: ServerProcess) -> None:
    leaked = Manufacturer.generate("leaky", "k1")
    trust(fresh, leaked)
    codebook = publish_codebook(fresh)
    with httpx.Client(base_url=fresh.base_url, timeout=30) as client:
        tvs = [_tv(leaked) for _ in range(3)]
        regs = [_registered(_post(client, tv.attest(Registration()))) for tv in tvs]
        devices = [Device(client, r.viewer_id, r.access_token, r.refresh_token) for r in regs]
        for device in devices:  # three "viewers" agree on a cell: enough for a release
            device.sync(device.push([preference(7, pid="sybil")], codebook_id=codebook))
        released = run_round(fresh)["result"]
        assert released["status"] == "released" and released["released"] == 1

        revoked = client.post(
            "/api/omega/manufacturers/leaky/keys/k1/revoke", headers=fresh.admin()
        )
        assert revoked.status_code == 200 and revoked.json()["devices"] == 3
        assert revoked.json()["revoked_at"] is not None
        # No new identity, no new token for the old ones…
        _problem(_post(client, _tv(leaked).attest(Registration())), 403, "manufacturer-key-revoked")
        detail = _problem(_refresh(client, regs[0].refresh_token), 401, "unauthorized")
        assert "leaky/k1" in detail and "revoked" in detail
        # …nor a push with the access tokens they still hold (valid for up to 15 minutes):
        # patterns, or popularity reports alone (which carry no viewer id once stored).
        device = devices[0]
        report = FrequencyReport(seed=7, value=1, buckets=2982, epsilon=8.0)
        pushes = [
            device.push([preference(9, pid="more")], codebook_id=codebook),
            msgspec.structs.replace(device.push([], codebook_id=codebook), reports=[report]),
        ]
        for push in pushes:
            refused = _problem(device.sync_raw(push), 403, "manufacturer-key-revoked")
            assert "leaky/k1, since revoked" in refused
        pushed = device.post_frame("/api/omega/patterns", codec.encode(pushes[0]))
        _problem(pushed, 403, "manufacturer-key-revoked")
        assert device.sync().ack is None  # pulling still works until the token expires
        # …and what they pushed leaves the release at the next round.
        after = run_round(fresh)["result"]
        assert after["released"] == 0 and after["removed"] == 1

        # A genuine device re-certified under the maker's new key comes back as itself.
        renewed = Manufacturer.generate("leaky", "k2")
        trust(fresh, renewed)
        cert = renewed.certify(
            tvs[0].key.public_key(),
            device_id=tvs[0].certificate.device_id,
            model="test-tv",
            now=tvs[0].clock.now(),
        )
        back = _registered(_post(client, DeviceIdentity(cert, tvs[0].key).attest(Registration())))
        assert back.viewer_id == regs[0].viewer_id
        assert _refresh(client, back.refresh_token).status_code == 200
