"""The leader's side of the helper: its settings, the HTTP client, and the connection.

Federation rounds count two-server reports through ``omega.federation.shared``, which
sees the helper only as a ``HelperClient``; this module is the I/O shell around it:
:class:`HttpHelper` posts the ``omega.protocol.aggregation`` messages to a helper served
by ``omega helper serve`` (driver errors become Omega's), and :func:`connect_helper`
builds the :class:`SharedCounting` a round takes from :class:`HelperSettings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import msgspec

from omega.errors import ConfigError, ServerError, TransportError
from omega.protocol.aggregation import (
    MSGPACK_MEDIA_TYPE,
    AggregateRequest,
    AggregateResponse,
    BatchTooSmall,
    PrepareRequest,
    PrepareResponse,
    auth_token,
    parse_secret,
)
from omega.protocol.cowatch_wire import BatchAck, ReportBatch

if TYPE_CHECKING:
    from omega.constellation.settings import Settings
    from omega.federation.cowatch import CowatchCounting
    from omega.federation.shared import SharedCounting

__all__ = [
    "HelperSettings",
    "HttpHelper",
    "connect_cowatch",
    "connect_helper",
    "helper_settings",
    "read_secret",
]


@dataclass(frozen=True, slots=True)
class HelperSettings:
    """Where rounds find the helper and how they count with it (``url`` None: two-server
    reports are not counted)."""

    url: str | None = None
    #: The secret shared with the helper (hex; the helper writes it on first start).
    secret_file: Path | None = None
    #: The fewest reports a batch may count, and the leader's noise per report.
    min_batch: int = 500
    noise_epsilon: float = 4.0
    #: Seeds the leader's noise (simulations that must reproduce); None: from the OS.
    noise_seed: int | None = None
    #: Co-watch (docs/cowatch.md): distinct TVs before a pair is read, neighbours kept
    #: per title; 0 turns the co-watch step off.
    cowatch_threshold: int = 3
    cowatch_top: int = 20
    #: Central DP on released co-watch counts (ε 0: off), and the pairs a TV sends an
    #: epoch (the mechanism's sensitivity).
    cowatch_dp_epsilon: float = 0.0
    cowatch_dp_delta: float = 1e-6
    cowatch_per_epoch: int = 128
    #: The spread rule in the release (0: off; ``omega.federation.cowatch.Ranking``).
    cowatch_spread: float = 0.0


def helper_settings(
    settings: Settings, *, url: str | None = None, secret_file: Path | None = None
) -> HelperSettings:
    """How rounds reach and count with the helper, from the constellation's settings
    (``OMEGA_*``); ``url`` and ``secret_file`` override its own (``omega worker``'s
    flags). The server's rounds and the worker's read the same, so both count alike."""
    return HelperSettings(
        url=url or settings.helper_url,
        secret_file=secret_file or settings.helper_secret_file,
        min_batch=settings.share_min_batch,
        noise_epsilon=settings.share_noise_epsilon,
        noise_seed=settings.share_noise_seed,
        cowatch_threshold=settings.cowatch_threshold,
        cowatch_top=settings.cowatch_top,
        cowatch_dp_epsilon=settings.cowatch_dp_epsilon,
        cowatch_dp_delta=settings.cowatch_dp_delta,
        cowatch_per_epoch=settings.cowatch_per_epoch,
        cowatch_spread=settings.cowatch_spread,
    )


class HttpHelper:
    """A helper reached over HTTP (``omega helper serve``)."""

    def __init__(self, url: str, token: str, *, timeout: float = 300.0) -> None:
        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Content-Type": MSGPACK_MEDIA_TYPE},
            timeout=timeout,
        )

    def _post(self, path: str, message: msgspec.Struct) -> bytes:
        try:
            answer = self._client.post(path, content=msgspec.msgpack.encode(message))
        except httpx.HTTPError as exc:
            raise TransportError(f"helper at {self._client.base_url} unreachable: {exc}") from exc
        if answer.status_code == 409:
            raise BatchTooSmall(answer.text[:300])
        if answer.status_code >= 400:
            raise ServerError(answer.status_code, answer.text[:300])
        return answer.content

    def prepare(self, request: PrepareRequest) -> PrepareResponse:
        body = self._post("/helper/v1/prepare", request)
        return msgspec.msgpack.decode(body, type=PrepareResponse)

    def aggregate(self, request: AggregateRequest) -> AggregateResponse:
        body = self._post("/helper/v1/aggregate", request)
        return msgspec.msgpack.decode(body, type=AggregateResponse)

    def cowatch_batch(self) -> ReportBatch:
        """The helper's shuffled co-watch batch (``omega.federation.cowatch``)."""
        body = self._post("/helper/v1/cowatch/batch", BatchAck(batch_id=""))
        try:
            return msgspec.msgpack.decode(body, type=ReportBatch)
        except msgspec.DecodeError as exc:
            raise ServerError(502, f"the helper's co-watch batch is malformed: {exc}") from None

    def cowatch_ack(self, batch_id: str) -> None:
        self._post("/helper/v1/cowatch/ack", BatchAck(batch_id=batch_id))

    def close(self) -> None:
        self._client.close()


def read_secret(path: Path) -> bytes:
    """The leader–helper secret from the file the helper wrote (copied to the leader)."""
    if not path.exists():
        raise ConfigError(f"no aggregation secret at {path}")
    return parse_secret(path.read_text(), source=str(path))


def connect_helper(settings: HelperSettings) -> SharedCounting | None:
    """The helper connection for two-server reports, or None when none is configured."""
    if not settings.url:
        return None
    if not settings.secret_file:
        raise ConfigError("a helper URL needs the helper secret file (helper_secret_file)")
    # Imported here: omega.federation pulls in scipy, which a serving-only process
    # (federation_interval=0, rounds in `omega worker`) never needs.
    from omega.federation.shared import SharedCounting

    secret = read_secret(Path(settings.secret_file))
    return SharedCounting(
        helper=HttpHelper(settings.url, auth_token(secret)),
        secret=secret,
        batch=max(2 * settings.min_batch, 1000),
        min_batch=settings.min_batch,
        noise_epsilon=settings.noise_epsilon,
        noise_seed=settings.noise_seed,
    )


def connect_cowatch(
    settings: HelperSettings, shares: SharedCounting | None
) -> CowatchCounting | None:
    """The co-watch step's source: the helper ``shares`` already talks to (None without
    a helper, or with ``cowatch_threshold`` 0)."""
    if shares is None or settings.cowatch_threshold == 0:
        return None
    from omega.federation.cowatch import CowatchCounting

    helper = shares.helper
    if not isinstance(helper, HttpHelper):
        return None
    from omega.federation.cowatch_dp import CowatchPrivacy

    privacy = None
    if settings.cowatch_dp_epsilon > 0:
        privacy = CowatchPrivacy(
            settings.cowatch_dp_epsilon,
            settings.cowatch_dp_delta,
            per_epoch=settings.cowatch_per_epoch,
            seed=settings.noise_seed,
        )
    return CowatchCounting(
        source=helper,
        threshold=settings.cowatch_threshold,
        top=settings.cowatch_top,
        privacy=privacy,
        spread=settings.cowatch_spread,
    )
