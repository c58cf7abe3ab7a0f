"""A TV's co-watch requests: at most 5 KB each, retried pieces counted once, and a TV on
defaults against servers on defaults sends its whole epoch with nothing refused (a real
helper over HTTP, the constellation's app in process)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _sync_world import inprocess_settings, open_brain, publish_codebook_via, trust_via

from omega.brain import BrainConfig
from omega.clock import ManualClock
from omega.constellation import create_app
from omega.constellation.settings import Settings
from omega.errors import TransportError
from omega.helper import CowatchConfig, CowatchDesk, HelperConfig, HelperService, HelperThread
from omega.helper.service import SECRET_FILE
from omega.protocol.attestation import Manufacturer
from omega.protocol.cowatch_wire import MAX_REQUEST_BYTES
from omega.sync import AsgiTransport, Contributor, HttpTransport, Response, SyncClient
from omega.sync.retry import RetryPolicy


@dataclass
class Pairs:
    """As many pairs as the brain's default bound lets a TV send an epoch."""

    pairs: list[tuple[int, int]] = field(
        default_factory=lambda: [(a, b) for a in range(40) for b in range(40) if a != b][
            : BrainConfig().cowatch_pairs_per_epoch
        ]
    )

    def pairs_to_contribute(self, epoch: int, limit: int) -> list[tuple[int, int]]:
        return self.pairs[:limit]


@dataclass
class Wire:
    """A transport that records each co-watch request's size and, with ``lose``, lets
    the first try of every such request reach the server and then loses its answer."""

    inner: Any
    lose: bool = False
    sizes: list[int] = field(default_factory=list)
    seen: set[bytes] = field(default_factory=set)

    async def request(self, method: str, path: str, **kwargs: Any) -> Response:
        answer = await self.inner.request(method, path, **kwargs)
        body = kwargs.get("body") or b""
        if "/cowatch/" not in path:
            return answer
        self.sizes.append(len(body))
        key = path.encode() + body[:64]  # the first points or reports: one piece
        if self.lose and key not in self.seen:
            self.seen.add(key)
            raise TransportError("connection reset after the request was sent")
        return answer

    async def aclose(self) -> None:
        return None


@dataclass
class Servers:
    tmp: Path
    clock: ManualClock
    maker: Manufacturer
    helper_url: str
    desk: CowatchDesk

    def settings(self) -> Settings:
        """The constellation's settings, its co-watch ones left at their defaults."""
        return inprocess_settings(  # type: ignore[no-any-return]
            self.tmp / "server",
            helper_url=self.helper_url,
            helper_secret_file=self.tmp / "helper" / SECRET_FILE,
            allow_unattested=False,
        )


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    clock = ManualClock()
    maker = Manufacturer.generate("acme", "k1")
    service = HelperService.open(tmp_path / "helper", HelperConfig(min_batch=10, noise_epsilon=0))
    # The helper's co-watch desk on its defaults (as `omega helper serve --trust-maker`).
    config = CowatchConfig(manufacturer_keys={("acme", "k1"): maker.key.public_key()})
    desk = CowatchDesk(tmp_path / "helper", service.secret, config, clock=clock)
    with HelperThread(service, cowatch=desk) as helper:
        yield Servers(tmp_path, clock, maker, helper.url, desk)


async def _no_sleep(_: float) -> None:
    return None


async def _contribute(servers: Servers, *, lose: bool) -> tuple[Any, Wire, Wire]:
    """A default TV's sync with co-watch: its result and the wires to either server."""
    retry = RetryPolicy(sleep=_no_sleep)
    async with AsgiTransport(create_app(servers.settings(), clock=servers.clock)) as app:
        await publish_codebook_via(app)
        await trust_via(app, servers.maker)
        tv = open_brain(servers.tmp / "tv", servers.clock)
        identity = servers.maker.device("SN-1", clock=servers.clock)
        to_leader = Wire(app, lose=lose)
        async with HttpTransport(servers.helper_url) as helper:
            to_helper = Wire(helper, lose=lose)
            # No epsilon given: a pair costs the brain's default cowatch_epsilon (at a
            # report's ε 4 the yearly budget would pay for 40 pairs, never an epoch).
            contributor = Contributor(helper=to_helper, identity=identity, retry=retry)
            client = SyncClient(
                tv,
                to_leader,
                attestation=identity,
                cowatch=contributor,
                cowatch_pairs=Pairs(),
                retry=retry,
            )
            await client.fetch_codebook()
            result = await client.sync()
        tv.close()
    return result, to_helper, to_leader


def _used(servers: Servers) -> dict[str, int]:
    """What each server charged the TV this epoch."""
    with sqlite3.connect(servers.tmp / "helper" / "helper-cowatch.sqlite3") as helper:
        charged = dict(helper.execute("SELECT kind, used FROM cw_usage").fetchall())
    with sqlite3.connect(servers.tmp / "server" / "constellation.db") as leader:
        charged["leader"] = leader.execute("SELECT sum(used) FROM cowatch_usage").fetchone()[0]
    return charged


def test_the_servers_defaults_accept_a_whole_epoch_of_a_tv_on_defaults() -> None:
    tv = BrainConfig().cowatch_pairs_per_epoch
    assert Settings.model_fields["cowatch_per_epoch"].default == tv
    assert CowatchConfig().per_epoch == tv


def test_a_default_tv_sends_its_epoch_in_requests_of_at_most_5_kb(servers: Servers) -> None:
    result, to_helper, to_leader = asyncio.run(_contribute(servers, lose=False))
    epoch = BrainConfig().cowatch_pairs_per_epoch
    assert result.cowatch_error is None
    assert result.cowatch_sent == epoch  # nothing refused, nothing cut by the servers
    assert servers.desk.waiting() == epoch
    assert max(to_helper.sizes) <= MAX_REQUEST_BYTES
    assert max(to_leader.sizes) <= MAX_REQUEST_BYTES
    # 128 points fit one request to either server (4.7 KB and 4.4 KB); 128 reports of
    # 196 B take several.
    assert len(to_helper.sizes) > 2 and len(to_leader.sizes) == 1
    assert _used(servers) == {"points": epoch, "reports": epoch, "leader": epoch}


def test_retried_pieces_send_nothing_twice_and_lose_nothing(servers: Servers) -> None:
    """Every piece reaches its server and loses its answer once: the retries are
    answered, charged once by either server, and each report is queued once."""
    result, to_helper, to_leader = asyncio.run(_contribute(servers, lose=True))
    epoch = BrainConfig().cowatch_pairs_per_epoch
    assert result.cowatch_error is None
    assert result.cowatch_sent == epoch
    assert servers.desk.waiting() == epoch
    assert _used(servers) == {"points": epoch, "reports": epoch, "leader": epoch}
    assert len(to_helper.seen) > 2 and len(to_leader.seen) == 1  # every piece was lost once
