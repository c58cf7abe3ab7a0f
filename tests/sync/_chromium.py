"""Debian's headless ``chromium`` driven over the DevTools protocol (CDP), for tests that
look at a page as an operator would: a small client over aiohttp's WebSocket (no
Playwright: it downloads its own browser builds, and CI has only Debian's).

The browser writes the port it listens on to ``<profile>/DevToolsActivePort``; the
client attaches to the blank page it opened. ``until`` waits for a condition *inside*
the page (a promise polling it), so a test waits for the page, never for a fixed time.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

__all__ = ["Page", "chromium_page"]

FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root (CI too), where the sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)
_GONE = ("Execution context was destroyed", "Cannot find context", "Inspected target navigated")


class Page:
    """One page target: ``send`` a CDP command, ``evaluate`` JavaScript, wait ``until``."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        call = next(self._ids)
        await self._ws.send_str(json.dumps({"id": call, "method": method, "params": params}))
        async for message in self._ws:
            reply = json.loads(message.data)
            if reply.get("id") != call:
                continue  # an event: this client asks for what it needs instead
            if "error" in reply:
                raise RuntimeError(f"{method}: {reply['error'].get('message')}")
            result: dict[str, Any] = reply["result"]
            return result
        raise RuntimeError(f"{method}: the browser closed the connection")

    async def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` (awaited if a promise), or raise its exception."""
        answer = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise RuntimeError(f"page script failed: {text}")
        return answer["result"].get("value")

    async def until(self, condition: str, *, timeout_ms: int = 60_000) -> None:
        """Wait until ``condition`` (a JavaScript expression) is true in the page, across
        navigations; fails with the condition after ``timeout_ms``."""
        poll = (
            "new Promise((ok, fail) => { const start = Date.now(); (function check() {"
            f" let v = false; try {{ v = ({condition}); }} catch (e) {{}}"
            " if (v) ok(true);"
            f" else if (Date.now() - start > {timeout_ms}) fail(new Error('timed out'));"
            " else setTimeout(check, 100); })(); })"
        )
        for _ in range(20):  # each navigation destroys the context an evaluation runs in
            try:
                await self.evaluate(poll)
                return
            except RuntimeError as exc:
                if not any(gone in str(exc) for gone in _GONE):
                    raise RuntimeError(f"waiting for {condition}: {exc}") from None
        raise RuntimeError(f"waiting for {condition}: the page kept navigating")

    async def screenshot(self, path: Path) -> Path:
        shot = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


@asynccontextmanager
async def chromium_page(profile: Path, *, width: int, height: int) -> AsyncIterator[Page]:
    """A headless chromium with a fresh ``profile``; its page sized ``width``×``height``.
    The browser is stopped on the way out."""
    binary = shutil.which("chromium")
    assert binary is not None, "install chromium (the Debian package) to run this test"
    profile.mkdir(parents=True, exist_ok=True)
    log = (profile.parent / "chromium.log").open("wb")
    browser = subprocess.Popen(
        [binary, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        port = await _devtools_port(profile / "DevToolsActivePort", browser)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as answer:
                targets = await answer.json()
            url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            async with http.ws_connect(url, max_msg_size=0) as ws:
                page = Page(ws)
                await page.send(
                    "Emulation.setDeviceMetricsOverride",
                    width=width,
                    height=height,
                    deviceScaleFactor=1,
                    mobile=False,
                )
                yield page
    finally:
        browser.terminate()
        try:
            browser.wait(timeout=30)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait()
        log.close()


async def _devtools_port(active: Path, browser: subprocess.Popen[bytes]) -> int:
    """The port chromium writes to ``DevToolsActivePort`` once it listens."""
    for _ in range(600):  # 60 s
        if browser.poll() is not None:
            raise RuntimeError(f"chromium exited {browser.returncode} (see chromium.log)")
        lines = active.read_text().splitlines() if active.is_file() else []
        if lines and lines[0].isdigit():
            return int(lines[0])
        await asyncio.sleep(0.1)
    raise RuntimeError("chromium did not open its DevTools port within 60 s")
