"""The scheduler's start-up grace: no check runs before what it checks has started.

At a clean start every program starts at once; the scheduler's first pass
came about 2 s later, before the engine answered or radcheck had written its
state, and paged on-call for a start (7 PROBLEM mails, 6 RECOVERY a minute
later). The gate holds the checks back until

- radcheck has written its state file *since the scheduler started* and its
  last self-test passed (so the engine answers RADIUS), and
- the engine has written its counters (``radiusd-stats.json``) since then,

or until ``[Monitor] Startup_Grace_sec`` has passed (then a real problem pages
as usual). Files left by a previous run are never taken as proof: only their
content with a time after our own start counts. Meanwhile the scheduler still
sends its host result and the site heartbeat, so Nagios sees the server alive.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class StartupGate:
    """``waiting_for()`` is None once the checks may run, else what they wait for."""

    radcheck_state: Path | None
    engine_stats: Path | None
    grace_sec: float
    clock: Callable[[], float] = time.time
    started_at: float = field(default=0.0)
    _open: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if not self.started_at:
            self.started_at = self.clock()
        if self.grace_sec <= 0 or (self.radcheck_state is None and self.engine_stats is None):
            self._open = True

    def left(self) -> float:
        return max(0.0, self.started_at + self.grace_sec - self.clock())

    def waiting_for(self) -> str | None:
        if self._open:
            return None
        if self.left() <= 0:
            self._open = True
            return None
        why = self._why()
        if why is None:
            self._open = True
        return why

    @property
    def timed_out(self) -> bool:
        return self._open and self.left() <= 0

    def _why(self) -> str | None:
        if self.radcheck_state is not None:
            st = _read(self.radcheck_state)
            t = st.get("time") if isinstance(st, dict) else None
            if not isinstance(st, dict) or not isinstance(t, int | float) or t < self.started_at:
                return "radcheck's first self-test since start"
            if not st.get("ok"):
                return "the RADIUS engine to answer radcheck's self-test"
        if self.engine_stats is not None:
            try:
                mtime = self.engine_stats.stat().st_mtime
            except OSError:
                mtime = 0.0
            if mtime < self.started_at:
                return "the RADIUS engine's first counters since start"
        return None


def _read(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # missing, half-written or corrupt: not ready yet, never a crash
