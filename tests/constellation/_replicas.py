"""Several constellation processes on one PostgreSQL database, as replicas behind a
balancer would run: each a real uvicorn child on its own loopback port, all sharing the
data directory (keys, admin token) and the store."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from _constellation_harness import ADMIN_TOKEN, MANUFACTURER, ServerProcess, trust

from omega.bench import serving


def replica_env(data_dir: Path, db_url: str, **env: str) -> dict[str, str]:
    return {
        **os.environ,
        "OMEGA_DATA_DIR": str(data_dir),
        "OMEGA_DB_URL": db_url,
        "OMEGA_ADMIN_TOKEN": ADMIN_TOKEN,
        "OMEGA_FEDERATION_INTERVAL": "0",
        "OMEGA_REGISTRATION_RATE_LIMIT": "0",
        "OMEGA_MANUFACTURER_REGISTRATION_LIMIT": "0",
        **env,
    }


def start_replica(data_dir: Path, db_url: str, n: int, **env: str) -> ServerProcess:
    """Replica ``n`` on a socket bound here (no port race), answering /healthz."""
    with serving.bound_socket() as sock:
        return ServerProcess(
            serving.uvicorn_command(fd=sock.fileno()),
            env=replica_env(data_dir, db_url, **env),
            base_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
            log_path=data_dir / f"replica-{n}.log",
            pass_fds=(sock.fileno(),),
            data_dir=data_dir,
            db_url=db_url,
        ).start()


@contextlib.contextmanager
def replicas(
    data_dir: Path, db_url: str, count: int = 2, **env: str
) -> Iterator[list[ServerProcess]]:
    """``count`` replicas, started one after the other (the first makes the keys the
    others load), trusting the tests' manufacturer; all stopped on the way out."""
    data_dir.mkdir(parents=True, exist_ok=True)
    servers: list[ServerProcess] = []
    try:
        for n in range(count):
            servers.append(start_replica(data_dir, db_url, n, **env))
        trust(servers[0], MANUFACTURER)
        yield servers
    finally:
        for server in servers:
            server.stop()
