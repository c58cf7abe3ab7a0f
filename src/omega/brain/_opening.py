"""Opening a brain's directory: checked (or made) with a clear error when it cannot be
used, and BLAS held to one thread for the small products scoring multiplies."""

from __future__ import annotations

import os
from pathlib import Path

from omega.errors import ConfigError

__all__ = ["DB_FILE", "brain_directory", "one_blas_thread"]

DB_FILE = "brain.db"
_BLAS_LIMITED = False  # BLAS is held to one thread once per process


def one_blas_thread() -> None:
    """Scoring multiplies small matrices; handing those to BLAS worker threads costs more
    than it saves, and on a busy CPU a waiting worker stalls a request for ms."""
    global _BLAS_LIMITED
    if not _BLAS_LIMITED:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1, user_api="blas")
        _BLAS_LIMITED = True


def brain_directory(directory: str | os.PathLike[str], *, create: bool) -> Path:
    """The brain's directory, made when ``create``; a clear error when it cannot be used."""
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path} exists and is not a directory")
    if not path.exists():
        if not create:
            raise ConfigError(f"no brain at {path} (run `omega brain init {path}` first)")
        try:
            path.mkdir(parents=True)
        except OSError as exc:
            raise ConfigError(f"cannot create brain directory {path}: {exc}") from exc
    if not os.access(path, os.W_OK):
        raise ConfigError(f"brain directory {path} is not writable")
    if not create and not (path / DB_FILE).exists():
        raise ConfigError(f"{path} holds no brain (missing {DB_FILE})")
    return path
