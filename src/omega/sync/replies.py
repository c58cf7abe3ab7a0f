"""What an answer from the constellation means, decided without any I/O.

Success bodies are decoded strictly (a corrupt or truncated frame is a
:class:`RemoteProtocolError` and nothing from it may be applied); an answer that carries
a release is first checked by :func:`open_sealed` (a :class:`SignatureError` unless it
is a frame sealed to this very request by a trusted key); error statuses become
Omega's errors: 422 on a push → :class:`ConflictError`, 429/5xx → :class:`ServerError`
with ``retry_after`` (retryable), other 4xx → :class:`ServerError` that is not worth
retrying at once.

A 401 or 403 is an :class:`AuthError` (no wait heals it: a person must act) only when it
is the constellation's own problem document (``application/problem+json`` with an Omega
``type``) naming a refusal in :data:`LASTING_REFUSALS`. Any other 401/403 is a
:class:`ServerError` a device retries later: a captive portal's or a corporate proxy's
page, a man in the middle, a registration refused for a clock not yet set (NTP at boot)
or one signed before the clock stepped back. (A refused token *refresh* is judged by the
client: an Omega 401 there means the device must register again.)
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TypeVar

import msgspec

from omega.errors import (
    AuthError,
    ConflictError,
    OmegaError,
    PayloadTooLargeError,
    RemoteProtocolError,
    ServerError,
    SignatureError,
    TransportError,
)
from omega.protocol import BINARY_MEDIA_TYPE, codec, signing
from omega.protocol.messages import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE, Message, SyncResponse
from omega.sync.transport import Response

__all__ = [
    "LASTING_REFUSALS",
    "MAX_RESPONSE_BYTES",
    "decode_reply",
    "error_for",
    "is_retryable",
    "open_sealed",
    "parse_retry_after",
    "problem_slug",
    "read_sync_reply",
]

#: Largest answer body accepted (a pull is budgeted to a few KB; this is a safety cap).
MAX_RESPONSE_BYTES = 1 << 20
M = TypeVar("M", bound=Message)

_RETRYABLE = {408, 425, 429, 500, 502, 503, 504}

#: The constellation's refusals (problem slugs, ``omega.constellation``) that no wait can
#: heal: the device is refused for what it is, not for when or where it asked.
LASTING_REFUSALS = frozenset(
    {
        "attestation-required",  # the server registers attested TVs only; this one has none
        "unknown-manufacturer-key",  # the operator trusts no key of this TV's maker
        "manufacturer-key-revoked",  # the key that certified this TV was revoked
        "viewer-revoked",  # the operator revoked this viewer
        "not-your-viewer",  # the stored credentials are another viewer's
    }
)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        base = datetime.now(UTC).timestamp() if now is None else now
        seconds = when.timestamp() - base
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _problem(response: Response) -> tuple[str, str | None]:
    """(detail, slug) of an error answer: the slug of an Omega problem document, None for
    any other body (whose first 200 characters are the detail)."""
    media = (response.header("content-type") or "").split(";", 1)[0].strip().lower()
    try:
        problem = msgspec.json.decode(response.body)
    except msgspec.DecodeError:
        problem = None
    if isinstance(problem, dict) and isinstance(detail := problem.get("detail"), str):
        kind = problem.get("type")
        if media == PROBLEM_MEDIA_TYPE and isinstance(kind, str) and kind.startswith(PROBLEM_TYPE):
            return detail, kind.removeprefix(PROBLEM_TYPE)
        return detail, None
    text = response.body[:200].decode("utf-8", errors="replace").strip()
    return text or f"HTTP {response.status}", None


def problem_slug(response: Response) -> str | None:
    """The slug of an Omega problem answer (``rate-limited`` …); None for any other body."""
    return _problem(response)[1]


def error_for(response: Response) -> OmegaError:
    """The error an unsuccessful answer stands for."""
    detail, slug = _problem(response)
    status = response.status
    if status in (401, 403) and slug in LASTING_REFUSALS:
        return AuthError(f"the constellation refused this device ({slug}): {detail}")
    if status == 422 and slug == "idempotency-conflict":
        return ConflictError(detail)
    if status in (401, 403) and slug is None:
        detail = (
            f"{detail} (not the constellation's answer: a captive portal, proxy or "
            "firewall on the way?)"
        )
    retry_after = parse_retry_after(response.header("retry-after"))
    return ServerError(status, detail, retry_after=retry_after)


def is_retryable(error: BaseException) -> bool:
    """Network failures and overload answers are worth another try; anything else is not."""
    if isinstance(error, ServerError):
        return error.status in _RETRYABLE
    return isinstance(error, TransportError)


def decode_reply(response: Response, expect: type[M]) -> M:
    """The message in a 2xx answer; RemoteProtocolError if it is not exactly that."""
    media = (response.header("content-type") or "").split(";", 1)[0].strip().lower()
    if media == BINARY_MEDIA_TYPE:
        return codec.decode(response.body, expect=expect, max_bytes=MAX_RESPONSE_BYTES)
    if media == "application/json":
        return codec.decode_json(response.body, expect=expect, max_bytes=MAX_RESPONSE_BYTES)
    raise RemoteProtocolError(f"unexpected Content-Type {media or 'none'} in a {expect.__name__}")


def open_sealed(
    response: Response, *, request: bytes, trusted: Mapping[str, bytes]
) -> list[signing.Endorsement]:
    """Check, before anything is decoded, that ``response`` is a frame sealed by a key in
    ``trusted`` (or one it endorses) as the answer to the request frame ``request``.
    Returns the endorsements found valid (keys to pin)."""
    media = (response.header("content-type") or "").split(";", 1)[0].strip().lower()
    if media != BINARY_MEDIA_TYPE:
        raise SignatureError(
            f"the answer is {media or 'untyped'}, not a sealed {BINARY_MEDIA_TYPE} frame: "
            "this device applies only releases signed by a key it pinned"
        )
    if not trusted:
        raise SignatureError(
            "no release key is pinned: the constellation gave none at registration and none "
            "was configured (SyncClient(release_keys=…), omega sync --release-key)"
        )
    if len(response.body) > MAX_RESPONSE_BYTES:
        raise PayloadTooLargeError(
            f"body of {len(response.body)} bytes is over the {MAX_RESPONSE_BYTES} limit"
        )
    return signing.verify(response.body, request=signing.request_digest(request), trusted=trusted)


def read_sync_reply(response: Response, *, batch_id: str | None) -> SyncResponse:
    """Decode a /sync answer and check it answers what was sent."""
    reply = decode_reply(response, SyncResponse)
    if batch_id is not None:
        if reply.ack is None:
            raise RemoteProtocolError(f"the answer carries no ack for batch {batch_id}")
        if reply.ack.batch_id != batch_id:
            raise RemoteProtocolError(
                f"the answer acknowledges batch {reply.ack.batch_id}, not {batch_id}"
            )
    return reply
