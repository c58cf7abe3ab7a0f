"""Each storage test runs once per backend: SQLite on a tmp file, PostgreSQL on a fresh DB."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from storage_records import OpenStore

from omega.storage import Storage, open_storage


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('store')}/omega.db"
    url: str = request.getfixturevalue("postgres_db_url")
    return url


@pytest.fixture
def open_store(storage_url: str) -> Iterator[OpenStore]:
    """Opens another handle (own connections) on the test's database; all closed at the end."""
    opened: list[Storage] = []

    def _open() -> Storage:
        store = open_storage(storage_url)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: OpenStore) -> Storage:
    return open_store()
