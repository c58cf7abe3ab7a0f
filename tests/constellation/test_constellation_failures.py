"""When storage breaks under a running server, clients get a problem, never a traceback."""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest
from _constellation_harness import start_server

from _databases import fresh_database


@pytest.mark.postgres
def test_a_broken_database_answers_problems_not_tracebacks(
    tmp_path: Path, postgres_url: str
) -> None:
    with fresh_database(postgres_url) as db_url:
        # Attestation is not the point here: empty registrations will do.
        server = start_server(
            tmp_path / "constellation", db_url=db_url, OMEGA_ALLOW_UNATTESTED="true"
        )
        try:
            with httpx.Client(base_url=server.base_url, timeout=30) as client:
                assert client.post("/api/omega/viewers").status_code == 201
                with psycopg.connect(db_url, autocommit=True) as conn:
                    conn.execute("DROP TABLE viewers CASCADE")  # an operator's bad day
                response = client.post("/api/omega/viewers")
                assert client.get("/healthz").status_code == 200  # still serving
        finally:
            server.stop()
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "Traceback" not in response.text
    assert "viewers" not in response.json()["detail"]  # no internals leak
