from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from omega.brain import Brain, BrainConfig
from omega.brain._migrations import migrations
from omega.errors import ConfigError, CorruptStoreError, SchemaVersionError


def test_migrations_from_empty_are_recorded(tmp_path: Path) -> None:
    with Brain.open(tmp_path / "b") as brain:
        assert brain.store.schema_version == migrations()[-1].number
    conn = sqlite3.connect(tmp_path / "b" / "brain.db")
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == [m.number for m in migrations()]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_a_file_instead_of_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        Brain.open(target)


def test_opening_a_missing_brain_without_create(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="brain init"):
        Brain.open(tmp_path / "absent", create=False)


def test_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    directory = tmp_path / "b"
    directory.mkdir()
    (directory / "brain.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CorruptStoreError, match=r"brain\.db"):
        Brain.open(directory)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Brain.open(tmp_path / "b").close()
    conn = sqlite3.connect(tmp_path / "b" / "brain.db")
    conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 0)")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaVersionError, match="newer"):
        Brain.open(tmp_path / "b")


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [("popular_pool", -1, "popular_pool"), ("shared_epsilon", 0.0, "shared_epsilon")],
)
def test_a_bad_brain_setting_is_named(field: str, value: float, words: str) -> None:
    from omega.brain import BrainConfig

    with pytest.raises(ConfigError, match=words):
        BrainConfig(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(("fsync", "durable"), [(True, 2), (False, 1)])
def test_durable_commits_wait_for_the_disk_unless_the_brain_is_throwaway(
    tmp_path: Path, fsync: bool, durable: int
) -> None:
    """synchronous=FULL (2) inside a durable commit; a brain opened with ``fsync`` False
    (the simulator's) commits it with NORMAL (1), as every other commit."""
    with Brain.open(tmp_path / "b", config=BrainConfig(fsync=fsync)) as brain:
        with brain.store.transaction(durable=True) as conn:
            assert conn.execute("PRAGMA synchronous").fetchone() == (durable,)
        with brain.store.transaction() as conn:
            assert conn.execute("PRAGMA synchronous").fetchone() == (1,)
        assert brain.store.conn.execute("PRAGMA synchronous").fetchone() == (1,)
