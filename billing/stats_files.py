"""The engine processes' counters files: their names, and reading them all.

Each engine process writes its counters every ``[Radius] Stats_Interval_sec``
to ``<State_Dir>/radiusd-stats.json`` (process 0, or the only one) or
``radiusd-stats-<n>.json`` (process n). Readers (the check plugins, `vigil
status`) must see every process, not process 0 only, and must not count a
file its process left behind. So a file is judged by its content:

- *live*: its pid runs and its counters are fresh (``max_age``);
- *hung*: its pid runs, but it stopped writing (the counters are written by a
  timer thread, so a whole process frozen: SIGSTOP, a disk wait);
- *gone*: its pid does not run, or runs a process started after the file was
  last written (the pid was reused).

Only live processes' counters are summed. Imports nothing of billing and no
database code: a plugin's start-up cost matters (docs/checks.md).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vigil.processes import pid_alive
from vigil.statefile import CorruptStateError, read_json

STATS_FILE = "radiusd-stats.json"
_NAME = re.compile(r"radiusd-stats(?:-(\d+))?\.json")

LIVE, HUNG, GONE = "live", "hung", "gone"


class StatsError(Exception):
    """A counters file that cannot be read or is not the engine's."""


def stats_file_name(index: int) -> str:
    """The file engine process ``index`` writes its counters to."""
    return STATS_FILE if index == 0 else f"radiusd-stats-{index}.json"


def index_of(name: str) -> int | None:
    """The process index a counters file belongs to; None for other files."""
    m = _NAME.fullmatch(name)
    if m is None:
        return None
    return int(m.group(1)) if m.group(1) else 0


def stats_paths(state_dir: Path) -> list[tuple[int, Path]]:
    """Every counters file in ``state_dir``, by process index."""
    try:
        names = os.listdir(state_dir)
    except OSError:
        return []
    found = [(i, state_dir / n) for n in names if (i := index_of(n)) is not None]
    return sorted(found)


def forget_extra_processes(state_dir: Path, n: int) -> list[Path]:
    """Remove the counters files of processes ``n`` and beyond (left by a run with
    more processes): nothing will write them again. The removed paths."""
    removed = []
    for index, path in stats_paths(state_dir):
        if index >= max(n, 1):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
            with contextlib.suppress(FileNotFoundError):
                path.with_name(path.name + ".lock").unlink()  # vigil.statefile's writer lock
    return removed


def _boot_time() -> float | None:
    try:
        with open("/proc/stat") as fh:
            for line in fh:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def process_started_at(pid: int) -> float | None:
    """When ``pid`` started (seconds since the epoch, to the clock tick); None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
        ticks = int(stat.rpartition(")")[2].split()[19])  # field 22, starttime
    except (OSError, ValueError, IndexError):
        return None
    boot = _boot_time()
    return None if boot is None else boot + ticks / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessStats:
    """One engine process's counters, and what its file says about it."""

    index: int
    path: Path
    data: dict[str, Any]
    updated_at: float
    age: float
    state: str

    @property
    def pid(self) -> int | None:
        pid = self.data.get("pid")
        return pid if isinstance(pid, int) else None

    def counter(self, name: str) -> int:
        value = self.data.get(name)
        return value if isinstance(value, int) and value >= 0 else 0

    @property
    def identity(self) -> list[Any]:
        """Who wrote the counters: another identity means they started again from 0."""
        return [self.data.get("pid"), self.data.get("started_at")]


def read_process(path: Path, index: int, max_age: float, now: float | None = None
                 ) -> ProcessStats | None:
    """One counters file, judged; None when there is no such file."""
    try:
        data = read_json(path)
        mtime = path.stat().st_mtime if data is not None else 0.0
    except CorruptStateError as exc:
        raise StatsError(f"engine counters unreadable: {exc}") from None
    except FileNotFoundError:
        return None  # removed between listing and reading
    except OSError as exc:
        raise StatsError(f"cannot read {path}: {exc.strerror}") from None
    if data is None:
        return None
    if not isinstance(data, dict):
        raise StatsError(f"{path}: not the engine's counters")
    updated = data.get("updated_at")
    updated_at = float(updated) if isinstance(updated, int | float) else mtime
    now = time.time() if now is None else now
    age = max(0.0, now - updated_at)
    pid = data.get("pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        state = GONE
    elif age <= max_age:
        state = LIVE
    else:
        # The counters are truncated to the second: the writer started at
        # most a second after them. A later start is another process on a
        # reused pid, not a hung engine.
        started = process_started_at(pid)
        state = GONE if started is not None and started > updated_at + 1.0 else HUNG
    return ProcessStats(index, path, data, updated_at, age, state)


@dataclass(frozen=True)
class EngineStats:
    """The engine processes of this server, as their counters files tell."""

    processes: list[ProcessStats]

    def in_state(self, state: str) -> list[ProcessStats]:
        return [p for p in self.processes if p.state == state]

    @property
    def live(self) -> list[ProcessStats]:
        return self.in_state(LIVE)

    @property
    def hung(self) -> list[ProcessStats]:
        return self.in_state(HUNG)

    def newest(self) -> ProcessStats | None:
        return max(self.processes, key=lambda p: p.updated_at, default=None)

    def total(self, name: str) -> int:
        """A counter summed over the live processes (requests, drops, backlog)."""
        return sum(p.counter(name) for p in self.live)


def read_engine(state_dir: Path, max_age: float, now: float | None = None) -> EngineStats:
    """Every counters file in ``state_dir``, judged."""
    found = [read_process(path, index, max_age, now) for index, path in stats_paths(state_dir)]
    return EngineStats([p for p in found if p is not None])
