"""Per-interval rates from the RADIUS engine's counters (``radiusd-stats.json``).

The engine writes cumulative counters every few seconds; a plugin wants what
happened since its previous run. The previous sample is kept in a small state
file per plugin. A restarted engine (other ``pid``/``started_at``, or a
counter that went down) starts again from zero, so the delta is the new
counters themselves. A stats file that stopped being updated means the
engine is hung or gone: CRITICAL.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checks.plugin import Context, PluginError, TargetDown
from checks.state import load_state, save_state

STATS_FILE = "radiusd-stats.json"


def add_stats_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stats-file", metavar="PATH",
                        help=f"the engine's counters (default <[Site] State_Dir>/{STATS_FILE})")
    parser.add_argument("--max-age", type=float, default=60.0, metavar="SEC",
                        help="counters older than this mean the engine is not running "
                             "(CRITICAL; default 60)")


def read_stats(ctx: Context) -> tuple[Path, dict[str, Any]]:
    from vigil.statefile import CorruptStateError, read_json

    path = Path(ctx.args.stats_file) if ctx.args.stats_file else \
        ctx.site_state_dir() / STATS_FILE
    try:
        stats = read_json(path)
    except CorruptStateError as exc:
        raise PluginError(f"engine counters unreadable: {exc}") from None
    except OSError as exc:
        raise PluginError(f"cannot read {path}: {exc.strerror}") from None
    if stats is None:
        raise TargetDown(f"no engine counters at {path}: the RADIUS engine has not run")
    if not isinstance(stats, dict) or not isinstance(stats.get("updated_at"), int | float):
        raise PluginError(f"{path}: not the engine's counters (no updated_at)")
    age = time.time() - stats["updated_at"]
    if age > ctx.args.max_age:
        raise TargetDown(f"engine counters not updated for {age:.0f}s "
                         f"(pid {stats.get('pid')}): the RADIUS engine is hung or stopped")
    return path, stats


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
    """Read the counters, compare with this plugin's previous sample, store the new one."""
    path, stats = read_stats(ctx)
    now = float(stats["updated_at"])
    current = {n: _int(stats.get(n)) for n in names}
    identity = [stats.get("pid"), stats.get("started_at")]
    subject = str(path.resolve())
    prev = load_state(ctx, subject)
    if prev and prev.get("identity") == identity and prev.get("at") == now:
        # run again before the engine wrote new counters: keep the older baseline
        return Delta({n: 0 for n in names}, 0.0, True, False, "no new counters since last run")
    save_state(ctx, subject, {"at": now, "identity": identity, "values": current})
    if not prev or not isinstance(prev.get("values"), dict):
        return Delta({n: 0 for n in names}, 0.0, True, False, "first sample, baseline set")
    old = {n: _int(prev["values"].get(n)) for n in names}
    restarted = prev.get("identity") != identity or any(current[n] < old[n] for n in names)
    if restarted:
        started = stats.get("started_at")
        seconds = now - float(started) if isinstance(started, int | float) else 0.0
        return Delta(current, max(seconds, 0.0), seconds <= 0, True, "engine restarted")
    return Delta({n: current[n] - old[n] for n in names}, now - float(prev.get("at", now)),
                 False, False)


def _int(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
