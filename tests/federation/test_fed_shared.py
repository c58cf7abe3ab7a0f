"""Two-server popularity end to end: devices' reports queue with their pushes, a round
counts them exactly with a real helper over HTTP (uvicorn on loopback), bad reports are
refused, a batch is counted once even when the leader asks twice, and the helper turns
away what is not its leader's or too small to hide one report in."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from omega.constellation.helper_client import HelperSettings, HttpHelper, connect_helper
from omega.errors import InputError
from omega.federation import FederationConfig, run_round
from omega.federation.shared import SharedCounting, fold_shares
from omega.helper.service import HelperConfig, HelperService
from omega.helper.thread import HelperThread
from omega.protocol.aggregation import (
    AggregateItem,
    AggregateRequest,
    PrepareRequest,
    auth_token,
    verify_key,
)
from omega.protocol.dpf import PRIME, gen
from omega.protocol.messages import PushAck, PushRequest, SharedReport
from omega.protocol.noise import ExactLaplace, SeededLaplace
from omega.protocol.shares import (
    _SUITE,
    HelperShare,
    Sketch,
    _bind,
    _share_bytes,
    make_shared_report,
    open_helper_share,
    sketch,
)
from omega.storage import Codebook, Storage, ViewerRecord

ITEMS = tuple(f"m{i}" for i in range(300))


_OPEN: list[SharedCounting] = []


@pytest.fixture(autouse=True)
def _close_connections() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


@pytest.fixture
def helper(tmp_path: Path) -> Iterator[HelperThread]:
    service = HelperService.open(tmp_path / "helper", HelperConfig(min_batch=20, noise_epsilon=0))
    with HelperThread(service) as running:
        yield running


def _counting(helper: HelperThread, *, min_batch: int = 20, noise: float = 0.0) -> SharedCounting:
    secret = helper.service.secret
    counting = SharedCounting(
        helper=HttpHelper(helper.url, auth_token(secret)),
        secret=secret,
        batch=200,
        min_batch=min_batch,
        noise_epsilon=noise,
    )
    _OPEN.append(counting)
    return counting


def _key(helper: HelperThread) -> X25519PublicKey:
    return X25519PublicKey.from_public_bytes(helper.service.info().public_key)


def _push(store: Storage, viewer: str, n: int, shares: list[SharedReport]) -> None:
    push = PushRequest(viewer_id=viewer, batch_id=f"{viewer}-{n}", codebook_id="cb", shares=shares)
    digest = msgspec.msgpack.encode(push).hex()[:64]
    store.ingest(push, digest=digest, region="eu", ack=PushAck(batch_id=push.batch_id), now=1.0)


def _setup(store: Storage) -> None:
    store.put_codebook(Codebook("cb", 2, bytes(8), 2, ITEMS))
    store.create_viewer(ViewerRecord("v", "eu", "tv", 1.0))


def _bad(alpha: int, helper: HelperThread) -> SharedReport:
    """A report that adds 50 views to one title."""
    keys = gen(alpha, 9, beta=50)
    a = secrets.randbelow(PRIME)
    public = keys.public.to_bytes()
    sealed = _SUITE.encrypt(
        _share_bytes(keys.seed1, a, a * a % PRIME), _key(helper), info=_bind(public)
    )
    return SharedReport(
        size=len(ITEMS), public=public, leader=_share_bytes(keys.seed0, 0, 0), helper=sealed
    )


def test_a_round_counts_reports_exactly_and_refuses_forged_ones(
    fed_store: Storage, helper: HelperThread
) -> None:
    _setup(fed_store)
    rng = np.random.default_rng(1)
    titles = (rng.zipf(1.6, 120) - 1) % len(ITEMS)
    reports = [make_shared_report(int(t), len(ITEMS), _key(helper)) for t in titles]
    for n in range(0, len(reports), 3):
        _push(fed_store, "v", n, reports[n : n + 3])
    _push(fed_store, "v", 999, [_bad(7, helper), _bad(8, helper)])
    assert len(fed_store.pending_shares(limit=500)) == 122

    result = run_round(
        fed_store,
        FederationConfig(popular_top=10),
        now=100.0,
        worker_id="w",
        shares=_counting(helper),
    )
    assert result.status == "released" and result.reports == 120
    assert fed_store.pending_shares(limit=500) == []  # the forged ones are dropped too
    (counts,) = fed_store.popularity_counts(codebook_id="cb")
    support = np.frombuffer(counts.support, dtype="<i8")
    assert counts.buckets == 0 and counts.reports == 120 and counts.noise_variance == 0
    assert support.tolist() == np.bincount(titles, minlength=len(ITEMS)).tolist()
    top = fed_store.current_popular()
    assert top[0].item_id == ITEMS[int(np.bincount(titles).argmax())] and top[0].score == 1.0


def test_too_few_reports_wait_for_the_next_round(fed_store: Storage, helper: HelperThread) -> None:
    _setup(fed_store)
    for n in range(5):
        _push(fed_store, "v", n, [make_shared_report(n, len(ITEMS), _key(helper))])
    counting = _counting(helper)
    codebook = fed_store.get_codebook()
    assert codebook is not None
    assert fold_shares(fed_store, codebook, counting) == 0
    assert len(fed_store.pending_shares(limit=50)) == 5
    for n in range(5, 25):
        _push(fed_store, "v", n, [make_shared_report(n, len(ITEMS), _key(helper))])
    assert fold_shares(fed_store, codebook, counting) == 25


def test_noise_is_added_by_both_servers(fed_store: Storage, tmp_path: Path) -> None:
    _setup(fed_store)
    service = HelperService.open(tmp_path / "noisy", HelperConfig(min_batch=20, noise_epsilon=1.0))
    with HelperThread(service) as noisy:
        reports = [make_shared_report(0, len(ITEMS), _key(noisy)) for _ in range(40)]
        _push(fed_store, "v", 0, reports[:4])
        for n in range(4, 40, 4):
            _push(fed_store, "v", n, reports[n : n + 4])
        codebook = fed_store.get_codebook()
        assert codebook is not None
        assert fold_shares(fed_store, codebook, _counting(noisy, noise=1.0)) == 40
    (counts,) = fed_store.popularity_counts(codebook_id="cb")
    support = np.frombuffer(counts.support, dtype="<i8")
    # Two discrete Laplace(ε = 1) noises per title: variance 2 · 2e⁻¹/(1−e⁻¹)² ≈ 3.7.
    assert counts.noise_variance == pytest.approx(3.68, abs=0.01)
    assert abs(int(support[0]) - 40) < 25 and np.count_nonzero(support[1:]) > 100
    assert abs(float(np.var(support[1:])) - 3.68) < 1.5


@pytest.mark.parametrize(("seed", "kind"), [(None, ExactLaplace), (5, SeededLaplace)])
def test_both_servers_draw_exact_noise_unless_seeded(
    tmp_path: Path, seed: int | None, kind: type
) -> None:
    # As `omega helper serve` and `omega serve` build them (share_noise_seed unset in
    # production): OpenDP's exact sampler; a seeded stream only for simulations.
    service = HelperService.open(tmp_path / "h", HelperConfig(noise_epsilon=2.0, noise_seed=seed))
    leader = connect_helper(
        HelperSettings(
            url="http://127.0.0.1:9",
            secret_file=tmp_path / "h" / "aggregation-secret",
            noise_epsilon=2.0,
            noise_seed=seed,
        )
    )
    assert leader is not None
    _OPEN.append(leader)
    assert isinstance(service.noise, kind) and isinstance(leader.noise, kind)
    assert service.noise.epsilon == leader.noise.epsilon == 2.0


def test_the_helper_counts_a_report_once(tmp_path: Path) -> None:
    service = HelperService.open(tmp_path / "h", HelperConfig(min_batch=2, noise_epsilon=0))
    key = X25519PublicKey.from_public_bytes(service.info().public_key)

    def item(report: SharedReport) -> AggregateItem:
        s0 = sketch(0, report, HelperShare.parse(report.leader), verify_key(service.secret))
        (prepared,) = service.prepare(PrepareRequest(size=report.size, reports=[report])).answers
        d = (s0.d + prepared.d) % PRIME
        return AggregateItem(report=report, d=s0.d, w=s0.w(d))

    reports = [make_shared_report(i, 50, key) for i in range(3)]
    first = AggregateRequest(size=50, items=[item(r) for r in reports[:2]])
    answer = service.aggregate(first)
    assert answer.accepted == [True, True]
    assert service.aggregate(first) == answer  # the same batch again: the same answer
    overlap = AggregateRequest(size=50, items=[item(r) for r in reports[1:]])
    with pytest.raises(InputError, match="at least 2"):  # report 1 is refused: 1 < 2 left
        service.aggregate(overlap)
    # Report 2 was checked in that refused batch: it is spent, so a leader cannot retry it
    # with altered check values to learn anything.
    again = AggregateRequest(size=50, items=[item(reports[2]), item(reports[2])])
    with pytest.raises(InputError, match="0 valid"):
        service.aggregate(again)


def test_the_helper_evaluates_a_prepared_report_once(tmp_path: Path) -> None:
    service = HelperService.open(tmp_path / "h", HelperConfig(min_batch=1, noise_epsilon=0))
    key = X25519PublicKey.from_public_bytes(service.info().public_key)
    evaluated: list[bytes] = []
    plain = service._sketch

    def counted(report: SharedReport) -> Sketch:
        evaluated.append(report.public)
        return plain(report)

    service._sketch = counted  # type: ignore[method-assign]
    reports = [make_shared_report(i, 40, key) for i in (3, 3, 17)]
    prepared = service.prepare(PrepareRequest(size=40, reports=reports)).answers
    items = []
    for report, answer in zip(reports, prepared, strict=True):
        s0 = sketch(0, report, HelperShare.parse(report.leader), verify_key(service.secret))
        items.append(AggregateItem(report=report, d=s0.d, w=s0.w((s0.d + answer.d) % PRIME)))
    unprepared = make_shared_report(5, 40, key)
    s0 = sketch(0, unprepared, HelperShare.parse(unprepared.leader), verify_key(service.secret))
    s1 = sketch(
        1, unprepared, open_helper_share(unprepared, service.private_key), service.verify_key
    )
    items.append(AggregateItem(report=unprepared, d=s0.d, w=s0.w((s0.d + s1.d) % PRIME)))

    answer = service.aggregate(AggregateRequest(size=40, items=items))

    assert answer.accepted == [True, True, True, True]
    assert len(evaluated) == 4  # three in prepare, reused; the unprepared one in aggregate
    share = np.frombuffer(answer.share, dtype="<i8")
    leader = sum(
        sketch(0, r, HelperShare.parse(r.leader), verify_key(service.secret)).y
        for r in [*reports, unprepared]
    )
    counts = (share + leader) % PRIME
    assert counts[3] == 2 and counts[17] == 1 and counts[5] == 1 and counts.sum() == 4


def test_a_probing_leader_gets_nothing_from_prepare(tmp_path: Path) -> None:
    service = HelperService.open(tmp_path / "h", HelperConfig(min_batch=1, noise_epsilon=0))
    key = X25519PublicKey.from_public_bytes(service.info().public_key)
    report = make_shared_report(7, 50, key)
    first = service.prepare(PrepareRequest(size=50, reports=[report]))
    assert service.prepare(PrepareRequest(size=50, reports=[report])) == first
    assert set(msgspec.structs.asdict(first.answers[0])) == {"d", "error"}  # no check value


def test_the_helper_answers_only_its_leader_with_problems(helper: HelperThread) -> None:
    with httpx.Client(base_url=helper.url) as client:
        info = client.get("/helper/v1/info")
        assert info.status_code == 200 and len(info.json()["public_key"]) > 40
        anonymous = client.post("/helper/v1/prepare", content=b"\x80")
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"] == "application/problem+json"
        token = {"Authorization": f"Bearer {auth_token(helper.service.secret)}"}
        garbage = client.post(
            "/helper/v1/prepare",
            content=b"not msgpack",
            headers=token | {"Content-Type": "application/msgpack"},
        )
        assert garbage.status_code == 400 and "malformed" in garbage.json()["detail"]
        wrong_type = client.post("/helper/v1/prepare", content=b"{}", headers=token)
        assert wrong_type.status_code == 415
        small = AggregateRequest(size=len(ITEMS), items=[])
        refused = client.post(
            "/helper/v1/aggregate",
            content=msgspec.msgpack.encode(small),
            headers=token | {"Content-Type": "application/msgpack"},
        )
        assert refused.status_code == 409 and "at least 20" in refused.json()["detail"]
        assert "omega_helper_batches_total" in client.get("/metrics").text


def test_a_round_survives_a_helper_that_is_down(fed_store: Storage, tmp_path: Path) -> None:
    _setup(fed_store)
    service = HelperService.open(tmp_path / "gone", HelperConfig(min_batch=1, noise_epsilon=0))
    key = X25519PublicKey.from_public_bytes(service.info().public_key)
    _push(fed_store, "v", 0, [make_shared_report(1, len(ITEMS), key)])
    down = SharedCounting(
        helper=HttpHelper("http://127.0.0.1:9", "x", timeout=2.0),
        secret=service.secret,
        min_batch=1,
    )
    result = run_round(fed_store, FederationConfig(), now=100.0, worker_id="w", shares=down)
    assert result.reports == 0 and len(fed_store.pending_shares(limit=5)) == 1  # kept for later


def test_reports_the_helper_counted_elsewhere_are_refused_not_counted_twice(
    fed_store: Storage, helper: HelperThread
) -> None:
    _setup(fed_store)
    counting = _counting(helper)
    first = [make_shared_report(n % 7, len(ITEMS), _key(helper)) for n in range(20)]
    for n, report in enumerate(first):
        _push(fed_store, "v", n, [report])
    codebook = fed_store.get_codebook()
    assert codebook is not None
    # The helper counts the batch, then the leader "crashes" before folding it.
    queued = fed_store.pending_shares(limit=100)
    key = verify_key(helper.service.secret)
    items = []
    for _, report, _ in queued:
        s0 = sketch(0, report, HelperShare.parse(report.leader), key)
        asked = PrepareRequest(size=len(ITEMS), reports=[report])
        (check,) = helper.service.prepare(asked).answers
        items.append(AggregateItem(report=report, d=s0.d, w=s0.w((s0.d + check.d) % PRIME)))
    helper.service.aggregate(AggregateRequest(size=len(ITEMS), items=items))
    # New reports arrive: the old ones are refused (counted already), the rest count.
    for n in range(20, 45):
        _push(fed_store, "v", n, [make_shared_report(3, len(ITEMS), _key(helper))])
    assert fold_shares(fed_store, codebook, counting) == 25
    assert fed_store.pending_shares(limit=100) == []


def test_a_round_that_died_after_the_helper_answered_gets_the_same_answer(
    fed_store: Storage, helper: HelperThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    _setup(fed_store)
    titles = [n % 9 for n in range(30)]
    for n, t in enumerate(titles):
        _push(fed_store, "v", n, [make_shared_report(t, len(ITEMS), _key(helper))])
    codebook = fed_store.get_codebook()
    assert codebook is not None
    real_fold = fed_store.fold_reports

    def crash(**_: object) -> bool:
        raise RuntimeError("the round died before its fold")

    monkeypatch.setattr(fed_store, "fold_reports", crash)
    with pytest.raises(RuntimeError):
        fold_shares(fed_store, codebook, _counting(helper))
    monkeypatch.setattr(fed_store, "fold_reports", real_fold)
    for n in range(30, 35):  # newer reports wait behind the tagged batch
        _push(fed_store, "v", n, [make_shared_report(1, len(ITEMS), _key(helper))])
    assert fold_shares(fed_store, codebook, _counting(helper)) == 30
    (counts,) = fed_store.popularity_counts(codebook_id="cb")
    support = np.frombuffer(counts.support, dtype="<i8")
    assert support.tolist() == np.bincount(titles, minlength=len(ITEMS)).tolist()
    assert len(fed_store.pending_shares(limit=50)) == 5
