"""``/dashboard``: the operator's live page, its login, and the JSON it polls.

- ``GET /dashboard``: the page once logged in, else a login form. ``POST
  /dashboard/login`` takes the admin token from the form (never a query string, which
  access logs keep) and sets an HttpOnly, SameSite=Strict session cookie; ``POST
  /dashboard/logout`` ends the session.
- ``GET /dashboard/assets/{name}``: the page's script and style, and Plotly's
  ``plotly.min.js`` from the ``plotly`` package (no CDN: the page works offline).
- ``GET /api/omega/dashboard/series``: the sampler's ring of ``Sample`` points.
- ``GET /api/omega/dashboard/state``: everything else the page shows (the counts of
  ``/api/omega/stats``, running totals, the quality heatmap, consensus health, trends by
  region, the round history). Both JSON routes take the admin bearer token or the
  session cookie, so other tools can read them too.
"""

from __future__ import annotations

import functools
import html
import importlib.util
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

import msgspec
from fastapi import APIRouter, Depends, Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from omega.constellation._runtime import Runtime, runtime_of
from omega.constellation._wire import read_body
from omega.constellation.dashboard import ACTIVE_WINDOW_S, Dashboard, RoundRecord
from omega.constellation.guards import ADMIN_ROUTE, bearer_token
from omega.constellation.openapi import problem_responses
from omega.constellation.panels import (
    consensus_health,
    heatmap,
    round_points,
    trends_by_region,
)
from omega.constellation.problems import Problem
from omega.errors import AuthError, ConfigError

__all__ = ["SESSION_COOKIE", "router"]

router = APIRouter(tags=["dashboard"])

SESSION_COOKIE = "omega_dashboard"
_STATIC = resources.files("omega.constellation") / "static"
_OWN_ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
_LOGIN_LIMIT = 4096


def dashboard_of(request: Request) -> Dashboard:
    dashboard = getattr(request.app.state, "dashboard", None)
    assert isinstance(dashboard, Dashboard), "the lifespan has not started"
    return dashboard


def _logged_in(request: Request) -> bool:
    return dashboard_of(request).sessions.valid(request.cookies.get(SESSION_COOKIE))


async def require_operator(request: Request) -> None:
    """The admin bearer token, or a dashboard session cookie."""
    token = bearer_token(request)
    if token is not None:
        runtime_of(request).admin.check(token)
    elif not _logged_in(request):
        raise AuthError("this endpoint needs the admin token or a dashboard login")


Operator = Annotated[None, Depends(require_operator)]


