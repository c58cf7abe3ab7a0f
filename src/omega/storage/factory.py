"""Open the storage backend a URL names, migrated and ready."""

from __future__ import annotations

from pathlib import Path

from omega.errors import ConfigError
from omega.storage.base import Storage

__all__ = ["open_storage"]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


def open_storage(url: str) -> Storage:
    """Open and migrate the store at ``url``.

    - ``sqlite:///relative/file.db``, ``sqlite:////absolute/file.db`` (SQLAlchemy's
      convention: the path is everything after ``sqlite:///``), or a plain filesystem path
      → :class:`~omega.storage.sqlite.SQLiteStorage`;
    - ``postgresql://…`` or ``postgres://…`` (libpq URLs) →
      :class:`~omega.storage.postgres.PostgresStorage`.

    Anything else raises ``ConfigError``.
    """
    url = url.strip()
    storage: Storage
    if url.startswith(_POSTGRES_SCHEMES):
        from omega.storage.postgres import PostgresStorage

        storage = PostgresStorage(url.replace("postgresql+psycopg://", "postgresql://", 1))
    elif url.startswith("sqlite:"):
        if not url.startswith("sqlite:///") or url == "sqlite:///":
            raise ConfigError(
                f"bad SQLite URL {url!r}: use sqlite:///relative/file.db or sqlite:////abs/file.db"
            )
        storage = _sqlite(url.removeprefix("sqlite:///"))
    elif "://" in url or not url:
        raise ConfigError(
            f"unknown storage URL {url!r}: use sqlite:///path/to/file.db, a file path, "
            "or postgresql://user@host/db"
        )
    else:
        storage = _sqlite(url)
    try:
        storage.migrate()
    except BaseException:
        storage.close()
        raise
    return storage


def _sqlite(path: str) -> Storage:
    from omega.storage.sqlite import SQLiteStorage

    target = Path(path).expanduser()
    if target.is_dir():
        raise ConfigError(f"storage path {target} is a directory, not a database file")
    return SQLiteStorage(target)
