"""Content cells: a codebook of unit centroids shared by TVs and the constellation.

Patterns name regions of content space by cell number instead of shipping item ids, so
both sides must hold the same centroids; :func:`codebook_id` names a codebook by a hash
of its f16 bytes. Pure numpy + scipy: the server imports this without onnxruntime.
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import numpy.typing as npt

from omega.errors import InputError

__all__ = [
    "assign_cells",
    "build_codebook",
    "centroids_from_f16_bytes",
    "centroids_to_f16_bytes",
    "codebook_id",
]

_MIN_TRAIN = 20_000  # k-means on a sample of max(20,000, 40·k): cells barely move past it
_TRAIN_PER_CELL = 40
_ITERATIONS = 20

Floats = npt.NDArray[np.float32]


def _unit_rows(vectors: npt.ArrayLike, name: str) -> Floats:
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise InputError(f"{name} must be a 2-d array (n, dim), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError(f"{name} must be finite (no NaN or infinity)")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    if (norms == 0).any():
        raise InputError(f"{name} contains zero vectors, which have no direction")
    unit: Floats = (arr / norms).astype(np.float32)
    return unit


def build_codebook(vectors: npt.ArrayLike, k: int, *, seed: int = 0) -> Floats:
    """``k`` unit centroids (k, dim) float32 by spherical k-means; same seed, same result.

    Vectors are normalised, clustered with scipy's k-means (on the unit sphere the
    Euclidean assignment equals the cosine one) and the centroids projected back to unit
    length. ``k`` is clipped to the number of vectors; large inputs are sampled down to
    max(20,000, 40·k) vectors first (deterministically for the seed).
    """
    data = _unit_rows(vectors, "vectors")
    if k < 1:
        raise InputError(f"a codebook needs at least one cell, got k={k}")
    rng = np.random.default_rng(seed)
    train = max(_MIN_TRAIN, _TRAIN_PER_CELL * k)
    if data.shape[0] > train:
        data = data[np.sort(rng.choice(data.shape[0], size=train, replace=False))]
    k = min(k, data.shape[0])
    if k == data.shape[0]:
        return data.copy()
    # Imported here: scipy costs a TV ~28 MB RSS, and most TVs receive their codebook.
    from scipy.cluster.vq import kmeans2

    with warnings.catch_warnings():
        # scipy warns when a cluster empties; the centroid then stays where it was.
        warnings.simplefilter("ignore", UserWarning)
        centroids, _ = kmeans2(data, k, iter=_ITERATIONS, minit="points", seed=rng)
    centroids = np.asarray(centroids, dtype=np.float32)
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    # A centroid at the origin (opposite points averaged out) takes a data point instead.
    degenerate = norms[:, 0] < 1e-6
    if degenerate.any():
        centroids[degenerate] = data[rng.choice(data.shape[0], size=int(degenerate.sum()))]
        norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    unit: Floats = (centroids / norms).astype(np.float32)
    return unit


def assign_cells(vectors: npt.ArrayLike, centroids: npt.ArrayLike) -> npt.NDArray[np.int32]:
    """The nearest centroid by cosine for each row of ``vectors``, as int32 cell numbers."""
    cells = _unit_rows(centroids, "centroids")
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.shape[0] == 0:
        return np.empty(0, dtype=np.int32)
    data = _unit_rows(arr, "vectors")
    if data.shape[1] != cells.shape[1]:
        raise InputError(
            f"vectors have dimension {data.shape[1]} but the codebook has {cells.shape[1]}"
        )
    out = np.empty(data.shape[0], dtype=np.int32)
    step = 8192  # bounds the (step, k) similarity block
    for start in range(0, data.shape[0], step):
        block = data[start : start + step] @ cells.T
        out[start : start + step] = np.argmax(block, axis=1)
    return out


def centroids_to_f16_bytes(centroids: npt.ArrayLike) -> bytes:
    """Little-endian f16 bytes of the (k, dim) centroids, row-major."""
    arr = np.asarray(centroids, dtype=np.float32)
    if arr.ndim != 2:
        raise InputError(f"centroids must be a 2-d array (k, dim), got shape {arr.shape}")
    return arr.astype("<f2").tobytes()


def centroids_from_f16_bytes(data: bytes, dim: int) -> Floats:
    """Inverse of :func:`centroids_to_f16_bytes`: (k, dim) float32."""
    if dim < 1 or len(data) % (2 * dim):
        raise InputError(f"{len(data)} bytes are not whole f16 rows of dimension {dim}")
    return np.frombuffer(data, dtype="<f2").astype(np.float32).reshape(-1, dim)


def codebook_id(centroids: npt.ArrayLike) -> str:
    """A short stable name for a codebook: 16 hex digits of sha256 over its f16 bytes."""
    return hashlib.sha256(centroids_to_f16_bytes(centroids)).hexdigest()[:16]
