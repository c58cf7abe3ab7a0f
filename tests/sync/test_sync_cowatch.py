"""Private co-watch end to end: attested TVs contribute pairs through a real helper (HTTP,
uvicorn thread), the constellation's round reads the pairs k distinct TVs sent and
releases per-title neighbours, and TVs pull them in pages of at most 5 KB."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
from _sync_world import (
    ADMIN_TOKEN,
    inprocess_settings,
    open_brain,
    publish_codebook_via,
    run_round_via,
    trust_via,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from omega.clock import ManualClock
from omega.constellation import create_app
from omega.helper import CowatchConfig, CowatchDesk, HelperConfig, HelperService, HelperThread
from omega.helper.service import SECRET_FILE
from omega.protocol import oprf
from omega.protocol.aggregation import MSGPACK_MEDIA_TYPE
from omega.protocol.attestation import DeviceIdentity, Manufacturer
from omega.protocol.cowatch import SealedReport, make_report, pair_input, seal_report
from omega.protocol.cowatch_wire import (
    CowatchInfo,
    OprfPoints,
    OprfRequest,
    OprfResponse,
    ReportRequest,
    ReportResponse,
    prove,
)
from omega.sync import AsgiTransport, Contributor, HttpTransport, Response, SyncClient
from omega.sync.cowatch import Rows
from omega.sync.cursors import CatalogOrder

PAIR = (3, 7)
WEEK = 7 * 86_400.0


@dataclass
class Pairs:
    pairs: list[tuple[int, int]]

    def pairs_to_contribute(self, epoch: int, limit: int) -> list[tuple[int, int]]:
        return list(self.pairs)[:limit]


@dataclass
class Table:
    rows: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    pages: int = 0

    def apply_cowatch(self, version: int, rows: Rows) -> None:
        self.pages += 1
        for source, neighbours in rows:
            self.rows[source] = neighbours


@dataclass
class World:
    tmp: Path
    clock: ManualClock
    maker: Manufacturer
    helper_url: str
    desk: CowatchDesk

    def settings(self, **overrides: Any) -> Any:
        values = {
            "helper_url": self.helper_url,
            "helper_secret_file": self.tmp / "helper" / SECRET_FILE,
            "share_min_batch": 10,
            "share_noise_epsilon": 0.0,
            "cowatch_per_epoch": 4,
            "allow_unattested": False,
        }
        return inprocess_settings(self.tmp / "server", **{**values, **overrides})

    def device(self, n: int) -> DeviceIdentity:
        return self.maker.device(f"SN-{n}", clock=self.clock)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = ManualClock()
    maker = Manufacturer.generate("acme", "k1")
    service = HelperService.open(tmp_path / "helper", HelperConfig(min_batch=10, noise_epsilon=0))
    config = CowatchConfig(
        per_epoch=4,
        epoch_s=WEEK,
        min_batch=1,
        min_devices=1,
        manufacturer_keys={("acme", "k1"): maker.key.public_key()},
    )
    desk = CowatchDesk(tmp_path / "helper", service.secret, config, clock=clock)
    with HelperThread(service, cowatch=desk) as helper:
        yield World(tmp_path, clock, maker, helper.url, desk)


async def _contribute(
    world: World, transport: AsgiTransport, n: int, pairs: list[tuple[int, int]]
) -> Any:
    tv = open_brain(world.tmp / f"tv{n}", world.clock)
    async with HttpTransport(world.helper_url) as helper:
        contributor = Contributor(helper=helper, identity=world.device(n))
        client = SyncClient(
            tv,
            transport,
            attestation=world.device(n),
            cowatch=contributor,
            cowatch_pairs=Pairs(pairs),
        )
        await client.fetch_codebook()
        result = await client.sync()
    tv.close()
    return result


async def _start(world: World, transport: AsgiTransport) -> None:
    await publish_codebook_via(transport)
    await trust_via(transport, world.maker)


def _db(world: World) -> sqlite3.Connection:
    return sqlite3.connect(world.tmp / "server" / "constellation.db")


@dataclass
class Recording:
    """A transport that records the size of every ``/sync`` answer."""

    inner: AsgiTransport
    sizes: list[int] = field(default_factory=list)

    async def request(self, method: str, path: str, **kwargs: Any) -> Response:
        answer = await self.inner.request(method, path, **kwargs)
        if path == "/api/omega/sync":
            self.sizes.append(len(answer.body))
        return answer

    async def aclose(self) -> None:
        return None


async def _pull_rows(
    world: World, transport: AsgiTransport, name: str
) -> tuple[Table, list[int], int]:
    """A new TV pulling until nothing is left: its table, each answer's size, its syncs."""
    tv = open_brain(world.tmp / name, world.clock)
    table = Table()
    recording = Recording(transport)
    client = SyncClient(tv, recording, cowatch_table=table, attestation=world.device(99))
    await client.fetch_codebook()
    syncs = 0
    while syncs < 200:
        syncs += 1
        if not (await client.sync()).more:
            break
    tv.close()
    return table, recording.sizes, syncs


