"""``run_sync``: one blocking sync for scripts and the CLI."""

from __future__ import annotations

import asyncio
from typing import Any

from omega.brain import Brain
from omega.sync.client import SyncClient, SyncResult
from omega.sync.transport import HttpTransport

__all__ = ["run_sync"]


def run_sync(
    brain: Brain, base_url: str, *, fetch_codebook: bool = True, **options: Any
) -> SyncResult:
    """Adopt the server's codebook when it has a new one, then sync once over HTTP.

    ``options`` go to :class:`SyncClient` (``region``, ``max_pull_bytes``, ``retry`` …).
    """

    async def main() -> SyncResult:
        async with HttpTransport(base_url) as transport:
            client = SyncClient(brain, transport, **options)
            if fetch_codebook:
                await client.fetch_codebook()
            return await client.sync()

    return asyncio.run(main())
