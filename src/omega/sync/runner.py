"""``run_sync``: one blocking sync for scripts and the CLI."""

from __future__ import annotations

import asyncio
from typing import Any

from omega.brain import Brain
from omega.sync.client import SyncClient, SyncResult
from omega.sync.endpoints import transport_for
from omega.sync.transport import Transport

__all__ = ["run_sync"]


def run_sync(
    brain: Brain, server: str | Transport, *, fetch_codebook: bool = True, **options: Any
) -> SyncResult:
    """Adopt the server's codebook when it has a new one, then sync once.

    ``server``: a URL or several (``omega.sync.endpoints``: http://, grpc://, h3://), or a
    transport, which is closed afterwards either way. ``options`` go to
    :class:`SyncClient` (``region``, ``max_pull_bytes``, ``retry`` …).
    """
    opened = transport_for(server) if isinstance(server, str) else server

    async def main() -> SyncResult:
        try:
            client = SyncClient(brain, opened, **options)
            if fetch_codebook:
                await client.fetch_codebook()
            return await client.sync()
        finally:
            await opened.aclose()

    return asyncio.run(main())
