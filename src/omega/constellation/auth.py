"""Viewer tokens (JWT, RFC 8725) and the admin token.

- Algorithms are pinned per key (EdDSA for Ed25519, RS256 for RSA); the token's ``alg``
  header is never trusted, so ``none`` and HMAC-with-the-public-key are refused.
- Tokens are explicitly typed twice: the ``typ`` header (``at+jwt`` / ``rt+jwt``) and a
  ``typ`` claim (``access`` / ``refresh``); an access token is never accepted where a
  refresh token is expected, nor the reverse.
- ``exp``, ``iat``, ``aud``, ``iss``, ``sub``, ``jti`` and ``typ`` are required.
- The ``kid`` header picks the verification key; an unknown kid is refused.
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import jwt

from omega.clock import Clock
from omega.constellation._keys import KeyRing
from omega.errors import AuthError, ConfigError

__all__ = ["AdminGate", "TokenKind", "TokenPair", "TokenService", "VerifiedToken"]

TokenKind = Literal["access", "refresh"]
_HEADER_TYP: dict[TokenKind, str] = {"access": "at+jwt", "refresh": "rt+jwt"}
_REQUIRED = ["exp", "iat", "aud", "iss", "sub", "jti", "typ"]
_CACHE_SIZE = 50_000


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    viewer_id: str
    jti: str
    kind: TokenKind
    expires_at: float


class TokenService:
    """Issues and verifies viewer tokens with a key ring."""

    def __init__(
        self,
        keys: KeyRing,
        *,
        issuer: str,
        audience: str,
        access_ttl: int,
        refresh_ttl: int,
        leeway: float,
        clock: Clock,
    ) -> None:
        self.keys = keys
        self._issuer = issuer
        self._audience = audience
        self._ttl: dict[TokenKind, int] = {"access": access_ttl, "refresh": refresh_ttl}
        self._leeway = leeway
        self._clock = clock
        # Signature checks cost ~0.1-0.2 ms; a device reuses one access token for many
        # requests, so remember tokens already verified (expiry is still checked each time).
        self._verified: OrderedDict[tuple[str, TokenKind], VerifiedToken] = OrderedDict()

    @property
    def access_ttl(self) -> int:
        return self._ttl["access"]

    def issue(self, viewer_id: str, kind: TokenKind) -> str:
        key = self.keys.signer
        assert key.private is not None  # the ring only picks signers with a private key
        now = int(self._clock.now())
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": viewer_id,
            "iat": now,
            "nbf": now,
            "exp": now + self._ttl[kind],
            "jti": secrets.token_urlsafe(16),
            "typ": kind,
        }
        headers = {"kid": key.kid, "typ": _HEADER_TYP[kind]}
        return jwt.encode(claims, key.private, algorithm=key.algorithm, headers=headers)

    def issue_pair(self, viewer_id: str) -> TokenPair:
        return TokenPair(
            access_token=self.issue(viewer_id, "access"),
            refresh_token=self.issue(viewer_id, "refresh"),
            expires_in=self._ttl["access"],
        )

    def verify(self, token: str, kind: TokenKind) -> VerifiedToken:
        """Return the token's subject, or raise ``AuthError`` saying what is wrong."""
        cached = self._verified.get((token, kind))
        if cached is not None:
            if self._clock.now() > cached.expires_at + self._leeway:
                del self._verified[(token, kind)]
                raise AuthError(f"{kind} token expired")
            self._verified.move_to_end((token, kind))
            return cached
        verified = self._verify_signed(token, kind)
        if kind == "access":  # refresh tokens are single use: nothing to gain
            self._verified[(token, kind)] = verified
            if len(self._verified) > _CACHE_SIZE:
                self._verified.popitem(last=False)
        return verified

    def _verify_signed(self, token: str, kind: TokenKind) -> VerifiedToken:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError(f"malformed token: {exc}") from exc
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise AuthError("token has no key id (kid)")
        key = self.keys.get(kid)
        if key is None:
            raise AuthError(f"token signed with an unknown key id {kid!r}")
        if header.get("typ") != _HEADER_TYP[kind]:
            raise AuthError(f"not {_article(kind)} {kind} token")
        try:
            claims = jwt.decode(
                token,
                key.public,
                algorithms=[key.algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                # Times are checked below against the injected clock, not PyJWT's wall clock.
                options={
                    "require": _REQUIRED,
                    "strict_aud": True,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidAudienceError as exc:
            raise AuthError("token is for another audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError("token is from another issuer") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise AuthError(f"token algorithm not allowed (expected {key.algorithm})") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"token lacks the {exc.claim!r} claim") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        self._check_times(claims, kind)
        if claims.get("typ") != kind:
            raise AuthError(f"not {_article(kind)} {kind} token")
        sub, jti = claims.get("sub"), claims.get("jti")
        if not isinstance(sub, str) or not sub or not isinstance(jti, str):
            raise AuthError("token subject or id is malformed")
        return VerifiedToken(viewer_id=sub, jti=jti, kind=kind, expires_at=float(claims["exp"]))

    def _check_times(self, claims: dict[str, object], kind: TokenKind) -> None:
        now = self._clock.now()
        times = {name: claims.get(name) for name in ("exp", "iat", "nbf")}
        for name, value in times.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise AuthError(f"token claim {name!r} must be an integer time")
        exp, iat, nbf = times["exp"], times["iat"], times["nbf"]
        assert isinstance(exp, int)
        assert isinstance(iat, int)
        if now > exp + self._leeway:
            raise AuthError(f"{kind} token expired")
        if iat > now + self._leeway or (isinstance(nbf, int) and nbf > now + self._leeway):
            raise AuthError("token is not valid yet (issued in the future)")


def _article(kind: TokenKind) -> str:
    return "an" if kind == "access" else "a"


class AdminGate:
    """Checks the management bearer token in constant time."""

    def __init__(self, token: str) -> None:
        if len(token) < 16:
            raise ConfigError("the admin token must be at least 16 characters")
        self._token = token.encode()

    def check(self, presented: str | None) -> None:
        if presented is None:
            raise AuthError("this endpoint needs the admin token")
        if not hmac.compare_digest(presented.encode(), self._token):
            raise AuthError("wrong admin token")
