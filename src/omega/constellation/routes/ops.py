"""Liveness and Prometheus metrics (unauthenticated; expose them only where operators reach)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from omega.constellation import scrape
from omega.constellation._runtime import runtime_of

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process serves and its storage answers")
async def healthz(request: Request) -> dict[str, Any]:
    runtime = runtime_of(request)
    return {"status": "ok", "version": runtime.broker.version}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    runtime = runtime_of(request)
    await scrape.refresh(runtime)
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)
