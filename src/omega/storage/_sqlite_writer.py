"""One writer thread per SQLite store, with group commit.

SQLite allows one writer at a time, and with ``synchronous=FULL`` each commit costs an
fsync (~5 ms here), which would cap a server at ~200 pushes/s. So every write is a job on
a queue; the writer thread runs the jobs it finds waiting (up to ``max_batch``) in one
``BEGIN IMMEDIATE`` transaction, each inside its own savepoint, and commits once. A job
that raises is rolled back to its savepoint alone and its caller gets the exception;
every caller returns only after the commit that made its job durable.

Checkpoints (copying the WAL back into the database file, with its own fsync) would
otherwise run inside whichever commit crosses SQLite's 1,000-page mark and stall that
group and every caller queued behind it. The writer's connection turns that off, and a
second thread checkpoints in PASSIVE mode on its own connection, between and beside
commits: it never blocks the writer or readers.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Writer", "WriterClosedError"]

T = TypeVar("T")

Connect = Callable[[], sqlite3.Connection]


class _Job(Generic[T]):
    __slots__ = ("done", "error", "fn", "future", "result")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], T],
        future: asyncio.Future[T] | None = None,
    ) -> None:
        self.fn = fn
        # A thread's caller waits on ``done``; an event loop's caller awaits ``future``.
        self.done = threading.Event() if future is None else None
        self.future = future
        self.result: T | None = None
        self.error: BaseException | None = None


def _finish(batch: list[_Job[Any]]) -> None:
    """Wake the callers of a committed (or failed) group: each event loop once, with all
    its jobs' outcomes (one wake-up of that loop, not one per job)."""
    settled: dict[asyncio.AbstractEventLoop, list[_Job[Any]]] = {}
    for job in batch:
        if job.done is not None:
            job.done.set()
        elif job.future is not None:
            settled.setdefault(job.future.get_loop(), []).append(job)
    for loop, jobs in settled.items():
        # RuntimeError: that event loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, jobs)


def _settle(jobs: list[_Job[Any]]) -> None:
    for job in jobs:
        future = job.future
        assert future is not None  # only jobs with a future are settled on a loop
        if future.cancelled():
            continue  # the caller went away; the write itself stands (it is committed)
        if job.error is not None:
            future.set_exception(job.error)
        else:
            future.set_result(job.result)


class WriterClosedError(RuntimeError):
    """The store was closed before the job could run."""


class Writer:
    def __init__(
        self,
        connect: Connect,
        *,
        name: str,
        max_batch: int = 64,
        checkpoint_every_s: float = 0.2,
    ) -> None:
        self._connect = connect
        self._name = name
        self._max_batch = max_batch
        self._checkpoint_every_s = checkpoint_every_s
        self._queue: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None
        self._stop = threading.Event()
        self._commits = 0  # groups committed (read by the checkpointer)
        self._closed = False

    @property
    def queued(self) -> int:
        """Jobs waiting for the writer thread (those of the group it commits not counted)."""
        return self._queue.qsize()

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in a write transaction on the writer thread; return once committed."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("a write job may not queue another write (it would wait forever)")
        job: _Job[T] = _Job(fn)
        self._submit(job)
        assert job.done is not None  # a job without a future has its event
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]  # set when error is None

    async def run_async(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """As :meth:`run`, awaited on an event loop: no worker thread waits for the commit.

        If the caller is cancelled, the job still runs and commits (as a push whose answer
        was lost would): cancellation only stops the waiting.
        """
        job: _Job[T] = _Job(fn, asyncio.get_running_loop().create_future())
        self._submit(job)
        assert job.future is not None
        return await asyncio.shield(job.future)

    def _submit(self, job: _Job[Any]) -> None:
        with self._lock:
            if self._closed:
                raise WriterClosedError("the store is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
                self._checkpointer = threading.Thread(
                    target=self._checkpoint_loop, name=f"{self._name}:checkpoint", daemon=True
                )
                self._checkpointer.start()
            self._queue.put(job)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            thread, checkpointer = self._thread, self._checkpointer
            self._queue.put(None)
        if thread is not None:
            thread.join()
        self._stop.set()
        if checkpointer is not None:
            checkpointer.join()

    # -- the writer thread ---------------------------------------------------------------
    def _loop(self) -> None:
        conn: sqlite3.Connection | None = None
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch: list[_Job[Any]] = [first]
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            try:
                if conn is None:
                    conn = self._connect()
                    conn.execute("PRAGMA wal_autocheckpoint = 0")  # see the module docstring
                _commit_group(conn, batch)
                self._commits += 1
            except BaseException as exc:  # a failed BEGIN/COMMIT fails the whole group
                for job in batch:
                    if job.error is None:
                        job.error = exc
            finally:
                _finish(batch)
        if conn is not None:
            conn.close()

    def _checkpoint_loop(self) -> None:
        conn: sqlite3.Connection | None = None
        seen = 0
        try:
            while not self._stop.wait(self._checkpoint_every_s):
                if self._commits == seen:
                    continue
                seen = self._commits
                try:
                    if conn is None:
                        conn = self._connect()
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    # Busy or failing now; the next pass (or the final one) tries again, and
                    # a WAL that is not checkpointed stays correct, only longer.
                    continue
            if conn is not None or self._commits:
                conn = conn or self._connect()
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            pass  # the store is closing; SQLite checkpoints when the last connection closes
        finally:
            if conn is not None:
                conn.close()


def _commit_group(conn: sqlite3.Connection, batch: list[_Job[Any]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for job in batch:
            conn.execute("SAVEPOINT job")
            try:
                job.result = job.fn(conn)
            except BaseException as exc:
                job.error = exc
                if not conn.in_transaction:
                    # SQLite itself rolled everything back (disk full, I/O error): the
                    # jobs before this one are undone too.
                    raise
                conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
