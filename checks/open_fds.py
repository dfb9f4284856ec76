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


def engine_pids(ctx: Context) -> list[tuple[int, int]]:
    """(process index, pid) of every engine process that runs, from the counters files.

    A hung process still holds its descriptors, so it is measured too."""
    from billing.stats_files import HUNG, LIVE, StatsError, read_engine

    try:
        stats = read_engine(ctx.site_state_dir(), ctx.args.max_age)
    except StatsError as exc:
        raise PluginError(str(exc)) from None
    running = [(p.index, p.pid) for p in stats.processes
               if p.state in (LIVE, HUNG) and p.pid is not None]
    if running:
        return running
    newest = stats.newest()
    if newest is None or newest.pid is None:
        raise TargetDown(f"no engine pid in {ctx.site_state_dir() / 'radiusd-stats.json'}: "
                         "the RADIUS engine has not run")
    # the counters files outlive the engine: say whose pid it is and how old
    raise TargetDown(f"the RADIUS engine is not running (pid {newest.pid} from "
                     f"{newest.path.name}, written {newest.age:.0f}s ago)")


def fds_of(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except FileNotFoundError:
        raise TargetDown(f"pid {pid} is not running") from None
    except PermissionError:
        raise PluginError(f"not allowed to list /proc/{pid}/fd (run as the process's "
                          "user or root)") from None


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
                         help="the RADIUS engine: every engine process (their pids from "
                              "radiusd-stats*.json), the fullest one judged")
        parser.add_argument("--max-age", type=float, default=60.0, metavar="SEC",
                            help="with --engine: a process whose counters are older than "
                                 "this is no longer running or hung (default 60)")

    def probe(self, ctx: Context) -> Reading:
        if ctx.args.engine:
            return self._engine(ctx)
        pid = ctx.args.pid or pid_from_file(pidfile_path(ctx, ctx.args.pidfile))
        if not pid_alive(pid):
            raise TargetDown(f"pid {pid} is not running")
        return self._reading(pid, fds_of(pid), f"pid {pid}")

    def _engine(self, ctx: Context) -> Reading:
        """The engine process with the largest share of its limit in use."""
        worst: tuple[float, int, int, int | None] | None = None  # pct, index, count, limit
        pids = engine_pids(ctx)
        for index, pid in pids:
            try:
                count = fds_of(pid)
            except TargetDown:
                continue  # ended since its file was read: its successor has its own file
            limit = fd_limit(pid)
            pct = 100.0 * count / limit if limit else 0.0
            if worst is None or pct > worst[0]:
                worst = (pct, index, count, limit)
        if worst is None:
            raise TargetDown("the RADIUS engine is not running (its processes ended while "
                             "measured)")
        _pct, index, count, limit = worst
        pid = dict(pids)[index]
        who = (f"engine process {index} of {len(pids)} (pid {pid})" if len(pids) > 1
               else f"pid {pid}")
        return self._reading(pid, count, who, limit)

    @staticmethod
    def _reading(pid: int, count: int, who: str, limit: int | None = None) -> Reading:
        limit = limit if limit is not None else fd_limit(pid)
        if not limit:
            return Reading(0, f"{who} has {count} open files and no limit",
                           min=0, max=100, extra=[Perfdata("fds", count, min=0)])
        pct = 100.0 * count / limit
        return Reading(round(pct, 2), f"{who} has {count} of {limit} files open "
                       f"({pct:.1f}%)", min=0, max=100,
                       extra=[Perfdata("fds", count, min=0, max=limit)])


PLUGIN = OpenFds

if __name__ == "__main__":
    sys.exit(OpenFds.main())
