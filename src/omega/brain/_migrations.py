"""Numbered schema migrations for the brain's SQLite database."""

from __future__ import annotations

import sqlite3
import time

from omega.errors import CorruptStoreError, SchemaVersionError

__all__ = ["MIGRATIONS", "apply_migrations", "schema_version"]

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "initial",
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE items (
            key INTEGER PRIMARY KEY,
            item_id TEXT NOT NULL UNIQUE,
            title TEXT NOT NULL,
            genres TEXT NOT NULL DEFAULT '',
            year INTEGER,
            runtime_min INTEGER,
            tags TEXT NOT NULL DEFAULT '',
            description TEXT NOT NULL DEFAULT '',
            embedding BLOB NOT NULL,
            cell INTEGER NOT NULL DEFAULT -1
        );
        CREATE TABLE episodes (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            kind TEXT NOT NULL,
            item_key INTEGER,
            session_id TEXT NOT NULL,
            time_bucket TEXT NOT NULL,
            day_type TEXT NOT NULL,
            reward REAL NOT NULL,
            success INTEGER NOT NULL,
            critique TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX episodes_ts ON episodes (ts);
        CREATE INDEX episodes_item ON episodes (item_key);
        CREATE TABLE patterns (
            id TEXT PRIMARY KEY,
            task TEXT NOT NULL,
            cells TEXT NOT NULL,
            time_bucket TEXT NOT NULL,
            day_type TEXT NOT NULL,
            successes REAL NOT NULL,
            support INTEGER NOT NULL,
            version INTEGER NOT NULL,
            updated_at REAL NOT NULL,
            shared_rate REAL NOT NULL DEFAULT -1,
            shared_support INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE collective (
            id TEXT PRIMARY KEY,
            task TEXT NOT NULL,
            cells TEXT NOT NULL,
            time_bucket TEXT NOT NULL,
            day_type TEXT NOT NULL,
            success_rate REAL NOT NULL,
            support INTEGER NOT NULL,
            viewers INTEGER NOT NULL,
            weight REAL NOT NULL,
            version INTEGER NOT NULL
        );
        CREATE TABLE trends (
            cell INTEGER PRIMARY KEY, score REAL NOT NULL, version INTEGER NOT NULL
        );
        CREATE TABLE skills (
            name TEXT NOT NULL,
            context TEXT NOT NULL,
            uses REAL NOT NULL,
            successes REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (name, context)
        );
        CREATE TABLE tiers (
            name TEXT PRIMARY KEY,
            vector BLOB NOT NULL,
            mass REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE TABLE outbox (
            pattern_id TEXT PRIMARY KEY,
            op TEXT NOT NULL CHECK (op IN ('upsert', 'remove')),
            seq INTEGER NOT NULL,
            batch_id TEXT
        );
        CREATE TABLE inflight (
            batch_id TEXT PRIMARY KEY,
            payload BLOB NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE TABLE cursors (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE codebook (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            codebook_id TEXT NOT NULL,
            dim INTEGER NOT NULL,
            k INTEGER NOT NULL,
            centroids BLOB NOT NULL,
            origin TEXT NOT NULL
        );
        """,
    ),
    (
        2,
        "popular",
        """
        CREATE TABLE popular (item_id TEXT PRIMARY KEY, score REAL NOT NULL);
        """,
    ),
]


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
    ).fetchone()
    if row is None:
        return 0
    found = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]
    return int(found or 0)


def apply_migrations(conn: sqlite3.Connection, path: str) -> int:
    """Bring the database up to the newest schema; return the version now in force."""
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        current = schema_version(conn)
    except sqlite3.DatabaseError as exc:
        raise CorruptStoreError(f"{path} is not a readable brain database: {exc}") from exc
    newest = MIGRATIONS[-1][0]
    if current > newest:
        raise SchemaVersionError(
            f"{path} has schema version {current}, newer than this Omega understands "
            f"({newest}); upgrade Omega to open it"
        )
    for version, name, sql in MIGRATIONS:
        if version <= current:
            continue
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            for statement in filter(str.strip, sql.split(";")):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (version, name, time.time()),
            )
    return newest
