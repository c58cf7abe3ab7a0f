"""A browser TV's sync with the constellation, sans-IO: what runs in Pyodide.

The page does the I/O (``fetch``); :class:`BrowserSync` makes the frame it POSTs to
``/api/omega/sync`` and opens the answer, with the protocol's own code (``omega.protocol``:
the same codec and seal checks as a TV's ``omega.sync.SyncClient``):

- :meth:`BrowserSync.request`: a :class:`SyncRequest` (the page's pull and push, a fresh
  nonce, the kids of the keys it trusts) as an :class:`Exchange`, whose ``frame``
  the page sends, and sends again unchanged on a retry (the push's batch id makes the
  server apply it once);
- :meth:`BrowserSync.open`: the answer's seal checked first (a trusted key, or one such a
  key endorses, over this very request: an old answer replayed fails), then the answer
  decoded and validated, its ack matched to the push; keys that endorsements vouched for
  are trusted from then on (:meth:`BrowserSync.keys` is what the page stores).

Anything wrong with an answer is a :class:`RemoteProtocolError` (a
:class:`SignatureError` for its seal), and nothing of it is returned.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from omega.errors import RemoteProtocolError, SignatureError
from omega.protocol import NONCE_BYTES, codec, signing
from omega.protocol.messages import PullRequest, PushRequest, SyncRequest, SyncResponse

__all__ = ["BrowserSync", "Exchange"]


@dataclass(frozen=True, slots=True)
class Exchange:
    """One sync request: the ``frame`` to POST and what its answer must match."""

    frame: bytes
    batch_id: str | None  # the push's, None when nothing is pushed


class BrowserSync:
    """A viewer's sync exchanges, and the release keys it trusts (kid → raw Ed25519)."""

    def __init__(self, trusted: Mapping[str, bytes]) -> None:
        if not trusted:
            raise SignatureError(
                "no release key to trust: give the keys the constellation's registration "
                "answer listed (RegistrationResponse.release_keys)"
            )
        self._trusted = {
            signing.check_kid(kid, "release key id"): signing.check_public_key(
                raw, f"release key {kid!r}"
            )
            for kid, raw in trusted.items()
        }

    def keys(self) -> dict[str, bytes]:
        """The keys trusted now: those given, and those endorsed by them since."""
        return dict(self._trusted)

    def request(self, pull: PullRequest, push: PushRequest | None = None) -> Exchange:
        """``pull`` and ``push`` as one sync request, with a fresh nonce and the kids of
        the keys trusted; :class:`LocalProtocolError` if either breaks a protocol rule."""
        kids = sorted(self._trusted, reverse=True)[: signing.MAX_RELEASE_KEYS]
        message = SyncRequest(
            pull=pull, push=push, nonce=secrets.token_bytes(NONCE_BYTES), release_kids=kids
        )
        return Exchange(codec.encode(message), push.batch_id if push is not None else None)

    def open(self, exchange: Exchange, answer: bytes) -> SyncResponse:
        """The answer to ``exchange``, checked: sealed for it by a trusted key, intact,
        valid, and acknowledging its push."""
        digest = signing.request_digest(exchange.frame)
        learned = signing.verify(answer, request=digest, trusted=self._trusted)
        reply = codec.decode(answer, expect=SyncResponse)
        acked = reply.ack.batch_id if reply.ack is not None else None
        if exchange.batch_id is not None and acked != exchange.batch_id:
            raise RemoteProtocolError(
                f"the answer acknowledges {acked or 'no batch'}, not the batch "
                f"{exchange.batch_id} sent"
            )
        for endorsement in learned:
            self._trusted[endorsement.kid] = endorsement.public
        return reply
