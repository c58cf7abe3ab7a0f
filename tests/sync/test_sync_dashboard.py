"""The operator's ``/dashboard`` in a real browser: a fleet of TV brains syncs through a
real server, a round releases what they learned, and headless chromium (Debian's, over
the DevTools protocol) logs in through the form, waits for the page to draw the data and
takes a 1280×800 screenshot. The picture must have every panel drawn with data (coloured
pixels in each panel's box, not a blank page or an empty-state message) and the numbers
on the page must be the server's own (``/api/omega/stats``)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from _chromium import Page, chromium_page
from _sync_world import ADMIN_TOKEN, Server, open_brain, start_server, watch
from PIL import Image

from omega.clock import ManualClock
from omega.protocol import codec
from omega.protocol.messages import Registration
from omega.sync import run_sync

WIDTH, HEIGHT = 1280, 800
#: (region, cells watched) of each TV: three per region, most cells shared so both
#: regions and ``global`` have enough viewers for releases and trends.
FLEET = [
    ("eu-west", [0, 1, 2, 3]),
    ("eu-west", [0, 1, 2, 4]),
    ("eu-west", [0, 1, 3, 4]),
    ("us-east", [0, 2, 3, 5]),
    ("us-east", [0, 1, 2, 5]),
    ("us-east", [1, 2, 3, 5]),
]
PANELS = (
    "devices",
    "syncs",
    "bytes",
    "heatmap",
    "consensus",
    "trends",
    "rounds",
    "privacy",
    "errors",
)
#: Registrations this server takes per address per window: the fleet's, then 429s.
REGISTRATIONS = len(FLEET) + 1


def _drive_fleet(server: Server, root: Path) -> None:
    """Each TV learns and pushes, a round releases, each TV pulls the release; then a few
    registrations over the limit (429) and a request without a token (401)."""
    clock = ManualClock()
    tvs = []
    for n, (region, cells) in enumerate(FLEET):
        tv = open_brain(root / f"tv{n}", ManualClock(clock.now()))
        watch(tv, tv.clock, cells)  # type: ignore[arg-type]
        assert run_sync(tv, server.base_url, region=region).pushed > 0
        tvs.append(tv)
    assert server.run_round()["result"]["status"] == "released"
    for tv in tvs:
        assert run_sync(tv, server.base_url).pulled > 0
        tv.close()
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        statuses = [
            client.post(
                "/api/omega/viewers",
                content=codec.encode(Registration()),
                headers={"Content-Type": "application/x-omega"},
            ).status_code
            for _ in range(3)
        ]
        assert statuses.count(429) >= 2, statuses
        assert client.get("/api/omega/stats").status_code == 401


async def _look(page: Page, base_url: str, shot: Path, syncs: int) -> dict[str, Any]:
    """Log in through the form, wait until the page has drawn the fleet's ``syncs``,
    screenshot; returns what the page shows."""
    await page.send("Page.navigate", url=base_url + "/dashboard")
    await page.until("document.querySelector('form input[name=token]') !== null")
    await page.evaluate(
        f"document.getElementById('token').value = {json.dumps(ADMIN_TOKEN)};"
        "document.querySelector('form').requestSubmit(); true"
    )
    await page.until(
        "location.pathname === '/dashboard' && document.getElementById('panel-devices')"
        " && Number(document.body.dataset.refreshes || 0) >= 2"
        f" && document.getElementById('stat-syncs').textContent === '{syncs}'"
    )
    shown = await page.evaluate(
        "JSON.stringify({"
        " stats: Object.fromEntries([...document.querySelectorAll('.tiles dd')]"
        "   .map((d) => [d.id, d.textContent])),"
        " panels: Object.fromEntries([...document.querySelectorAll('.chart')].map((c) => {"
        "   const r = c.getBoundingClientRect(); return [c.id, [r.x, r.y, r.width, r.height]];"
        " })),"
        " empty: [...document.querySelectorAll('.empty')].map((e) => e.textContent),"
        " cookie: document.cookie, status: document.getElementById('status').textContent,"
        " version: document.body.dataset.version })"
    )
    await page.screenshot(shot)
    result: dict[str, Any] = json.loads(shown)
    return result


def _coloured_pixels(image: Image.Image, box: list[float]) -> int:
    """Pixels in ``box`` that are clearly coloured (traces, bars, heatmap cells), not the
    white background or the grey of axes, grid lines and text."""
    x, y, w, h = (int(v) for v in box)
    pixels = np.asarray(image.convert("RGB").crop((x, y, x + w, y + h)), dtype=np.int16)
    return int(((pixels.max(axis=2) - pixels.min(axis=2)) > 60).sum())


def test_the_dashboard_draws_a_live_fleet_in_a_real_browser(tmp_path: Path) -> None:
    server = start_server(
        tmp_path / "server",
        OMEGA_DASHBOARD_SAMPLE_INTERVAL="0.5",
        OMEGA_REGISTRATION_RATE_LIMIT=str(REGISTRATIONS),
    )
    try:
        server.publish_codebook()
        _drive_fleet(server, tmp_path)
        shot = tmp_path / "dashboard.png"

        async def look() -> dict[str, Any]:
            async with chromium_page(tmp_path / "profile", width=WIDTH, height=HEIGHT) as page:
                return await _look(page, server.base_url, shot, 2 * len(FLEET))

        shown = asyncio.run(look())
        stats = server.stats()
        with httpx.Client(base_url=server.base_url, headers=server.admin()) as client:
            series = client.get("/api/omega/dashboard/series").json()
            state_doc = client.get("/api/omega/dashboard/state").json()
    finally:
        server.stop()
    if os.environ.get("OMEGA_DASHBOARD_SCREENSHOT"):  # docs/dashboard.png comes from here
        shutil.copy(shot, os.environ["OMEGA_DASHBOARD_SCREENSHOT"])

    # The numbers on the page are the server's.
    tiles = shown["stats"]
    assert tiles["stat-viewers"] == str(stats["viewers"]) == str(REGISTRATIONS)
    assert tiles["stat-version"] == f"v{stats['version']}"
    assert tiles["stat-released"] == str(stats["released_patterns"])
    assert tiles["stat-live"] == str(stats["live_patterns"])
    assert tiles["stat-pending"] == str(stats["pending_contributions"])
    assert tiles["stat-active"] == str(len(FLEET))
    assert tiles["stat-syncs"] == str(2 * len(FLEET)) == str(int(state_doc["totals"]["syncs"]))
    assert "omega_dashboard" not in shown["cookie"]  # the session cookie is HttpOnly
    assert shown["empty"] == [], shown["empty"]  # every panel has data to draw

    # What the series and state say is what the fleet did.
    samples = series["samples"]
    assert any((s["syncs_per_s"] or 0) > 0 for s in samples)
    assert any(s["p95_ms"] is not None for s in samples)
    assert any((s["push_bytes_per_s"] or 0) > 0 for s in samples)
    assert any((s["pull_bytes_per_s"] or 0) > 0 for s in samples)
    assert any((s["rate_limited_per_s"] or 0) > 0 for s in samples)
    assert state_doc["totals"]["epsilon"] > 0
    assert state_doc["consensus"]["released"] == stats["released_patterns"] > 0
    assert [r["status"] for r in state_doc["rounds"]] == ["released"]
    assert state_doc["rounds"][0]["trends"] == sum(r["trends"] for r in state_doc["trends"]) > 0

    # The picture: 1280×800, every panel on screen with coloured marks in it.
    image = Image.open(shot)
    assert image.size == (WIDTH, HEIGHT)
    for name in PANELS:
        x, y, w, h = shown["panels"][f"panel-{name}"]
        assert x >= 0 and y >= 0 and x + w <= WIDTH and y + h <= HEIGHT, (name, x, y, w, h)
        assert _coloured_pixels(image, [x, y, w, h]) > 150, f"panel {name} looks empty"
