"""Popularity end to end: TVs push ε-LDP reports with their syncs, a round estimates and
releases the popular titles, another TV pulls them and its recommendations use them."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

import msgspec
import pytest
from _sync_world import (
    ADMIN_TOKEN,
    CODEBOOK_ID,
    K,
    catalog,
    centroids,
    inprocess_settings,
    open_brain,
    run_round_via,
)

from omega.clock import ManualClock
from omega.constellation import create_app
from omega.protocol import codec
from omega.protocol.messages import PushRequest
from omega.sync import AsgiTransport, SyncClient
from omega.sync.reports import REPORT_CURSOR

POPULAR = "c3i1"


async def _publish_with_items(transport: AsgiTransport) -> None:
    doc = {
        "codebook_id": CODEBOOK_ID,
        "dim": centroids().shape[1],
        "k": K,
        "centroids_f16": centroids().astype("<f2").tobytes(),
        "item_ids": [item.item_id for item in catalog()],
    }
    answer = await transport.request(
        "POST",
        "/api/omega/codebook",
        body=msgspec.json.encode(doc),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert answer.status == 201, answer.body


def test_reports_become_a_popular_list_that_other_tvs_use(tmp_path: Path) -> None:
    app = create_app(inprocess_settings(tmp_path / "server"))
    clock = ManualClock()

    async def scenario() -> None:
        async with AsgiTransport(app) as transport:
            await _publish_with_items(transport)
            for n in range(24):
                tv = open_brain(tmp_path / f"tv{n}", clock)
                # Seeded reports: with the system's randomness, now and then the noise let
                # the noise lift a second title to the top score, tied with POPULAR.
                client = SyncClient(tv, transport, report_rng=random.Random(n))
                await client.fetch_codebook()
                tv.track_view(POPULAR, watch_fraction=0.9)
                tv.track_skip("c6i2")  # skips are not reported
                clock.advance(600)
                await client.sync()
                # The report went with the recorded push, and the cursor moved with it.
                assert int(tv.sync.cursor(REPORT_CURSOR, "0")) == tv.store.episodes.recent(1)[0].id
                again = await client.sync()  # nothing new started: no report, no push
                assert again.batch_id is None
                tv.close()
            db = sqlite3.connect(tmp_path / "server" / "constellation.db")
            assert db.execute("SELECT count(*) FROM pending_reports").fetchone()[0] == 24
            db.close()

            result = (await run_round_via(transport))["result"]
            assert result["status"] == "released"
            assert result["reports"] == 24 and result["popular"] >= 1

            fresh = open_brain(tmp_path / "fresh", clock)
            client = SyncClient(fresh, transport)
            await client.fetch_codebook()
            await client.sync()
            recs = fresh.recommend(3)
            assert recs[0].item_id == POPULAR
            assert recs[0].signals["popular"] == 1.0
            assert recs[0].reason == "widely watched right now"
            scores = fresh.score_all()
            assert (
                int(scores.argmax()) == fresh.catalog.row_of_key[fresh.catalog.key_of_id[POPULAR]]
            )
            fresh.close()

    asyncio.run(scenario())


def test_a_report_is_recorded_with_its_batch_and_names_no_title(tmp_path: Path) -> None:
    clock = ManualClock()
    tv = open_brain(tmp_path / "tv", clock)
    tv.track_view(POPULAR, watch_fraction=0.9)
    app = create_app(inprocess_settings(tmp_path / "server"))

    async def scenario() -> None:
        async with AsgiTransport(app) as transport:
            await _publish_with_items(transport)
            client = SyncClient(tv, transport)
            push, resent = client._next_push(await client.credentials())
            assert push is not None and not resent and len(push.reports) == 1
            report = push.reports[0]
            assert (report.epsilon, report.buckets) == (8.0, 2982)
            recorded = tv.sync.inflight()
            assert recorded is not None
            assert codec.decode(recorded.payload, expect=PushRequest).reports == [report]
            assert POPULAR.encode() not in recorded.payload

    asyncio.run(scenario())
    tv.close()


@pytest.mark.parametrize(
    ("config", "reports"),
    [({"report_epsilon": 0.0}, False), ({"report_budget": 0.0}, True)],
    ids=["epsilon 0 sends none", "budget 0 lifts the cap"],
)
def test_zero_epsilon_or_zero_budget(
    tmp_path: Path, config: dict[str, float], reports: bool
) -> None:
    from omega.sync.reports import REPORT_SPENT, next_report

    clock = ManualClock()
    tv = open_brain(tmp_path / "tv", clock, **config)
    tv.track_view(POPULAR, watch_fraction=0.9)
    plan = next_report(tv)
    assert plan is not None and (plan.report is not None) == reports
    assert REPORT_SPENT not in plan.cursors()  # nothing spent, or nothing to keep track of
    tv.close()


def test_reports_stop_when_the_privacy_budget_is_spent_and_resume_after_the_window(
    tmp_path: Path,
) -> None:
    from omega.sync.reports import REPORT_SPENT

    app = create_app(inprocess_settings(tmp_path / "server"))
    clock = ManualClock()
    # Two reports at ε = 8 fit a budget of 16 per day.
    tv = open_brain(tmp_path / "tv", clock, report_budget=16.0, report_window_s=86_400.0)
    titles = iter(["c1i0", "c2i0", "c3i0", "c4i0", "c5i0"])

    def queued() -> int:
        db = sqlite3.connect(tmp_path / "server" / "constellation.db")
        try:
            return int(db.execute("SELECT count(*) FROM pending_reports").fetchone()[0])
        finally:
            db.close()

    async def scenario() -> None:
        async with AsgiTransport(app) as transport:
            await _publish_with_items(transport)
            client = SyncClient(tv, transport)
            await client.fetch_codebook()
            for expected in (1, 2, 2, 2):
                tv.track_view(next(titles), watch_fraction=0.9)
                clock.advance(600)
                await client.sync()  # over budget with no pattern to push: no push at all
                assert queued() == expected
            assert len(tv.sync.cursor(REPORT_SPENT, "").split()) == 2
            clock.advance(86_400)  # the window has passed: the budget is free again
            tv.track_view(next(titles), watch_fraction=0.9)
            await client.sync()
            assert queued() == 3
            assert len(tv.sync.cursor(REPORT_SPENT, "").split()) == 1

    asyncio.run(scenario())
    tv.close()


def _commit(tv: object, plan: object) -> None:
    """Store a plan's cursors as recording its batch would."""
    from omega.brain import Brain
    from omega.sync.reports import ReportPlan

    assert isinstance(tv, Brain) and isinstance(plan, ReportPlan)
    with tv.store.transaction(durable=True) as conn:
        for name, value in plan.cursors().items():
            tv.store.set_cursor(conn, name, value)


