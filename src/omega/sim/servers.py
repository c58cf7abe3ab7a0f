"""The servers a simulated fleet syncs with: the constellation (in-process, or a running
``omega serve``) and, for two-server reports or the private co-watch protocol, the helper
(in-process, ``omega.helper.HelperThread``, or the remote server's)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from omega.brain.catalog import SharedCatalog
from omega.clock import ManualClock
from omega.errors import ConfigError
from omega.helper.app import info_of
from omega.helper.service import SECRET_FILE, HelperConfig, HelperService
from omega.helper.thread import HelperThread
from omega.protocol.attestation import Manufacturer
from omega.sim._server_process import ServerProcess, ServerSpec
from omega.sim.constellation import SimConstellation
from omega.sim.cowatch_private import PrivateCowatch, cowatch_desk
from omega.sim.fleet import FleetConfig
from omega.sync.transport import AsgiTransport

if TYPE_CHECKING:
    from omega.sim.simulate import SimulationOptions

__all__ = ["Servers", "counting_with", "federation", "start_helper"]

#: What a fleet syncs with: the constellation (None: local-only), the public key of the
#: helper counting its two-server reports (None: none), the private co-watch protocol.
Servers = tuple[SimConstellation | None, bytes | None, PrivateCowatch | None]


@contextlib.asynccontextmanager
async def federation(
    options: SimulationOptions,
    shared: SharedCatalog,
    root: Path,
    label: str,
    *,
    federated: bool,
    served: bool = False,
) -> AsyncIterator[Servers]:
    """The constellation a fleet syncs with (None: local-only), the public key of the
    helper that counts its two-server reports (None: no such reports) and the private
    co-watch protocol's handle (None: not this fleet's co-watch); closed on exit.
    ``served``: an in-process constellation listens on a loopback port too (its ``url``),
    for TVs replayed by engine workers in other processes."""
    if not federated:
        yield None, None, None
        return
    fleet = options.fleet
    if fleet.cowatch == "private":
        async with _private_federation(options, shared, root, label) as found:
            yield found
        return
    shared_reports = fleet.reports == "shared" and fleet.report_epsilon > 0
    helper: HelperThread | None = None
    helper_key: bytes | None = None
    constellation: SimConstellation | None = None
    try:
        if options.server is not None:
            constellation = await SimConstellation.remote(options.server, options.admin_token)
            if shared_reports:
                helper_key = await _remote_helper_key(options.helper_url)
        elif options.processes >= 2 and options.engine is None:
            # The servers beside the fleet, on the other core (omega.sim._server_process).
            constellation, helper_key = await _in_child_process(
                root, label, fleet, shared_reports=shared_reports
            )
        elif shared_reports:
            helper = start_helper(root / f"{label}-helper", fleet)
            helper_key = helper.service.info().public_key
            constellation = await SimConstellation.in_process(
                root / f"{label}-constellation",
                **counting_with(helper, root / f"{label}-helper", fleet),
                fsync=fleet.fsync,
                served=served,
            )
        else:
            constellation = await SimConstellation.in_process(
                root / f"{label}-constellation", fsync=fleet.fsync, served=served
            )
        await constellation.publish_codebook(
            shared.codebook_id, shared.centroids, shared.catalog.ids
        )
        yield constellation, helper_key, None
    finally:
        if constellation is not None:
            await constellation.close()
        if helper is not None:
            helper.stop()


async def _in_child_process(
    root: Path, label: str, fleet: FleetConfig, *, shared_reports: bool
) -> tuple[SimConstellation, bytes | None]:
    """The constellation (and the helper, for two-server reports) in a child process; the
    handle stops it when it closes."""
    spec = ServerSpec(
        root / f"{label}-constellation", root / f"{label}-helper" if shared_reports else None, fleet
    )
    servers = await ServerProcess.start(spec)
    token = (spec.constellation_dir / "admin-token").read_text().strip()
    where = "a child process (uvicorn on loopback, SQLite)"
    constellation = SimConstellation(
        servers.transport(), token, where, url=servers.url, server=servers
    )
    try:
        await constellation.trust(constellation.manufacturer)
    except BaseException:
        await constellation.close()
        raise
    return constellation, servers.helper_key


@contextlib.asynccontextmanager
async def _private_federation(
    options: SimulationOptions, shared: SharedCatalog, root: Path, label: str
) -> AsyncIterator[Servers]:
    """An in-process constellation and a helper with a co-watch desk trusting the
    simulator's manufacturer (``omega.sim.cowatch_private``)."""
    fleet = options.fleet
    if options.server is not None:
        raise ConfigError("--cowatch private runs its own helper: drop --server")
    shared_reports = fleet.reports == "shared" and fleet.report_epsilon > 0
    maker = SimConstellation.new_manufacturer()
    helper_dir = root / f"{label}-helper"
    replay = ManualClock(0.0)  # both servers' co-watch epochs follow the replay
    helper = start_helper(helper_dir, fleet, maker, replay)
    constellation: SimConstellation | None = None
    private: PrivateCowatch | None = None
    try:
        constellation = await SimConstellation.in_process(
            root / f"{label}-constellation",
            **counting_with(helper, helper_dir, fleet),
            manufacturer=maker,
            cowatch_threshold=3,
            cowatch_per_epoch=fleet.cowatch_per_epoch,
            cowatch_epoch_s=fleet.cowatch_epoch_s,
            cowatch_clock=replay,
            cowatch_dp_epsilon=fleet.cowatch_dp_epsilon,
            cowatch_dp_delta=fleet.cowatch_dp_delta,
            cowatch_spread=fleet.cowatch_spread,
            fsync=fleet.fsync,
        )
        await constellation.publish_codebook(
            shared.codebook_id, shared.centroids, shared.catalog.ids
        )
        private = PrivateCowatch.open(
            # The TVs reach the helper's app in this process, as they reach the
            # constellation's; the constellation reaches it over HTTP (its rounds).
            AsgiTransport(helper.app),
            helper_dir,
            # None: a report's cost (the brain's own default is its cowatch_epsilon)
            epsilon=fleet.cowatch_epsilon or fleet.shared_epsilon,
            clock=replay,
        )
        private.epoch_s = fleet.cowatch_epoch_s
        helper_key = helper.service.info().public_key if shared_reports else None
        yield constellation, helper_key, private
    finally:
        if private is not None:
            await private.close()
        if constellation is not None:
            await constellation.close()
        helper.stop()