def test_three_attested_tvs_release_a_pair_with_count_three(world: World) -> None:
    async def scenario() -> None:
        async with AsgiTransport(create_app(world.settings(), clock=world.clock)) as transport:
            await _start(world, transport)
            for n in range(3):
                result = await _contribute(world, transport, n, [PAIR, (5, 9)][: 1 + n % 2])
                assert result.cowatch_error is None and result.cowatch_sent >= 1
            round_ = (await run_round_via(transport))["result"]
            assert round_["cowatch_rows"] == 1  # (5, 9) came from one TV only
            table, _, _ = await _pull_rows(world, transport, "fresh")
            assert table.rows == {3: [(7, 3)]}

    asyncio.run(scenario())
    db = _db(world)
    assert db.execute("SELECT a, b, tvs FROM cowatch_pairs").fetchall() == [(3, 7, 3)]
    db.close()


def test_omega_worker_runs_the_cowatch_step_of_a_server_that_runs_no_rounds(
    world: World,
) -> None:
    """Rounds in `omega worker` (the server's federation interval 0) fold the helper's
    co-watch batches and release what three TVs sent, as the server's own rounds do."""
    app = create_app(world.settings(), clock=world.clock)

    async def contribute() -> None:
        async with AsgiTransport(app) as transport:
            await _start(world, transport)
            for n in range(3):
                result = await _contribute(world, transport, n, [PAIR])
                assert result.cowatch_error is None and result.cowatch_sent == 1

    asyncio.run(contribute())
    env = {
        **os.environ,
        "OMEGA_SHARE_MIN_BATCH": "10",
        "OMEGA_SHARE_NOISE_EPSILON": "0",
        "OMEGA_COWATCH_PER_EPOCH": "4",
    }
    db = f"sqlite:///{world.tmp / 'server' / 'constellation.db'}"
    secret = world.tmp / "helper" / SECRET_FILE
    command = [sys.executable, "-m", "omega.cli", "worker", "--once", "--json", "--db", db]
    command += ["--helper-url", world.helper_url, "--helper-secret-file", str(secret)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    assert row["cowatch_rows"] == 1 and "cowatch_error" not in row
    assert world.desk.waiting() == 0  # the batch was handed out and acknowledged

    async def pull() -> None:
        async with AsgiTransport(app) as transport:
            table, _, _ = await _pull_rows(world, transport, "fresh")
            assert table.rows == {3: [(7, 3)]}

    asyncio.run(pull())


def test_two_tvs_release_nothing_and_the_store_holds_no_readable_pair(world: World) -> None:
    async def scenario() -> None:
        async with AsgiTransport(create_app(world.settings(), clock=world.clock)) as transport:
            await _start(world, transport)
            for n in range(2):
                await _contribute(world, transport, n, [PAIR])
            assert (await run_round_via(transport))["result"]["cowatch_rows"] == 0
            table, _, _ = await _pull_rows(world, transport, "fresh")
            assert table.rows == {}

    asyncio.run(scenario())
    db = _db(world)
    assert db.execute("SELECT count(*) FROM cowatch_shares").fetchone()[0] == 2
    assert db.execute("SELECT count(*) FROM cowatch_pairs").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM cowatch_rows").fetchone()[0] == 0
    db.close()


async def _oprf(
    world: World,
    transport: AsgiTransport,
    identity: DeviceIdentity,
    token: str,
    pair: tuple[int, int],
) -> bytes:
    """One OPRF evaluation as a TV makes it (helper, then constellation)."""
    blinded = oprf.blind(pair_input(*pair))
    first = OprfRequest(points=[blinded.point])
    first = msgspec.structs.replace(first, proof=prove(identity, "oprf", first))
    async with HttpTransport(world.helper_url) as helper:
        half = await helper.request(
            "POST",
            "/helper/v1/cowatch/oprf",
            body=msgspec.msgpack.encode(first),
            headers={"Content-Type": MSGPACK_MEDIA_TYPE},
        )
    assert half.status == 200, half.body
    points = msgspec.msgpack.decode(half.body, type=OprfResponse).points
    whole = await transport.request(
        "POST",
        "/api/omega/cowatch/oprf",
        body=msgspec.msgpack.encode(OprfPoints(points=points)),
        headers={"Content-Type": MSGPACK_MEDIA_TYPE, "Authorization": f"Bearer {token}"},
    )
    assert whole.status == 200, whole.body
    return oprf.finalize(blinded, msgspec.msgpack.decode(whole.body, type=OprfResponse).points[0])


async def _submit(world: World, identity: DeviceIdentity, reports: list[SealedReport]) -> Any:
    request = ReportRequest(reports=reports)
    request = msgspec.structs.replace(request, proof=prove(identity, "reports", request))
    async with HttpTransport(world.helper_url) as helper:
        return await helper.request(
            "POST",
            "/helper/v1/cowatch/reports",
            body=msgspec.msgpack.encode(request),
            headers={"Content-Type": MSGPACK_MEDIA_TYPE},
        )


async def _viewer(transport: AsgiTransport, world: World, name: str) -> tuple[str, CowatchInfo]:
    tv = open_brain(world.tmp / name, world.clock)
    client = SyncClient(tv, transport, attestation=world.device(int(name[2:])))
    token = (await client.credentials()).access_token
    tv.close()
    answer = await transport.request(
        "GET", "/api/omega/cowatch", body=None, headers={"Authorization": f"Bearer {token}"}
    )
    return token, msgspec.json.decode(answer.body, type=CowatchInfo)


def _forged(r: bytes, tag: bytes, leader: X25519PublicKey) -> SealedReport:
    """A report of the real pair (a valid point) filed under another tag."""
    real = make_report(r, *PAIR, k=3)
    return seal_report(msgspec.structs.replace(real, tag=tag), leader)


def test_one_tv_sending_a_pair_three_times_is_counted_once(world: World) -> None:
    identity = world.device(0)

    async def scenario() -> None:
        async with AsgiTransport(create_app(world.settings(), clock=world.clock)) as transport:
            await _start(world, transport)
            token, info = await _viewer(transport, world, "tv0")
            leader = X25519PublicKey.from_public_bytes(info.leader_key)
            r = await _oprf(world, transport, identity, token, PAIR)
            honest = seal_report(make_report(r, *PAIR, k=3), leader)
            answer = msgspec.msgpack.decode(
                (await _submit(world, identity, [honest])).body, type=ReportResponse
            )
            assert answer.errors == [""]
            for _ in range(2):  # the same pair again, next epochs: the helper knows the tag
                world.clock.advance(WEEK)
                again = seal_report(make_report(r, *PAIR, k=3), leader)
                reply = await _submit(world, identity, [again])
                errors = msgspec.msgpack.decode(reply.body, type=ReportResponse).errors
                assert errors == ["this device already reported this tag"]
            # Forged tags: the real pair's points under two made-up tags, and one whose
            # outer tag differs from the sealed one.
            forged = [_forged(r, bytes([i]) * 16, leader) for i in (1, 2)]
            mixed = SealedReport(tag=bytes([3]) * 16, sealed=honest.sealed)
            reply = await _submit(world, identity, [*forged, mixed])
            assert msgspec.msgpack.decode(reply.body, type=ReportResponse).errors == ["", "", ""]
            assert (await run_round_via(transport))["result"]["cowatch_rows"] == 0

    asyncio.run(scenario())
    db = _db(world)
    assert db.execute("SELECT count(*) FROM cowatch_pairs").fetchone()[0] == 0
    # the honest point and the two forged tags' points; the mismatched seal did not open
    assert db.execute("SELECT count(*) FROM cowatch_shares").fetchone()[0] == 3
    db.close()


def test_reports_over_the_epoch_bound_are_refused_with_a_clear_error(world: World) -> None:
    identity = world.device(0)

    async def scenario() -> None:
        async with AsgiTransport(create_app(world.settings(), clock=world.clock)) as transport:
            await _start(world, transport)
            token, info = await _viewer(transport, world, "tv0")
            leader = X25519PublicKey.from_public_bytes(info.leader_key)
            reports = [
                seal_report(make_report(bytes([i]) * 32, i, i + 1, k=3), leader) for i in range(5)
            ]
            reply = await _submit(world, identity, reports)
            assert reply.status == 429
            next_epoch = str(math.ceil(WEEK - world.clock.now() % WEEK))
            assert reply.header("retry-after") == next_epoch  # when the bound renews
            problem = msgspec.json.decode(reply.body)
            assert "at most 4 co-watch reports per epoch" in problem["detail"]
            ok = await _submit(world, identity, reports[:4])
            assert ok.status == 200
            assert msgspec.msgpack.decode(ok.body, type=ReportResponse).remaining == 0
            # The constellation's OPRF bound: 4 per viewer and epoch.
            points = [oprf.blind(pair_input(1, i)).point for i in range(2, 7)]
            over = await transport.request(
                "POST",
                "/api/omega/cowatch/oprf",
                body=msgspec.msgpack.encode(OprfPoints(points=points)),
                headers={"Content-Type": MSGPACK_MEDIA_TYPE, "Authorization": f"Bearer {token}"},
            )
            assert over.status == 429 and b"co-watch OPRF evaluations per epoch" in over.body
            assert over.header("retry-after") == next_epoch

            world.clock.advance(WEEK)  # a new epoch, a new allowance
            assert (await _submit(world, identity, reports[4:])).status == 200

    asyncio.run(scenario())


def test_malformed_and_forged_requests_are_refused_and_the_rest_counts(world: World) -> None:
    identity, stranger = world.device(0), Manufacturer.generate("evil", "k").device("X")

    async def scenario() -> None:
        async with AsgiTransport(create_app(world.settings(), clock=world.clock)) as transport:
            await _start(world, transport)
            token, info = await _viewer(transport, world, "tv0")
            leader = X25519PublicKey.from_public_bytes(info.leader_key)
            good = seal_report(make_report(b"\x01" * 32, 1, 2, k=3), leader)
            garbage = SealedReport(tag=b"\x05" * 16, sealed=b"not hpke at all")
            short = SealedReport(tag=b"\x05", sealed=b"x")
            reply = await _submit(world, identity, [good, short, garbage])
            errors = msgspec.msgpack.decode(reply.body, type=ReportResponse).errors
            assert errors[0] == "" and "tag is 16 bytes" in errors[1] and errors[2] == ""
            refused = await _submit(world, stranger, [good])
            assert refused.status == 401 and b"trusts no manufacturer key evil/k" in refused.body
            async with HttpTransport(world.helper_url) as helper:
                junk = await helper.request(
                    "POST",
                    "/helper/v1/cowatch/oprf",
                    body=b"\x93junk",
                    headers={"Content-Type": MSGPACK_MEDIA_TYPE},
                )
                assert junk.status == 400 and b"malformed OprfRequest" in junk.body
                not_a_point = OprfRequest(points=[b"\x01" * 32])
                not_a_point = msgspec.structs.replace(
                    not_a_point, proof=prove(identity, "oprf", not_a_point)
                )
                bad = await helper.request(
                    "POST",
                    "/helper/v1/cowatch/oprf",
                    body=msgspec.msgpack.encode(not_a_point),
                    headers={"Content-Type": MSGPACK_MEDIA_TYPE},
                )
                assert bad.status == 422 and b"not a valid point" in bad.body
            bad_point = await transport.request(
                "POST",
                "/api/omega/cowatch/oprf",
                body=msgspec.msgpack.encode(OprfPoints(points=[b"\x00" * 32])),
                headers={"Content-Type": MSGPACK_MEDIA_TYPE, "Authorization": f"Bearer {token}"},
            )
            assert bad_point.status == 422 and b"not a valid point" in bad_point.body
            assert (await run_round_via(transport))["result"]["status"] in {"unchanged", "released"}

    asyncio.run(scenario())
    db = _db(world)
    # the good report was stored; the garbage one did not open and was dropped
    assert db.execute("SELECT count(*) FROM cowatch_shares").fetchone()[0] == 1
    db.close()
    assert world.desk.waiting() == 0  # the batch was acknowledged


def test_pulls_stay_within_5_kb_with_a_large_neighbour_table(world: World) -> None:
    from omega.protocol.cowatch import Share
    from omega.storage import open_storage
    from omega.storage.cowatch import StoredPair

    url = f"sqlite:///{world.tmp / 'server' / 'constellation.db'}"

    async def scenario() -> None:
        async with AsgiTransport(create_app(world.settings(), clock=world.clock)) as transport:
            await _start(world, transport)
            store = open_storage(url)
            points = [
                (s.to_bytes(4, "big") + n.to_bytes(12, "big"), Share(1, 1, b""))
                for s in range(600)
                for n in range(20)
            ]

            def resolve(tag: bytes, shares: list[Share], known: Any) -> StoredPair:
                # neighbours and counts as scattered as real ones (zstd finds no pattern)
                source, mix = int.from_bytes(tag[:4], "big"), hashlib.sha256(tag).digest()
                neighbour = int.from_bytes(mix[:4], "big") % 9742
                return StoredPair(source, neighbour, 1, 3 + mix[4] % 200)

            class Unquantised:
                """The release's bound without its quantising: the counts stay scattered."""

                follows = False
                policy = "unquantised"

                def __call__(self, pairs: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
                    return [(b, t) for b, t, _ in sorted(pairs, key=lambda p: -p[1])[:20]]

            fold = store.cowatch.fold(points, resolve=resolve, rank=Unquantised(), now=0.0)
            store.close()
            assert fold.rows == 600
            table, sizes, syncs = await _pull_rows(world, transport, "fresh")
            assert len(table.rows) == 600 and all(len(v) == 20 for v in table.rows.values())
            assert max(sizes) <= 5120
            assert len(sizes) > 10 and syncs > 1  # many pages, over several syncs

    asyncio.run(scenario())


def test_the_audit_finds_no_pair_in_clear_and_no_tv_pair_link(world: World) -> None:
    from omega.helper.cowatch import OPRF_KEY_FILE
    from omega.sim.audit_cowatch import CowatchAudit, CowatchAuditTransport

    helper_dir = world.tmp / "helper"
    audit = CowatchAudit(
        helper_key=HelperService.open(helper_dir).private_key,
        helper_oprf_key=(helper_dir / OPRF_KEY_FILE).read_bytes(),
    )

    async def scenario() -> None:
        async with AsgiTransport(create_app(world.settings(), clock=world.clock)) as transport:
            await _start(world, transport)
            for n in range(3):
                pairs = [PAIR, (20 + n, 30 + n)]
                audit.pairs[str(n)] = pairs
                tv = open_brain(world.tmp / f"tv{n}", world.clock)
                leader = CowatchAuditTransport(transport, audit, tv=str(n), server="leader")
                async with HttpTransport(world.helper_url) as plain:
                    helper = CowatchAuditTransport(plain, audit, tv=str(n), server="helper")
                    client = SyncClient(
                        tv,
                        leader,
                        attestation=world.device(n),
                        cowatch=Contributor(helper=helper, identity=world.device(n)),
                        cowatch_pairs=Pairs(pairs),
                    )
                    await client.fetch_codebook()
                    assert (await client.sync()).cowatch_sent == 2
                tv.close()
            assert (await run_round_via(transport))["result"]["cowatch_rows"] == 1

    asyncio.run(scenario())
    assert audit.summary() == {
        "cowatch_reports_sent": 6,
        "cowatch_reports_distinct": 6,
        "cowatch_pairs_in_clear": 0,
        "cowatch_helper_readable": 0,
        "cowatch_leader_tagged": 0,
    }
    # The audit can fail: a TV that seals to the helper and puts the pair in clear.
    leaky = seal_report(make_report(b"\x09" * 32, *PAIR, k=3), audit.helper_key.public_key())
    audit.record("0", "helper", msgspec.msgpack.encode(ReportRequest(reports=[leaky])))
    audit.record("0", "helper", pair_input(*PAIR))
    audit.record("0", "leader", leaky.tag)
    summary = audit.summary()
    assert summary["cowatch_reports_sent"] == 7 and summary["cowatch_reports_distinct"] == 7
    assert summary["cowatch_pairs_in_clear"] == 1
    assert summary["cowatch_helper_readable"] == 1
    assert summary["cowatch_leader_tagged"] == 1


def test_pairs_the_budget_cannot_pay_for_stay_unsent_for_a_later_epoch(world: World) -> None:
    """The brain records as sent only the pairs the sync could pay for; the rest are
    contributed once the budget allows (they used to be marked sent and lost)."""

    async def scenario() -> None:
        async with AsgiTransport(create_app(world.settings(), clock=world.clock)) as transport:
            await _start(world, transport)
            # ε 4 a pair from a budget of 12 a week: at most 3 pairs (fewer after the
            # sync's own popularity report) of the 5 + 4 + 3 + 2 + 1 the TV has.
            tv = open_brain(world.tmp / "tv", world.clock, report_budget=12.0, report_window_s=WEEK)
            async with HttpTransport(world.helper_url) as helper:
                client = SyncClient(
                    tv,
                    transport,
                    attestation=world.device(1),
                    cowatch=Contributor(helper=helper, identity=world.device(1)),
                )
                await client.fetch_codebook()
                CatalogOrder.record(tv, list(tv.catalog.ids))  # the server's order
                for n in range(6):
                    tv.track_view(f"c{n}i0", watch_fraction=0.95)
                    world.clock.advance(1800)
                first = await client.sync()
                assert first.cowatch_error is None and 1 <= first.cowatch_sent < 15
                assert len(tv.cowatch._store.cowatch.sent()) == first.cowatch_sent
                world.clock.advance(2 * WEEK)  # a new epoch, the budget renewed
                second = await client.sync()
                assert second.cowatch_error is None and second.cowatch_sent >= 1
                sent = tv.cowatch._store.cowatch.sent()
                assert len(sent) == first.cowatch_sent + second.cowatch_sent
            tv.close()

    asyncio.run(scenario())


def test_a_failed_private_release_is_counted_shown_and_made_by_the_next_round(
    world: World,
) -> None:
    """Central DP on: a private release that fails on storage (a trigger refuses the
    ledger's row) fails neither the round nor the server; ``/metrics`` counts it,
    ``/api/omega/stats`` shows the fold still owed and nothing spent, and the next round
    makes the release with no new batch."""
    from prometheus_client.parser import text_string_to_metric_families

    settings = world.settings(cowatch_dp_epsilon=20.0, cowatch_dp_delta=1e-9)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    async def dp(transport: AsgiTransport) -> Any:
        answer = await transport.request("GET", "/api/omega/stats", body=None, headers=admin)
        return msgspec.json.decode(answer.body)["cowatch_dp"]

    async def failures(transport: AsgiTransport) -> dict[str, float]:
        scrape = (await transport.request("GET", "/metrics", body=None, headers={})).body.decode()
        return {
            s.name + s.labels.get("status", ""): s.value
            for f in text_string_to_metric_families(scrape)
            for s in f.samples
            if s.name in ("omega_cowatch_failures_total", "omega_federation_rounds_total")
        }

    async def scenario() -> None:
        async with AsgiTransport(create_app(settings, clock=world.clock)) as transport:
            await _start(world, transport)
            for n in range(3):
                await _contribute(world, transport, n, [PAIR])
            db = _db(world)
            db.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON cowatch_privacy"
                " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
            db.commit()
            failed = (await run_round_via(transport))["result"]
            assert "the private co-watch release failed (no ε spent)" in failed["cowatch_error"]
            assert await dp(transport) == {
                "epsilon_per_release": 20.0,
                "delta_per_release": 1e-9,
                "releases": 0,
                "epsilon_spent": 0.0,
                "delta_spent": 0.0,
                "unreleased_folds": 1,
            }
            seen = await failures(transport)
            assert seen["omega_cowatch_failures_total"] == 1
            assert seen["omega_federation_rounds_totalfailed"] == 0
            db.execute("DROP TRIGGER refuse")
            db.commit()
            db.close()
            retried = (await run_round_via(transport))["result"]
            assert retried["cowatch_error"] is None
            after = await dp(transport)
            assert (after["releases"], after["epsilon_spent"], after["unreleased_folds"]) == (
                1,
                20.0,
                0,
            )
            assert (await failures(transport))["omega_cowatch_failures_total"] == 1
        # DP turned off later: no ε per release, but what the releases spent stays shown
        async with AsgiTransport(create_app(world.settings(), clock=world.clock)) as transport:
            assert await dp(transport) == {
                "epsilon_per_release": None,
                "delta_per_release": None,
                "releases": 1,
                "epsilon_spent": 20.0,
                "delta_spent": 1e-9,
                "unreleased_folds": 0,
            }

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "overrides",
    [
        {"helper_url": None, "helper_secret_file": None},  # no helper: no co-watch rounds
        {"cowatch_threshold": 0},  # co-watch turned off
    ],
)
def test_stats_show_no_dp_where_the_cowatch_step_does_not_run(
    world: World, overrides: dict[str, Any]
) -> None:
    settings = world.settings(cowatch_dp_epsilon=4.0, **overrides)

    async def scenario() -> None:
        async with AsgiTransport(create_app(settings, clock=world.clock)) as transport:
            answer = await transport.request(
                "GET",
                "/api/omega/stats",
                body=None,
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
            assert answer.status == 200
            assert msgspec.json.decode(answer.body)["cowatch_dp"] is None

    asyncio.run(scenario())
    assert not settings.cowatch_dp_on
