"""Where a long run keeps its files: a directory the user gave, kept; else a temporary
one, removed on the way out (Ctrl-C and SIGTERM included, where the command unwinds)."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["work_directory"]


@contextlib.contextmanager
def work_directory(given: Path | None, prefix: str) -> Iterator[Path]:
    """``given`` (made if missing, kept after), else a temporary ``prefix…`` directory
    removed after the block. A caller whose workers in other processes write into it
    enters this before it starts them, so that it is removed after they stop."""
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    with tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True) as tmp:
        yield Path(tmp)
