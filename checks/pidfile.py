"""Process alive by pidfile; judged value: how long it has been running."""

from __future__ import annotations

import argparse
import sys

from checks.plugin import Context, Plugin, Reading, TargetDown
from checks.proc import command_line, pid_from_file, pidfile_path, uptime
from vigil.processes import pid_alive


class Pidfile(Plugin):
    name = "pidfile"
    title = "Process named by a pidfile is alive (and for how long)"
    label = "uptime"
    uom = "s"
    remote = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-f", "--pidfile", required=True, metavar="PATH",
                            help="the pidfile (relative: inside [Site] State_Dir)")
        parser.add_argument("--match", metavar="TEXT",
                            help="the process's command line must contain TEXT "
                                 "(a reused pid is not our process)")

    def probe(self, ctx: Context) -> Reading:
        path = pidfile_path(ctx, ctx.args.pidfile)
        pid = pid_from_file(path)
        if not pid_alive(pid):
            raise TargetDown(f"pid {pid} from {path} is not running (stale pidfile)")
        cmd = command_line(pid)
        if ctx.args.match and ctx.args.match not in cmd:
            raise TargetDown(f"pid {pid} from {path} is {cmd[:60]!r}, not "
                             f"{ctx.args.match!r}: stale pidfile, pid reused")
        up = uptime(pid) or 0.0
        return Reading(round(up), f"pid {pid} running for {_human(up)} ({cmd[:60]})", min=0)


def _human(sec: float) -> str:
    if sec < 120:
        return f"{sec:.0f}s"
    if sec < 7200:
        return f"{sec / 60:.0f} min"
    if sec < 172800:
        return f"{sec / 3600:.1f} h"
    return f"{sec / 86400:.1f} days"


PLUGIN = Pidfile

if __name__ == "__main__":
    sys.exit(Pidfile.main())
