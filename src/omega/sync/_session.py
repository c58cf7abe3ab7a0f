"""The device's standing with its constellation, as :class:`~omega.sync.SyncClient` uses
it: who it is (credentials: registered on first use, refreshed single-flight when a
request is refused with 401) and whom it trusts (the release keys that seal answers:
configured, or pinned at registration). Every request goes through :meth:`Session.send`,
with retries and the bearer token."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from omega.brain import Brain
from omega.errors import AuthError, SignatureError
from omega.protocol import BINARY_MEDIA_TYPE, codec
from omega.protocol.attestation import DeviceIdentity
from omega.protocol.messages import Registration, RegistrationResponse, TokenRefresh
from omega.sync.cursors import Credentials, ReleasePins, load_credentials, save_credentials
from omega.sync.releases import PinnedKey, ReleaseTrust, check_release_keys, pins_from_key_list
from omega.sync.replies import decode_reply, error_for, problem_slug
from omega.sync.retry import RetryPolicy
from omega.sync.transport import Response, Transport

__all__ = ["Session"]

_UNREADABLE_PINS = (
    "the release keys this device pinned (cursor sync.release_keys) are unreadable or leave "
    "no key to trust, and it will not trust whatever key the server offers instead: "
    "configure the constellation's release key (omega sync --release-key, or "
    "SyncClient(release_keys=…)), or register this device again (delete its sync.* cursors)"
)


class Session:
    """One device's credentials and release keys, and its requests. Registration and
    token refresh are single-flight across everything the device is doing; ``refreshes``
    counts the refreshes done."""

    def __init__(
        self,
        brain: Brain,
        transport: Transport,
        *,
        region: str,
        device_model: str,
        retry: RetryPolicy,
        attestation: DeviceIdentity | None,
        release_keys: Mapping[str, bytes] | None,
    ) -> None:
        """``attestation``: the device's certificate and key, which sign its registration.
        ``release_keys``: keys configured out of band (kid → raw Ed25519 public key); they
        win over the keys registration gives."""
        self.brain = brain
        self.transport = transport
        self.region = region
        self.device_model = device_model
        self.retry = retry
        self.refreshes = 0
        self._attestation = attestation
        self._configured_keys = check_release_keys(release_keys) if release_keys else None
        self._trust: ReleaseTrust | None = None
        self._credentials: Credentials | None = None
        self._auth_lock = asyncio.Lock()
        self._trust_lock = asyncio.Lock()

    # -- credentials -------------------------------------------------------------------
    async def credentials(self) -> Credentials:
        """Stored credentials, registering this device on first use (once, however many
        calls race for it)."""
        if self._credentials is None:
            self._credentials = load_credentials(self.brain)
        if self._credentials is not None:
            return self._credentials
        async with self._auth_lock:
            if self._credentials is None:
                self._credentials = await self._register()
            return self._credentials

    async def _register(self) -> Credentials:
        registration = Registration(device_model=self.device_model, region=self.region)

        async def attempt() -> Response:
            identity = self._attestation  # signs afresh each try: replays are refused
            body = codec.encode(identity.attest(registration) if identity else registration)
            answer = await self._raw("POST", "/api/omega/viewers", body, token=None)
            if answer.status not in (200, 201):  # 200: an attested device, registered before
                raise error_for(answer)
            return answer

        reg = decode_reply(await self.retry.call(attempt), RegistrationResponse)
        creds = Credentials(reg.viewer_id, reg.access_token, reg.refresh_token)
        pins = {kid: PinnedKey(raw) for kid, raw in reg.release_keys.items()}
        # No keys (a server from before signing): none stored, so none were ever pinned.
        await asyncio.to_thread(save_credentials, self.brain, creds, release_keys=pins or None)
        return creds

    async def refresh(self, stale_access: str) -> None:
        """Trade the refresh token for a new pair, once for every caller that saw
        ``stale_access`` refused (the others find it replaced and simply retry)."""
        creds = await self.credentials()
        async with self._auth_lock:
            creds = self._credentials or creds
            if creds.access_token != stale_access:
                return
            body = codec.encode(TokenRefresh(refresh_token=creds.refresh_token))
            answer = await self._raw("POST", "/api/omega/token", body, token=None)
            if answer.status == 401 and problem_slug(answer) is not None:
                # The constellation itself refused the refresh token (spent, expired, its
                # viewer or maker's key gone): no wait heals that. Anyone else's 401/403
                # (a captive portal, a proxy) is a ServerError, tried again later.
                raise AuthError(
                    f"token refresh refused ({error_for(answer)}); this device must register "
                    "again (delete its sync.* cursors) or be given new credentials"
                )
            if answer.status != 200:
                raise error_for(answer)
            reg = decode_reply(answer, RegistrationResponse)
            fresh = Credentials(reg.viewer_id, reg.access_token, reg.refresh_token)
            await asyncio.to_thread(save_credentials, self.brain, fresh)
            self._credentials = fresh
            self.refreshes += 1

    # -- release keys ------------------------------------------------------------------
    async def release_trust(self) -> ReleaseTrust:
        """The release keys this device verifies with: configured ones, else those pinned
        at registration; plus the keys they endorsed since. A device registered before
        releases were signed (no pins ever stored) pins the server's signing key now, from
        ``GET /api/omega/release-keys`` (the same trust as a registration answer); pins
        that were stored but leave no key to trust are a :class:`SignatureError`."""
        async with self._trust_lock:
            if self._trust is None:
                pins = await asyncio.to_thread(ReleasePins.load, self.brain)
                trust = ReleaseTrust(pins, configured=self._configured_keys)
                if not trust.keys():
                    if await asyncio.to_thread(ReleasePins.stored, self.brain):
                        raise SignatureError(_UNREADABLE_PINS)
                    pins = await self._first_pins()
                    await asyncio.to_thread(ReleasePins.save, self.brain, pins)
                    trust = ReleaseTrust(pins, configured=self._configured_keys)
                self._trust = trust
            return self._trust

    async def _first_pins(self) -> dict[str, PinnedKey]:
        answer = await self.send("GET", "/api/omega/release-keys", None)
        return pins_from_key_list(answer.body)

    # -- requests ----------------------------------------------------------------------
    async def send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        *,
        accept_missing: bool = False,
        content_type: str = BINARY_MEDIA_TYPE,
    ) -> Response:
        """With retries; a 401 gets one single-flight refresh and one more try."""

        async def attempt() -> Response:
            creds = await self.credentials()
            answer = await self._raw(
                method, path, body, token=creds.access_token, content_type=content_type
            )
            if answer.status == 401:
                await self.refresh(creds.access_token)
                answer = await self._raw(
                    method, path, body, token=self._token(), content_type=content_type
                )
            if 200 <= answer.status < 300 or (accept_missing and answer.status == 404):
                return answer
            raise error_for(answer)

        return await self.retry.call(attempt)

    def _token(self) -> str:
        assert self._credentials is not None
        return self._credentials.access_token

    async def _raw(
        self,
        method: str,
        path: str,
        body: bytes | None,
        *,
        token: str | None,
        content_type: str = BINARY_MEDIA_TYPE,
    ) -> Response:
        headers = {"Accept": f"{BINARY_MEDIA_TYPE}, application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return await self.transport.request(method, path, body=body, headers=headers)
