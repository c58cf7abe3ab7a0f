"""A browser TV, run in Pyodide: it registers with a real constellation, syncs through
``fetch`` with :class:`omega.wasm.BrowserSync` (a push of three patterns and a pull), and
tries an old answer on a new request. ``/io/config.json`` says where; it writes what came
of it to ``/io/result.json``."""

from __future__ import annotations

import json

from pyodide.http import pyfetch

from omega.errors import OmegaError
from omega.protocol import (
    BINARY_MEDIA_TYPE,
    Pattern,
    PullRequest,
    PushRequest,
    Registration,
    RegistrationResponse,
    codec,
)
from omega.wasm import BrowserSync


async def post(url: str, body: bytes, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": BINARY_MEDIA_TYPE, "Accept": BINARY_MEDIA_TYPE}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    answer = await pyfetch(url, method="POST", body=body, headers=headers)
    return answer.status, await answer.bytes()


async def main() -> None:
    with open("/io/config.json") as given:
        config = json.load(given)
    base = config["base_url"]
    status, body = await post(f"{base}/api/omega/viewers", codec.encode(Registration()))
    registered = codec.decode(body, expect=RegistrationResponse)
    sync = BrowserSync(registered.release_keys)
    patterns = [
        Pattern(id=f"p{n}", task="preference", cells=(n,), success_rate=0.9, support=5)
        for n in range(3)
    ]
    viewer = registered.viewer_id
    push = PushRequest(
        viewer_id=viewer, batch_id="b1", codebook_id=config["codebook"], added=patterns
    )
    exchange = sync.request(PullRequest(viewer_id=viewer), push)
    status, answer = await post(f"{base}/api/omega/sync", exchange.frame, registered.access_token)
    reply = sync.open(exchange, answer)
    try:
        sync.open(sync.request(PullRequest(viewer_id=viewer)), answer)
        replayed = "applied"
    except OmegaError as exc:
        replayed = f"{type(exc).__name__}: {exc}"
    result = {
        "viewer_id": viewer,
        "status": status,
        "accepted": reply.ack.accepted if reply.ack is not None else None,
        "version": reply.pull.version,
        "trusted": sorted(sync.keys()),
        "replayed": replayed,
    }
    with open("/io/result.json", "w") as out:
        json.dump(result, out)
