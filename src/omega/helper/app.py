"""``create_helper_app(service) -> FastAPI``: the helper over HTTP (``omega helper serve``).

Routes (msgpack bodies, ``application/msgpack``; errors are RFC 9457 problems):

- ``GET /helper/v1/info`` — public: the X25519 key devices seal to, the minimum batch
  and the noise level (devices and operators check these);
- ``POST /helper/v1/prepare`` and ``POST /helper/v1/aggregate`` — the leader only
  (bearer token derived from the shared secret), see ``omega.protocol.aggregation``;
- ``GET /healthz`` and ``GET /metrics`` (Prometheus).

The work is CPU-bound numpy and AES; it runs in a worker thread so the event loop keeps
answering health checks.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from anyio import to_thread
from fastapi import Depends, FastAPI, Request, Security
from fastapi.security import HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from starlette.responses import Response

from omega.constellation.guards import known_query_only
from omega.constellation.openapi import (
    document_components,
    json_reply_doc,
    media_body_doc,
    media_reply_doc,
    problem_responses,
)
from omega.constellation.problems import Problem, install_problem_handlers
from omega.helper.cowatch import CowatchDesk
from omega.helper.cowatch_routes import install_cowatch_routes
from omega.helper.service import HelperService
from omega.protocol.aggregation import MSGPACK_MEDIA_TYPE as MSGPACK
from omega.protocol.aggregation import (
    AggregateRequest,
    AggregateResponse,
    BatchTooSmall,
    HelperInfo,
    PrepareRequest,
    PrepareResponse,
)
from omega.protocol.messages import ProblemDetail

__all__ = ["create_helper_app", "info_of"]

#: A request of 5,000 reports is about 2.5 MB.
MAX_BODY = 8 * 1024 * 1024
T = TypeVar("T")

#: For the OpenAPI document only: ``body_of`` checks the token, so that a missing or
#: wrong one is a 401 problem.
_LEADER_TOKEN = HTTPBearer(
    scheme_name="leaderToken",
    description="The leader's token, derived from the secret the two servers share.",
    auto_error=False,
)
_LEADER_ONLY = [Security(_LEADER_TOKEN)]


def _call_doc(request: str, answer: str, *problems: int) -> dict[str, Any]:
    """A leader's call: a msgpack ``request`` answered by a msgpack ``answer``."""
    return {
        "openapi_extra": media_body_doc(MSGPACK, request),
        "responses": media_reply_doc(MSGPACK, answer)
        | problem_responses(400, 401, 413, 415, 422, *problems),
        "response_class": Response,
        "dependencies": _LEADER_ONLY,
    }


def _decode(body: bytes, kind: type[T]) -> T:
    try:
        return msgspec.msgpack.decode(body, type=kind)
    except msgspec.DecodeError as exc:
        raise Problem(400, f"malformed {kind.__name__}: {exc}", slug="bad-message") from None


def create_helper_app(service: HelperService, cowatch: CowatchDesk | None = None) -> FastAPI:
    """The helper's routes over ``service`` (the work itself is in :class:`HelperService`),
    and the co-watch routes over ``cowatch`` when given (``omega.helper.cowatch_routes``).

    Long because it is one sequence: the app, its metrics, then each route registered in
    turn, closing over both."""
    app = FastAPI(
        title="Omega helper",
        summary="The second server of two-server popularity counting",
        version="1",
        dependencies=[Depends(known_query_only)],
    )
    install_problem_handlers(app)
    registry = CollectorRegistry()
    reports = Counter(
        "omega_helper_reports",
        "Reports the helper checked, by request and outcome",
        ["step", "outcome"],
        registry=registry,
    )
    batches = Counter(
        "omega_helper_batches", "Aggregate requests by outcome", ["outcome"], registry=registry
    )

    async def body_of(request: Request) -> bytes:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not service.check_token(token.strip()):
            raise Problem(401, "the helper answers only its leader (bearer token)")
        if request.headers.get("content-type", "").split(";")[0].strip() != MSGPACK:
            raise Problem(415, f"send {MSGPACK}", slug="unsupported-media-type")
        body = await request.body()
        if len(body) > MAX_BODY:
            raise Problem(413, f"request over {MAX_BODY} bytes", slug="too-large")
        return body

    @app.get(
        "/helper/v1/info",
        summary="The helper's public key and batch rules",
        response_class=Response,
        responses=json_reply_doc("HelperInfo"),
    )
    async def info() -> Response:
        doc = service.info()
        if cowatch is not None:
            rules = cowatch.config
            doc = msgspec.structs.replace(
                doc, cowatch_per_epoch=rules.per_epoch, cowatch_epoch_s=rules.epoch_s
            )
        return Response(msgspec.json.encode(doc), media_type="application/json")

    @app.post(
        "/helper/v1/prepare",
        summary="Open and check a batch of reports (leader only)",
        **_call_doc("PrepareRequest", "PrepareResponse"),
    )
    async def prepare(request: Request) -> Response:
        asked = _decode(await body_of(request), PrepareRequest)
        answer = await to_thread.run_sync(service.prepare, asked)
        for a in answer.answers:
            reports.labels("prepare", "error" if a.error else "ok").inc()
        return Response(msgspec.msgpack.encode(answer), media_type=MSGPACK)

    @app.post(
        "/helper/v1/aggregate",
        summary="Aggregate a checked batch (leader only)",
        **_call_doc("AggregateRequest", "AggregateResponse", 409),
    )
    async def aggregate(request: Request) -> Response:
        asked = _decode(await body_of(request), AggregateRequest)
        try:
            answer = await to_thread.run_sync(service.aggregate, asked)
        except BatchTooSmall as exc:
            batches.labels("too_small").inc()
            raise Problem(409, str(exc), slug="batch-too-small") from None
        batches.labels("aggregated").inc()
        for ok in answer.accepted:
            reports.labels("aggregate", "accepted" if ok else "refused").inc()
        return Response(msgspec.msgpack.encode(answer), media_type=MSGPACK)

    if cowatch is not None:
        install_cowatch_routes(app, cowatch, body_of)

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    document_components(
        app,
        [
            HelperInfo,
            PrepareRequest,
            PrepareResponse,
            AggregateRequest,
            AggregateResponse,
            ProblemDetail,
        ],
    )
    return app


def info_of(body: bytes) -> HelperInfo:
    """Parse ``GET /helper/v1/info`` (what a device or the leader fetched)."""
    return msgspec.json.decode(body, type=HelperInfo)
