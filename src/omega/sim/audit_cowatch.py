"""The co-watch part of the privacy audit: what each server could link to a TV.

Two transports record every co-watch request a TV makes — one in front of the helper,
one in front of the constellation — and :meth:`CowatchAudit.summary` counts, from the
bytes themselves:

- ``cowatch_pairs_in_clear``: requests to either server carrying a contributed pair's
  catalog positions as they are packed into a report (or the pair's OPRF input): 0;
- ``cowatch_helper_readable``: reports the helper could read with what it holds — its
  X25519 key opens none, and no tag it saw equals one computed with its OPRF key alone
  from the true pair (the tag needs the constellation's key too): 0;
- ``cowatch_leader_tagged``: requests the constellation received from an identified TV
  (bearer token) that carry any tag that TV sent to the helper: 0 — the constellation
  sees tags and, from k TVs on, pairs, but only in the helper's anonymous batches.

Beside them it counts the reports themselves: ``cowatch_reports_sent``, every report
in every request to the helper (a retried piece, or a pair re-sent from the TV's queue,
counts each time it went), and ``cowatch_reports_distinct``, the distinct (TV, tag)
among them — the most the helper can have queued, since it keeps one report per device
and tag.

The audit knows what the simulation knows (each TV's true pairs, the helper's keys); a
server knows neither, so these counts are an upper bound on what it could link.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from omega.errors import InputError
from omega.protocol import oprf
from omega.protocol.cowatch import SealedReport, open_report, pair_input
from omega.protocol.cowatch_wire import ReportRequest
from omega.sync.transport import Response, Transport

__all__ = ["CowatchAudit", "CowatchAuditTransport"]

_PAIR = struct.Struct(">II")


def _tag_with(key: bytes, pair: tuple[int, int]) -> bytes:
    r = oprf.direct((key,), pair_input(*pair))
    return hashlib.sha256(b"omega cowatch tag" + r).digest()[:16]


@dataclass(slots=True)
class CowatchAudit:
    """What TVs sent each server on the co-watch routes, by TV."""

    helper_key: X25519PrivateKey
    helper_oprf_key: bytes
    pairs: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    to_helper: dict[str, list[bytes]] = field(default_factory=dict)
    to_leader: dict[str, list[bytes]] = field(default_factory=dict)
    _tags: dict[tuple[int, int], bytes] = field(default_factory=dict)

    def record(self, tv: str, server: str, body: bytes) -> None:
        sent = self.to_helper if server == "helper" else self.to_leader
        sent.setdefault(tv, []).append(body)

    def _reports(self, tv: str) -> list[SealedReport]:
        found: list[SealedReport] = []
        for body in self.to_helper.get(tv, []):
            try:
                found.extend(msgspec.msgpack.decode(body, type=ReportRequest).reports)
            except msgspec.DecodeError:
                continue
        return found

    def summary(self) -> dict[str, Any]:
        in_clear = readable = tagged = reports = distinct = 0
        for tv, pairs in self.pairs.items():
            # A pair's OPRF input ends with its packed positions: a body holding the one
            # holds the other, so looking for the packed pairs finds both.
            needles = _Needles([_PAIR.pack(*p) for p in pairs])
            bodies = self.to_helper.get(tv, []) + self.to_leader.get(tv, [])
            in_clear += sum(1 for b in bodies if needles.found_in(b))
            sent = self._reports(tv)
            reports += len(sent)
            distinct += len({r.tag for r in sent})
            own_tags = {self._tag(p) for p in pairs}
            for report in sent:
                readable += report.tag in own_tags or _opens(report, self.helper_key)
            tags = _Needles([r.tag for r in sent])
            tagged += sum(1 for b in self.to_leader.get(tv, []) if tags.found_in(b))
        return {
            "cowatch_reports_sent": reports,
            "cowatch_reports_distinct": distinct,
            "cowatch_pairs_in_clear": in_clear,
            "cowatch_helper_readable": readable,
            "cowatch_leader_tagged": tagged,
        }

    def _tag(self, pair: tuple[int, int]) -> bytes:
        """The tag the helper's OPRF key alone gives ``pair`` (once per pair: TVs share
        pairs, and that is the point of them)."""
        tag = self._tags.get(pair)
        if tag is None:
            tag = self._tags[pair] = _tag_with(self.helper_oprf_key, pair)
        return tag


class _Needles:
    """Byte strings to look for in request bodies: ``any(n in body for n in needles)``,
    with a filter in front that makes a body holding none — every body, in an honest
    run — cost one pass over the body instead of one per needle. The filter looks up
    every 8-byte window of the body among the needles' first 8 bytes (numpy's sorted
    search); a hit is confirmed by the plain search, so the answer is the same."""

    _WINDOW = 8

    def __init__(self, needles: list[bytes]) -> None:
        self.needles = needles
        short = any(len(n) < self._WINDOW for n in needles)
        heads = {int.from_bytes(n[: self._WINDOW], "big") for n in needles}
        #: The needles' first 8 bytes, sorted (None: a needle is shorter: no filter).
        self._heads = None if short else np.array(sorted(heads), dtype=np.uint64)

    def found_in(self, body: bytes) -> bool:
        if not self.needles:
            return False
        if self._heads is not None and not self._may_hold(body):
            return False
        return any(n in body for n in self.needles)

    def _may_hold(self, body: bytes) -> bool:
        """Whether any 8-byte window of ``body`` is a needle's first 8 bytes."""
        size = self._WINDOW
        if len(body) < size:
            return False
        windows = np.concatenate(
            [
                np.frombuffer(body, dtype=">u8", count=(len(body) - o) // size, offset=o)
                for o in range(size)
            ]
        ).astype(np.uint64)
        heads = self._heads
        assert heads is not None
        at = np.minimum(np.searchsorted(heads, windows), len(heads) - 1)
        return bool((heads[at] == windows).any())


def _opens(report: SealedReport, key: X25519PrivateKey) -> bool:
    try:
        open_report(report, key)
    except InputError:
        return False
    return True


class CowatchAuditTransport:
    """Records a TV's co-watch requests to ``server`` ("helper" or "leader") for the
    audit, then sends them on."""

    def __init__(self, inner: Transport, audit: CowatchAudit, *, tv: str, server: str) -> None:
        self.inner = inner
        self.audit = audit
        self.tv = tv
        self.server = server

    async def request(
        self, method: str, path: str, *, body: bytes | None, headers: Mapping[str, str]
    ) -> Response:
        if body and "cowatch" in path:
            self.audit.record(self.tv, self.server, body)
        return await self.inner.request(method, path, body=body, headers=headers)

    async def aclose(self) -> None:
        """The inner transport is its opener's to close."""
