"""Per-interval rates from the RADIUS engine's counters (``radiusd-stats*.json``).

Every engine process writes cumulative counters every few seconds to its own
file (billing/stats_files.py reads them all, for every plugin); a plugin wants
what happened on the server since its previous run: the sum over the live
processes of each one's increase. The previous sample (per process) is kept in
a small state file per plugin. A restarted process (other ``pid``/
``started_at``, or a counter that went down) starts again from zero, so its
increase is its new counters themselves. A process whose counters stopped
being updated while it runs is hung, and no live process at all means the
engine is hung or gone: CRITICAL.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from billing.stats_files import (
    STATS_FILE,
    EngineStats,
    StatsError,
    index_of,
    read_engine,
    read_process,
)
from checks.plugin import Context, PluginError, TargetDown
from checks.state import load_state, save_state


def add_stats_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stats-file", metavar="PATH",
                        help="one engine process's counters only (default: every process's "
                             f"<[Site] State_Dir>/{STATS_FILE}, radiusd-stats-<n>.json)")
    parser.add_argument("--max-age", type=float, default=60.0, metavar="SEC",
                        help="counters older than this mean the process is not running "
                             "(CRITICAL; default 60)")


def read_engine_stats(ctx: Context, max_age: float) -> EngineStats:
    """Every engine process's counters (or the one of ``--stats-file``), judged;
    TargetDown when no engine process runs or one is hung."""
    one = getattr(ctx.args, "stats_file", None)
    try:
        if one:
            path = Path(one)
            found = read_process(path, index_of(path.name) or 0, max_age)
            stats = EngineStats([found] if found else [])
            where = str(path)
        else:
            state_dir = ctx.site_state_dir()
            stats = read_engine(state_dir, max_age)
            where = str(state_dir / STATS_FILE)
    except StatsError as exc:
        raise PluginError(str(exc)) from None
    newest = stats.newest()
    if newest is None:
        raise TargetDown(f"no engine counters at {where}: the RADIUS engine has not run")
    if stats.hung:
        p = stats.hung[0]
        raise TargetDown(f"engine process {p.index} (pid {p.pid}) counters not updated for "
                         f"{p.age:.0f}s: the RADIUS engine is hung or stopped")
    if not stats.live:
        if newest.age > max_age:
            raise TargetDown(f"engine counters not updated for {newest.age:.0f}s "
                             f"(pid {newest.pid}, not running): the RADIUS engine is "
                             "hung or stopped")
        raise TargetDown(f"the RADIUS engine is not running (pid {newest.pid} from "
                         f"{newest.path.name}, written {newest.age:.0f}s ago)")
    return stats


@dataclass
class Delta:
    """Counter increases since the previous run, over ``seconds``; ``first`` when there
    was no usable previous sample (nothing to compare yet)."""

    values: dict[str, int]
    seconds: float
    first: bool
    restarted: bool
    note: str = ""

    def per_minute(self, name: str) -> float:
        return self.values.get(name, 0) * 60.0 / self.seconds if self.seconds > 0 else 0.0


def counter_delta(ctx: Context, names: tuple[str, ...]) -> Delta:
    """Read every live process's counters, compare each with this plugin's
    previous sample of that process, store the new samples; the summed increase."""
    stats = read_engine_stats(ctx, ctx.args.max_age)
    live = {p.path.name: p for p in stats.live}
    now = max(p.updated_at for p in live.values())
    current = {key: {n: p.counter(n) for n in names} for key, p in live.items()}
    samples: dict[str, dict[str, Any]] = {
        key: {"identity": p.identity, "at": p.updated_at, "values": current[key]}
        for key, p in live.items()}
    one = getattr(ctx.args, "stats_file", None)
    subject = str(Path(one).resolve()) if one else str(ctx.site_state_dir().resolve() /
                                                       "radiusd-stats*.json")
    prev = load_state(ctx, subject) or {}
    old_samples: dict[str, Any] = prev.get("processes") or {}
    prev_at = prev.get("at")
    if not isinstance(old_samples, dict) or not isinstance(prev_at, int | float):
        save_state(ctx, subject, {"at": now, "processes": samples})
        return Delta({n: 0 for n in names}, 0.0, True, False, "first sample, baseline set")
    if all(_same(old_samples.get(k), s["identity"]) and old_samples[k].get("at") == s["at"]
           for k, s in samples.items()):
        # run again before any process wrote new counters: keep the older baseline
        return Delta({n: 0 for n in names}, 0.0, True, False, "no new counters since last run")
    save_state(ctx, subject, {"at": now, "processes": samples})
    total = {n: 0 for n in names}
    restarted: list[str] = []
    for key, p in live.items():
        increase = _increase(old_samples.get(key), p.identity, current[key], names)
        if increase is None:  # new or restarted since the last run: counts from its start
            restarted.append(key)
            increase = current[key]
        for n in names:
            total[n] += increase[n]
    seconds = now - float(prev_at)
    if restarted and len(restarted) == len(live):
        # every process started again: the counters cover the time since the oldest start
        starts = [float(p.data["started_at"]) for p in live.values()
                  if isinstance(p.data.get("started_at"), int | float)]
        seconds = now - min(starts) if starts else 0.0
        return Delta(total, max(seconds, 0.0), seconds <= 0, True, "engine restarted")
    if restarted:
        which = ", ".join(str(live[k].index) for k in sorted(restarted))
        return Delta(total, seconds, seconds <= 0, True, f"engine process {which} restarted")
    return Delta(total, seconds, False, False)


def _same(old: object, identity: list[Any]) -> bool:
    return isinstance(old, dict) and old.get("identity") == identity


def _increase(old: object, identity: list[Any], current: dict[str, int],
              names: tuple[str, ...]) -> dict[str, int] | None:
    """Increase of each counter since ``old`` (a stored sample); None when ``old``
    is not the same process's or a counter went down (it started again)."""
    if not _same(old, identity):
        return None
    values = old.get("values") if isinstance(old, dict) else None
    if not isinstance(values, dict):
        return None
    increase = {n: current[n] - _int(values.get(n)) for n in names}
    return None if any(v < 0 for v in increase.values()) else increase


def _int(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
