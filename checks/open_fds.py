"""Open file descriptors of a process, as a share of its soft limit (RLIMIT_NOFILE)."""

from __future__ import annotations

import argparse
import os
import sys

from checks.perfdata import Perfdata
from checks.plugin import Context, Plugin, PluginError, Reading, TargetDown
from checks.proc import pid_from_file, pidfile_path
from vigil.processes import pid_alive


def fd_limit(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/limits") as fh:
            for line in fh:
                if line.startswith("Max open files"):
                    soft = line.split()[3]
                    return None if soft == "unlimited" else int(soft)
    except (OSError, ValueError, IndexError):
        return None
    return None


def engine_pid(ctx: Context) -> int:
    from vigil.statefile import CorruptStateError, read_json

    path = ctx.site_state_dir() / "radiusd-stats.json"
    try:
        stats = read_json(path)
    except CorruptStateError as exc:
        raise PluginError(str(exc)) from None
    if not isinstance(stats, dict) or not isinstance(stats.get("pid"), int):
        raise TargetDown(f"no engine pid in {path}: the RADIUS engine has not run")
    return int(stats["pid"])


def stats_age(ctx: Context) -> float:
    import time

    try:
        return max(0.0, time.time() - (ctx.site_state_dir() / "radiusd-stats.json")
                   .stat().st_mtime)
    except OSError:
        return 0.0


class OpenFds(Plugin):
    name = "open_fds"
    title = "Open file descriptors of a process, in percent of its limit"
    label = "fds_used"
    uom = "%"
    warning = "80"
    critical = "90"
    remote = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("-f", "--pidfile", metavar="PATH",
                         help="the process's pidfile (relative: inside [Site] State_Dir)")
        who.add_argument("--pid", type=int, help="the process id")
        who.add_argument("--engine", action="store_true",
                         help="the RADIUS engine (its pid from radiusd-stats.json)")

    def probe(self, ctx: Context) -> Reading:
        if ctx.args.engine:
            pid = engine_pid(ctx)
        else:
            pid = ctx.args.pid or pid_from_file(pidfile_path(ctx, ctx.args.pidfile))
        if not pid_alive(pid):
            if ctx.args.engine:
                # the counters file outlives the engine: say whose pid it is and how old
                raise TargetDown(f"the RADIUS engine is not running (pid {pid} from "
                                 f"radiusd-stats.json, written {stats_age(ctx):.0f}s ago)")
            raise TargetDown(f"pid {pid} is not running")
        try:
            count = len(os.listdir(f"/proc/{pid}/fd"))
        except FileNotFoundError:
            raise TargetDown(f"pid {pid} is not running") from None
        except PermissionError:
            raise PluginError(f"not allowed to list /proc/{pid}/fd (run as the process's "
                              "user or root)") from None
        limit = fd_limit(pid)
        if not limit:
            return Reading(0, f"pid {pid} has {count} open files and no limit",
                           min=0, max=100, extra=[Perfdata("fds", count, min=0)])
        pct = 100.0 * count / limit
        return Reading(round(pct, 2), f"pid {pid} has {count} of {limit} files open "
                       f"({pct:.1f}%)", min=0, max=100,
                       extra=[Perfdata("fds", count, min=0, max=limit)])


PLUGIN = OpenFds

if __name__ == "__main__":
    sys.exit(OpenFds.main())
