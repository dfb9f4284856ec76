"""Swap in use, in percent (no swap configured reads as 0%)."""

from __future__ import annotations

import sys

from checks.memory import read_meminfo
from checks.plugin import Context, Plugin, PluginError, Reading


class Swap(Plugin):
    name = "swap"
    title = "Swap space in use"
    label = "swap_used"
    uom = "%"
    warning = "50"
    critical = "80"
    remote = False

    def probe(self, ctx: Context) -> Reading:
        info = read_meminfo()
        try:
            total, free = info["SwapTotal"], info["SwapFree"]
        except KeyError as exc:
            raise PluginError(f"/proc/meminfo has no {exc.args[0]}") from None
        if total == 0:
            return Reading(0, "no swap configured", min=0, max=100)
        pct = 100.0 * (total - free) / total
        return Reading(round(pct, 2), f"{pct:.1f}% of {total / 2**20:.0f} MiB swap in use",
                       min=0, max=100)


PLUGIN = Swap

if __name__ == "__main__":
    sys.exit(Swap.main())
