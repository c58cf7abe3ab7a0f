"""Messages between the constellation (leader) and the helper, msgpack on the wire.

Two requests per batch of two-server reports (``omega.protocol.shares``):

1. ``PrepareRequest``: the reports. The helper opens its shares, evaluates them, and
   answers with its share of each ``d = z − a`` (or why a report is unusable). Its
   answer does not depend on anything the leader sends, so a leader cannot probe it.
2. ``AggregateRequest``: the usable reports with the leader's shares of ``d`` and of the
   check value ``w``. The helper checks each report itself (once: a report it has
   checked is spent, accepted or not), refuses a batch with fewer valid reports than its
   minimum, and answers with which reports passed and its share of their histogram plus
   its noise. The same batch asked again gets the same answer. Nothing else leaves the
   helper.

Both servers hold one secret (hex in a file the helper writes on first start); from it
each derives the sketch check's key (:func:`verify_key`) and the leader's bearer token
(:func:`auth_token`). Reading and writing the file is each server's business.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import msgspec

from omega.errors import ConfigError, InputError
from omega.protocol.messages import SharedReport

__all__ = [
    "MSGPACK_MEDIA_TYPE",
    "AggregateItem",
    "AggregateRequest",
    "AggregateResponse",
    "BatchTooSmall",
    "HelperInfo",
    "PrepareAnswer",
    "PrepareRequest",
    "PrepareResponse",
    "auth_token",
    "new_secret",
    "parse_secret",
    "verify_key",
]

MSGPACK_MEDIA_TYPE = "application/msgpack"
"""The media type of every request and answer between the leader and the helper."""
_MIN_SECRET_BYTES = 16


class BatchTooSmall(InputError):
    """Fewer valid, never-counted reports than the helper's minimum batch (HTTP 409)."""


def verify_key(secret: bytes) -> bytes:
    """The sketch check's key, derived from the leader–helper secret."""
    return hmac.new(secret, b"omega sketch key", hashlib.sha256).digest()


def auth_token(secret: bytes) -> str:
    """The bearer token the leader presents to the helper."""
    return hmac.new(secret, b"omega helper auth", hashlib.sha256).hexdigest()


def new_secret() -> str:
    """A fresh leader–helper secret, as the hex line its file holds."""
    return secrets.token_hex(32) + "\n"


def parse_secret(text: str, *, source: str) -> bytes:
    """The secret in ``text`` (a secret file's contents; ``source`` names it in errors)."""
    try:
        secret = bytes.fromhex(text.strip())
    except ValueError:
        raise ConfigError(f"the aggregation secret in {source} is not hex") from None
    if len(secret) < _MIN_SECRET_BYTES:
        raise ConfigError(f"the aggregation secret in {source} is under {_MIN_SECRET_BYTES} bytes")
    return secret


class PrepareRequest(msgspec.Struct, frozen=True, kw_only=True):
    size: int  # the catalog size every report must be over
    reports: list[SharedReport]


class PrepareAnswer(msgspec.Struct, frozen=True, kw_only=True):
    d: int = 0  # the helper's share of d
    error: str = ""  # non-empty: the report is unusable (and why)


class PrepareResponse(msgspec.Struct, frozen=True, kw_only=True):
    answers: list[PrepareAnswer]


class AggregateItem(msgspec.Struct, frozen=True, kw_only=True):
    report: SharedReport
    d: int  # the leader's share of d
    w: int  # the leader's share of z² − z*


class AggregateRequest(msgspec.Struct, frozen=True, kw_only=True):
    size: int
    items: list[AggregateItem]


class AggregateResponse(msgspec.Struct, frozen=True, kw_only=True):
    accepted: list[bool]  # per item: counted in ``share``
    share: bytes  # the helper's share of the histogram with its noise: int64 LE per title
    noise_variance: float  # the variance per title of the noise the helper added


class HelperInfo(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /helper/v1/info``: what devices and the leader need to know."""

    public_key: bytes  # raw X25519 public key devices seal their shares to
    min_batch: int
    noise_epsilon: float
    #: The co-watch desk's bound (reports and OPRF points per TV per epoch) and epoch
    #: length (``omega.helper.cowatch``); 0 when its co-watch routes are off (or from a
    #: helper older than these fields).
    cowatch_per_epoch: int = 0
    cowatch_epoch_s: float = 0.0
