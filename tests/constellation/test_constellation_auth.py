"""JWT per RFC 8725, ownership and admin checks, against a real server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from _constellation_harness import Device, ServerProcess
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from omega.protocol import codec
from omega.protocol.messages import PullRequest, RegistrationResponse, SyncRequest, TokenRefresh


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _server_key(server: ServerProcess, kid: str) -> ed25519.Ed25519PrivateKey:
    pem = (server.data_dir / "jwt-keys" / f"{kid}.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key


def _claims(device: Device, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "omega-constellation",
        "aud": "omega-api",
        "sub": device.viewer_id,
        "iat": now,
        "exp": now + 600,
        "jti": "forged",
        "typ": "access",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _kid(device: Device) -> str:
    kid = jwt.get_unverified_header(device.access_token)["kid"]
    assert isinstance(kid, str)
    return kid


def _signed(server: ServerProcess, device: Device, *, typ: str = "at+jwt", **changes: Any) -> str:
    """A token signed with the server's real key: accepted unless ``changes`` break it."""
    kid = _kid(device)
    return jwt.encode(
        _claims(device, **changes),
        _server_key(server, kid),
        algorithm="EdDSA",
        headers={"kid": kid, "typ": typ},
    )


def _claim_typ(server: ServerProcess, device: Device, typ: str | None) -> str:
    kid = _kid(device)
    claims = _claims(device)
    claims.pop("typ")
    if typ is not None:
        claims["typ"] = typ
    headers = {"kid": kid, "typ": "at+jwt"}
    return jwt.encode(claims, _server_key(server, kid), algorithm="EdDSA", headers=headers)


def _get_own(client: httpx.Client, device: Device, token: str) -> httpx.Response:
    return client.get(
        f"/api/omega/viewers/{device.viewer_id}", headers={"Authorization": f"Bearer {token}"}
    )


@pytest.fixture
def device(client: httpx.Client) -> Device:
    return Device.register(client)


def test_a_token_forged_with_the_real_key_is_accepted(
    server: ServerProcess, client: httpx.Client, device: Device
) -> None:
    """Control for the negative cases: the forging helper itself makes valid tokens."""
    assert _get_own(client, device, _signed(server, device)).status_code == 200


def _alg_none(server: ServerProcess, device: Device) -> str:
    header = {"alg": "none", "typ": "at+jwt", "kid": _kid(device)}
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims(device)).encode())}."


def _hs256_with_public_key(server: ServerProcess, device: Device) -> str:
    public = _server_key(server, _kid(device)).public_key()
    secret = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "at+jwt", "kid": _kid(device)}
    signing_input = (
        f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims(device)).encode())}"
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _rs256_under_the_ed25519_kid(server: ServerProcess, device: Device) -> str:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    headers = {"kid": _kid(device), "typ": "at+jwt"}
    return jwt.encode(_claims(device), other, algorithm="RS256", headers=headers)


def _other_ed25519_key(server: ServerProcess, device: Device) -> str:
    other = ed25519.Ed25519PrivateKey.generate()
    headers = {"kid": _kid(device), "typ": "at+jwt"}
    return jwt.encode(_claims(device), other, algorithm="EdDSA", headers=headers)


def _unknown_kid(server: ServerProcess, device: Device) -> str:
    headers = {"kid": "k-nobody-knows", "typ": "at+jwt"}
    return jwt.encode(_claims(device), _server_key(server, _kid(device)), "EdDSA", headers)


def _no_kid(server: ServerProcess, device: Device) -> str:
    return jwt.encode(
        _claims(device), _server_key(server, _kid(device)), "EdDSA", {"typ": "at+jwt"}
    )


def _tampered(server: ServerProcess, device: Device) -> str:
    head, _, signature = device.access_token.split(".")
    payload = _b64(json.dumps(_claims(device, sub="v_someone_else")).encode())
    return f"{head}.{payload}.{signature}"


