"""The garbage collector's pauses in an engine process, counted and told.

A collection runs in whichever thread allocated last, with the GIL held: the
packet loop, the committer and the look-up workers all stop until it is done,
and every request that arrives meanwhile waits. The engine's p99 at 1,000
authorizations/s was such pauses, 10-20 ms every 1.7 s (docs/billing.md,
"Figures"), and nothing in the engine said so. Here each collection is timed
(``gc.callbacks``: a clock read at its start and at its end), the counters
file carries the totals (`vigil status` shows them per process), and a pause
longer than ``slow_ms`` is told in the log, at most one line a minute for
all of them.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

SLOW_MS = 10.0  # a tenth of what a gateway waits before its retry, and the p99 goal
REPORT_EVERY = 60.0


class GcPauses:
    def __init__(self, slow_ms: float = SLOW_MS, report_every: float = REPORT_EVERY,
                 clock: Callable[[], float] = time.perf_counter,
                 wall: Callable[[], float] = time.monotonic) -> None:
        self.slow_ms = slow_ms
        self.report_every = report_every
        self._clock = clock
        self._wall = wall
        self._started: float | None = None
        self.collections = 0
        self.total_ms = 0.0
        self.longest_ms = 0.0
        self.slow = 0
        # slow pauses not yet told: how many, the longest, its generation
        self._untold = 0
        self._untold_longest = 0.0
        self._untold_generation = 0
        self._told_at = wall() - report_every

    def install(self) -> None:
        if self._on_collection not in gc.callbacks:
            gc.callbacks.append(self._on_collection)

    def uninstall(self) -> None:
        if self._on_collection in gc.callbacks:
            gc.callbacks.remove(self._on_collection)

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        # Runs inside the collector, with the GIL: a clock read and a few
        # sums, nothing that allocates much or takes a lock another thread
        # could hold while allocating (that could be this very thread).
        if phase == "start":
            self._started = self._clock()
            return
        if self._started is None:
            return
        ms = (self._clock() - self._started) * 1000.0
        self._started = None
        self.collections += 1
        self.total_ms += ms
        if ms > self.longest_ms:
            self.longest_ms = ms
        if ms >= self.slow_ms:
            self.slow += 1
            self._untold += 1
            if ms > self._untold_longest:
                self._untold_longest = ms
                self._untold_generation = int(info.get("generation", -1))

    def snapshot(self) -> dict[str, Any]:
        """The counters file's fields (cumulative since the process started)."""
        return {"gc_collections": self.collections,
                "gc_pause_ms_total": round(self.total_ms, 1),
                "gc_pause_ms_max": round(self.longest_ms, 1),
                "gc_slow_pauses": self.slow,
                "gc_slow_ms": self.slow_ms}

    def report(self) -> None:
        """One log line for the slow pauses since the last one, at most every
        ``report_every`` seconds (called by the stats chore, not the collector)."""
        # Only the stats chore's thread calls this; a collection between the
        # read and the reset below loses one pause from this summary, never
        # from the counters.
        now = self._wall()
        if not self._untold or now - self._told_at < self.report_every:
            return
        n, longest, generation = self._untold, self._untold_longest, self._untold_generation
        self._untold, self._untold_longest = 0, 0.0
        self._told_at = now
        log.warning("garbage collection stopped the engine for %.0f ms or more %d time%s "
                    "since the last report, longest %.1f ms (generation %d); requests waited "
                    "meanwhile", self.slow_ms, n, "" if n == 1 else "s", longest, generation)
