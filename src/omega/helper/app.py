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
from fastapi import FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from starlette.responses import Response

from omega.constellation.problems import Problem, install_problem_handlers
from omega.helper.service import HelperService
from omega.protocol.aggregation import MSGPACK_MEDIA_TYPE as MSGPACK
from omega.protocol.aggregation import (
    AggregateRequest,
    BatchTooSmall,
    HelperInfo,
    PrepareRequest,
)

__all__ = ["create_helper_app", "info_of"]

#: A request of 5,000 reports is about 2.5 MB.
MAX_BODY = 8 * 1024 * 1024
T = TypeVar("T")


def _decode(body: bytes, kind: type[T]) -> T:
    try:
        return msgspec.msgpack.decode(body, type=kind)
    except msgspec.DecodeError as exc:
        raise Problem(400, f"malformed {kind.__name__}: {exc}", slug="bad-message") from None


def create_helper_app(service: HelperService) -> FastAPI:
    """The helper's routes over ``service`` (the work itself is in :class:`HelperService`).

    Long because it is one sequence: the app, its metrics, then each route registered in
    turn, closing over both."""
    app = FastAPI(
        title="Omega helper",
        summary="The second server of two-server popularity counting",
        version="1",
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

    @app.get("/helper/v1/info", summary="The helper's public key and batch rules")
    async def info() -> Response:
        return Response(msgspec.json.encode(service.info()), media_type="application/json")

    @app.post("/helper/v1/prepare", summary="Open and check a batch of reports (leader only)")
    async def prepare(request: Request) -> Response:
        asked = _decode(await body_of(request), PrepareRequest)
        answer = await to_thread.run_sync(service.prepare, asked)
        for a in answer.answers:
            reports.labels("prepare", "error" if a.error else "ok").inc()
        return Response(msgspec.msgpack.encode(answer), media_type=MSGPACK)

    @app.post("/helper/v1/aggregate", summary="Aggregate a checked batch (leader only)")
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

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def info_of(body: bytes) -> HelperInfo:
    """Parse ``GET /helper/v1/info`` (what a device or the leader fetched)."""
    return msgspec.json.decode(body, type=HelperInfo)
