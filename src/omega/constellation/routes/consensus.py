"""``GET /api/omega/admin/consensus/{pattern_id}`` (admin): why a pattern is released or
withheld; ``GET /api/omega/admin/release``: the current release's patterns, best first
(the ids to ask about).

It reads what a round would read (the current codebook's live patterns within the
round's age, without viewers of revoked manufacturer keys) and judges the cluster with
the round's own rules (``omega.federation.explain_consensus``), beside what the current
release holds under that id. The two may differ between rounds: the reasons then say
what the next round will do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import msgspec
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from omega.constellation._runtime import Runtime, runtime_of
from omega.constellation.guards import ADMIN_ROUTE, Admin
from omega.constellation.openapi import json_reply_doc, problem_responses
from omega.constellation.problems import Problem
from omega.protocol.messages import ConsolidatedPattern, PatternContext, TaskType
from omega.protocol.validation import MAX_ID_LENGTH

__all__ = ["DOC_TYPES", "ClusterVotes", "ConsensusDocument", "ReleaseDocument", "router"]

router = APIRouter(prefix="/api/omega/admin", tags=["management"])


class ClusterVotes(msgspec.Struct, frozen=True, kw_only=True):
    """The live cluster behind a pattern id, judged now (``omega.federation``:
    ``ConsensusReport``). ``voter_ids`` lists at most 50 of the ``voters``."""

    task: TaskType
    context: PatternContext
    groups: list[int]
    voters: int
    voter_ids: list[str]
    opinions: int
    agreeing: int
    agreement: float
    min_viewers: int
    min_agreement: float
    released_by_rules: bool


class ConsensusDocument(msgspec.Struct, frozen=True, kw_only=True):
    """``verdict``: whether release ``release_version`` carries the pattern
    (``released``: it, as devices pulled it); ``live``: its cluster now (null when no
    live pattern backs it); ``reasons``: one sentence per rule, and what the next round
    will change."""

    pattern_id: str
    verdict: str
    release_version: int
    released: ConsolidatedPattern | None
    live: ClusterVotes | None
    reasons: list[str]


class ReleaseDocument(msgspec.Struct, frozen=True, kw_only=True):
    """The current release ``version``: its ``total`` patterns, the first ``limit`` of
    them by weight in ``patterns``."""

    version: int
    total: int
    patterns: list[ConsolidatedPattern]


DOC_TYPES: list[type[msgspec.Struct]] = [ClusterVotes, ConsensusDocument, ReleaseDocument]


@dataclass(frozen=True, slots=True)
class _Missing:
    detail: str
    slug: str


@router.get(
    "/release",
    summary="The current release's patterns, best first (admin)",
    response_class=Response,
    responses=json_reply_doc("ReleaseDocument") | problem_responses(*ADMIN_ROUTE, 400),
)
async def release(
    request: Request, _: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> Response:
    runtime = runtime_of(request)
    version, current = await runtime.db(runtime.storage.current_release)
    document = ReleaseDocument(version=version, total=len(current), patterns=current[:limit])
    return Response(msgspec.json.encode(document), media_type="application/json")


@router.get(
    "/consensus/{pattern_id}",
    summary="Why a pattern is released or withheld: voters, agreement, the rules (admin)",
    response_class=Response,
    responses=json_reply_doc("ConsensusDocument") | problem_responses(*ADMIN_ROUTE, 404, 422),
)
async def consensus(pattern_id: str, request: Request, _: Admin) -> Response:
    if not 1 <= len(pattern_id) <= MAX_ID_LENGTH:
        raise Problem(
            422, f"a pattern id is 1..{MAX_ID_LENGTH} characters", slug="invalid-pattern-id"
        )
    runtime = runtime_of(request)
    found = await runtime.db(lambda: _judge(runtime, pattern_id))
    if isinstance(found, _Missing):
        raise Problem(404, found.detail, slug=found.slug)
    return Response(msgspec.json.encode(found), media_type="application/json")


def _judge(runtime: Runtime, wanted: str) -> ConsensusDocument | _Missing:
    """The document for ``wanted`` (on a worker thread: it clusters the live set)."""
    from omega.federation import centroids_of, explain_consensus

    storage = runtime.storage
    codebook = storage.get_codebook()
    if codebook is None:
        return _Missing("no codebook has been published yet", "no-codebook")
    config = runtime.rounds.federation_config()
    now = runtime.clock.now()
    version, current = storage.current_release()
    released = next((p for p in current if p.id == wanted), None)
    live = storage.live_patterns(
        codebook_id=codebook.codebook_id, updated_after=now - config.max_age_s
    )
    revoked = storage.revoked_viewers()
    live = [p for p in live if p.viewer_id not in revoked]
    report = explain_consensus(
        live,
        centroids_of(codebook),
        config,
        now=now,
        codebook_id=codebook.codebook_id,
        wanted=wanted,
    )
    if report is None and released is None:
        return _Missing(
            f"no released pattern and no live cluster has the id {wanted!r}", "no-such-pattern"
        )
    votes = None
    reasons: list[str] = []
    if report is not None:
        votes = ClusterVotes(
            task=report.task,
            context=report.context,
            groups=list(report.groups),
            voters=report.voters,
            voter_ids=list(report.voter_ids),
            opinions=report.opinions,
            agreeing=report.agreeing,
            agreement=report.agreement,
            min_viewers=report.min_viewers,
            min_agreement=report.min_agreement,
            released_by_rules=report.released_by_rules,
        )
        reasons.extend(report.reasons)
    reasons.extend(_outlook(released, votes, version))
    return ConsensusDocument(
        pattern_id=wanted,
        verdict="released" if released is not None else "withheld",
        release_version=version,
        released=released,
        live=votes,
        reasons=reasons,
    )


def _outlook(
    released: ConsolidatedPattern | None, votes: ClusterVotes | None, version: int
) -> list[str]:
    """What the current release says, and what the next round will change."""
    if released is not None and votes is None:
        return [
            f"released in version {released.version}, but no live pattern passing the "
            "quality filter backs it any more: the next round withdraws it"
        ]
    assert votes is not None
    if released is not None and not votes.released_by_rules:
        return [f"released in version {released.version}; the next round withdraws it"]
    if released is not None:
        return [f"released in version {released.version} (current release: {version})"]
    if votes.released_by_rules:
        return ["it meets the rules but no round has run since: the next round releases it"]
    return [f"not in the current release (version {version})"]
