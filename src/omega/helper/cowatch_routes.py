"""The helper's co-watch routes (msgpack bodies; errors are RFC 9457 problems):

- ``POST /helper/v1/cowatch/oprf`` — an attested TV: step one of the OPRF;
- ``POST /helper/v1/cowatch/reports`` — an attested TV: queue sealed reports;
- ``POST /helper/v1/cowatch/batch`` / ``…/ack`` — the leader only (bearer token).

A TV's bad proof is a 401, a request over its epoch's bound a 429 (Retry-After: the
seconds to the next epoch, when the bound renews), a malformed body a
400, a well-formed one with a point not in the group a 422; one malformed report in a
request is answered in ``ReportResponse.errors`` and the rest are queued.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec
from anyio import to_thread
from fastapi import FastAPI, Request
from starlette.responses import Response

from omega.constellation.problems import Problem
from omega.errors import AuthError, InputError
from omega.helper.cowatch import CowatchDesk, OverBudget
from omega.protocol.aggregation import MSGPACK_MEDIA_TYPE as MSGPACK
from omega.protocol.cowatch_wire import BatchAck, OprfRequest, ReportRequest

__all__ = ["install_cowatch_routes"]

#: A TV's request is a few KB; more is not a TV's.
MAX_TV_BODY = 64 * 1024
T = TypeVar("T")


def _decode(body: bytes, kind: type[T]) -> T:
    try:
        return msgspec.msgpack.decode(body, type=kind)
    except msgspec.DecodeError as exc:
        raise Problem(400, f"malformed {kind.__name__}: {exc}", slug="bad-message") from None


async def _tv_body(request: Request) -> bytes:
    if request.headers.get("content-type", "").split(";")[0].strip() != MSGPACK:
        raise Problem(415, f"send {MSGPACK}", slug="unsupported-media-type")
    body = await request.body()
    if len(body) > MAX_TV_BODY:
        raise Problem(413, f"request over {MAX_TV_BODY} bytes", slug="too-large")
    return body


async def _run(job: Callable[[], T], desk: CowatchDesk) -> T:
    """Run a desk call off the event loop, its errors as problems."""
    try:
        return await to_thread.run_sync(job)
    except AuthError as exc:
        raise Problem(401, str(exc), slug="device-proof-refused") from None
    except OverBudget as exc:
        epoch_s = desk.config.epoch_s
        wait = {"Retry-After": str(max(1, math.ceil(epoch_s - desk.clock.now() % epoch_s)))}
        raise Problem(429, str(exc), slug="cowatch-over-budget", headers=wait) from None
    except InputError as exc:  # well-formed, but e.g. a point not in the group
        raise Problem(422, str(exc), slug="unprocessable") from None


def install_cowatch_routes(
    app: FastAPI, desk: CowatchDesk, leader_body: Callable[[Request], Awaitable[bytes]]
) -> None:
    """Add the co-watch routes to the helper's ``app`` (``leader_body``: reads a
    request the leader made, refusing anyone else)."""

    def reply(message: msgspec.Struct) -> Response:
        return Response(msgspec.msgpack.encode(message), media_type=MSGPACK)

    @app.post("/helper/v1/cowatch/oprf", summary="OPRF step one for an attested TV")
    async def cowatch_oprf(request: Request) -> Response:
        asked = _decode(await _tv_body(request), OprfRequest)
        return reply(await _run(lambda: desk.evaluate(asked), desk))

    @app.post("/helper/v1/cowatch/reports", summary="Queue an attested TV's co-watch reports")
    async def cowatch_reports(request: Request) -> Response:
        asked = _decode(await _tv_body(request), ReportRequest)
        return reply(await _run(lambda: desk.submit(asked), desk))

    @app.post("/helper/v1/cowatch/batch", summary="A shuffled batch of reports (leader only)")
    async def cowatch_batch(request: Request) -> Response:
        await leader_body(request)
        return reply(await _run(desk.take_batch, desk))

    @app.post("/helper/v1/cowatch/ack", summary="Forget a batch the leader stored (leader only)")
    async def cowatch_ack(request: Request) -> Response:
        asked = _decode(await leader_body(request), BatchAck)
        await _run(lambda: desk.ack(asked.batch_id), desk)
        return Response(status_code=204)
