"""Hypothesis strategies: one per message type, drawing only valid messages."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from omega.protocol import (
    EMBEDDING_DIM,
    MAX_CELL,
    MAX_INT8_SCALE,
    ConsolidatedPattern,
    ContentUpdate,
    FrequencyReport,
    ItemScore,
    Message,
    Pattern,
    PatternContext,
    ProblemDetail,
    PullRequest,
    PullResponse,
    PushAck,
    PushRequest,
    Registration,
    RegistrationResponse,
    Rejection,
    ServerEvent,
    SharedReport,
    SyncRequest,
    SyncResponse,
    TokenRefresh,
    Trend,
    Vector,
)
from omega.protocol.quantize import to_vector

# Lone surrogates cannot be UTF-8 encoded: they are not valid strings on any wire.
_chars = st.characters(exclude_categories=["Cs"])
ids = st.text(_chars, min_size=1, max_size=24) | st.text(_chars, min_size=100, max_size=128)
short_text = st.text(_chars, min_size=1, max_size=40)
versions = st.integers(0, 2**63 - 1)
counts = st.integers(1, 2**31 - 1)
cells = st.integers(0, MAX_CELL - 1)
unit = st.floats(0.0, 1.0)
finite = st.floats(allow_nan=False, allow_infinity=False)

contexts = st.builds(
    PatternContext,
    time_bucket=st.sampled_from(["morning", "afternoon", "evening", "night", "any"]),
    day_type=st.sampled_from(["weekday", "weekend", "any"]),
)


@st.composite
def _task_and_cells(draw: st.DrawFn) -> tuple[str, tuple[int, ...]]:
    task = draw(st.sampled_from(["preference", "recommendation", "discovery", "behaviour"]))
    arity = 2 if task == "recommendation" else 1
    return task, tuple(draw(st.lists(cells, min_size=arity, max_size=arity)))


@st.composite
def patterns(draw: st.DrawFn, pattern_id: str) -> Pattern:
    task, pattern_cells = draw(_task_and_cells())
    return Pattern(
        id=pattern_id,
        task=task,  # type: ignore[arg-type]
        cells=pattern_cells,
        context=draw(contexts),
        success_rate=draw(unit),
        support=draw(counts),
        version=draw(versions),
    )


@st.composite
def consolidated(draw: st.DrawFn, pattern_id: str) -> ConsolidatedPattern:
    task, pattern_cells = draw(_task_and_cells())
    return ConsolidatedPattern(
        id=pattern_id,
        task=task,  # type: ignore[arg-type]
        cells=pattern_cells,
        context=draw(contexts),
        success_rate=draw(unit),
        support=draw(counts),
        viewers=draw(counts),
        weight=draw(st.floats(0.0, 1e300)),
        version=draw(versions),
    )


def _seeded_vector(seed: int, encoding: str) -> Vector:
    values = np.random.default_rng(seed).standard_normal(EMBEDDING_DIM)
    return to_vector(values, encoding)  # type: ignore[arg-type]


vectors = st.one_of(
    st.builds(_seeded_vector, st.integers(0, 2**32 - 1), st.sampled_from(["f16", "int8"])),
    st.builds(
        Vector,
        encoding=st.just("int8"),
        dim=st.just(EMBEDDING_DIM),
        data=st.binary(min_size=EMBEDDING_DIM, max_size=EMBEDDING_DIM),
        scale=st.floats(1e-300, MAX_INT8_SCALE),
    ),
)

content_updates = st.builds(ContentUpdate, item_id=ids, embedding=vectors)
registrations = st.builds(
    Registration, device_model=short_text, region=ids, client_version=short_text
)
registration_responses = st.builds(
    RegistrationResponse,
    viewer_id=ids,
    access_token=st.text(_chars, min_size=1, max_size=600),
    refresh_token=st.text(_chars, min_size=1, max_size=600),
    expires_in=st.integers(0, 86_400),
)
token_refreshes = st.builds(TokenRefresh, refresh_token=st.text(_chars, min_size=1, max_size=600))


@st.composite
def frequency_reports(draw: st.DrawFn) -> FrequencyReport:
    buckets = draw(st.integers(2, 100_000))
    return FrequencyReport(
        seed=draw(st.integers(0, 2**63 - 1)),
        value=draw(st.integers(0, buckets - 1)),
        buckets=buckets,
        epsilon=draw(st.floats(0.0, 20.0, exclude_min=True)),
    )


item_scores = st.builds(
    ItemScore, item_id=ids, score=st.floats(0.0, allow_nan=False, allow_infinity=False)
)


@st.composite
def push_requests(draw: st.DrawFn, viewer_id: str | None = None) -> PushRequest:
    unique = draw(st.lists(ids, unique=True, max_size=12))
    n_added = draw(st.integers(0, len(unique)))
    n_updated = draw(st.integers(0, len(unique) - n_added))
    added = [draw(patterns(i)) for i in unique[:n_added]]
    updated = [draw(patterns(i)) for i in unique[n_added : n_added + n_updated]]
    return PushRequest(
        viewer_id=viewer_id if viewer_id is not None else draw(ids),
        batch_id=draw(ids),
        codebook_id=draw(ids),
        added=added,
        updated=updated,
        removed=unique[n_added + n_updated :],
        client_version=draw(short_text),
        reports=draw(st.lists(frequency_reports(), max_size=1)),
        shares=draw(st.lists(shared_reports, max_size=1)),
    )


_part = st.binary(min_size=1, max_size=512)
shared_reports = st.builds(
    SharedReport, size=st.integers(1, 1 << 20), public=_part, leader=_part, helper=_part
)
push_acks = st.builds(
    PushAck,
    batch_id=ids,
    accepted=st.lists(ids, max_size=8),
    rejected=st.lists(st.builds(Rejection, pattern_id=ids, reason=short_text), max_size=4),
    server_version=versions,
)
pull_requests = st.builds(
    PullRequest,
    viewer_id=ids,
    since_version=versions,
    max_bytes=st.integers(1, 1 << 22),
    region=ids,
    interests=st.lists(cells, max_size=16),
)


@st.composite
def pull_responses(draw: st.DrawFn) -> PullResponse:
    unique = draw(st.lists(ids, unique=True, max_size=12))
    n_patterns = draw(st.integers(0, len(unique)))
    return PullResponse(
        version=draw(versions),
        patterns=[draw(consolidated(i)) for i in unique[:n_patterns]],
        removed=unique[n_patterns:],
        trends=draw(
            st.lists(
                st.builds(Trend, cell=cells, region=ids, score=finite, version=versions),
                max_size=6,
            )
        ),
        content=draw(
            st.lists(st.builds(ContentUpdate, item_id=ids, embedding=vectors), max_size=2)
        ),
        next_sync_after=draw(st.floats(0.0, 30 * 86_400.0)),
        more=draw(st.booleans()),
        popular=draw(st.lists(item_scores, max_size=6)),
    )


@st.composite
def sync_requests(draw: st.DrawFn) -> SyncRequest:
    pull = draw(pull_requests)
    push = draw(st.none() | push_requests(viewer_id=pull.viewer_id))
    return SyncRequest(pull=pull, push=push)


sync_responses = st.builds(SyncResponse, pull=pull_responses(), ack=st.none() | push_acks)
_event_values: st.SearchStrategy[Any] = st.one_of(
    st.integers(-(2**63), 2**64 - 1), finite, st.text(_chars, max_size=40)
)
server_events = st.builds(
    ServerEvent,
    kind=st.sampled_from(["release", "trend"]),
    version=versions,
    data=st.dictionaries(ids, _event_values, max_size=6),
)
problems = st.builds(
    ProblemDetail,
    title=short_text,
    status=st.integers(100, 599),
    detail=st.text(_chars, max_size=200),
    type=st.sampled_from(["about:blank", "https://omega.example/problems/rate-limited"]),
)

STRATEGIES: dict[type, st.SearchStrategy[Any]] = {
    Registration: registrations,
    RegistrationResponse: registration_responses,
    TokenRefresh: token_refreshes,
    PushRequest: push_requests(),
    PushAck: push_acks,
    PullRequest: pull_requests,
    PullResponse: pull_responses(),
    SyncRequest: sync_requests(),
    SyncResponse: sync_responses,
    ServerEvent: server_events,
    ProblemDetail: problems,
}
messages: st.SearchStrategy[Message] = st.one_of(*STRATEGIES.values())
