"""Timers for the engine's chores (counters file, account refresh, call
expiry, heartbeat), each on its own schedule in a thread of its own, so that
no load on the packet loop or the committer can starve them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class Chore:
    name: str
    every: float
    run: Callable[[], object]
    due: float = 0.0


class Housekeeper(threading.Thread):
    def __init__(self, name: str, chores: list[Chore],
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name=name, daemon=True)
        self.chores = chores
        self.clock = clock
        self._stop_event = threading.Event()

    def run_due(self) -> float:
        """Run what is due; seconds until the next one is."""
        for chore in self.chores:
            now = self.clock()
            if now >= chore.due:
                try:
                    chore.run()
                except Exception as exc:  # a chore failing must not end the others
                    log.warning("%s failed: %s", chore.name, exc)
                chore.due = self.clock() + chore.every
        now = self.clock()
        return max(0.01, min((c.due for c in self.chores), default=now + 1) - now)

    def run(self) -> None:
        while not self._stop_event.is_set():
            self._stop_event.wait(self.run_due())

    def stop(self, timeout: float = 5.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)
