"""Open the storage backend a URL names, migrated and ready."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from omega.errors import ConfigError
from omega.storage.base import Storage

__all__ = ["check_storage_url", "open_storage", "postgres_dsn"]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


def open_storage(url: str) -> Storage:
    """Open and migrate the store at ``url``.

    - ``sqlite:///relative/file.db``, ``sqlite:////absolute/file.db`` (SQLAlchemy's
      convention: the path is everything after ``sqlite:///``), or a plain filesystem path
      → :class:`~omega.storage.sqlite.SQLiteStorage`; ``?synchronous=normal`` on the URL
      commits without waiting for the disk (an acknowledged push survives a crash of the
      process, not a power cut: for files thrown away after use, as the simulator's);
    - ``postgresql://…`` or ``postgres://…`` (libpq URLs) →
      :class:`~omega.storage.postgres.PostgresStorage`.

    Anything else raises ``ConfigError``.
    """
    storage = _opener(url)()
    try:
        storage.migrate()
    except BaseException:
        storage.close()
        raise
    return storage


def check_storage_url(url: str) -> None:
    """Refuse a URL :func:`open_storage` would not open (``ConfigError``), touching nothing."""
    _opener(url)


def postgres_dsn(url: str) -> str | None:
    """The libpq URL of the PostgreSQL database ``url`` names; None if it names another
    kind of store (what replicas share through it: omega.constellation)."""
    url = url.strip()
    if not url.startswith(_POSTGRES_SCHEMES):
        return None
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _opener(url: str) -> Callable[[], Storage]:
    """What opens the store ``url`` names; a URL of no known kind is a ``ConfigError``."""
    url = url.strip()
    dsn = postgres_dsn(url)
    if dsn is not None:

        def postgres() -> Storage:
            from omega.storage.postgres import PostgresStorage

            return PostgresStorage(dsn)

        return postgres
    if url.startswith("sqlite:"):
        if not url.startswith("sqlite:///") or url == "sqlite:///":
            raise ConfigError(
                f"bad SQLite URL {url!r}: use sqlite:///relative/file.db or sqlite:////abs/file.db"
            )
        path, _, query = url.removeprefix("sqlite:///").partition("?")
        return functools.partial(_sqlite, path, _synchronous(query, url))
    if "://" in url or not url:
        raise ConfigError(
            f"unknown storage URL {url!r}: use sqlite:///path/to/file.db, a file path, "
            "or postgresql://user@host/db"
        )
    return functools.partial(_sqlite, url)


def _synchronous(query: str, url: str) -> Literal["FULL", "NORMAL"]:
    """The ``synchronous`` a SQLite URL's query asks for (FULL without one)."""
    if not query:
        return "FULL"
    key, _, value = query.partition("=")
    if key != "synchronous" or value.lower() not in ("full", "normal"):
        raise ConfigError(
            f"bad SQLite URL {url!r}: the only option is ?synchronous=full or ?synchronous=normal"
        )
    return "NORMAL" if value.lower() == "normal" else "FULL"


def _sqlite(path: str, synchronous: Literal["FULL", "NORMAL"] = "FULL") -> Storage:
    from omega.storage.sqlite import SQLiteStorage

    target = Path(path).expanduser()
    if target.is_dir():
        raise ConfigError(f"storage path {target} is a directory, not a database file")
    return SQLiteStorage(target, synchronous=synchronous)
