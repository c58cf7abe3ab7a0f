"""The ``omega worker`` loop: a round every ``interval_s`` until asked to stop.

Stopping is cooperative: ``stop`` is a ``threading.Event`` (the CLI sets it from SIGTERM /
SIGINT), checked between rounds and while waiting, so a signal never interrupts a round
half-way — and if the process is killed outright, the round's release is all-or-nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from omega.clock import Clock, SystemClock
from omega.errors import ConfigError, StoreError
from omega.federation.cells import CellGroups
from omega.federation.config import FederationConfig
from omega.federation.engines import Engine
from omega.federation.rounds import RoundResult, run_round
from omega.federation.shared import SharedCounting
from omega.storage.base import Storage

if TYPE_CHECKING:
    from omega.federation.cowatch import CowatchCounting

__all__ = ["Worker"]

_log = logging.getLogger(__name__)


class Worker:
    """Runs federation rounds against one storage."""

    def __init__(
        self,
        storage: Storage,
        config: FederationConfig,
        *,
        worker_id: str,
        interval_s: float = 60.0,
        clock: Clock | None = None,
        on_round: Callable[[RoundResult], None] | None = None,
        on_error: Callable[[StoreError], None] | None = None,
        shares: SharedCounting | None = None,
        cowatch: CowatchCounting | None = None,
        engine: Engine | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ConfigError(f"interval must be > 0 seconds, got {interval_s}")
        self.storage = storage
        self.config = config
        self.worker_id = worker_id
        self.interval_s = interval_s
        self.clock: Clock = clock or SystemClock()
        self._on_round = on_round
        self._on_error = on_error
        self._cells = CellGroups()
        self._shares = shares
        self._cowatch = cowatch
        self._engine = engine
        self.rounds = 0
        self.failures = 0

    def run_once(self) -> RoundResult:
        result = run_round(
            self.storage,
            self.config,
            now=self.clock.now(),
            worker_id=self.worker_id,
            cells=self._cells,
            shares=self._shares,
            cowatch=self._cowatch,
            engine=self._engine,
        )
        self.rounds += 1
        if self._on_round is not None:
            self._on_round(result)
        return result

    def run(self, stop: threading.Event) -> None:
        """Round, wait, repeat until ``stop`` is set. A storage error (a locked or briefly
        unreachable database) fails that round only; the next one retries."""
        while not stop.is_set():
            try:
                self.run_once()
            except StoreError as exc:
                self.failures += 1
                _log.warning("federation round failed: %s", exc)
                if self._on_error is not None:
                    self._on_error(exc)
            stop.wait(self.interval_s)
