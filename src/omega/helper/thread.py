"""A helper served by uvicorn on a loopback port, in a background thread of this process.

The simulator and the tests use it so that the leader talks to a real helper over real
HTTP without a second program to install or start by hand. Callers in this process may
also reach the very app it serves without the socket (:attr:`HelperThread.app`, e.g.
through ``omega.sync.transport.AsgiTransport``): the simulator's TVs do.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from omega.errors import ConfigError
from omega.helper.app import create_helper_app
from omega.helper.cowatch import CowatchDesk
from omega.helper.service import HelperService

__all__ = ["HelperThread"]


class HelperThread:
    def __init__(
        self,
        service: HelperService,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cowatch: CowatchDesk | None = None,
    ) -> None:
        """``port``: 0 for any free one; a given one lets a stopped helper come back at
        the address its clients know."""
        self.service = service
        self.cowatch = cowatch
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        port = self._sock.getsockname()[1]
        self.url = f"http://{host}:{port}"
        #: The ASGI app served (no lifespan to run: uvicorn runs it with lifespan off).
        self.app = create_helper_app(service, cowatch)
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self, timeout: float = 30.0) -> HelperThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"the helper did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10.0)
        self._sock.close()
        if self.cowatch is not None and not self._thread.is_alive():
            self.cowatch.close()  # its threads' connections (it stays usable)

    def __enter__(self) -> HelperThread:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
