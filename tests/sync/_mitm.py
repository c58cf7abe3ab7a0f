"""A man in the middle on loopback: a small HTTP/1.1 proxy (asyncio streams) between a
device and a live constellation. It forwards every request as it came and hands every
answer to ``rewrite``, which may send other bytes back in its place."""

from __future__ import annotations

import asyncio
import http
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

import httpx


@dataclass
class Seen:
    """One exchange through the proxy: the request as sent, the server's answer."""

    method: str
    path: str
    request: bytes
    status: int
    content_type: str
    answer: bytes


Rewrite = Callable[[Seen], bytes | None]

_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass
class ManInTheMiddle:
    upstream: str
    rewrite: Rewrite | None = None
    seen: list[Seen] = field(default_factory=list)
    rewritten: int = 0
    _server: asyncio.Server | None = None
    _client: httpx.AsyncClient | None = None
    _handlers: dict[asyncio.Task[None], asyncio.StreamWriter] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def __aenter__(self) -> ManInTheMiddle:
        self._client = httpx.AsyncClient(base_url=self.upstream, timeout=30)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None and self._client is not None
        self._server.close()
        handlers = list(self._handlers.items())
        for _, writer in handlers:  # connections the device left open: their reads end
            writer.close()
        for task, _ in handlers:
            await task
        await self._server.wait_closed()
        await self._client.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers[task] = writer
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return  # the connection closed
                method, path, headers = _parse_head(head)
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                await self._forward(writer, method, path, headers, body)
                if headers.get("connection", "").lower() == "close":
                    return
        finally:
            self._handlers.pop(task, None)
            writer.close()

    async def _forward(
        self,
        writer: asyncio.StreamWriter,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
    ) -> None:
        assert self._client is not None
        sent = {k: v for k, v in headers.items() if k not in _HOP_BY_HOP | {"host"}}
        answer = await self._client.request(method, path, content=body, headers=sent)
        seen = Seen(
            method,
            path,
            body,
            answer.status_code,
            answer.headers.get("content-type", ""),
            answer.content,
        )
        self.seen.append(seen)
        out = self.rewrite(seen) if self.rewrite is not None else None
        if out is not None:
            self.rewritten += 1
        content = answer.content if out is None else out
        lines = [f"HTTP/1.1 {answer.status_code} {http.HTTPStatus(answer.status_code).phrase}"]
        for name, value in answer.headers.items():
            if name.lower() not in _HOP_BY_HOP | {"content-encoding"}:
                lines.append(f"{name}: {value}")
        lines.append(f"content-length: {len(content)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + content)
        await writer.drain()


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, path, _ = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return method, path, headers
