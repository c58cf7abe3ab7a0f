"""How the PostgreSQL backend runs the shared SQL: psycopg connections and transactions.

One connection per thread (``threading.local``), opened on first use and reopened if the
server dropped it. A server process therefore holds up to one connection per threadpool
thread.

Round trips are what a sync waits for (``omega bench server --db embedded-postgres``): a
write job is one transaction in pipeline mode, so the statements whose results it does
not read (``Tx.many``) travel with the ``COMMIT``; a read that needs no snapshot is one
statement in autocommit, without ``BEGIN`` and ``COMMIT`` around it (under READ
COMMITTED each statement sees the latest commits either way); so is a write that one
statement can do (:meth:`PostgresEngine.statement`: a push's ingestion).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

import psycopg
from anyio import to_thread

from omega.errors import StoreError
from omega.storage._sql import POSTGRES, Dialect, Tx
from omega.storage.base import StorageLoad

__all__ = ["Cursor", "PostgresEngine", "translated"]

T = TypeVar("T")

Connection = psycopg.Connection[tuple[Any, ...]]
Cursor = psycopg.Cursor[tuple[Any, ...]]


@contextmanager
def translated() -> Iterator[None]:
    """Turn psycopg's errors into Omega's (the URL, which may hold a password, is not named)."""
    try:
        yield
    except psycopg.Error as exc:
        raise StoreError(f"PostgreSQL store: {type(exc).__name__}: {exc}".strip()) from exc


class PostgresEngine:
    """A PostgreSQL database given by a libpq URL."""

    dialect: Dialect = POSTGRES

    def __init__(self, url: str, *, connect_timeout: int) -> None:
        self._url = url
        self._connect_timeout = connect_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[Connection] = []
        self._closed = False

    def _conn(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if self._closed:
            raise StoreError("PostgreSQL store is closed")
        try:
            conn = psycopg.connect(
                self._url, autocommit=True, connect_timeout=self._connect_timeout
            )
        except psycopg.OperationalError as exc:
            raise StoreError(f"PostgreSQL store unavailable: {exc}".strip()) from exc
        with self._lock:
            self._connections = [c for c in self._connections if not c.closed]
            self._connections.append(conn)
        self._local.conn = conn
        return conn

    @contextmanager
    def cursor(self, *, snapshot: bool = False) -> Iterator[Cursor]:
        """One transaction; ``snapshot`` makes it a read-only repeatable-read one, so
        several SELECTs see the same committed state."""
        with translated():
            conn = self._conn()
            with conn.transaction(), conn.cursor() as cur:
                if snapshot:
                    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                yield cur

    @contextmanager
    def transaction(self, *, snapshot: bool = False) -> Iterator[Tx]:
        """:meth:`cursor` for the shared SQL."""
        with self.cursor(snapshot=snapshot) as cur:
            yield Tx(cur, POSTGRES)

    @contextmanager
    def _autocommit(self) -> Iterator[Tx]:
        """Statements each committed on its own: for reads that need no snapshot."""
        with translated():
            conn = self._conn()
            with conn.cursor() as cur:
                yield Tx(cur, POSTGRES)

    @contextmanager
    def _pipelined(self) -> Iterator[Tx]:
        """One transaction in pipeline mode (see the module docstring)."""
        with translated():
            conn = self._conn()
            with conn.pipeline() as pipeline, conn.transaction(), conn.cursor() as cur:
                yield Tx(cur, POSTGRES, flush=pipeline.sync)

    # -- the Engine: the live set is in the same database ---------------------------------
    def read(self, *, snapshot: bool = False) -> AbstractContextManager[Tx]:
        return self.transaction(snapshot=True) if snapshot else self._autocommit()

    def read_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
        with self.read() as tx:  # autocommit already: one statement, no BEGIN
            return tx.one(sql, params)

    def write(self, job: Callable[[Tx], T]) -> T:
        with self._pipelined() as tx:
            return job(tx)

    def statement(self, sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        """One statement, its own transaction (autocommit: no ``BEGIN``/``COMMIT``), and
        its first row. For a write that fits in one statement (data-modifying CTEs): the
        cheapest way to commit it, in round trips and in CPU on both sides."""
        with self._autocommit() as tx:
            return tx.row(sql, params)

    async def write_async(self, job: Callable[[Tx], T]) -> T:
        """On a worker thread; the write stands even if the caller is cancelled."""
        call = functools.partial(self.write, job)
        return await asyncio.shield(asyncio.ensure_future(to_thread.run_sync(call)))

    def read_live(self) -> AbstractContextManager[Tx]:
        return self.transaction()

    def write_live(self, job: Callable[[Tx], T]) -> T:
        return self.write(job)

    def load(self) -> StorageLoad:
        """Open connections, and those in a transaction (psycopg's libpq status, read
        without touching the socket; a connection another thread is using may change
        state as it is read, which a gauge can bear)."""
        with self._lock:
            open_ = [c for c in self._connections if not c.closed]
        idle = psycopg.pq.TransactionStatus.IDLE
        in_use = sum(1 for c in open_ if c.info.transaction_status != idle)
        return StorageLoad(connections=len(open_), in_use=in_use)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()
