"""Catalog embeddings for the simulator: the real model, cached between runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omega.sim.content import embed_texts


def test_a_first_run_returns_what_the_cache_gives_back(tmp_path: Path) -> None:
    texts = ["Heat (1995). Crime, Thriller", "Toy Story (1995). Animation, Comedy"]
    first = embed_texts(texts, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("embeddings-*.npy"))) == 1
    again = embed_texts(texts, cache_dir=tmp_path)
    assert first.dtype == again.dtype == np.float32
    assert np.array_equal(first, again)  # the same seed, the same figures, cache or not
    assert float(first[0] @ first[1]) < 0.99  # two different titles, real vectors
