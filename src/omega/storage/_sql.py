"""The seam between the SQL both backends run and the backends themselves.

The SQL is written once (``_sql_storage``, ``_sql_popularity``, ``_sql_rows``) with
``?`` placeholders, against a :class:`Tx`: one transaction's statements. A backend is an
:class:`Engine`: it opens connections, runs a job as one transaction in its own way
(SQLite: readers on their own connections, writes on one writer thread; PostgreSQL: one
psycopg transaction) and hands the job a ``Tx`` over its cursor with its
:class:`Dialect`, which says how placeholders are spelled and the little SQL that differs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import msgspec

from omega.errors import StoreError
from omega.storage.base import StorageLoad

__all__ = ["POSTGRES", "SQLITE", "Cursor", "Dialect", "Engine", "Tx"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs in a backend's SQL. Booleans are not on the list: ``TRUE``,
    ``FALSE``, ``NOT removed`` read the same on both."""

    #: ``StorageStats.backend``.
    name: str
    #: The shared SQL (``?`` placeholders) as the driver takes it.
    sql: Callable[[str], str]
    #: A list as one parameter (pattern cells as a column; the right side of ``any_of``).
    array: Callable[[Sequence[object]], object]
    #: ``column {any_of}``: the column equals one item of an ``array`` parameter.
    any_of: str
    #: An expression for the next ``codebooks.put_seq`` (the latest put wins).
    next_put_seq: str


def _question_marks(sql: str) -> str:
    return sql


@functools.cache
def _format_style(sql: str) -> str:
    """``?`` → ``%s`` (a literal ``%`` doubled), worked out once per statement text."""
    return sql.replace("%", "%%").replace("?", "%s")


_json = msgspec.json.Encoder()


def _json_text(values: Sequence[object]) -> str:
    return _json.encode(values).decode()


#: sqlite3 takes ``?``; lists travel as JSON text (``cells`` columns too) and are read
#: back with ``json_each``.
SQLITE = Dialect(
    name="sqlite",
    sql=_question_marks,
    array=_json_text,
    any_of="IN (SELECT value FROM json_each(?))",
    next_put_seq="(SELECT coalesce(max(put_seq), 0) + 1 FROM codebooks)",
)

#: psycopg takes ``%s``; lists travel as arrays (``int[]`` cells, ``= ANY(…)``).
POSTGRES = Dialect(
    name="postgresql",
    sql=_format_style,
    array=list,
    any_of="= ANY(?)",
    next_put_seq="nextval('codebook_puts')",
)


class Cursor(Protocol):
    """The DB-API cursor methods :class:`Tx` uses (``sqlite3`` and psycopg alike)."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, params: Sequence[Any], /) -> object: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> object: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Tx:
    """One transaction's statements, in the shared SQL (``?`` placeholders)."""

    __slots__ = ("_cur", "_flush", "_sql", "dialect")

    def __init__(
        self, cur: Cursor, dialect: Dialect, *, flush: Callable[[], object] | None = None
    ) -> None:
        """``flush``: on a pipelined connection (PostgreSQL), what sends the queued
        statements and reads their results; :meth:`run` needs its row count at once,
        :meth:`many` does not wait, and the fetching methods flush by themselves."""
        self._cur = cur
        self._sql = dialect.sql
        self._flush = flush
        self.dialect = dialect

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute; how many rows it changed."""
        self._cur.execute(self._sql(sql), params)
        if self._flush is not None:
            self._flush()
        return self._cur.rowcount

    def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._cur.executemany(self._sql(sql), rows)

    def row(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self._cur.execute(self._sql(sql), params)
        row: tuple[Any, ...] | None = self._cur.fetchone()
        return row

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
        """The row a query must return (a missing one: the schema is not migrated)."""
        self._cur.execute(self._sql(sql), params)
        row: tuple[Any, ...] | None = self._cur.fetchone()
        if row is None:
            raise StoreError(
                f"{self.dialect.name} store: expected a row, got none (schema not migrated?)"
            )
        return row

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._cur.execute(self._sql(sql), params)
        return self._cur.fetchall()


class Engine(Protocol):
    """What a backend supplies: its dialect, and how a job runs as one transaction."""

    @property
    def dialect(self) -> Dialect: ...

    def read(self, *, snapshot: bool = False) -> AbstractContextManager[Tx]:
        """One read transaction; ``snapshot``: several statements see one state."""
        ...

    def read_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
        """The row one read statement must return (``Tx.one``), the statement on its own:
        for a hot read that one statement answers, with no transaction around it where
        the backend would pay for one."""
        ...

    def write(self, job: Callable[[Tx], T]) -> T:
        """Run ``job`` in one write transaction; return its result once committed. If it
        raises, nothing it did is kept and the caller gets the exception."""
        ...

    async def write_async(self, job: Callable[[Tx], T]) -> T:
        """As :meth:`write`, awaited on an event loop; the write stands even if the caller
        is cancelled."""
        ...

    def read_live(self) -> AbstractContextManager[Tx]:
        """A read transaction on the live set (SQLite keeps it in a file of its own)."""
        ...

    def write_live(self, job: Callable[[Tx], T]) -> T:
        """A write transaction on the live set."""
        ...

    def load(self) -> StorageLoad:
        """The connections' state now (``Storage.load``)."""
        ...