def _page(name: str, **values: str) -> str:
    text = (_STATIC / name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


@router.get("/dashboard", include_in_schema=False)
async def page(request: Request) -> HTMLResponse:
    if _logged_in(request):
        return HTMLResponse(_page("dashboard.html"), headers={"Cache-Control": "no-store"})
    return HTMLResponse(_page("login.html", message=""), headers={"Cache-Control": "no-store"})


@router.post("/dashboard/login", include_in_schema=False)
async def login(request: Request) -> Response:
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != "application/x-www-form-urlencoded":
        raise Problem(
            415,
            "post the login form (application/x-www-form-urlencoded)",
            slug="unsupported-media-type",
        )
    form = parse_qs((await read_body(request, limit=_LOGIN_LIMIT)).decode(errors="replace"))
    token = (form.get("token") or [""])[0].strip()
    try:
        runtime_of(request).admin.check(token or None)
    except AuthError as exc:
        message = f'<p class="error" role="alert">{html.escape(str(exc))}.</p>'
        return HTMLResponse(_page("login.html", message=message), status_code=401)
    answer = RedirectResponse("/dashboard", status_code=303)
    answer.set_cookie(
        SESSION_COOKIE,
        dashboard_of(request).sessions.open(),
        max_age=int(dashboard_of(request).sessions.ttl),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return answer


@router.post("/dashboard/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    dashboard_of(request).sessions.close(request.cookies.get(SESSION_COOKIE))
    answer = RedirectResponse("/dashboard", status_code=303)
    answer.delete_cookie(SESSION_COOKIE, path="/")
    return answer


@functools.cache
def plotly_js() -> Path:
    """``plotly.min.js`` inside the installed ``plotly`` package (not imported)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:
        raise ConfigError("the plotly package is not installed: pip install plotly")
    path = Path(spec.origin).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise ConfigError(f"the plotly package has no {path.name} ({path})")
    return path


@router.get("/dashboard/assets/{name}", include_in_schema=False)
async def asset(name: str) -> Response:
    cache = {"Cache-Control": "public, max-age=3600"}
    if name == "plotly.min.js":
        return FileResponse(plotly_js(), media_type="text/javascript", headers=cache)
    if name not in _OWN_ASSETS:
        raise Problem(404, f"no dashboard asset {name!r}", slug="not-found")
    body = (_STATIC / name).read_bytes()
    return Response(body, media_type=_OWN_ASSETS[name], headers=cache)


def _json(document: Any) -> Response:
    return Response(
        msgspec.json.encode(document),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


@router.get(
    "/api/omega/dashboard/series",
    summary="The dashboard's time series: one sample per interval, newest last (admin)",
    tags=["management"],
    response_class=Response,
    responses=problem_responses(*ADMIN_ROUTE),
)
async def series(request: Request, _: Operator) -> Response:
    sampler = dashboard_of(request).sampler
    return _json(
        {
            "interval_s": sampler.interval,
            "capacity": sampler.capacity,
            "active_window_s": ACTIVE_WINDOW_S,
            "samples": list(sampler.samples),
        }
    )


@router.get(
    "/api/omega/dashboard/state",
    summary="The dashboard's current panels: counts, totals, heatmap, consensus (admin)",
    tags=["management"],
    response_class=Response,
    responses=problem_responses(*ADMIN_ROUTE),
)
async def state(request: Request, _: Operator) -> Response:
    runtime, dashboard = runtime_of(request), dashboard_of(request)
    # Read here, on the event loop that changes them; the store on a worker thread.
    active = dashboard.traffic.active(ACTIVE_WINDOW_S)
    rounds = list(dashboard.rounds.rounds)
    document = await runtime.db(lambda: _state(runtime, dashboard, rounds))
    document["active_devices"] = active
    return _json(document)


def _state(runtime: Runtime, dashboard: Dashboard, rounds: list[RoundRecord]) -> dict[str, Any]:
    """The state document but ``active_devices`` (on a worker thread: it reads the store)."""
    storage = runtime.storage
    s = storage.stats()
    version, released = storage.current_release()
    codebook = runtime.codebooks.get()
    config = runtime.rounds.federation_config()
    last = next((r for r in reversed(rounds) if r.stats is not None), None)
    totals = dashboard.sampler.counters()
    return {
        "stats": {
            "viewers": s.viewers,
            "pending_contributions": s.pending_contributions,
            "live_patterns": s.live_patterns,
            "released_patterns": s.released_patterns,
            "version": s.version,
            "event_subscribers": runtime.broker.subscribers,
            "sync_rate_per_s": runtime.pacer.rate(),
        },
        "totals": {
            "syncs": totals.syncs,
            "push_bytes": totals.push_bytes,
            "pull_bytes": totals.pull_bytes,
            "errors": totals.errors,
            "rate_limited": totals.rate_limited,
            "rejected": totals.rejected,
            "reports": totals.reports,
            "epsilon": totals.epsilon,
        },
        "heatmap": heatmap(version, released, codebook.k if codebook else 0),
        "consensus": consensus_health(
            last,
            released,
            min_viewers=config.min_viewers,
            min_agreement=config.min_agreement,
            fusion=config.fusion,
            trim=config.trim,
        ),
        "trends": trends_by_region(storage.current_trends()),
        "rounds": round_points(rounds),
    }
