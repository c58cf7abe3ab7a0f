"""The pure half of the client: what goes into a push, what an answer means, how long to
wait. No server needed (a real brain on a SQLite file)."""

from __future__ import annotations

import email.utils
import random
from collections.abc import Iterator
from pathlib import Path

import msgspec
import numpy as np
import pytest
from _sync_world import centroids, open_brain, watch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from tenacity import RetryCallState

from omega.clock import ManualClock
from omega.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    RemoteProtocolError,
    ServerError,
    SignatureError,
    TransportError,
)
from omega.protocol import codec, signing
from omega.protocol.messages import (
    PROBLEM_MEDIA_TYPE,
    PROBLEM_TYPE,
    PullResponse,
    PushAck,
    SyncResponse,
)
from omega.sync import RetryPolicy, SyncSchedule, build_push
from omega.sync.releases import (
    PinnedKey,
    ReleaseTrust,
    check_release_keys,
    pins_from_json,
    pins_to_json,
)
from omega.sync.replies import (
    LASTING_REFUSALS,
    error_for,
    is_retryable,
    open_sealed,
    parse_retry_after,
    read_sync_reply,
)
from omega.sync.transport import Response


def test_a_push_is_bounded_and_pruned_patterns_travel_as_removals(tmp_path: Path) -> None:
    clock = ManualClock()
    tv = open_brain(tmp_path / "tv", clock)
    tv.set_codebook(centroids())
    watch(tv, clock, list(range(8)), rounds=4)
    tv.flush()
    pending = tv.sync.pending(1000)
    assert len(pending) > 8

    plan = build_push(pending, viewer_id="v1", codebook_id="cb", batch_id="b1", max_patterns=8)
    assert plan is not None and plan.size == 8
    assert plan.pattern_ids == tuple(e.pattern_id for e in pending[:8])
    assert codec.decode(plan.payload) == plan.request

    tight = build_push(pending, viewer_id="v1", codebook_id="cb", batch_id="b2", max_bytes=400)
    assert tight is not None and 1 < tight.size < len(pending) and len(tight.payload) <= 400
    alone = build_push(pending, viewer_id="v1", codebook_id="cb", batch_id="b2", max_bytes=10)
    assert alone is not None and alone.size == 1  # one pattern always goes

    gone = pending[0].pattern_id
    tv.learner.bank._stats.pop(gone)  # pruned since it was queued
    fresh = tv.sync.pending(2)
    plan = build_push(fresh, viewer_id="v1", codebook_id="cb", batch_id="b3", max_patterns=2)
    assert plan is not None and plan.request.removed == [gone]
    tv.close()


def test_nothing_to_push_is_none(tmp_path: Path) -> None:
    tv = open_brain(tmp_path / "tv", ManualClock())
    assert build_push(tv.sync.pending(64), viewer_id="v", codebook_id="c", batch_id="b") is None
    tv.close()


def _answer(status: int, body: bytes = b"", **headers: str) -> Response:
    return Response(
        status=status, headers={k.replace("_", "-"): v for k, v in headers.items()}, body=body
    )


def _problem(status: int, slug: str, detail: str = "no") -> Response:
    """An Omega problem answer, as the constellation sends it."""
    body = {"title": "x", "status": status, "detail": detail, "type": PROBLEM_TYPE + slug}
    return _answer(status, msgspec.json.encode(body), content_type=PROBLEM_MEDIA_TYPE)


def test_answers_map_to_errors() -> None:
    assert isinstance(error_for(_problem(422, "idempotency-conflict")), ConflictError)
    limited = error_for(_answer(429, b"{}", retry_after="7"))
    assert isinstance(limited, ServerError) and limited.retry_after == 7
    assert is_retryable(limited) and is_retryable(TransportError("reset"))
    assert not is_retryable(error_for(_answer(400, b"not json")))
    assert not is_retryable(RemoteProtocolError("garbage"))


@pytest.mark.parametrize("slug", sorted(LASTING_REFUSALS))
def test_the_constellations_lasting_refusals_are_auth_errors(slug: str) -> None:
    error = error_for(_problem(403, slug, "manufacturer key m/k1 was revoked"))
    assert isinstance(error, AuthError) and slug in str(error)