def _reports(tv: object, clock: ManualClock, titles: list[str]) -> list[bool]:
    """Watch each title, then plan a push: was a report made?"""
    from omega.brain import Brain
    from omega.sync.reports import next_report

    assert isinstance(tv, Brain)
    made = []
    for title in titles:
        tv.track_view(title, watch_fraction=0.9)
        clock.advance(3600)
        plan = next_report(tv)
        assert plan is not None
        _commit(tv, plan)
        made.append(plan.report is not None)
    return made


def test_the_budget_window_slides_report_by_report(tmp_path: Path) -> None:
    clock = ManualClock(1_000_000.0)
    tv = open_brain(tmp_path / "tv", clock, report_budget=16.0, report_window_s=4 * 3600.0)
    # Hours 1 and 2 report; 3 and 4 are over budget (the first report is 3 h old at hour
    # 4); at hour 5 the first report has left the window, at hour 6 the second.
    assert _reports(tv, clock, ["c1i0", "c2i0", "c3i0", "c4i0", "c5i0", "c6i0"]) == [
        True, True, False, False, True, True,
    ]  # fmt: skip
    tv.close()


def test_the_budget_counts_each_reports_own_epsilon(tmp_path: Path) -> None:
    from dataclasses import replace

    clock = ManualClock(1_000_000.0)
    tv = open_brain(tmp_path / "tv", clock, report_budget=16.0, report_window_s=86_400.0)
    assert _reports(tv, clock, ["c1i0", "c2i0"]) == [True, True]  # 16 spent at ε = 8
    tv.config = replace(tv.config, report_epsilon=2.0)  # an operator lowers ε later
    assert _reports(tv, clock, ["c3i0"]) == [False]  # still 16 spent, not 2 × 2
    tv.close()


def test_a_clock_that_ran_ahead_frees_its_budget_one_window_after_correction(
    tmp_path: Path,
) -> None:
    clock = ManualClock(5_000_000.0)
    tv = open_brain(tmp_path / "tv", clock, report_budget=8.0, report_window_s=86_400.0)
    assert _reports(tv, clock, ["c1i0"]) == [True]
    clock.set(1_000_000.0)  # corrected back by weeks
    assert _reports(tv, clock, ["c2i0"]) == [False]  # the slot counts as taken now…
    clock.advance(86_400)
    assert _reports(tv, clock, ["c3i0"]) == [True]  # …and frees one window later
    tv.close()