def counting_with(helper: HelperThread, directory: Path, fleet: FleetConfig) -> dict[str, Any]:
    """The constellation's settings for counting two-server reports with ``helper``
    (serving from ``directory``), with the fleet's batch, noise and seed."""
    return {
        "helper_url": helper.url,
        "helper_secret_file": directory / SECRET_FILE,
        "share_min_batch": fleet.share_min_batch,
        "share_noise_epsilon": fleet.shared_epsilon,
        "share_noise_seed": fleet.seed * 2,
    }


def start_helper(
    directory: Path,
    fleet: FleetConfig,
    maker: Manufacturer | None = None,
    replay: ManualClock | None = None,
) -> HelperThread:
    """An in-process helper counting with the fleet's settings; with ``maker``, with a
    co-watch desk trusting that manufacturer, its epochs on the ``replay`` clock."""
    config = HelperConfig(
        min_batch=min(100, fleet.share_min_batch),
        noise_epsilon=fleet.shared_epsilon,
        noise_seed=fleet.seed * 2 + 1,  # --seed reproduces the counts too
    )
    service = HelperService.open(directory, config)
    desk = None
    if maker is not None:
        desk = cowatch_desk(
            directory,
            service,
            maker,
            min_batch=fleet.cowatch_min_batch,
            per_epoch=fleet.cowatch_per_epoch,
            epoch_s=fleet.cowatch_epoch_s,
            replay=replay or ManualClock(0.0),
        )
    return HelperThread(service, cowatch=desk).start()


async def _remote_helper_key(url: str | None) -> bytes:
    """The public key of the helper a remote constellation counts with."""
    if not url:
        raise ConfigError(
            "two-server reports with --server need the helper that server counts with "
            "(--helper-url), or --reports ldp"
        )
    async with httpx.AsyncClient(timeout=30.0) as client:
        try:
            answer = await client.get(url.rstrip("/") + "/helper/v1/info")
        except httpx.HTTPError as exc:
            raise ConfigError(f"the helper at {url} is unreachable: {exc}") from None
    if answer.status_code != 200:
        raise ConfigError(f"the helper at {url} answered {answer.status_code} for its key")
    return info_of(answer.content).public_key