@pytest.mark.parametrize(
    "answer",
    [
        _answer(403, b"<html>Accept the terms to use the Wi-Fi</html>", content_type="text/html"),
        _answer(401, b"<html>Proxy login</html>", content_type="text/html"),
        _answer(403),  # a firewall's empty refusal
        # JSON that is not Omega's problem: a proxy's, or ours with another media type
        _answer(401, b'{"detail":"expired"}', content_type="application/json"),
        _answer(
            403,
            b'{"detail":"x","type":"https://omega.invalid/problems/manufacturer-key-revoked"}',
            content_type="application/json",
        ),
        _problem(403, "attestation-refused", "signed 1 year from the server's time"),
        _problem(403, "registration-replayed", "a replayed registration: sign a new one"),
        _problem(401, "unauthorized", "access token expired"),  # even after a refresh
    ],
)
def test_refusals_that_may_heal_are_server_errors_retried_later(answer: Response) -> None:
    """Not the constellation's lasting refusal (a captive portal, a proxy, a clock not yet
    set or stepped back): a ServerError, which the runtime backs off from and retries."""
    error = error_for(answer)
    assert isinstance(error, ServerError) and error.status == answer.status
    assert not is_retryable(error)  # not at once: the runtime's schedule waits
    schedule = SyncSchedule(base=1.0, cap=900.0)
    wait = schedule.after_failure(random.Random(1), failures=1, error=error)
    assert schedule.refused_floor <= wait <= schedule.refused_floor + schedule.window(1)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("12") == 12
    assert parse_retry_after("-3") == 0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(30)


def test_a_reply_must_acknowledge_the_batch_sent() -> None:
    reply = SyncResponse(pull=PullResponse(version=3), ack=PushAck(batch_id="other"))
    body = codec.encode(reply)
    answer = _answer(200, body, content_type="application/x-omega")
    with pytest.raises(RemoteProtocolError, match="not b1"):
        read_sync_reply(answer, batch_id="b1")
    assert read_sync_reply(answer, batch_id=None).pull.version == 3
    with pytest.raises(RemoteProtocolError):
        read_sync_reply(_answer(200, body, content_type="text/html"), batch_id=None)


@settings(max_examples=200, deadline=None)
@given(attempt=st.integers(1, 12), retry_after=st.none() | st.floats(0, 50))
def test_backoff_is_full_jitter_capped_and_never_below_retry_after(
    attempt: int, retry_after: float | None
) -> None:
    policy = RetryPolicy(base=0.5, cap=8.0)
    state = RetryCallState(None, None, (), {})
    state.attempt_number = attempt
    error = ServerError(503, "busy", retry_after=retry_after)
    state.set_exception((ServerError, error, None))
    wait = policy.delay(state)
    window = min(8.0, 0.5 * 2 ** (attempt - 1))
    assert 0 <= wait <= max(window, retry_after or 0)
    if retry_after is not None:
        assert wait >= retry_after
    assert np.isfinite(wait)


def assert_full_jitter(waits: np.ndarray, window: float) -> None:
    """Waits drawn uniformly from [0, window] — full jitter — judged by their distribution,
    not only their bounds: mean window/2, spread window/√12, both ends reached, no quarter
    of the window left empty, and a Kolmogorov–Smirnov test against U(0, window)."""
    assert waits.min() >= 0 and waits.max() <= window
    assert abs(waits.mean() - window / 2) < 0.05 * window
    assert abs(waits.std() - window / np.sqrt(12)) < 0.05 * window
    assert waits.min() < 0.02 * window and waits.max() > 0.98 * window
    counts, _ = np.histogram(waits, bins=4, range=(0, window))
    assert counts.min() > 0.8 * len(waits) / 4
    assert stats.kstest(waits, "uniform", args=(0, window)).pvalue > 0.001