def test_an_unreadable_budget_record_blocks_reports_for_one_window(tmp_path: Path) -> None:
    from omega.sync.reports import REPORT_SPENT

    clock = ManualClock(1_000_000.0)
    tv = open_brain(tmp_path / "tv", clock, report_budget=16.0, report_window_s=86_400.0)
    with tv.store.transaction(durable=True) as conn:
        tv.store.set_cursor(conn, REPORT_SPENT, "not-a-time")
    assert _reports(tv, clock, ["c1i0"]) == [False]  # conservative, and no crash
    clock.advance(86_400)
    assert _reports(tv, clock, ["c2i0"]) == [True]
    tv.close()


def test_a_negative_budget_or_an_empty_window_is_refused() -> None:
    from omega.brain import BrainConfig
    from omega.errors import ConfigError

    with pytest.raises(ConfigError, match="report_budget must be ≥ 0"):
        BrainConfig(report_budget=-1.0)
    with pytest.raises(ConfigError, match="report_window_s > 0"):
        BrainConfig(report_window_s=0.0)


def test_two_server_reports_become_a_popular_list_no_server_could_read(tmp_path: Path) -> None:
    from omega.helper.service import SECRET_FILE, HelperConfig, HelperService
    from omega.helper.thread import HelperThread
    from omega.sync.reports import REPORT_SPENT

    service = HelperService.open(tmp_path / "helper", HelperConfig(min_batch=10, noise_epsilon=0))
    clock = ManualClock()

    async def scenario(helper_url: str) -> None:
        settings = inprocess_settings(
            tmp_path / "server",
            helper_url=helper_url,
            helper_secret_file=tmp_path / "helper" / SECRET_FILE,
            share_min_batch=10,
            share_noise_epsilon=0.0,
        )
        async with AsgiTransport(create_app(settings)) as transport:
            await _publish_with_items(transport)
            key = service.info().public_key
            for n in range(12):
                tv = open_brain(tmp_path / f"tv{n}", clock)
                client = SyncClient(tv, transport, helper_key=key)
                await client.fetch_codebook()
                tv.track_view(POPULAR, watch_fraction=0.9)
                clock.advance(600)
                push, _ = client._next_push(await client.credentials())
                assert push is not None and push.reports == [] and len(push.shares) == 1
                inflight = tv.sync.inflight()
                assert inflight is not None and POPULAR.encode() not in inflight.payload
                await client.sync()
                assert tv.sync.cursor(REPORT_SPENT, "").endswith(":4.0")  # shared_epsilon
                tv.close()
            db = sqlite3.connect(tmp_path / "server" / "constellation.db")
            assert db.execute("SELECT count(*) FROM pending_shares").fetchone()[0] == 12
            db.close()

            result = (await run_round_via(transport))["result"]
            assert result["status"] == "released" and result["reports"] == 12

            fresh = open_brain(tmp_path / "fresh", clock)
            client = SyncClient(fresh, transport)
            await client.fetch_codebook()
            await client.sync()
            recs = fresh.recommend(3)
            assert recs[0].item_id == POPULAR and recs[0].signals["popular"] == 1.0
            fresh.close()

    with HelperThread(service) as helper:
        asyncio.run(scenario(helper.url))


def test_a_bad_helper_key_is_a_config_error(tmp_path: Path) -> None:
    from omega.errors import ConfigError

    tv = open_brain(tmp_path / "tv", ManualClock())
    with pytest.raises(ConfigError, match="32 raw X25519 bytes"):
        SyncClient(
            tv, AsgiTransport(create_app(inprocess_settings(tmp_path / "s"))), helper_key=b"x"
        )
    tv.close()


def test_a_server_drops_the_report_kind_it_does_not_count(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    key = X25519PrivateKey.generate().public_key().public_bytes_raw()
    clock = ManualClock()

    async def scenario() -> None:
        app = create_app(inprocess_settings(tmp_path / "server"))  # no helper
        async with AsgiTransport(app) as transport:
            await _publish_with_items(transport)
            tv = open_brain(tmp_path / "tv", clock)
            client = SyncClient(tv, transport, helper_key=key)
            await client.fetch_codebook()
            tv.track_view(POPULAR, watch_fraction=0.9)
            result = await client.sync()  # the TV keeps syncing; its report is dropped
            assert result.batch_id is not None and tv.sync.inflight() is None
            db = sqlite3.connect(tmp_path / "server" / "constellation.db")
            assert db.execute("SELECT count(*) FROM pending_shares").fetchone()[0] == 0
            db.close()
            metrics = (await transport.request("GET", "/metrics", body=None, headers={})).body
            assert b'omega_rejections_total{reason="report_kind"} 1.0' in metrics
            tv.close()

    asyncio.run(scenario())
