"""Round tests run once per backend: SQLite on a tmp file, PostgreSQL on a fresh DB."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from omega.storage import Storage, open_storage


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fed_storage_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('fed')}/constellation.db"
    url: str = request.getfixturevalue("postgres_db_url")
    return url


@pytest.fixture
def open_fed_store(fed_storage_url: str) -> Iterator[Callable[[], Storage]]:
    """Opens a handle (own connections) on the test's database; all closed at the end."""
    opened: list[Storage] = []

    def _open() -> Storage:
        store = open_storage(fed_storage_url)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


@pytest.fixture
def fed_store(open_fed_store: Callable[[], Storage]) -> Storage:
    return open_fed_store()