@pytest.fixture
def seeded_random() -> Iterator[None]:
    """tenacity draws from the ``random`` module's shared generator: seed it, then put
    its state back."""
    state = random.getstate()
    random.seed(15)
    yield
    random.setstate(state)


@pytest.mark.usefixtures("seeded_random")
@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 6, 9])
def test_retry_waits_are_spread_uniformly_over_the_window(attempt: int) -> None:
    """Within one sync (``RetryPolicy``): full jitter, measured. A fleet that failed
    together does not come back together."""
    policy = RetryPolicy(base=0.5, cap=8.0)
    state = RetryCallState(None, None, (), {})
    state.attempt_number = attempt
    state.set_exception((TransportError, TransportError("connection refused"), None))
    waits = np.array([policy.delay(state) for _ in range(4000)])
    assert_full_jitter(waits, min(8.0, 0.5 * 2 ** (attempt - 1)))


@pytest.mark.parametrize("failures", [1, 2, 5, 8, 10, 11, 40, 10_000])
def test_runtime_backoff_waits_are_full_jitter_up_to_the_cap(failures: int) -> None:
    """Between syncs (``SyncSchedule``, the device runtime's): after n failures in a row,
    uniform over [0, min(cap, base·2^(n-1))] — 1 s, 2 s … 15 min and there it stays."""
    schedule = SyncSchedule(base=1.0, cap=900.0)
    rng = random.Random(failures)
    error = TransportError("connection refused")
    waits = np.array(
        [schedule.after_failure(rng, failures=failures, error=error) for _ in range(4000)]
    )
    window = 900.0 if failures > 20 else min(900.0, 2.0 ** (failures - 1))
    assert schedule.window(failures) == window
    assert_full_jitter(waits, window)


_WINDOW = 64.0
_DRAWS = np.random.default_rng(3)
IMPOSTORS = {
    "always 0": np.zeros(4000),
    "always the window": np.full(4000, _WINDOW),
    "always the middle": np.full(4000, _WINDOW / 2),
    "equal jitter": _DRAWS.uniform(_WINDOW / 2, _WINDOW, 4000),
    "half the window": _DRAWS.uniform(0, _WINDOW / 2, 4000),
    "bunched at the middle": np.clip(_DRAWS.normal(_WINDOW / 2, _WINDOW / 8, 4000), 0, _WINDOW),
}


@pytest.mark.parametrize("impostor", list(IMPOSTORS))
def test_the_distribution_check_fails_what_is_not_full_jitter(impostor: str) -> None:
    """The check above can fail: constant waits (0, the window, its middle), waits that
    keep half the window ("equal jitter"), or use half of it, are each refused."""
    with pytest.raises(AssertionError):
        assert_full_jitter(IMPOSTORS[impostor], _WINDOW)


def test_the_distribution_check_passes_full_jitter() -> None:
    assert_full_jitter(np.random.default_rng(4).uniform(0, _WINDOW, 4000), _WINDOW)


@settings(max_examples=200, deadline=None)
@given(failures=st.integers(1, 60), retry_after=st.none() | st.floats(0, 1e6))
def test_runtime_backoff_never_comes_before_retry_after(
    failures: int, retry_after: float | None
) -> None:
    schedule = SyncSchedule(base=1.0, cap=900.0, max_retry_after=3600.0)
    error = ServerError(503, "busy", retry_after=retry_after)
    wait = schedule.after_failure(random.Random(failures), failures=failures, error=error)
    floor = 0.0 if retry_after is None else min(retry_after, 3600.0)
    assert floor <= wait <= max(floor, schedule.window(failures))


def test_after_a_success_the_interval_is_jittered_and_the_server_pace_is_a_floor() -> None:
    schedule = SyncSchedule(interval=1800.0, jitter=0.1)
    rng = random.Random(1)
    waits = np.array([schedule.after_success(rng, next_sync_after=60.0) for _ in range(4000)])
    assert waits.min() >= 1620 and waits.max() <= 1980
    assert stats.kstest(waits, "uniform", args=(1620, 360)).pvalue > 0.001
    assert schedule.after_success(rng, next_sync_after=7200.0) == 7200.0  # a slower server
    assert schedule.after_success(rng, next_sync_after=1.5, more=True) == 1.5  # more to pull
    with pytest.raises(ConfigError):
        SyncSchedule(base=10.0, cap=1.0)
    with pytest.raises(ConfigError):
        SyncSchedule(interval=0.0)


