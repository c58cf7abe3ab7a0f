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
"""

from __future__ import annotations

import msgspec

from omega.protocol.messages import SharedReport

__all__ = [
    "AggregateItem",
    "AggregateRequest",
    "AggregateResponse",
    "HelperInfo",
    "PrepareAnswer",
    "PrepareRequest",
    "PrepareResponse",
]


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