NEGATIVE: dict[str, Any] = {
    "alg-none": _alg_none,
    "hs256-with-public-key": _hs256_with_public_key,
    "wrong-key-type-rs256": _rs256_under_the_ed25519_kid,
    "wrong-key": _other_ed25519_key,
    "unknown-kid": _unknown_kid,
    "no-kid": _no_kid,
    "tampered-payload": _tampered,
    "expired": lambda s, d: _signed(s, d, exp=int(time.time()) - 120, iat=int(time.time()) - 900),
    "wrong-aud": lambda s, d: _signed(s, d, aud="someone-else"),
    "wrong-iss": lambda s, d: _signed(s, d, iss="https://evil.example"),
    "no-exp": lambda s, d: _signed(s, d, exp=None),
    "no-aud": lambda s, d: _signed(s, d, aud=None),
    "refresh-claim-as-access": lambda s, d: _claim_typ(s, d, "refresh"),
    "no-typ-claim": lambda s, d: _claim_typ(s, d, None),
    "refresh-header-as-access": lambda s, d: _signed(s, d, typ="rt+jwt"),
    "refresh-token-as-access": lambda s, d: d.refresh_token,
    "garbage": lambda s, d: "not-a-jwt",
}


@pytest.mark.parametrize("make", NEGATIVE.values(), ids=NEGATIVE.keys())
def test_bad_tokens_are_refused_with_401(
    server: ServerProcess, client: httpx.Client, device: Device, make: Any
) -> None:
    response = _get_own(client, device, make(server, device))
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 401
    assert problem["detail"]
    assert "Traceback" not in response.text
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_missing_or_malformed_authorization_is_401(client: httpx.Client, device: Device) -> None:
    url = f"/api/omega/viewers/{device.viewer_id}"
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"Authorization": "Basic abc"}).status_code == 401


def test_a_viewer_cannot_touch_another_viewers_data(client: httpx.Client) -> None:
    alice, bob = Device.register(client), Device.register(client)
    response = client.get(f"/api/omega/viewers/{bob.viewer_id}", headers=alice.auth)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"

    pull_as_bob = SyncRequest(pull=PullRequest(viewer_id=bob.viewer_id))
    assert alice.post_frame("/api/omega/sync", codec.encode(pull_as_bob)).status_code == 403
    push_as_bob = bob.push([], codebook_id="any")
    assert alice.post_frame("/api/omega/patterns", codec.encode(push_as_bob)).status_code == 403


def _refresh(client: httpx.Client, token: str) -> httpx.Response:
    return client.post(
        "/api/omega/token",
        content=codec.encode_json(TokenRefresh(refresh_token=token)),
        headers={"Content-Type": "application/json"},
    )


def test_refresh_rotates_and_is_single_use(client: httpx.Client, device: Device) -> None:
    first = _refresh(client, device.refresh_token)
    assert first.status_code == 200, first.text
    renewed = codec.decode_json(first.content, expect=RegistrationResponse)
    assert renewed.viewer_id == device.viewer_id
    assert renewed.refresh_token != device.refresh_token
    assert _get_own(client, device, renewed.access_token).status_code == 200

    replay = _refresh(client, device.refresh_token)
    assert replay.status_code == 401
    assert "already used" in replay.json()["detail"]
    assert _refresh(client, renewed.refresh_token).status_code == 200


def test_an_access_token_cannot_refresh(client: httpx.Client, device: Device) -> None:
    assert _refresh(client, device.access_token).status_code == 401


def test_management_needs_the_admin_token(
    server: ServerProcess, client: httpx.Client, device: Device
) -> None:
    assert client.get("/api/omega/stats").status_code == 401
    assert client.get("/api/omega/stats", headers=device.auth).status_code == 401
    wrong = {"Authorization": "Bearer " + "w" * 40}
    assert client.post("/api/omega/rounds", headers=wrong).status_code == 401
    assert client.post("/api/omega/codebook", headers=device.auth, content=b"{}").status_code == 401
    assert client.get("/api/omega/stats", headers=server.admin()).status_code == 200


def test_key_rotation_keeps_old_tokens_valid(
    server: ServerProcess, client: httpx.Client, device: Device
) -> None:
    old_kid = _kid(device)
    rotated = client.post("/api/omega/keys/rotate", headers=server.admin())
    assert rotated.status_code == 200
    new_kid = rotated.json()["signing_kid"]
    assert new_kid != old_kid
    assert old_kid in rotated.json()["kids"]
    assert Path(server.data_dir / "jwt-keys" / f"{new_kid}.pem").exists()

    assert _get_own(client, device, device.access_token).status_code == 200
    fresh = Device.register(client)
    assert _kid(fresh) == new_kid
    assert _get_own(client, fresh, fresh.access_token).status_code == 200
