"""System load average, optionally per CPU."""

from __future__ import annotations

import argparse
import os
import sys

from checks.perfdata import Perfdata
from checks.plugin import Context, Plugin, PluginError, Reading


def read_loadavg(path: str = "/proc/loadavg") -> tuple[float, float, float]:
    try:
        with open(path) as fh:
            fields = fh.read().split()
        return float(fields[0]), float(fields[1]), float(fields[2])
    except (OSError, ValueError, IndexError) as exc:
        raise PluginError(f"cannot read {path}: {exc}") from None


class Load(Plugin):
    name = "load"
    title = "Load average (runnable processes) over 1, 5 or 15 minutes"
    label = "load"
    warning = "8"
    critical = "16"
    remote = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-m", "--minutes", type=int, choices=(1, 5, 15), default=5,
                            help="which average to judge (default 5)")
        parser.add_argument("-r", "--per-cpu", action="store_true",
                            help="divide by the number of CPUs before judging")

    def probe(self, ctx: Context) -> Reading:
        loads = dict(zip((1, 5, 15), read_loadavg(), strict=True))
        cpus = os.cpu_count() or 1
        div = cpus if ctx.args.per_cpu else 1
        value = loads[ctx.args.minutes] / div
        per = " per CPU" if ctx.args.per_cpu else ""
        text = (f"load average{per} {value:.2f} over {ctx.args.minutes} min "
                f"({loads[1]:.2f}, {loads[5]:.2f}, {loads[15]:.2f}; {cpus} CPUs)")
        extra = [Perfdata(f"load{m}", round(v / div, 3), min=0) for m, v in loads.items()
                 if m != ctx.args.minutes]
        return Reading(round(value, 3), text, min=0, extra=extra)


PLUGIN = Load

if __name__ == "__main__":
    sys.exit(Load.main())
