"""The catalog's vectors saved as float32 beside ``brain.db``, for a warm start that maps
them instead of reading and widening every title's f16 vector (0.3–0.8 s at 100K titles).

A copy is named by the catalog token it was made at (``vectors-<token>.f32.npy``; the
token is replaced in the same transaction as every change to the titles), so a copy is
used only while its titles are the ones in ``brain.db``. A copy that is missing, cut
short, of the wrong shape or not unit vectors is ignored: ``brain.db`` holds every
vector, and the caller reads them from there and saves a new copy.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

from omega.protocol import EMBEDDING_DIM

__all__ = ["map_vectors", "remove_leftovers", "save_vectors"]

F32 = npt.NDArray[np.float32]
_NAME = "vectors-{token}.f32.npy"
log = logging.getLogger(__name__)


def _path(directory: Path, token: str) -> Path:
    return directory / _NAME.format(token=token)


def map_vectors(directory: Path, token: str, rows: int) -> F32 | None:
    """The copy saved at ``token``, memory-mapped, or None when it cannot be trusted."""
    if not token:
        return None
    try:
        mapped = np.load(_path(directory, token), mmap_mode="r", allow_pickle=False)
    except Exception:  # missing, cut short, not an array file: read brain.db instead
        return None
    if mapped.dtype != np.float32 or mapped.shape != (rows, EMBEDDING_DIM):
        return None
    if rows:
        # Every stored vector is a unit vector: a file of zeros (a lost write) is not.
        probe = np.asarray(mapped[[0, rows // 2, rows - 1]])
        if not np.allclose(np.linalg.norm(probe, axis=1), 1.0, atol=0.01):
            return None
    matrix: F32 = mapped.view(np.ndarray)
    return matrix


def save_vectors(directory: Path, token: str, matrix: F32) -> None:
    """Save the copy for ``token`` durably (written aside, synced, renamed into place)
    and drop every other copy. A failure only costs the next start its speed."""
    target = _path(directory, token)
    tmp = directory / f".{target.name}.tmp"
    try:
        with tmp.open("wb") as out:
            np.save(out, np.ascontiguousarray(matrix, dtype=np.float32), allow_pickle=False)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(target)
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        for old in directory.glob(_NAME.format(token="*")):
            if old != target:
                old.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("cannot save the catalog's vectors in %s: %s", directory, exc)
        tmp.unlink(missing_ok=True)


def remove_leftovers(directory: Path) -> None:
    """Drop copies a crash left half written."""
    for tmp in directory.glob(f".{_NAME.format(token='*')}.tmp"):
        tmp.unlink(missing_ok=True)