def test_a_change_queued_again_after_it_was_read_is_not_dropped_by_the_ack(
    tmp_path: Path,
) -> None:
    """A flush between reading the outbox and recording the batch re-queues a pattern with
    its newer state: that row must stay queued, or the ack of a batch carrying the older
    state would drop the newer change."""
    from omega.brain import InflightBatch

    clock = ManualClock()
    tv = open_brain(tmp_path / "tv", clock)
    tv.set_codebook(centroids())
    watch(tv, clock, list(range(4)), rounds=4)
    tv.flush()
    pending = tv.sync.pending(64)
    plan = build_push(pending, viewer_id="v1", codebook_id="cb", batch_id="b1")
    assert plan is not None
    again = plan.entries[0].pattern_id
    with tv.store.transaction(durable=True) as conn:  # what a flush does meanwhile
        tv.store.outbox.enqueue(conn, [(again, "upsert")])
    tv.sync.begin_batch(InflightBatch("b1", plan.payload), plan.entries)
    assert tv.sync.ack_batch("b1") == len(plan.entries) - 1
    assert [e.pattern_id for e in tv.sync.pending(64)] == [again]
    tv.close()


def test_only_a_sealed_frame_from_a_trusted_key_opens() -> None:
    key = Ed25519PrivateKey.generate()
    trusted = {"k1": signing.public_bytes(key)}
    sent = b"the request frame"
    frame = codec.encode(SyncResponse(pull=PullResponse(version=3)))
    sealed = signing.seal(frame, request=signing.request_digest(sent), kid="k1", key=key)
    binary = "application/x-omega"
    assert (
        open_sealed(_answer(200, sealed, content_type=binary), request=sent, trusted=trusted) == []
    )
    json_body = codec.encode_json(SyncResponse(pull=PullResponse(version=3)))
    refusals = [
        (_answer(200, json_body, content_type="application/json"), trusted, "not a sealed"),
        (_answer(200, frame, content_type=binary), trusted, "not signed"),
        (_answer(200, sealed, content_type=binary), {}, "no release key is pinned"),
    ]
    for answer, keys, why in refusals:
        with pytest.raises(SignatureError, match=why):
            open_sealed(answer, request=sent, trusted=keys)


def test_configured_release_keys_win_and_endorsed_keys_follow_their_roots() -> None:
    a, b, c = (signing.public_bytes(Ed25519PrivateKey.generate()) for _ in range(3))
    pins = {"k1": PinnedKey(a), "k2": PinnedKey(b, by="k1"), "k3": PinnedKey(c, by="k2")}
    assert ReleaseTrust(pins).keys() == {"k1": a, "k2": b, "k3": c}
    assert ReleaseTrust(pins).kids() == ["k3", "k2", "k1"]
    out_of_band = ReleaseTrust(pins, configured={"k9": c})
    assert out_of_band.keys() == {"k9": c}  # registration's k1 (and what it endorsed) is out
    assert out_of_band.learn([signing.Endorsement("k10", a, "k9", b"sig checked by verify")])
    assert set(out_of_band.keys()) == {"k9", "k10"}
    # k2, pinned under registration's root, is taken anew when a trusted key endorses it
    assert out_of_band.learn([signing.Endorsement("k2", c, "k9", b"sig")])
    assert out_of_band.keys()["k2"] == c and out_of_band.pins()["k2"].by == "k9"
    assert not out_of_band.learn([signing.Endorsement("k2", a, "k9", b"sig")])  # no override
    assert pins_from_json(pins_to_json(pins)) == pins
    assert pins_from_json("not json") == {} and pins_from_json('{"k": {"key": "!"}}') == {}
    with pytest.raises(ConfigError, match="release key 'k1' must be 32"):
        check_release_keys({"k1": b"short"})
