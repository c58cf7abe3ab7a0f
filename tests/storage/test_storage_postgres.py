"""What only the PostgreSQL backend does: pgvector centroids."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from omega.storage import Codebook, open_storage

pytestmark = pytest.mark.postgres


def test_codebook_centroids_land_in_a_vector_column(postgres_db_url: str) -> None:
    store = open_storage(postgres_db_url)
    try:
        assert store.stats().capabilities == ("pgvector",)
        centroids = np.random.default_rng(0).standard_normal((5, 384)).astype("<f2")
        store.put_codebook(Codebook("cb-384", 384, centroids.tobytes(), 5))
        store.put_codebook(Codebook("cb-8", 8, centroids[:, :8].copy().tobytes(), 5))
    finally:
        store.close()
    with psycopg.connect(postgres_db_url) as conn:
        rows = conn.execute(
            "SELECT codebook_id, cell, vector_dims(centroid), centroid::text"
            " FROM codebook_vectors ORDER BY cell"
        ).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [("cb-384", i, 384) for i in range(5)]
    first = np.array([float(x) for x in rows[0][3].strip("[]").split(",")])
    assert np.allclose(first, centroids[0].astype(np.float32), atol=1e-3)
