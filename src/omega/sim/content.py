"""The simulated constellation's content side: embed the catalog once, build its codebook.

Embeddings are cached on disk under the data directory, keyed by the model file and the
exact texts, so a second run with the same catalog skips the model entirely.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from omega.brain.catalog import CatalogItem, SharedCatalog, item_text
from omega.brain.codebook import build_codebook
from omega.protocol import EMBEDDING_DIM
from omega.sim.datasets import Dataset

__all__ = ["catalog_items", "embed_texts", "shared_catalog"]


def catalog_items(dataset: Dataset) -> list[CatalogItem]:
    """The catalog as TVs see it: title, year and genres (MovieLens' sparse user tags
    made the content embedding worse on ml-latest-small, so they are left out)."""
    return [
        CatalogItem(
            item_id=item.item_id,
            title=item.title,
            genres=tuple(item.genres),
            year=item.year,
        )
        for item in dataset.items
    ]


def embed_texts(
    texts: list[str],
    *,
    cache_dir: Path | None,
    progress: Callable[[int, int], None] | None = None,
    batch: int = 256,
) -> npt.NDArray[np.float32]:
    """Embed with the real MiniLM model (two threads), reusing a cached result if any."""
    from omega.brain.embedder import Embedder

    embedder = Embedder.load(threads=2)
    digest = hashlib.sha256()
    info = embedder.info()
    digest.update(repr((info["packages"], info["model_bytes"], info["max_tokens"])).encode())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    cache = cache_dir / f"embeddings-{digest.hexdigest()[:20]}.npy" if cache_dir else None
    if cache is not None and cache.exists():
        cached = np.load(cache)
        if cached.shape == (len(texts), EMBEDDING_DIM):
            if progress:
                progress(len(texts), len(texts))
            matrix: npt.NDArray[np.float32] = cached.astype(np.float32)
            return matrix
    out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
    for lo in range(0, len(texts), batch):
        out[lo : lo + batch] = embedder.embed(texts[lo : lo + batch])
        if progress:
            progress(min(len(texts), lo + batch), len(texts))
    # The cache keeps f16 (as a TV's catalog does): a first run returns what later runs
    # read back, so the same seed gives the same figures with or without the cache.
    half = out.astype(np.float16)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npy")
        np.save(tmp, half)
        tmp.replace(cache)
    rounded: npt.NDArray[np.float32] = half.astype(np.float32)
    return rounded


def shared_catalog(
    dataset: Dataset,
    *,
    cells: int,
    cache_dir: Path | None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> SharedCatalog:
    items = catalog_items(dataset)
    matrix = embed_texts([item_text(i) for i in items], cache_dir=cache_dir, progress=progress)
    centroids = build_codebook(matrix, cells, seed=seed)
    return SharedCatalog(items, matrix, centroids)
