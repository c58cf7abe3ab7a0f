"""Where a round's partitions run: in this process, or on a Dask cluster.

An :class:`Engine` maps a top-level function over a list of picklable items and returns
the results in order; that is all a round needs of it (``omega.federation.partitioned``).
:class:`SerialEngine` runs the partitions one after another here (what tests and a
single machine without the extra use); :class:`DaskEngine` runs them on Dask's
``distributed`` scheduler — an existing cluster (``address``) or a local one it starts
with ``workers`` single-threaded worker processes and closes on ``close``.

Dask is an optional extra (``pip install 'exogenesis-omega[dask]'``): it is imported only
when a ``DaskEngine`` is made. Why Dask and not Ray: docs/scale.md (start-up, footprint
and install size measured on this machine; rounds and fleets hand it a few large tasks,
so Ray's lower per-task cost does not pay for them).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Literal, Protocol, TypeVar

from omega.errors import ConfigError

__all__ = ["DaskEngine", "Engine", "EngineKind", "SerialEngine", "open_engine"]

T = TypeVar("T")
R = TypeVar("R")

EngineKind = Literal["local", "dask"]


class Engine(Protocol):
    """Runs independent tasks somewhere and hands their results back in order."""

    @property
    def workers(self) -> int:
        """How many tasks can run at once (what partitions are sized for)."""
        ...

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[fn(item) for item in items]``, run wherever the engine runs tasks. ``fn``
        must be a module-level function (it is pickled by reference)."""
        ...

    def close(self) -> None: ...


class SerialEngine:
    """Partitions run one after another in this process (``workers`` only sizes them)."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ConfigError(f"--engine-workers must be ≥ 1, got {workers}")
        self._workers = workers

    @property
    def workers(self) -> int:
        return self._workers

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        return [fn(item) for item in items]

    def close(self) -> None:
        pass


class DaskEngine:
    """Tasks on a Dask cluster: the one at ``address`` (``tcp://host:8786``), else a
    local cluster of ``workers`` processes (one thread each) started here."""

    def __init__(self, *, address: str | None = None, workers: int = 2) -> None:
        if workers < 1:
            raise ConfigError(f"--engine-workers must be ≥ 1, got {workers}")
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # the optional extra is not installed
            raise ConfigError(
                "--engine dask needs Dask: pip install 'exogenesis-omega[dask]'"
            ) from exc
        self._cluster: Any = None
        if address is None:
            self._cluster = LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=":0",  # its HTTP server (health, metrics) on any free port
                silence_logs=logging.ERROR,
            )
            address = self._cluster.scheduler_address
        try:
            self._client: Any = Client(address, timeout="20s")  # type: ignore[no-untyped-call]
        except OSError as exc:
            self._close_cluster()
            raise ConfigError(f"--address: no Dask scheduler answers at {address}") from exc

    @property
    def workers(self) -> int:
        return max(1, len(self._client.scheduler_info()["workers"]))

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if not items:
            return []
        # The items ride in the task graph rather than being scattered to workers first:
        # a task whose worker dies is then run again elsewhere (scattered data would be
        # lost with it). Dask warns about graphs of a few MB; a round's partitions are
        # that big by design (its rows), so the warning says nothing here.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Large object.*", category=UserWarning)
            futures = self._client.map(fn, list(items), pure=False)
        results: list[R] = self._client.gather(futures)
        return results

    def close(self) -> None:
        try:
            self._client.close()
        finally:
            self._close_cluster()

    def _close_cluster(self) -> None:
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def __enter__(self) -> DaskEngine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_engine(kind: str, *, address: str | None = None, workers: int = 2) -> Engine | None:
    """The engine ``omega worker --engine`` names: None for ``local`` (the round plans in
    one piece, as always), a :class:`DaskEngine` for ``dask``. Close what it returns."""
    if kind == "local":
        if address is not None:
            raise ConfigError("--address needs --engine dask")
        return None
    if kind == "dask":
        return DaskEngine(address=address, workers=workers)
    raise ConfigError(f"--engine must be local or dask, got {kind!r}")
