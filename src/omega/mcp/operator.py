"""The constellation's admin API, as the core tools call it: one method per route.

:class:`Operator` speaks HTTP through an ``omega.sync`` transport with the admin token:
``HttpTransport`` to a running ``omega serve`` (``omega mcp core --server URL``), or an
in-process ``AsgiTransport`` onto the very app that mounts the tools at ``/mcp``. Either
way each tool runs the route's own code, so there is one implementation of each.

Answers other than 2xx become Omega errors carrying the problem's ``detail`` sentence: a
refused admin token an :class:`AuthError`, anything else a :class:`ServerError`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from omega.errors import AuthError, RemoteProtocolError, ServerError
from omega.sync import Response, Transport

__all__ = ["Operator"]


class Operator:
    """Admin calls to one constellation (see the module docstring)."""

    def __init__(self, transport: Transport, admin_token: str) -> None:
        self.transport = transport
        self._headers = {"Authorization": f"Bearer {admin_token}", "Accept": "application/json"}

    async def aclose(self) -> None:
        await self.transport.aclose()

    # -- the routes ----------------------------------------------------------------------
    async def codebook(self) -> dict[str, Any] | None:
        """The current codebook's summary; None before one is published."""
        return await self._call("GET", "/api/omega/admin/codebook", missing_ok=True)

    async def publish_codebook(self, document: dict[str, Any]) -> dict[str, Any]:
        return await self._need("POST", "/api/omega/codebook", document)

    async def trust(self, document: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Trust a manufacturer key; the stored key, and whether it is new."""
        answer = await self._send("POST", "/api/omega/manufacturers", document)
        return _json(answer), answer.status == 201

    async def provision(self, document: dict[str, Any]) -> dict[str, Any]:
        return await self._need("POST", "/api/omega/admin/viewers", document)

    async def stats(self) -> dict[str, Any]:
        return await self._need("GET", "/api/omega/stats")

    async def run_round(self) -> dict[str, Any]:
        return await self._need("POST", "/api/omega/rounds")

    async def announce(self, document: dict[str, Any]) -> dict[str, Any]:
        return await self._need("POST", "/api/omega/admin/announce", document)

    async def release(self, limit: int) -> dict[str, Any]:
        return await self._need("GET", f"/api/omega/admin/release?limit={limit}")

    async def consensus(self, pattern_id: str) -> dict[str, Any]:
        return await self._need("GET", f"/api/omega/admin/consensus/{quote(pattern_id, safe='')}")

    async def prune(self, document: dict[str, Any]) -> dict[str, Any]:
        return await self._need("POST", "/api/omega/admin/prune", document)

    # -- the wire ------------------------------------------------------------------------
    async def _need(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        answer = await self._call(method, path, body)
        assert answer is not None
        return answer

    async def _call(
        self, method: str, path: str, body: Any = None, *, missing_ok: bool = False
    ) -> dict[str, Any] | None:
        answer = await self._send(method, path, body, missing_ok=missing_ok)
        return None if answer.status == 404 and missing_ok else _json(answer)

    async def _send(
        self, method: str, path: str, body: Any = None, *, missing_ok: bool = False
    ) -> Response:
        headers = dict(self._headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        answer = await self.transport.request(method, path, body=data, headers=headers)
        if 200 <= answer.status < 300 or (answer.status == 404 and missing_ok):
            return answer
        detail = _detail(answer)
        if answer.status == 401:
            raise AuthError(f"the constellation refused the admin token: {detail}")
        raise ServerError(answer.status, detail)


def _json(answer: Response) -> dict[str, Any]:
    try:
        value = json.loads(answer.body)
    except ValueError:
        raise RemoteProtocolError("the constellation answered with something not JSON") from None
    if not isinstance(value, dict):
        raise RemoteProtocolError("the constellation answered with JSON that is not an object")
    return value


def _detail(answer: Response) -> str:
    """The problem's ``detail``, else the start of the body."""
    try:
        detail = json.loads(answer.body).get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, str) and detail:
        return detail
    return answer.body.decode(errors="replace")[:200] or f"HTTP {answer.status}"
